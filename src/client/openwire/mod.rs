//! A blocking OpenWire client with ActiveMQ-style failover, for tools (`tandem-load`)
//! and tests: the OpenWire twin of the STOMP [`crate::client::Client`], with the same
//! shape of API, built on Tandem's own codec ([`crate::protocol::openwire`]). It speaks
//! to Tandem and to a real ActiveMQ 5.17 broker alike.
//!
//! * [`Client`] — connect (`tcp://h:p` or `failover:(...)?...`), send (sync, pipelined,
//!   or fire-and-forget), subscribe, receive, ack, local transactions, close.
//! * `conn`  — one connection: TCP, WireFormatInfo exchange (v12, loose, no marshal
//!   cache, no stack traces), ConnectionInfo and its Response.
//! * `state` — what is in flight (unanswered commands, consumers, the open transaction,
//!   the inbox) and how it is replayed on a new connection.
//! * `io`    — the per-client I/O thread: reads commands, keep-alives, reconnects.
//! * the reconnect policy and URL parsing are the STOMP client's (`policy`,
//!   [`crate::uri`]).
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
//! ```text
//!   caller threads ──(1) writer mutex──> socket (write half)
//!        │  (2) state mutex: register the command, wait on `changed`
//!        ▼
//!   State { outstanding by commandId, consumers, transaction, inbox } <── I/O thread
//!                                                                        reads socket,
//!                                                                        keep-alives,
//!                                                                        reconnects
//! ```
//!
//! Each client has one I/O thread that reads the current connection and hands commands
//! to callers through `State` (a mutex and a condvar). Callers encode and write their
//! commands themselves under the writer mutex. Lock order: writer, then state; the I/O
//! thread only `try_lock`s the writer (for a KeepAliveInfo) and never waits for it, so a
//! caller blocked on a full socket cannot stop the reads that would drain it.
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
mod io;
mod state;

use std::net::Shutdown;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};

use super::lock;
pub use super::{AckMode, ClientError};
pub use crate::protocol::openwire::PrimitiveValue;
use crate::protocol::openwire::{
    AckType, Command, ConnectionId, ConnectionInfo, ConsumerId, ConsumerInfo, Destination,
    DestinationKind, Encoder, Header, LocalTransactionId, MessageId, MessageKind, PrimitiveMap,
    ProducerId, ProducerInfo, RemoveInfo, RemoveSubscriptionInfo, RemoveTarget, SessionId,
    SessionInfo, ShutdownInfo, TransactionId, TransactionInfo, TransactionType,
};
use crate::uri::{FailoverUri, Scheme};
use state::{Consumer, Kind, State, Transaction};

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
    /// Bound on one connection attempt: TCP connect, WireFormatInfo, ConnectionInfo.
    pub connect_timeout: Duration,
    /// Bound on waiting for a Response in `send`, `subscribe`, `ack`, `commit`,
    /// `rollback`, `unsubscribe` and `close` (time spent reconnecting counts).
    pub response_timeout: Duration,
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
        }
    }
}

/// A consumer's id (`<connection id>:1:<n>`); the same across reconnects.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SubscriptionId {
    value: i64,
    text: String,
}

