//! Sockets: listeners created with socket2 (so a port in use is an error, not a
//! silently shared SO_REUSEPORT bind) and shared by every shard, and TCP streams split
//! into a read half and a write half (two descriptors of one socket) so a connection
//! can read and write from separate tasks.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use socket2::{Domain, Protocol, Socket, Type};

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

/// Adopts a connected stream handed over from another executor (see
/// [`ReadHalf::into_std`]).
pub fn from_std(stream: std::net::TcpStream) -> io::Result<(ReadHalf, WriteHalf)> {
    stream.set_nonblocking(true)?;
    let fd = stream.into_raw_fd();
    // SAFETY: `fd` is a connected TCP socket whose ownership we just took.
    let stream = unsafe { glommio::net::TcpStream::from_raw_fd(fd) };
    split(stream)
}

fn split(stream: glommio::net::TcpStream) -> io::Result<(ReadHalf, WriteHalf)> {
    // SAFETY: dup() of a descriptor we own; each half then owns its descriptor.
    let dup = unsafe { libc::dup(stream.as_raw_fd()) };
    if dup < 0 {
        return Err(io::Error::last_os_error());
    }
    let writer = unsafe { glommio::net::TcpStream::from_raw_fd(dup) };
    Ok((ReadHalf { inner: stream }, WriteHalf { inner: writer }))
}

pub struct ReadHalf {
    inner: glommio::net::TcpStream,
}

impl ReadHalf {
    /// Reads some bytes into `buf`; 0 means the peer closed.
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).await
    }

    /// Copies what has arrived into `buf` without consuming it (waits for at least
    /// one byte; 0 means the peer closed).
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.peek(buf).await.map_err(io::Error::from)
    }

    /// Gives the connection up as a `Send` std stream (another descriptor of the same
    /// socket), so another executor can adopt it with [`from_std`]. Both halves are
    /// closed; the socket lives on in the returned stream.
    pub fn into_std(self, write: WriteHalf) -> io::Result<std::net::TcpStream> {
        // SAFETY: dup() of a descriptor we own.
        let dup = unsafe { libc::dup(self.inner.as_raw_fd()) };
        if dup < 0 {
            return Err(io::Error::last_os_error());
        }
        drop(write);
        drop(self);
        // SAFETY: `dup` is a fresh descriptor of a connected TCP socket, owned here.
        Ok(unsafe { std::net::TcpStream::from_raw_fd(dup) })
    }
}

pub struct WriteHalf {
    inner: glommio::net::TcpStream,
}

impl WriteHalf {
    pub async fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.inner.write_all(buf).await
    }
    /// Closes both directions (the read half's pending read then ends).
    pub async fn shutdown(&mut self) {
        let _ = self.inner.shutdown(std::net::Shutdown::Both).await;
    }
}
