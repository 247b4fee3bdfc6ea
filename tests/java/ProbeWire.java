import java.io.File;
import java.net.URL;
import java.util.Arrays;

import javax.jms.Connection;
import javax.jms.DeliveryMode;
import javax.jms.JMSException;
import javax.jms.Message;
import javax.jms.MessageConsumer;
import javax.jms.MessageProducer;
import javax.jms.Queue;
import javax.jms.QueueBrowser;
import javax.jms.Session;
import javax.jms.TemporaryQueue;
import javax.jms.TemporaryTopic;
import javax.jms.TextMessage;
import javax.jms.Topic;
import javax.jms.TopicSubscriber;
import javax.jms.XAConnection;
import javax.jms.XASession;
import javax.transaction.xa.XAResource;
import javax.transaction.xa.Xid;

import org.apache.activemq.ActiveMQConnection;
import org.apache.activemq.ActiveMQConnectionFactory;
import org.apache.activemq.ActiveMQSession;
import org.apache.activemq.ActiveMQXAConnectionFactory;
import org.apache.activemq.command.ActiveMQQueue;
import org.apache.activemq.command.ActiveMQTopic;
import org.apache.activemq.command.ConnectionId;
import org.apache.activemq.command.ControlCommand;
import org.apache.activemq.command.LocalTransactionId;
import org.apache.activemq.command.TransactionInfo;

/**
 * {@code wire-tour}: drives one real ActiveMQ 5.17 client through every OpenWire command
 * type it can send or provoke, for {@code tools/capture-openwire} (which records the
 * frames through a proxy). Not a correctness test: it checks little and prints one
 * {@code STEP name} line per phase.
 *
 * <pre>
 * wire-tour --url tcp://H:P [--drop-file F] [--timeout-ms T=5000]
 * </pre>
 *
 * URL must be a plain {@code tcp://host:port} (options are added per phase). Phases:
 * a duplicate client id (ExceptionResponse); every message body type with properties and
 * a BlobMessage, persistent and (with a producer window: ProducerAck) non-persistent,
 * received with AUTO acks; a topic and a durable subscriber, then unsubscribe
 * (RemoveSubscriptionInfo); temporary queue/topic create and delete (DestinationInfo,
 * advisories); a transacted producer (commit, rollback) and a transacted prefetch-1
 * consumer rolled back until the client poison-acks (DELIVERED, REDELIVERED, POISON
 * acks); CLIENT and INDIVIDUAL acks; an expired message (EXPIRED ack); a pull consumer
 * (MessagePull, null MessageDispatch); a queue browser; XA (IntegerResponse from prepare,
 * DataArrayResponse from recover); a short inactivity timeout (KeepAliveInfo both ways);
 * two hand-built commands sent with the client's own marshaller
 * ({@code asyncSendPacket}): a {@code ControlCommand} (a 5.17 client never sends one by
 * itself) and an async ROLLBACK of a transaction never begun, which the broker answers
 * with ConnectionError; and, with {@code --drop-file}, a failover connection whose socket
 * the capture tool drops while a consumer holds an undelivered prefetched message (the
 * client sends ConnectionControl, replays its state with that consumer at prefetch 0 and
 * then restores the prefetch with ConsumerControl): the probe prints {@code DROP_ME},
 * waits for F to exist, then {@code RESUMED}.
 */
final class ProbeWire {
    private static long timeout;

