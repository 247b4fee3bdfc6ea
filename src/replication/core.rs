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

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::frame::{Body, Frame, RefuseCode, VERSION};
use super::link::Link;
use super::port::{CatchUp, Command, CorePort, Live};
use super::state::{LastRole, NodeState};
use crate::metrics::replication::{PeerState, ReplicationStats, Role};
use crate::rt;
use crate::store::format::{framed_len_u64, FRAME_HEADER_BYTES, ROLL_LEN};
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

enum SlaveEnd {
    TakeOver,
    Retry,
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

    // ------------------------------------------------------------------ slave

    async fn run_slave(&self, link: Rc<Link>, welcome: Frame) -> SlaveEnd {
        let Body::Welcome { oldest, .. } = &welcome.body else {
            unreachable!("discover returns Welcome frames only")
        };
        // The master resumes this node's copy only if it holds the master's current
        // epoch (then both sides agree on where it ends); otherwise it starts over.
        let resumable = self.state.borrow().epoch == welcome.epoch;
        {
            let mut st = self.state.borrow_mut();
            st.epoch = welcome.epoch;
            st.role = LastRole::Slave;
            st.peers = vec![link.peer];
        }
        if self.store_state().is_err() {
            return SlaveEnd::Stopped;
        }
        self.s.stats.set_role(Role::Slave);
        self.s.stats.set_epoch(welcome.epoch);
        self.s.stats.set_peer(PeerState::Syncing);
        self.s.stats.set_peer_address(Some(link.peer.to_string()));
        for (shard, &start) in oldest.iter().enumerate() {
            let start = Position(start);
            let mut positions = self.positions.borrow_mut();
            if !resumable || positions[shard] != start {
                tracing::info!(
                    shard,
                    ours = %positions[shard],
                    master = %start,
                    "journal does not continue the master's: starting over from the master's oldest segment"
                );
                positions[shard] = start;
                let _ = self.commands[shard].try_send(Command::Reset { start });
            } else {
                // Lifts a stop after a failed apply on an earlier link.
                let _ = self.commands[shard].try_send(Command::Report);
            }
        }
        tracing::info!(master = %link.peer, epoch = welcome.epoch, "attached to the master as slave; catching up");
        let link_id = self.spawn_reader(&link);
        let mut in_sync = false;
        let mut last_heard = Instant::now();
        let limit = self.s.heartbeat * MISSED_HEARTBEATS;
        let why: String;
        let mut clean = false;
        loop {
            match self.next().await {
                Ev::Frame(id, f) if id == link_id => {
                    last_heard = Instant::now();
                    match f.body {
                        Body::Batch {
                            shard,
                            start,
                            bytes,
                        } if usize::from(shard) < self.s.shards => {
                            let _ = self.commands[usize::from(shard)].try_send(Command::Apply {
                                start: Position(start),
                                bytes,
                            });
                        }
                        Body::Volatile { shard, record, .. }
                            if usize::from(shard) < self.s.shards =>
                        {
                            let _ = self.commands[usize::from(shard)]
                                .try_send(Command::ApplyVolatile { record });
                        }
                        Body::InSync => {
                            in_sync = true;
                            self.s.stats.set_peer(PeerState::InSync);
                            tracing::info!(master = %link.peer, "in sync with the master");
                        }
                        Body::Heartbeat => {}
                        Body::Goodbye { reason } => {
                            why = format!("the master shut down cleanly ({reason})");
                            clean = true;
                            break;
                        }
                        other => {
                            why = format!(
                                "protocol error: unexpected frame {:?}",
                                std::mem::discriminant(&other)
                            );
                            break;
                        }
                    }
                }
                Ev::LinkLost(id, reason) if id == link_id => {
                    why = reason;
                    break;
                }
                Ev::Live(Live::Applied {
                    shard,
                    received,
                    durable,
                    next,
                }) => {
                    self.positions.borrow_mut()[usize::from(shard)] = next;
                    link.send(&Frame {
                        epoch: self.state.borrow().epoch,
                        body: Body::Ack {
                            shard,
                            received: received.0,
                            durable: durable.0,
                        },
                    });
                }
                Ev::Live(Live::ApplyFailed { shard, reason }) => {
                    tracing::error!(shard, %reason, "cannot apply what the master shipped; resynchronising");
                    in_sync = false;
                    why = format!("apply failed on shard {shard}: {reason}");
                    break;
                }
                Ev::Live(Live::SlaveSocket { .. }) => {}
                Ev::Request(Request::Shutdown) => {
                    link.send(&Frame {
                        epoch: self.state.borrow().epoch,
                        body: Body::Goodbye {
                            reason: "slave shutting down".into(),
                        },
                    });
                    link.close(Duration::from_millis(200)).await;
                    self.emit(Event::Stopped);
                    return SlaveEnd::Stopped;
                }
                Ev::Tick => {
                    link.send(&Frame {
                        epoch: self.state.borrow().epoch,
                        body: Body::Heartbeat,
                    });
                    if last_heard.elapsed() > limit {
                        why = format!("no heartbeat for {limit:?}");
                        break;
                    }
                }
                _ => {}
            }
        }
        link.close(Duration::from_millis(10)).await;
        if !in_sync {
            tracing::warn!(master = %link.peer, reason = %why, "lost the master before catching up: not taking over; reconnecting");
            self.s.stats.set_peer(PeerState::Connecting);
            return SlaveEnd::Retry;
        }
        if clean {
            tracing::warn!(master = %link.peer, "{why}");
        } else {
            tracing::error!(master = %link.peer, reason = %why, "master lost");
        }
        if self.s.shutdown_on_master_failure {
            let reason = format!("{why}; shutdownOnMasterFailure is set: stopping");
            self.emit(Event::Exit { code: 0, reason });
            return SlaveEnd::Stopped;
        }
        SlaveEnd::TakeOver
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

    // ------------------------------------------------------------------ master

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

    async fn run_master(&self) {
        let mut slave: Option<Attached> = None;
        loop {
            match self.next().await {
                Ev::Live(Live::SlaveSocket { stream }) => self.handshake(stream),
                Ev::Hello(link, hello) => {
                    if let Some(a) = self.on_hello(&slave, link, hello) {
                        slave = Some(a);
                    }
                }
                Ev::Live(Live::Batch {
                    shard,
                    start,
                    bytes,
                }) => {
                    if let Some(a) = slave.as_mut() {
                        a.ship_live(self, usize::from(shard), start, bytes);
                    }
                }
                Ev::Live(Live::Volatile { shard, record }) => {
                    if let Some(a) = slave.as_mut() {
                        a.send_volatile(self, shard, record);
                    }
                }
                Ev::Live(Live::Requiring { shard, from }) => {
                    if let Some(a) = slave.as_mut() {
                        a.shards[usize::from(shard)].requiring_from = Some(from);
                        a.check_in_sync(self);
                    }
                }
                Ev::Live(Live::Applied { .. } | Live::ApplyFailed { .. }) => {}
                Ev::CatchUp(c) => {
                    let failed = match slave.as_mut() {
                        Some(a) => a.on_catch_up(self, c),
                        None => None,
                    };
                    if let Some(why) = failed {
                        self.slave_lost(&mut slave, &why, false);
                    }
                }
                Ev::Frame(id, f) => {
                    let Some(a) = slave.as_mut().filter(|a| a.link_id == id) else {
                        continue;
                    };
                    a.last_heard = Instant::now();
                    match f.body {
                        Body::Ack {
                            shard,
                            received,
                            durable,
                        } if usize::from(shard) < self.s.shards => {
                            let held = match self.s.ack {
                                AckMode::Fsync => durable,
                                AckMode::Received => received,
                            };
                            a.on_ack(self, usize::from(shard), Position(held));
                        }
                        Body::Heartbeat => {}
                        Body::Goodbye { reason } => {
                            let why = format!("the slave shut down cleanly ({reason})");
                            self.slave_lost(&mut slave, &why, true);
                        }
                        other => {
                            let why = format!(
                                "protocol error: unexpected frame {:?}",
                                std::mem::discriminant(&other)
                            );
                            self.slave_lost(&mut slave, &why, false);
                        }
                    }
                }
                Ev::LinkLost(id, why) => {
                    if slave.as_ref().is_some_and(|a| a.link_id == id) {
                        self.slave_lost(&mut slave, &why, false);
                    }
                }
                Ev::Tick => {
                    let limit = self.s.heartbeat * MISSED_HEARTBEATS;
                    if let Some(a) = slave.as_ref() {
                        a.link.send(&Frame {
                            epoch: self.state.borrow().epoch,
                            body: Body::Heartbeat,
                        });
                        a.publish_lag(self);
                        if a.last_heard.elapsed() > limit {
                            let why = format!("no heartbeat for {limit:?}");
                            self.slave_lost(&mut slave, &why, false);
                        }
                    }
                }
                Ev::Request(Request::Shutdown) => {
                    if let Some(a) = slave.take() {
                        a.link.send(&Frame {
                            epoch: self.state.borrow().epoch,
                            body: Body::Goodbye {
                                reason: "master shutting down".into(),
                            },
                        });
                        a.link.close(Duration::from_millis(300)).await;
                    }
                    self.emit(Event::Stopped);
                }
            }
        }
    }

    /// Reads a new connection's Hello off the event loop.
    fn handshake(&self, stream: std::net::TcpStream) {
        let tx = self.queue_tx.clone();
        rt::spawn_local(async move {
            let peer = match stream.peer_addr() {
                Ok(p) => p,
                Err(_) => return,
            };
            let (r, w) = match rt::net::from_std(stream) {
                Ok(halves) => halves,
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "cannot adopt the replication connection");
                    return;
                }
            };
            let link = Link::new(r, w, peer);
            match link.recv(HANDSHAKE_TIMEOUT).await {
                Ok(f) if matches!(f.body, Body::Hello { .. }) => {
                    let _ = tx.try_send(Ev::Hello(link, f));
                }
                Ok(_) => {
                    tracing::warn!(%peer, "replication connection did not start with Hello");
                    link.close(Duration::from_millis(10)).await;
                }
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "replication handshake failed");
                    link.close(Duration::from_millis(10)).await;
                }
            }
        });
    }

    fn refuse(&self, link: &Rc<Link>, code: RefuseCode, reason: String) {
        tracing::warn!(peer = %link.peer, %reason, "slave refused");
        link.send(&Frame {
            epoch: self.state.borrow().epoch,
            body: Body::Refuse { code, reason },
        });
        let link = link.clone();
        rt::spawn_local(async move { link.close(Duration::from_millis(500)).await });
    }

    fn on_hello(
        &self,
        current: &Option<Attached>,
        link: Rc<Link>,
        hello: Frame,
    ) -> Option<Attached> {
        let Body::Hello {
            version,
            user,
            password,
            node_id,
            client_addrs,
            positions,
        } = hello.body
        else {
            return None;
        };
        let ours = self.state.borrow().epoch;
        if let Some(a) = current {
            self.refuse(
                &link,
                RefuseCode::SecondSlave,
                format!("this master already has a slave ({})", a.link.peer),
            );
            return None;
        }
        if version != VERSION {
            self.refuse(
                &link,
                RefuseCode::Other(5),
                format!("link version {version} is not supported (this master speaks {VERSION})"),
            );
            return None;
        }
        if positions.len() != self.s.shards {
            self.refuse(
                &link,
                RefuseCode::ShardMismatch,
                format!(
                    "the slave has {} shards and this master {}: configure the same <tandem shards>",
                    positions.len(),
                    self.s.shards
                ),
            );
            return None;
        }
        if self.s.auth_required
            && !self
                .s
                .users
                .iter()
                .any(|(u, p)| *u == user && *p == password)
        {
            self.refuse(
                &link,
                RefuseCode::BadCredentials,
                format!("bad credentials for user '{user}'"),
            );
            return None;
        }
        if hello.epoch > ours {
            // The peer served after this node did: this node's data is stale.
            let reason = format!(
                "the peer at {} holds a newer epoch ({} > {ours}): this node must not serve; restart it to rejoin as slave",
                link.peer, hello.epoch
            );
            self.refuse(&link, RefuseCode::StaleEpoch, reason.clone());
            tracing::error!("{reason}");
            self.emit(Event::Exit { code: 1, reason });
            return None;
        }
        let peers: Vec<SocketAddr> = client_addrs.iter().filter_map(|a| a.parse().ok()).collect();
        // Shown as the slave's address: where it will serve if it takes over.
        let shown = peers.first().map_or(link.peer, |a| *a);
        if !peers.is_empty() {
            self.state.borrow_mut().peers = peers;
            if self.store_state().is_err() {
                return None;
            }
        }
        let link_id = self.spawn_reader(&link);
        let resume = hello.epoch == ours;
        for (shard, c) in self.commands.iter().enumerate() {
            let _ = c.try_send(Command::BeginSync {
                link: link_id,
                slave_has: resume.then(|| Position(positions[shard])),
            });
        }
        *self.catch_up_link.borrow_mut() = Some(link.clone());
        let stats = &self.s.stats;
        stats.set_role(Role::Master);
        stats.set_peer(PeerState::Syncing);
        stats.set_peer_address(Some(shown.to_string()));
        tracing::info!(slave = %shown, link = %link.peer, node = %node_id, resume, "slave attached; catching it up");
        Some(Attached {
            link,
            link_id,
            welcomed: false,
            pending: Vec::new(),
            starts: vec![None; self.s.shards],
            shards: (0..self.s.shards).map(|_| ShardSync::default()).collect(),
            all_done: false,
            in_sync: false,
            last_heard: Instant::now(),
            volatile_seq: 0,
        })
    }

    fn slave_lost(&self, slave: &mut Option<Attached>, why: &str, clean: bool) {
        let Some(a) = slave.take() else { return };
        let link = a.link.clone();
        rt::spawn_local(async move { link.close(Duration::from_millis(10)).await });
        *self.catch_up_link.borrow_mut() = None;
        for c in &self.commands {
            let _ = c.try_send(Command::SlaveLost);
        }
        self.s.stats.set_peer(PeerState::Degraded);
        self.s.stats.set_lag(0, 0, 0);
        if clean {
            tracing::warn!(slave = %a.link.peer, "{why}; serving alone (degraded)");
        } else {
            tracing::error!(slave = %a.link.peer, reason = %why, "slave lost; serving alone (degraded)");
        }
        if self.s.shutdown_on_slave_failure {
            self.emit(Event::Exit {
                code: 0,
                reason: format!("slave lost ({why}); shutdownOnSlaveFailure is set: stopping"),
            });
        }
    }
}

