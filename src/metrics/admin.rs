//! The administrative half of the endpoint: `POST /admin/purge` and
//! `POST /admin/delete` (`?destination=/queue/NAME`, or `queue://NAME`), what ActiveMQ's
//! web console and JMX offer as "purge" and "delete" on a queue.
//!
//! This module knows HTTP, not the broker: the operations are behind [`Admin`], which
//! `node` implements (it routes to the shard that owns the queue). Access is HTTP
//! Basic with a `simpleAuthenticationPlugin` user of the admin group when the broker
//! has the plugin ([`AdminAuth`]), and only for requests a browser cannot send across
//! sites ([`same_site`]).

use base64::Engine;

/// The broker operations behind `/admin/*`. `destination` is always a queue, spelled
/// `/queue/NAME` (the endpoint has checked and normalised it). Both return how many
/// messages were removed, once that is durable (and held by the slave, when one is in
/// sync).
pub trait Admin: Send + Sync {
    /// Removes every message of the queue.
    fn purge(&self, destination: &str) -> Result<u64, AdminError>;
    /// Removes every message of the queue and the queue itself.
    fn delete(&self, destination: &str) -> Result<u64, AdminError>;
}

/// Why an admin operation failed; each maps to one HTTP status.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    /// 404: no such queue.
    #[error("{0}")]
    NotFound(String),
    /// 400: not something the operation applies to.
    #[error("{0}")]
    BadRequest(String),
    /// 409: refused in the queue's current state (a delete while it has consumers).
    #[error("{0}")]
    Conflict(String),
    /// 503: this node does not serve (a slave, a master still starting) or did not
    /// answer in time.
    #[error("{0}")]
    Unavailable(String),
}

impl AdminError {
    pub fn status(&self) -> u16 {
        match self {
            AdminError::NotFound(_) => 404,
            AdminError::BadRequest(_) => 400,
            AdminError::Conflict(_) => 409,
            AdminError::Unavailable(_) => 503,
        }
    }
}

/// A user of the broker's authentication plugin, as the endpoint checks it.
#[derive(Clone)]
pub struct AdminUser {
    pub username: String,
    pub password: String,
    pub groups: Vec<String>,
}

/// Who may call `/admin/*`.
#[derive(Clone)]
pub enum AdminAuth {
    /// Anyone who reaches the port (the broker has no authentication plugin; the
    /// endpoint listens on 127.0.0.1 unless `statusHost` says otherwise).
    Open,
    /// HTTP Basic as one of `users` whose groups include `group` (`<tandem adminGroup>`,
    /// default `admins`): the broker's `simpleAuthenticationPlugin` users.
    Basic {
        users: Vec<AdminUser>,
        group: String,
    },
}

impl std::fmt::Debug for AdminAuth {
    // Never print passwords.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdminAuth::Open => f.write_str("Open"),
            AdminAuth::Basic { users, group } => {
                write!(f, "Basic({} users, group {group})", users.len())
            }
        }
    }
}

/// Why an admin request was refused before the operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Denied {
    /// 401: no credentials, or not a user's.
    Unauthenticated,
    /// 403: a user, but not in the admin group (the user's name).
    NotAdmin(String),
}

/// Name shown in the admin log line when the broker has no authentication plugin.
pub const ANONYMOUS: &str = "<anonymous>";

impl AdminAuth {
    /// Who makes a request with this `Authorization` header value (if any), if they may.
    pub fn check(&self, authorization: Option<&str>) -> Result<String, Denied> {
        let (users, group) = match self {
            AdminAuth::Open => return Ok(ANONYMOUS.to_owned()),
            AdminAuth::Basic { users, group } => (users, group),
        };
        let Some((user, pass)) = authorization.and_then(basic_credentials) else {
            return Err(Denied::Unauthenticated);
        };
        // Every entry is compared in full and in constant time, so the time taken says
        // nothing about which user exists or how much of a password matched.
        use subtle::ConstantTimeEq;
        let mut found: Option<&AdminUser> = None;
        for u in users {
            let hit = u.username.as_bytes().ct_eq(user.as_bytes())
                & u.password.as_bytes().ct_eq(pass.as_bytes());
            if bool::from(hit) {
                found = Some(u);
            }
        }
        match found {
            None => Err(Denied::Unauthenticated),
            Some(u) if u.groups.iter().any(|g| g == group) => Ok(u.username.clone()),
            Some(u) => Err(Denied::NotAdmin(u.username.clone())),
        }
    }
}

