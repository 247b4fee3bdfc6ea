//! The JMS cases of `tests/support/jms_cases.rs` against Tandem: the real ActiveMQ 5.17
//! JMS client (the probes in `tests/java`) on Tandem's `tcp://` (OpenWire) connector.
//! `tests/jms_activemq.rs` runs the very same cases against real ActiveMQ, so every
//! expectation here is ActiveMQ's own behaviour.
//!
//! Single-broker cases: a [`Broker`] with a STOMP and an OpenWire connector. Failover
//! cases (SCENARIOS S1, S2, S3, S7, G7): a [`Pair`] reached through
//! `failover:(tcp://master,tcp://slave)?randomize=false`.

mod support;

use support::jms::{JmsPairTarget, JmsTarget};
use support::jms_cases as cases;
use support::pair::{test_slot, Pair, PairOpts, TestSlot};
use support::{free_port, Broker, BrokerOpts};

impl JmsTarget for Broker {
    fn url(&self) -> String {
        let port = self
            .opts
            .openwire_port
            .expect("a broker for JMS tests needs an openwire_port");
        format!("tcp://127.0.0.1:{port}")
    }

    fn stomp_port(&self) -> u16 {
        self.port
    }
}

/// A broker with an OpenWire connector.
fn broker() -> Broker {
    Broker::start(BrokerOpts {
        openwire_port: Some(free_port()),
        ..BrokerOpts::default()
    })
}

/// A broker with an OpenWire connector and one destination policy entry (a policy
/// case's; the same entry real ActiveMQ gets in `tests/jms_activemq.rs`).
fn broker_with_policy(policy: support::jms::QueuePolicy) -> Broker {
    Broker::start(BrokerOpts {
        openwire_port: Some(free_port()),
        broker_xml: Some(policy.xml()),
        ..BrokerOpts::default()
    })
}

/// A Tandem pair for the failover cases; holds a pair-test slot while it lives.
struct TandemPair {
    pair: Pair,
    login: Option<(String, String)>,
    _slot: TestSlot,
}

impl TandemPair {
    fn start(opts: PairOpts, login: Option<(&str, &str)>) -> TandemPair {
        let slot = test_slot();
        TandemPair {
            pair: Pair::start(opts),
            login: login.map(|(u, p)| (u.to_string(), p.to_string())),
            _slot: slot,
        }
    }
}

impl JmsPairTarget for TandemPair {
    fn failover_url(&self) -> String {
        format!(
            "failover:(tcp://127.0.0.1:{},tcp://127.0.0.1:{})?randomize=false",
            self.pair.master.tcp_port, self.pair.slave.tcp_port
        )
    }

    fn kill_master(&self) {
        self.pair.master.kill9();
    }

    fn login(&self) -> Option<(String, String)> {
        self.login.clone()
    }
}

cases::single_broker_tests!(broker);

