//! Journal records: what a shard writes to its journal, and what recovery (and, later,
//! a slave) applies to rebuild state. The store frames and checksums each payload; this
//! module owns the payload layout.
//!
//! # Payload layout (all integers little-endian)
//!
//! ```text
//! record    := kind:u8 body
//! kind 1  Enqueue   dest seq:u64 redeliveries:u32 message targets
//! kind 2  Ack       dest durable? seqs
//! kind 3  Durable   dest name selector?            (durable subscription created)
//! kind 4  Undurable dest name                       (durable subscription removed)
//! kind 5  Tx        count:u32 record*               (atomic, one shard)
//! kind 6  Prepare   gtx:u128 count:u32 record*      (phase one, spanning shards)
//! kind 7  Outcome   gtx:u128 commit:u8              (coordinator's decision)
//! kind 8  Resolved  gtx:u128 commit:u8              (participant applied/dropped)
//! kind 9  Purge     dest                           (every message of a queue removed)
//! kind 10 DeleteQueue dest                         (queue purged and removed)
//! kind 11 CreateQueue dest                         (queue exists, even empty: a
//!                                                   virtual-topic consumer queue)
//! kind 12 Schedule  key:u64 created_ms:u64 next_ms:u64 fired:u32 redeliveries:u32
//!                   cron:(0:u8 | 1:u8 str) delay:i64 period:i64 repeat:i32 message
//!                   (a scheduled message, `broker::scheduler`: job `key`, unique on
//!                   the shard, fires at `next_ms` with `repeat` repeats left; also
//!                   the relocated copy of a job, with its current state)
//! kind 13 Fire      key:u64 next_ms:u64 repeat:i32 fired:u32 count:u32 record*
//!                   (job `key` fired: it next fires at `next_ms` with `repeat` left,
//!                   or is done if `next_ms` is 0; the nested records, applied with
//!                   it, are the delivered copy's Enqueue (if journaled) and the
//!                   Schedule of a job a cron job starts)
//!
//! dest      := kind:u8 str
//! durable?  := 0:u8 | 1:u8 name
//! name      := client_id:str subscription:str
//! selector? := 0:u8 | 1:u8 str
//! seqs      := count:u32 seq:u64*
//! targets   := count:u32 name*        (topics: the durable subscriptions it is for)
//! message   := id:str dest persistent:u8 priority:u8 timestamp_ms:u64 expires_ms:u64
//!              reply_to:(0:u8 | 1:u8 str) headers:(count:u32 (str str)*) body:bytes [jms]
//! jms       := body_type:u8 props:(count:u32 (str prop)*)
//!              (present iff bit 31 of the headers count is set; the count is the low
//!              31 bits. Written only for a message that is not a plain text message
//!              without typed properties, so older records read unchanged.)
//! body_type := kind (0 text, 1 bytes, 2 map, 3 object, 4 stream, 5 plain)
//!              | 0x80 if compressed | 0x40 if the JMS body is null
//! prop      := 1:u8 bool:u8 | 2:u8 i8 | 4:u8 i16 | 5:u8 i32 | 6:u8 i64
//!            | 7:u8 f64-bits:u64 | 8:u8 f32-bits:u32 | 255:u8 opaque:bytes
//! str       := len:u32 utf8
//! bytes     := len:u32 raw
//! ```
//!
//! Nested records inside `Tx`/`Prepare` are only `Enqueue`, `Ack` and `Schedule`; inside
//! `Fire` only `Enqueue` and `Schedule`. Kinds 12 and 13 are new with scheduled delivery:
//! an older binary refuses a journal that holds them (unknown record kind).

use bytes::{BufMut, Bytes, BytesMut};

