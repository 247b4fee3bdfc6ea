//! A blocking OpenWire client with ActiveMQ-style failover, for tools (`tandem-load`)
//! and tests: the OpenWire twin of the STOMP [`crate::client::Client`], with the same
//! shape of API, built on Tandem's own codec ([`crate::protocol::openwire`]). It speaks
//! to Tandem and to a real ActiveMQ 5.17 broker alike.
//!
//! * [`Client`] — connect (`tcp://h:p`, `ssl://h:p` or `failover:(...)?...`), send (sync, pipelined,
//!   or fire-and-forget; or a message built elsewhere, [`Client::send_built`]),
//!   subscribe, receive, ack, local transactions, close.
//!   This file holds that API and how each call builds its commands.
//! * `tx` — the local transaction calls ([`Client::begin`], [`Client::commit`],
//!   [`Client::rollback`]).
//! * `message` — [`Message`], [`SubscriptionId`], destination names.
//! * `conn`  — the `OpenWire` protocol adapter of the shared reconnect/replay core
//!   (`super::failover`): one connection (TCP, WireFormatInfo exchange: v12, loose, no
//!   marshal cache, no stack traces; ConnectionInfo and its Response), keep-alive
//!   timing, decoding into the state.
//! * `state` — the OpenWire session in the shared state (unanswered commands,
//!   consumers, the open transaction) and how it is replayed on a new connection.
//! * the reconnect policy, the I/O thread and URL parsing are shared with the STOMP
//!   client (`super::policy`, `super::failover`, [`crate::uri`]).
//!
//! # What goes on the wire (as the real client, OPENWIRE.md §7)
//!
//! One connection id (`ID:tandem-client-<pid>-<time>-<n>:1`), one session (1) and one
//! anonymous producer (`<conn>:1:1`, destination per message). Message ids are
//! `<conn>:1:1:<seq>`, so the broker's duplicate detection recognises a replayed send.
//! [`Client::send`] is a sync send (responseRequired, wait for the Response: for a
//! persistent message, it is stored); [`Client::send_async`] writes the same and
//! returns a [`Pending`] (many in flight, answers matched by commandId);
//! [`Client::send_no_confirm`] asks for no Response (the real client's async send).
//! Inside a transaction every send is async and the COMMIT confirms them.
//!
//! Acknowledgement (§3.3): `Auto` acks each message (STANDARD, async) as `recv` hands it
//! out; `Client` acks cumulatively per consumer (STANDARD range) and `Individual` one
//! message (INDIVIDUAL); both wait for the broker's Response outside a transaction (the
//! real client with `sendAcksAsync=false`). Both also send DELIVERED acks at half the
//! prefetch, as the real client does, so a consumer that acks late keeps receiving.
//!
//! # Threads and locks
//!
//! As the STOMP client (`super::failover`): one I/O thread reads and hands commands to
//! callers through the shared state; callers encode and write their own commands
//! under the writer mutex (lock order: writer, then state); the I/O thread only
//! `try_lock`s the writer, for a KeepAliveInfo.
//!
//! # Failover semantics (ActiveMQ's failover transport, OPENWIRE.md §6)
//!
//! The policy is the STOMP client's: each pass tries the list in order
//! (`randomize=false`) or shuffled, `initialReconnectDelay` growing by
//! `backOffMultiplier` up to `maxReconnectDelay`, [`ClientError::FailoverExhausted`]
//! after `maxReconnectAttempts` failed passes, and a call that must write while
//! disconnected waits at most `timeout` ms, then fails with
//! [`ClientError::Disconnected`] (nothing of it was sent).
//!
//! On a new connection the client sends a ConnectionControl{faultTolerant}, the same
//! ConnectionInfo (same ids, same commandId, `failoverReconnect=true`) and waits for its
//! Response; then, pipelined: SessionInfo, ProducerInfo, every ConsumerInfo (same ids),
//! the open transaction (BEGIN and its messages, same transaction id), and every sync
//! send not yet answered, with its original MessageId and commandId. Consequences:
//!
//! * a sync send whose Response was lost is sent again; a broker with duplicate
//!   detection (Tandem, ActiveMQ) drops the copy, since the MessageId is the same;
//! * a COMMIT in flight at the loss is not replayed: `commit` fails with
//!   [`ClientError::Transaction`] "completion in doubt" (the real client's
//!   TransactionRolledBackException), and a transaction that had acked messages fails
//!   its commit (it is rolled back) since the broker rolled those acks back;
//! * deliveries not acked before the loss are dropped from the inbox (the broker
//!   redelivers them, redelivery counter + 1), and acking a message received on an
//!   earlier connection is a no-op;
//! * `send_no_confirm` messages in flight at the loss are lost (the real client without
//!   `trackMessages`).
//!
//! A broker that answers ConnectionInfo with an ExceptionResponse (bad login) counts as
//! a failed attempt under `failover:`; with a plain URL it is [`ClientError::Refused`].
//! A plain `tcp://` URL never reconnects: a lost connection fails every later call with
//! [`ClientError::ConnectionLost`].

