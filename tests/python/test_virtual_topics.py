"""Virtual topics, ActiveMQ's default naming (no configuration): a SEND to
/topic/VirtualTopic.X also goes to every queue Consumer.<name>.VirtualTopic.X that
exists at the time of the send, with the competing consumers and durability of a queue."""

from conftest import bodies, body_list, marker_follows, poll_until

TOPIC = "/topic/VirtualTopic.Orders"
QA = "/queue/Consumer.a.VirtualTopic.Orders"
QB = "/queue/Consumer.b.VirtualTopic.Orders"


def test_send_reaches_consumer_queues_and_topic_subscribers(broker, connect):
    pub = connect(broker)
    pub.send_many(TOPIC, bodies("early", 5))        # no consumer queue yet
    a, b, t = connect(broker), connect(broker), connect(broker)
    a.subscribe(QA)
    b.subscribe(QB)
    t.subscribe(TOPIC)
    sent = bodies("vt", 50)
    pub.send_many(TOPIC, sent, persistent=True)
    for c, dest in ((a, QA), (b, QB)):
        got = c.take(50)
        assert body_list(got) == sent
        assert {m.headers["destination"] for m in got} == {dest}
    assert body_list(t.take(50)) == sent
    # Nothing sent before the queues existed, nothing twice.
    marker_follows(a, pub, QA)
    marker_follows(b, pub, QB)


def test_competing_consumers_share_a_consumer_queue(broker, connect):
    c1, c2 = connect(broker), connect(broker)
    for c in (c1, c2):
        c.subscribe(QA, ack="client-individual", **{"activemq.prefetchSize": "1"})
    pub = connect(broker)
    sent = bodies("share", 20)
    pub.send_many(TOPIC, sent, persistent=True)
    got = []

    def take_and_ack():
        for c in (c1, c2):
            while c.pending():
                m = c.take_one()
                got.append(m.body)
                c.ack(m)
        return len(got) >= 20
    poll_until(10, take_and_ack, "20 messages between the two consumers")
    assert sorted(got) == sent
    assert c1.cursor > 0 and c2.cursor > 0, "both consumers got some"


def test_transacted_send_reaches_consumer_queues_at_commit(broker, connect):
    a = connect(broker)
    a.subscribe(QA)
    pub = connect(broker)
    pub.begin("t1")
    for body in bodies("tx", 10):
        pub.send(TOPIC, body, persistent=True, transaction="t1")
    pub.commit("t1")
    assert body_list(a.take(10)) == bodies("tx", 10)
    marker_follows(a, pub, QA)


def test_consumer_queue_and_its_messages_survive_kill9(broker, connect):
    c = connect(broker)
    c.subscribe(QA)
    c.disconnect()                      # the queue stays, empty
    broker.kill9()
    broker.restart()
    pub = connect(broker)
    sent = bodies("kept", 200)
    pub.send_many(TOPIC, sent, persistent=True)      # routed: the queue is remembered
    broker.kill9()                                   # right after the last receipt
    pub.close()
    broker.restart()
    c2 = connect(broker)
    c2.subscribe(QA)
    assert body_list(c2.take(200)) == sent
    marker_follows(c2, connect(broker), QA)
