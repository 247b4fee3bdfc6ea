//! STOMP 1.0 / 1.1 / 1.2 front-end.
//!
//! * [`frame`]   — `Frame` and `Command`: the decoded unit, plus builders for server frames.
//! * [`codec`]   — bytes <-> frames: incremental, bounded `Decoder`; `encode`. The wire
//!   format (grammar, escaping table, limits) is documented at the top of that file.
//! * [`version`] — version negotiation (`accept-version`) and `heart-beat` parsing.
//! * [`session`] — `Session`: one connection's protocol state machine (frames and broker
//!   events in, actions out).
//! * [`error`]   — `StompError`: every protocol violation, each renderable as an ERROR frame.
//!
//! Pure code over `bytes`; no I/O and no runtime here, so it is tested and benchmarked
//! without sockets (`benches/stomp_codec.rs`).

pub mod codec;
pub mod error;
pub mod frame;
pub mod session;
pub mod version;

pub use codec::{encode, encode_heartbeat, DecodedItem, Decoder, Encoder, Limits};
pub use error::StompError;
pub use frame::{Command, Frame};
pub use version::{negotiate, negotiate_heart_beat, parse_heart_beat, Version};
