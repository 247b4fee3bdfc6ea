//! Replication link bytes <-> [`Frame`]s.
//!
//! # Wire format (all integers little-endian; docs/REPLICATION.md, "Frames")
//!
//! ```text
//! frame     := len:u32 kind:u8 epoch:u64 body          (len counts kind..end)
//! kind 1 Hello      magic:"TANDEMRP" version:u16 user:str nonce:[32]
//! kind 10 Challenge nonce:[32]
//! kind 11 Proof     proof:[32] shards:u16 node_id:str addrs:(count:u32 str*)
//!                   positions:(u64 per shard)
//! kind 2 Welcome    proof:[32] master_node_id:str shards:u16 oldest:(u64 per shard)
//!                   history:(count:u16 (epoch:u64 starts:(u64 per shard))*)
//!                   (the master's epoch history, `super::state`, oldest first)
//! kind 3 Refuse     proof:[32] reason_code:u8 reason:str
//! kind 4 Batch      shard:u16 start:u64 bytes          (journal bytes, verbatim)
//! kind 5 Volatile   shard:u16 seq:u64 record
//! kind 6 Ack        shard:u16 received:u64 durable:u64
//! kind 7 Heartbeat  (empty)
//! kind 8 Goodbye    reason:str
//! kind 9 InSync     (empty; master -> slave: every confirmation now waits for this
//!                   slave, so it holds everything confirmed and may take over)
//! str := len:u32 utf8
//! ```
//!
//! Hello, Challenge, Proof and Welcome (or Refuse) are the handshake: a slave says who
//! it is and sends its nonce, the master answers with its own nonce, the slave proves
//! it holds the replication secret (an HMAC-SHA256 over both nonces and the Proof
//! frame itself), and the master, having checked that, proves the same in its
//! Welcome or Refuse. What the proofs cover, and why: [`super::auth`]. `proof` is
//! all zeros in a Refuse the master sends to a peer it could not authenticate; such a
//! Refuse carries epoch 0 and no detail. Hello and Challenge carry epoch 0: nothing
//! said before the proofs is believed.
//!
//! Where the design leaves the layout implicit, this codec reads it as follows:
//!
//! * Lists carry their count, so a cut-short frame can never read as another valid one.
//!   Batch `bytes` and Volatile `record` are the rest of the frame.
//! * `reason_code`: 1 bad credentials, 2 second slave, 3 stale epoch, 4 shard mismatch;
//!   any other value is carried as [`RefuseCode::Other`].
//! * Every body is read to its exact end: bytes left over are an error.
//!
//! The Hello magic sits at frame offset 13..21 (after len, kind and epoch): that is what
//! the connector's protocol sniffing ([`looks_like_replication`]) checks.
//!
//! # Bounds, failure, copies
//!
//! `len` is checked against [`Decoder::max_frame_bytes`] as soon as its four bytes are
//! in, before any of the body is buffered; the kind (and a Hello's magic) as soon as
//! they are in. Errors are fatal: the stream cannot be resynchronised, so the decoder
//! stays failed and the link must close. A complete frame is split off the read buffer
//! and frozen; Batch `bytes` and Volatile `record` are slices of it, never copies.

use bytes::{BufMut, Bytes, BytesMut};

use crate::ShardId;

/// The first bytes of a Hello body; what tells a replication link from a client.
pub const MAGIC: &[u8; 8] = b"TANDEMRP";

/// The link version this codec speaks (sent in Hello). 2: the authenticated
/// handshake (version 1 sent the password in the clear). 3: the Welcome carries the
/// master's epoch history.
pub const VERSION: u16 = 3;

/// Bytes of a handshake nonce.
pub const NONCE_BYTES: usize = 32;
/// Bytes of a proof (an HMAC-SHA256 tag).
pub const PROOF_BYTES: usize = 32;
/// A handshake nonce, fresh from the OS random source for every connection.
pub type Nonce = [u8; NONCE_BYTES];
/// An HMAC-SHA256 proof; all zeros where none could be made.
pub type Proof = [u8; PROOF_BYTES];

/// Bytes before the body: len (4), kind (1), epoch (8).
pub const HEADER_BYTES: usize = 13;

/// The smallest legal `len`: kind and epoch with an empty body.
const MIN_LEN: u32 = 9;

