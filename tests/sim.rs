//! A deterministic simulator of the pair's decisions ([`tandem::replication::machine`]).
//!
//! Two nodes run the real [`Machine`]; everything around it is simulated, in
//! one-millisecond steps, from one seed: a TCP-like link (in order, delayed; a cut
//! holds packets back until it heals, so it is silence, not a reset), disks that lose
//! what was not fsynced on a crash, process kills and restarts, pauses (a stopped
//! process whose clock jumps when it resumes), an etcd-like witness with leases, and
//! clients that send writes to whichever node serves and record every confirmation.
//!
//! Checked after every step:
//! * **one master confirms at a time**: with a witness, once a write was confirmed at
//!   some epoch no node confirms at an older one; without one (runs without link cuts:
//!   the documented split brain needs a cut), no node confirms while another node's
//!   run of confirmations is under way;
//! * **no confirmed write lost**: a node that starts serving holds every write confirmed
//!   so far (with a witness); at the end, after healing everything, the serving node
//!   holds every confirmed write, or (without a witness) the write is in a node's
//!   diverged set, which `tandem journal replay-diverged` resends;
//! * epochs of master runs are unique, and grow on every node (asserted in the machine).
//!
//! `cargo test --release --test sim` runs `TANDEM_SIM_SEEDS` seeds (default 300) per
//! mode from `TANDEM_SIM_SEED` (default 1); a failure prints the seed and mode, and
//! `TANDEM_SIM_SEED=<seed> TANDEM_SIM_SEEDS=1 TANDEM_SIM_TRACE=1` replays it exactly with
//! a trace. Millions: `TANDEM_SIM_SEEDS=1000000 cargo test --release --test sim`.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::time::Duration;

use tandem::replication::machine::{
    AttachResult, Claim, Effect, Expect, Input, Machine, ProbeResult, Remembered, Settings,
    WitnessInput,
};
use tandem::replication::role::Role;

const HEARTBEAT: u64 = 100;
const RUN_MS: u64 = 40_000;
const SETTLE_MS: u64 = 15_000;
const LATENCY: u64 = 1;
const PROBE_BOUND: u64 = 5 * HEARTBEAT;
const TTL: u64 = 2_000;

// ---------------------------------------------------------------------------------
// Randomness

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    fn chance(&mut self, per_million: u64) -> bool {
        self.below(1_000_000) < per_million
    }
}

// ---------------------------------------------------------------------------------
// The world

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    write: u64,
    epoch: u64,
}

#[derive(Clone, Debug)]
enum Msg {
    /// Master to slave: entries starting at log index `from`.
    Ship {
        from: usize,
        entries: Vec<Entry>,
    },
    Ack {
        durable: usize,
    },
    Heartbeat,
    InSync,
    /// The connection ended at the sender's side (FIN or RST).
    Close,
}

struct Conn {
    id: u64,
    master: usize,
    slave: usize,
    /// Packets in flight: (deliver at, to node, epoch, message).
    queue: VecDeque<(u64, usize, u64, Msg)>,
    open_at: [bool; 2],
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    /// No witness; faults: kills, pauses, resets (no silent cuts).
    NoWitness,
    /// No witness, with link cuts: split brain allowed, nothing may be lost (diverged
    /// sets count).
    NoWitnessCuts,
    /// A witness, every fault.
    Witness,
}

struct Node {
    node_id: u16,
    m: Machine,
    up: bool,
    paused_until: u64,
    restart_at: Option<u64>,
    persisted: Remembered,
    log: Vec<Entry>,
    durable: usize,
    fsync_due: Option<(u64, usize)>,
    next_tick: u64,
    // master data path
    required: bool,
    acked: usize,
    require_from: Option<usize>,
    alone_until: Option<u64>,
    pending: Vec<(usize, u64)>,
    shipped: usize,
    conn: Option<u64>,
    caught_up_sent: bool,
    // slave data path
    in_sync_told: bool,
    // effects waiting for an answer
    probe_due: Option<(u64, bool)>, // (at, is_attach)
    /// Witness agent: the lease it holds, and its next keepalive.
    holds_lease: bool,
    next_keepalive: u64,
    diverged: Vec<u64>,
}

