//! `GET /metrics`: a [`Snapshot`] in the Prometheus text exposition format (0.0.4),
//! written by `prometheus-client` (names, escaping, `_total` suffixes, histogram
//! buckets and `+Inf` are its business, not ours).
//!
//! The numbers already live in the shards' atomics, so instead of mirroring them into
//! long-lived `prometheus-client` metrics we hand the encoder one [`Collector`] over a
//! fresh snapshot per scrape: destinations that disappeared (temporary queues) drop
//! out of the output instead of lingering as stale series.
//!
//! Families (all prefixed `tandem_`):
//!
//! | name | type | labels |
//! |---|---|---|
//! | `destination_depth` | gauge | `destination` |
//! | `destination_enqueued_total` | counter | `destination` |
//! | `destination_dequeued_total` | counter | `destination` |
//! | `destination_consumers` | gauge | `destination` |
//! | `destination_memory_bytes` | gauge: bodies held in memory | `destination` |
//! | `connections` | gauge | |
//! | `journal_fsync_seconds` | histogram (50 µs .. 102.4 ms) | |
//! | `journal_records_per_fsync` | histogram (1 .. 256): records one write+fdatasync made durable | |
//! | `journal_bytes_per_fsync` | histogram (256 B .. 16 MiB): new framed bytes one write+fdatasync made durable | |
//! | `journal_fsyncs_total`, `journal_records_total` | counter | |
//! | `journal_appended_bytes_total`, `journal_written_bytes_total` | counter | |
//! | `journal_disk_full` | gauge: 1 while writes are paused for lack of disk space | |
//! | `journal_diverged_sets` | gauge: set-aside directories of diverged records on disk (`shard-N/diverged-*`) | |
//! | `journal_diverged_records_total`, `journal_diverged_messages_total` | counter: diverged records (and the stored messages among them) set aside since start | |
//! | `memory_used_bytes`, `memory_limit_bytes` | gauge | |
//! | `memory_bytes` | gauge: memory by use (may overlap) | `use` (`message_bodies`, `transactions`, `pending_output`, `replication`) |
//! | `messages_held` | gauge: messages the destinations hold, bodies in memory or not | |
//! | `process_resident_bytes` | gauge | |
//! | `transaction_bytes`, `pending_output_bytes` | gauge | |
//! | `destinations` | gauge: queues and topics held (`maxDestinations` caps it) | |
//! | `virtual_topic_queues` | gauge: virtual-topic consumer queues held (among `destinations`) | |
//! | `wildcard_subscriptions` | gauge: wildcard subscriptions, once per shard (each is on every shard) | |
//! | `scheduled_messages` | gauge: scheduled messages waiting to fire (`maxScheduledMessages` caps it) | |
//! | `store_bytes` | gauge: journal bytes on disk (`storeUsage` caps it) | |
//! | `limit_refusals_total` | counter | `limit` (the configuration attribute) |
//! | `uptime_seconds`, `shards` | gauge | |
//! | `replication_role` | gauge (1 for the current role, 0 for the others) | `role` |
//! | `replication_epoch` | gauge | |
//! | `replication_peer_state` | gauge (1 for the current state, 0 for the others) | `state` |
//! | `replication_lag_records`, `replication_lag_bytes`, `replication_lag_seconds` | gauge | |
//! | `replication_shipped_records_total`, `replication_shipped_bytes_total` | counter | |
//! | `replication_takeovers_total` | counter | |
//! | `replication_confirm_alone`, `replication_witness_lease_held` | gauge (0/1): a grant to confirm without the slave is in force; this node holds the witness's lease | |
//! | `replication_probes_total`, `replication_step_downs_total` | counter: the peer asked who serves; stepped down for a newer epoch | |
//! | `replication_rtt_seconds` | histogram (50 µs .. 102.4 ms) | |
//! | `replication_records_per_frame` | histogram (1 .. 256): records in one batch frame shipped to the slave | |
//! | `replication_bytes_per_frame` | histogram (256 B .. 16 MiB): bytes of one batch frame's journal batch | |
//! | `replication_buffered_bytes` | gauge: master memory held for the slave | `use` (`channel`, `queued`, `socket`) |
//! | `replication_buffer_limit_bytes` | gauge (`<tandem replicationBuffer>`) | |
//! | `replication_catch_up_switches_total` | counter: live stream switched to the journal | |
//! | `replication_deferred_batches_total`, `replication_deferred_bytes_total` | counter: left for the slave to read from the journal | |
//! | `replication_volatile_dropped_total`, `replication_volatile_dropped_bytes_total` | counter: non-persistent frames not sent to the slave | |

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::replication::{PeerState, Role};
use super::snapshot::Snapshot;
use super::stats::CountSnapshot;

