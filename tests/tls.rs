//! TLS end to end (issue 16, README "TLS"): real `tandem` processes, real clients this
//! project did not write (the ActiveMQ 5.17 JMS client, `openssl s_client`), and stores
//! made with the README's own `openssl`/`keytool` commands (`support::tls`).
//!
//! * JMS over `ssl://`, `nio+ssl://`, `auto+ssl://`; a `keytool -genkeypair` store as
//!   the broker's key store (RSA and EC);
//! * SCENARIOS S1 over TLS: a pair whose slave reaches its master through `ssl://`,
//!   the JMS failover URL over `ssl://`, `kill -9` of the master, nothing lost;
//! * STOMP over `stomp+ssl://`, `stomp+nio+ssl://`, `auto+ssl://` with `s_client`;
//! * mutual TLS (`needClientAuth`, `wantClientAuth`): who is served, who is refused,
//!   and the broker serving on after each refusal;
//! * a plain-text client on a TLS port is closed; TLS clients are served on;
//! * a slave refuses a master whose certificate does not verify (unknown CA, or not
//!   valid for the address the slave dials) and never serves;
//! * bad material stops the broker at startup with one line naming the file.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::ExitStatus;
use std::time::Duration;

use support::jms::{probe_with, JmsPairTarget, ProbeOutput};
use support::jms_cases as cases;
use support::pair::{
    peer, refuses, role, test_slot, LinkStyle, Node, NodeOpts, Pair, TestSlot, LOOPBACK,
    NODE_START_TIMEOUT, SYNC_TIMEOUT,
};
use support::tls::{
    jvm_identity, jvm_trust, material, pem_tandem_attrs, sslcontext_xml, sslcontext_xml_with,
    StompOverTls, PASSWORD,
};
use support::{
    config_xml, encode, free_port, poll_until, run_to_exit, Broker, BrokerOpts, REPLY_TIMEOUT,
};

/// Bound on a broker exiting after a startup error.
const EXIT_TIMEOUT: Duration = Duration::from_secs(60);
/// How many failed attempts of a slave to reach its master a test watches before it
/// concludes the slave will not attach.
const REFUSED_ATTEMPTS: usize = 3;

// ---------------------------------------------------------------------------------
// Helpers

/// A broker with the harness's plain STOMP connector (its readiness check and a plain
/// client for comparisons), the TLS `connectors` and `<broker>` children `xml`.
fn tls_broker(connectors: Vec<String>, xml: String) -> Broker {
    Broker::start(BrokerOpts {
        extra_connectors: connectors,
        broker_xml: Some(xml),
        ..BrokerOpts::default()
    })
}

/// `<sslContext>` with the CA-signed broker store and the CA trust store.
fn ca_sslcontext() -> String {
    let m = material();
    sslcontext_xml(&m.path("broker.p12"), Some(&m.path("trust.p12")))
}

/// A JMS client trusting the test CA.
fn trusting() -> Vec<String> {
    jvm_trust(&material().path("trust.p12"))
}

/// `send` of `count` persistent messages; asserts every seq was confirmed.
#[track_caller]
fn jms_send(jvm: &[String], url: &str, dest: &str, count: i64) {
    let n = count.to_string();
    let out = probe_with(
        jvm,
        url,
        "send",
        &["--dest", dest, "--count", &n, "--persistent", "true"],
    )
    .assert_ok();
    assert_eq!(out.sent(), (0..count).collect::<Vec<_>>(), "{}", out.dump());
}

/// `recv` of exactly `count` messages (nothing more within 500 ms); asserts seq 0..count
/// in order, first deliveries, bodies exact.
#[track_caller]
fn jms_recv_all(jvm: &[String], url: &str, dest: &str, count: i64) {
    let n = count.to_string();
    let out = probe_with(
        jvm,
        url,
        "recv",
        &["--dest", dest, "--count", &n, "--then-none-ms", "500"],
    )
    .assert_ok();
    assert_eq!(
        out.recv_seqs(),
        (0..count).collect::<Vec<_>>(),
        "{}",
        out.dump()
    );
    for r in out.recvs() {
        assert_eq!(r.body, format!("msg-{}", r.seq), "{r:?}");
        assert!(!r.redelivered, "{r:?}");
    }
}

