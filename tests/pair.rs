//! Master/slave pairs of real `tandem` processes over loopback (docs/REPLICATION.md,
//! design/SCENARIOS.md): failover with `kill -9` and SIGTERM, the slave's refusal to
//! serve, `shutdownOnMasterFailure` / `shutdownOnSlaveFailure` / `waitForSlave`,
//! catch-up, credentials, a second slave, the old master rejoining as slave, and a
//! steady load across a takeover.
//!
//! Test names start with their scenario id. "No loss": every message whose send was
//! confirmed (RECEIPT) is consumed afterwards. Producers use the crate's failover
//! client, which re-sends a SEND whose receipt was lost with the connection (it does
//! not de-duplicate), so the one send in flight at the kill may arrive twice; that is
//! the only duplicate allowed, besides redeliveries flagged `redelivered:true`.
//!
//! Takeover times are printed ("takeover took N ms"); run with `--nocapture` to see
//! them. Only a generous liveness bound is asserted.

mod support;

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::pair::{
    assert_took_over, depth, destination, epoch, http_at, http_post, is_master_in_sync,
    is_slave_in_sync, peer, refuses, role, scenario_delay, takeover_time, takeovers, test_slot,
    LinkStyle, Node, NodeOpts, Pair, PairOpts, NODE_START_TIMEOUT, SYNC_TIMEOUT,
};
use support::{poll_until, prom_sample as sample, Frame, ReadEnd, Stomp, REPLY_TIMEOUT};
use tandem::client::{AckMode, Client, ClientError, ClientOptions};

const PERSISTENT: (&str, &str) = ("persistent", "true");
/// Bound on a node exiting by itself once it has a reason to.
const EXIT_TIMEOUT: Duration = Duration::from_secs(15);
/// Bound on a status change that follows a peer's death (loss is detected within
/// 5 heartbeats, 0.5 s, or at once on a reset).
const DETECT_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------
// Helpers

/// `failover:(first,second)?randomize=false` with quick reconnects.
fn failover_url(first: &Node, second: &Node) -> String {
    format!(
        "failover:({},{})?randomize=false&initialReconnectDelay=10&maxReconnectDelay=200",
        first.stomp_url(),
        second.stomp_url()
    )
}

fn client_opts(login: Option<(&str, &str)>) -> ClientOptions {
    ClientOptions {
        login: login.map(|(u, _)| u.to_string()),
        passcode: login.map(|(_, p)| p.to_string()),
        ..ClientOptions::default()
    }
}

fn connect(url: &str, login: Option<(&str, &str)>) -> Client {
    Client::connect(url, client_opts(login)).unwrap_or_else(|e| panic!("connect {url}: {e}"))
}

fn exit_code(node: &Node, status: std::process::ExitStatus) -> i32 {
    status.code().unwrap_or_else(|| {
        panic!(
            "{} ended by a signal ({status}); log tail:\n{}",
            node.name(),
            node.log_tail(60)
        )
    })
}

/// A deterministic body for message `i`: its number, then `pad` bytes derived from it.
fn body_of(i: u64, pad: usize) -> Vec<u8> {
    let mut b = format!("message {i} ").into_bytes();
    b.extend((0..pad).map(|k| b'a' + ((i as usize * 7 + k) % 26) as u8));
    b
}

/// Custom headers message `i` carries (one with characters STOMP must escape).
fn custom_headers(i: u64) -> Vec<(String, String)> {
    vec![
        ("seq".to_string(), i.to_string()),
        ("x-prop".to_string(), format!("value-{i}")),
        ("x-escaped".to_string(), format!("a:b\\c {i}")),
    ]
}

fn seq_of(f: &Frame) -> u64 {
    f.header("seq")
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("message without seq: {f:?}"))
}