    static void run(JmsProbe.Args args) throws Exception {
        String base = args.require("--url");
        String dropFile = args.get("--drop-file", null);
        timeout = args.getLong("--timeout-ms", 5_000);
        args.done();
        if (!base.startsWith("tcp://") || base.contains("?")) {
            throw new JmsProbe.Usage("--url must be tcp://host:port without options");
        }
        String redelivery = "jms.redeliveryPolicy.initialRedeliveryDelay=0"
                + "&jms.redeliveryPolicy.redeliveryDelay=0&jms.redeliveryPolicy.maximumRedeliveries=2";
        ActiveMQConnectionFactory f = factory(base + "?jms.producerWindowSize=65536&" + redelivery);

        // A connection with client id "tour"; a second one with the same id is refused
        // (ExceptionResponse with InvalidClientIDException).
        Connection c = f.createConnection();
        c.setClientID("tour");
        c.setExceptionListener(e -> JmsProbe.line("ASYNC_ERROR " + JmsProbe.esc(e.toString())));
        c.start();
        step("duplicate-client-id");
        Connection dup = f.createConnection();
        try {
            dup.setClientID("tour");
            dup.start();
            throw new JmsProbe.Fail("duplicate client id accepted");
        } catch (javax.jms.InvalidClientIDException expected) {
            JmsProbe.line("REFUSED " + expected.getClass().getName());
        } finally {
            try {
                dup.close();
            } catch (JMSException ignored) {
                // it never connected
            }
        }

        step("bodies");
        Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        Queue bodies = s.createQueue("tour.bodies");
        MessageProducer p = s.createProducer(bodies);
        p.setDeliveryMode(DeliveryMode.PERSISTENT);
        for (String kind : ProbeBodies.KINDS) {
            Message m = ProbeBodies.create(s, kind);
            m.setJMSCorrelationID("corr-" + kind);
            m.setJMSType("type-" + kind);
            m.setJMSReplyTo(new ActiveMQQueue("tour.reply"));
            ProbeBodies.setProperties(m);
            p.send(m);
        }
        // A BlobMessage that only references a URL (nothing is uploaded).
        p.send(((ActiveMQSession) s).createBlobMessage(new URL("http://127.0.0.1:9/blob")));
        // Non-persistent: sent async, so with a producer window the broker sends ProducerAck.
        p.setDeliveryMode(DeliveryMode.NON_PERSISTENT);
        p.send(s.createTextMessage("non-persistent"));
        p.close();
        MessageConsumer cons = s.createConsumer(bodies);
        receive(cons, ProbeBodies.KINDS.length + 2);
        cons.close();

        step("topics");
        Topic t = s.createTopic("tour.topic");
        MessageConsumer tc = s.createConsumer(t);
        TopicSubscriber durable = s.createDurableSubscriber(s.createTopic("tour.durable"), "sub1");
        MessageProducer tp = s.createProducer(null);
        tp.send(t, s.createTextMessage("to topic"));
        tp.send(s.createTopic("tour.durable"), s.createTextMessage("to durable"));
        receive(tc, 1);
        receive(durable, 1);
        tc.close();
        durable.close();
        s.unsubscribe("sub1");

        step("temporary");
        TemporaryQueue tq = s.createTemporaryQueue();
        TemporaryTopic tt = s.createTemporaryTopic();
        tp.send(tq, s.createTextMessage("to temp queue"));
        MessageConsumer tqc = s.createConsumer(tq);
        receive(tqc, 1);
        tqc.close();
        tq.delete();
        tt.delete();
        tp.close();

        step("transactions");
        Session tx = c.createSession(true, Session.SESSION_TRANSACTED);
        MessageProducer txp = tx.createProducer(tx.createQueue("tour.tx"));
        txp.send(tx.createTextMessage("committed"));
        tx.commit();
        txp.send(tx.createTextMessage("rolled back"));
        tx.rollback();
        // Prefetch 1: the client sends a DELIVERED ack per message in a transaction; the
        // second rollback sends REDELIVERED, the third (past maximumRedeliveries=2) POISON.
        MessageConsumer txc = tx.createConsumer(new ActiveMQQueue("tour.tx?consumer.prefetchSize=1"));
        for (int round = 0; round < 3; round++) {
            receive(txc, 1);
            tx.rollback();
        }
        txp.send(tx.createTextMessage("consumed in a transaction"));
        tx.commit();
        receive(txc, 1);
        tx.commit();
        txc.close();
        tx.close();

        step("client-acks");
        Session cs = c.createSession(false, Session.CLIENT_ACKNOWLEDGE);
        Session is = c.createSession(false, ActiveMQSession.INDIVIDUAL_ACKNOWLEDGE);
        MessageProducer ap = s.createProducer(null);
        ap.send(s.createQueue("tour.client"), s.createTextMessage("client ack"));
        ap.send(s.createQueue("tour.individual"), s.createTextMessage("individual ack"));
        receive(cs.createConsumer(cs.createQueue("tour.client")), 1).acknowledge();
        receive(is.createConsumer(is.createQueue("tour.individual")), 1).acknowledge();
        cs.close();
        is.close();

        step("expired");
        MessageConsumer ec = s.createConsumer(s.createQueue("tour.expired"));
        ap.setTimeToLive(300);
        ap.send(s.createQueue("tour.expired"), s.createTextMessage("expires"));
        ap.setTimeToLive(0);
        Thread.sleep(700);
        if (ec.receive(300) != null) {
            throw new JmsProbe.Fail("an expired message was delivered");
        }
        ec.close();

        step("pull");
        MessageConsumer pc = s.createConsumer(new ActiveMQQueue("tour.pull?consumer.prefetchSize=0"));
        if (pc.receive(200) != null) {
            throw new JmsProbe.Fail("pull: unexpected message");
        }
        ap.send(s.createQueue("tour.pull"), s.createTextMessage("pulled"));
        Message pulled = null;
        for (int i = 0; i < 50 && pulled == null; i++) {
            pulled = pc.receiveNoWait();
        }
        if (pulled == null) {
            throw new JmsProbe.Fail("pull: nothing");
        }
        pc.close();

        step("browser");
        ap.send(s.createQueue("tour.browse"), s.createTextMessage("browsed"));
        QueueBrowser qb = s.createBrowser(s.createQueue("tour.browse"));
        int browsed = java.util.Collections.list(qb.getEnumeration()).size();
        JmsProbe.line("BROWSED n=" + browsed);
        qb.close();
        ap.close();

        step("crafted");
        ActiveMQConnection ac = (ActiveMQConnection) c;
        ConnectionId connId = ac.getConnectionInfo().getConnectionId();
        ControlCommand ctl = new ControlCommand();
        ctl.setCommand("tour");
        ac.asyncSendPacket(ctl);
        // An async ROLLBACK of a transaction that was never begun: the broker cannot answer
        // an async command, so it reports the failure with ConnectionError (the connection
        // stays open; the client hands it to the ExceptionListener).
        LocalTransactionId ltx = new LocalTransactionId(connId, 9_999);
        ac.asyncSendPacket(new TransactionInfo(connId, ltx, TransactionInfo.ROLLBACK));
        Thread.sleep(300);
        s.close();
        c.close();

        step("xa");
        xa(base);

        step("keepalive");
        Connection kc = factory(base + "?wireFormat.maxInactivityDuration=900"
                + "&wireFormat.maxInactivityDurationInitalDelay=100").createConnection();
        kc.start();
        Thread.sleep(1_500);
        kc.close();

        if (dropFile != null) {
            step("failover");
            failover(base, new File(dropFile));
        }
        JmsProbe.line("OK");
    }

