//! Opening one STOMP connection: TCP connect, CONNECT, wait for CONNECTED. Bounded by
//! the connect timeout end to end.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use bytes::BytesMut;

use super::ClientOptions;
use crate::protocol::stomp::{
    encode, negotiate_heart_beat, parse_heart_beat, Command, DecodedItem, Decoder, Frame, Version,
};
use crate::uri::TransportUri;

/// A connection that has been answered CONNECTED.
pub(super) struct Opened {
    /// The socket; the reader keeps this one, writers use a clone.
    pub stream: TcpStream,
    pub version: Version,
    /// Bytes read past CONNECTED (the broker may already be sending).
    pub buf: BytesMut,
    /// Set to the negotiated version.
    pub decoder: Decoder,
    /// Heart-beat periods, ms: how often we must send, how often the broker will (0 = off).
    pub send_every_ms: u64,
    pub expect_every_ms: u64,
}

/// Why one attempt failed: `refused` is the broker's ERROR (it is up but will not serve us).
pub(super) struct AttemptError {
    pub reason: String,
    pub refused: bool,
}

fn failed(reason: impl Into<String>) -> AttemptError {
    AttemptError {
        reason: reason.into(),
        refused: false,
    }
}

/// Connects to `uri` and completes the CONNECT handshake within `opts.connect_timeout`.
pub(super) fn open(uri: &TransportUri, opts: &ClientOptions) -> Result<Opened, AttemptError> {
    let deadline = Instant::now() + opts.connect_timeout;
    let mut stream = TcpStream::connect_timeout(&uri.addr, opts.connect_timeout)
        .map_err(|e| failed(format!("{uri}: {e}")))?;
    let _ = stream.set_nodelay(true);

    let mut connect = Frame::new(Command::Connect)
        .with_header("accept-version", "1.1,1.2")
        .with_header("host", uri.host.as_str())
        .with_header(
            "heart-beat",
            format!("{},{}", opts.heartbeat_ms.0, opts.heartbeat_ms.1),
        );
    if let Some(login) = &opts.login {
        connect.push_header("login", login.as_str());
    }
    if let Some(passcode) = &opts.passcode {
        connect.push_header("passcode", passcode.as_str());
    }
    if let Some(id) = &opts.client_id {
        connect.push_header("client-id", id.as_str());
    }
    let mut out = BytesMut::new();
    encode(&connect, Version::V1_0, &mut out);
    stream
        .set_write_timeout(Some(opts.connect_timeout))
        .and_then(|_| stream.write_all(&out))
        .map_err(|e| failed(format!("{uri}: sending CONNECT: {e}")))?;

    let mut decoder = Decoder::default();
    let mut buf = BytesMut::with_capacity(8 * 1024);
    let mut chunk = [0u8; 8 * 1024];
    let reply = loop {
        match decoder.decode(&mut buf) {
            Ok(Some(DecodedItem::Frame(f))) => break f,
            Ok(Some(DecodedItem::HeartBeat)) => continue,
            Ok(None) => {}
            Err(e) => return Err(failed(format!("{uri}: bad reply to CONNECT: {e}"))),
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let _ = stream.shutdown(Shutdown::Both);
            return Err(failed(format!("{uri}: no reply to CONNECT in time")));
        }
        let _ = stream.set_read_timeout(Some(left.max(Duration::from_millis(1))));
        match stream.read(&mut chunk) {
            Ok(0) => return Err(failed(format!("{uri}: closed before CONNECTED"))),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => return Err(failed(format!("{uri}: reading CONNECTED: {e}"))),
        }
    };
    match reply.command {
        Command::Connected => {}
        Command::Error => {
            let _ = stream.shutdown(Shutdown::Both);
            return Err(AttemptError {
                reason: format!(
                    "{uri}: {}",
                    reply.header("message").unwrap_or("ERROR without a message")
                ),
                refused: true,
            });
        }
        other => return Err(failed(format!("{uri}: {other} instead of CONNECTED"))),
    }
    let version = match reply.header("version") {
        None => Version::V1_0,
        Some(v) => Version::parse(v).ok_or_else(|| failed(format!("{uri}: version {v:?}")))?,
    };
    decoder.set_version(version);
    let server_hb = match reply.header("heart-beat") {
        None => (0, 0),
        Some(v) => parse_heart_beat(v).map_err(|e| failed(format!("{uri}: {e}")))?,
    };
    // The broker's view, swapped: what it sends is what we expect.
    let (broker_sends_ms, broker_expects_ms) = negotiate_heart_beat(opts.heartbeat_ms, server_hb);
    let _ = stream.set_write_timeout(None);
    Ok(Opened {
        stream,
        version,
        buf,
        decoder,
        send_every_ms: broker_expects_ms,
        expect_every_ms: broker_sends_ms,
    })
}