impl SubscriptionId {
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// One delivered message.
#[derive(Debug, Clone)]
pub struct Message {
    /// `/queue/NAME` or `/topic/NAME` (temporary ones: `/temp-queue/..`, `/temp-topic/..`).
    pub destination: String,
    /// The JMSMessageID: `<producer id>:<seq>`.
    pub message_id: String,
    pub subscription: SubscriptionId,
    /// The broker delivered it before (redelivery counter > 0).
    pub redelivered: bool,
    pub redelivery_counter: i32,
    pub persistent: bool,
    /// JMSTimestamp, epoch ms.
    pub timestamp: i64,
    /// It was a TextMessage (`body` is its UTF-8 text); else the raw content.
    pub is_text: bool,
    pub properties: Vec<(String, PrimitiveValue)>,
    pub body: Bytes,
    id: MessageId,
    dispatch_destination: Option<Destination>,
    consumer: ConsumerId,
    /// The connection it arrived on; an ack on a later connection is dropped.
    generation: u64,
}

impl Message {
    pub fn property(&self, name: &str) -> Option<&PrimitiveValue> {
        self.properties
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// A string property (None if absent or not a string).
    pub fn property_str(&self, name: &str) -> Option<&str> {
        self.property(name).and_then(PrimitiveValue::as_str)
    }

    /// An integer property (byte, short, int or long).
    pub fn property_i64(&self, name: &str) -> Option<i64> {
        self.property(name).and_then(PrimitiveValue::as_i64)
    }

    fn from_dispatch(
        m: crate::protocol::openwire::Message,
        dispatch_destination: Option<Destination>,
        consumer: &ConsumerId,
        redelivery_counter: i32,
        generation: u64,
    ) -> Result<Message, ClientError> {
        let is_text = m.kind == MessageKind::Text;
        let body = if is_text && !m.compressed {
            m.text()?
                .map(|t| Bytes::from(t.into_bytes()))
                .unwrap_or_default()
        } else {
            m.content.clone().unwrap_or_default()
        };
        let properties = m
            .properties()?
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        let destination = m
            .destination
            .as_ref()
            .or(dispatch_destination.as_ref())
            .map(stomp_name)
            .unwrap_or_default();
        let id = m.message_id.clone().unwrap_or_default();
        Ok(Message {
            destination,
            message_id: id.to_string(),
            subscription: subscription_id(consumer.value, consumer),
            // The dispatch's counter is the real one (the client overwrites the
            // message's with it, OPENWIRE.md §4.10).
            redelivered: redelivery_counter > 0,
            redelivery_counter,
            persistent: m.persistent,
            timestamp: m.timestamp,
            is_text,
            properties,
            body,
            id,
            dispatch_destination,
            consumer: consumer.clone(),
            generation,
        })
    }
}

fn subscription_id(value: i64, id: &ConsumerId) -> SubscriptionId {
    SubscriptionId {
        value,
        text: id.to_string(),
    }
}

/// `/queue/X` / `/topic/X` (also `queue://X`, `topic://X`) to an OpenWire destination.
fn destination(name: &str) -> Result<Destination, ClientError> {
    let split = [
        ("/queue/", DestinationKind::Queue),
        ("/topic/", DestinationKind::Topic),
        ("/temp-queue/", DestinationKind::TempQueue),
        ("/temp-topic/", DestinationKind::TempTopic),
        ("queue://", DestinationKind::Queue),
        ("topic://", DestinationKind::Topic),
    ];
    for (prefix, kind) in split {
        if let Some(rest) = name.strip_prefix(prefix) {
            if !rest.is_empty() {
                return Ok(Destination::new(kind, rest));
            }
        }
    }
    Err(ClientError::Invalid(format!(
        "destination {name:?}: expected /queue/NAME or /topic/NAME"
    )))
}

fn stomp_name(d: &Destination) -> String {
    let prefix = match d.kind {
        DestinationKind::Queue => "/queue/",
        DestinationKind::Topic => "/topic/",
        DestinationKind::TempQueue => "/temp-queue/",
        DestinationKind::TempTopic => "/temp-topic/",
    };
    format!("{prefix}{}", d.physical_name)
}

/// Shared between the client handle, its `Pending`s and its I/O thread.
struct Inner {
    uri: FailoverUri,
    failover: bool,
    opts: OpenWireOptions,
    state: Mutex<State>,
    /// Signalled on every state change: responses, messages, (dis)connection, close.
    changed: Condvar,
    writer: Mutex<Writer>,
}

/// The write half of the current connection.
struct Writer {
    /// None while disconnected.
    stream: Option<std::net::TcpStream>,
    encoder: Encoder,
    /// For keep-alives: when we last wrote anything.
    last_write: Instant,
}

impl Writer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        use std::io::Write;
        let stream = self
            .stream
            .as_mut()
            .ok_or(std::io::ErrorKind::NotConnected)?;
        stream.write_all(bytes)?;
        self.last_write = Instant::now();
        Ok(())
    }
}

