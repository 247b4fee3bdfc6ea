// A small JMS program run by tests/openwire.rs against Tandem with the real ActiveMQ
// 5.17 client (OpenWire). Prints "OK" and exits 0 when every check passed; prints
// "FAIL: why" and exits 1 otherwise.
//
//   java OpenWireSmoke smoke   <brokerUrl> <n>            queue and topic round trips
//   java OpenWireSmoke receive <brokerUrl> <queue> <n>    prints n messages, one a line:
//                                                         MSG <class> <body> <props>
//   java OpenWireSmoke features <brokerUrl>               pull consumers, CLIENT_ACKNOWLEDGE
//                                                         beyond the prefetch, local
//                                                         transactions, temporary queues,
//                                                         durable subscriptions, selectors,
//                                                         noLocal
//   java OpenWireSmoke requestreply <brokerUrl>           a reply to JMSReplyTo (a temporary
//                                                         queue) from another connection
//   java OpenWireSmoke versions <brokerUrl> <v1,v2,...>   for each version N, a client pinned
//                                                         to wireFormat.version=N (v2..v8 need
//                                                         activemq-openwire-legacy.jar): checks
//                                                         its negotiated version is N, then
//                                                         persistent text and bytes messages
//                                                         with properties through a queue, a
//                                                         topic, a transaction committed and
//                                                         one rolled back; prints
//                                                         "VERSION N negotiated=N" per version
//
// smoke: n persistent text messages with properties to a fresh queue, received with
// AUTO_ACKNOWLEDGE (bodies, typed properties, headers, order); then the same on a
// topic whose subscriber exists before the publisher sends; then the queue is empty.

import java.util.ArrayList;
import java.util.Collections;
import java.util.Enumeration;
import java.util.List;

import javax.jms.BytesMessage;
import javax.jms.Connection;
import javax.jms.DeliveryMode;
import javax.jms.Destination;
import javax.jms.JMSException;
import javax.jms.Message;
import javax.jms.MessageConsumer;
import javax.jms.MessageProducer;
import javax.jms.Session;
import javax.jms.TemporaryQueue;
import javax.jms.TextMessage;
import javax.jms.Topic;

import org.apache.activemq.ActiveMQConnection;
import org.apache.activemq.ActiveMQConnectionFactory;
import org.apache.activemq.openwire.OpenWireFormat;
import org.apache.activemq.transport.tcp.TcpTransport;

public class OpenWireSmoke {
    static void check(boolean ok, String what) {
        if (!ok) {
            System.out.println("FAIL: " + what);
            System.exit(1);
        }
    }

    public static void main(String[] args) throws Exception {
        try {
            switch (args[0]) {
                case "smoke":
                    smoke(args[1], Integer.parseInt(args[2]));
                    break;
                case "receive":
                    receive(args[1], args[2], Integer.parseInt(args[3]));
                    break;
                case "features":
                    features(args[1]);
                    break;
                case "requestreply":
                    requestReply(args[1]);
                    break;
                case "versions":
                    for (String v : args[2].split(",")) {
                        pinnedVersion(args[1], Integer.parseInt(v));
                    }
                    break;
                default:
                    check(false, "unknown mode " + args[0]);
            }
        } catch (JMSException e) {
            System.out.println("FAIL: " + e);
            e.printStackTrace(System.out);
            System.exit(1);
        }
        System.out.println("OK");
        System.exit(0);
    }

    static void smoke(String url, int n) throws Exception {
        Connection c = new ActiveMQConnectionFactory(url).createConnection();
        c.setClientID("smoke-" + System.nanoTime());
        c.start();
        Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        String suffix = Long.toString(System.nanoTime());

        // Queue: send everything, then receive it.
        Destination queue = s.createQueue("smoke.queue." + suffix);
        roundTrip(s, queue, null, n, true);

        // Topic: the subscriber must exist before the messages are sent.
        Destination topic = s.createTopic("smoke.topic." + suffix);
        MessageConsumer sub = s.createConsumer(topic);
        roundTrip(s, topic, sub, n, false);
        sub.close();

        // Nothing is left on the queue.
        MessageConsumer again = s.createConsumer(queue);
        check(again.receive(500) == null, "queue not empty after the round trip");
        again.close();
        c.close();
    }

