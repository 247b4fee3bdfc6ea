//! Tests of the handshake proofs and of each role's decisions on hostile frames.
use super::*;
use crate::replication::frame::tests::arb_frame;
use crate::replication::frame::{Decoder, PROOF_BYTES};
use bytes::BytesMut;
use proptest::prelude::*;

const SECRET: &str = "pair-secret";

fn secret_acceptor() -> Acceptor {
    Acceptor {
        plugin: None,
        group: "admins".into(),
        secret: Some(Key::new(SECRET)),
    }
}

fn plugin_acceptor() -> Acceptor {
    Acceptor {
        plugin: Some(vec![
            PluginUser {
                name: "app".into(),
                key: Key::new("app-pass"),
                groups: vec!["users".into()],
            },
            PluginUser {
                name: "repl".into(),
                key: Key::new("repl-pass"),
                groups: vec!["users".into(), "admins".into()],
            },
        ]),
        group: "admins".into(),
        secret: None,
    }
}

fn nonces(user: &str) -> Nonces {
    Nonces {
        user: user.into(),
        slave: [1; 32],
        master: [2; 32],
    }
}

fn proof_frame(epoch: u64, shards: usize) -> Frame {
    Frame {
        epoch,
        body: Body::Proof {
            proof: [0; PROOF_BYTES],
            node_id: "7".into(),
            client_addrs: vec!["127.0.0.1:61626".into()],
            positions: vec![4096; shards],
        },
    }
}

fn signed(key: &str, label: &[u8], n: &Nonces, mut f: Frame) -> Frame {
    sign(&Key::new(key), label, n, &mut f);
    f
}

fn view(epoch: u64) -> MasterView {
    MasterView {
        epoch,
        shards: 2,
        current_slave: None,
    }
}

#[test]
fn a_proof_checks_only_with_its_key_label_nonces_and_fields() {
    let n = nonces("");
    let f = signed(SECRET, SLAVE_LABEL, &n, proof_frame(5, 2));
    assert!(verify(&Key::new(SECRET), SLAVE_LABEL, &n, &f));
    // Wrong key.
    assert!(!verify(&Key::new("other"), SLAVE_LABEL, &n, &f));
    // Reflected: a slave's proof is no master's proof.
    assert!(!verify(&Key::new(SECRET), MASTER_LABEL, &n, &f));
    // Replayed on another connection: the master's nonce differs.
    let mut other = n.clone();
    other.master[0] ^= 1;
    assert!(!verify(&Key::new(SECRET), SLAVE_LABEL, &other, &f));
    let mut other = n.clone();
    other.user = "x".into();
    assert!(!verify(&Key::new(SECRET), SLAVE_LABEL, &other, &f));
    // Any field changed in flight.
    let mut e = f.clone();
    e.epoch += 1;
    assert!(!verify(&Key::new(SECRET), SLAVE_LABEL, &n, &e));
    let mut p = f.clone();
    if let Body::Proof { positions, .. } = &mut p.body {
        positions[1] += 1;
    }
    assert!(!verify(&Key::new(SECRET), SLAVE_LABEL, &n, &p));
    // Frames without a proof never verify.
    let hb = Frame {
        epoch: 0,
        body: Body::Heartbeat,
    };
    assert!(!verify(&Key::new(SECRET), SLAVE_LABEL, &n, &hb));
}

#[test]
fn a_node_without_a_secret_refuses_every_hello_and_says_why() {
    let hello = Frame {
        epoch: u64::MAX,
        body: Body::Hello {
            version: VERSION,
            user: String::new(),
            nonce: [0; 32],
        },
    };
    let none = Acceptor {
        group: "admins".into(),
        ..Acceptor::default()
    };
    match on_hello(&none, &hello) {
        OnHello::Refuse(why) => assert!(why.contains("replicationSecret"), "{why}"),
        other => panic!("{other:?}"),
    }
    // A plugin with no user in the group cannot authenticate anyone either.
    let mut outside = plugin_acceptor();
    outside.group = "replicators".into();
    assert!(matches!(on_hello(&outside, &hello), OnHello::Refuse(_)));
    assert!(matches!(
        on_hello(&secret_acceptor(), &hello),
        OnHello::Challenge { .. }
    ));
    // Another version, or another first frame: refused.
    let mut v1 = hello.clone();
    if let Body::Hello { version, .. } = &mut v1.body {
        *version = 1;
    }
    assert!(matches!(
        on_hello(&secret_acceptor(), &v1),
        OnHello::Refuse(_)
    ));
    let ack = Frame {
        epoch: 1,
        body: Body::Ack {
            shard: 0,
            received: u64::MAX,
            durable: 0,
        },
    };
    assert!(matches!(
        on_hello(&secret_acceptor(), &ack),
        OnHello::Refuse(_)
    ));
}

