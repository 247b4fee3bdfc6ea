//! Element tree -> [`BrokerConfig`]: one function per supported element; everything
//! else is reported as [`Ignored`] (once per path) or, for a bad value, as a
//! [`ConfigError`] pointing at the attribute.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::value::{expand, parse_bool, parse_cpu_list, parse_size, parse_u64, PlaceholderError};
use super::xml::{Attr, Element};
use super::{
    journal_directory, AuthUser, BrokerConfig, ConfigError, ConnectionLimits, Ignored,
    JournalSettings, LoadEnv, MasterConnector, ProtocolLimits, RedeliverySettings, ReplicationAck,
    ReplicationLink, ReplicationSettings, Secret, ShardSettings, TransportConnector,
    DEFAULT_MEMORY_LIMIT_BYTES, DEFAULT_SEGMENT_BYTES, DEFAULT_STORE_LIMIT_BYTES,
};
use crate::uri::{TransportUri, UriError};

/// Plugins whose absence would let in clients the original broker kept out. Ignoring
/// them would turn a locked-down ActiveMQ config into an open Tandem, so they stop the
/// load instead.
const FAIL_CLOSED_PLUGINS: &[&str] = &[
    "jaasAuthenticationPlugin",
    "jaasCertificateAuthenticationPlugin",
    "jaasDualAuthenticationPlugin",
    "authorizationPlugin",
];

pub(crate) fn read(
    root: &Element,
    source: &Path,
    env: &LoadEnv,
) -> Result<(BrokerConfig, Vec<Ignored>), ConfigError> {
    let mut r = Reader {
        source,
        env,
        ignored: Vec::new(),
        seen: HashSet::new(),
    };
    let (broker, path) = r.find_broker(root)?;
    let config = r.broker(broker, &path)?;
    // Reported in document order, which is how a reader scans the file; the sort is
    // stable so items on one line keep the order they were found in.
    let mut ignored = r.ignored;
    ignored.sort_by_key(|i| i.line);
    Ok((config, ignored))
}

struct Reader<'a> {
    source: &'a Path,
    env: &'a LoadEnv,
    ignored: Vec<Ignored>,
    /// Paths already reported, so each is logged once however often it repeats.
    seen: HashSet<String>,
}

/// Settings from the `<tandem>` element, before they are combined with the rest.
struct TandemRaw {
    shards: ShardSettings,
    limits: ProtocolLimits,
    connection_limits: ConnectionLimits,
    redelivery: RedeliverySettings,
    ack: ReplicationAck,
    heartbeat_ms: u64,
    link: ReplicationLink,
    status_port: Option<u16>,
    status_host: std::net::IpAddr,
    admin_group: String,
}

/// `<tandem>` attributes of the connection limits (read by [`Reader::connection_limits`]).
const CONNECTION_LIMIT_ATTRS: [&str; 9] = [
    "maxTransactionSize",
    "maxPrefetch",
    "maxPendingOutput",
    "maxSubscriptionsPerConnection",
    "maxTransactionsPerConnection",
    "maxProducersPerConnection",
    "maxTemporaryDestinationsPerConnection",
    "maxCompositeDestinations",
    "maxDestinations",
];

/// `<tandem>` attributes of the replication link (read by [`Reader::replication_link`]).
const REPLICATION_LINK_ATTRS: [&str; 4] = [
    "replicationGroup",
    "replicationSecret",
    "replicationAckTimeout",
    "replicationBuffer",
];

/// A connector as read, before the global frame limit is known.
struct RawConnector {
    name: String,
    uri: TransportUri,
    max_connections: Option<u32>,
    max_frame_bytes: Option<u64>,
    connect_attempt_timeout_ms: Option<u64>,
}

impl<'a> Reader<'a> {
    // ---- reporting -------------------------------------------------------------

    fn ignore(&mut self, path: String, line: u32, reason: impl Into<String>) {
        if self.seen.insert(path.clone()) {
            self.ignored.push(Ignored {
                path,
                line,
                reason: reason.into(),
            });
        }
    }

    fn ignore_element(&mut self, el: &Element, parent: &str) {
        self.ignore(
            format!("{parent}/{}", el.name),
            el.line,
            "element not supported",
        );
    }

