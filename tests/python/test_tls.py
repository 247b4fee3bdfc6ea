"""STOMP over TLS (issue 16) with stomp.py: `stomp+ssl://` connectors, mutual TLS
(`?needClientAuth=true`), and the refusals a client sees when either side's certificate
or the protocol is wrong. Certificates come from the session's `tls_files` (openssl CLI,
as README.md "Making a test CA and stores" does)."""

import logging
import uuid

import pytest
import stomp

from conftest import Client, bodies, body_list, marker_follows

TLS = "tls"      # stomp+ssl:// (server certificate only)
MTLS = "mtls"    # stomp+ssl://...?needClientAuth=true


def start_tls_broker(broker_factory, files, material="pem", mutual=True):
    """A broker with the plain `stomp` connector plus `tls` (and `mtls` if `mutual`).
    material "pem": <tandem tlsCertificate tlsPrivateKey tlsTrustedCa>; "pkcs12":
    <sslContext keyStore> (no trust store, so no mutual TLS)."""
    connectors = {TLS: "stomp+ssl://127.0.0.1:{port}"}
    if mutual:
        connectors[MTLS] = "stomp+ssl://127.0.0.1:{port}?needClientAuth=true"
    if material == "pem":
        return broker_factory(connectors=connectors, tandem_attrs=files.pem_attrs())
    assert material == "pkcs12" and not mutual
    return broker_factory(connectors=connectors, extra_xml=files.ssl_context_xml())


def trusting(files):
    """stomp.py settings: verify the broker against our CA (no client certificate)."""
    return dict(ca_certs=str(files.ca))


def with_client_cert(files):
    return dict(ca_certs=str(files.ca), cert_file=str(files.client_cert),
                key_file=str(files.client_key))


def with_foreign_client_cert(files):
    return dict(ca_certs=str(files.ca), cert_file=str(files.foreign_cert),
                key_file=str(files.foreign_key))


def refused(broker, connector, ssl) -> str:
    """Connect with stomp.py and expect no session. Returns how it failed: "raised"
    (stomp.py's connect raised ConnectFailedException: the TCP connect or the TLS
    handshake failed on the client's side) or "closed" (the broker closed the connection
    before any CONNECTED; with TLS 1.3 the client's handshake is over before the broker
    checks the client's certificate, so a refusal shows up as the connection closing).
    Fails the test if the broker answers CONNECTED."""
    c = Client(broker, connector=connector, ssl=ssl)
    try:
        c.conn.connect(wait=False)
    except stomp.exception.ConnectFailedException:
        return "raised"
    # stomp.py nulls its transport's socket once the connection is closed; it does not
    # always call on_disconnected when the broker's close races its own clean-up (it
    # then logs "'NoneType' object has no attribute 'unwrap'"), so either sign counts.
    closed = lambda: c.col.disconnected or c.conn.transport.socket is None  # noqa: E731
    try:
        c.col.wait(lambda: c.col.connected_frame is not None or closed(),
                   "CONNECTED or the connection to close", allow_error=True)
        assert c.col.connected_frame is None, \
            f"the broker accepted the session: {c.col.connected_frame}"
        return "closed"
    finally:
        c.close()


def round_trip(client, producer=None):
    """Prove `client` is served: a persistent message through a fresh queue comes back."""
    dest = f"/queue/tls.rt.{uuid.uuid4().hex[:8]}"
    body = f"rt-{uuid.uuid4().hex}"
    client.subscribe(dest)
    (producer or client).send(dest, body, persistent=True)
    got = client.take_one()
    assert (got.body, got.headers["destination"]) == (body, dest)


# ---------------------------------------------------------------------------- 1. persistence

