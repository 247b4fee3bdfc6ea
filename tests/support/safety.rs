//! The failover STOMP producer of the pair-safety tests (`tests/pair_safety.rs`,
//! `tests/witness_pair.rs`) and the checks run on what it saw.
//!
//! [`produce`] is a small failover client written for the tests: each session
//! connects to the first node that answers, in a fixed order (the configured master
//! first, as `failover:(...)?randomize=false` does on every new connection), sends
//! [`SESSION_SENDS`] persistent messages to [`DEST`] one at a time with receipts, then
//! starts a new session. Any timeout, close or ERROR ends the session, and the next one
//! starts from the other node (so a node that accepts connections but not writes cannot
//! hold the producer); a session that ended normally is followed by one that starts
//! from the configured master again. A sequence number is never sent twice, so a
//! message delivered twice unflagged is a broker's duplicate. Every receipt is logged
//! with the node that sent it and when ([`Confirmations`]).
//!
//! The invariant checked: never two nodes confirming writes. With one producer thread
//! the log is in program order, so "the node that confirmed first confirms nothing
//! after another node's first confirmation"
//! ([`Confirmations::after_another_node_confirmed`]) is exact.
//!
//! * [`sample_status`] — both nodes' `/status` every ~50 ms; [`status_report`] prints
//!   the changes, [`confirmed_under_a_newer_master`] checks the confirmations against
//!   them.
//! * [`serving_and_stale`], [`restart_stale`] — after the fact: which node serves, and
//!   the other brought back as its in-sync slave.
//! * [`drain`] and [`check_delivered`] — everything on [`DEST`] against the log.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::pair::{
    epoch, is_master_in_sync, is_slave_in_sync, peer, role, scenario_delay, stomp_connect_at, Node,
    SYNC_TIMEOUT,
};
use super::{encode, poll_until, Frame, ReadEnd, REPLY_TIMEOUT};

pub const DEST: &str = "/queue/safety";
/// Sends per producer session before it reconnects (from the first node again).
pub const SESSION_SENDS: u64 = 20;
/// How long the producer waits for a RECEIPT before it gives the session up. Shorter
/// than the pause and the cut, so a receipt a stopped node sends after SIGCONT goes
/// to a connection the producer has already closed: it is never counted.
pub const RECEIPT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long the producer waits for CONNECTED before it tries the next node (a stopped
/// node accepts TCP connections but never answers).
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Bound on the producer and sampler threads.
pub const RUN_LIMIT: Duration = Duration::from_secs(300);
/// How long /status may take to answer a sample (a stopped node never does).
pub const SAMPLE_TIMEOUT: Duration = Duration::from_millis(300);

// ---------------------------------------------------------------------------------
// What the producer saw

/// One RECEIPT: message `seq` was confirmed by node `node` (index into the producer's
/// targets) at `at` (since the test started).
#[derive(Clone, Copy, Debug)]
pub struct Confirmed {
    pub seq: u64,
    pub node: usize,
    pub at: Duration,
}

/// The producer's log; shared with the test thread.
pub struct Confirmations {
    pub started: Instant,
    /// Node names, by target index.
    pub names: Vec<String>,
    confirmed: Mutex<Vec<Confirmed>>,
    /// Sends without a receipt: (seq, node, why). They may or may not be stored.
    pub unconfirmed: Mutex<Vec<(u64, usize, String)>>,
}

impl Confirmations {
    pub fn new(started: Instant, names: &[&str]) -> Confirmations {
        Confirmations {
            started,
            names: names.iter().map(|n| n.to_string()).collect(),
            confirmed: Mutex::new(Vec::new()),
            unconfirmed: Mutex::new(Vec::new()),
        }
    }

    pub fn all(&self) -> Vec<Confirmed> {
        self.confirmed.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.confirmed.lock().unwrap().len()
    }

    pub fn count_since(&self, at: Duration) -> usize {
        self.confirmed
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.at >= at)
            .count()
    }

    /// Confirmations by `node` (target index) at or after `at`.
    pub fn by_node_since(&self, node: usize, at: Duration) -> Vec<Confirmed> {
        self.confirmed
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.node == node && c.at >= at)
            .copied()
            .collect()
    }

    /// The largest time between two consecutive confirmations (any node) that both
    /// fall in `from..to`, and when the gap ended; None with fewer than two.
    pub fn max_gap(&self, from: Duration, to: Duration) -> Option<(Duration, Duration)> {
        let all = self.all();
        let inside: Vec<Duration> = all
            .iter()
            .map(|c| c.at)
            .filter(|at| *at >= from && *at < to)
            .collect();
        inside
            .windows(2)
            .map(|w| (w[1] - w[0], w[1]))
            .max_by_key(|(gap, _)| *gap)
    }

    /// Confirmations that contradict "one node confirms at a time": those by the node
    /// that confirmed first, made after some other node's first confirmation (and any
    /// later return to yet another node). Empty if only one node ever confirmed.
    pub fn after_another_node_confirmed(&self) -> Vec<Confirmed> {
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
    pub fn summary(&self, phases: &[(&str, Duration)]) -> String {
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

/// Sets every flag when dropped: created in a `std::thread::scope` after the producer
/// and sampler threads are spawned, it stops them when an assertion in the scope
/// panics too (the scope joins its threads before the panic goes on).
pub struct StopOnDrop<'a>(pub Vec<&'a AtomicBool>);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        for flag in &self.0 {
            flag.store(true, Ordering::SeqCst);
        }
    }
}

