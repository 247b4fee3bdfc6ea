//! The shard driver: owns one [`ShardCore`] and its journal on one executor, feeds it
//! the requests and events that arrive over the mesh, and carries out what it asks
//! (wait for durability before replying, read paged-out bodies back, move messages to
//! the dead-letter queue, reclaim journal segments).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::metrics::{JournalCounters, ShardStats};
use crate::rt;
use crate::rt::channel::{MeshEnds, Oneshot};
use crate::store::{Journal, JournalConfig, Location, Position, StoreError};

use super::backlog::Loc;
use super::core::{dead_letter_copy, Body, JournalSink, Output, ShardCore};
use super::destination::Destination;
use super::message::MessageRef;
use super::ops::{BrokerError, Delivery, Event, MeshMsg, Reply, ReplyTo, Request, ShardId};
use super::record::Record;
use super::router::Router;
use super::settings::BrokerSettings;

/// Everything a shard needs to start, prepared on the main thread.
pub struct ShardSetup {
    pub shard: ShardId,
    pub shard_count: usize,
    pub settings: Arc<BrokerSettings>,
    pub journal_dir: PathBuf,
    pub segment_bytes: u64,
    /// What recovery does with a damaged journal range (refuse, skip, set aside).
    pub on_damage: crate::store::OnDamage,
    pub mesh: MeshEnds<MeshMsg>,
    /// Unique per process start, for message ids.
    pub boot_id: String,
    /// Where this shard publishes its numbers for the status endpoint.
    pub stats: Arc<ShardStats>,
    /// The broker-wide registries (one for all shards): JMS client ids, temporary
    /// destinations.
    pub registries: Arc<crate::broker::Registries>,
    /// Receives each journal batch while a slave is attached (see
    /// [`Shard::begin_shipping`]); the replication core's channel, wired by `node`.
    pub ship: Box<dyn Fn(Position, Bytes) + Send>,
    /// Receives, while a slave is attached, each change that is not journaled but
    /// that the slave holds in memory (an encoded record; see `JournalSink::volatile`).
    pub ship_volatile: Box<dyn Fn(Bytes) + Send>,
    /// Told once if the journal fails (a write or fdatasync error other than a full
    /// disk): the node stops on it (see `store::writer`).
    pub on_journal_failure: Box<dyn Fn(String) + Send>,
}

/// How long start-up waits for the outcomes of transactions prepared before a crash.
const IN_DOUBT_WAIT: Duration = Duration::from_secs(60);

/// How often the shard expires messages and reclaims journal segments.
const TICK: Duration = Duration::from_millis(500);

struct Sink<'a>(&'a Shared);

impl JournalSink for Sink<'_> {
    fn append(&mut self, payload: &[u8]) -> Result<(Loc, u64), BrokerError> {
        let a = self
            .0
            .journal
            .append(payload)
            .map_err(|e| BrokerError::Journal(e.to_string()))?;
        Ok((to_loc(a.location), a.end.0))
    }
    fn end(&self) -> u64 {
        self.0.journal.appended_position().0
    }
    fn paused(&self) -> Option<String> {
        let shared = self.0;
        if let Some(why) = shared.journal.disk_full() {
            return Some(why);
        }
        if let Some(why) = shared.limit_stats.disk_full() {
            return Some(why);
        }
        let limit = shared.settings.limits.store_limit_bytes;
        let used = shared.limit_stats.store_bytes();
        (used >= limit).then(|| {
            let refusals = shared.limit_stats.refused(crate::metrics::Limit::StoreUsage);
            if refusals.is_power_of_two() {
                tracing::warn!(used, limit, refusals, "storeUsage limit reached: persistent sends refused until consumers free journal space");
            }
            format!("storeUsage limit of {limit} bytes reached: the journal holds {used} bytes")
        })
    }
    fn volatile(&mut self, payload: &[u8]) {
        if self.0.shipping.get() {
            (self.0.ship_volatile)(Bytes::copy_from_slice(payload));
        }
    }
}