/// A JMS `connect`: asserts it is served.
#[track_caller]
fn jms_served(jvm: &[String], url: &str) {
    probe_with(jvm, url, "connect", &[] as &[&str]).assert_ok();
}

/// A JMS `connect`: asserts the client fails with an error (a refused handshake).
#[track_caller]
fn jms_refused(jvm: &[String], url: &str) -> ProbeOutput {
    let out = probe_with(jvm, url, "connect", &[] as &[&str]);
    let class = out.expect_error();
    eprintln!("refused as expected: {class}: {:?}", out.lines.last());
    out
}

/// STOMP CONNECT (1.2, no heart-beats) as bytes.
fn stomp_connect() -> Vec<u8> {
    encode(
        "CONNECT",
        &[
            ("accept-version", "1.2"),
            ("host", "localhost"),
            ("heart-beat", "0,0"),
        ],
        b"",
    )
}

/// `s_client` with `extra` options: CONNECT; asserts CONNECTED, then DISCONNECT with a
/// receipt and the connection closed by the broker.
#[track_caller]
fn stomp_tls_served(port: u16, ca: &Path, extra: &[&str]) {
    let extra: Vec<&std::ffi::OsStr> = extra.iter().map(|s| s.as_ref()).collect();
    let mut c = StompOverTls::connect(port, ca, &extra);
    c.send(&stomp_connect());
    c.wait_for("CONNECTED\n", REPLY_TIMEOUT);
    c.send(&encode("DISCONNECT", &[("receipt", "bye")], b""));
    c.wait_for("receipt-id:bye", REPLY_TIMEOUT);
    c.finish();
}

/// `s_client` with `extra` options: CONNECT; asserts the connection ends without
/// CONNECTED (a refused handshake). Returns s_client's stderr.
#[track_caller]
fn stomp_tls_refused(port: u16, ca: &Path, extra: &[&str]) -> String {
    let extra: Vec<&std::ffi::OsStr> = extra.iter().map(|s| s.as_ref()).collect();
    let mut c = StompOverTls::connect(port, ca, &extra);
    // The write may fail: the handshake was refused and s_client has exited.
    let _ = c.try_send(&stomp_connect());
    let stderr = c.finish();
    let received = c.received();
    assert!(
        !received.contains("CONNECTED"),
        "served although it should have been refused; received:\n{received}\nstderr:\n{stderr}"
    );
    stderr
}

/// Polls the broker log (bounded) for a line containing `needle`.
#[track_caller]
fn wait_log(broker: &Broker, needle: &str) {
    let found = poll_until(REPLY_TIMEOUT, || broker.log().contains(needle));
    assert!(found, "no {needle:?} in the log:\n{}", broker.log());
}

// ---------------------------------------------------------------------------------
// 1. JMS over TLS

/// The real JMS client over `ssl://`: 200 persistent messages sent and received,
/// nothing lost; the same over `nio+ssl://` and `auto+ssl://`. A client that does
/// not trust the CA (the JVM's default trust store) is refused.
#[test]
fn jms_client_over_ssl_sends_and_receives_everything() {
    let (ssl, nio, auto) = (free_port(), free_port(), free_port());
    let broker = tls_broker(
        vec![
            format!("ssl://127.0.0.1:{ssl}"),
            format!("nio+ssl://127.0.0.1:{nio}"),
            format!("auto+ssl://127.0.0.1:{auto}"),
        ],
        ca_sslcontext(),
    );
    let jvm = trusting();
    let url = format!("ssl://127.0.0.1:{ssl}");
    jms_send(&jvm, &url, "queue:tls", 200);
    jms_recv_all(&jvm, &url, "queue:tls", 200);
    for port in [nio, auto] {
        let url = format!("ssl://127.0.0.1:{port}");
        let q = format!("queue:tls-{port}");
        jms_send(&jvm, &url, &q, 20);
        jms_recv_all(&jvm, &url, &q, 20);
    }
    // The JVM's own trust store does not hold the test CA.
    jms_refused(&[], &url);
    jms_served(&jvm, &url);
    wait_log(&broker, "TLS handshake failed");
}

