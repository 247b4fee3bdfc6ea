//! The state a journal shares with its background tasks: [`State`] behind
//! [`Inner`] (one `Rc` held by the `Journal` handle, the writer task and segment
//! pre-creation), the pending [`Batch`]es and the batch [`InFlight`].
//!
//! `journal` (append, read), `mirror` (the replication side) and `writer` (group
//! commit) all work on this state; it lives in its own module so that none of them
//! imports another to reach it. The two helpers every appending path needs are here
//! too: [`State::batch_for`] (where the next framed bytes go) and
//! [`Inner::wake_writer`].

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::rc::Rc;
use std::task::Waker;

use bytes::Bytes;

use crate::rt::file::align_down;

use super::config::JournalConfig;
use super::segment::Segment;
use super::waiters::{DurableWaiters, WakerList};
use super::{Position, StoreError};

/// Counters since open (for metrics and benches).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JournalStats {
    pub records_appended: u64,
    /// Framed bytes of the records appended (header, payload, padding).
    pub bytes_appended: u64,
    /// Write+fdatasync cycles completed.
    pub fsyncs: u64,
    /// Bytes handed to `write_at`, including the rewritten tail block and padding.
    pub bytes_written: u64,
}

/// What one write+fdatasync (one group commit) did, as the sync observer is told
/// (see `Journal::set_sync_observer`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Synced {
    /// The write and the fdatasync together.
    pub elapsed: std::time::Duration,
    /// Records it made durable (appended ones, or records of shipped batches on a
    /// slave); roll markers are not records. 0 for a batch holding only a roll marker.
    pub records: u64,
    /// New framed bytes it made durable: records and a closing roll marker, not the
    /// rewritten partial tail block nor the zero padding to the block boundary.
    pub bytes: u64,
}

/// A batch of framed bytes for one segment, starting on a block boundary.
pub(crate) struct Batch {
    pub(crate) segment: u64,
    /// Block-aligned segment offset of `buf[0]`.
    pub(crate) base: u32,
    /// Offset where this batch's new bytes start; `[base, new_from)` is the already
    /// written partial tail block, rewritten because O_DIRECT writes whole blocks.
    pub(crate) new_from: u32,
    pub(crate) buf: Vec<u8>,
    /// Records among the new bytes (whoever adds a record's frame counts it).
    pub(crate) records: u32,
}

impl Batch {
    pub(crate) fn end(&self) -> u32 {
        self.base + self.buf.len() as u32
    }
}

/// The batch the writer is writing right now (readable from memory meanwhile).
pub(crate) struct InFlight {
    pub(crate) segment: u64,
    pub(crate) base: u32,
    pub(crate) bytes: Bytes,
}

pub(crate) struct State {
    pub(crate) cfg: JournalConfig,
    /// Open segments by id, oldest first; may include the pre-created next one.
    pub(crate) segments: BTreeMap<u64, Rc<Segment>>,
    /// Sizes chosen for segments not created yet, when a record larger than a
    /// standard segment needs one of its own (absent: `cfg.segment_bytes`).
    pub(crate) planned_sizes: BTreeMap<u64, u64>,

    // ---- append side (only `append` moves these) ----
    /// Segment the next record goes to; it may not exist on disk yet.
    pub(crate) cursor_segment: u64,
    /// Size of `cursor_segment` (from its header if it exists, else the config).
    pub(crate) cursor_segment_bytes: u64,
    /// Offset of the next record in `cursor_segment`; 8-aligned.
    pub(crate) cursor_offset: u32,
    /// End of the last framed byte handed out (record or roll marker).
    pub(crate) appended: Position,
    /// Batches not yet taken by the writer, in log order.
    pub(crate) pending: VecDeque<Batch>,
    /// The partial last block of what the writer took last: `(segment, base, bytes)`.
    pub(crate) tail: (u64, u32, Vec<u8>),

