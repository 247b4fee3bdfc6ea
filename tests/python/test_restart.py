"""Process lifecycle: what an operator (or systemd) sees on stop and restart."""

from conftest import bodies, body_list


def test_sigterm_releases_port_before_exit(broker, connect):
    """A clean stop closes the listener before the process exits, so a supervisor can
    restart on the same port at once. (As ActiveMQ does on SIGTERM: graceful shutdown.)"""
    c = connect(broker)
    c.send_many("/queue/x", bodies("x", 10), persistent=True)
    c.close()
    broker.stop()
    exited_by = broker.proc.returncode
    released = broker.port_closed()
    assert (exited_by, released) == (0, True), \
        f"returncode={exited_by} (negative = killed by that signal), port released={released}"


def test_restart_after_stop_serves_same_port(broker, connect):
    p = connect(broker)
    p.send_many("/queue/r", bodies("r", 10), persistent=True)
    p.close()
    broker.stop()
    broker.start()
    c = connect(broker)
    c.subscribe("/queue/r")
    assert body_list(c.take(10)) == bodies("r", 10)