/// `keytool -genkeypair -storetype PKCS12 -keyalg <alg>` (keytool's defaults for the
/// rest: PBES2/AES-256, HMAC-SHA256) as the broker's key store; the JMS client trusts
/// the certificate exported from it.
fn keytool_store_serves_jms(name: &str) {
    let m = material();
    let ssl = free_port();
    let _broker = tls_broker(
        vec![format!("ssl://127.0.0.1:{ssl}")],
        sslcontext_xml(&m.path(&format!("{name}.p12")), None),
    );
    let jvm = jvm_trust(&m.path(&format!("{name}-trust.p12")));
    let url = format!("ssl://127.0.0.1:{ssl}");
    jms_send(&jvm, &url, "queue:keytool", 20);
    jms_recv_all(&jvm, &url, "queue:keytool", 20);
}

#[test]
fn keytool_rsa_store_serves_jms_clients() {
    keytool_store_serves_jms("keytool-rsa");
}

#[test]
fn keytool_ec_store_serves_jms_clients() {
    keytool_store_serves_jms("keytool-ec");
}

// ---------------------------------------------------------------------------------
// 2. SCENARIOS S1 over TLS

/// A pair whose nodes have `ssl://` connectors besides the harness's plain ones; the
/// slave reaches its master's `ssl://` connector. Holds a pair-test slot.
struct TlsPair {
    pair: Pair,
    master_ssl: u16,
    slave_ssl: u16,
    _slot: TestSlot,
}

impl TlsPair {
    fn start() -> TlsPair {
        let slot = test_slot();
        let (master_ssl, slave_ssl) = (free_port(), free_port());
        let mut mo = NodeOpts::named("master");
        mo.extra_connectors = vec![format!("ssl://127.0.0.1:{master_ssl}")];
        mo.broker_xml = Some(ca_sslcontext());
        let master = Node::spawn(mo);
        master.wait_serving(NODE_START_TIMEOUT);
        let mut so =
            NodeOpts::named("slave").slave_via("ssl", LOOPBACK, master_ssl, LinkStyle::Uri);
        so.extra_connectors = vec![format!("ssl://127.0.0.1:{slave_ssl}")];
        so.broker_xml = Some(ca_sslcontext());
        let slave = Node::spawn(so);
        let pair = Pair { master, slave };
        pair.wait_in_sync(SYNC_TIMEOUT);
        pair.slave
            .assert_ports_refused("while it is an in-sync slave");
        assert!(
            refuses(slave_ssl),
            "the in-sync slave's ssl:// port accepted a connection"
        );
        TlsPair {
            pair,
            master_ssl,
            slave_ssl,
            _slot: slot,
        }
    }
}

impl JmsPairTarget for TlsPair {
    fn failover_url(&self) -> String {
        format!(
            "failover:(ssl://127.0.0.1:{},ssl://127.0.0.1:{})?randomize=false",
            self.master_ssl, self.slave_ssl
        )
    }

    fn kill_master(&self) {
        self.pair.master.kill9();
    }

    fn jvm_options(&self) -> Vec<String> {
        trusting()
    }
}

/// SCENARIOS S1 with TLS everywhere a client or the slave connects: the replication
/// link over `ssl://` (the slave checks the master's certificate), the JMS failover URL
/// over `ssl://`; the master killed mid-stream; all 500 consumed from the slave.
#[test]
fn s1_queue_failover_over_ssl() {
    let target = TlsPair::start();
    cases::queue_failover(&target);
    let s = target.pair.slave.status();
    assert_eq!(role(&s), "master", "{s}");
}

