//! The clients over TLS, against a tiny blocking rustls STOMP server in the test (a
//! thread per connection: CONNECTED, RECEIPTs, MESSAGEs for its subscriptions), with
//! certificates made here by rcgen: a session works (with heart-beats written by the
//! I/O thread while callers write), and the client refuses a broker whose certificate
//! its CA did not sign, a host name not in the certificate, a TLS URL without a CA, and
//! a broker that never finishes the handshake.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

use super::failover::connect;
use super::openwire::{Client as OwClient, OpenWireOptions};
use super::{AckMode, Client, ClientError, ClientOptions};
use crate::config::{ClientAuth, TlsIdentity, TlsSettings, TlsTrust};
use crate::net::tls::{client_config, server_config};
use crate::protocol::stomp::{encode, Command, DecodedItem, Decoder, Frame, Version};
use crate::uri::TransportUri;

/// How long any server thread waits for a connection or a byte.
const SERVER_PATIENCE: Duration = Duration::from_secs(10);

/// Two CAs, a server certificate for `localhost` and `127.0.0.1` signed by each, and a
/// client certificate signed by the first, as PEM files.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().expect("tempdir");
        for ca_name in ["ca", "other-ca"] {
            let ca_key = KeyPair::generate().expect("ca key");
            let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
            ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            // Distinct names, as real CAs have (else the chain check finds the wrong CA
            // by name and reports a bad signature instead of an unknown issuer).
            ca_params
                .distinguished_name
                .push(DnType::CommonName, format!("Tandem test {ca_name}"));
            let ca = ca_params.self_signed(&ca_key).expect("ca");
            let issuer = Issuer::new(ca_params, ca_key);
            let write = |name: &str, text: String| {
                std::fs::write(dir.path().join(format!("{ca_name}-{name}")), text).expect("write")
            };
            write("root.pem", ca.pem());
            for (leaf, names) in [
                (
                    "server",
                    vec!["localhost".to_string(), "127.0.0.1".to_string()],
                ),
                ("client", vec!["tandem-load".to_string()]),
            ] {
                let key = KeyPair::generate().expect("key");
                let cert = CertificateParams::new(names)
                    .expect("params")
                    .signed_by(&key, &issuer)
                    .expect("cert");
                write(&format!("{leaf}.pem"), cert.pem());
                write(&format!("{leaf}.key"), key.serialize_pem());
            }
        }
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn identity(&self, ca: &str, leaf: &str) -> TlsIdentity {
        TlsIdentity::Pem {
            certificate: self.path(&format!("{ca}-{leaf}.pem")),
            private_key: self.path(&format!("{ca}-{leaf}.key")),
        }
    }

    /// What a client trusting `ca` uses; `mutual`: it presents `ca`'s client certificate.
    fn client(&self, ca: &str, mutual: bool) -> Arc<rustls::ClientConfig> {
        client_config(&TlsSettings {
            identity: mutual.then(|| self.identity(ca, "client")),
            trust: Some(TlsTrust::Pem {
                ca: self.path(&format!("{ca}-root.pem")),
            }),
        })
        .expect("client config")
    }

    /// A server presenting `ca`'s server certificate; with `auth` beyond None it wants
    /// client certificates signed by `ca`.
    fn server(&self, ca: &str, auth: ClientAuth) -> Arc<rustls::ServerConfig> {
        let settings = TlsSettings {
            identity: Some(self.identity(ca, "server")),
            trust: Some(TlsTrust::Pem {
                ca: self.path(&format!("{ca}-root.pem")),
            }),
        };
        server_config(&settings, auth).expect("server config")
    }
}

/// A STOMP-over-TLS server on 127.0.0.1:0 serving `connections` connections, then done.
struct Server {
    port: u16,
    thread: JoinHandle<Vec<String>>,
}

impl Server {
    fn start(config: Arc<rustls::ServerConfig>, connections: usize) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + SERVER_PATIENCE;
            let mut served = Vec::new();
            while served.len() < connections && Instant::now() < deadline {
                match listener.accept() {
                    Ok((sock, _)) => {
                        let config = Arc::clone(&config);
                        served.push(std::thread::spawn(move || serve(sock, config)));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            served
                .into_iter()
                .map(|t| t.join().unwrap_or_else(|_| "panicked".into()))
                .collect()
        });
        Server { port, thread }
    }

    /// How each connection ended, in accept order.
    fn outcomes(self) -> Vec<String> {
        self.thread.join().expect("server thread")
    }
}

