//! The group-commit writer: one background task per journal.
//!
//! Loop: take the oldest pending batch (everything appended since the previous take,
//! up to `max_batch_bytes`), write it with one aligned `write_at` (the partial last
//! block is zero-padded; the next batch rewrites it), hand its bytes to the tap,
//! fdatasync, advance the durable position, wake the waiters it covers. Records
//! appended meanwhile pile up in the next batch, so under load one fdatasync covers
//! many records. The sync observer is told each flush's duration and how many records
//! and new bytes it made durable (`Synced`, counted into the batch as frames are
//! added: nothing is walked or allocated per flush for it).
//!
//! **Only what was written is shipped.** The tap (replication) gets a batch once the
//! local write succeeded, not before: a batch whose write failed was never shipped,
//! so the slave cannot hold (and after a takeover deliver) a record whose producer
//! was told it failed. Shipping still runs in parallel with the fdatasync, which is
//! the expensive part.
//!
//! A batch that nobody waits for yet (typically a consumer's acknowledgement, which
//! the client does not wait on) is held up to [`LINGER`] for one that someone does: a
//! producer's next send, arriving a fraction of a millisecond later, then shares its
//! flush instead of queueing behind it (the disk serializes flushes, so a send behind
//! an unrelated flush waits for two). A waiter, a second batch, closing or a reset
//! ends the hold at once.
//!
//! Batches of segment N are durable before any byte of segment N+1 is written, so
//! recovery never finds a hole followed by data in a later segment unless the disk
//! lost it.
//!
//! **Failures.** The first write or fdatasync error stops the journal for good
//! (`State::failed`), and the failure observer is told (the node then stops, so the
//! slave or the service manager takes over): after a failed fsync the page/device
//! state is unknown (fsyncgate), and only recovery can say what is on disk. What the
//! waiters hear depends on what is certain:
//!
//! * the batch was certainly not written (its segment could not be created, or the
//!   kernel refused the write before any byte moved: EPERM, EROFS, EBADF, ...): its
//!   waiters and later ones get [`StoreError::Failed`] (the client an ERROR);
//! * the write failed otherwise (EIO: some blocks may be on disk) or the fdatasync
//!   failed (the batch was written and shipped): the outcome is unknown, as after a
//!   crash, so those waiters get no answer (`State::unknown_until`); the node stops
//!   and the client's connection closes. A failover client replays; the producer
//!   audit keeps a replayed send from being stored twice.
//!
//! A full disk is different: segments are preallocated, so it shows when the next
//! segment cannot be created, before a byte of the batch is written or shipped; the
//! writer then pauses (`disk_full` set, retried every second) and goes on by itself
//! once space is free.

use std::future::poll_fn;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use futures_lite::future;

use bytes::Bytes;

use crate::rt;
use crate::rt::file::{align_down, align_up};

use super::segment::{self, Segment};
use super::state::{InFlight, Inner, State, Synced};
use super::{Position, StoreError};

/// What the writer took from `pending`.
struct Taken {
    segment: u64,
    base: u32,
    new_from: u32,
    bytes: Bytes,
    /// Records among the new bytes.
    records: u32,
}

/// How long a batch nobody waits for may wait for one somebody does (see the module
/// comment). Bounds the extra time before such a record is durable (and shipped).
pub(crate) const LINGER: Duration = Duration::from_micros(500);

/// Whether the writer should take the oldest pending batch now rather than hold it.
fn urgent(st: &State) -> bool {
    !st.waiters.is_empty()
        || st.pending.len() > 1
        || st.closing
        || st.resetting
        || st.failed.is_some()
}

/// Waits until a batch is pending; holds it up to [`LINGER`] while nobody waits for it.
async fn linger(inner: &Inner) {
    let pending = poll_fn(|cx| {
        let mut st = inner.state.borrow_mut();
        if !st.pending.is_empty() || st.closing || st.failed.is_some() {
            return Poll::Ready(());
        }
        st.writer_waker = Some(cx.waker().clone());
        Poll::Pending
    });
    pending.await;
    if urgent(&inner.state.borrow()) {
        return;
    }
    inner.state.borrow_mut().lingering = true;
    let wanted = poll_fn(|cx| {
        let mut st = inner.state.borrow_mut();
        if urgent(&st) {
            return Poll::Ready(());
        }
        st.writer_waker = Some(cx.waker().clone());
        Poll::Pending
    });
    future::or(wanted, rt::sleep(LINGER)).await;
    inner.state.borrow_mut().lingering = false;
}

