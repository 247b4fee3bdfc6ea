//! The configuration turned into the settings each part of the node takes: the broker
//! core and sessions ([`broker_settings`]), the connection limits, what recovery does
//! with a damaged journal, and the replication core's settings.

use std::sync::Arc;
use std::time::Duration;

use crate::broker::{BrokerSettings, User};
use crate::config::{BrokerConfig, ReplicationAck, TransportConnector};
use crate::metrics::replication::ReplicationStats;
use crate::replication::auth::{Acceptor, Key, Login, PluginUser};
use crate::replication::core::{AckMode, CoreSettings, MasterTarget};
use crate::replication::role::Role;
use crate::replication::state::NodeState;
use crate::store;
use crate::uri::Wire;

/// The settings the broker core and sessions use, from the configuration.
pub fn broker_settings(config: &BrokerConfig, shard_count: usize) -> BrokerSettings {
    let defaults = BrokerSettings::default();
    BrokerSettings {
        broker_name: config.broker_name.clone(),
        users: config
            .users
            .iter()
            .map(|u| User {
                username: u.username.clone(),
                password: u.password.clone(),
                groups: u.groups.clone(),
            })
            .collect(),
        auth_required: config.auth_enabled,
        scheduler_support: config.scheduler_support,
        redelivery_plugin: config.redelivery_plugin.as_ref().map(redelivery_plugin),
        max_frame_bytes: config.limits.max_frame_bytes as usize,
        max_header_bytes: config.limits.max_header_bytes as usize,
        max_headers: config.limits.max_headers as usize,
        shard_memory_limit_bytes: (config.memory_limit_bytes as usize / shard_count.max(1)).max(1),
        maximum_redeliveries: config.redelivery.maximum_redeliveries.unwrap_or(u32::MAX),
        limits: limits(config),
        virtual_topics: config
            .virtual_topics
            .iter()
            .filter_map(|v| {
                // Validated by the loader with this same constructor.
                crate::broker::VirtualTopicRule::new(&v.name, &v.prefix, &v.postfix)
                    .inspect_err(|e| tracing::error!(name = %v.name, error = %e, "virtual topic rule dropped"))
                    .ok()
            })
            .collect(),
        policies: Arc::new(crate::broker::policy::PolicyMap::new(
            config.destination_policy.entries.clone(),
            config.destination_policy.default_entry.clone(),
            crate::broker::Destination::queue(config.redelivery.dead_letter_queue.clone()),
        )),
        ..defaults
    }
}

/// The redelivery plugin the shards apply (`broker::redelivery`).
fn redelivery_plugin(
    r: &crate::config::RedeliveryPluginSettings,
) -> crate::broker::redelivery::RedeliveryPlugin {
    use crate::broker::redelivery::{Entry, Policy, RedeliveryPlugin};
    use crate::broker::wildcard::Pattern;
    let policy = |p: &crate::config::RedeliveryPolicySettings| Policy {
        maximum_redeliveries: p.maximum_redeliveries,
        initial_redelivery_delay_ms: p.initial_redelivery_delay_ms,
        redelivery_delay_ms: p.redelivery_delay_ms,
        use_exponential_back_off: p.use_exponential_back_off,
        back_off_multiplier: p.back_off_multiplier,
        maximum_redelivery_delay_ms: p.maximum_redelivery_delay_ms,
    };
    RedeliveryPlugin {
        fallback_to_dead_letter: r.fallback_to_dead_letter,
        send_to_dlq_if_max_retries_exceeded: r.send_to_dlq_if_max_retries_exceeded,
        default_entry: r.default_entry.as_ref().map(policy),
        entries: r
            .entries
            .iter()
            .filter_map(|p| {
                let (queue, pattern) = p.destination.as_ref()?;
                Some(Entry {
                    kind: if *queue {
                        crate::broker::DestKind::Queue
                    } else {
                        crate::broker::DestKind::Topic
                    },
                    pattern: Pattern::parse(pattern),
                    policy: policy(p),
                })
            })
            .collect(),
    }
}

/// The connection limits the sessions and shards enforce.
fn limits(config: &BrokerConfig) -> crate::broker::Limits {
    let l = &config.connection_limits;
    crate::broker::Limits {
        max_transaction_bytes: l
            .max_transaction_bytes
            .unwrap_or(config.memory_limit_bytes / 2),
        transaction_memory_bytes: config.memory_limit_bytes,
        max_prefetch: l.max_prefetch,
        max_pending_output_bytes: l.max_pending_output_bytes,
        max_subscriptions_per_connection: l.max_subscriptions_per_connection as usize,
        max_transactions_per_connection: l.max_transactions_per_connection as usize,
        max_producers_per_connection: l.max_producers_per_connection as usize,
        max_temp_destinations_per_connection: l.max_temp_destinations_per_connection as usize,
        max_composite_destinations: l.max_composite_destinations as usize,
        max_destinations: l.max_destinations as usize,
        store_limit_bytes: config.store_limit_bytes,
        max_scheduled_messages: l.max_scheduled_messages,
    }
}

