// A small JMS program run by tests/openwire.rs against Tandem with the real ActiveMQ
// 5.17 client (OpenWire). Prints "OK" and exits 0 when every check passed; prints
// "FAIL: why" and exits 1 otherwise.
//
//   java OpenWireSmoke smoke   <brokerUrl> <n>            queue and topic round trips
//   java OpenWireSmoke receive <brokerUrl> <queue> <n>    prints n messages, one a line:
//                                                         MSG <class> <body> <props>
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
import javax.jms.TextMessage;

import org.apache.activemq.ActiveMQConnectionFactory;

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
}
