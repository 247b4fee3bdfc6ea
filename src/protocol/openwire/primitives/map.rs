//! The primitive map (`MarshallingSupport.marshalPrimitiveMap`): [`PrimitiveMap`] and its
//! typed values, [`PrimitiveValue`] (message properties, MapMessage bodies,
//! WireFormatInfo options).
//!
//! # Layout
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

use bytes::{Bytes, BytesMut};

use super::mutf8::{decode_mutf8, mutf8_len};
use super::{OpenWireError, Reader, Result, Writer};

/// Strings of at least this many UTF-16 units go into a primitive map as BIG_STRING
/// (`Short.MAX_VALUE / 4` in `MarshallingSupport.marshalString`).
const BIG_STRING_UTF16_UNITS: usize = (i16::MAX / 4) as usize;

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
                w.mutf8(s);
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
