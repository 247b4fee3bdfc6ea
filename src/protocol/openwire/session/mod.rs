//! The OpenWire session: one JMS client connection's protocol state, as a synchronous
//! state machine (the STOMP session's architecture, see `protocol::stomp::session`).
//!
//! No I/O and no runtime: the connection loop (`net::openwire`) feeds it decoded
//! commands ([`Session::on_command`]) and broker events ([`Session::on_event`]), and
//! carries out the [`Action`]s it queues: commands to write, requests to post to a
//! shard, pause/resume reading, close after flushing. Every protocol decision is
//! therefore unit-testable with exact commands (`tests/`).
//!
//! Life of a connection (OPENWIRE.md §1, §7):
//!
//! ```text
//!  new: our WireFormatInfo is queued at once
//!  AwaitingWireFormat --client WFI (v1+)--> Open: BrokerInfo; keep-alives start;
//!        |                                 the version is min(12, client's) from here on
//!        \--any other command, version <= 0--> Closing
//!  Open: ConnectionInfo (login, client id) -> Response | ExceptionResponse
//!        SessionInfo, ProducerInfo, ConsumerInfo, messages, acks, transactions, ...
//!        RemoveInfo(connection) -> cascade, Response; ShutdownInfo -> close
//! ```
//!
//! Responses: every `response_required` command gets exactly one Response or
//! ExceptionResponse carrying its commandId, and nothing else does (OPENWIRE.md §8.3,
//! §8.4). A command that needs the broker is answered when the broker's completion
//! arrives, so a sync send's Response means the message is stored (on disk, and on the
//! slave, for a persistent one). Errors on commands without a response go out as a
//! ConnectionError. Exceptions carry real Java class names (`javax.jms.*`,
//! `java.lang.SecurityException`) so the client throws the right type.
//!
//! Completions: each request with a reply belongs to a *group* (`Session::groups`);
//! when the group's last reply arrives its `Then` runs (a Response, a subscription
//! confirmed, a commit step). A send to a composite destination is a group of one send
//! per member; a barrier is a group of one `Barrier` per shard.
//!
//! Files, each adding an `impl Session` block:
//!
//! * `mod.rs`     — the public surface (`Session`, `Action`, `SessionContext`), command
//!   dispatch, groups and completions, output helpers, Java exceptions.
//! * `connect.rs` — WireFormatInfo, BrokerInfo, ConnectionInfo, SessionInfo,
//!   RemoveInfo and its cascade, ShutdownInfo, keep-alives.
//! * `produce.rs` — ProducerInfo, message sends, temporary destinations.
//! * `consume.rs` — ConsumerInfo (queues, topics, durable subscriptions, the advisory
//!   consumer), deliveries as MessageDispatch, RemoveSubscriptionInfo.
//! * `ack.rs`     — MessageAck: standard (range), individual, delivered, poison,
//!   expired.
//! * `tx.rs`      — local transactions (BEGIN, COMMIT_ONE_PHASE, ROLLBACK).
//! * `convert.rs` — OpenWire messages and destinations <-> the broker's neutral ones.
//! * `tests/`     — unit tests with exact commands.

mod ack;
mod connect;
mod consume;
pub mod convert;
mod produce;
#[cfg(test)]
mod tests;
mod tx;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use super::wireformat::OPENWIRE_VERSION;
use super::{
    Command, ConnectionError, ConnectionId, ConsumerId, ExceptionResponse, Header, Negotiated,
    OpenWireError, ProducerAck, ProducerId, Response, Throwable, TransactionId,
};
use crate::broker::{
    BrokerError, BrokerSettings, ConnId, Destination, DurableName, Event, Registries, Reply,
    ReplyTo, Request, ShardId,
};
use crate::protocol::SessionEnv;

use consume::Consumer;
use tx::{Transaction, TwoPhase};

