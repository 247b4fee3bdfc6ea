//! Tests for SUBSCRIBE/UNSUBSCRIBE and deliveries (MESSAGE headers, auto-ack on write).

use super::*;
use crate::broker::{AckMode, DurableName};

#[test]
fn subscribe_request_and_validation() {
    let mut s = connected("1.2", 1);
    s.on_frame(frame(
        Command::Subscribe,
        &[
            ("destination", "/topic/t"),
            ("id", "0"),
            ("ack", "client-individual"),
            ("activemq.prefetchSize", "5"),
            ("selector", "color = 'red'"),
            ("receipt", "r"),
        ],
    ));
    let mut p = posts(s.take_actions());
    let (_, Request::Subscribe { sub, spec, reply }) = p.remove(0) else {
        panic!()
    };
    assert_eq!(sub, SubKey { conn: CONN, sub: 1 });
    assert_eq!(spec.ack, AckMode::ClientIndividual);
    assert_eq!(spec.prefetch, 5);
    assert_eq!(spec.selector.as_deref(), Some("color = 'red'"));
    assert!(spec.durable.is_none());
    s.on_event(ok(reply));
    assert_eq!(writes(&s.take_actions())[0].header("receipt-id"), Some("r"));

    // Duplicate id, bad ack mode, missing id in 1.1+, durable without client-id.
    for h in [
        vec![("destination", "/queue/q"), ("id", "0")],
        vec![
            ("destination", "/queue/q"),
            ("id", "1"),
            ("ack", "sometimes"),
        ],
        vec![("destination", "/queue/q")],
        vec![
            ("destination", "/topic/t"),
            ("id", "2"),
            ("activemq.subscriptionName", "d"),
        ],
    ] {
        let mut s2 = connected("1.2", 1);
        subscribe(&mut s2, &[("destination", "/queue/q"), ("id", "0")]);
        s2.on_frame(frame(Command::Subscribe, &h));
        let a = s2.take_actions();
        assert_eq!(writes(&a)[0].command, Command::Error, "{h:?}");
        assert!(is_close(&a[1]), "{h:?}");
    }
}

#[test]
fn durable_subscribe_and_unsubscribe_with_name_removes_it() {
    let mut s = session_with(1, BrokerSettings::default());
    s.on_frame(frame(
        Command::Connect,
        &[("accept-version", "1.1"), ("client-id", "app")],
    ));
    s.take_actions();
    s.on_frame(frame(
        Command::Subscribe,
        &[
            ("destination", "/topic/t"),
            ("id", "d1"),
            ("activemq.subscriptionName", "sub"),
        ],
    ));
    let mut p = posts(s.take_actions());
    let (_, Request::Subscribe { spec, reply, .. }) = p.remove(0) else {
        panic!()
    };
    let name = DurableName {
        client_id: "app".into(),
        name: "sub".into(),
    };
    assert_eq!(spec.durable.as_ref(), Some(&name));
    s.on_event(ok(reply));
    s.take_actions();
    s.on_frame(frame(
        Command::Unsubscribe,
        &[("id", "d1"), ("activemq.subscriptionName", "sub")],
    ));
    let mut p = posts(s.take_actions());
    let (_, Request::Unsubscribe { remove_durable, .. }) = p.remove(0) else {
        panic!()
    };
    assert_eq!(remove_durable, Some(name));
    // Unknown id: ERROR, connection stays open.
    s.on_frame(frame(Command::Unsubscribe, &[("id", "d1")]));
    let a = s.take_actions();
    assert_eq!(a.len(), 1);
    assert_eq!(
        writes(&a)[0].header("message"),
        Some("No subscription matched")
    );
}

#[test]
fn deliveries_carry_the_right_headers_in_each_version() {
    let dest = Destination::queue("q");
    // 1.0 without id: no subscription header; message-id acks.
    let mut s = connected("1.0", 1);
    let sub = subscribe(&mut s, &[("destination", "/queue/q"), ("ack", "client")]);
    s.on_event(delivery(sub, dest.clone(), 1, "m1"));
    let a = s.take_actions();
    assert_eq!(
        headers(writes(&a)[0]),
        vec![
            ("destination", "/queue/q"),
            ("message-id", "m1"),
            ("persistent", "true"),
            ("priority", "4"),
            ("timestamp", "55"),
            ("expires", "0"),
            ("color", "red"),
        ]
    );
    assert_eq!(&writes(&a)[0].body[..], b"hello");

    // 1.1: subscription header, no ack header.
    let mut s = connected("1.1", 1);
    let sub = subscribe(
        &mut s,
        &[("destination", "/queue/q"), ("id", "s1"), ("ack", "client")],
    );
    s.on_event(delivery(sub, dest.clone(), 1, "m1"));
    let a = s.take_actions();
    let f = writes(&a)[0];
    assert_eq!(f.header("subscription"), Some("s1"));
    assert_eq!(f.header("ack"), None);

    // 1.2: ack header for client modes, none for auto; redelivered flag.
    let mut s = connected("1.2", 1);
    let sub = subscribe(
        &mut s,
        &[("destination", "/queue/q"), ("id", "s1"), ("ack", "client")],
    );
    let mut ev = delivery(sub, dest.clone(), 1, "m1");
    if let Event::Deliver(d) = &mut ev {
        d.redelivered = true;
    }
    s.on_event(ev);
    let a = s.take_actions();
    let f = writes(&a)[0];
    assert_eq!(f.header("ack"), Some("1"));
    assert_eq!(f.header("redelivered"), Some("true"));
}

