//! A backlog: the ordered messages waiting for (or delivered to and not yet
//! acknowledged by) the consumers of one queue, one durable subscription, or one
//! non-durable topic subscriber. Queues have many consumers (round robin, bounded by
//! prefetch); subscriptions have at most one.
//!
//! ActiveMQ's queue dispatch rules, in order (each applies only to the consumers that
//! have prefetch room and whose selector takes the message):
//!
//! * **exclusive consumers**: while one is attached, it alone receives the queue (the
//!   highest priority one, the earliest attached among equals); the others wait as
//!   standbys and one of them takes over when it leaves;
//! * **message groups**: messages with the same `JMSXGroupID` go to one consumer, the
//!   group's owner, chosen when the group's first message is dispatched and released
//!   when that consumer leaves (at most [`GROUPS_MAX`] groups remembered per queue,
//!   the least recently assigned forgotten first, as ActiveMQ's cached group map).
//!   `JMSXGroupSeq` as in ActiveMQ's `Queue.assignMessageGroup`: a message with
//!   sequence 1 (re)opens its group, whoever owned it: it goes to any consumer, which
//!   becomes the owner; a negative sequence (`-1`) closes the group once its owner has
//!   been given that message, so the group's next message may go to another consumer
//!   (a negative sequence on a group nobody owns opens it, as in ActiveMQ);
//! * **consumer priority**: the highest priority consumer with room gets the message;
//!   round robin among equals.
//!
//! Invariants: every entry is either in `ready` or delivered to exactly one consumer
//! (`Delivered`), or held by a prepared transaction; a consumer's `in_flight` equals
//! the number of entries delivered to it.

use std::collections::{BTreeSet, HashMap, VecDeque};

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use crate::store::Location;

use super::message::MessageRef;
use super::ops::{AckMode, SubKey};
use super::selector::Selector;
use super::seq_map::SeqMap;

/// A message group's name (`JMSXGroupID`).
pub type GroupId = Arc<String>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryState {
    Ready,
    Delivered(SubKey),
    /// Being moved to the dead-letter queue: not dispatchable, not yet removed.
    Moving,
}

#[derive(Clone, Debug)]
pub struct Entry {
    /// `None` when the body was left on disk to respect the memory limit.
    pub msg: Option<MessageRef>,
    /// Where the message's record lives in the shard's journal; `None` for a
    /// non-persistent message.
    pub loc: Option<Location>,
    /// What `msg` charges against the memory limit when it is present.
    pub size: usize,
    pub expires_ms: u64,
    pub persistent: bool,
    pub state: EntryState,
    pub redeliveries: u32,
    /// Acknowledged inside a prepared (not yet resolved) transaction.
    pub tx_locked: bool,
    /// The message's `JMSXGroupID`, kept here because the body may be on disk. A thin
    /// pointer: every queued message pays for this field, few have a group.
    pub group: Option<GroupId>,
    /// The message's `JMSXGroupSeq` (0 when absent or not a number): 1 opens the
    /// group, negative closes it (module doc). Kept beside `group` for the same reason.
    pub group_seq: i32,
}