/// The master's `ssl://` connector needs client certificates: a slave with the
/// CA-signed key store presents it and attaches (in sync); a slave with only a trust
/// store is refused during the handshake, never attaches, and says why in its log.
#[test]
fn a_master_that_needs_client_auth_takes_only_a_slave_with_a_certificate() {
    let _slot = test_slot();
    let m = material();
    for with_key_store in [true, false] {
        let master_ssl = free_port();
        let mut mo = NodeOpts::named("master");
        mo.extra_connectors = vec![format!("ssl://127.0.0.1:{master_ssl}?needClientAuth=true")];
        mo.broker_xml = Some(ca_sslcontext());
        let master = Node::spawn(mo);
        master.wait_serving(NODE_START_TIMEOUT);
        let mut so =
            NodeOpts::named("slave").slave_via("ssl", LOOPBACK, master_ssl, LinkStyle::Uri);
        so.broker_xml = Some(if with_key_store {
            ca_sslcontext()
        } else {
            format!(
                "  <sslContext>\n    <sslContext trustStore=\"{}\" trustStorePassword=\"{PASSWORD}\"/>\n  </sslContext>\n",
                m.path("trust.p12").display()
            )
        });
        let slave = Node::spawn(so);
        if with_key_store {
            let pair = Pair { master, slave };
            pair.wait_in_sync(SYNC_TIMEOUT);
            continue;
        }
        let refused = poll_until(SYNC_TIMEOUT, || {
            slave.log().contains("TLS with the peer failed")
                && master.log().contains("TLS handshake failed")
        });
        assert!(
            refused,
            "no refusal seen; master log:\n{}\nslave log:\n{}",
            master.log_tail(20),
            slave.log_tail(20)
        );
        let s = master.status();
        assert_eq!(
            peer(&s),
            "none",
            "the master took a slave without a certificate: {s}"
        );
        assert!(
            s["tls"]["handshake_failures"].as_u64() >= Some(1),
            "the refusal is not counted in /status: {s}"
        );
        slave.assert_running();
        assert_eq!(role(&slave.status()), "slave");
    }
}

// ---------------------------------------------------------------------------------
// 3. STOMP over TLS

/// `openssl s_client` (checking the broker's certificate against ca.pem and
/// 127.0.0.1) speaks STOMP on `stomp+ssl://`, `stomp+nio+ssl://` and `auto+ssl://`:
/// CONNECTED, a receipted SEND read back by a plain client, a message sent by a plain
/// client delivered over TLS, DISCONNECT with a receipt. An s_client that trusts
/// only the foreign CA gets no STOMP session.
#[test]
fn stomp_over_tls_with_openssl_s_client() {
    let m = material();
    let ports = [free_port(), free_port(), free_port()];
    let schemes = ["stomp+ssl", "stomp+nio+ssl", "auto+ssl"];
    let broker = tls_broker(
        schemes
            .iter()
            .zip(ports)
            .map(|(s, p)| format!("{s}://127.0.0.1:{p}"))
            .collect(),
        ca_sslcontext(),
    );
    let ca = m.path("ca.pem");
    for (scheme, port) in schemes.iter().zip(ports) {
        let to_plain = format!("/queue/from-tls-{port}");
        let to_tls = format!("/queue/to-tls-{port}");
        let body = format!("over {scheme}");
        let mut plain = broker.client();
        plain.send_receipted(&to_tls, b"for the TLS client", "p1");

        let mut c = StompOverTls::connect(port, &ca, &[]);
        c.send(&stomp_connect());
        c.wait_for("CONNECTED\n", REPLY_TIMEOUT);
        c.send(&encode(
            "SEND",
            &[
                ("destination", &to_plain),
                ("persistent", "true"),
                ("receipt", "r1"),
            ],
            body.as_bytes(),
        ));
        c.wait_for("receipt-id:r1", REPLY_TIMEOUT);
        c.send(&encode(
            "SUBSCRIBE",
            &[("id", "s1"), ("destination", &to_tls), ("ack", "auto")],
            b"",
        ));
        c.wait_for("for the TLS client", REPLY_TIMEOUT);
        assert!(c.received().contains("MESSAGE\n"), "{}", c.received());
        c.send(&encode("DISCONNECT", &[("receipt", "bye")], b""));
        c.wait_for("receipt-id:bye", REPLY_TIMEOUT);
        c.finish();

        plain.subscribe("p", &to_plain, "auto");
        let f = plain.expect_message();
        assert_eq!(f.body_str(), body, "{scheme}: {f:?}");
    }
    let stderr = stomp_tls_refused(ports[0], &m.path("foreign-ca.pem"), &[]);
    assert!(
        stderr.to_lowercase().contains("verify"),
        "s_client did not say why: {stderr}"
    );
    // The broker serves on.
    stomp_tls_served(ports[0], &ca, &[]);
}

