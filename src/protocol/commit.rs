//! Committing a client's local transaction, shared by both protocol sessions.
//!
//! A transaction's buffered operations are grouped by their destination's shard
//! ([`ops_by_shard`]). One shard takes them as a single `Commit`. Several run a two-phase
//! commit coordinated by the client connection's own shard:
//!
//! ```text
//!  Prepare  -> every participant journals its operations as prepared
//!  Record   -> the coordinator journals the outcome (commit iff every prepare succeeded)
//!  Resolve  -> every participant commits or discards what it prepared
//!  done     -> the client is answered; the coordinator may forget the outcome
//! ```
//!
//! [`Coordinator`] holds the decisions of that protocol (what comes next, what the
//! outcome is, which failures count); the sessions only post the requests it names
//! and answer their client in their own protocol. It never waits or posts by itself.

use std::collections::BTreeMap;

use crate::broker::{BrokerError, ConnId, GlobalTxId, ShardId, TxOp};

/// Groups `ops` by the shard that owns their destination (`shard_of`).
pub fn ops_by_shard(
    ops: Vec<TxOp>,
    shard_of: impl Fn(&crate::broker::Destination) -> ShardId,
) -> BTreeMap<ShardId, Vec<TxOp>> {
    let mut by_shard: BTreeMap<ShardId, Vec<TxOp>> = BTreeMap::new();
    for op in ops {
        let shard = match &op {
            TxOp::Send(m) => shard_of(&m.destination),
            TxOp::Ack { destination, .. } => shard_of(destination),
        };
        by_shard.entry(shard).or_default().push(op);
    }
    by_shard
}

/// A global transaction id, unique across process runs, shards and connections: the
/// process start's low 56 bits and the shard, then the connection serial and the
/// connection's own counter `n`.
pub fn global_tx_id(boot_nanos: u64, conn: ConnId, n: u32) -> GlobalTxId {
    let hi = (boot_nanos & ((1u64 << 56) - 1)) | ((conn.shard as u64) << 56);
    let lo = (conn.serial << 32) | u64::from(n);
    (u128::from(hi) << 64) | u128::from(lo)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// All operations on one shard: one `Commit`, nothing else.
    Single,
    Prepare,
    Record,
    Resolve,
}

/// What the session must do once every reply of the current phase is in.
#[derive(Debug, PartialEq)]
pub enum Next {
    /// Post `RecordOutcome { gtx, commit }` to the connection's own shard.
    RecordOutcome { commit: bool },
    /// Post `Resolve { gtx, commit }` to every participant.
    Resolve { commit: bool },
    /// Answer the client: committed (`Ok`) or rolled back with the first failure.
    /// `forget_outcome`: post `ForgetOutcome { gtx }` to the own shard (every
    /// participant journaled its resolution, recovery no longer needs the record).
    Finished {
        result: Result<(), BrokerError>,
        forget_outcome: bool,
    },
}

/// One commit in progress.
#[derive(Debug)]
pub struct Coordinator {
    gtx: GlobalTxId,
    participants: Vec<ShardId>,
    phase: Phase,
    /// The first failure: decides the outcome (abort) and the client's error text.
    failure: Option<BrokerError>,
    /// The decided outcome (meaningful from `Record` on).
    commit: bool,
}

impl Coordinator {
    /// A commit of `participants` (as many shards as [`ops_by_shard`] gave): the session
    /// posts `Commit` to the one participant, or `Prepare { gtx }` to each.
    pub fn new(gtx: GlobalTxId, participants: Vec<ShardId>) -> Coordinator {
        assert!(!participants.is_empty(), "a commit has a participant");
        let phase = if participants.len() == 1 {
            Phase::Single
        } else {
            Phase::Prepare
        };
        Coordinator {
            gtx,
            participants,
            phase,
            failure: None,
            commit: false,
        }
    }

    pub fn gtx(&self) -> GlobalTxId {
        self.gtx
    }

    pub fn participants(&self) -> &[ShardId] {
        &self.participants
    }

    /// Whether this is a one-shard commit (a `Commit` request, no phases).
    pub fn is_single(&self) -> bool {
        self.phase == Phase::Single
    }

    /// How many replies the current phase waits for.
    pub fn replies_expected(&self) -> usize {
        match self.phase {
            Phase::Single | Phase::Record => 1,
            Phase::Prepare | Phase::Resolve => self.participants.len(),
        }
    }

