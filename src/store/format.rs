//! The journal's on-disk format. This is the only description of it.
//!
//! A journal is a directory of segment files named `NNNNNNNNNNNNNNNN.log` (the
//! segment id in 16 lowercase hex digits). Ids are consecutive and at least 1; a
//! new journal starts at 1 (`JournalConfig::first_segment`), but the oldest segment
//! present may have any id: old segments are only ever removed from the front, and
//! a slave reset to mirror a master (`Journal::reset`) starts at the master's oldest
//! segment. Each file is preallocated to its `segment_bytes` (a multiple of 4096, at
//! most 4 GiB so offsets fit in a u32).
//!
//! ## Segment header: the first 4096-byte block
//!
//! | offset | size | field                                                   |
//! |-------:|-----:|---------------------------------------------------------|
//! |      0 |    8 | magic `b"TNDMJRNL"`                                     |
//! |      8 |    4 | format version, u32 LE (= 1)                            |
//! |     12 |    4 | reserved, zero                                          |
//! |     16 |    8 | segment id, u64 LE (must match the file name)           |
//! |     24 |    8 | base position, u64 LE (= `id << 32 \| 4096`)            |
//! |     32 |    8 | segment_bytes of this file, u64 LE                      |
//! |     40 |    4 | crc32c of bytes 0..40, u32 LE                           |
//! |     44 | 4052 | zero                                                    |
//!
//! A segment keeps the size it was created with, so `segment_bytes` can change in
//! the config without breaking existing files.
//!
//! ## Records: from offset 4096 on
//!
//! | offset | size      | field                                               |
//! |-------:|----------:|-----------------------------------------------------|
//! |      0 |         4 | `len`: payload length, u32 LE                       |
//! |      4 |         4 | crc32c over the 4 `len` bytes then the payload, LE  |
//! |      8 |     `len` | payload (opaque to the store)                       |
//! |  8+len | 0..=7     | zero padding to the next multiple of 8              |
//!
//! Records start on 8-byte boundaries (so a `len` never straddles a read window
//! mid-field and a torn write cannot shift the framing by a few bytes) and never
//! span segments. Two `len` values are markers, not records:
//!
//! * `0`: end of the log. Preallocated space reads as zeros, and the writer pads
//!   each batch with zeros to the block boundary.
//! * `u32::MAX` ([`ROLL_LEN`]), with crc32c over the 4 `len` bytes: this segment is
//!   complete, the log continues at offset 4096 of segment `id + 1`. It lets recovery
//!   tell a finished segment from one that lost its tail. Every segment keeps
//!   [`FRAME_HEADER_BYTES`] free for it.
//!
//! ## Positions
//!
//! A [`Position`](super::Position) is `segment_id << 32 | byte offset in the segment`:
//! monotonic across segments, and a record's position says where it is on disk.

/// Size of the segment header block; records start at this offset.
pub const HEADER_BYTES: u32 = 4096;

/// First bytes of every segment file.
pub const MAGIC: [u8; 8] = *b"TNDMJRNL";

/// Bumped on any incompatible change to this module's tables.
pub const FORMAT_VERSION: u32 = 1;

/// `len` + `crc` in front of every record.
pub const FRAME_HEADER_BYTES: u32 = 8;

/// Records are padded to this alignment.
pub const RECORD_ALIGN: u32 = 8;

/// `len` value of the segment-complete marker.
pub const ROLL_LEN: u32 = u32::MAX;

/// Largest segment whose offsets fit in a u32 (4 GiB minus one block).
pub const SEGMENT_BYTES_MAX: u64 = (1 << 32) - 4096;

/// Bytes a record with a `payload_len`-byte payload occupies on disk.
pub const fn framed_len(payload_len: u32) -> u32 {
    (FRAME_HEADER_BYTES + payload_len).div_ceil(RECORD_ALIGN) * RECORD_ALIGN
}

/// [`framed_len`] for any `len`, including garbage read from disk (no overflow).
pub const fn framed_len_u64(payload_len: u32) -> u64 {
    (payload_len as u64 + FRAME_HEADER_BYTES as u64).div_ceil(RECORD_ALIGN as u64)
        * RECORD_ALIGN as u64
}

/// The record checksum: covers `len` too, so a torn `len` is caught as well.
pub fn record_crc(payload: &[u8]) -> u32 {
    let len = (payload.len() as u32).to_le_bytes();
    crc32c::crc32c_append(crc32c::crc32c(&len), payload)
}

/// Appends a framed record (header, payload, padding) to `out`.
pub fn encode_record(out: &mut Vec<u8>, payload: &[u8]) {
    debug_assert!(payload.len() < ROLL_LEN as usize);
    // (An empty payload would frame as `len == 0`, the end marker; callers refuse it.)
    let start = out.len();
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&record_crc(payload).to_le_bytes());
    out.extend_from_slice(payload);
    let framed = framed_len(payload.len() as u32) as usize;
    out.resize(start + framed, 0);
}

/// Appends the segment-complete marker to `out`.
pub fn encode_roll(out: &mut Vec<u8>) {
    let len = ROLL_LEN.to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&crc32c::crc32c(&len).to_le_bytes());
}

