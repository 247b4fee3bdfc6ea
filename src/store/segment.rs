//! Segment files: creation (preallocated, header written and synced), opening, and
//! the windowed reader that recovery scans records with (and `Journal::read_span`
//! reads raw frames with).

use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::rt;
use crate::rt::file::{align_down, align_up, DmaFile, ReadBuf, BLOCK_BYTES};

use super::format::{self, Frame, SegmentHeader, FRAME_HEADER_BYTES, HEADER_BYTES, ROLL_LEN};
use super::StoreError;

/// An open segment file.
pub(crate) struct Segment {
    pub(crate) id: u64,
    /// The size this segment was created with (from its header); records end before it.
    pub(crate) bytes: u64,
    pub(crate) path: PathBuf,
    pub(crate) file: DmaFile,
}

pub(crate) fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format::segment_file_name(id))
}

/// Creates segment `id`: preallocate, write and sync the header, sync the directory.
/// A crash midway leaves a file with an invalid header, which recovery removes when it
/// is the last one. A failure (a full disk) removes the file, so that no header-less
/// segment is left before later ones, and a retry starts afresh.
pub(crate) async fn create(dir: &Path, id: u64, bytes: u64) -> Result<Segment, StoreError> {
    let created = create_file(dir, id, bytes).await;
    if created.is_err() {
        // Best effort, on an error path: a plain unlink, the file is ours and new.
        let _ = std::fs::remove_file(segment_path(dir, id));
    }
    created
}

async fn create_file(dir: &Path, id: u64, bytes: u64) -> Result<Segment, StoreError> {
    let path = segment_path(dir, id);
    let file = DmaFile::open_rw(&path)
        .await
        .map_err(|e| StoreError::io("create segment", &path, e))?;
    file.pre_allocate(bytes)
        .await
        .map_err(|e| StoreError::io("pre_allocate", &path, e))?;
    let header = SegmentHeader {
        id,
        segment_bytes: bytes,
    }
    .encode();
    let mut buf = rt::file::alloc(HEADER_BYTES as usize);
    buf.as_bytes_mut().copy_from_slice(&header);
    file.write_at(buf, 0)
        .await
        .map_err(|e| StoreError::io("write segment header", &path, e))?;
    file.fdatasync()
        .await
        .map_err(|e| StoreError::io("fdatasync", &path, e))?;
    rt::file::sync_dir(dir)
        .await
        .map_err(|e| StoreError::io("fsync directory", dir, e))?;
    tracing::debug!(segment = id, bytes, path = %path.display(), "created journal segment");
    Ok(Segment {
        id,
        bytes,
        path,
        file,
    })
}

/// Opens an existing segment and checks its header. `Ok(Err(why))` means the file
/// opened but its header is not valid.
pub(crate) async fn open(dir: &Path, id: u64) -> Result<Result<Segment, &'static str>, StoreError> {
    let path = segment_path(dir, id);
    let file = DmaFile::open_rw(&path)
        .await
        .map_err(|e| StoreError::io("open segment", &path, e))?;
    let block = file
        .read_at(0, HEADER_BYTES as usize)
        .await
        .map_err(|e| StoreError::io("read segment header", &path, e))?;
    let header = match SegmentHeader::decode(&block) {
        Ok(h) if h.id == id => h,
        Ok(_) => return Ok(Err("segment id does not match the file name")),
        Err(why) => return Ok(Err(why)),
    };
    Ok(Ok(Segment {
        id,
        bytes: header.segment_bytes,
        path,
        file,
    }))
}

/// Size of one recovery read; large enough to amortise the syscall, small enough to
/// stay near the executor's registered io_memory.
const SCAN_WINDOW_BYTES: usize = 256 * 1024;

/// Reads a segment front to back in aligned windows, decoding one frame at a time.
pub(crate) struct Scanner {
    seg: Rc<Segment>,
    /// File offset of `win[0]`.
    win_start: u64,
    win: Option<ReadBuf>,
    /// Windows stop at this (block-aligned) offset unless the bytes asked for need more.
    read_limit: u64,
}

impl Scanner {
    pub(crate) fn new(seg: Rc<Segment>) -> Scanner {
        Scanner::with_read_limit(seg, u64::MAX)
    }

    /// A scanner whose read-ahead stops at `limit` (rounded up to a block): for
    /// callers that know they need nothing after it.
    pub(crate) fn with_read_limit(seg: Rc<Segment>, limit: u64) -> Scanner {
        Scanner {
            seg,
            win_start: 0,
            win: None,
            read_limit: align_up(limit.min(u64::MAX - BLOCK_BYTES as u64)),
        }
    }

    /// Makes `[off, off + len)` available in the window and returns it (shorter only
    /// where the file is).
    pub(crate) async fn ensure(&mut self, off: u64, len: u64) -> Result<&[u8], StoreError> {
        let have = self.win.as_ref().map_or(0, |w| w.len() as u64);
        let covered = off >= self.win_start && off + len <= self.win_start + have;
        if !covered {
            rt::yield_if_needed().await;
            let start = align_down(off);
            let end = (align_up(off + len))
                .max((start + SCAN_WINDOW_BYTES as u64).min(self.read_limit))
                .min(align_up(self.seg.bytes));
            let read_len = end.saturating_sub(start).max(BLOCK_BYTES as u64);
            let buf = self
                .seg
                .file
                .read_at(start, read_len as usize)
                .await
                .map_err(|e| StoreError::io("read segment", &self.seg.path, e))?;
            self.win_start = start;
            self.win = Some(buf);
        }
        let win = self.win.as_deref().unwrap_or(&[]);
        let from = ((off - self.win_start) as usize).min(win.len());
        let to = ((off + len - self.win_start) as usize).min(win.len());
        Ok(&win[from..to])
    }

    /// Decodes the frame at `off` (`HEADER_BYTES <= off < segment end`).
    pub(crate) async fn frame_at(&mut self, off: u32) -> Result<Frame<'_>, StoreError> {
        let room = self.seg.bytes.saturating_sub(u64::from(off));
        let len = {
            let hdr = self
                .ensure(u64::from(off), u64::from(FRAME_HEADER_BYTES))
                .await?;
            hdr.get(..4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        let header_only = match len {
            None => true,
            Some(len) => {
                len == 0
                    || len == ROLL_LEN
                    || format::framed_len_u64(len) + u64::from(FRAME_HEADER_BYTES) > room
            }
        };
        if header_only {
            // Decidable from the frame header alone; never read a garbage length's worth.
            let hdr = self
                .ensure(u64::from(off), u64::from(FRAME_HEADER_BYTES))
                .await?;
            return Ok(format::decode_frame(hdr, room));
        }
        let framed = format::framed_len(len.unwrap_or(0));
        let bytes = self.ensure(u64::from(off), u64::from(framed)).await?;
        Ok(format::decode_frame(bytes, room))
    }
}
