//! The STOMP client: a blocking client with ActiveMQ-style failover, the STOMP adapter
//! of the shared reconnect/replay core (`super::failover`).
//!
//! * this file — the API: [`Client`] (connect with `stomp://h:p`, `stomp+ssl://h:p` or
//!   `failover:(...)?...`, send, subscribe, receive, ack, transactions, close),
//!   [`ClientOptions`], [`Message`], [`SubscriptionId`], [`Pending`].
//! * `conn`  — the `Stomp` protocol adapter: the CONNECT/CONNECTED handshake, frame
//!   encoding and decoding, heart-beats.
//! * `state` — the STOMP session in the shared state (unreceipted frames,
//!   subscriptions, transactions) and how it is replayed on a new connection.
//!
//! # Failover semantics (ActiveMQ's failover transport, adapted to STOMP)
//!
//! A `failover:` URL reconnects when the connection drops: each pass tries the list in
//! order (`randomize=false`) or shuffled; the first pass runs at once, later ones after
//! `initialReconnectDelay`, growing by `backOffMultiplier` up to `maxReconnectDelay`.
//! After `maxReconnectAttempts` failed passes (-1: never give up; 0: no reconnect) every
//! call fails with [`ClientError::FailoverExhausted`]. While disconnected, a call that
//! must write waits at most `timeout` ms (-1: until reconnected or given up) and then
//! fails with [`ClientError::Disconnected`]; nothing of it was sent.
//!
//! On the new connection the client sends CONNECT with the same login and `client-id`,
//! then, in this order: every active subscription (same ids), every open transaction
//! (BEGIN and its frames), and every SEND and COMMIT not yet receipted, in their
//! original order. Consequences, the usual at-least-once outcome:
//!
//! * a SEND whose receipt was lost with the connection is sent again, so the broker may
//!   hold it twice;
//! * a COMMIT whose receipt was lost replays its whole transaction, so a transaction
//!   may be applied twice (never partly);
//! * deliveries not acknowledged before the loss are redelivered by the broker (with
//!   `redelivered:true`); messages of `client`/`client-individual` subscriptions still
//!   queued in the client are dropped for that reason, and acking a message received on
//!   an earlier connection is a no-op (its delivery no longer exists);
//! * an ACK or transactional frame whose receipt was pending is settled as done: the
//!   ACK's delivery comes back, the transaction is replayed.
//!
//! A broker that answers CONNECT with ERROR (bad login, or a slave that does not serve
//! yet) counts as a failed attempt, and the next URI is tried; with a plain URL the
//! ERROR is returned as [`ClientError::Refused`].
//!
//! The client does not de-duplicate: broker-side duplicate detection is out of scope.
//!
//! A plain `stomp://` URL never reconnects: a lost connection fails every later call
//! with [`ClientError::ConnectionLost`].

mod conn;
mod state;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::failover::{self, parse_url, Handle};
use super::{lock, AckMode, ClientError};
use crate::protocol::stomp::{encode, Command, Frame, Version};
use crate::uri::Wire;
use conn::Stomp;
use state::{Kind, Session};

/// Connection settings that are not part of the URL.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub login: Option<String>,
    pub passcode: Option<String>,
    /// STOMP `client-id` (ActiveMQ: needed for durable topic subscriptions).
    pub client_id: Option<String>,
    /// `heart-beat` we offer, ms: (how often we can send, how often we want to hear).
    /// A broker silent for twice the agreed period counts as a lost connection.
    pub heartbeat_ms: (u64, u64),
    /// Bound on one connection attempt: TCP connect, TLS handshake, CONNECTED.
    pub connect_timeout: Duration,
    /// Bound on waiting for a RECEIPT in `send`, `subscribe`, `ack`, `begin`,
    /// `commit`, `abort` and `close` (time spent reconnecting counts).
    pub receipt_timeout: Duration,
    /// For `stomp+ssl://` URLs: the CAs that verify the broker (checked against the
    /// host as written in the URL) and the identity to present if it asks (mutual
    /// TLS); see [`crate::net::tls::client_config`]. None: TLS URLs are refused.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            login: None,
            passcode: None,
            client_id: None,
            heartbeat_ms: (0, 0),
            connect_timeout: Duration::from_secs(5),
            receipt_timeout: Duration::from_secs(30),
            tls: None,
        }
    }
}

/// A subscription's id (`sub-<n>`); stays the same across reconnects.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SubscriptionId(pub String);

