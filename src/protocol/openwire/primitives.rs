//! Loose-encoding primitives of OpenWire v1 to v12 (Java's `BaseDataStreamMarshaller`
//! and `MarshallingSupport`), plus the reader and writer every command body is built
//! from; they carry the negotiated version the layouts depend on.
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
//! # Modified UTF-8 (Java `DataOutput.writeUTF`)
//!
//! Each UTF-16 code unit is written on its own: U+0001..U+007F as 1 byte, U+0000 and
//! U+0080..U+07FF as 2 bytes (so NUL is `C0 80`, never a raw 00), U+0800..U+FFFF as 3
//! bytes. A character above U+FFFF is a surrogate pair, i.e. two 3-byte sequences (6
//! bytes), never the 4-byte UTF-8 form. Decoding accepts exactly what that encoder can
//! produce from a valid Unicode string and refuses everything else (raw NUL, 4-byte
//! sequences, overlong forms, lone surrogates, cut sequences): a Rust `String` cannot hold
//! a lone surrogate, and the Java client never writes the other forms.
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
//!
//! # Throwable (T)
//!
//! ```text
//! bool notNull ; if notNull:
//!     S className ; S message
//!     if StackTraceEnabled (negotiated):
//!         i16 n ; n x ( S declaringClass ; S methodName ; S fileName ; i32 lineNumber )
//!         T cause          (recursive, with its own notNull)
//! ```
//!
//! Writing at v1 or v10, a message longer than 1024 UTF-16 units is cut to its first 1021
//! and "..." (those two versions' `cutMessageIfNeeded`; the other versions write it
//! whole). Nothing else here differs between versions 1 to 12.
//!
//! # Primitive map (`MarshallingSupport.marshalPrimitiveMap`)
//!
//! ```text
//! map    i32 count (< 0: null map) ; count x ( u16-length MUTF-8 key ; value )
//! value  u8 tag ; payload:
//!   0 NULL      -                       7 DOUBLE   8 bytes
//!   1 BOOLEAN   1 byte                  8 FLOAT    4 bytes
//!   2 BYTE      1 byte                  9 STRING   u16 length + MUTF-8
//!   3 CHAR      2 bytes (UTF-16 unit)  10 BYTES    i32 length + bytes
//!   4 SHORT     2 bytes                11 MAP      nested map
//!   5 INTEGER   4 bytes                12 LIST     i32 count + count x value
//!   6 LONG      8 bytes                13 BIG_STRING  i32 length + MUTF-8
//! ```
//!
//! Java writes STRING for strings of fewer than 8191 UTF-16 units and BIG_STRING beyond
//! ([`PrimitiveValue::string`] does the same). Java reads a MAP with a negative count and
//! a BIG_STRING with a negative length as null; so do we ([`PrimitiveValue::Null`]).

use bytes::{BufMut, Bytes, BytesMut};

use super::error::OpenWireError;
use super::wireformat::OPENWIRE_VERSION;

type Result<T> = std::result::Result<T, OpenWireError>;

/// Deepest nesting of objects, throwable causes and primitive maps/lists one frame may
/// use. Real traffic stays below 8 (a dispatch of an advisory carrying a DestinationInfo
/// is 4); the bound keeps a hostile frame from overflowing the stack.
pub const MAX_NESTING_DEPTH: usize = 32;

/// Most bytes `writeUTF` can carry (its length prefix is a u16).
pub const UTF_MAX_BYTES: usize = u16::MAX as usize;

/// Strings of at least this many UTF-16 units go into a primitive map as BIG_STRING
/// (`Short.MAX_VALUE / 4` in `MarshallingSupport.marshalString`).
const BIG_STRING_UTF16_UNITS: usize = (i16::MAX / 4) as usize;

// ------------------------------------------------------------------------------------
// Modified UTF-8
// ------------------------------------------------------------------------------------