/// What the connection loop must do, in order.
///
/// Commands are large (a ConsumerInfo is ~400 bytes) but actions live only until the
/// loop drains them, right after each input: not worth a box per write.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Action {
    /// Encode this command and write it.
    Write(Command),
    /// Post this request to `shard` (`Router::post`).
    Post {
        shard: ShardId,
        request: Request,
    },
    /// The client's WireFormatInfo arrived: keep-alives start.
    Negotiated {
        /// Write something (a KeepAliveInfo if idle) at least this often.
        send_every: Option<Duration>,
        /// Close the connection when nothing arrives for this long.
        receive_timeout: Option<Duration>,
    },
    /// A pull's deadline was set: [`Session::next_deadline_ms`] changed, call
    /// [`Session::on_tick`] then.
    DeadlineChanged,
    /// Producer flow control: too many sends unconfirmed, stop reading the socket.
    PauseReading,
    ResumeReading,
    /// Flush what is queued, then close. Nothing is queued after this.
    Close,
    /// Close that other connection: this one is its client, reconnected (see
    /// [`Event::Evict`]).
    Evict(ConnId),
}

/// Fixed facts about the connection a session serves.
#[derive(Clone, Debug)]
pub struct SessionContext {
    pub conn: ConnId,
    pub shard_count: usize,
    pub settings: Arc<BrokerSettings>,
    /// Broker-wide: which connection holds which client id, the live temporary
    /// destinations.
    pub registries: Arc<Registries>,
    /// Unique per process start (broker name and start time): the BrokerInfo's id.
    pub boot_id: String,
    /// Differs between process runs (start time in ns): keeps transaction ids unique
    /// across restarts.
    pub boot_nanos: u64,
    /// The client's address, for messages and logs.
    pub peer: String,
    /// The connector's maxFrameSize, advertised in our WireFormatInfo.
    pub max_frame_bytes: usize,
}

/// Keep-alive we send when the connection is otherwise idle (the client drops a
/// broker silent for about 70 s; it sends its own every 10 s).
pub const KEEP_ALIVE_EVERY: Duration = Duration::from_secs(10);
/// Oldest OpenWire version served. Every version from 1 to 12 is negotiated down to
/// `min(12, client's)` and spoken with that version's layouts (the codec's version
/// table, `super::codec`); 0 and below are not versions and are refused.
pub const MIN_VERSION: i32 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Our WireFormatInfo is out; waiting for the client's.
    AwaitingWireFormat,
    Open,
    /// Close requested; everything after is ignored.
    Closing,
}

/// The client connection (ConnectionInfo) this socket serves.
#[derive(Debug)]
struct Connection {
    id: ConnectionId,
    client_id: String,
    /// Whether `client_id` is claimed in the broker-wide registry (released on close).
    claimed: bool,
}

/// What a group's completion does once every reply is in.
#[derive(Debug)]
enum Then {
    /// Respond to `correlation` (if any): Response, or the first error as an
    /// ExceptionResponse (ConnectionError when there is no correlation and `report`).
    Respond {
        correlation: Option<i32>,
        report: bool,
    },
    /// A send: as `Respond`, and it no longer counts against flow control; an async
    /// send of a producer with a window gives the window `size` bytes back.
    Send {
        correlation: Option<i32>,
        producer_ack: Option<(ProducerId, i32)>,
    },
    /// A subscription: as `Respond`; on failure the local consumer is dropped.
    Subscribe {
        correlation: Option<i32>,
        consumer: ConsumerId,
    },
    /// One step of a commit (see `tx.rs`).
    Commit { key: u64 },
    /// A receiveNoWait pull's barrier (see `consume.rs`).
    PullCheck { consumer: ConsumerId, serial: u64 },
}

#[derive(Debug)]
struct Group {
    /// Replies still to come.
    remaining: usize,
    /// Still being posted to: not complete even at `remaining == 0`.
    open: bool,
    /// The first failure.
    error: Option<BrokerError>,
    then: Then,
}

/// One JMS connection's state. See the module docs.
pub struct Session<E: SessionEnv> {
    ctx: SessionContext,
    env: E,
    state: State,
    out: Vec<Action>,
    /// The negotiated wire format, once the client's WireFormatInfo arrived.
    negotiated: Option<Negotiated>,
    connection: Option<Connection>,
    /// Sessions announced by SessionInfo (session -1 never is).
    sessions: HashSet<i64>,
    /// Producers and their window size (> 0: the client counts its async sends'
    /// bytes against it and waits for ProducerAcks).
    producers: HashMap<ProducerId, i32>,
    consumers: HashMap<ConsumerId, Consumer>,
    /// Broker subscription number -> consumer (deliveries name the number).
    consumer_of: HashMap<u64, ConsumerId>,
    next_sub: u64,
    /// Numbers the advisories replayed to new advisory consumers (`consume.rs`).
    next_replayed: u64,

