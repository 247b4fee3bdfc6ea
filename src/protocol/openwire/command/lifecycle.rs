//! The commands that create and remove broker-side state: the broker and connection
//! handshake (BrokerInfo, ConnectionInfo), sessions, consumers, producers, temporary
//! destinations, durable subscriptions, RemoveInfo and ShutdownInfo. Layout notation:
//! [`super`].

use super::super::error::OpenWireError;
use super::super::ids::{
    self, BrokerId, ConnectionId, ConsumerId, Destination, ProducerId, SessionId,
};
use super::super::primitives::{Reader, Structure, Writer};
use super::{Header, BROKER_INFO};

type Result<T> = std::result::Result<T, OpenWireError>;

byte_enum!(
    /// `DestinationInfo.operationType`.
    DestinationOperation, "destination operation" {
        Add = 0,
        Remove = 1,
    }
);

/// BrokerInfo (2), B→C right after the WireFormatInfo. Always send one with a broker id
/// (the client's `getBrokerName()` and XA wait for it).
///
/// H · N(BrokerId) brokerId · S brokerURL · A(BrokerInfo) peerBrokerInfos · S brokerName ·
/// B slaveBroker · B masterBroker · B faultTolerantConfiguration · B duplexConnection (v2+) ·
/// B networkConnection (v2+) · i64 connectionId (v2+) · S brokerUploadUrl (v3+) ·
/// S networkProperties (v3+)
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BrokerInfo {
    pub header: Header,
    pub broker_id: Option<BrokerId>,
    pub broker_url: Option<String>,
    pub peer_broker_infos: Option<Vec<BrokerInfo>>,
    pub broker_name: Option<String>,
    pub slave_broker: bool,
    pub master_broker: bool,
    /// True turns off the client's optimizeAcknowledge.
    pub fault_tolerant_configuration: bool,
    pub duplex_connection: bool,
    pub network_connection: bool,
    pub connection_id: i64,
    pub broker_upload_url: Option<String>,
    pub network_properties: Option<String>,
}

impl BrokerInfo {
    pub(super) fn read(r: &mut Reader) -> Result<Self> {
        Ok(BrokerInfo {
            header: Header::read(r)?,
            broker_id: r.nested()?,
            broker_url: r.string()?,
            peer_broker_infos: r.array()?,
            broker_name: r.string()?,
            slave_broker: r.bool()?,
            master_broker: r.bool()?,
            fault_tolerant_configuration: r.bool()?,
            duplex_connection: r.since(2, false, Reader::bool)?,
            network_connection: r.since(2, false, Reader::bool)?,
            connection_id: r.since(2, 0, Reader::i64)?,
            broker_upload_url: r.since(3, None, Reader::string)?,
            network_properties: r.since(3, None, Reader::string)?,
        })
    }

    pub(super) fn write(&self, w: &mut Writer) -> Result<()> {
        self.header.write(w);
        w.nested(self.broker_id.as_ref())?;
        w.string(self.broker_url.as_deref())?;
        w.array(self.peer_broker_infos.as_deref())?;
        w.string(self.broker_name.as_deref())?;
        w.bool(self.slave_broker);
        w.bool(self.master_broker);
        w.bool(self.fault_tolerant_configuration);
        if w.has(2) {
            w.bool(self.duplex_connection);
            w.bool(self.network_connection);
            w.i64(self.connection_id);
        }
        if w.has(3) {
            w.string(self.broker_upload_url.as_deref())?;
            w.string(self.network_properties.as_deref())?;
        }
        Ok(())
    }
}

impl Structure for BrokerInfo {
    const WHAT: &'static str = "BrokerInfo";
    fn accepts(type_id: u8) -> bool {
        type_id == BROKER_INFO
    }
    fn type_id(&self) -> u8 {
        BROKER_INFO
    }
    fn read_body(_: u8, r: &mut Reader) -> Result<Self> {
        BrokerInfo::read(r)
    }
    fn write_body(&self, w: &mut Writer) -> Result<()> {
        self.write(w)
    }
}

