import java.util.ArrayList;
import java.util.Arrays;

import javax.jms.BytesMessage;
import javax.jms.Connection;
import javax.jms.DeliveryMode;
import javax.jms.Destination;
import javax.jms.MapMessage;
import javax.jms.Message;
import javax.jms.MessageConsumer;
import javax.jms.MessageProducer;
import javax.jms.Session;
import javax.jms.StreamMessage;

import org.apache.activemq.command.ActiveMQQueue;

/**
 * {@code bodies}: every JMS message type, with properties of every type and the JMS
 * header fields, sent on one connection and received on another.
 *
 * <pre>
 * bodies --url U --dest queue:Q [--timeout-ms T=10000]
 * </pre>
 *
 * Sends, in this order, persistent with priority 6: {@code text} (non-ASCII, a non-BMP
 * character and a NUL), {@code emptytext} (""), {@code nulltext} (no text), {@code bytes},
 * {@code map}, {@code object} (a {@code java.util.ArrayList}), {@code stream} and
 * {@code message} (no body). Each has JMSCorrelationID {@code corr-<kind>}, JMSType
 * {@code type-<kind>}, JMSReplyTo {@code queue://<Q>.reply} and the properties of
 * {@link #setProperties}. Then receives them (AUTO) and prints each.
 *
 * <p>Lines: {@code SENT kind=K} per message; per received message
 * {@code RECV kind=K type=T body=B <headers>} (see {@link JmsProbe#headers}) followed by
 * its {@code PROP kind=K name=N value=Type=v} lines (sorted by name); {@code OK received=8}.
 */
final class ProbeBodies {
    static final String[] KINDS = {"text", "emptytext", "nulltext", "bytes", "map", "object", "stream", "message"};

    /** Text with an accent, a check mark, a non-BMP emoji and a NUL. */
    static final String UNICODE = "h\u00e9llo w\u00f6rld \u2713 \ud83d\ude00 nul:\u0000 end";

    static void run(JmsProbe.Args args) throws Exception {
        JmsProbe.ConnSpec spec = new JmsProbe.ConnSpec(args);
        String destSpec = args.require("--dest");
        Destination dest = JmsProbe.destination(destSpec);
        long timeout = args.getLong("--timeout-ms", 10_000);
        args.done();
        String name = destSpec.substring(destSpec.indexOf(':') + 1);

        Connection pc = spec.open(null);
        try {
            Session s = pc.createSession(false, Session.AUTO_ACKNOWLEDGE);
            MessageProducer p = s.createProducer(dest);
            p.setDeliveryMode(DeliveryMode.PERSISTENT);
            p.setPriority(6);
            for (String kind : KINDS) {
                Message m = create(s, kind);
                m.setJMSCorrelationID("corr-" + kind);
                m.setJMSType("type-" + kind);
                m.setJMSReplyTo(new ActiveMQQueue(name + ".reply"));
                m.setStringProperty("kind", kind);
                setProperties(m);
                p.send(m);
                JmsProbe.line("SENT kind=" + kind);
            }
        } finally {
            pc.close();
        }

        Connection cc = spec.open(null);
        int got = 0;
        try {
            cc.start();
            Session s = cc.createSession(false, Session.AUTO_ACKNOWLEDGE);
            MessageConsumer consumer = s.createConsumer(dest);
            for (int i = 0; i < KINDS.length; i++) {
                Message m = consumer.receive(timeout);
                if (m == null) {
                    throw new JmsProbe.Fail("timeout received=" + got + " expected=" + KINDS.length);
                }
                got++;
                print(m);
            }
        } finally {
            cc.close();
        }
        JmsProbe.line("OK received=" + got);
    }

    /** RECV and PROP lines of a received message (also used by stomp-recv). */
    static void print(Message m) throws Exception {
        String kind = m.propertyExists("kind") ? m.getStringProperty("kind") : JmsProbe.kind(m);
        JmsProbe.line("RECV kind=" + JmsProbe.esc(kind) + " type=" + JmsProbe.kind(m) + " body=" + JmsProbe.body(m)
                + " " + JmsProbe.headers(m) + " redelivered=" + m.getJMSRedelivered());
        JmsProbe.printProperties(kind, m);
    }

    static Message create(Session s, String kind) throws Exception {
        switch (kind) {
            case "text": return s.createTextMessage(UNICODE);
            case "emptytext": return s.createTextMessage("");
            case "nulltext": return s.createTextMessage();
            case "bytes": {
                BytesMessage b = s.createBytesMessage();
                b.writeBytes(new byte[] {0x00, 0x01, 0x7f, (byte) 0x80, (byte) 0xff});
                b.writeInt(42);
                b.writeUTF("\u2713");
                return b;
            }
            case "map": {
                MapMessage m = s.createMapMessage();
                m.setBoolean("bool", true);
                m.setByte("byte", (byte) -7);
                m.setShort("short", (short) 1234);
                m.setChar("char", 'Z');
                m.setInt("int", 123456);
                m.setLong("long", 1234567890123L);
                m.setFloat("float", 1.5f);
                m.setDouble("double", 2.25);
                m.setString("string", "a b");
                m.setString("unicode", "\u2713\ud83d\ude00");
                m.setBytes("bytes", new byte[] {1, 2, 3});
                return m;
            }
            case "object":
                return s.createObjectMessage(new ArrayList<>(Arrays.asList("a", "b", "c")));
            case "stream": {
                StreamMessage m = s.createStreamMessage();
                m.writeBoolean(true);
                m.writeByte((byte) -1);
                m.writeShort((short) 300);
                m.writeChar('q');
                m.writeInt(7);
                m.writeLong(-8L);
                m.writeFloat(0.5f);
                m.writeDouble(-0.25);
                m.writeString("str");
                m.writeBytes(new byte[] {9, 8});
                return m;
            }
            case "message": return s.createMessage();
            default: throw new JmsProbe.Usage("no message kind " + kind);
        }
    }

    /** One property of every JMS property type. */
    static void setProperties(Message m) throws Exception {
        m.setBooleanProperty("p_bool", true);
        m.setByteProperty("p_byte", (byte) -7);
        m.setShortProperty("p_short", (short) 1234);
        m.setIntProperty("p_int", 123456);
        m.setLongProperty("p_long", 1234567890123L);
        m.setFloatProperty("p_float", 1.5f);
        m.setDoubleProperty("p_double", 2.25);
        m.setStringProperty("p_string", "h\u00e9llo \u2713\ud83d\ude00");
        m.setStringProperty("p_empty", "");
    }
}
