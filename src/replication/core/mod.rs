//! The replication core: one task on its own executor that decides this node's role
//! and runs the link to the peer.
//!
//! ```text
//!            ┌──────────── start ────────────┐
//!            ▼                               │
//!   discover: ask the peer (the configured master, or the one node.state remembers)
//!      │ welcomed            │ refused             │ nobody answers
//!      ▼                     ▼                     ▼
//!   slave loop           exit 1 (reason)      may we serve? (node.state, config)
//!      │ master lost           │ yes → master loop (epoch + 1)
//!      │ in sync: take over ───┘ no  → retry discover
//!      │ not in sync: retry discover
//! ```
//!
//! The core owns no broker state. It talks to the shards through [`super::port`]
//! (commands in order; live batches, acks and catch-up back) and to the node's main
//! thread through [`Event`]s (serve, in sync, exit). All its inputs are funnelled into
//! one local event queue, so the role loops are plain sequential code.

mod master;
mod slave;

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use self::slave::SlaveEnd;
use super::frame::{Body, Frame, RefuseCode, VERSION};
use super::link::Link;
use super::port::{CatchUp, Command, CorePort, Live};
use super::state::{LastRole, NodeState};
use crate::metrics::replication::{PeerState, ReplicationStats, Role};
use crate::rt;
use crate::store::Position;

/// When the master counts a shipped record as held by the slave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckMode {
    Fsync,
    Received,
}

/// How a slave reaches and logs in to its master.
#[derive(Clone, Debug)]
pub struct MasterTarget {
    pub addr: SocketAddr,
    pub user: String,
    pub password: String,
}

/// What the core needs from the configuration.
#[derive(Clone, Debug)]
pub struct CoreSettings {
    pub shards: usize,
    pub data_dir: PathBuf,
    /// Set for a slave configuration (`masterConnectorURI` / `<masterConnector>`).
    pub master: Option<MasterTarget>,
    /// Credentials a node without a configured master uses to rejoin the peer it
    /// remembers as slave (the first user of its own authentication plugin).
    pub rejoin_login: (String, String),
    /// Who may attach as a slave when `auth_required`.
    pub users: Vec<(String, String)>,
    pub auth_required: bool,
    pub shutdown_on_master_failure: bool,
    pub shutdown_on_slave_failure: bool,
    pub ack: AckMode,
    pub heartbeat: Duration,
    /// This node's client connector addresses, told to the master so that it can find
    /// this node once it has taken over.
    pub client_addrs: Vec<SocketAddr>,
    pub stats: Arc<ReplicationStats>,
}

/// What the core asks of the node's main thread.
#[derive(Debug)]
pub enum Event {
    /// Serve clients as master at `epoch` (the shards have been told to promote).
    Serve { epoch: u64, takeover: bool },
    /// A slave has caught up: every confirmation now waits for it.
    SlaveInSync,
    /// Stop the process with this status.
    Exit { code: i32, reason: String },
    /// The core has said goodbye to its peer after a [`Request::Shutdown`].
    Stopped,
}

/// What the node's main thread asks of the core.
#[derive(Debug)]
pub enum Request {
    /// Clean shutdown: tell the peer (a Goodbye) and answer [`Event::Stopped`].
    Shutdown,
}

/// Everything the core reacts to, in one queue.
enum Ev {
    Live(Live),
    CatchUp(CatchUp),
    Request(Request),
    Frame(u64, Frame),
    LinkLost(u64, String),
    /// A connection that said Hello, read by a handshake task.
    Hello(Rc<Link>, Frame),
    Tick,
}

/// Silent heartbeat intervals before the peer counts as lost.
const MISSED_HEARTBEATS: u32 = 5;
/// How long to wait for a connection, and for the answer to a Hello.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Catch-up waits while more than this is queued on the link.
const CATCH_UP_BACKLOG_BYTES: usize = 8 << 20;
/// Pause between rounds of trying to reach an unreachable master.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

struct Core {
    s: CoreSettings,
    state: RefCell<NodeState>,
    commands: Vec<async_channel::Sender<Command>>,
    events: std::sync::mpsc::Sender<Event>,
    queue: async_channel::Receiver<Ev>,
    queue_tx: async_channel::Sender<Ev>,
    /// Per shard, where this node's journal ends (slave side; from `Applied`).
    positions: RefCell<Vec<Position>>,
    next_link: Cell<u64>,
    /// The link catch-up chunks go out on, for backpressure.
    catch_up_link: RefCell<Option<Rc<Link>>>,
}

