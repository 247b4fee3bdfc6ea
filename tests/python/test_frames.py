"""7-9. Bodies, headers, expiry, temporary queues."""

import random

import pytest

from conftest import Client, body_list, marker_follows, now_ms, poll_until

ALL_BYTES = bytes(range(256))


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
@pytest.mark.parametrize("size", [256, 4096, 1 << 20], ids=["256B", "4KiB", "1MiB"])
def test_binary_body_round_trip(broker, connect, version, size):
    if size == 256:
        body = ALL_BYTES
    else:
        body = (b"\x00" + ALL_BYTES) * (size // 257) + random.Random(size).randbytes(size % 257)
    assert len(body) == size and b"\x00" in body
    c = connect(broker, version=version, auto_decode=False)
    assert c.conn.auto_content_length
    c.subscribe("/queue/bin")
    c.send("/queue/bin", body, persistent=True)
    m = c.take_one()
    assert m.headers.get("content-length") == str(size)
    assert m.body == body


def test_one_mib_body_survives_restart(broker, connect):
    body = random.Random(7).randbytes(1 << 20)
    c = connect(broker, auto_decode=False)
    c.send("/queue/big", body, persistent=True)
    c.close()
    broker.kill9()
    broker.restart()
    c2 = connect(broker, auto_decode=False)
    c2.subscribe("/queue/big")
    assert c2.take_one().body == body


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
def test_custom_headers_round_trip(broker, connect, version):
    c = connect(broker, version=version)
    c.subscribe("/queue/hdr")
    headers = {"x-order": "42", "x-name": "tandem test", "JMSXGroupID": "g1",
               "reply-to": "/queue/answers", "correlation-id": "corr-7", "type": "kind-a"}
    c.send("/queue/hdr", "with headers", **headers)
    m = c.take_one()
    assert m.body == "with headers"
    assert {k: m.headers.get(k) for k in headers} == headers


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_escaped_header_values_round_trip(broker, connect, version):
    c = connect(broker, version=version)
    c.subscribe("/queue/esc")
    value = "a:b\nc\\d::\\n end"
    c.send("/queue/esc", "escaped", **{"x-tricky": value, "x-colon": "k:v"})
    m = c.take_one()
    assert m.headers.get("x-tricky") == value
    assert m.headers.get("x-colon") == "k:v"


def test_expired_message_is_never_delivered(broker, connect):
    p = connect(broker)
    p.send("/queue/exp", "stale", persistent=True, expires=str(now_ms() - 60_000))
    p.send("/queue/exp", "stale-np", expires=str(now_ms() - 60_000))
    future = str(now_ms() + 3_600_000)
    p.send("/queue/exp", "fresh", persistent=True, expires=future)

    c = connect(broker)
    c.subscribe("/queue/exp")
    m = c.take_one()
    assert m.body == "fresh"
    assert m.headers.get("expires") == future
    marker_follows(c, p, "/queue/exp")


def test_expires_zero_means_never(broker, connect):
    p = connect(broker)
    p.send("/queue/exp0", "forever", persistent=True, expires="0")
    c = connect(broker)
    c.subscribe("/queue/exp0")
    assert c.take_one().body == "forever"


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_temp_queue_request_reply(broker, connect, version):
    requester = connect(broker, version=version)
    responder = connect(broker, version=version)
    responder.subscribe("/queue/service")
    requester.subscribe("/temp-queue/x")

    requester.send("/queue/service", "ping", **{"reply-to": "/temp-queue/x"})
    req = responder.take_one()
    assert req.body == "ping"
    reply_to = req.headers.get("reply-to")
    assert reply_to, req.headers

    responder.send(reply_to, "pong", **{"correlation-id": "c1"})
    rep = requester.take_one()
    assert rep.body == "pong"
    assert rep.headers.get("correlation-id") == "c1"


def test_temp_queue_private_to_its_connection(broker, connect):
    """Two connections using the same /temp-queue/x name get different queues."""
    a, b = connect(broker), connect(broker)
    a.subscribe("/temp-queue/x")
    b.subscribe("/temp-queue/x")
    a.send("/temp-queue/x", "for a")
    b.send("/temp-queue/x", "for b")
    assert a.take_one().body == "for a"
    assert b.take_one().body == "for b"
    marker_follows(a, a, "/temp-queue/x")
    marker_follows(b, b, "/temp-queue/x")


def test_message_expiring_while_queued_is_not_delivered(broker, connect):
    p = connect(broker)
    expires = now_ms() + 300
    p.send("/queue/exp-later", "short-lived", persistent=True, expires=str(expires))
    p.send("/queue/exp-later", "short-lived-np", expires=str(expires))
    poll_until(5, lambda: now_ms() > expires + 50, "the expiry time to pass")
    c = connect(broker)
    c.subscribe("/queue/exp-later")
    marker_follows(c, p, "/queue/exp-later")
