//! The Rust OpenWire client (`tandem::client::openwire`) against real broker processes:
//! round trips, pipelined sync sends, ack modes, transactions, STOMP interop, failover
//! across `kill -9`, a refused login, and a real ActiveMQ 5.17 broker.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::jms::{ActiveMq, ActiveMqOpts};
use support::{free_port, poll_until, Broker, BrokerOpts, REPLY_TIMEOUT};
use tandem::client::openwire::{Client, Message, OpenWireOptions, PrimitiveValue};
use tandem::client::{AckMode, ClientError};

fn broker() -> Broker {
    Broker::start(BrokerOpts {
        openwire_port: Some(free_port()),
        ..BrokerOpts::default()
    })
}

fn ow_port(b: &Broker) -> u16 {
    b.opts.openwire_port.expect("openwire port")
}

fn connect(url: &str) -> Client {
    Client::connect(url, OpenWireOptions::default())
        .unwrap_or_else(|e| panic!("connect {url}: {e}"))
}

fn seq_of(m: &Message) -> i64 {
    m.property_i64("seq")
        .unwrap_or_else(|| panic!("message without seq: {m:?}"))
}

fn seq_prop(i: u64) -> [(&'static str, PrimitiveValue); 2] {
    [
        ("seq", PrimitiveValue::Long(i as i64)),
        ("producer", PrimitiveValue::string("p1")),
    ]
}

#[test]
fn round_trip_pipelining_ack_modes_and_transactions() {
    let b = broker();
    let url = format!("tcp://127.0.0.1:{}", ow_port(&b));
    let c = connect(&url);

    // Queue round trip, properties of every kind the load tool uses.
    let sub = c
        .subscribe("/queue/rt", AckMode::ClientIndividual, 100, None, None)
        .expect("subscribe");
    let props = [
        ("s", PrimitiveValue::string("a:b")),
        ("i", PrimitiveValue::Int(-7)),
        ("l", PrimitiveValue::Long(1 << 40)),
    ];
    c.send("/queue/rt", b"hello", &props, true).expect("send");
    let m = c.recv(REPLY_TIMEOUT).unwrap().expect("message");
    assert_eq!(&m.body[..], b"hello");
    assert_eq!(m.destination, "/queue/rt");
    assert_eq!(m.subscription, sub);
    assert_eq!(m.property_str("s"), Some("a:b"));
    assert_eq!(m.property_i64("i"), Some(-7));
    assert_eq!(m.property_i64("l"), Some(1 << 40));
    assert!(m.persistent && !m.redelivered && !m.is_text);
    assert!(
        m.message_id.starts_with(c.connection_id()),
        "{}",
        m.message_id
    );
    c.ack(&m).expect("ack");

    // Pipelined sync sends: all written, then every Response; delivered in order.
    let pending: Vec<_> = (0..500u64)
        .map(|i| {
            c.send_async("/queue/rt", format!("p-{i}").as_bytes(), &seq_prop(i), true)
                .expect("send_async")
        })
        .collect();
    for p in pending {
        p.wait(REPLY_TIMEOUT).expect("response");
    }
    for i in 0..500 {
        let m = c.recv(REPLY_TIMEOUT).unwrap().expect("pipelined message");
        assert_eq!(seq_of(&m), i);
        c.ack(&m).expect("ack");
    }

    // Fire-and-forget non-persistent sends arrive too.
    for i in 0..20u64 {
        c.send_no_confirm("/queue/rt", b"nc", &seq_prop(i), false)
            .expect("send_no_confirm");
    }
    for i in 0..20 {
        let m = c.recv(REPLY_TIMEOUT).unwrap().expect("unconfirmed message");
        assert_eq!(seq_of(&m), i);
        assert!(!m.persistent);
        c.ack(&m).expect("ack");
    }
    c.unsubscribe(&sub).expect("unsubscribe");

    // Topic: two subscribers each get every message (auto ack).
    let other = connect(&url);
    let t1 = c
        .subscribe("/topic/news", AckMode::Auto, 1000, None, None)
        .expect("sub t1");
    other
        .subscribe("/topic/news", AckMode::Auto, 1000, None, None)
        .expect("sub t2");
    for i in 0..10u64 {
        c.send("/topic/news", b"n", &seq_prop(i), false)
            .expect("publish");
    }
    for client in [&c, &other] {
        for i in 0..10 {
            let m = client.recv(REPLY_TIMEOUT).unwrap().expect("topic message");
            assert_eq!(m.destination, "/topic/news");
            assert_eq!(seq_of(&m), i);
        }
    }
    c.unsubscribe(&t1).expect("unsubscribe topic");
    other.close().expect("close other");

    // Selector.
    let sel = c
        .subscribe("/queue/sel", AckMode::Auto, 10, Some("seq > 2"), None)
        .expect("subscribe with selector");
    for i in 0..5u64 {
        c.send("/queue/sel", b"s", &seq_prop(i), true)
            .expect("send");
    }
    for i in 3..5 {
        assert_eq!(
            seq_of(&c.recv(REPLY_TIMEOUT).unwrap().expect("selected")),
            i
        );
    }
    assert!(c.recv(Duration::from_millis(300)).unwrap().is_none());
    c.unsubscribe(&sel).expect("unsubscribe sel");

    // Transactions: nothing visible before COMMIT; ROLLBACK drops the sends.
    let txq = c
        .subscribe("/queue/tx", AckMode::Client, 100, None, None)
        .expect("subscribe tx");
    c.begin().expect("begin");
    assert!(matches!(c.begin(), Err(ClientError::Transaction(..))));
    for i in 0..3u64 {
        c.send("/queue/tx", b"tx", &seq_prop(i), true)
            .expect("tx send");
    }
    assert!(c.recv(Duration::from_millis(300)).unwrap().is_none());
    c.commit().expect("commit");
    c.begin().expect("begin 2");
    c.send("/queue/tx", b"never", &seq_prop(99), true)
        .expect("tx send");
    c.rollback().expect("rollback");
    assert!(matches!(c.commit(), Err(ClientError::Transaction(..))));
    // Consume in a transaction: a rolled back ack hands the messages out again.
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(c.recv(REPLY_TIMEOUT).unwrap().expect("committed message"));
    }
    assert_eq!(got.iter().map(seq_of).collect::<Vec<_>>(), vec![0, 1, 2]);
    c.begin().expect("begin 3");
    c.ack(&got[2]).expect("ack in tx");
    c.rollback().expect("rollback acks");
    let mut again = Vec::new();
    for _ in 0..3 {
        let m = c.recv(REPLY_TIMEOUT).unwrap().expect("redelivered locally");
        assert!(m.redelivered);
        again.push(m);
    }
    c.begin().expect("begin 4");
    c.ack(&again[2]).expect("ack in tx");
    c.commit().expect("commit acks");
    assert!(c.recv(Duration::from_millis(300)).unwrap().is_none());
    c.unsubscribe(&txq).expect("unsubscribe tx");
    // Nothing left on the queue after the committed ack.
    let check = c
        .subscribe("/queue/tx", AckMode::Auto, 100, None, None)
        .expect("resubscribe");
    assert!(c.recv(Duration::from_millis(500)).unwrap().is_none());
    c.unsubscribe(&check).expect("unsubscribe");

    assert!(matches!(
        c.send("queue-without-prefix", b"x", &[], true),
        Err(ClientError::Invalid(_))
    ));
    assert_eq!(c.reconnects(), 0);
    c.close().expect("close");
}

