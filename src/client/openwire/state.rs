//! The OpenWire client's bookkeeping, kept in the shared [`State`] (callers and the I/O
//! thread, under one mutex): the connection/session/producer commands, commands
//! awaiting a Response, consumers, the open transaction; how a command from the broker
//! changes it, and the MessageAcks built from it.
//!
//! Everything needed to rebuild the session on a new connection lives here, and
//! [`State::replay`] turns it into the commands to send, in the real client's order
//! (OPENWIRE.md §6.1): SessionInfo, ProducerInfo, every ConsumerInfo, the open
//! transaction's BEGIN and messages, then every unanswered sync send (the same objects:
//! same commandIds, same MessageIds).
//!
//! Invariants:
//! * `outstanding` is keyed by a sequence that grows in wire order, so iterating it
//!   replays commands in the order they were first written; `by_command` maps the wire
//!   commandId (which wraps) back to it.
//! * A message handed out by `recv` (client/individual mode) sits in its consumer's
//!   `delivered` until acked; acks name ids from that list only.

use std::collections::{BTreeMap, HashMap};

use super::super::failover;
use super::{AckMode, ClientError, Message, OpenWire};
use crate::protocol::openwire::{
    AckType, Command, ConnectionInfo, ConsumerInfo, ExceptionResponse, Header, LocalTransactionId,
    MessageAck, MessageDispatch, MessageId, ProducerInfo, SessionInfo, TransactionId,
};

/// What a command that waits for a Response does to the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A sync message send outside a transaction: replayed verbatim until answered.
    Send,
    /// ConsumerInfo of consumer `value` (rebuilt from `consumers` on replay).
    Subscribe(i64),
    /// RemoveInfo of a consumer, RemoveSubscriptionInfo: the consumer is already
    /// forgotten, a new connection has nothing to undo.
    Unsubscribe,
    /// A sync MessageAck: its deliveries died with the connection.
    Ack,
    /// COMMIT of the open transaction: in doubt if the connection drops first.
    Commit,
    /// ROLLBACK: a dropped connection rolls back anyway.
    Rollback,
    /// RemoveInfo of the connection (close).
    Close,
}

/// A command written with responseRequired, not yet answered.
#[derive(Debug)]
pub struct Outstanding {
    pub command: Command,
    pub kind: Kind,
}

#[derive(Debug)]
pub struct Consumer {
    /// As first written (responseRequired, original commandId): replayed as is.
    pub info: ConsumerInfo,
    pub ack: AckMode,
    /// Handed out by `recv`, not acked yet (client/individual), in delivery order;
    /// whole messages, so a rolled back transaction can hand them out again.
    pub delivered: Vec<Message>,
    /// How many of `delivered` a DELIVERED ack has already reported (window extension).
    pub reported: usize,
    /// brokerSequenceId of the last message handed out (RemoveInfo's
    /// lastDeliveredSequenceId), -1 before any.
    pub last_delivered: i64,
}

#[derive(Debug)]
pub struct Transaction {
    pub id: LocalTransactionId,
    /// BEGIN then every message sent in it (async, original commandIds): replayed.
    pub commands: Vec<Command>,
    /// Messages acked in it, to hand out again if it rolls back (the broker keeps them
    /// in flight to us and expects the client to redeliver, as the real client does).
    pub acked: Vec<Message>,
    /// The connection dropped after it had acked something: the broker rolled the acks
    /// back, so the commit must fail (the real client's rollback-only rule).
    pub rollback_only: bool,
    /// COMMIT or ROLLBACK written, waiting for its Response.
    pub completing: bool,
}

impl Transaction {
    pub fn name(&self) -> String {
        self.id.to_string()
    }
}