/// Sends `range` to `dest` persistently with receipts (at most 64 unconfirmed), each
/// with [`custom_headers`] and [`body_of`]`(i, pad)`; returns once all are confirmed.
fn send_range(conn: &mut Stomp, dest: &str, range: Range<u64>, pad: usize) {
    const WINDOW: u64 = 64;
    let mut outstanding = std::collections::HashSet::new();
    let take = |conn: &mut Stomp, outstanding: &mut std::collections::HashSet<String>| {
        let f = conn.read_frame(REPLY_TIMEOUT).expect("RECEIPT");
        assert_eq!(f.command, "RECEIPT", "{f:?}");
        let id = f.header("receipt-id").expect("receipt-id").to_string();
        assert!(outstanding.remove(&id), "unexpected receipt {id}");
    };
    for i in range {
        if outstanding.len() as u64 >= WINDOW {
            take(conn, &mut outstanding);
        }
        let receipt = format!("r-{i}");
        let custom = custom_headers(i);
        let mut headers: Vec<(&str, &str)> = vec![
            ("destination", dest),
            PERSISTENT,
            ("receipt", receipt.as_str()),
        ];
        headers.extend(custom.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        conn.send_frame("SEND", &headers, &body_of(i, pad));
        outstanding.insert(receipt);
    }
    for _ in 0..100_000 {
        if outstanding.is_empty() {
            break;
        }
        take(conn, &mut outstanding);
    }
    assert!(outstanding.is_empty());
}

/// Consumes `dest` on `port` (auto ack) and returns every MESSAGE: first up to
/// `expected` of them, then a sentinel is sent and everything before it is collected
/// too, so messages beyond the expected ones are seen rather than left queued.
fn drain(port: u16, login: Option<(&str, &str)>, dest: &str, expected: usize) -> Vec<Frame> {
    let mut c = Stomp::connect_login(port, login);
    c.subscribe("drain", dest, "auto");
    let mut got = Vec::with_capacity(expected);
    for _ in 0..expected {
        match c.read_frame(REPLY_TIMEOUT) {
            Ok(f) if f.command == "MESSAGE" => got.push(f),
            Ok(f) => panic!("{dest}: unexpected frame {f:?}"),
            Err(ReadEnd::Timeout) => break,
            Err(ReadEnd::Closed) => panic!("{dest}: consumer connection closed"),
        }
    }
    c.send_frame(
        "SEND",
        &[
            ("destination", dest),
            PERSISTENT,
            ("receipt", "sentinel"),
            ("x-sentinel", "1"),
        ],
        b"sentinel",
    );
    for _ in 0..1_000_000 {
        let f = c
            .read_frame(REPLY_TIMEOUT)
            .unwrap_or_else(|e| panic!("{dest}: waiting for the sentinel: {e:?}"));
        match f.command.as_str() {
            "RECEIPT" => {}
            "MESSAGE" if f.header("x-sentinel").is_some() => return got,
            "MESSAGE" => got.push(f),
            _ => panic!("{dest}: unexpected frame {f:?}"),
        }
    }
    panic!("{dest}: sentinel never arrived");
}

/// Asserts `frames` are exactly `range` in order with their bodies and custom headers,
/// except that one message numbered `>= dup_from` may appear twice in a row (the send
/// in flight at a kill, re-sent by the failover client). Returns the duplicate, if any.
fn assert_exact_sequence(
    frames: &[Frame],
    range: Range<u64>,
    pad: usize,
    dup_from: Option<u64>,
) -> Option<u64> {
    let seqs: Vec<u64> = frames.iter().map(seq_of).collect();
    let mut duplicate = None;
    let mut kept: Vec<&Frame> = Vec::with_capacity(frames.len());
    for (k, f) in frames.iter().enumerate() {
        if k > 0 && seqs[k] == seqs[k - 1] {
            let allowed = dup_from.is_some_and(|from| seqs[k] >= from) && duplicate.is_none();
            assert!(
                allowed,
                "unexpected duplicate of {} (allowed: one, from {dup_from:?}; already {duplicate:?})",
                seqs[k]
            );
            duplicate = Some(seqs[k]);
            continue;
        }
        kept.push(f);
    }
    let got: Vec<u64> = kept.iter().map(|f| seq_of(f)).collect();
    let want: Vec<u64> = range.clone().collect();
    if got != want {
        let missing: Vec<u64> = want.iter().filter(|s| !got.contains(s)).copied().collect();
        let extra: Vec<u64> = got.iter().filter(|s| !range.contains(s)).copied().collect();
        panic!(
            "sequence differs: {} received (want {}), missing {missing:?}, extra {extra:?}, first \
             out of order at {:?}",
            got.len(),
            want.len(),
            got.iter().zip(&want).position(|(a, b)| a != b)
        );
    }
    for f in kept {
        let i = seq_of(f);
        assert_eq!(f.body, body_of(i, pad), "body of {i}");
        for (k, v) in custom_headers(i) {
            assert_eq!(f.header(&k), Some(v.as_str()), "header {k} of {i}: {f:?}");
        }
    }
    duplicate
}

/// The slave's epoch, which equals the master's while it is in sync.
fn epoch_of(node: &Node) -> u64 {
    let s = node.status();
    epoch(&s).unwrap_or_else(|| panic!("{}: no replication.epoch: {s}", node.name()))
}

/// Waits until `node`'s log has a line containing every one of `words`
/// (case-insensitive); returns that line.
fn wait_log_line(node: &Node, words: &[&str], timeout: Duration) -> String {
    let mut found = None;
    poll_until(timeout, || {
        found = node
            .log()
            .lines()
            .find(|l| {
                let l = l.to_lowercase();
                words.iter().all(|w| l.contains(&w.to_lowercase()))
            })
            .map(str::to_string);
        found.is_some()
    });
    found.unwrap_or_else(|| {
        panic!(
            "{}: no log line with {words:?}; log tail:\n{}",
            node.name(),
            node.log_tail(60)
        )
    })
}

fn log_contains(node: &Node, word: &str) -> bool {
    node.log().to_lowercase().contains(&word.to_lowercase())
}

// ---------------------------------------------------------------------------------
// S1, S3: queue failover through the failover client

/// Sends `total` persistent messages through `failover:(master,slave)` with receipts;
/// one second after the `kill_after`th receipt the master is killed (the producer is
/// still sending, paced so it cannot have finished). Afterwards the slave has taken
/// over and holds every message, in order, bodies and headers exact.
/// Returns the pair (its master killed) for the caller's own checks.
fn queue_failover(opts: PairOpts, login: Option<(&'static str, &'static str)>, total: u64) -> Pair {
    let kill_after = total / 2;
    const PAD: usize = 100;
    let dest = "/queue/failover";
    let pair = Pair::start(opts);
    let epoch0 = epoch_of(&pair.slave);
    let url = failover_url(&pair.master, &pair.slave);

    let confirmed = Arc::new(AtomicU64::new(0));
    let killed = Arc::new(AtomicBool::new(false));
    let producer = {
        let (confirmed, killed, url) = (confirmed.clone(), killed.clone(), url.clone());
        std::thread::spawn(move || {
            let c = connect(&url, login);
            for i in 0..total {
                let custom = custom_headers(i);
                let mut headers = vec![PERSISTENT];
                headers.extend(custom.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                c.send(dest, &body_of(i, PAD), &headers)
                    .unwrap_or_else(|e| panic!("send {i}: {e}"));
                confirmed.store(i + 1, Ordering::SeqCst);
                // Pace the second half until the kill, so the kill lands mid-stream.
                if i + 1 >= kill_after && !killed.load(Ordering::SeqCst) {
                    scenario_delay(Duration::from_millis(10));
                }
            }
            let reconnects = c.reconnects();
            c.close().expect("close producer");
            reconnects
        })
    };
    assert!(
        poll_until(Duration::from_secs(120), || confirmed
            .load(Ordering::SeqCst)
            >= kill_after
            || producer.is_finished()),
        "producer too slow"
    );
    assert!(!producer.is_finished(), "producer ended before the kill");
    scenario_delay(Duration::from_secs(1));
    let at_kill = confirmed.load(Ordering::SeqCst);
    pair.takeover_time();
    killed.store(true, Ordering::SeqCst);
    assert!(at_kill < total, "the producer had finished before the kill");

    let reconnects = producer.join().expect("producer thread");
    assert_eq!(reconnects, 1, "producer reconnects (killed at {at_kill})");
    assert_took_over(&pair.slave, epoch0, Some(1));

    let frames = drain(pair.slave.stomp_port, login, dest, total as usize);
    let dup = assert_exact_sequence(&frames, 0..total, PAD, Some(at_kill));
    println!(
        "{total} sent, master killed at {at_kill} confirmed; duplicate from the re-sent \
         in-flight send: {dup:?}"
    );
    pair
}

#[test]
fn s1_queue_failover_500_in_order_after_master_kill() {
    let _slot = test_slot();
    queue_failover(PairOpts::default(), None, 500);
}

/// Both places the replication core can run (`node::replication_executor::Placement`)
/// carry a takeover: its own executor (`replicationCore` set), and shard 0's executor
/// (the default on a host with fewer CPUs than shards + 1, as the test machines are;
/// on a bigger host the default is a dedicated executor too, and the log says so).
#[test]
fn s1_queue_failover_with_the_replication_core_on_its_own_executor() {
    let _slot = test_slot();
    let mut opts = PairOpts::default();
    opts.master.replication_core = Some(0);
    opts.slave.replication_core = Some(0);
    let pair = queue_failover(opts, None, 200);
    for node in [&pair.master, &pair.slave] {
        let log = node.log();
        assert!(
            log.contains("replication core placement placement=Dedicated(Some(0))"),
            "{} did not give the core its own executor:\n{}",
            node.name(),
            node.log_tail(40)
        );
    }
}

#[test]
fn s1_default_placement_is_logged_and_follows_the_cpu_count() {
    let _slot = test_slot();
    let pair = Pair::start(PairOpts::default());
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let expected = if cpus < 2 + 1 {
        "placement=OnShard0"
    } else {
        "placement=Dedicated(None)"
    };
    for node in [&pair.master, &pair.slave] {
        assert!(
            poll_until(Duration::from_secs(10), || node.log().contains(expected)),
            "{} (2 shards, {cpus} CPUs) did not log {expected}:\n{}",
            node.name(),
            node.log_tail(40)
        );
    }
}

#[test]
fn s3_queue_failover_with_master_connector_credentials() {
    let _slot = test_slot();
    let opts = PairOpts::with_auth(
        &[("app", "app-secret"), ("repl", "repl-secret")],
        "repl",
        "repl-secret",
    );
    queue_failover(opts, Some(("app", "app-secret")), 200);
}

// ---------------------------------------------------------------------------------
// S7: transactions across a takeover

#[test]
fn s7_transacted_batches_are_never_partial_across_takeover() {
    const BATCHES: u64 = 10;
    const PER_BATCH: u64 = 20;
    const IN_DOUBT: u64 = 4; // the 5th batch
    let _slot = test_slot();
    let pair = Pair::start(PairOpts::default());
    let epoch0 = epoch_of(&pair.slave);
    let c = connect(&failover_url(&pair.master, &pair.slave), None);
    let mut commit_ok = BTreeMap::new();
    for b in 0..BATCHES {
        let tx = format!("tx-{b}");
        c.begin(&tx).unwrap_or_else(|e| panic!("begin {tx}: {e}"));
        for i in 0..PER_BATCH {
            let (bs, is) = (b.to_string(), i.to_string());
            c.send(
                "/queue/s7",
                format!("{b}/{i}").as_bytes(),
                &[PERSISTENT, ("transaction", &tx), ("batch", &bs), ("i", &is)],
            )
            .unwrap_or_else(|e| panic!("send {b}/{i}: {e}"));
        }
        if b == IN_DOUBT {
            pair.takeover_time();
        }
        let result = c.commit(&tx);
        if b != IN_DOUBT {
            result
                .as_ref()
                .unwrap_or_else(|e| panic!("commit {tx}: {e}"));
        }
        commit_ok.insert(b, result.is_ok());
    }
    assert_eq!(c.reconnects(), 1);
    c.close().expect("close");
    assert_took_over(&pair.slave, epoch0, Some(1));

    let frames = drain(
        pair.slave.stomp_port,
        None,
        "/queue/s7",
        (BATCHES * PER_BATCH) as usize,
    );
    let mut per_batch: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for f in &frames {
        let b: u64 = f
            .header("batch")
            .and_then(|v| v.parse().ok())
            .expect("batch");
        let i: u64 = f.header("i").and_then(|v| v.parse().ok()).expect("i");
        assert_eq!(f.body_str(), format!("{b}/{i}"));
        per_batch.entry(b).or_default().push(i);
    }
    let whole: Vec<u64> = (0..PER_BATCH).collect();
    for b in 0..BATCHES {
        let got = per_batch.remove(&b).unwrap_or_default();
        if b == IN_DOUBT && !commit_ok[&b] {
            assert!(
                got.is_empty() || got == whole,
                "in-doubt batch {b} delivered partly: {got:?}"
            );
        } else {
            // Committed (the in-doubt one too when its commit was confirmed after the
            // client replayed the transaction): exactly once, whole, in order.
            assert_eq!(got, whole, "batch {b} (commit ok: {})", commit_ok[&b]);
        }
    }
    assert!(per_batch.is_empty(), "unknown batches: {per_batch:?}");
}

// ---------------------------------------------------------------------------------
// S9, G2: losing the slave

#[test]
fn s9_master_keeps_serving_after_slave_kill() {
    let _slot = test_slot();
    let pair = Pair::start(PairOpts::default());
    let mut p = pair.master.client();
    send_range(&mut p, "/queue/s9", 0..50, 10);
    pair.slave
        .wait_status(|s| depth(s, "/queue/s9") == 50, REPLY_TIMEOUT);

    pair.slave.kill9();
    let s = pair
        .master
        .wait_status(|s| peer(s) == "degraded", DETECT_TIMEOUT);
    assert_eq!(role(&s), "master", "{s}");
    // Sends are confirmed without the slave.
    send_range(&mut p, "/queue/s9", 50..100, 10);
    let frames = drain(pair.master.stomp_port, None, "/queue/s9", 100);
    assert_exact_sequence(&frames, 0..100, 10, None);
    pair.master.assert_running();
}

#[test]
fn g2_shutdown_on_slave_failure_stops_the_master() {
    let _slot = test_slot();
    let mut opts = PairOpts::default();
    opts.master.shutdown_on_slave_failure = Some(true);
    let pair = Pair::start(opts);
    pair.slave.kill9();
    let status = pair.master.wait_exit(EXIT_TIMEOUT);
    assert_eq!(
        exit_code(&pair.master, status),
        0,
        "{}",
        pair.master.log_tail(40)
    );
    pair.master.assert_ports_refused("after it shut down");
}

#[test]
fn g2_without_shutdown_on_slave_failure_master_carries_on_and_says_so() {
    let _slot = test_slot();
    let pair = Pair::start(PairOpts::default());
    pair.slave.kill9();
    let line = wait_log_line(&pair.master, &["slave", "lost"], DETECT_TIMEOUT);
    println!("master log: {line}");
    let s = pair
        .master
        .wait_status(|s| peer(s) == "degraded", DETECT_TIMEOUT);
    assert_eq!(role(&s), "master", "{s}");
    assert!(Stomp::probe(pair.master.stomp_port, REPLY_TIMEOUT));
    let mut c = pair.master.client();
    c.send_receipted("/queue/g2", b"alone", "alone");
    pair.master.assert_running();
}

// ---------------------------------------------------------------------------------
// S10: a slave whose master is unreachable

#[test]
fn s10_slave_with_unreachable_master_waits_and_stops_when_asked() {
    let _slot = test_slot();
    let nobody = support::free_port();
    let slave = Node::spawn(NodeOpts::named("slave").slave_of(nobody, LinkStyle::Uri));
    let s = slave.wait_status(
        |s| role(s) == "slave" && peer(s) == "connecting",
        NODE_START_TIMEOUT,
    );
    assert_eq!(takeovers(&s), Some(0), "{s}");
    // It keeps trying: still running, ports closed, for a while.
    let exited = slave.ports_stay_refused_until(
        "while its master is unreachable",
        Duration::from_secs(2),
        || slave.try_exit_status().is_some(),
    );
    assert!(!exited, "slave gave up: {}", slave.log_tail(40));
    assert_eq!(role(&slave.status()), "slave");

    let asked = Instant::now();
    slave.term();
    let status = slave.wait_exit(Duration::from_secs(5));
    println!(
        "slave stopped {} ms after SIGTERM",
        asked.elapsed().as_millis()
    );
    assert_eq!(exit_code(&slave, status), 0, "{}", slave.log_tail(40));
}

// ---------------------------------------------------------------------------------
// S14, G3: waitForSlave

#[test]
fn s14_wait_for_slave_holds_clients_until_the_slave_is_in_sync() {
    let _slot = test_slot();
    let mut mopts = NodeOpts::named("master");
    mopts.wait_for_slave = Some(true);
    let master = Node::spawn(mopts);
    // The tcp:// connector opens so a slave can attach...
    assert!(
        poll_until(NODE_START_TIMEOUT, || {
            master.assert_running();
            !refuses(master.tcp_port)
        }),
        "master's tcp port never opened"
    );
    // ...but serves no client, and the STOMP connector stays closed.
    assert!(
        Stomp::try_connect(master.tcp_port, Duration::from_secs(2)).is_none(),
        "a client was served on the tcp port before a slave was in sync"
    );
    assert!(refuses(master.stomp_port), "STOMP port open before a slave");

    // A failover client started now waits.
    let url = format!(
        "failover:({})?initialReconnectDelay=10&maxReconnectDelay=100",
        master.stomp_url()
    );
    let waiting = std::thread::spawn(move || {
        let c = connect(&url, None);
        (c, Instant::now())
    });
    poll_until(Duration::from_secs(1), || {
        assert!(
            refuses(master.stomp_port),
            "STOMP port opened without a slave"
        );
        master.assert_running();
        false
    });
    assert!(!waiting.is_finished(), "client connected before the slave");

    let slave_started = Instant::now();
    let slave = Node::spawn(NodeOpts::named("slave").slave_of(master.tcp_port, LinkStyle::Uri));
    let pair = Pair { master, slave };
    pair.wait_in_sync(SYNC_TIMEOUT);
    assert!(
        poll_until(Duration::from_secs(30), || waiting.is_finished()),
        "client still not connected 30 s after the slave is in sync"
    );
    let (c, connected_at) = waiting.join().expect("client thread");
    assert!(connected_at > slave_started);
    assert_eq!(c.reconnects(), 0);

    c.subscribe("/queue/s14", AckMode::Auto, &[])
        .expect("subscribe");
    for i in 0..20u64 {
        c.send("/queue/s14", &body_of(i, 10), &[PERSISTENT])
            .expect("send");
    }
    for i in 0..20u64 {
        let m = c.recv(REPLY_TIMEOUT).unwrap().expect("message");
        assert_eq!(&m.body[..], &body_of(i, 10)[..]);
    }
    c.close().expect("close");
}

#[test]
fn g3_wait_for_slave_timeout_without_a_slave_fails_start_up() {
    let _slot = test_slot();
    let mut mopts = NodeOpts::named("master");
    mopts.wait_for_slave = Some(true);
    mopts.wait_for_slave_timeout_ms = Some(2000);
    let started = Instant::now();
    let master = Node::spawn(mopts);
    let exited = poll_until(Duration::from_secs(60), || {
        assert!(
            refuses(master.stomp_port),
            "STOMP port opened while waiting for a slave"
        );
        master.try_exit_status().is_some()
    });
    assert!(
        exited,
        "master still waiting after 60 s: {}",
        master.log_tail(40)
    );
    let status = master.wait_exit(EXIT_TIMEOUT);
    let waited = started.elapsed();
    assert_eq!(exit_code(&master, status), 1, "{}", master.log_tail(40));
    assert!(
        waited >= Duration::from_millis(1900),
        "gave up after {waited:?}, before waitForSlaveTimeout"
    );
    assert!(
        master.log().contains("waitForSlave"),
        "the log should name waitForSlave:\n{}",
        master.log_tail(40)
    );
}

// ---------------------------------------------------------------------------------
// G1: shutdownOnMasterFailure

#[test]
fn g1_shutdown_on_master_failure_slave_exits_and_never_serves() {
    let _slot = test_slot();
    let mut opts = PairOpts::default();
    opts.slave.shutdown_on_master_failure = Some(true);
    let pair = Pair::start(opts);
    pair.master.kill9();
    let exited = pair.slave.ports_stay_refused_until(
        "after its master died (shutdownOnMasterFailure)",
        EXIT_TIMEOUT,
        || pair.slave.try_exit_status().is_some(),
    );
    assert!(exited, "slave still running: {}", pair.slave.log_tail(40));
    let status = pair.slave.wait_exit(EXIT_TIMEOUT);
    assert_eq!(
        exit_code(&pair.slave, status),
        0,
        "{}",
        pair.slave.log_tail(40)
    );
}

// ---------------------------------------------------------------------------------
// Takeover after SIGTERM; no takeover before catching up

#[test]
fn master_sigterm_slave_takes_over_and_says_the_master_shut_down_cleanly() {
    let _slot = test_slot();
    let pair = Pair::start(PairOpts::default());
    let mut p = pair.master.client();
    send_range(&mut p, "/queue/term", 0..20, 10);
    drop(p);
    let epoch0 = epoch_of(&pair.slave);
    pair.master.term();
    let status = pair.master.wait_exit(EXIT_TIMEOUT);
    assert_eq!(
        exit_code(&pair.master, status),
        0,
        "{}",
        pair.master.log_tail(40)
    );
    pair.slave.wait_serving(Duration::from_secs(10));
    assert_took_over(&pair.slave, epoch0, Some(1));
    let line = wait_log_line(&pair.slave, &["cleanly"], DETECT_TIMEOUT);
    println!("slave log: {line}");
    let frames = drain(pair.slave.stomp_port, None, "/queue/term", 20);
    assert_exact_sequence(&frames, 0..20, 10, None);
}

#[test]
fn slave_that_never_caught_up_does_not_take_over() {
    let _slot = test_slot();
    let master = Node::spawn(NodeOpts::named("master"));
    master.wait_serving(NODE_START_TIMEOUT);
    // Frozen: the kernel still accepts the slave's connection, nothing answers it.
    master.signal(libc::SIGSTOP);
    let slave = Node::spawn(NodeOpts::named("slave").slave_of(master.tcp_port, LinkStyle::Uri));
    slave.wait_status(|s| role(s) == "slave", NODE_START_TIMEOUT);
    master.kill9();
    let s = slave.wait_status(
        |s| role(s) == "slave" && peer(s) == "connecting",
        DETECT_TIMEOUT,
    );
    assert_eq!(takeovers(&s), Some(0), "{s}");
    let exited = slave.ports_stay_refused_until(
        "after losing a master it never caught up with",
        Duration::from_secs(3),
        || {
            let s = slave.status();
            assert_eq!(role(&s), "slave", "took over without being in sync: {s}");
            slave.try_exit_status().is_some()
        },
    );
    assert!(!exited, "slave exited: {}", slave.log_tail(40));
    slave.term();
    let status = slave.wait_exit(Duration::from_secs(5));
    assert_eq!(exit_code(&slave, status), 0);
}

// ---------------------------------------------------------------------------------
// G4: catch-up of a backlog

#[test]
fn g4_slave_catches_up_a_backlog_then_serves_it_after_takeover() {
    const TOTAL: u64 = 1000;
    const PAD: usize = 2000; // 2 MB on one shard: the catch-up spans segments
    let _slot = test_slot();
    let master = Node::spawn(NodeOpts::named("master"));
    master.wait_serving(NODE_START_TIMEOUT);
    let mut p = master.client();
    send_range(&mut p, "/queue/g4", 0..TOTAL, PAD);
    drop(p);
    master.wait_status(|s| depth(s, "/queue/g4") == TOTAL, REPLY_TIMEOUT);

    let slave = Node::spawn(NodeOpts::named("slave").slave_of(master.tcp_port, LinkStyle::Uri));
    let pair = Pair { master, slave };
    pair.wait_in_sync(Duration::from_secs(120));
    pair.slave
        .wait_status(|s| depth(s, "/queue/g4") == TOTAL, REPLY_TIMEOUT);
    pair.slave
        .assert_ports_refused("while it is an in-sync slave");

    let epoch0 = epoch_of(&pair.slave);
    pair.takeover_time();
    assert_took_over(&pair.slave, epoch0, Some(1));
    let frames = drain(pair.slave.stomp_port, None, "/queue/g4", TOTAL as usize);
    assert_exact_sequence(&frames, 0..TOTAL, PAD, None);
}

// ---------------------------------------------------------------------------------
// G5: wrong credentials

#[test]
fn g5_slave_with_wrong_credentials_is_refused_and_never_serves() {
    const WRONG: &str = "Wrong-Pass-7319";
    let _slot = test_slot();
    let users = vec![
        ("app".to_string(), "app-secret".to_string()),
        ("repl".to_string(), "repl-secret".to_string()),
    ];
    let mut mopts = NodeOpts::named("master");
    mopts.users = users.clone();
    let master = Node::spawn(mopts);
    master.wait_serving(NODE_START_TIMEOUT);
    let mut sopts = NodeOpts::named("slave").slave_of(
        master.tcp_port,
        LinkStyle::Connector {
            user: "repl".into(),
            password: WRONG.into(),
        },
    );
    sopts.users = users;
    let slave = Node::spawn(sopts);

    // Refused, and says why. The refusal cannot be proven to a slave that has the
    // wrong password, so the slave does not believe it either: it neither exits nor
    // serves, and keeps trying (an impostor cannot stop it).
    let said = poll_until(EXIT_TIMEOUT, || {
        log_contains(&slave, "refused") && log_contains(&slave, "credentials")
    });
    assert!(said, "slave log should say why:\n{}", slave.log_tail(40));
    let exited =
        slave.ports_stay_refused_until("after it was refused", Duration::from_secs(3), || {
            if let Some(s) = master.try_status() {
                assert_eq!(peer(&s), "none", "master counted a refused slave: {s}");
            }
            slave.try_exit_status().is_some()
        });
    assert!(!exited, "refused slave exited: {}", slave.log_tail(40));
    assert_eq!(role(&slave.status()), "slave");
    for word in ["refused", "credentials"] {
        assert!(
            log_contains(&slave, word),
            "slave log should say {word:?}:\n{}",
            slave.log_tail(40)
        );
    }
    for node in [&master, &slave] {
        assert!(
            !node.log().contains(WRONG),
            "{} logged the password",
            node.name()
        );
    }

    // The master carries on alone.
    let s = master.status();
    assert_eq!(peer(&s), "none", "{s}");
    assert_ne!(role(&s), "slave", "{s}");
    let mut c = master.client_login("app", "app-secret");
    send_range(&mut c, "/queue/g5", 0..5, 0);
    let frames = drain(
        master.stomp_port,
        Some(("app", "app-secret")),
        "/queue/g5",
        5,
    );
    assert_exact_sequence(&frames, 0..5, 0, None);
}

// ---------------------------------------------------------------------------------
// G6: the old master comes back as slave

#[test]
fn g6_old_master_restarted_joins_as_slave_catches_up_and_takes_over_again() {
    const PAD: usize = 50;
    let _slot = test_slot();
    let pair = Pair::start(PairOpts::default());
    let (a, b) = (&pair.master, &pair.slave);

    // Confirmed on A (and so on B).
    let mut pa = a.client();
    send_range(&mut pa, "/queue/g6", 0..100, PAD);
    // Unconfirmed sends just before the kill: whatever B got, A must end up with the
    // same (a tail A wrote but B never had is not B's history).
    for i in 0..20 {
        pa.send_frame(
            "SEND",
            &[("destination", "/queue/g6-tail"), PERSISTENT],
            format!("tail {i}").as_bytes(),
        );
    }
    let epoch0 = epoch_of(b);
    takeover_time(a, b);
    drop(pa);
    let s = assert_took_over(b, epoch0, Some(1));
    let epoch1 = epoch(&s).unwrap();

    // Written on B while A is down.
    let mut pb = b.client();
    send_range(&mut pb, "/queue/g6", 100..200, PAD);

    // A restarts with its own (master) configuration: it must find B's higher epoch and
    // join as B's slave, never opening its client ports meanwhile.
    a.restart();
    let joined = a.ports_stay_refused_until("while rejoining as slave", SYNC_TIMEOUT, || {
        a.assert_running();
        a.try_status().is_some_and(|s| is_slave_in_sync(&s))
    });
    assert!(
        joined,
        "old master never joined as in-sync slave: {:?}",
        a.try_status()
    );
    let sb = b.wait_status(is_master_in_sync, SYNC_TIMEOUT);
    let sa = a.status();
    assert_eq!(epoch(&sa), Some(epoch1), "A's epoch after joining: {sa}");
    assert_eq!(epoch(&sb), Some(epoch1), "B's epoch: {sb}");

    // A applied everything B holds, nothing more.
    let sb = b.wait_status(|s| depth(s, "/queue/g6") == 200, REPLY_TIMEOUT);
    let tail = depth(&sb, "/queue/g6-tail");
    a.wait_status(
        |s| depth(s, "/queue/g6") == 200 && depth(s, "/queue/g6-tail") == tail,
        REPLY_TIMEOUT,
    );

    // Confirmed on B while A is its slave.
    send_range(&mut pb, "/queue/g6", 200..250, PAD);
    drop(pb);
    takeover_time(b, a);
    assert_took_over(a, epoch1, None);
    let frames = drain(a.stomp_port, None, "/queue/g6", 250);
    assert_exact_sequence(&frames, 0..250, PAD, None);
    let tail_frames = drain(a.stomp_port, None, "/queue/g6-tail", tail as usize);
    assert_eq!(tail_frames.len() as u64, tail, "unconfirmed tail on A vs B");
}

// ---------------------------------------------------------------------------------
// G7: steady load across a kill -9

/// One delivery seen by a consumer: (producer, seq, redelivered flag).
type Delivery = (usize, u64, bool);

#[test]
fn g7_steady_load_across_master_kill_no_loss_no_unflagged_duplicate() {
    const PRODUCERS: usize = 3;
    const CONSUMERS: usize = 2;
    const PER_PRODUCER: u64 = 600;
    const TOTAL: u64 = PRODUCERS as u64 * PER_PRODUCER;
    let _slot = test_slot();
    let pair = Pair::start(PairOpts::default());
    let epoch0 = epoch_of(&pair.slave);
    let url = failover_url(&pair.master, &pair.slave);
    let confirmed: Vec<AtomicU64> = (0..PRODUCERS).map(|_| AtomicU64::new(0)).collect();
    let deliveries: Mutex<Vec<Delivery>> = Mutex::new(Vec::new());
    let stop = AtomicBool::new(false);
    let mut at_kill = Vec::new();

    std::thread::scope(|scope| {
        let (url, confirmed, deliveries, stop) = (&url, &confirmed, &deliveries, &stop);
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                scope.spawn(move || {
                    let c = connect(url, None);
                    for i in 0..PER_PRODUCER {
                        let (ps, is) = (p.to_string(), i.to_string());
                        c.send(
                            "/queue/g7",
                            format!("{p}/{i}").as_bytes(),
                            &[PERSISTENT, ("producer", &ps), ("seq", &is)],
                        )
                        .unwrap_or_else(|e| panic!("producer {p}, send {i}: {e}"));
                        confirmed[p].store(i + 1, Ordering::SeqCst);
                        // A steady rate rather than a burst.
                        scenario_delay(Duration::from_millis(2));
                    }
                    let reconnects = c.reconnects();
                    c.close().expect("close producer");
                    reconnects
                })
            })
            .collect();
        let consumers: Vec<_> = (0..CONSUMERS)
            .map(|k| {
                scope.spawn(move || {
                    let c = connect(url, None);
                    c.subscribe("/queue/g7", AckMode::ClientIndividual, &[])
                        .expect("subscribe");
                    let deadline = Instant::now() + Duration::from_secs(600);
                    while !stop.load(Ordering::SeqCst) {
                        assert!(Instant::now() < deadline, "consumer {k} still running");
                        let Some(m) = c
                            .recv(Duration::from_millis(100))
                            .unwrap_or_else(|e| panic!("consumer {k}: {e}"))
                        else {
                            continue;
                        };
                        let p: usize = m
                            .header("producer")
                            .and_then(|v| v.parse().ok())
                            .unwrap_or_else(|| panic!("no producer header: {m:?}"));
                        let seq: u64 = m
                            .header("seq")
                            .and_then(|v| v.parse().ok())
                            .unwrap_or_else(|| panic!("no seq header: {m:?}"));
                        assert_eq!(m.body, format!("{p}/{seq}"));
                        deliveries.lock().unwrap().push((p, seq, m.redelivered));
                        c.ack(&m)
                            .unwrap_or_else(|e| panic!("consumer {k}, ack {p}/{seq}: {e}"));
                    }
                    let reconnects = c.reconnects();
                    c.close().expect("close consumer");
                    reconnects
                })
            })
            .collect();

        let sent = || -> u64 { confirmed.iter().map(|c| c.load(Ordering::SeqCst)).sum() };
        assert!(
            poll_until(Duration::from_secs(120), || sent() >= TOTAL / 2
                || producers.iter().any(|h| h.is_finished())),
            "producers too slow"
        );
        at_kill = confirmed.iter().map(|c| c.load(Ordering::SeqCst)).collect();
        assert!(
            producers.iter().all(|h| !h.is_finished()),
            "a producer ended before the kill"
        );
        pair.takeover_time();
        for (p, h) in producers.into_iter().enumerate() {
            let reconnects = h.join().expect("producer thread");
            assert_eq!(reconnects, 1, "producer {p} reconnects");
        }
        assert_took_over(&pair.slave, epoch0, Some(1));

        // Every message delivered at least once, then every one acknowledged (the new
        // master's queue empties).
        let distinct = || {
            let d = deliveries.lock().unwrap();
            d.iter()
                .map(|&(p, s, _)| (p, s))
                .collect::<std::collections::BTreeSet<_>>()
                .len() as u64
        };
        let covered = poll_until(Duration::from_secs(120), || {
            distinct() >= TOTAL || consumers.iter().any(|h| h.is_finished())
        });
        assert!(
            consumers.iter().all(|h| !h.is_finished()),
            "a consumer ended early"
        );
        assert!(
            covered,
            "only {} of {TOTAL} distinct messages delivered",
            distinct()
        );
        pair.slave
            .wait_status(|s| depth(s, "/queue/g7") == 0, Duration::from_secs(60));
        stop.store(true, Ordering::SeqCst);
        for (k, h) in consumers.into_iter().enumerate() {
            let reconnects = h.join().expect("consumer thread");
            assert_eq!(reconnects, 1, "consumer {k} reconnects");
        }
    });

    // (deliveries, unflagged deliveries) per message.
    let mut seen: BTreeMap<(usize, u64), (u32, u32)> = BTreeMap::new();
    let deliveries = deliveries.into_inner().unwrap();
    for &(p, seq, redelivered) in &deliveries {
        let e = seen.entry((p, seq)).or_default();
        e.0 += 1;
        if !redelivered {
            e.1 += 1;
        }
    }
    let unknown: Vec<_> = seen
        .keys()
        .filter(|(p, s)| *p >= PRODUCERS || *s >= PER_PRODUCER)
        .collect();
    assert!(unknown.is_empty(), "messages nobody sent: {unknown:?}");
    let missing: Vec<(usize, u64)> = (0..PRODUCERS)
        .flat_map(|p| (0..PER_PRODUCER).map(move |s| (p, s)))
        .filter(|k| !seen.contains_key(k))
        .collect();
    assert!(
        missing.is_empty(),
        "confirmed but never delivered: {missing:?}"
    );
    // Unflagged repeats: only the send each producer had in flight at the kill may
    // exist twice (the failover client re-sent it); everything else delivered again
    // must say redelivered:true.
    let mut resent_per_producer = vec![0u32; PRODUCERS];
    let mut bad = Vec::new();
    for (&(p, s), &(_, unflagged)) in &seen {
        if unflagged <= 1 {
            continue;
        }
        if unflagged == 2 && s >= at_kill[p] && resent_per_producer[p] == 0 {
            resent_per_producer[p] += 1;
        } else {
            bad.push(((p, s), unflagged));
        }
    }
    assert!(bad.is_empty(), "unflagged duplicates: {bad:?}");
    let redelivered = deliveries.iter().filter(|d| d.2).count();
    println!(
        "g7: {} deliveries of {TOTAL} messages, {redelivered} flagged redelivered, re-sent in-flight \
         sends delivered twice: {resent_per_producer:?}; confirmed at kill {at_kill:?}",
        deliveries.len()
    );
}

