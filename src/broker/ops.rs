//! The protocol-neutral operations that cross shards.
//!
//! A connection lives on the shard that accepted it; a destination lives on the shard
//! its name hashes to. A protocol session turns frames into [`Request`]s addressed to
//! the destination's shard, and receives [`Event`]s (deliveries and completions) back.
//! Both travel over the shard mesh (`rt::channel`), so every type here is `Send`.

use std::sync::Arc;

use super::destination::Destination;
use super::message::MessageRef;
use crate::store::StoreError;

pub use crate::ShardId;

/// A connection, named broker-wide: the shard that owns it and a serial unique on
/// that shard for the life of the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    pub shard: ShardId,
    pub serial: u64,
}

/// A subscription (consumer), named broker-wide: its connection plus a number the
/// connection chose (not the client's `id` header, which may be any string).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubKey {
    pub conn: ConnId,
    pub sub: u64,
}

/// Where the completion of a request goes: a connection (a receipt, a flow-control
/// credit) or a shard (internal work such as a dead-letter move).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyTo {
    Conn(ConnId),
    Shard(ShardId),
}

/// Completion address of a request. The token is the requester's own number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    pub to: ReplyTo,
    pub token: u64,
}

/// How a consumer acknowledges. `Auto` consumers' messages are acknowledged by their
/// session once written to the socket; the others by the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckMode {
    Auto,
    /// Cumulative: acknowledging one message acknowledges every earlier delivery of the
    /// subscription. The session expands it into the individual sequence numbers.
    Client,
    ClientIndividual,
}

/// A durable topic subscription's identity (JMS client id + subscription name).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DurableName {
    pub client_id: String,
    pub name: String,
}

/// Everything a consumer asks for when it subscribes.
#[derive(Clone, Debug)]
pub struct SubscribeSpec {
    pub destination: Destination,
    pub ack: AckMode,
    /// Maximum unacknowledged deliveries in flight to this consumer. 0: nothing is
    /// dispatched until [`Request::SetPrefetch`] raises it (a JMS pull consumer).
    pub prefetch: u32,
    pub durable: Option<DurableName>,
    pub selector: Option<String>,
    /// The owner connection of a temporary destination, when subscribing creates it.
    pub temp_owner: Option<ConnId>,
    /// ActiveMQ's exclusive consumer: alone receives the queue while attached.
    pub exclusive: bool,
    /// ActiveMQ's consumer priority (higher first; JMS clients send 0 by default).
    pub priority: i8,
}

/// One operation inside a transaction; buffered by the session until COMMIT.
#[derive(Clone, Debug)]
pub enum TxOp {
    Send(MessageRef),
    Ack {
        sub: SubKey,
        destination: Destination,
        seqs: Vec<u64>,
    },
}

/// A globally unique transaction id for a transaction that spans shards: the
/// coordinator shard's journal records the outcome under it.
pub type GlobalTxId = u128;