/// Runs the core until the process ends. Call on the replication executor.
pub async fn run(
    s: CoreSettings,
    state: NodeState,
    port: CorePort,
    requests: async_channel::Receiver<Request>,
    events: std::sync::mpsc::Sender<Event>,
) {
    let (queue_tx, queue) = async_channel::unbounded();
    let core = Rc::new(Core {
        positions: RefCell::new(vec![Position(0); s.shards]),
        s,
        state: RefCell::new(state),
        commands: port.commands,
        events,
        queue,
        queue_tx: queue_tx.clone(),
        next_link: Cell::new(1),
        catch_up_link: RefCell::new(None),
    });
    forward(port.live, queue_tx.clone(), Ev::Live);
    forward(requests, queue_tx.clone(), Ev::Request);
    {
        // Catch-up chunks are taken only while the link has room: the bounded
        // channel then holds the shards' readers back.
        let tx = queue_tx.clone();
        let core = core.clone();
        rt::spawn_local(async move {
            while let Ok(item) = port.catch_up.recv().await {
                let link = core.catch_up_link.borrow().clone();
                if let Some(link) = link {
                    link.drained_below(CATCH_UP_BACKLOG_BYTES).await;
                }
                if tx.try_send(Ev::CatchUp(item)).is_err() {
                    break;
                }
            }
        });
    }
    {
        let tx = queue_tx;
        let every = core.s.heartbeat;
        rt::spawn_local(async move {
            loop {
                rt::sleep(every).await;
                if tx.try_send(Ev::Tick).is_err() {
                    break;
                }
            }
        });
    }
    core.stats_role();
    core.collect_positions().await;
    let mut takeover = false;
    loop {
        match core.discover().await {
            Discovered::Slave(link, welcome) => match core.run_slave(link, welcome).await {
                SlaveEnd::TakeOver => {
                    takeover = true;
                    break;
                }
                SlaveEnd::Retry => continue,
                SlaveEnd::Stopped => return,
            },
            Discovered::Serve => break,
            Discovered::Stopped => return,
        }
    }
    if core.become_master(takeover).is_err() {
        return;
    }
    core.run_master().await;
}

fn forward<T: 'static>(
    rx: async_channel::Receiver<T>,
    tx: async_channel::Sender<Ev>,
    wrap: impl Fn(T) -> Ev + 'static,
) {
    rt::spawn_local(async move {
        while let Ok(item) = rx.recv().await {
            if tx.try_send(wrap(item)).is_err() {
                break;
            }
        }
    });
}

enum Discovered {
    Slave(Rc<Link>, Frame),
    Serve,
    Stopped,
}

enum Attach {
    Welcomed(Rc<Link>, Frame),
    Refused(SocketAddr, RefuseCode, String, u64),
    Unreachable,
}

impl Core {
    fn emit(&self, e: Event) {
        let _ = self.events.send(e);
    }

    fn store_state(&self) -> Result<(), ()> {
        let st = self.state.borrow().clone();
        st.store(&self.s.data_dir).map_err(|e| {
            tracing::error!(error = %e, "cannot persist the node state");
            self.emit(Event::Exit {
                code: 1,
                reason: format!("cannot persist the node state: {e}"),
            });
        })
    }

    fn stats_role(&self) {
        let st = self.state.borrow();
        self.s.stats.set_epoch(st.epoch);
    }

    async fn next(&self) -> Ev {
        match self.queue.recv().await {
            Ok(ev) => ev,
            // The core holds a sender itself: the queue never closes.
            Err(_) => std::future::pending().await,
        }
    }

    /// Asks every shard where its journal ends.
    async fn collect_positions(&self) {
        for c in &self.commands {
            let _ = c.send(Command::Report).await;
        }
        let mut missing = self.s.shards;
        while missing > 0 {
            match self.next().await {
                Ev::Live(Live::Applied { shard, next, .. }) => {
                    self.positions.borrow_mut()[usize::from(shard)] = next;
                    missing -= 1;
                }
                Ev::Request(Request::Shutdown) => {
                    self.emit(Event::Stopped);
                }
                _ => {}
            }
        }
    }

    /// Whom to ask at start-up, and whether this node may serve if nobody answers.
    fn peers(&self) -> Vec<SocketAddr> {
        match &self.s.master {
            Some(m) => vec![m.addr],
            None => self.state.borrow().peers.clone(),
        }
    }

    fn may_serve_alone(&self) -> bool {
        match (self.s.master.is_some(), self.state.borrow().role) {
            // It was the last master: nobody can hold newer data than it does.
            (_, LastRole::Master) => true,
            // A fresh node configured as master.
            (false, LastRole::None) => true,
            // A slave (configured, or a former master that rejoined as slave) waits
            // for the node it followed: serving would be serving stale data.
            _ => false,
        }
    }

