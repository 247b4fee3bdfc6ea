//! SUBSCRIBE and UNSUBSCRIBE (ack modes, prefetch, selectors, durable topic
//! subscriptions, removing an inactive durable one), the per-subscription state, and
//! deliveries: each `Delivery` from the core becomes a MESSAGE frame; client-acked ones
//! are kept outstanding, auto-acked ones wait for the socket write (`on_written`).

use std::collections::VecDeque;

use super::super::frame::{Command, Frame};
use super::super::version::Version;
use super::receipts::{AfterBarrier, Pending};
use super::{invalid, missing, required, Session, SessionEnv, SessionError};
use crate::broker::policy::{self, ConsumerKind};
use crate::broker::{
    AckMode, Delivery, DestKind, Destination, DurableName, Request, ShardId, SubKey, SubscribeSpec,
};
use crate::metrics::Limit;
use crate::protocol::limits::count_refusal;

/// ActiveMQ's `ActiveMQPrefetchPolicy.DEFAULT_QUEUE_BROWSER_PREFETCH`: a browser's
/// prefetch unless `activemq.prefetchSize` says otherwise.
const QUEUE_BROWSER_PREFETCH: u32 = 500;

/// A delivery the client has yet to acknowledge.
#[derive(Debug)]
pub(super) struct Outstanding {
    /// Connection-wide unique: the 1.2 `ack` header.
    pub(super) ack_no: u64,
    pub(super) message_id: String,
    pub(super) seq: u64,
    pub(super) destination: Destination,
    /// Acknowledged inside this (still open or committing) transaction.
    pub(super) in_tx: Option<String>,
}

#[derive(Debug)]
pub(super) struct Subscription {
    /// The client's `id` (in 1.0 defaults to the destination header).
    pub(super) client_id: String,
    /// Whether the client gave an `id` (1.0 MESSAGE frames echo it only then).
    pub(super) explicit_id: bool,
    pub(super) destination: Destination,
    pub(super) ack: AckMode,
    pub(super) durable: Option<DurableName>,
    /// In delivery order; cumulative acks take a prefix. Bounded by the prefetch.
    pub(super) outstanding: VecDeque<Outstanding>,
    /// A queue browser (`browser:true`): its acks only return credit, NACK is refused,
    /// and after the last message comes the `browser:end` MESSAGE.
    pub(super) browser: bool,
}

impl<E: SessionEnv> Session<E> {
    // ----- SUBSCRIBE / UNSUBSCRIBE -----

