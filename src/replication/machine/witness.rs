//! What the witness agent reports, for each phase.

use std::time::Duration;

use super::*;

impl Machine {
    pub(super) fn on_witness(&mut self, now: Duration, w: WitnessInput, out: &mut Vec<Effect>) {
        match (&mut self.phase, w) {
            (Phase::Campaigning { why, pending, .. }, WitnessInput::Won { valid_until }) => {
                let why = *why;
                let Some(claim) = pending.take() else { return };
                self.serve(now, why, Some((valid_until, claim)), out);
            }
            (
                Phase::Campaigning {
                    why,
                    pending,
                    next_attempt,
                },
                WitnessInput::Lost { state },
            ) => {
                *pending = None;
                *next_attempt = now + self.s.retry;
                let why = *why;
                if let Some(c) = state {
                    self.seen(c.epoch);
                }
                match why {
                    Campaign::Takeover { master_epoch, .. } => {
                        // The master still holds the lease (alive, cut from us only),
                        // or the record no longer names us in sync (it served alone):
                        // our copy may be stale. Wait for a master instead.
                        let newer =
                            state.is_some_and(|c| c.epoch > master_epoch || c.in_sync.is_none());
                        if newer {
                            self.role = Some(Role::Slave);
                            self.phase = Phase::Discovering {
                                next_attempt: now + self.s.retry,
                                attempting: false,
                            };
                        }
                    }
                    Campaign::Start => {
                        if state.is_some_and(|c| c.node != self.s.node_id || c.epoch > self.epoch) {
                            // Somebody else served since: find it and follow.
                            self.phase = Phase::Discovering {
                                next_attempt: now + self.s.retry,
                                attempting: false,
                            };
                        }
                    }
                    Campaign::Regain => {}
                }
            }
            (
                Phase::Campaigning {
                    pending,
                    next_attempt,
                    ..
                },
                WitnessInput::Unreachable,
            ) => {
                *pending = None;
                *next_attempt = now + self.s.retry;
            }
            (Phase::Serving(sv), WitnessInput::Won { valid_until }) => {
                sv.regaining = false;
                sv.lease_until = Some(valid_until);
                self.regrant(now, out);
            }
            (Phase::Serving(sv), WitnessInput::Renewed { valid_until })
                if sv.lease_until.is_some() =>
            {
                sv.lease_until = Some(valid_until);
            }
            (Phase::Serving(sv), WitnessInput::LeaseLost) => {
                sv.lease_until = None;
                self.regrant(now, out);
            }
            (Phase::Serving(sv), WitnessInput::Lost { state }) => {
                sv.regaining = false;
                if let Some(c) = state {
                    if c.epoch > self.epoch {
                        self.step_down(c.epoch, "the witness names a newer master", out);
                        return;
                    }
                }
                // The lease is gone and the record changed under us: somebody else
                // may serve. Stop; discovery finds out who.
                if state.is_some_and(|c| c.node != self.s.node_id) {
                    let epoch = state.map_or(self.epoch, |c| c.epoch);
                    self.step_down(
                        epoch.max(self.epoch + 1),
                        "the witness names another node",
                        out,
                    );
                }
            }
            (Phase::Serving(sv), WitnessInput::Unreachable) => {
                sv.regaining = false;
            }
            (Phase::Serving(sv), WitnessInput::Updated { ok, claim }) => {
                sv.updating = false;
                if ok {
                    sv.recorded = Some(claim);
                    if let Some(seat) = sv.slave.as_mut() {
                        if seat.declaring && claim.in_sync == Some(seat.node) {
                            seat.declaring = false;
                            seat.in_sync = true;
                            out.push(Effect::DeclareInSync);
                        }
                    }
                } else {
                    sv.lease_until = None;
                }
                self.regrant(now, out);
            }
            _ => {}
        }
    }
}
