//! SEND: building the broker `Message` from a frame (persistence, priority, expiry,
//! reply-to, the headers kept as properties), one copy for each consumer queue of a
//! virtual topic (`broker::virtual_topic`), transactional sends, producer flow control,
//! and STOMP destination names: parsing `/queue/`, `/topic/` and the temporary
//! destination prefixes, naming this connection's temporary destinations, and showing
//! the client its own alias for them again.

use std::sync::Arc;

use super::super::frame::Frame;
use super::receipts::{Pending, SendGroup};
use super::{invalid, required, Action, Session, SessionEnv, SessionError};
use crate::broker::{BodyType, DestKind, Destination, Message, MessageRef, Request, TxOp};

/// Headers that STOMP (or this session) interprets and therefore does not keep as a
/// message property (so a stored property of such a name cannot be sent as itself).
pub const NON_PROPERTY_HEADERS: &[&str] = &[
    "destination",
    "receipt",
    "transaction",
    "content-length",
    "persistent",
    "priority",
    "expires",
    "reply-to",
    "message-id",
    "timestamp",
    "redelivered",
    "subscription",
    "ack",
    "amq-msg-type",
];
impl<E: SessionEnv> Session<E> {
    // ----- SEND -----

    pub(super) fn send(&mut self, frame: &Frame) -> Result<(), SessionError> {
        let destination = self.destination(required(frame, "destination")?)?;
        let persistent = frame
            .header("persistent")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let priority = match frame.header("priority") {
            None => 4,
            Some(v) => v
                .trim()
                .parse::<u8>()
                .map_err(|_| invalid("priority", v))?
                .min(9),
        };
        let expires_ms = match frame.header("expires") {
            None => 0,
            Some(v) => v.trim().parse::<u64>().map_err(|_| invalid("expires", v))?,
        };
        let reply_to = match frame.header("reply-to") {
            None => None,
            Some(r) => Some(self.reply_to(r)?),
        };
        let headers: Vec<(String, String)> = frame
            .headers
            .iter()
            .filter(|(k, _)| !NON_PROPERTY_HEADERS.contains(&k.as_str()))
            .cloned()
            .collect();
        let msg = Message {
            id: self.env.next_message_id(),
            destination,
            persistent,
            priority,
            timestamp_ms: self.env.now_ms(),
            expires_ms,
            reply_to,
            headers,
            body: frame.body.clone(),
            body_type: body_type(frame),
            properties: Vec::new(),
        };
        // A virtual topic's consumer queues get the message too (one copy each, same
        // id), as the members of a composite destination would.
        let mut members = vec![msg.destination.clone()];
        let max = self.ctx.settings.limits.max_composite_destinations;
        if let Err(e) = self.ctx.registries.virtual_topics.expand(&mut members, max) {
            self.ctx
                .registries
                .limits
                .refused(crate::metrics::Limit::CompositeMembers);
            return Err(SessionError::LimitReached(e.to_string()));
        }
        let msgs: Vec<MessageRef> = match members.len() {
            1 => vec![Arc::new(msg)],
            _ => members
                .into_iter()
                .map(|d| {
                    Arc::new(Message {
                        destination: d,
                        ..msg.clone()
                    })
                })
                .collect(),
        };
        if let Some(tx) = frame.header("transaction") {
            let t = self
                .transactions
                .get_mut(tx)
                .ok_or_else(|| SessionError::UnknownTransaction(tx.into()))?;
            // Buffered until COMMIT: counted against maxTransactionSize and, with every
            // open transaction, against the memory limit.
            let size = msgs.iter().map(|m| m.memory_size() as u64).sum();
            if let Err(refusal) =
                t.charge
                    .add(&self.ctx.registries.limits, &self.ctx.settings.limits, size)
            {
                self.refuse_transaction(tx, &refusal.message(), frame.header("receipt"));
                return Ok(());
            }
            t.ops.extend(msgs.into_iter().map(TxOp::Send));
            return self.receipt_now(frame.header("receipt"));
        }
        let receipt = frame.header("receipt").map(str::to_owned);
        self.pending_sends += 1;
        if let [msg] = &msgs[..] {
            let msg = msg.clone();
            let shard = self.shard_of(&msg.destination);
            self.post_with_reply(shard, Pending::Send { receipt }, |reply| Request::Send {
                msg,
                reply,
            });
        } else {
            // One RECEIPT (or ERROR) once every copy is stored.
            let group = self.next_group;
            self.next_group += 1;
            self.send_groups.insert(
                group,
                SendGroup {
                    remaining: msgs.len(),
                    receipt,
                    failed: None,
                },
            );
            for msg in msgs {
                let shard = self.shard_of(&msg.destination);
                self.post_with_reply(shard, Pending::SendPart { group }, |reply| Request::Send {
                    msg,
                    reply,
                });
            }
        }
        if self.pending_sends >= self.ctx.settings.max_pending_sends.max(1) && !self.reading_paused
        {
            self.reading_paused = true;
            self.out.push(Action::PauseReading);
        }
        Ok(())
    }

