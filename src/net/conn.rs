//! The per-connection loop every protocol shares (STOMP, OpenWire).
//!
//! A connection runs four pieces on its shard's executor, sharing one `Rc<Shared>`
//! (its `RefCell` is never borrowed across an `.await`):
//!
//! * reader task: socket -> the protocol's decoder -> its session; waits while the
//!   session has paused reading (producer flow control) and stops once a close is
//!   requested;
//! * event task: `ConnEvents` (deliveries, completions) -> the session;
//! * timer task: the login deadline (`transport.connectAttemptTimeout`, counted from
//!   the accept), keep-alives when idle, the receive timeout;
//! * writer (the connection's own future): takes everything encoded so far as one
//!   buffer per write (glommio has no vectored send), then tells the session what is
//!   on the wire (`on_written`).
//!
//! Whichever ends the connection (EOF, socket error, close after flush, a timeout, a
//! panic) sets `finished`; the writer then returns, the other tasks are cancelled by
//! dropping them, and the connection is unregistered from the broker (which returns its
//! unacknowledged deliveries and drops its temporary destinations).
//!
//! What differs between protocols is behind [`Wire`]: how bytes become inputs, how
//! the session's actions become bytes and loop actions, and what a keep-alive is.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures_lite::FutureExt;

use crate::broker::{ConnEvents, ConnId, Event, Request, Router, ShardId, SubKey};
use crate::rt::exec::Task;
use crate::rt::net::{ReadHalf, WriteHalf};
use crate::rt::{sleep, yield_if_needed};

use super::signal::Signal;

/// Bytes asked of the socket per read.
pub(crate) const READ_CHUNK_BYTES: usize = 16 * 1024;

/// What a protocol session asks of the loop, besides writing bytes.
pub(crate) enum LoopAction {
    Post {
        shard: ShardId,
        request: Request,
    },
    /// Keep-alive settings (after the protocol's handshake).
    Timers {
        /// Write a keep-alive when nothing was written for this long.
        send_every: Option<Duration>,
        /// Close the connection when nothing arrives for this long.
        receive_timeout: Option<Duration>,
    },
    PauseReading,
    ResumeReading,
    /// [`Wire::deadline`] changed.
    DeadlineChanged,
    /// Flush what is queued, then close.
    Close,
}

/// A protocol session as the connection loop drives it.
pub(crate) trait Wire: 'static {
    /// One decoded unit (a frame, a command, a heart-beat).
    type Item;
    type Error;
    type Decoder;
    /// For logs ("STOMP", "OpenWire").
    const NAME: &'static str;

    /// Takes the next item off the front of `buf`; `Ok(None)`: need more bytes.
    fn decode(
        decoder: &mut Self::Decoder,
        buf: &mut BytesMut,
    ) -> Result<Option<Self::Item>, Self::Error>;
    /// Feeds one item; may reconfigure the decoder (a negotiated version).
    fn on_item(&mut self, item: Self::Item, decoder: &mut Self::Decoder);
    fn on_decode_error(&mut self, e: Self::Error);
    fn on_event(&mut self, event: Event);
    /// Every output unit numbered below `upto` (see [`Wire::units_emitted`]) is on the
    /// socket.
    fn on_written(&mut self, upto: u64);
    fn on_receive_timeout(&mut self);
    fn on_closed(&mut self);
    /// Whether the protocol handshake is done: keep-alives and the receive timeout run
    /// from then on.
    fn is_established(&self) -> bool;
    /// Whether the client has logged in (STOMP CONNECT, OpenWire ConnectionInfo
    /// accepted). Until then the login deadline runs and the decoder accepts only
    /// small frames (see [`Wire::on_item`] of each protocol).
    fn is_logged_in(&self) -> bool {
        self.is_established()
    }
    /// Output units (frames, commands) queued so far.
    fn units_emitted(&self) -> u64;
    /// Moves the session's queued actions out: writes are encoded into `out`, the rest
    /// appended to `actions`.
    fn drain(&mut self, out: &mut BytesMut, actions: &mut Vec<LoopAction>);
    /// Appends what keeps an idle connection alive (a STOMP EOL, a KeepAliveInfo).
    fn encode_keep_alive(&self, out: &mut BytesMut);
    /// How long until the session wants [`Wire::on_deadline`] (an OpenWire pull's
    /// timeout); `None`: no deadline.
    fn deadline(&self) -> Option<Duration> {
        None
    }
    fn on_deadline(&mut self) {}
}

