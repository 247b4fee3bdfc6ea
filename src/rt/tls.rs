//! TLS on a connection's two halves (see [`super::net`]): rustls's state machine
//! driven by glommio's sockets, so everything above reads and writes plaintext
//! through the same `ReadHalf`/`WriteHalf` as a plain connection.
//!
//! Why not `futures-rustls`: its stream owns one socket and must be locked for both
//! directions, and it cannot be rebuilt from its parts, which the replication hand-off
//! needs (a connection accepted on a shard moves, mid-session, to the replication
//! core's executor: [`Detached`](super::net::Detached)). This file is only the glue:
//! all TLS is rustls's.
//!
//! Shape: one [`Session`] per connection, shared (`Rc`) by both halves. The read half
//! owns the receiving socket and feeds rustls the ciphertext it reads; the write side
//! (the write half, and the read half when rustls has something to send back: an
//! alert, a key update, the reply to a close) writes what rustls has queued through
//! [`Session::flush`], one writer at a time (a one-permit semaphore), so TLS records
//! never interleave on the socket. `RefCell` borrows of the rustls state never span an
//! `.await`.

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::rc::Rc;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use glommio::sync::Semaphore;

/// Ciphertext read from the socket per read: one maximal TLS record plus its header.
const CIPHERTEXT_CHUNK_BYTES: usize = 16 * 1024 + 256;

/// The TLS state of one connection and its sending socket.
pub(crate) struct Session {
    pub(crate) conn: RefCell<rustls::Connection>,
    /// The sending socket; taken out while one writer sends (never `None` otherwise,
    /// unless a send was abandoned midway, which ends the connection).
    tx: RefCell<Option<TcpStream>>,
    /// One writer at a time.
    tx_turn: Semaphore,
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "TLS connection closed")
}

fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl Session {
    pub(crate) fn new(conn: rustls::Connection, tx: TcpStream) -> Rc<Session> {
        Rc::new(Session {
            conn: RefCell::new(conn),
            tx: RefCell::new(Some(tx)),
            tx_turn: Semaphore::new(1),
        })
    }

    /// Sends everything rustls has queued (handshake messages, records, alerts).
    pub(crate) async fn flush(&self) -> io::Result<()> {
        let _turn = self.tx_turn.acquire_permit(1).await.map_err(|_| closed())?;
        let mut stream = self.tx.borrow_mut().take().ok_or_else(closed)?;
        let sent = async {
            let mut buf = Vec::new();
            loop {
                buf.clear();
                {
                    let mut conn = self.conn.borrow_mut();
                    while conn.wants_write() {
                        conn.write_tls(&mut buf)?;
                    }
                }
                if buf.is_empty() {
                    return Ok(());
                }
                stream.write_all(&buf).await?;
            }
        }
        .await;
        *self.tx.borrow_mut() = Some(stream);
        sent
    }

    /// Encrypts and sends all of `buf`.
    pub(crate) async fn write_all(&self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            // rustls takes what fits under its buffer limit; the rest after a flush.
            let n = self.conn.borrow_mut().writer().write(buf)?;
            buf = &buf[n..];
            self.flush().await?;
        }
        Ok(())
    }

    /// Sends a close_notify, then shuts the socket down both ways.
    pub(crate) async fn shutdown(&self) {
        self.conn.borrow_mut().send_close_notify();
        let _ = self.flush().await;
        let Ok(_turn) = self.tx_turn.acquire_permit(1).await else {
            return;
        };
        let stream = self.tx.borrow_mut().take();
        if let Some(stream) = stream {
            let _ = stream.shutdown(std::net::Shutdown::Both).await;
            *self.tx.borrow_mut() = Some(stream);
        }
    }

    /// Gives back the rustls state, for a move to another executor: only when no other
    /// holder (a write half, a flush in flight) is left.
    pub(crate) fn into_parts(self: Rc<Session>) -> io::Result<rustls::Connection> {
        match Rc::try_unwrap(self) {
            Ok(session) => Ok(session.conn.into_inner()),
            Err(_) => Err(io::Error::other(
                "the TLS session is still in use; cannot hand the connection over",
            )),
        }
    }

    /// Sends what rustls queued while reading, without holding up the reader: a
    /// detached task, so a cancelled read (a peek raced with a timer) cannot abandon a
    /// send halfway.
    fn flush_in_background(self: &Rc<Session>) {
        if self.conn.borrow().wants_write() {
            let session = self.clone();
            super::spawn_local(async move {
                let _ = session.flush().await;
            });
        }
    }
}

/// The receiving side of a TLS connection: the socket, ciphertext read but not yet
/// taken by rustls, and plaintext peeked but not yet read.
pub(crate) struct TlsReader {
    pub(crate) session: Rc<Session>,
    ciphertext: Box<[u8]>,
    /// `ciphertext[start..end]` is read from the socket, not yet given to rustls.
    start: usize,
    end: usize,
    pub(crate) peeked: Vec<u8>,
}

