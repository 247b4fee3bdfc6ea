//! Consuming: ConsumerInfo (queues, topics, durable topic subscriptions, selectors,
//! prefetch, the advisory consumer), deliveries turned into MessageDispatch and kept
//! outstanding until acknowledged, consumers removed (RemoveInfo) and durable
//! subscriptions removed (RemoveSubscriptionInfo).
//!
//! Prefetch: the broker dispatches at most `window` unacknowledged messages to a
//! consumer. The window is the consumer's prefetch plus the messages a DELIVERED ack
//! marked (handed to the application, not acknowledged yet: ActiveMQ's prefetch
//! extension, so a CLIENT_ACKNOWLEDGE consumer can receive more than its prefetch
//! before acknowledging). A prefetch-0 consumer pulls: each MessagePull opens the
//! window by one until a message arrives or the pull's timeout passes, which is
//! answered with an empty MessageDispatch (at once for `receiveNoWait`, after a
//! barrier proves nothing is on its way). ConsumerControl (failover) sets the prefetch.
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
use super::{Action, Refusal, Session, State, Then, JAVA_INVALID_SELECTOR, JAVA_JMS};
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
    /// The client's prefetch; 0: a pull consumer.
    pub(super) prefetch: u32,
    /// The prefetch the broker has for it (see the module doc).
    pub(super) window: u32,
    /// A pull waiting for a message.
    pub(super) pull: Option<Pull>,
    /// Numbers pulls, so a barrier's answer knows whether its pull is still open.
    pub(super) pulls: u64,
}

/// An open MessagePull.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pull {
    /// When to answer "nothing" (env ms); `None`: wait for a message.
    pub(super) deadline_ms: Option<u64>,
}

impl Consumer {
    /// The window the broker should have (see the module doc).
    fn wanted_window(&self) -> u32 {
        let outstanding = u32::try_from(self.outstanding.len()).unwrap_or(u32::MAX);
        if self.prefetch == 0 {
            outstanding.saturating_add(u32::from(self.pull.is_some()))
        } else {
            let delivered = self.outstanding.iter().filter(|o| o.delivered).count();
            self.prefetch
                .saturating_add(u32::try_from(delivered).unwrap_or(u32::MAX))
        }
    }
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
        let prefetch = u32::try_from(info.prefetch_size).unwrap_or(0);
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
                prefetch,
                window: prefetch,
                pull: None,
                pulls: 0,
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

    /// MessagePull: a prefetch-0 consumer's `receive(timeout)` (timeout -1:
    /// `receiveNoWait`, 0: wait for ever). See the module doc.
    pub(super) fn pull(&mut self, p: MessagePull) -> Result<(), Refusal> {
        let header = p.header;
        let Some(cid) = p.consumer_id else {
            return self.respond_ok(header);
        };
        let now = self.env.now_ms();
        let Some(c) = self.consumers.get_mut(&cid) else {
            return self.respond_ok(header);
        };
        if c.prefetch > 0 {
            // Messages are pushed to this consumer anyway.
            return self.respond_ok(header);
        }
        c.pulls += 1;
        let serial = c.pulls;
        let shard = c.destination.shard(self.ctx.shard_count);
        c.pull = Some(Pull {
            deadline_ms: u64::try_from(p.timeout)
                .ok()
                .filter(|&t| t > 0)
                .map(|t| now.saturating_add(t)),
        });
        self.update_window(&cid);
        if p.timeout < 0 {
            // receiveNoWait: once the broker processed the credit, whatever it had is
            // on its way (events from a shard arrive in order); then say "nothing".
            self.post_one(
                Then::PullCheck {
                    consumer: cid,
                    serial,
                },
                shard,
                |reply| Request::Barrier { reply },
            );
        } else if p.timeout > 0 {
            self.out.push(Action::DeadlineChanged);
        }
        self.respond_ok(header)
    }

    /// A pull that is still open after its barrier (receiveNoWait) gets "nothing".
    pub(super) fn pull_checked(&mut self, cid: &ConsumerId, serial: u64) {
        let open = self
            .consumers
            .get(cid)
            .is_some_and(|c| c.pull.is_some() && c.pulls == serial);
        if open {
            self.end_pull(cid);
        }
    }

    /// Closes `cid`'s open pull with the empty MessageDispatch.
    fn end_pull(&mut self, cid: &ConsumerId) {
        if let Some(c) = self.consumers.get_mut(cid) {
            c.pull = None;
        }
        self.update_window(cid);
        self.write(Command::MessageDispatch(MessageDispatch {
            header: Header::default(),
            consumer_id: Some(cid.clone()),
            destination: None,
            message: None,
            redelivery_counter: 0,
        }));
    }

    /// The earliest open pull deadline (env ms).
    pub fn next_deadline_ms(&self) -> Option<u64> {
        self.consumers
            .values()
            .filter_map(|c| c.pull.and_then(|p| p.deadline_ms))
            .min()
    }

    /// Time passed: pulls past their deadline get "nothing".
    pub fn on_tick(&mut self) {
        if self.state == State::Closing {
            return;
        }
        let now = self.env.now_ms();
        let expired: Vec<ConsumerId> = self
            .consumers
            .iter()
            .filter(|(_, c)| c.pull.and_then(|p| p.deadline_ms).is_some_and(|d| d <= now))
            .map(|(id, _)| id.clone())
            .collect();
        for cid in expired {
            self.end_pull(&cid);
        }
    }

    /// ConsumerControl from a failover client restoring a consumer's prefetch.
    pub(super) fn consumer_control(&mut self, c: ConsumerControl) -> Result<(), Refusal> {
        if let Some(cid) = c.consumer_id {
            if let Some(consumer) = self.consumers.get_mut(&cid) {
                consumer.prefetch = u32::try_from(c.prefetch).unwrap_or(0);
                self.update_window(&cid);
            }
        }
        self.respond_ok(c.header)
    }

    /// Tells the broker the consumer's window if it changed (see the module doc).
    pub(super) fn update_window(&mut self, cid: &ConsumerId) {
        let Some(c) = self.consumers.get_mut(cid) else {
            return;
        };
        let wanted = c.wanted_window();
        if wanted == c.window {
            return;
        }
        c.window = wanted;
        let sub = SubKey {
            conn: self.ctx.conn,
            sub: c.sub,
        };
        let shard = c.destination.shard(self.ctx.shard_count);
        self.post(
            shard,
            Request::SetPrefetch {
                sub,
                prefetch: wanted,
            },
        );
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
        // A pull is answered by this message; the window closes behind it.
        let pulled = c.pull.take().is_some();
        self.write(Command::MessageDispatch(MessageDispatch {
            header: Header::default(),
            consumer_id: Some(id.clone()),
            destination: Some(to_openwire_destination(&d.destination)),
            message: Some(Box::new(message)),
            redelivery_counter: i32::try_from(d.redelivery_count).unwrap_or(i32::MAX),
        }));
        if pulled {
            self.update_window(&id);
        }
    }

    pub(super) fn sub_key(&self, sub: u64) -> SubKey {
        SubKey {
            conn: self.ctx.conn,
            sub,
        }
    }
}