#[derive(Clone, Debug)]
pub struct Consumer {
    pub key: SubKey,
    pub prefetch: u32,
    pub in_flight: u32,
    /// Bytes (`Entry::size`) dispatched to it and not yet reported written to its
    /// socket ([`Backlog::written`]): a consumer that does not read stops receiving at
    /// `max_unwritten`, as prefetch stops it by count. Only `written` lowers it: an
    /// acknowledgement does not (an auto-acknowledging consumer's acks come just
    /// before the same bytes' `written`, and lowering it for both let such a consumer
    /// hold twice its bound).
    pub unwritten_bytes: u64,
    /// `maxPendingOutput`; at least one message always goes, whatever its size.
    pub max_unwritten: u64,
    pub ack: AckMode,
    /// Only messages it selects go to this consumer. A message whose body is on disk
    /// cannot be tested, so it goes to consumers without a selector (see `dispatch`).
    pub selector: Option<Arc<Selector>>,
    /// ActiveMQ's exclusive consumer (`consumer.exclusive`, STOMP
    /// `activemq.exclusive`).
    pub exclusive: bool,
    /// ActiveMQ's consumer priority (`consumer.priority`, STOMP `activemq.priority`):
    /// higher first.
    pub priority: i8,
    /// A wildcard subscription's part (one per matching destination on the shard): the
    /// parts share one credit, so the subscription's deliveries in flight on the shard
    /// are bounded by its prefetch (and `max_unwritten`), not by prefetch per
    /// destination. `in_flight` and `unwritten_bytes` above still count this part's own.
    pub shared: Option<Arc<SharedCredit>>,
}

/// The prefetch and unwritten-bytes credit the parts of one wildcard subscription on one
/// shard share (see [`Consumer::shared`]). Only the shard's thread touches it; atomics
/// (relaxed) only because the core must stay `Send`.
#[derive(Debug, Default)]
pub struct SharedCredit {
    in_flight: AtomicU32,
    unwritten: AtomicU64,
    /// Credit came back while it was used up: parts that stopped may dispatch again
    /// (the core marks them dirty and clears this).
    freed: AtomicBool,
    /// Set with `freed`, shared by every wildcard subscription of the shard: the core
    /// looks for freed credit only when it is set.
    any_freed: Arc<AtomicBool>,
}

impl SharedCredit {
    /// A credit that also raises the shard-wide flag `any_freed` when it frees up.
    pub fn new(any_freed: Arc<AtomicBool>) -> SharedCredit {
        SharedCredit {
            any_freed,
            ..SharedCredit::default()
        }
    }

    fn set_freed(&self) {
        self.freed.store(true, Ordering::Relaxed);
        self.any_freed.store(true, Ordering::Relaxed);
    }

    fn full(&self, prefetch: u32, max_unwritten: u64) -> bool {
        self.in_flight.load(Ordering::Relaxed) >= prefetch
            || self.unwritten.load(Ordering::Relaxed) >= max_unwritten
    }

    fn took(&self, bytes: u64) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let u = self.unwritten.load(Ordering::Relaxed);
        self.unwritten
            .store(u.saturating_add(bytes), Ordering::Relaxed);
    }

    /// `n` deliveries left (acknowledged, returned, dead-lettered).
    fn returned(&self, n: u32, prefetch: u32, max_unwritten: u64) {
        let was_full = self.full(prefetch, max_unwritten);
        let f = self.in_flight.load(Ordering::Relaxed);
        self.in_flight.store(f.saturating_sub(n), Ordering::Relaxed);
        if was_full && !self.full(prefetch, max_unwritten) {
            self.set_freed();
        }
    }

    /// `bytes` delivered reached the socket (see [`Backlog::written`]).
    pub fn written(&self, bytes: u64, prefetch: u32, max_unwritten: u64) {
        let was_full = self.full(prefetch, max_unwritten);
        let u = self.unwritten.load(Ordering::Relaxed);
        self.unwritten
            .store(u.saturating_sub(bytes), Ordering::Relaxed);
        if was_full && !self.full(prefetch, max_unwritten) {
            self.set_freed();
        }
    }

    /// Whether credit came back since the last call (and forgets it).
    pub fn take_freed(&self) -> bool {
        self.freed.swap(false, Ordering::Relaxed)
    }

    /// Deliveries in flight over every part.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }
}

/// Whether a consumer takes an entry.
#[derive(PartialEq, Eq)]
enum Verdict {
    Yes,
    No,
    /// The consumer has a selector and the body is on disk: read it back, then ask.
    NeedsBody,
}

