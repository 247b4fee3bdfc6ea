//! The HTTP thread: `GET /status` (JSON), `GET /metrics` (Prometheus text), 404 for
//! anything else. Every request reads a fresh [`Snapshot`]; nothing here touches a
//! shard beyond loading its published numbers.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::prom;
use super::snapshot::{BrokerInfo, Snapshot};
use super::stats::ShardStats;

/// The endpoint's socket, bound before the shards start (so a port in use fails
/// start-up early) and served once they are ready.
pub struct StatusListener {
    listener: TcpListener,
}

impl StatusListener {
    /// Binds `addr` (port 0 picks a free port). A port in use is an error here, not a
    /// silent second listener: std's `bind` sets `SO_REUSEADDR` only, never
    /// `SO_REUSEPORT`.
    pub fn bind(addr: SocketAddr) -> std::io::Result<StatusListener> {
        Ok(StatusListener {
            listener: TcpListener::bind(addr)?,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Starts the HTTP thread. It serves until the process exits.
    pub fn serve(
        self,
        info: BrokerInfo,
        shards: Vec<Arc<ShardStats>>,
    ) -> std::io::Result<JoinHandle<()>> {
        let server = tiny_http::Server::from_listener(self.listener, None)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        std::thread::Builder::new()
            .name("tandem-status".into())
            .spawn(move || {
                for request in server.incoming_requests() {
                    respond(request, &info, &shards);
                }
            })
    }
}

fn respond(request: tiny_http::Request, info: &BrokerInfo, shards: &[Arc<ShardStats>]) {
    use tiny_http::{Method, Response};
    let path = request.url().split('?').next().unwrap_or("");
    let get = matches!(request.method(), Method::Get | Method::Head);
    let (status, content_type, body) = match (get, path) {
        (true, "/status") => (
            200,
            "application/json",
            Snapshot::collect(info, shards).to_json(),
        ),
        (true, "/metrics") => match prom::encode(Snapshot::collect(info, shards)) {
            Ok(text) => (200, prom::CONTENT_TYPE, text),
            Err(e) => (500, "text/plain", format!("cannot encode metrics: {e}\n")),
        },
        _ => (
            404,
            "text/plain",
            "not found: try /status or /metrics\n".into(),
        ),
    };
    let header = tiny_http::Header::from_bytes("Content-Type", content_type)
        .expect("static header is valid");
    let response = Response::from_string(body)
        .with_status_code(status)
        .with_header(header);
    if let Err(e) = request.respond(response) {
        // The client went away; nothing to do for the broker.
        tracing::debug!(error = %e, "status request not answered");
    }
}
