import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Enumeration;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

import javax.jms.BytesMessage;
import javax.jms.Connection;
import javax.jms.Destination;
import javax.jms.JMSException;
import javax.jms.MapMessage;
import javax.jms.Message;
import javax.jms.MessageEOFException;
import javax.jms.ObjectMessage;
import javax.jms.Session;
import javax.jms.StreamMessage;
import javax.jms.TextMessage;

import org.apache.activemq.ActiveMQConnectionFactory;
import org.apache.activemq.ActiveMQSession;
import org.apache.activemq.command.ActiveMQQueue;
import org.apache.activemq.command.ActiveMQTopic;

/**
 * A JMS probe driven by the Rust tests: the real ActiveMQ 5.17 client against a broker
 * (real ActiveMQ, or Tandem once it speaks OpenWire).
 *
 * <pre>
 * java JmsProbe COMMAND --url URL [options]
 * </pre>
 *
 * URL is anything the ActiveMQ client takes: {@code tcp://127.0.0.1:P},
 * {@code tcp://127.0.0.1:P?jms.prefetchPolicy.all=0},
 * {@code failover:(tcp://a,tcp://b)?randomize=false}.
 *
 * <p>Output is one event per line, {@code WORD key=value key=value ...}, flushed at once so
 * a harness can follow it live. Values are escaped ({@link #esc}): no value contains a
 * space. The last line is {@code OK ...} (exit 0), {@code FAIL reason} (exit 1: the probe's
 * own check failed, e.g. fewer messages than expected), or
 * {@code ERROR <exception class>: <message>} (exit 1: the JMS client threw). Usage errors
 * exit 2; the {@code --deadline-ms} watchdog (default 120000) exits 4.
 *
 * <p>Commands (one class each): {@code connect}, {@code send} ({@link ProbeSend}),
 * {@code recv} ({@link ProbeRecv}), {@code unsubscribe} ({@link ProbeRecv}), {@code rpc}
 * ({@link ProbeRpc}), {@code prefetch} ({@link ProbePrefetch}), {@code bodies}
 * ({@link ProbeBodies}), {@code browse} ({@link ProbeBrowse}), {@code stomp-send} and
 * {@code stomp-recv} ({@link ProbeStomp}), {@code wire-tour} ({@link ProbeWire}),
 * {@code scheduled} and {@code poison} ({@link ProbeScheduled}).
 * See tests/java/README.md for every option and line.
 */
public final class JmsProbe {
    private static final PrintStream OUT = new PrintStream(System.out, true, StandardCharsets.UTF_8);

    /** The probe's own check failed: printed as {@code FAIL msg}. */
    static final class Fail extends RuntimeException {
        Fail(String msg) {
            super(msg);
        }
    }

    /** A usage error: printed on stderr, exit 2. */
    static final class Usage extends RuntimeException {
        Usage(String msg) {
            super(msg);
        }
    }

    public static void main(String[] argv) {
        if (argv.length == 0) {
            System.err.println("usage: JmsProbe COMMAND --url URL [options]; see tests/java/README.md");
            System.exit(2);
        }
        String cmd = argv[0];
        Args args;
        try {
            args = new Args(argv, 1);
            long deadline = args.getLong("--deadline-ms", 120_000);
            startWatchdog(deadline);
            switch (cmd) {
                case "connect": connect(args); break;
                case "send": ProbeSend.run(args); break;
                case "recv": ProbeRecv.run(args); break;
                case "unsubscribe": ProbeRecv.unsubscribe(args); break;
                case "rpc": ProbeRpc.run(args); break;
                case "prefetch": ProbePrefetch.run(args); break;
                case "producers": ProbeProducers.run(args); break;
                case "bodies": ProbeBodies.run(args); break;
                case "browse": ProbeBrowse.run(args); break;
                case "stomp-send": ProbeStomp.send(args); break;
                case "stomp-recv": ProbeStomp.recv(args); break;
                case "wire-tour": ProbeWire.run(args); break;
                case "scheduled": ProbeScheduled.scheduled(args); break;
                case "poison": ProbeScheduled.poison(args); break;
                default: throw new Usage("unknown command " + cmd);
            }
        } catch (Usage e) {
            System.err.println("JmsProbe " + cmd + ": " + e.getMessage());
            System.exit(2);
        } catch (Fail e) {
            line("FAIL " + e.getMessage());
            System.exit(1);
        } catch (Throwable e) {
            line(errorLine(e));
            e.printStackTrace();
            System.exit(1);
        }
        // Client threads (failover reconnect, inactivity monitors) must not keep us alive.
        System.exit(0);
    }

