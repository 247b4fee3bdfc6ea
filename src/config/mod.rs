//! `activemq.xml`-style configuration, parsed and validated into [`BrokerConfig`].
//!
//! The reference for every element and attribute is the README's "Configuration" section. In short:
//!
//! * The file may be a Spring `<beans>` document with one `<broker>` inside (as ActiveMQ
//!   ships it) or a bare `<broker>`; elements match by local name, so namespaces and
//!   prefixes do not matter.
//! * What Tandem reads is validated; a bad value is a [`ConfigError`] naming file, line,
//!   element and attribute.
//! * What Tandem does not read is reported once per element path as [`Ignored`] and logged
//!   with `tracing::warn!`, so an existing `activemq.xml` starts. Exceptions that fail
//!   closed: authorization/JAAS plugins (ignoring them would open the broker).
//! * Tandem's own settings live in a `<tandem .../>` child of `<broker>`.
//!
//! Files: `xml.rs` (element tree with line numbers), `value.rs` (sizes, booleans,
//! placeholders), `read.rs` (tree -> settings: the entry point and the reader's
//! reporting), `attrs.rs` (attribute access), one file per part of the document
//! (`broker_element.rs`, `connectors.rs`, `storage.rs`, `plugins.rs`, `interceptors.rs`
//! (virtual topics), `policy.rs` (`<destinationPolicy>`), `master.rs`,
//! `tandem_element.rs`, `tls.rs` for `<sslContext>`, the PEM files on `<tandem>` and who
//! needs them), `cpus.rs` (allowed CPUs).

mod attrs;
mod broker_element;
mod connectors;
pub mod cpus;
mod interceptors;
mod master;
mod plugins;
mod policy;
mod read;
mod storage;
mod tandem_element;
mod tls;
mod value;
mod xml;

use std::fmt;
use std::path::{Path, PathBuf};

use crate::uri::TransportUri;

pub use cpus::allowed_cpus;
pub use plugins::{RedeliveryPluginSettings, RedeliveryPolicySettings};
pub use policy::DestinationPolicySettings;

/// Default journal segment size (`journalMaxFileLength`), as KahaDB's default.
pub const DEFAULT_SEGMENT_BYTES: u64 = 32 << 20;
/// Default memory limit (`<memoryUsage limit>`).
pub const DEFAULT_MEMORY_LIMIT_BYTES: u64 = 64 << 20;
/// `<storeUsage limit>` when not configured: ActiveMQ's default, 100 gb.
pub const DEFAULT_STORE_LIMIT_BYTES: u64 = 100 << 30;

