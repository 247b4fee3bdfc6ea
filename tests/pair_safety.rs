//! Silence without a crash (design/SCENARIOS.md F1, F2): a master paused by SIGSTOP
//! (a VM pause) and a replication link cut while both nodes live. Real processes;
//! the cut is an iptables DROP in a router namespace between the nodes
//! (`support/partition.rs`), so it is silence, not a reset.
//!
//! The producer here is a small failover client written for the test: each session
//! connects to the first node that answers, in a fixed order (the configured master
//! first, as `failover:(...)?randomize=false` does on every new connection), sends
//! [`SESSION_SENDS`] persistent messages one at a time with receipts, then starts a new
//! session. Any timeout, close or ERROR ends the session, and the next one starts
//! from the other node (so a node that accepts connections but not writes cannot hold
//! the producer); a session that ended normally is followed by one that starts from
//! the configured master again. A sequence number is never
//! sent twice, so a message delivered twice unflagged is a broker's duplicate. Every
//! receipt is logged with the node that sent it and when ([`Confirmations`]).
//!
//! The invariant checked: never two nodes confirming writes. With one producer thread
//! the log is in program order, so "the node that confirmed first confirms nothing
//! after another node's first confirmation" is exact. Times are printed, never
//! asserted; every loop is bounded.
//!
//! Run (as root; the namespace tests need CAP_SYS_ADMIN):
//! `cargo test --test pair_safety -- --nocapture`.

mod support;

use std::collections::BTreeMap;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::pair::{
    epoch, is_master_in_sync, is_slave_in_sync, peer, role, scenario_delay, stomp_connect_at,
    test_slot, Node, Pair, PairOpts, SYNC_TIMEOUT,
};
use support::partition::Net;
use support::{encode, poll_until, run_bounded, tandem_bin, Frame, ReadEnd, REPLY_TIMEOUT};

const DEST: &str = "/queue/safety";
/// Sends per producer session before it reconnects (from the first node again).
const SESSION_SENDS: u64 = 20;
/// How long the producer waits for a RECEIPT before it gives the session up. Shorter
/// than the pause and the cut, so a receipt a stopped node sends after SIGCONT goes
/// to a connection the producer has already closed: it is never counted.
const RECEIPT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long the producer waits for CONNECTED before it tries the next node (a stopped
/// node accepts TCP connections but never answers).
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Bound on the producer and sampler threads.
const RUN_LIMIT: Duration = Duration::from_secs(300);
/// How long /status may take to answer a sample (a stopped node never does).
const SAMPLE_TIMEOUT: Duration = Duration::from_millis(300);

// ---------------------------------------------------------------------------------
// What the producer saw

/// One RECEIPT: message `seq` was confirmed by node `node` (index into the producer's
/// targets) at `at` (since the test started).
#[derive(Clone, Copy, Debug)]
struct Confirmed {
    seq: u64,
    node: usize,
    at: Duration,
}

/// The producer's log; shared with the test thread.
struct Confirmations {
    started: Instant,
    /// Node names, by target index.
    names: Vec<String>,
    confirmed: Mutex<Vec<Confirmed>>,
    /// Sends without a receipt: (seq, node, why). They may or may not be stored.
    unconfirmed: Mutex<Vec<(u64, usize, String)>>,
}

impl Confirmations {
    fn new(started: Instant, names: &[&str]) -> Confirmations {
        Confirmations {
            started,
            names: names.iter().map(|n| n.to_string()).collect(),
            confirmed: Mutex::new(Vec::new()),
            unconfirmed: Mutex::new(Vec::new()),
        }
    }

    fn all(&self) -> Vec<Confirmed> {
        self.confirmed.lock().unwrap().clone()
    }

    fn count(&self) -> usize {
        self.confirmed.lock().unwrap().len()
    }

    fn count_since(&self, at: Duration) -> usize {
        self.confirmed
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.at >= at)
            .count()
    }

    /// Confirmations that contradict "one node confirms at a time": those by the node
    /// that confirmed first, made after some other node's first confirmation (and any
    /// later return to yet another node). Empty if only one node ever confirmed.
    fn after_another_node_confirmed(&self) -> Vec<Confirmed> {
        let all = self.all();
        let Some(first) = all.first().map(|c| c.node) else {
            return Vec::new();
        };
        let Some(switch) = all.iter().position(|c| c.node != first) else {
            return Vec::new();
        };
        let second = all[switch].node;
        all[switch..]
            .iter()
            .filter(|c| c.node != second)
            .copied()
            .collect()
    }

    /// Per node: how many, first and last time, and how many in each phase.
    fn summary(&self, phases: &[(&str, Duration)]) -> String {
        let all = self.all();
        let mut out = String::new();
        for (i, name) in self.names.iter().enumerate() {
            let mine: Vec<&Confirmed> = all.iter().filter(|c| c.node == i).collect();
            let (Some(first), Some(last)) = (mine.first(), mine.last()) else {
                out.push_str(&format!("  {name}: confirmed nothing\n"));
                continue;
            };
            let per_phase: Vec<String> = phases
                .iter()
                .enumerate()
                .map(|(k, (label, from))| {
                    let to = phases.get(k + 1).map_or(Duration::MAX, |p| p.1);
                    let n = mine.iter().filter(|c| c.at >= *from && c.at < to).count();
                    format!("{label}: {n}")
                })
                .collect();
            out.push_str(&format!(
                "  {name}: {} confirmed (seq {}..={}), first at {} ms, last at {} ms; {}\n",
                mine.len(),
                first.seq,
                last.seq,
                first.at.as_millis(),
                last.at.as_millis(),
                per_phase.join(", ")
            ));
        }
        let unconfirmed = self.unconfirmed.lock().unwrap();
        out.push_str(&format!(
            "  sends without a receipt: {} {:?}\n",
            unconfirmed.len(),
            unconfirmed
                .iter()
                .take(12)
                .map(|(s, n, why)| format!("{s}@{} ({why})", self.names[*n]))
                .collect::<Vec<_>>()
        ));
        out
    }
}

