//! Every OpenWire command a JMS 1.1 client sends or expects, with its exact v12 loose
//! layout (Java `v12/*Marshaller.looseMarshal`, checked against captured 5.17.2 traffic).
//! A field marked (vN+) is only on the wire from version N on; before, it is not
//! written and decodes to Java's default (the table in [`super::codec`]).
//!
//! Notation: **H** = BaseCommand header (`i32 commandId ; bool responseRequired`),
//! N(x) = nested object, S = nullable string, BS = nullable byte sequence, A(x) = object
//! array, T = throwable, i32/i64 = int/long, B = bool, Y = byte (see
//! [`super::primitives`]). Messages (types 23–29) are in [`super::message`] and
//! WireFormatInfo (type 1) in [`super::wireformat`].
//!
//! Every nullable field on the wire is an `Option` here, so any frame that decodes
//! re-encodes to the same bytes (modulo non-0/1 booleans); the connection loop decides
//! what a missing id means (typically an ExceptionResponse).

use bytes::Bytes;

use super::error::OpenWireError;
use super::ids::{
    self, BrokerId, ConnectionId, ConsumerId, Destination, MessageId, ProducerId, SessionId,
    TransactionId,
};
use super::message::Message;
use super::primitives::{Reader, Structure, Throwable, Writer};
use super::wireformat::WireFormatInfo;

type Result<T> = std::result::Result<T, OpenWireError>;

pub(crate) const WIRE_FORMAT_INFO: u8 = 1;
pub(crate) const BROKER_INFO: u8 = 2;
pub(crate) const CONNECTION_INFO: u8 = 3;
pub(crate) const SESSION_INFO: u8 = 4;
pub(crate) const CONSUMER_INFO: u8 = 5;
pub(crate) const PRODUCER_INFO: u8 = 6;
pub(crate) const TRANSACTION_INFO: u8 = 7;
pub(crate) const DESTINATION_INFO: u8 = 8;
pub(crate) const REMOVE_SUBSCRIPTION_INFO: u8 = 9;
pub(crate) const KEEP_ALIVE_INFO: u8 = 10;
pub(crate) const SHUTDOWN_INFO: u8 = 11;
pub(crate) const REMOVE_INFO: u8 = 12;
pub(crate) const CONTROL_COMMAND: u8 = 14;
pub(crate) const CONNECTION_ERROR: u8 = 16;
pub(crate) const CONSUMER_CONTROL: u8 = 17;
pub(crate) const CONNECTION_CONTROL: u8 = 18;
pub(crate) const PRODUCER_ACK: u8 = 19;
pub(crate) const MESSAGE_PULL: u8 = 20;
pub(crate) const MESSAGE_DISPATCH: u8 = 21;
pub(crate) const MESSAGE_ACK: u8 = 22;
// 23..=29: the message types, see super::message::MessageKind.
pub(crate) const BLOB_MESSAGE: u8 = 29;
pub(crate) const RESPONSE: u8 = 30;
pub(crate) const EXCEPTION_RESPONSE: u8 = 31;
pub(crate) const DATA_RESPONSE: u8 = 32;
pub(crate) const DATA_ARRAY_RESPONSE: u8 = 33;
pub(crate) const INTEGER_RESPONSE: u8 = 34;

/// The BaseCommand header every command but WireFormatInfo starts with.
///
/// `command_id` only correlates a Response (`correlation_id = command_id`); it is not
/// unique or increasing (frames injected below the client's correlator carry 0, failover
/// replays keep their original ids). Broker-originated frames may use 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Header {
    pub command_id: i32,
    /// The sender waits for a Response or ExceptionResponse; never answer when false.
    pub response_required: bool,
}

impl Header {
    pub fn new(command_id: i32, response_required: bool) -> Header {
        Header {
            command_id,
            response_required,
        }
    }

    pub(crate) fn read(r: &mut Reader) -> Result<Header> {
        Ok(Header {
            command_id: r.i32()?,
            response_required: r.bool()?,
        })
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.i32(self.command_id);
        w.bool(self.response_required);
    }
}

/// Defines a byte-valued enum that refuses unknown values on decode.
macro_rules! byte_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($(#[$vmeta:meta])* $variant:ident = $value:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant = $value,)*
        }

        impl $name {
            pub fn from_byte(value: u8) -> Option<$name> {
                match value {
                    $($value => Some($name::$variant),)*
                    _ => None,
                }
            }

            fn read(r: &mut Reader) -> Result<$name> {
                let value = r.u8()?;
                $name::from_byte(value).ok_or(OpenWireError::InvalidEnum { what: $what, value })
            }
        }
    };
}

