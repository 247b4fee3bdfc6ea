//! The composition root: turns a [`BrokerConfig`] into running executors, shards, the
//! replication core and listeners, and wires the channels between them.
//!
//! Start-up order matters: everything that can fail for a reason the operator must
//! fix (data directory locked, port in use, journal unreadable) fails before the
//! broker reports itself started, with a one-line reason.

mod admin;
pub mod journal_tool;
mod shard_glue;

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use crate::broker::shard::{Shard, ShardSetup};
use crate::broker::{BrokerSettings, User};
use crate::config::{BrokerConfig, ReplicationAck, TransportConnector};
use crate::metrics::replication::ReplicationStats;
use crate::metrics::{self, ShardStats, StatusListener};
use crate::net;
use crate::replication;
use crate::replication::auth::{Acceptor, Key, Login, PluginUser};
use crate::replication::core::{AckMode, CoreSettings, Event, MasterTarget, Request};
use crate::replication::port;
use crate::replication::state::{LastRole, NodeState};
use crate::rt::channel;
use crate::rt::exec::{self, ExecutorSpec};
use crate::rt::net::BoundListener;
use crate::store;
use crate::uri::Wire;

/// How long a node whose journal failed goes on before it exits: time for the error
/// answers to reach their clients.
const JOURNAL_FAILURE_GRACE: Duration = Duration::from_millis(300);

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
    #[error("cannot start executor: {0}")]
    Executor(std::io::Error),
    /// A journal write or fdatasync failed (not a full disk, which pauses): the node
    /// stops rather than guess what is on disk, so the slave takes over.
    #[error("journal failed ({0}); stopping the node (restart it once the disk is sound: recovery reads what is on disk)")]
    JournalFailed(String),
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

/// The settings the broker core and sessions use, from the configuration.
pub fn broker_settings(config: &BrokerConfig, shard_count: usize) -> BrokerSettings {
    let defaults = BrokerSettings::default();
    BrokerSettings {
        broker_name: config.broker_name.clone(),
        users: config
            .users
            .iter()
            .map(|u| User {
                username: u.username.clone(),
                password: u.password.clone(),
                groups: u.groups.clone(),
            })
            .collect(),
        auth_required: config.auth_enabled,
        max_frame_bytes: config.limits.max_frame_bytes as usize,
        max_header_bytes: config.limits.max_header_bytes as usize,
        max_headers: config.limits.max_headers as usize,
        shard_memory_limit_bytes: (config.memory_limit_bytes as usize / shard_count.max(1)).max(1),
        maximum_redeliveries: config.redelivery.maximum_redeliveries.unwrap_or(u32::MAX),
        limits: limits(config),
        ..defaults
    }
}

/// The connection limits the sessions and shards enforce.
fn limits(config: &BrokerConfig) -> crate::broker::Limits {
    let l = &config.connection_limits;
    crate::broker::Limits {
        max_transaction_bytes: l
            .max_transaction_bytes
            .unwrap_or(config.memory_limit_bytes / 2),
        transaction_memory_bytes: config.memory_limit_bytes,
        max_prefetch: l.max_prefetch,
        max_pending_output_bytes: l.max_pending_output_bytes,
        max_subscriptions_per_connection: l.max_subscriptions_per_connection as usize,
        max_transactions_per_connection: l.max_transactions_per_connection as usize,
        max_producers_per_connection: l.max_producers_per_connection as usize,
        max_temp_destinations_per_connection: l.max_temp_destinations_per_connection as usize,
        max_composite_destinations: l.max_composite_destinations as usize,
        max_destinations: l.max_destinations as usize,
        store_limit_bytes: config.store_limit_bytes,
    }
}