struct Witness {
    up: bool,
    lease: Option<(usize, u64)>, // holder, expires at (witness clock = world clock)
    state: Option<Claim>,
    /// Requests in flight: (arrive at, from, request, sent at).
    queue: VecDeque<(u64, usize, WReq, u64)>,
    /// Replies in flight: (arrive at, to, reply).
    replies: VecDeque<(u64, usize, WitnessInput)>,
}

#[derive(Clone, Copy, Debug)]
enum WReq {
    Campaign(Claim, Expect),
    Update(Claim),
    KeepAlive,
    Resign,
}

struct World {
    mode: Mode,
    rng: Rng,
    now: u64,
    nodes: Vec<Node>,
    conns: Vec<Conn>,
    next_conn: u64,
    link_cut_until: u64,
    witness_cut_until: [u64; 2],
    witness: Witness,
    next_write: u64,
    confirmed: BTreeMap<u64, (usize, u64)>, // write -> (node, epoch)
    max_confirmed_epoch: u64,
    /// Per epoch: the node that confirmed in it, its first and last confirmation.
    runs: BTreeMap<u64, (usize, u64, u64)>,
    serve_epochs: HashSet<u64>,
    trace: bool,
    log: Vec<String>,
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

fn settings(node_id: u16, witness: bool, configured_master: bool) -> Settings {
    let mut s = Settings::from_heartbeat(node_id, Duration::from_millis(HEARTBEAT));
    s.witness = witness;
    s.configured_master = configured_master;
    s.has_peer = true;
    s
}

impl World {
    fn new(seed: u64, mode: Mode, trace: bool) -> World {
        let mut rng = Rng(seed);
        let mut nodes = Vec::new();
        for i in 0..2 {
            let node_id = 1 + i as u16 + (rng.below(100) as u16) * 2;
            let persisted = Remembered {
                epoch: 0,
                role: None,
            };
            nodes.push(Node {
                node_id,
                m: Machine::new(settings(node_id, mode == Mode::Witness, i == 1), persisted),
                up: false,
                paused_until: 0,
                restart_at: Some(if i == 0 { 0 } else { rng.range(50, 400) }),
                persisted,
                log: Vec::new(),
                durable: 0,
                fsync_due: None,
                next_tick: 0,
                required: false,
                acked: 0,
                require_from: None,
                alone_until: None,
                pending: Vec::new(),
                shipped: 0,
                conn: None,
                caught_up_sent: false,
                in_sync_told: false,
                probe_due: None,
                holds_lease: false,
                next_keepalive: 0,
                diverged: Vec::new(),
            });
        }
        World {
            mode,
            rng,
            now: 0,
            nodes,
            conns: Vec::new(),
            next_conn: 1,
            link_cut_until: 0,
            witness_cut_until: [0; 2],
            witness: Witness {
                up: true,
                lease: None,
                state: None,
                queue: VecDeque::new(),
                replies: VecDeque::new(),
            },
            next_write: 1,
            confirmed: BTreeMap::new(),
            max_confirmed_epoch: 0,
            runs: BTreeMap::new(),
            serve_epochs: HashSet::new(),
            trace,
            log: Vec::new(),
        }
    }

    fn note(&mut self, s: String) {
        let line = format!("{:>6} {s}", self.now);
        if self.trace {
            eprintln!("{line}");
        }
        self.log.push(line);
        if self.log.len() > 60 {
            self.log.remove(0);
        }
    }

    fn fail(&self, why: String) -> ! {
        panic!("{why}\nlast events:\n{}", self.log.join("\n"));
    }

    fn running(&self, i: usize) -> bool {
        self.nodes[i].up && self.now >= self.nodes[i].paused_until
    }

    fn link_cut(&self) -> bool {
        self.now < self.link_cut_until
    }

    fn witness_reachable(&self, i: usize) -> bool {
        self.witness.up && self.now >= self.witness_cut_until[i]
    }

    // ---- machine steps and effects ----

    fn step(&mut self, i: usize, input: Input) {
        let now = Duration::from_millis(self.now);
        if self.trace {
            self.note(format!("n{i} <- {input:?}"));
        }
        let effects = self.nodes[i].m.step(now, input);
        for e in effects {
            self.effect(i, e);
        }
    }