    pub(super) fn subscribe(&mut self, frame: &Frame) -> Result<(), SessionError> {
        let dest_name = required(frame, "destination")?;
        let destination = self.destination(dest_name)?;
        let (client_id, explicit_id) = match frame.header("id") {
            Some(id) => (id.to_owned(), true),
            None if self.version == Version::V1_0 => (dest_name.to_owned(), false),
            None => return Err(missing(Command::Subscribe, "id")),
        };
        if self.sub_by_client_id.contains_key(&client_id) {
            return Err(SessionError::DuplicateSubscription(client_id));
        }
        let max = self.ctx.settings.limits.max_subscriptions_per_connection;
        if self.subs.len() >= max {
            self.ctx.registries.limits.refused(Limit::Subscriptions);
            return Err(SessionError::LimitReached(count_refusal(
                "subscriptions",
                "maxSubscriptionsPerConnection",
                max,
            )));
        }
        let browser = frame.header("browser") == Some("true");
        if browser {
            // ActiveMQ's words and rule.
            if self.version == Version::V1_0 {
                return Err(SessionError::Browser(
                    "Queue Browser feature only valid for Stomp v1.1+ clients!",
                ));
            }
            // ActiveMQ would quietly make this a plain topic subscription whose browse
            // never ends; refused instead, so the mistake shows.
            if !destination.kind.is_queue() {
                return Err(SessionError::Browser(
                    "Queue Browser feature only valid for queues",
                ));
            }
        }
        let ack = match frame.header("ack").unwrap_or("auto") {
            "auto" => AckMode::Auto,
            "client" => AckMode::Client,
            "client-individual" => AckMode::ClientIndividual,
            other => return Err(SessionError::InvalidAckMode(other.into())),
        };
        let asked = match frame.header("activemq.prefetchSize") {
            None => None,
            Some(v) => Some(
                v.trim()
                    .parse::<u32>()
                    .map_err(|_| invalid("activemq.prefetchSize", v))?,
            ),
        };
        // ActiveMQ also accepts its historical misspelling.
        let durable_name = frame
            .header("activemq.subscriptionName")
            .or_else(|| frame.header("activemq.subcriptionName"));
        let durable = match durable_name {
            // A subscription name means nothing on a queue; ActiveMQ ignores it there.
            Some(name) if destination.kind == DestKind::Topic => {
                let client = self
                    .client_id
                    .clone()
                    .ok_or_else(|| SessionError::DurableWithoutClientId(name.into()))?;
                Some(DurableName {
                    client_id: client,
                    name: name.to_owned(),
                })
            }
            _ => None,
        };
        // A pattern (`/topic/PRICE.>`): subscribed on every shard (`core::wildcard_subs`).
        let wildcard = destination.is_wildcard();
        if wildcard && (browser || durable.is_some()) {
            let what = if browser {
                "a queue browser"
            } else {
                "a durable subscription"
            };
            return Err(SessionError::Unsupported(format!(
                "{what} on a wildcard destination ({dest_name}) is not supported"
            )));
        }
        let kind = match (browser, destination.kind.is_queue(), &durable) {
            (true, _, _) => ConsumerKind::QueueBrowser,
            (false, true, _) => ConsumerKind::Queue,
            (false, false, Some(_)) => ConsumerKind::DurableTopic,
            (false, false, None) => ConsumerKind::Topic,
        };
        let policies = &self.ctx.settings.policies;
        let prefetch = match (asked, policies.entry_for(&destination)) {
            // A destination policy sets the prefetch of a subscription that names none
            // (or names ActiveMQ's default for its kind), as ActiveMQ's STOMP does.
            (None, Some(entry)) => entry.prefetch(kind, policy::default_prefetch(kind)),
            (Some(n), Some(entry)) => entry.prefetch(kind, n),
            // ActiveMQ's DEFAULT_QUEUE_BROWSER_PREFETCH.
            (None, None) if browser => QUEUE_BROWSER_PREFETCH,
            (None, None) => self.ctx.settings.default_prefetch,
            (Some(n), None) => n,
        }
        // The broker caps what a client may ask (maxPrefetch).
        .clamp(1, self.ctx.settings.limits.max_prefetch.max(1));
        let selector = frame.header("selector").map(str::to_owned);
        // ActiveMQ's STOMP consumer options.
        let exclusive = frame.header("activemq.exclusive") == Some("true");
        let priority = match frame.header("activemq.priority") {
            None => 0,
            Some(v) => v
                .trim()
                .parse::<i8>()
                .map_err(|_| invalid("activemq.priority", v))?,
        };
        let temp_owner = (destination.kind.is_temporary()
            && self.temp_alias_of.contains_key(&destination.name))
        .then_some(self.ctx.conn);
        let num = self.next_sub;
        self.next_sub += 1;
        self.sub_by_client_id.insert(client_id.clone(), num);
        self.subs.insert(
            num,
            Subscription {
                client_id,
                explicit_id,
                destination: destination.clone(),
                ack,
                durable: durable.clone(),
                outstanding: VecDeque::new(),
                browser,
            },
        );
        let shard = self.shard_of(&destination);
        let receipt = frame.header("receipt").map(str::to_owned);
        let sub = self.sub_key(num);
        if browser {
            self.post_with_reply(shard, Pending::Subscribe { receipt, sub: num }, |reply| {
                Request::Browse {
                    sub,
                    destination,
                    selector,
                    prefetch,
                    reply,
                }
            });
            return Ok(());
        }
        let spec = SubscribeSpec {
            destination: destination.clone(),
            ack,
            prefetch,
            durable,
            selector,
            temp_owner,
            exclusive,
            priority,
        };
        if wildcard {
            let shards: Vec<ShardId> = (0..self.ctx.shard_count.max(1)).collect();
            for &shard in &shards {
                let spec = spec.clone();
                let pending = Pending::Subscribe {
                    receipt: None,
                    sub: num,
                };
                self.post_with_reply(shard, pending, |reply| Request::Subscribe {
                    sub,
                    spec,
                    reply,
                });
            }
            // The receipt once every shard has it in place.
            if let Some(receipt) = receipt {
                self.barrier(shards, AfterBarrier::Receipt(receipt));
            }
            return Ok(());
        }
        self.post_with_reply(shard, Pending::Subscribe { receipt, sub: num }, |reply| {
            Request::Subscribe { sub, spec, reply }
        });
        Ok(())
    }

