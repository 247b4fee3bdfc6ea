//! Network front-ends: accept loops and the per-connection read/write loop.
//!
//! * [`stomp`]  — `serve_stomp`: accept STOMP connections and run each one's loop
//!   (reader, event pump, writer, heart-beat timer) around a `protocol::stomp::Session`.
//! * [`signal`] — a single-waiter wake-up flag the connection's tasks use to nudge each
//!   other (runtime-neutral: plain `Waker`s).

pub mod signal;
pub mod stomp;

pub use stomp::serve_stomp;