#[test]
fn plugin_users_prove_their_password_only_within_the_group() {
    let a = plugin_acceptor();
    assert_eq!(a.key_for("repl"), Some(&Key::new("repl-pass")));
    assert_eq!(a.key_for("app"), None, "not in the replication group");
    assert_eq!(a.key_for("nobody"), None);
    let login = a.rejoin_login().expect("a group member");
    assert_eq!(login.user, "repl");
    // The user not in the group cannot attach even with its right password.
    let n = nonces("app");
    let f = signed("app-pass", SLAVE_LABEL, &n, proof_frame(0, 2));
    assert!(matches!(
        judge_proof(&a, &n, &view(0), &f),
        Verdict::Unauthenticated(_)
    ));
    let n = nonces("repl");
    let f = signed("repl-pass", SLAVE_LABEL, &n, proof_frame(0, 2));
    assert!(matches!(
        judge_proof(&a, &n, &view(0), &f),
        Verdict::Attach { resume: true, .. }
    ));
}

#[test]
fn the_master_believes_an_epoch_only_from_a_proven_peer() {
    let a = secret_acceptor();
    let n = nonces("");
    // Unproven huge epoch: no detail, no exit.
    let forged = proof_frame(u64::MAX, 2);
    assert!(matches!(
        judge_proof(&a, &n, &view(10), &forged),
        Verdict::Unauthenticated(_)
    ));
    // Proven higher epoch: this master is stale.
    let proven = signed(SECRET, SLAVE_LABEL, &n, proof_frame(11, 2));
    assert!(matches!(
        judge_proof(&a, &n, &view(10), &proven),
        Verdict::Refuse {
            code: RefuseCode::StaleEpoch,
            stale: true,
            ..
        }
    ));
    // Proven lower epoch: attach, starting over.
    let proven = signed(SECRET, SLAVE_LABEL, &n, proof_frame(9, 2));
    assert!(matches!(
        judge_proof(&a, &n, &view(10), &proven),
        Verdict::Attach { resume: false, .. }
    ));
    // A second slave or another shard count: refused with a signed reason.
    let proven = signed(SECRET, SLAVE_LABEL, &n, proof_frame(10, 3));
    assert!(matches!(
        judge_proof(&a, &n, &view(10), &proven),
        Verdict::Refuse {
            code: RefuseCode::ShardMismatch,
            stale: false,
            ..
        }
    ));
    let proven = signed(SECRET, SLAVE_LABEL, &n, proof_frame(10, 2));
    let mut busy = view(10);
    busy.current_slave = Some("127.0.0.1:1".into());
    assert!(matches!(
        judge_proof(&a, &n, &busy, &proven),
        Verdict::Refuse {
            code: RefuseCode::SecondSlave,
            ..
        }
    ));
}

fn welcome(epoch: u64, shards: usize) -> Frame {
    Frame {
        epoch,
        body: Body::Welcome {
            proof: [0; PROOF_BYTES],
            master_node_id: "9".into(),
            oldest: vec![4096; shards],
            history: vec![(epoch, vec![4096; shards])],
        },
    }
}

#[test]
fn the_slave_believes_only_a_proven_master() {
    let key = Key::new(SECRET);
    let n = nonces("");
    let good = signed(SECRET, MASTER_LABEL, &n, welcome(20, 2));
    assert_eq!(judge_answer(&key, &n, 10, 2, &good), Answer::Welcomed);
    // Unsigned, signed with another key, reflected (slave label), replayed.
    let unsigned = welcome(20, 2);
    assert!(matches!(
        judge_answer(&key, &n, 10, 2, &unsigned),
        Answer::Bogus(_)
    ));
    let reflected = signed(SECRET, SLAVE_LABEL, &n, welcome(20, 2));
    assert!(matches!(
        judge_answer(&key, &n, 10, 2, &reflected),
        Answer::Bogus(_)
    ));
    let mut other = n.clone();
    other.slave[3] ^= 0x40;
    assert!(matches!(
        judge_answer(&key, &other, 10, 2, &good),
        Answer::Bogus(_)
    ));
    // Proven, but below our epoch: never followed (no journal reset).
    let lower = signed(SECRET, MASTER_LABEL, &n, welcome(9, 2));
    assert!(matches!(
        judge_answer(&key, &n, 10, 2, &lower),
        Answer::Bogus(_)
    ));
    // Refusals: believed only when proven.
    let refuse = Frame {
        epoch: 3,
        body: Body::Refuse {
            proof: [0; PROOF_BYTES],
            code: RefuseCode::StaleEpoch,
            reason: "r".into(),
        },
    };
    assert!(matches!(
        judge_answer(&key, &n, 10, 2, &refuse),
        Answer::RefusedUnauthenticated { .. }
    ));
    let proven = signed(SECRET, MASTER_LABEL, &n, refuse);
    assert!(matches!(
        judge_answer(&key, &n, 10, 2, &proven),
        Answer::Refused { epoch: 3, .. }
    ));
}

