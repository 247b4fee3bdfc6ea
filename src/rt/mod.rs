//! Runtime: the only module that imports glommio.
//!
//! Everything above `rt` (store, broker, net, ...) talks to io_uring through these
//! small wrappers so that a move to another runtime touches this module alone.
//!
//! * [`file`] — O_DIRECT files (`DmaFile`) and aligned buffers for the journal.
//! * [`channel`] — the shard mesh and local queues.
//! * [`exec`] — executors pinned or not, tasks that can be awaited, blocking work.
//! * [`net`] — listeners (socket2) shared by shards, TCP streams split in halves,
//!   optionally under TLS (the rustls glue is `tls.rs`).
//! * [`run_local`] — run a future on a fresh single executor (tests, benches, tools).
//! * [`spawn_local`], [`sleep`], [`yield_if_needed`] — task helpers for the current executor.

pub mod channel;
pub mod exec;
pub mod file;
pub mod net;
mod tls;

use std::future::Future;
use std::time::Duration;

/// io_uring registered buffer memory for [`run_local`] executors.
///
/// Small on purpose: RLIMIT_MEMLOCK is 8 MiB per user on our machines and every
/// executor registers this in each of its 3 rings (see design/GLOMMIO.md). Buffers
/// beyond the pool fall back to ordinary aligned allocations, which still work.
pub const LOCAL_IO_MEMORY_BYTES: usize = 256 * 1024;

/// io_uring submission queue depth for [`run_local`] executors (~0.8 MiB memlock total
/// with [`LOCAL_IO_MEMORY_BYTES`]).
pub const LOCAL_RING_DEPTH: usize = 128;

/// Runs `fut` to completion on a fresh, unpinned glommio executor on this thread.
///
/// Meant for tests, benches and tools; the broker builds its pinned executors in
/// `node`. Unpinned because on 2-core machines several processes share the CPUs.
///
/// # Panics
/// If the executor cannot be created (io_uring unavailable, memlock exhausted): there
/// is nothing useful a test or a bench can do without one.
pub fn run_local<F: Future>(fut: F) -> F::Output {
    let ex = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(LOCAL_IO_MEMORY_BYTES)
        .ring_depth(LOCAL_RING_DEPTH)
        .make()
        .unwrap_or_else(|e| {
            panic!(
                "cannot create a glommio executor (io_memory {LOCAL_IO_MEMORY_BYTES} B, \
                 ring_depth {LOCAL_RING_DEPTH}; check RLIMIT_MEMLOCK and io_uring support): {e}"
            )
        });
    ex.run(fut)
}

/// Spawns `fut` on the current executor and detaches it: it runs until it finishes
/// on its own (background tasks such as the journal writer own their exit condition).
///
/// # Panics
/// Outside a glommio executor.
pub fn spawn_local<F>(fut: F)
where
    F: Future<Output = ()> + 'static,
{
    glommio::spawn_local(fut).detach();
}

/// Sleeps on the current executor's timer.
pub async fn sleep(dur: Duration) {
    glommio::timer::sleep(dur).await;
}

/// Yields to other tasks if this one has used up its time slice; call it in long
/// loops (replay) since scheduling is cooperative.
pub async fn yield_if_needed() {
    glommio::yield_if_needed().await;
}