/// What `submit` does with the command it built.
enum Outcome {
    /// Written without responseRequired.
    Sent,
    /// Written with responseRequired; wait on this sequence.
    Wait(u64),
    /// Nothing to send (an ack of a stale delivery).
    Nothing,
}

/// What kind of write a `submit` is, for the rules on waiting while disconnected.
#[derive(PartialEq, Eq)]
enum Urgency {
    Normal,
    /// close(): never waits for a reconnect.
    Closing,
}

impl Inner {
    /// Once connected: under both locks, `build` checks the state and returns the
    /// command to write (its commandId from `State::command_id`) and, for a
    /// responseRequired one, its [`Kind`]; it is registered and written. A write error
    /// leaves it registered: the I/O thread notices the loss and failover replays it.
    fn submit(
        &self,
        urgency: Urgency,
        mut build: impl FnMut(&mut State) -> Result<Option<(Command, Option<Kind>)>, ClientError>,
    ) -> Result<Outcome, ClientError> {
        let started = Instant::now();
        loop {
            {
                let mut w = lock(&self.writer);
                if w.stream.is_some() {
                    let mut st = lock(&self.state);
                    check_usable(&st, &urgency)?;
                    let Some((command, kind)) = build(&mut st)? else {
                        return Ok(Outcome::Nothing);
                    };
                    let mut out = BytesMut::new();
                    w.encoder.encode(&command, &mut out)?;
                    let outcome = match kind {
                        Some(kind) => Outcome::Wait(st.register(command, kind)),
                        None => Outcome::Sent,
                    };
                    drop(st);
                    if let Err(e) = w.write(&out) {
                        tracing::debug!("write failed: {e}");
                        if let Some(s) = w.stream.take() {
                            let _ = s.shutdown(Shutdown::Both);
                        }
                        lock(&self.state).connected = false;
                        self.changed.notify_all();
                    }
                    return Ok(outcome);
                }
            }
            self.wait_connected(started, &urgency)?;
        }
    }