/// Bytes `s` takes in modified UTF-8.
pub fn mutf8_len(s: &str) -> usize {
    if !needs_mutf8_rewrite(s.as_bytes()) {
        return s.len();
    }
    s.chars()
        .map(|c| match c as u32 {
            0 => 2,
            0x01..=0x7F => 1,
            0x80..=0x7FF => 2,
            0x800..=0xFFFF => 3,
            _ => 6,
        })
        .sum()
}

/// Standard UTF-8 and modified UTF-8 differ only for NUL and characters above U+FFFF
/// (4-byte sequences, whose lead byte is 0xF0..=0xF4).
fn needs_mutf8_rewrite(utf8: &[u8]) -> bool {
    utf8.iter().any(|&b| b == 0 || b >= 0xF0)
}

/// Appends `s` in modified UTF-8 (no length prefix).
pub fn encode_mutf8(s: &str, out: &mut BytesMut) {
    if !needs_mutf8_rewrite(s.as_bytes()) {
        out.put_slice(s.as_bytes());
        return;
    }
    out.reserve(mutf8_len(s));
    for c in s.chars() {
        let code = c as u32;
        match code {
            0 => out.put_slice(&[0xC0, 0x80]),
            0x01..=0x7F => out.put_u8(code as u8),
            0x80..=0x7FF => out.put_slice(&[0xC0 | (code >> 6) as u8, 0x80 | (code & 0x3F) as u8]),
            0x800..=0xFFFF => put_three_byte_unit(code as u16, out),
            _ => {
                let mut units = [0u16; 2];
                for &unit in c.encode_utf16(&mut units).iter() {
                    put_three_byte_unit(unit, out);
                }
            }
        }
    }
}

fn put_three_byte_unit(unit: u16, out: &mut BytesMut) {
    out.put_slice(&[
        0xE0 | (unit >> 12) as u8,
        0x80 | ((unit >> 6) & 0x3F) as u8,
        0x80 | (unit & 0x3F) as u8,
    ]);
}

/// Decodes modified UTF-8 (no length prefix); see the module doc for what is refused.
pub fn decode_mutf8(bytes: &[u8]) -> Result<String> {
    if !needs_mutf8_rewrite(bytes) {
        // Valid UTF-8 without NUL or 4-byte sequences is valid modified UTF-8 with the
        // same meaning, and from_utf8 refuses overlong forms and surrogates as we must.
        if let Ok(s) = std::str::from_utf8(bytes) {
            return Ok(s.to_owned());
        }
    }
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        let bad = || OpenWireError::InvalidModifiedUtf8 { offset: start };
        let (unit, len) = decode_unit(&bytes[i..]).ok_or_else(bad)?;
        i += len;
        let c = match unit {
            0xD800..=0xDBFF => {
                // A high surrogate must be followed at once by a low one.
                let (low, low_len) = decode_unit(&bytes[i..]).ok_or_else(bad)?;
                if !(0xDC00..=0xDFFF).contains(&low) {
                    return Err(bad());
                }
                i += low_len;
                let code = 0x10000 + ((u32::from(unit) - 0xD800) << 10) + (u32::from(low) - 0xDC00);
                char::from_u32(code).ok_or_else(bad)?
            }
            0xDC00..=0xDFFF => return Err(bad()),
            _ => char::from_u32(u32::from(unit)).ok_or_else(bad)?,
        };
        out.push(c);
    }
    Ok(out)
}

/// One UTF-16 unit in its shortest modified-UTF-8 form (NUL only as `C0 80`), with the
/// number of bytes it took; `None` for anything else.
fn decode_unit(b: &[u8]) -> Option<(u16, usize)> {
    let b0 = *b.first()?;
    let cont = |i: usize| {
        b.get(i)
            .copied()
            .filter(|&x| x & 0xC0 == 0x80)
            .map(|x| u16::from(x & 0x3F))
    };
    match b0 {
        0x01..=0x7F => Some((u16::from(b0), 1)),
        0xC0..=0xDF => {
            let unit = (u16::from(b0 & 0x1F) << 6) | cont(1)?;
            (unit == 0 || unit >= 0x80).then_some((unit, 2))
        }
        0xE0..=0xEF => {
            let unit = (u16::from(b0 & 0x0F) << 12) | (cont(1)? << 6) | cont(2)?;
            (unit >= 0x800).then_some((unit, 3))
        }
        _ => None,
    }
}