/// The broker's whole configuration, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerConfig {
    /// The file this came from; error messages and logs name it.
    pub source: PathBuf,
    /// `<broker brokerName>`; default `localhost`. Never empty.
    pub broker_name: String,
    /// `<broker dataDirectory>`; default `data`, relative to the working directory.
    /// Holds the journal (unless kahaDB's `directory` is absolute) and the node's
    /// epoch/role record.
    pub data_directory: PathBuf,
    /// `<broker persistent>`; default true. When false nothing is journaled.
    pub persistent: bool,
    /// Listeners Tandem serves; never empty, names unique, no two on one port.
    pub transport_connectors: Vec<TransportConnector>,
    pub journal: JournalSettings,
    /// `<systemUsage><systemUsage><memoryUsage><memoryUsage limit>`; default 64 MiB.
    /// At least 1 MiB.
    pub memory_limit_bytes: u64,
    /// `<systemUsage><systemUsage><storeUsage><storeUsage limit>`: journal bytes on
    /// disk (all shards) beyond which persistent sends are refused; default 100 GiB,
    /// as ActiveMQ. At least 4 MiB.
    pub store_limit_bytes: u64,
    /// `<simpleAuthenticationPlugin>` users; usernames unique.
    pub users: Vec<AuthUser>,
    /// True iff `<simpleAuthenticationPlugin>` is present: every connection must then
    /// log in as one of `users`.
    pub auth_enabled: bool,
    pub shards: ShardSettings,
    pub limits: ProtocolLimits,
    pub connection_limits: ConnectionLimits,
    pub redelivery: RedeliverySettings,
    pub replication: ReplicationSettings,
    /// `<tandem statusPort>`: HTTP status/metrics port; `None` (the default, or 0)
    /// means no status endpoint.
    pub status_port: Option<u16>,
    /// `<tandem statusHost>`: the address the status/admin endpoint binds; default
    /// 127.0.0.1 (the admin operations are reachable from this host only unless the
    /// operator says otherwise). An IP address.
    pub status_host: std::net::IpAddr,
    /// `<tandem adminGroup>`: with the authentication plugin, only users whose groups
    /// include it may call `/admin/*`; default `admins`. Non-empty.
    pub admin_group: String,
    /// `<sslContext>` / `<tandem tls*>`: required when a connector or
    /// `masterConnectorURI` uses TLS (the loader says so otherwise).
    pub tls: Option<TlsSettings>,
    /// The `<virtualTopic>` rules of `<destinationInterceptors>`; without that element
    /// ActiveMQ's default (`VirtualTopic.>`, `Consumer.*.`), unless
    /// `<broker useVirtualTopics="false">`. Each valid for
    /// `broker::VirtualTopicRule::new`.
    pub virtual_topics: Vec<VirtualTopicSettings>,
    /// `<destinationPolicy>`: per-destination policy entries (dead-letter strategy,
    /// prefetch); empty when not configured.
    pub destination_policy: DestinationPolicySettings,
    /// `<broker schedulerSupport>`; default false, as ActiveMQ: scheduled delivery
    /// (`AMQ_SCHEDULED_*` properties). Off, those properties are ignored.
    pub scheduler_support: bool,
    /// `<plugins><redeliveryPlugin>`; only with `scheduler_support`.
    pub redelivery_plugin: Option<RedeliveryPluginSettings>,
}

/// One `<virtualTopic>`: topics matching `name` also go to the existing queues named
/// `prefix` + topic + `postfix` (`*` in the prefix: any one segment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualTopicSettings {
    /// Topic pattern; default `>` (every topic) on an element, as in ActiveMQ.
    pub name: String,
    /// Default `Consumer.*.`.
    pub prefix: String,
    /// Default empty.
    pub postfix: String,
}

/// One `<transportConnector>` Tandem listens on.
#[derive(Debug, Clone, PartialEq)]
pub struct TransportConnector {
    /// `name`; defaults to the URI as written (ActiveMQ does the same). Unique.
    pub name: String,
    /// `uri`, resolved. Its scheme is one Tandem serves.
    pub uri: TransportUri,
    /// `?maximumConnections=N`; `None` = unlimited. At least 1 when set.
    pub max_connections: Option<u32>,
    /// Largest frame accepted on this connector: `?wireFormat.maxFrameSize=` if given,
    /// else [`ProtocolLimits::max_frame_bytes`].
    pub max_frame_bytes: u64,
    /// Milliseconds from accept to a completed login before the connection is closed:
    /// `?transport.connectAttemptTimeout=` if given, else
    /// [`ProtocolLimits::connect_attempt_timeout_ms`].
    pub connect_attempt_timeout_ms: u64,
    /// `Some` on a TLS scheme (`ssl`, `nio+ssl`, `stomp+ssl`, `stomp+nio+ssl`,
    /// `auto+ssl`, `auto+nio+ssl`): whether a client certificate is asked for
    /// (`?needClientAuth=true`, `?wantClientAuth=true`, also spelled
    /// `transport.needClientAuth`). The material is [`BrokerConfig::tls`].
    pub tls: Option<ClientAuth>,
}

/// Whether a TLS connector asks clients for a certificate (mutual TLS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// No client certificate asked for (ActiveMQ's default).
    #[default]
    None,
    /// `wantClientAuth`: asked for; a client without one is still served, one with a
    /// certificate the trust store does not verify is refused.
    Want,
    /// `needClientAuth`: a client without a certificate the trust store verifies is
    /// refused during the handshake.
    Need,
}