mod conn;
mod message;
mod state;
mod tx;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};

use super::failover::{self, parse_url, Handle};
use super::lock;
pub use super::{AckMode, ClientError};
pub use crate::protocol::openwire::PrimitiveValue;
use crate::protocol::openwire::{
    AckType, Command, ConnectionId, ConnectionInfo, ConsumerId, ConsumerInfo, Encoder, Header,
    MessageId, MessageKind, PrimitiveMap, ProducerId, ProducerInfo, RemoveInfo,
    RemoveSubscriptionInfo, RemoveTarget, SessionId, SessionInfo, ShutdownInfo, TransactionId,
};
use crate::uri::Wire;
use conn::OpenWire;
use message::{destination, subscription_id};
pub use message::{Message, SubscriptionId};
use state::{Consumer, Kind, Session, State};

/// Connection settings that are not part of the URL.
#[derive(Debug, Clone)]
pub struct OpenWireOptions {
    pub user: Option<String>,
    pub password: Option<String>,
    /// The JMS client id (needed for durable subscriptions); None: the connection id.
    pub client_id: Option<String>,
    /// Send TextMessages (the body must be UTF-8) instead of BytesMessages.
    pub text: bool,
    /// MaxInactivityDuration we offer, ms (the broker's smaller value wins; <= 0 turns
    /// keep-alive and the dead-broker check off).
    pub max_inactivity_ms: i64,
    /// Bound on one connection attempt: TCP connect, TLS handshake, WireFormatInfo,
    /// ConnectionInfo.
    pub connect_timeout: Duration,
    /// Bound on waiting for a Response in `send`, `subscribe`, `ack`, `commit`,
    /// `rollback`, `unsubscribe` and `close` (time spent reconnecting counts).
    pub response_timeout: Duration,
    /// For `ssl://` URLs: the CAs that verify the broker (checked against the host as
    /// written in the URL) and the identity to present if it asks (mutual TLS); see
    /// [`crate::net::tls::client_config`]. None: TLS URLs are refused.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl Default for OpenWireOptions {
    fn default() -> Self {
        OpenWireOptions {
            user: None,
            password: None,
            client_id: None,
            text: false,
            max_inactivity_ms: 30_000,
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(30),
            tls: None,
        }
    }
}

/// What `submit` did with the command it built.
enum Outcome {
    /// Written without responseRequired.
    Sent,
    /// Written with responseRequired; wait on this sequence.
    Wait(u64),
    /// Nothing to send (an ack of a stale delivery).
    Nothing,
}

fn header(st: &mut State, response_required: bool) -> Header {
    Header::new(st.sess.command_id(), response_required)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A connection id unique across processes and clients of one process, in the real
/// client's shape (`ID:<host-ish>-<port-ish>-<time>-<n>:<m>`).
fn new_connection_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "ID:tandem-client-{}-{}-{n}:1",
        std::process::id(),
        nanos % 1_000_000_000_000_000
    )
}

/// An OpenWire connection (or failover set of them) with one session and one producer.
/// `Sync`: share it between threads by reference or in an `Arc`.
pub struct Client {
    h: Handle<OpenWire>,
    connection_id: ConnectionId,
}

/// A pipelined send's Response, from [`Client::send_async`]: `wait(timeout)` for it.
/// On timeout the send is still in flight (and replayed after a failover).
pub type Pending = failover::Pending<OpenWire>;