/// A frame whose proof field, if any, is correctly signed for `n` with `label`.
fn sign_if_possible(f: Frame, label: &[u8], n: &Nonces) -> Frame {
    signed(SECRET, label, n, f)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    /// Any frame (any kind, any epoch, any field, any proof bytes) that follows the
    /// Challenge without the secret's proof is `Unauthenticated`, for every acceptor
    /// and every state of the master; a correctly signed one may attach or be refused
    /// but only stale on a higher epoch.
    #[test]
    fn hostile_proofs_change_nothing(
        f in arb_frame(),
        ours in any::<u64>(),
        shards in 0usize..4,
        busy in any::<bool>(),
        user in prop_oneof![Just(String::new()), Just("repl".to_string()), Just("app".to_string())],
    ) {
        let n = nonces(&user);
        let v = MasterView {
            epoch: ours,
            shards,
            current_slave: busy.then(|| "127.0.0.1:1".to_string()),
        };
        for acceptor in [secret_acceptor(), plugin_acceptor(), Acceptor::default()] {
            let verdict = judge_proof(&acceptor, &n, &v, &f);
            prop_assert!(matches!(verdict, Verdict::Unauthenticated(_)), "{verdict:?}");
            // The same frame signed with the wrong label (reflection) or no key.
            let reflected = signed(SECRET, MASTER_LABEL, &n, f.clone());
            let verdict = judge_proof(&acceptor, &n, &v, &reflected);
            prop_assert!(matches!(verdict, Verdict::Unauthenticated(_)), "{verdict:?}");
        }
        // Properly signed: whatever its claims, only a proven higher epoch is stale.
        let proven = sign_if_possible(f.clone(), SLAVE_LABEL, &n);
        match judge_proof(&secret_acceptor(), &n, &v, &proven) {
            Verdict::Refuse { stale: true, .. } => prop_assert!(proven.epoch > ours),
            Verdict::Attach { positions, .. } => {
                prop_assert!(proven.epoch <= ours && !busy);
                prop_assert_eq!(positions.len(), shards);
            }
            Verdict::Refuse { .. } => {}
            Verdict::Unauthenticated(_) => {
                // Only a frame of another kind (the secret is every user's key here).
                prop_assert!(!matches!(proven.body, Body::Proof { .. }), "a proven Proof refused");
            }
        }
    }

    /// Any answer a peer can send to a connecting node is believed only when proven.
    #[test]
    fn hostile_answers_are_not_believed(
        f in arb_frame(),
        ours in any::<u64>(),
        shards in 0usize..4,
    ) {
        let key = Key::new(SECRET);
        let n = nonces("");
        match judge_answer(&key, &n, ours, shards, &f) {
            Answer::Welcomed | Answer::Refused { .. } => {
                prop_assert!(false, "believed an unproven {:?}", f)
            }
            Answer::RefusedUnauthenticated { .. } | Answer::Bogus(_) => {}
        }
        let proven = sign_if_possible(f, MASTER_LABEL, &n);
        if let Answer::Welcomed = judge_answer(&key, &n, ours, shards, &proven) {
            prop_assert!(proven.epoch >= ours);
        }
    }

    /// Arbitrary bytes from a connection: decoded (or refused) without panicking, and
    /// whatever frame comes out, neither role's decisions act on it.
    #[test]
    fn arbitrary_bytes_never_panic_nor_authenticate(
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
        ours in any::<u64>(),
    ) {
        let mut buf = BytesMut::from(&bytes[..]);
        let mut d = Decoder::new(64 << 10);
        let key = Key::new(SECRET);
        let n = nonces("");
        while let Ok(Some(f)) = d.decode(&mut buf) {
            let _ = on_hello(&secret_acceptor(), &f);
            let _ = on_hello(&Acceptor::default(), &f);
            prop_assert!(matches!(
                judge_proof(&secret_acceptor(), &n, &view(ours), &f),
                Verdict::Unauthenticated(_)
            ));
            prop_assert!(
                !matches!(
                    judge_answer(&key, &n, ours, 2, &f),
                    Answer::Welcomed | Answer::Refused { .. }
                ),
                "believed an unproven answer"
            );
        }
    }
}
