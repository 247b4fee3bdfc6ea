//! Modified UTF-8 (Java `DataOutput.writeUTF` / `DataInput.readUTF`), without the length
//! prefix: the [`super::Reader`] and [`super::Writer`] add the u16 prefix of S, and the
//! primitive map's BIG_STRING an i32 one.
//!
//! # Layout
//!
//! Each UTF-16 code unit is written on its own: U+0001..U+007F as 1 byte, U+0000 and
//! U+0080..U+07FF as 2 bytes (so NUL is `C0 80`, never a raw 00), U+0800..U+FFFF as 3
//! bytes. A character above U+FFFF is a surrogate pair, i.e. two 3-byte sequences (6
//! bytes), never the 4-byte UTF-8 form. Decoding accepts exactly what that encoder can
//! produce from a valid Unicode string and refuses everything else (raw NUL, 4-byte
//! sequences, overlong forms, lone surrogates, cut sequences): a Rust `String` cannot hold
//! a lone surrogate, and the Java client never writes the other forms.

use bytes::{BufMut, BytesMut};

use super::{OpenWireError, Result};

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
