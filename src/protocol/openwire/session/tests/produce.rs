//! Tests for ProducerInfo, sends (sync, async, composite, refused) and flow control.

use super::*;
use crate::broker::{BodyType, PropValue};
use crate::protocol::openwire::{DestinationInfo, DestinationOperation, PrimitiveMap};

#[test]
fn a_sync_send_is_answered_once_the_broker_stored_it() {
    let mut s = open(2);
    s.on_command(Command::ProducerInfo(producer_info(3)));
    assert_eq!(response(&s.take_actions()), 3);
    let Command::Message(mut m) = text_message(4, true, OwDestination::queue("orders"), 1, "héllo")
    else {
        unreachable!()
    };
    m.correlation_id = Some("corr".into());
    m.jms_type = Some("t".into());
    m.priority = 7;
    m.expiration = 5_000;
    m.reply_to = Some(OwDestination::topic("replies"));
    let props: PrimitiveMap = [
        ("s", PrimitiveValue::string("x")),
        ("i", PrimitiveValue::Int(3)),
        ("c", PrimitiveValue::Char(65)),
    ]
    .into_iter()
    .collect();
    m.set_properties(&props).unwrap();
    s.on_command(Command::Message(m));
    let a = s.take_actions();
    assert!(
        writes(&a).is_empty(),
        "no Response before the broker replied"
    );
    let mut p = posts(a);
    let (shard, Request::Send { msg, reply }) = p.remove(0) else {
        panic!("not a send")
    };
    assert_eq!(shard, Destination::queue("orders").shard(2));
    assert_eq!(msg.id, format!("{CID}:1:1:1"));
    assert_eq!(msg.destination, Destination::queue("orders"));
    assert!(msg.persistent);
    assert_eq!(
        (msg.priority, msg.timestamp_ms, msg.expires_ms),
        (7, 123, 5_000)
    );
    assert_eq!(msg.reply_to.as_deref(), Some("/topic/replies"));
    assert_eq!(&msg.body[..], "héllo".as_bytes());
    assert_eq!(msg.body_type, BodyType::TEXT);
    assert_eq!(msg.header("correlation-id"), Some("corr"));
    assert_eq!(msg.header("type"), Some("t"));
    assert_eq!(msg.header("s"), Some("x"));
    assert_eq!(msg.property("i"), Some(&PropValue::Int(3)));
    assert!(matches!(msg.property("c"), Some(PropValue::Opaque(_))));
    s.on_event(ok(reply));
    assert_eq!(response(&s.take_actions()), 4);
}

#[test]
fn async_sends_get_no_response_and_report_failures_as_connection_errors() {
    let mut s = open(1);
    s.on_command(text_message(4, false, OwDestination::queue("q"), 1, "a"));
    let mut p = posts(s.take_actions());
    let reply = reply_of(&p.remove(0).1);
    s.on_event(ok(reply));
    assert!(s.take_actions().is_empty());
    s.on_command(text_message(5, false, OwDestination::queue("q"), 2, "b"));
    let mut p = posts(s.take_actions());
    let reply = reply_of(&p.remove(0).1);
    s.on_event(failed(
        reply,
        BrokerError::from(crate::store::StoreError::Failed("disk".into())),
    ));
    assert_eq!(
        connection_error(&s.take_actions()),
        "javax.jms.JMSException"
    );
}

#[test]
fn a_refused_sync_send_gets_the_java_exception() {
    let mut s = open(1);
    let temp = OwDestination::new(
        crate::protocol::openwire::DestinationKind::TempQueue,
        "ID:x:1:1",
    );
    s.on_command(text_message(6, true, temp, 1, "a"));
    let mut p = posts(s.take_actions());
    let reply = reply_of(&p.remove(0).1);
    s.on_event(failed(
        reply,
        BrokerError::NoSuchTempDestination("t".into()),
    ));
    let (corr, class, _) = exception(&s.take_actions());
    assert_eq!(
        (corr, class.as_str()),
        (6, "javax.jms.InvalidDestinationException")
    );
    // No destination at all.
    let Command::Message(mut m) = text_message(7, true, OwDestination::queue("q"), 2, "a") else {
        unreachable!()
    };
    m.destination = None;
    s.on_command(Command::Message(m));
    let (corr, class, _) = exception(&s.take_actions());
    assert_eq!(
        (corr, class.as_str()),
        (7, "javax.jms.InvalidDestinationException")
    );
}