/// Runs failover sessions over `targets` (in order) until `stop`; see the module doc.
fn produce(targets: &[SocketAddr], log: &Confirmations, stop: &AtomicBool) {
    let deadline = Instant::now() + RUN_LIMIT;
    let mut seq = 0u64;
    // Where the next session starts looking.
    let mut first = 0;
    for _session in 0..1_000_000 {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        assert!(Instant::now() < deadline, "producer still running");
        let session = (0..targets.len())
            .map(|k| (first + k) % targets.len())
            .find_map(
                |i| match stomp_connect_at(targets[i], None, CONNECT_TIMEOUT) {
                    Some((s, f)) if f.command == "CONNECTED" => Some((i, s)),
                    _ => None,
                },
            );
        let Some((node, mut conn)) = session else {
            // Nobody serves right now (a takeover in progress): a short back-off.
            scenario_delay(Duration::from_millis(20));
            continue;
        };
        // Unless this session fails.
        first = 0;
        conn.stream.set_write_timeout(Some(RECEIPT_TIMEOUT)).ok();
        for _ in 0..SESSION_SENDS {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            seq += 1;
            let (s, receipt) = (seq.to_string(), format!("r-{seq}"));
            let frame = encode(
                "SEND",
                &[
                    ("destination", DEST),
                    ("persistent", "true"),
                    ("receipt", &receipt),
                    ("seq", &s),
                ],
                format!("message {seq}").as_bytes(),
            );
            let why = match conn.try_send_raw(&frame) {
                Err(e) => format!("write: {}", e.kind()),
                Ok(()) => match conn.read_frame(RECEIPT_TIMEOUT) {
                    Ok(f) if f.command == "RECEIPT" && f.header("receipt-id") == Some(&receipt) => {
                        let at = log.started.elapsed();
                        log.confirmed
                            .lock()
                            .unwrap()
                            .push(Confirmed { seq, node, at });
                        // A steady rate rather than a burst.
                        scenario_delay(Duration::from_millis(5));
                        continue;
                    }
                    Ok(f) => format!("{} {:?}", f.command, f.header("message")),
                    Err(ReadEnd::Timeout) => "timeout".into(),
                    Err(ReadEnd::Closed) => "closed".into(),
                },
            };
            log.unconfirmed.lock().unwrap().push((seq, node, why));
            first = (node + 1) % targets.len();
            break;
        }
    }
}

// ---------------------------------------------------------------------------------
// What /status said

/// One /status sample of one node: (since start, role, epoch, peer), or None if it
/// did not answer within [`SAMPLE_TIMEOUT`].
type Sample = (Duration, Option<(String, u64, String)>);

/// Samples both nodes' /status every ~50 ms until `stop`.
fn sample_status(nodes: [&Node; 2], started: Instant, stop: &AtomicBool) -> [Vec<Sample>; 2] {
    let mut out: [Vec<Sample>; 2] = [Vec::new(), Vec::new()];
    let deadline = Instant::now() + RUN_LIMIT;
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        for (k, node) in nodes.iter().enumerate() {
            let s = node.try_status_within(SAMPLE_TIMEOUT).map(|s| {
                (
                    role(&s).to_string(),
                    epoch(&s).unwrap_or(0),
                    peer(&s).to_string(),
                )
            });
            out[k].push((started.elapsed(), s));
        }
        scenario_delay(Duration::from_millis(50));
    }
    out
}

