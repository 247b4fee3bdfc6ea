//! The JMS message: one layout shared by types 23–29 (Java `v12/MessageMarshaller`; the
//! subclasses only change the type byte, except BlobMessage which appends three fields).
//! Older versions lack fields 26 (before v2), 27–29 (before v3) and 30 (before v10), and
//! BlobMessage before v3 (see [`super::codec`]).
//!
//! ```text
//!  #  field                    enc               #  field                      enc
//!  0  H (commandId, rr)                         16  content                    BS
//!  1  producerId               N(ProducerId)    17  marshalledProperties       BS (primitive map)
//!  2  destination              N(dest)          18  dataStructure              N(any)
//!  3  transactionId            N(TxId)          19  targetConsumerId           N(ConsumerId)
//!  4  originalDestination      N(dest)          20  compressed                 B
//!  5  messageId                N(MessageId)     21  redeliveryCounter          i32
//!  6  originalTransactionId    N(TxId)          22  brokerPath                 A(BrokerId)
//!  7  groupID (JMSXGroupID)    S                23  arrival                    i64
//!  8  groupSequence            i32              24  userID (JMSXUserID)        S
//!  9  correlationId            S                25  recievedByDFBridge         B
//! 10  persistent               B                26  droppable                  B
//! 11  expiration (epoch ms)    i64              27  cluster                    A(BrokerId)
//! 12  priority                 Y                28  brokerInTime               i64
//! 13  replyTo                  N(dest)          29  brokerOutTime              i64
//! 14  timestamp (epoch ms)     i64              30  jmsXGroupFirstForConsumer  B
//! 15  type (JMSType)           S                    BlobMessage (29) only:
//!                                                   S remoteBlobUrl ; S mimeType ; B deletedByBroker
//! ```
//!
//! Bodies (`content`) are passed through as bytes. TextMessage content is
//! `i32 length ; modified UTF-8` (`MarshallingSupport.writeUTF8`: no 65535 limit, length -1
//! = null text, and a null text is normally a null content); see [`Message::text`].
//! BytesMessage content is the raw bytes, MapMessage content a primitive map,
//! StreamMessage a sequence of tagged primitives, ObjectMessage Java serialization. With
//! `compressed` set the content is zlib (Text: of the whole length+bytes block; Bytes:
//! `i32 uncompressedLength` + zlib).

use bytes::{BufMut, Bytes, BytesMut};

use super::command::{Command, DataStructure, Header};
use super::error::OpenWireError;
use super::ids::{BrokerId, ConsumerId, Destination, MessageId, ProducerId, TransactionId};
use super::primitives::{
    decode_mutf8, encode_mutf8, mutf8_len, PrimitiveMap, Reader, Structure, Writer,
};

type Result<T> = std::result::Result<T, OpenWireError>;

/// Which JMS message class (and so which type byte) a [`Message`] is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum MessageKind {
    /// ActiveMQMessage (23): no body; advisories use it.
    #[default]
    Plain,
    /// ActiveMQBytesMessage (24).
    Bytes,
    /// ActiveMQMapMessage (25).
    Map,
    /// ActiveMQObjectMessage (26).
    Object,
    /// ActiveMQStreamMessage (27).
    Stream,
    /// ActiveMQTextMessage (28).
    Text,
    /// ActiveMQBlobMessage (29), an ActiveMQ extension with three extra fields.
    Blob(BlobFields),
}

/// The fields BlobMessage appends to the common layout.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BlobFields {
    pub remote_blob_url: Option<String>,
    pub mime_type: Option<String>,
    pub deleted_by_broker: bool,
}

impl MessageKind {
    pub fn type_id(&self) -> u8 {
        match self {
            MessageKind::Plain => 23,
            MessageKind::Bytes => 24,
            MessageKind::Map => 25,
            MessageKind::Object => 26,
            MessageKind::Stream => 27,
            MessageKind::Text => 28,
            MessageKind::Blob(_) => 29,
        }
    }
}