    /** {@code ERROR <class>: <message>} for a thrown exception. */
    static String errorLine(Throwable e) {
        return "ERROR " + e.getClass().getName() + ": " + oneLine(String.valueOf(e.getMessage()));
    }

    private static void startWatchdog(long deadlineMs) {
        if (deadlineMs <= 0) {
            return;
        }
        Thread t = new Thread(() -> {
            try {
                Thread.sleep(deadlineMs);
            } catch (InterruptedException e) {
                return;
            }
            line("FAIL deadline " + deadlineMs + " ms passed");
            Runtime.getRuntime().halt(4);
        }, "probe-deadline");
        t.setDaemon(true);
        t.start();
    }

    // ------------------------------------------------------------------------------
    // Output

    /** Prints one line and flushes it (thread-safe). */
    static synchronized void line(String s) {
        OUT.println(s);
    }

    static String oneLine(String s) {
        return s.replace('\n', ' ').replace('\r', ' ');
    }

    /**
     * Escapes a value so it holds no space and is printable ASCII: {@code \\}, {@code \s}
     * (space), {@code \n}, {@code \r}, {@code \t}, {@code \0} and backslash-u{HEX} for any
     * other code point outside 0x21..0x7e. An empty string is {@code \e}; null is
     * {@code \N}.
     */
    static String esc(String s) {
        if (s == null) {
            return "\\N";
        }
        if (s.isEmpty()) {
            return "\\e";
        }
        StringBuilder b = new StringBuilder();
        s.codePoints().forEach(c -> {
            switch (c) {
                case '\\': b.append("\\\\"); break;
                case ' ': b.append("\\s"); break;
                case '\n': b.append("\\n"); break;
                case '\r': b.append("\\r"); break;
                case '\t': b.append("\\t"); break;
                case 0: b.append("\\0"); break;
                default:
                    if (c > 0x20 && c < 0x7f) {
                        b.appendCodePoint(c);
                    } else {
                        b.append("\\u{").append(Integer.toHexString(c)).append('}');
                    }
            }
        });
        return b.toString();
    }

    static String hex(byte[] bytes) {
        if (bytes.length == 0) {
            return "\\e";
        }
        StringBuilder b = new StringBuilder();
        for (byte x : bytes) {
            b.append(String.format("%02x", x & 0xff));
        }
        return b.toString();
    }

    // ------------------------------------------------------------------------------
    // Connections and destinations

    /** How to connect: --url, --user, --password, --client-id (read when the command starts). */
    static final class ConnSpec {
        final String url;
        final String user;
        final String password;
        final String clientId;

        ConnSpec(Args args) {
            url = args.require("--url");
            user = args.get("--user", null);
            password = args.get("--password", "");
            clientId = args.get("--client-id", null);
        }

        ActiveMQConnectionFactory factory() {
            ActiveMQConnectionFactory f = new ActiveMQConnectionFactory(url);
            // ObjectMessage bodies of these packages may be deserialized (5.17 trusts none
            // by default).
            f.setTrustedPackages(new ArrayList<>(List.of("java.util", "java.lang")));
            if (user != null) {
                f.setUserName(user);
                f.setPassword(password);
            }
            return f;
        }

        /** A new connection, with the client id if one was given; not started. */
        Connection open() throws JMSException {
            return open(clientId);
        }

        /** A new connection with client id {@code id} (null: none); not started. */
        Connection open(String id) throws JMSException {
            Connection c = factory().createConnection();
            if (id != null) {
                c.setClientID(id);
            }
            return c;
        }
    }

