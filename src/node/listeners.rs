//! Client connectors: which ones this version serves, binding them, and handing each
//! shard a descriptor of every listener.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use super::NodeError;
use crate::config::{BrokerConfig, TransportConnector};
use crate::net;
use crate::replication::frame::looks_like_replication;
use crate::replication::port;
use crate::rt::net::BoundListener;
use crate::uri::Wire;

pub(super) type Listeners = Vec<(BoundListener, Arc<net::ConnectorPolicy>)>;

/// The transport connectors this version serves (STOMP, auto, OpenWire); at least one.
pub(super) fn client_connectors(
    config: &BrokerConfig,
) -> Result<Vec<&TransportConnector>, NodeError> {
    let connectors: Vec<&TransportConnector> = config
        .transport_connectors
        .iter()
        .filter(|c| {
            matches!(
                c.uri.scheme.wire(),
                Wire::Stomp | Wire::Auto | Wire::OpenWire
            )
        })
        .collect();
    if connectors.is_empty() {
        return Err(NodeError::NoConnector);
    }
    Ok(connectors)
}

/// Gives every shard a descriptor of each listener; returns the listeners (to shut
/// them down at exit).
pub(super) fn hand_to_shards(
    listeners: Listeners,
    serve_txs: &[async_channel::Sender<Listeners>],
) -> Vec<BoundListener> {
    for tx in serve_txs {
        let mut mine = Vec::new();
        for (l, policy) in &listeners {
            match l.try_clone() {
                Ok(dup) => mine.push((dup, policy.clone())),
                Err(e) => tracing::error!(error = %e, "cannot share a listener with a shard"),
            }
        }
        let _ = tx.try_send(mine);
    }
    listeners.into_iter().map(|(l, _)| l).collect()
}

/// Binds client connectors; each accepts STOMP clients and replication links.
pub(super) fn bind_connectors(
    connectors: &[&TransportConnector],
    config: &BrokerConfig,
    tls: &super::tls::NodeTls,
    clients_open: &Arc<AtomicBool>,
    slave_sockets: &async_channel::Sender<port::Live>,
) -> Result<Listeners, NodeError> {
    let mut listeners = Vec::new();
    for c in connectors {
        let l = BoundListener::bind(c.uri.addr, 1024).map_err(|source| NodeError::Bind {
            name: c.name.clone(),
            addr: c.uri.addr,
            source,
        })?;
        let addr = l.local_addr().unwrap_or(c.uri.addr);
        tracing::info!(connector = %c.name, %addr, tls = c.tls.is_some(), "listening (STOMP, OpenWire, replication)");
        let mut policy = net::ConnectorPolicy::new(
            &c.name,
            c.max_connections.map(|n| n as usize),
            c.max_frame_bytes as usize,
        );
        policy.connect_attempt_timeout = Duration::from_millis(c.connect_attempt_timeout_ms);
        policy.max_login_frame_bytes = config.limits.max_login_frame_bytes as usize;
        let to_core = slave_sockets.clone();
        policy.replication = Some(Arc::new(move |stream, slot| {
            let _ = to_core.try_send(port::Live::SlaveSocket {
                stream: Box::new(stream),
                slot,
            });
        }));
        policy.replication_sniff = Some(looks_like_replication);
        policy.clients_open = clients_open.clone();
        policy.tls = tls.for_connector(&c.name);
        listeners.push((l, Arc::new(policy)));
    }
    Ok(listeners)
}
