//! The etcd witness (`tandem::witness`) against a real etcd (`tests/support/etcd.rs`):
//! the client's lease and key operations, the pair's campaign / update / resign
//! transactions, and the agent thread's events when the holder stops, the lease is
//! revoked behind its back, or etcd dies or hangs.
//!
//! etcd runs with 1 s leases (its minimum with the tightened Raft timing in the
//! support module). No timing is asserted: waits are bounded polls, and where the
//! agent must report in time the test checks the order of its events.

mod support;

use std::time::{Duration, Instant};

use support::etcd::EtcdServer;
use support::poll_until;
use tandem::witness::{
    parse_witness, Campaign, Etcd, EtcdTimeouts, Expect, Keys, LeaseId, Record, WitnessAgent,
    WitnessError, WitnessEvent, WitnessHandle, WitnessRequest,
};

/// The lease TTL the tests ask for (etcd's minimum here).
const TTL_SECS: u64 = 1;
/// Bound on any one event's arrival (generous: the machine may be busy).
const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

fn rec(epoch: u64, node: u16, in_sync: Option<u16>) -> Record {
    Record {
        epoch,
        node,
        in_sync,
    }
}

fn client(etcd: &EtcdServer) -> Etcd {
    Etcd::new(vec![etcd.endpoint()], EtcdTimeouts::default()).expect("client")
}

type Events = async_channel::Receiver<WitnessEvent>;

fn agent(etcd: &EtcdServer, prefix: &str) -> (WitnessHandle, Events) {
    agent_with_ttl(etcd, prefix, TTL_SECS)
}

fn agent_with_ttl(etcd: &EtcdServer, prefix: &str, ttl_secs: u64) -> (WitnessHandle, Events) {
    WitnessAgent::spawn(vec![etcd.endpoint()], prefix, ttl_secs).expect("spawn agent")
}

/// The next event, waiting at most [`EVENT_TIMEOUT`].
fn next_event(events: &Events) -> WitnessEvent {
    let mut got = None;
    poll_until(EVENT_TIMEOUT, || {
        got = events.try_recv().ok();
        got.is_some()
    });
    got.unwrap_or_else(|| panic!("no witness event within {EVENT_TIMEOUT:?}"))
}

/// The next event that is not a `Renewed`.
fn next_change(events: &Events) -> WitnessEvent {
    loop {
        match next_event(events) {
            WitnessEvent::Renewed { .. } => continue,
            e => return e,
        }
    }
}

/// Campaigns through `handle` and returns the answer (`Won`, `Lost`, ...).
fn campaign(
    handle: &WitnessHandle,
    events: &Events,
    record: Record,
    expect: Expect,
) -> WitnessEvent {
    handle
        .send(WitnessRequest::Campaign { record, expect })
        .expect("queue campaign");
    next_change(events)
}

// ---------------------------------------------------------------------------------
// URL and client

#[test]
fn witness_url_errors_say_what_is_wrong() {
    assert_eq!(
        parse_witness("etcd://127.0.0.1:2379,etcd-2:2379").unwrap(),
        ["127.0.0.1:2379", "etcd-2:2379"]
    );
    for (url, says) in [
        ("http://h:2379", "etcd://host:port"),
        ("etcd://", "no endpoint"),
        ("etcd://h", "port is required"),
        ("etcd://h:99999", "1..=65535"),
        ("etcd://h:2379/v3", "not a number"),
        ("etcd://h:2379,h:2379", "listed twice"),
    ] {
        let e = parse_witness(url).expect_err(url);
        assert!(
            matches!(e, WitnessError::BadUrl { .. }) && e.to_string().contains(says),
            "{url}: {e}"
        );
    }
    assert!(matches!(
        Etcd::new(vec![], EtcdTimeouts::default()),
        Err(WitnessError::BadUrl { .. })
    ));
}