use super::destination::{DestKind, Destination};
use super::message::{BodyKind, BodyType, Message, MessageRef, PropValue};
use super::ops::{DurableName, GlobalTxId};
use super::scheduler::Spec;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    Enqueue {
        seq: u64,
        redeliveries: u32,
        message: MessageRef,
        /// For a topic message: the durable subscriptions that must receive it.
        targets: Vec<DurableName>,
    },
    Ack {
        destination: Destination,
        durable: Option<DurableName>,
        seqs: Vec<u64>,
    },
    Durable {
        destination: Destination,
        name: DurableName,
        selector: Option<String>,
    },
    Undurable {
        destination: Destination,
        name: DurableName,
    },
    Tx(Vec<Record>),
    Prepare {
        gtx: GlobalTxId,
        records: Vec<Record>,
    },
    Outcome {
        gtx: GlobalTxId,
        commit: bool,
    },
    Resolved {
        gtx: GlobalTxId,
        commit: bool,
    },
    Purge {
        destination: Destination,
    },
    /// The queue is purged and forgotten (it no longer exists; a later send creates
    /// it afresh, as in ActiveMQ).
    DeleteQueue {
        destination: Destination,
    },
    /// The queue exists from now on, even while empty (a virtual-topic consumer queue
    /// created by a consumer: a send to its topic must reach it after a restart or a
    /// takeover, as in ActiveMQ, whose store keeps every destination). Journaled once,
    /// when the queue is created; it pins its segment while the queue exists.
    CreateQueue {
        destination: Destination,
    },
    /// A scheduled message (`broker::scheduler`), or the relocated copy of one with
    /// its current state. Pins its segment while the job exists.
    Schedule {
        key: u64,
        created_ms: u64,
        next_ms: u64,
        fired: u32,
        redeliveries: u32,
        spec: Spec,
        message: MessageRef,
    },
    /// Job `key` fired: its new state (`next`: when it fires again and the repeats
    /// left then; `None`: done) and, in the same record, what the firing stored.
    Fire {
        key: u64,
        next: Option<(u64, i32)>,
        fired: u32,
        then: Vec<Record>,
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record truncated")]
    Truncated,
    #[error("unknown record kind {0}")]
    UnknownKind(u8),
    #[error("unknown destination kind {0}")]
    UnknownDestKind(u8),
    #[error("string is not UTF-8")]
    Utf8,
    #[error("nested record of kind {0} not allowed in a transaction")]
    BadNested(u8),
    #[error("unknown message body type {0}")]
    BadBodyType(u8),
    #[error("unknown property type tag {0}")]
    BadPropertyTag(u8),
}