@pytest.mark.parametrize("material", ["pem", "pkcs12"])
def test_persistent_messages_over_tls_survive_kill9(broker_factory, tls_files, connect,
                                                   material):
    b = start_tls_broker(broker_factory, tls_files, material, mutual=False)
    ssl = trusting(tls_files)
    producer = connect(b, connector=TLS, ssl=ssl)
    sent = bodies("tls", 300)
    producer.send_many("/queue/tls", sent, persistent=True)          # each with a receipt
    idle = bodies("idle", 100)
    producer.send_many("/queue/tls.idle", idle, persistent=True)     # nobody consumes these

    consumer = connect(b, connector=TLS, ssl=ssl)
    consumer.subscribe("/queue/tls", ack="client-individual",
                       **{"activemq.prefetchSize": "1000"})
    got = consumer.take(300)
    assert body_list(got) == sent
    for m in got[::3]:                                               # 100 acked, with receipts
        consumer.ack(m)

    b.kill9()
    producer.close()
    consumer.close()
    b.start()

    c = connect(b, connector=TLS, ssl=ssl)
    p = connect(b, connector=TLS, ssl=ssl)
    c.subscribe("/queue/tls")
    unacked = [x for i, x in enumerate(sent) if i % 3 != 0]
    assert body_list(c.take(200)) == unacked
    marker_follows(c, p, "/queue/tls")
    c.subscribe("/queue/tls.idle")
    assert body_list(c.take(100)) == idle
    marker_follows(c, p, "/queue/tls.idle")


# ---------------------------------------------------------------------------- 2. mutual TLS

def test_mutual_tls_with_client_cert_from_trusted_ca(broker_factory, tls_files, connect):
    b = start_tls_broker(broker_factory, tls_files)
    c = connect(b, connector=MTLS, ssl=with_client_cert(tls_files))
    round_trip(c)
    c.disconnect()


@pytest.mark.parametrize("client_ssl", [trusting, with_foreign_client_cert],
                         ids=["no-client-cert", "foreign-client-cert"])
def test_mutual_tls_refuses_client_without_trusted_cert(broker_factory, tls_files, connect,
                                                        client_ssl):
    b = start_tls_broker(broker_factory, tls_files)
    good = connect(b, connector=MTLS, ssl=with_client_cert(tls_files))   # connected before

    how = refused(b, MTLS, client_ssl(tls_files))
    assert how in ("raised", "closed")

    round_trip(good)                                           # the open session is unharmed
    after = connect(b, connector=MTLS, ssl=with_client_cert(tls_files))
    round_trip(after, producer=good)                           # and new ones are accepted
    # The same client settings work where no client certificate is required.
    round_trip(connect(b, connector=TLS, ssl=client_ssl(tls_files)))


# ---------------------------------------------------------------------------- 3. no TLS on a TLS port

def test_plain_stomp_on_tls_port_is_refused(broker_factory, tls_files, connect):
    b = start_tls_broker(broker_factory, tls_files)
    good = connect(b, connector=TLS, ssl=trusting(tls_files))

    for connector in (TLS, MTLS):
        assert refused(b, connector, ssl=None) == "closed"   # TCP connects; no session

    round_trip(good)
    round_trip(connect(b, connector=TLS, ssl=trusting(tls_files)), producer=good)
    round_trip(connect(b, connector=MTLS, ssl=with_client_cert(tls_files)))
    round_trip(connect(b))                                   # the plain connector too


# ---------------------------------------------------------------------------- 4. untrusted broker

def test_client_refuses_broker_cert_from_foreign_ca(broker_factory, tls_files, connect,
                                                    caplog):
    b = start_tls_broker(broker_factory, tls_files)
    with caplog.at_level(logging.WARNING, logger="stomp.py"):
        how = refused(b, TLS, ssl=dict(ca_certs=str(tls_files.foreign_ca)))
    assert how == "raised"
    # stomp.py logs why its connect failed: the handshake's certificate check.
    reasons = [r.getMessage() for r in caplog.records if r.name == "stomp.py"]
    assert any("CERTIFICATE_VERIFY_FAILED" in m for m in reasons), reasons

    round_trip(connect(b, connector=TLS, ssl=trusting(tls_files)))
