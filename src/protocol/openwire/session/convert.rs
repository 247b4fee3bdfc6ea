//! OpenWire messages and destinations <-> the broker's protocol-neutral ones, so that
//! a STOMP producer and a JMS consumer (and the other way round) see the same message.
//! The field mapping is the table in `broker::message`.
//!
//! * Destinations: `queue://A` is the broker's queue `A` (STOMP `/queue/A`), and so on
//!   for topics and temporary destinations. A composite destination (`A,B`, members
//!   optionally prefixed `queue://`/`topic://`) is one broker destination per member.
//! * JMSReplyTo is kept in its STOMP spelling (`/queue/A`, `/remote-temp-queue/ID:…`),
//!   as STOMP producers store it.
//! * The JMSMessageID (`<producerId>:<seq>`) is the broker message id; a consumer gets
//!   back a MessageId parsed from it, with the destination's sequence number as
//!   brokerSequenceId (what acks and RemoveInfo name). A STOMP producer's id does not
//!   parse: it becomes the MessageId's text view, under a fixed producer id and the
//!   sequence number as producer sequence (unique per destination, which is what the
//!   client's duplicate audit needs).
//! * String properties are headers; other property types are typed properties; the
//!   text of a TextMessage is stored as UTF-8 (STOMP consumers read it as is); other
//!   bodies are kept as the client encoded them.

use bytes::Bytes;

use super::super::{
    Command, ConnectionId, DataStructure, Destination as OwDestination, DestinationInfo,
    DestinationKind, DestinationOperation, Header, Message as OwMessage, MessageId, MessageKind,
    PrimitiveMap, PrimitiveValue, ProducerId,
};
use super::{Refusal, JAVA_INVALID_DESTINATION, JAVA_JMS, JAVA_RESOURCE_ALLOCATION};
use crate::broker::{BodyKind, BodyType, DestKind, Destination, Message, PropValue};

/// The producer id of messages that did not come from an OpenWire producer.
pub const FOREIGN_PRODUCER: &str = "ID:tandem-stomp";

/// Headers that carry a JMS header field rather than a property.
const CORRELATION_ID: &str = "correlation-id";
const JMS_TYPE: &str = "type";
const GROUP_ID: &str = "JMSXGroupID";
const GROUP_SEQ: &str = "JMSXGroupSeq";
/// Set on dead-letter copies (`broker::core::dead_letter_copy`), in STOMP spelling.
const ORIGINAL_DESTINATION: &str = "originalDestination";

/// A temporary-destination advisory travels through the broker as a message on its
/// advisory topic with these headers; a JMS consumer gets them back as the
/// DestinationInfo in the message's `dataStructure` (what the client reads).
const ADVISORY_OPERATION: &str = "tandemAdvisoryOperation";
const ADVISORY_DESTINATION: &str = "tandemAdvisoryDestination";
const ADVISORY_CONNECTION: &str = "tandemAdvisoryConnectionId";
/// JMSType of advisories, as ActiveMQ sets it.
const ADVISORY_TYPE: &str = "Advisory";

// ----- destinations -----

fn kind_to_broker(kind: DestinationKind) -> DestKind {
    match kind {
        DestinationKind::Queue => DestKind::Queue,
        DestinationKind::Topic => DestKind::Topic,
        DestinationKind::TempQueue => DestKind::TempQueue,
        DestinationKind::TempTopic => DestKind::TempTopic,
    }
}

fn kind_to_openwire(kind: DestKind) -> DestinationKind {
    match kind {
        DestKind::Queue => DestinationKind::Queue,
        DestKind::Topic => DestinationKind::Topic,
        DestKind::TempQueue => DestinationKind::TempQueue,
        DestKind::TempTopic => DestinationKind::TempTopic,
    }
}

/// The broker destinations an OpenWire destination names: one, or one per member of a
/// composite destination (at most `max_members` distinct ones: each member is a
/// journaled copy of every message sent to it, so a stranger's 10 000-member name must
/// not become 10 000 records).
pub fn to_broker_destinations(
    d: &OwDestination,
    max_members: usize,
) -> Result<Vec<Destination>, Refusal> {
    let default_kind = kind_to_broker(d.kind);
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for member in d.physical_name.split(',') {
        let member = member.trim();
        let (kind, name) = if let Some(n) = member.strip_prefix("queue://") {
            (DestKind::Queue, n)
        } else if let Some(n) = member.strip_prefix("topic://") {
            (DestKind::Topic, n)
        } else if let Some(n) = member.strip_prefix("temp-queue://") {
            (DestKind::TempQueue, n)
        } else if let Some(n) = member.strip_prefix("temp-topic://") {
            (DestKind::TempTopic, n)
        } else {
            (default_kind, member)
        };
        if name.is_empty() {
            return Err(Refusal::new(
                JAVA_INVALID_DESTINATION,
                format!("invalid destination name: '{}'", d.physical_name),
            ));
        }
        if !seen.insert((kind, name)) {
            continue;
        }
        if out.len() == max_members {
            return Err(Refusal::new(
                JAVA_RESOURCE_ALLOCATION,
                format!(
                    "a composite destination may have at most {max_members} members \
                     (maxCompositeDestinations)"
                ),
            ));
        }
        out.push(Destination {
            kind,
            name: name.to_owned(),
        });
    }
    Ok(out)
}

