//! The run: consumers subscribe first (a topic keeps nothing for late subscribers),
//! then producers send for the warm-up plus the counted amount, then consumers drain
//! until the destination is quiet. One thread per connection; a producer has a second
//! thread that waits for its confirms, so a window of `--max-pending` sends can be in
//! flight and, in open loop, sends keep to the schedule whatever the broker does.
//!
//! Every thread records into its own histograms and ledger; they are merged once the
//! threads end, so the hot path takes no shared lock except a queue's common ledger
//! (uncontended in practice: one short critical section per received message).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use hdrhistogram::Histogram;

use crate::check::{self, Ledger, Order, Seen};
use crate::cli::{Ack, Amount, DestKind, Settings};
use crate::error::LoadError;
use crate::transport::{
    ConnectOptions, Delivery, Destination, Pending, SendOptions, Transport, TransportError,
};

/// How long a confirm or an ack may take before it counts as an error. Long: a failover
/// (reconnect plus replay) happens inside it.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(60);
/// How often an idle consumer looks at the clock (drain, stop).
const POLL: Duration = Duration::from_millis(50);
/// Error texts kept for the report (the count is exact).
const KEEP_ERRORS: usize = 20;

/// A latency histogram in nanoseconds, 1 ns to 1 hour, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    // The bounds are constants that satisfy the constructor's rules (low >= 1,
    // high >= 2 * low, sigfig <= 5), so this cannot fail.
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid histogram bounds")
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking worker is reported by its join; the data stays usable for the rest.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// State every thread of the run sees.
pub struct Shared {
    pub base: Instant,
    pub started_at: SystemTime,
    /// Tells this run's messages from leftovers of earlier runs on the same queue.
    pub run_id: u32,
    pub warmup_end: Instant,
    pub producers_running: AtomicU32,
    /// When the last producer finished (ns since base); 0 while any runs.
    pub producers_end_ns: AtomicU64,
    pub consumers_running: AtomicU32,
    // Live counters (progress line and totals).
    pub sent: AtomicU64,
    pub confirmed: AtomicU64,
    pub received: AtomicU64,
    pub errors: AtomicU64,
    /// The failover gap: the longest time with no confirm and no receive while the
    /// producers ran (after the warm-up).
    last_event_ns: AtomicU64,
    pub max_gap_ns: AtomicU64,
    error_texts: Mutex<Vec<String>>,
    /// Set once every worker has ended: stops the progress line (and any producer
    /// still running, should a future caller set it early).
    pub stop: AtomicBool,
}

impl Shared {
    fn new(warmup: Duration) -> Shared {
        let base = Instant::now();
        let started_at = SystemTime::now();
        // Not cryptographic: only needs to differ between runs on one broker.
        let nanos = started_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32))
            .unwrap_or(0);
        Shared {
            base,
            started_at,
            run_id: nanos ^ std::process::id().rotate_left(16),
            warmup_end: base + warmup,
            producers_running: AtomicU32::new(0),
            producers_end_ns: AtomicU64::new(0),
            consumers_running: AtomicU32::new(0),
            sent: AtomicU64::new(0),
            confirmed: AtomicU64::new(0),
            received: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            last_event_ns: AtomicU64::new(0),
            max_gap_ns: AtomicU64::new(0),
            error_texts: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        }
    }

    pub fn ns(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.base).as_nanos() as u64
    }

    fn warmup_end_ns(&self) -> u64 {
        self.ns(self.warmup_end)
    }

    /// A confirm or a receive happened at `now_ns`: extends the failover gap if it
    /// ended a longer silence (only while producers run, after the warm-up: the drain's
    /// final quiet period is not a failover).
    fn event(&self, now_ns: u64) {
        let prev = self.last_event_ns.swap(now_ns, Relaxed);
        if prev >= self.warmup_end_ns() && now_ns > prev && self.producers_running.load(Relaxed) > 0
        {
            self.max_gap_ns.fetch_max(now_ns - prev, Relaxed);
        }
    }

    fn error(&self, who: &str, e: &TransportError) {
        self.note_error(who, &e.to_string());
    }

    fn note_error(&self, who: &str, e: &str) {
        self.errors.fetch_add(1, Relaxed);
        let mut texts = lock(&self.error_texts);
        if texts.len() < KEEP_ERRORS {
            let at = self.base.elapsed().as_secs_f64();
            texts.push(format!("{at:.3}s {who}: {e}"));
        }
    }

    pub fn error_texts(&self) -> Vec<String> {
        lock(&self.error_texts).clone()
    }
}

