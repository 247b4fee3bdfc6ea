//! Queue browsers (a JMS `QueueBrowser`, a STOMP `browser:true` subscription), as
//! ActiveMQ Classic has them: a browser sees the messages that are on the queue when it
//! starts (here: every sequence number assigned by then), in queue order, that match its
//! selector and have not expired, including those delivered to other consumers and not
//! yet acknowledged (ActiveMQ browses every message not acknowledged). Then comes the
//! end marker ([`Output::BrowseEnd`]; ActiveMQ's MessageDispatch with a null message,
//! STOMP's `browser:end` MESSAGE).
//!
//! Browsing changes nothing: no entry changes state, nothing is journaled, and a
//! browser's acknowledgements (and NACKs: ActiveMQ's browser subscription ignores acks)
//! only return prefetch credit.
//!
//! Memory stays bounded whatever the queue's size: the snapshot is two sequence numbers
//! (a cursor and the end); deliveries in flight are bounded by the browser's prefetch,
//! which acknowledgements replenish (ActiveMQ flows browsers by prefetch too); bodies
//! only the journal holds are read back into a lookahead of at most [`LOOKAHEAD`]
//! messages and never put back into the queue's entries (browsing a paged-out queue must
//! not pull it into memory); and one step looks at no more than [`SCAN_MAX`] entries, so
//! a selector that matches nothing cannot stall the shard.
//!
//! Order: the cursor fills the lookahead in sequence order; an entry with its body in
//! memory is ready at once, one on disk once read back ([`Output::PageIn`], answered
//! through [`ShardCore::paged_in`]); deliveries leave only from the front.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

use super::{now_ms, Body, Output, ShardCore};
use crate::broker::backlog::EntryState;
use crate::broker::destination::Destination;
use crate::broker::message::MessageRef;
use crate::broker::ops::{BrokerError, Reply, SubKey};
use crate::broker::selector::Selector;

/// Messages a browser looks ahead of its deliveries (ready or being read back).
const LOOKAHEAD: usize = 32;
/// Queue entries one browse step looks at before letting the shard do other work.
const SCAN_MAX: usize = 4096;

/// One browser's progress through its snapshot.
pub(super) struct Browser {
    queue: Destination,
    selector: Option<Arc<Selector>>,
    /// The next sequence number to look at.
    cursor: u64,
    /// The snapshot ends here: later sequence numbers were assigned after the start.
    end: u64,
    prefetch: u32,
    /// Delivered and not yet acknowledged: what the prefetch counts.
    in_flight: BTreeSet<u64>,
    /// Looked at and selected, not delivered yet, in sequence order.
    ahead: VecDeque<Ahead>,
    /// The end marker went out; the browser stays until it is removed.
    ended: bool,
}

enum Ahead {
    Ready {
        seq: u64,
        msg: MessageRef,
        redeliveries: u32,
    },
    /// Its body is being read back from the journal.
    Loading { seq: u64, redeliveries: u32 },
}

impl Ahead {
    fn seq(&self) -> u64 {
        match self {
            Ahead::Ready { seq, .. } | Ahead::Loading { seq, .. } => *seq,
        }
    }
}

impl ShardCore {
    pub(super) fn on_browse(
        &mut self,
        sub: SubKey,
        destination: Destination,
        selector: Option<String>,
        prefetch: u32,
        reply: Reply,
    ) {
        if !destination.kind.is_queue() {
            // Sessions refuse this first; a browser on a topic would never end.
            let name = destination.stomp_name();
            self.reply(reply, None, Err(BrokerError::NotAQueue(name)));
            return;
        }
        let selector = match selector.as_deref().map(Selector::parse) {
            None => None,
            Some(Ok(s)) if s.selects_all() => None,
            Some(Ok(s)) => Some(Arc::new(s)),
            Some(Err(e)) => {
                let e = BrokerError::InvalidSelector(e.to_string());
                self.reply(reply, None, Err(e));
                return;
            }
        };
        if self.browsers.contains_key(&sub) || self.attached.contains_key(&sub) {
            // A replayed request (failover) for a browser this shard already has.
            self.reply(reply, None, Ok(()));
            return;
        }
        // A queue this shard has never seen is empty: the browse ends at once (and,
        // unlike a consumer, a browser does not create the queue).
        let end = self.queues.get(&destination).map_or(0, |q| q.next_seq);
        self.browsers.insert(
            sub,
            Browser {
                queue: destination,
                selector,
                cursor: 0,
                end,
                prefetch,
                in_flight: BTreeSet::new(),
                ahead: VecDeque::new(),
                ended: false,
            },
        );
        // The reply goes out before the first delivery (outputs keep their order).
        self.reply(reply, None, Ok(()));
        self.mark_browse_dirty(sub);
    }

    /// Whether `sub` is a browser here (its requests are handled by this file).
    pub(super) fn is_browser(&self, sub: SubKey) -> bool {
        self.browsers.contains_key(&sub)
    }

    /// The browser acknowledged (or refused) deliveries: their credit comes back; the
    /// queue is untouched.
    pub(super) fn browser_acked(&mut self, sub: SubKey, seqs: &[u64]) {
        if let Some(b) = self.browsers.get_mut(&sub) {
            for s in seqs {
                b.in_flight.remove(s);
            }
            self.mark_browse_dirty(sub);
        }
    }

    pub(super) fn browser_set_prefetch(&mut self, sub: SubKey, prefetch: u32) {
        if let Some(b) = self.browsers.get_mut(&sub) {
            b.prefetch = prefetch;
            self.mark_browse_dirty(sub);
        }
    }