// ------------------------------------------------------------------------------------
// Objects that can be nested
// ------------------------------------------------------------------------------------

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

// ------------------------------------------------------------------------------------
// Reader
// ------------------------------------------------------------------------------------

/// Cursor over one frame body (or one marshalled byte sequence). Every read is bounds
/// checked; byte sequences are zero-copy slices of the frame.
pub(crate) struct Reader {
    buf: Bytes,
    /// Invariant: `pos <= buf.len()`.
    pos: usize,
    /// Current nesting depth; never above [`MAX_NESTING_DEPTH`].
    depth: usize,
    /// Negotiated OpenWire version: which fields the layouts have (see [`super::codec`]).
    version: i32,
    stack_trace_enabled: bool,
}

impl Reader {
    pub(crate) fn new(buf: Bytes, version: i32, stack_trace_enabled: bool) -> Reader {
        Reader {
            buf,
            pos: 0,
            depth: 0,
            version,
            stack_trace_enabled,
        }
    }

    /// A reader for data whose layout no version changed (message bodies, primitive
    /// maps).
    pub(crate) fn plain(buf: Bytes) -> Reader {
        Reader::new(buf, OPENWIRE_VERSION, false)
    }

    pub(crate) fn version(&self) -> i32 {
        self.version
    }

    /// A field that OpenWire `since` introduced: read by `f` at that version or later,
    /// `absent` (Java's default for it) before.
    pub(crate) fn since<T>(
        &mut self,
        since: i32,
        absent: T,
        f: impl FnOnce(&mut Reader) -> Result<T>,
    ) -> Result<T> {
        if self.version >= since {
            f(self)
        } else {
            Ok(absent)
        }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&[u8]> {
        let start = self.pos;
        let end = start
            .checked_add(n)
            .filter(|&end| end <= self.buf.len())
            .ok_or(OpenWireError::Truncated { offset: start })?;
        self.pos = end;
        Ok(&self.buf[start..end])
    }

    fn take_array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    pub(crate) fn raw(&mut self, n: usize) -> Result<Bytes> {
        let start = self.pos;
        self.take(n)?;
        Ok(self.buf.slice(start..self.pos))
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.take_array::<1>()?[0])
    }

    pub(crate) fn bool(&mut self) -> Result<bool> {
        Ok(self.u8()? != 0)
    }

    pub(crate) fn i16(&mut self) -> Result<i16> {
        self.take_array().map(i16::from_be_bytes)
    }

    pub(crate) fn u16(&mut self) -> Result<u16> {
        self.take_array().map(u16::from_be_bytes)
    }

    pub(crate) fn i32(&mut self) -> Result<i32> {
        self.take_array().map(i32::from_be_bytes)
    }

    pub(crate) fn i64(&mut self) -> Result<i64> {
        self.take_array().map(i64::from_be_bytes)
    }

    /// An i32 length or count that Java would refuse when negative.
    pub(crate) fn length(&mut self, what: &'static str) -> Result<usize> {
        let n = self.i32()?;
        usize::try_from(n).map_err(|_| OpenWireError::NegativeLength {
            what,
            value: i64::from(n),
        })
    }

    /// `readUTF`: u16 length + modified UTF-8, no null flag.
    pub(crate) fn utf(&mut self) -> Result<String> {
        let n = usize::from(self.u16()?);
        decode_mutf8(self.take(n)?)
    }

    /// S: a nullable string.
    pub(crate) fn string(&mut self) -> Result<Option<String>> {
        if self.bool()? {
            self.utf().map(Some)
        } else {
            Ok(None)
        }
    }

