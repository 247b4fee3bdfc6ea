//! [`Journal`]: the handle a shard appends through. Single-threaded (`Rc`, `!Send`):
//! it lives on one executor with its writer task (see `writer`).
//!
//! State is split in three regions that only move forward:
//!
//! ```text
//!   durable            in flight             pending                cursor
//!  ────────┤ written+synced ├── being written ──┤── batches in memory ──┤ next append
//! ```
//!
//! `append` only touches the pending side and never awaits, so a record's position
//! is fixed before any `.await` and two tasks can never get the same offset. The
//! writer hands each batch it takes to the batch tap just before writing it, which
//! moves [`Journal::tapped_end`] to the end of the in-flight batch
//! (`durable <= tapped_end <= appended`).
//!
//! Replication works on the bytes exactly as written (frames as laid out in
//! `format`): a master's batch tap ([`Journal::set_batch_tap`]) ships each batch's new
//! frames, and a slave appends them verbatim with [`Journal::write_shipped`], so the
//! two logs are byte-identical at the same positions. A slave that connects late is
//! sent what it missed from the master's segment files with [`Journal::read_span`]
//! up to [`Journal::tapped_end`] (everything after comes from the tap); a slave whose
//! log diverged, or is older than the master's oldest segment, throws it away with
//! [`Journal::reset`] and mirrors again from [`Journal::oldest_position`].

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;

use crate::rt;
use crate::rt::file::align_down;

use super::format::{self, Frame, FRAME_HEADER_BYTES, HEADER_BYTES, SEGMENT_BYTES_MAX};
use super::segment::{Scanner, Segment};
use super::waiters::{DurableWaiters, WakerList};
use super::{recovery, writer, Location, Position, StoreError};

/// Journal settings.
#[derive(Clone, Debug)]
pub struct JournalConfig {
    /// Directory holding this journal's segments (e.g. `<data>/shard-0/`); created if missing.
    pub dir: PathBuf,
    /// Size of each new segment file (ActiveMQ's `journalMaxFileLength`): a multiple of
    /// 4096, at least 8192, at most 4 GiB - 4096.
    pub segment_bytes: u64,
    /// Upper bound on the record bytes of one write+fdatasync batch (one record larger
    /// than this still goes out, alone).
    pub max_batch_bytes: usize,
    /// Segment id the log starts at when the directory holds no segment at all
    /// (default 1). A slave mirroring a master whose oldest retained segment is `n`
    /// opens its empty directory with `n` so that `write_shipped` at `n:4096` fits.
    /// Ignored when segments exist.
    pub first_segment: u64,
    /// What recovery does with a damaged range of the log (see `recovery`).
    pub on_damage: OnDamage,
}

/// What recovery does when it finds damage: an invalid frame (or zeros) with valid
/// records after it.
#[derive(Clone, Default)]
pub enum OnDamage {
    /// Refuse to open ([`StoreError::Damaged`]), deleting nothing. The default.
    #[default]
    Refuse,
    /// Skip each damaged range (logged, left on disk) and replay every other record
    /// (`--skip-damaged-records`): what the damaged bytes held is lost.
    Skip,
    /// Set the damage aside and open the log as ending just before it, for a node of
    /// a pair, which then copies the rest from its peer before it may serve: the
    /// damaged segment is copied and every later segment moved into
    /// `damaged-<unix ms>/` inside the journal directory (never deleted), and the
    /// damaged segment is cut at the damage as a torn tail would be. `prepare` runs
    /// first and must have recorded durably that this node may not serve alone (else
    /// a restart would serve the shortened log); an error from it refuses the open.
    SetAside {
        prepare: std::sync::Arc<dyn Fn() -> Result<(), String> + Send + Sync>,
    },
}

impl std::fmt::Debug for OnDamage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OnDamage::Refuse => "Refuse",
            OnDamage::Skip => "Skip",
            OnDamage::SetAside { .. } => "SetAside",
        })
    }
}

impl JournalConfig {
    /// Default segment size: 32 MiB.
    pub const DEFAULT_SEGMENT_BYTES: u64 = 32 << 20;
    /// Default batch bound: 1 MiB.
    pub const DEFAULT_MAX_BATCH_BYTES: usize = 1 << 20;

    /// Defaults for everything but the directory.
    pub fn new(dir: impl Into<PathBuf>) -> JournalConfig {
        JournalConfig {
            dir: dir.into(),
            segment_bytes: Self::DEFAULT_SEGMENT_BYTES,
            max_batch_bytes: Self::DEFAULT_MAX_BATCH_BYTES,
            first_segment: 1,
            on_damage: OnDamage::Refuse,
        }
    }

    fn validate(&self) -> Result<(), StoreError> {
        let s = self.segment_bytes;
        if !s.is_multiple_of(4096) || s < 2 * u64::from(HEADER_BYTES) || s > SEGMENT_BYTES_MAX {
            return Err(StoreError::Config(format!(
                "segment_bytes = {s}: must be a multiple of 4096 between 8192 and {SEGMENT_BYTES_MAX}"
            )));
        }
        if self.max_batch_bytes == 0 {
            return Err(StoreError::Config("max_batch_bytes must be > 0".into()));
        }
        check_segment_id(self.first_segment)?;
        Ok(())
    }

    /// Largest payload a new segment holds: everything after the header except the
    /// room kept for the roll marker.
    fn max_payload_bytes(&self) -> usize {
        let room = self.segment_bytes - u64::from(HEADER_BYTES) - u64::from(FRAME_HEADER_BYTES);
        (align_down_8(room) - u64::from(FRAME_HEADER_BYTES)) as usize
    }
}

/// Segment ids are at least 1 (so `Position(0)` is before every record) and small
/// enough that `id << 32` keeps every bit.
fn check_segment_id(id: u64) -> Result<(), StoreError> {
    if id == 0 || id > u64::from(u32::MAX) - 1 {
        return Err(StoreError::Config(format!(
            "segment id {id}: must be between 1 and {}",
            u32::MAX - 1
        )));
    }
    Ok(())
}