/// Confirmations by a node made after the other node had said on /status that it was
/// master with a higher epoch than the one this node served with: writes accepted
/// by a master that had been replaced. A node's epoch for a confirmation is the one
/// of its last master sample before it, else of its first one after it (a sample
/// may lag a takeover).
fn confirmed_under_a_newer_master(
    log: &Confirmations,
    samples: &[Vec<Sample>; 2],
) -> Vec<(Confirmed, u64, u64)> {
    let masters: Vec<Vec<(Duration, u64)>> = samples
        .iter()
        .map(|v| {
            v.iter()
                .filter_map(|(at, s)| match s {
                    Some((r, e, _)) if r == "master" => Some((*at, *e)),
                    _ => None,
                })
                .collect()
        })
        .collect();
    let mut out = Vec::new();
    for c in log.all() {
        let mine = &masters[c.node];
        let Some(own) = mine
            .iter()
            .rev()
            .find(|(at, _)| *at <= c.at)
            .or_else(|| mine.iter().find(|(at, _)| *at > c.at))
            .map(|(_, e)| *e)
        else {
            continue;
        };
        if let Some((_, newer)) = masters[1 - c.node]
            .iter()
            .find(|(at, e)| *at <= c.at && *e > own)
        {
            out.push((c, own, *newer));
        }
    }
    out
}

/// The samples as a timeline of changes per node, and the times at which both nodes
/// said "master" in the same round.
fn status_report(names: [&str; 2], samples: &[Vec<Sample>; 2]) -> String {
    let mut out = String::new();
    for (k, name) in names.iter().enumerate() {
        let mut last: Option<&Option<(String, u64, String)>> = None;
        let mut line = Vec::new();
        for (at, s) in &samples[k] {
            if last != Some(s) {
                line.push(match s {
                    Some((r, e, p)) => format!("{} ms {r} epoch {e:#x} peer {p}", at.as_millis()),
                    None => format!("{} ms no answer", at.as_millis()),
                });
                last = Some(s);
            }
        }
        out.push_str(&format!("  {name}: {}\n", line.join(" -> ")));
    }
    let both: Vec<u128> = samples[0]
        .iter()
        .zip(&samples[1])
        .filter(|(a, b)| {
            matches!((&a.1, &b.1), (Some((ra, _, _)), Some((rb, _, _))) if ra == "master" && rb == "master")
        })
        .map(|(a, _)| a.0.as_millis())
        .collect();
    out.push_str(&format!(
        "  both said master in {} sample rounds{}\n",
        both.len(),
        both.first()
            .map(|f| format!(" (first at {f} ms, last at {} ms)", both.last().unwrap()))
            .unwrap_or_default()
    ));
    out
}

// ---------------------------------------------------------------------------------
// After the fact

/// The node of `nodes` that serves (role master, highest epoch), and the other one.
fn serving_and_stale(nodes: [&Node; 2]) -> (&Node, &Node) {
    let epochs: Vec<Option<u64>> = nodes
        .iter()
        .map(|n| {
            if !n.is_running() {
                return None;
            }
            n.try_status_within(Duration::from_secs(5))
                .filter(|s| role(s) == "master")
                .and_then(|s| epoch(&s))
        })
        .collect();
    match (epochs[0], epochs[1]) {
        (Some(a), Some(b)) if b > a => (nodes[1], nodes[0]),
        (None, Some(_)) => (nodes[1], nodes[0]),
        (Some(_), _) => (nodes[0], nodes[1]),
        (None, None) => panic!(
            "neither node serves as master: {}: {:?}; {}: {:?}",
            nodes[0].name(),
            nodes[0].try_status_within(Duration::from_secs(5)),
            nodes[1].name(),
            nodes[1].try_status_within(Duration::from_secs(5)),
        ),
    }
}

/// Restarts `stale` unless it is already an in-sync slave (exited, or still a master
/// with an older epoch, or anything else), then waits until `serving` is a master
/// with `stale` as its in-sync slave.
fn restart_stale(serving: &Node, stale: &Node) {
    let in_sync = stale.is_running()
        && stale
            .try_status_within(Duration::from_secs(5))
            .is_some_and(|s| is_slave_in_sync(&s));
    if in_sync {
        println!(
            "{} is already an in-sync slave: not restarted",
            stale.name()
        );
    } else {
        println!(
            "restarting {} (running: {}, exit status: {:?}, /status: {:?})",
            stale.name(),
            stale.is_running(),
            stale.try_exit_status(),
            stale.try_status_within(Duration::from_secs(2))
        );
        println!("{} log tail:\n{}", stale.name(), stale.log_tail(25));
        stale.restart();
    }
    let t = Instant::now();
    let ok = poll_until(SYNC_TIMEOUT, || {
        serving.assert_running();
        stale.assert_running();
        serving.try_status().is_some_and(|s| is_master_in_sync(&s))
            && stale.try_status().is_some_and(|s| is_slave_in_sync(&s))
    });
    assert!(
        ok,
        "{} never became the in-sync slave of {} within {SYNC_TIMEOUT:?}: {:?} / {:?}; log \
         tail:\n{}",
        stale.name(),
        serving.name(),
        stale.try_status(),
        serving.try_status(),
        stale.log_tail(40)
    );
    println!(
        "{} in sync as slave of {} after {} ms",
        stale.name(),
        serving.name(),
        t.elapsed().as_millis()
    );
}

