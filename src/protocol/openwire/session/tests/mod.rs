//! Session unit tests, one file per stage like the code they test. This file holds
//! the shared fixtures: a deterministic `SessionEnv`, an open session (handshake and
//! ConnectionInfo done), command builders, and helpers that pick writes and posts out
//! of the queued actions.

mod ack;
mod connect;
mod consume;
mod convert;
mod produce;
mod tx;

use std::cell::Cell;
use std::rc::Rc;

use super::*;
use crate::broker::{Delivery, Message as BrokerMessage, SubKey};
use crate::protocol::openwire::{
    ConnectionInfo, ConsumerInfo, Destination as OwDestination, MessageId, MessageKind,
    PrimitiveValue, ProducerInfo, SessionId, SessionInfo, WireFormatInfo,
};

struct TestEnv {
    next: Cell<u64>,
    /// The clock (ms); tests move it.
    now: Rc<Cell<u64>>,
}

impl SessionEnv for TestEnv {
    fn next_message_id(&self) -> String {
        let n = self.next.get();
        self.next.set(n + 1);
        format!("ID:m-{n}")
    }
    fn now_ms(&self) -> u64 {
        self.now.get()
    }
}

const CONN: ConnId = ConnId {
    shard: 0,
    serial: 7,
};

/// The client's connection id in these tests.
const CID: &str = "ID:client-1:1";

fn context(shards: usize, settings: BrokerSettings, ids: Arc<Registries>) -> SessionContext {
    SessionContext {
        conn: CONN,
        shard_count: shards,
        settings: Arc::new(settings),
        registries: ids,
        boot_id: "test-1".into(),
        boot_nanos: 0xabc,
        peer: "127.0.0.1:5555".into(),
        max_frame_bytes: 1 << 20,
    }
}

/// A fresh session (our WireFormatInfo still queued).
fn fresh(shards: usize, settings: BrokerSettings) -> Session<TestEnv> {
    fresh_with_ids(shards, settings, Arc::default())
}

fn fresh_with_ids(
    shards: usize,
    settings: BrokerSettings,
    ids: Arc<Registries>,
) -> Session<TestEnv> {
    Session::new(context(shards, settings, ids), env())
}

fn env() -> TestEnv {
    TestEnv {
        next: Cell::new(1),
        now: Rc::new(Cell::new(1_000)),
    }
}

/// What the 5.17 Java client sends (OPENWIRE.md §7.4).
fn client_wfi() -> Command {
    client_wfi_at(12)
}

/// The same from a client pinned to `wireFormat.version=version`.
fn client_wfi_at(version: i32) -> Command {
    let options = [
        ("TightEncodingEnabled", PrimitiveValue::Boolean(true)),
        ("CacheEnabled", PrimitiveValue::Boolean(true)),
        ("CacheSize", PrimitiveValue::Int(1024)),
        ("SizePrefixDisabled", PrimitiveValue::Boolean(false)),
        ("StackTraceEnabled", PrimitiveValue::Boolean(true)),
        ("TcpNoDelayEnabled", PrimitiveValue::Boolean(true)),
        ("MaxInactivityDuration", PrimitiveValue::Long(30_000)),
        (
            "MaxInactivityDurationInitalDelay",
            PrimitiveValue::Long(10_000),
        ),
        ("MaxFrameSize", PrimitiveValue::Long(i64::MAX)),
    ];
    Command::WireFormatInfo(WireFormatInfo {
        version,
        options: options.into_iter().collect(),
    })
}

fn connection_id() -> ConnectionId {
    ConnectionId::new(CID)
}

fn connection_info(cmd: i32, client_id: &str) -> ConnectionInfo {
    ConnectionInfo {
        header: Header::new(cmd, true),
        connection_id: Some(connection_id()),
        client_id: Some(client_id.into()),
        manageable: true,
        client_master: true,
        ..ConnectionInfo::default()
    }
}

/// Handshake and ConnectionInfo done, actions drained.
fn open(shards: usize) -> Session<TestEnv> {
    open_with(shards, BrokerSettings::default())
}

fn open_with(shards: usize, settings: BrokerSettings) -> Session<TestEnv> {
    open_at(shards, settings, 12)
}

/// [`open_with`] for a client of OpenWire `version`.
fn open_at(shards: usize, settings: BrokerSettings, version: i32) -> Session<TestEnv> {
    let mut s = fresh(shards, settings);
    s.on_command(client_wfi_at(version));
    s.on_command(Command::ConnectionInfo(connection_info(1, "cid")));
    let a = s.take_actions();
    assert!(
        matches!(writes(&a).last(), Some(Command::Response(r)) if r.correlation_id == 1),
        "{a:?}"
    );
    s.on_command(Command::SessionInfo(SessionInfo {
        header: Header::new(2, false),
        session_id: Some(SessionId {
            connection_id: CID.into(),
            value: 1,
        }),
    }));
    assert!(s.take_actions().is_empty());
    s
}

fn consumer_id(value: i64) -> ConsumerId {
    ConsumerId {
        connection_id: CID.into(),
        session_id: 1,
        value,
    }
}

fn producer_id() -> ProducerId {
    ProducerId {
        connection_id: CID.into(),
        session_id: 1,
        value: 1,
    }
}

fn writes(actions: &[Action]) -> Vec<&Command> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Write(c) => Some(c),
            _ => None,
        })
        .collect()
}