/// One shard's side of an attached slave.
#[derive(Default)]
struct ShardSync {
    catching_up: bool,
    /// Live batches that arrived while the catch-up stream was still going.
    queued: VecDeque<(Position, Bytes)>,
    acked: Position,
    requiring_from: Option<Position>,
    /// Shipped and not yet acknowledged: (end, records, bytes, when shipped).
    unacked: VecDeque<(Position, u64, u64, Instant)>,
}

/// The master's view of its attached slave.
struct Attached {
    link: Rc<Link>,
    link_id: u64,
    /// Welcome goes out once every shard has planned its catch-up; frames before it
    /// wait in `pending`.
    welcomed: bool,
    pending: Vec<Frame>,
    starts: Vec<Option<Position>>,
    shards: Vec<ShardSync>,
    all_done: bool,
    in_sync: bool,
    last_heard: Instant,
    /// Numbers Volatile frames (for logs; the slave applies them in order).
    volatile_seq: u64,
}

impl Attached {
    fn send(&mut self, core: &Core, shard: usize, start: Position, bytes: Bytes) {
        let (records, end) = scan_batch(start, &bytes);
        let len = bytes.len() as u64;
        core.s.stats.add_shipped(records, len);
        self.shards[shard]
            .unacked
            .push_back((end, records, len, Instant::now()));
        let frame = Frame {
            epoch: core.state.borrow().epoch,
            body: Body::Batch {
                shard: shard as u16,
                start: start.0,
                bytes,
            },
        };
        if self.welcomed {
            self.link.send(&frame);
        } else {
            self.pending.push(frame);
        }
    }

