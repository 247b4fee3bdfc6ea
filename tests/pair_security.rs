//! The replication link against an attacker on the same network (issue 10, design
//! SCENARIOS.md A1 and F4): real `tandem` processes on loopback, and a raw replication
//! peer written here with the crate's own frame codec and proofs.
//!
//! * (a) a forged Hello with a huge epoch, old and new format, to a standalone broker
//!   and to a master: refused, nothing changes, and (f) a restart brings the node back
//!   as it was;
//! * (b) an unauthenticated peer takes no slot and receives no message byte;
//! * (c) an authenticated peer that stops acknowledging is dropped within
//!   `replicationAckTimeout` and receipts keep flowing;
//! * (d) an acknowledgement beyond what was shipped closes the link;
//! * (e) a proof captured from a real handshake and replayed is refused;
//! * (g) a slave with a wrong secret is refused, says so, and never serves.

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use support::pair::{
    depth, epoch, is_master_in_sync, is_slave_in_sync, peer, role, test_slot, LinkStyle, Node,
    NodeOpts, NODE_START_TIMEOUT, SYNC_TIMEOUT, TEST_REPLICATION_SECRET,
};
use support::{poll_until, REPLY_TIMEOUT};
use tandem::replication::auth::{self, Key, Nonces};
use tandem::replication::frame::{self, Body, Decoder, Frame, PROOF_BYTES, VERSION};

/// Bound on a refused or dropped link being closed by the node.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on the master noticing a link problem.
const DETECT_TIMEOUT: Duration = Duration::from_secs(15);
const BODY_MARK: &str = "CONFIDENTIAL-BODY-";

// ---------------------------------------------------------------------------------
// A raw replication peer

struct RawPeer {
    s: TcpStream,
    buf: BytesMut,
    dec: Decoder,
    /// Every byte received from the node.
    got: Vec<u8>,
}

impl RawPeer {
    fn connect(port: u16) -> RawPeer {
        RawPeer::from_stream(TcpStream::connect(("127.0.0.1", port)).expect("connect"))
    }

    fn from_stream(s: TcpStream) -> RawPeer {
        RawPeer {
            s,
            buf: BytesMut::new(),
            dec: Decoder::default(),
            got: Vec::new(),
        }
    }

    fn send(&mut self, f: &Frame) {
        let mut b = BytesMut::new();
        frame::encode(f, &mut b);
        self.send_bytes(&b);
    }

    fn send_bytes(&mut self, b: &[u8]) {
        // The node may already have closed: that is an outcome the caller checks.
        let _ = self.s.write_all(b);
    }

    /// The next frame, or why there is none (closed, timeout, bad bytes).
    fn recv(&mut self, timeout: Duration) -> Result<Frame, String> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.dec.decode(&mut self.buf) {
                Ok(Some(f)) => return Ok(f),
                Ok(None) => {}
                Err(e) => return Err(format!("bad frame: {e}")),
            }
            let left = deadline
                .checked_duration_since(Instant::now())
                .ok_or("timeout")?;
            self.s
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .map_err(|e| e.to_string())?;
            let mut chunk = [0u8; 65536];
            match self.s.read(&mut chunk) {
                Ok(0) => return Err("closed".into()),
                Ok(n) => {
                    self.got.extend_from_slice(&chunk[..n]);
                    self.buf.extend_from_slice(&chunk[..n]);
                }
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => return Err("closed".into()),
            }
        }
    }

    /// Reads frames until the node closes the connection (bounded); returns them.
    fn frames_until_closed(&mut self, timeout: Duration) -> Vec<Frame> {
        let deadline = Instant::now() + timeout;
        let mut frames = Vec::new();
        loop {
            let left = deadline
                .checked_duration_since(Instant::now())
                .unwrap_or_else(|| panic!("link not closed within {timeout:?}: {frames:?}"));
            match self.recv(left) {
                Ok(f) => frames.push(f),
                Err(e) if e == "closed" => return frames,
                Err(e) if e == "timeout" => {
                    panic!("link not closed within {timeout:?}: {frames:?}")
                }
                Err(e) => panic!("{e}; frames so far: {frames:?}"),
            }
        }
    }
}

