//! Transport URIs, spelled the way ActiveMQ Classic spells them.
//!
//! Two shapes:
//!
//! * a single transport, `scheme://host:port[/][?key=value&...]` ([`TransportUri`]), used by
//!   `<transportConnector uri>`, `masterConnectorURI` and clients;
//! * a failover list ([`FailoverUri`]) used by clients and the load tool:
//!   `failover:(uri1,uri2)?options`, `failover://(uri1,uri2)?options`, or the bare
//!   `failover:uri1,uri2` (which, as in ActiveMQ, carries no failover options: a `?`
//!   there belongs to the last inner URI).
//!
//! Host names are resolved here, once, while the configuration loads and before any
//! executor runs: `localhost` maps to `127.0.0.1` without asking DNS (so tests and the
//! shipped configs never depend on a resolver), IP literals parse directly, and any other
//! name goes through a blocking `ToSocketAddrs` lookup.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};

/// A transport scheme Tandem can listen on or connect with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `tcp`: OpenWire over TCP.
    Tcp,
    /// `nio`: OpenWire over TCP; ActiveMQ's NIO variant, the same thing for us.
    Nio,
    /// `stomp`: STOMP over TCP.
    Stomp,
    /// `stomp+nio`: STOMP over TCP; the same thing for us.
    StompNio,
    /// `auto`: detect the protocol from the first bytes of each connection.
    Auto,
    /// `auto+nio`: as `auto`.
    AutoNio,
    /// `ssl`: OpenWire over TLS.
    Ssl,
    /// `nio+ssl`: OpenWire over TLS; as `ssl`.
    NioSsl,
    /// `stomp+ssl`: STOMP over TLS.
    StompSsl,
    /// `stomp+nio+ssl`: STOMP over TLS; as `stomp+ssl`.
    StompNioSsl,
    /// `auto+ssl`: TLS, then the protocol detected from the first decrypted bytes.
    AutoSsl,
    /// `auto+nio+ssl`: as `auto+ssl`.
    AutoNioSsl,
}

/// The wire protocol spoken on a transport, which is all the scheme means to Tandem:
/// the `nio` variants only chose a Java I/O model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Wire {
    OpenWire,
    Stomp,
    /// Sniff the first bytes of each connection.
    Auto,
}

impl Scheme {
    /// The scheme as written in a URI (lower case).
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Tcp => "tcp",
            Scheme::Nio => "nio",
            Scheme::Stomp => "stomp",
            Scheme::StompNio => "stomp+nio",
            Scheme::Auto => "auto",
            Scheme::AutoNio => "auto+nio",
            Scheme::Ssl => "ssl",
            Scheme::NioSsl => "nio+ssl",
            Scheme::StompSsl => "stomp+ssl",
            Scheme::StompNioSsl => "stomp+nio+ssl",
            Scheme::AutoSsl => "auto+ssl",
            Scheme::AutoNioSsl => "auto+nio+ssl",
        }
    }

    /// The protocol a connection on this scheme speaks (inside TLS for the `ssl`
    /// schemes, which map like their plain twins).
    pub fn wire(self) -> Wire {
        match self {
            Scheme::Tcp | Scheme::Nio | Scheme::Ssl | Scheme::NioSsl => Wire::OpenWire,
            Scheme::Stomp | Scheme::StompNio | Scheme::StompSsl | Scheme::StompNioSsl => {
                Wire::Stomp
            }
            Scheme::Auto | Scheme::AutoNio | Scheme::AutoSsl | Scheme::AutoNioSsl => Wire::Auto,
        }
    }

    /// True for the schemes whose connections are TLS from the first byte.
    pub fn is_tls(self) -> bool {
        match self {
            Scheme::Ssl
            | Scheme::NioSsl
            | Scheme::StompSsl
            | Scheme::StompNioSsl
            | Scheme::AutoSsl
            | Scheme::AutoNioSsl => true,
            Scheme::Tcp
            | Scheme::Nio
            | Scheme::Stomp
            | Scheme::StompNio
            | Scheme::Auto
            | Scheme::AutoNio => false,
        }
    }

    fn from_lowercase(s: &str) -> Option<Scheme> {
        Some(match s {
            "tcp" => Scheme::Tcp,
            "nio" => Scheme::Nio,
            "stomp" => Scheme::Stomp,
            "stomp+nio" => Scheme::StompNio,
            "auto" => Scheme::Auto,
            "auto+nio" => Scheme::AutoNio,
            "ssl" => Scheme::Ssl,
            "nio+ssl" => Scheme::NioSsl,
            "stomp+ssl" => Scheme::StompSsl,
            "stomp+nio+ssl" => Scheme::StompNioSsl,
            "auto+ssl" => Scheme::AutoSsl,
            "auto+nio+ssl" => Scheme::AutoNioSsl,
            _ => return None,
        })
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a URI was refused. The message names the offending part, not the whole URI:
/// callers (the config loader, the CLI) already show the URI beside it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    #[error("empty URI")]
    Empty,
    #[error("expected `scheme://host:port`, {0}")]
    Syntax(String),
    /// A scheme ActiveMQ knows but Tandem does not serve (AMQP, MQTT, WebSocket, HTTP,
    /// ..., in plain or TLS form).
    /// The config loader skips connectors with this error instead of refusing to start.
    #[error("unsupported scheme \"{scheme}\": {reason}")]
    UnsupportedScheme {
        scheme: String,
        reason: &'static str,
    },
    #[error(
        "unknown scheme \"{0}\" (expected tcp, nio, stomp, stomp+nio, auto, auto+nio, \
         or over TLS ssl, nio+ssl, stomp+ssl, stomp+nio+ssl, auto+ssl, auto+nio+ssl)"
    )]
    UnknownScheme(String),
    #[error("bad host \"{host}\": {reason}")]
    BadHost { host: String, reason: String },
    #[error("missing port (write host:port, e.g. 127.0.0.1:61613)")]
    MissingPort,
    #[error("port \"{0}\" is not a number in 0-65535")]
    BadPort(String),
    #[error("option {key}=\"{value}\": expected {expected}")]
    BadOption {
        key: String,
        value: String,
        expected: &'static str,
    },
    #[error("failover list is empty")]
    EmptyFailover,
    #[error("failover URIs cannot be nested")]
    NestedFailover,
}