/// The broker's TLS material: `<sslContext><sslContext keyStore keyStorePassword
/// trustStore trustStorePassword/>` (PKCS12 stores, as `keytool` makes them), or PEM
/// files on `<tandem tlsCertificate tlsPrivateKey tlsTrustedCa>`. Paths are resolved
/// against the configuration file's directory.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsSettings {
    /// This node's certificate chain and private key: what a TLS connector presents,
    /// and what a slave presents to a master that asks for a client certificate.
    pub identity: Option<TlsIdentity>,
    /// The certificates that verify peers: clients' certificates on a connector with
    /// client auth, the master's certificate for a slave.
    pub trust: Option<TlsTrust>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TlsIdentity {
    /// `keyStore` + `keyStorePassword` (+ `keyStoreKeyPassword` when the key's password
    /// differs): the first private-key entry and its chain.
    Pkcs12 {
        path: PathBuf,
        password: Secret,
        key_password: Option<Secret>,
    },
    /// `tlsCertificate` (chain, leaf first) + `tlsPrivateKey` (PKCS#8, PKCS#1 or SEC1).
    Pem {
        certificate: PathBuf,
        private_key: PathBuf,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum TlsTrust {
    /// `trustStore` + `trustStorePassword`: every certificate entry is a trusted root.
    Pkcs12 { path: PathBuf, password: Secret },
    /// `tlsTrustedCa`: one or more PEM certificates.
    Pem { ca: PathBuf },
}

/// Where and how the journal is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalSettings {
    /// Effective journal directory; see [`BrokerConfig::override_data_dir`] for the rule.
    pub directory: PathBuf,
    /// `<kahaDB directory>` as configured, reduced to a path relative to the data
    /// directory when it was spelled under it (the stock `${activemq.data}/kahadb` becomes
    /// `kahadb`); absolute otherwise. `None`: the default `journal`.
    pub configured_directory: Option<PathBuf>,
    /// `<kahaDB journalMaxFileLength>`; default 32 MiB. A multiple of 4 KiB (O_DIRECT
    /// writes whole pages) and at least 64 KiB.
    pub segment_bytes: u64,
    /// Recovery skips damaged ranges of the journal instead of refusing to start:
    /// the `--skip-damaged-records` command-line flag, never a file setting (it loses
    /// what the damaged bytes held, so it is a decision for one start).
    pub skip_damaged_records: bool,
}

/// A `<authenticationUser>`.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthUser {
    /// Non-empty, unique.
    pub username: String,
    pub password: String,
    /// `groups`, comma-separated in the file; kept for a later authorization step.
    pub groups: Vec<String>,
}

// Hand-written so a config dumped to a log never shows a password.
impl fmt::Debug for AuthUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthUser")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("groups", &self.groups)
            .finish()
    }
}

/// Thread-per-core layout (`<tandem>` attributes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardSettings {
    /// `shards`; default: one per allowed CPU (online and in the affinity mask), or
    /// the length of `cores` when that is given. At least 1.
    pub count: usize,
    /// `pinCores`; default true when `cores` is given or when `count` equals the number
    /// of allowed CPUs (each shard then owns a core), false otherwise.
    pub pin_cores: bool,
    /// CPU for shard i. When `pin_cores`, exactly `count` allowed CPUs (`cores`, default
    /// the first `count` allowed CPUs); empty when not pinning.
    pub cores: Vec<usize>,
    /// `ioMemory`: glommio I/O buffer memory per executor; default 256 KiB, at least
    /// 64 KiB.
    pub io_memory_bytes: u64,
    /// `ringDepth`: io_uring submission queue depth; default 128, a power of two in
    /// 8..=32768.
    pub ring_depth: u32,
    /// `replicationCore`: CPU for the replication executor; `None` lets the node choose.
    /// An allowed CPU when set.
    pub replication_core: Option<usize>,
}