    next_token: u64,
    /// Reply token -> (shard it went to, group it completes).
    pending: HashMap<u64, (ShardId, u64)>,
    groups: HashMap<u64, Group>,
    next_group: u64,
    /// Per shard: ever posted to (barriers wait on these).
    used: Vec<bool>,

    /// Sends not yet completed by their shard (flow control).
    pending_sends: usize,
    reading_paused: bool,

    transactions: HashMap<TransactionId, Transaction>,
    commits: HashMap<u64, TwoPhase>,
    next_commit: u64,
    next_gtx: u32,
    /// Temporary destinations this connection created (DestinationInfo ADD).
    temp_destinations: HashSet<Destination>,
}

impl<E: SessionEnv> Session<E> {
    /// A new session; its first action writes Tandem's WireFormatInfo (the broker sends
    /// its own at once, without waiting for the client's).
    pub fn new(ctx: SessionContext, env: E) -> Session<E> {
        let shards = ctx.shard_count.max(1);
        let max_frame = i64::try_from(ctx.max_frame_bytes).unwrap_or(i64::MAX);
        let mut s = Session {
            ctx,
            env,
            state: State::AwaitingWireFormat,
            out: Vec::new(),
            negotiated: None,
            connection: None,
            sessions: HashSet::new(),
            producers: HashMap::new(),
            consumers: HashMap::new(),
            consumer_of: HashMap::new(),
            next_sub: 1,
            next_replayed: 0,
            next_token: 1,
            pending: HashMap::new(),
            groups: HashMap::new(),
            next_group: 1,
            used: vec![false; shards],
            pending_sends: 0,
            reading_paused: false,
            transactions: HashMap::new(),
            commits: HashMap::new(),
            next_commit: 1,
            next_gtx: 1,
            temp_destinations: HashSet::new(),
        };
        s.write(Command::WireFormatInfo(super::WireFormatInfo::tandem(
            max_frame,
        )));
        s
    }

    pub fn conn(&self) -> ConnId {
        self.ctx.conn
    }

    /// True once the client's WireFormatInfo arrived (keep-alives start).
    pub fn is_negotiated(&self) -> bool {
        self.state == State::Open
    }

    /// True while a ConnectionInfo is accepted (logged in, client id held).
    pub fn has_connection(&self) -> bool {
        self.connection.is_some()
    }

    /// The negotiated StackTraceEnabled (Tandem advertises false, so it is false):
    /// configure the decoder and encoder with it.
    pub fn stack_trace_enabled(&self) -> bool {
        self.negotiated.is_some_and(|n| n.stack_trace_enabled)
    }

    /// The negotiated OpenWire version, `min(12, client's)`; 12 until the client's
    /// WireFormatInfo arrived (which reads the same in every version). Configure the
    /// decoder and encoder with it.
    pub fn version(&self) -> i32 {
        self.negotiated.map_or(OPENWIRE_VERSION, |n| n.version)
    }

