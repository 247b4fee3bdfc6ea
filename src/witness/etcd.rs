//! A small blocking etcd v3 client over etcd's JSON gateway (HTTP/1.1 through `ureq`).
//!
//! Every request goes to one endpoint at a time, starting with the one that answered
//! last; a connection error, a timeout, or an "unavailable" answer (a member without a
//! leader) moves on to the next. Every request is bounded: [`EtcdTimeouts`] per
//! attempt, and callers with a deadline (the agent renewing a lease) cap it further.
//! Retrying on another member can apply a write twice if the first attempt's reply was
//! lost; the operations built on this client ([`super::campaign`]) are written so that
//! a repeat is harmless.
//!
//! # Wire format (etcd 3.4 gRPC gateway, `POST /v3/...`, JSON body)
//!
//! Requests (the gateway accepts both the proto's snake_case and camelCase names; we
//! send snake_case, and `ID`/`TTL` as the proto spells them):
//!
//! ```text
//! /v3/lease/grant      {"TTL":"2"}
//! /v3/lease/keepalive  {"ID":"<lease>"}
//! /v3/lease/revoke     {"ID":"<lease>"}
//! /v3/kv/range         {"key":"<b64>"}
//! /v3/kv/put           {"key":"<b64>","value":"<b64>","lease":"<lease>"}
//! /v3/kv/txn           {"compare":[C...],"success":[O...],"failure":[O...]}
//!   C = {"target":"CREATE","result":"EQUAL","key":"<b64>","create_revision":"0"}
//!     | {"target":"LEASE", "result":"EQUAL","key":"<b64>","lease":"<lease>"}
//!     | {"target":"VALUE", "result":"EQUAL","key":"<b64>","value":"<b64>"}
//!   O = {"request_put":{...as /v3/kv/put}} | {"request_range":{"key":"<b64>"}}
//! ```
//!
//! Replies (HTTP 200), the fields we read:
//!
//! ```text
//! grant      {"header":{..},"ID":"7587","TTL":"2"}
//! keepalive  {"result":{"header":{..},"ID":"7587","TTL":"2"}}   TTL absent: lease gone
//! revoke     {"header":{..}}
//! range      {"header":{..},"kvs":[{"key":"<b64>","create_revision":"2",
//!                 "mod_revision":"3","version":"2","value":"<b64>","lease":"7587"}],
//!                 "count":"1"}
//! txn        {"header":{..},"succeeded":true,
//!                 "responses":[{"response_put":{..}},{"response_range":{<range>}}]}
//! ```
//!
//! Quirks: int64 fields are JSON strings; fields at their zero value are omitted (no
//! `kvs` when nothing matched, no `lease` on a key without one, no `succeeded` when a
//! txn's compare failed, no `TTL` in a keepalive for an unknown lease). Keepalive is a
//! gRPC stream: the gateway wraps each message in `{"result":..}` (or `{"error":..}`).
//! Errors come with a non-200 status and `{"error":"..","message":"..","code":N}`
//! (gRPC code: 5 not found, 11 out of range e.g. a TTL too large, 14 unavailable),
//! followed by an HTTP trailer; revoking an unknown lease is HTTP 404, code 5. A
//! granted TTL can be longer than asked: etcd raises it to its minimum (1.5 election
//! timeouts, rounded up to whole seconds: 2 s with the default 1 s election timeout).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde_json::{json, Value};

use super::WitnessError;

/// How long one attempt against one endpoint may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EtcdTimeouts {
    /// TCP connect.
    pub connect: Duration,
    /// The whole exchange: connect, send, reply headers and body.
    pub request: Duration,
}

impl Default for EtcdTimeouts {
    fn default() -> Self {
        EtcdTimeouts {
            connect: Duration::from_millis(500),
            request: Duration::from_secs(1),
        }
    }
}

/// An etcd lease id (int64 in etcd; never 0 for a granted lease).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LeaseId(pub i64);

/// A granted lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease {
    pub id: LeaseId,
    /// The TTL etcd granted: at least the one asked for (etcd raises it to its minimum).
    pub ttl: Duration,
}

/// One key's value and metadata as `range` returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kv {
    pub value: Vec<u8>,
    /// Revision of the put that created the key (since it last did not exist).
    pub create_revision: i64,
    /// Revision of the last put.
    pub mod_revision: i64,
    /// The lease the key is attached to; `None`: the key lives until deleted.
    pub lease: Option<LeaseId>,
}