byte_enum!(
    /// `MessageAck.ackType`: what the ack asks of the broker (OPENWIRE.md §3.3).
    AckType, "ack type" {
        /// Handed to the application, not acked: only widens the prefetch window.
        Delivered = 0,
        /// Dead-letter firstMessageId..lastMessageId (`poison_cause` says why).
        Poison = 1,
        /// Ack every dispatched message of the consumer up to lastMessageId.
        Standard = 2,
        /// Informational: redelivered, not yet poison.
        Redelivered = 3,
        /// Ack lastMessageId only.
        Individual = 4,
        /// A durable subscription's selector did not match.
        Unmatched = 5,
        /// The client found the range expired.
        Expired = 6,
    }
);

byte_enum!(
    /// `TransactionInfo.type`.
    TransactionType, "transaction type" {
        Begin = 0,
        /// XA; answered with an IntegerResponse.
        Prepare = 1,
        CommitOnePhase = 2,
        CommitTwoPhase = 3,
        Rollback = 4,
        /// XA; answered with a DataArrayResponse of XA transaction ids.
        Recover = 5,
        Forget = 6,
        End = 7,
    }
);

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
    fn read(r: &mut Reader) -> Result<Self> {
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

    fn write(&self, w: &mut Writer) -> Result<()> {
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
    fn read(r: &mut Reader) -> Result<Self> {
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

    fn write(&self, w: &mut Writer) -> Result<()> {
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
    fn read(r: &mut Reader) -> Result<Self> {
        Ok(SessionInfo {
            header: Header::read(r)?,
            session_id: r.nested()?,
        })
    }

    fn write(&self, w: &mut Writer) -> Result<()> {
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
    fn read(r: &mut Reader) -> Result<Self> {
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

    fn write(&self, w: &mut Writer) -> Result<()> {
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
    fn read(r: &mut Reader) -> Result<Self> {
        Ok(ProducerInfo {
            header: Header::read(r)?,
            producer_id: r.nested()?,
            destination: r.nested()?,
            broker_path: r.array()?,
            dispatch_async: r.since(2, false, Reader::bool)?,
            window_size: r.since(3, 0, Reader::i32)?,
        })
    }

    fn write(&self, w: &mut Writer) -> Result<()> {
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

/// TransactionInfo (7), C→B. BEGIN is async; the rest are sync.
///
/// H · N(ConnectionId) connectionId · N(TransactionId) transactionId · Y type
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionInfo {
    pub header: Header,
    pub connection_id: Option<ConnectionId>,
    pub transaction_id: Option<TransactionId>,
    pub transaction_type: TransactionType,
}

impl TransactionInfo {
    fn read(r: &mut Reader) -> Result<Self> {
        Ok(TransactionInfo {
            header: Header::read(r)?,
            connection_id: r.nested()?,
            transaction_id: r.nested()?,
            transaction_type: TransactionType::read(r)?,
        })
    }

    fn write(&self, w: &mut Writer) -> Result<()> {
        self.header.write(w);
        w.nested(self.connection_id.as_ref())?;
        w.nested(self.transaction_id.as_ref())?;
        w.u8(self.transaction_type as u8);
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
    fn read(r: &mut Reader) -> Result<Self> {
        Ok(DestinationInfo {
            header: Header::read(r)?,
            connection_id: r.nested()?,
            destination: r.nested()?,
            operation: DestinationOperation::read(r)?,
            timeout: r.i64()?,
            broker_path: r.array()?,
        })
    }

    fn write(&self, w: &mut Writer) -> Result<()> {
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
    fn read(r: &mut Reader) -> Result<Self> {
        Ok(RemoveSubscriptionInfo {
            header: Header::read(r)?,
            connection_id: r.nested()?,
            subscription_name: r.string()?,
            client_id: r.string()?,
        })
    }

    fn write(&self, w: &mut Writer) -> Result<()> {
        self.header.write(w);
        w.nested(self.connection_id.as_ref())?;
        w.string(self.subscription_name.as_deref())?;
        w.string(self.client_id.as_deref())
    }
}

/// KeepAliveInfo (10), both ways. H only. Answer it (with `response_required` false)
/// only if it has `response_required`; the client never sets it by default.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeepAliveInfo {
    pub header: Header,
}

/// ShutdownInfo (11), C→B, async: the last frame before the client closes. H only.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShutdownInfo {
    pub header: Header,
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

    fn read(r: &mut Reader) -> Result<Self> {
        Ok(RemoveInfo {
            header: Header::read(r)?,
            object_id: r.nested()?,
            last_delivered_sequence_id: r.since(5, RemoveInfo::UNKNOWN_DELIVERED, Reader::i64)?,
        })
    }

    fn write(&self, w: &mut Writer) -> Result<()> {
        self.header.write(w);
        w.nested(self.object_id.as_ref())?;
        if w.has(5) {
            w.i64(self.last_delivered_sequence_id);
        }
        Ok(())
    }
}

/// ControlCommand (14), B→C, ignored by the client.
///
/// H · S command
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ControlCommand {
    pub header: Header,
    pub command: Option<String>,
}

impl ControlCommand {
    fn read(r: &mut Reader) -> Result<Self> {
        Ok(ControlCommand {
            header: Header::read(r)?,
            command: r.string()?,
        })
    }

    fn write(&self, w: &mut Writer) -> Result<()> {
        self.header.write(w);
        w.string(self.command.as_deref())
    }
}

/// ConnectionError (16), B→C: an async error for the client's ExceptionListener. It does
/// not close the connection.
///
/// H · T exception · N(ConnectionId) connectionId
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnectionError {
    pub header: Header,
    pub exception: Option<Throwable>,
    pub connection_id: Option<ConnectionId>,
}

impl ConnectionError {
    fn read(r: &mut Reader) -> Result<Self> {
        Ok(ConnectionError {
            header: Header::read(r)?,
            exception: r.throwable()?,
            connection_id: r.nested()?,
        })
    }

    fn write(&self, w: &mut Writer) -> Result<()> {
        self.header.write(w);
        w.throwable(self.exception.as_ref())?;
        w.nested(self.connection_id.as_ref())
    }
}

/// ConsumerControl (17). C→B after failover (restore `prefetch`, which the broker must
/// honour); B→C to change a consumer's prefetch or close it.
///
/// H · N(dest) destination (v6+) · B close · N(ConsumerId) consumerId · i32 prefetch ·
/// B flush (v2+) · B start (v2+) · B stop (v2+)
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConsumerControl {
    pub header: Header,
    pub destination: Option<Destination>,
    pub close: bool,
    pub consumer_id: Option<ConsumerId>,
    pub prefetch: i32,
    pub flush: bool,
    pub start: bool,
    pub stop: bool,
}

impl ConsumerControl {
    fn read(r: &mut Reader) -> Result<Self> {
        Ok(ConsumerControl {
            header: Header::read(r)?,
            destination: r.since(6, None, Reader::nested)?,
            close: r.bool()?,
            consumer_id: r.nested()?,
            prefetch: r.i32()?,
            flush: r.since(2, false, Reader::bool)?,
            start: r.since(2, false, Reader::bool)?,
            stop: r.since(2, false, Reader::bool)?,
        })
    }

    fn write(&self, w: &mut Writer) -> Result<()> {
        self.header.write(w);
        if w.has(6) {
            w.nested(self.destination.as_ref())?;
        }
        w.bool(self.close);
        w.nested(self.consumer_id.as_ref())?;
        w.i32(self.prefetch);
        if w.has(2) {
            w.bool(self.flush);
            w.bool(self.start);
            w.bool(self.stop);
        }
        Ok(())
    }
}

/// ConnectionControl (18). C→B from failover (`fault_tolerant`, commandId 0); B→C after a
/// ConnectionInfo (cluster hints; `connected_brokers`/`reconnect_to` steer failover).
///
/// H · B close · B exit · B faultTolerant · B resume · B suspend · S connectedBrokers (v6+,
/// else "") · S reconnectTo (v6+, else "") · B rebalanceConnection (v6+) · BS token (v8+)
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnectionControl {
    pub header: Header,
    pub close: bool,
    pub exit: bool,
    pub fault_tolerant: bool,
    pub resume: bool,
    pub suspend: bool,
    /// Comma-separated URIs the failover client prefers; "" for none.
    pub connected_brokers: Option<String>,
    /// Non-empty: the failover client replaces its URI list with this and reconnects.
    pub reconnect_to: Option<String>,
    pub rebalance_connection: bool,
    pub token: Option<Bytes>,
}

impl ConnectionControl {
    fn read(r: &mut Reader) -> Result<Self> {
        Ok(ConnectionControl {
            header: Header::read(r)?,
            close: r.bool()?,
            exit: r.bool()?,
            fault_tolerant: r.bool()?,
            resume: r.bool()?,
            suspend: r.bool()?,
            connected_brokers: r.since(6, Some(String::new()), Reader::string)?,
            reconnect_to: r.since(6, Some(String::new()), Reader::string)?,
            rebalance_connection: r.since(6, false, Reader::bool)?,
            token: r.since(8, None, Reader::byte_seq)?,
        })
    }

    fn write(&self, w: &mut Writer) -> Result<()> {
        self.header.write(w);
        w.bool(self.close);
        w.bool(self.exit);
        w.bool(self.fault_tolerant);
        w.bool(self.resume);
        w.bool(self.suspend);
        if w.has(6) {
            w.string(self.connected_brokers.as_deref())?;
            w.string(self.reconnect_to.as_deref())?;
            w.bool(self.rebalance_connection);
        }
        if w.has(8) {
            w.byte_seq(self.token.as_deref())?;
        }
        Ok(())
    }
}

/// ProducerAck (19), B→C: returns `size` bytes of a producer's window (only when its
/// ProducerInfo had `window_size > 0`).
///
/// H · N(ProducerId) producerId · i32 size. The type is v3+ (a v1/v2 client has no
/// producer window).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProducerAck {
    pub header: Header,
    pub producer_id: Option<ProducerId>,
    pub size: i32,
}

impl ProducerAck {
    fn read(r: &mut Reader) -> Result<Self> {
        Ok(ProducerAck {
            header: Header::read(r)?,
            producer_id: r.nested()?,
            size: r.i32()?,
        })
    }

    fn write(&self, w: &mut Writer) -> Result<()> {
        self.header.write(w);
        w.nested(self.producer_id.as_ref())?;
        w.i32(self.size);
        Ok(())
    }
}

/// MessagePull (20), C→B, async: a prefetch-0 consumer asks for one message. Answer with
/// a MessageDispatch, or a null one when `timeout` ≠ 0 expires (-1: at once; 0: wait).
///
/// H · N(ConsumerId) consumerId · N(dest) destination · i64 timeout · S correlationId (v3+) ·
/// N(MessageId) messageId (v3+). The type is v2+.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MessagePull {
    pub header: Header,
    pub consumer_id: Option<ConsumerId>,
    pub destination: Option<Destination>,
    pub timeout: i64,
    pub correlation_id: Option<String>,
    pub message_id: Option<MessageId>,
}

impl MessagePull {
    fn read(r: &mut Reader) -> Result<Self> {
        Ok(MessagePull {
            header: Header::read(r)?,
            consumer_id: r.nested()?,
            destination: r.nested()?,
            timeout: r.i64()?,
            correlation_id: r.since(3, None, Reader::string)?,
            message_id: r.since(3, None, Reader::nested)?,
        })
    }

    fn write(&self, w: &mut Writer) -> Result<()> {
        self.header.write(w);
        w.nested(self.consumer_id.as_ref())?;
        w.nested(self.destination.as_ref())?;
        w.i64(self.timeout);
        if w.has(3) {
            w.string(self.correlation_id.as_deref())?;
            w.nested(self.message_id.as_ref())?;
        }
        Ok(())
    }
}

/// MessageDispatch (21), B→C: one delivery. A null `message` means "end of browse" or
/// "pull timed out" (the real broker then also leaves `destination` null).
///
/// H · N(ConsumerId) consumerId · N(dest) destination · N(Message) message ·
/// i32 redeliveryCounter
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MessageDispatch {
    pub header: Header,
    pub consumer_id: Option<ConsumerId>,
    /// Echoed back in the ack: the concrete destination the message came from.
    pub destination: Option<Destination>,
    pub message: Option<Box<Message>>,
    /// Overwrites the message's own counter on the client.
    pub redelivery_counter: i32,
}

impl MessageDispatch {
    fn read(r: &mut Reader) -> Result<Self> {
        Ok(MessageDispatch {
            header: Header::read(r)?,
            consumer_id: r.nested()?,
            destination: r.nested()?,
            message: r.nested::<Message>()?.map(Box::new),
            redelivery_counter: r.i32()?,
        })
    }

    fn write(&self, w: &mut Writer) -> Result<()> {
        self.header.write(w);
        w.nested(self.consumer_id.as_ref())?;
        w.nested(self.destination.as_ref())?;
        w.nested(self.message.as_deref())?;
        w.i32(self.redelivery_counter);
        Ok(())
    }
}

/// MessageAck (22), C→B, async by default. The message ids come back exactly as
/// dispatched (including brokerSequenceId).
///
/// H · N(dest) destination · N(TransactionId) transactionId · N(ConsumerId) consumerId ·
/// Y ackType · N(MessageId) firstMessageId · N(MessageId) lastMessageId ·
/// i32 messageCount · T poisonCause (v7+)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageAck {
    pub header: Header,
    pub destination: Option<Destination>,
    pub transaction_id: Option<TransactionId>,
    pub consumer_id: Option<ConsumerId>,
    pub ack_type: AckType,
    /// Start of a range ack; null means "from the oldest dispatched".
    pub first_message_id: Option<MessageId>,
    pub last_message_id: Option<MessageId>,
    pub message_count: i32,
    pub poison_cause: Option<Throwable>,
}

impl MessageAck {
    fn read(r: &mut Reader) -> Result<Self> {
        Ok(MessageAck {
            header: Header::read(r)?,
            destination: r.nested()?,
            transaction_id: r.nested()?,
            consumer_id: r.nested()?,
            ack_type: AckType::read(r)?,
            first_message_id: r.nested()?,
            last_message_id: r.nested()?,
            message_count: r.i32()?,
            poison_cause: r.since(7, None, Reader::throwable)?,
        })
    }

    fn write(&self, w: &mut Writer) -> Result<()> {
        self.header.write(w);
        w.nested(self.destination.as_ref())?;
        w.nested(self.transaction_id.as_ref())?;
        w.nested(self.consumer_id.as_ref())?;
        w.u8(self.ack_type as u8);
        w.nested(self.first_message_id.as_ref())?;
        w.nested(self.last_message_id.as_ref())?;
        w.i32(self.message_count);
        if w.has(7) {
            w.throwable(self.poison_cause.as_ref())?;
        }
        Ok(())
    }
}

/// Response (30), B→C: success of the command whose commandId is `correlation_id`.
///
/// H · i32 correlationId
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Response {
    pub header: Header,
    pub correlation_id: i32,
}

impl Response {
    pub fn new(correlation_id: i32) -> Response {
        Response {
            header: Header::default(),
            correlation_id,
        }
    }
}

/// ExceptionResponse (31), B→C: failure of the command `correlation_id`; the client
/// throws the exception from the blocked call.
///
/// H · i32 correlationId · T exception
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExceptionResponse {
    pub header: Header,
    pub correlation_id: i32,
    pub exception: Option<Throwable>,
}

impl ExceptionResponse {
    pub fn new(correlation_id: i32, exception: Throwable) -> ExceptionResponse {
        ExceptionResponse {
            header: Header::default(),
            correlation_id,
            exception: Some(exception),
        }
    }
}

/// DataResponse (32), B→C (not needed by JMS 1.1 flows).
///
/// H · i32 correlationId · N(any) data
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DataResponse {
    pub header: Header,
    pub correlation_id: i32,
    pub data: Option<Box<DataStructure>>,
}

/// DataArrayResponse (33), B→C: the XA RECOVER reply (XA transaction ids).
///
/// H · i32 correlationId · A(any) data
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DataArrayResponse {
    pub header: Header,
    pub correlation_id: i32,
    pub data: Option<Vec<DataStructure>>,
}

/// IntegerResponse (34), B→C: the XA PREPARE reply.
///
/// H · i32 correlationId · i32 result
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IntegerResponse {
    pub header: Header,
    pub correlation_id: i32,
    pub result: i32,
}

/// One OpenWire command: what one frame carries.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    WireFormatInfo(WireFormatInfo),
    BrokerInfo(BrokerInfo),
    ConnectionInfo(ConnectionInfo),
    SessionInfo(SessionInfo),
    ConsumerInfo(ConsumerInfo),
    ProducerInfo(ProducerInfo),
    TransactionInfo(TransactionInfo),
    DestinationInfo(DestinationInfo),
    RemoveSubscriptionInfo(RemoveSubscriptionInfo),
    KeepAliveInfo(KeepAliveInfo),
    ShutdownInfo(ShutdownInfo),
    RemoveInfo(RemoveInfo),
    ControlCommand(ControlCommand),
    ConnectionError(ConnectionError),
    ConsumerControl(ConsumerControl),
    ConnectionControl(ConnectionControl),
    ProducerAck(ProducerAck),
    MessagePull(MessagePull),
    MessageDispatch(MessageDispatch),
    MessageAck(MessageAck),
    /// Types 23–29; the type byte is `message.kind`.
    Message(Box<Message>),
    Response(Response),
    ExceptionResponse(ExceptionResponse),
    DataResponse(DataResponse),
    DataArrayResponse(DataArrayResponse),
    IntegerResponse(IntegerResponse),
}

impl Command {
    /// The type byte of this command's frame.
    pub fn type_id(&self) -> u8 {
        match self {
            Command::WireFormatInfo(_) => WIRE_FORMAT_INFO,
            Command::BrokerInfo(_) => BROKER_INFO,
            Command::ConnectionInfo(_) => CONNECTION_INFO,
            Command::SessionInfo(_) => SESSION_INFO,
            Command::ConsumerInfo(_) => CONSUMER_INFO,
            Command::ProducerInfo(_) => PRODUCER_INFO,
            Command::TransactionInfo(_) => TRANSACTION_INFO,
            Command::DestinationInfo(_) => DESTINATION_INFO,
            Command::RemoveSubscriptionInfo(_) => REMOVE_SUBSCRIPTION_INFO,
            Command::KeepAliveInfo(_) => KEEP_ALIVE_INFO,
            Command::ShutdownInfo(_) => SHUTDOWN_INFO,
            Command::RemoveInfo(_) => REMOVE_INFO,
            Command::ControlCommand(_) => CONTROL_COMMAND,
            Command::ConnectionError(_) => CONNECTION_ERROR,
            Command::ConsumerControl(_) => CONSUMER_CONTROL,
            Command::ConnectionControl(_) => CONNECTION_CONTROL,
            Command::ProducerAck(_) => PRODUCER_ACK,
            Command::MessagePull(_) => MESSAGE_PULL,
            Command::MessageDispatch(_) => MESSAGE_DISPATCH,
            Command::MessageAck(_) => MESSAGE_ACK,
            Command::Message(m) => m.kind.type_id(),
            Command::Response(_) => RESPONSE,
            Command::ExceptionResponse(_) => EXCEPTION_RESPONSE,
            Command::DataResponse(_) => DATA_RESPONSE,
            Command::DataArrayResponse(_) => DATA_ARRAY_RESPONSE,
            Command::IntegerResponse(_) => INTEGER_RESPONSE,
        }
    }

    /// The Java class name, for logs.
    pub fn name(&self) -> &'static str {
        type_name(self.type_id())
    }

    /// The BaseCommand header; `None` for WireFormatInfo, which has none.
    pub fn header(&self) -> Option<&Header> {
        Some(match self {
            Command::WireFormatInfo(_) => return None,
            Command::BrokerInfo(c) => &c.header,
            Command::ConnectionInfo(c) => &c.header,
            Command::SessionInfo(c) => &c.header,
            Command::ConsumerInfo(c) => &c.header,
            Command::ProducerInfo(c) => &c.header,
            Command::TransactionInfo(c) => &c.header,
            Command::DestinationInfo(c) => &c.header,
            Command::RemoveSubscriptionInfo(c) => &c.header,
            Command::KeepAliveInfo(c) => &c.header,
            Command::ShutdownInfo(c) => &c.header,
            Command::RemoveInfo(c) => &c.header,
            Command::ControlCommand(c) => &c.header,
            Command::ConnectionError(c) => &c.header,
            Command::ConsumerControl(c) => &c.header,
            Command::ConnectionControl(c) => &c.header,
            Command::ProducerAck(c) => &c.header,
            Command::MessagePull(c) => &c.header,
            Command::MessageDispatch(c) => &c.header,
            Command::MessageAck(c) => &c.header,
            Command::Message(c) => &c.header,
            Command::Response(c) => &c.header,
            Command::ExceptionResponse(c) => &c.header,
            Command::DataResponse(c) => &c.header,
            Command::DataArrayResponse(c) => &c.header,
            Command::IntegerResponse(c) => &c.header,
        })
    }

    /// The sender waits for a Response/ExceptionResponse carrying [`Command::command_id`].
    pub fn response_required(&self) -> bool {
        self.header().is_some_and(|h| h.response_required)
    }

    /// 0 for WireFormatInfo.
    pub fn command_id(&self) -> i32 {
        self.header().map_or(0, |h| h.command_id)
    }

    /// Whether `type_id` is a command this codec implements.
    pub(crate) fn is_known_type(type_id: u8) -> bool {
        matches!(type_id, 1..=12 | 14 | 16..=34)
    }

    /// The first OpenWire version that has type `type_id` (1 for all but three).
    pub(crate) fn type_since(type_id: u8) -> i32 {
        match type_id {
            MESSAGE_PULL => 2,
            PRODUCER_ACK | BLOB_MESSAGE => 3,
            _ => 1,
        }
    }

    /// Refuses a type the negotiated `version` does not have (Java's marshaller
    /// factory of that version has no marshaller for it).
    pub(crate) fn check_type(type_id: u8, version: i32) -> Result<()> {
        if version >= Command::type_since(type_id) {
            Ok(())
        } else {
            Err(OpenWireError::NotInVersion {
                what: type_name(type_id),
                version,
            })
        }
    }

    /// Reads the body of a command of type `type_id` (the type byte already consumed).
    pub(crate) fn read_body(type_id: u8, r: &mut Reader) -> Result<Command> {
        Command::check_type(type_id, r.version())?;
        Ok(match type_id {
            WIRE_FORMAT_INFO => Command::WireFormatInfo(WireFormatInfo::read(r)?),
            BROKER_INFO => Command::BrokerInfo(BrokerInfo::read(r)?),
            CONNECTION_INFO => Command::ConnectionInfo(ConnectionInfo::read(r)?),
            SESSION_INFO => Command::SessionInfo(SessionInfo::read(r)?),
            CONSUMER_INFO => Command::ConsumerInfo(ConsumerInfo::read(r)?),
            PRODUCER_INFO => Command::ProducerInfo(ProducerInfo::read(r)?),
            TRANSACTION_INFO => Command::TransactionInfo(TransactionInfo::read(r)?),
            DESTINATION_INFO => Command::DestinationInfo(DestinationInfo::read(r)?),
            REMOVE_SUBSCRIPTION_INFO => {
                Command::RemoveSubscriptionInfo(RemoveSubscriptionInfo::read(r)?)
            }
            KEEP_ALIVE_INFO => Command::KeepAliveInfo(KeepAliveInfo {
                header: Header::read(r)?,
            }),
            SHUTDOWN_INFO => Command::ShutdownInfo(ShutdownInfo {
                header: Header::read(r)?,
            }),
            REMOVE_INFO => Command::RemoveInfo(RemoveInfo::read(r)?),
            CONTROL_COMMAND => Command::ControlCommand(ControlCommand::read(r)?),
            CONNECTION_ERROR => Command::ConnectionError(ConnectionError::read(r)?),
            CONSUMER_CONTROL => Command::ConsumerControl(ConsumerControl::read(r)?),
            CONNECTION_CONTROL => Command::ConnectionControl(ConnectionControl::read(r)?),
            PRODUCER_ACK => Command::ProducerAck(ProducerAck::read(r)?),
            MESSAGE_PULL => Command::MessagePull(MessagePull::read(r)?),
            MESSAGE_DISPATCH => Command::MessageDispatch(MessageDispatch::read(r)?),
            MESSAGE_ACK => Command::MessageAck(MessageAck::read(r)?),
            23..=29 => Command::Message(Box::new(Message::read_body(type_id, r)?)),
            RESPONSE => Command::Response(Response {
                header: Header::read(r)?,
                correlation_id: r.i32()?,
            }),
            EXCEPTION_RESPONSE => Command::ExceptionResponse(ExceptionResponse {
                header: Header::read(r)?,
                correlation_id: r.i32()?,
                exception: r.throwable()?,
            }),
            DATA_RESPONSE => Command::DataResponse(DataResponse {
                header: Header::read(r)?,
                correlation_id: r.i32()?,
                data: r.nested::<DataStructure>()?.map(Box::new),
            }),
            DATA_ARRAY_RESPONSE => Command::DataArrayResponse(DataArrayResponse {
                header: Header::read(r)?,
                correlation_id: r.i32()?,
                data: r.array()?,
            }),
            INTEGER_RESPONSE => Command::IntegerResponse(IntegerResponse {
                header: Header::read(r)?,
                correlation_id: r.i32()?,
                result: r.i32()?,
            }),
            other => return Err(OpenWireError::UnknownType(other)),
        })
    }

    /// Writes the body (everything after the type byte).
    pub(crate) fn write_body(&self, w: &mut Writer) -> Result<()> {
        Command::check_type(self.type_id(), w.version())?;
        match self {
            Command::WireFormatInfo(c) => c.write(w),
            Command::BrokerInfo(c) => c.write(w),
            Command::ConnectionInfo(c) => c.write(w),
            Command::SessionInfo(c) => c.write(w),
            Command::ConsumerInfo(c) => c.write(w),
            Command::ProducerInfo(c) => c.write(w),
            Command::TransactionInfo(c) => c.write(w),
            Command::DestinationInfo(c) => c.write(w),
            Command::RemoveSubscriptionInfo(c) => c.write(w),
            Command::KeepAliveInfo(KeepAliveInfo { header })
            | Command::ShutdownInfo(ShutdownInfo { header }) => {
                header.write(w);
                Ok(())
            }
            Command::RemoveInfo(c) => c.write(w),
            Command::ControlCommand(c) => c.write(w),
            Command::ConnectionError(c) => c.write(w),
            Command::ConsumerControl(c) => c.write(w),
            Command::ConnectionControl(c) => c.write(w),
            Command::ProducerAck(c) => c.write(w),
            Command::MessagePull(c) => c.write(w),
            Command::MessageDispatch(c) => c.write(w),
            Command::MessageAck(c) => c.write(w),
            Command::Message(m) => m.write_body(w),
            Command::Response(c) => {
                c.header.write(w);
                w.i32(c.correlation_id);
                Ok(())
            }
            Command::ExceptionResponse(c) => {
                c.header.write(w);
                w.i32(c.correlation_id);
                w.throwable(c.exception.as_ref())
            }
            Command::DataResponse(c) => {
                c.header.write(w);
                w.i32(c.correlation_id);
                w.nested(c.data.as_deref())
            }
            Command::DataArrayResponse(c) => {
                c.header.write(w);
                w.i32(c.correlation_id);
                w.array(c.data.as_deref())
            }
            Command::IntegerResponse(c) => {
                c.header.write(w);
                w.i32(c.correlation_id);
                w.i32(c.result);
                Ok(())
            }
        }
    }
}

/// The Java class name of a type id, for logs and errors ("unknown" otherwise).
pub(crate) fn type_name(type_id: u8) -> &'static str {
    match type_id {
        WIRE_FORMAT_INFO => "WireFormatInfo",
        BROKER_INFO => "BrokerInfo",
        CONNECTION_INFO => "ConnectionInfo",
        SESSION_INFO => "SessionInfo",
        CONSUMER_INFO => "ConsumerInfo",
        PRODUCER_INFO => "ProducerInfo",
        TRANSACTION_INFO => "TransactionInfo",
        DESTINATION_INFO => "DestinationInfo",
        REMOVE_SUBSCRIPTION_INFO => "RemoveSubscriptionInfo",
        KEEP_ALIVE_INFO => "KeepAliveInfo",
        SHUTDOWN_INFO => "ShutdownInfo",
        REMOVE_INFO => "RemoveInfo",
        CONTROL_COMMAND => "ControlCommand",
        CONNECTION_ERROR => "ConnectionError",
        CONSUMER_CONTROL => "ConsumerControl",
        CONNECTION_CONTROL => "ConnectionControl",
        PRODUCER_ACK => "ProducerAck",
        MESSAGE_PULL => "MessagePull",
        MESSAGE_DISPATCH => "MessageDispatch",
        MESSAGE_ACK => "MessageAck",
        23 => "ActiveMQMessage",
        24 => "ActiveMQBytesMessage",
        25 => "ActiveMQMapMessage",
        26 => "ActiveMQObjectMessage",
        27 => "ActiveMQStreamMessage",
        28 => "ActiveMQTextMessage",
        29 => "ActiveMQBlobMessage",
        RESPONSE => "Response",
        EXCEPTION_RESPONSE => "ExceptionResponse",
        DATA_RESPONSE => "DataResponse",
        DATA_ARRAY_RESPONSE => "DataArrayResponse",
        INTEGER_RESPONSE => "IntegerResponse",
        _ => "unknown",
    }
}

/// Any object that may fill an "any object" field N(any): `Message.dataStructure` (a
/// DestinationInfo in temp-destination advisories), DataResponse and DataArrayResponse.
#[derive(Debug, Clone, PartialEq)]
pub enum DataStructure {
    Command(Box<Command>),
    Destination(Destination),
    MessageId(MessageId),
    TransactionId(TransactionId),
    ConnectionId(ConnectionId),
    SessionId(SessionId),
    ConsumerId(ConsumerId),
    ProducerId(ProducerId),
    BrokerId(BrokerId),
}

impl Structure for DataStructure {
    const WHAT: &'static str = "a known data structure";

    fn accepts(type_id: u8) -> bool {
        Command::is_known_type(type_id)
            || Destination::accepts(type_id)
            || TransactionId::accepts(type_id)
            || matches!(
                type_id,
                ids::MESSAGE_ID | ids::CONNECTION_ID..=ids::BROKER_ID
            )
    }

    fn type_id(&self) -> u8 {
        match self {
            DataStructure::Command(c) => c.type_id(),
            DataStructure::Destination(d) => d.type_id(),
            DataStructure::MessageId(d) => d.type_id(),
            DataStructure::TransactionId(d) => d.type_id(),
            DataStructure::ConnectionId(d) => d.type_id(),
            DataStructure::SessionId(d) => d.type_id(),
            DataStructure::ConsumerId(d) => d.type_id(),
            DataStructure::ProducerId(d) => d.type_id(),
            DataStructure::BrokerId(d) => d.type_id(),
        }
    }

    fn read_body(t: u8, r: &mut Reader) -> Result<Self> {
        Ok(match t {
            _ if Destination::accepts(t) => {
                DataStructure::Destination(Destination::read_body(t, r)?)
            }
            _ if TransactionId::accepts(t) => {
                DataStructure::TransactionId(TransactionId::read_body(t, r)?)
            }
            ids::MESSAGE_ID => DataStructure::MessageId(MessageId::read_body(t, r)?),
            ids::CONNECTION_ID => DataStructure::ConnectionId(ConnectionId::read_body(t, r)?),
            ids::SESSION_ID => DataStructure::SessionId(SessionId::read_body(t, r)?),
            ids::CONSUMER_ID => DataStructure::ConsumerId(ConsumerId::read_body(t, r)?),
            ids::PRODUCER_ID => DataStructure::ProducerId(ProducerId::read_body(t, r)?),
            ids::BROKER_ID => DataStructure::BrokerId(BrokerId::read_body(t, r)?),
            _ => DataStructure::Command(Box::new(Command::read_body(t, r)?)),
        })
    }

    fn write_body(&self, w: &mut Writer) -> Result<()> {
        match self {
            DataStructure::Command(c) => c.write_body(w),
            DataStructure::Destination(d) => d.write_body(w),
            DataStructure::MessageId(d) => d.write_body(w),
            DataStructure::TransactionId(d) => d.write_body(w),
            DataStructure::ConnectionId(d) => d.write_body(w),
            DataStructure::SessionId(d) => d.write_body(w),
            DataStructure::ConsumerId(d) => d.write_body(w),
            DataStructure::ProducerId(d) => d.write_body(w),
            DataStructure::BrokerId(d) => d.write_body(w),
        }
    }
}
