//! What a diverged log holds for clients: which messages were stored by records at
//! or after the divergence position `from` (records the new master never had, see
//! `store::diverged`) and were still stored when the log ended. Those are the messages
//! `tandem journal replay-diverged` resends; the shard counts them into `DIVERGED`
//! when it sets a log aside ([`Analysis`] is the store's `DivergedVisitor`).
//!
//! The analysis replays every record of the set-aside log in order, keeping only
//! which message each `(destination, sequence)` holds (its id, and for a topic the
//! durable subscriptions still holding it), as `ShardCore::apply` would:
//!
//! * an `Enqueue` at or after `from` stores a **diverged** message, unless it is a
//!   **copy** of a message already stored at `from` (which the master holds): the same
//!   `(destination, seq)` still stored (a reclaimed segment's message journaled again,
//!   `core::reclaim`), or the same message id (a dead-letter copy of it,
//!   `core::dead_letter_copy`);
//! * `Ack`, `Purge`, `DeleteQueue` and `Undurable` remove; a diverged message removed
//!   again within the diverged range (acknowledged, expired or dead-lettered, purged,
//!   its last durable subscription gone) is counted as **removed**, not resent;
//! * a one-shard transaction (`Tx`) is written only when it commits: its records count
//!   at its position. A two-phase transaction (`Prepare`) counts where its participant
//!   applied the commit (`Resolved{commit: true}`), with its records: at or after
//!   `from`, its messages are diverged, unless the coordinator's commit (`Outcome`) is
//!   before `from` (the master holds that decision and commits them itself). Rolled
//!   back: nothing. Prepared at or after `from` and never resolved here: **in doubt**,
//!   not resent (nobody was told it committed);
//! * non-persistent messages are not journaled, so they are not here;
//! * a `Fire` counts with the copy it delivered (its nested `Enqueue`); scheduled jobs
//!   themselves (`Schedule`) are not messages stored yet and are not resent.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;

use super::destination::Destination;
use super::message::MessageRef;
use super::ops::{DurableName, GlobalTxId};
use super::record::Record;
use crate::store::{DivergedVisitor, Position};

/// Replays a set-aside log record by record; [`Analysis::finish`] says what diverged.
pub struct Analysis {
    /// Keep each diverged message (for a replay) or only count them (a shard's
    /// `DIVERGED` counts: its bodies need not sit in memory).
    keep_messages: bool,
    /// What each `(destination, seq)` holds at this point of the log.
    live: HashMap<(Destination, u64), Entry>,
    /// Two-phase transactions prepared and not resolved yet.
    prepared: HashMap<GlobalTxId, Prepared>,
    /// The first diverged record has been seen.
    crossed: bool,
    /// Ids of the messages stored at `from` (taken at the first diverged record).
    live_at_from: HashSet<String>,
    /// Transactions whose coordinator's commit decision is before `from`.
    commits_before_from: HashSet<GlobalTxId>,
    /// Orders diverged messages of one record (a transaction) after each other.
    next_order: u64,
    removed: u64,
    copies: u64,
    undecodable: u64,
}

struct Entry {
    id: String,
    /// Topic: the durable subscriptions still holding it. Empty for a queue.
    targets: Vec<DurableName>,
    /// Set when a diverged record stored it.
    diverged: Option<Diverged>,
}

struct Diverged {
    at: Position,
    order: u64,
    message: Option<MessageRef>,
    gtx: Option<GlobalTxId>,
}

struct Prepared {
    records: Vec<Record>,
    /// Prepared at or after `from`.
    diverged: bool,
}

/// A diverged message still stored at the end of the log.
#[derive(Clone, Debug)]
pub struct DivergedMessage {
    /// Position of the record that stored it (its `Enqueue`, `Tx` or `Resolved`).
    pub at: Position,
    /// The original message id.
    pub id: String,
    pub destination: Destination,
    /// The message (None when the analysis only counts).
    pub message: Option<MessageRef>,
    /// The two-phase transaction that committed it, if any.
    pub gtx: Option<GlobalTxId>,
}

