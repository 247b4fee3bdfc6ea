//! Tests for MessageAck: standard ranges, individual, delivered, poison, unknown ids.

use super::*;
use crate::protocol::openwire::{AckType, MessageAck};

/// A consumer on queue `q` with messages `seqs` dispatched to it.
fn with_dispatched(seqs: &[u64]) -> (Session<TestEnv>, SubKey) {
    let mut s = open(1);
    let sub = subscribe(&mut s, 1, OwDestination::queue("q"));
    for &seq in seqs {
        s.on_event(delivery(
            sub,
            stomp_message(Destination::queue("q"), "m"),
            seq,
            0,
        ));
    }
    assert_eq!(dispatched(&s.take_actions()).len(), seqs.len());
    (s, sub)
}

fn id(seq: i64) -> MessageId {
    super::super::convert::message_id("ID:stomp-1", seq as u64)
}

fn ack(cmd: i32, rr: bool, t: AckType, first: Option<i64>, last: i64) -> Command {
    Command::MessageAck(MessageAck {
        header: Header::new(cmd, rr),
        destination: Some(OwDestination::queue("q")),
        transaction_id: None,
        consumer_id: Some(consumer_id(1)),
        ack_type: t,
        first_message_id: first.map(id),
        last_message_id: Some(id(last)),
        message_count: 1,
        poison_cause: None,
    })
}

/// (ack or nack, seqs) of the acknowledgements among the posts (window changes are
/// tested in consume.rs).
fn acked(actions: Vec<Action>) -> Vec<(bool, Vec<u64>)> {
    posts(actions)
        .into_iter()
        .filter_map(|(_, r)| match r {
            Request::Ack { seqs, .. } => Some((true, seqs)),
            Request::Nack { seqs, .. } => Some((false, seqs)),
            Request::SetPrefetch { .. } => None,
            other => panic!("{other:?}"),
        })
        .collect()
}

#[test]
fn a_standard_ack_takes_the_range_up_to_the_last_id() {
    let (mut s, _) = with_dispatched(&[1, 2, 3, 4]);
    s.on_command(ack(20, false, AckType::Standard, None, 2));
    assert_eq!(acked(s.take_actions()), vec![(true, vec![1, 2])]);
    s.on_command(ack(21, false, AckType::Standard, Some(4), 4));
    assert_eq!(acked(s.take_actions()), vec![(true, vec![4])]);
    s.on_command(ack(22, false, AckType::Standard, None, 3));
    assert_eq!(acked(s.take_actions()), vec![(true, vec![3])]);
    // Already acknowledged: nothing to do.
    s.on_command(ack(23, false, AckType::Standard, None, 3));
    assert!(s.take_actions().is_empty());
}

#[test]
fn individual_delivered_and_redelivered_acks() {
    let (mut s, _) = with_dispatched(&[1, 2, 3]);
    s.on_command(ack(20, false, AckType::Delivered, Some(1), 2));
    assert!(acked(s.take_actions()).is_empty());
    s.on_command(ack(21, false, AckType::Redelivered, None, 2));
    assert!(s.take_actions().is_empty());
    s.on_command(ack(22, false, AckType::Individual, None, 2));
    assert_eq!(acked(s.take_actions()), vec![(true, vec![2])]);
    s.on_command(ack(23, false, AckType::Standard, None, 3));
    assert_eq!(acked(s.take_actions()), vec![(true, vec![1, 3])]);
}

#[test]
fn poison_and_expired_acks_dead_letter() {
    let (mut s, _) = with_dispatched(&[1, 2]);
    s.on_command(ack(20, false, AckType::Poison, None, 1));
    assert_eq!(acked(s.take_actions()), vec![(false, vec![1])]);
    s.on_command(ack(21, false, AckType::Expired, None, 2));
    assert_eq!(acked(s.take_actions()), vec![(false, vec![2])]);
}

#[test]
fn unknown_ids_are_ignored_and_sync_acks_answered() {
    let (mut s, _) = with_dispatched(&[1]);
    s.on_command(ack(20, true, AckType::Standard, None, 99));
    assert_eq!(response(&s.take_actions()), 20);
    s.on_command(ack(21, true, AckType::Standard, None, 1));
    let p = posts(s.take_actions());
    assert_eq!(p.len(), 1);
    s.on_event(ok(reply_of(&p[0].1)));
    assert_eq!(response(&s.take_actions()), 21);
}
