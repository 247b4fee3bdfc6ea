//! One executor per shard: each opens and replays its shard's journal, then serves the
//! listeners the node hands it, answers `/admin/*` commands, and runs the task that
//! connects it to the replication core (`shard_glue`).

use std::rc::Rc;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use super::listeners::Listeners;
use super::{admin, settings, shard_glue, NodeError};
use crate::broker::shard::{Shard, ShardSetup};
use crate::broker::Registries;
use crate::config::BrokerConfig;
use crate::metrics::replication::ReplicationStats;
use crate::metrics::ShardStats;
use crate::net;
use crate::replication::port;
use crate::replication::state::NodeState;
use crate::rt::channel;
use crate::rt::exec::{self, ExecutorHandle, ExecutorSpec};

/// What the shard executors share with each other and the rest of the node.
pub(super) struct ShardShared<'a> {
    pub registries: &'a Arc<Registries>,
    pub replication_stats: &'a Arc<ReplicationStats>,
    pub shard_stats: &'a [Arc<ShardStats>],
}

/// The running shard executors, and the channels the node talks to them through.
pub(super) struct Shards {
    pub count: usize,
    /// The executors are not joined: they serve until the process exits.
    pub handles: Vec<ExecutorHandle<()>>,
    /// Listeners to serve, one channel per shard (in shard order).
    pub serve_txs: Vec<async_channel::Sender<Listeners>>,
    /// `/admin/*` commands, one channel per shard (in shard order).
    pub admin_txs: Vec<async_channel::Sender<admin::AdminCommand>>,
    /// Work to run on shard 0's executor (the replication core on a small host, see
    /// `replication_executor::Placement`).
    pub shard0_guests: async_channel::Sender<exec::Guest>,
    /// Each shard reports here when the replication core promoted it.
    pub promoted_rx: mpsc::Receiver<usize>,
    /// Shard executors that end (a panicking task takes the thread) are reported here.
    pub died_rx: mpsc::Receiver<String>,
    /// Journals that failed (an I/O error other than a full disk) are reported here.
    pub journal_failed_rx: mpsc::Receiver<String>,
    /// Each shard reports here once its journal is open and replayed (or why not).
    opened_rx: mpsc::Receiver<Result<usize, (usize, String)>>,
}

/// Logs the executor layout about to start.
fn log_layout(config: &BrokerConfig, shard_count: usize) {
    let io_memory = config.shards.io_memory_bytes as usize;
    let ring_depth = config.shards.ring_depth as usize;
    tracing::info!(
        shards = shard_count,
        pinned = config.shards.pin_cores,
        io_memory_bytes = io_memory,
        ring_depth,
        memlock_estimate_bytes = (shard_count + 1) * 3 * (io_memory + ring_depth * 64 * 2),
        "starting executors (RLIMIT_MEMLOCK is charged about 3 x io_memory + rings each)"
    );
}

/// Names this start of the node: the broker name and the start time in ms.
fn boot_id(config: &BrokerConfig) -> String {
    format!(
        "{}-{}",
        config.broker_name,
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0)
    )
}