impl SubscriptionId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One delivered MESSAGE.
#[derive(Debug, Clone)]
pub struct Message {
    pub destination: String,
    pub message_id: String,
    /// The 1.2 `ack` header, which ACK/NACK must quote (None from a 1.1 broker).
    pub ack_id: Option<String>,
    pub subscription: String,
    /// The broker delivered it before (`redelivered:true`).
    pub redelivered: bool,
    /// Every header as received, in order.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// The connection it arrived on; an ack on a later connection is dropped.
    generation: u64,
}

impl Message {
    /// The first header called `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A STOMP connection (or failover set of them). `Sync`: share it between threads by
/// reference or in an `Arc`; every call is safe to make concurrently.
pub struct Client {
    h: Handle<Stomp>,
}

/// A pipelined frame's receipt, from [`Client::send_async`]: `wait(timeout)` for it.
/// On timeout the frame is still in flight (and replayed after a failover).
pub type Pending = failover::Pending<Stomp>;

impl Client {
    /// Connects to `url` (`stomp://host:port`, `stomp+ssl://` (with `opts.tls`), or
    /// `failover:(...)?options` of them) and returns
    /// once a broker answered CONNECTED. With `failover:`, it keeps trying the list as
    /// the reconnect policy says (so it fails with `FailoverExhausted` only after
    /// `maxReconnectAttempts` passes).
    pub fn connect(url: &str, opts: ClientOptions) -> Result<Client, ClientError> {
        // By wire, so the TLS schemes (`stomp+ssl`, ...) come with their plain twins.
        let (uri, failover) = parse_url(url, |s| s.wire() == Wire::Stomp)?;
        let h = Handle::start(uri, failover, opts, Session::default(), Version::V1_2)?;
        Ok(Client { h })
    }

    /// Writes `frame` (a receipt header is added) once connected and records it in the
    /// state. Ok(None): nothing needed sending (an ack of a stale delivery).
    fn submit(&self, frame: Frame, kind: Kind) -> Result<Option<u64>, ClientError> {
        let closing = kind == Kind::Disconnect;
        let mut request = Some((frame, kind));
        self.h.inner.submit(closing, |st, version, out| {
            let Some((frame, kind)) = request.take() else {
                return Ok(None);
            };
            if let Kind::Ack { generation } = kind {
                if generation != st.generation {
                    return Ok(None);
                }
            }
            let seq = st.register(frame, kind)?;
            encode(&st.outstanding[&seq].frame, *version, out);
            Ok(Some(seq))
        })
    }

    /// Submits and waits for the receipt (`receipt_timeout`).
    fn request(&self, frame: Frame, kind: Kind) -> Result<(), ClientError> {
        match self.submit(frame, kind)? {
            Some(seq) => self.request_wait(seq),
            None => Ok(()),
        }
    }

    /// Sends a message and waits for the broker's RECEIPT (for a `persistent:true`
    /// message: it is on disk). `headers` go on the SEND as given (e.g.
    /// `("persistent", "true")`); a `transaction` header sends inside that open
    /// transaction. `receipt` and `content-length` are the client's to set.
    pub fn send(
        &self,
        destination: &str,
        body: &[u8],
        headers: &[(&str, &str)],
    ) -> Result<(), ClientError> {
        self.send_async(destination, body, headers)?
            .wait(self.h.inner.opts.receipt_timeout)
    }

    /// Like [`Client::send`] but returns once written: pipeline many, then wait.
    pub fn send_async(
        &self,
        destination: &str,
        body: &[u8],
        headers: &[(&str, &str)],
    ) -> Result<Pending, ClientError> {
        let mut frame = Frame::new(Command::Send).with_header("destination", destination);
        let mut kind = Kind::Send;
        for (name, value) in headers {
            match *name {
                "receipt" | "content-length" | "destination" => continue,
                "transaction" => kind = Kind::TxSend(value.to_string()),
                _ => {}
            }
            frame.push_header(*name, *value);
        }
        frame.body = Bytes::copy_from_slice(body);
        let seq = self.submit(frame, kind)?;
        Ok(Pending::new(&self.h.inner, seq))
    }