/// Tighter limits than [`EtcdTimeouts`] for one call (the agent renewing a lease).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Bound {
    /// Give up (Unreachable) at this time, whichever endpoint is being tried.
    pub deadline: Option<Instant>,
    /// At most this long per endpoint attempt.
    pub attempt_max: Option<Duration>,
}

/// One comparison in a transaction (all are "equal").
#[derive(Clone, Debug)]
pub(crate) enum Compare {
    /// The key's create_revision; 0 means "the key does not exist".
    CreateRevision { key: Vec<u8>, equals: i64 },
    /// The lease the key is attached to (a missing key compares as lease 0).
    Lease { key: Vec<u8>, equals: LeaseId },
    /// The key's value bytes (a missing key never matches).
    Value { key: Vec<u8>, equals: Vec<u8> },
}

/// One operation in a transaction branch.
#[derive(Clone, Debug)]
pub(crate) enum Op {
    Put {
        key: Vec<u8>,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    },
    Range {
        key: Vec<u8>,
    },
}

/// What a transaction did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TxnOutcome {
    /// True: every compare held and the success branch ran; false: the failure branch.
    pub succeeded: bool,
    /// One entry per `Op::Range` of the branch that ran, in order: the key, if it exists.
    pub ranges: Vec<Option<Kv>>,
}

/// Upper bound on a reply body: replies here are a few hundred bytes.
const REPLY_BYTES_MAX: u64 = 1 << 20;

/// gRPC status codes that mean "this member cannot serve now, another might".
const GRPC_DEADLINE_EXCEEDED: i64 = 4;
const GRPC_NOT_FOUND: i64 = 5;
const GRPC_UNAVAILABLE: i64 = 14;

/// A blocking client over a list of `host:port` endpoints (see [`super::parse_witness`]).
pub struct Etcd {
    endpoints: Vec<String>,
    http: ureq::Agent,
    timeouts: EtcdTimeouts,
    /// Index into `endpoints` of the one that answered last: tried first next time.
    preferred: AtomicUsize,
}

impl Etcd {
    /// A client for `endpoints` (at least one). Connects lazily.
    pub fn new(endpoints: Vec<String>, timeouts: EtcdTimeouts) -> Result<Etcd, WitnessError> {
        if endpoints.is_empty() {
            return Err(WitnessError::BadUrl {
                url: String::new(),
                why: "no etcd endpoint".into(),
            });
        }
        let config = ureq::Agent::config_builder()
            // Non-200 replies carry etcd's error JSON: read them, don't turn them into
            // a bare status code.
            .http_status_as_error(false)
            // The witness is reached directly: a proxy from the environment would add a
            // hop that can fail on its own and hide which member answered.
            .proxy(None)
            .max_redirects(0)
            .timeout_connect(Some(timeouts.connect))
            .build();
        Ok(Etcd {
            endpoints,
            http: config.into(),
            timeouts,
            preferred: AtomicUsize::new(0),
        })
    }

    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// Grants a lease of `ttl_secs` seconds (etcd may grant more: [`Lease::ttl`]).
    pub fn grant(&self, ttl_secs: u64) -> Result<Lease, WitnessError> {
        let body = json!({ "TTL": ttl_secs.to_string() });
        self.request("/v3/lease/grant", &body, Bound::default(), |r| {
            let error = r.get("error").and_then(Value::as_str).unwrap_or("");
            if !error.is_empty() {
                return Err(format!("grant answered error {error:?}"));
            }
            let id = int64(r, "ID")?;
            let ttl = int64(r, "TTL")?;
            if id == 0 || ttl <= 0 {
                return Err(format!("grant returned lease {id} with TTL {ttl}"));
            }
            Ok(Lease {
                id: LeaseId(id),
                ttl: Duration::from_secs(ttl as u64),
            })
        })
    }

    /// Renews `lease` once: `Some(ttl)` (the lease now lives `ttl` from when etcd
    /// handled this request), `None` if etcd no longer knows the lease.
    pub fn keep_alive_once(&self, lease: LeaseId) -> Result<Option<Duration>, WitnessError> {
        self.keep_alive_by(lease, Bound::default())
    }

