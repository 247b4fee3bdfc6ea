//! A blocking STOMP client with ActiveMQ-style failover, for tools (`tandem-load`) and
//! tests. Plain `std::net` and threads, so it works from any ordinary thread.
//!
//! * [`Client`] — connect (`stomp://h:p` or `failover:(...)?...`), send, subscribe,
//!   receive, ack, transactions, close.
//! * `conn`   — one connection: TCP connect and the CONNECT/CONNECTED handshake.
//! * `state`  — what is in flight (unreceipted frames, subscriptions, transactions,
//!   inbox) and how it is replayed on a new connection.
//! * `io`     — the per-client I/O thread: reads frames, heart-beats, reconnects.
//! * `policy` — reconnect order, back-off and give-up rules (pure, unit tested).
//! * [`openwire`] — the same client for OpenWire (`tcp://`, `failover:(tcp://...)`),
//!   with the same shape of API and failover rules; shares `policy` and [`ClientError`].
//!
//! # Threads and locks
//!
//! Each client has one I/O thread that reads the current connection with the codec in
//! [`crate::protocol::stomp`] and hands frames to callers through `State` (a mutex and a
//! condvar). Callers write frames themselves under the writer mutex. Lock order: writer,
//! then state; the I/O thread never blocks on the writer while holding the state.
//!
//! # Failover semantics (ActiveMQ's failover transport, adapted to STOMP)
//!
//! A `failover:` URL reconnects when the connection drops: each pass tries the list in
//! order (`randomize=false`) or shuffled; the first pass runs at once, later ones after
//! `initialReconnectDelay`, growing by `backOffMultiplier` up to `maxReconnectDelay`.
//! After `maxReconnectAttempts` failed passes (-1: never give up; 0: no reconnect) every
//! call fails with [`ClientError::FailoverExhausted`]. While disconnected, a call that
//! must write waits at most `timeout` ms (-1: until reconnected or given up) and then
//! fails with [`ClientError::Disconnected`]; nothing of it was sent.
//!
//! On the new connection the client sends CONNECT with the same login and `client-id`,
//! then, in this order: every active subscription (same ids), every open transaction
//! (BEGIN and its frames), and every SEND and COMMIT not yet receipted, in their
//! original order. Consequences, the usual at-least-once outcome:
//!
//! * a SEND whose receipt was lost with the connection is sent again, so the broker may
//!   hold it twice;
//! * a COMMIT whose receipt was lost replays its whole transaction, so a transaction
//!   may be applied twice (never partly);
//! * deliveries not acknowledged before the loss are redelivered by the broker (with
//!   `redelivered:true`); messages of `client`/`client-individual` subscriptions still
//!   queued in the client are dropped for that reason, and acking a message received on
//!   an earlier connection is a no-op (its delivery no longer exists);
//! * an ACK or transactional frame whose receipt was pending is settled as done: the
//!   ACK's delivery comes back, the transaction is replayed.
//!
//! A broker that answers CONNECT with ERROR (bad login, or a slave that does not serve
//! yet) counts as a failed attempt, and the next URI is tried; with a plain URL the
//! ERROR is returned as [`ClientError::Refused`].
//!
//! The client does not de-duplicate: broker-side duplicate detection is out of scope.
//!
//! A plain `stomp://` URL never reconnects: a lost connection fails every later call
//! with [`ClientError::ConnectionLost`].

mod conn;
mod error;
mod io;
pub mod openwire;
mod policy;
mod state;

use std::net::Shutdown;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

pub use error::ClientError;

use crate::protocol::stomp::{encode, Command, Frame, Version};
use crate::uri::{FailoverUri, Scheme};
use state::{Kind, State};

/// Connection settings that are not part of the URL.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub login: Option<String>,
    pub passcode: Option<String>,
    /// STOMP `client-id` (ActiveMQ: needed for durable topic subscriptions).
    pub client_id: Option<String>,
    /// `heart-beat` we offer, ms: (how often we can send, how often we want to hear).
    /// A broker silent for twice the agreed period counts as a lost connection.
    pub heartbeat_ms: (u64, u64),
    /// Bound on one connection attempt: TCP connect plus CONNECTED.
    pub connect_timeout: Duration,
    /// Bound on waiting for a RECEIPT in `send`, `subscribe`, `ack`, `begin`,
    /// `commit`, `abort` and `close` (time spent reconnecting counts).
    pub receipt_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            login: None,
            passcode: None,
            client_id: None,
            heartbeat_ms: (0, 0),
            connect_timeout: Duration::from_secs(5),
            receipt_timeout: Duration::from_secs(30),
        }
    }
}

