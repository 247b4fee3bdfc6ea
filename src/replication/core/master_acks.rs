//! The slave's acknowledgements on the master and what follows from them: the bound
//! on what it may acknowledge, the shards told what it holds, round trips and lag for
//! the status endpoint, the ack timeout, and its standing: in sync (every reply now
//! waits for it) or lost (the master serves alone, degraded).

use std::time::{Duration, Instant};

use super::master::LOG_TARGET;
use super::master_ship::Attached;
use super::{Core, Event};
use crate::replication::frame::{Body, Frame};
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

    pub(super) fn check_in_sync(&mut self, core: &Core) {
        if self.in_sync || self.all_done.is_none() {
            return;
        }
        let caught_up = self
            .shards
            .iter()
            .all(|s| s.requiring_from.is_some_and(|from| s.acked >= from));
        if !caught_up {
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
    pub(super) fn slave_lost(&self, slave: &mut Option<Attached>, why: &str, clean: bool) {
        let Some(a) = slave.take() else { return };
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
            tracing::warn!(target: LOG_TARGET, slave = %a.link.peer, "{why}; serving alone (degraded)");
        } else {
            tracing::error!(target: LOG_TARGET, slave = %a.link.peer, reason = %why, "slave lost; serving alone (degraded)");
        }
        if self.s.shutdown_on_slave_failure {
            self.emit(Event::Exit {
                code: 0,
                reason: format!("slave lost ({why}); shutdownOnSlaveFailure is set: stopping"),
            });
        }
    }
}