/// The `Content-Type` of what [`encode`] writes.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Renders `snap` as Prometheus text.
pub fn encode(snap: Snapshot) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(SnapshotCollector(snap)));
    let mut out = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)?;
    Ok(out)
}

#[derive(Debug)]
struct SnapshotCollector(Snapshot);

type Labels<'a> = [(&'static str, &'a str); 1];

impl Collector for SnapshotCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.0;
        per_destination(
            &mut enc,
            "tandem_destination_depth",
            "Messages stored (ready or unacknowledged)",
            MetricType::Gauge,
            s,
            |d| d.depth,
        )?;
        per_destination(
            &mut enc,
            "tandem_destination_enqueued",
            "Messages accepted since start",
            MetricType::Counter,
            s,
            |d| d.enqueued,
        )?;
        per_destination(
            &mut enc,
            "tandem_destination_dequeued",
            "Messages removed since start (acknowledged, expired, dead-lettered, purged)",
            MetricType::Counter,
            s,
            |d| d.dequeued,
        )?;
        per_destination(
            &mut enc,
            "tandem_destination_consumers",
            "Consumers attached",
            MetricType::Gauge,
            s,
            |d| d.consumers,
        )?;
        per_destination(
            &mut enc,
            "tandem_destination_memory_bytes",
            "Bytes of message bodies held in memory (its policy's memoryLimit caps them)",
            MetricType::Gauge,
            s,
            |d| d.memory_bytes,
        )?;
        gauge(
            &mut enc,
            "tandem_connections",
            "Client connections open",
            s.connections,
        )?;
        enc.encode_descriptor(
            "tandem_journal_fsync_seconds",
            "Latency of one journal write+fdatasync (one group commit)",
            None,
            MetricType::Histogram,
        )?
        .encode_histogram::<NoLabelSet>(
            s.fsync.sum_seconds,
            s.fsync.count,
            &s.fsync.bounds_seconds(),
            None,
        )?;
        count_histogram(
            &mut enc,
            "tandem_journal_records_per_fsync",
            "Journal records one write+fdatasync (one group commit) made durable",
            &s.per_fsync.records,
        )?;
        count_histogram(
            &mut enc,
            "tandem_journal_bytes_per_fsync",
            "New framed journal bytes one write+fdatasync (one group commit) made durable",
            &s.per_fsync.bytes,
        )?;
        counter(
            &mut enc,
            "tandem_journal_fsyncs",
            "Journal write+fdatasync cycles",
            s.journal.fsyncs,
        )?;
        counter(
            &mut enc,
            "tandem_journal_records",
            "Journal records appended",
            s.journal.records,
        )?;
        counter(
            &mut enc,
            "tandem_journal_appended_bytes",
            "Framed record bytes appended to the journal",
            s.journal.appended_bytes,
        )?;
        counter(
            &mut enc,
            "tandem_journal_written_bytes",
            "Bytes written to journal files, including rewritten tail blocks and padding",
            s.journal.written_bytes,
        )?;
        gauge(
            &mut enc,
            "tandem_journal_disk_full",
            "1 while journal writes are paused for lack of disk space (persistent sends refused)",
            u64::from(s.journal.disk_full.is_some()),
        )?;
        gauge(
            &mut enc,
            "tandem_journal_diverged_sets",
            "Directories of diverged records set aside after a split brain (shard-N/diverged-*), \
             never deleted by Tandem: resend with tandem journal replay-diverged",
            s.journal.diverged.sets,
        )?;
        counter(
            &mut enc,
            "tandem_journal_diverged_records",
            "Journal records this node held that its new master did not, set aside since start",
            s.journal.diverged.records,
        )?;
        counter(
            &mut enc,
            "tandem_journal_diverged_messages",
            "Messages still stored among the diverged records set aside since start",
            s.journal.diverged.messages,
        )?;
        gauge(
            &mut enc,
            "tandem_memory_used_bytes",
            "Message bodies held in memory",
            s.memory.used_bytes,
        )?;
        gauge(
            &mut enc,
            "tandem_memory_limit_bytes",
            "Configured memory limit for message bodies",
            s.memory.limit_bytes,
        )?;
        {
            let mut fam = enc.encode_descriptor(
                "tandem_memory_bytes",
                "Memory by use (uses may overlap: a delivery shares its stored body)",
                None,
                MetricType::Gauge,
            )?;
            let m = &s.memory.by_use;
            for (use_, v) in [
                ("message_bodies", m.message_bodies),
                ("transactions", m.transactions),
                ("pending_output", m.pending_output),
                ("replication", m.replication),
            ] {
                let labels: Labels = [("use", use_)];
                fam.encode_family(&labels)?.encode_gauge(&v)?;
            }
        }
        gauge(
            &mut enc,
            "tandem_messages_held",
            "Messages the destinations hold, bodies in memory or not",
            s.memory.messages,
        )?;
        gauge(
            &mut enc,
            "tandem_process_resident_bytes",
            "Resident set of the broker process",
            s.memory.rss_bytes,
        )?;
        gauge(
            &mut enc,
            "tandem_transaction_bytes",
            "Message bytes sent inside transactions not yet committed or rolled back",
            s.limits.transaction_bytes,
        )?;
        gauge(
            &mut enc,
            "tandem_pending_output_bytes",
            "Message bytes dispatched to connections and not yet written to their sockets",
            s.limits.pending_output_bytes,
        )?;
        gauge(
            &mut enc,
            "tandem_store_bytes",
            "Journal bytes on disk, all shards (what <storeUsage limit> caps)",
            s.limits.store_bytes,
        )?;
        gauge(
            &mut enc,
            "tandem_destinations",
            "Queues and topics (temporary ones included) the broker holds",
            s.limits.destinations,
        )?;
        gauge(
            &mut enc,
            "tandem_virtual_topic_queues",
            "Virtual-topic consumer queues the broker holds (a send to their topic reaches them)",
            s.limits.virtual_topic_queues,
        )?;
        gauge(
            &mut enc,
            "tandem_wildcard_subscriptions",
            "Wildcard subscriptions, counted once per shard (each is registered on every shard)",
            s.wildcard_subscriptions,
        )?;
        gauge(
            &mut enc,
            "tandem_scheduled_messages",
            "Scheduled messages waiting to fire, all shards (what maxScheduledMessages caps)",
            s.limits.scheduled_messages,
        )?;
        {
            let mut family = enc.encode_descriptor(
                "tandem_limit_refusals",
                "Client requests refused by a per-connection or per-broker limit",
                None,
                MetricType::Counter,
            )?;
            for r in &s.limits.refusals {
                let labels: Labels = [("limit", r.limit)];
                family
                    .encode_family(&labels)?
                    .encode_counter::<NoLabelSet, u64, u64>(&r.count, None)?;
            }
        }
        {
            let mut family = enc.encode_descriptor(
                "tandem_tls_handshakes",
                "TLS handshakes on the client connectors, by result (failed: a plain-text \
                 client, a certificate refused, no handshake within the login deadline)",
                None,
                MetricType::Counter,
            )?;
            for (result, count) in [
                ("ok", s.tls.handshakes),
                ("failed", s.tls.handshake_failures),
            ] {
                let labels: Labels = [("result", result)];
                family
                    .encode_family(&labels)?
                    .encode_counter::<NoLabelSet, u64, u64>(&count, None)?;
            }
        }
        gauge(
            &mut enc,
            "tandem_uptime_seconds",
            "Seconds since start",
            s.uptime_s,
        )?;
        gauge(
            &mut enc,
            "tandem_shards",
            "Shards (executors)",
            s.shards as u64,
        )?;
        replication(&mut enc, s)
    }
}

