//! The messages between the shards and the replication core, and the channels that
//! carry them. The core never touches a shard's state: it asks, and the shard (its
//! glue task, wired by `node`) answers on its own executor.
//!
//! ```text
//!  shard i ── live ──────────▶ (never waits; bounded in bytes by [`Shipper`])
//!          ── catch-up ──────▶ (bounded: a late slave's backlog is read as it drains)  core
//!          ◀─ commands ─────── (unbounded, in order: applies, resets, promote)
//! ```
//!
//! Everything here is `Send`: the channels cross executors (async-channel wakes a
//! glommio task from another thread through glommio's foreign-waker queue).

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;

use bytes::Bytes;

use crate::metrics::replication::ReplicationStats;
use crate::rt::net::Detached;
use crate::store::Position;
use crate::ShardId;

/// From a shard to the core; never waits. Batches and volatile records are counted
/// in bytes against `replicationBuffer` ([`Shipper`]); the rest are small and few.
pub enum Live {
    /// Master: a journal batch as the writer took it (see `Journal::set_batch_tap`).
    Batch {
        shard: ShardId,
        start: Position,
        bytes: Bytes,
    },
    /// Master: a change that is not journaled but that the slave holds in memory (an
    /// encoded record: a non-persistent message or its removal).
    Volatile { shard: ShardId, record: Bytes },
    /// Master: the channel was full; the live batch starting at `from` (and maybe
    /// later ones) was not posted: the slave must read this shard from the journal
    /// from there on.
    Overflow { shard: ShardId, from: Position },
    /// Master: every reply for a record at or after `from` now waits for the slave
    /// (answer to [`Command::RequireReplica`]).
    Requiring { shard: ShardId, from: Position },
    /// Slave: the shard appended a shipped batch up to `received`, and everything up to
    /// `durable` is fsynced (`durable <= received`); the next batch must start at
    /// `next` (after a roll marker: offset 4096 of the next segment).
    Applied {
        shard: ShardId,
        received: Position,
        durable: Position,
        next: Position,
    },
    /// Slave: the shard cannot apply what it was sent (a gap, a corrupt batch, a
    /// failed journal): the link must be dropped and resynchronised.
    ApplyFailed { shard: ShardId, reason: String },
    /// Master: a client connector accepted a connection that opened with a
    /// replication Hello (nothing of it has been read yet; on a TLS connector the
    /// handshake is done and the session moves along). `slot` is the connection's
    /// place under the connector's `maximumConnections`: held as long as the link
    /// lives, so replication handshakes count like any other connection.
    SlaveSocket {
        /// Boxed: a TLS session is over a kilobyte, the other messages are small.
        stream: Box<Detached>,
        slot: ConnectionSlot,
    },
}

/// Whatever keeps a connection counted against its connector while it lives (opaque
/// here: the connector's admission, released on drop).
pub type ConnectionSlot = Box<dyn std::any::Any + Send>;

/// From a shard to the core, bounded: the catch-up stream of one attach.
pub enum CatchUp {
    /// The shard will ship `[start, until)` from its journal, then live batches from
    /// `until` on.
    Plan {
        shard: ShardId,
        link: u64,
        start: Position,
        until: Position,
    },
    Chunk {
        shard: ShardId,
        link: u64,
        start: Position,
        bytes: Bytes,
    },
    /// The stream is complete; the slave's copy continues at `next` (`until`, or
    /// offset 4096 of the next segment when what was read ended with a roll marker).
    Done {
        shard: ShardId,
        link: u64,
        next: Position,
    },
    Failed {
        shard: ShardId,
        link: u64,
        reason: String,
    },
}

/// From the core to one shard, in order.
#[derive(Debug)]
pub enum Command {
    /// Master: a slave attaches (link id `link`); it holds `slave_has` if it holds a
    /// prefix of this master's log, else `None`. Start shipping live batches and
    /// stream the catch-up ([`CatchUp`]).
    BeginSync {
        link: u64,
        slave_has: Option<Position>,
    },
    /// Master: the attached slave's live stream overflowed the master's buffer:
    /// stream the journal from `from` (where its copy continues) to the current end,
    /// as [`Command::BeginSync`] does, then go on live.
    CatchUpFrom { link: u64, from: Position },
    /// Master: from now on replies wait for the slave's acknowledgement.
    RequireReplica,
    /// Master: the slave acknowledged everything before this position.
    Acked(Position),
    /// Master: the slave is gone: stop shipping; waiting replies wait for a grant.
    SlaveLost,
    /// Master: whether replies may go out without a slave acknowledgement
    /// (`replication::machine`'s grant to confirm alone): until that instant, or not
    /// (`None`). Renewed on every heartbeat while it holds.
    ConfirmAlone(Option<std::time::Instant>),
    /// Slave: throw the journal and state away; the next batch starts at `start`.
    /// `diverged_from: Some((from, epoch))`: this node's log and the master's are
    /// byte-identical before `from` and nothing at or after it is on the master
    /// (`Position(0)` if unknown: all of it); `epoch` is the one this node wrote its
    /// log under. Records after `from` are then set aside, never deleted
    /// (`Shard::reset_diverged`). `None`: nothing diverged, the journal is deleted.
    Reset {
        start: Position,
        diverged_from: Option<(Position, u64)>,
    },
    /// Slave: a shipped batch to append and apply.
    Apply { start: Position, bytes: Bytes },
    /// Slave: a volatile record to apply in memory.
    ApplyVolatile { record: Bytes },
    /// Slave: report where the journal ends (answered with `Applied`).
    Report,
    /// Serve: resolve what recovery resolves and get ready (the node opens the
    /// connectors once every shard is promoted). `takeover`: this node was a slave.
    Promote { takeover: bool },
}

