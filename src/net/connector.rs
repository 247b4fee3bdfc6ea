//! Transport connectors: the accept loop every shard runs on each listening socket,
//! the per-connector policy (`maximumConnections`, `maxFrameSize`, `waitForSlave`, the
//! pre-login limits `transport.connectAttemptTimeout` and `maxLoginFrameSize`),
//! and the sniffing of a connection's first bytes that sends it to the right loop: a
//! replication Hello to the replication core, an OpenWire WireFormatInfo to
//! [`super::openwire`], anything else to [`super::stomp`] (whose decoder answers
//! garbage with an ERROR). So `tcp://` and `stomp://` connectors both serve both
//! protocols, as ActiveMQ's `auto` transport would.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::FutureExt;

use crate::broker::Router;
use crate::rt::net::{accept_tls, Detached, Listener, ReadHalf};
use crate::rt::{sleep, spawn_local as spawn};

/// Pause after a failed accept (e.g. EMFILE) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Default `transport.connectAttemptTimeout`: how long a connection may take from
/// accept to a completed login (a real client needs milliseconds).
pub const DEFAULT_CONNECT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default `maxLoginFrameSize`: the largest frame accepted before login. A STOMP
/// CONNECT or an OpenWire WireFormatInfo/ConnectionInfo is well under 1 KiB.
pub const DEFAULT_MAX_LOGIN_FRAME_BYTES: usize = 64 * 1024;

/// What a connection that has not logged in yet is allowed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PreLogin {
    /// The connector's `maxFrameSize`, for after the login.
    pub max_frame_bytes: usize,
    /// The connector's `maxLoginFrameSize`.
    pub max_login_frame_bytes: usize,
    /// Not logged in by then: closed.
    pub deadline: Instant,
}

impl PreLogin {
    /// The decoder's bound until login: never above `maxFrameSize`.
    pub fn login_frame_bytes(&self) -> usize {
        self.max_login_frame_bytes.min(self.max_frame_bytes)
    }
}

/// Tells a replication Hello from a connection's first bytes: `None` until enough bytes
/// are in to tell, `Some(false)` as soon as any byte rules it out.
pub type ReplicationSniff = fn(&[u8]) -> Option<bool>;

/// What one transport connector allows, shared by every shard that accepts on it.
pub struct ConnectorPolicy {
    pub name: String,
    /// `?maximumConnections=N`: connections beyond it are closed at once.
    pub max_connections: Option<usize>,
    /// `?wireFormat.maxFrameSize=` (or the broker-wide limit).
    pub max_frame_bytes: usize,
    /// `?transport.connectAttemptTimeout=` (or the broker-wide one): from accept to a
    /// completed login, whatever the protocol; then the connection is closed.
    pub connect_attempt_timeout: Duration,
    /// Largest frame accepted before login (`<tandem maxLoginFrameSize>`), so a
    /// stranger cannot make the broker buffer a `maxFrameSize` frame.
    pub max_login_frame_bytes: usize,
    /// Connections open on this connector, across shards.
    pub open: AtomicUsize,
    /// Where a connection that opens with a replication Hello goes (the replication
    /// core), with its slot under `maximumConnections` (held until the link closes);
    /// `None`: such a connection is closed.
    #[allow(clippy::type_complexity)]
    pub replication: Option<Arc<dyn Fn(Detached, Box<dyn std::any::Any + Send>) + Send + Sync>>,
    /// Says whether a connection's first bytes are a replication Hello. The node
    /// passes the replication protocol's check, as it passes `replication`, so `net`
    /// does not depend on that protocol. `None`: no connection is taken for a
    /// replication link.
    pub replication_sniff: Option<ReplicationSniff>,
    /// Set on a TLS connector (`ssl://`, `stomp+ssl://`, ...): every connection runs
    /// this TLS handshake first, within the login deadline; the protocols then see
    /// plaintext. Client auth (`needClientAuth`/`wantClientAuth`) is in the config.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Clients are served only while this is set (`waitForSlave` holds them until a
    /// slave is in sync); a client connecting meanwhile waits.
    pub clients_open: Arc<AtomicBool>,
}