impl Record {
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.encoded_len_hint());
        self.encode_into(&mut out);
        out.freeze()
    }

    fn encoded_len_hint(&self) -> usize {
        match self {
            Record::Enqueue { message, .. } | Record::Schedule { message, .. } => {
                128 + message.memory_size()
            }
            Record::Fire { then, .. } => {
                64 + then.iter().map(|r| r.encoded_len_hint()).sum::<usize>()
            }
            _ => 64,
        }
    }

    pub fn encode_into(&self, out: &mut BytesMut) {
        match self {
            Record::Enqueue {
                seq,
                redeliveries,
                message,
                targets,
            } => {
                out.put_u8(1);
                put_dest(out, &message.destination);
                out.put_u64_le(*seq);
                out.put_u32_le(*redeliveries);
                put_message(out, message);
                out.put_u32_le(targets.len() as u32);
                for t in targets {
                    put_name(out, t);
                }
            }
            Record::Ack {
                destination,
                durable,
                seqs,
            } => {
                out.put_u8(2);
                put_dest(out, destination);
                match durable {
                    None => out.put_u8(0),
                    Some(n) => {
                        out.put_u8(1);
                        put_name(out, n);
                    }
                }
                out.put_u32_le(seqs.len() as u32);
                for s in seqs {
                    out.put_u64_le(*s);
                }
            }
            Record::Durable {
                destination,
                name,
                selector,
            } => {
                out.put_u8(3);
                put_dest(out, destination);
                put_name(out, name);
                put_opt_str(out, selector.as_deref());
            }
            Record::Undurable { destination, name } => {
                out.put_u8(4);
                put_dest(out, destination);
                put_name(out, name);
            }
            Record::Tx(records) => {
                out.put_u8(5);
                out.put_u32_le(records.len() as u32);
                for r in records {
                    r.encode_into(out);
                }
            }
            Record::Prepare { gtx, records } => {
                out.put_u8(6);
                out.put_u128_le(*gtx);
                out.put_u32_le(records.len() as u32);
                for r in records {
                    r.encode_into(out);
                }
            }
            Record::Outcome { gtx, commit } => {
                out.put_u8(7);
                out.put_u128_le(*gtx);
                out.put_u8(u8::from(*commit));
            }
            Record::Resolved { gtx, commit } => {
                out.put_u8(8);
                out.put_u128_le(*gtx);
                out.put_u8(u8::from(*commit));
            }
            Record::Purge { destination } => {
                out.put_u8(9);
                put_dest(out, destination);
            }
            Record::DeleteQueue { destination } => {
                out.put_u8(10);
                put_dest(out, destination);
            }
            Record::CreateQueue { destination } => {
                out.put_u8(11);
                put_dest(out, destination);
            }
            Record::Schedule {
                key,
                created_ms,
                next_ms,
                fired,
                redeliveries,
                spec,
                message,
            } => {
                out.put_u8(12);
                out.put_u64_le(*key);
                out.put_u64_le(*created_ms);
                out.put_u64_le(*next_ms);
                out.put_u32_le(*fired);
                out.put_u32_le(*redeliveries);
                put_opt_str(out, spec.cron.as_deref());
                out.put_i64_le(spec.delay);
                out.put_i64_le(spec.period);
                out.put_i32_le(spec.repeat);
                put_message(out, message);
            }
            Record::Fire {
                key,
                next,
                fired,
                then,
            } => {
                out.put_u8(13);
                out.put_u64_le(*key);
                let (next_ms, repeat) = next.unwrap_or((0, 0));
                out.put_u64_le(next_ms);
                out.put_i32_le(repeat);
                out.put_u32_le(*fired);
                out.put_u32_le(then.len() as u32);
                for r in then {
                    r.encode_into(out);
                }
            }
        }
    }

    /// Decodes one record. `payload` is kept by reference: message bodies are slices
    /// of it, not copies.
    pub fn decode(payload: &Bytes) -> Result<Record, DecodeError> {
        let mut r = Reader {
            buf: payload,
            pos: 0,
        };
        let rec = r.record(ALL_KINDS)?;
        Ok(rec)
    }
}

fn put_str(out: &mut BytesMut, s: &str) {
    out.put_u32_le(s.len() as u32);
    out.put_slice(s.as_bytes());
}
fn put_opt_str(out: &mut BytesMut, s: Option<&str>) {
    match s {
        None => out.put_u8(0),
        Some(s) => {
            out.put_u8(1);
            put_str(out, s);
        }
    }
}
fn put_dest(out: &mut BytesMut, d: &Destination) {
    out.put_u8(d.kind.code());
    put_str(out, &d.name);
}
fn put_name(out: &mut BytesMut, n: &DurableName) {
    put_str(out, &n.client_id);
    put_str(out, &n.name);
}
fn put_message(out: &mut BytesMut, m: &Message) {
    put_str(out, &m.id);
    put_dest(out, &m.destination);
    out.put_u8(u8::from(m.persistent));
    out.put_u8(m.priority);
    out.put_u64_le(m.timestamp_ms);
    out.put_u64_le(m.expires_ms);
    put_opt_str(out, m.reply_to.as_deref());
    let jms = m.body_type != BodyType::TEXT || !m.properties.is_empty();
    debug_assert!(m.headers.len() < JMS_FLAG as usize);
    out.put_u32_le(m.headers.len() as u32 | if jms { JMS_FLAG } else { 0 });
    for (k, v) in &m.headers {
        put_str(out, k);
        put_str(out, v);
    }
    out.put_u32_le(m.body.len() as u32);
    out.put_slice(&m.body);
    if jms {
        let kind = match m.body_type.kind {
            BodyKind::Text => 0,
            BodyKind::Bytes => 1,
            BodyKind::Map => 2,
            BodyKind::Object => 3,
            BodyKind::Stream => 4,
            BodyKind::Plain => 5,
        };
        let flags =
            if m.body_type.compressed { 0x80 } else { 0 } | if m.body_type.null { 0x40 } else { 0 };
        out.put_u8(kind | flags);
        out.put_u32_le(m.properties.len() as u32);
        for (k, v) in &m.properties {
            put_str(out, k);
            match v {
                PropValue::Bool(b) => {
                    out.put_u8(1);
                    out.put_u8(u8::from(*b));
                }
                PropValue::Byte(b) => {
                    out.put_u8(2);
                    out.put_i8(*b);
                }
                PropValue::Short(x) => {
                    out.put_u8(4);
                    out.put_i16_le(*x);
                }
                PropValue::Int(x) => {
                    out.put_u8(5);
                    out.put_i32_le(*x);
                }
                PropValue::Long(x) => {
                    out.put_u8(6);
                    out.put_i64_le(*x);
                }
                PropValue::Double(x) => {
                    out.put_u8(7);
                    out.put_u64_le(x.to_bits());
                }
                PropValue::Float(x) => {
                    out.put_u8(8);
                    out.put_u32_le(x.to_bits());
                }
                PropValue::Opaque(b) => {
                    out.put_u8(255);
                    out.put_u32_le(b.len() as u32);
                    out.put_slice(b);
                }
            }
        }
    }
}

