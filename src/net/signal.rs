//! A wake-up flag for one waiting task on one executor.
//!
//! Level-triggered and coalescing: any number of `notify` calls before the waiter runs
//! wake it once, so a producer can notify on every item without queueing wake-ups.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::task::{Poll, Waker};

#[derive(Default)]
pub struct Signal {
    set: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Signal {
    pub fn notify(&self) {
        self.set.set(true);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    /// Completes once `notify` has been called since the last completed wait.
    pub fn wait(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| {
            if self.set.replace(false) {
                Poll::Ready(())
            } else {
                *self.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future;

    #[test]
    fn notifications_coalesce_and_rearm() {
        let s = Signal::default();
        s.notify();
        s.notify();
        future::block_on(s.wait());
        assert!(future::block_on(future::poll_once(s.wait())).is_none());
        s.notify();
        future::block_on(s.wait());
    }
}