/// Limits a protocol front-end enforces before buffering input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtocolLimits {
    /// `<tandem maxFrameSize>`; default 64 MiB, at least 1 KiB. A connector's
    /// `wireFormat.maxFrameSize` overrides it for that connector.
    pub max_frame_bytes: u64,
    /// `<tandem maxHeaderSize>`: bytes of one STOMP header line; default 10 KiB
    /// (ActiveMQ's), at least 256.
    pub max_header_bytes: u32,
    /// `<tandem maxHeaders>`: headers per frame; default 1000 (ActiveMQ's), at least 1.
    pub max_headers: u32,
    /// `<tandem connectAttemptTimeout>` (ms): a connection that has not completed its
    /// handshake and login this long after it was accepted is closed. Default 5000,
    /// 100-600000. A connector's `transport.connectAttemptTimeout` overrides it.
    pub connect_attempt_timeout_ms: u64,
    /// `<tandem maxLoginFrameSize>`: the largest frame accepted before login (STOMP
    /// CONNECT, OpenWire WireFormatInfo/ConnectionInfo); default 64 KiB, at least
    /// 1 KiB. Capped by the connector's `maxFrameSize`.
    pub max_login_frame_bytes: u64,
}

/// What one client may make the broker hold (`<tandem>` attributes, named after
/// ActiveMQ's where it has the notion; issue 11). Counts are at least 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// `<tandem maxTransactionSize>`: message bytes one transaction may buffer before it
    /// is rolled back with an error. Default: half the memory limit. At least 1 KiB.
    /// All open transactions together are held to the memory limit.
    pub max_transaction_bytes: Option<u64>,
    /// `<tandem maxPrefetch>`: the largest prefetch the broker grants (a client asking
    /// more gets this); default 32767, the JMS client's own maximum.
    pub max_prefetch: u32,
    /// `<tandem maxPendingOutput>`: message bytes one consumer may have dispatched to
    /// its connection and not yet written to the socket; default 4 MiB, at least 1 KiB.
    pub max_pending_output_bytes: u64,
    /// `<tandem maxSubscriptionsPerConnection>` (STOMP subscriptions, JMS consumers and
    /// browsers); default 10000.
    pub max_subscriptions_per_connection: u32,
    /// `<tandem maxTransactionsPerConnection>`: open transactions; default 1000.
    pub max_transactions_per_connection: u32,
    /// `<tandem maxProducersPerConnection>` (JMS producers); default 10000.
    pub max_producers_per_connection: u32,
    /// `<tandem maxTemporaryDestinationsPerConnection>`; default 1000.
    pub max_temp_destinations_per_connection: u32,
    /// `<tandem maxCompositeDestinations>`: members of one composite destination
    /// (`queue://a,b,c`); default 1000.
    pub max_composite_destinations: u32,
    /// `<tandem maxDestinations>`: queues and topics (temporary ones included) the
    /// broker holds; default 100000 (ActiveMQ's `policyEntry maxDestinations`, which
    /// defaults to unlimited).
    pub max_destinations: u32,
    /// `<tandem maxScheduledMessages>`: scheduled messages waiting to fire, all
    /// shards, before a scheduled send is refused; default 2000000 (each costs about
    /// 250 bytes of memory; its body stays in the journal).
    pub max_scheduled_messages: u64,
}

/// What happens to a message that keeps coming back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedeliverySettings {
    /// `<tandem maximumRedeliveries>`; default 6 (ActiveMQ's). `None` (written -1):
    /// redeliver forever. After this many redeliveries the message goes to the DLQ.
    pub maximum_redeliveries: Option<u32>,
    /// `<tandem deadLetterQueue>`; default `ActiveMQ.DLQ`. Non-empty.
    pub dead_letter_queue: String,
}

/// When the master counts a replicated record as safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicationAck {
    /// The slave has written and fsynced it (default): survives losing both processes.
    Fsync,
    /// The slave has it in memory: lower latency, survives losing one machine.
    Received,
}

