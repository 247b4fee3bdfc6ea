//! Dispatch: every backlog touched since the last [`ShardCore::drain`] hands its ready
//! messages to consumers with prefetch room (bounded rounds), dead-letters those that
//! expired while waiting, and asks the driver to read back bodies a selective consumer
//! needs but only the journal holds (page-in, bounded by memory).

use super::{now_ms, BacklogId, Body, Output, ShardCore};
use crate::broker::destination::Destination;
use crate::broker::message::MessageRef;

impl ShardCore {
    pub(super) fn dispatch_dirty(&mut self) {
        let now = now_ms();
        let mut rounds = 0;
        while !self.dirty.is_empty() && rounds < 4 {
            rounds += 1;
            let dirty = std::mem::take(&mut self.dirty);
            for id in dirty {
                let mut skipped = Vec::new();
                let mut page_in = Vec::new();
                let (assignments, destination) = {
                    let Some(b) = self.backlog_mut(&id) else {
                        continue;
                    };
                    let a = b.dispatch(
                        |e| e.expires_ms != 0 && e.expires_ms <= now,
                        &mut skipped,
                        &mut page_in,
                    );
                    (a, id.destination().clone())
                };
                for a in assignments {
                    let Some(e) = self.backlog_ref(&id).and_then(|b| b.entries.get(&a.seq)) else {
                        continue;
                    };
                    let body = match (&e.msg, e.loc) {
                        (Some(m), _) => Body::Memory(m.clone()),
                        (None, Some(l)) => Body::Disk(l),
                        (None, None) => continue,
                    };
                    let redeliveries = e.redeliveries;
                    let stored_at = e.loc;
                    self.out.push(Output::Deliver {
                        sub: a.sub,
                        destination: destination.clone(),
                        seq: a.seq,
                        body,
                        redeliveries,
                        stored_at,
                    });
                }
                for seq in skipped {
                    self.start_dead_letter(id.clone(), seq, super::ack::EXPIRED);
                }
                self.request_page_in(&id, &destination, page_in);
            }
        }
    }

    fn request_page_in(&mut self, id: &BacklogId, destination: &Destination, seqs: Vec<u64>) {
        // Bodies read back for selection stay in memory until delivered or removed;
        // bound them to twice the limit so a consumer that selects nothing cannot pull
        // the whole backlog in.
        // The same per destination with a memoryLimit.
        if self.mem_used > 2 * self.settings.shard_memory_limit_bytes
            || self
                .dest_mem(destination)
                .is_some_and(|m| m.limit.is_some_and(|l| m.used > 2 * l))
        {
            return;
        }
        for seq in seqs {
            if self.paging.values().any(|(i, s)| i == id && *s == seq) {
                continue;
            }
            let Some(loc) = self
                .backlog_ref(id)
                .and_then(|b| b.entries.get(&seq))
                .and_then(|e| e.loc)
            else {
                continue;
            };
            let token = self.token();
            self.paging.insert(token, (id.clone(), seq));
            self.out.push(Output::PageIn {
                destination: destination.clone(),
                seq,
                loc,
                token,
            });
        }
    }

    /// A body read back for a selective consumer or a browser (see [`Output::PageIn`]).
    pub fn paged_in(&mut self, token: u64, msg: Option<MessageRef>) {
        if self.browse_loading.contains_key(&token) {
            self.browse_loaded(token, msg);
            return;
        }
        let Some((id, seq)) = self.paging.remove(&token) else {
            return;
        };
        let mut added = 0;
        if let (Some(msg), Some(b)) = (msg, self.backlog_mut(&id)) {
            if let Some(e) = b.entries.get_mut(&seq) {
                if e.msg.is_none() {
                    e.msg = Some(msg);
                    added = e.size;
                }
            }
        }
        self.mem_used += added;
        if let Some(m) = self.dest_mem_mut(id.destination()) {
            m.used += added;
        }
        self.mark_dirty(id);
    }
}
