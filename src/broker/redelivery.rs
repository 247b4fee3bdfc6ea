//! ActiveMQ's redelivery plugin (`<redeliveryPlugin>`, `RedeliveryPlugin.java`): instead
//! of moving a message to the dead-letter queue (a JMS client's poison ack after its own
//! redeliveries, a STOMP NACK, the broker's `maximumRedeliveries`), the broker sends it
//! back to its queue after the matching policy's delay, as a scheduled message with an
//! incremented redelivery count and a `redeliveryDelay` property; once the broker has
//! redelivered it `maximumRedeliveries` times, it goes to the dead-letter queue
//! (`sendToDlqIfMaxRetriesExceeded`, else it is dropped). A destination no policy
//! matches goes to the dead-letter queue (`fallbackToDeadLetter`, else dropped). Expired
//! messages are dead-lettered as usual. Needs `schedulerSupport` (the configuration
//! refuses the plugin without it, as ActiveMQ refuses to start).

use super::destination::{DestKind, Destination};
use super::wildcard::Pattern;

/// One `<redeliveryPolicy>` (ActiveMQ's `RedeliveryPolicy`, the broker-side fields).
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    /// Broker redeliveries before the dead-letter queue; negative: no maximum.
    pub maximum_redeliveries: i32,
    pub initial_redelivery_delay_ms: i64,
    pub redelivery_delay_ms: i64,
    pub use_exponential_back_off: bool,
    pub back_off_multiplier: f64,
    /// Cap of an exponential delay; -1: none.
    pub maximum_redelivery_delay_ms: i64,
}

impl Default for Policy {
    /// ActiveMQ's defaults.
    fn default() -> Self {
        Policy {
            maximum_redeliveries: 6,
            initial_redelivery_delay_ms: 1000,
            redelivery_delay_ms: 1000,
            use_exponential_back_off: false,
            back_off_multiplier: 5.0,
            maximum_redelivery_delay_ms: -1,
        }
    }
}

impl Policy {
    /// `RedeliveryPolicy.getNextRedeliveryDelay` (without collision avoidance).
    fn next_delay(&self, previous: i64) -> i64 {
        let mut next = self.redelivery_delay_ms;
        if previous > 0 && self.use_exponential_back_off && self.back_off_multiplier > 1.0 {
            next = (previous as f64 * self.back_off_multiplier) as i64;
            if self.maximum_redelivery_delay_ms != -1 && next > self.maximum_redelivery_delay_ms {
                next = self
                    .maximum_redelivery_delay_ms
                    .max(self.redelivery_delay_ms);
            }
        }
        next
    }

    /// The delay before the redelivery of a message the broker has redelivered
    /// `count` times already (`RedeliveryPlugin.sendToDeadLetterQueue`).
    pub fn delay_for(&self, count: u32) -> i64 {
        let mut delay = self.initial_redelivery_delay_ms;
        for _ in 0..count.min(64) {
            delay = self.next_delay(delay);
        }
        delay
    }
}

/// A `<redeliveryPolicy queue="..."/>` or `topic="..."` entry.
#[derive(Clone, Debug)]
pub struct Entry {
    pub kind: DestKind,
    pub pattern: Pattern,
    pub policy: Policy,
}

#[derive(Clone, Debug)]
pub struct RedeliveryPlugin {
    pub fallback_to_dead_letter: bool,
    pub send_to_dlq_if_max_retries_exceeded: bool,
    pub default_entry: Option<Policy>,
    pub entries: Vec<Entry>,
}

/// What becomes of a message its consumer gave up on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Action {
    DeadLetter,
    /// Back to its destination after `delay_ms`, with redelivery count `count`.
    Redeliver {
        delay_ms: i64,
        count: u32,
    },
    Drop,
}

impl RedeliveryPlugin {
    /// The policy for `d`: the first matching entry, else the default entry.
    pub fn policy_for(&self, d: &Destination) -> Option<&Policy> {
        let kind = if d.kind.is_queue() {
            DestKind::Queue
        } else {
            DestKind::Topic
        };
        self.entries
            .iter()
            .find(|e| e.kind == kind && e.pattern.matches(&d.name))
            .map(|e| &e.policy)
            .or(self.default_entry.as_ref())
    }

    /// The action for a message of `d` the broker has redelivered `redeliveries` times.
    pub fn action(&self, d: &Destination, redeliveries: u32) -> Action {
        match self.policy_for(d) {
            Some(p)
                if p.maximum_redeliveries < 0
                    || i64::from(redeliveries) < i64::from(p.maximum_redeliveries) =>
            {
                Action::Redeliver {
                    delay_ms: p.delay_for(redeliveries),
                    count: redeliveries + 1,
                }
            }
            Some(_) if self.send_to_dlq_if_max_retries_exceeded => Action::DeadLetter,
            None if self.fallback_to_dead_letter => Action::DeadLetter,
            _ => Action::Drop,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_follow_the_policy_then_the_dead_letter_queue() {
        let p = Policy {
            maximum_redeliveries: 2,
            initial_redelivery_delay_ms: 1000,
            redelivery_delay_ms: 2000,
            ..Policy::default()
        };
        let plugin = RedeliveryPlugin {
            fallback_to_dead_letter: true,
            send_to_dlq_if_max_retries_exceeded: true,
            default_entry: Some(p.clone()),
            entries: vec![Entry {
                kind: DestKind::Queue,
                pattern: Pattern::parse("orders.>"),
                policy: Policy {
                    maximum_redeliveries: -1,
                    use_exponential_back_off: true,
                    back_off_multiplier: 2.0,
                    maximum_redelivery_delay_ms: 5000,
                    ..p.clone()
                },
            }],
        };
        let q = Destination::queue("q");
        assert_eq!(
            plugin.action(&q, 0),
            Action::Redeliver {
                delay_ms: 1000,
                count: 1
            }
        );
        assert_eq!(
            plugin.action(&q, 1),
            Action::Redeliver {
                delay_ms: 2000,
                count: 2
            }
        );
        assert_eq!(plugin.action(&q, 2), Action::DeadLetter);
        // The entry: no maximum, exponential, capped.
        let o = Destination::queue("orders.eu");
        let delays: Vec<i64> = (0..5)
            .map(|n| match plugin.action(&o, n) {
                Action::Redeliver { delay_ms, .. } => delay_ms,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(delays, [1000, 2000, 4000, 5000, 5000]);
        let strict = RedeliveryPlugin {
            fallback_to_dead_letter: false,
            send_to_dlq_if_max_retries_exceeded: false,
            default_entry: None,
            ..plugin
        };
        assert_eq!(strict.action(&q, 0), Action::Drop);
        assert_eq!(
            strict.action(&o, 0),
            Action::Redeliver {
                delay_ms: 1000,
                count: 1
            }
        );
    }
}
