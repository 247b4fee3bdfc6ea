//! Completions, barriers and receipts. Every request that needs an answer is posted
//! with a reply token keyed in `Session::pending`; its `Done` releases what waited on
//! it (a RECEIPT, an ERROR, a flow-control resume, a two-phase step). Frames that touch
//! no shard get their RECEIPT at once when nothing posted is unconfirmed, else after a
//! `Barrier` to each shard with unconfirmed work.

use super::super::frame::Frame;
use super::{Action, Session, SessionEnv, SessionError};
use crate::broker::{BrokerError, Reply, ReplyTo, Request, ShardId};

/// What a reply token is waiting for.
#[derive(Debug)]
pub(super) enum Pending {
    /// A send: counts against `max_pending_sends` until done.
    Send {
        receipt: Option<String>,
    },
    /// One copy of a send that went to several destinations (a virtual topic and its
    /// consumer queues): the send is done when every copy is.
    SendPart {
        group: u64,
    },
    /// Subscribe: on failure the local subscription is dropped again.
    Subscribe {
        receipt: Option<String>,
        sub: u64,
    },
    /// Unsubscribe, ack, nack: a receipt (or nothing) on success.
    Simple {
        receipt: Option<String>,
    },
    Commit {
        receipt: Option<String>,
        acked: Vec<(u64, u64)>,
    },
    TwoPhase {
        commit_key: u64,
    },
    Barrier {
        group: u64,
    },
}

/// A send posted as several copies, waiting for all of them.
#[derive(Debug)]
pub(super) struct SendGroup {
    pub(super) remaining: usize,
    pub(super) receipt: Option<String>,
    /// The first copy that failed: the client hears of it (once).
    pub(super) failed: Option<BrokerError>,
}

#[derive(Debug)]
pub(super) enum AfterBarrier {
    Receipt(String),
    /// DISCONNECT's receipt: close once it is out.
    Disconnect(String),
}

#[derive(Debug)]
pub(super) struct BarrierGroup {
    pub(super) remaining: usize,
    pub(super) then: AfterBarrier,
}

impl<E: SessionEnv> Session<E> {
    // ----- completions -----

    pub(super) fn done(&mut self, reply: Reply, result: Result<(), BrokerError>) {
        if reply.to != ReplyTo::Conn(self.ctx.conn) {
            debug_assert!(false, "completion for another connection: {reply:?}");
            return;
        }
        let Some((shard, pending)) = self.pending.remove(&reply.token) else {
            tracing::warn!(token = reply.token, "completion for an unknown request");
            return;
        };
        if let Some(n) = self.inflight.get_mut(shard) {
            *n = n.saturating_sub(1);
        }
        match pending {
            Pending::Send { receipt } => self.send_done(result, receipt),
            Pending::SendPart { group } => {
                let Some(g) = self.send_groups.get_mut(&group) else {
                    return;
                };
                g.remaining = g.remaining.saturating_sub(1);
                if let Err(e) = result {
                    g.failed.get_or_insert(e);
                }
                if g.remaining > 0 {
                    return;
                }
                let Some(g) = self.send_groups.remove(&group) else {
                    return;
                };
                let result = g.failed.map_or(Ok(()), Err);
                self.send_done(result, g.receipt);
            }
            Pending::Subscribe { receipt, sub } => {
                if result.is_err() {
                    match self.subs.remove(&sub) {
                        Some(s) => {
                            self.sub_by_client_id.remove(&s.client_id);
                            if s.destination.is_wildcard() {
                                self.unsubscribe_everywhere(sub, s.destination);
                            }
                        }
                        // A wildcard subscription another shard refused already: the
                        // client heard of it once.
                        None if receipt.is_none() => return,
                        None => {}
                    }
                }
                self.complete(result, receipt, "Subscribe failed");
            }
            Pending::Simple { receipt } => self.complete(result, receipt, "Request failed"),
            Pending::Commit { receipt, acked } => {
                if result.is_ok() {
                    self.forget_acked(&acked);
                } else {
                    self.release_tx_acks(&acked);
                }
                self.complete(result, receipt, "Transaction failed");
            }
            Pending::TwoPhase { commit_key } => self.two_phase_step(commit_key, result),
            Pending::Barrier { group } => {
                let Some(g) = self.barriers.get_mut(&group) else {
                    return;
                };
                g.remaining = g.remaining.saturating_sub(1);
                if g.remaining > 0 {
                    return;
                }
                let Some(g) = self.barriers.remove(&group) else {
                    return;
                };
                match g.then {
                    AfterBarrier::Receipt(r) => self.write(Frame::receipt(&r)),
                    AfterBarrier::Disconnect(r) => {
                        self.write(Frame::receipt(&r));
                        self.close();
                    }
                }
            }
        }
    }