fn to_loc(l: Location) -> Loc {
    Loc {
        segment: l.segment,
        offset: l.offset,
        len: l.len,
    }
}

fn to_location(l: Loc) -> Location {
    Location {
        segment: l.segment,
        offset: l.offset,
        len: l.len,
    }
}

struct Shared {
    core: RefCell<ShardCore>,
    journal: Journal,
    router: RefCell<Option<Router>>,
    /// Outputs that need a body that may have to be read back from the journal
    /// (deliveries, dead-letter moves, page-ins), done in order so a consumer never
    /// sees its deliveries reordered by a disk read.
    pending: RefCell<VecDeque<Output>>,
    pending_wake: RefCell<Option<Oneshot<()>>>,
    /// The pump is working on an item it already took off `pending`: later
    /// deliveries must queue behind it to keep their order.
    pump_busy: std::cell::Cell<bool>,
    /// A task to continue unfinished browse steps is scheduled.
    browse_kick: Cell<bool>,
    shard: ShardId,
    shard_count: usize,
    settings: Arc<BrokerSettings>,
    /// Broker-wide limit counters (a new core after a reset counts in them too).
    limit_stats: Arc<crate::metrics::LimitStats>,
    /// This shard's journal pause is counted in `limit_stats` (see `publish_stats`).
    disk_full_published: Cell<bool>,
    /// This shard's journal size as last counted in `limit_stats` (`publish_stats`).
    disk_bytes_published: Cell<u64>,
    segment_bytes: u64,
    stats: Arc<ShardStats>,
    /// Serving clients (promoted): runs expiry and relocation, which journal records.
    /// Until then (start-up, or as a slave) the shard only applies what it is given.
    serving: Cell<bool>,
    /// A slave is attached: the journal tap ships every batch.
    shipping: Rc<Cell<bool>>,
    /// While a catch-up reads old segments, reclamation keeps them from here on.
    catch_up_from: Cell<Option<u64>>,
    replica: ReplicaGate,
    ship_volatile: Box<dyn Fn(Bytes)>,
}

/// Holds replies back until the slave has acknowledged their records, while a slave
/// is in sync ([`Shard::require_replica`]).
#[derive(Default)]
struct ReplicaGate {
    required: Cell<bool>,
    acked: Cell<Position>,
    waiters: RefCell<Vec<(Position, Oneshot<()>)>>,
}

impl ReplicaGate {
    fn covers(&self, end: Position) -> bool {
        !self.required.get() || self.acked.get() >= end
    }

    async fn wait(&self, end: Position) {
        if self.covers(end) {
            return;
        }
        let slot = Oneshot::default();
        self.waiters.borrow_mut().push((end, slot.clone()));
        slot.wait().await;
    }

    fn acked(&self, pos: Position) {
        if pos > self.acked.get() {
            self.acked.set(pos);
        }
        let ready: Vec<Oneshot<()>> = {
            let mut w = self.waiters.borrow_mut();
            let (ready, keep): (Vec<_>, Vec<_>) = w.drain(..).partition(|(end, _)| *end <= pos);
            *w = keep;
            ready.into_iter().map(|(_, s)| s).collect()
        };
        for slot in ready {
            slot.set(());
        }
    }

    fn release_all(&self) {
        self.required.set(false);
        let all: Vec<_> = self.waiters.borrow_mut().drain(..).collect();
        for (_, slot) in all {
            slot.set(());
        }
    }
}

/// A running shard. Dropping it does not stop it (its tasks are detached); the
/// process ends the broker.
pub struct Shard {
    shared: Rc<Shared>,
}

