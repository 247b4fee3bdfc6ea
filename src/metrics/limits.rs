//! [`LimitStats`]: broker-wide numbers of the per-connection and per-broker limits
//! (issue 11): bytes held by open transactions, bytes of deliveries handed to
//! connections but not yet written to their sockets, and how often each limit refused
//! a client. Written by protocol sessions and shards on any executor (atomics, no lock),
//! read by [`Snapshot::collect`](super::Snapshot::collect).

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Which limit refused a client (the `limit` label of
/// `tandem_limit_refusals_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    TransactionSize,
    TransactionMemory,
    Transactions,
    Subscriptions,
    Producers,
    TempDestinations,
    CompositeMembers,
    Destinations,
    StoreUsage,
    ScheduledMessages,
}

impl Limit {
    pub const ALL: [Limit; 10] = [
        Limit::TransactionSize,
        Limit::TransactionMemory,
        Limit::Transactions,
        Limit::Subscriptions,
        Limit::Producers,
        Limit::TempDestinations,
        Limit::CompositeMembers,
        Limit::Destinations,
        Limit::StoreUsage,
        Limit::ScheduledMessages,
    ];

    /// The configuration attribute that sets it: what the metric label says.
    pub fn name(self) -> &'static str {
        match self {
            Limit::TransactionSize => "maxTransactionSize",
            Limit::TransactionMemory => "memoryUsage",
            Limit::Transactions => "maxTransactionsPerConnection",
            Limit::Subscriptions => "maxSubscriptionsPerConnection",
            Limit::Producers => "maxProducersPerConnection",
            Limit::TempDestinations => "maxTemporaryDestinationsPerConnection",
            Limit::CompositeMembers => "maxCompositeDestinations",
            Limit::Destinations => "maxDestinations",
            Limit::StoreUsage => "storeUsage",
            Limit::ScheduledMessages => "maxScheduledMessages",
        }
    }
}

#[derive(Debug, Default)]
pub struct LimitStats {
    transaction_bytes: AtomicU64,
    pending_output_bytes: AtomicU64,
    /// Queues and topics the shards hold (each shard adds and removes its own).
    destinations: AtomicU64,
    /// Virtual-topic consumer queues in the broker-wide index (a subset of
    /// `destinations`), as the index last counted them.
    virtual_topic_queues: AtomicU64,
    /// Shards whose journal is paused by a full disk, and why (the first one's
    /// reason): every shard refuses persistent sends while any is, as they normally
    /// share one file system.
    disk_full_shards: AtomicU64,
    /// Journal bytes on disk, all shards (each shard adds what it changed by).
    store_bytes: AtomicU64,
    disk_full_reason: std::sync::Mutex<String>,
    /// Scheduled jobs the shards hold (each shard adds and removes its own).
    scheduled: AtomicU64,
    refusals: [AtomicU64; 10],
}

