//! Publishing: a persistent send already stored (a failover replay, see
//! `broker::producer_audit`) is confirmed without storing it again; a SEND becomes an `Enqueue` record (its sequence number, and for a topic
//! the durable subscriptions whose selector takes it), journaled only if something must
//! survive a crash; non-durable topic subscribers get their copy by fan-out. Also the
//! shard's memory accounting: bodies stay in memory while there is room, and producers
//! of messages that are not journaled are held back (flow control) while the shard is
//! over its limit.
//!
//! A destination whose policy sets `memoryLimit` has the same two rules on its own:
//! its count is the bytes of bodies its backlogs hold in memory (a topic: all its
//! subscriptions' backlogs together, as ActiveMQ counts per destination), a persistent
//! body beyond it keeps only its journal location, and a non-journaled send while it
//! is over holds its producer until it is under again. The shard's limit applies on
//! top. Every change to `mem_used` changes the destination's count with it
//! (`new_entry`, `forget_entry`, `paged_in`); `assert_memory_accounted` checks it.

use std::sync::Arc;

use super::{now_ms, BacklogId, JournalSink, ShardCore};
use crate::broker::backlog::{Entry, EntryState};
use crate::broker::destination::{DestKind, Destination};
use crate::broker::message::MessageRef;
use crate::broker::message::{GROUP_ID, GROUP_SEQ};
use crate::broker::ops::{BrokerError, Reply, ReplyTo, SubKey};
use crate::broker::record::Record;
use crate::store::Location;

impl ShardCore {
    pub(super) fn on_send(&mut self, msg: MessageRef, reply: Reply, sink: &mut dyn JournalSink) {
        if msg.is_expired(now_ms()) {
            // ActiveMQ discards a message that expired before it was stored.
            self.reply(reply, None, Ok(()));
            return;
        }
        if msg.persistent
            && matches!(reply.to, ReplyTo::Conn(_))
            && self.audit.is_duplicate(&msg.destination, &msg.id)
        {
            // A failover client replaying a send the broker (or the master before a
            // takeover) already stored: confirm it once what is stored is durable,
            // which includes the original.
            tracing::info!(id = %msg.id, destination = %msg.destination, "duplicate send ignored");
            self.reply(reply, Some(sink.end()), Ok(()));
            return;
        }
        let d = msg.destination.clone();
        #[cfg(feature = "fault-injection")]
        crate::fault::panic_if_armed(&d.stomp_name());
        if d.kind.is_temporary() && !self.exists(&d) {
            self.reply(
                reply,
                None,
                Err(BrokerError::NoSuchTempDestination(d.stomp_name())),
            );
            return;
        }
        if let Err(e) = self.admit_destination(&d) {
            self.reply(reply, None, Err(e));
            return;
        }
        if let (true, Some(why)) = (msg.persistent, sink.paused()) {
            self.reply(reply, None, Err(BrokerError::StoreFull(why)));
            return;
        }
        match self.schedule_of(&msg) {
            Err(e) => {
                self.reply(reply, None, Err(e));
                return;
            }
            Ok(Some(spec)) => {
                if let Err(e) = self.on_schedule(msg, spec, 0, Some(reply), sink) {
                    self.reply(reply, None, Err(e));
                }
                return;
            }
            Ok(None) => {}
        }
        // A virtual-topic consumer queue a producer creates is kept too, as when a
        // consumer creates it (its messages may all be acknowledged and reclaimed).
        if let Err(e) = self.create_consumer_queue(&d, sink) {
            self.reply(reply, None, Err(e));
            return;
        }
        let rec = self.enqueue_record(&msg);
        let journaled = self.is_journaled(&rec);
        let loc = if journaled {
            match self.journal(sink, &rec) {
                Ok(loc) => Some(loc),
                Err(e) => {
                    self.reply(reply, None, Err(e));
                    return;
                }
            }
        } else {
            None
        };
        if !journaled && Self::is_volatile_state(&rec) {
            sink.volatile(&rec.encode());
        }
        if !d.kind.is_queue() {
            self.fan_out_to_subscribers(&rec);
        }
        self.apply(rec, loc);
        if journaled {
            self.reply(reply, Some(sink.end()), Ok(()));
        } else if self.over_memory_limit(&d) {
            // Producer flow control: the sender's window stays consumed until
            // consumers make room (on the shard, and on the destination if its policy
            // sets a memoryLimit).
            self.blocked.push_back((d, reply));
        } else {
            self.reply(reply, None, Ok(()));
        }
    }

    /// The record for a new message: its sequence number, and for a topic the durable
    /// subscriptions it goes to.
    pub(super) fn enqueue_record(&mut self, msg: &MessageRef) -> Record {
        let d = &msg.destination;
        if d.kind.is_queue() {
            let q = self.queue_mut(d);
            let seq = q.next_seq;
            q.next_seq += 1;
            Record::Enqueue {
                seq,
                redeliveries: 0,
                message: msg.clone(),
                targets: Vec::new(),
            }
        } else {
            let t = self.topic_mut(d);
            let seq = t.next_seq;
            t.next_seq += 1;
            Record::Enqueue {
                seq,
                redeliveries: 0,
                message: msg.clone(),
                targets: t
                    .durables
                    .iter()
                    .filter(|(_, s)| s.parsed.as_ref().is_none_or(|p| p.matches(msg.as_ref())))
                    .map(|(n, _)| n.clone())
                    .collect(),
            }
        }
    }