    fn effect(&mut self, i: usize, e: Effect) {
        self.note(format!("n{i} -> {e:?}"));
        match e {
            Effect::Attach => {
                self.nodes[i].probe_due = Some((self.now + self.contact_delay(i), true))
            }
            Effect::Probe => {
                self.nodes[i].probe_due = Some((self.now + self.contact_delay(i), false))
            }
            Effect::Follow { epoch } => {
                self.nodes[i].persisted = Remembered {
                    epoch,
                    role: Some(Role::Slave),
                };
            }
            Effect::CloseLink => {
                if self.nodes[i].m.is_serving() {
                    self.on_slave_gone(i);
                }
                self.close_conn_of(i)
            }
            Effect::Serve { epoch, takeover: _ } => {
                if !self.serve_epochs.insert(epoch) {
                    self.fail(format!("epoch {epoch} served twice"));
                }
                self.nodes[i].persisted = Remembered {
                    epoch,
                    role: Some(Role::Master),
                };
                let n = &mut self.nodes[i];
                n.required = false;
                n.acked = 0;
                n.require_from = None;
                n.alone_until = None;
                n.shipped = n.log.len();
                if self.mode == Mode::Witness {
                    // Every write confirmed so far must be in the log it serves.
                    let have: HashSet<u64> = self.nodes[i].log.iter().map(|e| e.write).collect();
                    let lost: Vec<u64> = self
                        .confirmed
                        .keys()
                        .filter(|w| !have.contains(w))
                        .copied()
                        .collect();
                    if !lost.is_empty() {
                        self.fail(format!(
                            "n{i} serves epoch {epoch:#x} without confirmed writes {lost:?}"
                        ));
                    }
                }
            }
            Effect::ConfirmAlone(until) => self.nodes[i].alone_until = until.map(ms),
            Effect::DeclareInSync => {
                if let Some(id) = self.nodes[i].conn {
                    self.send(id, i, Msg::InSync);
                }
            }
            Effect::StepDown { .. } => {
                let n = &mut self.nodes[i];
                n.persisted.role = Some(Role::Slave);
                self.crash(i, 50, 300);
            }
            Effect::Exit { .. } => self.crash(i, 200, 1000),
            Effect::Restart { .. } => self.crash(i, 50, 300),
            Effect::Campaign { claim, expect } => {
                self.send_to_witness(i, WReq::Campaign(claim, expect))
            }
            Effect::WitnessUpdate { claim } => self.send_to_witness(i, WReq::Update(claim)),
            Effect::WitnessResign => {
                if self.nodes[i].holds_lease {
                    self.send_to_witness(i, WReq::Resign);
                }
                self.nodes[i].holds_lease = false;
            }
            Effect::Stopped => {}
        }
    }

    /// How long an attach or probe takes to answer.
    fn contact_delay(&self, _i: usize) -> u64 {
        2 * LATENCY
    }

    // ---- processes ----

    fn crash(&mut self, i: usize, lo: u64, hi: u64) {
        if !self.nodes[i].up {
            return;
        }
        self.note(format!("n{i} process ends"));
        self.close_conn_of(i);
        let back = self.now + self.rng.range(lo, hi);
        let n = &mut self.nodes[i];
        n.up = false;
        n.log.truncate(n.durable);
        n.fsync_due = None;
        n.pending.clear();
        n.probe_due = None;
        n.holds_lease = false;
        n.restart_at = Some(back);
    }

    fn start(&mut self, i: usize) {
        self.note(format!("n{i} process starts"));
        let witness = self.mode == Mode::Witness;
        let n = &mut self.nodes[i];
        n.up = true;
        n.restart_at = None;
        n.paused_until = 0;
        n.m = Machine::new(settings(n.node_id, witness, i == 1), n.persisted);
        n.required = false;
        n.acked = 0;
        n.require_from = None;
        n.alone_until = None;
        n.conn = None;
        n.in_sync_told = false;
        n.caught_up_sent = false;
        n.next_tick = self.now + HEARTBEAT;
        self.step(i, Input::Start);
    }

    // ---- link ----

