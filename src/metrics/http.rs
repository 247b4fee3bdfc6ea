//! The status endpoint's HTTP/1.1 server: std threads (the endpoint never runs on a
//! shard), request heads parsed by `httparse`, one request per connection.
//!
//! Why not a general-purpose server: the one we had (tiny_http) gave every connection
//! its own thread with no limit and no read deadline, so idle connections could
//! exhaust the process. Here every resource is bounded:
//!
//! * at most [`HttpLimits::max_connections`] connections are open; when a new one
//!   arrives at the limit, the oldest connection still waiting for its request is cut
//!   (a slow-loris holds nothing for long), and if every open connection is already
//!   being answered, the new one is closed at once;
//! * the whole request (head and body) must arrive within
//!   [`HttpLimits::read_deadline`] of the accept; a write that stalls for
//!   [`HttpLimits::write_timeout`] ends the connection;
//! * the head is at most [`HttpLimits::max_head_bytes`] and the body
//!   [`HttpLimits::max_body_bytes`] (the endpoint takes no body; it is read and
//!   dropped so the client sees the answer).

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Bounds on the endpoint's connections.
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    pub max_connections: usize,
    pub read_deadline: Duration,
    pub write_timeout: Duration,
    pub max_head_bytes: usize,
    pub max_body_bytes: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_connections: 32,
            read_deadline: Duration::from_secs(5),
            write_timeout: Duration::from_secs(5),
            max_head_bytes: 16 * 1024,
            max_body_bytes: 64 * 1024,
        }
    }
}

/// Headers per request (beyond it: 431).
const MAX_HEADERS: usize = 64;
/// Stack of a connection thread: it parses a head and formats a reply, nothing deep.
const THREAD_STACK_BYTES: usize = 256 * 1024;
/// Pause after a failed accept (EMFILE) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// One parsed request.
#[derive(Debug)]
pub struct Request {
    pub method: String,
    /// The target up to `?`.
    pub path: String,
    /// After `?`, or empty.
    pub query: String,
    headers: Vec<(String, String)>,
    pub peer: SocketAddr,
}

impl Request {
    /// The first header named `name` (case-insensitive), trimmed.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One reply; always sent with `Connection: close`.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    pub headers: Vec<(&'static str, String)>,
}

impl Response {
    pub fn new(status: u16, content_type: &'static str, body: String) -> Response {
        Response {
            status,
            content_type,
            body,
            headers: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }
}

pub type Handler = dyn Fn(&Request) -> Response + Send + Sync;

/// Connections still waiting for their request, oldest first (a clone of each socket,
/// to cut it when the limit is reached), and the count of all open connections.
#[derive(Default)]
struct Open {
    waiting: Mutex<VecDeque<(u64, TcpStream)>>,
    count: AtomicUsize,
}

impl Open {
    fn stop_waiting(&self, id: u64) {
        let mut w = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        w.retain(|(i, _)| *i != id);
    }
}

/// Serves `listener` on a thread of its own until the process exits.
pub fn serve(
    listener: TcpListener,
    limits: HttpLimits,
    handler: Arc<Handler>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("tandem-status".into())
        .spawn(move || accept_loop(listener, limits, handler))
}

fn accept_loop(listener: TcpListener, limits: HttpLimits, handler: Arc<Handler>) {
    let open = Arc::new(Open::default());
    let mut next_id = 0u64;
    loop {
        let (stream, peer) = match listener.accept() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "status endpoint: accept failed");
                std::thread::sleep(ACCEPT_BACKOFF);
                continue;
            }
        };
        if open.count.load(Ordering::Acquire) >= limits.max_connections {
            let oldest = open
                .waiting
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop_front();
            match oldest {
                // Its thread's read fails now and the thread ends.
                Some((_, old)) => {
                    let _ = old.shutdown(Shutdown::Both);
                }
                None => {
                    tracing::debug!(%peer, "status endpoint: every connection busy; refused");
                    let _ = stream.shutdown(Shutdown::Both);
                    continue;
                }
            }
        }
        let Ok(clone) = stream.try_clone() else {
            continue;
        };
        next_id += 1;
        let id = next_id;
        open.count.fetch_add(1, Ordering::AcqRel);
        open.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back((id, clone));
        let (open2, handler) = (open.clone(), handler.clone());
        let spawned = std::thread::Builder::new()
            .name("tandem-http".into())
            .stack_size(THREAD_STACK_BYTES)
            .spawn(move || {
                serve_connection(stream, peer, limits, &*handler, || open2.stop_waiting(id));
                open2.stop_waiting(id);
                open2.count.fetch_sub(1, Ordering::AcqRel);
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "status endpoint: cannot start a connection thread");
            open.stop_waiting(id);
            open.count.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Why a request could not be read.
enum ReadError {
    /// Gone, cut, or too slow: nothing to answer.
    Silent,
    /// Answer with this status and message.
    Reply(u16, &'static str),
}

fn serve_connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    limits: HttpLimits,
    handler: &Handler,
    request_read: impl FnOnce(),
) {
    let _ = stream.set_write_timeout(Some(limits.write_timeout));
    let deadline = Instant::now() + limits.read_deadline;
    let (response, head_only) = match read_request(&mut stream, peer, &limits, deadline) {
        Ok(request) => {
            request_read();
            (handler(&request), request.method == "HEAD")
        }
        Err(ReadError::Silent) => return,
        Err(ReadError::Reply(status, message)) => {
            request_read();
            (
                Response::new(status, "text/plain", format!("{message}\n")),
                false,
            )
        }
    };
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        response.status,
        reason(response.status),
        response.content_type,
        response.body.len()
    );
    for (k, v) in &response.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    if !head_only {
        out.push_str(&response.body);
    }
    if let Err(e) = stream
        .write_all(out.as_bytes())
        .and_then(|_| stream.flush())
    {
        tracing::debug!(%peer, error = %e, "status request not answered");
    }
    let _ = stream.shutdown(Shutdown::Write);
}

