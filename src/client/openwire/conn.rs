//! The OpenWire adapter of the reconnect/replay core ([`OpenWire`]): opening one
//! connection (TCP connect and, for `ssl://`, the TLS handshake; the WireFormatInfo exchange, then the ConnectionInfo and its
//! Response, bounded by the connect timeout end to end), the inactivity rule, and how
//! commands are encoded, decoded and handed to the state.
//!
//! The real client pipelines its whole restore after the ConnectionInfo; this one waits
//! for the ConnectionInfo's answer first, so a refused login (a SecurityException) is
//! known per attempt and the next URI can be tried before anything else is written.

use std::io::Write;
use std::net::Shutdown;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use super::super::failover::{
    connect, failed, read_until, AttemptError, Inner, Opened, Protocol, ReadFail, IDLE_TICK,
    MIN_TICK,
};
use super::super::lock;
use super::super::policy::Attempt;
use super::super::stream::ClientStream;
use super::state::{exception_text, Outstanding, Session, State};
use super::{ClientError, Message, OpenWireOptions};
use crate::protocol::openwire::{
    Command, ConnectionControl, ConnectionInfo, Decoder, Encoder, WireFormatInfo,
};
use crate::uri::TransportUri;

/// The OpenWire protocol, for the generic client of `super::super::failover`.
pub struct OpenWire;

impl Protocol for OpenWire {
    type Codec = Encoder;
    type Decoder = Decoder;
    type Options = OpenWireOptions;
    type Message = Message;
    type Session = Session;
    type Outstanding = Outstanding;
    type Replayed = Command;

    const LOG: &'static str = "OpenWire ";
    const THREAD: &'static str = "openwire-client-io";
    const UNIT: &'static str = "command(s)";
    const SILENT: &'static str = "broker silent for";

    fn connect_timeout(opts: &OpenWireOptions) -> Duration {
        opts.connect_timeout
    }

    fn tls(opts: &OpenWireOptions) -> Option<&Arc<rustls::ClientConfig>> {
        opts.tls.as_ref()
    }

    fn open(
        inner: &Inner<OpenWire>,
        target: &TransportUri,
        first: bool,
    ) -> Attempt<Opened<OpenWire>> {
        let info = {
            let st = lock(&inner.state);
            let Some(mut info) = st.sess.connection_info.clone().filter(|_| !st.closed) else {
                return Attempt::Closed;
            };
            // The same object, ids and commandId on every connection; only the
            // failover flag differs (OPENWIRE.md §6.1 step 3).
            info.failover_reconnect = !first;
            info
        };
        match open(target, &inner.opts, &info, !first) {
            Ok(opened) => Attempt::Connected(opened),
            Err(e) => e.into(),
        }
    }

    fn replay(st: &mut State) -> Vec<Command> {
        st.replay()
    }

    fn encode(encoder: &Encoder, c: &Command, out: &mut BytesMut) -> Result<(), ClientError> {
        Ok(encoder.encode(c, out)?)
    }

    fn describe(c: &Command) -> &'static str {
        c.name()
    }

    fn read_buffered(
        decoder: &mut Decoder,
        buf: &mut BytesMut,
        st: &mut State,
    ) -> Result<bool, String> {
        let mut delivered = false;
        loop {
            match decoder.decode(buf) {
                Ok(Some(c)) => {
                    delivered = true;
                    st.on_command(c);
                }
                Ok(None) => return Ok(delivered),
                Err(e) => return Err(format!("bad frame from broker: {e}")),
            }
        }
    }

    fn keep_alive(encoder: &Encoder, out: &mut BytesMut) -> Result<(), ClientError> {
        Ok(encoder.encode(&Command::KeepAliveInfo(Default::default()), out)?)
    }

    fn timeout_error(st: &State, seq: u64, waited_ms: u64) -> ClientError {
        ClientError::ResponseTimeout {
            command_id: st
                .outstanding
                .get(&seq)
                .map_or(0, |o| o.command.command_id()),
            waited_ms,
        }
    }
}