    fn send_volatile(&mut self, core: &Core, shard: u16, record: Bytes) {
        self.volatile_seq += 1;
        let frame = Frame {
            epoch: core.state.borrow().epoch,
            body: Body::Volatile {
                shard,
                seq: self.volatile_seq,
                record,
            },
        };
        if self.welcomed {
            self.link.send(&frame);
        } else {
            self.pending.push(frame);
        }
    }

    fn ship_live(&mut self, core: &Core, shard: usize, start: Position, bytes: Bytes) {
        if self.shards[shard].catching_up || self.starts[shard].is_none() {
            self.shards[shard].queued.push_back((start, bytes));
        } else {
            self.send(core, shard, start, bytes);
        }
    }

    /// Returns why the slave must be dropped, if it must.
    fn on_catch_up(&mut self, core: &Core, c: CatchUp) -> Option<String> {
        match c {
            CatchUp::Plan {
                shard,
                link,
                start,
                until,
            } if link == self.link_id => {
                let s = usize::from(shard);
                self.starts[s] = Some(start);
                self.shards[s].catching_up = start < until;
                tracing::debug!(shard, start = %start, until = %until, "catch-up planned");
                if self.starts.iter().all(Option::is_some) {
                    let oldest = self
                        .starts
                        .iter()
                        .map(|p| p.unwrap_or_default().0)
                        .collect();
                    self.link.send(&Frame {
                        epoch: core.state.borrow().epoch,
                        body: Body::Welcome {
                            master_node_id: core.state.borrow().node_id.to_string(),
                            oldest,
                        },
                    });
                    self.welcomed = true;
                    for f in self.pending.drain(..) {
                        self.link.send(&f);
                    }
                }
                if !self.shards[s].catching_up {
                    self.flush_queued(core, s);
                }
                None
            }
            CatchUp::Chunk {
                shard,
                link,
                start,
                bytes,
            } if link == self.link_id => {
                self.send(core, usize::from(shard), start, bytes);
                None
            }
            CatchUp::Done { shard, link } if link == self.link_id => {
                let s = usize::from(shard);
                self.shards[s].catching_up = false;
                self.flush_queued(core, s);
                None
            }
            CatchUp::Failed {
                shard,
                link,
                reason,
            } if link == self.link_id => {
                Some(format!("catch-up of shard {shard} failed: {reason}"))
            }
            _ => None,
        }
    }