/// A request to the shard that owns a destination (or, for connection-wide requests,
/// to every shard).
#[derive(Debug)]
pub enum Request {
    /// Store and dispatch a message. The reply comes when it is safe to confirm
    /// (durable, for a persistent message) and doubles as producer flow control.
    Send { msg: MessageRef, reply: Reply },
    Subscribe {
        sub: SubKey,
        spec: SubscribeSpec,
        reply: Reply,
    },
    /// Browse queue `destination` (a JMS `QueueBrowser`, a STOMP `browser:true`
    /// subscription): the messages on it now (sequence numbers already assigned), in
    /// queue order, matching `selector`, not expired, including those delivered to other
    /// consumers and not yet acknowledged, go to `sub` as deliveries that change nothing;
    /// then [`Event::BrowseEnd`]. Nothing is journaled. At most `prefetch` deliveries are
    /// unacknowledged at a time: `Ack` (and `Nack`) of a browsed message only return its
    /// credit, `SetPrefetch` changes the window, `Unsubscribe` (or the connection
    /// closing) ends the browse. The reply comes once the browse is set up (or refused:
    /// a bad selector, not a queue).
    Browse {
        sub: SubKey,
        destination: Destination,
        selector: Option<String>,
        prefetch: u32,
        reply: Reply,
    },
    /// Remove a consumer. `remove_durable` also deletes its durable subscription. Its
    /// unacknowledged deliveries go back flagged redelivered, except `undelivered`: the
    /// ones its client never handed to the application (a JMS consumer's prefetched
    /// messages past RemoveInfo's lastDeliveredSequenceId), which go back as they were.
    ///
    /// A wildcard subscription (its pattern sent to every shard) is removed by one
    /// `Unsubscribe` naming the pattern on every shard. Sequence numbers are per
    /// destination, so its `undelivered` go first, one `Unsubscribe` per destination
    /// that has some, naming that destination (not the pattern): that detaches only the
    /// subscription's part on that destination.
    Unsubscribe {
        sub: SubKey,
        destination: Destination,
        remove_durable: Option<DurableName>,
        undelivered: Vec<u64>,
        reply: Reply,
    },
    /// Acknowledge deliveries (by the per-destination sequence numbers the deliveries
    /// carried). The reply comes when the acknowledgement is durable.
    Ack {
        sub: SubKey,
        destination: Destination,
        seqs: Vec<u64>,
        reply: Option<Reply>,
    },
    /// Refuse deliveries: they go to the dead-letter queue, as ActiveMQ does for NACK.
    Nack {
        sub: SubKey,
        destination: Destination,
        seqs: Vec<u64>,
        reply: Option<Reply>,
    },
    /// A transaction whose operations all live on this shard: one journal record.
    Commit { ops: Vec<TxOp>, reply: Reply },
    /// Phase one of a transaction spanning shards: journal the operations, hold them.
    Prepare {
        gtx: GlobalTxId,
        ops: Vec<TxOp>,
        reply: Reply,
    },
    /// The coordinator (the connection's own shard) journals the outcome.
    RecordOutcome {
        gtx: GlobalTxId,
        commit: bool,
        reply: Reply,
    },
    /// Phase two: apply (or drop) a prepared transaction.
    Resolve {
        gtx: GlobalTxId,
        commit: bool,
        reply: Reply,
    },
    /// Every participant has resolved: the coordinator may let go of the outcome.
    ForgetOutcome { gtx: GlobalTxId },
    /// After a restart, a participant asks how a prepared transaction ended: the
    /// reply is `Ok` only from the shard whose journal holds a commit outcome.
    QueryOutcome { gtx: GlobalTxId, reply: Reply },
    /// Every request sent before this one from the same shard has been processed and
    /// is durable (used for receipts on frames that touch no destination).
    Barrier { reply: Reply },
    /// The connection is gone: drop its consumers (their unacknowledged deliveries go
    /// back to their queues, flagged redelivered) and its temporary destinations.
    ConnectionClosed { conn: ConnId },
    /// Change a consumer's prefetch: a JMS window extended by DELIVERED acks, a
    /// failover client restoring it (ConsumerControl), a pull consumer's credit. 0
    /// stops dispatch to it; deliveries already made stay.
    SetPrefetch { sub: SubKey, prefetch: u32 },
    /// Deliveries to `sub` of `bytes` (their messages' `memory_size`) are written to
    /// the connection's socket: `maxPendingOutput` room for more (posted by the
    /// connection loop, `net::conn`).
    Written { sub: SubKey, bytes: u64 },
    /// Create temporary destination `destination` for connection `owner` (JMS creates
    /// one before any consumer exists; it dies with `owner`). Replies once it exists.
    CreateTemp {
        destination: Destination,
        owner: ConnId,
        reply: Reply,
    },
    /// Delete `owner`'s temporary destination and its messages; its consumers (if
    /// any) are detached.
    DeleteTemp {
        destination: Destination,
        owner: ConnId,
        reply: Reply,
    },
}

