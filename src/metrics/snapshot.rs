//! One consistent-enough reading of every shard's [`ShardStats`] and of the broker's
//! [`ReplicationStats`], and its JSON shape (`GET /status`).
//!
//! ```json
//! {"broker": "localhost", "role": "standalone", "uptime_s": 12, "shards": 2,
//!  "connections": 3, "wildcard_subscriptions": 0, "tls": {"handshakes": 0, "handshake_failures": 0},
//!  "destinations": [{"name": "/queue/a", "depth": 6, "enqueued": 10, "dequeued": 4,
//!                    "consumers": 1}],
//!  "journal": {"fsyncs": 10, "appended_bytes": 5120, "records": 14, "written_bytes": 40960,
//!              "disk_full": null,
//!              "diverged": {"sets": 0, "records": 0, "messages": 0}},
//!  "memory": {"used_bytes": 1200, "limit_bytes": 67108864, "messages": 6,
//!             "rss_bytes": 20971520,
//!             "by_use": {"message_bodies": 1200, "transactions": 0,
//!                        "pending_output": 0, "replication": 0}},
//!  "limits": {"transaction_bytes": 0, "pending_output_bytes": 0,
//!             "refusals": [{"limit": "maxTransactionSize", "count": 0}, ...]},
//!  "replication": {"role": "standalone", "epoch": 0, "peer": "none", "peer_address": null,
//!                  "lag": {"records": 0, "bytes": 0, "ms": 0},
//!                  "shipped": {"records": 0, "bytes": 0},
//!                  "takeovers": 0, "last_takeover_ms": 0,
//!                  "safety": {"confirm_alone": false, "witness": false, "lease_held": false,
//!                             "probes": 0, "step_downs": 0},
//!                  "rtt": {"count": 0, "sum_seconds": 0.0,
//!                          "buckets": [{"le_us": 50, "count": 0}, ...,
//!                                      {"le_us": null, "count": 0}]}}}
//! ```
//!
//! `replication` is always an object (see [`ReplicationSnapshot`]); the top-level `role`
//! repeats `replication.role`. `peer` is one of `none`, `connecting`, `syncing`,
//! `in-sync`, `degraded`; `rtt` buckets are per bucket (not cumulative), `le_us: null`
//! being `+Inf`.

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use super::limits::{LimitStats, LimitsSnapshot};
use super::replication::{ReplicationSnapshot, ReplicationStats};
use super::stats::{
    BatchSizesSnapshot, DestinationStats, HistogramSnapshot, JournalCounters, ShardStats,
    TlsCounters,
};

/// What the endpoint knows about the broker besides the shards' numbers.
#[derive(Clone, Debug)]
pub struct BrokerInfo {
    pub broker: String,
    /// The replication state (role, epoch, peer, lag...), written by the replication
    /// link; the snapshot's `role` is read from it.
    pub replication: Arc<ReplicationStats>,
    pub started: Instant,
    /// The configured `<memoryUsage limit>` (all shards together).
    pub memory_limit_bytes: u64,
    /// Transactions, pending output and refusals of the connection limits.
    pub limits: Arc<LimitStats>,
}

/// `/status` `memory`: where the broker's memory goes, so that an operator can tell
/// a backlog from a slow consumer from a slow slave.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Memory {
    /// Message bodies held in memory: what `limit_bytes` (`<memoryUsage limit>`) caps.
    pub used_bytes: u64,
    pub limit_bytes: u64,
    /// Messages the destinations hold, bodies in memory or not: each costs an index
    /// entry (about a hundred bytes) beyond the limit.
    pub messages: u64,
    /// Resident set of the process (`/proc/self/statm`; 0 where unreadable).
    pub rss_bytes: u64,
    pub by_use: MemoryByUse,
}

/// Bytes by use. They may overlap: a delivery waiting in a connection's output shares
/// its body with the destination that stores it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct MemoryByUse {
    pub message_bodies: u64,
    /// Sends of open transactions, buffered until COMMIT.
    pub transactions: u64,
    /// Deliveries handed to connections and not yet written to their sockets.
    pub pending_output: u64,
    /// What the master holds for its slave (`replication.buffered`).
    pub replication: u64,
}

/// The process's resident set in bytes, or 0 when `/proc/self/statm` cannot be read.
fn resident_bytes() -> u64 {
    let Ok(statm) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions; a negative answer means unknown.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * u64::try_from(page).unwrap_or(4096)
}