    /// The actions queued by the calls so far, in order.
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.out)
    }

    // ----- inputs -----

    pub fn on_command(&mut self, command: Command) {
        match self.state {
            State::Closing => return,
            State::AwaitingWireFormat => {
                match command {
                    Command::WireFormatInfo(wfi) => self.wire_format(wfi),
                    other => {
                        tracing::debug!(conn = ?self.ctx.conn, command = other.name(), "OpenWire command before WireFormatInfo; closing");
                        self.close();
                    }
                }
                return;
            }
            State::Open => {}
        }
        let header = command.header().copied().unwrap_or_default();
        let result = match command {
            Command::WireFormatInfo(_) => {
                tracing::debug!(conn = ?self.ctx.conn, "second WireFormatInfo ignored");
                Ok(())
            }
            Command::ConnectionInfo(c) => self.connection_info(c),
            Command::KeepAliveInfo(k) => {
                if k.header.response_required {
                    self.write(Command::KeepAliveInfo(Default::default()));
                }
                Ok(())
            }
            Command::ShutdownInfo(_) => {
                self.shutdown();
                Ok(())
            }
            // Failover clients announce themselves; nothing to do.
            Command::ConnectionControl(_) => self.respond_ok(header),
            _ if self.connection.is_none() => Err(Refusal::new(
                JAVA_ILLEGAL_STATE,
                "no ConnectionInfo was sent on this connection",
            )),
            Command::SessionInfo(s) => self.session_info(s),
            Command::ProducerInfo(p) => self.producer_info(p),
            Command::ConsumerInfo(c) => self.consumer_info(c),
            Command::RemoveInfo(r) => self.remove_info(r),
            Command::Message(m) => self.send(*m),
            Command::MessageAck(a) => self.ack(a),
            Command::MessagePull(p) => self.pull(p),
            Command::TransactionInfo(t) => self.transaction(t),
            Command::DestinationInfo(d) => self.destination_info(d),
            Command::RemoveSubscriptionInfo(r) => self.remove_subscription(r),
            Command::ConsumerControl(c) => self.consumer_control(c),
            other => {
                // Broker-to-client commands (Response, MessageDispatch, ...): a client
                // never sends them; ActiveMQ ignores them too.
                tracing::debug!(conn = ?self.ctx.conn, command = other.name(), "unexpected OpenWire command ignored");
                self.respond_ok(header)
            }
        };
        if let Err(refusal) = result {
            self.refuse(header, refusal);
        }
    }

    /// The decoder gave up: the stream cannot be resynchronised. The client hears why
    /// (ConnectionError) and the connection closes.
    pub fn on_decode_error(&mut self, e: OpenWireError) {
        if self.state == State::Closing {
            return;
        }
        tracing::debug!(conn = ?self.ctx.conn, peer = %self.ctx.peer, error = %e, "OpenWire decode error; closing");
        if self.state == State::Open {
            self.connection_error(Throwable::new(
                JAVA_IO_EXCEPTION,
                &format!("Tandem closed the connection: {e}"),
            ));
        }
        self.close();
    }

    /// Nothing arrived within the receive timeout (the client sends a KeepAliveInfo
    /// every 10 s when idle, so it is gone).
    pub fn on_receive_timeout(&mut self) {
        if self.state == State::Closing {
            return;
        }
        tracing::debug!(conn = ?self.ctx.conn, peer = %self.ctx.peer, "OpenWire client silent too long; closing");
        self.close();
    }

    /// The socket is gone (EOF, error, or our own close). Open transactions are
    /// dropped (rolled back) and the client id released; the caller unregisters the
    /// connection, which returns unacknowledged deliveries and deletes temporary
    /// destinations in the core. What remains queued afterwards are the advisories
    /// saying this connection's temporary destinations are gone: post them.
    pub fn on_closed(&mut self) {
        self.state = State::Closing;
        self.transactions.clear();
        self.release_client_id();
        self.out.clear();
        self.forget_temp_destinations();
        self.out.retain(|a| matches!(a, Action::Post { .. }));
    }

    pub fn on_event(&mut self, event: Event) {
        if self.state == State::Closing {
            return;
        }
        match event {
            Event::Deliver(d) => self.deliver(d),
            Event::BrowseEnd { sub, .. } => self.browse_ended(sub),
            Event::Done { reply, result } => self.done(reply, result),
            Event::Evict { .. } => {
                tracing::info!(conn = ?self.ctx.conn, peer = %self.ctx.peer, "connection taken over by its reconnected client; closing the stale one");
                self.out.push(Action::Close);
            }
        }
    }

    // ----- completions -----

    fn done(&mut self, reply: Reply, result: Result<(), BrokerError>) {
        if reply.to != ReplyTo::Conn(self.ctx.conn) {
            debug_assert!(false, "completion for another connection: {reply:?}");
            return;
        }
        let Some((_shard, group)) = self.pending.remove(&reply.token) else {
            tracing::warn!(token = reply.token, "completion for an unknown request");
            return;
        };
        let Some(g) = self.groups.get_mut(&group) else {
            return;
        };
        if let Err(e) = result {
            g.error.get_or_insert(e);
        }
        g.remaining = g.remaining.saturating_sub(1);
        if g.remaining == 0 && !g.open {
            if let Some(g) = self.groups.remove(&group) {
                self.finish_group(g);
            }
        }
    }

    fn finish_group(&mut self, g: Group) {
        let result = match g.error {
            None => Ok(()),
            Some(e) => Err(e),
        };
        match g.then {
            Then::Respond {
                correlation,
                report,
            } => self.respond(correlation, result, report),
            Then::Send {
                correlation,
                producer_ack,
            } => {
                self.pending_sends = self.pending_sends.saturating_sub(1);
                if self.reading_paused && self.pending_sends < self.ctx.settings.max_pending_sends {
                    self.reading_paused = false;
                    self.out.push(Action::ResumeReading);
                }
                self.respond(correlation, result, true);
                // A ProducerAck only answers a windowSize, which only v3+ clients have.
                if let Some((producer_id, size)) = producer_ack.filter(|_| self.version() >= 3) {
                    self.write(Command::ProducerAck(ProducerAck {
                        header: Header::default(),
                        producer_id: Some(producer_id),
                        size,
                    }));
                }
            }
            Then::Subscribe {
                correlation,
                consumer,
            } => {
                if result.is_err() {
                    self.drop_consumer(&consumer);
                    self.respond(correlation, result, true);
                } else {
                    self.respond(correlation, result, true);
                    self.subscribed(&consumer);
                }
            }
            Then::Commit { key } => self.commit_step(key, result),
            Then::PullCheck { consumer, serial } => self.pull_checked(&consumer, serial),
        }
    }

    /// Starts a group of requests completed together; `make` posts them with
    /// [`Session::post_in`]. A group of none completes at once.
    fn group(&mut self, then: Then, make: impl FnOnce(&mut Self, u64)) {
        let id = self.next_group;
        self.next_group += 1;
        self.groups.insert(
            id,
            Group {
                remaining: 0,
                open: true,
                error: None,
                then,
            },
        );
        make(self, id);
        let complete = match self.groups.get_mut(&id) {
            Some(g) => {
                g.open = false;
                g.remaining == 0
            }
            None => false,
        };
        if complete {
            if let Some(g) = self.groups.remove(&id) {
                self.finish_group(g);
            }
        }
    }

    /// Posts a request whose reply completes one part of `group`.
    fn post_in(&mut self, group: u64, shard: ShardId, make: impl FnOnce(Reply) -> Request) {
        let token = self.next_token;
        self.next_token += 1;
        self.pending.insert(token, (shard, group));
        if let Some(g) = self.groups.get_mut(&group) {
            g.remaining += 1;
        }
        let reply = Reply {
            to: ReplyTo::Conn(self.ctx.conn),
            token,
        };
        self.post(shard, make(reply));
    }

    /// A group of one request.
    fn post_one(&mut self, then: Then, shard: ShardId, make: impl FnOnce(Reply) -> Request) {
        self.group(then, |s, g| s.post_in(g, shard, make));
    }

    /// `then` once every request posted so far to any shard has been processed (and
    /// is durable): a barrier on every shard this connection used.
    fn after_barrier(&mut self, then: Then) {
        let shards: Vec<ShardId> = (0..self.used.len()).filter(|&s| self.used[s]).collect();
        self.group(then, |s, g| {
            for &shard in &shards {
                s.post_in(g, shard, |reply| Request::Barrier { reply });
            }
        });
    }

    // ----- output helpers -----

    fn post(&mut self, shard: ShardId, request: Request) {
        if let Some(u) = self.used.get_mut(shard) {
            *u = true;
        }
        self.out.push(Action::Post { shard, request });
    }

    fn write(&mut self, command: Command) {
        self.out.push(Action::Write(command));
    }

    fn close(&mut self) {
        if self.state != State::Closing {
            self.state = State::Closing;
            self.out.push(Action::Close);
        }
    }

    /// A Response for a command that needs no broker work (if it wants one).
    fn respond_ok(&mut self, header: Header) -> Result<(), Refusal> {
        if header.response_required {
            self.write(Command::Response(Response::new(header.command_id)));
        }
        Ok(())
    }

    /// The answer to a command once its outcome is known: Response or
    /// ExceptionResponse to `correlation`; without one, a failure is reported as a
    /// ConnectionError when `report`.
    fn respond(&mut self, correlation: Option<i32>, result: Result<(), BrokerError>, report: bool) {
        match (correlation, result) {
            (Some(c), Ok(())) => self.write(Command::Response(Response::new(c))),
            (None, Ok(())) => {}
            (c, Err(e)) => {
                let refusal = Refusal::from_broker(&e);
                match c {
                    Some(c) => self.write(Command::ExceptionResponse(ExceptionResponse::new(
                        c,
                        refusal.throwable(),
                    ))),
                    None if report => self.connection_error(refusal.throwable()),
                    None => {}
                }
            }
        }
    }

    /// A refused command: ExceptionResponse if it wants a response, else a
    /// ConnectionError (the client's ExceptionListener hears it). Fatal refusals close
    /// the connection after that.
    fn refuse(&mut self, header: Header, refusal: Refusal) {
        tracing::debug!(conn = ?self.ctx.conn, class = refusal.class, message = %refusal.message, "OpenWire command refused");
        if header.response_required {
            self.write(Command::ExceptionResponse(ExceptionResponse::new(
                header.command_id,
                refusal.throwable(),
            )));
        } else {
            self.connection_error(refusal.throwable());
        }
        if refusal.fatal {
            self.close();
        }
    }

    fn connection_error(&mut self, exception: Throwable) {
        let connection_id = self.connection.as_ref().map(|c| c.id.clone());
        self.write(Command::ConnectionError(ConnectionError {
            header: Header::default(),
            exception: Some(exception),
            connection_id,
        }));
    }

    fn shard_of(&self, d: &Destination) -> ShardId {
        d.shard(self.ctx.shard_count)
    }

    /// The durable subscription name of a consumer or RemoveSubscriptionInfo.
    fn durable_name(&self, client_id: Option<&str>, name: &str) -> DurableName {
        let client_id = client_id
            .map(str::to_owned)
            .or_else(|| self.connection.as_ref().map(|c| c.client_id.clone()))
            .unwrap_or_default();
        DurableName {
            client_id,
            name: name.to_owned(),
        }
    }
}

