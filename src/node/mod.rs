//! The composition root: turns a [`BrokerConfig`] into running executors, shards, the
//! replication core and listeners, and wires the channels between them.
//!
//! Start-up order matters: everything that can fail for a reason the operator must
//! fix (data directory locked, port in use, journal unreadable) fails before the
//! broker reports itself started, with a one-line reason.
//!
//! [`run`] is the sequence of steps; each lives in its own file: `startup.rs`
//! (open-file limit, directories, shard count), `listeners.rs` (client connectors),
//! `status.rs` (the status endpoint), `shards.rs` (one executor per shard),
//! `replication_executor.rs` (the replication core), `signals.rs` (SIGTERM/SIGINT),
//! `supervise.rs` (the loop reacting to replication events, signals and failures) and
//! `settings.rs` (configuration -> settings). Offline tools: `journal_tool.rs`
//! (`tandem journal verify|dump`) and `replay/` (`tandem journal replay-diverged`).

mod admin;
pub mod journal_tool;
mod listeners;
pub mod replay;
mod replication_executor;
mod settings;
mod shard_glue;
mod shards;
mod signals;
mod startup;
mod status;
mod supervise;
mod tls;

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::config::BrokerConfig;
use crate::metrics::replication::ReplicationStats;
use crate::metrics::ShardStats;
use crate::replication;
use crate::replication::port;
use crate::replication::state::NodeState;
use crate::store;

pub use settings::broker_settings;

/// Why the node could not start, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Store(#[from] store::StoreError),
    #[error("transport connector {name} cannot listen on {addr}: {source}")]
    Bind {
        name: String,
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("status endpoint (statusPort {port}) cannot listen on {addr}: {source}")]
    StatusBind {
        port: u16,
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    State(#[from] replication::state::StateError),
    #[error("{0}")]
    Replication(String),
    #[error("waitForSlave: no slave was in sync within waitForSlaveTimeout ({0} ms)")]
    WaitForSlave(u64),
    #[error("no transport connector this version serves (stomp://) is configured")]
    NoConnector,
    /// TLS material that cannot be used (the message names the file).
    #[error("TLS: {0}")]
    Tls(String),
    #[error("cannot start executor: {0}")]
    Executor(std::io::Error),
    /// A journal write or fdatasync failed (not a full disk, which pauses): the node
    /// stops rather than guess what is on disk, so the slave takes over.
    #[error("journal failed ({0}); stopping the node (restart it once the disk is sound: recovery reads what is on disk)")]
    JournalFailed(String),
    /// The pair's decisions say stop serving and start again: a newer epoch serves
    /// elsewhere (`node.state` says `role=slave`: the node rejoins as slave), or the
    /// master lost its witness lease with no slave in sync. `main` re-executes itself:
    /// a clean start is the one path that turns a master's shards into a slave's.
    #[error("{0}")]
    Restart(String),
    #[error("shard {shard} failed to start: {reason}")]
    Shard { shard: usize, reason: String },
    /// An executor thread that must live as long as the process ended (a task
    /// panicked): the node stops rather than serve with part of itself dead, so the
    /// slave or the service manager takes over.
    #[error(
        "executor {0} stopped (a task panicked: see the panic message above); stopping the node"
    )]
    ExecutorDied(String),
}

/// Runs the broker until SIGTERM or SIGINT (then returns `Ok`), until replication
/// asks it to stop (`Ok` for a configured stop such as `shutdownOnMasterFailure`, an
/// error otherwise), or fails to start.
///
/// Start-up: every shard opens and replays its journal, holding its state without
/// serving; the replication core then decides the role (see
/// `replication::core`): serve as master (shards promoted, connectors opened), or
/// follow a master (connectors stay closed until a takeover).
///
/// Shutdown needs no flush to be safe: nothing was confirmed to a client before it
/// was durable, so whatever is still in flight was never promised. The listeners are
/// closed first so the port is free as soon as the process exits.
pub fn run(mut config: BrokerConfig) -> Result<(), NodeError> {
    let signals = signals::block_shutdown_signals();
    startup::raise_open_file_limit();
    let _lock = startup::prepare_directories(&mut config)?;
    let node_state = NodeState::load(&config.data_directory)?;
    let shard_count = startup::shard_count(&config);
    let connectors = listeners::client_connectors(&config)?;
    let tls = tls::load(&config, &connectors)?;
    let status = status::bind_status(&config)?;

    // Every shard opens and replays its journal, holding its state without serving.
    let registries = Arc::new(crate::broker::Registries::default());
    let replication_stats = Arc::new(ReplicationStats::new());
    let shard_stats: Vec<Arc<ShardStats>> = (0..shard_count)
        .map(|shard| Arc::new(ShardStats::new(shard, status.is_some())))
        .collect();
    let (shard_ports, core_port) = port::ports(
        shard_count,
        usize::try_from(config.replication.link.buffer_bytes).unwrap_or(usize::MAX),
    );
    let slave_sockets = shard_ports
        .first()
        .map(|p| p.live.clone())
        .ok_or(NodeError::NoConnector)?;
    let shared = shards::ShardShared {
        registries: &registries,
        replication_stats: &replication_stats,
        shard_stats: &shard_stats,
    };
    let mut shards = shards::start(&config, shard_count, &node_state, shard_ports, shared)?;
    shards.wait_opened()?;

    // Recovery may have set damage aside, and recorded that this node must follow its
    // peer (see `settings::damage_policy`).
    let node_state = NodeState::load(&config.data_directory)?;
    let core_settings = settings::core_settings(
        &config,
        shard_count,
        &connectors,
        &tls,
        replication_stats.clone(),
    );
    let core = replication_executor::start(
        &config,
        shard_count,
        core_settings,
        node_state,
        core_port,
        &shards.shard0_guests,
    )?;

    let admin_open = Arc::new(AtomicBool::new(false));
    let _status_thread = status::start(
        status,
        &config,
        status::StatusSources {
            replication: replication_stats.clone(),
            limits: registries.limits.clone(),
            shards: shard_stats,
            admin_txs: std::mem::take(&mut shards.admin_txs),
            admin_open: admin_open.clone(),
        },
    )?;
    let stop_signal = signals::watch(signals)?;

    let result = supervise::Supervisor {
        config: &config,
        connectors: &connectors,
        tls: &tls,
        shards: &shards,
        core: &core,
        stop_signal: &stop_signal,
        admin_open: &admin_open,
        replication_stats: &replication_stats,
        slave_sockets: &slave_sockets,
    }
    .run();
    // The executors are not joined: they serve until the process exits.
    drop(shards.handles);
    drop(core.handle);
    if result.is_ok() {
        tracing::info!("Tandem stopped");
    }
    result
}