impl Client {
    /// Connects to `url` (`tcp://host:port`, `nio://`, `ssl://` (with `opts.tls`), or
    /// `failover:(...)?options` of them) and
    /// returns once a broker answered the ConnectionInfo. With `failover:`, it keeps
    /// trying the list as the reconnect policy says.
    pub fn connect(url: &str, opts: OpenWireOptions) -> Result<Client, ClientError> {
        // By wire, so the TLS schemes (`ssl`, `nio+ssl`) come with their plain twins.
        let (uri, failover) = parse_url(url, |s| s.wire() == Wire::OpenWire)?;
        let connection_id = ConnectionId::new(new_connection_id());
        let mut sess = Session::default();
        let conn_header = Header::new(sess.command_id(), true);
        sess.connection_info = Some(ConnectionInfo {
            header: conn_header,
            connection_id: Some(connection_id.clone()),
            client_id: Some(
                opts.client_id
                    .clone()
                    .unwrap_or_else(|| connection_id.value.clone()),
            ),
            password: opts.password.clone(),
            user_name: opts.user.clone(),
            manageable: true,
            client_master: true,
            fault_tolerant: failover,
            ..ConnectionInfo::default()
        });
        // SessionInfo is async, ProducerInfo sync, as the real client; their answers
        // are not waited for (the stream's order makes them effective before anything
        // a caller writes next).
        let session_header = Header::new(sess.command_id(), false);
        sess.session_info = Some(SessionInfo {
            header: session_header,
            session_id: Some(SessionId {
                connection_id: connection_id.value.clone(),
                value: 1,
            }),
        });
        let producer_header = Header::new(sess.command_id(), true);
        sess.producer_info = Some(ProducerInfo {
            header: producer_header,
            producer_id: Some(producer_id(&connection_id)),
            ..ProducerInfo::default()
        });
        let h = Handle::start(uri, failover, opts, sess, Encoder::default())?;
        Ok(Client { h, connection_id })
    }

    /// Once connected: under both locks, `build` checks the state and returns the
    /// command to write (its commandId from `Session::command_id`) and, for a
    /// responseRequired one, its [`Kind`]; it is registered and written. A write error
    /// leaves it registered: the I/O thread notices the loss and failover replays it.
    /// `closing` (close()): never waits for a reconnect.
    fn submit(
        &self,
        closing: bool,
        mut build: impl FnMut(&mut State) -> Result<Option<(Command, Option<Kind>)>, ClientError>,
    ) -> Result<Outcome, ClientError> {
        let made = self.h.inner.submit(closing, |st, encoder, out| {
            let Some((command, kind)) = build(st)? else {
                return Ok(None);
            };
            encoder.encode(&command, out)?;
            Ok(Some(match kind {
                Some(kind) => Outcome::Wait(st.register(command, kind)),
                None => Outcome::Sent,
            }))
        })?;
        Ok(made.unwrap_or(Outcome::Nothing))
    }

    /// Submits and, for a responseRequired command, waits (`response_timeout`).
    fn request(
        &self,
        build: impl FnMut(&mut State) -> Result<Option<(Command, Option<Kind>)>, ClientError>,
    ) -> Result<(), ClientError> {
        match self.submit(false, build)? {
            Outcome::Wait(seq) => self.wait(seq),
            Outcome::Sent | Outcome::Nothing => Ok(()),
        }
    }

    fn wait(&self, seq: u64) -> Result<(), ClientError> {
        self.h
            .inner
            .wait_answer(seq, self.h.inner.opts.response_timeout)
    }

    /// The OpenWire connection id (the prefix of every message id this client sends).
    pub fn connection_id(&self) -> &str {
        &self.connection_id.value
    }

    /// Sends a message and waits for the broker's Response (for a persistent message:
    /// it is stored). Inside a transaction the send is async and the COMMIT confirms it.
    pub fn send(
        &self,
        destination: &str,
        body: &[u8],
        props: &[(&str, PrimitiveValue)],
        persistent: bool,
    ) -> Result<(), ClientError> {
        self.send_async(destination, body, props, persistent)?
            .wait(self.h.inner.opts.response_timeout)
    }

    /// Like [`Client::send`] but returns once written: pipeline many, then wait.
    pub fn send_async(
        &self,
        destination: &str,
        body: &[u8],
        props: &[(&str, PrimitiveValue)],
        persistent: bool,
    ) -> Result<Pending, ClientError> {
        let seq = self.send_message(destination, body, props, persistent, true)?;
        Ok(Pending::new(&self.h.inner, seq))
    }

    /// Sends without asking for a Response (the real client's async send: the default
    /// for non-persistent messages). Lost if the connection drops before the broker
    /// read it.
    pub fn send_no_confirm(
        &self,
        destination: &str,
        body: &[u8],
        props: &[(&str, PrimitiveValue)],
        persistent: bool,
    ) -> Result<(), ClientError> {
        self.send_message(destination, body, props, persistent, false)
            .map(|_| ())
    }

