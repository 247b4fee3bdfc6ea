//! The STOMP adapter of the reconnect/replay core ([`Stomp`]): opening one connection
//! (TCP connect and, for `stomp+ssl://`, the TLS handshake; CONNECT, wait for CONNECTED, bounded by the connect timeout end to
//! end), heart-beat timing, and how frames are encoded, decoded and handed to the
//! state.

use std::io::Write;
use std::net::Shutdown;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use super::super::failover::{
    connect, failed, read_until, AttemptError, Inner, Opened, Protocol, ReadFail, IDLE_TICK,
    MIN_TICK,
};
use super::super::policy::Attempt;
use super::state::{Outstanding, Session, State, RECEIPT_PREFIX};
use super::{ClientError, ClientOptions, Message};
use crate::protocol::stomp::{
    encode, negotiate_heart_beat, parse_heart_beat, Command, DecodedItem, Decoder, Frame, Version,
};
use crate::uri::TransportUri;

/// The STOMP protocol, for the generic client of `super::super::failover`.
pub struct Stomp;

impl Protocol for Stomp {
    type Codec = Version;
    type Decoder = Decoder;
    type Options = ClientOptions;
    type Message = Message;
    type Session = Session;
    type Outstanding = Outstanding;
    type Replayed = Frame;

    const LOG: &'static str = "";
    const THREAD: &'static str = "stomp-client-io";
    const UNIT: &'static str = "frame(s)";
    const SILENT: &'static str = "no heart-beat from the broker for";

    fn connect_timeout(opts: &ClientOptions) -> Duration {
        opts.connect_timeout
    }

    fn tls(opts: &ClientOptions) -> Option<&Arc<rustls::ClientConfig>> {
        opts.tls.as_ref()
    }

    fn open(inner: &Inner<Stomp>, target: &TransportUri, _first: bool) -> Attempt<Opened<Stomp>> {
        match open(target, &inner.opts) {
            Ok(opened) => Attempt::Connected(opened),
            Err(e) => e.into(),
        }
    }

    fn replay(st: &mut State) -> Vec<Frame> {
        st.replay()
    }

    fn encode(version: &Version, frame: &Frame, out: &mut BytesMut) -> Result<(), ClientError> {
        encode(frame, *version, out);
        Ok(())
    }

    fn describe(frame: &Frame) -> &'static str {
        frame.command.as_str()
    }

    fn read_buffered(
        decoder: &mut Decoder,
        buf: &mut BytesMut,
        st: &mut State,
    ) -> Result<bool, String> {
        let mut delivered = false;
        loop {
            match decoder.decode(buf) {
                Ok(Some(DecodedItem::Frame(f))) => {
                    delivered = true;
                    if !st.on_frame(f) {
                        return Err("broker sent ERROR".into());
                    }
                }
                Ok(Some(DecodedItem::HeartBeat)) => {}
                Ok(None) => return Ok(delivered),
                Err(e) => return Err(format!("bad frame from broker: {e}")),
            }
        }
    }

    fn keep_alive(_: &Version, out: &mut BytesMut) -> Result<(), ClientError> {
        out.extend_from_slice(b"\n");
        Ok(())
    }

    fn timeout_error(_: &State, seq: u64, waited_ms: u64) -> ClientError {
        ClientError::ReceiptTimeout {
            receipt: format!("{RECEIPT_PREFIX}{seq}"),
            waited_ms,
        }
    }
}

/// Connects to `uri` and completes the CONNECT handshake within `opts.connect_timeout`.
fn open(uri: &TransportUri, opts: &ClientOptions) -> Result<Opened<Stomp>, AttemptError> {
    let deadline = Instant::now() + opts.connect_timeout;
    let mut stream = connect(uri, opts.connect_timeout, opts.tls.as_ref())?;

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
    let reply = read_until(
        &mut stream,
        &mut buf,
        deadline,
        |buf, _| loop {
            match decoder.decode(buf) {
                Ok(Some(DecodedItem::Frame(f))) => return Ok(Some(f)),
                Ok(Some(DecodedItem::HeartBeat)) => continue,
                Ok(None) => return Ok(None),
                Err(e) => return Err(failed(format!("{uri}: bad reply to CONNECT: {e}"))),
            }
        },
        |fail| match fail {
            ReadFail::Timeout => format!("{uri}: no reply to CONNECT in time"),
            ReadFail::Closed => format!("{uri}: closed before CONNECTED"),
            ReadFail::Io(e) => format!("{uri}: reading CONNECTED: {e}"),
        },
    )?;
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
    // How often we must send, how often the broker will (0 = off).
    let send_every = Duration::from_millis(broker_expects_ms);
    let expect_every = Duration::from_millis(broker_sends_ms);
    let tick = [send_every / 2, expect_every]
        .into_iter()
        .filter(|d| !d.is_zero())
        .min()
        .map_or(IDLE_TICK, |d| d.max(MIN_TICK));
    Ok(Opened {
        stream,
        buf,
        decoder,
        codec: version,
        send_every,
        dead_after: expect_every * 2,
        tick,
    })
}