/// A JMS message, as sent by a producer or carried inside a MessageDispatch.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub kind: MessageKind,
    /// The producer's header; ignored inside a MessageDispatch.
    pub header: Header,
    pub producer_id: Option<ProducerId>,
    pub destination: Option<Destination>,
    /// Set for messages sent inside a transaction.
    pub transaction_id: Option<TransactionId>,
    /// Where the message was first sent, when the broker moved it (DLQ, ...).
    pub original_destination: Option<Destination>,
    pub message_id: Option<MessageId>,
    pub original_transaction_id: Option<TransactionId>,
    pub group_id: Option<String>,
    pub group_sequence: i32,
    pub correlation_id: Option<String>,
    /// JMSDeliveryMode PERSISTENT.
    pub persistent: bool,
    /// Absolute epoch ms; 0 = never.
    pub expiration: i64,
    /// 0..=9, default 4.
    pub priority: i8,
    pub reply_to: Option<Destination>,
    pub timestamp: i64,
    /// JMSType.
    pub jms_type: Option<String>,
    /// The body, opaque (see the module doc).
    pub content: Option<Bytes>,
    /// The properties as a marshalled primitive map; see [`Message::properties`].
    pub marshalled_properties: Option<Bytes>,
    /// E.g. the DestinationInfo of a temp-destination advisory.
    pub data_structure: Option<Box<DataStructure>>,
    pub target_consumer_id: Option<ConsumerId>,
    /// `content` is zlib-compressed.
    pub compressed: bool,
    /// JMSRedelivered = counter > 0; JMSXDeliveryCount = counter + 1.
    pub redelivery_counter: i32,
    pub broker_path: Option<Vec<BrokerId>>,
    pub arrival: i64,
    pub user_id: Option<String>,
    /// `recievedByDFBridge` in Java (sic).
    pub received_by_df_bridge: bool,
    pub droppable: bool,
    pub cluster: Option<Vec<BrokerId>>,
    pub broker_in_time: i64,
    pub broker_out_time: i64,
    pub jmsx_group_first_for_consumer: bool,
}

impl Default for Message {
    /// An empty plain message with JMS's default priority 4.
    fn default() -> Message {
        Message {
            kind: MessageKind::Plain,
            header: Header::default(),
            producer_id: None,
            destination: None,
            transaction_id: None,
            original_destination: None,
            message_id: None,
            original_transaction_id: None,
            group_id: None,
            group_sequence: 0,
            correlation_id: None,
            persistent: false,
            expiration: 0,
            priority: 4,
            reply_to: None,
            timestamp: 0,
            jms_type: None,
            content: None,
            marshalled_properties: None,
            data_structure: None,
            target_consumer_id: None,
            compressed: false,
            redelivery_counter: 0,
            broker_path: None,
            arrival: 0,
            user_id: None,
            received_by_df_bridge: false,
            droppable: false,
            cluster: None,
            broker_in_time: 0,
            broker_out_time: 0,
            jmsx_group_first_for_consumer: false,
        }
    }
}

impl Message {
    /// The text of a TextMessage (`None` for a null text). Fails on a compressed body
    /// (Tandem has no zlib; such bodies are only passed through) or a malformed one.
    pub fn text(&self) -> Result<Option<String>> {
        if self.compressed {
            return Err(OpenWireError::CompressedBody);
        }
        let Some(content) = &self.content else {
            return Ok(None);
        };
        let mut r = Reader::plain(content.clone());
        let Ok(len) = usize::try_from(r.i32()?) else {
            return Ok(None);
        };
        let text = decode_mutf8(&r.raw(len)?)?;
        match r.remaining() {
            0 => Ok(Some(text)),
            left => Err(OpenWireError::TrailingBytes {
                what: "text body",
                left,
            }),
        }
    }

    /// Sets a TextMessage body, uncompressed; `None` makes the content null (as Java does
    /// for a null text).
    pub fn set_text(&mut self, text: Option<&str>) -> Result<()> {
        self.compressed = false;
        self.content = match text {
            None => None,
            Some(text) => {
                let len = mutf8_len(text);
                let len_i32 = i32::try_from(len)
                    .map_err(|_| OpenWireError::TooLargeToEncode { bytes: len })?;
                let mut out = BytesMut::with_capacity(4 + len);
                out.put_i32(len_i32);
                encode_mutf8(text, &mut out);
                Some(out.freeze())
            }
        };
        Ok(())
    }

    /// The message properties (empty when there are none).
    pub fn properties(&self) -> Result<PrimitiveMap> {
        match &self.marshalled_properties {
            Some(bytes) => PrimitiveMap::decode(bytes),
            None => Ok(PrimitiveMap::new()),
        }
    }

    /// Replaces the properties; an empty map is written as null, as Java does for a
    /// message that never had a property set.
    pub fn set_properties(&mut self, properties: &PrimitiveMap) -> Result<()> {
        self.marshalled_properties = if properties.is_empty() {
            None
        } else {
            Some(properties.to_bytes()?)
        };
        Ok(())
    }

