//! Opening one OpenWire connection: TCP connect, the WireFormatInfo exchange, then the
//! ConnectionInfo and its Response. Bounded by the connect timeout end to end.
//!
//! The real client pipelines its whole restore after the ConnectionInfo; this one waits
//! for the ConnectionInfo's answer first, so a refused login (a SecurityException) is
//! known per attempt and the next URI can be tried before anything else is written.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use bytes::BytesMut;

use super::state::exception_text;
use super::OpenWireOptions;
use crate::protocol::openwire::wireformat::{
    CACHE_ENABLED, CACHE_SIZE, MAX_FRAME_SIZE, MAX_FRAME_SIZE_ENABLED, MAX_INACTIVITY_DURATION,
    MAX_INACTIVITY_DURATION_INITIAL_DELAY, PLATFORM_DETAILS, PROVIDER_NAME, PROVIDER_VERSION,
    SIZE_PREFIX_DISABLED, STACK_TRACE_ENABLED, TCP_NO_DELAY_ENABLED, TIGHT_ENCODING_ENABLED,
};
use crate::protocol::openwire::{
    Command, ConnectionControl, ConnectionInfo, Decoder, Encoder, PrimitiveValue, WireFormatInfo,
};
use crate::uri::TransportUri;

/// OpenWire version we advertise (the real 5.17 client's).
const VERSION: i32 = 12;

/// A connection whose ConnectionInfo was answered.
pub(super) struct Opened {
    /// The socket; the reader keeps this one, writers use a clone.
    pub stream: TcpStream,
    /// Bytes read past the ConnectionInfo's Response.
    pub buf: BytesMut,
    pub decoder: Decoder,
    pub encoder: Encoder,
    /// Negotiated MaxInactivityDuration, ms (<= 0: keep-alive off).
    pub inactivity_ms: i64,
}

/// Why one attempt failed: `refused` is the broker's ExceptionResponse (it is up but
/// will not serve us).
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

/// Our WireFormatInfo: what the 5.17 client sends, but loose and without the marshal
/// cache (the only format Tandem's codec has; the broker ANDs both, OPENWIRE.md §1.4),
/// and without stack traces.
pub(super) fn wire_format(opts: &OpenWireOptions) -> WireFormatInfo {
    let options = [
        (TIGHT_ENCODING_ENABLED, PrimitiveValue::Boolean(false)),
        (CACHE_ENABLED, PrimitiveValue::Boolean(false)),
        (CACHE_SIZE, PrimitiveValue::Int(0)),
        (SIZE_PREFIX_DISABLED, PrimitiveValue::Boolean(false)),
        (STACK_TRACE_ENABLED, PrimitiveValue::Boolean(false)),
        (TCP_NO_DELAY_ENABLED, PrimitiveValue::Boolean(true)),
        (
            MAX_INACTIVITY_DURATION,
            PrimitiveValue::Long(opts.max_inactivity_ms),
        ),
        (
            MAX_INACTIVITY_DURATION_INITIAL_DELAY,
            PrimitiveValue::Long(10_000),
        ),
        (MAX_FRAME_SIZE, PrimitiveValue::Long(i64::MAX)),
        (MAX_FRAME_SIZE_ENABLED, PrimitiveValue::Boolean(true)),
        (PROVIDER_NAME, PrimitiveValue::string("Tandem")),
        (
            PROVIDER_VERSION,
            PrimitiveValue::string(env!("CARGO_PKG_VERSION")),
        ),
        (PLATFORM_DETAILS, PrimitiveValue::string("Rust")),
    ];
    WireFormatInfo {
        version: VERSION,
        options: options.into_iter().collect(),
    }
}

/// Reads commands until `done` picks one (or the deadline passes).
fn read_until<T>(
    stream: &mut TcpStream,
    decoder: &mut Decoder,
    buf: &mut BytesMut,
    deadline: Instant,
    uri: &TransportUri,
    what: &str,
    mut done: impl FnMut(Command, &mut TcpStream) -> Option<Result<T, AttemptError>>,
) -> Result<T, AttemptError> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        loop {
            match decoder.decode(buf) {
                Ok(Some(c)) => {
                    if let Some(r) = done(c, stream) {
                        return r;
                    }
                }
                Ok(None) => break,
                Err(e) => return Err(failed(format!("{uri}: bad frame awaiting {what}: {e}"))),
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let _ = stream.shutdown(Shutdown::Both);
            return Err(failed(format!("{uri}: no {what} in time")));
        }
        let _ = stream.set_read_timeout(Some(left.max(Duration::from_millis(1))));
        match stream.read(&mut chunk) {
            Ok(0) => return Err(failed(format!("{uri}: closed awaiting {what}"))),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => return Err(failed(format!("{uri}: reading {what}: {e}"))),
        }
    }
}