impl std::fmt::Debug for ConnectorPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectorPolicy")
            .field("name", &self.name)
            .field("max_connections", &self.max_connections)
            .field("max_frame_bytes", &self.max_frame_bytes)
            .field("connect_attempt_timeout", &self.connect_attempt_timeout)
            .field("max_login_frame_bytes", &self.max_login_frame_bytes)
            .field("open", &self.open)
            .field("replication", &self.replication.is_some())
            .field("replication_sniff", &self.replication_sniff.is_some())
            .field("tls", &self.tls.is_some())
            .field("clients_open", &self.clients_open)
            .finish()
    }
}

impl ConnectorPolicy {
    pub fn new(name: &str, max_connections: Option<usize>, max_frame_bytes: usize) -> Self {
        ConnectorPolicy {
            name: name.to_owned(),
            max_connections,
            max_frame_bytes,
            connect_attempt_timeout: DEFAULT_CONNECT_ATTEMPT_TIMEOUT,
            max_login_frame_bytes: DEFAULT_MAX_LOGIN_FRAME_BYTES,
            open: AtomicUsize::new(0),
            replication: None,
            replication_sniff: None,
            tls: None,
            clients_open: Arc::new(AtomicBool::new(true)),
        }
    }
}

/// Counts a connection against its connector for as long as it lives.
struct Admitted(Arc<ConnectorPolicy>);

