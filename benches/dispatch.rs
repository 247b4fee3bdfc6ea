//! Broker-core dispatch throughput, without I/O: `ShardCore` driven the way its shard
//! task drives it (`handle` one request, then `drain` the outputs), with an in-memory
//! journal sink that appends each record to a `Vec` (so no fdatasync; a persistent
//! message costs its record encoding and copy, not the disk).
//!
//! One cycle is: a producer sends a 1 KiB message (a JMS-style id, one string header);
//! the core delivers it; each consumer that got it acknowledges it (client-individual,
//! one `Ack` per delivery). Cycles run in batches of `PER_BATCH` (sends first, then the
//! acks, as a client acks what it has prefetched), below the prefetch of 1000, so every
//! send is delivered at once. Building the message (`Arc<Message>`, id string) is part
//! of the timed work, as it is a session's. Cases:
//!
//! * queue, 1 consumer;
//! * queue, 4 consumers (round robin);
//! * topic, 4 non-durable subscribers (never journaled, persistent or not);
//! * topic, 4 durable subscribers (persistent messages and their acks are journaled);
//! * queue, 2 selective consumers `region = 'eu'` / `region <> 'eu'`, each matching
//!   half (a lone consumer matching half would leave the other half on the queue, and
//!   every dispatch would scan them);
//! * topic, 1 subscriber with `region = 'eu'` (half the messages are not for it).
//!
//! each non-persistent and persistent. Prints messages sent/s, deliveries/s, and the
//! median and p99 over batches of the mean time per cycle (one send with its
//! deliveries and acks).
//!
//! Run: `cargo bench --bench dispatch` (plain `main`, no harness; about 10 s).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use tandem::broker::core::{JournalSink, Output, ShardCore};
use tandem::broker::{
    AckMode, BrokerError, BrokerSettings, ConnId, Destination, DurableName, Message, MessageRef,
    Reply, ReplyTo, Request, SubKey, SubscribeSpec,
};
use tandem::store::{Location, Position};

const BODY_BYTES: usize = 1024;
const PREFETCH: u32 = 1_000;
const PER_BATCH: usize = 100;
const WARMUP_BATCHES: usize = 100;
/// A "segment" of the in-memory journal: the buffer is emptied when it is full, so
/// the run's memory stays bounded (nothing reads records back here).
const SEGMENT_BYTES: usize = 32 * 1024 * 1024;

/// The journal, in memory: each record is copied to the end of a buffer.
#[derive(Default)]
struct VecJournal {
    buf: Vec<u8>,
    end: u64,
    records: u64,
}

impl JournalSink for VecJournal {
    fn append(&mut self, payload: &[u8]) -> Result<(Location, Position), BrokerError> {
        if self.buf.len() + payload.len() > SEGMENT_BYTES {
            self.buf.clear();
        }
        let loc = Location {
            segment: 1 + self.end / SEGMENT_BYTES as u64,
            offset: self.end as u32,
            len: payload.len() as u32,
        };
        self.buf.extend_from_slice(payload);
        self.end += payload.len() as u64;
        self.records += 1;
        Ok((loc, Position(self.end)))
    }

    fn end(&self) -> Position {
        Position(self.end)
    }
}

struct Consumer {
    selector: Option<&'static str>,
    durable: bool,
}

struct Case {
    name: &'static str,
    destination: Destination,
    consumers: Vec<Consumer>,
    /// Deliveries per send, on average.
    fan_out: f64,
    batches: usize,
}

fn plain(n: usize) -> Vec<Consumer> {
    (0..n)
        .map(|_| Consumer {
            selector: None,
            durable: false,
        })
        .collect()
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "queue, 1 consumer",
            destination: Destination::queue("bench.q1"),
            consumers: plain(1),
            fan_out: 1.0,
            batches: 2_000,
        },
        Case {
            name: "queue, 4 consumers",
            destination: Destination::queue("bench.q4"),
            consumers: plain(4),
            fan_out: 1.0,
            batches: 2_000,
        },
        Case {
            name: "topic, 4 subscribers",
            destination: Destination::topic("bench.t4"),
            consumers: plain(4),
            fan_out: 4.0,
            batches: 1_000,
        },
        Case {
            name: "topic, 4 durable subscribers",
            destination: Destination::topic("bench.t4d"),
            consumers: (0..4)
                .map(|_| Consumer {
                    selector: None,
                    durable: true,
                })
                .collect(),
            fan_out: 4.0,
            batches: 1_000,
        },
        Case {
            name: "queue, 2 selective (1/2 each)",
            destination: Destination::queue("bench.qsel"),
            consumers: vec![
                Consumer {
                    selector: Some("region = 'eu'"),
                    durable: false,
                },
                Consumer {
                    selector: Some("region <> 'eu'"),
                    durable: false,
                },
            ],
            fan_out: 1.0,
            batches: 2_000,
        },
        Case {
            name: "topic, 1 selective (1/2)",
            destination: Destination::topic("bench.tsel"),
            consumers: vec![Consumer {
                selector: Some("region = 'eu'"),
                durable: false,
            }],
            fan_out: 0.5,
            batches: 2_000,
        },
    ]
}