/// What recovery does with a damaged journal range. `--skip-damaged-records`: skip it.
/// Otherwise a standalone node refuses to start (nothing else holds those records),
/// and a node of a pair (a configured master, or a peer remembered in `node.state`)
/// sets the damage aside and copies the rest of its log from the peer: before the log
/// is shortened, `node.state` is rewritten with `role=slave`, so this node does not
/// serve (not even after a crash in between) until it has attached to its peer and is
/// in sync again.
fn damage_policy(config: &BrokerConfig, state: &NodeState) -> store::OnDamage {
    if config.journal.skip_damaged_records {
        return store::OnDamage::Skip;
    }
    if config.replication.master.is_none() && state.peers.is_empty() {
        return store::OnDamage::Refuse;
    }
    let data_dir = config.data_directory.clone();
    // Shards recover in parallel: the first to find damage writes the state.
    let done = Arc::new(std::sync::Mutex::new(false));
    store::OnDamage::SetAside {
        prepare: Arc::new(move || {
            let mut done = done
                .lock()
                .map_err(|_| "node state lock poisoned".to_string())?;
            if *done {
                return Ok(());
            }
            let mut st = NodeState::load(&data_dir).map_err(|e| e.to_string())?;
            st.role = LastRole::Slave;
            st.store(&data_dir).map_err(|e| e.to_string())?;
            tracing::warn!(peers = ?st.peers, "journal damaged: this node follows its peer (node.state role=slave) until it has copied the damaged range from it");
            *done = true;
            Ok(())
        }),
    }
}

/// How many shards the journal directory was written with: the destination-to-shard
/// mapping depends on it, so an existing store keeps its count whatever the config
/// says now.
fn existing_shard_count(journal_dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(journal_dir) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name().to_str().is_some_and(|n| {
                n.strip_prefix("shard-")
                    .is_some_and(|i| i.parse::<usize>().is_ok())
            })
        })
        .count()
}

/// Raises the open-file limit to its hard maximum: every client connection is a
/// descriptor, and the usual soft limit (1024) is far below what a broker serves.
fn raise_open_file_limit() {
    // SAFETY: getrlimit/setrlimit on a local struct.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            let wanted = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) == 0 {
                tracing::info!(open_files = lim.rlim_max, "raised the open-file limit");
            }
        }
    }
}

