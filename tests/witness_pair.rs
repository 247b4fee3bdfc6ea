//! A master/slave pair with an etcd witness (`<tandem witness witnessKey
//! witnessLease>`, docs/REPLICATION.md, `src/replication/machine/`): real `tandem`
//! processes, a real etcd started by each test (`support/etcd.rs`), and `kill -9` or
//! iptables cuts (`support/partition.rs`) rather than method calls.
//!
//! * S1, S3, G7 with a witness, through the real ActiveMQ JMS client (the cases of
//!   `support/jms_cases.rs`): the slave takes over only once the dead master's lease
//!   ran out, so a takeover takes about `witnessLease` (printed, not asserted).
//! * The witness killed while both nodes live changes nothing: the master confirms on
//!   its in-sync slave's acknowledgements, not on etcd.
//! * A master cut off from its slave and from the witness stops confirming, the slave
//!   takes over, and after the heal the stale master steps down (re-executing itself)
//!   and rejoins as slave.
//! * Only the link cut (both nodes reach the witness): the master records that no
//!   slave is in sync before it confirms alone, so the slave cannot win the lease: one
//!   node confirms throughout, and the slave reattaches after the heal.
//!
//! The STOMP tests use the failover producer of `support/safety.rs`, which logs every
//! receipt with the node that sent it and when. Assertions are on order and content
//! ("the master confirms nothing after the slave's first confirmation", "every
//! confirmed message is consumed exactly once"); times are printed. Every test has its
//! own etcd and its own `witnessKey`.
//!
//! Run (as root; the namespace tests need CAP_SYS_ADMIN, the JMS ones Java):
//! `cargo test --test witness_pair -- --nocapture`.

mod support;

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use support::etcd::EtcdServer;
use support::jms::JmsPairTarget;
use support::jms_cases as cases;
use support::pair::{
    assert_took_over, epoch, peer, role, scenario_delay, takeover_time, test_slot, Node, Pair,
    PairOpts, TestSlot, Witness, SYNC_TIMEOUT,
};
use support::partition::Net;
use support::poll_until;
use support::safety::{
    assert_delivered_once, confirmed_under_a_newer_master, in_sync_as, seqs_of, Sample, Traffic,
};
use tandem::replication::machine::epoch_node;
use tandem::witness::Record;

/// `witnessLease` of every test pair, in seconds (the broker's default).
const LEASE_SECS: u64 = 2;
const LEASE: Duration = Duration::from_secs(LEASE_SECS);
/// Bound on the witness records reaching an expected state.
const RECORD_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on a producer reaching a count of confirmations (liveness only).
const PROGRESS_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------
// Helpers

/// Waits until the pair's records in etcd satisfy `pred` (lease key, state key);
/// returns them. Panics with what it last read.
fn wait_records(
    etcd: &EtcdServer,
    w: &Witness,
    what: &str,
    pred: impl Fn(Option<Record>, Option<Record>) -> bool,
) -> (Option<Record>, Option<Record>) {
    let mut last = Err("never read".to_string());
    let ok = poll_until(RECORD_TIMEOUT, || {
        last = etcd.records(&w.key);
        matches!(&last, Ok((l, s)) if pred(*l, *s))
    });
    assert!(ok, "witness records never showed {what}: {last:?}");
    last.unwrap()
}

/// The witness names `master` serving its epoch with some other node in sync; returns
/// the state record.
fn assert_witness_in_sync(etcd: &EtcdServer, w: &Witness, master: &Node) -> Record {
    let e = epoch(&master.status()).expect("master epoch");
    let (lease, state) = wait_records(etcd, w, "the master with a slave in sync", |l, s| {
        s.is_some_and(|s| s.epoch == e && s.in_sync.is_some()) && l.is_some()
    });
    let state = state.unwrap();
    assert_eq!(state.node, epoch_node(e), "{state:?}");
    assert_ne!(state.in_sync, Some(state.node), "{state:?}");
    println!("witness {}: lease {lease:?}, state {state:?}", w.key);
    state
}

/// `failover:(tcp://master,tcp://slave)` for the JMS client, reconnecting quickly.
fn jms_failover_url(pair: &Pair) -> String {
    format!(
        "failover:(tcp://{},tcp://{})?randomize=false&initialReconnectDelay=10&\
         maxReconnectDelay=200",
        pair.master.tcp_addr(),
        pair.slave.tcp_addr()
    )
}