    fn send(&mut self, conn: u64, from: usize, msg: Msg) {
        let epoch = self.nodes[from].m.epoch();
        let at = self.now + LATENCY;
        if let Some(c) = self.conns.iter_mut().find(|c| c.id == conn) {
            let to = if c.master == from { c.slave } else { c.master };
            c.queue.push_back((at, to, epoch, msg));
        }
    }

    fn close_conn_of(&mut self, i: usize) {
        if let Some(id) = self.nodes[i].conn.take() {
            self.send(id, i, Msg::Close);
            if let Some(c) = self.conns.iter_mut().find(|c| c.id == id) {
                let side = usize::from(c.slave == i);
                c.open_at[side] = false;
            }
        }
    }

    fn connect(&mut self, master: usize, slave: usize) {
        self.close_conn_of(master);
        self.close_conn_of(slave);
        let id = self.next_conn;
        self.next_conn += 1;
        self.conns.push(Conn {
            id,
            master,
            slave,
            queue: VecDeque::new(),
            open_at: [true, true],
        });
        self.nodes[master].conn = Some(id);
        self.nodes[slave].conn = Some(id);
        // The slave's copy: the common prefix stays, the rest is set aside.
        let common = self.nodes[slave]
            .log
            .iter()
            .zip(self.nodes[master].log.iter())
            .take_while(|(a, b)| a == b)
            .count();
        let set_aside: Vec<u64> = self.nodes[slave].log[common..]
            .iter()
            .map(|e| e.write)
            .collect();
        if !set_aside.is_empty() {
            self.note(format!(
                "n{slave} sets aside {} diverged entries",
                set_aside.len()
            ));
        }
        let s = &mut self.nodes[slave];
        s.diverged.extend(set_aside);
        s.log.truncate(common);
        s.durable = s.durable.min(common);
        s.fsync_due = None;
        s.in_sync_told = false;
        let entries = self.nodes[master].log[common..].to_vec();
        let end = self.nodes[master].log.len();
        let m = &mut self.nodes[master];
        m.shipped = end;
        m.required = true;
        m.acked = common;
        m.require_from = Some(end);
        m.caught_up_sent = false;
        let node_id = self.nodes[slave].node_id;
        self.send(
            id,
            master,
            Msg::Ship {
                from: common,
                entries,
            },
        );
        self.step(master, Input::SlaveAttached { node: node_id });
    }

    fn deliver(&mut self) {
        if self.link_cut() {
            return;
        }
        let mut due = Vec::new();
        for c in &mut self.conns {
            while let Some(&(at, to, _, _)) = c.queue.front() {
                if at > self.now || !(self.nodes[to].up && self.now >= self.nodes[to].paused_until)
                {
                    break;
                }
                let (_, to, epoch, msg) = c.queue.pop_front().expect("front");
                let side = usize::from(c.slave == to);
                if c.open_at[side] {
                    due.push((c.id, to, epoch, msg));
                }
            }
        }
        self.conns
            .retain(|c| !c.queue.is_empty() || c.open_at.iter().any(|o| *o));
        for (id, to, epoch, msg) in due {
            if self.nodes[to].conn != Some(id) || !self.nodes[to].up {
                continue;
            }
            self.receive(id, to, epoch, msg);
        }
    }

    fn receive(&mut self, id: u64, to: usize, epoch: u64, msg: Msg) {
        let serving = self.nodes[to].m.is_serving();
        match msg {
            Msg::Close => {
                self.nodes[to].conn = None;
                if let Some(c) = self.conns.iter_mut().find(|c| c.id == id) {
                    let side = usize::from(c.slave == to);
                    c.open_at[side] = false;
                }
                self.link_broke(to, serving, "closed");
            }
            _ if epoch != self.nodes[to].m.epoch() => {
                // A frame at another epoch: protocol error, the link closes.
                self.close_conn_of(to);
                self.link_broke(to, serving, "epoch");
            }
            Msg::Heartbeat => self.step(to, Input::Heard),
            Msg::InSync => {
                self.nodes[to].in_sync_told = true;
                self.step(to, Input::Heard);
                self.step(to, Input::InSync);
            }
            Msg::Ship { from, entries } => {
                let n = &mut self.nodes[to];
                if from <= n.log.len() {
                    n.log.truncate(from);
                    n.log.extend(entries);
                    let end = n.log.len();
                    n.fsync_due = Some((self.now + self.rng.range(1, 4), end));
                }
                self.step(to, Input::Heard);
            }
            Msg::Ack { durable } => {
                let n = &mut self.nodes[to];
                if durable > n.acked {
                    n.acked = durable;
                }
                if let Some(from) = n.require_from {
                    if n.acked >= from && !n.caught_up_sent {
                        n.caught_up_sent = true;
                        self.step(to, Input::SlaveCaughtUp);
                    }
                }
            }
        }
    }