fn replication(enc: &mut DescriptorEncoder, s: &Snapshot) -> Result<(), std::fmt::Error> {
    let r = &s.replication;
    one_hot(
        enc,
        "tandem_replication_role",
        "This node's replication role (1 for the current one)",
        "role",
        Role::ALL.map(|x| (x.as_str(), x == r.role)),
    )?;
    gauge(
        enc,
        "tandem_replication_epoch",
        "Replication epoch (incremented by each takeover)",
        r.epoch,
    )?;
    one_hot(
        enc,
        "tandem_replication_peer_state",
        "State of the link to the other node (1 for the current one)",
        "state",
        PeerState::ALL.map(|x| (x.as_str(), x == r.peer)),
    )?;
    gauge(
        enc,
        "tandem_replication_lag_records",
        "Records shipped to the slave and not yet acknowledged",
        r.lag.records,
    )?;
    gauge(
        enc,
        "tandem_replication_lag_bytes",
        "Bytes shipped to the slave and not yet acknowledged",
        r.lag.bytes,
    )?;
    enc.encode_descriptor(
        "tandem_replication_lag_seconds",
        "Age of the oldest record shipped to the slave and not yet acknowledged",
        None,
        MetricType::Gauge,
    )?
    .encode_gauge(&(r.lag.ms as f64 / 1e3))?;
    counter(
        enc,
        "tandem_replication_shipped_records",
        "Records shipped to the slave",
        r.shipped.records,
    )?;
    counter(
        enc,
        "tandem_replication_shipped_bytes",
        "Bytes shipped to the slave",
        r.shipped.bytes,
    )?;
    {
        let mut fam = enc.encode_descriptor(
            "tandem_replication_buffered_bytes",
            "Master memory held for the slave, by use",
            None,
            MetricType::Gauge,
        )?;
        for (use_, v) in [
            ("channel", r.buffered.channel),
            ("queued", r.buffered.queued),
            ("socket", r.buffered.socket),
        ] {
            let labels: Labels = [("use", use_)];
            fam.encode_family(&labels)?.encode_gauge(&v)?;
        }
    }
    gauge(
        enc,
        "tandem_replication_buffer_limit_bytes",
        "Bound on each use of the memory held for the slave (replicationBuffer)",
        r.buffered.limit,
    )?;
    counter(
        enc,
        "tandem_replication_catch_up_switches",
        "Times a shard's live stream to the slave switched to catch-up from the journal",
        r.overflow.switches,
    )?;
    counter(
        enc,
        "tandem_replication_deferred_batches",
        "Live batches not held in memory for the slave (it reads them from the journal)",
        r.overflow.deferred_batches,
    )?;
    counter(
        enc,
        "tandem_replication_deferred_bytes",
        "Bytes of live batches not held in memory for the slave",
        r.overflow.deferred_bytes,
    )?;
    counter(
        enc,
        "tandem_replication_volatile_dropped",
        "Non-persistent frames not sent to the slave (replication buffer full)",
        r.overflow.volatile_dropped,
    )?;
    counter(
        enc,
        "tandem_replication_volatile_dropped_bytes",
        "Bytes of non-persistent frames not sent to the slave",
        r.overflow.volatile_dropped_bytes,
    )?;
    counter(
        enc,
        "tandem_replication_takeovers",
        "Takeovers done by this node (slave becoming master)",
        r.takeovers,
    )?;
    gauge(
        enc,
        "tandem_replication_confirm_alone",
        "1 while this master may confirm without a slave acknowledgement",
        u64::from(r.safety.confirm_alone),
    )?;
    gauge(
        enc,
        "tandem_replication_witness_lease_held",
        "1 while this node holds the witness's lease",
        u64::from(r.safety.lease_held),
    )?;
    counter(
        enc,
        "tandem_replication_probes",
        "Times this node asked its peer who serves",
        r.safety.probes,
    )?;
    counter(
        enc,
        "tandem_replication_step_downs",
        "Times this node stepped down because a newer epoch served elsewhere",
        r.safety.step_downs,
    )?;
    enc.encode_descriptor(
        "tandem_replication_rtt_seconds",
        "Replication round trip, from shipping a batch to the slave's acknowledgement",
        None,
        MetricType::Histogram,
    )?
    .encode_histogram::<NoLabelSet>(
        r.rtt.sum_seconds,
        r.rtt.count,
        &r.rtt.bounds_seconds(),
        None,
    )?;
    count_histogram(
        enc,
        "tandem_replication_records_per_frame",
        "Journal records in one batch frame shipped to the slave",
        &r.per_frame.records,
    )?;
    count_histogram(
        enc,
        "tandem_replication_bytes_per_frame",
        "Journal bytes in one batch frame shipped to the slave",
        &r.per_frame.bytes,
    )
}

