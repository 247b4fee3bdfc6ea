//! The `<tandem>` element: Tandem's own settings (shards, protocol and connection
//! limits, redelivery, replication link, status endpoint). Its TLS attributes
//! (`tlsCertificate`, `tlsPrivateKey`, `tlsTrustedCa`) are read by `tls.rs`.

use super::attrs::size_at_least;
use super::connectors::parse_connect_attempt_timeout;
use super::read::Reader;
use super::tls::TANDEM_TLS_ATTRS;
use super::value::{parse_bool, parse_cpu_list, parse_size, parse_u64};
use super::xml::Element;
use super::{
    ConfigError, ConnectionLimits, ProtocolLimits, RedeliverySettings, ReplicationAck,
    ReplicationLink, Secret, ShardSettings,
};

/// Settings from the `<tandem>` element, before they are combined with the rest.
pub(super) struct TandemRaw {
    pub(super) shards: ShardSettings,
    pub(super) limits: ProtocolLimits,
    pub(super) connection_limits: ConnectionLimits,
    pub(super) redelivery: RedeliverySettings,
    pub(super) ack: ReplicationAck,
    pub(super) heartbeat_ms: u64,
    pub(super) link: ReplicationLink,
    pub(super) status_port: Option<u16>,
    pub(super) status_host: std::net::IpAddr,
    pub(super) admin_group: String,
}

/// `<tandem>` attributes of the connection limits (read by [`Reader::connection_limits`]).
const CONNECTION_LIMIT_ATTRS: [&str; 10] = [
    "maxTransactionSize",
    "maxPrefetch",
    "maxPendingOutput",
    "maxSubscriptionsPerConnection",
    "maxTransactionsPerConnection",
    "maxProducersPerConnection",
    "maxTemporaryDestinationsPerConnection",
    "maxCompositeDestinations",
    "maxDestinations",
    "maxScheduledMessages",
];

/// `<tandem>` attributes of the replication link (read by [`Reader::replication_link`]).
const REPLICATION_LINK_ATTRS: [&str; 7] = [
    "replicationGroup",
    "replicationSecret",
    "replicationAckTimeout",
    "replicationBuffer",
    "witness",
    "witnessKey",
    "witnessLease",
];

