//! The JMS probes (`tests/java`) against a REAL ActiveMQ Classic 5.17 broker (Debian's
//! `libactivemq-java`, started by `tools/activemq`). These tests prove that every
//! expectation in `tests/support/jms_cases.rs` is what ActiveMQ does, before the same
//! cases run against Tandem (`tests/jms_tandem.rs`).
//!
//! One broker per test (KahaDB, default sync); the failover cases use ActiveMQ's
//! shared-store master/slave (two brokers on one KahaDB directory), where the slave
//! takes the store lock once the master is killed. SCENARIOS S3 (a slave configured
//! with `<masterConnector>`) has no ActiveMQ 5.17 counterpart: its JMS side is S1's.
//! G7's "no unflagged duplicate" is a guarantee real ActiveMQ does not give (see
//! `g7_load_failover`); only its "no loss" is asserted here.

mod support;

use support::jms::{ActiveMq, ActiveMqOpts, ActiveMqPair};
use support::jms_cases as cases;

fn broker() -> ActiveMq {
    ActiveMq::start(ActiveMqOpts::default())
}

cases::single_broker_tests!(broker);

fn scheduler_broker() -> ActiveMq {
    ActiveMq::start(ActiveMqOpts {
        scheduler: true,
        ..ActiveMqOpts::default()
    })
}

fn redelivery_broker() -> ActiveMq {
    ActiveMq::start(ActiveMqOpts {
        scheduler: true,
        redelivery_plugin: Some(cases::REDELIVERY_POLICY.into()),
        ..ActiveMqOpts::default()
    })
}

cases::scheduler_broker_tests!(scheduler_broker, redelivery_broker);

#[test]
fn s1_queue_failover() {
    cases::queue_failover(&ActiveMqPair::start());
}

#[test]
fn s2_durable_subscriber_failover() {
    cases::durable_failover(&ActiveMqPair::start());
}

#[test]
fn s7_transacted_batches_failover() {
    cases::transacted_failover(&ActiveMqPair::start());
}

/// Real ActiveMQ loses nothing here, but may deliver a message twice without the
/// redelivered flag (see [`cases::UnflaggedDuplicates::Reported`]); Tandem must not.
#[test]
fn g7_load_failover() {
    cases::load_failover(&ActiveMqPair::start(), cases::UnflaggedDuplicates::Reported);
}

/// Real ActiveMQ with one destination policy entry (a policy case's).
fn broker_with_policy(policy: support::jms::QueuePolicy) -> ActiveMq {
    ActiveMq::start(ActiveMqOpts {
        policy: Some(policy),
        ..ActiveMqOpts::default()
    })
}

#[test]
fn individual_dead_letter_queues() {
    cases::individual_dead_letter_queues(&broker_with_policy(cases::POLICY_DLQ));
}

#[test]
fn policy_queue_prefetch() {
    cases::policy_queue_prefetch(&broker_with_policy(cases::POLICY_PREFETCH));
}
