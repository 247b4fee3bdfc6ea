//! OpenWire codec tests: the captured vectors of OPENWIRE.md §7.4 decoded to their values
//! and re-encoded to the same bytes, the captured conversations of §7 as byte streams,
//! one round trip per command type, modified UTF-8 and primitive-map properties, and
//! fuzz-style properties (random bytes never panic; oversized frames are refused from
//! their size prefix alone).

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::primitives::{decode_mutf8, encode_mutf8, mutf8_len, MAX_NESTING_DEPTH};
use super::wireformat::{self, OPENWIRE_VERSION};
use super::*;

// ------------------------------------------------------------------------------------
// Helpers
// ------------------------------------------------------------------------------------

/// The connection id of the captured SessionInfo (29 bytes). Vectors whose connection
/// id the fact sheet elides as `<connId>` use this one, which has the same length.
const CONN: &str = "ID:vm-37003-1795673536119-1:1";

/// Bytes from the fact sheet's notation: hex digits, `"ASCII"` runs, `<connId>` (= CONN);
/// whitespace and `|` separators are ignored.
fn wire(spec: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = spec;
    while let Some(c) = rest.chars().next() {
        if c.is_whitespace() || c == '|' {
            rest = &rest[1..];
        } else if c == '"' {
            let end = rest[1..].find('"').expect("closing quote") + 1;
            out.extend_from_slice(&rest.as_bytes()[1..end]);
            rest = &rest[end + 1..];
        } else if let Some(tail) = rest.strip_prefix("<connId>") {
            out.extend_from_slice(CONN.as_bytes());
            rest = tail;
        } else {
            let pair = &rest[..2];
            out.push(u8::from_str_radix(pair, 16).expect("hex pair"));
            rest = &rest[2..];
        }
    }
    out
}

