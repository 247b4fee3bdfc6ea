"""5. Transactions: BEGIN / SEND / ACK / COMMIT / ABORT."""

from collections import defaultdict

import pytest

from conftest import bodies, body_list, marker_follows


@pytest.mark.parametrize("persistent", [True, False], ids=["persistent", "non-persistent"])
def test_sends_visible_only_after_commit(broker, connect, persistent):
    consumer = connect(broker)
    consumer.subscribe("/queue/tx")
    producer = connect(broker)
    sent = bodies("tx", 10)

    producer.begin("t1")
    for b in sent:
        producer.send("/queue/tx", b, persistent=persistent, transaction="t1")
    marker_follows(consumer, producer, "/queue/tx")   # nothing visible before COMMIT
    producer.commit("t1")

    assert body_list(consumer.take(10)) == sent
    marker_follows(consumer, producer, "/queue/tx")


def test_aborted_sends_never_visible(broker, connect):
    consumer = connect(broker)
    consumer.subscribe("/queue/abort")
    producer = connect(broker)

    producer.begin("t1")
    for b in bodies("aborted", 10):
        producer.send("/queue/abort", b, persistent=True, transaction="t1")
    producer.abort("t1")

    marker_follows(consumer, producer, "/queue/abort")
    # a later transaction on the same connection still works
    producer.begin("t2")
    producer.send("/queue/abort", "committed", persistent=True, transaction="t2")
    producer.commit("t2")
    assert consumer.take_one().body == "committed"
    marker_follows(consumer, producer, "/queue/abort")


def test_ack_in_aborted_transaction_is_not_an_ack(broker, connect):
    producer = connect(broker)
    sent = bodies("txack", 3)
    producer.send_many("/queue/txack", sent)

    c = connect(broker)
    c.subscribe("/queue/txack", ack="client-individual")
    got = c.take(3)
    assert body_list(got) == sent
    c.begin("t1")
    for m in got:
        c.ack(m, transaction="t1")
    c.abort("t1")
    c.disconnect()

    c2 = connect(broker)
    c2.subscribe("/queue/txack", ack="client-individual")
    back = c2.take(3)
    assert body_list(back) == sent
    assert [m.headers.get("redelivered") for m in back] == ["true"] * 3


def test_ack_in_committed_transaction_is_an_ack(broker, connect):
    producer = connect(broker)
    sent = bodies("txack", 3)
    producer.send_many("/queue/txack", sent)

    c = connect(broker)
    c.subscribe("/queue/txack", ack="client-individual")
    got = c.take(3)
    c.begin("t1")
    c.ack(got[0], transaction="t1")
    c.ack(got[2], transaction="t1")
    c.commit("t1")
    c.disconnect()

    c2 = connect(broker)
    c2.subscribe("/queue/txack", ack="client-individual")
    assert body_list(c2.take(1)) == [sent[1]]
    marker_follows(c2, producer, "/queue/txack")


def test_transaction_spanning_shards(broker, connect):
    """16 queues: with shards=2 at least two of them live on different shards
    (all on one shard has probability 2^-15)."""
    queues = [f"/queue/span.{i}" for i in range(16)]
    consumer = connect(broker)
    for q in queues:
        consumer.subscribe(q)
    producer = connect(broker)

    producer.begin("big")
    for q in queues:
        for k in range(3):
            producer.send(q, f"{q}#{k}", persistent=True, transaction="big")

    # before COMMIT: a marker sent to each queue is the first thing seen from it
    for q in queues:
        producer.send(q, f"pre-{q}")
    pre = consumer.take(len(queues))
    assert sorted(body_list(pre)) == sorted(f"pre-{q}" for q in queues)

    producer.commit("big")
    got = consumer.take(3 * len(queues))
    per_queue = defaultdict(list)
    for m in got:
        per_queue[m.headers["destination"]].append(m.body)
    assert dict(per_queue) == {q: [f"{q}#{k}" for k in range(3)] for q in queues}
    for q in queues:
        marker_follows(consumer, producer, q)


def test_kill9_committed_survives_uncommitted_vanishes(broker, connect):
    p = connect(broker)
    p.begin("done")
    for b in bodies("committed", 20):
        p.send("/queue/txcrash", b, persistent=True, transaction="done")
    p.commit("done")
    p.begin("open")
    for b in bodies("in-doubt", 20):
        p.send("/queue/txcrash", b, persistent=True, transaction="open")
    broker.kill9()
    p.close()
    broker.restart()

    c = connect(broker)
    c.subscribe("/queue/txcrash")
    assert body_list(c.take(20)) == bodies("committed", 20)
    marker_follows(c, connect(broker), "/queue/txcrash")


def test_kill9_acks_of_uncommitted_transaction_are_not_acks(broker, connect):
    p = connect(broker)
    sent = bodies("m", 10)
    p.send_many("/queue/txackcrash", sent, persistent=True)
    c = connect(broker)
    c.subscribe("/queue/txackcrash", ack="client-individual")
    got = c.take(10)
    c.begin("t")
    for m in got:
        c.ack(m, transaction="t")
    broker.kill9()
    c.close()
    broker.restart()

    c2 = connect(broker)
    c2.subscribe("/queue/txackcrash")
    assert body_list(c2.take(10)) == sent