impl Shard {
    /// Opens the journal, replays it into a fresh core and connects the mesh. The
    /// shard then holds its state without serving: [`Shard::promote`] makes it serve,
    /// or it follows a master ([`Shard::apply_shipped`]).
    pub async fn open(setup: ShardSetup) -> Result<(Shard, Router), StoreError> {
        let mut cfg = JournalConfig::new(&setup.journal_dir);
        cfg.segment_bytes = setup.segment_bytes;
        cfg.on_damage = setup.on_damage.clone();
        // Records are applied as recovery reads them: a journal larger than memory
        // replays in the memory limit (bodies beyond it stay on disk, as live).
        let mut core = ShardCore::new(setup.shard, setup.shard_count, setup.settings.clone());
        core.count_destinations_in(setup.registries.limits.clone());
        let (journal, count) = Journal::open_with(cfg, &mut |r| {
            apply_payload(&mut core, &r.payload, r.location);
        })
        .await?;
        let fsync_stats = setup.stats.clone();
        journal.set_sync_observer(Rc::new(move |d| fsync_stats.fsync_latency.observe(d)));
        {
            let failed = setup.on_journal_failure;
            let shard = setup.shard;
            journal.set_failure_observer(Rc::new(move |why| {
                failed(format!("shard {shard}: {why}"));
            }));
        }
        let shipping = Rc::new(Cell::new(false));
        {
            let shipping = shipping.clone();
            let ship = setup.ship;
            journal.set_batch_tap(Box::new(move |start, bytes| {
                if shipping.get() {
                    ship(start, bytes);
                }
            }));
        }
        tracing::info!(shard = setup.shard, records = count, "shard recovered");
        let shared = Rc::new(Shared {
            core: RefCell::new(core),
            journal,
            router: RefCell::new(None),
            pending: RefCell::new(VecDeque::new()),
            pending_wake: RefCell::new(None),
            pump_busy: Cell::new(false),
            browse_kick: Cell::new(false),
            shard: setup.shard,
            shard_count: setup.shard_count,
            settings: setup.settings.clone(),
            limit_stats: setup.registries.limits.clone(),
            disk_full_published: Cell::new(false),
            disk_bytes_published: Cell::new(0),
            segment_bytes: setup.segment_bytes,
            stats: setup.stats.clone(),
            serving: Cell::new(false),
            shipping,
            catch_up_from: Cell::new(None),
            replica: ReplicaGate::default(),
            ship_volatile: setup.ship_volatile,
        });
        publish_stats(&shared);
        let handler_state = shared.clone();
        let outbox = setup
            .mesh
            .connect(move |msg| on_mesh_message(&handler_state, msg));
        let router = Router::with_stats(
            outbox,
            setup.settings.clone(),
            setup.boot_id.clone(),
            setup.stats.clone(),
            setup.registries.clone(),
        );
        *shared.router.borrow_mut() = Some(router.clone());
        rt::spawn_local(ticker(shared.clone()));
        Ok((Shard { shared }, router))
    }

    /// Makes the shard serve: settles transactions prepared before (recovery or the
    /// old master's stream left them in doubt; every shard must be promoted together,
    /// see `node`), then runs expiry, reclamation and the delivery pump.
    ///
    /// `takeover`: this node followed a master until now; every stored message is
    /// flagged as possibly delivered (see `ShardCore::mark_possibly_delivered`).
    pub async fn promote(&self, takeover: bool) {
        let shared = &self.shared;
        if takeover {
            shared.core.borrow_mut().mark_possibly_delivered();
        }
        shared.core.borrow_mut().finish_recovery();
        shared.serving.set(true);
        process_outputs(shared);
        rt::spawn_local(pending_pump(shared.clone()));
        let started = std::time::Instant::now();
        while shared.core.borrow().in_doubt() > 0 {
            if started.elapsed() > IN_DOUBT_WAIT {
                tracing::error!(
                    shard = shared.shard,
                    in_doubt = shared.core.borrow().in_doubt(),
                    "prepared transactions still unresolved; serving anyway"
                );
                break;
            }
            rt::sleep(Duration::from_millis(1)).await;
        }
    }

