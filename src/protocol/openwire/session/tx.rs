//! Local transactions (TransactionInfo BEGIN / COMMIT_ONE_PHASE / ROLLBACK; XA is
//! refused). Transacted sends and acks are buffered per transaction id. COMMIT groups
//! them by their destination's shard and runs `protocol::commit` (one `Commit`, or the
//! two-phase commit STOMP uses too); the Response goes out at the end. ROLLBACK forgets the buffered
//! operations and leaves the acknowledged messages outstanding to the same consumer:
//! the JMS client redelivers them itself (OPENWIRE.md §3.3).

use super::super::{ConsumerId, TransactionInfo, TransactionType};
use super::{Refusal, Session, Then, JAVA_JMS, JAVA_RESOURCE_ALLOCATION, JAVA_ROLLED_BACK};
use crate::broker::{BrokerError, Request, TxOp};
use crate::metrics::Limit;
use crate::protocol::commit::{global_tx_id, ops_by_shard, Coordinator, Next};
use crate::protocol::limits::{count_refusal, TxCharge};
use crate::protocol::SessionEnv;

#[derive(Debug, Default)]
pub(super) struct Transaction {
    pub(super) ops: Vec<TxOp>,
    /// (consumer, sequence number) of deliveries acknowledged inside it.
    pub(super) acked: Vec<(ConsumerId, u64)>,
    /// The memory its buffered sends hold (given back when it is dropped).
    pub(super) charge: TxCharge,
    /// A limit rolled it back (the text says which): later sends in it are dropped and
    /// its COMMIT fails with that text (an async send has no answer of its own).
    pub(super) failed: Option<String>,
}

/// A commit in progress: the protocol's decisions, and whom to answer.
#[derive(Debug)]
pub(super) struct TwoPhase {
    coordinator: Coordinator,
    correlation: Option<i32>,
    acked: Vec<(ConsumerId, u64)>,
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
                let max = self.ctx.settings.limits.max_transactions_per_connection;
                if !self.transactions.contains_key(&txid) && self.transactions.len() >= max {
                    self.ctx.registries.limits.refused(Limit::Transactions);
                    return Err(Refusal::new(
                        JAVA_RESOURCE_ALLOCATION,
                        count_refusal("open transactions", "maxTransactionsPerConnection", max),
                    ));
                }
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
        if let Some(why) = tx.failed {
            self.release_tx_acks(&tx.acked);
            let refusal = Refusal::new(JAVA_ROLLED_BACK, why);
            match correlation {
                Some(corr) => self.write(super::Command::ExceptionResponse(
                    super::ExceptionResponse::new(corr, refusal.throwable()),
                )),
                None => self.connection_error(refusal.throwable()),
            }
            return;
        }
        let by_shard = ops_by_shard(tx.ops, |d| self.shard_of(d));
        if by_shard.is_empty() {
            self.forget_acked(&tx.acked);
            self.respond(correlation, Ok(()), false);
            return;
        }
        let key = self.next_commit;
        self.next_commit += 1;
        let n = self.next_gtx;
        self.next_gtx = self.next_gtx.wrapping_add(1);
        let gtx = global_tx_id(self.ctx.boot_nanos, self.ctx.conn, n);
        let coordinator = Coordinator::new(gtx, by_shard.keys().copied().collect());
        let single = coordinator.is_single();
        self.commits.insert(
            key,
            TwoPhase {
                coordinator,
                correlation,
                acked: tx.acked,
            },
        );
        // A group answers once with its first failure: one `note` per phase.
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
        c.coordinator.note(result);
        let gtx = c.coordinator.gtx();
        match c.coordinator.advance() {
            Next::RecordOutcome { commit } => {
                self.post_one(Then::Commit { key }, own, |reply| Request::RecordOutcome {
                    gtx,
                    commit,
                    reply,
                });
            }
            Next::Resolve { commit } => {
                let participants = c.coordinator.participants().to_vec();
                self.group(Then::Commit { key }, |s, g| {
                    for shard in participants {
                        s.post_in(g, shard, |reply| Request::Resolve { gtx, commit, reply });
                    }
                });
            }
            Next::Finished {
                result,
                forget_outcome,
            } => {
                let Some(c) = self.commits.remove(&key) else {
                    return;
                };
                if forget_outcome {
                    self.post(own, Request::ForgetOutcome { gtx });
                }
                match result {
                    Ok(()) => {
                        self.forget_acked(&c.acked);
                        self.respond(c.correlation, Ok(()), false);
                    }
                    Err(why) => {
                        self.release_tx_acks(&c.acked);
                        let refusal =
                            Refusal::new(JAVA_ROLLED_BACK, format!("commit failed: {why}"));
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
    }

    /// A limit refused a send in `txid`: the transaction is rolled back now (its sends
    /// forgotten, its memory given back, its acknowledged deliveries outstanding
    /// again) and remembered as failed, so its COMMIT fails with `why`.
    pub(super) fn fail_transaction(&mut self, txid: &super::super::TransactionId, why: String) {
        let Some(tx) = self.transactions.get_mut(txid) else {
            return;
        };
        tx.ops = Vec::new();
        tx.charge = TxCharge::default();
        tx.failed = Some(why);
        let acked = std::mem::take(&mut tx.acked);
        self.release_tx_acks(&acked);
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