/// What a [`TlsReader`] carries across executors besides the rustls state.
pub(crate) struct ReaderParts {
    pub(crate) ciphertext: Vec<u8>,
    pub(crate) peeked: Vec<u8>,
}

impl TlsReader {
    pub(crate) fn new(session: Rc<Session>, parts: ReaderParts) -> TlsReader {
        let mut ciphertext = vec![0u8; CIPHERTEXT_CHUNK_BYTES.max(parts.ciphertext.len())];
        ciphertext[..parts.ciphertext.len()].copy_from_slice(&parts.ciphertext);
        TlsReader {
            session,
            ciphertext: ciphertext.into_boxed_slice(),
            start: 0,
            end: parts.ciphertext.len(),
            peeked: parts.peeked,
        }
    }

    pub(crate) fn into_parts(self) -> (Rc<Session>, ReaderParts) {
        let parts = ReaderParts {
            ciphertext: self.ciphertext[self.start..self.end].to_vec(),
            peeked: self.peeked,
        };
        (self.session, parts)
    }

    /// Runs the handshake to its end (both directions), within whatever deadline the
    /// caller races it with.
    pub(crate) async fn handshake(&mut self, rx: &mut TcpStream) -> io::Result<()> {
        loop {
            self.session.flush().await?;
            if !self.session.conn.borrow().is_handshaking() {
                return Ok(());
            }
            if !self.feed(rx).await? {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "peer closed during the TLS handshake",
                ));
            }
        }
    }

    /// Reads plaintext into `buf`; 0 means the peer closed.
    pub(crate) async fn read(&mut self, rx: &mut TcpStream, buf: &mut [u8]) -> io::Result<usize> {
        if !self.peeked.is_empty() {
            let n = buf.len().min(self.peeked.len());
            buf[..n].copy_from_slice(&self.peeked[..n]);
            self.peeked.drain(..n);
            return Ok(n);
        }
        loop {
            if let Some(n) = self.take_plaintext(buf)? {
                return Ok(n);
            }
            if !self.feed(rx).await? {
                return Ok(0);
            }
        }
    }

    /// Copies plaintext that has arrived into `buf` without consuming it: waits for
    /// some when none has; then returns what is there (and what rustls has already
    /// decrypted) without waiting for more.
    pub(crate) async fn peek(&mut self, rx: &mut TcpStream, buf: &mut [u8]) -> io::Result<usize> {
        if self.peeked.is_empty() {
            let mut chunk = vec![0u8; buf.len().max(1)];
            let n = self.read(rx, &mut chunk).await?;
            if n == 0 {
                return Ok(0);
            }
            self.peeked.extend_from_slice(&chunk[..n]);
        }
        while self.peeked.len() < buf.len() {
            let mut chunk = vec![0u8; buf.len() - self.peeked.len()];
            match self.take_plaintext(&mut chunk)? {
                Some(n) if n > 0 => self.peeked.extend_from_slice(&chunk[..n]),
                _ => break,
            }
        }
        let n = buf.len().min(self.peeked.len());
        buf[..n].copy_from_slice(&self.peeked[..n]);
        Ok(n)
    }

    /// Plaintext rustls has decrypted: `Some(n)` (0: the peer closed), or `None` when it
    /// needs more ciphertext.
    fn take_plaintext(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let mut conn = self.session.conn.borrow_mut();
        match conn.reader().read(buf) {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            // The peer closed the socket without a close_notify: closed all the same
            // (every protocol above frames its own messages, so nothing is mistaken
            // for a whole message).
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(Some(0)),
            Err(e) => Err(e),
        }
    }

    /// Gives rustls more ciphertext (reading the socket when none is buffered) and
    /// lets it process it. False: the socket reached its end.
    async fn feed(&mut self, rx: &mut TcpStream) -> io::Result<bool> {
        if self.start == self.end {
            let n = rx.read(&mut self.ciphertext).await?;
            self.start = 0;
            self.end = n;
            if n == 0 {
                // Tell rustls, so its reader reports a close (clean or not).
                let mut none: &[u8] = &[];
                let _ = self.session.conn.borrow_mut().read_tls(&mut none);
                return Ok(false);
            }
        }
        let processed = {
            let mut conn = self.session.conn.borrow_mut();
            let mut input = &self.ciphertext[self.start..self.end];
            let before = input.len();
            conn.read_tls(&mut input)?;
            self.start += before - input.len();
            conn.process_new_packets().map(|_| ())
        };
        // What rustls wants to say back (handshake replies, an alert on garbage).
        self.session.flush_in_background();
        processed.map_err(tls_error)?;
        Ok(true)
    }
}

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;