/// Whether a request may be a browser's cross-site request, which must not reach an
/// admin operation (a page on any site can make a browser POST a form to 127.0.0.1).
///
/// Required: a header no HTML form or "simple" cross-origin request can carry without a
/// CORS preflight (which this endpoint never grants): `X-Tandem-Admin: 1`, or
/// `Content-Type: application/json`. When present, `Origin` must be the endpoint
/// itself (same host and port as `Host`), and `Host` must name the endpoint: an IP
/// address, `localhost`, or `status_host` as configured (a DNS-rebinding page sends its
/// own name). `Err` says what is wrong.
pub fn same_site(header: impl Fn(&str) -> Option<String>, status_host: &str) -> Result<(), String> {
    let custom = header("X-Tandem-Admin").is_some_and(|v| v.trim() == "1");
    let json = header("Content-Type").is_some_and(|v| {
        v.split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
    });
    if !custom && !json {
        return Err(
            "admin requests need the header X-Tandem-Admin: 1 (or Content-Type: application/json)"
                .into(),
        );
    }
    let host = header("Host");
    if let Some(h) = &host {
        let name = host_name(h);
        let ok = name.parse::<std::net::IpAddr>().is_ok()
            || name.eq_ignore_ascii_case("localhost")
            || name.eq_ignore_ascii_case(status_host);
        if !ok {
            return Err(format!("Host {h} does not name this endpoint"));
        }
    }
    if let Some(origin) = header("Origin") {
        let authority = origin
            .split_once("://")
            .map(|(_, rest)| rest.trim_end_matches('/'));
        // Same host name, and the same port when `Host` names one.
        let same = match (authority, &host) {
            (Some(a), Some(h)) => {
                host_name(a).eq_ignore_ascii_case(host_name(h))
                    && (port_of(h).is_none() || port_of(h) == port_of(a))
            }
            _ => false,
        };
        if !same {
            return Err(format!("cross-site request from Origin {origin} refused"));
        }
    }
    Ok(())
}

/// The host part of a `Host` value (`[::1]:8161`, `127.0.0.1:8161`, `name`).
fn host_name(host: &str) -> &str {
    let host = host.trim();
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

/// The port part of a `Host` or Origin authority, if any.
fn port_of(authority: &str) -> Option<&str> {
    let authority = authority.trim();
    let after_host = match authority.strip_prefix('[') {
        Some(rest) => rest.split_once(']').map_or("", |(_, p)| p),
        None => authority,
    };
    after_host.rsplit_once(':').map(|(_, p)| p)
}

/// (user, password) from `Basic base64(user:password)`.
fn basic_credentials(value: &str) -> Option<(String, String)> {
    let (scheme, token) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some((user.to_string(), pass.to_string()))
}

/// The `destination` parameter of a query string, normalised to `/queue/NAME`.
/// Accepts `/queue/NAME` and `queue://NAME` (percent-encoded or not); topics,
/// temporary destinations, other spellings and a missing or empty name are errors.
pub fn queue_from_query(query: &str) -> Result<String, String> {
    let mut found = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if percent_decode(key).as_deref() == Some("destination") {
            if found.is_some() {
                return Err("destination given more than once".into());
            }
            found = Some(
                percent_decode(value)
                    .ok_or_else(|| "destination is not valid percent-encoded UTF-8".to_string())?,
            );
        }
    }
    let raw = found.ok_or_else(|| "missing destination=/queue/NAME".to_string())?;
    let name = raw
        .strip_prefix("/queue/")
        .or_else(|| raw.strip_prefix("queue://"));
    match name {
        Some(n) if !n.is_empty() => Ok(format!("/queue/{n}")),
        Some(_) => Err(format!("{raw}: the queue name is empty")),
        None if raw.starts_with("/topic/") || raw.starts_with("topic://") => Err(format!(
            "{raw} is a topic: only queues can be purged or deleted"
        )),
        None => Err(format!(
            "{raw}: expected a queue, /queue/NAME or queue://NAME"
        )),
    }
}