    /// Sends `message` as it is built (message class, body, properties, priority,
    /// expiration, correlation id, type, reply-to, timestamp: e.g. a stored message
    /// being resent, see `node::replay`) under this client's producer and with a fresh
    /// message id, then waits for the broker's Response (for a persistent message: it
    /// is stored). Its producer id, message id, transaction and command header are
    /// this client's, whatever `message` says.
    pub fn send_built(
        &self,
        message: crate::protocol::openwire::Message,
    ) -> Result<(), ClientError> {
        let mut template = message;
        template.producer_id = Some(producer_id(&self.connection_id));
        match self.submit_message(template, true)? {
            Some(seq) => self.wait(seq),
            None => Ok(()),
        }
    }

    fn send_message(
        &self,
        destination_name: &str,
        body: &[u8],
        props: &[(&str, PrimitiveValue)],
        persistent: bool,
        confirm: bool,
    ) -> Result<Option<u64>, ClientError> {
        let dest = destination(destination_name)?;
        let mut template = crate::protocol::openwire::Message {
            kind: if self.h.inner.opts.text {
                MessageKind::Text
            } else {
                MessageKind::Bytes
            },
            producer_id: Some(producer_id(&self.connection_id)),
            destination: Some(dest),
            persistent,
            timestamp: now_ms(),
            ..Default::default()
        };
        if self.h.inner.opts.text {
            let text = std::str::from_utf8(body)
                .map_err(|_| ClientError::Invalid("a TextMessage body must be UTF-8".into()))?;
            template.set_text(Some(text))?;
        } else {
            template.content = Some(Bytes::copy_from_slice(body));
        }
        let map: PrimitiveMap = props.iter().map(|(k, v)| (*k, v.clone())).collect();
        template.set_properties(&map)?;
        self.submit_message(template, confirm)
    }

    /// Writes `template` with this client's next message id (and the open
    /// transaction, if any); `Some(seq)`: wait on it for the Response.
    fn submit_message(
        &self,
        template: crate::protocol::openwire::Message,
        confirm: bool,
    ) -> Result<Option<u64>, ClientError> {
        let outcome = self.submit(false, |st| {
            let mut m = template.clone();
            // Sequence and commandId are taken with the writer held: wire order.
            st.sess.next_message_seq += 1;
            m.message_id = Some(MessageId {
                text_view: None,
                producer_id: m.producer_id.clone(),
                producer_sequence_id: st.sess.next_message_seq,
                broker_sequence_id: 0,
            });
            if let Some(t) = st.sess.transaction.as_mut() {
                if t.completing {
                    return Err(ClientError::Transaction(t.name(), "is completing"));
                }
                m.transaction_id = Some(TransactionId::Local(t.id.clone()));
            }
            let in_tx = m.transaction_id.is_some();
            let rr = confirm && !in_tx;
            m.header = header(st, rr);
            let command = Command::Message(Box::new(m));
            if in_tx {
                if let Some(t) = st.sess.transaction.as_mut() {
                    t.commands.push(command.clone());
                }
            }
            Ok(Some((command, rr.then_some(Kind::Send))))
        })?;
        Ok(match outcome {
            Outcome::Wait(seq) => Some(seq),
            Outcome::Sent | Outcome::Nothing => None,
        })
    }

    /// Subscribes (confirmed by the broker's Response); the consumer is renewed on every
    /// reconnect until [`Client::unsubscribe`]. `durable`: a durable topic subscription
    /// of that name (needs a client id, see [`OpenWireOptions::client_id`]).
    pub fn subscribe(
        &self,
        destination_name: &str,
        ack: AckMode,
        prefetch: u32,
        selector: Option<&str>,
        durable: Option<&str>,
    ) -> Result<SubscriptionId, ClientError> {
        let dest = destination(destination_name)?;
        let conn = self.connection_id.value.clone();
        let client_id = self
            .h
            .inner
            .opts
            .client_id
            .clone()
            .unwrap_or_else(|| conn.clone());
        let mut made = None;
        self.request(|st| {
            st.sess.next_consumer += 1;
            let value = st.sess.next_consumer;
            let id = ConsumerId {
                connection_id: conn.clone(),
                session_id: 1,
                value,
            };
            let info = ConsumerInfo {
                header: header(st, true),
                consumer_id: Some(id.clone()),
                destination: Some(dest.clone()),
                prefetch_size: i32::try_from(prefetch).unwrap_or(i32::MAX),
                dispatch_async: true,
                selector: selector.map(str::to_string),
                client_id: Some(client_id.clone()),
                subscription_name: durable.map(str::to_string),
                priority: 0,
                ..ConsumerInfo::default()
            };
            st.sess.consumers.insert(
                value,
                Consumer {
                    info: info.clone(),
                    ack,
                    delivered: Vec::new(),
                    reported: 0,
                    last_delivered: -1,
                },
            );
            made = Some(subscription_id(value, &id));
            Ok(Some((
                Command::ConsumerInfo(info),
                Some(Kind::Subscribe(value)),
            )))
        })?;
        made.ok_or(ClientError::Closed)
    }