/// Consumes everything on [`DEST`] at `node` (auto ack): a sentinel is sent after
/// subscribing and everything before it is collected.
fn drain(node: &Node) -> Vec<Frame> {
    let mut c = node.client();
    c.subscribe("drain", DEST, "auto");
    c.send_frame(
        "SEND",
        &[
            ("destination", DEST),
            ("persistent", "true"),
            ("receipt", "sentinel"),
            ("x-sentinel", "1"),
        ],
        b"sentinel",
    );
    let mut got = Vec::new();
    for _ in 0..1_000_000 {
        let f = c
            .read_frame(REPLY_TIMEOUT)
            .unwrap_or_else(|e| panic!("{}: waiting for the sentinel: {e:?}", node.name()));
        match f.command.as_str() {
            "RECEIPT" => {}
            "MESSAGE" if f.header("x-sentinel").is_some() => return got,
            "MESSAGE" => got.push(f),
            _ => panic!("{}: unexpected frame {f:?}", node.name()),
        }
    }
    panic!("{}: sentinel never arrived", node.name());
}

/// What a drain shows against the confirmations: (confirmed but missing, delivered
/// more than once without `redelivered:true`, delivered but never sent).
fn check_delivered(
    frames: &[Frame],
    log: &Confirmations,
) -> (Vec<u64>, Vec<(u64, u32)>, Vec<String>) {
    let sent_max = {
        let c = log.all().iter().map(|c| c.seq).max().unwrap_or(0);
        let u = log
            .unconfirmed
            .lock()
            .unwrap()
            .iter()
            .map(|u| u.0)
            .max()
            .unwrap_or(0);
        c.max(u)
    };
    // seq -> (deliveries, unflagged deliveries)
    let mut seen: BTreeMap<u64, (u32, u32)> = BTreeMap::new();
    let mut unknown = Vec::new();
    for f in frames {
        match f.header("seq").and_then(|s| s.parse::<u64>().ok()) {
            Some(s) if (1..=sent_max).contains(&s) && f.body_str() == format!("message {s}") => {
                let e = seen.entry(s).or_default();
                e.0 += 1;
                if f.header("redelivered") != Some("true") {
                    e.1 += 1;
                }
            }
            _ => unknown.push(format!("{:?} {:?}", f.header("seq"), f.body_str())),
        }
    }
    let missing = log
        .all()
        .iter()
        .map(|c| c.seq)
        .filter(|s| !seen.contains_key(s))
        .collect();
    let duplicated = seen
        .iter()
        .filter(|(_, (_, unflagged))| *unflagged > 1)
        .map(|(s, (_, u))| (*s, *u))
        .collect();
    (missing, duplicated, unknown)
}

/// Directories named `diverged-*` anywhere under `dir`.
fn diverged_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    for _ in 0..100_000 {
        let Some(d) = todo.pop() else { break };
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                if e.file_name().to_string_lossy().starts_with("diverged-") {
                    found.push(p);
                } else {
                    todo.push(p);
                }
            }
        }
    }
    found.sort();
    found
}

// ---------------------------------------------------------------------------------
// F1: a paused master

