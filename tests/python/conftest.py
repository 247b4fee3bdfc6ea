"""Harness for the stomp.py suite: real broker processes, real client, bounded waits.

* `free_port()`        a loopback port nobody is listening on (bind 0, read, close).
* `poll_until(t, f)`   call `f` until it returns something truthy, or fail after `t` s.
* `Broker`             one `tandem` process: its own config, ports and data dir;
                       `kill9()`, `stop()`, `start()`, `restart()`; stderr in a log file
                       that is printed when the test fails. Extra connectors
                       (`connectors={"tls": "stomp+ssl://127.0.0.1:{port}"}`, each on its own
                       free port: `broker.address("tls")`), attributes on `<tandem>`
                       (`tandem_attrs`) and elements (`extra_xml`) are arguments.
* `Client`             a stomp.py connection plus a `Collector` listener; every wait in it
                       is bounded and fails early (with the frame) if the broker sent ERROR.
                       `connector=` picks the broker's connector, `ssl=` is passed to
                       stomp.py's `set_ssl` (ca_certs, cert_file, key_file).

Fixtures: `broker` (a started default broker), `broker_factory` (make your own) and
`tls_files` (a test CA, a broker certificate for 127.0.0.1 and client certificates, made
once per session with the `openssl` CLI).
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path
from ssl import SSLSocket
from xml.sax.saxutils import quoteattr

import pytest
import stomp

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0
WAIT_S = 20.0  # default bound for any wait on the broker; only reached when a test would hang


# ---------------------------------------------------------------------------- utilities

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def poll_until(timeout: float, predicate, what: str = "condition", interval: float = 0.01):
    """Return the first truthy value of `predicate()`; fail the test after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def tandem_bin() -> Path:
    if os.environ.get("TANDEM_BIN"):
        return Path(os.environ["TANDEM_BIN"])
    if os.environ.get("CARGO_TARGET_DIR"):
        return Path(os.environ["CARGO_TARGET_DIR"]) / "release" / "tandem"
    return REPO_ROOT / "target" / "release" / "tandem"


def now_ms() -> int:
    return int(time.time() * 1000)


# ---------------------------------------------------------------------------- broker