fn align_down_8(v: u64) -> u64 {
    v & !7
}

/// A record found by replay at open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayedRecord {
    pub location: Location,
    pub payload: Bytes,
}

/// What [`Journal::append`] fixed for a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    /// Where the record is (or will be) on disk.
    pub location: Location,
    /// Pass to [`Journal::wait_durable`]: the record is durable once this is.
    pub end: Position,
}

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

/// A batch of framed bytes for one segment, starting on a block boundary.
pub(crate) struct Batch {
    pub(crate) segment: u64,
    /// Block-aligned segment offset of `buf[0]`.
    pub(crate) base: u32,
    /// Offset where this batch's new bytes start; `[base, new_from)` is the already
    /// written partial tail block, rewritten because O_DIRECT writes whole blocks.
    pub(crate) new_from: u32,
    pub(crate) buf: Vec<u8>,
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
    /// [`Journal::tapped_end`]. Between `durable` and `appended`.
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
    /// [`Journal::reset`] is running: appends and shipped batches are refused.
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
    /// Told how long each write+fdatasync took (metrics; the store does not care).
    pub(crate) sync_observer: Option<Rc<dyn Fn(std::time::Duration)>>,
    pub(crate) stats: JournalStats,
}

/// Told why the journal failed (see [`Journal::set_failure_observer`]).
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

/// An open journal. Dropping it lets the writer flush what is pending and stop;
/// prefer [`Journal::close`] to learn whether that worked.
pub struct Journal {
    inner: Rc<Inner>,
}

impl Journal {
    /// Opens (creating if needed) the journal in `cfg.dir` and returns every valid
    /// record in order, positioning the writer after the last one. Holds the whole
    /// journal in memory: for tests and tools; the broker streams with
    /// [`Journal::open_with`].
    pub async fn open(cfg: JournalConfig) -> Result<(Journal, Vec<ReplayedRecord>), StoreError> {
        let mut records = Vec::new();
        let (journal, _) = Journal::open_with(cfg, &mut |r| records.push(r)).await?;
        Ok((journal, records))
    }

    /// Opens (creating if needed) the journal in `cfg.dir`, hands every valid record
    /// to `replay` in order as it is read (memory bounded by the scan window, not the
    /// journal), and positions the writer after the last one; returns how many
    /// records were replayed. Recovery rules are in the `recovery` module.
    pub async fn open_with(
        cfg: JournalConfig,
        replay: &mut dyn FnMut(ReplayedRecord),
    ) -> Result<(Journal, u64), StoreError> {
        cfg.validate()?;
        let rec = recovery::recover(&cfg, replay).await?;
        let dir = cfg.dir.clone();
        let state = State {
            cursor_segment: rec.cursor.segment(),
            cursor_segment_bytes: rec.cursor_segment_bytes,
            cursor_offset: rec.cursor.offset(),
            appended: rec.durable,
            pending: VecDeque::new(),
            tail: rec.tail,
            in_flight: None,
            durable: rec.durable,
            tapped: rec.durable,
            failed: None,
            unknown_until: rec.durable,
            failure_observer: None,
            disk_full: None,
            closing: false,
            resetting: false,
            removing: 0,
            writer_done: false,
            creating: None,
            waiters: DurableWaiters::default(),
            writer_waker: None,
            lingering: false,
            events: WakerList::default(),
            tap: None,
            sync_observer: None,
            stats: JournalStats::default(),
            segments: rec.segments,
            planned_sizes: BTreeMap::new(),
            cfg,
        };
        tracing::info!(
            dir = %dir.display(),
            records = rec.records,
            durable = %state.durable,
            "journal opened"
        );
        let inner = Rc::new(Inner {
            state: RefCell::new(state),
            dir,
            precreate_started_for: Cell::new(0),
            precreates: Cell::new(0),
        });
        rt::spawn_local(writer::run(inner.clone()));
        Ok((Journal { inner }, rec.records))
    }

