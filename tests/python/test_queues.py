"""2-4. Queues: order, exactly once, round-robin, prefetch, ack modes, NACK -> DLQ."""

import pytest

from conftest import bodies, body_list, marker_follows

N = 1000


@pytest.mark.parametrize("persistent", [True, False], ids=["persistent", "non-persistent"])
def test_queue_in_order_exactly_once(broker, connect, persistent):
    producer = connect(broker)
    sent = bodies("q", N)
    producer.send_many("/queue/order", sent, persistent=persistent)

    consumer = connect(broker)
    consumer.subscribe("/queue/order")
    got = consumer.take(N)
    assert body_list(got) == sent
    want_persistent = "true" if persistent else "false"
    assert {m.headers.get("persistent", "false") for m in got} == {want_persistent}
    assert {m.headers.get("destination") for m in got} == {"/queue/order"}
    assert len({m.headers["message-id"] for m in got}) == N
    marker_follows(consumer, producer, "/queue/order")


def test_queue_round_robin_two_consumers(broker, connect):
    a, b = connect(broker), connect(broker)
    a.subscribe("/queue/rr")
    b.subscribe("/queue/rr")
    sent = bodies("rr", 100)
    connect(broker).send_many("/queue/rr", sent, persistent=False)

    got_a, got_b = body_list(a.take(50)), body_list(b.take(50))
    assert sorted(got_a + got_b) == sent              # each message exactly once
    assert got_a == sorted(got_a) and got_b == sorted(got_b)  # each in order
    # round-robin: consecutive messages alternate between the two consumers
    assert {got_a[0], got_b[0]} == {sent[0], sent[1]}
    first, second = (got_a, got_b) if got_a[0] == sent[0] else (got_b, got_a)
    assert first == sent[0::2]
    assert second == sent[1::2]
    assert a.pending() == 0 and b.pending() == 0


def test_prefetch_one_client_ack(broker, connect):
    producer = connect(broker)
    producer.send_many("/queue/pf", ["m1", "m2", "m3"], persistent=True)

    a = connect(broker)
    a.subscribe("/queue/pf", ack="client", **{"activemq.prefetchSize": "1"})
    m1 = a.take_one()
    assert m1.body == "m1"

    # m2 must not have been dispatched to A (its one prefetch slot is taken by m1):
    # a second consumer gets it.
    b = connect(broker)
    b.subscribe("/queue/pf", ack="client", **{"activemq.prefetchSize": "1"})
    assert b.take_one().body == "m2"
    assert a.pending() == 0

    # acking m1 frees A's slot: m3 goes to A (B's slot is still taken by m2)
    a.ack(m1)
    assert a.take_one().body == "m3"
    assert b.pending() == 0


# ---------------------------------------------------------------- ack modes (3)

@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
def test_ack_auto(broker, connect, version):
    producer = connect(broker)
    producer.send_many("/queue/auto", bodies("a", 10))
    c = connect(broker, version=version)
    c.subscribe("/queue/auto", ack="auto")
    assert body_list(c.take(10)) == bodies("a", 10)
    c.disconnect()

    # auto-acked: nothing comes back to a new consumer
    c2 = connect(broker, version=version)
    c2.subscribe("/queue/auto")
    marker_follows(c2, producer, "/queue/auto")


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
def test_ack_client_is_cumulative(broker, connect, version):
    producer = connect(broker)
    sent = bodies("c", 10)
    producer.send_many("/queue/client", sent)

    c = connect(broker, version=version)
    c.subscribe("/queue/client", ack="client")
    got = c.take(10)
    assert body_list(got) == sent
    assert all(m.headers.get("redelivered", "false") == "false" for m in got)
    c.ack(got[4])              # acks 1..5
    c.disconnect()

    c2 = connect(broker, version=version)
    c2.subscribe("/queue/client", ack="client")
    back = c2.take(5)
    assert body_list(back) == sent[5:]
    assert [m.headers.get("redelivered") for m in back] == ["true"] * 5
    c2.ack(back[-1])
    marker_follows(c2, producer, "/queue/client")


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_ack_client_individual(broker, connect, version):
    producer = connect(broker)
    sent = bodies("ci", 5)
    producer.send_many("/queue/ci", sent)

    c = connect(broker, version=version)
    c.subscribe("/queue/ci", ack="client-individual")
    got = c.take(5)
    assert body_list(got) == sent
    c.ack(got[1])
    c.ack(got[3])
    c.disconnect()

    c2 = connect(broker, version=version)
    c2.subscribe("/queue/ci", ack="client-individual")
    back = c2.take(3)
    assert body_list(back) == [sent[0], sent[2], sent[4]]
    assert [m.headers.get("redelivered") for m in back] == ["true"] * 3
    for m in back:
        c2.ack(m)
    marker_follows(c2, producer, "/queue/ci")


