//! The Rust STOMP client (`tandem::client`) against real broker processes: round trips,
//! transactions, and failover across `kill -9`.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{free_port, poll_until, Broker, BrokerOpts, REPLY_TIMEOUT};
use tandem::client::{AckMode, Client, ClientError, ClientOptions, Message};

const PERSISTENT: (&str, &str) = ("persistent", "true");

fn plain(port: u16) -> String {
    format!("stomp://127.0.0.1:{port}")
}

fn connect(url: &str) -> Client {
    Client::connect(url, ClientOptions::default()).unwrap_or_else(|e| panic!("connect {url}: {e}"))
}

fn seq_of(m: &Message) -> u64 {
    m.header("seq")
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("message without seq: {m:?}"))
}

#[test]
fn round_trip_ack_transactions_binary() {
    let broker = Broker::start(BrokerOpts::default());
    let c = connect(&plain(broker.port));
    let sub = c
        .subscribe("/queue/rt", AckMode::ClientIndividual, &[])
        .expect("subscribe");

    c.send("/queue/rt", b"hello", &[PERSISTENT, ("x-app", "a:b")])
        .expect("send");
    let m = c.recv(REPLY_TIMEOUT).unwrap().expect("message");
    assert_eq!(&m.body[..], b"hello");
    assert_eq!(m.destination, "/queue/rt");
    assert_eq!(m.subscription, sub.as_str());
    assert_eq!(m.header("x-app"), Some("a:b"), "escaped header round trip");
    assert!(!m.redelivered);
    c.ack(&m).expect("ack");

    // Every byte value, NULs included.
    let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    c.send("/queue/rt", &binary, &[PERSISTENT])
        .expect("send binary");
    let m = c.recv(REPLY_TIMEOUT).unwrap().expect("binary message");
    assert_eq!(&m.body[..], &binary[..]);
    c.ack(&m).expect("ack binary");

    // Pipelined sends: all written first, then every receipt; delivered in order.
    let pending: Vec<_> = (0..50)
        .map(|i| {
            let body = format!("p-{i}");
            c.send_async("/queue/rt", body.as_bytes(), &[PERSISTENT])
                .expect("send_async")
        })
        .collect();
    for p in pending {
        p.wait(REPLY_TIMEOUT).expect("receipt");
    }
    for i in 0..50 {
        let m = c.recv(REPLY_TIMEOUT).unwrap().expect("pipelined message");
        assert_eq!(m.body, format!("p-{i}"));
        c.ack(&m).expect("ack");
    }

    // Commit: nothing visible before, all of it in order after.
    c.begin("t1").expect("begin");
    for i in 0..3 {
        let body = format!("tx-{i}");
        c.send(
            "/queue/rt",
            body.as_bytes(),
            &[PERSISTENT, ("transaction", "t1")],
        )
        .expect("send in tx");
    }
    assert!(c.recv(Duration::from_millis(300)).unwrap().is_none());
    c.commit("t1").expect("commit");
    for i in 0..3 {
        let m = c.recv(REPLY_TIMEOUT).unwrap().expect("committed message");
        assert_eq!(m.body, format!("tx-{i}"));
        c.ack(&m).expect("ack");
    }

    // Abort: nothing ever arrives; the name is free again.
    c.begin("t2").expect("begin");
    c.send("/queue/rt", b"never", &[("transaction", "t2")])
        .expect("send in tx");
    c.abort("t2").expect("abort");
    assert!(c.recv(Duration::from_millis(300)).unwrap().is_none());
    assert!(matches!(c.commit("t2"), Err(ClientError::Transaction(..))));
    assert!(matches!(
        c.send("/queue/rt", b"x", &[("transaction", "nope")]),
        Err(ClientError::Transaction(..))
    ));

    // NACK sends it to the dead-letter queue (or redelivers): either way not back here
    // unflagged.
    c.send("/queue/rt", b"refused", &[PERSISTENT])
        .expect("send");
    let m = c.recv(REPLY_TIMEOUT).unwrap().expect("message");
    c.nack(&m).expect("nack");

    c.unsubscribe(&sub).expect("unsubscribe");
    assert_eq!(c.reconnects(), 0);
    c.close().expect("close");
}