    /// Frames `payload` and queues it for the next batch. Never awaits: the record's
    /// position is fixed when this returns ("ordered"); call [`Journal::wait_durable`]
    /// with `end` to know it is on disk.
    pub fn append(&self, payload: &[u8]) -> Result<Appended, StoreError> {
        let mut guard = self.inner.state.borrow_mut();
        let st = &mut *guard;
        if let Some(why) = &st.failed {
            return Err(StoreError::Failed(why.clone()));
        }
        if st.closing {
            return Err(StoreError::Closed);
        }
        if st.resetting {
            return Err(StoreError::Resetting);
        }
        if payload.is_empty() {
            return Err(StoreError::EmptyRecord);
        }
        // A record larger than a standard segment gets a segment of its own, sized for
        // it (as KahaDB takes messages larger than its journalMaxFileLength).
        let own_segment_bytes = crate::rt::file::align_up(
            u64::from(HEADER_BYTES)
                + format::framed_len_u64(payload.len().min(u32::MAX as usize) as u32)
                + u64::from(FRAME_HEADER_BYTES),
        );
        if payload.len() > u32::MAX as usize || own_segment_bytes > SEGMENT_BYTES_MAX {
            return Err(StoreError::RecordTooLarge {
                len: payload.len(),
                max: st.cfg.max_payload_bytes().max(
                    (SEGMENT_BYTES_MAX
                        - u64::from(HEADER_BYTES)
                        - 2 * u64::from(FRAME_HEADER_BYTES)) as usize,
                ),
                segment_bytes: SEGMENT_BYTES_MAX,
            });
        }
        let framed = format::framed_len(payload.len() as u32);
        let fits = |st: &State| {
            u64::from(st.cursor_offset) + u64::from(framed) + u64::from(FRAME_HEADER_BYTES)
                <= st.cursor_segment_bytes
        };
        // Bounded: at most the current segment and an already created next one are
        // too small; the one after is sized for the record.
        let mut rolls = 0;
        while !fits(st) {
            rolls += 1;
            assert!(rolls <= 3, "record must fit a segment sized for it");
            // Close this segment with the roll marker (room for it is always kept).
            let batch = batch_for(st, FRAME_HEADER_BYTES);
            format::encode_roll(&mut batch.buf);
            let end = batch.end();
            st.appended = Position::new(st.cursor_segment, end);
            st.cursor_segment += 1;
            let next = st.cursor_segment;
            let started = self.inner.precreate_started_for.get() >= next;
            st.cursor_segment_bytes = match st.segments.get(&next) {
                Some(seg) => seg.bytes,
                // Being created in the background at the standard size.
                None if started => st.cfg.segment_bytes,
                None => {
                    let bytes = st.cfg.segment_bytes.max(own_segment_bytes);
                    if bytes != st.cfg.segment_bytes {
                        st.planned_sizes.insert(next, bytes);
                    }
                    bytes
                }
            };
            st.cursor_offset = HEADER_BYTES;
        }
        let offset = st.cursor_offset;
        let batch = batch_for(st, framed);
        debug_assert_eq!(batch.end(), offset);
        format::encode_record(&mut batch.buf, payload);
        let end = Position::new(batch.segment, batch.end());
        debug_assert!(end > st.appended, "positions only grow");
        st.cursor_offset = end.offset();
        st.appended = end;
        st.stats.records_appended += 1;
        st.stats.bytes_appended += u64::from(framed);
        // Create the next segment in the background once this one is half full (or
        // the one we just rolled into, if that was too early) so rolling never waits.
        let cur = st.cursor_segment;
        let target = if !st.segments.contains_key(&cur) {
            Some(cur)
        } else if u64::from(st.cursor_offset) > st.cursor_segment_bytes / 2
            && !st.segments.contains_key(&(cur + 1))
        {
            Some(cur + 1)
        } else {
            None
        };
        let precreate = target.filter(|t| self.inner.precreate_started_for.get() < *t);
        // Wake the writer even if it is mid-fsync: it looks at `pending` when it is done.
        if let Some(w) = st.writer_waker.take() {
            w.wake();
        }
        drop(guard);
        if let Some(id) = precreate {
            self.inner.precreate_started_for.set(id);
            self.inner.precreates.set(self.inner.precreates.get() + 1);
            rt::spawn_local(writer::precreate(self.inner.clone(), id));
        }
        Ok(Appended {
            location: Location {
                segment: end.segment(),
                offset,
                len: payload.len() as u32,
            },
            end,
        })
    }

    /// Resolves once everything up to `end` is written and fdatasync'ed (group commit:
    /// one fdatasync covers every record appended before its batch was taken).
    pub async fn wait_durable(&self, end: Position) -> Result<(), StoreError> {
        DurableWait {
            inner: &self.inner,
            end,
            id: None,
        }
        .await
    }

    /// Everything before this position is durable.
    pub fn durable_position(&self) -> Position {
        self.inner.state.borrow().durable
    }

    /// Bytes of the segment files this journal holds (preallocated: their full size).
    pub fn disk_bytes(&self) -> u64 {
        self.inner
            .state
            .borrow()
            .segments
            .values()
            .map(|s| s.bytes)
            .sum()
    }

    /// Why writes are paused for lack of disk space, while they are.
    pub fn disk_full(&self) -> Option<String> {
        self.inner.state.borrow().disk_full.clone()
    }

    /// End of the last appended record (durable or not).
    pub fn appended_position(&self) -> Position {
        self.inner.state.borrow().appended
    }

    /// Reads one record back, from memory if it is not written yet, verifying its
    /// checksum and length.
    pub async fn read(&self, loc: Location) -> Result<Bytes, StoreError> {
        let bad = |why: &str| StoreError::InvalidLocation(format!("{loc:?}: {why}"));
        if loc.len == 0 || loc.offset < HEADER_BYTES || !loc.offset.is_multiple_of(8) {
            return Err(bad("malformed"));
        }
        let framed = format::framed_len(loc.len);
        let seg = {
            let st = self.inner.state.borrow();
            if loc.end() > st.appended {
                return Err(bad("beyond the end of the log"));
            }
            // Pending batches first (newest data), then the batch being written.
            let in_mem = st
                .pending
                .iter()
                .map(|b| (b.segment, b.base, &b.buf[..]))
                .chain(
                    st.in_flight
                        .iter()
                        .map(|f| (f.segment, f.base, &f.bytes[..])),
                )
                .find(|(s, base, buf)| {
                    *s == loc.segment
                        && loc.offset >= *base
                        && loc.offset + framed <= *base + buf.len() as u32
                });
            if let Some((_, base, buf)) = in_mem {
                let from = (loc.offset - base) as usize;
                return decode_exact(&buf[from..from + framed as usize], loc, &self.inner.dir);
            }
            if loc.end() > st.durable {
                return Err(bad("neither in memory nor durable"));
            }
            match st.segments.get(&loc.segment) {
                Some(seg) => seg.clone(),
                None => return Err(bad("segment removed")),
            }
        };
        let start = align_down(u64::from(loc.offset));
        let end = rt::file::align_up(u64::from(loc.offset) + u64::from(framed));
        let block = seg
            .file
            .read_at(start, (end - start) as usize)
            .await
            .map_err(|e| StoreError::io("read record", &seg.path, e))?;
        let from = (u64::from(loc.offset) - start) as usize;
        let bytes = block
            .get(from..from + framed as usize)
            .ok_or_else(|| StoreError::Corrupt {
                path: seg.path.clone(),
                what: format!("short read for {loc:?}"),
            })?;
        decode_exact(bytes, loc, &seg.path)
    }