/// Master/slave settings, named as ActiveMQ's pure master/slave names them.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicationSettings {
    /// `<broker masterConnectorURI>` or `<services><masterConnector remoteURI>`: set
    /// means this node starts as a slave of that master. Never port 0 or an
    /// unspecified address.
    pub master: Option<MasterConnector>,
    /// `<broker shutdownOnMasterFailure>`; default false: the slave takes over.
    pub shutdown_on_master_failure: bool,
    /// `<broker waitForSlave>`; default false: the master serves before a slave attaches.
    pub wait_for_slave: bool,
    /// `<broker waitForSlaveTimeout>` in ms; default 600000 (ActiveMQ's).
    pub wait_for_slave_timeout_ms: u64,
    /// `<broker shutdownOnSlaveFailure>`; default false.
    pub shutdown_on_slave_failure: bool,
    /// `<tandem replicationAck>`: `fsync` (default) or `received`.
    pub ack: ReplicationAck,
    /// `<tandem replicationHeartbeat>`: ms between link heartbeats, both ways; the
    /// peer is lost after 5 silent intervals. Default 100 (loss seen within 0.5 s).
    pub heartbeat_ms: u64,
    /// Who may be a slave, and for how long an in-sync slave may leave records
    /// unacknowledged (`<tandem replicationGroup replicationSecret replicationAckTimeout>`).
    pub link: ReplicationLink,
}

/// The replication link's authentication and acknowledgement deadline.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicationLink {
    /// `<tandem replicationGroup>`: with the authentication plugin, a slave logs in as a
    /// user whose `groups` include this one. Default `admins`.
    pub group: String,
    /// `<tandem replicationSecret>`: the shared secret of a pair without the
    /// authentication plugin (and of a slave with no `<masterConnector userName>`).
    /// Never empty.
    pub secret: Option<Secret>,
    /// `<tandem replicationAckTimeout>` in ms: an in-sync slave whose oldest
    /// unacknowledged record is older is dropped. Default 30 heartbeat intervals
    /// (3 s with the default heartbeat).
    pub ack_timeout_ms: u64,
    /// `<tandem replicationBuffer>` in bytes: what the master holds in memory for its
    /// slave (live batches, non-persistent frames, socket output). Beyond it the
    /// slave reads what it missed from the master's journal and non-persistent
    /// frames are dropped for it. Default 16 MiB.
    pub buffer_bytes: u64,
    /// `<tandem witness="etcd://h1:2379,h2:2379,h3:2379" witnessKey witnessLease>`:
    /// the etcd cluster that decides who may serve when the two nodes cannot reach
    /// each other (`replication::machine`). `None`: no witness (ActiveMQ's behaviour:
    /// a slave takes over on silence).
    pub witness: Option<WitnessSettings>,
}

/// Where the pair's witness is, and what it keeps there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessSettings {
    /// `host:port` of each etcd member.
    pub endpoints: Vec<String>,
    /// `witnessKey`: the key prefix of this pair (default `/tandem/pair`: give every
    /// pair sharing an etcd cluster its own).
    pub key: String,
    /// `witnessLease`: seconds a master's lease lasts without renewal (default 2, etcd's
    /// minimum with its default timing). A slave takes over no sooner after the master
    /// fell silent.
    pub lease_secs: u64,
}

/// A secret from the configuration: compared and hashed, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// How a slave reaches its master.
#[derive(Debug, Clone, PartialEq)]
pub struct MasterConnector {
    pub uri: TransportUri,
    /// `userName` on `<masterConnector>`; `None` with `masterConnectorURI`.
    pub user_name: Option<String>,
    pub password: Option<String>,
}

/// Something in the file that Tandem does not read (an element with everything inside
/// it, an attribute, a connector with an unsupported scheme, a URI option).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignored {
    /// Where: `beans/broker/destinationPolicy`, `beans/broker@useJmx`,
    /// `.../transportConnector[amqp]`, `.../transportConnector[openwire]?transport.x`.
    /// Unique within one load.
    pub path: String,
    /// Line of the first occurrence.
    pub line: u32,
    pub reason: String,
}

impl fmt::Display for Ignored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}: {}: ignored ({})",
            self.line, self.path, self.reason
        )
    }
}

