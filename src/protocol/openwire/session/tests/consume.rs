//! Tests for ConsumerInfo, deliveries, consumer removal and RemoveSubscriptionInfo.

use super::*;
use crate::protocol::openwire::{RemoveInfo, RemoveSubscriptionInfo, RemoveTarget};

/// The advisory consumer subscribes to both advisory topics; once both are in place
/// it hears of every live temporary destination, and acknowledges those copies
/// without the broker.
#[test]
fn the_advisory_consumer_learns_the_live_temporary_destinations() {
    let regs: Arc<Registries> = Arc::default();
    let other = Destination {
        kind: crate::broker::DestKind::TempQueue,
        name: "ID:other:1:1".into(),
    };
    regs.temp_destinations.add(
        other.clone(),
        ConnId {
            shard: 1,
            serial: 3,
        },
        "ID:other:1",
    );
    let mut s = fresh_with_ids(2, BrokerSettings::default(), regs);
    s.on_command(client_wfi());
    s.on_command(Command::ConnectionInfo(connection_info(1, "cid")));
    s.take_actions();
    let mut info = consumer_info(
        2,
        1,
        OwDestination::topic("ActiveMQ.Advisory.TempQueue,ActiveMQ.Advisory.TempTopic"),
    );
    info.consumer_id = Some(consumer_id(1));
    s.on_command(Command::ConsumerInfo(info));
    let p = posts(s.take_actions());
    let topics: Vec<Destination> = p
        .iter()
        .map(|(_, r)| match r {
            Request::Subscribe { spec, .. } => spec.destination.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        topics,
        vec![
            Destination::topic("ActiveMQ.Advisory.TempQueue"),
            Destination::topic("ActiveMQ.Advisory.TempTopic")
        ]
    );
    s.on_event(ok(reply_of(&p[0].1)));
    assert!(s.take_actions().is_empty());
    s.on_event(ok(reply_of(&p[1].1)));
    let a = s.take_actions();
    let w = writes(&a);
    assert!(
        matches!(w[0], Command::Response(r) if r.correlation_id == 2),
        "{w:?}"
    );
    let Command::MessageDispatch(d) = w[1] else {
        panic!("{w:?}")
    };
    let m = d.message.as_ref().unwrap();
    assert_eq!(m.kind, MessageKind::Plain);
    assert_eq!(m.jms_type.as_deref(), Some("Advisory"));
    let Some(ds) = m.data_structure.as_deref() else {
        panic!("no DestinationInfo: {m:?}")
    };
    let crate::protocol::openwire::DataStructure::Command(c) = ds else {
        panic!("{ds:?}")
    };
    let Command::DestinationInfo(info) = c.as_ref() else {
        panic!("{c:?}")
    };
    assert_eq!(
        info.destination,
        Some(OwDestination::new(
            crate::protocol::openwire::DestinationKind::TempQueue,
            "ID:other:1:1"
        ))
    );
    assert_eq!(
        info.operation,
        crate::protocol::openwire::DestinationOperation::Add
    );
    assert_eq!(info.connection_id, Some(ConnectionId::new("ID:other:1")));
    assert!(m
        .properties()
        .unwrap()
        .get("tandemAdvisoryOperation")
        .is_none());
    // The client's ack of it stays here.
    let seq = m.message_id.as_ref().unwrap().broker_sequence_id;
    s.on_command(Command::MessageAck(crate::protocol::openwire::MessageAck {
        header: Header::new(3, false),
        destination: d.destination.clone(),
        transaction_id: None,
        consumer_id: Some(consumer_id(1)),
        ack_type: crate::protocol::openwire::AckType::Standard,
        first_message_id: None,
        last_message_id: m.message_id.clone(),
        message_count: 1,
        poison_cause: None,
    }));
    assert!(seq > 1 << 60);
    assert!(posts(s.take_actions())
        .iter()
        .all(|(_, r)| !matches!(r, Request::Ack { .. })));
}

#[test]
fn a_queue_consumer_subscribes_and_gets_dispatches() {
    let mut s = open(2);
    let mut info = consumer_info(4, 1, OwDestination::queue("orders"));
    info.prefetch_size = 7;
    info.selector = Some("color = 'red'".into());
    s.on_command(Command::ConsumerInfo(info));
    let a = s.take_actions();
    assert!(writes(&a).is_empty());
    let mut p = posts(a);
    let (shard, Request::Subscribe { sub, spec, reply }) = p.remove(0) else {
        panic!()
    };
    assert_eq!(shard, Destination::queue("orders").shard(2));
    assert_eq!(spec.destination, Destination::queue("orders"));
    assert_eq!(spec.prefetch, 7);
    assert_eq!(spec.selector.as_deref(), Some("color = 'red'"));
    assert!(spec.durable.is_none());
    // A dispatch may come before the subscription's completion.
    s.on_event(delivery(
        sub,
        stomp_message(Destination::queue("orders"), "hi"),
        5,
        2,
    ));
    s.on_event(ok(reply));
    let a = s.take_actions();
    let w = writes(&a);
    assert_eq!(w.len(), 2, "{w:?}");
    let Command::MessageDispatch(d) = w[0] else {
        panic!("{w:?}")
    };
    assert_eq!(d.consumer_id, Some(consumer_id(1)));
    assert_eq!(d.destination, Some(OwDestination::queue("orders")));
    assert_eq!(d.redelivery_counter, 2);
    let m = d.message.as_ref().unwrap();
    assert_eq!(m.text().unwrap().as_deref(), Some("hi"));
    let id = m.message_id.as_ref().unwrap();
    assert_eq!(id.broker_sequence_id, 5);
    assert_eq!(id.to_string(), "ID:stomp-1");
    assert!(matches!(w[1], Command::Response(r) if r.correlation_id == 4));
}

#[test]
fn a_durable_subscriber_is_keyed_by_client_id_and_name() {
    let mut s = open(1);
    let mut info = consumer_info(4, 1, OwDestination::topic("news"));
    info.subscription_name = Some("sub1".into());
    s.on_command(Command::ConsumerInfo(info));
    let p = posts(s.take_actions());
    let Request::Subscribe { spec, .. } = &p[0].1 else {
        panic!()
    };
    let d = spec.durable.as_ref().unwrap();
    assert_eq!((d.client_id.as_str(), d.name.as_str()), ("cid", "sub1"));
}

#[test]
fn an_invalid_selector_is_refused_before_the_broker_sees_it() {
    let mut s = open(1);
    let mut info = consumer_info(4, 1, OwDestination::queue("q"));
    info.selector = Some("color = ".into());
    s.on_command(Command::ConsumerInfo(info));
    let a = s.take_actions();
    assert!(posts_of(&a) == 0);
    let (corr, class, _) = exception(&a);
    assert_eq!(
        (corr, class.as_str()),
        (4, "javax.jms.InvalidSelectorException")
    );
}

fn posts_of(a: &[Action]) -> usize {
    a.iter()
        .filter(|a| matches!(a, Action::Post { .. }))
        .count()
}

#[test]
fn a_refused_subscription_drops_the_consumer() {
    let mut s = open(1);
    let mut info = consumer_info(4, 1, OwDestination::topic("t"));
    info.subscription_name = Some("busy".into());
    s.on_command(Command::ConsumerInfo(info));
    let mut p = posts(s.take_actions());
    let (_, Request::Subscribe { sub, reply, .. }) = p.remove(0) else {
        panic!()
    };
    s.on_event(failed(reply, BrokerError::DurableInUse("cid:busy".into())));
    let (corr, class, _) = exception(&s.take_actions());
    assert_eq!((corr, class.as_str()), (4, "javax.jms.JMSException"));
    s.on_event(delivery(
        sub,
        stomp_message(Destination::topic("t"), "x"),
        1,
        0,
    ));
    assert!(s.take_actions().is_empty());
}

/// A QueueBrowser: one Browse per member queue (prefetch and selector passed on, a
/// prefetch of 0 raised to 1), the Response once every member is set up, deliveries
/// dispatched as usual, and ActiveMQ's end marker (a MessageDispatch without a message)
/// only after the last member's browse ended.
#[test]
fn a_browser_browses_every_member_then_gets_the_end_marker() {
    let mut s = open(2);
    let mut info = consumer_info(4, 1, OwDestination::queue("a,b"));
    info.browser = true;
    info.prefetch_size = 0;
    info.selector = Some("color = 'red'".into());
    s.on_command(Command::ConsumerInfo(info));
    let p = posts(s.take_actions());
    let mut subs = Vec::new();
    for (_, r) in &p {
        let Request::Browse {
            sub,
            destination,
            selector,
            prefetch,
            ..
        } = r
        else {
            panic!("{p:?}")
        };
        assert_eq!(selector.as_deref(), Some("color = 'red'"));
        assert_eq!(*prefetch, 1);
        subs.push((*sub, destination.clone()));
    }
    assert_eq!(
        subs.iter().map(|(_, d)| d.clone()).collect::<Vec<_>>(),
        vec![Destination::queue("a"), Destination::queue("b")]
    );
    s.on_event(ok(reply_of(&p[0].1)));
    assert!(s.take_actions().is_empty());
    s.on_event(ok(reply_of(&p[1].1)));
    assert_eq!(response(&s.take_actions()), 4);
    s.on_event(delivery(
        subs[0].0,
        stomp_message(Destination::queue("a"), "x"),
        7,
        0,
    ));
    assert_eq!(dispatched(&s.take_actions()), vec![7]);
    s.on_event(Event::BrowseEnd {
        sub: subs[0].0,
        destination: subs[0].1.clone(),
    });
    assert!(s.take_actions().is_empty(), "b has not ended yet");
    s.on_event(Event::BrowseEnd {
        sub: subs[1].0,
        destination: subs[1].1.clone(),
    });
    let a = s.take_actions();
    let w = writes(&a);
    assert!(
        matches!(w[..], [Command::MessageDispatch(d)] if d.message.is_none()
            && d.destination.is_none()
            && d.consumer_id == Some(consumer_id(1))),
        "{w:?}"
    );
}

/// `createBrowser` takes only a Queue; a browser on a topic is refused rather than
/// turned into a subscription that never ends (what ActiveMQ would do).
#[test]
fn a_browser_on_a_topic_is_refused() {
    let mut s = open(1);
    let mut info = consumer_info(4, 1, OwDestination::topic("t"));
    info.browser = true;
    s.on_command(Command::ConsumerInfo(info));
    let (corr, class, _) = exception(&s.take_actions());
    assert_eq!((corr, class.as_str()), (4, "javax.jms.JMSException"));
}

#[test]
fn removing_a_consumer_unsubscribes_it() {
    let mut s = open(1);
    let sub = subscribe(&mut s, 1, OwDestination::queue("q"));
    s.on_command(Command::RemoveInfo(RemoveInfo {
        header: Header::new(11, false),
        object_id: Some(RemoveTarget::Consumer(consumer_id(1))),
        last_delivered_sequence_id: -1,
    }));
    let p = posts(s.take_actions());
    assert!(
        matches!(&p[..], [(_, Request::Unsubscribe { sub: k, remove_durable: None, .. })] if *k == sub),
        "{p:?}"
    );
    s.on_event(ok(reply_of(&p[0].1)));
    assert!(s.take_actions().is_empty(), "async RemoveInfo: no Response");
    // Late deliveries are dropped (the broker took them back).
    s.on_event(delivery(
        sub,
        stomp_message(Destination::queue("q"), "x"),
        1,
        0,
    ));
    assert!(s.take_actions().is_empty());
}

#[test]
fn unsubscribing_a_durable_subscription_asks_every_shard() {
    let mut s = open(3);
    s.on_command(Command::RemoveSubscriptionInfo(RemoveSubscriptionInfo {
        header: Header::new(12, true),
        connection_id: Some(connection_id()),
        subscription_name: Some("sub1".into()),
        client_id: Some("cid".into()),
    }));
    let p = posts(s.take_actions());
    assert_eq!(p.len(), 3);
    let shards: Vec<ShardId> = p.iter().map(|(s, _)| *s).collect();
    assert_eq!(shards, vec![0, 1, 2]);
    for (_, r) in &p {
        let Request::Unsubscribe { remove_durable, .. } = r else {
            panic!()
        };
        assert_eq!(remove_durable.as_ref().unwrap().name, "sub1");
    }
    s.on_event(ok(reply_of(&p[0].1)));
    s.on_event(failed(
        reply_of(&p[1].1),
        BrokerError::DurableInUse("cid:sub1".into()),
    ));
    assert!(s.take_actions().is_empty());
    s.on_event(ok(reply_of(&p[2].1)));
    let (corr, class, _) = exception(&s.take_actions());
    assert_eq!((corr, class.as_str()), (12, "javax.jms.JMSException"));
}

/// The prefetch the session last asked of the broker, if it asked.
fn set_prefetch(actions: Vec<Action>) -> Option<u32> {
    posts(actions).into_iter().rev().find_map(|(_, r)| match r {
        Request::SetPrefetch { prefetch, .. } => Some(prefetch),
        _ => None,
    })
}

fn pull_consumer(s: &mut Session<TestEnv>) -> SubKey {
    let mut info = consumer_info(10, 1, OwDestination::queue("q"));
    info.prefetch_size = 0;
    s.on_command(Command::ConsumerInfo(info));
    let mut p = posts(s.take_actions());
    let (_, Request::Subscribe { sub, spec, reply }) = p.remove(0) else {
        panic!()
    };
    assert_eq!(spec.prefetch, 0, "a pull consumer gets nothing unasked");
    s.on_event(ok(reply));
    s.take_actions();
    sub
}

fn pull(cmd: i32, timeout: i64) -> Command {
    Command::MessagePull(crate::protocol::openwire::MessagePull {
        header: Header::new(cmd, false),
        consumer_id: Some(consumer_id(1)),
        destination: Some(OwDestination::queue("q")),
        timeout,
        correlation_id: None,
        message_id: None,
    })
}

fn is_null_dispatch(c: &Command) -> bool {
    matches!(c, Command::MessageDispatch(d) if d.message.is_none() && d.consumer_id == Some(consumer_id(1)))
}

#[test]
fn a_pull_opens_the_window_by_one_until_a_message_comes() {
    let mut s = open(1);
    let sub = pull_consumer(&mut s);
    s.on_command(pull(11, 0));
    assert_eq!(set_prefetch(s.take_actions()), Some(1));
    s.on_event(delivery(
        sub,
        stomp_message(Destination::queue("q"), "m"),
        3,
        0,
    ));
    let a = s.take_actions();
    assert_eq!(dispatched(&a), vec![3]);
    // Still 1: the delivered message is in flight, nothing more may come.
    assert_eq!(set_prefetch(a), None);
    // Acknowledged: the window closes to 0.
    s.on_command(Command::MessageAck(crate::protocol::openwire::MessageAck {
        header: Header::new(12, false),
        destination: Some(OwDestination::queue("q")),
        transaction_id: None,
        consumer_id: Some(consumer_id(1)),
        ack_type: crate::protocol::openwire::AckType::Standard,
        first_message_id: None,
        last_message_id: Some(super::super::convert::message_id("ID:stomp-1", 3)),
        message_count: 1,
        poison_cause: None,
    }));
    assert_eq!(set_prefetch(s.take_actions()), Some(0));
}

#[test]
fn receive_no_wait_answers_nothing_after_a_barrier() {
    let mut s = open(1);
    pull_consumer(&mut s);
    s.on_command(pull(11, -1));
    let p = posts(s.take_actions());
    assert!(
        matches!(p[0].1, Request::SetPrefetch { prefetch: 1, .. }),
        "{p:?}"
    );
    let Request::Barrier { reply } = &p[1].1 else {
        panic!("{p:?}")
    };
    s.on_event(ok(*reply));
    let a = s.take_actions();
    assert!(is_null_dispatch(writes(&a)[0]), "{a:?}");
    assert_eq!(set_prefetch(a), Some(0));
}

#[test]
fn a_timed_pull_answers_nothing_at_its_deadline() {
    let mut s = open(1);
    pull_consumer(&mut s);
    s.on_command(pull(11, 500));
    let a = s.take_actions();
    assert!(a.iter().any(|a| matches!(a, Action::DeadlineChanged)));
    assert_eq!(s.next_deadline_ms(), Some(1_500));
    s.env.now.set(1_499);
    s.on_tick();
    assert!(s.take_actions().is_empty());
    s.env.now.set(1_500);
    s.on_tick();
    let a = s.take_actions();
    assert!(is_null_dispatch(writes(&a)[0]), "{a:?}");
    assert_eq!(s.next_deadline_ms(), None);
}

#[test]
fn delivered_acks_extend_the_window_and_consumer_control_sets_it() {
    let mut s = open(1);
    let mut info = consumer_info(10, 1, OwDestination::queue("q"));
    info.prefetch_size = 2;
    s.on_command(Command::ConsumerInfo(info));
    let mut p = posts(s.take_actions());
    let (_, Request::Subscribe { sub, reply, .. }) = p.remove(0) else {
        panic!()
    };
    s.on_event(ok(reply));
    s.take_actions();
    for seq in [1, 2] {
        s.on_event(delivery(
            sub,
            stomp_message(Destination::queue("q"), "m"),
            seq,
            0,
        ));
    }
    s.take_actions();
    let ack = |cmd, t, last: u64| {
        Command::MessageAck(crate::protocol::openwire::MessageAck {
            header: Header::new(cmd, false),
            destination: Some(OwDestination::queue("q")),
            transaction_id: None,
            consumer_id: Some(consumer_id(1)),
            ack_type: t,
            first_message_id: None,
            last_message_id: Some(super::super::convert::message_id("ID:stomp-1", last)),
            message_count: 2,
            poison_cause: None,
        })
    };
    use crate::protocol::openwire::AckType;
    s.on_command(ack(11, AckType::Delivered, 2));
    assert_eq!(set_prefetch(s.take_actions()), Some(4));
    s.on_command(ack(12, AckType::Standard, 2));
    assert_eq!(set_prefetch(s.take_actions()), Some(2));
    s.on_command(Command::ConsumerControl(
        crate::protocol::openwire::ConsumerControl {
            consumer_id: Some(consumer_id(1)),
            prefetch: 50,
            ..Default::default()
        },
    ));
    assert_eq!(set_prefetch(s.take_actions()), Some(50));
}

/// Prefetched messages the application never saw go back without counting a
/// redelivery: RemoveInfo says up to which brokerSequenceId it saw them.
#[test]
fn removing_a_consumer_returns_unseen_messages_unflagged() {
    for (last, undelivered) in [(2, vec![3]), (-1, vec![1, 2, 3]), (-2, vec![])] {
        let mut s = open(1);
        let sub = subscribe(&mut s, 1, OwDestination::queue("q"));
        for seq in 1..=3 {
            s.on_event(delivery(
                sub,
                stomp_message(Destination::queue("q"), "m"),
                seq,
                0,
            ));
        }
        s.take_actions();
        s.on_command(Command::RemoveInfo(RemoveInfo {
            header: Header::new(11, false),
            object_id: Some(RemoveTarget::Consumer(consumer_id(1))),
            last_delivered_sequence_id: last,
        }));
        let p = posts(s.take_actions());
        let [(
            _,
            Request::Unsubscribe {
                undelivered: got, ..
            },
        )] = &p[..]
        else {
            panic!("{p:?}")
        };
        assert_eq!(got, &undelivered, "lastDeliveredSequenceId {last}");
    }
}

#[test]
fn a_no_local_topic_consumer_skips_its_own_connections_messages() {
    let mut s = open(1);
    let mut info = consumer_info(10, 1, OwDestination::topic("t"));
    info.no_local = true;
    s.on_command(Command::ConsumerInfo(info));
    let mut p = posts(s.take_actions());
    let (_, Request::Subscribe { sub, reply, .. }) = p.remove(0) else {
        panic!()
    };
    s.on_event(ok(reply));
    s.take_actions();
    let mut own = stomp_message(Destination::topic("t"), "mine");
    own.id = format!("{CID}:1:1:5");
    s.on_event(delivery(sub, own, 1, 0));
    let a = s.take_actions();
    assert!(dispatched(&a).is_empty());
    let p = posts(a);
    assert!(
        matches!(&p[..], [(_, Request::Ack { seqs, .. })] if seqs == &vec![1]),
        "{p:?}"
    );
    s.on_event(delivery(
        sub,
        stomp_message(Destination::topic("t"), "theirs"),
        2,
        0,
    ));
    assert_eq!(dispatched(&s.take_actions()), vec![2]);
}

/// A consumer on a pattern is subscribed on every shard; its acks go to the shard of
/// each message's real destination; removing it first returns, per real destination,
/// the messages the application never saw (that part only), then removes the pattern
/// from every shard.
#[test]
fn a_wildcard_consumer_is_on_every_shard_and_leaves_part_by_part() {
    let mut s = open(2);
    s.on_command(Command::ConsumerInfo(consumer_info(
        10,
        1,
        OwDestination::queue("Q.>"),
    )));
    let p = posts(s.take_actions());
    let shards: Vec<ShardId> = p.iter().map(|(shard, _)| *shard).collect();
    assert_eq!(shards, vec![0, 1]);
    let mut sub = None;
    for (_, r) in p {
        let Request::Subscribe {
            sub: k,
            spec,
            reply,
        } = r
        else {
            panic!("{r:?}")
        };
        assert_eq!(spec.destination, Destination::queue("Q.>"));
        sub = Some(k);
        s.on_event(ok(reply));
    }
    assert_eq!(response(&s.take_actions()), 10, "one response");
    let sub = sub.expect("subscribed");
    let (a, b) = (Destination::queue("Q.a"), Destination::queue("Q.b"));
    for (d, seq) in [(&a, 1), (&b, 1), (&b, 2)] {
        s.on_event(delivery(sub, stomp_message(d.clone(), "m"), seq, 0));
    }
    s.take_actions();
    s.on_command(Command::RemoveInfo(RemoveInfo {
        header: Header::new(11, false),
        object_id: Some(RemoveTarget::Consumer(consumer_id(1))),
        last_delivered_sequence_id: RemoveInfo::NOTHING_DELIVERED,
    }));
    let got: Vec<(ShardId, Destination, Vec<u64>)> = posts(s.take_actions())
        .into_iter()
        .map(|(shard, r)| match r {
            Request::Unsubscribe {
                destination,
                undelivered,
                ..
            } => (shard, destination, undelivered),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (a.shard(2), a.clone(), vec![1]),
            (b.shard(2), b.clone(), vec![1, 2]),
            (0, Destination::queue("Q.>"), vec![]),
            (1, Destination::queue("Q.>"), vec![]),
        ]
    );
}

#[test]
fn a_durable_subscription_on_a_pattern_is_refused() {
    let mut s = open(2);
    let mut info = consumer_info(10, 1, OwDestination::topic("T.>"));
    info.subscription_name = Some("d".into());
    s.on_command(Command::ConsumerInfo(info));
    let a = s.take_actions();
    let text = format!("{a:?}");
    assert!(text.contains("wildcard destination"), "{text}");
    assert!(posts(a).is_empty(), "{text}");
}