    /// [`Etcd::keep_alive_once`] within `bound`.
    pub(crate) fn keep_alive_by(
        &self,
        lease: LeaseId,
        bound: Bound,
    ) -> Result<Option<Duration>, WitnessError> {
        let body = json!({ "ID": lease.0.to_string() });
        self.request("/v3/lease/keepalive", &body, bound, |r| {
            let result = r
                .get("result")
                .ok_or("keepalive reply without \"result\"")?;
            let ttl = int64(result, "TTL")?;
            Ok((ttl > 0).then(|| Duration::from_secs(ttl as u64)))
        })
    }

    /// Revokes `lease` (etcd deletes the keys attached to it). A lease etcd does not
    /// know (expired, revoked before) is not an error: it is gone either way.
    pub fn revoke(&self, lease: LeaseId) -> Result<(), WitnessError> {
        let body = json!({ "ID": lease.0.to_string() });
        match self.request("/v3/lease/revoke", &body, Bound::default(), |_| Ok(())) {
            Err(WitnessError::Refused { code, .. }) if code == GRPC_NOT_FOUND => Ok(()),
            other => other,
        }
    }

    /// The key's value and metadata, or `None` if it does not exist.
    pub fn get(&self, key: &[u8]) -> Result<Option<Kv>, WitnessError> {
        let body = json!({ "key": B64.encode(key) });
        self.request("/v3/kv/range", &body, Bound::default(), read_range)
    }

    /// Puts `value` at `key`, attached to `lease` if given.
    pub fn put(
        &self,
        key: &[u8],
        value: &[u8],
        lease: Option<LeaseId>,
    ) -> Result<(), WitnessError> {
        let body = put_json(key, value, lease);
        self.request("/v3/kv/put", &body, Bound::default(), |_| Ok(()))
    }

    /// One transaction within `bound`: if every compare holds run `success`, else
    /// `failure`.
    pub(crate) fn txn(
        &self,
        compare: &[Compare],
        success: &[Op],
        failure: &[Op],
        bound: Bound,
    ) -> Result<TxnOutcome, WitnessError> {
        let body = json!({
            "compare": compare.iter().map(compare_json).collect::<Vec<_>>(),
            "success": success.iter().map(op_json).collect::<Vec<_>>(),
            "failure": failure.iter().map(op_json).collect::<Vec<_>>(),
        });
        self.request("/v3/kv/txn", &body, bound, |r| {
            let succeeded = match r.get("succeeded") {
                None => false,
                Some(Value::Bool(b)) => *b,
                Some(other) => return Err(format!("\"succeeded\" is {other}")),
            };
            let mut ranges = Vec::new();
            for resp in array(r, "responses")? {
                if let Some(range) = resp.get("response_range") {
                    ranges.push(read_range(range)?);
                }
            }
            let expected = if succeeded { success } else { failure }
                .iter()
                .filter(|op| matches!(op, Op::Range { .. }))
                .count();
            if ranges.len() != expected {
                return Err(format!(
                    "txn returned {} range replies, expected {expected}",
                    ranges.len()
                ));
            }
            Ok(TxnOutcome { succeeded, ranges })
        })
    }

    /// POSTs `body` to `path` (trying endpoints in turn) and interprets the reply with
    /// `read`; a reply `read` rejects is a [`WitnessError::Protocol`].
    fn request<T>(
        &self,
        path: &str,
        body: &Value,
        bound: Bound,
        read: impl FnOnce(&Value) -> Result<T, String>,
    ) -> Result<T, WitnessError> {
        let (endpoint, reply) = self.post(path, body, bound)?;
        read(&reply).map_err(|why| WitnessError::Protocol {
            endpoint,
            why: format!("{path}: {why}; reply {reply}"),
        })
    }

