//! Moving messages to consumers and back: MessagePull, MessageDispatch, MessageAck, and
//! the TransactionInfo that groups sends and acks. (The messages themselves are in
//! [`super::super::message`].) Layout notation: [`super`].

use super::super::error::OpenWireError;
use super::super::ids::{ConnectionId, ConsumerId, Destination, MessageId, TransactionId};
use super::super::message::Message;
use super::super::primitives::{Reader, Throwable, Writer};
use super::Header;

type Result<T> = std::result::Result<T, OpenWireError>;

/// MessagePull (20), C→B, async: a prefetch-0 consumer asks for one message. Answer with
/// a MessageDispatch, or a null one when `timeout` ≠ 0 expires (-1: at once; 0: wait).
///
/// H · N(ConsumerId) consumerId · N(dest) destination · i64 timeout · S correlationId (v3+) ·
/// N(MessageId) messageId (v3+). The type is v2+.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MessagePull {
    pub header: Header,
    pub consumer_id: Option<ConsumerId>,
    pub destination: Option<Destination>,
    pub timeout: i64,
    pub correlation_id: Option<String>,
    pub message_id: Option<MessageId>,
}

impl MessagePull {
    pub(super) fn read(r: &mut Reader) -> Result<Self> {
        Ok(MessagePull {
            header: Header::read(r)?,
            consumer_id: r.nested()?,
            destination: r.nested()?,
            timeout: r.i64()?,
            correlation_id: r.since(3, None, Reader::string)?,
            message_id: r.since(3, None, Reader::nested)?,
        })
    }

    pub(super) fn write(&self, w: &mut Writer) -> Result<()> {
        self.header.write(w);
        w.nested(self.consumer_id.as_ref())?;
        w.nested(self.destination.as_ref())?;
        w.i64(self.timeout);
        if w.has(3) {
            w.string(self.correlation_id.as_deref())?;
            w.nested(self.message_id.as_ref())?;
        }
        Ok(())
    }
}

/// MessageDispatch (21), B→C: one delivery. A null `message` means "end of browse" or
/// "pull timed out" (the real broker then also leaves `destination` null).
///
/// H · N(ConsumerId) consumerId · N(dest) destination · N(Message) message ·
/// i32 redeliveryCounter
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MessageDispatch {
    pub header: Header,
    pub consumer_id: Option<ConsumerId>,
    /// Echoed back in the ack: the concrete destination the message came from.
    pub destination: Option<Destination>,
    pub message: Option<Box<Message>>,
    /// Overwrites the message's own counter on the client.
    pub redelivery_counter: i32,
}

impl MessageDispatch {
    pub(super) fn read(r: &mut Reader) -> Result<Self> {
        Ok(MessageDispatch {
            header: Header::read(r)?,
            consumer_id: r.nested()?,
            destination: r.nested()?,
            message: r.nested::<Message>()?.map(Box::new),
            redelivery_counter: r.i32()?,
        })
    }

    pub(super) fn write(&self, w: &mut Writer) -> Result<()> {
        self.header.write(w);
        w.nested(self.consumer_id.as_ref())?;
        w.nested(self.destination.as_ref())?;
        w.nested(self.message.as_deref())?;
        w.i32(self.redelivery_counter);
        Ok(())
    }
}

byte_enum!(
    /// `MessageAck.ackType`: what the ack asks of the broker (OPENWIRE.md §3.3).
    AckType, "ack type" {
        /// Handed to the application, not acked: only widens the prefetch window.
        Delivered = 0,
        /// Dead-letter firstMessageId..lastMessageId (`poison_cause` says why).
        Poison = 1,
        /// Ack every dispatched message of the consumer up to lastMessageId.
        Standard = 2,
        /// Informational: redelivered, not yet poison.
        Redelivered = 3,
        /// Ack lastMessageId only.
        Individual = 4,
        /// A durable subscription's selector did not match.
        Unmatched = 5,
        /// The client found the range expired.
        Expired = 6,
    }
);

/// MessageAck (22), C→B, async by default. The message ids come back exactly as
/// dispatched (including brokerSequenceId).
///
/// H · N(dest) destination · N(TransactionId) transactionId · N(ConsumerId) consumerId ·
/// Y ackType · N(MessageId) firstMessageId · N(MessageId) lastMessageId ·
/// i32 messageCount · T poisonCause (v7+)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageAck {
    pub header: Header,
    pub destination: Option<Destination>,
    pub transaction_id: Option<TransactionId>,
    pub consumer_id: Option<ConsumerId>,
    pub ack_type: AckType,
    /// Start of a range ack; null means "from the oldest dispatched".
    pub first_message_id: Option<MessageId>,
    pub last_message_id: Option<MessageId>,
    pub message_count: i32,
    pub poison_cause: Option<Throwable>,
}

impl MessageAck {
    pub(super) fn read(r: &mut Reader) -> Result<Self> {
        Ok(MessageAck {
            header: Header::read(r)?,
            destination: r.nested()?,
            transaction_id: r.nested()?,
            consumer_id: r.nested()?,
            ack_type: AckType::read(r)?,
            first_message_id: r.nested()?,
            last_message_id: r.nested()?,
            message_count: r.i32()?,
            poison_cause: r.since(7, None, Reader::throwable)?,
        })
    }

    pub(super) fn write(&self, w: &mut Writer) -> Result<()> {
        self.header.write(w);
        w.nested(self.destination.as_ref())?;
        w.nested(self.transaction_id.as_ref())?;
        w.nested(self.consumer_id.as_ref())?;
        w.u8(self.ack_type as u8);
        w.nested(self.first_message_id.as_ref())?;
        w.nested(self.last_message_id.as_ref())?;
        w.i32(self.message_count);
        if w.has(7) {
            w.throwable(self.poison_cause.as_ref())?;
        }
        Ok(())
    }
}

byte_enum!(
    /// `TransactionInfo.type`.
    TransactionType, "transaction type" {
        Begin = 0,
        /// XA; answered with an IntegerResponse.
        Prepare = 1,
        CommitOnePhase = 2,
        CommitTwoPhase = 3,
        Rollback = 4,
        /// XA; answered with a DataArrayResponse of XA transaction ids.
        Recover = 5,
        Forget = 6,
        End = 7,
    }
);

/// TransactionInfo (7), C→B. BEGIN is async; the rest are sync.
///
/// H · N(ConnectionId) connectionId · N(TransactionId) transactionId · Y type
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionInfo {
    pub header: Header,
    pub connection_id: Option<ConnectionId>,
    pub transaction_id: Option<TransactionId>,
    pub transaction_type: TransactionType,
}

impl TransactionInfo {
    pub(super) fn read(r: &mut Reader) -> Result<Self> {
        Ok(TransactionInfo {
            header: Header::read(r)?,
            connection_id: r.nested()?,
            transaction_id: r.nested()?,
            transaction_type: TransactionType::read(r)?,
        })
    }

    pub(super) fn write(&self, w: &mut Writer) -> Result<()> {
        self.header.write(w);
        w.nested(self.connection_id.as_ref())?;
        w.nested(self.transaction_id.as_ref())?;
        w.u8(self.transaction_type as u8);
        Ok(())
    }
}