    /// Forgets a browser (closed, unsubscribed, its connection gone). Bodies still
    /// being read back for it are dropped when they arrive.
    pub(super) fn remove_browser(&mut self, sub: SubKey) -> bool {
        self.browse_dirty.retain(|k| *k != sub);
        self.browsers.remove(&sub).is_some()
    }

    /// Every browser of connection `conn`.
    pub(super) fn browsers_of(&self, conn: crate::broker::ops::ConnId) -> Vec<SubKey> {
        self.browsers
            .keys()
            .filter(|k| k.conn == conn)
            .copied()
            .collect()
    }

    /// Browsers still have work to do after [`ShardCore::drain`] (a step stopped at
    /// [`SCAN_MAX`]): the driver should drain again soon, even if nothing else happens.
    pub fn has_browse_work(&self) -> bool {
        !self.browse_dirty.is_empty()
    }

    fn mark_browse_dirty(&mut self, sub: SubKey) {
        if !self.browse_dirty.contains(&sub) {
            self.browse_dirty.push(sub);
        }
    }

    /// One step for every browser that may progress; those that stopped at the scan
    /// bound stay dirty.
    pub(super) fn browse_dirty_browsers(&mut self) {
        let dirty = std::mem::take(&mut self.browse_dirty);
        let now = now_ms();
        for sub in dirty {
            if self.browse_step(sub, now) {
                self.mark_browse_dirty(sub);
            }
        }
    }

    /// Fills the lookahead, delivers from its front while the prefetch allows, and
    /// ends the browse once the snapshot is exhausted. True if it stopped at the scan
    /// bound with more to look at.
    fn browse_step(&mut self, sub: SubKey, now: u64) -> bool {
        let Some(b) = self.browsers.get_mut(&sub) else {
            return false;
        };
        if b.ended {
            return false;
        }
        let entries = self.queues.get(&b.queue).map(|q| &q.backlog.entries);
        let mut loads = Vec::new();
        let mut scanned = 0;
        while b.ahead.len() < LOOKAHEAD && b.cursor < b.end && scanned < SCAN_MAX {
            let Some((&seq, e)) = entries.and_then(|m| m.range(b.cursor..b.end).next()) else {
                b.cursor = b.end;
                break;
            };
            scanned += 1;
            b.cursor = seq + 1;
            // On its way to the dead-letter queue, or past its expiry (the sweep will
            // move it): ActiveMQ's browser does not show those either.
            if e.state == EntryState::Moving || (e.expires_ms != 0 && e.expires_ms <= now) {
                continue;
            }
            let redeliveries = e.redeliveries;
            match (&e.msg, e.loc) {
                (Some(m), _) => {
                    if b.selector.as_ref().is_none_or(|s| s.matches(m.as_ref())) {
                        b.ahead.push_back(Ahead::Ready {
                            seq,
                            msg: m.clone(),
                            redeliveries,
                        });
                    }
                }
                (None, Some(loc)) => {
                    b.ahead.push_back(Ahead::Loading { seq, redeliveries });
                    loads.push((seq, loc));
                }
                (None, None) => {}
            }
        }
        let mut delivered = Vec::new();
        while u32::try_from(b.in_flight.len()).unwrap_or(u32::MAX) < b.prefetch {
            let Some(Ahead::Ready { .. }) = b.ahead.front() else {
                break;
            };
            let Some(Ahead::Ready {
                seq,
                msg,
                redeliveries,
            }) = b.ahead.pop_front()
            else {
                break;
            };
            // Acknowledged (or moved) by its consumer since it was looked at: a browse
            // shows only what is still on the queue.
            let Some(entry) = entries
                .and_then(|m| m.get(&seq))
                .filter(|e| e.state != EntryState::Moving)
            else {
                continue;
            };
            b.in_flight.insert(seq);
            delivered.push(Output::Deliver {
                sub,
                destination: b.queue.clone(),
                seq,
                body: Body::Memory(msg),
                redeliveries,
                stored_at: entry.loc,
            });
        }
        let more = scanned >= SCAN_MAX && b.cursor < b.end;
        let ended = b.cursor >= b.end && b.ahead.is_empty();
        if ended {
            b.ended = true;
        }
        let queue = b.queue.clone();
        self.out.extend(delivered);
        if ended {
            self.out.push(Output::BrowseEnd {
                sub,
                destination: queue.clone(),
            });
        }
        for (seq, loc) in loads {
            let token = self.token();
            self.browse_loading.insert(token, (sub, seq));
            self.out.push(Output::PageIn {
                destination: queue.clone(),
                seq,
                loc,
                token,
            });
        }
        more
    }

    /// A body read back for a browser (`token` is one of `browse_loading`'s): it joins
    /// the lookahead if it matches, else it is passed over. `None` (it could not be
    /// read: acknowledged and its journal segment reclaimed meanwhile) is passed over
    /// too.
    pub(super) fn browse_loaded(&mut self, token: u64, msg: Option<MessageRef>) {
        let Some((sub, seq)) = self.browse_loading.remove(&token) else {
            return;
        };
        let Some(b) = self.browsers.get_mut(&sub) else {
            return;
        };
        let Some(i) = b.ahead.iter().position(|a| a.seq() == seq) else {
            return;
        };
        let selected = msg.filter(|m| b.selector.as_ref().is_none_or(|s| s.matches(m.as_ref())));
        match (selected, &b.ahead[i]) {
            (Some(msg), &Ahead::Loading { seq, redeliveries }) => {
                b.ahead[i] = Ahead::Ready {
                    seq,
                    msg,
                    redeliveries,
                };
            }
            _ => {
                b.ahead.remove(i);
            }
        }
        self.mark_browse_dirty(sub);
    }
}
