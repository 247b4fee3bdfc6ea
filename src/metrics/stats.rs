//! What each shard publishes for the status endpoint, and how.
//!
//! A shard owns one [`ShardStats`] (shared with the HTTP thread through an `Arc`).
//! Counters and gauges are relaxed atomics: the shard stores, the HTTP thread loads,
//! nobody waits. Per-destination numbers are a list the shard's ticker copies into
//! [`ShardStats::destinations`] every tick (a `Mutex` held for a pointer swap by the
//! ticker and a pointer clone by the reader; never on the message path).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

/// One destination's numbers, as the broker core reports them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DestinationStats {
    /// The STOMP spelling: `/queue/orders`, `/topic/prices`.
    pub name: String,
    /// Messages stored (ready or delivered and not yet acknowledged). For a topic,
    /// the entries held for its durable subscriptions.
    pub depth: u64,
    /// Messages accepted since this process started (recovered ones not counted).
    pub enqueued: u64,
    /// Messages that left for good since start: acknowledged, expired, dead-lettered,
    /// purged (for a topic: once per subscription that consumed it).
    pub dequeued: u64,
    /// Consumers attached now (for a topic: subscribers plus active durables).
    pub consumers: u64,
    /// Bytes of message bodies held in memory (for a topic: all its subscriptions'
    /// backlogs together); bodies left in the journal are not counted.
    pub memory_bytes: u64,
    /// The destination's `memoryLimit` (its policy entry's), when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_limit: Option<u64>,
}

/// Upper bounds of the fsync latency buckets, in microseconds: 50 µs doubling to
/// 102.4 ms (a preallocated 4 KiB write+fdatasync takes about 0.2 ms here; a growing
/// file or a busy disk tens of ms). Slower syncs land in the implicit `+Inf` bucket.
pub const FSYNC_BUCKETS_US: [u64; 12] = [
    50, 100, 200, 400, 800, 1_600, 3_200, 6_400, 12_800, 25_600, 51_200, 102_400,
];

/// A fixed-bucket latency histogram of atomics: any number of writers (the journal's
/// writer task for fsyncs, the replication link for round trips) and readers. Readers
/// may see a bucket updated before `count`; scrapes are consistent to within the
/// observations in flight.
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    /// Per-bucket (not cumulative) counts; the last slot is `+Inf`.
    buckets: [AtomicU64; FSYNC_BUCKETS_US.len() + 1],
    sum_us: AtomicU64,
    count: AtomicU64,
}

/// A copy of a [`LatencyHistogram`] (or the sum of several).
///
/// As JSON (where one is shown, e.g. the replication round trip) the buckets carry
/// their bounds and are per bucket, not cumulative as in Prometheus; `le_us: null` is
/// the `+Inf` bucket:
///
/// ```json
/// {"count": 3, "sum_seconds": 0.0009,
///  "buckets": [{"le_us": 50, "count": 0}, {"le_us": 100, "count": 2}, ...,
///              {"le_us": 102400, "count": 0}, {"le_us": null, "count": 1}]}
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HistogramSnapshot {
    /// Per-bucket counts; `buckets[i]` goes with `FSYNC_BUCKETS_US[i]`, the last is `+Inf`.
    pub buckets: Vec<u64>,
    pub sum_seconds: f64,
    pub count: u64,
}

impl LatencyHistogram {
    pub fn observe(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = FSYNC_BUCKETS_US
            .iter()
            .position(|le| us <= *le)
            .unwrap_or(FSYNC_BUCKETS_US.len());
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
        self.count.fetch_add(1, Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            buckets: self.buckets.iter().map(|b| b.load(Relaxed)).collect(),
            sum_seconds: self.sum_us.load(Relaxed) as f64 / 1e6,
            count: self.count.load(Relaxed),
        }
    }
}

impl HistogramSnapshot {
    /// Adds `other` bucket by bucket (histograms of different shards).
    pub fn merge(&mut self, other: &HistogramSnapshot) {
        if self.buckets.len() < other.buckets.len() {
            self.buckets.resize(other.buckets.len(), 0);
        }
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
        self.sum_seconds += other.sum_seconds;
        self.count += other.count;
    }

