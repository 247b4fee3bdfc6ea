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

mod flow;
mod master;
mod master_acks;
mod master_attach;
mod master_catch_up;
mod master_ship;
mod slave;

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use self::slave::SlaveEnd;
use super::auth::{self, Acceptor, Answer, Login, Nonces};
use super::frame::{Body, Decoder, Frame, Nonce, RefuseCode, PROOF_BYTES, VERSION};
use super::link::{Link, LinkError, LinkTls};
use super::machine::{self, AttachResult, Effect, Input, Machine, ProbeResult, Remembered};
use super::port::{CatchUp, Command, CorePort, Live};
use super::role::{PeerState, Role};
use super::state::NodeState;
use crate::metrics::replication::ReplicationStats;
use crate::rt;
use crate::store::Position;
use crate::witness::{self, Record, WitnessAgent, WitnessEvent, WitnessHandle, WitnessRequest};

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
    /// What it proves: `<masterConnector userName password>`, else the replication
    /// secret; `None`: nothing configured, so no master would accept it.
    pub login: Option<Login>,
    /// `Some` when the master URI is `ssl://`: the link runs TLS, checking the master.
    pub tls: Option<LinkTls>,
}

/// What the core needs from the configuration.
#[derive(Clone, Debug)]
pub struct CoreSettings {
    pub shards: usize,
    pub data_dir: PathBuf,
    /// Set for a slave configuration (`masterConnectorURI` / `<masterConnector>`).
    pub master: Option<MasterTarget>,
    /// TLS for rejoining a remembered peer (no configured master); see `node::tls`.
    pub rejoin_tls: Option<Arc<rustls::ClientConfig>>,
    /// Who may attach as a slave, and the login a node without a configured master
    /// uses to rejoin the peer it remembers ([`Acceptor::rejoin_login`]).
    pub acceptor: Acceptor,
    pub shutdown_on_master_failure: bool,
    pub shutdown_on_slave_failure: bool,
    pub ack: AckMode,
    pub heartbeat: Duration,
    /// `replicationAckTimeout`: an in-sync slave whose oldest unacknowledged record is
    /// older than this is dropped.
    pub ack_timeout: Duration,
    /// `replicationBuffer`: bytes the master holds in memory for its slave (queued
    /// live batches and socket output; the shards' channel has its own count of the
    /// same bound) before a shard's stream switches to the journal ([`flow`]).
    pub buffer_bytes: usize,
    /// This node's client connector addresses, told to the master so that it can find
    /// this node once it has taken over.
    pub client_addrs: Vec<SocketAddr>,
    /// `<tandem witness>`: decides who may serve when the nodes cannot reach each other.
    pub witness: Option<crate::config::WitnessSettings>,
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
    /// Stop serving and start the process again: a newer epoch serves elsewhere
    /// (`node.state` then says `role=slave`, and the node rejoins as slave), or this
    /// master lost its witness lease with no slave in sync (discovery decides anew).
    Restart { reason: String },
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
    /// A connection that said Hello, was challenged and answered: its Proof, not yet
    /// checked (read by a handshake task).
    Proof(Rc<Link>, Nonces, Frame),
    Tick,
    /// A master's probe of its peer answered.
    Probed(ProbeResult),
    /// The witness agent reports.
    Witness(WitnessEvent),
}