pub(crate) async fn run(inner: Rc<Inner>) {
    loop {
        linger(&inner).await;
        let taken = poll_fn(|cx| {
            let mut guard = inner.state.borrow_mut();
            let st = &mut *guard;
            if st.failed.is_some() {
                return Poll::Ready(None);
            }
            if let Some(b) = st.pending.pop_front() {
                let end = b.end();
                let tail_base = align_down(u64::from(end)) as u32;
                st.tail = (
                    b.segment,
                    tail_base,
                    b.buf[(tail_base - b.base) as usize..].to_vec(),
                );
                let bytes = Bytes::from(b.buf);
                // Set in the same borrow as the pop: a record is always findable in
                // pending, in flight, or on disk.
                st.in_flight = Some(InFlight {
                    segment: b.segment,
                    base: b.base,
                    bytes: bytes.clone(),
                });
                return Poll::Ready(Some(Taken {
                    segment: b.segment,
                    base: b.base,
                    new_from: b.new_from,
                    bytes,
                    records: b.records,
                }));
            }
            if st.closing {
                return Poll::Ready(None);
            }
            st.writer_waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
        let Some(taken) = taken else { break };
        if let Err(failure) = write_batch(&inner, taken).await {
            fail(&inner, failure);
            break;
        }
    }
    let mut st = inner.state.borrow_mut();
    st.writer_done = true;
    st.writer_waker = None;
    st.waiters.wake_all();
    st.events.wake_all();
}

/// Why a batch failed, and whether its bytes may be on disk (and shipped).
struct Failure {
    error: StoreError,
    /// False: certainly not written, so not shipped either. True: the outcome is
    /// unknown (a write that may have moved some blocks, or a failed fdatasync).
    maybe_written: bool,
    /// End of the failed batch.
    end: Position,
}

/// Stops the journal after `f` (see the module comment): records what waiters hear,
/// wakes them, and tells the failure observer.
fn fail(inner: &Inner, f: Failure) {
    let why = f.error.to_string();
    let observer = {
        let mut st = inner.state.borrow_mut();
        if f.maybe_written {
            st.unknown_until = f.end;
            tracing::error!(dir = %inner.dir.display(), error = %why, unknown_until = %f.end, "journal write failed and what reached the disk is unknown: journal stopped; the requests waiting for it get no answer");
        } else {
            tracing::error!(dir = %inner.dir.display(), error = %why, "journal write failed before any byte was written: journal stopped; the requests waiting for it get an error");
        }
        st.failed = Some(why.clone());
        st.in_flight = None;
        st.waiters.wake_all();
        st.failure_observer.clone()
    };
    if let Some(observe) = observer {
        observe(&why);
    }
}

/// Whether a failed write certainly moved no byte: the kernel checks these before it
/// transfers anything (permissions, a read-only or immutable file, a bad descriptor or
/// alignment, the file size limit). Anything else (EIO above all) may have written
/// some blocks.
fn refused_before_writing(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EPERM | libc::EACCES | libc::EROFS | libc::EBADF | libc::EINVAL | libc::EFBIG)
    ) || matches!(
        e.kind(),
        std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
    )
}

async fn write_batch(inner: &Rc<Inner>, t: Taken) -> Result<(), Failure> {
    let end = t.base + t.bytes.len() as u32;
    let failure = |error: StoreError, maybe_written: bool| Failure {
        error,
        maybe_written,
        end: Position::new(t.segment, end),
    };
    let seg = segment_when_space(inner, t.segment)
        .await
        .map_err(|e| failure(e, false))?;
    debug_assert!(t.base.is_multiple_of(4096) && t.new_from >= t.base);
    assert!(u64::from(end) <= seg.bytes, "batch runs past its segment");

    let padded = align_up(t.bytes.len() as u64) as usize;
    let mut dma = rt::file::alloc(padded);
    dma.as_bytes_mut()[..t.bytes.len()].copy_from_slice(&t.bytes);
    let started = std::time::Instant::now();
    if let Err(e) = seg.file.write_at(dma, u64::from(t.base)).await {
        // (A short write comes back as an error too: as uncertain as EIO.)
        let certain = refused_before_writing(&e);
        return Err(failure(StoreError::io("write", &seg.path, e), !certain));
    }

    // Written (not yet durable): now, and only now, the bytes may be shipped. The
    // writer has taken them: `tapped_end` moves here whether or not a tap is
    // installed, in the same borrow that takes the tap out. (Take the tap out while
    // calling it, so it may call back into the journal.)
    let tap = {
        let mut st = inner.state.borrow_mut();
        st.tapped = Position::new(t.segment, end);
        st.tap.take()
    };
    if let Some(tap) = tap {
        let new = t.bytes.slice((t.new_from - t.base) as usize..);
        tap(Position::new(t.segment, t.new_from), new);
        let mut st = inner.state.borrow_mut();
        if st.tap.is_none() {
            st.tap = Some(tap);
        }
    }

    seg.file
        .fdatasync()
        .await
        .map_err(|e| failure(StoreError::io("fdatasync", &seg.path, e), true))?;
    let observer = inner.state.borrow().sync_observer.clone();
    if let Some(observe) = observer {
        observe(Synced {
            elapsed: started.elapsed(),
            records: u64::from(t.records),
            bytes: u64::from(end - t.new_from),
        });
    }

    let mut st = inner.state.borrow_mut();
    let durable = Position::new(t.segment, end);
    assert!(durable > st.durable, "durable position must grow");
    assert!(durable <= st.appended, "durable beyond appended");
    st.durable = durable;
    st.in_flight = None;
    st.stats.fsyncs += 1;
    st.stats.bytes_written += padded as u64;
    st.waiters.wake_up_to(durable);
    // (`reset` waits on `events` for the writer to be idle.)
    st.events.wake_all();
    Ok(())
}