// ---------------------------------------------------------------------------------
// 4. Mutual TLS

/// `?needClientAuth=true`: a JMS client presenting a CA-signed certificate is served;
/// one without a key store, or with the foreign CA's certificate, is refused; the same
/// for STOMP with s_client. After every refusal a good client is served.
///
/// The JVM's key manager offers only a certificate whose issuer is among the CAs the
/// broker's CertificateRequest names, so the JMS client with the foreign key store
/// sends no certificate at all (the broker logs "peer sent no certificates"); s_client
/// presents the foreign certificate as given, so the STOMP case is the one that has
/// the broker check and refuse a foreign certificate.
#[test]
fn need_client_auth_serves_only_ca_signed_clients() {
    let m = material();
    let (ssl, stomp_ssl) = (free_port(), free_port());
    let broker = tls_broker(
        vec![
            format!("ssl://127.0.0.1:{ssl}?needClientAuth=true"),
            format!("stomp+ssl://127.0.0.1:{stomp_ssl}?needClientAuth=true"),
        ],
        ca_sslcontext(),
    );
    let url = format!("ssl://127.0.0.1:{ssl}");
    let trust = m.path("trust.p12");
    let good = jvm_identity(&trust, &m.path("app.p12"));
    let foreign = jvm_identity(&trust, &m.path("foreign-app.p12"));

    jms_send(&good, &url, "queue:mtls", 10);
    jms_refused(&jvm_trust(&trust), &url);
    jms_served(&good, &url);
    jms_refused(&foreign, &url);
    jms_recv_all(&good, &url, "queue:mtls", 10);

    let ca = m.path("ca.pem");
    let (app_pem, app_key) = (m.file("app.pem"), m.file("app.key"));
    let (f_pem, f_key) = (m.file("foreign-app.pem"), m.file("foreign-app.key"));
    let with_app = ["-cert", app_pem.as_str(), "-key", app_key.as_str()];
    let with_foreign = ["-cert", f_pem.as_str(), "-key", f_key.as_str()];
    stomp_tls_served(stomp_ssl, &ca, &with_app);
    stomp_tls_refused(stomp_ssl, &ca, &[]);
    stomp_tls_served(stomp_ssl, &ca, &with_app);
    stomp_tls_refused(stomp_ssl, &ca, &with_foreign);
    stomp_tls_served(stomp_ssl, &ca, &with_app);
    wait_log(&broker, "TLS handshake failed");
}

/// `?wantClientAuth=true`: a client without a certificate is served, one with a
/// CA-signed certificate too; one presenting the foreign CA's certificate is refused,
/// and the broker serves on. The foreign certificate is presented with s_client: the
/// JVM would not offer it (see [`need_client_auth_serves_only_ca_signed_clients`]) and
/// would be served without one.
#[test]
fn want_client_auth_serves_without_a_certificate_and_refuses_a_foreign_one() {
    let m = material();
    let (ssl, stomp_ssl) = (free_port(), free_port());
    let broker = tls_broker(
        vec![
            format!("ssl://127.0.0.1:{ssl}?wantClientAuth=true"),
            format!("stomp+ssl://127.0.0.1:{stomp_ssl}?wantClientAuth=true"),
        ],
        ca_sslcontext(),
    );
    let url = format!("ssl://127.0.0.1:{ssl}");
    let trust = m.path("trust.p12");
    jms_send(&jvm_trust(&trust), &url, "queue:want", 10);
    jms_recv_all(
        &jvm_identity(&trust, &m.path("app.p12")),
        &url,
        "queue:want",
        10,
    );

    let ca = m.path("ca.pem");
    let (app_pem, app_key) = (m.file("app.pem"), m.file("app.key"));
    let (f_pem, f_key) = (m.file("foreign-app.pem"), m.file("foreign-app.key"));
    stomp_tls_served(stomp_ssl, &ca, &[]);
    stomp_tls_served(stomp_ssl, &ca, &["-cert", &app_pem, "-key", &app_key]);
    stomp_tls_refused(stomp_ssl, &ca, &["-cert", &f_pem, "-key", &f_key]);
    stomp_tls_served(stomp_ssl, &ca, &[]);
    jms_served(&jvm_trust(&trust), &url);
    wait_log(&broker, "TLS handshake failed");
}

