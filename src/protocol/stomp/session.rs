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
//! Completions: every request that needs an answer carries a [`Reply`] whose token keys
//! [`Session::pending`]. RECEIPTs go out when the request's `Done` arrives, so a
//! RECEIPT for frame N means frame N was processed (and is durable). Frames that touch
//! no destination (BEGIN, ABORT, ...) get their RECEIPT immediately when nothing the
//! connection posted is unconfirmed, else after a `Barrier` to each shard with
//! unconfirmed work.
//!
//! Commit: operations buffered in a transaction are grouped by their destination's
//! shard. One shard: a single `Commit`. Several: two-phase, coordinated by this
//! connection's own shard: `Prepare` to each participant, then `RecordOutcome` on the
//! coordinator, then `Resolve` to each participant, then the RECEIPT.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::broker::{
    AckMode, BrokerError, BrokerSettings, ConnId, Delivery, DestKind, Destination, DurableName,
    Event, GlobalTxId, Message, Reply, ReplyTo, Request, Router, ShardId, SubKey, SubscribeSpec,
    TxOp,
};

use super::error::StompError;
use super::frame::{Command, Frame};
use super::version::{negotiate, negotiate_heart_beat, parse_heart_beat, Version};

/// What the server calls itself in CONNECTED.
const SERVER_NAME: &str = concat!("Tandem/", env!("CARGO_PKG_VERSION"));

/// The receive timeout is this many negotiated client heart-beat periods: one late
/// heart-beat on a busy network must not kill a healthy connection.
const HEARTBEAT_GRACE_FACTOR: u32 = 2;

/// Headers that STOMP (or this session) interprets and therefore does not keep as a
/// message property.
const NON_PROPERTY_HEADERS: &[&str] = &[
    "destination",
    "receipt",
    "transaction",
    "content-length",
    "persistent",
    "priority",
    "expires",
    "reply-to",
    "message-id",
    "timestamp",
    "redelivered",
    "subscription",
    "ack",
];

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

/// Ids and time the session needs from the broker; a trait so tests can make them
/// deterministic.
pub trait SessionEnv {
    /// A new broker-wide unique message id.
    fn next_message_id(&self) -> String;
    /// Wall clock, milliseconds since the Unix epoch (message timestamps).
    fn now_ms(&self) -> u64;
}

impl SessionEnv for Router {
    fn next_message_id(&self) -> String {
        Router::next_message_id(self)
    }
    fn now_ms(&self) -> u64 {
        unix_now_ms()
    }
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn unix_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Fixed facts about the connection a session serves.
#[derive(Clone, Debug)]
pub struct SessionContext {
    pub conn: ConnId,
    pub shard_count: usize,
    pub settings: Arc<BrokerSettings>,
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

/// A delivery the client has yet to acknowledge.
#[derive(Debug)]
struct Outstanding {
    /// Connection-wide unique: the 1.2 `ack` header.
    ack_no: u64,
    message_id: String,
    seq: u64,
    destination: Destination,
    /// Acknowledged inside this (still open or committing) transaction.
    in_tx: Option<String>,
}

#[derive(Debug)]
struct Subscription {
    /// The client's `id` (in 1.0 defaults to the destination header).
    client_id: String,
    /// Whether the client gave an `id` (1.0 MESSAGE frames echo it only then).
    explicit_id: bool,
    destination: Destination,
    ack: AckMode,
    durable: Option<DurableName>,
    /// In delivery order; cumulative acks take a prefix. Bounded by the prefetch.
    outstanding: VecDeque<Outstanding>,
}

#[derive(Debug, Default)]
struct Transaction {
    ops: Vec<TxOp>,
    /// (subscription number, ack number) of deliveries acknowledged inside it.
    acked: Vec<(u64, u64)>,
}

/// What a reply token is waiting for.
#[derive(Debug)]
enum Pending {
    /// A send: counts against `max_pending_sends` until done.
    Send {
        receipt: Option<String>,
    },
    /// Subscribe: on failure the local subscription is dropped again.
    Subscribe {
        receipt: Option<String>,
        sub: u64,
    },
    /// Unsubscribe, ack, nack: a receipt (or nothing) on success.
    Simple {
        receipt: Option<String>,
    },
    Commit {
        receipt: Option<String>,
        acked: Vec<(u64, u64)>,
    },
    TwoPhase {
        commit_key: u64,
    },
    Barrier {
        group: u64,
    },
}

#[derive(Debug)]
enum AfterBarrier {
    Receipt(String),
    /// DISCONNECT's receipt: close once it is out.
    Disconnect(String),
}

#[derive(Debug)]
struct BarrierGroup {
    remaining: usize,
    then: AfterBarrier,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Prepare,
    Record,
    Resolve,
}

/// A commit spanning shards.
#[derive(Debug)]
struct TwoPhase {
    gtx: GlobalTxId,
    receipt: Option<String>,
    participants: Vec<ShardId>,
    acked: Vec<(u64, u64)>,
    phase: Phase,
    remaining: usize,
    /// The first failure; decides the outcome (abort) and the ERROR text.
    failure: Option<String>,
    commit: bool,
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
            out: Vec::new(),
            frames_emitted: 0,
            next_token: 1,
            pending: HashMap::new(),
            inflight: vec![0; shards],
            unreplied_posted: vec![0; shards],
            unreplied_confirmed: vec![0; shards],
            used: vec![false; shards],
            barriers: HashMap::new(),
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
            Event::Done { reply, result } => self.done(reply, result),
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

    // ----- CONNECT -----

    fn connect(&mut self, frame: &Frame) -> Result<(), SessionError> {
        let accept = frame.header("accept-version");
        let version = negotiate(accept)
            .ok_or_else(|| SessionError::NoCommonVersion(accept.unwrap_or_default().into()))?;
        self.version = version;
        let login = frame.header("login");
        if !self
            .ctx
            .settings
            .authenticate(login, frame.header("passcode"))
        {
            return Err(SessionError::AuthenticationFailed(
                login.unwrap_or_default().into(),
            ));
        }
        // `host` names a virtual host; one broker serves one, so any value is accepted
        // (as ActiveMQ does).
        let (cx, cy) = match frame.header("heart-beat") {
            Some(v) if version >= Version::V1_1 => {
                parse_heart_beat(v).map_err(|_| SessionError::InvalidHeader {
                    header: "heart-beat",
                    value: v.into(),
                })?
            }
            _ => (0, 0),
        };
        let ours = self.ctx.settings.heartbeat.as_millis() as u64;
        let (send_ms, expect_ms) = negotiate_heart_beat((cx, cy), (ours, ours));
        self.client_id = frame.header("client-id").map(str::to_owned);
        self.state = State::Connected;
        let ms = |v: u64| (v > 0).then(|| Duration::from_millis(v));
        self.out.push(Action::Negotiated {
            version,
            send_every: ms(send_ms),
            receive_timeout: ms(expect_ms).map(|d| d * HEARTBEAT_GRACE_FACTOR),
        });
        let connected = Frame::new(Command::Connected)
            .with_header("version", version.as_str())
            .with_header("server", SERVER_NAME)
            .with_header("heart-beat", format!("{send_ms},{expect_ms}"))
            .with_header("session", format!("ID:{}", self.tag));
        self.write(connected);
        Ok(())
    }

    // ----- SEND -----

    fn send(&mut self, frame: &Frame) -> Result<(), SessionError> {
        let destination = self.destination(required(frame, "destination")?)?;
        let persistent = frame
            .header("persistent")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let priority = match frame.header("priority") {
            None => 4,
            Some(v) => v
                .trim()
                .parse::<u8>()
                .map_err(|_| invalid("priority", v))?
                .min(9),
        };
        let expires_ms = match frame.header("expires") {
            None => 0,
            Some(v) => v.trim().parse::<u64>().map_err(|_| invalid("expires", v))?,
        };
        let reply_to = match frame.header("reply-to") {
            None => None,
            Some(r) => Some(self.reply_to(r)?),
        };
        let headers: Vec<(String, String)> = frame
            .headers
            .iter()
            .filter(|(k, _)| !NON_PROPERTY_HEADERS.contains(&k.as_str()))
            .cloned()
            .collect();
        let msg = Arc::new(Message {
            id: self.env.next_message_id(),
            destination,
            persistent,
            priority,
            timestamp_ms: self.env.now_ms(),
            expires_ms,
            reply_to,
            headers,
            body: frame.body.clone(),
        });
        if let Some(tx) = frame.header("transaction") {
            let t = self
                .transactions
                .get_mut(tx)
                .ok_or_else(|| SessionError::UnknownTransaction(tx.into()))?;
            t.ops.push(TxOp::Send(msg));
            return self.receipt_now(frame.header("receipt"));
        }
        let shard = self.shard_of(&msg.destination);
        let receipt = frame.header("receipt").map(str::to_owned);
        self.pending_sends += 1;
        self.post_with_reply(shard, Pending::Send { receipt }, |reply| Request::Send {
            msg,
            reply,
        });
        if self.pending_sends >= self.ctx.settings.max_pending_sends.max(1) && !self.reading_paused
        {
            self.reading_paused = true;
            self.out.push(Action::PauseReading);
        }
        Ok(())
    }

