//! The administrative half of the endpoint: `POST /admin/purge` and
//! `POST /admin/delete` (`?destination=/queue/NAME`, or `queue://NAME`), what ActiveMQ's
//! web console and JMX offer as "purge" and "delete" on a queue.
//!
//! This module knows HTTP, not the broker: the operations are behind [`Admin`], which
//! `node` implements (it routes to the shard that owns the queue). Access is HTTP
//! Basic with the broker's `simpleAuthenticationPlugin` users when it has any
//! ([`AdminAuth`]).

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

/// Who may call `/admin/*`.
#[derive(Clone)]
pub enum AdminAuth {
    /// Anyone who reaches the port (the broker has no users).
    Open,
    /// HTTP Basic with one of these (username, password) pairs: the broker's
    /// `simpleAuthenticationPlugin` users.
    Basic(Vec<(String, String)>),
}

impl std::fmt::Debug for AdminAuth {
    // Never print passwords.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdminAuth::Open => f.write_str("Open"),
            AdminAuth::Basic(users) => write!(f, "Basic({} users)", users.len()),
        }
    }
}

impl AdminAuth {
    /// Whether a request with this `Authorization` header value (if any) may proceed.
    pub fn allows(&self, authorization: Option<&str>) -> bool {
        let users = match self {
            AdminAuth::Open => return true,
            AdminAuth::Basic(users) => users,
        };
        let Some((user, pass)) = authorization.and_then(basic_credentials) else {
            return false;
        };
        // Every entry is compared in full, so the time taken says nothing about which
        // user or how much of a password matched.
        users.iter().fold(false, |ok, (u, p)| {
            ok | (same(u.as_bytes(), user.as_bytes()) & same(p.as_bytes(), pass.as_bytes()))
        })
    }
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

/// Byte equality in time that depends only on the lengths.
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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
    fn basic_auth_checks_user_and_password() {
        let auth = AdminAuth::Basic(vec![
            ("admin".into(), "s3cret".into()),
            ("ops".into(), "".into()),
        ]);
        let header = |u: &str, p: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        };
        assert!(auth.allows(Some(&header("admin", "s3cret"))));
        assert!(auth.allows(Some(&header("ops", ""))));
        assert!(auth.allows(Some(&header("admin", "s3cret").replace("Basic", "basic"))));
        assert!(!auth.allows(None));
        assert!(!auth.allows(Some(&header("admin", "wrong"))));
        assert!(!auth.allows(Some(&header("admin", "s3cret2"))));
        assert!(!auth.allows(Some(&header("nobody", "s3cret"))));
        assert!(!auth.allows(Some("Basic !!!")));
        assert!(!auth.allows(Some("Bearer abc")));
        assert!(AdminAuth::Open.allows(None));
        assert!(!format!("{auth:?}").contains("s3cret"));
    }
}