    /// Reports every attribute of `el` not in `known`.
    fn check_attrs(&mut self, el: &Element, path: &str, known: &[&str]) {
        for a in &el.attrs {
            if !a.is_xml_plumbing() && !known.contains(&a.local.as_str()) {
                self.ignore(
                    format!("{path}@{}", a.local),
                    a.line,
                    "attribute not supported",
                );
            }
        }
    }

    fn attr_err(&self, el: &Element, a: &Attr, message: impl Into<String>) -> ConfigError {
        ConfigError::Attribute {
            path: self.source.to_path_buf(),
            line: a.line,
            element: el.name.clone(),
            attribute: a.local.clone(),
            // A password can only fail on its placeholder syntax, but even then the
            // message must not carry the password into a log.
            value: if a.local.eq_ignore_ascii_case("password") {
                "<redacted>".to_string()
            } else {
                a.value.clone()
            },
            message: message.into(),
        }
    }

    fn el_err(&self, el: &Element, message: impl Into<String>) -> ConfigError {
        ConfigError::Element {
            path: self.source.to_path_buf(),
            line: el.line,
            element: el.name.clone(),
            message: message.into(),
        }
    }

    /// Keeps the first of a child that may appear once; a second is an error because
    /// silently picking one would hide a mistake.
    fn once<'e>(&self, slot: &mut Option<&'e Element>, el: &'e Element) -> Result<(), ConfigError> {
        if let Some(first) = slot {
            return Err(self.el_err(
                el,
                format!("appears twice (first at line {}); keep one", first.line),
            ));
        }
        *slot = Some(el);
        Ok(())
    }

    // ---- attribute access ------------------------------------------------------

    /// The attribute's value with placeholders filled, if the attribute is present.
    fn value<'e>(
        &self,
        el: &'e Element,
        name: &str,
    ) -> Result<Option<(String, &'e Attr)>, ConfigError> {
        let Some(a) = el.attr(name) else {
            return Ok(None);
        };
        match expand(&a.value, &*self.env.vars) {
            Ok(v) => Ok(Some((v, a))),
            Err(PlaceholderError::Unset(p)) => Err(self.attr_err(
                el,
                a,
                format!(
                    "placeholder ${{{p}}} is not set (looked for environment variables \
                     {p}, {u}, {U}; or write ${{{p}:-default}})",
                    u = p.replace('.', "_"),
                    U = p.replace('.', "_").to_ascii_uppercase(),
                ),
            )),
            Err(PlaceholderError::Unterminated) => {
                Err(self.attr_err(el, a, "\"${\" without a closing \"}\""))
            }
        }
    }

    fn required<'e>(&self, el: &'e Element, name: &str) -> Result<(String, &'e Attr), ConfigError> {
        self.value(el, name)?
            .ok_or_else(|| self.el_err(el, format!("missing attribute \"{name}\"")))
    }

    /// A present attribute parsed by `parse`, whose error completes "expected ...".
    fn typed<T>(
        &self,
        el: &Element,
        name: &str,
        parse: impl Fn(&str) -> Result<T, &'static str>,
    ) -> Result<Option<T>, ConfigError> {
        let Some((v, a)) = self.value(el, name)? else {
            return Ok(None);
        };
        parse(&v).map(Some).map_err(|expected| {
            // Show the filled-in value too when a placeholder produced it.
            let message = if v == a.value {
                format!("expected {expected}")
            } else {
                format!("expected {expected}, got \"{v}\"")
            };
            self.attr_err(el, a, message)
        })
    }

    fn non_empty(&self, el: &Element, name: &str) -> Result<Option<String>, ConfigError> {
        self.typed(el, name, |s| {
            let s = s.trim();
            if s.is_empty() {
                Err("a non-empty value")
            } else {
                Ok(s.to_string())
            }
        })
    }

    // ---- elements --------------------------------------------------------------

    fn find_broker<'e>(&mut self, root: &'e Element) -> Result<(&'e Element, String), ConfigError> {
        match root.name.as_str() {
            "broker" => Ok((root, "broker".to_string())),
            "beans" => {
                let mut broker = None;
                for child in &root.children {
                    match child.name.as_str() {
                        "broker" => {
                            if broker.is_some() {
                                return Err(self.el_err(
                                    child,
                                    "a second <broker>; Tandem runs one broker per file",
                                ));
                            }
                            broker = Some(child);
                        }
                        // Spring plumbing such as PropertyPlaceholderConfigurer: part of
                        // the wrapper we accept, not a feature we drop.
                        "bean" => tracing::debug!(line = child.line, "skipping Spring <bean>"),
                        _ => self.ignore_element(child, "beans"),
                    }
                }
                let broker =
                    broker.ok_or_else(|| self.el_err(root, "no <broker> element inside"))?;
                Ok((broker, "beans/broker".to_string()))
            }
            _ => Err(self.el_err(root, "expected <beans> or <broker> as the root element")),
        }
    }

    fn broker(&mut self, el: &Element, path: &str) -> Result<BrokerConfig, ConfigError> {
        self.check_attrs(
            el,
            path,
            &[
                "brokerName",
                "dataDirectory",
                "persistent",
                "masterConnectorURI",
                "shutdownOnMasterFailure",
                "waitForSlave",
                "waitForSlaveTimeout",
                "shutdownOnSlaveFailure",
            ],
        );
        let broker_name = self
            .non_empty(el, "brokerName")?
            .unwrap_or_else(|| "localhost".to_string());
        let data_directory = PathBuf::from(
            self.non_empty(el, "dataDirectory")?
                .unwrap_or_else(|| "data".to_string()),
        );
        let persistent = self.typed(el, "persistent", parse_bool)?.unwrap_or(true);
        let mut master = match self.value(el, "masterConnectorURI")? {
            Some((text, a)) => Some(MasterConnector {
                uri: self.master_uri(el, a, &text)?,
                user_name: None,
                password: None,
            }),
            None => None,
        };

        let mut connectors = Vec::new();
        let mut persistence = None;
        let mut system_usage = None;
        let mut tandem = None;
        let mut users = Vec::new();
        let mut auth_enabled = false;
        for child in &el.children {
            let child_path = format!("{path}/{}", child.name);
            match child.name.as_str() {
                "transportConnectors" => {
                    self.check_attrs(child, &child_path, &[]);
                    for c in &child.children {
                        if c.name == "transportConnector" {
                            self.connector(c, &child_path, &mut connectors)?;
                        } else {
                            self.ignore_element(c, &child_path);
                        }
                    }
                }
                "persistenceAdapter" => self.once(&mut persistence, child)?,
                "systemUsage" => self.once(&mut system_usage, child)?,
                "tandem" => self.once(&mut tandem, child)?,
                "plugins" => self.plugins(child, &child_path, &mut users, &mut auth_enabled)?,
                "services" => self.services(child, &child_path, el, &mut master)?,
                _ => self.ignore_element(child, path),
            }
        }

        let (kaha_dir, segment_bytes) = match persistence {
            Some(p) => self.persistence(p, &format!("{path}/persistenceAdapter"))?,
            None => (None, None),
        };
        let (memory_limit, store_limit) = match system_usage {
            Some(s) => self.system_usage(s, &format!("{path}/systemUsage"))?,
            None => (None, None),
        };
        let memory_limit_bytes = memory_limit.unwrap_or(DEFAULT_MEMORY_LIMIT_BYTES);
        let store_limit_bytes = store_limit.unwrap_or(DEFAULT_STORE_LIMIT_BYTES);
        let t = match tandem {
            Some(t) => self.tandem(t, &format!("{path}/tandem"))?,
            None => self.tandem(&empty_element("tandem"), "")?,
        };

        if connectors.is_empty() {
            let skipped: Vec<&str> = self
                .ignored
                .iter()
                .filter(|i| i.path.contains("/transportConnector["))
                .map(|i| i.path.as_str())
                .collect();
            let mut message = "no <transportConnector> Tandem can serve \
                               (schemes tcp, nio, stomp, stomp+nio, auto)"
                .to_string();
            if !skipped.is_empty() {
                message.push_str(&format!("; skipped: {}", skipped.join(", ")));
            }
            return Err(self.el_err(el, message));
        }
        if auth_enabled && users.is_empty() {
            return Err(self.el_err(
                el,
                "<simpleAuthenticationPlugin> lists no users, so every connection would be \
                 refused; add <users><authenticationUser .../></users> or remove the plugin",
            ));
        }

        let configured_directory = kaha_dir.map(|d| relative_to_data(&data_directory, d));
        let journal = JournalSettings {
            directory: journal_directory(&data_directory, configured_directory.as_deref()),
            configured_directory,
            segment_bytes: segment_bytes.unwrap_or(DEFAULT_SEGMENT_BYTES),
            skip_damaged_records: false,
        };
        let transport_connectors = connectors
            .into_iter()
            .map(|c| TransportConnector {
                name: c.name,
                uri: c.uri,
                max_connections: c.max_connections,
                max_frame_bytes: c.max_frame_bytes.unwrap_or(t.limits.max_frame_bytes),
                connect_attempt_timeout_ms: c
                    .connect_attempt_timeout_ms
                    .unwrap_or(t.limits.connect_attempt_timeout_ms),
            })
            .collect();
        let replication = ReplicationSettings {
            master,
            shutdown_on_master_failure: self
                .typed(el, "shutdownOnMasterFailure", parse_bool)?
                .unwrap_or(false),
            wait_for_slave: self.typed(el, "waitForSlave", parse_bool)?.unwrap_or(false),
            wait_for_slave_timeout_ms: self
                .typed(el, "waitForSlaveTimeout", parse_u64)?
                .unwrap_or(600_000),
            shutdown_on_slave_failure: self
                .typed(el, "shutdownOnSlaveFailure", parse_bool)?
                .unwrap_or(false),
            ack: t.ack,
            heartbeat_ms: t.heartbeat_ms,
            link: t.link,
        };
        Ok(BrokerConfig {
            source: self.source.to_path_buf(),
            broker_name,
            data_directory,
            persistent,
            transport_connectors,
            journal,
            memory_limit_bytes,
            store_limit_bytes,
            users,
            auth_enabled,
            shards: t.shards,
            limits: t.limits,
            connection_limits: t.connection_limits,
            redelivery: t.redelivery,
            replication,
            status_port: t.status_port,
            status_host: t.status_host,
            admin_group: t.admin_group,
        })
    }

    /// `masterConnectorURI` / `remoteURI`: an address a slave can actually dial.
    fn master_uri(&self, el: &Element, a: &Attr, text: &str) -> Result<TransportUri, ConfigError> {
        let uri = TransportUri::parse(text).map_err(|e| self.attr_err(el, a, e.to_string()))?;
        if uri.addr.port() == 0 {
            return Err(self.attr_err(el, a, "the master's port cannot be 0"));
        }
        if uri.addr.ip().is_unspecified() {
            return Err(self.attr_err(
                el,
                a,
                format!(
                    "cannot connect to {}; name the master's address",
                    uri.addr.ip()
                ),
            ));
        }
        Ok(uri)
    }

    fn connector(
        &mut self,
        el: &Element,
        parent: &str,
        out: &mut Vec<RawConnector>,
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
        out.push(RawConnector {
            name,
            uri,
            max_connections,
            max_frame_bytes,
            connect_attempt_timeout_ms,
        });
        Ok(())
    }

    fn persistence(
        &mut self,
        el: &Element,
        path: &str,
    ) -> Result<(Option<PathBuf>, Option<u64>), ConfigError> {
        self.check_attrs(el, path, &[]);
        let mut kaha = None;
        for c in &el.children {
            if c.name == "kahaDB" {
                self.once(&mut kaha, c)?;
            } else {
                self.ignore(
                    format!("{path}/{}", c.name),
                    c.line,
                    "persistence adapter not supported; Tandem keeps its own journal \
                     (configure it with <kahaDB>)",
                );
            }
        }
        let Some(k) = kaha else {
            return Ok((None, None));
        };
        let kpath = format!("{path}/kahaDB");
        self.check_attrs(k, &kpath, &["directory", "journalMaxFileLength"]);
        for c in &k.children {
            self.ignore_element(c, &kpath);
        }
        let dir = self.non_empty(k, "directory")?.map(PathBuf::from);
        let segment = self.typed(k, "journalMaxFileLength", |s| {
            let n = parse_size(s)?;
            if !(64 << 10..=2 << 30).contains(&n) || n % 4096 != 0 {
                return Err("a multiple of 4 kb between 64 kb and 2 gb");
            }
            Ok(n)
        })?;
        Ok((dir, segment))
    }

    /// `<systemUsage><systemUsage>` with `<memoryUsage><memoryUsage limit/>` and
    /// `<storeUsage><storeUsage limit/>`: Spring's factory-bean nesting, hence each
    /// name twice. Returns (memory limit, store limit).
    fn system_usage(
        &mut self,
        outer: &Element,
        path: &str,
    ) -> Result<(Option<u64>, Option<u64>), ConfigError> {
        self.check_attrs(outer, path, &[]);
        let mut inner = None;
        for c in &outer.children {
            if c.name == "systemUsage" {
                self.once(&mut inner, c)?;
            } else {
                self.ignore_element(c, path);
            }
        }
        let Some(inner) = inner else {
            return Ok((None, None));
        };
        let path = format!("{path}/systemUsage");
        self.check_attrs(inner, &path, &[]);
        let (mut memory, mut store) = (None, None);
        for c in &inner.children {
            match c.name.as_str() {
                "memoryUsage" => self.once(&mut memory, c)?,
                "storeUsage" => self.once(&mut store, c)?,
                _ => self.ignore_element(c, &path),
            }
        }
        let memory = match memory {
            Some(m) => self.usage_limit(
                m,
                &format!("{path}/memoryUsage"),
                1 << 20,
                "a size of at least 1 mb",
            )?,
            None => None,
        };
        let store = match store {
            Some(s) => self.usage_limit(
                s,
                &format!("{path}/storeUsage"),
                4 << 20,
                "a size of at least 4 mb",
            )?,
            None => None,
        };
        Ok((memory, store))
    }

    /// `<xUsage><xUsage limit/></xUsage>` (`outer` is the first `xUsage`).
    fn usage_limit(
        &mut self,
        outer: &Element,
        path: &str,
        min: u64,
        expected: &'static str,
    ) -> Result<Option<u64>, ConfigError> {
        self.check_attrs(outer, path, &[]);
        let mut inner = None;
        for c in &outer.children {
            if c.name == outer.name {
                self.once(&mut inner, c)?;
            } else {
                self.ignore_element(c, path);
            }
        }
        let Some(inner) = inner else {
            return Ok(None);
        };
        let path = format!("{path}/{}", outer.name);
        self.check_attrs(inner, &path, &["limit"]);
        self.typed(inner, "limit", size_at_least(min, expected))
    }

    fn plugins(
        &mut self,
        el: &Element,
        path: &str,
        users: &mut Vec<AuthUser>,
        auth_enabled: &mut bool,
    ) -> Result<(), ConfigError> {
        self.check_attrs(el, path, &[]);
        for c in &el.children {
            let cpath = format!("{path}/{}", c.name);
            if FAIL_CLOSED_PLUGINS.contains(&c.name.as_str()) {
                return Err(self.el_err(
                    c,
                    "not supported, and starting without it would let in clients it keeps \
                     out; use <simpleAuthenticationPlugin>, or remove this plugin to accept that",
                ));
            }
            if c.name != "simpleAuthenticationPlugin" {
                self.ignore_element(c, path);
                continue;
            }
            if *auth_enabled {
                return Err(self.el_err(c, "appears twice; keep one"));
            }
            *auth_enabled = true;
            self.check_attrs(c, &cpath, &[]);
            for u in &c.children {
                if u.name != "users" {
                    self.ignore_element(u, &cpath);
                    continue;
                }
                let upath = format!("{cpath}/users");
                self.check_attrs(u, &upath, &[]);
                for user in &u.children {
                    if user.name == "authenticationUser" {
                        self.user(user, &upath, users)?;
                    } else {
                        self.ignore_element(user, &upath);
                    }
                }
            }
        }
        Ok(())
    }

    fn user(
        &mut self,
        el: &Element,
        parent: &str,
        users: &mut Vec<AuthUser>,
    ) -> Result<(), ConfigError> {
        self.check_attrs(
            el,
            &format!("{parent}/authenticationUser"),
            &["username", "password", "groups"],
        );
        let (username, ua) = self.required(el, "username")?;
        if username.is_empty() {
            return Err(self.attr_err(el, ua, "expected a non-empty username"));
        }
        if users.iter().any(|u| u.username == username) {
            return Err(self.attr_err(el, ua, "this username is listed twice"));
        }
        let (password, _) = self.required(el, "password")?;
        let groups = self
            .value(el, "groups")?
            .map(|(g, _)| {
                g.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        users.push(AuthUser {
            username,
            password,
            groups,
        });
        Ok(())
    }

    fn services(
        &mut self,
        el: &Element,
        path: &str,
        broker: &Element,
        master: &mut Option<MasterConnector>,
    ) -> Result<(), ConfigError> {
        self.check_attrs(el, path, &[]);
        for c in &el.children {
            if c.name != "masterConnector" {
                self.ignore_element(c, path);
                continue;
            }
            if master.is_some() {
                let first = match broker.attr("masterConnectorURI") {
                    Some(a) => format!("masterConnectorURI on <broker> (line {})", a.line),
                    None => "another <masterConnector>".to_string(),
                };
                return Err(
                    self.el_err(c, format!("the master is already set by {first}; keep one"))
                );
            }
            self.check_attrs(
                c,
                &format!("{path}/masterConnector"),
                &["remoteURI", "userName", "password"],
            );
            let (text, a) = self.required(c, "remoteURI")?;
            *master = Some(MasterConnector {
                uri: self.master_uri(c, a, &text)?,
                user_name: self.value(c, "userName")?.map(|v| v.0),
                password: self.value(c, "password")?.map(|v| v.0),
            });
        }
        Ok(())
    }

    fn tandem(&mut self, el: &Element, path: &str) -> Result<TandemRaw, ConfigError> {
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
    fn connection_limits(&mut self, el: &Element) -> Result<ConnectionLimits, ConfigError> {
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
        })
    }

    /// `<tandem replicationGroup replicationSecret replicationAckTimeout>`.
    fn replication_link(
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
        Ok(ReplicationLink {
            group,
            secret,
            ack_timeout_ms,
            buffer_bytes,
        })
    }
}

