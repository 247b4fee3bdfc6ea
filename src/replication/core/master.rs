//! The master side: accept one slave, catch it up, ship live batches, route its
//! acknowledgements to the shards, and notice when it is gone.
//!
//! This file holds the master's event loop: it dispatches every [`Ev`] to the parts
//! that handle it, in sibling files of `core/`:
//!
//! * `master_attach.rs`   — a new connection's handshake and the checked Proof that
//!   turns it into the attached slave ([`Attached`]), or a refusal.
//! * `master_ship.rs`     — the attached slave's state ([`Attached`], one `ShardSync`
//!   per shard) and what is shipped to it: batches, non-persistent frames, the
//!   `replicationBuffer` bound and the switch of a slow shard to the journal.
//! * `master_catch_up.rs` — catch-up rounds from the journal: plans, the Welcome,
//!   chunks, the end of a round and the queued live batches behind it.
//! * `master_acks.rs`     — acknowledgements, lag, the ack timeout, and the slave's
//!   standing: in sync, or lost (the machine decides: probe, then confirm alone or step down).
//!
//! Their log events keep this file's target ([`LOG_TARGET`],
//! `tandem::replication::core::master`), as they had before the split: the log lines
//! and `RUST_LOG` filters are the same.

use std::time::Duration;

use super::master_ship::Attached;
use super::{AckMode, Core, Ev, Event, Request};
use crate::replication::frame::{Body, Frame};
use crate::replication::machine::Input;
use crate::replication::port::Live;
use crate::store::Position;

/// The `tracing` target of every log event of the master side, whichever file of
/// `core/` it comes from.
pub(super) const LOG_TARGET: &str = module_path!();

impl Core {
    pub(super) async fn run_master(&self) {
        let mut slave: Option<Attached> = None;
        loop {
            match self.next().await {
                Ev::Live(Live::SlaveSocket { stream, slot }) => self.handshake(*stream, slot),
                Ev::Proof(link, nonces, proof) => {
                    if let Some(a) = self.on_proof(&mut slave, link, nonces, proof) {
                        slave = Some(a);
                    }
                }
                Ev::Live(Live::Batch {
                    shard,
                    start,
                    bytes,
                }) => {
                    if let Some(a) = slave.as_mut() {
                        a.ship_live(self, shard, start, bytes);
                    }
                }
                Ev::Live(Live::Volatile { shard, record }) => {
                    if let Some(a) = slave.as_mut() {
                        a.send_volatile(self, shard, record);
                    }
                }
                Ev::Live(Live::Overflow { shard, from }) => {
                    if let Some(a) = slave.as_mut() {
                        a.on_overflow(self, shard, from);
                    }
                }
                Ev::Live(Live::Requiring { shard, from }) => {
                    if let Some(a) = slave.as_mut() {
                        a.shards[shard].requiring_from = Some(from);
                        a.check_in_sync(self);
                    }
                }
                Ev::Live(Live::Applied { .. } | Live::ApplyFailed { .. }) => {}
                Ev::CatchUp(c) => {
                    let failed = match slave.as_mut() {
                        Some(a) => a.on_catch_up(self, c),
                        None => None,
                    };
                    if let Some(why) = failed {
                        self.slave_lost(&mut slave, &why, false);
                    }
                }
                Ev::Frame(id, f) => {
                    if slave.as_ref().is_none_or(|a| a.link_id != id) {
                        continue;
                    }
                    let heard = self.step(Input::Heard);
                    self.perform_master(&mut slave, heard);
                    let Some(a) = slave.as_mut() else { continue };
                    let ours = self.state.borrow().epoch;
                    if f.epoch != ours {
                        let why = format!(
                            "protocol error: frame at epoch {} on a link at epoch {ours}",
                            f.epoch
                        );
                        self.slave_lost(&mut slave, &why, false);
                        continue;
                    }
                    match f.body {
                        Body::Ack {
                            shard,
                            received,
                            durable,
                        } if shard < self.s.shards => {
                            let bound = a.ack_bound(shard);
                            if received > bound.0 || durable > received {
                                let why = format!(
                                    "protocol error: shard {shard} acknowledged received {} \
                                     durable {} beyond what was shipped ({bound})",
                                    Position(received),
                                    Position(durable)
                                );
                                self.slave_lost(&mut slave, &why, false);
                                continue;
                            }
                            let held = match self.s.ack {
                                AckMode::Fsync => durable,
                                AckMode::Received => received,
                            };
                            a.on_ack(self, shard, Position(held));
                            a.resume_behind(self);
                        }
                        Body::Heartbeat => {}
                        Body::Goodbye { reason } => {
                            let why = format!("the slave shut down cleanly ({reason})");
                            self.slave_lost(&mut slave, &why, true);
                        }
                        other => {
                            let why = format!(
                                "protocol error: unexpected frame {:?}",
                                std::mem::discriminant(&other)
                            );
                            self.slave_lost(&mut slave, &why, false);
                        }
                    }
                }
                Ev::LinkLost(id, why) => {
                    if slave.as_ref().is_some_and(|a| a.link_id == id) {
                        self.slave_lost(&mut slave, &why, false);
                    }
                }
                Ev::Witness(w) => {
                    let input = Input::Witness(self.witness_input(w));
                    let effects = self.step(input);
                    self.perform_master(&mut slave, effects);
                }
                Ev::Probed(found) => {
                    let effects = self.step(Input::Probe(found));
                    self.perform_master(&mut slave, effects);
                }
                Ev::Tick => {
                    if let Some(a) = slave.as_mut() {
                        a.resume_behind(self);
                        // Not before the Welcome: the slave takes the first frame after
                        // its Proof as the answer, and a heartbeat there (catch-up still
                        // planning on a busy master) made it give up the attach.
                        if a.welcomed {
                            a.link.send(&Frame {
                                epoch: self.state.borrow().epoch,
                                body: Body::Heartbeat,
                            });
                        }
                        a.publish_lag(self);
                    }
                    // Silence, pauses, grants, probes: the machine's.
                    let effects = self.step(Input::Tick);
                    self.perform_master(&mut slave, effects);
                    if let Some(a) = slave.as_mut() {
                        if let Some(age) = a.waited_too_long(self.s.ack_timeout) {
                            let why = format!(
                                "no acknowledgement for {age:?} (replicationAckTimeout {:?})",
                                self.s.ack_timeout
                            );
                            self.slave_lost(&mut slave, &why, false);
                        }
                    }
                }
                Ev::Request(Request::Shutdown) => {
                    let _ = self.step(Input::Shutdown);
                    if let Some(a) = slave.take() {
                        a.link.send(&Frame {
                            epoch: self.state.borrow().epoch,
                            body: Body::Goodbye {
                                reason: "master shutting down".into(),
                            },
                        });
                        a.link.close(Duration::from_millis(300)).await;
                    }
                    self.emit(Event::Stopped);
                }
            }
        }
    }
}
