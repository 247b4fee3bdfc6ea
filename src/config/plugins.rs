//! `<plugins>`: `<simpleAuthenticationPlugin>` users, `<redeliveryPlugin>`, and the
//! plugins whose absence would open the broker.

use super::read::Reader;
use super::xml::Element;
use super::{AuthUser, ConfigError};

/// Plugins whose absence would let in clients the original broker kept out. Ignoring
/// them would turn a locked-down ActiveMQ config into an open Tandem, so they stop the
/// load instead.
const FAIL_CLOSED_PLUGINS: &[&str] = &[
    "jaasAuthenticationPlugin",
    "jaasCertificateAuthenticationPlugin",
    "jaasDualAuthenticationPlugin",
    "authorizationPlugin",
];

impl Reader<'_> {
    pub(super) fn plugins(
        &mut self,
        el: &Element,
        path: &str,
        users: &mut Vec<AuthUser>,
        auth_enabled: &mut bool,
        redelivery: &mut Option<(RedeliveryPluginSettings, u32)>,
    ) -> Result<(), ConfigError> {
        self.check_attrs(el, path, &[]);
        for c in &el.children {
            let cpath = format!("{path}/{}", c.name);
            if c.name == "redeliveryPlugin" {
                if redelivery.is_some() {
                    return Err(self.el_err(c, "appears twice; keep one"));
                }
                *redelivery = Some((self.redelivery_plugin(c, &cpath)?, c.line));
                continue;
            }
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

    pub(super) fn user(
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
}

/// `<redeliveryPlugin>` as read (`broker::redelivery` holds what it does).
#[derive(Debug, Clone, PartialEq)]
pub struct RedeliveryPluginSettings {
    /// `fallbackToDeadLetter`; default true: a destination without a policy goes to
    /// the dead-letter queue (false: the message is dropped).
    pub fallback_to_dead_letter: bool,
    /// `sendToDlqIfMaxRetriesExceeded`; default true (false: dropped).
    pub send_to_dlq_if_max_retries_exceeded: bool,
    /// `<defaultEntry><redeliveryPolicy/></defaultEntry>`.
    pub default_entry: Option<RedeliveryPolicySettings>,
    /// `<redeliveryPolicyEntries>`, in order (the first match wins).
    pub entries: Vec<RedeliveryPolicySettings>,
}

/// One `<redeliveryPolicy>`; ActiveMQ's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct RedeliveryPolicySettings {
    /// `queue="pattern"` or `topic="pattern"` (entries only; `None` on the default).
    pub destination: Option<(bool, String)>,
    /// `maximumRedeliveries`; default 6; -1: no maximum.
    pub maximum_redeliveries: i32,
    /// `initialRedeliveryDelay`, ms; default 1000; at least 1000 (ActiveMQ 5.17 refuses
    /// less: the delay must outlast the poison ack).
    pub initial_redelivery_delay_ms: i64,
    /// `redeliveryDelay`, ms; default 1000; at least 1000.
    pub redelivery_delay_ms: i64,
    /// `useExponentialBackOff`; default false.
    pub use_exponential_back_off: bool,
    /// `backOffMultiplier`; default 5.
    pub back_off_multiplier: f64,
    /// `maximumRedeliveryDelay`, ms; default -1 (none).
    pub maximum_redelivery_delay_ms: i64,
}

const POLICY_ATTRS: &[&str] = &[
    "queue",
    "topic",
    "maximumRedeliveries",
    "initialRedeliveryDelay",
    "redeliveryDelay",
    "useExponentialBackOff",
    "backOffMultiplier",
    "maximumRedeliveryDelay",
];

fn parse_i64(s: &str) -> Result<i64, &'static str> {
    s.trim().parse().map_err(|_| "a whole number")
}