// ---------------------------------------------------------------------------------
// G10: a second slave

#[test]
fn g10_second_slave_is_refused_and_the_first_stays_in_sync() {
    let _slot = test_slot();
    let pair = Pair::start(PairOpts::default());
    let second =
        Node::spawn(NodeOpts::named("second-slave").slave_of(pair.master.tcp_port, LinkStyle::Uri));
    let exited = second.ports_stay_refused_until(
        "as a refused second slave",
        Duration::from_secs(30),
        || {
            if let Some(s) = pair.master.try_status() {
                assert!(is_master_in_sync(&s), "master lost its slave: {s}");
            }
            if let Some(s) = pair.slave.try_status() {
                assert!(is_slave_in_sync(&s), "first slave out of sync: {s}");
            }
            second.try_exit_status().is_some()
        },
    );
    assert!(
        exited,
        "second slave still running: {}",
        second.log_tail(40)
    );
    let status = second.wait_exit(EXIT_TIMEOUT);
    assert_eq!(exit_code(&second, status), 1, "{}", second.log_tail(40));
    for word in ["refused", "already has a slave"] {
        assert!(
            log_contains(&second, word),
            "second slave's log should say {word:?}:\n{}",
            second.log_tail(40)
        );
    }
    pair.wait_in_sync(DETECT_TIMEOUT);
    let mut p = pair.master.client();
    send_range(&mut p, "/queue/g10", 0..10, 0);
    pair.slave
        .wait_status(|s| depth(s, "/queue/g10") == 10, REPLY_TIMEOUT);
}

