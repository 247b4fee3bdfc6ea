//! The reconnect/replay core both clients (STOMP and OpenWire) run on: the shared state
//! machine, the caller side of it, and the [`Protocol`] trait an adapter implements to
//! plug its framing, commands and acks in.
//!
//! * this file — [`Protocol`]; [`State`] (connected / closed / failed, the connection
//!   generation, requests awaiting an answer, the inbox, plus the adapter's session);
//!   [`Inner`] (what the client handle, its [`Pending`]s and its I/O thread share:
//!   state mutex, condvar, writer mutex) with `submit` (write once connected, within
//!   the failover `timeout`), the answer and inbox waits, and shutdown; [`Handle`] (start
//!   and stop the I/O thread); [`parse_url`].
//! * `io`   — the per-client I/O thread: reads the connection, keep-alives both ways,
//!   and on a loss runs the failover policy (`super::policy`) and replays the session.
//! * `conn` — what every handshake needs: TCP connect (and TLS handshake), a bounded
//!   read loop, why an attempt failed.
//!
//! # Threads and locks
//!
//! Each client has one I/O thread that reads the current connection and hands what
//! arrives to callers through [`State`] (a mutex and a condvar). Callers encode and
//! write their own frames under the writer mutex. Lock order: writer, then state; the
//! I/O thread only `try_lock`s the writer (for a keep-alive) and never waits for it, so
//! a caller blocked on a full socket cannot stop the reads that would drain it.
//!
//! Invariant: `State::connected` is true exactly when the writer slot holds a stream.

mod conn;
mod io;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::Shutdown;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::BytesMut;

pub use conn::{connect, failed, read_until, AttemptError, ReadFail};
pub use io::{IDLE_TICK, MIN_TICK};

use super::policy::Attempt;
use super::stream::{ClientStream, WriteHalf};
use super::{lock, ClientError};
use crate::uri::{FailoverUri, Scheme, TransportUri};

/// What differs between the STOMP and the OpenWire client: the session they keep,
/// how a connection is opened, what is replayed on it, and how bytes are framed.
pub trait Protocol: Sized + 'static {
    /// What writers encode with on the current connection (negotiated per connection).
    type Codec: Copy + Send;
    type Decoder: Send;
    /// Connection settings that are not part of the URL.
    type Options: Send + Sync;
    /// A delivered message, as the inbox holds it.
    type Message: Send;
    /// The adapter's bookkeeping (subscriptions or consumers, transactions, ...).
    type Session: Send;
    /// A request awaiting its answer (RECEIPT, Response).
    type Outstanding: Send;
    /// What [`Protocol::replay`] produces for a new connection (frames, commands).
    type Replayed;

    /// Prefix of log lines ("" or "OpenWire ").
    const LOG: &'static str;
    /// Name of the I/O thread.
    const THREAD: &'static str;
    /// What the replayed items are called in an error ("frame(s)", "command(s)").
    const UNIT: &'static str;
    /// Why a connection is dropped when the broker stays silent too long.
    const SILENT: &'static str;

    fn connect_timeout(opts: &Self::Options) -> Duration;
    /// What TLS connections (`ssl` schemes) trust and present; None: TLS URLs refused.
    fn tls(opts: &Self::Options) -> Option<&Arc<rustls::ClientConfig>>;
    /// One attempt on `target`: TCP connect and handshake (`first`: not a reconnect).
    fn open(inner: &Inner<Self>, target: &TransportUri, first: bool) -> Attempt<Opened<Self>>;
    /// Bumps the generation and returns the session to write on a new connection,
    /// settling what only the old connection could answer.
    fn replay(st: &mut State<Self>) -> Vec<Self::Replayed>;
    fn encode(
        codec: &Self::Codec,
        item: &Self::Replayed,
        out: &mut BytesMut,
    ) -> Result<(), ClientError>;
    /// For log lines about `item`.
    fn describe(item: &Self::Replayed) -> &'static str;
    /// Decodes and handles everything buffered. Ok(true): something arrived (wake the
    /// waiters); Err: drop the connection, for this reason.
    fn read_buffered(
        decoder: &mut Self::Decoder,
        buf: &mut BytesMut,
        st: &mut State<Self>,
    ) -> Result<bool, String>;
    /// A keep-alive (STOMP heart-beat, OpenWire KeepAliveInfo) into `out`.
    fn keep_alive(codec: &Self::Codec, out: &mut BytesMut) -> Result<(), ClientError>;
    /// The error of a wait for the answer to `seq` that timed out.
    fn timeout_error(st: &State<Self>, seq: u64, waited_ms: u64) -> ClientError;
}