/// Where the Hello magic starts in a frame (after len, kind, epoch).
const MAGIC_AT: usize = HEADER_BYTES;

const KIND_HELLO: u8 = 1;
const KIND_WELCOME: u8 = 2;
const KIND_REFUSE: u8 = 3;
const KIND_BATCH: u8 = 4;
const KIND_VOLATILE: u8 = 5;
const KIND_ACK: u8 = 6;
const KIND_HEARTBEAT: u8 = 7;
const KIND_GOODBYE: u8 = 8;
const KIND_IN_SYNC: u8 = 9;
const KIND_CHALLENGE: u8 = 10;
const KIND_PROOF: u8 = 11;
const KIND_LAST: u8 = KIND_PROOF;

/// One frame of the link, either way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The sender's epoch. A node that sees a higher epoch than its own stops serving.
    pub epoch: u64,
    pub body: Body,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// Slave -> master, first frame on the link (the magic is implied, not stored).
    /// Says nothing the master acts on: who the slave claims to be and its nonce.
    Hello {
        /// Link version the slave speaks ([`VERSION`]).
        version: u16,
        /// Whose secret the slave proves (`<masterConnector userName>`; may be empty).
        user: String,
        nonce: Nonce,
    },
    /// Master -> slave: the master's nonce, and nothing else.
    Challenge { nonce: Nonce },
    /// Slave -> master: the slave's proof, and what the master believes only once the
    /// proof checks out.
    Proof {
        proof: Proof,
        /// The slave's node id.
        node_id: String,
        /// The slave's client connector addresses.
        client_addrs: Vec<String>,
        /// Per shard, the journal position the slave holds. Its length is the shard
        /// count on the wire, so it is at most `u16::MAX`.
        positions: Vec<u64>,
    },
    /// Master -> slave: attached (with the master's proof).
    Welcome {
        proof: Proof,
        master_node_id: String,
        /// Per shard, the position catch-up starts from.
        oldest: Vec<u64>,
        /// The master's epoch history: `(epoch, start per shard)`, oldest first.
        history: Vec<(u64, Vec<u64>)>,
    },
    /// Master -> slave: not attached; never followed by a takeover. `proof` is all
    /// zeros when the master could not authenticate the slave.
    Refuse {
        proof: Proof,
        code: RefuseCode,
        reason: String,
    },
    /// Master -> slave: one journal batch of `shard`, verbatim, written at `start`.
    Batch {
        shard: ShardId,
        start: u64,
        bytes: Bytes,
    },
    /// Master -> slave: a non-persistent message or its ack, kept in memory only.
    Volatile {
        shard: ShardId,
        seq: u64,
        record: Bytes,
    },
    /// Slave -> master: positions of `shard` in the slave's memory and on its disk.
    /// Invariant kept by the sender: `durable <= received`.
    Ack {
        shard: ShardId,
        received: u64,
        durable: u64,
    },
    /// Both ways, every heartbeat interval.
    Heartbeat,
    /// Either way: clean shutdown.
    Goodbye { reason: String },
    /// Master -> slave: caught up, and every confirmation from here on waits for this
    /// slave. Only a slave that has received it may take over.
    InSync,
}

/// Why a master refused a slave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefuseCode {
    BadCredentials,
    /// The master already has a slave.
    SecondSlave,
    /// The Hello's epoch is below the master's.
    StaleEpoch,
    /// The slave's shard count differs from the master's.
    ShardMismatch,
    /// Any other code. `Other(1..=4)` encodes as, and decodes to, the named codes.
    Other(u8),
}

impl RefuseCode {
    pub fn to_u8(self) -> u8 {
        match self {
            RefuseCode::BadCredentials => 1,
            RefuseCode::SecondSlave => 2,
            RefuseCode::StaleEpoch => 3,
            RefuseCode::ShardMismatch => 4,
            RefuseCode::Other(c) => c,
        }
    }