// ---------------------------------------------------------------------------------
// 5. Plain text on a TLS port

/// Writes `bytes` to 127.0.0.1:`port` and reads until the broker closes the
/// connection; returns what it sent. Panics if it is still open after
/// [`REPLY_TIMEOUT`].
fn plain_bytes_until_closed(port: u16, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(bytes).expect("write");
    s.set_read_timeout(Some(REPLY_TIMEOUT)).expect("timeout");
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    for _ in 0..10_000 {
        match s.read(&mut chunk) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
                ) =>
            {
                return got
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("plain client on TLS port {port}: still open ({e}); got {got:?}"),
        }
    }
    panic!("plain client on TLS port {port}: no end; got {got:?}");
}

/// Asserts `reply` (what a plain-text client got) is a TLS alert record, not a reply in
/// the client's protocol (README: "gets a TLS alert and is closed").
#[track_caller]
fn assert_tls_alert(reply: &[u8], what: &str) {
    assert!(
        reply.len() >= 7 && reply[0] == 0x15 && reply[1] == 0x03,
        "{what}: expected a TLS alert record, got {reply:?} ({:?})",
        String::from_utf8_lossy(reply)
    );
}

/// A plain STOMP CONNECT on `stomp+ssl://` and the opening of an OpenWire
/// WireFormatInfo on `ssl://` are answered with a TLS alert and closed; the broker
/// keeps serving TLS clients on both, and logs "TLS handshake failed".
#[test]
fn plain_text_on_a_tls_port_is_closed_and_tls_clients_are_served_on() {
    let m = material();
    let (ssl, stomp_ssl) = (free_port(), free_port());
    let broker = tls_broker(
        vec![
            format!("ssl://127.0.0.1:{ssl}"),
            format!("stomp+ssl://127.0.0.1:{stomp_ssl}"),
        ],
        ca_sslcontext(),
    );
    let reply = plain_bytes_until_closed(stomp_ssl, &stomp_connect());
    assert_tls_alert(&reply, "STOMP CONNECT on stomp+ssl");
    // size, WIREFORMAT_INFO (1), the magic, version 12.
    let mut wire_format_info = vec![0, 0, 0, 13, 1];
    wire_format_info.extend_from_slice(b"ActiveMQ");
    wire_format_info.extend_from_slice(&[0, 0, 0, 12]);
    let reply = plain_bytes_until_closed(ssl, &wire_format_info);
    assert_tls_alert(&reply, "OpenWire WireFormatInfo on ssl");

    stomp_tls_served(stomp_ssl, &m.path("ca.pem"), &[]);
    let url = format!("ssl://127.0.0.1:{ssl}");
    jms_send(&trusting(), &url, "queue:after-plain", 5);
    jms_recv_all(&trusting(), &url, "queue:after-plain", 5);
    wait_log(&broker, "TLS handshake failed");
    // The plain connector was not disturbed either.
    broker.client().send_receipted("/queue/plain", b"x", "r");
}

// ---------------------------------------------------------------------------------
// 6. A slave refuses a master it cannot verify

