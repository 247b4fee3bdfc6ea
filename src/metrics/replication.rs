//! What the replication link publishes for the status endpoint.
//!
//! One [`ReplicationStats`] per broker, shared as `Arc<ReplicationStats>` between
//! whoever runs the link (any thread or executor) and the HTTP thread. Everything on
//! the hot path (lag, shipped counters, round trips) is a relaxed atomic: writers store
//! or add, the reader loads, nobody waits. Only the peer's address, which changes when
//! the link (re)connects, sits behind a `Mutex`.
//!
//! A reading is not a transaction: [`ReplicationStats::snapshot`] loads each number on
//! its own, so e.g. the three lag numbers may come from two neighbouring
//! [`ReplicationStats::set_lag`] calls. That is the same contract as [`ShardStats`].
//!
//! [`Role`] and [`PeerState`] are replication's vocabulary and live in
//! `replication::role` (a leaf: it imports nothing); they are re-exported here, so
//! `metrics::replication::{Role, PeerState}` still name them. How they are stored in
//! the atomics (their index in `ALL`) stays here. Direction: this file imports
//! `replication::role` and the leaf [`super::stats`]; `replication` imports
//! [`ReplicationStats`] from here.
//!
//! [`ShardStats`]: super::ShardStats

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

use super::stats::{BatchSizes, BatchSizesSnapshot, HistogramSnapshot, LatencyHistogram};
pub use crate::replication::role::{PeerState, Role};

/// Shipped but not yet acknowledged by the slave.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Lag {
    pub records: u64,
    pub bytes: u64,
    /// Age of the oldest unacknowledged record, in milliseconds.
    pub ms: u64,
}

/// Shipped to the slave since this process started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Shipped {
    pub records: u64,
    pub bytes: u64,
}

/// What a master holds in memory for its slave (bytes), against `limit`
/// (`<tandem replicationBuffer>`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Buffered {
    pub limit: u64,
    /// Live batches and non-persistent frames on their way from the shards to the
    /// replication core.
    pub channel: u64,
    /// Live batches held while a catch-up from the journal streams, and frames
    /// waiting for the Welcome.
    pub queued: u64,
    /// Encoded frames not yet taken by the socket.
    pub socket: u64,
}

/// What the bound on [`Buffered`] cost since this process started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Overflow {
    /// Times a shard's live stream was switched to catch-up from the journal.
    pub switches: u64,
    /// Live batches (and their bytes) not kept in memory for the slave: it reads
    /// them back from the journal.
    pub deferred_batches: u64,
    pub deferred_bytes: u64,
    /// Non-persistent frames (and bytes) never sent to the slave: a node that takes
    /// over does not hold those messages.
    pub volatile_dropped: u64,
    pub volatile_dropped_bytes: u64,
}

/// A copy of [`ReplicationStats`]; the `replication` object of `GET /status`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ReplicationSnapshot {
    pub role: Role,
    pub epoch: u64,
    pub peer: PeerState,
    /// The other node's address as text; `null` when there is none.
    pub peer_address: Option<String>,
    pub lag: Lag,
    pub shipped: Shipped,
    /// Takeovers this node did (slave becoming master) since start.
    pub takeovers: u64,
    /// Duration of the last takeover in ms; 0 until there was one.
    pub last_takeover_ms: u64,
    /// Replication round trip: batch shipped -> slave acknowledgement.
    pub rtt: HistogramSnapshot,
    /// Master: records and bytes in each batch frame shipped to the slave (Prometheus
    /// only, like the journal's per-fsync histograms).
    #[serde(skip)]
    pub per_frame: BatchSizesSnapshot,
    /// Master: memory held for the slave.
    pub buffered: Buffered,
    /// Master: what the bound on `buffered` cost.
    pub overflow: Overflow,
    /// The pair's safety rules at work (`replication::machine`).
    pub safety: Safety,
}

/// What the pair's decision machine is doing: whether this node may confirm without
/// its slave, whether it holds the witness's lease, and what it has done.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Safety {
    /// The last grant to confirm without a slave acknowledgement is in force (a master
    /// without an in-sync slave that knows nobody else serves).
    pub confirm_alone: bool,
    /// `<tandem witness>` is configured.
    pub witness: bool,
    /// This node holds the witness's lease.
    pub lease_held: bool,
    /// Times this node asked its peer who serves.
    pub probes: u64,
    /// Times this node stepped down because a newer epoch served elsewhere.
    pub step_downs: u64,
}

