import javax.jms.Connection;
import javax.jms.Destination;
import javax.jms.Message;
import javax.jms.MessageConsumer;
import javax.jms.Session;

/**
 * {@code prefetch}: how many queued messages an idle consumer holds back from a busy one.
 *
 * <pre>
 * prefetch --url U --dest queue:Q [--idle-ms T=1000]
 * </pre>
 *
 * With messages already on Q: consumer A (its own connection, AUTO) is created and
 * never calls {@code receive()}; then consumer B (another connection, AUTO) receives
 * until nothing arrives within T ms; then A receives until nothing arrives within T ms.
 * The prefetch comes from the URL ({@code ?jms.prefetchPolicy.all=0} or {@code =1}):
 * with 0, A holds nothing, so B gets everything; with 1, A holds exactly the first
 * message.
 *
 * <p>Lines: {@code READY} (both consumers exist); {@code RECV consumer=B|A seq=S
 * redelivered=R}; {@code OK a=n b=m}.
 */
final class ProbePrefetch {
    static void run(JmsProbe.Args args) throws Exception {
        JmsProbe.ConnSpec spec = new JmsProbe.ConnSpec(args);
        Destination dest = JmsProbe.destination(args.require("--dest"));
        long idle = args.getLong("--idle-ms", 1_000);
        args.done();
        Connection ca = spec.open(null);
        Connection cb = spec.open(null);
        try {
            ca.start();
            cb.start();
            MessageConsumer a = ca.createSession(false, Session.AUTO_ACKNOWLEDGE).createConsumer(dest);
            MessageConsumer b = cb.createSession(false, Session.AUTO_ACKNOWLEDGE).createConsumer(dest);
            JmsProbe.line("READY");
            int nb = drain("B", b, idle);
            int na = drain("A", a, idle);
            JmsProbe.line("OK a=" + na + " b=" + nb);
        } finally {
            cb.close();
            ca.close();
        }
    }

    private static int drain(String name, MessageConsumer c, long idle) throws Exception {
        int n = 0;
        for (Message m = c.receive(idle); m != null; m = c.receive(idle)) {
            n++;
            JmsProbe.line("RECV consumer=" + name + " seq=" + JmsProbe.seq(m) + " redelivered=" + m.getJMSRedelivered());
        }
        return n;
    }
}
