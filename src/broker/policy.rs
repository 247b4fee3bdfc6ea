//! Per-destination policies: ActiveMQ's `<destinationPolicy><policyMap>`, reduced to
//! what Tandem acts on (where dead-lettered messages go, which prefetch a consumer that
//! kept its client's default gets, how many bytes of bodies a destination keeps in
//! memory). The configuration layer parses the XML into
//! [`PolicyEntry`] values; `node` builds the [`PolicyMap`] once and the shards and
//! sessions only look entries up.
//!
//! Which entry applies to a destination is ActiveMQ's `PolicyMap.getEntryFor` (5.17,
//! `DestinationMap.chooseValue`): among the entries of the destination's kind whose
//! pattern matches its name, an entry naming exactly this destination wins; otherwise
//! the most specific pattern: of two patterns where one matches the other (as a name),
//! the matched one (`ORDERS.>` beats `>`); when each matches the other (`ORDERS.*`
//! and `ORDERS.>`, where ActiveMQ's order is undefined) the one without `>`; otherwise
//! the one whose pattern text sorts first. No match: the `<defaultEntry>`, if any. Entries are
//! not merged: the chosen entry's unset attributes take ActiveMQ's defaults, not
//! another entry's values.

use std::cmp::Ordering;

use super::destination::{DestKind, Destination, DEAD_LETTER_QUEUE};
use super::ops::DurableName;
use super::wildcard::{Pattern, Segment};

/// ActiveMQ's client defaults (`ActiveMQPrefetchPolicy`): a consumer that asks for
/// exactly this prefetch is taken to have kept its client's default, and gets the
/// policy's prefetch instead (`PolicyEntry.configurePrefetch`).
pub const DEFAULT_QUEUE_PREFETCH: u32 = 1000;
pub const DEFAULT_QUEUE_BROWSER_PREFETCH: u32 = 500;
pub const DEFAULT_TOPIC_PREFETCH: u32 = 32767;
pub const DEFAULT_DURABLE_TOPIC_PREFETCH: u32 = 100;
/// The durable prefetch of a client with `optimizeDurableTopicPrefetch`, also treated
/// as a default by ActiveMQ.
pub const DEFAULT_OPTIMIZE_DURABLE_TOPIC_PREFETCH: u32 = 1000;

/// What a consumer is, for the prefetch it gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsumerKind {
    Queue,
    QueueBrowser,
    Topic,
    DurableTopic,
}

/// Where a dead-lettered message goes, and which messages are dead-lettered at all
/// (ActiveMQ's `DeadLetterStrategy`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetterStrategy {
    pub target: DeadLetterTarget,
    /// `processExpired` (default true): expired messages go to the DLQ; false drops them.
    pub process_expired: bool,
    /// `processNonPersistent` (default false): non-persistent messages are dropped
    /// rather than dead-lettered; true dead-letters them as persistent copies
    /// (`originalDeliveryMode=NON_PERSISTENT`), as ActiveMQ does.
    pub process_non_persistent: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeadLetterTarget {
    /// `<sharedDeadLetterStrategy>`: one destination for every message (default
    /// `queue://ActiveMQ.DLQ`).
    Shared(Destination),
    /// `<individualDeadLetterStrategy>`: one per original destination, named
    /// prefix + original name (+ `.clientId:subscription` for a durable subscription
    /// with `destination_per_durable_subscriber`) + suffix.
    Individual(Individual),
}

/// `<individualDeadLetterStrategy>` attributes, defaults as ActiveMQ 5.17's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Individual {
    /// Default `ActiveMQ.DLQ.Queue.`.
    pub queue_prefix: String,
    /// Default `ActiveMQ.DLQ.Topic.`.
    pub topic_prefix: String,
    /// Default empty.
    pub queue_suffix: String,
    pub topic_suffix: String,
    /// Default true: a queue's DLQ is a queue (false: a topic).
    pub use_queue_for_queue_messages: bool,
    /// Default true: a topic's DLQ is a queue (false: a topic).
    pub use_queue_for_topic_messages: bool,
    /// Default false.
    pub destination_per_durable_subscriber: bool,
}