/// One connection: TLS, then STOMP until DISCONNECT or the end. Returns how it ended.
fn serve(sock: TcpStream, config: Arc<rustls::ServerConfig>) -> String {
    let _ = sock.set_nonblocking(false);
    let _ = sock.set_read_timeout(Some(SERVER_PATIENCE));
    let conn = rustls::ServerConnection::new(config).expect("server connection");
    let mut tls = rustls::StreamOwned::new(conn, sock);
    let mut decoder = Decoder::default();
    let mut buf = BytesMut::new();
    let mut chunk = [0u8; 16 * 1024];
    let mut subscriptions: Vec<(String, String)> = Vec::new();
    let mut next_message = 0u64;
    loop {
        loop {
            let frame = match decoder.decode(&mut buf) {
                Ok(Some(DecodedItem::Frame(f))) => f,
                Ok(Some(DecodedItem::HeartBeat)) => continue,
                Ok(None) => break,
                Err(e) => return format!("bad frame: {e}"),
            };
            let mut out = BytesMut::new();
            match frame.command {
                Command::Connect | Command::Stomp => {
                    decoder.set_version(Version::V1_2);
                    // We want a heart-beat every 50 ms: the client's I/O thread writes
                    // them while its callers write frames.
                    let reply = Frame::connected(Version::V1_2).with_header("heart-beat", "0,50");
                    encode(&reply, Version::V1_2, &mut out);
                }
                Command::Subscribe => subscriptions.push((
                    frame.header("id").unwrap_or_default().to_string(),
                    frame.header("destination").unwrap_or_default().to_string(),
                )),
                Command::Send => {
                    let dest = frame.header("destination").unwrap_or_default();
                    for (id, _) in subscriptions.iter().filter(|(_, d)| d == dest) {
                        next_message += 1;
                        let m = Frame::message(dest, &format!("m-{next_message}"))
                            .with_header("subscription", id.as_str())
                            .with_body(frame.body.clone());
                        encode(&m, Version::V1_2, &mut out);
                    }
                }
                _ => {}
            }
            if let Some(r) = frame.header("receipt") {
                encode(&Frame::receipt(r), Version::V1_2, &mut out);
            }
            if let Err(e) = tls.write_all(&out) {
                return format!("write: {e}");
            }
            if frame.command == Command::Disconnect {
                return "disconnected".into();
            }
        }
        match tls.read(&mut chunk) {
            Ok(0) => return "closed".into(),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return format!("read: {e}"),
        }
    }
}

fn opts(tls: Option<Arc<rustls::ClientConfig>>) -> ClientOptions {
    ClientOptions {
        heartbeat_ms: (50, 0),
        connect_timeout: Duration::from_secs(5),
        receipt_timeout: Duration::from_secs(10),
        tls,
        ..ClientOptions::default()
    }
}

/// Subscribes, pipelines `n` sends (heart-beats flow meanwhile), receives them all;
/// then one message of many TLS records (rustls buffers 64 KiB of them per write).
fn round_trip(c: &Client, n: usize) {
    c.subscribe("/queue/tls", AckMode::Auto, &[])
        .expect("subscribe");
    let pending: Vec<_> = (0..n)
        .map(|i| {
            c.send_async("/queue/tls", format!("body {i}").as_bytes(), &[])
                .expect("send")
        })
        .collect();
    for p in pending {
        p.wait(Duration::from_secs(10)).expect("receipt");
    }
    for i in 0..n {
        let m = c
            .recv(Duration::from_secs(10))
            .expect("recv")
            .expect("a message in time");
        assert_eq!(&m.body[..], format!("body {i}").as_bytes());
    }
    let big: Vec<u8> = (0..300 * 1024).map(|i| (i % 251) as u8).collect();
    c.send("/queue/tls", &big, &[]).expect("send big");
    let m = c
        .recv(Duration::from_secs(10))
        .expect("recv")
        .expect("the big message in time");
    assert!(m.body[..] == big[..], "300 KiB body differs");
}

#[test]
fn stomp_client_works_over_tls_by_name_by_ip_and_with_failover() {
    let pki = Pki::new();
    let server = Server::start(pki.server("ca", ClientAuth::None), 2);
    let p = server.port;
    let c = Client::connect(
        &format!("stomp+ssl://localhost:{p}"),
        opts(Some(pki.client("ca", false))),
    )
    .expect("connect by name");
    round_trip(&c, 300);
    c.close().expect("close");
    let c = Client::connect(
        &format!("failover:(stomp+ssl://127.0.0.1:{p},stomp+ssl://localhost:{p})?randomize=false"),
        opts(Some(pki.client("ca", false))),
    )
    .expect("connect by IP, failover");
    round_trip(&c, 10);
    c.close().expect("close");
    assert_eq!(server.outcomes(), ["disconnected", "disconnected"]);
}