/// One shard's ends, as the node hands them to that shard's glue task.
pub struct ShardPort {
    pub shard: ShardId,
    pub live: async_channel::Sender<Live>,
    pub catch_up: async_channel::Sender<CatchUp>,
    pub commands: async_channel::Receiver<Command>,
}

/// The core's ends.
pub struct CorePort {
    pub live: async_channel::Receiver<Live>,
    pub catch_up: async_channel::Receiver<CatchUp>,
    pub commands: Vec<async_channel::Sender<Command>>,
}

/// Most catch-up chunks in flight per attach before the readers wait (each up to
/// [`CATCH_UP_CHUNK_BYTES`]); fewer when `replicationBuffer` is smaller, so that what
/// the master holds for a slave reading its journal stays within that bound.
const CATCH_UP_QUEUE_MAX: usize = 16;

/// Bytes of journal a catch-up chunk carries at most (one record may exceed it).
pub const CATCH_UP_CHUNK_BYTES: usize = 1 << 20;

/// Posts one shard's live batches and volatile records to the core, counting their
/// bytes against the buffer limit so that a core that falls behind (a slow slave, a
/// starved executor) never makes the channel grow: past the limit a batch is not
/// posted and the core is told where the gap starts ([`Live::Overflow`]); a volatile
/// record is dropped for the slave (counted and logged).
pub struct Shipper {
    shard: ShardId,
    live: async_channel::Sender<Live>,
    stats: Arc<ReplicationStats>,
    limit: u64,
    /// A batch was not posted and no batch has been since: the core has been told.
    gap: AtomicBool,
    /// Volatile records are being dropped (logged once per run of drops).
    dropping_volatile: AtomicBool,
}

impl Shipper {
    pub fn new(
        shard: ShardId,
        live: async_channel::Sender<Live>,
        stats: Arc<ReplicationStats>,
        limit: u64,
    ) -> Shipper {
        Shipper {
            shard,
            live,
            stats,
            limit,
            gap: AtomicBool::new(false),
            dropping_volatile: AtomicBool::new(false),
        }
    }

    /// A journal batch the writer tapped.
    pub fn batch(&self, start: Position, bytes: Bytes) {
        let len = bytes.len() as u64;
        if !self.stats.reserve_channel(len, self.limit) {
            self.stats.add_deferred(len);
            // One Overflow per gap: the core drops every later batch of this shard
            // until it has read the journal from `start`.
            if !self.gap.swap(true, Relaxed) {
                let _ = self.live.try_send(Live::Overflow {
                    shard: self.shard,
                    from: start,
                });
            }
            return;
        }
        self.gap.store(false, Relaxed);
        let posted = self.live.try_send(Live::Batch {
            shard: self.shard,
            start,
            bytes,
        });
        if posted.is_err() {
            // The core is gone (process end): nothing will take it out again.
            self.stats.release_channel(len);
        }
    }

    /// A non-persistent change (not journaled).
    pub fn volatile(&self, record: Bytes) {
        let len = record.len() as u64;
        if !self.stats.reserve_channel(len, self.limit) {
            self.stats.add_volatile_dropped(len);
            if !self.dropping_volatile.swap(true, Relaxed) {
                tracing::warn!(
                    shard = self.shard,
                    limit = self.limit,
                    "replication buffer full: non-persistent messages are not sent to the \
                     slave (a takeover would lose them); see replicationBuffer"
                );
            }
            return;
        }
        self.dropping_volatile.store(false, Relaxed);
        let posted = self.live.try_send(Live::Volatile {
            shard: self.shard,
            record,
        });
        if posted.is_err() {
            self.stats.release_channel(len);
        }
    }
}

/// How many catch-up chunks may wait for the core: `replicationBuffer` worth, at
/// least one, at most [`CATCH_UP_QUEUE_MAX`].
fn catch_up_queue(buffer_bytes: usize) -> usize {
    (buffer_bytes / CATCH_UP_CHUNK_BYTES).clamp(1, CATCH_UP_QUEUE_MAX)
}

/// Builds the channels for `shards` shards; `buffer_bytes` is `replicationBuffer`.
pub fn ports(shards: usize, buffer_bytes: usize) -> (Vec<ShardPort>, CorePort) {
    let (live_tx, live_rx) = async_channel::unbounded();
    let (catch_tx, catch_rx) = async_channel::bounded(catch_up_queue(buffer_bytes));
    let mut shard_ports = Vec::with_capacity(shards);
    let mut commands = Vec::with_capacity(shards);
    for shard in 0..shards {
        let (tx, rx) = async_channel::unbounded();
        commands.push(tx);
        shard_ports.push(ShardPort {
            shard,
            live: live_tx.clone(),
            catch_up: catch_tx.clone(),
            commands: rx,
        });
    }
    (
        shard_ports,
        CorePort {
            live: live_rx,
            catch_up: catch_rx,
            commands,
        },
    )
}
