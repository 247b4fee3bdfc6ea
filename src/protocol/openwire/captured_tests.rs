//! Captured byte vectors for every OpenWire command type, both directions: the frames in
//! `vectors/activemq-5.17.2.txt`, recorded by `tools/capture-openwire` between the real
//! ActiveMQ 5.17.2 JMS client (`tests/java/ProbeWire.java`) and a real ActiveMQ 5.17.2
//! broker whose connector forces loose encoding without the marshal cache, as Tandem does.
//!
//! Every frame must decode (with the StackTraceEnabled both captured WireFormatInfos
//! negotiate) to a command of the type its line names, using all its bytes, and re-encode
//! to exactly the captured bytes. The fixture must cover every command type a JMS client
//! or the broker sends, in the direction(s) it travels.

use std::collections::BTreeSet;

use bytes::BytesMut;

use super::command::type_name;
use super::*;

const FIXTURE: &str = include_str!("vectors/activemq-5.17.2.txt");

/// One fixture line: `<c>b|b>c> <TypeName> <shape> <hex frame>`.
struct Vector {
    line: usize,
    direction: &'static str,
    type_name: &'static str,
    shape: &'static str,
    bytes: Vec<u8>,
}

fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn vectors() -> Vec<Vector> {
    FIXTURE
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.starts_with('#') && !l.trim().is_empty())
        .map(|(i, l)| {
            let fields: Vec<&'static str> = l.split_whitespace().collect();
            assert_eq!(fields.len(), 4, "line {}: four fields", i + 1);
            assert!(
                fields[0] == "c>b" || fields[0] == "b>c",
                "line {}: direction {}",
                i + 1,
                fields[0]
            );
            Vector {
                line: i + 1,
                direction: fields[0],
                type_name: fields[1],
                shape: fields[2],
                bytes: hex(fields[3]),
            }
        })
        .collect()
}

fn decode(bytes: &[u8], stack_trace_enabled: bool) -> Result<Command, String> {
    let mut d = Decoder::default();
    d.set_stack_trace_enabled(stack_trace_enabled);
    let mut buf = BytesMut::from(bytes);
    match d.decode(&mut buf) {
        Ok(Some(cmd)) if buf.is_empty() => Ok(cmd),
        Ok(Some(_)) => Err(format!("{} bytes left after the frame", buf.len())),
        Ok(None) => Err("incomplete frame".into()),
        Err(e) => Err(format!("decode error: {e}")),
    }
}

/// The format the captured client and broker negotiated, from their WireFormatInfos.
fn negotiated(vectors: &[Vector]) -> Negotiated {
    let wfi = |direction: &str| {
        let v = vectors
            .iter()
            .find(|v| v.direction == direction && v.type_name == "WireFormatInfo")
            .unwrap_or_else(|| panic!("no {direction} WireFormatInfo"));
        match decode(&v.bytes, false).expect("WireFormatInfo decodes") {
            Command::WireFormatInfo(w) => w,
            other => panic!("line {}: {}", v.line, other.name()),
        }
    };
    let n = wfi("c>b").negotiate(&wfi("b>c"));
    assert!(
        n.is_supported(),
        "captured format must be loose, uncached: {n:?}"
    );
    assert_eq!(n.version, 12);
    n
}