impl Consumer {
    /// No room for another delivery: its prefetch or its unwritten bytes are used up.
    fn full(&self) -> bool {
        match &self.shared {
            Some(s) => s.full(self.prefetch, self.max_unwritten),
            None => self.in_flight >= self.prefetch || self.unwritten_bytes >= self.max_unwritten,
        }
    }

    /// A delivery of `bytes` was made to it.
    fn took(&mut self, bytes: u64) {
        self.in_flight += 1;
        self.unwritten_bytes = self.unwritten_bytes.saturating_add(bytes);
        if let Some(s) = &self.shared {
            s.took(bytes);
        }
    }

    /// `n` of its deliveries left it.
    fn returned(&mut self, n: u32) {
        let n = n.min(self.in_flight);
        self.in_flight -= n;
        if let Some(s) = &self.shared {
            s.returned(n, self.prefetch, self.max_unwritten);
        }
    }

    fn accepts(&self, e: &Entry) -> Verdict {
        match (&self.selector, &e.msg) {
            (None, _) => Verdict::Yes,
            (Some(s), Some(m)) if s.matches(m.as_ref()) => Verdict::Yes,
            (Some(_), Some(_)) => Verdict::No,
            (Some(_), None) => Verdict::NeedsBody,
        }
    }
}

/// Ready entries one dispatch pass examines at most: selective consumers must not make
/// every send rescan a large backlog.
const DISPATCH_SCAN_MAX: usize = 4096;
/// Bodies one dispatch pass asks to read back for selective consumers.
const PAGE_IN_MAX: usize = 64;
/// Message groups remembered per queue (ActiveMQ's cached group map holds 1024).
pub const GROUPS_MAX: usize = 1024;

#[derive(Default, Debug)]
pub struct Backlog {
    /// By sequence number; see [`SeqMap`] for why not a `BTreeMap`.
    pub entries: SeqMap<Entry>,
    pub ready: BTreeSet<u64>,
    pub consumers: Vec<Consumer>,
    /// Round-robin cursor into `consumers`.
    next_consumer: usize,
    /// Message group -> the consumer that owns it.
    groups: HashMap<GroupId, SubKey>,
    /// Groups in the order they were assigned (oldest first), to forget beyond
    /// [`GROUPS_MAX`].
    group_order: VecDeque<GroupId>,
}

/// One assignment made by [`Backlog::dispatch`].
pub struct Assignment {
    pub sub: SubKey,
    pub seq: u64,
}

impl Backlog {
    pub fn insert(&mut self, seq: u64, entry: Entry) {
        debug_assert!(entry.state == EntryState::Ready);
        self.ready.insert(seq);
        self.entries.insert(seq, entry);
    }

    pub fn add_consumer(&mut self, consumer: Consumer) {
        self.consumers.push(consumer);
    }

    /// Removes a consumer; its deliveries go back to `ready`, flagged redelivered
    /// except those in `undelivered` (never handed to the application; sorted). Returns
    /// the sequence numbers returned.
    pub fn remove_consumer(&mut self, key: SubKey, undelivered: &[u64]) -> Vec<u64> {
        if let Some(c) = self.consumers.iter_mut().find(|c| c.key == key) {
            // Its deliveries go back: a wildcard subscription's other parts get the credit.
            c.returned(c.in_flight);
        }
        self.consumers.retain(|c| c.key != key);
        if self.next_consumer >= self.consumers.len() {
            self.next_consumer = 0;
        }
        // Its groups get a new owner with their next message.
        self.groups.retain(|_, owner| *owner != key);
        let groups = &self.groups;
        self.group_order.retain(|g| groups.contains_key(g));
        let mut returned = Vec::new();
        for (seq, e) in self.entries.iter_mut() {
            if e.state == EntryState::Delivered(key) && !e.tx_locked {
                e.state = EntryState::Ready;
                if undelivered.binary_search(seq).is_err() {
                    e.redeliveries += 1;
                }
                self.ready.insert(*seq);
                returned.push(*seq);
            }
        }
        returned
    }