/// Our WireFormatInfo: Tandem's (what the 5.17 client sends, but loose and without the
/// marshal cache: the only format Tandem's codec has; the broker ANDs both, OPENWIRE.md
/// §1.4; and without stack traces), with our MaxInactivityDuration and no frame limit.
pub(super) fn wire_format(opts: &OpenWireOptions) -> WireFormatInfo {
    WireFormatInfo::offer(opts.max_inactivity_ms, i64::MAX)
}

/// Decodes buffered commands until `done` picks one (Some) or the buffer runs dry.
fn pick<T>(
    decoder: &mut Decoder,
    buf: &mut BytesMut,
    stream: &mut ClientStream,
    uri: &TransportUri,
    what: &str,
    mut done: impl FnMut(Command, &mut ClientStream) -> Option<Result<T, AttemptError>>,
) -> Result<Option<T>, AttemptError> {
    loop {
        match decoder.decode(buf) {
            Ok(Some(c)) => {
                if let Some(r) = done(c, stream) {
                    return r.map(Some);
                }
            }
            Ok(None) => return Ok(None),
            Err(e) => return Err(failed(format!("{uri}: bad frame awaiting {what}: {e}"))),
        }
    }
}

/// How [`read_until`] failing while awaiting `what` is worded.
fn awaiting(uri: &TransportUri, what: &str) -> impl Fn(ReadFail) -> String {
    let (uri, what) = (uri.to_string(), what.to_string());
    move |fail| match fail {
        ReadFail::Timeout => format!("{uri}: no {what} in time"),
        ReadFail::Closed => format!("{uri}: closed awaiting {what}"),
        ReadFail::Io(e) => format!("{uri}: reading {what}: {e}"),
    }
}

/// Connects to `uri`, exchanges WireFormatInfos and has `info` answered, within
/// `opts.connect_timeout`. `fault_tolerant`: announce failover with a
/// ConnectionControl first, as the real client's failover transport does on reconnects.
fn open(
    uri: &TransportUri,
    opts: &OpenWireOptions,
    info: &ConnectionInfo,
    reconnect: bool,
) -> Result<Opened<OpenWire>, AttemptError> {
    let deadline = Instant::now() + opts.connect_timeout;
    let mut stream = connect(uri, opts.connect_timeout, opts.tls.as_ref())?;
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
    let what = "WireFormatInfo";
    let peer = read_until(
        &mut stream,
        &mut buf,
        deadline,
        |buf, s| {
            pick(&mut decoder, buf, s, uri, what, |c, _| match c {
                Command::WireFormatInfo(w) => Some(Ok(w)),
                other => Some(Err(failed(format!(
                    "{uri}: {} before WireFormatInfo",
                    other.name()
                )))),
            })
        },
        awaiting(uri, what),
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
    let what = "the ConnectionInfo Response";
    read_until(
        &mut stream,
        &mut buf,
        deadline,
        |buf, s| {
            pick(&mut decoder, buf, s, uri, what, |c, s| match c {
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
            })
        },
        awaiting(uri, what),
    )?;
    let _ = stream.set_write_timeout(None);
    // Inactivity (OPENWIRE.md §3.7): with a negotiated MaxInactivityDuration D > 0 we
    // write a KeepAliveInfo when we wrote nothing for D/3, and count the broker as gone
    // when nothing arrived for 2·D (the real client's monitor fires between D and 2·D;
    // brokers write at least every D/3).
    let period = u64::try_from(n.max_inactivity_duration_ms).unwrap_or(0);
    let send_every = Duration::from_millis(period / 3);
    let tick = if period == 0 {
        IDLE_TICK
    } else {
        (send_every / 2).clamp(MIN_TICK, IDLE_TICK)
    };
    Ok(Opened {
        stream,
        buf,
        decoder,
        codec: encoder,
        send_every,
        dead_after: Duration::from_millis(period.saturating_mul(2)),
        tick,
    })
}