    pub fn from_u8(code: u8) -> RefuseCode {
        match code {
            1 => RefuseCode::BadCredentials,
            2 => RefuseCode::SecondSlave,
            3 => RefuseCode::StaleEpoch,
            4 => RefuseCode::ShardMismatch,
            c => RefuseCode::Other(c),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame length {len} is below the minimum of {MIN_LEN} (kind and epoch)")]
    TooShort { len: u32 },
    #[error("frame of {bytes} bytes exceeds the limit of {max_frame_bytes}")]
    TooLarge { bytes: u64, max_frame_bytes: usize },
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    #[error("Hello does not start with the TANDEMRP magic")]
    BadMagic,
    #[error("frame of kind {kind} ends inside a field")]
    Truncated { kind: u8 },
    #[error("frame of kind {kind} has {extra} bytes after its last field")]
    TrailingBytes { kind: u8, extra: usize },
    #[error("string is not UTF-8")]
    Utf8,
}

/// Appends `frame` to `out`.
///
/// Panics if a length does not fit its field (a string or frame over 4 GiB, more than
/// `u16::MAX` Hello positions, a shard id over `u16::MAX`): such a frame is a bug in
/// the sender, not input.
pub fn encode(frame: &Frame, out: &mut BytesMut) {
    let start = out.len();
    out.reserve(HEADER_BYTES + body_len_hint(&frame.body));
    out.put_u32_le(0); // patched below
    out.put_u8(kind_of(&frame.body));
    out.put_u64_le(frame.epoch);
    match &frame.body {
        Body::Hello {
            version,
            user,
            nonce,
        } => {
            out.put_slice(MAGIC);
            out.put_u16_le(*version);
            put_str(out, user);
            out.put_slice(nonce);
        }
        Body::Challenge { nonce } => out.put_slice(nonce),
        Body::Proof {
            proof,
            node_id,
            client_addrs,
            positions,
        } => {
            // Shard counts are small (one per core); a u16 is the format's limit.
            let shards = positions.len().min(usize::from(u16::MAX)) as u16;
            out.put_slice(proof);
            out.put_u16_le(shards);
            put_str(out, node_id);
            out.put_u32_le(client_addrs.len() as u32);
            for a in client_addrs {
                put_str(out, a);
            }
            for p in positions.iter().take(usize::from(shards)) {
                out.put_u64_le(*p);
            }
        }
        Body::Welcome {
            proof,
            master_node_id,
            oldest,
            history,
        } => {
            out.put_slice(proof);
            put_str(out, master_node_id);
            let shards = oldest.len().min(usize::from(u16::MAX)) as u16;
            out.put_u16_le(shards);
            for p in oldest.iter().take(usize::from(shards)) {
                out.put_u64_le(*p);
            }
            let count = history.len().min(usize::from(u16::MAX)) as u16;
            out.put_u16_le(count);
            for (epoch, starts) in history.iter().take(usize::from(count)) {
                out.put_u64_le(*epoch);
                for i in 0..usize::from(shards) {
                    out.put_u64_le(starts.get(i).copied().unwrap_or(0));
                }
            }
        }
        Body::Refuse {
            proof,
            code,
            reason,
        } => {
            out.put_slice(proof);
            out.put_u8(code.to_u8());
            put_str(out, reason);
        }
        Body::Batch {
            shard,
            start,
            bytes,
        } => {
            out.put_u16_le(wire_shard(*shard));
            out.put_u64_le(*start);
            out.put_slice(bytes);
        }
        Body::Volatile { shard, seq, record } => {
            out.put_u16_le(wire_shard(*shard));
            out.put_u64_le(*seq);
            out.put_slice(record);
        }
        Body::Ack {
            shard,
            received,
            durable,
        } => {
            debug_assert!(
                durable <= received,
                "Ack durable {durable} > received {received}"
            );
            out.put_u16_le(wire_shard(*shard));
            out.put_u64_le(*received);
            out.put_u64_le(*durable);
        }
        Body::Heartbeat | Body::InSync => {}
        Body::Goodbye { reason } => put_str(out, reason),
    }
    let len = out.len() - start - 4;
    let len = u32::try_from(len).expect("replication frame over 4 GiB");
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
}

/// A shard id as the link carries it. Shard counts are validated to at most 1024, so
/// an id over `u16::MAX` is a bug in the sender (as [`encode`] documents), not input.
fn wire_shard(shard: ShardId) -> u16 {
    u16::try_from(shard).expect("shard id does not fit the link's u16 field")
}

fn kind_of(body: &Body) -> u8 {
    match body {
        Body::Hello { .. } => KIND_HELLO,
        Body::Welcome { .. } => KIND_WELCOME,
        Body::Refuse { .. } => KIND_REFUSE,
        Body::Batch { .. } => KIND_BATCH,
        Body::Volatile { .. } => KIND_VOLATILE,
        Body::Ack { .. } => KIND_ACK,
        Body::Heartbeat => KIND_HEARTBEAT,
        Body::Goodbye { .. } => KIND_GOODBYE,
        Body::InSync => KIND_IN_SYNC,
        Body::Challenge { .. } => KIND_CHALLENGE,
        Body::Proof { .. } => KIND_PROOF,
    }
}

/// Enough room for the body in the common cases, so `encode` reserves once.
fn body_len_hint(body: &Body) -> usize {
    match body {
        Body::Batch { bytes, .. } => 10 + bytes.len(),
        Body::Volatile { record, .. } => 10 + record.len(),
        Body::Proof { positions, .. } => 96 + 8 * positions.len(),
        Body::Welcome { oldest, .. } => 32 + 8 * oldest.len(),
        _ => 32,
    }
}

fn put_str(out: &mut BytesMut, s: &str) {
    let len = u32::try_from(s.len()).expect("string over 4 GiB in a replication frame");
    out.put_u32_le(len);
    out.put_slice(s.as_bytes());
}

/// Says whether a connection's first bytes are a replication Hello: `None` until enough
/// bytes are in to tell, `Some(false)` as soon as any byte rules it out.
///
/// Checks the kind (offset 4) and the magic (offsets 13..21). An OpenWire
/// WireFormatInfo also has type 1 at offset 4, but `ActiveMQ` at 5..13; STOMP has a
/// letter at offset 4.
pub fn looks_like_replication(first_bytes: &[u8]) -> Option<bool> {
    if let Some(&kind) = first_bytes.get(4) {
        if kind != KIND_HELLO {
            return Some(false);
        }
    }
    let magic = first_bytes.get(MAGIC_AT..).unwrap_or(&[]);
    let n = magic.len().min(MAGIC.len());
    if magic[..n] != MAGIC[..n] {
        return Some(false);
    }
    if n == MAGIC.len() {
        Some(true)
    } else {
        None
    }
}

/// Incremental, bounded decoder for one link.
///
/// Feed it the connection's read buffer after every read; each call takes at most one
/// frame off the front, and leaves an incomplete frame in place.
#[derive(Debug)]
pub struct Decoder {
    /// Largest whole frame (len field included) accepted; anything larger is refused
    /// from its first four bytes. Must exceed the largest batch the master ships.
    pub max_frame_bytes: usize,
    /// Set by the first error; every later call repeats it, since the stream is lost.
    failed: Option<FrameError>,
}

impl Default for Decoder {
    fn default() -> Decoder {
        Decoder::new(Decoder::DEFAULT_MAX_FRAME_BYTES)
    }
}

impl Decoder {
    /// 128 MiB: four default journal segments, far above a default 1 MiB batch and the
    /// 64 MiB STOMP frame limit (a record larger than a batch ships alone).
    pub const DEFAULT_MAX_FRAME_BYTES: usize = 128 << 20;

    pub fn new(max_frame_bytes: usize) -> Decoder {
        Decoder {
            max_frame_bytes,
            failed: None,
        }
    }

    /// Takes one frame off the front of `buf`: `Ok(None)` while it is incomplete.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let result = self.decode_one(buf);
        if let Err(e) = &result {
            self.failed = Some(e.clone());
        }
        result
    }

    fn decode_one(&self, buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        let Some(len) = buf.get(..4) else {
            return Ok(None);
        };
        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]);
        if len < MIN_LEN {
            return Err(FrameError::TooShort { len });
        }
        let total = 4 + u64::from(len);
        if total > self.max_frame_bytes as u64 {
            return Err(FrameError::TooLarge {
                bytes: total,
                max_frame_bytes: self.max_frame_bytes,
            });
        }
        if let Some(&kind) = buf.get(4) {
            if !(KIND_HELLO..=KIND_LAST).contains(&kind) {
                return Err(FrameError::UnknownKind(kind));
            }
            if kind == KIND_HELLO && looks_like_replication(buf) == Some(false) {
                return Err(FrameError::BadMagic);
            }
        }
        // `total <= max_frame_bytes`, so it fits a usize.
        let total = total as usize;
        if buf.len() < total {
            return Ok(None);
        }
        let frame = buf.split_to(total).freeze();
        parse(&frame).map(Some)
    }
}