    /** {@code queue:NAME} or {@code topic:NAME}. */
    static Destination destination(String spec) {
        if (spec.startsWith("queue:")) {
            return new ActiveMQQueue(spec.substring(6));
        }
        if (spec.startsWith("topic:")) {
            return new ActiveMQTopic(spec.substring(6));
        }
        throw new Usage("destination must be queue:NAME or topic:NAME, not " + spec);
    }

    /** auto | client | dups_ok | individual | transacted. */
    static int ackMode(String name) {
        switch (name) {
            case "auto": return Session.AUTO_ACKNOWLEDGE;
            case "client": return Session.CLIENT_ACKNOWLEDGE;
            case "dups_ok": return Session.DUPS_OK_ACKNOWLEDGE;
            case "individual": return ActiveMQSession.INDIVIDUAL_ACKNOWLEDGE;
            case "transacted": return Session.SESSION_TRANSACTED;
            default: throw new Usage("ack mode must be auto|client|dups_ok|individual|transacted, not " + name);
        }
    }

    static Session session(Connection c, int ackMode) throws JMSException {
        return c.createSession(ackMode == Session.SESSION_TRANSACTED, ackMode);
    }

    // ------------------------------------------------------------------------------
    // Describing messages

    /** The int property {@code seq}, or -1 if absent. */
    static int seq(Message m) throws JMSException {
        return m.propertyExists("seq") ? m.getIntProperty("seq") : -1;
    }

    /** text | bytes | map | object | stream | message. */
    static String kind(Message m) {
        if (m instanceof TextMessage) return "text";
        if (m instanceof BytesMessage) return "bytes";
        if (m instanceof MapMessage) return "map";
        if (m instanceof ObjectMessage) return "object";
        if (m instanceof StreamMessage) return "stream";
        return "message";
    }

    /** The body as one escaped value (see tests/java/README.md, "Bodies"). */
    static String body(Message m) throws JMSException {
        if (m instanceof TextMessage) {
            return esc(((TextMessage) m).getText());
        }
        if (m instanceof BytesMessage) {
            BytesMessage b = (BytesMessage) m;
            b.reset();
            byte[] all = new byte[(int) b.getBodyLength()];
            b.readBytes(all);
            return hex(all);
        }
        if (m instanceof MapMessage) {
            MapMessage mm = (MapMessage) m;
            List<String> names = new ArrayList<>();
            for (Enumeration<?> e = mm.getMapNames(); e.hasMoreElements();) {
                names.add((String) e.nextElement());
            }
            Collections.sort(names);
            List<String> parts = new ArrayList<>();
            for (String n : names) {
                parts.add(n + ":" + typed(mm.getObject(n)));
            }
            return esc(String.join(",", parts));
        }
        if (m instanceof ObjectMessage) {
            Object o = ((ObjectMessage) m).getObject();
            return esc(o == null ? "null" : o.getClass().getName() + "=" + o);
        }
        if (m instanceof StreamMessage) {
            StreamMessage s = (StreamMessage) m;
            s.reset();
            List<String> parts = new ArrayList<>();
            for (int i = 0; i < 10_000; i++) {
                try {
                    parts.add(typed(s.readObject()));
                } catch (MessageEOFException eof) {
                    break;
                }
            }
            return esc(String.join(",", parts));
        }
        return "\\e";
    }

    /** {@code Type=value} for a property or map value; byte[] as hex. */
    static String typed(Object v) {
        if (v == null) {
            return "Null";
        }
        if (v instanceof byte[]) {
            return "Bytes=" + hex((byte[]) v);
        }
        return v.getClass().getSimpleName() + "=" + v;
    }

    /** User properties, sorted by name, as {@code name -> Type=value}. */
    static Map<String, String> properties(Message m) throws JMSException {
        List<String> names = new ArrayList<>();
        for (Enumeration<?> e = m.getPropertyNames(); e.hasMoreElements();) {
            names.add((String) e.nextElement());
        }
        Collections.sort(names);
        Map<String, String> out = new LinkedHashMap<>();
        for (String n : names) {
            out.put(n, typed(m.getObjectProperty(n)));
        }
        return out;
    }

    /** One {@code PROP kind=K name=N value=Type=v} line per user property. */
    static void printProperties(String kind, Message m) throws JMSException {
        for (Map.Entry<String, String> e : properties(m).entrySet()) {
            line("PROP kind=" + kind + " name=" + esc(e.getKey()) + " value=" + esc(e.getValue()));
        }
    }

