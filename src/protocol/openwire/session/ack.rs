//! MessageAck (OPENWIRE.md §3.3). The ids come back as dispatched; the consumer's
//! outstanding list (dispatch order) finds them by brokerSequenceId:
//!
//! * STANDARD: every outstanding message from `first_message_id` (or the oldest)
//!   through `last_message_id` (AUTO_ACKNOWLEDGE sends one per message, CLIENT a range);
//! * INDIVIDUAL: `last_message_id` only;
//! * UNMATCHED: as STANDARD (a durable subscription's message the selector skipped);
//! * DELIVERED: handed to the application, not acknowledged: only marked;
//! * REDELIVERED: informational;
//! * POISON (redelivered too often on the client) and EXPIRED: the range goes to the
//!   dead-letter queue (ActiveMQ's default for both).
//!
//! With a transaction id, STANDARD/INDIVIDUAL acks wait for the COMMIT (`tx.rs`); a
//! ROLLBACK leaves the messages outstanding to the same consumer, which redelivers them
//! itself. Acks for messages this connection never dispatched (after a failover, say)
//! are ignored, as ActiveMQ does.

use std::collections::BTreeMap;

use super::super::{AckType, MessageAck};
use super::convert::to_broker_destination;
use super::{Refusal, Session, Then};
use crate::broker::{Destination, Request, SubKey, TxOp};
use crate::protocol::SessionEnv;

impl<E: SessionEnv> Session<E> {
    pub(super) fn ack(&mut self, a: MessageAck) -> Result<(), Refusal> {
        let header = a.header;
        let Some(cid) = a.consumer_id.as_ref() else {
            return self.respond_ok(header);
        };
        let Some(c) = self.consumers.get_mut(cid) else {
            tracing::debug!(consumer = %cid, "ack for an unknown consumer ignored");
            return self.respond_ok(header);
        };
        let Some(last) = a.last_message_id.as_ref() else {
            return self.respond_ok(header);
        };
        let only = a
            .destination
            .as_ref()
            .and_then(|d| to_broker_destination(d).ok());
        let find = |seq: i64| {
            let seq = u64::try_from(seq).ok()?;
            c.outstanding
                .iter()
                .position(|o| o.seq == seq && only.as_ref().is_none_or(|d| *d == o.destination))
        };
        let Some(last_idx) = find(last.broker_sequence_id) else {
            tracing::debug!(consumer = %cid, seq = last.broker_sequence_id, "could not correlate an ack; ignored");
            return self.respond_ok(header);
        };
        let first_idx = match a.ack_type {
            AckType::Individual => last_idx,
            _ => a
                .first_message_id
                .as_ref()
                .and_then(|f| find(f.broker_sequence_id))
                .filter(|&f| f <= last_idx)
                .unwrap_or(0),
        };
        match a.ack_type {
            AckType::Redelivered => return self.respond_ok(header),
            AckType::Delivered => {
                for o in c.outstanding.range_mut(first_idx..=last_idx) {
                    o.delivered = true;
                }
                let cid = cid.clone();
                self.update_window(&cid);
                return self.respond_ok(header);
            }
            AckType::Standard | AckType::Individual | AckType::Unmatched => {}
            AckType::Poison | AckType::Expired => {}
        }
        let chosen: Vec<usize> = (first_idx..=last_idx)
            .filter(|&i| c.outstanding[i].in_tx.is_none())
            .collect();
        let refuse = matches!(a.ack_type, AckType::Poison | AckType::Expired);
        let conn = self.ctx.conn;
        // Per destination and subscription (a member, or a pattern member matching the
        // destination): the sequence numbers.
        let mut by_dest: BTreeMap<(Destination, SubKey), Vec<u64>> = BTreeMap::new();
        let in_tx = a.transaction_id.clone().filter(|_| !refuse);
        for &i in &chosen {
            let o = &c.outstanding[i];
            if o.replayed {
                continue;
            }
            let key = SubKey { conn, sub: o.sub };
            by_dest
                .entry((o.destination.clone(), key))
                .or_default()
                .push(o.seq);
        }
        // Remove back to front so earlier indices stay valid; inside a transaction
        // only replayed advisories (which the broker never saw) go now.
        for &i in chosen.iter().rev() {
            match &in_tx {
                Some(txid) if !c.outstanding[i].replayed => {
                    c.outstanding[i].in_tx = Some(txid.clone());
                }
                _ => {
                    c.outstanding.remove(i);
                }
            }
        }
        let cid = cid.clone();
        if let Some(txid) = in_tx {
            let tx = self.transactions.entry(txid).or_default();
            for ((destination, sub), seqs) in by_dest {
                tx.acked.extend(seqs.iter().map(|&s| (cid.clone(), s)));
                tx.ops.push(TxOp::Ack {
                    sub,
                    destination,
                    seqs,
                });
            }
            return self.respond_ok(header);
        }
        let make = move |destination: Destination, sub: SubKey, mut seqs: Vec<u64>, reply| {
            seqs.sort_unstable();
            if refuse {
                Request::Nack {
                    sub,
                    destination,
                    seqs,
                    reply,
                }
            } else {
                Request::Ack {
                    sub,
                    destination,
                    seqs,
                    reply,
                }
            }
        };
        if header.response_required {
            self.group(
                Then::Respond {
                    correlation: Some(header.command_id),
                    report: false,
                },
                |s, g| {
                    for ((destination, sub), seqs) in by_dest {
                        let shard = s.shard_of(&destination);
                        s.post_in(g, shard, |reply| make(destination, sub, seqs, Some(reply)));
                    }
                },
            );
        } else {
            for ((destination, sub), seqs) in by_dest {
                let shard = self.shard_of(&destination);
                self.post(shard, make(destination, sub, seqs, None));
            }
        }
        // After the acks, so the broker sees them first.
        self.update_window(&cid);
        Ok(())
    }
}
