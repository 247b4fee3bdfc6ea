//! OpenWire frames <-> commands (loose encoding, cache disabled, size prefix on), at any
//! negotiated version from 1 to 12.
//!
//! # Frame
//!
//! ```text
//! +----------------+---------+--------------------------------+
//! | i32 BE size    | u8 type | loose body of that type        |
//! +----------------+---------+--------------------------------+
//!   size = 1 + body length (the 4 size bytes are not counted)
//! ```
//!
//! The body layouts are documented next to their code: [`super::command`],
//! [`super::message`], [`super::wireformat`]; the primitives in [`super::primitives`].
//! Those are the v12 layouts; older versions lack some fields (below).
//!
//! # Versions
//!
//! Both sides use `min(12, client's version)` once the WireFormatInfos are exchanged
//! ([`super::Negotiated::version`]); [`Decoder::set_version`] and [`Encoder::version`]
//! take it. Later versions only *add* fields (three are inserted rather than appended,
//! marked "first" or "after"), so a version reads and writes the v12 layout without the
//! fields it lacks; a field absent from a frame decodes to Java's default for it, and
//! is not written at all (whatever its value). Found by comparing the
//! `looseMarshal`/`looseUnmarshal` of the marshallers of every version
//! (`org.apache.activemq.openwire.vN`: v1, v9–v12 in activemq-client 5.17, v2–v8 in
//! activemq-openwire-legacy), for every type below:
//!
//! | command (type)            | field (position if not appended)          | from | default |
//! |---------------------------|-------------------------------------------|------|---------|
//! | BrokerInfo (2)            | duplexConnection, networkConnection, connectionId | 2 | false, 0 |
//! |                           | brokerUploadUrl, networkProperties         | 3    | null    |
//! | ConnectionInfo (3)        | clientMaster                              | 2    | **true** |
//! |                           | faultTolerant, failoverReconnect          | 6    | false   |
//! |                           | clientIp                                  | 8    | null    |
//! | ConsumerInfo (5)          | networkConsumerPath                       | 4    | null    |
//! |                           | clientId (after selector)                 | 10   | null    |
//! | ProducerInfo (6)          | dispatchAsync                             | 2    | false   |
//! |                           | windowSize                                | 3    | 0       |
//! | RemoveInfo (12)           | lastDeliveredSequenceId                   | 5    | **-2** (unknown) |
//! | ConsumerControl (17)      | flush, start, stop                        | 2    | false   |
//! |                           | destination (first)                       | 6    | null    |
//! | ConnectionControl (18)    | connectedBrokers, reconnectTo, rebalanceConnection | 6 | **""**, **""**, false |
//! |                           | token                                     | 8    | null    |
//! | ProducerAck (19)          | the whole type                            | 3    | —       |
//! | MessagePull (20)          | the whole type (consumerId, destination, timeout) | 2 | — |
//! |                           | correlationId, messageId                  | 3    | null    |
//! | MessageAck (22)           | poisonCause                               | 7    | null    |
//! | Message (23–29)           | droppable                                 | 2    | false   |
//! |                           | cluster, brokerInTime, brokerOutTime      | 3    | null, 0, 0 |
//! |                           | jmsXGroupFirstForConsumer                 | 10   | false   |
//! | BlobMessage (29)          | the whole type                            | 3    | —       |
//! | MessageId (110)           | textView (first)                          | 10   | null    |
//! | Throwable (T)             | message cut to 1021 units + "..." when over 1024, when *writing* at v1 and v10 only | | |
//!
//! Identical in every version: WireFormatInfo, SessionInfo, TransactionInfo,
//! DestinationInfo, RemoveSubscriptionInfo, KeepAliveInfo, ShutdownInfo, ControlCommand,
//! ConnectionError, MessageDispatch, the Response family, every id, transaction id and
//! destination, and the primitives (strings, byte sequences, nested objects, arrays,
//! primitive maps). v11 and v12 are identical for all of these (v12 only adds the
//! broker-to-broker BrokerSubscriptionInfo, type 92). A type a version lacks is refused
//! on decode and on encode ([`OpenWireError::NotInVersion`]).
//!
//! # Decoding
//!
//! The Java client parses field by field and ignores the size, but its sizes are right,
//! so the decoder frames by the size: it refuses a size above `max_frame_bytes` as soon
//! as the 4 prefix bytes are there (before buffering any body), waits for the whole
//! frame, and then requires the body to match the type's layout exactly (no byte short,
//! no byte left over). Any error is fatal: the decoder repeats it on every later call.
//!
//! # Encoding
//!
//! The Java client does *not* skip by the size, so one wrong byte desynchronises it for
//! good: the encoder writes exactly the negotiated version's loose layout. A value the layout cannot carry
//! fails the call and leaves the output buffer as it was.

use bytes::{Buf, BufMut, BytesMut};

use super::command::{type_name, Command};
use super::error::OpenWireError;
use super::primitives::{Reader, Writer};
use super::wireformat::OPENWIRE_VERSION;

/// Bytes of the size prefix.
const SIZE_PREFIX_BYTES: usize = 4;

/// Default `max_frame_bytes` (Tandem's `maxFrameSize` default).
pub const DEFAULT_MAX_FRAME_BYTES: usize = 64 * 1024 * 1024;