/// Connection state the tasks share.
struct Conn<W> {
    wire: W,
    /// Encoded output not yet handed to the socket.
    out: BytesMut,
    reading_paused: bool,
    /// Close after flushing `out`.
    closing: bool,
    /// Stop now: the socket is gone or a task ended.
    finished: bool,
    send_every: Option<Duration>,
    receive_timeout: Option<Duration>,
    last_read: Instant,
    last_write: Instant,
    /// Reused between `feed` calls.
    actions: Vec<LoopAction>,
    /// Deliveries handed to the session and not yet on the socket: (output units
    /// emitted once it was handled, destination's shard, subscription, its bytes).
    /// Reported written to the shard (`Request::Written`), which stops dispatching to
    /// a consumer with `maxPendingOutput` bytes unwritten: so this is bounded by that
    /// and by the prefetch.
    unwritten: VecDeque<(u64, ShardId, SubKey, u64)>,
    unwritten_bytes: u64,
}

struct Shared<W> {
    conn: RefCell<Conn<W>>,
    router: Router,
    /// Output queued, close requested or finished.
    writer: Signal,
    /// Reading resumed (or finished).
    reader: Signal,
    /// Keep-alive settings changed (or finished).
    timer: Signal,
}

impl<W: Wire> Shared<W> {
    /// Runs `input` against the session and carries out the actions it queued.
    fn feed(&self, input: impl FnOnce(&mut W)) {
        let mut guard = self.conn.borrow_mut();
        let c = &mut *guard;
        if c.finished {
            return;
        }
        input(&mut c.wire);
        let before = c.out.len();
        let mut actions = std::mem::take(&mut c.actions);
        c.wire.drain(&mut c.out, &mut actions);
        if c.out.len() != before {
            self.writer.notify();
        }
        for action in actions.drain(..) {
            match action {
                LoopAction::Post { shard, request } => self.router.post(shard, request),
                LoopAction::Timers {
                    send_every,
                    receive_timeout,
                } => {
                    c.send_every = send_every;
                    c.receive_timeout = receive_timeout;
                    c.last_read = Instant::now();
                    self.timer.notify();
                }
                LoopAction::PauseReading => c.reading_paused = true,
                LoopAction::DeadlineChanged => self.timer.notify(),
                LoopAction::ResumeReading => {
                    c.reading_paused = false;
                    // Time spent paused is ours, not the client's silence.
                    c.last_read = Instant::now();
                    self.reader.notify();
                }
                LoopAction::Close => {
                    c.closing = true;
                    self.writer.notify();
                }
            }
        }
        c.actions = actions;
    }

    /// A delivery was handed to the session: count it until it is written.
    fn delivered(&self, shard: ShardId, sub: SubKey, bytes: u64) {
        let mut c = self.conn.borrow_mut();
        if c.finished {
            return;
        }
        let unit = c.wire.units_emitted();
        c.unwritten.push_back((unit, shard, sub, bytes));
        c.unwritten_bytes += bytes;
        self.router.registries().limits.add_pending_output(bytes);
    }

    /// Output units below `upto` are on the socket: the deliveries among them give
    /// their consumers room again (one `Written` per subscription).
    fn written(&self, upto: u64) {
        let mut done: BTreeMap<(ShardId, SubKey), u64> = BTreeMap::new();
        let mut total = 0;
        {
            let mut c = self.conn.borrow_mut();
            while let Some(&(unit, shard, sub, bytes)) = c.unwritten.front() {
                if unit > upto {
                    break;
                }
                c.unwritten.pop_front();
                *done.entry((shard, sub)).or_default() += bytes;
                total += bytes;
            }
            c.unwritten_bytes -= total;
        }
        self.router.registries().limits.sub_pending_output(total);
        for ((shard, sub), bytes) in done {
            self.router.post(shard, Request::Written { sub, bytes });
        }
    }

