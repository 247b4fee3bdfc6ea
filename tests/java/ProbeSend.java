import java.io.File;
import java.util.List;

import javax.jms.Connection;
import javax.jms.DeliveryMode;
import javax.jms.JMSException;
import javax.jms.MessageProducer;
import javax.jms.Session;
import javax.jms.TextMessage;

/**
 * {@code send}: a producer of numbered text messages, also the producer that keeps
 * sending through a failover (pause it with {@code --pause-at}, kill the master, resume).
 *
 * <pre>
 * send --url U --dest queue:Q|topic:T [--count N=1] [--start S=0] [--persistent true|false]
 *      [--colors red,blue] [--prop k=v]... [--body-size B] [--ttl-ms T] [--priority P]
 *      [--tx none|commit|rollback] [--batch B] [--tolerate-commit-failure]
 *      [--pause-at K --resume-file F [--pause-max-ms 60000]] [--interval-ms I]
 * </pre>
 *
 * Message {@code seq} (S..S+N-1): a TextMessage with body {@code msg-<seq>} (padded with
 * {@code x} to B characters if --body-size), int property {@code seq}, string property
 * {@code color} = colors[seq % len] if --colors, and the --prop string properties.
 *
 * <p>Lines: {@code SENT seq=N} once {@code send()} returned (for a persistent send outside
 * a transaction the broker has confirmed it); with --tx, every B messages (and at the end)
 * {@code COMMIT batch=b first=F last=L} or {@code ROLLBACK batch=b first=F last=L}; a
 * commit that throws is {@code COMMIT_FAILED batch=b first=F last=L error=<class>} and,
 * with --tolerate-commit-failure, the producer carries on with the next batch (a commit
 * in doubt across a failover); {@code PAUSED sent=K} after the K-th send (before that
 * batch's commit), then {@code RESUMED} once file F exists; finally
 * {@code OK sent=N committed=C failed=F} (C, F: batches).
 */
final class ProbeSend {
    static void run(JmsProbe.Args args) throws Exception {
        JmsProbe.ConnSpec spec = new JmsProbe.ConnSpec(args);
        String dest = args.require("--dest");
        int count = args.getInt("--count", 1);
        int start = args.getInt("--start", 0);
        boolean persistent = Boolean.parseBoolean(args.get("--persistent", "true"));
        String colorsArg = args.get("--colors", null);
        String[] colors = colorsArg == null ? new String[0] : colorsArg.split(",");
        List<String> props = args.all("--prop");
        int bodySize = args.getInt("--body-size", 0);
        long ttl = args.getLong("--ttl-ms", 0);
        int priority = args.getInt("--priority", 4);
        String tx = args.get("--tx", "none");
        int batch = args.getInt("--batch", Math.max(count, 1));
        boolean tolerate = args.has("--tolerate-commit-failure");
        int pauseAt = args.getInt("--pause-at", -1);
        String resumeFile = args.get("--resume-file", null);
        long pauseMax = args.getLong("--pause-max-ms", 60_000);
        long interval = args.getLong("--interval-ms", 0);
        args.done();
        if (!tx.equals("none") && !tx.equals("commit") && !tx.equals("rollback")) {
            throw new JmsProbe.Usage("--tx must be none|commit|rollback");
        }
        if (pauseAt >= 0 && resumeFile == null) {
            throw new JmsProbe.Usage("--pause-at needs --resume-file");
        }
        boolean transacted = !tx.equals("none");

        Connection c = spec.open();
        int committed = 0;
        int failed = 0;
        try {
            c.start();
            Session s = c.createSession(transacted, transacted ? Session.SESSION_TRANSACTED : Session.AUTO_ACKNOWLEDGE);
            MessageProducer p = s.createProducer(JmsProbe.destination(dest));
            p.setDeliveryMode(persistent ? DeliveryMode.PERSISTENT : DeliveryMode.NON_PERSISTENT);
            p.setPriority(priority);
            if (ttl > 0) {
                p.setTimeToLive(ttl);
            }
            int batchNo = 0;
            int batchFirst = start;
            for (int i = 0; i < count; i++) {
                int seq = start + i;
                TextMessage m = s.createTextMessage(body(seq, bodySize));
                m.setIntProperty("seq", seq);
                if (colors.length > 0) {
                    m.setStringProperty("color", colors[seq % colors.length]);
                }
                for (String kv : props) {
                    int eq = kv.indexOf('=');
                    if (eq <= 0) {
                        throw new JmsProbe.Usage("--prop wants k=v, not " + kv);
                    }
                    m.setStringProperty(kv.substring(0, eq), kv.substring(eq + 1));
                }
                p.send(m);
                JmsProbe.line("SENT seq=" + seq);
                if (i + 1 == pauseAt) {
                    pause(pauseAt, new File(resumeFile), pauseMax);
                }
                boolean endOfBatch = (i + 1) % batch == 0 || i + 1 == count;
                if (transacted && endOfBatch) {
                    String range = "batch=" + batchNo + " first=" + batchFirst + " last=" + seq;
                    if (tx.equals("rollback")) {
                        s.rollback();
                        JmsProbe.line("ROLLBACK " + range);
                    } else {
                        try {
                            s.commit();
                            committed++;
                            JmsProbe.line("COMMIT " + range);
                        } catch (JMSException e) {
                            failed++;
                            JmsProbe.line("COMMIT_FAILED " + range + " error=" + e.getClass().getName());
                            if (!tolerate) {
                                throw e;
                            }
                        }
                    }
                    batchNo++;
                    batchFirst = seq + 1;
                }
                if (interval > 0) {
                    Thread.sleep(interval);
                }
            }
        } finally {
            c.close();
        }
        JmsProbe.line("OK sent=" + count + " committed=" + committed + " failed=" + failed);
    }

    static String body(int seq, int size) {
        StringBuilder b = new StringBuilder("msg-").append(seq);
        while (b.length() < size) {
            b.append('x');
        }
        return b.toString();
    }

    /** Prints PAUSED, waits (bounded) for {@code file} to exist, prints RESUMED. */
    private static void pause(int sent, File file, long maxMs) throws InterruptedException {
        JmsProbe.line("PAUSED sent=" + sent);
        long deadline = System.currentTimeMillis() + maxMs;
        while (!file.exists()) {
            if (System.currentTimeMillis() > deadline) {
                throw new JmsProbe.Fail("resume file " + file + " did not appear within " + maxMs + " ms");
            }
            Thread.sleep(10);
        }
        JmsProbe.line("RESUMED");
    }
}