impl Default for Individual {
    fn default() -> Self {
        Individual {
            queue_prefix: "ActiveMQ.DLQ.Queue.".into(),
            topic_prefix: "ActiveMQ.DLQ.Topic.".into(),
            queue_suffix: String::new(),
            topic_suffix: String::new(),
            use_queue_for_queue_messages: true,
            use_queue_for_topic_messages: true,
            destination_per_durable_subscriber: false,
        }
    }
}

impl DeadLetterStrategy {
    /// A shared strategy to `dlq` with ActiveMQ's defaults.
    pub fn shared(dlq: Destination) -> DeadLetterStrategy {
        DeadLetterStrategy {
            target: DeadLetterTarget::Shared(dlq),
            process_expired: true,
            process_non_persistent: false,
        }
    }

    /// Whether a message is dead-lettered rather than dropped
    /// (`AbstractDeadLetterStrategy.isSendToDeadLetterQueue`).
    pub fn takes(&self, persistent: bool, expired: bool) -> bool {
        (persistent || self.process_non_persistent) && (!expired || self.process_expired)
    }

    /// The dead-letter destination of a message from `original` (consumed through
    /// durable subscription `durable`, if any).
    pub fn destination_for(
        &self,
        original: &Destination,
        durable: Option<&DurableName>,
    ) -> Destination {
        let i = match &self.target {
            DeadLetterTarget::Shared(d) => return d.clone(),
            DeadLetterTarget::Individual(i) => i,
        };
        let (prefix, suffix, use_queue) = if original.kind.is_queue() {
            (
                &i.queue_prefix,
                &i.queue_suffix,
                i.use_queue_for_queue_messages,
            )
        } else {
            (
                &i.topic_prefix,
                &i.topic_suffix,
                i.use_queue_for_topic_messages,
            )
        };
        let mut name = format!("{prefix}{}", original.name);
        if let (true, Some(d)) = (i.destination_per_durable_subscriber, durable) {
            // ActiveMQ's SubscriptionKey: `clientId:subscriptionName`.
            name.push_str(&format!(".{}:{}", d.client_id, d.name));
        }
        name.push_str(suffix);
        if use_queue {
            Destination::queue(name)
        } else {
            Destination::topic(name)
        }
    }
}

/// One `<policyEntry>` (or the `<defaultEntry>`): what Tandem applies of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyEntry {
    /// `<deadLetterStrategy>`; `None`: the broker's default (shared `ActiveMQ.DLQ`).
    pub dead_letter: Option<DeadLetterStrategy>,
    /// `queuePrefetch`, default 1000.
    pub queue_prefetch: u32,
    /// `queueBrowserPrefetch`, default 500.
    pub queue_browser_prefetch: u32,
    /// `topicPrefetch`, default 32767.
    pub topic_prefetch: u32,
    /// `durableTopicPrefetch`, default 100.
    pub durable_topic_prefetch: u32,
    /// `memoryLimit` in bytes; `None` (default): only the shard's limit applies. The
    /// bytes of message bodies the destination holds in memory (a topic: all its
    /// subscriptions' backlogs together), see `broker::core::send`.
    pub memory_limit: Option<u64>,
}

impl Default for PolicyEntry {
    fn default() -> Self {
        PolicyEntry {
            dead_letter: None,
            queue_prefetch: DEFAULT_QUEUE_PREFETCH,
            queue_browser_prefetch: DEFAULT_QUEUE_BROWSER_PREFETCH,
            topic_prefetch: DEFAULT_TOPIC_PREFETCH,
            durable_topic_prefetch: DEFAULT_DURABLE_TOPIC_PREFETCH,
            memory_limit: None,
        }
    }
}

/// The prefetch ActiveMQ's clients (JMS and STOMP) ask for by default.
pub fn default_prefetch(kind: ConsumerKind) -> u32 {
    match kind {
        ConsumerKind::Queue => DEFAULT_QUEUE_PREFETCH,
        ConsumerKind::QueueBrowser => DEFAULT_QUEUE_BROWSER_PREFETCH,
        ConsumerKind::Topic => DEFAULT_TOPIC_PREFETCH,
        ConsumerKind::DurableTopic => DEFAULT_DURABLE_TOPIC_PREFETCH,
    }
}