fn posts(actions: Vec<Action>) -> Vec<(ShardId, Request)> {
    actions
        .into_iter()
        .filter_map(|a| match a {
            Action::Post { shard, request } => Some((shard, request)),
            _ => None,
        })
        .collect()
}

fn reply_of(r: &Request) -> Reply {
    match r {
        Request::Send { reply, .. }
        | Request::Subscribe { reply, .. }
        | Request::Browse { reply, .. }
        | Request::Unsubscribe { reply, .. }
        | Request::Commit { reply, .. }
        | Request::Prepare { reply, .. }
        | Request::RecordOutcome { reply, .. }
        | Request::Resolve { reply, .. }
        | Request::Barrier { reply } => *reply,
        Request::Ack { reply, .. } | Request::Nack { reply, .. } => {
            reply.expect("request has a reply")
        }
        other => panic!("no reply: {other:?}"),
    }
}

fn ok(reply: Reply) -> Event {
    Event::Done {
        reply,
        result: Ok(()),
    }
}

fn failed(reply: Reply, e: BrokerError) -> Event {
    Event::Done {
        reply,
        result: Err(e),
    }
}

/// The correlation id of the only write, which must be a Response.
fn response(actions: &[Action]) -> i32 {
    match writes(actions).as_slice() {
        [Command::Response(r)] => r.correlation_id,
        other => panic!("expected one Response, got {other:?}"),
    }
}

/// (correlation, class, message) of the only write, an ExceptionResponse.
fn exception(actions: &[Action]) -> (i32, String, String) {
    match writes(actions).as_slice() {
        [Command::ExceptionResponse(e)] => {
            let ex = e.exception.as_ref().expect("exception");
            (
                e.correlation_id,
                ex.class_name.clone().unwrap_or_default(),
                ex.message.clone().unwrap_or_default(),
            )
        }
        other => panic!("expected one ExceptionResponse, got {other:?}"),
    }
}

/// The class of the only write, a ConnectionError.
fn connection_error(actions: &[Action]) -> String {
    match writes(actions).as_slice() {
        [Command::ConnectionError(e)] => e
            .exception
            .as_ref()
            .and_then(|x| x.class_name.clone())
            .unwrap_or_default(),
        other => panic!("expected one ConnectionError, got {other:?}"),
    }
}

fn consumer_info(cmd: i32, value: i64, destination: OwDestination) -> ConsumerInfo {
    ConsumerInfo {
        header: Header::new(cmd, true),
        consumer_id: Some(consumer_id(value)),
        destination: Some(destination),
        prefetch_size: 1000,
        dispatch_async: true,
        ..ConsumerInfo::default()
    }
}

/// Subscribes consumer `value` to `destination` and completes it; returns its key.
fn subscribe(s: &mut Session<TestEnv>, value: i64, destination: OwDestination) -> SubKey {
    s.on_command(Command::ConsumerInfo(consumer_info(10, value, destination)));
    let mut p = posts(s.take_actions());
    assert_eq!(p.len(), 1);
    let (_, Request::Subscribe { sub, reply, .. }) = p.remove(0) else {
        panic!("not a subscribe")
    };
    s.on_event(ok(reply));
    assert_eq!(response(&s.take_actions()), 10);
    sub
}

fn producer_info(cmd: i32) -> ProducerInfo {
    ProducerInfo {
        header: Header::new(cmd, true),
        producer_id: Some(producer_id()),
        destination: None,
        ..ProducerInfo::default()
    }
}

/// A persistent text message from this connection's producer, sequence `seq`.
fn text_message(cmd: i32, sync: bool, destination: OwDestination, seq: i64, text: &str) -> Command {
    let mut m = crate::protocol::openwire::Message {
        kind: MessageKind::Text,
        header: Header::new(cmd, sync),
        producer_id: Some(producer_id()),
        destination: Some(destination),
        message_id: Some(MessageId {
            text_view: None,
            producer_id: Some(producer_id()),
            producer_sequence_id: seq,
            broker_sequence_id: 0,
        }),
        persistent: true,
        timestamp: 123,
        ..Default::default()
    };
    m.set_text(Some(text)).unwrap();
    Command::Message(Box::new(m))
}

/// A broker message as a STOMP producer would have sent it.
fn stomp_message(dest: Destination, body: &str) -> BrokerMessage {
    BrokerMessage {
        id: "ID:stomp-1".into(),
        destination: dest,
        persistent: true,
        priority: 4,
        timestamp_ms: 55,
        expires_ms: 0,
        reply_to: None,
        headers: vec![("color".into(), "red".into())],
        body: bytes::Bytes::copy_from_slice(body.as_bytes()),
        body_type: crate::broker::BodyType::TEXT,
        properties: Vec::new(),
    }
}

fn delivery(sub: SubKey, msg: BrokerMessage, seq: u64, redeliveries: u32) -> Event {
    Event::Deliver(Delivery {
        sub,
        destination: msg.destination.clone(),
        msg: Arc::new(msg),
        seq,
        redelivered: redeliveries > 0,
        redelivery_count: redeliveries,
    })
}

/// The message ids (brokerSequenceId) of the dispatches among `actions`.
fn dispatched(actions: &[Action]) -> Vec<i64> {
    writes(actions)
        .into_iter()
        .filter_map(|c| match c {
            Command::MessageDispatch(d) => d
                .message
                .as_ref()
                .and_then(|m| m.message_id.as_ref())
                .map(|id| id.broker_sequence_id),
            _ => None,
        })
        .collect()
}
