//! Per-connection and per-broker limits (issue 11), against real `tandem` processes:
//! the hostile client gets its error, the broker's RSS stays bounded, other clients
//! keep being served.

mod support;

use std::time::Duration;

use support::{free_port, http_request, poll_until, Broker, BrokerOpts, Frame, REPLY_TIMEOUT};

const MIB: usize = 1 << 20;

fn status(port: u16) -> serde_json::Value {
    http_request(port, "GET", "/status", None, REPLY_TIMEOUT)
        .expect("status endpoint answers")
        .json()
}

/// Reads frames until one is an ERROR; panics on timeout or close.
fn next_error(c: &mut support::Stomp) -> Frame {
    for _ in 0..100_000 {
        match c.read_frame(REPLY_TIMEOUT) {
            Ok(f) if f.command == "ERROR" => return f,
            Ok(_) => continue,
            Err(e) => panic!("waiting for ERROR: {e:?}"),
        }
    }
    panic!("no ERROR");
}

#[test]
fn a_huge_transaction_is_refused_rolled_back_and_the_connection_kept() {
    let status_port = free_port();
    let broker = Broker::start(BrokerOpts {
        memory_limit: "32 mb".into(),
        status_port: Some(status_port),
        ..BrokerOpts::default()
    });
    let baseline = broker.rss_bytes();
    let mut c = broker.client();
    c.send_frame("BEGIN", &[("transaction", "big")], b"");
    let body = vec![b'x'; MIB];
    // 200 MiB in one transaction; the default maxTransactionSize is half the memory
    // limit (16 MiB). The sends after the refusal name a transaction that no longer
    // exists: each gets its own (non-fatal) ERROR.
    for _ in 0..200 {
        c.send_frame(
            "SEND",
            &[("destination", "/queue/tx"), ("transaction", "big")],
            &body,
        );
    }
    let refused = next_error(&mut c);
    let message = refused.header("message").unwrap_or_default().to_string();
    assert!(
        message.contains("maxTransactionSize") && message.contains("rolled back"),
        "{refused:?}"
    );
    // COMMIT of the rolled-back transaction fails; the connection is still served.
    c.send_frame("COMMIT", &[("transaction", "big"), ("receipt", "c1")], b"");
    let commit = loop {
        let f = next_error(&mut c);
        if f.header("receipt-id") == Some("c1") {
            break f;
        }
    };
    assert!(commit.body_str().contains("not active"), "{commit:?}");
    c.send_receipted("/queue/tx", b"after", "r1");
    // Nothing of the transaction was stored: the one message is the later one.
    let mut other = broker.client();
    other.subscribe("s", "/queue/tx", "auto");
    assert_eq!(other.expect_message().body_str(), "after");
    assert!(other.read_frame(Duration::from_millis(500)).is_err());
    assert_eq!(status(status_port)["limits"]["transaction_bytes"], 0);
    let rss = broker.rss_bytes();
    assert!(
        rss < baseline + 96 * MIB as u64,
        "RSS {rss} grew more than 96 MiB over {baseline}"
    );
}

