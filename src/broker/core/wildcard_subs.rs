//! Wildcard subscriptions (`/topic/PRICE.>`, `queue:ORDERS.*`): a consumer whose
//! destination is an ActiveMQ pattern (`broker::wildcard`) receives from every queue or
//! topic the pattern matches.
//!
//! Destinations live on the shard their name hashes to, so a sessions sends a wildcard
//! subscription to EVERY shard, and each shard attaches it to its own matching
//! destinations: those that exist when it subscribes and those created later (found
//! through a [`WildcardIndex`] by the new name's segments, not by trying every
//! pattern). On each matching destination the subscription has a *part*: a consumer on
//! a queue's backlog (competing with the queue's other consumers), or a subscriber
//! backlog on a topic (non-durable: nothing journaled). Deliveries carry the real
//! destination, so acknowledgements, NACKs and `Written` reach that destination's
//! shard and name it, which finds the part.
//!
//! Credit: the parts on one shard share one [`SharedCredit`]: at most `prefetch`
//! deliveries (and `maxPendingOutput` bytes unwritten) in flight per shard, so a
//! subscription's total is bounded by shards x prefetch. A prefetch-0 (pull) consumer
//! raises its prefetch on every shard for its pull, and may get one message per shard.
//!
//! Durable subscriptions on a pattern are refused (`BrokerError::WildcardDurable`).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::{BacklogId, ShardCore};
use crate::broker::backlog::{Backlog, Consumer, SharedCredit};
use crate::broker::destination::{DestKind, Destination};
use crate::broker::ops::{BrokerError, Reply, SubKey, SubscribeSpec};
use crate::broker::wildcard::{Pattern, WildcardIndex};

/// One wildcard subscription on this shard.
struct WildSub {
    pattern: Pattern,
    /// Matches queues (else topics).
    queues: bool,
    /// What each part's consumer starts as (sharing `credit`).
    template: Consumer,
    credit: Arc<SharedCredit>,
    /// The destinations on this shard it has a part on.
    parts: BTreeSet<Destination>,
}

impl WildSub {
    fn part_id(&self, sub: SubKey, d: &Destination) -> BacklogId {
        if self.queues {
            BacklogId::Queue(d.clone())
        } else {
            BacklogId::TopicSub(d.clone(), sub)
        }
    }
}

/// The wildcard subscriptions of one shard. Bounded by the connections and each
/// connection's `maxSubscriptionsPerConnection` (the sessions count a wildcard
/// subscription like any other).
#[derive(Default)]
pub(super) struct WildSubs {
    subs: HashMap<SubKey, WildSub>,
    queues: WildcardIndex<SubKey>,
    topics: WildcardIndex<SubKey>,
    /// Some subscription's credit came back since the last drain (see
    /// [`SharedCredit::new`]): only then are the subscriptions looked at.
    any_freed: Arc<AtomicBool>,
}

impl WildSubs {
    pub(super) fn len(&self) -> usize {
        self.subs.len()
    }

    pub(super) fn subs_keys(&self) -> impl Iterator<Item = &SubKey> {
        self.subs.keys()
    }

    /// The wildcard subscriptions with a part on `d`.
    pub(super) fn on(&self, d: &Destination) -> Vec<SubKey> {
        self.subs
            .iter()
            .filter(|(_, w)| w.parts.contains(d))
            .map(|(k, _)| *k)
            .collect()
    }
}

impl ShardCore {
    /// Subscribes `sub` to the pattern `spec.destination` on this shard; `consumer` is
    /// the consumer each part starts as.
    pub(super) fn subscribe_wildcard(
        &mut self,
        sub: SubKey,
        spec: &SubscribeSpec,
        mut consumer: Consumer,
        reply: Reply,
    ) {
        let d = &spec.destination;
        if spec.durable.is_some() {
            let e = BrokerError::WildcardDurable(d.stomp_name());
            self.reply(reply, None, Err(e));
            return;
        }
        if self.wild.subs.contains_key(&sub) {
            self.reply(reply, None, Ok(()));
            return;
        }
        let credit = Arc::new(SharedCredit::new(self.wild.any_freed.clone()));
        consumer.shared = Some(credit.clone());
        let pattern = Pattern::parse(&d.name);
        let queues = d.kind.is_queue();
        let matching: Vec<Destination> = if queues {
            self.wild.queues.insert(&pattern, sub);
            self.queues
                .keys()
                .filter(|q| q.kind == DestKind::Queue && pattern.matches(&q.name))
                .cloned()
                .collect()
        } else {
            self.wild.topics.insert(&pattern, sub);
            self.topics
                .keys()
                .filter(|t| t.kind == DestKind::Topic && pattern.matches(&t.name))
                .cloned()
                .collect()
        };
        self.wild.subs.insert(
            sub,
            WildSub {
                pattern,
                queues,
                template: consumer,
                credit,
                parts: BTreeSet::new(),
            },
        );
        for m in matching {
            self.attach_part(sub, m);
        }
        self.reply(reply, None, Ok(()));
    }

