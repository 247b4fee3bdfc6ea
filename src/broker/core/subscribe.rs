//! Consumers coming and going: SUBSCRIBE attaches a consumer to a queue's backlog, a
//! topic subscriber's own backlog, or a durable subscription (journaling the `Durable`
//! record the first time); UNSUBSCRIBE and a closed connection detach it, returning its
//! unacknowledged deliveries (flagged redelivered, dead-lettered past the maximum), and
//! a closed connection also takes its temporary destinations with it.

use std::sync::Arc;

use super::{BacklogId, JournalSink, ShardCore};
use crate::broker::backlog::{Backlog, Consumer};
use crate::broker::destination::Destination;
use crate::broker::ops::{BrokerError, ConnId, DurableName, Reply, SubKey, SubscribeSpec};
use crate::broker::record::Record;
use crate::broker::selector::Selector;

impl ShardCore {
    pub(super) fn on_subscribe(
        &mut self,
        sub: SubKey,
        spec: SubscribeSpec,
        reply: Reply,
        sink: &mut dyn JournalSink,
    ) {
        let d = spec.destination.clone();
        let selector = match spec.selector.as_deref().map(Selector::parse) {
            None => None,
            Some(Ok(s)) if s.selects_all() => None,
            Some(Ok(s)) => Some(Arc::new(s)),
            Some(Err(e)) => {
                self.reply(
                    reply,
                    None,
                    Err(BrokerError::InvalidSelector(e.to_string())),
                );
                return;
            }
        };
        let consumer = Consumer {
            key: sub,
            prefetch: spec.prefetch,
            in_flight: 0,
            unwritten_bytes: 0,
            max_unwritten: self.settings.limits.max_pending_output_bytes.max(1),
            ack: spec.ack,
            // A durable subscription filters when messages are stored, not here.
            selector: if spec.durable.is_some() {
                None
            } else {
                selector
            },
            exclusive: spec.exclusive,
            priority: spec.priority,
            shared: None,
        };
        if self.attached.contains_key(&sub) {
            self.reply(reply, None, Ok(()));
            return;
        }
        if d.is_wildcard() {
            // Creates no destination: attaches to the matching ones (`wildcard_subs`).
            self.subscribe_wildcard(sub, &spec, consumer, reply);
            return;
        }
        if let Err(e) = self.admit_destination(&d) {
            self.reply(reply, None, Err(e));
            return;
        }
        if d.kind.is_queue() {
            // A virtual-topic consumer queue is kept from its first consumer on.
            let created_at = match self.create_consumer_queue(&d, sink) {
                Ok(at) => at,
                Err(e) => {
                    self.reply(reply, None, Err(e));
                    return;
                }
            };
            let q = self.queue_mut(&d);
            if d.kind.is_temporary() && q.temp_owner.is_none() {
                q.temp_owner = Some(spec.temp_owner.unwrap_or(sub.conn));
            }
            q.backlog.add_consumer(consumer);
            self.attached.insert(sub, BacklogId::Queue(d.clone()));
            self.mark_dirty(BacklogId::Queue(d));
            self.reply(reply, created_at, Ok(()));
            return;
        }
        let Some(name) = spec.durable.clone() else {
            let t = self.topic_mut(&d);
            if d.kind.is_temporary() && t.temp_owner.is_none() {
                t.temp_owner = Some(spec.temp_owner.unwrap_or(sub.conn));
            }
            let mut b = Backlog::default();
            b.add_consumer(consumer);
            t.subscribers.insert(sub, b);
            self.attached.insert(sub, BacklogId::TopicSub(d, sub));
            self.reply(reply, None, Ok(()));
            return;
        };
        let existing = self.topics.get(&d).and_then(|t| t.durables.get(&name));
        let mut durable_at = None;
        match existing {
            Some(s) if s.active.is_some() => {
                self.reply(
                    reply,
                    None,
                    Err(BrokerError::DurableInUse(format!(
                        "{}:{}",
                        name.client_id, name.name
                    ))),
                );
                return;
            }
            Some(_) => {}
            None => {
                let rec = Record::Durable {
                    destination: d.clone(),
                    name: name.clone(),
                    selector: spec.selector.clone(),
                };
                match self.journal(sink, &rec) {
                    Ok(loc) => self.apply(rec, Some(loc)),
                    Err(e) => {
                        self.reply(reply, None, Err(e));
                        return;
                    }
                }
                durable_at = Some(sink.end());
            }
        }
        if let Some(s) = self
            .topics
            .get_mut(&d)
            .and_then(|t| t.durables.get_mut(&name))
        {
            s.active = Some(sub);
            s.backlog.add_consumer(consumer);
        }
        self.attached
            .insert(sub, BacklogId::Durable(d.clone(), name.clone()));
        self.mark_dirty(BacklogId::Durable(d, name));
        self.reply(reply, durable_at, Ok(()));
    }

