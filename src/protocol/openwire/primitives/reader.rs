//! [`Reader`]: the bounds-checked cursor that decodes the loose primitives (scalars, S,
//! BS, N(x), A(x); layouts in [`super`]) at the negotiated version. Throwables (T) are
//! read in [`super::throwable`], primitive maps in [`super::map`].

use bytes::Bytes;

use super::super::wireformat::OPENWIRE_VERSION;
use super::mutf8::decode_mutf8;
use super::{OpenWireError, Result, Structure, MAX_NESTING_DEPTH};

/// Cursor over one frame body (or one marshalled byte sequence). Every read is bounds
/// checked; byte sequences are zero-copy slices of the frame.
pub(crate) struct Reader {
    buf: Bytes,
    /// Invariant: `pos <= buf.len()`.
    pos: usize,
    /// Current nesting depth; never above [`MAX_NESTING_DEPTH`].
    depth: usize,
    /// Negotiated OpenWire version: which fields the layouts have (see [`super::super::codec`]).
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

    /// Whether StackTraceEnabled was negotiated (a throwable's trace and cause).
    pub(super) fn stack_trace_enabled(&self) -> bool {
        self.stack_trace_enabled
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
}