#[test]
fn a_composite_destination_is_one_send_per_member_answered_after_all() {
    let mut s = open(4);
    s.on_command(text_message(
        8,
        true,
        OwDestination::queue("a,topic://b,c"),
        1,
        "x",
    ));
    let p = posts(s.take_actions());
    let dests: Vec<Destination> = p
        .iter()
        .map(|(_, r)| match r {
            Request::Send { msg, .. } => msg.destination.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        dests,
        vec![
            Destination::queue("a"),
            Destination::topic("b"),
            Destination::queue("c")
        ]
    );
    let replies: Vec<Reply> = p.iter().map(|(_, r)| reply_of(r)).collect();
    s.on_event(ok(replies[0]));
    s.on_event(ok(replies[1]));
    assert!(s.take_actions().is_empty());
    s.on_event(ok(replies[2]));
    assert_eq!(response(&s.take_actions()), 8);
}

#[test]
fn a_send_to_a_virtual_topic_also_goes_to_its_consumer_queues() {
    let registries = Arc::new(Registries::default());
    let rules = vec![crate::broker::VirtualTopicRule::activemq_default()];
    let q = Destination::queue("Consumer.A.VirtualTopic.X");
    let topics = crate::broker::virtual_topic::topics_of(&rules, &q);
    registries.virtual_topics.add(&q.name, topics, 1);
    let mut s = fresh_with_ids(4, BrokerSettings::default(), registries);
    s.on_command(client_wfi_at(12));
    s.on_command(Command::ConnectionInfo(connection_info(1, "cid")));
    s.take_actions();
    s.on_command(text_message(
        8,
        true,
        OwDestination::topic("VirtualTopic.X"),
        1,
        "x",
    ));
    let p = posts(s.take_actions());
    let sent: Vec<(Destination, String)> = p
        .iter()
        .map(|(_, r)| match r {
            Request::Send { msg, .. } => (msg.destination.clone(), msg.id.clone()),
            other => panic!("{other:?}"),
        })
        .collect();
    let id = format!("{CID}:1:1:1");
    assert_eq!(
        sent,
        vec![(Destination::topic("VirtualTopic.X"), id.clone()), (q, id)]
    );
    let replies: Vec<Reply> = p.iter().map(|(_, r)| reply_of(r)).collect();
    s.on_event(ok(replies[0]));
    assert!(s.take_actions().is_empty(), "answered after every copy");
    s.on_event(ok(replies[1]));
    assert_eq!(response(&s.take_actions()), 8);
}

#[test]
fn too_many_unconfirmed_sends_pause_reading() {
    let mut s = open_with(
        1,
        BrokerSettings {
            max_pending_sends: 2,
            ..BrokerSettings::default()
        },
    );
    s.on_command(text_message(1, false, OwDestination::queue("q"), 1, "a"));
    let r1 = reply_of(&posts(s.take_actions())[0].1);
    s.on_command(text_message(2, false, OwDestination::queue("q"), 2, "b"));
    let a = s.take_actions();
    assert!(matches!(a.last(), Some(Action::PauseReading)), "{a:?}");
    s.on_event(ok(r1));
    assert!(matches!(
        s.take_actions().as_slice(),
        [Action::ResumeReading]
    ));
}

#[test]
fn temporary_destinations_are_created_announced_and_deleted() {
    let mut s = open(1);
    let temp = OwDestination::new(
        crate::protocol::openwire::DestinationKind::TempQueue,
        format!("{CID}:1"),
    );
    let info = |cmd, operation| {
        Command::DestinationInfo(DestinationInfo {
            header: Header::new(cmd, true),
            connection_id: Some(connection_id()),
            destination: Some(temp.clone()),
            operation,
            timeout: 0,
            broker_path: None,
        })
    };
    s.on_command(info(5, DestinationOperation::Add));
    let p = posts(s.take_actions());
    let [(
        _,
        Request::CreateTemp {
            destination,
            owner,
            reply: created,
        },
    ), (_, Request::Send { msg, reply: sent })] = &p[..]
    else {
        panic!("{p:?}")
    };
    assert_eq!(destination.kind, crate::broker::DestKind::TempQueue);
    assert_eq!(*owner, CONN);
    // The advisory for the other connections.
    assert_eq!(
        msg.destination,
        Destination::topic("ActiveMQ.Advisory.TempQueue")
    );
    assert_eq!(msg.header("tandemAdvisoryOperation"), Some("add"));
    assert!(!msg.persistent);
    s.on_event(ok(*created));
    assert!(s.take_actions().is_empty());
    s.on_event(ok(*sent));
    assert_eq!(response(&s.take_actions()), 5);
    // A consumer on it makes this connection its owner.
    s.on_command(Command::ConsumerInfo(consumer_info(6, 1, temp.clone())));
    let p = posts(s.take_actions());
    let Request::Subscribe { spec, .. } = &p[0].1 else {
        panic!()
    };
    assert_eq!(spec.temp_owner, Some(CONN));
    // Deleting it.
    s.on_command(info(7, DestinationOperation::Remove));
    let p = posts(s.take_actions());
    let [(_, Request::DeleteTemp { reply, .. }), (_, Request::Send { msg, reply: sent })] = &p[..]
    else {
        panic!("{p:?}")
    };
    assert_eq!(msg.header("tandemAdvisoryOperation"), Some("remove"));
    s.on_event(ok(*reply));
    s.on_event(ok(*sent));
    assert_eq!(response(&s.take_actions()), 7);
}

#[test]
fn a_closed_connections_temporary_destinations_are_announced_gone() {
    let mut s = open(1);
    let temp = OwDestination::new(
        crate::protocol::openwire::DestinationKind::TempTopic,
        format!("{CID}:2"),
    );
    s.on_command(Command::DestinationInfo(DestinationInfo {
        header: Header::new(5, true),
        connection_id: Some(connection_id()),
        destination: Some(temp),
        operation: DestinationOperation::Add,
        timeout: 0,
        broker_path: None,
    }));
    s.take_actions();
    assert_eq!(s.ctx.registries.temp_destinations.snapshot().len(), 1);
    s.on_closed();
    let p = posts(s.take_actions());
    let [(_, Request::Send { msg, .. })] = &p[..] else {
        panic!("{p:?}")
    };
    assert_eq!(
        msg.destination,
        Destination::topic("ActiveMQ.Advisory.TempTopic")
    );
    assert_eq!(msg.header("tandemAdvisoryOperation"), Some("remove"));
    assert!(s.ctx.registries.temp_destinations.snapshot().is_empty());
}

/// ProducerAck is v3+: a v1/v2 client cannot ask for a window (its ProducerInfo has no
/// windowSize), and even a window set in memory gets no ProducerAck at v2.
#[test]
fn no_producer_ack_before_v3() {
    let mut s = open_at(1, BrokerSettings::default(), 2);
    assert_eq!(s.version(), 2);
    let mut info = producer_info(3);
    info.window_size = 1 << 20;
    s.on_command(Command::ProducerInfo(info));
    assert_eq!(response(&s.take_actions()), 3);
    s.on_command(text_message(4, false, OwDestination::queue("q"), 1, "abc"));
    let reply = reply_of(&posts(s.take_actions())[0].1);
    s.on_event(ok(reply));
    let a = s.take_actions();
    assert!(writes(&a).is_empty(), "{a:?}");
}

#[test]
fn async_sends_of_a_producer_with_a_window_are_acknowledged() {
    let mut s = open(1);
    let mut info = producer_info(3);
    info.window_size = 1 << 20;
    s.on_command(Command::ProducerInfo(info));
    assert_eq!(response(&s.take_actions()), 3);
    s.on_command(text_message(4, false, OwDestination::queue("q"), 1, "abc"));
    let reply = reply_of(&posts(s.take_actions())[0].1);
    s.on_event(ok(reply));
    let a = s.take_actions();
    match writes(&a).as_slice() {
        // 1024 + the content: i32 length + "abc".
        [Command::ProducerAck(p)] => {
            assert_eq!(p.producer_id, Some(producer_id()));
            assert_eq!(p.size, 1024 + 4 + 3);
        }
        other => panic!("{other:?}"),
    }
    // A sync send is answered with its Response only.
    s.on_command(text_message(5, true, OwDestination::queue("q"), 2, "abc"));
    let reply = reply_of(&posts(s.take_actions())[0].1);
    s.on_event(ok(reply));
    assert_eq!(response(&s.take_actions()), 5);
}