/// What an [`Analysis`] found.
#[derive(Debug, Default)]
pub struct Findings {
    /// Diverged messages still stored at the end, in log order.
    pub messages: Vec<DivergedMessage>,
    /// Diverged messages removed again within the diverged range.
    pub removed: u64,
    /// Diverged enqueues of a message stored at `from` (the master holds it).
    pub copies: u64,
    /// Messages of two-phase transactions prepared at or after `from` and never
    /// resolved in this log.
    pub in_doubt: u64,
    /// Ids of the messages stored at `from`: another shard's diverged dead-letter copy
    /// of one of them is a copy too.
    pub live_at_from: HashSet<String>,
    /// Transactions committed by a coordinator decision before `from`: another
    /// shard's participant that applied one of them in its diverged range holds no
    /// new message.
    pub commits_before_from: HashSet<GlobalTxId>,
    /// Records that did not decode (a format bug; logged by the caller).
    pub undecodable: u64,
}

impl Analysis {
    pub fn new(keep_messages: bool) -> Analysis {
        Analysis {
            keep_messages,
            live: HashMap::new(),
            prepared: HashMap::new(),
            crossed: false,
            live_at_from: HashSet::new(),
            commits_before_from: HashSet::new(),
            next_order: 0,
            removed: 0,
            copies: 0,
            undecodable: 0,
        }
    }

    /// One record of the log, in order; `diverged`: it ends after `from`.
    pub fn record(&mut self, at: Position, payload: &[u8], diverged: bool) {
        if diverged && !self.crossed {
            self.crossed = true;
            self.live_at_from = self.live.values().map(|e| e.id.clone()).collect();
        }
        match Record::decode(&Bytes::copy_from_slice(payload)) {
            Ok(rec) => self.apply(rec, at, diverged, None),
            Err(_) => self.undecodable += 1,
        }
    }

    fn apply(&mut self, rec: Record, at: Position, diverged: bool, gtx: Option<GlobalTxId>) {
        match rec {
            Record::Enqueue {
                seq,
                message,
                targets,
                ..
            } => {
                let key = (message.destination.clone(), seq);
                if let Some(e) = self.live.get(&key) {
                    // Journaled again to free its old segment: the same message.
                    self.copies += u64::from(diverged && e.diverged.is_none());
                    return;
                }
                let queue = message.destination.kind.is_queue();
                if !queue && targets.is_empty() {
                    return;
                }
                let copy = diverged && self.live_at_from.contains(&message.id);
                self.copies += u64::from(copy);
                let mark = (diverged && !copy).then(|| {
                    self.next_order += 1;
                    Diverged {
                        at,
                        order: self.next_order,
                        message: self.keep_messages.then(|| message.clone()),
                        gtx,
                    }
                });
                self.live.insert(
                    key,
                    Entry {
                        id: message.id.clone(),
                        targets: if queue { Vec::new() } else { targets },
                        diverged: mark,
                    },
                );
            }
            Record::Ack {
                destination,
                durable,
                seqs,
            } => {
                for seq in seqs {
                    let key = (destination.clone(), seq);
                    let gone = match (self.live.get_mut(&key), &durable) {
                        (None, _) => false,
                        (Some(_), None) => true,
                        (Some(e), Some(name)) => {
                            e.targets.retain(|t| t != name);
                            e.targets.is_empty()
                        }
                    };
                    if gone {
                        self.remove(&key);
                    }
                }
            }
            Record::Durable { .. } | Record::CreateQueue { .. } | Record::Schedule { .. } => {}
            Record::Fire { then, .. } => {
                for r in then {
                    self.apply(r, at, diverged, gtx);
                }
            }
            Record::Undurable { destination, name } => {
                let mut gone = Vec::new();
                for (key, e) in self.live.iter_mut() {
                    if key.0 == destination {
                        e.targets.retain(|t| *t != name);
                        if e.targets.is_empty() {
                            gone.push(key.clone());
                        }
                    }
                }
                for key in gone {
                    self.remove(&key);
                }
            }
            Record::Tx(records) => {
                for r in records {
                    self.apply(r, at, diverged, gtx);
                }
            }
            Record::Prepare { gtx, records } => {
                self.prepared.insert(gtx, Prepared { records, diverged });
            }
            Record::Outcome { gtx, commit } => {
                if commit && !diverged {
                    self.commits_before_from.insert(gtx);
                }
            }
            Record::Resolved { gtx, commit } => {
                if let Some(p) = self.prepared.remove(&gtx) {
                    if commit {
                        let diverged = diverged && !self.commits_before_from.contains(&gtx);
                        for r in p.records {
                            self.apply(r, at, diverged, Some(gtx));
                        }
                    }
                }
            }
            Record::Purge { destination } | Record::DeleteQueue { destination } => {
                let gone: Vec<_> = self
                    .live
                    .keys()
                    .filter(|k| k.0 == destination)
                    .cloned()
                    .collect();
                for key in gone {
                    self.remove(&key);
                }
            }
        }
    }

