//! Tests for transactions: single-shard commit, abort, two-phase commit across shards.

use super::*;
use crate::broker::{BrokerError, TxOp};

#[test]
fn single_shard_transaction_commits_in_one_request() {
    let dest = Destination::queue("q");
    let mut s = connected("1.2", 1);
    let sub = subscribe(
        &mut s,
        &[("destination", "/queue/q"), ("id", "s"), ("ack", "client")],
    );
    s.on_event(delivery(sub, dest.clone(), 1, "m1"));
    s.take_actions();
    s.on_frame(frame(
        Command::Begin,
        &[("transaction", "t"), ("receipt", "b")],
    ));
    assert_eq!(writes(&s.take_actions())[0].header("receipt-id"), Some("b"));
    s.on_frame(frame(
        Command::Send,
        &[("destination", "/queue/q"), ("transaction", "t")],
    ));
    s.on_frame(frame(Command::Ack, &[("id", "1"), ("transaction", "t")]));
    assert!(s.take_actions().is_empty());
    // Acked in the transaction: not ackable again.
    s.on_frame(frame(Command::Ack, &[("id", "1")]));
    assert_eq!(writes(&s.take_actions())[0].command, Command::Error);
    s.on_frame(frame(
        Command::Commit,
        &[("transaction", "t"), ("receipt", "c")],
    ));
    let mut p = posts(s.take_actions());
    assert_eq!(p.len(), 1);
    let (0, Request::Commit { ops, reply }) = p.remove(0) else {
        panic!()
    };
    assert!(matches!(&ops[..], [TxOp::Send(_), TxOp::Ack { seqs, .. }] if seqs == &vec![1]));
    s.on_event(ok(reply));
    assert_eq!(writes(&s.take_actions())[0].header("receipt-id"), Some("c"));
    // Unknown transaction now: ERROR, still open.
    s.on_frame(frame(Command::Commit, &[("transaction", "t")]));
    let a = s.take_actions();
    assert_eq!(
        writes(&a)[0].header("message"),
        Some("Invalid transaction id")
    );
    assert!(!a.iter().any(is_close));
}

#[test]
fn abort_returns_transactional_acks_to_the_connection() {
    let dest = Destination::queue("q");
    let mut s = connected("1.2", 1);
    let sub = subscribe(
        &mut s,
        &[("destination", "/queue/q"), ("id", "s"), ("ack", "client")],
    );
    s.on_event(delivery(sub, dest.clone(), 1, "m1"));
    s.take_actions();
    s.on_frame(frame(Command::Begin, &[("transaction", "t")]));
    s.on_frame(frame(Command::Begin, &[("transaction", "t")]));
    let a = s.take_actions();
    assert_eq!(
        writes(&a)[0].header("message"),
        Some("Transaction already started")
    );
    s.on_frame(frame(Command::Ack, &[("id", "1"), ("transaction", "t")]));
    s.on_frame(frame(Command::Abort, &[("transaction", "t")]));
    assert!(s.take_actions().is_empty());
    s.on_frame(frame(Command::Ack, &[("id", "1")]));
    assert_eq!(acked_seqs(s.take_actions()), vec![1]);
}

fn two_shard_commit(fail_prepare: bool) {
    let (a, b) = names_on_two_shards(2);
    let mut s = connected("1.2", 2);
    s.on_frame(frame(Command::Begin, &[("transaction", "t")]));
    for d in [&a, &b] {
        let dest = format!("/queue/{d}");
        s.on_frame(frame(
            Command::Send,
            &[("destination", dest.as_str()), ("transaction", "t")],
        ));
    }
    s.on_frame(frame(
        Command::Commit,
        &[("transaction", "t"), ("receipt", "c")],
    ));
    let prepares = posts(s.take_actions());
    assert_eq!(prepares.len(), 2);
    let mut gtxs = Vec::new();
    let mut shards = Vec::new();
    for (shard, r) in &prepares {
        let Request::Prepare { gtx, ops, .. } = r else {
            panic!("{r:?}")
        };
        assert_eq!(ops.len(), 1);
        gtxs.push(*gtx);
        shards.push(*shard);
    }
    assert_eq!(gtxs[0], gtxs[1]);
    shards.sort_unstable();
    assert_eq!(shards, vec![0, 1]);
    let gtx = gtxs[0];
    // First prepare done: nothing yet.
    s.on_event(ok(reply_of(&prepares[0].1)));
    assert!(s.take_actions().is_empty());
    s.on_event(Event::Done {
        reply: reply_of(&prepares[1].1),
        result: if fail_prepare {
            Err(BrokerError::from(crate::store::StoreError::Failed(
                "full".into(),
            )))
        } else {
            Ok(())
        },
    });
    let mut rec = posts(s.take_actions());
    assert_eq!(rec.len(), 1);
    let (
        0,
        Request::RecordOutcome {
            gtx: g,
            commit,
            reply,
        },
    ) = rec.remove(0)
    else {
        panic!()
    };
    assert_eq!((g, commit), (gtx, !fail_prepare));
    s.on_event(ok(reply));
    let resolves = posts(s.take_actions());
    assert_eq!(resolves.len(), 2);
    for (_, r) in &resolves {
        assert!(
            matches!(r, Request::Resolve { gtx: g, commit, .. } if *g == gtx && *commit != fail_prepare)
        );
    }
    s.on_event(ok(reply_of(&resolves[0].1)));
    assert!(s.take_actions().is_empty());
    s.on_event(ok(reply_of(&resolves[1].1)));
    let a = s.take_actions();
    let f = writes(&a)[0];
    if fail_prepare {
        assert_eq!(f.command, Command::Error);
        assert_eq!(f.header("receipt-id"), Some("c"));
        assert!(!a.iter().any(is_close));
    } else {
        assert_eq!(headers(f), vec![("receipt-id", "c")]);
    }
}

#[test]
fn multi_shard_commit_runs_two_phases() {
    two_shard_commit(false);
}

#[test]
fn multi_shard_commit_aborts_when_a_prepare_fails() {
    two_shard_commit(true);
}

/// Two queue names that live on different shards of `n`.
fn names_on_two_shards(n: usize) -> (String, String) {
    let a = "a".to_string();
    let sa = Destination::queue(&a).shard(n);
    let b = (0..)
        .map(|i| format!("b{i}"))
        .find(|b| Destination::queue(b).shard(n) != sa)
        .unwrap_or_default();
    (a, b)
}