/// ConnectionInfo (3), C→B, sync. Also re-sent verbatim (same ids, original commandId,
/// `failover_reconnect`) when a failover client reconnects.
///
/// H · N(ConnectionId) connectionId · S clientId · S password · S userName ·
/// A(BrokerId) brokerPath · B brokerMasterConnector · B manageable · B clientMaster (v2+,
/// else true) · B faultTolerant (v6+) · B failoverReconnect (v6+) · S clientIp (v8+)
///
/// `Debug` does not print the password.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct ConnectionInfo {
    pub header: Header,
    pub connection_id: Option<ConnectionId>,
    /// The user's client id or a generated `ID:host-port-ts-n:m`.
    pub client_id: Option<String>,
    pub password: Option<String>,
    pub user_name: Option<String>,
    pub broker_path: Option<Vec<BrokerId>>,
    pub broker_master_connector: bool,
    pub manageable: bool,
    pub client_master: bool,
    /// The client runs under `failover:`.
    pub fault_tolerant: bool,
    /// This is a failover replay.
    pub failover_reconnect: bool,
    /// Null from clients; the broker fills it in.
    pub client_ip: Option<String>,
}

impl std::fmt::Debug for ConnectionInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionInfo")
            .field("header", &self.header)
            .field("connection_id", &self.connection_id)
            .field("client_id", &self.client_id)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("user_name", &self.user_name)
            .field("broker_path", &self.broker_path)
            .field("broker_master_connector", &self.broker_master_connector)
            .field("manageable", &self.manageable)
            .field("client_master", &self.client_master)
            .field("fault_tolerant", &self.fault_tolerant)
            .field("failover_reconnect", &self.failover_reconnect)
            .field("client_ip", &self.client_ip)
            .finish()
    }
}

impl ConnectionInfo {
    pub(super) fn read(r: &mut Reader) -> Result<Self> {
        Ok(ConnectionInfo {
            header: Header::read(r)?,
            connection_id: r.nested()?,
            client_id: r.string()?,
            password: r.string()?,
            user_name: r.string()?,
            broker_path: r.array()?,
            broker_master_connector: r.bool()?,
            manageable: r.bool()?,
            client_master: r.since(2, true, Reader::bool)?,
            fault_tolerant: r.since(6, false, Reader::bool)?,
            failover_reconnect: r.since(6, false, Reader::bool)?,
            client_ip: r.since(8, None, Reader::string)?,
        })
    }

    pub(super) fn write(&self, w: &mut Writer) -> Result<()> {
        self.header.write(w);
        w.nested(self.connection_id.as_ref())?;
        w.string(self.client_id.as_deref())?;
        w.string(self.password.as_deref())?;
        w.string(self.user_name.as_deref())?;
        w.array(self.broker_path.as_deref())?;
        w.bool(self.broker_master_connector);
        w.bool(self.manageable);
        if w.has(2) {
            w.bool(self.client_master);
        }
        if w.has(6) {
            w.bool(self.fault_tolerant);
            w.bool(self.failover_reconnect);
        }
        if w.has(8) {
            w.string(self.client_ip.as_deref())?;
        }
        Ok(())
    }
}

/// SessionInfo (4), C→B, async.
///
/// H · N(SessionId) sessionId
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SessionInfo {
    pub header: Header,
    pub session_id: Option<SessionId>,
}

impl SessionInfo {
    pub(super) fn read(r: &mut Reader) -> Result<Self> {
        Ok(SessionInfo {
            header: Header::read(r)?,
            session_id: r.nested()?,
        })
    }

    pub(super) fn write(&self, w: &mut Writer) -> Result<()> {
        self.header.write(w);
        w.nested(self.session_id.as_ref())
    }
}