    /// Gives wildcard subscription `sub` a part on destination `d` (which exists).
    fn attach_part(&mut self, sub: SubKey, d: Destination) {
        let Some(w) = self.wild.subs.get_mut(&sub) else {
            return;
        };
        if !w.parts.insert(d.clone()) {
            return;
        }
        let mut consumer = w.template.clone();
        consumer.in_flight = 0;
        consumer.unwritten_bytes = 0;
        let id = w.part_id(sub, &d);
        match &id {
            BacklogId::Queue(q) => {
                if let Some(q) = self.queues.get_mut(q) {
                    q.backlog.add_consumer(consumer);
                }
            }
            BacklogId::TopicSub(t, _) => {
                if let Some(t) = self.topics.get_mut(t) {
                    let mut b = Backlog::default();
                    b.add_consumer(consumer);
                    t.subscribers.insert(sub, b);
                }
            }
            BacklogId::Durable(..) => {}
        }
        self.mark_dirty(id);
    }

    /// Destination `d` was just created on this shard: the wildcard subscriptions that
    /// match it attach to it.
    pub(super) fn wildcards_on_created(&mut self, d: &Destination) {
        if self.wild.subs.is_empty() {
            return;
        }
        let index = match d.kind {
            DestKind::Queue => &self.wild.queues,
            DestKind::Topic => &self.wild.topics,
            _ => return,
        };
        let subs: Vec<SubKey> = index.matching(&d.name).into_iter().copied().collect();
        for sub in subs {
            self.attach_part(sub, d.clone());
        }
    }

    /// Forgets the parts of every wildcard subscription on `d` (it is being removed).
    pub(super) fn wildcards_on_removed(&mut self, d: &Destination) {
        for w in self.wild.subs.values_mut() {
            w.parts.remove(d);
        }
    }

    /// The backlog `sub`'s delivery from `d` lives in: its own if it is a plain
    /// subscription, else its wildcard part on `d`.
    pub(super) fn backlog_of(&self, sub: SubKey, d: &Destination) -> Option<BacklogId> {
        if let Some(id) = self.attached.get(&sub) {
            return Some(id.clone());
        }
        let w = self.wild.subs.get(&sub)?;
        w.parts.contains(d).then(|| w.part_id(sub, d))
    }

    /// Removes wildcard subscription `sub` from this shard: every part detaches (its
    /// deliveries go back flagged). False if `sub` is not one.
    pub(super) fn detach_wildcard(&mut self, sub: SubKey) -> bool {
        let Some(w) = self.wild.subs.remove(&sub) else {
            return false;
        };
        if w.queues {
            self.wild.queues.remove(&w.pattern, &sub);
        } else {
            self.wild.topics.remove(&w.pattern, &sub);
        }
        for d in &w.parts {
            self.detach_backlog(sub, w.part_id(sub, d), &[]);
        }
        true
    }

    /// Detaches only the part of wildcard subscription `sub` on `d` (see
    /// `Request::Unsubscribe`). False if there is no such part.
    pub(super) fn detach_wild_part(
        &mut self,
        sub: SubKey,
        d: &Destination,
        undelivered: &[u64],
    ) -> bool {
        let Some(w) = self.wild.subs.get_mut(&sub) else {
            return false;
        };
        if !w.parts.remove(d) {
            return false;
        }
        let id = w.part_id(sub, d);
        self.detach_backlog(sub, id, undelivered);
        true
    }

    /// Sets a wildcard subscription's prefetch on every part. False if `sub` is not one.
    pub(super) fn wild_set_prefetch(&mut self, sub: SubKey, prefetch: u32) -> bool {
        let Some(w) = self.wild.subs.get_mut(&sub) else {
            return false;
        };
        w.template.prefetch = prefetch;
        let ids: Vec<BacklogId> = w.parts.iter().map(|d| w.part_id(sub, d)).collect();
        for id in ids {
            if let Some(c) = self
                .backlog_mut(&id)
                .and_then(|b| b.consumers.iter_mut().find(|c| c.key == sub))
            {
                c.prefetch = prefetch;
            }
            self.mark_dirty(id);
        }
        true
    }

    /// `bytes` delivered to wildcard subscription `sub` reached its socket. False if
    /// `sub` is not one.
    pub(super) fn wild_written(&mut self, sub: SubKey, bytes: u64) -> bool {
        let Some(w) = self.wild.subs.get(&sub) else {
            return false;
        };
        w.credit
            .written(bytes, w.template.prefetch, w.template.max_unwritten);
        true
    }

    /// Wildcard subscriptions whose shared credit came back since the last drain: their
    /// parts with ready messages may dispatch again. One pass over this shard's wildcard
    /// subscriptions, only when one freed credit.
    pub(super) fn wildcard_credit_freed(&mut self) {
        if !self.wild.any_freed.swap(false, Ordering::Relaxed) {
            return;
        }
        let mut ids = Vec::new();
        for (sub, w) in &self.wild.subs {
            if !w.credit.take_freed() {
                continue;
            }
            for d in &w.parts {
                ids.push(w.part_id(*sub, d));
            }
        }
        for id in ids {
            if self.backlog_ref(&id).is_some_and(|b| !b.ready.is_empty()) {
                self.mark_dirty(id);
            }
        }
    }

    /// Wildcard subscriptions on this shard (for status).
    pub fn wildcard_subscriptions(&self) -> usize {
        self.wild.len()
    }
}