    pub(super) fn unsubscribe(&mut self, frame: &Frame) -> Result<(), SessionError> {
        let id = match frame.header("id") {
            Some(id) => id,
            None if self.version == Version::V1_0 => frame
                .header("destination")
                .ok_or(missing(Command::Unsubscribe, "id"))?,
            None => return Err(missing(Command::Unsubscribe, "id")),
        };
        let named = frame
            .header("activemq.subscriptionName")
            .or_else(|| frame.header("activemq.subcriptionName"));
        let Some(num) = self.sub_by_client_id.remove(id) else {
            // ActiveMQ removes a durable subscription by client id and name even when
            // this connection has no consumer on it.
            if let (Some(name), Some(client_id)) = (named, self.client_id.clone()) {
                return self.remove_inactive_durable(frame, name, client_id);
            }
            return Err(SessionError::UnknownSubscription(id.into()));
        };
        let Some(sub) = self.subs.remove(&num) else {
            return Err(SessionError::UnknownSubscription(id.into()));
        };
        // The core returns this subscription's unacknowledged deliveries itself.
        for o in &sub.outstanding {
            self.ack_owner.remove(&o.ack_no);
        }
        // ActiveMQ: naming the subscription on UNSUBSCRIBE removes the durable
        // subscription; a plain UNSUBSCRIBE or a disconnect keeps it.
        let remove_durable = if named.is_some() { sub.durable } else { None };
        let shard = self.shard_of(&sub.destination);
        let receipt = frame.header("receipt").map(str::to_owned);
        let key = self.sub_key(num);
        let destination = sub.destination;
        if destination.is_wildcard() {
            // Subscribed on every shard: removed from every shard.
            let shards = self.unsubscribe_everywhere(num, destination);
            if let Some(receipt) = receipt {
                self.barrier(shards, AfterBarrier::Receipt(receipt));
            }
            return Ok(());
        }
        self.post_with_reply(shard, Pending::Simple { receipt }, |reply| {
            Request::Unsubscribe {
                sub: key,
                destination,
                remove_durable,
                undelivered: Vec::new(),
                reply,
            }
        });
        Ok(())
    }

    /// Removes wildcard subscription `num` (on `pattern`) from every shard; returns the
    /// shards.
    pub(super) fn unsubscribe_everywhere(
        &mut self,
        num: u64,
        pattern: Destination,
    ) -> Vec<ShardId> {
        let shards: Vec<ShardId> = (0..self.ctx.shard_count.max(1)).collect();
        let key = self.sub_key(num);
        for &shard in &shards {
            let destination = pattern.clone();
            self.post_with_reply(shard, Pending::Simple { receipt: None }, |reply| {
                Request::Unsubscribe {
                    sub: key,
                    destination,
                    remove_durable: None,
                    undelivered: Vec::new(),
                    reply,
                }
            });
        }
        shards
    }

