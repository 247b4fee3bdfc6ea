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
//! A consumer on a composite destination (`A,B`) is one broker subscription per
//! member; acks go to the member the message came from. A member that is a pattern
//! (`PRICE.>`, see `broker::core::wildcard_subs`) is subscribed on every shard: its
//! subscribe, prefetch, pull barriers and removal go to every shard, its acks to the
//! shard of the destination each message came from.
//!
//! A queue browser (ConsumerInfo `browser`, `session.createBrowser`) is one
//! `Request::Browse` per member queue instead: its deliveries are dispatched and
//! acknowledged like a consumer's (the acks only return credit), and when every member's
//! browse has ended it gets ActiveMQ's end marker, a MessageDispatch with no message.
//!
//! The advisory consumer (`ActiveMQ.Advisory.TempQueue,ActiveMQ.Advisory.TempTopic`,
//! session -1, sent by every JMS connection; it must get a Response or the client
//! cannot create a session) is such a consumer on the two advisory topics. Sessions
//! publish an advisory there when a JMS client creates or deletes a temporary
//! destination (`produce.rs`), and a new advisory consumer first gets one for each live
//! temporary destination (from the broker-wide registry, after its subscriptions are in
//! place so none falls between): a JMS client sends to another connection's temporary
//! destination (a JMSReplyTo) only if it heard of it this way.

use std::collections::{BTreeMap, VecDeque};

use super::super::{
    Command, ConsumerControl, ConsumerId, ConsumerInfo, DestinationKind, Header, MessageDispatch,
    MessagePull, RemoveInfo, RemoveSubscriptionInfo,
};
use super::convert::{
    advisory_message, advisory_topic, to_openwire_destination, to_openwire_message,
};
use super::{Action, Refusal, Session, State, Then, JAVA_INVALID_SELECTOR, JAVA_JMS};
use crate::broker::policy::ConsumerKind;
use crate::broker::selector::Selector;
use crate::broker::{
    AckMode, Delivery, DestKind, Destination, Request, ShardId, SubKey, SubscribeSpec,
};
use crate::metrics::Limit;
use crate::protocol::SessionEnv;

/// Topics whose consumers are ActiveMQ advisory consumers.
pub(super) const ADVISORY_PREFIX: &str = "ActiveMQ.Advisory.";

/// A message dispatched to a consumer and not yet acknowledged.
#[derive(Debug, Clone)]
pub(super) struct Dispatched {
    /// The destination's sequence number: the MessageId's brokerSequenceId.
    pub(super) seq: u64,
    /// Where it came from: a member, or a destination a wildcard member matched.
    pub(super) destination: Destination,
    /// The subscription (`SubKey::sub`) it was delivered to: which member.
    pub(super) sub: u64,
    /// A DELIVERED ack covered it: handed to the application, not acknowledged.
    pub(super) delivered: bool,
    /// Acknowledged inside this (still open) transaction.
    pub(super) in_tx: Option<super::super::TransactionId>,
    /// An advisory this session made up for a new advisory consumer (`subscribed`):
    /// the broker never saw it, so its acknowledgement stays here.
    pub(super) replayed: bool,
}

/// Sequence numbers of replayed advisories: far above any topic's own.
const REPLAYED_SEQ_BASE: u64 = 1 << 62;

#[derive(Debug)]
pub(super) struct Consumer {
    /// The broker subscriptions (`SubKey::sub`), one per destination (several for a
    /// composite one).
    pub(super) subs: Vec<(u64, Destination)>,
    /// On the advisory topics: live temporary destinations are replayed to it.
    pub(super) advisory: bool,
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
    /// A topic consumer that does not want this connection's own messages (JMS
    /// `noLocal`): those are acknowledged here instead of dispatched.
    pub(super) no_local: bool,
    /// A queue browser: the members whose browse has not ended yet. The end marker
    /// (a MessageDispatch without a message) goes out when the last one ends.
    pub(super) browsing: Option<usize>,
}