// ----- Java exceptions -----

pub(crate) const JAVA_JMS: &str = "javax.jms.JMSException";
pub(crate) const JAVA_SECURITY: &str = "java.lang.SecurityException";
pub(crate) const JAVA_INVALID_CLIENT_ID: &str = "javax.jms.InvalidClientIDException";
pub(crate) const JAVA_INVALID_SELECTOR: &str = "javax.jms.InvalidSelectorException";
pub(crate) const JAVA_INVALID_DESTINATION: &str = "javax.jms.InvalidDestinationException";
pub(crate) const JAVA_ROLLED_BACK: &str = "javax.jms.TransactionRolledBackException";
/// What ActiveMQ throws when a usage limit refuses a request.
pub(crate) const JAVA_RESOURCE_ALLOCATION: &str = "javax.jms.ResourceAllocationException";
pub(crate) const JAVA_ILLEGAL_STATE: &str = "javax.jms.IllegalStateException";
pub(crate) const JAVA_IO_EXCEPTION: &str = "java.io.IOException";

/// Why a command was refused, as the client will be told: a Java exception class
/// (it must exist on the client's classpath and take a `String`) and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub class: &'static str,
    pub message: String,
    /// The connection closes after telling the client.
    pub fatal: bool,
}

impl Refusal {
    fn new(class: &'static str, message: impl Into<String>) -> Refusal {
        Refusal {
            class,
            message: message.into(),
            fatal: false,
        }
    }

    fn fatal(mut self) -> Refusal {
        self.fatal = true;
        self
    }

    fn from_broker(e: &BrokerError) -> Refusal {
        let class = match e {
            BrokerError::InvalidSelector(_) => JAVA_INVALID_SELECTOR,
            BrokerError::NoSuchTempDestination(_) | BrokerError::NoSuchDestination(_) => {
                JAVA_INVALID_DESTINATION
            }
            BrokerError::TooManyDestinations { .. }
            | BrokerError::StoreFull(_)
            | BrokerError::TooManyScheduled { .. } => JAVA_RESOURCE_ALLOCATION,
            _ => JAVA_JMS,
        };
        Refusal::new(class, e.to_string())
    }

    fn throwable(&self) -> Throwable {
        Throwable::new(self.class, &self.message)
    }
}
