//! Tests for SEND: message building, errors, flow control, temporary destinations.

use super::*;
use crate::broker::{BrokerError, MessageRef};

#[test]
fn send_builds_the_message_and_receipts_on_done() {
    let mut s = connected("1.2", 1);
    let mut f = frame(
        Command::Send,
        &[
            ("destination", "/queue/orders"),
            ("receipt", "r1"),
            ("persistent", "true"),
            ("priority", "7"),
            ("expires", "99"),
            ("content-type", "text/plain"),
            ("content-length", "2"),
            ("custom", "x"),
        ],
    );
    f.body = Bytes::from_static(b"hi");
    s.on_frame(f);
    let mut p = posts(s.take_actions());
    let (shard, Request::Send { msg, reply }) = p.remove(0) else {
        panic!("not a send")
    };
    assert_eq!(shard, 0);
    assert_eq!(msg.id, "ID:m-1");
    assert_eq!(msg.destination, Destination::queue("orders"));
    assert!(msg.persistent);
    assert_eq!(
        (msg.priority, msg.expires_ms, msg.timestamp_ms),
        (7, 99, 1000)
    );
    assert_eq!(
        msg.headers,
        vec![
            ("content-type".to_string(), "text/plain".to_string()),
            ("custom".to_string(), "x".to_string())
        ]
    );
    assert_eq!(&msg.body[..], b"hi");
    s.on_event(ok(reply));
    let a = s.take_actions();
    assert_eq!(headers(writes(&a)[0]), vec![("receipt-id", "r1")]);
    assert_eq!(writes(&a)[0].command, Command::Receipt);

    // A refused send: ERROR naming the receipt, connection stays open.
    s.on_frame(frame(
        Command::Send,
        &[("destination", "plain"), ("receipt", "r2")],
    ));
    let mut p = posts(s.take_actions());
    let (_, Request::Send { msg, reply }) = p.remove(0) else {
        panic!()
    };
    assert_eq!(msg.destination, Destination::queue("plain"));
    assert!(!msg.persistent);
    s.on_event(Event::Done {
        reply,
        result: Err(BrokerError::from(crate::store::StoreError::Failed(
            "disk".into(),
        ))),
    });
    let a = s.take_actions();
    assert_eq!(a.len(), 1);
    let e = writes(&a)[0];
    assert_eq!(e.header("receipt-id"), Some("r2"));
    assert_eq!(e.header("message"), Some("Send failed"));
}

#[test]
fn send_errors_close_the_connection() {
    for h in [
        vec![],
        vec![("destination", "/bogus/x")],
        vec![("destination", "/queue/")],
        vec![("destination", "/queue/a"), ("priority", "high")],
    ] {
        let mut s = connected("1.2", 1);
        s.on_frame(frame(Command::Send, &h));
        let a = s.take_actions();
        assert_eq!(writes(&a)[0].command, Command::Error, "{h:?}");
        assert!(
            is_close(a.last().unwrap_or(&Action::ResumeReading)),
            "{h:?}"
        );
    }
}

#[test]
fn pending_sends_pause_and_resume_reading() {
    let settings = BrokerSettings {
        max_pending_sends: 2,
        ..BrokerSettings::default()
    };
    let mut s = session_with(1, settings);
    s.on_frame(frame(Command::Connect, &[]));
    s.take_actions();
    let send = || frame(Command::Send, &[("destination", "/queue/a")]);
    s.on_frame(send());
    let a1 = s.take_actions();
    assert!(!a1.iter().any(|a| matches!(a, Action::PauseReading)));
    s.on_frame(send());
    let a2 = s.take_actions();
    assert!(matches!(a2.last(), Some(Action::PauseReading)));
    let r = reply_of(&posts(a1)[0].1);
    s.on_event(ok(r));
    assert!(matches!(s.take_actions()[..], [Action::ResumeReading]));
}

#[test]
fn temp_destinations_map_aliases_per_connection() {
    let mut s = connected("1.1", 4);
    s.on_frame(frame(
        Command::Send,
        &[
            ("destination", "/temp-queue/r"),
            ("reply-to", "/temp-queue/r"),
        ],
    ));
    s.on_frame(frame(Command::Send, &[("destination", "/temp-queue/r")]));
    s.on_frame(frame(Command::Send, &[("destination", "/temp-topic/r")]));
    let p = posts(s.take_actions());
    let msgs: Vec<crate::broker::MessageRef> = p
        .into_iter()
        .filter_map(|(_, r)| match r {
            Request::Send { msg, .. } => Some(msg),
            _ => None,
        })
        .collect();
    let real = "ID:tandem-abc-0-7:1";
    assert_eq!(msgs[0].destination.kind, DestKind::TempQueue);
    assert_eq!(msgs[0].destination.name, real);
    assert_eq!(msgs[1].destination, msgs[0].destination);
    assert_eq!(
        msgs[0].reply_to.as_deref(),
        Some("/remote-temp-queue/ID:tandem-abc-0-7:1")
    );
    assert_eq!(msgs[2].destination.kind, DestKind::TempTopic);
    assert_ne!(msgs[2].destination.name, real);

    // Subscribing to our own temp queue marks us its owner; deliveries show the alias.
    s.on_frame(frame(
        Command::Subscribe,
        &[("destination", "/temp-queue/r"), ("id", "s")],
    ));
    let mut p = posts(s.take_actions());
    let (_, Request::Subscribe { sub, spec, reply }) = p.remove(0) else {
        panic!()
    };
    assert_eq!(spec.temp_owner, Some(CONN));
    s.on_event(ok(reply));
    s.on_event(delivery(sub, msgs[0].destination.clone(), 1, "m"));
    let a = s.take_actions();
    assert_eq!(writes(&a)[0].header("destination"), Some("/temp-queue/r"));

    // Another connection's temp queue: no owner, name used as is.
    s.on_frame(frame(
        Command::Subscribe,
        &[("destination", "/remote-temp-queue/ID:x:1"), ("id", "t")],
    ));
    let mut p = posts(s.take_actions());
    let (_, Request::Subscribe { spec, .. }) = p.remove(0) else {
        panic!()
    };
    assert_eq!(spec.temp_owner, None);
    assert_eq!(spec.destination.name, "ID:x:1");
}

