//! The replication core on its own executor (pinned when a core is given): it decides
//! the node's role and tells the supervision loop through [`Event`]s.

use std::sync::mpsc;
use std::sync::Arc;

use super::{settings, NodeError};
use crate::config::{BrokerConfig, TransportConnector};
use crate::metrics::replication::ReplicationStats;
use crate::replication;
use crate::replication::core::{Event, Request};
use crate::replication::port;
use crate::replication::state::NodeState;
use crate::rt::exec::{self, ExecutorHandle, ExecutorSpec};

/// The running replication core and the channels to and from it.
pub(super) struct ReplicationCore {
    /// Not joined: it runs until the process exits.
    pub handle: ExecutorHandle<()>,
    pub requests_tx: async_channel::Sender<Request>,
    pub events_rx: mpsc::Receiver<Event>,
}

/// Starts the replication core's executor.
pub(super) fn start(
    config: &BrokerConfig,
    shard_count: usize,
    connectors: &[&TransportConnector],
    stats: Arc<ReplicationStats>,
    node_state: NodeState,
    core_port: port::CorePort,
) -> Result<ReplicationCore, NodeError> {
    let (requests_tx, requests_rx) = async_channel::unbounded::<Request>();
    let (events_tx, events_rx) = mpsc::channel::<Event>();
    let core_settings = settings::core_settings(config, shard_count, connectors, stats);
    let core_spec = ExecutorSpec {
        name: "tandem-replication".into(),
        cpu: replication_cpu(config),
        io_memory_bytes: config.shards.io_memory_bytes as usize,
        ring_depth: config.shards.ring_depth as usize,
    };
    let handle = exec::start(&core_spec, move || async move {
        replication::core::run(core_settings, node_state, core_port, requests_rx, events_tx).await;
    })
    .map_err(NodeError::Executor)?;
    Ok(ReplicationCore {
        handle,
        requests_tx,
        events_rx,
    })
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
