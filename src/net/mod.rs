//! Network front-ends: accept loops and the per-connection read/write loop.
//!
//! * [`connector`] — `serve_connector`: accept on a transport connector, sniff each
//!   connection's first bytes (STOMP, OpenWire, replication) and run its loop;
//!   `ConnectorPolicy`.
//! * [`conn`]      — the connection loop every protocol shares (reader, event pump,
//!   writer, keep-alive timer) around a protocol session ([`conn::Wire`]).
//! * [`stomp`]     — STOMP's session and codec in that loop.
//! * [`openwire`]  — OpenWire's (JMS clients) session and codec in that loop.
//! * [`tls`]       — TLS material (PKCS12 stores, PEM files) turned into rustls configs.
//! * [`signal`]    — a single-waiter wake-up flag the connection's tasks use to nudge
//!   each other (runtime-neutral: plain `Waker`s).

pub mod conn;
pub mod connector;
pub mod openwire;
pub mod signal;
pub mod stomp;
pub mod tls;

pub use connector::{serve_connector, ConnectorPolicy};
