"""6. Topics: fan-out and durable subscriptions."""

import pytest

from conftest import bodies, body_list, marker_follows

DURABLE = {"activemq.subscriptionName": "news-sub"}
CLIENT_ID = {"client-id": "durable-client-1"}


def test_fan_out_to_three_subscribers(broker, connect):
    subs = [connect(broker) for _ in range(3)]
    for s in subs:
        s.subscribe("/topic/fan")
    pub = connect(broker)
    sent = bodies("fan", 100)
    pub.send_many("/topic/fan", sent, persistent=False)

    for s in subs:
        got = s.take(100)
        assert body_list(got) == sent
        assert {m.headers["destination"] for m in got} == {"/topic/fan"}
    pub.send("/topic/fan", "END")            # one marker, seen next by every subscriber
    assert [s.take_one().body for s in subs] == ["END"] * 3


def test_non_durable_subscriber_misses_what_was_published_while_away(broker, connect):
    pub = connect(broker)
    s = connect(broker)
    s.subscribe("/topic/live")
    s.disconnect()
    pub.send_many("/topic/live", bodies("missed", 10), persistent=True)

    s2 = connect(broker)
    s2.subscribe("/topic/live")
    marker_follows(s2, pub, "/topic/live")


def _make_durable(broker, connect):
    s = connect(broker, **CLIENT_ID)
    s.subscribe("/topic/news", sub_id="d1", **DURABLE)
    return s


def test_durable_subscription_gets_what_was_published_while_away(broker, connect):
    _make_durable(broker, connect).disconnect()
    pub = connect(broker)
    sent = bodies("news", 100)
    pub.send_many("/topic/news", sent, persistent=True)

    s = _make_durable(broker, connect)
    assert body_list(s.take(100)) == sent
    marker_follows(s, pub, "/topic/news")


def test_durable_subscription_survives_kill9(broker, connect):
    _make_durable(broker, connect).disconnect()
    pub = connect(broker)
    sent = bodies("news", 100)
    pub.send_many("/topic/news", sent, persistent=True)
    pub.close()

    broker.kill9()
    broker.restart()

    s = _make_durable(broker, connect)
    assert body_list(s.take(100)) == sent
    marker_follows(s, connect(broker), "/topic/news")


def test_durable_subscription_survives_clean_restart(broker, connect):
    _make_durable(broker, connect).disconnect()
    broker.stop()
    broker.start()

    pub = connect(broker)
    sent = bodies("news", 20)
    pub.send_many("/topic/news", sent, persistent=True)
    s = _make_durable(broker, connect)
    assert body_list(s.take(20)) == sent


def test_unsubscribe_with_name_removes_durable_subscription(broker, connect):
    s = _make_durable(broker, connect)
    s.unsubscribe("d1", **DURABLE)
    s.disconnect()

    pub = connect(broker)
    pub.send_many("/topic/news", bodies("gone", 10), persistent=True)

    s2 = _make_durable(broker, connect)   # a brand-new subscription of the same name
    marker_follows(s2, pub, "/topic/news")


def test_unsubscribe_with_name_removes_inactive_durable_subscription(broker, connect):
    _make_durable(broker, connect).disconnect()
    s = connect(broker, **CLIENT_ID)          # not subscribed on this connection
    s.unsubscribe("d1", **DURABLE)
    s.disconnect()

    pub = connect(broker)
    pub.send_many("/topic/news", bodies("gone", 10), persistent=True)
    s2 = _make_durable(broker, connect)
    marker_follows(s2, pub, "/topic/news")
