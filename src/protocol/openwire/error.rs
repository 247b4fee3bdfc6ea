//! Errors raised while decoding or encoding OpenWire.
//!
//! Decoding errors are fatal for the connection: the Java client parses field by field
//! and never resynchronises, so a peer that sent one malformed frame cannot be trusted to
//! send a well-formed next one. [`super::Decoder`] therefore repeats its first error.
//! Encoding errors name a value that the negotiated layout cannot carry (a string over
//! 65535 modified-UTF-8 bytes, an array over 32767 elements, a command type the version
//! lacks); nothing is written then.

/// An OpenWire protocol violation (decode) or an unencodable value (encode).
/// `Clone` so a failed decoder can repeat its verdict.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenWireError {
    // --- Framing -----------------------------------------------------------------------
    /// The size prefix (type byte + body) exceeds the decoder's `max_frame_bytes`;
    /// refused as soon as the 4 prefix bytes arrive, before any body is buffered.
    #[error("frame of {size} bytes exceeds the maximum frame size of {limit} bytes")]
    FrameTooLarge { size: u64, limit: usize },
    /// A size prefix below 1: every frame holds at least its type byte.
    #[error("invalid frame size {0}")]
    InvalidFrameSize(i32),
    /// A command type byte this codec does not implement (0 is Java's never-used null
    /// command).
    #[error("unknown command type {0}")]
    UnknownType(u8),
    /// A command type that the negotiated OpenWire version does not have (MessagePull
    /// before v2, ProducerAck and BlobMessage before v3): refused on decode, as Java's
    /// marshaller factory of that version would, and never encoded.
    #[error("{what} does not exist in OpenWire v{version}")]
    NotInVersion { what: &'static str, version: i32 },

    // --- Frame bodies --------------------------------------------------------------------
    /// The body ended inside a field: the size prefix and the layout disagree.
    #[error("frame body ends inside a field (at body byte {offset})")]
    Truncated { offset: usize },
    /// The layout of `what` was read completely but its frame (or byte sequence) holds
    /// more bytes.
    #[error("{left} bytes left over after {what}")]
    TrailingBytes { what: &'static str, left: usize },
    /// A nested object whose type byte is not allowed in that field (e.g. a ConnectionId
    /// where a destination belongs), or an unknown type in an "any object" field.
    #[error("expected {expected}, found data structure type {found}")]
    UnexpectedType { expected: &'static str, found: u8 },
    /// A null where Tandem requires a value: the string inside an id or destination, an
    /// element of an object array. The Java client never sends these.
    #[error("null {0}")]
    NullField(&'static str),
    /// A negative length or count where Java would throw (`NegativeArraySizeException`).
    #[error("negative {what} {value}")]
    NegativeLength { what: &'static str, value: i64 },
    /// Bytes that Java's `DataInput.readUTF` would not produce from a `writeUTF`: a raw
    /// NUL, a 4-byte UTF-8 sequence, an overlong form, a lone surrogate, a cut sequence.
    #[error("malformed modified UTF-8 at string byte {offset}")]
    InvalidModifiedUtf8 { offset: usize },
    /// A primitive-map value tag outside 0..=13.
    #[error("unknown primitive type tag {0}")]
    UnknownPrimitiveTag(u8),
    /// An enumerated byte (ack type, transaction type, destination operation) outside its
    /// defined values.
    #[error("invalid {what} {value}")]
    InvalidEnum { what: &'static str, value: u8 },
    /// Nested objects, throwable causes or primitive maps deeper than
    /// [`super::primitives::MAX_NESTING_DEPTH`]: refused so a hostile frame cannot
    /// overflow the stack.
    #[error("objects nested deeper than {limit} levels")]
    TooDeep { limit: usize },
    /// A message body was asked for as text but is zlib-compressed
    /// (`jms.useCompression`); Tandem passes such bodies through without reading them.
    #[error("message body is compressed")]
    CompressedBody,
    /// A WireFormatInfo that does not start with `ActiveMQ`.
    #[error("wire format magic is not \"ActiveMQ\"")]
    BadMagic,

    // --- Encoding ------------------------------------------------------------------------
    /// `DataOutput.writeUTF` carries at most 65535 bytes.
    #[error("string of {bytes} modified UTF-8 bytes is too long (at most 65535)")]
    StringTooLong { bytes: usize },
    /// Object arrays and stack traces count their elements in a signed 16-bit short.
    #[error("array of {len} elements is too long (at most 32767)")]
    ArrayTooLong { len: usize },
    /// A byte sequence or a whole frame larger than a signed 32-bit length can say.
    #[error("{bytes} bytes do not fit a 32-bit length")]
    TooLargeToEncode { bytes: usize },
}
