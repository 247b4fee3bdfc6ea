//! Replay at open, and the rules for what counts as the end of the log.
//!
//! Segments are scanned oldest first, whatever the first id is (old segments are
//! removed from the front, and a slave reset by `Journal::reset` starts at its
//! master's oldest segment). A segment that ends with the roll marker continues in
//! the next one. The log ends at the first of:
//!
//! * a zero `len` (the zero-filled, preallocated tail): the normal end;
//! * an invalid frame (checksum mismatch, truncated length or payload, a length
//!   running past the segment end): a torn tail. Logged as a warning with where
//!   and why.
//!
//! **A torn tail is cut; damage is refused, never cut.** Where the scan stops, it
//! looks for any valid frame after that point: in the rest of the segment (at every
//! 8-byte boundary) and in every later segment. None: the stop is the end of the log
//! (zeros, or the torn last write of a crash, which no client was told about), and
//! what follows is zeroed as before. One found: the disk damaged records that may
//! have been confirmed (a flipped byte, a zeroed block, a truncated file), and
//! valid, confirmed records follow. Recovery then deletes nothing; what it does is
//! `JournalConfig::on_damage` ([`OnDamage`]):
//!
//! * `Refuse` (a standalone broker): open fails ([`StoreError::Damaged`], naming the
//!   directory, segment, offset and where valid records resume);
//! * `Skip` (`--skip-damaged-records`): the damaged range is skipped, logged with its
//!   bounds, left on disk as it is, and replay goes on with the next valid frame. What
//!   the skipped bytes held is lost (a message enqueued there is gone, an
//!   acknowledgement there is undone: that message is delivered again);
//! * `SetAside` (a node of a pair): the damaged segment is copied, and every later
//!   segment moved, into `damaged-<unix ms>/` in the journal directory; the log then
//!   ends at the damage (the damaged segment is cut there like a torn tail). The node
//!   holds a clean prefix of its log and copies the rest from its peer, which has the
//!   same bytes at the same positions, before it may serve (see `docs/REPLICATION.md`).
//!
//! A crash that tears the last write so that a later block reached the disk and an
//! earlier one did not (possible on power loss, never on a process crash) looks like
//! damage too; that is refused as well, on the side of never deleting what a client
//! may have been told is stored.
//!
//! A bad segment *header* is different: on the last segment it is an interrupted
//! creation and the file is removed; anywhere else, and for gaps in segment ids,
//! open fails with [`StoreError::Corrupt`] rather than guess.
//!
//! An empty directory opens as an empty log at `JournalConfig::first_segment`
//! without creating a file: the first batch creates it.
//!
//! Before appends resume, everything after the end in the last segment is zeroed
//! (the tail block rewritten, the rest hole-punched and preallocated again), so stale
//! bytes from before a crash can never be mistaken for records written later.

use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;

use bytes::Bytes;

use crate::rt;
use crate::rt::file::{align_down, align_up, BLOCK_BYTES};

use super::config::{JournalConfig, OnDamage, ReplayedRecord};
use super::format::{self, Frame, FRAME_HEADER_BYTES, HEADER_BYTES};
use super::segment::{self, Scanner, Segment};
use super::{Location, Position, StoreError};

/// What recovery hands to the journal.
pub(crate) struct Recovered {
    pub(crate) segments: BTreeMap<u64, Rc<Segment>>,
    /// How many records were handed to `replay`.
    pub(crate) records: u64,
    /// End of the last valid frame: durable, and where the appended position starts.
    pub(crate) durable: Position,
    /// Where the next record goes.
    pub(crate) cursor: Position,
    pub(crate) cursor_segment_bytes: u64,
    /// Partial block before `cursor`: `(segment, block offset, bytes)`.
    pub(crate) tail: (u64, u32, Vec<u8>),
}

/// Where and why the scan stopped inside a segment.
struct Stop {
    segment: u64,
    offset: u32,
    torn: Option<&'static str>,
}

