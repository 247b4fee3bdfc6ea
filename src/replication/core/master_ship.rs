//! What the master holds for its attached slave and ships to it: the [`Attached`]
//! slave and its per-shard [`ShardSync`], journal batches (live, or from a catch-up)
//! with the records and bytes counted for acknowledgement, non-persistent frames, and
//! the `replicationBuffer` bound: a shard whose live stream does not fit switches to
//! catch-up from the journal (the decisions are in [`flow`]).

use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;

use super::flow::{self, LiveAction, Stream};
use super::master::LOG_TARGET;
use super::Core;
use crate::replication::auth::{Key, Nonces};
use crate::replication::frame::{Body, Frame};
use crate::replication::link::Link;
use crate::store::{self, BatchFrame, Position};
use crate::ShardId;

/// One shard's side of an attached slave.
pub(super) struct ShardSync {
    /// Live, catching up from the journal, or behind (see [`flow`]).
    pub(super) stream: Stream,
    /// Live batches that arrived while the catch-up stream was still going, and
    /// their bytes (bounded by `replicationBuffer`, with the socket output).
    pub(super) queued: VecDeque<(Position, Bytes)>,
    pub(super) queued_bytes: usize,
    /// Set while a round started by [`Command::CatchUpFrom`] waits for its Plan,
    /// which must start here.
    pub(super) replan_from: Option<Position>,
    pub(super) acked: Position,
    pub(super) requiring_from: Option<Position>,
    /// Where the last batch shipped on this link ends.
    pub(super) shipped_end: Position,
    /// Shipped and not yet acknowledged: (end, records, bytes, when shipped).
    pub(super) unacked: VecDeque<(Position, u64, u64, Instant)>,
}

impl ShardSync {
    /// A shard of a slave that just attached: its first round is planned
    /// ([`Command::BeginSync`]); live batches wait for it.
    pub(super) fn new() -> ShardSync {
        ShardSync {
            stream: Stream::CatchingUp { overflowed: false },
            queued: VecDeque::new(),
            queued_bytes: 0,
            replan_from: None,
            acked: Position::default(),
            requiring_from: None,
            shipped_end: Position::default(),
            unacked: VecDeque::new(),
        }
    }

    pub(super) fn drop_queue(&mut self) {
        self.queued.clear();
        self.queued_bytes = 0;
    }
}

/// The master's view of its attached slave.
pub(super) struct Attached {
    pub(super) link: Rc<Link>,
    pub(super) link_id: u64,
    /// Welcome goes out once every shard has planned its catch-up; frames before it
    /// wait in `pending`.
    pub(super) welcomed: bool,
    pub(super) pending: Vec<Frame>,
    /// Payload bytes in `pending`.
    pub(super) pending_bytes: usize,
    /// Non-persistent frames are being dropped (logged once per run of drops).
    pub(super) dropping_volatile: bool,
    pub(super) starts: Vec<Option<Position>>,
    pub(super) shards: Vec<ShardSync>,
    /// The key and nonces of this link's handshake (the Welcome is proven with them).
    pub(super) auth: (Key, Nonces),
    /// When the catch-up was streamed and replies started to wait for this slave.
    pub(super) all_done: Option<Instant>,
    pub(super) in_sync: bool,
    /// The machine was told the slave caught up ([`Attached::check_in_sync`]).
    pub(super) caught_up: bool,
    /// The slave's node id (as its Proof says it).
    pub(super) node: String,
    /// Numbers Volatile frames (for logs; the slave applies them in order).
    pub(super) volatile_seq: u64,
}

impl Attached {
    pub(super) fn send(&mut self, core: &Core, shard: usize, start: Position, bytes: Bytes) {
        let (records, end) = scan_batch(start, &bytes);
        let len = bytes.len() as u64;
        core.s.stats.add_shipped(records, len);
        core.s.stats.observe_frame(records, len);
        self.shards[shard]
            .unacked
            .push_back((end, records, len, Instant::now()));
        self.shards[shard].shipped_end = self.shards[shard].shipped_end.max(end);
        let frame = Frame {
            epoch: core.state.borrow().epoch,
            body: Body::Batch {
                shard,
                start: start.0,
                bytes,
            },
        };
        if self.welcomed {
            self.link.send(&frame);
        } else {
            self.pending_bytes += len as usize;
            self.pending.push(frame);
        }
    }