/// [`wire`] for a frame body (type byte first), with its size prefix computed.
fn framed(spec: &str) -> Vec<u8> {
    let body = wire(spec);
    let mut out = (body.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

fn encoded_with(cmd: &Command, stack_trace_enabled: bool) -> Vec<u8> {
    encoded_at(cmd, OPENWIRE_VERSION, stack_trace_enabled)
}

fn encoded_at(cmd: &Command, version: i32, stack_trace_enabled: bool) -> Vec<u8> {
    let mut out = BytesMut::new();
    Encoder::new(version, stack_trace_enabled)
        .encode(cmd, &mut out)
        .expect("encodable");
    out.to_vec()
}

/// Decodes exactly one frame that fills `bytes`, at `version`.
fn decode_one_at(bytes: &[u8], version: i32, stack_trace_enabled: bool) -> Command {
    let mut d = Decoder::default();
    d.set_version(version);
    d.set_stack_trace_enabled(stack_trace_enabled);
    let mut buf = BytesMut::from(bytes);
    let cmd = d
        .decode(&mut buf)
        .expect("decodes")
        .expect("complete frame");
    assert!(buf.is_empty(), "{} bytes left over", buf.len());
    cmd
}

fn encoded(cmd: &Command) -> Vec<u8> {
    encoded_with(cmd, false)
}

/// Decodes exactly one frame that fills `bytes`.
fn decode_one_with(bytes: &[u8], stack_trace_enabled: bool) -> Command {
    decode_one_at(bytes, OPENWIRE_VERSION, stack_trace_enabled)
}

fn decode_one(bytes: &[u8]) -> Command {
    decode_one_with(bytes, false)
}

fn decode_err(bytes: &[u8]) -> OpenWireError {
    let mut d = Decoder::default();
    let mut buf = BytesMut::from(bytes);
    d.decode(&mut buf).expect_err("an error")
}

/// Decodes a whole stream fed `chunk` bytes at a time; panics on an error or leftovers.
fn decode_stream(bytes: &[u8], chunk: usize) -> Vec<Command> {
    let mut d = Decoder::default();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for piece in bytes.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        while let Some(cmd) = d.decode(&mut buf).expect("stream decodes") {
            out.push(cmd);
        }
    }
    assert!(buf.is_empty(), "stream ends inside a frame");
    out
}

fn encode_stream(cmds: &[Command]) -> Vec<u8> {
    cmds.iter().flat_map(encoded).collect()
}

/// A captured vector decodes to `expected` and `expected` encodes to the vector.
fn assert_vector(bytes: &[u8], expected: &Command) {
    assert_eq!(&decode_one(bytes), expected, "decoded value");
    assert_eq!(encoded(expected), bytes, "re-encoded bytes");
}

fn h(command_id: i32, response_required: bool) -> Header {
    Header::new(command_id, response_required)
}

fn conn_id() -> ConnectionId {
    ConnectionId::new(CONN)
}

fn session_id(value: i64) -> SessionId {
    SessionId {
        connection_id: CONN.into(),
        value,
    }
}

fn consumer_id(session: i64, value: i64) -> ConsumerId {
    ConsumerId {
        connection_id: CONN.into(),
        session_id: session,
        value,
    }
}

fn producer_id(session: i64, value: i64) -> ProducerId {
    ProducerId {
        connection_id: CONN.into(),
        session_id: session,
        value,
    }
}

fn response(correlation_id: i32) -> Command {
    Command::Response(Response::new(correlation_id))
}

// ------------------------------------------------------------------------------------
// §7.4 captured vectors
// ------------------------------------------------------------------------------------

fn response_corr1_bytes() -> Vec<u8> {
    wire("0000000a 1e 00000000 00 00000001")
}

fn keep_alive_bytes() -> Vec<u8> {
    wire("00000006 0a 00000000 00")
}

fn shutdown_cmd8_bytes() -> Vec<u8> {
    wire("00000006 0b 00000008 00")
}

fn connection_control_bytes() -> Vec<u8> {
    wire("00000013 12 00000000 00 00 00 00 00 00 01 0000 01 0000 00 00")
}

fn broker_info_bytes() -> Vec<u8> {
    wire(
        r#"00000055 02 00000000 00 | 01 7c 01 001d "ID:vm-39953-1795673528603-0:1"
        | 01 0015 "tcp://localhost:63616" | 00 | 01 0002 "B1" | 00 00 00 00 00
        | 0000000000000000 | 00 | 00"#,
    )
}

fn session_info_bytes() -> Vec<u8> {
    wire(
        r#"00000030 04 00000003 00 | 01 79 01 001d "ID:vm-37003-1795673536119-1:1" 0000000000000001"#,
    )
}

fn null_dispatch_bytes() -> Vec<u8> {
    wire("0000003e 15 00000000 00 | 01 7a 01 001d <connId> 0000000000000003 0000000000000001 | 00 | 00 | 00000000")
}

/// The client's WireFormatInfo; `cache` and `tight` are the two bytes in which the real
/// broker's loose reply differs (`01` from the client, `00` from the broker).
fn wire_format_info_bytes(cache: &str, tight: &str) -> Vec<u8> {
    wire(&format!(
        r#"00000152 01 4163746976654d51 0000000c 01 00000140 0000000d
        0011"StackTraceEnabled"0101 000f"PlatformDetails"09 0004"Java"
        000c"CacheEnabled"01{cache} 0011"TcpNoDelayEnabled"0101 0012"SizePrefixDisabled"0100
        0009"CacheSize"05 00000400 000c"ProviderName"09 0008"ActiveMQ"
        0014"TightEncodingEnabled"01{tight} 000c"MaxFrameSize"06 7fffffffffffffff
        0015"MaxInactivityDuration"06 0000000000007530
        0020"MaxInactivityDurationInitalDelay"06 0000000000002710
        0013"MaxFrameSizeEnabled"0101 000f"ProviderVersion"09 0006"5.17.2""#
    ))
}

fn text_message_bytes() -> Vec<u8> {
    wire(
        r#"000000d6 1c | 00000005 01
        | 01 7b 01 001d <connId> 0000000000000001 0000000000000001
        | 01 64 01 0003 "FOO"
        | 00 | 00
        | 01 6e 00 01 7b 01 001d <connId> 0000000000000001 0000000000000001 0000000000000001 0000000000000000
        | 00
        | 00 | 00000000 | 00
        | 01 | 0000000000000000 | 04 | 00
        | 000001a2167bb849 | 00
        | 01 00000009 0000000568656c6c6f
        | 00 | 00 | 00 | 00 | 00000000 | 00 | 0000000000000000 | 00 | 00 | 00 | 00
        | 0000000000000000 | 0000000000000000 | 00"#,
    )
}

fn client_wfi_options(cache_and_tight: bool) -> Vec<(&'static str, PrimitiveValue)> {
    vec![
        ("StackTraceEnabled", PrimitiveValue::Boolean(true)),
        ("PlatformDetails", PrimitiveValue::String("Java".into())),
        ("CacheEnabled", PrimitiveValue::Boolean(cache_and_tight)),
        ("TcpNoDelayEnabled", PrimitiveValue::Boolean(true)),
        ("SizePrefixDisabled", PrimitiveValue::Boolean(false)),
        ("CacheSize", PrimitiveValue::Int(1024)),
        ("ProviderName", PrimitiveValue::String("ActiveMQ".into())),
        (
            "TightEncodingEnabled",
            PrimitiveValue::Boolean(cache_and_tight),
        ),
        ("MaxFrameSize", PrimitiveValue::Long(i64::MAX)),
        ("MaxInactivityDuration", PrimitiveValue::Long(30_000)),
        (
            "MaxInactivityDurationInitalDelay",
            PrimitiveValue::Long(10_000),
        ),
        ("MaxFrameSizeEnabled", PrimitiveValue::Boolean(true)),
        ("ProviderVersion", PrimitiveValue::String("5.17.2".into())),
    ]
}

fn client_wfi(cache_and_tight: bool) -> Command {
    Command::WireFormatInfo(WireFormatInfo {
        version: 12,
        options: client_wfi_options(cache_and_tight).into_iter().collect(),
    })
}

/// The captured persistent TextMessage "hello" (cmd 5, sync).
fn hello_message() -> Message {
    let mut content = BytesMut::new();
    content.extend_from_slice(&wire("00000005 68656c6c6f"));
    Message {
        kind: MessageKind::Text,
        header: h(5, true),
        producer_id: Some(producer_id(1, 1)),
        destination: Some(Destination::queue("FOO")),
        message_id: Some(MessageId {
            text_view: None,
            producer_id: Some(producer_id(1, 1)),
            producer_sequence_id: 1,
            broker_sequence_id: 0,
        }),
        persistent: true,
        priority: 4,
        timestamp: 0x0000_01a2_167b_b849,
        content: Some(content.freeze()),
        ..Message::default()
    }
}

#[test]
fn vector_response() {
    assert_vector(&response_corr1_bytes(), &response(1));
}

#[test]
fn vector_keep_alive() {
    assert_vector(
        &keep_alive_bytes(),
        &Command::KeepAliveInfo(KeepAliveInfo::default()),
    );
}

#[test]
fn vector_shutdown() {
    assert_vector(
        &shutdown_cmd8_bytes(),
        &Command::ShutdownInfo(ShutdownInfo {
            header: h(8, false),
        }),
    );
}

#[test]
fn vector_connection_control() {
    let expected = Command::ConnectionControl(ConnectionControl {
        connected_brokers: Some(String::new()),
        reconnect_to: Some(String::new()),
        ..ConnectionControl::default()
    });
    assert_vector(&connection_control_bytes(), &expected);
}

#[test]
fn vector_broker_info() {
    let expected = Command::BrokerInfo(BrokerInfo {
        broker_id: Some(BrokerId::new("ID:vm-39953-1795673528603-0:1")),
        broker_url: Some("tcp://localhost:63616".into()),
        broker_name: Some("B1".into()),
        ..BrokerInfo::default()
    });
    assert_vector(&broker_info_bytes(), &expected);
}

#[test]
fn vector_session_info() {
    let expected = Command::SessionInfo(SessionInfo {
        header: h(3, false),
        session_id: Some(session_id(1)),
    });
    assert_vector(&session_info_bytes(), &expected);
    assert_eq!(session_id(1).to_string(), format!("{CONN}:1"));
}

#[test]
fn vector_null_message_dispatch() {
    let bytes = null_dispatch_bytes();
    assert_eq!(bytes.len(), 66, "the sheet's 66-byte frame");
    let expected = Command::MessageDispatch(MessageDispatch {
        consumer_id: Some(consumer_id(3, 1)),
        ..MessageDispatch::default()
    });
    assert_vector(&bytes, &expected);
}

#[test]
fn vector_client_wire_format_info() {
    let bytes = wire_format_info_bytes("01", "01");
    assert_eq!(bytes.len(), 342);
    assert_vector(&bytes, &client_wfi(true));
    let Command::WireFormatInfo(wfi) = decode_one(&bytes) else {
        panic!("not a WireFormatInfo")
    };
    assert_eq!(wfi.version, 12);
    assert!(wfi.bool_option(wireformat::TIGHT_ENCODING_ENABLED));
    assert!(wfi.bool_option(wireformat::CACHE_ENABLED));
    assert!(wfi.bool_option(wireformat::STACK_TRACE_ENABLED));
    assert!(!wfi.bool_option(wireformat::SIZE_PREFIX_DISABLED));
    assert!(!wfi.bool_option(wireformat::HOST), "absent reads false");
    assert_eq!(wfi.long_option(wireformat::CACHE_SIZE), 1024);
    assert_eq!(wfi.long_option(wireformat::MAX_FRAME_SIZE), i64::MAX);
    assert_eq!(wfi.long_option(wireformat::MAX_INACTIVITY_DURATION), 30_000);
    assert_eq!(
        wfi.long_option(wireformat::MAX_INACTIVITY_DURATION_INITIAL_DELAY),
        10_000
    );
    assert_eq!(
        wfi.options.get(wireformat::PROVIDER_VERSION),
        Some(&PrimitiveValue::String("5.17.2".into()))
    );
}

#[test]
fn vector_broker_wire_format_info_reply() {
    let bytes = wire_format_info_bytes("00", "00");
    assert_eq!(bytes.len(), 342);
    assert_vector(&bytes, &client_wfi(false));
}

#[test]
fn vector_persistent_text_message() {
    let bytes = text_message_bytes();
    assert_eq!(bytes.len(), 218);
    let expected = Command::Message(Box::new(hello_message()));
    assert_vector(&bytes, &expected);
    let Command::Message(m) = decode_one(&bytes) else {
        panic!("not a message")
    };
    assert_eq!(m.text().unwrap().as_deref(), Some("hello"));
    assert_eq!(m.properties().unwrap(), PrimitiveMap::new());
    assert_eq!(
        m.message_id.as_ref().unwrap().to_string(),
        format!("{CONN}:1:1:1"),
        "JMSMessageID = producerId:seq"
    );
    let mut rebuilt = hello_message();
    rebuilt.set_text(Some("hello")).unwrap();
    assert_eq!(
        rebuilt.content, m.content,
        "set_text writes what Java writes"
    );
}

/// The captured ids all have session = value = 1 for producers, which cannot tell the
/// two longs apart. §2.5 states the order was verified on the wire with session 2,
/// producer 1: connectionId, value, sessionId (ConsumerId's is connectionId, sessionId,
/// value, which the captured null dispatch pins with session 3, consumer 1).
#[test]
fn producer_id_field_order() {
    let info = Command::ProducerInfo(ProducerInfo {
        header: h(4, true),
        producer_id: Some(producer_id(2, 1)),
        ..ProducerInfo::default()
    });
    let bytes = wire(
        "0000003f 06 00000004 01 | 01 7b 01 001d <connId> 0000000000000001 0000000000000002
        | 00 | 00 | 00 | 00000000",
    );
    assert_vector(&bytes, &info);
    assert_eq!(producer_id(2, 1).to_string(), format!("{CONN}:2:1"));
}

// ------------------------------------------------------------------------------------
// §7 captured conversations, as byte streams
// ------------------------------------------------------------------------------------

const ADVISORY_TOPICS: &str = "ActiveMQ.Advisory.TempQueue,ActiveMQ.Advisory.TempTopic";

fn connection_info(command_id: i32, fault_tolerant: bool, failover_reconnect: bool) -> Command {
    Command::ConnectionInfo(ConnectionInfo {
        header: h(command_id, true),
        connection_id: Some(conn_id()),
        client_id: Some("ID:vm-37003-1795673536119-0:1".into()),
        manageable: true,
        client_master: true,
        fault_tolerant,
        failover_reconnect,
        ..ConnectionInfo::default()
    })
}

fn advisory_consumer(command_id: i32, prefetch: i32) -> Command {
    Command::ConsumerInfo(ConsumerInfo {
        header: h(command_id, true),
        consumer_id: Some(consumer_id(-1, 1)),
        destination: Some(Destination::topic(ADVISORY_TOPICS)),
        prefetch_size: prefetch,
        dispatch_async: true,
        no_local: true,
        ..ConsumerInfo::default()
    })
}

fn queue_consumer(command_id: i32, prefetch: i32) -> Command {
    Command::ConsumerInfo(ConsumerInfo {
        header: h(command_id, true),
        consumer_id: Some(consumer_id(1, 1)),
        destination: Some(Destination::queue("FOO")),
        prefetch_size: prefetch,
        dispatch_async: true,
        client_id: Some("ID:vm-37003-1795673536119-0:1".into()),
        ..ConsumerInfo::default()
    })
}

fn producer_info(command_id: i32) -> Command {
    Command::ProducerInfo(ProducerInfo {
        header: h(command_id, true),
        producer_id: Some(producer_id(1, 1)),
        destination: Some(Destination::queue("FOO")),
        ..ProducerInfo::default()
    })
}

fn remove(command_id: i32, rr: bool, target: RemoveTarget, last_delivered: i64) -> Command {
    Command::RemoveInfo(RemoveInfo {
        header: h(command_id, rr),
        object_id: Some(target),
        last_delivered_sequence_id: last_delivered,
    })
}

/// Bytes of a stream made of captured vectors and constructed frames.
fn concat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

/// The stream decodes (fed whole, in 7-byte pieces and byte by byte) to `expected`, and
/// `expected` encodes back to the stream.
fn assert_stream(bytes: &[u8], expected: &[Command]) {
    for chunk in [bytes.len(), 7, 1] {
        assert_eq!(
            decode_stream(bytes, chunk),
            expected,
            "fed in {chunk}-byte pieces"
        );
    }
    assert_eq!(encode_stream(expected), bytes);
}

/// Every response_required command is answered with its commandId, in order.
fn assert_answered(requests: &[Command], replies: &[Command]) {
    let wanted: Vec<i32> = requests
        .iter()
        .filter(|c| c.response_required())
        .map(Command::command_id)
        .collect();
    let answered: Vec<i32> = replies
        .iter()
        .filter_map(|c| match c {
            Command::Response(r) => Some(r.correlation_id),
            Command::ExceptionResponse(r) => Some(r.correlation_id),
            _ => None,
        })
        .collect();
    assert_eq!(wanted, answered);
}

/// §7.1: connect, send one persistent text message to queue FOO, close.
#[test]
fn sequence_connect_send_close() {
    let client = [
        client_wfi(true),
        connection_info(1, true, false),
        advisory_consumer(2, 1000),
        Command::SessionInfo(SessionInfo {
            header: h(3, false),
            session_id: Some(session_id(1)),
        }),
        producer_info(4),
        Command::Message(Box::new(hello_message())),
        remove(6, false, RemoveTarget::Consumer(consumer_id(-1, 1)), -2),
        remove(7, true, RemoveTarget::Connection(conn_id()), -1),
        Command::ShutdownInfo(ShutdownInfo {
            header: h(8, false),
        }),
    ];
    let client_bytes = concat(&[
        wire_format_info_bytes("01", "01"),
        encoded(&client[1]),
        encoded(&client[2]),
        session_info_bytes(),
        encoded(&client[4]),
        text_message_bytes(),
        encoded(&client[6]),
        encoded(&client[7]),
        shutdown_cmd8_bytes(),
    ]);
    assert_stream(&client_bytes, &client);

    let broker = [
        client_wfi(false),
        decode_one(&broker_info_bytes()),
        response(1),
        decode_one(&connection_control_bytes()),
        response(2),
        response(4),
        response(5),
        response(7),
    ];
    let broker_bytes = concat(&[
        wire_format_info_bytes("00", "00"),
        broker_info_bytes(),
        response_corr1_bytes(),
        connection_control_bytes(),
        encoded(&response(2)),
        encoded(&response(4)),
        encoded(&response(5)),
        encoded(&response(7)),
    ]);
    assert_stream(&broker_bytes, &broker);
    assert_answered(&client, &broker);

    // The fields §7.1 names.
    let Command::ConnectionInfo(ci) = &decode_stream(&client_bytes, 64)[1] else {
        panic!("second frame is the ConnectionInfo")
    };
    assert!(ci.manageable && ci.client_master && ci.fault_tolerant && !ci.failover_reconnect);
    assert_eq!(ci.client_ip, None);
}

/// §7.2: consume one message with AUTO_ACKNOWLEDGE.
#[test]
fn sequence_consume_auto_ack() {
    let mut dispatched = hello_message();
    dispatched.message_id.as_mut().unwrap().broker_sequence_id = 5;
    let message_id = dispatched.message_id.clone();
    let client = [
        Command::SessionInfo(SessionInfo {
            header: h(3, false),
            session_id: Some(session_id(1)),
        }),
        queue_consumer(4, 1000),
        Command::MessageAck(MessageAck {
            header: h(5, false),
            destination: Some(Destination::queue("FOO")),
            transaction_id: None,
            consumer_id: Some(consumer_id(1, 1)),
            ack_type: AckType::Standard,
            first_message_id: message_id.clone(),
            last_message_id: message_id,
            message_count: 1,
            poison_cause: None,
        }),
        remove(6, false, RemoveTarget::Consumer(consumer_id(-1, 1)), -2),
        remove(7, true, RemoveTarget::Connection(conn_id()), 5),
        Command::ShutdownInfo(ShutdownInfo {
            header: h(8, false),
        }),
    ];
    let broker = [
        response(4),
        Command::MessageDispatch(MessageDispatch {
            header: Header::default(),
            consumer_id: Some(consumer_id(1, 1)),
            destination: Some(Destination::queue("FOO")),
            message: Some(Box::new(dispatched)),
            redelivery_counter: 0,
        }),
        response(7),
    ];
    let mut client_bytes = session_info_bytes();
    client_bytes.extend(client[1..5].iter().flat_map(encoded));
    client_bytes.extend(shutdown_cmd8_bytes());
    assert_stream(&client_bytes, &client);
    assert_stream(&encode_stream(&broker), &broker);
    assert_answered(&client, &broker);

    // The dispatched message is the captured frame nested with its type byte, with the
    // broker sequence id changed: the 214-byte body (type + fields) sits inside.
    let dispatch_bytes = encoded(&broker[1]);
    let text = text_message_bytes();
    let body = &text[5..];
    let at = dispatch_bytes.len() - 4 - body.len();
    assert_eq!(
        dispatch_bytes[at - 2..at],
        [0x01, 0x1c],
        "notNull + TextMessage type"
    );
    assert_eq!(
        &dispatch_bytes[at..at + 100],
        &body[..100],
        "up to the brokerSequenceId"
    );
}

/// §7.3: pull consumer, temp queue with its advisory, durable subscriber, transacted
/// producer.
#[test]
fn sequence_other_shapes() {
    // Pull (prefetch 0): MessagePull answered by the captured null dispatch.
    let pull = Command::MessagePull(MessagePull {
        header: h(5, false),
        consumer_id: Some(consumer_id(3, 1)),
        destination: Some(Destination::queue("PQ")),
        timeout: 3000,
        correlation_id: None,
        message_id: None,
    });
    assert_stream(&encoded(&pull), std::slice::from_ref(&pull));
    assert_stream(
        &null_dispatch_bytes(),
        &[decode_one(&null_dispatch_bytes())],
    );

    // Temp queue: DestinationInfo ADD, the advisory dispatched to the advisory consumer,
    // then the Response.
    let temp = Destination::new(DestinationKind::TempQueue, format!("{CONN}:1"));
    let add = DestinationInfo {
        header: h(6, true),
        connection_id: Some(conn_id()),
        destination: Some(temp.clone()),
        operation: DestinationOperation::Add,
        timeout: 0,
        broker_path: None,
    };
    let mut advisory = Message {
        kind: MessageKind::Plain,
        producer_id: Some(ProducerId {
            connection_id: "ID:broker-1".into(),
            session_id: 0,
            value: 1,
        }),
        destination: Some(Destination::topic("ActiveMQ.Advisory.TempQueue")),
        message_id: Some(MessageId {
            text_view: None,
            producer_id: Some(ProducerId {
                connection_id: "ID:broker-1".into(),
                session_id: 0,
                value: 1,
            }),
            producer_sequence_id: 1,
            broker_sequence_id: 1,
        }),
        jms_type: Some("Advisory".into()),
        data_structure: Some(Box::new(DataStructure::Command(Box::new(
            Command::DestinationInfo(DestinationInfo {
                header: Header::default(),
                ..add.clone()
            }),
        )))),
        ..Message::default()
    };
    let origin: PrimitiveMap = [
        ("originBrokerId", PrimitiveValue::string("ID:broker-1")),
        ("originBrokerName", PrimitiveValue::string("localhost")),
        (
            "originBrokerURL",
            PrimitiveValue::string("tcp://localhost:61616"),
        ),
    ]
    .into_iter()
    .collect();
    advisory.set_properties(&origin).unwrap();
    let broker = [
        Command::MessageDispatch(MessageDispatch {
            header: Header::default(),
            consumer_id: Some(consumer_id(-1, 1)),
            destination: Some(Destination::topic("ActiveMQ.Advisory.TempQueue")),
            message: Some(Box::new(advisory)),
            redelivery_counter: 0,
        }),
        response(6),
    ];
    let client = [Command::DestinationInfo(add)];
    assert_stream(&encode_stream(&client), &client);
    assert_stream(&encode_stream(&broker), &broker);
    assert_answered(&client, &broker);
    let Command::MessageDispatch(d) = &decode_stream(&encode_stream(&broker), 1)[0] else {
        panic!("advisory dispatch")
    };
    let m = d.message.as_ref().unwrap();
    assert_eq!(m.properties().unwrap(), origin);
    assert!(matches!(
        m.data_structure.as_deref(),
        Some(DataStructure::Command(c)) if matches!(&**c, Command::DestinationInfo(i) if i.destination.as_ref() == Some(&temp))
    ));

    // Durable subscriber: subscribe, close, unsubscribe.
    let client = [
        Command::ConsumerInfo(ConsumerInfo {
            header: h(4, true),
            consumer_id: Some(consumer_id(1, 1)),
            destination: Some(Destination::topic("DT")),
            prefetch_size: 100,
            subscription_name: Some("sub1".into()),
            client_id: Some("cid1".into()),
            ..ConsumerInfo::default()
        }),
        remove(5, false, RemoveTarget::Consumer(consumer_id(1, 1)), -1),
        Command::RemoveSubscriptionInfo(RemoveSubscriptionInfo {
            header: h(6, true),
            connection_id: Some(conn_id()),
            subscription_name: Some("sub1".into()),
            client_id: Some("cid1".into()),
        }),
    ];
    let broker = [response(4), response(6)];
    assert_stream(&encode_stream(&client), &client);
    assert_answered(&client, &broker);

    // Transacted producer: BEGIN (async), message with the txid (async), COMMIT (sync).
    let tx = TransactionId::Local(LocalTransactionId {
        value: 1,
        connection_id: Some(conn_id()),
    });
    let mut sent = hello_message();
    sent.header = h(6, false);
    sent.transaction_id = Some(tx.clone());
    let tx_info = |command_id, rr, transaction_type| {
        Command::TransactionInfo(TransactionInfo {
            header: h(command_id, rr),
            connection_id: Some(conn_id()),
            transaction_id: Some(tx.clone()),
            transaction_type,
        })
    };
    let client = [
        tx_info(5, false, TransactionType::Begin),
        Command::Message(Box::new(sent)),
        tx_info(7, true, TransactionType::CommitOnePhase),
    ];
    assert_stream(&encode_stream(&client), &client);
    assert_answered(&client, &[response(7)]);
    if let TransactionId::Local(local) = &tx {
        assert_eq!(local.to_string(), format!("TX:{CONN}:1"));
    }
}

/// §6.1: what a failover client replays on reconnect, pipelined.
#[test]
fn sequence_failover_replay() {
    let client = [
        client_wfi(true),
        Command::ConnectionControl(ConnectionControl {
            fault_tolerant: true,
            ..ConnectionControl::default()
        }),
        connection_info(1, true, true),
        Command::SessionInfo(SessionInfo {
            header: h(0, false),
            session_id: Some(session_id(-1)),
        }),
        advisory_consumer(2, 1000),
        Command::SessionInfo(SessionInfo {
            header: h(3, false),
            session_id: Some(session_id(1)),
        }),
        queue_consumer(4, 0),
        Command::ConsumerControl(ConsumerControl {
            consumer_id: Some(consumer_id(1, 1)),
            destination: Some(Destination::queue("FOO")),
            prefetch: 1000,
            ..ConsumerControl::default()
        }),
    ];
    let bytes = encode_stream(&client);
    assert_stream(&bytes, &client);
    let decoded = decode_stream(&bytes, 3);
    let Command::ConnectionInfo(ci) = &decoded[2] else {
        panic!("ConnectionInfo")
    };
    assert!(ci.failover_reconnect && ci.header.response_required);
    assert_eq!(
        decoded[7].command_id(),
        0,
        "ConsumerControl is injected below the correlator"
    );
}

// ------------------------------------------------------------------------------------
// Every command type, both ways
// ------------------------------------------------------------------------------------

fn sample_throwable() -> Throwable {
    Throwable {
        class_name: Some("javax.jms.InvalidClientIDException".into()),
        message: Some("Broker: localhost - Client: cid1 already connected".into()),
        stack_trace: vec![
            StackTraceElement {
                class_name: Some("org.apache.activemq.broker.region.RegionBroker".into()),
                method_name: Some("addConnection".into()),
                file_name: Some("RegionBroker.java".into()),
                line_number: 252,
            },
            StackTraceElement {
                class_name: Some("java.lang.Thread".into()),
                method_name: Some("run".into()),
                file_name: None,
                line_number: -2,
            },
        ],
        cause: Some(Box::new(Throwable::new(
            "java.lang.IllegalStateException",
            "cause",
        ))),
    }
}

fn xa_id() -> TransactionId {
    TransactionId::Xa(XaTransactionId {
        format_id: 0x4a4d53,
        global_transaction_id: Some(Bytes::from_static(b"gtrid\x00\xff")),
        branch_qualifier: Some(Bytes::new()),
    })
}

/// One value of every command type, every field set to something non-default.
fn sample_commands() -> Vec<Command> {
    let broker_path = Some(vec![BrokerId::new("B1"), BrokerId::new("B2")]);
    let mut full_message = hello_message();
    full_message.transaction_id = Some(xa_id());
    full_message.original_destination = Some(Destination::new(DestinationKind::TempTopic, "tt"));
    full_message.original_transaction_id = Some(TransactionId::Local(LocalTransactionId {
        value: 9,
        connection_id: None,
    }));
    full_message.group_id = Some("g\u{0}1".into());
    full_message.group_sequence = 7;
    full_message.correlation_id = Some("corr-😀".into());
    full_message.expiration = 1_800_000_000_000;
    full_message.priority = 9;
    full_message.reply_to = Some(Destination::new(DestinationKind::TempQueue, "ID:x:1:1"));
    full_message.jms_type = Some("Advisory".into());
    full_message.data_structure = Some(Box::new(DataStructure::BrokerId(BrokerId::new("B3"))));
    full_message.target_consumer_id = Some(consumer_id(1, 2));
    full_message.compressed = true;
    full_message.redelivery_counter = 3;
    full_message.broker_path = broker_path.clone();
    full_message.arrival = 11;
    full_message.user_id = Some("alice".into());
    full_message.received_by_df_bridge = true;
    full_message.droppable = true;
    full_message.cluster = Some(vec![]);
    full_message.broker_in_time = 12;
    full_message.broker_out_time = 13;
    full_message.jmsx_group_first_for_consumer = true;
    full_message
        .set_properties(
            &[
                ("sp", PrimitiveValue::string("s")),
                ("ip", PrimitiveValue::Int(1)),
                ("lp", PrimitiveValue::Long(2)),
                ("bp", PrimitiveValue::Boolean(true)),
                ("dp", PrimitiveValue::Double(1.5)),
            ]
            .into_iter()
            .collect(),
        )
        .unwrap();
    let kinds = [
        MessageKind::Plain,
        MessageKind::Bytes,
        MessageKind::Map,
        MessageKind::Object,
        MessageKind::Stream,
        MessageKind::Text,
        MessageKind::Blob(BlobFields {
            remote_blob_url: Some("http://x/blob".into()),
            mime_type: Some("application/octet-stream".into()),
            deleted_by_broker: true,
        }),
    ];
    let mut cmds = vec![
        Command::WireFormatInfo(WireFormatInfo::tandem(104_857_600)),
        Command::BrokerInfo(BrokerInfo {
            header: h(1, false),
            broker_id: Some(BrokerId::new("ID:b")),
            broker_url: Some("tcp://h:61616".into()),
            peer_broker_infos: Some(vec![BrokerInfo {
                broker_name: Some("peer".into()),
                ..BrokerInfo::default()
            }]),
            broker_name: Some("localhost".into()),
            slave_broker: true,
            master_broker: true,
            fault_tolerant_configuration: true,
            duplex_connection: true,
            network_connection: true,
            connection_id: 42,
            broker_upload_url: Some("u".into()),
            network_properties: Some("p".into()),
        }),
        Command::ConnectionInfo(ConnectionInfo {
            header: h(1, true),
            connection_id: Some(conn_id()),
            client_id: Some("cid".into()),
            password: Some("secret".into()),
            user_name: Some("user".into()),
            broker_path: broker_path.clone(),
            broker_master_connector: true,
            manageable: true,
            client_master: true,
            fault_tolerant: true,
            failover_reconnect: true,
            client_ip: Some("tcp://127.0.0.1:5000".into()),
        }),
        Command::SessionInfo(SessionInfo {
            header: h(2, false),
            session_id: Some(session_id(-1)),
        }),
        Command::ConsumerInfo(ConsumerInfo {
            header: h(3, true),
            consumer_id: Some(consumer_id(1, 1)),
            browser: true,
            destination: Some(Destination::topic("T.>")),
            prefetch_size: 32766,
            maximum_pending_message_limit: -1,
            dispatch_async: true,
            selector: Some("price > 10 AND name = 'x'".into()),
            client_id: Some("cid".into()),
            subscription_name: Some("sub".into()),
            no_local: true,
            exclusive: true,
            retroactive: true,
            priority: -3,
            broker_path: broker_path.clone(),
            network_subscription: true,
            optimized_acknowledge: true,
            no_range_acks: true,
            network_consumer_path: Some(vec![consumer_id(2, 2)]),
        }),
        Command::ProducerInfo(ProducerInfo {
            header: h(4, true),
            producer_id: Some(producer_id(1, 1)),
            destination: None,
            broker_path: Some(vec![]),
            dispatch_async: true,
            window_size: 1024,
        }),
        Command::DestinationInfo(DestinationInfo {
            header: h(6, true),
            connection_id: Some(conn_id()),
            destination: Some(Destination::new(DestinationKind::TempTopic, "t")),
            operation: DestinationOperation::Remove,
            timeout: -5,
            broker_path: broker_path.clone(),
        }),
        Command::RemoveSubscriptionInfo(RemoveSubscriptionInfo {
            header: h(7, true),
            connection_id: Some(conn_id()),
            subscription_name: Some("sub".into()),
            client_id: None,
        }),
        Command::KeepAliveInfo(KeepAliveInfo { header: h(0, true) }),
        Command::ShutdownInfo(ShutdownInfo {
            header: h(9, false),
        }),
        Command::ControlCommand(ControlCommand {
            header: h(0, false),
            command: Some("shutdown".into()),
        }),
        Command::ConnectionError(ConnectionError {
            header: h(0, false),
            exception: Some(sample_throwable()),
            connection_id: Some(conn_id()),
        }),
        Command::ConsumerControl(ConsumerControl {
            header: h(0, false),
            destination: Some(Destination::queue("Q")),
            close: true,
            consumer_id: Some(consumer_id(1, 1)),
            prefetch: 7,
            flush: true,
            start: true,
            stop: true,
        }),
        Command::ConnectionControl(ConnectionControl {
            header: h(0, false),
            close: true,
            exit: true,
            fault_tolerant: true,
            resume: true,
            suspend: true,
            connected_brokers: Some("tcp://a:1,tcp://b:2".into()),
            reconnect_to: Some("tcp://c:3".into()),
            rebalance_connection: true,
            token: Some(Bytes::from_static(&[1, 2, 3])),
        }),
        Command::ProducerAck(ProducerAck {
            header: h(0, false),
            producer_id: Some(producer_id(1, 1)),
            size: 218,
        }),
        Command::MessagePull(MessagePull {
            header: h(8, false),
            consumer_id: Some(consumer_id(1, 1)),
            destination: Some(Destination::queue("PQ")),
            timeout: -1,
            correlation_id: Some("c".into()),
            message_id: hello_message().message_id,
        }),
        Command::MessageDispatch(MessageDispatch {
            header: h(0, false),
            consumer_id: Some(consumer_id(1, 1)),
            destination: Some(Destination::queue("FOO")),
            message: Some(Box::new(full_message.clone())),
            redelivery_counter: 2,
        }),
        Command::MessageAck(MessageAck {
            header: h(10, true),
            destination: Some(Destination::queue("FOO")),
            transaction_id: Some(xa_id()),
            consumer_id: Some(consumer_id(1, 1)),
            ack_type: AckType::Poison,
            first_message_id: Some(MessageId {
                text_view: Some("ID:text-view:1".into()),
                ..MessageId::default()
            }),
            last_message_id: hello_message().message_id,
            message_count: 2,
            poison_cause: Some(sample_throwable()),
        }),
        response(11),
        Command::ExceptionResponse(ExceptionResponse::new(12, sample_throwable())),
        Command::DataResponse(DataResponse {
            header: h(0, false),
            correlation_id: 13,
            data: Some(Box::new(DataStructure::Command(Box::new(response(1))))),
        }),
        Command::DataArrayResponse(DataArrayResponse {
            header: h(0, false),
            correlation_id: 14,
            data: Some(vec![
                DataStructure::TransactionId(xa_id()),
                DataStructure::Destination(Destination::queue("Q")),
                DataStructure::MessageId(MessageId::default()),
                DataStructure::ConnectionId(conn_id()),
                DataStructure::SessionId(session_id(1)),
                DataStructure::ConsumerId(consumer_id(1, 1)),
                DataStructure::ProducerId(producer_id(1, 1)),
            ]),
        }),
        Command::IntegerResponse(IntegerResponse {
            header: h(0, false),
            correlation_id: 15,
            result: 3,
        }),
    ];
    for transaction_type in 0..=7 {
        cmds.push(Command::TransactionInfo(TransactionInfo {
            header: h(5, transaction_type != 0),
            connection_id: Some(conn_id()),
            transaction_id: Some(TransactionId::Local(LocalTransactionId {
                value: 3,
                connection_id: Some(conn_id()),
            })),
            transaction_type: TransactionType::from_byte(transaction_type).unwrap(),
        }));
    }
    for ack_type in 0..=6 {
        cmds.push(Command::MessageAck(MessageAck {
            header: h(10, false),
            destination: None,
            transaction_id: None,
            consumer_id: None,
            ack_type: AckType::from_byte(ack_type).unwrap(),
            first_message_id: None,
            last_message_id: None,
            message_count: 0,
            poison_cause: None,
        }));
    }
    for target in [
        RemoveTarget::Connection(conn_id()),
        RemoveTarget::Session(session_id(1)),
        RemoveTarget::Consumer(consumer_id(1, 1)),
        RemoveTarget::Producer(producer_id(1, 1)),
    ] {
        cmds.push(remove(6, true, target, RemoveInfo::UNKNOWN_DELIVERED));
    }
    for kind in kinds {
        cmds.push(Command::Message(Box::new(Message {
            kind,
            ..full_message.clone()
        })));
    }
    cmds
}

/// Without negotiated stack traces, throwables lose their trace and cause on the wire.
fn without_traces(cmd: &Command) -> Command {
    let strip = |t: &mut Option<Throwable>| {
        if let Some(t) = t {
            t.stack_trace.clear();
            t.cause = None;
        }
    };
    let mut cmd = cmd.clone();
    match &mut cmd {
        Command::ConnectionError(c) => strip(&mut c.exception),
        Command::ExceptionResponse(c) => strip(&mut c.exception),
        Command::MessageAck(c) => strip(&mut c.poison_cause),
        _ => {}
    }
    cmd
}

#[test]
fn every_command_type_round_trips() {
    let cmds = sample_commands();
    let mut types: Vec<u8> = cmds.iter().map(Command::type_id).collect();
    types.sort_unstable();
    types.dedup();
    let expected: Vec<u8> = (1..=34).filter(|t| !matches!(t, 13 | 15)).collect();
    assert_eq!(types, expected, "one sample of every implemented type");

    for cmd in &cmds {
        // Stack traces negotiated on: everything survives.
        let bytes = encoded_with(cmd, true);
        let back = decode_one_with(&bytes, true);
        assert_eq!(&back, cmd, "{}", cmd.name());
        assert_eq!(encoded_with(&back, true), bytes, "{}", cmd.name());
        // Off (Tandem's format): traces and causes are dropped, nothing else.
        let bytes = encoded(cmd);
        let back = decode_one(&bytes);
        assert_eq!(back, without_traces(cmd), "{}", cmd.name());
        assert_eq!(encoded(&back), bytes, "{}", cmd.name());
        // The size prefix counts the type byte and the body.
        let size = i32::from_be_bytes(bytes[..4].try_into().unwrap());
        assert_eq!(size as usize, bytes.len() - 4);
        assert_eq!(bytes[4], cmd.type_id());
    }
    // All of them back to back, fed byte by byte.
    let stream: Vec<u8> = cmds.iter().flat_map(|c| encoded_with(c, true)).collect();
    let mut d = Decoder::default();
    d.set_stack_trace_enabled(true);
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for b in stream {
        buf.extend_from_slice(&[b]);
        while let Some(c) = d.decode(&mut buf).unwrap() {
            got.push(c);
        }
    }
    assert_eq!(got, cmds);
}

#[test]
fn exception_response_with_stack_trace_layout() {
    // ExceptionResponse corr 1, InvalidClientIDException, one frame, no cause: the
    // layout the captured 17-frame reply follows.
    let bytes = wire(
        r#"00000093 1f 00000000 00 00000001
        01 01 0022 "javax.jms.InvalidClientIDException" 01 0004 "dup!"
        0001 01 002e "org.apache.activemq.broker.region.RegionBroker"
             01 000d "addConnection" 01 0011 "RegionBroker.java" 000000fc
        00"#,
    );
    let expected = Command::ExceptionResponse(ExceptionResponse {
        header: Header::default(),
        correlation_id: 1,
        exception: Some(Throwable {
            stack_trace: vec![sample_throwable().stack_trace[0].clone()],
            ..Throwable::new("javax.jms.InvalidClientIDException", "dup!")
        }),
    });
    assert_eq!(decode_one_with(&bytes, true), expected);
    assert_eq!(encoded_with(&expected, true), bytes);
    // Tandem's own format: class and message only.
    assert_eq!(
        encoded(&expected),
        wire(
            r#"00000037 1f 00000000 00 00000001 01 01 0022 "javax.jms.InvalidClientIDException" 01 0004 "dup!""#
        )
    );
}

#[test]
fn connection_info_debug_hides_the_password() {
    let cmd = &sample_commands()[2];
    let text = format!("{cmd:?}");
    assert!(text.contains("user"), "{text}");
    assert!(!text.contains("secret"), "{text}");
}

#[test]
fn command_accessors() {
    let ack = &sample_commands()[17];
    assert_eq!(
        (ack.name(), ack.command_id(), ack.response_required()),
        ("MessageAck", 10, true)
    );
    let wfi = Command::WireFormatInfo(WireFormatInfo::tandem(1));
    assert_eq!(
        (wfi.header(), wfi.command_id(), wfi.response_required()),
        (None, 0, false)
    );
    assert_eq!(Destination::queue("A").to_string(), "queue://A");
    assert_eq!(
        Destination::new(DestinationKind::TempTopic, "x").to_string(),
        "temp-topic://x"
    );
    assert_eq!(consumer_id(1, 2).to_string(), format!("{CONN}:1:2"));
    assert_eq!(producer_id(1, 2).to_string(), format!("{CONN}:1:2"));
    let text_view = MessageId {
        text_view: Some("abc:1".into()),
        ..MessageId::default()
    };
    assert_eq!(text_view.to_string(), "ID:abc:1");
}

// ------------------------------------------------------------------------------------
// WireFormatInfo negotiation
// ------------------------------------------------------------------------------------

#[test]
fn negotiation_with_the_real_client_is_loose_and_uncached() {
    let Command::WireFormatInfo(client) = decode_one(&wire_format_info_bytes("01", "01")) else {
        panic!("WireFormatInfo")
    };
    let tandem = WireFormatInfo::tandem(104_857_600);
    let n = tandem.negotiate(&client);
    assert_eq!(n, client.negotiate(&tandem), "symmetric");
    assert_eq!(
        n,
        Negotiated {
            version: OPENWIRE_VERSION,
            tight_encoding_enabled: false,
            cache_enabled: false,
            size_prefix_disabled: false,
            stack_trace_enabled: false,
            tcp_no_delay_enabled: true,
            max_frame_size: 104_857_600,
            max_inactivity_duration_ms: 30_000,
            max_inactivity_duration_initial_delay_ms: 10_000,
        }
    );
    assert!(n.is_supported());
    // Java's min: a value <= 0 is unset and loses.
    let old = WireFormatInfo {
        version: 0,
        options: PrimitiveMap::new(),
    };
    let n = tandem.negotiate(&old);
    assert_eq!((n.version, n.max_frame_size), (12, 104_857_600));
    assert_eq!(
        n.max_inactivity_duration_ms, 0,
        "a missing duration disables keep-alive"
    );
    // The tags Java's getters cast to.
    assert_eq!(
        tandem.options.get("MaxFrameSize"),
        Some(&PrimitiveValue::Long(104_857_600))
    );
    assert_eq!(
        tandem.options.get("CacheSize"),
        Some(&PrimitiveValue::Int(0))
    );
    assert_eq!(
        tandem.options.get("MaxInactivityDuration"),
        Some(&PrimitiveValue::Long(30_000))
    );
}

// ------------------------------------------------------------------------------------
// Refusals
// ------------------------------------------------------------------------------------

#[test]
fn refuses_bad_frames() {
    // Size prefix: zero, negative, over the limit (before the body arrives).
    assert_eq!(
        decode_err(&wire("00000000")),
        OpenWireError::InvalidFrameSize(0)
    );
    assert_eq!(
        decode_err(&wire("ffffffff")),
        OpenWireError::InvalidFrameSize(-1)
    );
    let mut small = Decoder::new(1024);
    let mut buf = BytesMut::from(&wire("00000401")[..]);
    assert_eq!(
        small.decode(&mut buf),
        Err(OpenWireError::FrameTooLarge {
            size: 1025,
            limit: 1024
        })
    );
    // Unknown types, including the never-used null command.
    for t in [0u8, 13, 15, 35, 99, 100, 255] {
        assert_eq!(decode_err(&[0, 0, 0, 1, t]), OpenWireError::UnknownType(t));
    }
    // One byte more than the layout, one byte less.
    let mut long = response_corr1_bytes();
    long[3] += 1;
    long.push(0);
    assert_eq!(
        decode_err(&long),
        OpenWireError::TrailingBytes {
            what: "Response",
            left: 1
        }
    );
    let mut short = response_corr1_bytes();
    short[3] -= 1;
    short.pop();
    assert_eq!(decode_err(&short), OpenWireError::Truncated { offset: 5 });
    // A queue where the SessionId belongs.
    let bad = wire(r#"0000000e 04 00000003 00 01 64 01 0003 "FOO""#);
    assert_eq!(
        decode_err(&bad),
        OpenWireError::UnexpectedType {
            expected: "SessionId",
            found: 100
        }
    );
    // A null connection id string inside a SessionId.
    let bad = wire("00000011 04 00000003 00 01 79 00 0000000000000001");
    assert_eq!(
        decode_err(&bad),
        OpenWireError::NullField("SessionId.connectionId")
    );
    // Bad magic.
    let mut wfi = wire_format_info_bytes("01", "01");
    wfi[5] = b'a';
    assert_eq!(decode_err(&wfi), OpenWireError::BadMagic);
    // An ack type Java does not define.
    let bad_ack = wire("00000011 16 00000000 00 00 00 00 07 00 00 00000000 00");
    assert_eq!(
        decode_err(&bad_ack),
        OpenWireError::InvalidEnum {
            what: "ack type",
            value: 7
        }
    );
    // A non-null additionalPredicate (a NetworkBridgeFilter, type 91).
    let mut ci = encoded(&Command::ConsumerInfo(ConsumerInfo::default()));
    let predicate_at = ci.len() - 5;
    ci[predicate_at] = 1;
    ci.insert(predicate_at + 1, 91);
    ci[3] += 1;
    assert!(matches!(
        decode_err(&ci),
        OpenWireError::UnexpectedType { found: 91, .. }
    ));
    // Negative array count.
    let bad = wire("0000000b 06 00000001 01 00 00 01 ffff");
    assert_eq!(
        decode_err(&bad),
        OpenWireError::NegativeLength {
            what: "array length",
            value: -1
        }
    );
}

#[test]
fn a_failed_decoder_stays_failed() {
    let mut d = Decoder::default();
    let mut buf = BytesMut::from(&wire("00000001 00")[..]);
    assert_eq!(d.decode(&mut buf), Err(OpenWireError::UnknownType(0)));
    buf.extend_from_slice(&keep_alive_bytes());
    assert_eq!(d.decode(&mut buf), Err(OpenWireError::UnknownType(0)));
}

#[test]
fn nesting_is_bounded() {
    // Messages whose dataStructure is a message whose dataStructure is a message...
    let nest = |levels: usize| {
        let mut cmd = Command::KeepAliveInfo(KeepAliveInfo::default());
        for _ in 0..levels {
            cmd = Command::Message(Box::new(Message {
                data_structure: Some(Box::new(DataStructure::Command(Box::new(cmd)))),
                ..Message::default()
            }));
        }
        cmd
    };
    let ok = nest(MAX_NESTING_DEPTH);
    assert_eq!(decode_one(&encoded(&ok)), ok);
    let deep = encoded(&nest(10 * MAX_NESTING_DEPTH));
    assert_eq!(
        decode_err(&deep),
        OpenWireError::TooDeep {
            limit: MAX_NESTING_DEPTH
        }
    );
    // Throwable causes count too.
    let mut t = Throwable::new("E", "0");
    for _ in 0..(2 * MAX_NESTING_DEPTH) {
        t = Throwable {
            cause: Some(Box::new(t)),
            ..Throwable::new("E", "n")
        };
    }
    let cmd = Command::ExceptionResponse(ExceptionResponse::new(1, t));
    let mut d = Decoder::default();
    d.set_stack_trace_enabled(true);
    let mut buf = BytesMut::from(&encoded_with(&cmd, true)[..]);
    assert!(matches!(
        d.decode(&mut buf),
        Err(OpenWireError::TooDeep { .. })
    ));
}

#[test]
fn unencodable_values_leave_the_buffer_alone() {
    let mut out = BytesMut::from(&b"keep"[..]);
    let long = Command::ControlCommand(ControlCommand {
        header: Header::default(),
        command: Some("x".repeat(65_536)),
    });
    assert_eq!(
        encode(&long, &mut out),
        Err(OpenWireError::StringTooLong { bytes: 65_536 })
    );
    assert_eq!(&out[..], b"keep");
    // 65535 bytes is the most writeUTF carries, NUL counting twice.
    let fits = Command::ControlCommand(ControlCommand {
        header: Header::default(),
        command: Some(format!("{}\0", "x".repeat(65_533))),
    });
    encode(&fits, &mut out).unwrap();
    let too_many = Command::DataArrayResponse(DataArrayResponse {
        data: Some(vec![DataStructure::BrokerId(BrokerId::new("b")); 32_768]),
        ..DataArrayResponse::default()
    });
    let before = out.len();
    assert_eq!(
        encode(&too_many, &mut out),
        Err(OpenWireError::ArrayTooLong { len: 32_768 })
    );
    assert_eq!(out.len(), before);
}

// ------------------------------------------------------------------------------------
// Modified UTF-8, text bodies, properties
// ------------------------------------------------------------------------------------

fn mutf8(s: &str) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode_mutf8(s, &mut out);
    out.to_vec()
}

/// Java's `writeUTF`, transcribed: each UTF-16 unit on its own.
fn java_write_utf(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for c in s.encode_utf16() {
        match c {
            0x0001..=0x007F => out.push(c as u8),
            0x0800.. => out.extend([
                0xE0 | (c >> 12) as u8,
                0x80 | ((c >> 6) & 0x3F) as u8,
                0x80 | (c & 0x3F) as u8,
            ]),
            _ => out.extend([0xC0 | ((c >> 6) & 0x1F) as u8, 0x80 | (c & 0x3F) as u8]),
        }
    }
    out
}

#[test]
fn modified_utf8_known_encodings() {
    let cases: [(&str, &[u8]); 8] = [
        ("", &[]),
        ("A\0B", &[0x41, 0xC0, 0x80, 0x42]),
        ("\0", &[0xC0, 0x80]),
        ("é", &[0xC3, 0xA9]),
        ("€", &[0xE2, 0x82, 0xAC]),
        ("\u{FFFF}", &[0xEF, 0xBF, 0xBF]),
        ("\u{10000}", &[0xED, 0xA0, 0x80, 0xED, 0xB0, 0x80]),
        ("😀", &[0xED, 0xA0, 0xBD, 0xED, 0xB8, 0x80]),
    ];
    for (s, bytes) in cases {
        assert_eq!(mutf8(s), bytes, "{s:?}");
        assert_eq!(mutf8_len(s), bytes.len(), "{s:?}");
        assert_eq!(decode_mutf8(bytes).as_deref(), Ok(s), "{s:?}");
    }
}

#[test]
fn modified_utf8_refuses_what_writeutf_never_writes() {
    let bad: [(&[u8], usize); 11] = [
        (&[0x00], 0),                         // raw NUL
        (&[0x41, 0xF0, 0x9F, 0x98, 0x80], 1), // 4-byte UTF-8
        (&[0xED, 0xA0, 0x80], 0),             // lone high surrogate
        (&[0xED, 0xB0, 0x80], 0),             // lone low surrogate
        (&[0xED, 0xA0, 0xBD, 0x41], 0),       // high surrogate then ASCII
        (&[0xC1, 0x81], 0),                   // overlong 'A'
        (&[0xE0, 0x80, 0x80], 0),             // overlong NUL, 3 bytes
        (&[0xC3], 0),                         // cut 2-byte sequence
        (&[0x41, 0xE2, 0x82], 1),             // cut 3-byte sequence
        (&[0x80], 0),                         // stray continuation byte
        (&[0xC3, 0x41], 0),                   // bad continuation byte
    ];
    for (bytes, offset) in bad {
        assert_eq!(
            decode_mutf8(bytes),
            Err(OpenWireError::InvalidModifiedUtf8 { offset }),
            "{bytes:02x?}"
        );
    }
    // In a frame: a SessionId whose connection id holds a 4-byte sequence.
    let frame = wire("00000017 04 00000000 00 01 79 01 0004 f09f9880 0000000000000001");
    assert_eq!(
        decode_err(&frame),
        OpenWireError::InvalidModifiedUtf8 { offset: 0 }
    );
}

#[test]
fn text_bodies() {
    let mut m = Message {
        kind: MessageKind::Text,
        ..Message::default()
    };
    m.set_text(Some("a\0😀")).unwrap();
    assert_eq!(
        m.content.as_deref(),
        Some(&wire("00000009 61 c080 eda0bdedb880")[..])
    );
    assert_eq!(m.text().unwrap().as_deref(), Some("a\0😀"));
    // Longer than writeUTF's 65535: the text body has an int length.
    let big = "é".repeat(40_000);
    m.set_text(Some(&big)).unwrap();
    assert_eq!(m.text().unwrap().as_deref(), Some(big.as_str()));
    m.set_text(None).unwrap();
    assert_eq!((m.content.as_ref(), m.text().unwrap()), (None, None));
    m.content = Some(Bytes::from(wire("ffffffff")));
    assert_eq!(m.text().unwrap(), None, "length -1 is Java's null text");
    m.compressed = true;
    assert_eq!(m.text(), Err(OpenWireError::CompressedBody));
}

#[test]
fn captured_property_types_round_trip() {
    // The types seen in captures: sp=STRING, ip=INTEGER, lp=LONG, bp=BOOLEAN, dp=DOUBLE.
    let bytes = wire(
        r#"00000005 0002"sp"09 0001"s" 0002"ip"05 00000001 0002"lp"06 0000000000000002
        0002"bp"01 01 0002"dp"07 3ff8000000000000"#,
    );
    let map = PrimitiveMap::decode(&Bytes::from(bytes.clone())).unwrap();
    assert_eq!(map.get("sp"), Some(&PrimitiveValue::String("s".into())));
    assert_eq!(map.get("ip"), Some(&PrimitiveValue::Int(1)));
    assert_eq!(map.get("lp"), Some(&PrimitiveValue::Long(2)));
    assert_eq!(map.get("bp"), Some(&PrimitiveValue::Boolean(true)));
    assert_eq!(map.get("dp"), Some(&PrimitiveValue::Double(1.5)));
    assert_eq!(map.to_bytes().unwrap(), bytes);
    // Java's marshalString picks BIG_STRING from 8191 UTF-16 units on.
    assert!(matches!(
        PrimitiveValue::string("x".repeat(8190)),
        PrimitiveValue::String(_)
    ));
    assert!(matches!(
        PrimitiveValue::string("x".repeat(8191)),
        PrimitiveValue::BigString(_)
    ));
    // Java reads a negative map count or big-string length as null.
    let nulls = wire(r#"00000002 0001"m"0b ffffffff 0001"b"0d ffffffff"#);
    let map = PrimitiveMap::decode(&Bytes::from(nulls)).unwrap();
    assert_eq!(map.get("m"), Some(&PrimitiveValue::Null));
    assert_eq!(map.get("b"), Some(&PrimitiveValue::Null));
    assert_eq!(
        PrimitiveMap::decode(&Bytes::from(wire("00000001 0001\"x\"0e"))),
        Err(OpenWireError::UnknownPrimitiveTag(14))
    );
}

// ------------------------------------------------------------------------------------
// Older versions (v1..v11): the layouts of the codec's version table
// ------------------------------------------------------------------------------------

/// What `cmd` becomes after a round trip at `version` (stack traces on): the fields the
/// version lacks take Java's defaults, throwable messages are cut at v1 and v10. `None`
/// if `cmd` holds a type the version does not have (encoding must then fail).
fn at_version(cmd: &Command, version: i32) -> Option<Command> {
    let mut cmd = cmd.clone();
    normalize_command(&mut cmd, version).then_some(cmd)
}

fn normalize_command(cmd: &mut Command, v: i32) -> bool {
    if v < Command::type_since(cmd.type_id()) {
        return false;
    }
    match cmd {
        Command::BrokerInfo(c) => return normalize_broker_info(c, v),
        Command::ConnectionInfo(c) => {
            if v < 2 {
                c.client_master = true;
            }
            if v < 6 {
                c.fault_tolerant = false;
                c.failover_reconnect = false;
            }
            if v < 8 {
                c.client_ip = None;
            }
        }
        Command::ConsumerInfo(c) => {
            if v < 4 {
                c.network_consumer_path = None;
            }
            if v < 10 {
                c.client_id = None;
            }
        }
        Command::ProducerInfo(c) => {
            if v < 2 {
                c.dispatch_async = false;
            }
            if v < 3 {
                c.window_size = 0;
            }
        }
        Command::RemoveInfo(c) if v < 5 => {
            c.last_delivered_sequence_id = RemoveInfo::UNKNOWN_DELIVERED;
        }
        Command::ConsumerControl(c) => {
            if v < 2 {
                (c.flush, c.start, c.stop) = (false, false, false);
            }
            if v < 6 {
                c.destination = None;
            }
        }
        Command::ConnectionControl(c) => {
            if v < 6 {
                c.connected_brokers = Some(String::new());
                c.reconnect_to = Some(String::new());
                c.rebalance_connection = false;
            }
            if v < 8 {
                c.token = None;
            }
        }
        Command::MessagePull(c) => {
            if v < 3 {
                c.correlation_id = None;
                c.message_id = None;
            }
            if let Some(id) = &mut c.message_id {
                normalize_message_id(id, v);
            }
        }
        Command::MessageDispatch(c) => {
            if let Some(m) = &mut c.message {
                return normalize_message(m, v);
            }
        }
        Command::MessageAck(c) => {
            for id in [&mut c.first_message_id, &mut c.last_message_id]
                .into_iter()
                .flatten()
            {
                normalize_message_id(id, v);
            }
            if v < 7 {
                c.poison_cause = None;
            }
            normalize_throwable(&mut c.poison_cause, v);
        }
        Command::Message(m) => return normalize_message(m, v),
        Command::ConnectionError(c) => normalize_throwable(&mut c.exception, v),
        Command::ExceptionResponse(c) => normalize_throwable(&mut c.exception, v),
        Command::DataResponse(c) => {
            if let Some(d) = &mut c.data {
                return normalize_data(d, v);
            }
        }
        Command::DataArrayResponse(c) => {
            return c.data.iter_mut().flatten().all(|d| normalize_data(d, v));
        }
        _ => {}
    }
    true
}

fn normalize_broker_info(c: &mut BrokerInfo, v: i32) -> bool {
    if v < 2 {
        (c.duplex_connection, c.network_connection, c.connection_id) = (false, false, 0);
    }
    if v < 3 {
        (c.broker_upload_url, c.network_properties) = (None, None);
    }
    c.peer_broker_infos
        .iter_mut()
        .flatten()
        .all(|p| normalize_broker_info(p, v))
}

fn normalize_message(m: &mut Message, v: i32) -> bool {
    if v < Command::type_since(m.kind.type_id()) {
        return false;
    }
    if v < 2 {
        m.droppable = false;
    }
    if v < 3 {
        (m.cluster, m.broker_in_time, m.broker_out_time) = (None, 0, 0);
    }
    if v < 10 {
        m.jmsx_group_first_for_consumer = false;
    }
    if let Some(id) = &mut m.message_id {
        normalize_message_id(id, v);
    }
    match &mut m.data_structure {
        Some(d) => normalize_data(d, v),
        None => true,
    }
}

fn normalize_message_id(id: &mut MessageId, v: i32) {
    if v < 10 {
        id.text_view = None;
    }
}

fn normalize_data(d: &mut DataStructure, v: i32) -> bool {
    match d {
        DataStructure::Command(c) => normalize_command(c, v),
        DataStructure::MessageId(id) => {
            normalize_message_id(id, v);
            true
        }
        _ => true,
    }
}

fn normalize_throwable(t: &mut Option<Throwable>, v: i32) {
    let mut t = t.as_mut();
    while let Some(this) = t {
        if matches!(v, 1 | 10) {
            if let Some(m) = &mut this.message {
                *m = super::primitives::cut_message(m).into_owned();
            }
        }
        t = this.cause.as_deref_mut();
    }
}

/// Every sample command at every version: what the version has survives, the rest
/// decodes to Java's defaults; re-encoding gives the same bytes; a type the version
/// lacks is refused both ways.
#[test]
fn every_command_type_round_trips_at_every_version() {
    for version in 1..=OPENWIRE_VERSION {
        for cmd in &sample_commands() {
            let Some(expected) = at_version(cmd, version) else {
                let mut out = BytesMut::from(&b"keep"[..]);
                let err = Encoder::new(version, true)
                    .encode(cmd, &mut out)
                    .expect_err("a type the version lacks");
                assert!(
                    matches!(err, OpenWireError::NotInVersion { version: v, .. } if v == version),
                    "v{version} {}: {err:?}",
                    cmd.name()
                );
                assert_eq!(&out[..], b"keep", "nothing written");
                continue;
            };
            let bytes = encoded_at(cmd, version, true);
            let back = decode_one_at(&bytes, version, true);
            assert_eq!(back, expected, "v{version} {}", cmd.name());
            assert_eq!(encoded_at(&back, version, true), bytes, "v{version}");
        }
    }
    // v11 writes exactly what v12 writes.
    for cmd in &sample_commands() {
        assert_eq!(encoded_at(cmd, 11, true), encoded_with(cmd, true));
    }
}

/// The types that came later are refused on decode at the versions before them, as
/// those versions' marshaller factories have no marshaller for them.
#[test]
fn types_a_version_lacks_are_refused() {
    let pull = Command::MessagePull(MessagePull {
        consumer_id: Some(consumer_id(1, 1)),
        ..MessagePull::default()
    });
    let ack = Command::ProducerAck(ProducerAck {
        producer_id: Some(producer_id(1, 1)),
        size: 10,
        ..ProducerAck::default()
    });
    let blob = Command::Message(Box::new(Message {
        kind: MessageKind::Blob(BlobFields::default()),
        ..Message::default()
    }));
    for (cmd, since) in [(&pull, 2), (&ack, 3), (&blob, 3)] {
        let bytes = encoded_at(cmd, since, false);
        for version in 1..since {
            let mut d = Decoder::default();
            d.set_version(version);
            assert_eq!(
                d.decode(&mut BytesMut::from(&bytes[..])),
                Err(OpenWireError::NotInVersion {
                    what: cmd.name(),
                    version
                })
            );
        }
    }
    // Inside a dispatch too.
    let dispatch = Command::MessageDispatch(MessageDispatch {
        message: Some(Box::new(Message {
            kind: MessageKind::Blob(BlobFields::default()),
            ..Message::default()
        })),
        ..MessageDispatch::default()
    });
    let mut out = BytesMut::new();
    assert!(Encoder::new(2, false).encode(&dispatch, &mut out).is_err());
    assert!(out.is_empty());
}

/// The BrokerInfo Tandem sends, at v1: the captured v12 vector without duplexConnection,
/// networkConnection, connectionId (v2), brokerUploadUrl and networkProperties (v3).
/// Source: `v1/BrokerInfoMarshaller.looseMarshal`.
#[test]
fn v1_broker_info_layout() {
    let v1 = wire(
        r#"00000049 02 00000000 00 | 01 7c 01 001d "ID:vm-39953-1795673528603-0:1"
        | 01 0015 "tcp://localhost:63616" | 00 | 01 0002 "B1" | 00 00 00"#,
    );
    let v12 = decode_one(&broker_info_bytes());
    assert_eq!(encoded_at(&v12, 1, false), v1);
    assert_eq!(
        decode_one_at(&v1, 1, false),
        v12,
        "the dropped fields were defaults"
    );
    // v2 has the first three back, not the two strings.
    let v2 = encoded_at(&v12, 2, false);
    assert_eq!(v2.len(), v1.len() + 10);
    assert_eq!(&v2[v2.len() - 10..], &wire("00 00 0000000000000000")[..]);
}

/// The captured persistent TextMessage at v1 and v9 (`v1/MessageMarshaller`,
/// `v9/MessageMarshaller`, `vN/MessageIdMarshaller`): no MessageId textView before v10;
/// v1 ends after recievedByDFBridge (no droppable, cluster, brokerInTime, brokerOutTime,
/// jmsXGroupFirstForConsumer); v9 lacks only jmsXGroupFirstForConsumer.
#[test]
fn v1_and_v9_text_message_layouts() {
    let common = r#"1c | 00000005 01
        | 01 7b 01 001d <connId> 0000000000000001 0000000000000001
        | 01 64 01 0003 "FOO"
        | 00 | 00
        | 01 6e 01 7b 01 001d <connId> 0000000000000001 0000000000000001 0000000000000001 0000000000000000
        | 00
        | 00 | 00000000 | 00
        | 01 | 0000000000000000 | 04 | 00
        | 000001a2167bb849 | 00
        | 01 00000009 0000000568656c6c6f
        | 00 | 00 | 00 | 00 | 00000000 | 00 | 0000000000000000 | 00 | 00"#;
    let v1 = wire(&format!("000000c2 {common}"));
    let v9 = wire(&format!(
        "000000d4 {common} | 00 | 00 | 0000000000000000 | 0000000000000000"
    ));
    let hello = Command::Message(Box::new(hello_message()));
    assert_eq!(encoded_at(&hello, 1, false), v1);
    assert_eq!(decode_one_at(&v1, 1, false), hello);
    assert_eq!(encoded_at(&hello, 9, false), v9);
    assert_eq!(decode_one_at(&v9, 9, false), hello);
    // 218 bytes at v10..v12, the captured vector.
    for version in 10..=12 {
        assert_eq!(encoded_at(&hello, version, false), text_message_bytes());
    }
}

/// ConnectionInfo at v1 ends after manageable (`v1/ConnectionInfoMarshaller`); a
/// missing clientMaster reads as Java's default, true. At v9 it is v12's layout.
#[test]
fn v1_connection_info_layout() {
    let info = connection_info(1, false, false);
    let head = r#"03 00000001 01 | 01 78 01 001d <connId> | 01 001d "ID:vm-37003-1795673536119-0:1"
        | 00 | 00 | 00 | 00 | 01"#;
    let v1 = framed(head);
    assert_eq!(v1.len(), 4 + 77);
    assert_eq!(encoded_at(&info, 1, false), v1);
    assert_eq!(decode_one_at(&v1, 1, false), info);
    // v2 adds clientMaster, v6 faultTolerant and failoverReconnect, v8 clientIp.
    let v9 = framed(&format!("{head} | 01 | 00 00 | 00"));
    assert_eq!(encoded_at(&info, 9, false), v9);
    assert_eq!(encoded_at(&info, 9, false), encoded(&info));
}

/// ConsumerInfo at v9: no clientId between selector and subscriptionName (it came in
/// v10), but networkConsumerPath (v4) at the end; at v1 neither.
/// Source: `v9/ConsumerInfoMarshaller`, `v1/ConsumerInfoMarshaller`.
#[test]
fn v1_and_v9_consumer_info_layouts() {
    let consumer = queue_consumer(4, 1000);
    let head = r#"05 00000004 01 | 01 7a 01 001d <connId> 0000000000000001 0000000000000001
        | 00 | 01 64 01 0003 "FOO" | 000003e8 | 00000000 | 01 | 00"#;
    // subscriptionName · noLocal exclusive retroactive · priority · brokerPath ·
    // additionalPredicate · networkSubscription optimizedAcknowledge noRangeAcks
    let tail = "| 00 | 00 00 00 | 00 | 00 | 00 | 00 00 00";
    let v9 = framed(&format!("{head} {tail} | 00"));
    let v1 = framed(&format!("{head} {tail}"));
    let Command::ConsumerInfo(mut without_client_id) = consumer.clone() else {
        unreachable!()
    };
    without_client_id.client_id = None;
    let without_client_id = Command::ConsumerInfo(without_client_id);
    assert_eq!(encoded_at(&consumer, 9, false), v9);
    assert_eq!(decode_one_at(&v9, 9, false), without_client_id);
    assert_eq!(encoded_at(&consumer, 1, false), v1);
    assert_eq!(decode_one_at(&v1, 1, false), without_client_id);
    // v10 carries the client id: 2 + 1 + 29 bytes more than v9.
    assert_eq!(encoded_at(&consumer, 10, false).len(), v9.len() + 32);
}

/// Small layouts at v1 (`v1/RemoveInfoMarshaller`, `v1/MessageAckMarshaller`,
/// `v1/ConsumerControlMarshaller`, `v1/ProducerInfoMarshaller`) and their v4/v6/v9
/// neighbours.
#[test]
fn v1_small_command_layouts() {
    // RemoveInfo: no lastDeliveredSequenceId before v5; it reads as UNKNOWN (-2).
    let rm = remove(7, true, RemoveTarget::Connection(conn_id()), -1);
    let v1 = framed("0c 00000007 01 | 01 78 01 001d <connId>");
    assert_eq!(encoded_at(&rm, 1, false), v1);
    assert_eq!(encoded_at(&rm, 4, false), v1);
    assert_eq!(
        decode_one_at(&v1, 4, false),
        remove(7, true, RemoveTarget::Connection(conn_id()), -2)
    );
    assert_eq!(
        encoded_at(&rm, 5, false),
        framed("0c 00000007 01 | 01 78 01 001d <connId> | ffffffffffffffff")
    );

    // MessageAck: no poisonCause before v7.
    let ack = Command::MessageAck(MessageAck {
        header: h(5, false),
        destination: Some(Destination::queue("FOO")),
        transaction_id: None,
        consumer_id: Some(consumer_id(1, 1)),
        ack_type: AckType::Poison,
        first_message_id: None,
        last_message_id: None,
        message_count: 1,
        poison_cause: Some(Throwable::new("java.lang.Throwable", "bad")),
    });
    let v1 = framed(
        r#"16 00000005 00 | 01 64 01 0003 "FOO" | 00
        | 01 7a 01 001d <connId> 0000000000000001 0000000000000001 | 01 | 00 | 00 | 00000001"#,
    );
    assert_eq!(encoded_at(&ack, 1, false), v1);
    assert_eq!(encoded_at(&ack, 6, false), v1);
    let Command::MessageAck(mut no_cause) = ack.clone() else {
        unreachable!()
    };
    no_cause.poison_cause = None;
    assert_eq!(decode_one_at(&v1, 6, false), Command::MessageAck(no_cause));
    let v7 = encoded_at(&ack, 7, false);
    let cause = wire(r#"01 01 0013 "java.lang.Throwable" 01 0003 "bad""#);
    assert_eq!(v7.len(), v1.len() + cause.len());
    assert_eq!(&v7[v1.len()..], &cause[..]);

    // ConsumerControl: v1 is close, consumerId, prefetch; v2 adds flush/start/stop at
    // the end; v6 the destination at the front.
    let cc = Command::ConsumerControl(ConsumerControl {
        header: h(0, false),
        destination: Some(Destination::queue("FOO")),
        close: false,
        consumer_id: Some(consumer_id(1, 1)),
        prefetch: 10,
        flush: false,
        start: true,
        stop: false,
    });
    let id = "01 7a 01 001d <connId> 0000000000000001 0000000000000001";
    assert_eq!(
        encoded_at(&cc, 1, false),
        framed(&format!("11 00000000 00 | 00 | {id} | 0000000a"))
    );
    assert_eq!(
        encoded_at(&cc, 5, false),
        framed(&format!("11 00000000 00 | 00 | {id} | 0000000a | 00 01 00"))
    );
    assert_eq!(
        encoded_at(&cc, 6, false),
        framed(&format!(
            r#"11 00000000 00 | 01 64 01 0003 "FOO" | 00 | {id} | 0000000a | 00 01 00"#
        ))
    );

    // ProducerInfo: v1 ends after brokerPath; v2 adds dispatchAsync, v3 windowSize.
    let info = Command::ProducerInfo(ProducerInfo {
        header: h(4, true),
        producer_id: Some(producer_id(2, 1)),
        window_size: 1024,
        ..ProducerInfo::default()
    });
    let v1 = "06 00000004 01 | 01 7b 01 001d <connId> 0000000000000001 0000000000000002 | 00 | 00";
    assert_eq!(encoded_at(&info, 1, false), framed(v1));
    assert_eq!(encoded_at(&info, 2, false), framed(&format!("{v1} | 00")));
    assert_eq!(
        encoded_at(&info, 3, false),
        framed(&format!("{v1} | 00 | 00000400"))
    );
}

/// v1 and v10 cut a throwable message longer than 1024 UTF-16 units to 1021 and "..."
/// (`cutMessageIfNeeded`); the other versions write it whole. Decoding never cuts.
#[test]
fn throwable_messages_are_cut_at_v1_and_v10() {
    let long = "x".repeat(1025);
    let cut = format!("{}...", "x".repeat(1021));
    let reply = |message: &str| {
        Command::ExceptionResponse(ExceptionResponse::new(
            3,
            Throwable::new("javax.jms.JMSException", message),
        ))
    };
    for version in 1..=OPENWIRE_VERSION {
        let bytes = encoded_at(&reply(&long), version, false);
        let expected = if matches!(version, 1 | 10) {
            &cut
        } else {
            &long
        };
        assert_eq!(
            decode_one_at(&bytes, version, false),
            reply(expected),
            "v{version}"
        );
        // Exactly 1024 is kept whole everywhere.
        let edge = "y".repeat(1024);
        let bytes = encoded_at(&reply(&edge), version, false);
        assert_eq!(decode_one_at(&bytes, version, false), reply(&edge));
    }
    // Units, not bytes or chars: 1020 'z' and a surrogate pair (1022 units, kept), and
    // a pair that would straddle the cut is left out whole.
    let pair = format!("{}😀", "z".repeat(1020));
    assert_eq!(super::primitives::cut_message(&pair), pair);
    let straddle = format!("{}😀{}", "z".repeat(1020), "z".repeat(10));
    assert_eq!(
        super::primitives::cut_message(&straddle),
        format!("{}...", "z".repeat(1020))
    );
}

// ------------------------------------------------------------------------------------
// Property tests
// ------------------------------------------------------------------------------------

fn arb_string() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9:/._-]{0,12}",
        ".{0,8}",
        Just("nul\0inside".to_string()),
        Just("emoji 😀 and 𝄞".to_string()),
    ]
}

