//! Sockets: listeners created with socket2 (so a port in use is an error, not a
//! silently shared SO_REUSEPORT bind) and shared by every shard, and TCP streams split
//! into a read half and a write half (two descriptors of one socket) so a connection
//! can read and write from separate tasks. A connection may run TLS
//! ([`accept_tls`], [`connect_tls`]; the glue is in [`super::tls`]): the halves then
//! read and write plaintext, and nothing above knows the difference.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
use std::rc::Rc;
use std::sync::Arc;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use socket2::{Domain, Protocol, Socket, Type};

use super::tls::{ReaderParts, Session, TlsReader};

/// A bound, listening socket, not yet tied to an executor. `Send`: one is made on the
/// main thread and each shard gets a duplicate descriptor of it.
pub struct BoundListener {
    socket: Socket,
}

impl BoundListener {
    /// Binds `addr` with SO_REUSEADDR (restart after TIME_WAIT) but not SO_REUSEPORT,
    /// so a second broker on the same port fails here with `AddrInUse`.
    pub fn bind(addr: SocketAddr, backlog: i32) -> io::Result<BoundListener> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        // glommio first tries a plain accept() and only then waits on io_uring: on a
        // blocking socket, a shard that loses the race for a connection would block
        // its whole executor in accept().
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        socket.listen(backlog)?;
        Ok(BoundListener { socket })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("listener has no inet address"))
    }

    /// Another descriptor of the same listening socket, for another shard.
    pub fn try_clone(&self) -> io::Result<BoundListener> {
        Ok(BoundListener {
            socket: self.socket.try_clone()?,
        })
    }

    /// Stops listening, for every descriptor of this socket (each shard's too): the
    /// port is free as soon as this returns, before the process has torn down.
    pub fn shutdown(&self) {
        let _ = self.socket.shutdown(std::net::Shutdown::Both);
    }

    /// Ties the listener to the current executor.
    pub fn into_listener(self) -> Listener {
        let fd = self.socket.into_raw_fd();
        // SAFETY: `fd` is a listening TCP socket we own; ownership moves to glommio.
        let inner = unsafe { glommio::net::TcpListener::from_raw_fd(fd) };
        Listener { inner }
    }
}

/// A listener on one executor. Several shards accept on duplicates of one socket; the
/// kernel hands each connection to one of them.
pub struct Listener {
    inner: glommio::net::TcpListener,
}

impl Listener {
    pub async fn accept(&self) -> io::Result<(ReadHalf, WriteHalf, SocketAddr)> {
        let stream = self.inner.accept().await.map_err(io::Error::from)?;
        let peer = stream.peer_addr().map_err(io::Error::from)?;
        stream.set_nodelay(true).map_err(io::Error::from)?;
        let (r, w) = split(stream)?;
        Ok((r, w, peer))
    }
}

/// Connects to `addr` (an address, never a host name: resolution would block).
pub async fn connect(addr: SocketAddr) -> io::Result<(ReadHalf, WriteHalf)> {
    let stream = glommio::net::TcpStream::connect(addr)
        .await
        .map_err(io::Error::from)?;
    stream.set_nodelay(true).map_err(io::Error::from)?;
    split(stream)
}

/// Connects to `addr` and runs a TLS handshake, checking the server's certificate
/// against `config`'s roots and `name` (the host as the URI wrote it).
pub async fn connect_tls(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    name: rustls_pki_types::ServerName<'static>,
) -> io::Result<(ReadHalf, WriteHalf)> {
    let (rd, wr) = connect(addr).await?;
    let conn = rustls::ClientConnection::new(config, name).map_err(io::Error::other)?;
    start_tls(rd, wr, conn.into()).await
}

/// Runs the server side of a TLS handshake on a freshly accepted connection. Race it
/// with the connector's login deadline: a peer that never completes it is closed.
pub async fn accept_tls(
    rd: ReadHalf,
    wr: WriteHalf,
    config: Arc<rustls::ServerConfig>,
) -> io::Result<(ReadHalf, WriteHalf)> {
    let conn = rustls::ServerConnection::new(config).map_err(io::Error::other)?;
    start_tls(rd, wr, conn.into()).await
}

async fn start_tls(
    rd: ReadHalf,
    wr: WriteHalf,
    conn: rustls::Connection,
) -> io::Result<(ReadHalf, WriteHalf)> {
    let (WriteSide::Plain(tx), None) = (wr.inner, rd.tls) else {
        return Err(io::Error::other(
            "TLS is already running on this connection",
        ));
    };
    let session = Session::new(conn, tx);
    let mut rd = ReadHalf {
        inner: rd.inner,
        tls: Some(TlsReader::new(
            session.clone(),
            ReaderParts {
                ciphertext: Vec::new(),
                peeked: Vec::new(),
            },
        )),
    };
    let wr = WriteHalf {
        inner: WriteSide::Tls(session),
    };
    let ReadHalf { inner, tls } = &mut rd;
    if let Some(tls) = tls {
        tls.handshake(inner).await?;
    }
    Ok((rd, wr))
}