// ---------------------------------------------------------------------------------
// S1, S3, G7 with a witness: the real JMS client

/// A pair on loopback with its own etcd; the JMS failover cases run against it. Holds
/// a pair-test slot while it lives.
struct WitnessPair {
    pair: Pair,
    etcd: EtcdServer,
    witness: Witness,
    login: Option<(String, String)>,
    /// The slave's epoch before the kill (the master's).
    epoch0: u64,
    /// Measured by `kill_master`.
    takeover: Mutex<Option<Duration>>,
    _slot: TestSlot,
}

impl WitnessPair {
    fn start(name: &str, opts: PairOpts, login: Option<(&str, &str)>) -> WitnessPair {
        let slot = test_slot();
        let etcd = EtcdServer::start();
        let witness = Witness::for_test(&etcd.endpoint(), name).lease(LEASE_SECS);
        let pair = Pair::start(opts.with_witness(&witness));
        assert_witness_in_sync(&etcd, &witness, &pair.master);
        let epoch0 = epoch(&pair.slave.status()).expect("slave epoch");
        WitnessPair {
            pair,
            etcd,
            witness,
            login: login.map(|(u, p)| (u.to_string(), p.to_string())),
            epoch0,
            takeover: Mutex::new(None),
            _slot: slot,
        }
    }

    /// After the case: the slave took over once, the witness names it (alone), and
    /// the takeover time is printed next to the lease.
    fn check_takeover(&self, case: &str) {
        let s = assert_took_over(&self.pair.slave, self.epoch0, Some(1));
        let e = epoch(&s).unwrap();
        let (lease, state) = wait_records(&self.etcd, &self.witness, "the new master", |l, s| {
            s.is_some_and(|s| s.epoch == e) && l.is_some()
        });
        let state = state.unwrap();
        assert_eq!(state.node, epoch_node(e), "{state:?}");
        assert_eq!(state.in_sync, None, "{state:?}");
        let took = self
            .takeover
            .lock()
            .unwrap()
            .expect("the master was killed");
        println!(
            "{case} with a witness: takeover took {} ms (witnessLease {} ms, {:+} ms beyond \
             it); witness after: lease {lease:?}, state {state:?}",
            took.as_millis(),
            LEASE.as_millis(),
            took.as_millis() as i64 - LEASE.as_millis() as i64
        );
    }
}

impl JmsPairTarget for WitnessPair {
    fn failover_url(&self) -> String {
        jms_failover_url(&self.pair)
    }

    /// `kill -9`, then waits until the slave answers a CONNECT (the JMS client
    /// reconnects by itself meanwhile).
    fn kill_master(&self) {
        let took = takeover_time(&self.pair.master, &self.pair.slave);
        *self.takeover.lock().unwrap() = Some(took);
    }

    fn login(&self) -> Option<(String, String)> {
        self.login.clone()
    }
}

/// S1 with a witness: 500 persistent messages through the JMS failover URL, the master
/// `kill -9`ed mid-stream; the slave takes over once the dead master's lease has run
/// out, and all 500 are consumed from it, in order, bodies exact, once.
#[test]
fn s1_witness_queue_failover_jms() {
    let p = WitnessPair::start("s1", PairOpts::default(), None);
    cases::queue_failover(&p);
    p.check_takeover("S1");
}

/// S3 with a witness: S1 with the slave configured through `<masterConnector
/// userName password>` and clients logging in.
#[test]
fn s3_witness_queue_failover_with_master_connector_credentials_jms() {
    let users = [("admin", "admin-pw"), ("app", "app-pw")];
    let opts = PairOpts::with_auth(&users, "admin", "admin-pw");
    let p = WitnessPair::start("s3", opts, Some(("app", "app-pw")));
    cases::queue_failover(&p);
    p.check_takeover("S3");
}

/// G7 with a witness: two producers and two consumers through the JMS failover URL,
/// the master `kill -9`ed under the load: every confirmed message consumed, none
/// delivered twice without the redelivered flag.
#[test]
fn g7_witness_steady_load_across_master_kill_jms() {
    let p = WitnessPair::start("g7", PairOpts::default(), None);
    cases::load_failover(&p, cases::UnflaggedDuplicates::Forbidden);
    p.check_takeover("G7");
}