    async fn discover(&self) -> Discovered {
        let mut attempts: u64 = 0;
        loop {
            let peers = self.peers();
            if peers.is_empty() {
                return Discovered::Serve;
            }
            if self.s.master.is_some() || !self.may_serve_alone() {
                // Following a master (or waiting for it): not serving.
                self.s.stats.set_role(Role::Slave);
            }
            self.s.stats.set_peer(PeerState::Connecting);
            self.s
                .stats
                .set_peer_address(peers.first().map(|a| a.to_string()));
            match self.try_attach(&peers).await {
                Attach::Welcomed(link, welcome) => return Discovered::Slave(link, welcome),
                Attach::Refused(addr, code, reason, their_epoch) => {
                    let ours = self.state.borrow().epoch;
                    if code == RefuseCode::StaleEpoch && their_epoch < ours {
                        // The peer serves an older epoch than ours and steps down.
                        tracing::warn!(%addr, %reason, "the peer holds an older epoch and steps down; retrying");
                    } else {
                        let reason = format!("refused by master {addr}: {reason}");
                        tracing::error!("{reason}");
                        self.emit(Event::Exit { code: 1, reason });
                        return Discovered::Stopped;
                    }
                }
                Attach::Unreachable => {
                    if self.may_serve_alone() {
                        if attempts == 0 && self.s.master.is_some() {
                            tracing::warn!(peers = ?peers, "master unreachable; this node was the last master, so it serves");
                        } else if attempts == 0 {
                            tracing::info!(peers = ?peers, "no peer answers; serving as master");
                        }
                        return Discovered::Serve;
                    }
                    if attempts == 0 || attempts.is_multiple_of(50) {
                        tracing::info!(peers = ?peers, "waiting for the master");
                    }
                }
            }
            attempts += 1;
            // Drain what arrived meanwhile (a shutdown request ends the wait).
            let pause = async {
                rt::sleep(RETRY_PAUSE).await;
                false
            };
            let stop = async {
                loop {
                    if let Ev::Request(Request::Shutdown) = self.next().await {
                        return true;
                    }
                }
            };
            if futures_lite::future::or(pause, stop).await {
                self.emit(Event::Stopped);
                return Discovered::Stopped;
            }
        }
    }

    async fn try_attach(&self, peers: &[SocketAddr]) -> Attach {
        let (user, password) = match &self.s.master {
            Some(m) => (m.user.clone(), m.password.clone()),
            None => self.s.rejoin_login.clone(),
        };
        for &addr in peers {
            let link = match Link::connect(addr, CONNECT_TIMEOUT).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::debug!(%addr, error = %e, "peer not reachable");
                    continue;
                }
            };
            let (epoch, node_id) = {
                let st = self.state.borrow();
                (st.epoch, st.node_id)
            };
            let positions = self.positions.borrow().iter().map(|p| p.0).collect();
            link.send(&Frame {
                epoch,
                body: Body::Hello {
                    version: VERSION,
                    user: user.clone(),
                    password: password.clone(),
                    node_id: node_id.to_string(),
                    client_addrs: self.advertised_addrs(),
                    positions,
                },
            });
            match link.recv(HANDSHAKE_TIMEOUT).await {
                Ok(f) => match &f.body {
                    Body::Welcome { oldest, .. } if oldest.len() == self.s.shards => {
                        return Attach::Welcomed(link, f)
                    }
                    Body::Refuse { code, reason } => {
                        return Attach::Refused(addr, *code, reason.clone(), f.epoch)
                    }
                    Body::Goodbye { reason } => {
                        tracing::warn!(%addr, %reason, "peer said goodbye during the handshake");
                    }
                    other => {
                        tracing::warn!(%addr, frame = ?std::mem::discriminant(other), "unexpected answer to Hello");
                    }
                },
                Err(e) => tracing::debug!(%addr, error = %e, "no answer to Hello"),
            }
            link.close(Duration::from_millis(10)).await;
        }
        Attach::Unreachable
    }

    fn advertised_addrs(&self) -> Vec<String> {
        self.s.client_addrs.iter().map(|a| a.to_string()).collect()
    }

    fn spawn_reader(&self, link: &Rc<Link>) -> u64 {
        let id = self.next_link.get();
        self.next_link.set(id + 1);
        let tx = self.queue_tx.clone();
        let link = link.clone();
        // The reader's own timeout is a backstop; the Tick check is the real one.
        let silence = self.s.heartbeat * MISSED_HEARTBEATS * 4;
        rt::spawn_local(async move {
            loop {
                match link.recv(silence).await {
                    Ok(f) => {
                        if tx.try_send(Ev::Frame(id, f)).is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        let _ = tx.try_send(Ev::LinkLost(id, e.to_string()));
                        break;
                    }
                }
            }
        });
        id
    }

    fn become_master(&self, takeover: bool) -> Result<(), ()> {
        let epoch = {
            let mut st = self.state.borrow_mut();
            st.epoch = st.next_epoch();
            st.role = LastRole::Master;
            st.epoch
        };
        self.store_state()?;
        for c in &self.commands {
            let _ = c.try_send(Command::Promote { takeover });
        }
        let stats = &self.s.stats;
        stats.set_epoch(epoch);
        if takeover {
            stats.set_role(Role::Master);
            stats.set_peer(PeerState::Degraded);
            stats.add_takeover();
            tracing::warn!(epoch, "took over as master");
        } else {
            let has_peer = !self.peers().is_empty();
            stats.set_role(if has_peer {
                Role::Master
            } else {
                Role::Standalone
            });
            stats.set_peer(if has_peer {
                PeerState::Degraded
            } else {
                PeerState::None
            });
            tracing::info!(epoch, "serving as master");
        }
        self.emit(Event::Serve { epoch, takeover });
        Ok(())
    }
}
