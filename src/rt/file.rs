//! O_DIRECT files for the journal: a thin wrapper over glommio's `DmaFile`.
//!
//! Every offset and length passed to [`DmaFile::write_at`] and
//! [`DmaFile::read_at`] must be a multiple of [`BLOCK_BYTES`]; buffers come from
//! [`alloc`]. We align to the 4096-byte physical block rather than the 512-byte
//! logical block the device reports, so a write never forces a read-modify-write
//! inside the drive.
//!
//! Errors are plain `std::io::Error`s: the store adds the file and operation.

use std::io;
use std::path::Path;

/// The I/O alignment used for every O_DIRECT offset, length and buffer.
pub const BLOCK_BYTES: usize = 4096;

/// Rounds `v` up to a multiple of [`BLOCK_BYTES`].
pub const fn align_up(v: u64) -> u64 {
    (v + BLOCK_BYTES as u64 - 1) & !(BLOCK_BYTES as u64 - 1)
}

/// Rounds `v` down to a multiple of [`BLOCK_BYTES`].
pub const fn align_down(v: u64) -> u64 {
    v & !(BLOCK_BYTES as u64 - 1)
}

fn is_aligned(v: u64) -> bool {
    v.is_multiple_of(BLOCK_BYTES as u64)
}

/// A buffer suitable for O_DIRECT I/O (4096-byte aligned address).
pub struct DmaBuf(glommio::io::DmaBuffer);

impl DmaBuf {
    /// The buffer's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// The buffer's bytes, for filling before a write.
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        self.0.as_bytes_mut()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True if the buffer has no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Allocates a zeroed DMA buffer of `len` bytes (`len` a multiple of [`BLOCK_BYTES`]).
///
/// Zeroed because the journal relies on zero padding after the last record.
///
/// # Panics
/// Outside a glommio executor.
pub fn alloc(len: usize) -> DmaBuf {
    assert!(
        len > 0 && is_aligned(len as u64),
        "unaligned DMA buffer length {len}"
    );
    let mut buf = glommio::allocate_dma_buffer(len);
    // Pool memory is recycled: never let stale bytes reach the disk.
    buf.as_bytes_mut().fill(0);
    DmaBuf(buf)
}

/// Bytes read from a file; derefs to `[u8]`.
pub struct ReadBuf(glommio::io::ReadResult);

impl std::ops::Deref for ReadBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

/// A file opened read+write with O_DIRECT.
pub struct DmaFile(glommio::io::DmaFile);

impl DmaFile {
    /// Opens `path` read+write, creating it if missing. Read+write on purpose: a
    /// write-only open can disable io_uring polling for the device.
    pub async fn open_rw(path: &Path) -> io::Result<DmaFile> {
        prime_iopoll_probe(path).await?;
        let f = glommio::io::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .dma_open(path)
            .await?;
        Ok(DmaFile(f))
    }

    /// Allocates disk space for `[0, bytes)` and sets the file size to at least
    /// `bytes`; existing data is kept. Writes into preallocated space cost 10-20x
    /// less than growing the file (design/GLOMMIO.md).
    pub async fn pre_allocate(&self, bytes: u64) -> io::Result<()> {
        Ok(self.0.pre_allocate(bytes, false).await?)
    }

    /// Frees `[offset, offset + bytes)` (reads then return zeros) without changing
    /// the file size.
    pub async fn punch_hole(&self, offset: u64, bytes: u64) -> io::Result<()> {
        debug_assert!(is_aligned(offset) && is_aligned(bytes));
        Ok(self.0.deallocate(offset, bytes).await?)
    }

    /// Writes all of `buf` at `pos` (both block-aligned). A short write is an error.
    pub async fn write_at(&self, buf: DmaBuf, pos: u64) -> io::Result<()> {
        assert!(is_aligned(pos), "unaligned write position {pos}");
        let len = buf.len();
        debug_assert!(is_aligned(len as u64));
        let written = self.0.write_at(buf.0, pos).await?;
        if written != len {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("short O_DIRECT write: {written} of {len} bytes at {pos}"),
            ));
        }
        Ok(())
    }

    /// Flushes written data (and the metadata needed to read it) to the device.
    pub async fn fdatasync(&self) -> io::Result<()> {
        Ok(self.0.fdatasync().await?)
    }

    /// Reads up to `len` bytes at `pos` (both block-aligned). Fewer bytes come back
    /// only at the end of the file.
    pub async fn read_at(&self, pos: u64, len: usize) -> io::Result<ReadBuf> {
        assert!(is_aligned(pos), "unaligned read position {pos}");
        debug_assert!(is_aligned(len as u64));
        Ok(ReadBuf(self.0.read_at_aligned(pos, len).await?))
    }

    /// The file size in bytes.
    pub async fn size(&self) -> io::Result<u64> {
        Ok(self.0.file_size().await?)
    }

    /// Removes the file's name; the open handle stays usable until dropped.
    pub async fn remove(&self) -> io::Result<()> {
        Ok(self.0.remove().await?)
    }

    /// Closes the file, reporting errors that a plain drop would swallow.
    pub async fn close(self) -> io::Result<()> {
        Ok(self.0.close().await?)
    }
}

/// fsyncs a directory so that file creations and removals in it are durable.
///
/// glommio's `Directory::open` calls `openat(-1, path)`: a relative path fails there
/// with EBADF (unlike its file opens, which resolve against the working directory), so
/// the path is made absolute first. The node already passes absolute paths; this keeps
/// every other caller (tools, tests) from meeting the same trap.
pub async fn sync_dir(dir: &Path) -> io::Result<()> {
    let dir = std::path::absolute(dir)?;
    let d = glommio::io::Directory::open(&dir).await?;
    d.sync().await?;
    Ok(d.close().await?)
}

thread_local! {
    /// Devices (st_dev) whose io_uring poll support this thread has probed correctly.
    static PROBED_DEVICES: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Makes glommio's io_uring polling probe give the right answer for `path`'s device.
///
/// glommio 0.9 decides whether a device supports IOPOLL (and then sends all its
/// O_DIRECT I/O through the polling ring) by reading the first block of the first
/// file opened on that device, once per thread. On a fresh, preallocated file that
/// block is unwritten, the kernel answers with zeros without touching the device,
/// and the probe wrongly concludes "supported". Later reads of written blocks then
/// fail with EOPNOTSUPP (seen on virtio-blk with `queue/io_poll = 0`). So before the
/// first open on a device, we open a small file whose first block holds real data:
/// the probe then does a device read and learns the truth.
async fn prime_iopoll_probe(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let dev = std::fs::metadata(dir)?.dev();
    if PROBED_DEVICES.with(|p| p.borrow().contains(&dev)) {
        return Ok(());
    }
    let probe = dir.join(format!(".iopoll-probe-{}", std::process::id()));
    // Blocking std I/O of one block, once per thread and device, at startup.
    let res = async {
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&probe)?;
            f.write_all(&[0xa5; BLOCK_BYTES])?;
            f.sync_all()?;
        }
        let f = glommio::io::OpenOptions::new()
            .read(true)
            .write(true)
            .dma_open(&probe)
            .await?;
        f.close().await?;
        Ok::<(), io::Error>(())
    }
    .await;
    let _ = std::fs::remove_file(&probe);
    res?;
    PROBED_DEVICES.with(|p| p.borrow_mut().push(dev));
    Ok(())
}
