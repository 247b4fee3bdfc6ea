//! The slave side: follow the master's stream until it is lost, then say whether to
//! take over.

use std::rc::Rc;
use std::time::Duration;

use super::{Attach, Core, Ev, MISSED_HEARTBEATS};
use crate::replication::core::{Event, Request};
use crate::replication::frame::{Body, Frame};
use crate::replication::link::Link;
use crate::replication::machine::{Effect, Input};
use crate::replication::port::{Command, Live};
use crate::replication::role::{PeerState, Role};
use crate::replication::state::{divergence, EpochStart};
use crate::store::Position;

/// How following a master ended.
pub(super) enum SlaveEnd {
    /// The master is gone and this node serves at `epoch` (a takeover).
    Serve {
        epoch: u64,
        takeover: bool,
    },
    Retry,
    /// The master is alive and welcomed this node again (it had dropped this slave,
    /// e.g. one stalled past `replicationAckTimeout`): follow it on this link.
    Follow(Rc<Link>, Frame),
    Stopped,
}

impl Core {
    pub(super) async fn run_slave(&self, link: Rc<Link>, welcome: Frame) -> SlaveEnd {
        let Body::Welcome {
            oldest, history, ..
        } = &welcome.body
        else {
            unreachable!("discover returns Welcome frames only")
        };
        let masters_history: Vec<EpochStart> = history
            .iter()
            .map(|(epoch, starts)| EpochStart {
                epoch: *epoch,
                starts: starts.clone(),
            })
            .collect();
        // The master resumes this node's copy only if it holds the master's current
        // epoch (then both sides agree on where it ends); otherwise it starts over,
        // and what this node holds beyond the point where the two logs part (a split
        // brain: records it confirmed alone) is set aside, never deleted.
        let resumable = self.state.borrow().epoch == welcome.epoch;
        let our_epoch = self.state.borrow().epoch;
        let diverged = if resumable {
            vec![None; self.s.shards]
        } else {
            divergence(
                &self.state.borrow().history,
                &masters_history,
                self.s.shards,
            )
        };
        {
            let mut st = self.state.borrow_mut();
            st.epoch = welcome.epoch;
            st.role = Some(Role::Slave);
            st.peers = vec![link.peer];
            if resumable {
                // A prefix of the master's log: its history is ours.
                st.history = masters_history.clone();
            }
            // Otherwise the history is adopted once in sync: until the copy is whole,
            // a restart must still know where this node's own records begin.
        }
        if self.store_state().is_err() {
            return SlaveEnd::Stopped;
        }
        self.s.stats.set_role(Role::Slave);
        self.s.stats.set_epoch(welcome.epoch);
        self.s.stats.set_peer(PeerState::Syncing);
        self.s.stats.set_peer_address(Some(link.peer.to_string()));
        for (shard, &start) in oldest.iter().enumerate() {
            let start = Position(start);
            let mut positions = self.positions.borrow_mut();
            if !resumable || positions[shard] != start {
                tracing::info!(
                    shard,
                    ours = %positions[shard],
                    master = %start,
                    "journal does not continue the master's: starting over from the master's oldest segment"
                );
                positions[shard] = start;
                let _ = self.commands[shard].try_send(Command::Reset {
                    start,
                    diverged_from: diverged[shard].map(|p| (Position(p), our_epoch)),
                });
            } else {
                // Lifts a stop after a failed apply on an earlier link.
                let _ = self.commands[shard].try_send(Command::Report);
            }
        }
        tracing::info!(master = %link.peer, epoch = welcome.epoch, "attached to the master as slave; catching up");
        let link_id = self.spawn_reader(&link);
        let mut effects: Vec<Effect> = Vec::new();
        loop {
            for e in self.perform_common(std::mem::take(&mut effects)) {
                match e {
                    Effect::CloseLink => {
                        tracing::error!(master = %link.peer, "no heartbeat from the master for {:?}", self.s.heartbeat * MISSED_HEARTBEATS);
                        link.close(Duration::from_millis(10)).await;
                    }
                    Effect::Probe => {
                        // Before taking over: one authenticated attach to the master. A
                        // master that dropped this slave (a stall, a slow link) is alive
                        // and welcomes it: taking over would make two masters. A dead
                        // master refuses the connection at once (same host or LAN) or
                        // stays silent until the bound.
                        link.close(Duration::from_millis(10)).await;
                        let r = self.probe(&[link.peer]).await;
                        let found = Self::probe_result(&r);
                        let after = self.step(Input::Probe(found));
                        if let Attach::Welcomed(l, w) = r {
                            if after.iter().any(|e| matches!(e, Effect::Follow { .. })) {
                                tracing::warn!(master = %link.peer, "the master is alive and dropped this slave (it was stalled or slow): following it again, not taking over");
                                return SlaveEnd::Follow(l, w);
                            }
                            l.close(Duration::from_millis(10)).await;
                        }
                        effects.extend(after);
                    }
                    Effect::Serve { epoch, takeover } => {
                        return SlaveEnd::Serve { epoch, takeover };
                    }
                    Effect::Stopped => {
                        self.emit(Event::Stopped);
                        return SlaveEnd::Stopped;
                    }
                    _ => {}
                }
            }
            if !effects.is_empty() {
                continue;
            }
            let (stopped, discovering) = {
                let m = self.machine.borrow();
                (m.is_stopped(), m.is_discovering())
            };
            {
                if stopped {
                    return SlaveEnd::Stopped;
                }
                if discovering {
                    link.close(Duration::from_millis(10)).await;
                    self.s.stats.set_peer(PeerState::Connecting);
                    return SlaveEnd::Retry;
                }
            }
            match self.next().await {
                Ev::Frame(id, f) if id == link_id => {
                    if f.epoch != welcome.epoch {
                        let why = format!(
                            "protocol error: frame at epoch {} on a link at epoch {}",
                            f.epoch, welcome.epoch
                        );
                        effects = self.link_closed(&link, false, why);
                        continue;
                    }
                    effects = self.step(Input::Heard);
                    match f.body {
                        Body::Batch {
                            shard,
                            start,
                            bytes,
                        } if shard < self.s.shards => {
                            let _ = self.commands[shard].try_send(Command::Apply {
                                start: Position(start),
                                bytes,
                            });
                        }
                        Body::Volatile { shard, record, .. } if shard < self.s.shards => {
                            let _ =
                                self.commands[shard].try_send(Command::ApplyVolatile { record });
                        }
                        Body::InSync => {
                            self.state.borrow_mut().history = masters_history.clone();
                            if self.store_state().is_err() {
                                return SlaveEnd::Stopped;
                            }
                            self.s.stats.set_peer(PeerState::InSync);
                            tracing::info!(master = %link.peer, "in sync with the master");
                            effects.extend(self.step(Input::InSync));
                        }
                        Body::Heartbeat => {}
                        Body::Goodbye { reason } => {
                            let why = format!("the master shut down cleanly ({reason})");
                            effects.extend(self.link_closed(&link, true, why));
                        }
                        other => {
                            let why = format!(
                                "protocol error: unexpected frame {:?}",
                                std::mem::discriminant(&other)
                            );
                            effects.extend(self.link_closed(&link, false, why));
                        }
                    }
                }
                Ev::LinkLost(id, reason) if id == link_id => {
                    effects = self.link_closed(&link, false, reason);
                }
                Ev::Live(Live::Applied {
                    shard,
                    received,
                    durable,
                    next,
                }) => {
                    self.positions.borrow_mut()[shard] = next;
                    link.send(&Frame {
                        epoch: self.state.borrow().epoch,
                        body: Body::Ack {
                            shard,
                            received: received.0,
                            durable: durable.0,
                        },
                    });
                }
                Ev::Live(Live::ApplyFailed { shard, reason }) => {
                    tracing::error!(shard, %reason, "cannot apply what the master shipped; resynchronising");
                    effects = self.step(Input::Resync);
                }
                Ev::Request(Request::Shutdown) => {
                    link.send(&Frame {
                        epoch: self.state.borrow().epoch,
                        body: Body::Goodbye {
                            reason: "slave shutting down".into(),
                        },
                    });
                    link.close(Duration::from_millis(200)).await;
                    effects = self.step(Input::Shutdown);
                }
                Ev::Tick => {
                    link.send(&Frame {
                        epoch: self.state.borrow().epoch,
                        body: Body::Heartbeat,
                    });
                    effects = self.step(Input::Tick);
                }
                _ => {}
            }
        }
    }

    /// The link to the master ended: logged, and told to the machine.
    fn link_closed(&self, link: &Rc<Link>, clean: bool, why: String) -> Vec<Effect> {
        if clean {
            tracing::warn!(master = %link.peer, "{why}");
        } else if self.machine.borrow().is_in_sync() {
            tracing::error!(master = %link.peer, reason = %why, "master lost");
        } else {
            tracing::warn!(master = %link.peer, reason = %why, "lost the master before catching up: not taking over; reconnecting");
        }
        self.step(Input::LinkClosed { clean, why })
    }
}