/// A connected STOMP 1.2 session whose broker holds `queues` as virtual-topic
/// consumer queues.
fn connected_with_consumer_queues(queues: &[&str], settings: BrokerSettings) -> Session<TestEnv> {
    let registries = Arc::new(Registries::default());
    let rules = vec![crate::broker::VirtualTopicRule::activemq_default()];
    for q in queues {
        let topics = crate::broker::virtual_topic::topics_of(&rules, &Destination::queue(*q));
        registries.virtual_topics.add(q, topics, 1);
    }
    let mut s = session_in(registries, CONN, 4, settings);
    s.on_frame(frame(
        Command::Connect,
        &[("host", "localhost"), ("accept-version", "1.2")],
    ));
    s.take_actions();
    s
}

#[test]
fn a_send_to_a_virtual_topic_goes_to_its_consumer_queues_with_one_receipt() {
    let qa = "Consumer.A.VirtualTopic.X";
    let qb = "Consumer.B.VirtualTopic.X";
    let mut s = connected_with_consumer_queues(&[qa, qb], BrokerSettings::default());
    s.on_frame(frame(
        Command::Send,
        &[("destination", "/topic/VirtualTopic.X"), ("receipt", "r1")],
    ));
    let sends: Vec<(ShardId, MessageRef, Reply)> = posts(s.take_actions())
        .into_iter()
        .map(|(shard, r)| match r {
            Request::Send { msg, reply } => (shard, msg, reply),
            other => panic!("not a send: {other:?}"),
        })
        .collect();
    let dests: Vec<&Destination> = sends.iter().map(|(_, m, _)| &m.destination).collect();
    assert_eq!(
        dests,
        vec![
            &Destination::topic("VirtualTopic.X"),
            &Destination::queue(qa),
            &Destination::queue(qb),
        ]
    );
    for (shard, m, _) in &sends {
        assert_eq!(*shard, m.destination.shard(4));
        assert_eq!(m.id, "ID:m-1", "one message, one id");
    }
    // The RECEIPT waits for every copy.
    let mut replies: Vec<Reply> = sends.into_iter().map(|(_, _, r)| r).collect();
    let last = replies.pop().unwrap();
    for r in replies {
        s.on_event(ok(r));
        assert!(writes(&s.take_actions()).is_empty());
    }
    s.on_event(ok(last));
    let a = s.take_actions();
    assert_eq!(headers(writes(&a)[0]), vec![("receipt-id", "r1")]);

    // A topic that is not virtual, or a queue of that name: one send.
    for dest in ["/topic/Other", "/queue/VirtualTopic.X"] {
        s.on_frame(frame(Command::Send, &[("destination", dest)]));
        assert_eq!(posts(s.take_actions()).len(), 1, "{dest}");
    }
}

#[test]
fn a_virtual_topic_send_in_a_transaction_buffers_every_copy() {
    let mut s =
        connected_with_consumer_queues(&["Consumer.A.VirtualTopic.X"], BrokerSettings::default());
    s.on_frame(frame(Command::Begin, &[("transaction", "t")]));
    s.on_frame(frame(
        Command::Send,
        &[
            ("destination", "/topic/VirtualTopic.X"),
            ("transaction", "t"),
        ],
    ));
    s.take_actions();
    s.on_frame(frame(Command::Commit, &[("transaction", "t")]));
    let ops: usize = posts(s.take_actions())
        .iter()
        .map(|(_, r)| match r {
            Request::Commit { ops, .. } | Request::Prepare { ops, .. } => ops.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(ops, 2, "the topic's copy and the consumer queue's");
}

#[test]
fn a_virtual_topic_send_beyond_the_composite_cap_is_refused_and_counted() {
    let mut settings = BrokerSettings::default();
    settings.limits.max_composite_destinations = 2;
    let mut s = connected_with_consumer_queues(
        &["Consumer.A.VirtualTopic.X", "Consumer.B.VirtualTopic.X"],
        settings,
    );
    s.on_frame(frame(
        Command::Send,
        &[("destination", "/topic/VirtualTopic.X"), ("receipt", "r")],
    ));
    let a = s.take_actions();
    let e = writes(&a)[0];
    assert_eq!(e.command, Command::Error);
    assert!(
        String::from_utf8_lossy(&e.body).contains("maxCompositeDestinations"),
        "{e:?}"
    );
    assert!(!a.iter().any(is_close), "the connection stays open");
    assert!(posts(a).is_empty());
}
