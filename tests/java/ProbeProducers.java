import java.util.ArrayList;
import java.util.List;

import javax.jms.Connection;
import javax.jms.Destination;
import javax.jms.JMSException;
import javax.jms.MessageProducer;
import javax.jms.Session;

/**
 * {@code producers}: one connection opening producers until the broker refuses one.
 *
 * <pre>
 * producers --url U --dest queue:Q [--max N=100000]
 * </pre>
 *
 * Creates producers on one session (each a synchronous ProducerInfo) until
 * {@code createProducer} throws or N exist; then sends one message with the first
 * producer, to show the connection is still served.
 *
 * <p>Lines: {@code REFUSED after=K error=<class>} when a producer was refused (K created
 * before); {@code OK created=K sent=1}.
 */
final class ProbeProducers {
    static void run(JmsProbe.Args args) throws Exception {
        JmsProbe.ConnSpec spec = new JmsProbe.ConnSpec(args);
        Destination dest = JmsProbe.destination(args.require("--dest"));
        int max = args.getInt("--max", 100_000);
        args.done();
        Connection c = spec.open(null);
        try {
            c.start();
            Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
            List<MessageProducer> producers = new ArrayList<>();
            while (producers.size() < max) {
                try {
                    producers.add(s.createProducer(dest));
                } catch (JMSException e) {
                    JmsProbe.line("REFUSED after=" + producers.size() + " error=" + e.getClass().getName());
                    break;
                }
            }
            if (producers.isEmpty()) {
                throw new JmsProbe.Fail("no producer created");
            }
            producers.get(0).send(s.createTextMessage("after-refusal"));
            JmsProbe.line("OK created=" + producers.size() + " sent=1");
        } finally {
            c.close();
        }
    }
}
