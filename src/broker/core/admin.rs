//! Administrative operations on queues (what ActiveMQ's web console and JMX offer):
//! purge every message of a queue, or delete the queue. Each is one journal record
//! (`Purge`, `DeleteQueue`) applied with [`ShardCore::apply`], so recovery and a
//! slave do the same.
//!
//! Deleting a queue that has consumers is refused: ActiveMQ's `removeQueue` closes
//! the consumers instead, but Tandem's consumers belong to sessions on other shards
//! that would keep a subscription to a queue that no longer exists. Deleting a queue
//! whose messages a prepared (two-phase, not yet resolved) transaction sends or
//! acknowledges is refused too: the transaction's records name the queue's sequence
//! numbers, which a recreated queue would hand out again.

use super::{BacklogId, JournalSink, ShardCore};
use crate::broker::backlog::Entry;
use crate::broker::destination::{DestKind, Destination};
use crate::broker::ops::BrokerError;
use crate::broker::record::Record;
use crate::store::Position;

impl ShardCore {
    /// Removes every message of queue `d` (ready, delivered and not yet acknowledged,
    /// non-persistent ones too). Returns how many it removed and the journal ticket
    /// that must be durable (and replicated) before the caller reports success.
    pub fn purge_queue(
        &mut self,
        d: &Destination,
        sink: &mut dyn JournalSink,
    ) -> Result<(u64, Option<Position>), BrokerError> {
        let removed = self.admin_queue(d)?;
        let rec = Record::Purge {
            destination: d.clone(),
        };
        let loc = self.journal(sink, &rec)?;
        self.apply(rec, Some(loc));
        Ok((removed, Some(sink.end())))
    }

    /// Purges queue `d` and removes it: it is no longer listed, and a later send or
    /// subscribe creates it afresh. Refused while it has consumers or prepared
    /// transactions hold its messages ([`BrokerError::QueueInUse`]). Returns the
    /// messages removed and the ticket, as [`ShardCore::purge_queue`].
    pub fn delete_queue(
        &mut self,
        d: &Destination,
        sink: &mut dyn JournalSink,
    ) -> Result<(u64, Option<Position>), BrokerError> {
        let removed = self.admin_queue(d)?;
        let consumers = self.queues.get(d).map_or(0, |q| q.backlog.consumers.len());
        if consumers > 0 {
            return Err(BrokerError::QueueInUse(format!(
                "queue {} has {consumers} consumer{}; close {} first",
                d.stomp_name(),
                if consumers == 1 { "" } else { "s" },
                if consumers == 1 { "it" } else { "them" },
            )));
        }
        let prepared = self
            .prepared
            .values()
            .filter(|p| p.records.iter().any(|r| names_queue(r, d)))
            .count();
        if prepared > 0 {
            return Err(BrokerError::QueueInUse(format!(
                "queue {} has messages in {prepared} prepared transaction{}",
                d.stomp_name(),
                if prepared == 1 { "" } else { "s" },
            )));
        }
        let rec = Record::DeleteQueue {
            destination: d.clone(),
        };
        let loc = self.journal(sink, &rec)?;
        self.apply(rec, Some(loc));
        Ok((removed, Some(sink.end())))
    }

    /// Checks that `d` is an existing, non-temporary queue; returns its depth.
    fn admin_queue(&self, d: &Destination) -> Result<u64, BrokerError> {
        if d.kind != DestKind::Queue {
            return Err(BrokerError::NotAQueue(d.stomp_name()));
        }
        self.queues
            .get(d)
            .map(|q| q.backlog.entries.len() as u64)
            .ok_or_else(|| BrokerError::NoSuchDestination(d.stomp_name()))
    }

    /// Applies `Purge`: every entry of queue `d` leaves it (counted as dequeued).
    pub(super) fn apply_purge(&mut self, d: &Destination) {
        let entries: Vec<Entry> = match self.queues.get_mut(d) {
            Some(q) => {
                let seqs: Vec<u64> = q.backlog.entries.keys().copied().collect();
                seqs.into_iter()
                    .filter_map(|s| q.backlog.remove(s))
                    .collect()
            }
            None => Vec::new(),
        };
        for e in &entries {
            self.forget_entry(d, e);
        }
        self.count_dequeued(d, entries.len());
        self.release_blocked();
    }

    /// Applies `DeleteQueue`: purge, then forget the queue and any work in flight for
    /// it (dead-letter moves, page-ins), which would otherwise touch the sequence
    /// numbers of a queue recreated later.
    pub(super) fn apply_delete_queue(&mut self, d: &Destination) {
        self.apply_purge(d);
        if let Some(q) = self.remove_queue(d) {
            // None on a live master (refused above); kept safe for any other path.
            for c in &q.backlog.consumers {
                self.attached.remove(&c.key);
            }
        }
        let id = BacklogId::Queue(d.clone());
        self.moving.retain(|_, (b, _)| *b != id);
        self.paging.retain(|_, (b, _)| *b != id);
        self.dirty.retain(|b| *b != id);
    }
}

/// Whether a record inside a prepared transaction sends to or acknowledges on queue
/// `d`.
fn names_queue(r: &Record, d: &Destination) -> bool {
    match r {
        Record::Enqueue { message, .. } => message.destination == *d,
        Record::Ack {
            destination,
            durable: None,
            ..
        } => destination == d,
        _ => false,
    }
}
