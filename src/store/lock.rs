//! One process per data directory: an exclusive `flock` on `<dir>/lock`.
//!
//! flock (not fcntl locks) because it belongs to the open file description: it is
//! released when the process dies, however it dies, and two opens in one process
//! conflict too, which keeps the check testable in-process.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use super::StoreError;

/// Holds the data directory lock until dropped.
#[derive(Debug)]
pub struct DirLock {
    /// Keeps the locked open file description alive; closing it releases the lock.
    _file: File,
    path: PathBuf,
}

impl DirLock {
    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Locks `dir` (creating it if needed) for this process, or fails with
/// [`StoreError::Locked`] if someone else holds it. Blocking std I/O: call at startup.
pub fn lock_dir(dir: &Path) -> Result<DirLock, StoreError> {
    std::fs::create_dir_all(dir).map_err(|e| StoreError::io("create_dir_all", dir, e))?;
    let path = dir.join("lock");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| StoreError::io("open", &path, e))?;
    // SAFETY: flock on a valid descriptor owned by `file`; no memory is involved.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        return Err(if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            StoreError::Locked(path)
        } else {
            StoreError::io("flock", &path, err)
        });
    }
    Ok(DirLock { _file: file, path })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_until_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = lock_dir(dir.path()).unwrap();
        match lock_dir(dir.path()) {
            Err(StoreError::Locked(p)) => assert_eq!(p, dir.path().join("lock")),
            other => panic!("expected Locked, got {other:?}"),
        }
        drop(first);
        let again = lock_dir(dir.path()).unwrap();
        assert_eq!(again.path(), dir.path().join("lock"));
    }
}