#[test]
fn client_ack_leaves_the_unacked_for_redelivery() {
    let b = broker();
    let url = format!("tcp://127.0.0.1:{}", ow_port(&b));
    let p = connect(&url);
    for i in 0..10u64 {
        p.send("/queue/ca", b"m", &seq_prop(i), true).expect("send");
    }
    let c = connect(&url);
    c.subscribe("/queue/ca", AckMode::Client, 100, None, None)
        .expect("subscribe");
    let ms: Vec<Message> = (0..6)
        .map(|_| c.recv(REPLY_TIMEOUT).unwrap().expect("message"))
        .collect();
    // Cumulative: acking the 4th acks 0..=3.
    c.ack(&ms[3]).expect("ack");
    c.close().expect("close");

    let c = connect(&url);
    c.subscribe("/queue/ca", AckMode::ClientIndividual, 100, None, None)
        .expect("subscribe again");
    let mut seen = Vec::new();
    while let Some(m) = c.recv(Duration::from_secs(1)).unwrap() {
        seen.push((seq_of(&m), m.redelivered));
        if seq_of(&m) == 5 {
            c.ack(&m).expect("individual ack");
        }
    }
    assert_eq!(
        seen,
        vec![
            (4, true),
            (5, true),
            (6, false),
            (7, false),
            (8, false),
            (9, false)
        ]
    );
    c.close().expect("close");

    let c = connect(&url);
    c.subscribe("/queue/ca", AckMode::Auto, 100, None, None)
        .expect("subscribe auto");
    let mut rest = Vec::new();
    while let Some(m) = c.recv(Duration::from_secs(1)).unwrap() {
        rest.push(seq_of(&m));
    }
    assert_eq!(rest, vec![4, 6, 7, 8, 9]);
    c.close().expect("close");
    p.close().expect("close producer");
}