impl Reader<'_> {
    /// `<redeliveryPlugin>` with its policy map.
    pub(super) fn redelivery_plugin(
        &mut self,
        el: &Element,
        path: &str,
    ) -> Result<RedeliveryPluginSettings, ConfigError> {
        use super::value::parse_bool;
        self.check_attrs(
            el,
            path,
            &["fallbackToDeadLetter", "sendToDlqIfMaxRetriesExceeded"],
        );
        let mut out = RedeliveryPluginSettings {
            fallback_to_dead_letter: self
                .typed(el, "fallbackToDeadLetter", parse_bool)?
                .unwrap_or(true),
            send_to_dlq_if_max_retries_exceeded: self
                .typed(el, "sendToDlqIfMaxRetriesExceeded", parse_bool)?
                .unwrap_or(true),
            default_entry: None,
            entries: Vec::new(),
        };
        // <redeliveryPolicyMap><redeliveryPolicyMap>...: Spring's property, then the bean.
        for outer in &el.children {
            let opath = format!("{path}/{}", outer.name);
            if outer.name != "redeliveryPolicyMap" {
                self.ignore_element(outer, path);
                continue;
            }
            for map in &outer.children {
                let mpath = format!("{opath}/{}", map.name);
                if map.name != "redeliveryPolicyMap" {
                    self.ignore_element(map, &opath);
                    continue;
                }
                self.check_attrs(map, &mpath, &[]);
                for part in &map.children {
                    let ppath = format!("{mpath}/{}", part.name);
                    let is_default = match part.name.as_str() {
                        "defaultEntry" => true,
                        "redeliveryPolicyEntries" => false,
                        _ => {
                            self.ignore_element(part, &mpath);
                            continue;
                        }
                    };
                    for p in &part.children {
                        if p.name != "redeliveryPolicy" {
                            self.ignore_element(p, &ppath);
                            continue;
                        }
                        let policy = self.redelivery_policy(
                            p,
                            &format!("{ppath}/redeliveryPolicy"),
                            is_default,
                        )?;
                        if is_default {
                            if out.default_entry.is_some() {
                                return Err(self.el_err(p, "a second default redelivery policy"));
                            }
                            out.default_entry = Some(policy);
                        } else {
                            out.entries.push(policy);
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    fn redelivery_policy(
        &mut self,
        el: &Element,
        path: &str,
        is_default: bool,
    ) -> Result<RedeliveryPolicySettings, ConfigError> {
        use super::value::parse_bool;
        self.check_attrs(el, path, POLICY_ATTRS);
        let queue = self.non_empty(el, "queue")?;
        let topic = self.non_empty(el, "topic")?;
        let destination = match (queue, topic) {
            (Some(_), Some(_)) => {
                return Err(self.el_err(el, "names both a queue and a topic; one policy names one"))
            }
            (Some(q), None) => Some((true, q)),
            (None, Some(t)) => Some((false, t)),
            (None, None) if is_default => None,
            (None, None) => {
                return Err(self.el_err(
                    el,
                    "names no destination: add queue=\"pattern\" or topic=\"pattern\"",
                ))
            }
        };
        let delay = |s: &str| {
            parse_i64(s).and_then(|n| {
                if n >= 1000 {
                    Ok(n)
                } else {
                    // ActiveMQ 5.17's RedeliveryPlugin refuses to start with less.
                    Err("at least 1000 ms (the redelivery plugin's minimum, as in ActiveMQ)")
                }
            })
        };
        Ok(RedeliveryPolicySettings {
            destination,
            maximum_redeliveries: self
                .typed(el, "maximumRedeliveries", |s| {
                    parse_i64(s)
                        .ok()
                        .filter(|n| *n >= -1)
                        .and_then(|n| i32::try_from(n).ok())
                        .ok_or("a whole number, -1 for no maximum")
                })?
                .unwrap_or(6),
            initial_redelivery_delay_ms: self
                .typed(el, "initialRedeliveryDelay", delay)?
                .unwrap_or(1000),
            redelivery_delay_ms: self.typed(el, "redeliveryDelay", delay)?.unwrap_or(1000),
            use_exponential_back_off: self
                .typed(el, "useExponentialBackOff", parse_bool)?
                .unwrap_or(false),
            back_off_multiplier: self
                .typed(el, "backOffMultiplier", |s| {
                    s.trim()
                        .parse::<f64>()
                        .ok()
                        .filter(|f| f.is_finite() && *f > 0.0)
                        .ok_or("a positive number")
                })?
                .unwrap_or(5.0),
            maximum_redelivery_delay_ms: self
                .typed(el, "maximumRedeliveryDelay", |s| {
                    parse_i64(s)
                        .ok()
                        .filter(|n| *n >= -1)
                        .ok_or("a whole number of ms, -1 for none")
                })?
                .unwrap_or(-1),
        })
    }
}