/// ConsumerInfo (5), C→B, sync. A durable topic subscriber has a `subscription_name`
/// (keyed with `client_id`); the advisory consumer is session -1.
///
/// H · N(ConsumerId) consumerId · B browser · N(dest) destination · i32 prefetchSize ·
/// i32 maximumPendingMessageLimit · B dispatchAsync · S selector · S clientId ·
/// S subscriptionName · B noLocal · B exclusive · B retroactive · Y priority ·
/// A(BrokerId) brokerPath · N additionalPredicate · B networkSubscription ·
/// B optimizedAcknowledge · B noRangeAcks · A(ConsumerId) networkConsumerPath (v4+)
///
/// `S clientId` (between selector and subscriptionName) is v10+; before, a durable
/// subscription belongs to the connection's client id.
///
/// `additionalPredicate` is a broker-network filter, always null from a client; it has
/// no field here: a non-null one is refused on decode and null is always written.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConsumerInfo {
    pub header: Header,
    pub consumer_id: Option<ConsumerId>,
    pub browser: bool,
    pub destination: Option<Destination>,
    /// 0 = pull consumer (MessagePull).
    pub prefetch_size: i32,
    pub maximum_pending_message_limit: i32,
    pub dispatch_async: bool,
    /// JMS SQL selector text.
    pub selector: Option<String>,
    pub client_id: Option<String>,
    pub subscription_name: Option<String>,
    pub no_local: bool,
    pub exclusive: bool,
    pub retroactive: bool,
    pub priority: i8,
    pub broker_path: Option<Vec<BrokerId>>,
    pub network_subscription: bool,
    pub optimized_acknowledge: bool,
    pub no_range_acks: bool,
    pub network_consumer_path: Option<Vec<ConsumerId>>,
}

/// The "any object" slot of `additionalPredicate`: only null is accepted.
struct NoPredicate;

impl Structure for NoPredicate {
    const WHAT: &'static str = "a null additionalPredicate (network filters are unsupported)";
    fn accepts(_: u8) -> bool {
        false
    }
    fn type_id(&self) -> u8 {
        0
    }
    fn read_body(type_id: u8, _: &mut Reader) -> Result<Self> {
        Err(OpenWireError::UnexpectedType {
            expected: Self::WHAT,
            found: type_id,
        })
    }
    fn write_body(&self, _: &mut Writer) -> Result<()> {
        Ok(())
    }
}

impl ConsumerInfo {
    pub(super) fn read(r: &mut Reader) -> Result<Self> {
        Ok(ConsumerInfo {
            header: Header::read(r)?,
            consumer_id: r.nested()?,
            browser: r.bool()?,
            destination: r.nested()?,
            prefetch_size: r.i32()?,
            maximum_pending_message_limit: r.i32()?,
            dispatch_async: r.bool()?,
            selector: r.string()?,
            client_id: r.since(10, None, Reader::string)?,
            subscription_name: r.string()?,
            no_local: r.bool()?,
            exclusive: r.bool()?,
            retroactive: r.bool()?,
            priority: r.u8()? as i8,
            broker_path: r.array()?,
            // additionalPredicate (must be null), then networkSubscription.
            network_subscription: r.nested::<NoPredicate>().and_then(|_| r.bool())?,
            optimized_acknowledge: r.bool()?,
            no_range_acks: r.bool()?,
            network_consumer_path: r.since(4, None, Reader::array)?,
        })
    }

    pub(super) fn write(&self, w: &mut Writer) -> Result<()> {
        self.header.write(w);
        w.nested(self.consumer_id.as_ref())?;
        w.bool(self.browser);
        w.nested(self.destination.as_ref())?;
        w.i32(self.prefetch_size);
        w.i32(self.maximum_pending_message_limit);
        w.bool(self.dispatch_async);
        w.string(self.selector.as_deref())?;
        if w.has(10) {
            w.string(self.client_id.as_deref())?;
        }
        w.string(self.subscription_name.as_deref())?;
        w.bool(self.no_local);
        w.bool(self.exclusive);
        w.bool(self.retroactive);
        w.u8(self.priority as u8);
        w.array(self.broker_path.as_deref())?;
        w.nested::<NoPredicate>(None)?;
        w.bool(self.network_subscription);
        w.bool(self.optimized_acknowledge);
        w.bool(self.no_range_acks);
        if w.has(4) {
            w.array(self.network_consumer_path.as_deref())?;
        }
        Ok(())
    }
}

