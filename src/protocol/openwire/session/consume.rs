//! Consuming: ConsumerInfo (queues, topics, durable topic subscriptions, selectors,
//! prefetch, the advisory consumer), deliveries turned into MessageDispatch and kept
//! outstanding until acknowledged, consumers removed (RemoveInfo) and durable
//! subscriptions removed (RemoveSubscriptionInfo).
//!
//! The advisory consumer (`ActiveMQ.Advisory.TempQueue,ActiveMQ.Advisory.TempTopic`,
//! session -1, sent by every JMS connection) must get a Response or the client cannot
//! create a session; it gets one and no broker subscription: Tandem publishes no
//! advisories yet, so a client only learns about its own temporary destinations.

use std::collections::VecDeque;

use super::super::{
    Command, ConsumerControl, ConsumerId, ConsumerInfo, DestinationKind, Header, MessageDispatch,
    MessagePull, RemoveSubscriptionInfo,
};
use super::convert::{to_broker_destination, to_openwire_destination, to_openwire_message};
use super::{Refusal, Session, Then, JAVA_INVALID_SELECTOR, JAVA_JMS};
use crate::broker::selector::Selector;
use crate::broker::{
    AckMode, Delivery, DestKind, Destination, Request, ShardId, SubKey, SubscribeSpec,
};
use crate::protocol::SessionEnv;

/// Topics whose consumers are ActiveMQ advisory consumers.
const ADVISORY_PREFIX: &str = "ActiveMQ.Advisory.";

/// A message dispatched to a consumer and not yet acknowledged.
#[derive(Debug, Clone)]
pub(super) struct Dispatched {
    /// The destination's sequence number: the MessageId's brokerSequenceId.
    pub(super) seq: u64,
    pub(super) destination: Destination,
    /// A DELIVERED ack covered it: handed to the application, not acknowledged.
    pub(super) delivered: bool,
    /// Acknowledged inside this (still open) transaction.
    pub(super) in_tx: Option<super::super::TransactionId>,
}

#[derive(Debug)]
pub(super) struct Consumer {
    /// The broker subscription number (`SubKey::sub`).
    pub(super) sub: u64,
    pub(super) destination: Destination,
    /// In dispatch order: range acks take a prefix.
    pub(super) outstanding: VecDeque<Dispatched>,
}

impl<E: SessionEnv> Session<E> {
    pub(super) fn consumer_info(&mut self, info: ConsumerInfo) -> Result<(), Refusal> {
        let header = info.header;
        let (Some(id), Some(ow_dest)) = (info.consumer_id.clone(), info.destination.as_ref())
        else {
            return Err(Refusal::new(
                JAVA_JMS,
                "ConsumerInfo without a consumer id or destination",
            ));
        };
        if ow_dest.kind == DestinationKind::Topic
            && ow_dest.physical_name.starts_with(ADVISORY_PREFIX)
        {
            self.advisory.insert(id);
            return self.respond_ok(header);
        }
        if self.consumers.contains_key(&id) {
            // A replay (failover) of a consumer this socket already has.
            return self.respond_ok(header);
        }
        if info.browser {
            return Err(Refusal::new(
                JAVA_JMS,
                "queue browsers are not supported by Tandem yet",
            ));
        }
        let destination = to_broker_destination(ow_dest)?;
        let selector = info.selector.filter(|s| !s.trim().is_empty());
        if let Some(text) = &selector {
            if let Err(e) = Selector::parse(text) {
                return Err(Refusal::new(JAVA_INVALID_SELECTOR, format!("{e}: {text}")));
            }
        }
        let durable = match &info.subscription_name {
            Some(name) if destination.kind == DestKind::Topic => {
                Some(self.durable_name(info.client_id.as_deref(), name))
            }
            _ => None,
        };
        // Prefetch 0 (a pull consumer) is served as prefetch 1 (see `pull`).
        let prefetch = u32::try_from(info.prefetch_size).unwrap_or(0).max(1);
        let temp_owner = (destination.kind.is_temporary()
            && self.temp_destinations.contains(&destination))
        .then_some(self.ctx.conn);
        let num = self.next_sub;
        self.next_sub += 1;
        self.consumers.insert(
            id.clone(),
            Consumer {
                sub: num,
                destination: destination.clone(),
                outstanding: VecDeque::new(),
            },
        );
        self.consumer_of.insert(num, id.clone());
        let spec = SubscribeSpec {
            destination: destination.clone(),
            ack: AckMode::ClientIndividual,
            prefetch,
            durable,
            selector,
            temp_owner,
        };
        let shard = self.shard_of(&destination);
        let sub = self.sub_key(num);
        let correlation = header.response_required.then_some(header.command_id);
        self.post_one(
            Then::Subscribe {
                correlation,
                consumer: id,
            },
            shard,
            |reply| Request::Subscribe { sub, spec, reply },
        );
        Ok(())
    }

