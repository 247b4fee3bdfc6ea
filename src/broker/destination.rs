//! Destinations: the protocol-neutral name of a queue or topic.
//!
//! STOMP spells them `/queue/orders`, `/topic/prices`, `/temp-queue/x`, `/temp-topic/x`
//! (and `/remote-temp-queue/ID:...` for a temporary destination created by another
//! connection); the broker core only sees a [`Destination`].

use std::fmt;

/// What kind of destination a name refers to. Temporary destinations belong to the
/// connection that created them and vanish with it; they are never journaled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DestKind {
    Queue,
    Topic,
    TempQueue,
    TempTopic,
}

impl DestKind {
    /// Queues (temporary or not) hand each message to one consumer; topics fan out.
    pub fn is_queue(self) -> bool {
        matches!(self, DestKind::Queue | DestKind::TempQueue)
    }
    pub fn is_temporary(self) -> bool {
        matches!(self, DestKind::TempQueue | DestKind::TempTopic)
    }
    pub(crate) fn code(self) -> u8 {
        match self {
            DestKind::Queue => 0,
            DestKind::Topic => 1,
            DestKind::TempQueue => 2,
            DestKind::TempTopic => 3,
        }
    }
    pub(crate) fn from_code(code: u8) -> Option<DestKind> {
        Some(match code {
            0 => DestKind::Queue,
            1 => DestKind::Topic,
            2 => DestKind::TempQueue,
            3 => DestKind::TempTopic,
            _ => return None,
        })
    }
}

/// A destination: kind plus physical name. For temporary destinations the name is
/// the broker-wide unique name (`ID:<connection>:<n>`), not the client's alias.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Destination {
    pub kind: DestKind,
    pub name: String,
}

/// The dead-letter queue ActiveMQ uses by default (`ActiveMQ.DLQ`).
pub const DEAD_LETTER_QUEUE: &str = "ActiveMQ.DLQ";

impl Destination {
    pub fn queue(name: impl Into<String>) -> Destination {
        Destination {
            kind: DestKind::Queue,
            name: name.into(),
        }
    }
    pub fn topic(name: impl Into<String>) -> Destination {
        Destination {
            kind: DestKind::Topic,
            name: name.into(),
        }
    }
    pub fn dead_letter_queue() -> Destination {
        Destination::queue(DEAD_LETTER_QUEUE)
    }

    /// Which shard owns this destination. FNV-1a over kind and name: stable across
    /// restarts and builds (the journal of a shard holds only its destinations, so the
    /// mapping must never change for a given shard count).
    pub fn shard(&self, shard_count: usize) -> usize {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        let kind = if self.kind.is_queue() { 0u8 } else { 1u8 };
        for byte in std::iter::once(kind).chain(self.name.bytes()) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        (hash % shard_count.max(1) as u64) as usize
    }

    /// Whether this names a pattern rather than one destination: a queue or topic (not
    /// a temporary one) with a `*` or `>` segment (`broker::wildcard`). Subscribing to
    /// it is a wildcard subscription; sending to it sends to the destination of that
    /// literal name, as ActiveMQ does.
    pub fn is_wildcard(&self) -> bool {
        !self.kind.is_temporary() && super::wildcard::is_wildcard(&self.name)
    }

    /// The STOMP spelling, as it appears in `destination` and `reply-to` headers.
    pub fn stomp_name(&self) -> String {
        match self.kind {
            DestKind::Queue => format!("/queue/{}", self.name),
            DestKind::Topic => format!("/topic/{}", self.name),
            DestKind::TempQueue => format!("/remote-temp-queue/{}", self.name),
            DestKind::TempTopic => format!("/remote-temp-topic/{}", self.name),
        }
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            DestKind::Queue => "queue",
            DestKind::Topic => "topic",
            DestKind::TempQueue => "temp-queue",
            DestKind::TempTopic => "temp-topic",
        };
        write!(f, "{kind}://{}", self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_mapping_is_stable_and_in_range() {
        let d = Destination::queue("orders");
        assert_eq!(d.shard(1), 0);
        let s = d.shard(4);
        assert!(s < 4);
        assert_eq!(s, Destination::queue("orders").shard(4));
    }
}
