"""1. CONNECT in every version, and authentication."""

import re

import pytest

from conftest import Client, body_list

USERS = [("admin", "s3cret", "admins,users"), ("app", "app-pw", "users")]


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
def test_connect_negotiates_version(broker, connect, version):
    c = connect(broker, version=version)
    h = c.col.connected_frame.headers
    assert h.get("version") == version
    assert re.fullmatch(r"\d+,\d+", h.get("heart-beat", "")), h
    # and the connection works: a round trip on a queue
    c.subscribe("/queue/connect")
    c.send("/queue/connect", f"hello {version}")
    assert c.take_one().body == f"hello {version}"


def test_connect_heartbeats_negotiated(broker):
    """Client offers/asks 500 ms heart-beats. If the broker promises to send them
    (sx > 0, negotiated period max(sx, 500)), one must arrive and the connection must
    stay up while idle. (The bound is generous; no timing is asserted.)"""
    c = Client(broker, version="1.2", heartbeats=(500, 500))
    frame = c.connect()
    try:
        sx, sy = map(int, frame.headers["heart-beat"].split(","))
        if sx > 0:
            period_s = max(sx, 500) / 1000
            c.col.wait(lambda: c.col.heartbeats >= 1, "a heart-beat from the broker",
                       timeout=3 * period_s + 5)
        assert not c.col.disconnected
        c.subscribe("/queue/hb")
        c.send("/queue/hb", "beat")
        assert c.take_one().body == "beat"
    finally:
        c.disconnect()


@pytest.fixture
def auth_broker(broker_factory):
    return broker_factory(users=USERS)


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
def test_auth_good_login(auth_broker, connect, version):
    c = connect(auth_broker, version=version, login="app", passcode="app-pw")
    assert c.col.connected_frame.headers.get("version") == version
    c.subscribe("/queue/auth")
    c.send("/queue/auth", "authorised")
    assert c.take_one().body == "authorised"


@pytest.mark.parametrize("login,passcode", [("app", "wrong"), ("nobody", "x"), (None, None)],
                         ids=["wrong-password", "unknown-user", "no-login"])
def test_auth_rejected_then_broker_serves_others(auth_broker, connect, login, passcode):
    bad = Client(auth_broker, version="1.2")
    err = bad.connect(login, passcode, expect_error=True)
    assert err.cmd == "ERROR"
    assert bad.col.connected_frame is None
    bad.wait_closed_by_broker()           # the broker closes the connection
    assert "app-pw" not in str(err.headers) + str(err.body)
    bad.close()

    good = connect(auth_broker, login="admin", passcode="s3cret")
    good.subscribe("/queue/after-reject")
    good.send("/queue/after-reject", "still serving")
    assert body_list(good.take(1)) == ["still serving"]
