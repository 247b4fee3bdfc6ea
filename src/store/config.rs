//! What a journal is opened with, and what replay hands back: [`JournalConfig`],
//! [`OnDamage`] (what recovery does with a damaged log) and [`ReplayedRecord`].
//!
//! Kept apart from `journal` so that `recovery`, which takes the config and produces
//! the records, does not import the journal that calls it (no cycle among the
//! store's modules). Re-exported from `store`.

use std::path::PathBuf;

use bytes::Bytes;

use super::format::{FRAME_HEADER_BYTES, HEADER_BYTES, SEGMENT_BYTES_MAX};
use super::{Location, StoreError};

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

    pub(super) fn validate(&self) -> Result<(), StoreError> {
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
    pub(super) fn max_payload_bytes(&self) -> usize {
        let room = self.segment_bytes - u64::from(HEADER_BYTES) - u64::from(FRAME_HEADER_BYTES);
        (align_down_8(room) - u64::from(FRAME_HEADER_BYTES)) as usize
    }
}

/// Segment ids are at least 1 (so `Position(0)` is before every record) and small
/// enough that `id << 32` keeps every bit.
pub(super) fn check_segment_id(id: u64) -> Result<(), StoreError> {
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
