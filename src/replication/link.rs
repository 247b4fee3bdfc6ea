//! One replication link over TCP: frames out through a coalescing writer, frames in
//! through the bounded [`Decoder`].
//!
//! Sending never awaits: a frame is encoded into the outgoing buffer and the writer
//! task takes everything buffered so far in one `write` (glommio has no vectored
//! send), so batches from every shard, acks and heartbeats share syscalls under load.
//! [`Link::backlog`] tells producers that can wait (catch-up) how much is buffered.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::task::Waker;
use std::time::Duration;

use bytes::BytesMut;
use futures_lite::future;

use super::frame::{self, Decoder, Frame};
use crate::rt;
use crate::rt::net::{ReadHalf, WriteHalf};

/// How a connecting node runs TLS on its link: the trust (and identity) to use, and the
/// name the peer's certificate must carry (`None`: the peer's IP address, for a
/// remembered peer known only by address).
#[derive(Clone, Debug)]
pub struct LinkTls {
    pub config: std::sync::Arc<rustls::ClientConfig>,
    pub name: Option<rustls_pki_types::ServerName<'static>>,
}

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("connection closed by the peer")]
    Closed,
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("bad frame: {0}")]
    Frame(#[from] frame::FrameError),
    #[error("nothing heard for {0:?}")]
    Timeout(Duration),
}

struct Out {
    buf: BytesMut,
    waker: Option<Waker>,
    /// Set when the writer failed or the link was closed: later sends are dropped.
    closed: bool,
    /// Wakes producers waiting for the buffer to drain.
    drained: Vec<Waker>,
}

/// A replication link. Cheap to share (`Rc`); single executor.
pub struct Link {
    pub peer: SocketAddr,
    out: RefCell<Out>,
    reader: RefCell<Option<(ReadHalf, BytesMut, Decoder)>>,
    writer_started: Cell<bool>,
    /// Lives as long as the link: the connector slot of an accepted link.
    held: RefCell<Option<Box<dyn std::any::Any>>>,
}

/// Bytes asked of the socket per read.
const READ_CHUNK_BYTES: usize = 256 * 1024;

impl Link {
    pub fn new(read: ReadHalf, write: WriteHalf, peer: SocketAddr) -> Rc<Link> {
        Link::with_frame_limit(read, write, peer, Decoder::DEFAULT_MAX_FRAME_BYTES)
    }

    /// A link whose reader refuses frames over `max_frame_bytes` (the handshake reads
    /// with a small limit: nothing large is buffered for a peer not yet authenticated).
    pub fn with_frame_limit(
        read: ReadHalf,
        write: WriteHalf,
        peer: SocketAddr,
        max_frame_bytes: usize,
    ) -> Rc<Link> {
        let link = Rc::new(Link {
            peer,
            out: RefCell::new(Out {
                buf: BytesMut::new(),
                waker: None,
                closed: false,
                drained: Vec::new(),
            }),
            reader: RefCell::new(Some((read, BytesMut::new(), Decoder::new(max_frame_bytes)))),
            writer_started: Cell::new(false),
            held: RefCell::new(None),
        });
        link.start_writer(write);
        link
    }

    /// Keeps `thing` until the link is dropped (an accepted link's connector slot, so
    /// that it counts against `maximumConnections` for as long as it is open).
    pub fn hold(&self, thing: Box<dyn std::any::Any>) {
        *self.held.borrow_mut() = Some(thing);
    }

    /// Connects to `addr` (with TLS when `tls` is set), giving up after `timeout`.
    pub async fn connect(
        addr: SocketAddr,
        timeout: Duration,
        tls: Option<&LinkTls>,
    ) -> Result<Rc<Link>, LinkError> {
        let connect = async {
            match tls {
                None => rt::net::connect(addr).await,
                Some(tls) => {
                    let name = tls.name.clone().unwrap_or_else(|| {
                        rustls_pki_types::ServerName::IpAddress(addr.ip().into())
                    });
                    rt::net::connect_tls(addr, tls.config.clone(), name).await
                }
            }
            .map_err(LinkError::Io)
        };
        let expire = async {
            rt::sleep(timeout).await;
            Err(LinkError::Timeout(timeout))
        };
        let (r, w) = future::or(connect, expire).await?;
        Ok(Link::new(r, w, addr))
    }