    pub fn shard(&self) -> ShardId {
        self.shared.shard
    }

    // ---- administration (the status endpoint's /admin/*) ----

    /// Removes every message of queue `dest` (see `ShardCore::purge_queue`); returns
    /// how many. Answers once the `Purge` record is durable and, while a slave is in
    /// sync, held by the slave: the same condition a client's receipt waits for.
    pub async fn purge_queue(&self, dest: &Destination) -> Result<u64, BrokerError> {
        self.admin(|core, sink| core.purge_queue(dest, sink)).await
    }

    /// Purges and removes queue `dest` (see `ShardCore::delete_queue`): refused while
    /// it has consumers. Answers as [`Shard::purge_queue`] does.
    pub async fn delete_queue(&self, dest: &Destination) -> Result<u64, BrokerError> {
        self.admin(|core, sink| core.delete_queue(dest, sink)).await
    }

    async fn admin(
        &self,
        op: impl FnOnce(&mut ShardCore, &mut Sink<'_>) -> Result<(u64, Option<u64>), BrokerError>,
    ) -> Result<u64, BrokerError> {
        let shared = &self.shared;
        if !shared.serving.get() {
            return Err(BrokerError::NotServing);
        }
        let (removed, durable_at) = {
            let mut sink = Sink(shared);
            let mut core = shared.core.borrow_mut();
            op(&mut core, &mut sink)?
        };
        // What the change released (blocked producers) need not wait for it: their
        // replies carry their own tickets.
        process_outputs(shared);
        if let Some(t) = durable_at {
            settle(shared, Position(t)).await?;
        }
        Ok(removed)
    }

    // ---- master side of replication ----

    /// A slave attaches: from now on every journal batch is shipped. Returns where
    /// the slave's copy must start (`slave_has` if this journal still holds it, else
    /// the oldest retained segment) and where the catch-up stream ends and live
    /// batches begin.
    pub fn begin_shipping(&self, slave_has: Option<Position>) -> (Position, Position) {
        let j = &self.shared.journal;
        self.shared.shipping.set(true);
        let until = j.tapped_end();
        let oldest = j.oldest_position();
        // The slave holds a prefix of this master's log (same epoch); it can resume
        // if that prefix is still here. It may also be just past a roll marker that
        // ends what was tapped.
        let past_roll = |p: Position| p.offset() == 4096 && p.segment() == until.segment() + 1;
        let start = match slave_has {
            Some(p) if p >= oldest && (p <= until || past_roll(p)) => p,
            _ => oldest,
        };
        self.shared.catch_up_from.set(Some(start.segment()));
        (start, until)
    }

    /// Raw journal bytes for a catch-up (see `Journal::read_span`).
    pub async fn read_span(
        &self,
        from: Position,
        until: Position,
        max_bytes: usize,
    ) -> Result<(Bytes, Position), StoreError> {
        self.shared.journal.read_span(from, until, max_bytes).await
    }

    pub async fn wait_durable(&self, end: Position) -> Result<(), StoreError> {
        self.shared.journal.wait_durable(end).await
    }

    /// The catch-up has been read: old segments may be reclaimed again.
    pub fn end_catch_up(&self) {
        self.shared.catch_up_from.set(None);
    }

    /// From now on a reply waits for the slave as well as the local fsync. Returns
    /// the journal's end: replies for records before it may have gone out without
    /// the slave, so the slave is in sync once it holds everything up to there.
    pub fn require_replica(&self) -> Position {
        self.shared.replica.required.set(true);
        self.shared.journal.appended_position()
    }

    /// The slave holds everything before `pos`.
    pub fn replica_acked(&self, pos: Position) {
        self.shared.replica.acked(pos);
    }

    /// The slave is gone: stop shipping and release every reply waiting for it.
    pub fn stop_shipping(&self) {
        self.shared.shipping.set(false);
        self.shared.catch_up_from.set(None);
        self.shared.replica.acked.set(Position(0));
        self.shared.replica.release_all();
    }

    // ---- slave side ----

    /// Where the next shipped batch must start.
    pub fn next_position(&self) -> Position {
        self.shared.journal.next_position()
    }

    /// Appends a batch the master shipped to this journal (byte for byte, at the
    /// same position) and applies its records, as recovery would. Returns the end to
    /// wait on for durability.
    pub fn apply_shipped(&self, start: Position, bytes: &Bytes) -> Result<Position, String> {
        let shared = &self.shared;
        let records = Journal::decode_shipped(start, bytes).map_err(|e| e.to_string())?;
        let end = shared
            .journal
            .write_shipped(start, bytes)
            .map_err(|e| e.to_string())?;
        let mut core = shared.core.borrow_mut();
        for r in records {
            apply_payload(&mut core, &r.payload, r.location);
        }
        // Applying produces nothing a slave acts on (nobody is connected here).
        core.drain();
        Ok(end)
    }

    /// Applies a change the master did not journal (a non-persistent message or its
    /// removal): held in memory only, as on the master.
    pub fn apply_volatile(&self, record: &Bytes) -> Result<(), String> {
        let rec = Record::decode(record).map_err(|e| e.to_string())?;
        let mut core = self.shared.core.borrow_mut();
        core.apply(rec, None);
        core.drain();
        Ok(())
    }

    /// Throws the journal and the state away; the next shipped batch starts at
    /// `start` (the master's oldest retained segment).
    pub async fn reset(&self, start: Position) -> Result<(), StoreError> {
        let shared = &self.shared;
        shared.journal.reset(start).await?;
        let mut core = ShardCore::new(shared.shard, shared.shard_count, shared.settings.clone());
        core.count_destinations_in(shared.limit_stats.clone());
        // The old core's destinations leave the count when it is dropped here.
        *shared.core.borrow_mut() = core;
        publish_stats(shared);
        Ok(())
    }
}

fn apply_payload(core: &mut ShardCore, payload: &Bytes, location: Location) {
    match Record::decode(payload) {
        Ok(rec) => core.apply(rec, Some(to_loc(location))),
        Err(e) => {
            // The store's checksum matched, so this is a format bug, not a torn
            // write: keep going rather than refuse to start.
            tracing::error!(location = ?location, error = %e, "undecodable journal record skipped");
        }
    }
}

fn on_mesh_message(shared: &Rc<Shared>, msg: MeshMsg) {
    match msg {
        MeshMsg::Request(req) => {
            let mut sink = Sink(shared);
            shared.core.borrow_mut().handle(req, &mut sink);
        }
        MeshMsg::Event(Event::Done { reply, result })
            if reply.to == ReplyTo::Shard(shared.shard) =>
        {
            let mut sink = Sink(shared);
            shared
                .core
                .borrow_mut()
                .on_internal_done(reply.token, result, &mut sink);
        }
        MeshMsg::Event(ev) => {
            let conn = match &ev {
                Event::Deliver(d) => d.sub.conn,
                Event::Evict { conn } => *conn,
                Event::BrowseEnd { sub, .. } => sub.conn,
                Event::Done { reply, .. } => match reply.to {
                    ReplyTo::Conn(c) => c,
                    ReplyTo::Shard(_) => return,
                },
            };
            if let Some(router) = shared.router.borrow().as_ref() {
                // A connection that is gone drops its events: its shard has told every
                // destination shard, which return its deliveries to their queues.
                let _ = router.deliver_local(conn, ev);
            }
        }
    }
    process_outputs(shared);
}

fn process_outputs(shared: &Rc<Shared>) {
    let outputs = shared.core.borrow_mut().drain();
    if shared.core.borrow().has_browse_work() && !shared.browse_kick.get() {
        // A browse step stopped at its scan bound (so one browser cannot hold the
        // shard): continue in a task of its own, after whatever else is queued.
        shared.browse_kick.set(true);
        let again = shared.clone();
        rt::spawn_local(async move {
            again.browse_kick.set(false);
            process_outputs(&again);
        });
    }
    if outputs.is_empty() {
        return;
    }
    let Some(router) = shared.router.borrow().clone() else {
        return;
    };
    for out in outputs {
        match out {
            Output::Reply {
                reply,
                durable_at,
                result,
            } => match durable_at {
                Some(t) if !settled(shared, Position(t)) => {
                    let waiter = shared.clone();
                    let router = router.clone();
                    rt::spawn_local(async move {
                        let result = settle(&waiter, Position(t)).await.and(result);
                        router.post_event(Event::Done { reply, result });
                    });
                }
                _ => router.post_event(Event::Done { reply, result }),
            },
            Output::Deliver {
                sub,
                destination,
                seq,
                body: Body::Memory(msg),
                redeliveries,
                stored_at,
            } if shared.pending.borrow().is_empty()
                && !shared.pump_busy.get()
                && stored_at.is_none_or(|l| settled(shared, to_location(l).end())) =>
            {
                router.post_event(delivery(sub, msg, seq, destination, redeliveries));
            }
            // Behind the browser's last delivery, which may still be in `pending`.
            Output::BrowseEnd { sub, destination }
                if shared.pending.borrow().is_empty() && !shared.pump_busy.get() =>
            {
                router.post_event(Event::BrowseEnd { sub, destination });
            }
            Output::Post { shard, request } => router.post(shard, request),
            other @ (Output::Deliver { .. }
            | Output::DeadLetter { .. }
            | Output::PageIn { .. }
            | Output::BrowseEnd { .. }) => push_pending(shared, other),
        }
    }
}

/// Whether everything up to `end` is durable here and, while a slave is in sync, held
/// by the slave: what a reply waiting for a journal position needs.
fn settled(shared: &Shared, end: Position) -> bool {
    shared.journal.durable_position() >= end && shared.replica.covers(end)
}

/// Waits until [`settled`]`(end)`. The local fsync and the slave's acknowledgement run
/// in parallel; this returns when both are in. A failed journal write is an error at
/// once: the journal answers a wait with an error only for records certainly not
/// written, which were therefore never shipped either (`store::writer`), so the slave
/// will not acknowledge them.
async fn settle(shared: &Shared, end: Position) -> Result<(), BrokerError> {
    shared
        .journal
        .wait_durable(end)
        .await
        .map_err(|e| BrokerError::Journal(e.to_string()))?;
    shared.replica.wait(end).await;
    Ok(())
}

fn delivery(
    sub: super::ops::SubKey,
    msg: MessageRef,
    seq: u64,
    destination: Destination,
    redeliveries: u32,
) -> Event {
    Event::Deliver(Delivery {
        sub,
        msg,
        seq,
        destination,
        redelivered: redeliveries > 0,
        redelivery_count: redeliveries,
    })
}

fn push_pending(shared: &Rc<Shared>, p: Output) {
    shared.pending.borrow_mut().push_back(p);
    if let Some(wake) = shared.pending_wake.borrow_mut().take() {
        wake.set(());
    }
}

/// Reads a message back from the journal: the record at `loc` is an `Enqueue`, or a
/// `Tx`/`Prepare` that contains the one for (`destination`, `seq`).
async fn load(
    journal: &Journal,
    loc: Loc,
    destination: &Destination,
    seq: u64,
) -> Result<MessageRef, String> {
    let payload = journal
        .read(to_location(loc))
        .await
        .map_err(|e| e.to_string())?;
    let rec = Record::decode(&payload).map_err(|e| e.to_string())?;
    find_message(rec, destination, seq).ok_or_else(|| format!("message {seq} not in record"))
}

fn find_message(rec: Record, destination: &Destination, seq: u64) -> Option<MessageRef> {
    match rec {
        Record::Enqueue {
            seq: s, message, ..
        } if s == seq && message.destination == *destination => Some(message),
        Record::Tx(records) | Record::Prepare { records, .. } => records
            .into_iter()
            .find_map(|r| find_message(r, destination, seq)),
        _ => None,
    }
}

async fn resolve(
    shared: &Shared,
    body: Body,
    destination: &Destination,
    seq: u64,
) -> Option<MessageRef> {
    match body {
        Body::Memory(m) => Some(m),
        Body::Disk(loc) => match load(&shared.journal, loc, destination, seq).await {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::error!(%destination, seq, error = %e, "cannot read a message back from the journal");
                None
            }
        },
    }
}

