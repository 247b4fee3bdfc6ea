//! One shard's broker state: its destinations, their backlogs and consumers, its
//! prepared transactions. Synchronous and deterministic: requests go in, [`Output`]s
//! come out, and the only side effect is appending to the journal through
//! [`JournalSink`]. The async driver (`shard/`) does the waiting.
//!
//! Every change that must survive a crash is a [`Record`]: a live request journals the
//! record and then applies it with [`ShardCore::apply`], the same function recovery
//! uses on the records it replays (and that a slave will use on shipped records).
//!
//! This file holds the state and the request dispatch; each concern is one file of
//! `impl ShardCore`:
//!
//! * `apply`     — the one path from a record to state (live, recovery, slave).
//! * `send`      — publishing: enqueue records, topic fan-out, memory and flow control.
//! * `subscribe` — consumers attaching and detaching, connections closing.
//! * `browse`    — queue browsers: a snapshot of a queue streamed without changing it.
//! * `ack`       — acknowledgements, NACKs, expiry, moves to the dead-letter queue.
//! * `tx`        — commit, prepare, resolve, outcomes, in-doubt recovery.
//! * `dispatch`  — handing ready messages to consumers, reading bodies back (page-in).
//! * `reclaim`   — segment liveness pins and relocation of live records.
//! * `stats`     — per-destination counters and depth for the status endpoint.
//! * `admin`     — purging and deleting queues (the status endpoint's `/admin/*`).
//! * `wildcard_subs` — subscriptions to a pattern (`PRICE.>`): a part on each matching
//!   destination of the shard, one shared credit.
//! * `schedule`  — scheduled delivery: jobs journaled, fired, relocated.

mod ack;
mod admin;
mod apply;
mod browse;
mod dispatch;
mod reclaim;
mod schedule;
mod send;
mod stats;
mod subscribe;
mod tx;
mod wildcard_subs;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use super::backlog::{Backlog, EntryState};
use super::destination::{DestKind, Destination};
use super::message::{Message, MessageRef};
use super::ops::{
    AckMode, BrokerError, ConnId, DurableName, GlobalTxId, Reply, Request, ShardId, SubKey,
};
use super::producer_audit::ProducerAudit;
use super::record::Record;
use super::selector::Selector;
use super::settings::BrokerSettings;
use super::virtual_topic::{self, VirtualTopicIndex, VirtualTopicRule};
use crate::metrics::{Limit, LimitStats};
use crate::store::{Location, Position};

/// Where the core appends records. `append` never waits: it returns where the record
/// lives and a ticket (a journal position) that becomes durable later.
pub trait JournalSink {
    fn append(&mut self, payload: &[u8]) -> Result<(Location, Position), BrokerError>;
    /// The ticket of everything appended so far.
    fn end(&self) -> Position;
    /// A change that is not journaled but that a slave should hold in memory: a
    /// non-persistent message stored on a queue or for a durable subscription, and its
    /// removal. `payload` is an encoded [`Record`], applied on the slave with no
    /// location. No-op unless a slave is attached.
    fn volatile(&mut self, _payload: &[u8]) {}
    /// Why the journal cannot take new persistent messages now (its disk is full),
    /// while it cannot: sends are refused rather than piled up in memory.
    fn paused(&self) -> Option<String> {
        None
    }
}

/// A message body: in memory, or only in the journal (read it back before use).
#[derive(Clone, Debug)]
pub enum Body {
    Memory(MessageRef),
    Disk(Location),
}

