//! Catch-up from the journal on the master: the rounds each shard plans and streams
//! (at attach, and whenever a slow shard's live stream fell behind), the Welcome that
//! goes out once every shard has planned its first one, and the switch back to live
//! batches (with those queued meanwhile) when a round ends in time.

use std::time::Instant;

use super::flow::Stream;
use super::master::LOG_TARGET;
use super::master_ship::Attached;
use super::Core;
use crate::replication::auth;
use crate::replication::frame::{Body, Frame, PROOF_BYTES};
use crate::replication::port::{CatchUp, Command};

impl Attached {
    /// Starts a catch-up round for every shard that is behind, once the link has
    /// drained enough to take one.
    pub(super) fn resume_behind(&mut self, core: &Core) {
        for shard in 0..self.shards.len() {
            let Some(from) = self.shards[shard]
                .stream
                .resume_from(self.buffered(), core.s.buffer_bytes)
            else {
                continue;
            };
            let s = &mut self.shards[shard];
            s.stream = Stream::CatchingUp { overflowed: false };
            s.replan_from = Some(from);
            tracing::info!(target: LOG_TARGET, slave = %self.link.peer, shard, from = %from, "reading what the slave missed from the journal");
            let _ = core.commands[shard].try_send(Command::CatchUpFrom {
                link: self.link_id,
                from,
            });
        }
    }

    /// Returns why the slave must be dropped, if it must.
    pub(super) fn on_catch_up(&mut self, core: &Core, c: CatchUp) -> Option<String> {
        match c {
            CatchUp::Plan {
                shard,
                link,
                start,
                until,
            } if link == self.link_id => {
                let s = shard;
                if let Some(from) = self.shards[s].replan_from.take() {
                    if start != from {
                        return Some(format!(
                            "shard {shard}: the journal no longer holds {from}, where the \
                             slave's copy continues (oldest {start}); it must resynchronise"
                        ));
                    }
                    // Batches tapped before the shard planned are in this round.
                    let sh = &mut self.shards[s];
                    sh.queued.retain(|(p, _)| *p >= until);
                    sh.queued_bytes = sh.queued.iter().map(|(_, b)| b.len()).sum();
                    tracing::debug!(target: LOG_TARGET, shard, start = %start, until = %until, "catch-up round planned");
                    return None;
                }
                self.starts[s] = Some(start);
                tracing::debug!(target: LOG_TARGET, shard, start = %start, until = %until, "catch-up planned");
                if self.starts.iter().all(Option::is_some) {
                    let oldest = self
                        .starts
                        .iter()
                        .map(|p| p.unwrap_or_default().0)
                        .collect();
                    let mut welcome = Frame {
                        epoch: core.state.borrow().epoch,
                        body: Body::Welcome {
                            proof: [0; PROOF_BYTES],
                            master_node_id: core.state.borrow().node_id.to_string(),
                            oldest,
                            history: core
                                .state
                                .borrow()
                                .history
                                .iter()
                                .map(|e| (e.epoch, e.starts.clone()))
                                .collect(),
                        },
                    };
                    auth::sign(&self.auth.0, auth::MASTER_LABEL, &self.auth.1, &mut welcome);
                    self.link.send(&welcome);
                    self.welcomed = true;
                    for f in self.pending.drain(..) {
                        self.link.send(&f);
                    }
                    self.pending_bytes = 0;
                }
                None
            }
            CatchUp::Chunk {
                shard,
                link,
                start,
                bytes,
            } if link == self.link_id => {
                self.send(core, shard, start, bytes);
                None
            }
            CatchUp::Done { shard, link, next } if link == self.link_id => {
                let s = shard;
                if self.shards[s].stream.on_round_done(next) {
                    self.flush_queued(core, s);
                } else {
                    self.shards[s].drop_queue();
                    self.resume_behind(core);
                }
                None
            }
            CatchUp::Failed {
                shard,
                link,
                reason,
            } if link == self.link_id => {
                Some(format!("catch-up of shard {shard} failed: {reason}"))
            }
            _ => None,
        }
    }

    fn flush_queued(&mut self, core: &Core, shard: usize) {
        while let Some((start, bytes)) = self.shards[shard].queued.pop_front() {
            self.shards[shard].queued_bytes -= bytes.len();
            self.send(core, shard, start, bytes);
        }
        let done = self.welcomed
            && self
                .shards
                .iter()
                .zip(&self.starts)
                .all(|(s, st)| st.is_some() && s.stream.is_live());
        if done && self.all_done.is_none() {
            self.all_done = Some(Instant::now());
            tracing::info!(target: LOG_TARGET, slave = %self.link.peer, "catch-up streamed; waiting for the slave to confirm it");
            for c in &core.commands {
                let _ = c.try_send(Command::RequireReplica);
            }
        }
    }
}