    /// Subscribes (confirmed by a receipt); the subscription is renewed on every
    /// reconnect until [`Client::unsubscribe`]. Extra `headers` go on the SUBSCRIBE
    /// (`selector`, `activemq.prefetchSize`, `activemq.subscriptionName`, ...).
    pub fn subscribe(
        &self,
        destination: &str,
        ack: AckMode,
        headers: &[(&str, &str)],
    ) -> Result<SubscriptionId, ClientError> {
        let id = {
            let mut st = lock(&self.h.inner.state);
            st.sess.next_subscription += 1;
            format!("sub-{:06}", st.sess.next_subscription)
        };
        let mut frame = Frame::new(Command::Subscribe)
            .with_header("id", id.as_str())
            .with_header("destination", destination)
            .with_header("ack", ack.as_str());
        for (name, value) in headers {
            if !matches!(*name, "id" | "destination" | "ack" | "receipt") {
                frame.push_header(*name, *value);
            }
        }
        let kind = Kind::Subscribe {
            id: id.clone(),
            ack,
        };
        self.request(frame, kind)?;
        Ok(SubscriptionId(id))
    }

    /// Ends a subscription (confirmed by a receipt).
    pub fn unsubscribe(&self, id: &SubscriptionId) -> Result<(), ClientError> {
        let frame = Frame::new(Command::Unsubscribe).with_header("id", id.as_str());
        self.request(frame, Kind::Unsubscribe(id.0.clone()))
    }

    /// The next delivered message of any subscription, waiting up to `timeout`.
    /// Ok(None): nothing arrived in time. Messages already received are still returned
    /// after the client failed; then the error.
    pub fn recv(&self, timeout: Duration) -> Result<Option<Message>, ClientError> {
        self.h.inner.next_message(timeout)
    }

    /// Acknowledges `msg` and waits for the receipt (the broker has recorded it). A
    /// message received on an earlier connection is not acked (see the module docs).
    pub fn ack(&self, msg: &Message) -> Result<(), ClientError> {
        self.acknowledge(Command::Ack, msg)
    }

    /// Refuses `msg`: the broker redelivers it or sends it to the dead-letter queue.
    pub fn nack(&self, msg: &Message) -> Result<(), ClientError> {
        self.acknowledge(Command::Nack, msg)
    }

    fn acknowledge(&self, command: Command, msg: &Message) -> Result<(), ClientError> {
        let mut frame = Frame::new(command);
        // 1.2 names the delivery by `id`; 1.1 by subscription and message-id. Sending
        // all of them lets one code path serve both.
        if let Some(id) = &msg.ack_id {
            frame.push_header("id", id.as_str());
        }
        frame.push_header("subscription", msg.subscription.as_str());
        frame.push_header("message-id", msg.message_id.as_str());
        let kind = Kind::Ack {
            generation: msg.generation,
        };
        self.request(frame, kind)
    }

    /// Opens transaction `tx` (confirmed by a receipt). Send in it with a
    /// `("transaction", tx)` header.
    pub fn begin(&self, tx: &str) -> Result<(), ClientError> {
        let frame = Frame::new(Command::Begin).with_header("transaction", tx);
        self.request(frame, Kind::Begin(tx.into()))
    }

    /// Commits `tx` and waits for the receipt. If the connection drops first, the whole
    /// transaction is replayed on the next one (it may then apply twice).
    pub fn commit(&self, tx: &str) -> Result<(), ClientError> {
        let frame = Frame::new(Command::Commit).with_header("transaction", tx);
        self.request(frame, Kind::Commit(tx.into()))
    }

    /// Rolls `tx` back (confirmed by a receipt); it is forgotten at once.
    pub fn abort(&self, tx: &str) -> Result<(), ClientError> {
        let frame = Frame::new(Command::Abort).with_header("transaction", tx);
        self.request(frame, Kind::Abort(tx.into()))
    }

    /// How many times the client reconnected after losing a connection.
    pub fn reconnects(&self) -> u64 {
        self.h.reconnects()
    }

    /// True while a connection is up.
    pub fn is_connected(&self) -> bool {
        self.h.is_connected()
    }

    /// Sends DISCONNECT, waits for its receipt (so everything before it was handled),
    /// and closes. When disconnected, it closes without waiting for a reconnect.
    /// Dropping a client instead closes the connection without DISCONNECT (as a crash
    /// would, minus the kill).
    pub fn close(mut self) -> Result<(), ClientError> {
        let frame = Frame::new(Command::Disconnect);
        let result = match self.submit(frame, Kind::Disconnect) {
            Ok(Some(seq)) => self.request_wait(seq),
            Ok(None) | Err(ClientError::Disconnected { .. }) => Ok(()),
            Err(e) => Err(e),
        };
        self.h.stop();
        result
    }

    fn request_wait(&self, seq: u64) -> Result<(), ClientError> {
        self.h
            .inner
            .wait_answer(seq, self.h.inner.opts.receipt_timeout)
    }
}
