//! Connection upkeep and flow control: keep-alives, asynchronous errors, consumer and
//! connection control, and the producer window's ProducerAck. Layout notation:
//! [`super`].

use bytes::Bytes;

use super::super::error::OpenWireError;
use super::super::ids::{ConnectionId, ConsumerId, Destination, ProducerId};
use super::super::primitives::{Reader, Throwable, Writer};
use super::Header;

type Result<T> = std::result::Result<T, OpenWireError>;

/// KeepAliveInfo (10), both ways. H only. Answer it (with `response_required` false)
/// only if it has `response_required`; the client never sets it by default.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeepAliveInfo {
    pub header: Header,
}

impl KeepAliveInfo {
    pub(super) fn read(r: &mut Reader) -> Result<Self> {
        Ok(KeepAliveInfo {
            header: Header::read(r)?,
        })
    }

    pub(super) fn write(&self, w: &mut Writer) -> Result<()> {
        self.header.write(w);
        Ok(())
    }
}

/// ControlCommand (14), B→C, ignored by the client.
///
/// H · S command
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ControlCommand {
    pub header: Header,
    pub command: Option<String>,
}

impl ControlCommand {
    pub(super) fn read(r: &mut Reader) -> Result<Self> {
        Ok(ControlCommand {
            header: Header::read(r)?,
            command: r.string()?,
        })
    }

    pub(super) fn write(&self, w: &mut Writer) -> Result<()> {
        self.header.write(w);
        w.string(self.command.as_deref())
    }
}

/// ConnectionError (16), B→C: an async error for the client's ExceptionListener. It does
/// not close the connection.
///
/// H · T exception · N(ConnectionId) connectionId
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnectionError {
    pub header: Header,
    pub exception: Option<Throwable>,
    pub connection_id: Option<ConnectionId>,
}

impl ConnectionError {
    pub(super) fn read(r: &mut Reader) -> Result<Self> {
        Ok(ConnectionError {
            header: Header::read(r)?,
            exception: r.throwable()?,
            connection_id: r.nested()?,
        })
    }

    pub(super) fn write(&self, w: &mut Writer) -> Result<()> {
        self.header.write(w);
        w.throwable(self.exception.as_ref())?;
        w.nested(self.connection_id.as_ref())
    }
}

/// ConsumerControl (17). C→B after failover (restore `prefetch`, which the broker must
/// honour); B→C to change a consumer's prefetch or close it.
///
/// H · N(dest) destination (v6+) · B close · N(ConsumerId) consumerId · i32 prefetch ·
/// B flush (v2+) · B start (v2+) · B stop (v2+)
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConsumerControl {
    pub header: Header,
    pub destination: Option<Destination>,
    pub close: bool,
    pub consumer_id: Option<ConsumerId>,
    pub prefetch: i32,
    pub flush: bool,
    pub start: bool,
    pub stop: bool,
}

impl ConsumerControl {
    pub(super) fn read(r: &mut Reader) -> Result<Self> {
        Ok(ConsumerControl {
            header: Header::read(r)?,
            destination: r.since(6, None, Reader::nested)?,
            close: r.bool()?,
            consumer_id: r.nested()?,
            prefetch: r.i32()?,
            flush: r.since(2, false, Reader::bool)?,
            start: r.since(2, false, Reader::bool)?,
            stop: r.since(2, false, Reader::bool)?,
        })
    }

    pub(super) fn write(&self, w: &mut Writer) -> Result<()> {
        self.header.write(w);
        if w.has(6) {
            w.nested(self.destination.as_ref())?;
        }
        w.bool(self.close);
        w.nested(self.consumer_id.as_ref())?;
        w.i32(self.prefetch);
        if w.has(2) {
            w.bool(self.flush);
            w.bool(self.start);
            w.bool(self.stop);
        }
        Ok(())
    }
}

/// ConnectionControl (18). C→B from failover (`fault_tolerant`, commandId 0); B→C after a
/// ConnectionInfo (cluster hints; `connected_brokers`/`reconnect_to` steer failover).
///
/// H · B close · B exit · B faultTolerant · B resume · B suspend · S connectedBrokers (v6+,
/// else "") · S reconnectTo (v6+, else "") · B rebalanceConnection (v6+) · BS token (v8+)
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnectionControl {
    pub header: Header,
    pub close: bool,
    pub exit: bool,
    pub fault_tolerant: bool,
    pub resume: bool,
    pub suspend: bool,
    /// Comma-separated URIs the failover client prefers; "" for none.
    pub connected_brokers: Option<String>,
    /// Non-empty: the failover client replaces its URI list with this and reconnects.
    pub reconnect_to: Option<String>,
    pub rebalance_connection: bool,
    pub token: Option<Bytes>,
}

impl ConnectionControl {
    pub(super) fn read(r: &mut Reader) -> Result<Self> {
        Ok(ConnectionControl {
            header: Header::read(r)?,
            close: r.bool()?,
            exit: r.bool()?,
            fault_tolerant: r.bool()?,
            resume: r.bool()?,
            suspend: r.bool()?,
            connected_brokers: r.since(6, Some(String::new()), Reader::string)?,
            reconnect_to: r.since(6, Some(String::new()), Reader::string)?,
            rebalance_connection: r.since(6, false, Reader::bool)?,
            token: r.since(8, None, Reader::byte_seq)?,
        })
    }

    pub(super) fn write(&self, w: &mut Writer) -> Result<()> {
        self.header.write(w);
        w.bool(self.close);
        w.bool(self.exit);
        w.bool(self.fault_tolerant);
        w.bool(self.resume);
        w.bool(self.suspend);
        if w.has(6) {
            w.string(self.connected_brokers.as_deref())?;
            w.string(self.reconnect_to.as_deref())?;
            w.bool(self.rebalance_connection);
        }
        if w.has(8) {
            w.byte_seq(self.token.as_deref())?;
        }
        Ok(())
    }
}

/// ProducerAck (19), B→C: returns `size` bytes of a producer's window (only when its
/// ProducerInfo had `window_size > 0`).
///
/// H · N(ProducerId) producerId · i32 size. The type is v3+ (a v1/v2 client has no
/// producer window).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProducerAck {
    pub header: Header,
    pub producer_id: Option<ProducerId>,
    pub size: i32,
}

impl ProducerAck {
    pub(super) fn read(r: &mut Reader) -> Result<Self> {
        Ok(ProducerAck {
            header: Header::read(r)?,
            producer_id: r.nested()?,
            size: r.i32()?,
        })
    }

    pub(super) fn write(&self, w: &mut Writer) -> Result<()> {
        self.header.write(w);
        w.nested(self.producer_id.as_ref())?;
        w.i32(self.size);
        Ok(())
    }
}
