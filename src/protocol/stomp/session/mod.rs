//! The STOMP session: one connection's protocol state, as a synchronous state machine.
//!
//! No I/O and no runtime: the connection loop (`net`) feeds it decoded frames
//! ([`Session::on_frame`]), broker events ([`Session::on_event`]) and write completions
//! ([`Session::on_written`]), and carries out the [`Action`]s it queues: frames to
//! write, requests to post to a shard, pause/resume reading, close after flushing.
//! That keeps every protocol decision unit-testable with exact frames.
//!
//! Life of a connection:
//!
//! ```text
//!  AwaitingConnect --CONNECT/STOMP ok--> Connected --DISCONNECT / fatal error--> Closing
//!        \--any other frame, bad login, no common version--> Closing (ERROR, close)
//! ```
//!
//! Completions: every request that needs an answer carries a
//! [`Reply`](crate::broker::Reply) whose token keys [`Session::pending`]. RECEIPTs go
//! out when the request's `Done` arrives, so a RECEIPT for frame N means frame N was
//! processed (and is durable). Frames that touch no destination (BEGIN, ABORT, ...) get
//! their RECEIPT immediately when nothing the connection posted is unconfirmed, else
//! after a `Barrier` to each shard with unconfirmed work.
//!
//! Commit: operations buffered in a transaction are grouped by their destination's
//! shard. One shard: a single `Commit`. Several: two-phase, coordinated by this
//! connection's own shard: `Prepare` to each participant, then `RecordOutcome` on the
//! coordinator, then `Resolve` to each participant, then the RECEIPT.
//!
//! Files, one per protocol stage, each adding an `impl Session` block:
//!
//! * `mod.rs`       — the public surface (`Session`, `Action`, `SessionEnv`,
//!   `SessionContext`, `SessionError`), dispatch of frames and events, output helpers.
//! * `connect.rs`   — CONNECT (version, login, heart-beats) and DISCONNECT.
//! * `send.rs`      — SEND: destination parsing, temporary-destination naming, messages.
//! * `subscribe.rs` — SUBSCRIBE / UNSUBSCRIBE, and deliveries turned into MESSAGE frames.
//! * `ack.rs`       — ACK / NACK, including client mode's cumulative expansion.
//! * `tx.rs`        — BEGIN / COMMIT / ABORT, and the two-phase commit across shards.
//! * `receipts.rs`  — reply tokens, completions, barriers and RECEIPTs.
//! * `tests/`       — unit tests with exact frames, one file per stage as above.

mod ack;
mod connect;
mod receipts;
mod send;
mod subscribe;
#[cfg(test)]
mod tests;
mod tx;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::broker::{
    BrokerSettings, ConnId, DestKind, Destination, Event, Registries, Request, ShardId, SubKey,
};

use super::error::StompError;
use super::frame::{Command, Frame};
use super::version::Version;

use receipts::{BarrierGroup, Pending, SendGroup};
use subscribe::Subscription;
use tx::{Transaction, TwoPhase};

/// What the connection loop must do, in order.
#[derive(Debug)]
pub enum Action {
    /// Encode this frame (with [`Session::version`]) and write it.
    Write(Frame),
    /// Post this request to `shard` (`Router::post`).
    Post {
        shard: ShardId,
        request: Request,
    },
    /// CONNECT succeeded: the decoder switches to `version`; heart-beats start.
    Negotiated {
        version: Version,
        /// Write something (a heart-beat EOL if idle) at least this often.
        send_every: Option<Duration>,
        /// Close the connection when nothing arrives for this long.
        receive_timeout: Option<Duration>,
    },
    /// Producer flow control: too many sends unconfirmed, stop reading the socket.
    PauseReading,
    ResumeReading,
    /// Flush what is queued, then close. Nothing is queued after this.
    Close,
}

pub use crate::protocol::{unix_now_ms, SessionEnv};
pub use send::NON_PROPERTY_HEADERS;