    fn finish(&self) {
        self.conn.borrow_mut().finished = true;
        self.writer.notify();
        self.reader.notify();
        self.timer.notify();
    }
}

/// Runs one connection until it ends, then unregisters it. `wire` is the session of
/// connection `conn_id` (registered with `router`, `events` its event stream). A
/// connection not logged in by `login_deadline` is closed.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run<W: Wire>(
    rd: ReadHalf,
    wr: WriteHalf,
    peer: SocketAddr,
    router: Router,
    conn_id: ConnId,
    events: ConnEvents,
    wire: W,
    decoder: W::Decoder,
    login_deadline: Instant,
) {
    tracing::debug!(%peer, conn = ?conn_id, protocol = W::NAME, "connection accepted");
    let now = Instant::now();
    let shared = Rc::new(Shared {
        conn: RefCell::new(Conn {
            wire,
            out: BytesMut::with_capacity(READ_CHUNK_BYTES),
            reading_paused: false,
            closing: false,
            finished: false,
            send_every: None,
            receive_timeout: None,
            last_read: now,
            last_write: now,
            actions: Vec::new(),
            unwritten: VecDeque::new(),
            unwritten_bytes: 0,
        }),
        router: router.clone(),
        writer: Signal::default(),
        reader: Signal::default(),
        timer: Signal::default(),
    });
    // Whatever the session queued when it was created (OpenWire's WireFormatInfo).
    shared.feed(|_| {});
    let reader = guarded(&shared, "reader", read_loop(shared.clone(), rd, decoder));
    let pump = guarded(&shared, "events", event_loop(shared.clone(), events));
    let timer = guarded(&shared, "timer", timer_loop(shared.clone(), login_deadline));
    write_loop(&shared, wr).await;
    // Cancel the other tasks before the session learns the connection is gone.
    drop((reader, pump, timer));
    shared.conn.borrow_mut().wire.on_closed();
    // The broker takes the consumers back with the connection; their unwritten bytes
    // leave the gauge.
    let unwritten = std::mem::take(&mut shared.conn.borrow_mut().unwritten_bytes);
    router.registries().limits.sub_pending_output(unwritten);
    router.unregister(conn_id);
    tracing::debug!(%peer, conn = ?conn_id, protocol = W::NAME, "connection closed");
}

/// Spawns one of the connection's tasks. A task that returns has already arranged
/// what follows (a close after flush, or `finish`); one that panics finishes the
/// connection, so only this connection is lost.
fn guarded<W: Wire>(
    shared: &Rc<Shared<W>>,
    name: &'static str,
    fut: impl Future<Output = ()> + 'static,
) -> Task<()> {
    let shared = shared.clone();
    Task::spawn(async move {
        if AssertUnwindSafe(fut).catch_unwind().await.is_err() {
            tracing::error!(task = name, protocol = W::NAME, "connection task panicked");
            shared.finish();
        }
    })
}

async fn read_loop<W: Wire>(shared: Rc<Shared<W>>, mut rd: ReadHalf, mut decoder: W::Decoder) {
    let mut buf = BytesMut::with_capacity(READ_CHUNK_BYTES);
    let mut chunk = vec![0u8; READ_CHUNK_BYTES];
    loop {
        // Decode everything buffered, one item at a time, honouring flow control
        // between items (a paused session must not see the items already read).
        loop {
            if !wait_until_readable(&shared).await {
                return;
            }
            match W::decode(&mut decoder, &mut buf) {
                Ok(Some(item)) => shared.feed(|w| w.on_item(item, &mut decoder)),
                Ok(None) => break,
                Err(e) => {
                    shared.feed(|w| w.on_decode_error(e));
                    return;
                }
            }
            // A buffer full of small frames must not starve the shard's other work.
            yield_if_needed().await;
        }
        match rd.read(&mut chunk).await {
            Ok(0) => {
                tracing::debug!(protocol = W::NAME, "peer closed");
                shared.finish();
                return;
            }
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                shared.conn.borrow_mut().last_read = Instant::now();
            }
            Err(e) => {
                tracing::debug!(protocol = W::NAME, error = %e, "read failed");
                shared.finish();
                return;
            }
        }
    }
}