// ---------------------------------------------------------------------------------
// The witness dies while both nodes live

/// Samples of `k` (0: master, 1: slave) that answered and do not say `want`, and how
/// many did not answer, between `from` and `to`.
fn samples_off(
    samples: &[Vec<Sample>; 2],
    k: usize,
    from: Duration,
    to: Duration,
    want: impl Fn(&str, &str) -> bool,
) -> (Vec<String>, usize) {
    let mut off = Vec::new();
    let mut silent = 0;
    for (at, s) in samples[k].iter().filter(|(at, _)| *at >= from && *at < to) {
        match s {
            None => silent += 1,
            Some((r, e, p)) if !want(r, p) => {
                off.push(format!("{} ms {r} epoch {e:#x} peer {p}", at.as_millis()))
            }
            Some(_) => {}
        }
    }
    (off, silent)
}

/// Pair in sync under a steady producer; etcd is `kill -9`ed: the master keeps
/// confirming on its slave's acknowledgements (it lost its lease and cannot regain
/// it, which does not matter while a slave is in sync), and both nodes' /status stay
/// "in-sync". etcd is restarted: the master regains the lease. Then the master is
/// killed: the slave wins the lease and takes over (the witness works again), with
/// every confirmed message, once.
#[test]
fn witness_killed_while_both_live_changes_nothing() {
    let _slot = test_slot();
    let mut etcd = EtcdServer::start();
    let w = Witness::for_test(&etcd.endpoint(), "witness-killed").lease(LEASE_SECS);
    let pair = Pair::start(PairOpts::default().with_witness(&w));
    let (a, b) = (&pair.master, &pair.slave);
    let in_sync = assert_witness_in_sync(&etcd, &w, a);
    let epoch0 = epoch(&a.status()).unwrap();

    let traffic = Traffic::new([a, b]);
    let log = &traffic.log;
    let (mut killed_at, mut lost_at, mut restarted_at, mut regained_at) = (
        Duration::ZERO,
        Duration::ZERO,
        Duration::ZERO,
        Duration::ZERO,
    );
    let (mut master_killed_at, mut unconfirmed_before_kill) = (Duration::ZERO, 0);

    let ((), samples) = traffic.run(|run| {
        let progress = |since: Duration, n: usize, what: &str| {
            assert!(
                run.progressed(PROGRESS_TIMEOUT, |log| log.count_since(since) >= n),
                "{what}: only {} confirmations since {} ms\n{}",
                log.count_since(since),
                since.as_millis(),
                log.summary(&[("all", Duration::ZERO)])
            );
        };
        progress(Duration::ZERO, 200, "before the witness is killed");

        killed_at = traffic.elapsed();
        etcd.kill9();
        // The master notices: its renewals fail, its lease runs out.
        let noticed = poll_until(Duration::from_secs(30), || {
            a.log().contains("witness lease lost")
        });
        lost_at = traffic.elapsed();
        assert!(
            noticed,
            "the master never reported its lease lost; log tail:\n{}",
            a.log_tail(40)
        );
        progress(lost_at, 300, "with the witness dead and the lease lost");

        restarted_at = traffic.elapsed();
        etcd.restart();
        wait_records(&etcd, &w, "the master holding the lease again", |l, s| {
            l == Some(in_sync) && s == Some(in_sync)
        });
        regained_at = traffic.elapsed();
        progress(regained_at, 100, "after the witness came back");

        unconfirmed_before_kill = log.unconfirmed.lock().unwrap().len();
        master_killed_at = traffic.elapsed();
        takeover_time(a, b);
        progress(master_killed_at, 100, "after the takeover");
    });

    let phases = [
        ("before", Duration::ZERO),
        ("etcd killed", killed_at),
        ("lease lost", lost_at),
        ("etcd restarted", restarted_at),
        ("lease regained", regained_at),
        ("master killed", master_killed_at),
    ];
    let gap = |from, to| {
        log.max_gap(from, to)
            .map(|(g, at)| format!("{} ms (ending at {} ms)", g.as_millis(), at.as_millis()))
            .unwrap_or_else(|| "-".into())
    };
    traffic.report(
        &format!(
            "etcd killed at {} ms, master's lease lost at {} ms, etcd restarted at {} ms, \
             lease regained at {} ms, master killed at {} ms\n",
            killed_at.as_millis(),
            lost_at.as_millis(),
            restarted_at.as_millis(),
            regained_at.as_millis(),
            master_killed_at.as_millis()
        ),
        &phases,
        &samples,
    );
    println!(
        "max gap between receipts: before the kill of etcd {}; etcd dead {}; after its \
         restart {}",
        gap(Duration::ZERO, killed_at),
        gap(killed_at, restarted_at),
        gap(restarted_at, master_killed_at)
    );

    // Until the master was killed: every send confirmed, by the master, and both
    // nodes said in-sync whenever they answered.
    assert_eq!(
        unconfirmed_before_kill,
        0,
        "sends without a receipt while the master lived: {:?}",
        log.unconfirmed.lock().unwrap()
    );
    let by_slave_early: Vec<_> = log
        .by_node_since(1, Duration::ZERO)
        .into_iter()
        .filter(|c| c.at < master_killed_at)
        .collect();
    assert!(
        by_slave_early.is_empty(),
        "the slave confirmed while the master lived: {by_slave_early:?}"
    );
    let (m_off, m_silent) = samples_off(&samples, 0, Duration::ZERO, master_killed_at, |r, p| {
        r == "master" && p == "in-sync"
    });
    let (s_off, s_silent) = samples_off(&samples, 1, Duration::ZERO, master_killed_at, |r, p| {
        r == "slave" && p == "in-sync"
    });
    println!(
        "/status samples not answered within the sample timeout: master {m_silent}, slave \
         {s_silent}"
    );
    assert!(m_off.is_empty(), "master /status changed: {m_off:?}");
    assert!(s_off.is_empty(), "slave /status changed: {s_off:?}");
    assert!(
        log.after_another_node_confirmed().is_empty(),
        "two nodes confirmed"
    );

    // The witness works again: the slave took over through it.
    assert_took_over(b, epoch0, Some(1));
    assert_delivered_once(b, log);
}

