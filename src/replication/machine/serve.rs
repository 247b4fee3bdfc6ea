//! Running a role: a slave following its master (silence, the master lost, a
//! takeover), a master serving (its slave lost, probes, step-down) and the grant to
//! confirm alone, renewed on each tick.

use std::time::Duration;

use super::*;

impl Machine {
    pub(super) fn on_link_closed(
        &mut self,
        now: Duration,
        clean: bool,
        why: String,
        out: &mut Vec<Effect>,
    ) {
        match &mut self.phase {
            Phase::Following {
                in_sync, probing, ..
            } => {
                if !*in_sync {
                    // Not a full copy: never takes over; finds a master again.
                    self.phase = Phase::Discovering {
                        next_attempt: now + self.s.retry,
                        attempting: false,
                    };
                    return;
                }
                if clean {
                    self.master_gone(now, out);
                } else if !*probing {
                    *probing = true;
                    out.push(Effect::Probe);
                }
            }
            Phase::Serving(Serving {
                slave: slave @ Some(_),
                ..
            }) => {
                *slave = None;
                self.slave_lost(now, why, out);
            }
            _ => {}
        }
    }

    pub(super) fn master_gone(&mut self, now: Duration, out: &mut Vec<Effect>) {
        let Phase::Following { master_epoch, .. } = self.phase else {
            return;
        };
        if self.s.shutdown_on_master_failure {
            self.phase = Phase::Stopped;
            out.push(Effect::Exit {
                code: 0,
                reason: "master lost; shutdownOnMasterFailure is set: stopping".into(),
            });
            return;
        }
        self.serve_or_campaign(now, Campaign::Takeover { master_epoch }, out);
    }

    // ---- serving ----

    pub(super) fn slave_lost(&mut self, now: Duration, why: String, out: &mut Vec<Effect>) {
        if self.s.shutdown_on_slave_failure {
            self.phase = Phase::Stopped;
            out.push(Effect::Exit {
                code: 0,
                reason: format!("slave lost ({why}); shutdownOnSlaveFailure is set: stopping"),
            });
            return;
        }
        if let Phase::Serving(sv) = &mut self.phase {
            sv.verify = true;
            if !sv.probing {
                sv.probing = true;
                sv.last_probe = now;
                out.push(Effect::Probe);
            }
        }
        self.regrant(now, out);
    }

    pub(super) fn on_caught_up(&mut self, out: &mut Vec<Effect>) {
        let epoch = self.epoch;
        let node = self.s.node_id;
        let witness = self.s.witness;
        let Phase::Serving(sv) = &mut self.phase else {
            return;
        };
        let Some(seat) = sv.slave.as_mut() else {
            return;
        };
        if seat.in_sync || seat.declaring {
            return;
        }
        // From here no grant: every reply waits for the slave.
        sv.granted = None;
        out.push(Effect::ConfirmAlone(None));
        if witness {
            seat.declaring = true;
            sv.updating = true;
            out.push(Effect::WitnessUpdate {
                claim: Claim {
                    epoch,
                    node,
                    in_sync: Some(seat.node),
                },
            });
        } else {
            seat.in_sync = true;
            out.push(Effect::DeclareInSync);
        }
    }

    pub(super) fn on_newer_epoch(&mut self, epoch: u64, why: &str, out: &mut Vec<Effect>) {
        self.seen(epoch);
        if epoch <= self.epoch {
            return;
        }
        match &self.phase {
            Phase::Serving(_) | Phase::Campaigning { .. } => {
                self.step_down(epoch, why, out);
            }
            _ => {}
        }
    }

    pub(super) fn step_down(&mut self, epoch: u64, why: &str, out: &mut Vec<Effect>) {
        if let Phase::Serving(sv) = &self.phase {
            if sv.granted.is_some() {
                out.push(Effect::ConfirmAlone(None));
            }
        }
        self.role = Some(Role::Slave);
        self.phase = Phase::Stopped;
        if self.s.witness {
            out.push(Effect::WitnessResign);
        }
        out.push(Effect::StepDown {
            epoch,
            why: why.to_string(),
        });
    }

    pub(super) fn on_probe(&mut self, now: Duration, r: ProbeResult, out: &mut Vec<Effect>) {
        if let ProbeResult::Serving { epoch } = r {
            self.seen(epoch);
        }
        match &mut self.phase {
            Phase::Following {
                probing,
                master_epoch,
                ..
            } => {
                *probing = false;
                match r {
                    ProbeResult::Serving { epoch } if epoch >= *master_epoch => {
                        // The master (or a newer one) is alive and welcomed us again.
                        self.follow(now, epoch, out);
                    }
                    _ => self.master_gone(now, out),
                }
            }
            Phase::Serving(sv) => {
                sv.probing = false;
                match r {
                    ProbeResult::Serving { epoch } if epoch > self.epoch => {
                        self.step_down(epoch, "the peer serves a newer epoch", out);
                    }
                    ProbeResult::Serving { .. } | ProbeResult::NotServing | ProbeResult::Silent => {
                        // Not serving, or older and stepping down (our Proof carried our
                        // epoch), or unknown: without a witness availability wins; with
                        // one the lease decides.
                        sv.verify = false;
                        self.regrant(now, out);
                    }
                }
            }
            _ => {}
        }
    }