/// How a subscription's deliveries are acknowledged (the SUBSCRIBE `ack` header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckMode {
    /// The broker counts a message as consumed when it sends it.
    Auto,
    /// Cumulative: acking a message acks every earlier one of the subscription.
    Client,
    /// Each message is acked on its own.
    ClientIndividual,
}

impl AckMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AckMode::Auto => "auto",
            AckMode::Client => "client",
            AckMode::ClientIndividual => "client-individual",
        }
    }
}

/// A subscription's id (`sub-<n>`); stays the same across reconnects.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SubscriptionId(pub String);

impl SubscriptionId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One delivered MESSAGE.
#[derive(Debug, Clone)]
pub struct Message {
    pub destination: String,
    pub message_id: String,
    /// The 1.2 `ack` header, which ACK/NACK must quote (None from a 1.1 broker).
    pub ack_id: Option<String>,
    pub subscription: String,
    /// The broker delivered it before (`redelivered:true`).
    pub redelivered: bool,
    /// Every header as received, in order.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// The connection it arrived on; an ack on a later connection is dropped.
    generation: u64,
}

impl Message {
    /// The first header called `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Shared between the client handle, its `Pending`s and its I/O thread.
struct Inner {
    uri: FailoverUri,
    /// Whether the URL was `failover:`; a plain URL never reconnects.
    failover: bool,
    opts: ClientOptions,
    state: Mutex<State>,
    /// Signalled on every state change: receipts, messages, (dis)connection, close.
    changed: Condvar,
    writer: Mutex<Writer>,
}

/// The write half of the current connection.
struct Writer {
    /// None while disconnected.
    stream: Option<std::net::TcpStream>,
    version: Version,
    /// For heart-beats: when we last wrote anything.
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

/// Locks, ignoring poisoning: the state stays consistent between statements, and a
/// panicking caller thread must not take every other user of the client down with it.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    /// Writes `frame` (a receipt header is added) once connected and records it in the
    /// state. Ok(None): nothing needed sending (an ack of a stale delivery).
    fn submit(&self, frame: Frame, kind: Kind) -> Result<Option<u64>, ClientError> {
        let started = Instant::now();
        loop {
            {
                let mut w = lock(&self.writer);
                if w.stream.is_some() {
                    let mut st = lock(&self.state);
                    check_usable(&st, &kind)?;
                    if let Kind::Ack { generation } = kind {
                        if generation != st.generation {
                            return Ok(None);
                        }
                    }
                    let seq = st.register(frame, kind)?;
                    let mut out = BytesMut::new();
                    encode(&st.outstanding[&seq].frame, w.version, &mut out);
                    drop(st);
                    if let Err(e) = w.write(&out) {
                        // The frame stays outstanding and is replayed after failover.
                        tracing::debug!("write failed: {e}");
                        if let Some(s) = w.stream.take() {
                            let _ = s.shutdown(Shutdown::Both);
                        }
                        lock(&self.state).connected = false;
                        self.changed.notify_all();
                    }
                    return Ok(Some(seq));
                }
            }
            self.wait_connected(started, &kind)?;
        }
    }