/// Connects to `uri`, exchanges WireFormatInfos and has `info` answered, within
/// `opts.connect_timeout`. `fault_tolerant`: announce failover with a
/// ConnectionControl first, as the real client's failover transport does on reconnects.
pub(super) fn open(
    uri: &TransportUri,
    opts: &OpenWireOptions,
    info: &ConnectionInfo,
    reconnect: bool,
) -> Result<Opened, AttemptError> {
    let deadline = Instant::now() + opts.connect_timeout;
    let mut stream = TcpStream::connect_timeout(&uri.addr, opts.connect_timeout)
        .map_err(|e| failed(format!("{uri}: {e}")))?;
    let _ = stream.set_nodelay(true);
    let ours = wire_format(opts);
    let mut out = BytesMut::new();
    Encoder::default()
        .encode(&Command::WireFormatInfo(ours.clone()), &mut out)
        .map_err(|e| failed(format!("encoding WireFormatInfo: {e}")))?;
    stream
        .set_write_timeout(Some(opts.connect_timeout))
        .and_then(|_| stream.write_all(&out))
        .map_err(|e| failed(format!("{uri}: sending WireFormatInfo: {e}")))?;

    let mut decoder = Decoder::default();
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let peer = read_until(
        &mut stream,
        &mut decoder,
        &mut buf,
        deadline,
        uri,
        "WireFormatInfo",
        |c, _| match c {
            Command::WireFormatInfo(w) => Some(Ok(w)),
            other => Some(Err(failed(format!(
                "{uri}: {} before WireFormatInfo",
                other.name()
            )))),
        },
    )?;
    let n = ours.negotiate(&peer);
    if !n.is_supported() || n.version < 1 {
        return Err(failed(format!(
            "{uri}: broker negotiated a format this client lacks (tight/cache/no size prefix, version {})",
            n.version
        )));
    }
    decoder.set_version(n.version);
    decoder.set_stack_trace_enabled(n.stack_trace_enabled);
    let encoder = Encoder::new(n.version, n.stack_trace_enabled);

    let mut out = BytesMut::new();
    if reconnect && info.fault_tolerant {
        let control = ConnectionControl {
            fault_tolerant: true,
            ..ConnectionControl::default()
        };
        encoder
            .encode(&Command::ConnectionControl(control), &mut out)
            .map_err(|e| failed(format!("encoding ConnectionControl: {e}")))?;
    }
    encoder
        .encode(&Command::ConnectionInfo(info.clone()), &mut out)
        .map_err(|e| failed(format!("encoding ConnectionInfo: {e}")))?;
    stream
        .write_all(&out)
        .map_err(|e| failed(format!("{uri}: sending ConnectionInfo: {e}")))?;
    let wanted = info.header.command_id;
    read_until(
        &mut stream,
        &mut decoder,
        &mut buf,
        deadline,
        uri,
        "the ConnectionInfo Response",
        |c, s| match c {
            Command::Response(r) if r.correlation_id == wanted => Some(Ok(())),
            Command::ExceptionResponse(e) if e.correlation_id == wanted => {
                let _ = s.shutdown(Shutdown::Both);
                Some(Err(AttemptError {
                    reason: format!("{uri}: {}", exception_text(&e)),
                    refused: true,
                }))
            }
            Command::KeepAliveInfo(k) if k.header.response_required => {
                let mut out = BytesMut::new();
                let reply = Command::KeepAliveInfo(Default::default());
                if encoder.encode(&reply, &mut out).is_ok() {
                    let _ = s.write_all(&out);
                }
                None
            }
            // BrokerInfo, ConnectionControl, ...: informational.
            _ => None,
        },
    )?;
    let _ = stream.set_write_timeout(None);
    Ok(Opened {
        stream,
        buf,
        decoder,
        encoder,
        inactivity_ms: n.max_inactivity_duration_ms,
    })
}
