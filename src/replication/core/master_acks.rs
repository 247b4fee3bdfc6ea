//! The slave's acknowledgements on the master and what follows from them: the bound
//! on what it may acknowledge, the shards told what it holds, round trips and lag for
//! the status endpoint, the ack timeout, and its standing: in sync (every reply now
//! waits for it) or lost (the machine decides: probe, then confirm alone or step down).

use std::time::{Duration, Instant};

use super::master::LOG_TARGET;
use super::master_ship::Attached;
use super::{Attach, Core, Ev, Event, MISSED_HEARTBEATS};
use crate::replication::frame::{Body, Frame};
use crate::replication::machine::{Effect, Input, ProbeResult};
use crate::replication::port::Command;
use crate::replication::role::PeerState;
use crate::rt;
use crate::store::Position;

impl Attached {
    /// The highest position the slave may acknowledge on `shard`: the end of what was
    /// shipped, or where the catch-up started (what the slave already held).
    pub(super) fn ack_bound(&self, shard: usize) -> Position {
        let start = self.starts[shard].unwrap_or_default();
        self.shards[shard].shipped_end.max(start)
    }

    /// How long the oldest unacknowledged record has waited, if longer than
    /// `timeout`. Counted only once replies wait for this slave (a catch-up may be
    /// slow; nobody waits for it), and from that moment at the earliest.
    pub(super) fn waited_too_long(&self, timeout: Duration) -> Option<Duration> {
        let since = self.all_done?;
        let oldest = self
            .shards
            .iter()
            .filter_map(|s| s.unacked.front().map(|u| u.3))
            .min()?;
        let age = oldest.max(since).elapsed();
        (age > timeout).then_some(age)
    }

    pub(super) fn on_ack(&mut self, core: &Core, shard: usize, held: Position) {
        let s = &mut self.shards[shard];
        if held <= s.acked {
            return;
        }
        s.acked = held;
        let now = Instant::now();
        while let Some(&(end, _, _, at)) = s.unacked.front() {
            if end > held {
                break;
            }
            core.s.stats.observe_rtt(now.duration_since(at));
            s.unacked.pop_front();
        }
        let _ = core.commands[shard].try_send(Command::Acked(held));
        self.check_in_sync(core);
    }

    /// Tells the machine once the slave holds everything the shards wait for; it
    /// answers with [`Effect::DeclareInSync`] (at once, or once the witness records
    /// the slave as in sync).
    pub(super) fn check_in_sync(&mut self, core: &Core) {
        if self.in_sync || self.caught_up || self.all_done.is_none() {
            return;
        }
        let caught_up = self
            .shards
            .iter()
            .all(|s| s.requiring_from.is_some_and(|from| s.acked >= from));
        if !caught_up {
            return;
        }
        self.caught_up = true;
        let effects = core.step(Input::SlaveCaughtUp);
        for e in core.perform_common(effects) {
            if e == Effect::DeclareInSync {
                self.declare_in_sync(core);
            }
        }
    }

    pub(super) fn declare_in_sync(&mut self, core: &Core) {
        if self.in_sync {
            return;
        }
        self.in_sync = true;
        self.link.send(&Frame {
            epoch: core.state.borrow().epoch,
            body: Body::InSync,
        });
        core.s.stats.set_peer(PeerState::InSync);
        tracing::info!(target: LOG_TARGET, slave = %self.link.peer, "slave in sync");
        core.emit(Event::SlaveInSync);
    }

    pub(super) fn publish_lag(&self, core: &Core) {
        let mut records = 0;
        let mut bytes = 0;
        let mut oldest: Option<Instant> = None;
        for s in &self.shards {
            for &(_, r, b, at) in &s.unacked {
                records += r;
                bytes += b;
                oldest = Some(oldest.map_or(at, |o| o.min(at)));
            }
        }
        let ms = oldest.map_or(0, |at| at.elapsed().as_millis() as u64);
        core.s.stats.set_lag(records, bytes, ms);
        core.s
            .stats
            .set_buffered(self.queued_bytes() as u64, self.link.backlog() as u64);
    }
}

impl Core {
    /// The slave is gone (link closed, protocol error, ack timeout): the data path lets
    /// it go, and the machine decides what follows (a probe before confirming alone).
    pub(super) fn slave_lost(&self, slave: &mut Option<Attached>, why: &str, clean: bool) {
        if !self.drop_slave(slave, why, clean) {
            return;
        }
        let effects = self.step(Input::LinkClosed {
            clean,
            why: why.to_string(),
        });
        self.perform_master(slave, effects);
    }

    /// Lets the attached slave go: link closed, shipping stopped; replies that wait
    /// for it wait for a grant. False if there was none.
    pub(super) fn drop_slave(&self, slave: &mut Option<Attached>, why: &str, clean: bool) -> bool {
        let Some(a) = slave.take() else { return false };
        let link = a.link.clone();
        rt::spawn_local(async move { link.close(Duration::from_millis(10)).await });
        *self.catch_up_link.borrow_mut() = None;
        for c in &self.commands {
            let _ = c.try_send(Command::SlaveLost);
        }
        self.s.stats.set_peer(PeerState::Degraded);
        self.s.stats.set_lag(0, 0, 0);
        self.s.stats.set_buffered(0, 0);
        if clean {
            tracing::warn!(target: LOG_TARGET, slave = %a.link.peer, "{why}; asking the peer who serves before confirming alone");
        } else {
            tracing::error!(target: LOG_TARGET, slave = %a.link.peer, reason = %why, "slave lost; asking the peer who serves before confirming alone");
        }
        true
    }

    /// Performs the machine's effects on the master side.
    pub(super) fn perform_master(&self, slave: &mut Option<Attached>, effects: Vec<Effect>) {
        for e in self.perform_common(effects) {
            match e {
                Effect::CloseLink => {
                    let why = format!(
                        "no heartbeat from the slave for {:?}",
                        self.s.heartbeat * MISSED_HEARTBEATS
                    );
                    self.drop_slave(slave, &why, false);
                }
                Effect::Probe => self.spawn_probe(),
                Effect::DeclareInSync => {
                    if let Some(a) = slave.as_mut() {
                        a.declare_in_sync(self);
                    }
                }
                _ => {}
            }
        }
    }

    /// Asks the peer who serves, off the event loop (the master keeps shipping and
    /// answering meanwhile); the answer comes back as [`Ev::Probed`].
    fn spawn_probe(&self) {
        let peers = self.peers();
        let tx = self.queue_tx.clone();
        let Some(core) = self.this.upgrade() else {
            return;
        };
        rt::spawn_local(async move {
            let r = core.probe(&peers).await;
            let found = Core::probe_result(&r);
            if let Attach::Welcomed(link, _) = r {
                // It took us for a slave: it serves. We only wanted to know.
                link.close(Duration::from_millis(10)).await;
            }
            if found == ProbeResult::NotServing {
                tracing::info!(target: LOG_TARGET, peers = ?peers, "the peer does not serve: confirming alone");
            } else if found == ProbeResult::Silent {
                tracing::warn!(target: LOG_TARGET, peers = ?peers, "the peer does not answer");
            }
            let _ = tx.try_send(Ev::Probed(found));
        });
    }
}