/// What the bytes at a record offset hold.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A valid record: its payload and framed length.
    Record { payload: &'a [u8], framed: u32 },
    /// Zeros: the end of the log.
    End,
    /// The segment is complete; continue with the next one.
    Roll,
    /// Not a valid frame (torn or corrupt); `why` is for the log.
    Invalid { why: &'static str },
}

/// Decodes the frame at the start of `buf`, where `room` is the number of bytes
/// between this offset and the end of the segment (`buf` may be shorter only when
/// the file itself is shorter).
pub fn decode_frame(buf: &[u8], room: u64) -> Frame<'_> {
    let Some(hdr) = buf.get(..FRAME_HEADER_BYTES as usize) else {
        return Frame::Invalid {
            why: "truncated frame header",
        };
    };
    let len = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
    let crc = u32::from_le_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]);
    if len == 0 {
        return if crc == 0 {
            Frame::End
        } else {
            Frame::Invalid {
                why: "zero length with non-zero checksum",
            }
        };
    }
    if len == ROLL_LEN {
        return if crc == crc32c::crc32c(&hdr[..4]) {
            Frame::Roll
        } else {
            Frame::Invalid {
                why: "roll marker checksum mismatch",
            }
        };
    }
    let framed = framed_len_u64(len);
    // The roll marker must still fit after any record.
    if framed + u64::from(FRAME_HEADER_BYTES) > room {
        return Frame::Invalid {
            why: "length runs past the end of the segment",
        };
    }
    let Some(payload) = buf.get(FRAME_HEADER_BYTES as usize..(FRAME_HEADER_BYTES + len) as usize)
    else {
        return Frame::Invalid {
            why: "truncated payload",
        };
    };
    if record_crc(payload) != crc {
        return Frame::Invalid {
            why: "checksum mismatch",
        };
    }
    Frame::Record {
        payload,
        framed: framed as u32,
    }
}

/// A decoded segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    pub id: u64,
    pub segment_bytes: u64,
}

impl SegmentHeader {
    /// The full 4096-byte header block.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; HEADER_BYTES as usize];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        b[16..24].copy_from_slice(&self.id.to_le_bytes());
        b[24..32].copy_from_slice(&(self.id << 32 | u64::from(HEADER_BYTES)).to_le_bytes());
        b[32..40].copy_from_slice(&self.segment_bytes.to_le_bytes());
        let crc = crc32c::crc32c(&b[0..40]);
        b[40..44].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Parses and checks a header block; `Err` says what is wrong.
    pub fn decode(b: &[u8]) -> Result<SegmentHeader, &'static str> {
        let b = b.get(..44).ok_or("truncated header")?;
        let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let u64_at = |o: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[o..o + 8]);
            u64::from_le_bytes(a)
        };
        if b[0..8] != MAGIC {
            return Err("bad magic");
        }
        if crc32c::crc32c(&b[0..40]) != u32_at(40) {
            return Err("header checksum mismatch");
        }
        if u32_at(8) != FORMAT_VERSION {
            return Err("unsupported format version");
        }
        let h = SegmentHeader {
            id: u64_at(16),
            segment_bytes: u64_at(32),
        };
        if u64_at(24) != h.id << 32 | u64::from(HEADER_BYTES) {
            return Err("base position does not match segment id");
        }
        if !h.segment_bytes.is_multiple_of(4096)
            || h.segment_bytes > SEGMENT_BYTES_MAX
            || h.segment_bytes < u64::from(HEADER_BYTES) * 2
        {
            return Err("invalid segment size");
        }
        Ok(h)
    }
}

/// File name of segment `id`.
pub fn segment_file_name(id: u64) -> String {
    format!("{id:016x}.log")
}

/// Segment id from a file name, if it is one of ours.
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    let hex = name.strip_suffix(".log")?;
    if hex.len() != 16 || !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip_and_padding() {
        for n in [1usize, 7, 8, 9, 100] {
            let payload: Vec<u8> = (0..n).map(|i| i as u8 ^ 0x5a).collect();
            let mut out = Vec::new();
            encode_record(&mut out, &payload);
            assert_eq!(out.len() % 8, 0);
            assert_eq!(out.len(), framed_len(n as u32) as usize);
            match decode_frame(&out, 1 << 20) {
                Frame::Record { payload: p, framed } => {
                    assert_eq!(p, &payload[..]);
                    assert_eq!(framed as usize, out.len());
                }
                f => panic!("{f:?}"),
            }
        }
    }

    #[test]
    fn empty_payload_cannot_be_framed() {
        // len 0 is the end marker, which is why `Journal::append` refuses empty
        // payloads: such a frame would read back as corruption.
        let mut out = Vec::new();
        encode_record(&mut out, b"");
        assert!(matches!(decode_frame(&out, 4096), Frame::Invalid { .. }));
    }

    #[test]
    fn markers_and_corruption() {
        assert_eq!(decode_frame(&[0u8; 16], 4096), Frame::End);
        let mut roll = Vec::new();
        encode_roll(&mut roll);
        assert_eq!(decode_frame(&roll, 8), Frame::Roll);
        let mut rec = Vec::new();
        encode_record(&mut rec, b"hello world");
        let last = rec.len() - 6;
        rec[last] ^= 1;
        assert!(matches!(decode_frame(&rec, 4096), Frame::Invalid { .. }));
        let mut rec = Vec::new();
        encode_record(&mut rec, b"hello world");
        assert!(matches!(
            decode_frame(&rec[..10], 4096),
            Frame::Invalid { .. }
        ));
        assert!(matches!(decode_frame(&rec, 16), Frame::Invalid { .. }));
    }

    #[test]
    fn header_round_trip() {
        let h = SegmentHeader {
            id: 7,
            segment_bytes: 1 << 20,
        };
        let mut b = h.encode();
        assert_eq!(SegmentHeader::decode(&b), Ok(h));
        b[17] ^= 1;
        assert!(SegmentHeader::decode(&b).is_err());
        assert_eq!(parse_segment_file_name(&segment_file_name(h.id)), Some(7));
        assert_eq!(parse_segment_file_name("lock"), None);
    }
}