    /// `(upper bound in seconds, count)` per bucket, `+Inf` last: what the Prometheus
    /// encoder takes.
    pub fn bounds_seconds(&self) -> Vec<(f64, u64)> {
        self.buckets
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let le = FSYNC_BUCKETS_US
                    .get(i)
                    .map_or(f64::INFINITY, |us| *us as f64 / 1e6);
                (le, *n)
            })
            .collect()
    }
}

impl Serialize for HistogramSnapshot {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;

        #[derive(Serialize)]
        struct Bucket {
            /// `None` (JSON `null`) for `+Inf`.
            le_us: Option<u64>,
            count: u64,
        }
        let buckets: Vec<Bucket> = self
            .buckets
            .iter()
            .enumerate()
            .map(|(i, n)| Bucket {
                le_us: FSYNC_BUCKETS_US.get(i).copied(),
                count: *n,
            })
            .collect();
        let mut s = serializer.serialize_struct("HistogramSnapshot", 3)?;
        s.serialize_field("count", &self.count)?;
        s.serialize_field("sum_seconds", &self.sum_seconds)?;
        s.serialize_field("buckets", &buckets)?;
        s.end()
    }
}

/// Upper bounds of the records-per-batch buckets (records one journal fdatasync made
/// durable, records in one batch frame shipped to the slave): 1 doubling to 256. A
/// single producer waiting for each receipt gets 1; group commit under many producers
/// shows as the higher buckets. More land in the implicit `+Inf` bucket.
pub const RECORDS_BUCKETS: [u64; COUNT_BUCKETS] = [1, 2, 4, 8, 16, 32, 64, 128, 256];

/// Upper bounds of the bytes-per-batch buckets, in bytes: 256 B times 4 up to 16 MiB
/// (a journal batch is at most `max_batch_bytes`, 1 MiB, unless one record is larger).
pub const BYTES_BUCKETS: [u64; COUNT_BUCKETS] = [
    256,
    1 << 10,
    4 << 10,
    16 << 10,
    64 << 10,
    256 << 10,
    1 << 20,
    4 << 20,
    16 << 20,
];

/// Bounds in a [`CountHistogram`] (`+Inf` not counted).
pub const COUNT_BUCKETS: usize = 9;

/// A fixed-bucket histogram of a count per event (records or bytes per batch), of
/// atomics like [`LatencyHistogram`]: any number of writers and readers, three relaxed
/// adds per observation, no allocation.
#[derive(Debug)]
pub struct CountHistogram {
    /// Upper bounds, inclusive; `+Inf` is implicit.
    bounds: &'static [u64; COUNT_BUCKETS],
    /// Per-bucket (not cumulative) counts; the last slot is `+Inf`.
    buckets: [AtomicU64; COUNT_BUCKETS + 1],
    sum: AtomicU64,
    count: AtomicU64,
}

/// A copy of a [`CountHistogram`] (or the sum of several with the same bounds).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CountSnapshot {
    /// The histogram's bounds; empty only in a `Default` snapshot nothing was merged into.
    pub bounds: &'static [u64],
    /// Per-bucket counts; `buckets[i]` goes with `bounds[i]`, the last is `+Inf`.
    pub buckets: Vec<u64>,
    pub sum: u64,
    pub count: u64,
}

impl CountHistogram {
    pub const fn new(bounds: &'static [u64; COUNT_BUCKETS]) -> CountHistogram {
        CountHistogram {
            bounds,
            buckets: [const { AtomicU64::new(0) }; COUNT_BUCKETS + 1],
            sum: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, v: u64) {
        let i = self
            .bounds
            .iter()
            .position(|le| v <= *le)
            .unwrap_or(COUNT_BUCKETS);
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum.fetch_add(v, Relaxed);
        self.count.fetch_add(1, Relaxed);
    }

    pub fn snapshot(&self) -> CountSnapshot {
        CountSnapshot {
            bounds: self.bounds,
            buckets: self.buckets.iter().map(|b| b.load(Relaxed)).collect(),
            sum: self.sum.load(Relaxed),
            count: self.count.load(Relaxed),
        }
    }
}

impl CountSnapshot {
    /// Adds `other` bucket by bucket (histograms of different shards, same bounds).
    pub fn merge(&mut self, other: &CountSnapshot) {
        if self.bounds.is_empty() {
            self.bounds = other.bounds;
        }
        debug_assert_eq!(self.bounds, other.bounds, "merging different buckets");
        if self.buckets.len() < other.buckets.len() {
            self.buckets.resize(other.buckets.len(), 0);
        }
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
        self.sum += other.sum;
        self.count += other.count;
    }

