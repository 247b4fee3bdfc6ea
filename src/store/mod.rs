//! The per-shard journal: an append-only log of opaque records in preallocated
//! segment files, written with O_DIRECT in 4096-byte-aligned batches and made
//! durable by group commit. The store knows nothing about what the records mean.
//!
//! * [`format`]   — the on-disk layout (segment header, record framing, positions).
//! * `config`     — [`JournalConfig`], [`OnDamage`], [`ReplayedRecord`]: what a journal
//!   is opened with and what replay hands back.
//! * `state`      — the state a journal shares with its writer task (`State`,
//!   `Inner`, pending batches) and [`JournalStats`].
//! * `journal`    — [`Journal`]: open, append, wait for durability, read back,
//!   reclaim, close.
//! * `mirror`     — the replication side of [`Journal`] (batch tap, shipped batches,
//!   span reads, reset) and [`batch_frames`], the frame walker replication counts
//!   records with.
//! * [`diverged`] — [`Journal::reset_diverged`]: a slave's records its master never had
//!   are set aside (never deleted) before the reset; the set-aside directory's format.
//! * `writer`     — the background group-commit task (one per journal).
//! * `recovery`   — replay at open: stops cleanly at a torn or zero-filled tail.
//! * `segment`    — creating, opening and reading segment files.
//! * `waiters`    — who waits for which durable position.
//! * [`verify`]   — the offline checker behind the journal tool.
//! * `lock`       — [`lock_dir`]: one process per data directory.
//!
//! Imports between these modules go one way (no cycle): `journal` uses `recovery`,
//! `writer`, `state` and `config`; `mirror` uses `journal` (the type), `state` and
//! `config`; `diverged` uses `journal` (the type and `mirror`'s reset halves) and
//! `verify`; `writer` uses `state`; `recovery` uses `config` and hands its result back
//! without knowing the journal; all of them use `format` and `segment`, and the
//! shared vocabulary defined here ([`Position`], [`Location`], [`StoreError`]).
//!
//! Life of a record: [`Journal::append`] fixes its [`Position`] and copies the framed
//! bytes into the pending batch without awaiting ("ordered"); the writer task writes
//! the batch and fdatasyncs it, then [`Journal::wait_durable`] returns ("durable").

mod config;
pub mod diverged;
pub mod format;
mod journal;
mod lock;
mod mirror;
mod recovery;
mod segment;
mod state;
pub mod verify;
mod waiters;
mod writer;

use std::fmt;
use std::path::PathBuf;

pub use config::{JournalConfig, OnDamage, ReplayedRecord};
pub use diverged::{DivergedInfo, DivergedSet, DivergedVisitor};
pub use journal::{Appended, Journal};
pub use lock::{lock_dir, DirLock};
pub use mirror::{batch_frames, BatchFrame};
pub use state::{JournalStats, Synced};

/// A place in the log: `segment_id << 32 | byte offset in that segment`.
///
/// Positions only grow: appends move forward within a segment and a new segment has a
/// larger id. `Position(0)` is before every record (segment ids start at 1).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position(pub u64);

impl Position {
    /// The position at `offset` in segment `segment`.
    pub const fn new(segment: u64, offset: u32) -> Position {
        Position(segment << 32 | offset as u64)
    }

    /// The segment id.
    pub const fn segment(self) -> u64 {
        self.0 >> 32
    }

    /// The byte offset within the segment.
    pub const fn offset(self) -> u32 {
        self.0 as u32
    }
}