    /** The JMS header fields of a received message, as {@code key=value} pairs. */
    static String headers(Message m) throws JMSException {
        StringBuilder b = new StringBuilder();
        b.append("correlationId=").append(esc(m.getJMSCorrelationID()));
        b.append(" jmsType=").append(esc(m.getJMSType()));
        b.append(" priority=").append(m.getJMSPriority());
        b.append(" deliveryMode=").append(
                m.getJMSDeliveryMode() == javax.jms.DeliveryMode.PERSISTENT ? "persistent" : "non_persistent");
        b.append(" replyTo=").append(esc(m.getJMSReplyTo() == null ? null : m.getJMSReplyTo().toString()));
        b.append(" dest=").append(esc(m.getJMSDestination() == null ? null : m.getJMSDestination().toString()));
        b.append(" expiration=").append(m.getJMSExpiration() == 0 ? "0" : "set");
        b.append(" messageId=").append(m.getJMSMessageID() != null && m.getJMSMessageID().startsWith("ID:") ? "ID:*" : esc(m.getJMSMessageID()));
        b.append(" timestamp=").append(m.getJMSTimestamp() > 0 ? "set" : "0");
        return b.toString();
    }

    // ------------------------------------------------------------------------------
    // connect

    /** Connects, starts, prints {@code CONNECTED ...} and closes. */
    static void connect(Args args) throws JMSException {
        ConnSpec spec = new ConnSpec(args);
        args.done();
        Connection c = spec.open();
        try {
            c.start();
            Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
            s.close();
            org.apache.activemq.ActiveMQConnection ac = (org.apache.activemq.ActiveMQConnection) c;
            line("CONNECTED clientId=" + esc(c.getClientID())
                    + " provider=" + esc(c.getMetaData().getJMSProviderName())
                    + " version=" + esc(c.getMetaData().getProviderVersion())
                    + " brokerName=" + esc(ac.getBrokerName()));
        } finally {
            c.close();
        }
        line("OK");
    }

    // ------------------------------------------------------------------------------
    // Arguments

    /** {@code --name value} options and {@code --flag} switches; unknown ones are usage errors. */
    static final class Args {
        /** Options that take no value. */
        private static final Set<String> SWITCHES = Set.of(
                "--drain", "--unique", "--transacted", "--tolerate-commit-failure", "--no-local",
                "--show-dest");
        private final Map<String, List<String>> values = new LinkedHashMap<>();
        private final Set<String> used = new HashSet<>();

        Args(String[] argv, int from) {
            for (int i = from; i < argv.length; i++) {
                String a = argv[i];
                if (!a.startsWith("--")) {
                    throw new Usage("unexpected argument " + a);
                }
                if (SWITCHES.contains(a)) {
                    values.computeIfAbsent(a, k -> new ArrayList<>()).add("true");
                } else {
                    if (i + 1 >= argv.length) {
                        throw new Usage(a + " needs a value");
                    }
                    values.computeIfAbsent(a, k -> new ArrayList<>()).add(argv[++i]);
                }
            }
        }

        String get(String name, String def) {
            used.add(name);
            List<String> v = values.get(name);
            return v == null ? def : v.get(v.size() - 1);
        }

        String require(String name) {
            String v = get(name, null);
            if (v == null) {
                throw new Usage(name + " is required");
            }
            return v;
        }

        List<String> all(String name) {
            used.add(name);
            return values.getOrDefault(name, List.of());
        }

        int getInt(String name, int def) {
            String v = get(name, null);
            return v == null ? def : Integer.parseInt(v);
        }

        long getLong(String name, long def) {
            String v = get(name, null);
            return v == null ? def : Long.parseLong(v);
        }

        boolean has(String name) {
            used.add(name);
            return values.containsKey(name);
        }

        /** Called by a command once it has read its options: rejects any it never looked at (typos). */
        void done() {
            for (String k : values.keySet()) {
                if (!used.contains(k)) {
                    throw new Usage("unknown option " + k);
                }
            }
        }
    }
}
