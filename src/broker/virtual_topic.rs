//! Virtual topics, as ActiveMQ Classic does them by default: a send to a topic named
//! `VirtualTopic.<X>` also goes to every queue named `Consumer.<name>.VirtualTopic.<X>`
//! that exists at the time of the send. Those consumer queues give a topic's
//! subscribers the load balancing and durability of queues; plain topic subscribers
//! still get the topic message.
//!
//! The rules ([`VirtualTopicRule`], `<virtualTopic name prefix postfix>` in
//! `activemq.xml`) say which topics are virtual and how their consumer queues are
//! named: a queue is a consumer queue of topic `T` under a rule when its name is
//! `prefix + T + postfix` with the prefix's `*` segments matching any one segment, and
//! `T` matches the rule's `name` pattern (`*` one dot-separated segment, `>` one or
//! more).
//!
//! Who knows which consumer queues exist: queues live on the shard their name hashes to,
//! while a send is expanded by the sender's session on its own shard. So each shard
//! reports the consumer queues it creates and removes to a broker-wide
//! [`VirtualTopicIndex`] (topic name -> queue names), from the one place every queue is
//! created and removed (`ShardCore::queue_mut`, `ShardCore::remove_queue`): live
//! requests, journal replay and a slave applying its master's records alike, so after a
//! restart or a takeover the index holds every queue the shards hold. The sessions of
//! both protocols expand a send with [`VirtualTopicIndex::expand`] into the topic plus
//! its consumer queues, one send per member like a composite destination, so
//! persistence, transactions, flow control and replication apply as to any send.
//!
//! Bounded: the index holds only queues that exist, and the shards refuse destinations
//! beyond `maxDestinations`; a send whose expansion exceeds `maxCompositeDestinations`
//! members is refused.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use super::destination::{DestKind, Destination};
use crate::metrics::LimitStats;

/// One `<virtualTopic>`: which topics are virtual (`name`) and how their consumer
/// queues are named (`prefix` + topic + `postfix`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VirtualTopicRule {
    /// Topic name pattern (`VirtualTopic.>` by default).
    name: Vec<String>,
    /// The prefix's whole segments (before its last `.`), each literal or `*`.
    prefix_segments: Vec<String>,
    /// What follows the prefix's last `.` (usually empty): literal.
    prefix_rest: String,
    /// Literal suffix of every consumer queue name.
    postfix: String,
}

/// Why a rule cannot be used (a configuration error names the attribute).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("an empty pattern")]
    EmptyName,
    #[error("`>` may only be the last segment of a pattern")]
    InnerDescendant,
    #[error("a wildcard may only be a whole `*` segment before the prefix's last `.`")]
    PrefixWildcard,
    #[error("wildcards are not allowed in a postfix")]
    PostfixWildcard,
}

/// ActiveMQ's default: topics `VirtualTopic.>`, consumer queues `Consumer.*.<topic>`.
pub const DEFAULT_NAME: &str = "VirtualTopic.>";
pub const DEFAULT_PREFIX: &str = "Consumer.*.";

impl VirtualTopicRule {
    pub fn new(name: &str, prefix: &str, postfix: &str) -> Result<VirtualTopicRule, RuleError> {
        if name.is_empty() {
            return Err(RuleError::EmptyName);
        }
        let name: Vec<String> = name.split('.').map(str::to_owned).collect();
        if name[..name.len() - 1].iter().any(|s| s == ">") {
            return Err(RuleError::InnerDescendant);
        }
        // Whole segments up to the prefix's last `.`; what follows it is literal.
        let (prefix_segments, rest): (Vec<String>, &str) = match prefix.rfind('.') {
            Some(i) => (
                prefix[..i].split('.').map(str::to_owned).collect(),
                &prefix[i + 1..],
            ),
            None => (Vec::new(), prefix),
        };
        let bad_segment = |s: &String| s != "*" && (s.contains('*') || s.contains('>'));
        if prefix_segments.iter().any(bad_segment) || rest.contains(['*', '>']) {
            return Err(RuleError::PrefixWildcard);
        }
        if postfix.contains(['*', '>']) {
            return Err(RuleError::PostfixWildcard);
        }
        Ok(VirtualTopicRule {
            name,
            prefix_segments,
            prefix_rest: rest.to_owned(),
            postfix: postfix.to_owned(),
        })
    }