    /// S that Tandem requires non-null (the value inside an id or destination).
    pub(crate) fn required_string(&mut self, what: &'static str) -> Result<String> {
        self.string()?.ok_or(OpenWireError::NullField(what))
    }

    /// BS: a nullable byte sequence.
    pub(crate) fn byte_seq(&mut self) -> Result<Option<Bytes>> {
        if self.bool()? {
            let n = self.length("byte sequence length")?;
            self.raw(n).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Runs `f` one nesting level deeper.
    pub(crate) fn deeper<T>(&mut self, f: impl FnOnce(&mut Reader) -> Result<T>) -> Result<T> {
        if self.depth >= MAX_NESTING_DEPTH {
            return Err(OpenWireError::TooDeep {
                limit: MAX_NESTING_DEPTH,
            });
        }
        self.depth += 1;
        let result = f(self);
        self.depth -= 1;
        result
    }

    /// N(T): a nullable nested object of one of `T`'s types.
    pub(crate) fn nested<T: Structure>(&mut self) -> Result<Option<T>> {
        if !self.bool()? {
            return Ok(None);
        }
        let type_id = self.u8()?;
        if !T::accepts(type_id) {
            return Err(OpenWireError::UnexpectedType {
                expected: T::WHAT,
                found: type_id,
            });
        }
        self.deeper(|r| T::read_body(type_id, r)).map(Some)
    }

    /// A(T): a nullable array of non-null nested objects.
    pub(crate) fn array<T: Structure>(&mut self) -> Result<Option<Vec<T>>> {
        if !self.bool()? {
            return Ok(None);
        }
        let count = self.i16()?;
        let count = usize::try_from(count).map_err(|_| OpenWireError::NegativeLength {
            what: "array length",
            value: i64::from(count),
        })?;
        // Each element takes at least 2 bytes: never reserve more than the frame can hold.
        let mut items = Vec::with_capacity(count.min(self.remaining() / 2));
        for _ in 0..count {
            let item = self
                .nested::<T>()?
                .ok_or(OpenWireError::NullField("array element"))?;
            items.push(item);
        }
        Ok(Some(items))
    }

    /// T: a nullable throwable; stack trace and cause only when negotiated.
    pub(crate) fn throwable(&mut self) -> Result<Option<Throwable>> {
        if !self.bool()? {
            return Ok(None);
        }
        let class_name = self.string()?;
        let message = self.string()?;
        let mut t = Throwable {
            class_name,
            message,
            stack_trace: Vec::new(),
            cause: None,
        };
        if self.stack_trace_enabled {
            let n = self.i16()?;
            let n = usize::try_from(n).map_err(|_| OpenWireError::NegativeLength {
                what: "stack trace length",
                value: i64::from(n),
            })?;
            // Each element takes at least 7 bytes (three null flags and a line number).
            t.stack_trace.reserve(n.min(self.remaining() / 7));
            for _ in 0..n {
                t.stack_trace.push(StackTraceElement {
                    class_name: self.string()?,
                    method_name: self.string()?,
                    file_name: self.string()?,
                    line_number: self.i32()?,
                });
            }
            t.cause = self.deeper(|r| r.throwable())?.map(Box::new);
        }
        Ok(Some(t))
    }
}

// ------------------------------------------------------------------------------------
// Writer
// ------------------------------------------------------------------------------------

/// Appends loose-encoded fields to a buffer. Fallible only for values the layout cannot
/// carry (see [`OpenWireError`]'s encoding variants).
pub(crate) struct Writer<'a> {
    out: &'a mut BytesMut,
    /// Negotiated OpenWire version: which fields the layouts have (see [`super::codec`]).
    version: i32,
    stack_trace_enabled: bool,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(
        out: &'a mut BytesMut,
        version: i32,
        stack_trace_enabled: bool,
    ) -> Writer<'a> {
        Writer {
            out,
            version,
            stack_trace_enabled,
        }
    }

