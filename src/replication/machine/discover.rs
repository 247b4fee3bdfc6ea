//! Finding a role: discovery (attach to the peer, or serve when nobody answers and this
//! node may), campaigns for the witness's lease, and starting to serve or follow.

use std::time::Duration;

use super::*;

impl Machine {
    pub(super) fn start_discovery(&mut self, now: Duration, out: &mut Vec<Effect>) {
        self.phase = Phase::Discovering {
            next_attempt: now,
            attempting: false,
        };
        self.discover(now, out);
    }

    pub(super) fn discover(&mut self, now: Duration, out: &mut Vec<Effect>) {
        let Phase::Discovering {
            next_attempt,
            attempting,
        } = &mut self.phase
        else {
            return;
        };
        if *attempting || now < *next_attempt {
            return;
        }
        if !self.s.has_peer {
            self.serve_or_campaign(now, Campaign::Start, out);
            return;
        }
        *attempting = true;
        out.push(Effect::Attach);
    }

    /// Whether this node may serve when nobody answers: it was the last master, or a
    /// fresh node that is not configured to follow one. A slave never does: its copy
    /// may be behind.
    pub(super) fn may_serve_alone(&self) -> bool {
        matches!(
            (self.s.configured_master, self.role),
            (_, Some(Role::Master | Role::Standalone)) | (false, None)
        )
    }

    pub(super) fn on_attach(&mut self, now: Duration, r: AttachResult, out: &mut Vec<Effect>) {
        let Phase::Discovering {
            attempting,
            next_attempt,
        } = &mut self.phase
        else {
            return;
        };
        *attempting = false;
        *next_attempt = now + self.s.retry;
        match r {
            AttachResult::Welcomed { epoch } => {
                if epoch < self.epoch {
                    // The core never passes such a Welcome (auth::judge_answer).
                    return;
                }
                self.follow(now, epoch, out);
            }
            AttachResult::Refused {
                epoch,
                stale,
                reason,
            } => {
                self.seen(epoch);
                if !(stale && epoch < self.epoch) {
                    self.phase = Phase::Stopped;
                    out.push(Effect::Exit {
                        code: 1,
                        reason: format!("refused by master: {reason}"),
                    });
                }
            }
            AttachResult::RefusedUnproven => {}
            AttachResult::Unreachable => {
                if self.may_serve_alone() {
                    self.serve_or_campaign(now, Campaign::Start, out);
                }
            }
            AttachResult::NoLogin(reason) => {
                self.phase = Phase::Stopped;
                out.push(Effect::Exit { code: 1, reason });
            }
        }
    }

    pub(super) fn follow(&mut self, now: Duration, epoch: u64, out: &mut Vec<Effect>) {
        self.seen(epoch);
        self.epoch = epoch;
        self.role = Some(Role::Slave);
        self.s.has_peer = true;
        self.phase = Phase::Following {
            master_epoch: epoch,
            in_sync: false,
            last_heard: now,
            probing: false,
        };
        out.push(Effect::Follow { epoch });
    }

    pub(super) fn seen(&mut self, epoch: u64) {
        self.highest_seen = self.highest_seen.max(epoch);
    }

    pub(super) fn next_epoch(&self) -> u64 {
        let counter = self.highest_seen.max(self.epoch) >> 16;
        (counter + 1) << 16 | u64::from(self.s.node_id)
    }

    pub(super) fn serve_or_campaign(
        &mut self,
        now: Duration,
        why: Campaign,
        out: &mut Vec<Effect>,
    ) {
        if !self.s.witness {
            self.serve(now, why, None, out);
            return;
        }
        self.phase = Phase::Campaigning {
            why,
            next_attempt: now,
            pending: None,
        };
        self.campaign(now, out);
    }

    pub(super) fn claim_for(&self, why: Campaign) -> (Claim, Expect) {
        let node = self.s.node_id;
        match why {
            Campaign::Start => {
                let claim = Claim {
                    epoch: self.next_epoch(),
                    node,
                    in_sync: None,
                };
                let expect = if self.epoch == 0 {
                    Expect::Absent
                } else {
                    Expect::WrittenBy {
                        epoch: self.epoch,
                        node,
                    }
                };
                (claim, expect)
            }
            Campaign::Takeover { master_epoch } => {
                let claim = Claim {
                    epoch: self.next_epoch(),
                    node,
                    in_sync: None,
                };
                // The record the master wrote when it declared this node in sync (an
                // epoch's low 16 bits are the id of the node that serves it).
                let expect = Expect::Is(Claim {
                    epoch: master_epoch,
                    node: epoch_node(master_epoch),
                    in_sync: Some(node),
                });
                (claim, expect)
            }
            Campaign::Regain => {
                let claim = match &self.phase {
                    Phase::Serving(sv) => sv.recorded.unwrap_or(Claim {
                        epoch: self.epoch,
                        node,
                        in_sync: None,
                    }),
                    _ => Claim {
                        epoch: self.epoch,
                        node,
                        in_sync: None,
                    },
                };
                (claim, Expect::Is(claim))
            }
        }
    }

    pub(super) fn campaign(&mut self, now: Duration, out: &mut Vec<Effect>) {
        let Phase::Campaigning {
            why,
            next_attempt,
            pending,
        } = &self.phase
        else {
            return;
        };
        if pending.is_some() || now < *next_attempt {
            return;
        }
        let why = *why;
        let (claim, expect) = self.claim_for(why);
        if let Phase::Campaigning { pending, .. } = &mut self.phase {
            *pending = Some(claim);
        }
        out.push(Effect::Campaign { claim, expect });
    }

    pub(super) fn serve(
        &mut self,
        now: Duration,
        why: Campaign,
        lease: Option<(Duration, Claim)>,
        out: &mut Vec<Effect>,
    ) {
        let epoch = match lease {
            Some((_, claim)) => claim.epoch,
            None => self.next_epoch(),
        };
        self.epoch = epoch;
        self.seen(epoch);
        self.role = Some(Role::Master);
        let takeover = matches!(why, Campaign::Takeover { .. });
        self.phase = Phase::Serving(Serving {
            takeover,
            slave: None,
            verify: false,
            probing: false,
            last_probe: now,
            lease_until: lease.map(|(u, _)| u),
            lease_lost_at: None,
            recorded: lease.map(|(_, c)| c),
            updating: false,
            regaining: false,
            granted: None,
        });
        // The grant first: the shards hold it before they serve anybody.
        self.regrant(now, out);
        out.push(Effect::Serve { epoch, takeover });
    }
}
