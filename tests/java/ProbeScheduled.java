import javax.jms.Connection;
import javax.jms.DeliveryMode;
import javax.jms.Destination;
import javax.jms.JMSException;
import javax.jms.Message;
import javax.jms.MessageConsumer;
import javax.jms.MessageProducer;
import javax.jms.Session;
import javax.jms.TextMessage;

/**
 * Scheduled delivery and broker-side redelivery delays, timed by the client.
 *
 * <pre>
 * scheduled --url U --dest queue:Q [--delay MS] [--period MS] [--repeat N] [--cron C]
 *           [--as-strings true|false] [--persistent true|false] [--commit-after-ms T]
 *           --expect N [--timeout-ms T=15000] [--then-none-ms M]
 * poison    --url U --dest queue:Q --rounds R [--timeout-ms T=15000]
 * </pre>
 *
 * <p>{@code scheduled}: a consumer on Q first (READY), then one TextMessage
 * {@code msg-0} (int property {@code seq}=0) sent with {@code AMQ_SCHEDULED_DELAY} and
 * {@code AMQ_SCHEDULED_PERIOD} as long properties, {@code AMQ_SCHEDULED_REPEAT} as an
 * int and {@code AMQ_SCHEDULED_CRON} as a string (each only if given; all as strings
 * with --as-strings true, as a STOMP producer sends them); with --commit-after-ms, sent in a
 * transaction committed T ms later. {@code SENT} once the send (or commit) returned:
 * times count from then. Then N messages, each within T ms:
 * {@code RECV n=i after_ms=X same_id=B new_id=B job_id=B schedule_props=B redelivered=B deliveryCount=D body=msg-0}
 * ({@code same_id}: the JMSMessageID the producer got; {@code new_id}: an id no earlier
 * delivery had; {@code job_id}: a {@code scheduledJobId} property;
 * {@code schedule_props}: any {@code AMQ_SCHEDULED_*} property left). Then
 * {@code NONE} if nothing more came within M ms (or {@code EXTRA} and FAIL); OK.
 *
 * <p>{@code poison}: a transacted consumer that rolls back every message it receives,
 * R times, printing {@code RECV n=i after_ms=X redelivered=B deliveryCount=D
 * redelivery_delay=V} (after_ms from the first receipt; V the {@code redeliveryDelay}
 * property or -1). Run it with {@code jms.redeliveryPolicy.maximumRedeliveries=0}: each
 * rollback is then a poison ack, which the broker dead-letters, or with a redelivery
 * plugin re-sends after a delay.
 */