fn hello(user: &str, epoch: u64, nonce: [u8; 32]) -> Frame {
    Frame {
        epoch,
        body: Body::Hello {
            version: VERSION,
            user: user.into(),
            nonce,
        },
    }
}

fn proof_frame(epoch: u64, shards: usize, addr: &str) -> Frame {
    Frame {
        epoch,
        body: Body::Proof {
            proof: [0x5a; PROOF_BYTES],
            node_id: "666".into(),
            client_addrs: vec![addr.into()],
            positions: vec![0; shards],
        },
    }
}

/// A version-1 Hello of exactly 60 bytes with the given epoch (the format that made a
/// standalone broker exit before the link was authenticated).
fn old_hello_60(epoch: u64) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&0u32.to_le_bytes());
    b.push(1);
    b.extend_from_slice(&epoch.to_le_bytes());
    b.extend_from_slice(frame::MAGIC);
    b.extend_from_slice(&1u16.to_le_bytes()); // version 1
    b.extend_from_slice(&2u16.to_le_bytes()); // shards
    for s in ["", "", "bad"] {
        b.extend_from_slice(&(s.len() as u32).to_le_bytes());
        b.extend_from_slice(s.as_bytes());
    }
    b.extend_from_slice(&0u32.to_le_bytes()); // no addresses
    b.extend_from_slice(&0u64.to_le_bytes());
    b.extend_from_slice(&0u64.to_le_bytes());
    let len = (b.len() - 4) as u32;
    b[..4].copy_from_slice(&len.to_le_bytes());
    assert_eq!(b.len(), 60);
    b
}

/// Asserts `frames` is at most one unauthenticated Refuse: epoch 0, no proof.
fn assert_only_unauthenticated_refuse(frames: &[Frame], node: &Node) {
    assert!(frames.len() <= 1, "{}: answered {frames:?}", node.name());
    for f in frames {
        match &f.body {
            Body::Refuse { proof, .. } => {
                assert_eq!(
                    f.epoch, 0,
                    "a refusal to an unauthenticated peer told the epoch"
                );
                assert_eq!(proof, &[0; PROOF_BYTES]);
            }
            other => panic!(
                "{}: answered an unauthenticated peer with {other:?}",
                node.name()
            ),
        }
    }
}

/// Authenticates like a real slave (the test knows the pair's secret) and returns the
/// link with the master's Welcome.
fn authenticate(port: u16, shards: usize) -> (RawPeer, Frame) {
    let mut p = RawPeer::connect(port);
    let ns = auth::nonce().expect("nonce");
    p.send(&hello("", 0, ns));
    let nm = match p.recv(REPLY_TIMEOUT) {
        Ok(Frame {
            body: Body::Challenge { nonce },
            epoch: 0,
        }) => nonce,
        other => panic!("expected a Challenge at epoch 0: {other:?}"),
    };
    let n = Nonces {
        user: String::new(),
        slave: ns,
        master: nm,
    };
    let key = Key::new(TEST_REPLICATION_SECRET);
    let mut proof = proof_frame(0, shards, "127.0.0.1:9");
    auth::sign(&key, auth::SLAVE_LABEL, &n, &mut proof);
    p.send(&proof);
    let welcome = p.recv(REPLY_TIMEOUT).expect("Welcome");
    assert_eq!(
        auth::judge_answer(&key, &n, 0, shards, &welcome),
        auth::Answer::Welcomed,
        "{welcome:?}"
    );
    (p, welcome)
}

fn node_state(node: &Node) -> String {
    std::fs::read_to_string(node.data_dir().join("node.state")).expect("node.state")
}

fn epoch_of(node: &Node) -> u64 {
    epoch(&node.status()).expect("epoch")
}

fn log_has(node: &Node, words: &[&str], timeout: Duration) -> bool {
    poll_until(timeout, || {
        node.log().lines().any(|l| {
            let l = l.to_lowercase();
            words.iter().all(|w| l.contains(&w.to_lowercase()))
        })
    })
}

