//! The etcd witness: the I/O half of "a network partition never gives two masters".
//!
//! A master/slave pair shares an etcd cluster. The master confirms writes alone only
//! while it holds an etcd lease; a slave takes over only after it acquired the key that
//! lease guards. This module is the I/O: a small blocking etcd v3 client ([`Etcd`],
//! through etcd's JSON gateway) and a thread around it ([`WitnessAgent`]) that the async
//! broker talks to over channels. What to request and when (the decision logic) lives
//! with the pair, not here.
//!
//! # Keys
//!
//! Under a configurable prefix (e.g. `/tandem/pair-a`):
//!
//! * `<prefix>/lease` — attached to the holder's lease, so it exists exactly while
//!   someone holds the right to serve; its value is the holder's current [`Record`].
//!   etcd deletes it when the lease expires or is revoked.
//! * `<prefix>/state` — no lease: the last [`Record`] a holder wrote. It survives the
//!   holder's death, so the next candidate knows which epoch and which in-sync slave the
//!   dead holder last declared ([`Expect::Is`]).
//!
//! # Operations (each one etcd transaction, so atomic)
//!
//! * campaign: grant a lease; then `if create_revision(<prefix>/lease) == 0 && <state
//!   precondition> then put both keys (the lease key with the lease) else read both`.
//! * update: `if lease(<prefix>/lease) == ours then put both keys`.
//! * resign: revoke the lease (etcd deletes the lease key with it).
//!
//! # Why a holder is never wrong about holding
//!
//! A lease granted or renewed by a request *sent* at `t` expires on the etcd leader no
//! earlier than `t + ttl` (the leader starts the TTL when it handles the request, which
//! is after `t`). So the holder counts `valid_until = t + ttl`, measured from before the
//! request, never from the reply. Only after the lease expires (and etcd deletes the
//! lease key) can another campaign succeed. This assumes the two machines' clocks run at
//! about the same rate (no assumption on their offsets): monotonic clocks, both sides.
//!
//! Files: [`record`] the value bytes, [`etcd`] the HTTP/JSON client and its wire
//! format, [`campaign`] the three pair operations, [`agent`] the thread.

pub mod agent;
pub mod campaign;
pub mod etcd;
pub mod record;

pub use agent::{WitnessAgent, WitnessEvent, WitnessHandle, WitnessRequest};
pub use campaign::{Campaign, Expect, Keys};
pub use etcd::{Etcd, EtcdTimeouts, Kv, Lease, LeaseId};
pub use record::Record;

/// Everything the witness can fail with. Text rather than sources: errors are reported
/// as events across threads ([`WitnessEvent::Unreachable`]) and compared in tests.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WitnessError {
    /// The `etcd://host:port,...` URL does not parse.
    #[error("bad witness URL {url:?}: {why}")]
    BadUrl { url: String, why: String },
    /// No endpoint answered: each one failed to connect, timed out, or said it is
    /// unavailable (no leader). Lists what each endpoint did.
    #[error("etcd unreachable: {0}")]
    Unreachable(String),
    /// An endpoint answered the request with an error that another endpoint would
    /// give too (bad request, TTL too large, ...).
    #[error("etcd at {endpoint} refused {path}: HTTP {status}, gRPC code {code}: {message}")]
    Refused {
        endpoint: String,
        path: String,
        status: u16,
        code: i64,
        message: String,
    },
    /// An endpoint answered with something that is not the gateway's JSON as described
    /// in [`etcd`] (not JSON, a missing field, bad base64).
    #[error("unexpected reply from etcd at {endpoint}: {why}")]
    Protocol { endpoint: String, why: String },
    /// A key holds bytes that are not a [`Record`] (someone else wrote it).
    #[error("witness key holds {value:?}, not a record: {why}")]
    BadRecord { value: String, why: String },
    /// The agent's request queue is full; the request was not queued.
    #[error("witness agent busy: {0} requests already queued")]
    AgentBusy(usize),
    /// The agent thread has ended (its event receiver was dropped, or it could not
    /// start); the request was not queued.
    #[error("witness agent stopped")]
    AgentStopped,
    /// The agent thread could not be spawned.
    #[error("cannot start the witness agent thread: {0}")]
    Spawn(String),
}

/// Parses `etcd://h1:2379,h2:2379,h3:2379` into `["h1:2379", "h2:2379", "h3:2379"]`.
///
/// Each endpoint is `host:port`: a DNS name or IPv4 address, or an IPv6 address in
/// brackets (`[::1]:2379`), and a port in 1..=65535. No user, path, query or TLS: the
/// client speaks plain HTTP to the gateway. Duplicates are refused (they would make
/// one etcd member look like two in the fall-over order).
pub fn parse_witness(url: &str) -> Result<Vec<String>, WitnessError> {
    let bad = |why: String| WitnessError::BadUrl {
        url: url.to_string(),
        why,
    };
    let list = url
        .strip_prefix("etcd://")
        .ok_or_else(|| bad("expected etcd://host:port[,host:port...]".to_string()))?;
    if list.is_empty() {
        return Err(bad("no endpoint after etcd://".to_string()));
    }
    let mut endpoints: Vec<String> = Vec::new();
    for ep in list.split(',') {
        check_endpoint(ep).map_err(|why| bad(format!("endpoint {ep:?}: {why}")))?;
        if endpoints.iter().any(|e| e == ep) {
            return Err(bad(format!("endpoint {ep:?} is listed twice")));
        }
        endpoints.push(ep.to_string());
    }
    Ok(endpoints)
}

/// Checks one `host:port` (see [`parse_witness`]); Err says what is wrong.
fn check_endpoint(ep: &str) -> Result<(), String> {
    let (host, port) = ep
        .rsplit_once(':')
        .ok_or("expected host:port (the port is required)")?;
    if host.is_empty() {
        return Err("empty host".into());
    }
    if let Some(inner) = host.strip_prefix('[') {
        let addr = inner.strip_suffix(']').ok_or("unclosed [ in host")?;
        addr.parse::<std::net::Ipv6Addr>()
            .map_err(|_| format!("{addr:?} is not an IPv6 address"))?;
    } else if !host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
    {
        return Err(format!(
            "host {host:?} is not a name or address (IPv6 goes in brackets)"
        ));
    }
    // Digits only: `u16::parse` would also take "+80".
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("port {port:?} is not a number"));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(format!("port {port} is not in 1..=65535")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_endpoint_lists() {
        assert_eq!(
            parse_witness("etcd://h1:2379,h2:2379,10.0.0.3:2379").unwrap(),
            ["h1:2379", "h2:2379", "10.0.0.3:2379"]
        );
        assert_eq!(parse_witness("etcd://[::1]:2379").unwrap(), ["[::1]:2379"]);
    }

    #[test]
    fn rejects_other_urls() {
        for url in [
            "",
            "h1:2379",
            "http://h1:2379",
            "etcd://",
            "etcd://h1",
            "etcd://h1:",
            "etcd://:2379",
            "etcd://h1:0",
            "etcd://h1:65536",
            "etcd://h1:+80",
            "etcd://h1:2379,",
            "etcd://h1:2379,,h2:2379",
            "etcd://h1:2379/path",
            "etcd://user@h1:2379",
            "etcd://h1:2379?x=1",
            "etcd://h1:2379, h2:2379",
            "etcd://::1:2379",
            "etcd://[::1:2379",
            "etcd://[nope]:2379",
            "etcd://h1:2379,h1:2379",
        ] {
            match parse_witness(url) {
                Err(WitnessError::BadUrl { .. }) => {}
                other => panic!("{url:?}: {other:?}"),
            }
        }
    }
}