impl PolicyEntry {
    /// The prefetch a consumer asking for `asked` gets under this entry: the entry's
    /// value when `asked` is the client's default for its kind, else `asked`
    /// (`PolicyEntry.configurePrefetch`).
    pub fn prefetch(&self, kind: ConsumerKind, asked: u32) -> u32 {
        let (is_default, policy) = match kind {
            ConsumerKind::Queue => (asked == DEFAULT_QUEUE_PREFETCH, self.queue_prefetch),
            ConsumerKind::QueueBrowser => (
                asked == DEFAULT_QUEUE_BROWSER_PREFETCH,
                self.queue_browser_prefetch,
            ),
            ConsumerKind::Topic => (asked == DEFAULT_TOPIC_PREFETCH, self.topic_prefetch),
            ConsumerKind::DurableTopic => (
                asked == DEFAULT_DURABLE_TOPIC_PREFETCH
                    || asked == DEFAULT_OPTIMIZE_DURABLE_TOPIC_PREFETCH,
                self.durable_topic_prefetch,
            ),
        };
        if is_default {
            policy
        } else {
            asked
        }
    }
}

/// A `<policyEntry>`'s destination: `queue="..."`, `topic="..."`, `tempQueue="true"`,
/// `tempTopic="true"` (the last two mean every temporary queue/topic, `>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyDestination {
    pub kind: DestKind,
    /// As written; wildcards per [`super::wildcard`].
    pub pattern: String,
}

struct Keyed {
    kind: DestKind,
    text: String,
    pattern: Pattern,
    entry: PolicyEntry,
}

/// The broker's policy entries and how one is chosen for a destination (module doc).
pub struct PolicyMap {
    entries: Vec<Keyed>,
    default_entry: Option<PolicyEntry>,
    /// The strategy when the chosen entry (or no entry) sets none.
    fallback_dead_letter: DeadLetterStrategy,
}

impl Default for PolicyMap {
    /// No entries: every destination dead-letters to `ActiveMQ.DLQ`.
    fn default() -> Self {
        PolicyMap::new(Vec::new(), None, Destination::queue(DEAD_LETTER_QUEUE))
    }
}

impl std::fmt::Debug for PolicyMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyMap")
            .field("entries", &self.entries.len())
            .field("default_entry", &self.default_entry.is_some())
            .finish()
    }
}

impl PolicyMap {
    /// `fallback_dlq`: the shared dead-letter queue for destinations whose entry sets
    /// no strategy (`<tandem deadLetterQueue>`, default `ActiveMQ.DLQ`).
    pub fn new(
        entries: Vec<(PolicyDestination, PolicyEntry)>,
        default_entry: Option<PolicyEntry>,
        fallback_dlq: Destination,
    ) -> PolicyMap {
        PolicyMap {
            entries: entries
                .into_iter()
                .map(|(d, entry)| Keyed {
                    kind: d.kind,
                    pattern: Pattern::parse(&d.pattern),
                    text: d.pattern,
                    entry,
                })
                .collect(),
            default_entry,
            fallback_dead_letter: DeadLetterStrategy::shared(fallback_dlq),
        }
    }

    /// The entry that applies to `d`, if any (module doc).
    pub fn entry_for(&self, d: &Destination) -> Option<&PolicyEntry> {
        let mut best: Option<&Keyed> = None;
        for k in self
            .entries
            .iter()
            .filter(|k| k.kind == d.kind && k.pattern.matches(&d.name))
        {
            best = match best {
                Some(b) if more_specific(b, k, &d.name) != Ordering::Greater => Some(b),
                _ => Some(k),
            };
        }
        best.map(|k| &k.entry).or(self.default_entry.as_ref())
    }

    /// The dead-letter strategy of messages from `d`.
    pub fn dead_letter_for(&self, d: &Destination) -> DeadLetterStrategy {
        self.entry_for(d)
            .and_then(|e| e.dead_letter.clone())
            .unwrap_or_else(|| self.fallback_dead_letter.clone())
    }

    /// The memory limit of destination `d` in bytes, if its entry sets one.
    pub fn memory_limit_for(&self, d: &Destination) -> Option<u64> {
        self.entry_for(d).and_then(|e| e.memory_limit)
    }

