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
//! **Decision: the first invalid record is the end of the log, even in a middle
//! segment.** Segments after it are deleted (with a warning). The writer syncs
//! segment N before writing to N+1, so data after a hole means the disk lost
//! acknowledged writes; replaying past the hole would apply later records without
//! the earlier ones (broker state depends on order), which is worse than stopping.
//! A replicated pair recovers the lost suffix from the peer. Deletion happens only
//! after the scan, once the end is known.
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

use super::format::{self, Frame, FRAME_HEADER_BYTES, HEADER_BYTES};
use super::journal::{JournalConfig, ReplayedRecord};
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
        let mut scanner = Scanner::new(seg.clone());
        let mut off = HEADER_BYTES;
        loop {
            match scanner.frame_at(off).await? {
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
                }
                Frame::Roll => {
                    rolled = Some((id, off + FRAME_HEADER_BYTES));
                    break;
                }
                Frame::End => {
                    stop = Some(Stop {
                        segment: id,
                        offset: off,
                        torn: None,
                    });
                    break;
                }
                Frame::Invalid { why } => {
                    stop = Some(Stop {
                        segment: id,
                        offset: off,
                        torn: Some(why),
                    });
                    break;
                }
            }
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
        Some(why) => {
            tracing::warn!(dir = %dir.display(), position = %end, why, "torn journal tail: the log ends here")
        }
        None => {
            tracing::debug!(dir = %dir.display(), position = %end, "journal ends at zero-filled tail")
        }
    }
    let later = &ids[scanned..];
    if !later.is_empty() {
        // One empty segment after a clean end is the normal pre-created next segment.
        if stop.torn.is_some() || later.len() > 1 || segment_has_records(dir, later[0]) {
            tracing::warn!(dir = %dir.display(), segments = ?later, position = %end, "deleting segments after the end of the log");
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
