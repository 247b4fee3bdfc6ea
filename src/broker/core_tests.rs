//! Deterministic tests of the shard core: requests in, outputs out, journal in memory.
//! The recovery tests replay what a core journaled into a fresh core, the way a
//! restart (or a slave) does, and compare.

use std::sync::Arc;

use bytes::Bytes;

use super::core::{Body, JournalSink, Output, ShardCore};
use super::destination::{DestKind, Destination};
use super::message::{Message, MessageRef};
use super::ops::*;
use super::record::Record;
use super::settings::BrokerSettings;
use crate::store::{Location, Position};

#[derive(Default)]
struct MemJournal {
    records: Vec<(Location, Bytes)>,
    end: u64,
}

impl JournalSink for MemJournal {
    fn append(&mut self, payload: &[u8]) -> Result<(Location, Position), BrokerError> {
        let loc = Location {
            segment: 1 + self.records.len() as u64 / 10,
            offset: self.end as u32,
            len: payload.len() as u32,
        };
        self.end += payload.len() as u64;
        self.records.push((loc, Bytes::copy_from_slice(payload)));
        Ok((loc, Position(self.end)))
    }
    fn end(&self) -> Position {
        Position(self.end)
    }
}

fn core() -> ShardCore {
    ShardCore::new(0, 1, Arc::new(BrokerSettings::default()))
}

fn conn(n: u64) -> ConnId {
    ConnId {
        shard: 0,
        serial: n,
    }
}
fn sub(c: u64, s: u64) -> SubKey {
    SubKey {
        conn: conn(c),
        sub: s,
    }
}
fn reply(token: u64) -> Reply {
    Reply {
        to: ReplyTo::Conn(conn(99)),
        token,
    }
}
fn msg(dest: Destination, body: &str, persistent: bool) -> MessageRef {
    Arc::new(Message {
        id: format!("ID:test-{body}"),
        destination: dest,
        persistent,
        priority: 4,
        timestamp_ms: 1,
        expires_ms: 0,
        reply_to: None,
        headers: vec![],
        body: Bytes::copy_from_slice(body.as_bytes()),
        body_type: Default::default(),
        properties: Vec::new(),
    })
}
fn subscribe(c: &mut ShardCore, j: &mut MemJournal, key: SubKey, dest: Destination, prefetch: u32) {
    c.handle(
        Request::Subscribe {
            sub: key,
            spec: SubscribeSpec {
                destination: dest,
                ack: AckMode::ClientIndividual,
                prefetch,
                durable: None,
                selector: None,
                temp_owner: None,
                exclusive: false,
                priority: 0,
            },
            reply: reply(0),
        },
        j,
    );
}
/// The (sub, seq, body) of every delivery in `out`.
fn deliveries(out: &[Output]) -> Vec<(SubKey, u64, String)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Deliver { sub, seq, body, .. } => {
                let text = match body {
                    Body::Memory(m) => String::from_utf8_lossy(&m.body).into_owned(),
                    Body::Disk(_) => "<disk>".into(),
                };
                Some((*sub, *seq, text))
            }
            _ => None,
        })
        .collect()
}

fn replay(j: &MemJournal) -> ShardCore {
    let mut c = core();
    for (loc, payload) in &j.records {
        c.apply(Record::decode(payload).expect("decodes"), Some(*loc));
    }
    c.finish_recovery();
    c
}

#[test]
fn persistent_send_replies_after_durability_and_survives_replay() {
    let mut c = core();
    let mut j = MemJournal::default();
    let q = Destination::queue("a");
    for i in 0..3 {
        c.handle(
            Request::Send {
                msg: msg(q.clone(), &format!("m{i}"), true),
                reply: reply(i),
            },
            &mut j,
        );
    }
    let out = c.drain();
    let durable: Vec<Option<Position>> = out
        .iter()
        .filter_map(|o| match o {
            Output::Reply { durable_at, .. } => Some(*durable_at),
            _ => None,
        })
        .collect();
    assert_eq!(durable.len(), 3);
    assert!(
        durable.iter().all(|d| d.is_some()),
        "persistent sends wait for the disk"
    );
    assert_eq!(replay(&j).depth(&q), 3);
}

#[test]
fn queue_delivers_in_order_round_robin_and_acks_are_durable() {
    let mut c = core();
    let mut j = MemJournal::default();
    let q = Destination::queue("a");
    subscribe(&mut c, &mut j, sub(1, 1), q.clone(), 10);
    subscribe(&mut c, &mut j, sub(2, 1), q.clone(), 10);
    c.drain();
    for i in 0..4 {
        c.handle(
            Request::Send {
                msg: msg(q.clone(), &format!("m{i}"), true),
                reply: reply(i),
            },
            &mut j,
        );
    }
    let d = deliveries(&c.drain());
    assert_eq!(
        d,
        vec![
            (sub(1, 1), 1, "m0".into()),
            (sub(2, 1), 2, "m1".into()),
            (sub(1, 1), 3, "m2".into()),
            (sub(2, 1), 4, "m3".into()),
        ]
    );
    c.handle(
        Request::Ack {
            sub: sub(1, 1),
            destination: q.clone(),
            seqs: vec![1, 3],
            reply: None,
        },
        &mut j,
    );
    // A foreign acknowledgement (seq 2 belongs to the other consumer) is ignored.
    c.handle(
        Request::Ack {
            sub: sub(1, 1),
            destination: q.clone(),
            seqs: vec![2],
            reply: None,
        },
        &mut j,
    );
    c.drain();
    assert_eq!(c.depth(&q), 2);
    let mut r = replay(&j);
    assert_eq!(r.depth(&q), 2);
    subscribe(&mut r, &mut j, sub(3, 1), q.clone(), 10);
    let seqs: Vec<u64> = deliveries(&r.drain()).iter().map(|d| d.1).collect();
    assert_eq!(
        seqs,
        vec![2, 4],
        "only unacknowledged messages come back, in order"
    );
}

#[test]
fn closing_a_connection_redelivers_flagged_in_order() {
    let mut c = core();
    let mut j = MemJournal::default();
    let q = Destination::queue("a");
    subscribe(&mut c, &mut j, sub(1, 1), q.clone(), 1);
    for i in 0..2 {
        c.handle(
            Request::Send {
                msg: msg(q.clone(), &format!("m{i}"), false),
                reply: reply(i),
            },
            &mut j,
        );
    }
    assert_eq!(deliveries(&c.drain()).len(), 1, "prefetch 1");
    c.handle(Request::ConnectionClosed { conn: conn(1) }, &mut j);
    subscribe(&mut c, &mut j, sub(2, 1), q.clone(), 10);
    let out = c.drain();
    let got: Vec<(u64, u32)> = out
        .iter()
        .filter_map(|o| match o {
            Output::Deliver {
                seq, redeliveries, ..
            } => Some((*seq, *redeliveries)),
            _ => None,
        })
        .collect();
    assert_eq!(got, vec![(1, 1), (2, 0)]);
}

#[test]
fn transaction_commit_is_one_record_and_all_or_nothing_on_replay() {
    let mut c = core();
    let mut j = MemJournal::default();
    let q = Destination::queue("a");
    let ops = (0..5)
        .map(|i| TxOp::Send(msg(q.clone(), &format!("t{i}"), true)))
        .collect();
    c.handle(
        Request::Commit {
            ops,
            reply: reply(1),
        },
        &mut j,
    );
    c.drain();
    assert_eq!(j.records.len(), 1);
    assert_eq!(c.depth(&q), 5);
    assert_eq!(replay(&j).depth(&q), 5);
    // A torn journal loses the whole transaction, never part of it.
    let torn = MemJournal::default();
    assert_eq!(replay(&torn).depth(&q), 0);
}

#[test]
fn prepared_transaction_waits_for_its_outcome() {
    let mut c = core();
    let mut j = MemJournal::default();
    let q = Destination::queue("a");
    let ops = vec![TxOp::Send(msg(q.clone(), "p", true))];
    c.handle(
        Request::Prepare {
            gtx: 7,
            ops,
            reply: reply(1),
        },
        &mut j,
    );
    c.drain();
    assert_eq!(c.depth(&q), 0, "invisible until resolved");
    // After a crash the participant asks every shard; the answer decides.
    let mut r = replay(&j);
    let queries = r
        .drain()
        .into_iter()
        .filter(|o| {
            matches!(
                o,
                Output::Post {
                    request: Request::QueryOutcome { .. },
                    ..
                }
            )
        })
        .count();
    assert_eq!(queries, 1);
    c.handle(
        Request::Resolve {
            gtx: 7,
            commit: true,
            reply: reply(2),
        },
        &mut j,
    );
    c.drain();
    assert_eq!(c.depth(&q), 1);
    assert_eq!(replay(&j).depth(&q), 1);
}

