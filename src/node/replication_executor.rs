//! Where the replication core runs, and starting it there: it decides the node's role
//! and tells the supervision loop through [`Event`]s.
//!
//! On a host with a CPU to spare it gets an executor of its own (pinned when the shards
//! are, or when `replicationCore` names a CPU), so shipping and acknowledging never
//! wait behind a shard's work. On a smaller host (fewer allowed CPUs than shards + 1,
//! and no `replicationCore`) it runs as a task on shard 0's executor instead: a thread
//! of its own there would only compete with the shards for the same CPUs, and every
//! batch it ships and every acknowledgement it hands back would cost a cross-thread
//! wake-up (docs/perf/PROFILE.md); on shard 0 those hand-offs are local.

use std::sync::mpsc;

use super::NodeError;
use crate::config::BrokerConfig;
use crate::replication;
use crate::replication::core::{CoreSettings, Event, Request};
use crate::replication::port;
use crate::replication::state::NodeState;
use crate::rt::exec::{self, ExecutorHandle, ExecutorSpec};

/// Where the replication core runs (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Placement {
    /// Its own executor, pinned to this CPU or unpinned.
    Dedicated(Option<usize>),
    /// A task on shard 0's executor.
    OnShard0,
}

/// The running replication core and the channels to and from it.
pub(super) struct ReplicationCore {
    /// Its own executor, if it has one. Not joined: it runs until the process exits.
    pub handle: Option<ExecutorHandle<()>>,
    pub requests_tx: async_channel::Sender<Request>,
    pub events_rx: mpsc::Receiver<Event>,
}

/// Starts the replication core's executor with `core_settings`
/// (`settings::core_settings`).
pub(super) fn start(
    config: &BrokerConfig,
    shard_count: usize,
    core_settings: CoreSettings,
    node_state: NodeState,
    core_port: port::CorePort,
    shard0_guests: &async_channel::Sender<exec::Guest>,
) -> Result<ReplicationCore, NodeError> {
    let (requests_tx, requests_rx) = async_channel::unbounded::<Request>();
    let (events_tx, events_rx) = mpsc::channel::<Event>();
    let run = move || async move {
        replication::core::run(core_settings, node_state, core_port, requests_rx, events_tx).await;
    };
    let placement = placement(
        config,
        shard_count,
        crate::config::cpus::allowed_cpus().len(),
    );
    tracing::info!(?placement, "replication core placement");
    let handle = match placement {
        Placement::Dedicated(cpu) => {
            let core_spec = ExecutorSpec {
                name: "tandem-replication".into(),
                cpu,
                io_memory_bytes: config.shards.io_memory_bytes as usize,
                ring_depth: config.shards.ring_depth as usize,
            };
            Some(exec::start(&core_spec, run).map_err(NodeError::Executor)?)
        }
        Placement::OnShard0 => {
            let guest: exec::Guest = Box::new(move || Box::pin(run()));
            shard0_guests.send_blocking(guest).map_err(|_| {
                NodeError::Executor(std::io::Error::other(
                    "shard 0 is gone: cannot start the replication core on it",
                ))
            })?;
            None
        }
    };
    Ok(ReplicationCore {
        handle,
        requests_tx,
        events_rx,
    })
}

/// Where the core runs, given how many CPUs this process may use (module doc).
pub(super) fn placement(
    config: &BrokerConfig,
    shard_count: usize,
    allowed_cpus: usize,
) -> Placement {
    if config.shards.replication_core.is_none() && allowed_cpus < shard_count + 1 {
        return Placement::OnShard0;
    }
    Placement::Dedicated(replication_cpu(config))
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(tandem: &str) -> BrokerConfig {
        let xml = format!(
            "<broker xmlns=\"http://activemq.apache.org/schema/core\" brokerName=\"t\">\
             <transportConnectors><transportConnector uri=\"tcp://127.0.0.1:0\"/></transportConnectors>\
             {tandem}</broker>"
        );
        crate::config::parse_str(&xml, Path::new("test.xml"))
            .expect("test config parses")
            .0
    }

    #[test]
    fn small_hosts_run_the_core_on_shard_0_and_large_ones_give_it_an_executor() {
        let two_shards = config("<tandem shards=\"2\" pinCores=\"false\"/>");
        assert_eq!(placement(&two_shards, 2, 2), Placement::OnShard0);
        assert_eq!(placement(&two_shards, 2, 3), Placement::Dedicated(None));
        let one_shard = config("<tandem shards=\"1\" pinCores=\"false\"/>");
        assert_eq!(placement(&one_shard, 1, 1), Placement::OnShard0);
        assert_eq!(placement(&one_shard, 1, 2), Placement::Dedicated(None));
    }

    #[test]
    fn a_configured_replication_core_always_gets_its_own_executor() {
        let c = config("<tandem shards=\"1\" pinCores=\"false\" replicationCore=\"0\"/>");
        assert_eq!(placement(&c, 1, 1), Placement::Dedicated(Some(0)));
    }
}