fn opt_string() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(arb_string())
}

fn arb_bytes() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..24).prop_map(Bytes::from)
}

fn arb_header() -> impl Strategy<Value = Header> {
    (any::<i32>(), any::<bool>()).prop_map(|(c, r)| Header::new(c, r))
}

fn arb_connection_id() -> impl Strategy<Value = ConnectionId> {
    arb_string().prop_map(ConnectionId::new)
}

fn arb_session_id() -> impl Strategy<Value = SessionId> {
    (arb_string(), any::<i64>()).prop_map(|(connection_id, value)| SessionId {
        connection_id,
        value,
    })
}

fn arb_consumer_id() -> impl Strategy<Value = ConsumerId> {
    (arb_string(), any::<i64>(), any::<i64>()).prop_map(|(connection_id, session_id, value)| {
        ConsumerId {
            connection_id,
            session_id,
            value,
        }
    })
}

fn arb_producer_id() -> impl Strategy<Value = ProducerId> {
    (arb_string(), any::<i64>(), any::<i64>()).prop_map(|(connection_id, session_id, value)| {
        ProducerId {
            connection_id,
            session_id,
            value,
        }
    })
}

fn arb_broker_path() -> impl Strategy<Value = Option<Vec<BrokerId>>> {
    proptest::option::of(proptest::collection::vec(
        arb_string().prop_map(BrokerId::new),
        0..3,
    ))
}

