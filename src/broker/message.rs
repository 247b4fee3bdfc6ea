//! Messages as the broker core holds them: immutable once sent, shared by reference
//! between the destination that stores them and the connections they are delivered to.
//!
//! One message, two protocols. STOMP and OpenWire (JMS) producers build the same
//! [`Message`], so a STOMP consumer and a JMS consumer see the same thing:
//!
//! | JMS (OpenWire)                   | here                                 | STOMP header          |
//! |----------------------------------|--------------------------------------|-----------------------|
//! | JMSMessageID (`producerId:seq`)  | `id`                                 | `message-id`          |
//! | JMSDeliveryMode, JMSPriority     | `persistent`, `priority`             | `persistent`, `priority` |
//! | JMSTimestamp (the producer's)    | `timestamp_ms`                       | `timestamp`           |
//! | JMSExpiration                    | `expires_ms`                         | `expires`             |
//! | JMSReplyTo                       | `reply_to` (STOMP spelling)          | `reply-to`            |
//! | JMSCorrelationID, JMSType        | header `correlation-id`, `type`      | the same              |
//! | JMSXGroupID, JMSXGroupSeq        | header `JMSXGroupID`, `JMSXGroupSeq` | the same              |
//! | String properties                | headers                              | the same              |
//! | Other properties (int, long, …)  | `properties`, typed                  | rendered as text      |
//! | Message class (Text, Bytes, …)   | `body_type`                          | —                     |
//! | Text body                        | `body`, UTF-8                        | body                  |
//! | Bytes/Map/Object/Stream body     | `body`, as the client encoded it     | body                  |
//!
//! A STOMP SEND becomes a text message, or a bytes message when it has a
//! `content-length` header (ActiveMQ's rule; `amq-msg-type: text|bytes` overrides).

use std::sync::Arc;

use bytes::Bytes;

use super::destination::Destination;

/// The header naming a message's group (JMS `JMSXGroupID`, the same name in STOMP):
/// messages of one group go to one consumer of a queue.
pub const GROUP_ID: &str = "JMSXGroupID";
/// The header carrying a message's place in its group (JMS `JMSXGroupSeq`, a string in
/// STOMP): 1 opens the group, -1 closes it (`backlog`).
pub const GROUP_SEQ: &str = "JMSXGroupSeq";

/// A message. Immutable after the producer's connection built it; the body is a
/// reference-counted [`Bytes`], so fan-out and cross-shard delivery never copy it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Broker-wide unique id (`message-id` in STOMP), assigned at the producer's connection.
    pub id: String,
    pub destination: Destination,
    /// Persistent messages are journaled and survive a restart; others live in memory.
    pub persistent: bool,
    /// JMS priority 0-9 (4 is the default).
    pub priority: u8,
    /// Milliseconds since the Unix epoch when the broker accepted it.
    pub timestamp_ms: u64,
    /// Absolute expiry in ms since the Unix epoch; 0 means never.
    pub expires_ms: u64,
    /// Where replies should go, as the producer spelled it.
    pub reply_to: Option<String>,
    /// Every other header/property the producer set, in order (string values; typed
    /// JMS properties are in `properties`).
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// The JMS message class a JMS consumer receives `body` as.
    pub body_type: BodyType,
    /// JMS properties whose value is not a string (a JMS producer's `setIntProperty`
    /// and the like), typed; never the same name as a header. Empty for STOMP.
    pub properties: Vec<(String, PropValue)>,
}

/// The JMS message class of a message (OpenWire types 23–28).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum BodyKind {
    /// TextMessage: `body` is UTF-8 text.
    #[default]
    Text,
    /// BytesMessage: `body` is the bytes.
    Bytes,
    /// MapMessage: `body` is an OpenWire primitive map, opaque to the broker.
    Map,
    /// ObjectMessage: `body` is Java serialization, opaque.
    Object,
    /// StreamMessage: `body` is OpenWire tagged primitives, opaque.
    Stream,
    /// Message: no body (JMS `session.createMessage()`).
    Plain,
}

/// How a JMS consumer reads the body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct BodyType {
    pub kind: BodyKind,
    /// The JMS client compressed the body (`jms.useCompression`): it is a zlib stream
    /// that only a JMS client unpacks; passed through as is.
    pub compressed: bool,
    /// The JMS body is null, not empty (a TextMessage whose text is null); `body` is
    /// then empty.
    pub null: bool,
}

