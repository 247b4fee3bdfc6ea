//! A slow or stopped slave never grows its master (issue 11): what the master holds in
//! memory for the slave is bounded by `replicationBuffer`; beyond it the slave reads
//! what it missed from the master's journal, and non-persistent frames are dropped
//! for it. Real processes, real signals; RSS compared with a measured baseline, never
//! a timing.

mod support;

use std::collections::BTreeSet;
use std::thread;
use std::time::{Duration, Instant};

use support::pair::{peer, test_slot, Node, NodeOpts, Pair, PairOpts, SYNC_TIMEOUT};
use support::{poll_until, proc_status_bytes, REPLY_TIMEOUT};

const MIB: u64 = 1 << 20;
/// `replicationBuffer` of the test masters.
const BUFFER: u64 = 2 * MIB;
/// `<memoryUsage limit>` of both nodes: message bodies beyond it stay on disk, so a
/// backlog costs the master about this much, whatever its size.
const MEMORY_LIMIT: u64 = 8 * MIB;
/// Sends a connection may have unconfirmed before the broker stops reading it
/// (`BrokerSettings::max_pending_sends`): while the stopped slave is still attached,
/// every producer's window is full and held (message and journal batch) until the
/// master gives the slave up.
const SEND_WINDOW: u64 = 256;
/// What RSS may move by for reasons of its own (allocator arenas, the journal's
/// write buffers, the catch-up pipeline (`replicationBuffer` of chunks), thread stacks).
const MARGIN: u64 = 48 * MIB;
/// Body of each test message.
const BODY_BYTES: usize = 16 * 1024;
const PRODUCERS: usize = 4;
/// How long the stopped slave stays stopped while the master serves alone.
const STOPPED_FOR: Duration = Duration::from_secs(10);

fn opts(name: &str, heartbeat_ms: u64, ack_timeout_ms: u64, memory_limit: u64) -> NodeOpts {
    let mut o = NodeOpts::named(name);
    o.memory_limit = format!("{} mb", memory_limit / MIB);
    o.segment_size = "4 mb".into();
    o.heartbeat_ms = Some(heartbeat_ms);
    o.replication_ack_timeout_ms = Some(ack_timeout_ms);
    o.replication_buffer = Some("2 mb".into());
    o
}

fn pair(heartbeat_ms: u64, ack_timeout_ms: u64, memory_limit: u64) -> Pair {
    Pair::start(PairOpts {
        master: opts("master", heartbeat_ms, ack_timeout_ms, memory_limit),
        slave: opts("slave", heartbeat_ms, ack_timeout_ms, memory_limit),
        ..PairOpts::default()
    })
}

/// `PRODUCERS` connections each send `per_producer` messages of [`BODY_BYTES`] to
/// `dest` without waiting (no receipt), then one receipted message; returns once
/// every producer has its receipt, i.e. the master has confirmed all of it. Each
/// body starts with its id (`p<producer>-<n>`); returns the ids.
fn flood(node: &Node, dest: &str, persistent: bool, per_producer: usize) -> BTreeSet<String> {
    let persistent = if persistent { "true" } else { "false" };
    let handles: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let mut c = node.client();
            c.stream
                .set_write_timeout(Some(REPLY_TIMEOUT))
                .expect("write timeout");
            let dest = dest.to_string();
            thread::spawn(move || {
                let mut ids = Vec::with_capacity(per_producer + 1);
                for n in 0..=per_producer {
                    let id = format!("p{p}-{n}");
                    let mut body = id.clone().into_bytes();
                    body.push(b' ');
                    body.resize(BODY_BYTES, b'x');
                    let receipt = format!("last-{p}");
                    let mut headers =
                        vec![("destination", dest.as_str()), ("persistent", persistent)];
                    if n == per_producer {
                        headers.push(("receipt", receipt.as_str()));
                    }
                    c.send_frame("SEND", &headers, &body);
                    ids.push(id);
                }
                c.expect_receipt(&format!("last-{p}"));
                ids
            })
        })
        .collect();
    handles
        .into_iter()
        .flat_map(|h| h.join().expect("producer"))
        .collect()
}