fn arb_message_id() -> impl Strategy<Value = MessageId> {
    (
        opt_string(),
        proptest::option::of(arb_producer_id()),
        any::<i64>(),
        any::<i64>(),
    )
        .prop_map(|(text_view, producer_id, seq, broker_seq)| MessageId {
            text_view,
            producer_id,
            producer_sequence_id: seq,
            broker_sequence_id: broker_seq,
        })
}

fn arb_destination() -> impl Strategy<Value = Destination> {
    (
        prop_oneof![
            Just(DestinationKind::Queue),
            Just(DestinationKind::Topic),
            Just(DestinationKind::TempQueue),
            Just(DestinationKind::TempTopic),
        ],
        arb_string(),
    )
        .prop_map(|(kind, name)| Destination::new(kind, name))
}

fn arb_transaction_id() -> impl Strategy<Value = TransactionId> {
    prop_oneof![
        (any::<i64>(), proptest::option::of(arb_connection_id())).prop_map(
            |(value, connection_id)| TransactionId::Local(LocalTransactionId {
                value,
                connection_id
            })
        ),
        (
            any::<i32>(),
            proptest::option::of(arb_bytes()),
            proptest::option::of(arb_bytes())
        )
            .prop_map(|(format_id, g, b)| TransactionId::Xa(XaTransactionId {
                format_id,
                global_transaction_id: g,
                branch_qualifier: b,
            })),
    ]
}

