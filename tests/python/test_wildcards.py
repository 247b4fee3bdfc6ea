"""Wildcard subscriptions, ActiveMQ's default syntax: `.` separates segments, `*` matches
one segment, `>` the rest (none included). A subscription to a pattern receives from
every matching queue or topic, whichever shard it lives on, existing or created later;
each MESSAGE names the real destination, and acks go there."""

import time

from conftest import bodies, body_list

QUIET_S = 0.3  # after the expected messages: nothing more arrives in this time


def fnv_shard(kind_is_queue: bool, name: str, shards: int) -> int:
    """The shard a destination lives on (Destination::shard: FNV-1a over kind and name)."""
    h = 0xcbf29ce484222325
    for byte in bytes([0 if kind_is_queue else 1]) + name.encode():
        h ^= byte
        h = (h * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h % shards


def quiet(client):
    time.sleep(QUIET_S)
    assert client.pending() == 0, client.take(client.pending())


def by_body(frames):
    return sorted((f.body, f.headers["destination"]) for f in frames)


def test_topic_patterns_get_exactly_their_topics(broker, connect):
    star, rest = connect(broker), connect(broker)
    star.subscribe("/topic/W.*")
    rest.subscribe("/topic/W.>")
    pub = connect(broker)
    sends = [("W", "m0"), ("W.a", "m1"), ("W.b", "m2"), ("W.a.x", "m3"), ("X.a", "m4"),
             ("WW.a", "m5")]
    for topic, body in sends:
        pub.send(f"/topic/{topic}", body)
    assert by_body(star.take(2)) == [("m1", "/topic/W.a"), ("m2", "/topic/W.b")]
    assert by_body(rest.take(4)) == [("m0", "/topic/W"), ("m1", "/topic/W.a"),
                                     ("m2", "/topic/W.b"), ("m3", "/topic/W.a.x")]
    quiet(star)
    quiet(rest)


def test_selector_applies_to_a_pattern(broker, connect):
    c = connect(broker)
    c.subscribe("/topic/S.>", selector="color = 'red'")
    pub = connect(broker)
    for i, topic in enumerate(["S.a", "S.b", "S.c", "S.d"]):
        pub.send(f"/topic/{topic}", f"m{i}", color="red" if i % 2 == 0 else "blue")
    assert by_body(c.take(2)) == [("m0", "/topic/S.a"), ("m2", "/topic/S.c")]
    quiet(c)


def test_queue_pattern_takes_existing_and_new_queues_and_acks_reach_them(broker, connect):
    pub = connect(broker)
    pub.send_many("/queue/Q.a", bodies("a", 3))
    pub.send_many("/queue/Q.b.c", bodies("b", 3))
    pub.send_many("/queue/QX.a", bodies("x", 2))
    c = connect(broker)
    c.subscribe("/queue/Q.>", ack="client-individual")
    got = c.take(6)
    pub.send_many("/queue/Q.new", bodies("n", 2))    # created after the subscription
    got += c.take(2)
    assert sorted(body_list(got)) == sorted(bodies("a", 3) + bodies("b", 3) + bodies("n", 2))
    for m in got:
        want = {"a": "/queue/Q.a", "b": "/queue/Q.b.c", "n": "/queue/Q.new"}[m.body[0]]
        assert m.headers["destination"] == want
    # In order within each queue.
    for prefix in "abn":
        mine = [m.body for m in got if m.body[0] == prefix]
        assert mine == sorted(mine)
    for m in got:
        c.ack(m)
    c.close()
    # Acknowledged where they lived: nothing comes back; the other queue kept its own.
    check = connect(broker)
    for q in ["/queue/Q.a", "/queue/Q.b.c", "/queue/Q.new"]:
        check.subscribe(q)
    check.subscribe("/queue/QX.a")
    assert body_list(check.take(2)) == bodies("x", 2)
    quiet(check)


def test_unacked_messages_go_back_when_a_pattern_consumer_leaves(broker, connect):
    pub = connect(broker)
    pub.send_many("/queue/R.a", bodies("a", 2))
    pub.send_many("/queue/R.b", bodies("b", 2))
    c = connect(broker)
    sub = c.subscribe("/queue/R.*", ack="client")
    assert len(c.take(4)) == 4
    c.unsubscribe(sub)
    d = connect(broker)
    d.subscribe("/queue/R.*")
    back = d.take(4)
    assert sorted(body_list(back)) == sorted(bodies("a", 2) + bodies("b", 2))
    assert all(m.headers.get("redelivered") == "true" for m in back)
    quiet(d)


def test_unsubscribe_stops_a_pattern_on_every_shard(broker, connect):
    c = connect(broker)
    sub = c.subscribe("/topic/U.>")
    pub = connect(broker)
    names = [f"U.t{i}" for i in range(8)]
    assert len({fnv_shard(False, n, 2) for n in names}) == 2, "topics on both shards"
    for n in names:
        pub.send(f"/topic/{n}", n)
    assert sorted(body_list(c.take(8))) == sorted(names)
    c.unsubscribe(sub)
    for n in names:
        pub.send(f"/topic/{n}", n)
    quiet(c)


def test_prefetch_bounds_a_pattern_per_shard(broker, connect):
    """The parts of a pattern subscription on one shard share its prefetch: with
    prefetch 1 and 2 shards, at most 2 unacknowledged messages, whatever the queues."""
    names = [f"P.q{i}" for i in range(6)]
    shards = {fnv_shard(True, n, 2) for n in names}
    assert shards == {0, 1}, "queues on both shards"
    pub = connect(broker)
    for n in names:
        pub.send_many(f"/queue/{n}", bodies(n, 2))
    c = connect(broker)
    c.subscribe("/queue/P.>", ack="client-individual", **{"activemq.prefetchSize": "1"})
    first = c.take(2)
    assert {fnv_shard(True, m.headers["destination"][len("/queue/"):], 2)
            for m in first} == {0, 1}, "one per shard"
    quiet(c)
    # Acknowledging returns credit on the shards the messages came from: all 12 come,
    # never more than one per shard unacknowledged.
    received = list(first)
    unacked = list(first)
    while len(received) < 12:
        for m in unacked:
            c.ack(m)
        c.col.wait(lambda: c.pending() > 0, "more messages")
        time.sleep(QUIET_S)             # whatever the two shards send now
        unacked = c.take(c.pending())
        assert len(unacked) <= 2, body_list(unacked)
        assert len({fnv_shard(True, m.headers["destination"][len("/queue/"):], 2)
                    for m in unacked}) == len(unacked), "one per shard"
        received += unacked
    assert sorted(body_list(received)) == sorted(b for n in names for b in bodies(n, 2))
    quiet(c)


def test_durable_subscription_on_a_pattern_is_refused(broker, connect):
    c = connect(broker, **{"client-id": "wild-durable"})
    c.conn.subscribe("/topic/D.>", "d1", ack="auto",
                     headers={"activemq.subscriptionName": "d", "receipt": "r1"})
    err = c.col.wait(lambda: c.col.errors, "ERROR frame", allow_error=True)[0]
    assert "wildcard" in err.body and "not supported" in err.body, err
    # The connection stays usable.
    c.col.errors.clear()
    c.subscribe("/topic/D.x")


def test_send_to_a_pattern_name_is_a_literal_destination(broker, connect):
    """As ActiveMQ: the message goes to the topic named `L.>`, which patterns match like
    any name (`*` takes the segment `>`)."""
    star, plain = connect(broker), connect(broker)
    star.subscribe("/topic/L.*")
    plain.subscribe("/topic/L.x")
    pub = connect(broker)
    pub.send("/topic/L.>", "lit")
    m = star.take_one()
    assert (m.body, m.headers["destination"]) == ("lit", "/topic/L.>")
    quiet(plain)


def test_a_pattern_counts_once_against_the_subscription_limit(broker_factory, connect):
    """Registered on every shard, a pattern subscription is still one subscription of
    the connection (maxSubscriptionsPerConnection)."""
    b = broker_factory(tandem_attrs={"maxSubscriptionsPerConnection": "2"})
    c = connect(b)
    c.subscribe("/topic/M.>")
    c.subscribe("/queue/M.*")
    c.conn.subscribe("/topic/M.x", "third", headers={"receipt": "r3"})
    err = c.col.wait(lambda: c.col.errors, "ERROR frame", allow_error=True)[0]
    assert "maxSubscriptionsPerConnection" in err.body, err
    c.col.errors.clear()        # not fatal: the connection and its subscriptions stay
    pub = connect(b)
    pub.send("/topic/M.a.b", "still subscribed")
    assert c.take_one().body == "still subscribed"
