//! The node's TLS configurations, loaded once at start-up (before the journals are
//! replayed) so that a bad store, a wrong password or an expired certificate stops the
//! node at once with a line naming the file.
//!
//! * each TLS connector: a server configuration (its `needClientAuth`/`wantClientAuth`);
//! * a slave whose `masterConnectorURI` is `ssl://`: a client configuration that checks
//!   the master's certificate against the trust material and the URI's host, and
//!   presents this node's identity if the master asks for a client certificate;
//! * rejoining a remembered peer (a node with no configured master whose peer took
//!   over): TLS when this node serves TLS itself and has trust material (a pair's two
//!   configurations mirror each other), checking the peer's certificate against its
//!   IP address, as remembered. A peer's plain connector then refuses the handshake and
//!   the next remembered address is tried; the login never goes out in the clear.

use std::sync::Arc;

use super::NodeError;
use crate::config::{BrokerConfig, TransportConnector};
use crate::net::tls;
use crate::replication::link::LinkTls;

pub(super) struct NodeTls {
    /// (connector name, its server configuration), for TLS connectors only.
    connectors: Vec<(String, Arc<rustls::ServerConfig>)>,
    /// How a slave reaches its configured master, when that is `ssl://`.
    pub master: Option<LinkTls>,
    /// How this node reaches a remembered peer (see the module comment).
    pub rejoin: Option<Arc<rustls::ClientConfig>>,
}

impl NodeTls {
    pub(super) fn for_connector(&self, name: &str) -> Option<Arc<rustls::ServerConfig>> {
        self.connectors
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, c)| c.clone())
    }
}

fn error(what: &str, e: tls::TlsError) -> NodeError {
    NodeError::Tls(format!("{what}: {e}"))
}

pub(super) fn load(
    config: &BrokerConfig,
    connectors: &[&TransportConnector],
) -> Result<NodeTls, NodeError> {
    let mut out = NodeTls {
        connectors: Vec::new(),
        master: None,
        rejoin: None,
    };
    let settings = config.tls.as_ref();
    for c in connectors {
        let Some(auth) = c.tls else { continue };
        let Some(settings) = settings else {
            return Err(NodeError::Tls(format!(
                "connector {} uses TLS but no sslContext or tlsCertificate is configured",
                c.name
            )));
        };
        let server = tls::server_config(settings, auth)
            .map_err(|e| error(&format!("connector {}", c.name), e))?;
        out.connectors.push((c.name.clone(), server));
    }
    if let Some(master) = &config.replication.master {
        if master.uri.scheme.is_tls() {
            let settings = settings.ok_or_else(|| {
                NodeError::Tls(
                    "masterConnectorURI uses TLS: configure a trustStore or tlsTrustedCa to check the master with".into(),
                )
            })?;
            let client =
                tls::client_config(settings).map_err(|e| error("masterConnectorURI", e))?;
            let name =
                tls::server_name(&master.uri.host).map_err(|e| error("masterConnectorURI", e))?;
            out.master = Some(LinkTls {
                config: client,
                name: Some(name),
            });
        }
    }
    if let Some(settings) = settings {
        if settings.trust.is_some() && !out.connectors.is_empty() {
            out.rejoin =
                Some(tls::client_config(settings).map_err(|e| error("rejoining the peer", e))?);
        }
    }
    Ok(out)
}
