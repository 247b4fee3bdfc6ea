//! [`Writer`]: appends the loose primitives (scalars, S, BS, N(x), A(x); layouts in
//! [`super`]) at the negotiated version. Throwables (T) are written in
//! [`super::throwable`], primitive maps in [`super::map`].

use bytes::{BufMut, BytesMut};

use super::super::wireformat::OPENWIRE_VERSION;
use super::mutf8::{encode_mutf8, mutf8_len};
use super::{OpenWireError, Result, Structure};

/// Appends loose-encoded fields to a buffer. Fallible only for values the layout cannot
/// carry (see [`OpenWireError`]'s encoding variants).
pub(crate) struct Writer<'a> {
    out: &'a mut BytesMut,
    /// Negotiated OpenWire version: which fields the layouts have (see [`super::super::codec`]).
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

    /// Whether StackTraceEnabled was negotiated (a throwable's trace and cause).
    pub(super) fn stack_trace_enabled(&self) -> bool {
        self.stack_trace_enabled
    }

    /// Modified UTF-8 bytes of `s`, no length prefix (the payload of a BIG_STRING).
    pub(super) fn mutf8(&mut self, s: &str) {
        encode_mutf8(s, self.out);
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
}

/// An i16 array (or stack trace) length.
pub(super) fn array_len(len: usize) -> Result<i16> {
    i16::try_from(len).map_err(|_| OpenWireError::ArrayTooLong { len })
}
