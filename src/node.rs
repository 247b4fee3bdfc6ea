//! The composition root: turns a [`BrokerConfig`] into running executors, shards and
//! listeners, and wires the mesh between them.
//!
//! Start-up order matters: everything that can fail for a reason the operator must
//! fix (data directory locked, port in use, journal unreadable) fails before the
//! broker reports itself started, with a one-line reason.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use crate::broker::shard::{Shard, ShardSetup};
use crate::broker::{BrokerSettings, User};
use crate::config::BrokerConfig;
use crate::metrics::{self, ShardStats, StatusListener};
use crate::net;
use crate::rt::channel;
use crate::rt::exec::{self, ExecutorSpec};
use crate::rt::net::BoundListener;
use crate::store;
use crate::uri::Wire;

/// Why the node could not start.
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
    #[error("this is a slave configuration (master {0}), and this release has no master/slave replication yet: refusing to run it as an unreplicated broker")]
    SlaveUnsupported(String),
    #[error("no transport connector this version serves (stomp://) is configured")]
    NoConnector,
    #[error("cannot start executor: {0}")]
    Executor(std::io::Error),
    #[error("shard {shard} failed to start: {reason}")]
    Shard { shard: usize, reason: String },
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
        ..defaults
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

/// Runs the broker until SIGTERM or SIGINT (then returns `Ok`), or fails to start.
///
/// Shutdown needs no flush to be safe: nothing was confirmed to a client before it
/// was durable, so whatever is still in flight was never promised. The listeners are
/// closed first so the port is free as soon as the process exits.
pub fn run(config: BrokerConfig) -> Result<(), NodeError> {
    if let Some(master) = &config.replication.master {
        return Err(NodeError::SlaveUnsupported(master.uri.to_string()));
    }
    let signals = block_shutdown_signals();
    raise_open_file_limit();
    let data_dir = config.data_directory.clone();
    std::fs::create_dir_all(&data_dir).map_err(|source| NodeError::DataDir {
        path: data_dir.clone(),
        source,
    })?;
    let _lock = store::lock_dir(&data_dir)?;
    let journal_dir = config.journal.directory.clone();
    std::fs::create_dir_all(&journal_dir).map_err(|source| NodeError::DataDir {
        path: journal_dir.clone(),
        source,
    })?;

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

    let mut listeners = Vec::new();
    for c in &config.transport_connectors {
        match c.uri.scheme.wire() {
            Wire::Stomp | Wire::Auto => {}
            Wire::OpenWire => {
                tracing::warn!(connector = %c.name, "OpenWire is not served yet; connector not opened");
                continue;
            }
        }
        let l = BoundListener::bind(c.uri.addr, 1024).map_err(|source| NodeError::Bind {
            name: c.name.clone(),
            addr: c.uri.addr,
            source,
        })?;
        let addr = l.local_addr().unwrap_or(c.uri.addr);
        tracing::info!(connector = %c.name, %addr, "listening (STOMP)");
        let policy = Arc::new(net::ConnectorPolicy::new(
            &c.name,
            c.max_connections.map(|n| n as usize),
            c.max_frame_bytes as usize,
        ));
        listeners.push((l, policy));
    }
    if listeners.is_empty() {
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
        memlock_estimate_bytes = shard_count * 3 * (io_memory + ring_depth * 64 * 2),
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

    // Shards serve clients only once every shard has recovered: a client on one shard
    // reaches destinations on all of them.
    let shard_stats: Vec<Arc<ShardStats>> = (0..shard_count)
        .map(|shard| Arc::new(ShardStats::new(shard, status.is_some())))
        .collect();
    let recovered = Arc::new(AtomicUsize::new(0));
    let mut ends = channel::mesh(shard_count, 4096);
    let (ready_tx, ready_rx) = mpsc::channel::<Result<usize, (usize, String)>>();
    let mut handles = Vec::new();
    for shard in (0..shard_count).rev() {
        let Some(mesh) = ends.pop() else { break };
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
        let mut shard_listeners = Vec::new();
        for (l, policy) in &listeners {
            shard_listeners.push((l.try_clone().map_err(NodeError::Executor)?, policy.clone()));
        }
        let setup = ShardSetup {
            shard,
            shard_count,
            settings: settings.clone(),
            journal_dir: journal_dir.join(format!("shard-{shard}")),
            segment_bytes: config.journal.segment_bytes,
            mesh,
            boot_id: boot_id.clone(),
            stats: shard_stats[shard].clone(),
        };
        let ready = ready_tx.clone();
        let recovered = recovered.clone();
        let handle = exec::start(&spec, move || async move {
            let (_shard, router) = match Shard::start(setup).await {
                Ok(s) => s,
                Err(e) => {
                    let _ = ready.send(Err((shard, e.to_string())));
                    return;
                }
            };
            recovered.fetch_add(1, Ordering::AcqRel);
            while recovered.load(Ordering::Acquire) < shard_count {
                crate::rt::sleep(Duration::from_millis(1)).await;
            }
            for (l, policy) in shard_listeners {
                let router = router.clone();
                crate::rt::spawn_local(net::serve_stomp(l.into_listener(), router, policy));
            }
            let _ = ready.send(Ok(shard));
            // The shard lives until the process ends.
            std::future::pending::<()>().await;
        })
        .map_err(NodeError::Executor)?;
        handles.push(handle);
    }
    drop(ready_tx);
    for _ in 0..shard_count {
        match ready_rx.recv_timeout(Duration::from_secs(300)) {
            Ok(Ok(_)) => {}
            Ok(Err((shard, reason))) => return Err(NodeError::Shard { shard, reason }),
            Err(_) => {
                return Err(NodeError::Shard {
                    shard: usize::MAX,
                    reason: "a shard did not start within 300 s".into(),
                })
            }
        }
    }
    // Started after the executors (see GLOMMIO.md: threads that exist before them
    // slow their first timers) and once every shard publishes.
    let _status_thread = match status {
        Some(listener) => {
            let info = metrics::BrokerInfo {
                broker: config.broker_name.clone(),
                // Standalone until the replication link is wired and publishes here.
                replication: Arc::new(metrics::ReplicationStats::new()),
                started: std::time::Instant::now(),
                memory_limit_bytes: config.memory_limit_bytes,
            };
            Some(
                listener
                    .serve(info, shard_stats)
                    .map_err(NodeError::Executor)?,
            )
        }
        None => None,
    };
    tracing::info!(broker = %config.broker_name, data = %data_dir.display(), "Tandem started");
    let sig = wait_for_shutdown_signal(&signals);
    tracing::info!(signal = sig, "shutting down");
    for (l, _) in &listeners {
        l.shutdown();
    }
    // The executors are not joined: they serve until the process exits.
    drop(handles);
    tracing::info!("Tandem stopped");
    Ok(())
}

/// Binds the status endpoint if `statusPort` is set: on the host of the first transport
/// connector (so a broker bound to one interface does not expose its status on all of
/// them), or 127.0.0.1 when there is none.
fn bind_status(config: &BrokerConfig) -> Result<Option<StatusListener>, NodeError> {
    let Some(port) = config.status_port.filter(|p| *p != 0) else {
        return Ok(None);
    };
    let ip = config
        .transport_connectors
        .first()
        .map_or(std::net::IpAddr::from([127, 0, 0, 1]), |c| c.uri.addr.ip());
    let addr = std::net::SocketAddr::new(ip, port);
    let listener = StatusListener::bind(addr).map_err(|source| NodeError::StatusBind {
        port,
        addr,
        source,
    })?;
    tracing::info!(%addr, "status endpoint listening (GET /status, /metrics)");
    Ok(Some(listener))
}