#[test]
fn stomp_producer_openwire_consumer() {
    let b = broker();
    let stomp = tandem::client::Client::connect(
        &format!("stomp://127.0.0.1:{}", b.port),
        tandem::client::ClientOptions::default(),
    )
    .expect("stomp connect");
    let c = connect(&format!("tcp://127.0.0.1:{}", ow_port(&b)));
    c.subscribe("/queue/mix", AckMode::Auto, 50, None, None)
        .expect("subscribe");
    for i in 0..50 {
        let seq = i.to_string();
        stomp
            .send(
                "/queue/mix",
                format!("body-{i}").as_bytes(),
                &[("persistent", "true"), ("seq", &seq)],
            )
            .expect("stomp send");
    }
    for i in 0..50 {
        let m = c.recv(REPLY_TIMEOUT).unwrap().expect("message");
        assert_eq!(m.body, format!("body-{i}"));
        assert_eq!(m.property_str("seq"), Some(i.to_string().as_str()));
        assert!(m.persistent);
    }
    stomp.close().expect("close stomp");
    c.close().expect("close");
}

#[test]
fn wrong_password_is_refused() {
    let b = Broker::start(BrokerOpts {
        openwire_port: Some(free_port()),
        users: vec![("app".into(), "secret".into())],
        ..BrokerOpts::default()
    });
    let url = format!("tcp://127.0.0.1:{}", ow_port(&b));
    let opts = |pw: &str| OpenWireOptions {
        user: Some("app".into()),
        password: Some(pw.into()),
        ..OpenWireOptions::default()
    };
    match Client::connect(&url, opts("wrong")) {
        Err(ClientError::Refused(reason)) => {
            assert!(reason.contains("SecurityException"), "{reason}")
        }
        Err(e) => panic!("expected Refused, got {e}"),
        Ok(_) => panic!("connected with a wrong password"),
    }
    assert!(matches!(
        Client::connect(&format!("stomp://127.0.0.1:{}", b.port), opts("secret")),
        Err(ClientError::Unsupported(_))
    ));
    let c = Client::connect(&url, opts("secret")).expect("right password");
    c.send("/queue/auth", b"ok", &[], true).expect("send");
    c.close().expect("close");
}