/// The replication state one broker publishes. Every method takes `&self`.
#[derive(Debug, Default)]
pub struct ReplicationStats {
    /// A [`Role`] as its index in [`Role::ALL`].
    role: AtomicU8,
    epoch: AtomicU64,
    /// A [`PeerState`] as its index in [`PeerState::ALL`].
    peer: AtomicU8,
    peer_address: Mutex<Option<String>>,
    lag_records: AtomicU64,
    lag_bytes: AtomicU64,
    lag_ms: AtomicU64,
    shipped_records: AtomicU64,
    shipped_bytes: AtomicU64,
    takeovers: AtomicU64,
    last_takeover_ms: AtomicU64,
    /// Replication round trip (batch shipped -> slave ack); the fsync histogram's
    /// buckets (50 µs .. 102.4 ms, then `+Inf`). Same as [`Self::observe_rtt`].
    pub rtt: LatencyHistogram,
    /// Records and bytes per batch frame shipped to the slave ([`Self::observe_frame`]).
    pub per_frame: BatchSizes,
    buffer_limit: AtomicU64,
    /// Added by the shards as they post, taken off by the core as it reads: the
    /// shards→core channel's bytes ([`Self::reserve_channel`]).
    buffered_channel: AtomicU64,
    buffered_queued: AtomicU64,
    buffered_socket: AtomicU64,
    switches: AtomicU64,
    deferred_batches: AtomicU64,
    deferred_bytes: AtomicU64,
    volatile_dropped: AtomicU64,
    volatile_dropped_bytes: AtomicU64,
    confirm_alone: std::sync::atomic::AtomicBool,
    witness: std::sync::atomic::AtomicBool,
    lease_held: std::sync::atomic::AtomicBool,
    probes: AtomicU64,
    step_downs: AtomicU64,
}

impl ReplicationStats {
    /// Whether a grant to confirm alone is in force (see [`Safety`]).
    pub fn set_confirm_alone(&self, on: bool) {
        self.confirm_alone.store(on, Relaxed);
    }
    pub fn set_witness(&self, configured: bool) {
        self.witness.store(configured, Relaxed);
    }
    pub fn set_lease_held(&self, held: bool) {
        self.lease_held.store(held, Relaxed);
    }
    pub fn add_probe(&self) {
        self.probes.fetch_add(1, Relaxed);
    }
    pub fn add_step_down(&self) {
        self.step_downs.fetch_add(1, Relaxed);
    }

    /// A standalone node: epoch 0, no peer, every counter 0.
    pub fn new() -> ReplicationStats {
        ReplicationStats::default()
    }

    pub fn set_role(&self, role: Role) {
        self.role.store(role as u8, Relaxed);
    }
    pub fn role(&self) -> Role {
        role_from_u8(self.role.load(Relaxed))
    }