// ---------------------------------------------------------------------------------
// G13: what empties a queue is replicated: acknowledged consumption, and the status
// endpoint's purge and delete (`POST /admin/purge`, `/admin/delete` on the master)

#[test]
fn g13_consumed_on_master_is_gone_on_slave_and_after_takeover() {
    let _slot = test_slot();
    let pair = Pair::start(PairOpts::default());
    let mut p = pair.master.client();
    send_range(&mut p, "/queue/g13", 0..100, 10);
    drop(p);
    pair.slave
        .wait_status(|s| depth(s, "/queue/g13") == 100, REPLY_TIMEOUT);

    let c = connect(&pair.master.stomp_url(), None);
    c.subscribe("/queue/g13", AckMode::ClientIndividual, &[])
        .expect("subscribe");
    for i in 0..100u64 {
        let m = c.recv(REPLY_TIMEOUT).unwrap().expect("message");
        assert_eq!(m.header("seq"), Some(i.to_string().as_str()));
        c.ack(&m).expect("ack");
    }
    c.close().expect("close");
    pair.master
        .wait_status(|s| depth(s, "/queue/g13") == 0, REPLY_TIMEOUT);
    pair.slave
        .wait_status(|s| depth(s, "/queue/g13") == 0, REPLY_TIMEOUT);

    let epoch0 = epoch_of(&pair.slave);
    pair.takeover_time();
    assert_took_over(&pair.slave, epoch0, Some(1));
    let back = drain(pair.slave.stomp_port, None, "/queue/g13", 0);
    assert!(
        back.is_empty(),
        "acknowledged messages came back: {:?}",
        back.iter().map(seq_of).collect::<Vec<_>>()
    );
}