#[test]
fn auto_ack_follows_the_socket_write() {
    let mut s = connected("1.2", 1);
    let dest = Destination::queue("q");
    let sub = subscribe(&mut s, &[("destination", "/queue/q"), ("id", "a")]);
    s.on_event(delivery(sub, dest.clone(), 10, "m1"));
    s.on_event(delivery(sub, dest.clone(), 11, "m2"));
    let a = s.take_actions();
    assert_eq!(writes(&a)[0].header("ack"), None);
    let mark = s.frames_emitted();
    s.on_event(delivery(sub, dest.clone(), 12, "m3"));
    s.take_actions();
    s.on_written(mark);
    let p = posts(s.take_actions());
    assert_eq!(p.len(), 1);
    let Request::Ack {
        seqs, reply: None, ..
    } = &p[0].1
    else {
        panic!("{p:?}")
    };
    assert_eq!(seqs, &vec![10, 11]);
    s.on_written(s.frames_emitted());
    let p = posts(s.take_actions());
    let Request::Ack { seqs, .. } = &p[0].1 else {
        panic!()
    };
    assert_eq!(seqs, &vec![12]);
}

/// `browser:true` (ActiveMQ's STOMP queue browser): a Browse request with ActiveMQ's
/// browser prefetch (500) unless `activemq.prefetchSize` says otherwise; deliveries as
/// usual; the end is a MESSAGE with `browser:end`, `message-id:0` and no body; a NACK
/// is refused (not fatal), as are browsers on STOMP 1.0 and on topics.
#[test]
fn a_browser_subscription_browses_and_ends_with_browser_end() {
    let mut s = connected("1.2", 1);
    s.on_frame(frame(
        Command::Subscribe,
        &[
            ("destination", "/queue/q"),
            ("id", "b"),
            ("browser", "true"),
            ("ack", "client"),
            ("selector", "color = 'red'"),
            ("receipt", "r"),
        ],
    ));
    let mut p = posts(s.take_actions());
    let (
        _,
        Request::Browse {
            sub,
            destination,
            selector,
            prefetch,
            reply,
        },
    ) = p.remove(0)
    else {
        panic!("{p:?}")
    };
    assert_eq!(destination, Destination::queue("q"));
    assert_eq!(selector.as_deref(), Some("color = 'red'"));
    assert_eq!(prefetch, 500);
    s.on_event(ok(reply));
    assert_eq!(writes(&s.take_actions())[0].header("receipt-id"), Some("r"));
    s.on_event(delivery(sub, Destination::queue("q"), 3, "ID:m3"));
    let a = s.take_actions();
    let m = writes(&a)[0];
    assert_eq!(m.header("message-id"), Some("ID:m3"));
    let ack_id = m.header("ack").map(str::to_owned);

    let mut nack = vec![("id", ack_id.as_deref().unwrap_or(""))];
    nack.push(("receipt", "n"));
    s.on_frame(frame(Command::Nack, &nack));
    let a = s.take_actions();
    let w = writes(&a);
    assert_eq!(w[0].command, Command::Error);
    assert_eq!(
        w[0].header("message"),
        Some("Cannot Nack a message on a Queue Browser Subscription.")
    );
    assert!(!a.iter().any(is_close), "not fatal");

    s.on_event(Event::BrowseEnd {
        sub,
        destination: Destination::queue("q"),
    });
    let a = s.take_actions();
    let end = writes(&a)[0];
    assert_eq!(end.command, Command::Message);
    assert_eq!(
        headers(end),
        vec![
            ("subscription", "b"),
            ("browser", "end"),
            ("destination", "/queue/q"),
            ("message-id", "0"),
        ]
    );
    assert!(end.body.is_empty());

    // An explicit prefetch is kept.
    s.on_frame(frame(
        Command::Subscribe,
        &[
            ("destination", "/queue/q"),
            ("id", "b2"),
            ("browser", "true"),
            ("activemq.prefetchSize", "7"),
        ],
    ));
    let p = posts(s.take_actions());
    assert!(
        matches!(&p[..], [(_, Request::Browse { prefetch: 7, .. })]),
        "{p:?}"
    );

    for (version, dest, message) in [
        (
            "1.0",
            "/queue/q",
            "Queue Browser feature only valid for Stomp v1.1+ clients!",
        ),
        (
            "1.2",
            "/topic/t",
            "Queue Browser feature only valid for queues",
        ),
    ] {
        let mut s = connected(version, 1);
        s.on_frame(frame(
            Command::Subscribe,
            &[("destination", dest), ("id", "b"), ("browser", "true")],
        ));
        let a = s.take_actions();
        let w = writes(&a);
        assert_eq!(w[0].command, Command::Error, "{version} {dest}");
        assert_eq!(w[0].header("message"), Some(message));
        assert!(posts(a).is_empty());
    }
}