impl fmt::Debug for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.segment(), self.offset())
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Where a record lives: enough to read it back with [`Journal::read`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Location {
    /// Segment id.
    pub segment: u64,
    /// Byte offset of the record's frame header in the segment (8-byte aligned).
    pub offset: u32,
    /// Payload length in bytes (without framing).
    pub len: u32,
}

impl Location {
    /// The position of the record's first byte.
    pub fn position(&self) -> Position {
        Position::new(self.segment, self.offset)
    }

    /// The position just after the record (and its padding).
    pub fn end(&self) -> Position {
        Position::new(self.segment, self.offset + format::framed_len(self.len))
    }
}

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An I/O operation failed.
    #[error("journal I/O error: {op} {path}: {source}")]
    Io {
        /// What we were doing (e.g. "fdatasync").
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A previous write or fdatasync failed; the journal accepts nothing more, since
    /// what reached the disk is unknown. Reopen to recover.
    #[error("journal failed earlier and is read-only until reopened: {0}")]
    Failed(String),
    /// The journal was closed.
    #[error("journal is closed")]
    Closed,
    /// [`Journal::reset`] is in progress: appends and shipped batches are refused
    /// until it returns.
    #[error("journal is being reset")]
    Resetting,
    /// Another process (or handle) holds the data directory lock.
    #[error("data directory is locked by another process: {0}")]
    Locked(PathBuf),
    /// A record cannot fit in one segment.
    #[error("record of {len} bytes exceeds the largest record a {segment_bytes}-byte segment holds ({max} bytes)")]
    RecordTooLarge {
        /// Payload length asked for.
        len: usize,
        /// Largest payload accepted.
        max: usize,
        /// Configured segment size.
        segment_bytes: u64,
    },
    /// Empty payloads are refused (a zero length marks the end of the log on disk).
    #[error("empty records are not allowed")]
    EmptyRecord,
    /// Invalid configuration.
    #[error("invalid journal configuration: {0}")]
    Config(String),
    /// A location or position that this journal never handed out (or already removed).
    #[error("invalid location {0}")]
    InvalidLocation(String),
    /// A record read back did not match its checksum, or the directory is damaged in a
    /// way recovery must not paper over.
    #[error("journal corruption in {path}: {what}")]
    Corrupt {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// Recovery found an invalid frame (or zeros) with valid records after it: the
    /// disk damaged the log, this is not the torn tail of a crash. Nothing was
    /// deleted; start with `--skip-damaged-records` to skip `[at, resumes)` and keep
    /// everything else. (Only with [`OnDamage::Refuse`].)
    #[error(
        "journal damaged in {dir}: segment {segment} offset {offset} ({why}); valid records \
         resume at {resumes}, so this is not the torn tail of a crash. Nothing was deleted. \
         The records in between ({bytes} bytes) are unreadable: restore the directory from \
         a backup, or start with --skip-damaged-records to skip them and keep every other \
         record (a node of a pair copies them from its peer by itself)"
    )]
    Damaged {
        dir: PathBuf,
        segment: u64,
        offset: u32,
        why: &'static str,
        /// Where the next valid frame starts.
        resumes: Position,
        /// Bytes of log between the damage and `resumes` (whole skipped segments
        /// counted at their size).
        bytes: u64,
    },
    /// A shipped batch does not start where this journal's log continues (the
    /// slave missed or repeated bytes); nothing was written.
    #[error("shipped batch starts at {got}, but the log continues at {expected}")]
    ShippedGap {
        /// Where the next shipped byte must go.
        expected: Position,
        /// Where the batch said it starts.
        got: Position,
    },
    /// A shipped batch is not a valid run of frames (bad checksum, truncated frame,
    /// non-zero padding, a frame that does not fit its segment); nothing was written.
    #[error("invalid shipped batch at {at}: {why}")]
    ShippedCorrupt {
        /// Position of the offending frame.
        at: Position,
        /// What is wrong.
        why: String,
    },
}

impl StoreError {
    /// The file system has no room (ENOSPC) or the quota is used up (EDQUOT). (The
    /// runtime keeps the error's kind, not always its errno.)
    pub fn is_disk_full(&self) -> bool {
        matches!(self, StoreError::Io { source, .. }
            if matches!(source.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded)
                || matches!(source.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT)))
    }

    pub(crate) fn shipped(at: Position, why: impl Into<String>) -> Self {
        StoreError::ShippedCorrupt {
            at,
            why: why.into(),
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StoreError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
