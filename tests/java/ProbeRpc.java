import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;

import javax.jms.Connection;
import javax.jms.DeliveryMode;
import javax.jms.Destination;
import javax.jms.Message;
import javax.jms.MessageConsumer;
import javax.jms.MessageProducer;
import javax.jms.Session;
import javax.jms.TemporaryQueue;
import javax.jms.TextMessage;

/**
 * {@code rpc}: request/reply over temporary queues (SCENARIOS S11, and S13 reduced).
 *
 * <pre>
 * rpc --url U --dest queue:REQ [--count N=100] [--requesters J=1] [--responders K=1]
 *     [--transacted] [--recreate-every M] [--timeout-ms T=10000]
 * </pre>
 *
 * K responders, each on its own connection, consume REQ and answer every request on its
 * JMSReplyTo with body {@code re:<request body>} and the request's JMSCorrelationID;
 * with --transacted each receive+reply is one local transaction, and with
 * --recreate-every M a responder closes and re-creates its consumer every M requests.
 * J requesters, each on its own connection with its own temporary queue, send N
 * requests one after the other (persistent; committed first with --transacted) and wait
 * up to T ms for each reply, checking its correlation id and body. A responder learns of
 * the requester's temporary queue only through the broker's advisories.
 *
 * <p>Lines: {@code TEMPQ requester=j} (its temporary queue exists);
 * {@code REPLY_ERROR requester=j n=i reason=...} for each wrong or missing reply;
 * {@code TEMPQ_DELETED requester=j} after {@code delete()}; then
 * {@code OK roundtrips=R errors=E handled=h1,h2,...} (per responder; their sum is every
 * request answered). Exit 1 ({@code FAIL}) if E > 0 or R != J*N.
 */
final class ProbeRpc {
    static void run(JmsProbe.Args args) throws Exception {
        JmsProbe.ConnSpec spec = new JmsProbe.ConnSpec(args);
        Destination reqDest = JmsProbe.destination(args.require("--dest"));
        int count = args.getInt("--count", 100);
        int requesters = args.getInt("--requesters", 1);
        int responders = args.getInt("--responders", 1);
        boolean transacted = args.has("--transacted");
        int recreateEvery = args.getInt("--recreate-every", 0);
        long timeout = args.getLong("--timeout-ms", 10_000);
        args.done();

        AtomicBoolean stop = new AtomicBoolean(false);
        AtomicReference<Throwable> failure = new AtomicReference<>();
        List<Connection> connections = new ArrayList<>();
        AtomicInteger[] handled = new AtomicInteger[responders];
        List<Thread> threads = new ArrayList<>();
        try {
            for (int k = 0; k < responders; k++) {
                handled[k] = new AtomicInteger();
                Connection c = spec.open(null);
                connections.add(c);
                c.start();
                Responder r = new Responder(c, reqDest, transacted, recreateEvery, handled[k], stop, failure);
                r.open();
                Thread t = new Thread(r, "responder-" + k);
                t.start();
                threads.add(t);
            }
            AtomicInteger roundtrips = new AtomicInteger();
            AtomicInteger errors = new AtomicInteger();
            List<Thread> reqThreads = new ArrayList<>();
            for (int j = 0; j < requesters; j++) {
                final int jj = j;
                Connection c = spec.open(null);
                connections.add(c);
                Thread t = new Thread(() -> {
                    try {
                        request(c, jj, reqDest, count, transacted, timeout, roundtrips, errors);
                    } catch (Throwable e) {
                        failure.compareAndSet(null, e);
                    }
                }, "requester-" + j);
                t.start();
                reqThreads.add(t);
            }
            for (Thread t : reqThreads) {
                t.join();
            }
            stop.set(true);
            for (Thread t : threads) {
                t.join(timeout + 5_000);
            }
            if (failure.get() != null) {
                Throwable e = failure.get();
                if (e instanceof Exception) {
                    throw (Exception) e;
                }
                throw new RuntimeException(e);
            }
            StringBuilder h = new StringBuilder();
            for (int k = 0; k < responders; k++) {
                h.append(k == 0 ? "" : ",").append(handled[k].get());
            }
            String summary = "roundtrips=" + roundtrips.get() + " errors=" + errors.get() + " handled=" + h;
            if (errors.get() > 0 || roundtrips.get() != requesters * count) {
                throw new JmsProbe.Fail(summary);
            }
            JmsProbe.line("OK " + summary);
        } finally {
            stop.set(true);
            for (Connection c : connections) {
                try {
                    c.close();
                } catch (Exception e) {
                    // closing is best effort
                }
            }
        }
    }

