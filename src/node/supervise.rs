//! The node's main loop once everything has started: it polls every 20 ms for a
//! failure (a dead executor, a failed journal), a shutdown signal and the
//! `waitForSlaveTimeout`, and reacts to the replication core's events by opening the
//! client connectors (serve, takeover, slave in sync) or stopping.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::listeners::{bind_connectors, hand_to_shards};
use super::replication_executor::ReplicationCore;
use super::shards::Shards;
use super::NodeError;
use crate::config::{BrokerConfig, TransportConnector};
use crate::metrics::replication::ReplicationStats;
use crate::replication::core::{Event, Request};
use crate::replication::port;
use crate::rt::net::BoundListener;
use crate::uri::Wire;

/// How long a node whose journal failed goes on before it exits: time for the error
/// answers to reach their clients.
const JOURNAL_FAILURE_GRACE: Duration = Duration::from_millis(300);

/// How often the loop looks at the failure channels and the shutdown signal.
const POLL: Duration = Duration::from_millis(20);

/// The supervision loop's inputs and state.
pub(super) struct Supervisor<'a> {
    pub config: &'a BrokerConfig,
    pub connectors: &'a [&'a TransportConnector],
    pub tls: &'a super::tls::NodeTls,
    pub shards: &'a Shards,
    pub core: &'a ReplicationCore,
    /// The shutdown signal received (0: none yet).
    pub stop_signal: &'a AtomicI32,
    /// Set once the node serves clients as master: `/admin/*` answers 503 until then.
    pub admin_open: &'a AtomicBool,
    pub replication_stats: &'a ReplicationStats,
    /// Where the connectors hand replication links (to the core).
    pub slave_sockets: &'a async_channel::Sender<port::Live>,
}

/// What the loop keeps between turns.
struct State<'a> {
    clients_open: Arc<AtomicBool>,
    open: Vec<BoundListener>,
    deferred: Vec<&'a TransportConnector>,
    wait_for_slave_until: Option<Instant>,
}

/// What the loop does after a turn.
type Turn = Option<Result<(), NodeError>>;