    /// `(upper bound, count)` per bucket, `+Inf` last: what the Prometheus encoder takes.
    pub fn bounds(&self) -> Vec<(f64, u64)> {
        self.buckets
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let le = self.bounds.get(i).map_or(f64::INFINITY, |v| *v as f64);
                (le, *n)
            })
            .collect()
    }
}

/// How many records and bytes each batch carried: one journal write+fdatasync (a
/// shard's group commit), or one batch frame shipped to the slave.
#[derive(Debug)]
pub struct BatchSizes {
    /// Records (journal frames the broker appended; roll markers not counted).
    pub records: CountHistogram,
    /// New framed bytes (records, and a roll marker when the batch closes a segment;
    /// not the rewritten tail block or the padding to the block).
    pub bytes: CountHistogram,
}

/// A copy of a [`BatchSizes`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BatchSizesSnapshot {
    pub records: CountSnapshot,
    pub bytes: CountSnapshot,
}

impl Default for BatchSizes {
    fn default() -> BatchSizes {
        BatchSizes {
            records: CountHistogram::new(&RECORDS_BUCKETS),
            bytes: CountHistogram::new(&BYTES_BUCKETS),
        }
    }
}

impl BatchSizes {
    pub fn observe(&self, records: u64, bytes: u64) {
        self.records.observe(records);
        self.bytes.observe(bytes);
    }

    pub fn snapshot(&self) -> BatchSizesSnapshot {
        BatchSizesSnapshot {
            records: self.records.snapshot(),
            bytes: self.bytes.snapshot(),
        }
    }
}

impl BatchSizesSnapshot {
    pub fn merge(&mut self, other: &BatchSizesSnapshot) {
        self.records.merge(&other.records);
        self.bytes.merge(&other.bytes);
    }
}

/// Diverged records a shard set aside when it rejoined a master after a split brain
/// (`store::diverged`): never deleted by Tandem, resent by `tandem journal
/// replay-diverged`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DivergedCounters {
    /// Set-aside directories (`shard-N/diverged-*`) on disk now, whichever run made them.
    pub sets: u64,
    /// Diverged records set aside since start.
    pub records: u64,
    /// Diverged messages among them still stored when set aside (what a replay resends).
    pub messages: u64,
}

/// The journal's counters since open, as the shard last copied them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct JournalCounters {
    /// Why the journal's writes are paused for lack of disk space (`null` while they
    /// are not): persistent sends are refused meanwhile.
    pub disk_full: Option<String>,
    pub records: u64,
    /// Framed record bytes appended (what the log grew by).
    pub appended_bytes: u64,
    /// Bytes written to disk, including rewritten tail blocks and padding.
    pub written_bytes: u64,
    /// Write+fdatasync cycles completed (group commits).
    pub fsyncs: u64,
    /// Diverged records set aside. Kept by [`ShardStats::add_diverged`] and
    /// [`ShardStats::set_diverged_sets`], not by [`ShardStats::set_journal`] (which
    /// ignores this field): they change on a reset, not with the journal's counters.
    pub diverged: DivergedCounters,
}

/// TLS handshakes on the client connectors (`/status` `tls`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TlsCounters {
    pub handshakes: u64,
    pub handshake_failures: u64,
}

/// One shard's published numbers. Written only by its shard, read by the HTTP thread.
#[derive(Debug)]
pub struct ShardStats {
    pub shard: usize,
    /// Client connections open on this shard.
    connections: AtomicI64,
    /// TLS handshakes on this shard's connectors that completed, and that failed (a
    /// plain-text client, a certificate refused, a peer gone silent).
    tls_handshakes: AtomicU64,
    tls_handshake_failures: AtomicU64,
    /// Bytes of message bodies the shard holds in memory.
    memory_used_bytes: AtomicU64,
    /// Wildcard subscriptions registered on the shard (each is on every shard).
    wildcard_subscriptions: AtomicU64,
    journal_records: AtomicU64,
    journal_appended_bytes: AtomicU64,
    journal_written_bytes: AtomicU64,
    journal_fsyncs: AtomicU64,
    /// `JournalCounters::disk_full` (rarely set: a lock is fine).
    disk_full: std::sync::Mutex<Option<String>>,
    /// `DivergedCounters`.
    diverged_sets: AtomicU64,
    diverged_records: AtomicU64,
    diverged_messages: AtomicU64,
    /// Latency of each journal write+fdatasync.
    pub fsync_latency: LatencyHistogram,
    /// Records and bytes each journal write+fdatasync made durable.
    pub per_fsync: BatchSizes,
    /// The shard's destinations as of its last tick.
    destinations: Mutex<Arc<Vec<DestinationStats>>>,
    /// Whether someone reads `destinations` (the endpoint is on): the ticker skips
    /// the walk over every destination otherwise.
    publish_destinations: bool,
}