    /// ActiveMQ's rule when nothing is configured.
    pub fn activemq_default() -> VirtualTopicRule {
        VirtualTopicRule::new(DEFAULT_NAME, DEFAULT_PREFIX, "")
            .unwrap_or_else(|e| unreachable!("the default rule is valid: {e}"))
    }

    /// Whether topic `topic` is virtual under this rule.
    pub fn is_virtual(&self, topic: &str) -> bool {
        matches_pattern(&self.name, topic)
    }

    /// The topic whose consumer queue `queue` is under this rule, if it is one.
    pub fn topic_of(&self, queue: &str) -> Option<String> {
        let mut rest = queue.strip_suffix(self.postfix.as_str())?;
        for seg in &self.prefix_segments {
            let (head, tail) = rest.split_once('.')?;
            if head.is_empty() || (seg != "*" && seg != head) {
                return None;
            }
            rest = tail;
        }
        let topic = rest.strip_prefix(self.prefix_rest.as_str())?;
        (!topic.is_empty() && self.is_virtual(topic)).then(|| topic.to_owned())
    }
}

/// ActiveMQ's destination wildcards: `*` one segment, a final `>` one or more.
fn matches_pattern(pattern: &[String], name: &str) -> bool {
    let mut segments = name.split('.');
    for (i, p) in pattern.iter().enumerate() {
        if p == ">" && i + 1 == pattern.len() {
            return segments.next().is_some();
        }
        match segments.next() {
            Some(s) if p == "*" || p == s => {}
            _ => return false,
        }
    }
    segments.next().is_none()
}

/// The topics `queue` is a consumer queue of, under any of `rules` (usually none or
/// one). Only non-temporary queues qualify.
pub fn topics_of(rules: &[VirtualTopicRule], queue: &Destination) -> Vec<String> {
    if queue.kind != DestKind::Queue {
        return Vec::new();
    }
    let mut topics: Vec<String> = rules
        .iter()
        .filter_map(|r| r.topic_of(&queue.name))
        .collect();
    topics.sort_unstable();
    topics.dedup();
    topics
}

/// Which consumer queues exist, per virtual topic: broker-wide, kept by the shards.
#[derive(Debug, Default)]
pub struct VirtualTopicIndex {
    /// Written when a consumer queue comes or goes; read by every send to a topic.
    inner: RwLock<Inner>,
    /// Queues indexed: lets a send skip the lock while there are none.
    indexed: AtomicUsize,
    /// Where the number of indexed queues is published (`/status`, `/metrics`).
    stats: Arc<LimitStats>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Topic name -> its consumer queues' names.
    by_topic: HashMap<String, BTreeSet<String>>,
    /// Queue name -> (the shard core instance that holds it, the topics it serves):
    /// what a removal, or a core being replaced, takes out again.
    queues: HashMap<String, (u64, Vec<String>)>,
}

/// Tells shard core instances apart (a slave that starts over replaces its core).
static NEXT_OWNER: AtomicU64 = AtomicU64::new(1);

/// A new owner id for [`VirtualTopicIndex::add`].
pub fn new_owner() -> u64 {
    NEXT_OWNER.fetch_add(1, Ordering::Relaxed)
}

/// A send's expansion would exceed the composite-member cap: the members it needs.
/// Its text is what the client is told (both protocols).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "this send would reach {needed} destinations with the virtual-topic consumer queues \
     that exist; at most {max} are allowed (maxCompositeDestinations)"
)]
pub struct TooManyMembers {
    pub needed: usize,
    pub max: usize,
}

impl VirtualTopicIndex {
    /// An index that publishes its size in `stats`.
    pub fn counting_in(stats: Arc<LimitStats>) -> VirtualTopicIndex {
        VirtualTopicIndex {
            inner: RwLock::default(),
            indexed: AtomicUsize::new(0),
            stats,
        }
    }

    fn publish(&self, inner: &Inner) {
        self.indexed.store(inner.queues.len(), Ordering::Release);
        self.stats
            .set_virtual_topic_queues(inner.queues.len() as u64);
    }