#[test]
fn client_leases_and_keys_against_real_etcd() {
    let etcd = EtcdServer::start();
    // A dead endpoint first: the client moves on to the live one.
    let dead = format!("127.0.0.1:{}", support::free_port());
    let c = Etcd::new(vec![dead.clone(), etcd.endpoint()], EtcdTimeouts::default()).unwrap();

    assert_eq!(c.get(b"/t/k").unwrap(), None);
    let lease = c.grant(TTL_SECS).unwrap();
    assert!(lease.ttl >= Duration::from_secs(TTL_SECS), "{lease:?}");
    assert!(c.keep_alive_once(lease.id).unwrap().is_some());

    c.put(b"/t/k", b"v1", Some(lease.id)).unwrap();
    c.put(b"/t/plain", b"", None).unwrap();
    let kv = c.get(b"/t/k").unwrap().expect("key");
    assert_eq!(
        (kv.value.as_slice(), kv.lease),
        (&b"v1"[..], Some(lease.id))
    );
    assert!(kv.mod_revision >= kv.create_revision && kv.create_revision > 0);
    let plain = c.get(b"/t/plain").unwrap().expect("key");
    assert_eq!((plain.value.len(), plain.lease), (0, None));

    // Revoking deletes the attached key; the lease is then unknown, and revoking it
    // again is not an error.
    c.revoke(lease.id).unwrap();
    assert_eq!(c.get(b"/t/k").unwrap(), None);
    assert_eq!(c.keep_alive_once(lease.id).unwrap(), None);
    c.revoke(lease.id).unwrap();

    // An error etcd would repeat on any member is not "unreachable".
    match c.grant(100_000_000_000) {
        Err(WitnessError::Refused { code: 11, .. }) => {}
        other => panic!("grant with a huge TTL: {other:?}"),
    }
    // Only dead endpoints: Unreachable, naming them.
    let none = Etcd::new(vec![dead.clone()], EtcdTimeouts::default()).unwrap();
    match none.get(b"/t/k") {
        Err(WitnessError::Unreachable(why)) => assert!(why.contains(&dead), "{why}"),
        other => panic!("dead endpoint: {other:?}"),
    }
}

#[test]
fn a_member_that_hangs_costs_one_timeout_then_the_next_answers() {
    let etcd = EtcdServer::start();
    // Accepts connections (the kernel does) and never answers, like a stopped member.
    let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hung_endpoint = hung.local_addr().unwrap().to_string();
    let timeouts = EtcdTimeouts {
        connect: Duration::from_millis(200),
        request: Duration::from_millis(300),
    };
    let c = Etcd::new(vec![hung_endpoint, etcd.endpoint()], timeouts).unwrap();
    c.put(b"/t/k", b"v", None).unwrap();
    assert_eq!(c.get(b"/t/k").unwrap().expect("key").value, b"v");
    drop(hung);
}