    /// Node `to`'s link ended uncleanly: a master's data path lets the slave go, and the
    /// machine hears of it.
    fn link_broke(&mut self, to: usize, serving: bool, why: &str) {
        if serving {
            self.on_slave_gone(to);
        }
        self.step(
            to,
            Input::LinkClosed {
                clean: false,
                why: why.into(),
            },
        );
    }

    /// The master's data path when its slave goes: acks forgotten, replies held until
    /// a grant (the gate in `broker::shard::replica_gate`).
    fn on_slave_gone(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        n.required = false;
        n.acked = 0;
        n.require_from = None;
        n.caught_up_sent = false;
    }

    // ---- probes and attaches ----

    fn answer_contacts(&mut self) {
        for i in 0..2 {
            let Some((at, attach)) = self.nodes[i].probe_due else {
                continue;
            };
            if at > self.now || !self.running(i) {
                continue;
            }
            let peer = 1 - i;
            let silent = self.link_cut() || (self.nodes[peer].up && !self.running(peer));
            if silent && self.now < at + PROBE_BOUND - 2 * LATENCY {
                // The answer comes at the bound (a connect that hangs).
                self.nodes[i].probe_due = Some((at + PROBE_BOUND, attach));
                continue;
            }
            self.nodes[i].probe_due = None;
            let ours = self.nodes[i].m.epoch();
            let result: Result<u64, ProbeResult> = if silent {
                Err(ProbeResult::Silent)
            } else if !self.nodes[peer].up || !self.nodes[peer].m.is_serving() {
                Err(ProbeResult::NotServing)
            } else {
                let theirs = self.nodes[peer].m.epoch();
                if ours > theirs {
                    // Our Proof carries a newer epoch: the peer steps down.
                    self.step(peer, Input::NewerEpoch { epoch: ours });
                    Err(ProbeResult::NotServing)
                } else {
                    Ok(theirs)
                }
            };
            if attach {
                let r = match result {
                    Ok(epoch) => AttachResult::Welcomed { epoch },
                    Err(_) => AttachResult::Unreachable,
                };
                let welcomed = matches!(r, AttachResult::Welcomed { .. });
                self.step(i, Input::Attach(r));
                if welcomed && self.nodes[i].m.is_following() && self.nodes[peer].m.is_serving() {
                    self.connect(peer, i);
                }
            } else {
                let r = match result {
                    Ok(epoch) => ProbeResult::Serving { epoch },
                    Err(r) => r,
                };
                self.step(i, Input::Probe(r));
                if matches!(r, ProbeResult::Serving { .. })
                    && self.nodes[i].m.is_following()
                    && self.nodes[peer].m.is_serving()
                {
                    self.connect(peer, i);
                }
            }
        }
    }

    // ---- witness ----

    fn send_to_witness(&mut self, i: usize, req: WReq) {
        let sent = self.now;
        if self.witness_reachable(i) {
            self.witness
                .queue
                .push_back((self.now + LATENCY, i, req, sent));
        } else if !matches!(req, WReq::Resign | WReq::KeepAlive) {
            self.witness
                .replies
                .push_back((self.now + 500, i, WitnessInput::Unreachable));
        }
    }

