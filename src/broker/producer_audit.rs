//! Duplicate detection for persistent sends, by producer id and sequence number.
//!
//! A JMS client names every message `<producerId>:<sequence>` (for example
//! `ID:host-40915-1732612345678-1:1:1:1:42`), the sequence counting up per producer.
//! When its connection breaks, ActiveMQ's failover transport replays every send that was
//! not answered, with its original id; if the broker (or the slave that took over)
//! already stored that message, storing it again would deliver it twice. ActiveMQ
//! Classic guards against this with its producer audit; so do we.
//!
//! Each shard keeps, per producer and destination, the highest sequence number it has
//! stored as a persistent message there. Per destination because one send may store
//! one message (one id) on several destinations of a shard: the members of a composite
//! destination, a virtual topic and its consumer queues. The audit is fed from the one path every stored message takes,
//! `ShardCore::apply` of an `Enqueue` record: live sends, recovery replay, and a slave
//! applying shipped records. So the slave holds the same audit as its master and a
//! takeover keeps it; nothing extra is journaled or shipped.
//!
//! Why "highest so far" is enough: one connection's sends reach a shard in the order it
//! sent them (one FIFO channel per shard pair), and a replay resends in the original
//! order, so a sequence at or below the highest stored one from the same producer on the
//! same shard was stored already. Ids that are not in the JMS form (STOMP messages, whose
//! ids the broker assigns and never reuses) are not audited.
//!
//! Bounded: at most `capacity` producers are remembered; past that the least recently
//! stored-to half is forgotten (a producer unheard of for that long has no send left in
//! flight to replay). Entries whose records were reclaimed from the journal are also
//! forgotten at the next restart, for the same reason.

use std::collections::HashMap;

use super::destination::Destination;

/// Highest stored sequence per producer, for one shard.
#[derive(Debug)]
pub struct ProducerAudit {
    /// (producer id, destination) (see [`key`]) -> (highest sequence stored,
    /// generation of the last store).
    producers: HashMap<Box<str>, (u64, u64)>,
    generation: u64,
    capacity: usize,
}

/// Producers remembered per shard by default (about 100 bytes each).
pub const DEFAULT_CAPACITY: usize = 65_536;

/// Splits a JMS message id into its producer id and sequence number:
/// `<connection id>:<session>:<producer>:<sequence>`, the last three decimal.
pub fn producer_sequence(message_id: &str) -> Option<(&str, u64)> {
    let (producer, seq) = message_id.rsplit_once(':')?;
    let seq: u64 = seq.parse().ok()?;
    let (rest, value) = producer.rsplit_once(':')?;
    let (connection, session) = rest.rsplit_once(':')?;
    let decimal = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (decimal(value) && decimal(session) && !connection.is_empty()).then_some((producer, seq))
}

/// The audit's key: producer id and destination (a NUL apart: neither a JMS id nor a
/// kind's name holds one).
fn key(producer: &str, destination: &Destination) -> Box<str> {
    format!("{producer}\0{destination}").into_boxed_str()
}

impl Default for ProducerAudit {
    fn default() -> Self {
        ProducerAudit::with_capacity(DEFAULT_CAPACITY)
    }
}

impl ProducerAudit {
    pub fn with_capacity(capacity: usize) -> ProducerAudit {
        assert!(
            capacity >= 2,
            "an audit must remember at least two producers"
        );
        ProducerAudit {
            producers: HashMap::new(),
            generation: 0,
            capacity,
        }
    }

    /// Whether a message with this id was stored on `destination` already.
    pub fn is_duplicate(&self, destination: &Destination, message_id: &str) -> bool {
        producer_sequence(message_id).is_some_and(|(producer, seq)| {
            self.producers
                .get(key(producer, destination).as_ref())
                .is_some_and(|&(highest, _)| seq <= highest)
        })
    }