/// An individual dead-letter queue (`<destinationPolicy>` with an
/// `individualDeadLetterStrategy`) is a destination like any other: messages NACKed on
/// the master move to their queue's own DLQ (on whichever shard owns that name), the
/// move is replicated, and after the takeover the slave serves them from there, the
/// original queue and `ActiveMQ.DLQ` empty.
#[test]
fn individual_dead_letter_queue_moves_are_replicated_and_hold_after_takeover() {
    let _slot = test_slot();
    let policy = r#"<destinationPolicy><policyMap><policyEntries>
  <policyEntry queue="pdlq.>">
    <deadLetterStrategy><individualDeadLetterStrategy queuePrefix="DLQ."/></deadLetterStrategy>
  </policyEntry>
</policyEntries></policyMap></destinationPolicy>"#;
    let mut opts = PairOpts::default();
    opts.master.broker_xml = Some(policy.into());
    opts.slave.broker_xml = Some(policy.into());
    let pair = Pair::start(opts);
    let mut p = pair.master.client();
    send_range(&mut p, "/queue/pdlq.orders", 0..20, 10);
    drop(p);

    let c = connect(&pair.master.stomp_url(), None);
    c.subscribe("/queue/pdlq.orders", AckMode::ClientIndividual, &[])
        .expect("subscribe");
    for i in 0..20u64 {
        let m = c.recv(REPLY_TIMEOUT).unwrap().expect("message");
        assert_eq!(m.header("seq"), Some(i.to_string().as_str()));
        c.nack(&m).expect("nack");
    }
    c.close().expect("close");
    let moved = |s: &serde_json::Value| {
        depth(s, "/queue/DLQ.pdlq.orders") == 20 && depth(s, "/queue/pdlq.orders") == 0
    };
    pair.master.wait_status(moved, REPLY_TIMEOUT);
    pair.slave.wait_status(moved, REPLY_TIMEOUT);

    let epoch0 = epoch_of(&pair.slave);
    pair.takeover_time();
    assert_took_over(&pair.slave, epoch0, Some(1));
    let back = drain(pair.slave.stomp_port, None, "/queue/DLQ.pdlq.orders", 20);
    assert_eq!(
        back.iter().map(seq_of).collect::<Vec<_>>(),
        (0..20).collect::<Vec<_>>()
    );
    for f in &back {
        assert_eq!(
            f.header("originalDestination"),
            Some("/queue/pdlq.orders"),
            "{f:?}"
        );
        assert_eq!(f.body, body_of(seq_of(f), 10), "{f:?}");
    }
    for q in ["/queue/pdlq.orders", "/queue/ActiveMQ.DLQ"] {
        let left = drain(pair.slave.stomp_port, None, q, 0);
        assert!(
            left.is_empty(),
            "{q}: {:?}",
            left.iter().map(seq_of).collect::<Vec<_>>()
        );
    }
}