/// One resolved transport endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct TransportUri {
    pub scheme: Scheme,
    /// The host as written (`localhost`, `0.0.0.0`, `::1` without brackets); kept for
    /// display and as the default connector name, never used to connect.
    pub host: String,
    /// Where to bind or connect; resolved at parse time.
    pub addr: SocketAddr,
    /// Query options in the order written, percent-decoded. Keys keep their case
    /// (`wireFormat.maxFrameSize`); use [`TransportUri::option`] to look one up.
    pub options: Vec<(String, String)>,
}

impl TransportUri {
    /// Parses and resolves `scheme://host:port[/][?k=v&...]`.
    pub fn parse(text: &str) -> Result<TransportUri, UriError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(UriError::Empty);
        }
        let Some((scheme_raw, rest)) = text.split_once("://") else {
            return Err(match text.split_once(':') {
                Some((s, _)) if s.eq_ignore_ascii_case("failover") => UriError::NestedFailover,
                _ => UriError::Syntax("found no \"://\"".into()),
            });
        };
        let scheme = parse_scheme(scheme_raw)?;
        if rest.contains('#') {
            return Err(UriError::Syntax("a fragment (#...) is not allowed".into()));
        }
        let (before_query, query) = match rest.split_once('?') {
            Some((a, q)) => (a, Some(q)),
            None => (rest, None),
        };
        // A trailing "/" is harmless (ActiveMQ writes it sometimes); any other path is a
        // sign the URI means something we do not do.
        let authority = match before_query.find('/') {
            Some(i) if &before_query[i..] == "/" => &before_query[..i],
            Some(i) => {
                return Err(UriError::Syntax(format!(
                    "unexpected path \"{}\"",
                    &before_query[i..]
                )))
            }
            None => before_query,
        };
        let (host, port) = split_host_port(authority)?;
        let ip = resolve_host(host, port)?;
        let options = match query {
            Some(q) => parse_query(q)?,
            None => Vec::new(),
        };
        Ok(TransportUri {
            scheme,
            host: host.to_string(),
            addr: SocketAddr::new(ip, port),
            options,
        })
    }

    /// The value of a query option; key compared ASCII-case-insensitively because Java
    /// bean property names are written inconsistently in the wild.
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }
}

impl fmt::Display for TransportUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}://[{}]:{}", self.scheme, self.host, self.addr.port())?;
        } else {
            write!(f, "{}://{}:{}", self.scheme, self.host, self.addr.port())?;
        }
        for (i, (k, v)) in self.options.iter().enumerate() {
            write!(f, "{}{}={}", if i == 0 { '?' } else { '&' }, k, v)?;
        }
        Ok(())
    }
}

