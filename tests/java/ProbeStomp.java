import javax.jms.BytesMessage;
import javax.jms.Connection;
import javax.jms.DeliveryMode;
import javax.jms.Destination;
import javax.jms.Message;
import javax.jms.MessageConsumer;
import javax.jms.MessageProducer;
import javax.jms.Session;

/**
 * The JMS side of a STOMP&lt;-&gt;JMS exchange (the STOMP side is the Rust test's own
 * STOMP client).
 *
 * <pre>
 * stomp-send --url U --dest queue:Q|topic:T
 * stomp-recv --url U --dest queue:Q|topic:T [--count N=2] [--timeout-ms T=10000]
 * </pre>
 *
 * {@code stomp-send} sends, persistent: a TextMessage {@code text from jms ✓} and then a
 * BytesMessage {@code 00 01 02 00 ff}, each with JMSCorrelationID {@code corr-<kind>},
 * JMSType {@code type-<kind>} and the properties {@code kind} (text|bytes),
 * {@code s_prop="v 1"} (String), {@code i_prop=42} (int), {@code l_prop=1234567890123}
 * (long), {@code b_prop=true} (boolean), {@code d_prop=2.5} (double). Lines:
 * {@code SENT kind=K}, {@code OK}.
 *
 * <p>{@code stomp-recv} prints {@code READY} once subscribed, then for each message what
 * {@code bodies} prints ({@code RECV kind=K type=T body=B <headers>} and its
 * {@code PROP} lines; K is the {@code kind} property when there is one), then
 * {@code OK received=N}.
 */
final class ProbeStomp {
    static void send(JmsProbe.Args args) throws Exception {
        JmsProbe.ConnSpec spec = new JmsProbe.ConnSpec(args);
        Destination dest = JmsProbe.destination(args.require("--dest"));
        args.done();
        Connection c = spec.open();
        try {
            Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
            MessageProducer p = s.createProducer(dest);
            p.setDeliveryMode(DeliveryMode.PERSISTENT);
            Message text = s.createTextMessage("text from jms \u2713");
            BytesMessage bytes = s.createBytesMessage();
            bytes.writeBytes(new byte[] {0x00, 0x01, 0x02, 0x00, (byte) 0xff});
            String[] kinds = {"text", "bytes"};
            Message[] msgs = {text, bytes};
            for (int i = 0; i < 2; i++) {
                Message m = msgs[i];
                m.setJMSCorrelationID("corr-" + kinds[i]);
                m.setJMSType("type-" + kinds[i]);
                m.setStringProperty("kind", kinds[i]);
                m.setStringProperty("s_prop", "v 1");
                m.setIntProperty("i_prop", 42);
                m.setLongProperty("l_prop", 1234567890123L);
                m.setBooleanProperty("b_prop", true);
                m.setDoubleProperty("d_prop", 2.5);
                p.send(m);
                JmsProbe.line("SENT kind=" + kinds[i]);
            }
        } finally {
            c.close();
        }
        JmsProbe.line("OK");
    }

    static void recv(JmsProbe.Args args) throws Exception {
        JmsProbe.ConnSpec spec = new JmsProbe.ConnSpec(args);
        Destination dest = JmsProbe.destination(args.require("--dest"));
        int count = args.getInt("--count", 2);
        long timeout = args.getLong("--timeout-ms", 10_000);
        args.done();
        Connection c = spec.open();
        int got = 0;
        try {
            Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
            MessageConsumer consumer = s.createConsumer(dest);
            c.start();
            JmsProbe.line("READY");
            for (int i = 0; i < count; i++) {
                Message m = consumer.receive(timeout);
                if (m == null) {
                    throw new JmsProbe.Fail("timeout received=" + got + " expected=" + count);
                }
                got++;
                ProbeBodies.print(m);
            }
        } finally {
            c.close();
        }
        JmsProbe.line("OK received=" + got);
    }
}