/// What the driver must do after a call into the core.
#[derive(Debug)]
pub enum Output {
    /// Complete `reply`, once the journal is durable up to `durable_at` if given.
    Reply {
        reply: Reply,
        durable_at: Option<Position>,
        result: Result<(), BrokerError>,
    },
    /// Deliver message `seq` of `destination` to consumer `sub`.
    Deliver {
        sub: SubKey,
        destination: Destination,
        seq: u64,
        body: Body,
        redeliveries: u32,
        /// Where the message's record lives when it is journaled. The driver holds the
        /// delivery until that record is durable (and held by an in-sync slave), in
        /// order with the shard's other deliveries: a consumer never sees a message a
        /// crash or a takeover could still lose, which a failover producer would then
        /// replay and the new master store again (a duplicate without the
        /// redelivered flag).
        stored_at: Option<Location>,
    },
    /// Send a dead-letter copy of `body` to `to`'s shard (the dead-letter destination
    /// the original destination's policy names) and report back to this shard with
    /// `token`.
    DeadLetter {
        destination: Destination,
        to: Destination,
        body: Body,
        seq: u64,
        token: u64,
        /// Why, as ActiveMQ's `dlqDeliveryFailureCause` says it.
        reason: &'static str,
    },
    /// The redelivery plugin sends message `seq` of queue `destination` back to it
    /// later: read `body`, then hand it to [`ShardCore::redeliver`] with `token`.
    Redeliver {
        destination: Destination,
        body: Body,
        seq: u64,
        token: u64,
    },
    /// Browser `sub` has had its whole snapshot of `destination`: send it
    /// [`Event::BrowseEnd`](super::ops::Event::BrowseEnd), after the deliveries before it.
    BrowseEnd {
        sub: SubKey,
        destination: Destination,
    },
    /// A request for another shard (or this one).
    Post { shard: ShardId, request: Request },
    /// Read message `seq` back from the journal at `loc` and hand it to
    /// [`ShardCore::paged_in`] with `token`: a selective consumer needs its headers.
    PageIn {
        destination: Destination,
        seq: u64,
        loc: Location,
        token: u64,
    },
}

/// Which backlog a consumer (or a pending move) is attached to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum BacklogId {
    Queue(Destination),
    Durable(Destination, DurableName),
    TopicSub(Destination, SubKey),
}

impl BacklogId {
    /// The backlog an `Ack` record names: a queue's, or a durable subscription's.
    fn of_ack(destination: &Destination, durable: Option<&DurableName>) -> BacklogId {
        match durable {
            Some(n) => BacklogId::Durable(destination.clone(), n.clone()),
            None => BacklogId::Queue(destination.clone()),
        }
    }

    /// The queue or topic the backlog belongs to.
    fn destination(&self) -> &Destination {
        match self {
            BacklogId::Queue(d) | BacklogId::Durable(d, _) | BacklogId::TopicSub(d, _) => d,
        }
    }
}

struct Queue {
    backlog: Backlog,
    next_seq: u64,
    /// Temporary queues belong to a connection and die with it.
    temp_owner: Option<ConnId>,
    counters: stats::DestCounters,
    /// The `CreateQueue` record that keeps this queue across restarts (a virtual-topic
    /// consumer queue); it pins its segment while the queue exists.
    created_at: Option<Location>,
    mem: DestMemory,
}

struct Durable {
    backlog: Backlog,
    selector: Option<String>,
    /// `selector`, parsed: which published messages this subscription stores.
    parsed: Option<Arc<Selector>>,
    active: Option<SubKey>,
    /// The `Durable` record that created it (pins its segment).
    loc: Option<Location>,
}

struct Topic {
    next_seq: u64,
    durables: BTreeMap<DurableName, Durable>,
    subscribers: HashMap<SubKey, Backlog>,
    temp_owner: Option<ConnId>,
    counters: stats::DestCounters,
    /// Every subscription's backlog together (durable and not), as ActiveMQ counts a
    /// topic's memory per destination.
    mem: DestMemory,
}

/// Bytes of message bodies one destination holds in memory (its part of
/// `ShardCore::mem_used`), and its policy's `memoryLimit` (see `send.rs`).
#[derive(Clone, Copy, Debug, Default)]
struct DestMemory {
    used: usize,
    limit: Option<usize>,
}

impl DestMemory {
    fn of(settings: &BrokerSettings, d: &Destination) -> DestMemory {
        DestMemory {
            used: 0,
            limit: settings
                .policies
                .memory_limit_for(d)
                .map(|l| usize::try_from(l).unwrap_or(usize::MAX)),
        }
    }

    fn has_room(&self, size: usize) -> bool {
        self.limit.is_none_or(|l| self.used + size <= l)
    }

    fn over_limit(&self) -> bool {
        self.limit.is_some_and(|l| self.used > l)
    }
}