impl Admitted {
    fn try_new(policy: &Arc<ConnectorPolicy>) -> Option<Admitted> {
        let before = policy.open.fetch_add(1, Ordering::AcqRel);
        let admitted = Admitted(policy.clone());
        match policy.max_connections {
            Some(max) if before >= max => None, // dropping `admitted` gives the slot back
            _ => Some(admitted),
        }
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Accepts connections on this shard until the listener fails for good; each
/// connection runs in its own tasks, so one connection's failure touches no other.
pub async fn serve_connector(listener: Listener, router: Router, policy: Arc<ConnectorPolicy>) {
    let boot_nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    loop {
        match listener.accept().await {
            Ok((mut rd, mut wr, peer)) => {
                let accepted = Instant::now();
                let Some(admitted) = Admitted::try_new(&policy) else {
                    tracing::warn!(connector = %policy.name, %peer, "maximumConnections reached; connection refused");
                    spawn(async move { wr.shutdown().await });
                    continue;
                };
                let router = router.clone();
                let policy = policy.clone();
                spawn(async move {
                    let mut limits = PreLogin {
                        max_frame_bytes: policy.max_frame_bytes,
                        max_login_frame_bytes: policy.max_login_frame_bytes,
                        deadline: accepted + policy.connect_attempt_timeout,
                    };
                    if let Some(config) = &policy.tls {
                        let handshake = accept_tls(rd, wr, config.clone());
                        let expire = async {
                            sleep(limits.deadline.saturating_duration_since(Instant::now())).await;
                            Err(std::io::Error::new(
                                std::io::ErrorKind::TimedOut,
                                "no TLS handshake within transport.connectAttemptTimeout",
                            ))
                        };
                        let done = handshake.or(expire).await;
                        router.tls_handshake(done.is_ok());
                        match done {
                            Ok(halves) => (rd, wr) = halves,
                            Err(e) => {
                                // A plain-text client, a failed certificate check, a
                                // silent peer: this connection only.
                                tracing::info!(connector = %policy.name, %peer, error = %e, "TLS handshake failed; connection closed");
                                return;
                            }
                        }
                    }
                    let protocol = match sniff(&mut rd, limits.deadline, policy.replication_sniff)
                        .await
                    {
                        Opening::Closed => return,
                        Opening::Replication => {
                            match (&policy.replication, rd.detach(wr)) {
                                (Some(hand_off), Ok(stream)) => {
                                    hand_off(stream, Box::new(admitted))
                                }
                                (None, _) => {
                                    tracing::warn!(%peer, "replication link refused: this node does not accept slaves now")
                                }
                                (_, Err(e)) => {
                                    tracing::warn!(%peer, error = %e, "cannot hand the replication link over")
                                }
                            }
                            return;
                        }
                        Opening::OpenWire => Protocol::OpenWire,
                        Opening::Other => Protocol::Stomp,
                    };
                    // `waitForSlave`: clients wait until the pair is in sync; the wait is
                    // ours, so the login deadline starts again after it.
                    if !policy.clients_open.load(Ordering::Acquire) {
                        while !policy.clients_open.load(Ordering::Acquire) {
                            sleep(Duration::from_millis(10)).await;
                        }
                        limits.deadline = Instant::now() + policy.connect_attempt_timeout;
                    }
                    let run = match protocol {
                        Protocol::Stomp => AssertUnwindSafe(
                            super::stomp::run_connection(rd, wr, peer, router, boot_nanos, limits)
                                .boxed_local(),
                        ),
                        Protocol::OpenWire => AssertUnwindSafe(
                            super::openwire::run_connection(
                                rd, wr, peer, router, boot_nanos, limits,
                            )
                            .boxed_local(),
                        ),
                    };
                    if run.catch_unwind().await.is_err() {
                        tracing::error!(%peer, ?protocol, "connection panicked; closed");
                    }
                    drop(admitted);
                });
            }
            // The listener was shut down (the node is stopping): accept() says EINVAL.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                tracing::debug!(connector = %policy.name, "listener closed; accept loop ends");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

/// Which client protocol a connection speaks.
#[derive(Clone, Copy, Debug)]
enum Protocol {
    Stomp,
    OpenWire,
}

/// What a connection's first bytes say it is.
enum Opening {
    Replication,
    OpenWire,
    /// STOMP, or something the STOMP decoder will refuse with an ERROR.
    Other,
    Closed,
}

/// How long to wait for a connection's first bytes before treating it as STOMP (a
/// slave's Hello, like a client's CONNECT, is its first write).
const FIRST_BYTES_WAIT: Duration = Duration::from_millis(500);

/// Peeks at the first bytes (without consuming them) until they tell a replication
/// Hello or an OpenWire WireFormatInfo from anything else. STOMP frames start with a
/// command or an EOL, which the first five bytes already rule out as either. A peer
/// still undecided at `deadline` (the login deadline) is closed. `replication`: the
/// replication Hello check (see [`ConnectorPolicy::replication_sniff`]).
async fn sniff(
    rd: &mut ReadHalf,
    deadline: Instant,
    replication: Option<ReplicationSniff>,
) -> Opening {
    let mut buf = [0u8; 21];
    loop {
        // A silent peer goes to the STOMP loop, whose CONNECT timeout applies.
        let peek = async { Some(rd.peek(&mut buf).await) };
        let quiet = async {
            sleep(FIRST_BYTES_WAIT).await;
            None
        };
        let n = match peek.or(quiet).await {
            None => return Opening::Other,
            Some(Ok(0) | Err(_)) => return Opening::Closed,
            Some(Ok(n)) => n,
        };
        let first = &buf[..n];
        if n >= 13 && first[4] == 1 && &first[5..13] == b"ActiveMQ" {
            return Opening::OpenWire;
        }
        let looks_like_replication = match replication {
            Some(check) => check(first),
            None => may_be_openwire(first),
        };
        match looks_like_replication {
            Some(true) => return Opening::Replication,
            Some(false) => return Opening::Other,
            // Kind 1 and too few bytes for either magic: OpenWire or replication.
            None => {}
        }
        if Instant::now() >= deadline {
            tracing::debug!("no login within transport.connectAttemptTimeout (opening bytes incomplete); closed");
            return Opening::Closed;
        }
        // Fewer bytes than it takes to tell: wait for more (rare: a client's first
        // write is a whole frame).
        sleep(Duration::from_millis(2)).await;
    }
}

/// The check without a replication one: undecided only while the first bytes may
/// still be an OpenWire opening (type 1 at offset 4, `ActiveMQ` at 5..13), as the
/// replication check is then too.
fn may_be_openwire(first: &[u8]) -> Option<bool> {
    match first.get(4) {
        Some(&kind) if kind != 1 => Some(false),
        _ if first.len() < 13 => None,
        _ => Some(false),
    }
}
