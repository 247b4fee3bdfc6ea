//! The slave side: follow the master's stream until it is lost, then say whether to
//! take over.

use std::rc::Rc;
use std::time::{Duration, Instant};

use super::{Attach, Core, Ev, MISSED_HEARTBEATS};
use crate::replication::core::{Event, Request};
use crate::replication::frame::{Body, Frame};
use crate::replication::link::Link;
use crate::replication::port::{Command, Live};
use crate::replication::role::{PeerState, Role};
use crate::store::Position;

/// How following a master ended.
pub(super) enum SlaveEnd {
    TakeOver,
    Retry,
    /// The master is alive and welcomed this node again (it had dropped this slave,
    /// e.g. one stalled past `replicationAckTimeout`): follow it on this link.
    Follow(Rc<Link>, Frame),
    Stopped,
}

impl Core {
    /// Before taking over on a lost link: one authenticated attach to the master,
    /// bounded by the heartbeat loss interval. A master that dropped this slave (a
    /// stall, a slow link) is alive and welcomes it: taking over would make two
    /// masters. A dead master refuses the connection at once (same host or LAN) or
    /// stays silent until the bound.
    async fn master_still_there(&self, addr: std::net::SocketAddr) -> Option<(Rc<Link>, Frame)> {
        let login = match &self.s.master {
            Some(m) => m.login.clone()?,
            None => self.s.acceptor.rejoin_login()?,
        };
        let bound = self.s.heartbeat * MISSED_HEARTBEATS;
        let attach = async { Some(self.attach_once(addr, &login).await) };
        let expire = async {
            crate::rt::sleep(bound).await;
            None
        };
        match futures_lite::future::or(attach, expire).await {
            Some(Attach::Welcomed(l, w)) => Some((l, w)),
            _ => None,
        }
    }

    pub(super) async fn run_slave(&self, link: Rc<Link>, welcome: Frame) -> SlaveEnd {
        let Body::Welcome { oldest, .. } = &welcome.body else {
            unreachable!("discover returns Welcome frames only")
        };
        // The master resumes this node's copy only if it holds the master's current
        // epoch (then both sides agree on where it ends); otherwise it starts over.
        let resumable = self.state.borrow().epoch == welcome.epoch;
        {
            let mut st = self.state.borrow_mut();
            st.epoch = welcome.epoch;
            st.role = Some(Role::Slave);
            st.peers = vec![link.peer];
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
                    diverged_from: None,
                });
            } else {
                // Lifts a stop after a failed apply on an earlier link.
                let _ = self.commands[shard].try_send(Command::Report);
            }
        }
        tracing::info!(master = %link.peer, epoch = welcome.epoch, "attached to the master as slave; catching up");
        let link_id = self.spawn_reader(&link);
        let mut in_sync = false;
        let mut last_heard = Instant::now();
        let limit = self.s.heartbeat * MISSED_HEARTBEATS;
        let why: String;
        let mut clean = false;
        loop {
            match self.next().await {
                Ev::Frame(id, f) if id == link_id => {
                    last_heard = Instant::now();
                    if f.epoch != welcome.epoch {
                        why = format!(
                            "protocol error: frame at epoch {} on a link at epoch {}",
                            f.epoch, welcome.epoch
                        );
                        break;
                    }
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
                            in_sync = true;
                            self.s.stats.set_peer(PeerState::InSync);
                            tracing::info!(master = %link.peer, "in sync with the master");
                        }
                        Body::Heartbeat => {}
                        Body::Goodbye { reason } => {
                            why = format!("the master shut down cleanly ({reason})");
                            clean = true;
                            break;
                        }
                        other => {
                            why = format!(
                                "protocol error: unexpected frame {:?}",
                                std::mem::discriminant(&other)
                            );
                            break;
                        }
                    }
                }
                Ev::LinkLost(id, reason) if id == link_id => {
                    why = reason;
                    break;
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
                    in_sync = false;
                    why = format!("apply failed on shard {shard}: {reason}");
                    break;
                }
                Ev::Live(Live::SlaveSocket { .. }) => {}
                Ev::Request(Request::Shutdown) => {
                    link.send(&Frame {
                        epoch: self.state.borrow().epoch,
                        body: Body::Goodbye {
                            reason: "slave shutting down".into(),
                        },
                    });
                    link.close(Duration::from_millis(200)).await;
                    self.emit(Event::Stopped);
                    return SlaveEnd::Stopped;
                }
                Ev::Tick => {
                    link.send(&Frame {
                        epoch: self.state.borrow().epoch,
                        body: Body::Heartbeat,
                    });
                    if last_heard.elapsed() > limit {
                        why = format!("no heartbeat for {limit:?}");
                        break;
                    }
                }
                _ => {}
            }
        }
        link.close(Duration::from_millis(10)).await;
        if !in_sync {
            tracing::warn!(master = %link.peer, reason = %why, "lost the master before catching up: not taking over; reconnecting");
            self.s.stats.set_peer(PeerState::Connecting);
            return SlaveEnd::Retry;
        }
        if clean {
            tracing::warn!(master = %link.peer, "{why}");
        } else {
            tracing::error!(master = %link.peer, reason = %why, "master lost");
        }
        if !clean {
            if let Some((l, w)) = self.master_still_there(link.peer).await {
                tracing::warn!(master = %link.peer, "the master is alive and dropped this slave (it was stalled or slow): following it again, not taking over");
                return SlaveEnd::Follow(l, w);
            }
        }
        if self.s.shutdown_on_master_failure {
            let reason = format!("{why}; shutdownOnMasterFailure is set: stopping");
            self.emit(Event::Exit { code: 0, reason });
            return SlaveEnd::Stopped;
        }
        SlaveEnd::TakeOver
    }
}