    /// A writer for data whose layout no version changed (primitive maps).
    pub(crate) fn plain(out: &'a mut BytesMut) -> Writer<'a> {
        Writer::new(out, OPENWIRE_VERSION, false)
    }

    pub(crate) fn version(&self) -> i32 {
        self.version
    }

    /// Whether the negotiated version has a field that OpenWire `since` introduced.
    pub(crate) fn has(&self, since: i32) -> bool {
        self.version >= since
    }

    pub(crate) fn raw(&mut self, bytes: &[u8]) {
        self.out.put_slice(bytes);
    }

    pub(crate) fn u8(&mut self, v: u8) {
        self.out.put_u8(v);
    }

    pub(crate) fn bool(&mut self, v: bool) {
        self.out.put_u8(u8::from(v));
    }

    pub(crate) fn i16(&mut self, v: i16) {
        self.out.put_i16(v);
    }

    pub(crate) fn u16(&mut self, v: u16) {
        self.out.put_u16(v);
    }

    pub(crate) fn i32(&mut self, v: i32) {
        self.out.put_i32(v);
    }

    pub(crate) fn i64(&mut self, v: i64) {
        self.out.put_i64(v);
    }

    /// An i32 length.
    pub(crate) fn length(&mut self, n: usize) -> Result<()> {
        let n = i32::try_from(n).map_err(|_| OpenWireError::TooLargeToEncode { bytes: n })?;
        self.i32(n);
        Ok(())
    }

    /// `writeUTF`: u16 length + modified UTF-8.
    pub(crate) fn utf(&mut self, s: &str) -> Result<()> {
        let n = mutf8_len(s);
        let n = u16::try_from(n).map_err(|_| OpenWireError::StringTooLong { bytes: n })?;
        self.u16(n);
        encode_mutf8(s, self.out);
        Ok(())
    }

    /// S.
    pub(crate) fn string(&mut self, s: Option<&str>) -> Result<()> {
        self.bool(s.is_some());
        match s {
            Some(s) => self.utf(s),
            None => Ok(()),
        }
    }

    /// BS.
    pub(crate) fn byte_seq(&mut self, b: Option<&[u8]>) -> Result<()> {
        self.bool(b.is_some());
        if let Some(b) = b {
            self.length(b.len())?;
            self.raw(b);
        }
        Ok(())
    }

    /// N(T).
    pub(crate) fn nested<T: Structure>(&mut self, v: Option<&T>) -> Result<()> {
        self.bool(v.is_some());
        match v {
            Some(v) => {
                self.u8(v.type_id());
                v.write_body(self)
            }
            None => Ok(()),
        }
    }

    /// A(T).
    pub(crate) fn array<T: Structure>(&mut self, items: Option<&[T]>) -> Result<()> {
        self.bool(items.is_some());
        if let Some(items) = items {
            self.i16(array_len(items.len())?);
            for item in items {
                self.nested(Some(item))?;
            }
        }
        Ok(())
    }

    /// T. Without negotiated stack traces the trace and the cause are not written.
    pub(crate) fn throwable(&mut self, t: Option<&Throwable>) -> Result<()> {
        self.bool(t.is_some());
        let Some(t) = t else { return Ok(()) };
        self.string(t.class_name.as_deref())?;
        match t.message.as_deref() {
            Some(m) if CUTS_THROWABLE_MESSAGES.contains(&self.version) => {
                self.string(Some(&cut_message(m)))?
            }
            m => self.string(m)?,
        }
        if self.stack_trace_enabled {
            self.i16(array_len(t.stack_trace.len())?);
            for e in &t.stack_trace {
                self.string(e.class_name.as_deref())?;
                self.string(e.method_name.as_deref())?;
                self.string(e.file_name.as_deref())?;
                self.i32(e.line_number);
            }
            self.throwable(t.cause.as_deref())?;
        }
        Ok(())
    }
}

/// The versions whose marshallers cut a throwable's message (`cutMessageIfNeeded`,
/// only in the v1 and v10 `BaseDataStreamMarshaller`).
const CUTS_THROWABLE_MESSAGES: [i32; 2] = [1, 10];
/// Longest throwable message (UTF-16 units) those versions write whole.
const THROWABLE_MESSAGE_MAX_UNITS: usize = 1024;

/// Java's `cutMessageIfNeeded`: a message longer than 1024 UTF-16 units becomes its
/// first 1021 units and "...". Where Java would cut a surrogate pair in two (and write
/// a lone surrogate), this cuts before the pair.
pub(crate) fn cut_message(message: &str) -> std::borrow::Cow<'_, str> {
    if message.encode_utf16().count() <= THROWABLE_MESSAGE_MAX_UNITS {
        return std::borrow::Cow::Borrowed(message);
    }
    let keep_units = THROWABLE_MESSAGE_MAX_UNITS - 3;
    let mut units = 0;
    let mut end = 0;
    for (i, c) in message.char_indices() {
        if units + c.len_utf16() > keep_units {
            break;
        }
        units += c.len_utf16();
        end = i + c.len_utf8();
    }
    std::borrow::Cow::Owned(format!("{}...", &message[..end]))
}