/// A pattern is subscribed on every shard; its receipt waits for a barrier on every
/// shard; acks go to the shard of the message's real destination; UNSUBSCRIBE reaches
/// every shard. A refusal (every shard refuses alike) is told once.
#[test]
fn wildcard_subscription_goes_to_every_shard() {
    let mut s = connected("1.2", 3);
    s.on_frame(frame(
        Command::Subscribe,
        &[
            ("destination", "/queue/Q.>"),
            ("id", "w"),
            ("ack", "client-individual"),
            ("receipt", "r"),
        ],
    ));
    let p = posts(s.take_actions());
    let subscribes: Vec<(ShardId, Destination)> = p
        .iter()
        .filter_map(|(shard, r)| match r {
            Request::Subscribe { spec, .. } => Some((*shard, spec.destination.clone())),
            _ => None,
        })
        .collect();
    let pattern = Destination::queue("Q.>");
    assert_eq!(
        subscribes,
        (0..3).map(|s| (s, pattern.clone())).collect::<Vec<_>>()
    );
    let barriers: Vec<ShardId> = p
        .iter()
        .filter(|(_, r)| matches!(r, Request::Barrier { .. }))
        .map(|(shard, _)| *shard)
        .collect();
    assert_eq!(barriers, vec![0, 1, 2], "the receipt waits for every shard");
    let mut sub = None;
    for (_, r) in &p {
        if let Request::Subscribe { sub: k, .. } = r {
            sub = Some(*k);
        }
        s.on_event(ok(reply_of(r)));
    }
    let a = s.take_actions();
    assert_eq!(writes(&a).len(), 1);
    assert_eq!(writes(&a)[0].header("receipt-id"), Some("r"));
    let sub = sub.expect("subscribed");

    // A message from one matching queue: acked on that queue's shard, naming it.
    let real = Destination::queue("Q.a.b");
    s.on_event(delivery(sub, real.clone(), 4, "ID:x"));
    let a = s.take_actions();
    assert_eq!(writes(&a)[0].header("destination"), Some("/queue/Q.a.b"));
    let ack_id = writes(&a)[0].header("ack").expect("ack header").to_owned();
    s.on_frame(frame(Command::Ack, &[("id", &ack_id)]));
    let p = posts(s.take_actions());
    assert!(
        matches!(&p[..], [(shard, Request::Ack { destination, seqs, .. })]
            if *shard == real.shard(3) && *destination == real && *seqs == vec![4]),
        "{p:?}"
    );

    s.on_frame(frame(Command::Unsubscribe, &[("id", "w")]));
    let shards: Vec<ShardId> = posts(s.take_actions())
        .into_iter()
        .filter_map(|(shard, r)| matches!(r, Request::Unsubscribe { .. }).then_some(shard))
        .collect();
    assert_eq!(shards, vec![0, 1, 2]);

    // Every shard refuses a bad selector: one ERROR.
    s.on_frame(frame(
        Command::Subscribe,
        &[
            ("destination", "/topic/T.*"),
            ("id", "bad"),
            ("selector", "color ="),
        ],
    ));
    for (_, r) in posts(s.take_actions()) {
        if let Request::Subscribe { reply, .. } = r {
            s.on_event(Event::Done {
                reply,
                result: Err(crate::broker::BrokerError::InvalidSelector("x".into())),
            });
        }
    }
    let a = s.take_actions();
    let errors = writes(&a)
        .iter()
        .filter(|f| f.command == Command::Error)
        .count();
    assert_eq!(errors, 1, "{a:?}");
}

#[test]
fn durable_or_browser_on_a_pattern_is_refused_and_the_connection_kept() {
    let mut s = session_with(2, BrokerSettings::default());
    s.on_frame(frame(
        Command::Connect,
        &[("accept-version", "1.2"), ("host", "h"), ("client-id", "c")],
    ));
    s.take_actions();
    for h in [
        vec![
            ("destination", "/topic/T.>"),
            ("id", "d"),
            ("activemq.subscriptionName", "n"),
        ],
        vec![
            ("destination", "/queue/Q.*"),
            ("id", "b"),
            ("browser", "true"),
        ],
    ] {
        s.on_frame(frame(Command::Subscribe, &h));
        let a = s.take_actions();
        let w = writes(&a);
        assert_eq!(w[0].command, Command::Error, "{h:?}");
        assert!(
            String::from_utf8_lossy(&w[0].body).contains("wildcard destination"),
            "{h:?}"
        );
        assert!(!a.iter().any(is_close), "{h:?}");
        assert!(posts(a).is_empty());
    }
}
