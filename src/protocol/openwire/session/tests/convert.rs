//! Tests for the message and destination mapping between OpenWire and the broker.

use super::super::convert::*;
use super::*;
use crate::broker::{BodyKind, BodyType, DestKind, PropValue};
use crate::protocol::openwire::DestinationKind;

#[test]
fn jms_message_ids_parse_back_and_foreign_ids_become_text_views() {
    let id = message_id("ID:host-1-2-3:4:5:6:7", 9);
    assert_eq!(id.producer_sequence_id, 7);
    assert_eq!(id.broker_sequence_id, 9);
    assert_eq!(id.text_view, None);
    let p = id.producer_id.clone().unwrap();
    assert_eq!(
        (p.connection_id.as_str(), p.session_id, p.value),
        ("ID:host-1-2-3:4", 5, 6)
    );
    assert_eq!(id.to_string(), "ID:host-1-2-3:4:5:6:7");

    let foreign = message_id("ID:itest-170-0-5", 3);
    assert_eq!(foreign.text_view.as_deref(), Some("ID:itest-170-0-5"));
    assert_eq!(foreign.to_string(), "ID:itest-170-0-5");
    assert_eq!(
        (foreign.producer_sequence_id, foreign.broker_sequence_id),
        (3, 3)
    );
    assert_eq!(foreign.producer_id.unwrap().connection_id, FOREIGN_PRODUCER);
}

#[test]
fn composite_and_prefixed_destinations() {
    let d = to_broker_destinations(&OwDestination::queue("a, topic://b ,queue://a"), 10).unwrap();
    assert_eq!(d, vec![Destination::queue("a"), Destination::topic("b")]);
    assert!(to_broker_destinations(&OwDestination::queue("a,,b"), 10).is_err());
    assert!(to_broker_destination(&OwDestination::queue("a,b")).is_err());
    let t =
        to_broker_destination(&OwDestination::new(DestinationKind::TempTopic, "ID:c:1")).unwrap();
    assert_eq!(t.kind, DestKind::TempTopic);
    assert_eq!(
        to_openwire_destination(&t),
        OwDestination::new(DestinationKind::TempTopic, "ID:c:1")
    );
    assert_eq!(
        stomp_to_openwire("/remote-temp-queue/ID:x:1"),
        Some(OwDestination::new(DestinationKind::TempQueue, "ID:x:1"))
    );
    assert_eq!(
        stomp_to_openwire("plain"),
        Some(OwDestination::queue("plain"))
    );
    assert_eq!(stomp_to_openwire("/topic/"), None);
}

#[test]
fn a_jms_message_survives_the_round_trip_through_the_broker() {
    let Command::Message(mut m) = text_message(1, true, OwDestination::queue("q"), 3, "x\u{0}y😀")
    else {
        unreachable!()
    };
    m.group_id = Some("g".into());
    m.group_sequence = 2;
    m.reply_to = Some(OwDestination::new(DestinationKind::TempQueue, "ID:c:1"));
    let props: crate::protocol::openwire::PrimitiveMap = [
        ("b", PrimitiveValue::Boolean(true)),
        ("f", PrimitiveValue::Float(0.5)),
        ("l", PrimitiveValue::Long(-1)),
        ("s", PrimitiveValue::string("v")),
        (
            "bytes",
            PrimitiveValue::Bytes(bytes::Bytes::from_static(b"\x00\x01")),
        ),
    ]
    .into_iter()
    .collect();
    m.set_properties(&props).unwrap();
    let b = to_broker_message(&m, Destination::queue("q"), || unreachable!(), 7).unwrap();
    assert_eq!(b.reply_to.as_deref(), Some("/remote-temp-queue/ID:c:1"));
    assert_eq!(b.header("JMSXGroupID"), Some("g"));
    assert_eq!(b.property("f"), Some(&PropValue::Float(0.5)));
    assert_eq!(&b.body[..], "x\u{0}y😀".as_bytes());
    let back = to_openwire_message(&b, &Destination::queue("q"), 11, 1);
    assert_eq!(back.kind, MessageKind::Text);
    assert_eq!(back.text().unwrap().as_deref(), Some("x\u{0}y😀"));
    assert_eq!(back.message_id.as_ref().unwrap().producer_sequence_id, 3);
    assert_eq!(back.message_id.as_ref().unwrap().broker_sequence_id, 11);
    assert_eq!(back.reply_to, m.reply_to);
    assert_eq!(
        (back.group_id.as_deref(), back.group_sequence),
        (Some("g"), 2)
    );
    assert_eq!(back.redelivery_counter, 1);
    assert_eq!(back.timestamp, 123);
    let got = back.properties().unwrap();
    for (k, v) in props.iter() {
        assert_eq!(got.get(k), Some(v), "{k}");
    }
    assert_eq!(got.len(), props.len());
}

#[test]
fn stomp_messages_become_text_or_bytes_messages_with_string_properties() {
    let mut m = stomp_message(Destination::queue("q"), "body");
    m.headers.push(("correlation-id".into(), "c".into()));
    m.headers
        .push(("originalDestination".into(), "/queue/orig".into()));
    let text = to_openwire_message(&m, &Destination::queue("q"), 1, 0);
    assert_eq!(text.kind, MessageKind::Text);
    assert_eq!(text.correlation_id.as_deref(), Some("c"));
    assert_eq!(
        text.original_destination,
        Some(OwDestination::queue("orig"))
    );
    let props = text.properties().unwrap();
    assert_eq!(props.get("color"), Some(&PrimitiveValue::string("red")));
    assert_eq!(props.len(), 1);

    m.body_type = BodyType::BYTES;
    let bytes = to_openwire_message(&m, &Destination::queue("q"), 1, 0);
    assert_eq!(bytes.kind, MessageKind::Bytes);
    assert_eq!(bytes.content.as_deref(), Some(&b"body"[..]));

    m.body_type = BodyType {
        kind: BodyKind::Plain,
        compressed: false,
        null: true,
    };
    m.body = bytes::Bytes::new();
    assert_eq!(
        to_openwire_message(&m, &Destination::queue("q"), 1, 0).content,
        None
    );
}

#[test]
fn a_composite_destination_is_capped_in_distinct_members() {
    let names: Vec<String> = (0..5).map(|i| format!("q{i}")).collect();
    let five = OwDestination::queue(names.join(","));
    assert_eq!(to_broker_destinations(&five, 5).unwrap().len(), 5);
    let refused = to_broker_destinations(&five, 4).unwrap_err();
    assert_eq!(refused.class, "javax.jms.ResourceAllocationException");
    assert!(
        refused.message.contains("maxCompositeDestinations"),
        "{}",
        refused.message
    );
    assert!(!refused.fatal, "the connection is kept");
    // Repeated members are one member.
    let repeated = OwDestination::queue("a,a,queue://a,a");
    assert_eq!(to_broker_destinations(&repeated, 1).unwrap().len(), 1);
    // Where one destination is expected, a composite is refused as such.
    let c = to_broker_destination(&OwDestination::queue("a,b")).unwrap_err();
    assert_eq!(
        c.class, "javax.jms.InvalidDestinationException",
        "{}",
        c.message
    );
}
