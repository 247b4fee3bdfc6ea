//! Identifiers, destinations and transaction ids: the plain data structures commands
//! nest (no BaseCommand header). Loose bodies, after the nested object's type byte:
//!
//! | type | id  | body (S = nullable string, N = nested object, BS = byte sequence) |
//! |------|-----|---------------------------------------------------------------------|
//! | ActiveMQQueue      | 100 | S physicalName |
//! | ActiveMQTopic      | 101 | S physicalName |
//! | ActiveMQTempQueue  | 102 | S physicalName |
//! | ActiveMQTempTopic  | 103 | S physicalName |
//! | MessageId          | 110 | S textView (v10+) ; N(ProducerId) producerId ; i64 producerSequenceId ; i64 brokerSequenceId |
//! | LocalTransactionId | 111 | i64 value ; N(ConnectionId) connectionId |
//! | XATransactionId    | 112 | i32 formatId ; BS globalTransactionId ; BS branchQualifier |
//! | ConnectionId       | 120 | S value |
//! | SessionId          | 121 | S connectionId ; i64 value |
//! | ConsumerId         | 122 | S connectionId ; i64 sessionId ; i64 value |
//! | ProducerId         | 123 | S connectionId ; i64 value ; i64 sessionId   (not ConsumerId's order!) |
//! | BrokerId           | 124 | S value |
//!
//! The strings inside ids and destinations are never null from a Java client (its
//! constructors require them); a null one is refused ([`OpenWireError::NullField`]) so
//! that every id here is a plain `String` key. The `Display` forms are the Java
//! `toString()` forms (JMSMessageID is `MessageId`'s).

use std::fmt;

use bytes::Bytes;

use super::error::OpenWireError;
use super::primitives::{Reader, Structure, Writer};

type Result<T> = std::result::Result<T, OpenWireError>;

pub(crate) const QUEUE: u8 = 100;
pub(crate) const TOPIC: u8 = 101;
pub(crate) const TEMP_QUEUE: u8 = 102;
pub(crate) const TEMP_TOPIC: u8 = 103;
pub(crate) const MESSAGE_ID: u8 = 110;
pub(crate) const LOCAL_TRANSACTION_ID: u8 = 111;
pub(crate) const XA_TRANSACTION_ID: u8 = 112;
pub(crate) const CONNECTION_ID: u8 = 120;
pub(crate) const SESSION_ID: u8 = 121;
pub(crate) const CONSUMER_ID: u8 = 122;
pub(crate) const PRODUCER_ID: u8 = 123;
pub(crate) const BROKER_ID: u8 = 124;

/// Implements [`Structure`] for a type with exactly one type id.
macro_rules! single_type {
    ($ty:ty, $id:expr, $what:literal) => {
        impl Structure for $ty {
            const WHAT: &'static str = $what;
            fn accepts(type_id: u8) -> bool {
                type_id == $id
            }
            fn type_id(&self) -> u8 {
                $id
            }
            fn read_body(_: u8, r: &mut Reader) -> Result<Self> {
                <$ty>::read(r)
            }
            fn write_body(&self, w: &mut Writer) -> Result<()> {
                self.write(w)
            }
        }
    };
}

/// A connection, as the client names it (`ID:host-port-ts-n:m`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId {
    pub value: String,
}

impl ConnectionId {
    pub fn new(value: impl Into<String>) -> ConnectionId {
        ConnectionId {
            value: value.into(),
        }
    }

    fn read(r: &mut Reader) -> Result<Self> {
        Ok(ConnectionId {
            value: r.required_string("ConnectionId.value")?,
        })
    }

    fn write(&self, w: &mut Writer) -> Result<()> {
        w.string(Some(&self.value))
    }
}
single_type!(ConnectionId, CONNECTION_ID, "ConnectionId");

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.value)
    }
}

/// A session of a connection. Session -1 hosts the advisory consumer and is never
/// announced by a SessionInfo (except in a failover replay).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId {
    pub connection_id: String,
    pub value: i64,
}

impl SessionId {
    fn read(r: &mut Reader) -> Result<Self> {
        Ok(SessionId {
            connection_id: r.required_string("SessionId.connectionId")?,
            value: r.i64()?,
        })
    }

    fn write(&self, w: &mut Writer) -> Result<()> {
        w.string(Some(&self.connection_id))?;
        w.i64(self.value);
        Ok(())
    }
}
single_type!(SessionId, SESSION_ID, "SessionId");

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.connection_id, self.value)
    }
}

/// A consumer. Wire order: connectionId, sessionId, value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConsumerId {
    pub connection_id: String,
    pub session_id: i64,
    pub value: i64,
}