// ---------------------------------------------------------------------------------
// Partitions (network namespaces: master, slave, witness; clients in the router)

/// A pair in namespaces "master" and "slave", etcd in "witness"; the test's clients run
/// in the router namespace (`body` runs there).
fn with_partitioned_pair(name: &str, body: impl FnOnce(&Net, &EtcdServer, &Witness, &Pair) + Send) {
    let _slot = test_slot();
    let net = Net::new(&["master", "slave", "witness"]);
    let etcd = EtcdServer::start_in(net.ns("witness"), IpAddr::V4(net.addr("witness")));
    let w = Witness::for_test(&etcd.endpoint(), name).lease(LEASE_SECS);
    net.run_in_router(|| {
        let pair = Pair::start(net.pair_opts().with_witness(&w));
        assert_witness_in_sync(&etcd, &w, &pair.master);
        body(&net, &etcd, &w, &pair);
    });
}

/// The master is cut from both its slave and the witness while a producer sends to it
/// (the producer still reaches it). It can no longer get acknowledgements, nor renew
/// its lease, nor record that it confirms alone: it confirms nothing more. The slave
/// wins the lease once it ran out and takes over. On the heal the stale master learns
/// of the newer epoch, steps down (re-executing itself: same pid) and rejoins as the
/// new master's in-sync slave; every confirmed message is on the new master, once.
#[test]
fn a_master_cut_from_slave_and_witness_stops_confirming_then_rejoins_as_slave() {
    with_partitioned_pair("cut-master", |net, etcd, w, pair| {
        let (a, b) = (&pair.master, &pair.slave);
        let pid0 = a.pid();
        let epoch0 = epoch(&a.status()).unwrap();
        let a_id = epoch_node(epoch0);
        let traffic = Traffic::new([a, b]);
        let log = &traffic.log;

        let ((cut_at, healed_at, converged_at), samples) = traffic.run(|run| {
            run.warm_up(PROGRESS_TIMEOUT);

            let cut_at = traffic.elapsed();
            net.cut_all("master");
            // The slave takes over and confirms; the producer keeps trying the master
            // first on every new session.
            assert!(
                run.progressed(PROGRESS_TIMEOUT, |log| {
                    log.by_node_since(1, cut_at).len() >= 100
                }),
                "the slave did not take over and confirm within {PROGRESS_TIMEOUT:?} of the \
                 cut:\n{}slave /status: {:?}; slave log tail:\n{}",
                log.summary(&[("before", Duration::ZERO), ("cut", cut_at)]),
                b.try_status(),
                b.log_tail(40)
            );
            // Let the producer try the stale master a few more times.
            scenario_delay(Duration::from_secs(2));

            let healed_at = traffic.elapsed();
            net.heal_all("master");
            let converged = poll_until(SYNC_TIMEOUT, || {
                b.assert_running();
                a.is_running() && in_sync_as(b, a)
            });
            let converged_at = traffic.elapsed();
            assert!(
                converged,
                "the stale master did not become the in-sync slave within {SYNC_TIMEOUT:?} of \
                 the heal: running {}, exit {:?}, /status {:?}; new master /status {:?}; stale \
                 master log tail:\n{}",
                a.is_running(),
                a.try_exit_status(),
                a.try_status_within(Duration::from_secs(2)),
                b.try_status_within(Duration::from_secs(2)),
                a.log_tail(60)
            );
            run.progressed(PROGRESS_TIMEOUT, |log| log.count_since(converged_at) >= 50);
            (cut_at, healed_at, converged_at)
        });

        traffic.report_cut(cut_at, healed_at, Some(converged_at), &samples);
        let ms_after_cut = |at: Duration| at.as_millis() as i64 - cut_at.as_millis() as i64;
        let master_after_cut = log.by_node_since(0, cut_at);
        let last_before_cut = log
            .all()
            .iter()
            .rev()
            .find(|c| c.node == 0 && c.at < cut_at)
            .map(|c| ms_after_cut(c.at));
        let slave_first = log.by_node_since(1, cut_at).first().copied();
        match master_after_cut.last() {
            Some(c) => println!(
                "master's last confirmation after the cut: seq {} at {:+} ms from the cut \
                 ({:+} ms from cut + witnessLease {} ms); {} confirmations after the cut",
                c.seq,
                ms_after_cut(c.at),
                ms_after_cut(c.at) - LEASE.as_millis() as i64,
                LEASE.as_millis(),
                master_after_cut.len()
            ),
            None => println!(
                "master confirmed nothing after the cut (its last: {last_before_cut:?} ms from \
                 the cut; witnessLease {} ms)",
                LEASE.as_millis()
            ),
        }
        println!(
            "slave's first confirmation as new master: {:?} ms from the cut",
            slave_first.map(|c| ms_after_cut(c.at))
        );

        // Order, not time: nothing by the master once the slave confirmed.
        let slave_first = slave_first.expect("the slave confirmed after the cut");
        let late: Vec<_> = log
            .all()
            .into_iter()
            .filter(|c| c.node == 0 && c.at >= slave_first.at)
            .collect();
        assert!(
            late.is_empty(),
            "the cut-off master confirmed {} messages after the slave's first confirmation \
             (seq {} at {} ms): {}",
            late.len(),
            slave_first.seq,
            slave_first.at.as_millis(),
            seqs_of(&late)
        );
        let replaced = confirmed_under_a_newer_master(log, &samples);
        assert!(
            replaced.is_empty(),
            "confirmations by a replaced master: {replaced:?}"
        );

        // The slave took over; the stale master re-executed itself (its lease lost with
        // no slave in sync, or on meeting the newer epoch) and now follows as slave.
        let sb = b.status();
        let epoch1 = epoch(&sb).unwrap();
        assert!(epoch1 > epoch0, "{sb}");
        assert_eq!(
            a.pid(),
            pid0,
            "the stale master was restarted, not re-executed"
        );
        let log_a = a.log();
        assert!(
            log_a.contains("starting again")
                && (log_a.contains("stepping down") || log_a.contains("lease is lost")),
            "the stale master's log does not say it stopped serving and started again:\n{}",
            a.log_tail(60)
        );
        let (_, state) = wait_records(
            etcd,
            w,
            "the new master with the old one in sync",
            |l, s| l.is_some() && s.is_some_and(|s| s.epoch == epoch1 && s.in_sync == Some(a_id)),
        );
        println!("witness after: state {state:?}");

        assert_delivered_once(b, log);
    });
}