class Broker:
    """One tandem process. Ports and data dir stay fixed across restarts."""

    def __init__(self, workdir: Path, shards: int = 2, memory_limit: str = "64 mb",
                 users: list[tuple[str, str, str]] | None = None, extra_xml: str = "",
                 connectors: dict[str, str] | None = None,
                 tandem_attrs: dict[str, str] | None = None,
                 broker_attrs: dict[str, str] | None = None):
        """`connectors`: name -> URI with a `{port}` placeholder, added after the plain
        `stomp` connector, each on its own free port (fixed across restarts).
        `tandem_attrs`: more attributes on `<tandem>`; `broker_attrs` on `<broker>`. `extra_xml`: more children of
        `<broker>`. Relative paths in the config resolve against `workdir`."""
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.ports = {"stomp": self.port}
        self.uris = {"stomp": f"stomp://127.0.0.1:{self.port}"}
        for name, uri in (connectors or {}).items():
            assert name not in self.ports, f"connector name {name!r} used twice"
            self.ports[name] = free_port()
            self.uris[name] = uri.format(port=self.ports[name])
        self.config_path = workdir / "broker.xml"
        self.log_path = workdir / "broker.log"
        self.proc: subprocess.Popen | None = None
        self.config_path.write_text(
            self._config(shards, memory_limit, users, extra_xml, tandem_attrs or {},
                         broker_attrs or {}))

    def _config(self, shards, memory_limit, users, extra_xml, tandem_attrs,
                broker_attrs) -> str:
        plugins = ""
        if users is not None:
            rows = "\n".join(
                f"        <authenticationUser username={quoteattr(u)} password={quoteattr(p)}"
                f" groups={quoteattr(g)}/>" for (u, p, g) in users)
            plugins = (f"  <plugins>\n    <simpleAuthenticationPlugin>\n      <users>\n{rows}\n"
                       f"      </users>\n    </simpleAuthenticationPlugin>\n  </plugins>\n")
        connectors = "\n".join(
            f"    <transportConnector name={quoteattr(name)} uri={quoteattr(uri)}/>"
            for name, uri in self.uris.items())
        attrs = "".join(f" {k}={quoteattr(v)}" for k, v in tandem_attrs.items())
        battrs = "".join(f" {k}={quoteattr(v)}" for k, v in broker_attrs.items())
        return f"""<?xml version="1.0" encoding="UTF-8"?>
<broker xmlns="http://activemq.apache.org/schema/core" brokerName="pytest"
        dataDirectory={quoteattr(str(self.data_dir))} persistent="true"{battrs}>
  <transportConnectors>
{connectors}
  </transportConnectors>
  <persistenceAdapter><kahaDB journalMaxFileLength="4 mb"/></persistenceAdapter>
  <systemUsage><systemUsage><memoryUsage>
    <memoryUsage limit={quoteattr(memory_limit)}/>
  </memoryUsage></systemUsage></systemUsage>
{plugins}  <tandem shards="{shards}" pinCores="false"{attrs}/>
{extra_xml}
</broker>
"""

    @property
    def host_and_port(self):
        return ("127.0.0.1", self.port)

    def address(self, connector: str = "stomp"):
        return ("127.0.0.1", self.ports[connector])

    def start(self) -> "Broker":
        assert self.proc is None or self.proc.poll() is not None, "broker already running"
        binary = tandem_bin()
        if not binary.exists():
            pytest.fail(f"tandem binary not found at {binary}; build it "
                        f"(cargo build --release) or set TANDEM_BIN")
        # After the previous process is reaped, its listening socket can stay open for a
        # few ms (measured 4-10 ms after kill -9 and after SIGTERM: the kernel tears down
        # io_uring rings asynchronously). Starting now would race it (EADDRINUSE) and our
        # readiness probe would be accepted by the dying socket, so wait until it is gone.
        # test_restart.py checks the SIGTERM case separately.
        poll_until(STOP_TIMEOUT_S, self.ports_closed, f"ports {self.ports} to be released")
        with open(self.log_path, "ab") as log:
            log.write(f"==== start {time.strftime('%H:%M:%S')} ====\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [str(binary), "--config", str(self.config_path), "--data-dir", str(self.data_dir)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=self.workdir)
        for port in self.ports.values():   # a TCP connect, closed at once (no TLS, no STOMP)
            poll_until(START_TIMEOUT_S, lambda: self._accepting(port),
                       f"broker to listen on {port}")
        return self

    def _accepting(self, port: int) -> bool:
        if self.proc.poll() is not None:
            pytest.fail(f"broker exited with {self.proc.returncode} during start:\n{self.log()}")
        return not self.port_closed(port)

    def port_closed(self, port: int | None = None) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port or self.port), timeout=1):
                return False
        except OSError:
            return True

    def ports_closed(self) -> bool:
        return all(self.port_closed(p) for p in self.ports.values())

    def kill9(self):
        """kill -9: no shutdown code runs."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=STOP_TIMEOUT_S)

    def stop(self):
        """SIGTERM, then SIGKILL if it has not exited within the bound."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT_S)

    def restart(self) -> "Broker":
        """Start again on the same ports and data dir (after kill9() or stop())."""
        if self.proc is not None and self.proc.poll() is None:
            self.stop()
        return self.start()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture
def broker_factory(tmp_path, request):
    brokers: list[Broker] = []
    counter = itertools.count()

    def make(start: bool = True, **kwargs) -> Broker:
        b = Broker(tmp_path / f"broker{next(counter)}", **kwargs)
        brokers.append(b)
        return b.start() if start else b

    yield make
    for b in brokers:
        b.stop()
    failed = any(getattr(request.node, f"rep_{w}", None) is not None
                 and getattr(request.node, f"rep_{w}").failed for w in ("setup", "call"))
    if failed:
        for b in brokers:
            print(f"\n---- broker log {b.log_path} ----\n{b.log()[-20000:]}")


@pytest.fixture
def broker(broker_factory) -> Broker:
    return broker_factory()


# ---------------------------------------------------------------------------- TLS material

OPENSSL_TIMEOUT_S = 60.0