fn array_len(len: usize) -> Result<i16> {
    i16::try_from(len).map_err(|_| OpenWireError::ArrayTooLong { len })
}

// ------------------------------------------------------------------------------------
// Throwable
// ------------------------------------------------------------------------------------

/// A Java exception as OpenWire carries it (ExceptionResponse, ConnectionError,
/// MessageAck.poisonCause). The client rebuilds it with `Class.forName(class_name)` and a
/// `(String)` constructor, so the class must exist on its classpath (e.g.
/// `javax.jms.JMSException`, `javax.jms.InvalidClientIDException`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Throwable {
    pub class_name: Option<String>,
    pub message: Option<String>,
    /// Only on the wire when StackTraceEnabled was negotiated (Tandem turns it off).
    pub stack_trace: Vec<StackTraceElement>,
    /// Only on the wire when StackTraceEnabled was negotiated.
    pub cause: Option<Box<Throwable>>,
}

impl Throwable {
    /// An exception of class `class_name` with `message`, no trace and no cause.
    pub fn new(class_name: &str, message: &str) -> Throwable {
        Throwable {
            class_name: Some(class_name.to_owned()),
            message: Some(message.to_owned()),
            stack_trace: Vec::new(),
            cause: None,
        }
    }
}

/// One frame of a Java stack trace.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StackTraceElement {
    pub class_name: Option<String>,
    pub method_name: Option<String>,
    pub file_name: Option<String>,
    pub line_number: i32,
}

// ------------------------------------------------------------------------------------
// Primitive map
// ------------------------------------------------------------------------------------

/// A typed value of a primitive map or list (tags in the module doc).
#[derive(Debug, Clone, PartialEq)]
pub enum PrimitiveValue {
    Null,
    Boolean(bool),
    Byte(i8),
    /// One UTF-16 code unit (Java `char`), possibly half of a surrogate pair.
    Char(u16),
    Short(i16),
    Int(i32),
    Long(i64),
    Float(f32),
    Double(f64),
    Bytes(Bytes),
    /// Tag 9: at most 65535 modified-UTF-8 bytes.
    String(String),
    /// Tag 13: i32 length; what Java writes for strings of 8191 UTF-16 units or more.
    BigString(String),
    Map(PrimitiveMap),
    List(Vec<PrimitiveValue>),
}

impl PrimitiveValue {
    /// A string value tagged as Java's `marshalString` would tag it.
    pub fn string(s: impl Into<String>) -> PrimitiveValue {
        let s = s.into();
        if s.encode_utf16().count() < BIG_STRING_UTF16_UNITS {
            PrimitiveValue::String(s)
        } else {
            PrimitiveValue::BigString(s)
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            PrimitiveValue::Boolean(b) => Some(*b),
            _ => None,
        }
    }