/// ProducerInfo (6), C→B, sync.
///
/// H · N(ProducerId) producerId · N(dest) destination (null: anonymous producer) ·
/// A(BrokerId) brokerPath · B dispatchAsync (v2+) · i32 windowSize (v3+)
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProducerInfo {
    pub header: Header,
    pub producer_id: Option<ProducerId>,
    pub destination: Option<Destination>,
    pub broker_path: Option<Vec<BrokerId>>,
    pub dispatch_async: bool,
    /// > 0: the client expects ProducerAcks (flow control window in bytes).
    pub window_size: i32,
}

impl ProducerInfo {
    pub(super) fn read(r: &mut Reader) -> Result<Self> {
        Ok(ProducerInfo {
            header: Header::read(r)?,
            producer_id: r.nested()?,
            destination: r.nested()?,
            broker_path: r.array()?,
            dispatch_async: r.since(2, false, Reader::bool)?,
            window_size: r.since(3, 0, Reader::i32)?,
        })
    }

    pub(super) fn write(&self, w: &mut Writer) -> Result<()> {
        self.header.write(w);
        w.nested(self.producer_id.as_ref())?;
        w.nested(self.destination.as_ref())?;
        w.array(self.broker_path.as_deref())?;
        if w.has(2) {
            w.bool(self.dispatch_async);
        }
        if w.has(3) {
            w.i32(self.window_size);
        }
        Ok(())
    }
}

/// DestinationInfo (8), C→B sync (temp destination create/delete); B→C only inside
/// advisory messages.
///
/// H · N(ConnectionId) connectionId · N(dest) destination · Y operationType ·
/// i64 timeout · A(BrokerId) brokerPath
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationInfo {
    pub header: Header,
    pub connection_id: Option<ConnectionId>,
    pub destination: Option<Destination>,
    pub operation: DestinationOperation,
    pub timeout: i64,
    pub broker_path: Option<Vec<BrokerId>>,
}

impl DestinationInfo {
    pub(super) fn read(r: &mut Reader) -> Result<Self> {
        Ok(DestinationInfo {
            header: Header::read(r)?,
            connection_id: r.nested()?,
            destination: r.nested()?,
            operation: DestinationOperation::read(r)?,
            timeout: r.i64()?,
            broker_path: r.array()?,
        })
    }

    pub(super) fn write(&self, w: &mut Writer) -> Result<()> {
        self.header.write(w);
        w.nested(self.connection_id.as_ref())?;
        w.nested(self.destination.as_ref())?;
        w.u8(self.operation as u8);
        w.i64(self.timeout);
        w.array(self.broker_path.as_deref())
    }
}

/// RemoveSubscriptionInfo (9), C→B, sync (`session.unsubscribe(name)`).
///
/// H · N(ConnectionId) connectionId · S subscriptionName · S clientId
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RemoveSubscriptionInfo {
    pub header: Header,
    pub connection_id: Option<ConnectionId>,
    pub subscription_name: Option<String>,
    pub client_id: Option<String>,
}

impl RemoveSubscriptionInfo {
    pub(super) fn read(r: &mut Reader) -> Result<Self> {
        Ok(RemoveSubscriptionInfo {
            header: Header::read(r)?,
            connection_id: r.nested()?,
            subscription_name: r.string()?,
            client_id: r.string()?,
        })
    }

    pub(super) fn write(&self, w: &mut Writer) -> Result<()> {
        self.header.write(w);
        w.nested(self.connection_id.as_ref())?;
        w.string(self.subscription_name.as_deref())?;
        w.string(self.client_id.as_deref())
    }
}