    /// Segment ids on disk up to the active one, oldest first.
    pub fn segments(&self) -> Vec<u64> {
        let st = self.inner.state.borrow();
        st.segments
            .keys()
            .copied()
            .filter(|id| *id <= st.cursor_segment)
            .collect()
    }

    /// The segment new records go to.
    pub fn active_segment(&self) -> u64 {
        self.inner.state.borrow().cursor_segment
    }

    /// Deletes every segment older than `segment`. The active segment and any segment
    /// holding records that are not durable yet are kept whatever `segment` says.
    pub async fn remove_segments_before(&self, segment: u64) -> Result<(), StoreError> {
        let doomed: Vec<Rc<Segment>> = {
            let mut st = self.inner.state.borrow_mut();
            if st.resetting {
                // `reset` deletes every segment anyway.
                return Ok(());
            }
            let limit = segment.min(st.cursor_segment).min(st.durable.segment());
            let keep = st.segments.split_off(&limit);
            let doomed = std::mem::replace(&mut st.segments, keep);
            doomed.into_values().collect()
        };
        if doomed.is_empty() {
            return Ok(());
        }
        let _removing = Removing::start(&self.inner);
        for seg in &doomed {
            seg.file
                .remove()
                .await
                .map_err(|e| StoreError::io("remove segment", &seg.path, e))?;
            tracing::info!(segment = seg.id, path = %seg.path.display(), "removed journal segment");
        }
        rt::file::sync_dir(&self.inner.dir)
            .await
            .map_err(|e| StoreError::io("fsync directory", &self.inner.dir, e))
    }

    /// Installs the batch tap: called with each batch's new framed bytes (records and
    /// roll markers, exactly as written) and the position of their first byte, in log
    /// order, once the batch is written locally and before it is fdatasync'ed (never
    /// a batch whose write failed: see the `writer` module).
    pub fn set_batch_tap(&self, tap: Box<dyn Fn(Position, Bytes)>) {
        self.inner.state.borrow_mut().tap = Some(tap);
    }

    /// Slave side of log shipping: appends `bytes`, exactly as a master's batch tap
    /// (see [`Journal::set_batch_tap`]) produced them, at `start`, so this journal
    /// becomes byte-identical to the master's at the same positions. Synchronous like
    /// [`Journal::append`]; returns the end of the last frame, which
    /// [`Journal::wait_durable`] takes.
    ///
    /// * `start` must be [`Journal::next_position`] (the appended end, or offset 4096
    ///   of the next segment after a roll marker), else [`StoreError::ShippedGap`].
    /// * Every frame is checked first (record checksums, zero padding, room in its
    ///   segment, no end marker, no truncated frame); on any fault the batch is
    ///   refused with [`StoreError::ShippedCorrupt`] and the journal is unchanged.
    /// * A roll marker closes its segment and the following bytes, if any, go to
    ///   offset 4096 of the next one. The master's writer never puts two segments in
    ///   one tapped batch (a `Batch` has one segment, and a roll marker is the last
    ///   frame of its segment), but a batch spanning segments is accepted too.
    /// * Segments are created as the bytes say, with the size the master's `append`
    ///   would choose: `segment_bytes` of the config, or a size fitted to a record
    ///   that opens a segment and does not fit a standard one. So the slave must be
    ///   configured with the master's `segment_bytes` for the files (whose header
    ///   records the size) to be byte-identical.
    ///
    /// The bytes go through the ordinary pending batches and group-commit writer
    /// (this journal's own tap, if any, sees them too).
    pub fn write_shipped(&self, start: Position, bytes: &[u8]) -> Result<Position, StoreError> {
        let mut guard = self.inner.state.borrow_mut();
        let st = &mut *guard;
        if let Some(why) = &st.failed {
            return Err(StoreError::Failed(why.clone()));
        }
        if st.closing {
            return Err(StoreError::Closed);
        }
        if st.resetting {
            return Err(StoreError::Resetting);
        }
        let expected = Position::new(st.cursor_segment, st.cursor_offset);
        if start != expected {
            return Err(StoreError::ShippedGap {
                expected,
                got: start,
            });
        }
        // Check everything before touching the state.
        let mut sizes: Vec<(u64, u64)> = Vec::new();
        let frames = walk_shipped(start, bytes, |seg, off, first_len| {
            let size = shipped_segment_bytes(
                st,
                self.inner.precreate_started_for.get(),
                seg,
                off,
                first_len,
            );
            sizes.push((seg, size));
            size
        })?;
        let size_of = |seg: u64| {
            sizes
                .iter()
                .find(|(s, _)| *s == seg)
                .map(|(_, b)| *b)
                .expect("the walk sized every segment it entered")
        };

        // Split at roll markers: one piece per segment.
        let mut from = 0usize;
        let mut records = 0u64;
        let mut record_bytes = 0u64;
        for (i, f) in frames.iter().enumerate() {
            if f.payload.is_some() {
                records += 1;
                record_bytes += (f.range.end - f.range.start) as u64;
            }
            let last = i + 1 == frames.len();
            if !(f.payload.is_none() || last) {
                continue;
            }
            let seg = f.at.segment();
            debug_assert_eq!(
                Position::new(st.cursor_segment, st.cursor_offset),
                Position::new(seg, f.at.offset() - (f.range.start - from) as u32)
            );
            let size = size_of(seg);
            if !st.segments.contains_key(&seg) && size != st.cfg.segment_bytes {
                st.planned_sizes.insert(seg, size);
            }
            st.cursor_segment_bytes = size;
            let piece = &bytes[from..f.range.end];
            let batch = batch_for(st, piece.len() as u32);
            batch.buf.extend_from_slice(piece);
            let end = batch.end();
            st.cursor_offset = end;
            st.appended = Position::new(seg, end);
            from = f.range.end;
            if f.payload.is_none() {
                st.cursor_segment = seg + 1;
                st.cursor_offset = HEADER_BYTES;
                st.cursor_segment_bytes = st
                    .segments
                    .get(&(seg + 1))
                    .map_or(st.cfg.segment_bytes, |s| s.bytes);
            }
        }
        debug_assert_eq!(from, bytes.len());
        st.stats.records_appended += records;
        st.stats.bytes_appended += record_bytes;
        if let Some(w) = st.writer_waker.take() {
            w.wake();
        }
        Ok(st.appended)
    }