/// What recovery does with a damaged journal range. `--skip-damaged-records`: skip it.
/// Otherwise a standalone node refuses to start (nothing else holds those records),
/// and a node of a pair (a configured master, or a peer remembered in `node.state`)
/// sets the damage aside and copies the rest of its log from the peer: before the log
/// is shortened, `node.state` is rewritten with `role=slave`, so this node does not
/// serve (not even after a crash in between) until it has attached to its peer and is
/// in sync again.
pub(super) fn damage_policy(config: &BrokerConfig, state: &NodeState) -> store::OnDamage {
    if config.journal.skip_damaged_records {
        return store::OnDamage::Skip;
    }
    if config.replication.master.is_none() && state.peers.is_empty() {
        return store::OnDamage::Refuse;
    }
    let data_dir = config.data_directory.clone();
    // Shards recover in parallel: the first to find damage writes the state.
    let done = Arc::new(std::sync::Mutex::new(false));
    store::OnDamage::SetAside {
        prepare: Arc::new(move || {
            let mut done = done
                .lock()
                .map_err(|_| "node state lock poisoned".to_string())?;
            if *done {
                return Ok(());
            }
            let mut st = NodeState::load(&data_dir).map_err(|e| e.to_string())?;
            st.role = Some(Role::Slave);
            st.store(&data_dir).map_err(|e| e.to_string())?;
            tracing::warn!(peers = ?st.peers, "journal damaged: this node follows its peer (node.state role=slave) until it has copied the damaged range from it");
            *done = true;
            Ok(())
        }),
    }
}

/// The replication core's settings from the configuration.
pub(super) fn core_settings(
    config: &BrokerConfig,
    shards: usize,
    connectors: &[&TransportConnector],
    tls: &super::tls::NodeTls,
    stats: Arc<ReplicationStats>,
) -> CoreSettings {
    let r = &config.replication;
    let acceptor = replication_acceptor(config);
    CoreSettings {
        shards,
        data_dir: config.data_directory.clone(),
        master: r.master.as_ref().map(|m| MasterTarget {
            addr: m.uri.addr,
            login: master_login(m, &acceptor),
            tls: tls.master.clone(),
        }),
        rejoin_tls: tls.rejoin.clone(),
        acceptor,
        shutdown_on_master_failure: r.shutdown_on_master_failure,
        shutdown_on_slave_failure: r.shutdown_on_slave_failure,
        ack: match r.ack {
            ReplicationAck::Fsync => AckMode::Fsync,
            ReplicationAck::Received => AckMode::Received,
        },
        heartbeat: Duration::from_millis(r.heartbeat_ms),
        ack_timeout: Duration::from_millis(r.link.ack_timeout_ms),
        buffer_bytes: usize::try_from(r.link.buffer_bytes).unwrap_or(usize::MAX),
        witness: r.link.witness.clone(),
        // OpenWire (tcp://) first: it is where ActiveMQ slaves attach.
        client_addrs: connectors
            .iter()
            .filter(|c| c.uri.scheme.wire() == Wire::OpenWire)
            .chain(
                connectors
                    .iter()
                    .filter(|c| c.uri.scheme.wire() != Wire::OpenWire),
            )
            .map(|c| c.uri.addr)
            .collect(),
        stats,
    }
}

/// Who may attach as a slave: the plugin's users (when it is on) of the replication
/// group, and the replication secret (see `replication::auth`).
fn replication_acceptor(config: &BrokerConfig) -> Acceptor {
    let link = &config.replication.link;
    Acceptor {
        plugin: config.auth_enabled.then(|| {
            config
                .users
                .iter()
                .map(|u| PluginUser {
                    name: u.username.clone(),
                    key: Key::new(&u.password),
                    groups: u.groups.clone(),
                })
                .collect()
        }),
        group: link.group.clone(),
        secret: link.secret.as_ref().map(|s| Key::new(&s.0)),
    }
}

/// What a slave proves to its master: `<masterConnector userName password>` when the
/// password is given, else the replication secret.
fn master_login(m: &crate::config::MasterConnector, acceptor: &Acceptor) -> Option<Login> {
    match &m.password {
        Some(password) => Some(Login {
            user: m.user_name.clone().unwrap_or_default(),
            key: Key::new(password),
        }),
        None => acceptor.secret.clone().map(|key| Login {
            user: String::new(),
            key,
        }),
    }
}
