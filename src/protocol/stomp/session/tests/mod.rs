//! Session unit tests, one file per stage like the code they test. This file holds
//! the shared fixtures: a deterministic `SessionEnv`, a connected session, frame
//! builders, and helpers that pick writes and posts out of the queued actions.

mod ack;
mod connect;
mod receipts;
mod send;
mod subscribe;
mod tx;

use super::*;
use crate::broker::{Delivery, Message, Reply};
use std::cell::Cell;

struct TestEnv {
    next: Cell<u64>,
}
impl SessionEnv for TestEnv {
    fn next_message_id(&self) -> String {
        let n = self.next.get();
        self.next.set(n + 1);
        format!("ID:m-{n}")
    }
    fn now_ms(&self) -> u64 {
        1_000
    }
}

const CONN: ConnId = ConnId {
    shard: 0,
    serial: 7,
};

fn session_with(shards: usize, settings: BrokerSettings) -> Session<TestEnv> {
    session_in(Arc::new(Registries::default()), CONN, shards, settings)
}

/// A session for connection `conn` sharing `registries` with others.
fn session_in(
    registries: Arc<Registries>,
    conn: ConnId,
    shards: usize,
    settings: BrokerSettings,
) -> Session<TestEnv> {
    Session::new(
        SessionContext {
            conn,
            shard_count: shards,
            settings: Arc::new(settings),
            registries,
            boot_nanos: 0xabc,
        },
        TestEnv { next: Cell::new(1) },
    )
}

fn frame(command: Command, headers: &[(&str, &str)]) -> Frame {
    let mut f = Frame::new(command);
    for (k, v) in headers {
        f.push_header(*k, *v);
    }
    f
}

/// A connected session speaking `version`.
fn connected(version: &str, shards: usize) -> Session<TestEnv> {
    let mut s = session_with(shards, BrokerSettings::default());
    let mut h = vec![("host", "localhost")];
    if version != "1.0" {
        h.push(("accept-version", version));
    }
    s.on_frame(frame(Command::Connect, &h));
    assert!(s.is_connected());
    s.take_actions();
    s
}

fn writes(actions: &[Action]) -> Vec<&Frame> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Write(f) => Some(f),
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
        Request::ConnectionClosed { .. }
        | Request::ForgetOutcome { .. }
        | Request::QueryOutcome { .. }
        | Request::SetPrefetch { .. }
        | Request::Written { .. }
        | Request::CreateTemp { .. }
        | Request::DeleteTemp { .. } => panic!("not a STOMP request"),
    }
}

fn ok(reply: Reply) -> Event {
    Event::Done {
        reply,
        result: Ok(()),
    }
}

fn headers(f: &Frame) -> Vec<(&str, &str)> {
    f.headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

fn is_close(a: &Action) -> bool {
    matches!(a, Action::Close)
}

/// Subscribes and completes the subscription; returns its SubKey.
fn subscribe(s: &mut Session<TestEnv>, h: &[(&str, &str)]) -> SubKey {
    s.on_frame(frame(Command::Subscribe, h));
    let mut p = posts(s.take_actions());
    assert_eq!(p.len(), 1);
    let (_, req) = p.remove(0);
    let Request::Subscribe { sub, reply, .. } = req else {
        panic!("not a subscribe: {req:?}")
    };
    s.on_event(ok(reply));
    s.take_actions();
    sub
}

fn delivery(sub: SubKey, dest: Destination, seq: u64, msg_id: &str) -> Event {
    Event::Deliver(Delivery {
        sub,
        msg: Arc::new(Message {
            id: msg_id.into(),
            destination: dest.clone(),
            persistent: true,
            priority: 4,
            timestamp_ms: 55,
            expires_ms: 0,
            reply_to: None,
            headers: vec![("color".into(), "red".into())],
            body: Bytes::from_static(b"hello"),
            body_type: Default::default(),
            properties: Vec::new(),
        }),
        seq,
        destination: dest,
        redelivered: false,
        redelivery_count: 0,
    })
}

fn acked_seqs(actions: Vec<Action>) -> Vec<u64> {
    posts(actions)
        .into_iter()
        .flat_map(|(_, r)| match r {
            Request::Ack { seqs, .. } => seqs,
            other => panic!("{other:?}"),
        })
        .collect()
}