    fn flush_queued(&mut self, core: &Core, shard: usize) {
        while let Some((start, bytes)) = self.shards[shard].queued.pop_front() {
            self.send(core, shard, start, bytes);
        }
        let done = self.welcomed
            && self
                .shards
                .iter()
                .zip(&self.starts)
                .all(|(s, st)| st.is_some() && !s.catching_up);
        if done && !self.all_done {
            self.all_done = true;
            tracing::info!(slave = %self.link.peer, "catch-up streamed; waiting for the slave to confirm it");
            for c in &core.commands {
                let _ = c.try_send(Command::RequireReplica);
            }
        }
    }

    fn on_ack(&mut self, core: &Core, shard: usize, held: Position) {
        let s = &mut self.shards[shard];
        if held <= s.acked {
            return;
        }
        s.acked = held;
        let now = Instant::now();
        while let Some(&(end, _, _, at)) = s.unacked.front() {
            if end > held {
                break;
            }
            core.s.stats.observe_rtt(now.duration_since(at));
            s.unacked.pop_front();
        }
        let _ = core.commands[shard].try_send(Command::Acked(held));
        self.check_in_sync(core);
    }

    fn check_in_sync(&mut self, core: &Core) {
        if self.in_sync || !self.all_done {
            return;
        }
        let caught_up = self
            .shards
            .iter()
            .all(|s| s.requiring_from.is_some_and(|from| s.acked >= from));
        if !caught_up {
            return;
        }
        self.in_sync = true;
        self.link.send(&Frame {
            epoch: core.state.borrow().epoch,
            body: Body::InSync,
        });
        core.s.stats.set_peer(PeerState::InSync);
        tracing::info!(slave = %self.link.peer, "slave in sync");
        core.emit(Event::SlaveInSync);
    }