/// A connection whose handshake is done, as the I/O thread serves it.
pub struct Opened<P: Protocol> {
    /// The connection; the reader keeps this one, writers use its
    /// [`ClientStream::write_half`].
    pub stream: ClientStream,
    /// Bytes read past the handshake (the broker may already be sending).
    pub buf: BytesMut,
    pub decoder: P::Decoder,
    pub codec: P::Codec,
    /// Write a keep-alive after this long without writing (zero: never).
    pub send_every: Duration,
    /// Drop the connection after this long without reading (zero: never).
    pub dead_after: Duration,
    /// The read timeout: how often the I/O thread checks the two above.
    pub tick: Duration,
}

/// The client's bookkeeping, shared by callers and the I/O thread under one mutex.
pub struct State<P: Protocol> {
    /// True while a connection is installed (see the module invariant).
    pub connected: bool,
    /// Bumped on every new connection (by [`Protocol::replay`]); stamps messages so
    /// acks of deliveries of an earlier connection are dropped.
    pub generation: u64,
    /// Set once: the client is closing or closed.
    pub closed: bool,
    /// Set once: failover gave up, or a plain connection was lost. Every call fails.
    pub failed: Option<ClientError>,
    /// The next waiter sequence ([`State::take_seq`]).
    pub next_seq: u64,
    /// Requests awaiting an answer, by a sequence that grows in wire order, so
    /// iterating replays them in the order they were first written.
    pub outstanding: BTreeMap<u64, P::Outstanding>,
    /// Results not yet collected by a waiter.
    pub done: HashMap<u64, Result<(), ClientError>>,
    /// Sequences nobody will collect (the `Pending` was dropped or timed out).
    pub abandoned: HashSet<u64>,
    pub messages: VecDeque<P::Message>,
    pub reconnects: u64,
    /// The broker asked for a keep-alive answer; the I/O thread writes it.
    pub keep_alive_due: bool,
    /// The adapter's session.
    pub sess: P::Session,
}

impl<P: Protocol> State<P> {
    pub fn new(sess: P::Session) -> State<P> {
        State {
            connected: false,
            generation: 0,
            closed: false,
            failed: None,
            next_seq: 0,
            outstanding: BTreeMap::new(),
            done: HashMap::new(),
            abandoned: HashSet::new(),
            messages: VecDeque::new(),
            reconnects: 0,
            keep_alive_due: false,
            sess,
        }
    }

    /// The next waiter sequence (0, 1, ...).
    pub fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// Hands `result` to the waiter of `seq`, unless nobody will collect it.
    pub fn finish(&mut self, seq: u64, result: Result<(), ClientError>) {
        if !self.abandoned.remove(&seq) {
            self.done.insert(seq, result);
        }
    }

    /// Fails every waiter: the client is finished.
    pub fn fail_all(&mut self, error: ClientError) {
        let seqs: Vec<u64> = self.outstanding.keys().copied().collect();
        for seq in seqs {
            self.outstanding.remove(&seq);
            self.finish(seq, Err(error.clone()));
        }
        if self.failed.is_none() {
            self.failed = Some(error);
        }
    }

    /// The error every call gets now, if any (`closing`: close() may still run).
    fn check_usable(&self, closing: bool) -> Result<(), ClientError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.closed && !closing {
            return Err(ClientError::Closed);
        }
        Ok(())
    }
}