/// A master serving `ssl://` with `master_store` (trusting the test CA), and a slave
/// of it over `ssl://127.0.0.1` with the CA-signed broker store and `slave_trust`;
/// the slave must not attach. Watches [`REFUSED_ATTEMPTS`] refused handshakes at the
/// master, asserting at every step that the slave's client ports stay closed, that it
/// never reports a synced peer or the master role, and that the master counts no
/// slave; then kills the master: the slave still does not serve. Last, the slave's log
/// must say why (the certificate).
fn slave_refuses_master(master_store: &str, slave_trust: &str) {
    let _slot = test_slot();
    let m = material();
    let (master_ssl, slave_ssl) = (free_port(), free_port());
    let mut mo = NodeOpts::named("master");
    mo.extra_connectors = vec![format!("ssl://127.0.0.1:{master_ssl}")];
    mo.broker_xml = Some(sslcontext_xml(
        &m.path(master_store),
        Some(&m.path("trust.p12")),
    ));
    let master = Node::spawn(mo);
    master.wait_serving(NODE_START_TIMEOUT);
    let mut so = NodeOpts::named("slave").slave_via("ssl", LOOPBACK, master_ssl, LinkStyle::Uri);
    so.extra_connectors = vec![format!("ssl://127.0.0.1:{slave_ssl}")];
    so.broker_xml = Some(sslcontext_xml(
        &m.path("broker.p12"),
        Some(&m.path(slave_trust)),
    ));
    let slave = Node::spawn(so);

    let refusals = || master.log().matches("TLS handshake failed").count();
    let check = |when: &str| {
        slave.assert_ports_refused(when);
        assert!(refuses(slave_ssl), "slave's ssl:// port open {when}");
        if let Some(s) = slave.try_status() {
            assert_ne!(role(&s), "master", "slave serves {when}: {s}");
            assert!(
                !matches!(peer(&s), "in-sync" | "syncing"),
                "slave attached {when}: {s}"
            );
        }
    };
    let seen = poll_until(SYNC_TIMEOUT, || {
        check("while its master's certificate is refused");
        // Serving alone: "standalone" (no slave ever attached) or "master".
        let s = master.status();
        assert!(matches!(role(&s), "standalone" | "master"), "{s}");
        assert_eq!(
            peer(&s),
            "none",
            "master counted a slave it should not have: {s}"
        );
        refusals() >= REFUSED_ATTEMPTS
    });
    assert!(
        seen,
        "the master saw {} refused handshakes within {SYNC_TIMEOUT:?}; master log:\n{}\nslave log:\n{}",
        refusals(),
        master.log_tail(30),
        slave.log_tail(30)
    );
    slave.assert_running();
    let s = slave.status();
    assert_eq!(role(&s), "slave", "{s}");

    // The master dies: the slave that never attached must not serve.
    master.kill9();
    let stopped = poll_until(Duration::from_secs(3), || {
        check("after the master died");
        slave.try_exit_status().is_some()
    });
    assert!(!stopped, "slave exited: {}", slave.log_tail(30));

    let says_why = slave
        .log()
        .lines()
        .any(|l| l.to_lowercase().contains("certificate"));
    assert!(
        says_why,
        "the slave's log does not say why it cannot attach (the certificate):\n{}",
        slave.log_tail(40)
    );
}

/// The slave trusts only the foreign CA: the master's certificate does not verify.
#[test]
fn slave_refuses_a_master_signed_by_an_unknown_ca() {
    slave_refuses_master("broker.p12", "foreign-trust.p12");
}

/// The master's certificate is the CA's but names only `localhost`; the slave dials
/// 127.0.0.1.
#[test]
fn slave_refuses_a_master_certificate_without_the_address_it_dials() {
    slave_refuses_master("localhost-only.p12", "trust.p12");
}

// ---------------------------------------------------------------------------------
// 7. Startup errors

/// Runs a broker whose configuration has an `ssl://` connector, `<broker>` children
/// `xml` and `<tandem>` attributes `tandem`; it must exit non-zero; returns its stderr.
fn startup_error(xml: Option<String>, tandem: Option<String>) -> (ExitStatus, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    let opts = BrokerOpts {
        extra_connectors: vec![format!("ssl://127.0.0.1:{}", free_port())],
        broker_xml: xml,
        tandem_extra: tandem,
        ..BrokerOpts::default()
    };
    let config = dir.path().join("broker.xml");
    std::fs::write(&config, config_xml(&opts, free_port(), &data)).expect("config");
    run_to_exit(
        &[
            "--config".as_ref(),
            config.as_os_str(),
            "--data-dir".as_ref(),
            data.as_os_str(),
        ],
        EXIT_TIMEOUT,
    )
}