    fn publish_lag(&self, core: &Core) {
        let mut records = 0;
        let mut bytes = 0;
        let mut oldest: Option<Instant> = None;
        for s in &self.shards {
            for &(_, r, b, at) in &s.unacked {
                records += r;
                bytes += b;
                oldest = Some(oldest.map_or(at, |o| o.min(at)));
            }
        }
        let ms = oldest.map_or(0, |at| at.elapsed().as_millis() as u64);
        core.s.stats.set_lag(records, bytes, ms);
    }
}

/// Counts the records in a shipped batch and finds its end (where the slave's
/// acknowledgement of all of it will point: batches never span segments, so a closing
/// roll marker is just its last 8 bytes). The bytes were framed by our own journal; a
/// malformed frame just ends the count.
fn scan_batch(start: Position, bytes: &[u8]) -> (u64, Position) {
    let mut at = 0usize;
    let mut records = 0;
    while let Some(len) = bytes.get(at..at + 4) {
        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]);
        if len == ROLL_LEN || len == 0 || at + FRAME_HEADER_BYTES as usize > bytes.len() {
            break;
        }
        records += 1;
        at += framed_len_u64(len) as usize;
    }
    (records, Position(start.0 + bytes.len() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len: u32) -> Vec<u8> {
        let mut v = len.to_le_bytes().to_vec();
        v.extend_from_slice(&[0; 4]); // crc: not checked here
        v.resize(framed_len_u64(len) as usize, 0xAB);
        v
    }

    #[test]
    fn scan_batch_counts_records_up_to_a_roll_marker() {
        let start = Position::new(3, 4096);
        let mut bytes = frame(5);
        bytes.extend(frame(100));
        assert_eq!(
            scan_batch(start, &bytes),
            (2, Position(start.0 + bytes.len() as u64))
        );
        // A roll marker ends the count; the batch still ends where its bytes end.
        let mut rolled = bytes.clone();
        rolled.extend(ROLL_LEN.to_le_bytes());
        rolled.extend([0; 4]);
        assert_eq!(
            scan_batch(start, &rolled),
            (2, Position(start.0 + rolled.len() as u64))
        );
        // Garbage never panics: a cut frame or a zero length ends the count.
        assert_eq!(scan_batch(start, &bytes[..3]).0, 0);
        assert_eq!(scan_batch(start, &[0; 16]).0, 0);
    }
}