    pub fn set_epoch(&self, epoch: u64) {
        self.epoch.store(epoch, Relaxed);
    }
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Relaxed)
    }

    pub fn set_peer(&self, state: PeerState) {
        self.peer.store(state as u8, Relaxed);
    }
    pub fn peer(&self) -> PeerState {
        peer_from_u8(self.peer.load(Relaxed))
    }

    /// The other node's address as text (`None`: no peer). Takes a lock: call it when
    /// the link (re)connects, not per batch.
    pub fn set_peer_address(&self, address: Option<String>) {
        // A poisoned lock only means a holder panicked mid-store; the value is whole.
        *self.peer_address.lock().unwrap_or_else(|p| p.into_inner()) = address;
    }
    pub fn peer_address(&self) -> Option<String> {
        self.peer_address
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// What the master has shipped and the slave not yet acknowledged: `records`,
    /// `bytes`, and `ms`, the age of the oldest such record.
    pub fn set_lag(&self, records: u64, bytes: u64, ms: u64) {
        self.lag_records.store(records, Relaxed);
        self.lag_bytes.store(bytes, Relaxed);
        self.lag_ms.store(ms, Relaxed);
    }

    /// One replication round trip (batch shipped -> slave acknowledgement).
    pub fn observe_rtt(&self, d: Duration) {
        self.rtt.observe(d);
    }

    /// One batch frame shipped to the slave, carrying `records` journal records in
    /// `bytes` framed bytes (live batches and catch-up chunks alike).
    pub fn observe_frame(&self, records: u64, bytes: u64) {
        self.per_frame.observe(records, bytes);
    }

    /// Counts records and bytes shipped to the slave.
    pub fn add_shipped(&self, records: u64, bytes: u64) {
        self.shipped_records.fetch_add(records, Relaxed);
        self.shipped_bytes.fetch_add(bytes, Relaxed);
    }

    /// Counts one takeover done by this node.
    pub fn add_takeover(&self) {
        self.takeovers.fetch_add(1, Relaxed);
    }
    /// How long the last takeover took, in ms.
    pub fn set_last_takeover_ms(&self, ms: u64) {
        self.last_takeover_ms.store(ms, Relaxed);
    }

    pub fn set_buffer_limit(&self, bytes: u64) {
        self.buffer_limit.store(bytes, Relaxed);
    }

    /// Counts `bytes` into the shards→core channel unless that takes it past `limit`
    /// (false: nothing counted, the item must not be posted). An empty channel takes
    /// any item, so one batch larger than the limit is not refused for ever.
    pub fn reserve_channel(&self, bytes: u64, limit: u64) -> bool {
        let before = self.buffered_channel.fetch_add(bytes, Relaxed);
        if before > 0 && before.saturating_add(bytes) > limit {
            self.buffered_channel.fetch_sub(bytes, Relaxed);
            return false;
        }
        true
    }

    /// The core took `bytes` out of the channel ([`Self::reserve_channel`]).
    pub fn release_channel(&self, bytes: u64) {
        // Never below zero, even if a release raced a reservation's undo.
        let _ = self
            .buffered_channel
            .fetch_update(Relaxed, Relaxed, |v| Some(v.saturating_sub(bytes)));
    }

    /// What the core holds for the slave: queued live batches and the socket's output.
    pub fn set_buffered(&self, queued: u64, socket: u64) {
        self.buffered_queued.store(queued, Relaxed);
        self.buffered_socket.store(socket, Relaxed);
    }

    /// A shard's live stream switched to catch-up from the journal.
    pub fn add_switch(&self) {
        self.switches.fetch_add(1, Relaxed);
    }

    /// A live batch of `bytes` left for the slave to read back from the journal.
    pub fn add_deferred(&self, bytes: u64) {
        self.deferred_batches.fetch_add(1, Relaxed);
        self.deferred_bytes.fetch_add(bytes, Relaxed);
    }

    /// A non-persistent frame of `bytes` dropped for the slave.
    pub fn add_volatile_dropped(&self, bytes: u64) {
        self.volatile_dropped.fetch_add(1, Relaxed);
        self.volatile_dropped_bytes.fetch_add(bytes, Relaxed);
    }

    pub fn snapshot(&self) -> ReplicationSnapshot {
        ReplicationSnapshot {
            role: self.role(),
            epoch: self.epoch(),
            peer: self.peer(),
            peer_address: self.peer_address(),
            lag: Lag {
                records: self.lag_records.load(Relaxed),
                bytes: self.lag_bytes.load(Relaxed),
                ms: self.lag_ms.load(Relaxed),
            },
            shipped: Shipped {
                records: self.shipped_records.load(Relaxed),
                bytes: self.shipped_bytes.load(Relaxed),
            },
            takeovers: self.takeovers.load(Relaxed),
            last_takeover_ms: self.last_takeover_ms.load(Relaxed),
            rtt: self.rtt.snapshot(),
            per_frame: self.per_frame.snapshot(),
            buffered: Buffered {
                limit: self.buffer_limit.load(Relaxed),
                channel: self.buffered_channel.load(Relaxed),
                queued: self.buffered_queued.load(Relaxed),
                socket: self.buffered_socket.load(Relaxed),
            },
            overflow: Overflow {
                switches: self.switches.load(Relaxed),
                deferred_batches: self.deferred_batches.load(Relaxed),
                deferred_bytes: self.deferred_bytes.load(Relaxed),
                volatile_dropped: self.volatile_dropped.load(Relaxed),
                volatile_dropped_bytes: self.volatile_dropped_bytes.load(Relaxed),
            },
            safety: Safety {
                confirm_alone: self.confirm_alone.load(Relaxed),
                witness: self.witness.load(Relaxed),
                lease_held: self.lease_held.load(Relaxed),
                probes: self.probes.load(Relaxed),
                step_downs: self.step_downs.load(Relaxed),
            },
        }
    }
}

/// A [`Role`] from its index in [`Role::ALL`] (how [`ReplicationStats`] stores it).
fn role_from_u8(v: u8) -> Role {
    Role::ALL.get(usize::from(v)).copied().unwrap_or_default()
}