/// Reads `count` messages of `dest` from `node` and returns their ids.
fn drain(node: &Node, dest: &str, count: usize) -> BTreeSet<String> {
    let mut c = node.client();
    c.subscribe("1", dest, "auto");
    let mut ids = BTreeSet::new();
    for i in 0..count {
        let m = c
            .read_frame(REPLY_TIMEOUT)
            .unwrap_or_else(|e| panic!("message {i} of {count} of {dest}: {e:?}"));
        assert_eq!(m.command, "MESSAGE", "{m:?}");
        let id = m
            .body
            .split(|b| *b == b' ')
            .next()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        assert!(ids.insert(id.clone()), "{id} delivered twice");
    }
    ids
}

fn overflow(s: &serde_json::Value, field: &str) -> u64 {
    s["replication"]["overflow"][field].as_u64().unwrap_or(0)
}

/// The slave is stopped (SIGSTOP) for 10 s while producers keep sending persistent
/// messages, far more than `replicationBuffer`: the master switches the slave's stream to the
/// journal instead of queueing, drops the silent slave after `replicationAckTimeout`
/// and keeps serving, its peak RSS within baseline + memory limit + 2 x buffer +
/// the producers' send windows + margin. After SIGCONT the slave reattaches, catches up from the journal and is in
/// sync; the master is then killed and the slave delivers every confirmed message.
#[test]
fn a_stopped_slave_never_grows_the_master() {
    let _slot = test_slot();
    // A 1 s heartbeat (lost after 5 s) and a 2 s ack timeout: the master holds the
    // stopped slave for a while, long enough for the flood to reach the bound.
    let pair = pair(1000, 2000, MEMORY_LIMIT);
    // Warm up (connections, journal buffers), then measure the baseline.
    let warm = flood(&pair.master, "/queue/warm", true, 50);
    pair.wait_in_sync(SYNC_TIMEOUT);
    let baseline = proc_status_bytes(pair.master.pid(), "VmRSS");

    let stopped_at = Instant::now();
    pair.slave.signal(libc::SIGSTOP);
    // 4 x 2000 x 16 KiB = 125 MiB, 62 times the bound: a master that kept it for the
    // slave would be far beyond the bound below.
    let sent = flood(&pair.master, "/queue/slow", true, 1999);
    let stopped = pair
        .master
        .wait_status(|s| peer(s) == "degraded", REPLY_TIMEOUT);
    // The load goes on until the slave has been stopped for STOPPED_FOR: the master
    // serves alone meanwhile (one queue per round, as ids repeat across rounds).
    let mut more = Vec::new();
    while stopped_at.elapsed() < STOPPED_FOR {
        let dest = format!("/queue/more-{}", more.len());
        let ids = flood(&pair.master, &dest, true, 99);
        more.push((dest, ids));
    }
    let peak = proc_status_bytes(pair.master.pid(), "VmHWM");
    let windows = PRODUCERS as u64 * SEND_WINDOW * BODY_BYTES as u64;
    let bound = baseline + MEMORY_LIMIT + 2 * BUFFER + windows + MARGIN;
    eprintln!(
        "master RSS: baseline {} MiB, peak with the slave stopped {} MiB (bound {} MiB); \
         sent {} MiB; replication: {}",
        baseline / MIB,
        peak / MIB,
        bound / MIB,
        (sent.len() * BODY_BYTES) as u64 / MIB,
        stopped["replication"]
    );
    assert!(
        overflow(&stopped, "switches") >= 1 && overflow(&stopped, "deferred_bytes") > 0,
        "the flood never reached replicationBuffer: {}",
        stopped["replication"]
    );
    assert!(
        peak <= bound,
        "master peak RSS {} MiB beyond baseline {} MiB + limit + 2 x buffer + send windows + margin",
        peak / MIB,
        baseline / MIB
    );

    pair.slave.signal(libc::SIGCONT);
    let (m, _) = pair.wait_in_sync(SYNC_TIMEOUT);
    eprintln!("in sync again; master replication: {}", m["replication"]);

    pair.master.kill9();
    pair.slave.wait_serving(Duration::from_secs(30));
    assert_eq!(drain(&pair.slave, "/queue/slow", sent.len()), sent);
    assert_eq!(drain(&pair.slave, "/queue/warm", warm.len()), warm);
    for (dest, ids) in &more {
        assert_eq!(&drain(&pair.slave, dest, ids.len()), ids, "{dest}");
    }
}

