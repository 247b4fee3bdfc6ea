//! One shard's broker state: its destinations, their backlogs and consumers, its
//! prepared transactions. Synchronous and deterministic: requests go in, [`Output`]s
//! come out, and the only side effect is appending to the journal through
//! [`JournalSink`]. The async driver (`shard.rs`) does the waiting.
//!
//! Every change that must survive a crash is a [`Record`]: a live request journals the
//! record and then applies it with [`ShardCore::apply`], the same function recovery
//! uses on the records it replays (and that a slave will use on shipped records).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use super::backlog::{Backlog, Consumer, Entry, EntryState, Loc};
use super::destination::{DestKind, Destination};
use super::message::{Message, MessageRef};
use super::ops::{
    AckMode, BrokerError, ConnId, DurableName, GlobalTxId, Reply, ReplyTo, Request, ShardId,
    SubKey, SubscribeSpec, TxOp,
};
use super::record::Record;
use super::settings::BrokerSettings;

/// Where the core appends records. `append` never waits: it returns where the record
/// lives and a ticket (a journal position) that becomes durable later.
pub trait JournalSink {
    fn append(&mut self, payload: &[u8]) -> Result<(Loc, u64), BrokerError>;
    /// The ticket of everything appended so far.
    fn end(&self) -> u64;
}

/// A message body: in memory, or only in the journal (read it back before use).
#[derive(Clone, Debug)]
pub enum Body {
    Memory(MessageRef),
    Disk(Loc),
}

/// What the driver must do after a call into the core.
#[derive(Debug)]
pub enum Output {
    /// Complete `reply`, once the journal is durable up to `durable_at` if given.
    Reply {
        reply: Reply,
        durable_at: Option<u64>,
        result: Result<(), BrokerError>,
    },
    /// Deliver message `seq` of `destination` to consumer `sub`.
    Deliver {
        sub: SubKey,
        destination: Destination,
        seq: u64,
        body: Body,
        redeliveries: u32,
    },
    /// Send a dead-letter copy of `body` to the dead-letter queue's shard and report
    /// back to this shard with `token`.
    DeadLetter { body: Body, seq: u64, token: u64 },
    /// A request for another shard (or this one).
    Post { shard: ShardId, request: Request },
}

/// Which backlog a consumer (or a pending move) is attached to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum BacklogId {
    Queue(Destination),
    Durable(Destination, DurableName),
    TopicSub(Destination, SubKey),
}

struct Queue {
    backlog: Backlog,
    next_seq: u64,
    /// Temporary queues belong to a connection and die with it.
    temp_owner: Option<ConnId>,
}

struct Durable {
    backlog: Backlog,
    selector: Option<String>,
    active: Option<SubKey>,
    /// The `Durable` record that created it (pins its segment).
    loc: Option<Loc>,
}

struct Topic {
    next_seq: u64,
    durables: BTreeMap<DurableName, Durable>,
    subscribers: HashMap<SubKey, Backlog>,
    temp_owner: Option<ConnId>,
}

struct Prepared {
    /// All operations, persistent or not; only persistent ones were journaled.
    records: Vec<Record>,
    loc: Option<Loc>,
}