/// Shared between the client handle, its `Pending`s and its I/O thread.
pub struct Inner<P: Protocol> {
    pub uri: FailoverUri,
    /// Whether the URL was `failover:`; a plain URL never reconnects.
    pub failover: bool,
    pub opts: P::Options,
    pub state: Mutex<State<P>>,
    /// Signalled on every state change: answers, messages, (dis)connection, close.
    pub changed: Condvar,
    pub writer: Mutex<Writer<P::Codec>>,
}

/// The write half of the current connection.
pub struct Writer<C> {
    /// None while disconnected.
    pub stream: Option<WriteHalf>,
    pub codec: C,
    /// For keep-alives: when we last wrote anything.
    pub last_write: Instant,
}

impl<C> Writer<C> {
    pub fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        use std::io::Write;
        let stream = self
            .stream
            .as_mut()
            .ok_or(std::io::ErrorKind::NotConnected)?;
        stream.write_all(bytes)?;
        self.last_write = Instant::now();
        Ok(())
    }

    /// TLS: sends the records rustls queued while reading (see `super::stream`).
    pub fn flush(&mut self) -> std::io::Result<()> {
        use std::io::Write;
        match self.stream.as_mut() {
            Some(stream) => stream.flush(),
            None => Ok(()),
        }
    }

    /// Drops the stream (shut down both ways).
    fn drop_stream(&mut self) {
        if let Some(s) = self.stream.take() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

impl<P: Protocol> Inner<P> {
    /// Once connected: under both locks, `build` checks the state, records what it
    /// writes and encodes it into the buffer; that is written. Ok(None): `build` found
    /// nothing to send. A write error leaves what was recorded in place: the I/O thread
    /// notices the loss and failover replays it. `closing` (close()): never waits for
    /// a reconnect, and works on a closed client.
    pub fn submit<T>(
        &self,
        closing: bool,
        mut build: impl FnMut(&mut State<P>, &P::Codec, &mut BytesMut) -> Result<Option<T>, ClientError>,
    ) -> Result<Option<T>, ClientError> {
        let started = Instant::now();
        loop {
            {
                let mut w = lock(&self.writer);
                if w.stream.is_some() {
                    let mut st = lock(&self.state);
                    st.check_usable(closing)?;
                    let mut out = BytesMut::new();
                    let Some(made) = build(&mut st, &w.codec, &mut out)? else {
                        return Ok(None);
                    };
                    drop(st);
                    if let Err(e) = w.write(&out) {
                        tracing::debug!("write failed: {e}");
                        w.drop_stream();
                        lock(&self.state).connected = false;
                        self.changed.notify_all();
                    }
                    return Ok(Some(made));
                }
            }
            self.wait_connected(started, closing)?;
        }
    }

    /// Blocks until a connection is installed, within the failover `timeout`.
    fn wait_connected(&self, started: Instant, closing: bool) -> Result<(), ClientError> {
        let mut st = lock(&self.state);
        loop {
            st.check_usable(closing)?;
            if st.connected {
                return Ok(());
            }
            // Closing does not wait for a reconnect.
            let limit_ms = if closing { 0 } else { self.uri.timeout_ms };
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

    /// Waits for the answer (RECEIPT, Response) to the request registered as `seq`.
    pub fn wait_answer(&self, seq: u64, timeout: Duration) -> Result<(), ClientError> {
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
                return Err(P::timeout_error(&st, seq, timeout.as_millis() as u64));
            }
            st = self
                .changed
                .wait_timeout(st, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// The next message of the inbox, waiting up to `timeout`. Ok(None): nothing
    /// arrived in time. Messages already received are still returned after the client
    /// failed; then the error.
    pub fn next_message(&self, timeout: Duration) -> Result<Option<P::Message>, ClientError> {
        let deadline = Instant::now() + timeout;
        let mut st = lock(&self.state);
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
                .changed
                .wait_timeout(st, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
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
        w.drop_stream();
        drop(w);
        self.changed.notify_all();
    }
}

/// A pipelined request's answer, from `send_async`.
pub struct Pending<P: Protocol> {
    inner: Arc<Inner<P>>,
    /// None: nothing to wait for.
    seq: Option<u64>,
}

impl<P: Protocol> Pending<P> {
    pub fn new(inner: &Arc<Inner<P>>, seq: Option<u64>) -> Pending<P> {
        Pending {
            inner: Arc::clone(inner),
            seq,
        }
    }

    /// Waits up to `timeout` for the broker's answer. On timeout the request is still
    /// in flight (and replayed after a failover); its outcome is unknown.
    pub fn wait(mut self, timeout: Duration) -> Result<(), ClientError> {
        match self.seq.take() {
            Some(seq) => self.inner.wait_answer(seq, timeout),
            None => Ok(()),
        }
    }
}

impl<P: Protocol> Drop for Pending<P> {
    fn drop(&mut self) {
        if let Some(seq) = self.seq.take() {
            let mut st = lock(&self.inner.state);
            if st.done.remove(&seq).is_none() {
                st.abandoned.insert(seq);
            }
        }
    }
}

/// `url` parsed, every URI's scheme checked with `accepts`; and whether it is
/// `failover:` (a plain URL never reconnects).
pub fn parse_url(
    url: &str,
    accepts: impl Fn(&Scheme) -> bool,
) -> Result<(FailoverUri, bool), ClientError> {
    let uri = FailoverUri::parse(url)?;
    if let Some(u) = uri.uris.iter().find(|u| !accepts(&u.scheme)) {
        return Err(ClientError::Unsupported(u.to_string()));
    }
    let failover = url
        .trim_start()
        .get(..9)
        .is_some_and(|p| p.eq_ignore_ascii_case("failover:"));
    Ok((uri, failover))
}

/// A running client: the shared [`Inner`] and its I/O thread. Dropping it closes the
/// connection without a goodbye (as a crash would, minus the kill).
pub struct Handle<P: Protocol> {
    pub inner: Arc<Inner<P>>,
    io: Option<JoinHandle<()>>,
}

impl<P: Protocol> Handle<P> {
    /// Connects as the policy says (returns once a broker answered the handshake) and
    /// starts the I/O thread. `codec`: the writer's until the first connection sets it.
    pub fn start(
        uri: FailoverUri,
        failover: bool,
        opts: P::Options,
        sess: P::Session,
        codec: P::Codec,
    ) -> Result<Handle<P>, ClientError>
    where
        P::Options: 'static,
        P::Session: 'static,
        P::Message: 'static,
        P::Outstanding: 'static,
    {
        // Refused here, not per attempt: under failover a missing config would
        // otherwise be retried until maxReconnectAttempts (forever by default).
        if P::tls(&opts).is_none() {
            if let Some(u) = uri.uris.iter().find(|u| conn::uses_tls(u)) {
                return Err(ClientError::TlsNotConfigured(u.to_string()));
            }
        }
        let inner = Arc::new(Inner {
            uri,
            failover,
            opts,
            state: Mutex::new(State::new(sess)),
            changed: Condvar::new(),
            writer: Mutex::new(Writer {
                stream: None,
                codec,
                last_write: Instant::now(),
            }),
        });
        let opened = io::establish(&inner, true)?;
        let thread_inner = Arc::clone(&inner);
        let io = std::thread::Builder::new()
            .name(P::THREAD.into())
            .spawn(move || io::run(thread_inner, opened))
            .map_err(|e| ClientError::ConnectionLost(format!("spawn I/O thread: {e}")))?;
        Ok(Handle {
            inner,
            io: Some(io),
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

    /// Fails every waiter, drops the connection and joins the I/O thread.
    pub fn stop(&mut self) {
        self.inner.shut_down();
        if let Some(io) = self.io.take() {
            let _ = io.join();
        }
    }
}

impl<P: Protocol> Drop for Handle<P> {
    fn drop(&mut self) {
        self.stop();
    }
}