    /// The prefetch a consumer of `d` asking for `asked` gets.
    pub fn prefetch(&self, d: &Destination, kind: ConsumerKind, asked: u32) -> u32 {
        self.entry_for(d).map_or(asked, |e| e.prefetch(kind, asked))
    }
}

/// `Less` when `a` is to be chosen over `b` for destination `name`: ActiveMQ's
/// `chooseValue` comparator (exact name first), then `ActiveMQDestination.compare`
/// (a pattern that matches the other sorts after it; else by text).
fn more_specific(a: &Keyed, b: &Keyed, name: &str) -> Ordering {
    match (a.text == name, b.text == name) {
        (true, _) => return Ordering::Less,
        (false, true) => return Ordering::Greater,
        _ => {}
    }
    if a.text == b.text {
        // Duplicate entries: the first written stays (the loader reports the others).
        return Ordering::Less;
    }
    let a_covers_b = a.pattern.is_wildcard() && a.pattern.matches(&b.text);
    let b_covers_a = b.pattern.is_wildcard() && b.pattern.matches(&a.text);
    match (a_covers_b, b_covers_a) {
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        // Each matches the other as a name (`ORDERS.*` and `ORDERS.>`): ActiveMQ's
        // comparator says "after" both ways, so its choice depends on hash order.
        // Tandem picks the one without `>`, which matches fewer names.
        (true, true) => ends_in_rest(a)
            .cmp(&ends_in_rest(b))
            .then(a.text.cmp(&b.text)),
        (false, false) => a.text.cmp(&b.text),
    }
}