/// One shard's broker state.
pub struct ShardCore {
    shard: ShardId,
    shard_count: usize,
    settings: Arc<BrokerSettings>,
    queues: HashMap<Destination, Queue>,
    topics: HashMap<Destination, Topic>,
    attached: HashMap<SubKey, BacklogId>,
    prepared: HashMap<GlobalTxId, Prepared>,
    outcomes: HashMap<GlobalTxId, (bool, Option<Loc>)>,
    /// Live records per journal segment (count, payload bytes): a segment with none
    /// may be deleted once every older one is gone.
    live: BTreeMap<u64, (u64, u64)>,
    /// Bytes of message bodies held in memory on this shard.
    mem_used: usize,
    /// Producers held back until memory drops below the limit.
    blocked: VecDeque<Reply>,
    /// Dead-letter moves in flight: token -> (backlog, seq).
    moving: HashMap<u64, (BacklogId, u64)>,
    /// Outcome queries after recovery: token -> transaction.
    querying: HashMap<u64, (GlobalTxId, usize)>,
    next_token: u64,
    dirty: Vec<BacklogId>,
    out: Vec<Output>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The copy of `msg` that goes to the dead-letter queue: same id and body, the
/// original destination kept as a property (ActiveMQ's `originalDestination`), and no
/// expiry (so it does not expire again in the DLQ).
pub fn dead_letter_copy(msg: &Message, reason: &str) -> Message {
    let mut copy = msg.clone();
    copy.destination = Destination::dead_letter_queue();
    copy.expires_ms = 0;
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
            prepared: HashMap::new(),
            outcomes: HashMap::new(),
            live: BTreeMap::new(),
            mem_used: 0,
            blocked: VecDeque::new(),
            moving: HashMap::new(),
            querying: HashMap::new(),
            next_token: 1,
            dirty: Vec::new(),
            out: Vec::new(),
        }
    }

    /// Takes the outputs produced so far.
    pub fn drain(&mut self) -> Vec<Output> {
        self.dispatch_dirty();
        std::mem::take(&mut self.out)
    }

    pub fn mem_used(&self) -> usize {
        self.mem_used
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

    // ----- journal and liveness -------------------------------------------------

    fn journal(&mut self, sink: &mut dyn JournalSink, rec: &Record) -> Result<Loc, BrokerError> {
        let payload = rec.encode();
        let (loc, _ticket) = sink.append(&payload)?;
        Ok(loc)
    }

    fn pin(&mut self, loc: Option<Loc>) {
        if let Some(l) = loc {
            let (count, bytes) = self.live.entry(l.segment).or_insert((0, 0));
            *count += 1;
            *bytes += u64::from(l.len);
        }
    }

    fn unpin(&mut self, loc: Option<Loc>) {
        if let Some(l) = loc {
            if let Some((count, bytes)) = self.live.get_mut(&l.segment) {
                assert!(*count > 0, "unpinning a segment with no live records");
                *count -= 1;
                *bytes = bytes.saturating_sub(u64::from(l.len));
                if *count == 0 {
                    self.live.remove(&l.segment);
                }
            }
        }
    }

    /// Bytes of live records in `segment`.
    pub fn live_bytes(&self, segment: u64) -> u64 {
        self.live.get(&segment).map_or(0, |(_, b)| *b)
    }

    fn reply(&mut self, reply: Reply, durable_at: Option<u64>, result: Result<(), BrokerError>) {
        self.out.push(Output::Reply {
            reply,
            durable_at,
            result,
        });
    }

    /// A new entry for `msg`; its body stays in memory only while there is room for it
    /// (a persistent message can be read back from the journal later).
    fn new_entry(&mut self, msg: &MessageRef, loc: Option<Loc>, redeliveries: u32) -> Entry {
        let size = msg.memory_size();
        let keep = loc.is_none() || self.mem_used + size <= self.settings.shard_memory_limit_bytes;
        if keep {
            self.mem_used += size;
        }
        self.pin(loc);
        Entry {
            msg: keep.then(|| msg.clone()),
            loc,
            size,
            expires_ms: msg.expires_ms,
            persistent: msg.persistent,
            state: EntryState::Ready,
            redeliveries,
            tx_locked: false,
        }
    }

    /// Accounts for an entry leaving its backlog for good.
    fn forget_entry(&mut self, e: &Entry) {
        if e.msg.is_some() {
            self.mem_used = self.mem_used.saturating_sub(e.size);
        }
        self.unpin(e.loc);
    }

    fn over_memory_limit(&self) -> bool {
        self.mem_used > self.settings.shard_memory_limit_bytes
    }

    fn release_blocked(&mut self) {
        while !self.over_memory_limit() {
            let Some(reply) = self.blocked.pop_front() else {
                break;
            };
            self.reply(reply, None, Ok(()));
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

    fn mark_dirty(&mut self, id: BacklogId) {
        if !self.dirty.contains(&id) {
            self.dirty.push(id);
        }
    }

    fn queue_mut(&mut self, d: &Destination) -> &mut Queue {
        self.queues.entry(d.clone()).or_insert_with(|| Queue {
            backlog: Backlog::default(),
            next_seq: 1,
            temp_owner: None,
        })
    }

    fn topic_mut(&mut self, d: &Destination) -> &mut Topic {
        self.topics.entry(d.clone()).or_insert_with(|| Topic {
            next_seq: 1,
            durables: BTreeMap::new(),
            subscribers: HashMap::new(),
            temp_owner: None,
        })
    }

    // ----- apply: the one path from a record to state -----------------------------

    /// Applies a record: from the journal at recovery (`loc` is where it was read),
    /// or just after a live request journaled it (`loc` is where it was appended;
    /// `None` for what is not journaled, such as non-persistent messages).
    pub fn apply(&mut self, rec: Record, loc: Option<Loc>) {
        match rec {
            Record::Enqueue {
                seq,
                redeliveries,
                message,
                targets,
            } => self.apply_enqueue(seq, redeliveries, message, &targets, loc),
            Record::Ack {
                destination,
                durable,
                seqs,
            } => {
                let id = match durable {
                    Some(n) => BacklogId::Durable(destination, n),
                    None => BacklogId::Queue(destination),
                };
                for seq in seqs {
                    let removed = self.backlog_mut(&id).and_then(|b| b.remove(seq));
                    if let Some(e) = removed {
                        self.forget_entry(&e);
                    }
                }
                self.mark_dirty(id);
                self.release_blocked();
            }
            Record::Durable {
                destination,
                name,
                selector,
            } => {
                let exists = self
                    .topics
                    .get(&destination)
                    .is_some_and(|t| t.durables.contains_key(&name));
                if exists {
                    // A relocated copy of the record: move the pin.
                    let old = self.topics.get_mut(&destination).and_then(|t| {
                        t.durables.get_mut(&name).map(|d| {
                            let old = d.loc;
                            d.loc = loc;
                            old
                        })
                    });
                    self.unpin(old.flatten());
                    self.pin(loc);
                } else {
                    self.pin(loc);
                    self.topic_mut(&destination).durables.insert(
                        name,
                        Durable {
                            backlog: Backlog::default(),
                            selector,
                            active: None,
                            loc,
                        },
                    );
                }
            }
            Record::Undurable { destination, name } => {
                let removed = self
                    .topics
                    .get_mut(&destination)
                    .and_then(|t| t.durables.remove(&name));
                if let Some(d) = removed {
                    for e in d.backlog.entries.values() {
                        self.forget_entry(e);
                    }
                    self.unpin(d.loc);
                    if let Some(k) = d.active {
                        self.attached.remove(&k);
                    }
                }
                self.release_blocked();
            }
            Record::Tx(records) => {
                for r in records {
                    self.apply(r, loc);
                }
            }
            Record::Prepare { gtx, records } => {
                for r in &records {
                    match r {
                        Record::Enqueue { seq, message, .. } => {
                            let d = &message.destination;
                            if d.kind.is_queue() {
                                let q = self.queue_mut(d);
                                q.next_seq = q.next_seq.max(seq + 1);
                            } else {
                                let t = self.topic_mut(d);
                                t.next_seq = t.next_seq.max(seq + 1);
                            }
                        }
                        Record::Ack {
                            destination,
                            durable,
                            seqs,
                        } => {
                            let id = match durable {
                                Some(n) => BacklogId::Durable(destination.clone(), n.clone()),
                                None => BacklogId::Queue(destination.clone()),
                            };
                            if let Some(b) = self.backlog_mut(&id) {
                                for s in seqs {
                                    if let Some(e) = b.entries.get_mut(s) {
                                        e.tx_locked = true;
                                    }
                                }
                            }
                        }
                        _ => {}
                    }
                }
                self.pin(loc);
                self.prepared.insert(gtx, Prepared { records, loc });
            }
            Record::Outcome { gtx, commit } => {
                self.pin(loc);
                self.outcomes.insert(gtx, (commit, loc));
            }
            Record::Resolved { gtx, commit } => {
                if let Some(p) = self.prepared.remove(&gtx) {
                    self.unpin(p.loc);
                    if commit {
                        for r in p.records {
                            if let Record::Enqueue { ref message, .. } = r {
                                if !message.destination.kind.is_queue() {
                                    self.fan_out_to_subscribers(&r);
                                }
                            }
                            self.apply(r, p.loc);
                        }
                    } else {
                        self.unlock_acks(&p.records);
                    }
                }
            }
            Record::Purge { destination } => {
                let entries: Vec<Entry> = match self.queues.get_mut(&destination) {
                    Some(q) => {
                        let seqs: Vec<u64> = q.backlog.entries.keys().copied().collect();
                        seqs.into_iter()
                            .filter_map(|s| q.backlog.remove(s))
                            .collect()
                    }
                    None => Vec::new(),
                };
                for e in &entries {
                    self.forget_entry(e);
                }
                self.release_blocked();
            }
        }
    }

    fn apply_enqueue(
        &mut self,
        seq: u64,
        redeliveries: u32,
        message: MessageRef,
        targets: &[DurableName],
        loc: Option<Loc>,
    ) {
        let d = message.destination.clone();
        if d.kind.is_queue() {
            let q = self.queue_mut(&d);
            q.next_seq = q.next_seq.max(seq + 1);
            if let Some(e) = q.backlog.entries.get_mut(&seq) {
                // A relocated copy of a message we hold: it now lives at `loc`.
                let old = e.loc;
                e.loc = loc;
                self.unpin(old);
                self.pin(loc);
                return;
            }
            let entry = self.new_entry(&message, loc, redeliveries);
            self.queue_mut(&d).backlog.insert(seq, entry);
            self.mark_dirty(BacklogId::Queue(d));
        } else {
            let t = self.topic_mut(&d);
            t.next_seq = t.next_seq.max(seq + 1);
            for name in targets {
                let state = self
                    .topics
                    .get(&d)
                    .and_then(|t| t.durables.get(name))
                    .map(|s| s.backlog.entries.get(&seq).map(|e| e.loc));
                match state {
                    None => {} // subscription removed since
                    Some(Some(old)) => {
                        if let Some(e) = self
                            .topics
                            .get_mut(&d)
                            .and_then(|t| t.durables.get_mut(name))
                            .and_then(|s| s.backlog.entries.get_mut(&seq))
                        {
                            e.loc = loc;
                        }
                        self.unpin(old);
                        self.pin(loc);
                    }
                    Some(None) => {
                        let entry = self.new_entry(&message, loc, redeliveries);
                        if let Some(s) = self
                            .topics
                            .get_mut(&d)
                            .and_then(|t| t.durables.get_mut(name))
                        {
                            s.backlog.insert(seq, entry);
                        }
                        self.mark_dirty(BacklogId::Durable(d.clone(), name.clone()));
                    }
                }
            }
        }
    }

    /// Non-durable subscribers see a topic message only while they are connected:
    /// never journaled, never recovered.
    fn fan_out_to_subscribers(&mut self, rec: &Record) {
        let Record::Enqueue { seq, message, .. } = rec else {
            return;
        };
        let d = &message.destination;
        let keys: Vec<SubKey> = match self.topics.get(d) {
            Some(t) => t.subscribers.keys().copied().collect(),
            None => return,
        };
        for k in keys {
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

    fn unlock_acks(&mut self, records: &[Record]) {
        for r in records {
            if let Record::Ack {
                destination,
                durable,
                seqs,
            } = r
            {
                let id = match durable {
                    Some(n) => BacklogId::Durable(destination.clone(), n.clone()),
                    None => BacklogId::Queue(destination.clone()),
                };
                let attached: Vec<SubKey> = self.attached.keys().copied().collect();
                if let Some(b) = self.backlog_mut(&id) {
                    for s in seqs {
                        if let Some(e) = b.entries.get_mut(s) {
                            e.tx_locked = false;
                            // Its consumer left while the transaction was pending.
                            if let EntryState::Delivered(k) = e.state {
                                if !attached.contains(&k) {
                                    e.state = EntryState::Ready;
                                    e.redeliveries += 1;
                                    b.ready.insert(*s);
                                }
                            }
                        }
                    }
                }
                self.mark_dirty(id);
            }
        }
    }

    /// After replaying the journal: asks every shard how prepared transactions ended
    /// (the coordinator's journal holds the outcome); an unknown outcome aborts.
    pub fn finish_recovery(&mut self) {
        let gtxs: Vec<GlobalTxId> = self.prepared.keys().copied().collect();
        for gtx in gtxs {
            let token = self.token();
            self.querying.insert(token, (gtx, self.shard_count));
            for shard in 0..self.shard_count {
                self.out.push(Output::Post {
                    shard,
                    request: Request::QueryOutcome {
                        gtx,
                        reply: Reply {
                            to: ReplyTo::Shard(self.shard),
                            token,
                        },
                    },
                });
            }
        }
    }

    fn token(&mut self) -> u64 {
        let t = self.next_token;
        self.next_token += 1;
        t
    }

    // ----- live requests ---------------------------------------------------------

    pub fn handle(&mut self, req: Request, sink: &mut dyn JournalSink) {
        match req {
            Request::Send { msg, reply } => self.on_send(msg, reply, sink),
            Request::Subscribe { sub, spec, reply } => self.on_subscribe(sub, spec, reply, sink),
            Request::Unsubscribe {
                sub,
                destination,
                remove_durable,
                reply,
            } => self.on_unsubscribe(sub, destination, remove_durable, reply, sink),
            Request::Ack {
                sub,
                destination,
                seqs,
                reply,
            } => self.on_ack(sub, destination, seqs, reply, sink),
            Request::Nack {
                sub,
                destination: _,
                seqs,
                reply,
            } => {
                if let Some(id) = self.attached.get(&sub).cloned() {
                    for seq in seqs {
                        let delivered = self
                            .backlog_mut(&id)
                            .and_then(|b| b.entries.get(&seq))
                            .is_some_and(|e| e.state == EntryState::Delivered(sub));
                        if delivered {
                            self.start_dead_letter(id.clone(), seq, "Delivery[NACK]");
                        }
                    }
                    self.mark_dirty(id);
                }
                if let Some(r) = reply {
                    self.reply(r, None, Ok(()));
                }
            }
            Request::Commit { ops, reply } => self.on_commit(None, ops, reply, sink),
            Request::Prepare { gtx, ops, reply } => self.on_commit(Some(gtx), ops, reply, sink),
            Request::RecordOutcome { gtx, commit, reply } => {
                let rec = Record::Outcome { gtx, commit };
                match self.journal(sink, &rec) {
                    Ok(loc) => {
                        self.apply(rec, Some(loc));
                        self.reply(reply, Some(sink.end()), Ok(()));
                    }
                    Err(e) => self.reply(reply, None, Err(e)),
                }
            }
            Request::ForgetOutcome { gtx } => {
                if let Some((_, loc)) = self.outcomes.remove(&gtx) {
                    self.unpin(loc);
                }
            }
            Request::Resolve { gtx, commit, reply } => self.on_resolve(gtx, commit, reply, sink),
            Request::QueryOutcome { gtx, reply } => {
                let result = match self.outcomes.get(&gtx) {
                    Some((true, _)) => Ok(()),
                    _ => Err(BrokerError::UnknownTransaction(format!("{gtx:x}"))),
                };
                self.reply(reply, None, result);
            }
            Request::Barrier { reply } => {
                let end = sink.end();
                self.reply(reply, Some(end), Ok(()));
            }
            Request::ConnectionClosed { conn } => self.on_connection_closed(conn),
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

    fn resolve_recovered(&mut self, gtx: GlobalTxId, commit: bool, sink: &mut dyn JournalSink) {
        tracing::info!(gtx = %format!("{gtx:x}"), commit, "resolving a transaction prepared before the restart");
        let rec = Record::Resolved { gtx, commit };
        match self.journal(sink, &rec) {
            Ok(loc) => self.apply(rec, Some(loc)),
            Err(e) => tracing::error!(error = %e, "cannot journal a transaction resolution"),
        }
    }

    /// Removes an entry (acknowledged, expired or dead-lettered), journaling the
    /// removal if the entry was journaled.
    fn remove_for_good(&mut self, id: BacklogId, seq: u64, sink: &mut dyn JournalSink) {
        let persistent = self
            .backlog_mut(&id)
            .and_then(|b| b.entries.get(&seq))
            .is_some_and(|e| e.loc.is_some());
        if persistent {
            let rec = match &id {
                BacklogId::Queue(d) => Record::Ack {
                    destination: d.clone(),
                    durable: None,
                    seqs: vec![seq],
                },
                BacklogId::Durable(d, n) => Record::Ack {
                    destination: d.clone(),
                    durable: Some(n.clone()),
                    seqs: vec![seq],
                },
                BacklogId::TopicSub(..) => unreachable!("subscriber entries are never journaled"),
            };
            if let Err(e) = self.journal(sink, &rec) {
                tracing::error!(error = %e, "cannot journal a removal");
            }
        }
        let removed = self.backlog_mut(&id).and_then(|b| b.remove(seq));
        if let Some(e) = removed {
            self.forget_entry(&e);
        }
        self.mark_dirty(id);
        self.release_blocked();
    }

    fn start_dead_letter(&mut self, id: BacklogId, seq: u64, reason: &str) {
        let Some(b) = self.backlog_mut(&id) else {
            return;
        };
        let Some(e) = b.entries.get(&seq) else { return };
        let body = match (&e.msg, e.loc) {
            (Some(m), _) => Body::Memory(m.clone()),
            (None, Some(l)) => Body::Disk(l),
            (None, None) => return,
        };
        let persistent = e.persistent;
        b.release(seq);
        if !persistent || matches!(id, BacklogId::TopicSub(..)) {
            // ActiveMQ drops non-persistent messages rather than dead-lettering them.
            tracing::debug!(seq, reason, "dropping a non-persistent message");
            let removed = self.backlog_mut(&id).and_then(|b| b.remove(seq));
            if let Some(e) = removed {
                self.forget_entry(&e);
            }
            self.release_blocked();
            return;
        }
        let token = self.token();
        self.moving.insert(token, (id, seq));
        self.out.push(Output::DeadLetter { body, seq, token });
    }

    fn on_send(&mut self, msg: MessageRef, reply: Reply, sink: &mut dyn JournalSink) {
        if msg.is_expired(now_ms()) {
            // ActiveMQ discards a message that expired before it was stored.
            self.reply(reply, None, Ok(()));
            return;
        }
        let d = msg.destination.clone();
        if d.kind.is_temporary() && !self.exists(&d) {
            self.reply(
                reply,
                None,
                Err(BrokerError::NoSuchTempDestination(d.stomp_name())),
            );
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
        if !d.kind.is_queue() {
            self.fan_out_to_subscribers(&rec);
        }
        self.apply(rec, loc);
        if journaled {
            self.reply(reply, Some(sink.end()), Ok(()));
        } else if self.over_memory_limit() {
            // Producer flow control: the sender's window stays consumed until
            // consumers make room.
            self.blocked.push_back(reply);
        } else {
            self.reply(reply, None, Ok(()));
        }
    }

    fn exists(&self, d: &Destination) -> bool {
        if d.kind.is_queue() {
            self.queues.contains_key(d)
        } else {
            self.topics.contains_key(d)
        }
    }

    /// The record for a new message: its sequence number, and for a topic the durable
    /// subscriptions it goes to.
    fn enqueue_record(&mut self, msg: &MessageRef) -> Record {
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
                targets: t.durables.keys().cloned().collect(),
            }
        }
    }

    /// Journaled: persistent messages to a non-temporary queue, or to a topic with
    /// durable subscriptions; and every acknowledgement of such a message.
    fn is_journaled(&self, rec: &Record) -> bool {
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

    fn on_subscribe(
        &mut self,
        sub: SubKey,
        spec: SubscribeSpec,
        reply: Reply,
        sink: &mut dyn JournalSink,
    ) {
        let d = spec.destination.clone();
        let consumer = Consumer {
            key: sub,
            prefetch: spec.prefetch.max(1),
            in_flight: 0,
            ack: spec.ack,
        };
        if self.attached.contains_key(&sub) {
            self.reply(reply, None, Ok(()));
            return;
        }
        if d.kind.is_queue() {
            let q = self.queue_mut(&d);
            if d.kind.is_temporary() && q.temp_owner.is_none() {
                q.temp_owner = Some(spec.temp_owner.unwrap_or(sub.conn));
            }
            q.backlog.add_consumer(consumer);
            self.attached.insert(sub, BacklogId::Queue(d.clone()));
            self.mark_dirty(BacklogId::Queue(d));
            self.reply(reply, None, Ok(()));
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

    /// Detaches a consumer; its unacknowledged deliveries go back, flagged.
    fn detach(&mut self, sub: SubKey) {
        let Some(id) = self.attached.remove(&sub) else {
            return;
        };
        match &id {
            BacklogId::TopicSub(d, k) => {
                let removed = self.topics.get_mut(d).and_then(|t| t.subscribers.remove(k));
                if let Some(b) = removed {
                    for e in b.entries.values() {
                        self.forget_entry(e);
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
            .map(|b| b.remove_consumer(sub))
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

    fn on_unsubscribe(
        &mut self,
        sub: SubKey,
        destination: Destination,
        remove_durable: Option<DurableName>,
        reply: Reply,
        sink: &mut dyn JournalSink,
    ) {
        self.detach(sub);
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

    /// The acknowledgement record for `seqs` delivered to `sub`, keeping only the
    /// deliveries that really are that consumer's; `None` if there are none.
    fn ack_record(&mut self, sub: SubKey, seqs: &[u64]) -> Option<(Record, bool)> {
        let id = self.attached.get(&sub)?.clone();
        let b = self.backlog_mut(&id)?;
        let mut valid = Vec::with_capacity(seqs.len());
        let mut journaled = false;
        for s in seqs {
            if let Some(e) = b.entries.get(s) {
                if e.state == EntryState::Delivered(sub) && !e.tx_locked {
                    journaled |= e.loc.is_some();
                    valid.push(*s);
                }
            }
        }
        if valid.is_empty() {
            return None;
        }
        let rec = match id {
            BacklogId::Queue(d) => Record::Ack {
                destination: d,
                durable: None,
                seqs: valid,
            },
            BacklogId::Durable(d, n) => Record::Ack {
                destination: d,
                durable: Some(n),
                seqs: valid,
            },
            BacklogId::TopicSub(d, _) => {
                // Not journaled; removed directly from the subscriber's backlog.
                let removed: Vec<Entry> =
                    match self.backlog_mut(&BacklogId::TopicSub(d.clone(), sub)) {
                        Some(b) => valid
                            .iter()
                            .filter_map(|s| b.take_delivered(*s, sub))
                            .collect(),
                        None => Vec::new(),
                    };
                for e in &removed {
                    self.forget_entry(e);
                }
                self.mark_dirty(BacklogId::TopicSub(d, sub));
                self.release_blocked();
                return None;
            }
        };
        Some((rec, journaled))
    }

    fn on_ack(
        &mut self,
        sub: SubKey,
        _destination: Destination,
        seqs: Vec<u64>,
        reply: Option<Reply>,
        sink: &mut dyn JournalSink,
    ) {
        let mut durable_at = None;
        let mut result = Ok(());
        if let Some((rec, journaled)) = self.ack_record(sub, &seqs) {
            let loc = if journaled {
                match self.journal(sink, &rec) {
                    Ok(loc) => {
                        durable_at = Some(sink.end());
                        Some(loc)
                    }
                    Err(e) => {
                        result = Err(e);
                        None
                    }
                }
            } else {
                None
            };
            if result.is_ok() {
                self.apply(rec, loc);
            }
        }
        if let Some(r) = reply {
            self.reply(r, durable_at, result);
        }
    }

    /// COMMIT of a one-shard transaction (`gtx` = None): one `Tx` record, applied at
    /// once. PREPARE (`gtx` = Some): one `Prepare` record, held until resolved.
    fn on_commit(
        &mut self,
        gtx: Option<GlobalTxId>,
        ops: Vec<TxOp>,
        reply: Reply,
        sink: &mut dyn JournalSink,
    ) {
        let now = now_ms();
        let mut records = Vec::with_capacity(ops.len());
        for op in ops {
            match op {
                TxOp::Send(msg) => {
                    if msg.is_expired(now) {
                        continue;
                    }
                    let d = &msg.destination;
                    if d.kind.is_temporary() && !self.exists(d) {
                        continue;
                    }
                    records.push(self.enqueue_record(&msg));
                }
                TxOp::Ack { sub, seqs, .. } => {
                    if let Some((rec, _)) = self.ack_record(sub, &seqs) {
                        records.push(rec);
                    }
                }
            }
        }
        let persistent: Vec<Record> = records
            .iter()
            .filter(|r| match r {
                Record::Enqueue { .. } => self.is_journaled(r),
                Record::Ack {
                    destination,
                    durable,
                    seqs,
                } => {
                    let id = match durable {
                        Some(n) => BacklogId::Durable(destination.clone(), n.clone()),
                        None => BacklogId::Queue(destination.clone()),
                    };
                    match self.backlog_ref(&id) {
                        Some(b) => seqs
                            .iter()
                            .any(|s| b.entries.get(s).is_some_and(|e| e.loc.is_some())),
                        None => false,
                    }
                }
                _ => false,
            })
            .cloned()
            .collect();
        let mut loc = None;
        let mut durable_at = None;
        if !persistent.is_empty() || gtx.is_some() {
            let rec = match gtx {
                None => Record::Tx(persistent),
                Some(gtx) => Record::Prepare {
                    gtx,
                    records: persistent,
                },
            };
            match self.journal(sink, &rec) {
                Ok(l) => {
                    loc = Some(l);
                    durable_at = Some(sink.end());
                }
                Err(e) => {
                    self.reply(reply, None, Err(e));
                    return;
                }
            }
        }
        match gtx {
            None => {
                for r in records {
                    if let Record::Enqueue { ref message, .. } = r {
                        if !message.destination.kind.is_queue() {
                            self.fan_out_to_subscribers(&r);
                        }
                    }
                    let journaled = self.is_journaled(&r);
                    self.apply(r, if journaled { loc } else { None });
                }
            }
            Some(gtx) => {
                // Hold every operation (journaled or not) until the outcome.
                self.apply(Record::Prepare { gtx, records }, loc);
            }
        }
        self.reply(reply, durable_at, Ok(()));
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

    fn on_resolve(
        &mut self,
        gtx: GlobalTxId,
        commit: bool,
        reply: Reply,
        sink: &mut dyn JournalSink,
    ) {
        if !self.prepared.contains_key(&gtx) {
            self.reply(reply, None, Ok(()));
            return;
        }
        let rec = Record::Resolved { gtx, commit };
        match self.journal(sink, &rec) {
            Ok(loc) => {
                self.apply(rec, Some(loc));
                self.reply(reply, Some(sink.end()), Ok(()));
            }
            Err(e) => self.reply(reply, None, Err(e)),
        }
    }

    fn on_connection_closed(&mut self, conn: ConnId) {
        let subs: Vec<SubKey> = self
            .attached
            .keys()
            .filter(|k| k.conn == conn)
            .copied()
            .collect();
        for sub in subs {
            self.detach(sub);
        }
        let temp_queues: Vec<Destination> = self
            .queues
            .iter()
            .filter(|(_, q)| q.temp_owner == Some(conn))
            .map(|(d, _)| d.clone())
            .collect();
        for d in temp_queues {
            if let Some(q) = self.queues.remove(&d) {
                for c in &q.backlog.consumers {
                    self.attached.remove(&c.key);
                }
                for e in q.backlog.entries.values() {
                    self.forget_entry(e);
                }
            }
        }
        let temp_topics: Vec<Destination> = self
            .topics
            .iter()
            .filter(|(_, t)| t.temp_owner == Some(conn))
            .map(|(d, _)| d.clone())
            .collect();
        for d in temp_topics {
            if let Some(t) = self.topics.remove(&d) {
                for (k, b) in &t.subscribers {
                    self.attached.remove(k);
                    for e in b.entries.values() {
                        self.forget_entry(e);
                    }
                }
            }
        }
        self.release_blocked();
    }

    /// Periodic work: expire messages that sat too long.
    pub fn tick(&mut self, now: u64, sink: &mut dyn JournalSink) {
        let mut expired = Vec::new();
        for (d, q) in &self.queues {
            for seq in &q.backlog.ready {
                if let Some(e) = q.backlog.entries.get(seq) {
                    if e.expires_ms != 0 && e.expires_ms <= now {
                        expired.push((BacklogId::Queue(d.clone()), *seq));
                    }
                }
            }
        }
        for (d, t) in &self.topics {
            for (n, s) in &t.durables {
                for seq in &s.backlog.ready {
                    if let Some(e) = s.backlog.entries.get(seq) {
                        if e.expires_ms != 0 && e.expires_ms <= now {
                            expired.push((BacklogId::Durable(d.clone(), n.clone()), *seq));
                        }
                    }
                }
            }
        }
        for (id, seq) in expired {
            self.expire(id, seq, sink);
        }
    }

    /// ActiveMQ sends expired persistent messages to the DLQ and drops the others.
    fn expire(&mut self, id: BacklogId, seq: u64, _sink: &mut dyn JournalSink) {
        self.start_dead_letter(id, seq, "Expired");
    }

    fn dispatch_dirty(&mut self) {
        let now = now_ms();
        let mut rounds = 0;
        while !self.dirty.is_empty() && rounds < 4 {
            rounds += 1;
            let dirty = std::mem::take(&mut self.dirty);
            for id in dirty {
                let mut skipped = Vec::new();
                let (assignments, destination) = {
                    let Some(b) = self.backlog_mut(&id) else {
                        continue;
                    };
                    let a = b.dispatch(|e| e.expires_ms != 0 && e.expires_ms <= now, &mut skipped);
                    let d = match &id {
                        BacklogId::Queue(d)
                        | BacklogId::Durable(d, _)
                        | BacklogId::TopicSub(d, _) => d.clone(),
                    };
                    (a, d)
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
                    self.out.push(Output::Deliver {
                        sub: a.sub,
                        destination: destination.clone(),
                        seq: a.seq,
                        body,
                        redeliveries,
                    });
                }
                for seq in skipped {
                    self.start_dead_letter(id.clone(), seq, "Expired");
                }
            }
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

    /// Live entries whose record is in `segment`, for relocation before the segment
    /// is deleted: (destination, seq, body, redeliveries, durable targets).
    pub fn entries_in_segment(&self, segment: u64) -> Vec<Relocation> {
        let mut out: Vec<Relocation> = Vec::new();
        for (d, q) in &self.queues {
            for (seq, e) in &q.backlog.entries {
                if let Some(l) = e.loc.filter(|l| l.segment == segment) {
                    out.push(Relocation {
                        destination: d.clone(),
                        seq: *seq,
                        body: e.msg.clone().map_or(Body::Disk(l), Body::Memory),
                        redeliveries: e.redeliveries,
                        targets: Vec::new(),
                    });
                }
            }
        }
        for (d, t) in &self.topics {
            let mut by_seq: BTreeMap<u64, Relocation> = BTreeMap::new();
            for (n, s) in &t.durables {
                for (seq, e) in &s.backlog.entries {
                    if let Some(l) = e.loc.filter(|l| l.segment == segment) {
                        by_seq
                            .entry(*seq)
                            .or_insert_with(|| Relocation {
                                destination: d.clone(),
                                seq: *seq,
                                body: e.msg.clone().map_or(Body::Disk(l), Body::Memory),
                                redeliveries: e.redeliveries,
                                targets: Vec::new(),
                            })
                            .targets
                            .push(n.clone());
                    }
                }
            }
            out.extend(by_seq.into_values());
        }
        out
    }

    /// Durable subscription definitions whose record is in `segment`: re-journal them.
    pub fn relocate_durables(&mut self, segment: u64, sink: &mut dyn JournalSink) {
        let mut recs = Vec::new();
        for (d, t) in &self.topics {
            for (n, s) in &t.durables {
                if s.loc.is_some_and(|l| l.segment == segment) {
                    recs.push(Record::Durable {
                        destination: d.clone(),
                        name: n.clone(),
                        selector: s.selector.clone(),
                    });
                }
            }
        }
        for rec in recs {
            match self.journal(sink, &rec) {
                Ok(loc) => self.apply(rec, Some(loc)),
                Err(e) => tracing::error!(error = %e, "cannot relocate a durable subscription"),
            }
        }
    }

    /// Re-journals a live message (read back if needed) so its old segment can go.
    /// Skipped if it was acknowledged meanwhile.
    pub fn relocate(&mut self, r: Relocation, msg: MessageRef, sink: &mut dyn JournalSink) {
        let still_live = if r.targets.is_empty() {
            self.queues
                .get(&r.destination)
                .is_some_and(|q| q.backlog.entries.contains_key(&r.seq))
        } else {
            true
        };
        if !still_live {
            return;
        }
        let targets: Vec<DurableName> = r
            .targets
            .into_iter()
            .filter(|n| {
                self.topics
                    .get(&r.destination)
                    .and_then(|t| t.durables.get(n))
                    .is_some_and(|s| s.backlog.entries.contains_key(&r.seq))
            })
            .collect();
        if !r.destination.kind.is_queue() && targets.is_empty() {
            return;
        }
        let rec = Record::Enqueue {
            seq: r.seq,
            redeliveries: r.redeliveries,
            message: msg,
            targets,
        };
        match self.journal(sink, &rec) {
            Ok(loc) => self.apply(rec, Some(loc)),
            Err(e) => tracing::error!(error = %e, "cannot relocate a message"),
        }
    }

    /// Whether anything still pins `segment` (prepared transactions, outcomes).
    pub fn is_pinned(&self, segment: u64) -> bool {
        self.live.get(&segment).is_some_and(|(n, _)| *n > 0)
    }

    /// Gives up the pins of transaction outcomes read at recovery, once every shard
    /// has had time to ask about them.
    pub fn forget_recovered_outcomes(&mut self) {
        let gtxs: Vec<GlobalTxId> = self.outcomes.keys().copied().collect();
        for gtx in gtxs {
            if let Some((_, loc)) = self.outcomes.remove(&gtx) {
                self.unpin(loc);
            }
        }
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