/// `connectAttemptTimeout` in milliseconds: long enough for a real client on a busy
/// host, short enough that a stranger cannot hold a connection slot for long.
fn parse_connect_attempt_timeout(s: &str) -> Result<u64, &'static str> {
    parse_u64(s)
        .ok()
        .filter(|n| (100..=600_000).contains(n))
        .ok_or("milliseconds in 100-600000")
}

/// `<tandem replicationBuffer>` default: what a master keeps in memory for a slow
/// slave before it reads what the slave missed back from its journal.
pub const REPLICATION_BUFFER_DEFAULT: u64 = 16 << 20;
/// Smallest `replicationBuffer`: below one catch-up chunk the link would do nothing
/// but switch.
const REPLICATION_BUFFER_MIN: u64 = 64 << 10;

/// A size parser with a lower bound; `expected` completes "expected ..." for both a
/// malformed and a too-small value, so the message always says what is acceptable.
fn size_at_least(min: u64, expected: &'static str) -> impl Fn(&str) -> Result<u64, &'static str> {
    move |s| match parse_size(s) {
        Ok(n) if n >= min => Ok(n),
        Ok(_) => Err(expected),
        Err(e) => Err(e),
    }
}

/// An attribute-less element, so defaults come from the same code as configured values.
fn empty_element(name: &str) -> Element {
    Element {
        name: name.to_string(),
        line: 0,
        attrs: Vec::new(),
        children: Vec::new(),
    }
}

/// Two listeners collide when they share a port and either address covers the other.
/// Port 0 asks the kernel for a fresh port, so it never collides.
fn same_listen_port(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// Rewrites a kahaDB directory spelled under the data directory to be relative to it,
/// so `--data-dir` moves it along and the stock `${activemq.data}/kahadb` is not doubled.
fn relative_to_data(data: &Path, dir: PathBuf) -> PathBuf {
    match dir.strip_prefix(data) {
        Ok(rest) if !data.as_os_str().is_empty() => rest.to_path_buf(),
        _ => dir,
    }
}