    /// A `reply-to` as the consumer will see it: this connection's temporary
    /// destinations become their `/remote-temp-*` names; other names pass unchanged.
    fn reply_to(&mut self, value: &str) -> Result<String, SessionError> {
        if value.starts_with("/temp-queue/") || value.starts_with("/temp-topic/") {
            Ok(self.destination(value)?.stomp_name())
        } else {
            Ok(value.to_owned())
        }
    }

    /// Parses a STOMP destination. A name without a prefix is a queue (ActiveMQ's
    /// default destination type).
    fn destination(&mut self, name: &str) -> Result<Destination, SessionError> {
        let bad = || SessionError::InvalidDestination(name.to_owned());
        let (kind, rest, temp_alias) = if let Some(r) = name.strip_prefix("/queue/") {
            (DestKind::Queue, r, false)
        } else if let Some(r) = name.strip_prefix("/topic/") {
            (DestKind::Topic, r, false)
        } else if let Some(r) = name.strip_prefix("/temp-queue/") {
            (DestKind::TempQueue, r, true)
        } else if let Some(r) = name.strip_prefix("/temp-topic/") {
            (DestKind::TempTopic, r, true)
        } else if let Some(r) = name.strip_prefix("/remote-temp-queue/") {
            (DestKind::TempQueue, r, false)
        } else if let Some(r) = name.strip_prefix("/remote-temp-topic/") {
            (DestKind::TempTopic, r, false)
        } else if name.starts_with('/') {
            return Err(bad());
        } else {
            (DestKind::Queue, name, false)
        };
        if rest.is_empty() {
            return Err(bad());
        }
        if !temp_alias {
            return Ok(Destination {
                kind,
                name: rest.to_owned(),
            });
        }
        let key = (kind, rest.to_owned());
        if let Some(real) = self.temp_by_alias.get(&key) {
            return Ok(Destination {
                kind,
                name: real.clone(),
            });
        }
        let real = format!("ID:{}:{}", self.tag, self.next_temp);
        self.next_temp += 1;
        self.temp_by_alias.insert(key, real.clone());
        self.temp_alias_of.insert(real.clone(), name.to_owned());
        Ok(Destination { kind, name: real })
    }

    /// The destination as this client should read it in a MESSAGE frame.
    fn display_destination(&self, d: &Destination) -> String {
        if d.kind.is_temporary() {
            if let Some(alias) = self.temp_alias_of.get(&d.name) {
                return alias.clone();
            }
        }
        d.stomp_name()
    }

    // ----- SUBSCRIBE / UNSUBSCRIBE -----

    fn subscribe(&mut self, frame: &Frame) -> Result<(), SessionError> {
        let dest_name = required(frame, "destination")?;
        let destination = self.destination(dest_name)?;
        let (client_id, explicit_id) = match frame.header("id") {
            Some(id) => (id.to_owned(), true),
            None if self.version == Version::V1_0 => (dest_name.to_owned(), false),
            None => return Err(missing(Command::Subscribe, "id")),
        };
        if self.sub_by_client_id.contains_key(&client_id) {
            return Err(SessionError::DuplicateSubscription(client_id));
        }
        let ack = match frame.header("ack").unwrap_or("auto") {
            "auto" => AckMode::Auto,
            "client" => AckMode::Client,
            "client-individual" => AckMode::ClientIndividual,
            other => return Err(SessionError::InvalidAckMode(other.into())),
        };
        let prefetch = match frame.header("activemq.prefetchSize") {
            None => self.ctx.settings.default_prefetch,
            Some(v) => v
                .trim()
                .parse::<u32>()
                .map_err(|_| invalid("activemq.prefetchSize", v))?,
        }
        .max(1);
        // ActiveMQ also accepts its historical misspelling.
        let durable_name = frame
            .header("activemq.subscriptionName")
            .or_else(|| frame.header("activemq.subcriptionName"));
        let durable = match durable_name {
            // A subscription name means nothing on a queue; ActiveMQ ignores it there.
            Some(name) if destination.kind == DestKind::Topic => {
                let client = self
                    .client_id
                    .clone()
                    .ok_or_else(|| SessionError::DurableWithoutClientId(name.into()))?;
                Some(DurableName {
                    client_id: client,
                    name: name.to_owned(),
                })
            }
            _ => None,
        };
        let selector = frame.header("selector").map(str::to_owned);
        let temp_owner = (destination.kind.is_temporary()
            && self.temp_alias_of.contains_key(&destination.name))
        .then_some(self.ctx.conn);
        let num = self.next_sub;
        self.next_sub += 1;
        self.sub_by_client_id.insert(client_id.clone(), num);
        self.subs.insert(
            num,
            Subscription {
                client_id,
                explicit_id,
                destination: destination.clone(),
                ack,
                durable: durable.clone(),
                outstanding: VecDeque::new(),
            },
        );
        let spec = SubscribeSpec {
            destination: destination.clone(),
            ack,
            prefetch,
            durable,
            selector,
            temp_owner,
        };
        let shard = self.shard_of(&destination);
        let receipt = frame.header("receipt").map(str::to_owned);
        let sub = self.sub_key(num);
        self.post_with_reply(shard, Pending::Subscribe { receipt, sub: num }, |reply| {
            Request::Subscribe { sub, spec, reply }
        });
        Ok(())
    }

    fn unsubscribe(&mut self, frame: &Frame) -> Result<(), SessionError> {
        let id = match frame.header("id") {
            Some(id) => id,
            None if self.version == Version::V1_0 => frame
                .header("destination")
                .ok_or(missing(Command::Unsubscribe, "id"))?,
            None => return Err(missing(Command::Unsubscribe, "id")),
        };
        let named = frame
            .header("activemq.subscriptionName")
            .or_else(|| frame.header("activemq.subcriptionName"));
        let Some(num) = self.sub_by_client_id.remove(id) else {
            // ActiveMQ removes a durable subscription by client id and name even when
            // this connection has no consumer on it.
            if let (Some(name), Some(client_id)) = (named, self.client_id.clone()) {
                return self.remove_inactive_durable(frame, name, client_id);
            }
            return Err(SessionError::UnknownSubscription(id.into()));
        };
        let Some(sub) = self.subs.remove(&num) else {
            return Err(SessionError::UnknownSubscription(id.into()));
        };
        // The core returns this subscription's unacknowledged deliveries itself.
        for o in &sub.outstanding {
            self.ack_owner.remove(&o.ack_no);
        }
        // ActiveMQ: naming the subscription on UNSUBSCRIBE removes the durable
        // subscription; a plain UNSUBSCRIBE or a disconnect keeps it.
        let remove_durable = if named.is_some() { sub.durable } else { None };
        let shard = self.shard_of(&sub.destination);
        let receipt = frame.header("receipt").map(str::to_owned);
        let key = self.sub_key(num);
        let destination = sub.destination;
        self.post_with_reply(shard, Pending::Simple { receipt }, |reply| {
            Request::Unsubscribe {
                sub: key,
                destination,
                remove_durable,
                reply,
            }
        });
        Ok(())
    }