    pub(super) fn on_tick(&mut self, now: Duration, paused: bool, out: &mut Vec<Effect>) {
        match &mut self.phase {
            Phase::Discovering { .. } => self.discover(now, out),
            Phase::Campaigning { .. } => self.campaign(now, out),
            Phase::Following {
                last_heard,
                probing,
                in_sync,
                ..
            } => {
                if paused {
                    // Our own stop, not the master's silence.
                    *last_heard = now;
                    return;
                }
                if !*probing && now.saturating_sub(*last_heard) > self.s.silence {
                    out.push(Effect::CloseLink);
                    if !*in_sync {
                        self.phase = Phase::Discovering {
                            next_attempt: now,
                            attempting: false,
                        };
                        self.discover(now, out);
                        return;
                    }
                    *probing = true;
                    out.push(Effect::Probe);
                }
            }
            Phase::Serving(sv) => {
                if let Some(seat) = sv.slave.as_mut() {
                    if paused {
                        seat.last_heard = now;
                    } else if now.saturating_sub(seat.last_heard) > self.s.silence {
                        sv.slave = None;
                        out.push(Effect::CloseLink);
                        self.slave_lost(now, "no heartbeat from the slave".into(), out);
                        self.regrant(now, out);
                        return;
                    }
                }
                if paused {
                    sv.verify = true;
                    if !sv.probing && self.s.has_peer {
                        sv.probing = true;
                        sv.last_probe = now;
                        out.push(Effect::Probe);
                    }
                    if !self.s.has_peer {
                        sv.verify = false;
                    }
                } else if sv.slave.is_none()
                    && self.s.has_peer
                    && !sv.probing
                    && now.saturating_sub(sv.last_probe) >= self.s.recheck
                {
                    // Serving without a slave: ask now and then whether a newer epoch
                    // serves (a healed partition). Grants go on meanwhile.
                    sv.probing = true;
                    sv.last_probe = now;
                    out.push(Effect::Probe);
                }
                if self.s.witness {
                    let lease_gone = sv.lease_until.is_some_and(|u| now >= u);
                    if lease_gone {
                        sv.lease_until = None;
                    }
                    if sv.lease_until.is_some() {
                        sv.lease_lost_at = None;
                    } else {
                        // Without the lease and without an in-sync slave this node can
                        // confirm nothing; still accepting clients would only make them
                        // wait. Past `fence_after` it starts again: connectors closed,
                        // it serves once it wins the lease, or follows who did.
                        let since = *sv.lease_lost_at.get_or_insert(now);
                        let slave_holds = sv.slave.is_some_and(|s| s.in_sync || s.declaring);
                        if !slave_holds && now.saturating_sub(since) >= self.s.fence_after {
                            if sv.granted.is_some() {
                                out.push(Effect::ConfirmAlone(None));
                            }
                            self.phase = Phase::Stopped;
                            out.push(Effect::Restart {
                                why: "the witness's lease is lost and no slave is in sync".into(),
                            });
                            return;
                        }
                    }
                    if sv.lease_until.is_none() && !sv.regaining {
                        sv.regaining = true;
                        let (claim, expect) = self.claim_for(Campaign::Regain);
                        out.push(Effect::Campaign { claim, expect });
                    }
                }
                self.regrant(now, out);
            }
            Phase::Stopped => {}
        }
    }

    /// Sends the grant the current state allows (renewed on each tick).
    pub(super) fn regrant(&mut self, now: Duration, out: &mut Vec<Effect>) {
        let witness = self.s.witness;
        let epoch = self.epoch;
        let node = self.s.node_id;
        let grant = self.s.grant;
        if !self.s.has_peer {
            // Nobody else can serve: the shards' default (confirm) stands.
            return;
        }
        let Phase::Serving(sv) = &mut self.phase else {
            return;
        };
        let slave_holds = sv.slave.is_some_and(|s| s.in_sync || s.declaring);
        let mut until = (!sv.verify && !slave_holds).then_some(now + grant);
        if witness && until.is_some() {
            match (sv.lease_until, sv.recorded) {
                (Some(lease), Some(c))
                    if c.in_sync.is_none() && c.epoch == epoch && now < lease =>
                {
                    until = until.map(|u| u.min(lease));
                }
                (Some(lease), _) if now < lease => {
                    // Record first that no slave is in sync: a slave that was must not
                    // win the lease with a copy that misses what we confirm alone.
                    if !sv.updating {
                        sv.updating = true;
                        out.push(Effect::WitnessUpdate {
                            claim: Claim {
                                epoch,
                                node,
                                in_sync: None,
                            },
                        });
                    }
                    until = None;
                }
                _ => until = None,
            }
        }
        if until.is_some() || sv.granted.is_some() {
            sv.granted = until;
            out.push(Effect::ConfirmAlone(until));
        }
    }
}
