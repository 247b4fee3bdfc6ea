//! The root (`<beans>` or `<broker>`) and the `<broker>` element, which combines what
//! its children read into the [`BrokerConfig`].

use std::path::{Path, PathBuf};

use super::interceptors::default_virtual_topics;
use super::master::master_uri_attr;
use super::read::Reader;
use super::value::{parse_bool, parse_u64};
use super::xml::Element;
use super::{
    journal_directory, BrokerConfig, ConfigError, JournalSettings, MasterConnector,
    ReplicationSettings, TransportConnector, DEFAULT_MEMORY_LIMIT_BYTES, DEFAULT_SEGMENT_BYTES,
    DEFAULT_STORE_LIMIT_BYTES,
};

impl Reader<'_> {
    pub(super) fn find_broker<'e>(
        &mut self,
        root: &'e Element,
    ) -> Result<(&'e Element, String), ConfigError> {
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

    pub(super) fn broker(&mut self, el: &Element, path: &str) -> Result<BrokerConfig, ConfigError> {
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
                "useVirtualTopics",
                "schedulerSupport",
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
        let mut ssl_context = None;
        let mut interceptors = None;
        let mut destination_policy = None;
        let mut users = Vec::new();
        let mut auth_enabled = false;
        let mut redelivery = None;
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
                "sslContext" => self.once(&mut ssl_context, child)?,
                "destinationInterceptors" => self.once(&mut interceptors, child)?,
                "destinationPolicy" => self.once(&mut destination_policy, child)?,
                "plugins" => self.plugins(
                    child,
                    &child_path,
                    &mut users,
                    &mut auth_enabled,
                    &mut redelivery,
                )?,
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
        let tls = self.tls_settings(ssl_context, &format!("{path}/sslContext"), tandem)?;
        let scheduler_support = self
            .typed(el, "schedulerSupport", parse_bool)?
            .unwrap_or(false);
        if let (Some((_, line)), false) = (&redelivery, scheduler_support) {
            return Err(ConfigError::Element {
                path: self.source.to_path_buf(),
                line: *line,
                element: "redeliveryPlugin".into(),
                message: "requires schedulerSupport=\"true\" on <broker>, as in ActiveMQ \
                          (it redelivers through the scheduler)"
                    .into(),
            });
        }
        let use_virtual_topics = self
            .typed(el, "useVirtualTopics", parse_bool)?
            .unwrap_or(true);
        let virtual_topics = match interceptors {
            Some(i) => {
                self.destination_interceptors(i, &format!("{path}/destinationInterceptors"))?
            }
            None if use_virtual_topics => default_virtual_topics(),
            None => Vec::new(),
        };

        let destination_policy = match destination_policy {
            Some(p) => self.destination_policy(p, &format!("{path}/destinationPolicy"))?,
            None => Default::default(),
        };

        if connectors.is_empty() {
            let skipped: Vec<&str> = self
                .ignored
                .iter()
                .filter(|i| i.path.contains("/transportConnector["))
                .map(|i| i.path.as_str())
                .collect();
            let mut message = "no <transportConnector> Tandem can serve \
                               (schemes tcp, nio, stomp, stomp+nio, auto, auto+nio and \
                               their +ssl forms)"
                .to_string();
            if !skipped.is_empty() {
                message.push_str(&format!("; skipped: {}", skipped.join(", ")));
            }
            return Err(self.el_err(el, message));
        }
        let master_at = master
            .as_ref()
            .zip(master_uri_attr(el))
            .map(|(m, (e, a))| (&m.uri, e, a));
        self.check_tls_users(tls.as_ref(), &connectors, master_at)?;
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
                tls: c.tls,
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
            tls,
            virtual_topics,
            destination_policy,
            scheduler_support,
            redelivery_plugin: redelivery.map(|(r, _)| r),
        })
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

/// Rewrites a kahaDB directory spelled under the data directory to be relative to it,
/// so `--data-dir` moves it along and the stock `${activemq.data}/kahadb` is not doubled.
fn relative_to_data(data: &Path, dir: PathBuf) -> PathBuf {
    match dir.strip_prefix(data) {
        Ok(rest) if !data.as_os_str().is_empty() => rest.to_path_buf(),
        _ => dir,
    }
}