struct Prepared {
    /// All operations, persistent or not; only persistent ones were journaled.
    records: Vec<Record>,
    loc: Option<Location>,
}

/// One shard's broker state.
pub struct ShardCore {
    shard: ShardId,
    shard_count: usize,
    settings: Arc<BrokerSettings>,
    queues: HashMap<Destination, Queue>,
    topics: HashMap<Destination, Topic>,
    attached: HashMap<SubKey, BacklogId>,
    /// Wildcard subscriptions (not in `attached`: one has a part on many backlogs).
    wild: wildcard_subs::WildSubs,
    prepared: HashMap<GlobalTxId, Prepared>,
    outcomes: HashMap<GlobalTxId, (bool, Option<Location>)>,
    /// Live records per journal segment (count, payload bytes): a segment with none
    /// may be deleted once every older one is gone.
    live: BTreeMap<u64, (u64, u64)>,
    /// Bytes of message bodies held in memory on this shard.
    mem_used: usize,
    /// Entries with an expiry: while there are none, the periodic sweep is skipped.
    expiring: usize,
    /// Producers held back until memory drops below the limit: the shard's, and that
    /// of the destination they sent to.
    blocked: VecDeque<(Destination, Reply)>,
    /// Dead-letter moves in flight: token -> (backlog, seq).
    moving: HashMap<u64, (BacklogId, u64)>,
    /// Redelivery-plugin moves in flight (their tokens are in `moving` too): token ->
    /// (delay, redelivery count).
    redelivering: HashMap<u64, (i64, u32)>,
    /// Bodies being read back for selective consumers: token -> (backlog, seq).
    paging: HashMap<u64, (BacklogId, u64)>,
    /// Queue browsers on this shard (see `browse.rs`).
    browsers: HashMap<SubKey, browse::Browser>,
    /// Browsers that may be able to make progress at the next drain.
    browse_dirty: Vec<SubKey>,
    /// Bodies being read back for browsers: token -> (browser, seq).
    browse_loading: HashMap<u64, (SubKey, u64)>,
    /// Outcome queries after recovery: token -> transaction.
    querying: HashMap<u64, (GlobalTxId, usize)>,
    next_token: u64,
    dirty: Vec<BacklogId>,
    out: Vec<Output>,
    /// Persistent messages stored, by producer sequence: a failover client's replayed
    /// send of one of them is confirmed, not stored twice.
    audit: ProducerAudit,
    /// This shard's part of the broker-wide destination count (`maxDestinations`).
    destinations: DestinationShare,
    /// This shard's virtual-topic consumer queues in the broker-wide index.
    virtual_topics: VirtualTopicShare,
    /// Scheduled jobs (`schedule.rs`): their schedules and message locations.
    jobs: super::scheduler::Index,
    /// The next job key: one more than any key the journal has named.
    next_job: u64,
    /// This shard's part of the broker-wide count of jobs (`maxScheduledMessages`).
    scheduled: schedule::ScheduledShare,
}

/// What one shard core adds to the broker-wide index of virtual-topic consumer queues
/// (`broker::virtual_topic`). Dropping it takes the core's queues out again: a slave
/// that starts over replaces its whole core.
struct VirtualTopicShare {
    index: Arc<VirtualTopicIndex>,
    /// Tells this core's entries from those of a core that replaces it.
    owner: u64,
}

impl VirtualTopicShare {
    fn created(&self, rules: &[VirtualTopicRule], d: &Destination) {
        let topics = virtual_topic::topics_of(rules, d);
        if !topics.is_empty() {
            tracing::debug!(queue = %d.name, ?topics, "virtual-topic consumer queue");
            self.index.add(&d.name, topics, self.owner);
        }
    }

    fn removed(&self, d: &Destination) {
        if d.kind == DestKind::Queue {
            self.index.remove(&d.name, self.owner);
        }
    }
}

impl Drop for VirtualTopicShare {
    fn drop(&mut self) {
        self.index.forget_owner(self.owner);
    }
}

/// What one shard adds to the broker-wide count of destinations. Dropping it takes
/// the shard's part back: a slave that starts over replaces its whole core.
struct DestinationShare {
    stats: Arc<LimitStats>,
    mine: u64,
}