    /// A `reply-to` as the consumer will see it: this connection's temporary
    /// destinations become their `/remote-temp-*` names; other names pass unchanged.
    pub(super) fn reply_to(&mut self, value: &str) -> Result<String, SessionError> {
        if value.starts_with("/temp-queue/") || value.starts_with("/temp-topic/") {
            Ok(self.destination(value)?.stomp_name())
        } else {
            Ok(value.to_owned())
        }
    }

    /// Parses a STOMP destination. A name without a prefix is a queue (ActiveMQ's
    /// default destination type).
    pub(super) fn destination(&mut self, name: &str) -> Result<Destination, SessionError> {
        let bad = || SessionError::InvalidDestination(name.to_owned());
        let (kind, rest, temp_alias) = if let Some(r) = name.strip_prefix("/queue/") {
            (DestKind::Queue, r, false)
        } else if let Some(r) = name.strip_prefix("/topic/") {
            (DestKind::Topic, r, false)
        } else if let Some(r) = name.strip_prefix("/temp-queue/") {
            (DestKind::TempQueue, r, true)
        } else if let Some(r) = name.strip_prefix("/temp-topic/") {
            (DestKind::TempTopic, r, true)
        } else if let Some(r) = name.strip_prefix("/remote-temp-queue/") {
            (DestKind::TempQueue, r, false)
        } else if let Some(r) = name.strip_prefix("/remote-temp-topic/") {
            (DestKind::TempTopic, r, false)
        } else if name.starts_with('/') {
            return Err(bad());
        } else {
            (DestKind::Queue, name, false)
        };
        if rest.is_empty() {
            return Err(bad());
        }
        if !temp_alias {
            return Ok(Destination {
                kind,
                name: rest.to_owned(),
            });
        }
        let key = (kind, rest.to_owned());
        if let Some(real) = self.temp_by_alias.get(&key) {
            return Ok(Destination {
                kind,
                name: real.clone(),
            });
        }
        let max = self
            .ctx
            .settings
            .limits
            .max_temp_destinations_per_connection;
        if self.temp_by_alias.len() >= max {
            self.ctx
                .registries
                .limits
                .refused(crate::metrics::Limit::TempDestinations);
            return Err(SessionError::LimitReached(
                crate::protocol::limits::count_refusal(
                    "temporary destinations",
                    "maxTemporaryDestinationsPerConnection",
                    max,
                ),
            ));
        }
        let real = format!("ID:{}:{}", self.tag, self.next_temp);
        self.next_temp += 1;
        self.temp_by_alias.insert(key, real.clone());
        self.temp_alias_of.insert(real.clone(), name.to_owned());
        Ok(Destination { kind, name: real })
    }

    /// The destination as this client should read it in a MESSAGE frame.
    pub(super) fn display_destination(&self, d: &Destination) -> String {
        if d.kind.is_temporary() {
            if let Some(alias) = self.temp_alias_of.get(&d.name) {
                return alias.clone();
            }
        }
        d.stomp_name()
    }
}

/// What a JMS consumer receives a SEND as (ActiveMQ's rule): `amq-msg-type: bytes` or
/// `text` if given, else a bytes message when the frame has a `content-length`, else
/// a text message.
fn body_type(frame: &Frame) -> BodyType {
    match frame.header("amq-msg-type") {
        Some("bytes") => BodyType::BYTES,
        Some("text") => BodyType::TEXT,
        _ if frame.header("content-length").is_some() => BodyType::BYTES,
        _ => BodyType::TEXT,
    }
}
