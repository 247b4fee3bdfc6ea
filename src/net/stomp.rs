//! STOMP connections: the accept loop and the per-connection loop.
//!
//! A connection runs four pieces on its shard's executor, sharing one
//! `Rc<Shared>` (its `RefCell` is never borrowed across an `.await`):
//!
//! * reader task: socket -> `Decoder` -> `Session::on_frame`; waits while the session
//!   has paused reading (producer flow control) and stops once a close is requested;
//! * event task: `ConnEvents` (deliveries, completions) -> `Session::on_event`;
//! * timer task: CONNECT timeout, heart-beat sending and the receive timeout;
//! * writer (the connection's own future): takes everything encoded so far as one
//!   buffer per write (glommio has no vectored send), then tells the session what is
//!   on the wire (`on_written`, which auto-acknowledges).
//!
//! Whichever ends the connection (EOF, socket error, close after flush, a timeout, a
//! panic) sets `finished`; the writer then returns, the other tasks are cancelled by
//! dropping them, and the connection is unregistered from the broker (which returns its
//! unacknowledged deliveries and drops its temporary destinations).

use std::cell::RefCell;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures_lite::FutureExt;

use crate::broker::{BrokerSettings, ConnEvents, Router};
use crate::protocol::stomp::session::{Action, Session, SessionContext};
use crate::protocol::stomp::{encode, encode_heartbeat, DecodedItem, Decoder, Limits};
use crate::rt::exec::Task;
use crate::rt::net::{Listener, ReadHalf, WriteHalf};
use crate::rt::{sleep, spawn_local as spawn, yield_if_needed};

use super::signal::Signal;

/// Bytes asked of the socket per read.
const READ_CHUNK_BYTES: usize = 16 * 1024;
/// Pause after a failed accept (e.g. EMFILE) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// What one transport connector allows, shared by every shard that accepts on it.
pub struct ConnectorPolicy {
    pub name: String,
    /// `?maximumConnections=N`: connections beyond it are closed at once.
    pub max_connections: Option<usize>,
    /// `?wireFormat.maxFrameSize=` (or the broker-wide limit).
    pub max_frame_bytes: usize,
    /// Connections open on this connector, across shards.
    pub open: AtomicUsize,
    /// Where a connection that opens with a replication Hello goes (the replication
    /// core); `None`: such a connection is closed.
    pub replication: Option<Arc<dyn Fn(std::net::TcpStream) + Send + Sync>>,
    /// Clients are served only while this is set (`waitForSlave` holds them until a
    /// slave is in sync); a client connecting meanwhile waits.
    pub clients_open: Arc<AtomicBool>,
}

impl std::fmt::Debug for ConnectorPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectorPolicy")
            .field("name", &self.name)
            .field("max_connections", &self.max_connections)
            .field("max_frame_bytes", &self.max_frame_bytes)
            .field("open", &self.open)
            .field("replication", &self.replication.is_some())
            .field("clients_open", &self.clients_open)
            .finish()
    }
}

impl ConnectorPolicy {
    pub fn new(name: &str, max_connections: Option<usize>, max_frame_bytes: usize) -> Self {
        ConnectorPolicy {
            name: name.to_owned(),
            max_connections,
            max_frame_bytes,
            open: AtomicUsize::new(0),
            replication: None,
            clients_open: Arc::new(AtomicBool::new(true)),
        }
    }
}

/// Counts a connection against its connector for as long as it lives.
struct Admitted(Arc<ConnectorPolicy>);