    /// Blocks until a connection is installed, within the failover `timeout`.
    fn wait_connected(&self, started: Instant, kind: &Kind) -> Result<(), ClientError> {
        let mut st = lock(&self.state);
        loop {
            check_usable(&st, kind)?;
            if st.connected {
                return Ok(());
            }
            let limit_ms = match kind {
                // Closing does not wait for a reconnect.
                Kind::Disconnect => 0,
                _ => self.uri.timeout_ms,
            };
            if limit_ms < 0 {
                st = self.changed.wait(st).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            let limit = Duration::from_millis(limit_ms as u64);
            let left = limit.saturating_sub(started.elapsed());
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

    /// Waits for the RECEIPT of `seq`.
    fn wait_receipt(&self, seq: u64, timeout: Duration) -> Result<(), ClientError> {
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
                return Err(ClientError::ReceiptTimeout {
                    receipt: format!("{}{seq}", state::RECEIPT_PREFIX),
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

    /// Submits and waits for the receipt (`receipt_timeout`).
    fn request(&self, frame: Frame, kind: Kind) -> Result<(), ClientError> {
        match self.submit(frame, kind)? {
            Some(seq) => self.wait_receipt(seq, self.opts.receipt_timeout),
            None => Ok(()),
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

fn check_usable(st: &State, kind: &Kind) -> Result<(), ClientError> {
    if let Some(e) = &st.failed {
        return Err(e.clone());
    }
    if st.closed && *kind != Kind::Disconnect {
        return Err(ClientError::Closed);
    }
    Ok(())
}

/// A STOMP connection (or failover set of them). `Sync`: share it between threads by
/// reference or in an `Arc`; every call is safe to make concurrently.
pub struct Client {
    inner: Arc<Inner>,
    io: Option<JoinHandle<()>>,
}

/// A pipelined frame's receipt, from [`Client::send_async`].
pub struct Pending {
    inner: Arc<Inner>,
    /// None: nothing to wait for.
    seq: Option<u64>,
}

impl Pending {
    /// Waits up to `timeout` for the receipt. On timeout the frame is still in flight
    /// (and replayed after a failover); its outcome is unknown.
    pub fn wait(mut self, timeout: Duration) -> Result<(), ClientError> {
        match self.seq.take() {
            Some(seq) => self.inner.wait_receipt(seq, timeout),
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
    /// Connects to `url` (`stomp://host:port` or `failover:(...)?options`) and returns
    /// once a broker answered CONNECTED. With `failover:`, it keeps trying the list as
    /// the reconnect policy says (so it fails with `FailoverExhausted` only after
    /// `maxReconnectAttempts` passes).
    pub fn connect(url: &str, opts: ClientOptions) -> Result<Client, ClientError> {
        let uri = FailoverUri::parse(url)?;
        if let Some(u) = uri
            .uris
            .iter()
            .find(|u| !matches!(u.scheme, Scheme::Stomp | Scheme::StompNio))
        {
            return Err(ClientError::Unsupported(u.to_string()));
        }
        let failover = url
            .trim_start()
            .get(..9)
            .is_some_and(|p| p.eq_ignore_ascii_case("failover:"));
        let inner = Arc::new(Inner {
            uri,
            failover,
            opts,
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            writer: Mutex::new(Writer {
                stream: None,
                version: Version::V1_2,
                last_write: Instant::now(),
            }),
        });
        let opened = io::establish(&inner, true)?;
        let thread_inner = Arc::clone(&inner);
        let io = std::thread::Builder::new()
            .name("stomp-client-io".into())
            .spawn(move || io::run(thread_inner, opened))
            .map_err(|e| ClientError::ConnectionLost(format!("spawn I/O thread: {e}")))?;
        Ok(Client {
            inner,
            io: Some(io),
        })
    }

    /// Sends a message and waits for the broker's RECEIPT (for a `persistent:true`
    /// message: it is on disk). `headers` go on the SEND as given (e.g.
    /// `("persistent", "true")`); a `transaction` header sends inside that open
    /// transaction. `receipt` and `content-length` are the client's to set.
    pub fn send(
        &self,
        destination: &str,
        body: &[u8],
        headers: &[(&str, &str)],
    ) -> Result<(), ClientError> {
        self.send_async(destination, body, headers)?
            .wait(self.inner.opts.receipt_timeout)
    }

    /// Like [`Client::send`] but returns once written: pipeline many, then wait.
    pub fn send_async(
        &self,
        destination: &str,
        body: &[u8],
        headers: &[(&str, &str)],
    ) -> Result<Pending, ClientError> {
        let mut frame = Frame::new(Command::Send).with_header("destination", destination);
        let mut kind = Kind::Send;
        for (name, value) in headers {
            match *name {
                "receipt" | "content-length" | "destination" => continue,
                "transaction" => kind = Kind::TxSend(value.to_string()),
                _ => {}
            }
            frame.push_header(*name, *value);
        }
        frame.body = Bytes::copy_from_slice(body);
        let seq = self.inner.submit(frame, kind)?;
        Ok(Pending {
            inner: Arc::clone(&self.inner),
            seq,
        })
    }

    /// Subscribes (confirmed by a receipt); the subscription is renewed on every
    /// reconnect until [`Client::unsubscribe`]. Extra `headers` go on the SUBSCRIBE
    /// (`selector`, `activemq.prefetchSize`, `activemq.subscriptionName`, ...).
    pub fn subscribe(
        &self,
        destination: &str,
        ack: AckMode,
        headers: &[(&str, &str)],
    ) -> Result<SubscriptionId, ClientError> {
        let id = {
            let mut st = lock(&self.inner.state);
            st.next_subscription += 1;
            format!("sub-{:06}", st.next_subscription)
        };
        let mut frame = Frame::new(Command::Subscribe)
            .with_header("id", id.as_str())
            .with_header("destination", destination)
            .with_header("ack", ack.as_str());
        for (name, value) in headers {
            if !matches!(*name, "id" | "destination" | "ack" | "receipt") {
                frame.push_header(*name, *value);
            }
        }
        let kind = Kind::Subscribe {
            id: id.clone(),
            ack,
        };
        self.inner.request(frame, kind)?;
        Ok(SubscriptionId(id))
    }

    /// Ends a subscription (confirmed by a receipt).
    pub fn unsubscribe(&self, id: &SubscriptionId) -> Result<(), ClientError> {
        let frame = Frame::new(Command::Unsubscribe).with_header("id", id.as_str());
        self.inner.request(frame, Kind::Unsubscribe(id.0.clone()))
    }

    /// The next delivered message of any subscription, waiting up to `timeout`.
    /// Ok(None): nothing arrived in time. Messages already received are still returned
    /// after the client failed; then the error.
    pub fn recv(&self, timeout: Duration) -> Result<Option<Message>, ClientError> {
        let deadline = Instant::now() + timeout;
        let mut st = lock(&self.inner.state);
        loop {
            if let Some(m) = st.messages.pop_front() {
                return Ok(Some(m));
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
    }

    /// Acknowledges `msg` and waits for the receipt (the broker has recorded it). A
    /// message received on an earlier connection is not acked (see the module docs).
    pub fn ack(&self, msg: &Message) -> Result<(), ClientError> {
        self.acknowledge(Command::Ack, msg)
    }

    /// Refuses `msg`: the broker redelivers it or sends it to the dead-letter queue.
    pub fn nack(&self, msg: &Message) -> Result<(), ClientError> {
        self.acknowledge(Command::Nack, msg)
    }

    fn acknowledge(&self, command: Command, msg: &Message) -> Result<(), ClientError> {
        let mut frame = Frame::new(command);
        // 1.2 names the delivery by `id`; 1.1 by subscription and message-id. Sending
        // all of them lets one code path serve both.
        if let Some(id) = &msg.ack_id {
            frame.push_header("id", id.as_str());
        }
        frame.push_header("subscription", msg.subscription.as_str());
        frame.push_header("message-id", msg.message_id.as_str());
        let kind = Kind::Ack {
            generation: msg.generation,
        };
        self.inner.request(frame, kind)
    }

    /// Opens transaction `tx` (confirmed by a receipt). Send in it with a
    /// `("transaction", tx)` header.
    pub fn begin(&self, tx: &str) -> Result<(), ClientError> {
        let frame = Frame::new(Command::Begin).with_header("transaction", tx);
        self.inner.request(frame, Kind::Begin(tx.into()))
    }

    /// Commits `tx` and waits for the receipt. If the connection drops first, the whole
    /// transaction is replayed on the next one (it may then apply twice).
    pub fn commit(&self, tx: &str) -> Result<(), ClientError> {
        let frame = Frame::new(Command::Commit).with_header("transaction", tx);
        self.inner.request(frame, Kind::Commit(tx.into()))
    }

    /// Rolls `tx` back (confirmed by a receipt); it is forgotten at once.
    pub fn abort(&self, tx: &str) -> Result<(), ClientError> {
        let frame = Frame::new(Command::Abort).with_header("transaction", tx);
        self.inner.request(frame, Kind::Abort(tx.into()))
    }

    /// How many times the client reconnected after losing a connection.
    pub fn reconnects(&self) -> u64 {
        lock(&self.inner.state).reconnects
    }

    /// True while a connection is up.
    pub fn is_connected(&self) -> bool {
        lock(&self.inner.state).connected
    }

    /// Sends DISCONNECT, waits for its receipt (so everything before it was handled),
    /// and closes. When disconnected, it closes without waiting for a reconnect.
    pub fn close(mut self) -> Result<(), ClientError> {
        let frame = Frame::new(Command::Disconnect);
        let result = match self.inner.submit(frame, Kind::Disconnect) {
            Ok(Some(seq)) => self
                .inner
                .wait_receipt(seq, self.inner.opts.receipt_timeout),
            Ok(None) | Err(ClientError::Disconnected { .. }) => Ok(()),
            Err(e) => Err(e),
        };
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

impl Drop for Client {
    /// Closes the connection without DISCONNECT (as a crash would, minus the kill).
    fn drop(&mut self) {
        self.stop();
    }
}
