"""Scheduled delivery over STOMP (`<broker schedulerSupport="true">`): the
AMQ_SCHEDULED_DELAY / _PERIOD / _REPEAT headers, as ActiveMQ's STOMP connector takes
them (string properties the scheduler converts). Delivered copies carry
`scheduledJobId` and no scheduling headers; scheduled messages survive kill -9 and are
delivered on time (late ones at once) after the restart."""

import time

import pytest

from conftest import BrokerError, marker_follows

SCHEDULER = {"schedulerSupport": "true"}
# The scheduler ticks every 50 ms; allow for a slow test machine.
SLACK_S = 1.5


@pytest.fixture
def sched(broker_factory):
    return broker_factory(broker_attrs=SCHEDULER)


def test_delay_holds_a_message_back_then_delivers_it_once(sched, connect):
    c = connect(sched)
    c.subscribe("/queue/s.delay")
    sent_at = time.monotonic()
    c.send("/queue/s.delay", "later", persistent=True, AMQ_SCHEDULED_DELAY="1500")
    m = c.take_one(timeout=1500 / 1000 + SLACK_S + 5)
    waited = time.monotonic() - sent_at
    assert 1.4 <= waited <= 1.5 + SLACK_S, waited
    assert m.body == "later"
    assert "scheduledJobId" in m.headers
    assert "AMQ_SCHEDULED_DELAY" not in m.headers
    marker_follows(c, c, "/queue/s.delay")


def test_period_and_repeat_deliver_repeat_plus_one_copies_with_new_ids(sched, connect):
    c = connect(sched)
    c.subscribe("/queue/s.repeat")
    c.send("/queue/s.repeat", "tick", AMQ_SCHEDULED_DELAY="200",
           AMQ_SCHEDULED_PERIOD="300", AMQ_SCHEDULED_REPEAT="2")
    got = c.take(3, timeout=10)
    assert [m.body for m in got] == ["tick"] * 3
    assert len({m.headers["message-id"] for m in got}) == 3
    time.sleep(1.0)
    assert c.pending() == 0, "no fourth copy"


def test_scheduled_messages_survive_kill9_and_fire_on_time_or_at_once(sched, connect):
    p = connect(sched)
    p.send("/queue/s.restart", "soon", persistent=True, AMQ_SCHEDULED_DELAY="1000")
    p.send("/queue/s.restart", "after", persistent=True, AMQ_SCHEDULED_DELAY="6000")
    # Non-persistent: the job is journaled all the same (as ActiveMQ's job store keeps it).
    p.send("/queue/s.restart", "volatile", AMQ_SCHEDULED_DELAY="6000")
    sent_at = time.monotonic()
    sched.kill9()
    time.sleep(1.5)          # "soon" is late when the broker comes back
    sched.restart()
    c = connect(sched)
    c.subscribe("/queue/s.restart")
    first = c.take_one(timeout=5)
    assert first.body == "soon"
    rest = c.take(2, timeout=6 + SLACK_S + 5)
    waited = time.monotonic() - sent_at
    assert sorted(m.body for m in rest) == ["after", "volatile"]
    assert 5.9 <= waited <= 6 + SLACK_S + 2, waited


def test_without_scheduler_support_the_headers_are_ignored(broker, connect):
    c = connect(broker)
    c.subscribe("/queue/s.off")
    c.send("/queue/s.off", "now", AMQ_SCHEDULED_DELAY="60000")
    m = c.take_one(timeout=5)
    assert m.body == "now"
    assert m.headers.get("AMQ_SCHEDULED_DELAY") == "60000"


def test_a_bad_delay_is_refused(sched, connect):
    c = connect(sched)
    with pytest.raises(BrokerError, match="AMQ_SCHEDULED_DELAY"):
        c.send("/queue/s.bad", "x", AMQ_SCHEDULED_DELAY="soon")


REDELIVERY_PLUGIN = """  <plugins><redeliveryPlugin>
    <redeliveryPolicyMap><redeliveryPolicyMap><defaultEntry>
      <redeliveryPolicy maximumRedeliveries="1" initialRedeliveryDelay="1000"/>
    </defaultEntry></redeliveryPolicyMap></redeliveryPolicyMap>
  </redeliveryPlugin></plugins>"""


def test_a_nack_with_the_redelivery_plugin_comes_back_after_the_delay_then_dead_letters(
        broker_factory, connect):
    b = broker_factory(broker_attrs=SCHEDULER, extra_xml=REDELIVERY_PLUGIN)
    c = connect(b)
    c.subscribe("/queue/s.nack", ack="client-individual")
    c.send("/queue/s.nack", "poison", persistent=True)
    first = c.take_one()
    assert "redelivered" not in first.headers
    refused_at = time.monotonic()
    c.nack(first)
    again = c.take_one(timeout=1 + SLACK_S + 5)
    waited = time.monotonic() - refused_at
    assert 0.9 <= waited <= 1 + SLACK_S, waited
    assert again.body == "poison"
    assert again.headers.get("redelivered") == "true"
    assert again.headers.get("redeliveryDelay") == "1000"
    c.nack(again)                       # the policy's one redelivery is used up
    dlq = connect(b)
    dlq.subscribe("/queue/ActiveMQ.DLQ")
    assert dlq.take_one(timeout=5).body == "poison"
    marker_follows(c, c, "/queue/s.nack")