    /// Removes durable subscription `name` of this connection's client id: on the
    /// topic's shard if the frame names the topic, else on every shard (each removes it
    /// if it holds it). The receipt follows a barrier on those shards.
    fn remove_inactive_durable(
        &mut self,
        frame: &Frame,
        name: &str,
        client_id: String,
    ) -> Result<(), SessionError> {
        let topic = match frame.header("destination") {
            Some(d) => Some(self.destination(d)?),
            None => None,
        };
        let shards: Vec<ShardId> = match &topic {
            Some(t) => vec![self.shard_of(t)],
            None => (0..self.ctx.shard_count).collect(),
        };
        let durable = DurableName {
            client_id,
            name: name.to_owned(),
        };
        // A consumer number never used by this connection: nothing is attached to it.
        let key = self.sub_key(self.next_sub);
        self.next_sub += 1;
        for &shard in &shards {
            let destination = topic.clone().unwrap_or_else(|| Destination::topic(""));
            let remove_durable = Some(durable.clone());
            self.post_with_reply(shard, Pending::Simple { receipt: None }, |reply| {
                Request::Unsubscribe {
                    sub: key,
                    destination,
                    remove_durable,
                    reply,
                }
            });
        }
        if let Some(receipt) = frame.header("receipt") {
            self.barrier(shards, AfterBarrier::Receipt(receipt.to_owned()));
        }
        Ok(())
    }

    // ----- deliveries -----

    fn deliver(&mut self, d: Delivery) {
        let shown = self.display_destination(&d.destination);
        let version = self.version;
        let Some(sub) = self.subs.get_mut(&d.sub.sub) else {
            // Unsubscribed while this was in flight: the core counts it unacknowledged
            // for the removed consumer and has already taken it back.
            tracing::debug!(
                sub = d.sub.sub,
                "delivery for a removed subscription dropped"
            );
            return;
        };
        let msg = &d.msg;
        let mut f = Frame::new(Command::Message);
        f.push_header("destination", shown);
        f.push_header("message-id", msg.id.clone());
        if version > Version::V1_0 || sub.explicit_id {
            f.push_header("subscription", sub.client_id.clone());
        }
        let mut ack_no = None;
        if sub.ack != AckMode::Auto {
            let n = self.next_ack;
            self.next_ack += 1;
            ack_no = Some(n);
            if version >= Version::V1_2 {
                f.push_header("ack", n.to_string());
            }
        }
        if msg.persistent {
            f.push_header("persistent", "true");
        }
        f.push_header("priority", msg.priority.to_string());
        f.push_header("timestamp", msg.timestamp_ms.to_string());
        f.push_header("expires", msg.expires_ms.to_string());
        if let Some(r) = &msg.reply_to {
            f.push_header("reply-to", r.clone());
        }
        if d.redelivered {
            f.push_header("redelivered", "true");
        }
        for (k, v) in &msg.headers {
            f.push_header(k.clone(), v.clone());
        }
        // `content-length` is the encoder's job (it always writes it for MESSAGE).
        f.body = msg.body.clone();
        match ack_no {
            Some(n) => {
                sub.outstanding.push_back(Outstanding {
                    ack_no: n,
                    message_id: msg.id.clone(),
                    seq: d.seq,
                    destination: d.destination,
                    in_tx: None,
                });
                self.ack_owner.insert(n, d.sub.sub);
                self.write(f);
            }
            None => {
                self.write(f);
                // Numbered after the write: on_written(upto) covers frames below upto.
                self.auto_unwritten.push_back((
                    self.frames_emitted - 1,
                    d.sub.sub,
                    d.destination,
                    d.seq,
                ));
            }
        }
    }

    // ----- ACK / NACK -----

    fn ack(&mut self, frame: &Frame, nack: bool) -> Result<(), SessionError> {
        let command = frame.command;
        if nack && self.version == Version::V1_0 {
            return Err(SessionError::UnexpectedCommand(command));
        }
        let (num, idx, id) = self.find_delivery(frame)?;
        let tx = frame.header("transaction");
        if tx.is_some_and(|t| !self.transactions.contains_key(t)) {
            return Err(SessionError::UnknownTransaction(
                tx.unwrap_or_default().into(),
            ));
        }
        let Some(sub) = self.subs.get_mut(&num) else {
            return Err(SessionError::UnknownAck(id));
        };
        if sub.outstanding[idx].in_tx.is_some() {
            return Err(SessionError::UnknownAck(id));
        }
        // Cumulative in client mode: this delivery and every earlier one not already
        // acknowledged inside a transaction.
        let first = if sub.ack == AckMode::Client { 0 } else { idx };
        let chosen: Vec<usize> = (first..=idx)
            .filter(|&i| sub.outstanding[i].in_tx.is_none())
            .collect();
        let mut by_dest: BTreeMap<Destination, Vec<u64>> = BTreeMap::new();
        let key = SubKey {
            conn: self.ctx.conn,
            sub: num,
        };
        // NACK has no transactional form in the core: it applies at once.
        match tx.filter(|_| !nack) {
            Some(tx) => {
                let mut acked = Vec::with_capacity(chosen.len());
                for &i in &chosen {
                    let o = &mut sub.outstanding[i];
                    o.in_tx = Some(tx.to_owned());
                    acked.push((num, o.ack_no));
                    by_dest
                        .entry(o.destination.clone())
                        .or_default()
                        .push(o.seq);
                }
                if let Some(t) = self.transactions.get_mut(tx) {
                    t.acked.extend(acked);
                    for (destination, seqs) in by_dest {
                        t.ops.push(TxOp::Ack {
                            sub: key,
                            destination,
                            seqs,
                        });
                    }
                }
                self.receipt_now(frame.header("receipt"))
            }
            None => {
                // Remove back to front so earlier indices stay valid.
                for &i in chosen.iter().rev() {
                    if let Some(o) = sub.outstanding.remove(i) {
                        self.ack_owner.remove(&o.ack_no);
                        by_dest.entry(o.destination).or_default().push(o.seq);
                    }
                }
                let receipt = frame.header("receipt").map(str::to_owned);
                let mut batches = by_dest.into_iter().peekable();
                while let Some((destination, mut seqs)) = batches.next() {
                    seqs.sort_unstable();
                    let shard = self.shard_of(&destination);
                    let make = |reply| {
                        if nack {
                            Request::Nack {
                                sub: key,
                                destination,
                                seqs,
                                reply,
                            }
                        } else {
                            Request::Ack {
                                sub: key,
                                destination,
                                seqs,
                                reply,
                            }
                        }
                    };
                    // The receipt rides on the last batch; earlier batches are covered
                    // because a multi-destination ack only arises on wildcard topics,
                    // where a barrier would not order across shards anyway.
                    match (&receipt, batches.peek()) {
                        (Some(r), None) => {
                            let receipt = Some(r.clone());
                            self.post_with_reply(shard, Pending::Simple { receipt }, |reply| {
                                make(Some(reply))
                            });
                        }
                        _ => self.post_unreplied(shard, make(None)),
                    }
                }
                Ok(())
            }
        }
    }

    /// The subscription number, index in its outstanding list, and the id the client
    /// used, of the delivery an ACK/NACK names.
    fn find_delivery(&self, frame: &Frame) -> Result<(u64, usize, String), SessionError> {
        let command = frame.command;
        if self.version >= Version::V1_2 {
            let id = frame.header("id").ok_or(missing(command, "id"))?;
            let unknown = || SessionError::UnknownAck(id.to_owned());
            let ack_no: u64 = id.parse().map_err(|_| unknown())?;
            let num = *self.ack_owner.get(&ack_no).ok_or_else(unknown)?;
            let sub = self.subs.get(&num).ok_or_else(unknown)?;
            let idx = sub
                .outstanding
                .iter()
                .position(|o| o.ack_no == ack_no)
                .ok_or_else(unknown)?;
            return Ok((num, idx, id.to_owned()));
        }
        let id = frame
            .header("message-id")
            .ok_or(missing(command, "message-id"))?;
        let unknown = || SessionError::UnknownAck(id.to_owned());
        let find = |num: u64| {
            self.subs.get(&num).and_then(|s| {
                s.outstanding
                    .iter()
                    .position(|o| o.message_id == id)
                    .map(|i| (num, i, id.to_owned()))
            })
        };
        // 1.1 names the subscription; 1.0 clients (and lax 1.1 ones) do not, and the
        // first subscription holding that message wins.
        match frame.header("subscription") {
            Some(s) => {
                let num = *self.sub_by_client_id.get(s).ok_or_else(unknown)?;
                find(num).ok_or_else(unknown)
            }
            None => {
                let mut nums: Vec<u64> = self.subs.keys().copied().collect();
                nums.sort_unstable();
                nums.into_iter().find_map(find).ok_or_else(unknown)
            }
        }
    }

    // ----- transactions -----

    fn begin(&mut self, frame: &Frame) -> Result<(), SessionError> {
        let tx = required(frame, "transaction")?;
        if self.transactions.contains_key(tx) {
            return Err(SessionError::DuplicateTransaction(tx.into()));
        }
        self.transactions
            .insert(tx.to_owned(), Transaction::default());
        self.receipt_now(frame.header("receipt"))
    }

