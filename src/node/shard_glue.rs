//! The task that connects one shard to the replication core: it runs on the shard's
//! executor, takes the core's [`Command`]s in order and answers through the shard's
//! [`ShardPort`]. It is the only code that knows both sides (`broker` and
//! `replication` do not import each other).

use std::cell::Cell;
use std::rc::Rc;

use crate::broker::shard::{Grant, Shard};
use crate::replication::port::{CatchUp, Command, Live, ShardPort, CATCH_UP_CHUNK_BYTES};
use crate::rt;
use crate::store::Position;
use crate::ShardId;

/// Runs until the core goes away (process end).
pub async fn run(shard: Rc<Shard>, port: ShardPort, promoted: std::sync::mpsc::Sender<usize>) {
    let id = port.shard;
    // The attach the current catch-up belongs to (0: none); a catch-up of an older
    // attach stops at its next chunk.
    let link = Rc::new(Cell::new(0u64));
    // Slave side: after a failed apply nothing more is applied until the core has
    // re-attached (it then sends Reset or Report).
    let mut failed = false;
    let received = Rc::new(Cell::new(shard.next_position()));
    while let Ok(cmd) = port.commands.recv().await {
        match cmd {
            Command::Report => {
                failed = false;
                let next = shard.next_position();
                let _ = port.live.try_send(Live::Applied {
                    shard: id,
                    received: next,
                    durable: next,
                    next,
                });
            }
            Command::Reset {
                start,
                diverged_from,
            } => {
                failed = false;
                let reset = match diverged_from {
                    Some((from, epoch)) => shard.reset_diverged(start, from, epoch).await.map(drop),
                    None => shard.reset(start).await,
                };
                match reset {
                    Ok(()) => {
                        // An empty copy that holds everything before `start`: say so,
                        // so a master with nothing to ship still sees this slave.
                        received.set(start);
                        let _ = port.live.try_send(Live::Applied {
                            shard: id,
                            received: start,
                            durable: start,
                            next: start,
                        });
                    }
                    Err(e) => {
                        failed = true;
                        let _ = port.live.try_send(Live::ApplyFailed {
                            shard: id,
                            reason: format!("cannot reset the journal: {e}"),
                        });
                    }
                }
            }
            Command::Apply { start, bytes } => {
                if failed {
                    continue;
                }
                match shard.apply_shipped(start, &bytes) {
                    Ok(end) => {
                        received.set(end);
                        let next = shard.next_position();
                        let shard = shard.clone();
                        let live = port.live.clone();
                        let received = received.clone();
                        // Acknowledged twice: now as received, and once fsynced.
                        rt::spawn_local(async move {
                            match shard.wait_durable(end).await {
                                Ok(()) => {
                                    let _ = live.try_send(Live::Applied {
                                        shard: id,
                                        received: received.get().max(end),
                                        durable: end,
                                        next,
                                    });
                                }
                                Err(e) => {
                                    let _ = live.try_send(Live::ApplyFailed {
                                        shard: id,
                                        reason: format!("journal write failed: {e}"),
                                    });
                                }
                            }
                        });
                    }
                    Err(e) => {
                        failed = true;
                        let _ = port.live.try_send(Live::ApplyFailed {
                            shard: id,
                            reason: e.to_string(),
                        });
                    }
                }
            }
            Command::ApplyVolatile { record } => {
                if !failed {
                    if let Err(reason) = shard.apply_volatile(&record) {
                        // A format bug, not a divergence of the log: log and go on.
                        tracing::error!(shard = id, %reason, "undecodable volatile record skipped");
                    }
                }
            }
            Command::BeginSync {
                link: attach,
                slave_has,
            } => start_catch_up(&shard, &port.catch_up, &link, id, attach, slave_has),
            // Same attach, a new round: the slave's copy continues at `from`
            // (begin_shipping falls back to the oldest segment if `from` is gone; the
            // core then sees the Plan start elsewhere and drops the slave).
            Command::CatchUpFrom { link: attach, from } => {
                start_catch_up(&shard, &port.catch_up, &link, id, attach, Some(from))
            }
            Command::RequireReplica => {
                let from = shard.require_replica();
                let _ = port.live.try_send(Live::Requiring { shard: id, from });
            }
            Command::Acked(pos) => shard.replica_acked(pos),
            Command::ConfirmAlone(until) => shard.set_grant(match until {
                Some(t) => Grant::Until(t),
                None => Grant::Withheld,
            }),
            Command::SlaveLost => {
                link.set(0);
                shard.stop_shipping();
            }
            Command::Promote { takeover } => {
                shard.promote(takeover).await;
                let _ = promoted.send(id);
            }
        }
    }
}

/// Starts shipping to the slave of attach `attach`, whose copy of this shard ends at
/// `slave_has`: a catch-up from the journal, then live batches.
fn start_catch_up(
    shard: &Rc<Shard>,
    out: &async_channel::Sender<CatchUp>,
    current: &Rc<Cell<u64>>,
    id: ShardId,
    attach: u64,
    slave_has: Option<Position>,
) {
    let (start, until) = shard.begin_shipping(slave_has);
    current.set(attach);
    rt::spawn_local(catch_up(
        shard.clone(),
        out.clone(),
        current.clone(),
        id,
        attach,
        start,
        until,
    ));
}

/// Streams `[start, until)` of the shard's journal to the core, then says done (and
/// where the slave's copy continues).
async fn catch_up(
    shard: Rc<Shard>,
    out: async_channel::Sender<CatchUp>,
    current: Rc<Cell<u64>>,
    id: ShardId,
    link: u64,
    start: Position,
    until: Position,
) {
    let fail = |reason: String| CatchUp::Failed {
        shard: id,
        link,
        reason,
    };
    if out
        .send(CatchUp::Plan {
            shard: id,
            link,
            start,
            until,
        })
        .await
        .is_err()
    {
        return;
    }
    let mut at = start;
    if at < until {
        if let Err(e) = shard.wait_durable(until).await {
            let _ = out.send(fail(e.to_string())).await;
            return;
        }
    }
    while at < until {
        if current.get() != link {
            shard.end_catch_up();
            return;
        }
        match shard.read_span(at, until, CATCH_UP_CHUNK_BYTES).await {
            Ok((bytes, next)) => {
                if bytes.is_empty() {
                    break;
                }
                if out
                    .send(CatchUp::Chunk {
                        shard: id,
                        link,
                        start: at,
                        bytes,
                    })
                    .await
                    .is_err()
                {
                    return;
                }
                at = next;
            }
            Err(e) => {
                shard.end_catch_up();
                let _ = out.send(fail(e.to_string())).await;
                return;
            }
        }
    }
    shard.end_catch_up();
    let _ = out
        .send(CatchUp::Done {
            shard: id,
            link,
            next: at,
        })
        .await;
}