    /// A message with this id is stored on `destination`.
    pub fn stored(&mut self, destination: &Destination, message_id: &str) {
        let Some((producer, seq)) = producer_sequence(message_id) else {
            return;
        };
        self.generation += 1;
        let generation = self.generation;
        let key = key(producer, destination);
        match self.producers.get_mut(&key) {
            Some(entry) => *entry = (entry.0.max(seq), generation),
            None => {
                self.producers.insert(key, (seq, generation));
                if self.producers.len() > self.capacity {
                    self.forget_oldest_half();
                }
            }
        }
        debug_assert!(self.producers.len() <= self.capacity);
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// Keeps the `capacity / 2` most recently stored-to producers. O(n), once per
    /// `capacity / 2` new producers.
    fn forget_oldest_half(&mut self) {
        let mut generations: Vec<u64> = self.producers.values().map(|&(_, g)| g).collect();
        let keep = self.capacity / 2;
        let cut = generations.len() - keep;
        let (_, &mut threshold, _) = generations.select_nth_unstable(cut);
        self.producers.retain(|_, &mut (_, g)| g >= threshold);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "ID:host-40915-1732612345678-1:1:1:1";

    fn q() -> Destination {
        Destination::queue("q")
    }

    #[test]
    fn one_message_is_stored_once_per_destination() {
        // A composite (or virtual topic) send stores one id on several destinations.
        let mut a = ProducerAudit::default();
        let id = format!("{P}:7");
        a.stored(&Destination::topic("VirtualTopic.X"), &id);
        assert!(!a.is_duplicate(&Destination::queue("Consumer.A.VirtualTopic.X"), &id));
        assert!(!a.is_duplicate(&Destination::queue("VirtualTopic.X"), &id));
        assert!(a.is_duplicate(&Destination::topic("VirtualTopic.X"), &id));
    }

    #[test]
    fn splits_jms_ids_only() {
        assert_eq!(producer_sequence(&format!("{P}:42")), Some((P, 42)));
        assert_eq!(producer_sequence("ID:tandem-1732612345678-0-17"), None);
        assert_eq!(producer_sequence("ID:a:1:x:5"), None);
        assert_eq!(producer_sequence(":1:1:5"), None);
        assert_eq!(producer_sequence("ID:a:1:1:-5"), None);
        assert_eq!(producer_sequence(""), None);
    }

    #[test]
    fn a_sequence_at_or_below_the_highest_stored_is_a_duplicate() {
        let mut a = ProducerAudit::default();
        assert!(!a.is_duplicate(&q(), &format!("{P}:1")));
        a.stored(&q(), &format!("{P}:1"));
        a.stored(&q(), &format!("{P}:3"));
        assert!(a.is_duplicate(&q(), &format!("{P}:1")));
        assert!(a.is_duplicate(&q(), &format!("{P}:2")));
        assert!(a.is_duplicate(&q(), &format!("{P}:3")));
        assert!(!a.is_duplicate(&q(), &format!("{P}:4")));
        // Another producer of the same connection is independent.
        assert!(!a.is_duplicate(&q(), "ID:host-40915-1732612345678-1:1:1:2:1"));
        // A lower sequence stored later (a relocated record) does not lower the mark.
        a.stored(&q(), &format!("{P}:2"));
        assert!(a.is_duplicate(&q(), &format!("{P}:3")));
        // Ids the broker assigned are never duplicates.
        a.stored(&q(), "ID:tandem-1-0-5");
        assert!(!a.is_duplicate(&q(), "ID:tandem-1-0-5"));
        assert_eq!(a.len(), 1);
    }

    #[test]
    fn bounded_forgetting_the_least_recent_producers() {
        let mut a = ProducerAudit::with_capacity(8);
        for p in 0..8 {
            a.stored(&q(), &format!("ID:c:1:{p}:1"));
        }
        // Producer 0 is stored to again: now the most recent.
        a.stored(&q(), "ID:c:1:0:2");
        a.stored(&q(), "ID:c:1:8:1");
        assert!(a.len() <= 8);
        assert!(
            a.is_duplicate(&q(), "ID:c:1:0:2"),
            "recently used producer kept"
        );
        assert!(a.is_duplicate(&q(), "ID:c:1:8:1"), "newest producer kept");
        assert!(
            !a.is_duplicate(&q(), "ID:c:1:1:1"),
            "oldest producer forgotten"
        );
        for p in 9..1000 {
            a.stored(&q(), &format!("ID:c:1:{p}:1"));
            assert!(a.len() <= 8);
        }
    }
}
