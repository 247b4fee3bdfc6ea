//! The pair's three operations on etcd: campaign, update, resign (see the module doc
//! of [`super`] for the keys and why they are safe). Each is one etcd transaction.
//!
//! A request whose reply is lost may be retried on another member ([`super::etcd`]),
//! so each transaction is safe to apply twice: a campaign that finds the lease key
//! already attached to its own lease has won (the first attempt went through), and an
//! update writes the same bytes again.

use std::time::{Duration, Instant};

use super::etcd::{Bound, Compare, Etcd, LeaseId, Op};
use super::{Record, WitnessError};

/// The two keys of one pair, under its prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keys {
    /// `<prefix>/lease`: attached to the holder's lease; value = the holder's record.
    pub lease: Vec<u8>,
    /// `<prefix>/state`: no lease; the last record a holder wrote.
    pub state: Vec<u8>,
}

impl Keys {
    /// The keys under `prefix` (a trailing `/` is not doubled).
    pub fn new(prefix: &str) -> Keys {
        let prefix = prefix.trim_end_matches('/');
        Keys {
            lease: format!("{prefix}/lease").into_bytes(),
            state: format!("{prefix}/state").into_bytes(),
        }
    }
}

/// A precondition on `<prefix>/state` for a campaign.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Whatever it holds, or nothing.
    Any,
    /// The key does not exist: nobody ever held the right to serve (a fresh pair).
    Absent,
    /// Exactly this record (byte-equal: the encoding is canonical).
    Is(Record),
    /// A record written by `node` at `epoch`, whatever it says of the slave (a master
    /// restarting: nobody served after it). Read first, then compared exactly, so a
    /// change in between fails the transaction.
    WrittenBy { epoch: u64, node: u16 },
}

/// How a campaign ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Campaign {
    /// We hold `<prefix>/lease` and wrote the record to both keys.
    Won {
        lease: LeaseId,
        /// Taken before the grant request was sent: the lease lives at least until
        /// `granted_at + ttl`.
        granted_at: Instant,
        /// The TTL etcd granted (may exceed the one asked for).
        ttl: Duration,
    },
    /// Someone holds the lease key, or the state precondition failed. The unused lease
    /// was revoked.
    Lost {
        /// The record on `<prefix>/lease`: `None` if nobody holds it (then the
        /// precondition is what failed).
        holder: Option<Record>,
        /// The record on `<prefix>/state`, if any.
        state: Option<Record>,
    },
}

impl Etcd {
    /// Grants a lease of `ttl_secs`, then in one transaction: if nobody holds
    /// `<prefix>/lease` and `expect` holds for `<prefix>/state`, puts `record` on both
    /// (the lease key attached to the new lease). Otherwise revokes the new lease and
    /// reports what it found.
    ///
    /// An error after the grant leaves the lease to expire by itself (we revoke on a
    /// best-effort basis: the same etcd just failed us).
    pub fn campaign(
        &self,
        keys: &Keys,
        record: Record,
        expect: Expect,
        ttl_secs: u64,
    ) -> Result<Campaign, WitnessError> {
        // What the state key must hold, as an etcd comparison (none for `Any`).
        let state_compare = match expect {
            Expect::Any => None,
            Expect::Absent => Some(Compare::CreateRevision {
                key: keys.state.clone(),
                equals: 0,
            }),
            Expect::Is(r) => Some(Compare::Value {
                key: keys.state.clone(),
                equals: r.encode().into_bytes(),
            }),
            Expect::WrittenBy { epoch, node } => {
                let current = match self.get(&keys.state)? {
                    Some(kv) => Some(Record::decode(&kv.value)?),
                    None => None,
                };
                match current {
                    // Compared exactly in the transaction: a change since fails it.
                    Some(r) if r.epoch == epoch && r.node == node => Some(Compare::Value {
                        key: keys.state.clone(),
                        equals: r.encode().into_bytes(),
                    }),
                    state => {
                        let holder = match self.get(&keys.lease)? {
                            Some(kv) => Some(Record::decode(&kv.value)?),
                            None => None,
                        };
                        return Ok(Campaign::Lost { holder, state });
                    }
                }
            }
        };
        let granted_at = Instant::now();
        let lease = self.grant(ttl_secs)?;
        let mut compare = vec![Compare::CreateRevision {
            key: keys.lease.clone(),
            equals: 0,
        }];
        compare.extend(state_compare);
        let value = record.encode().into_bytes();
        let success = [
            Op::Put {
                key: keys.lease.clone(),
                value: value.clone(),
                lease: Some(lease.id),
            },
            Op::Put {
                key: keys.state.clone(),
                value,
                lease: None,
            },
        ];
        let failure = [
            Op::Range {
                key: keys.lease.clone(),
            },
            Op::Range {
                key: keys.state.clone(),
            },
        ];
        let outcome = match self.txn(&compare, &success, &failure, Bound::default()) {
            Ok(o) => o,
            Err(e) => {
                let _ = self.revoke(lease.id);
                return Err(e);
            }
        };
        let won = Campaign::Won {
            lease: lease.id,
            granted_at,
            ttl: lease.ttl,
        };
        if outcome.succeeded {
            return Ok(won);
        }
        let [holder_kv, state_kv] =
            <[_; 2]>::try_from(outcome.ranges).map_err(|_| missing_ranges())?;
        // A retried txn whose first attempt went through: the lease key is ours.
        if holder_kv.as_ref().and_then(|kv| kv.lease) == Some(lease.id) {
            return Ok(won);
        }
        // Nobody may use this lease now; if the revoke fails it expires after ttl.
        let _ = self.revoke(lease.id);
        let holder = holder_kv.map(|kv| Record::decode(&kv.value)).transpose()?;
        let state = state_kv.map(|kv| Record::decode(&kv.value)).transpose()?;
        Ok(Campaign::Lost { holder, state })
    }

    /// If `<prefix>/lease` is still attached to `lease`, puts `record` on both keys
    /// (the lease key stays attached to `lease`). False: we no longer hold it.
    pub fn update(
        &self,
        keys: &Keys,
        lease: LeaseId,
        record: Record,
    ) -> Result<bool, WitnessError> {
        self.update_by(keys, lease, record, Bound::default())
    }

    /// [`Etcd::update`] within `bound`.
    pub(crate) fn update_by(
        &self,
        keys: &Keys,
        lease: LeaseId,
        record: Record,
        bound: Bound,
    ) -> Result<bool, WitnessError> {
        let value = record.encode().into_bytes();
        let outcome = self.txn(
            &[Compare::Lease {
                key: keys.lease.clone(),
                equals: lease,
            }],
            &[
                Op::Put {
                    key: keys.lease.clone(),
                    value: value.clone(),
                    lease: Some(lease),
                },
                Op::Put {
                    key: keys.state.clone(),
                    value,
                    lease: None,
                },
            ],
            &[],
            bound,
        )?;
        Ok(outcome.succeeded)
    }

    /// Gives up the right to serve: revokes `lease`, and etcd deletes `<prefix>/lease`
    /// with it. `<prefix>/state` stays. Call only once the node no longer acts on the
    /// lease: the other node can win the moment this returns.
    pub fn resign(&self, lease: LeaseId) -> Result<(), WitnessError> {
        self.revoke(lease)
    }
}

/// `txn` checks that the failure branch returned one range per `Op::Range` (two).
fn missing_ranges() -> WitnessError {
    WitnessError::Protocol {
        endpoint: String::new(),
        why: "txn failure branch without two range replies".into(),
    }
}