/// Which record kinds may appear where (see the module doc).
const ALL_KINDS: &[u8] = &[];
const IN_TX: &[u8] = &[1, 2, 12];
const IN_FIRE: &[u8] = &[1, 12];

/// Bit 31 of a message's headers count: the JMS extension follows the body.
const JMS_FLAG: u32 = 1 << 31;

struct Reader<'a> {
    buf: &'a Bytes,
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(DecodeError::Truncated)?;
        let s = self.buf.get(self.pos..end).ok_or(DecodeError::Truncated)?;
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
    fn u128(&mut self) -> Result<u128, DecodeError> {
        let mut a = [0u8; 16];
        a.copy_from_slice(self.take(16)?);
        Ok(u128::from_le_bytes(a))
    }
    fn bool(&mut self) -> Result<bool, DecodeError> {
        Ok(self.u8()? != 0)
    }
    fn str(&mut self) -> Result<String, DecodeError> {
        let n = self.u32()? as usize;
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| DecodeError::Utf8)
    }
    fn opt_str(&mut self) -> Result<Option<String>, DecodeError> {
        Ok(if self.bool()? {
            Some(self.str()?)
        } else {
            None
        })
    }
    fn bytes(&mut self) -> Result<Bytes, DecodeError> {
        let n = self.u32()? as usize;
        let start = self.pos;
        self.take(n)?;
        Ok(self.buf.slice(start..start + n))
    }
    fn dest(&mut self) -> Result<Destination, DecodeError> {
        let code = self.u8()?;
        let kind = DestKind::from_code(code).ok_or(DecodeError::UnknownDestKind(code))?;
        Ok(Destination {
            kind,
            name: self.str()?,
        })
    }
    fn name(&mut self) -> Result<DurableName, DecodeError> {
        Ok(DurableName {
            client_id: self.str()?,
            name: self.str()?,
        })
    }
    fn seqs(&mut self) -> Result<Vec<u64>, DecodeError> {
        let n = self.u32()? as usize;
        // Bound the allocation by what the payload can actually hold.
        let mut v = Vec::with_capacity(n.min(self.buf.len() / 8));
        for _ in 0..n {
            v.push(self.u64()?);
        }
        Ok(v)
    }
    fn message(&mut self) -> Result<Message, DecodeError> {
        let id = self.str()?;
        let destination = self.dest()?;
        let persistent = self.bool()?;
        let priority = self.u8()?;
        let timestamp_ms = self.u64()?;
        let expires_ms = self.u64()?;
        let reply_to = self.opt_str()?;
        let count = self.u32()?;
        let n = (count & !JMS_FLAG) as usize;
        let mut headers = Vec::with_capacity(n.min(self.buf.len() / 8));
        for _ in 0..n {
            let k = self.str()?;
            let v = self.str()?;
            headers.push((k, v));
        }
        let body = self.bytes()?;
        let (body_type, properties) = if count & JMS_FLAG != 0 {
            self.jms()?
        } else {
            (BodyType::TEXT, Vec::new())
        };
        Ok(Message {
            id,
            destination,
            persistent,
            priority,
            timestamp_ms,
            expires_ms,
            reply_to,
            headers,
            body,
            body_type,
            properties,
        })
    }
    fn jms(&mut self) -> Result<(BodyType, Vec<(String, PropValue)>), DecodeError> {
        let code = self.u8()?;
        let kind = match code & 0x3f {
            0 => BodyKind::Text,
            1 => BodyKind::Bytes,
            2 => BodyKind::Map,
            3 => BodyKind::Object,
            4 => BodyKind::Stream,
            5 => BodyKind::Plain,
            _ => return Err(DecodeError::BadBodyType(code)),
        };
        let body_type = BodyType {
            kind,
            compressed: code & 0x80 != 0,
            null: code & 0x40 != 0,
        };
        let n = self.u32()? as usize;
        let mut props = Vec::with_capacity(n.min(self.buf.len() / 8));
        for _ in 0..n {
            let k = self.str()?;
            let tag = self.u8()?;
            let v = match tag {
                1 => PropValue::Bool(self.bool()?),
                2 => PropValue::Byte(self.u8()? as i8),
                4 => {
                    let b = self.take(2)?;
                    PropValue::Short(i16::from_le_bytes([b[0], b[1]]))
                }
                5 => PropValue::Int(self.u32()? as i32),
                6 => PropValue::Long(self.u64()? as i64),
                7 => PropValue::Double(f64::from_bits(self.u64()?)),
                8 => PropValue::Float(f32::from_bits(self.u32()?)),
                255 => PropValue::Opaque(self.bytes()?),
                other => return Err(DecodeError::BadPropertyTag(other)),
            };
            props.push((k, v));
        }
        Ok((body_type, props))
    }
    fn nested(&mut self, allowed: &[u8]) -> Result<Vec<Record>, DecodeError> {
        let n = self.u32()? as usize;
        let mut v = Vec::with_capacity(n.min(self.buf.len() / 8));
        for _ in 0..n {
            v.push(self.record(allowed)?);
        }
        Ok(v)
    }
    fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(self.u32()? as i32)
    }
    fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(self.u64()? as i64)
    }
    /// One record; `allowed` empty: any kind (top level), else only those kinds.
    fn record(&mut self, allowed: &[u8]) -> Result<Record, DecodeError> {
        let kind = self.u8()?;
        if !allowed.is_empty() && !allowed.contains(&kind) {
            return Err(DecodeError::BadNested(kind));
        }
        Ok(match kind {
            1 => {
                let _dest = self.dest()?;
                let seq = self.u64()?;
                let redeliveries = self.u32()?;
                let message = self.message()?;
                let n = self.u32()? as usize;
                let mut targets = Vec::with_capacity(n.min(self.buf.len() / 8));
                for _ in 0..n {
                    targets.push(self.name()?);
                }
                Record::Enqueue {
                    seq,
                    redeliveries,
                    message: MessageRef::new(message),
                    targets,
                }
            }
            2 => {
                let destination = self.dest()?;
                let durable = if self.bool()? {
                    Some(self.name()?)
                } else {
                    None
                };
                Record::Ack {
                    destination,
                    durable,
                    seqs: self.seqs()?,
                }
            }
            3 => Record::Durable {
                destination: self.dest()?,
                name: self.name()?,
                selector: self.opt_str()?,
            },
            4 => Record::Undurable {
                destination: self.dest()?,
                name: self.name()?,
            },
            5 => Record::Tx(self.nested(IN_TX)?),
            6 => Record::Prepare {
                gtx: self.u128()?,
                records: self.nested(IN_TX)?,
            },
            7 => Record::Outcome {
                gtx: self.u128()?,
                commit: self.bool()?,
            },
            8 => Record::Resolved {
                gtx: self.u128()?,
                commit: self.bool()?,
            },
            9 => Record::Purge {
                destination: self.dest()?,
            },
            10 => Record::DeleteQueue {
                destination: self.dest()?,
            },
            11 => Record::CreateQueue {
                destination: self.dest()?,
            },
            12 => Record::Schedule {
                key: self.u64()?,
                created_ms: self.u64()?,
                next_ms: self.u64()?,
                fired: self.u32()?,
                redeliveries: self.u32()?,
                spec: Spec {
                    cron: self.opt_str()?,
                    delay: self.i64()?,
                    period: self.i64()?,
                    repeat: self.i32()?,
                },
                message: MessageRef::new(self.message()?),
            },
            13 => {
                let key = self.u64()?;
                let next_ms = self.u64()?;
                let repeat = self.i32()?;
                Record::Fire {
                    key,
                    next: (next_ms != 0).then_some((next_ms, repeat)),
                    fired: self.u32()?,
                    then: self.nested(IN_FIRE)?,
                }
            }
            other => return Err(DecodeError::UnknownKind(other)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg() -> Message {
        Message {
            id: "ID:x-1".into(),
            destination: Destination::queue("q"),
            persistent: true,
            priority: 4,
            timestamp_ms: 7,
            expires_ms: 0,
            reply_to: Some("/queue/r".into()),
            headers: vec![("k".into(), "v".into())],
            body: Bytes::from_static(b"a\0b"),
            body_type: BodyType::TEXT,
            properties: Vec::new(),
        }
    }

    /// A JMS message: another body type, typed properties of every kind.
    fn jms_msg() -> Message {
        Message {
            body_type: BodyType {
                kind: BodyKind::Map,
                compressed: true,
                null: true,
            },
            properties: vec![
                ("b".into(), PropValue::Bool(true)),
                ("y".into(), PropValue::Byte(-1)),
                ("s".into(), PropValue::Short(-300)),
                ("i".into(), PropValue::Int(7)),
                ("l".into(), PropValue::Long(1 << 40)),
                ("f".into(), PropValue::Float(1.5)),
                ("d".into(), PropValue::Double(-0.25)),
                (
                    "o".into(),
                    PropValue::Opaque(Bytes::from_static(&[3, 0, 65])),
                ),
            ],
            ..msg()
        }
    }

    #[test]
    fn jms_messages_round_trip_and_plain_text_keeps_the_old_layout() {
        let rec = |m: Message| Record::Enqueue {
            seq: 1,
            redeliveries: 0,
            message: MessageRef::new(m),
            targets: vec![],
        };
        let jms = rec(jms_msg());
        let bytes = jms.encode();
        assert_eq!(Record::decode(&bytes).unwrap(), jms);
        for cut in 0..bytes.len() {
            assert!(Record::decode(&bytes.slice(..cut)).is_err());
        }
        // A plain text message has no extension: the headers count has bit 31 clear
        // and the record ends with the body.
        let plain = rec(msg()).encode();
        assert!(plain.ends_with(b"\x03\0\0\0a\0b\0\0\0\0"));
        let one_prop = Message {
            properties: vec![("n".into(), PropValue::Int(1))],
            ..msg()
        };
        assert_eq!(
            Record::decode(&rec(one_prop.clone()).encode()).unwrap(),
            rec(one_prop)
        );
    }

    #[test]
    fn every_kind_round_trips() {
        let name = DurableName {
            client_id: "c".into(),
            name: "s".into(),
        };
        let enq = Record::Enqueue {
            seq: 3,
            redeliveries: 1,
            message: MessageRef::new(msg()),
            targets: vec![name.clone()],
        };
        let ack = Record::Ack {
            destination: Destination::topic("t"),
            durable: Some(name.clone()),
            seqs: vec![1, 2],
        };
        let all = vec![
            enq.clone(),
            ack.clone(),
            Record::Durable {
                destination: Destination::topic("t"),
                name: name.clone(),
                selector: Some("a > 1".into()),
            },
            Record::Undurable {
                destination: Destination::topic("t"),
                name,
            },
            Record::Tx(vec![enq.clone(), ack.clone()]),
            Record::Prepare {
                gtx: 1 << 100,
                records: vec![enq.clone()],
            },
            Record::Outcome {
                gtx: 5,
                commit: true,
            },
            Record::Resolved {
                gtx: 5,
                commit: false,
            },
            Record::Purge {
                destination: Destination::queue("q"),
            },
            Record::DeleteQueue {
                destination: Destination::queue("gone"),
            },
            Record::CreateQueue {
                destination: Destination::queue("Consumer.A.VirtualTopic.X"),
            },
            schedule(),
            Record::Fire {
                key: 9,
                next: Some((1234, -1)),
                fired: 2,
                then: vec![enq.clone(), schedule()],
            },
            Record::Fire {
                key: 9,
                next: None,
                fired: 3,
                then: vec![],
            },
            Record::Tx(vec![schedule(), ack.clone()]),
        ];
        for r in all {
            assert_eq!(Record::decode(&r.encode()).unwrap(), r);
        }
    }

    fn schedule() -> Record {
        Record::Schedule {
            key: 9,
            created_ms: 100,
            next_ms: 200,
            fired: 1,
            redeliveries: 2,
            spec: Spec {
                cron: Some("*/5 * * * *".into()),
                delay: 10,
                period: -3,
                repeat: 4,
            },
            message: MessageRef::new(jms_msg()),
        }
    }

    #[test]
    fn schedule_and_fire_layouts_and_what_they_may_nest() {
        let bytes = schedule().encode();
        assert_eq!(bytes[0], 12);
        assert_eq!(&bytes[1..9], &9u64.to_le_bytes());
        for cut in 0..bytes.len() {
            assert!(Record::decode(&bytes.slice(..cut)).is_err());
        }
        let done = Record::Fire {
            key: 7,
            next: None,
            fired: 1,
            then: vec![],
        }
        .encode();
        let mut want = vec![13];
        want.extend(7u64.to_le_bytes());
        want.extend(0u64.to_le_bytes());
        want.extend(0i32.to_le_bytes());
        want.extend(1u32.to_le_bytes());
        want.extend(0u32.to_le_bytes());
        assert_eq!(&done[..], &want[..]);
        // An Ack inside a Fire is refused.
        let bad = Record::Fire {
            key: 7,
            next: None,
            fired: 1,
            then: vec![Record::Ack {
                destination: Destination::queue("q"),
                durable: None,
                seqs: vec![1],
            }],
        }
        .encode();
        assert_eq!(Record::decode(&bad), Err(DecodeError::BadNested(2)));
    }

    #[test]
    fn create_queue_layout_is_kind_11_then_the_destination() {
        let bytes = Record::CreateQueue {
            destination: Destination::queue("ab"),
        }
        .encode();
        assert_eq!(&bytes[..], &[11, 0, 2, 0, 0, 0, b'a', b'b']);
        for cut in 0..bytes.len() {
            assert!(Record::decode(&bytes.slice(..cut)).is_err());
        }
    }

    #[test]
    fn delete_queue_layout_is_kind_10_then_the_destination() {
        let bytes = Record::DeleteQueue {
            destination: Destination::queue("ab"),
        }
        .encode();
        assert_eq!(&bytes[..], &[10, 0, 2, 0, 0, 0, b'a', b'b']);
        for cut in 0..bytes.len() {
            assert!(Record::decode(&bytes.slice(..cut)).is_err());
        }
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let bytes = Record::Enqueue {
            seq: 1,
            redeliveries: 0,
            message: MessageRef::new(msg()),
            targets: vec![],
        }
        .encode();
        for cut in 0..bytes.len() {
            assert!(Record::decode(&bytes.slice(..cut)).is_err());
        }
    }
}