fn arb_throwable() -> impl Strategy<Value = Throwable> {
    let element = (opt_string(), opt_string(), opt_string(), any::<i32>()).prop_map(
        |(class_name, method_name, file_name, line_number)| StackTraceElement {
            class_name,
            method_name,
            file_name,
            line_number,
        },
    );
    let leaf = (
        opt_string(),
        opt_string(),
        proptest::collection::vec(element, 0..3),
    )
        .prop_map(|(class_name, message, stack_trace)| Throwable {
            class_name,
            message,
            stack_trace,
            cause: None,
        });
    leaf.prop_recursive(3, 6, 1, |inner| {
        (inner.clone(), inner).prop_map(|(mut t, cause)| {
            t.cause = Some(Box::new(cause));
            t
        })
    })
}

/// Values of a primitive map; floats are finite so that `PartialEq` holds.
fn arb_primitive_value() -> impl Strategy<Value = PrimitiveValue> {
    let leaf = prop_oneof![
        Just(PrimitiveValue::Null),
        any::<bool>().prop_map(PrimitiveValue::Boolean),
        any::<i8>().prop_map(PrimitiveValue::Byte),
        any::<u16>().prop_map(PrimitiveValue::Char),
        any::<i16>().prop_map(PrimitiveValue::Short),
        any::<i32>().prop_map(PrimitiveValue::Int),
        any::<i64>().prop_map(PrimitiveValue::Long),
        (-1e30f32..1e30).prop_map(PrimitiveValue::Float),
        (-1e300f64..1e300).prop_map(PrimitiveValue::Double),
        arb_bytes().prop_map(PrimitiveValue::Bytes),
        arb_string().prop_map(PrimitiveValue::String),
        arb_string().prop_map(PrimitiveValue::BigString),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(PrimitiveValue::List),
            proptest::collection::vec((arb_string(), inner), 0..4)
                .prop_map(|entries| PrimitiveValue::Map(entries.into_iter().collect())),
        ]
    })
}

