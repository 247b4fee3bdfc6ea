//! Reading a journal offline, without changing a byte: what `tandem journal verify`
//! and `tandem journal dump` show an operator before and after a fault.
//!
//! The walk applies recovery's rules (see `recovery`) to whole segment files read
//! with plain blocking I/O: records are visited in log order; where the log stops
//! (zeros, or a frame that fails its checksum) the walk looks for the next valid frame
//! at every 8-byte boundary, in the rest of that segment and in the later ones. Found:
//! the range in between is reported as damage and the walk goes on from there (what
//! `--skip-damaged-records` would replay). Not found: that is the end of the log,
//! clean (zeros) or a torn tail. A segment whose header is invalid, or names another
//! id than its file, is reported whole as damage.
//!
//! Each segment is read into memory whole, one at a time: fine for a tool, which is
//! why the broker's own recovery reads through a window instead.

use std::path::{Path, PathBuf};

use super::format::{self, Frame, HEADER_BYTES, RECORD_ALIGN};
use super::{Position, StoreError};

/// One damaged range of a journal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    /// Where the log stops being readable.
    pub at: Position,
    pub why: String,
    /// Where valid records resume.
    pub resumes: Position,
    /// Bytes of log in between (skipped segments counted at their file size).
    pub bytes: u64,
}

/// How the log ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// No segment holds a record.
    Empty,
    /// Zeros after the last record (or a roll marker ending the last segment).
    Clean(Position),
    /// An invalid frame with nothing valid after it: the torn last write of a crash.
    Torn(Position, &'static str),
}

/// What a journal directory holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub dir: PathBuf,
    /// Segment ids present, oldest first, with their file sizes.
    pub segments: Vec<(u64, u64)>,
    pub records: u64,
    pub first: Option<Position>,
    pub last: Option<Position>,
    pub end: End,
    pub damaged: Vec<Damage>,
}

/// A stop not yet known to be damage or the end: where, why, bytes since.
struct Open {
    at: Position,
    why: Option<&'static str>,
    bytes: u64,
}

/// Walks the journal in `dir` (one shard's segment files), calling `visit` with each
/// valid record's position and payload in log order; returns what it found. Only
/// reads.
pub fn walk(dir: &Path, visit: &mut dyn FnMut(Position, &[u8])) -> Result<Report, StoreError> {
    let ids = segment_ids(dir)?;
    let mut report = Report {
        dir: dir.to_path_buf(),
        segments: Vec::new(),
        records: 0,
        first: None,
        last: None,
        end: End::Empty,
        damaged: Vec::new(),
    };
    let mut open: Option<Open> = None;
    for id in ids {
        let path = dir.join(format::segment_file_name(id));
        let bytes = std::fs::read(&path).map_err(|e| StoreError::io("read segment", &path, e))?;
        report.segments.push((id, bytes.len() as u64));
        let header = format::SegmentHeader::decode(&bytes).and_then(|h| {
            if h.id == id {
                Ok(h)
            } else {
                Err("header names another segment id")
            }
        });
        let size = match header {
            Ok(h) => h.segment_bytes,
            Err(why) => {
                // Nothing in it can be trusted: all of it is damage (or part of it).
                let at = Position::new(id, 0);
                match open.as_mut() {
                    Some(o) => o.bytes += bytes.len() as u64,
                    None => {
                        open = Some(Open {
                            at,
                            why: Some(why),
                            bytes: bytes.len() as u64,
                        })
                    }
                }
                continue;
            }
        };
        let mut off = HEADER_BYTES;
        if let Some(o) = open.take() {
            match first_valid(&bytes, size, HEADER_BYTES) {
                Some(at) => {
                    report.damaged.push(Damage {
                        at: o.at,
                        why: o.why.unwrap_or("zeros where records should be").to_string(),
                        resumes: Position::new(id, at),
                        bytes: o.bytes + u64::from(at),
                    });
                    off = at;
                }
                None => {
                    open = Some(Open {
                        bytes: o.bytes + bytes.len() as u64,
                        ..o
                    });
                    continue;
                }
            }
        }
        loop {
            let room = size.saturating_sub(u64::from(off));
            let frame = bytes.get(off as usize..).map_or(
                Frame::Invalid {
                    why: "truncated frame header",
                },
                |b| format::decode_frame(b, room),
            );
            let why = match frame {
                Frame::Record { payload, framed } => {
                    let at = Position::new(id, off);
                    visit(at, payload);
                    report.records += 1;
                    report.first.get_or_insert(at);
                    report.last = Some(at);
                    off += framed;
                    continue;
                }
                Frame::Roll => {
                    report.end = End::Clean(Position::new(id, off));
                    break;
                }
                Frame::End => None,
                Frame::Invalid { why } => Some(why),
            };
            match first_valid(&bytes, size, off + RECORD_ALIGN) {
                Some(next) => {
                    report.damaged.push(Damage {
                        at: Position::new(id, off),
                        why: why.unwrap_or("zeros where records should be").to_string(),
                        resumes: Position::new(id, next),
                        bytes: u64::from(next - off),
                    });
                    off = next;
                }
                None => {
                    open = Some(Open {
                        at: Position::new(id, off),
                        why,
                        bytes: size.saturating_sub(u64::from(off)),
                    });
                    break;
                }
            }
        }
    }
    if let Some(o) = open {
        report.end = match o.why {
            Some(why) if o.at.offset() >= HEADER_BYTES => End::Torn(o.at, why),
            Some(_) => End::Torn(o.at, "invalid segment header"),
            None => End::Clean(o.at),
        };
    }
    if report.records == 0 && report.damaged.is_empty() {
        report.end = End::Empty;
    }
    Ok(report)
}

