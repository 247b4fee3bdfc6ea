//! Local transactions (TransactionInfo BEGIN / COMMIT_ONE_PHASE / ROLLBACK; XA is
//! refused). Transacted sends and acks are buffered per transaction id. COMMIT groups
//! them by their destination's shard: one shard takes a single `Commit`; several run
//! the same two-phase commit as STOMP's (coordinated by this connection's own shard:
//! `Prepare` to each participant, `RecordOutcome` on the coordinator, `Resolve` to each
//! participant), and the Response goes out at the end. ROLLBACK forgets the buffered
//! operations and leaves the acknowledged messages outstanding to the same consumer:
//! the JMS client redelivers them itself (OPENWIRE.md §3.3).

use std::collections::BTreeMap;

use super::super::{ConsumerId, TransactionInfo, TransactionType};
use super::{Refusal, Session, Then, JAVA_JMS, JAVA_ROLLED_BACK};
use crate::broker::{BrokerError, GlobalTxId, Request, ShardId, TxOp};
use crate::protocol::SessionEnv;

#[derive(Debug, Default)]
pub(super) struct Transaction {
    pub(super) ops: Vec<TxOp>,
    /// (consumer, sequence number) of deliveries acknowledged inside it.
    pub(super) acked: Vec<(ConsumerId, u64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// All operations on one shard: one `Commit`.
    Single,
    Prepare,
    Record,
    Resolve,
}

/// A commit in progress.
#[derive(Debug)]
pub(super) struct TwoPhase {
    gtx: GlobalTxId,
    correlation: Option<i32>,
    participants: Vec<ShardId>,
    acked: Vec<(ConsumerId, u64)>,
    phase: Phase,
    /// The first failure; decides the outcome (abort) and the exception text.
    failure: Option<BrokerError>,
    commit: bool,
}

impl<E: SessionEnv> Session<E> {
    pub(super) fn transaction(&mut self, t: TransactionInfo) -> Result<(), Refusal> {
        let header = t.header;
        let Some(txid) = t.transaction_id else {
            return Err(Refusal::new(
                JAVA_JMS,
                "TransactionInfo without a transaction id",
            ));
        };
        match t.transaction_type {
            TransactionType::Begin => {
                self.transactions.entry(txid).or_default();
                self.respond_ok(header)
            }
            TransactionType::Rollback => {
                if let Some(tx) = self.transactions.remove(&txid) {
                    self.release_tx_acks(&tx.acked);
                }
                self.respond_ok(header)
            }
            TransactionType::CommitOnePhase => {
                let tx = self.transactions.remove(&txid).unwrap_or_default();
                let correlation = header.response_required.then_some(header.command_id);
                self.commit(tx, correlation);
                Ok(())
            }
            other => Err(Refusal::new(
                JAVA_JMS,
                format!("XA transactions are not supported by Tandem ({other:?})"),
            )),
        }
    }

    fn commit(&mut self, tx: Transaction, correlation: Option<i32>) {
        let mut by_shard: BTreeMap<ShardId, Vec<TxOp>> = BTreeMap::new();
        for op in tx.ops {
            let shard = match &op {
                TxOp::Send(m) => self.shard_of(&m.destination),
                TxOp::Ack { destination, .. } => self.shard_of(destination),
            };
            by_shard.entry(shard).or_default().push(op);
        }
        if by_shard.is_empty() {
            self.forget_acked(&tx.acked);
            self.respond(correlation, Ok(()), false);
            return;
        }
        let key = self.next_commit;
        self.next_commit += 1;
        let single = by_shard.len() == 1;
        let gtx = self.new_gtx();
        self.commits.insert(
            key,
            TwoPhase {
                gtx,
                correlation,
                participants: by_shard.keys().copied().collect(),
                acked: tx.acked,
                phase: if single {
                    Phase::Single
                } else {
                    Phase::Prepare
                },
                failure: None,
                commit: false,
            },
        );
        self.group(Then::Commit { key }, |s, g| {
            for (shard, ops) in by_shard {
                if single {
                    s.post_in(g, shard, |reply| Request::Commit { ops, reply });
                } else {
                    s.post_in(g, shard, |reply| Request::Prepare { gtx, ops, reply });
                }
            }
        });
    }