    /// Any integer type widened to i64 (Byte, Short, Int, Long).
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            PrimitiveValue::Byte(v) => Some(i64::from(v)),
            PrimitiveValue::Short(v) => Some(i64::from(v)),
            PrimitiveValue::Int(v) => Some(i64::from(v)),
            PrimitiveValue::Long(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            PrimitiveValue::String(s) | PrimitiveValue::BigString(s) => Some(s),
            _ => None,
        }
    }

    /// One value on its own (type tag, then payload): how the broker keeps a property
    /// value it does not interpret.
    pub fn to_bytes(&self) -> Result<Bytes> {
        let mut out = BytesMut::new();
        self.write(&mut Writer::plain(&mut out))?;
        Ok(out.freeze())
    }

    /// The inverse of [`PrimitiveValue::to_bytes`]; bytes after the value are an error.
    pub fn from_bytes(bytes: &Bytes) -> Result<PrimitiveValue> {
        let mut r = Reader::plain(bytes.clone());
        let value = PrimitiveValue::read(&mut r)?;
        match r.remaining() {
            0 => Ok(value),
            left => Err(OpenWireError::TrailingBytes {
                what: "primitive value",
                left,
            }),
        }
    }

    fn read(r: &mut Reader) -> Result<PrimitiveValue> {
        let tag = r.u8()?;
        Ok(match tag {
            0 => PrimitiveValue::Null,
            1 => PrimitiveValue::Boolean(r.bool()?),
            2 => PrimitiveValue::Byte(r.u8()? as i8),
            3 => PrimitiveValue::Char(r.u16()?),
            4 => PrimitiveValue::Short(r.i16()?),
            5 => PrimitiveValue::Int(r.i32()?),
            6 => PrimitiveValue::Long(r.i64()?),
            7 => PrimitiveValue::Double(f64::from_bits(r.i64()? as u64)),
            8 => PrimitiveValue::Float(f32::from_bits(r.i32()? as u32)),
            9 => PrimitiveValue::String(r.utf()?),
            10 => {
                let n = r.length("byte array length")?;
                PrimitiveValue::Bytes(r.raw(n)?)
            }
            11 => match r.deeper(PrimitiveMap::read)? {
                Some(map) => PrimitiveValue::Map(map),
                None => PrimitiveValue::Null,
            },
            12 => PrimitiveValue::List(r.deeper(|r| {
                let n = r.length("list length")?;
                let mut items = Vec::with_capacity(n.min(r.remaining()));
                for _ in 0..n {
                    items.push(PrimitiveValue::read(r)?);
                }
                Ok(items)
            })?),
            13 => {
                let n = r.i32()?;
                match usize::try_from(n) {
                    Ok(n) => PrimitiveValue::BigString(decode_mutf8(&r.raw(n)?)?),
                    Err(_) => PrimitiveValue::Null,
                }
            }
            tag => return Err(OpenWireError::UnknownPrimitiveTag(tag)),
        })
    }

    fn write(&self, w: &mut Writer) -> Result<()> {
        match self {
            PrimitiveValue::Null => w.u8(0),
            PrimitiveValue::Boolean(v) => {
                w.u8(1);
                w.bool(*v);
            }
            PrimitiveValue::Byte(v) => {
                w.u8(2);
                w.u8(*v as u8);
            }
            PrimitiveValue::Char(v) => {
                w.u8(3);
                w.u16(*v);
            }
            PrimitiveValue::Short(v) => {
                w.u8(4);
                w.i16(*v);
            }
            PrimitiveValue::Int(v) => {
                w.u8(5);
                w.i32(*v);
            }
            PrimitiveValue::Long(v) => {
                w.u8(6);
                w.i64(*v);
            }
            PrimitiveValue::Double(v) => {
                w.u8(7);
                w.i64(v.to_bits() as i64);
            }
            PrimitiveValue::Float(v) => {
                w.u8(8);
                w.i32(v.to_bits() as i32);
            }
            PrimitiveValue::String(s) => {
                w.u8(9);
                w.utf(s)?;
            }
            PrimitiveValue::Bytes(b) => {
                w.u8(10);
                w.length(b.len())?;
                w.raw(b);
            }
            PrimitiveValue::Map(m) => {
                w.u8(11);
                m.write(w)?;
            }
            PrimitiveValue::List(items) => {
                w.u8(12);
                w.length(items.len())?;
                for item in items {
                    item.write(w)?;
                }
            }
            PrimitiveValue::BigString(s) => {
                w.u8(13);
                w.length(mutf8_len(s))?;
                encode_mutf8(s, w.out);
            }
        }
        Ok(())
    }
}