def test_unacked_go_back_when_connection_dropped(broker, connect):
    """No DISCONNECT: the socket just goes away, as with a crashed client."""
    producer = connect(broker)
    sent = bodies("drop", 5)
    producer.send_many("/queue/drop", sent)
    c = connect(broker)
    c.subscribe("/queue/drop", ack="client-individual")
    assert body_list(c.take(5)) == sent
    c.close()

    c2 = connect(broker)
    c2.subscribe("/queue/drop", ack="client-individual")
    back = c2.take(5)
    assert body_list(back) == sent
    assert [m.headers.get("redelivered") for m in back] == ["true"] * 5


# ---------------------------------------------------------------- NACK -> DLQ (4)

@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_nack_moves_to_dlq(broker, connect, version):
    producer = connect(broker)
    producer.send("/queue/work", "poison", persistent=True, **{"x-tag": "p1"})
    producer.send("/queue/work", "good", persistent=True)

    c = connect(broker, version=version)
    c.subscribe("/queue/work", ack="client-individual")
    poison, good = c.take(2)
    assert (poison.body, good.body) == ("poison", "good")
    c.nack(poison)
    c.ack(good)
    c.disconnect()

    dlq = connect(broker)
    dlq.subscribe("/queue/ActiveMQ.DLQ")
    dead = dlq.take_one()
    assert dead.body == "poison"
    assert dead.headers.get("x-tag") == "p1"
    marker_follows(dlq, producer, "/queue/ActiveMQ.DLQ")

    # and it is gone from the original queue
    again = connect(broker)
    again.subscribe("/queue/work")
    marker_follows(again, producer, "/queue/work")


def test_unacked_go_back_on_unsubscribe(broker, connect):
    """The consumer goes (UNSUBSCRIBE) but the connection stays."""
    producer = connect(broker)
    sent = bodies("unsub", 5)
    producer.send_many("/queue/unsub", sent)
    c = connect(broker)
    sub = c.subscribe("/queue/unsub", ack="client-individual")
    got = c.take(5)
    assert body_list(got) == sent
    c.ack(got[0])
    c.unsubscribe(sub)

    c.subscribe("/queue/unsub", ack="client-individual")
    back = c.take(4)
    assert body_list(back) == sent[1:]
    assert [m.headers.get("redelivered") for m in back] == ["true"] * 4


@pytest.mark.parametrize("persistent", [True, False], ids=["persistent", "non-persistent"])
def test_memory_limit_slows_but_loses_nothing(broker_factory, connect, persistent):
    """3 MiB sent (receipted, window 8) into a broker with a 1 MiB memory limit from a
    background thread while a consumer attaches and drains. Producer flow control may
    hold receipts back, but everything arrives exactly once, in order, and the
    producer finishes."""
    import threading
    b = broker_factory(memory_limit="1 mb")
    sent = [f"{i:05d}".encode() + bytes([i % 256]) * (64 * 1024) for i in range(48)]
    producer = connect(b, auto_decode=False)
    outcome = {}

    def produce():
        try:
            producer.send_many("/queue/mem", sent, persistent=persistent, window=8)
            outcome["ok"] = True
        except BaseException as e:           # pytest.fail raises BaseException
            outcome["error"] = repr(e)

    t = threading.Thread(target=produce, daemon=True)
    t.start()
    consumer = connect(b, auto_decode=False)
    consumer.subscribe("/queue/mem")
    got = consumer.take(len(sent), timeout=60)
    t.join(timeout=60)
    assert outcome == {"ok": True}
    assert [m.body for m in got] == sent
