//! Tests for local transactions: commit on one shard, across shards, rollback, XA.

use super::*;
use crate::broker::TxOp;
use crate::protocol::openwire::{
    AckType, LocalTransactionId, MessageAck, TransactionId, TransactionInfo, TransactionType,
};

fn txid(n: i64) -> TransactionId {
    TransactionId::Local(LocalTransactionId {
        value: n,
        connection_id: Some(connection_id()),
    })
}

fn tx(cmd: i32, t: TransactionType, n: i64) -> Command {
    Command::TransactionInfo(TransactionInfo {
        header: Header::new(cmd, t != TransactionType::Begin),
        connection_id: Some(connection_id()),
        transaction_id: Some(txid(n)),
        transaction_type: t,
    })
}

fn tx_send(cmd: i32, dest: &str, seq: i64, n: i64) -> Command {
    let Command::Message(mut m) = text_message(cmd, false, OwDestination::queue(dest), seq, "t")
    else {
        unreachable!()
    };
    m.transaction_id = Some(txid(n));
    Command::Message(m)
}

fn tx_ack(cmd: i32, last: u64, n: i64) -> Command {
    Command::MessageAck(MessageAck {
        header: Header::new(cmd, false),
        destination: Some(OwDestination::queue("in")),
        transaction_id: Some(txid(n)),
        consumer_id: Some(consumer_id(1)),
        ack_type: AckType::Standard,
        first_message_id: None,
        last_message_id: Some(super::super::convert::message_id("ID:stomp-1", last)),
        message_count: 1,
        poison_cause: None,
    })
}

#[test]
fn commit_on_one_shard_is_one_request_answered_when_done() {
    let mut s = open(1);
    let sub = subscribe(&mut s, 1, OwDestination::queue("in"));
    s.on_event(delivery(
        sub,
        stomp_message(Destination::queue("in"), "m"),
        4,
        0,
    ));
    s.take_actions();
    s.on_command(tx(30, TransactionType::Begin, 1));
    s.on_command(tx_send(31, "out", 1, 1));
    s.on_command(tx_ack(32, 4, 1));
    assert!(s.take_actions().is_empty(), "nothing before the commit");
    s.on_command(tx(33, TransactionType::CommitOnePhase, 1));
    let p = posts(s.take_actions());
    let [(0, Request::Commit { ops, reply })] = &p[..] else {
        panic!("{p:?}")
    };
    assert!(matches!(&ops[0], TxOp::Send(m) if m.destination == Destination::queue("out")));
    assert!(matches!(&ops[1], TxOp::Ack { seqs, .. } if seqs == &vec![4]));
    s.on_event(ok(*reply));
    assert_eq!(response(&s.take_actions()), 33);
    // The acknowledged message is gone: acking it again does nothing.
    s.on_command(Command::MessageAck(MessageAck {
        transaction_id: None,
        ..match tx_ack(34, 4, 1) {
            Command::MessageAck(a) => a,
            _ => unreachable!(),
        }
    }));
    assert!(s.take_actions().is_empty());
}

#[test]
fn rollback_keeps_the_messages_outstanding_to_the_consumer() {
    let mut s = open(1);
    let sub = subscribe(&mut s, 1, OwDestination::queue("in"));
    s.on_event(delivery(
        sub,
        stomp_message(Destination::queue("in"), "m"),
        4,
        0,
    ));
    s.take_actions();
    s.on_command(tx(30, TransactionType::Begin, 1));
    s.on_command(tx_ack(31, 4, 1));
    s.on_command(tx(32, TransactionType::Rollback, 1));
    assert_eq!(response(&s.take_actions()), 32);
    // The client redelivers locally and acks it in the next transaction.
    s.on_command(tx(33, TransactionType::Begin, 2));
    s.on_command(tx_ack(34, 4, 2));
    s.on_command(tx(35, TransactionType::CommitOnePhase, 2));
    let p = posts(s.take_actions());
    assert!(
        matches!(&p[..], [(_, Request::Commit { ops, .. })] if matches!(&ops[0], TxOp::Ack { seqs, .. } if seqs == &vec![4])),
        "{p:?}"
    );
}

#[test]
fn commit_across_shards_runs_two_phases() {
    let mut s = open(4);
    // Two destinations on different shards.
    let (a, b) = (0..100)
        .map(|i| format!("q{i}"))
        .fold((None, None), |(a, b), n| {
            let shard = Destination::queue(n.as_str()).shard(4);
            match (&a, &b) {
                (None, _) => (Some((n, shard)), b),
                (Some((_, sa)), None) if *sa != shard => (a, Some((n, shard))),
                _ => (a, b),
            }
        });
    let ((a, sa), (b, sb)) = (a.unwrap(), b.unwrap());
    s.on_command(tx(1, TransactionType::Begin, 1));
    s.on_command(tx_send(2, &a, 1, 1));
    s.on_command(tx_send(3, &b, 2, 1));
    s.on_command(tx(4, TransactionType::CommitOnePhase, 1));
    let p = posts(s.take_actions());
    assert_eq!(p.len(), 2);
    let mut shards: Vec<ShardId> = p.iter().map(|(s, _)| *s).collect();
    shards.sort_unstable();
    let mut want = vec![sa, sb];
    want.sort_unstable();
    assert_eq!(shards, want);
    assert!(p.iter().all(|(_, r)| matches!(r, Request::Prepare { .. })));
    for (_, r) in &p {
        s.on_event(ok(reply_of(r)));
    }
    let p = posts(s.take_actions());
    let [(
        0,
        Request::RecordOutcome {
            commit: true,
            reply,
            ..
        },
    )] = &p[..]
    else {
        panic!("{p:?}")
    };
    s.on_event(ok(*reply));
    let p = posts(s.take_actions());
    assert_eq!(p.len(), 2);
    assert!(p
        .iter()
        .all(|(_, r)| matches!(r, Request::Resolve { commit: true, .. })));
    s.on_event(ok(reply_of(&p[0].1)));
    assert!(s.take_actions().is_empty());
    s.on_event(ok(reply_of(&p[1].1)));
    let a = s.take_actions();
    assert_eq!(response(&a), 4);
    assert!(a.iter().any(|x| matches!(
        x,
        Action::Post {
            request: Request::ForgetOutcome { .. },
            ..
        }
    )));
}

#[test]
fn a_failed_commit_is_a_transaction_rolled_back_exception() {
    let mut s = open(1);
    s.on_command(tx(1, TransactionType::Begin, 1));
    s.on_command(tx_send(2, "x", 1, 1));
    s.on_command(tx(3, TransactionType::CommitOnePhase, 1));
    let p = posts(s.take_actions());
    s.on_event(failed(
        reply_of(&p[0].1),
        BrokerError::from(crate::store::StoreError::Failed("disk".into())),
    ));
    let (corr, class, _) = exception(&s.take_actions());
    assert_eq!(
        (corr, class.as_str()),
        (3, "javax.jms.TransactionRolledBackException")
    );
}

#[test]
fn xa_is_refused() {
    let mut s = open(1);
    s.on_command(tx(1, TransactionType::Prepare, 1));
    let (corr, class, _) = exception(&s.take_actions());
    assert_eq!((corr, class.as_str()), (1, "javax.jms.JMSException"));
}
