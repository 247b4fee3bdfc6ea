import java.util.Enumeration;

import javax.jms.Connection;
import javax.jms.Message;
import javax.jms.MessageConsumer;
import javax.jms.Queue;
import javax.jms.QueueBrowser;
import javax.jms.Session;

/**
 * {@code browse}: a {@link QueueBrowser} ({@code session.createBrowser}) enumerates a queue.
 *
 * <pre>
 * browse --url U --dest queue:Q [--selector S] [--ack auto|client|...=auto] [--hold K=0]
 * </pre>
 *
 * <ul>
 *   <li>Enumerates the queue's messages with {@code hasMoreElements}/{@code nextElement}
 *       until the browser says there are no more (the broker's end marker), then closes
 *       it. The browser's prefetch comes from the URL
 *       ({@code ?jms.prefetchPolicy.queueBrowserPrefetch=N}, default 500).</li>
 *   <li>--hold K: before browsing, a consumer on another connection (CLIENT_ACKNOWLEDGE)
 *       receives K messages and does not acknowledge them while the browse runs (they
 *       are in flight to it, not acknowledged); it closes afterwards, so they go back
 *       to the queue.</li>
 * </ul>
 *
 * Lines: {@code HELD seq=S} per held message; per browsed message
 * {@code RECV seq=S redelivered=B deliveryCount=D body=X [color=C]}; {@code OK browsed=N ms=T}
 * (T: milliseconds from creating the enumeration to the end of the browse).
 */
final class ProbeBrowse {
    static void run(JmsProbe.Args args) throws Exception {
        JmsProbe.ConnSpec spec = new JmsProbe.ConnSpec(args);
        String destSpec = args.require("--dest");
        if (!destSpec.startsWith("queue:")) {
            throw new JmsProbe.Usage("browse needs --dest queue:NAME");
        }
        Queue dest = (Queue) JmsProbe.destination(destSpec);
        String selector = args.get("--selector", null);
        int ackMode = JmsProbe.ackMode(args.get("--ack", "auto"));
        int hold = args.getInt("--hold", 0);
        args.done();

        Connection holder = null;
        Connection c = spec.open();
        try {
            if (hold > 0) {
                holder = spec.open(null);
                holder.start();
                Session hs = holder.createSession(false, Session.CLIENT_ACKNOWLEDGE);
                MessageConsumer hc = hs.createConsumer(dest);
                for (int i = 0; i < hold; i++) {
                    Message m = hc.receive(10_000);
                    if (m == null) {
                        throw new JmsProbe.Fail("timeout holding message " + i);
                    }
                    JmsProbe.line("HELD seq=" + JmsProbe.seq(m));
                }
            }
            c.start();
            Session s = JmsProbe.session(c, ackMode);
            QueueBrowser browser = s.createBrowser(dest, selector);
            long started = System.nanoTime();
            Enumeration<?> e = browser.getEnumeration();
            int n = 0;
            while (e.hasMoreElements()) {
                Message m = (Message) e.nextElement();
                if (m == null) {
                    break;
                }
                n++;
                JmsProbe.line(ProbeRecv.describe(m));
            }
            long ms = (System.nanoTime() - started) / 1_000_000;
            browser.close();
            if (ackMode == Session.SESSION_TRANSACTED) {
                s.commit();
            }
            JmsProbe.line("OK browsed=" + n + " ms=" + ms);
        } finally {
            c.close();
            if (holder != null) {
                holder.close();
            }
        }
    }
}