impl Admitted {
    fn try_new(policy: &Arc<ConnectorPolicy>) -> Option<Admitted> {
        let before = policy.open.fetch_add(1, Ordering::AcqRel);
        let admitted = Admitted(policy.clone());
        match policy.max_connections {
            Some(max) if before >= max => None, // dropping `admitted` gives the slot back
            _ => Some(admitted),
        }
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Accepts STOMP connections on this shard until the listener fails for good; each
/// connection runs in its own tasks, so one connection's failure touches no other.
pub async fn serve_stomp(listener: Listener, router: Router, policy: Arc<ConnectorPolicy>) {
    let boot_nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    loop {
        match listener.accept().await {
            Ok((rd, mut wr, peer)) => {
                let Some(admitted) = Admitted::try_new(&policy) else {
                    tracing::warn!(connector = %policy.name, %peer, "maximumConnections reached; connection refused");
                    spawn(async move { wr.shutdown().await });
                    continue;
                };
                let router = router.clone();
                let frame_limit = policy.max_frame_bytes;
                let policy = policy.clone();
                spawn(async move {
                    match sniff(&rd).await {
                        Opening::Closed => return,
                        Opening::Replication => {
                            match (&policy.replication, rd.into_std(wr)) {
                                (Some(hand_off), Ok(stream)) => hand_off(stream),
                                (None, _) => {
                                    tracing::warn!(%peer, "replication link refused: this node does not accept slaves now")
                                }
                                (_, Err(e)) => {
                                    tracing::warn!(%peer, error = %e, "cannot hand the replication link over")
                                }
                            }
                            return;
                        }
                        Opening::OpenWire => {
                            tracing::warn!(connector = %policy.name, %peer, "OpenWire client refused: this version serves STOMP and replication only");
                            wr.shutdown().await;
                            return;
                        }
                        Opening::Other => {}
                    }
                    // `waitForSlave`: clients wait until the pair is in sync.
                    while !policy.clients_open.load(Ordering::Acquire) {
                        sleep(Duration::from_millis(10)).await;
                    }
                    let run = AssertUnwindSafe(run_connection(
                        rd,
                        wr,
                        peer,
                        router,
                        boot_nanos,
                        frame_limit,
                    ));
                    if run.catch_unwind().await.is_err() {
                        tracing::error!(%peer, "STOMP connection panicked; closed");
                    }
                    drop(admitted);
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "STOMP accept failed");
                sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

/// What a connection's first bytes say it is.
enum Opening {
    Replication,
    OpenWire,
    /// STOMP, or something the STOMP decoder will refuse with an ERROR.
    Other,
    Closed,
}

/// How long a connection may take to send enough bytes to tell what it is.
const SNIFF_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for a connection's first bytes before treating it as STOMP (a
/// slave's Hello, like a client's CONNECT, is its first write).
const FIRST_BYTES_WAIT: Duration = Duration::from_millis(500);

/// Peeks at the first bytes (without consuming them) until they tell a replication
/// Hello or an OpenWire WireFormatInfo from anything else. STOMP frames start with a
/// command or an EOL, which the first five bytes already rule out as either.
async fn sniff(rd: &ReadHalf) -> Opening {
    let started = Instant::now();
    let mut buf = [0u8; 21];
    loop {
        // A silent peer goes to the STOMP loop, whose CONNECT timeout applies.
        let peek = async { Some(rd.peek(&mut buf).await) };
        let quiet = async {
            sleep(FIRST_BYTES_WAIT).await;
            None
        };
        let n = match peek.or(quiet).await {
            None => return Opening::Other,
            Some(Ok(0) | Err(_)) => return Opening::Closed,
            Some(Ok(n)) => n,
        };
        let first = &buf[..n];
        if n >= 13 && first[4] == 1 && &first[5..13] == b"ActiveMQ" {
            return Opening::OpenWire;
        }
        match crate::replication::frame::looks_like_replication(first) {
            Some(true) => return Opening::Replication,
            Some(false) => return Opening::Other,
            // Kind 1 and too few bytes for either magic: OpenWire or replication.
            None => {}
        }
        if started.elapsed() > SNIFF_TIMEOUT {
            return Opening::Other;
        }
        // Fewer bytes than it takes to tell: wait for more (rare: a client's first
        // write is a whole frame).
        sleep(Duration::from_millis(2)).await;
    }
}

/// Connection state the tasks share.
struct Conn {
    session: Session<Router>,
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
}

struct Shared {
    conn: RefCell<Conn>,
    router: Router,
    /// Output queued, close requested or finished.
    writer: Signal,
    /// Reading resumed (or finished).
    reader: Signal,
    /// Heart-beat settings changed (or finished).
    timer: Signal,
}

impl Shared {
    /// Runs `input` against the session and carries out the actions it queued.
    fn feed(&self, input: impl FnOnce(&mut Session<Router>)) {
        let mut c = self.conn.borrow_mut();
        if c.finished {
            return;
        }
        input(&mut c.session);
        let actions = c.session.take_actions();
        for action in actions {
            match action {
                Action::Write(frame) => {
                    let version = c.session.version();
                    encode(&frame, version, &mut c.out);
                    self.writer.notify();
                }
                Action::Post { shard, request } => self.router.post(shard, request),
                Action::Negotiated {
                    send_every,
                    receive_timeout,
                    ..
                } => {
                    c.send_every = send_every;
                    c.receive_timeout = receive_timeout;
                    c.last_read = Instant::now();
                    self.timer.notify();
                }
                Action::PauseReading => c.reading_paused = true,
                Action::ResumeReading => {
                    c.reading_paused = false;
                    // Time spent paused is ours, not the client's silence.
                    c.last_read = Instant::now();
                    self.reader.notify();
                }
                Action::Close => {
                    c.closing = true;
                    self.writer.notify();
                }
            }
        }
    }

    fn finish(&self) {
        self.conn.borrow_mut().finished = true;
        self.writer.notify();
        self.reader.notify();
        self.timer.notify();
    }
}

async fn run_connection(
    rd: ReadHalf,
    wr: WriteHalf,
    peer: SocketAddr,
    router: Router,
    boot_nanos: u64,
    max_frame_bytes: usize,
) {
    let (conn_id, events) = router.register();
    let settings = router.settings().clone();
    tracing::debug!(%peer, conn = ?conn_id, "STOMP connection accepted");
    let ctx = SessionContext {
        conn: conn_id,
        shard_count: router.shard_count(),
        settings: settings.clone(),
        boot_nanos,
    };
    let now = Instant::now();
    let shared = Rc::new(Shared {
        conn: RefCell::new(Conn {
            session: Session::new(ctx, router.clone()),
            out: BytesMut::with_capacity(READ_CHUNK_BYTES),
            reading_paused: false,
            closing: false,
            finished: false,
            send_every: None,
            receive_timeout: None,
            last_read: now,
            last_write: now,
        }),
        router: router.clone(),
        writer: Signal::default(),
        reader: Signal::default(),
        timer: Signal::default(),
    });
    let reader = guarded(
        &shared,
        "reader",
        read_loop(shared.clone(), rd, limits(&settings, max_frame_bytes)),
    );
    let pump = guarded(&shared, "events", event_loop(shared.clone(), events));
    let timer = guarded(
        &shared,
        "timer",
        timer_loop(shared.clone(), settings.connect_timeout),
    );
    write_loop(&shared, wr).await;
    // Cancel the other tasks before the session learns the connection is gone.
    drop((reader, pump, timer));
    shared.conn.borrow_mut().session.on_closed();
    router.unregister(conn_id);
    tracing::debug!(%peer, conn = ?conn_id, "STOMP connection closed");
}

/// Spawns one of the connection's tasks. A task that returns has already arranged
/// what follows (a close after flush, or `finish`); one that panics finishes the
/// connection, so only this connection is lost.
fn guarded(
    shared: &Rc<Shared>,
    name: &'static str,
    fut: impl Future<Output = ()> + 'static,
) -> Task<()> {
    let shared = shared.clone();
    Task::spawn(async move {
        if AssertUnwindSafe(fut).catch_unwind().await.is_err() {
            tracing::error!(task = name, "STOMP connection task panicked");
            shared.finish();
        }
    })
}

fn limits(settings: &BrokerSettings, max_frame_bytes: usize) -> Limits {
    Limits {
        max_frame_bytes,
        max_header_bytes: settings.max_header_bytes,
        max_headers: settings.max_headers,
        ..Limits::default()
    }
}

async fn read_loop(shared: Rc<Shared>, mut rd: ReadHalf, limits: Limits) {
    let mut decoder = Decoder::new(limits);
    let mut buf = BytesMut::with_capacity(READ_CHUNK_BYTES);
    let mut chunk = vec![0u8; READ_CHUNK_BYTES];
    loop {
        // Decode everything buffered, one frame at a time, honouring flow control
        // between frames (a paused session must not see the frames already read).
        loop {
            if !wait_until_readable(&shared).await {
                return;
            }
            match decoder.decode(&mut buf) {
                Ok(Some(DecodedItem::Frame(frame))) => {
                    shared.feed(|s| s.on_frame(frame));
                    let version = shared.conn.borrow().session.version();
                    decoder.set_version(version);
                }
                Ok(Some(DecodedItem::HeartBeat)) => {}
                Ok(None) => break,
                Err(e) => {
                    shared.feed(|s| s.on_decode_error(e));
                    return;
                }
            }
            // A buffer full of small frames must not starve the shard's other work.
            yield_if_needed().await;
        }
        match rd.read(&mut chunk).await {
            Ok(0) => {
                tracing::debug!("STOMP peer closed");
                shared.finish();
                return;
            }
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                shared.conn.borrow_mut().last_read = Instant::now();
            }
            Err(e) => {
                tracing::debug!(error = %e, "STOMP read failed");
                shared.finish();
                return;
            }
        }
    }
}

/// Waits while reading is paused. False once the connection is closing or finished.
async fn wait_until_readable(shared: &Shared) -> bool {
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

async fn event_loop(shared: Rc<Shared>, events: ConnEvents) {
    while let Some(event) = events.recv().await {
        shared.feed(|s| s.on_event(event));
        yield_if_needed().await;
    }
}

async fn write_loop(shared: &Shared, mut wr: WriteHalf) {
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
                Some((c.out.split(), c.session.frames_emitted()))
            }
        }
        .unzip();
        let (Some(buf), Some(upto)) = (buf, written_upto) else {
            shared.writer.wait().await;
            continue;
        };
        if let Err(e) = wr.write_all(&buf).await {
            tracing::debug!(error = %e, "STOMP write failed");
            break;
        }
        shared.conn.borrow_mut().last_write = Instant::now();
        shared.feed(|s| s.on_written(upto));
    }
    shared.finish();
    wr.shutdown().await;
}

async fn timer_loop(shared: Rc<Shared>, connect_timeout: Duration) {
    let started = Instant::now();
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
            if !c.session.is_connected() {
                let deadline = started + connect_timeout;
                if now >= deadline {
                    tracing::debug!("STOMP CONNECT timeout");
                    drop(guard);
                    shared.finish();
                    return;
                }
                earliest(deadline);
            } else {
                if let Some(every) = c.send_every {
                    let due = c.last_write + every;
                    if now >= due {
                        if c.out.is_empty() {
                            encode_heartbeat(&mut c.out);
                            shared.writer.notify();
                        }
                        // Counted from now so a slow write does not queue more EOLs.
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
                        shared.feed(|s| s.on_heartbeat_timeout());
                        continue;
                    }
                    earliest(due);
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

#[cfg(test)]
#[path = "stomp_tests.rs"]
mod tests;
