//! The master side: accept one slave, catch it up, ship live batches, route its
//! acknowledgements to the shards, and notice when it is gone.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::flow::{self, LiveAction, Stream};
use super::{
    AckMode, Core, Ev, Event, Request, HANDSHAKE_MAX_FRAME_BYTES, HANDSHAKE_TIMEOUT,
    MISSED_HEARTBEATS,
};
use crate::metrics::replication::{PeerState, Role};
use crate::replication::auth::{self, Acceptor, Key, MasterView, Nonces, OnHello, Verdict};
use crate::replication::frame::{Body, Decoder, Frame, RefuseCode, PROOF_BYTES};
use crate::replication::link::Link;
use crate::replication::port::{self, CatchUp, Command, Live};
use crate::rt;
use crate::store::{self, BatchFrame, Position};
use crate::ShardId;

impl Core {
    pub(super) async fn run_master(&self) {
        let mut slave: Option<Attached> = None;
        loop {
            match self.next().await {
                Ev::Live(Live::SlaveSocket { stream, slot }) => self.handshake(stream, slot),
                Ev::Proof(link, nonces, proof) => {
                    if let Some(a) = self.on_proof(&slave, link, nonces, proof) {
                        slave = Some(a);
                    }
                }
                Ev::Live(Live::Batch {
                    shard,
                    start,
                    bytes,
                }) => {
                    if let Some(a) = slave.as_mut() {
                        a.ship_live(self, shard, start, bytes);
                    }
                }
                Ev::Live(Live::Volatile { shard, record }) => {
                    if let Some(a) = slave.as_mut() {
                        a.send_volatile(self, shard, record);
                    }
                }
                Ev::Live(Live::Overflow { shard, from }) => {
                    if let Some(a) = slave.as_mut() {
                        a.on_overflow(self, shard, from);
                    }
                }
                Ev::Live(Live::Requiring { shard, from }) => {
                    if let Some(a) = slave.as_mut() {
                        a.shards[shard].requiring_from = Some(from);
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
                    let ours = self.state.borrow().epoch;
                    if f.epoch != ours {
                        let why = format!(
                            "protocol error: frame at epoch {} on a link at epoch {ours}",
                            f.epoch
                        );
                        self.slave_lost(&mut slave, &why, false);
                        continue;
                    }
                    match f.body {
                        Body::Ack {
                            shard,
                            received,
                            durable,
                        } if shard < self.s.shards => {
                            let bound = a.ack_bound(shard);
                            if received > bound.0 || durable > received {
                                let why = format!(
                                    "protocol error: shard {shard} acknowledged received {} \
                                     durable {} beyond what was shipped ({bound})",
                                    Position(received),
                                    Position(durable)
                                );
                                self.slave_lost(&mut slave, &why, false);
                                continue;
                            }
                            let held = match self.s.ack {
                                AckMode::Fsync => durable,
                                AckMode::Received => received,
                            };
                            a.on_ack(self, shard, Position(held));
                            a.resume_behind(self);
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
                    if let Some(a) = slave.as_mut() {
                        a.resume_behind(self);
                        a.link.send(&Frame {
                            epoch: self.state.borrow().epoch,
                            body: Body::Heartbeat,
                        });
                        a.publish_lag(self);
                        if a.last_heard.elapsed() > limit {
                            let why = format!("no heartbeat for {limit:?}");
                            self.slave_lost(&mut slave, &why, false);
                        } else if let Some(age) = a.waited_too_long(self.s.ack_timeout) {
                            let why = format!(
                                "no acknowledgement for {age:?} (replicationAckTimeout {:?})",
                                self.s.ack_timeout
                            );
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

    /// Runs a new connection's Hello and Challenge off the event loop; only a Proof
    /// (not yet checked) reaches the core, as [`Ev::Proof`]. Reads no node state: the
    /// Challenge carries the nonce and nothing else.
    fn handshake(&self, stream: std::net::TcpStream, slot: port::ConnectionSlot) {
        if self.handshakes.get() >= MAX_HANDSHAKES {
            // Each is a task and a socket: bounded, so a flood of Hellos costs little.
            tracing::warn!(
                limit = MAX_HANDSHAKES,
                "too many replication handshakes in progress; connection closed"
            );
            return;
        }
        self.handshakes.set(self.handshakes.get() + 1);
        let counter = self.handshakes.clone();
        let tx = self.queue_tx.clone();
        let acceptor = self.s.acceptor.clone();
        rt::spawn_local(async move {
            run_handshake(stream, slot, &acceptor, &tx).await;
            counter.set(counter.get().saturating_sub(1));
        });
    }

    /// Refuses an authenticated peer: the Refuse carries this master's epoch and proof.
    fn refuse(&self, link: &Rc<Link>, auth: &(Key, Nonces), code: RefuseCode, reason: String) {
        tracing::warn!(peer = %link.peer, %reason, "slave refused");
        let mut f = Frame {
            epoch: self.state.borrow().epoch,
            body: Body::Refuse {
                proof: [0; PROOF_BYTES],
                code,
                reason,
            },
        };
        auth::sign(&auth.0, auth::MASTER_LABEL, &auth.1, &mut f);
        link.send(&f);
        let link = link.clone();
        rt::spawn_local(async move { link.close(Duration::from_millis(500)).await });
    }

    fn on_proof(
        &self,
        current: &Option<Attached>,
        link: Rc<Link>,
        nonces: Nonces,
        proof: Frame,
    ) -> Option<Attached> {
        let ours = self.state.borrow().epoch;
        let view = MasterView {
            epoch: ours,
            shards: self.s.shards,
            current_slave: current.as_ref().map(|a| a.link.peer.to_string()),
        };
        let verdict = auth::judge_proof(&self.s.acceptor, &nonces, &view, &proof);
        if let Verdict::Unauthenticated(why) = &verdict {
            refuse_unauthenticated(&link, why.clone());
            return None;
        }
        // Present: the proof was checked against it.
        let key = self.s.acceptor.key_for(&nonces.user)?.clone();
        let auth = (key, nonces);
        let (resume, positions, client_addrs, node_id) = match verdict {
            Verdict::Unauthenticated(_) => return None,
            Verdict::Refuse {
                code,
                reason,
                stale,
            } => {
                let reason = if stale {
                    format!("the peer at {}: {reason}", link.peer)
                } else {
                    reason
                };
                self.refuse(&link, &auth, code, reason.clone());
                if stale {
                    // An authenticated peer served after this node did: this node's
                    // data is stale.
                    tracing::error!("{reason}");
                    self.emit(Event::Exit { code: 1, reason });
                }
                return None;
            }
            Verdict::Attach {
                resume,
                positions,
                client_addrs,
                node_id,
            } => (resume, positions, client_addrs, node_id),
        };
        // Only an authenticated peer's addresses are remembered.
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
        tracing::info!(slave = %shown, link = %link.peer, node = %node_id, resume, "slave authenticated and attached; catching it up");
        Some(Attached {
            link,
            link_id,
            auth,
            welcomed: false,
            pending: Vec::new(),
            pending_bytes: 0,
            starts: vec![None; self.s.shards],
            shards: (0..self.s.shards).map(|_| ShardSync::new()).collect(),
            dropping_volatile: false,
            all_done: None,
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
        self.s.stats.set_buffered(0, 0);
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

/// Concurrent replication handshakes (Hello to Proof) the core runs at most.
const MAX_HANDSHAKES: usize = 8;

/// Hello, Challenge, Proof on a fresh connection; hands the Proof to the core.
async fn run_handshake(
    stream: std::net::TcpStream,
    slot: port::ConnectionSlot,
    acceptor: &Acceptor,
    tx: &async_channel::Sender<Ev>,
) {
    let Ok(peer) = stream.peer_addr() else { return };
    let (r, w) = match rt::net::from_std(stream) {
        Ok(halves) => halves,
        Err(e) => {
            tracing::warn!(%peer, error = %e, "cannot adopt the replication connection");
            return;
        }
    };
    // Nothing before the proof is trusted, so nothing large is read either.
    let link = Link::with_frame_limit(r, w, peer, HANDSHAKE_MAX_FRAME_BYTES);
    link.hold(slot);
    let first = match link.recv(HANDSHAKE_TIMEOUT).await {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(%peer, error = %e, "replication handshake failed");
            link.close(Duration::from_millis(10)).await;
            return;
        }
    };
    let (user, slave_nonce) = match auth::on_hello(acceptor, &first) {
        OnHello::Refuse(why) => {
            refuse_unauthenticated(&link, why);
            return;
        }
        OnHello::Challenge { user, slave_nonce } => (user, slave_nonce),
    };
    let master_nonce = match auth::nonce() {
        Ok(n) => n,
        Err(e) => {
            tracing::error!(%peer, error = %e, "replication handshake abandoned");
            link.close(Duration::from_millis(10)).await;
            return;
        }
    };
    link.send(&Frame {
        epoch: 0,
        body: Body::Challenge {
            nonce: master_nonce,
        },
    });
    match link.recv(HANDSHAKE_TIMEOUT).await {
        Ok(proof) => {
            let nonces = Nonces {
                user,
                slave: slave_nonce,
                master: master_nonce,
            };
            link.set_frame_limit(Decoder::DEFAULT_MAX_FRAME_BYTES);
            let _ = tx.try_send(Ev::Proof(link, nonces, proof));
        }
        Err(e) => {
            tracing::warn!(%peer, error = %e, "replication handshake failed after the Challenge");
            link.close(Duration::from_millis(10)).await;
        }
    }
}

/// Refuses a peer that has not authenticated: logged here, told to the peer with no
/// detail of this node (epoch 0, no proof), and nothing else happens.
fn refuse_unauthenticated(link: &Rc<Link>, reason: String) {
    tracing::warn!(peer = %link.peer, %reason, "replication handshake refused");
    link.send(&auth::unauthenticated_refuse(reason));
    let link = link.clone();
    rt::spawn_local(async move { link.close(Duration::from_millis(500)).await });
}

/// One shard's side of an attached slave.
struct ShardSync {
    /// Live, catching up from the journal, or behind (see [`flow`]).
    stream: Stream,
    /// Live batches that arrived while the catch-up stream was still going, and
    /// their bytes (bounded by `replicationBuffer`, with the socket output).
    queued: VecDeque<(Position, Bytes)>,
    queued_bytes: usize,
    /// Set while a round started by [`Command::CatchUpFrom`] waits for its Plan,
    /// which must start here.
    replan_from: Option<Position>,
    acked: Position,
    requiring_from: Option<Position>,
    /// Where the last batch shipped on this link ends.
    shipped_end: Position,
    /// Shipped and not yet acknowledged: (end, records, bytes, when shipped).
    unacked: VecDeque<(Position, u64, u64, Instant)>,
}

impl ShardSync {
    /// A shard of a slave that just attached: its first round is planned
    /// ([`Command::BeginSync`]); live batches wait for it.
    fn new() -> ShardSync {
        ShardSync {
            stream: Stream::CatchingUp { overflowed: false },
            queued: VecDeque::new(),
            queued_bytes: 0,
            replan_from: None,
            acked: Position::default(),
            requiring_from: None,
            shipped_end: Position::default(),
            unacked: VecDeque::new(),
        }
    }

    fn drop_queue(&mut self) {
        self.queued.clear();
        self.queued_bytes = 0;
    }
}

/// The master's view of its attached slave.
struct Attached {
    link: Rc<Link>,
    link_id: u64,
    /// Welcome goes out once every shard has planned its catch-up; frames before it
    /// wait in `pending`.
    welcomed: bool,
    pending: Vec<Frame>,
    /// Payload bytes in `pending`.
    pending_bytes: usize,
    /// Non-persistent frames are being dropped (logged once per run of drops).
    dropping_volatile: bool,
    starts: Vec<Option<Position>>,
    shards: Vec<ShardSync>,
    /// The key and nonces of this link's handshake (the Welcome is proven with them).
    auth: (Key, Nonces),
    /// When the catch-up was streamed and replies started to wait for this slave.
    all_done: Option<Instant>,
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
        self.shards[shard].shipped_end = self.shards[shard].shipped_end.max(end);
        let frame = Frame {
            epoch: core.state.borrow().epoch,
            body: Body::Batch {
                shard,
                start: start.0,
                bytes,
            },
        };
        if self.welcomed {
            self.link.send(&frame);
        } else {
            self.pending_bytes += len as usize;
            self.pending.push(frame);
        }
    }

    /// Bytes held in memory for this slave: frames waiting for the Welcome, queued
    /// live batches and the socket's output.
    fn buffered(&self) -> usize {
        self.queued_bytes() + self.link.backlog()
    }

    fn queued_bytes(&self) -> usize {
        self.pending_bytes + self.shards.iter().map(|s| s.queued_bytes).sum::<usize>()
    }

    fn send_volatile(&mut self, core: &Core, shard: ShardId, record: Bytes) {
        let len = record.len();
        let limit = core.s.buffer_bytes;
        if !flow::volatile_fits(len, self.buffered(), limit) {
            core.s.stats.add_volatile_dropped(len as u64);
            if !self.dropping_volatile {
                self.dropping_volatile = true;
                tracing::warn!(
                    slave = %self.link.peer,
                    buffered = self.buffered(),
                    limit,
                    "replication buffer full: non-persistent messages are not sent to the \
                     slave (a takeover would lose them); see replicationBuffer"
                );
            }
            return;
        }
        if self.dropping_volatile {
            self.dropping_volatile = false;
            tracing::info!(slave = %self.link.peer, "non-persistent messages reach the slave again");
        }
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
            self.pending_bytes += len;
            self.pending.push(frame);
        }
    }

    fn ship_live(&mut self, core: &Core, shard: usize, start: Position, bytes: Bytes) {
        let len = bytes.len();
        let held = self.buffered();
        let limit = core.s.buffer_bytes;
        match self.shards[shard].stream.on_live(start, len, held, limit) {
            LiveAction::Send => self.send(core, shard, start, bytes),
            LiveAction::Queue => {
                let s = &mut self.shards[shard];
                s.queued_bytes += len;
                s.queued.push_back((start, bytes));
            }
            LiveAction::Defer => core.s.stats.add_deferred(len as u64),
            LiveAction::Switch => {
                core.s.stats.add_deferred(len as u64);
                self.switched(core, shard, start, held);
            }
        }
    }

    /// The shards' channel was full at `from`: nothing of `shard` from there on
    /// reached the core.
    fn on_overflow(&mut self, core: &Core, shard: usize, from: Position) {
        if self.shards[shard].stream.overflow(from) {
            let held = self.buffered();
            self.switched(core, shard, from, held);
        }
    }

    /// `shard`'s stream no longer holds live batches in memory: what the slave
    /// misses from `from` on is read back from the journal.
    fn switched(&mut self, core: &Core, shard: usize, from: Position, held: usize) {
        self.shards[shard].drop_queue();
        core.s.stats.add_switch();
        tracing::warn!(
            slave = %self.link.peer,
            shard,
            from = %from,
            buffered = held,
            limit = core.s.buffer_bytes,
            "the slave is slow: its live stream of this shard switches to catch-up from the \
             journal (replicationBuffer reached)"
        );
    }

    /// Starts a catch-up round for every shard that is behind, once the link has
    /// drained enough to take one.
    fn resume_behind(&mut self, core: &Core) {
        for shard in 0..self.shards.len() {
            let Some(from) = self.shards[shard]
                .stream
                .resume_from(self.buffered(), core.s.buffer_bytes)
            else {
                continue;
            };
            let s = &mut self.shards[shard];
            s.stream = Stream::CatchingUp { overflowed: false };
            s.replan_from = Some(from);
            tracing::info!(slave = %self.link.peer, shard, from = %from, "reading what the slave missed from the journal");
            let _ = core.commands[shard].try_send(Command::CatchUpFrom {
                link: self.link_id,
                from,
            });
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
                let s = shard;
                if let Some(from) = self.shards[s].replan_from.take() {
                    if start != from {
                        return Some(format!(
                            "shard {shard}: the journal no longer holds {from}, where the \
                             slave's copy continues (oldest {start}); it must resynchronise"
                        ));
                    }
                    // Batches tapped before the shard planned are in this round.
                    let sh = &mut self.shards[s];
                    sh.queued.retain(|(p, _)| *p >= until);
                    sh.queued_bytes = sh.queued.iter().map(|(_, b)| b.len()).sum();
                    tracing::debug!(shard, start = %start, until = %until, "catch-up round planned");
                    return None;
                }
                self.starts[s] = Some(start);
                tracing::debug!(shard, start = %start, until = %until, "catch-up planned");
                if self.starts.iter().all(Option::is_some) {
                    let oldest = self
                        .starts
                        .iter()
                        .map(|p| p.unwrap_or_default().0)
                        .collect();
                    let mut welcome = Frame {
                        epoch: core.state.borrow().epoch,
                        body: Body::Welcome {
                            proof: [0; PROOF_BYTES],
                            master_node_id: core.state.borrow().node_id.to_string(),
                            oldest,
                        },
                    };
                    auth::sign(&self.auth.0, auth::MASTER_LABEL, &self.auth.1, &mut welcome);
                    self.link.send(&welcome);
                    self.welcomed = true;
                    for f in self.pending.drain(..) {
                        self.link.send(&f);
                    }
                    self.pending_bytes = 0;
                }
                None
            }
            CatchUp::Chunk {
                shard,
                link,
                start,
                bytes,
            } if link == self.link_id => {
                self.send(core, shard, start, bytes);
                None
            }
            CatchUp::Done { shard, link, next } if link == self.link_id => {
                let s = shard;
                if self.shards[s].stream.on_round_done(next) {
                    self.flush_queued(core, s);
                } else {
                    self.shards[s].drop_queue();
                    self.resume_behind(core);
                }
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
            self.shards[shard].queued_bytes -= bytes.len();
            self.send(core, shard, start, bytes);
        }
        let done = self.welcomed
            && self
                .shards
                .iter()
                .zip(&self.starts)
                .all(|(s, st)| st.is_some() && s.stream.is_live());
        if done && self.all_done.is_none() {
            self.all_done = Some(Instant::now());
            tracing::info!(slave = %self.link.peer, "catch-up streamed; waiting for the slave to confirm it");
            for c in &core.commands {
                let _ = c.try_send(Command::RequireReplica);
            }
        }
    }

    /// The highest position the slave may acknowledge on `shard`: the end of what was
    /// shipped, or where the catch-up started (what the slave already held).
    fn ack_bound(&self, shard: usize) -> Position {
        let start = self.starts[shard].unwrap_or_default();
        self.shards[shard].shipped_end.max(start)
    }

    /// How long the oldest unacknowledged record has waited, if longer than
    /// `timeout`. Counted only once replies wait for this slave (a catch-up may be
    /// slow; nobody waits for it), and from that moment at the earliest.
    fn waited_too_long(&self, timeout: Duration) -> Option<Duration> {
        let since = self.all_done?;
        let oldest = self
            .shards
            .iter()
            .filter_map(|s| s.unacked.front().map(|u| u.3))
            .min()?;
        let age = oldest.max(since).elapsed();
        (age > timeout).then_some(age)
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
        if self.in_sync || self.all_done.is_none() {
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
        core.s
            .stats
            .set_buffered(self.queued_bytes() as u64, self.link.backlog() as u64);
    }
}

/// Counts the records in a shipped batch and finds its end (where the slave's
/// acknowledgement of all of it will point: batches never span segments, so a closing
/// roll marker is just its last 8 bytes). The bytes were framed by our own journal; a
/// malformed frame just ends the count (see [`store::batch_frames`]).
fn scan_batch(start: Position, bytes: &[u8]) -> (u64, Position) {
    let records = store::batch_frames(bytes)
        .filter(|f| matches!(f, BatchFrame::Record { .. }))
        .count() as u64;
    (records, Position(start.0 + bytes.len() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    // (The frame walk itself is tested with `store::batch_frames`.)
    #[test]
    fn scan_batch_ends_where_the_bytes_end() {
        let start = Position::new(3, 4096);
        // Garbage never panics: a cut frame or a zero length ends the count.
        assert_eq!(scan_batch(start, &[5, 0, 0]), (0, Position(start.0 + 3)));
        assert_eq!(scan_batch(start, &[0; 16]), (0, Position(start.0 + 16)));
        // One 5-byte record (crc not checked here), padded to 16 bytes.
        let mut one = vec![5, 0, 0, 0, 0, 0, 0, 0];
        one.resize(16, 0xAB);
        assert_eq!(scan_batch(start, &one), (1, Position(start.0 + 16)));
    }
}
