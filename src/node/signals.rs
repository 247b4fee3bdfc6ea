//! SIGTERM and SIGINT: blocked in every thread, and received by one thread that
//! records which arrived for the supervision loop.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

use super::NodeError;

/// Blocks SIGTERM and SIGINT in this thread and every thread it starts later, so that
/// [`wait_for_shutdown_signal`] receives them instead of the default handler killing
/// the process midway.
pub(super) fn block_shutdown_signals() -> libc::sigset_t {
    // SAFETY: plain libc calls on a local, initialised signal set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

fn wait_for_shutdown_signal(set: &libc::sigset_t) -> i32 {
    let mut sig: libc::c_int = 0;
    // SAFETY: `set` was initialised by `block_shutdown_signals`.
    unsafe {
        libc::sigwait(set, &mut sig);
    }
    sig
}

/// Starts the thread that waits for SIGTERM or SIGINT; the returned value is the
/// signal received (0: none yet).
pub(super) fn watch(signals: libc::sigset_t) -> Result<Arc<AtomicI32>, NodeError> {
    let stop_signal = Arc::new(AtomicI32::new(0));
    {
        let stop_signal = stop_signal.clone();
        std::thread::Builder::new()
            .name("tandem-signals".into())
            .spawn(move || {
                let sig = wait_for_shutdown_signal(&signals);
                stop_signal.store(sig, Ordering::Release);
            })
            .map_err(NodeError::Executor)?;
    }
    Ok(stop_signal)
}