    /// Detaches a consumer; its unacknowledged deliveries go back, flagged, except
    /// `undelivered` (see `Request::Unsubscribe`).
    fn detach(&mut self, sub: SubKey, undelivered: &[u64]) {
        if self.remove_browser(sub) {
            // A browser took nothing off the queue: nothing goes back.
            return;
        }
        if self.detach_wildcard(sub) {
            return;
        }
        let Some(id) = self.attached.remove(&sub) else {
            return;
        };
        self.detach_backlog(sub, id, undelivered);
    }

    /// Detaches `sub` from backlog `id` (its own, or one wildcard part).
    pub(super) fn detach_backlog(&mut self, sub: SubKey, id: BacklogId, undelivered: &[u64]) {
        match &id {
            BacklogId::TopicSub(d, k) => {
                let removed = self.topics.get_mut(d).and_then(|t| t.subscribers.remove(k));
                if let Some(b) = removed {
                    for e in b.entries.values() {
                        self.forget_entry(d, e);
                    }
                }
                self.release_blocked();
                return;
            }
            BacklogId::Durable(d, n) => {
                if let Some(s) = self.topics.get_mut(d).and_then(|t| t.durables.get_mut(n)) {
                    s.active = None;
                }
            }
            BacklogId::Queue(_) => {}
        }
        let max = self.settings.maximum_redeliveries;
        let returned = self
            .backlog_mut(&id)
            .map(|b| b.remove_consumer(sub, undelivered))
            .unwrap_or_default();
        for seq in returned {
            let exhausted = self
                .backlog_mut(&id)
                .and_then(|b| b.entries.get(&seq))
                .is_some_and(|e| e.redeliveries > max);
            if exhausted {
                self.start_dead_letter(id.clone(), seq, "Delivery[exceeded maximumRedeliveries]");
            }
        }
        self.mark_dirty(id);
    }

    pub(super) fn on_unsubscribe(
        &mut self,
        sub: SubKey,
        destination: Destination,
        remove_durable: Option<DurableName>,
        undelivered: &[u64],
        reply: Reply,
        sink: &mut dyn JournalSink,
    ) {
        let mut undelivered = undelivered.to_vec();
        undelivered.sort_unstable();
        // A wildcard subscription's part on one destination (see `Request::Unsubscribe`).
        if !destination.is_wildcard() && self.detach_wild_part(sub, &destination, &undelivered) {
            self.reply(reply, None, Ok(()));
            return;
        }
        self.detach(sub, &undelivered);
        let Some(name) = remove_durable else {
            self.reply(reply, None, Ok(()));
            return;
        };
        // The client may not name the topic: find the subscription by its name.
        let destination = if self
            .topics
            .get(&destination)
            .is_some_and(|t| t.durables.contains_key(&name))
        {
            destination
        } else {
            match self
                .topics
                .iter()
                .find(|(_, t)| t.durables.contains_key(&name))
            {
                Some((d, _)) => d.clone(),
                None => destination,
            }
        };
        let state = self
            .topics
            .get(&destination)
            .and_then(|t| t.durables.get(&name))
            .map(|s| s.active);
        match state {
            None => self.reply(reply, None, Ok(())),
            Some(Some(_)) => self.reply(
                reply,
                None,
                Err(BrokerError::DurableInUse(format!(
                    "{}:{}",
                    name.client_id, name.name
                ))),
            ),
            Some(None) => {
                let rec = Record::Undurable { destination, name };
                match self.journal(sink, &rec) {
                    Ok(loc) => {
                        self.apply(rec, Some(loc));
                        self.reply(reply, Some(sink.end()), Ok(()));
                    }
                    Err(e) => self.reply(reply, None, Err(e)),
                }
            }
        }
    }