/// Starts one executor per shard; each opens its journal (see [`Shards::wait_opened`]).
pub(super) fn start(
    config: &BrokerConfig,
    shard_count: usize,
    node_state: &NodeState,
    shard_ports: Vec<port::ShardPort>,
    shared: ShardShared<'_>,
) -> Result<Shards, NodeError> {
    let settings = Arc::new(settings::broker_settings(config, shard_count));
    log_layout(config, shard_count);
    let io_memory = config.shards.io_memory_bytes as usize;
    let ring_depth = config.shards.ring_depth as usize;
    let boot_id = boot_id(config);
    let journal_dir = &config.journal.directory;
    let on_damage = settings::damage_policy(config, node_state);
    let mut ends = channel::mesh(shard_count, 4096);
    let (opened_tx, opened_rx) = mpsc::channel::<Result<usize, (usize, String)>>();
    let (promoted_tx, promoted_rx) = mpsc::channel::<usize>();
    let mut serve_txs = Vec::new();
    // `/admin/*` commands, one channel per shard (pushed in reverse, like `serve_txs`).
    let mut admin_txs = Vec::new();
    let mut handles = Vec::new();
    let (died_tx, died_rx) = mpsc::channel::<String>();
    let (journal_failed_tx, journal_failed_rx) = mpsc::channel::<String>();
    let mut shard_ports: Vec<Option<port::ShardPort>> = shard_ports.into_iter().map(Some).collect();
    // One guest ever (the replication core on a small host): bounded to that.
    let (shard0_guests, guests_rx) = async_channel::bounded::<exec::Guest>(1);
    let mut guests_rx = Some(guests_rx);
    for shard in (0..shard_count).rev() {
        let Some(mesh) = ends.pop() else { break };
        let Some(shard_port) = shard_ports[shard].take() else {
            break;
        };
        let spec = ExecutorSpec {
            name: format!("tandem-shard-{shard}"),
            cpu: if config.shards.pin_cores {
                config.shards.cores.get(shard).copied()
            } else {
                None
            },
            io_memory_bytes: io_memory,
            ring_depth,
        };
        // Counted against replicationBuffer: a slow slave never grows the channel.
        let shipper = Arc::new(port::Shipper::new(
            shard,
            shard_port.live.clone(),
            shared.replication_stats.clone(),
            config.replication.link.buffer_bytes,
        ));
        let shipper_v = shipper.clone();
        let setup = ShardSetup {
            shard,
            shard_count,
            settings: settings.clone(),
            journal_dir: journal_dir.join(format!("shard-{shard}")),
            segment_bytes: config.journal.segment_bytes,
            on_damage: on_damage.clone(),
            mesh,
            boot_id: boot_id.clone(),
            stats: shared.shard_stats[shard].clone(),
            registries: shared.registries.clone(),
            ship: Box::new(move |start, bytes| shipper.batch(start, bytes)),
            ship_volatile: Box::new(move |record| shipper_v.volatile(record)),
            on_journal_failure: {
                let tx = journal_failed_tx.clone();
                Box::new(move |why| {
                    let _ = tx.send(why);
                })
            },
        };
        let (serve_tx, serve_rx) = async_channel::unbounded::<Listeners>();
        serve_txs.push(serve_tx);
        let (admin_tx, admin_rx) = async_channel::unbounded::<admin::AdminCommand>();
        admin_txs.push(admin_tx);
        let opened = opened_tx.clone();
        let promoted = promoted_tx.clone();
        let guests = if shard == 0 { guests_rx.take() } else { None };
        let handle = exec::start_watched(&spec, died_tx.clone(), move || async move {
            let (shard_handle, router) = match Shard::open(setup).await {
                Ok(s) => s,
                Err(e) => {
                    let _ = opened.send(Err((shard, e.to_string())));
                    return;
                }
            };
            let shard_handle = Rc::new(shard_handle);
            crate::rt::spawn_local(admin::serve(shard_handle.clone(), admin_rx));
            crate::rt::spawn_local(shard_glue::run(shard_handle, shard_port, promoted));
            if let Some(guests) = guests {
                crate::rt::spawn_local(exec::host_guests(guests));
            }
            let _ = opened.send(Ok(shard));
            // Serve what the node hands over (as master; `waitForSlave` opens the
            // client-only connectors later).
            while let Ok(listeners) = serve_rx.recv().await {
                for (l, policy) in listeners {
                    let router = router.clone();
                    crate::rt::spawn_local(net::serve_connector(l.into_listener(), router, policy));
                }
            }
            // The shard lives until the process ends.
            std::future::pending::<()>().await;
        })
        .map_err(NodeError::Executor)?;
        handles.push(handle);
    }
    serve_txs.reverse();
    admin_txs.reverse();
    Ok(Shards {
        count: shard_count,
        handles,
        serve_txs,
        admin_txs,
        shard0_guests,
        promoted_rx,
        died_rx,
        journal_failed_rx,
        opened_rx,
    })
}

impl Shards {
    /// Waits until every shard has opened and replayed its journal (holding its state
    /// without serving), or one failed to.
    pub fn wait_opened(&self) -> Result<(), NodeError> {
        for _ in 0..self.count {
            match self.opened_rx.recv_timeout(Duration::from_secs(300)) {
                Ok(Ok(_)) => {}
                Ok(Err((shard, reason))) => return Err(NodeError::Shard { shard, reason }),
                Err(_) => {
                    return Err(NodeError::Shard {
                        shard: usize::MAX,
                        reason: "a shard did not open within 300 s".into(),
                    })
                }
            }
        }
        Ok(())
    }
}