    fn run_witness(&mut self) {
        if let Some((_, exp)) = self.witness.lease {
            if self.now >= exp {
                self.witness.lease = None;
            }
        }
        while let Some(&(at, from, req, sent)) = self.witness.queue.front() {
            if at > self.now {
                break;
            }
            self.witness.queue.pop_front();
            if !self.witness.up {
                continue;
            }
            let reply = match req {
                WReq::Campaign(claim, expect) => {
                    let state_ok = match expect {
                        Expect::Absent => self.witness.state.is_none(),
                        Expect::Is(c) => self.witness.state == Some(c),
                        Expect::WrittenBy { epoch, node } => self
                            .witness
                            .state
                            .is_some_and(|c| c.epoch == epoch && c.node == node),
                    };
                    if self.witness.lease.is_none() && state_ok {
                        self.witness.lease = Some((from, self.now + TTL));
                        self.witness.state = Some(claim);
                        Some(WitnessInput::Won {
                            valid_until: Duration::from_millis(sent + TTL),
                        })
                    } else {
                        Some(WitnessInput::Lost {
                            state: self.witness.state,
                        })
                    }
                }
                WReq::Update(claim) => {
                    let ok = self.witness.lease.is_some_and(|(h, _)| h == from);
                    if ok {
                        self.witness.state = Some(claim);
                    }
                    Some(WitnessInput::Updated { ok, claim })
                }
                WReq::KeepAlive => {
                    if self.witness.lease.is_some_and(|(h, _)| h == from) {
                        self.witness.lease = Some((from, self.now + TTL));
                        Some(WitnessInput::Renewed {
                            valid_until: Duration::from_millis(sent + TTL),
                        })
                    } else {
                        Some(WitnessInput::LeaseLost)
                    }
                }
                WReq::Resign => {
                    if self.witness.lease.is_some_and(|(h, _)| h == from) {
                        self.witness.lease = None;
                    }
                    None
                }
            };
            if let Some(r) = reply {
                if self.witness_reachable(from) {
                    self.witness
                        .replies
                        .push_back((self.now + LATENCY, from, r));
                }
            }
        }
        let mut keep = VecDeque::new();
        while let Some((at, to, r)) = self.witness.replies.pop_front() {
            if at > self.now || !self.running(to) {
                if self.nodes[to].up {
                    keep.push_back((at, to, r));
                }
                continue;
            }
            match r {
                WitnessInput::Won { .. } => {
                    self.nodes[to].holds_lease = true;
                    self.nodes[to].next_keepalive = self.now + TTL / 3;
                }
                WitnessInput::LeaseLost => self.nodes[to].holds_lease = false,
                _ => {}
            }
            self.step(to, Input::Witness(r));
        }
        self.witness.replies = keep;
        for i in 0..2 {
            if self.running(i)
                && self.nodes[i].holds_lease
                && self.now >= self.nodes[i].next_keepalive
            {
                self.nodes[i].next_keepalive = self.now + TTL / 3;
                self.send_to_witness(i, WReq::KeepAlive);
            }
        }
    }

    // ---- clients and confirmations ----

    fn client_writes(&mut self) {
        if !self.rng.chance(200_000) {
            return;
        }
        // A failover client: the first node that serves and answers.
        let order = if self.rng.chance(500_000) {
            [0, 1]
        } else {
            [1, 0]
        };
        for i in order {
            if self.running(i) && self.nodes[i].m.is_serving() {
                let write = self.next_write;
                self.next_write += 1;
                let epoch = self.nodes[i].m.epoch();
                let n = &mut self.nodes[i];
                n.log.push(Entry { write, epoch });
                let idx = n.log.len();
                n.pending.push((idx, write));
                if n.fsync_due.is_none() {
                    n.fsync_due = Some((self.now + self.rng.range(1, 3), idx));
                }
                if let Some(id) = self.nodes[i].conn {
                    let from = idx - 1;
                    let e = self.nodes[i].log[from];
                    self.nodes[i].shipped = idx;
                    self.send(
                        id,
                        i,
                        Msg::Ship {
                            from,
                            entries: vec![e],
                        },
                    );
                }
                return;
            }
        }
    }