    /// Blocks until a connection is installed, within the failover `timeout`.
    fn wait_connected(&self, started: Instant, urgency: &Urgency) -> Result<(), ClientError> {
        let mut st = lock(&self.state);
        loop {
            check_usable(&st, urgency)?;
            if st.connected {
                return Ok(());
            }
            let limit_ms = match urgency {
                Urgency::Closing => 0,
                Urgency::Normal => self.uri.timeout_ms,
            };
            if limit_ms < 0 {
                st = self.changed.wait(st).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            let left = Duration::from_millis(limit_ms as u64).saturating_sub(started.elapsed());
            if left.is_zero() {
                return Err(ClientError::Disconnected {
                    waited_ms: started.elapsed().as_millis() as u64,
                });
            }
            st = self
                .changed
                .wait_timeout(st, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Waits for the Response to the command registered as `seq`.
    fn wait_response(&self, seq: u64, timeout: Duration) -> Result<(), ClientError> {
        let deadline = Instant::now() + timeout;
        let mut st = lock(&self.state);
        loop {
            if let Some(result) = st.done.remove(&seq) {
                return result;
            }
            if let Some(e) = &st.failed {
                return Err(e.clone());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                st.abandoned.insert(seq);
                let command_id = st
                    .outstanding
                    .get(&seq)
                    .map_or(0, |o| o.command.command_id());
                return Err(ClientError::ResponseTimeout {
                    command_id,
                    waited_ms: timeout.as_millis() as u64,
                });
            }
            st = self
                .changed
                .wait_timeout(st, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Submits and, for a responseRequired command, waits (`response_timeout`).
    fn request(
        &self,
        build: impl FnMut(&mut State) -> Result<Option<(Command, Option<Kind>)>, ClientError>,
    ) -> Result<(), ClientError> {
        match self.submit(Urgency::Normal, build)? {
            Outcome::Wait(seq) => self.wait_response(seq, self.opts.response_timeout),
            Outcome::Sent | Outcome::Nothing => Ok(()),
        }
    }

    /// Marks the client closed, fails every waiter and drops the connection.
    fn shut_down(&self) {
        let mut w = lock(&self.writer);
        {
            let mut st = lock(&self.state);
            st.closed = true;
            st.connected = false;
            st.fail_all(ClientError::Closed);
        }
        if let Some(s) = w.stream.take() {
            let _ = s.shutdown(Shutdown::Both);
        }
        drop(w);
        self.changed.notify_all();
    }
}

fn check_usable(st: &State, urgency: &Urgency) -> Result<(), ClientError> {
    if let Some(e) = &st.failed {
        return Err(e.clone());
    }
    if st.closed && *urgency != Urgency::Closing {
        return Err(ClientError::Closed);
    }
    Ok(())
}

fn header(st: &mut State, response_required: bool) -> Header {
    Header::new(st.command_id(), response_required)
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
    inner: Arc<Inner>,
    io: Option<JoinHandle<()>>,
    connection_id: ConnectionId,
}

/// A pipelined send's Response, from [`Client::send_async`].
pub struct Pending {
    inner: Arc<Inner>,
    /// None: nothing to wait for.
    seq: Option<u64>,
}

impl Pending {
    /// Waits up to `timeout` for the Response. On timeout the send is still in flight
    /// (and replayed after a failover); its outcome is unknown.
    pub fn wait(mut self, timeout: Duration) -> Result<(), ClientError> {
        match self.seq.take() {
            Some(seq) => self.inner.wait_response(seq, timeout),
            None => Ok(()),
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(seq) = self.seq.take() {
            let mut st = lock(&self.inner.state);
            if st.done.remove(&seq).is_none() {
                st.abandoned.insert(seq);
            }
        }
    }
}

impl Client {
    /// Connects to `url` (`tcp://host:port`, `nio://`, or `failover:(...)?options`) and
    /// returns once a broker answered the ConnectionInfo. With `failover:`, it keeps
    /// trying the list as the reconnect policy says.
    pub fn connect(url: &str, opts: OpenWireOptions) -> Result<Client, ClientError> {
        let uri = FailoverUri::parse(url)?;
        if let Some(u) = uri
            .uris
            .iter()
            .find(|u| !matches!(u.scheme, Scheme::Tcp | Scheme::Nio))
        {
            return Err(ClientError::Unsupported(u.to_string()));
        }
        let failover = url
            .trim_start()
            .get(..9)
            .is_some_and(|p| p.eq_ignore_ascii_case("failover:"));
        let connection_id = ConnectionId::new(new_connection_id());
        let mut st = State::default();
        let conn_header = header(&mut st, true);
        st.connection_info = Some(ConnectionInfo {
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
        let session_header = header(&mut st, false);
        st.session_info = Some(SessionInfo {
            header: session_header,
            session_id: Some(SessionId {
                connection_id: connection_id.value.clone(),
                value: 1,
            }),
        });
        let producer_header = header(&mut st, true);
        st.producer_info = Some(ProducerInfo {
            header: producer_header,
            producer_id: Some(producer_id(&connection_id)),
            ..ProducerInfo::default()
        });
        let inner = Arc::new(Inner {
            uri,
            failover,
            opts,
            state: Mutex::new(st),
            changed: Condvar::new(),
            writer: Mutex::new(Writer {
                stream: None,
                encoder: Encoder::default(),
                last_write: Instant::now(),
            }),
        });
        let opened = io::establish(&inner, true)?;
        let thread_inner = Arc::clone(&inner);
        let io = std::thread::Builder::new()
            .name("openwire-client-io".into())
            .spawn(move || io::run(thread_inner, opened))
            .map_err(|e| ClientError::ConnectionLost(format!("spawn I/O thread: {e}")))?;
        Ok(Client {
            inner,
            io: Some(io),
            connection_id,
        })
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
            .wait(self.inner.opts.response_timeout)
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
        Ok(Pending {
            inner: Arc::clone(&self.inner),
            seq,
        })
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
            kind: if self.inner.opts.text {
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
        if self.inner.opts.text {
            let text = std::str::from_utf8(body)
                .map_err(|_| ClientError::Invalid("a TextMessage body must be UTF-8".into()))?;
            template.set_text(Some(text))?;
        } else {
            template.content = Some(Bytes::copy_from_slice(body));
        }
        let map: PrimitiveMap = props.iter().map(|(k, v)| (*k, v.clone())).collect();
        template.set_properties(&map)?;
        let outcome = self.inner.submit(Urgency::Normal, |st| {
            let mut m = template.clone();
            // Sequence and commandId are taken with the writer held: wire order.
            st.next_message_seq += 1;
            m.message_id = Some(MessageId {
                text_view: None,
                producer_id: m.producer_id.clone(),
                producer_sequence_id: st.next_message_seq,
                broker_sequence_id: 0,
            });
            if let Some(t) = st.transaction.as_mut() {
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
                if let Some(t) = st.transaction.as_mut() {
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
            .inner
            .opts
            .client_id
            .clone()
            .unwrap_or_else(|| conn.clone());
        let mut made = None;
        self.inner.request(|st| {
            st.next_consumer += 1;
            let value = st.next_consumer;
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
            st.consumers.insert(
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
        self.inner.request(|st| {
            let Some(c) = st.consumers.remove(&id.value) else {
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
            .inner
            .opts
            .client_id
            .clone()
            .unwrap_or_else(|| conn.value.clone());
        self.inner.request(|st| {
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
        let deadline = Instant::now() + timeout;
        let message = {
            let mut st = lock(&self.inner.state);
            loop {
                if let Some(m) = st.messages.pop_front() {
                    break m;
                }
                if let Some(e) = &st.failed {
                    return Err(e.clone());
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(None);
                }
                st = self
                    .inner
                    .changed
                    .wait_timeout(st, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        };
        // The ack (auto) or window extension (client/individual) is written after the
        // state lock is released: lock order is writer, then state.
        let m = message.clone();
        let result = self.inner.submit(Urgency::Normal, |st| {
            if m.generation != st.generation {
                return Ok(None);
            }
            let in_tx = st.transaction.is_some();
            let Some(c) = st.consumers.get_mut(&m.subscription.value) else {
                return Ok(None);
            };
            c.last_delivered = m.id.broker_sequence_id;
            match c.ack {
                AckMode::Auto => {
                    if in_tx {
                        if let Some(t) = st.transaction.as_mut() {
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
        self.inner.request(|st| {
            if msg.generation != st.generation {
                return Ok(None);
            }
            let in_tx = st.transaction.is_some();
            let Some(c) = st.consumers.get_mut(&msg.subscription.value) else {
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
                if let Some(t) = st.transaction.as_mut() {
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

    /// Opens the local transaction (BEGIN, async as the real client's); every send and
    /// ack until `commit`/`rollback` belongs to it. One at a time.
    pub fn begin(&self) -> Result<(), ClientError> {
        let conn = self.connection_id.clone();
        self.inner.request(|st| {
            if let Some(t) = &st.transaction {
                return Err(ClientError::Transaction(t.name(), "already open"));
            }
            st.next_transaction += 1;
            let id = LocalTransactionId {
                value: st.next_transaction,
                connection_id: Some(conn.clone()),
            };
            let info = TransactionInfo {
                header: header(st, false),
                connection_id: Some(conn.clone()),
                transaction_id: Some(TransactionId::Local(id.clone())),
                transaction_type: TransactionType::Begin,
            };
            let command = Command::TransactionInfo(info);
            st.transaction = Some(Transaction {
                id,
                commands: vec![command.clone()],
                acked: Vec::new(),
                rollback_only: false,
                completing: false,
            });
            Ok(Some((command, None)))
        })
    }

    /// Commits (COMMIT_ONE_PHASE, confirmed). Fails with [`ClientError::Transaction`]
    /// if none is open, if the connection dropped while it was in flight (in doubt), or
    /// if a failover rolled its acks back (it is then rolled back).
    pub fn commit(&self) -> Result<(), ClientError> {
        let mut rollback_only = None;
        self.inner.request(|st| {
            let conn = st
                .connection_info
                .as_ref()
                .and_then(|c| c.connection_id.clone());
            let Some(t) = st.transaction.as_mut() else {
                return Err(ClientError::Transaction(String::new(), "not open"));
            };
            if t.completing {
                return Err(ClientError::Transaction(t.name(), "is completing"));
            }
            t.completing = true;
            let kind = if t.rollback_only {
                rollback_only = Some(t.name());
                TransactionType::Rollback
            } else {
                TransactionType::CommitOnePhase
            };
            let id = TransactionId::Local(t.id.clone());
            if kind == TransactionType::Rollback {
                st.transaction = None;
            }
            let info = TransactionInfo {
                header: header(st, true),
                connection_id: conn,
                transaction_id: Some(id),
                transaction_type: kind,
            };
            let k = if kind == TransactionType::Rollback {
                Kind::Rollback
            } else {
                Kind::Commit
            };
            Ok(Some((Command::TransactionInfo(info), Some(k))))
        })?;
        match rollback_only {
            Some(name) => Err(ClientError::Transaction(
                name,
                "rolled back: a failover undid its acks",
            )),
            None => Ok(()),
        }
    }

    /// Rolls the transaction back (confirmed). Its sends are dropped; the messages it
    /// acked are handed out again by `recv` (redelivered), as the real client does.
    pub fn rollback(&self) -> Result<(), ClientError> {
        self.inner.request(|st| {
            let conn = st
                .connection_info
                .as_ref()
                .and_then(|c| c.connection_id.clone());
            let Some(t) = st.transaction.take() else {
                return Err(ClientError::Transaction(String::new(), "not open"));
            };
            let generation = st.generation;
            for mut m in t.acked.iter().rev().cloned() {
                if m.generation == generation {
                    m.redelivery_counter += 1;
                    m.redelivered = true;
                    st.messages.push_front(m);
                }
            }
            let info = TransactionInfo {
                header: header(st, true),
                connection_id: conn,
                transaction_id: Some(TransactionId::Local(t.id.clone())),
                transaction_type: TransactionType::Rollback,
            };
            Ok(Some((Command::TransactionInfo(info), Some(Kind::Rollback))))
        })
    }

    /// How many times the client reconnected after losing a connection.
    pub fn reconnects(&self) -> u64 {
        lock(&self.inner.state).reconnects
    }

    /// True while a connection is up.
    pub fn is_connected(&self) -> bool {
        lock(&self.inner.state).connected
    }

    /// Removes the connection (RemoveInfo, which the broker cascades to the session,
    /// producer and consumers; waits for its Response, so everything before it was
    /// handled), sends ShutdownInfo and closes. When disconnected, closes at once.
    pub fn close(mut self) -> Result<(), ClientError> {
        let conn = self.connection_id.clone();
        let result = match self.inner.submit(Urgency::Closing, |st| {
            // The last message handed out (as the real client): the broker flags as
            // redelivered only what we may have seen, not the rest of the prefetch.
            let last = st
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
            Ok(Outcome::Wait(seq)) => self
                .inner
                .wait_response(seq, self.inner.opts.response_timeout),
            Ok(_) | Err(ClientError::Disconnected { .. }) => Ok(()),
            Err(e) => Err(e),
        };
        {
            let mut w = lock(&self.inner.writer);
            if w.stream.is_some() {
                let mut out = BytesMut::new();
                let bye = Command::ShutdownInfo(ShutdownInfo {
                    header: header(&mut lock(&self.inner.state), false),
                });
                if w.encoder.encode(&bye, &mut out).is_ok() {
                    let _ = w.write(&out);
                }
            }
        }
        self.stop();
        result
    }

    fn stop(&mut self) {
        self.inner.shut_down();
        if let Some(io) = self.io.take() {
            let _ = io.join();
        }
    }
}

fn producer_id(conn: &ConnectionId) -> ProducerId {
    ProducerId {
        connection_id: conn.value.clone(),
        session_id: 1,
        value: 1,
    }
}

impl Drop for Client {
    /// Closes the connection without RemoveInfo (as a crash would, minus the kill).
    fn drop(&mut self) {
        self.stop();
    }
}