#[test]
fn a_consumer_that_never_reads_stops_receiving_and_never_grows_the_broker() {
    let status_port = free_port();
    let broker = Broker::start(BrokerOpts {
        memory_limit: "32 mb".into(),
        segment_size: "32 mb".into(),
        status_port: Some(status_port),
        ..BrokerOpts::default()
    });
    let mut producer = broker.client();
    let body = vec![b'y'; MIB];
    for i in 0..100 {
        producer.send_receipted("/queue/slow", &body, &format!("p{i}"));
    }
    let baseline = broker.rss_bytes();
    // Asks a prefetch of 2^31 and never reads a byte.
    let mut hostile = broker.client();
    hostile.send_frame(
        "SUBSCRIBE",
        &[
            ("id", "h"),
            ("destination", "/queue/slow"),
            ("ack", "client"),
            ("activemq.prefetchSize", "2147483648"),
        ],
        b"",
    );
    // Dispatch to it stops at maxPendingOutput (default 4 MiB) unwritten beyond what
    // the sockets hold.
    assert!(
        poll_until(REPLY_TIMEOUT, || {
            status(status_port)["limits"]["pending_output_bytes"]
                .as_u64()
                .is_some_and(|b| b >= 4 * MIB as u64)
        }),
        "the hostile consumer never filled its pending output"
    );
    // Another consumer is served the rest of the queue.
    let mut good = broker.client();
    good.subscribe("g", "/queue/slow", "auto");
    for _ in 0..50 {
        good.expect_message();
    }
    let s = status(status_port);
    let pending = s["limits"]["pending_output_bytes"]
        .as_u64()
        .unwrap_or(u64::MAX);
    // Memory by use shows the same, next to the bodies and the process's RSS.
    let memory = &s["memory"];
    assert_eq!(
        memory["by_use"]["pending_output"].as_u64(),
        Some(pending),
        "{s}"
    );
    assert_eq!(
        memory["by_use"]["message_bodies"], memory["used_bytes"],
        "{s}"
    );
    assert!(memory["messages"].as_u64().is_some_and(|m| m >= 40), "{s}");
    assert!(memory["rss_bytes"].as_u64().is_some_and(|r| r > 0), "{s}");
    // Each of the two consumers: 4 MiB plus the one message that may cross the bound.
    assert!(
        pending <= 2 * (5 * MIB as u64 + 4096),
        "pending output {pending}"
    );
    let rss = broker.rss_bytes();
    assert!(
        rss < baseline + 64 * MIB as u64,
        "RSS {rss} grew more than 64 MiB over {baseline} (100 MiB queued)"
    );
    drop(hostile);
}

/// Sends `make(i)` frames with receipts in batches until one is refused; returns the
/// ERROR and how many were accepted.
fn until_refused(
    c: &mut support::Stomp,
    limit: usize,
    make: impl Fn(usize) -> Vec<u8>,
) -> (Frame, usize) {
    let batch = 1000;
    let mut accepted = 0;
    let mut i = 0;
    while i < limit {
        for j in i..(i + batch).min(limit) {
            c.send_raw(&make(j));
        }
        let mut refused = None;
        for _ in i..(i + batch).min(limit) {
            let f = c.read_frame(REPLY_TIMEOUT).expect("an answer per frame");
            match (f.command.as_str(), &refused) {
                ("RECEIPT", None) => accepted += 1,
                ("ERROR", None) => refused = Some(f),
                // The rest of the batch: refused as well (the limit holds).
                ("ERROR", Some(_)) => {}
                (other, _) => panic!("unexpected {other}: {f:?}"),
            }
        }
        if let Some(f) = refused {
            return (f, accepted);
        }
        i += batch;
    }
    panic!("{limit} frames accepted, none refused");
}

#[test]
fn subscriptions_and_temporary_destinations_per_connection_are_capped() {
    let broker = Broker::start(BrokerOpts::default());
    let baseline = broker.rss_bytes();
    let mut c = broker.client();
    let (err, accepted) = until_refused(&mut c, 100_000, |i| {
        support::encode(
            "SUBSCRIBE",
            &[
                ("id", &format!("s{i}")),
                ("destination", "/topic/many"),
                ("receipt", &format!("r{i}")),
            ],
            b"",
        )
    });
    assert_eq!(accepted, 10_000, "{err:?}");
    assert!(
        err.header("message")
            .is_some_and(|m| m.contains("maxSubscriptionsPerConnection")),
        "{err:?}"
    );
    // The connection is kept and still served.
    c.send_receipted("/queue/after-subs", b"ok", "k1");

    let mut t = broker.client();
    let (err, accepted) = until_refused(&mut t, 100_000, |i| {
        // A STOMP temporary queue exists once subscribed to.
        support::encode(
            "SUBSCRIBE",
            &[
                ("id", &format!("t{i}")),
                ("destination", &format!("/temp-queue/t{i}")),
                ("receipt", &format!("r{i}")),
            ],
            b"",
        )
    });
    assert_eq!(accepted, 1_000, "{err:?}");
    assert!(
        err.header("message")
            .is_some_and(|m| m.contains("maxTemporaryDestinationsPerConnection")),
        "{err:?}"
    );
    t.send_receipted("/queue/after-temps", b"ok", "k2");
    // Other clients are served.
    let mut other = broker.client();
    other.subscribe("o", "/queue/after-subs", "auto");
    assert_eq!(other.expect_message().body_str(), "ok");
    let rss = broker.rss_bytes();
    assert!(
        rss < baseline + 64 * MIB as u64,
        "RSS {rss} grew more than 64 MiB over {baseline}"
    );
}