/// Reads one request (head, then a body of up to `max_body_bytes`, dropped) before
/// `deadline`.
fn read_request(
    stream: &mut TcpStream,
    peer: SocketAddr,
    limits: &HttpLimits,
    deadline: Instant,
) -> Result<Request, ReadError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Request::new(&mut headers);
        match parsed.parse(&buf) {
            Ok(httparse::Status::Complete(head_len)) => {
                let request = Request {
                    method: parsed.method.unwrap_or_default().to_owned(),
                    path: String::new(),
                    query: String::new(),
                    headers: parsed
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_owned(),
                                String::from_utf8_lossy(h.value).trim().to_owned(),
                            )
                        })
                        .collect(),
                    peer,
                };
                let target = parsed.path.unwrap_or("/");
                let (path, query) = target.split_once('?').unwrap_or((target, ""));
                let request = Request {
                    path: path.to_owned(),
                    query: query.to_owned(),
                    ..request
                };
                if request.header("Transfer-Encoding").is_some() {
                    return Err(ReadError::Reply(411, "send a Content-Length, not chunks"));
                }
                let body_len = match request.header("Content-Length") {
                    None => 0,
                    Some(v) => v
                        .parse::<usize>()
                        .map_err(|_| ReadError::Reply(400, "bad Content-Length"))?,
                };
                if body_len > limits.max_body_bytes {
                    return Err(ReadError::Reply(413, "request body too large"));
                }
                let mut have = buf.len() - head_len;
                while have < body_len {
                    have += read_some(stream, &mut chunk, deadline)?;
                }
                return Ok(request);
            }
            Ok(httparse::Status::Partial) => {}
            Err(httparse::Error::TooManyHeaders) => {
                return Err(ReadError::Reply(431, "too many headers"))
            }
            Err(_) => return Err(ReadError::Reply(400, "malformed request")),
        }
        if buf.len() >= limits.max_head_bytes {
            return Err(ReadError::Reply(431, "request head too large"));
        }
        let n = read_some(stream, &mut chunk, deadline)?;
        let room = limits.max_head_bytes.saturating_sub(buf.len()).max(1);
        buf.extend_from_slice(&chunk[..n.min(room)]);
    }
}

/// One read of at least a byte before `deadline`.
fn read_some(
    stream: &mut TcpStream,
    chunk: &mut [u8],
    deadline: Instant,
) -> Result<usize, ReadError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(ReadError::Silent);
    }
    stream
        .set_read_timeout(Some(left))
        .map_err(|_| ReadError::Silent)?;
    match stream.read(chunk) {
        Ok(0) | Err(_) => Err(ReadError::Silent),
        Ok(n) => Ok(n),
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}