final class ProbeScheduled {
    static void scheduled(JmsProbe.Args args) throws Exception {
        JmsProbe.ConnSpec spec = new JmsProbe.ConnSpec(args);
        Destination dest = JmsProbe.destination(args.require("--dest"));
        String delay = args.get("--delay", null);
        String period = args.get("--period", null);
        String repeat = args.get("--repeat", null);
        String cron = args.get("--cron", null);
        boolean strings = Boolean.parseBoolean(args.get("--as-strings", "false"));
        boolean persistent = Boolean.parseBoolean(args.get("--persistent", "true"));
        long commitAfter = args.getLong("--commit-after-ms", -1);
        int expect = args.getInt("--expect", 1);
        long timeout = args.getLong("--timeout-ms", 15_000);
        long thenNone = args.getLong("--then-none-ms", -1);
        args.done();

        Connection c = spec.open();
        try {
            c.start();
            Session rs = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
            MessageConsumer consumer = rs.createConsumer(dest);
            JmsProbe.line("READY");
            boolean tx = commitAfter >= 0;
            Session ps = c.createSession(tx, tx ? Session.SESSION_TRANSACTED : Session.AUTO_ACKNOWLEDGE);
            MessageProducer p = ps.createProducer(dest);
            p.setDeliveryMode(persistent ? DeliveryMode.PERSISTENT : DeliveryMode.NON_PERSISTENT);
            TextMessage m = ps.createTextMessage("msg-0");
            m.setIntProperty("seq", 0);
            if (delay != null) {
                if (strings) m.setStringProperty("AMQ_SCHEDULED_DELAY", delay);
                else m.setLongProperty("AMQ_SCHEDULED_DELAY", Long.parseLong(delay));
            }
            if (period != null) {
                if (strings) m.setStringProperty("AMQ_SCHEDULED_PERIOD", period);
                else m.setLongProperty("AMQ_SCHEDULED_PERIOD", Long.parseLong(period));
            }
            if (repeat != null) {
                if (strings) m.setStringProperty("AMQ_SCHEDULED_REPEAT", repeat);
                else m.setIntProperty("AMQ_SCHEDULED_REPEAT", Integer.parseInt(repeat));
            }
            if (cron != null) {
                m.setStringProperty("AMQ_SCHEDULED_CRON", cron);
            }
            p.send(m);
            if (tx) {
                Thread.sleep(commitAfter);
                ps.commit();
            }
            long base = System.currentTimeMillis();
            String sentId = m.getJMSMessageID();
            JmsProbe.line("SENT");
            java.util.Set<String> ids = new java.util.HashSet<>();
            for (int i = 0; i < expect; i++) {
                Message r = consumer.receive(timeout);
                if (r == null) {
                    throw new JmsProbe.Fail("timeout waiting for delivery " + i);
                }
                long after = System.currentTimeMillis() - base;
                String id = r.getJMSMessageID();
                boolean props = r.propertyExists("AMQ_SCHEDULED_DELAY") || r.propertyExists("AMQ_SCHEDULED_PERIOD")
                        || r.propertyExists("AMQ_SCHEDULED_REPEAT") || r.propertyExists("AMQ_SCHEDULED_CRON");
                JmsProbe.line("RECV n=" + i + " after_ms=" + after
                        + " same_id=" + id.equals(sentId)
                        + " new_id=" + ids.add(id)
                        + " job_id=" + (r.getStringProperty("scheduledJobId") != null)
                        + " schedule_props=" + props
                        + " redelivered=" + r.getJMSRedelivered()
                        + " deliveryCount=" + r.getIntProperty("JMSXDeliveryCount")
                        + " body=" + JmsProbe.body(r));
            }
            if (thenNone >= 0) {
                Message extra = consumer.receive(thenNone);
                if (extra != null) {
                    JmsProbe.line("EXTRA after_ms=" + (System.currentTimeMillis() - base));
                    throw new JmsProbe.Fail("a delivery more than expected");
                }
                JmsProbe.line("NONE");
            }
        } finally {
            c.close();
        }
        JmsProbe.line("OK received=" + expect);
    }

    static void poison(JmsProbe.Args args) throws Exception {
        JmsProbe.ConnSpec spec = new JmsProbe.ConnSpec(args);
        Destination dest = JmsProbe.destination(args.require("--dest"));
        int rounds = args.getInt("--rounds", 1);
        long timeout = args.getLong("--timeout-ms", 15_000);
        args.done();
        Connection c = spec.open();
        try {
            c.start();
            Session s = c.createSession(true, Session.SESSION_TRANSACTED);
            MessageConsumer consumer = s.createConsumer(dest);
            JmsProbe.line("READY");
            long base = -1;
            for (int i = 0; i < rounds; i++) {
                Message r = consumer.receive(timeout);
                if (r == null) {
                    throw new JmsProbe.Fail("timeout waiting for delivery " + i);
                }
                long now = System.currentTimeMillis();
                if (base < 0) {
                    base = now;
                }
                long delay = r.propertyExists("redeliveryDelay") ? r.getLongProperty("redeliveryDelay") : -1;
                JmsProbe.line("RECV n=" + i + " after_ms=" + (now - base)
                        + " redelivered=" + r.getJMSRedelivered()
                        + " deliveryCount=" + r.getIntProperty("JMSXDeliveryCount")
                        + " redelivery_delay=" + delay);
                s.rollback();
            }
        } finally {
            c.close();
        }
        JmsProbe.line("OK received=" + rounds);
    }
}
