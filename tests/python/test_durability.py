"""10-11. Crash safety (kill -9) and clean restarts."""

import pytest

from conftest import bodies, body_list, marker_follows

N = 3000


def test_kill9_loses_no_confirmed_send_and_no_confirmed_ack(broker, connect):
    sent = bodies("crash", N)
    producer = connect(broker)
    producer.send_many("/queue/crash", sent, persistent=True, window=64)
    broker.kill9()                                   # right after the last receipt
    producer.close()

    broker.restart()
    c = connect(broker)
    # room for all 3000 unacked (the default prefetch would stop at 1000)
    c.subscribe("/queue/crash", ack="client-individual",
                **{"activemq.prefetchSize": str(N + 100)})
    got = c.take(N)
    assert body_list(got) == sent
    acked = got[::3]                                 # 1000 of them, spread out
    assert len(acked) == 1000
    for m in acked:
        c.ack(m)                                     # each waits for its receipt
    broker.kill9()                                   # right after the last ACK receipt
    c.close()

    broker.restart()
    c2 = connect(broker)
    c2.subscribe("/queue/crash")
    remaining = [b for i, b in enumerate(sent) if i % 3 != 0]
    assert len(remaining) == 2000
    assert body_list(c2.take(2000)) == remaining
    marker_follows(c2, connect(broker), "/queue/crash")


def test_kill9_across_shards(broker, connect):
    """Persistent sends to 8 queues (both shards with shards=2), kill -9, all back."""
    queues = [f"/queue/crash.{i}" for i in range(8)]
    producer = connect(broker)
    for q in queues:
        producer.send_many(q, bodies(q, 100), persistent=True)
    broker.kill9()
    producer.close()
    broker.restart()

    c = connect(broker)
    for q in queues:
        c.subscribe(q)
        assert body_list(c.take(100)) == bodies(q, 100)


@pytest.mark.parametrize("how", ["stop", "kill9"])
def test_persistent_survive_restart_non_persistent_do_not(broker, connect, how):
    p = connect(broker)
    p.send_many("/queue/restart", bodies("keep", 200), persistent=True)
    p.send_many("/queue/restart", bodies("volatile", 50), persistent=False)
    p.send_many("/queue/restart", bodies("keep2", 200), persistent=True)
    p.close()
    getattr(broker, how)()
    broker.restart()

    c = connect(broker)
    c.subscribe("/queue/restart")
    assert body_list(c.take(400)) == bodies("keep", 200) + bodies("keep2", 200)
    marker_follows(c, connect(broker), "/queue/restart")


def test_clean_restart_keeps_unacked_and_drops_acked(broker, connect):
    p = connect(broker)
    sent = bodies("clean", 300)
    p.send_many("/queue/clean", sent, persistent=True)
    c = connect(broker)
    c.subscribe("/queue/clean", ack="client")
    got = c.take(300)
    c.ack(got[99])                                   # cumulative: first 100
    c.disconnect()
    p.disconnect()

    broker.stop()
    broker.start()
    broker.stop()                                    # twice: recovery output must recover too
    broker.start()

    c2 = connect(broker)
    c2.subscribe("/queue/clean")
    assert body_list(c2.take(200)) == sent[100:]
    marker_follows(c2, connect(broker), "/queue/clean")