    fn fsyncs(&mut self) {
        for i in 0..2 {
            if !self.running(i) {
                continue;
            }
            if let Some((at, end)) = self.nodes[i].fsync_due {
                if at <= self.now {
                    let n = &mut self.nodes[i];
                    n.durable = n.durable.max(end.min(n.log.len()));
                    n.fsync_due = (n.log.len() > n.durable).then(|| (self.now + 2, n.log.len()));
                    if !n.m.is_serving() {
                        if let Some(id) = n.conn {
                            let durable = n.durable;
                            self.send(id, i, Msg::Ack { durable });
                        }
                    }
                }
            }
        }
    }

    fn confirmations(&mut self) {
        for i in 0..2 {
            if !self.running(i) || !self.nodes[i].m.is_serving() {
                continue;
            }
            let now = self.now;
            let epoch = self.nodes[i].m.epoch();
            let n = &mut self.nodes[i];
            let alone = !n.required && n.alone_until.is_some_and(|u| now < u);
            let (durable, acked, required) = (n.durable, n.acked, n.required);
            let mut done = Vec::new();
            n.pending.retain(|&(idx, write)| {
                let ok = durable >= idx && ((required && acked >= idx) || alone);
                if ok {
                    done.push(write);
                }
                !ok
            });
            for write in done {
                self.confirm(i, epoch, write);
            }
        }
    }

    fn confirm(&mut self, i: usize, epoch: u64, write: u64) {
        let run = *self.runs.entry(epoch).or_insert((i, self.now, self.now));
        if self.mode == Mode::NoWitness {
            // Two masters at once: another node confirmed after this run began.
            if let Some((&other, _)) = self
                .runs
                .iter()
                .find(|(_, &(node, _, last))| node != i && last >= run.1)
            {
                self.fail(format!(
                    "two masters at once: n{i} confirms write {write} at epoch {epoch:#x} \
                     while epoch {other:#x} confirms too"
                ));
            }
        }
        if let Some(r) = self.runs.get_mut(&epoch) {
            r.2 = self.now;
        }
        if self.mode == Mode::Witness && epoch < self.max_confirmed_epoch {
            self.fail(format!(
                "two masters: n{i} confirms write {write} at epoch {epoch:#x} after epoch {:#x} confirmed",
                self.max_confirmed_epoch
            ));
        }
        self.max_confirmed_epoch = self.max_confirmed_epoch.max(epoch);
        self.confirmed.insert(write, (i, epoch));
    }

    // ---- faults ----

    fn faults(&mut self, calm: bool) {
        for i in 0..2 {
            if !self.nodes[i].up {
                if self.nodes[i].restart_at.is_some_and(|t| t <= self.now) {
                    self.start(i);
                }
                continue;
            }
            if calm {
                continue;
            }
            if self.rng.chance(150) {
                self.note(format!("FAULT kill -9 n{i}"));
                self.crash(i, 100, 3000);
            } else if self.rng.chance(150) && self.running(i) {
                let d = self.rng.range(100, 3000);
                self.note(format!("FAULT pause n{i} for {d} ms"));
                self.nodes[i].paused_until = self.now + d;
            } else if self.rng.chance(100) && self.running(i) {
                self.note(format!("FAULT connection reset at n{i}"));
                self.close_conn_of(i);
                if self.nodes[i].m.is_serving() {
                    self.on_slave_gone(i);
                }
                self.step(
                    i,
                    Input::LinkClosed {
                        clean: false,
                        why: "reset".into(),
                    },
                );
            }
        }
        if calm {
            return;
        }
        if self.mode != Mode::NoWitness && !self.link_cut() && self.rng.chance(150) {
            let d = self.rng.range(300, 6000);
            self.note(format!("FAULT link cut for {d} ms"));
            self.link_cut_until = self.now + d;
        }
        if self.mode == Mode::Witness {
            for i in 0..2 {
                if self.now >= self.witness_cut_until[i] && self.rng.chance(100) {
                    let d = self.rng.range(300, 5000);
                    self.note(format!("FAULT n{i} cut from the witness for {d} ms"));
                    self.witness_cut_until[i] = self.now + d;
                }
            }
            if self.witness.up && self.rng.chance(50) {
                self.note("FAULT witness down".into());
                self.witness.up = false;
            } else if !self.witness.up && self.rng.chance(500) {
                self.note("witness up".into());
                self.witness.up = true;
            }
        }
    }

