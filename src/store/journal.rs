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
//! This file holds the shard's side: open (replay by `recovery`), append, wait for
//! durability, read back, reclaim old segments, close. The replication side (batch
//! tap, shipped batches, span reads, reset) is in `mirror`; the state both work on,
//! with the writer task, is in `state`.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use bytes::Bytes;

use crate::rt;
use crate::rt::file::align_down;

use super::config::{JournalConfig, ReplayedRecord};
use super::format::{self, Frame, FRAME_HEADER_BYTES, HEADER_BYTES, SEGMENT_BYTES_MAX};
use super::segment::Segment;
use super::state::{FailureObserver, Inner, JournalStats, State, Synced};
use super::waiters::{DurableWaiters, WakerList};
use super::{recovery, writer, Location, Position, StoreError};

/// What [`Journal::append`] fixed for a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    /// Where the record is (or will be) on disk.
    pub location: Location,
    /// Pass to [`Journal::wait_durable`]: the record is durable once this is.
    pub end: Position,
}

/// An open journal. Dropping it lets the writer flush what is pending and stop;
/// prefer [`Journal::close`] to learn whether that worked.
pub struct Journal {
    /// Shared with the writer task; `mirror` works on it too.
    pub(super) inner: Rc<Inner>,
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
        st.accepting()?;
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
            let batch = st.batch_for(FRAME_HEADER_BYTES);
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
        let batch = st.batch_for(framed);
        debug_assert_eq!(batch.end(), offset);
        format::encode_record(&mut batch.buf, payload);
        batch.records += 1;
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

    /// Installs a callback told, for every write+fdatasync (one group commit), how long
    /// it took and how many records and bytes it made durable ([`Synced`]), after it
    /// completed and before its waiters are woken.
    pub fn set_sync_observer(&self, observer: Rc<dyn Fn(Synced)>) {
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
        self.inner.wake_writer();
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
        self.inner.wake_writer();
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