/// A [`PeerState`] from its index in [`PeerState::ALL`].
fn peer_from_u8(v: u8) -> PeerState {
    PeerState::ALL
        .get(usize::from(v))
        .copied()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::stats::FSYNC_BUCKETS_US;
    use std::sync::Arc;

    #[test]
    fn a_new_node_is_standalone_with_no_peer() {
        let s = ReplicationStats::new().snapshot();
        assert_eq!(s.role, Role::Standalone);
        assert_eq!(s.peer, PeerState::None);
        assert_eq!(s.epoch, 0);
        assert_eq!(s.peer_address, None);
        assert_eq!(s.rtt.count, 0);
        assert_eq!(s.rtt.buckets.len(), FSYNC_BUCKETS_US.len() + 1);
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["role"], "standalone");
        assert_eq!(v["peer"], "none");
        assert!(v["peer_address"].is_null());
    }

    #[test]
    fn enums_round_trip_through_the_atomics_and_spell_like_json() {
        let s = ReplicationStats::new();
        for r in Role::ALL {
            s.set_role(r);
            assert_eq!(s.role(), r);
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
        for p in PeerState::ALL {
            s.set_peer(p);
            assert_eq!(s.peer(), p);
            assert_eq!(serde_json::to_value(p).unwrap(), p.as_str());
        }
        assert_eq!(PeerState::InSync.as_str(), "in-sync");
    }

    #[test]
    fn snapshot_json_has_the_documented_shape() {
        let s = Arc::new(ReplicationStats::new());
        s.set_role(Role::Master);
        s.set_epoch(7);
        s.set_peer(PeerState::InSync);
        s.set_peer_address(Some("10.0.0.2:61617".into()));
        s.set_lag(3, 4096, 12);
        s.add_shipped(10, 1000);
        {
            // Written from another thread through the shared Arc.
            let s = Arc::clone(&s);
            std::thread::spawn(move || s.add_shipped(5, 500))
                .join()
                .unwrap();
        }
        s.add_takeover();
        s.add_takeover();
        s.set_last_takeover_ms(250);
        s.observe_rtt(Duration::from_micros(150));
        s.rtt.observe(Duration::from_secs(1));
        s.observe_frame(10, 1000);
        s.observe_frame(5, 500);

        let snap = s.snapshot();
        assert_eq!(snap.per_frame.records.count, 2);
        assert_eq!(snap.per_frame.records.sum, 15);
        assert_eq!(snap.per_frame.bytes.sum, 1500);
        assert_eq!(
            snap.shipped,
            Shipped {
                records: 15,
                bytes: 1500
            }
        );
        assert_eq!(snap.rtt.count, 2);

        let v = serde_json::to_value(&snap).unwrap();
        assert_eq!(v["role"], "master");
        assert_eq!(v["epoch"], 7);
        assert_eq!(v["peer"], "in-sync");
        assert_eq!(v["peer_address"], "10.0.0.2:61617");
        assert_eq!(v["lag"]["records"], 3);
        assert_eq!(v["lag"]["bytes"], 4096);
        assert_eq!(v["lag"]["ms"], 12);
        assert_eq!(v["shipped"]["records"], 15);
        assert_eq!(v["shipped"]["bytes"], 1500);
        assert_eq!(v["takeovers"], 2);
        assert_eq!(v["last_takeover_ms"], 250);
        assert_eq!(v["rtt"]["count"], 2);
        assert!(v.get("per_frame").is_none(), "Prometheus only: {v}");
        assert!((v["rtt"]["sum_seconds"].as_f64().unwrap() - 1.00015).abs() < 1e-9);
        let buckets = v["rtt"]["buckets"].as_array().unwrap();
        assert_eq!(buckets.len(), FSYNC_BUCKETS_US.len() + 1);
        assert_eq!(buckets[0], serde_json::json!({"le_us": 50, "count": 0}));
        assert_eq!(buckets[2], serde_json::json!({"le_us": 200, "count": 1}));
        assert_eq!(
            buckets[FSYNC_BUCKETS_US.len()],
            serde_json::json!({"le_us": null, "count": 1})
        );

        s.set_buffer_limit(1000);
        assert!(s.reserve_channel(600, 1000));
        assert!(s.reserve_channel(400, 1000));
        assert!(!s.reserve_channel(1, 1000), "past the limit: refused");
        s.release_channel(1000);
        assert!(
            s.reserve_channel(5000, 1000),
            "an empty channel takes any item"
        );
        s.release_channel(5000);
        s.set_buffered(7, 9);
        s.add_switch();
        s.add_deferred(100);
        s.add_volatile_dropped(30);
        let v = serde_json::to_value(s.snapshot()).unwrap();
        assert_eq!(
            v["buffered"],
            serde_json::json!({"limit": 1000, "channel": 0, "queued": 7, "socket": 9})
        );
        assert_eq!(
            v["overflow"],
            serde_json::json!({"switches": 1, "deferred_batches": 1, "deferred_bytes": 100,
                "volatile_dropped": 1, "volatile_dropped_bytes": 30})
        );

        s.set_peer_address(None);
        s.set_lag(0, 0, 0);
        let v = serde_json::to_value(s.snapshot()).unwrap();
        assert!(v["peer_address"].is_null());
        assert_eq!(
            v["lag"],
            serde_json::json!({"records": 0, "bytes": 0, "ms": 0})
        );
    }
}