    fn lock(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Queue `queue`, held by core `owner`, is a consumer queue of `topics`.
    pub fn add(&self, queue: &str, topics: Vec<String>, owner: u64) {
        if topics.is_empty() {
            return;
        }
        let mut inner = self.lock();
        for t in &topics {
            inner
                .by_topic
                .entry(t.clone())
                .or_default()
                .insert(queue.to_owned());
        }
        inner.queues.insert(queue.to_owned(), (owner, topics));
        self.publish(&inner);
    }

    /// Queue `queue` is gone (if `owner` holds it).
    pub fn remove(&self, queue: &str, owner: u64) {
        let mut inner = self.lock();
        if inner.queues.get(queue).is_some_and(|(o, _)| *o == owner) {
            if let Some((_, topics)) = inner.queues.remove(queue) {
                inner.unlink(queue, &topics);
            }
            self.publish(&inner);
        }
    }

    /// Every queue core `owner` held is gone (the core was dropped).
    pub fn forget_owner(&self, owner: u64) {
        let mut inner = self.lock();
        let gone: Vec<(String, Vec<String>)> = inner
            .queues
            .iter()
            .filter(|(_, (o, _))| *o == owner)
            .map(|(q, (_, t))| (q.clone(), t.clone()))
            .collect();
        for (q, topics) in gone {
            inner.queues.remove(&q);
            inner.unlink(&q, &topics);
        }
        self.publish(&inner);
    }

    /// Consumer queues indexed (for `/status`, `/metrics` and tests).
    pub fn len(&self) -> usize {
        self.read().queues.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The consumer queues of topic `topic` now, sorted.
    pub fn queues_of(&self, topic: &str) -> Vec<String> {
        self.read()
            .by_topic
            .get(topic)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Adds to `members` (the destinations one send goes to) the consumer queues of
    /// each topic among them, once each. Refused if the result would have more than
    /// `max` members; `members` is then unchanged.
    pub fn expand(&self, members: &mut Vec<Destination>, max: usize) -> Result<(), TooManyMembers> {
        // Most sends go to queues, and most brokers have no consumer queues: neither
        // takes the lock.
        if self.indexed.load(Ordering::Acquire) == 0
            || !members.iter().any(|m| m.kind == DestKind::Topic)
        {
            return Ok(());
        }
        let inner = self.read();
        let mut extra: Vec<Destination> = Vec::new();
        for m in members.iter().filter(|m| m.kind == DestKind::Topic) {
            let Some(queues) = inner.by_topic.get(&m.name) else {
                continue;
            };
            for q in queues {
                let d = Destination::queue(q.as_str());
                if !members.contains(&d) && !extra.contains(&d) {
                    extra.push(d);
                }
            }
        }
        drop(inner);
        let needed = members.len() + extra.len();
        if needed > max {
            return Err(TooManyMembers { needed, max });
        }
        members.extend(extra);
        Ok(())
    }
}

impl Inner {
    fn unlink(&mut self, queue: &str, topics: &[String]) {
        for t in topics {
            if let Some(set) = self.by_topic.get_mut(t) {
                set.remove(queue);
                if set.is_empty() {
                    self.by_topic.remove(t);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_rule_names_consumer_queues_as_activemq_does() {
        let r = VirtualTopicRule::activemq_default();
        assert_eq!(
            r.topic_of("Consumer.A.VirtualTopic.Orders").as_deref(),
            Some("VirtualTopic.Orders")
        );
        assert_eq!(
            r.topic_of("Consumer.A.VirtualTopic.Orders.EU").as_deref(),
            Some("VirtualTopic.Orders.EU")
        );
        // `*` is one segment: a dotted consumer name makes another topic, not virtual.
        assert_eq!(r.topic_of("Consumer.A.B.VirtualTopic.Orders"), None);
        assert_eq!(r.topic_of("Consumer.VirtualTopic.Orders"), None);
        assert_eq!(r.topic_of("Consumer.A.VirtualTopic"), None);
        assert_eq!(r.topic_of("Orders"), None);
        assert!(r.is_virtual("VirtualTopic.X"));
        assert!(!r.is_virtual("VirtualTopic"));
        assert!(!r.is_virtual("Other.X"));
    }

    #[test]
    fn configured_rules_with_prefixes_postfixes_and_patterns() {
        let r = VirtualTopicRule::new("Events.*", "VTC.*.", ".q").unwrap();
        assert_eq!(
            r.topic_of("VTC.billing.Events.a.q").as_deref(),
            Some("Events.a")
        );
        assert_eq!(r.topic_of("VTC.billing.Events.a"), None);
        assert_eq!(r.topic_of("VTC.billing.Events.a.b.q"), None);
        let r = VirtualTopicRule::new(">", "Consumer.*.", "").unwrap();
        assert_eq!(
            r.topic_of("Consumer.A.Anything.At.All").as_deref(),
            Some("Anything.At.All")
        );
        // A prefix without a wildcard: one consumer queue per topic.
        let r = VirtualTopicRule::new("VT.>", "Q.", "").unwrap();
        assert_eq!(r.topic_of("Q.VT.x").as_deref(), Some("VT.x"));
        // A partial last segment is literal.
        let r = VirtualTopicRule::new("VT.>", "Consumer.*.in_", "").unwrap();
        assert_eq!(r.topic_of("Consumer.a.in_VT.x").as_deref(), Some("VT.x"));
        assert_eq!(r.topic_of("Consumer.a.VT.x"), None);
        assert_eq!(
            VirtualTopicRule::new("a.>.b", "C.*.", ""),
            Err(RuleError::InnerDescendant)
        );
        assert_eq!(
            VirtualTopicRule::new(">", "C.x*.", ""),
            Err(RuleError::PrefixWildcard)
        );
        assert_eq!(
            VirtualTopicRule::new(">", "C.>.", ""),
            Err(RuleError::PrefixWildcard)
        );
        assert_eq!(
            VirtualTopicRule::new(">", "C.*.", ".*"),
            Err(RuleError::PostfixWildcard)
        );
        assert_eq!(
            VirtualTopicRule::new("", "C.*.", ""),
            Err(RuleError::EmptyName)
        );
    }

    #[test]
    fn the_index_expands_a_topic_into_its_existing_consumer_queues() {
        let rules = vec![VirtualTopicRule::activemq_default()];
        let stats = Arc::new(LimitStats::default());
        let index = VirtualTopicIndex::counting_in(stats.clone());
        let (core1, core2) = (new_owner(), new_owner());
        for (q, owner) in [
            ("Consumer.A.VirtualTopic.X", core1),
            ("Consumer.B.VirtualTopic.X", core2),
            ("Consumer.A.VirtualTopic.Y", core2),
            ("plain", core1),
        ] {
            index.add(q, topics_of(&rules, &Destination::queue(q)), owner);
        }
        assert_eq!(index.len(), 3);
        assert_eq!(stats.virtual_topic_queues(), 3, "published");
        let mut m = vec![Destination::topic("VirtualTopic.X")];
        index.expand(&mut m, 10).unwrap();
        assert_eq!(
            m,
            vec![
                Destination::topic("VirtualTopic.X"),
                Destination::queue("Consumer.A.VirtualTopic.X"),
                Destination::queue("Consumer.B.VirtualTopic.X"),
            ]
        );
        // A queue named in the send already is not added twice; the cap counts all.
        let mut m = vec![
            Destination::topic("VirtualTopic.X"),
            Destination::queue("Consumer.A.VirtualTopic.X"),
        ];
        assert_eq!(
            index.expand(&mut m, 2),
            Err(TooManyMembers { needed: 3, max: 2 })
        );
        assert_eq!(m.len(), 2);
        // A queue is not a topic: nothing to expand.
        let mut m = vec![Destination::queue("VirtualTopic.X")];
        index.expand(&mut m, 10).unwrap();
        assert_eq!(m.len(), 1);
        // Removal by another core changes nothing; by its holder, it goes.
        index.remove("Consumer.A.VirtualTopic.X", core2);
        assert_eq!(index.queues_of("VirtualTopic.X").len(), 2);
        index.remove("Consumer.A.VirtualTopic.X", core1);
        assert_eq!(
            index.queues_of("VirtualTopic.X"),
            vec!["Consumer.B.VirtualTopic.X"]
        );
        index.forget_owner(core2);
        assert!(index.is_empty());
        assert_eq!(stats.virtual_topic_queues(), 0);
        assert!(index.queues_of("VirtualTopic.X").is_empty());
    }

    #[test]
    fn temporary_queues_are_never_consumer_queues() {
        let rules = vec![VirtualTopicRule::activemq_default()];
        let d = Destination {
            kind: DestKind::TempQueue,
            name: "Consumer.A.VirtualTopic.X".into(),
        };
        assert!(topics_of(&rules, &d).is_empty());
    }
}
