import java.util.HashSet;
import java.util.Set;

import javax.jms.Connection;
import javax.jms.Destination;
import javax.jms.Message;
import javax.jms.MessageConsumer;
import javax.jms.Session;
import javax.jms.Topic;

/**
 * {@code recv}: a consumer with every acknowledgement mode, selectors, durable
 * subscriptions and local redelivery (rollback / recover); {@code unsubscribe}.
 *
 * <pre>
 * recv --url U --dest queue:Q|topic:T [--count N=1 | --drain] [--unique]
 *      [--ack auto|client|dups_ok|individual|transacted] [--acks all|none|even|odd|first:K]
 *      [--redeliver R] [--selector S] [--timeout-ms T=10000] [--then-none-ms M]
 *      [--client-id C --durable NAME [--no-local]] [--interval-ms I] [--show-dest]
 * unsubscribe --url U --client-id C --durable NAME
 * </pre>
 *
 * <ul>
 *   <li>Receives N messages, each within T ms (fewer: {@code FAIL timeout ...}); with
 *       --drain, until none arrives within T ms; with --unique, N distinct {@code seq}
 *       values (a failover consumer may see redeliveries).</li>
 *   <li>--acks says which received messages are acknowledged: {@code client} and
 *       {@code individual} call {@code acknowledge()} on each message that matches
 *       ({@code all}, {@code none}, {@code even}/{@code odd} seq, the {@code first:K}-th
 *       received); {@code transacted} commits after the last message ({@code all}), after
 *       the K-th ({@code first:K}) or never ({@code none}: closing rolls back);
 *       {@code auto}/{@code dups_ok} ignore it.</li>
 *   <li>--redeliver R: receive the round, then roll back (transacted) or
 *       {@code session.recover()} (client, individual), R times; the acks apply to the
 *       round after the last one. The client redelivers locally.</li>
 *   <li>--then-none-ms M: afterwards, no further message may arrive within M ms.</li>
 *   <li>--show-dest: each RECV line ends with {@code dest=D}, the message's
 *       {@code getJMSDestination()} (a wildcard consumer sees the real destination).</li>
 * </ul>
 *
 * Lines: {@code READY} (consumer created, connection started); per message
 * {@code RECV seq=S redelivered=B deliveryCount=D body=X [color=C]} (seq -1 if absent,
 * D = JMSXDeliveryCount); {@code ACK seq=S} after each {@code acknowledge()};
 * {@code COMMIT upto=S}; {@code ROLLBACK round=r received=n} / {@code RECOVER round=r received=n};
 * {@code NONE} (the --then-none-ms check passed) or {@code EXTRA seq=S} (then FAIL);
 * {@code OK received=N} (all rounds). {@code unsubscribe}: {@code UNSUBSCRIBED name=NAME}, OK.
 */
final class ProbeRecv {
    static void run(JmsProbe.Args args) throws Exception {
        JmsProbe.ConnSpec spec = new JmsProbe.ConnSpec(args);
        Destination dest = JmsProbe.destination(args.require("--dest"));
        int count = args.getInt("--count", 1);
        boolean drain = args.has("--drain");
        boolean unique = args.has("--unique");
        String ackName = args.get("--ack", "auto");
        int ackMode = JmsProbe.ackMode(ackName);
        Acks acks = new Acks(args.get("--acks", "all"), ackMode);
        int redeliver = args.getInt("--redeliver", 0);
        String selector = args.get("--selector", null);
        long timeout = args.getLong("--timeout-ms", 10_000);
        long thenNone = args.getLong("--then-none-ms", -1);
        String durable = args.get("--durable", null);
        boolean noLocal = args.has("--no-local");
        long interval = args.getLong("--interval-ms", 0);
        boolean showDest = args.has("--show-dest");
        args.done();
        if (durable != null && spec.clientId == null) {
            throw new JmsProbe.Usage("--durable needs --client-id");
        }
        if (redeliver > 0 && (ackMode == Session.AUTO_ACKNOWLEDGE || ackMode == Session.DUPS_OK_ACKNOWLEDGE)) {
            throw new JmsProbe.Usage("--redeliver needs --ack client|individual|transacted");
        }

        Connection c = spec.open();
        int total = 0;
        try {
            Session s = JmsProbe.session(c, ackMode);
            MessageConsumer consumer;
            if (durable != null) {
                consumer = s.createDurableSubscriber((Topic) dest, durable, selector, noLocal);
            } else {
                consumer = s.createConsumer(dest, selector, noLocal);
            }
            c.start();
            JmsProbe.line("READY");
            for (int round = 0; round <= redeliver; round++) {
                boolean last = round == redeliver;
                int got = 0;
                Set<Integer> seen = new HashSet<>();
                int lastSeq = -1;
                while (drain || (unique ? seen.size() : got) < count) {
                    Message m = consumer.receive(timeout);
                    if (m == null) {
                        if (drain) {
                            break;
                        }
                        throw new JmsProbe.Fail("timeout received=" + (unique ? seen.size() : got)
                                + " expected=" + count + " round=" + round);
                    }
                    got++;
                    total++;
                    int seq = JmsProbe.seq(m);
                    seen.add(seq);
                    lastSeq = seq;
                    String line = describe(m);
                    if (showDest) {
                        line += " dest=" + JmsProbe.esc(String.valueOf(m.getJMSDestination()));
                    }
                    JmsProbe.line(line);
                    if (last && acks.ackNow(got, seq)) {
                        if (ackMode == Session.SESSION_TRANSACTED) {
                            s.commit();
                            JmsProbe.line("COMMIT upto=" + seq);
                        } else {
                            m.acknowledge();
                            JmsProbe.line("ACK seq=" + seq);
                        }
                    }
                    if (interval > 0) {
                        Thread.sleep(interval);
                    }
                }
                if (!last) {
                    if (ackMode == Session.SESSION_TRANSACTED) {
                        s.rollback();
                        JmsProbe.line("ROLLBACK round=" + round + " received=" + got);
                    } else {
                        s.recover();
                        JmsProbe.line("RECOVER round=" + round + " received=" + got);
                    }
                } else if (ackMode == Session.SESSION_TRANSACTED && acks.commitAtEnd() && got > 0) {
                    s.commit();
                    JmsProbe.line("COMMIT upto=" + lastSeq);
                }
            }
            if (thenNone >= 0) {
                Message m = consumer.receive(Math.max(thenNone, 1));
                if (m != null) {
                    JmsProbe.line("EXTRA seq=" + JmsProbe.seq(m) + " redelivered=" + m.getJMSRedelivered());
                    throw new JmsProbe.Fail("a message arrived after the expected ones");
                }
                JmsProbe.line("NONE");
            }
        } finally {
            c.close();
        }
        JmsProbe.line("OK received=" + total);
    }

