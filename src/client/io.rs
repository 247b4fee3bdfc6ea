//! The client's I/O thread: reads the current connection, keeps heart-beats, and on a
//! lost connection runs the failover policy and rebuilds the session.

use std::io::{ErrorKind, Read};
use std::net::Shutdown;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use super::conn::{self, Opened};
use super::policy::{after_loss, connect_loop, pause_unless_closed, Attempt};
use super::{lock, ClientError, Inner};
use crate::protocol::stomp::{encode, DecodedItem};

/// Read timeout when no heart-beat needs a finer tick; only bounds how long a stuck
/// read goes unchecked (close() shuts the socket, which wakes the read at once).
const IDLE_TICK: Duration = Duration::from_secs(1);
/// Finest heart-beat tick, so a tiny negotiated period cannot spin the thread.
const MIN_TICK: Duration = Duration::from_millis(10);

/// Body of the I/O thread: serve `conn`, reconnect when it drops, until the client is
/// closed or failover gives up.
pub(super) fn run(inner: Arc<Inner>, mut conn: Opened) {
    loop {
        let reason = serve(&inner, &mut conn);
        let _ = conn.stream.shutdown(Shutdown::Both);
        {
            let mut w = lock(&inner.writer);
            if let Some(s) = w.stream.take() {
                let _ = s.shutdown(Shutdown::Both);
            }
            lock(&inner.state).connected = false;
        }
        inner.changed.notify_all();
        if lock(&inner.state).closed {
            return;
        }
        tracing::info!("connection lost: {reason}");
        let next = after_loss(&inner.uri, inner.failover, reason, || {
            establish(&inner, false)
        });
        match next {
            Ok(c) => conn = c,
            Err(e) => {
                tracing::warn!("client gives up: {e}");
                lock(&inner.state).fail_all(e);
                inner.changed.notify_all();
                return;
            }
        }
    }
}

/// Reads frames until the connection is lost; returns why.
fn serve(inner: &Inner, conn: &mut Opened) -> String {
    let send_every = Duration::from_millis(conn.send_every_ms);
    let expect_every = Duration::from_millis(conn.expect_every_ms);
    let tick = [send_every / 2, expect_every]
        .into_iter()
        .filter(|d| !d.is_zero())
        .min()
        .map_or(IDLE_TICK, |d| d.max(MIN_TICK));
    if conn.stream.set_read_timeout(Some(tick)).is_err() {
        return "cannot set a read timeout".into();
    }
    let mut last_read = Instant::now();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        // Everything already buffered, under one lock.
        let mut delivered = false;
        {
            let mut st = lock(&inner.state);
            loop {
                match conn.decoder.decode(&mut conn.buf) {
                    Ok(Some(DecodedItem::Frame(f))) => {
                        delivered = true;
                        if !st.on_frame(f) {
                            drop(st);
                            inner.changed.notify_all();
                            return "broker sent ERROR".into();
                        }
                    }
                    Ok(Some(DecodedItem::HeartBeat)) => {}
                    Ok(None) => break,
                    Err(e) => return format!("bad frame from broker: {e}"),
                }
            }
            if st.closed {
                return "closed".into();
            }
        }
        if delivered {
            inner.changed.notify_all();
        }
        if !send_every.is_zero() {
            // try_lock: a writer blocked on a full socket is traffic anyway, and the
            // reader must never wait for it (the broker may be waiting for us to read).
            if let Ok(mut w) = inner.writer.try_lock() {
                if w.stream.is_some() && w.last_write.elapsed() >= send_every {
                    let _ = w.write(b"\n");
                }
            }
        }
        if !expect_every.is_zero() && last_read.elapsed() > expect_every * 2 {
            return format!(
                "no heart-beat from the broker for {:?}",
                last_read.elapsed()
            );
        }
        match conn.stream.read(&mut chunk) {
            Ok(0) => return "closed by the broker".into(),
            Ok(n) => {
                conn.buf.extend_from_slice(&chunk[..n]);
                last_read = Instant::now();
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return format!("read: {e}"),
        }
    }
}

/// Connects as the policy says and rebuilds the session on the new connection.
/// `first`: the initial connect (not counted as a reconnect).
pub(super) fn establish(inner: &Inner, first: bool) -> Result<Opened, ClientError> {
    connect_loop(
        &inner.uri,
        inner.failover,
        |target| {
            if lock(&inner.state).closed {
                return Attempt::Closed;
            }
            match conn::open(target, &inner.opts) {
                Ok(opened) => match install(inner, opened, first) {
                    Ok(opened) => Attempt::Connected(opened),
                    Err(reason) => Attempt::Failed(reason),
                },
                Err(e) if e.refused => Attempt::Refused(e.reason),
                Err(e) => Attempt::Failed(e.reason),
            }
        },
        |delay| pause_unless_closed(&inner.state, &inner.changed, delay, |s| s.closed),
    )
}

/// Replays the session onto `opened` and makes it the current connection. The writer
/// lock is held throughout, so no caller's frame can slip in between the replay and
/// the install (which would reorder it before replayed frames).
fn install(inner: &Inner, opened: Opened, first: bool) -> Result<Opened, String> {
    let mut w = lock(&inner.writer);
    let write_half = opened
        .stream
        .try_clone()
        .map_err(|e| format!("clone socket: {e}"))?;
    let frames = {
        let mut st = lock(&inner.state);
        if st.closed {
            return Err("client closed".into());
        }
        st.replay()
    };
    // Answers to settled receipts may be waiting.
    inner.changed.notify_all();
    let mut out = BytesMut::new();
    for f in &frames {
        encode(f, opened.version, &mut out);
    }
    w.stream = Some(write_half);
    w.version = opened.version;
    if !out.is_empty() {
        // Bounded: this thread is also the reader, and the broker answers replayed
        // frames while we write; a stuck write must not hang the client.
        let timeout = inner.opts.connect_timeout;
        let written = opened
            .stream
            .set_write_timeout(Some(timeout))
            .and_then(|_| w.write(&out))
            .and_then(|_| opened.stream.set_write_timeout(None));
        if let Err(e) = written {
            if let Some(s) = w.stream.take() {
                let _ = s.shutdown(Shutdown::Both);
            }
            return Err(format!("replaying {} frame(s): {e}", frames.len()));
        }
    }
    let mut st = lock(&inner.state);
    st.connected = true;
    if !first {
        st.reconnects += 1;
    }
    drop(st);
    drop(w);
    inner.changed.notify_all();
    Ok(opened)
}