    // ---- writer side ----
    pub(crate) in_flight: Option<InFlight>,
    /// Everything before this is written and fdatasync'ed. Never exceeds `appended`.
    pub(crate) durable: Position,
    /// End of the bytes the writer has taken (handed to the tap, if any): see
    /// `Journal::tapped_end`. Between `durable` and `appended`.
    pub(crate) tapped: Position,
    /// Set on the first write/sync error: the journal stops (see `StoreError::Failed`).
    pub(crate) failed: Option<String>,
    /// After a failure whose outcome is unknown (see `writer`): waits for positions up
    /// to here (and beyond `durable`) are never answered.
    pub(crate) unknown_until: Position,
    /// Told once, when the journal fails (the node stops on it).
    pub(crate) failure_observer: Option<FailureObserver>,
    /// The writer cannot create the next segment for lack of space (ENOSPC, EDQUOT):
    /// writes are paused, not failed, and resume by themselves (see `writer`).
    pub(crate) disk_full: Option<String>,
    /// The handle asked the writer to drain and stop.
    pub(crate) closing: bool,
    /// `Journal::reset` is running: appends and shipped batches are refused.
    pub(crate) resetting: bool,
    /// `remove_segments_before` calls deleting files right now (`reset` waits for
    /// them: a late removal by name must not hit a segment created after the reset).
    pub(crate) removing: u32,
    pub(crate) writer_done: bool,
    /// Segment being created (by the pre-creation task or the writer).
    pub(crate) creating: Option<u64>,
    pub(crate) waiters: DurableWaiters,
    pub(crate) writer_waker: Option<Waker>,
    /// The writer holds a batch nobody waits for yet (see `writer::LINGER`): a new
    /// waiter wakes it.
    pub(crate) lingering: bool,
    /// Segment created, creation failed, pre-creation task finished, batch durable,
    /// segment removal finished, writer exited.
    pub(crate) events: WakerList,
    /// Receives each batch's new framed bytes and their start position, once the
    /// local write succeeded and before its fdatasync (replication ships them in
    /// parallel with the fsync; nothing that failed to write is shipped).
    pub(crate) tap: Option<Box<dyn Fn(Position, Bytes)>>,
    /// Told how long each write+fdatasync took and what it made durable (metrics; the
    /// store does not care).
    pub(crate) sync_observer: Option<Rc<dyn Fn(Synced)>>,
    pub(crate) stats: JournalStats,
}

/// Told why the journal failed (see `Journal::set_failure_observer`).
pub type FailureObserver = Rc<dyn Fn(&str)>;

pub(crate) struct Inner {
    pub(crate) state: RefCell<State>,
    /// Distinguishes journal instances in logs.
    pub(crate) dir: PathBuf,
    /// Guards against starting pre-creation twice from `append`.
    pub(crate) precreate_started_for: Cell<u64>,
    /// Pre-creation tasks spawned and not finished (`reset` waits for them, so that
    /// none creates a segment of the old log after it).
    pub(crate) precreates: Cell<u32>,
}

impl Inner {
    /// Wakes the writer task if it is waiting for work.
    pub(crate) fn wake_writer(&self) {
        let w = self.state.borrow_mut().writer_waker.take();
        if let Some(w) = w {
            w.wake();
        }
    }
}

impl State {
    /// Whether the journal takes new bytes (appends, shipped batches, a reset): not
    /// after a failure, once closing, or while a reset runs.
    pub(crate) fn accepting(&self) -> Result<(), StoreError> {
        if let Some(why) = &self.failed {
            return Err(StoreError::Failed(why.clone()));
        }
        if self.closing {
            return Err(StoreError::Closed);
        }
        if self.resetting {
            return Err(StoreError::Resetting);
        }
        Ok(())
    }

    /// The pending batch that `framed` more bytes at the cursor go into, starting a new
    /// one (seeded with the partial tail block) when there is none for this segment or
    /// the last one is full.
    pub(crate) fn batch_for(&mut self, framed: u32) -> &mut Batch {
        let st = self;
        let seg = st.cursor_segment;
        let off = st.cursor_offset;
        let max = st.cfg.max_batch_bytes;
        let reuse = st.pending.back().is_some_and(|b| {
            b.segment == seg && (b.end() - b.new_from) as usize + framed as usize <= max
        });
        if !reuse {
            let base = align_down(u64::from(off)) as u32;
            let prefix: Vec<u8> = match st.pending.back() {
                Some(b) if b.segment == seg => b.buf[(base - b.base) as usize..].to_vec(),
                _ if st.tail.0 == seg && off > base => {
                    debug_assert_eq!(st.tail.1, base);
                    st.tail.2.clone()
                }
                _ => Vec::new(),
            };
            assert_eq!(
                base as usize + prefix.len(),
                off as usize,
                "tail block out of step"
            );
            let mut buf =
                Vec::with_capacity(prefix.len() + (framed as usize).max(max.min(64 << 10)));
            buf.extend_from_slice(&prefix);
            st.pending.push_back(Batch {
                segment: seg,
                base,
                new_from: off,
                buf,
                records: 0,
            });
        }
        let b = st.pending.back_mut().expect("a batch was just ensured");
        debug_assert_eq!(b.end(), off);
        b
    }
}
