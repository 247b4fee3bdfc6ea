//! The shard driver: owns one [`ShardCore`] and its journal on one executor, feeds it
//! the requests and events that arrive over the mesh, and carries out what it asks
//! (wait for durability before replying, read paged-out bodies back, move messages to
//! the dead-letter queue, reclaim journal segments).
//!
//! This module holds the shard's state and its start-up; the rest is split by concern:
//!
//! * `journal_sink`   — the core's journal sink on the store's journal.
//! * `replica_gate`   — replies held until durable here and acknowledged by the slave.
//! * `admin`          — /admin/* operations (purge, delete a queue).
//! * `replication`    — shipping to a slave, catch-up, applying what a master ships.
//! * `mesh`           — dispatch of mesh messages in, core outputs out.
//! * `disk_reads`     — the pump for outputs that may read a body back from disk.
//! * `ticker`         — expiry, status numbers and journal reclamation.
//! * `scheduler`      — fires due scheduled jobs.

mod admin;
mod disk_reads;
mod journal_sink;
mod mesh;
mod replica_gate;
mod replication;
mod scheduler;
mod ticker;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::metrics::ShardStats;
use crate::rt;
use crate::rt::channel::{MeshEnds, Oneshot};
use crate::store::{Journal, JournalConfig, Position, StoreError};

use super::core::{Output, ShardCore};
use super::ops::{MeshMsg, ShardId};
use super::router::Router;
use super::settings::BrokerSettings;

use disk_reads::pending_pump;
use journal_sink::apply_payload;
use mesh::{on_mesh_message, process_outputs};
pub use replica_gate::Grant;
use replica_gate::ReplicaGate;
pub use replication::ApplyError;
use ticker::{publish_stats, ticker};

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
    /// The broker-wide index of virtual-topic consumer queues (a new core after a
    /// reset reports to it too).
    virtual_topics: Arc<crate::broker::VirtualTopicIndex>,
    /// This shard's journal pause is counted in `limit_stats` (see `publish_stats`).
    disk_full_published: Cell<bool>,
    /// This shard's journal size as last counted in `limit_stats` (`publish_stats`).
    disk_bytes_published: Cell<u64>,
    segment_bytes: u64,
    /// The journal's directory (`<data>/journal/shard-N`): set-aside directories of
    /// diverged records are counted there.
    journal_dir: PathBuf,
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
        core.count_scheduled_in(setup.registries.limits.clone());
        core.index_virtual_topics_in(setup.registries.virtual_topics.clone());
        let (journal, count) = Journal::open_with(cfg, &mut |r| {
            apply_payload(&mut core, &r.payload, r.location);
        })
        .await?;
        let fsync_stats = setup.stats.clone();
        journal.set_sync_observer(Rc::new(move |s| {
            fsync_stats.fsync_latency.observe(s.elapsed);
            fsync_stats.per_fsync.observe(s.records, s.bytes);
        }));
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
            virtual_topics: setup.registries.virtual_topics.clone(),
            disk_full_published: Cell::new(false),
            disk_bytes_published: Cell::new(0),
            segment_bytes: setup.segment_bytes,
            journal_dir: setup.journal_dir.clone(),
            stats: setup.stats.clone(),
            serving: Cell::new(false),
            shipping,
            catch_up_from: Cell::new(None),
            replica: ReplicaGate::default(),
            ship_volatile: setup.ship_volatile,
        });
        publish_stats(&shared);
        replication::count_diverged_sets(&shared);
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
        rt::spawn_local(scheduler::scheduler(shared.clone()));
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
}
