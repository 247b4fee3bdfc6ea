//! What the OpenWire client hands out and takes: [`Message`] (built from a
//! MessageDispatch), [`SubscriptionId`], and the mapping between `/queue/NAME`-style
//! names and OpenWire destinations.

use bytes::Bytes;

use super::{ClientError, PrimitiveValue};
use crate::protocol::openwire::{ConsumerId, Destination, DestinationKind, MessageId, MessageKind};

/// A consumer's id (`<connection id>:1:<n>`); the same across reconnects.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SubscriptionId {
    pub(super) value: i64,
    text: String,
}

impl SubscriptionId {
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// One delivered message.
#[derive(Debug, Clone)]
pub struct Message {
    /// `/queue/NAME` or `/topic/NAME` (temporary ones: `/temp-queue/..`, `/temp-topic/..`).
    pub destination: String,
    /// The JMSMessageID: `<producer id>:<seq>`.
    pub message_id: String,
    pub subscription: SubscriptionId,
    /// The broker delivered it before (redelivery counter > 0).
    pub redelivered: bool,
    pub redelivery_counter: i32,
    pub persistent: bool,
    /// JMSTimestamp, epoch ms.
    pub timestamp: i64,
    /// It was a TextMessage (`body` is its UTF-8 text); else the raw content.
    pub is_text: bool,
    pub properties: Vec<(String, PrimitiveValue)>,
    pub body: Bytes,
    pub(super) id: MessageId,
    pub(super) dispatch_destination: Option<Destination>,
    pub(super) consumer: ConsumerId,
    /// The connection it arrived on; an ack on a later connection is dropped.
    pub(super) generation: u64,
}

impl Message {
    pub fn property(&self, name: &str) -> Option<&PrimitiveValue> {
        self.properties
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// A string property (None if absent or not a string).
    pub fn property_str(&self, name: &str) -> Option<&str> {
        self.property(name).and_then(PrimitiveValue::as_str)
    }

    /// An integer property (byte, short, int or long).
    pub fn property_i64(&self, name: &str) -> Option<i64> {
        self.property(name).and_then(PrimitiveValue::as_i64)
    }

    pub(super) fn from_dispatch(
        m: crate::protocol::openwire::Message,
        dispatch_destination: Option<Destination>,
        consumer: &ConsumerId,
        redelivery_counter: i32,
        generation: u64,
    ) -> Result<Message, ClientError> {
        let is_text = m.kind == MessageKind::Text;
        let body = if is_text && !m.compressed {
            m.text()?
                .map(|t| Bytes::from(t.into_bytes()))
                .unwrap_or_default()
        } else {
            m.content.clone().unwrap_or_default()
        };
        let properties = m
            .properties()?
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        let destination = m
            .destination
            .as_ref()
            .or(dispatch_destination.as_ref())
            .map(stomp_name)
            .unwrap_or_default();
        let id = m.message_id.clone().unwrap_or_default();
        Ok(Message {
            destination,
            message_id: id.to_string(),
            subscription: subscription_id(consumer.value, consumer),
            // The dispatch's counter is the real one (the client overwrites the
            // message's with it, OPENWIRE.md §4.10).
            redelivered: redelivery_counter > 0,
            redelivery_counter,
            persistent: m.persistent,
            timestamp: m.timestamp,
            is_text,
            properties,
            body,
            id,
            dispatch_destination,
            consumer: consumer.clone(),
            generation,
        })
    }
}

pub(super) fn subscription_id(value: i64, id: &ConsumerId) -> SubscriptionId {
    SubscriptionId {
        value,
        text: id.to_string(),
    }
}

/// `/queue/X` / `/topic/X` (also `queue://X`, `topic://X`) to an OpenWire destination.
pub(super) fn destination(name: &str) -> Result<Destination, ClientError> {
    let split = [
        ("/queue/", DestinationKind::Queue),
        ("/topic/", DestinationKind::Topic),
        ("/temp-queue/", DestinationKind::TempQueue),
        ("/temp-topic/", DestinationKind::TempTopic),
        ("queue://", DestinationKind::Queue),
        ("topic://", DestinationKind::Topic),
    ];
    for (prefix, kind) in split {
        if let Some(rest) = name.strip_prefix(prefix) {
            if !rest.is_empty() {
                return Ok(Destination::new(kind, rest));
            }
        }
    }
    Err(ClientError::Invalid(format!(
        "destination {name:?}: expected /queue/NAME or /topic/NAME"
    )))
}

fn stomp_name(d: &Destination) -> String {
    let prefix = match d.kind {
        DestinationKind::Queue => "/queue/",
        DestinationKind::Topic => "/topic/",
        DestinationKind::TempQueue => "/temp-queue/",
        DestinationKind::TempTopic => "/temp-topic/",
    };
    format!("{prefix}{}", d.physical_name)
}
