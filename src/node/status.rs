//! The status endpoint (`statusPort`): bound before anything starts, its thread
//! started after the executors.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use super::{admin, NodeError};
use crate::config::BrokerConfig;
use crate::metrics::replication::ReplicationStats;
use crate::metrics::{self, ShardStats, StatusListener};

/// Binds the status endpoint if `statusPort` is set, on `statusHost` (default
/// 127.0.0.1: the admin operations are not reachable from other hosts unless the
/// operator says so).
pub(super) fn bind_status(config: &BrokerConfig) -> Result<Option<StatusListener>, NodeError> {
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

/// What the status endpoint reports and acts on.
pub(super) struct StatusSources {
    pub replication: Arc<ReplicationStats>,
    pub limits: Arc<metrics::LimitStats>,
    pub shards: Vec<Arc<ShardStats>>,
    /// `/admin/*` commands, one channel per shard.
    pub admin_txs: Vec<async_channel::Sender<admin::AdminCommand>>,
    /// Set once the node serves clients as master: `/admin/*` answers 503 until then.
    pub admin_open: Arc<AtomicBool>,
}

/// Starts the status endpoint's thread, if it is bound. Started after the executors
/// (see GLOMMIO.md: threads that exist before them slow their first timers).
pub(super) fn start(
    status: Option<StatusListener>,
    config: &BrokerConfig,
    sources: StatusSources,
) -> Result<Option<std::thread::JoinHandle<()>>, NodeError> {
    let Some(listener) = status else {
        return Ok(None);
    };
    let info = metrics::BrokerInfo {
        broker: config.broker_name.clone(),
        replication: sources.replication,
        started: std::time::Instant::now(),
        memory_limit_bytes: config.memory_limit_bytes,
        limits: sources.limits,
    };
    let admin: Arc<dyn metrics::Admin> =
        Arc::new(admin::NodeAdmin::new(sources.admin_txs, sources.admin_open));
    Ok(Some(
        listener
            .serve(
                info,
                sources.shards,
                Some(admin),
                admin_auth(config),
                config.status_host.to_string(),
            )
            .map_err(NodeError::Executor)?,
    ))
}

/// Who may call `/admin/*`: the plugin's users of `adminGroup` when authentication is
/// on, anyone (who reaches `statusHost`) otherwise.
fn admin_auth(config: &BrokerConfig) -> metrics::AdminAuth {
    if config.auth_enabled {
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
    }
}
