//! The replica gate: while a slave is in sync, a reply that waits for a journal
//! position is held until the slave has acknowledged it as well as until the local
//! fsync. Without a slave in sync, a reply goes out only while the replication core's
//! grant to confirm alone holds ([`Grant`], from `replication::machine`): a short lease
//! renewed on every heartbeat, so a master whose process was stopped (or that lost its
//! slave and has not yet found out who serves) confirms nothing. Kept apart so the
//! "settled" condition every waiting reply uses is defined in one place.

use std::cell::{Cell, RefCell};
use std::time::Instant;

use crate::broker::ops::BrokerError;
use crate::rt::channel::Oneshot;
use crate::store::Position;

use super::Shared;

/// Holds replies back until the slave has acknowledged their records, while a slave
/// is in sync ([`Shard::require_replica`](super::Shard::require_replica)).
#[derive(Default)]
pub(super) struct ReplicaGate {
    required: Cell<bool>,
    acked: Cell<Position>,
    grant: Cell<Grant>,
    waiters: RefCell<Vec<(Position, Oneshot<()>)>>,
}

/// Whether this shard may confirm without a slave's acknowledgement.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Grant {
    /// No pair (yet): nobody else can serve. Until the core says otherwise.
    #[default]
    Always,
    /// Until then (the core renews it on each heartbeat while it holds).
    Until(Instant),
    /// Not now: wait for a slave acknowledgement or a new grant.
    Withheld,
}

impl ReplicaGate {
    fn covers(&self, end: Position) -> bool {
        if self.required.get() {
            return self.acked.get() >= end;
        }
        match self.grant.get() {
            Grant::Always => true,
            // Checked when the reply would go out: after a pause, an old grant has run
            // out whatever the core has not yet noticed.
            Grant::Until(t) => Instant::now() < t,
            Grant::Withheld => false,
        }
    }

    /// The core's grant to confirm alone changed (or was renewed).
    pub(super) fn set_grant(&self, grant: Grant) {
        self.grant.set(grant);
        if !self.required.get() && self.covers(Position(0)) {
            self.release_all();
        }
    }

    async fn wait(&self, end: Position) {
        if self.covers(end) {
            return;
        }
        let slot = Oneshot::default();
        self.waiters.borrow_mut().push((end, slot.clone()));
        slot.wait().await;
    }

    /// The slave holds everything before `pos`.
    pub(super) fn acked(&self, pos: Position) {
        if pos > self.acked.get() {
            self.acked.set(pos);
        }
        let ready: Vec<Oneshot<()>> = {
            let mut w = self.waiters.borrow_mut();
            let (ready, keep): (Vec<_>, Vec<_>) = w.drain(..).partition(|(end, _)| *end <= pos);
            *w = keep;
            ready.into_iter().map(|(_, s)| s).collect()
        };
        for slot in ready {
            slot.set(());
        }
    }

    /// A slave is in sync: from now on replies wait for its acknowledgements.
    pub(super) fn require(&self) {
        self.required.set(true);
    }

    /// The slave is gone: forget its acknowledgements. Replies waiting for it go out
    /// only once the core grants this node the right to confirm alone (it first finds
    /// out whether the slave took over).
    pub(super) fn detach(&self) {
        self.acked.set(Position(0));
        self.required.set(false);
        if self.covers(Position(0)) {
            self.release_all();
        }
    }

    fn release_all(&self) {
        let all: Vec<_> = self.waiters.borrow_mut().drain(..).collect();
        for (_, slot) in all {
            slot.set(());
        }
    }
}

/// Whether everything up to `end` is durable here and, while a slave is in sync, held
/// by the slave: what a reply waiting for a journal position needs.
pub(super) fn settled(shared: &Shared, end: Position) -> bool {
    shared.journal.durable_position() >= end && shared.replica.covers(end)
}

/// Waits until [`settled`]`(end)`. The local fsync and the slave's acknowledgement run
/// in parallel; this returns when both are in. A failed journal write is an error at
/// once: the journal answers a wait with an error only for records certainly not
/// written, which were therefore never shipped either (`store::writer`), so the slave
/// will not acknowledge them.
pub(super) async fn settle(shared: &Shared, end: Position) -> Result<(), BrokerError> {
    shared
        .journal
        .wait_durable(end)
        .await
        .map_err(BrokerError::from)?;
    shared.replica.wait(end).await;
    Ok(())
}
