//! The replication side of the journal: everything that exists only so that a slave's
//! log can mirror its master's byte for byte. The append/read/reclaim side, which a
//! standalone broker uses, is in `journal`; this file adds more `impl Journal` blocks
//! on the same shared state (`state`), so the public API is one type either way.
//!
//! Replication works on the bytes exactly as written (frames as laid out in
//! `format`): a master's batch tap ([`Journal::set_batch_tap`]) ships each batch's new
//! frames, and a slave appends them verbatim with [`Journal::write_shipped`], so the
//! two logs are byte-identical at the same positions. A slave that connects late is
//! sent what it missed from the master's segment files with [`Journal::read_span`]
//! up to [`Journal::tapped_end`] (everything after comes from the tap); a slave whose
//! log diverged, or is older than the master's oldest segment, throws it away with
//! [`Journal::reset`] (or, holding records the master lacks, sets them aside first with
//! [`Journal::reset_diverged`], in `diverged`) and mirrors again from
//! [`Journal::oldest_position`].
//!
//! What is here:
//!
//! * master side: the batch tap, [`Journal::tapped_end`], [`Journal::read_span`]
//!   (catch-up from the segment files), [`Journal::oldest_position`];
//! * slave side: [`Journal::write_shipped`] (checked by `walk_shipped`, sized by
//!   `shipped_segment_bytes` as the master's `append` would), [`Journal::decode_shipped`],
//!   [`Journal::next_position`], [`Journal::reset`];
//! * [`batch_frames`]: the frames of a shipped batch by their length fields, so the
//!   replication code can count records without knowing the frame layout.

use std::rc::Rc;
use std::task::Poll;

use bytes::Bytes;

use crate::rt;

use super::config::{check_segment_id, ReplayedRecord};
use super::format::{self, Frame, FRAME_HEADER_BYTES, HEADER_BYTES, SEGMENT_BYTES_MAX};
use super::journal::Journal;
use super::segment::{Scanner, Segment};
use super::state::{Inner, State};
use super::{Location, Position, StoreError};

impl Journal {
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
        st.accepting()?;
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
        // Records of the piece being gathered (counted into its batch).
        let mut piece_records = 0u32;
        for (i, f) in frames.iter().enumerate() {
            if f.payload.is_some() {
                records += 1;
                piece_records += 1;
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
            let batch = st.batch_for(piece.len() as u32);
            batch.buf.extend_from_slice(piece);
            batch.records += std::mem::take(&mut piece_records);
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

    /// Throws the whole log away (deletes every segment) and restarts it empty at
    /// `next` (offset 4096 of some segment): for a slave that cannot resume from its
    /// master's log, before it mirrors the master again from
    /// [`Journal::oldest_position`] on. A log holding records the master does not have
    /// goes through [`Journal::reset_diverged`] instead, which sets them aside first.
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
    /// which opens as an empty log at
    /// [`JournalConfig::first_segment`](super::JournalConfig::first_segment).
    ///
    /// If deleting fails (or this future is dropped while deleting), the journal is
    /// marked failed ([`StoreError::Failed`]): what is left on disk is unknown until
    /// it is reopened.
    pub async fn reset(&self, next: Position) -> Result<(), StoreError> {
        let guard = self.begin_reset(next).await?;
        self.finish_reset(guard, next).await
    }

    /// The first half of a reset: checks `next`, refuses appends and shipped batches
    /// from now on and waits until the writer is idle. Dropping the guard without
    /// [`Journal::finish_reset`] leaves the journal as it was, accepting again.
    pub(super) async fn begin_reset(&self, next: Position) -> Result<Resetting<'_>, StoreError> {
        if next.offset() != HEADER_BYTES {
            return Err(StoreError::Config(format!(
                "reset to {next}: the log must restart at offset {HEADER_BYTES} of a segment"
            )));
        }
        check_segment_id(next.segment())?;
        {
            let mut st = self.inner.state.borrow_mut();
            st.accepting()?;
            st.resetting = true;
        }
        let guard = Resetting {
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
        Ok(guard)
    }

    /// The second half of a reset: deletes every segment and restarts the log at
    /// `next` (see [`Journal::reset`]).
    pub(super) async fn finish_reset(
        &self,
        mut guard: Resetting<'_>,
        next: Position,
    ) -> Result<(), StoreError> {
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
}

/// Clears `State::resetting` when [`Journal::reset`] returns or is dropped; dropped
/// while deleting, it fails the journal (the disk holds an unknown mix).
pub(super) struct Resetting<'a> {
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

/// One frame of a batch, as [`batch_frames`] finds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchFrame {
    /// A record whose frame starts `at` bytes into the batch; `len` is its payload
    /// length (the frame's `len` field).
    Record { at: usize, len: u32 },
    /// A roll marker at `at`: its segment ends here, and so does the walk.
    Roll { at: usize },
}

/// The frames of a batch of framed bytes as a journal wrote them (what a batch tap
/// ships, or what [`Journal::read_span`] returns), by their length fields alone: for
/// counting records in bytes this process's own journal produced. Nothing is
/// verified (no checksum, no padding; [`Journal::decode_shipped`] and
/// [`Journal::write_shipped`] check everything). The walk ends after a roll marker,
/// at a zero length (the end of the log), or where fewer bytes than a frame header
/// are left; a record whose payload runs past the end of `bytes` is still yielded.
pub fn batch_frames(bytes: &[u8]) -> impl Iterator<Item = BatchFrame> + '_ {
    let mut at = 0usize;
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let hdr = bytes.get(at..at.checked_add(FRAME_HEADER_BYTES as usize)?)?;
        let len = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
        let frame = match len {
            0 => return None,
            format::ROLL_LEN => {
                done = true;
                BatchFrame::Roll { at }
            }
            _ => BatchFrame::Record { at, len },
        };
        at = at.saturating_add(format::framed_len_u64(len) as usize);
        Some(frame)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len: u32) -> Vec<u8> {
        let mut v = Vec::new();
        format::encode_record(&mut v, &vec![0xAB; len as usize]);
        v
    }

    fn records(bytes: &[u8]) -> usize {
        batch_frames(bytes)
            .filter(|f| matches!(f, BatchFrame::Record { .. }))
            .count()
    }

    #[test]
    fn batch_frames_walks_records_up_to_a_roll_marker() {
        let mut bytes = frame(5);
        bytes.extend(frame(100));
        assert_eq!(
            batch_frames(&bytes).collect::<Vec<_>>(),
            [
                BatchFrame::Record { at: 0, len: 5 },
                BatchFrame::Record { at: 16, len: 100 }
            ]
        );
        // A roll marker ends the walk, even if bytes follow it.
        let mut rolled = bytes.clone();
        format::encode_roll(&mut rolled);
        rolled.extend(frame(7));
        assert_eq!(records(&rolled), 2);
        assert_eq!(
            batch_frames(&rolled).last(),
            Some(BatchFrame::Roll { at: bytes.len() })
        );
        // Garbage never panics: a cut header or a zero length ends the walk.
        assert_eq!(records(&bytes[..3]), 0);
        assert_eq!(records(&bytes[..7]), 0);
        assert_eq!(records(&[0; 16]), 0);
        // Lengths are not checked against the bytes: a cut payload still counts.
        assert_eq!(records(&bytes[..24]), 2);
    }
}