/// Parses one complete frame, `len` already checked to match `frame.len()`.
fn parse(frame: &Bytes) -> Result<Frame, FrameError> {
    let mut r = Reader {
        buf: frame,
        pos: 4,
        kind: 0,
    };
    r.kind = r.u8()?;
    let epoch = r.u64()?;
    let body = match r.kind {
        KIND_HELLO => {
            if r.take(MAGIC.len())? != MAGIC {
                return Err(FrameError::BadMagic);
            }
            Body::Hello {
                version: r.u16()?,
                user: r.str()?,
                nonce: r.array()?,
            }
        }
        KIND_CHALLENGE => Body::Challenge { nonce: r.array()? },
        KIND_PROOF => {
            let proof = r.array()?;
            let shards = usize::from(r.u16()?);
            let node_id = r.str()?;
            let count = r.u32()? as usize;
            // Each address takes at least its 4-byte length: bound the allocation by
            // what the frame can hold.
            let mut client_addrs = Vec::with_capacity(count.min(r.remaining() / 4));
            for _ in 0..count {
                client_addrs.push(r.str()?);
            }
            Body::Proof {
                proof,
                node_id,
                client_addrs,
                positions: r.u64s(shards)?,
            }
        }
        KIND_WELCOME => {
            let proof = r.array()?;
            let master_node_id = r.str()?;
            let shards = usize::from(r.u16()?);
            let oldest = r.u64s(shards)?;
            let count = usize::from(r.u16()?);
            let mut history = Vec::new();
            for _ in 0..count {
                let epoch = r.u64()?;
                history.push((epoch, r.u64s(shards)?));
            }
            Body::Welcome {
                proof,
                master_node_id,
                oldest,
                history,
            }
        }
        KIND_REFUSE => Body::Refuse {
            proof: r.array()?,
            code: RefuseCode::from_u8(r.u8()?),
            reason: r.str()?,
        },
        KIND_BATCH => Body::Batch {
            shard: ShardId::from(r.u16()?),
            start: r.u64()?,
            bytes: r.rest(),
        },
        KIND_VOLATILE => Body::Volatile {
            shard: ShardId::from(r.u16()?),
            seq: r.u64()?,
            record: r.rest(),
        },
        KIND_ACK => Body::Ack {
            shard: ShardId::from(r.u16()?),
            received: r.u64()?,
            durable: r.u64()?,
        },
        KIND_HEARTBEAT => Body::Heartbeat,
        KIND_GOODBYE => Body::Goodbye { reason: r.str()? },
        KIND_IN_SYNC => Body::InSync,
        other => return Err(FrameError::UnknownKind(other)),
    };
    if r.remaining() != 0 {
        return Err(FrameError::TrailingBytes {
            kind: r.kind,
            extra: r.remaining(),
        });
    }
    Ok(Frame { epoch, body })
}

/// Bounds-checked reads over one frame. Invariant: `pos <= buf.len()`.
struct Reader<'a> {
    buf: &'a Bytes,
    pos: usize,
    /// The frame's kind, for error messages (0 until read).
    kind: u8,
}

impl Reader<'_> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&[u8], FrameError> {
        if self.remaining() < n {
            return Err(FrameError::Truncated { kind: self.kind });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], FrameError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, FrameError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, FrameError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, FrameError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, FrameError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// `count` u64s; the caller has bounded `count` by the bytes left.
    fn u64s(&mut self, count: usize) -> Result<Vec<u64>, FrameError> {
        let mut v = Vec::with_capacity(count.min(self.remaining() / 8));
        for _ in 0..count {
            v.push(self.u64()?);
        }
        Ok(v)
    }

    fn str(&mut self) -> Result<String, FrameError> {
        let len = self.u32()? as usize;
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| FrameError::Utf8)
    }

    /// The rest of the frame, as a slice of it (no copy).
    fn rest(&mut self) -> Bytes {
        let b = self.buf.slice(self.pos..);
        self.pos = self.buf.len();
        b
    }
}

#[cfg(test)]
#[path = "frame_tests.rs"]
pub(crate) mod tests;