impl ConsumerId {
    fn read(r: &mut Reader) -> Result<Self> {
        Ok(ConsumerId {
            connection_id: r.required_string("ConsumerId.connectionId")?,
            session_id: r.i64()?,
            value: r.i64()?,
        })
    }

    fn write(&self, w: &mut Writer) -> Result<()> {
        w.string(Some(&self.connection_id))?;
        w.i64(self.session_id);
        w.i64(self.value);
        Ok(())
    }
}
single_type!(ConsumerId, CONSUMER_ID, "ConsumerId");

impl fmt::Display for ConsumerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            self.connection_id, self.session_id, self.value
        )
    }
}

/// A producer. Wire order: connectionId, **value, sessionId** (reversed from ConsumerId).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProducerId {
    pub connection_id: String,
    pub session_id: i64,
    pub value: i64,
}

impl ProducerId {
    fn read(r: &mut Reader) -> Result<Self> {
        let connection_id = r.required_string("ProducerId.connectionId")?;
        let value = r.i64()?;
        let session_id = r.i64()?;
        Ok(ProducerId {
            connection_id,
            session_id,
            value,
        })
    }

    fn write(&self, w: &mut Writer) -> Result<()> {
        w.string(Some(&self.connection_id))?;
        w.i64(self.value);
        w.i64(self.session_id);
        Ok(())
    }
}
single_type!(ProducerId, PRODUCER_ID, "ProducerId");

impl fmt::Display for ProducerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            self.connection_id, self.session_id, self.value
        )
    }
}

/// A broker's identity (BrokerInfo, broker paths).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BrokerId {
    pub value: String,
}

impl BrokerId {
    pub fn new(value: impl Into<String>) -> BrokerId {
        BrokerId {
            value: value.into(),
        }
    }

    fn read(r: &mut Reader) -> Result<Self> {
        Ok(BrokerId {
            value: r.required_string("BrokerId.value")?,
        })
    }

    fn write(&self, w: &mut Writer) -> Result<()> {
        w.string(Some(&self.value))
    }
}
single_type!(BrokerId, BROKER_ID, "BrokerId");

impl fmt::Display for BrokerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.value)
    }
}

/// A message's id. JMS identity (Java `equals`, duplicate detection) is
/// `(producer_id, producer_sequence_id)`; the derived `PartialEq` compares every field.
/// `broker_sequence_id` is assigned by the broker (unique and increasing per stored
/// message) and comes back in acks and in RemoveInfo.lastDeliveredSequenceId.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct MessageId {
    /// Normally null; set when the id was built from a string.
    pub text_view: Option<String>,
    pub producer_id: Option<ProducerId>,
    pub producer_sequence_id: i64,
    pub broker_sequence_id: i64,
}

impl MessageId {
    fn read(r: &mut Reader) -> Result<Self> {
        Ok(MessageId {
            text_view: r.since(10, None, Reader::string)?,
            producer_id: r.nested()?,
            producer_sequence_id: r.i64()?,
            broker_sequence_id: r.i64()?,
        })
    }

    fn write(&self, w: &mut Writer) -> Result<()> {
        if w.has(10) {
            w.string(self.text_view.as_deref())?;
        }
        w.nested(self.producer_id.as_ref())?;
        w.i64(self.producer_sequence_id);
        w.i64(self.broker_sequence_id);
        Ok(())
    }
}
single_type!(MessageId, MESSAGE_ID, "MessageId");

/// The JMSMessageID: the text view (with an `ID:` prefix ensured) if set, else
/// `producerId:producerSequenceId`.
impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.text_view, &self.producer_id) {
            (Some(t), _) if t.starts_with("ID:") => f.write_str(t),
            (Some(t), _) => write!(f, "ID:{t}"),
            (None, Some(p)) => write!(f, "{p}:{}", self.producer_sequence_id),
            (None, None) => write!(f, "null:{}", self.producer_sequence_id),
        }
    }
}

/// A local (one-connection) transaction: `value` counts up per connection.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LocalTransactionId {
    pub value: i64,
    pub connection_id: Option<ConnectionId>,
}

/// An XA transaction branch.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct XaTransactionId {
    pub format_id: i32,
    pub global_transaction_id: Option<Bytes>,
    pub branch_qualifier: Option<Bytes>,
}

/// Either kind of transaction id (types 111 and 112).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TransactionId {
    Local(LocalTransactionId),
    Xa(XaTransactionId),
}

impl Structure for TransactionId {
    const WHAT: &'static str = "TransactionId";

    fn accepts(type_id: u8) -> bool {
        matches!(type_id, LOCAL_TRANSACTION_ID | XA_TRANSACTION_ID)
    }