impl ShardStats {
    pub fn new(shard: usize, publish_destinations: bool) -> ShardStats {
        ShardStats {
            shard,
            connections: AtomicI64::new(0),
            tls_handshakes: AtomicU64::new(0),
            tls_handshake_failures: AtomicU64::new(0),
            memory_used_bytes: AtomicU64::new(0),
            wildcard_subscriptions: AtomicU64::new(0),
            journal_records: AtomicU64::new(0),
            journal_appended_bytes: AtomicU64::new(0),
            journal_written_bytes: AtomicU64::new(0),
            journal_fsyncs: AtomicU64::new(0),
            disk_full: std::sync::Mutex::new(None),
            diverged_sets: AtomicU64::new(0),
            diverged_records: AtomicU64::new(0),
            diverged_messages: AtomicU64::new(0),
            fsync_latency: LatencyHistogram::default(),
            per_fsync: BatchSizes::default(),
            destinations: Mutex::new(Arc::new(Vec::new())),
            publish_destinations,
        }
    }

    pub fn connection_opened(&self) {
        self.connections.fetch_add(1, Relaxed);
    }
    pub fn connection_closed(&self) {
        self.connections.fetch_sub(1, Relaxed);
    }
    pub fn connections(&self) -> u64 {
        self.connections.load(Relaxed).max(0) as u64
    }

    /// Counts one TLS handshake on a connector: completed (`ok`) or failed.
    pub fn tls_handshake(&self, ok: bool) {
        let counter = if ok {
            &self.tls_handshakes
        } else {
            &self.tls_handshake_failures
        };
        counter.fetch_add(1, Relaxed);
    }

    pub fn tls(&self) -> TlsCounters {
        TlsCounters {
            handshakes: self.tls_handshakes.load(Relaxed),
            handshake_failures: self.tls_handshake_failures.load(Relaxed),
        }
    }

    pub fn set_memory_used(&self, bytes: u64) {
        self.memory_used_bytes.store(bytes, Relaxed);
    }
    pub fn memory_used(&self) -> u64 {
        self.memory_used_bytes.load(Relaxed)
    }

    pub fn set_wildcard_subscriptions(&self, n: u64) {
        self.wildcard_subscriptions.store(n, Relaxed);
    }
    pub fn wildcard_subscriptions(&self) -> u64 {
        self.wildcard_subscriptions.load(Relaxed)
    }

    pub fn set_journal(&self, j: JournalCounters) {
        self.journal_records.store(j.records, Relaxed);
        self.journal_appended_bytes.store(j.appended_bytes, Relaxed);
        self.journal_written_bytes.store(j.written_bytes, Relaxed);
        self.journal_fsyncs.store(j.fsyncs, Relaxed);
        *self.disk_full.lock().unwrap_or_else(|e| e.into_inner()) = j.disk_full;
    }
    pub fn journal(&self) -> JournalCounters {
        JournalCounters {
            records: self.journal_records.load(Relaxed),
            appended_bytes: self.journal_appended_bytes.load(Relaxed),
            written_bytes: self.journal_written_bytes.load(Relaxed),
            fsyncs: self.journal_fsyncs.load(Relaxed),
            disk_full: self
                .disk_full
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            diverged: DivergedCounters {
                sets: self.diverged_sets.load(Relaxed),
                records: self.diverged_records.load(Relaxed),
                messages: self.diverged_messages.load(Relaxed),
            },
        }
    }