fn ends_in_rest(k: &Keyed) -> bool {
    matches!(k.pattern.segments().last(), Some(Segment::Rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(prefetch: u32) -> PolicyEntry {
        PolicyEntry {
            queue_prefetch: prefetch,
            ..PolicyEntry::default()
        }
    }

    fn map(entries: &[(DestKind, &str, u32)], default: Option<u32>) -> PolicyMap {
        PolicyMap::new(
            entries
                .iter()
                .map(|(kind, p, n)| {
                    (
                        PolicyDestination {
                            kind: *kind,
                            pattern: p.to_string(),
                        },
                        entry(*n),
                    )
                })
                .collect(),
            default.map(entry),
            Destination::dead_letter_queue(),
        )
    }

    fn chosen(m: &PolicyMap, d: &Destination) -> Option<u32> {
        m.entry_for(d).map(|e| e.queue_prefetch)
    }

    #[test]
    fn the_most_specific_matching_entry_wins_whatever_the_order() {
        let specs = [
            (DestKind::Queue, ">", 1),
            (DestKind::Queue, "ORDERS.>", 2),
            (DestKind::Queue, "ORDERS.*", 3),
            (DestKind::Queue, "ORDERS.EU", 4),
            (DestKind::Topic, ">", 5),
        ];
        for rev in [false, true] {
            let mut s = specs.to_vec();
            if rev {
                s.reverse();
            }
            let m = map(&s, None);
            assert_eq!(chosen(&m, &Destination::queue("ORDERS.EU")), Some(4));
            assert_eq!(chosen(&m, &Destination::queue("ORDERS.US")), Some(3));
            assert_eq!(chosen(&m, &Destination::queue("ORDERS.US.NY")), Some(2));
            assert_eq!(chosen(&m, &Destination::queue("ORDERS")), Some(2));
            assert_eq!(chosen(&m, &Destination::queue("OTHER")), Some(1));
            assert_eq!(chosen(&m, &Destination::topic("ORDERS.EU")), Some(5));
        }
    }

    #[test]
    fn unrelated_patterns_are_ordered_by_text_and_the_default_entry_catches_the_rest() {
        let m = map(
            &[(DestKind::Queue, "*.BAR", 1), (DestKind::Queue, "FOO.*", 2)],
            Some(9),
        );
        // Neither pattern matches the other: "*.BAR" < "FOO.*".
        assert_eq!(chosen(&m, &Destination::queue("FOO.BAR")), Some(1));
        assert_eq!(chosen(&m, &Destination::queue("FOO.X")), Some(2));
        assert_eq!(chosen(&m, &Destination::queue("X")), Some(9));
        // Temporary destinations only match tempQueue/tempTopic entries.
        let temp = Destination {
            kind: DestKind::TempQueue,
            name: "ID:x-1:1".into(),
        };
        assert_eq!(chosen(&m, &temp), Some(9));
        assert_eq!(chosen(&map(&[], None), &temp), None);
    }

    #[test]
    fn prefetch_overrides_only_a_client_default() {
        let e = PolicyEntry {
            queue_prefetch: 1,
            topic_prefetch: 2,
            durable_topic_prefetch: 3,
            queue_browser_prefetch: 4,
            dead_letter: None,
            memory_limit: None,
        };
        assert_eq!(e.prefetch(ConsumerKind::Queue, 1000), 1);
        assert_eq!(e.prefetch(ConsumerKind::Queue, 10), 10);
        assert_eq!(e.prefetch(ConsumerKind::Topic, 32767), 2);
        assert_eq!(e.prefetch(ConsumerKind::Topic, 1000), 1000);
        assert_eq!(e.prefetch(ConsumerKind::DurableTopic, 100), 3);
        assert_eq!(e.prefetch(ConsumerKind::DurableTopic, 1000), 3);
        assert_eq!(e.prefetch(ConsumerKind::QueueBrowser, 500), 4);
        let m = map(&[(DestKind::Queue, "A", 7)], None);
        assert_eq!(
            m.prefetch(&Destination::queue("A"), ConsumerKind::Queue, 1000),
            7
        );
        assert_eq!(
            m.prefetch(&Destination::queue("B"), ConsumerKind::Queue, 1000),
            1000
        );
    }

    #[test]
    fn dead_letter_destinations() {
        let individual = |i: Individual| DeadLetterStrategy {
            target: DeadLetterTarget::Individual(i),
            process_expired: true,
            process_non_persistent: false,
        };
        let d = individual(Individual::default());
        assert_eq!(
            d.destination_for(&Destination::queue("A.B"), None),
            Destination::queue("ActiveMQ.DLQ.Queue.A.B")
        );
        assert_eq!(
            d.destination_for(&Destination::topic("T"), None),
            Destination::queue("ActiveMQ.DLQ.Topic.T")
        );
        let sub = DurableName {
            client_id: "c".into(),
            name: "s".into(),
        };
        let d = individual(Individual {
            queue_prefix: "DLQ.".into(),
            topic_prefix: "TDLQ.".into(),
            topic_suffix: ".end".into(),
            use_queue_for_queue_messages: false,
            destination_per_durable_subscriber: true,
            ..Individual::default()
        });
        assert_eq!(
            d.destination_for(&Destination::queue("A"), None),
            Destination::topic("DLQ.A")
        );
        assert_eq!(
            d.destination_for(&Destination::topic("T"), Some(&sub)),
            Destination::queue("TDLQ.T.c:s.end")
        );
        let shared = DeadLetterStrategy::shared(Destination::queue("X"));
        assert_eq!(
            shared.destination_for(&Destination::topic("T"), Some(&sub)),
            Destination::queue("X")
        );
        assert!(shared.takes(true, false) && shared.takes(true, true));
        assert!(!shared.takes(false, false));
        let picky = DeadLetterStrategy {
            process_expired: false,
            process_non_persistent: true,
            ..shared
        };
        assert!(picky.takes(false, false) && !picky.takes(true, true));

        let m = PolicyMap::new(
            vec![(
                PolicyDestination {
                    kind: DestKind::Queue,
                    pattern: "P.>".into(),
                },
                PolicyEntry {
                    dead_letter: Some(d.clone()),
                    ..PolicyEntry::default()
                },
            )],
            Some(PolicyEntry::default()),
            Destination::queue("Fallback.DLQ"),
        );
        assert_eq!(m.dead_letter_for(&Destination::queue("P.1")), d);
        // The default entry sets no strategy: the broker's fallback.
        assert_eq!(
            m.dead_letter_for(&Destination::queue("Q")),
            DeadLetterStrategy::shared(Destination::queue("Fallback.DLQ"))
        );
    }
}