#[test]
fn durable_subscription_keeps_messages_while_away() {
    let mut c = core();
    let mut j = MemJournal::default();
    let t = Destination::topic("t");
    let name = DurableName {
        client_id: "c1".into(),
        name: "s1".into(),
    };
    let spec = SubscribeSpec {
        destination: t.clone(),
        ack: AckMode::Client,
        prefetch: 10,
        durable: Some(name.clone()),
        selector: None,
        temp_owner: None,
        exclusive: false,
        priority: 0,
    };
    c.handle(
        Request::Subscribe {
            sub: sub(1, 1),
            spec: spec.clone(),
            reply: reply(0),
        },
        &mut j,
    );
    c.handle(Request::ConnectionClosed { conn: conn(1) }, &mut j);
    c.handle(
        Request::Send {
            msg: msg(t.clone(), "while-away", true),
            reply: reply(1),
        },
        &mut j,
    );
    c.drain();
    let mut r = replay(&j);
    r.handle(
        Request::Subscribe {
            sub: sub(2, 1),
            spec,
            reply: reply(2),
        },
        &mut j,
    );
    let d = deliveries(&r.drain());
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].2, "while-away");
}

#[test]
fn nack_moves_to_the_dead_letter_queue() {
    let mut c = core();
    let mut j = MemJournal::default();
    let q = Destination::queue("a");
    subscribe(&mut c, &mut j, sub(1, 1), q.clone(), 10);
    c.handle(
        Request::Send {
            msg: msg(q.clone(), "bad", true),
            reply: reply(1),
        },
        &mut j,
    );
    c.drain();
    c.handle(
        Request::Nack {
            sub: sub(1, 1),
            destination: q.clone(),
            seqs: vec![1],
            reply: None,
        },
        &mut j,
    );
    let out = c.drain();
    let token = out
        .iter()
        .find_map(|o| match o {
            Output::DeadLetter { token, .. } => Some(*token),
            _ => None,
        })
        .expect("a dead-letter move");
    assert_eq!(c.depth(&q), 1, "kept until the DLQ has it");
    c.on_internal_done(token, Ok(()), &mut j);
    assert_eq!(c.depth(&q), 0);
    assert_eq!(replay(&j).depth(&q), 0);
}

/// NACKs message 1 of `q` (sent with `persistent`) and returns where the dead-letter
/// move goes, or `None` when the message was dropped instead.
fn nack_one(c: &mut ShardCore, q: &Destination, persistent: bool) -> Option<Destination> {
    let mut j = MemJournal::default();
    subscribe(c, &mut j, sub(1, 1), q.clone(), 10);
    c.handle(
        Request::Send {
            msg: msg(q.clone(), "bad", persistent),
            reply: reply(1),
        },
        &mut j,
    );
    c.drain();
    c.handle(
        Request::Nack {
            sub: sub(1, 1),
            destination: q.clone(),
            seqs: vec![1],
            reply: None,
        },
        &mut j,
    );
    let to = c.drain().into_iter().find_map(|o| match o {
        Output::DeadLetter { to, .. } => Some(to),
        _ => None,
    });
    if to.is_none() {
        assert_eq!(c.depth(q), 0, "a dropped message is gone at once");
    }
    to
}

#[test]
fn the_destination_policy_says_where_and_whether_a_message_is_dead_lettered() {
    use super::policy::*;
    let individual = DeadLetterStrategy {
        target: DeadLetterTarget::Individual(Individual {
            queue_prefix: "DLQ.".into(),
            ..Individual::default()
        }),
        process_expired: true,
        process_non_persistent: true,
    };
    let entry = |pattern: &str, dl: DeadLetterStrategy| {
        (
            PolicyDestination {
                kind: DestKind::Queue,
                pattern: pattern.into(),
            },
            PolicyEntry {
                dead_letter: Some(dl),
                ..PolicyEntry::default()
            },
        )
    };
    let settings = BrokerSettings {
        policies: Arc::new(PolicyMap::new(
            vec![
                entry("orders.>", individual),
                entry(
                    "shared.>",
                    DeadLetterStrategy::shared(Destination::queue("shared.dlq")),
                ),
            ],
            None,
            Destination::dead_letter_queue(),
        )),
        ..BrokerSettings::default()
    };
    let c = || ShardCore::new(0, 1, Arc::new(settings.clone()));
    let orders = Destination::queue("orders.eu");
    assert_eq!(
        nack_one(&mut c(), &orders, true),
        Some(Destination::queue("DLQ.orders.eu"))
    );
    // processNonPersistent="true": a non-persistent message is dead-lettered too...
    assert_eq!(
        nack_one(&mut c(), &orders, false),
        Some(Destination::queue("DLQ.orders.eu"))
    );
    // ...by default it is dropped.
    assert_eq!(
        nack_one(&mut c(), &Destination::queue("other"), false),
        None
    );
    assert_eq!(
        nack_one(&mut c(), &Destination::queue("other"), true),
        Some(Destination::dead_letter_queue())
    );
    // A message on its own dead-letter queue is dropped, not moved onto itself.
    assert_eq!(
        nack_one(&mut c(), &Destination::queue("shared.dlq"), true),
        None
    );
    assert_eq!(
        nack_one(&mut c(), &Destination::dead_letter_queue(), true),
        None
    );
}

#[test]
fn a_non_persistent_dead_letter_copy_is_made_persistent_and_marked() {
    let m = msg(Destination::queue("a"), "x", false);
    let copy = super::core::dead_letter_copy(&m, "Delivery[NACK]", &Destination::queue("DLQ.a"));
    assert!(copy.persistent);
    assert_eq!(copy.destination, Destination::queue("DLQ.a"));
    assert_eq!(copy.header("originalDeliveryMode"), Some("NON_PERSISTENT"));
    assert_eq!(copy.header("originalDestination"), Some("/queue/a"));
}

#[test]
fn memory_limit_pages_persistent_bodies_and_blocks_non_persistent_producers() {
    let settings = BrokerSettings {
        shard_memory_limit_bytes: 4096,
        ..BrokerSettings::default()
    };
    let mut c = ShardCore::new(0, 1, Arc::new(settings));
    let mut j = MemJournal::default();
    let q = Destination::queue("a");
    let big = "x".repeat(1000);
    for i in 0..20 {
        c.handle(
            Request::Send {
                msg: msg(q.clone(), &big, true),
                reply: reply(i),
            },
            &mut j,
        );
    }
    assert!(c.mem_used() <= 4096, "bodies beyond the limit stay on disk");
    let np = Destination::queue("np");
    for i in 0..10 {
        c.handle(
            Request::Send {
                msg: msg(np.clone(), &big, false),
                reply: reply(100 + i),
            },
            &mut j,
        );
    }
    let replies = c
        .drain()
        .iter()
        .filter(|o| matches!(o, Output::Reply { reply, .. } if reply.token >= 100))
        .count();
    assert!(
        replies < 10,
        "non-persistent producers are held back over the limit"
    );
    subscribe(&mut c, &mut j, sub(1, 1), q.clone(), 100);
    let d = deliveries(&c.drain());
    assert_eq!(d.len(), 20);
    assert!(
        d.iter().any(|x| x.2 == "<disk>"),
        "paged bodies are read back"
    );
}