#[test]
fn failover_broker_restart_keeps_every_confirmed_send() {
    const TOTAL: u64 = 5000;
    const KILL_AT: u64 = 1000;
    let mut b = broker();
    let url = format!(
        "failover:(tcp://127.0.0.1:{})?initialReconnectDelay=50&maxReconnectDelay=1000",
        ow_port(&b)
    );
    // A consumer on the same failover URL: its subscription must come back.
    let consumer = connect(&url);
    consumer
        .subscribe("/queue/fo", AckMode::ClientIndividual, 200, None, None)
        .expect("subscribe");
    let confirmed = Arc::new(AtomicU64::new(0));
    let producer = {
        let confirmed = Arc::clone(&confirmed);
        let url = url.clone();
        std::thread::spawn(move || {
            let c = connect(&url);
            // Pipelined, 20 in flight: several sync sends are unanswered at the kill
            // and must be replayed with their original message ids.
            let mut window = std::collections::VecDeque::new();
            for i in 0..TOTAL {
                let p = c
                    .send_async("/queue/fo", b"x", &seq_prop(i), true)
                    .unwrap_or_else(|e| panic!("send {i}: {e}"));
                window.push_back((i, p));
                if i % 100 == 99 {
                    // Paced, so the kill lands mid-stream.
                    std::thread::sleep(Duration::from_millis(10));
                }
                if window.len() >= 20 {
                    let (j, p) = window.pop_front().expect("window");
                    p.wait(Duration::from_secs(60))
                        .unwrap_or_else(|e| panic!("response {j}: {e}"));
                    confirmed.store(j + 1, Ordering::SeqCst);
                }
            }
            for (j, p) in window {
                p.wait(Duration::from_secs(60))
                    .unwrap_or_else(|e| panic!("response {j}: {e}"));
                confirmed.store(j + 1, Ordering::SeqCst);
            }
            let reconnects = c.reconnects();
            c.close().expect("close producer");
            reconnects
        })
    };
    let mut counts: BTreeMap<i64, u32> = BTreeMap::new();
    let take = |n: usize, counts: &mut BTreeMap<i64, u32>| {
        for _ in 0..n {
            let Some(m) = consumer.recv(Duration::from_secs(30)).expect("recv") else {
                return;
            };
            *counts.entry(seq_of(&m)).or_default() += 1;
            consumer.ack(&m).expect("ack");
        }
    };
    assert!(
        poll_until(Duration::from_secs(120), || confirmed
            .load(Ordering::SeqCst)
            >= KILL_AT),
        "producer too slow"
    );
    b.kill9();
    let at_kill = confirmed.load(Ordering::SeqCst);
    b.restart();
    let reconnects = producer.join().expect("producer thread");
    assert_eq!(reconnects, 1, "killed at {at_kill}");
    let deadline = Instant::now() + Duration::from_secs(120);
    while (counts.len() as u64) < TOTAL && Instant::now() < deadline {
        take(100, &mut counts);
    }
    let missing: Vec<u64> = (0..TOTAL)
        .filter(|s| !counts.contains_key(&(*s as i64)))
        .collect();
    assert!(missing.is_empty(), "lost confirmed messages: {missing:?}");
    assert_eq!(consumer.reconnects(), 1);
    consumer.close().expect("close consumer");
}

#[test]
fn real_activemq_both_ways() {
    let amq = ActiveMq::start(ActiveMqOpts::default());
    let url = format!("failover:(tcp://127.0.0.1:{})?randomize=false", amq.port);
    for text in [false, true] {
        let opts = OpenWireOptions {
            text,
            ..OpenWireOptions::default()
        };
        let p = Client::connect(&url, opts.clone()).expect("connect producer");
        let c = Client::connect(&url, opts).expect("connect consumer");
        let q = if text {
            "/queue/amq.text"
        } else {
            "/queue/amq.bytes"
        };
        let sub = c
            .subscribe(q, AckMode::Client, 10, None, None)
            .expect("subscribe");
        // Sync persistent sends, then pipelined ones.
        for i in 0..50u64 {
            p.send(q, format!("m-{i}").as_bytes(), &seq_prop(i), true)
                .expect("send");
        }
        let pending: Vec<_> = (50..100u64)
            .map(|i| {
                p.send_async(q, format!("m-{i}").as_bytes(), &seq_prop(i), true)
                    .expect("send_async")
            })
            .collect();
        for pe in pending {
            pe.wait(REPLY_TIMEOUT).expect("response");
        }
        for i in 0..100 {
            let m = c
                .recv(REPLY_TIMEOUT)
                .unwrap()
                .expect("message from ActiveMQ");
            assert_eq!(seq_of(&m), i);
            assert_eq!(m.body, format!("m-{i}"));
            assert_eq!(m.is_text, text);
            c.ack(&m).expect("ack");
        }
        // The other way: the consumer's client sends, the producer's receives.
        c.unsubscribe(&sub).expect("unsubscribe");
        p.subscribe(q, AckMode::Auto, 1000, None, None)
            .expect("subscribe back");
        c.begin().expect("begin");
        for i in 0..100u64 {
            c.send(q, format!("r-{i}").as_bytes(), &seq_prop(i), true)
                .expect("tx send");
        }
        c.commit().expect("commit");
        for i in 0..100 {
            let m = p.recv(REPLY_TIMEOUT).unwrap().expect("message back");
            assert_eq!(seq_of(&m), i);
            assert_eq!(m.body, format!("r-{i}"));
        }
        p.close().expect("close producer");
        c.close().expect("close consumer");
    }
}