    fn abort(&mut self, frame: &Frame) -> Result<(), SessionError> {
        let name = required(frame, "transaction")?;
        let tx = self
            .transactions
            .remove(name)
            .ok_or_else(|| SessionError::UnknownTransaction(name.into()))?;
        // ActiveMQ puts deliveries acknowledged inside an aborted transaction back on
        // the connection as unacknowledged.
        self.release_tx_acks(&tx.acked);
        self.receipt_now(frame.header("receipt"))
    }

    fn commit(&mut self, frame: &Frame) -> Result<(), SessionError> {
        let name = required(frame, "transaction")?;
        let tx = self
            .transactions
            .remove(name)
            .ok_or_else(|| SessionError::UnknownTransaction(name.into()))?;
        let receipt = frame.header("receipt").map(str::to_owned);
        let mut by_shard: BTreeMap<ShardId, Vec<TxOp>> = BTreeMap::new();
        for op in tx.ops {
            let shard = match &op {
                TxOp::Send(m) => self.shard_of(&m.destination),
                TxOp::Ack { destination, .. } => self.shard_of(destination),
            };
            by_shard.entry(shard).or_default().push(op);
        }
        let acked = tx.acked;
        match by_shard.len() {
            0 => {
                self.forget_acked(&acked);
                self.receipt_now(receipt.as_deref())
            }
            1 => {
                let Some((shard, ops)) = by_shard.into_iter().next() else {
                    return Ok(());
                };
                self.post_with_reply(shard, Pending::Commit { receipt, acked }, |reply| {
                    Request::Commit { ops, reply }
                });
                Ok(())
            }
            n => {
                let gtx = self.new_gtx();
                let key = self.next_commit;
                self.next_commit += 1;
                let participants: Vec<ShardId> = by_shard.keys().copied().collect();
                self.commits.insert(
                    key,
                    TwoPhase {
                        gtx,
                        receipt,
                        participants,
                        acked,
                        phase: Phase::Prepare,
                        remaining: n,
                        failure: None,
                        commit: false,
                    },
                );
                for (shard, ops) in by_shard {
                    self.post_with_reply(shard, Pending::TwoPhase { commit_key: key }, |reply| {
                        Request::Prepare { gtx, ops, reply }
                    });
                }
                Ok(())
            }
        }
    }

    /// A global transaction id: the process start time's low 56 bits and the shard
    /// (unique across runs and shards), then the connection serial and a counter.
    fn new_gtx(&mut self) -> GlobalTxId {
        let n = self.next_gtx;
        self.next_gtx = self.next_gtx.wrapping_add(1);
        let hi = (self.ctx.boot_nanos & ((1u64 << 56) - 1)) | ((self.ctx.conn.shard as u64) << 56);
        let lo = (self.ctx.conn.serial << 32) | u64::from(n);
        (u128::from(hi) << 64) | u128::from(lo)
    }

    fn release_tx_acks(&mut self, acked: &[(u64, u64)]) {
        for &(num, ack_no) in acked {
            if let Some(sub) = self.subs.get_mut(&num) {
                if let Some(o) = sub.outstanding.iter_mut().find(|o| o.ack_no == ack_no) {
                    o.in_tx = None;
                }
            }
        }
    }

    fn forget_acked(&mut self, acked: &[(u64, u64)]) {
        for &(num, ack_no) in acked {
            self.ack_owner.remove(&ack_no);
            if let Some(sub) = self.subs.get_mut(&num) {
                sub.outstanding.retain(|o| o.ack_no != ack_no);
            }
        }
    }

    fn two_phase_step(&mut self, key: u64, result: Result<(), BrokerError>) {
        let own = self.ctx.conn.shard;
        let Some(c) = self.commits.get_mut(&key) else {
            return;
        };
        if let Err(e) = result {
            // Errors while resolving an abort are expected (a participant whose prepare
            // failed holds nothing) and change nothing.
            if (c.commit || c.phase != Phase::Resolve) && c.failure.is_none() {
                c.failure = Some(e.to_string());
            }
        }
        c.remaining = c.remaining.saturating_sub(1);
        if c.remaining > 0 {
            return;
        }
        let gtx = c.gtx;
        match c.phase {
            Phase::Prepare => {
                c.commit = c.failure.is_none();
                c.phase = Phase::Record;
                c.remaining = 1;
                let commit = c.commit;
                self.post_with_reply(own, Pending::TwoPhase { commit_key: key }, |reply| {
                    Request::RecordOutcome { gtx, commit, reply }
                });
            }
            Phase::Record => {
                // An outcome that could not be journaled is no commit: abort.
                if c.failure.is_some() {
                    c.commit = false;
                }
                c.phase = Phase::Resolve;
                c.remaining = c.participants.len();
                let commit = c.commit;
                let participants = c.participants.clone();
                for shard in participants {
                    self.post_with_reply(shard, Pending::TwoPhase { commit_key: key }, |reply| {
                        Request::Resolve { gtx, commit, reply }
                    });
                }
            }
            Phase::Resolve => {
                let Some(c) = self.commits.remove(&key) else {
                    return;
                };
                // Every participant has journaled its resolution: the coordinator's
                // outcome record is no longer needed for recovery.
                self.post(own, Request::ForgetOutcome { gtx });
                match (c.commit, c.failure) {
                    (true, None) => {
                        self.forget_acked(&c.acked);
                        if let Some(r) = c.receipt {
                            self.write(Frame::receipt(&r));
                        }
                    }
                    (_, failure) => {
                        self.release_tx_acks(&c.acked);
                        let why = failure.unwrap_or_else(|| "transaction aborted".into());
                        self.broker_error("Transaction failed", &why, c.receipt.as_deref());
                    }
                }
            }
        }
    }

    // ----- DISCONNECT -----

    fn disconnect(&mut self, frame: &Frame) {
        self.transactions.clear();
        let Some(receipt) = frame.header("receipt") else {
            self.close();
            return;
        };
        let shards: Vec<ShardId> = (0..self.used.len()).filter(|&s| self.used[s]).collect();
        if shards.is_empty() {
            self.write(Frame::receipt(receipt));
            self.close();
            return;
        }
        self.barrier(shards, AfterBarrier::Disconnect(receipt.to_owned()));
        // Frames after DISCONNECT are ignored; events still flow until the receipt.
        self.state = State::Disconnecting;
    }

    // ----- completions -----

    fn done(&mut self, reply: Reply, result: Result<(), BrokerError>) {
        if reply.to != ReplyTo::Conn(self.ctx.conn) {
            debug_assert!(false, "completion for another connection: {reply:?}");
            return;
        }
        let Some((shard, pending)) = self.pending.remove(&reply.token) else {
            tracing::warn!(token = reply.token, "completion for an unknown request");
            return;
        };
        if let Some(n) = self.inflight.get_mut(shard) {
            *n = n.saturating_sub(1);
        }
        match pending {
            Pending::Send { receipt } => {
                self.pending_sends = self.pending_sends.saturating_sub(1);
                if self.reading_paused && self.pending_sends < self.ctx.settings.max_pending_sends {
                    self.reading_paused = false;
                    self.out.push(Action::ResumeReading);
                }
                self.complete(result, receipt, "Send failed");
            }
            Pending::Subscribe { receipt, sub } => {
                if result.is_err() {
                    if let Some(s) = self.subs.remove(&sub) {
                        self.sub_by_client_id.remove(&s.client_id);
                    }
                }
                self.complete(result, receipt, "Subscribe failed");
            }
            Pending::Simple { receipt } => self.complete(result, receipt, "Request failed"),
            Pending::Commit { receipt, acked } => {
                if result.is_ok() {
                    self.forget_acked(&acked);
                } else {
                    self.release_tx_acks(&acked);
                }
                self.complete(result, receipt, "Transaction failed");
            }
            Pending::TwoPhase { commit_key } => self.two_phase_step(commit_key, result),
            Pending::Barrier { group } => {
                let Some(g) = self.barriers.get_mut(&group) else {
                    return;
                };
                g.remaining = g.remaining.saturating_sub(1);
                if g.remaining > 0 {
                    return;
                }
                let Some(g) = self.barriers.remove(&group) else {
                    return;
                };
                match g.then {
                    AfterBarrier::Receipt(r) => self.write(Frame::receipt(&r)),
                    AfterBarrier::Disconnect(r) => {
                        self.write(Frame::receipt(&r));
                        self.close();
                    }
                }
            }
        }
    }