/// What one producer reports when it ends.
pub struct ProducerResult {
    /// `confirmed[seq]`: the broker confirmed message `seq` (warm-up included).
    pub confirmed: Vec<bool>,
    pub sent: u64,
    /// Sent after the warm-up.
    pub sent_counted: u64,
    pub confirmed_counted: u64,
    pub send_confirm: Histogram<u64>,
    /// Open loop only: how late each send started against its intended time.
    pub send_delay: Histogram<u64>,
    pub reconnects: u64,
}

/// What one consumer reports when it ends.
pub struct ConsumerResult {
    pub received: u64,
    /// Received, sent after the warm-up.
    pub received_counted: u64,
    pub end_to_end: Histogram<u64>,
    /// When the last counted message arrived (ns since base).
    pub last_counted_ns: u64,
    pub reconnects: u64,
}

/// Everything the report needs.
pub struct RunResult {
    pub shared: Arc<Shared>,
    pub producers: Vec<ProducerResult>,
    pub consumers: Vec<ConsumerResult>,
    pub check: check::CheckReport,
    /// When the last producer ended (ns since base).
    pub producers_end_ns: u64,
}

/// Bounds the sends in flight of one producer: taken before a send, given back when
/// its confirm (or failure) is known.
struct Window {
    free: Mutex<u32>,
    changed: Condvar,
}