#[test]
fn a_key_that_is_not_a_record_is_an_error() {
    let etcd = EtcdServer::start();
    let c = client(&etcd);
    c.put(b"/p/state", b"epoch=1;node=1", None).unwrap();
    match c.campaign(&Keys::new("/p"), rec(2, 1, None), Expect::Absent, TTL_SECS) {
        Err(WitnessError::BadRecord { value, .. }) => assert_eq!(value, "epoch=1;node=1"),
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------------
// Campaign, update, resign

#[test]
fn two_campaigners_exactly_one_wins_and_the_other_sees_the_holder() {
    let etcd = EtcdServer::start();
    let (a, a_events) = agent(&etcd, "/pair");
    let (b, b_events) = agent(&etcd, "/pair");
    let (ra, rb) = (rec(1, 1, None), rec(1, 2, None));
    // Both queued before either answer is read: the two campaigns race in etcd.
    a.send(WitnessRequest::Campaign {
        record: ra,
        expect: Expect::Any,
    })
    .unwrap();
    b.send(WitnessRequest::Campaign {
        record: rb,
        expect: Expect::Any,
    })
    .unwrap();
    let (ea, eb) = (next_change(&a_events), next_change(&b_events));
    let (winner, lost) = match (&ea, &eb) {
        (WitnessEvent::Won { .. }, lost @ WitnessEvent::Lost { .. }) => (ra, lost),
        (lost @ WitnessEvent::Lost { .. }, WitnessEvent::Won { .. }) => (rb, lost),
        _ => panic!("expected one Won and one Lost: {ea:?}, {eb:?}"),
    };
    assert_eq!(
        lost,
        &WitnessEvent::Lost {
            holder: Some(winner),
            state: Some(winner)
        }
    );
    let kv = client(&etcd)
        .get(b"/pair/lease")
        .unwrap()
        .expect("lease key");
    assert_eq!(Record::decode(&kv.value).unwrap(), winner);
}

#[test]
fn the_holder_keeps_its_lease_across_several_ttls() {
    // 2 s here, not 1: this test fails if a busy machine delays one renewal by more
    // than two thirds of the TTL, so give it the slack of etcd's default minimum.
    const HOLD_TTL_SECS: u64 = 2;
    let etcd = EtcdServer::start();
    let (a, a_events) = agent_with_ttl(&etcd, "/pair", HOLD_TTL_SECS);
    let ra = rec(3, 1, Some(2));
    let WitnessEvent::Won { mut valid_until } = campaign(&a, &a_events, ra, Expect::Absent) else {
        panic!("the only campaigner must win");
    };
    // Hold for 2.5 TTLs: renewals only, each extending valid_until (so at least two).
    let mut renewals = 0;
    let hold_until = Instant::now() + Duration::from_millis(2500 * HOLD_TTL_SECS);
    while Instant::now() < hold_until {
        match next_event(&a_events) {
            WitnessEvent::Renewed { valid_until: v } => {
                assert!(v > valid_until, "valid_until went back");
                valid_until = v;
                renewals += 1;
            }
            e => panic!("while holding: {e:?}"),
        }
    }
    assert!(renewals >= 2, "held 2.5 TTLs with {renewals} renewals");
    // Still the holder: a rival loses and sees us.
    let c = client(&etcd);
    match c.campaign(&Keys::new("/pair"), rec(4, 2, None), Expect::Any, TTL_SECS) {
        Ok(Campaign::Lost { holder, state }) => {
            assert_eq!((holder, state), (Some(ra), Some(ra)));
        }
        other => panic!("rival campaign: {other:?}"),
    }
}

#[test]
fn when_the_holder_stops_the_other_wins_expecting_its_last_state() {
    let etcd = EtcdServer::start();
    let (a, a_events) = agent(&etcd, "/pair");
    let ra = rec(5, 1, Some(2));
    assert!(matches!(
        campaign(&a, &a_events, ra, Expect::Any),
        WitnessEvent::Won { .. }
    ));
    a.send(WitnessRequest::Update {
        record: rec(5, 1, None),
    })
    .unwrap();
    let ra = rec(5, 1, None);
    assert_eq!(
        next_change(&a_events),
        WitnessEvent::Updated {
            ok: true,
            record: ra
        }
    );
    // The holder stops renewing (like a dead process): no revoke, the lease runs out.
    drop(a);

    let (b, b_events) = agent(&etcd, "/pair");
    let rb = rec(6, 2, None);
    let mut lost_while_held = 0;
    let won = poll_until(EVENT_TIMEOUT, || {
        match campaign(&b, &b_events, rb, Expect::Is(ra)) {
            WitnessEvent::Won { .. } => true,
            WitnessEvent::Lost { holder, state } => {
                // Until the lease expires, b sees a as the holder of record ra.
                assert_eq!((holder, state), (Some(ra), Some(ra)));
                lost_while_held += 1;
                false
            }
            e => panic!("{e:?}"),
        }
    });
    assert!(won, "b never won after a stopped");
    eprintln!("b lost {lost_while_held} campaign(s) before a's lease expired");
    let c = client(&etcd);
    let state = c.get(b"/pair/state").unwrap().expect("state key");
    assert_eq!(Record::decode(&state.value).unwrap(), rb);
    drop(a_events);
}

#[test]
fn a_failed_state_precondition_loses() {
    let etcd = EtcdServer::start();
    let c = client(&etcd);
    let keys = Keys::new("/pair/");
    let r1 = rec(1, 1, None);
    // A fresh pair: Is(..) fails (no state), Absent wins.
    assert_eq!(
        c.campaign(&keys, r1, Expect::Is(r1), TTL_SECS).unwrap(),
        Campaign::Lost {
            holder: None,
            state: None
        }
    );
    let Campaign::Won { lease, .. } = c.campaign(&keys, r1, Expect::Absent, TTL_SECS).unwrap()
    else {
        panic!("fresh pair, Expect::Absent must win");
    };
    c.resign(lease).unwrap();
    assert_eq!(
        c.get(&keys.lease).unwrap(),
        None,
        "resign frees the lease key"
    );

    // Nobody holds it now, but the state is r1: Absent and Is(other) lose, and the
    // lost campaigns' leases are revoked (nothing is left holding).
    let r2 = rec(2, 2, None);
    for expect in [Expect::Absent, Expect::Is(rec(1, 1, Some(2)))] {
        assert_eq!(
            c.campaign(&keys, r2, expect, TTL_SECS).unwrap(),
            Campaign::Lost {
                holder: None,
                state: Some(r1)
            },
            "{expect:?}"
        );
        assert_eq!(c.get(&keys.lease).unwrap(), None);
    }
    assert!(matches!(
        c.campaign(&keys, r2, Expect::Is(r1), TTL_SECS).unwrap(),
        Campaign::Won { .. }
    ));
}

#[test]
fn written_by_wins_only_over_the_record_that_node_wrote_at_that_epoch() {
    // A restarted master: whatever its record says of the slave, it may serve again
    // only if nobody wrote the state since it did.
    let etcd = EtcdServer::start();
    let c = client(&etcd);
    let keys = Keys::new("/restart/");
    let mine = rec(0x1_0001, 1, Some(2));
    let Campaign::Won { lease, .. } = c.campaign(&keys, mine, Expect::Absent, TTL_SECS).unwrap()
    else {
        panic!("fresh pair, Expect::Absent must win");
    };
    c.resign(lease).unwrap();
    let again = rec(0x2_0001, 1, None);
    // Another node's epoch, or another node: lost, and the state is reported.
    for expect in [
        Expect::WrittenBy {
            epoch: 0x1_0002,
            node: 1,
        },
        Expect::WrittenBy {
            epoch: 0x1_0001,
            node: 2,
        },
    ] {
        assert_eq!(
            c.campaign(&keys, again, expect, TTL_SECS).unwrap(),
            Campaign::Lost {
                holder: None,
                state: Some(mine)
            },
            "{expect:?}"
        );
        assert_eq!(c.get(&keys.lease).unwrap(), None, "no lease left held");
    }
    // Its own record (in_sync whatever it was): won, and the state is the new claim.
    let Campaign::Won { lease, .. } = c
        .campaign(
            &keys,
            again,
            Expect::WrittenBy {
                epoch: 0x1_0001,
                node: 1,
            },
            TTL_SECS,
        )
        .unwrap()
    else {
        panic!("its own record must let it win");
    };
    assert_eq!(
        Record::decode(&c.get(&keys.state).unwrap().expect("state").value).unwrap(),
        again
    );
    c.resign(lease).unwrap();
}

#[test]
fn update_after_the_lease_expired_returns_false() {
    let etcd = EtcdServer::start();
    let c = client(&etcd);
    let keys = Keys::new("/pair");
    let r1 = rec(1, 1, None);
    let Campaign::Won { lease, .. } = c.campaign(&keys, r1, Expect::Any, TTL_SECS).unwrap() else {
        panic!("must win");
    };
    assert!(c.update(&keys, lease, rec(1, 1, Some(2))).unwrap());
    // No keepalive: etcd expires the lease and deletes the lease key.
    let gone = poll_until(EVENT_TIMEOUT, || c.get(&keys.lease).unwrap().is_none());
    assert!(gone, "lease key still there");
    assert!(!c.update(&keys, lease, rec(1, 1, None)).unwrap());
    // The state keeps the last successful update.
    let state = c.get(&keys.state).unwrap().expect("state");
    assert_eq!(Record::decode(&state.value).unwrap(), rec(1, 1, Some(2)));
    assert_eq!(state.lease, None);

    // The agent: Update without holding is answered ok: false.
    let (a, a_events) = agent(&etcd, "/pair");
    a.send(WitnessRequest::Update { record: r1 }).unwrap();
    assert_eq!(
        next_change(&a_events),
        WitnessEvent::Updated {
            ok: false,
            record: r1
        }
    );
}

#[test]
fn agent_resign_hands_over_at_once() {
    let etcd = EtcdServer::start();
    let (a, a_events) = agent(&etcd, "/pair");
    let ra = rec(1, 1, None);
    assert!(matches!(
        campaign(&a, &a_events, ra, Expect::Any),
        WitnessEvent::Won { .. }
    ));
    a.send(WitnessRequest::Resign).unwrap();
    // No event for a resign that worked; the key disappears with the lease.
    let c = client(&etcd);
    assert!(poll_until(EVENT_TIMEOUT, || c
        .get(b"/pair/lease")
        .unwrap()
        .is_none()));
    let (b, b_events) = agent(&etcd, "/pair");
    assert!(matches!(
        campaign(&b, &b_events, rec(2, 2, None), Expect::Is(ra)),
        WitnessEvent::Won { .. }
    ));
    // a is idle again: an update is refused.
    a.send(WitnessRequest::Update { record: ra }).unwrap();
    assert_eq!(
        next_change(&a_events),
        WitnessEvent::Updated {
            ok: false,
            record: ra
        }
    );
}

#[test]
fn a_lease_revoked_behind_the_agents_back_is_reported_lost() {
    let etcd = EtcdServer::start();
    let (a, a_events) = agent(&etcd, "/pair");
    assert!(matches!(
        campaign(&a, &a_events, rec(1, 1, None), Expect::Any),
        WitnessEvent::Won { .. }
    ));
    let c = client(&etcd);
    let kv = c.get(b"/pair/lease").unwrap().expect("lease key");
    let lease: LeaseId = kv.lease.expect("attached");
    c.revoke(lease).unwrap();
    // The next renewal finds the lease gone.
    match next_change(&a_events) {
        WitnessEvent::LeaseLost { why } => assert!(why.contains("no longer knows"), "{why}"),
        e => panic!("{e:?}"),
    }
}

// ---------------------------------------------------------------------------------
// etcd failing under a holder

/// After etcd stopped answering: the holder's events are renewals sent before the
/// failure, then `Unreachable` (a renewal attempt takes at most a third of the TTL, so
/// the first failure is known before `valid_until`), then `LeaseLost` (never a renewal
/// after a failure, and nothing more while idle). Returns the last `valid_until`.
fn assert_reports_loss(events: &Events, mut valid_until: Instant) -> Instant {
    let mut seen: Vec<&'static str> = Vec::new();
    loop {
        let e = next_event(events);
        match e {
            WitnessEvent::Renewed { valid_until: v } => {
                assert!(
                    !seen.contains(&"Unreachable"),
                    "renewed after a failure: {seen:?}"
                );
                valid_until = v;
                seen.push("Renewed");
            }
            WitnessEvent::Unreachable { .. } => seen.push("Unreachable"),
            WitnessEvent::LeaseLost { why } => {
                seen.push("LeaseLost");
                let late = Instant::now().saturating_duration_since(valid_until);
                eprintln!(
                    "events {seen:?}; LeaseLost ({why}) seen {late:?} after valid_until \
                     (this test polls at most every 100 ms)"
                );
                assert!(seen.contains(&"Unreachable"), "{seen:?}");
                break;
            }
            e => panic!("unexpected {e:?} after {seen:?}"),
        }
    }
    // Idle now: no renewals, nothing more by itself.
    assert!(events.try_recv().is_err());
    valid_until
}

#[test]
fn etcd_killed_under_the_holder_is_reported_before_valid_until() {
    let mut etcd = EtcdServer::start();
    let (a, a_events) = agent(&etcd, "/pair");
    let ra = rec(1, 1, None);
    let WitnessEvent::Won { valid_until } = campaign(&a, &a_events, ra, Expect::Any) else {
        panic!("must win");
    };
    etcd.kill9();
    assert_reports_loss(&a_events, valid_until);
    // While etcd is down a campaign is Unreachable.
    assert!(matches!(
        campaign(&a, &a_events, ra, Expect::Is(ra)),
        WitnessEvent::Unreachable { .. }
    ));
    // Back up (same data): once the old lease is gone, a wins again from its state.
    etcd.restart();
    let won = poll_until(EVENT_TIMEOUT, || {
        match campaign(&a, &a_events, rec(2, 1, None), Expect::Is(ra)) {
            WitnessEvent::Won { .. } => true,
            WitnessEvent::Lost { .. } | WitnessEvent::Unreachable { .. } => false,
            e => panic!("{e:?}"),
        }
    });
    assert!(won, "no win after etcd restarted");
}

#[test]
fn etcd_hanging_under_the_holder_is_reported_before_valid_until() {
    let etcd = EtcdServer::start();
    let (a, a_events) = agent(&etcd, "/pair");
    let WitnessEvent::Won { valid_until } = campaign(&a, &a_events, rec(1, 1, None), Expect::Any)
    else {
        panic!("must win");
    };
    // SIGSTOP: connections are accepted by the kernel but never answered, so only the
    // agent's deadline (valid_until) ends its requests.
    etcd.pause();
    assert_reports_loss(&a_events, valid_until);
    etcd.resume();
}
