//! Tests for ACK/NACK: cumulative versus individual acks, 1.1 message-id acks, NACK.

use super::*;

#[test]
fn client_ack_is_cumulative_individual_is_not() {
    let dest = Destination::queue("q");
    for (mode, expect_first, expect_rest) in [
        ("client", vec![1, 2], vec![3]),
        ("client-individual", vec![2], vec![1, 3]),
    ] {
        let mut s = connected("1.2", 1);
        let sub = subscribe(
            &mut s,
            &[("destination", "/queue/q"), ("id", "s"), ("ack", mode)],
        );
        for seq in 1..=3 {
            s.on_event(delivery(sub, dest.clone(), seq, &format!("m{seq}")));
        }
        s.take_actions();
        // Ack ids are 1, 2, 3 in delivery order.
        s.on_frame(frame(Command::Ack, &[("id", "2")]));
        assert_eq!(acked_seqs(s.take_actions()), expect_first, "{mode}");
        let mut rest = Vec::new();
        for id in ["1", "3"] {
            s.on_frame(frame(Command::Ack, &[("id", id)]));
            let a = s.take_actions();
            if writes(&a).is_empty() {
                rest.extend(acked_seqs(a));
            } else {
                // Already covered by the cumulative ack: unknown now.
                assert_eq!(
                    writes(&a)[0].header("message"),
                    Some("Unexpected ACK received")
                );
                assert!(!a.iter().any(is_close));
            }
        }
        assert_eq!(rest, expect_rest, "{mode}");
    }
}

#[test]
fn ack_by_message_id_in_1_1_and_nack_and_receipt() {
    let dest = Destination::queue("q");
    let mut s = connected("1.1", 1);
    let sub = subscribe(
        &mut s,
        &[
            ("destination", "/queue/q"),
            ("id", "s"),
            ("ack", "client-individual"),
        ],
    );
    s.on_event(delivery(sub, dest.clone(), 1, "m1"));
    s.on_event(delivery(sub, dest.clone(), 2, "m2"));
    s.take_actions();
    s.on_frame(frame(
        Command::Nack,
        &[
            ("subscription", "s"),
            ("message-id", "m2"),
            ("receipt", "n"),
        ],
    ));
    let mut p = posts(s.take_actions());
    let (_, Request::Nack { seqs, reply, .. }) = p.remove(0) else {
        panic!()
    };
    assert_eq!(seqs, vec![2]);
    s.on_event(ok(reply.expect("receipt asks for a reply")));
    assert_eq!(writes(&s.take_actions())[0].header("receipt-id"), Some("n"));
    s.on_frame(frame(Command::Ack, &[("message-id", "m1")]));
    assert_eq!(acked_seqs(s.take_actions()), vec![1]);
}
