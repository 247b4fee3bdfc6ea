//! The one path from a [`Record`] to state, shared by live requests (journal, then
//! apply), recovery (replay) and, later, a slave (shipped records): enqueues into queue
//! and durable backlogs (or moving the pin of a relocated copy), acknowledgements,
//! durable subscriptions created and removed, one-shard transactions, prepared
//! transactions held until resolved (their acks locked meanwhile), purges and queue
//! deletes (`admin`), queues created empty (virtual-topic consumer queues), and
//! scheduled jobs created and fired (`schedule`).

use std::sync::Arc;

use super::{BacklogId, Durable, Prepared, ShardCore};
use crate::broker::backlog::{Backlog, EntryState};
use crate::broker::message::MessageRef;
use crate::broker::ops::{DurableName, SubKey};
use crate::broker::record::Record;
use crate::broker::selector::Selector;
use crate::store::Location;

impl ShardCore {
    /// Applies a record: from the journal at recovery (`loc` is where it was read),
    /// or just after a live request journaled it (`loc` is where it was appended;
    /// `None` for what is not journaled, such as non-persistent messages).
    pub fn apply(&mut self, rec: Record, loc: Option<Location>) {
        match rec {
            Record::Enqueue {
                seq,
                redeliveries,
                message,
                targets,
            } => self.apply_enqueue(seq, redeliveries, message, &targets, loc),
            Record::Ack {
                destination,
                durable,
                seqs,
            } => {
                let id = match durable {
                    Some(n) => BacklogId::Durable(destination, n),
                    None => BacklogId::Queue(destination),
                };
                let mut acked = 0;
                for seq in seqs {
                    let removed = self.backlog_mut(&id).and_then(|b| b.remove(seq));
                    if let Some(e) = removed {
                        self.forget_entry(id.destination(), &e);
                        acked += 1;
                    }
                }
                self.count_dequeued(id.destination(), acked);
                self.mark_dirty(id);
                self.release_blocked();
            }
            Record::Durable {
                destination,
                name,
                selector,
            } => {
                let exists = self
                    .topics
                    .get(&destination)
                    .is_some_and(|t| t.durables.contains_key(&name));
                if exists {
                    // A relocated copy of the record: move the pin.
                    let old = self.topics.get_mut(&destination).and_then(|t| {
                        t.durables.get_mut(&name).map(|d| {
                            let old = d.loc;
                            d.loc = loc;
                            old
                        })
                    });
                    self.unpin(old.flatten());
                    self.pin(loc);
                } else {
                    self.pin(loc);
                    // Checked when the subscription was created; a record that no
                    // longer parses selects everything rather than nothing.
                    let parsed = selector
                        .as_deref()
                        .and_then(|s| Selector::parse(s).ok())
                        .map(Arc::new);
                    self.topic_mut(&destination).durables.insert(
                        name,
                        Durable {
                            backlog: Backlog::default(),
                            selector,
                            parsed,
                            active: None,
                            loc,
                        },
                    );
                }
            }
            Record::Undurable { destination, name } => {
                let removed = self
                    .topics
                    .get_mut(&destination)
                    .and_then(|t| t.durables.remove(&name));
                if let Some(d) = removed {
                    for e in d.backlog.entries.values() {
                        self.forget_entry(&destination, e);
                    }
                    self.unpin(d.loc);
                    if let Some(k) = d.active {
                        self.attached.remove(&k);
                    }
                }
                self.release_blocked();
            }
            Record::Tx(records) => {
                for r in records {
                    self.apply(r, loc);
                }
            }
            Record::Prepare { gtx, records } => {
                for r in &records {
                    match r {
                        Record::Enqueue { seq, message, .. } => {
                            let d = &message.destination;
                            if d.kind.is_queue() {
                                let q = self.queue_mut(d);
                                q.next_seq = q.next_seq.max(seq + 1);
                            } else {
                                let t = self.topic_mut(d);
                                t.next_seq = t.next_seq.max(seq + 1);
                            }
                        }
                        Record::Ack {
                            destination,
                            durable,
                            seqs,
                        } => {
                            let id = BacklogId::of_ack(destination, durable.as_ref());
                            if let Some(b) = self.backlog_mut(&id) {
                                for s in seqs {
                                    if let Some(e) = b.entries.get_mut(s) {
                                        e.tx_locked = true;
                                    }
                                }
                            }
                        }
                        Record::Schedule { key, .. } => {
                            self.next_job = self.next_job.max(key + 1);
                        }
                        _ => {}
                    }
                }
                self.pin(loc);
                self.prepared.insert(gtx, Prepared { records, loc });
            }
            Record::Outcome { gtx, commit } => {
                self.pin(loc);
                self.outcomes.insert(gtx, (commit, loc));
            }
            Record::Resolved { gtx, commit } => {
                if let Some(p) = self.prepared.remove(&gtx) {
                    self.unpin(p.loc);
                    if commit {
                        for r in p.records {
                            if let Record::Enqueue { ref message, .. } = r {
                                if !message.destination.kind.is_queue() {
                                    self.fan_out_to_subscribers(&r);
                                }
                            }
                            self.apply(r, p.loc);
                        }
                    } else {
                        self.unlock_acks(&p.records);
                    }
                }
            }
            Record::Purge { destination } => self.apply_purge(&destination),
            Record::DeleteQueue { destination } => self.apply_delete_queue(&destination),
            Record::Schedule {
                key,
                created_ms,
                next_ms,
                fired,
                redeliveries,
                spec,
                message,
            } => self.apply_schedule(
                key,
                created_ms,
                next_ms,
                fired,
                redeliveries,
                spec,
                message,
                loc,
            ),
            Record::Fire {
                key,
                next,
                fired,
                then,
            } => self.apply_fire(key, next, fired, then, loc),
            Record::CreateQueue { destination } => {
                // New, or a relocated copy of the record: either way it now pins `loc`.
                let q = self.queue_mut(&destination);
                let old = std::mem::replace(&mut q.created_at, loc);
                self.unpin(old);
                self.pin(loc);
            }
        }
    }