    /// One reply of the current phase.
    pub fn note(&mut self, result: Result<(), BrokerError>) {
        if let Err(e) = result {
            // Errors while resolving an abort are expected (a participant whose
            // prepare failed holds nothing) and change nothing.
            let resolving_abort = self.phase == Phase::Resolve && !self.commit;
            if !resolving_abort && self.failure.is_none() {
                self.failure = Some(e);
            }
        }
    }

    /// Every reply of the current phase is in: move on.
    pub fn advance(&mut self) -> Next {
        match self.phase {
            Phase::Prepare => {
                self.commit = self.failure.is_none();
                self.phase = Phase::Record;
                Next::RecordOutcome {
                    commit: self.commit,
                }
            }
            Phase::Record => {
                // An outcome that could not be journaled is no commit: abort.
                if self.failure.is_some() {
                    self.commit = false;
                }
                self.phase = Phase::Resolve;
                Next::Resolve {
                    commit: self.commit,
                }
            }
            Phase::Single | Phase::Resolve => {
                // An abort always has its cause: a failed prepare or outcome record.
                debug_assert!(
                    self.phase != Phase::Resolve || self.commit || self.failure.is_some()
                );
                let result = self.failure.take().map_or(Ok(()), Err);
                Next::Finished {
                    result,
                    forget_outcome: self.phase == Phase::Resolve,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure() -> BrokerError {
        BrokerError::from(crate::store::StoreError::Failed("disk full".into()))
    }

    #[test]
    fn one_shard_is_one_commit() {
        let mut c = Coordinator::new(7, vec![1]);
        assert!(c.is_single());
        assert_eq!(c.replies_expected(), 1);
        c.note(Ok(()));
        assert_eq!(
            c.advance(),
            Next::Finished {
                result: Ok(()),
                forget_outcome: false
            }
        );
    }

    #[test]
    fn all_prepared_commits_and_forgets_the_outcome() {
        let mut c = Coordinator::new(7, vec![0, 1]);
        assert_eq!(c.replies_expected(), 2);
        c.note(Ok(()));
        c.note(Ok(()));
        assert_eq!(c.advance(), Next::RecordOutcome { commit: true });
        assert_eq!(c.replies_expected(), 1);
        c.note(Ok(()));
        assert_eq!(c.advance(), Next::Resolve { commit: true });
        assert_eq!(c.replies_expected(), 2);
        c.note(Ok(()));
        c.note(Ok(()));
        assert_eq!(
            c.advance(),
            Next::Finished {
                result: Ok(()),
                forget_outcome: true
            }
        );
    }

    #[test]
    fn a_failed_prepare_aborts_and_abort_errors_are_ignored() {
        let mut c = Coordinator::new(7, vec![0, 1]);
        c.note(Ok(()));
        c.note(Err(failure()));
        assert_eq!(c.advance(), Next::RecordOutcome { commit: false });
        c.note(Ok(()));
        assert_eq!(c.advance(), Next::Resolve { commit: false });
        // The participant that failed to prepare has nothing to resolve.
        c.note(Err(BrokerError::from(crate::store::StoreError::Failed(
            "nothing prepared".into(),
        ))));
        assert_eq!(
            c.advance(),
            Next::Finished {
                result: Err(failure()),
                forget_outcome: true
            }
        );
    }

    #[test]
    fn an_outcome_not_journaled_is_an_abort() {
        let mut c = Coordinator::new(7, vec![0, 1]);
        c.note(Ok(()));
        c.note(Ok(()));
        assert_eq!(c.advance(), Next::RecordOutcome { commit: true });
        c.note(Err(failure()));
        assert_eq!(c.advance(), Next::Resolve { commit: false });
        c.note(Ok(()));
        c.note(Ok(()));
        assert!(matches!(
            c.advance(),
            Next::Finished {
                result: Err(_),
                forget_outcome: true
            }
        ));
    }

    #[test]
    fn transaction_ids_differ_by_shard_connection_and_counter() {
        let a = ConnId {
            shard: 0,
            serial: 1,
        };
        let b = ConnId {
            shard: 1,
            serial: 1,
        };
        let ids = [
            global_tx_id(5, a, 0),
            global_tx_id(5, a, 1),
            global_tx_id(5, b, 0),
            global_tx_id(6, a, 0),
        ];
        for (i, x) in ids.iter().enumerate() {
            assert!(ids[i + 1..].iter().all(|y| y != x), "{ids:?}");
        }
    }
}