/// The one broker destination of a non-composite OpenWire destination.
pub fn to_broker_destination(d: &OwDestination) -> Result<Destination, Refusal> {
    let composite = || {
        Refusal::new(
            JAVA_INVALID_DESTINATION,
            format!("composite destination not supported here: '{d}'"),
        )
    };
    let mut all = match to_broker_destinations(d, 1) {
        Ok(all) => all,
        // More than one distinct member.
        Err(_) if d.physical_name.contains(',') => return Err(composite()),
        Err(e) => return Err(e),
    };
    match (all.pop(), all.is_empty()) {
        (Some(one), true) => Ok(one),
        _ => Err(composite()),
    }
}

pub fn to_openwire_destination(d: &Destination) -> OwDestination {
    OwDestination::new(kind_to_openwire(d.kind), d.name.clone())
}

/// JMSReplyTo as the broker keeps it: the STOMP spelling.
pub fn reply_to_stomp(d: &OwDestination) -> String {
    let kind = kind_to_broker(d.kind);
    Destination {
        kind,
        name: d.physical_name.clone(),
    }
    .stomp_name()
}

/// A destination in STOMP spelling as OpenWire's; a name without a known prefix is a
/// queue (ActiveMQ's default). `None` for an empty name.
pub fn stomp_to_openwire(name: &str) -> Option<OwDestination> {
    let (kind, rest) = [
        ("/queue/", DestinationKind::Queue),
        ("/topic/", DestinationKind::Topic),
        ("/temp-queue/", DestinationKind::TempQueue),
        ("/temp-topic/", DestinationKind::TempTopic),
        ("/remote-temp-queue/", DestinationKind::TempQueue),
        ("/remote-temp-topic/", DestinationKind::TempTopic),
    ]
    .iter()
    .find_map(|(prefix, kind)| name.strip_prefix(prefix).map(|r| (*kind, r)))
    .unwrap_or((DestinationKind::Queue, name));
    (!rest.is_empty()).then(|| OwDestination::new(kind, rest))
}

// ----- advisories -----

/// The advisory topic for temporary destination `d`: `ActiveMQ.Advisory.TempQueue` or
/// `ActiveMQ.Advisory.TempTopic`.
pub fn advisory_topic(d: &Destination) -> Destination {
    Destination::topic(if d.kind.is_queue() {
        "ActiveMQ.Advisory.TempQueue"
    } else {
        "ActiveMQ.Advisory.TempTopic"
    })
}

/// The advisory saying client connection `connection_id` created (`added`) or
/// deleted temporary destination `d`: a non-persistent message on its advisory topic.
pub fn advisory_message(
    id: String,
    d: &Destination,
    connection_id: &str,
    added: bool,
    broker_name: &str,
) -> Message {
    Message {
        id,
        destination: advisory_topic(d),
        persistent: false,
        priority: 4,
        timestamp_ms: 0,
        expires_ms: 0,
        reply_to: None,
        headers: vec![
            (JMS_TYPE.to_owned(), ADVISORY_TYPE.to_owned()),
            ("originBrokerName".to_owned(), broker_name.to_owned()),
            (
                ADVISORY_OPERATION.to_owned(),
                if added { "add" } else { "remove" }.to_owned(),
            ),
            (ADVISORY_DESTINATION.to_owned(), d.stomp_name()),
            (ADVISORY_CONNECTION.to_owned(), connection_id.to_owned()),
        ],
        body: Bytes::new(),
        body_type: BodyType {
            kind: BodyKind::Plain,
            compressed: false,
            null: true,
        },
        properties: Vec::new(),
    }
}

/// The DestinationInfo an advisory carries, if `msg` is one.
fn advisory_info(msg: &Message) -> Option<DestinationInfo> {
    let operation = match msg.header(ADVISORY_OPERATION)? {
        "add" => DestinationOperation::Add,
        _ => DestinationOperation::Remove,
    };
    let destination = stomp_to_openwire(msg.header(ADVISORY_DESTINATION)?)?;
    Some(DestinationInfo {
        header: Header::default(),
        connection_id: msg.header(ADVISORY_CONNECTION).map(ConnectionId::new),
        destination: Some(destination),
        operation,
        timeout: 0,
        broker_path: None,
    })
}