    /// Sends one request, moving to the next endpoint on a failure another member might
    /// not have. Returns the endpoint that answered and its (HTTP 200) JSON reply.
    ///
    /// The next request starts with the endpoint that answered, or with the one after
    /// the last that failed: a member that hangs costs one timeout, not one per call.
    fn post(
        &self,
        path: &str,
        body: &Value,
        bound: Bound,
    ) -> Result<(String, Value), WitnessError> {
        let n = self.endpoints.len();
        let first = self.preferred.load(Ordering::Relaxed) % n;
        let body = body.to_string();
        let mut failures: Vec<String> = Vec::with_capacity(n);
        for i in 0..n {
            let index = (first + i) % n;
            let endpoint = &self.endpoints[index];
            let mut budget = self.timeouts.request;
            if let Some(max) = bound.attempt_max {
                budget = budget.min(max);
            }
            if let Some(deadline) = bound.deadline {
                budget = budget.min(deadline.saturating_duration_since(Instant::now()));
                if budget.is_zero() {
                    failures.push(format!("{endpoint}: not tried, deadline passed"));
                    break;
                }
            }
            match self.attempt(endpoint, path, &body, budget) {
                Attempt::Answered(reply) => {
                    self.preferred.store(index, Ordering::Relaxed);
                    return Ok((endpoint.clone(), reply));
                }
                Attempt::TryNext(why) => {
                    self.preferred.store((index + 1) % n, Ordering::Relaxed);
                    failures.push(format!("{endpoint}: {why}"));
                }
                Attempt::Failed(e) => return Err(e),
            }
        }
        Err(WitnessError::Unreachable(format!(
            "{path}: {}",
            failures.join("; ")
        )))
    }

    /// One exchange with one endpoint within `budget`.
    fn attempt(&self, endpoint: &str, path: &str, body: &str, budget: Duration) -> Attempt {
        let url = format!("http://{endpoint}{path}");
        let sent = self
            .http
            .post(&url)
            .config()
            .timeout_global(Some(budget))
            .timeout_connect(Some(self.timeouts.connect.min(budget)))
            .build()
            .content_type("application/json")
            .send(body);
        let mut response = match sent {
            Ok(r) => r,
            Err(e) => return Attempt::TryNext(e.to_string()),
        };
        let status = response.status().as_u16();
        let text = match response
            .body_mut()
            .with_config()
            .limit(REPLY_BYTES_MAX)
            .read_to_string()
        {
            Ok(t) => t,
            // A reply cut short (connection reset, timeout mid-body): like no reply.
            Err(e) => return Attempt::TryNext(format!("reading the reply: {e}")),
        };
        let protocol = |why: String| {
            Attempt::Failed(WitnessError::Protocol {
                endpoint: endpoint.to_string(),
                why: format!("{path}: {why}"),
            })
        };
        // The keepalive stream may hold more than one message; we sent one request, so
        // the first is ours.
        let reply = match serde_json::Deserializer::from_str(&text)
            .into_iter::<Value>()
            .next()
        {
            Some(Ok(v)) => v,
            _ if status == 404 => {
                return protocol(format!(
                    "HTTP 404, not JSON: {text:?} (etcd before 3.4 serves the gateway \
                     under /v3beta or /v3alpha, not /v3)"
                ))
            }
            _ => return protocol(format!("HTTP {status}, not JSON: {text:?}")),
        };
        // A stream reports a failure inside a 200: {"error":{"code":..,"message":..}}.
        let error = match (status, reply.get("error")) {
            (200, Some(e @ Value::Object(_))) => Some(e.clone()),
            (200, _) => None,
            _ => Some(reply.clone()),
        };
        let Some(error) = error else {
            return Attempt::Answered(reply);
        };
        let code = error.get("code").and_then(Value::as_i64).unwrap_or(-1);
        let message = error
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if matches!(status, 502..=504) || code == GRPC_UNAVAILABLE || code == GRPC_DEADLINE_EXCEEDED
        {
            return Attempt::TryNext(format!("HTTP {status}, code {code}: {message}"));
        }
        Attempt::Failed(WitnessError::Refused {
            endpoint: endpoint.to_string(),
            path: path.to_string(),
            status,
            code,
            message,
        })
    }
}

impl std::fmt::Debug for Etcd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Etcd")
            .field("endpoints", &self.endpoints)
            .field("timeouts", &self.timeouts)
            .finish_non_exhaustive()
    }
}

/// How one attempt against one endpoint ended.
enum Attempt {
    /// HTTP 200 with a JSON body that is not an error.
    Answered(Value),
    /// This endpoint failed in a way another might not: why, for the Unreachable text.
    TryNext(String),
    /// An answer that another endpoint would repeat: give up.
    Failed(WitnessError),
}