/// Scans the log and hands every valid record, in order, to `replay` as it is read:
/// memory stays bounded by one scan window whatever the journal's size (what `replay`
/// keeps is its business). A record is handed over only once it has been found valid,
/// and the scan stops at the first invalid one, so `replay` never sees a record after
/// the end of the log.
pub(crate) async fn recover(
    cfg: &JournalConfig,
    replay: &mut dyn FnMut(ReplayedRecord),
) -> Result<Recovered, StoreError> {
    let dir = cfg.dir.as_path();
    // Startup only, so blocking std::fs here is acceptable.
    std::fs::create_dir_all(dir).map_err(|e| StoreError::io("create_dir_all", dir, e))?;
    let ids = list_segment_ids(dir)?;
    if let Some(w) = ids.windows(2).find(|w| w[1] != w[0] + 1) {
        return Err(StoreError::Corrupt {
            path: dir.to_path_buf(),
            what: format!("segment ids are not consecutive: {} then {}", w[0], w[1]),
        });
    }

    let mut segments = BTreeMap::new();
    let mut records = 0u64;
    let mut stop: Option<Stop> = None;
    // Last segment that ended with a roll marker, and where the marker ends.
    let mut rolled: Option<(u64, u32)> = None;
    // Where replay goes on after a skipped damaged range (`OnDamage::Skip` only).
    let mut resume: Option<Position> = None;
    // Why the log was cut at damage set aside (`OnDamage::SetAside` only).
    let mut set_aside_at: Option<&'static str> = None;
    let mut scanned = 0;
    for (i, &id) in ids.iter().enumerate() {
        scanned = i + 1;
        let seg = match segment::open(dir, id).await? {
            Ok(seg) => Rc::new(seg),
            Err(why) if i + 1 == ids.len() => {
                let path = segment::segment_path(dir, id);
                tracing::warn!(segment = id, path = %path.display(), why, "removing last segment with an invalid header (interrupted creation)");
                std::fs::remove_file(&path)
                    .map_err(|e| StoreError::io("remove segment", &path, e))?;
                break;
            }
            Err(why) => {
                return Err(StoreError::Corrupt {
                    path: segment::segment_path(dir, id),
                    what: format!("invalid segment header ({why}) before the last segment"),
                })
            }
        };
        segments.insert(id, seg.clone());
        let mut off = HEADER_BYTES;
        match resume {
            // A segment inside a skipped range.
            Some(r) if r.segment() > id => continue,
            Some(r) if r.segment() == id => off = r.offset(),
            _ => {}
        }
        resume = None;
        let mut scanner = Scanner::new(seg.clone());
        loop {
            let why = match scanner.frame_at(off).await? {
                Frame::Record { payload, framed } => {
                    replay(ReplayedRecord {
                        location: Location {
                            segment: id,
                            offset: off,
                            len: payload.len() as u32,
                        },
                        payload: Bytes::copy_from_slice(payload),
                    });
                    records += 1;
                    off += framed;
                    continue;
                }
                Frame::Roll => {
                    rolled = Some((id, off + FRAME_HEADER_BYTES));
                    break;
                }
                Frame::End => None,
                Frame::Invalid { why } => Some(why),
            };
            let Some(next) = next_valid_frame(dir, &seg, off, &ids[i + 1..]).await? else {
                stop = Some(Stop {
                    segment: id,
                    offset: off,
                    torn: why,
                });
                break;
            };
            let damage = StoreError::Damaged {
                dir: dir.to_path_buf(),
                segment: id,
                offset: off,
                why: why.unwrap_or("zeros where records should be"),
                resumes: next,
                bytes: span_bytes(&seg, off, next, dir),
            };
            match &cfg.on_damage {
                OnDamage::Refuse => return Err(damage),
                OnDamage::Skip => {}
                OnDamage::SetAside { prepare } => {
                    prepare().map_err(|why| StoreError::Corrupt {
                        path: dir.to_path_buf(),
                        what: format!("{damage}; cannot prepare its repair from the peer: {why}"),
                    })?;
                    let aside = set_aside(dir, id, &ids[i + 1..])?;
                    tracing::error!(dir = %dir.display(), segment = id, offset = off, resumes = %next, aside = %aside.display(), "{damage}: set aside (copied and moved there, nothing deleted); the log now ends at the damage, and this node copies the rest from its peer before it may serve");
                    set_aside_at = Some(why.unwrap_or("zeros where records should be"));
                    stop = Some(Stop {
                        segment: id,
                        offset: off,
                        torn: None,
                    });
                    break;
                }
            }
            tracing::error!(dir = %dir.display(), segment = id, offset = off, resumes = %next, "{damage}: skipping it (--skip-damaged-records)");
            if next.segment() == id {
                off = next.offset();
                continue;
            }
            resume = Some(next);
            break;
        }
        if stop.is_some() {
            break;
        }
    }

    let Some(stop) = stop else {
        let (id, durable) = match rolled {
            Some((last, end)) => {
                // Every segment was complete: start a fresh one.
                let id = last + 1;
                let seg = Rc::new(segment::create(dir, id, cfg.segment_bytes).await?);
                segments.insert(id, seg);
                (id, Position::new(last, end))
            }
            None => {
                // No segment at all (a new journal, or one whose only segment was an
                // interrupted creation): the log starts at `first_segment`, or at the
                // removed segment's id. Its file is created on first use, with the
                // size the first frame needs (see `Journal::write_shipped`).
                let id = ids.first().copied().unwrap_or(cfg.first_segment);
                (id, Position::new(id, HEADER_BYTES))
            }
        };
        tracing::info!(dir = %dir.display(), records, "journal replayed; starting segment {id}");
        return Ok(Recovered {
            segments,
            records,
            durable,
            cursor: Position::new(id, HEADER_BYTES),
            cursor_segment_bytes: cfg.segment_bytes,
            tail: (id, HEADER_BYTES, Vec::new()),
        });
    };

    let end = Position::new(stop.segment, stop.offset);
    match stop.torn {
        _ if set_aside_at.is_some() => {}
        Some(why) => {
            tracing::warn!(dir = %dir.display(), position = %end, why, "torn journal tail (nothing valid after it): the log ends here")
        }
        None => {
            tracing::debug!(dir = %dir.display(), position = %end, "journal ends at zero-filled tail")
        }
    }
    // (Set aside: the later segments were moved away.)
    let later = if set_aside_at.is_some() {
        &[][..]
    } else {
        &ids[scanned..]
    };
    if !later.is_empty() {
        // None of them holds a valid frame (`next_valid_frame` looked): one empty
        // segment after a clean end is the normal pre-created next segment, anything
        // else the debris of an interrupted write.
        if stop.torn.is_some() || later.len() > 1 || segment_has_records(dir, later[0]) {
            tracing::warn!(dir = %dir.display(), segments = ?later, position = %end, "deleting segments after the end of the log (no valid frame in them)");
        }
        for &id in later {
            let path = segment::segment_path(dir, id);
            std::fs::remove_file(&path).map_err(|e| StoreError::io("remove segment", &path, e))?;
        }
        rt::file::sync_dir(dir)
            .await
            .map_err(|e| StoreError::io("fsync directory", dir, e))?;
    }

    let seg = segments
        .get(&stop.segment)
        .cloned()
        .ok_or_else(|| StoreError::Corrupt {
            path: dir.to_path_buf(),
            what: "stop segment not open".into(),
        })?;
    let tail = zero_after(&seg, stop.offset).await?;
    tracing::info!(dir = %dir.display(), records, position = %end, "journal replayed");
    Ok(Recovered {
        segments,
        records,
        durable: end,
        cursor: end,
        cursor_segment_bytes: seg.bytes,
        tail: (seg.id, align_down(u64::from(stop.offset)) as u32, tail),
    })
}