fn send_marked(node: &Node, dest: &str, n: usize) {
    let mut c = node.client();
    for i in 0..n {
        c.send_receipted(
            dest,
            format!("{BODY_MARK}{i:04}").as_bytes(),
            &format!("r{i}"),
        );
    }
}

/// The epoch a master with `epoch` takes when it serves again (`NodeState::next_epoch`).
fn next_epoch(epoch: u64) -> u64 {
    (((epoch >> 16) + 1) << 16) | (epoch & 0xffff)
}

// ---------------------------------------------------------------------------------
// (a) + (f)

/// Every forged Hello/Proof of this test against `node`; returns nothing, asserts the
/// answers carry nothing.
fn forge_everything(node: &Node) {
    // The 60-byte version-1 Hello with a huge epoch.
    let mut p = RawPeer::connect(node.tcp_port);
    p.send_bytes(&old_hello_60(u64::MAX));
    assert_only_unauthenticated_refuse(&p.frames_until_closed(CLOSE_TIMEOUT), node);
    // The same on the STOMP connector (every connector sniffs).
    let mut p = RawPeer::connect(node.stomp_port);
    p.send_bytes(&old_hello_60(u64::MAX - 1));
    assert_only_unauthenticated_refuse(&p.frames_until_closed(CLOSE_TIMEOUT), node);
    // A current Hello with a huge epoch, then a forged Proof with a huge epoch.
    let mut p = RawPeer::connect(node.tcp_port);
    p.send(&hello("admin", u64::MAX, [3; 32]));
    match p.recv(REPLY_TIMEOUT) {
        Ok(Frame {
            body: Body::Challenge { .. },
            epoch,
        }) => {
            assert_eq!(epoch, 0, "the Challenge told the epoch");
            p.send(&proof_frame(u64::MAX, 2, "127.0.0.1:1"));
            assert_only_unauthenticated_refuse(&p.frames_until_closed(CLOSE_TIMEOUT), node);
        }
        Ok(f) => assert_only_unauthenticated_refuse(&[f], node),
        Err(e) => assert_eq!(e, "closed"),
    }
}

#[test]
fn a_forged_hello_with_a_huge_epoch_changes_nothing_and_a_restart_finds_the_node_as_it_was() {
    let _slot = test_slot();
    let mut sopts = NodeOpts::named("standalone");
    sopts.replication_secret = None; // like config/broker.xml
    let standalone = Node::spawn(sopts);
    let master = Node::spawn(NodeOpts::named("master"));
    for node in [&standalone, &master] {
        node.wait_serving(NODE_START_TIMEOUT);
        send_marked(node, "/queue/a", 5);
    }
    for node in [&standalone, &master] {
        let epoch0 = epoch_of(node);
        let state0 = node_state(node);
        forge_everything(node);
        node.assert_running();
        let s = node.status();
        assert_eq!(epoch(&s), Some(epoch0), "{}: {s}", node.name());
        assert_eq!(peer(&s), "none", "{}: {s}", node.name());
        assert_eq!(
            node_state(node),
            state0,
            "{}: node.state changed",
            node.name()
        );
        assert!(
            log_has(node, &["replication handshake refused"], CLOSE_TIMEOUT),
            "{}: {}",
            node.name(),
            node.log_tail(30)
        );
        send_marked(node, "/queue/a", 5);
        node.wait_status(|s| depth(s, "/queue/a") == 10, REPLY_TIMEOUT);
    }
    // The standalone says why in its log.
    assert!(log_has(
        &standalone,
        &["refused", "replicationSecret"],
        CLOSE_TIMEOUT
    ));

    // (f) Restarted after the attack: the same node (its next epoch as master, its
    // peers as before, every message), serving.
    for node in [&standalone, &master] {
        let epoch0 = epoch_of(node);
        let peers0: Vec<String> = node_state(node)
            .lines()
            .filter(|l| l.starts_with("peer=") || l.starts_with("node="))
            .map(str::to_string)
            .collect();
        node.term();
        node.wait_exit(Duration::from_secs(30));
        node.restart();
        node.wait_serving(NODE_START_TIMEOUT);
        let s = node.status();
        assert_eq!(epoch(&s), Some(next_epoch(epoch0)), "{}: {s}", node.name());
        assert_ne!(role(&s), "slave", "{s}");
        let peers1: Vec<String> = node_state(node)
            .lines()
            .filter(|l| l.starts_with("peer=") || l.starts_with("node="))
            .map(str::to_string)
            .collect();
        assert_eq!(peers1, peers0, "{}", node.name());
        node.wait_status(|s| depth(s, "/queue/a") == 10, REPLY_TIMEOUT);
    }
}