/// A primitive map (message properties, MapMessage body, WireFormatInfo options).
///
/// Entries keep their wire order so that a decoded map re-encodes to the same bytes;
/// Java writes them in `HashMap` order, so nobody may rely on any order. Keys are unique
/// when built with [`PrimitiveMap::insert`]; if a peer sends a key twice, [`get`] answers
/// with the last one, as Java's `HashMap.put` would.
///
/// [`get`]: PrimitiveMap::get
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PrimitiveMap {
    entries: Vec<(String, PrimitiveValue)>,
}

impl PrimitiveMap {
    pub fn new() -> PrimitiveMap {
        PrimitiveMap::default()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, key: &str) -> Option<&PrimitiveValue> {
        self.entries
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// Sets `key`, replacing its value in place if present, else appending.
    pub fn insert(&mut self, key: impl Into<String>, value: PrimitiveValue) {
        let key = key.into();
        match self.entries.iter_mut().rev().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.entries.push((key, value)),
        }
    }

    /// Entries in wire order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &PrimitiveValue)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Decodes a whole marshalled map (a message's `marshalled_properties`, a MapMessage
    /// body). A null map (count < 0) reads as empty; bytes after the map are an error.
    pub fn decode(bytes: &Bytes) -> Result<PrimitiveMap> {
        let mut r = Reader::plain(bytes.clone());
        let map = PrimitiveMap::read(&mut r)?.unwrap_or_default();
        match r.remaining() {
            0 => Ok(map),
            left => Err(OpenWireError::TrailingBytes {
                what: "primitive map",
                left,
            }),
        }
    }

    /// Appends the marshalled map.
    pub fn encode(&self, out: &mut BytesMut) -> Result<()> {
        let start = out.len();
        let result = self.write(&mut Writer::plain(out));
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    /// The marshalled map as one buffer.
    pub fn to_bytes(&self) -> Result<Bytes> {
        let mut out = BytesMut::new();
        self.encode(&mut out)?;
        Ok(out.freeze())
    }

    /// `None` for a null map (negative count).
    pub(crate) fn read(r: &mut Reader) -> Result<Option<PrimitiveMap>> {
        let count = r.i32()?;
        let Ok(count) = usize::try_from(count) else {
            return Ok(None);
        };
        // Each entry takes at least 3 bytes (empty key, tag).
        let mut entries = Vec::with_capacity(count.min(r.remaining() / 3));
        for _ in 0..count {
            let key = r.utf()?;
            let value = PrimitiveValue::read(r)?;
            entries.push((key, value));
        }
        Ok(Some(PrimitiveMap { entries }))
    }

    pub(crate) fn write(&self, w: &mut Writer) -> Result<()> {
        w.length(self.entries.len())?;
        for (key, value) in &self.entries {
            w.utf(key)?;
            value.write(w)?;
        }
        Ok(())
    }
}

impl<K: Into<String>> FromIterator<(K, PrimitiveValue)> for PrimitiveMap {
    fn from_iter<I: IntoIterator<Item = (K, PrimitiveValue)>>(iter: I) -> PrimitiveMap {
        let mut map = PrimitiveMap::new();
        for (k, v) in iter {
            map.insert(k, v);
        }
        map
    }
}
