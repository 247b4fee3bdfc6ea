//! OpenWire codec: what ActiveMQ Classic's JMS clients speak, v12 (5.17's default) and
//! every older version down to v1 (the version is negotiated down to the client's; the
//! per-version field table is in [`codec`]), in loose encoding with the marshal cache
//! off (OPENWIRE.md is the fact sheet).
//!
//! * [`codec`]      — frames <-> [`Command`]s: incremental, bounded [`Decoder`]; [`encode`] /
//!   [`Encoder`], both at the negotiated version. The frame layout and what each version
//!   lacks are documented there.
//! * [`command`]    — [`Command`] (generated from one table line per command type) and
//!   one struct per command type, each next to its exact field order; [`DataStructure`]
//!   for "any object" fields.
//! * [`message`]    — [`Message`], the layout shared by the six JMS message types (and
//!   Blob); body and property helpers.
//! * [`ids`]        — connection/session/consumer/producer/broker/message ids, transaction
//!   ids and destinations.
//! * [`wireformat`] — [`WireFormatInfo`] (the handshake frame) and its negotiation.
//! * [`primitives`] — loose primitives: modified UTF-8, byte sequences, nested objects,
//!   throwables, the primitive map.
//! * [`error`]      — [`OpenWireError`].
//! * [`session`]    — the per-connection state machine: commands in, broker requests and
//!   commands out (what `net::openwire` drives).
//!
//! Pure code over `bytes`, no I/O. Only loose encoding is implemented: the broker's
//! WireFormatInfo ([`WireFormatInfo::tandem`]) turns tight encoding and the cache off for
//! both directions, and the handshake itself is always loose.
//!
//! # Who sends what
//!
//! | broker receives (C→B)                         | broker sends (B→C)                        |
//! |-----------------------------------------------|-------------------------------------------|
//! | WireFormatInfo (first frame)                  | WireFormatInfo (first frame), BrokerInfo  |
//! | ConnectionInfo, SessionInfo, ConsumerInfo, ProducerInfo | Response, ExceptionResponse to every `response_required` command |
//! | Message (types 23–29): a send                 | MessageDispatch (a null message ends a pull or a browse) |
//! | MessageAck, MessagePull                       | ConnectionControl (after ConnectionInfo), ConsumerControl (prefetch/close) |
//! | TransactionInfo, DestinationInfo (temp dests), RemoveSubscriptionInfo | IntegerResponse (XA prepare), DataArrayResponse (XA recover) |
//! | RemoveInfo, ShutdownInfo                      | ConnectionError (async error), ProducerAck (producer window) |
//! | KeepAliveInfo, ConnectionControl and ConsumerControl (failover) | KeepAliveInfo (at least every 10 s when idle) |
//!
//! ControlCommand and DataResponse exist for completeness. Every type decodes and
//! encodes both ways, so each direction can be tested by round trip.
//!
//! # Captured vectors
//!
//! `vectors/activemq-5.17.2.txt` holds real frames of every command type, in the
//! direction(s) each travels, recorded between the ActiveMQ 5.17.2 JMS client and broker
//! (loose, no cache) by `tools/capture-openwire` (its header says how); `captured_tests`
//! decodes each one and re-encodes it to the same bytes, and checks the fixture's coverage
//! (the types no capture can hold, B→C ConsumerControl and DataResponse, are named there).

pub mod codec;
pub mod command;
pub mod error;
pub mod ids;
pub mod message;
pub mod primitives;
pub mod session;
pub mod wireformat;

pub use codec::{encode, Decoder, Encoder, DEFAULT_MAX_FRAME_BYTES};
pub use command::{
    AckType, BrokerInfo, Command, ConnectionControl, ConnectionError, ConnectionInfo,
    ConsumerControl, ConsumerInfo, ControlCommand, DataArrayResponse, DataResponse, DataStructure,
    DestinationInfo, DestinationOperation, ExceptionResponse, Header, IntegerResponse,
    KeepAliveInfo, MessageAck, MessageDispatch, MessagePull, ProducerAck, ProducerInfo, RemoveInfo,
    RemoveSubscriptionInfo, RemoveTarget, Response, SessionInfo, ShutdownInfo, TransactionInfo,
    TransactionType,
};
pub use error::OpenWireError;
pub use ids::{
    BrokerId, ConnectionId, ConsumerId, Destination, DestinationKind, LocalTransactionId,
    MessageId, ProducerId, SessionId, TransactionId, XaTransactionId,
};
pub use message::{BlobFields, Message, MessageKind};
pub use primitives::{PrimitiveMap, PrimitiveValue, StackTraceElement, Throwable};
pub use wireformat::{Negotiated, WireFormatInfo};

#[cfg(test)]
mod captured_tests;
#[cfg(test)]
mod codec_tests;