/// The OpenWire session: what a new connection is rebuilt from, besides the
/// unanswered sync sends in [`State::outstanding`].
#[derive(Debug, Default)]
pub struct Session {
    /// The handshake commands, built once (same ids and commandIds on every connection).
    pub connection_info: Option<ConnectionInfo>,
    pub session_info: Option<SessionInfo>,
    pub producer_info: Option<ProducerInfo>,
    /// Wire commandIds, from 1; 0 is what frames below the correlator carry.
    pub next_command_id: i32,
    /// Wire commandId of each outstanding command to its waiter sequence.
    by_command: HashMap<i32, u64>,
    pub consumers: BTreeMap<i64, Consumer>,
    pub next_consumer: i64,
    /// The producer's message sequence (the MessageId's producerSequenceId).
    pub next_message_seq: i64,
    pub transaction: Option<Transaction>,
    pub next_transaction: i64,
}

impl Session {
    /// The next wire commandId (wraps to 1 after i32::MAX; ids are only correlation).
    pub fn command_id(&mut self) -> i32 {
        if self.next_command_id <= 0 || self.next_command_id == i32::MAX {
            self.next_command_id = 1;
        } else {
            self.next_command_id += 1;
        }
        self.next_command_id
    }
}

/// The shared client state with the OpenWire session.
pub type State = failover::State<OpenWire>;

impl State {
    /// Records a responseRequired command as written; returns its waiter sequence.
    pub fn register(&mut self, command: Command, kind: Kind) -> u64 {
        let seq = self.take_seq();
        self.sess.by_command.insert(command.command_id(), seq);
        self.outstanding.insert(seq, Outstanding { command, kind });
        seq
    }

    /// A Response (Ok) or ExceptionResponse (Err) for commandId `command_id` arrived.
    pub fn complete(&mut self, command_id: i32, result: Result<(), ClientError>) {
        let Some(seq) = self.sess.by_command.remove(&command_id) else {
            // Answers to replayed handshake commands, or to what failover settled.
            return;
        };
        let Some(entry) = self.outstanding.remove(&seq) else {
            return;
        };
        match entry.kind {
            Kind::Subscribe(value) if result.is_err() => {
                self.sess.consumers.remove(&value);
            }
            Kind::Commit => self.sess.transaction = None,
            _ => {}
        }
        self.finish(seq, result);
    }

    /// Session state for a new connection (after its ConnectionInfo was answered), in
    /// the order to write it. Requests only the old connection could answer are
    /// settled here: acks and unsubscribes as done, a COMMIT as in doubt (the real
    /// client's TransactionRolledBackException), a ROLLBACK as done. Deliveries not yet
    /// handed out are dropped from the inbox: the broker redelivers them.
    pub fn replay(&mut self) -> Vec<Command> {
        self.generation += 1;
        let mut out = Vec::new();
        out.extend(self.sess.session_info.clone().map(Command::SessionInfo));
        out.extend(self.sess.producer_info.clone().map(Command::ProducerInfo));
        for c in self.sess.consumers.values_mut() {
            out.push(Command::ConsumerInfo(c.info.clone()));
            c.delivered.clear();
            c.reported = 0;
        }
        let mut in_doubt = false;
        let settled: Vec<(u64, Kind)> = self
            .outstanding
            .iter()
            .filter(|(_, o)| o.kind != Kind::Send)
            .map(|(seq, o)| (*seq, o.kind))
            .collect();
        for (seq, kind) in settled {
            if let Some(o) = self.outstanding.remove(&seq) {
                self.sess.by_command.remove(&o.command.command_id());
            }
            let result = match kind {
                Kind::Commit => {
                    in_doubt = true;
                    Err(ClientError::Transaction(
                        self.sess
                            .transaction
                            .as_ref()
                            .map(Transaction::name)
                            .unwrap_or_default(),
                        "completion in doubt due to failover (it may or may not have committed)",
                    ))
                }
                _ => Ok(()),
            };
            self.finish(seq, result);
        }
        if in_doubt {
            self.sess.transaction = None;
        }
        if let Some(t) = self.sess.transaction.as_mut() {
            if t.completing {
                // A ROLLBACK in flight: the broker dropped the transaction with the
                // connection, which is what was asked.
                self.sess.transaction = None;
            } else {
                if !t.acked.is_empty() {
                    t.rollback_only = true;
                }
                out.extend(t.commands.iter().cloned());
            }
        }
        out.extend(self.outstanding.values().map(|o| o.command.clone()));
        let current = self.generation;
        self.messages.retain(|m| m.generation == current);
        out
    }