    /// `bytes` delivered to `key` are on its socket: room for more. True if the
    /// consumer is here.
    pub fn written(&mut self, key: SubKey, bytes: u64) -> bool {
        let Some(c) = self.consumers.iter_mut().find(|c| c.key == key) else {
            return false;
        };
        c.unwritten_bytes = c.unwritten_bytes.saturating_sub(bytes);
        true
    }

    pub fn has_consumer(&self, key: SubKey) -> bool {
        self.consumers.iter().any(|c| c.key == key)
    }

    /// Removes an acknowledged entry delivered to `key`. Returns it, or `None` if it
    /// is not delivered to that consumer (a stale or foreign acknowledgement).
    pub fn take_delivered(&mut self, seq: u64, key: SubKey) -> Option<Entry> {
        match self.entries.get(&seq) {
            Some(e) if e.state == EntryState::Delivered(key) => {}
            _ => return None,
        }
        let e = self.entries.remove(&seq)?;
        if let Some(c) = self.consumers.iter_mut().find(|c| c.key == key) {
            c.returned(1);
        }
        Some(e)
    }

    /// Removes an entry whatever its state (recovery, purge, transaction commit).
    pub fn remove(&mut self, seq: u64) -> Option<Entry> {
        let e = self.entries.remove(&seq)?;
        self.ready.remove(&seq);
        if let EntryState::Delivered(key) = e.state {
            if let Some(c) = self.consumers.iter_mut().find(|c| c.key == key) {
                c.returned(1);
            }
        }
        Some(e)
    }

    /// Frees the prefetch slot of an entry that leaves its consumer without being
    /// removed (for example, on its way to the dead-letter queue).
    pub fn release(&mut self, seq: u64) {
        if let Some(e) = self.entries.get_mut(&seq) {
            if let EntryState::Delivered(key) = e.state {
                if let Some(c) = self.consumers.iter_mut().find(|c| c.key == key) {
                    c.returned(1);
                }
            }
            self.ready.remove(&seq);
            e.state = EntryState::Moving;
        }
    }