/// ShutdownInfo (11), C→B, async: the last frame before the client closes. H only.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShutdownInfo {
    pub header: Header,
}

impl ShutdownInfo {
    pub(super) fn read(r: &mut Reader) -> Result<Self> {
        Ok(ShutdownInfo {
            header: Header::read(r)?,
        })
    }

    pub(super) fn write(&self, w: &mut Writer) -> Result<()> {
        self.header.write(w);
        Ok(())
    }
}

/// What a RemoveInfo removes (Java's broker accepts only these four).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RemoveTarget {
    /// Sync; cascades to everything of the connection.
    Connection(ConnectionId),
    Session(SessionId),
    Consumer(ConsumerId),
    Producer(ProducerId),
}

impl Structure for RemoveTarget {
    const WHAT: &'static str = "ConnectionId, SessionId, ConsumerId or ProducerId";

    fn accepts(type_id: u8) -> bool {
        matches!(
            type_id,
            ids::CONNECTION_ID | ids::SESSION_ID | ids::CONSUMER_ID | ids::PRODUCER_ID
        )
    }

    fn type_id(&self) -> u8 {
        match self {
            RemoveTarget::Connection(id) => id.type_id(),
            RemoveTarget::Session(id) => id.type_id(),
            RemoveTarget::Consumer(id) => id.type_id(),
            RemoveTarget::Producer(id) => id.type_id(),
        }
    }

    fn read_body(type_id: u8, r: &mut Reader) -> Result<Self> {
        Ok(match type_id {
            ids::CONNECTION_ID => RemoveTarget::Connection(ConnectionId::read_body(type_id, r)?),
            ids::SESSION_ID => RemoveTarget::Session(SessionId::read_body(type_id, r)?),
            ids::CONSUMER_ID => RemoveTarget::Consumer(ConsumerId::read_body(type_id, r)?),
            _ => RemoveTarget::Producer(ProducerId::read_body(type_id, r)?),
        })
    }

    fn write_body(&self, w: &mut Writer) -> Result<()> {
        match self {
            RemoveTarget::Connection(id) => id.write_body(w),
            RemoveTarget::Session(id) => id.write_body(w),
            RemoveTarget::Consumer(id) => id.write_body(w),
            RemoveTarget::Producer(id) => id.write_body(w),
        }
    }
}

/// RemoveInfo (12), C→B. Connection: sync; session/consumer/producer: async.
///
/// H · N(id) objectId · i64 lastDeliveredSequenceId (v5+, else
/// [`RemoveInfo::UNKNOWN_DELIVERED`])
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RemoveInfo {
    pub header: Header,
    pub object_id: Option<RemoveTarget>,
    /// brokerSequenceId of the last message handed to the application, or
    /// [`RemoveInfo::NOTHING_DELIVERED`] / [`RemoveInfo::UNKNOWN_DELIVERED`].
    pub last_delivered_sequence_id: i64,
}

impl RemoveInfo {
    /// Java `RemoveInfo.LAST_DELIVERED_UNSET`: nothing was delivered.
    pub const NOTHING_DELIVERED: i64 = -1;
    /// Java `LAST_DELIVERED_UNKNOWN`, the default: treat everything as delivered.
    pub const UNKNOWN_DELIVERED: i64 = -2;

    pub(super) fn read(r: &mut Reader) -> Result<Self> {
        Ok(RemoveInfo {
            header: Header::read(r)?,
            object_id: r.nested()?,
            last_delivered_sequence_id: r.since(5, RemoveInfo::UNKNOWN_DELIVERED, Reader::i64)?,
        })
    }

    pub(super) fn write(&self, w: &mut Writer) -> Result<()> {
        self.header.write(w);
        w.nested(self.object_id.as_ref())?;
        if w.has(5) {
            w.i64(self.last_delivered_sequence_id);
        }
        Ok(())
    }
}