async fn pending_pump(shared: Rc<Shared>) {
    loop {
        let next = shared.pending.borrow_mut().pop_front();
        shared.pump_busy.set(next.is_some());
        let Some(p) = next else {
            let wake = Oneshot::default();
            *shared.pending_wake.borrow_mut() = Some(wake.clone());
            wake.wait().await;
            continue;
        };
        let Some(router) = shared.router.borrow().clone() else {
            continue;
        };
        match p {
            Output::Deliver {
                sub,
                destination,
                seq,
                body,
                redeliveries,
                stored_at,
            } => {
                // Not before the message is durable here and on the slave (see
                // `Output::Deliver`); the deliveries behind it wait in order, and with
                // group commit they mostly settle in the same batch.
                if let Some(l) = stored_at {
                    if let Err(e) = settle(&shared, to_location(l).end()).await {
                        tracing::error!(%destination, seq, error = %e, "message not delivered: its journal write failed");
                        process_outputs(&shared);
                        continue;
                    }
                }
                if let Some(msg) = resolve(&shared, body, &destination, seq).await {
                    router.post_event(delivery(sub, msg, seq, destination, redeliveries));
                }
            }
            Output::PageIn {
                destination,
                seq,
                loc,
                token,
            } => {
                let msg = resolve(&shared, Body::Disk(loc), &destination, seq).await;
                shared.core.borrow_mut().paged_in(token, msg);
            }
            Output::DeadLetter {
                destination,
                body,
                seq,
                token,
                reason,
            } => {
                let msg = resolve(&shared, body, &destination, seq).await;
                let reply = Reply {
                    to: ReplyTo::Shard(shared.shard),
                    token,
                };
                match msg {
                    Some(m) => {
                        let copy = MessageRef::new(dead_letter_copy(&m, reason));
                        let dlq = Destination::dead_letter_queue();
                        router.post(router.shard_of(&dlq), Request::Send { msg: copy, reply });
                    }
                    None => {
                        tracing::error!(%destination, seq, "cannot read a message to dead-letter it");
                        router.post_event(Event::Done {
                            reply,
                            result: Err(BrokerError::Journal("unreadable message".into())),
                        });
                    }
                }
            }
            Output::BrowseEnd { sub, destination } => {
                router.post_event(Event::BrowseEnd { sub, destination });
            }
            Output::Reply { .. } | Output::Post { .. } => {
                unreachable!(
                    "only deliveries, browse ends, dead-letter moves and page-ins are queued"
                )
            }
        }
        process_outputs(&shared);
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Periodic work: expiry, publishing status numbers, and journal reclamation (delete
/// the oldest segments once nothing live is in them; re-journal the few live records
/// of a sparse old segment so it can go too).
async fn ticker(shared: Rc<Shared>) {
    let mut ticks: u64 = 0;
    loop {
        rt::sleep(TICK).await;
        if !shared.serving.get() {
            // Held or following a master: nothing here may journal on its own; old
            // segments go once the shipped records no longer pin them.
            publish_stats(&shared);
            reclaim_unpinned(&shared).await;
            continue;
        }
        ticks += 1;
        {
            let mut sink = Sink(&shared);
            shared.core.borrow_mut().tick(now_ms(), &mut sink);
        }
        if ticks == 120 {
            // Every shard has long since asked about transactions prepared before the
            // restart.
            shared.core.borrow_mut().forget_recovered_outcomes();
        }
        process_outputs(&shared);
        publish_stats(&shared);
        reclaim(&shared).await;
    }
}

/// Copies the numbers the status endpoint shows into the shard's [`ShardStats`].
fn publish_stats(shared: &Shared) {
    let disk_full = shared.journal.disk_full();
    if disk_full.is_some() != shared.disk_full_published.get() {
        // Before /status shows it: by then every shard refuses.
        shared
            .limit_stats
            .set_disk_full(disk_full.is_some(), disk_full.as_deref().unwrap_or(""));
        shared.disk_full_published.set(disk_full.is_some());
    }
    let disk_bytes = shared.journal.disk_bytes();
    let was = shared.disk_bytes_published.replace(disk_bytes);
    if disk_bytes != was {
        shared
            .limit_stats
            .add_store_bytes(disk_bytes as i64 - was as i64);
    }
    let j = shared.journal.stats();
    shared.stats.set_journal(JournalCounters {
        records: j.records_appended,
        appended_bytes: j.bytes_appended,
        written_bytes: j.bytes_written,
        fsyncs: j.fsyncs,
        disk_full,
    });
    let core = shared.core.borrow();
    shared.stats.set_memory_used(core.mem_used() as u64);
    if shared.stats.wants_destinations() {
        shared.stats.set_destinations(core.destination_stats());
    }
}

/// Deletes the oldest segments that hold nothing live; true if it deleted any.
async fn reclaim_unpinned(shared: &Rc<Shared>) -> bool {
    let segments = shared.journal.segments();
    let active = shared.journal.active_segment();
    // A catch-up in progress reads from this segment on.
    let keep_from = shared.catch_up_from.get().unwrap_or(u64::MAX);
    let mut cut = None;
    for &seg in &segments {
        if seg >= active || seg >= keep_from || shared.core.borrow().is_pinned(seg) {
            break;
        }
        cut = Some(seg + 1);
    }
    let Some(cut) = cut else { return false };
    // Only up to the first segment that is still needed: later acknowledgements
    // must not outlive the messages they remove.
    let next_kept = segments
        .iter()
        .copied()
        .find(|s| *s >= cut)
        .unwrap_or(active);
    if let Err(e) = shared.journal.remove_segments_before(next_kept).await {
        tracing::error!(error = %e, "cannot remove old journal segments");
    }
    true
}

async fn reclaim(shared: &Rc<Shared>) {
    if reclaim_unpinned(shared).await || shared.catch_up_from.get().is_some() {
        return;
    }
    let segments = shared.journal.segments();
    let active = shared.journal.active_segment();
    // The oldest segment is pinned. If it is mostly garbage and the journal keeps
    // more than a few segments, move its few live records forward so it can go;
    // a mostly live segment stays (moving it would only rewrite the backlog).
    let closed: Vec<u64> = segments.iter().copied().filter(|s| *s < active).collect();
    if closed.len() < 3 {
        return;
    }
    let oldest = closed[0];
    if shared.core.borrow().live_bytes(oldest) > shared.segment_bytes / 4 {
        return;
    }
    let moves = shared.core.borrow().entries_in_segment(oldest);
    const MAX_MOVES_PER_TICK: usize = 20_000;
    for r in moves.into_iter().take(MAX_MOVES_PER_TICK) {
        let Some(msg) = resolve(shared, r.body.clone(), &r.destination, r.seq).await else {
            continue;
        };
        let mut sink = Sink(shared);
        shared.core.borrow_mut().relocate(r, msg, &mut sink);
        rt::yield_if_needed().await;
    }
    {
        let mut sink = Sink(shared);
        shared
            .core
            .borrow_mut()
            .relocate_durables(oldest, &mut sink);
    }
    process_outputs(shared);
}