    /// Decodes the records of a shipped batch (bytes a batch tap produced, starting at
    /// `start`) so a slave can apply them; roll markers move to the next segment. Any
    /// invalid frame refuses the whole batch with [`StoreError::ShippedCorrupt`].
    /// Payloads share `bytes`' buffer.
    pub fn decode_shipped(
        start: Position,
        bytes: &Bytes,
    ) -> Result<Vec<ReplayedRecord>, StoreError> {
        let frames = walk_shipped(start, bytes, |_, _, _| SEGMENT_BYTES_MAX)?;
        Ok(frames
            .into_iter()
            .filter_map(|f| {
                let payload = f.payload?;
                Some(ReplayedRecord {
                    location: Location {
                        segment: f.at.segment(),
                        offset: f.at.offset(),
                        len: payload.len() as u32,
                    },
                    // Copied out, as recovery does: a slice would pin the whole
                    // received buffer for as long as the message lives in memory (a
                    // 1 KiB body held ~100 KB on the slave), and the memory limit
                    // counts only the record.
                    payload: Bytes::copy_from_slice(&bytes[payload]),
                })
            })
            .collect())
    }

    /// Where the next byte goes: the appended end, or offset 4096 of the next segment
    /// when the log ends with a roll marker. A shipped batch must start here.
    pub fn next_position(&self) -> Position {
        let st = self.inner.state.borrow();
        Position::new(st.cursor_segment, st.cursor_offset)
    }

    /// End of the bytes the writer has taken: the position just after the last byte
    /// handed to the batch tap (whether or not a tap is installed). Before the first
    /// batch since open (or since [`Journal::reset`]) it is the recovered end of the
    /// log (the end of the last valid frame, a final roll marker included; offset
    /// 4096 of the first segment for an empty log; `next` after a reset).
    ///
    /// Every byte before it has been or is being written, and every byte appended
    /// later is tapped later: a master serves a late slave the bytes before this
    /// position with [`Journal::read_span`] (once [`Journal::durable_position`] has
    /// reached it) and everything after from the tap. If it is just after a roll
    /// marker, the next tapped batch starts at offset 4096 of the next segment.
    pub fn tapped_end(&self) -> Position {
        self.inner.state.borrow().tapped
    }

    /// `Position::new(oldest segment still present, 4096)`: where a slave that must
    /// start over mirrors from (see [`Journal::reset`]). With no segment file yet
    /// (an empty log, or just after a reset), the segment the log starts at.
    pub fn oldest_position(&self) -> Position {
        let st = self.inner.state.borrow();
        let oldest = st
            .segments
            .keys()
            .next()
            .copied()
            .unwrap_or(st.cursor_segment)
            .min(st.cursor_segment);
        Position::new(oldest, HEADER_BYTES)
    }