/// F1. The master is SIGSTOPped for 2 s under load (a VM pause), then resumed. The
/// slave loses its heartbeats and takes over meanwhile; whatever each node then
/// does, never do both confirm writes, and after the stale node is restarted every
/// confirmed message is on the serving node, once.
#[test]
fn a_paused_master_never_makes_two_masters() {
    const PAUSE: Duration = Duration::from_secs(2);
    let _slot = test_slot();
    let pair = Pair::start(PairOpts::default());
    let (a, b) = (&pair.master, &pair.slave);
    let started = Instant::now();
    let log = Confirmations::new(started, &[a.name(), b.name()]);
    let targets = [a.stomp_addr(), b.stomp_addr()];
    let (stop_producer, stop_sampler) = (AtomicBool::new(false), AtomicBool::new(false));
    let (mut paused_at, mut resumed_at) = (Duration::ZERO, Duration::ZERO);

    let samples = std::thread::scope(|scope| {
        let producer = scope.spawn(|| produce(&targets, &log, &stop_producer));
        let sampler = scope.spawn(|| sample_status([a, b], started, &stop_sampler));
        let warmed = poll_until(Duration::from_secs(60), || {
            log.count() >= 200 || producer.is_finished()
        });
        assert!(warmed && !producer.is_finished(), "producer too slow");

        paused_at = started.elapsed();
        a.signal(libc::SIGSTOP);
        scenario_delay(PAUSE);
        a.signal(libc::SIGCONT);
        resumed_at = started.elapsed();
        println!(
            "{} stopped at {} ms, continued at {} ms",
            a.name(),
            paused_at.as_millis(),
            resumed_at.as_millis()
        );

        // Keep sending: new sessions start at the old master again.
        scenario_delay(Duration::from_secs(3));
        poll_until(Duration::from_secs(30), || {
            log.count_since(resumed_at) >= 100 || producer.is_finished()
        });
        stop_producer.store(true, Ordering::SeqCst);
        producer.join().expect("producer thread");
        stop_sampler.store(true, Ordering::SeqCst);
        sampler.join().expect("sampler thread")
    });

    let phases = [
        ("before the pause", Duration::ZERO),
        ("paused", paused_at),
        ("after SIGCONT", resumed_at),
    ];
    println!(
        "confirmations:\n{}/status:\n{}",
        log.summary(&phases),
        status_report([a.name(), b.name()], &samples)
    );
    let interleaved = log.after_another_node_confirmed();
    let replaced = confirmed_under_a_newer_master(&log, &samples);

    let (serving, stale) = serving_and_stale([a, b]);
    println!("serving: {}; stale: {}", serving.name(), stale.name());
    restart_stale(serving, stale);
    let frames = drain(serving);
    let (missing, duplicated, unknown) = check_delivered(&frames, &log);
    println!(
        "drained {} messages from {}: {} confirmed missing, {} unflagged duplicates, {} unknown",
        frames.len(),
        serving.name(),
        missing.len(),
        duplicated.len(),
        unknown.len()
    );

    let mut problems = Vec::new();
    if let Some(c) = interleaved.first() {
        problems.push(format!(
            "two nodes confirmed writes: {} confirmations by {} after {} had confirmed (the \
             first: seq {} at {} ms)",
            interleaved.len(),
            log.names[c.node],
            log.names[1 - c.node],
            c.seq,
            c.at.as_millis()
        ));
    }
    if let Some((c, own, newer)) = replaced.first() {
        problems.push(format!(
            "{} confirmations by a replaced master: the first, seq {} at {} ms by {} (epoch \
             {own:#x}), after {} said master with epoch {newer:#x}",
            replaced.len(),
            c.seq,
            c.at.as_millis(),
            log.names[c.node],
            log.names[1 - c.node]
        ));
    }
    if !missing.is_empty() {
        problems.push(format!(
            "{} confirmed messages not on {}: {}",
            missing.len(),
            serving.name(),
            seq_ranges(&missing)
        ));
    }
    if !duplicated.is_empty() {
        problems.push(format!("unflagged duplicates (seq, times): {duplicated:?}"));
    }
    if !unknown.is_empty() {
        problems.push(format!("messages nobody sent: {unknown:?}"));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// `[1, 2, 3, 7]` as "1..=3, 7".
fn seq_ranges(seqs: &[u64]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut k = 0;
    while k < seqs.len() {
        let start = seqs[k];
        let mut end = start;
        while k + 1 < seqs.len() && seqs[k + 1] == end + 1 {
            k += 1;
            end = seqs[k];
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}..={end}")
        });
        k += 1;
    }
    out.join(", ")
}

// ---------------------------------------------------------------------------------
// F2: a cut link, no witness

