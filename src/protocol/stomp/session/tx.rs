//! Transactions: BEGIN, ABORT and COMMIT. Operations buffered in a transaction are
//! grouped by their destination's shard at COMMIT: one shard takes a single `Commit`;
//! several run the two-phase commit of `protocol::commit`, then the RECEIPT or ERROR. Also what happens to deliveries acknowledged
//! inside a transaction when it commits (forgotten) or aborts (outstanding again).

use super::super::frame::Frame;
use super::receipts::Pending;
use super::{required, Session, SessionEnv, SessionError};
use crate::broker::{BrokerError, Request, TxOp};
use crate::metrics::Limit;
use crate::protocol::commit::{global_tx_id, ops_by_shard, Coordinator, Next};
use crate::protocol::limits::{count_refusal, TxCharge};

#[derive(Debug, Default)]
pub(super) struct Transaction {
    pub(super) ops: Vec<TxOp>,
    /// (subscription number, ack number) of deliveries acknowledged inside it.
    pub(super) acked: Vec<(u64, u64)>,
    /// The memory its buffered sends hold (given back when it is dropped).
    pub(super) charge: TxCharge,
}

/// A commit spanning shards: the protocol's decisions, and whom to answer.
#[derive(Debug)]
pub(super) struct TwoPhase {
    coordinator: Coordinator,
    receipt: Option<String>,
    acked: Vec<(u64, u64)>,
    /// Replies the current phase still waits for.
    remaining: usize,
}

impl<E: SessionEnv> Session<E> {
    // ----- transactions -----

    pub(super) fn begin(&mut self, frame: &Frame) -> Result<(), SessionError> {
        let tx = required(frame, "transaction")?;
        if self.transactions.contains_key(tx) {
            return Err(SessionError::DuplicateTransaction(tx.into()));
        }
        let max = self.ctx.settings.limits.max_transactions_per_connection;
        if self.transactions.len() >= max {
            self.ctx.registries.limits.refused(Limit::Transactions);
            let why = count_refusal("open transactions", "maxTransactionsPerConnection", max);
            self.broker_error(&why, &why, frame.header("receipt"));
            return Ok(());
        }
        self.transactions
            .insert(tx.to_owned(), Transaction::default());
        self.receipt_now(frame.header("receipt"))
    }

    pub(super) fn abort(&mut self, frame: &Frame) -> Result<(), SessionError> {
        let name = required(frame, "transaction")?;
        let tx = self
            .transactions
            .remove(name)
            .ok_or_else(|| SessionError::UnknownTransaction(name.into()))?;
        // ActiveMQ puts deliveries acknowledged inside an aborted transaction back on
        // the connection as unacknowledged.
        self.release_tx_acks(&tx.acked);
        self.receipt_now(frame.header("receipt"))
    }

    pub(super) fn commit(&mut self, frame: &Frame) -> Result<(), SessionError> {
        let name = required(frame, "transaction")?;
        let tx = self
            .transactions
            .remove(name)
            .ok_or_else(|| SessionError::UnknownTransaction(name.into()))?;
        let receipt = frame.header("receipt").map(str::to_owned);
        let by_shard = ops_by_shard(tx.ops, |d| self.shard_of(d));
        let acked = tx.acked;
        match by_shard.len() {
            0 => {
                self.forget_acked(&acked);
                self.receipt_now(receipt.as_deref())
            }
            1 => {
                let Some((shard, ops)) = by_shard.into_iter().next() else {
                    return Ok(());
                };
                self.post_with_reply(shard, Pending::Commit { receipt, acked }, |reply| {
                    Request::Commit { ops, reply }
                });
                Ok(())
            }
            _ => {
                let n = self.next_gtx;
                self.next_gtx = self.next_gtx.wrapping_add(1);
                let gtx = global_tx_id(self.ctx.boot_nanos, self.ctx.conn, n);
                let coordinator = Coordinator::new(gtx, by_shard.keys().copied().collect());
                let key = self.next_commit;
                self.next_commit += 1;
                self.commits.insert(
                    key,
                    TwoPhase {
                        remaining: coordinator.replies_expected(),
                        coordinator,
                        receipt,
                        acked,
                    },
                );
                for (shard, ops) in by_shard {
                    self.post_with_reply(shard, Pending::TwoPhase { commit_key: key }, |reply| {
                        Request::Prepare { gtx, ops, reply }
                    });
                }
                Ok(())
            }
        }
    }

    /// A limit refused a send in transaction `name`: it is rolled back (its sends
    /// forgotten, its acknowledged deliveries outstanding again) and the client told
    /// why; the connection stays open and later frames naming the transaction get
    /// "Invalid transaction id".
    pub(super) fn refuse_transaction(&mut self, name: &str, why: &str, receipt: Option<&str>) {
        if let Some(tx) = self.transactions.remove(name) {
            self.release_tx_acks(&tx.acked);
        }
        tracing::debug!(conn = ?self.ctx.conn, transaction = name, why, "transaction refused");
        self.broker_error(why, &format!("transaction '{name}': {why}"), receipt);
    }

    pub(super) fn release_tx_acks(&mut self, acked: &[(u64, u64)]) {
        for &(num, ack_no) in acked {
            if let Some(sub) = self.subs.get_mut(&num) {
                if let Some(o) = sub.outstanding.iter_mut().find(|o| o.ack_no == ack_no) {
                    o.in_tx = None;
                }
            }
        }
    }

    pub(super) fn forget_acked(&mut self, acked: &[(u64, u64)]) {
        for &(num, ack_no) in acked {
            self.ack_owner.remove(&ack_no);
            if let Some(sub) = self.subs.get_mut(&num) {
                sub.outstanding.retain(|o| o.ack_no != ack_no);
            }
        }
    }

    pub(super) fn two_phase_step(&mut self, key: u64, result: Result<(), BrokerError>) {
        let own = self.ctx.conn.shard;
        let Some(c) = self.commits.get_mut(&key) else {
            return;
        };
        c.coordinator.note(result);
        c.remaining = c.remaining.saturating_sub(1);
        if c.remaining > 0 {
            return;
        }
        let gtx = c.coordinator.gtx();
        let next = c.coordinator.advance();
        c.remaining = c.coordinator.replies_expected();
        match next {
            Next::RecordOutcome { commit } => {
                self.post_with_reply(own, Pending::TwoPhase { commit_key: key }, |reply| {
                    Request::RecordOutcome { gtx, commit, reply }
                });
            }
            Next::Resolve { commit } => {
                let participants = c.coordinator.participants().to_vec();
                for shard in participants {
                    self.post_with_reply(shard, Pending::TwoPhase { commit_key: key }, |reply| {
                        Request::Resolve { gtx, commit, reply }
                    });
                }
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
                        if let Some(r) = c.receipt {
                            self.write(Frame::receipt(&r));
                        }
                    }
                    Err(why) => {
                        self.release_tx_acks(&c.acked);
                        self.broker_error(
                            "Transaction failed",
                            &why.to_string(),
                            c.receipt.as_deref(),
                        );
                    }
                }
            }
        }
    }
}