#[test]
fn mutual_tls_presents_the_client_certificate() {
    let pki = Pki::new();
    let server = Server::start(pki.server("ca", ClientAuth::Need), 2);
    let url = format!("stomp+ssl://localhost:{}", server.port);
    let c = Client::connect(&url, opts(Some(pki.client("ca", true)))).expect("connect");
    round_trip(&c, 5);
    c.close().expect("close");
    // Without a certificate the server refuses (in TLS 1.3 after the client's side of
    // the handshake is done, so the client may see CONNECT fail rather than the
    // handshake).
    let e = Client::connect(&url, opts(Some(pki.client("ca", false))))
        .err()
        .expect("refused");
    assert!(matches!(e, ClientError::Connect { .. }), "{e}");
    let outcomes = server.outcomes();
    assert_eq!(outcomes[0], "disconnected");
    assert!(outcomes[1].contains("certificate"), "{outcomes:?}");
}

#[test]
fn a_broker_certificate_not_signed_by_the_ca_is_refused() {
    let pki = Pki::new();
    let server = Server::start(pki.server("other-ca", ClientAuth::None), 2);
    let url = format!("stomp+ssl://localhost:{}", server.port);
    match Client::connect(&url, opts(Some(pki.client("ca", false)))) {
        Err(ClientError::Connect { reason, .. }) => {
            assert!(reason.contains("UnknownIssuer"), "{reason}");
            assert!(reason.contains("not signed by the CA"), "{reason}");
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
    let ow = OpenWireOptions {
        tls: Some(pki.client("ca", false)),
        connect_timeout: Duration::from_secs(5),
        ..OpenWireOptions::default()
    };
    let url = format!("ssl://127.0.0.1:{}", server.port);
    match OwClient::connect(&url, ow) {
        Err(ClientError::Connect { reason, .. }) => {
            assert!(reason.contains("UnknownIssuer"), "{reason}")
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
    // The server heard why (the client's alert).
    for outcome in server.outcomes() {
        assert!(outcome.contains("UnknownCA"), "{outcome}");
    }
}

#[test]
fn a_host_name_not_in_the_certificate_is_refused() {
    let pki = Pki::new();
    let server = Server::start(pki.server("ca", ClientAuth::None), 1);
    // The address is the server's; the name, which the certificate is checked
    // against, is not one of its names (`localhost`, `127.0.0.1`).
    let mut uri =
        TransportUri::parse(&format!("stomp+ssl://127.0.0.1:{}", server.port)).expect("uri");
    uri.host = "broker.example".into();
    let config = pki.client("ca", false);
    let e = connect(&uri, Duration::from_secs(5), Some(&config))
        .err()
        .expect("refused");
    assert!(e.reason.contains("not valid for name"), "{}", e.reason);
    assert!(
        e.reason.contains("host as written in the URL"),
        "{}",
        e.reason
    );
    assert!(!e.refused, "a failed attempt, tried again under failover");
    drop(server.outcomes());
}

#[test]
fn a_tls_url_without_a_ca_is_refused_before_connecting() {
    // Port 1: nothing listens; the error must come before any attempt.
    let url = "failover:(stomp://127.0.0.1:1,stomp+ssl://127.0.0.1:1)?maxReconnectAttempts=-1";
    match Client::connect(url, opts(None)) {
        Err(e @ ClientError::TlsNotConfigured(_)) => {
            assert!(e.to_string().contains("CA file"), "{e}")
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
    for url in [
        "ssl://127.0.0.1:1",
        "failover:(tcp://127.0.0.1:1,nio+ssl://localhost:1)",
    ] {
        assert!(
            matches!(
                OwClient::connect(url, OpenWireOptions::default()),
                Err(ClientError::TlsNotConfigured(_))
            ),
            "{url}"
        );
    }
}

#[test]
fn a_handshake_that_does_not_finish_fails_within_the_connect_timeout() {
    // Accepts and never says a word.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let held = std::thread::spawn(move || listener.accept().map(|(s, _)| s));
    let pki = Pki::new();
    let mut o = opts(Some(pki.client("ca", false)));
    o.connect_timeout = Duration::from_millis(300);
    let started = Instant::now();
    let e = Client::connect(&format!("stomp+ssl://127.0.0.1:{port}"), o)
        .err()
        .expect("no handshake");
    let took = started.elapsed();
    assert!(
        e.to_string().contains("TLS handshake not done in time"),
        "{e}"
    );
    assert!(took < Duration::from_secs(2), "{took:?}");
    drop(held.join());
}