    /// Reads whole frames back from the segment files, verbatim (records with their
    /// padding, and roll markers), starting at the frame at `from`: the catch-up a
    /// master sends a late slave. Returns the bytes and the position right after them
    /// (the `from` of the next call); another journal whose
    /// [`Journal::next_position`] is `from` accepts them with
    /// [`Journal::write_shipped`]`(from, &bytes)`.
    ///
    /// Only the disk is read (O_DIRECT, in windows of at most 256 KiB plus the frame
    /// that needs more), so `until` must not be beyond
    /// [`Journal::durable_position`]. It stops
    ///
    /// * at `until` when `until` is in `from`'s segment (no byte at or after `until`
    ///   is returned; a frame straddling `until` is an error);
    /// * after a roll marker, which is included (8 bytes); the next position is then
    ///   offset 4096 of the next segment, even if `until` was just after the marker;
    /// * before the frame that would take the bytes over `max_bytes`, but it always
    ///   returns at least one whole frame, however large (a record larger than a
    ///   standard segment lives alone in a segment sized for it).
    ///
    /// `from == until` returns no bytes and `from`. Errors: `from` not a record
    /// position (below 4096 or not 8-aligned), `until` before `from` or beyond the
    /// durable end, `from`'s segment removed ([`StoreError::InvalidLocation`]); a
    /// frame failing its checksum or with non-zero padding, the end of the log (a
    /// zero `len`) before `until` in `until`'s segment or before the roll marker in
    /// an earlier one ([`StoreError::Corrupt`]); I/O errors.
    pub async fn read_span(
        &self,
        from: Position,
        until: Position,
        max_bytes: usize,
    ) -> Result<(Bytes, Position), StoreError> {
        let bad = |why: String| StoreError::InvalidLocation(format!("span {from}..{until}: {why}"));
        if from.segment() == 0
            || from.offset() < HEADER_BYTES
            || !from.offset().is_multiple_of(format::RECORD_ALIGN)
        {
            return Err(bad("`from` is not a record position".into()));
        }
        if until < from {
            return Err(bad("`until` is before `from`".into()));
        }
        if from == until {
            return Ok((Bytes::new(), from));
        }
        let seg = {
            let st = self.inner.state.borrow();
            if until > st.durable {
                return Err(bad(format!(
                    "`until` is beyond the durable end {}",
                    st.durable
                )));
            }
            match st.segments.get(&from.segment()) {
                Some(seg) => seg.clone(),
                None => return Err(bad(format!("segment {} removed", from.segment()))),
            }
        };
        let id = seg.id;
        // In `until`'s segment the span ends at `until`; before it, at the roll marker.
        let stop = (id == until.segment()).then_some(until.offset());
        let corrupt = |off: u32, what: String| StoreError::Corrupt {
            path: seg.path.clone(),
            what: format!("at {}: {what}", Position::new(id, off)),
        };
        // Nothing at or after `until`, or past `max_bytes` (at least one frame header),
        // is needed unless the first frame is larger: don't read ahead past that.
        let want = u64::from(from.offset())
            .saturating_add(max_bytes.max(FRAME_HEADER_BYTES as usize) as u64);
        let limit = stop.map_or(want, |s| want.min(u64::from(s)));
        let mut scanner = Scanner::with_read_limit(seg.clone(), limit);
        let mut out: Vec<u8> = Vec::new();
        let mut off = from.offset();
        let full =
            |out: &Vec<u8>, framed: u32| !out.is_empty() && out.len() + framed as usize > max_bytes;
        loop {
            if stop == Some(off) {
                return Ok((Bytes::from(out), Position::new(id, off)));
            }
            // Every frame is at least a frame header: no need to read the next one.
            if full(&out, FRAME_HEADER_BYTES) {
                return Ok((Bytes::from(out), Position::new(id, off)));
            }
            if u64::from(off) + u64::from(FRAME_HEADER_BYTES) > seg.bytes {
                return Err(corrupt(off, "no roll marker before the segment end".into()));
            }
            let framed = match scanner.frame_at(off).await? {
                Frame::Record { framed, .. } => framed,
                Frame::Roll => {
                    let end = off + FRAME_HEADER_BYTES;
                    if stop.is_some_and(|s| s > end) {
                        return Err(bad(format!(
                            "the segment ends at {} before `until`",
                            Position::new(id, end)
                        )));
                    }
                    format::encode_roll(&mut out);
                    return Ok((Bytes::from(out), Position::new(id + 1, HEADER_BYTES)));
                }
                Frame::End => {
                    return Err(corrupt(
                        off,
                        format!("the log ends (zero length) before {until}"),
                    ))
                }
                Frame::Invalid { why } => {
                    return Err(corrupt(off, format!("no valid frame: {why}")));
                }
            };
            let end = off + framed;
            if stop.is_some_and(|s| s < end) {
                return Err(bad(format!(
                    "`until` is inside the frame at {}",
                    Position::new(id, off)
                )));
            }
            if full(&out, framed) {
                return Ok((Bytes::from(out), Position::new(id, off)));
            }
            let raw = scanner.ensure(u64::from(off), u64::from(framed)).await?;
            // The checksum does not cover the padding, but `write_shipped` checks it.
            let body = FRAME_HEADER_BYTES as usize
                + u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize;
            if raw.len() != framed as usize || raw[body..].iter().any(|b| *b != 0) {
                return Err(corrupt(off, "non-zero record padding".into()));
            }
            out.extend_from_slice(raw);
            off = end;
        }
    }

    /// Throws the whole log away and restarts it empty at `next` (offset 4096 of some
    /// segment): for a slave whose journal diverged from its master's, before it
    /// mirrors the master again from [`Journal::oldest_position`] on.
    ///
    /// Appends and shipped batches are refused ([`StoreError::Resetting`]) from the
    /// call on. It waits until the writer is idle (nothing pending or in flight,
    /// durable == appended, no segment being created), deletes every segment file,
    /// fsyncs the directory, and returns with `next_position() == next` (and
    /// `appended`, `durable` and `tapped_end` there too). No segment file exists
    /// then: the next batch creates `next.segment()` with the usual size rules, so
    /// `write_shipped(next, ..)` lays it out like the master's.
    ///
    /// After a crash, reopening recovers exactly what was written after the reset.
    /// A crash before the first batch reached the disk leaves an empty directory,
    /// which opens as an empty log at [`JournalConfig::first_segment`].
    ///
    /// If deleting fails (or this future is dropped while deleting), the journal is
    /// marked failed ([`StoreError::Failed`]): what is left on disk is unknown until
    /// it is reopened.
    pub async fn reset(&self, next: Position) -> Result<(), StoreError> {
        if next.offset() != HEADER_BYTES {
            return Err(StoreError::Config(format!(
                "reset to {next}: the log must restart at offset {HEADER_BYTES} of a segment"
            )));
        }
        check_segment_id(next.segment())?;
        {
            let mut st = self.inner.state.borrow_mut();
            if let Some(why) = &st.failed {
                return Err(StoreError::Failed(why.clone()));
            }
            if st.closing {
                return Err(StoreError::Closed);
            }
            if st.resetting {
                return Err(StoreError::Resetting);
            }
            st.resetting = true;
        }
        let mut guard = Resetting {
            inner: &self.inner,
            deleting: false,
        };
        // Appends are refused from here on, so the writer drains and goes idle.
        std::future::poll_fn(|cx| {
            let mut st = self.inner.state.borrow_mut();
            if let Some(why) = &st.failed {
                return Poll::Ready(Err(StoreError::Failed(why.clone())));
            }
            if st.writer_done {
                return Poll::Ready(Err(StoreError::Closed));
            }
            let idle = st.pending.is_empty()
                && st.in_flight.is_none()
                && st.durable == st.appended
                && st.creating.is_none()
                && st.removing == 0
                && self.inner.precreates.get() == 0;
            if idle {
                return Poll::Ready(Ok(()));
            }
            st.events.register(cx.waker());
            Poll::Pending
        })
        .await?;

        // The new, empty log; from here a failure leaves the disk unknown.
        guard.deleting = true;
        let doomed: Vec<Rc<Segment>> = {
            let mut st = self.inner.state.borrow_mut();
            let doomed = std::mem::take(&mut st.segments);
            st.planned_sizes.clear();
            st.cursor_segment = next.segment();
            st.cursor_segment_bytes = st.cfg.segment_bytes;
            st.cursor_offset = HEADER_BYTES;
            st.appended = next;
            st.durable = next;
            st.tapped = next;
            st.tail = (next.segment(), HEADER_BYTES, Vec::new());
            // Pre-creation of `next.segment()` has not started.
            self.inner.precreate_started_for.set(next.segment() - 1);
            doomed.into_values().collect()
        };
        let dir = self.inner.dir.clone();
        let removed = async {
            for seg in &doomed {
                seg.file
                    .remove()
                    .await
                    .map_err(|e| StoreError::io("remove segment", &seg.path, e))?;
            }
            drop(doomed);
            // Segment files no handle knew (an interrupted creation).
            let sweep_dir = dir.clone();
            rt::exec::blocking(move || -> Result<(), StoreError> {
                let read_dir_err = |e| StoreError::io("read_dir", &sweep_dir, e);
                for entry in std::fs::read_dir(&sweep_dir).map_err(read_dir_err)? {
                    let entry = entry.map_err(read_dir_err)?;
                    let name = entry.file_name();
                    if name
                        .to_str()
                        .and_then(format::parse_segment_file_name)
                        .is_some()
                    {
                        let path = entry.path();
                        std::fs::remove_file(&path)
                            .map_err(|e| StoreError::io("remove segment", &path, e))?;
                    }
                }
                Ok(())
            })
            .await?;
            rt::file::sync_dir(&dir)
                .await
                .map_err(|e| StoreError::io("fsync directory", &dir, e))
        }
        .await;
        if let Err(e) = removed {
            let mut st = self.inner.state.borrow_mut();
            tracing::error!(dir = %self.inner.dir.display(), error = %e, "journal reset failed; journal stopped");
            st.failed = Some(format!("reset failed: {e}"));
            st.waiters.wake_all();
            guard.deleting = false;
            return Err(e);
        }
        guard.deleting = false;
        tracing::info!(dir = %self.inner.dir.display(), next = %next, "journal reset: every segment deleted");
        Ok(())
    }