    fn type_id(&self) -> u8 {
        match self {
            TransactionId::Local(_) => LOCAL_TRANSACTION_ID,
            TransactionId::Xa(_) => XA_TRANSACTION_ID,
        }
    }

    fn read_body(type_id: u8, r: &mut Reader) -> Result<Self> {
        if type_id == LOCAL_TRANSACTION_ID {
            Ok(TransactionId::Local(LocalTransactionId {
                value: r.i64()?,
                connection_id: r.nested()?,
            }))
        } else {
            Ok(TransactionId::Xa(XaTransactionId {
                format_id: r.i32()?,
                global_transaction_id: r.byte_seq()?,
                branch_qualifier: r.byte_seq()?,
            }))
        }
    }

    fn write_body(&self, w: &mut Writer) -> Result<()> {
        match self {
            TransactionId::Local(t) => {
                w.i64(t.value);
                w.nested(t.connection_id.as_ref())
            }
            TransactionId::Xa(t) => {
                w.i32(t.format_id);
                w.byte_seq(t.global_transaction_id.as_deref())?;
                w.byte_seq(t.branch_qualifier.as_deref())
            }
        }
    }
}

/// `TX:<connectionId>:<value>` for local transactions (Java's form).
impl fmt::Display for LocalTransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.connection_id {
            Some(c) => write!(f, "TX:{c}:{}", self.value),
            None => write!(f, "TX:null:{}", self.value),
        }
    }
}

/// The four destination types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DestinationKind {
    Queue,
    Topic,
    TempQueue,
    TempTopic,
}

impl DestinationKind {
    pub fn type_id(self) -> u8 {
        match self {
            DestinationKind::Queue => QUEUE,
            DestinationKind::Topic => TOPIC,
            DestinationKind::TempQueue => TEMP_QUEUE,
            DestinationKind::TempTopic => TEMP_TOPIC,
        }
    }

    fn from_type_id(type_id: u8) -> Option<DestinationKind> {
        match type_id {
            QUEUE => Some(DestinationKind::Queue),
            TOPIC => Some(DestinationKind::Topic),
            TEMP_QUEUE => Some(DestinationKind::TempQueue),
            TEMP_TOPIC => Some(DestinationKind::TempTopic),
            _ => None,
        }
    }

    /// Topics fan out; queues deliver each message once.
    pub fn is_topic(self) -> bool {
        matches!(self, DestinationKind::Topic | DestinationKind::TempTopic)
    }

    pub fn is_temporary(self) -> bool {
        matches!(
            self,
            DestinationKind::TempQueue | DestinationKind::TempTopic
        )
    }

    /// The prefix of Java's `toString()` (`queue://`, `topic://`, ...).
    pub fn prefix(self) -> &'static str {
        match self {
            DestinationKind::Queue => "queue://",
            DestinationKind::Topic => "topic://",
            DestinationKind::TempQueue => "temp-queue://",
            DestinationKind::TempTopic => "temp-topic://",
        }
    }
}

/// A queue, topic or temporary destination. A composite destination is one whose
/// physical name is a comma-separated list (`A,B` or `queue://A,topic://B`); it is
/// carried as is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Destination {
    pub kind: DestinationKind,
    pub physical_name: String,
}

impl Destination {
    pub fn new(kind: DestinationKind, physical_name: impl Into<String>) -> Destination {
        Destination {
            kind,
            physical_name: physical_name.into(),
        }
    }

    pub fn queue(physical_name: impl Into<String>) -> Destination {
        Destination::new(DestinationKind::Queue, physical_name)
    }

    pub fn topic(physical_name: impl Into<String>) -> Destination {
        Destination::new(DestinationKind::Topic, physical_name)
    }
}

impl Structure for Destination {
    const WHAT: &'static str = "destination";

    fn accepts(type_id: u8) -> bool {
        DestinationKind::from_type_id(type_id).is_some()
    }

    fn type_id(&self) -> u8 {
        self.kind.type_id()
    }

    fn read_body(type_id: u8, r: &mut Reader) -> Result<Self> {
        let kind = DestinationKind::from_type_id(type_id).ok_or(OpenWireError::UnexpectedType {
            expected: Self::WHAT,
            found: type_id,
        })?;
        Ok(Destination {
            kind,
            physical_name: r.required_string("destination name")?,
        })
    }

    fn write_body(&self, w: &mut Writer) -> Result<()> {
        w.string(Some(&self.physical_name))
    }
}

/// `queue://NAME`, `topic://NAME`, `temp-queue://NAME`, `temp-topic://NAME`.
impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.kind.prefix(), self.physical_name)
    }
}