#[test]
fn failover_one_broker_restarted_keeps_every_confirmed_send() {
    const TOTAL: u64 = 2000;
    const KILL_AT: u64 = 1000;
    let mut broker = Broker::start(BrokerOpts::default());
    let url = format!(
        "failover:(stomp://127.0.0.1:{})?initialReconnectDelay=50&maxReconnectDelay=1000",
        broker.port
    );
    let confirmed = Arc::new(AtomicU64::new(0));
    let producer = {
        let confirmed = Arc::clone(&confirmed);
        let url = url.clone();
        std::thread::spawn(move || {
            let c = connect(&url);
            for i in 0..TOTAL {
                let seq = i.to_string();
                c.send("/queue/fo", seq.as_bytes(), &[PERSISTENT, ("seq", &seq)])
                    .unwrap_or_else(|e| panic!("send {i}: {e}"));
                confirmed.store(i + 1, Ordering::SeqCst);
            }
            let reconnects = c.reconnects();
            c.close().expect("close producer");
            reconnects
        })
    };
    assert!(
        poll_until(Duration::from_secs(120), || confirmed
            .load(Ordering::SeqCst)
            >= KILL_AT),
        "producer too slow"
    );
    broker.kill9();
    let at_kill = confirmed.load(Ordering::SeqCst);
    broker.restart();
    let reconnects = producer.join().expect("producer thread");
    assert_eq!(reconnects, 1, "killed at {at_kill}");

    // `send` is synchronous: at most one message was unconfirmed at the kill, so at
    // most one duplicate.
    let c = connect(&plain(broker.port));
    c.subscribe("/queue/fo", AckMode::Auto, &[])
        .expect("subscribe");
    let mut counts: BTreeMap<u64, u32> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while (counts.len() as u64) < TOTAL && Instant::now() < deadline {
        if let Some(m) = c.recv(Duration::from_secs(5)).unwrap() {
            *counts.entry(seq_of(&m)).or_default() += 1;
        }
    }
    while let Some(m) = c.recv(Duration::from_millis(500)).unwrap() {
        *counts.entry(seq_of(&m)).or_default() += 1;
    }
    let missing: Vec<u64> = (0..TOTAL).filter(|s| !counts.contains_key(s)).collect();
    assert!(missing.is_empty(), "lost confirmed messages: {missing:?}");
    let duplicates: Vec<(u64, u32)> = counts
        .iter()
        .filter(|(_, &n)| n > 1)
        .map(|(&s, &n)| (s, n))
        .collect();
    assert!(
        duplicates.len() <= 1 && duplicates.iter().all(|&(s, n)| n == 2 && s >= at_kill),
        "duplicates beyond the one in-flight send (killed at {at_kill}): {duplicates:?}"
    );
    assert_eq!(counts.len() as u64, TOTAL);
    c.close().expect("close consumer");
}

#[test]
fn failover_moves_to_the_second_broker() {
    let mut a = Broker::start(BrokerOpts::default());
    let b = Broker::start(BrokerOpts::default());
    let url = format!(
        "failover:(stomp://127.0.0.1:{},stomp://127.0.0.1:{})?randomize=false&initialReconnectDelay=50",
        a.port, b.port
    );
    let c = connect(&url);
    for i in 0..100u64 {
        let seq = i.to_string();
        c.send("/queue/two", seq.as_bytes(), &[PERSISTENT, ("seq", &seq)])
            .expect("send to A");
    }
    assert_eq!(c.reconnects(), 0);
    a.kill9();
    for i in 100..200u64 {
        let seq = i.to_string();
        c.send("/queue/two", seq.as_bytes(), &[PERSISTENT, ("seq", &seq)])
            .expect("send to B");
    }
    assert_eq!(c.reconnects(), 1);

    // B holds exactly what was sent after the move (no send was in flight at the kill).
    let reader = connect(&plain(b.port));
    reader
        .subscribe("/queue/two", AckMode::Auto, &[])
        .expect("subscribe on B");
    let mut seen = Vec::new();
    while let Some(m) = reader.recv(Duration::from_secs(2)).unwrap() {
        seen.push(seq_of(&m));
    }
    assert_eq!(seen, (100..200).collect::<Vec<_>>());
    c.close().expect("close");
}