#[test]
fn every_captured_frame_decodes_to_its_type_and_re_encodes_identically() {
    let vectors = vectors();
    assert!(vectors.len() > 40, "fixture has {} vectors", vectors.len());
    let stack_traces = negotiated(&vectors).stack_trace_enabled;
    let mut failures = Vec::new();
    for v in &vectors {
        let what = format!(
            "line {} {} {} {}",
            v.line, v.direction, v.type_name, v.shape
        );
        let cmd = match decode(&v.bytes, stack_traces) {
            Ok(cmd) => cmd,
            Err(e) => {
                failures.push(format!("{what}: {e}"));
                continue;
            }
        };
        if cmd.name() != v.type_name {
            failures.push(format!("{what}: decoded as {}", cmd.name()));
            continue;
        }
        let mut out = BytesMut::new();
        if let Err(e) =
            Encoder::new(super::wireformat::OPENWIRE_VERSION, stack_traces).encode(&cmd, &mut out)
        {
            failures.push(format!("{what}: encode error: {e}"));
            continue;
        }
        if out[..] != v.bytes[..] {
            let at = out
                .iter()
                .zip(&v.bytes)
                .position(|(a, b)| a != b)
                .unwrap_or(out.len().min(v.bytes.len()));
            failures.push(format!(
                "{what}: re-encoded {} bytes differ from the captured {} at byte {at}",
                out.len(),
                v.bytes.len()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every command type a JMS 1.1 client or the broker sends to one, with the direction(s)
/// it travels, must be in the fixture.
const CAPTURED: &[(&str, &str)] = &[
    ("c>b", "WireFormatInfo"),
    ("b>c", "WireFormatInfo"),
    ("b>c", "BrokerInfo"),
    ("c>b", "ConnectionInfo"),
    ("c>b", "SessionInfo"),
    ("c>b", "ConsumerInfo"),
    ("c>b", "ProducerInfo"),
    ("c>b", "TransactionInfo"),
    ("c>b", "DestinationInfo"),
    ("c>b", "RemoveSubscriptionInfo"),
    ("c>b", "KeepAliveInfo"),
    ("b>c", "KeepAliveInfo"),
    ("c>b", "ShutdownInfo"),
    ("c>b", "RemoveInfo"),
    // Hand-built by the probe and encoded by the client's own marshaller: neither side
    // sends one in a JMS conversation, but it pins the layout (H · S command).
    ("c>b", "ControlCommand"),
    // The broker's answer to an async command that failed (here an async ROLLBACK of an
    // unknown transaction, hand-built by the probe).
    ("b>c", "ConnectionError"),
    // C→B: sent by the failover transport after a reconnect, to restore the prefetch of
    // a consumer it replayed with prefetch 0.
    ("c>b", "ConsumerControl"),
    // C→B: the failover transport's first command on every (re)connect (faultTolerant).
    ("c>b", "ConnectionControl"),
    ("b>c", "ConnectionControl"),
    ("b>c", "ProducerAck"),
    ("c>b", "MessagePull"),
    ("b>c", "MessageDispatch"),
    ("c>b", "MessageAck"),
    ("c>b", "ActiveMQMessage"),
    ("c>b", "ActiveMQBytesMessage"),
    ("c>b", "ActiveMQMapMessage"),
    ("c>b", "ActiveMQObjectMessage"),
    ("c>b", "ActiveMQStreamMessage"),
    ("c>b", "ActiveMQTextMessage"),
    ("c>b", "ActiveMQBlobMessage"),
    ("b>c", "Response"),
    ("b>c", "ExceptionResponse"),
    ("b>c", "DataArrayResponse"),
    ("b>c", "IntegerResponse"),
];

/// Command types (and directions) of the codec that no capture can contain, and why.
const NOT_CAPTURED: &[(&str, &str)] = &[
    // B→C ConsumerControl: the 5.17 broker sends it only from an AbortSlowConsumerStrategy
    // (close=true) or a network bridge, neither of which a client can turn on.
    ("b>c", "ConsumerControl"),
    // Nothing in the 5.17 broker sends a DataResponse to a client (the type is only used
    // inside broker networks / by older XA code paths); JMS 1.1 has no request for it.
    ("b>c", "DataResponse"),
];
// (Messages travel B→C only nested in a MessageDispatch; the b>c MessageDispatch vectors
// carry each of the seven message types.)

#[test]
fn fixture_covers_every_command_type_in_the_directions_it_travels() {
    let vectors = vectors();
    let found: BTreeSet<(&str, &str)> =
        vectors.iter().map(|v| (v.direction, v.type_name)).collect();
    let missing: Vec<_> = CAPTURED.iter().filter(|k| !found.contains(k)).collect();
    assert!(missing.is_empty(), "not in the fixture: {missing:?}");

    // Every type the codec knows is accounted for, in the captured list or in the list
    // of what cannot be captured.
    let accounted: BTreeSet<&str> = CAPTURED
        .iter()
        .chain(NOT_CAPTURED)
        .map(|(_, name)| *name)
        .collect();
    let unaccounted: Vec<_> = (0..=u8::MAX)
        .filter(|&t| Command::is_known_type(t))
        .map(type_name)
        .filter(|name| !accounted.contains(name))
        .collect();
    assert!(
        unaccounted.is_empty(),
        "codec types neither captured nor explained: {unaccounted:?}"
    );

    // Every dispatched message kind, and the null dispatch that ends a pull or a browse.
    let dispatched: BTreeSet<&str> = vectors
        .iter()
        .filter(|v| v.direction == "b>c" && v.type_name == "MessageDispatch")
        .map(|v| v.shape.rsplit("message=").next().unwrap())
        .collect();
    for kind in ["0", "23", "24", "25", "26", "27", "28", "29"] {
        assert!(
            dispatched.contains(kind),
            "no MessageDispatch of type {kind}"
        );
    }
    // Standard, delivered, poison, redelivered, individual and expired acks.
    for ack in ["ack=0", "ack=1", "ack=2", "ack=3", "ack=4", "ack=6"] {
        assert!(
            vectors
                .iter()
                .any(|v| v.type_name == "MessageAck" && v.shape.contains(ack)),
            "no MessageAck with {ack}"
        );
    }
    // Begin, prepare, commit (one and two phase), rollback, recover, end.
    for ty in (0..=7).filter(|t| *t != 6) {
        let ty = format!("type={ty},");
        assert!(
            vectors
                .iter()
                .any(|v| v.type_name == "TransactionInfo" && v.shape.contains(&ty)),
            "no TransactionInfo with {ty}"
        );
    }
}
