//! The client's byte stream: plain TCP ([`ClientStream::Plain`], a thin wrapper) or TLS
//! over TCP ([`ClientStream::Tls`], rustls, blocking), so the handshakes and the I/O
//! thread are written once for both.
//!
//! # Why TLS is split by hand instead of a `rustls::StreamOwned`
//!
//! The client reads and writes one connection from different threads: the I/O thread
//! sits in a blocking `read` (up to its tick), callers write under the writer mutex
//! (`super::failover`). A plain socket is `try_clone`d into two handles for that. A TLS
//! session cannot be cloned: one `ClientConnection` holds the record state of both
//! directions. A `StreamOwned` behind a mutex would make every caller's write wait for
//! the reader's blocking read (up to a second), and a writer blocked on a full socket
//! would stop the very reads that drain the broker's side. So the socket is still
//! cloned, and only the TLS state is shared, in a mutex that is held while encrypting
//! or decrypting and never across a socket call:
//!
//! * read ([`ClientStream`], the I/O thread's): ciphertext is read from the socket with
//!   no lock held, then under the lock fed to rustls and plaintext taken out;
//! * write ([`WriteHalf`], the writers'): under the lock the plaintext is encrypted into
//!   a buffer, then the buffer is written to the socket with the lock released. Writers
//!   are serialised by the client's writer mutex from encrypting to the end of the
//!   socket write, so records reach the wire in the order of their sequence numbers.
//!
//! Records rustls queues while reading (the answer to a TLS 1.3 KeyUpdate) leave with
//! the next write; the I/O thread flushes them when [`ClientStream::wants_write`].
//!
//! The handshake runs before the stream is shared, bounded by the attempt's deadline.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::{ClientConfig, ClientConnection};

use super::lock;
use crate::net::tls::server_name;

/// Ciphertext read from the socket per call (rustls takes it 4 KiB at a time).
const TLS_READ_BYTES: usize = 16 * 1024;

/// One connection to a broker, as its reader (the handshake, then the I/O thread) owns it.
pub enum ClientStream {
    Plain(TcpStream),
    Tls(Box<TlsStream>),
}

/// The reading end of a TLS connection (see the module doc). Writing through it is
/// fine too while no [`WriteHalf`] exists (during the handshake).
pub struct TlsStream {
    sock: TcpStream,
    conn: Arc<Mutex<ClientConnection>>,
    /// Ciphertext read from the socket; `raw[raw_start..raw_end]` not yet given to
    /// rustls (it takes what fits its buffer).
    raw: Box<[u8]>,
    raw_start: usize,
    raw_end: usize,
    /// Records to write, reused between writes.
    out: Vec<u8>,
}

/// The writing end of a connection, for the writers (under the client's writer mutex).
pub enum WriteHalf {
    Plain(TcpStream),
    Tls {
        sock: TcpStream,
        conn: Arc<Mutex<ClientConnection>>,
        /// Records to write, reused between writes.
        out: Vec<u8>,
    },
}

/// A TLS record error as an `io::Error` (what the read and write loops report).
fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(ErrorKind::InvalidData, e)
}

/// Encrypts `plaintext` (may be empty: only flushes queued records) under the lock,
/// then writes the records with the lock released.
fn write_records(
    sock: &mut TcpStream,
    conn: &Mutex<ClientConnection>,
    out: &mut Vec<u8>,
    plaintext: &[u8],
) -> io::Result<usize> {
    out.clear();
    let n = {
        let mut c = lock(conn);
        let n = if plaintext.is_empty() {
            0
        } else {
            c.writer().write(plaintext)?
        };
        while c.wants_write() {
            c.write_tls(out)?;
        }
        n
    };
    sock.write_all(out)?;
    Ok(n)
}

impl ClientStream {
    /// TLS client handshake on `sock` with `config`, checking the broker's certificate
    /// against `host` (as written in the URL: a DNS name or an IP address), within
    /// `deadline`. Err: why, worded for an attempt's failure.
    pub fn tls(
        mut sock: TcpStream,
        config: &Arc<ClientConfig>,
        host: &str,
        deadline: Instant,
    ) -> Result<ClientStream, String> {
        let name = server_name(host).map_err(|e| e.to_string())?;
        let mut conn = ClientConnection::new(Arc::clone(config), name)
            .map_err(|e| format!("TLS setup: {e}"))?;
        // Each step gets what is left of the deadline, so a broker that trickles its
        // handshake cannot stretch the attempt.
        while conn.is_handshaking() || conn.wants_write() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err("TLS handshake not done in time".into());
            }
            let left = left.max(Duration::from_millis(1));
            sock.set_read_timeout(Some(left))
                .and_then(|_| sock.set_write_timeout(Some(left)))
                .map_err(|e| format!("TLS handshake: {e}"))?;
            if conn.wants_write() {
                conn.write_tls(&mut sock)
                    .map_err(|e| format!("TLS handshake: {e}"))?;
                continue;
            }
            match conn.read_tls(&mut sock) {
                Ok(0) => return Err("closed during the TLS handshake".into()),
                Ok(_) => {
                    if let Err(e) = conn.process_new_packets() {
                        // Tell the broker why (the alert rustls queued), best effort.
                        let _ = conn.write_tls(&mut sock);
                        return Err(handshake_error(e));
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(format!("TLS handshake: {e}")),
            }
        }
        let _ = sock.set_read_timeout(None);
        let _ = sock.set_write_timeout(None);
        Ok(ClientStream::Tls(Box::new(TlsStream {
            sock,
            conn: Arc::new(Mutex::new(conn)),
            raw: vec![0u8; TLS_READ_BYTES].into_boxed_slice(),
            raw_start: 0,
            raw_end: 0,
            out: Vec::new(),
        })))
    }