    /// Assigns ready entries, oldest first, to consumers in round-robin order while
    /// any has prefetch room. Entries for which `skip` returns true (expired) are
    /// passed over and reported separately.
    ///
    /// Entries a selective consumer could take but whose body is on disk are listed in
    /// `page_in`: read them back and dispatch again.
    pub fn dispatch(
        &mut self,
        mut skip: impl FnMut(&Entry) -> bool,
        skipped: &mut Vec<u64>,
        page_in: &mut Vec<u64>,
    ) -> Vec<Assignment> {
        let mut out = Vec::new();
        if self.consumers.is_empty() || self.ready.is_empty() {
            return out;
        }
        let exclusive = self.exclusive_owner();
        let uniform_priority = self
            .consumers
            .windows(2)
            .all(|w| w[0].priority == w[1].priority);
        let mut cursor = self.ready.iter().next().copied();
        let mut scanned = 0;
        while let Some(seq) = cursor {
            scanned += 1;
            if scanned > DISPATCH_SCAN_MAX {
                break;
            }
            cursor = self.ready.range(seq + 1..).next().copied();
            let Some(entry) = self.entries.get(&seq) else {
                self.ready.remove(&seq);
                continue;
            };
            if skip(entry) {
                skipped.push(seq);
                continue;
            }
            // Exclusive owner, else the group's owner, else any consumer (priority,
            // then round robin).
            let owner = exclusive.or_else(|| {
                let g = entry.group.as_ref()?;
                if entry.group_seq == 1 {
                    return None; // a first message (re)opens its group
                }
                let key = self.groups.get(g)?;
                self.consumers.iter().position(|c| c.key == *key)
            });
            let n = self.consumers.len();
            let mut chosen = None;
            let mut needs_body = false;
            if let Some(o) = owner {
                let c = &self.consumers[o];
                if c.full() {
                    if exclusive.is_some() {
                        break; // nobody else may take anything
                    }
                    continue; // this group waits; other messages may go
                }
                match c.accepts(entry) {
                    Verdict::Yes => chosen = Some(o),
                    Verdict::NeedsBody => needs_body = true,
                    Verdict::No => {}
                }
            } else {
                let mut any_room = false;
                let mut best_priority = i8::MIN;
                for i in 0..n {
                    let idx = (self.next_consumer + i) % n;
                    let c = &self.consumers[idx];
                    if c.full() {
                        continue;
                    }
                    any_room = true;
                    match c.accepts(entry) {
                        Verdict::Yes if chosen.is_none() || c.priority > best_priority => {
                            chosen = Some(idx);
                            best_priority = c.priority;
                            if uniform_priority {
                                break;
                            }
                        }
                        Verdict::Yes | Verdict::No => {}
                        Verdict::NeedsBody => needs_body = true,
                    }
                }
                if !any_room {
                    break;
                }
            }
            // No consumer with room selects this message: it waits, later ones may go.
            let Some(idx) = chosen else {
                if needs_body && page_in.len() < PAGE_IN_MAX {
                    page_in.push(seq);
                }
                continue;
            };
            // The group gets this consumer as its owner, or (its end reached by its
            // owner) none.
            let (open, close) = match (&entry.group, owner, exclusive) {
                (Some(g), None, None) => (Some(g.clone()), None),
                (Some(g), Some(_), None) if entry.group_seq < 0 => (None, Some(g.clone())),
                _ => (None, None),
            };
            self.next_consumer = (idx + 1) % n;
            let size = entry.size as u64;
            let c = &mut self.consumers[idx];
            c.took(size);
            let key = c.key;
            self.ready.remove(&seq);
            if let Some(e) = self.entries.get_mut(&seq) {
                e.state = EntryState::Delivered(key);
            }
            if let Some(g) = open {
                self.assign_group(g, key);
            }
            if let Some(g) = close {
                self.close_group(&g);
            }
            out.push(Assignment { sub: key, seq });
        }
        out
    }

    /// The consumer that receives everything while it is attached: the highest
    /// priority exclusive consumer, the earliest attached among equals.
    fn exclusive_owner(&self) -> Option<usize> {
        let mut owner: Option<usize> = None;
        for (i, c) in self.consumers.iter().enumerate() {
            if c.exclusive && owner.is_none_or(|o| c.priority > self.consumers[o].priority) {
                owner = Some(i);
            }
        }
        owner
    }

    /// The group's last message went to its owner: the next one picks a new owner.
    fn close_group(&mut self, group: &GroupId) {
        if self.groups.remove(group).is_some() {
            self.group_order.retain(|g| g != group);
        }
    }