/// `POST /admin/{op}?destination={dest}` on `node`'s status port: (code, JSON body).
fn admin(node: &Node, op: &str, dest: &str) -> (u16, serde_json::Value) {
    let path = format!("/admin/{op}?destination={dest}");
    let (code, body) = http_post(node.status_port, &path).unwrap_or_else(|| {
        panic!(
            "{}: POST {path} not answered; log tail:\n{}",
            node.name(),
            node.log_tail(60)
        )
    });
    let json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    (code, json)
}

#[test]
fn g13_purge_and_delete_on_master_are_replicated_and_hold_after_takeover() {
    const PURGED: &str = "/queue/g13-purged";
    const DELETED: &str = "/queue/g13-deleted";
    let _slot = test_slot();
    let pair = Pair::start(PairOpts::default());
    let mut p = pair.master.client();
    send_range(&mut p, PURGED, 0..150, 10);
    send_range(&mut p, DELETED, 0..120, 10);
    drop(p);
    pair.slave.wait_status(
        |s| depth(s, PURGED) == 150 && depth(s, DELETED) == 120,
        REPLY_TIMEOUT,
    );

    // A slave does not take admin operations: they would fork its copy.
    for op in ["purge", "delete"] {
        let (code, body) = admin(&pair.slave, op, PURGED);
        assert_eq!(code, 503, "{op} on the slave: {body}");
    }

    let (code, body) = admin(&pair.master, "purge", PURGED);
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        body,
        serde_json::json!({"destination": PURGED, "removed": 150})
    );
    let (code, body) = admin(&pair.master, "delete", DELETED);
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        body,
        serde_json::json!({"destination": DELETED, "removed": 120})
    );

    let gone = |s: &serde_json::Value| {
        destination(s, PURGED).is_some_and(|d| d["depth"] == 0) && destination(s, DELETED).is_none()
    };
    pair.master.wait_status(gone, REPLY_TIMEOUT);
    let s = pair.slave.wait_status(gone, REPLY_TIMEOUT);
    assert_eq!(role(&s), "slave", "{s}");
    pair.master.assert_running();
    pair.slave.assert_running();

    let epoch0 = epoch_of(&pair.slave);
    pair.takeover_time();
    assert_took_over(&pair.slave, epoch0, Some(1));
    let s = pair.slave.status();
    assert!(gone(&s), "after the takeover: {s}");
    for dest in [PURGED, DELETED] {
        let back = drain(pair.slave.stomp_port, None, dest, 0);
        assert!(
            back.is_empty(),
            "{dest}: removed messages came back after the takeover: {:?}",
            back.iter().map(seq_of).collect::<Vec<_>>()
        );
    }

    // The new master takes admin operations.
    let (code, body) = admin(&pair.slave, "purge", PURGED);
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        body,
        serde_json::json!({"destination": PURGED, "removed": 0})
    );
    // `drain` recreated the deleted queue with its sentinel; once its consumer is
    // gone (the connection closes asynchronously), it can be deleted again.
    let mut last = None;
    let deleted = poll_until(REPLY_TIMEOUT, || {
        let r = admin(&pair.slave, "delete", DELETED);
        let done = r.0 == 200;
        last = Some(r);
        done
    });
    assert!(deleted, "delete on the new master: {last:?}");
    assert_eq!(last.unwrap().1["removed"], 0);
    pair.slave
        .wait_status(|s| destination(s, DELETED).is_none(), REPLY_TIMEOUT);
}