/// A configuration Tandem refuses to start with.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}: malformed XML: {message}", path.display())]
    Xml {
        path: PathBuf,
        line: u32,
        message: String,
    },
    /// A bad attribute value. `value` is as written (before placeholders are filled).
    #[error("{}:{line}: <{element} {attribute}=\"{value}\">: {message}", path.display())]
    Attribute {
        path: PathBuf,
        line: u32,
        element: String,
        attribute: String,
        value: String,
        message: String,
    },
    /// A problem with an element as a whole (missing attribute, duplicate, misplaced).
    #[error("{}:{line}: <{element}>: {message}", path.display())]
    Element {
        path: PathBuf,
        line: u32,
        element: String,
        message: String,
    },
}

impl ConfigError {
    /// Line the error points at (0 for I/O errors).
    pub fn line(&self) -> u32 {
        match self {
            ConfigError::Io { .. } => 0,
            ConfigError::Xml { line, .. }
            | ConfigError::Attribute { line, .. }
            | ConfigError::Element { line, .. } => *line,
        }
    }
}

/// Looks up a placeholder name; `None` when unset.
pub type VarLookup = Box<dyn Fn(&str) -> Option<String>>;

/// What the loader may ask of the outside world; tests substitute their own so they
/// depend on neither the process environment nor the machine's CPUs.
pub struct LoadEnv {
    /// Looks up a placeholder name (environment variable).
    pub vars: VarLookup,
    /// CPUs shards may be pinned to; see [`allowed_cpus`]. Must not be empty.
    pub allowed_cpus: Vec<usize>,
}

impl LoadEnv {
    /// The real process environment and this machine's allowed CPUs.
    pub fn from_process() -> LoadEnv {
        LoadEnv {
            vars: Box::new(|name| std::env::var(name).ok()),
            allowed_cpus: allowed_cpus(),
        }
    }
}

/// Reads, parses and validates a config file, logging what it ignores.
pub fn load(path: &Path) -> Result<BrokerConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let (config, _ignored) = parse_str(&text, path)?;
    Ok(config)
}

/// Parses config text against the process environment. `source` is only used in
/// messages. Ignored items are logged and returned.
pub fn parse_str(text: &str, source: &Path) -> Result<(BrokerConfig, Vec<Ignored>), ConfigError> {
    parse_str_with(text, source, &LoadEnv::from_process())
}

/// As [`parse_str`] with an explicit environment.
pub fn parse_str_with(
    text: &str,
    source: &Path,
    env: &LoadEnv,
) -> Result<(BrokerConfig, Vec<Ignored>), ConfigError> {
    let root = xml::parse_document(text).map_err(|e| ConfigError::Xml {
        path: source.to_path_buf(),
        line: e.line,
        message: e.message,
    })?;
    let (config, ignored) = read::read(&root, source, env)?;
    for item in &ignored {
        tracing::warn!(file = %source.display(), "{item}");
    }
    Ok((config, ignored))
}

impl BrokerConfig {
    /// Replaces the data directory (the `--data-dir` flag) and re-derives the journal
    /// directory by the one rule used at load:
    ///
    /// * kahaDB `directory` absolute: used as is;
    /// * kahaDB `directory` relative: under the data directory (a spelling that already
    ///   starts with the configured data directory, like the stock
    ///   `${activemq.data}/kahadb`, is not doubled);
    /// * no kahaDB `directory`: `<data>/journal`.
    pub fn override_data_dir(&mut self, dir: PathBuf) {
        self.journal.directory =
            journal_directory(&dir, self.journal.configured_directory.as_deref());
        self.data_directory = dir;
    }
}

/// The journal directory rule; see [`BrokerConfig::override_data_dir`].
fn journal_directory(data: &Path, configured: Option<&Path>) -> PathBuf {
    match configured {
        Some(p) if p.is_absolute() => p.to_path_buf(),
        Some(p) if p.as_os_str().is_empty() => data.to_path_buf(),
        Some(p) => data.join(p),
        None => data.join("journal"),
    }
}

#[cfg(test)]
mod policy_tests;
#[cfg(test)]
mod tests;