    /// A send is done (every copy of it): it no longer counts against
    /// `max_pending_sends`, and the client hears the outcome.
    fn send_done(&mut self, result: Result<(), BrokerError>, receipt: Option<String>) {
        self.pending_sends = self.pending_sends.saturating_sub(1);
        if self.reading_paused && self.pending_sends < self.ctx.settings.max_pending_sends {
            self.reading_paused = false;
            self.out.push(Action::ResumeReading);
        }
        self.complete(result, receipt, "Send failed");
    }

    /// RECEIPT on success, ERROR (naming the receipt) on failure. Broker failures keep
    /// the connection open: the client did nothing wrong.
    pub(super) fn complete(
        &mut self,
        result: Result<(), BrokerError>,
        receipt: Option<String>,
        what: &str,
    ) {
        match result {
            Ok(()) => {
                if let Some(r) = receipt {
                    self.write(Frame::receipt(&r));
                }
            }
            Err(e) => self.broker_error(what, &e.to_string(), receipt.as_deref()),
        }
    }

    // ----- helpers -----

    /// A RECEIPT for a frame that touched no shard: at once if nothing this connection
    /// posted is unconfirmed, else after a barrier to every shard with unconfirmed work.
    pub(super) fn receipt_now(&mut self, receipt: Option<&str>) -> Result<(), SessionError> {
        let Some(receipt) = receipt else {
            return Ok(());
        };
        let shards: Vec<ShardId> = (0..self.inflight.len())
            .filter(|&s| {
                self.inflight[s] > 0 || self.unreplied_posted[s] > self.unreplied_confirmed[s]
            })
            .collect();
        if shards.is_empty() {
            self.write(Frame::receipt(receipt));
        } else {
            self.barrier(shards, AfterBarrier::Receipt(receipt.to_owned()));
        }
        Ok(())
    }

    pub(super) fn barrier(&mut self, shards: Vec<ShardId>, then: AfterBarrier) {
        let group = self.next_group;
        self.next_group += 1;
        self.barriers.insert(
            group,
            BarrierGroup {
                remaining: shards.len(),
                then,
            },
        );
        for shard in shards {
            // Everything unreplied on this shard so far is confirmed once the barrier
            // returns; recording it now (not at completion) keeps later posts counted.
            // Marking it early is safe: anything that checks before the barrier returns
            // sees `inflight > 0` for this shard and waits behind a newer barrier.
            self.unreplied_confirmed[shard] = self.unreplied_posted[shard];
            self.post_with_reply(shard, Pending::Barrier { group }, |reply| {
                Request::Barrier { reply }
            });
        }
    }

    pub(super) fn post_with_reply(
        &mut self,
        shard: ShardId,
        pending: Pending,
        make: impl FnOnce(Reply) -> Request,
    ) {
        let token = self.next_token;
        self.next_token += 1;
        self.pending.insert(token, (shard, pending));
        if let Some(n) = self.inflight.get_mut(shard) {
            *n += 1;
        }
        let reply = Reply {
            to: ReplyTo::Conn(self.ctx.conn),
            token,
        };
        self.post(shard, make(reply));
    }

    pub(super) fn post_unreplied(&mut self, shard: ShardId, request: Request) {
        if let Some(n) = self.unreplied_posted.get_mut(shard) {
            *n += 1;
        }
        self.post(shard, request);
    }
}