/// Silent heartbeat intervals before the peer counts as lost.
const MISSED_HEARTBEATS: u32 = 5;
/// How long to wait for a connection, and for the answer to a Hello.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Catch-up waits while more than this (or half of `replicationBuffer`) is queued on
/// the link.
const CATCH_UP_BACKLOG_BYTES: usize = 8 << 20;
/// Largest frame read from a peer before it has proven the secret: a Hello, or a Proof
/// with a few addresses and one position per shard (up to 1024 shards), fits easily.
const HANDSHAKE_MAX_FRAME_BYTES: usize = 64 << 10;

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
    /// The last TLS failure reaching the peer, logged once as a warning (the attach is
    /// retried for as long as it fails; the operator needs the reason, not a flood).
    last_tls_failure: RefCell<Option<String>>,
    /// Handshake tasks running (master side), bounded by `master_attach::MAX_HANDSHAKES`.
    handshakes: Rc<Cell<usize>>,
    /// The pair's decisions ([`machine`]); this core performs its effects.
    machine: RefCell<Machine>,
    /// The machine's clock starts here.
    origin: Instant,
    /// This core, for tasks it spawns (probes).
    this: std::rc::Weak<Core>,
    /// The witness agent's request side (`<tandem witness>`).
    witness: Option<WitnessHandle>,
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
    s.stats.set_buffer_limit(s.buffer_bytes as u64);
    let catch_up_backlog = CATCH_UP_BACKLOG_BYTES.min(s.buffer_bytes / 2);
    let mut ms = machine::Settings::from_heartbeat(state.node_id, s.heartbeat);
    ms.configured_master = s.master.is_some();
    ms.has_peer = s.master.is_some() || !state.peers.is_empty();
    ms.shutdown_on_master_failure = s.shutdown_on_master_failure;
    ms.shutdown_on_slave_failure = s.shutdown_on_slave_failure;
    ms.witness = s.witness.is_some();
    if let Some(w) = &s.witness {
        ms.fence_after = Duration::from_secs(w.lease_secs).max(ms.silence);
    }
    s.stats.set_witness(ms.witness);
    let (witness, witness_events) = match &s.witness {
        None => (None, None),
        Some(w) => match WitnessAgent::spawn(w.endpoints.clone(), &w.key, w.lease_secs) {
            Ok((h, rx)) => (Some(h), Some(rx)),
            Err(e) => {
                let reason = format!("cannot start the witness agent: {e}");
                tracing::error!("{reason}");
                let _ = events.send(Event::Exit { code: 1, reason });
                return;
            }
        },
    };
    let remembered = Remembered {
        epoch: state.epoch,
        role: state.role,
    };
    let core = Rc::new_cyclic(|this| Core {
        this: this.clone(),
        witness,
        positions: RefCell::new(vec![Position(0); s.shards]),
        machine: RefCell::new(Machine::new(ms, remembered)),
        origin: Instant::now(),
        s,
        state: RefCell::new(state),
        commands: port.commands,
        events,
        queue,
        queue_tx: queue_tx.clone(),
        next_link: Cell::new(1),
        catch_up_link: RefCell::new(None),
        last_tls_failure: RefCell::new(None),
        handshakes: Rc::new(Cell::new(0)),
    });
    forward(port.live, queue_tx.clone(), Ev::Live);
    forward(requests, queue_tx.clone(), Ev::Request);
    if let Some(rx) = witness_events {
        forward(rx, queue_tx.clone(), Ev::Witness);
    }
    {
        // Catch-up chunks are taken only while the link has room: the bounded
        // channel then holds the shards' readers back.
        let tx = queue_tx.clone();
        let core = core.clone();
        rt::spawn_local(async move {
            while let Ok(item) = port.catch_up.recv().await {
                let link = core.catch_up_link.borrow().clone();
                if let Some(link) = link {
                    link.drained_below(catch_up_backlog).await;
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
    let first = core.step(Input::Start);
    let mut next = core.discover(first).await;
    loop {
        match next {
            Discovered::Slave(link, welcome) => match core.run_slave(link, welcome).await {
                SlaveEnd::Serve { epoch, takeover } => {
                    next = Discovered::Serve { epoch, takeover };
                }
                SlaveEnd::Retry => next = core.discover(Vec::new()).await,
                SlaveEnd::Follow(link, welcome) => next = Discovered::Slave(link, welcome),
                SlaveEnd::Stopped => return,
            },
            Discovered::Serve { epoch, takeover } => {
                // Where this epoch's records will begin: after every batch the shards
                // applied as slave (the Report queues behind them).
                core.collect_positions().await;
                if core.become_master(epoch, takeover).is_err() {
                    return;
                }
                core.run_master().await;
                return;
            }
            Discovered::Stopped => return,
        }
    }
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
    Serve { epoch: u64, takeover: bool },
    Stopped,
}

enum Attach {
    Welcomed(Rc<Link>, Frame),
    /// Refused; the epoch is known only when the refusal was authenticated.
    Refused(SocketAddr, RefuseCode, String, Option<u64>),
    /// Nobody answered. `refused`: the connection itself was refused (nothing listens
    /// there: the process is gone, or it is a slave with its connectors closed);
    /// otherwise it timed out or broke off (paused, partitioned: unknown).
    Unreachable {
        refused: bool,
    },
    /// This node has nothing to prove (no secret, no user): it can never attach.
    NoLogin(String),
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
            Ok(ev) => {
                // Out of the shards' channel (counted by `port::Shipper`), whatever
                // the role loop does with it.
                match &ev {
                    Ev::Live(Live::Batch { bytes, .. }) => {
                        self.s.stats.release_channel(bytes.len() as u64)
                    }
                    Ev::Live(Live::Volatile { record, .. }) => {
                        self.s.stats.release_channel(record.len() as u64)
                    }
                    _ => {}
                }
                ev
            }
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
                    self.positions.borrow_mut()[shard] = next;
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
            // (Standalone is never stored; node.state would write it as master.)
            (_, Some(Role::Master | Role::Standalone)) => true,
            // A fresh node configured as master.
            (false, None) => true,
            // A slave (configured, or a former master that rejoined as slave) waits
            // for the node it followed: serving would be serving stale data.
            _ => false,
        }
    }

    /// The machine's clock: time since the core started.
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    fn step(&self, input: Input) -> Vec<Effect> {
        let now = self.now();
        self.machine.borrow_mut().step(now, input)
    }

    fn instant(&self, at: Duration) -> Instant {
        self.origin + at
    }

    /// Effects every role handles the same way. Returns the others, in order.
    fn perform_common(&self, effects: Vec<Effect>) -> Vec<Effect> {
        let mut rest = Vec::new();
        for e in effects {
            match e {
                Effect::ConfirmAlone(until) => {
                    self.s.stats.set_confirm_alone(until.is_some());
                    let until = until.map(|u| self.instant(u));
                    for c in &self.commands {
                        let _ = c.try_send(Command::ConfirmAlone(until));
                    }
                }
                Effect::Exit { code, reason } => {
                    if code == 0 {
                        tracing::warn!("{reason}");
                    } else {
                        tracing::error!("{reason}");
                    }
                    self.emit(Event::Exit { code, reason });
                }
                Effect::StepDown { epoch, why } => self.step_down(epoch, &why),
                Effect::Restart { why } => {
                    let reason = format!("{why}: starting again");
                    tracing::error!("{reason}");
                    self.emit(Event::Restart { reason });
                }
                Effect::Campaign { claim, expect } => self.to_witness(WitnessRequest::Campaign {
                    record: record_of(claim),
                    expect: match expect {
                        machine::Expect::Absent => witness::Expect::Absent,
                        machine::Expect::Is(c) => witness::Expect::Is(record_of(c)),
                        machine::Expect::WrittenBy { epoch, node } => {
                            witness::Expect::WrittenBy { epoch, node }
                        }
                    },
                }),
                Effect::WitnessUpdate { claim } => self.to_witness(WitnessRequest::Update {
                    record: record_of(claim),
                }),
                Effect::WitnessResign => {
                    self.s.stats.set_lease_held(false);
                    self.to_witness(WitnessRequest::Resign);
                }
                other => rest.push(other),
            }
        }
        rest
    }

    fn to_witness(&self, r: WitnessRequest) {
        // The machine asks only when a witness is configured (Settings::witness).
        if let Some(w) = &self.witness {
            if let Err(e) = w.send(r) {
                // The machine retries on its own schedule (it sees no answer).
                tracing::warn!(error = %e, "witness request not sent");
            }
        }
    }

    /// What the witness agent reported, for the machine.
    fn witness_input(&self, e: WitnessEvent) -> machine::WitnessInput {
        use machine::WitnessInput as W;
        let at = |t: Instant| t.saturating_duration_since(self.origin);
        let stats = &self.s.stats;
        match &e {
            WitnessEvent::Won { .. } | WitnessEvent::Renewed { .. } => stats.set_lease_held(true),
            WitnessEvent::LeaseLost { .. } => stats.set_lease_held(false),
            _ => {}
        }
        match e {
            WitnessEvent::Won { valid_until } => W::Won {
                valid_until: at(valid_until),
            },
            WitnessEvent::Lost { state, .. } => W::Lost {
                state: state.map(claim_of),
            },
            WitnessEvent::Renewed { valid_until } => W::Renewed {
                valid_until: at(valid_until),
            },
            WitnessEvent::LeaseLost { why } => {
                tracing::warn!(%why, "witness lease lost");
                W::LeaseLost
            }
            WitnessEvent::Updated { ok, record } => W::Updated {
                ok,
                claim: claim_of(record),
            },
            WitnessEvent::Unreachable { why } | WitnessEvent::Failed { why } => {
                tracing::warn!(%why, "witness unreachable");
                W::Unreachable
            }
        }
    }

    /// A newer epoch serves elsewhere: remember to follow (so that nothing this node
    /// holds is served again), then start over as a slave.
    fn step_down(&self, epoch: u64, why: &str) {
        self.state.borrow_mut().role = Some(Role::Slave);
        if self.store_state().is_err() {
            return;
        }
        self.s.stats.add_step_down();
        let reason = format!(
            "stepping down: {why} (epoch {epoch:#x} > ours {:#x}); rejoining as slave",
            self.state.borrow().epoch
        );
        tracing::error!("{reason}");
        self.s.stats.set_role(Role::Slave);
        self.emit(Event::Restart { reason });
    }

    /// Finds this node's role: drives the machine's discovery (attach attempts, the
    /// retry pause) until it follows, serves or stops.
    async fn discover(&self, first: Vec<Effect>) -> Discovered {
        let mut effects = first;
        let mut welcomed: Option<(Rc<Link>, Frame)> = None;
        let mut attempts: u64 = 0;
        loop {
            for e in self.perform_common(std::mem::take(&mut effects)) {
                match e {
                    Effect::Attach => {
                        let peers = self.peers();
                        if self.s.master.is_some() || !self.may_serve_alone() {
                            // Following a master (or waiting for it): not serving.
                            self.s.stats.set_role(Role::Slave);
                        }
                        self.s.stats.set_peer(PeerState::Connecting);
                        self.s
                            .stats
                            .set_peer_address(peers.first().map(|a| a.to_string()));
                        let r = self.try_attach(&peers).await;
                        let input = self.attach_input(r, &peers, attempts, &mut welcomed);
                        attempts += 1;
                        effects.extend(self.step(Input::Attach(input)));
                    }
                    Effect::Follow { .. } => {
                        if let Some((link, welcome)) = welcomed.take() {
                            return Discovered::Slave(link, welcome);
                        }
                    }
                    Effect::Serve { epoch, takeover } => {
                        return Discovered::Serve { epoch, takeover };
                    }
                    Effect::Stopped => {
                        self.emit(Event::Stopped);
                        return Discovered::Stopped;
                    }
                    _ => {}
                }
            }
            if !effects.is_empty() {
                continue;
            }
            if self.machine.borrow().is_stopped() {
                return Discovered::Stopped;
            }
            match self.next().await {
                Ev::Tick => effects = self.step(Input::Tick),
                Ev::Request(Request::Shutdown) => effects = self.step(Input::Shutdown),
                Ev::Witness(w) => {
                    let input = Input::Witness(self.witness_input(w));
                    effects = self.step(input);
                }
                _ => {}
            }
        }
    }

    /// What an attach attempt tells the machine (and the log).
    fn attach_input(
        &self,
        r: Attach,
        peers: &[SocketAddr],
        attempts: u64,
        welcomed: &mut Option<(Rc<Link>, Frame)>,
    ) -> AttachResult {
        let quiet = attempts != 0 && !attempts.is_multiple_of(50);
        match r {
            Attach::Welcomed(link, welcome) => {
                let epoch = welcome.epoch;
                *welcomed = Some((link, welcome));
                AttachResult::Welcomed { epoch }
            }
            Attach::NoLogin(reason) => AttachResult::NoLogin(reason),
            Attach::Refused(addr, _, reason, None) => {
                // Unproven: anyone who answers at that address can say it, so it
                // changes nothing (no exit, no takeover); keep trying. A wrong secret
                // on either node looks exactly like this, hence the hint.
                if !quiet {
                    tracing::error!(%addr, %reason, "refused by master (an unauthenticated refusal: check the replication secret on both nodes); retrying, not serving");
                }
                AttachResult::RefusedUnproven
            }
            Attach::Refused(addr, code, reason, Some(epoch)) => {
                let stale = code == RefuseCode::StaleEpoch;
                if stale && epoch < self.state.borrow().epoch {
                    tracing::warn!(%addr, %reason, "the peer holds an older epoch and steps down; retrying");
                }
                AttachResult::Refused {
                    epoch,
                    stale,
                    reason: format!("{addr}: {reason}"),
                }
            }
            Attach::Unreachable { .. } => {
                if !quiet {
                    if self.may_serve_alone() {
                        tracing::info!(peers = ?peers, "no peer answers; this node may serve");
                    } else {
                        tracing::info!(peers = ?peers, "waiting for the master");
                    }
                }
                AttachResult::Unreachable
            }
        }
    }

    /// What a probe of the peer found, for the machine.
    fn probe_result(r: &Attach) -> ProbeResult {
        match r {
            Attach::Welcomed(_, w) => ProbeResult::Serving { epoch: w.epoch },
            // A proven refusal carries the peer's epoch: a newer one serves (it
            // refused us for another reason), an older one steps down.
            Attach::Refused(_, code, _, Some(epoch)) => {
                if *code == RefuseCode::StaleEpoch {
                    ProbeResult::NotServing
                } else {
                    ProbeResult::Serving { epoch: *epoch }
                }
            }
            Attach::Unreachable { refused: true } => ProbeResult::NotServing,
            Attach::Refused(_, _, _, None) | Attach::Unreachable { .. } | Attach::NoLogin(_) => {
                ProbeResult::Silent
            }
        }
    }

    /// One bounded attach to the peer: who serves there? (A master asks its slave's
    /// addresses, a slave its master's.) Bounded by the heartbeat loss interval.
    async fn probe(&self, peers: &[SocketAddr]) -> Attach {
        self.s.stats.add_probe();
        let bound = self.s.heartbeat * MISSED_HEARTBEATS;
        let attach = async { Some(self.try_attach(peers).await) };
        let expire = async {
            rt::sleep(bound).await;
            None
        };
        futures_lite::future::or(attach, expire)
            .await
            .unwrap_or(Attach::Unreachable { refused: false })
    }

    async fn try_attach(&self, peers: &[SocketAddr]) -> Attach {
        let login = match &self.s.master {
            Some(m) => match &m.login {
                Some(l) => l.clone(),
                None => {
                    return Attach::NoLogin(
                        "this slave has nothing to prove to its master: set \
                         <masterConnector userName password> or <tandem replicationSecret>"
                            .into(),
                    )
                }
            },
            None => match self.s.acceptor.rejoin_login() {
                Some(l) => l,
                None => {
                    // Nobody can be authenticated: the remembered peer is as good as
                    // unreachable (its word would not be believed).
                    tracing::warn!(peers = ?peers, "no replication secret to rejoin the remembered peer with");
                    return Attach::Unreachable { refused: false };
                }
            },
        };
        let mut all_refused = true;
        for &addr in peers {
            match self.attach_once(addr, &login).await {
                Attach::Unreachable { refused } => all_refused &= refused,
                other => return other,
            }
        }
        Attach::Unreachable {
            refused: all_refused,
        }
    }

    /// How this node's links to its peer run TLS: the configured master's, or for a
    /// remembered peer the rejoin configuration (`node::tls`); `None`: plain TCP.
    fn link_tls(&self) -> Option<LinkTls> {
        match &self.s.master {
            Some(m) => m.tls.clone(),
            None => self
                .s
                .rejoin_tls
                .clone()
                .map(|config| LinkTls { config, name: None }),
        }
    }

    /// Logs a TLS failure reaching `addr` (a certificate refused either way, a
    /// plain-text port) as a warning, once per distinct reason: the attach is retried
    /// for as long as it fails, and the operator needs the reason, not a flood. False
    /// if `e` is not a TLS failure.
    fn noted_tls_failure(&self, addr: SocketAddr, tls: bool, e: &LinkError) -> bool {
        let is_tls =
            tls && matches!(e, LinkError::Io(io) if io.kind() == std::io::ErrorKind::InvalidData);
        if !is_tls {
            return false;
        }
        let text = e.to_string();
        let mut last = self.last_tls_failure.borrow_mut();
        if last.as_deref() != Some(text.as_str()) {
            tracing::warn!(%addr, error = %text, "TLS with the peer failed; retrying (check the trust store, this node's key store and the peer's certificate names)");
            *last = Some(text);
        }
        true
    }

    /// One handshake with `addr` as the connecting side (see [`auth`]): nothing the
    /// peer says is believed before its proof checks out.
    async fn attach_once(&self, addr: SocketAddr, login: &Login) -> Attach {
        let tls = self.link_tls();
        let link = match Link::connect(addr, CONNECT_TIMEOUT, tls.as_ref()).await {
            Ok(l) => l,
            Err(e) => {
                if !self.noted_tls_failure(addr, tls.is_some(), &e) {
                    tracing::debug!(%addr, error = %e, "peer not reachable");
                }
                let refused = matches!(&e, LinkError::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused);
                return Attach::Unreachable { refused };
            }
        };
        link.set_frame_limit(HANDSHAKE_MAX_FRAME_BYTES);
        let slave_nonce = match auth::nonce() {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(%addr, error = %e, "replication handshake abandoned");
                link.close(Duration::from_millis(10)).await;
                return Attach::Unreachable { refused: false };
            }
        };
        link.send(&Frame {
            epoch: 0,
            body: Body::Hello {
                version: VERSION,
                user: login.user.clone(),
                nonce: slave_nonce,
            },
        });
        let outcome = self.finish_attach(&link, login, slave_nonce).await;
        match outcome {
            Attach::Welcomed(..) => link.set_frame_limit(Decoder::DEFAULT_MAX_FRAME_BYTES),
            _ => link.close(Duration::from_millis(10)).await,
        }
        outcome
    }

    async fn finish_attach(&self, link: &Rc<Link>, login: &Login, slave_nonce: Nonce) -> Attach {
        let addr = link.peer;
        let master_nonce = match link.recv(HANDSHAKE_TIMEOUT).await {
            Ok(Frame {
                body: Body::Challenge { nonce },
                ..
            }) => nonce,
            Ok(Frame {
                body: Body::Refuse { code, reason, .. },
                ..
            }) => {
                // Before any proof: shown, never believed (no epoch).
                return Attach::Refused(addr, code, reason, None);
            }
            Ok(other) => {
                tracing::warn!(%addr, frame = ?std::mem::discriminant(&other.body), "unexpected answer to Hello");
                return Attach::Unreachable { refused: false };
            }
            Err(e) => {
                // With TLS 1.3 a master that refuses this node's certificate says so
                // only now, in an alert instead of an answer.
                if !self.noted_tls_failure(addr, self.link_tls().is_some(), &e) {
                    tracing::debug!(%addr, error = %e, "no answer to Hello");
                }
                return Attach::Unreachable { refused: false };
            }
        };
        let nonces = Nonces {
            user: login.user.clone(),
            slave: slave_nonce,
            master: master_nonce,
        };
        let our_epoch = self.state.borrow().epoch;
        let mut proof = Frame {
            epoch: our_epoch,
            body: Body::Proof {
                proof: [0; PROOF_BYTES],
                node_id: self.state.borrow().node_id.to_string(),
                client_addrs: self.advertised_addrs(),
                positions: self.positions.borrow().iter().map(|p| p.0).collect(),
            },
        };
        auth::sign(&login.key, auth::SLAVE_LABEL, &nonces, &mut proof);
        link.send(&proof);
        // The master streams catch-up plans before it answers: its Welcome may take
        // a while on a large journal, but it is the next frame.
        let answer = match link.recv(HANDSHAKE_TIMEOUT).await {
            Ok(f) => f,
            Err(e) => {
                tracing::debug!(%addr, error = %e, "no answer to Proof");
                return Attach::Unreachable { refused: false };
            }
        };
        match auth::judge_answer(&login.key, &nonces, our_epoch, self.s.shards, &answer) {
            Answer::Welcomed => Attach::Welcomed(link.clone(), answer),
            Answer::Refused {
                code,
                reason,
                epoch,
            } => Attach::Refused(addr, code, reason, Some(epoch)),
            Answer::RefusedUnauthenticated { reason } => {
                Attach::Refused(addr, RefuseCode::BadCredentials, reason, None)
            }
            Answer::Bogus(why) => {
                tracing::error!(%addr, reason = %why, "the peer's answer is not believed; not following it");
                Attach::Unreachable { refused: false }
            }
        }
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

    fn become_master(&self, epoch: u64, takeover: bool) -> Result<(), ()> {
        {
            let mut st = self.state.borrow_mut();
            assert!(epoch > st.epoch, "a master run takes a new epoch");
            st.epoch = epoch;
            st.role = Some(Role::Master);
            let starts = self.positions.borrow().iter().map(|p| p.0).collect();
            st.push_history(epoch, starts);
        }
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

fn record_of(c: machine::Claim) -> Record {
    Record {
        epoch: c.epoch,
        node: c.node,
        in_sync: c.in_sync,
    }
}

fn claim_of(r: Record) -> machine::Claim {
    machine::Claim {
        epoch: r.epoch,
        node: r.node,
        in_sync: r.in_sync,
    }
}