    fn sock(&self) -> &TcpStream {
        match self {
            ClientStream::Plain(s) => s,
            ClientStream::Tls(t) => &t.sock,
        }
    }

    /// The writers' handle on this connection (a clone of the socket; for TLS, sharing
    /// the session). Socket options (timeouts) are the socket's, so shared too.
    pub fn write_half(&self) -> io::Result<WriteHalf> {
        Ok(match self {
            ClientStream::Plain(s) => WriteHalf::Plain(s.try_clone()?),
            ClientStream::Tls(t) => WriteHalf::Tls {
                sock: t.sock.try_clone()?,
                conn: Arc::clone(&t.conn),
                out: Vec::new(),
            },
        })
    }

    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.sock().set_read_timeout(timeout)
    }

    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.sock().set_write_timeout(timeout)
    }

    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.sock().shutdown(how)
    }

    /// TLS: rustls queued records while reading (e.g. a KeyUpdate answer) that no write
    /// has sent yet. Always false for plain TCP.
    pub fn wants_write(&self) -> bool {
        match self {
            ClientStream::Plain(_) => false,
            ClientStream::Tls(t) => lock(&t.conn).wants_write(),
        }
    }
}

/// A failed handshake in words, with a hint for the two usual certificate mistakes.
fn handshake_error(e: rustls::Error) -> String {
    use rustls::CertificateError as C;
    let hint = match &e {
        // BadSignature: a CA of the same name as the trusted one, not it.
        rustls::Error::InvalidCertificate(C::UnknownIssuer | C::BadSignature) => {
            " (the broker's certificate is not signed by the CA the client trusts)"
        }
        rustls::Error::InvalidCertificate(
            C::NotValidForName | C::NotValidForNameContext { .. },
        ) => " (the host as written in the URL must be one of the certificate's names)",
        _ => "",
    };
    format!("TLS handshake: {e}{hint}")
}

impl Read for TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            {
                let mut c = lock(&self.conn);
                match c.reader().read(buf) {
                    Ok(n) => return Ok(n),
                    // A TCP close without close_notify: brokers do that (the JDK's often
                    // does), and STOMP and OpenWire frames are self-delimiting, so a cut
                    // stream shows in the framing anyway. As plain TCP: end of stream.
                    Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(0),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
                if self.raw_start < self.raw_end {
                    let mut pending = &self.raw[self.raw_start..self.raw_end];
                    let taken = c.read_tls(&mut pending)?;
                    if taken == 0 {
                        // close_notify received: nothing after it counts.
                        self.raw_start = self.raw_end;
                    }
                    self.raw_start += taken;
                    c.process_new_packets().map_err(tls_error)?;
                    continue;
                }
            }
            // No lock held: writers go on while this waits (up to the read timeout).
            let n = self.sock.read(&mut self.raw)?;
            self.raw_start = 0;
            self.raw_end = n;
            if n == 0 {
                let mut c = lock(&self.conn);
                // Records EOF; the next reader().read answers Ok(0) or UnexpectedEof.
                c.read_tls(&mut io::empty())?;
                c.process_new_packets().map_err(tls_error)?;
                return match c.reader().read(buf) {
                    Err(e)
                        if matches!(e.kind(), ErrorKind::UnexpectedEof | ErrorKind::WouldBlock) =>
                    {
                        Ok(0)
                    }
                    other => other,
                };
            }
        }
    }
}

impl Write for TlsStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        write_records(&mut self.sock, &self.conn, &mut self.out, buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        write_records(&mut self.sock, &self.conn, &mut self.out, &[]).map(|_| ())
    }
}

impl Read for ClientStream {
    #[inline]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            ClientStream::Plain(s) => s.read(buf),
            ClientStream::Tls(t) => t.read(buf),
        }
    }
}

impl Write for ClientStream {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            ClientStream::Plain(s) => s.write(buf),
            ClientStream::Tls(t) => t.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            ClientStream::Plain(s) => s.flush(),
            ClientStream::Tls(t) => t.flush(),
        }
    }
}

impl WriteHalf {
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            WriteHalf::Plain(s) => s.shutdown(how),
            WriteHalf::Tls { sock, .. } => sock.shutdown(how),
        }
    }
}

impl Write for WriteHalf {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            WriteHalf::Plain(s) => s.write(buf),
            WriteHalf::Tls { sock, conn, out } => write_records(sock, conn, out, buf),
        }
    }

    /// TLS: also sends records rustls queued while reading.
    fn flush(&mut self) -> io::Result<()> {
        match self {
            WriteHalf::Plain(s) => s.flush(),
            WriteHalf::Tls { sock, conn, out } => write_records(sock, conn, out, &[]).map(|_| ()),
        }
    }
}
