//! `<destinationPolicy>`: ActiveMQ's per-destination policy entries, read into
//! [`DestinationPolicySettings`] (values as `broker::policy` uses them; `node` builds
//! the `PolicyMap`, which also decides which entry applies to a destination).
//!
//! Accepted shapes (the stock file's and Spring's property form):
//!
//! ```xml
//! <destinationPolicy><policyMap>[<policyMap>]
//!   <policyEntries>
//!     <policyEntry queue="ORDERS.>" queuePrefetch="10">
//!       <deadLetterStrategy>
//!         <individualDeadLetterStrategy queuePrefix="DLQ." useQueueForQueueMessages="true"/>
//!       </deadLetterStrategy>
//!     </policyEntry>
//!   </policyEntries>
//!   <defaultEntry><policyEntry .../></defaultEntry>
//! [</policyMap>]</policyMap></destinationPolicy>
//! ```
//!
//! Read: the entry's destination (`queue`, `topic`, `tempQueue`, `tempTopic`), the
//! four prefetches, `memoryLimit` (a size as `<memoryUsage limit>` takes it: `1 mb`,
//! `64kb`, plain bytes; at least 1 kb; the destination's in-memory body bytes, see
//! `broker::core::send`), and the dead-letter strategy (`individualDeadLetterStrategy`,
//! `sharedDeadLetterStrategy`). Every other attribute and child is reported as ignored
//! once (attributes ActiveMQ users commonly set get a reason saying what Tandem does
//! instead).

use super::attrs::size_at_least;
use super::read::Reader;
use super::value::{parse_bool, parse_u64};
use super::xml::Element;
use super::ConfigError;
use crate::broker::destination::{DestKind, Destination};
use crate::broker::policy::{
    DeadLetterStrategy, DeadLetterTarget, Individual, PolicyDestination, PolicyEntry,
};

/// `<destinationPolicy>` as Tandem applies it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DestinationPolicySettings {
    /// `<policyEntry>` elements with their destination, in file order; at most one per
    /// (kind, pattern) (a repeat is reported ignored).
    pub entries: Vec<(PolicyDestination, PolicyEntry)>,
    /// `<defaultEntry><policyEntry>`: for destinations no entry matches.
    pub default_entry: Option<PolicyEntry>,
}

/// Attributes of `<policyEntry>` Tandem reads.
const ENTRY_ATTRS: &[&str] = &[
    "queue",
    "topic",
    "tempQueue",
    "tempTopic",
    "queuePrefetch",
    "queueBrowserPrefetch",
    "topicPrefetch",
    "durableTopicPrefetch",
    "memoryLimit",
];

/// Ignored `<policyEntry>` attributes that deserve more than "not supported".
const ENTRY_REASONS: &[(&str, &str)] = &[
    (
        "producerFlowControl",
        "producer flow control is always on (the shard's memory limit and the sender's \
         outstanding sends bound every producer)",
    ),
    (
        "maxPageSize",
        "Tandem pages bodies in by the shard's memory limit, not per destination",
    ),
    (
        "maxBrowsePageSize",
        "a browser sees every message on the queue",
    ),
    (
        "expireMessagesPeriod",
        "expired messages are looked for every half second",
    ),
    (
        "gcInactiveDestinations",
        "destinations are kept until deleted (purged or removed through the admin endpoint)",
    ),
    (
        "inactiveTimoutBeforeGC",
        "destinations are kept until deleted (purged or removed through the admin endpoint)",
    ),
    (
        "inactiveTimeoutBeforeGC",
        "destinations are kept until deleted (purged or removed through the admin endpoint)",
    ),
];