/// Asserts a failed start: non-zero exit, and apart from log lines (timestamped)
/// exactly one line, naming `file` and containing `reason` (case-insensitive).
#[track_caller]
fn assert_one_line_naming(result: (ExitStatus, String), file: &Path, reason: &str) {
    let (status, stderr) = result;
    assert!(!status.success(), "exit {status}; stderr:\n{stderr}");
    let is_log = |l: &str| l.len() > 4 && l[..4].bytes().all(|b| b.is_ascii_digit());
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty() && !is_log(l))
        .collect();
    assert_eq!(lines.len(), 1, "expected one error line; stderr:\n{stderr}");
    let file = file.display().to_string();
    assert!(
        lines[0].contains(&file),
        "the error line does not name {file}: {stderr}"
    );
    assert!(
        lines[0].to_lowercase().contains(&reason.to_lowercase()),
        "the error line does not say {reason:?}: {stderr}"
    );
}

/// Writes a self-signed certificate for localhost valid from `from` to `to` (years, 1
/// January) and its key as PEM into `dir`: (certificate, key).
fn rcgen_certificate(dir: &Path, from: i32, to: i32) -> (std::path::PathBuf, std::path::PathBuf) {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    params.not_before = rcgen::date_time_ymd(from, 1, 1);
    params.not_after = rcgen::date_time_ymd(to, 1, 1);
    let cert = params.self_signed(&key).expect("certificate");
    let (c, k) = (
        dir.join(format!("cert-{from}-{to}.pem")),
        dir.join(format!("key-{from}-{to}.pem")),
    );
    std::fs::write(&c, cert.pem()).expect("write");
    std::fs::write(&k, key.serialize_pem()).expect("write");
    (c, k)
}

#[test]
fn startup_refuses_a_wrong_key_store_password() {
    let m = material();
    let store = m.path("broker.p12");
    let xml = sslcontext_xml_with(&store, "not-the-password", Some(&m.path("trust.p12")));
    assert_one_line_naming(startup_error(Some(xml), None), &store, "password");
}

#[test]
fn startup_refuses_a_wrong_trust_store_password() {
    let m = material();
    let trust = m.path("trust.p12");
    let xml = format!(
        "  <sslContext>\n    <sslContext keyStore=\"{}\" keyStorePassword=\"{PASSWORD}\" trustStore=\"{}\" trustStorePassword=\"wrong\"/>\n  </sslContext>\n",
        m.path("broker.p12").display(),
        trust.display()
    );
    assert_one_line_naming(startup_error(Some(xml), None), &trust, "password");
}

#[test]
fn startup_refuses_a_jks_key_store() {
    let m = material();
    let store = m.path("broker.jks");
    let xml = sslcontext_xml(&store, None);
    assert_one_line_naming(startup_error(Some(xml), None), &store, "JKS");
}

#[test]
fn startup_refuses_a_missing_key_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("no-such-store.p12");
    let xml = sslcontext_xml(&store, None);
    assert_one_line_naming(startup_error(Some(xml), None), &store, "no such file");
}

#[test]
fn startup_refuses_an_expired_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = rcgen_certificate(dir.path(), 2000, 2001);
    let attrs = pem_tandem_attrs(&cert, &key, None);
    assert_one_line_naming(startup_error(None, Some(attrs)), &cert, "expired");
}

#[test]
fn startup_refuses_a_certificate_not_yet_valid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = rcgen_certificate(dir.path(), 2090, 2091);
    let attrs = pem_tandem_attrs(&cert, &key, None);
    assert_one_line_naming(startup_error(None, Some(attrs)), &cert, "not valid before");
}

#[test]
fn startup_refuses_a_key_that_is_not_the_certificates() {
    let m = material();
    let cert = m.path("broker.pem");
    let attrs = pem_tandem_attrs(&cert, &m.path("app.key"), Some(&m.path("ca.pem")));
    assert_one_line_naming(
        startup_error(None, Some(attrs)),
        &cert,
        "cannot be used with this certificate",
    );
}

#[test]
fn startup_refuses_a_missing_pem_file() {
    let m = material();
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("no-such.key");
    let attrs = pem_tandem_attrs(&m.path("broker.pem"), &key, None);
    assert_one_line_naming(startup_error(None, Some(attrs)), &key, "no such file");
}
