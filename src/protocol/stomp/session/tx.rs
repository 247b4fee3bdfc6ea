//! Transactions: BEGIN, ABORT and COMMIT. Operations buffered in a transaction are
//! grouped by their destination's shard at COMMIT: one shard takes a single `Commit`;
//! several run a two-phase commit coordinated by this connection's own shard (`Prepare`
//! to each participant, `RecordOutcome` on the coordinator, `Resolve` to each
//! participant, then the RECEIPT or ERROR). Also what happens to deliveries acknowledged
//! inside a transaction when it commits (forgotten) or aborts (outstanding again).

use std::collections::BTreeMap;

use super::super::frame::Frame;
use super::receipts::Pending;
use super::{required, Session, SessionEnv, SessionError};
use crate::broker::{BrokerError, GlobalTxId, Request, ShardId, TxOp};

#[derive(Debug, Default)]
pub(super) struct Transaction {
    pub(super) ops: Vec<TxOp>,
    /// (subscription number, ack number) of deliveries acknowledged inside it.
    pub(super) acked: Vec<(u64, u64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Prepare,
    Record,
    Resolve,
}

/// A commit spanning shards.
#[derive(Debug)]
pub(super) struct TwoPhase {
    pub(super) gtx: GlobalTxId,
    pub(super) receipt: Option<String>,
    pub(super) participants: Vec<ShardId>,
    pub(super) acked: Vec<(u64, u64)>,
    pub(super) phase: Phase,
    pub(super) remaining: usize,
    /// The first failure; decides the outcome (abort) and the ERROR text.
    pub(super) failure: Option<String>,
    pub(super) commit: bool,
}

impl<E: SessionEnv> Session<E> {
    // ----- transactions -----

    pub(super) fn begin(&mut self, frame: &Frame) -> Result<(), SessionError> {
        let tx = required(frame, "transaction")?;
        if self.transactions.contains_key(tx) {
            return Err(SessionError::DuplicateTransaction(tx.into()));
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
        let mut by_shard: BTreeMap<ShardId, Vec<TxOp>> = BTreeMap::new();
        for op in tx.ops {
            let shard = match &op {
                TxOp::Send(m) => self.shard_of(&m.destination),
                TxOp::Ack { destination, .. } => self.shard_of(destination),
            };
            by_shard.entry(shard).or_default().push(op);
        }
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
            n => {
                let gtx = self.new_gtx();
                let key = self.next_commit;
                self.next_commit += 1;
                let participants: Vec<ShardId> = by_shard.keys().copied().collect();
                self.commits.insert(
                    key,
                    TwoPhase {
                        gtx,
                        receipt,
                        participants,
                        acked,
                        phase: Phase::Prepare,
                        remaining: n,
                        failure: None,
                        commit: false,
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

    /// A global transaction id: the process start time's low 56 bits and the shard
    /// (unique across runs and shards), then the connection serial and a counter.
    pub(super) fn new_gtx(&mut self) -> GlobalTxId {
        let n = self.next_gtx;
        self.next_gtx = self.next_gtx.wrapping_add(1);
        let hi = (self.ctx.boot_nanos & ((1u64 << 56) - 1)) | ((self.ctx.conn.shard as u64) << 56);
        let lo = (self.ctx.conn.serial << 32) | u64::from(n);
        (u128::from(hi) << 64) | u128::from(lo)
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
        if let Err(e) = result {
            // Errors while resolving an abort are expected (a participant whose prepare
            // failed holds nothing) and change nothing.
            if (c.commit || c.phase != Phase::Resolve) && c.failure.is_none() {
                c.failure = Some(e.to_string());
            }
        }
        c.remaining = c.remaining.saturating_sub(1);
        if c.remaining > 0 {
            return;
        }
        let gtx = c.gtx;
        match c.phase {
            Phase::Prepare => {
                c.commit = c.failure.is_none();
                c.phase = Phase::Record;
                c.remaining = 1;
                let commit = c.commit;
                self.post_with_reply(own, Pending::TwoPhase { commit_key: key }, |reply| {
                    Request::RecordOutcome { gtx, commit, reply }
                });
            }
            Phase::Record => {
                // An outcome that could not be journaled is no commit: abort.
                if c.failure.is_some() {
                    c.commit = false;
                }
                c.phase = Phase::Resolve;
                c.remaining = c.participants.len();
                let commit = c.commit;
                let participants = c.participants.clone();
                for shard in participants {
                    self.post_with_reply(shard, Pending::TwoPhase { commit_key: key }, |reply| {
                        Request::Resolve { gtx, commit, reply }
                    });
                }
            }
            Phase::Resolve => {
                let Some(c) = self.commits.remove(&key) else {
                    return;
                };
                // Every participant has journaled its resolution: the coordinator's
                // outcome record is no longer needed for recovery.
                self.post(own, Request::ForgetOutcome { gtx });
                match (c.commit, c.failure) {
                    (true, None) => {
                        self.forget_acked(&c.acked);
                        if let Some(r) = c.receipt {
                            self.write(Frame::receipt(&r));
                        }
                    }
                    (_, failure) => {
                        self.release_tx_acks(&c.acked);
                        let why = failure.unwrap_or_else(|| "transaction aborted".into());
                        self.broker_error("Transaction failed", &why, c.receipt.as_deref());
                    }
                }
            }
        }
    }
}
