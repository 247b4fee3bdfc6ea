"""Per-destination policies (`<destinationPolicy>`) and message group closing over STOMP.
The same rules run against real ActiveMQ with the JMS client in
tests/support/jms_cases.rs (`individual_dead_letter_queues`, `policy_queue_prefetch`,
`message_group_closing`)."""

import json
import urllib.request

from conftest import WAIT_S, free_port, marker_follows, poll_until

POLICY = """<destinationPolicy><policyMap><policyEntries>
  <policyEntry queue="orders.>" queuePrefetch="1">
    <deadLetterStrategy>
      <individualDeadLetterStrategy queuePrefix="DLQ." processNonPersistent="true"/>
    </deadLetterStrategy>
  </policyEntry>
  <policyEntry queue="audit.>">
    <deadLetterStrategy><sharedDeadLetterStrategy>
      <deadLetterQueue><queue physicalName="AUDIT.DLQ"/></deadLetterQueue>
    </sharedDeadLetterStrategy></deadLetterStrategy>
  </policyEntry>
</policyEntries></policyMap></destinationPolicy>"""


def depths(status_port: int) -> dict[str, int]:
    """Queue depths from the status endpoint, by STOMP name."""
    with urllib.request.urlopen(f"http://127.0.0.1:{status_port}/status", timeout=5) as r:
        s = json.load(r)
    return {d["name"].replace("queue://", "/queue/"): d.get("depth", 0)
            for d in s.get("destinations", [])}


def test_nacked_messages_go_where_their_destination_policy_says_and_stay_there(
        broker_factory, connect):
    status_port = free_port()
    b = broker_factory(extra_xml=POLICY, tandem_attrs={"statusPort": str(status_port)})
    p = connect(b)
    p.send("/queue/orders.eu", "kept", persistent=True)
    p.send("/queue/orders.eu", "non-persistent")
    p.send("/queue/audit.log", "audited", persistent=True)
    p.send("/queue/other", "other", persistent=True)
    p.send("/queue/other", "dropped")  # non-persistent, default strategy: dropped
    for q, n in (("/queue/orders.eu", 2), ("/queue/audit.log", 1), ("/queue/other", 2)):
        c = connect(b)
        c.subscribe(q, ack="client-individual", **{"activemq.prefetchSize": "10"})
        for m in c.take(n):
            c.nack(m)
        c.close()
    # A NACK's receipt does not wait for the move: wait until every move is done
    # (the original removed), then show the moves are journaled: kill -9.
    poll_until(WAIT_S, lambda: all(depths(status_port).get(q, 0) == n for q, n in (
        ("/queue/orders.eu", 0), ("/queue/audit.log", 0), ("/queue/other", 0),
        ("/queue/DLQ.orders.eu", 2), ("/queue/AUDIT.DLQ", 1), ("/queue/ActiveMQ.DLQ", 1))),
        "the dead-letter moves")
    b.kill9()
    b.restart()
    p = connect(b)
    expected = {
        "/queue/DLQ.orders.eu": ["kept", "non-persistent"],
        "/queue/AUDIT.DLQ": ["audited"],
        "/queue/ActiveMQ.DLQ": ["other"],
        "/queue/orders.eu": [],
        "/queue/audit.log": [],
        "/queue/other": [],
    }
    for q, want in expected.items():
        c = connect(b)
        c.subscribe(q)
        got = c.take(len(want))
        assert [m.body for m in got] == want, q
        for m in got:
            origin = {"DLQ.orders.eu": "/queue/orders.eu", "AUDIT.DLQ": "/queue/audit.log",
                      "ActiveMQ.DLQ": "/queue/other"}[q.split("/")[-1]]
            assert m.headers.get("originalDestination") == origin, m.headers
        marker_follows(c, p, q)
        c.close()
    # processNonPersistent: the copy is persistent and says what it was.
    c = connect(b)
    c.subscribe("/queue/DLQ.orders.eu")
    p.send("/queue/orders.eu", "np2")
    n = connect(b)
    n.subscribe("/queue/orders.eu", ack="client-individual")
    n.nack(n.take_one())
    m = c.take_one()
    assert m.body == "np2"
    assert m.headers.get("persistent") == "true", m.headers
    assert m.headers.get("originalDeliveryMode") == "NON_PERSISTENT", m.headers


def test_policy_prefetch_applies_to_a_subscription_that_names_none(broker_factory, connect):
    b = broker_factory(extra_xml=POLICY)
    q = "/queue/orders.pf"
    idle = connect(b)
    idle.subscribe(q, ack="client-individual")  # queuePrefetch="1": holds one
    busy = connect(b)
    busy.subscribe(q, ack="client-individual", **{"activemq.prefetchSize": "10"})
    p = connect(b)
    for i in range(3):
        p.send(q, f"m{i}", persistent=True)
    p.send(q, "marker", persistent=True)
    got = busy.take(3)
    assert [m.body for m in got] == ["m1", "m2", "marker"]
    assert [m.body for m in idle.take(1)] == ["m0"]
    assert idle.pending() == 0


def test_a_group_sequence_of_minus_one_closes_the_group(broker, connect):
    q = "/queue/group-closing"
    before, after = connect(broker), connect(broker)
    before.subscribe(q, selector="phase = 'before'")
    after.subscribe(q, selector="phase = 'after'")
    p = connect(broker)
    p.send(q, "A0", JMSXGroupID="A", phase="before")
    p.send(q, "A1", JMSXGroupID="A", phase="before")
    p.send(q, "A2", JMSXGroupID="A", JMSXGroupSeq="-1", phase="before")
    # Group A is closed: `after` may take its next messages.
    p.send(q, "A3", JMSXGroupID="A", phase="after")
    p.send(q, "A4", JMSXGroupID="A", phase="after")
    # Group B stays with `before`: its `after` message waits.
    p.send(q, "B0", JMSXGroupID="B", phase="before")
    p.send(q, "B1", JMSXGroupID="B", phase="after")
    p.send(q, "marker", phase="after")
    assert [m.body for m in before.take(4)] == ["A0", "A1", "A2", "B0"]
    assert [m.body for m in after.take(3)] == ["A3", "A4", "marker"]
    # B1 is still queued for B's owner; once `before` leaves it goes to `after`.
    before.close()
    assert [m.body for m in after.take(1)] == ["B1"]