/// A connection given up by one executor for another (`Send`): the socket, and for a
/// TLS connection its rustls state and the bytes read but not yet consumed.
pub struct Detached {
    stream: std::net::TcpStream,
    tls: Option<(rustls::Connection, ReaderParts)>,
}

impl Detached {
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.stream.peer_addr()
    }

    /// Whether the connection runs TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }
}

/// Adopts a connection handed over from another executor (see
/// [`ReadHalf::detach`]).
pub fn attach(detached: Detached) -> io::Result<(ReadHalf, WriteHalf)> {
    let Detached { stream, tls } = detached;
    stream.set_nonblocking(true)?;
    let fd = stream.into_raw_fd();
    // SAFETY: `fd` is a connected TCP socket whose ownership we just took.
    let stream = unsafe { glommio::net::TcpStream::from_raw_fd(fd) };
    let (rd, wr) = split(stream)?;
    let Some((conn, parts)) = tls else {
        return Ok((rd, wr));
    };
    let WriteSide::Plain(tx) = wr.inner else {
        return Err(io::Error::other("a fresh write half is plain"));
    };
    let session = Session::new(conn, tx);
    Ok((
        ReadHalf {
            inner: rd.inner,
            tls: Some(TlsReader::new(session.clone(), parts)),
        },
        WriteHalf {
            inner: WriteSide::Tls(session),
        },
    ))
}

fn split(stream: glommio::net::TcpStream) -> io::Result<(ReadHalf, WriteHalf)> {
    // SAFETY: dup() of a descriptor we own; each half then owns its descriptor.
    let dup = unsafe { libc::dup(stream.as_raw_fd()) };
    if dup < 0 {
        return Err(io::Error::last_os_error());
    }
    let writer = unsafe { glommio::net::TcpStream::from_raw_fd(dup) };
    Ok((
        ReadHalf {
            inner: stream,
            tls: None,
        },
        WriteHalf {
            inner: WriteSide::Plain(writer),
        },
    ))
}

/// The receiving half: the socket, and on a TLS connection the TLS reading state.
pub struct ReadHalf {
    inner: glommio::net::TcpStream,
    tls: Option<TlsReader>,
}

impl ReadHalf {
    /// Reads some bytes (plaintext) into `buf`; 0 means the peer closed.
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.tls {
            None => self.inner.read(buf).await,
            Some(tls) => tls.read(&mut self.inner, buf).await,
        }
    }

    /// Copies what has arrived into `buf` without consuming it (waits for at least
    /// one byte; 0 means the peer closed). On TLS, once something has arrived it
    /// returns what is decrypted without waiting for more.
    pub async fn peek(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.tls {
            None => self.inner.peek(buf).await.map_err(io::Error::from),
            Some(tls) => tls.peek(&mut self.inner, buf).await,
        }
    }

    /// Whether the connection runs TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Gives the connection up as a `Send` value (another descriptor of the same
    /// socket, plus the TLS state), so another executor can adopt it with [`attach`].
    /// Both halves are closed; the socket lives on in the returned value.
    pub fn detach(self, write: WriteHalf) -> io::Result<Detached> {
        // SAFETY: dup() of a descriptor we own.
        let dup = unsafe { libc::dup(self.inner.as_raw_fd()) };
        if dup < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `dup` is a fresh descriptor of a connected TCP socket, owned here.
        let stream = unsafe { std::net::TcpStream::from_raw_fd(dup) };
        let ReadHalf { inner, tls } = self;
        drop(inner);
        let tls = match tls {
            None => None,
            Some(reader) => {
                let (session, parts) = reader.into_parts();
                // The write half's share of the session goes first.
                drop(write);
                Some((session.into_parts()?, parts))
            }
        };
        Ok(Detached { stream, tls })
    }
}

enum WriteSide {
    Plain(glommio::net::TcpStream),
    Tls(Rc<Session>),
}

/// The sending half (on TLS: encrypts through the connection's shared session).
pub struct WriteHalf {
    inner: WriteSide,
}

impl WriteHalf {
    pub async fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match &mut self.inner {
            WriteSide::Plain(stream) => stream.write_all(buf).await,
            WriteSide::Tls(session) => session.write_all(buf).await,
        }
    }
    /// Closes both directions (the read half's pending read then ends); on TLS after a
    /// close_notify.
    pub async fn shutdown(&mut self) {
        match &mut self.inner {
            WriteSide::Plain(stream) => {
                let _ = stream.shutdown(std::net::Shutdown::Both).await;
            }
            WriteSide::Tls(session) => session.shutdown().await,
        }
    }
}
