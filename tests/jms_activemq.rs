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

#[test]
fn connect() {
    cases::connect(&broker());
}

#[test]
fn queue_send_receive_in_order() {
    cases::queue_send_receive_in_order(&broker());
}

#[test]
fn topic_fan_out() {
    cases::topic_fan_out(&broker());
}

#[test]
fn ack_auto_and_dups_ok() {
    cases::ack_auto_and_dups_ok(&broker());
}

#[test]
fn ack_client() {
    cases::ack_client(&broker());
}

#[test]
fn ack_client_recover() {
    cases::ack_client_recover(&broker());
}

#[test]
fn ack_individual() {
    cases::ack_individual(&broker());
}

#[test]
fn transacted_consumer() {
    cases::transacted_consumer(&broker());
}

#[test]
fn transacted_producer() {
    cases::transacted_producer(&broker());
}

#[test]
fn redelivery_exhausted_goes_to_dlq() {
    cases::redelivery_exhausted_goes_to_dlq(&broker());
}

#[test]
fn durable_subscriber() {
    cases::durable_subscriber(&broker());
}

#[test]
fn client_id_in_use() {
    cases::client_id_in_use(&broker());
}

#[test]
fn temp_queue_request_reply() {
    cases::temp_queue_request_reply(&broker());
}

#[test]
fn transacted_request_reply_several_consumers() {
    cases::transacted_request_reply_several_consumers(&broker());
}

#[test]
fn prefetch_zero_and_one() {
    cases::prefetch_zero_and_one(&broker());
}

#[test]
fn selectors() {
    cases::selectors(&broker());
}

#[test]
fn browse() {
    cases::browse(&broker());
}

#[test]
fn message_types_and_properties() {
    cases::message_types_and_properties(&broker());
}

#[test]
fn expiry_large_and_non_persistent() {
    cases::expiry_large_and_non_persistent(&broker());
}

#[test]
fn stomp_jms_exchange() {
    cases::stomp_jms_exchange(&broker());
}

#[test]
fn exclusive_consumers_and_message_groups() {
    cases::exclusive_consumers_and_message_groups(&broker());
}

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