/// Decodes `%XX` escapes and `+` (a space, as in HTML forms); None if an escape is
/// malformed or the result is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_are_queues_in_either_spelling() {
        assert_eq!(
            queue_from_query("destination=/queue/a").as_deref(),
            Ok("/queue/a")
        );
        assert_eq!(
            queue_from_query("x=1&destination=queue://a.b").as_deref(),
            Ok("/queue/a.b")
        );
        assert_eq!(
            queue_from_query("destination=%2Fqueue%2Fa%20b").as_deref(),
            Ok("/queue/a b")
        );
        assert_eq!(
            queue_from_query("destination=queue%3A%2F%2Fx").as_deref(),
            Ok("/queue/x")
        );
        for bad in [
            "",
            "destination=",
            "destination=/queue/",
            "destination=queue://",
            "destination=/topic/t",
            "destination=topic://t",
            "destination=/temp-queue/x",
            "destination=a",
            "destination=%2",
            "destination=%ZZ",
            "destination=%FF",
            "destination=/queue/a&destination=/queue/b",
        ] {
            assert!(queue_from_query(bad).is_err(), "{bad:?} accepted");
        }
        assert!(queue_from_query("destination=/topic/t")
            .unwrap_err()
            .contains("topic"));
    }

    #[test]
    fn basic_auth_checks_user_password_and_group() {
        let user = |n: &str, p: &str, g: &[&str]| AdminUser {
            username: n.into(),
            password: p.into(),
            groups: g.iter().map(|s| s.to_string()).collect(),
        };
        let auth = AdminAuth::Basic {
            users: vec![
                user("admin", "s3cret", &["admins", "users"]),
                user("ops", "", &["admins"]),
                user("app", "pw", &["users"]),
            ],
            group: "admins".into(),
        };
        let header = |u: &str, p: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        };
        assert_eq!(
            auth.check(Some(&header("admin", "s3cret"))),
            Ok("admin".into())
        );
        assert_eq!(auth.check(Some(&header("ops", ""))), Ok("ops".into()));
        assert_eq!(
            auth.check(Some(&header("admin", "s3cret").replace("Basic", "basic"))),
            Ok("admin".into())
        );
        assert_eq!(
            auth.check(Some(&header("app", "pw"))),
            Err(Denied::NotAdmin("app".into()))
        );
        for bad in [
            None,
            Some(header("admin", "wrong")),
            Some(header("admin", "s3cret2")),
            Some(header("nobody", "s3cret")),
            Some("Basic !!!".to_string()),
            Some("Bearer abc".to_string()),
        ] {
            assert_eq!(
                auth.check(bad.as_deref()),
                Err(Denied::Unauthenticated),
                "{bad:?}"
            );
        }
        assert_eq!(AdminAuth::Open.check(None), Ok(ANONYMOUS.into()));
        assert!(!format!("{auth:?}").contains("s3cret"));
    }

    #[test]
    fn cross_site_requests_are_refused() {
        let check = |headers: &[(&str, &str)]| {
            let headers: Vec<(String, String)> = headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            same_site(
                |name| {
                    headers
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(name))
                        .map(|(_, v)| v.clone())
                },
                "broker1.internal",
            )
        };
        assert!(check(&[("X-Tandem-Admin", "1"), ("Host", "127.0.0.1:8161")]).is_ok());
        assert!(check(&[("Content-Type", "application/json; charset=utf-8")]).is_ok());
        assert!(check(&[("X-Tandem-Admin", "1"), ("Host", "[::1]:8161")]).is_ok());
        assert!(check(&[("X-Tandem-Admin", "1"), ("Host", "broker1.internal:8161")]).is_ok());
        assert!(check(&[
            ("X-Tandem-Admin", "1"),
            ("Host", "localhost:8161"),
            ("Origin", "http://localhost:8161")
        ])
        .is_ok());
        assert!(check(&[
            ("X-Tandem-Admin", "1"),
            ("Host", "127.0.0.1"),
            ("Origin", "http://127.0.0.1:8161")
        ])
        .is_ok());
        for bad in [
            vec![
                ("X-Tandem-Admin", "1"),
                ("Host", "127.0.0.1:8161"),
                ("Origin", "http://127.0.0.1:9999"),
            ],
            vec![("Host", "127.0.0.1:8161")],
            vec![("Content-Type", "application/x-www-form-urlencoded")],
            vec![("Content-Type", "text/plain")],
            vec![("X-Tandem-Admin", "0")],
            vec![
                ("X-Tandem-Admin", "1"),
                ("Host", "127.0.0.1:8161"),
                ("Origin", "http://evil.example"),
            ],
            vec![("X-Tandem-Admin", "1"), ("Origin", "null")],
            vec![("X-Tandem-Admin", "1"), ("Host", "evil.example:8161")],
        ] {
            assert!(check(&bad).is_err(), "{bad:?}");
        }
    }
}