    fn heal(&mut self) {
        self.link_cut_until = 0;
        self.witness_cut_until = [0; 2];
        self.witness.up = true;
        for n in &mut self.nodes {
            n.paused_until = n.paused_until.min(self.now);
        }
    }

    fn ticks(&mut self) {
        for i in 0..2 {
            if self.running(i) && self.now >= self.nodes[i].next_tick {
                self.nodes[i].next_tick = self.now + HEARTBEAT;
                if let Some(id) = self.nodes[i].conn {
                    self.send(id, i, Msg::Heartbeat);
                }
                self.step(i, Input::Tick);
            }
        }
    }

    fn run_ms(&mut self, calm: bool, clients: bool) {
        self.faults(calm);
        self.deliver();
        self.answer_contacts();
        self.run_witness();
        if clients {
            self.client_writes();
        }
        self.fsyncs();
        self.confirmations();
        self.ticks();
        self.now += 1;
    }

    fn run(&mut self) {
        while self.now < RUN_MS {
            self.run_ms(false, true);
        }
        self.heal();
        let end = self.now + SETTLE_MS;
        while self.now < end {
            self.run_ms(true, self.now < end - SETTLE_MS / 2);
        }
        self.final_check();
    }

    fn final_check(&mut self) {
        let serving: Vec<usize> = (0..2)
            .filter(|&i| self.running(i) && self.nodes[i].m.is_serving())
            .collect();
        if serving.len() != 1 {
            self.fail(format!(
                "after healing, {} nodes serve (expected one)",
                serving.len()
            ));
        }
        let master = serving[0];
        let have: HashSet<u64> = self.nodes[master].log.iter().map(|e| e.write).collect();
        let diverged: HashSet<u64> = self
            .nodes
            .iter()
            .flat_map(|n| n.diverged.iter().copied())
            .collect();
        for (&w, &(node, epoch)) in &self.confirmed {
            if have.contains(&w) {
                continue;
            }
            if self.mode != Mode::Witness && diverged.contains(&w) {
                continue;
            }
            self.fail(format!(
                "confirmed write {w} (n{node}, epoch {epoch:#x}) lost: not on the master n{master}{}",
                if diverged.contains(&w) { " (only in a diverged set)" } else { "" }
            ));
        }
    }
}

fn seeds() -> (u64, u64) {
    let first = std::env::var("TANDEM_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let count = std::env::var("TANDEM_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    (first, count)
}

fn run_mode(mode: Mode) {
    let (first, count) = seeds();
    let trace = std::env::var_os("TANDEM_SIM_TRACE").is_some();
    let mut confirmed = 0usize;
    for seed in first..first + count {
        let result = std::panic::catch_unwind(|| {
            let mut w = World::new(seed, mode, trace);
            w.run();
            w.confirmed.len()
        });
        match result {
            Ok(n) => confirmed += n,
            Err(e) => {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                panic!(
                    "sim {mode:?} seed {seed} failed: {msg}\nreplay: TANDEM_SIM_SEED={seed} \
                     TANDEM_SIM_SEEDS=1 TANDEM_SIM_TRACE=1 cargo test --release --test sim {}",
                    test_name(mode)
                );
            }
        }
    }
    eprintln!("sim {mode:?}: {count} seeds from {first}, {confirmed} confirmed writes checked");
    assert!(
        confirmed > 0,
        "the clients confirmed nothing: the simulation tests nothing"
    );
}

fn test_name(mode: Mode) -> &'static str {
    match mode {
        Mode::NoWitness => "without_a_witness_pauses_and_kills_never_make_two_masters",
        Mode::NoWitnessCuts => "without_a_witness_a_cut_loses_nothing_confirmed",
        Mode::Witness => "with_a_witness_nothing_makes_two_masters_or_loses_a_write",
    }
}

#[test]
fn without_a_witness_pauses_and_kills_never_make_two_masters() {
    run_mode(Mode::NoWitness);
}

#[test]
fn without_a_witness_a_cut_loses_nothing_confirmed() {
    run_mode(Mode::NoWitnessCuts);
}

#[test]
fn with_a_witness_nothing_makes_two_masters_or_loses_a_write() {
    run_mode(Mode::Witness);
}