/// The first offset at or after `from` (8-aligned) in a segment's bytes that starts a
/// valid frame (a record or a roll marker).
fn first_valid(bytes: &[u8], size: u64, from: u32) -> Option<u32> {
    let mut off = u64::from(from);
    let end = (bytes.len() as u64).min(size);
    while off + 8 <= end {
        let frame = format::decode_frame(&bytes[off as usize..], size - off);
        if matches!(frame, Frame::Record { .. } | Frame::Roll) {
            return Some(off as u32);
        }
        off += u64::from(RECORD_ALIGN);
    }
    None
}

/// Segment ids in `dir`, oldest first.
fn segment_ids(dir: &Path) -> Result<Vec<u64>, StoreError> {
    let mut ids: Vec<u64> = std::fs::read_dir(dir)
        .map_err(|e| StoreError::io("read_dir", dir, e))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(format::parse_segment_file_name)
        })
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A segment file of `size` bytes holding `records` (payloads), then (`roll`) the
    /// segment-complete marker, then zeros.
    fn segment(dir: &Path, id: u64, size: u64, records: &[&[u8]], roll: bool) -> Vec<u32> {
        let mut b = format::SegmentHeader {
            id,
            segment_bytes: size,
        }
        .encode();
        let mut offsets = Vec::new();
        for r in records {
            offsets.push(b.len() as u32);
            format::encode_record(&mut b, r);
        }
        if roll {
            format::encode_roll(&mut b);
        }
        b.resize(size as usize, 0);
        std::fs::write(dir.join(format::segment_file_name(id)), b).unwrap();
        offsets
    }

    fn payloads(dir: &Path) -> (Report, Vec<Vec<u8>>) {
        let mut seen = Vec::new();
        let r = walk(dir, &mut |_, p| seen.push(p.to_vec())).unwrap();
        (r, seen)
    }

    #[test]
    fn a_healthy_journal_ends_clean() {
        let dir = tempfile::tempdir().unwrap();
        segment(dir.path(), 1, 16384, &[b"a", b"bb", b"ccc"], false);
        let (r, seen) = payloads(dir.path());
        assert_eq!(seen, [b"a".to_vec(), b"bb".to_vec(), b"ccc".to_vec()]);
        assert_eq!(r.records, 3);
        assert_eq!(r.first, Some(Position::new(1, 4096)));
        assert!(r.damaged.is_empty());
        assert!(matches!(r.end, End::Clean(p) if p.segment() == 1));
    }

    #[test]
    fn damage_with_records_after_it_is_reported_and_walked_past() {
        let dir = tempfile::tempdir().unwrap();
        let offs = segment(dir.path(), 1, 16384, &[b"one", b"two", b"three"], true);
        segment(dir.path(), 2, 16384, &[b"four"], false);
        // Flip a byte of "two".
        let path = dir.path().join(format::segment_file_name(1));
        let mut b = std::fs::read(&path).unwrap();
        b[offs[1] as usize + 9] ^= 1;
        std::fs::write(&path, b).unwrap();
        let (r, seen) = payloads(dir.path());
        assert_eq!(seen, [b"one".to_vec(), b"three".to_vec(), b"four".to_vec()]);
        assert_eq!(r.damaged.len(), 1);
        assert_eq!(r.damaged[0].at, Position::new(1, offs[1]));
        assert_eq!(r.damaged[0].resumes, Position::new(1, offs[2]));
        assert_eq!(r.damaged[0].why, "checksum mismatch");
    }

    #[test]
    fn garbage_after_the_last_record_is_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let offs = segment(dir.path(), 1, 16384, &[b"one", b"two"], false);
        let path = dir.path().join(format::segment_file_name(1));
        let mut b = std::fs::read(&path).unwrap();
        let end = offs[1] as usize + 16;
        b[end..end + 8].copy_from_slice(&[9, 0, 0, 0, 1, 2, 3, 4]);
        std::fs::write(&path, b).unwrap();
        let (r, seen) = payloads(dir.path());
        assert_eq!(seen.len(), 2);
        assert!(r.damaged.is_empty());
        assert!(matches!(r.end, End::Torn(p, _) if p == Position::new(1, end as u32)));
    }
}
