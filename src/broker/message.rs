//! Messages as the broker core holds them: immutable once sent, shared by reference
//! between the destination that stores them and the connections they are delivered to.

use std::sync::Arc;

use bytes::Bytes;

use super::destination::Destination;

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
    /// Every other header/property the producer set, in order.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

/// How messages travel between shards and connections.
pub type MessageRef = Arc<Message>;

impl Message {
    /// Bytes this message charges against the memory limit: body plus headers plus a
    /// fixed overhead for the bookkeeping around it.
    pub fn memory_size(&self) -> usize {
        const OVERHEAD: usize = 128;
        let headers: usize = self.headers.iter().map(|(k, v)| k.len() + v.len()).sum();
        OVERHEAD + self.id.len() + headers + self.body.len()
    }

    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expires_ms != 0 && self.expires_ms <= now_ms
    }
}