impl LimitStats {
    /// Reserves `bytes` of uncommitted transaction data if the broker-wide total stays
    /// within `limit`; false (nothing reserved) otherwise.
    pub fn try_add_transaction_bytes(&self, bytes: u64, limit: u64) -> bool {
        self.transaction_bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(bytes).filter(|total| *total <= limit)
            })
            .is_ok()
    }

    pub fn sub_transaction_bytes(&self, bytes: u64) {
        // Saturating: a release never exceeds what was reserved, but a miscount must
        // not wrap into a huge number that refuses every transaction.
        let _ = self
            .transaction_bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                Some(held.saturating_sub(bytes))
            });
    }

    pub fn transaction_bytes(&self) -> u64 {
        self.transaction_bytes.load(Ordering::Acquire)
    }

    pub fn add_pending_output(&self, bytes: u64) {
        self.pending_output_bytes.fetch_add(bytes, Ordering::AcqRel);
    }

    pub fn sub_pending_output(&self, bytes: u64) {
        let _ =
            self.pending_output_bytes
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                    Some(held.saturating_sub(bytes))
                });
    }

    pub fn pending_output_bytes(&self) -> u64 {
        self.pending_output_bytes.load(Ordering::Acquire)
    }

    /// Counts one more destination if the broker-wide total stays within `limit`;
    /// false (nothing counted) otherwise.
    pub fn try_add_destination(&self, limit: u64) -> bool {
        self.destinations
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                Some(held + 1).filter(|total| *total <= limit)
            })
            .is_ok()
    }

    /// Counts `n` destinations whatever the limit: what recovery and the master's
    /// stream create must exist, the limit only refuses clients.
    pub fn add_destinations(&self, n: u64) {
        self.destinations.fetch_add(n, Ordering::AcqRel);
    }

    pub fn sub_destinations(&self, n: u64) {
        let _ = self
            .destinations
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                Some(held.saturating_sub(n))
            });
    }

    pub fn destinations(&self) -> u64 {
        self.destinations.load(Ordering::Acquire)
    }

    pub fn add_scheduled(&self, n: u64) {
        self.scheduled.fetch_add(n, Ordering::AcqRel);
    }

    pub fn sub_scheduled(&self, n: u64) {
        let _ = self
            .scheduled
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                Some(held.saturating_sub(n))
            });
    }

    /// Scheduled jobs broker-wide: what `maxScheduledMessages` caps.
    pub fn scheduled(&self) -> u64 {
        self.scheduled.load(Ordering::Acquire)
    }

    /// The virtual-topic index holds `n` consumer queues now.
    pub fn set_virtual_topic_queues(&self, n: u64) {
        self.virtual_topic_queues.store(n, Ordering::Release);
    }

    pub fn virtual_topic_queues(&self) -> u64 {
        self.virtual_topic_queues.load(Ordering::Acquire)
    }

    /// A shard's journal was paused (`true`) or resumed (`false`) by a full disk.
    pub fn set_disk_full(&self, paused: bool, reason: &str) {
        if paused {
            if self.disk_full_shards.fetch_add(1, Ordering::AcqRel) == 0 {
                *self
                    .disk_full_reason
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = reason.to_string();
            }
        } else {
            let _ = self
                .disk_full_shards
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    Some(n.saturating_sub(1))
                });
        }
    }

    /// A shard's journal grew (`delta` > 0) or shrank on disk.
    pub fn add_store_bytes(&self, delta: i64) {
        let _ = self
            .store_bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                Some(held.saturating_add_signed(delta))
            });
    }

    pub fn store_bytes(&self) -> u64 {
        self.store_bytes.load(Ordering::Acquire)
    }

    /// Why persistent sends are refused broker-wide, while a shard's disk is full.
    pub fn disk_full(&self) -> Option<String> {
        if self.disk_full_shards.load(Ordering::Acquire) == 0 {
            return None;
        }
        Some(
            self.disk_full_reason
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }

    /// Counts a refusal by `limit`; returns how many it has refused in all.
    pub fn refused(&self, limit: Limit) -> u64 {
        self.refusals[limit as usize].fetch_add(1, Ordering::Relaxed) + 1
    }

    pub fn snapshot(&self) -> LimitsSnapshot {
        LimitsSnapshot {
            transaction_bytes: self.transaction_bytes(),
            pending_output_bytes: self.pending_output_bytes(),
            destinations: self.destinations(),
            virtual_topic_queues: self.virtual_topic_queues(),
            scheduled_messages: self.scheduled(),
            store_bytes: self.store_bytes(),
            refusals: Limit::ALL
                .iter()
                .map(|l| Refusals {
                    limit: l.name(),
                    count: self.refusals[*l as usize].load(Ordering::Relaxed),
                })
                .collect(),
        }
    }
}

/// `/status` `limits`: `{"transaction_bytes": 0, "pending_output_bytes": 0,
/// "destinations": 3, "refusals": [{"limit": "maxTransactionSize", "count": 0}, ...]}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LimitsSnapshot {
    /// Message bytes sent inside transactions not yet committed or rolled back.
    pub transaction_bytes: u64,
    /// Message bytes dispatched to connections and not yet written to their sockets.
    pub pending_output_bytes: u64,
    /// Queues and topics (temporary ones included) the broker holds: what
    /// `maxDestinations` caps.
    pub destinations: u64,
    /// Virtual-topic consumer queues (among `destinations`) a send to their topic
    /// reaches.
    pub virtual_topic_queues: u64,
    /// Scheduled messages (jobs) waiting to fire, all shards: what
    /// `maxScheduledMessages` caps.
    pub scheduled_messages: u64,
    /// Journal bytes on disk, all shards: what `<storeUsage limit>` caps.
    pub store_bytes: u64,
    pub refusals: Vec<Refusals>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Refusals {
    pub limit: &'static str,
    pub count: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_bytes_are_reserved_within_the_limit_only() {
        let s = LimitStats::default();
        assert!(s.try_add_transaction_bytes(60, 100));
        assert!(!s.try_add_transaction_bytes(41, 100));
        assert_eq!(s.transaction_bytes(), 60);
        assert!(s.try_add_transaction_bytes(40, 100));
        s.sub_transaction_bytes(100);
        assert_eq!(s.transaction_bytes(), 0);
        assert!(s.try_add_destination(1));
        assert!(
            !s.try_add_destination(1),
            "a second destination beyond a limit of 1"
        );
        s.add_destinations(2);
        s.sub_destinations(1);
        assert_eq!(s.destinations(), 2);
        s.refused(Limit::Producers);
        let snap = s.snapshot();
        assert_eq!(
            snap.refusals
                .iter()
                .find(|r| r.limit == "maxProducersPerConnection")
                .map(|r| r.count),
            Some(1)
        );
    }
}