    static void roundTrip(Session s, Destination d, MessageConsumer consumer, int n, boolean persistent)
            throws Exception {
        MessageProducer p = s.createProducer(d);
        p.setDeliveryMode(persistent ? DeliveryMode.PERSISTENT : DeliveryMode.NON_PERSISTENT);
        List<String> ids = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            TextMessage m = s.createTextMessage("message " + i + " \u00e9\u20ac\ud83d\ude00");
            m.setIntProperty("n", i);
            m.setLongProperty("big", 1L << 40);
            m.setBooleanProperty("even", i % 2 == 0);
            m.setDoubleProperty("half", i / 2.0);
            m.setStringProperty("who", "smoke-" + i);
            m.setJMSCorrelationID("corr-" + i);
            m.setJMSType("smoke-type");
            p.send(m);
            ids.add(m.getJMSMessageID());
        }
        p.close();
        MessageConsumer cons = consumer != null ? consumer : s.createConsumer(d);
        for (int i = 0; i < n; i++) {
            Message m = cons.receive(10000);
            check(m != null, d + ": message " + i + " not received");
            check(m instanceof TextMessage, d + ": message " + i + " is a " + m.getClass().getName());
            String text = ((TextMessage) m).getText();
            check(("message " + i + " \u00e9\u20ac\ud83d\ude00").equals(text), d + ": body " + i + " was '" + text + "'");
            check(m.getObjectProperty("n") instanceof Integer, d + ": property n is not an Integer: " + m.getObjectProperty("n"));
            check(m.getIntProperty("n") == i, d + ": property n " + m.getIntProperty("n") + " != " + i);
            check(m.getObjectProperty("big") instanceof Long && m.getLongProperty("big") == 1L << 40, d + ": property big");
            check(m.getObjectProperty("even") instanceof Boolean && m.getBooleanProperty("even") == (i % 2 == 0), d + ": property even");
            check(m.getDoubleProperty("half") == i / 2.0, d + ": property half");
            check(("smoke-" + i).equals(m.getStringProperty("who")), d + ": property who");
            check(("corr-" + i).equals(m.getJMSCorrelationID()), d + ": correlation id " + m.getJMSCorrelationID());
            check("smoke-type".equals(m.getJMSType()), d + ": JMSType " + m.getJMSType());
            check(ids.get(i).equals(m.getJMSMessageID()), d + ": message id " + m.getJMSMessageID() + " != " + ids.get(i));
            check(m.getJMSDeliveryMode() == (persistent ? DeliveryMode.PERSISTENT : DeliveryMode.NON_PERSISTENT), d + ": delivery mode");
            check(!m.getJMSRedelivered(), d + ": redelivered");
            check(d.equals(m.getJMSDestination()), d + ": JMSDestination " + m.getJMSDestination());
        }
        if (consumer == null) {
            cons.close();
        }
    }

    static void receive(String url, String queue, int n) throws Exception {
        Connection c = new ActiveMQConnectionFactory(url).createConnection();
        c.start();
        Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        MessageConsumer cons = s.createConsumer(s.createQueue(queue));
        for (int i = 0; i < n; i++) {
            Message m = cons.receive(10000);
            check(m != null, "message " + i + " not received");
            String body;
            String kind;
            if (m instanceof TextMessage) {
                kind = "text";
                body = ((TextMessage) m).getText();
            } else if (m instanceof BytesMessage) {
                kind = "bytes";
                BytesMessage b = (BytesMessage) m;
                byte[] raw = new byte[(int) b.getBodyLength()];
                b.readBytes(raw);
                body = new String(raw, "UTF-8");
            } else {
                kind = m.getClass().getSimpleName();
                body = "";
            }
            List<String> props = new ArrayList<>();
            for (Enumeration<?> e = m.getPropertyNames(); e.hasMoreElements();) {
                String k = (String) e.nextElement();
                props.add(k + "=" + m.getObjectProperty(k));
            }
            Collections.sort(props);
            System.out.println("MSG " + kind + " " + body + " " + String.join(",", props)
                    + " persistent=" + (m.getJMSDeliveryMode() == DeliveryMode.PERSISTENT)
                    + " priority=" + m.getJMSPriority()
                    + " correlation=" + m.getJMSCorrelationID()
                    + " type=" + m.getJMSType());
        }
        check(cons.receive(300) == null, "more messages than expected");
        c.close();
    }

    static void features(String url) throws Exception {
        String suffix = Long.toString(System.nanoTime());
        ActiveMQConnectionFactory f = new ActiveMQConnectionFactory(url);
        Connection c = f.createConnection();
        c.setClientID("features-" + suffix);
        c.start();
        Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);

        // Pull consumer (prefetch 0): an empty queue answers receive(t) and
        // receiveNoWait() with null, then a message that is there.
        Destination pq = s.createQueue("features.pull." + suffix + "?consumer.prefetchSize=0");
        MessageConsumer pull = s.createConsumer(pq);
        long t0 = System.currentTimeMillis();
        check(pull.receive(300) == null, "pull: message from an empty queue");
        long waited = System.currentTimeMillis() - t0;
        check(waited >= 250 && waited < 5000, "pull: receive(300) returned after " + waited + " ms");
        check(pull.receiveNoWait() == null, "pull: receiveNoWait on an empty queue");
        MessageProducer pp = s.createProducer(pq);
        pp.send(s.createTextMessage("pulled"));
        Message pm = pull.receive(5000);
        check(pm instanceof TextMessage && ((TextMessage) pm).getText().equals("pulled"), "pull: got " + pm);
        pull.close();

        // CLIENT_ACKNOWLEDGE with prefetch 10: 30 messages received before one
        // acknowledge (the DELIVERED window extension lets them through).
        Session cs = c.createSession(false, Session.CLIENT_ACKNOWLEDGE);
        Destination cq = cs.createQueue("features.client." + suffix + "?consumer.prefetchSize=10");
        MessageProducer cp = cs.createProducer(cq);
        for (int i = 0; i < 30; i++) {
            cp.send(cs.createTextMessage("c" + i));
        }
        MessageConsumer cc = cs.createConsumer(cq);
        Message last = null;
        for (int i = 0; i < 30; i++) {
            last = cc.receive(5000);
            check(last != null, "client ack: message " + i + " not received");
            check(("c" + i).equals(((TextMessage) last).getText()), "client ack: order at " + i);
        }
        last.acknowledge();
        cc.close();
        MessageConsumer cc2 = cs.createConsumer(cq);
        check(cc2.receive(300) == null, "client ack: acknowledged messages came back");
        cc2.close();

        // Local transaction: sends commit together; a rolled back receive comes back
        // redelivered; a committed one is gone.
        Session ts = c.createSession(true, Session.SESSION_TRANSACTED);
        Destination tq = ts.createQueue("features.tx." + suffix);
        MessageProducer tp = ts.createProducer(tq);
        MessageConsumer tc = ts.createConsumer(tq);
        tp.send(ts.createTextMessage("t1"));
        tp.send(ts.createTextMessage("t2"));
        check(tc.receive(300) == null, "tx: uncommitted send visible");
        ts.commit();
        Message t1 = tc.receive(5000);
        check(t1 != null && "t1".equals(((TextMessage) t1).getText()), "tx: t1 " + t1);
        ts.rollback();
        Message again = tc.receive(5000);
        check(again != null && "t1".equals(((TextMessage) again).getText()) && again.getJMSRedelivered(),
                "tx: t1 not redelivered after rollback: " + again);
        Message t2 = tc.receive(5000);
        check(t2 != null && "t2".equals(((TextMessage) t2).getText()), "tx: t2 " + t2);
        ts.commit();
        check(tc.receive(300) == null, "tx: committed messages came back");
        tc.close();

        // Temporary queue: a reply sent before its consumer exists waits there.
        TemporaryQueue tmp = s.createTemporaryQueue();
        MessageProducer rp = s.createProducer(tmp);
        rp.send(s.createTextMessage("reply"));
        MessageConsumer rc = s.createConsumer(tmp);
        Message reply = rc.receive(5000);
        check(reply != null && "reply".equals(((TextMessage) reply).getText()), "temp queue: " + reply);
        rc.close();
        tmp.delete();

        // Durable subscription: messages published while it is inactive wait for it.
        Topic dt = s.createTopic("features.durable." + suffix);
        MessageConsumer d1 = s.createDurableSubscriber(dt, "sub1");
        d1.close();
        MessageProducer dp = s.createProducer(dt);
        dp.setDeliveryMode(DeliveryMode.PERSISTENT);
        dp.send(s.createTextMessage("while away"));
        MessageConsumer d2 = s.createDurableSubscriber(dt, "sub1");
        Message dm = d2.receive(5000);
        check(dm != null && "while away".equals(((TextMessage) dm).getText()), "durable: " + dm);
        d2.close();
        s.unsubscribe("sub1");

        // Selector on a typed property.
        Destination sq = s.createQueue("features.selector." + suffix);
        MessageProducer sp = s.createProducer(sq);
        for (int i = 0; i < 5; i++) {
            Message m = s.createTextMessage("s" + i);
            m.setIntProperty("n", i);
            sp.send(m);
        }
        MessageConsumer sc = s.createConsumer(sq, "n > 2");
        Message s3 = sc.receive(5000);
        Message s4 = sc.receive(5000);
        check(s3 != null && s4 != null && "s3".equals(((TextMessage) s3).getText())
                && "s4".equals(((TextMessage) s4).getText()), "selector: " + s3 + " " + s4);
        check(sc.receive(300) == null, "selector: an unselected message came");
        try {
            s.createConsumer(sq, "n >");
            check(false, "invalid selector accepted");
        } catch (javax.jms.InvalidSelectorException expected) {
            // as ActiveMQ
        }

        // noLocal: a topic subscriber does not get its own connection's messages.
        Topic nt = s.createTopic("features.nolocal." + suffix);
        MessageConsumer nl = s.createConsumer(nt, null, true);
        s.createProducer(nt).send(s.createTextMessage("own"));
        Connection other = f.createConnection();
        other.start();
        Session os = other.createSession(false, Session.AUTO_ACKNOWLEDGE);
        os.createProducer(os.createTopic("features.nolocal." + suffix)).send(os.createTextMessage("other"));
        Message nm = nl.receive(5000);
        check(nm instanceof TextMessage && "other".equals(((TextMessage) nm).getText()), "noLocal: " + nm);
        check(nl.receive(300) == null, "noLocal: got its own message");
        other.close();
        c.close();
    }

    /** One connection pinned to OpenWire {@code version}; every check names it. */
    static void pinnedVersion(String baseUrl, int version) throws Exception {
        String v = "v" + version + ": ";
        String url = baseUrl + (baseUrl.contains("?") ? "&" : "?") + "wireFormat.version=" + version;
        String suffix = version + "." + System.nanoTime();
        Connection c = new ActiveMQConnectionFactory(url).createConnection();
        c.setClientID("pinned-" + suffix);
        c.start();
        // The version the client's marshallers use after the WireFormatInfo exchange.
        TcpTransport tcp = ((ActiveMQConnection) c).getTransport().narrow(TcpTransport.class);
        check(tcp != null, v + "no TcpTransport in the chain");
        int negotiated = ((OpenWireFormat) tcp.getWireFormat()).getVersion();
        check(negotiated == version, v + "negotiated version " + negotiated);

        // Queue: persistent text and bytes messages with properties and headers.
        Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        Destination queue = s.createQueue("pinned.queue." + suffix);
        MessageProducer p = s.createProducer(queue);
        p.setDeliveryMode(DeliveryMode.PERSISTENT);
        String text = "text " + version + " \u00e9\u20ac\ud83d\ude00";
        TextMessage tm = s.createTextMessage(text);
        tm.setIntProperty("n", version);
        tm.setLongProperty("big", 1L << 40);
        tm.setBooleanProperty("flag", true);
        tm.setDoubleProperty("half", version / 2.0);
        tm.setStringProperty("who", "pinned-" + version);
        tm.setJMSCorrelationID("corr-" + version);
        tm.setJMSType("pinned-type");
        p.send(tm);
        byte[] raw = {0, 1, 2, (byte) 0x7f, (byte) 0x80, (byte) 0xff, (byte) version};
        BytesMessage bm = s.createBytesMessage();
        bm.writeBytes(raw);
        bm.setStringProperty("kind", "bytes");
        bm.setShortProperty("short", (short) -7);
        p.send(bm);
        p.close();
        MessageConsumer qc = s.createConsumer(queue);
        Message m1 = qc.receive(10000);
        check(m1 instanceof TextMessage, v + "queue: first message " + m1);
        check(text.equals(((TextMessage) m1).getText()), v + "queue: text '" + ((TextMessage) m1).getText() + "'");
        check(m1.getObjectProperty("n") instanceof Integer && m1.getIntProperty("n") == version, v + "property n");
        check(m1.getObjectProperty("big") instanceof Long && m1.getLongProperty("big") == 1L << 40, v + "property big");
        check(m1.getObjectProperty("flag") instanceof Boolean && m1.getBooleanProperty("flag"), v + "property flag");
        check(m1.getDoubleProperty("half") == version / 2.0, v + "property half");
        check(("pinned-" + version).equals(m1.getStringProperty("who")), v + "property who");
        check(("corr-" + version).equals(m1.getJMSCorrelationID()), v + "correlation id " + m1.getJMSCorrelationID());
        check("pinned-type".equals(m1.getJMSType()), v + "JMSType " + m1.getJMSType());
        check(tm.getJMSMessageID().equals(m1.getJMSMessageID()), v + "message id " + m1.getJMSMessageID() + " != " + tm.getJMSMessageID());
        check(m1.getJMSDeliveryMode() == DeliveryMode.PERSISTENT, v + "delivery mode");
        check(!m1.getJMSRedelivered(), v + "redelivered");
        check(queue.equals(m1.getJMSDestination()), v + "JMSDestination " + m1.getJMSDestination());
        Message m2 = qc.receive(10000);
        check(m2 instanceof BytesMessage, v + "queue: second message " + m2);
        BytesMessage got = (BytesMessage) m2;
        byte[] back = new byte[(int) got.getBodyLength()];
        got.readBytes(back);
        check(java.util.Arrays.equals(raw, back), v + "bytes body " + java.util.Arrays.toString(back));
        check("bytes".equals(got.getStringProperty("kind")), v + "property kind");
        check(got.getObjectProperty("short") instanceof Short && got.getShortProperty("short") == -7, v + "property short");
        check(bm.getJMSMessageID().equals(got.getJMSMessageID()), v + "bytes message id");
        check(qc.receive(300) == null, v + "queue: a third message");
        qc.close();

        // Topic: the subscriber exists before the publisher sends.
        Topic topic = s.createTopic("pinned.topic." + suffix);
        MessageConsumer sub = s.createConsumer(topic);
        MessageProducer pub = s.createProducer(topic);
        for (int i = 0; i < 3; i++) {
            TextMessage m = s.createTextMessage("topic " + i);
            m.setIntProperty("i", i);
            pub.send(m);
        }
        for (int i = 0; i < 3; i++) {
            Message m = sub.receive(10000);
            check(m instanceof TextMessage && ("topic " + i).equals(((TextMessage) m).getText())
                    && m.getIntProperty("i") == i, v + "topic: message " + i + " was " + m);
            check(topic.equals(m.getJMSDestination()), v + "topic: JMSDestination " + m.getJMSDestination());
        }
        sub.close();
        pub.close();

        // Transaction: sends appear at commit; a rolled back receive comes back
        // redelivered; what is committed is gone.
        Session ts = c.createSession(true, Session.SESSION_TRANSACTED);
        Destination tq = ts.createQueue("pinned.tx." + suffix);
        MessageProducer tp = ts.createProducer(tq);
        MessageConsumer tc = ts.createConsumer(tq);
        tp.send(ts.createTextMessage("t1"));
        tp.send(ts.createTextMessage("t2"));
        check(tc.receive(300) == null, v + "tx: uncommitted send visible");
        ts.commit();
        Message t1 = tc.receive(10000);
        check(t1 instanceof TextMessage && "t1".equals(((TextMessage) t1).getText()), v + "tx: t1 " + t1);
        ts.rollback();
        Message again = tc.receive(10000);
        check(again instanceof TextMessage && "t1".equals(((TextMessage) again).getText()) && again.getJMSRedelivered(),
                v + "tx: t1 not redelivered after rollback: " + again);
        Message t2 = tc.receive(10000);
        check(t2 instanceof TextMessage && "t2".equals(((TextMessage) t2).getText()), v + "tx: t2 " + t2);
        ts.commit();
        check(tc.receive(300) == null, v + "tx: committed messages came back");
        tc.close();
        ts.close();
        s.close();
        c.close();
        System.out.println("VERSION " + version + " negotiated=" + negotiated);
    }

    static void requestReply(String url) throws Exception {
        String suffix = Long.toString(System.nanoTime());
        ActiveMQConnectionFactory f = new ActiveMQConnectionFactory(url);
        // The responder connects first and knows temporary queues only from the
        // broker's advisories (the client refuses to send to one it does not know).
        Connection rc = f.createConnection();
        rc.start();
        Session rs = rc.createSession(false, Session.AUTO_ACKNOWLEDGE);
        MessageConsumer requests = rs.createConsumer(rs.createQueue("rr.requests." + suffix));
        MessageProducer replies = rs.createProducer(null);

        Connection qc = f.createConnection();
        qc.start();
        Session qs = qc.createSession(false, Session.AUTO_ACKNOWLEDGE);
        TemporaryQueue replyTo = qs.createTemporaryQueue();
        MessageConsumer answers = qs.createConsumer(replyTo);
        for (int i = 0; i < 3; i++) {
            TextMessage req = qs.createTextMessage("question " + i);
            req.setJMSReplyTo(replyTo);
            req.setJMSCorrelationID("q" + i);
            qs.createProducer(qs.createQueue("rr.requests." + suffix)).send(req);

            Message got = requests.receive(5000);
            check(got != null, "request " + i + " not received");
            check(replyTo.equals(got.getJMSReplyTo()), "JMSReplyTo " + got.getJMSReplyTo() + " != " + replyTo);
            TextMessage answer = rs.createTextMessage("answer " + i);
            answer.setJMSCorrelationID(got.getJMSCorrelationID());
            replies.send(got.getJMSReplyTo(), answer);

            Message back = answers.receive(5000);
            check(back instanceof TextMessage && ("answer " + i).equals(((TextMessage) back).getText())
                    && ("q" + i).equals(back.getJMSCorrelationID()), "reply " + i + ": " + back);
        }
        // A responder connected after the temporary queue was created learns it too.
        Connection late = f.createConnection();
        late.start();
        Session ls = late.createSession(false, Session.AUTO_ACKNOWLEDGE);
        ls.createProducer(replyTo).send(ls.createTextMessage("late"));
        Message lateReply = answers.receive(5000);
        check(lateReply instanceof TextMessage && "late".equals(((TextMessage) lateReply).getText()), "late reply: " + lateReply);
        late.close();
        qc.close();
        rc.close();
    }
}