    /// Removes a consumer: the broker takes its unacknowledged messages back (they
    /// are redelivered, flagged). Responds to `correlation` once done.
    pub(super) fn remove_consumer(&mut self, id: &ConsumerId, correlation: Option<i32>) {
        if self.advisory.remove(id) {
            self.respond(correlation, Ok(()), false);
            return;
        }
        let Some(c) = self.consumers.remove(id) else {
            self.respond(correlation, Ok(()), false);
            return;
        };
        self.consumer_of.remove(&c.sub);
        let shard = self.shard_of(&c.destination);
        let sub = self.sub_key(c.sub);
        let destination = c.destination;
        self.post_one(
            Then::Respond {
                correlation,
                report: false,
            },
            shard,
            |reply| Request::Unsubscribe {
                sub,
                destination,
                remove_durable: None,
                reply,
            },
        );
    }

    /// Forgets a consumer whose subscription the broker refused.
    pub(super) fn drop_consumer(&mut self, id: &ConsumerId) {
        if let Some(c) = self.consumers.remove(id) {
            self.consumer_of.remove(&c.sub);
        }
    }

    /// `session.unsubscribe(name)`: the durable subscription goes, wherever its topic
    /// lives (every shard is asked; the one holding it journals the removal). Refused
    /// while a consumer is attached to it.
    pub(super) fn remove_subscription(
        &mut self,
        info: RemoveSubscriptionInfo,
    ) -> Result<(), Refusal> {
        let header = info.header;
        let Some(name) = info.subscription_name.as_deref() else {
            return Err(Refusal::new(
                JAVA_JMS,
                "RemoveSubscriptionInfo without a subscription name",
            ));
        };
        let durable = self.durable_name(info.client_id.as_deref(), name);
        // A subscription number never used by this connection: nothing is attached.
        let sub = self.sub_key(self.next_sub);
        self.next_sub += 1;
        let shards: Vec<ShardId> = (0..self.ctx.shard_count.max(1)).collect();
        let correlation = header.response_required.then_some(header.command_id);
        self.group(
            Then::Respond {
                correlation,
                report: true,
            },
            |s, g| {
                for shard in shards {
                    let remove_durable = Some(durable.clone());
                    s.post_in(g, shard, |reply| Request::Unsubscribe {
                        sub,
                        destination: Destination::topic(""),
                        remove_durable,
                        reply,
                    });
                }
            },
        );
        Ok(())
    }

    /// MessagePull (a prefetch-0 consumer's `receive`). Such consumers are served as
    /// prefetch 1, so a message that is there is already on its way; an empty
    /// destination is not answered with the "nothing" dispatch yet.
    pub(super) fn pull(&mut self, p: MessagePull) -> Result<(), Refusal> {
        tracing::debug!(conn = ?self.ctx.conn, consumer = ?p.consumer_id, timeout = p.timeout, "MessagePull (served as prefetch 1)");
        self.respond_ok(p.header)
    }

    /// ConsumerControl from a failover client restoring a consumer's prefetch.
    pub(super) fn consumer_control(&mut self, c: ConsumerControl) -> Result<(), Refusal> {
        tracing::debug!(conn = ?self.ctx.conn, consumer = ?c.consumer_id, prefetch = c.prefetch, "ConsumerControl ignored");
        self.respond_ok(c.header)
    }

    // ----- deliveries -----

    pub(super) fn deliver(&mut self, d: Delivery) {
        let Some(id) = self.consumer_of.get(&d.sub.sub).cloned() else {
            // Removed while this was in flight: the broker has already taken it back.
            tracing::debug!(sub = d.sub.sub, "delivery for a removed consumer dropped");
            return;
        };
        let Some(c) = self.consumers.get_mut(&id) else {
            return;
        };
        let message = to_openwire_message(&d.msg, &d.destination, d.seq, d.redelivery_count);
        c.outstanding.push_back(Dispatched {
            seq: d.seq,
            destination: d.destination.clone(),
            delivered: false,
            in_tx: None,
        });
        self.write(Command::MessageDispatch(MessageDispatch {
            header: Header::default(),
            consumer_id: Some(id),
            destination: Some(to_openwire_destination(&d.destination)),
            message: Some(Box::new(message)),
            redelivery_counter: i32::try_from(d.redelivery_count).unwrap_or(i32::MAX),
        }));
    }

    pub(super) fn sub_key(&self, sub: u64) -> SubKey {
        SubKey {
            conn: self.ctx.conn,
            sub,
        }
    }
}