    private static void request(Connection c, int j, Destination reqDest, int count, boolean transacted,
            long timeout, AtomicInteger roundtrips, AtomicInteger errors) throws Exception {
        c.start();
        Session s = c.createSession(transacted, transacted ? Session.SESSION_TRANSACTED : Session.AUTO_ACKNOWLEDGE);
        TemporaryQueue replyTo = s.createTemporaryQueue();
        JmsProbe.line("TEMPQ requester=" + j);
        MessageConsumer replies = s.createConsumer(replyTo);
        MessageProducer p = s.createProducer(reqDest);
        p.setDeliveryMode(DeliveryMode.PERSISTENT);
        for (int i = 0; i < count; i++) {
            String corr = "r" + j + "-" + i;
            TextMessage req = s.createTextMessage("req-" + j + "-" + i);
            req.setJMSReplyTo(replyTo);
            req.setJMSCorrelationID(corr);
            p.send(req);
            if (transacted) {
                s.commit();
            }
            Message reply = replies.receive(timeout);
            if (transacted) {
                s.commit();
            }
            if (reply == null) {
                errors.incrementAndGet();
                JmsProbe.line("REPLY_ERROR requester=" + j + " n=" + i + " reason=timeout");
                continue;
            }
            String body = reply instanceof TextMessage ? ((TextMessage) reply).getText() : null;
            if (!corr.equals(reply.getJMSCorrelationID()) || !("re:req-" + j + "-" + i).equals(body)) {
                errors.incrementAndGet();
                JmsProbe.line("REPLY_ERROR requester=" + j + " n=" + i + " reason=mismatch correlationId="
                        + JmsProbe.esc(reply.getJMSCorrelationID()) + " body=" + JmsProbe.esc(body));
                continue;
            }
            roundtrips.incrementAndGet();
        }
        replies.close();
        replyTo.delete();
        JmsProbe.line("TEMPQ_DELETED requester=" + j);
    }

    /** Answers requests until told to stop. */
    private static final class Responder implements Runnable {
        private final Connection c;
        private final Destination reqDest;
        private final boolean transacted;
        private final int recreateEvery;
        private final AtomicInteger handled;
        private final AtomicBoolean stop;
        private final AtomicReference<Throwable> failure;
        private Session s;
        private MessageConsumer consumer;
        private MessageProducer producer;

        Responder(Connection c, Destination reqDest, boolean transacted, int recreateEvery, AtomicInteger handled,
                AtomicBoolean stop, AtomicReference<Throwable> failure) {
            this.c = c;
            this.reqDest = reqDest;
            this.transacted = transacted;
            this.recreateEvery = recreateEvery;
            this.handled = handled;
            this.stop = stop;
            this.failure = failure;
        }

        /** Session, consumer and anonymous producer; before the requesters start. */
        void open() throws Exception {
            s = c.createSession(transacted, transacted ? Session.SESSION_TRANSACTED : Session.AUTO_ACKNOWLEDGE);
            consumer = s.createConsumer(reqDest);
            producer = s.createProducer(null);
            producer.setDeliveryMode(DeliveryMode.PERSISTENT);
        }

        @Override
        public void run() {
            try {
                int sinceRecreate = 0;
                while (!stop.get()) {
                    Message req = consumer.receive(100);
                    if (req == null) {
                        continue;
                    }
                    TextMessage reply = s.createTextMessage("re:" + ((TextMessage) req).getText());
                    reply.setJMSCorrelationID(req.getJMSCorrelationID());
                    producer.send(req.getJMSReplyTo(), reply);
                    if (transacted) {
                        s.commit();
                    }
                    handled.incrementAndGet();
                    if (recreateEvery > 0 && ++sinceRecreate >= recreateEvery) {
                        consumer.close();
                        consumer = s.createConsumer(reqDest);
                        sinceRecreate = 0;
                    }
                }
            } catch (Throwable e) {
                failure.compareAndSet(null, e);
            }
        }
    }
}
