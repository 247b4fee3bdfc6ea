//! Blocking clients with ActiveMQ-style failover, for tools (`tandem-load`) and tests:
//! STOMP ([`Client`], `stomp://h:p`) and OpenWire ([`openwire::Client`], `tcp://h:p`),
//! each also over TLS (`stomp+ssl://`, `ssl://`; the options' `tls` says what to
//! trust) and under `failover:(...)?...`. Plain `std::net` and threads (rustls for
//! TLS), so they work from any ordinary thread.
//!
//! Both run on one reconnect/replay core and differ only in an adapter:
//!
//! * `failover` — the core: connection state machine, callers' writes and waits, the
//!   per-client I/O thread (reads, keep-alives, reconnect and replay), the
//!   `failover::Protocol` trait the adapters implement.
//! * `policy`   — reconnect order, back-off and give-up rules (pure, unit tested).
//! * `stream`   — the connection's bytes: plain TCP or TLS, and how TLS is shared
//!   between the reading I/O thread and the writers.
//! * `stomp`    — the STOMP adapter and its API, re-exported here: [`Client`],
//!   [`ClientOptions`], [`Message`], [`Pending`], [`SubscriptionId`].
//! * [`openwire`] — the OpenWire adapter and its API.
//! * this file — what both share in their API: [`AckMode`], [`ClientError`].
//!
//! The failover semantics (what is replayed, what a caller sees while disconnected)
//! are described per protocol in the `stomp` and [`openwire`] module docs.

mod error;
mod failover;
pub mod openwire;
mod policy;
mod stomp;
mod stream;
#[cfg(test)]
mod tls_tests;

use std::sync::{Mutex, MutexGuard};

pub use error::ClientError;
/// What the options' `tls` holds (rustls's client configuration; make one with
/// [`crate::net::tls::client_config`]), re-exported so users need no rustls of their own.
pub use rustls::ClientConfig as TlsClientConfig;
pub use stomp::{Client, ClientOptions, Message, Pending, SubscriptionId};

/// How a subscription's deliveries are acknowledged (the SUBSCRIBE `ack` header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckMode {
    /// The broker counts a message as consumed when it sends it.
    Auto,
    /// Cumulative: acking a message acks every earlier one of the subscription.
    Client,
    /// Each message is acked on its own.
    ClientIndividual,
}

impl AckMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AckMode::Auto => "auto",
            AckMode::Client => "client",
            AckMode::ClientIndividual => "client-individual",
        }
    }
}

/// Locks, ignoring poisoning: the state stays consistent between statements, and a
/// panicking caller thread must not take every other user of the client down with it.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