    fn assign_group(&mut self, group: GroupId, key: SubKey) {
        if self.groups.insert(group.clone(), key).is_none() {
            self.group_order.push_back(group);
            while self.group_order.len() > GROUPS_MAX {
                if let Some(oldest) = self.group_order.pop_front() {
                    self.groups.remove(&oldest);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::ops::ConnId;

    fn key(n: u64) -> SubKey {
        SubKey {
            conn: ConnId {
                shard: 0,
                serial: n,
            },
            sub: 1,
        }
    }
    fn entry() -> Entry {
        Entry {
            msg: None,
            loc: None,
            size: 0,
            expires_ms: 0,
            persistent: false,
            state: EntryState::Ready,
            redeliveries: 0,
            tx_locked: false,
            group: None,
            group_seq: 0,
        }
    }
    fn consumer(n: u64, prefetch: u32) -> Consumer {
        Consumer {
            key: key(n),
            prefetch,
            in_flight: 0,
            unwritten_bytes: 0,
            max_unwritten: u64::MAX,
            ack: AckMode::Client,
            selector: None,
            exclusive: false,
            priority: 0,
            shared: None,
        }
    }

    #[test]
    fn round_robin_bounded_by_prefetch_in_order() {
        let mut b = Backlog::default();
        for s in 1..=5 {
            b.insert(s, entry());
        }
        b.add_consumer(consumer(1, 1));
        b.add_consumer(consumer(2, 2));
        let got: Vec<(u64, u64)> = b
            .dispatch(|_| false, &mut Vec::new(), &mut Vec::new())
            .iter()
            .map(|a| (a.sub.conn.serial, a.seq))
            .collect();
        assert_eq!(got, vec![(1, 1), (2, 2), (2, 3)]);
        assert!(b.take_delivered(1, key(1)).is_some());
        assert!(b.take_delivered(1, key(1)).is_none());
        let got: Vec<u64> = b
            .dispatch(|_| false, &mut Vec::new(), &mut Vec::new())
            .iter()
            .map(|a| a.seq)
            .collect();
        assert_eq!(got, vec![4]);
    }

    #[test]
    fn removed_consumer_returns_its_deliveries_in_order_flagged() {
        let mut b = Backlog::default();
        for s in 1..=3 {
            b.insert(s, entry());
        }
        b.add_consumer(consumer(1, 10));
        assert_eq!(
            b.dispatch(|_| false, &mut Vec::new(), &mut Vec::new())
                .len(),
            3
        );
        assert!(b.take_delivered(2, key(1)).is_some());
        assert_eq!(b.remove_consumer(key(1), &[]), vec![1, 3]);
        assert_eq!(b.entries[&1].redeliveries, 1);
        b.add_consumer(consumer(2, 10));
        let got: Vec<u64> = b
            .dispatch(|_| false, &mut Vec::new(), &mut Vec::new())
            .iter()
            .map(|a| a.seq)
            .collect();
        assert_eq!(got, vec![1, 3]);
    }

    /// (consumer serial, seq) of one dispatch pass.
    fn pass(b: &mut Backlog) -> Vec<(u64, u64)> {
        b.dispatch(|_| false, &mut Vec::new(), &mut Vec::new())
            .iter()
            .map(|a| (a.sub.conn.serial, a.seq))
            .collect()
    }

    fn grouped(group: &str) -> Entry {
        Entry {
            group: Some(Arc::new(group.to_owned())),
            ..entry()
        }
    }

    #[test]
    fn an_exclusive_consumer_takes_everything_and_a_standby_follows_it() {
        let mut b = Backlog::default();
        b.add_consumer(consumer(1, 10));
        b.add_consumer(Consumer {
            exclusive: true,
            ..consumer(2, 2)
        });
        b.add_consumer(Consumer {
            exclusive: true,
            ..consumer(3, 10)
        });
        for s in 1..=4 {
            b.insert(s, entry());
        }
        // Consumer 2 is the owner; when its prefetch is full nobody else gets any.
        assert_eq!(pass(&mut b), vec![(2, 1), (2, 2)]);
        assert_eq!(pass(&mut b), vec![]);
        // It leaves: its two come back and the standby exclusive (3) takes over.
        b.remove_consumer(key(2), &[]);
        assert_eq!(pass(&mut b), vec![(3, 1), (3, 2), (3, 3), (3, 4)]);
    }

    #[test]
    fn higher_priority_consumers_are_served_first() {
        let mut b = Backlog::default();
        b.add_consumer(consumer(1, 10));
        b.add_consumer(Consumer {
            priority: 5,
            ..consumer(2, 2)
        });
        for s in 1..=4 {
            b.insert(s, entry());
        }
        assert_eq!(pass(&mut b), vec![(2, 1), (2, 2), (1, 3), (1, 4)]);
    }

    #[test]
    fn a_group_sticks_to_its_consumer_until_that_consumer_leaves() {
        let mut b = Backlog::default();
        b.add_consumer(consumer(1, 10));
        b.add_consumer(consumer(2, 10));
        b.insert(1, grouped("A"));
        b.insert(2, grouped("A"));
        b.insert(3, grouped("B"));
        b.insert(4, grouped("A"));
        b.insert(5, entry());
        assert_eq!(pass(&mut b), vec![(1, 1), (1, 2), (2, 3), (1, 4), (2, 5)]);
        // Consumer 1 leaves: group A moves, as a whole, to the one left.
        b.remove_consumer(key(1), &[]);
        b.insert(6, grouped("A"));
        assert_eq!(pass(&mut b), vec![(2, 1), (2, 2), (2, 4), (2, 6)]);
    }

    fn in_group(group: &str, seq: i32) -> Entry {
        Entry {
            group_seq: seq,
            ..grouped(group)
        }
    }

    #[test]
    fn a_negative_group_sequence_closes_the_group_after_its_owner_got_it() {
        let mut b = Backlog::default();
        b.add_consumer(consumer(1, 10));
        b.add_consumer(consumer(2, 10));
        b.insert(1, in_group("A", 1));
        b.insert(2, in_group("A", 2));
        b.insert(3, in_group("A", -1));
        // Closed: the next message of A picks an owner again, round robin (2 is next).
        b.insert(4, in_group("A", 4));
        b.insert(5, in_group("A", 5));
        assert_eq!(pass(&mut b), vec![(1, 1), (1, 2), (1, 3), (2, 4), (2, 5)]);
        // An end-of-group message for a group nobody owns opens it (as ActiveMQ).
        b.insert(6, in_group("B", -1));
        b.insert(7, in_group("B", 0));
        assert_eq!(pass(&mut b), vec![(1, 6), (1, 7)]);
        assert_eq!(b.groups.len(), 2, "A with 2, B with 1");
    }

    #[test]
    fn a_first_group_sequence_reopens_the_group_for_any_consumer() {
        let mut b = Backlog::default();
        b.add_consumer(consumer(1, 10));
        b.add_consumer(consumer(2, 10));
        b.insert(1, in_group("A", 0));
        b.insert(2, entry());
        // Sequence 1: A is open again; the round robin gives it to 1 this time.
        b.insert(3, in_group("A", 1));
        b.insert(4, in_group("A", 0));
        assert_eq!(pass(&mut b), vec![(1, 1), (2, 2), (1, 3), (1, 4)]);
        // Owned by 1, but a sequence 1 goes to whoever is next: 2, the new owner.
        b.insert(5, in_group("A", 1));
        b.insert(6, in_group("A", 2));
        assert_eq!(pass(&mut b), vec![(2, 5), (2, 6)]);
    }

    #[test]
    fn a_closed_group_is_forgotten_from_the_bounded_order_too() {
        let mut b = Backlog::default();
        b.add_consumer(consumer(1, u32::MAX));
        for i in 0..GROUPS_MAX as u64 {
            b.insert(2 * i + 1, in_group("A", 1));
            b.insert(2 * i + 2, in_group("A", -1));
        }
        pass(&mut b);
        assert!(b.groups.is_empty());
        assert!(b.group_order.is_empty());
    }

    #[test]
    fn groups_are_forgotten_beyond_the_bound() {
        let mut b = Backlog::default();
        b.add_consumer(consumer(1, u32::MAX));
        for s in 0..(GROUPS_MAX as u64 + 10) {
            b.insert(s, grouped(&format!("g{s}")));
        }
        pass(&mut b);
        assert_eq!(b.groups.len(), GROUPS_MAX);
        assert_eq!(b.group_order.len(), GROUPS_MAX);
        let forgotten: GroupId = Arc::new("g0".into());
        assert!(!b.groups.contains_key(&forgotten));
        assert!(b.groups.contains_key(&format!("g{}", GROUPS_MAX + 9)));
    }
}