/// A client's list of brokers plus ActiveMQ's failover-transport reconnect policy.
#[derive(Debug, Clone, PartialEq)]
pub struct FailoverUri {
    /// The brokers, in the order written; never empty.
    pub uris: Vec<TransportUri>,
    /// Shuffle the list before connecting (`randomize`, ActiveMQ default true). A
    /// master/slave pair wants false so the master is always tried first.
    pub randomize: bool,
    /// Delay before the first reconnect attempt (`initialReconnectDelay`, default 10).
    pub initial_reconnect_delay_ms: u64,
    /// Cap on the delay between attempts (`maxReconnectDelay`, default 30000).
    pub max_reconnect_delay_ms: u64,
    /// Attempts before giving up (`maxReconnectAttempts`); -1 = forever (default),
    /// 0 = do not reconnect.
    pub max_reconnect_attempts: i64,
    /// How long a send blocks while disconnected (`timeout`); -1 = forever (default).
    pub timeout_ms: i64,
    /// Grow the delay after each failed attempt (`useExponentialBackOff`, default true).
    pub use_exponential_backoff: bool,
    /// Growth factor per attempt (`backOffMultiplier`, default 2.0); at least 1.
    pub backoff_multiplier: f64,
    /// Failover options Tandem does not interpret (`priorityBackup`, `nested.*`, ...),
    /// kept so a caller can warn about them.
    pub other_options: Vec<(String, String)>,
}

impl FailoverUri {
    /// Parses `failover:(a,b)?opts`, `failover://(a,b)?opts` or `failover:a,b`.
    /// A plain transport URI is accepted too and becomes a one-entry list with the
    /// default policy, so a client's `--url` may be either.
    pub fn parse(text: &str) -> Result<FailoverUri, UriError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(UriError::Empty);
        }
        let Some(body) = strip_prefix_ignore_case(text, "failover:") else {
            return Ok(FailoverUri::with_defaults(vec![TransportUri::parse(text)?]));
        };
        let body = body.strip_prefix("//").unwrap_or(body).trim();
        let (list, query) = if let Some(inner) = body.strip_prefix('(') {
            let Some(close) = inner.rfind(')') else {
                return Err(UriError::Syntax("\"(\" without a matching \")\"".into()));
            };
            let after = inner[close + 1..].trim();
            let query = match after.strip_prefix('?') {
                Some(q) => Some(q),
                None if after.is_empty() => None,
                None => {
                    return Err(UriError::Syntax(format!(
                        "unexpected \"{after}\" after the failover list"
                    )))
                }
            };
            (&inner[..close], query)
        } else {
            (body, None)
        };
        let mut uris = Vec::new();
        for part in list.split(',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            if strip_prefix_ignore_case(part, "failover:").is_some() {
                return Err(UriError::NestedFailover);
            }
            uris.push(TransportUri::parse(part)?);
        }
        if uris.is_empty() {
            return Err(UriError::EmptyFailover);
        }
        let mut out = FailoverUri::with_defaults(uris);
        if let Some(q) = query {
            for (key, value) in parse_query(q)? {
                out.apply_option(key, value)?;
            }
        }
        Ok(out)
    }

    fn with_defaults(uris: Vec<TransportUri>) -> FailoverUri {
        FailoverUri {
            uris,
            randomize: true,
            initial_reconnect_delay_ms: 10,
            max_reconnect_delay_ms: 30_000,
            max_reconnect_attempts: -1,
            timeout_ms: -1,
            use_exponential_backoff: true,
            backoff_multiplier: 2.0,
            other_options: Vec::new(),
        }
    }

    fn apply_option(&mut self, key: String, value: String) -> Result<(), UriError> {
        let bad = |expected: &'static str| UriError::BadOption {
            key: key.clone(),
            value: value.clone(),
            expected,
        };
        match key.to_ascii_lowercase().as_str() {
            "randomize" => {
                self.randomize = parse_bool(&value).ok_or_else(|| bad("true or false"))?
            }
            "initialreconnectdelay" => {
                self.initial_reconnect_delay_ms =
                    value.parse().map_err(|_| bad("milliseconds >= 0"))?
            }
            "maxreconnectdelay" => {
                self.max_reconnect_delay_ms = value.parse().map_err(|_| bad("milliseconds >= 0"))?
            }
            "maxreconnectattempts" => {
                self.max_reconnect_attempts = value
                    .parse()
                    .ok()
                    .filter(|n: &i64| *n >= -1)
                    .ok_or_else(|| bad("a count, or -1 for forever"))?
            }
            "timeout" => {
                self.timeout_ms = value
                    .parse()
                    .ok()
                    .filter(|n: &i64| *n >= -1)
                    .ok_or_else(|| bad("milliseconds, or -1 for forever"))?
            }
            "useexponentialbackoff" => {
                self.use_exponential_backoff =
                    parse_bool(&value).ok_or_else(|| bad("true or false"))?
            }
            "backoffmultiplier" => {
                self.backoff_multiplier = value
                    .parse()
                    .ok()
                    .filter(|m: &f64| m.is_finite() && *m >= 1.0)
                    .ok_or_else(|| bad("a number >= 1"))?
            }
            _ => self.other_options.push((key, value)),
        }
        Ok(())
    }
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