// ---------------------------------------------------------------------------------
// G14: the slave serves nobody; what /status says about the pair

#[test]
fn g14_slave_refuses_clients_while_master_lives_and_status_shows_the_pair() {
    let _slot = test_slot();
    let pair = Pair::start(PairOpts::default());
    pair.slave
        .ports_stay_refused_until("while its master lives", Duration::from_secs(1), || false);
    let url = format!(
        "failover:({})?maxReconnectAttempts=2&initialReconnectDelay=10",
        pair.slave.stomp_url()
    );
    match Client::connect(&url, ClientOptions::default()) {
        Err(ClientError::FailoverExhausted { .. }) => {}
        Err(e) => panic!("expected FailoverExhausted, got {e}"),
        Ok(_) => panic!("the slave served a client"),
    }

    let (m, s) = pair.wait_in_sync(DETECT_TIMEOUT);
    assert_eq!(role(&m), "master", "{m}");
    assert_eq!(m["replication"]["role"], "master", "{m}");
    assert_eq!(role(&s), "slave", "{s}");
    assert_eq!(s["replication"]["role"], "slave", "{s}");
    assert!(epoch(&m).is_some(), "{m}");
    assert_eq!(epoch(&m), epoch(&s), "epochs differ: {m} / {s}");
    for st in [&m, &s] {
        let r = &st["replication"];
        assert!(r["peer_address"].is_string(), "peer_address: {st}");
        for k in ["records", "bytes", "ms"] {
            assert!(r["lag"][k].is_u64(), "lag.{k}: {st}");
        }
        assert_eq!(takeovers(st), Some(0), "{st}");
    }
    let addr = s["replication"]["peer_address"].as_str().unwrap();
    assert!(
        addr.contains(&pair.master.tcp_port.to_string()),
        "slave's peer_address {addr} should name the master's tcp port {}",
        pair.master.tcp_port
    );
    pair.slave.assert_ports_refused("after the status checks");

    // Group commit as /metrics shows it: persistent sends with receipts (up to 64
    // unconfirmed) go out in batch frames the master counts, and are made durable by
    // fsyncs both journals count (the slave's takes the shipped batches).
    const N: u64 = 200;
    let mut producer = pair.master.client();
    send_range(&mut producer, "/queue/g14-metrics", 0..N, 100);
    let metrics = |node: &Node| {
        let (code, text) = http_at(node.status_addr(), "GET", "/metrics", REPLY_TIMEOUT)
            .unwrap_or_else(|| panic!("{}: /metrics does not answer", node.name()));
        assert_eq!(code, 200, "{}: {text}", node.name());
        text
    };
    let m = metrics(&pair.master);
    let frames = sample(&m, "tandem_replication_records_per_frame_count");
    let shipped = sample(&m, "tandem_replication_records_per_frame_sum");
    assert!(frames > 0.0, "{m}");
    assert!(shipped >= N as f64, "{m}");
    assert_eq!(
        sample(
            &m,
            "tandem_replication_records_per_frame_bucket{le=\"+Inf\"}"
        ),
        frames,
        "{m}"
    );
    assert!(
        sample(&m, "tandem_replication_bytes_per_frame_sum") >= (N * 100) as f64,
        "{m}"
    );
    // Every shipped record is counted in one frame: the sum is the shipped total
    // (read apart from it in a scrape, so polled until the link is quiet).
    let mut last = m;
    let agreed = poll_until(REPLY_TIMEOUT, || {
        last = metrics(&pair.master);
        sample(&last, "tandem_replication_records_per_frame_sum")
            == sample(&last, "tandem_replication_shipped_records_total")
    });
    assert!(
        agreed,
        "records_per_frame_sum != shipped_records_total:\n{last}"
    );
    for node in [&pair.master, &pair.slave] {
        let text = metrics(node);
        let fsyncs = sample(&text, "tandem_journal_records_per_fsync_count");
        let records = sample(&text, "tandem_journal_records_per_fsync_sum");
        assert!(fsyncs > 0.0, "{}: {text}", node.name());
        assert!(records >= N as f64, "{}: {text}", node.name());
        eprintln!(
            "{}: {records} records in {fsyncs} fsyncs ({:.1} per fsync)",
            node.name(),
            records / fsyncs
        );
    }
    eprintln!(
        "master: {shipped} records in {frames} frames ({:.1} per frame)",
        shipped / frames
    );
    // The slave ships nothing.
    let s = metrics(&pair.slave);
    assert_eq!(
        sample(&s, "tandem_replication_records_per_frame_count"),
        0.0,
        "{s}"
    );
}

// ---------------------------------------------------------------------------------
// The harness itself, on a node with no replication configured

#[test]
fn harness_standalone_node_lifecycle() {
    let _slot = test_slot();
    let node = Node::spawn(NodeOpts::named("solo"));
    node.wait_serving(NODE_START_TIMEOUT);
    let s = node.wait_status(|s| role(s) == "standalone", NODE_START_TIMEOUT);
    assert_eq!(peer(&s), "none", "{s}");
    let mut c = node.client();
    send_range(&mut c, "/queue/h", 0..30, 5);
    drop(c);
    node.wait_status(|s| depth(s, "/queue/h") == 30, REPLY_TIMEOUT);

    node.kill9();
    assert!(!node.is_running());
    node.restart();
    node.wait_serving(NODE_START_TIMEOUT);
    let frames = drain(node.stomp_port, None, "/queue/h", 30);
    assert_exact_sequence(&frames, 0..30, 5, None);

    node.term();
    let status = node.wait_exit(EXIT_TIMEOUT);
    assert_eq!(exit_code(&node, status), 0);
    node.assert_ports_refused("after SIGTERM");
}