/// F2 without a witness. The link between master and slave is cut for 5 s while a
/// producer sends (clients reach both nodes). The slave may take over; the master,
/// still reachable by clients, may keep confirming: two histories. When the link
/// heals, the node with the older epoch steps down, rejoins as slave and sets the
/// records only it confirmed aside in `shard-N/diverged-*`; `tandem journal
/// replay-diverged <dir> --url <failover url>` sends them to the serving master, which
/// then holds every confirmed message.
#[test]
fn a_cut_link_without_witness_keeps_what_diverged_and_replays_it() {
    const CUT: Duration = Duration::from_secs(5);
    let _slot = test_slot();
    let net = Net::new(&["master", "slave"]);
    net.run_in_router(|| {
        let pair = Pair::start(net.pair_opts());
        let (a, b) = (&pair.master, &pair.slave);
        let started = Instant::now();
        let log = Confirmations::new(started, &[a.name(), b.name()]);
        let targets = [a.stomp_addr(), b.stomp_addr()];
        let (stop_producer, stop_sampler) = (AtomicBool::new(false), AtomicBool::new(false));
        let (mut cut_at, mut healed_at, mut converged_at) = (Duration::ZERO, Duration::ZERO, None);

        let samples = std::thread::scope(|scope| {
            let producer = scope.spawn(|| produce(&targets, &log, &stop_producer));
            let sampler = scope.spawn(|| sample_status([a, b], started, &stop_sampler));
            let warmed = poll_until(Duration::from_secs(60), || {
                log.count() >= 200 || producer.is_finished()
            });
            assert!(warmed && !producer.is_finished(), "producer too slow");

            cut_at = started.elapsed();
            net.cut("master", "slave");
            scenario_delay(CUT);
            net.heal("master", "slave");
            healed_at = started.elapsed();

            // The pair converges: one master, its in-sync slave. The producer keeps
            // sending meanwhile.
            let converged = poll_until(SYNC_TIMEOUT, || {
                let (sa, sb) = (
                    a.try_status_within(Duration::from_secs(1)),
                    b.try_status_within(Duration::from_secs(1)),
                );
                let one_each = |m: &Option<serde_json::Value>, s: &Option<serde_json::Value>| {
                    m.as_ref().is_some_and(is_master_in_sync)
                        && s.as_ref().is_some_and(is_slave_in_sync)
                };
                one_each(&sa, &sb) || one_each(&sb, &sa)
            });
            if converged {
                converged_at = Some(started.elapsed());
                poll_until(Duration::from_secs(30), || {
                    log.count_since(converged_at.unwrap()) >= 50 || producer.is_finished()
                });
            }
            stop_producer.store(true, Ordering::SeqCst);
            producer.join().expect("producer thread");
            stop_sampler.store(true, Ordering::SeqCst);
            sampler.join().expect("sampler thread")
        });

        let phases = [
            ("before the cut", Duration::ZERO),
            ("cut", cut_at),
            ("healed", healed_at),
            ("converged", converged_at.unwrap_or(Duration::MAX)),
        ];
        println!(
            "cut at {} ms, healed at {} ms, converged at {:?} ms\nconfirmations:\n{}/status:\n{}",
            cut_at.as_millis(),
            healed_at.as_millis(),
            converged_at.map(|c| c.as_millis()),
            log.summary(&phases),
            status_report([a.name(), b.name()], &samples)
        );
        // Without a witness, both sides may accept writes during the cut: what the
        // replaced side confirmed must come back through the replay.
        let replaced = confirmed_under_a_newer_master(&log, &samples);
        println!(
            "confirmations by a replaced master: {} (seq {})",
            replaced.len(),
            seq_ranges(&replaced.iter().map(|r| r.0.seq).collect::<Vec<_>>())
        );
        assert!(
            converged_at.is_some(),
            "the pair did not converge (one master, one in-sync slave) within \
             {SYNC_TIMEOUT:?} of the heal: {}: {:?}; {}: {:?}",
            a.name(),
            a.try_status_within(Duration::from_secs(2)),
            b.name(),
            b.try_status_within(Duration::from_secs(2))
        );

        let (serving, stepped_down) = serving_and_stale([a, b]);
        let diverged: Vec<PathBuf> = [serving, stepped_down]
            .iter()
            .flat_map(|n| diverged_dirs(&n.data_dir()))
            .collect();
        println!(
            "serving: {}; stepped down: {}; diverged directories: {diverged:?}",
            serving.name(),
            stepped_down.name()
        );
        let url = format!(
            "failover:({},{})?randomize=false",
            serving.stomp_url(),
            stepped_down.stomp_url()
        );
        for dir in &diverged {
            let (status, out, err) = run_bounded(
                Command::new(tandem_bin())
                    .args(["journal", "replay-diverged"])
                    .arg(dir)
                    .args(["--url", &url])
                    .env("NO_COLOR", "1"),
                Duration::from_secs(120),
            )
            .unwrap_or_else(|e| panic!("replay-diverged {}: {e}", dir.display()));
            println!("replay-diverged {}: {status}\n{out}{err}", dir.display());
            assert!(
                status.success(),
                "replay-diverged {} failed: {status}\n{out}{err}",
                dir.display()
            );
        }

        let frames = drain(serving);
        let (missing, duplicated, unknown) = check_delivered(&frames, &log);
        println!(
            "drained {} messages from {}: {} confirmed missing, {} unflagged duplicates, {} \
             unknown",
            frames.len(),
            serving.name(),
            missing.len(),
            duplicated.len(),
            unknown.len()
        );
        assert!(
            missing.is_empty(),
            "{} confirmed messages not on {} after replaying {} diverged directories: {}",
            missing.len(),
            serving.name(),
            diverged.len(),
            seq_ranges(&missing)
        );
        assert!(
            duplicated.is_empty(),
            "unflagged duplicates: {duplicated:?}"
        );
        assert!(unknown.is_empty(), "messages nobody sent: {unknown:?}");
    });
}