/// The real JMS client sends to a composite destination of 2 000 members (one name,
/// `m0,m1,...`; the client's own string limit is 64 KiB): ResourceAllocationException, nothing stored, and the broker serves the
/// same client's next send to a composite within the cap.
#[test]
fn a_jms_composite_destination_beyond_the_cap_is_refused() {
    let status_port = free_port();
    let ow = free_port();
    let _broker = Broker::start(BrokerOpts {
        status_port: Some(status_port),
        openwire_port: Some(ow),
        ..BrokerOpts::default()
    });
    let url = format!("tcp://127.0.0.1:{ow}");
    let huge: Vec<String> = (0..2_000).map(|i| format!("m{i}")).collect();
    let dest = format!("queue:{}", huge.join(","));
    let out = support::jms::probe(&url, "send", &["--dest", &dest, "--count", "1"]);
    assert_eq!(
        out.expect_error(),
        "javax.jms.ResourceAllocationException",
        "{}",
        out.dump()
    );
    let s = status(status_port);
    let refused = s["limits"]["refusals"]
        .as_array()
        .expect("limits.refusals")
        .iter()
        .find(|r| r["limit"] == "maxCompositeDestinations")
        .and_then(|r| r["count"].as_u64());
    assert_eq!(refused, Some(1), "{s}");
    let listed = s["destinations"].as_array().map_or(0, |d| d.len());
    assert!(
        listed < 10,
        "the refused send created destinations: {listed}"
    );

    // Within the cap it works, and the broker keeps serving.
    support::jms::probe(&url, "send", &["--dest", "queue:ok-a,ok-b", "--count", "2"]).assert_ok();
    let got =
        support::jms::probe(&url, "recv", &["--dest", "queue:ok-b", "--count", "2"]).assert_ok();
    assert_eq!(got.recv_seqs(), vec![0, 1]);
}

