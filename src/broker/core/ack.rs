//! How a message leaves a backlog: acknowledged by its consumer (an `Ack` record,
//! unless nothing about it was journaled), refused (NACK) or expired, which starts a
//! move to the dead-letter queue on its shard; the entry is removed for good once that
//! shard has taken the copy, and non-persistent messages are dropped instead.

use super::{BacklogId, Body, JournalSink, Output, ShardCore};
use crate::broker::backlog::{Entry, EntryState};
use crate::broker::destination::Destination;
use crate::broker::ops::{Reply, SubKey};
use crate::broker::record::Record;

/// The dead-letter reason of an expired message (ActiveMQ's `dlqDeliveryFailureCause`
/// spelling); the strategy's `processExpired` applies to these.
pub(super) const EXPIRED: &str = "Expired";

impl ShardCore {
    /// The acknowledgement record for `seqs` delivered to `sub`, keeping only the
    /// deliveries that really are that consumer's; `None` if there are none.
    pub(super) fn ack_record(
        &mut self,
        sub: SubKey,
        destination: &Destination,
        seqs: &[u64],
    ) -> Option<(Record, bool)> {
        if self.is_browser(sub) {
            // Browsing removes nothing: the ack only returns the browser's credit.
            self.browser_acked(sub, seqs);
            return None;
        }
        let id = self.backlog_of(sub, destination)?;
        let b = self.backlog_mut(&id)?;
        let mut valid = Vec::with_capacity(seqs.len());
        let mut journaled = false;
        for s in seqs {
            if let Some(e) = b.entries.get(s) {
                if e.state == EntryState::Delivered(sub) && !e.tx_locked {
                    journaled |= e.loc.is_some();
                    valid.push(*s);
                }
            }
        }
        if valid.is_empty() {
            return None;
        }
        let rec = match id {
            BacklogId::Queue(d) => Record::Ack {
                destination: d,
                durable: None,
                seqs: valid,
            },
            BacklogId::Durable(d, n) => Record::Ack {
                destination: d,
                durable: Some(n),
                seqs: valid,
            },
            BacklogId::TopicSub(d, _) => {
                // Not journaled; removed directly from the subscriber's backlog.
                let removed: Vec<Entry> =
                    match self.backlog_mut(&BacklogId::TopicSub(d.clone(), sub)) {
                        Some(b) => valid
                            .iter()
                            .filter_map(|s| b.take_delivered(*s, sub))
                            .collect(),
                        None => Vec::new(),
                    };
                for e in &removed {
                    self.forget_entry(&d, e);
                }
                self.count_dequeued(&d, removed.len());
                self.mark_dirty(BacklogId::TopicSub(d, sub));
                self.release_blocked();
                return None;
            }
        };
        Some((rec, journaled))
    }

    pub(super) fn on_ack(
        &mut self,
        sub: SubKey,
        destination: Destination,
        seqs: Vec<u64>,
        reply: Option<Reply>,
        sink: &mut dyn JournalSink,
    ) {
        let mut durable_at = None;
        let mut result = Ok(());
        if let Some((rec, journaled)) = self.ack_record(sub, &destination, &seqs) {
            let loc = if journaled {
                match self.journal(sink, &rec) {
                    Ok(loc) => {
                        durable_at = Some(sink.end());
                        Some(loc)
                    }
                    Err(e) => {
                        result = Err(e);
                        None
                    }
                }
            } else {
                if let Record::Ack { destination, .. } = &rec {
                    if !destination.kind.is_temporary() {
                        // Only non-persistent messages: a slave holds them too.
                        sink.volatile(&rec.encode());
                    }
                }
                None
            };
            if result.is_ok() {
                self.apply(rec, loc);
            }
        }
        if let Some(r) = reply {
            self.reply(r, durable_at, result);
        }
    }

    /// NACK: every listed message still delivered to `sub` goes to the dead-letter
    /// queue.
    pub(super) fn on_nack(
        &mut self,
        sub: SubKey,
        destination: &Destination,
        seqs: Vec<u64>,
        reply: Option<Reply>,
    ) {
        if self.is_browser(sub) {
            // ActiveMQ's browser subscription ignores acks of every kind: a refused
            // browsed message stays where it is (no dead-letter move).
            self.browser_acked(sub, &seqs);
        }
        if let Some(id) = self.backlog_of(sub, destination) {
            for seq in seqs {
                let delivered = self
                    .backlog_mut(&id)
                    .and_then(|b| b.entries.get(&seq))
                    .is_some_and(|e| e.state == EntryState::Delivered(sub));
                if delivered {
                    self.start_dead_letter(id.clone(), seq, "Delivery[NACK]");
                }
            }
            self.mark_dirty(id);
        }
        if let Some(r) = reply {
            self.reply(r, None, Ok(()));
        }
    }