fn arb_primitive_map() -> impl Strategy<Value = PrimitiveMap> {
    proptest::collection::vec((arb_string(), arb_primitive_value()), 0..6)
        .prop_map(|entries| entries.into_iter().collect())
}

fn arb_message_kind() -> impl Strategy<Value = MessageKind> {
    prop_oneof![
        Just(MessageKind::Plain),
        Just(MessageKind::Bytes),
        Just(MessageKind::Map),
        Just(MessageKind::Object),
        Just(MessageKind::Stream),
        Just(MessageKind::Text),
        (opt_string(), opt_string(), any::<bool>()).prop_map(|(url, mime, deleted)| {
            MessageKind::Blob(BlobFields {
                remote_blob_url: url,
                mime_type: mime,
                deleted_by_broker: deleted,
            })
        }),
    ]
}

/// "Any object" values without messages inside (messages nest one level in commands).
fn arb_data_structure() -> impl Strategy<Value = DataStructure> {
    prop_oneof![
        arb_destination().prop_map(DataStructure::Destination),
        arb_message_id().prop_map(DataStructure::MessageId),
        arb_transaction_id().prop_map(DataStructure::TransactionId),
        arb_connection_id().prop_map(DataStructure::ConnectionId),
        arb_session_id().prop_map(DataStructure::SessionId),
        arb_consumer_id().prop_map(DataStructure::ConsumerId),
        arb_producer_id().prop_map(DataStructure::ProducerId),
        arb_string().prop_map(|s| DataStructure::BrokerId(BrokerId::new(s))),
        (arb_header(), any::<i32>()).prop_map(|(header, correlation_id)| {
            DataStructure::Command(Box::new(Command::Response(Response {
                header,
                correlation_id,
            })))
        }),
    ]
}