/// An open MessagePull.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pull {
    /// When to answer "nothing" (env ms); `None`: wait for a message.
    pub(super) deadline_ms: Option<u64>,
}

/// The shards member `d` is subscribed on: every shard for a pattern, else its own.
fn member_shards(d: &Destination, shard_count: usize) -> Vec<ShardId> {
    if d.is_wildcard() {
        (0..shard_count.max(1)).collect()
    } else {
        vec![d.shard(shard_count)]
    }
}

impl Consumer {
    /// The subscription number of member `d`.
    pub(super) fn sub_of(&self, d: &Destination) -> Option<u64> {
        self.subs.iter().find(|(_, m)| m == d).map(|(n, _)| *n)
    }

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
        if self.consumers.contains_key(&id) {
            // A replay (failover) of a consumer this socket already has.
            return self.respond_ok(header);
        }
        let limits = &self.ctx.settings.limits;
        let members = self.members_of(ow_dest)?;
        // Each member is a subscription (a composite consumer has several).
        if self.consumer_of.len() + members.len() > limits.max_subscriptions_per_connection {
            let max = limits.max_subscriptions_per_connection;
            return Err(self.over_connection_limit(Limit::Subscriptions, max, "subscriptions"));
        }
        if let Some(w) = members.iter().find(|m| m.is_wildcard()) {
            let what = if info.browser {
                Some("a queue browser")
            } else if info.subscription_name.is_some() {
                Some("a durable subscription")
            } else {
                None
            };
            if let Some(what) = what {
                return Err(Refusal::new(
                    JAVA_JMS,
                    format!(
                        "{what} on a wildcard destination ({}) is not supported",
                        w.name
                    ),
                ));
            }
        }
        if info.browser {
            return self.browser_info(id, info.selector, info.prefetch_size, members, header);
        }
        let advisory = ow_dest.kind == DestinationKind::Topic
            && members
                .iter()
                .all(|m| m.kind == DestKind::Topic && m.name.starts_with(ADVISORY_PREFIX));
        let selector = info.selector.filter(|s| !s.trim().is_empty());
        if let Some(text) = &selector {
            if let Err(e) = Selector::parse(text) {
                return Err(Refusal::new(JAVA_INVALID_SELECTOR, format!("{e}: {text}")));
            }
        }
        let durable = match (&info.subscription_name, members.as_slice()) {
            (Some(name), [one]) if one.kind == DestKind::Topic => {
                Some(self.durable_name(info.client_id.as_deref(), name))
            }
            (Some(_), [_, _, ..]) => {
                return Err(Refusal::new(
                    JAVA_JMS,
                    "a durable subscription on a composite destination is not supported",
                ))
            }
            _ => None,
        };
        // A consumer that kept its client's default prefetch gets its destination's
        // policy prefetch (`broker::policy`; a composite consumer: its first member's).
        // The broker caps what a client may ask (maxPrefetch).
        let asked = u32::try_from(info.prefetch_size).unwrap_or(0);
        let prefetch = match members.first() {
            Some(m) if !advisory => {
                let kind = match (&durable, m.kind.is_queue()) {
                    (_, true) => ConsumerKind::Queue,
                    (Some(_), false) => ConsumerKind::DurableTopic,
                    (None, false) => ConsumerKind::Topic,
                };
                self.ctx.settings.policies.prefetch(m, kind, asked)
            }
            _ => asked,
        }
        .min(self.ctx.settings.limits.max_prefetch);
        let mut subs = Vec::with_capacity(members.len());
        for m in &members {
            subs.push((self.next_sub, m.clone()));
            self.consumer_of.insert(self.next_sub, id.clone());
            self.next_sub += 1;
        }
        self.consumers.insert(
            id.clone(),
            Consumer {
                subs: subs.clone(),
                advisory,
                outstanding: VecDeque::new(),
                prefetch,
                window: prefetch,
                pull: None,
                pulls: 0,
                no_local: info.no_local && members.iter().all(|m| !m.kind.is_queue()),
                browsing: None,
            },
        );
        let correlation = header.response_required.then_some(header.command_id);
        let conn = self.ctx.conn;
        self.group(
            Then::Subscribe {
                correlation,
                consumer: id,
            },
            |s, g| {
                for (num, destination) in subs {
                    let temp_owner = (destination.kind.is_temporary()
                        && s.temp_destinations.contains(&destination))
                    .then_some(conn);
                    let spec = SubscribeSpec {
                        destination: destination.clone(),
                        ack: AckMode::ClientIndividual,
                        prefetch,
                        durable: durable.clone(),
                        selector: selector.clone(),
                        temp_owner,
                        exclusive: info.exclusive,
                        priority: info.priority,
                    };
                    let sub = s.sub_key(num);
                    for shard in member_shards(&destination, s.ctx.shard_count) {
                        let spec = spec.clone();
                        s.post_in(g, shard, |reply| Request::Subscribe { sub, spec, reply });
                    }
                }
            },
        );
        Ok(())
    }

    /// ConsumerInfo with `browser`: a `QueueBrowser` (`session.createBrowser`). Each
    /// member queue is browsed (`Request::Browse`); the deliveries are dispatched and
    /// acknowledged like any consumer's (the acks remove nothing), and once every member
    /// has ended the browser gets ActiveMQ's end marker, a MessageDispatch with no
    /// message (`ActiveMQQueueBrowser` then reports no more elements).
    fn browser_info(
        &mut self,
        id: ConsumerId,
        selector: Option<String>,
        prefetch_size: i32,
        members: Vec<Destination>,
        header: Header,
    ) -> Result<(), Refusal> {
        // `createBrowser` only takes a Queue; a topic in ConsumerInfo comes from a
        // hand-made client. ActiveMQ would make it a plain topic subscription that never
        // ends its "browse": refused here instead, so the mistake shows.
        if let Some(t) = members.iter().find(|m| !m.kind.is_queue()) {
            return Err(Refusal::new(
                JAVA_JMS,
                format!("a queue browser needs a queue, not topic {}", t.name),
            ));
        }
        let selector = selector.filter(|s| !s.trim().is_empty());
        if let Some(text) = &selector {
            if let Err(e) = Selector::parse(text) {
                return Err(Refusal::new(JAVA_INVALID_SELECTOR, format!("{e}: {text}")));
            }
        }
        // A browser with prefetch 0 (`queueBrowserPrefetch=0`) still gets its messages
        // pushed, one at a time: `ActiveMQQueueBrowser` waits for dispatches (its pulls
        // only nudge), and ActiveMQ would end such a browse at the first pull that finds
        // nothing dispatched yet.
        let asked = u32::try_from(prefetch_size).unwrap_or(0);
        let prefetch = match members.first() {
            Some(m) => self
                .ctx
                .settings
                .policies
                .prefetch(m, ConsumerKind::QueueBrowser, asked),
            None => asked,
        }
        .clamp(1, self.ctx.settings.limits.max_prefetch.max(1));
        let mut subs = Vec::with_capacity(members.len());
        for m in &members {
            subs.push((self.next_sub, m.clone()));
            self.consumer_of.insert(self.next_sub, id.clone());
            self.next_sub += 1;
        }
        self.consumers.insert(
            id.clone(),
            Consumer {
                subs: subs.clone(),
                advisory: false,
                outstanding: VecDeque::new(),
                prefetch,
                window: prefetch,
                pull: None,
                pulls: 0,
                no_local: false,
                browsing: Some(subs.len()),
            },
        );
        let correlation = header.response_required.then_some(header.command_id);
        self.group(
            Then::Subscribe {
                correlation,
                consumer: id,
            },
            |s, g| {
                for (num, destination) in subs {
                    let shard = s.shard_of(&destination);
                    let sub = s.sub_key(num);
                    let selector = selector.clone();
                    s.post_in(g, shard, |reply| Request::Browse {
                        sub,
                        destination,
                        selector,
                        prefetch,
                        reply,
                    });
                }
            },
        );
        Ok(())
    }

    /// A member queue's browse ended (see [`Session::browser_info`]).
    pub(super) fn browse_ended(&mut self, sub: SubKey) {
        let Some(id) = self.consumer_of.get(&sub.sub).cloned() else {
            return;
        };
        let Some(c) = self.consumers.get_mut(&id) else {
            return;
        };
        let Some(open) = c.browsing.as_mut() else {
            return;
        };
        *open = open.saturating_sub(1);
        if *open == 0 {
            self.write(Command::MessageDispatch(MessageDispatch {
                header: Header::default(),
                consumer_id: Some(id),
                destination: None,
                message: None,
                redelivery_counter: 0,
            }));
        }
    }

    /// The subscriptions are in place: an advisory consumer learns the live temporary
    /// destinations (advisories published from now on reach it by itself).
    pub(super) fn subscribed(&mut self, cid: &ConsumerId) {
        let Some(c) = self.consumers.get(cid) else {
            return;
        };
        if !c.advisory {
            return;
        }
        let live = self.ctx.registries.temp_destinations.snapshot();
        for (destination, connection_id) in live {
            let topic = advisory_topic(&destination);
            let Some(c) = self.consumers.get_mut(cid) else {
                return;
            };
            let Some(sub) = c.sub_of(&topic) else {
                continue;
            };
            // Acknowledged like the others, but never by the broker: these are
            // this session's own copies (`Dispatched::replayed`).
            self.next_replayed += 1;
            let seq = REPLAYED_SEQ_BASE + self.next_replayed;
            c.outstanding.push_back(Dispatched {
                seq,
                destination: topic.clone(),
                sub,
                delivered: false,
                in_tx: None,
                replayed: true,
            });
            let msg = advisory_message(
                self.env.next_message_id(),
                &destination,
                &connection_id,
                true,
                &self.ctx.settings.broker_name,
            );
            let message = to_openwire_message(&msg, &topic, seq, 0);
            self.write(Command::MessageDispatch(MessageDispatch {
                header: Header::default(),
                consumer_id: Some(cid.clone()),
                destination: Some(to_openwire_destination(&topic)),
                message: Some(Box::new(message)),
                redelivery_counter: 0,
            }));
        }
    }

    /// Removes a consumer: the broker takes its unacknowledged messages back, flagged
    /// redelivered up to `last_delivered` (RemoveInfo's lastDeliveredSequenceId: the
    /// last one handed to the application; -1 none, -2 unknown, i.e. all). Responds to
    /// `correlation` once done.
    pub(super) fn remove_consumer(
        &mut self,
        id: &ConsumerId,
        correlation: Option<i32>,
        last_delivered: i64,
    ) {
        let Some(c) = self.consumers.remove(id) else {
            self.respond(correlation, Ok(()), false);
            return;
        };
        self.unsubscribe_all(c, correlation, last_delivered);
    }

    fn unsubscribe_all(&mut self, c: Consumer, correlation: Option<i32>, last_delivered: i64) {
        for (num, _) in &c.subs {
            self.consumer_of.remove(num);
        }
        let handed = |seq: u64| match last_delivered {
            RemoveInfo::NOTHING_DELIVERED => false,
            last if last >= 0 => i64::try_from(seq).is_ok_and(|s| s <= last),
            _ => true,
        };
        // Per member, and per destination the message came from (a pattern member's
        // come from many): the deliveries never handed to the application.
        let mut undelivered: BTreeMap<(u64, Destination), Vec<u64>> = BTreeMap::new();
        for o in &c.outstanding {
            if !o.replayed && !handed(o.seq) {
                undelivered
                    .entry((o.sub, o.destination.clone()))
                    .or_default()
                    .push(o.seq);
            }
        }
        let subs: Vec<(u64, Destination)> = c.subs.clone();
        self.group(
            Then::Respond {
                correlation,
                report: false,
            },
            |s, g| {
                for (num, destination) in subs {
                    let sub = s.sub_key(num);
                    if destination.is_wildcard() {
                        // First the parts with undelivered messages (see
                        // `Request::Unsubscribe`), then the pattern everywhere.
                        let parts: Vec<(Destination, Vec<u64>)> = undelivered
                            .range((num, Destination::queue(""))..)
                            .take_while(|((n, _), _)| *n == num)
                            .map(|((_, d), seqs)| (d.clone(), seqs.clone()))
                            .collect();
                        for (part, seqs) in parts {
                            let shard = s.shard_of(&part);
                            s.post_in(g, shard, |reply| Request::Unsubscribe {
                                sub,
                                destination: part,
                                remove_durable: None,
                                undelivered: seqs,
                                reply,
                            });
                        }
                    }
                    let seqs = if destination.is_wildcard() {
                        Vec::new()
                    } else {
                        undelivered
                            .remove(&(num, destination.clone()))
                            .unwrap_or_default()
                    };
                    for shard in member_shards(&destination, s.ctx.shard_count) {
                        let destination = destination.clone();
                        let undelivered = seqs.clone();
                        s.post_in(g, shard, |reply| Request::Unsubscribe {
                            sub,
                            destination,
                            remove_durable: None,
                            undelivered,
                            reply,
                        });
                    }
                }
            },
        );
    }

    /// Forgets a consumer whose subscription the broker refused (a composite one may
    /// have been taken by some members: those are removed again).
    pub(super) fn drop_consumer(&mut self, id: &ConsumerId) {
        if let Some(c) = self.consumers.remove(id) {
            self.unsubscribe_all(c, None, RemoveInfo::NOTHING_DELIVERED);
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
                        undelivered: Vec::new(),
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
        let mut shards: Vec<ShardId> = c
            .subs
            .iter()
            .flat_map(|(_, d)| member_shards(d, self.ctx.shard_count))
            .collect();
        shards.sort_unstable();
        shards.dedup();
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
            self.group(
                Then::PullCheck {
                    consumer: cid,
                    serial,
                },
                |s, g| {
                    for shard in shards {
                        s.post_in(g, shard, |reply| Request::Barrier { reply });
                    }
                },
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
                consumer.prefetch = u32::try_from(c.prefetch)
                    .unwrap_or(0)
                    .min(self.ctx.settings.limits.max_prefetch);
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
        let subs: Vec<(u64, ShardId)> = c
            .subs
            .iter()
            .flat_map(|(n, d)| {
                member_shards(d, self.ctx.shard_count)
                    .into_iter()
                    .map(move |shard| (*n, shard))
            })
            .collect();
        for (num, shard) in subs {
            let sub = self.sub_key(num);
            self.post(
                shard,
                Request::SetPrefetch {
                    sub,
                    prefetch: wanted,
                },
            );
        }
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
        if c.no_local
            && self
                .connection
                .as_ref()
                .is_some_and(|conn| sent_by(&d, &conn.id))
        {
            let shard = d.destination.shard(self.ctx.shard_count);
            self.post(
                shard,
                Request::Ack {
                    sub: d.sub,
                    destination: d.destination,
                    seqs: vec![d.seq],
                    reply: None,
                },
            );
            return;
        }
        let message = to_openwire_message(&d.msg, &d.destination, d.seq, d.redelivery_count);
        c.outstanding.push_back(Dispatched {
            seq: d.seq,
            destination: d.destination.clone(),
            sub: d.sub.sub,
            delivered: false,
            in_tx: None,
            replayed: false,
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

/// Whether the delivered message came from a producer of client connection `id` (its
/// JMSMessageID starts with the producer id, which starts with the connection id).
fn sent_by(d: &Delivery, id: &super::super::ConnectionId) -> bool {
    super::convert::message_id(&d.msg.id, d.seq)
        .producer_id
        .is_some_and(|p| p.connection_id == id.value)
}
