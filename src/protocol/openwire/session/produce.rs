//! Producing: ProducerInfo, message sends (sync ones answered once the broker stored
//! the message; one send per member of a composite destination; transacted ones
//! buffered until COMMIT; a virtual topic's consumer queues are members too), producer
//! flow control, and temporary destinations
//! (DestinationInfo).

use std::sync::Arc;

use super::super::{DestinationInfo, DestinationOperation, Message as OwMessage, ProducerInfo};
use super::convert::{
    advisory_message, to_broker_destination, to_broker_destinations, to_broker_message,
};
use super::{Action, Refusal, Session, Then, JAVA_INVALID_DESTINATION, JAVA_RESOURCE_ALLOCATION};
use crate::broker::{Destination, MessageRef, Request, TxOp};
use crate::metrics::Limit;
use crate::protocol::SessionEnv;

impl<E: SessionEnv> Session<E> {
    /// The broker destinations `d` names, under this broker's cap on composite members
    /// (a refusal is counted in `/status` and `/metrics`).
    pub(super) fn members_of(
        &self,
        d: &super::super::Destination,
    ) -> Result<Vec<Destination>, Refusal> {
        let max = self.ctx.settings.limits.max_composite_destinations;
        to_broker_destinations(d, max).inspect_err(|r| {
            if r.class == JAVA_RESOURCE_ALLOCATION {
                self.ctx.registries.limits.refused(Limit::CompositeMembers);
            }
        })
    }

    /// Where a send to `d` goes: its members, plus the consumer queues that exist now
    /// of each virtual topic among them (`broker::virtual_topic`), under the same cap.
    fn send_members(&self, d: &super::super::Destination) -> Result<Vec<Destination>, Refusal> {
        let mut members = self.members_of(d)?;
        let max = self.ctx.settings.limits.max_composite_destinations;
        if let Err(e) = self.ctx.registries.virtual_topics.expand(&mut members, max) {
            self.ctx.registries.limits.refused(Limit::CompositeMembers);
            return Err(Refusal::new(JAVA_RESOURCE_ALLOCATION, e.to_string()));
        }
        Ok(members)
    }

    /// A per-connection cap reached: counted, and the client told which setting it
    /// hit (`ResourceAllocationException`; the connection is kept).
    pub(super) fn over_connection_limit(&self, limit: Limit, max: usize, what: &str) -> Refusal {
        self.ctx.registries.limits.refused(limit);
        Refusal::new(
            JAVA_RESOURCE_ALLOCATION,
            format!(
                "a connection may have at most {max} {what} ({})",
                limit.name()
            ),
        )
    }

    pub(super) fn producer_info(&mut self, info: ProducerInfo) -> Result<(), Refusal> {
        if let Some(d) = &info.destination {
            self.members_of(d)?;
        }
        let limits = &self.ctx.settings.limits;
        if let Some(id) = info.producer_id {
            if !self.producers.contains_key(&id)
                && self.producers.len() >= limits.max_producers_per_connection
            {
                let max = limits.max_producers_per_connection;
                return Err(self.over_connection_limit(Limit::Producers, max, "producers"));
            }
            self.producers.insert(id, info.window_size);
        }
        self.respond_ok(info.header)
    }

    pub(super) fn send(&mut self, m: OwMessage) -> Result<(), Refusal> {
        let header = m.header;
        let Some(destination) = &m.destination else {
            return Err(Refusal::new(
                JAVA_INVALID_DESTINATION,
                "message without a destination",
            ));
        };
        let members = self.send_members(destination)?;
        let now_ms = self.env.now_ms();
        let mut msgs = Vec::with_capacity(members.len());
        for d in members {
            let msg = to_broker_message(&m, d, || self.env.next_message_id(), now_ms)?;
            msgs.push(Arc::new(msg));
        }
        if let Some(txid) = m.transaction_id {
            // A transacted send waits for the COMMIT; the client sends it async. A
            // transaction the client did not BEGIN here (a failover replay) starts now.
            let tx = self.transactions.entry(txid.clone()).or_default();
            if tx.failed.is_some() {
                // Rolled back by a limit already: its COMMIT reports it.
                return self.respond_ok(header);
            }
            // Buffered until COMMIT: counted against maxTransactionSize and, with every
            // open transaction, against the memory limit.
            let size = msgs.iter().map(|m| m.memory_size() as u64).sum();
            if let Err(refusal) =
                tx.charge
                    .add(&self.ctx.registries.limits, &self.ctx.settings.limits, size)
            {
                let why = refusal.message();
                tracing::debug!(conn = ?self.ctx.conn, why, "transaction refused");
                self.fail_transaction(&txid, why.clone());
                // A sync send hears it now; an async one (the JMS default inside a
                // transaction) at COMMIT.
                if header.response_required {
                    return Err(Refusal::new(JAVA_RESOURCE_ALLOCATION, why));
                }
                return Ok(());
            }
            tx.ops.extend(msgs.into_iter().map(TxOp::Send));
            return self.respond_ok(header);
        }
        let correlation = header.response_required.then_some(header.command_id);
        // ActiveMQ's producer window: the client counted `jms_size` bytes of this async
        // send against it.
        let producer_ack = match (&m.producer_id, correlation) {
            (Some(p), None) if self.producers.get(p).is_some_and(|&w| w > 0) => {
                Some((p.clone(), jms_size(&m)))
            }
            _ => None,
        };
        self.pending_sends += 1;
        self.group(
            Then::Send {
                correlation,
                producer_ack,
            },
            |s, g| {
                for msg in msgs {
                    let shard = s.shard_of(&msg.destination);
                    s.post_in(g, shard, |reply| Request::Send { msg, reply });
                }
            },
        );
        if self.pending_sends >= self.ctx.settings.max_pending_sends.max(1) && !self.reading_paused
        {
            self.reading_paused = true;
            self.out.push(Action::PauseReading);
        }
        Ok(())
    }

