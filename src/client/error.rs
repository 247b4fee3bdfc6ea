//! `ClientError`: everything a client call can fail with.
//!
//! `Clone` because one failure (failover exhausted, client closed) is handed to every
//! thread waiting on the client; I/O errors are therefore carried as text.

use crate::protocol::openwire::OpenWireError;
use crate::protocol::stomp::StompError;
use crate::uri::UriError;

/// Why a client call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClientError {
    /// The URL does not parse (see [`crate::uri::FailoverUri::parse`]).
    #[error("bad URL: {0}")]
    Uri(#[from] UriError),
    /// The URL names a transport this client does not speak: the STOMP client takes
    /// `stomp://host:port` (or `stomp+nio://`, `stomp+ssl://`), the OpenWire one
    /// `tcp://host:port` (or `nio://`, `ssl://`).
    #[error(
        "unsupported transport {0}: stomp:// and stomp+ssl:// are for the STOMP client, tcp:// and ssl:// for the OpenWire one"
    )]
    Unsupported(String),
    /// The URL names a TLS transport (`ssl://`, `stomp+ssl://`) but the options carry
    /// no TLS configuration (`tls`) to verify the broker's certificate with.
    #[error("{0}: TLS needs a CA file to verify the broker (the client options' `tls`; tandem-load: --ca-file)")]
    TlsNotConfigured(String),
    /// A plain (non-failover) URL could not be connected.
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    /// The broker answered CONNECT with an ERROR (bad login, not serving, ...).
    #[error("broker refused the connection: {0}")]
    Refused(String),
    /// The broker answered a frame with an ERROR naming its receipt.
    #[error("broker error: {message}")]
    Broker { message: String, details: String },
    /// A plain (non-failover) connection was lost; the client is unusable.
    #[error("connection lost: {0}")]
    ConnectionLost(String),
    /// The failover transport gave up after `maxReconnectAttempts` passes over the list.
    #[error("failover gave up after {attempts} attempt(s); last error: {last_error}")]
    FailoverExhausted { attempts: u64, last_error: String },
    /// Still disconnected after the failover `timeout` (ms); the frame was not sent.
    #[error("not connected after waiting {waited_ms} ms (failover timeout)")]
    Disconnected { waited_ms: u64 },
    /// No RECEIPT within the wait; the frame may still take effect (it stays in flight).
    #[error("no receipt {receipt} after {waited_ms} ms")]
    ReceiptTimeout { receipt: String, waited_ms: u64 },
    /// The broker sent bytes that are not STOMP.
    #[error("protocol error from broker: {0}")]
    Protocol(#[from] StompError),
    /// OpenWire: a frame from the broker does not decode, or a value given to the
    /// client cannot be encoded (e.g. a property name over 65535 bytes).
    #[error("OpenWire: {0}")]
    OpenWire(#[from] OpenWireError),
    /// OpenWire: no Response to command `command_id` within the wait; the command may
    /// still take effect (a sync send stays in flight and is replayed after failover).
    #[error("no response to command {command_id} after {waited_ms} ms")]
    ResponseTimeout { command_id: i32, waited_ms: u64 },
    /// An argument the client cannot use (a destination not `/queue/..` or `/topic/..`,
    /// a text body that is not UTF-8, ...). Nothing was sent.
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// `commit`/`abort`/a transactional send named a transaction that is not open, or
    /// `begin` named one that already is.
    #[error("transaction {0:?}: {1}")]
    Transaction(String, &'static str),
    /// The client was closed.
    #[error("client is closed")]
    Closed,
}