/// [`OnDamage::SetAside`]: copies segment `damaged` and moves the segments `later`
/// into a new `damaged-<unix ms>/` directory of `dir`, durably (files and both
/// directories fsynced before the caller cuts the damaged segment). Returns it.
fn set_aside(dir: &Path, damaged: u64, later: &[u64]) -> Result<std::path::PathBuf, StoreError> {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let aside = dir.join(format!("damaged-{ms}"));
    let io = |op: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |e| StoreError::io(op, path, e)
    };
    std::fs::create_dir(&aside).map_err(io("create directory", &aside))?;
    let from = segment::segment_path(dir, damaged);
    let copy = segment::segment_path(&aside, damaged);
    std::fs::copy(&from, &copy).map_err(io("copy damaged segment", &copy))?;
    std::fs::File::open(&copy)
        .and_then(|f| f.sync_all())
        .map_err(io("fsync", &copy))?;
    for &id in later {
        let path = segment::segment_path(dir, id);
        std::fs::rename(&path, segment::segment_path(&aside, id))
            .map_err(io("move segment aside", &path))?;
    }
    for d in [&aside, &dir.to_path_buf()] {
        std::fs::File::open(d)
            .and_then(|f| f.sync_all())
            .map_err(io("fsync directory", d))?;
    }
    Ok(aside)
}

