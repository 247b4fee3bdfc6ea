//! Administration (the status endpoint's /admin/*): purging and deleting queues on
//! behalf of an operator. Separate from client traffic because it runs outside the
//! mesh, straight on the shard's executor, yet must answer under the same durability
//! condition as a client's receipt.

use crate::broker::core::ShardCore;
use crate::broker::destination::Destination;
use crate::broker::ops::BrokerError;
use crate::store::Position;

use super::journal_sink::Sink;
use super::mesh::process_outputs;
use super::replica_gate::settle;
use super::Shard;

impl Shard {
    /// Removes every message of queue `dest` (see `ShardCore::purge_queue`); returns
    /// how many. Answers once the `Purge` record is durable and, while a slave is in
    /// sync, held by the slave: the same condition a client's receipt waits for.
    pub async fn purge_queue(&self, dest: &Destination) -> Result<u64, BrokerError> {
        self.admin(|core, sink| core.purge_queue(dest, sink)).await
    }

    /// Purges and removes queue `dest` (see `ShardCore::delete_queue`): refused while
    /// it has consumers. Answers as [`Shard::purge_queue`] does.
    pub async fn delete_queue(&self, dest: &Destination) -> Result<u64, BrokerError> {
        self.admin(|core, sink| core.delete_queue(dest, sink)).await
    }

    async fn admin(
        &self,
        op: impl FnOnce(&mut ShardCore, &mut Sink<'_>) -> Result<(u64, Option<Position>), BrokerError>,
    ) -> Result<u64, BrokerError> {
        let shared = &self.shared;
        if !shared.serving.get() {
            return Err(BrokerError::NotServing);
        }
        let (removed, durable_at) = {
            let mut sink = Sink(shared);
            let mut core = shared.core.borrow_mut();
            op(&mut core, &mut sink)?
        };
        // What the change released (blocked producers) need not wait for it: their
        // replies carry their own tickets.
        process_outputs(shared);
        if let Some(t) = durable_at {
            settle(shared, t).await?;
        }
        Ok(removed)
    }
}