/// The whole broker at one moment (each shard read once, one after the other).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Snapshot {
    pub broker: String,
    /// `standalone`, `master` or `slave`: `replication.role`.
    pub role: String,
    pub uptime_s: u64,
    pub shards: usize,
    pub connections: u64,
    /// Wildcard subscriptions, counted once per shard (each is registered on every
    /// shard, see `broker::core::wildcard_subs`).
    pub wildcard_subscriptions: u64,
    /// TLS handshakes on the client connectors, all shards.
    pub tls: TlsCounters,
    /// Sorted by name; each destination lives on exactly one shard.
    pub destinations: Vec<DestinationStats>,
    pub journal: JournalCounters,
    pub memory: Memory,
    pub replication: ReplicationSnapshot,
    pub limits: LimitsSnapshot,
    /// Journal write+fdatasync latency, all shards merged (Prometheus only).
    #[serde(skip)]
    pub fsync: HistogramSnapshot,
    /// Records and bytes each journal write+fdatasync made durable, all shards merged
    /// (Prometheus only).
    #[serde(skip)]
    pub per_fsync: BatchSizesSnapshot,
}

impl Snapshot {
    /// Reads the replication state, then every shard's published numbers.
    pub fn collect(info: &BrokerInfo, shards: &[Arc<ShardStats>]) -> Snapshot {
        let replication = info.replication.snapshot();
        let mut s = Snapshot {
            broker: info.broker.clone(),
            role: replication.role.as_str().to_string(),
            replication,
            limits: info.limits.snapshot(),
            uptime_s: info.started.elapsed().as_secs(),
            shards: shards.len(),
            memory: Memory {
                limit_bytes: info.memory_limit_bytes,
                ..Memory::default()
            },
            ..Snapshot::default()
        };
        for shard in shards {
            s.connections += shard.connections();
            let tls = shard.tls();
            s.tls.handshakes += tls.handshakes;
            s.tls.handshake_failures += tls.handshake_failures;
            s.memory.used_bytes += shard.memory_used();
            s.wildcard_subscriptions += shard.wildcard_subscriptions();
            let j = shard.journal();
            s.journal.records += j.records;
            s.journal.appended_bytes += j.appended_bytes;
            s.journal.written_bytes += j.written_bytes;
            s.journal.fsyncs += j.fsyncs;
            s.journal.diverged.sets += j.diverged.sets;
            s.journal.diverged.records += j.diverged.records;
            s.journal.diverged.messages += j.diverged.messages;
            if s.journal.disk_full.is_none() {
                s.journal.disk_full = j.disk_full;
            }
            s.fsync.merge(&shard.fsync_latency.snapshot());
            s.per_fsync.merge(&shard.per_fsync.snapshot());
            s.destinations.extend(shard.destinations().iter().cloned());
        }
        s.destinations.sort_by(|a, b| a.name.cmp(&b.name));
        s.memory.messages = s.destinations.iter().map(|d| d.depth).sum();
        s.memory.rss_bytes = resident_bytes();
        let buffered = &s.replication.buffered;
        s.memory.by_use = MemoryByUse {
            message_bodies: s.memory.used_bytes,
            transactions: s.limits.transaction_bytes,
            pending_output: s.limits.pending_output_bytes,
            replication: buffered.channel + buffered.queued + buffered.socket,
        };
        s
    }

