"""Queue browsers: SUBSCRIBE with `browser:true` (ActiveMQ's STOMP queue browser).

The subscriber gets the messages on the queue when it subscribes, in order, without
taking them, then a MESSAGE with `browser:end`, `message-id:0` and an empty body
(ActiveMQ's StompQueueBrowserSubscription). The browser's prefetch (500 unless
`activemq.prefetchSize` says otherwise) is replenished by its acks, which remove
nothing.
"""

import time

import pytest

from conftest import BrokerError, bodies, body_list


def is_end(frame) -> bool:
    return frame.headers.get("browser") == "end"


def browse_all(client, dest, max_messages=10_000, **headers):
    """Subscribes a browser to `dest` and takes frames up to the end marker; returns
    (messages, end frame, subscription id)."""
    sub_id = client.subscribe(dest, browser="true", **headers)
    got = []
    while True:
        f = client.take_one()
        if is_end(f):
            return got, f, sub_id
        got.append(f)
        assert len(got) <= max_messages, "no browser:end"


def test_browse_sees_the_queue_in_order_with_in_flight_ones_and_takes_nothing(broker, connect):
    producer = connect(broker)
    sent = bodies("b", 20)
    for i, body in enumerate(sent):
        producer.send("/queue/browse", body, persistent=True,
                      color="red" if i % 2 == 0 else "blue")
    # A consumer holds five of them, delivered and not acknowledged.
    holder = connect(broker)
    hold_id = holder.subscribe("/queue/browse", ack="client-individual",
                               **{"activemq.prefetchSize": "5"})
    assert body_list(holder.take(5)) == sent[:5]

    browser = connect(broker)
    got, end, sub_id = browse_all(browser, "/queue/browse")
    assert body_list(got) == sent
    assert [m.headers["color"] for m in got] == ["red", "blue"] * 10
    assert {m.headers["destination"] for m in got} == {"/queue/browse"}
    assert all("redelivered" not in m.headers for m in got)
    assert end.headers["subscription"] == sub_id
    assert end.headers["destination"] == "/queue/browse"
    assert end.headers["message-id"] == "0"
    assert end.body == ""
    # Nothing more comes after the end, even when new messages arrive.
    producer.send("/queue/browse", "later", persistent=True)
    time.sleep(0.3)
    assert browser.pending() == 0
    browser.unsubscribe(sub_id)

    # A selective browser sees only the matching ones.
    red, _, _ = browse_all(connect(broker), "/queue/browse", selector="color = 'red'")
    assert body_list(red) == sent[0::2]

    # Browsing took nothing: once the holder lets go, a consumer gets every message,
    # in order (the held ones flagged redelivered).
    holder.unsubscribe(hold_id)
    consumer = connect(broker)
    consumer.subscribe("/queue/browse")
    got = consumer.take(21)
    assert body_list(got) == sent + ["later"]
    assert [m.headers.get("redelivered") == "true" for m in got[:6]] == [True] * 5 + [False]


def test_a_browser_is_flowed_by_its_prefetch_and_its_acks(broker, connect):
    producer = connect(broker)
    sent = bodies("f", 10)
    producer.send_many("/queue/flow", sent, persistent=False)

    browser = connect(broker)
    browser.subscribe("/queue/flow", ack="client-individual", browser="true",
                      **{"activemq.prefetchSize": "3"})
    first = browser.take(3)
    assert body_list(first) == sent[:3]
    time.sleep(0.3)
    assert browser.pending() == 0, "no more than the prefetch unacknowledged"
    got = list(first)
    for m in first:
        browser.ack(m)
    while True:
        f = browser.take_one()
        if is_end(f):
            break
        got.append(f)
        browser.ack(f)
    assert body_list(got) == sent

    # An auto-ack browser with the same prefetch gets everything by itself.
    auto, _, _ = browse_all(connect(broker), "/queue/flow", **{"activemq.prefetchSize": "3"})
    assert body_list(auto) == sent
    consumer = connect(broker)
    consumer.subscribe("/queue/flow")
    assert body_list(consumer.take(10)) == sent


def test_browsing_an_empty_queue_ends_at_once(broker, connect):
    c = connect(broker)
    started = time.monotonic()
    got, end, _ = browse_all(c, "/queue/nothing-here")
    assert got == []
    assert end.headers["destination"] == "/queue/nothing-here"
    assert time.monotonic() - started < 2.0


def test_paged_out_bodies_are_browsed_in_order(broker_factory, connect):
    broker = broker_factory(memory_limit="1 mb")
    producer = connect(broker)
    big = "x" * 20_000
    sent = [f"{i:04d}-{big}" for i in range(150)]
    producer.send_many("/queue/paged", sent, persistent=True,
                       **{"n": "0"})
    for i in range(3):
        producer.send("/queue/paged", f"tail-{i}", persistent=True, n=str(i + 1))
    got, _, _ = browse_all(connect(broker), "/queue/paged")
    assert body_list(got) == sent + [f"tail-{i}" for i in range(3)]
    picked, _, _ = browse_all(connect(broker), "/queue/paged", selector="n IN ('2', '3')")
    assert body_list(picked) == ["tail-1", "tail-2"]


@pytest.mark.parametrize("version,dest,message", [
    ("1.0", "/queue/q", "Queue Browser feature only valid for Stomp v1.1+ clients!"),
    ("1.2", "/topic/t", "Queue Browser feature only valid for queues"),
])
def test_browsers_on_stomp_1_0_and_on_topics_are_refused(broker, connect, version, dest,
                                                         message):
    c = connect(broker, version=version)
    with pytest.raises(BrokerError, match="Queue Browser feature"):
        c.subscribe(dest, sub_id="b", browser="true")
    assert c.col.errors[0].headers["message"] == message
    # Not fatal: the connection still works.
    c.col.errors.clear()
    c.send("/queue/after", "ok")


def test_a_browser_cannot_nack(broker, connect):
    connect(broker).send("/queue/nack", "m", persistent=True)
    c = connect(broker)
    c.subscribe("/queue/nack", ack="client-individual", browser="true")
    m = c.take_one()
    with pytest.raises(BrokerError, match="Cannot Nack"):
        c.nack(m)
    c.col.errors.clear()
    assert is_end(c.take_one())
    consumer = connect(broker)
    consumer.subscribe("/queue/nack")
    assert consumer.take_one().body == "m"
