//! The wire protocol behind a small trait, so the workload does not know which one it
//! drives: [`stomp`] and [`openwire`], the `tandem` library's two blocking clients
//! with failover. The trait is shaped like them (blocking calls, pipelined sends that
//! return a pending confirm, one inbox for every subscription), so each implementation
//! is a few dozen lines of forwarding.

pub mod openwire;
pub mod stomp;

use std::sync::Arc;
use std::time::Duration;

use tandem::client::TlsClientConfig;

use crate::cli::{Ack, DestKind};

/// Why a transport call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportError {
    /// From either client (they share one error type).
    #[error(transparent)]
    Client(#[from] tandem::client::ClientError),
}

impl TransportError {
    /// True when the connection is gone for good (no later call can succeed), so a
    /// worker stops instead of counting one error per remaining message.
    pub fn is_fatal(&self) -> bool {
        use tandem::client::ClientError as E;
        match self {
            TransportError::Client(e) => matches!(
                e,
                E::Closed
                    | E::ConnectionLost(_)
                    | E::FailoverExhausted { .. }
                    | E::Connect { .. }
                    | E::Refused(_)
                    | E::Unsupported(_)
                    | E::Uri(_)
                    | E::Invalid(_)
                    | E::TlsNotConfigured(_)
            ),
        }
    }
}

/// Connection settings that are not in the URL.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    pub user: Option<String>,
    pub password: Option<String>,
    /// Names the connection in the broker's logs (STOMP `client-id`, JMS clientID).
    pub client_id: Option<String>,
    /// For TLS URLs (`ssl://`, `stomp+ssl://`): what to trust and present; built once
    /// from `--ca-file`, `--cert-file`, `--key-file`.
    pub tls: Option<Arc<TlsClientConfig>>,
}

/// Where messages go: the tool's `/queue/NAME` or `/topic/NAME` syntax, split.
/// Both clients take `full` as is; `kind` picks OpenWire's default prefetch.
#[derive(Debug, Clone)]
pub struct Destination {
    pub kind: DestKind,
    /// As given (`/queue/load`): STOMP's own syntax.
    pub full: String,
}

impl Destination {
    pub fn parse(full: &str, kind: DestKind) -> Destination {
        Destination {
            kind,
            full: full.to_string(),
        }
    }
}

/// How one message is sent.
#[derive(Debug, Clone, Copy)]
pub struct SendOptions<'a> {
    pub persistent: bool,
    /// Inside this open transaction.
    pub transaction: Option<&'a str>,
}

/// A sent message whose broker confirmation (STOMP RECEIPT, OpenWire Response) may
/// still be on its way.
pub trait Pending: Send + 'static {
    /// Waits up to `timeout` for the confirmation.
    fn wait(self, timeout: Duration) -> Result<(), TransportError>;
}

/// One received message.
pub trait Delivery: Send + 'static {
    fn body(&self) -> &[u8];
    /// The broker marked it as delivered before (STOMP `redelivered:true`, JMS
    /// `JMSRedelivered`): a repeat the client was told about, not a duplicate.
    fn redelivered(&self) -> bool;
}

/// One broker connection (or failover set), shared by reference between a producer
/// thread and its confirmer thread, so `Sync`.
pub trait Transport: Send + Sync + Sized + 'static {
    type Pending: Pending;
    type Delivery: Delivery;

    fn connect(url: &str, opts: &ConnectOptions) -> Result<Self, TransportError>;
    /// Sends and waits for the broker's confirmation.
    fn send(
        &self,
        dest: &Destination,
        body: &[u8],
        opts: SendOptions,
    ) -> Result<(), TransportError>;
    /// Sends and returns once written; the confirmation is waited for later.
    fn send_async(
        &self,
        dest: &Destination,
        body: &[u8],
        opts: SendOptions,
    ) -> Result<Self::Pending, TransportError>;
    /// Subscribes (confirmed); `prefetch` None leaves the broker's default.
    fn subscribe(
        &self,
        dest: &Destination,
        ack: Ack,
        prefetch: Option<u32>,
    ) -> Result<(), TransportError>;
    /// The next message of any subscription; Ok(None) if none came within `timeout`.
    fn recv(&self, timeout: Duration) -> Result<Option<Self::Delivery>, TransportError>;
    /// Acknowledges `d` (cumulatively in `Ack::Client` mode) and waits for the broker.
    fn ack(&self, d: &Self::Delivery) -> Result<(), TransportError>;
    fn begin(&self, tx: &str) -> Result<(), TransportError>;
    fn commit(&self, tx: &str) -> Result<(), TransportError>;
    /// Reconnections after a lost connection so far.
    fn reconnects(&self) -> u64;
    /// Closes cleanly (everything sent before is handled by the broker).
    fn close(self) -> Result<(), TransportError>;
}
