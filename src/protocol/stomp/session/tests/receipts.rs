//! Tests for receipts that wait behind barriers, including DISCONNECT's.

use super::*;

#[test]
fn receipts_wait_for_earlier_work_via_barriers() {
    let mut s = connected("1.2", 1);
    s.on_frame(frame(Command::Send, &[("destination", "/queue/q")]));
    let send = posts(s.take_actions());
    s.on_frame(frame(
        Command::Begin,
        &[("transaction", "t"), ("receipt", "b")],
    ));
    let mut p = posts(s.take_actions());
    let (0, Request::Barrier { reply }) = p.remove(0) else {
        panic!()
    };
    s.on_event(ok(reply_of(&send[0].1)));
    assert!(s.take_actions().is_empty());
    s.on_event(ok(reply));
    assert_eq!(writes(&s.take_actions())[0].header("receipt-id"), Some("b"));
    // Nothing outstanding now: immediate.
    s.on_frame(frame(
        Command::Abort,
        &[("transaction", "t"), ("receipt", "a")],
    ));
    assert_eq!(writes(&s.take_actions())[0].header("receipt-id"), Some("a"));
}

#[test]
fn disconnect_receipt_follows_a_barrier_then_closes() {
    let mut s = connected("1.2", 4);
    s.on_frame(frame(Command::Disconnect, &[]));
    assert!(matches!(s.take_actions()[..], [Action::Close]));

    let mut s = connected("1.2", 4);
    s.on_frame(frame(Command::Disconnect, &[("receipt", "d")]));
    let a = s.take_actions();
    assert_eq!(writes(&a)[0].header("receipt-id"), Some("d"));
    assert!(is_close(&a[1]));

    let mut s = connected("1.2", 4);
    s.on_frame(frame(Command::Send, &[("destination", "/queue/q")]));
    let send = posts(s.take_actions());
    s.on_event(ok(reply_of(&send[0].1)));
    s.take_actions();
    s.on_frame(frame(Command::Disconnect, &[("receipt", "d")]));
    let barriers = posts(s.take_actions());
    assert_eq!(barriers.len(), 1);
    assert_eq!(barriers[0].0, send[0].0);
    // Ignored while waiting.
    s.on_frame(frame(Command::Send, &[("destination", "/queue/q")]));
    assert!(s.take_actions().is_empty());
    s.on_event(ok(reply_of(&barriers[0].1)));
    let a = s.take_actions();
    assert_eq!(writes(&a)[0].header("receipt-id"), Some("d"));
    assert!(is_close(&a[1]));
}