    /// Bytes held in memory for this slave: frames waiting for the Welcome, queued
    /// live batches and the socket's output.
    pub(super) fn buffered(&self) -> usize {
        self.queued_bytes() + self.link.backlog()
    }

    pub(super) fn queued_bytes(&self) -> usize {
        self.pending_bytes + self.shards.iter().map(|s| s.queued_bytes).sum::<usize>()
    }

    pub(super) fn send_volatile(&mut self, core: &Core, shard: ShardId, record: Bytes) {
        let len = record.len();
        let limit = core.s.buffer_bytes;
        if !flow::volatile_fits(len, self.buffered(), limit) {
            core.s.stats.add_volatile_dropped(len as u64);
            if !self.dropping_volatile {
                self.dropping_volatile = true;
                tracing::warn!(target: LOG_TARGET,
                    slave = %self.link.peer,
                    buffered = self.buffered(),
                    limit,
                    "replication buffer full: non-persistent messages are not sent to the \
                     slave (a takeover would lose them); see replicationBuffer"
                );
            }
            return;
        }
        if self.dropping_volatile {
            self.dropping_volatile = false;
            tracing::info!(target: LOG_TARGET, slave = %self.link.peer, "non-persistent messages reach the slave again");
        }
        self.volatile_seq += 1;
        let frame = Frame {
            epoch: core.state.borrow().epoch,
            body: Body::Volatile {
                shard,
                seq: self.volatile_seq,
                record,
            },
        };
        if self.welcomed {
            self.link.send(&frame);
        } else {
            self.pending_bytes += len;
            self.pending.push(frame);
        }
    }

    pub(super) fn ship_live(&mut self, core: &Core, shard: usize, start: Position, bytes: Bytes) {
        let len = bytes.len();
        let held = self.buffered();
        let limit = core.s.buffer_bytes;
        match self.shards[shard].stream.on_live(start, len, held, limit) {
            LiveAction::Send => self.send(core, shard, start, bytes),
            LiveAction::Queue => {
                let s = &mut self.shards[shard];
                s.queued_bytes += len;
                s.queued.push_back((start, bytes));
            }
            LiveAction::Defer => core.s.stats.add_deferred(len as u64),
            LiveAction::Switch => {
                core.s.stats.add_deferred(len as u64);
                self.switched(core, shard, start, held);
            }
        }
    }

    /// The shards' channel was full at `from`: nothing of `shard` from there on
    /// reached the core.
    pub(super) fn on_overflow(&mut self, core: &Core, shard: usize, from: Position) {
        if self.shards[shard].stream.overflow(from) {
            let held = self.buffered();
            self.switched(core, shard, from, held);
        }
    }

    /// `shard`'s stream no longer holds live batches in memory: what the slave
    /// misses from `from` on is read back from the journal.
    fn switched(&mut self, core: &Core, shard: usize, from: Position, held: usize) {
        self.shards[shard].drop_queue();
        core.s.stats.add_switch();
        tracing::warn!(target: LOG_TARGET,
            slave = %self.link.peer,
            shard,
            from = %from,
            buffered = held,
            limit = core.s.buffer_bytes,
            "the slave is slow: its live stream of this shard switches to catch-up from the \
             journal (replicationBuffer reached)"
        );
    }
}

/// Counts the records in a shipped batch and finds its end (where the slave's
/// acknowledgement of all of it will point: batches never span segments, so a closing
/// roll marker is just its last 8 bytes). The bytes were framed by our own journal; a
/// malformed frame just ends the count (see [`store::batch_frames`]).
fn scan_batch(start: Position, bytes: &[u8]) -> (u64, Position) {
    let records = store::batch_frames(bytes)
        .filter(|f| matches!(f, BatchFrame::Record { .. }))
        .count() as u64;
    (records, Position(start.0 + bytes.len() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    // (The frame walk itself is tested with `store::batch_frames`.)
    #[test]
    fn scan_batch_ends_where_the_bytes_end() {
        let start = Position::new(3, 4096);
        // Garbage never panics: a cut frame or a zero length ends the count.
        assert_eq!(scan_batch(start, &[5, 0, 0]), (0, Position(start.0 + 3)));
        assert_eq!(scan_batch(start, &[0; 16]), (0, Position(start.0 + 16)));
        // One 5-byte record (crc not checked here), padded to 16 bytes.
        let mut one = vec![5, 0, 0, 0, 0, 0, 0, 0];
        one.resize(16, 0xAB);
        assert_eq!(scan_batch(start, &one), (1, Position(start.0 + 16)));
    }
}