    /// Removes an entry (acknowledged, expired or dead-lettered), journaling the
    /// removal if the entry was journaled.
    pub(super) fn remove_for_good(&mut self, id: BacklogId, seq: u64, sink: &mut dyn JournalSink) {
        let persistent = self
            .backlog_mut(&id)
            .and_then(|b| b.entries.get(&seq))
            .is_some_and(|e| e.loc.is_some());
        if persistent {
            let rec = match &id {
                BacklogId::Queue(d) => Record::Ack {
                    destination: d.clone(),
                    durable: None,
                    seqs: vec![seq],
                },
                BacklogId::Durable(d, n) => Record::Ack {
                    destination: d.clone(),
                    durable: Some(n.clone()),
                    seqs: vec![seq],
                },
                BacklogId::TopicSub(..) => unreachable!("subscriber entries are never journaled"),
            };
            if let Err(e) = self.journal(sink, &rec) {
                tracing::error!(error = %e, "cannot journal a removal");
            }
        } else if !id.destination().kind.is_temporary() {
            // A non-persistent message a slave may hold (see `JournalSink::volatile`).
            let durable = match &id {
                BacklogId::Queue(_) => Some(None),
                BacklogId::Durable(_, n) => Some(Some(n.clone())),
                BacklogId::TopicSub(..) => None,
            };
            if let Some(durable) = durable {
                let rec = Record::Ack {
                    destination: id.destination().clone(),
                    durable,
                    seqs: vec![seq],
                };
                sink.volatile(&rec.encode());
            }
        }
        let removed = self.backlog_mut(&id).and_then(|b| b.remove(seq));
        if let Some(e) = removed {
            self.forget_entry(id.destination(), &e);
            self.count_dequeued(id.destination(), 1);
        }
        self.mark_dirty(id);
        self.release_blocked();
    }

    pub(super) fn start_dead_letter(&mut self, id: BacklogId, seq: u64, reason: &'static str) {
        let Some(b) = self.backlog_mut(&id) else {
            return;
        };
        let Some(e) = b.entries.get(&seq) else { return };
        let body = match (&e.msg, e.loc) {
            (Some(m), _) => Body::Memory(m.clone()),
            (None, Some(l)) => Body::Disk(l),
            (None, None) => return,
        };
        let persistent = e.persistent;
        b.release(seq);
        // The redelivery plugin comes first, as in ActiveMQ (it wraps the broker's
        // dead-letter move): a persistent queue message goes back to its queue after a
        // delay until its policy's maximumRedeliveries; only then does the
        // dead-letter strategy below decide (a DLQ's own messages too).
        if persistent {
            let redeliveries = self
                .backlog_ref(&id)
                .and_then(|b| b.entries.get(&seq))
                .map_or(0, |e| e.redeliveries);
            if self.redelivery_instead(&id, seq, redeliveries, reason, &body) {
                return;
            }
        }
        // The original destination's policy says whether and where (ActiveMQ's
        // `DeadLetterStrategy`: by default non-persistent messages are dropped).
        let strategy = self.settings.policies.dead_letter_for(id.destination());
        let durable = match &id {
            BacklogId::Durable(_, name) => Some(name),
            _ => None,
        };
        let to = strategy.destination_for(id.destination(), durable);
        let take = strategy.takes(persistent, reason == EXPIRED)
            // A message already on its dead-letter destination is not moved onto
            // itself (ActiveMQ's DLQ loop guard).
            && to != *id.destination()
            && !matches!(id, BacklogId::TopicSub(..));
        if !take {
            tracing::debug!(
                seq,
                reason,
                "dropping a message its dead-letter strategy does not take"
            );
            let removed = self.backlog_mut(&id).and_then(|b| b.remove(seq));
            if let Some(e) = removed {
                self.forget_entry(id.destination(), &e);
                self.count_dequeued(id.destination(), 1);
            }
            self.release_blocked();
            return;
        }
        let token = self.token();
        let destination = id.destination().clone();
        self.moving.insert(token, (id, seq));
        self.out.push(Output::DeadLetter {
            destination,
            to,
            body,
            seq,
            token,
            reason,
        });
    }

    /// Periodic work: expire messages that sat too long.
    pub fn tick(&mut self, now: u64, sink: &mut dyn JournalSink) {
        if self.expiring == 0 {
            return;
        }
        let mut expired = Vec::new();
        for (d, q) in &self.queues {
            for seq in &q.backlog.ready {
                if let Some(e) = q.backlog.entries.get(seq) {
                    if e.expires_ms != 0 && e.expires_ms <= now {
                        expired.push((BacklogId::Queue(d.clone()), *seq));
                    }
                }
            }
        }
        for (d, t) in &self.topics {
            for (n, s) in &t.durables {
                for seq in &s.backlog.ready {
                    if let Some(e) = s.backlog.entries.get(seq) {
                        if e.expires_ms != 0 && e.expires_ms <= now {
                            expired.push((BacklogId::Durable(d.clone(), n.clone()), *seq));
                        }
                    }
                }
            }
        }
        for (id, seq) in expired {
            self.expire(id, seq, sink);
        }
    }

    /// ActiveMQ sends expired persistent messages to the DLQ and drops the others.
    fn expire(&mut self, id: BacklogId, seq: u64, _sink: &mut dyn JournalSink) {
        self.start_dead_letter(id, seq, EXPIRED);
    }
}