// ---------------------------------------------------------------------------------
// A scenario under load

/// The failover producer ([`produce`]) and the /status sampler ([`sample_status`]) over
/// a pair's two nodes, and the producer's log. The clock starts at [`Traffic::new`].
pub struct Traffic<'n> {
    nodes: [&'n Node; 2],
    pub log: Confirmations,
}

impl<'n> Traffic<'n> {
    /// Targets `nodes` in this order (the configured master first).
    pub fn new(nodes: [&'n Node; 2]) -> Traffic<'n> {
        let started = Instant::now();
        Traffic {
            nodes,
            log: Confirmations::new(started, &[nodes[0].name(), nodes[1].name()]),
        }
    }

    /// Since the clock started.
    pub fn elapsed(&self) -> Duration {
        self.log.started.elapsed()
    }

    /// Runs the producer and the sampler while `body` runs, then stops the producer,
    /// joins it, stops the sampler and joins it; returns what `body` returned and the
    /// samples. If `body` panics, both are stopped ([`StopOnDrop`]) before the panic
    /// goes on.
    pub fn run<R>(&self, body: impl FnOnce(&Run) -> R) -> (R, [Vec<Sample>; 2]) {
        let targets = self.nodes.map(|n| n.stomp_addr());
        let (stop_producer, stop_sampler) = (AtomicBool::new(false), AtomicBool::new(false));
        std::thread::scope(|scope| {
            let producer = scope.spawn(|| produce(&targets, &self.log, &stop_producer));
            let sampler =
                scope.spawn(|| sample_status(self.nodes, self.log.started, &stop_sampler));
            let _stop = StopOnDrop(vec![&stop_producer, &stop_sampler]);
            let run = Run {
                log: &self.log,
                producer,
            };
            let out = body(&run);
            stop_producer.store(true, Ordering::SeqCst);
            run.producer.join().expect("producer thread");
            stop_sampler.store(true, Ordering::SeqCst);
            (out, sampler.join().expect("sampler thread"))
        })
    }

    /// Prints `headline`, then the confirmations per node and phase
    /// ([`Confirmations::summary`]) and the /status timeline ([`status_report`]).
    pub fn report(&self, headline: &str, phases: &[(&str, Duration)], samples: &[Vec<Sample>; 2]) {
        println!(
            "{headline}confirmations:\n{}/status:\n{}",
            self.log.summary(phases),
            status_report([self.nodes[0].name(), self.nodes[1].name()], samples)
        );
    }

    /// [`Traffic::report`] of a cut: when it began, healed and the pair converged
    /// (None: it did not), and the confirmations in each of those phases.
    pub fn report_cut(
        &self,
        cut_at: Duration,
        healed_at: Duration,
        converged_at: Option<Duration>,
        samples: &[Vec<Sample>; 2],
    ) {
        let phases = [
            ("before the cut", Duration::ZERO),
            ("cut", cut_at),
            ("healed", healed_at),
            ("converged", converged_at.unwrap_or(Duration::MAX)),
        ];
        let converged =
            converged_at.map_or("never".to_string(), |c| format!("{} ms", c.as_millis()));
        self.report(
            &format!(
                "cut at {} ms, healed at {} ms, converged at {converged}\n",
                cut_at.as_millis(),
                healed_at.as_millis()
            ),
            &phases,
            samples,
        );
    }
}

/// The producer while [`Traffic::run`]'s body runs.
pub struct Run<'scope, 'env> {
    log: &'env Confirmations,
    producer: std::thread::ScopedJoinHandle<'scope, ()>,
}

impl Run<'_, '_> {
    pub fn producer_finished(&self) -> bool {
        self.producer.is_finished()
    }

    /// Waits up to `timeout` until `enough` holds of the log (or the producer ended):
    /// whether it holds with the producer still running.
    pub fn progressed(&self, timeout: Duration, enough: impl Fn(&Confirmations) -> bool) -> bool {
        let ok = poll_until(timeout, || enough(self.log) || self.producer.is_finished());
        ok && !self.producer.is_finished()
    }

    /// Asserts that the producer gets 200 confirmations within `timeout`.
    pub fn warm_up(&self, timeout: Duration) {
        assert!(
            self.progressed(timeout, |log| log.count() >= 200),
            "producer too slow"
        );
    }
}

/// Runs failover sessions over `targets` (in order) until `stop`; see the module doc.
pub fn produce(targets: &[SocketAddr], log: &Confirmations, stop: &AtomicBool) {
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
pub type Sample = (Duration, Option<(String, u64, String)>);

/// Samples both nodes' /status every ~50 ms until `stop`.
pub fn sample_status(nodes: [&Node; 2], started: Instant, stop: &AtomicBool) -> [Vec<Sample>; 2] {
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
pub fn confirmed_under_a_newer_master(
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
pub fn status_report(names: [&str; 2], samples: &[Vec<Sample>; 2]) -> String {
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
pub fn serving_and_stale(nodes: [&Node; 2]) -> (&Node, &Node) {
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

/// Whether `master` says master with its slave in sync and `slave` says in-sync slave
/// (each /status within 1 s; `master` asked first).
pub fn in_sync_as(master: &Node, slave: &Node) -> bool {
    master
        .try_status_within(Duration::from_secs(1))
        .is_some_and(|s| is_master_in_sync(&s))
        && slave
            .try_status_within(Duration::from_secs(1))
            .is_some_and(|s| is_slave_in_sync(&s))
}

/// Restarts `stale` unless it is already an in-sync slave (exited, or still a master
/// with an older epoch, or anything else), then waits until `serving` is a master
/// with `stale` as its in-sync slave.
pub fn restart_stale(serving: &Node, stale: &Node) {
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
pub fn drain(node: &Node) -> Vec<Frame> {
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
pub fn check_delivered(
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

/// [`drain`]s `node` and [`check_delivered`] against `log`; prints the counts.
pub fn drain_and_check(
    node: &Node,
    log: &Confirmations,
) -> (Vec<u64>, Vec<(u64, u32)>, Vec<String>) {
    let frames = drain(node);
    let (missing, duplicated, unknown) = check_delivered(&frames, log);
    println!(
        "drained {} messages from {}: {} confirmed missing, {} unflagged duplicates, {} unknown",
        frames.len(),
        node.name(),
        missing.len(),
        duplicated.len(),
        unknown.len()
    );
    (missing, duplicated, unknown)
}

/// [`drain_and_check`], asserting that every confirmed message is on `node`, none
/// twice unflagged, and nothing that was not sent.
pub fn assert_delivered_once(node: &Node, log: &Confirmations) {
    let (missing, duplicated, unknown) = drain_and_check(node, log);
    assert!(
        missing.is_empty(),
        "confirmed but missing: {}",
        seq_ranges(&missing)
    );
    assert!(
        duplicated.is_empty(),
        "unflagged duplicates: {duplicated:?}"
    );
    assert!(unknown.is_empty(), "messages nobody sent: {unknown:?}");
}

/// The sequence numbers of `confirmed` as [`seq_ranges`].
pub fn seqs_of(confirmed: &[Confirmed]) -> String {
    seq_ranges(&confirmed.iter().map(|c| c.seq).collect::<Vec<_>>())
}

/// `[1, 2, 3, 7]` as "1..=3, 7".
pub fn seq_ranges(seqs: &[u64]) -> String {
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
