//! TLS halves over loopback on one executor: plaintext both ways (more than one TLS
//! record's worth), peek then read, a detach/attach mid-session, a close seen as
//! end of stream, and a plain-text peer refused.

use std::sync::Arc;

use rcgen::{CertificateParams, KeyPair};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};

use crate::rt::net::{accept_tls, attach, connect, connect_tls, BoundListener};
use crate::rt::run_local;

#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn configs() -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
    let key = KeyPair::generate().expect("key");
    let cert = CertificateParams::new(vec!["localhost".to_string()])
        .expect("params")
        .self_signed(&key)
        .expect("cert");
    let der = CertificateDer::from(cert.der().to_vec());
    let server = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![der.clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .expect("server config");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der).expect("root");
    let client = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    (Arc::new(server), Arc::new(client))
}

fn localhost() -> ServerName<'static> {
    ServerName::try_from("localhost").expect("name")
}

#[test]
fn plaintext_flows_both_ways_through_peek_and_a_hand_over() {
    let (server, client) = configs();
    run_local(async move {
        let bound = BoundListener::bind("127.0.0.1:0".parse().expect("addr"), 16).expect("bind");
        let addr = bound.local_addr().expect("addr");
        let listener = bound.into_listener();
        let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let expected = big.clone();
        let serve = glommio::spawn_local(async move {
            let (rd, wr, _) = listener.accept().await.expect("accept");
            let (mut rd, wr) = accept_tls(rd, wr, server).await.expect("handshake");
            let mut first = [0u8; 5];
            let n = rd.peek(&mut first).await.expect("peek");
            assert_eq!(&first[..n], &b"hello"[..n]);
            // Move the session as the replication hand-off does.
            let detached = rd.detach(wr).expect("detach");
            assert!(detached.is_tls());
            let (mut rd, mut wr) = attach(detached).expect("attach");
            let mut got = Vec::new();
            let mut chunk = vec![0u8; 7000];
            while got.len() < 5 + expected.len() {
                let n = rd.read(&mut chunk).await.expect("read");
                assert!(n > 0, "closed early after {} bytes", got.len());
                got.extend_from_slice(&chunk[..n]);
            }
            assert_eq!(&got[..5], b"hello");
            assert_eq!(&got[5..], &expected[..]);
            wr.write_all(b"bye").await.expect("write");
            wr.shutdown().await;
        });
        let (mut rd, mut wr) = connect_tls(addr, client, localhost())
            .await
            .expect("connect");
        wr.write_all(b"hello").await.expect("write");
        wr.write_all(&big).await.expect("write");
        let mut reply = Vec::new();
        let mut chunk = [0u8; 16];
        loop {
            let n = rd.read(&mut chunk).await.expect("read");
            if n == 0 {
                break;
            }
            reply.extend_from_slice(&chunk[..n]);
        }
        assert_eq!(reply, b"bye");
        serve.await;
    });
}

#[test]
fn a_plain_text_peer_fails_the_handshake_and_a_wrong_name_is_refused() {
    let (server, client) = configs();
    run_local(async move {
        let bound = BoundListener::bind("127.0.0.1:0".parse().expect("addr"), 16).expect("bind");
        let addr = bound.local_addr().expect("addr");
        let listener = bound.into_listener();
        let serve = glommio::spawn_local(async move {
            let mut outcomes = Vec::new();
            for _ in 0..2 {
                let (rd, wr, _) = listener.accept().await.expect("accept");
                outcomes.push(accept_tls(rd, wr, server.clone()).await.is_ok());
            }
            outcomes
        });
        let (mut rd, mut wr) = connect(addr).await.expect("connect");
        wr.write_all(b"CONNECT\naccept-version:1.2\n\n\0")
            .await
            .expect("write");
        // The server answers garbage with an alert and closes.
        let mut buf = [0u8; 64];
        while rd.read(&mut buf).await.map(|n| n > 0).unwrap_or(false) {}
        let wrong = ServerName::try_from("elsewhere.example").expect("name");
        let refused = connect_tls(addr, client, wrong).await;
        assert!(
            refused.is_err(),
            "a certificate for another name must be refused"
        );
        assert_eq!(serve.await, vec![false, false]);
    });
}
