//! The check every run makes: each message carries who sent it, its sequence number and
//! when it was sent; consumers record what arrived, and at the end the tool compares
//! that with what the broker confirmed to the producers.
//!
//! * lost: confirmed to its producer, never received by the end of the drain (for a
//!   topic: by some subscriber; each subscriber must see each message);
//! * duplicate: received again without the broker's redelivered flag (a flagged repeat
//!   is what at-least-once delivery allows, and is counted apart);
//! * out of order: a first delivery of a producer's message after a later one of the same
//!   producer, on the same consumer, not flagged redelivered.

use serde::Serialize;

use Seen::*;

/// Body layout (little endian): producer id u32, run id u32, sequence u64, send time u64
/// (ns since the run's start, one clock for producers and consumers: one process).
/// The run id keeps leftovers of an earlier run on the same queue out of the check.
pub const HEADER: usize = 24;

/// Fills `body` (its length is the message size) with the header and filler.
pub fn encode(body: &mut [u8], producer: u32, run: u32, seq: u64, sent_ns: u64) {
    body[0..4].copy_from_slice(&producer.to_le_bytes());
    body[4..8].copy_from_slice(&run.to_le_bytes());
    body[8..16].copy_from_slice(&seq.to_le_bytes());
    body[16..24].copy_from_slice(&sent_ns.to_le_bytes());
}

/// A filler-only body of `size` bytes; printable, in case a broker treats it as text.
pub fn blank(size: usize) -> Vec<u8> {
    vec![b'x'; size]
}

/// What a received body says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub producer: u32,
    pub run: u32,
    pub seq: u64,
    pub sent_ns: u64,
}

pub fn decode(body: &[u8]) -> Option<Stamp> {
    let h = body.get(..HEADER)?;
    let u32_at = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
    let u64_at = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&h[i..i + 8]);
        u64::from_le_bytes(b)
    };
    Some(Stamp {
        producer: u32_at(0),
        run: u32_at(4),
        seq: u64_at(8),
        sent_ns: u64_at(16),
    })
}

/// How one reception was classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    First,
    /// Seen before, flagged redelivered by the broker.
    Redelivered,
    /// Seen before, not flagged: a real duplicate.
    Duplicate,
}

#[derive(Debug, Default, Clone)]
struct ProducerSeen {
    /// Receptions per sequence number, saturating at 255.
    count: Vec<u8>,
    duplicates: u64,
    redelivered: u64,
    out_of_order: u64,
}

/// Receptions of one audience: for a queue all consumers share one (a message must
/// reach one of them), for a topic each subscriber has its own.
#[derive(Debug, Default)]
pub struct Ledger {
    producers: Vec<ProducerSeen>,
    /// Bodies without our header or of another run.
    pub foreign: u64,
}

impl Ledger {
    pub fn new(producers: u32) -> Ledger {
        Ledger {
            producers: vec![ProducerSeen::default(); producers as usize],
            foreign: 0,
        }
    }

    /// Records one reception; None if the producer id is not one of this run's.
    pub fn record(&mut self, producer: u32, seq: u64, redelivered: bool) -> Option<Seen> {
        let p = self.producers.get_mut(producer as usize)?;
        let i = usize::try_from(seq).ok()?;
        if p.count.len() <= i {
            p.count.resize(i + 1, 0);
        }
        let before = p.count[i];
        p.count[i] = before.saturating_add(1);
        Some(match (before, redelivered) {
            (0, _) => First,
            (_, true) => {
                p.redelivered += 1;
                Redelivered
            }
            (_, false) => {
                p.duplicates += 1;
                Duplicate
            }
        })
    }

    /// Counts an out-of-order first delivery (the consumer knows its own order).
    pub fn out_of_order(&mut self, producer: u32) {
        if let Some(p) = self.producers.get_mut(producer as usize) {
            p.out_of_order += 1;
        }
    }

    fn received(&self, producer: usize, seq: usize) -> bool {
        self.producers[producer]
            .count
            .get(seq)
            .is_some_and(|&c| c > 0)
    }
}

/// Per consumer: the highest sequence seen from each producer, for the order check.
#[derive(Debug)]
pub struct Order {
    last: Vec<Option<u64>>,
}

impl Order {
    pub fn new(producers: u32) -> Order {
        Order {
            last: vec![None; producers as usize],
        }
    }

    /// True if `seq` (a first, unflagged delivery) comes after a later one.
    pub fn is_late(&mut self, producer: u32, seq: u64) -> bool {
        let Some(last) = self.last.get_mut(producer as usize) else {
            return false;
        };
        let late = last.is_some_and(|l| seq < l);
        if !late {
            *last = Some(seq);
        }
        late
    }
}

