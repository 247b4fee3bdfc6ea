//! A backlog: the ordered messages waiting for (or delivered to and not yet
//! acknowledged by) the consumers of one queue, one durable subscription, or one
//! non-durable topic subscriber. Queues have many consumers (round robin, bounded by
//! prefetch); subscriptions have at most one.
//!
//! Invariants: every entry is either in `ready` or delivered to exactly one consumer
//! (`Delivered`), or held by a prepared transaction; a consumer's `in_flight` equals
//! the number of entries delivered to it.

use std::collections::{BTreeMap, BTreeSet};

use std::sync::Arc;

use super::message::MessageRef;
use super::ops::{AckMode, SubKey};
use super::selector::Selector;

/// Where a journaled message's record lives (segment and offset in the shard's
/// journal). Entries of non-persistent messages have none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loc {
    pub segment: u64,
    pub offset: u64,
    pub len: u32,
}

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
    pub loc: Option<Loc>,
    /// What `msg` charges against the memory limit when it is present.
    pub size: usize,
    pub expires_ms: u64,
    pub persistent: bool,
    pub state: EntryState,
    pub redeliveries: u32,
    /// Acknowledged inside a prepared (not yet resolved) transaction.
    pub tx_locked: bool,
}

#[derive(Clone, Debug)]
pub struct Consumer {
    pub key: SubKey,
    pub prefetch: u32,
    pub in_flight: u32,
    pub ack: AckMode,
    /// Only messages it selects go to this consumer. A message whose body is on disk
    /// cannot be tested, so it goes to consumers without a selector (see `dispatch`).
    pub selector: Option<Arc<Selector>>,
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

#[derive(Default, Debug)]
pub struct Backlog {
    pub entries: BTreeMap<u64, Entry>,
    pub ready: BTreeSet<u64>,
    pub consumers: Vec<Consumer>,
    /// Round-robin cursor into `consumers`.
    next_consumer: usize,
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
        self.consumers.retain(|c| c.key != key);
        if self.next_consumer >= self.consumers.len() {
            self.next_consumer = 0;
        }
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
            c.in_flight = c.in_flight.saturating_sub(1);
        }
        Some(e)
    }

    /// Removes an entry whatever its state (recovery, purge, transaction commit).
    pub fn remove(&mut self, seq: u64) -> Option<Entry> {
        let e = self.entries.remove(&seq)?;
        self.ready.remove(&seq);
        if let EntryState::Delivered(key) = e.state {
            if let Some(c) = self.consumers.iter_mut().find(|c| c.key == key) {
                c.in_flight = c.in_flight.saturating_sub(1);
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
                    c.in_flight = c.in_flight.saturating_sub(1);
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
            let n = self.consumers.len();
            let mut chosen = None;
            let mut any_room = false;
            let mut needs_body = false;
            for i in 0..n {
                let idx = (self.next_consumer + i) % n;
                let c = &self.consumers[idx];
                if c.in_flight < c.prefetch {
                    any_room = true;
                    match c.accepts(entry) {
                        Verdict::Yes => {
                            chosen = Some(idx);
                            break;
                        }
                        Verdict::NeedsBody => needs_body = true,
                        Verdict::No => {}
                    }
                }
            }
            if !any_room {
                break;
            }
            // No consumer with room selects this message: it waits, later ones may go.
            let Some(idx) = chosen else {
                if needs_body && page_in.len() < PAGE_IN_MAX {
                    page_in.push(seq);
                }
                continue;
            };
            self.next_consumer = (idx + 1) % n;
            let c = &mut self.consumers[idx];
            c.in_flight += 1;
            let key = c.key;
            self.ready.remove(&seq);
            if let Some(e) = self.entries.get_mut(&seq) {
                e.state = EntryState::Delivered(key);
            }
            out.push(Assignment { sub: key, seq });
        }
        out
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
        }
    }
    fn consumer(n: u64, prefetch: u32) -> Consumer {
        Consumer {
            key: key(n),
            prefetch,
            in_flight: 0,
            ack: AckMode::Client,
            selector: None,
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
}