    fn apply_enqueue(
        &mut self,
        seq: u64,
        redeliveries: u32,
        message: MessageRef,
        targets: &[DurableName],
        loc: Option<Location>,
    ) {
        if message.persistent {
            self.audit.stored(&message.destination, &message.id);
        }
        let d = message.destination.clone();
        if d.kind.is_queue() {
            let q = self.queue_mut(&d);
            q.next_seq = q.next_seq.max(seq + 1);
            if let Some(e) = q.backlog.entries.get_mut(&seq) {
                // A relocated copy of a message we hold: it now lives at `loc`.
                let old = e.loc;
                e.loc = loc;
                self.unpin(old);
                self.pin(loc);
                return;
            }
            let entry = self.new_entry(&message, loc, redeliveries);
            self.queue_mut(&d).backlog.insert(seq, entry);
            self.count_enqueued(&d);
            self.mark_dirty(BacklogId::Queue(d));
        } else {
            let t = self.topic_mut(&d);
            t.next_seq = t.next_seq.max(seq + 1);
            // A copy that durables already hold is a relocation, not a new message.
            let mut relocated = false;
            for name in targets {
                let state = self
                    .topics
                    .get(&d)
                    .and_then(|t| t.durables.get(name))
                    .map(|s| s.backlog.entries.get(&seq).map(|e| e.loc));
                match state {
                    None => {} // subscription removed since
                    Some(Some(old)) => {
                        if let Some(e) = self
                            .topics
                            .get_mut(&d)
                            .and_then(|t| t.durables.get_mut(name))
                            .and_then(|s| s.backlog.entries.get_mut(&seq))
                        {
                            e.loc = loc;
                        }
                        self.unpin(old);
                        self.pin(loc);
                        relocated = true;
                    }
                    Some(None) => {
                        let entry = self.new_entry(&message, loc, redeliveries);
                        if let Some(s) = self
                            .topics
                            .get_mut(&d)
                            .and_then(|t| t.durables.get_mut(name))
                        {
                            s.backlog.insert(seq, entry);
                        }
                        self.mark_dirty(BacklogId::Durable(d.clone(), name.clone()));
                    }
                }
            }
            if !relocated {
                self.count_enqueued(&d);
            }
        }
    }

    fn unlock_acks(&mut self, records: &[Record]) {
        for r in records {
            if let Record::Ack {
                destination,
                durable,
                seqs,
            } = r
            {
                let id = BacklogId::of_ack(destination, durable.as_ref());
                let mut attached: Vec<SubKey> = self.attached.keys().copied().collect();
                attached.extend(self.wild.on(destination));
                if let Some(b) = self.backlog_mut(&id) {
                    for s in seqs {
                        if let Some(e) = b.entries.get_mut(s) {
                            e.tx_locked = false;
                            // Its consumer left while the transaction was pending.
                            if let EntryState::Delivered(k) = e.state {
                                if !attached.contains(&k) {
                                    e.state = EntryState::Ready;
                                    e.redeliveries += 1;
                                    b.ready.insert(*s);
                                }
                            }
                        }
                    }
                }
                self.mark_dirty(id);
            }
        }
    }
}