    /// Handles one command from the broker (I/O thread, under the lock).
    pub fn on_command(&mut self, command: Command) {
        match command {
            Command::Response(r) => self.complete(r.correlation_id, Ok(())),
            Command::ExceptionResponse(e) => {
                let id = e.correlation_id;
                self.complete(id, Err(broker_error(e)));
            }
            // XA answers, never asked for; settle whatever waits on them.
            Command::IntegerResponse(r) => self.complete(r.correlation_id, Ok(())),
            Command::DataResponse(r) => self.complete(r.correlation_id, Ok(())),
            Command::DataArrayResponse(r) => self.complete(r.correlation_id, Ok(())),
            Command::MessageDispatch(d) => self.on_dispatch(d),
            Command::KeepAliveInfo(k) => {
                if k.header.response_required {
                    self.keep_alive_due = true;
                }
            }
            Command::ConsumerControl(c) => {
                // close=true: the broker dropped the consumer; stop renewing it.
                // A prefetch change needs nothing here: the broker paces dispatch.
                if c.close {
                    if let Some(id) = c.consumer_id {
                        self.sess.consumers.remove(&id.value);
                    }
                }
            }
            Command::ConnectionError(e) => {
                let what = e
                    .exception
                    .map(|t| {
                        format!(
                            "{}: {}",
                            t.class_name.unwrap_or_default(),
                            t.message.unwrap_or_default()
                        )
                    })
                    .unwrap_or_default();
                tracing::warn!("broker ConnectionError: {what}");
            }
            // BrokerInfo, ConnectionControl (no cluster URIs are followed), ProducerAck
            // (no producer window), ControlCommand, ...: nothing to do.
            other => tracing::trace!("ignored {} from broker", other.name()),
        }
    }

    fn on_dispatch(&mut self, d: MessageDispatch) {
        // A null message ends a pull or a browse; this client does neither.
        let Some(m) = d.message else { return };
        let Some(cid) = d.consumer_id.as_ref() else {
            return;
        };
        if !self.sess.consumers.contains_key(&cid.value) {
            // Unsubscribed meanwhile: the broker redelivers it elsewhere.
            return;
        }
        match Message::from_dispatch(
            *m,
            d.destination,
            cid,
            d.redelivery_counter,
            self.generation,
        ) {
            Ok(message) => self.messages.push_back(message),
            Err(e) => tracing::warn!("undecodable message from broker dropped: {e}"),
        }
    }

    /// A MessageAck of `m`'s consumer from `first` through `m` (`count` messages),
    /// in the open transaction if there is one.
    pub fn ack_for(
        &self,
        m: &Message,
        ack_type: AckType,
        first: Option<MessageId>,
        count: usize,
        header: Header,
    ) -> MessageAck {
        MessageAck {
            header,
            destination: m.dispatch_destination.clone(),
            transaction_id: self
                .sess
                .transaction
                .as_ref()
                .map(|t| TransactionId::Local(t.id.clone())),
            consumer_id: Some(m.consumer.clone()),
            ack_type,
            first_message_id: first,
            last_message_id: Some(m.id.clone()),
            message_count: i32::try_from(count).unwrap_or(i32::MAX),
            poison_cause: None,
        }
    }
}

fn broker_error(e: ExceptionResponse) -> ClientError {
    let (class, message) = match e.exception {
        Some(t) => (
            t.class_name.unwrap_or_default(),
            t.message.unwrap_or_default(),
        ),
        None => (String::new(), String::new()),
    };
    ClientError::Broker {
        message,
        details: class,
    }
}

/// The error an ExceptionResponse carries, for the handshake.
pub fn exception_text(e: &ExceptionResponse) -> String {
    match &e.exception {
        Some(t) => format!(
            "{}: {}",
            t.class_name.as_deref().unwrap_or("?"),
            t.message.as_deref().unwrap_or("")
        ),
        None => "ExceptionResponse without an exception".into(),
    }
}
