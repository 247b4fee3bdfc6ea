//! OpenWire transport: NOT BUILT YET. `--protocol openwire` stops with
//! [`TransportError::NotBuilt`] until this file implements [`super::Transport`].
//!
//! To add it (a few dozen lines, like `stomp.rs`), once
//! `tandem::client::openwire::Client` exists with the STOMP client's shape:
//!
//! * `pub struct OpenWire { client: tandem::client::openwire::Client }` and
//!   `impl Transport for OpenWire`, forwarding each call: `send`/`send_async` with
//!   `DeliveryMode` from `SendOptions::persistent` (sync sends, so the Response is the
//!   confirm), a `BytesMessage` carrying the body as is (the check reads the first 24
//!   bytes); `Destination::kind`/`name` pick an ActiveMQQueue or ActiveMQTopic;
//!   `subscribe` maps [`crate::cli::Ack`] to AUTO/CLIENT/INDIVIDUAL_ACKNOWLEDGE and
//!   `prefetch` to the consumer's prefetchSize; `Delivery::redelivered` is
//!   `redeliveryCounter > 0`.
//! * add a `TransportError::OpenWire(..)` variant (and its `is_fatal` arm);
//! * in `crate::run_with`'s caller (`main.rs`), route `Protocol::Openwire` to
//!   `workload::run::<OpenWire>` instead of [`connect_error`].

use super::TransportError;

/// What `--protocol openwire` returns until the transport above is written.
pub fn connect_error() -> TransportError {
    TransportError::NotBuilt("openwire")
}