#[test]
fn selectors_route_messages_and_bad_ones_are_refused() {
    let mut c = core();
    let mut j = MemJournal::default();
    let q = Destination::queue("sel");
    let spec = |selector: &str| SubscribeSpec {
        destination: q.clone(),
        ack: AckMode::ClientIndividual,
        prefetch: 10,
        durable: None,
        selector: Some(selector.into()),
        temp_owner: None,
        exclusive: false,
        priority: 0,
    };
    c.handle(
        Request::Subscribe {
            sub: sub(1, 1),
            spec: spec("colour = 'red'"),
            reply: reply(1),
        },
        &mut j,
    );
    c.handle(
        Request::Subscribe {
            sub: sub(2, 1),
            spec: spec("colour = 'blue'"),
            reply: reply(2),
        },
        &mut j,
    );
    c.handle(
        Request::Subscribe {
            sub: sub(3, 1),
            spec: spec("colour = = 'x'"),
            reply: reply(3),
        },
        &mut j,
    );
    let refused = c.drain().into_iter().any(|o| {
        matches!(o, Output::Reply { reply, result: Err(BrokerError::InvalidSelector(_)), .. } if reply.token == 3)
    });
    assert!(refused, "an invalid selector is refused");
    for (i, colour) in ["red", "blue", "red", "green"].iter().enumerate() {
        let mut m = (*msg(q.clone(), &format!("m{i}"), false)).clone();
        m.headers.push(("colour".into(), (*colour).into()));
        c.handle(
            Request::Send {
                msg: Arc::new(m),
                reply: reply(10 + i as u64),
            },
            &mut j,
        );
    }
    let d = deliveries(&c.drain());
    assert_eq!(
        d,
        vec![
            (sub(1, 1), 1, "m0".into()),
            (sub(2, 1), 2, "m1".into()),
            (sub(1, 1), 3, "m2".into()),
        ],
        "green matches nobody and waits"
    );
    assert_eq!(c.depth(&q), 4);
}

#[test]
fn selective_consumers_get_paged_out_messages_read_back() {
    let settings = BrokerSettings {
        shard_memory_limit_bytes: 2048,
        ..BrokerSettings::default()
    };
    let mut c = ShardCore::new(0, 1, Arc::new(settings));
    let mut j = MemJournal::default();
    let q = Destination::queue("paged");
    let mut sent = Vec::new();
    for i in 0..6 {
        let mut m = (*msg(q.clone(), &"y".repeat(900), true)).clone();
        m.headers.push(("n".into(), i.to_string()));
        let m = Arc::new(m);
        sent.push(m.clone());
        c.handle(
            Request::Send {
                msg: m,
                reply: reply(i),
            },
            &mut j,
        );
    }
    c.drain();
    c.handle(
        Request::Subscribe {
            sub: sub(1, 1),
            spec: SubscribeSpec {
                destination: q.clone(),
                ack: AckMode::ClientIndividual,
                prefetch: 10,
                durable: None,
                selector: Some("n = '5'".into()),
                temp_owner: None,
                exclusive: false,
                priority: 0,
            },
            reply: reply(100),
        },
        &mut j,
    );
    let out = c.drain();
    let page_ins: Vec<(u64, u64)> = out
        .iter()
        .filter_map(|o| match o {
            Output::PageIn { seq, token, .. } => Some((*seq, *token)),
            _ => None,
        })
        .collect();
    assert!(
        page_ins.iter().any(|(seq, _)| *seq == 6),
        "the last message is on disk"
    );
    for (seq, token) in page_ins {
        c.paged_in(token, Some(sent[seq as usize - 1].clone()));
    }
    let d = deliveries(&c.drain());
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].1, 6);
}

#[test]
fn destination_stats_count_accepted_and_removed_messages() {
    let mut c = core();
    let mut j = MemJournal::default();
    let q = Destination::queue("counted");
    subscribe(&mut c, &mut j, sub(1, 1), q.clone(), 10);
    for i in 0..3 {
        c.handle(
            Request::Send {
                msg: msg(q.clone(), &format!("m{i}"), true),
                reply: reply(i),
            },
            &mut j,
        );
    }
    c.drain();
    c.handle(
        Request::Ack {
            sub: sub(1, 1),
            destination: q.clone(),
            seqs: vec![1, 2],
            reply: None,
        },
        &mut j,
    );
    c.handle(
        Request::Nack {
            sub: sub(1, 1),
            destination: q.clone(),
            seqs: vec![3],
            reply: None,
        },
        &mut j,
    );
    let token = c
        .drain()
        .iter()
        .find_map(|o| match o {
            Output::DeadLetter { token, .. } => Some(*token),
            _ => None,
        })
        .expect("a dead-letter move");
    c.on_internal_done(token, Ok(()), &mut j);
    let stats = c.destination_stats();
    let s = stats
        .iter()
        .find(|s| s.name == "/queue/counted")
        .expect("the queue is listed");
    assert_eq!((s.depth, s.enqueued, s.dequeued, s.consumers), (0, 3, 3, 1));
    // Replayed records are history, not new traffic: a restarted core starts at zero.
    let r = replay(&j);
    let restarted = r.destination_stats();
    let s = restarted
        .iter()
        .find(|s| s.name == "/queue/counted")
        .expect("the queue is recovered");
    assert_eq!((s.depth, s.enqueued, s.dequeued), (0, 0, 0));
}

fn send(c: &mut ShardCore, j: &mut MemJournal, dest: &Destination, body: &str, persistent: bool) {
    c.handle(
        Request::Send {
            msg: msg(dest.clone(), body, persistent),
            reply: reply(0),
        },
        j,
    );
}

fn stats_of(c: &ShardCore, name: &str) -> Option<crate::metrics::DestinationStats> {
    c.destination_stats().into_iter().find(|s| s.name == name)
}

#[test]
fn purge_removes_every_message_once_journaled_and_replay_agrees() {
    let mut c = core();
    let mut j = MemJournal::default();
    let q = Destination::queue("p");
    let other = Destination::queue("kept");
    subscribe(&mut c, &mut j, sub(1, 1), q.clone(), 2);
    for i in 0..5 {
        send(&mut c, &mut j, &q, &format!("m{i}"), true);
    }
    send(&mut c, &mut j, &q, "np", false);
    send(&mut c, &mut j, &other, "k", true);
    assert_eq!(deliveries(&c.drain()).len(), 2, "prefetch 2: two in flight");
    let before = j.records.len();

    let (removed, ticket) = c.purge_queue(&q, &mut j).expect("purge");
    assert_eq!(
        removed, 6,
        "ready, in-flight and non-persistent messages all go"
    );
    assert_eq!(j.records.len(), before + 1, "one record");
    assert_eq!(
        Record::decode(&j.records[before].1).unwrap(),
        Record::Purge {
            destination: q.clone()
        }
    );
    assert_eq!(
        ticket,
        Some(Position(j.end)),
        "the caller waits for the record"
    );
    assert_eq!(c.depth(&q), 0);
    assert_eq!(c.depth(&other), 1, "other queues are untouched");
    let s = stats_of(&c, "/queue/p").expect("a purged queue still exists");
    assert_eq!((s.depth, s.dequeued, s.consumers), (0, 6, 1));
    // The consumer's prefetch slots were freed by the purge: a new message goes out,
    // and the purged ones never do.
    send(&mut c, &mut j, &q, "after", true);
    assert_eq!(deliveries(&c.drain()), vec![(sub(1, 1), 7, "after".into())]);
    // An acknowledgement of a purged delivery is ignored.
    c.handle(
        Request::Ack {
            sub: sub(1, 1),
            destination: q.clone(),
            seqs: vec![1],
            reply: None,
        },
        &mut j,
    );
    c.drain();
    assert_eq!(c.depth(&q), 1);

    let r = replay(&j);
    assert_eq!(r.depth(&q), 1, "only the message sent after the purge");
    assert_eq!(r.depth(&other), 1);
    // A purged queue's memory is given back.
    let mut empty = core();
    let mut ej = MemJournal::default();
    send(&mut empty, &mut ej, &q, "x", false);
    assert!(empty.mem_used() > 0);
    empty.purge_queue(&q, &mut ej).unwrap();
    assert_eq!(empty.mem_used(), 0);
}

#[test]
fn purge_and_delete_refuse_unknown_queues_and_topics_without_journaling() {
    let mut c = core();
    let mut j = MemJournal::default();
    let t = Destination::topic("t");
    send(&mut c, &mut j, &t, "x", true);
    let before = j.records.len();
    let missing = Destination::queue("missing");
    assert_eq!(
        c.purge_queue(&missing, &mut j),
        Err(BrokerError::NoSuchDestination("/queue/missing".into()))
    );
    assert_eq!(
        c.delete_queue(&missing, &mut j),
        Err(BrokerError::NoSuchDestination("/queue/missing".into()))
    );
    assert_eq!(
        c.purge_queue(&t, &mut j),
        Err(BrokerError::NotAQueue("/topic/t".into()))
    );
    assert_eq!(
        c.delete_queue(&t, &mut j),
        Err(BrokerError::NotAQueue("/topic/t".into()))
    );
    assert_eq!(j.records.len(), before, "nothing journaled");
}