    /// One phase of commit `key` is complete (`result`: its first failure).
    pub(super) fn commit_step(&mut self, key: u64, result: Result<(), BrokerError>) {
        let own = self.ctx.conn.shard;
        let Some(c) = self.commits.get_mut(&key) else {
            return;
        };
        if let Err(e) = result {
            // Errors while resolving an abort are expected (a participant whose
            // prepare failed holds nothing) and change nothing.
            if (c.commit || c.phase != Phase::Resolve) && c.failure.is_none() {
                c.failure = Some(e);
            }
        }
        let gtx = c.gtx;
        match c.phase {
            Phase::Prepare => {
                c.commit = c.failure.is_none();
                c.phase = Phase::Record;
                let commit = c.commit;
                self.post_one(Then::Commit { key }, own, |reply| Request::RecordOutcome {
                    gtx,
                    commit,
                    reply,
                });
            }
            Phase::Record => {
                // An outcome that could not be journaled is no commit: abort.
                if c.failure.is_some() {
                    c.commit = false;
                }
                c.phase = Phase::Resolve;
                let commit = c.commit;
                let participants = c.participants.clone();
                self.group(Then::Commit { key }, |s, g| {
                    for shard in participants {
                        s.post_in(g, shard, |reply| Request::Resolve { gtx, commit, reply });
                    }
                });
            }
            Phase::Single | Phase::Resolve => {
                let Some(c) = self.commits.remove(&key) else {
                    return;
                };
                if c.phase == Phase::Resolve {
                    // Every participant journaled its resolution: the coordinator's
                    // outcome record is no longer needed for recovery.
                    self.post(own, Request::ForgetOutcome { gtx });
                }
                let ok = match c.phase {
                    Phase::Single => c.failure.is_none(),
                    _ => c.commit && c.failure.is_none(),
                };
                if ok {
                    self.forget_acked(&c.acked);
                    self.respond(c.correlation, Ok(()), false);
                } else {
                    self.release_tx_acks(&c.acked);
                    let why = c
                        .failure
                        .map(|e| e.to_string())
                        .unwrap_or_else(|| "transaction aborted".into());
                    let refusal = Refusal::new(JAVA_ROLLED_BACK, format!("commit failed: {why}"));
                    match c.correlation {
                        Some(corr) => self.write(super::Command::ExceptionResponse(
                            super::ExceptionResponse::new(corr, refusal.throwable()),
                        )),
                        None => self.connection_error(refusal.throwable()),
                    }
                }
            }
        }
    }

    /// A global transaction id: the process start's low 56 bits and the shard (unique
    /// across runs and shards), then the connection serial and a counter. Unused for a
    /// single-shard commit.
    fn new_gtx(&mut self) -> GlobalTxId {
        let n = self.next_gtx;
        self.next_gtx = self.next_gtx.wrapping_add(1);
        let hi = (self.ctx.boot_nanos & ((1u64 << 56) - 1)) | ((self.ctx.conn.shard as u64) << 56);
        let lo = (self.ctx.conn.serial << 32) | u64::from(n);
        (u128::from(hi) << 64) | u128::from(lo)
    }

    /// After a rollback (or a failed commit): the messages are outstanding again, to
    /// the same consumer.
    fn release_tx_acks(&mut self, acked: &[(ConsumerId, u64)]) {
        for (cid, seq) in acked {
            if let Some(c) = self.consumers.get_mut(cid) {
                if let Some(o) = c.outstanding.iter_mut().find(|o| o.seq == *seq) {
                    o.in_tx = None;
                }
            }
        }
    }

    fn forget_acked(&mut self, acked: &[(ConsumerId, u64)]) {
        let mut touched: Vec<ConsumerId> = Vec::new();
        for (cid, seq) in acked {
            if let Some(c) = self.consumers.get_mut(cid) {
                c.outstanding.retain(|o| o.seq != *seq);
                if !touched.contains(cid) {
                    touched.push(cid.clone());
                }
            }
        }
        for cid in touched {
            self.update_window(&cid);
        }
    }
}