impl Reader<'_> {
    pub(super) fn destination_policy(
        &mut self,
        el: &Element,
        path: &str,
    ) -> Result<DestinationPolicySettings, ConfigError> {
        self.check_attrs(el, path, &[]);
        let mut out = DestinationPolicySettings::default();
        let mut seen_map = None;
        for map in &el.children {
            if map.name != "policyMap" {
                self.ignore_element(map, path);
                continue;
            }
            self.once(&mut seen_map, map)?;
            let mut map_path = format!("{path}/policyMap");
            self.check_attrs(map, &map_path, &[]);
            // Spring's property form wraps the bean: <policyMap><policyMap>...
            let mut inner = map;
            if let [only] = map.children.as_slice() {
                if only.name == "policyMap" {
                    map_path.push_str("/policyMap");
                    self.check_attrs(only, &map_path, &[]);
                    inner = only;
                }
            }
            self.policy_map(inner, &map_path, &mut out)?;
        }
        Ok(out)
    }

    fn policy_map(
        &mut self,
        el: &Element,
        path: &str,
        out: &mut DestinationPolicySettings,
    ) -> Result<(), ConfigError> {
        let mut default_el = None;
        // (kind, pattern) -> line of the entry that has it.
        let mut lines: Vec<(PolicyDestination, u32)> = Vec::new();
        for c in &el.children {
            let cpath = format!("{path}/{}", c.name);
            match c.name.as_str() {
                "policyEntries" => {
                    self.check_attrs(c, &cpath, &[]);
                    for e in &c.children {
                        if e.name != "policyEntry" {
                            self.ignore_element(e, &cpath);
                            continue;
                        }
                        let epath = format!("{cpath}/policyEntry");
                        let dest = self.entry_destination(e)?;
                        let entry = self.policy_entry(e, &epath)?;
                        if let Some((_, first)) = lines.iter().find(|(d, _)| *d == dest) {
                            self.ignore(
                                format!("{epath}[{}]", dest.pattern),
                                e.line,
                                format!(
                                    "a second entry for the same destination (first at line \
                                     {first}); the first is used"
                                ),
                            );
                            continue;
                        }
                        lines.push((dest.clone(), e.line));
                        out.entries.push((dest, entry));
                    }
                }
                "defaultEntry" => {
                    self.once(&mut default_el, c)?;
                    self.check_attrs(c, &cpath, &[]);
                    for e in &c.children {
                        if e.name != "policyEntry" {
                            self.ignore_element(e, &cpath);
                            continue;
                        }
                        if out.default_entry.is_some() {
                            return Err(self.el_err(e, "a second default entry; keep one"));
                        }
                        out.default_entry =
                            Some(self.policy_entry(e, &format!("{cpath}/policyEntry"))?);
                    }
                }
                _ => self.ignore_element(c, path),
            }
        }
        Ok(())
    }

    /// The one of `queue`, `topic`, `tempQueue`, `tempTopic` an entry names.
    fn entry_destination(&self, el: &Element) -> Result<PolicyDestination, ConfigError> {
        let mut found = Vec::new();
        for (attr, kind) in [("queue", DestKind::Queue), ("topic", DestKind::Topic)] {
            if let Some((v, a)) = self.value(el, attr)? {
                let v = v.trim().to_string();
                if v.is_empty() {
                    return Err(self.attr_err(el, a, "expected a destination name or pattern"));
                }
                if v.contains(',') {
                    return Err(self.attr_err(
                        el,
                        a,
                        "a composite destination is not supported here; write one entry each",
                    ));
                }
                found.push(PolicyDestination { kind, pattern: v });
            }
        }
        for (attr, kind) in [
            ("tempQueue", DestKind::TempQueue),
            ("tempTopic", DestKind::TempTopic),
        ] {
            // As in ActiveMQ, the attribute means "every temporary queue/topic"
            // whatever its value; the value must still be a boolean.
            if self.typed(el, attr, parse_bool)?.is_some() {
                found.push(PolicyDestination {
                    kind,
                    pattern: ">".into(),
                });
            }
        }
        match found.len() {
            1 => Ok(found.remove(0)),
            0 => Err(self.el_err(
                el,
                "names no destination; add queue=\"...\", topic=\"...\", tempQueue=\"true\" or \
                 tempTopic=\"true\"",
            )),
            _ => Err(self.el_err(
                el,
                "names more than one destination; give one of queue, topic, tempQueue, tempTopic",
            )),
        }
    }

    /// A `<policyEntry>`'s settings (its destination is read by `entry_destination`).
    fn policy_entry(&mut self, el: &Element, path: &str) -> Result<PolicyEntry, ConfigError> {
        for a in &el.attrs {
            if a.is_xml_plumbing() || ENTRY_ATTRS.contains(&a.local.as_str()) {
                continue;
            }
            let reason = ENTRY_REASONS
                .iter()
                .find(|(n, _)| *n == a.local)
                .map_or("attribute not supported", |(_, r)| r);
            self.ignore(format!("{path}@{}", a.local), a.line, reason);
        }
        let mut entry = PolicyEntry::default();
        for (attr, slot) in [
            ("queuePrefetch", &mut entry.queue_prefetch),
            ("queueBrowserPrefetch", &mut entry.queue_browser_prefetch),
            ("topicPrefetch", &mut entry.topic_prefetch),
            ("durableTopicPrefetch", &mut entry.durable_topic_prefetch),
        ] {
            match self.typed(el, attr, parse_prefetch)? {
                Some(0) => {
                    // A zero prefetch makes ActiveMQ's consumers pull; Tandem's JMS
                    // consumers only pull when their client asked for 0 itself.
                    let line = el.attr(attr).map_or(el.line, |a| a.line);
                    self.ignore(
                        format!("{path}@{attr}"),
                        line,
                        "0 (pull consumers) is not supported as a policy; consumers keep \
                         their own prefetch",
                    );
                }
                Some(n) => *slot = n,
                None => {}
            }
        }
        entry.memory_limit = self.typed(
            el,
            "memoryLimit",
            size_at_least(
                1 << 10,
                "a size of at least 1 kb (such as \"1 mb\" or \"65536\")",
            ),
        )?;
        for c in &el.children {
            let cpath = format!("{path}/{}", c.name);
            if c.name != "deadLetterStrategy" {
                self.ignore_element(c, path);
                continue;
            }
            self.check_attrs(c, &cpath, &[]);
            for s in &c.children {
                let spath = format!("{cpath}/{}", s.name);
                let strategy = match s.name.as_str() {
                    "individualDeadLetterStrategy" => self.individual_strategy(s, &spath)?,
                    "sharedDeadLetterStrategy" => self.shared_strategy(s, &spath)?,
                    _ => {
                        self.ignore_element(s, &cpath);
                        continue;
                    }
                };
                if entry.dead_letter.is_some() {
                    return Err(self.el_err(s, "a second dead-letter strategy; keep one"));
                }
                entry.dead_letter = Some(strategy);
            }
        }
        Ok(entry)
    }

    fn individual_strategy(
        &mut self,
        el: &Element,
        path: &str,
    ) -> Result<DeadLetterStrategy, ConfigError> {
        self.check_attrs(
            el,
            path,
            &[
                "queuePrefix",
                "topicPrefix",
                "queueSuffix",
                "topicSuffix",
                "useQueueForQueueMessages",
                "useQueueForTopicMessages",
                "destinationPerDurableSubscriber",
                "processExpired",
                "processNonPersistent",
            ],
        );
        let d = Individual::default();
        let text = |r: &Self, name: &str, default: String| -> Result<String, ConfigError> {
            Ok(r.value(el, name)?
                .map_or(default, |(v, _)| v.trim().to_string()))
        };
        let individual = Individual {
            queue_prefix: text(self, "queuePrefix", d.queue_prefix)?,
            topic_prefix: text(self, "topicPrefix", d.topic_prefix)?,
            queue_suffix: text(self, "queueSuffix", d.queue_suffix)?,
            topic_suffix: text(self, "topicSuffix", d.topic_suffix)?,
            use_queue_for_queue_messages: self
                .typed(el, "useQueueForQueueMessages", parse_bool)?
                .unwrap_or(d.use_queue_for_queue_messages),
            use_queue_for_topic_messages: self
                .typed(el, "useQueueForTopicMessages", parse_bool)?
                .unwrap_or(d.use_queue_for_topic_messages),
            destination_per_durable_subscriber: self
                .typed(el, "destinationPerDurableSubscriber", parse_bool)?
                .unwrap_or(d.destination_per_durable_subscriber),
        };
        for (attr, value) in [
            ("queuePrefix", &individual.queue_prefix),
            ("topicPrefix", &individual.topic_prefix),
            ("queueSuffix", &individual.queue_suffix),
            ("topicSuffix", &individual.topic_suffix),
        ] {
            if let (true, Some(a)) = (value.contains(['*', '>', ',']), el.attr(attr)) {
                return Err(self.attr_err(
                    el,
                    a,
                    "a dead-letter destination name cannot hold a wildcard or a comma",
                ));
            }
        }
        self.strategy_flags(el, DeadLetterTarget::Individual(individual))
    }

    fn shared_strategy(
        &mut self,
        el: &Element,
        path: &str,
    ) -> Result<DeadLetterStrategy, ConfigError> {
        self.check_attrs(el, path, &["processExpired", "processNonPersistent"]);
        let mut dlq = Destination::dead_letter_queue();
        for c in &el.children {
            let cpath = format!("{path}/{}", c.name);
            if c.name != "deadLetterQueue" {
                self.ignore_element(c, path);
                continue;
            }
            self.check_attrs(c, &cpath, &[]);
            for d in &c.children {
                let kind = match d.name.as_str() {
                    "queue" => DestKind::Queue,
                    "topic" => DestKind::Topic,
                    _ => {
                        self.ignore_element(d, &cpath);
                        continue;
                    }
                };
                self.check_attrs(d, &format!("{cpath}/{}", d.name), &["physicalName"]);
                let (name, a) = self.required(d, "physicalName")?;
                let name = name.trim().to_string();
                if name.is_empty() || name.contains(['*', '>', ',']) {
                    return Err(self.attr_err(
                        d,
                        a,
                        "expected one destination name (no wildcard, no comma)",
                    ));
                }
                dlq = Destination { kind, name };
            }
        }
        self.strategy_flags(el, DeadLetterTarget::Shared(dlq))
    }

    fn strategy_flags(
        &self,
        el: &Element,
        target: DeadLetterTarget,
    ) -> Result<DeadLetterStrategy, ConfigError> {
        Ok(DeadLetterStrategy {
            target,
            process_expired: self
                .typed(el, "processExpired", parse_bool)?
                .unwrap_or(true),
            process_non_persistent: self
                .typed(el, "processNonPersistent", parse_bool)?
                .unwrap_or(false),
        })
    }
}

/// A prefetch: a whole number up to `i32::MAX` (what the JMS client can hold).
fn parse_prefetch(s: &str) -> Result<u32, &'static str> {
    let n = parse_u64(s)?;
    u32::try_from(n)
        .ok()
        .filter(|n| *n <= i32::MAX as u32)
        .ok_or("a prefetch from 0 to 2147483647")
}