/// A histogram of counts (records, bytes) per batch.
fn count_histogram(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    h: &CountSnapshot,
) -> Result<(), std::fmt::Error> {
    enc.encode_descriptor(name, help, None, MetricType::Histogram)?
        .encode_histogram::<NoLabelSet>(h.sum as f64, h.count, &h.bounds(), None)
}

/// A gauge family with one series per possible value of `label`: 1 for the current
/// value, 0 for the others (so a change shows as a step on both series).
fn one_hot<const N: usize>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &'static str,
    values: [(&'static str, bool); N],
) -> Result<(), std::fmt::Error> {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (value, current) in values {
        let labels: Labels = [(label, value)];
        m.encode_family(&labels)?
            .encode_gauge(&u64::from(current))?;
    }
    Ok(())
}

fn per_destination(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    s: &Snapshot,
    value: impl Fn(&super::DestinationStats) -> u64,
) -> Result<(), std::fmt::Error> {
    let mut m = enc.encode_descriptor(name, help, None, kind)?;
    for d in &s.destinations {
        let labels: Labels = [("destination", d.name.as_str())];
        let mut f = m.encode_family(&labels)?;
        match kind {
            MetricType::Counter => f.encode_counter::<NoLabelSet, u64, u64>(&value(d), None)?,
            _ => f.encode_gauge(&value(d))?,
        }
    }
    Ok(())
}

fn gauge(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    v: u64,
) -> Result<(), std::fmt::Error> {
    enc.encode_descriptor(name, help, None, MetricType::Gauge)?
        .encode_gauge(&v)
}

fn counter(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    v: u64,
) -> Result<(), std::fmt::Error> {
    enc.encode_descriptor(name, help, None, MetricType::Counter)?
        .encode_counter::<NoLabelSet, u64, u64>(&v, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::stats::{
        BatchSizes, HistogramSnapshot, JournalCounters, COUNT_BUCKETS, FSYNC_BUCKETS_US,
    };
    use crate::metrics::{DestinationStats, Memory, MemoryByUse, ReplicationStats};
    use std::time::Duration;

    fn synthetic() -> Snapshot {
        let mut buckets = vec![0; FSYNC_BUCKETS_US.len() + 1];
        buckets[2] = 5; // 5 syncs of 100..200 µs
        buckets[12] = 1; // one beyond 102.4 ms
        Snapshot {
            broker: "b".into(),
            role: "standalone".into(),
            uptime_s: 7,
            shards: 2,
            connections: 3,
            wildcard_subscriptions: 4,
            tls: crate::metrics::stats::TlsCounters {
                handshakes: 8,
                handshake_failures: 2,
            },
            limits: Default::default(),
            destinations: vec![DestinationStats {
                name: "/queue/a".into(),
                depth: 6,
                enqueued: 10,
                dequeued: 4,
                consumers: 1,
                memory_bytes: 1180,
                memory_limit: Some(4096),
            }],
            journal: JournalCounters {
                records: 14,
                appended_bytes: 1400,
                written_bytes: 40960,
                fsyncs: 6,
                disk_full: Some("no space".into()),
                diverged: crate::metrics::DivergedCounters {
                    sets: 1,
                    records: 9,
                    messages: 4,
                },
            },
            memory: Memory {
                used_bytes: 123,
                limit_bytes: 456,
                messages: 6,
                rss_bytes: 789,
                by_use: MemoryByUse {
                    message_bodies: 123,
                    transactions: 7,
                    ..MemoryByUse::default()
                },
            },
            replication: ReplicationStats::new().snapshot(),
            fsync: HistogramSnapshot {
                buckets,
                sum_seconds: 0.2,
                count: 6,
            },
            per_fsync: {
                // 6 fsyncs, 14 records: 1, 1, 1, 2, 4, 5.
                let h = BatchSizes::default();
                for (records, bytes) in [(1, 100), (1, 100), (1, 100), (2, 200), (4, 400), (5, 500)]
                {
                    h.observe(records, bytes);
                }
                h.snapshot()
            },
        }
    }

    #[test]
    fn text_has_every_family() {
        let text = encode(synthetic()).unwrap();
        for line in [
            "# TYPE tandem_destination_depth gauge",
            "tandem_destination_depth{destination=\"/queue/a\"} 6",
            "# TYPE tandem_destination_enqueued_total counter",
            "tandem_destination_enqueued_total{destination=\"/queue/a\"} 10",
            "tandem_destination_dequeued_total{destination=\"/queue/a\"} 4",
            "tandem_destination_consumers{destination=\"/queue/a\"} 1",
            "tandem_destination_memory_bytes{destination=\"/queue/a\"} 1180",
            "tandem_connections 3",
            "# TYPE tandem_tls_handshakes_total counter",
            "tandem_tls_handshakes_total{result=\"ok\"} 8",
            "tandem_tls_handshakes_total{result=\"failed\"} 2",
            "# TYPE tandem_journal_fsync_seconds histogram",
            "tandem_journal_fsync_seconds_bucket{le=\"5e-05\"} 0",
            "tandem_journal_fsync_seconds_bucket{le=\"0.0002\"} 5",
            "tandem_journal_fsync_seconds_bucket{le=\"0.1024\"} 5",
            "tandem_journal_fsync_seconds_bucket{le=\"+Inf\"} 6",
            "tandem_journal_fsync_seconds_count 6",
            "tandem_journal_fsyncs_total 6",
            "# TYPE tandem_journal_records_per_fsync histogram",
            "tandem_journal_records_per_fsync_bucket{le=\"1\"} 3",
            "tandem_journal_records_per_fsync_bucket{le=\"2\"} 4",
            "tandem_journal_records_per_fsync_bucket{le=\"4\"} 5",
            "tandem_journal_records_per_fsync_bucket{le=\"8\"} 6",
            "tandem_journal_records_per_fsync_bucket{le=\"256\"} 6",
            "tandem_journal_records_per_fsync_bucket{le=\"+Inf\"} 6",
            "tandem_journal_records_per_fsync_sum 14.0",
            "tandem_journal_records_per_fsync_count 6",
            "# TYPE tandem_journal_bytes_per_fsync histogram",
            "tandem_journal_bytes_per_fsync_bucket{le=\"256\"} 4",
            "tandem_journal_bytes_per_fsync_bucket{le=\"1024\"} 6",
            "tandem_journal_bytes_per_fsync_sum 1400.0",
            "tandem_journal_bytes_per_fsync_count 6",
            "tandem_journal_records_total 14",
            "tandem_journal_appended_bytes_total 1400",
            "tandem_journal_written_bytes_total 40960",
            "tandem_journal_disk_full 1",
            "# TYPE tandem_journal_diverged_sets gauge",
            "tandem_journal_diverged_sets 1",
            "# TYPE tandem_journal_diverged_records_total counter",
            "tandem_journal_diverged_records_total 9",
            "tandem_journal_diverged_messages_total 4",
            "tandem_memory_used_bytes 123",
            "tandem_wildcard_subscriptions 4",
            "tandem_memory_limit_bytes 456",
            "tandem_memory_bytes{use=\"message_bodies\"} 123",
            "tandem_memory_bytes{use=\"transactions\"} 7",
            "tandem_memory_bytes{use=\"replication\"} 0",
            "tandem_messages_held 6",
            "tandem_process_resident_bytes 789",
            "tandem_replication_role{role=\"standalone\"} 1",
            "tandem_replication_role{role=\"master\"} 0",
            "tandem_replication_epoch 0",
            "tandem_replication_peer_state{state=\"none\"} 1",
            "tandem_replication_peer_state{state=\"in-sync\"} 0",
            "tandem_replication_lag_records 0",
            "tandem_replication_shipped_records_total 0",
            "tandem_replication_takeovers_total 0",
            "tandem_replication_buffered_bytes{use=\"socket\"} 0",
            "tandem_replication_catch_up_switches_total 0",
            "tandem_replication_volatile_dropped_total 0",
            "tandem_replication_rtt_seconds_count 0",
            "# TYPE tandem_replication_records_per_frame histogram",
            "tandem_replication_records_per_frame_count 0",
            "tandem_replication_records_per_frame_bucket{le=\"+Inf\"} 0",
            "# TYPE tandem_replication_bytes_per_frame histogram",
            "tandem_replication_bytes_per_frame_count 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in:\n{text}"
            );
        }
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("tandem_journal_fsync_seconds_bucket"))
                .count(),
            FSYNC_BUCKETS_US.len() + 1
        );
        for family in [
            "tandem_journal_records_per_fsync_bucket",
            "tandem_journal_bytes_per_fsync_bucket",
            "tandem_replication_records_per_frame_bucket",
            "tandem_replication_bytes_per_frame_bucket",
        ] {
            assert_eq!(
                text.lines().filter(|l| l.starts_with(family)).count(),
                COUNT_BUCKETS + 1,
                "{family} in:\n{text}"
            );
        }
    }

    #[test]
    fn replication_families_follow_the_stats() {
        let r = ReplicationStats::new();
        r.set_role(Role::Slave);
        r.set_epoch(4);
        r.set_peer(PeerState::Degraded);
        r.set_peer_address(Some("10.0.0.1:61617".into()));
        r.set_lag(12, 3400, 1500);
        r.add_shipped(100, 12_345);
        r.add_shipped(1, 5);
        r.add_takeover();
        r.set_last_takeover_ms(80);
        r.observe_rtt(Duration::from_micros(150));
        r.observe_rtt(Duration::from_micros(180));
        r.observe_rtt(Duration::from_millis(300));
        r.observe_frame(1, 100);
        r.observe_frame(3, 300);
        r.observe_frame(300, 30_000);
        let mut s = synthetic();
        s.role = "slave".into();
        s.replication = r.snapshot();
        let text = encode(s).unwrap();
        for line in [
            "# HELP tandem_replication_role This node's replication role (1 for the current one)",
            "# TYPE tandem_replication_role gauge",
            "tandem_replication_role{role=\"standalone\"} 0",
            "tandem_replication_role{role=\"master\"} 0",
            "tandem_replication_role{role=\"slave\"} 1",
            "# TYPE tandem_replication_epoch gauge",
            "tandem_replication_epoch 4",
            "# TYPE tandem_replication_peer_state gauge",
            "tandem_replication_peer_state{state=\"none\"} 0",
            "tandem_replication_peer_state{state=\"connecting\"} 0",
            "tandem_replication_peer_state{state=\"syncing\"} 0",
            "tandem_replication_peer_state{state=\"in-sync\"} 0",
            "tandem_replication_peer_state{state=\"degraded\"} 1",
            "tandem_replication_lag_records 12",
            "tandem_replication_lag_bytes 3400",
            "# TYPE tandem_replication_lag_seconds gauge",
            "tandem_replication_lag_seconds 1.5",
            "# TYPE tandem_replication_shipped_records_total counter",
            "tandem_replication_shipped_records_total 101",
            "tandem_replication_shipped_bytes_total 12350",
            "# TYPE tandem_replication_takeovers_total counter",
            "tandem_replication_takeovers_total 1",
            "# TYPE tandem_replication_rtt_seconds histogram",
            "tandem_replication_rtt_seconds_bucket{le=\"0.0001\"} 0",
            "tandem_replication_rtt_seconds_bucket{le=\"0.0002\"} 2",
            "tandem_replication_rtt_seconds_bucket{le=\"0.1024\"} 2",
            "tandem_replication_rtt_seconds_bucket{le=\"+Inf\"} 3",
            "tandem_replication_rtt_seconds_count 3",
            "# TYPE tandem_replication_records_per_frame histogram",
            "tandem_replication_records_per_frame_bucket{le=\"1\"} 1",
            "tandem_replication_records_per_frame_bucket{le=\"2\"} 1",
            "tandem_replication_records_per_frame_bucket{le=\"4\"} 2",
            "tandem_replication_records_per_frame_bucket{le=\"256\"} 2",
            "tandem_replication_records_per_frame_bucket{le=\"+Inf\"} 3",
            "tandem_replication_records_per_frame_sum 304.0",
            "tandem_replication_records_per_frame_count 3",
            "# TYPE tandem_replication_bytes_per_frame histogram",
            "tandem_replication_bytes_per_frame_bucket{le=\"256\"} 1",
            "tandem_replication_bytes_per_frame_bucket{le=\"1024\"} 2",
            "tandem_replication_bytes_per_frame_bucket{le=\"65536\"} 3",
            "tandem_replication_bytes_per_frame_sum 30400.0",
            "tandem_replication_bytes_per_frame_count 3",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in:\n{text}"
            );
        }
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("tandem_replication_rtt_seconds_bucket"))
                .count(),
            FSYNC_BUCKETS_US.len() + 1
        );
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("tandem_replication_role{"))
                .count(),
            Role::ALL.len()
        );
        assert!(
            !text.contains("10.0.0.1"),
            "the peer address is JSON only: {text}"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        let mut s = synthetic();
        s.destinations[0].name = "/queue/we\"ird\\".into();
        let text = encode(s).unwrap();
        assert!(text.contains(r#"destination="/queue/we\"ird\\""#), "{text}");
    }
}