fn put_json(key: &[u8], value: &[u8], lease: Option<LeaseId>) -> Value {
    let mut put = json!({ "key": B64.encode(key), "value": B64.encode(value) });
    if let Some(lease) = lease {
        put["lease"] = Value::String(lease.0.to_string());
    }
    put
}

fn compare_json(c: &Compare) -> Value {
    match c {
        Compare::CreateRevision { key, equals } => json!({
            "target": "CREATE", "result": "EQUAL",
            "key": B64.encode(key), "create_revision": equals.to_string(),
        }),
        Compare::Lease { key, equals } => json!({
            "target": "LEASE", "result": "EQUAL",
            "key": B64.encode(key), "lease": equals.0.to_string(),
        }),
        Compare::Value { key, equals } => json!({
            "target": "VALUE", "result": "EQUAL",
            "key": B64.encode(key), "value": B64.encode(equals),
        }),
    }
}

fn op_json(op: &Op) -> Value {
    match op {
        Op::Put { key, value, lease } => json!({ "request_put": put_json(key, value, *lease) }),
        Op::Range { key } => json!({ "request_range": { "key": B64.encode(key) } }),
    }
}

/// A range reply for one key: its first kv, if any.
fn read_range(r: &Value) -> Result<Option<Kv>, String> {
    let Some(kv) = array(r, "kvs")?.first() else {
        return Ok(None);
    };
    let value = match kv.get("value") {
        None => Vec::new(),
        Some(Value::String(s)) => B64
            .decode(s)
            .map_err(|e| format!("value {s:?} is not base64: {e}"))?,
        Some(other) => return Err(format!("value is {other}")),
    };
    let lease = int64(kv, "lease")?;
    Ok(Some(Kv {
        value,
        create_revision: int64(kv, "create_revision")?,
        mod_revision: int64(kv, "mod_revision")?,
        lease: (lease != 0).then_some(LeaseId(lease)),
    }))
}

/// An int64 field: a JSON string of digits (a number is accepted too); absent means 0.
fn int64(obj: &Value, field: &str) -> Result<i64, String> {
    match obj.get(field) {
        None => Ok(0),
        Some(Value::String(s)) => s
            .parse()
            .map_err(|_| format!("{field} {s:?} is not an int64")),
        Some(Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| format!("{field} {n} is not an int64")),
        Some(other) => Err(format!("{field} is {other}")),
    }
}

/// An array field; absent means empty.
fn array<'a>(obj: &'a Value, field: &str) -> Result<&'a [Value], String> {
    match obj.get(field) {
        None => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(other) => Err(format!("{field} is {other}, not an array")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_range_reply_as_the_gateway_writes_it() {
        let reply: Value = serde_json::from_str(
            r#"{"header":{"revision":"2"},"kvs":[{"key":"cC9sZWFzZQ==","create_revision":"2",
            "mod_revision":"3","version":"1","value":"ZXBvY2g9MQ==","lease":"4111120503435111945"}],
            "count":"1"}"#,
        )
        .unwrap();
        assert_eq!(
            read_range(&reply).unwrap(),
            Some(Kv {
                value: b"epoch=1".to_vec(),
                create_revision: 2,
                mod_revision: 3,
                lease: Some(LeaseId(4111120503435111945)),
            })
        );
        // Zero values are omitted: no kvs, no lease, no value.
        let empty: Value = serde_json::from_str(r#"{"header":{"revision":"4"}}"#).unwrap();
        assert_eq!(read_range(&empty).unwrap(), None);
        let bare: Value =
            serde_json::from_str(r#"{"kvs":[{"key":"YQ==","create_revision":"5"}]}"#).unwrap();
        let kv = read_range(&bare).unwrap().unwrap();
        assert_eq!((kv.value.len(), kv.lease), (0, None));
    }

    #[test]
    fn rejects_malformed_fields() {
        for bad in [
            r#"{"kvs":{}}"#,
            r#"{"kvs":[{"value":"***"}]}"#,
            r#"{"kvs":[{"lease":"x"}]}"#,
            r#"{"kvs":[{"mod_revision":true}]}"#,
        ] {
            let v: Value = serde_json::from_str(bad).unwrap();
            assert!(read_range(&v).is_err(), "{bad}");
        }
    }
}
