//! Journal reclaim: every live record pins its segment (count and bytes), and a segment
//! with no pins may be deleted once every older one is gone. To free an old segment
//! that is mostly dead, the driver asks which live messages and durable subscriptions
//! it still holds and has them re-journaled; applying the copy moves the pin to the
//! new segment.

use std::collections::BTreeMap;

use super::{Body, JournalSink, Relocation, ShardCore};
use crate::broker::message::MessageRef;
use crate::broker::ops::DurableName;
use crate::broker::record::Record;
use crate::store::Location;

impl ShardCore {
    pub(super) fn pin(&mut self, loc: Option<Location>) {
        if let Some(l) = loc {
            let (count, bytes) = self.live.entry(l.segment).or_insert((0, 0));
            *count += 1;
            *bytes += u64::from(l.len);
        }
    }

    pub(super) fn unpin(&mut self, loc: Option<Location>) {
        if let Some(l) = loc {
            if let Some((count, bytes)) = self.live.get_mut(&l.segment) {
                assert!(*count > 0, "unpinning a segment with no live records");
                *count -= 1;
                *bytes = bytes.saturating_sub(u64::from(l.len));
                if *count == 0 {
                    self.live.remove(&l.segment);
                }
            }
        }
    }

    /// Bytes of live records in `segment`.
    pub fn live_bytes(&self, segment: u64) -> u64 {
        self.live.get(&segment).map_or(0, |(_, b)| *b)
    }

    /// Whether anything still pins `segment` (prepared transactions, outcomes).
    pub fn is_pinned(&self, segment: u64) -> bool {
        self.live.get(&segment).is_some_and(|(n, _)| *n > 0)
    }

    /// Live entries whose record is in `segment`, for relocation before the segment
    /// is deleted: (destination, seq, body, redeliveries, durable targets).
    pub fn entries_in_segment(&self, segment: u64) -> Vec<Relocation> {
        let mut out: Vec<Relocation> = Vec::new();
        for (d, q) in &self.queues {
            for (seq, e) in q.backlog.entries.iter() {
                if let Some(l) = e.loc.filter(|l| l.segment == segment) {
                    out.push(Relocation {
                        destination: d.clone(),
                        seq: *seq,
                        body: e.msg.clone().map_or(Body::Disk(l), Body::Memory),
                        redeliveries: e.redeliveries,
                        targets: Vec::new(),
                    });
                }
            }
        }
        for (d, t) in &self.topics {
            let mut by_seq: BTreeMap<u64, Relocation> = BTreeMap::new();
            for (n, s) in &t.durables {
                for (seq, e) in s.backlog.entries.iter() {
                    if let Some(l) = e.loc.filter(|l| l.segment == segment) {
                        by_seq
                            .entry(*seq)
                            .or_insert_with(|| Relocation {
                                destination: d.clone(),
                                seq: *seq,
                                body: e.msg.clone().map_or(Body::Disk(l), Body::Memory),
                                redeliveries: e.redeliveries,
                                targets: Vec::new(),
                            })
                            .targets
                            .push(n.clone());
                    }
                }
            }
            out.extend(by_seq.into_values());
        }
        out
    }

    /// Durable subscription definitions and queue creations (`CreateQueue`) whose
    /// record is in `segment`: re-journal them.
    pub fn relocate_durables(&mut self, segment: u64, sink: &mut dyn JournalSink) {
        let mut recs = Vec::new();
        for (d, q) in &self.queues {
            if q.created_at.is_some_and(|l| l.segment == segment) {
                recs.push(Record::CreateQueue {
                    destination: d.clone(),
                });
            }
        }
        for (d, t) in &self.topics {
            for (n, s) in &t.durables {
                if s.loc.is_some_and(|l| l.segment == segment) {
                    recs.push(Record::Durable {
                        destination: d.clone(),
                        name: n.clone(),
                        selector: s.selector.clone(),
                    });
                }
            }
        }
        for rec in recs {
            match self.journal(sink, &rec) {
                Ok(loc) => self.apply(rec, Some(loc)),
                Err(e) => {
                    tracing::error!(error = %e, "cannot relocate a durable subscription or a queue creation")
                }
            }
        }
    }

    /// Re-journals a live message (read back if needed) so its old segment can go.
    /// Skipped if it was acknowledged meanwhile.
    pub fn relocate(&mut self, r: Relocation, msg: MessageRef, sink: &mut dyn JournalSink) {
        let still_live = if r.targets.is_empty() {
            self.queues
                .get(&r.destination)
                .is_some_and(|q| q.backlog.entries.contains_key(&r.seq))
        } else {
            true
        };
        if !still_live {
            return;
        }
        let targets: Vec<DurableName> = r
            .targets
            .into_iter()
            .filter(|n| {
                self.topics
                    .get(&r.destination)
                    .and_then(|t| t.durables.get(n))
                    .is_some_and(|s| s.backlog.entries.contains_key(&r.seq))
            })
            .collect();
        if !r.destination.kind.is_queue() && targets.is_empty() {
            return;
        }
        let rec = Record::Enqueue {
            seq: r.seq,
            redeliveries: r.redeliveries,
            message: msg,
            targets,
        };
        match self.journal(sink, &rec) {
            Ok(loc) => self.apply(rec, Some(loc)),
            Err(e) => tracing::error!(error = %e, "cannot relocate a message"),
        }
    }
}
