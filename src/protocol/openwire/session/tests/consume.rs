//! Tests for ConsumerInfo, deliveries, consumer removal and RemoveSubscriptionInfo.

use super::*;
use crate::protocol::openwire::{RemoveInfo, RemoveSubscriptionInfo, RemoveTarget};

#[test]
fn the_advisory_consumer_is_answered_at_once() {
    let mut s = open(1);
    let mut info = consumer_info(
        2,
        1,
        OwDestination::topic("ActiveMQ.Advisory.TempQueue,ActiveMQ.Advisory.TempTopic"),
    );
    info.consumer_id = Some(ConsumerId {
        connection_id: CID.into(),
        session_id: -1,
        value: 1,
    });
    s.on_command(Command::ConsumerInfo(info));
    assert_eq!(response(&s.take_actions()), 2);
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

#[test]
fn browsers_are_refused_for_now() {
    let mut s = open(1);
    let mut info = consumer_info(4, 1, OwDestination::queue("q"));
    info.browser = true;
    s.on_command(Command::ConsumerInfo(info));
    let (_, class, _) = exception(&s.take_actions());
    assert_eq!(class, "javax.jms.JMSException");
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
