//! A shard that panics stops the node (issue 14): the process exits non-zero with the
//! panic in its log instead of serving on with a dead shard; in a pair the slave takes
//! over with every confirmed message. The panic comes from the `fault-injection`
//! feature's hook (src/fault.rs), which tools/test compiles in for the tests.

#![cfg(feature = "fault-injection")]

mod support;

use std::time::Duration;

use support::pair::{test_slot, NodeOpts, Pair, PairOpts};
use support::{Broker, BrokerOpts};

const ARM: &str = "TANDEM_FAULT_PANIC_ON_DESTINATION";
const BOOM: &str = "/queue/boom";
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends `n` confirmed messages to /queue/kept, then one to the armed destination.
fn send_kept_then_boom(c: &mut support::Stomp, n: usize) {
    for i in 0..n {
        c.send_receipted(
            "/queue/kept",
            format!("kept {i}").as_bytes(),
            &format!("k{i}"),
        );
    }
    c.send_frame(
        "SEND",
        &[("destination", BOOM), ("receipt", "boom")],
        b"boom",
    );
}

#[test]
fn a_panicking_shard_stops_a_standalone_broker_and_nothing_confirmed_is_lost() {
    let mut broker = Broker::start(BrokerOpts {
        env: vec![(ARM.into(), BOOM.into())],
        ..BrokerOpts::default()
    });
    send_kept_then_boom(&mut broker.client(), 20);
    let exited = support::poll_until(EXIT_TIMEOUT, || broker.has_exited());
    assert!(
        exited,
        "still running after a shard panicked:\n{}",
        broker.log()
    );
    let log = broker.log();
    assert!(
        log.contains("fault injection: a send to /queue/boom panics its shard")
            && log.contains("stopping the node"),
        "{log}"
    );

    broker.opts.env.clear();
    broker.restart();
    let mut c = broker.client();
    c.subscribe("s", "/queue/kept", "auto");
    for i in 0..20 {
        assert_eq!(c.expect_message().body_str(), format!("kept {i}"));
    }
}

#[test]
fn a_panicking_master_shard_hands_over_to_the_slave() {
    let _slot = test_slot();
    let mut master = NodeOpts::named("master");
    master.env = vec![(ARM.into(), BOOM.into())];
    let pair = Pair::start(PairOpts {
        master,
        ..PairOpts::default()
    });
    send_kept_then_boom(&mut pair.master.client(), 50);
    let status = pair.master.wait_exit(EXIT_TIMEOUT);
    assert!(!status.success(), "the master exited with {status}");
    assert!(
        pair.master.log().contains("stopping the node"),
        "{}",
        pair.master.log_tail(40)
    );
    pair.slave.wait_serving(EXIT_TIMEOUT);
    let mut c = pair.slave.client();
    c.subscribe("s", "/queue/kept", "auto");
    for i in 0..50 {
        assert_eq!(c.expect_message().body_str(), format!("kept {i}"));
    }
}
