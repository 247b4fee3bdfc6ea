//! `<transportConnectors><transportConnector name uri>` and the URI options Tandem
//! reads (on a TLS scheme also `needClientAuth` / `wantClientAuth`; the TLS material
//! itself is `tls.rs`'s).

use std::net::SocketAddr;

use super::read::Reader;
use super::value::{parse_bool, parse_size, parse_u64};
use super::xml::{Attr, Element};
use super::{ClientAuth, ConfigError};
use crate::uri::{TransportUri, UriError};

/// A connector as read, before the global frame limit and the TLS material are known.
pub(super) struct RawConnector<'e> {
    pub(super) name: String,
    pub(super) uri: TransportUri,
    pub(super) max_connections: Option<u32>,
    pub(super) max_frame_bytes: Option<u64>,
    pub(super) connect_attempt_timeout_ms: Option<u64>,
    /// `Some` iff the scheme is TLS; see [`super::TransportConnector::tls`].
    pub(super) tls: Option<ClientAuth>,
    /// The element and its `uri`, for errors found once the whole file is read (a TLS
    /// connector without a certificate).
    pub(super) el: &'e Element,
    pub(super) uri_attr: &'e Attr,
}

impl Reader<'_> {
    pub(super) fn connector<'e>(
        &mut self,
        el: &'e Element,
        parent: &str,
        out: &mut Vec<RawConnector<'e>>,
    ) -> Result<(), ConfigError> {
        let base = format!("{parent}/transportConnector");
        self.check_attrs(el, &base, &["name", "uri"]);
        let (uri_text, uri_attr) = self.required(el, "uri")?;
        let name_attr = self.value(el, "name")?;
        let name = match &name_attr {
            Some((n, a)) if n.trim().is_empty() => {
                return Err(self.attr_err(el, a, "expected a non-empty name"))
            }
            Some((n, _)) => n.trim().to_string(),
            // ActiveMQ names an unnamed connector after its URI.
            None => uri_text.trim().to_string(),
        };
        let here = format!("{base}[{name}]");
        let uri = match TransportUri::parse(&uri_text) {
            Ok(uri) => uri,
            // A stock activemq.xml lists amqp, mqtt and ws connectors; skipping them
            // lets it start with the ones Tandem serves.
            Err(UriError::UnsupportedScheme { scheme, reason }) => {
                self.ignore(here, el.line, format!("scheme \"{scheme}\": {reason}"));
                return Ok(());
            }
            Err(e) => return Err(self.attr_err(el, uri_attr, e.to_string())),
        };
        let mut max_connections = None;
        let mut max_frame_bytes = None;
        let mut connect_attempt_timeout_ms = None;
        // The last spelling written wins for each; need wins over want.
        let mut need_client_auth = false;
        let mut want_client_auth = false;
        for (key, value) in &uri.options {
            let bad = |expected: &str| {
                self.attr_err(
                    el,
                    uri_attr,
                    format!("option {key}=\"{value}\": expected {expected}"),
                )
            };
            match key.to_ascii_lowercase().as_str() {
                "maximumconnections" => {
                    let n = value
                        .parse::<u32>()
                        .ok()
                        .filter(|n| *n >= 1)
                        .ok_or_else(|| bad("a whole number >= 1"))?;
                    max_connections = Some(n);
                }
                "wireformat.maxframesize" => {
                    let n = parse_size(value)
                        .ok()
                        .filter(|n| *n >= 1024)
                        .ok_or_else(|| bad("a size of at least 1 kb"))?;
                    max_frame_bytes = Some(n);
                }
                "transport.connectattempttimeout" => {
                    let n = parse_connect_attempt_timeout(value)
                        .map_err(|_| bad("milliseconds in 100-600000"))?;
                    connect_attempt_timeout_ms = Some(n);
                }
                "needclientauth"
                | "transport.needclientauth"
                | "wantclientauth"
                | "transport.wantclientauth" => {
                    if !uri.scheme.is_tls() {
                        self.ignore(
                            format!("{here}?{key}"),
                            uri_attr.line,
                            "only meaningful on a TLS scheme (ssl, nio+ssl, stomp+ssl, \
                             stomp+nio+ssl, auto+ssl, auto+nio+ssl)",
                        );
                        continue;
                    }
                    let on = parse_bool(value).map_err(bad)?;
                    if key.to_ascii_lowercase().ends_with("needclientauth") {
                        need_client_auth = on;
                    } else {
                        want_client_auth = on;
                    }
                }
                "transport.enabledciphersuites" | "transport.enabledprotocols"
                    if uri.scheme.is_tls() =>
                {
                    self.ignore(
                        format!("{here}?{key}"),
                        uri_attr.line,
                        "Tandem's TLS (rustls) offers TLS 1.2 and 1.3 with its own cipher suites",
                    )
                }
                _ => self.ignore(
                    format!("{here}?{key}"),
                    uri_attr.line,
                    "URI option not supported",
                ),
            }
        }
        let name_line = name_attr.as_ref().map(|(_, a)| *a);
        if let Some(other) = out.iter().find(|c| c.name == name) {
            let message = format!("connector name \"{}\" is used twice", other.name);
            return Err(match name_line {
                Some(a) => self.attr_err(el, a, message),
                None => self.attr_err(el, uri_attr, message),
            });
        }
        if let Some(other) = out.iter().find(|c| same_listen_port(c.uri.addr, uri.addr)) {
            return Err(self.attr_err(
                el,
                uri_attr,
                format!(
                    "port {} is already used by connector \"{}\"",
                    uri.addr.port(),
                    other.name
                ),
            ));
        }
        let tls = uri.scheme.is_tls().then_some(if need_client_auth {
            ClientAuth::Need
        } else if want_client_auth {
            ClientAuth::Want
        } else {
            ClientAuth::None
        });
        out.push(RawConnector {
            name,
            uri,
            max_connections,
            max_frame_bytes,
            connect_attempt_timeout_ms,
            tls,
            el,
            uri_attr,
        });
        Ok(())
    }
}

/// `connectAttemptTimeout` in milliseconds: long enough for a real client on a busy
/// host, short enough that a stranger cannot hold a connection slot for long.
pub(super) fn parse_connect_attempt_timeout(s: &str) -> Result<u64, &'static str> {
    parse_u64(s)
        .ok()
        .filter(|n| (100..=600_000).contains(n))
        .ok_or("milliseconds in 100-600000")
}

/// Two listeners collide when they share a port and either address covers the other.
/// Port 0 asks the kernel for a fresh port, so it never collides.
fn same_listen_port(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}