impl Reader<'_> {
    pub(super) fn tandem(&mut self, el: &Element, path: &str) -> Result<TandemRaw, ConfigError> {
        self.check_attrs(
            el,
            path,
            &[
                "shards",
                "pinCores",
                "cores",
                "ioMemory",
                "ringDepth",
                "replicationCore",
                "maxFrameSize",
                "maxHeaderSize",
                "maxHeaders",
                "connectAttemptTimeout",
                "maxLoginFrameSize",
                "maximumRedeliveries",
                "deadLetterQueue",
                "statusPort",
                "statusHost",
                "adminGroup",
                "replicationAck",
                "replicationHeartbeat",
            ]
            .into_iter()
            .chain(REPLICATION_LINK_ATTRS)
            .chain(CONNECTION_LIMIT_ATTRS)
            .chain(TANDEM_TLS_ATTRS)
            .collect::<Vec<_>>(),
        );
        for c in &el.children {
            self.ignore_element(c, path);
        }
        let allowed = &self.env.allowed_cpus;
        let allowed_list = allowed
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let shards_attr = self.typed(el, "shards", |s| {
            parse_u64(s)
                .ok()
                .and_then(|n| usize::try_from(n).ok())
                .filter(|n| (1..=1024).contains(n))
                .ok_or("a shard count between 1 and 1024")
        })?;
        let cores_attr = self.typed(el, "cores", parse_cpu_list)?;
        if let (Some(cores), Some(a)) = (&cores_attr, el.attr("cores")) {
            if let Some(bad) = cores.iter().find(|c| !allowed.contains(c)) {
                return Err(self.attr_err(
                    el,
                    a,
                    format!("CPU {bad} is not available to this process (allowed: {allowed_list})"),
                ));
            }
        }
        let pin_attr = self.typed(el, "pinCores", parse_bool)?;
        let count = shards_attr
            .or(cores_attr.as_ref().map(Vec::len))
            .unwrap_or(allowed.len())
            .max(1);
        let pin_cores = pin_attr.unwrap_or(cores_attr.is_some() || count == allowed.len());
        let cores = if pin_cores {
            match cores_attr {
                Some(cores) if cores.len() != count => {
                    let message = format!(
                        "lists {} CPUs for {count} shards; give one per shard",
                        cores.len()
                    );
                    return Err(match el.attr("cores") {
                        Some(a) => self.attr_err(el, a, message),
                        None => self.el_err(el, message),
                    });
                }
                Some(cores) => cores,
                None if count <= allowed.len() => allowed[..count].to_vec(),
                None => {
                    let message = format!(
                        "cannot pin {count} shards to the {} CPUs available ({allowed_list}); \
                         use fewer shards or pinCores=\"false\"",
                        allowed.len()
                    );
                    return Err(match el.attr("shards") {
                        Some(a) => self.attr_err(el, a, message),
                        None => self.el_err(el, message),
                    });
                }
            }
        } else {
            if let (Some(_), Some(a)) = (&cores_attr, el.attr("pinCores")) {
                return Err(self.attr_err(
                    el,
                    a,
                    "cores is set, which only means something with pinning",
                ));
            }
            Vec::new()
        };
        let replication_core = self.typed(el, "replicationCore", |s| {
            parse_u64(s)
                .ok()
                .and_then(|n| usize::try_from(n).ok())
                .filter(|c| allowed.contains(c))
                .ok_or("a CPU available to this process")
        })?;
        let shards = ShardSettings {
            count,
            pin_cores,
            cores,
            io_memory_bytes: self
                .typed(
                    el,
                    "ioMemory",
                    size_at_least(64 << 10, "a size of at least 64 kb"),
                )?
                .unwrap_or(256 << 10),
            ring_depth: self
                .typed(el, "ringDepth", |s| {
                    parse_u64(s)
                        .ok()
                        .and_then(|n| u32::try_from(n).ok())
                        .filter(|n| n.is_power_of_two() && (8..=32768).contains(n))
                        .ok_or("a power of two between 8 and 32768")
                })?
                .unwrap_or(128),
            replication_core,
        };
        let limits = ProtocolLimits {
            max_frame_bytes: self
                .typed(
                    el,
                    "maxFrameSize",
                    size_at_least(1024, "a size of at least 1 kb"),
                )?
                .unwrap_or(64 << 20),
            max_header_bytes: self
                .typed(el, "maxHeaderSize", |s| {
                    parse_size(s)
                        .ok()
                        .and_then(|n| u32::try_from(n).ok())
                        .filter(|n| *n >= 256)
                        .ok_or("a size between 256 b and 4 gb")
                })?
                .unwrap_or(10 << 10),
            max_headers: self
                .typed(el, "maxHeaders", |s| {
                    parse_u64(s)
                        .ok()
                        .and_then(|n| u32::try_from(n).ok())
                        .filter(|n| *n >= 1)
                        .ok_or("a whole number >= 1")
                })?
                .unwrap_or(1000),
            connect_attempt_timeout_ms: self
                .typed(el, "connectAttemptTimeout", parse_connect_attempt_timeout)?
                .unwrap_or(5_000),
            max_login_frame_bytes: self
                .typed(
                    el,
                    "maxLoginFrameSize",
                    size_at_least(1024, "a size of at least 1 kb"),
                )?
                .unwrap_or(64 << 10),
        };
        let redelivery = RedeliverySettings {
            maximum_redeliveries: self
                .typed(el, "maximumRedeliveries", |s| match s.trim() {
                    "-1" => Ok(None),
                    t => parse_u64(t)
                        .ok()
                        .and_then(|n| u32::try_from(n).ok())
                        .map(Some)
                        .ok_or("a count >= 0, or -1 for no limit"),
                })?
                .unwrap_or(Some(6)),
            dead_letter_queue: self
                .non_empty(el, "deadLetterQueue")?
                .unwrap_or_else(|| "ActiveMQ.DLQ".to_string()),
        };
        let ack = self
            .typed(el, "replicationAck", |s| {
                match s.trim().to_ascii_lowercase().as_str() {
                    "fsync" => Ok(ReplicationAck::Fsync),
                    "received" => Ok(ReplicationAck::Received),
                    _ => Err("\"fsync\" or \"received\""),
                }
            })?
            .unwrap_or(ReplicationAck::Fsync);
        let heartbeat_ms = self
            .typed(el, "replicationHeartbeat", |s| {
                parse_u64(s)
                    .ok()
                    .filter(|n| (10..=60_000).contains(n))
                    .ok_or("milliseconds in 10-60000")
            })?
            .unwrap_or(100);
        let status_port = self
            .typed(el, "statusPort", |s| {
                parse_u64(s)
                    .ok()
                    .and_then(|n| u16::try_from(n).ok())
                    .ok_or("a port in 0-65535")
            })?
            .filter(|p| *p != 0);
        let link = self.replication_link(el, heartbeat_ms)?;
        let connection_limits = self.connection_limits(el)?;
        Ok(TandemRaw {
            shards,
            limits,
            connection_limits,
            redelivery,
            ack,
            heartbeat_ms,
            link,
            status_port,
            status_host: self
                .typed(el, "statusHost", |s| {
                    s.trim()
                        .parse::<std::net::IpAddr>()
                        .map_err(|_| "an IP address (e.g. 127.0.0.1, 0.0.0.0, ::1)")
                })?
                .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1])),
            admin_group: self
                .non_empty(el, "adminGroup")?
                .unwrap_or_else(|| "admins".to_string()),
        })
    }

    /// The `<tandem>` attributes of [`ConnectionLimits`].
    pub(super) fn connection_limits(
        &mut self,
        el: &Element,
    ) -> Result<ConnectionLimits, ConfigError> {
        let count = |s: &str| {
            parse_u64(s)
                .ok()
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| *n >= 1)
                .ok_or("a whole number between 1 and 4294967295")
        };
        Ok(ConnectionLimits {
            max_transaction_bytes: self.typed(
                el,
                "maxTransactionSize",
                size_at_least(1024, "a size of at least 1 kb"),
            )?,
            max_prefetch: self
                .typed(el, "maxPrefetch", |s| {
                    parse_u64(s)
                        .ok()
                        .and_then(|n| u32::try_from(n).ok())
                        .filter(|n| (1..=i32::MAX as u32).contains(n))
                        .ok_or("a whole number between 1 and 2147483647")
                })?
                .unwrap_or(32767),
            max_pending_output_bytes: self
                .typed(
                    el,
                    "maxPendingOutput",
                    size_at_least(1024, "a size of at least 1 kb"),
                )?
                .unwrap_or(4 << 20),
            max_subscriptions_per_connection: self
                .typed(el, "maxSubscriptionsPerConnection", count)?
                .unwrap_or(10_000),
            max_transactions_per_connection: self
                .typed(el, "maxTransactionsPerConnection", count)?
                .unwrap_or(1_000),
            max_producers_per_connection: self
                .typed(el, "maxProducersPerConnection", count)?
                .unwrap_or(10_000),
            max_temp_destinations_per_connection: self
                .typed(el, "maxTemporaryDestinationsPerConnection", count)?
                .unwrap_or(1_000),
            max_composite_destinations: self
                .typed(el, "maxCompositeDestinations", count)?
                .unwrap_or(1_000),
            max_destinations: self.typed(el, "maxDestinations", count)?.unwrap_or(100_000),
            max_scheduled_messages: self
                .typed(el, "maxScheduledMessages", count)?
                .map_or(2_000_000, u64::from),
        })
    }

    /// `<tandem replicationGroup replicationSecret replicationAckTimeout>`.
    pub(super) fn replication_link(
        &mut self,
        el: &Element,
        heartbeat_ms: u64,
    ) -> Result<ReplicationLink, ConfigError> {
        let group = self
            .non_empty(el, "replicationGroup")?
            .unwrap_or_else(|| "admins".to_string());
        let secret = match self.value(el, "replicationSecret")? {
            Some((s, a)) if s.is_empty() => {
                return Err(self.attr_err(
                    el,
                    a,
                    "an empty replication secret authenticates nobody; set a long random \
                     string (or remove the attribute)",
                ))
            }
            Some((s, _)) => Some(Secret(s)),
            None => None,
        };
        let ack_timeout_ms = self
            .typed(el, "replicationAckTimeout", |s| {
                parse_u64(s)
                    .ok()
                    .filter(|n| (10..=3_600_000).contains(n))
                    .ok_or("milliseconds in 10-3600000")
            })?
            .unwrap_or(heartbeat_ms.saturating_mul(30));
        let buffer_bytes = self
            .typed(
                el,
                "replicationBuffer",
                size_at_least(REPLICATION_BUFFER_MIN, "a size of at least 64 kb"),
            )?
            .unwrap_or(REPLICATION_BUFFER_DEFAULT);
        let witness = match self.value(el, "witness")? {
            None => None,
            Some((url, a)) => {
                let endpoints = crate::witness::parse_witness(&url)
                    .map_err(|e| self.attr_err(el, a, e.to_string()))?;
                let key = self
                    .non_empty(el, "witnessKey")?
                    .unwrap_or_else(|| "/tandem/pair".to_string());
                let lease_secs = self
                    .typed(el, "witnessLease", |s| {
                        parse_u64(s)
                            .ok()
                            .filter(|n| (1..=60).contains(n))
                            .ok_or("seconds in 1-60")
                    })?
                    .unwrap_or(2);
                Some(crate::config::WitnessSettings {
                    endpoints,
                    key,
                    lease_secs,
                })
            }
        };
        Ok(ReplicationLink {
            group,
            secret,
            ack_timeout_ms,
            buffer_bytes,
            witness,
        })
    }
}

/// `<tandem replicationBuffer>` default: what a master keeps in memory for a slow
/// slave before it reads what the slave missed back from its journal.
pub const REPLICATION_BUFFER_DEFAULT: u64 = 16 << 20;
/// Smallest `replicationBuffer`: below one catch-up chunk the link would do nothing
/// but switch.
const REPLICATION_BUFFER_MIN: u64 = 64 << 10;