/// F2 with a witness: only the link between master and slave is cut (at least 5 s);
/// both still reach the witness. The master records in the witness that no slave is in
/// sync before it confirms alone, so the slave's takeover campaign cannot win: the
/// master keeps serving, the slave never confirms anything, and after the heal the
/// slave reattaches and is in sync again; every confirmed message is on the master,
/// once.
#[test]
fn a_cut_link_with_witness_keeps_one_master_and_the_slave_reattaches() {
    const CUT: Duration = Duration::from_secs(5);
    with_partitioned_pair("cut-link", |net, etcd, w, pair| {
        let (a, b) = (&pair.master, &pair.slave);
        let epoch0 = epoch(&a.status()).unwrap();
        let a_id = epoch_node(epoch0);
        let traffic = Traffic::new([a, b]);
        let log = &traffic.log;

        let ((cut_at, healed_at, converged_at, during_cut), samples) = traffic.run(|run| {
            run.warm_up(PROGRESS_TIMEOUT);

            let cut_at = traffic.elapsed();
            net.cut("master", "slave");
            // The master records that it is alone, then confirms alone.
            let (_, state) = wait_records(etcd, w, "the master alone", |l, s| {
                l.is_some() && s.is_some_and(|s| s.epoch == epoch0 && s.in_sync.is_none())
            });
            let during_cut = state;
            println!(
                "{} ms after the cut the witness says {state:?}",
                (traffic.elapsed() - cut_at).as_millis()
            );
            scenario_delay(CUT);
            assert!(
                run.progressed(PROGRESS_TIMEOUT, |log| log.count_since(cut_at) >= 50),
                "the master did not confirm alone during the cut:\n{}master /status: {:?}; \
                 log tail:\n{}",
                log.summary(&[("before", Duration::ZERO), ("cut", cut_at)]),
                a.try_status(),
                a.log_tail(40)
            );

            let healed_at = traffic.elapsed();
            net.heal("master", "slave");
            let converged = poll_until(SYNC_TIMEOUT, || {
                a.assert_running();
                b.assert_running();
                in_sync_as(a, b)
            });
            let converged_at = traffic.elapsed();
            assert!(
                converged,
                "the slave did not reattach in sync within {SYNC_TIMEOUT:?} of the heal: \
                 master {:?}; slave {:?}; slave log tail:\n{}",
                a.try_status_within(Duration::from_secs(2)),
                b.try_status_within(Duration::from_secs(2)),
                b.log_tail(60)
            );
            run.progressed(PROGRESS_TIMEOUT, |log| log.count_since(converged_at) >= 50);
            (cut_at, healed_at, converged_at, during_cut)
        });

        traffic.report_cut(cut_at, healed_at, Some(converged_at), &samples);
        let gap = log.max_gap(cut_at, healed_at);
        println!(
            "longest wait for a receipt during the cut: {:?} ms (ending at {:?} ms from the cut)",
            gap.map(|g| g.0.as_millis()),
            gap.map(|g| g.1.as_millis() as i64 - cut_at.as_millis() as i64)
        );

        // One node confirmed throughout: the master.
        let by_slave = log.by_node_since(1, Duration::ZERO);
        assert!(
            by_slave.is_empty(),
            "the slave confirmed {} messages (seq {}): two nodes confirmed",
            by_slave.len(),
            seqs_of(&by_slave)
        );
        assert!(log.after_another_node_confirmed().is_empty());
        let replaced = confirmed_under_a_newer_master(log, &samples);
        assert!(
            replaced.is_empty(),
            "confirmations by a replaced master: {replaced:?}"
        );
        let slave_said_master: Vec<u128> = samples[1]
            .iter()
            .filter(|(_, s)| matches!(s, Some((r, _, _)) if r == "master"))
            .map(|(at, _)| at.as_millis())
            .collect();
        assert!(
            slave_said_master.is_empty(),
            "the slave said master at {slave_said_master:?} ms"
        );
        assert_eq!(
            during_cut.map(|s| s.node),
            Some(a_id),
            "the witness named another node during the cut"
        );
        let sa = a.status();
        assert_eq!(epoch(&sa), Some(epoch0), "the master's epoch changed: {sa}");
        assert_eq!((role(&sa), peer(&sa)), ("master", "in-sync"));
        assert_witness_in_sync(etcd, w, a);

        assert_delivered_once(a, log);
    });
}
