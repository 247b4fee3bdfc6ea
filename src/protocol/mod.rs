//! Wire protocols: STOMP 1.0–1.2 and OpenWire v1–v12 (the ActiveMQ JMS client's
//! protocol, negotiated down to the client's version).
//!
//! Each protocol has a synchronous session state machine (`stomp::session`,
//! `openwire::session`) that turns the client's frames into protocol-neutral broker
//! [`Request`](crate::broker::Request)s and the broker's events back into frames; the
//! connection loops in `net` carry out what they ask. `commit` is the transaction commit
//! protocol both sessions run.
pub mod commit;
pub mod limits;
pub mod openwire;
pub mod stomp;

use crate::broker::Router;

/// Ids and time a session needs from the broker; a trait so tests can make them
/// deterministic.
pub trait SessionEnv {
    /// A new broker-wide unique message id.
    fn next_message_id(&self) -> String;
    /// Wall clock, milliseconds since the Unix epoch (message timestamps).
    fn now_ms(&self) -> u64;
}

impl SessionEnv for Router {
    fn next_message_id(&self) -> String {
        Router::next_message_id(self)
    }
    fn now_ms(&self) -> u64 {
        unix_now_ms()
    }
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn unix_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