    private static ActiveMQConnectionFactory factory(String url) {
        ActiveMQConnectionFactory f = new ActiveMQConnectionFactory(url);
        f.setTrustedPackages(new java.util.ArrayList<>(java.util.List.of("java.util", "java.lang")));
        return f;
    }

    private static void step(String name) {
        JmsProbe.line("STEP " + name);
    }

    /** Receives n messages (each within the timeout); returns the last. */
    private static Message receive(MessageConsumer c, int n) throws JMSException {
        Message last = null;
        for (int i = 0; i < n; i++) {
            last = c.receive(timeout);
            if (last == null) {
                throw new JmsProbe.Fail("timeout after " + i + " of " + n);
            }
        }
        return last;
    }

    /** Two XA transactions: one prepared and committed, one prepared, recovered, rolled back. */
    private static void xa(String base) throws Exception {
        XAConnection xc = new ActiveMQXAConnectionFactory(base).createXAConnection();
        xc.start();
        XASession xs = xc.createXASession();
        XAResource r = xs.getXAResource();
        MessageProducer xp = xs.getSession().createProducer(xs.getSession().createQueue("tour.xa"));
        for (int i = 1; i <= 2; i++) {
            Xid xid = new TourXid(i);
            r.start(xid, XAResource.TMNOFLAGS);
            xp.send(xs.getSession().createTextMessage("xa " + i));
            r.end(xid, XAResource.TMSUCCESS);
            JmsProbe.line("PREPARED vote=" + r.prepare(xid));
            if (i == 1) {
                r.commit(xid, false);
            }
        }
        Xid[] found = r.recover(XAResource.TMSTARTRSCAN | XAResource.TMENDRSCAN);
        JmsProbe.line("RECOVERED n=" + found.length);
        for (Xid xid : found) {
            r.rollback(xid);
        }
        xc.close();
    }