fn parse_bool(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

fn parse_scheme(raw: &str) -> Result<Scheme, UriError> {
    let lower = raw.to_ascii_lowercase();
    if let Some(s) = Scheme::from_lowercase(&lower) {
        return Ok(s);
    }
    let unsupported = |reason| {
        Err(UriError::UnsupportedScheme {
            scheme: lower.clone(),
            reason,
        })
    };
    // The family decides, so "amqp+ssl" and "wss" are refused for their protocol, not
    // for their TLS: Tandem serves TLS, but only around STOMP and OpenWire.
    let family = lower.split('+').next().unwrap_or("");
    match family {
        "amqp" | "mqtt" | "ws" | "wss" | "http" | "https" => {
            unsupported("another protocol; Tandem speaks STOMP and OpenWire (over TCP or TLS) only")
        }
        "udp" | "vm" | "discovery" | "multicast" | "static" | "peer" | "fanout" | "masterslave"
        | "zeroconf" => unsupported(
            "not a TCP or TLS listener; Tandem serves tcp, stomp, auto and their ssl forms",
        ),
        _ => Err(UriError::UnknownScheme(lower)),
    }
}

/// Splits `host:port` or `[v6]:port`.
fn split_host_port(authority: &str) -> Result<(&str, u16), UriError> {
    if authority.is_empty() {
        return Err(UriError::Syntax("found no host".into()));
    }
    if authority.contains('@') {
        return Err(UriError::Syntax(
            "credentials in the URI are not supported (use userName/password)".into(),
        ));
    }
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else {
            return Err(UriError::Syntax("\"[\" without a matching \"]\"".into()));
        };
        match after.strip_prefix(':') {
            Some(p) => (host, p),
            None if after.is_empty() => return Err(UriError::MissingPort),
            None => return Err(UriError::Syntax(format!("unexpected \"{after}\""))),
        }
    } else {
        match authority.split_once(':') {
            None => return Err(UriError::MissingPort),
            Some((_, port)) if port.contains(':') => {
                // More than one colon without brackets: an IPv6 literal written bare.
                return Err(UriError::BadHost {
                    host: authority.to_string(),
                    reason: "write IPv6 addresses in brackets, e.g. [::1]:61613".into(),
                });
            }
            Some(hp) => hp,
        }
    };
    if host.is_empty() {
        return Err(UriError::Syntax("found no host".into()));
    }
    if port.is_empty() {
        return Err(UriError::MissingPort);
    }
    // u16::from_str accepts "+80"; ports are plain digits.
    if !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(UriError::BadPort(port.to_string()));
    }
    let port = port
        .parse::<u16>()
        .map_err(|_| UriError::BadPort(port.to_string()))?;
    Ok((host, port))
}

fn resolve_host(host: &str, port: u16) -> Result<IpAddr, UriError> {
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ip);
    }
    let looks_like_name = host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    if !looks_like_name {
        return Err(UriError::BadHost {
            host: host.to_string(),
            reason: "not an IP address or host name".into(),
        });
    }
    // Blocking lookup: acceptable because URIs are parsed while loading the config,
    // before any executor thread exists.
    let mut addrs = (host, port)
        .to_socket_addrs()
        .map_err(|e| UriError::BadHost {
            host: host.to_string(),
            reason: format!("cannot resolve: {e}"),
        })?;
    addrs
        .next()
        .map(|a| a.ip())
        .ok_or_else(|| UriError::BadHost {
            host: host.to_string(),
            reason: "resolves to no address".into(),
        })
}

fn parse_query(query: &str) -> Result<Vec<(String, String)>, UriError> {
    let mut out = Vec::new();
    for pair in query.split('&') {
        if pair.is_empty() {
            continue;
        }
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = percent_decode(k)?;
        if k.is_empty() {
            return Err(UriError::Syntax(format!(
                "query option \"{pair}\" has no name"
            )));
        }
        out.push((k, percent_decode(v)?));
    }
    Ok(out)
}

fn percent_decode(s: &str) -> Result<String, UriError> {
    if !s.contains('%') {
        return Ok(s.to_string());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| UriError::Syntax(format!("bad percent escape in \"{s}\"")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map_err(|_| UriError::Syntax(format!("percent escapes in \"{s}\" are not UTF-8")))
}

#[cfg(test)]
#[path = "uri_tests.rs"]
mod tests;