class TlsFiles:
    """Paths of the PEM files `tls_files` makes (README "Making a test CA and stores")."""

    def __init__(self, d: Path):
        self.dir = d
        self.ca = d / "ca.pem"                      # the CA the broker and the clients trust
        self.broker_cert = d / "broker.pem"         # CN=broker, SAN DNS:localhost,IP:127.0.0.1
        self.broker_key = d / "broker.key"
        self.client_cert = d / "app.pem"            # CN=app, clientAuth, signed by ca.pem
        self.client_key = d / "app.key"
        self.foreign_ca = d / "foreign-ca.pem"      # a CA nobody trusts
        self.foreign_cert = d / "foreign-app.pem"   # CN=app, clientAuth, signed by foreign-ca
        self.foreign_key = d / "foreign-app.key"
        self.broker_p12 = d / "broker.p12"          # broker.pem + key + ca.pem, PKCS12
        self.p12_password = "changeit"

    def pem_attrs(self) -> dict[str, str]:
        """`<tandem>` attributes: the broker's identity, and the CA to check clients with."""
        return {"tlsCertificate": str(self.broker_cert), "tlsPrivateKey": str(self.broker_key),
                "tlsTrustedCa": str(self.ca)}

    def ssl_context_xml(self) -> str:
        """`<sslContext>` with the PKCS12 key store only: the broker's identity, no trust
        store. (An `openssl pkcs12 -export -nokeys` store lacks Java's trusted-certificate
        attribute, so Tandem, like Java, finds nothing to trust in it; the README makes
        trust.p12 with keytool.)"""
        return (f"  <sslContext>\n    <sslContext keyStore={quoteattr(str(self.broker_p12))}"
                f" keyStorePassword={quoteattr(self.p12_password)}/>\n  </sslContext>")


