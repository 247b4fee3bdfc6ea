//! The client's I/O thread, for either protocol: reads the current connection, keeps
//! the keep-alive rule both ways, and on a lost connection runs the failover policy and
//! replays the session onto the new connection before any caller may write.

use std::io::{ErrorKind, Read};
use std::net::Shutdown;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use super::super::policy::{after_loss, connect_loop, pause_unless_closed, Attempt};
use super::{lock, ClientError, Inner, Opened, Protocol};

/// Read timeout when no keep-alive needs a finer tick; only bounds how long a stuck
/// read goes unchecked (close() shuts the socket, which wakes the read at once).
pub const IDLE_TICK: Duration = Duration::from_secs(1);
/// Finest tick, so a tiny negotiated period cannot spin the thread.
pub const MIN_TICK: Duration = Duration::from_millis(10);

/// Body of the I/O thread: serve `conn`, reconnect when it drops, until the client is
/// closed or failover gives up.
pub(super) fn run<P: Protocol>(inner: Arc<Inner<P>>, mut conn: Opened<P>) {
    loop {
        let reason = serve(&inner, &mut conn);
        let _ = conn.stream.shutdown(Shutdown::Both);
        {
            let mut w = lock(&inner.writer);
            w.drop_stream();
            lock(&inner.state).connected = false;
        }
        inner.changed.notify_all();
        if lock(&inner.state).closed {
            return;
        }
        tracing::info!("{}connection lost: {reason}", P::LOG);
        let next = after_loss(&inner.uri, inner.failover, reason, || {
            establish(&inner, false)
        });
        match next {
            Ok(c) => conn = c,
            Err(e) => {
                tracing::warn!("{}client gives up: {e}", P::LOG);
                lock(&inner.state).fail_all(e);
                inner.changed.notify_all();
                return;
            }
        }
    }
}

/// Reads until the connection is lost; returns why. Writes a keep-alive when nothing
/// was written for `send_every` (or the broker asked for one), and counts the broker as
/// gone when nothing arrived for `dead_after`.
fn serve<P: Protocol>(inner: &Inner<P>, conn: &mut Opened<P>) -> String {
    let send_every = conn.send_every;
    let dead_after = conn.dead_after;
    if conn.stream.set_read_timeout(Some(conn.tick)).is_err() {
        return "cannot set a read timeout".into();
    }
    let mut last_read = Instant::now();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        // Everything already buffered, under one lock.
        let delivered;
        let keep_alive_due;
        {
            let mut st = lock(&inner.state);
            match P::read_buffered(&mut conn.decoder, &mut conn.buf, &mut st) {
                Ok(d) => delivered = d,
                Err(reason) => {
                    drop(st);
                    inner.changed.notify_all();
                    return reason;
                }
            }
            if st.closed {
                return "closed".into();
            }
            keep_alive_due = st.keep_alive_due;
        }
        if delivered {
            inner.changed.notify_all();
        }
        // TLS records queued by the reads (a KeyUpdate answer) that no write took yet.
        let tls_due = conn.stream.wants_write();
        // try_lock: a writer blocked on a full socket is traffic anyway, and the reader
        // must never wait for it (the broker may be waiting for us to read).
        if keep_alive_due || !send_every.is_zero() || tls_due {
            if let Ok(mut w) = inner.writer.try_lock() {
                if tls_due {
                    let _ = w.flush();
                }
                let idle = !send_every.is_zero() && w.last_write.elapsed() >= send_every;
                if w.stream.is_some() && (keep_alive_due || idle) {
                    let mut out = BytesMut::new();
                    if P::keep_alive(&w.codec, &mut out).is_ok() {
                        let _ = w.write(&out);
                    }
                    if keep_alive_due {
                        lock(&inner.state).keep_alive_due = false;
                    }
                }
            }
        }
        if !dead_after.is_zero() && last_read.elapsed() > dead_after {
            return format!("{} {:?}", P::SILENT, last_read.elapsed());
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
pub(super) fn establish<P: Protocol>(
    inner: &Inner<P>,
    first: bool,
) -> Result<Opened<P>, ClientError> {
    connect_loop(
        &inner.uri,
        inner.failover,
        |target| {
            if lock(&inner.state).closed {
                return Attempt::Closed;
            }
            match P::open(inner, target, first) {
                Attempt::Connected(opened) => match install(inner, opened, first) {
                    Ok(opened) => Attempt::Connected(opened),
                    Err(reason) => Attempt::Failed(reason),
                },
                other => other,
            }
        },
        |delay| pause_unless_closed(&inner.state, &inner.changed, delay, |s| s.closed),
    )
}

/// Replays the session onto `opened` and makes it the current connection. The writer
/// lock is held throughout, so no caller's frame can slip in between the replay and
/// the install (which would reorder it before replayed frames, or before the session
/// it needs).
fn install<P: Protocol>(
    inner: &Inner<P>,
    opened: Opened<P>,
    first: bool,
) -> Result<Opened<P>, String> {
    let mut w = lock(&inner.writer);
    let write_half = opened
        .stream
        .write_half()
        .map_err(|e| format!("clone socket: {e}"))?;
    let items = {
        let mut st = lock(&inner.state);
        if st.closed {
            return Err("client closed".into());
        }
        P::replay(&mut st)
    };
    // Waiters settled by the replay (acks, a commit in doubt) may be waiting.
    inner.changed.notify_all();
    let mut out = BytesMut::new();
    for item in &items {
        if let Err(e) = P::encode(&opened.codec, item, &mut out) {
            // Cannot happen for what encoded once; drop the one and go on.
            tracing::warn!("replaying {}: {e}", P::describe(item));
        }
    }
    w.stream = Some(write_half);
    w.codec = opened.codec;
    if !out.is_empty() {
        // Bounded: this thread is also the reader, and the broker answers replayed
        // frames while we write; a stuck write must not hang the client.
        let timeout = P::connect_timeout(&inner.opts);
        let written = opened
            .stream
            .set_write_timeout(Some(timeout))
            .and_then(|_| w.write(&out))
            .and_then(|_| opened.stream.set_write_timeout(None));
        if let Err(e) = written {
            w.drop_stream();
            return Err(format!("replaying {} {}: {e}", items.len(), P::UNIT));
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