#[test]
fn delete_removes_the_queue_refuses_while_consumed_and_replay_agrees() {
    let mut c = core();
    let mut j = MemJournal::default();
    let q = Destination::queue("d");
    subscribe(&mut c, &mut j, sub(1, 1), q.clone(), 1);
    for i in 0..4 {
        send(&mut c, &mut j, &q, &format!("m{i}"), true);
    }
    c.drain();
    let before = j.records.len();
    match c.delete_queue(&q, &mut j) {
        Err(BrokerError::QueueInUse(why)) => {
            assert_eq!(why, "queue /queue/d has 1 consumer; close it first")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(j.records.len(), before);
    assert_eq!(c.depth(&q), 4);

    c.handle(Request::ConnectionClosed { conn: conn(1) }, &mut j);
    c.drain();
    let (removed, ticket) = c.delete_queue(&q, &mut j).expect("delete");
    assert_eq!(removed, 4);
    assert_eq!(ticket, Some(Position(j.end)));
    assert_eq!(
        Record::decode(&j.records.last().unwrap().1).unwrap(),
        Record::DeleteQueue {
            destination: q.clone()
        }
    );
    assert!(stats_of(&c, "/queue/d").is_none(), "no longer listed");
    assert_eq!(c.mem_used(), 0);
    assert_eq!(
        c.purge_queue(&q, &mut j),
        Err(BrokerError::NoSuchDestination("/queue/d".into())),
        "gone"
    );
    let r = replay(&j);
    assert!(
        stats_of(&r, "/queue/d").is_none(),
        "gone after a restart too"
    );
    assert_eq!(r.depth(&q), 0);

    // A later send creates it afresh, as ActiveMQ does; replay agrees.
    send(&mut c, &mut j, &q, "new", true);
    c.drain();
    let s = stats_of(&c, "/queue/d").expect("recreated");
    assert_eq!((s.depth, s.enqueued), (1, 1));
    let mut r = replay(&j);
    assert_eq!(r.depth(&q), 1);
    subscribe(&mut r, &mut j, sub(2, 1), q.clone(), 10);
    let got: Vec<String> = deliveries(&r.drain()).into_iter().map(|d| d.2).collect();
    assert_eq!(got, vec!["new".to_string()], "none of the deleted messages");
}

#[test]
fn delete_is_refused_while_a_prepared_transaction_holds_the_queue() {
    let mut c = core();
    let mut j = MemJournal::default();
    let q = Destination::queue("tx");
    send(&mut c, &mut j, &q, "m", true);
    c.handle(
        Request::Prepare {
            gtx: 9,
            ops: vec![TxOp::Send(msg(q.clone(), "p", true))],
            reply: reply(1),
        },
        &mut j,
    );
    c.drain();
    match c.delete_queue(&q, &mut j) {
        Err(BrokerError::QueueInUse(why)) => {
            assert!(why.contains("1 prepared transaction"), "{why}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Purging is allowed: the prepared send arrives after it.
    assert_eq!(c.purge_queue(&q, &mut j).unwrap().0, 1);
    c.handle(
        Request::Resolve {
            gtx: 9,
            commit: true,
            reply: reply(2),
        },
        &mut j,
    );
    c.drain();
    assert_eq!(c.depth(&q), 1);
    assert_eq!(replay(&j).depth(&q), 1);
    assert_eq!(c.delete_queue(&q, &mut j).unwrap().0, 1);
    assert!(stats_of(&replay(&j), "/queue/tx").is_none());
}

#[test]
fn set_prefetch_opens_and_closes_a_consumers_window() {
    let mut c = core();
    let mut j = MemJournal::default();
    let q = Destination::queue("pull");
    // Prefetch 0: a pull consumer gets nothing until it asks.
    subscribe(&mut c, &mut j, sub(1, 1), q.clone(), 0);
    for i in 0..3 {
        c.handle(
            Request::Send {
                msg: msg(q.clone(), &format!("m{i}"), false),
                reply: reply(i),
            },
            &mut j,
        );
    }
    assert!(deliveries(&c.drain()).is_empty());
    c.handle(
        Request::SetPrefetch {
            sub: sub(1, 1),
            prefetch: 1,
        },
        &mut j,
    );
    assert_eq!(deliveries(&c.drain()), vec![(sub(1, 1), 1, "m0".into())]);
    // A window extended past what is in flight lets more through.
    c.handle(
        Request::SetPrefetch {
            sub: sub(1, 1),
            prefetch: 3,
        },
        &mut j,
    );
    let seqs: Vec<u64> = deliveries(&c.drain()).iter().map(|d| d.1).collect();
    assert_eq!(seqs, vec![2, 3]);
    // Unknown consumers are ignored.
    c.handle(
        Request::SetPrefetch {
            sub: sub(9, 9),
            prefetch: 3,
        },
        &mut j,
    );
    assert!(c.drain().is_empty());
}

#[test]
fn temporary_destinations_are_created_and_deleted_by_their_owner() {
    let mut c = core();
    let mut j = MemJournal::default();
    let t = Destination {
        kind: DestKind::TempQueue,
        name: "ID:c:1".into(),
    };
    // Sending before it exists fails.
    c.handle(
        Request::Send {
            msg: msg(t.clone(), "early", false),
            reply: reply(1),
        },
        &mut j,
    );
    let refused = |out: &[Output]| {
        out.iter()
            .any(|o| matches!(o, Output::Reply { result: Err(_), .. }))
    };
    assert!(refused(&c.drain()));
    c.handle(
        Request::CreateTemp {
            destination: t.clone(),
            owner: conn(1),
            reply: reply(2),
        },
        &mut j,
    );
    c.handle(
        Request::Send {
            msg: msg(t.clone(), "kept", false),
            reply: reply(3),
        },
        &mut j,
    );
    assert!(!refused(&c.drain()));
    assert_eq!(c.depth(&t), 1);
    // Only the owner deletes it.
    c.handle(
        Request::DeleteTemp {
            destination: t.clone(),
            owner: conn(2),
            reply: reply(4),
        },
        &mut j,
    );
    assert_eq!(c.depth(&t), 1);
    c.handle(
        Request::DeleteTemp {
            destination: t.clone(),
            owner: conn(1),
            reply: reply(5),
        },
        &mut j,
    );
    c.drain();
    assert_eq!(c.depth(&t), 0);
    c.handle(
        Request::Send {
            msg: msg(t.clone(), "late", false),
            reply: reply(6),
        },
        &mut j,
    );
    assert!(refused(&c.drain()));
    assert!(
        j.records.is_empty(),
        "temporary destinations are never journaled"
    );
}

#[test]
fn unsubscribing_returns_undelivered_messages_without_a_redelivery() {
    let mut c = core();
    let mut j = MemJournal::default();
    let q = Destination::queue("back");
    subscribe(&mut c, &mut j, sub(1, 1), q.clone(), 10);
    for i in 0..3 {
        c.handle(
            Request::Send {
                msg: msg(q.clone(), &format!("m{i}"), false),
                reply: reply(i),
            },
            &mut j,
        );
    }
    assert_eq!(deliveries(&c.drain()).len(), 3);
    c.handle(
        Request::Unsubscribe {
            sub: sub(1, 1),
            destination: q.clone(),
            remove_durable: None,
            undelivered: vec![3, 2],
            reply: reply(9),
        },
        &mut j,
    );
    c.drain();
    subscribe(&mut c, &mut j, sub(2, 1), q.clone(), 10);
    let redeliveries: Vec<(u64, u32)> = c
        .drain()
        .iter()
        .filter_map(|o| match o {
            Output::Deliver {
                seq, redeliveries, ..
            } => Some((*seq, *redeliveries)),
            _ => None,
        })
        .collect();
    assert_eq!(redeliveries, vec![(1, 1), (2, 0), (3, 0)]);
}

/// A failover client replays an unanswered persistent send with its original
/// `<producer>:<sequence>` id: the broker, or a core rebuilt from the same records (a
/// restart, or a slave that took over), confirms it without storing it twice.
#[test]
fn replayed_persistent_sends_are_confirmed_once_stored_not_stored_twice() {
    const PRODUCER: &str = "ID:client-40915-1732612345678-1:1:1:1";
    let jms = |seq: u64, persistent: bool| -> MessageRef {
        let mut m = (*msg(Destination::queue("a"), &format!("m{seq}"), persistent)).clone();
        m.id = format!("{PRODUCER}:{seq}");
        Arc::new(m)
    };
    let send = |c: &mut ShardCore, j: &mut MemJournal, m: MessageRef, token: u64| {
        c.handle(
            Request::Send {
                msg: m,
                reply: reply(token),
            },
            j,
        );
        c.drain()
            .into_iter()
            .find_map(|o| match o {
                Output::Reply {
                    reply,
                    durable_at,
                    result,
                } if reply.token == token => Some((durable_at, result)),
                _ => None,
            })
            .expect("every send is answered")
    };
    let q = Destination::queue("a");
    let mut c = core();
    let mut j = MemJournal::default();
    for seq in 1..=3 {
        let (durable_at, result) = send(&mut c, &mut j, jms(seq, true), seq);
        assert!(result.is_ok() && durable_at.is_some());
    }
    let records = j.records.len();
    // The replay of 2 and 3: answered after what is stored is durable, nothing added.
    for seq in 2..=3 {
        let (durable_at, result) = send(&mut c, &mut j, jms(seq, true), 10 + seq);
        assert!(result.is_ok());
        assert_eq!(
            durable_at,
            Some(Position(j.end)),
            "waits for the original to be durable"
        );
    }
    assert_eq!(j.records.len(), records, "a duplicate is not journaled");
    assert_eq!(c.depth(&q), 3);

    // Rebuilt from the journal (restart, or a slave applying shipped records).
    let mut r = replay(&j);
    let mut j2 = MemJournal::default();
    assert!(send(&mut r, &mut j2, jms(3, true), 20).1.is_ok());
    assert!(j2.records.is_empty(), "the rebuilt audit knows sequence 3");
    assert_eq!(r.depth(&q), 3);
    // The next sequence is new; a non-persistent message is not audited.
    assert!(send(&mut r, &mut j2, jms(4, true), 21).1.is_ok());
    assert_eq!(r.depth(&q), 4);
    assert!(send(&mut r, &mut j2, jms(5, false), 22).1.is_ok());
    assert!(send(&mut r, &mut j2, jms(5, false), 23).1.is_ok());
    assert_eq!(r.depth(&q), 6);

    // A dead-letter copy keeps its id but comes from a shard, not a producer: stored.
    let mut dlq_copy = (*jms(1, true)).clone();
    dlq_copy.destination = Destination::dead_letter_queue();
    r.handle(
        Request::Send {
            msg: Arc::new(dlq_copy),
            reply: Reply {
                to: ReplyTo::Shard(0),
                token: 30,
            },
        },
        &mut j2,
    );
    r.drain();
    assert_eq!(r.depth(&Destination::dead_letter_queue()), 1);
}

// ----- queue browsers -------------------------------------------------------------

fn browse(
    c: &mut ShardCore,
    j: &mut MemJournal,
    key: SubKey,
    dest: Destination,
    selector: Option<&str>,
    prefetch: u32,
) -> Vec<Output> {
    c.handle(
        Request::Browse {
            sub: key,
            destination: dest,
            selector: selector.map(str::to_owned),
            prefetch,
            reply: reply(500),
        },
        j,
    );
    c.drain()
}

/// A message on `dest` with header `n` = `n` (and `color` red for even `n`).
fn numbered(dest: &Destination, n: u64, body: &str) -> MessageRef {
    let mut m = (*msg(dest.clone(), body, true)).clone();
    m.headers.push(("n".into(), n.to_string()));
    let color = if n.is_multiple_of(2) { "red" } else { "blue" };
    m.headers.push(("color".into(), color.into()));
    Arc::new(m)
}

fn send_numbered(
    c: &mut ShardCore,
    j: &mut MemJournal,
    dest: &Destination,
    ns: std::ops::Range<u64>,
) {
    for n in ns {
        c.handle(
            Request::Send {
                msg: numbered(dest, n, &format!("m{n}")),
                reply: reply(1000 + n),
            },
            j,
        );
    }
    c.drain();
}

/// The browsers whose end marker is in `out`, and where it is.
fn browse_ends(out: &[Output]) -> Vec<(usize, SubKey)> {
    out.iter()
        .enumerate()
        .filter_map(|(i, o)| match o {
            Output::BrowseEnd { sub, .. } => Some((i, *sub)),
            _ => None,
        })
        .collect()
}

fn ack(c: &mut ShardCore, j: &mut MemJournal, key: SubKey, dest: &Destination, seqs: Vec<u64>) {
    c.handle(
        Request::Ack {
            sub: key,
            destination: dest.clone(),
            seqs,
            reply: None,
        },
        j,
    );
}

/// A browser sees every message on the queue when it starts, in order, including
/// those delivered to a consumer and not yet acknowledged; then the end marker, after
/// the last delivery. Nothing changes: no journal record, no state, the consumer's
/// deliveries and later acks go on as before, and messages sent after the start are
/// not part of the browse.
#[test]
fn a_browse_is_a_snapshot_in_order_that_changes_nothing() {
    let mut c = core();
    let mut j = MemJournal::default();
    let q = Destination::queue("b");
    send_numbered(&mut c, &mut j, &q, 0..5);
    let consumer = sub(1, 1);
    subscribe(&mut c, &mut j, consumer, q.clone(), 2);
    let d = deliveries(&c.drain());
    assert_eq!(d.iter().map(|x| x.1).collect::<Vec<_>>(), vec![1, 2]);
    let records = j.records.len();

    let browser = sub(2, 1);
    let out = browse(&mut c, &mut j, browser, q.clone(), None, 100);
    assert!(
        matches!(&out[0], Output::Reply { reply, result: Ok(()), durable_at: None } if reply.token == 500),
        "the reply comes first: {out:?}"
    );
    let d = deliveries(&out);
    assert_eq!(
        d,
        (1..=5)
            .map(|s| (browser, s, format!("m{}", s - 1)))
            .collect::<Vec<_>>()
    );
    let ends = browse_ends(&out);
    assert_eq!(ends.len(), 1);
    assert_eq!(ends[0].1, browser);
    assert_eq!(
        ends[0].0,
        out.len() - 1,
        "the end marker follows the last delivery"
    );

    // Sent after the browse started: not part of it.
    send_numbered(&mut c, &mut j, &q, 5..6);
    let records_after_send = j.records.len();
    // The browser acknowledges everything: nothing is removed or journaled.
    ack(&mut c, &mut j, browser, &q, (1..=5).collect());
    c.handle(
        Request::Nack {
            sub: browser,
            destination: q.clone(),
            seqs: vec![3],
            reply: None,
        },
        &mut j,
    );
    let out = c.drain();
    assert!(
        deliveries(&out).is_empty() && browse_ends(&out).is_empty(),
        "{out:?}"
    );
    assert!(
        !out.iter().any(|o| matches!(o, Output::DeadLetter { .. })),
        "a browser's NACK moves nothing"
    );
    assert_eq!(j.records.len(), records_after_send);
    assert_eq!(
        records_after_send,
        records + 1,
        "only the send was journaled"
    );
    assert_eq!(c.depth(&q), 6);

    // The consumer carries on as if nothing happened.
    ack(&mut c, &mut j, consumer, &q, vec![1, 2]);
    let d = deliveries(&c.drain());
    assert_eq!(
        d.iter().map(|x| (x.0, x.1)).collect::<Vec<_>>(),
        vec![(consumer, 3), (consumer, 4)]
    );
    assert_eq!(c.depth(&q), 4);

    // Closing the browser forgets it; a second browse sees what is left now.
    c.handle(
        Request::Unsubscribe {
            sub: browser,
            destination: q.clone(),
            remove_durable: None,
            undelivered: Vec::new(),
            reply: reply(600),
        },
        &mut j,
    );
    let out = c.drain();
    assert!(deliveries(&out).is_empty(), "{out:?}");
    let again = sub(2, 2);
    let out = browse(&mut c, &mut j, again, q.clone(), None, 100);
    assert_eq!(
        deliveries(&out).iter().map(|x| x.1).collect::<Vec<_>>(),
        vec![3, 4, 5, 6]
    );
    assert_eq!(browse_ends(&out).len(), 1);
}

/// The prefetch bounds a browser's unacknowledged deliveries (its acks return credit,
/// `SetPrefetch` changes the window); the selector and expiry choose what it sees;
/// the end marker waits for the last selected message.
#[test]
fn a_browser_is_flowed_by_its_prefetch_and_filtered_by_selector_and_expiry() {
    let mut c = core();
    let mut j = MemJournal::default();
    let q = Destination::queue("f");
    send_numbered(&mut c, &mut j, &q, 0..8);
    // A message that expires while stored (seq 9; the sweep has not run): a browse
    // does not show it.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut old = (*numbered(&q, 8, "old")).clone();
    old.expires_ms = now + 20;
    c.handle(
        Request::Send {
            msg: Arc::new(old),
            reply: reply(2000),
        },
        &mut j,
    );
    c.drain();
    std::thread::sleep(std::time::Duration::from_millis(40));
    let browser = sub(3, 1);
    let out = browse(&mut c, &mut j, browser, q.clone(), Some("color = 'red'"), 2);
    // Red: n = 0, 2, 4, 6 (seqs 1, 3, 5, 7); 8 (seq 9) expired.
    assert_eq!(
        deliveries(&out).iter().map(|x| x.1).collect::<Vec<_>>(),
        vec![1, 3]
    );
    assert!(browse_ends(&out).is_empty());
    ack(&mut c, &mut j, browser, &q, vec![1]);
    let out = c.drain();
    assert_eq!(
        deliveries(&out).iter().map(|x| x.1).collect::<Vec<_>>(),
        vec![5]
    );
    assert!(browse_ends(&out).is_empty());
    // Acks for messages it does not hold return nothing.
    ack(&mut c, &mut j, browser, &q, vec![2, 4]);
    assert!(deliveries(&c.drain()).is_empty());
    c.handle(
        Request::SetPrefetch {
            sub: browser,
            prefetch: 3,
        },
        &mut j,
    );
    let out = c.drain();
    assert_eq!(
        deliveries(&out).iter().map(|x| x.1).collect::<Vec<_>>(),
        vec![7]
    );
    assert_eq!(browse_ends(&out).len(), 1, "{out:?}");
    assert_eq!(c.depth(&q), 9);
}

/// A browse of an empty queue, or of one this shard has never seen, ends at once and
/// does not create the queue; a topic and a bad selector are refused.
#[test]
fn empty_browses_end_at_once_and_bad_ones_are_refused() {
    let mut c = core();
    let mut j = MemJournal::default();
    let out = browse(
        &mut c,
        &mut j,
        sub(1, 1),
        Destination::queue("never"),
        None,
        10,
    );
    assert_eq!(
        browse_ends(&out).iter().map(|e| e.1).collect::<Vec<_>>(),
        vec![sub(1, 1)]
    );
    assert!(c
        .destination_stats()
        .iter()
        .all(|s| s.name != "/queue/never"));

    let q = Destination::queue("emptied");
    send_numbered(&mut c, &mut j, &q, 0..2);
    subscribe(&mut c, &mut j, sub(2, 1), q.clone(), 10);
    c.drain();
    ack(&mut c, &mut j, sub(2, 1), &q, vec![1, 2]);
    c.drain();
    let out = browse(&mut c, &mut j, sub(1, 2), q.clone(), None, 10);
    assert!(deliveries(&out).is_empty());
    assert_eq!(browse_ends(&out).len(), 1);

    let out = browse(&mut c, &mut j, sub(1, 3), Destination::topic("t"), None, 10);
    assert!(
        matches!(
            &out[..],
            [Output::Reply {
                result: Err(BrokerError::NotAQueue(_)),
                ..
            }]
        ),
        "{out:?}"
    );
    let out = browse(&mut c, &mut j, sub(1, 4), q, Some("color = "), 10);
    assert!(
        matches!(
            &out[..],
            [Output::Reply {
                result: Err(BrokerError::InvalidSelector(_)),
                ..
            }]
        ),
        "{out:?}"
    );
}

/// Bodies only the journal holds are read back for the browser (page-in) and
/// delivered in queue order whatever order the reads finish in; they are not put back
/// into the queue's entries (memory use does not grow), and the selector is tested on
/// the read-back body.
#[test]
fn a_browse_reads_paged_out_bodies_back_in_order_without_keeping_them() {
    let settings = BrokerSettings {
        shard_memory_limit_bytes: 2048,
        ..BrokerSettings::default()
    };
    let mut c = ShardCore::new(0, 1, Arc::new(settings));
    let mut j = MemJournal::default();
    let q = Destination::queue("paged");
    let mut sent = Vec::new();
    for n in 0..6 {
        let m = numbered(&q, n, &format!("{n}{}", "y".repeat(900)));
        sent.push(m.clone());
        c.handle(
            Request::Send {
                msg: m,
                reply: reply(n),
            },
            &mut j,
        );
    }
    c.drain();
    let mem = c.mem_used();
    for (key, selector, want) in [
        (sub(1, 1), None, vec![1, 2, 3, 4, 5, 6]),
        (sub(1, 2), Some("n = '5' OR n = '0'"), vec![1, 6]),
    ] {
        let out = browse(&mut c, &mut j, key, q.clone(), selector, 100);
        let mut page_ins: Vec<(u64, u64)> = out
            .iter()
            .filter_map(|o| match o {
                Output::PageIn { seq, token, .. } => Some((*seq, *token)),
                _ => None,
            })
            .collect();
        assert!(!page_ins.is_empty(), "some bodies are on disk");
        assert!(
            browse_ends(&out).is_empty(),
            "not before the bodies are back"
        );
        let mut got: Vec<u64> = deliveries(&out).iter().map(|x| x.1).collect();
        // Answer the reads last first: the deliveries still come in order.
        page_ins.reverse();
        for (seq, token) in page_ins {
            c.paged_in(token, Some(sent[seq as usize - 1].clone()));
        }
        let out = c.drain();
        let d = deliveries(&out);
        assert!(d.iter().all(|x| x.2 != "<disk>" && x.0 == key));
        got.extend(d.iter().map(|x| x.1));
        assert_eq!(got, want);
        assert_eq!(browse_ends(&out).len(), 1);
        assert_eq!(c.mem_used(), mem, "read-back bodies are not kept");
    }
}

/// A browse step looks at a bounded number of entries: a selector that matches
/// nothing on a long queue leaves work for the next drain (the driver drains again),
/// and the browse still ends.
#[test]
fn a_long_unmatched_browse_is_done_in_bounded_steps() {
    let mut c = core();
    let mut j = MemJournal::default();
    let q = Destination::queue("long");
    send_numbered(&mut c, &mut j, &q, 0..10_000);
    let out = browse(&mut c, &mut j, sub(1, 1), q.clone(), Some("n = 'none'"), 10);
    assert!(browse_ends(&out).is_empty());
    assert!(c.has_browse_work());
    let mut drains = 1;
    while c.has_browse_work() {
        let out = c.drain();
        drains += 1;
        assert!(deliveries(&out).is_empty());
        if !browse_ends(&out).is_empty() {
            break;
        }
    }
    assert!(!c.has_browse_work());
    assert!(drains >= 3, "{drains}");
}

/// A closed connection takes its browsers with it; the queue is untouched.
#[test]
fn closing_the_connection_forgets_its_browsers() {
    let mut c = core();
    let mut j = MemJournal::default();
    let q = Destination::queue("c");
    send_numbered(&mut c, &mut j, &q, 0..3);
    let out = browse(&mut c, &mut j, sub(4, 1), q.clone(), None, 1);
    assert_eq!(deliveries(&out).len(), 1);
    c.handle(Request::ConnectionClosed { conn: conn(4) }, &mut j);
    assert!(c.drain().is_empty());
    ack(&mut c, &mut j, sub(4, 1), &q, vec![1]);
    assert!(c.drain().is_empty(), "no browser left to deliver to");
    assert_eq!(c.depth(&q), 3);
    subscribe(&mut c, &mut j, sub(5, 1), q.clone(), 10);
    let d = deliveries(&c.drain());
    assert_eq!(
        d.iter().map(|x| (x.1, x.2.as_str())).collect::<Vec<_>>(),
        vec![(1, "m0"), (2, "m1"), (3, "m2")]
    );
}

/// A core reporting to `index`, as a shard's does.
fn indexed_core(index: &Arc<crate::broker::VirtualTopicIndex>) -> ShardCore {
    let mut c = core();
    c.index_virtual_topics_in(index.clone());
    c
}

#[test]
fn a_virtual_topic_consumer_queue_is_journaled_indexed_and_replayed() {
    let index = Arc::new(crate::broker::VirtualTopicIndex::default());
    let mut c = indexed_core(&index);
    let mut j = MemJournal::default();
    let qa = Destination::queue("Consumer.A.VirtualTopic.X");
    subscribe(&mut c, &mut j, sub(1, 1), qa.clone(), 10);
    // The subscription is answered once the queue's record is durable.
    let durable: Vec<Option<Position>> = c
        .drain()
        .iter()
        .filter_map(|o| match o {
            Output::Reply { durable_at, .. } => Some(*durable_at),
            _ => None,
        })
        .collect();
    assert_eq!(durable, vec![Some(Position(j.end))]);
    assert_eq!(j.records.len(), 1);
    let loc = j.records[0].0;
    assert_eq!(
        Record::decode(&j.records[0].1).unwrap(),
        Record::CreateQueue {
            destination: qa.clone()
        }
    );
    assert!(
        c.is_pinned(loc.segment),
        "the record is live while the queue is"
    );
    assert_eq!(index.queues_of("VirtualTopic.X"), vec![qa.name.clone()]);
    // A second consumer, a plain queue, a producer to an existing queue: no record.
    subscribe(&mut c, &mut j, sub(2, 1), qa.clone(), 10);
    subscribe(&mut c, &mut j, sub(2, 2), Destination::queue("plain"), 10);
    send(&mut c, &mut j, &Destination::queue("plain"), "p", false);
    c.drain();
    assert_eq!(j.records.len(), 1);

    // A restart (or a slave) rebuilds the queue and the index from the record alone.
    drop(c);
    assert!(
        index.is_empty(),
        "a dropped core takes its queues out of the index"
    );
    let mut r = indexed_core(&index);
    for (loc, payload) in &j.records {
        r.apply(Record::decode(payload).unwrap(), Some(*loc));
    }
    r.finish_recovery();
    assert!(stats_of(&r, "/queue/Consumer.A.VirtualTopic.X").is_some());
    assert_eq!(index.queues_of("VirtualTopic.X"), vec![qa.name.clone()]);

    // Relocation re-journals it; deleting the queue unpins and unindexes it.
    r.relocate_durables(loc.segment, &mut j);
    assert_eq!(j.records.len(), 2);
    assert_eq!(
        Record::decode(&j.records[1].1).unwrap(),
        Record::CreateQueue {
            destination: qa.clone()
        }
    );
    assert_eq!(
        r.live_bytes(loc.segment),
        u64::from(j.records[1].0.len),
        "one pin"
    );
    r.delete_queue(&qa, &mut j).expect("delete");
    assert!(index.is_empty());
    assert!(!r.is_pinned(loc.segment), "nothing keeps the records");
    let again = replay(&j);
    assert!(stats_of(&again, "/queue/Consumer.A.VirtualTopic.X").is_none());
}

#[test]
fn a_producer_creating_a_consumer_queue_journals_it_too() {
    let index = Arc::new(crate::broker::VirtualTopicIndex::default());
    let mut c = indexed_core(&index);
    let mut j = MemJournal::default();
    let qb = Destination::queue("Consumer.B.VirtualTopic.X");
    send(&mut c, &mut j, &qb, "n", false);
    c.drain();
    let kinds: Vec<Record> = j
        .records
        .iter()
        .map(|(_, p)| Record::decode(p).unwrap())
        .collect();
    assert_eq!(
        kinds,
        vec![Record::CreateQueue {
            destination: qb.clone()
        }]
    );
    assert_eq!(index.len(), 1);
}

#[test]
fn one_jms_message_is_stored_on_a_topic_and_a_queue_of_the_same_shard() {
    // A virtual topic send (or a composite one) stores one message id on several
    // destinations; the duplicate check is per destination.
    let mut c = core();
    let mut j = MemJournal::default();
    let q = Destination::queue("Consumer.A.VirtualTopic.X");
    subscribe(&mut c, &mut j, sub(1, 1), q.clone(), 10);
    c.drain();
    for d in [Destination::topic("VirtualTopic.X"), q.clone()] {
        let mut m = (*msg(d, "x", true)).clone();
        m.id = "ID:host-1-2-3:1:1:1:1".into();
        c.handle(
            Request::Send {
                msg: Arc::new(m),
                reply: reply(1),
            },
            &mut j,
        );
    }
    let got = deliveries(&c.drain());
    assert_eq!(
        got.len(),
        1,
        "the queue copy is stored and delivered: {got:?}"
    );
    assert_eq!(c.depth(&q), 1);
}

// ----- wildcard subscriptions -------------------------------------------------------

/// (sub, destination name, body, redeliveries) of every delivery in `out`.
fn wild_deliveries(out: &[Output]) -> Vec<(SubKey, String, String, u32)> {
    let mut v: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            Output::Deliver {
                sub,
                destination,
                body: Body::Memory(m),
                redeliveries,
                ..
            } => Some((
                *sub,
                destination.name.clone(),
                String::from_utf8_lossy(&m.body).into_owned(),
                *redeliveries,
            )),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

fn send_to(c: &mut ShardCore, j: &mut MemJournal, d: Destination, body: &str) {
    c.handle(
        Request::Send {
            msg: msg(d, body, false),
            reply: reply(0),
        },
        j,
    );
}

fn delivered(
    sub: SubKey,
    dest: &str,
    body: &str,
    redeliveries: u32,
) -> (SubKey, String, String, u32) {
    (sub, dest.into(), body.into(), redeliveries)
}

#[test]
fn wildcard_topic_subscribers_get_matching_topics_under_their_real_names() {
    let mut c = core();
    let mut j = MemJournal::default();
    send_to(&mut c, &mut j, Destination::topic("P.old"), "before"); // topic exists first
    subscribe(&mut c, &mut j, sub(1, 1), Destination::topic("P.>"), 100);
    subscribe(&mut c, &mut j, sub(1, 2), Destination::topic("P.*"), 100);
    c.drain();
    for (t, body) in [
        ("P", "m0"),
        ("P.old", "m1"),
        ("P.new", "m2"),
        ("P.a.b", "m3"),
        ("Q.a", "m4"),
    ] {
        send_to(&mut c, &mut j, Destination::topic(t), body);
    }
    assert_eq!(
        wild_deliveries(&c.drain()),
        vec![
            delivered(sub(1, 1), "P", "m0", 0),
            delivered(sub(1, 1), "P.a.b", "m3", 0),
            delivered(sub(1, 1), "P.new", "m2", 0),
            delivered(sub(1, 1), "P.old", "m1", 0),
            delivered(sub(1, 2), "P.new", "m2", 0),
            delivered(sub(1, 2), "P.old", "m1", 0),
        ]
    );
    assert_eq!(c.wildcard_subscriptions(), 2);
    c.handle(Request::ConnectionClosed { conn: conn(1) }, &mut j);
    assert_eq!(c.wildcard_subscriptions(), 0);
    send_to(&mut c, &mut j, Destination::topic("P.later"), "gone");
    assert!(wild_deliveries(&c.drain()).is_empty());
}

#[test]
fn wildcard_queue_consumer_shares_one_prefetch_over_existing_and_new_queues() {
    let mut c = core();
    let mut j = MemJournal::default();
    send_to(&mut c, &mut j, Destination::queue("Q.a"), "a1");
    send_to(&mut c, &mut j, Destination::queue("Q.b"), "b1");
    send_to(&mut c, &mut j, Destination::queue("R.a"), "r1");
    c.drain();
    let w = sub(1, 1);
    subscribe(&mut c, &mut j, w, Destination::queue("Q.*"), 1);
    let first = wild_deliveries(&c.drain());
    assert_eq!(first.len(), 1, "prefetch 1 over both queues: {first:?}");
    send_to(&mut c, &mut j, Destination::queue("Q.c"), "c1"); // a queue created later
    assert!(wild_deliveries(&c.drain()).is_empty(), "no credit left");
    let mut got = first;
    while let Some((_, dest, _, _)) = got.last().cloned() {
        if got.len() == 3 {
            break;
        }
        // Each delivery is seq 1 of its queue; the ack names the real queue.
        c.handle(
            Request::Ack {
                sub: w,
                destination: Destination::queue(dest),
                seqs: vec![1],
                reply: None,
            },
            &mut j,
        );
        let next = wild_deliveries(&c.drain());
        assert_eq!(next.len(), 1, "the ack returned one credit: {next:?}");
        got.extend(next);
    }
    let mut bodies: Vec<String> = got.iter().map(|d| d.2.clone()).collect();
    bodies.sort();
    assert_eq!(bodies, ["a1", "b1", "c1"]);
    assert_eq!(c.depth(&Destination::queue("R.a")), 1, "not matched: kept");
}

#[test]
fn wildcard_parts_detach_one_by_one_or_all_at_once() {
    let mut c = core();
    let mut j = MemJournal::default();
    send_to(&mut c, &mut j, Destination::queue("Q.a"), "a1");
    send_to(&mut c, &mut j, Destination::queue("Q.b"), "b1");
    let w = sub(1, 1);
    subscribe(&mut c, &mut j, w, Destination::queue("Q.>"), 10);
    assert_eq!(wild_deliveries(&c.drain()).len(), 2);
    // The part on Q.a goes with its message never handed to the application.
    c.handle(
        Request::Unsubscribe {
            sub: w,
            destination: Destination::queue("Q.a"),
            remove_durable: None,
            undelivered: vec![1],
            reply: reply(1),
        },
        &mut j,
    );
    // The rest goes with the pattern: Q.b's message was handed over (flagged).
    c.handle(
        Request::Unsubscribe {
            sub: w,
            destination: Destination::queue("Q.>"),
            remove_durable: None,
            undelivered: vec![],
            reply: reply(2),
        },
        &mut j,
    );
    c.drain();
    assert_eq!(c.wildcard_subscriptions(), 0);
    subscribe(&mut c, &mut j, sub(2, 1), Destination::queue("Q.a"), 10);
    subscribe(&mut c, &mut j, sub(2, 2), Destination::queue("Q.b"), 10);
    assert_eq!(
        wild_deliveries(&c.drain()),
        vec![
            delivered(sub(2, 1), "Q.a", "a1", 0),
            delivered(sub(2, 2), "Q.b", "b1", 1),
        ]
    );
}

#[test]
fn wildcard_durable_subscription_is_refused() {
    let mut c = core();
    let mut j = MemJournal::default();
    c.handle(
        Request::Subscribe {
            sub: sub(1, 1),
            spec: SubscribeSpec {
                destination: Destination::topic("D.>"),
                ack: AckMode::Auto,
                prefetch: 10,
                durable: Some(DurableName {
                    client_id: "c".into(),
                    name: "d".into(),
                }),
                selector: None,
                temp_owner: None,
                exclusive: false,
                priority: 0,
            },
            reply: reply(7),
        },
        &mut j,
    );
    let out = c.drain();
    assert!(out.iter().any(|o| matches!(o, Output::Reply { reply, result: Err(BrokerError::WildcardDurable(_)), .. } if reply.token == 7)), "{out:?}");
    assert!(j.records.is_empty(), "nothing journaled");
    assert_eq!(c.wildcard_subscriptions(), 0);
}

/// Settings whose policy gives queues and topics under `limited.>` a `memoryLimit`.
fn limited_settings(limit: u64) -> Arc<BrokerSettings> {
    use super::policy::*;
    let entry = |kind| {
        (
            PolicyDestination {
                kind,
                pattern: "limited.>".into(),
            },
            PolicyEntry {
                memory_limit: Some(limit),
                ..PolicyEntry::default()
            },
        )
    };
    Arc::new(BrokerSettings {
        policies: Arc::new(PolicyMap::new(
            vec![entry(DestKind::Queue), entry(DestKind::Topic)],
            None,
            Destination::dead_letter_queue(),
        )),
        ..BrokerSettings::default()
    })
}

/// Reply tokens in `out` from `from` up.
fn replied(out: &[Output], from: u64) -> Vec<u64> {
    out.iter()
        .filter_map(|o| match o {
            Output::Reply { reply, .. } if reply.token >= from => Some(reply.token),
            _ => None,
        })
        .collect()
}

#[test]
fn a_queue_memory_limit_leaves_bodies_beyond_it_in_the_journal_only() {
    let settings = limited_settings(4096);
    let mut c = ShardCore::new(0, 1, settings.clone());
    let mut j = MemJournal::default();
    let limited = Destination::queue("limited.q");
    let free = Destination::queue("free");
    let big = "x".repeat(1000);
    for _ in 0..20 {
        send(&mut c, &mut j, &limited, &big, true);
        send(&mut c, &mut j, &free, &big, true);
    }
    c.drain();
    let (used, limit) = c.destination_memory(&limited);
    assert_eq!(limit, Some(4096));
    assert!(used > 0 && used <= 4096, "{used}");
    let size = msg(free.clone(), &big, true).memory_size();
    assert_eq!(
        c.destination_memory(&free),
        (20 * size, None),
        "a queue without a limit keeps every body (the shard has room)"
    );
    assert_eq!(c.mem_used(), used + 20 * size);
    c.assert_memory_accounted();
    let s = stats_of(&c, "/queue/limited.q").expect("stats");
    assert_eq!((s.memory_bytes, s.memory_limit), (used as u64, Some(4096)));
    assert_eq!(
        stats_of(&c, "/queue/free").map(|s| s.memory_limit),
        Some(None)
    );

    // Replayed (a restart, a slave): the same limit, the same accounting.
    let mut r = ShardCore::new(0, 1, settings);
    for (loc, payload) in &j.records {
        r.apply(Record::decode(payload).expect("decodes"), Some(*loc));
    }
    r.finish_recovery();
    assert_eq!(r.destination_memory(&limited).0, used);
    r.assert_memory_accounted();

    // Every message is delivered: the first ones from memory, the rest read back.
    subscribe(&mut c, &mut j, sub(1, 1), limited.clone(), 100);
    let d = deliveries(&c.drain());
    assert_eq!(d.len(), 20);
    let on_disk = d.iter().filter(|x| x.2 == "<disk>").count();
    assert_eq!(on_disk, 20 - used / size, "{d:?}");
    assert!(d.iter().all(|x| x.2 == "<disk>" || x.2 == big));
    ack(
        &mut c,
        &mut j,
        sub(1, 1),
        &limited,
        d.iter().map(|x| x.1).collect(),
    );
    c.drain();
    assert_eq!(c.destination_memory(&limited).0, 0);
    c.assert_memory_accounted();
    // Room again: new bodies stay in memory.
    send(&mut c, &mut j, &limited, &big, true);
    let d = deliveries(&c.drain());
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].2, big, "delivered from memory");
    assert_eq!(c.destination_memory(&limited).0, size);
    c.assert_memory_accounted();
}

#[test]
fn a_non_persistent_producer_to_a_destination_over_its_limit_is_held_until_consumers_drain_it() {
    for limited in [
        Destination::topic("limited.t"),
        Destination::queue("limited.q"),
    ] {
        let mut c = ShardCore::new(0, 1, limited_settings(4096));
        let mut j = MemJournal::default();
        let consumer = sub(1, 1);
        if !limited.kind.is_queue() {
            // A topic holds messages only for its subscribers.
            subscribe(&mut c, &mut j, consumer, limited.clone(), 1000);
        }
        let big = "x".repeat(1000);
        for i in 0..10 {
            c.handle(
                Request::Send {
                    msg: msg(limited.clone(), &big, false),
                    reply: reply(100 + i),
                },
                &mut j,
            );
        }
        // Another destination is not held back by this one's limit.
        c.handle(
            Request::Send {
                msg: msg(Destination::queue("free"), &big, false),
                reply: reply(1000),
            },
            &mut j,
        );
        let out = c.drain();
        let first = replied(&out, 100);
        let (used, _) = c.destination_memory(&limited);
        assert!(used > 4096, "non-persistent bodies are kept: {used}");
        assert!(first.contains(&1000), "{first:?}");
        let held = 11 - first.len();
        assert!(
            held > 0 && held < 10,
            "sends beyond the limit are held ({limited:?}): {first:?}"
        );
        c.assert_memory_accounted();
        if limited.kind.is_queue() {
            subscribe(&mut c, &mut j, consumer, limited.clone(), 1000);
        }
        // A topic's subscriber had its deliveries at once, a queue's consumer now.
        let mut d = deliveries(&out);
        d.extend(deliveries(&c.drain()));
        assert_eq!(d.len(), 10, "{limited:?}");
        // Delivered but not acknowledged: still held in memory, still over.
        assert!(replied(&c.drain(), 100).is_empty());
        ack(
            &mut c,
            &mut j,
            consumer,
            &limited,
            d.iter().map(|x| x.1).collect(),
        );
        let released = replied(&c.drain(), 100);
        assert_eq!(released.len(), held, "{limited:?}: {released:?}");
        let mut all: Vec<u64> = first.into_iter().chain(released).collect();
        all.sort();
        assert_eq!(all, (100..110).chain([1000]).collect::<Vec<_>>());
        assert_eq!(c.destination_memory(&limited).0, 0);
        c.assert_memory_accounted();
    }
}