fn key(n: u64) -> SubKey {
    SubKey {
        conn: ConnId {
            shard: 0,
            serial: n,
        },
        sub: 1,
    }
}

fn reply(token: u64) -> Reply {
    Reply {
        to: ReplyTo::Conn(ConnId {
            shard: 0,
            serial: 1_000,
        }),
        token,
    }
}

fn message(destination: &Destination, n: u64, persistent: bool, body: &Bytes) -> MessageRef {
    Arc::new(Message {
        id: format!("ID:bench-host-40915-1732612345678-1:1:1:1:{n}"),
        destination: destination.clone(),
        persistent,
        priority: 4,
        timestamp_ms: 1_732_612_345_678,
        expires_ms: 0,
        reply_to: None,
        headers: vec![(
            "region".into(),
            if n.is_multiple_of(2) { "eu" } else { "us" }.into(),
        )],
        body: body.clone(),
        body_type: Default::default(),
        properties: Vec::new(),
    })
}

struct Run {
    sends: u64,
    deliveries: u64,
    records: u64,
    elapsed: Duration,
    /// Mean ns per cycle of each batch.
    per_cycle_ns: Histogram<u64>,
}

fn run(case: &Case, persistent: bool) -> Run {
    let mut core = ShardCore::new(0, 1, Arc::new(BrokerSettings::default()));
    let mut journal = VecJournal::default();
    for (i, c) in case.consumers.iter().enumerate() {
        core.handle(
            Request::Subscribe {
                sub: key(1 + i as u64),
                spec: SubscribeSpec {
                    destination: case.destination.clone(),
                    ack: AckMode::ClientIndividual,
                    prefetch: PREFETCH,
                    durable: c.durable.then(|| DurableName {
                        client_id: format!("bench-client-{i}"),
                        name: "bench".into(),
                    }),
                    selector: c.selector.map(String::from),
                    temp_owner: None,
                    exclusive: false,
                    priority: 0,
                },
                reply: reply(0),
            },
            &mut journal,
        );
        core.drain();
    }

    let body = Bytes::from(vec![b'x'; BODY_BYTES]);
    let mut delivered: Vec<(SubKey, Destination, u64)> = Vec::with_capacity(4 * PER_BATCH);
    let mut result = Run {
        sends: 0,
        deliveries: 0,
        records: 0,
        elapsed: Duration::ZERO,
        per_cycle_ns: Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("histogram"),
    };
    let mut n = 0u64;
    for batch in 0..WARMUP_BATCHES + case.batches {
        let records_before = journal.records;
        let start = Instant::now();
        for _ in 0..PER_BATCH {
            n += 1;
            core.handle(
                Request::Send {
                    msg: message(&case.destination, n, persistent, &body),
                    reply: reply(n),
                },
                &mut journal,
            );
            for o in core.drain() {
                match o {
                    Output::Deliver {
                        sub,
                        destination,
                        seq,
                        ..
                    } => delivered.push((sub, destination, seq)),
                    Output::Reply { result, .. } => {
                        result.expect("send accepted");
                    }
                    other => panic!("unexpected output {other:?}"),
                }
            }
        }
        let deliveries = delivered.len();
        for (sub, destination, seq) in delivered.drain(..) {
            core.handle(
                Request::Ack {
                    sub,
                    destination,
                    seqs: vec![seq],
                    reply: None,
                },
                &mut journal,
            );
            black_box(core.drain());
        }
        let elapsed = start.elapsed();
        assert_eq!(
            deliveries,
            (PER_BATCH as f64 * case.fan_out) as usize,
            "{}: every send is delivered at once",
            case.name
        );
        if batch >= WARMUP_BATCHES {
            result.sends += PER_BATCH as u64;
            result.deliveries += deliveries as u64;
            result.records += journal.records - records_before;
            result.elapsed += elapsed;
            let ns = (elapsed.as_nanos() as u64 / PER_BATCH as u64).max(1);
            result.per_cycle_ns.record(ns).expect("in range");
        }
    }
    assert_eq!(core.depth(&case.destination), 0, "{}: all acked", case.name);
    result
}

fn main() {
    println!(
        "\ndispatch: ShardCore send -> deliver -> ack, {BODY_BYTES}-byte bodies, prefetch \
         {PREFETCH}, client-individual acks, in-memory journal; {PER_BATCH} cycles per batch, \
         ns/cycle = mean of a batch, p50/p99 over batches\n"
    );
    println!(
        "| case | persistent | sends | sends/s | deliveries/s | records/send | ns/cycle p50 | ns/cycle p99 |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for case in cases() {
        for persistent in [false, true] {
            let r = run(&case, persistent);
            let secs = r.elapsed.as_secs_f64();
            println!(
                "| {} | {} | {} | {:.0} | {:.0} | {:.1} | {} | {} |",
                case.name,
                if persistent { "yes" } else { "no" },
                r.sends,
                r.sends as f64 / secs,
                r.deliveries as f64 / secs,
                r.records as f64 / r.sends as f64,
                r.per_cycle_ns.value_at_quantile(0.5),
                r.per_cycle_ns.value_at_quantile(0.99),
            );
        }
    }
}