/// `<tandem maxDestinations="20">`: a STOMP client creating queues one send at a time
/// gets an ERROR naming `maxDestinations` once the broker holds 20, its connection
/// kept; existing queues keep working; the real JMS client creating one more gets
/// ResourceAllocationException. After a restart (the 20 queues come back from the
/// journal) the limit still holds; deleting a queue makes room for one more.
#[test]
fn destinations_per_broker_are_capped_across_a_restart() {
    const LIMIT: usize = 20;
    let status_port = free_port();
    let ow = free_port();
    let mut broker = Broker::start(BrokerOpts {
        status_port: Some(status_port),
        openwire_port: Some(ow),
        tandem_extra: Some(format!(r#"maxDestinations="{LIMIT}""#)),
        ..BrokerOpts::default()
    });
    let mut c = broker.client();
    // One at a time: queues live on different shards, whose answers may overtake
    // each other.
    let mut accepted = 0;
    let err = loop {
        assert!(accepted <= LIMIT, "{accepted} queues created");
        c.send_frame(
            "SEND",
            &[
                ("destination", &format!("/queue/d{accepted}")),
                ("persistent", "true"),
                ("receipt", &format!("r{accepted}")),
            ],
            format!("m{accepted}").as_bytes(),
        );
        let f = c.read_frame(REPLY_TIMEOUT).expect("an answer per send");
        match f.command.as_str() {
            "RECEIPT" => accepted += 1,
            "ERROR" => break f,
            other => panic!("unexpected {other}: {f:?}"),
        }
    };
    assert_eq!(accepted, LIMIT, "{err:?}");
    assert!(err.body_str().contains("maxDestinations"), "{err:?}");
    // The connection is kept; an existing queue takes more.
    c.send_receipted("/queue/d0", b"again", "k1");
    let s = status(status_port);
    assert_eq!(
        s["limits"]["destinations"].as_u64(),
        Some(LIMIT as u64),
        "{s}"
    );
    let refused = |s: &serde_json::Value| {
        s["limits"]["refusals"]
            .as_array()
            .expect("limits.refusals")
            .iter()
            .find(|r| r["limit"] == "maxDestinations")
            .and_then(|r| r["count"].as_u64())
            .unwrap_or(0)
    };
    assert!(refused(&s) >= 1, "{s}");
    let url = format!("tcp://127.0.0.1:{ow}");
    let out = support::jms::probe(&url, "send", &["--dest", "queue:jms-new", "--count", "1"]);
    assert_eq!(
        out.expect_error(),
        "javax.jms.ResourceAllocationException",
        "{}",
        out.dump()
    );

    broker.kill9();
    broker.restart();
    let s = status(status_port);
    assert_eq!(
        s["limits"]["destinations"].as_u64(),
        Some(LIMIT as u64),
        "{s}"
    );
    let mut c = broker.client();
    c.send_frame(
        "SEND",
        &[("destination", "/queue/after-restart"), ("receipt", "x")],
        b"no room",
    );
    let err = next_error(&mut c);
    assert!(err.body_str().contains("maxDestinations"), "{err:?}");
    // Deleting a queue makes room for exactly one more.
    let deleted = http_request(
        status_port,
        "POST",
        "/admin/delete?destination=/queue/d1",
        None,
        REPLY_TIMEOUT,
    )
    .expect("admin answers");
    assert_eq!(deleted.code, 200, "{}", deleted.body);
    let mut c = broker.client();
    c.send_receipted("/queue/after-delete", b"room", "k2");
    c.subscribe("s", "/queue/d0", "auto");
    assert_eq!(c.expect_message().body_str(), "m0");
    assert_eq!(c.expect_message().body_str(), "again");
}

/// `<tandem maxProducersPerConnection="50">`: the real JMS client's 51st producer on one
/// connection gets ResourceAllocationException; the connection is kept (its first
/// producer still sends), and the message is there for another client.
#[test]
fn jms_producers_per_connection_are_capped() {
    let status_port = free_port();
    let ow = free_port();
    let broker = Broker::start(BrokerOpts {
        status_port: Some(status_port),
        openwire_port: Some(ow),
        tandem_extra: Some(r#"maxProducersPerConnection="50""#.into()),
        ..BrokerOpts::default()
    });
    let url = format!("tcp://127.0.0.1:{ow}");
    let out =
        support::jms::probe(&url, "producers", &["--dest", "queue:many-producers"]).assert_ok();
    assert!(
        out.lines
            .iter()
            .any(|l| l == "REFUSED after=50 error=javax.jms.ResourceAllocationException"),
        "{}",
        out.dump()
    );
    assert!(
        out.lines.iter().any(|l| l == "OK created=50 sent=1"),
        "{}",
        out.dump()
    );
    let mut c = broker.client();
    c.subscribe("s", "/queue/many-producers", "auto");
    assert_eq!(c.expect_message().body_str(), "after-refusal");
    let s = status(status_port);
    let refused = s["limits"]["refusals"]
        .as_array()
        .expect("limits.refusals")
        .iter()
        .find(|r| r["limit"] == "maxProducersPerConnection")
        .and_then(|r| r["count"].as_u64());
    assert_eq!(refused, Some(1), "{s}");
}

/// `<tandem maxTransactionsPerConnection="20">`: the 21st open transaction of a STOMP
/// connection gets a non-fatal ERROR naming the limit; the open ones still commit.
#[test]
fn open_transactions_per_connection_are_capped() {
    let broker = Broker::start(BrokerOpts {
        tandem_extra: Some(r#"maxTransactionsPerConnection="20""#.into()),
        ..BrokerOpts::default()
    });
    let mut c = broker.client();
    let (err, accepted) = until_refused(&mut c, 1_000, |i| {
        support::encode(
            "BEGIN",
            &[
                ("transaction", &format!("t{i}")),
                ("receipt", &format!("b{i}")),
            ],
            b"",
        )
    });
    assert_eq!(accepted, 20, "{err:?}");
    assert!(
        err.header("message")
            .is_some_and(|m| m.contains("maxTransactionsPerConnection")),
        "{err:?}"
    );
    c.send_frame(
        "SEND",
        &[("destination", "/queue/tx-cap"), ("transaction", "t0")],
        b"in t0",
    );
    c.send_frame("COMMIT", &[("transaction", "t0"), ("receipt", "c0")], b"");
    let f = c.read_frame(REPLY_TIMEOUT).expect("commit receipt");
    assert_eq!(f.command, "RECEIPT", "{f:?}");
    let mut other = broker.client();
    other.subscribe("o", "/queue/tx-cap", "auto");
    assert_eq!(other.expect_message().body_str(), "in t0");
}

/// `<storeUsage limit="8 mb">` with 1 MiB segments: persistent sends are refused
/// (STOMP ERROR naming storeUsage, the connection kept) once the journal holds 8 MiB,
/// before any disk is full; non-persistent ones still go. Consuming the backlog lets
/// the journal reclaim its segments, and sends are accepted again, no restart.
#[test]
fn store_usage_refuses_persistent_sends_until_consumers_free_the_journal() {
    let status_port = free_port();
    let broker = Broker::start(BrokerOpts {
        segment_size: "1 mb".into(),
        store_limit: Some("8 mb".into()),
        status_port: Some(status_port),
        ..BrokerOpts::default()
    });
    let mut c = broker.client();
    let body = vec![b's'; 64 * 1024];
    let mut accepted = 0;
    let refused = loop {
        assert!(
            accepted < 1000,
            "{accepted} x 64 KiB accepted under an 8 mb store limit"
        );
        c.send_frame(
            "SEND",
            &[
                ("destination", "/queue/store"),
                ("persistent", "true"),
                ("receipt", &format!("s{accepted}")),
            ],
            &body,
        );
        let f = c.read_frame(REPLY_TIMEOUT).expect("an answer per send");
        match f.command.as_str() {
            "RECEIPT" => accepted += 1,
            "ERROR" => break f,
            other => panic!("unexpected {other}: {f:?}"),
        }
    };
    assert!(refused.body_str().contains("storeUsage"), "{refused:?}");
    // Non-persistent messages do not need the journal.
    c.send_frame(
        "SEND",
        &[
            ("destination", "/queue/store-np"),
            ("persistent", "false"),
            ("receipt", "np"),
        ],
        b"np",
    );
    assert_eq!(
        c.read_frame(REPLY_TIMEOUT).expect("answer").command,
        "RECEIPT"
    );
    let s = status(status_port);
    assert!(
        s["limits"]["store_bytes"]
            .as_u64()
            .is_some_and(|b| b >= 8 * MIB as u64),
        "{s}"
    );

    let mut consumer = broker.client();
    consumer.subscribe("d", "/queue/store", "auto");
    for _ in 0..accepted {
        consumer.expect_message();
    }
    // The journal reclaims consumed segments; sends are taken again.
    let mut again = None;
    let ok = poll_until(Duration::from_secs(30), || {
        c.send_frame(
            "SEND",
            &[
                ("destination", "/queue/store"),
                ("persistent", "true"),
                ("receipt", "again"),
            ],
            b"again",
        );
        let f = c.read_frame(REPLY_TIMEOUT).expect("answer");
        again = Some(f.command.clone());
        f.command == "RECEIPT"
    });
    assert!(
        ok,
        "sends still refused after the backlog was consumed: {again:?}, {}",
        status(status_port)
    );
    assert_eq!(consumer.expect_message().body_str(), "again");
}