    /// A set of `records` diverged records, `messages` of them stored messages, was
    /// set aside.
    pub fn add_diverged(&self, records: u64, messages: u64) {
        self.diverged_records.fetch_add(records, Relaxed);
        self.diverged_messages.fetch_add(messages, Relaxed);
    }

    /// The set-aside directories on disk now.
    pub fn set_diverged_sets(&self, sets: u64) {
        self.diverged_sets.store(sets, Relaxed);
    }

    pub fn wants_destinations(&self) -> bool {
        self.publish_destinations
    }
    /// Replaces the published destination list (the shard's ticker).
    pub fn set_destinations(&self, list: Vec<DestinationStats>) {
        let list = Arc::new(list);
        // A poisoned lock only means a reader panicked mid-clone; the slot is still a
        // valid Arc.
        let mut slot = self.destinations.lock().unwrap_or_else(|p| p.into_inner());
        *slot = list;
    }
    pub fn destinations(&self) -> Arc<Vec<DestinationStats>> {
        self.destinations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_lands_in_the_right_bucket() {
        let h = LatencyHistogram::default();
        h.observe(Duration::from_micros(30));
        h.observe(Duration::from_micros(50));
        h.observe(Duration::from_micros(220));
        h.observe(Duration::from_secs(1));
        let s = h.snapshot();
        assert_eq!(s.count, 4);
        assert_eq!(s.buckets[0], 2);
        assert_eq!(s.buckets[3], 1, "220 µs is in the 400 µs bucket");
        assert_eq!(*s.buckets.last().unwrap(), 1, "1 s is past every bound");
        assert!((s.sum_seconds - 1.0003).abs() < 1e-9);
        let b = s.bounds_seconds();
        assert_eq!(b[0].0, 50e-6);
        assert!(b.last().unwrap().0.is_infinite());
    }

    #[test]
    fn counts_land_in_the_right_bucket_and_merge() {
        let h = BatchSizes::default();
        for (records, bytes) in [
            (0, 8),
            (1, 40),
            (2, 300),
            (3, 5000),
            (256, 1 << 20),
            (257, 1 << 30),
        ] {
            h.observe(records, bytes);
        }
        let s = h.snapshot();
        assert_eq!(s.records.count, 6);
        assert_eq!(s.records.sum, 519);
        assert_eq!(s.records.bounds, &RECORDS_BUCKETS[..]);
        assert_eq!(s.records.buckets.len(), COUNT_BUCKETS + 1);
        assert_eq!(
            s.records.buckets[0], 2,
            "0 and 1 record are in the le=1 bucket"
        );
        assert_eq!(s.records.buckets[1], 1);
        assert_eq!(s.records.buckets[2], 1, "3 records are in the le=4 bucket");
        assert_eq!(s.records.buckets[8], 1, "256 is in its own bucket");
        assert_eq!(s.records.buckets[9], 1, "257 is past every bound");
        assert_eq!(s.bytes.buckets[0], 2, "8 and 40 bytes: le=256");
        assert_eq!(s.bytes.buckets[1], 1, "300 bytes: le=1024");
        assert_eq!(s.bytes.buckets[3], 1, "5000 bytes: le=16384");
        assert_eq!(s.bytes.buckets[6], 1, "1 MiB: le=1 MiB");
        assert_eq!(s.bytes.buckets[9], 1, "1 GiB: +Inf");
        let b = s.records.bounds();
        assert_eq!(b[0], (1.0, 2));
        assert_eq!(b[8], (256.0, 1));
        assert!(b[9].0.is_infinite());

        // Merged from nothing (as a scrape starts), then a second shard.
        let mut all = BatchSizesSnapshot::default();
        all.merge(&s);
        all.merge(&s);
        assert_eq!(all.records.count, 12);
        assert_eq!(all.records.sum, 1038);
        assert_eq!(all.records.buckets[0], 4);
        assert_eq!(all.bytes.bounds, &BYTES_BUCKETS[..]);
        assert_eq!(
            all.bytes.sum,
            2 * (8 + 40 + 300 + 5000 + (1 << 20) + (1 << 30))
        );
    }

    #[test]
    fn connections_never_read_negative() {
        let s = ShardStats::new(0, false);
        s.connection_closed();
        assert_eq!(s.connections(), 0);
        s.connection_opened();
        s.connection_opened();
        assert_eq!(s.connections(), 1);
    }
}