/// Why a request failed, as the client will be told.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BrokerError {
    #[error("durable subscription {0} is already active on another connection")]
    DurableInUse(String),
    #[error("the journal failed: {0}")]
    Journal(#[source] SharedStoreError),
    /// A journaled message could not be read back (to move it to the dead-letter
    /// queue). Told to the client as a journal failure.
    #[error("the journal failed: unreadable message")]
    UnreadableMessage,
    #[error("temporary destination {0} does not exist (its connection closed)")]
    NoSuchTempDestination(String),
    #[error("transaction {0} is not prepared on this shard")]
    UnknownTransaction(String),
    #[error("invalid selector: {0}")]
    InvalidSelector(String),
    /// A durable subscription on a wildcard topic (ActiveMQ has them; Tandem does not).
    #[error("durable subscriptions on a wildcard topic are not supported: {0}")]
    WildcardDurable(String),
    #[error("shard {0} is gone")]
    ShardGone(usize),
    /// An administrative operation named a queue this broker does not have.
    #[error("no such destination: {0}")]
    NoSuchDestination(String),
    /// An administrative operation that only applies to (non-temporary) queues.
    #[error("not a queue: {0}")]
    NotAQueue(String),
    /// A queue delete refused because the queue is in use (it has consumers, or
    /// prepared transactions hold its messages); the text says which.
    #[error("{0}")]
    QueueInUse(String),
    /// The shard does not serve clients (a slave, or a master still starting).
    #[error("this broker is not serving (slave, or still starting)")]
    NotServing,
    /// The journal's disk is full: persistent sends are refused until space is free
    /// (ActiveMQ's store limit answer).
    #[error("persistent store is full ({0}): send refused until disk space is freed")]
    StoreFull(String),
    /// A client named a destination the broker does not have while it already holds
    /// `maxDestinations`.
    #[error("destination {name} not created: the broker holds maxDestinations ({limit})")]
    TooManyDestinations { name: String, limit: usize },
    /// A send's scheduling properties (`AMQ_SCHEDULED_*`) cannot be used; the text
    /// says why.
    #[error("invalid scheduled message: {0}")]
    BadSchedule(String),
    /// A scheduled send refused while the broker holds `maxScheduledMessages` jobs.
    #[error("scheduled message refused: the broker holds maxScheduledMessages ({limit})")]
    TooManyScheduled { limit: u64 },
}

impl From<StoreError> for BrokerError {
    fn from(e: StoreError) -> BrokerError {
        BrokerError::Journal(SharedStoreError(Arc::new(e)))
    }
}

/// The store's typed error inside a [`BrokerError`]: shared, because a
/// `BrokerError` is `Clone` (one failure answers every reply waiting on it) and
/// `Send` (it crosses the mesh), which [`StoreError`] (it holds an `io::Error`) is
/// not. Displays as the store error does; two are equal when they say the same thing,
/// which is all a client or a test can tell apart.
#[derive(Clone, Debug)]
pub struct SharedStoreError(pub Arc<StoreError>);

impl SharedStoreError {
    /// The store's error.
    pub fn store_error(&self) -> &StoreError {
        &self.0
    }
}

impl std::fmt::Display for SharedStoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&*self.0, f)
    }
}

impl std::error::Error for SharedStoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl PartialEq for SharedStoreError {
    fn eq(&self, other: &SharedStoreError) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.to_string() == other.0.to_string()
    }
}

impl Eq for SharedStoreError {}

/// A message delivered to a consumer.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub sub: SubKey,
    pub msg: MessageRef,
    /// The destination's sequence number: what an acknowledgement names.
    pub seq: u64,
    /// The destination it came from (for a durable subscription, the topic).
    pub destination: Destination,
    pub redelivered: bool,
    pub redelivery_count: u32,
}

/// What a shard sends back to a connection's shard (or to itself).
#[derive(Debug)]
pub enum Event {
    Deliver(Delivery),
    /// Browser `sub` has had every message of its snapshot of `destination` (see
    /// [`Request::Browse`]); it follows the last of them.
    BrowseEnd {
        sub: SubKey,
        destination: Destination,
    },
    Done {
        reply: Reply,
        result: Result<(), BrokerError>,
    },
    /// Close connection `conn`: its client reconnected (failover) on another socket
    /// with the same client connection id, and the new one takes over (ActiveMQ stops
    /// the stale twin the same way). Its consumers' messages go back to their queues.
    Evict {
        conn: ConnId,
    },
}

impl Event {
    /// The shard that must handle this event.
    pub fn target_shard(&self) -> ShardId {
        let to = match self {
            Event::Deliver(d) => return d.sub.conn.shard,
            Event::Evict { conn } => return conn.shard,
            Event::BrowseEnd { sub, .. } => return sub.conn.shard,
            Event::Done { reply, .. } => reply.to,
        };
        match to {
            ReplyTo::Conn(c) => c.shard,
            ReplyTo::Shard(s) => s,
        }
    }
}

/// What crosses the shard mesh.
#[derive(Debug)]
pub enum MeshMsg {
    Request(Request),
    Event(Event),
}