// ---------------------------------------------------------------------------------
// The harness itself

/// Echoes what every connection on its listener sends (one thread per connection,
/// until the client closes). Dropping it stops accepting and closes the listener.
struct EchoServer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EchoServer {
    /// Serves `listener` (its socket stays in the namespace it was bound in, whatever
    /// thread uses it).
    fn start(listener: TcpListener) -> EchoServer {
        let stop = Arc::new(AtomicBool::new(false));
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let deadline = Instant::now() + RUN_LIMIT;
                while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                    match listener.accept() {
                        Ok((mut conn, _)) => {
                            conn.set_nonblocking(false).expect("blocking connection");
                            std::thread::spawn(move || {
                                let mut read = conn.try_clone().expect("clone");
                                let _ = std::io::copy(&mut read, &mut conn);
                            });
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            })
        };
        EchoServer {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Writes `msg` and reads it back within `timeout`: Ok, or the error kind.
fn echo(conn: &mut TcpStream, msg: &[u8], timeout: Duration) -> Result<(), std::io::ErrorKind> {
    use std::io::{Read, Write};
    conn.write_all(msg).map_err(|e| e.kind())?;
    conn.set_read_timeout(Some(timeout)).unwrap();
    let mut got = vec![0u8; msg.len()];
    conn.read_exact(&mut got).map_err(|e| e.kind())?;
    assert_eq!(got, msg);
    Ok(())
}

fn is_timeout(kind: std::io::ErrorKind) -> bool {
    matches!(
        kind,
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// A cut makes an established TCP connection between two namespaces silent (no reset)
/// and new connections time out; the router (the test's clients) still reaches both
/// ends; a heal lets the retransmissions through. `cut_all` isolates a node from every
/// other node, not from the router.
#[test]
fn partition_harness_cut_silences_and_heal_restores() {
    let net = Net::new(&["a", "b", "c"]);
    let (addr_a, addr_b, addr_c) = (net.addr("a"), net.addr("b"), net.addr("c"));
    let mut servers = Vec::new();
    let mut listen = |node: &str, addr| {
        let l = net.run_in(node, || TcpListener::bind((addr, 0)).expect("bind"));
        let port = l.local_addr().unwrap().port();
        servers.push(EchoServer::start(l));
        SocketAddr::from((addr, port))
    };
    let (at_a, at_b, at_c) = (
        listen("a", addr_a),
        listen("b", addr_b),
        listen("c", addr_c),
    );
    let connect_from = |node: &str, to: SocketAddr| {
        net.run_in(node, || {
            TcpStream::connect_timeout(&to, Duration::from_secs(2)).map_err(|e| e.kind())
        })
    };
    let from_router = |to: SocketAddr| {
        net.run_in_router(|| TcpStream::connect_timeout(&to, Duration::from_secs(2)).is_ok())
    };

    let mut ab = connect_from("a", at_b).expect("a -> b before the cut");
    echo(&mut ab, b"before", Duration::from_secs(10)).expect("echo a -> b before the cut");

    net.cut("a", "b");
    assert!(net.is_cut("a", "b") && net.is_cut("b", "a"));
    let silent = echo(&mut ab, b"during", Duration::from_secs(1));
    assert!(
        matches!(silent, Err(k) if is_timeout(k)),
        "a cut connection must go silent, not fail: {silent:?}"
    );
    let fresh = connect_from("a", at_b);
    assert!(
        matches!(fresh, Err(k) if is_timeout(k)),
        "a new connection across a cut must time out (DROP), not be refused: {fresh:?}"
    );
    assert!(connect_from("a", at_c).is_ok(), "a -> c is not cut");
    assert!(connect_from("c", at_b).is_ok(), "c -> b is not cut");
    assert!(
        from_router(at_a) && from_router(at_b),
        "the router reaches both"
    );

    let healed = Instant::now();
    net.heal("a", "b");
    // The bytes written during the cut arrive by retransmission.
    let mut got = vec![0u8; 6];
    ab.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    std::io::Read::read_exact(&mut ab, &mut got).expect("echo of the bytes sent during the cut");
    assert_eq!(&got, b"during");
    println!(
        "bytes sent during the cut echoed {} ms after the heal",
        healed.elapsed().as_millis()
    );
    echo(&mut ab, b"after", Duration::from_secs(10)).expect("echo after the heal");
    assert!(connect_from("a", at_b).is_ok(), "a -> b after the heal");

    net.cut_all("a");
    for to in [at_b, at_c] {
        let r = connect_from("a", to);
        assert!(
            matches!(r, Err(k) if is_timeout(k)),
            "a -> {to} after cut_all: {r:?}"
        );
    }
    let r = connect_from("b", at_a);
    assert!(
        matches!(r, Err(k) if is_timeout(k)),
        "b -> a after cut_all: {r:?}"
    );
    assert!(connect_from("b", at_c).is_ok(), "b -> c is not cut");
    assert!(from_router(at_a), "the router still reaches a");
    net.heal_all("a");
    assert!(connect_from("a", at_c).is_ok() && connect_from("c", at_a).is_ok());
    let _ = ab.shutdown(Shutdown::Both);
    drop(servers);
}

/// `spawn_in` runs the program itself (`ip netns exec` execs it) in the node's
/// namespace: its pid is the program's, SIGSTOP/SIGCONT/SIGKILL reach it; dropping
/// the harness kills what is still running and deletes the namespaces.
#[test]
fn partition_harness_spawn_in_runs_the_program_in_the_namespace() {
    let net = Net::new(&["solo"]);
    let ns = net.ns("solo").to_string();
    let ns_inode = |path: &str| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).map(|m| m.ino()).unwrap_or(0)
    };
    let state = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                s.rsplit_once(") ")
                    .map(|(_, r)| r.chars().next().unwrap_or('?'))
            })
    };
    let mut cmd = Command::new("sleep");
    cmd.arg("600");
    let pid = net.spawn_in("solo", cmd);
    let execed = poll_until(Duration::from_secs(10), || {
        std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep")
    });
    assert!(execed, "pid {pid} never became `sleep`");
    assert_eq!(
        ns_inode(&format!("/proc/{pid}/ns/net")),
        ns_inode(&format!("/run/netns/{ns}")),
        "the spawned process is not in {ns}"
    );
    net.signal(pid, libc::SIGSTOP);
    assert!(
        poll_until(Duration::from_secs(10), || state(pid) == Some('T')),
        "SIGSTOP did not stop it: {:?}",
        state(pid)
    );
    net.signal(pid, libc::SIGCONT);
    assert!(
        poll_until(Duration::from_secs(10), || state(pid) == Some('S')),
        "SIGCONT did not resume it: {:?}",
        state(pid)
    );
    let status = net.kill9(pid);
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "{status}"
    );

    // Teardown: a second process still running when the harness is dropped.
    let mut cmd = Command::new("sleep");
    cmd.arg("600");
    let orphan = net.spawn_in("solo", cmd);
    drop(net);
    assert!(
        !Path::new(&format!("/run/netns/{ns}")).exists(),
        "{ns} not deleted"
    );
    assert!(
        state(orphan).is_none(),
        "pid {orphan} still alive after the drop"
    );
}

