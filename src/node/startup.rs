//! What the node settles before it starts anything: the process's open-file limit,
//! its directories (absolute, the data directory locked) and the shard count.

use std::path::{Path, PathBuf};

use super::NodeError;
use crate::config::BrokerConfig;
use crate::store;

/// Raises the open-file limit to its hard maximum: every client connection is a
/// descriptor, and the usual soft limit (1024) is far below what a broker serves.
pub(super) fn raise_open_file_limit() {
    // SAFETY: getrlimit/setrlimit on a local struct.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            let wanted = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) == 0 {
                tracing::info!(open_files = lim.rlim_max, "raised the open-file limit");
            }
        }
    }
}

/// Makes the data and journal directories absolute (see [`absolute_dir`]) and locks
/// the data directory; the lock is held as long as the returned guard lives.
pub(super) fn prepare_directories(config: &mut BrokerConfig) -> Result<store::DirLock, NodeError> {
    // Every directory is absolute from here on, whatever the configuration or the
    // command line said (see `absolute_dir`).
    config.data_directory = absolute_dir(&config.data_directory)?;
    let data_dir = config.data_directory.clone();
    let lock = store::lock_dir(&data_dir)?;
    config.journal.directory = absolute_dir(&config.journal.directory)?;
    let journal_dir = config.journal.directory.clone();
    tracing::info!(data = %data_dir.display(), journal = %journal_dir.display(), "data directories");
    Ok(lock)
}

/// The configured shard count, unless the journal was written with another one (see
/// [`existing_shard_count`]).
pub(super) fn shard_count(config: &BrokerConfig) -> usize {
    let mut shard_count = config.shards.count.max(1);
    let existing = existing_shard_count(&config.journal.directory);
    if existing > 0 && existing != shard_count {
        tracing::warn!(
            configured = shard_count,
            existing,
            "the journal was written with a different shard count; keeping the existing one"
        );
        shard_count = existing;
    }
    shard_count
}

/// How many shards the journal directory was written with: the destination-to-shard
/// mapping depends on it, so an existing store keeps its count whatever the config
/// says now.
fn existing_shard_count(journal_dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(journal_dir) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name().to_str().is_some_and(|n| {
                n.strip_prefix("shard-")
                    .is_some_and(|i| i.parse::<usize>().is_ok())
            })
        })
        .count()
}

/// Creates `dir` if missing and returns its absolute path, symlinks resolved.
///
/// Resolved once at start-up, so that nothing below depends on the working directory:
/// glommio opens a directory with `openat(-1, path)`, which fails with EBADF for a
/// relative path, and a journal that cannot fsync its directory stops (the README's
/// `dataDirectory="data/broker"` lost its first message that way). Resolving symlinks
/// also makes the log name the directory the data really lives in.
fn absolute_dir(dir: &Path) -> Result<PathBuf, NodeError> {
    let failed = |source| NodeError::DataDir {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(failed)?;
    std::fs::canonicalize(dir).map_err(failed)
}
