//! What every handshake needs, whatever the protocol: the TCP connect, a read loop
//! bounded by the attempt's deadline, and [`AttemptError`] (why one attempt failed).

use std::io::{ErrorKind, Read};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use bytes::BytesMut;

use super::super::policy::Attempt;
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

/// TCP connect to `uri` within `timeout`, TCP_NODELAY on.
pub fn tcp_connect(uri: &TransportUri, timeout: Duration) -> Result<TcpStream, AttemptError> {
    let stream = TcpStream::connect_timeout(&uri.addr, timeout)
        .map_err(|e| failed(format!("{uri}: {e}")))?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
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
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    deadline: Instant,
    mut step: impl FnMut(&mut BytesMut, &mut TcpStream) -> Result<Option<T>, AttemptError>,
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