// ----- message ids -----

/// The MessageId a consumer gets for broker message `id` stored under `seq`.
///
/// A message that no OpenWire producer sent carries its id as the `textView`, which
/// only v10+ clients receive: an older client sees `ID:tandem-stomp:0:0:<seq>` as its
/// JMSMessageID instead (acks match by the broker sequence either way).
pub fn message_id(id: &str, seq: u64) -> MessageId {
    let broker_sequence_id = i64::try_from(seq).unwrap_or(i64::MAX);
    if let Some((producer, producer_sequence_id)) = parse_message_id(id) {
        return MessageId {
            text_view: None,
            producer_id: Some(producer),
            producer_sequence_id,
            broker_sequence_id,
        };
    }
    MessageId {
        text_view: Some(id.to_owned()),
        producer_id: Some(ProducerId {
            connection_id: FOREIGN_PRODUCER.to_owned(),
            session_id: 0,
            value: 0,
        }),
        producer_sequence_id: broker_sequence_id,
        broker_sequence_id,
    }
}

/// `<connectionId>:<session>:<producer>:<seq>` (Java's `MessageId(String)` parses from
/// the right the same way), only if it prints back identically.
fn parse_message_id(id: &str) -> Option<(ProducerId, i64)> {
    let (rest, seq) = id.rsplit_once(':')?;
    let (rest, value) = rest.rsplit_once(':')?;
    let (connection_id, session_id) = rest.rsplit_once(':')?;
    if connection_id.is_empty() {
        return None;
    }
    let producer = ProducerId {
        connection_id: connection_id.to_owned(),
        session_id: session_id.parse().ok()?,
        value: value.parse().ok()?,
    };
    let seq: i64 = seq.parse().ok()?;
    (format!("{producer}:{seq}") == id).then_some((producer, seq))
}

// ----- messages -----

/// The broker message for an OpenWire producer's message sent to `destination` (one
/// member of its destination). `fallback_id` and `now_ms` fill in what the client
/// left out.
pub fn to_broker_message(
    m: &OwMessage,
    destination: Destination,
    fallback_id: impl FnOnce() -> String,
    now_ms: u64,
) -> Result<Message, Refusal> {
    let id = match &m.message_id {
        Some(mid) => mid.to_string(),
        None => fallback_id(),
    };
    let mut headers = Vec::new();
    if let Some(c) = &m.correlation_id {
        headers.push((CORRELATION_ID.to_owned(), c.clone()));
    }
    if let Some(t) = &m.jms_type {
        headers.push((JMS_TYPE.to_owned(), t.clone()));
    }
    if let Some(g) = &m.group_id {
        headers.push((GROUP_ID.to_owned(), g.clone()));
        headers.push((GROUP_SEQ.to_owned(), m.group_sequence.to_string()));
    }
    let mut properties = Vec::new();
    let props = m
        .properties()
        .map_err(|e| Refusal::new(JAVA_JMS, format!("malformed message properties: {e}")))?;
    for (k, v) in props.iter() {
        let typed = match v {
            PrimitiveValue::String(s) | PrimitiveValue::BigString(s) => {
                headers.push((k.to_owned(), s.clone()));
                continue;
            }
            PrimitiveValue::Boolean(b) => PropValue::Bool(*b),
            PrimitiveValue::Byte(b) => PropValue::Byte(*b),
            PrimitiveValue::Short(x) => PropValue::Short(*x),
            PrimitiveValue::Int(x) => PropValue::Int(*x),
            PrimitiveValue::Long(x) => PropValue::Long(*x),
            PrimitiveValue::Float(x) => PropValue::Float(*x),
            PrimitiveValue::Double(x) => PropValue::Double(*x),
            other => PropValue::Opaque(other.to_bytes().map_err(|e| {
                Refusal::new(JAVA_JMS, format!("property {k} cannot be kept: {e}"))
            })?),
        };
        properties.push((k.to_owned(), typed));
    }
    let kind = match &m.kind {
        MessageKind::Text => BodyKind::Text,
        MessageKind::Bytes => BodyKind::Bytes,
        MessageKind::Map => BodyKind::Map,
        MessageKind::Object => BodyKind::Object,
        MessageKind::Stream => BodyKind::Stream,
        MessageKind::Plain => BodyKind::Plain,
        MessageKind::Blob(_) => {
            return Err(Refusal::new(JAVA_JMS, "BlobMessage is not supported"));
        }
    };
    let body = if kind == BodyKind::Text && !m.compressed {
        match m.text() {
            Ok(text) => Bytes::from(text.unwrap_or_default()),
            Err(e) => {
                return Err(Refusal::new(
                    JAVA_JMS,
                    format!("malformed text message body: {e}"),
                ))
            }
        }
    } else {
        m.content.clone().unwrap_or_default()
    };
    let timestamp_ms = u64::try_from(m.timestamp)
        .ok()
        .filter(|&t| t > 0)
        .unwrap_or(now_ms);
    Ok(Message {
        id,
        destination,
        persistent: m.persistent,
        priority: m.priority.clamp(0, 9) as u8,
        timestamp_ms,
        expires_ms: u64::try_from(m.expiration).unwrap_or(0),
        reply_to: m.reply_to.as_ref().map(reply_to_stomp),
        headers,
        body,
        body_type: BodyType {
            kind,
            compressed: m.compressed,
            null: m.content.is_none(),
        },
        properties,
    })
}

