//! Loose-encoding primitives of OpenWire v1 to v12 (Java's `BaseDataStreamMarshaller`
//! and `MarshallingSupport`), plus the reader and writer every command body is built
//! from; they carry the negotiated version the layouts depend on.
//!
//! This file holds the layouts the `Reader` and `Writer` share, the nesting bound
//! and the `Structure` trait of nested objects. The rest is split by idea:
//!
//! * `reader`    — `Reader`: decoding scalars, strings, byte sequences, nested objects
//!   and arrays.
//! * `writer`    — `Writer`: encoding the same.
//! * `mutf8`     — modified UTF-8 (Java `DataOutput.writeUTF`), its layout and what
//!   decoding refuses.
//! * `throwable` — [`Throwable`] (T): its layout, reading, writing and the v1/v10
//!   message cut.
//! * `map`       — [`PrimitiveMap`] and [`PrimitiveValue`]: the primitive map layout and
//!   its tags.
//!
//! # Scalars, strings, byte sequences
//!
//! ```text
//! bool            1 byte, 00 or 01 (any non-zero byte reads as true, as in Java)
//! byte/short/int/long   1/2/4/8 bytes, big-endian, two's complement (Java DataOutput)
//! float/double    4/8 bytes, IEEE 754 big-endian (primitive maps only)
//! String  (S)     bool notNull ; if notNull: u16 byteLength ; modified UTF-8 bytes
//! bytes   (BS)    bool notNull ; if notNull: i32 length (>= 0) ; bytes
//! ```
//!
//! # Nested objects and arrays (cache disabled)
//!
//! ```text
//! N(x)   bool notNull ; if notNull: u8 dataStructureType ; that type's loose body
//! A(x)   bool notNull ; if notNull: i16 count (>= 0) ; count x N(x)   (no null elements)
//! ```
//!
//! A "cached" field is written exactly like N(x) once the cache is negotiated off, which
//! Tandem always does (see [`super::wireformat`]).

mod map;
mod mutf8;
mod reader;
mod throwable;
mod writer;

pub use map::{PrimitiveMap, PrimitiveValue};
pub use mutf8::{decode_mutf8, encode_mutf8, mutf8_len};
pub(crate) use reader::Reader;
#[cfg(test)]
pub(crate) use throwable::cut_message;
pub use throwable::{StackTraceElement, Throwable};
pub(crate) use writer::Writer;

use super::error::OpenWireError;

type Result<T> = std::result::Result<T, OpenWireError>;

/// Deepest nesting of objects, throwable causes and primitive maps/lists one frame may
/// use. Real traffic stays below 8 (a dispatch of an advisory carrying a DestinationInfo
/// is 4); the bound keeps a hostile frame from overflowing the stack.
pub const MAX_NESTING_DEPTH: usize = 32;

/// Most bytes `writeUTF` can carry (its length prefix is a u16).
pub const UTF_MAX_BYTES: usize = u16::MAX as usize;

/// A type that can appear as a nested object N(x): it knows which type bytes it accepts
/// and how to read and write its loose body (the bytes after the type byte).
pub(crate) trait Structure: Sized {
    /// Named in [`OpenWireError::UnexpectedType`].
    const WHAT: &'static str;
    fn accepts(type_id: u8) -> bool;
    fn type_id(&self) -> u8;
    fn read_body(type_id: u8, r: &mut Reader) -> Result<Self>;
    fn write_body(&self, w: &mut Writer) -> Result<()>;
}