    /// Closes a consumer (RemoveInfo, confirmed). Its messages not yet handed out are
    /// dropped here; the broker redelivers them. A durable subscription stays (see
    /// [`Client::remove_durable`]).
    pub fn unsubscribe(&self, id: &SubscriptionId) -> Result<(), ClientError> {
        let conn = self.connection_id.value.clone();
        self.request(|st| {
            let Some(c) = st.sess.consumers.remove(&id.value) else {
                return Ok(None);
            };
            st.messages.retain(|m| m.subscription.value != id.value);
            let remove = RemoveInfo {
                header: header(st, true),
                object_id: Some(RemoveTarget::Consumer(ConsumerId {
                    connection_id: conn.clone(),
                    session_id: 1,
                    value: id.value,
                })),
                last_delivered_sequence_id: c.last_delivered,
            };
            Ok(Some((Command::RemoveInfo(remove), Some(Kind::Unsubscribe))))
        })
    }

    /// Deletes durable subscription `name` of this client id (RemoveSubscriptionInfo,
    /// confirmed); its consumer must be closed first.
    pub fn remove_durable(&self, name: &str) -> Result<(), ClientError> {
        let conn = self.connection_id.clone();
        let client_id = self
            .h
            .inner
            .opts
            .client_id
            .clone()
            .unwrap_or_else(|| conn.value.clone());
        self.request(|st| {
            let info = RemoveSubscriptionInfo {
                header: header(st, true),
                connection_id: Some(conn.clone()),
                subscription_name: Some(name.to_string()),
                client_id: Some(client_id.clone()),
            };
            Ok(Some((
                Command::RemoveSubscriptionInfo(info),
                Some(Kind::Unsubscribe),
            )))
        })
    }

    /// The next delivered message of any subscription, waiting up to `timeout`.
    /// Ok(None): nothing arrived in time. An `Auto` subscription's message is acked as
    /// it is handed out; a `Client`/`Individual` one waits for [`Client::ack`].
    pub fn recv(&self, timeout: Duration) -> Result<Option<Message>, ClientError> {
        let Some(message) = self.h.inner.next_message(timeout)? else {
            return Ok(None);
        };
        // The ack (auto) or window extension (client/individual) is written after the
        // state lock is released: lock order is writer, then state.
        let m = message.clone();
        let result = self.submit(false, |st| {
            if m.generation != st.generation {
                return Ok(None);
            }
            let in_tx = st.sess.transaction.is_some();
            let Some(c) = st.sess.consumers.get_mut(&m.subscription.value) else {
                return Ok(None);
            };
            c.last_delivered = m.id.broker_sequence_id;
            match c.ack {
                AckMode::Auto => {
                    if in_tx {
                        if let Some(t) = st.sess.transaction.as_mut() {
                            t.acked.push(m.clone());
                        }
                    }
                    let h = header(st, false);
                    let ack = st.ack_for(&m, AckType::Standard, Some(m.id.clone()), 1, h);
                    Ok(Some((Command::MessageAck(ack), None)))
                }
                AckMode::Client | AckMode::ClientIndividual => {
                    c.delivered.push(m.clone());
                    let prefetch = usize::try_from(c.info.prefetch_size).unwrap_or(0);
                    let unreported = c.delivered.len() - c.reported;
                    if unreported == 0 || unreported < (prefetch / 2).max(1) {
                        return Ok(None);
                    }
                    // DELIVERED: not acked, but widen the broker's window (the real
                    // client does this at half the prefetch).
                    let first = c.delivered[c.reported].id.clone();
                    c.reported = c.delivered.len();
                    let h = header(st, false);
                    let mut ack = st.ack_for(&m, AckType::Delivered, Some(first), unreported, h);
                    ack.transaction_id = None;
                    Ok(Some((Command::MessageAck(ack), None)))
                }
            }
        });
        match result {
            // Not connected any more: the broker redelivers; hand it out anyway (its
            // ack will be a no-op), as the real client would have.
            Ok(_) | Err(ClientError::Disconnected { .. }) => Ok(Some(message)),
            Err(e) => Err(e),
        }
    }