    private static final class TourXid implements Xid {
        private final byte[] gtrid;

        TourXid(int n) {
            gtrid = ("tour-gtrid-" + n).getBytes(java.nio.charset.StandardCharsets.US_ASCII);
        }

        @Override
        public int getFormatId() {
            return 0x7475;
        }

        @Override
        public byte[] getGlobalTransactionId() {
            return gtrid.clone();
        }

        @Override
        public byte[] getBranchQualifier() {
            return new byte[] {1, 2, 3};
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof Xid && ((Xid) o).getFormatId() == getFormatId()
                    && Arrays.equals(((Xid) o).getGlobalTransactionId(), gtrid)
                    && Arrays.equals(((Xid) o).getBranchQualifier(), getBranchQualifier());
        }

        @Override
        public int hashCode() {
            return Arrays.hashCode(gtrid);
        }
    }

    /**
     * A failover connection with a consumer holding a prefetched message; the capture tool
     * drops its socket, the client reconnects, replays its state (the consumer with prefetch
     * 0) and then restores the prefetch with ConsumerControl; a message then goes through.
     */
    private static void failover(String base, File drop) throws Exception {
        String url = "failover:(" + base + ")?randomize=false&initialReconnectDelay=50&maxReconnectDelay=200";
        Connection fc = factory(url).createConnection();
        fc.start();
        Session fs = fc.createSession(false, Session.AUTO_ACKNOWLEDGE);
        MessageConsumer fcons = fs.createConsumer(fs.createQueue("tour.failover"));
        MessageProducer fp = fs.createProducer(fs.createQueue("tour.failover"));
        fp.setDeliveryMode(DeliveryMode.NON_PERSISTENT);
        // Two messages, one received: the other waits in the consumer's prefetch buffer
        // when the socket drops, which is what makes the client restore the consumer with
        // prefetch 0 and send ConsumerControl once it has cleared that buffer.
        fp.send(fs.createTextMessage("before the drop 1"));
        fp.send(fs.createTextMessage("before the drop 2"));
        receive(fcons, 1);
        Thread.sleep(200);
        JmsProbe.line("DROP_ME");
        long until = System.currentTimeMillis() + 30_000;
        while (!drop.exists()) {
            if (System.currentTimeMillis() > until) {
                throw new JmsProbe.Fail("no drop file " + drop);
            }
            Thread.sleep(20);
        }
        Thread.sleep(1_000);
        JmsProbe.line("RESUMED");
        fp.send(fs.createTextMessage("after the drop"));
        while (true) {
            TextMessage m = (TextMessage) receive(fcons, 1);
            JmsProbe.line("RECV body=" + JmsProbe.esc(m.getText()));
            if (m.getText().equals("after the drop")) {
                break;
            }
        }
        fc.close();
    }
}