    /// Installs a callback told the duration of every write+fdatasync (one group
    /// commit), after it completed and before its waiters are woken.
    pub fn set_sync_observer(&self, observer: Rc<dyn Fn(std::time::Duration)>) {
        self.inner.state.borrow_mut().sync_observer = Some(observer);
    }

    /// Installs a callback told, once, that the journal failed and stopped (a write or
    /// fdatasync error other than a full disk; see the `writer` module).
    pub fn set_failure_observer(&self, observer: FailureObserver) {
        self.inner.state.borrow_mut().failure_observer = Some(observer);
    }

    /// Counters since open.
    pub fn stats(&self) -> JournalStats {
        self.inner.state.borrow().stats
    }

    /// Flushes everything appended, stops the writer and waits for it (and for a
    /// segment pre-creation in progress) to finish.
    pub async fn close(self) -> Result<(), StoreError> {
        self.inner.state.borrow_mut().closing = true;
        wake_writer(&self.inner);
        std::future::poll_fn(|cx| {
            let mut st = self.inner.state.borrow_mut();
            if st.writer_done && st.creating.is_none() {
                return Poll::Ready(());
            }
            st.events.register(cx.waker());
            Poll::Pending
        })
        .await;
        let st = self.inner.state.borrow();
        match &st.failed {
            Some(why) => Err(StoreError::Failed(why.clone())),
            None => Ok(()),
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        if let Ok(mut st) = self.inner.state.try_borrow_mut() {
            st.closing = true;
        }
        wake_writer(&self.inner);
    }
}

/// Clears `State::resetting` when [`Journal::reset`] returns or is dropped; dropped
/// while deleting, it fails the journal (the disk holds an unknown mix).
struct Resetting<'a> {
    inner: &'a Inner,
    deleting: bool,
}

impl Drop for Resetting<'_> {
    fn drop(&mut self) {
        if let Ok(mut st) = self.inner.state.try_borrow_mut() {
            st.resetting = false;
            if self.deleting && st.failed.is_none() {
                st.failed = Some("reset interrupted while deleting segments".into());
                st.waiters.wake_all();
            }
        }
    }
}

/// Counts a `remove_segments_before` deleting files, in `State::removing`.
struct Removing<'a>(&'a Inner);

impl<'a> Removing<'a> {
    fn start(inner: &'a Inner) -> Removing<'a> {
        inner.state.borrow_mut().removing += 1;
        Removing(inner)
    }
}

impl Drop for Removing<'_> {
    fn drop(&mut self) {
        if let Ok(mut st) = self.0.state.try_borrow_mut() {
            st.removing -= 1;
            st.events.wake_all();
        }
    }
}

fn wake_writer(inner: &Inner) {
    let w = inner.state.borrow_mut().writer_waker.take();
    if let Some(w) = w {
        w.wake();
    }
}

/// The pending batch that `framed` more bytes at the cursor go into, starting a new
/// one (seeded with the partial tail block) when there is none for this segment or
/// the last one is full.
fn batch_for(st: &mut State, framed: u32) -> &mut Batch {
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
        let mut buf = Vec::with_capacity(prefix.len() + (framed as usize).max(max.min(64 << 10)));
        buf.extend_from_slice(&prefix);
        st.pending.push_back(Batch {
            segment: seg,
            base,
            new_from: off,
            buf,
        });
    }
    let b = st.pending.back_mut().expect("a batch was just ensured");
    debug_assert_eq!(b.end(), off);
    b
}

/// One frame of a shipped batch.
struct ShippedFrame {
    /// Position of the frame's first byte.
    at: Position,
    /// The whole frame (header, payload, padding) in the batch.
    range: std::ops::Range<usize>,
    /// The payload in the batch; `None` for a roll marker.
    payload: Option<std::ops::Range<usize>>,
}