    /// Acknowledges `msg`: `Client` mode acks it and every earlier message of its
    /// consumer (one STANDARD range ack), `Individual` only it (INDIVIDUAL); `Auto` has
    /// nothing to do. Waits for the broker's Response, except inside a transaction
    /// (the COMMIT confirms it). A message received on an earlier connection is not
    /// acked (see the module docs).
    pub fn ack(&self, msg: &Message) -> Result<(), ClientError> {
        self.request(|st| {
            if msg.generation != st.generation {
                return Ok(None);
            }
            let in_tx = st.sess.transaction.is_some();
            let Some(c) = st.sess.consumers.get_mut(&msg.subscription.value) else {
                return Ok(None);
            };
            let Some(pos) = c.delivered.iter().position(|m| m.id == msg.id) else {
                // Auto mode, or already covered by a cumulative ack.
                return Ok(None);
            };
            let (ack_type, acked) = match c.ack {
                AckMode::Auto => return Ok(None),
                AckMode::Client => (AckType::Standard, c.delivered.drain(..=pos).collect()),
                AckMode::ClientIndividual => (AckType::Individual, vec![c.delivered.remove(pos)]),
            };
            c.reported = c
                .reported
                .saturating_sub(acked.len())
                .min(c.delivered.len());
            let first = acked
                .first()
                .map_or_else(|| msg.id.clone(), |m: &Message| m.id.clone());
            let count = acked.len();
            if in_tx {
                if let Some(t) = st.sess.transaction.as_mut() {
                    t.acked.extend(acked);
                }
            }
            let h = header(st, !in_tx);
            let ack = st.ack_for(msg, ack_type, Some(first), count, h);
            Ok(Some((
                Command::MessageAck(ack),
                (!in_tx).then_some(Kind::Ack),
            )))
        })
    }

    /// How many times the client reconnected after losing a connection.
    pub fn reconnects(&self) -> u64 {
        self.h.reconnects()
    }

    /// True while a connection is up.
    pub fn is_connected(&self) -> bool {
        self.h.is_connected()
    }

    /// Removes the connection (RemoveInfo, which the broker cascades to the session,
    /// producer and consumers; waits for its Response, so everything before it was
    /// handled), sends ShutdownInfo and closes. When disconnected, closes at once.
    /// Dropping a client instead closes the connection without RemoveInfo (as a crash
    /// would, minus the kill).
    pub fn close(mut self) -> Result<(), ClientError> {
        let conn = self.connection_id.clone();
        let result = match self.submit(true, |st| {
            // The last message handed out (as the real client): the broker flags as
            // redelivered only what we may have seen, not the rest of the prefetch.
            let last = st
                .sess
                .consumers
                .values()
                .map(|c| c.last_delivered)
                .max()
                .unwrap_or(-1);
            let remove = RemoveInfo {
                header: header(st, true),
                object_id: Some(RemoveTarget::Connection(conn.clone())),
                last_delivered_sequence_id: last,
            };
            Ok(Some((Command::RemoveInfo(remove), Some(Kind::Close))))
        }) {
            Ok(Outcome::Wait(seq)) => self.wait(seq),
            Ok(_) | Err(ClientError::Disconnected { .. }) => Ok(()),
            Err(e) => Err(e),
        };
        {
            let mut w = lock(&self.h.inner.writer);
            if w.stream.is_some() {
                let mut out = BytesMut::new();
                let bye = Command::ShutdownInfo(ShutdownInfo {
                    header: header(&mut lock(&self.h.inner.state), false),
                });
                if w.codec.encode(&bye, &mut out).is_ok() {
                    let _ = w.write(&out);
                }
            }
        }
        self.h.stop();
        result
    }
}

fn producer_id(conn: &ConnectionId) -> ProducerId {
    ProducerId {
        connection_id: conn.value.clone(),
        session_id: 1,
        value: 1,
    }
}