    pub(super) fn on_connection_closed(&mut self, conn: ConnId) {
        let subs: Vec<SubKey> = self
            .attached
            .keys()
            .chain(self.wild.subs_keys())
            .filter(|k| k.conn == conn)
            .copied()
            .collect();
        for sub in subs {
            self.detach(sub, &[]);
        }
        for sub in self.browsers_of(conn) {
            self.remove_browser(sub);
        }
        let temps: Vec<Destination> = self
            .queues
            .iter()
            .filter(|(_, q)| q.temp_owner == Some(conn))
            .map(|(d, _)| d.clone())
            .chain(
                self.topics
                    .iter()
                    .filter(|(_, t)| t.temp_owner == Some(conn))
                    .map(|(d, _)| d.clone()),
            )
            .collect();
        for d in temps {
            self.drop_temp(&d);
        }
        self.release_blocked();
    }

    /// Forgets a temporary destination with its messages; its consumers are detached
    /// (their deliveries simply vanish with it).
    fn drop_temp(&mut self, d: &Destination) {
        debug_assert!(d.kind.is_temporary());
        if d.kind.is_queue() {
            if let Some(q) = self.remove_queue(d) {
                for c in &q.backlog.consumers {
                    self.attached.remove(&c.key);
                }
                for e in q.backlog.entries.values() {
                    self.forget_entry(d, e);
                }
            }
        } else if let Some(t) = self.remove_topic(d) {
            for (k, b) in &t.subscribers {
                self.attached.remove(k);
                for e in b.entries.values() {
                    self.forget_entry(d, e);
                }
            }
        }
    }

    pub(super) fn on_set_prefetch(&mut self, sub: SubKey, prefetch: u32) {
        if self.is_browser(sub) {
            self.browser_set_prefetch(sub, prefetch);
            return;
        }
        if self.wild_set_prefetch(sub, prefetch) {
            return;
        }
        let Some(id) = self.attached.get(&sub).cloned() else {
            return;
        };
        if let Some(c) = self
            .backlog_mut(&id)
            .and_then(|b| b.consumers.iter_mut().find(|c| c.key == sub))
        {
            c.prefetch = prefetch;
        }
        self.mark_dirty(id);
    }

    /// Bytes delivered to `sub` reached its socket (see [`Request::Written`]).
    pub(super) fn on_written(&mut self, sub: SubKey, bytes: u64) {
        if self.wild_written(sub, bytes) {
            return;
        }
        let Some(id) = self.attached.get(&sub).cloned() else {
            return;
        };
        if self.backlog_mut(&id).is_some_and(|b| b.written(sub, bytes)) {
            self.mark_dirty(id);
        }
    }

    /// Creates a temporary destination for `owner` (nothing if it exists already).
    pub(super) fn on_create_temp(&mut self, d: Destination, owner: ConnId) {
        if !d.kind.is_temporary() {
            return;
        }
        if d.kind.is_queue() {
            let q = self.queue_mut(&d);
            q.temp_owner.get_or_insert(owner);
        } else {
            let t = self.topic_mut(&d);
            t.temp_owner.get_or_insert(owner);
        }
    }

    /// Deletes `owner`'s temporary destination (another connection's is left alone).
    pub(super) fn on_delete_temp(&mut self, d: Destination, owner: ConnId) {
        let owned = if d.kind.is_queue() {
            self.queues.get(&d).map(|q| q.temp_owner)
        } else {
            self.topics.get(&d).map(|t| t.temp_owner)
        };
        if d.kind.is_temporary() && owned == Some(Some(owner)) {
            self.drop_temp(&d);
            self.release_blocked();
        }
    }
}