    /** The RECV line of a message. */
    static String describe(Message m) throws Exception {
        StringBuilder b = new StringBuilder("RECV seq=").append(JmsProbe.seq(m));
        b.append(" redelivered=").append(m.getJMSRedelivered());
        b.append(" deliveryCount=").append(m.getIntProperty("JMSXDeliveryCount"));
        b.append(" body=").append(JmsProbe.body(m));
        if (m.propertyExists("color")) {
            b.append(" color=").append(JmsProbe.esc(m.getStringProperty("color")));
        }
        return b.toString();
    }

    /** Which received messages of the last round are acknowledged (or committed). */
    static final class Acks {
        /** all | none | even | odd | first:K. */
        final String policy;
        /** K of first:K; -1 otherwise. */
        final int firstK;
        /** client or individual: acknowledge() per selected message. */
        final boolean perMessage;
        /** transacted: commit after the K-th or the last message. */
        final boolean transacted;

        Acks(String policy, int ackMode) {
            this.policy = policy;
            if (policy.startsWith("first:")) {
                firstK = Integer.parseInt(policy.substring(6));
            } else if (policy.equals("all") || policy.equals("none") || policy.equals("even") || policy.equals("odd")) {
                firstK = -1;
            } else {
                throw new JmsProbe.Usage("--acks must be all|none|even|odd|first:K");
            }
            perMessage = ackMode == Session.CLIENT_ACKNOWLEDGE
                    || ackMode == org.apache.activemq.ActiveMQSession.INDIVIDUAL_ACKNOWLEDGE;
            transacted = ackMode == Session.SESSION_TRANSACTED;
            if (transacted && (policy.equals("even") || policy.equals("odd"))) {
                throw new JmsProbe.Usage("--acks even|odd makes no sense with --ack transacted");
            }
        }

        /** Acknowledge (or commit) right after the {@code nth} message of the round, of this seq? */
        boolean ackNow(int nth, int seq) {
            if (transacted) {
                return firstK > 0 && nth == firstK;
            }
            if (!perMessage) {
                return false;
            }
            switch (policy) {
                case "all": return true;
                case "none": return false;
                case "even": return seq % 2 == 0;
                case "odd": return seq % 2 != 0;
                default: return nth == firstK;
            }
        }

        /** Transacted: commit after the round's last message. */
        boolean commitAtEnd() {
            return policy.equals("all");
        }
    }

    static void unsubscribe(JmsProbe.Args args) throws Exception {
        JmsProbe.ConnSpec spec = new JmsProbe.ConnSpec(args);
        String name = args.require("--durable");
        args.done();
        if (spec.clientId == null) {
            throw new JmsProbe.Usage("unsubscribe needs --client-id");
        }
        Connection c = spec.open();
        try {
            Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
            s.unsubscribe(name);
            JmsProbe.line("UNSUBSCRIBED name=" + JmsProbe.esc(name));
        } finally {
            c.close();
        }
        JmsProbe.line("OK");
    }
}
