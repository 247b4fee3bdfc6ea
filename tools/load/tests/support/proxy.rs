//! A tiny tampering STOMP proxy: forwards every connection to a real broker and, on the
//! way back to the clients, drops or doubles the Nth MESSAGE frame (counted over all
//! connections). It stands in for a broker that loses or duplicates a delivery, so the
//! test sees the load tool's check catch it.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tamper {
    /// The MESSAGE never reaches the consumer (the broker counts it delivered: auto ack).
    Drop,
    /// The MESSAGE reaches the consumer twice, without `redelivered:true`.
    Duplicate,
}

pub struct Proxy {
    pub port: u16,
    /// Set once the tampering happened.
    pub done: Arc<AtomicBool>,
}

impl Proxy {
    /// Listens on a free port; tampers with MESSAGE number `nth` (1-based).
    pub fn start(broker_port: u16, tamper: Tamper, nth: u64) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let done = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(AtomicU64::new(0));
        let flag = Arc::clone(&done);
        // Accepts until the test process ends (the listener lives in this thread).
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(broker) = TcpStream::connect(("127.0.0.1", broker_port)) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = broker.set_nodelay(true);
                let (c2, b2) = match (client.try_clone(), broker.try_clone()) {
                    (Ok(c), Ok(b)) => (c, b),
                    _ => continue,
                };
                std::thread::spawn(move || pump(client, broker));
                let (seen, flag) = (Arc::clone(&seen), Arc::clone(&flag));
                std::thread::spawn(move || {
                    tamper_pump(b2, c2, || {
                        let n = seen.fetch_add(1, Ordering::SeqCst) + 1;
                        (n == nth).then(|| {
                            flag.store(true, Ordering::SeqCst);
                            tamper
                        })
                    })
                });
            }
        });
        Proxy { port, done }
    }

    pub fn url(&self) -> String {
        format!("stomp://127.0.0.1:{}", self.port)
    }
}

/// Client to broker: bytes as they come.
fn pump(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// Broker to client, frame by frame; `decide` is asked about each MESSAGE frame.
fn tamper_pump(mut from: TcpStream, mut to: TcpStream, mut decide: impl FnMut() -> Option<Tamper>) {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match from.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        let mut out = Vec::new();
        while let Some(len) = frame_len(&buf) {
            let frame: Vec<u8> = buf.drain(..len).collect();
            let is_message = frame
                .iter()
                .position(|&b| b != b'\n' && b != b'\r')
                .is_some_and(|i| frame[i..].starts_with(b"MESSAGE"));
            match is_message.then(&mut decide).flatten() {
                Some(Tamper::Drop) => {}
                Some(Tamper::Duplicate) => {
                    out.extend_from_slice(&frame);
                    out.extend_from_slice(&frame);
                }
                None => out.extend_from_slice(&frame),
            }
        }
        if to.write_all(&out).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// Length of the first complete frame in `buf` (leading heart-beat EOLs included, the
/// trailing NUL included), or None if it is not all there yet.
fn frame_len(buf: &[u8]) -> Option<usize> {
    let start = buf.iter().position(|&b| b != b'\n' && b != b'\r')?;
    let rest = &buf[start..];
    let head_end = rest
        .windows(2)
        .position(|w| w == b"\n\n")
        .map(|i| i + 2)
        .or_else(|| {
            rest.windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map(|i| i + 4)
        })?;
    let head = std::str::from_utf8(&rest[..head_end]).ok()?;
    let content_length = head.lines().find_map(|l| {
        l.strip_prefix("content-length:")
            .and_then(|v| v.trim().parse::<usize>().ok())
    });
    let body_end = match content_length {
        Some(n) => {
            if rest.len() < head_end + n + 1 {
                return None;
            }
            head_end + n
        }
        None => head_end + rest[head_end..].iter().position(|&b| b == 0)?,
    };
    Some(start + body_end + 1)
}