    fn read(kind: MessageKind, r: &mut Reader) -> Result<Message> {
        let mut m = Message {
            kind,
            ..Message::default()
        };
        // Field order is the wire order (module doc); do not reorder.
        m.header = Header::read(r)?;
        m.producer_id = r.nested()?;
        m.destination = r.nested()?;
        m.transaction_id = r.nested()?;
        m.original_destination = r.nested()?;
        m.message_id = r.nested()?;
        m.original_transaction_id = r.nested()?;
        m.group_id = r.string()?;
        m.group_sequence = r.i32()?;
        m.correlation_id = r.string()?;
        m.persistent = r.bool()?;
        m.expiration = r.i64()?;
        m.priority = r.u8()? as i8;
        m.reply_to = r.nested()?;
        m.timestamp = r.i64()?;
        m.jms_type = r.string()?;
        m.content = r.byte_seq()?;
        m.marshalled_properties = r.byte_seq()?;
        m.data_structure = r.nested::<DataStructure>()?.map(Box::new);
        m.target_consumer_id = r.nested()?;
        m.compressed = r.bool()?;
        m.redelivery_counter = r.i32()?;
        m.broker_path = r.array()?;
        m.arrival = r.i64()?;
        m.user_id = r.string()?;
        m.received_by_df_bridge = r.bool()?;
        m.droppable = r.since(2, false, Reader::bool)?;
        m.cluster = r.since(3, None, Reader::array)?;
        m.broker_in_time = r.since(3, 0, Reader::i64)?;
        m.broker_out_time = r.since(3, 0, Reader::i64)?;
        m.jmsx_group_first_for_consumer = r.since(10, false, Reader::bool)?;
        if let MessageKind::Blob(blob) = &mut m.kind {
            blob.remote_blob_url = r.string()?;
            blob.mime_type = r.string()?;
            blob.deleted_by_broker = r.bool()?;
        }
        Ok(m)
    }

    fn write(&self, w: &mut Writer) -> Result<()> {
        self.header.write(w);
        w.nested(self.producer_id.as_ref())?;
        w.nested(self.destination.as_ref())?;
        w.nested(self.transaction_id.as_ref())?;
        w.nested(self.original_destination.as_ref())?;
        w.nested(self.message_id.as_ref())?;
        w.nested(self.original_transaction_id.as_ref())?;
        w.string(self.group_id.as_deref())?;
        w.i32(self.group_sequence);
        w.string(self.correlation_id.as_deref())?;
        w.bool(self.persistent);
        w.i64(self.expiration);
        w.u8(self.priority as u8);
        w.nested(self.reply_to.as_ref())?;
        w.i64(self.timestamp);
        w.string(self.jms_type.as_deref())?;
        w.byte_seq(self.content.as_deref())?;
        w.byte_seq(self.marshalled_properties.as_deref())?;
        w.nested(self.data_structure.as_deref())?;
        w.nested(self.target_consumer_id.as_ref())?;
        w.bool(self.compressed);
        w.i32(self.redelivery_counter);
        w.array(self.broker_path.as_deref())?;
        w.i64(self.arrival);
        w.string(self.user_id.as_deref())?;
        w.bool(self.received_by_df_bridge);
        if w.has(2) {
            w.bool(self.droppable);
        }
        if w.has(3) {
            w.array(self.cluster.as_deref())?;
            w.i64(self.broker_in_time);
            w.i64(self.broker_out_time);
        }
        if w.has(10) {
            w.bool(self.jmsx_group_first_for_consumer);
        }
        if let MessageKind::Blob(blob) = &self.kind {
            w.string(blob.remote_blob_url.as_deref())?;
            w.string(blob.mime_type.as_deref())?;
            w.bool(blob.deleted_by_broker);
        }
        Ok(())
    }
}

impl Structure for Message {
    const WHAT: &'static str = "message";

    fn accepts(type_id: u8) -> bool {
        (23..=29).contains(&type_id)
    }

    fn type_id(&self) -> u8 {
        self.kind.type_id()
    }

    fn read_body(type_id: u8, r: &mut Reader) -> Result<Self> {
        Command::check_type(type_id, r.version())?;
        let kind = match type_id {
            23 => MessageKind::Plain,
            24 => MessageKind::Bytes,
            25 => MessageKind::Map,
            26 => MessageKind::Object,
            27 => MessageKind::Stream,
            28 => MessageKind::Text,
            29 => MessageKind::Blob(BlobFields::default()),
            found => {
                return Err(OpenWireError::UnexpectedType {
                    expected: Self::WHAT,
                    found,
                })
            }
        };
        Message::read(kind, r)
    }

    fn write_body(&self, w: &mut Writer) -> Result<()> {
        Command::check_type(self.type_id(), w.version())?;
        self.write(w)
    }
}