impl DestinationShare {
    fn created(&mut self) {
        self.mine += 1;
        self.stats.add_destinations(1);
    }

    fn removed(&mut self) {
        debug_assert!(
            self.mine > 0,
            "a destination removed that was never counted"
        );
        self.mine = self.mine.saturating_sub(1);
        self.stats.sub_destinations(1);
    }
}

impl Drop for DestinationShare {
    fn drop(&mut self) {
        self.stats.sub_destinations(self.mine);
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The copy of `msg` that goes to dead-letter destination `to`: same id and body, the
/// original destination kept as a property (ActiveMQ's `originalDestination`), and no
/// expiry (so it does not expire again in the DLQ). A non-persistent message (taken
/// only with `processNonPersistent`) becomes persistent, marked
/// `originalDeliveryMode=NON_PERSISTENT`, as ActiveMQ does.
pub fn dead_letter_copy(msg: &Message, reason: &str, to: &Destination) -> Message {
    let mut copy = msg.clone();
    copy.destination = to.clone();
    copy.expires_ms = 0;
    if !msg.persistent {
        copy.persistent = true;
        copy.headers
            .push(("originalDeliveryMode".into(), "NON_PERSISTENT".into()));
    }
    copy.headers
        .push(("originalDestination".into(), msg.destination.stomp_name()));
    copy.headers
        .push(("dlqDeliveryFailureCause".into(), reason.into()));
    copy
}

impl ShardCore {
    pub fn new(shard: ShardId, shard_count: usize, settings: Arc<BrokerSettings>) -> ShardCore {
        ShardCore {
            shard,
            shard_count,
            settings,
            queues: HashMap::new(),
            topics: HashMap::new(),
            attached: HashMap::new(),
            wild: Default::default(),
            prepared: HashMap::new(),
            outcomes: HashMap::new(),
            live: BTreeMap::new(),
            mem_used: 0,
            expiring: 0,
            blocked: VecDeque::new(),
            moving: HashMap::new(),
            redelivering: HashMap::new(),
            paging: HashMap::new(),
            browsers: HashMap::new(),
            browse_dirty: Vec::new(),
            browse_loading: HashMap::new(),
            querying: HashMap::new(),
            next_token: 1,
            dirty: Vec::new(),
            out: Vec::new(),
            audit: ProducerAudit::default(),
            destinations: DestinationShare {
                stats: Arc::default(),
                mine: 0,
            },
            virtual_topics: VirtualTopicShare {
                index: Arc::default(),
                owner: virtual_topic::new_owner(),
            },
            jobs: Default::default(),
            next_job: 1,
            scheduled: schedule::ScheduledShare {
                stats: Arc::default(),
                mine: 0,
            },
        }
    }

    /// Reports this shard's virtual-topic consumer queues to the broker-wide `index`
    /// (the node's registries) instead of a private one. Call before anything is
    /// applied.
    pub fn index_virtual_topics_in(&mut self, index: Arc<VirtualTopicIndex>) {
        assert!(self.queues.is_empty(), "queues indexed elsewhere already");
        self.virtual_topics = VirtualTopicShare {
            index,
            owner: virtual_topic::new_owner(),
        };
    }

    /// Counts this shard's destinations in the broker-wide `stats` (the node's
    /// registries) instead of a private counter. Call before anything is applied.
    pub fn count_destinations_in(&mut self, stats: Arc<LimitStats>) {
        assert_eq!(
            self.destinations.mine, 0,
            "destinations counted elsewhere already"
        );
        self.destinations.stats = stats;
    }

    /// Whether a client may make the broker create `d` (ActiveMQ's `maxDestinations`):
    /// refuses (counted) when `d` is new and the broker holds the limit already.
    /// Shards check concurrently, so a race may pass the limit by one per shard.
    fn admit_destination(&self, d: &Destination) -> Result<(), BrokerError> {
        let limit = self.settings.limits.max_destinations;
        if self.exists(d) || self.destinations.stats.destinations() < limit as u64 {
            return Ok(());
        }
        let refusals = self.destinations.stats.refused(Limit::Destinations);
        // Logged at the 1st, 2nd, 4th, 8th... refusal: a client retrying in a loop
        // must not flood the log.
        if refusals.is_power_of_two() {
            tracing::warn!(destination = %d.stomp_name(), limit, refusals, "maxDestinations reached: destination refused");
        }
        Err(BrokerError::TooManyDestinations {
            name: d.stomp_name(),
            limit,
        })
    }

    /// Takes the outputs produced so far.
    pub fn drain(&mut self) -> Vec<Output> {
        self.wildcard_credit_freed();
        self.dispatch_dirty();
        self.browse_dirty_browsers();
        // Every core test checks the memory accounting at each step.
        #[cfg(test)]
        self.assert_memory_accounted();
        std::mem::take(&mut self.out)
    }

    /// After a takeover: the old master may have delivered any stored message (delivery
    /// is not replicated), so each one is flagged redelivered on its next delivery, as
    /// JMS requires of a message that may have been delivered before. Counts as one
    /// redelivery.
    pub fn mark_possibly_delivered(&mut self) {
        let backlogs = self.queues.values_mut().map(|q| &mut q.backlog).chain(
            self.topics
                .values_mut()
                .flat_map(|t| t.durables.values_mut().map(|d| &mut d.backlog)),
        );
        for b in backlogs {
            for e in b.entries.values_mut() {
                e.redeliveries = e.redeliveries.saturating_add(1);
            }
        }
    }

    pub fn mem_used(&self) -> usize {
        self.mem_used
    }

    /// Bytes of bodies destination `d` holds in memory, and its `memoryLimit`.
    pub fn destination_memory(&self, d: &Destination) -> (usize, Option<usize>) {
        let m = self.dest_mem(d).copied().unwrap_or_default();
        (m.used, m.limit)
    }

    fn dest_mem(&self, d: &Destination) -> Option<&DestMemory> {
        if d.kind.is_queue() {
            self.queues.get(d).map(|q| &q.mem)
        } else {
            self.topics.get(d).map(|t| &t.mem)
        }
    }

    fn dest_mem_mut(&mut self, d: &Destination) -> Option<&mut DestMemory> {
        if d.kind.is_queue() {
            self.queues.get_mut(d).map(|q| &mut q.mem)
        } else {
            self.topics.get_mut(d).map(|t| &mut t.mem)
        }
    }

    /// Checks the memory accounting against the backlogs: each destination's count is
    /// the size of the bodies its entries hold, and they add up to the shard's.
    #[cfg(test)]
    pub(crate) fn assert_memory_accounted(&self) {
        let held = |b: &Backlog| -> usize {
            b.entries
                .values()
                .filter(|e| e.msg.is_some())
                .map(|e| e.size)
                .sum()
        };
        let mut total = 0;
        for (d, q) in &self.queues {
            assert_eq!(q.mem.used, held(&q.backlog), "memory of {d:?}");
            total += q.mem.used;
        }
        for (d, t) in &self.topics {
            let sum: usize = t.durables.values().map(|s| held(&s.backlog)).sum::<usize>()
                + t.subscribers.values().map(held).sum::<usize>();
            assert_eq!(t.mem.used, sum, "memory of {d:?}");
            total += t.mem.used;
        }
        assert_eq!(
            total, self.mem_used,
            "destinations' memory adds up to the shard's"
        );
    }

    /// Messages stored on this shard (ready or in flight), for tests and status.
    pub fn depth(&self, destination: &Destination) -> usize {
        match destination.kind {
            DestKind::Queue | DestKind::TempQueue => self
                .queues
                .get(destination)
                .map_or(0, |q| q.backlog.entries.len()),
            _ => self.topics.get(destination).map_or(0, |t| {
                t.durables
                    .values()
                    .map(|d| d.backlog.entries.len())
                    .sum::<usize>()
            }),
        }
    }

    /// Whether the consumer acknowledges automatically (the session acks on write).
    pub fn ack_mode(&self, sub: SubKey) -> Option<AckMode> {
        let id = self.attached.get(&sub)?;
        self.backlog_ref(id)?
            .consumers
            .iter()
            .find(|c| c.key == sub)
            .map(|c| c.ack)
    }

    // ----- live requests ---------------------------------------------------------

    pub fn handle(&mut self, req: Request, sink: &mut dyn JournalSink) {
        match req {
            Request::Send { msg, reply } => self.on_send(msg, reply, sink),
            Request::Subscribe { sub, spec, reply } => self.on_subscribe(sub, spec, reply, sink),
            Request::Browse {
                sub,
                destination,
                selector,
                prefetch,
                reply,
            } => self.on_browse(sub, destination, selector, prefetch, reply),
            Request::Unsubscribe {
                sub,
                destination,
                remove_durable,
                undelivered,
                reply,
            } => self.on_unsubscribe(sub, destination, remove_durable, &undelivered, reply, sink),
            Request::Ack {
                sub,
                destination,
                seqs,
                reply,
            } => self.on_ack(sub, destination, seqs, reply, sink),
            Request::Nack {
                sub,
                destination,
                seqs,
                reply,
            } => self.on_nack(sub, &destination, seqs, reply),
            Request::Commit { ops, reply } => self.on_commit(None, ops, reply, sink),
            Request::Prepare { gtx, ops, reply } => self.on_commit(Some(gtx), ops, reply, sink),
            Request::RecordOutcome { gtx, commit, reply } => {
                self.on_record_outcome(gtx, commit, reply, sink)
            }
            Request::ForgetOutcome { gtx } => self.on_forget_outcome(gtx),
            Request::Resolve { gtx, commit, reply } => self.on_resolve(gtx, commit, reply, sink),
            Request::QueryOutcome { gtx, reply } => self.on_query_outcome(gtx, reply),
            Request::Barrier { reply } => {
                let end = sink.end();
                self.reply(reply, Some(end), Ok(()));
            }
            Request::ConnectionClosed { conn } => self.on_connection_closed(conn),
            Request::SetPrefetch { sub, prefetch } => self.on_set_prefetch(sub, prefetch),
            Request::Written { sub, bytes } => self.on_written(sub, bytes),
            Request::CreateTemp {
                destination,
                owner,
                reply,
            } => {
                let admitted = self.admit_destination(&destination);
                if admitted.is_ok() {
                    self.on_create_temp(destination, owner);
                }
                self.reply(reply, None, admitted);
            }
            Request::DeleteTemp {
                destination,
                owner,
                reply,
            } => {
                self.on_delete_temp(destination, owner);
                self.reply(reply, None, Ok(()));
            }
        }
    }

    /// A completion addressed to this shard (dead-letter moves, outcome queries).
    pub fn on_internal_done(
        &mut self,
        token: u64,
        result: Result<(), BrokerError>,
        sink: &mut dyn JournalSink,
    ) {
        if let Some((id, seq)) = self.moving.remove(&token) {
            if result.is_err() {
                // The dead-letter queue did not take it: keep it here, deliverable.
                if let Some(b) = self.backlog_mut(&id) {
                    if let Some(e) = b.entries.get_mut(&seq) {
                        e.state = EntryState::Ready;
                        b.ready.insert(seq);
                    }
                }
                self.mark_dirty(id);
                return;
            }
            self.remove_for_good(id, seq, sink);
            return;
        }
        if let Some((gtx, remaining)) = self.querying.get_mut(&token) {
            let gtx = *gtx;
            if result.is_ok() {
                self.querying.remove(&token);
                self.resolve_recovered(gtx, true, sink);
            } else {
                *remaining -= 1;
                if *remaining == 0 {
                    self.querying.remove(&token);
                    self.resolve_recovered(gtx, false, sink);
                }
            }
        }
    }

    // ----- helpers shared by the concerns below --------------------------------

    fn token(&mut self) -> u64 {
        let t = self.next_token;
        self.next_token += 1;
        t
    }

    fn reply(
        &mut self,
        reply: Reply,
        durable_at: Option<Position>,
        result: Result<(), BrokerError>,
    ) {
        self.out.push(Output::Reply {
            reply,
            durable_at,
            result,
        });
    }

    fn journal(
        &mut self,
        sink: &mut dyn JournalSink,
        rec: &Record,
    ) -> Result<Location, BrokerError> {
        let payload = rec.encode();
        let (loc, _ticket) = sink.append(&payload)?;
        Ok(loc)
    }

    /// Journals a `CreateQueue` record if `d` is a virtual-topic consumer queue that
    /// does not exist yet, so that it outlives a restart and reaches a slave even
    /// while empty. Returns the ticket to wait for (`None`: nothing journaled).
    fn create_consumer_queue(
        &mut self,
        d: &Destination,
        sink: &mut dyn JournalSink,
    ) -> Result<Option<Position>, BrokerError> {
        if d.kind != DestKind::Queue
            || self.queues.contains_key(d)
            || virtual_topic::topics_of(&self.settings.virtual_topics, d).is_empty()
        {
            return Ok(None);
        }
        let rec = Record::CreateQueue {
            destination: d.clone(),
        };
        let loc = self.journal(sink, &rec)?;
        self.apply(rec, Some(loc));
        Ok(Some(sink.end()))
    }

    fn exists(&self, d: &Destination) -> bool {
        if d.kind.is_queue() {
            self.queues.contains_key(d)
        } else {
            self.topics.contains_key(d)
        }
    }

    fn backlog_mut(&mut self, id: &BacklogId) -> Option<&mut Backlog> {
        match id {
            BacklogId::Queue(d) => self.queues.get_mut(d).map(|q| &mut q.backlog),
            BacklogId::Durable(d, n) => self
                .topics
                .get_mut(d)
                .and_then(|t| t.durables.get_mut(n))
                .map(|s| &mut s.backlog),
            BacklogId::TopicSub(d, k) => self
                .topics
                .get_mut(d)
                .and_then(|t| t.subscribers.get_mut(k)),
        }
    }

    fn backlog_ref(&self, id: &BacklogId) -> Option<&Backlog> {
        match id {
            BacklogId::Queue(d) => self.queues.get(d).map(|q| &q.backlog),
            BacklogId::Durable(d, n) => self
                .topics
                .get(d)
                .and_then(|t| t.durables.get(n))
                .map(|s| &s.backlog),
            BacklogId::TopicSub(d, k) => self.topics.get(d).and_then(|t| t.subscribers.get(k)),
        }
    }

    fn mark_dirty(&mut self, id: BacklogId) {
        if !self.dirty.contains(&id) {
            self.dirty.push(id);
        }
    }

    fn queue_mut(&mut self, d: &Destination) -> &mut Queue {
        if !self.queues.contains_key(d) {
            self.destinations.created();
            self.virtual_topics
                .created(&self.settings.virtual_topics, d);
            self.queues.insert(
                d.clone(),
                Queue {
                    backlog: Backlog::default(),
                    next_seq: 1,
                    temp_owner: None,
                    counters: Default::default(),
                    created_at: None,
                    mem: DestMemory::of(&self.settings, d),
                },
            );
            self.wildcards_on_created(d);
        }
        self.queues
            .get_mut(d)
            .expect("queue exists: inserted above")
    }

    fn topic_mut(&mut self, d: &Destination) -> &mut Topic {
        if !self.topics.contains_key(d) {
            self.destinations.created();
            self.topics.insert(
                d.clone(),
                Topic {
                    next_seq: 1,
                    durables: BTreeMap::new(),
                    subscribers: HashMap::new(),
                    temp_owner: None,
                    counters: Default::default(),
                    mem: DestMemory::of(&self.settings, d),
                },
            );
            self.wildcards_on_created(d);
        }
        self.topics
            .get_mut(d)
            .expect("topic exists: inserted above")
    }

    fn remove_queue(&mut self, d: &Destination) -> Option<Queue> {
        let q = self.queues.remove(d)?;
        self.wildcards_on_removed(d);
        self.destinations.removed();
        self.virtual_topics.removed(d);
        self.unpin(q.created_at);
        Some(q)
    }

    fn remove_topic(&mut self, d: &Destination) -> Option<Topic> {
        let t = self.topics.remove(d)?;
        self.wildcards_on_removed(d);
        self.destinations.removed();
        Some(t)
    }
}

/// A live message to re-journal (see [`ShardCore::entries_in_segment`]).
#[derive(Clone, Debug)]
pub struct Relocation {
    pub destination: Destination,
    pub seq: u64,
    pub body: Body,
    pub redeliveries: u32,
    pub targets: Vec<DurableName>,
}