/// A slave stopped for less than its heartbeat allows stays attached: the master
/// switches its stream to the journal when the bound is reached and drops
/// non-persistent frames for it (counted); after SIGCONT the same link catches up
/// from the journal and is in sync again, and the slave holds every persistent
/// message.
#[test]
fn a_stalled_slave_catches_up_from_the_journal_on_the_same_link() {
    let _slot = test_slot();
    // Lost after 5 x 3 s of silence, and the ack timeout as long: only the bound acts.
    // Memory for the whole persistent flood and the non-persistent one: with the
    // 8 mb limit the persistent backlog fills it, and the broker then holds
    // non-persistent producers back (their receipts wait for room), which is flow
    // control, not the replication path under test.
    const LIMIT: u64 = 64 * MIB;
    let pair = pair(3000, 15_000, LIMIT);
    let baseline = proc_status_bytes(pair.master.pid(), "VmRSS");

    pair.slave.signal(libc::SIGSTOP);
    // Receipts wait for the in-sync slave, so the floods finish after SIGCONT.
    let master = &pair.master;
    let (sent, volatile) = thread::scope(|scope| {
        let persistent = scope.spawn(|| flood(master, "/queue/stalled", true, 499));
        let switched = poll_until(REPLY_TIMEOUT, || {
            master
                .try_status()
                .is_some_and(|s| overflow(&s, "switches") >= 1)
        });
        // Then non-persistent messages, 4 x 64 x 16 KiB = 4 MiB (twice the bound):
        // the link is full, so they are dropped for the slave.
        let volatile = scope.spawn(|| flood(master, "/queue/volatile", false, 63));
        let dropped = poll_until(REPLY_TIMEOUT, || {
            master
                .try_status()
                .is_some_and(|s| overflow(&s, "volatile_dropped") >= 1)
        });
        let status = master.status();
        let peak = proc_status_bytes(master.pid(), "VmHWM");
        pair.slave.signal(libc::SIGCONT);
        // The non-persistent messages themselves live in the master's memory.
        let windows = PRODUCERS as u64 * SEND_WINDOW * BODY_BYTES as u64;
        let bound = baseline + LIMIT + 2 * BUFFER + windows + MARGIN;
        eprintln!(
            "slave stopped: master RSS baseline {} MiB, peak {} MiB (bound {} MiB); \
             replication: {}",
            baseline / MIB,
            peak / MIB,
            bound / MIB,
            status["replication"]
        );
        assert!(
            switched && dropped,
            "the floods never reached replicationBuffer: {}",
            status["replication"]
        );
        assert!(
            peak <= bound,
            "master peak RSS {} MiB beyond baseline {} MiB + limit + 2 x buffer + send windows + margin",
            peak / MIB,
            baseline / MIB
        );
        (
            persistent.join().expect("persistent flood"),
            volatile.join().expect("volatile flood"),
        )
    });
    let (m, _) = pair.wait_in_sync(SYNC_TIMEOUT);
    eprintln!(
        "in sync again; {} persistent and {} non-persistent messages; master replication: {}",
        sent.len(),
        volatile.len(),
        m["replication"]
    );
    let log = pair.master.log();
    assert!(
        log.contains("reading what the slave missed from the journal"),
        "the master never read the slave's backlog from the journal on the link"
    );
    assert!(
        !log.contains("slave lost"),
        "the stalled slave was dropped rather than caught up on its link:\n{}",
        pair.master.log_tail(40)
    );

    pair.master.kill9();
    pair.slave.wait_serving(Duration::from_secs(30));
    assert_eq!(drain(&pair.slave, "/queue/stalled", sent.len()), sent);
}
