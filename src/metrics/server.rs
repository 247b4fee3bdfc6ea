//! The endpoint: `GET /status` (JSON), `GET /metrics` (Prometheus text),
//! `POST /admin/purge` and `POST /admin/delete` (see [`super::admin`]), 404 for
//! anything else, served by [`super::http`] (bounded connections, read deadlines).
//! Every status request reads a fresh [`Snapshot`]; nothing here touches a shard
//! beyond loading its published numbers, except the admin operations, which go through
//! [`Admin`] and block their own connection's thread until the broker has answered.
//!
//! An admin request passes, in order: POST (405), same-site checks (403), credentials
//! of an admin-group user (401 / 403), the destination (400), then the operation. Each
//! one that gets to the credentials is logged with the user and the peer address.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::admin::{self, Admin, AdminAuth, AdminError, Denied};
use super::http::{self, HttpLimits, Request, Response};
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
    /// `auth` allows; `status_host`: the configured host name the endpoint answers to
    /// besides IP addresses and `localhost` (see [`admin::same_site`]).
    pub fn serve(
        self,
        info: BrokerInfo,
        shards: Vec<Arc<ShardStats>>,
        admin: Option<Arc<dyn Admin>>,
        auth: AdminAuth,
        status_host: String,
    ) -> std::io::Result<JoinHandle<()>> {
        let handler = move |request: &Request| {
            respond(
                request,
                &info,
                &shards,
                admin.as_deref(),
                &auth,
                &status_host,
            )
        };
        http::serve(self.listener, HttpLimits::default(), Arc::new(handler))
    }
}

/// An admin operation, by path.
#[derive(Clone, Copy)]
enum Op {
    Purge,
    Delete,
}

fn respond(
    request: &Request,
    info: &BrokerInfo,
    shards: &[Arc<ShardStats>],
    admin: Option<&dyn Admin>,
    auth: &AdminAuth,
    status_host: &str,
) -> Response {
    let op = match request.path.as_str() {
        "/admin/purge" => Some(Op::Purge),
        "/admin/delete" => Some(Op::Delete),
        _ => None,
    };
    if let (Some(op), Some(admin)) = (op, admin) {
        return respond_admin(request, op, admin, auth, status_host);
    }
    let get = matches!(request.method.as_str(), "GET" | "HEAD");
    let (status, content_type, body) = match (get, request.path.as_str()) {
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
    Response::new(status, content_type, body)
}

/// `/admin/purge` and `/admin/delete`. Every answer is JSON.
fn respond_admin(
    request: &Request,
    op: Op,
    admin: &dyn Admin,
    auth: &AdminAuth,
    status_host: &str,
) -> Response {
    let json = |status: u16, body: String| Response::new(status, "application/json", body);
    let what = match op {
        Op::Purge => "purge",
        Op::Delete => "delete",
    };
    let peer = request.peer;
    if request.method != "POST" {
        return json(405, error_json("use POST")).with_header("Allow", "POST");
    }
    if let Err(why) = admin::same_site(|h| request.header(h).map(str::to_owned), status_host) {
        tracing::warn!(%peer, op = what, reason = %why, "admin request refused: cross-site");
        return json(403, error_json(&why));
    }
    let user = match auth.check(request.header("Authorization")) {
        Ok(user) => user,
        Err(Denied::Unauthenticated) => {
            tracing::warn!(%peer, op = what, "admin request refused: no valid credentials");
            return json(
                401,
                error_json("log in (HTTP Basic) as a user of the broker's admin group"),
            )
            .with_header("WWW-Authenticate", r#"Basic realm="tandem""#);
        }
        Err(Denied::NotAdmin(user)) => {
            tracing::warn!(%peer, %user, op = what, "admin request refused: not in the admin group");
            return json(
                403,
                error_json(&format!("user {user} is not in the broker's admin group")),
            );
        }
    };
    let dest = match admin::queue_from_query(&request.query) {
        Ok(dest) => dest,
        Err(why) => {
            tracing::info!(%peer, %user, op = what, reason = %why, "admin request refused: bad destination");
            return json(400, error_json(&why));
        }
    };
    let result = match op {
        Op::Purge => admin.purge(&dest),
        Op::Delete => admin.delete(&dest),
    };
    match result {
        Ok(removed) => {
            tracing::info!(%peer, %user, destination = %dest, removed, "admin {what}");
            json(
                200,
                serde_json::json!({"destination": dest, "removed": removed}).to_string(),
            )
        }
        Err(e) => {
            if matches!(e, AdminError::Unavailable(_)) {
                tracing::info!(%peer, %user, destination = %dest, error = %e, "admin {what} not served");
            } else {
                tracing::info!(%peer, %user, destination = %dest, error = %e, "admin {what} refused");
            }
            json(e.status(), error_json(&e.to_string()))
        }
    }
}

fn error_json(message: &str) -> String {
    serde_json::json!({ "error": message }).to_string()
}