    /// RECEIPT on success, ERROR (naming the receipt) on failure. Broker failures keep
    /// the connection open: the client did nothing wrong.
    fn complete(&mut self, result: Result<(), BrokerError>, receipt: Option<String>, what: &str) {
        match result {
            Ok(()) => {
                if let Some(r) = receipt {
                    self.write(Frame::receipt(&r));
                }
            }
            Err(e) => self.broker_error(what, &e.to_string(), receipt.as_deref()),
        }
    }

    // ----- helpers -----

    /// A RECEIPT for a frame that touched no shard: at once if nothing this connection
    /// posted is unconfirmed, else after a barrier to every shard with unconfirmed work.
    fn receipt_now(&mut self, receipt: Option<&str>) -> Result<(), SessionError> {
        let Some(receipt) = receipt else {
            return Ok(());
        };
        let shards: Vec<ShardId> = (0..self.inflight.len())
            .filter(|&s| {
                self.inflight[s] > 0 || self.unreplied_posted[s] > self.unreplied_confirmed[s]
            })
            .collect();
        if shards.is_empty() {
            self.write(Frame::receipt(receipt));
        } else {
            self.barrier(shards, AfterBarrier::Receipt(receipt.to_owned()));
        }
        Ok(())
    }

    fn barrier(&mut self, shards: Vec<ShardId>, then: AfterBarrier) {
        let group = self.next_group;
        self.next_group += 1;
        self.barriers.insert(
            group,
            BarrierGroup {
                remaining: shards.len(),
                then,
            },
        );
        for shard in shards {
            // Everything unreplied on this shard so far is confirmed once the barrier
            // returns; recording it now (not at completion) keeps later posts counted.
            // Marking it early is safe: anything that checks before the barrier returns
            // sees `inflight > 0` for this shard and waits behind a newer barrier.
            self.unreplied_confirmed[shard] = self.unreplied_posted[shard];
            self.post_with_reply(shard, Pending::Barrier { group }, |reply| {
                Request::Barrier { reply }
            });
        }
    }

    fn post_with_reply(
        &mut self,
        shard: ShardId,
        pending: Pending,
        make: impl FnOnce(Reply) -> Request,
    ) {
        let token = self.next_token;
        self.next_token += 1;
        self.pending.insert(token, (shard, pending));
        if let Some(n) = self.inflight.get_mut(shard) {
            *n += 1;
        }
        let reply = Reply {
            to: ReplyTo::Conn(self.ctx.conn),
            token,
        };
        self.post(shard, make(reply));
    }

    fn post_unreplied(&mut self, shard: ShardId, request: Request) {
        if let Some(n) = self.unreplied_posted.get_mut(shard) {
            *n += 1;
        }
        self.post(shard, request);
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
        self.state = State::Closing;
        self.out.push(Action::Close);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    struct TestEnv {
        next: Cell<u64>,
    }
    impl SessionEnv for TestEnv {
        fn next_message_id(&self) -> String {
            let n = self.next.get();
            self.next.set(n + 1);
            format!("ID:m-{n}")
        }
        fn now_ms(&self) -> u64 {
            1_000
        }
    }

    const CONN: ConnId = ConnId {
        shard: 0,
        serial: 7,
    };

    fn session_with(shards: usize, settings: BrokerSettings) -> Session<TestEnv> {
        Session::new(
            SessionContext {
                conn: CONN,
                shard_count: shards,
                settings: Arc::new(settings),
                boot_nanos: 0xabc,
            },
            TestEnv { next: Cell::new(1) },
        )
    }

    fn frame(command: Command, headers: &[(&str, &str)]) -> Frame {
        let mut f = Frame::new(command);
        for (k, v) in headers {
            f.push_header(*k, *v);
        }
        f
    }

    /// A connected session speaking `version`.
    fn connected(version: &str, shards: usize) -> Session<TestEnv> {
        let mut s = session_with(shards, BrokerSettings::default());
        let mut h = vec![("host", "localhost")];
        if version != "1.0" {
            h.push(("accept-version", version));
        }
        s.on_frame(frame(Command::Connect, &h));
        assert!(s.is_connected());
        s.take_actions();
        s
    }

    fn writes(actions: &[Action]) -> Vec<&Frame> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Write(f) => Some(f),
                _ => None,
            })
            .collect()
    }

    fn posts(actions: Vec<Action>) -> Vec<(ShardId, Request)> {
        actions
            .into_iter()
            .filter_map(|a| match a {
                Action::Post { shard, request } => Some((shard, request)),
                _ => None,
            })
            .collect()
    }

    fn reply_of(r: &Request) -> Reply {
        match r {
            Request::Send { reply, .. }
            | Request::Subscribe { reply, .. }
            | Request::Unsubscribe { reply, .. }
            | Request::Commit { reply, .. }
            | Request::Prepare { reply, .. }
            | Request::RecordOutcome { reply, .. }
            | Request::Resolve { reply, .. }
            | Request::Barrier { reply } => *reply,
            Request::Ack { reply, .. } | Request::Nack { reply, .. } => {
                reply.expect("request has a reply")
            }
            Request::ConnectionClosed { .. }
            | Request::ForgetOutcome { .. }
            | Request::QueryOutcome { .. } => panic!("no reply"),
        }
    }

    fn ok(reply: Reply) -> Event {
        Event::Done {
            reply,
            result: Ok(()),
        }
    }