// ---------------------------------------------------------------------------------
// (b)

#[test]
fn an_unauthenticated_peer_takes_no_slot_and_receives_no_message_byte() {
    let _slot = test_slot();
    let master = Node::spawn(NodeOpts::named("master"));
    master.wait_serving(NODE_START_TIMEOUT);
    send_marked(&master, "/queue/b", 20);
    let state0 = node_state(&master);
    for user in ["", "admin", "repl"] {
        let mut p = RawPeer::connect(master.tcp_port);
        p.send(&hello(user, 0, [7; 32]));
        let challenge = p.recv(REPLY_TIMEOUT).expect("Challenge");
        assert!(
            matches!(challenge.body, Body::Challenge { .. }),
            "{challenge:?}"
        );
        p.send(&proof_frame(1, 2, "127.0.0.1:1"));
        let frames = p.frames_until_closed(CLOSE_TIMEOUT);
        assert_only_unauthenticated_refuse(&frames, &master);
        assert!(
            !String::from_utf8_lossy(&p.got).contains(BODY_MARK),
            "message bytes reached an unauthenticated peer"
        );
        let s = master.status();
        assert_eq!(peer(&s), "none", "{s}");
    }
    assert_eq!(node_state(&master), state0, "node.state changed");
    assert!(log_has(
        &master,
        &["refused", "bad credentials"],
        CLOSE_TIMEOUT
    ));
    // The slot is free: a real slave attaches and gets every message.
    let slave = Node::spawn(NodeOpts::named("slave").slave_of(master.tcp_port, LinkStyle::Uri));
    let ok = poll_until(SYNC_TIMEOUT, || {
        master.try_status().is_some_and(|s| is_master_in_sync(&s))
            && slave.try_status().is_some_and(|s| is_slave_in_sync(&s))
    });
    assert!(ok, "real slave not in sync: {}", master.log_tail(30));
    slave.wait_status(|s| depth(s, "/queue/b") == 20, REPLY_TIMEOUT);
}

// ---------------------------------------------------------------------------------
// (c), (d)

