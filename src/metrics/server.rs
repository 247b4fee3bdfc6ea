//! The HTTP thread: `GET /status` (JSON), `GET /metrics` (Prometheus text),
//! `POST /admin/purge` and `POST /admin/delete` (see [`super::admin`]), 404 for
//! anything else. Every status request reads a fresh [`Snapshot`]; nothing here
//! touches a shard beyond loading its published numbers, except the admin operations,
//! which go through [`Admin`] and block this thread until the broker has answered
//! (status requests queue behind them meanwhile).

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::admin::{self, Admin, AdminAuth, AdminError};
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

    /// Starts the HTTP thread. It serves until the process exits. `admin`: the
    /// operations behind `/admin/*` (None: those paths are 404), callable by whom
    /// `auth` allows.
    pub fn serve(
        self,
        info: BrokerInfo,
        shards: Vec<Arc<ShardStats>>,
        admin: Option<Arc<dyn Admin>>,
        auth: AdminAuth,
    ) -> std::io::Result<JoinHandle<()>> {
        let server = tiny_http::Server::from_listener(self.listener, None)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        std::thread::Builder::new()
            .name("tandem-status".into())
            .spawn(move || {
                for request in server.incoming_requests() {
                    respond(request, &info, &shards, admin.as_deref(), &auth);
                }
            })
    }
}

/// An admin operation, by path.
#[derive(Clone, Copy)]
enum Op {
    Purge,
    Delete,
}

fn respond(
    request: tiny_http::Request,
    info: &BrokerInfo,
    shards: &[Arc<ShardStats>],
    admin: Option<&dyn Admin>,
    auth: &AdminAuth,
) {
    use tiny_http::{Method, Response};
    let (path, query) = request.url().split_once('?').unwrap_or((request.url(), ""));
    let op = match path {
        "/admin/purge" => Some(Op::Purge),
        "/admin/delete" => Some(Op::Delete),
        _ => None,
    };
    if let (Some(op), Some(admin)) = (op, admin) {
        let query = query.to_string();
        return respond_admin(request, op, &query, admin, auth);
    }
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

/// `/admin/purge` and `/admin/delete`: POST only, then credentials, then the
/// destination, then the operation. Every answer is JSON.
fn respond_admin(
    request: tiny_http::Request,
    op: Op,
    query: &str,
    admin: &dyn Admin,
    auth: &AdminAuth,
) {
    use tiny_http::Method;
    let mut extra = Vec::new();
    let (status, body) = if *request.method() != Method::Post {
        extra.push(("Allow", "POST"));
        (405, error_json("use POST"))
    } else if !auth.allows(
        request
            .headers()
            .iter()
            .find(|h| h.field.equiv("Authorization"))
            .map(|h| h.value.as_str()),
    ) {
        extra.push(("WWW-Authenticate", r#"Basic realm="tandem""#));
        (
            401,
            error_json("log in (HTTP Basic) as one of the broker's users"),
        )
    } else {
        match admin::queue_from_query(query) {
            Err(why) => (400, error_json(&why)),
            Ok(dest) => {
                let result = match op {
                    Op::Purge => admin.purge(&dest),
                    Op::Delete => admin.delete(&dest),
                };
                let what = match op {
                    Op::Purge => "purge",
                    Op::Delete => "delete",
                };
                match result {
                    Ok(removed) => {
                        tracing::info!(destination = %dest, removed, "admin {what}");
                        (
                            200,
                            serde_json::json!({"destination": dest, "removed": removed})
                                .to_string(),
                        )
                    }
                    Err(e) => {
                        if matches!(e, AdminError::Unavailable(_)) {
                            tracing::debug!(destination = %dest, error = %e, "admin {what} not served");
                        } else {
                            tracing::info!(destination = %dest, error = %e, "admin {what} refused");
                        }
                        (e.status(), error_json(&e.to_string()))
                    }
                }
            }
        }
    };
    let mut response = tiny_http::Response::from_string(body)
        .with_status_code(status)
        .with_header(
            tiny_http::Header::from_bytes("Content-Type", "application/json")
                .expect("static header is valid"),
        );
    for (k, v) in extra {
        response.add_header(tiny_http::Header::from_bytes(k, v).expect("static header is valid"));
    }
    if let Err(e) = request.respond(response) {
        tracing::debug!(error = %e, "admin request not answered");
    }
}

fn error_json(message: &str) -> String {
    serde_json::json!({ "error": message }).to_string()
}