/// A persistent message reaches a consumer only once the slave holds it (as the
/// producer's receipt does): had the master delivered it first and died before
/// shipping it, the producer's failover replay would store it again on the slave and
/// the consumer would get it twice, unflagged. Forcing the window: the slave is stopped
/// (SIGSTOP), so its acknowledgement of the stored message cannot come.
#[test]
fn g7_a_message_is_delivered_only_once_the_slave_holds_it() {
    const Q: &str = "/queue/g7-gated";
    let _slot = test_slot();
    let mut opts = PairOpts::default();
    // Long enough that the stopped slave is not declared lost while stopped.
    opts.master.heartbeat_ms = Some(2_000);
    opts.slave.heartbeat_ms = Some(2_000);
    let pair = Pair::start(opts);

    let consumer = connect(&pair.master.stomp_url(), None);
    consumer
        .subscribe(Q, AckMode::Auto, &[])
        .expect("subscribe");
    pair.slave.signal(libc::SIGSTOP);
    let mut producer = pair.master.client();
    producer.send_frame(
        "SEND",
        &[
            ("destination", Q),
            PERSISTENT,
            ("receipt", "r-gated"),
            ("seq", "0"),
        ],
        b"gated",
    );
    let stored = poll_until(DETECT_TIMEOUT, || {
        pair.master
            .try_status()
            .and_then(|s| destination(&s, Q))
            .is_some_and(|d| d["enqueued"] == 1)
    });
    // The master has it (stored and journaled) but the slave does not acknowledge:
    // neither the receipt nor the delivery may go out.
    let early = consumer.recv(Duration::from_millis(1_000));
    let early_receipt = producer.read_frame(Duration::from_millis(10));
    pair.slave.signal(libc::SIGCONT);
    assert!(stored, "the master never stored the message");
    assert!(
        matches!(early, Ok(None)),
        "delivered before the slave held it: {early:?}"
    );
    assert!(early_receipt.is_err(), "receipted before the slave held it");

    let receipt = producer.read_frame(REPLY_TIMEOUT).expect("receipt");
    assert_eq!(receipt.command, "RECEIPT", "{receipt:?}");
    let m = consumer
        .recv(REPLY_TIMEOUT)
        .expect("recv")
        .expect("delivered once the slave acknowledged");
    assert_eq!(m.body.as_ref(), b"gated");
    assert!(!m.redelivered, "{m:?}");
    consumer.close().expect("close");
}

// ---------------------------------------------------------------------------------
// Virtual topics across a takeover (issue 17)

/// A virtual topic's consumer queues survive a takeover. On the master, consumers
/// create `Consumer.A.VirtualTopic.Orders` and `Consumer.B.VirtualTopic.Orders` and
/// leave; 100 messages go to both through the virtual topic; A's copies are consumed
/// there (A is empty again), B keeps its own. After `kill -9` of the master, the slave
/// that took over has B's 100 and routes new sends to the topic into both queues.
#[test]
fn virtual_topic_consumer_queues_survive_takeover() {
    let _slot = test_slot();
    const PAD: usize = 10;
    let (topic, qa, qb) = (
        "/topic/VirtualTopic.Orders",
        "/queue/Consumer.A.VirtualTopic.Orders",
        "/queue/Consumer.B.VirtualTopic.Orders",
    );
    let pair = Pair::start(PairOpts::default());
    let epoch0 = epoch_of(&pair.slave);
    for (i, q) in [qa, qb].into_iter().enumerate() {
        let mut c = Stomp::connect(pair.master.stomp_port);
        c.subscribe(&format!("make-{i}"), q, "auto");
    }
    let mut producer = Stomp::connect(pair.master.stomp_port);
    send_range(&mut producer, topic, 0..100, PAD);
    drop(producer);
    // A's copies consumed on the master: one cumulative ACK whose RECEIPT says the slave
    // holds it too (an auto ack could still be in flight at the kill, and come back).
    let mut consumer = Stomp::connect(pair.master.stomp_port);
    consumer.subscribe("a", qa, "client");
    let a_before: Vec<Frame> = (0..100)
        .map(|_| consumer.read_frame(REPLY_TIMEOUT).expect("MESSAGE"))
        .collect();
    assert_exact_sequence(&a_before, 0..100, PAD, None);
    let last = a_before[99].header("ack").expect("ack header").to_string();
    consumer.send_frame("ACK", &[("id", &last), ("receipt", "acked")], b"");
    consumer.expect_receipt("acked");
    drop(consumer);

    pair.takeover_time();
    assert_took_over(&pair.slave, epoch0, Some(1));
    let mut producer = Stomp::connect(pair.slave.stomp_port);
    send_range(&mut producer, topic, 100..150, PAD);
    let a = drain(pair.slave.stomp_port, None, qa, 50);
    assert_exact_sequence(&a, 100..150, PAD, None);
    let b = drain(pair.slave.stomp_port, None, qb, 150);
    assert_exact_sequence(&b, 0..150, PAD, None);
}

/// Scheduled delivery (issue 17): jobs scheduled on the master are replicated with
/// their state, and the slave delivers them on time after `kill -9` of the master (a
/// job already late at the takeover at once), each copy exactly once: a repeated job
/// that fired once on the master (its copy consumed there) fires its remaining repeats
/// on the slave, no more.
#[test]
fn scheduled_messages_are_delivered_on_time_by_the_slave_after_takeover() {
    let _slot = test_slot();
    let mut opts = PairOpts::default();
    for n in [&mut opts.master, &mut opts.slave] {
        n.broker_attrs = Some(r#"schedulerSupport="true""#.into());
    }
    let pair = Pair::start(opts);
    let epoch0 = epoch_of(&pair.slave);
    let mut producer = Stomp::connect(pair.master.stomp_port);
    let send = |p: &mut Stomp, dest: &str, body: &str, headers: &[(&str, &str)]| {
        let receipt = format!("r-{body}");
        let mut h = vec![
            ("destination", dest),
            ("persistent", "true"),
            ("receipt", receipt.as_str()),
        ];
        h.extend_from_slice(headers);
        p.send_frame("SEND", &h, body.as_bytes());
        p.expect_receipt(&receipt);
    };
    // The repeated job first: its first copy is consumed on the master below.
    send(
        &mut producer,
        "/queue/sched.repeat",
        "tick",
        &[
            ("AMQ_SCHEDULED_DELAY", "300"),
            ("AMQ_SCHEDULED_PERIOD", "2500"),
            ("AMQ_SCHEDULED_REPEAT", "2"),
        ],
    );
    let sent_at = Instant::now();
    send(
        &mut producer,
        "/queue/sched.once",
        "late",
        &[("AMQ_SCHEDULED_DELAY", "1500")],
    );
    send(
        &mut producer,
        "/queue/sched.once",
        "later",
        &[("AMQ_SCHEDULED_DELAY", "7000")],
    );
    drop(producer);
    let mut consumer = Stomp::connect(pair.master.stomp_port);
    consumer.subscribe("r", "/queue/sched.repeat", "client");
    let first = consumer.expect_message();
    assert_eq!(first.body, b"tick");
    let ack = first.header("ack").expect("ack header").to_string();
    consumer.send_frame("ACK", &[("id", &ack), ("receipt", "acked")], b"");
    consumer.expect_receipt("acked");
    drop(consumer);
    assert!(
        sent_at.elapsed() < Duration::from_millis(1400),
        "the kill must come before the next firings; test machine too slow"
    );

    pair.takeover_time();
    assert_took_over(&pair.slave, epoch0, Some(1));
    let mut c = Stomp::connect(pair.slave.stomp_port);
    c.subscribe("o", "/queue/sched.once", "auto");
    let late = c.expect_message();
    assert_eq!(late.body, b"late");
    assert!(late.header("scheduledJobId").is_some(), "{late:?}");
    let later = c
        .read_frame(Duration::from_secs(15))
        .expect("the 7 s job fires on the slave");
    let at = sent_at.elapsed();
    assert_eq!(later.body, b"later");
    assert!(
        at >= Duration::from_millis(6900) && at <= Duration::from_millis(9000),
        "the 7 s job fired at {at:?}"
    );
    c.subscribe("r", "/queue/sched.repeat", "auto");
    let mut ids = vec![first.header("message-id").unwrap_or_default().to_string()];
    // Fired at ~2.8 s and ~5.3 s: both before `later`, so both are queued by now.
    for _ in 0..2 {
        let f = c.expect_message();
        assert_eq!(f.body, b"tick");
        ids.push(f.header("message-id").unwrap_or_default().to_string());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "three copies, each its own id");
    assert!(
        matches!(c.read_frame(Duration::from_secs(3)), Err(ReadEnd::Timeout)),
        "no copy beyond repeat + 1, nothing fired twice"
    );
}