/// The OpenWire message a consumer gets for broker message `msg`, stored under `seq`
/// of `destination` (the concrete destination it came from).
pub fn to_openwire_message(
    msg: &Message,
    destination: &Destination,
    seq: u64,
    redeliveries: u32,
) -> OwMessage {
    let mid = message_id(&msg.id, seq);
    let mut out = OwMessage {
        kind: match msg.body_type.kind {
            BodyKind::Text => MessageKind::Text,
            BodyKind::Bytes => MessageKind::Bytes,
            BodyKind::Map => MessageKind::Map,
            BodyKind::Object => MessageKind::Object,
            BodyKind::Stream => MessageKind::Stream,
            BodyKind::Plain => MessageKind::Plain,
        },
        producer_id: mid.producer_id.clone(),
        destination: Some(to_openwire_destination(destination)),
        message_id: Some(mid),
        persistent: msg.persistent,
        expiration: i64::try_from(msg.expires_ms).unwrap_or(i64::MAX),
        priority: msg.priority.min(9) as i8,
        reply_to: msg.reply_to.as_deref().and_then(stomp_to_openwire),
        timestamp: i64::try_from(msg.timestamp_ms).unwrap_or(i64::MAX),
        redelivery_counter: i32::try_from(redeliveries).unwrap_or(i32::MAX),
        compressed: msg.body_type.compressed,
        ..OwMessage::default()
    };
    let mut props = PrimitiveMap::new();
    if let Some(info) = advisory_info(msg) {
        out.data_structure = Some(Box::new(DataStructure::Command(Box::new(
            Command::DestinationInfo(info),
        ))));
    }
    for (k, v) in &msg.headers {
        match k.as_str() {
            ADVISORY_OPERATION | ADVISORY_DESTINATION | ADVISORY_CONNECTION => {}
            CORRELATION_ID if out.correlation_id.is_none() => out.correlation_id = Some(v.clone()),
            JMS_TYPE if out.jms_type.is_none() => out.jms_type = Some(v.clone()),
            GROUP_ID if out.group_id.is_none() => out.group_id = Some(v.clone()),
            GROUP_SEQ => out.group_sequence = v.trim().parse().unwrap_or(0),
            ORIGINAL_DESTINATION if out.original_destination.is_none() => {
                out.original_destination = stomp_to_openwire(v)
            }
            _ if props.get(k).is_none() => props.insert(k.clone(), PrimitiveValue::string(v)),
            // A repeated STOMP header: the first value wins.
            _ => {}
        }
    }
    for (k, v) in &msg.properties {
        let value = match v {
            PropValue::Bool(b) => PrimitiveValue::Boolean(*b),
            PropValue::Byte(b) => PrimitiveValue::Byte(*b),
            PropValue::Short(x) => PrimitiveValue::Short(*x),
            PropValue::Int(x) => PrimitiveValue::Int(*x),
            PropValue::Long(x) => PrimitiveValue::Long(*x),
            PropValue::Float(x) => PrimitiveValue::Float(*x),
            PropValue::Double(x) => PrimitiveValue::Double(*x),
            PropValue::Opaque(b) => match PrimitiveValue::from_bytes(b) {
                Ok(v) => v,
                Err(_) => continue,
            },
        };
        props.insert(k.clone(), value);
    }
    // A map that cannot be encoded (a key over 64 KiB) is dropped rather than the
    // message: nothing else could be done with it.
    if out.set_properties(&props).is_err() {
        out.marshalled_properties = None;
    }
    if msg.body_type.null {
        out.content = None;
    } else if msg.body_type.kind == BodyKind::Text && !msg.body_type.compressed {
        let text = String::from_utf8_lossy(&msg.body);
        if out.set_text(Some(&text)).is_err() {
            out.content = None;
        }
    } else if !msg.body.is_empty() {
        out.content = Some(msg.body.clone());
    }
    out
}