impl<'a> Supervisor<'a> {
    /// Runs until a signal, a failure or the replication core ends the node; the
    /// listeners are shut down on the way out.
    pub fn run(&self) -> Result<(), NodeError> {
        let mut state = State {
            clients_open: Arc::new(AtomicBool::new(true)),
            open: Vec::new(),
            deferred: Vec::new(),
            wait_for_slave_until: None,
        };
        let result = loop {
            if let Some(end) = self.check(&state) {
                break end;
            }
            let event = match self.core.events_rx.recv_timeout(POLL) {
                Ok(e) => e,
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    break Err(NodeError::Shard {
                        shard: usize::MAX,
                        reason: "the replication core stopped".into(),
                    })
                }
            };
            if let Some(end) = self.on_event(event, &mut state) {
                break end;
            }
        };
        for l in &state.open {
            l.shutdown();
        }
        result
    }

    /// A dead executor, a failed journal, a shutdown signal or an expired
    /// `waitForSlaveTimeout` ends the loop.
    fn check(&self, state: &State<'a>) -> Turn {
        if let Ok(executor) = self.shards.died_rx.try_recv() {
            tracing::error!(executor = %executor, "an executor thread stopped (a task panicked); stopping the node");
            return Some(Err(NodeError::ExecutorDied(executor)));
        }
        if let Ok(why) = self.shards.journal_failed_rx.try_recv() {
            tracing::error!(error = %why, "a journal failed: stopping the node so that the slave (or the service manager) takes over");
            // Let the shards answer what was certainly not written (see
            // `store::writer`) before the connections close.
            std::thread::sleep(JOURNAL_FAILURE_GRACE);
            return Some(Err(NodeError::JournalFailed(why)));
        }
        let sig = self.stop_signal.load(Ordering::Acquire);
        if sig != 0 {
            tracing::info!(signal = sig, "shutting down");
            for l in &state.open {
                l.shutdown();
            }
            self.stop_core();
            return Some(Ok(()));
        }
        if let Some(until) = state.wait_for_slave_until {
            if Instant::now() >= until {
                return Some(Err(NodeError::WaitForSlave(
                    self.config.replication.wait_for_slave_timeout_ms,
                )));
            }
        }
        None
    }

    /// Asks the replication core to stop and waits up to a second until it has.
    fn stop_core(&self) {
        let _ = self.core.requests_tx.try_send(Request::Shutdown);
        let deadline = Instant::now() + Duration::from_secs(1);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.core.events_rx.recv_timeout(left) {
                Ok(Event::Stopped) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }

    fn on_event(&self, event: Event, state: &mut State<'a>) -> Turn {
        match event {
            Event::Serve { epoch, takeover } => self.serve(epoch, takeover, state),
            Event::SlaveInSync => self.slave_in_sync(state),
            Event::Exit { code, reason } => {
                for l in &state.open {
                    l.shutdown();
                }
                if code == 0 {
                    tracing::warn!("{reason}");
                    return Some(Ok(()));
                }
                Some(Err(NodeError::Replication(reason)))
            }
            Event::Restart { reason } => {
                for l in &state.open {
                    l.shutdown();
                }
                Some(Err(NodeError::Restart(reason)))
            }
            Event::Stopped => None,
        }
    }

    /// This node is master: once every shard is promoted, opens the connectors (only
    /// those a slave attaches to while `waitForSlave` holds clients).
    fn serve(&self, epoch: u64, takeover: bool, state: &mut State<'a>) -> Turn {
        let config = self.config;
        let started = Instant::now();
        for _ in 0..self.shards.count {
            if self
                .shards
                .promoted_rx
                .recv_timeout(Duration::from_secs(120))
                .is_err()
            {
                break;
            }
        }
        let wait = config.replication.wait_for_slave && !takeover;
        state.clients_open.store(!wait, Ordering::Release);
        self.admin_open.store(!wait, Ordering::Release);
        // `waitForSlave`: only the connectors a slave attaches to (tcp://) open
        // now, holding clients; the others open once a slave is in sync, so
        // clients meanwhile see a refused connection.
        let (now, later): (Vec<&TransportConnector>, Vec<&TransportConnector>) = if wait
            && self
                .connectors
                .iter()
                .any(|c| c.uri.scheme.wire() == Wire::OpenWire)
        {
            self.connectors
                .iter()
                .partition(|c| c.uri.scheme.wire() == Wire::OpenWire)
        } else {
            (self.connectors.to_vec(), Vec::new())
        };
        state.deferred = later;
        if let Err(e) = self.open_connectors(&now, state) {
            return Some(Err(e));
        }
        if takeover {
            self.replication_stats
                .set_last_takeover_ms(started.elapsed().as_millis() as u64);
            tracing::warn!(broker = %config.broker_name, epoch, "Tandem took over: serving clients as master");
        } else if wait {
            let timeout = config.replication.wait_for_slave_timeout_ms;
            state.wait_for_slave_until = Some(Instant::now() + Duration::from_millis(timeout));
            tracing::info!(broker = %config.broker_name, epoch, timeout_ms = timeout, "Tandem started as master; waitForSlave: clients wait until a slave is in sync");
        } else {
            tracing::info!(broker = %config.broker_name, epoch, data = %config.data_directory.display(), "Tandem started");
        }
        None
    }

    /// A slave is in sync: clients are served, and the connectors `waitForSlave`
    /// held back open.
    fn slave_in_sync(&self, state: &mut State<'a>) -> Turn {
        if state.wait_for_slave_until.take().is_some() {
            tracing::info!("slave in sync: serving clients");
        }
        state.clients_open.store(true, Ordering::Release);
        self.admin_open.store(true, Ordering::Release);
        let later = std::mem::take(&mut state.deferred);
        if !later.is_empty() {
            if let Err(e) = self.open_connectors(&later, state) {
                return Some(Err(e));
            }
        }
        None
    }

    /// Binds `connectors` and hands them to every shard.
    fn open_connectors(
        &self,
        connectors: &[&TransportConnector],
        state: &mut State<'a>,
    ) -> Result<(), NodeError> {
        let l = bind_connectors(
            connectors,
            self.config,
            self.tls,
            &state.clients_open,
            self.slave_sockets,
        )?;
        state.open.extend(hand_to_shards(l, &self.shards.serve_txs));
        Ok(())
    }
}
