//! The bound on what a master holds in memory for its slave (`replicationBuffer`):
//! pure decisions, one shard's stream at a time.
//!
//! ```text
//!            room                      no room for a live batch
//!   Live ──────────▶ send      Live ──────────────────────────▶ Behind { from: its start }
//!                                                                  │ socket output below limit/2
//!   CatchingUp ─ room ─▶ queue (until Done)                        ▼
//!       │ no room: drop the queue, overflowed          CatchingUp (a catch-up round from `from`)
//!       ▼ Done { next }                                            │ Done, not overflowed
//!   overflowed ? Behind { from: next } : Live (flush the queue) ◀──┘
//! ```
//!
//! A shard that is Behind (or whose round overflowed) keeps nothing for the slave in
//! memory: its live batches are dropped here and read back from the journal by the
//! next catch-up round, exactly as a late slave's backlog is. Non-persistent frames
//! have no journal to be read back from: beyond the bound they are dropped.

use crate::store::Position;

/// One shard's stream to the slave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Stream {
    /// Live batches go straight to the link.
    Live,
    /// A catch-up round streams from the journal; live batches wait in the queue
    /// unless it `overflowed` (then they are dropped and the next round reads them).
    CatchingUp { overflowed: bool },
    /// The slave's copy of this shard continues at `from`; everything from there is
    /// read from the journal once the link has drained.
    Behind { from: Position },
}

/// What to do with one live batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum LiveAction {
    Send,
    Queue,
    /// Not kept: the slave reads it from the journal later.
    Defer,
    /// Not kept, and the stream has just switched to the journal (log it, count it).
    Switch,
}

impl Stream {
    /// A live batch starting at `start`, of `len` bytes, while `buffered` bytes are
    /// held for the slave (queued batches and socket output) under `limit`. Updates
    /// the stream; on [`LiveAction::Switch`] during a round the caller drops its queue.
    pub(super) fn on_live(
        &mut self,
        start: Position,
        len: usize,
        buffered: usize,
        limit: usize,
    ) -> LiveAction {
        let room = buffered.saturating_add(len) <= limit;
        match *self {
            Stream::Behind { .. } | Stream::CatchingUp { overflowed: true } => LiveAction::Defer,
            Stream::Live if room => LiveAction::Send,
            Stream::CatchingUp { overflowed: false } if room => LiveAction::Queue,
            Stream::Live | Stream::CatchingUp { .. } => {
                self.overflow(start);
                LiveAction::Switch
            }
        }
    }

    /// Nothing from `start` on reaches the slave live any more (no room here, or in
    /// the shards' channel). True if this switched the stream.
    pub(super) fn overflow(&mut self, start: Position) -> bool {
        match *self {
            Stream::Live => {
                *self = Stream::Behind { from: start };
                true
            }
            Stream::CatchingUp { overflowed: false } => {
                // Where the slave continues is known only when the round ends
                // (`Done { next }`): a batch queued now may still be covered by it.
                *self = Stream::CatchingUp { overflowed: true };
                true
            }
            Stream::Behind { .. } | Stream::CatchingUp { overflowed: true } => false,
        }
    }

    /// The round ended; the slave's copy continues at `next`. True: flush the queue
    /// (the stream is live again).
    pub(super) fn on_round_done(&mut self, next: Position) -> bool {
        match *self {
            Stream::CatchingUp { overflowed: true } => {
                *self = Stream::Behind { from: next };
                false
            }
            Stream::CatchingUp { overflowed: false } => {
                *self = Stream::Live;
                true
            }
            // A Done of a round this stream did not start: nothing changes.
            Stream::Live | Stream::Behind { .. } => false,
        }
    }

    /// Where a new round must start, if this stream is Behind and the link has
    /// drained enough (`socket` bytes of output) to take one.
    pub(super) fn resume_from(&self, socket: usize, limit: usize) -> Option<Position> {
        match *self {
            Stream::Behind { from } if socket <= limit / 2 => Some(from),
            _ => None,
        }
    }

    pub(super) fn is_live(&self) -> bool {
        *self == Stream::Live
    }
}

/// Whether a non-persistent frame of `len` bytes may be sent while `buffered` bytes
/// are held for the slave under `limit` (false: dropped for the slave).
pub(super) fn volatile_fits(len: usize, buffered: usize, limit: usize) -> bool {
    buffered.saturating_add(len) <= limit
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: usize = 1000;

    #[test]
    fn live_sends_while_there_is_room_then_switches_to_the_journal() {
        let mut s = Stream::Live;
        let p = Position::new(1, 4096);
        assert_eq!(s.on_live(p, 100, 800, LIMIT), LiveAction::Send);
        assert_eq!(s, Stream::Live);
        let q = Position::new(1, 8192);
        assert_eq!(s.on_live(q, 300, 800, LIMIT), LiveAction::Switch);
        assert_eq!(s, Stream::Behind { from: q });
        // Every later batch is left on disk, even with room again.
        let r = Position::new(1, 12288);
        assert_eq!(s.on_live(r, 10, 0, LIMIT), LiveAction::Defer);
        assert_eq!(s, Stream::Behind { from: q }, "resumes where it stopped");
    }

    #[test]
    fn a_behind_stream_resumes_once_the_socket_drained_below_half() {
        let from = Position::new(2, 4096);
        let s = Stream::Behind { from };
        assert_eq!(s.resume_from(LIMIT / 2 + 1, LIMIT), None);
        assert_eq!(s.resume_from(LIMIT / 2, LIMIT), Some(from));
        assert_eq!(Stream::Live.resume_from(0, LIMIT), None);
        assert_eq!(
            Stream::CatchingUp { overflowed: true }.resume_from(0, LIMIT),
            None
        );
    }

    #[test]
    fn a_round_queues_then_goes_live_or_behind_at_done() {
        let mut s = Stream::CatchingUp { overflowed: false };
        let p = Position::new(3, 4096);
        assert_eq!(s.on_live(p, 100, 0, LIMIT), LiveAction::Queue);
        let next = Position::new(3, 65536);
        assert!({
            let mut t = s;
            t.on_round_done(next)
        });
        assert_eq!(s.on_live(p, 100, 950, LIMIT), LiveAction::Switch);
        assert_eq!(s, Stream::CatchingUp { overflowed: true });
        assert_eq!(s.on_live(p, 1, 0, LIMIT), LiveAction::Defer);
        // The slave continues where the round ended, not at a dropped batch (which
        // the round may have covered).
        assert!(!s.on_round_done(next));
        assert_eq!(s, Stream::Behind { from: next });
        // A stray Done changes nothing.
        assert!(!s.on_round_done(Position::new(9, 4096)));
        assert_eq!(s, Stream::Behind { from: next });
    }

    #[test]
    fn an_overflow_in_the_channel_switches_once() {
        let mut s = Stream::Live;
        let p = Position::new(1, 4096);
        assert!(s.overflow(p));
        assert!(!s.overflow(Position::new(1, 8192)), "the first gap counts");
        assert_eq!(s, Stream::Behind { from: p });
        let mut r = Stream::CatchingUp { overflowed: false };
        assert!(r.overflow(p));
        assert_eq!(r, Stream::CatchingUp { overflowed: true });
    }

    #[test]
    fn volatile_frames_fit_up_to_the_limit() {
        assert!(volatile_fits(100, 900, LIMIT));
        assert!(!volatile_fits(101, 900, LIMIT));
        assert!(!volatile_fits(usize::MAX, 1, LIMIT));
    }
}