fn arb_message() -> impl Strategy<Value = Message> {
    let ids = (
        arb_message_kind(),
        arb_header(),
        proptest::option::of(arb_producer_id()),
        proptest::option::of(arb_destination()),
        proptest::option::of(arb_transaction_id()),
        proptest::option::of(arb_destination()),
        proptest::option::of(arb_message_id()),
        proptest::option::of(arb_transaction_id()),
    );
    let jms = (
        opt_string(),
        any::<i32>(),
        opt_string(),
        any::<bool>(),
        any::<i64>(),
        any::<i8>(),
        proptest::option::of(arb_destination()),
        any::<i64>(),
        opt_string(),
    );
    let body = (
        proptest::option::of(arb_bytes()),
        proptest::option::of(arb_bytes()),
        proptest::option::of(arb_data_structure()),
        proptest::option::of(arb_consumer_id()),
        any::<bool>(),
        any::<i32>(),
        arb_broker_path(),
    );
    let tail = (
        any::<i64>(),
        opt_string(),
        any::<bool>(),
        any::<bool>(),
        arb_broker_path(),
        any::<i64>(),
        any::<i64>(),
        any::<bool>(),
    );
    (ids, jms, body, tail).prop_map(|(ids, jms, body, tail)| Message {
        kind: ids.0,
        header: ids.1,
        producer_id: ids.2,
        destination: ids.3,
        transaction_id: ids.4,
        original_destination: ids.5,
        message_id: ids.6,
        original_transaction_id: ids.7,
        group_id: jms.0,
        group_sequence: jms.1,
        correlation_id: jms.2,
        persistent: jms.3,
        expiration: jms.4,
        priority: jms.5,
        reply_to: jms.6,
        timestamp: jms.7,
        jms_type: jms.8,
        content: body.0,
        marshalled_properties: body.1,
        data_structure: body.2.map(Box::new),
        target_consumer_id: body.3,
        compressed: body.4,
        redelivery_counter: body.5,
        broker_path: body.6,
        arrival: tail.0,
        user_id: tail.1,
        received_by_df_bridge: tail.2,
        droppable: tail.3,
        cluster: tail.4,
        broker_in_time: tail.5,
        broker_out_time: tail.6,
        jmsx_group_first_for_consumer: tail.7,
    })
}

fn o<S: Strategy>(s: S) -> impl Strategy<Value = Option<S::Value>>
where
    S::Value: std::fmt::Debug,
{
    proptest::option::of(s)
}