/// A broker with an OpenWire connector and `schedulerSupport="true"`.
fn scheduler_broker() -> Broker {
    Broker::start(BrokerOpts {
        openwire_port: Some(free_port()),
        broker_attrs: Some(r#"schedulerSupport="true""#.into()),
        ..BrokerOpts::default()
    })
}

/// [`scheduler_broker`] with a `<redeliveryPlugin>` whose default policy is
/// [`cases::REDELIVERY_POLICY`].
fn redelivery_broker() -> Broker {
    let attrs: Vec<String> = cases::REDELIVERY_POLICY
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| format!(r#"{k}="{v}""#))
        .collect();
    Broker::start(BrokerOpts {
        openwire_port: Some(free_port()),
        broker_attrs: Some(r#"schedulerSupport="true""#.into()),
        plugins_xml: Some(format!(
            "    <redeliveryPlugin fallbackToDeadLetter=\"true\" sendToDlqIfMaxRetriesExceeded=\"true\">\
             <redeliveryPolicyMap><redeliveryPolicyMap><defaultEntry>\
             <redeliveryPolicy {}/>\
             </defaultEntry></redeliveryPolicyMap></redeliveryPolicyMap></redeliveryPlugin>",
            attrs.join(" ")
        )),
        ..BrokerOpts::default()
    })
}

cases::scheduler_broker_tests!(scheduler_broker, redelivery_broker);

#[test]
fn individual_dead_letter_queues() {
    cases::individual_dead_letter_queues(&broker_with_policy(cases::POLICY_DLQ));
}

#[test]
fn policy_queue_prefetch() {
    cases::policy_queue_prefetch(&broker_with_policy(cases::POLICY_PREFETCH));
}

#[test]
fn s1_queue_failover() {
    cases::queue_failover(&TandemPair::start(PairOpts::default(), None));
}

#[test]
fn s2_durable_subscriber_failover() {
    cases::durable_failover(&TandemPair::start(PairOpts::default(), None));
}

#[test]
fn s3_queue_failover_with_master_connector_credentials() {
    let users = [("admin", "admin-pw"), ("app", "app-pw")];
    let opts = PairOpts::with_auth(&users, "admin", "admin-pw");
    cases::queue_failover(&TandemPair::start(opts, Some(("app", "app-pw"))));
}

#[test]
fn s7_transacted_batches_failover() {
    cases::transacted_failover(&TandemPair::start(PairOpts::default(), None));
}

#[test]
fn g7_load_failover() {
    cases::load_failover(
        &TandemPair::start(PairOpts::default(), None),
        cases::UnflaggedDuplicates::Forbidden,
    );
}

/// A persistent send the master stored (and shipped) but never answered: the failover
/// client replays it to the slave that took over, with its original message id, and
/// the slave confirms it without storing it twice (its producer audit was rebuilt from
/// the shipped records). Forcing the window: the slave is stopped (SIGSTOP) so the
/// master's answer waits for its ack, the master is killed, and the slave resumes,
/// reads the shipped send, sees the link close and takes over.
#[test]
fn replayed_send_after_takeover_is_stored_once() {
    use std::time::Duration;
    use support::jms::{probe, spawn_probe, PROBE_TIMEOUT};
    use support::pair::depth;

    let mut opts = PairOpts::default();
    // Long enough that the stopped slave is not declared lost before the kill.
    opts.master.heartbeat_ms = Some(2_000);
    opts.slave.heartbeat_ms = Some(2_000);
    let target = TandemPair::start(opts, None);
    let pair = &target.pair;
    let url = target.failover_url();
    let q = "queue:dedup";

    let mut producer = spawn_probe(
        &url,
        "send",
        &["--dest", q, "--count", "2", "--interval-ms", "1500"],
    );
    producer.wait_line(PROBE_TIMEOUT, |l| {
        l.word == "SENT" && l.raw_value("seq") == Some("0")
    });
    pair.slave.signal(libc::SIGSTOP);
    // The master stores message 1, ships it and waits for the stopped slave's ack.
    let stored = support::poll_until(Duration::from_secs(20), || {
        pair.master.try_status().is_some_and(|s| {
            depth(&s, "/queue/dedup") == 2
                && s["replication"]["lag"]["records"].as_u64().unwrap_or(0) > 0
        })
    });
    // Counted as shipped when queued for the link; let the link writer flush it into
    // the stopped slave's socket buffer (the log check below catches a miss).
    std::thread::sleep(Duration::from_millis(300));
    let unanswered = !producer.lines().iter().any(|l| l.contains("seq=1"));
    pair.master.kill9();
    pair.slave.signal(libc::SIGCONT);
    assert!(stored, "the master never stored message 1");
    assert!(unanswered, "message 1 was confirmed before the kill");

    let sent = producer.finish(PROBE_TIMEOUT).assert_ok().sent();
    assert_eq!(sent, vec![0, 1]);
    let got = probe(
        &url,
        "recv",
        &["--dest", q, "--drain", "--timeout-ms", "1000"],
    )
    .assert_ok()
    .recv_seqs();
    assert_eq!(got, vec![0, 1], "each confirmed message exactly once");
    assert!(
        pair.slave.log().contains("duplicate send ignored"),
        "the client's replay never reached the new master; log:\n{}",
        pair.slave.log_tail(40)
    );
}

// ---------------------------------------------------------------------------------
// Client ids: one namespace for STOMP `client-id` and JMS client ids

/// CONNECT with `client-id: id`; the broker's reply.
fn stomp_with_client_id(broker: &Broker, id: &str) -> (support::Stomp, support::Frame) {
    let (s, reply) = support::Stomp::connect_with(broker.port, &[("client-id", id)]);
    (
        s,
        reply.unwrap_or_else(|e| panic!("no reply to CONNECT: {e:?}")),
    )
}

/// A refused CONNECT: ActiveMQ's InvalidClientIDException text as the ERROR message,
/// then the connection is closed.
fn assert_client_id_refused(mut s: support::Stomp, reply: support::Frame, id: &str) {
    assert_eq!(reply.command, "ERROR", "{reply:?}");
    assert_eq!(
        reply.header("message"),
        Some(format!("Broker: itest - Client: {id} already connected").as_str()),
        "{reply:?}"
    );
    let after = s
        .frames_until_closed(std::time::Duration::from_secs(20))
        .unwrap_or_else(|seen| panic!("refused connection still open; frames seen: {seen:?}"));
    assert!(after.is_empty(), "{after:?}");
}

/// A STOMP `client-id` is held like a JMS client id: a second live connection with
/// the same id is refused (STOMP or JMS), and the id is free again once its holder
/// has gone; a JMS client's id blocks a STOMP connection the same way.
#[test]
fn stomp_and_jms_clients_share_one_client_id_registry() {
    use support::jms::{probe, spawn_probe, PROBE_TIMEOUT};
    let broker = broker();
    let url = broker.url();

    // STOMP holds "shared": a second STOMP connection is refused...
    let (mut holder, reply) = stomp_with_client_id(&broker, "shared");
    assert_eq!(reply.command, "CONNECTED", "{reply:?}");
    let (second, reply) = stomp_with_client_id(&broker, "shared");
    assert_client_id_refused(second, reply, "shared");
    // ...and so is a JMS client, with javax.jms.InvalidClientIDException.
    let jms = probe(&url, "connect", &["--client-id", "shared"]);
    assert_eq!(jms.expect_error(), "javax.jms.InvalidClientIDException");
    // The holder was not disturbed.
    holder.send_receipted("/queue/client-ids", b"still mine", "r1");

    // Once the holder disconnects, the id is free (for JMS, then for STOMP again).
    holder.send_frame("DISCONNECT", &[("receipt", "bye")], b"");
    holder.expect_receipt("bye");
    probe(&url, "connect", &["--client-id", "shared"]).assert_ok();
    let (again, reply) = stomp_with_client_id(&broker, "shared");
    assert_eq!(reply.command, "CONNECTED", "{reply:?}");
    drop(again);

    // A live JMS client holding "jms-held" blocks a STOMP connection with that id.
    let mut consumer = spawn_probe(
        &url,
        "recv",
        &[
            "--dest",
            "queue:client-ids-jms",
            "--client-id",
            "jms-held",
            "--count",
            "1",
            "--timeout-ms",
            "60000",
        ],
    );
    consumer.wait_line(PROBE_TIMEOUT, |l| l.word == "READY");
    let (refused, reply) = stomp_with_client_id(&broker, "jms-held");
    assert_client_id_refused(refused, reply, "jms-held");
    consumer.kill();
    let freed = support::poll_until(std::time::Duration::from_secs(20), || {
        let (_s, reply) = stomp_with_client_id(&broker, "jms-held");
        reply.command == "CONNECTED"
    });
    assert!(
        freed,
        "client id still held after the JMS client was killed"
    );
}
