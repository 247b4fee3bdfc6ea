//! Wake-up lists for tasks on one executor (no glommio needed, so the store stays
//! runtime-agnostic).

use std::collections::BTreeMap;
use std::task::Waker;

use super::Position;

/// Tasks waiting for the durable position to reach a target, ordered by target so
/// the writer wakes exactly those whose records are now durable.
#[derive(Default)]
pub(crate) struct DurableWaiters {
    next_id: u64,
    /// `(target, registration id)` -> waker; the id keeps equal targets apart.
    by_target: BTreeMap<(Position, u64), Waker>,
}

impl DurableWaiters {
    /// Registers (or refreshes, if `id` is already known) a waiter; returns its id.
    pub(crate) fn register(&mut self, target: Position, id: Option<u64>, waker: &Waker) -> u64 {
        let id = id.unwrap_or_else(|| {
            self.next_id += 1;
            self.next_id
        });
        match self.by_target.get_mut(&(target, id)) {
            Some(w) if w.will_wake(waker) => {}
            Some(w) => w.clone_from(waker),
            None => {
                self.by_target.insert((target, id), waker.clone());
            }
        }
        id
    }

    /// Whether anyone waits (for a position not yet durable: the others were woken
    /// and removed).
    pub(crate) fn is_empty(&self) -> bool {
        self.by_target.is_empty()
    }

    /// Forgets a waiter (its future completed or was dropped).
    pub(crate) fn remove(&mut self, target: Position, id: u64) {
        self.by_target.remove(&(target, id));
    }

    /// Wakes every waiter whose target is at or before `durable`.
    pub(crate) fn wake_up_to(&mut self, durable: Position) {
        let later = self
            .by_target
            .split_off(&(Position(durable.0.saturating_add(1)), 0));
        let done = std::mem::replace(&mut self.by_target, later);
        for (_, w) in done {
            w.wake();
        }
    }

    /// Wakes everyone (the journal failed or closed).
    pub(crate) fn wake_all(&mut self) {
        for (_, w) in std::mem::take(&mut self.by_target) {
            w.wake();
        }
    }
}

/// A plain list of wakers for rare events (segment created, writer exited).
#[derive(Default)]
pub(crate) struct WakerList(Vec<Waker>);

impl WakerList {
    pub(crate) fn register(&mut self, waker: &Waker) {
        if !self.0.iter().any(|w| w.will_wake(waker)) {
            self.0.push(waker.clone());
        }
    }

    pub(crate) fn wake_all(&mut self) {
        for w in self.0.drain(..) {
            w.wake();
        }
    }
}
