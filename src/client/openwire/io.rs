//! The OpenWire client's I/O thread: reads the current connection, keeps the
//! inactivity rule both ways, and on a lost connection runs the failover policy and
//! rebuilds the session.

use std::io::{ErrorKind, Read};
use std::net::Shutdown;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use super::super::lock;
use super::super::policy::{after_loss, connect_loop, pause_unless_closed, Attempt};
use super::conn::{self, Opened};
use super::{ClientError, Inner};
use crate::protocol::openwire::Command;

/// Read timeout when keep-alive is off; only bounds how long a stuck read goes
/// unchecked (close() shuts the socket, which wakes the read at once).
const IDLE_TICK: Duration = Duration::from_secs(1);
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
        tracing::info!("OpenWire connection lost: {reason}");
        let next = after_loss(&inner.uri, inner.failover, reason, || {
            establish(&inner, false)
        });
        match next {
            Ok(c) => conn = c,
            Err(e) => {
                tracing::warn!("OpenWire client gives up: {e}");
                lock(&inner.state).fail_all(e);
                inner.changed.notify_all();
                return;
            }
        }
    }
}

/// Reads commands until the connection is lost; returns why.
///
/// Inactivity (OPENWIRE.md §3.7): with a negotiated MaxInactivityDuration D > 0 we
/// write a KeepAliveInfo when we wrote nothing for D/3, and count the broker as gone
/// when nothing arrived for 2·D (the real client's monitor fires between D and 2·D;
/// brokers write at least every D/3).
fn serve(inner: &Inner, conn: &mut Opened) -> String {
    let period = u64::try_from(conn.inactivity_ms).unwrap_or(0);
    let send_every = Duration::from_millis(period / 3);
    let expect_within = Duration::from_millis(period.saturating_mul(2));
    let tick = if period == 0 {
        IDLE_TICK
    } else {
        (send_every / 2).clamp(MIN_TICK, IDLE_TICK)
    };
    if conn.stream.set_read_timeout(Some(tick)).is_err() {
        return "cannot set a read timeout".into();
    }
    let mut last_read = Instant::now();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let mut delivered = false;
        let keep_alive_due;
        {
            let mut st = lock(&inner.state);
            loop {
                match conn.decoder.decode(&mut conn.buf) {
                    Ok(Some(c)) => {
                        delivered = true;
                        st.on_command(c);
                    }
                    Ok(None) => break,
                    Err(e) => return format!("bad frame from broker: {e}"),
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
        // try_lock: a writer blocked on a full socket is traffic anyway, and the reader
        // must never wait for it (the broker may be waiting for us to read).
        if keep_alive_due || (!send_every.is_zero()) {
            if let Ok(mut w) = inner.writer.try_lock() {
                let idle = w.last_write.elapsed() >= send_every && !send_every.is_zero();
                if w.stream.is_some() && (keep_alive_due || idle) {
                    let mut out = BytesMut::new();
                    let ka = Command::KeepAliveInfo(Default::default());
                    if w.encoder.encode(&ka, &mut out).is_ok() {
                        let _ = w.write(&out);
                    }
                    lock(&inner.state).keep_alive_due = false;
                }
            }
        }
        if !expect_within.is_zero() && last_read.elapsed() > expect_within {
            return format!("broker silent for {:?}", last_read.elapsed());
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
            let info = {
                let st = lock(&inner.state);
                let Some(mut info) = st.connection_info.clone().filter(|_| !st.closed) else {
                    return Attempt::Closed;
                };
                // The same object, ids and commandId on every connection; only the
                // failover flag differs (OPENWIRE.md §6.1 step 3).
                info.failover_reconnect = !first;
                info
            };
            match conn::open(target, &inner.opts, &info, !first) {
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
/// lock is held throughout, so no caller's command can slip in between the replay and
/// the install (which would put it before the session it needs).
fn install(inner: &Inner, opened: Opened, first: bool) -> Result<Opened, String> {
    let mut w = lock(&inner.writer);
    let write_half = opened
        .stream
        .try_clone()
        .map_err(|e| format!("clone socket: {e}"))?;
    let commands = {
        let mut st = lock(&inner.state);
        if st.closed {
            return Err("client closed".into());
        }
        st.replay()
    };
    // Waiters settled by the replay (acks, a commit in doubt) may be waiting.
    inner.changed.notify_all();
    let mut out = BytesMut::new();
    for c in &commands {
        if let Err(e) = opened.encoder.encode(c, &mut out) {
            // Cannot happen for commands that encoded once; drop the one and go on.
            tracing::warn!("replaying {}: {e}", c.name());
        }
    }
    w.stream = Some(write_half);
    w.encoder = opened.encoder;
    if !out.is_empty() {
        // Bounded: this thread is also the reader, and the broker answers replayed
        // commands while we write; a stuck write must not hang the client.
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
            return Err(format!("replaying {} command(s): {e}", commands.len()));
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