/// A pair runs in namespaces: the slave attaches to the master's address through the
/// router, clients in the router namespace use both nodes, and a cut of the link is
/// seen by the master (its peer leaves `in-sync`) while clients still reach it.
#[test]
fn partition_harness_runs_a_pair_in_namespaces() {
    let _slot = test_slot();
    let net = Net::new(&["master", "slave"]);
    net.run_in_router(|| {
        let pair = Pair::start(net.pair_opts());
        let (a, b) = (&pair.master, &pair.slave);
        assert_eq!(a.host(), std::net::IpAddr::V4(net.addr("master")));
        let s = a.status();
        println!(
            "master {} in sync with slave {}: {}",
            a.stomp_addr(),
            b.stomp_addr(),
            s["replication"]
        );
        let mut c = a.client();
        c.send_receipted(DEST, b"through the router", "r-1");

        let cut = Instant::now();
        net.cut("master", "slave");
        let s = a.wait_status(|s| peer(s) != "in-sync", Duration::from_secs(30));
        println!(
            "master's peer {} {} ms after the cut",
            peer(&s),
            cut.elapsed().as_millis()
        );
        // Whether it still serves is the pair's policy; that it is reachable is the
        // harness's.
        let reachable =
            std::net::TcpStream::connect_timeout(&a.status_addr(), Duration::from_secs(5));
        assert!(
            reachable.is_ok(),
            "the router no longer reaches the master: {reachable:?}"
        );
        println!(
            "after the cut the master answers STOMP: {}",
            a.probe(Duration::from_secs(2))
        );
        net.heal("master", "slave");
    });
}