#[test]
fn failover_gives_up_after_max_reconnect_attempts() {
    // Nothing listens: the first connect gives up after 3 passes (10 + 20 ms apart).
    let port = free_port();
    let url = format!(
        "failover:(stomp://127.0.0.1:{port})?maxReconnectAttempts=3&initialReconnectDelay=10"
    );
    let started = Instant::now();
    match Client::connect(&url, ClientOptions::default()) {
        Err(ClientError::FailoverExhausted { attempts: 3, .. }) => {}
        Err(e) => panic!("expected FailoverExhausted after 3, got {e}"),
        Ok(_) => panic!("connected to nothing"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // Connected, then the broker dies for good: a waiting send fails the same way.
    let mut broker = Broker::start(BrokerOpts::default());
    let url = format!(
        "failover:(stomp://127.0.0.1:{})?maxReconnectAttempts=3&initialReconnectDelay=10",
        broker.port
    );
    let c = connect(&url);
    c.send("/queue/x", b"1", &[]).expect("send");
    broker.kill9();
    let started = Instant::now();
    let mut result = Ok(());
    assert!(poll_until(Duration::from_secs(10), || {
        result = c.send("/queue/x", b"2", &[]);
        result.is_err()
    }));
    assert!(
        matches!(result, Err(ClientError::FailoverExhausted { .. })),
        "{result:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(matches!(
        c.recv(Duration::from_millis(10)),
        Err(ClientError::FailoverExhausted { .. })
    ));
}

#[test]
fn failover_timeout_bounds_a_send_while_disconnected() {
    let mut broker = Broker::start(BrokerOpts::default());
    let url = format!(
        "failover:(stomp://127.0.0.1:{})?timeout=500&initialReconnectDelay=50&maxReconnectDelay=200",
        broker.port
    );
    let c = connect(&url);
    c.send("/queue/t", b"before", &[PERSISTENT]).expect("send");
    broker.kill9();
    assert!(poll_until(Duration::from_secs(10), || !c.is_connected()));
    let started = Instant::now();
    let result = c.send("/queue/t", b"during", &[PERSISTENT]);
    let waited = started.elapsed();
    assert!(
        matches!(result, Err(ClientError::Disconnected { .. })),
        "{result:?}"
    );
    assert!(
        waited >= Duration::from_millis(450) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    // The client recovers by itself once the broker is back.
    broker.restart();
    assert!(poll_until(Duration::from_secs(20), || c.is_connected()));
    c.send("/queue/t", b"after", &[PERSISTENT])
        .expect("send after");
    assert_eq!(c.reconnects(), 1);
    c.close().expect("close");
}

#[test]
fn subscription_resumes_after_failover() {
    const BATCH: u64 = 200;
    let mut broker = Broker::start(BrokerOpts::default());
    let url = format!(
        "failover:(stomp://127.0.0.1:{})?initialReconnectDelay=50&maxReconnectDelay=1000",
        broker.port
    );
    let consumer = connect(&url);
    consumer
        .subscribe("/queue/resume", AckMode::ClientIndividual, &[])
        .expect("subscribe");
    let producer = connect(&url);
    let send_batch = |from: u64| {
        for i in from..from + BATCH {
            let seq = i.to_string();
            producer
                .send(
                    "/queue/resume",
                    seq.as_bytes(),
                    &[PERSISTENT, ("seq", &seq)],
                )
                .expect("send");
        }
    };
    send_batch(0);

    let mut seen: BTreeMap<u64, Vec<bool>> = BTreeMap::new();
    let mut take = |n: usize| {
        for _ in 0..n {
            let m = consumer
                .recv(REPLY_TIMEOUT)
                .expect("recv")
                .expect("a message in time");
            seen.entry(seq_of(&m)).or_default().push(m.redelivered);
            consumer.ack(&m).expect("ack");
        }
    };
    take(100);
    broker.kill9();
    broker.restart();
    send_batch(BATCH);
    // The rest of the first batch and all of the second arrive on the same subscription.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut rest = Vec::new();
    while Instant::now() < deadline {
        let Some(m) = consumer.recv(REPLY_TIMEOUT).expect("recv") else {
            break;
        };
        rest.push((seq_of(&m), m.redelivered));
        consumer.ack(&m).expect("ack");
        let distinct: BTreeSet<u64> = seen
            .keys()
            .copied()
            .chain(rest.iter().map(|r| r.0))
            .collect();
        if distinct.len() as u64 == 2 * BATCH {
            break;
        }
    }
    for (s, r) in rest {
        seen.entry(s).or_default().push(r);
    }
    let missing: Vec<u64> = (0..2 * BATCH).filter(|s| !seen.contains_key(s)).collect();
    assert!(missing.is_empty(), "never received: {missing:?}");
    // Acked before the kill (each ack receipted): never again; any repeat is flagged.
    for (s, copies) in &seen {
        assert!(
            copies.len() == 1 || copies[1..].iter().all(|&r| r),
            "seq {s} repeated without redelivered: {copies:?}"
        );
        if *s < 100 {
            assert_eq!(copies.len(), 1, "seq {s} was acked before the kill");
        }
    }
    assert_eq!(consumer.reconnects(), 1);
    assert_eq!(producer.reconnects(), 1);
    consumer.close().expect("close consumer");
    producer.close().expect("close producer");
}

#[test]
fn plain_url_login_heartbeats_and_no_reconnect() {
    let mut broker = Broker::start(BrokerOpts {
        users: vec![("app".into(), "secret".into())],
        ..BrokerOpts::default()
    });
    let url = plain(broker.port);
    let bad = ClientOptions {
        login: Some("app".into()),
        passcode: Some("wrong".into()),
        ..ClientOptions::default()
    };
    assert!(matches!(
        Client::connect(&url, bad),
        Err(ClientError::Refused(_))
    ));
    assert!(matches!(
        Client::connect("tcp://127.0.0.1:61616", ClientOptions::default()),
        Err(ClientError::Unsupported(_))
    ));

    // Heart-beats both ways every 50 ms: an idle second must not look like a dead link.
    let opts = ClientOptions {
        login: Some("app".into()),
        passcode: Some("secret".into()),
        heartbeat_ms: (50, 50),
        ..ClientOptions::default()
    };
    let c = Client::connect(&url, opts).expect("connect with login");
    assert!(c.recv(Duration::from_millis(1000)).unwrap().is_none());
    assert!(c.is_connected());
    c.send("/queue/hb", b"alive", &[]).expect("send after idle");

    // A plain URL does not fail over: the loss is final.
    broker.kill9();
    let mut result = Ok(());
    assert!(poll_until(Duration::from_secs(10), || {
        result = c.send("/queue/hb", b"x", &[]);
        result.is_err()
    }));
    assert!(
        matches!(result, Err(ClientError::ConnectionLost(_))),
        "{result:?}"
    );
    assert_eq!(c.reconnects(), 0);
}

#[test]
fn open_transaction_is_replayed_whole_after_failover() {
    let mut broker = Broker::start(BrokerOpts::default());
    let url = format!(
        "failover:(stomp://127.0.0.1:{})?initialReconnectDelay=50&maxReconnectDelay=1000",
        broker.port
    );
    let c = connect(&url);
    c.begin("batch").expect("begin");
    for i in 0..20u64 {
        let seq = i.to_string();
        c.send(
            "/queue/txfo",
            seq.as_bytes(),
            &[PERSISTENT, ("seq", &seq), ("transaction", "batch")],
        )
        .expect("send in tx");
    }
    // The broker dies with the transaction open: it is gone there, and the client
    // replays BEGIN and all 20 sends on the new connection before the COMMIT.
    broker.kill9();
    broker.restart();
    c.commit("batch").expect("commit after failover");
    assert_eq!(c.reconnects(), 1);

    let reader = connect(&plain(broker.port));
    reader
        .subscribe("/queue/txfo", AckMode::Auto, &[])
        .expect("subscribe");
    let mut seen = Vec::new();
    while let Some(m) = reader.recv(Duration::from_secs(2)).unwrap() {
        seen.push(seq_of(&m));
    }
    assert_eq!(seen, (0..20).collect::<Vec<_>>(), "exactly the batch, once");
    c.close().expect("close");
}