    pub fn to_json(&self) -> String {
        // Serialising plain structs of strings and numbers cannot fail.
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::replication::{PeerState, Role};
    use std::time::Duration;

    #[test]
    fn json_has_the_documented_shape() {
        let a = Arc::new(ShardStats::new(0, true));
        let b = Arc::new(ShardStats::new(1, true));
        a.connection_opened();
        b.connection_opened();
        b.set_memory_used(100);
        a.set_journal(JournalCounters {
            records: 3,
            appended_bytes: 300,
            written_bytes: 4096,
            fsyncs: 2,
            disk_full: None,
            ..JournalCounters::default()
        });
        a.add_diverged(7, 2);
        b.add_diverged(1, 1);
        b.set_diverged_sets(2);
        a.fsync_latency.observe(Duration::from_micros(200));
        a.per_fsync.observe(2, 300);
        b.per_fsync.observe(1, 40);
        b.set_destinations(vec![DestinationStats {
            name: "/queue/b".into(),
            depth: 1,
            enqueued: 2,
            dequeued: 1,
            consumers: 0,
            ..Default::default()
        }]);
        a.set_destinations(vec![DestinationStats {
            name: "/queue/a".into(),
            depth: 6,
            enqueued: 10,
            dequeued: 4,
            consumers: 1,
            ..Default::default()
        }]);
        let info = BrokerInfo {
            broker: "b1".into(),
            replication: Arc::new(ReplicationStats::new()),
            started: Instant::now(),
            memory_limit_bytes: 1 << 20,
            limits: Arc::default(),
        };
        let snap = Snapshot::collect(&info, &[a, b]);
        assert_eq!(snap.fsync.count, 1);
        assert_eq!(snap.per_fsync.records.count, 2);
        assert_eq!(snap.per_fsync.records.sum, 3);
        assert_eq!(snap.per_fsync.bytes.sum, 340);
        let v: serde_json::Value = serde_json::from_str(&snap.to_json()).unwrap();
        assert_eq!(v["broker"], "b1");
        assert_eq!(v["role"], "standalone");
        assert_eq!(v["shards"], 2);
        assert_eq!(v["connections"], 2);
        assert!(v["uptime_s"].is_u64());
        assert_eq!(v["destinations"][0]["name"], "/queue/a");
        assert_eq!(v["destinations"][0]["depth"], 6);
        assert_eq!(v["destinations"][0]["enqueued"], 10);
        assert_eq!(v["destinations"][0]["dequeued"], 4);
        assert_eq!(v["destinations"][0]["consumers"], 1);
        assert_eq!(v["destinations"][1]["name"], "/queue/b");
        assert_eq!(v["journal"]["fsyncs"], 2);
        assert_eq!(v["journal"]["appended_bytes"], 300);
        assert_eq!(
            v["journal"]["diverged"],
            serde_json::json!({"sets": 2, "records": 8, "messages": 3})
        );
        assert_eq!(v["memory"]["used_bytes"], 100);
        assert_eq!(v["memory"]["limit_bytes"], 1 << 20);
        assert_eq!(v["memory"]["by_use"]["message_bodies"], 100);
        assert_eq!(
            v["memory"]["messages"],
            6 + v["destinations"][1]["depth"].as_u64().unwrap()
        );
        assert!(v["memory"]["rss_bytes"].as_u64().unwrap() > 0);
        assert_eq!(v["replication"]["role"], "standalone");
        assert_eq!(v["replication"]["epoch"], 0);
        assert_eq!(v["replication"]["peer"], "none");
        assert!(v["replication"]["peer_address"].is_null());
        assert_eq!(v["replication"]["lag"]["records"], 0);
        assert_eq!(v["replication"]["shipped"]["bytes"], 0);
        assert_eq!(v["replication"]["takeovers"], 0);
        assert_eq!(v["replication"]["rtt"]["count"], 0);
        assert!(v.get("fsync").is_none());
        assert!(v.get("per_fsync").is_none());
        assert_eq!(v["tls"]["handshakes"], 0);
        assert_eq!(v["tls"]["handshake_failures"], 0);
        assert_eq!(v["limits"]["transaction_bytes"], 0);
        assert_eq!(v["limits"]["pending_output_bytes"], 0);
        assert_eq!(v["limits"]["refusals"][0]["limit"], "maxTransactionSize");
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "broker",
                "connections",
                "destinations",
                "journal",
                "limits",
                "memory",
                "replication",
                "role",
                "shards",
                "tls",
                "uptime_s",
                "wildcard_subscriptions"
            ]
        );
    }

    #[test]
    fn role_and_replication_follow_the_stats() {
        let info = BrokerInfo {
            broker: "b1".into(),
            replication: Arc::new(ReplicationStats::new()),
            started: Instant::now(),
            memory_limit_bytes: 0,
            limits: Arc::default(),
        };
        info.replication.set_role(Role::Slave);
        info.replication.set_epoch(3);
        info.replication.set_peer(PeerState::Syncing);
        info.replication
            .set_peer_address(Some("master.example:61617".into()));
        info.replication.set_lag(1, 2, 3);
        let v: serde_json::Value =
            serde_json::from_str(&Snapshot::collect(&info, &[]).to_json()).unwrap();
        assert_eq!(v["role"], "slave");
        assert_eq!(v["replication"]["role"], "slave");
        assert_eq!(v["replication"]["epoch"], 3);
        assert_eq!(v["replication"]["peer"], "syncing");
        assert_eq!(v["replication"]["peer_address"], "master.example:61617");
        assert_eq!(
            v["replication"]["lag"],
            serde_json::json!({"records": 1, "bytes": 2, "ms": 3})
        );
    }
}