    fn remove(&mut self, key: &(Destination, u64)) {
        if let Some(e) = self.live.remove(key) {
            self.removed += u64::from(e.diverged.is_some());
        }
    }

    /// Messages of diverged prepared transactions not resolved (yet).
    fn in_doubt(&self) -> u64 {
        self.prepared
            .values()
            .filter(|p| p.diverged)
            .flat_map(|p| &p.records)
            .filter(|r| matches!(r, Record::Enqueue { .. }))
            .count() as u64
    }

    /// Diverged messages stored now.
    fn stored(&self) -> u64 {
        self.live.values().filter(|e| e.diverged.is_some()).count() as u64
    }

    /// What diverged, once every record was seen.
    pub fn finish(self) -> Findings {
        let in_doubt = self.in_doubt();
        let mut messages: Vec<(u64, DivergedMessage)> = self
            .live
            .into_iter()
            .filter_map(|((destination, _), e)| {
                let d = e.diverged?;
                Some((
                    d.order,
                    DivergedMessage {
                        at: d.at,
                        id: e.id,
                        destination,
                        message: d.message,
                        gtx: d.gtx,
                    },
                ))
            })
            .collect();
        messages.sort_by_key(|(order, _)| *order);
        Findings {
            messages: messages.into_iter().map(|(_, m)| m).collect(),
            removed: self.removed,
            copies: self.copies,
            in_doubt,
            live_at_from: self.live_at_from,
            commits_before_from: self.commits_before_from,
            undecodable: self.undecodable,
        }
    }
}

impl DivergedVisitor for Analysis {
    fn record(&mut self, at: Position, payload: &[u8], diverged: bool) {
        Analysis::record(self, at, payload, diverged);
    }