impl Window {
    fn new(size: u32) -> Window {
        Window {
            free: Mutex::new(size),
            changed: Condvar::new(),
        }
    }
    fn acquire(&self) {
        let mut free = lock(&self.free);
        while *free == 0 {
            free = self.changed.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
    }
    fn release(&self) {
        *lock(&self.free) += 1;
        self.changed.notify_one();
    }
}

/// Runs the workload over transport `T`.
pub fn run<T: Transport>(s: &Settings) -> Result<RunResult, LoadError> {
    let dest = Destination::parse(&s.destination, s.destination_kind);
    let subscribe_to = s.subscribe_to.as_deref().unwrap_or(&s.destination);
    let sub_dest = Destination::parse(subscribe_to, s.destination_kind);
    let opts = |role: &str, i: u32| ConnectOptions {
        user: s.user.clone(),
        password: s.password.clone(),
        client_id: Some(format!("tandem-load-{}-{role}-{i}", std::process::id())),
        tls: s.tls.clone(),
    };
    // Connect and subscribe everything before the clock starts: set-up is not load.
    let mut consumers = Vec::new();
    for i in 0..s.consumers {
        let t = T::connect(&s.url, &opts("c", i)).map_err(|source| LoadError::Setup {
            what: format!("consumer {i}: connect to {}", s.url),
            source,
        })?;
        t.subscribe(&sub_dest, s.ack, s.prefetch)
            .map_err(|source| LoadError::Setup {
                what: format!("consumer {i}: subscribe to {subscribe_to}"),
                source,
            })?;
        consumers.push(t);
    }
    let mut producers = Vec::new();
    for i in 0..s.producers {
        let t = T::connect(&s.url, &opts("p", i)).map_err(|source| LoadError::Setup {
            what: format!("producer {i}: connect to {}", s.url),
            source,
        })?;
        producers.push(t);
    }

    let shared = Arc::new(Shared::new(s.warmup()));
    shared.producers_running.store(s.producers, Relaxed);
    shared.consumers_running.store(s.consumers, Relaxed);
    if s.producers == 0 {
        shared.producers_end_ns.store(1, Relaxed);
    }
    // A queue's consumers share one ledger (each message must reach one of them); a
    // topic's subscribers have one each (each must see every message).
    let audiences: Vec<Arc<Mutex<Ledger>>> = match s.destination_kind {
        DestKind::Queue if s.consumers > 0 => vec![Arc::new(Mutex::new(Ledger::new(s.producers)))],
        DestKind::Queue => Vec::new(),
        DestKind::Topic => (0..s.consumers)
            .map(|_| Arc::new(Mutex::new(Ledger::new(s.producers))))
            .collect(),
    };

    let (p_results, c_results) = std::thread::scope(|scope| {
        let mut c_handles = Vec::new();
        for (i, t) in consumers.into_iter().enumerate() {
            let ledger = Arc::clone(&audiences[i.min(audiences.len() - 1)]);
            let shared = &shared;
            c_handles.push(
                std::thread::Builder::new()
                    .name(format!("consumer-{i}"))
                    .spawn_scoped(scope, move || consume(t, i as u32, s, shared, &ledger)),
            );
        }
        let mut p_handles = Vec::new();
        for (i, t) in producers.into_iter().enumerate() {
            let (shared, dest) = (&shared, &dest);
            p_handles.push(
                std::thread::Builder::new()
                    .name(format!("producer-{i}"))
                    .spawn_scoped(scope, move || produce(t, i as u32, s, shared, dest)),
            );
        }
        let progress = (!s.quiet && crate::report::stderr_is_tty()).then(|| {
            let shared = &shared;
            scope.spawn(move || crate::report::progress(shared, s))
        });
        let p: Result<Vec<ProducerResult>, LoadError> =
            p_handles.into_iter().map(|h| join("producer", h)).collect();
        let c: Result<Vec<ConsumerResult>, LoadError> =
            c_handles.into_iter().map(|h| join("consumer", h)).collect();
        shared.stop.store(true, Relaxed);
        if let Some(h) = progress {
            let _ = h.join();
        }
        (p, c)
    });
    let (producers, consumers) = (p_results?, c_results?);

    let confirmed: Vec<Vec<bool>> = producers.iter().map(|p| p.confirmed.clone()).collect();
    let sent: Vec<u64> = producers.iter().map(|p| p.sent).collect();
    let ledgers: Vec<Ledger> = audiences
        .into_iter()
        .map(|a| std::mem::take(&mut *lock(&a)))
        .collect();
    let check = check::compare(&confirmed, &sent, &ledgers);
    let producers_end_ns = shared.producers_end_ns.load(Relaxed);
    Ok(RunResult {
        shared,
        producers,
        consumers,
        check,
        producers_end_ns,
    })
}

fn join<R>(
    name: &str,
    h: std::io::Result<std::thread::ScopedJoinHandle<'_, R>>,
) -> Result<R, LoadError> {
    h.map_err(|e| LoadError::Thread(format!("spawn {name}: {e}")))?
        .join()
        .map_err(|_| LoadError::Thread(format!("{name} panicked")))
}

/// One sent message whose confirm the confirmer thread waits for.
struct InFlight<P> {
    seq: u64,
    sent_at: Instant,
    counted: bool,
    pending: P,
}

fn produce<T: Transport>(
    t: T,
    id: u32,
    s: &Settings,
    shared: &Shared,
    dest: &Destination,
) -> ProducerResult {
    let mut r = ProducerResult {
        confirmed: Vec::new(),
        sent: 0,
        sent_counted: 0,
        confirmed_counted: 0,
        send_confirm: histogram(),
        send_delay: histogram(),
        reconnects: 0,
    };
    let quota = match s.amount {
        Amount::Messages(n) => {
            let per = n / s.producers as u64;
            Some(per + u64::from((id as u64) < n % s.producers as u64))
        }
        Amount::DurationS(_) => None,
    };
    let end_at = match s.amount {
        Amount::DurationS(d) => Some(shared.warmup_end + Duration::from_secs_f64(d)),
        Amount::Messages(_) => None,
    };
    // Each producer keeps its share of the rate on its own schedule from the start.
    let interval = s
        .rate
        .map(|rate| Duration::from_secs_f64(s.producers as f64 / rate));
    let who = format!("producer {id}");
    let mut body = check::blank(s.size);
    let window = Window::new(s.max_pending);

    std::thread::scope(|scope| {
        let t = &t;
        let (to_confirm, confirms) = mpsc::channel::<InFlight<T::Pending>>();
        // The confirmer: waits for each confirm in send order (the broker confirms a
        // connection's sends in order), records the latency and frees the window slot.
        let window = &window;
        let confirmer_who = who.clone();
        let confirmer = scope.spawn(move || {
            let mut confirmed: Vec<bool> = Vec::new();
            let mut hist = histogram();
            let mut counted = 0u64;
            for f in confirms {
                let result = f.pending.wait(CONFIRM_TIMEOUT);
                let now = Instant::now();
                window.release();
                match result {
                    Ok(()) => {
                        mark(&mut confirmed, f.seq);
                        shared.confirmed.fetch_add(1, Relaxed);
                        shared.event(shared.ns(now));
                        if f.counted {
                            counted += 1;
                            hist.saturating_record(ns_between(f.sent_at, now));
                        }
                    }
                    Err(e) => shared.error(&confirmer_who, &e),
                }
            }
            (confirmed, hist, counted)
        });

        // Transacted sends wait here until their commit confirms them all; they and
        // synchronous sends are confirmed in this thread (`tx_*`), pipelined ones in the
        // confirmer.
        let sync = s.tx_batch == 0 && s.max_pending == 1;
        let mut batch: VecDeque<(u64, Instant, bool, T::Pending)> = VecDeque::new();
        let mut tx_name = String::new();
        let mut tx_count = 0u64;
        let mut tx_confirmed: Vec<bool> = Vec::new();
        let mut tx_hist = histogram();
        let mut tx_counted = 0u64;
        let mut seq = 0u64;
        loop {
            if shared.stop.load(Relaxed) {
                break;
            }
            let now = Instant::now();
            // Counted messages start after the warm-up; the amount counts only those.
            let counted_done =
                quota.is_some_and(|q| r.sent_counted >= q) || end_at.is_some_and(|e| now >= e);
            if now >= shared.warmup_end && counted_done {
                break;
            }
            if let Some(iv) = interval {
                let intended = shared.base + iv.mul_f64(seq as f64);
                let now = Instant::now();
                if intended > now {
                    std::thread::sleep(intended - now);
                }
                // Late sends are sent at once, not skipped: the lateness is reported
                // (coordinated omission shows instead of hiding in fewer samples).
                if intended >= shared.warmup_end {
                    r.send_delay
                        .saturating_record(ns_between(intended, Instant::now()));
                }
            }
            if s.tx_batch > 0 && batch.is_empty() {
                tx_count += 1;
                tx_name = format!("tl-{}-{id}-{tx_count}", shared.run_id);
                if let Err(e) = t.begin(&tx_name) {
                    shared.error(&who, &e);
                    if e.is_fatal() {
                        break;
                    }
                    continue;
                }
            }
            if s.tx_batch == 0 && !sync {
                window.acquire();
            }
            let sent_at = Instant::now();
            let counted = sent_at >= shared.warmup_end;
            check::encode(&mut body, id, shared.run_id, seq, shared.ns(sent_at));
            let tx = (s.tx_batch > 0).then_some(tx_name.as_str());
            let opts = SendOptions {
                persistent: s.persistent,
                transaction: tx,
            };
            if sync {
                // One send at a time: wait in this thread, no hand-off to the confirmer
                // (whose wake-up would add to the latency measured).
                match t.send(dest, &body, opts) {
                    Ok(()) => {
                        let now = Instant::now();
                        r.sent += 1;
                        r.sent_counted += u64::from(counted);
                        shared.sent.fetch_add(1, Relaxed);
                        mark(&mut tx_confirmed, seq);
                        shared.confirmed.fetch_add(1, Relaxed);
                        shared.event(shared.ns(now));
                        if counted {
                            tx_counted += 1;
                            tx_hist.saturating_record(ns_between(sent_at, now));
                        }
                    }
                    Err(e) => {
                        // Sent (and maybe stored) but not confirmed: the check allows it.
                        r.sent += 1;
                        shared.sent.fetch_add(1, Relaxed);
                        shared.error(&who, &e);
                        if e.is_fatal() {
                            break;
                        }
                    }
                }
                seq += 1;
                continue;
            }
            match t.send_async(dest, &body, opts) {
                Ok(pending) => {
                    r.sent += 1;
                    r.sent_counted += u64::from(counted);
                    shared.sent.fetch_add(1, Relaxed);
                    if s.tx_batch > 0 {
                        batch.push_back((seq, sent_at, counted, pending));
                    } else if to_confirm
                        .send(InFlight {
                            seq,
                            sent_at,
                            counted,
                            pending,
                        })
                        .is_err()
                    {
                        // The confirmer is gone (it panicked); its join reports it.
                        break;
                    }
                }
                Err(e) => {
                    if s.tx_batch == 0 {
                        window.release();
                    }
                    shared.error(&who, &e);
                    if e.is_fatal() {
                        break;
                    }
                }
            }
            seq += 1;
            if s.tx_batch > 0 && batch.len() >= s.tx_batch as usize {
                let fatal = commit(t, &tx_name, &mut batch, shared, &who, |seq, at, c| {
                    mark(&mut tx_confirmed, seq);
                    if c {
                        tx_counted += 1;
                        tx_hist.saturating_record(ns_between(at, Instant::now()));
                    }
                });
                if fatal {
                    break;
                }
            }
        }
        if !batch.is_empty() {
            commit(t, &tx_name, &mut batch, shared, &who, |seq, at, c| {
                mark(&mut tx_confirmed, seq);
                if c {
                    tx_counted += 1;
                    tx_hist.saturating_record(ns_between(at, Instant::now()));
                }
            });
        }
        drop(to_confirm);
        match confirmer.join() {
            Ok((confirmed, hist, counted)) => {
                r.confirmed = confirmed;
                r.send_confirm = hist;
                r.confirmed_counted = counted;
            }
            Err(_) => shared.note_error(&who, "confirmer thread panicked"),
        }
        if s.tx_batch > 0 || sync {
            r.confirmed = tx_confirmed;
            r.send_confirm = tx_hist;
            r.confirmed_counted = tx_counted;
        }
    });

    r.reconnects = t.reconnects();
    if shared.producers_running.fetch_sub(1, Relaxed) == 1 {
        shared
            .producers_end_ns
            .store(shared.ns(Instant::now()).max(1), Relaxed);
    }
    if let Err(e) = t.close() {
        shared.error(&format!("producer {id} close"), &e);
    }
    r
}

/// Waits for a transaction's sends, commits it and, once the commit is confirmed,
/// calls `confirm(seq, sent_at, counted)` for each of its messages. True if the
/// connection is gone for good.
fn commit<T: Transport>(
    t: &T,
    tx: &str,
    batch: &mut VecDeque<(u64, Instant, bool, T::Pending)>,
    shared: &Shared,
    who: &str,
    mut confirm: impl FnMut(u64, Instant, bool),
) -> bool {
    let mut done = Vec::with_capacity(batch.len());
    let mut failed = None;
    for (seq, at, counted, pending) in batch.drain(..) {
        if let Err(e) = pending.wait(CONFIRM_TIMEOUT) {
            failed.get_or_insert(e);
        }
        done.push((seq, at, counted));
    }
    let result = match failed {
        // A send of the transaction failed: the commit would apply it partly.
        Some(e) => Err(e),
        None => t.commit(tx),
    };
    match result {
        Ok(()) => {
            let now = shared.ns(Instant::now());
            for (seq, at, counted) in done {
                confirm(seq, at, counted);
                shared.confirmed.fetch_add(1, Relaxed);
            }
            shared.event(now);
            false
        }
        Err(e) => {
            shared.error(who, &e);
            e.is_fatal()
        }
    }
}

fn mark(v: &mut Vec<bool>, seq: u64) {
    let i = seq as usize;
    if v.len() <= i {
        v.resize(i + 1, false);
    }
    v[i] = true;
}

fn ns_between(from: Instant, to: Instant) -> u64 {
    to.saturating_duration_since(from).as_nanos() as u64
}

fn consume<T: Transport>(
    t: T,
    id: u32,
    s: &Settings,
    shared: &Shared,
    ledger: &Mutex<Ledger>,
) -> ConsumerResult {
    let who = format!("consumer {id}");
    let mut r = ConsumerResult {
        received: 0,
        received_counted: 0,
        end_to_end: histogram(),
        last_counted_ns: 0,
        reconnects: 0,
    };
    let mut order = Order::new(s.producers);
    let warmup_end_ns = shared.warmup_end_ns();
    // Cumulative acks every half prefetch: often enough that the broker never stops
    // dispatching for want of acks, rarely enough not to halve throughput.
    let ack_every = match s.ack {
        Ack::Client => (s.prefetch.unwrap_or(1000).min(1000) / 2).max(1) as u64,
        _ => 1,
    };
    let mut unacked: Option<T::Delivery> = None;
    let mut since_ack = 0u64;
    let mut last_recv = Instant::now();
    loop {
        match t.recv(POLL) {
            Ok(Some(d)) => {
                let now = Instant::now();
                let now_ns = shared.ns(now);
                last_recv = now;
                r.received += 1;
                shared.received.fetch_add(1, Relaxed);
                shared.event(now_ns);
                match check::decode(d.body()) {
                    Some(st) if st.run == shared.run_id => {
                        let seen = lock(ledger).record(st.producer, st.seq, d.redelivered());
                        match seen {
                            Some(Seen::First) => {
                                if !d.redelivered() && order.is_late(st.producer, st.seq) {
                                    lock(ledger).out_of_order(st.producer);
                                }
                            }
                            Some(_) => {}
                            None => lock(ledger).foreign += 1,
                        }
                        if st.sent_ns >= warmup_end_ns && seen == Some(Seen::First) {
                            r.received_counted += 1;
                            r.last_counted_ns = now_ns;
                            r.end_to_end
                                .saturating_record(now_ns.saturating_sub(st.sent_ns));
                        }
                    }
                    _ => lock(ledger).foreign += 1,
                }
                match s.ack {
                    Ack::Auto => {}
                    Ack::Individual => {
                        if let Err(e) = t.ack(&d) {
                            shared.error(&who, &e);
                        }
                    }
                    Ack::Client => {
                        since_ack += 1;
                        if since_ack >= ack_every {
                            since_ack = 0;
                            unacked = None;
                            if let Err(e) = t.ack(&d) {
                                shared.error(&who, &e);
                            }
                        } else {
                            unacked = Some(d);
                        }
                    }
                }
            }
            Ok(None) => {
                if let Some(d) = unacked.take() {
                    since_ack = 0;
                    if let Err(e) = t.ack(&d) {
                        shared.error(&who, &e);
                    }
                }
                let end_ns = shared.producers_end_ns.load(Relaxed);
                if end_ns > 0 {
                    // Quiet for the drain period since both the producers' end and the
                    // last message: everything the broker still had has arrived.
                    let producers_end = shared.base + Duration::from_nanos(end_ns);
                    if Instant::now().saturating_duration_since(last_recv.max(producers_end))
                        >= s.drain_quiet()
                    {
                        break;
                    }
                }
            }
            Err(e) => {
                shared.error(&who, &e);
                if e.is_fatal() {
                    break;
                }
                std::thread::sleep(POLL);
            }
        }
    }
    r.reconnects = t.reconnects();
    shared.consumers_running.fetch_sub(1, Relaxed);
    if let Err(e) = t.close() {
        shared.error(&format!("consumer {id} close"), &e);
    }
    r
}