    /// DestinationInfo: the client creates or deletes one of its temporary
    /// destinations (`session.createTemporaryQueue()`, `TemporaryQueue.delete()`). The
    /// broker holds it for this connection (it dies with the connection), the
    /// broker-wide registry lists it, and an advisory tells the other JMS connections
    /// (see `consume.rs`); the Response follows once all that is done. Other
    /// destinations exist when used.
    pub(super) fn destination_info(&mut self, info: DestinationInfo) -> Result<(), Refusal> {
        let header = info.header;
        let Some(d) = &info.destination else {
            return self.respond_ok(header);
        };
        let destination = to_broker_destination(d)?;
        if !destination.kind.is_temporary() {
            return self.respond_ok(header);
        }
        let owner = self.ctx.conn;
        let shard = self.shard_of(&destination);
        let correlation = header.response_required.then_some(header.command_id);
        let then = Then::Respond {
            correlation,
            report: true,
        };
        let added = info.operation == DestinationOperation::Add;
        let connection_id = self.client_connection_id();
        let registry = &self.ctx.registries.temp_destinations;
        let max_temp = self
            .ctx
            .settings
            .limits
            .max_temp_destinations_per_connection;
        if added
            && !self.temp_destinations.contains(&destination)
            && self.temp_destinations.len() >= max_temp
        {
            return Err(self.over_connection_limit(
                Limit::TempDestinations,
                max_temp,
                "temporary destinations",
            ));
        }
        let announce = if added {
            self.temp_destinations.insert(destination.clone());
            registry.add(destination.clone(), owner, &connection_id);
            true
        } else {
            self.temp_destinations.remove(&destination);
            registry.remove(&destination, owner)
        };
        let advisory = announce.then(|| self.advisory(&destination, &connection_id, added));
        self.group(then, |s, g| {
            if added {
                s.post_in(g, shard, |reply| Request::CreateTemp {
                    destination,
                    owner,
                    reply,
                });
            } else {
                s.post_in(g, shard, |reply| Request::DeleteTemp {
                    destination,
                    owner,
                    reply,
                });
            }
            if let Some(msg) = advisory {
                let shard = s.shard_of(&msg.destination);
                s.post_in(g, shard, |reply| Request::Send { msg, reply });
            }
        });
        Ok(())
    }

    /// The advisory that `destination` was created (`added`) or deleted.
    fn advisory(&self, destination: &Destination, connection_id: &str, added: bool) -> MessageRef {
        Arc::new(advisory_message(
            self.env.next_message_id(),
            destination,
            connection_id,
            added,
            &self.ctx.settings.broker_name,
        ))
    }

    fn client_connection_id(&self) -> String {
        self.connection
            .as_ref()
            .map(|c| c.id.value.clone())
            .unwrap_or_default()
    }

    /// This connection's temporary destinations are going (the connection closes):
    /// off the registry, and an advisory for each. The broker deletes them itself.
    pub(super) fn forget_temp_destinations(&mut self) {
        let connection_id = self.client_connection_id();
        let owner = self.ctx.conn;
        let temps: Vec<Destination> = self.temp_destinations.drain().collect();
        for d in temps {
            if self.ctx.registries.temp_destinations.remove(&d, owner) {
                let msg = self.advisory(&d, &connection_id, false);
                let shard = self.shard_of(&msg.destination);
                self.post_one(
                    Then::Respond {
                        correlation: None,
                        report: false,
                    },
                    shard,
                    |reply| Request::Send { msg, reply },
                );
            }
        }
    }
}

/// Java's `Message.getSize()` for a message as sent: at least 1024 bytes, plus the
/// marshalled properties and the content.
fn jms_size(m: &OwMessage) -> i32 {
    const MINIMUM_MESSAGE_SIZE: usize = 1024;
    let size = MINIMUM_MESSAGE_SIZE
        + m.marshalled_properties.as_ref().map_or(0, |p| p.len())
        + m.content.as_ref().map_or(0, |c| c.len());
    i32::try_from(size).unwrap_or(i32::MAX)
}