impl BodyType {
    pub const TEXT: BodyType = BodyType {
        kind: BodyKind::Text,
        compressed: false,
        null: false,
    };
    pub const BYTES: BodyType = BodyType {
        kind: BodyKind::Bytes,
        compressed: false,
        null: false,
    };
}

/// A typed JMS property value (JMS allows boolean, byte, short, int, long, float,
/// double and String; strings are headers).
#[derive(Clone, Debug)]
pub enum PropValue {
    Bool(bool),
    Byte(i8),
    Short(i16),
    Int(i32),
    Long(i64),
    Float(f32),
    Double(f64),
    /// Any other value an OpenWire producer can set (ActiveMQ also allows char, byte
    /// arrays, maps, lists and null): its OpenWire primitive-map encoding (type tag,
    /// then value), passed through to JMS consumers and invisible to selectors and
    /// STOMP consumers.
    Opaque(Bytes),
}

impl PartialEq for PropValue {
    /// Floats compare by bits, so that a message equals its decoded journal copy.
    fn eq(&self, other: &PropValue) -> bool {
        use PropValue::*;
        match (self, other) {
            (Bool(a), Bool(b)) => a == b,
            (Byte(a), Byte(b)) => a == b,
            (Short(a), Short(b)) => a == b,
            (Int(a), Int(b)) => a == b,
            (Long(a), Long(b)) => a == b,
            (Float(a), Float(b)) => a.to_bits() == b.to_bits(),
            (Double(a), Double(b)) => a.to_bits() == b.to_bits(),
            (Opaque(a), Opaque(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for PropValue {}

impl PropValue {
    /// The value as Java's `toString()` writes it (what a STOMP consumer sees);
    /// `None` for an opaque value.
    pub fn to_java_string(&self) -> Option<String> {
        Some(match self {
            PropValue::Bool(v) => v.to_string(),
            PropValue::Byte(v) => v.to_string(),
            PropValue::Short(v) => v.to_string(),
            PropValue::Int(v) => v.to_string(),
            PropValue::Long(v) => v.to_string(),
            PropValue::Float(v) => java_double_string(f64::from(*v)),
            PropValue::Double(v) => java_double_string(*v),
            PropValue::Opaque(_) => return None,
        })
    }

    /// Bytes it charges against the memory limit.
    fn size(&self) -> usize {
        match self {
            PropValue::Opaque(b) => 8 + b.len(),
            _ => 8,
        }
    }
}

/// Close to Java's `Double.toString`: `1.0`, `0.5`, `1.0E10`, `NaN`, `Infinity`.
fn java_double_string(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let a = v.abs();
    if a == 0.0 || (1e-3..1e7).contains(&a) {
        let s = v.to_string();
        if s.contains('.') {
            s
        } else {
            format!("{s}.0")
        }
    } else {
        let s = format!("{v:E}");
        match s.split_once('E') {
            Some((m, e)) if !m.contains('.') => format!("{m}.0E{e}"),
            _ => s,
        }
    }
}

/// How messages travel between shards and connections.
pub type MessageRef = Arc<Message>;

impl Message {
    /// Bytes this message charges against the memory limit: body plus headers plus a
    /// fixed overhead for the bookkeeping around it.
    pub fn memory_size(&self) -> usize {
        const OVERHEAD: usize = 128;
        let headers: usize = self.headers.iter().map(|(k, v)| k.len() + v.len()).sum();
        let properties: usize = self
            .properties
            .iter()
            .map(|(k, v)| k.len() + v.size())
            .sum();
        OVERHEAD + self.id.len() + headers + properties + self.body.len()
    }

    /// The header (string property) `name`: the first one, as STOMP says.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The typed (non-string) property `name`.
    pub fn property(&self, name: &str) -> Option<&PropValue> {
        self.properties
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expires_ms != 0 && self.expires_ms <= now_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_print_as_java_does() {
        assert_eq!(java_double_string(1.0), "1.0");
        assert_eq!(java_double_string(0.5), "0.5");
        assert_eq!(java_double_string(-2.25), "-2.25");
        assert_eq!(java_double_string(1e10), "1.0E10");
        assert_eq!(java_double_string(f64::NAN), "NaN");
        assert_eq!(PropValue::Int(-3).to_java_string().as_deref(), Some("-3"));
        assert_eq!(
            PropValue::Bool(true).to_java_string().as_deref(),
            Some("true")
        );
    }
}