/// The first valid frame (a record or a roll marker) after the frame at `off` of `seg`:
/// at any 8-byte boundary in the rest of `seg`, then in the segments `later` (their
/// headers must be valid; an invalid one is reported as it would be at open). None
/// when nothing valid follows: `off` is then the end of the log.
///
/// Cost: one read of what follows (normally the zeroed rest of the last segment).
/// A checksum is computed only where a plausible length fits the segment.
async fn next_valid_frame(
    dir: &Path,
    seg: &Rc<Segment>,
    off: u32,
    later: &[u64],
) -> Result<Option<Position>, StoreError> {
    if let Some(at) = first_valid_in(seg, off + format::RECORD_ALIGN).await? {
        return Ok(Some(Position::new(seg.id, at)));
    }
    for (i, &id) in later.iter().enumerate() {
        let next = match segment::open(dir, id).await? {
            Ok(s) => Rc::new(s),
            // The last one may be an interrupted creation (removed by the caller's
            // rules); before it, an invalid header is corruption.
            Err(_) if i + 1 == later.len() => return Ok(None),
            Err(why) => {
                return Err(StoreError::Corrupt {
                    path: segment::segment_path(dir, id),
                    what: format!("invalid segment header ({why}) before the last segment"),
                })
            }
        };
        if let Some(at) = first_valid_in(&next, HEADER_BYTES).await? {
            return Ok(Some(Position::new(id, at)));
        }
    }
    Ok(None)
}

/// The first 8-aligned offset at or after `from` in `seg` holding a valid frame.
async fn first_valid_in(seg: &Rc<Segment>, from: u32) -> Result<Option<u32>, StoreError> {
    let mut scanner = Scanner::new(seg.clone());
    let end = seg.bytes.saturating_sub(u64::from(FRAME_HEADER_BYTES));
    let mut at = u64::from(from);
    while at < end {
        let off = at as u32;
        if matches!(
            scanner.frame_at(off).await?,
            Frame::Record { .. } | Frame::Roll
        ) {
            return Ok(Some(off));
        }
        at += u64::from(format::RECORD_ALIGN);
    }
    Ok(None)
}

/// Bytes of log from `off` in `seg` to `next` (segments in between at their size).
fn span_bytes(seg: &Segment, off: u32, next: Position, dir: &Path) -> u64 {
    if next.segment() == seg.id {
        return u64::from(next.offset() - off);
    }
    let whole: u64 = (seg.id + 1..next.segment())
        .map(|id| std::fs::metadata(segment::segment_path(dir, id)).map_or(0, |m| m.len()))
        .sum();
    seg.bytes.saturating_sub(u64::from(off)) + whole + u64::from(next.offset())
}

/// Zeroes `[end, segment end)` durably and returns the bytes of the partial block
/// before `end` (which the first batch rewrites).
async fn zero_after(seg: &Segment, end: u32) -> Result<Vec<u8>, StoreError> {
    let io = |op| move |e| StoreError::io(op, &seg.path, e);
    let end = u64::from(end);
    let base = align_down(end);
    // Restores the full size if the file was truncated.
    seg.file
        .pre_allocate(seg.bytes)
        .await
        .map_err(io("pre_allocate"))?;
    let mut tail = Vec::new();
    if end > base {
        let block = seg
            .file
            .read_at(base, BLOCK_BYTES)
            .await
            .map_err(io("read tail block"))?;
        tail = block
            .get(..(end - base) as usize)
            .ok_or_else(|| StoreError::Corrupt {
                path: seg.path.clone(),
                what: format!("tail block at {base} is short"),
            })?
            .to_vec();
        let mut buf = rt::file::alloc(BLOCK_BYTES);
        buf.as_bytes_mut()[..tail.len()].copy_from_slice(&tail);
        seg.file
            .write_at(buf, base)
            .await
            .map_err(io("rewrite tail block"))?;
    }
    let from = align_up(end);
    if from < seg.bytes {
        seg.file
            .punch_hole(from, seg.bytes - from)
            .await
            .map_err(io("punch hole"))?;
        seg.file
            .pre_allocate(seg.bytes)
            .await
            .map_err(io("pre_allocate"))?;
    }
    seg.file.fdatasync().await.map_err(io("fdatasync"))?;
    Ok(tail)
}

fn list_segment_ids(dir: &Path) -> Result<Vec<u64>, StoreError> {
    let mut ids = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| StoreError::io("read_dir", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io("read_dir", dir, e))?;
        if let Some(id) = entry
            .file_name()
            .to_str()
            .and_then(format::parse_segment_file_name)
        {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// Whether a segment we are about to delete has a non-zero first frame (only used
/// to choose the log level; errors count as "yes" so they get the warning).
fn segment_has_records(dir: &Path, id: u64) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let path = segment::segment_path(dir, id);
    let mut hdr = [0u8; 8];
    let read = std::fs::File::open(path).and_then(|mut f| {
        f.seek(SeekFrom::Start(u64::from(HEADER_BYTES)))?;
        f.read_exact(&mut hdr)
    });
    read.is_err() || hdr != [0u8; 8]
}