    /// Journaled: persistent messages to a non-temporary queue, or to a topic with
    /// durable subscriptions; and every acknowledgement of such a message.
    pub(super) fn is_journaled(&self, rec: &Record) -> bool {
        match rec {
            Record::Enqueue {
                message, targets, ..
            } => {
                message.persistent
                    && match message.destination.kind {
                        DestKind::Queue => true,
                        DestKind::Topic => !targets.is_empty(),
                        _ => false,
                    }
            }
            Record::Ack { .. } => true,
            _ => true,
        }
    }

    /// A message that is stored but not journaled (non-persistent, on a queue or for a
    /// durable subscription): a slave keeps it in memory (see [`JournalSink::volatile`]).
    /// Temporary destinations live and die with their connection on the master.
    pub(super) fn is_volatile_state(rec: &Record) -> bool {
        match rec {
            Record::Enqueue {
                message, targets, ..
            } => match message.destination.kind {
                DestKind::Queue => true,
                DestKind::Topic => !targets.is_empty(),
                _ => false,
            },
            _ => false,
        }
    }

    /// Non-durable subscribers see a topic message only while they are connected:
    /// never journaled, never recovered.
    pub(super) fn fan_out_to_subscribers(&mut self, rec: &Record) {
        let Record::Enqueue { seq, message, .. } = rec else {
            return;
        };
        let d = &message.destination;
        let keys: Vec<SubKey> = match self.topics.get(d) {
            Some(t) => t.subscribers.keys().copied().collect(),
            None => return,
        };
        for k in keys {
            let selected = self
                .topics
                .get(d)
                .and_then(|t| t.subscribers.get(&k))
                .and_then(|b| b.consumers.first())
                .and_then(|c| c.selector.clone())
                .is_none_or(|s| s.matches(message.as_ref()));
            if !selected {
                continue;
            }
            let mut entry = self.new_entry(message, None, 0);
            entry.persistent = false;
            if let Some(b) = self
                .topics
                .get_mut(d)
                .and_then(|t| t.subscribers.get_mut(&k))
            {
                b.insert(*seq, entry);
            }
            self.mark_dirty(BacklogId::TopicSub(d.clone(), k));
        }
    }

    /// A new entry for `msg` (to go into a backlog of `msg.destination`); its body stays
    /// in memory only while there is room for it, on the shard and on its destination
    /// (a persistent message can be read back from the journal later).
    pub(super) fn new_entry(
        &mut self,
        msg: &MessageRef,
        loc: Option<Location>,
        redeliveries: u32,
    ) -> Entry {
        let size = msg.memory_size();
        let d = &msg.destination;
        let keep = loc.is_none()
            || (self.mem_used + size <= self.settings.shard_memory_limit_bytes
                && self.dest_mem(d).is_none_or(|m| m.has_room(size)));
        if keep {
            self.mem_used += size;
            if let Some(m) = self.dest_mem_mut(d) {
                m.used += size;
            }
        }
        self.pin(loc);
        if msg.expires_ms != 0 {
            self.expiring += 1;
        }
        Entry {
            msg: keep.then(|| msg.clone()),
            loc,
            size,
            expires_ms: msg.expires_ms,
            persistent: msg.persistent,
            state: EntryState::Ready,
            redeliveries,
            tx_locked: false,
            group: msg.header(GROUP_ID).map(|g| Arc::new(g.to_owned())),
            group_seq: msg
                .header(GROUP_SEQ)
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0),
        }
    }

    /// Accounts for an entry leaving a backlog of `d` for good (`d` may be removed
    /// already, its count with it).
    pub(super) fn forget_entry(&mut self, d: &Destination, e: &Entry) {
        if e.expires_ms != 0 {
            self.expiring = self.expiring.saturating_sub(1);
        }
        if e.msg.is_some() {
            self.mem_used = self.mem_used.saturating_sub(e.size);
            if let Some(m) = self.dest_mem_mut(d) {
                debug_assert!(m.used >= e.size, "destination memory undercounted");
                m.used = m.used.saturating_sub(e.size);
            }
        }
        self.unpin(e.loc);
    }

    /// Whether a non-journaled send to `d` must hold its producer back: the shard is
    /// over its limit, or `d` over its own.
    fn over_memory_limit(&self, d: &Destination) -> bool {
        self.mem_used > self.settings.shard_memory_limit_bytes
            || self.dest_mem(d).is_some_and(|m| m.over_limit())
    }

    /// Releases the held producers whose destination (and the shard) is under its
    /// limit again, in order; those of a destination still over its limit stay, and
    /// do not hold back the others. One pass over the held replies, which are bounded
    /// by the producers' windows.
    pub(super) fn release_blocked(&mut self) {
        if self.blocked.is_empty() || self.mem_used > self.settings.shard_memory_limit_bytes {
            return;
        }
        let held = std::mem::take(&mut self.blocked);
        for (d, reply) in held {
            if self.over_memory_limit(&d) {
                self.blocked.push_back((d, reply));
            } else {
                self.reply(reply, None, Ok(()));
            }
        }
    }
}