/// Checks and splits shipped bytes into frames. `segment_bytes(segment, offset,
/// first_len)` gives the size of each segment the bytes enter, asked at its first
/// frame in the batch with that frame's raw `len` field.
fn walk_shipped(
    start: Position,
    bytes: &[u8],
    mut segment_bytes: impl FnMut(u64, u32, u32) -> u64,
) -> Result<Vec<ShippedFrame>, StoreError> {
    let mut seg = start.segment();
    let mut off = start.offset();
    if seg == 0 || off < HEADER_BYTES || !off.is_multiple_of(format::RECORD_ALIGN) {
        return Err(StoreError::shipped(start, "not a record position"));
    }
    let mut size = None;
    let mut pos = 0usize;
    let mut frames = Vec::new();
    while pos < bytes.len() {
        let at = Position::new(seg, off);
        let rest = &bytes[pos..];
        let Some(hdr) = rest.get(..FRAME_HEADER_BYTES as usize) else {
            return Err(StoreError::shipped(at, "truncated frame header"));
        };
        let len = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
        let seg_bytes = *size.get_or_insert_with(|| segment_bytes(seg, off, len));
        let room = seg_bytes.saturating_sub(u64::from(off));
        match format::decode_frame(rest, room) {
            Frame::Record { payload, framed } => {
                let Some(frame) = rest.get(..framed as usize) else {
                    return Err(StoreError::shipped(at, "truncated padding"));
                };
                let body = FRAME_HEADER_BYTES as usize + payload.len();
                if frame[body..].iter().any(|b| *b != 0) {
                    return Err(StoreError::shipped(at, "non-zero padding"));
                }
                frames.push(ShippedFrame {
                    at,
                    range: pos..pos + framed as usize,
                    payload: Some(pos + FRAME_HEADER_BYTES as usize..pos + body),
                });
                pos += framed as usize;
                off += framed;
            }
            Frame::Roll => {
                if room < u64::from(FRAME_HEADER_BYTES) {
                    return Err(StoreError::shipped(at, "roll marker past the segment end"));
                }
                frames.push(ShippedFrame {
                    at,
                    range: pos..pos + FRAME_HEADER_BYTES as usize,
                    payload: None,
                });
                pos += FRAME_HEADER_BYTES as usize;
                seg += 1;
                off = HEADER_BYTES;
                size = None;
            }
            Frame::End => return Err(StoreError::shipped(at, "end marker inside a batch")),
            Frame::Invalid { why } => return Err(StoreError::shipped(at, why)),
        }
    }
    Ok(frames)
}

/// The size of segment `seg` for shipped bytes whose first frame there is at `off`
/// with `len` field `first_len`: what it is if it exists or is decided, else what the
/// master's [`Journal::append`] chose (the configured size, or one fitted to an
/// oversized record that opens the segment).
fn shipped_segment_bytes(st: &State, precreating: u64, seg: u64, off: u32, first_len: u32) -> u64 {
    if let Some(s) = st.segments.get(&seg) {
        return s.bytes;
    }
    if let Some(b) = st.planned_sizes.get(&seg) {
        return *b;
    }
    if seg == st.cursor_segment && (off > HEADER_BYTES || precreating >= seg) {
        // Holds pending bytes already, or is being created at the cursor's size.
        return st.cursor_segment_bytes;
    }
    if off != HEADER_BYTES || first_len == 0 || first_len == format::ROLL_LEN {
        return st.cfg.segment_bytes;
    }
    let own = crate::rt::file::align_up(
        u64::from(HEADER_BYTES) + format::framed_len_u64(first_len) + u64::from(FRAME_HEADER_BYTES),
    );
    st.cfg.segment_bytes.max(own.min(SEGMENT_BYTES_MAX))
}

/// Checks a framed record read back against its location.
fn decode_exact(bytes: &[u8], loc: Location, path: &std::path::Path) -> Result<Bytes, StoreError> {
    match format::decode_frame(bytes, u64::MAX) {
        Frame::Record { payload, .. } if payload.len() == loc.len as usize => {
            Ok(Bytes::copy_from_slice(payload))
        }
        Frame::Record { .. } => Err(StoreError::InvalidLocation(format!(
            "{loc:?}: length does not match the record there"
        ))),
        other => Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            what: format!("record at {loc:?} does not verify: {other:?}"),
        }),
    }
}

/// Future behind [`Journal::wait_durable`]; unregisters itself if dropped early.
struct DurableWait<'a> {
    inner: &'a Inner,
    end: Position,
    id: Option<u64>,
}

impl Future for DurableWait<'_> {
    type Output = Result<(), StoreError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let mut st = this.inner.state.borrow_mut();
        let ready = if st.durable >= this.end {
            Some(Ok(()))
        } else if st.failed.is_some() && this.end <= st.unknown_until {
            // Maybe on disk, maybe shipped: neither yes nor no is true (see `writer`).
            None
        } else if let Some(why) = &st.failed {
            Some(Err(StoreError::Failed(why.clone())))
        } else if this.end > st.appended {
            Some(Err(StoreError::InvalidLocation(format!(
                "wait for {} beyond the appended end {}",
                this.end, st.appended
            ))))
        } else if st.writer_done {
            Some(Err(StoreError::Closed))
        } else {
            None
        };
        if let Some(r) = ready {
            if let Some(id) = this.id.take() {
                st.waiters.remove(this.end, id);
            }
            return Poll::Ready(r);
        }
        this.id = Some(st.waiters.register(this.end, this.id, cx.waker()));
        if st.lingering {
            if let Some(w) = st.writer_waker.take() {
                w.wake();
            }
        }
        Poll::Pending
    }
}

impl Drop for DurableWait<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            if let Ok(mut st) = self.inner.state.try_borrow_mut() {
                st.waiters.remove(self.end, id);
            }
        }
    }
}