/// How often a writer paused by a full disk tries to create its segment again.
const DISK_FULL_RETRY: Duration = Duration::from_secs(1);

/// [`ensure_segment`], except that a full disk pauses the writer instead of stopping
/// the journal: nothing of the batch has been written or shipped yet (the segment
/// must exist first), so trying again later is safe, and a file left half-allocated
/// is simply allocated again. Meanwhile `disk_full` says why (the broker refuses new
/// persistent sends and `/status` shows it); the batch's waiters wait. Closing the
/// journal ends the wait with the error.
async fn segment_when_space(inner: &Rc<Inner>, id: u64) -> Result<Rc<Segment>, StoreError> {
    loop {
        match ensure_segment(inner, id).await {
            Ok(seg) => {
                if let Some(was) = inner.state.borrow_mut().disk_full.take() {
                    tracing::warn!(dir = %inner.dir.display(), segment = id, was = %was, "disk space available again: journal writes resumed");
                }
                return Ok(seg);
            }
            Err(e) if e.is_disk_full() => {
                {
                    let mut st = inner.state.borrow_mut();
                    if st.closing {
                        return Err(e);
                    }
                    if st.disk_full.is_none() {
                        tracing::error!(dir = %inner.dir.display(), segment = id, error = %e, "journal disk full: writes paused until space is free; new persistent sends are refused");
                    }
                    st.disk_full = Some(e.to_string());
                }
                rt::sleep(DISK_FULL_RETRY).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Returns segment `id`, creating it if nobody has (waiting if someone is).
pub(crate) async fn ensure_segment(inner: &Rc<Inner>, id: u64) -> Result<Rc<Segment>, StoreError> {
    loop {
        let create = {
            let mut st = inner.state.borrow_mut();
            if let Some(seg) = st.segments.get(&id) {
                return Ok(seg.clone());
            }
            if st.creating.is_none() {
                st.creating = Some(id);
                true
            } else {
                false
            }
        };
        if !create {
            poll_fn(|cx| {
                let mut st = inner.state.borrow_mut();
                if st.creating.is_none() {
                    return Poll::Ready(());
                }
                st.events.register(cx.waker());
                Poll::Pending
            })
            .await;
            continue;
        }
        let bytes = {
            let st = inner.state.borrow();
            st.planned_sizes
                .get(&id)
                .copied()
                .unwrap_or(st.cfg.segment_bytes)
        };
        let created = segment::create(&inner.dir, id, bytes).await;
        let mut st = inner.state.borrow_mut();
        st.creating = None;
        st.events.wake_all();
        let seg = Rc::new(created?);
        st.planned_sizes.remove(&id);
        st.segments.insert(id, seg.clone());
        return Ok(seg);
    }
}

/// Background creation of the next segment (started by `append`, which counted it in
/// `Inner::precreates`).
pub(crate) async fn precreate(inner: Rc<Inner>, id: u64) {
    if let Err(e) = ensure_segment(&inner, id).await {
        // The writer retries when it needs the segment and fails the journal then.
        tracing::warn!(segment = id, error = %e, "journal segment pre-creation failed");
    }
    inner.precreates.set(inner.precreates.get() - 1);
    inner.state.borrow_mut().events.wake_all();
}