/// Waits while reading is paused. False once the connection is closing or finished.
async fn wait_until_readable<W: Wire>(shared: &Shared<W>) -> bool {
    loop {
        let (paused, stop) = {
            let c = shared.conn.borrow();
            (c.reading_paused, c.closing || c.finished)
        };
        if stop {
            return false;
        }
        if !paused {
            return true;
        }
        shared.reader.wait().await;
    }
}

async fn event_loop<W: Wire>(shared: Rc<Shared<W>>, events: ConnEvents) {
    while let Some(event) = events.recv().await {
        let delivery = match &event {
            Event::Deliver(d) => Some((
                shared.router.shard_of(&d.destination),
                d.sub,
                d.msg.memory_size() as u64,
            )),
            _ => None,
        };
        shared.feed(|w| w.on_event(event));
        if let Some((shard, sub, bytes)) = delivery {
            shared.delivered(shard, sub, bytes);
        }
        yield_if_needed().await;
    }
}

async fn write_loop<W: Wire>(shared: &Shared<W>, mut wr: WriteHalf) {
    loop {
        let (buf, written_upto) = {
            let mut c = shared.conn.borrow_mut();
            if c.finished || (c.closing && c.out.is_empty()) {
                break;
            }
            if c.out.is_empty() {
                None
            } else {
                // Everything encoded so far, as one write.
                Some((c.out.split(), c.wire.units_emitted()))
            }
        }
        .unzip();
        let (Some(buf), Some(upto)) = (buf, written_upto) else {
            shared.writer.wait().await;
            continue;
        };
        if let Err(e) = wr.write_all(&buf).await {
            tracing::debug!(protocol = W::NAME, error = %e, "write failed");
            break;
        }
        shared.conn.borrow_mut().last_write = Instant::now();
        shared.feed(|w| w.on_written(upto));
        shared.written(upto);
    }
    shared.finish();
    wr.shutdown().await;
}

async fn timer_loop<W: Wire>(shared: Rc<Shared<W>>, login_deadline: Instant) {
    loop {
        let now = Instant::now();
        let wake_at = {
            let mut guard = shared.conn.borrow_mut();
            let c = &mut *guard;
            if c.finished || c.closing {
                return;
            }
            let mut wake_at: Option<Instant> = None;
            let mut earliest = |t: Instant| {
                wake_at = Some(wake_at.map_or(t, |w| w.min(t)));
            };
            if !c.wire.is_logged_in() {
                // A stranger may hold a connection slot only this long (slow-loris).
                if now >= login_deadline {
                    tracing::debug!(
                        protocol = W::NAME,
                        "no login within transport.connectAttemptTimeout; closed"
                    );
                    drop(guard);
                    shared.finish();
                    return;
                }
                earliest(login_deadline);
            }
            if c.wire.is_established() {
                if let Some(every) = c.send_every {
                    let due = c.last_write + every;
                    if now >= due {
                        if c.out.is_empty() {
                            c.wire.encode_keep_alive(&mut c.out);
                            shared.writer.notify();
                        }
                        // Counted from now so a slow write does not queue more.
                        c.last_write = now;
                        earliest(now + every);
                    } else {
                        earliest(due);
                    }
                }
                if let (Some(timeout), false) = (c.receive_timeout, c.reading_paused) {
                    let due = c.last_read + timeout;
                    if now >= due {
                        drop(guard);
                        shared.feed(|w| w.on_receive_timeout());
                        continue;
                    }
                    earliest(due);
                }
                if let Some(wait) = c.wire.deadline() {
                    if wait.is_zero() {
                        drop(guard);
                        shared.feed(|w| w.on_deadline());
                        continue;
                    }
                    earliest(now + wait);
                }
            }
            wake_at
        };
        match wake_at {
            Some(at) => {
                let nap = at.saturating_duration_since(Instant::now());
                futures_lite::future::or(sleep(nap), shared.timer.wait()).await;
            }
            None => shared.timer.wait().await,
        }
    }
}