def openssl(cwd: Path, *args: str) -> None:
    r = subprocess.run(["openssl", *args], cwd=cwd, stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=OPENSSL_TIMEOUT_S)
    if r.returncode != 0:
        pytest.fail(f"openssl {' '.join(args)} exited with {r.returncode}:\n{r.stderr}")


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory) -> TlsFiles:
    """Two CAs (ours and a foreign one), the broker's certificate and client certificates,
    made with the openssl CLI as README.md's TLS section does."""
    d = tmp_path_factory.mktemp("tls")
    (d / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")

    def ca(name, cn):
        openssl(d, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "365",
                "-subj", f"/CN={cn}", "-keyout", f"{name}.key", "-out", f"{name}.pem")

    def signed(name, cn, ca_name, ext):
        openssl(d, "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}",
                "-keyout", f"{name}.key", "-out", f"{name}.csr")
        openssl(d, "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca_name}.pem",
                "-CAkey", f"{ca_name}.key", "-CAcreateserial", "-days", "365",
                "-extfile", ext, "-out", f"{name}.pem")

    ca("ca", "Tandem test CA")
    signed("broker", "broker", "ca", "san.ext")
    signed("app", "app", "ca", "client.ext")
    ca("foreign-ca", "Foreign test CA")
    signed("foreign-app", "app", "foreign-ca", "client.ext")
    files = TlsFiles(d)
    openssl(d, "pkcs12", "-export", "-in", "broker.pem", "-inkey", "broker.key",
            "-certfile", "ca.pem", "-name", "broker", "-out", files.broker_p12.name,
            "-passout", f"pass:{files.p12_password}")
    return files


# ---------------------------------------------------------------------------- client

class BrokerError(AssertionError):
    pass


class Collector(stomp.ConnectionListener):
    """Records every frame the broker sends on one connection."""

    def __init__(self):
        self.cond = threading.Condition()
        self.connected_frame = None
        self.messages: list = []
        self.errors: list = []
        self.receipts: set[str] = set()
        self.disconnected = False
        self.heartbeats = 0

    def _record(self, fn):
        with self.cond:
            fn()
            self.cond.notify_all()

    def on_connected(self, frame):
        self._record(lambda: setattr(self, "connected_frame", frame))

    def on_message(self, frame):
        self._record(lambda: self.messages.append(frame))

    def on_error(self, frame):
        self._record(lambda: self.errors.append(frame))

    def on_receipt(self, frame):
        self._record(lambda: self.receipts.add(frame.headers["receipt-id"]))

    def on_heartbeat(self):
        self._record(lambda: setattr(self, "heartbeats", self.heartbeats + 1))

    def on_disconnected(self):
        self._record(lambda: setattr(self, "disconnected", True))

    def wait(self, predicate, what: str, timeout: float = WAIT_S, allow_error: bool = False):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                if self.errors and not allow_error:
                    e = self.errors[0]
                    raise BrokerError(f"ERROR frame while waiting for {what}: "
                                      f"{e.headers} {e.body!r}")
                value = predicate()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(f"timed out after {timeout}s waiting for {what}")
                self.cond.wait(left)


CONNECTION_CLASSES = {"1.0": stomp.Connection10, "1.1": stomp.Connection11,
                      "1.2": stomp.Connection12}


class Client:
    """A stomp.py connection with bounded waits. Messages are consumed with take()."""

    def __init__(self, broker: Broker, version: str = "1.2", auto_decode: bool = True,
                 heartbeats=(0, 0), connector: str = "stomp", ssl: dict | None = None):
        self.version = version
        cls = CONNECTION_CLASSES[version]
        address = broker.address(connector)
        # timeout bounds the TCP connect and the TLS handshake (stomp.py then switches the
        # socket to blocking, or to non-blocking with a selector for TLS).
        kwargs = dict(host_and_ports=[address], reconnect_attempts_max=1,
                      auto_decode=auto_decode, timeout=WAIT_S)
        if version != "1.0":
            kwargs["heartbeats"] = heartbeats
        self.conn = cls(**kwargs)
        if ssl is not None:
            self.conn.set_ssl(for_hosts=[address], **ssl)
        self.col = Collector()
        self.conn.set_listener("collector", self.col)
        self.cursor = 0  # messages before this index were returned by take()
        self._ids = itertools.count()

    # -- connection
    def connect(self, login=None, passcode=None, expect_error=False, **headers):
        self.conn.connect(login, passcode, wait=False, headers=headers)
        if expect_error:
            return self.col.wait(lambda: self.col.errors, "ERROR frame", allow_error=True)[0]
        return self.col.wait(lambda: self.col.connected_frame, "CONNECTED")

    def disconnect(self):
        """DISCONNECT with a receipt (bounded wait for it), then close the socket.
        (stomp.py's own disconnect(receipt=...) waits without a bound.)"""
        if self.conn.is_connected():
            rid = self._receipt_id()
            proto = {"1.0": stomp.protocol.Protocol10, "1.1": stomp.protocol.Protocol11,
                     "1.2": stomp.protocol.Protocol12}[self.version]
            proto.disconnect(self.conn, receipt=rid)
            self.wait_receipt(rid, "for DISCONNECT")
        self.close()

    def close(self):
        """Drop the socket without DISCONNECT (as a crashed client would)."""
        sock = self.conn.transport.socket
        if not isinstance(sock, SSLSocket):
            self.conn.transport.disconnect_socket()
            return
        # stomp.py closes TLS with SSLSocket.unwrap() on a blocking socket: it waits without
        # a bound for the broker's close_notify (or EOF). Cut the TCP connection if neither
        # has come within WAIT_S, and fail.
        cut = threading.Event()

        def watchdog():
            cut.set()
            try:
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass
        timer = threading.Timer(WAIT_S, watchdog)
        timer.start()
        try:
            self.conn.transport.disconnect_socket()
        finally:
            timer.cancel()
        if cut.is_set():
            pytest.fail(f"TLS close: no close_notify or EOF from the broker within {WAIT_S}s")

    def wait_closed_by_broker(self):
        return self.col.wait(lambda: self.col.disconnected, "the broker to close the connection",
                             allow_error=True)

    # -- receipts
    def _receipt_id(self) -> str:
        return f"r-{next(self._ids)}-{uuid.uuid4().hex[:8]}"

    def wait_receipt(self, rid: str, what: str = ""):
        self.col.wait(lambda: rid in self.col.receipts, f"RECEIPT {rid} {what}")

    # -- frames (each waits for its receipt unless receipt=False)
    def send(self, dest, body, receipt=True, persistent=None, **headers):
        if persistent:                   # without it a SEND is non-persistent
            headers["persistent"] = "true"
        rid = None
        if receipt:
            rid = headers["receipt"] = self._receipt_id()
        self.conn.send(dest, body, headers=headers)
        if rid:
            self.wait_receipt(rid, f"for SEND to {dest}")
        return rid

    def send_many(self, dest, bodies, persistent=True, window=64, **headers):
        """Pipelined SENDs, each with a receipt, at most `window` unconfirmed.
        Returns when every receipt has arrived."""
        pending: list[str] = []
        for body in bodies:
            rid = self._receipt_id()
            h = dict(headers, receipt=rid)
            if persistent:
                h["persistent"] = "true"
            self.conn.send(dest, body, headers=h)
            pending.append(rid)
            if len(pending) >= window:
                oldest = pending.pop(0)
                self.wait_receipt(oldest, f"for SEND to {dest}")
        for rid in pending:
            self.wait_receipt(rid, f"for SEND to {dest}")

    def subscribe(self, dest, sub_id=None, ack="auto", **headers):
        sub_id = sub_id or f"sub-{next(self._ids)}"
        rid = headers["receipt"] = self._receipt_id()
        self.conn.subscribe(dest, sub_id, ack=ack, headers=headers)
        self.wait_receipt(rid, f"for SUBSCRIBE to {dest}")
        return sub_id

    def unsubscribe(self, sub_id, **headers):
        rid = headers["receipt"] = self._receipt_id()
        if self.version == "1.0":
            self.conn.unsubscribe(id=sub_id, headers=headers)
        else:
            self.conn.unsubscribe(sub_id, headers=headers)
        self.wait_receipt(rid, "for UNSUBSCRIBE")

    def ack(self, msg, transaction=None, receipt=True):
        rid = self._receipt_id() if receipt else None
        h = msg.headers
        if self.version == "1.2":
            self.conn.ack(h["ack"], transaction=transaction, receipt=rid)
        elif self.version == "1.1":
            self.conn.ack(h["message-id"], h["subscription"], transaction=transaction, receipt=rid)
        else:
            self.conn.ack(h["message-id"], transaction=transaction, receipt=rid)
        if rid:
            self.wait_receipt(rid, "for ACK")

    def nack(self, msg, receipt=True):
        rid = self._receipt_id() if receipt else None
        if self.version == "1.2":
            self.conn.nack(msg.headers["ack"], receipt=rid)
        else:
            self.conn.nack(msg.headers["message-id"], msg.headers["subscription"], receipt=rid)
        if rid:
            self.wait_receipt(rid, "for NACK")

    def begin(self, tx):
        rid = self._receipt_id()
        self.conn.begin(tx, headers={"receipt": rid})
        self.wait_receipt(rid, "for BEGIN")

    def commit(self, tx):
        rid = self._receipt_id()
        self.conn.commit(tx, headers={"receipt": rid})
        self.wait_receipt(rid, "for COMMIT")

    def abort(self, tx):
        rid = self._receipt_id()
        self.conn.abort(tx, headers={"receipt": rid})
        self.wait_receipt(rid, "for ABORT")

    # -- consuming
    def take(self, n: int, timeout: float = WAIT_S):
        """The next `n` MESSAGE frames received (waits for them)."""
        want = self.cursor + n
        self.col.wait(lambda: len(self.col.messages) >= want,
                      f"{n} messages (have {len(self.col.messages) - self.cursor})", timeout)
        with self.col.cond:
            got = self.col.messages[self.cursor:want]
        self.cursor = want
        return got

    def take_one(self, timeout: float = WAIT_S):
        return self.take(1, timeout)[0]

    def pending(self) -> int:
        """Messages received but not yet taken."""
        with self.col.cond:
            return len(self.col.messages) - self.cursor


@pytest.fixture
def connect():
    """connect(broker, version='1.2', login=None, passcode=None, auto_decode=True,
    connector='stomp', ssl=None, **connect_headers) -> a connected Client, closed at
    teardown."""
    clients: list[Client] = []

    def make(broker: Broker, version="1.2", login=None, passcode=None, auto_decode=True,
             connector="stomp", ssl=None, **headers) -> Client:
        c = Client(broker, version=version, auto_decode=auto_decode, connector=connector,
                   ssl=ssl)
        clients.append(c)
        c.connect(login, passcode, **headers)
        return c

    yield make
    for c in clients:
        try:
            c.close()
        except Exception:
            pass


def bodies(prefix: str, n: int) -> list[str]:
    return [f"{prefix}-{i:05d}" for i in range(n)]


def body_list(frames) -> list:
    return [f.body for f in frames]


def marker_follows(client: Client, producer: Client, dest: str) -> None:
    """Prove nothing else is queued for `client` on `dest`: send a marker, and assert
    it is the very next message the client receives (no sleeps needed)."""
    marker = f"MARKER-{uuid.uuid4().hex}"
    producer.send(dest, marker)
    nxt = client.take_one()
    assert nxt.body == marker, f"expected nothing before the marker, got {nxt.body!r} " \
                               f"headers={nxt.headers}"