/// Blocks SIGTERM and SIGINT in this thread and every thread it starts later, so that
/// [`wait_for_shutdown_signal`] receives them instead of the default handler killing
/// the process midway.
fn block_shutdown_signals() -> libc::sigset_t {
    // SAFETY: plain libc calls on a local, initialised signal set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

fn wait_for_shutdown_signal(set: &libc::sigset_t) -> i32 {
    let mut sig: libc::c_int = 0;
    // SAFETY: `set` was initialised by `block_shutdown_signals`.
    unsafe {
        libc::sigwait(set, &mut sig);
    }
    sig
}

/// Creates `dir` if missing and returns its absolute path, symlinks resolved.
///
/// Resolved once at start-up, so that nothing below depends on the working directory:
/// glommio opens a directory with `openat(-1, path)`, which fails with EBADF for a
/// relative path, and a journal that cannot fsync its directory stops (the README's
/// `dataDirectory="data/broker"` lost its first message that way). Resolving symlinks
/// also makes the log name the directory the data really lives in.
fn absolute_dir(dir: &Path) -> Result<PathBuf, NodeError> {
    let failed = |source| NodeError::DataDir {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(failed)?;
    std::fs::canonicalize(dir).map_err(failed)
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
    let signals = block_shutdown_signals();
    raise_open_file_limit();
    // Every directory is absolute from here on, whatever the configuration or the
    // command line said (see `absolute_dir`).
    config.data_directory = absolute_dir(&config.data_directory)?;
    let data_dir = config.data_directory.clone();
    let _lock = store::lock_dir(&data_dir)?;
    config.journal.directory = absolute_dir(&config.journal.directory)?;
    let journal_dir = config.journal.directory.clone();
    tracing::info!(data = %data_dir.display(), journal = %journal_dir.display(), "data directories");
    let node_state = NodeState::load(&data_dir)?;

    let mut shard_count = config.shards.count.max(1);
    let existing = existing_shard_count(&journal_dir);
    if existing > 0 && existing != shard_count {
        tracing::warn!(
            configured = shard_count,
            existing,
            "the journal was written with a different shard count; keeping the existing one"
        );
        shard_count = existing;
    }

    let connectors: Vec<&TransportConnector> = config
        .transport_connectors
        .iter()
        .filter(|c| {
            matches!(
                c.uri.scheme.wire(),
                Wire::Stomp | Wire::Auto | Wire::OpenWire
            )
        })
        .collect();
    if connectors.is_empty() {
        return Err(NodeError::NoConnector);
    }
    let status = bind_status(&config)?;

    let settings = Arc::new(broker_settings(&config, shard_count));
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
    let boot_id = format!(
        "{}-{}",
        config.broker_name,
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0)
    );

    let registries = Arc::new(crate::broker::Registries::default());
    let limit_stats = registries.limits.clone();
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
    let on_damage = damage_policy(&config, &node_state);
    let mut ends = channel::mesh(shard_count, 4096);
    let (opened_tx, opened_rx) = mpsc::channel::<Result<usize, (usize, String)>>();
    let (promoted_tx, promoted_rx) = mpsc::channel::<usize>();
    let mut serve_txs = Vec::new();
    // `/admin/*` commands, one channel per shard (pushed in reverse, like `serve_txs`).
    let mut admin_txs = Vec::new();
    // Set once the node serves clients as master: `/admin/*` answers 503 until then.
    let admin_open = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    // Shard executors that end (a panicking task takes the thread) are reported here.
    let (died_tx, died_rx) = mpsc::channel::<String>();
    // Journals that failed (an I/O error other than a full disk) are reported here.
    let (journal_failed_tx, journal_failed_rx) = mpsc::channel::<String>();
    let mut shard_ports: Vec<Option<port::ShardPort>> = shard_ports.into_iter().map(Some).collect();
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
            shard as u16,
            shard_port.live.clone(),
            replication_stats.clone(),
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
            stats: shard_stats[shard].clone(),
            registries: registries.clone(),
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
    drop(opened_tx);
    drop(promoted_tx);
    for _ in 0..shard_count {
        match opened_rx.recv_timeout(Duration::from_secs(300)) {
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

    // Recovery may have set damage aside, and recorded that this node must follow its
    // peer (see `damage_policy`).
    let node_state = NodeState::load(&data_dir)?;

    // The replication core, on its own executor (pinned when a core is given).
    let (requests_tx, requests_rx) = async_channel::unbounded::<Request>();
    let (events_tx, events_rx) = mpsc::channel::<Event>();
    let core_settings = core_settings(&config, shard_count, &connectors, replication_stats.clone());
    let core_spec = ExecutorSpec {
        name: "tandem-replication".into(),
        cpu: replication_cpu(&config),
        io_memory_bytes: io_memory,
        ring_depth,
    };
    let core_handle = exec::start(&core_spec, move || async move {
        replication::core::run(core_settings, node_state, core_port, requests_rx, events_tx).await;
    })
    .map_err(NodeError::Executor)?;

    // Started after the executors (see GLOMMIO.md: threads that exist before them
    // slow their first timers).
    let _status_thread = match status {
        Some(listener) => {
            let info = metrics::BrokerInfo {
                broker: config.broker_name.clone(),
                replication: replication_stats.clone(),
                started: std::time::Instant::now(),
                memory_limit_bytes: config.memory_limit_bytes,
                limits: limit_stats.clone(),
            };
            let admin: Arc<dyn metrics::Admin> =
                Arc::new(admin::NodeAdmin::new(admin_txs, admin_open.clone()));
            let auth = if config.auth_enabled {
                metrics::AdminAuth::Basic {
                    users: config
                        .users
                        .iter()
                        .map(|u| metrics::AdminUser {
                            username: u.username.clone(),
                            password: u.password.clone(),
                            groups: u.groups.clone(),
                        })
                        .collect(),
                    group: config.admin_group.clone(),
                }
            } else {
                metrics::AdminAuth::Open
            };
            Some(
                listener
                    .serve(
                        info,
                        shard_stats,
                        Some(admin),
                        auth,
                        config.status_host.to_string(),
                    )
                    .map_err(NodeError::Executor)?,
            )
        }
        None => None,
    };

    let stop_signal = Arc::new(std::sync::atomic::AtomicI32::new(0));
    {
        let stop_signal = stop_signal.clone();
        std::thread::Builder::new()
            .name("tandem-signals".into())
            .spawn(move || {
                let sig = wait_for_shutdown_signal(&signals);
                stop_signal.store(sig, Ordering::Release);
            })
            .map_err(NodeError::Executor)?;
    }

    let clients_open = Arc::new(AtomicBool::new(true));
    let mut open: Vec<BoundListener> = Vec::new();
    let mut deferred: Vec<&TransportConnector> = Vec::new();
    let mut wait_for_slave_until: Option<std::time::Instant> = None;
    let result = loop {
        if let Ok(executor) = died_rx.try_recv() {
            tracing::error!(executor = %executor, "an executor thread stopped (a task panicked); stopping the node");
            break Err(NodeError::ExecutorDied(executor));
        }
        if let Ok(why) = journal_failed_rx.try_recv() {
            tracing::error!(error = %why, "a journal failed: stopping the node so that the slave (or the service manager) takes over");
            // Let the shards answer what was certainly not written (see
            // `store::writer`) before the connections close.
            std::thread::sleep(JOURNAL_FAILURE_GRACE);
            break Err(NodeError::JournalFailed(why));
        }
        let sig = stop_signal.load(Ordering::Acquire);
        if sig != 0 {
            tracing::info!(signal = sig, "shutting down");
            for l in &open {
                l.shutdown();
            }
            let _ = requests_tx.try_send(Request::Shutdown);
            let deadline = std::time::Instant::now() + Duration::from_secs(1);
            while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
                match events_rx.recv_timeout(left) {
                    Ok(Event::Stopped) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            break Ok(());
        }
        if let Some(until) = wait_for_slave_until {
            if std::time::Instant::now() >= until {
                break Err(NodeError::WaitForSlave(
                    config.replication.wait_for_slave_timeout_ms,
                ));
            }
        }
        let event = match events_rx.recv_timeout(Duration::from_millis(20)) {
            Ok(e) => e,
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                break Err(NodeError::Shard {
                    shard: usize::MAX,
                    reason: "the replication core stopped".into(),
                })
            }
        };
        match event {
            Event::Serve { epoch, takeover } => {
                let started = std::time::Instant::now();
                for _ in 0..shard_count {
                    if promoted_rx.recv_timeout(Duration::from_secs(120)).is_err() {
                        break;
                    }
                }
                let wait = config.replication.wait_for_slave && !takeover;
                clients_open.store(!wait, Ordering::Release);
                admin_open.store(!wait, Ordering::Release);
                // `waitForSlave`: only the connectors a slave attaches to (tcp://) open
                // now, holding clients; the others open once a slave is in sync, so
                // clients meanwhile see a refused connection.
                let (now, later): (Vec<&TransportConnector>, Vec<&TransportConnector>) = if wait
                    && connectors
                        .iter()
                        .any(|c| c.uri.scheme.wire() == Wire::OpenWire)
                {
                    connectors
                        .iter()
                        .partition(|c| c.uri.scheme.wire() == Wire::OpenWire)
                } else {
                    (connectors.clone(), Vec::new())
                };
                deferred = later;
                match bind_connectors(&now, &config, &clients_open, &slave_sockets) {
                    Ok(l) => open.extend(hand_to_shards(l, &serve_txs)),
                    Err(e) => break Err(e),
                }
                if takeover {
                    replication_stats.set_last_takeover_ms(started.elapsed().as_millis() as u64);
                    tracing::warn!(broker = %config.broker_name, epoch, "Tandem took over: serving clients as master");
                } else if wait {
                    let timeout = config.replication.wait_for_slave_timeout_ms;
                    wait_for_slave_until =
                        Some(std::time::Instant::now() + Duration::from_millis(timeout));
                    tracing::info!(broker = %config.broker_name, epoch, timeout_ms = timeout, "Tandem started as master; waitForSlave: clients wait until a slave is in sync");
                } else {
                    tracing::info!(broker = %config.broker_name, epoch, data = %data_dir.display(), "Tandem started");
                }
            }
            Event::SlaveInSync => {
                if wait_for_slave_until.take().is_some() {
                    tracing::info!("slave in sync: serving clients");
                }
                clients_open.store(true, Ordering::Release);
                admin_open.store(true, Ordering::Release);
                let later = std::mem::take(&mut deferred);
                if !later.is_empty() {
                    match bind_connectors(&later, &config, &clients_open, &slave_sockets) {
                        Ok(l) => open.extend(hand_to_shards(l, &serve_txs)),
                        Err(e) => break Err(e),
                    }
                }
            }
            Event::Exit { code, reason } => {
                for l in &open {
                    l.shutdown();
                }
                if code == 0 {
                    tracing::warn!("{reason}");
                    break Ok(());
                }
                break Err(NodeError::Replication(reason));
            }
            Event::Stopped => {}
        }
    };
    for l in &open {
        l.shutdown();
    }
    // The executors are not joined: they serve until the process exits.
    drop(handles);
    drop(core_handle);
    if result.is_ok() {
        tracing::info!("Tandem stopped");
    }
    result
}

type Listeners = Vec<(BoundListener, Arc<net::ConnectorPolicy>)>;

/// Gives every shard a descriptor of each listener; returns the listeners (to shut
/// them down at exit).
fn hand_to_shards(
    listeners: Listeners,
    serve_txs: &[async_channel::Sender<Listeners>],
) -> Vec<BoundListener> {
    for tx in serve_txs {
        let mut mine = Vec::new();
        for (l, policy) in &listeners {
            match l.try_clone() {
                Ok(dup) => mine.push((dup, policy.clone())),
                Err(e) => tracing::error!(error = %e, "cannot share a listener with a shard"),
            }
        }
        let _ = tx.try_send(mine);
    }
    listeners.into_iter().map(|(l, _)| l).collect()
}

/// Binds client connectors; each accepts STOMP clients and replication links.
fn bind_connectors(
    connectors: &[&TransportConnector],
    config: &BrokerConfig,
    clients_open: &Arc<AtomicBool>,
    slave_sockets: &async_channel::Sender<port::Live>,
) -> Result<Listeners, NodeError> {
    let mut listeners = Vec::new();
    for c in connectors {
        let l = BoundListener::bind(c.uri.addr, 1024).map_err(|source| NodeError::Bind {
            name: c.name.clone(),
            addr: c.uri.addr,
            source,
        })?;
        let addr = l.local_addr().unwrap_or(c.uri.addr);
        tracing::info!(connector = %c.name, %addr, "listening (STOMP, OpenWire, replication)");
        let mut policy = net::ConnectorPolicy::new(
            &c.name,
            c.max_connections.map(|n| n as usize),
            c.max_frame_bytes as usize,
        );
        policy.connect_attempt_timeout = Duration::from_millis(c.connect_attempt_timeout_ms);
        policy.max_login_frame_bytes = config.limits.max_login_frame_bytes as usize;
        let to_core = slave_sockets.clone();
        policy.replication = Some(Arc::new(move |stream, slot| {
            let _ = to_core.try_send(port::Live::SlaveSocket { stream, slot });
        }));
        policy.clients_open = clients_open.clone();
        listeners.push((l, Arc::new(policy)));
    }
    Ok(listeners)
}

/// The CPU the replication executor is pinned to: `<tandem replicationCore>`, else,
/// when the shards are pinned and an allowed CPU is left over, the first such CPU;
/// else none (it shares the CPUs, as on a small host).
fn replication_cpu(config: &BrokerConfig) -> Option<usize> {
    if let Some(cpu) = config.shards.replication_core {
        return Some(cpu);
    }
    if !config.shards.pin_cores {
        return None;
    }
    crate::config::cpus::allowed_cpus()
        .into_iter()
        .find(|c| !config.shards.cores.contains(c))
}

/// The replication core's settings from the configuration.
fn core_settings(
    config: &BrokerConfig,
    shards: usize,
    connectors: &[&TransportConnector],
    stats: Arc<ReplicationStats>,
) -> CoreSettings {
    let r = &config.replication;
    let acceptor = replication_acceptor(config);
    CoreSettings {
        shards,
        data_dir: config.data_directory.clone(),
        master: r.master.as_ref().map(|m| MasterTarget {
            addr: m.uri.addr,
            login: master_login(m, &acceptor),
        }),
        acceptor,
        shutdown_on_master_failure: r.shutdown_on_master_failure,
        shutdown_on_slave_failure: r.shutdown_on_slave_failure,
        ack: match r.ack {
            ReplicationAck::Fsync => AckMode::Fsync,
            ReplicationAck::Received => AckMode::Received,
        },
        heartbeat: Duration::from_millis(r.heartbeat_ms),
        ack_timeout: Duration::from_millis(r.link.ack_timeout_ms),
        buffer_bytes: usize::try_from(r.link.buffer_bytes).unwrap_or(usize::MAX),
        // OpenWire (tcp://) first: it is where ActiveMQ slaves attach.
        client_addrs: connectors
            .iter()
            .filter(|c| c.uri.scheme.wire() == Wire::OpenWire)
            .chain(
                connectors
                    .iter()
                    .filter(|c| c.uri.scheme.wire() != Wire::OpenWire),
            )
            .map(|c| c.uri.addr)
            .collect(),
        stats,
    }
}

/// Who may attach as a slave: the plugin's users (when it is on) of the replication
/// group, and the replication secret (see `replication::auth`).
fn replication_acceptor(config: &BrokerConfig) -> Acceptor {
    let link = &config.replication.link;
    Acceptor {
        plugin: config.auth_enabled.then(|| {
            config
                .users
                .iter()
                .map(|u| PluginUser {
                    name: u.username.clone(),
                    key: Key::new(&u.password),
                    groups: u.groups.clone(),
                })
                .collect()
        }),
        group: link.group.clone(),
        secret: link.secret.as_ref().map(|s| Key::new(&s.0)),
    }
}

/// What a slave proves to its master: `<masterConnector userName password>` when the
/// password is given, else the replication secret.
fn master_login(m: &crate::config::MasterConnector, acceptor: &Acceptor) -> Option<Login> {
    match &m.password {
        Some(password) => Some(Login {
            user: m.user_name.clone().unwrap_or_default(),
            key: Key::new(password),
        }),
        None => acceptor.secret.clone().map(|key| Login {
            user: String::new(),
            key,
        }),
    }
}

/// Binds the status endpoint if `statusPort` is set, on `statusHost` (default
/// 127.0.0.1: the admin operations are not reachable from other hosts unless the
/// operator says so).
fn bind_status(config: &BrokerConfig) -> Result<Option<StatusListener>, NodeError> {
    let Some(port) = config.status_port.filter(|p| *p != 0) else {
        return Ok(None);
    };
    let ip = config.status_host;
    let addr = std::net::SocketAddr::new(ip, port);
    let listener = StatusListener::bind(addr).map_err(|source| NodeError::StatusBind {
        port,
        addr,
        source,
    })?;
    tracing::info!(%addr, "status endpoint listening (GET /status, /metrics; POST /admin/purge, /admin/delete)");
    Ok(Some(listener))
}
