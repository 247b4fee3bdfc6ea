//! ACK and NACK: finding the delivery a frame names (by `id` in 1.2, by `message-id`
//! and `subscription` before), expanding a client-mode ack cumulatively over earlier
//! outstanding deliveries, and either buffering the acks in a transaction or posting
//! them, batched per destination, to the destination's shard.

use std::collections::BTreeMap;

use super::super::frame::Frame;
use super::super::version::Version;
use super::receipts::Pending;
use super::{missing, Session, SessionEnv, SessionError};
use crate::broker::{AckMode, Destination, Request, SubKey, TxOp};

impl<E: SessionEnv> Session<E> {
    // ----- ACK / NACK -----

    pub(super) fn ack(&mut self, frame: &Frame, nack: bool) -> Result<(), SessionError> {
        let command = frame.command;
        if nack && self.version == Version::V1_0 {
            return Err(SessionError::UnexpectedCommand(command));
        }
        let (num, idx, id) = self.find_delivery(frame)?;
        let tx = frame.header("transaction");
        if tx.is_some_and(|t| !self.transactions.contains_key(t)) {
            return Err(SessionError::UnknownTransaction(
                tx.unwrap_or_default().into(),
            ));
        }
        let Some(sub) = self.subs.get_mut(&num) else {
            return Err(SessionError::UnknownAck(id));
        };
        if nack && sub.browser {
            return Err(SessionError::Browser(
                "Cannot Nack a message on a Queue Browser Subscription.",
            ));
        }
        if sub.outstanding[idx].in_tx.is_some() {
            return Err(SessionError::UnknownAck(id));
        }
        // Cumulative in client mode: this delivery and every earlier one not already
        // acknowledged inside a transaction.
        let first = if sub.ack == AckMode::Client { 0 } else { idx };
        let chosen: Vec<usize> = (first..=idx)
            .filter(|&i| sub.outstanding[i].in_tx.is_none())
            .collect();
        let mut by_dest: BTreeMap<Destination, Vec<u64>> = BTreeMap::new();
        let key = SubKey {
            conn: self.ctx.conn,
            sub: num,
        };
        // NACK has no transactional form in the core: it applies at once.
        match tx.filter(|_| !nack) {
            Some(tx) => {
                let mut acked = Vec::with_capacity(chosen.len());
                for &i in &chosen {
                    let o = &mut sub.outstanding[i];
                    o.in_tx = Some(tx.to_owned());
                    acked.push((num, o.ack_no));
                    by_dest
                        .entry(o.destination.clone())
                        .or_default()
                        .push(o.seq);
                }
                if let Some(t) = self.transactions.get_mut(tx) {
                    t.acked.extend(acked);
                    for (destination, seqs) in by_dest {
                        t.ops.push(TxOp::Ack {
                            sub: key,
                            destination,
                            seqs,
                        });
                    }
                }
                self.receipt_now(frame.header("receipt"))
            }
            None => {
                // Remove back to front so earlier indices stay valid.
                for &i in chosen.iter().rev() {
                    if let Some(o) = sub.outstanding.remove(i) {
                        self.ack_owner.remove(&o.ack_no);
                        by_dest.entry(o.destination).or_default().push(o.seq);
                    }
                }
                let receipt = frame.header("receipt").map(str::to_owned);
                let mut batches = by_dest.into_iter().peekable();
                while let Some((destination, mut seqs)) = batches.next() {
                    seqs.sort_unstable();
                    let shard = self.shard_of(&destination);
                    let make = |reply| {
                        if nack {
                            Request::Nack {
                                sub: key,
                                destination,
                                seqs,
                                reply,
                            }
                        } else {
                            Request::Ack {
                                sub: key,
                                destination,
                                seqs,
                                reply,
                            }
                        }
                    };
                    // The receipt rides on the last batch; earlier batches are covered
                    // because a multi-destination ack only arises on wildcard topics,
                    // where a barrier would not order across shards anyway.
                    match (&receipt, batches.peek()) {
                        (Some(r), None) => {
                            let receipt = Some(r.clone());
                            self.post_with_reply(shard, Pending::Simple { receipt }, |reply| {
                                make(Some(reply))
                            });
                        }
                        _ => self.post_unreplied(shard, make(None)),
                    }
                }
                Ok(())
            }
        }
    }

    /// The subscription number, index in its outstanding list, and the id the client
    /// used, of the delivery an ACK/NACK names.
    pub(super) fn find_delivery(
        &self,
        frame: &Frame,
    ) -> Result<(u64, usize, String), SessionError> {
        let command = frame.command;
        if self.version >= Version::V1_2 {
            let id = frame.header("id").ok_or(missing(command, "id"))?;
            let unknown = || SessionError::UnknownAck(id.to_owned());
            let ack_no: u64 = id.parse().map_err(|_| unknown())?;
            let num = *self.ack_owner.get(&ack_no).ok_or_else(unknown)?;
            let sub = self.subs.get(&num).ok_or_else(unknown)?;
            let idx = sub
                .outstanding
                .iter()
                .position(|o| o.ack_no == ack_no)
                .ok_or_else(unknown)?;
            return Ok((num, idx, id.to_owned()));
        }
        let id = frame
            .header("message-id")
            .ok_or(missing(command, "message-id"))?;
        let unknown = || SessionError::UnknownAck(id.to_owned());
        let find = |num: u64| {
            self.subs.get(&num).and_then(|s| {
                s.outstanding
                    .iter()
                    .position(|o| o.message_id == id)
                    .map(|i| (num, i, id.to_owned()))
            })
        };
        // 1.1 names the subscription; 1.0 clients (and lax 1.1 ones) do not, and the
        // first subscription holding that message wins.
        match frame.header("subscription") {
            Some(s) => {
                let num = *self.sub_by_client_id.get(s).ok_or_else(unknown)?;
                find(num).ok_or_else(unknown)
            }
            None => {
                let mut nums: Vec<u64> = self.subs.keys().copied().collect();
                nums.sort_unstable();
                nums.into_iter().find_map(find).ok_or_else(unknown)
            }
        }
    }
}