#[test]
fn a_silent_authenticated_slave_is_dropped_within_the_ack_timeout_and_receipts_flow() {
    let _slot = test_slot();
    let mut mopts = NodeOpts::named("master");
    mopts.replication_ack_timeout_ms = Some(1000);
    let master = Node::spawn(mopts);
    master.wait_serving(NODE_START_TIMEOUT);
    send_marked(&master, "/queue/c", 3);
    let (mut p, welcome) = authenticate(master.tcp_port, 2);
    // Heartbeats at the link's epoch, never an Ack; everything shipped is read.
    let stop = Arc::new(AtomicBool::new(false));
    let beats = {
        let stop = stop.clone();
        let mut w = p.s.try_clone().expect("clone");
        let epoch = welcome.epoch;
        std::thread::spawn(move || {
            let mut b = BytesMut::new();
            frame::encode(
                &Frame {
                    epoch,
                    body: Body::Heartbeat,
                },
                &mut b,
            );
            while !stop.load(Ordering::Relaxed) {
                if w.write_all(&b).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    // Persistent receipts: answered once the master gives up on the silent slave.
    let mut c = master.client();
    for i in 0..10 {
        c.send_receipted("/queue/c", b"after", &format!("c{i}"));
    }
    assert!(
        log_has(
            &master,
            &["no acknowledgement", "replicationAckTimeout"],
            DETECT_TIMEOUT
        ),
        "{}",
        master.log_tail(30)
    );
    let s = master.wait_status(|s| peer(s) == "degraded", DETECT_TIMEOUT);
    assert_eq!(role(&s), "master", "{s}");
    // The link was closed by the master.
    p.frames_until_closed(CLOSE_TIMEOUT);
    stop.store(true, Ordering::Relaxed);
    let _ = beats.join();
    for i in 10..20 {
        c.send_receipted("/queue/c", b"after", &format!("c{i}"));
    }
    master.assert_running();
    master.wait_status(|s| depth(s, "/queue/c") == 23, REPLY_TIMEOUT);
}

#[test]
fn an_ack_beyond_what_was_shipped_closes_the_link() {
    let _slot = test_slot();
    let master = Node::spawn(NodeOpts::named("master"));
    master.wait_serving(NODE_START_TIMEOUT);
    send_marked(&master, "/queue/d", 3);
    let (mut p, welcome) = authenticate(master.tcp_port, 2);
    p.send(&Frame {
        epoch: welcome.epoch,
        body: Body::Ack {
            shard: 0,
            received: u64::MAX,
            durable: 0,
        },
    });
    p.frames_until_closed(CLOSE_TIMEOUT);
    assert!(
        log_has(&master, &["beyond what was shipped"], DETECT_TIMEOUT),
        "{}",
        master.log_tail(30)
    );
    let s = master.wait_status(|s| peer(s) == "degraded", DETECT_TIMEOUT);
    assert!(!is_master_in_sync(&s), "{s}");
    send_marked(&master, "/queue/d", 3);
    master.assert_running();

    // A frame at another epoch after the handshake closes the link too.
    let (mut p, welcome) = authenticate(master.tcp_port, 2);
    p.send(&Frame {
        epoch: welcome.epoch + 1,
        body: Body::Heartbeat,
    });
    p.frames_until_closed(CLOSE_TIMEOUT);
    assert!(log_has(
        &master,
        &["protocol error", "epoch"],
        DETECT_TIMEOUT
    ));
    assert_eq!(epoch_of(&master), welcome.epoch);
}

// ---------------------------------------------------------------------------------
// (e)

/// Forwards `listen` to `target`, recording what the first client sent.
fn recording_proxy(listen: TcpListener, target: u16) -> Arc<Mutex<Vec<u8>>> {
    let recorded = Arc::new(Mutex::new(Vec::new()));
    let rec = recorded.clone();
    std::thread::spawn(move || {
        let mut first = true;
        for client in listen.incoming() {
            let Ok(client) = client else { break };
            let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                continue;
            };
            let record = first.then(|| rec.clone());
            first = false;
            let (mut c_r, mut s_w) = (
                client.try_clone().expect("clone"),
                server.try_clone().expect("clone"),
            );
            let (mut s_r, mut c_w) = (server, client);
            std::thread::spawn(move || {
                let mut b = [0u8; 65536];
                while let Ok(n) = c_r.read(&mut b) {
                    if n == 0 {
                        break;
                    }
                    if let Some(r) = &record {
                        let mut r = r.lock().unwrap_or_else(|e| e.into_inner());
                        if r.len() < 1 << 20 {
                            r.extend_from_slice(&b[..n]);
                        }
                    }
                    if s_w.write_all(&b[..n]).is_err() {
                        break;
                    }
                }
                let _ = s_w.shutdown(std::net::Shutdown::Both);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s_r, &mut c_w);
                let _ = c_w.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    recorded
}

#[test]
fn a_replayed_proof_is_refused() {
    let _slot = test_slot();
    let master = Node::spawn(NodeOpts::named("master"));
    master.wait_serving(NODE_START_TIMEOUT);
    let listen = TcpListener::bind(("127.0.0.1", 0)).expect("bind proxy");
    let proxy_port = listen.local_addr().expect("addr").port();
    let recorded = recording_proxy(listen, master.tcp_port);
    let slave = Node::spawn(NodeOpts::named("slave").slave_of(proxy_port, LinkStyle::Uri));
    let ok = poll_until(SYNC_TIMEOUT, || {
        master.try_status().is_some_and(|s| is_master_in_sync(&s))
            && slave.try_status().is_some_and(|s| is_slave_in_sync(&s))
    });
    assert!(
        ok,
        "pair through the proxy not in sync: {}",
        master.log_tail(30)
    );
    slave.kill9();
    master.wait_status(|s| peer(s) == "degraded", DETECT_TIMEOUT);
    let epoch0 = epoch_of(&master);
    let state0 = node_state(&master);

    // The real slave's Hello and Proof, as they crossed the wire.
    let mut captured = BytesMut::from(&recorded.lock().unwrap_or_else(|e| e.into_inner())[..]);
    let mut dec = Decoder::default();
    let hello = dec.decode(&mut captured).expect("frame").expect("Hello");
    let proof = dec.decode(&mut captured).expect("frame").expect("Proof");
    assert!(matches!(hello.body, Body::Hello { .. }), "{hello:?}");
    assert!(matches!(proof.body, Body::Proof { .. }), "{proof:?}");

    // Replayed in order on a new connection (the master's nonce is new).
    let mut p = RawPeer::connect(master.tcp_port);
    p.send(&hello);
    let challenge = p.recv(REPLY_TIMEOUT).expect("Challenge");
    assert!(matches!(challenge.body, Body::Challenge { .. }));
    p.send(&proof);
    assert_only_unauthenticated_refuse(&p.frames_until_closed(CLOSE_TIMEOUT), &master);
    // Replayed blindly, both at once.
    let mut p = RawPeer::connect(master.tcp_port);
    p.send(&hello);
    p.send(&proof);
    let frames = p.frames_until_closed(CLOSE_TIMEOUT);
    assert!(
        frames
            .iter()
            .all(|f| matches!(f.body, Body::Challenge { .. } | Body::Refuse { .. })),
        "{frames:?}"
    );
    assert_only_unauthenticated_refuse(
        &frames
            .into_iter()
            .filter(|f| !matches!(f.body, Body::Challenge { .. }))
            .collect::<Vec<_>>(),
        &master,
    );
    let s = master.status();
    assert_eq!(peer(&s), "degraded", "{s}");
    assert_eq!(epoch(&s), Some(epoch0));
    assert_eq!(node_state(&master), state0);
    assert!(log_has(
        &master,
        &["refused", "bad credentials"],
        CLOSE_TIMEOUT
    ));
}

// ---------------------------------------------------------------------------------
// (g)

#[test]
fn a_slave_with_a_wrong_secret_is_refused_in_both_logs_and_never_serves() {
    const WRONG: &str = "wrong-secret-8812";
    let _slot = test_slot();
    let master = Node::spawn(NodeOpts::named("master"));
    master.wait_serving(NODE_START_TIMEOUT);
    let mut sopts = NodeOpts::named("slave").slave_of(master.tcp_port, LinkStyle::Uri);
    sopts.replication_secret = Some(WRONG.into());
    let slave = Node::spawn(sopts);
    // Refused (an unauthenticated refusal: the slave cannot tell a wrong secret from
    // an impostor, so it neither exits nor serves, and keeps trying).
    assert!(
        log_has(&slave, &["refused", "bad credentials"], CLOSE_TIMEOUT),
        "{}",
        slave.log_tail(30)
    );
    assert!(
        log_has(&master, &["refused", "bad credentials"], CLOSE_TIMEOUT),
        "{}",
        master.log_tail(30)
    );
    let exited =
        slave.ports_stay_refused_until("after it was refused", Duration::from_secs(3), || {
            if let Some(s) = master.try_status() {
                assert_eq!(peer(&s), "none", "master counted a refused slave: {s}");
            }
            slave.try_exit_status().is_some()
        });
    assert!(
        !exited,
        "a refusal nobody proved stopped the slave: {}",
        slave.log_tail(30)
    );
    for node in [&master, &slave] {
        for secret in [WRONG, TEST_REPLICATION_SECRET] {
            assert!(
                !node.log().contains(secret),
                "{} logged a secret",
                node.name()
            );
        }
    }
    // The master dies: the refused slave must not serve.
    master.kill9();
    let stopped =
        slave.ports_stay_refused_until("after the master died", Duration::from_secs(3), || false);
    assert!(!stopped);
    slave.assert_running();
}

/// Something else answers at the master's address and refuses the slave without a
/// proof: the slave neither exits nor serves; once the real master is there, it
/// attaches and catches up.
#[test]
fn an_impostor_refusing_the_slave_changes_nothing() {
    let _slot = test_slot();
    // The impostor holds the port the master will use.
    let impostor = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = impostor.local_addr().unwrap().port();
    let refusals = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let (refusals, stop) = (refusals.clone(), stop.clone());
        impostor.set_nonblocking(true).unwrap();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match impostor.accept() {
                    Ok((s, _)) => {
                        s.set_nonblocking(false).unwrap();
                        let mut p = RawPeer::from_stream(s);
                        if p.recv(REPLY_TIMEOUT).is_ok() {
                            p.send(&Frame {
                                epoch: u64::MAX,
                                body: Body::Refuse {
                                    proof: [0; PROOF_BYTES],
                                    code: frame::RefuseCode::StaleEpoch,
                                    reason: "I am the master now, go away".into(),
                                },
                            });
                            refusals.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        })
    };
    let slave = Node::spawn(NodeOpts::named("slave").slave_of(port, LinkStyle::Uri));
    let refused_twice = poll_until(CLOSE_TIMEOUT, || refusals.load(Ordering::Relaxed) >= 2);
    assert!(
        refused_twice,
        "the slave did not keep trying: {}",
        slave.log_tail(30)
    );
    slave.assert_running();
    assert!(slave.ports_refuse(), "a refused slave opened its ports");
    stop.store(true, Ordering::Relaxed);
    worker.join().expect("impostor thread");

    // The real master on that port: the slave attaches and is in sync.
    let mut master = Node::new(NodeOpts::named("master"));
    master.tcp_port = port;
    master.write_config();
    master.start();
    master.wait_serving(NODE_START_TIMEOUT);
    let in_sync = poll_until(SYNC_TIMEOUT, || {
        slave.try_status().is_some_and(|s| is_slave_in_sync(&s))
    });
    assert!(in_sync, "{}", slave.log_tail(30));
    assert!(
        slave.log().contains("unauthenticated refusal"),
        "{}",
        slave.log_tail(30)
    );
}

// ---------------------------------------------------------------------------------
// Replication handshakes count against maximumConnections

/// Two replication handshakes left hanging on a connector with `maximumConnections=2`
/// hold both places: a client is refused meanwhile, and served once they are gone.
/// (Handing the socket to the replication core used to give its place back at once,
/// so any number of handshakes could be open beside the clients.)
#[test]
fn replication_handshakes_count_against_maximum_connections() {
    let broker = support::Broker::start(support::BrokerOpts {
        max_connections: Some(2),
        replication_secret: Some(TEST_REPLICATION_SECRET.into()),
        ..Default::default()
    });
    // Each peer is answered with a Challenge and then left waiting for a Proof. (The
    // start-up probe's connection may still hold a place for a moment: retry.)
    let mut peers = Vec::new();
    for _ in 0..2 {
        let mut opened = None;
        let ok = poll_until(REPLY_TIMEOUT, || {
            let mut p = RawPeer::connect(broker.port);
            p.send(&hello("", 0, [7; 32]));
            let answer = p.recv(REPLY_TIMEOUT);
            let challenged = matches!(&answer, Ok(f) if matches!(f.body, Body::Challenge { .. }));
            if challenged {
                opened = Some(p);
            }
            challenged
        });
        assert!(ok, "no Challenge to a Hello:\n{}", broker.log());
        peers.extend(opened);
    }
    assert!(
        !support::Stomp::probe(broker.port, Duration::from_secs(2)),
        "a client was served beside two open handshakes on a connector of 2"
    );
    assert!(
        broker.log().contains("maximumConnections reached"),
        "{}",
        broker.log()
    );
    drop(peers);
    let served = poll_until(CLOSE_TIMEOUT, || {
        support::Stomp::probe(broker.port, Duration::from_secs(2))
    });
    assert!(
        served,
        "the handshakes' places were not given back:\n{}",
        broker.log()
    );
}