    fn headers(f: &Frame) -> Vec<(&str, &str)> {
        f.headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    fn is_close(a: &Action) -> bool {
        matches!(a, Action::Close)
    }

    /// Subscribes and completes the subscription; returns its SubKey.
    fn subscribe(s: &mut Session<TestEnv>, h: &[(&str, &str)]) -> SubKey {
        s.on_frame(frame(Command::Subscribe, h));
        let mut p = posts(s.take_actions());
        assert_eq!(p.len(), 1);
        let (_, req) = p.remove(0);
        let Request::Subscribe { sub, reply, .. } = req else {
            panic!("not a subscribe: {req:?}")
        };
        s.on_event(ok(reply));
        s.take_actions();
        sub
    }

    fn delivery(sub: SubKey, dest: Destination, seq: u64, msg_id: &str) -> Event {
        Event::Deliver(Delivery {
            sub,
            msg: Arc::new(Message {
                id: msg_id.into(),
                destination: dest.clone(),
                persistent: true,
                priority: 4,
                timestamp_ms: 55,
                expires_ms: 0,
                reply_to: None,
                headers: vec![("color".into(), "red".into())],
                body: Bytes::from_static(b"hello"),
            }),
            seq,
            destination: dest,
            redelivered: false,
            redelivery_count: 0,
        })
    }

    /// Two queue names that live on different shards of `n`.
    fn names_on_two_shards(n: usize) -> (String, String) {
        let a = "a".to_string();
        let sa = Destination::queue(&a).shard(n);
        let b = (0..)
            .map(|i| format!("b{i}"))
            .find(|b| Destination::queue(b).shard(n) != sa)
            .unwrap_or_default();
        (a, b)
    }

    #[test]
    fn connect_negotiates_version_and_heart_beats() {
        let mut s = session_with(1, BrokerSettings::default());
        s.on_frame(frame(
            Command::Stomp,
            &[
                ("accept-version", "1.0,1.1,1.2"),
                ("host", "/"),
                ("heart-beat", "1000,20000"),
            ],
        ));
        let a = s.take_actions();
        assert!(matches!(
            a[0],
            Action::Negotiated {
                version: Version::V1_2,
                send_every: Some(d1),
                receive_timeout: Some(d2),
            } if d1 == Duration::from_secs(20) && d2 == Duration::from_secs(20)
        ));
        let w = writes(&a);
        assert_eq!(w[0].command, Command::Connected);
        assert_eq!(
            headers(w[0]),
            vec![
                ("version", "1.2"),
                ("server", SERVER_NAME),
                ("heart-beat", "20000,10000"),
                ("session", "ID:tandem-abc-0-7"),
            ]
        );
        assert_eq!(s.version(), Version::V1_2);
    }

    #[test]
    fn connect_without_accept_version_is_1_0_without_heart_beats() {
        let mut s = session_with(1, BrokerSettings::default());
        s.on_frame(frame(Command::Connect, &[("heart-beat", "1000,1000")]));
        let a = s.take_actions();
        assert!(matches!(
            a[0],
            Action::Negotiated {
                version: Version::V1_0,
                send_every: None,
                receive_timeout: None
            }
        ));
        assert_eq!(writes(&a)[0].header("heart-beat"), Some("0,0"));
    }

    #[test]
    fn no_common_version_and_bad_login_are_refused() {
        let mut s = session_with(1, BrokerSettings::default());
        s.on_frame(frame(Command::Connect, &[("accept-version", "2.0")]));
        let a = s.take_actions();
        assert_eq!(writes(&a)[0].command, Command::Error);
        assert!(is_close(&a[1]));

        let settings = BrokerSettings {
            auth_required: true,
            users: vec![crate::broker::User {
                username: "u".into(),
                password: "p".into(),
                groups: vec![],
            }],
            ..BrokerSettings::default()
        };
        let mut s = session_with(1, settings.clone());
        s.on_frame(frame(
            Command::Connect,
            &[("login", "u"), ("passcode", "x")],
        ));
        let a = s.take_actions();
        let e = writes(&a)[0];
        assert_eq!(e.header("message"), Some("Authentication failed"));
        assert_eq!(&e.body[..], b"User name [u] or password is invalid.");
        assert!(is_close(&a[1]));
        assert!(!s.is_connected());

        let mut s = session_with(1, settings);
        s.on_frame(frame(
            Command::Connect,
            &[("login", "u"), ("passcode", "p")],
        ));
        assert!(s.is_connected());
    }

    #[test]
    fn frames_before_connect_error_and_close_then_silence() {
        let mut s = session_with(1, BrokerSettings::default());
        s.on_frame(frame(Command::Send, &[("destination", "/queue/a")]));
        let a = s.take_actions();
        assert_eq!(a.len(), 2);
        assert_eq!(
            writes(&a)[0].header("message"),
            Some("Connection not established")
        );
        assert!(is_close(&a[1]));
        s.on_frame(frame(Command::Connect, &[]));
        assert!(s.take_actions().is_empty());
    }

    #[test]
    fn send_builds_the_message_and_receipts_on_done() {
        let mut s = connected("1.2", 1);
        let mut f = frame(
            Command::Send,
            &[
                ("destination", "/queue/orders"),
                ("receipt", "r1"),
                ("persistent", "true"),
                ("priority", "7"),
                ("expires", "99"),
                ("content-type", "text/plain"),
                ("content-length", "2"),
                ("custom", "x"),
            ],
        );
        f.body = Bytes::from_static(b"hi");
        s.on_frame(f);
        let mut p = posts(s.take_actions());
        let (shard, Request::Send { msg, reply }) = p.remove(0) else {
            panic!("not a send")
        };
        assert_eq!(shard, 0);
        assert_eq!(msg.id, "ID:m-1");
        assert_eq!(msg.destination, Destination::queue("orders"));
        assert!(msg.persistent);
        assert_eq!(
            (msg.priority, msg.expires_ms, msg.timestamp_ms),
            (7, 99, 1000)
        );
        assert_eq!(
            msg.headers,
            vec![
                ("content-type".to_string(), "text/plain".to_string()),
                ("custom".to_string(), "x".to_string())
            ]
        );
        assert_eq!(&msg.body[..], b"hi");
        s.on_event(ok(reply));
        let a = s.take_actions();
        assert_eq!(headers(writes(&a)[0]), vec![("receipt-id", "r1")]);
        assert_eq!(writes(&a)[0].command, Command::Receipt);

        // A refused send: ERROR naming the receipt, connection stays open.
        s.on_frame(frame(
            Command::Send,
            &[("destination", "plain"), ("receipt", "r2")],
        ));
        let mut p = posts(s.take_actions());
        let (_, Request::Send { msg, reply }) = p.remove(0) else {
            panic!()
        };
        assert_eq!(msg.destination, Destination::queue("plain"));
        assert!(!msg.persistent);
        s.on_event(Event::Done {
            reply,
            result: Err(BrokerError::Journal("disk".into())),
        });
        let a = s.take_actions();
        assert_eq!(a.len(), 1);
        let e = writes(&a)[0];
        assert_eq!(e.header("receipt-id"), Some("r2"));
        assert_eq!(e.header("message"), Some("Send failed"));
    }

    #[test]
    fn send_errors_close_the_connection() {
        for h in [
            vec![],
            vec![("destination", "/bogus/x")],
            vec![("destination", "/queue/")],
            vec![("destination", "/queue/a"), ("priority", "high")],
        ] {
            let mut s = connected("1.2", 1);
            s.on_frame(frame(Command::Send, &h));
            let a = s.take_actions();
            assert_eq!(writes(&a)[0].command, Command::Error, "{h:?}");
            assert!(
                is_close(a.last().unwrap_or(&Action::ResumeReading)),
                "{h:?}"
            );
        }
    }

    #[test]
    fn pending_sends_pause_and_resume_reading() {
        let settings = BrokerSettings {
            max_pending_sends: 2,
            ..BrokerSettings::default()
        };
        let mut s = session_with(1, settings);
        s.on_frame(frame(Command::Connect, &[]));
        s.take_actions();
        let send = || frame(Command::Send, &[("destination", "/queue/a")]);
        s.on_frame(send());
        let a1 = s.take_actions();
        assert!(!a1.iter().any(|a| matches!(a, Action::PauseReading)));
        s.on_frame(send());
        let a2 = s.take_actions();
        assert!(matches!(a2.last(), Some(Action::PauseReading)));
        let r = reply_of(&posts(a1)[0].1);
        s.on_event(ok(r));
        assert!(matches!(s.take_actions()[..], [Action::ResumeReading]));
    }

    #[test]
    fn temp_destinations_map_aliases_per_connection() {
        let mut s = connected("1.1", 4);
        s.on_frame(frame(
            Command::Send,
            &[
                ("destination", "/temp-queue/r"),
                ("reply-to", "/temp-queue/r"),
            ],
        ));
        s.on_frame(frame(Command::Send, &[("destination", "/temp-queue/r")]));
        s.on_frame(frame(Command::Send, &[("destination", "/temp-topic/r")]));
        let p = posts(s.take_actions());
        let msgs: Vec<crate::broker::MessageRef> = p
            .into_iter()
            .filter_map(|(_, r)| match r {
                Request::Send { msg, .. } => Some(msg),
                _ => None,
            })
            .collect();
        let real = "ID:tandem-abc-0-7:1";
        assert_eq!(msgs[0].destination.kind, DestKind::TempQueue);
        assert_eq!(msgs[0].destination.name, real);
        assert_eq!(msgs[1].destination, msgs[0].destination);
        assert_eq!(
            msgs[0].reply_to.as_deref(),
            Some("/remote-temp-queue/ID:tandem-abc-0-7:1")
        );
        assert_eq!(msgs[2].destination.kind, DestKind::TempTopic);
        assert_ne!(msgs[2].destination.name, real);

        // Subscribing to our own temp queue marks us its owner; deliveries show the alias.
        s.on_frame(frame(
            Command::Subscribe,
            &[("destination", "/temp-queue/r"), ("id", "s")],
        ));
        let mut p = posts(s.take_actions());
        let (_, Request::Subscribe { sub, spec, reply }) = p.remove(0) else {
            panic!()
        };
        assert_eq!(spec.temp_owner, Some(CONN));
        s.on_event(ok(reply));
        s.on_event(delivery(sub, msgs[0].destination.clone(), 1, "m"));
        let a = s.take_actions();
        assert_eq!(writes(&a)[0].header("destination"), Some("/temp-queue/r"));

        // Another connection's temp queue: no owner, name used as is.
        s.on_frame(frame(
            Command::Subscribe,
            &[("destination", "/remote-temp-queue/ID:x:1"), ("id", "t")],
        ));
        let mut p = posts(s.take_actions());
        let (_, Request::Subscribe { spec, .. }) = p.remove(0) else {
            panic!()
        };
        assert_eq!(spec.temp_owner, None);
        assert_eq!(spec.destination.name, "ID:x:1");
    }

    #[test]
    fn subscribe_request_and_validation() {
        let mut s = connected("1.2", 1);
        s.on_frame(frame(
            Command::Subscribe,
            &[
                ("destination", "/topic/t"),
                ("id", "0"),
                ("ack", "client-individual"),
                ("activemq.prefetchSize", "5"),
                ("selector", "color = 'red'"),
                ("receipt", "r"),
            ],
        ));
        let mut p = posts(s.take_actions());
        let (_, Request::Subscribe { sub, spec, reply }) = p.remove(0) else {
            panic!()
        };
        assert_eq!(sub, SubKey { conn: CONN, sub: 1 });
        assert_eq!(spec.ack, AckMode::ClientIndividual);
        assert_eq!(spec.prefetch, 5);
        assert_eq!(spec.selector.as_deref(), Some("color = 'red'"));
        assert!(spec.durable.is_none());
        s.on_event(ok(reply));
        assert_eq!(writes(&s.take_actions())[0].header("receipt-id"), Some("r"));

        // Duplicate id, bad ack mode, missing id in 1.1+, durable without client-id.
        for h in [
            vec![("destination", "/queue/q"), ("id", "0")],
            vec![
                ("destination", "/queue/q"),
                ("id", "1"),
                ("ack", "sometimes"),
            ],
            vec![("destination", "/queue/q")],
            vec![
                ("destination", "/topic/t"),
                ("id", "2"),
                ("activemq.subscriptionName", "d"),
            ],
        ] {
            let mut s2 = connected("1.2", 1);
            subscribe(&mut s2, &[("destination", "/queue/q"), ("id", "0")]);
            s2.on_frame(frame(Command::Subscribe, &h));
            let a = s2.take_actions();
            assert_eq!(writes(&a)[0].command, Command::Error, "{h:?}");
            assert!(is_close(&a[1]), "{h:?}");
        }
    }

    #[test]
    fn durable_subscribe_and_unsubscribe_with_name_removes_it() {
        let mut s = session_with(1, BrokerSettings::default());
        s.on_frame(frame(
            Command::Connect,
            &[("accept-version", "1.1"), ("client-id", "app")],
        ));
        s.take_actions();
        s.on_frame(frame(
            Command::Subscribe,
            &[
                ("destination", "/topic/t"),
                ("id", "d1"),
                ("activemq.subscriptionName", "sub"),
            ],
        ));
        let mut p = posts(s.take_actions());
        let (_, Request::Subscribe { spec, reply, .. }) = p.remove(0) else {
            panic!()
        };
        let name = DurableName {
            client_id: "app".into(),
            name: "sub".into(),
        };
        assert_eq!(spec.durable.as_ref(), Some(&name));
        s.on_event(ok(reply));
        s.take_actions();
        s.on_frame(frame(
            Command::Unsubscribe,
            &[("id", "d1"), ("activemq.subscriptionName", "sub")],
        ));
        let mut p = posts(s.take_actions());
        let (_, Request::Unsubscribe { remove_durable, .. }) = p.remove(0) else {
            panic!()
        };
        assert_eq!(remove_durable, Some(name));
        // Unknown id: ERROR, connection stays open.
        s.on_frame(frame(Command::Unsubscribe, &[("id", "d1")]));
        let a = s.take_actions();
        assert_eq!(a.len(), 1);
        assert_eq!(
            writes(&a)[0].header("message"),
            Some("No subscription matched")
        );
    }

    #[test]
    fn deliveries_carry_the_right_headers_in_each_version() {
        let dest = Destination::queue("q");
        // 1.0 without id: no subscription header; message-id acks.
        let mut s = connected("1.0", 1);
        let sub = subscribe(&mut s, &[("destination", "/queue/q"), ("ack", "client")]);
        s.on_event(delivery(sub, dest.clone(), 1, "m1"));
        let a = s.take_actions();
        assert_eq!(
            headers(writes(&a)[0]),
            vec![
                ("destination", "/queue/q"),
                ("message-id", "m1"),
                ("persistent", "true"),
                ("priority", "4"),
                ("timestamp", "55"),
                ("expires", "0"),
                ("color", "red"),
            ]
        );
        assert_eq!(&writes(&a)[0].body[..], b"hello");

        // 1.1: subscription header, no ack header.
        let mut s = connected("1.1", 1);
        let sub = subscribe(
            &mut s,
            &[("destination", "/queue/q"), ("id", "s1"), ("ack", "client")],
        );
        s.on_event(delivery(sub, dest.clone(), 1, "m1"));
        let a = s.take_actions();
        let f = writes(&a)[0];
        assert_eq!(f.header("subscription"), Some("s1"));
        assert_eq!(f.header("ack"), None);

        // 1.2: ack header for client modes, none for auto; redelivered flag.
        let mut s = connected("1.2", 1);
        let sub = subscribe(
            &mut s,
            &[("destination", "/queue/q"), ("id", "s1"), ("ack", "client")],
        );
        let mut ev = delivery(sub, dest.clone(), 1, "m1");
        if let Event::Deliver(d) = &mut ev {
            d.redelivered = true;
        }
        s.on_event(ev);
        let a = s.take_actions();
        let f = writes(&a)[0];
        assert_eq!(f.header("ack"), Some("1"));
        assert_eq!(f.header("redelivered"), Some("true"));
    }

    #[test]
    fn auto_ack_follows_the_socket_write() {
        let mut s = connected("1.2", 1);
        let dest = Destination::queue("q");
        let sub = subscribe(&mut s, &[("destination", "/queue/q"), ("id", "a")]);
        s.on_event(delivery(sub, dest.clone(), 10, "m1"));
        s.on_event(delivery(sub, dest.clone(), 11, "m2"));
        let a = s.take_actions();
        assert_eq!(writes(&a)[0].header("ack"), None);
        let mark = s.frames_emitted();
        s.on_event(delivery(sub, dest.clone(), 12, "m3"));
        s.take_actions();
        s.on_written(mark);
        let p = posts(s.take_actions());
        assert_eq!(p.len(), 1);
        let Request::Ack {
            seqs, reply: None, ..
        } = &p[0].1
        else {
            panic!("{p:?}")
        };
        assert_eq!(seqs, &vec![10, 11]);
        s.on_written(s.frames_emitted());
        let p = posts(s.take_actions());
        let Request::Ack { seqs, .. } = &p[0].1 else {
            panic!()
        };
        assert_eq!(seqs, &vec![12]);
    }

    fn acked_seqs(actions: Vec<Action>) -> Vec<u64> {
        posts(actions)
            .into_iter()
            .flat_map(|(_, r)| match r {
                Request::Ack { seqs, .. } => seqs,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn client_ack_is_cumulative_individual_is_not() {
        let dest = Destination::queue("q");
        for (mode, expect_first, expect_rest) in [
            ("client", vec![1, 2], vec![3]),
            ("client-individual", vec![2], vec![1, 3]),
        ] {
            let mut s = connected("1.2", 1);
            let sub = subscribe(
                &mut s,
                &[("destination", "/queue/q"), ("id", "s"), ("ack", mode)],
            );
            for seq in 1..=3 {
                s.on_event(delivery(sub, dest.clone(), seq, &format!("m{seq}")));
            }
            s.take_actions();
            // Ack ids are 1, 2, 3 in delivery order.
            s.on_frame(frame(Command::Ack, &[("id", "2")]));
            assert_eq!(acked_seqs(s.take_actions()), expect_first, "{mode}");
            let mut rest = Vec::new();
            for id in ["1", "3"] {
                s.on_frame(frame(Command::Ack, &[("id", id)]));
                let a = s.take_actions();
                if writes(&a).is_empty() {
                    rest.extend(acked_seqs(a));
                } else {
                    // Already covered by the cumulative ack: unknown now.
                    assert_eq!(
                        writes(&a)[0].header("message"),
                        Some("Unexpected ACK received")
                    );
                    assert!(!a.iter().any(is_close));
                }
            }
            assert_eq!(rest, expect_rest, "{mode}");
        }
    }

    #[test]
    fn ack_by_message_id_in_1_1_and_nack_and_receipt() {
        let dest = Destination::queue("q");
        let mut s = connected("1.1", 1);
        let sub = subscribe(
            &mut s,
            &[
                ("destination", "/queue/q"),
                ("id", "s"),
                ("ack", "client-individual"),
            ],
        );
        s.on_event(delivery(sub, dest.clone(), 1, "m1"));
        s.on_event(delivery(sub, dest.clone(), 2, "m2"));
        s.take_actions();
        s.on_frame(frame(
            Command::Nack,
            &[
                ("subscription", "s"),
                ("message-id", "m2"),
                ("receipt", "n"),
            ],
        ));
        let mut p = posts(s.take_actions());
        let (_, Request::Nack { seqs, reply, .. }) = p.remove(0) else {
            panic!()
        };
        assert_eq!(seqs, vec![2]);
        s.on_event(ok(reply.expect("receipt asks for a reply")));
        assert_eq!(writes(&s.take_actions())[0].header("receipt-id"), Some("n"));
        s.on_frame(frame(Command::Ack, &[("message-id", "m1")]));
        assert_eq!(acked_seqs(s.take_actions()), vec![1]);
    }

    #[test]
    fn single_shard_transaction_commits_in_one_request() {
        let dest = Destination::queue("q");
        let mut s = connected("1.2", 1);
        let sub = subscribe(
            &mut s,
            &[("destination", "/queue/q"), ("id", "s"), ("ack", "client")],
        );
        s.on_event(delivery(sub, dest.clone(), 1, "m1"));
        s.take_actions();
        s.on_frame(frame(
            Command::Begin,
            &[("transaction", "t"), ("receipt", "b")],
        ));
        assert_eq!(writes(&s.take_actions())[0].header("receipt-id"), Some("b"));
        s.on_frame(frame(
            Command::Send,
            &[("destination", "/queue/q"), ("transaction", "t")],
        ));
        s.on_frame(frame(Command::Ack, &[("id", "1"), ("transaction", "t")]));
        assert!(s.take_actions().is_empty());
        // Acked in the transaction: not ackable again.
        s.on_frame(frame(Command::Ack, &[("id", "1")]));
        assert_eq!(writes(&s.take_actions())[0].command, Command::Error);
        s.on_frame(frame(
            Command::Commit,
            &[("transaction", "t"), ("receipt", "c")],
        ));
        let mut p = posts(s.take_actions());
        assert_eq!(p.len(), 1);
        let (0, Request::Commit { ops, reply }) = p.remove(0) else {
            panic!()
        };
        assert!(matches!(&ops[..], [TxOp::Send(_), TxOp::Ack { seqs, .. }] if seqs == &vec![1]));
        s.on_event(ok(reply));
        assert_eq!(writes(&s.take_actions())[0].header("receipt-id"), Some("c"));
        // Unknown transaction now: ERROR, still open.
        s.on_frame(frame(Command::Commit, &[("transaction", "t")]));
        let a = s.take_actions();
        assert_eq!(
            writes(&a)[0].header("message"),
            Some("Invalid transaction id")
        );
        assert!(!a.iter().any(is_close));
    }

    #[test]
    fn abort_returns_transactional_acks_to_the_connection() {
        let dest = Destination::queue("q");
        let mut s = connected("1.2", 1);
        let sub = subscribe(
            &mut s,
            &[("destination", "/queue/q"), ("id", "s"), ("ack", "client")],
        );
        s.on_event(delivery(sub, dest.clone(), 1, "m1"));
        s.take_actions();
        s.on_frame(frame(Command::Begin, &[("transaction", "t")]));
        s.on_frame(frame(Command::Begin, &[("transaction", "t")]));
        let a = s.take_actions();
        assert_eq!(
            writes(&a)[0].header("message"),
            Some("Transaction already started")
        );
        s.on_frame(frame(Command::Ack, &[("id", "1"), ("transaction", "t")]));
        s.on_frame(frame(Command::Abort, &[("transaction", "t")]));
        assert!(s.take_actions().is_empty());
        s.on_frame(frame(Command::Ack, &[("id", "1")]));
        assert_eq!(acked_seqs(s.take_actions()), vec![1]);
    }

    fn two_shard_commit(fail_prepare: bool) {
        let (a, b) = names_on_two_shards(2);
        let mut s = connected("1.2", 2);
        s.on_frame(frame(Command::Begin, &[("transaction", "t")]));
        for d in [&a, &b] {
            let dest = format!("/queue/{d}");
            s.on_frame(frame(
                Command::Send,
                &[("destination", dest.as_str()), ("transaction", "t")],
            ));
        }
        s.on_frame(frame(
            Command::Commit,
            &[("transaction", "t"), ("receipt", "c")],
        ));
        let prepares = posts(s.take_actions());
        assert_eq!(prepares.len(), 2);
        let mut gtxs = Vec::new();
        let mut shards = Vec::new();
        for (shard, r) in &prepares {
            let Request::Prepare { gtx, ops, .. } = r else {
                panic!("{r:?}")
            };
            assert_eq!(ops.len(), 1);
            gtxs.push(*gtx);
            shards.push(*shard);
        }
        assert_eq!(gtxs[0], gtxs[1]);
        shards.sort_unstable();
        assert_eq!(shards, vec![0, 1]);
        let gtx = gtxs[0];
        // First prepare done: nothing yet.
        s.on_event(ok(reply_of(&prepares[0].1)));
        assert!(s.take_actions().is_empty());
        s.on_event(Event::Done {
            reply: reply_of(&prepares[1].1),
            result: if fail_prepare {
                Err(BrokerError::Journal("full".into()))
            } else {
                Ok(())
            },
        });
        let mut rec = posts(s.take_actions());
        assert_eq!(rec.len(), 1);
        let (
            0,
            Request::RecordOutcome {
                gtx: g,
                commit,
                reply,
            },
        ) = rec.remove(0)
        else {
            panic!()
        };
        assert_eq!((g, commit), (gtx, !fail_prepare));
        s.on_event(ok(reply));
        let resolves = posts(s.take_actions());
        assert_eq!(resolves.len(), 2);
        for (_, r) in &resolves {
            assert!(
                matches!(r, Request::Resolve { gtx: g, commit, .. } if *g == gtx && *commit != fail_prepare)
            );
        }
        s.on_event(ok(reply_of(&resolves[0].1)));
        assert!(s.take_actions().is_empty());
        s.on_event(ok(reply_of(&resolves[1].1)));
        let a = s.take_actions();
        let f = writes(&a)[0];
        if fail_prepare {
            assert_eq!(f.command, Command::Error);
            assert_eq!(f.header("receipt-id"), Some("c"));
            assert!(!a.iter().any(is_close));
        } else {
            assert_eq!(headers(f), vec![("receipt-id", "c")]);
        }
    }

    #[test]
    fn multi_shard_commit_runs_two_phases() {
        two_shard_commit(false);
    }

    #[test]
    fn multi_shard_commit_aborts_when_a_prepare_fails() {
        two_shard_commit(true);
    }

    #[test]
    fn receipts_wait_for_earlier_work_via_barriers() {
        let mut s = connected("1.2", 1);
        s.on_frame(frame(Command::Send, &[("destination", "/queue/q")]));
        let send = posts(s.take_actions());
        s.on_frame(frame(
            Command::Begin,
            &[("transaction", "t"), ("receipt", "b")],
        ));
        let mut p = posts(s.take_actions());
        let (0, Request::Barrier { reply }) = p.remove(0) else {
            panic!()
        };
        s.on_event(ok(reply_of(&send[0].1)));
        assert!(s.take_actions().is_empty());
        s.on_event(ok(reply));
        assert_eq!(writes(&s.take_actions())[0].header("receipt-id"), Some("b"));
        // Nothing outstanding now: immediate.
        s.on_frame(frame(
            Command::Abort,
            &[("transaction", "t"), ("receipt", "a")],
        ));
        assert_eq!(writes(&s.take_actions())[0].header("receipt-id"), Some("a"));
    }

    #[test]
    fn disconnect_receipt_follows_a_barrier_then_closes() {
        let mut s = connected("1.2", 4);
        s.on_frame(frame(Command::Disconnect, &[]));
        assert!(matches!(s.take_actions()[..], [Action::Close]));

        let mut s = connected("1.2", 4);
        s.on_frame(frame(Command::Disconnect, &[("receipt", "d")]));
        let a = s.take_actions();
        assert_eq!(writes(&a)[0].header("receipt-id"), Some("d"));
        assert!(is_close(&a[1]));

        let mut s = connected("1.2", 4);
        s.on_frame(frame(Command::Send, &[("destination", "/queue/q")]));
        let send = posts(s.take_actions());
        s.on_event(ok(reply_of(&send[0].1)));
        s.take_actions();
        s.on_frame(frame(Command::Disconnect, &[("receipt", "d")]));
        let barriers = posts(s.take_actions());
        assert_eq!(barriers.len(), 1);
        assert_eq!(barriers[0].0, send[0].0);
        // Ignored while waiting.
        s.on_frame(frame(Command::Send, &[("destination", "/queue/q")]));
        assert!(s.take_actions().is_empty());
        s.on_event(ok(reply_of(&barriers[0].1)));
        let a = s.take_actions();
        assert_eq!(writes(&a)[0].header("receipt-id"), Some("d"));
        assert!(is_close(&a[1]));
    }
}