    /// Removes durable subscription `name` of this connection's client id: on the
    /// topic's shard if the frame names the topic, else on every shard (each removes it
    /// if it holds it). The receipt follows a barrier on those shards.
    pub(super) fn remove_inactive_durable(
        &mut self,
        frame: &Frame,
        name: &str,
        client_id: String,
    ) -> Result<(), SessionError> {
        let topic = match frame.header("destination") {
            Some(d) => Some(self.destination(d)?),
            None => None,
        };
        let shards: Vec<ShardId> = match &topic {
            Some(t) => vec![self.shard_of(t)],
            None => (0..self.ctx.shard_count).collect(),
        };
        let durable = DurableName {
            client_id,
            name: name.to_owned(),
        };
        // A consumer number never used by this connection: nothing is attached to it.
        let key = self.sub_key(self.next_sub);
        self.next_sub += 1;
        for &shard in &shards {
            let destination = topic.clone().unwrap_or_else(|| Destination::topic(""));
            let remove_durable = Some(durable.clone());
            self.post_with_reply(shard, Pending::Simple { receipt: None }, |reply| {
                Request::Unsubscribe {
                    sub: key,
                    destination,
                    remove_durable,
                    undelivered: Vec::new(),
                    reply,
                }
            });
        }
        if let Some(receipt) = frame.header("receipt") {
            self.barrier(shards, AfterBarrier::Receipt(receipt.to_owned()));
        }
        Ok(())
    }

    // ----- deliveries -----

    /// The browse of subscription `sub` ended: ActiveMQ's end marker, a MESSAGE with
    /// `browser:end`, `message-id:0` and an empty body (StompQueueBrowserSubscription).
    pub(super) fn browse_ended(&mut self, sub: SubKey) {
        let Some(s) = self.subs.get(&sub.sub) else {
            return;
        };
        let mut f = Frame::new(Command::Message);
        f.push_header("subscription", s.client_id.clone());
        f.push_header("browser", "end");
        f.push_header("destination", self.display_destination(&s.destination));
        f.push_header("message-id", "0");
        self.write(f);
    }

    pub(super) fn deliver(&mut self, d: Delivery) {
        let shown = self.display_destination(&d.destination);
        let version = self.version;
        let Some(sub) = self.subs.get_mut(&d.sub.sub) else {
            // Unsubscribed while this was in flight: the core counts it unacknowledged
            // for the removed consumer and has already taken it back.
            tracing::debug!(
                sub = d.sub.sub,
                "delivery for a removed subscription dropped"
            );
            return;
        };
        let msg = &d.msg;
        let mut f = Frame::new(Command::Message);
        f.push_header("destination", shown);
        f.push_header("message-id", msg.id.clone());
        if version > Version::V1_0 || sub.explicit_id {
            f.push_header("subscription", sub.client_id.clone());
        }
        let mut ack_no = None;
        if sub.ack != AckMode::Auto {
            let n = self.next_ack;
            self.next_ack += 1;
            ack_no = Some(n);
            if version >= Version::V1_2 {
                f.push_header("ack", n.to_string());
            }
        }
        if msg.persistent {
            f.push_header("persistent", "true");
        }
        f.push_header("priority", msg.priority.to_string());
        f.push_header("timestamp", msg.timestamp_ms.to_string());
        f.push_header("expires", msg.expires_ms.to_string());
        if let Some(r) = &msg.reply_to {
            f.push_header("reply-to", r.clone());
        }
        if d.redelivered {
            f.push_header("redelivered", "true");
        }
        for (k, v) in &msg.headers {
            f.push_header(k.clone(), v.clone());
        }
        // Typed properties of a JMS producer, as text (ActiveMQ does the same).
        for (k, v) in &msg.properties {
            if let Some(text) = v.to_java_string() {
                f.push_header(k.clone(), text);
            }
        }
        // `content-length` is the encoder's job: always, except for a text message
        // (ActiveMQ's rule; what a JMS consumer would get as a TextMessage).
        f.body = msg.body.clone();
        f.without_content_length =
            msg.body_type.kind == crate::broker::BodyKind::Text && !msg.body_type.compressed;
        match ack_no {
            Some(n) => {
                sub.outstanding.push_back(Outstanding {
                    ack_no: n,
                    message_id: msg.id.clone(),
                    seq: d.seq,
                    destination: d.destination,
                    in_tx: None,
                });
                self.ack_owner.insert(n, d.sub.sub);
                self.write(f);
            }
            None => {
                self.write(f);
                // Numbered after the write: on_written(upto) covers frames below upto.
                self.auto_unwritten.push_back((
                    self.frames_emitted - 1,
                    d.sub.sub,
                    d.destination,
                    d.seq,
                ));
            }
        }
    }
}