/// Fixed facts about the connection a session serves.
#[derive(Clone, Debug)]
pub struct SessionContext {
    pub conn: ConnId,
    pub shard_count: usize,
    pub settings: Arc<BrokerSettings>,
    /// Broker-wide, shared with OpenWire: which connection holds which client id.
    pub registries: Arc<Registries>,
    /// Differs between process runs (start time in ns): keeps transaction ids and
    /// temporary destination names unique across restarts.
    pub boot_nanos: u64,
}

/// A STOMP protocol violation or refused request, rendered as an ERROR frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("Connection not established")]
    NotConnected(Command),
    #[error("Already connected")]
    AlreadyConnected,
    #[error("Supported protocol versions are 1.0,1.1,1.2")]
    NoCommonVersion(String),
    #[error("Authentication failed")]
    AuthenticationFailed(String),
    #[error("Missing header")]
    MissingHeader {
        command: Command,
        header: &'static str,
    },
    #[error("Invalid header")]
    InvalidHeader { header: &'static str, value: String },
    #[error("Invalid destination")]
    InvalidDestination(String),
    #[error("Invalid ack mode")]
    InvalidAckMode(String),
    #[error("Duplicate subscription id")]
    DuplicateSubscription(String),
    #[error("Durable subscription requires client-id")]
    DurableWithoutClientId(String),
    /// Another live connection (STOMP or JMS) holds this `client-id`; the text is
    /// ActiveMQ's InvalidClientIDException message.
    #[error("Broker: {broker} - Client: {client_id} already connected")]
    ClientIdInUse { broker: String, client_id: String },
    #[error("Unexpected command")]
    UnexpectedCommand(Command),
    #[error("Malformed frame")]
    Decode(StompError),
    #[error("Heart-beat timeout")]
    HeartBeatTimeout,
    // Not fatal below: ActiveMQ answers these with an ERROR and keeps the connection.
    #[error("No subscription matched")]
    UnknownSubscription(String),
    #[error("Unexpected ACK received")]
    UnknownAck(String),
    #[error("Invalid transaction id")]
    UnknownTransaction(String),
    #[error("Transaction already started")]
    DuplicateTransaction(String),
    /// A queue browser refused (on STOMP 1.0, on a topic) or NACKed; the text is
    /// ActiveMQ's (or says what ActiveMQ would silently get wrong).
    #[error("{0}")]
    Browser(&'static str),
    /// A per-connection or per-broker limit refused the frame (issue 11); the text
    /// names the limit and its value.
    #[error("{0}")]
    LimitReached(String),
    /// Something ActiveMQ does that Tandem does not (README "Known limits"): refused
    /// with an ERROR, the connection kept.
    #[error("Not supported")]
    Unsupported(String),
}

impl SessionError {
    /// Fatal errors close the connection after the ERROR frame: the client broke the
    /// protocol, so later frames cannot be trusted to mean what they say.
    pub fn is_fatal(&self) -> bool {
        !matches!(
            self,
            SessionError::UnknownSubscription(_)
                | SessionError::UnknownAck(_)
                | SessionError::UnknownTransaction(_)
                | SessionError::DuplicateTransaction(_)
                | SessionError::Browser(_)
                | SessionError::LimitReached(_)
                | SessionError::Unsupported(_)
        )
    }

    /// The ERROR frame body: what exactly was wrong.
    fn details(&self) -> String {
        match self {
            SessionError::NotConnected(c) => format!("{c} received before CONNECT"),
            SessionError::AlreadyConnected => "CONNECT received on a connected session".into(),
            SessionError::NoCommonVersion(v) => format!("client accepts only: {v}"),
            SessionError::AuthenticationFailed(login) => {
                format!("User name [{login}] or password is invalid.")
            }
            SessionError::MissingHeader { command, header } => {
                format!("{command} frame is missing the '{header}' header")
            }
            SessionError::InvalidHeader { header, value } => {
                format!("invalid value for header '{header}': '{value}'")
            }
            SessionError::InvalidDestination(d) => format!("invalid destination: '{d}'"),
            SessionError::InvalidAckMode(m) => {
                format!("ack mode '{m}' is not one of auto, client, client-individual")
            }
            SessionError::DuplicateSubscription(id) => {
                format!("subscription id '{id}' is already in use on this connection")
            }
            SessionError::DurableWithoutClientId(n) => {
                format!("durable subscription '{n}' needs a client-id header on CONNECT")
            }
            SessionError::ClientIdInUse { client_id, .. } => format!(
                "client-id '{client_id}' is in use by another live connection; \
                 one connection at a time may hold a client-id"
            ),
            SessionError::UnexpectedCommand(c) => format!("{c} is not a client frame here"),
            SessionError::Decode(e) => e.to_string(),
            SessionError::HeartBeatTimeout => {
                "no data received within the heart-beat timeout".into()
            }
            SessionError::UnknownSubscription(id) => format!("no subscription '{id}'"),
            SessionError::UnknownAck(id) => format!("no outstanding message for '{id}'"),
            SessionError::UnknownTransaction(tx) => format!("transaction '{tx}' is not active"),
            SessionError::DuplicateTransaction(tx) => {
                format!("transaction '{tx}' is already active")
            }
            SessionError::Browser(what) => (*what).to_owned(),
            SessionError::LimitReached(why) => why.clone(),
            SessionError::Unsupported(what) => what.clone(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    AwaitingConnect,
    Connected,
    /// DISCONNECT with a receipt: waiting for the barrier; frames are ignored.
    Disconnecting,
    /// Close requested; everything after is ignored.
    Closing,
}

/// One STOMP connection's state. See the module docs.
pub struct Session<E: SessionEnv> {
    ctx: SessionContext,
    env: E,
    state: State,
    version: Version,
    /// Connection name shown in CONNECTED and inside temporary destination names.
    tag: String,
    client_id: Option<String>,
    /// `client_id` is held in the broker-wide registry (released on close).
    client_id_claimed: bool,
    out: Vec<Action>,
    /// Write actions queued so far: what [`Session::on_written`] counts against.
    frames_emitted: u64,

    next_token: u64,
    /// Reply token -> (shard it went to, what it completes).
    pending: HashMap<u64, (ShardId, Pending)>,
    /// Per shard: requests with a reply still unanswered.
    inflight: Vec<u32>,
    /// Per shard: requests posted without a reply, and how many of those a completed
    /// barrier has confirmed.
    unreplied_posted: Vec<u64>,
    unreplied_confirmed: Vec<u64>,
    /// Per shard: ever posted to (DISCONNECT's barrier goes to these).
    used: Vec<bool>,
    barriers: HashMap<u64, BarrierGroup>,
    /// Sends posted as several copies (a virtual topic), by group number; at most one
    /// per pending send, so bounded by `max_pending_sends` (reading pauses there).
    send_groups: HashMap<u64, SendGroup>,
    /// Numbers barrier groups and send groups.
    next_group: u64,

    pending_sends: usize,
    reading_paused: bool,

    subs: HashMap<u64, Subscription>,
    sub_by_client_id: HashMap<String, u64>,
    next_sub: u64,
    next_ack: u64,
    /// Ack number -> subscription number, for 1.2 `id` lookups.
    ack_owner: HashMap<u64, u64>,
    /// Auto-ack deliveries written into frame number `.0`, waiting for the socket write.
    auto_unwritten: VecDeque<(u64, u64, Destination, u64)>,

    transactions: HashMap<String, Transaction>,
    commits: HashMap<u64, TwoPhase>,
    next_commit: u64,
    next_gtx: u32,

    /// (kind, client alias) -> physical name of this connection's temp destinations.
    temp_by_alias: HashMap<(DestKind, String), String>,
    /// Physical name -> the STOMP alias, to show the client its own spelling.
    temp_alias_of: HashMap<String, String>,
    next_temp: u64,
}

impl<E: SessionEnv> Session<E> {
    pub fn new(ctx: SessionContext, env: E) -> Session<E> {
        let shards = ctx.shard_count.max(1);
        let tag = format!(
            "tandem-{:x}-{}-{}",
            ctx.boot_nanos, ctx.conn.shard, ctx.conn.serial
        );
        Session {
            ctx,
            env,
            state: State::AwaitingConnect,
            version: Version::V1_0,
            tag,
            client_id: None,
            client_id_claimed: false,
            out: Vec::new(),
            frames_emitted: 0,
            next_token: 1,
            pending: HashMap::new(),
            inflight: vec![0; shards],
            unreplied_posted: vec![0; shards],
            unreplied_confirmed: vec![0; shards],
            used: vec![false; shards],
            barriers: HashMap::new(),
            send_groups: HashMap::new(),
            next_group: 1,
            pending_sends: 0,
            reading_paused: false,
            subs: HashMap::new(),
            sub_by_client_id: HashMap::new(),
            next_sub: 1,
            next_ack: 1,
            ack_owner: HashMap::new(),
            auto_unwritten: VecDeque::new(),
            transactions: HashMap::new(),
            commits: HashMap::new(),
            next_commit: 1,
            next_gtx: 1,
            temp_by_alias: HashMap::new(),
            temp_alias_of: HashMap::new(),
            next_temp: 1,
        }
    }

    /// The negotiated version (1.0 until CONNECT): encode and decode with it.
    pub fn version(&self) -> Version {
        self.version
    }

    pub fn conn(&self) -> ConnId {
        self.ctx.conn
    }

    pub fn is_connected(&self) -> bool {
        self.state == State::Connected
    }

    /// Number of `Action::Write`s queued so far; pass it to [`Session::on_written`]
    /// once everything up to it is on the socket.
    pub fn frames_emitted(&self) -> u64 {
        self.frames_emitted
    }

    /// The actions queued by the calls so far, in order.
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.out)
    }

    /// Moves the queued actions into `into` (keeps both allocations).
    pub fn drain_actions_into(&mut self, into: &mut Vec<Action>) {
        into.append(&mut self.out);
    }

    // ----- inputs -----

    pub fn on_frame(&mut self, frame: Frame) {
        if matches!(self.state, State::Closing | State::Disconnecting) {
            return;
        }
        let result = match (self.state, frame.command) {
            (State::AwaitingConnect, Command::Connect | Command::Stomp) => self.connect(&frame),
            (State::AwaitingConnect, c) => Err(SessionError::NotConnected(c)),
            (_, Command::Connect | Command::Stomp) => Err(SessionError::AlreadyConnected),
            (_, Command::Send) => self.send(&frame),
            (_, Command::Subscribe) => self.subscribe(&frame),
            (_, Command::Unsubscribe) => self.unsubscribe(&frame),
            (_, Command::Ack) => self.ack(&frame, false),
            (_, Command::Nack) => self.ack(&frame, true),
            (_, Command::Begin) => self.begin(&frame),
            (_, Command::Commit) => self.commit(&frame),
            (_, Command::Abort) => self.abort(&frame),
            (_, Command::Disconnect) => {
                self.disconnect(&frame);
                Ok(())
            }
            (_, c) => Err(SessionError::UnexpectedCommand(c)),
        };
        if let Err(e) = result {
            self.error(e, frame.header("receipt"));
        }
    }

    /// The decoder gave up: the stream cannot be resynchronised.
    pub fn on_decode_error(&mut self, e: StompError) {
        self.error(SessionError::Decode(e), None);
    }

    /// Nothing arrived within the negotiated receive timeout.
    pub fn on_heartbeat_timeout(&mut self) {
        self.error(SessionError::HeartBeatTimeout, None);
    }

    /// The socket is gone (EOF, error, or our own close). Open transactions are
    /// dropped (aborted); the caller unregisters the connection, which returns
    /// unacknowledged deliveries and deletes temporary destinations in the core.
    pub fn on_closed(&mut self) {
        self.release_client_id();
        self.state = State::Closing;
        self.transactions.clear();
        self.out.clear();
    }

    pub fn on_event(&mut self, event: Event) {
        if self.state == State::Closing {
            return;
        }
        match event {
            Event::Deliver(d) => self.deliver(d),
            Event::BrowseEnd { sub, .. } => self.browse_ended(sub),
            Event::Done { reply, result } => self.done(reply, result),
            // Only JMS connections are taken over by a reconnecting twin.
            Event::Evict { .. } => self.out.push(Action::Close),
        }
    }

    /// Every frame numbered below `upto` (see [`Session::frames_emitted`]) is written:
    /// auto-acknowledge the deliveries among them, one `Ack` per subscription and
    /// destination.
    pub fn on_written(&mut self, upto: u64) {
        let mut batches: BTreeMap<(u64, Destination), Vec<u64>> = BTreeMap::new();
        while let Some((frame_no, ..)) = self.auto_unwritten.front() {
            if *frame_no >= upto {
                break;
            }
            let Some((_, sub, destination, seq)) = self.auto_unwritten.pop_front() else {
                break;
            };
            batches.entry((sub, destination)).or_default().push(seq);
        }
        for ((sub, destination), seqs) in batches {
            let shard = self.shard_of(&destination);
            let sub = self.sub_key(sub);
            self.post_unreplied(
                shard,
                Request::Ack {
                    sub,
                    destination,
                    seqs,
                    reply: None,
                },
            );
        }
    }

    fn post(&mut self, shard: ShardId, request: Request) {
        if let Some(u) = self.used.get_mut(shard) {
            *u = true;
        }
        self.out.push(Action::Post { shard, request });
    }

    fn write(&mut self, frame: Frame) {
        self.frames_emitted += 1;
        self.out.push(Action::Write(frame));
    }

    fn close(&mut self) {
        // Nothing is read after a close, so the id is free for the client's next
        // connection at once (it may reconnect before this socket is torn down).
        self.release_client_id();
        self.state = State::Closing;
        self.out.push(Action::Close);
    }

    fn release_client_id(&mut self) {
        if let (true, Some(id)) = (self.client_id_claimed, &self.client_id) {
            self.ctx.registries.client_ids.release(id, self.ctx.conn);
            self.client_id_claimed = false;
        }
    }

    /// ERROR for a session error; fatal ones close the connection.
    fn error(&mut self, e: SessionError, receipt: Option<&str>) {
        tracing::debug!(conn = ?self.ctx.conn, error = %e, details = %e.details(), "STOMP error");
        let mut f = Frame::new(Command::Error).with_header("message", e.to_string());
        if let Some(r) = receipt {
            f.push_header("receipt-id", r);
        }
        f.push_header("content-type", "text/plain");
        f.body = Bytes::from(e.details());
        self.write(f);
        if e.is_fatal() {
            self.transactions.clear();
            self.close();
        }
    }

    /// ERROR for a request the broker refused; the connection stays open.
    fn broker_error(&mut self, message: &str, details: &str, receipt: Option<&str>) {
        let mut f = Frame::new(Command::Error).with_header("message", message);
        if let Some(r) = receipt {
            f.push_header("receipt-id", r);
        }
        f.push_header("content-type", "text/plain");
        f.body = Bytes::from(details.to_owned());
        self.write(f);
    }

    fn shard_of(&self, d: &Destination) -> ShardId {
        d.shard(self.ctx.shard_count)
    }

    fn sub_key(&self, sub: u64) -> SubKey {
        SubKey {
            conn: self.ctx.conn,
            sub,
        }
    }
}

fn required<'f>(frame: &'f Frame, header: &'static str) -> Result<&'f str, SessionError> {
    frame.header(header).ok_or(missing(frame.command, header))
}

fn missing(command: Command, header: &'static str) -> SessionError {
    SessionError::MissingHeader { command, header }
}

fn invalid(header: &'static str, value: &str) -> SessionError {
    SessionError::InvalidHeader {
        header,
        value: value.to_owned(),
    }
}