    /// `messages`: diverged messages still stored (what a replay resends, before it
    /// drops expired ones and copies it can only see across shards); `removed`,
    /// `copies`, `in_doubt`: see [`Findings`].
    fn counts(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("messages", self.stored()),
            ("removed", self.removed),
            ("copies", self.copies),
            ("in_doubt", self.in_doubt()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::broker::message::{BodyType, Message};

    fn msg(id: &str, dest: Destination) -> MessageRef {
        Arc::new(Message {
            id: id.into(),
            destination: dest,
            persistent: true,
            priority: 4,
            timestamp_ms: 1,
            expires_ms: 0,
            reply_to: None,
            headers: Vec::new(),
            body: Bytes::from_static(b"x"),
            body_type: BodyType::TEXT,
            properties: Vec::new(),
        })
    }

    fn enqueue(id: &str, dest: &Destination, seq: u64) -> Record {
        Record::Enqueue {
            seq,
            redeliveries: 0,
            message: msg(id, dest.clone()),
            targets: Vec::new(),
        }
    }

    fn ack(dest: &Destination, seqs: &[u64]) -> Record {
        Record::Ack {
            destination: dest.clone(),
            durable: None,
            seqs: seqs.to_vec(),
        }
    }

    /// Feeds `prefix` (before `from`) then `diverged`, one position per record.
    fn run(prefix: Vec<Record>, diverged: Vec<Record>) -> Findings {
        let mut a = Analysis::new(true);
        let all = prefix
            .into_iter()
            .map(|r| (r, false))
            .chain(diverged.into_iter().map(|r| (r, true)));
        for (i, (r, d)) in all.enumerate() {
            a.record(Position::new(1, 4096 + 64 * i as u32), &r.encode(), d);
        }
        a.finish()
    }

    fn ids(f: &Findings) -> Vec<&str> {
        f.messages.iter().map(|m| m.id.as_str()).collect()
    }

    #[test]
    fn new_messages_count_unless_removed_in_the_diverged_range() {
        let q = Destination::queue("a");
        let f = run(
            vec![enqueue("p1", &q, 0), enqueue("p2", &q, 1)],
            vec![
                enqueue("d1", &q, 2),
                enqueue("d2", &q, 3),
                ack(&q, &[1, 2]), // an old one and a new one
                enqueue("d3", &q, 4),
            ],
        );
        assert_eq!(ids(&f), ["d2", "d3"]);
        assert_eq!(f.removed, 1);
        assert_eq!(f.copies, 0);
        assert_eq!(f.live_at_from, HashSet::from(["p1".into(), "p2".into()]));
    }

    #[test]
    fn relocated_and_dead_lettered_copies_of_older_messages_are_not_new() {
        let q = Destination::queue("a");
        let dlq = Destination::dead_letter_queue();
        let f = run(
            vec![enqueue("p1", &q, 0), enqueue("p2", &q, 1)],
            vec![
                // p1's segment reclaimed: journaled again under the same seq.
                enqueue("p1", &q, 0),
                // p2 dead-lettered: a copy with its id on the DLQ, then its ack.
                enqueue("p2", &dlq, 0),
                ack(&q, &[1]),
            ],
        );
        assert!(f.messages.is_empty(), "{:?}", ids(&f));
        assert_eq!(f.copies, 2);
        assert_eq!(f.removed, 0);
    }

    #[test]
    fn transactions_count_where_they_commit() {
        let q = Destination::queue("a");
        let f = run(
            vec![Record::Prepare {
                gtx: 7,
                records: vec![enqueue("x7", &q, 0)],
            }],
            vec![
                Record::Tx(vec![enqueue("t1", &q, 1), enqueue("t2", &q, 2)]),
                Record::Resolved {
                    gtx: 7,
                    commit: true,
                },
                Record::Prepare {
                    gtx: 8,
                    records: vec![enqueue("x8", &q, 3)],
                },
                Record::Resolved {
                    gtx: 8,
                    commit: false,
                },
                Record::Prepare {
                    gtx: 9,
                    records: vec![enqueue("x9", &q, 4)],
                },
            ],
        );
        assert_eq!(ids(&f), ["t1", "t2", "x7"]);
        assert_eq!(f.messages[2].gtx, Some(7));
        assert_eq!(f.in_doubt, 1, "x9 is prepared and never resolved");
        // A commit decided before `from` is the master's too.
        let f = run(
            vec![
                Record::Prepare {
                    gtx: 7,
                    records: vec![enqueue("x7", &q, 0)],
                },
                Record::Outcome {
                    gtx: 7,
                    commit: true,
                },
            ],
            vec![Record::Resolved {
                gtx: 7,
                commit: true,
            }],
        );
        assert!(f.messages.is_empty());
        assert_eq!(f.commits_before_from, HashSet::from([7]));
    }

    #[test]
    fn purges_and_durable_subscriptions_remove() {
        let q = Destination::queue("a");
        let t = Destination::topic("t");
        let sub = |n: &str| DurableName {
            client_id: "c".into(),
            name: n.into(),
        };
        let f = run(
            vec![],
            vec![
                enqueue("q1", &q, 0),
                Record::Purge {
                    destination: q.clone(),
                },
                Record::Enqueue {
                    seq: 0,
                    redeliveries: 0,
                    message: msg("t1", t.clone()),
                    targets: vec![sub("s1"), sub("s2")],
                },
                Record::Ack {
                    destination: t.clone(),
                    durable: Some(sub("s1")),
                    seqs: vec![0],
                },
                Record::Enqueue {
                    seq: 1,
                    redeliveries: 0,
                    message: msg("t2", t.clone()),
                    targets: vec![sub("s1")],
                },
                Record::Undurable {
                    destination: t.clone(),
                    name: sub("s1"),
                },
            ],
        );
        assert_eq!(
            ids(&f),
            ["t1"],
            "s2 still holds t1; t2's only subscription left"
        );
        assert_eq!(f.removed, 2);
    }
}