    fn start_writer(self: &Rc<Link>, mut write: WriteHalf) {
        if self.writer_started.replace(true) {
            return;
        }
        let link = self.clone();
        rt::spawn_local(async move {
            loop {
                let chunk = std::future::poll_fn(|cx| {
                    let mut out = link.out.borrow_mut();
                    if !out.buf.is_empty() {
                        return std::task::Poll::Ready(Some(out.buf.split().freeze()));
                    }
                    for w in out.drained.drain(..) {
                        w.wake();
                    }
                    if out.closed {
                        return std::task::Poll::Ready(None);
                    }
                    out.waker = Some(cx.waker().clone());
                    std::task::Poll::Pending
                })
                .await;
                let Some(chunk) = chunk else { break };
                if let Err(e) = write.write_all(&chunk).await {
                    tracing::debug!(peer = %link.peer, error = %e, "replication link write failed");
                    link.out.borrow_mut().closed = true;
                    break;
                }
            }
            write.shutdown().await;
            let mut out = link.out.borrow_mut();
            out.closed = true;
            for w in out.drained.drain(..) {
                w.wake();
            }
        });
    }

    /// Queues `frame`; never waits. Dropped silently once the link is closed (the
    /// reader reports the loss).
    pub fn send(&self, frame: &Frame) {
        let mut out = self.out.borrow_mut();
        if out.closed {
            return;
        }
        frame::encode(frame, &mut out.buf);
        if let Some(w) = out.waker.take() {
            w.wake();
        }
    }

    /// Changes the largest frame the reader accepts from the next frame on (call
    /// between reads, e.g. once the peer has authenticated).
    pub fn set_frame_limit(&self, max_frame_bytes: usize) {
        if let Some((_, _, decoder)) = self.reader.borrow_mut().as_mut() {
            decoder.max_frame_bytes = max_frame_bytes;
        }
    }

    /// Bytes queued and not yet handed to the socket.
    pub fn backlog(&self) -> usize {
        self.out.borrow().buf.len()
    }

    /// Waits until at most `limit` bytes are queued (or the link closed).
    pub async fn drained_below(&self, limit: usize) {
        std::future::poll_fn(|cx| {
            let mut out = self.out.borrow_mut();
            if out.closed || out.buf.len() <= limit {
                return std::task::Poll::Ready(());
            }
            out.drained.push(cx.waker().clone());
            std::task::Poll::Pending
        })
        .await
    }

    /// Flushes what is queued (bounded by `timeout`), then closes the socket.
    pub async fn close(&self, timeout: Duration) {
        let flushed = async {
            self.drained_below(0).await;
        };
        future::or(flushed, rt::sleep(timeout)).await;
        let mut out = self.out.borrow_mut();
        out.closed = true;
        if let Some(w) = out.waker.take() {
            w.wake();
        }
    }

    pub fn is_closed(&self) -> bool {
        self.out.borrow().closed
    }

    /// Reads the next frame, failing after `timeout` of silence. Only one task may
    /// read (the reader state is taken while a read is in progress).
    pub async fn recv(&self, timeout: Duration) -> Result<Frame, LinkError> {
        let Some((mut read, mut buf, mut decoder)) = self.reader.borrow_mut().take() else {
            return Err(LinkError::Closed);
        };
        let result = async {
            loop {
                if let Some(f) = decoder.decode(&mut buf)? {
                    return Ok(f);
                }
                let filled = buf.len();
                buf.resize(filled + READ_CHUNK_BYTES, 0);
                let read_once =
                    async { read.read(&mut buf[filled..]).await.map_err(LinkError::Io) };
                let expire = async {
                    rt::sleep(timeout).await;
                    Err(LinkError::Timeout(timeout))
                };
                let n = future::or(read_once, expire).await;
                buf.truncate(filled + *n.as_ref().unwrap_or(&0));
                if n? == 0 {
                    return Err(LinkError::Closed);
                }
            }
        }
        .await;
        *self.reader.borrow_mut() = Some((read, buf, decoder));
        result
    }
}
