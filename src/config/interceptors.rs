//! `<destinationInterceptors>`: the virtual topics of a `<virtualDestinationInterceptor>`.
//!
//! As in ActiveMQ, a broker without `<destinationInterceptors>` (and without
//! `useVirtualTopics="false"`) has one virtual topic rule, `name="VirtualTopic.>"
//! prefix="Consumer.*."`; a `<destinationInterceptors>` element replaces that default
//! with the `<virtualTopic>` elements it lists (none: no virtual topics). Composite
//! destinations and other interceptors are reported as ignored.

use super::read::Reader;
use super::value::parse_bool;
use super::xml::Element;
use super::{ConfigError, VirtualTopicSettings};
use crate::broker::virtual_topic::{VirtualTopicRule, DEFAULT_NAME, DEFAULT_PREFIX};

impl Reader<'_> {
    /// The rules `<destinationInterceptors>` lists.
    pub(super) fn destination_interceptors(
        &mut self,
        el: &Element,
        path: &str,
    ) -> Result<Vec<VirtualTopicSettings>, ConfigError> {
        self.check_attrs(el, path, &[]);
        let mut rules = Vec::new();
        for interceptor in &el.children {
            if interceptor.name != "virtualDestinationInterceptor" {
                self.ignore_element(interceptor, path);
                continue;
            }
            let ipath = format!("{path}/virtualDestinationInterceptor");
            self.check_attrs(interceptor, &ipath, &[]);
            for list in &interceptor.children {
                if list.name != "virtualDestinations" {
                    self.ignore_element(list, &ipath);
                    continue;
                }
                let lpath = format!("{ipath}/virtualDestinations");
                self.check_attrs(list, &lpath, &[]);
                for v in &list.children {
                    if v.name == "virtualTopic" {
                        rules.push(self.virtual_topic(v, &format!("{lpath}/virtualTopic"))?);
                    } else {
                        // compositeQueue, compositeTopic, ...
                        self.ignore_element(v, &lpath);
                    }
                }
            }
        }
        Ok(rules)
    }

    fn virtual_topic(
        &mut self,
        el: &Element,
        path: &str,
    ) -> Result<VirtualTopicSettings, ConfigError> {
        self.check_attrs(el, path, &["name", "prefix", "postfix", "selectorAware"]);
        // ActiveMQ's `VirtualTopic` defaults (its `name` is `>`: every topic).
        let name = match self.value(el, "name")? {
            Some((v, a)) => (v, Some(a)),
            None => (">".to_string(), None),
        };
        let prefix = match self.value(el, "prefix")? {
            Some((v, a)) => (v, Some(a)),
            None => (DEFAULT_PREFIX.to_string(), None),
        };
        let postfix = match self.value(el, "postfix")? {
            Some((v, a)) => (v, Some(a)),
            None => (String::new(), None),
        };
        if let Err(e) = VirtualTopicRule::new(&name.0, &prefix.0, &postfix.0) {
            use crate::broker::virtual_topic::RuleError;
            let at = match e {
                RuleError::EmptyName | RuleError::InnerDescendant => name.1,
                RuleError::PrefixWildcard => prefix.1,
                RuleError::PostfixWildcard => postfix.1,
            };
            return Err(match at {
                Some(a) => self.attr_err(el, a, e.to_string()),
                None => self.el_err(el, e.to_string()),
            });
        }
        if self.typed(el, "selectorAware", parse_bool)? == Some(true) {
            let line = el.attr("selectorAware").map_or(el.line, |a| a.line);
            self.ignore(
                format!("{path}@selectorAware"),
                line,
                "selectorAware=\"true\" is not supported: every consumer queue gets every \
                 message, whatever its consumers' selectors",
            );
        }
        Ok(VirtualTopicSettings {
            name: name.0,
            prefix: prefix.0,
            postfix: postfix.0,
        })
    }
}

/// ActiveMQ's rule when nothing is configured.
pub(super) fn default_virtual_topics() -> Vec<VirtualTopicSettings> {
    vec![VirtualTopicSettings {
        name: DEFAULT_NAME.to_string(),
        prefix: DEFAULT_PREFIX.to_string(),
        postfix: String::new(),
    }]
}
