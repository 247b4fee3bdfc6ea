//! Per-destination numbers for the status endpoint: how many messages each queue or
//! topic accepted and let go since start, and what it holds now. Counting is two
//! integer additions on paths that already touch the destination; reading
//! ([`ShardCore::destination_stats`]) walks every destination and is meant for the
//! shard's ticker, not the message path.
//!
//! What counts: `enqueued` once per new message (not for a relocated copy, not for
//! records replayed at start-up: counters start at zero with the process, as
//! ActiveMQ's do); `dequeued` once per entry that leaves a backlog for good
//! (acknowledged, expired, dead-lettered, dropped, purged), so for a topic once per
//! subscription that consumed the message. Entries that vanish with their
//! subscription (a durable unsubscribed, a subscriber gone) are not dequeues.

use super::ShardCore;
use crate::broker::destination::Destination;
use crate::metrics::DestinationStats;

/// Counters kept with each queue and topic (and dropped with it).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct DestCounters {
    pub(super) enqueued: u64,
    pub(super) dequeued: u64,
}

impl ShardCore {
    pub(super) fn count_enqueued(&mut self, d: &Destination) {
        if let Some(c) = self.counters_mut(d) {
            c.enqueued += 1;
        }
    }

    pub(super) fn count_dequeued(&mut self, d: &Destination, n: usize) {
        if let Some(c) = self.counters_mut(d) {
            c.dequeued += n as u64;
        }
    }

    fn counters_mut(&mut self, d: &Destination) -> Option<&mut DestCounters> {
        if d.kind.is_queue() {
            self.queues.get_mut(d).map(|q| &mut q.counters)
        } else {
            self.topics.get_mut(d).map(|t| &mut t.counters)
        }
    }

    /// Recovery replayed enqueues and acks that happened before this process.
    pub(super) fn reset_counters(&mut self) {
        for q in self.queues.values_mut() {
            q.counters = DestCounters::default();
        }
        for t in self.topics.values_mut() {
            t.counters = DestCounters::default();
        }
    }

    /// Every destination on this shard with its depth, counters and consumers.
    pub fn destination_stats(&self) -> Vec<DestinationStats> {
        let mut out = Vec::with_capacity(self.queues.len() + self.topics.len());
        for (d, q) in &self.queues {
            out.push(DestinationStats {
                name: d.stomp_name(),
                depth: q.backlog.entries.len() as u64,
                enqueued: q.counters.enqueued,
                dequeued: q.counters.dequeued,
                consumers: q.backlog.consumers.len() as u64,
                memory_bytes: q.mem.used as u64,
                memory_limit: q.mem.limit.map(|l| l as u64),
            });
        }
        for (d, t) in &self.topics {
            let active_durables = t.durables.values().filter(|s| s.active.is_some()).count();
            out.push(DestinationStats {
                name: d.stomp_name(),
                depth: self.depth(d) as u64,
                enqueued: t.counters.enqueued,
                dequeued: t.counters.dequeued,
                consumers: (t.subscribers.len() + active_durables) as u64,
                memory_bytes: t.mem.used as u64,
                memory_limit: t.mem.limit.map(|l| l as u64),
            });
        }
        out
    }
}