fn arb_command() -> impl Strategy<Value = Command> {
    prop_oneof![
        (any::<i32>(), arb_primitive_map()).prop_map(|(version, options)| {
            Command::WireFormatInfo(WireFormatInfo { version, options })
        }),
        (
            arb_header(),
            o(arb_string().prop_map(BrokerId::new)),
            opt_string(),
            opt_string(),
            proptest::collection::vec(any::<bool>(), 5),
            any::<i64>(),
            opt_string(),
            opt_string()
        )
            .prop_map(
                |(header, broker_id, url, name, b, connection_id, upload, props)| {
                    Command::BrokerInfo(BrokerInfo {
                        header,
                        broker_id,
                        broker_url: url,
                        peer_broker_infos: None,
                        broker_name: name,
                        slave_broker: b[0],
                        master_broker: b[1],
                        fault_tolerant_configuration: b[2],
                        duplex_connection: b[3],
                        network_connection: b[4],
                        connection_id,
                        broker_upload_url: upload,
                        network_properties: props,
                    })
                }
            ),
        (
            arb_header(),
            o(arb_connection_id()),
            opt_string(),
            opt_string(),
            opt_string(),
            arb_broker_path(),
            proptest::collection::vec(any::<bool>(), 5),
            opt_string()
        )
            .prop_map(
                |(
                    header,
                    connection_id,
                    client_id,
                    password,
                    user_name,
                    broker_path,
                    b,
                    client_ip,
                )| {
                    Command::ConnectionInfo(ConnectionInfo {
                        header,
                        connection_id,
                        client_id,
                        password,
                        user_name,
                        broker_path,
                        broker_master_connector: b[0],
                        manageable: b[1],
                        client_master: b[2],
                        fault_tolerant: b[3],
                        failover_reconnect: b[4],
                        client_ip,
                    })
                }
            ),
        (arb_header(), o(arb_session_id())).prop_map(|(header, session_id)| {
            Command::SessionInfo(SessionInfo { header, session_id })
        }),
        (
            (
                arb_header(),
                o(arb_consumer_id()),
                o(arb_destination()),
                any::<i32>(),
                any::<i32>(),
                opt_string(),
                opt_string(),
                opt_string(),
                any::<i8>(),
            ),
            (
                proptest::collection::vec(any::<bool>(), 8),
                arb_broker_path(),
                o(proptest::collection::vec(arb_consumer_id(), 0..3)),
            )
        )
            .prop_map(|(a, (b, broker_path, network_consumer_path))| {
                Command::ConsumerInfo(ConsumerInfo {
                    header: a.0,
                    consumer_id: a.1,
                    browser: b[0],
                    destination: a.2,
                    prefetch_size: a.3,
                    maximum_pending_message_limit: a.4,
                    dispatch_async: b[1],
                    selector: a.5,
                    client_id: a.6,
                    subscription_name: a.7,
                    no_local: b[2],
                    exclusive: b[3],
                    retroactive: b[4],
                    priority: a.8,
                    broker_path,
                    network_subscription: b[5],
                    optimized_acknowledge: b[6],
                    no_range_acks: b[7],
                    network_consumer_path,
                })
            }),
        (
            arb_header(),
            o(arb_producer_id()),
            o(arb_destination()),
            arb_broker_path(),
            any::<bool>(),
            any::<i32>()
        )
            .prop_map(
                |(header, producer_id, destination, broker_path, dispatch_async, window_size)| {
                    Command::ProducerInfo(ProducerInfo {
                        header,
                        producer_id,
                        destination,
                        broker_path,
                        dispatch_async,
                        window_size,
                    })
                }
            ),
        (
            arb_header(),
            o(arb_connection_id()),
            o(arb_transaction_id()),
            0u8..=7
        )
            .prop_map(|(header, connection_id, transaction_id, t)| {
                Command::TransactionInfo(TransactionInfo {
                    header,
                    connection_id,
                    transaction_id,
                    transaction_type: TransactionType::from_byte(t).unwrap(),
                })
            }),
        (
            arb_header(),
            o(arb_connection_id()),
            o(arb_destination()),
            0u8..=1,
            any::<i64>(),
            arb_broker_path()
        )
            .prop_map(
                |(header, connection_id, destination, op, timeout, broker_path)| {
                    Command::DestinationInfo(DestinationInfo {
                        header,
                        connection_id,
                        destination,
                        operation: DestinationOperation::from_byte(op).unwrap(),
                        timeout,
                        broker_path,
                    })
                }
            ),
        (
            arb_header(),
            o(arb_connection_id()),
            opt_string(),
            opt_string()
        )
            .prop_map(|(header, connection_id, subscription_name, client_id)| {
                Command::RemoveSubscriptionInfo(RemoveSubscriptionInfo {
                    header,
                    connection_id,
                    subscription_name,
                    client_id,
                })
            }),
        arb_header().prop_map(|header| Command::KeepAliveInfo(KeepAliveInfo { header })),
        arb_header().prop_map(|header| Command::ShutdownInfo(ShutdownInfo { header })),
        (
            arb_header(),
            o(prop_oneof![
                arb_connection_id().prop_map(RemoveTarget::Connection),
                arb_session_id().prop_map(RemoveTarget::Session),
                arb_consumer_id().prop_map(RemoveTarget::Consumer),
                arb_producer_id().prop_map(RemoveTarget::Producer),
            ]),
            any::<i64>()
        )
            .prop_map(|(header, object_id, last)| {
                Command::RemoveInfo(RemoveInfo {
                    header,
                    object_id,
                    last_delivered_sequence_id: last,
                })
            }),
        (arb_header(), opt_string()).prop_map(|(header, command)| {
            Command::ControlCommand(ControlCommand { header, command })
        }),
        (arb_header(), o(arb_throwable()), o(arb_connection_id())).prop_map(
            |(header, exception, connection_id)| {
                Command::ConnectionError(ConnectionError {
                    header,
                    exception,
                    connection_id,
                })
            }
        ),
        (
            arb_header(),
            o(arb_destination()),
            o(arb_consumer_id()),
            any::<i32>(),
            proptest::collection::vec(any::<bool>(), 4)
        )
            .prop_map(|(header, destination, consumer_id, prefetch, b)| {
                Command::ConsumerControl(ConsumerControl {
                    header,
                    destination,
                    close: b[0],
                    consumer_id,
                    prefetch,
                    flush: b[1],
                    start: b[2],
                    stop: b[3],
                })
            }),
        (
            arb_header(),
            proptest::collection::vec(any::<bool>(), 6),
            opt_string(),
            opt_string(),
            o(arb_bytes())
        )
            .prop_map(|(header, b, connected_brokers, reconnect_to, token)| {
                Command::ConnectionControl(ConnectionControl {
                    header,
                    close: b[0],
                    exit: b[1],
                    fault_tolerant: b[2],
                    resume: b[3],
                    suspend: b[4],
                    connected_brokers,
                    reconnect_to,
                    rebalance_connection: b[5],
                    token,
                })
            }),
        (arb_header(), o(arb_producer_id()), any::<i32>()).prop_map(
            |(header, producer_id, size)| {
                Command::ProducerAck(ProducerAck {
                    header,
                    producer_id,
                    size,
                })
            }
        ),
        (
            arb_header(),
            o(arb_consumer_id()),
            o(arb_destination()),
            any::<i64>(),
            opt_string(),
            o(arb_message_id())
        )
            .prop_map(
                |(header, consumer_id, destination, timeout, correlation_id, message_id)| {
                    Command::MessagePull(MessagePull {
                        header,
                        consumer_id,
                        destination,
                        timeout,
                        correlation_id,
                        message_id,
                    })
                }
            ),
        (
            arb_header(),
            o(arb_consumer_id()),
            o(arb_destination()),
            o(arb_message()),
            any::<i32>()
        )
            .prop_map(
                |(header, consumer_id, destination, message, redelivery_counter)| {
                    Command::MessageDispatch(MessageDispatch {
                        header,
                        consumer_id,
                        destination,
                        message: message.map(Box::new),
                        redelivery_counter,
                    })
                }
            ),
        (
            arb_header(),
            o(arb_destination()),
            o(arb_transaction_id()),
            o(arb_consumer_id()),
            0u8..=6,
            o(arb_message_id()),
            o(arb_message_id()),
            any::<i32>(),
            o(arb_throwable())
        )
            .prop_map(
                |(
                    header,
                    destination,
                    transaction_id,
                    consumer_id,
                    t,
                    first,
                    last,
                    count,
                    cause,
                )| {
                    Command::MessageAck(MessageAck {
                        header,
                        destination,
                        transaction_id,
                        consumer_id,
                        ack_type: AckType::from_byte(t).unwrap(),
                        first_message_id: first,
                        last_message_id: last,
                        message_count: count,
                        poison_cause: cause,
                    })
                }
            ),
        arb_message().prop_map(|m| Command::Message(Box::new(m))),
        (arb_header(), any::<i32>()).prop_map(|(header, correlation_id)| {
            Command::Response(Response {
                header,
                correlation_id,
            })
        }),
        (arb_header(), any::<i32>(), o(arb_throwable())).prop_map(
            |(header, correlation_id, exception)| {
                Command::ExceptionResponse(ExceptionResponse {
                    header,
                    correlation_id,
                    exception,
                })
            }
        ),
        (arb_header(), any::<i32>(), o(arb_data_structure())).prop_map(
            |(header, correlation_id, data)| {
                Command::DataResponse(DataResponse {
                    header,
                    correlation_id,
                    data: data.map(Box::new),
                })
            }
        ),
        (
            arb_header(),
            any::<i32>(),
            o(proptest::collection::vec(arb_data_structure(), 0..4))
        )
            .prop_map(|(header, correlation_id, data)| {
                Command::DataArrayResponse(DataArrayResponse {
                    header,
                    correlation_id,
                    data,
                })
            }),
        (arb_header(), any::<i32>(), any::<i32>()).prop_map(|(header, correlation_id, result)| {
            Command::IntegerResponse(IntegerResponse {
                header,
                correlation_id,
                result,
            })
        }),
    ]
}

/// Decodes everything in `bytes` (the decoder must return, never panic); every command
/// that decodes must re-encode, and decoding that gives a command that encodes the same
/// (bytes are compared, not values: a float may be NaN).
fn decode_and_recheck(
    bytes: &[u8],
    max_frame_bytes: usize,
    version: i32,
    stack_trace_enabled: bool,
) {
    let mut d = Decoder::new(max_frame_bytes);
    d.set_version(version);
    d.set_stack_trace_enabled(stack_trace_enabled);
    let mut buf = BytesMut::from(bytes);
    while let Ok(Some(cmd)) = d.decode(&mut buf) {
        let again = encoded_at(&cmd, version, stack_trace_enabled);
        let back = decode_one_at(&again, version, stack_trace_enabled);
        assert_eq!(encoded_at(&back, version, stack_trace_enabled), again);
    }
}

proptest! {
    #[test]
    fn prop_modified_utf8_round_trips(s in prop_oneof![any::<String>(), arb_string()]) {
        let bytes = mutf8(&s);
        prop_assert_eq!(&bytes, &java_write_utf(&s), "same bytes as Java's writeUTF");
        prop_assert_eq!(bytes.len(), mutf8_len(&s));
        prop_assert!(!bytes.iter().any(|&b| b == 0 || b >= 0xF0));
        prop_assert_eq!(decode_mutf8(&bytes), Ok(s.clone()));
        if !s.contains('\0') && s.chars().all(|c| (c as u32) <= 0xFFFF) {
            prop_assert_eq!(&bytes[..], s.as_bytes(), "identical to UTF-8 otherwise");
        }
    }

    #[test]
    fn prop_modified_utf8_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..32)) {
        if let Ok(s) = decode_mutf8(&bytes) {
            prop_assert_eq!(mutf8(&s), bytes, "only canonical input is accepted");
        }
    }

    #[test]
    fn prop_primitive_map_round_trips(map in arb_primitive_map()) {
        let bytes = map.to_bytes().unwrap();
        let back = PrimitiveMap::decode(&bytes).unwrap();
        prop_assert_eq!(&back, &map);
        prop_assert_eq!(back.to_bytes().unwrap(), bytes);
    }

    #[test]
    fn prop_command_round_trips(cmd in arb_command(), stack_traces in any::<bool>()) {
        let bytes = encoded_with(&cmd, stack_traces);
        let back = decode_one_with(&bytes, stack_traces);
        let expected = if stack_traces { cmd.clone() } else { without_traces(&cmd) };
        prop_assert_eq!(&back, &expected);
        prop_assert_eq!(encoded_with(&back, stack_traces), bytes);
    }

    /// Every version: the fields it has survive, the others decode to Java's defaults,
    /// the bytes are stable; a type it lacks is refused and nothing is written.
    #[test]
    fn prop_command_round_trips_at_every_version(
        cmd in arb_command(),
        version in 1..=OPENWIRE_VERSION,
        stack_traces in any::<bool>(),
    ) {
        let mut out = BytesMut::new();
        let result = Encoder::new(version, stack_traces).encode(&cmd, &mut out);
        match at_version(&cmd, version) {
            None => {
                prop_assert!(
                    matches!(result, Err(OpenWireError::NotInVersion { .. })),
                    "{:?}", result
                );
                prop_assert!(out.is_empty());
            }
            Some(expected) => {
                prop_assert_eq!(result, Ok(()));
                let back = decode_one_at(&out, version, stack_traces);
                let expected = if stack_traces { expected } else { without_traces(&expected) };
                prop_assert_eq!(&back, &expected);
                prop_assert_eq!(encoded_at(&back, version, stack_traces), out.to_vec());
            }
        }
    }

    #[test]
    fn prop_random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        decode_and_recheck(&bytes, 4096, OPENWIRE_VERSION, false);
        decode_and_recheck(&bytes, 4096, OPENWIRE_VERSION, true);
    }

    /// Random bodies under a well-formed size prefix and a known type: exercises every
    /// body parser rather than the framing.
    #[test]
    fn prop_random_bodies_never_panic(
        type_id in prop_oneof![1u8..=34, Just(0u8), 35u8..=255],
        body in proptest::collection::vec(any::<u8>(), 0..256),
        version in 1..=OPENWIRE_VERSION,
        stack_traces in any::<bool>(),
    ) {
        let mut frame = ((body.len() + 1) as i32).to_be_bytes().to_vec();
        frame.push(type_id);
        frame.extend_from_slice(&body);
        decode_and_recheck(&frame, 4096, version, stack_traces);
    }

    /// Valid frames with one byte changed or cut short.
    #[test]
    fn prop_mutated_frames_never_panic(
        cmd in arb_command(),
        at in any::<prop::sample::Index>(),
        value in any::<u8>(),
        cut in any::<bool>(),
    ) {
        let mut bytes = encoded_with(&cmd, true);
        let i = at.index(bytes.len());
        if cut {
            bytes.truncate(i);
        } else {
            bytes[i] = value;
        }
        decode_and_recheck(&bytes, 1 << 20, OPENWIRE_VERSION, true);
    }

    #[test]
    fn prop_oversized_frames_are_refused_from_the_prefix(
        max in 1usize..100_000,
        extra in 1u32..(i32::MAX as u32 - 100_000),
    ) {
        let size = max as u32 + extra;
        let mut d = Decoder::new(max);
        let mut buf = BytesMut::from(&size.to_be_bytes()[..]);
        prop_assert_eq!(
            d.decode(&mut buf),
            Err(OpenWireError::FrameTooLarge { size: u64::from(size), limit: max })
        );
    }

    #[test]
    fn prop_split_input_gives_the_same_commands(
        cmds in proptest::collection::vec(arb_command(), 1..6),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let stream: Vec<u8> = cmds.iter().flat_map(|c| encoded_with(c, true)).collect();
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(stream.len())).collect();
        cuts.sort_unstable();
        cuts.push(stream.len());
        let mut d = Decoder::default();
        d.set_stack_trace_enabled(true);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        let mut fed = 0;
        for cut in cuts {
            buf.extend_from_slice(&stream[fed..cut]);
            fed = cut;
            while let Some(cmd) = d.decode(&mut buf).unwrap() {
                got.push(cmd);
            }
        }
        prop_assert_eq!(got, cmds);
    }
}