/// One producer's line in the report.
#[derive(Debug, Clone, Serialize)]
pub struct ProducerCheck {
    pub producer: u32,
    pub sent: u64,
    pub confirmed: u64,
    /// Confirmed and never received (summed over subscribers for a topic).
    pub lost: u64,
    pub duplicates: u64,
    pub redelivered: u64,
    pub out_of_order: u64,
    /// Received although its send was not confirmed (an error or timeout): allowed.
    pub received_unconfirmed: u64,
    /// The first few lost sequence numbers, to look for in broker logs.
    pub lost_examples: Vec<u64>,
}

/// The whole check.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// False when there was nothing to compare (no producers or no consumers).
    pub checked: bool,
    pub lost: u64,
    pub duplicates: u64,
    pub redelivered: u64,
    pub out_of_order: u64,
    pub received_unconfirmed: u64,
    pub foreign: u64,
    pub per_producer: Vec<ProducerCheck>,
}

impl CheckReport {
    /// The run's verdict: nothing lost, nothing duplicated without the flag.
    pub fn passed(&self) -> bool {
        self.lost == 0 && self.duplicates == 0
    }
}

/// Compares what producers got confirmed (`confirmed[p][seq]`, and `sent[p]`) with what
/// each audience received.
pub fn compare(confirmed: &[Vec<bool>], sent: &[u64], audiences: &[Ledger]) -> CheckReport {
    let checked = !confirmed.is_empty() && !audiences.is_empty();
    let mut per_producer = Vec::new();
    for (p, conf) in confirmed.iter().enumerate() {
        let mut line = ProducerCheck {
            producer: p as u32,
            sent: sent.get(p).copied().unwrap_or(0),
            confirmed: conf.iter().filter(|&&c| c).count() as u64,
            lost: 0,
            duplicates: 0,
            redelivered: 0,
            out_of_order: 0,
            received_unconfirmed: 0,
            lost_examples: Vec::new(),
        };
        for a in audiences {
            let seen = &a.producers[p];
            line.duplicates += seen.duplicates;
            line.redelivered += seen.redelivered;
            line.out_of_order += seen.out_of_order;
            for (seq, &c) in conf.iter().enumerate() {
                let got = a.received(p, seq);
                if c && !got {
                    line.lost += 1;
                    if line.lost_examples.len() < 10 {
                        line.lost_examples.push(seq as u64);
                    }
                } else if !c && got {
                    line.received_unconfirmed += 1;
                }
            }
        }
        per_producer.push(line);
    }
    let sum = |f: fn(&ProducerCheck) -> u64| per_producer.iter().map(f).sum();
    CheckReport {
        checked,
        lost: if checked { sum(|l| l.lost) } else { 0 },
        duplicates: sum(|l| l.duplicates),
        redelivered: sum(|l| l.redelivered),
        out_of_order: sum(|l| l.out_of_order),
        received_unconfirmed: sum(|l| l.received_unconfirmed),
        foreign: audiences.iter().map(|a| a.foreign).sum(),
        per_producer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_round_trip() {
        let mut b = blank(40);
        encode(&mut b, 3, 77, 123_456, 999);
        assert_eq!(
            decode(&b),
            Some(Stamp {
                producer: 3,
                run: 77,
                seq: 123_456,
                sent_ns: 999
            })
        );
        assert_eq!(decode(&b[..10]), None);
    }

    #[test]
    fn lost_duplicate_redelivered_out_of_order() {
        let mut l = Ledger::new(1);
        let mut o = Order::new(1);
        for seq in [0u64, 2, 1, 2, 3] {
            let redelivered = false;
            match l.record(0, seq, redelivered) {
                Some(Seen::First) if o.is_late(0, seq) => l.out_of_order(0),
                _ => {}
            }
        }
        assert_eq!(l.record(0, 3, true), Some(Seen::Redelivered));
        let confirmed = vec![vec![true, true, true, true, true]];
        let r = compare(&confirmed, &[5], &[l]);
        assert_eq!(r.lost, 1, "seq 4 never arrived");
        assert_eq!(r.per_producer[0].lost_examples, vec![4]);
        assert_eq!(r.duplicates, 1, "seq 2 twice, unflagged");
        assert_eq!(r.redelivered, 1);
        assert_eq!(r.out_of_order, 1, "1 after 2");
        assert!(!r.passed());
    }

    #[test]
    fn topic_each_subscriber_must_see_each_message() {
        let mut a = Ledger::new(1);
        let mut b = Ledger::new(1);
        a.record(0, 0, false);
        a.record(0, 1, false);
        b.record(0, 0, false);
        let r = compare(&[vec![true, true]], &[2], &[a, b]);
        assert_eq!(r.lost, 1);
        assert_eq!(r.duplicates, 0);
    }
}
