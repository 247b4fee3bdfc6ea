//! What every handshake needs, whatever the protocol: the TCP connect (and TLS
//! handshake, for an `ssl` scheme), a read loop bounded by the attempt's deadline, and
//! [`AttemptError`] (why one attempt failed).

use std::io::{ErrorKind, Read};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use super::super::policy::Attempt;
use super::super::stream::ClientStream;
use super::super::ClientError;
use crate::uri::TransportUri;

/// Why one attempt failed: `refused` is the broker's answer (ERROR,
/// ExceptionResponse: it is up but will not serve us).
pub struct AttemptError {
    pub reason: String,
    pub refused: bool,
}

impl<T> From<AttemptError> for Attempt<T> {
    fn from(e: AttemptError) -> Attempt<T> {
        if e.refused {
            Attempt::Refused(e.reason)
        } else {
            Attempt::Failed(e.reason)
        }
    }
}

pub fn failed(reason: impl Into<String>) -> AttemptError {
    AttemptError {
        reason: reason.into(),
        refused: false,
    }
}

/// Whether `uri` asks for TLS: the `ssl` schemes (`ssl`, `nio+ssl`, `stomp+ssl`,
/// `stomp+nio+ssl`).
pub fn uses_tls(uri: &TransportUri) -> bool {
    uri.scheme.is_tls()
}

/// TCP connect to `uri` within `timeout`, TCP_NODELAY on; for a TLS URI (see
/// [`uses_tls`]) then the TLS handshake with `tls`, also within `timeout` (the whole
/// attempt shares one deadline).
pub fn connect(
    uri: &TransportUri,
    timeout: Duration,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<ClientStream, AttemptError> {
    let deadline = Instant::now() + timeout;
    let stream = TcpStream::connect_timeout(&uri.addr, timeout)
        .map_err(|e| failed(format!("{uri}: {e}")))?;
    let _ = stream.set_nodelay(true);
    if !uses_tls(uri) {
        return Ok(ClientStream::Plain(stream));
    }
    // `Handle::start` refuses a TLS URL without a config before any attempt; this is
    // the same check where it matters.
    let Some(config) = tls else {
        return Err(failed(
            ClientError::TlsNotConfigured(uri.to_string()).to_string(),
        ));
    };
    ClientStream::tls(stream, config, &uri.host, deadline)
        .map_err(|e| failed(format!("{uri}: {e}")))
}

/// Why [`read_until`] stopped without an answer (the caller words it).
pub enum ReadFail {
    /// The deadline passed (the stream was shut down).
    Timeout,
    /// The broker closed the connection.
    Closed,
    Io(std::io::Error),
}

/// Reads into `buf` until `step` (which decodes what is buffered) finds the answer or
/// fails, or the deadline passes. `describe` words a [`ReadFail`].
pub fn read_until<T>(
    stream: &mut ClientStream,
    buf: &mut BytesMut,
    deadline: Instant,
    mut step: impl FnMut(&mut BytesMut, &mut ClientStream) -> Result<Option<T>, AttemptError>,
    describe: impl Fn(ReadFail) -> String,
) -> Result<T, AttemptError> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(t) = step(buf, stream)? {
            return Ok(t);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let _ = stream.shutdown(Shutdown::Both);
            return Err(failed(describe(ReadFail::Timeout)));
        }
        let _ = stream.set_read_timeout(Some(left.max(Duration::from_millis(1))));
        match stream.read(&mut chunk) {
            Ok(0) => return Err(failed(describe(ReadFail::Closed))),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => return Err(failed(describe(ReadFail::Io(e)))),
        }
    }
}