/// Incremental, bounded OpenWire decoder for one connection.
///
/// Feed it the connection's read buffer after every read; each call takes at most one
/// frame off the front.
#[derive(Debug)]
pub struct Decoder {
    /// Largest accepted `size` (type byte + body), from the connector's maxFrameSize.
    max_frame_bytes: usize,
    /// Negotiated StackTraceEnabled: whether throwables carry traces and causes.
    stack_trace_enabled: bool,
    /// Negotiated OpenWire version (12 until negotiated; the WireFormatInfo itself is
    /// the same in every version).
    version: i32,
    /// Set by the first error; every later call repeats it, since the stream is lost.
    failed: Option<OpenWireError>,
}

impl Default for Decoder {
    fn default() -> Decoder {
        Decoder::new(DEFAULT_MAX_FRAME_BYTES)
    }
}

impl Decoder {
    /// A decoder for a fresh connection: v12, stack traces off until negotiated
    /// otherwise.
    pub fn new(max_frame_bytes: usize) -> Decoder {
        Decoder {
            max_frame_bytes,
            stack_trace_enabled: false,
            version: OPENWIRE_VERSION,
            failed: None,
        }
    }

    /// Applies the negotiated version ([`super::wireformat::Negotiated::version`], 1 to
    /// 12): the layouts of the frames after the WireFormatInfo.
    pub fn set_version(&mut self, version: i32) {
        self.version = version;
    }

    pub fn version(&self) -> i32 {
        self.version
    }

    /// Applies the negotiated StackTraceEnabled (see
    /// [`super::wireformat::Negotiated`]). Tandem advertises false, so this stays false
    /// unless a caller advertises otherwise.
    pub fn set_stack_trace_enabled(&mut self, enabled: bool) {
        self.stack_trace_enabled = enabled;
    }

    pub fn max_frame_bytes(&self) -> usize {
        self.max_frame_bytes
    }

    /// Changes the largest accepted frame from the next frame on (the connection loop
    /// raises it from the small pre-login bound once ConnectionInfo is accepted).
    pub fn set_max_frame_bytes(&mut self, max_frame_bytes: usize) {
        self.max_frame_bytes = max_frame_bytes;
    }

    /// Takes the next command off the front of `buf`. `Ok(None)`: need more bytes
    /// (nothing consumed). `Err`: the connection must close.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Command>, OpenWireError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let result = self.step(buf);
        if let Err(e) = &result {
            self.failed = Some(e.clone());
        }
        result
    }

    fn step(&mut self, buf: &mut BytesMut) -> Result<Option<Command>, OpenWireError> {
        let Some(prefix) = buf.get(..SIZE_PREFIX_BYTES) else {
            return Ok(None);
        };
        let size = i32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
        let size = match usize::try_from(size) {
            Ok(size) if size >= 1 => size,
            _ => return Err(OpenWireError::InvalidFrameSize(size)),
        };
        if size > self.max_frame_bytes {
            return Err(OpenWireError::FrameTooLarge {
                size: size as u64,
                limit: self.max_frame_bytes,
            });
        }
        let frame_bytes = SIZE_PREFIX_BYTES + size;
        if buf.len() < frame_bytes {
            return Ok(None);
        }
        let mut frame = buf.split_to(frame_bytes).freeze();
        frame.advance(SIZE_PREFIX_BYTES);
        let type_id = frame.get_u8();
        if !Command::is_known_type(type_id) {
            return Err(OpenWireError::UnknownType(type_id));
        }
        let mut r = Reader::new(frame, self.version, self.stack_trace_enabled);
        let command = Command::read_body(type_id, &mut r)?;
        match r.remaining() {
            0 => Ok(Some(command)),
            left => Err(OpenWireError::TrailingBytes {
                what: type_name(type_id),
                left,
            }),
        }
    }
}

/// Encoder for one connection's negotiated format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoder {
    /// Negotiated OpenWire version, 1 to 12: which fields are written.
    pub version: i32,
    /// Negotiated StackTraceEnabled; false (Tandem's choice) drops throwables' traces
    /// and causes.
    pub stack_trace_enabled: bool,
}

impl Default for Encoder {
    /// v12 without stack traces: Tandem's side of every negotiation with a v12 client.
    fn default() -> Encoder {
        Encoder::new(OPENWIRE_VERSION, false)
    }
}

impl Encoder {
    pub fn new(version: i32, stack_trace_enabled: bool) -> Encoder {
        Encoder {
            version,
            stack_trace_enabled,
        }
    }

    /// Appends one frame (size prefix, type byte, loose body) to `out`. On error nothing
    /// is appended.
    pub fn encode(&self, command: &Command, out: &mut BytesMut) -> Result<(), OpenWireError> {
        let start = out.len();
        let result = self.encode_frame(command, out);
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    fn encode_frame(&self, command: &Command, out: &mut BytesMut) -> Result<(), OpenWireError> {
        let start = out.len();
        out.put_i32(0); // patched below
        out.put_u8(command.type_id());
        command.write_body(&mut Writer::new(
            out,
            self.version,
            self.stack_trace_enabled,
        ))?;
        let size = out.len() - start - SIZE_PREFIX_BYTES;
        let size =
            i32::try_from(size).map_err(|_| OpenWireError::TooLargeToEncode { bytes: size })?;
        out[start..start + SIZE_PREFIX_BYTES].copy_from_slice(&size.to_be_bytes());
        Ok(())
    }
}

/// Appends one frame in Tandem's format with a v12 client (loose, no cache, no stack
/// traces).
pub fn encode(command: &Command, out: &mut BytesMut) -> Result<(), OpenWireError> {
    Encoder::default().encode(command, out)
}
