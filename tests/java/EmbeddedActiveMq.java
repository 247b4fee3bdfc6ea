import java.io.File;
import java.io.FileInputStream;
import java.security.KeyStore;
import java.util.ArrayList;
import java.util.List;

import javax.net.ssl.KeyManagerFactory;

import org.apache.activemq.broker.BrokerService;
import org.apache.activemq.broker.SslContext;
import org.apache.activemq.broker.TransportConnector;
import org.apache.activemq.broker.region.policy.IndividualDeadLetterStrategy;
import org.apache.activemq.broker.region.policy.PolicyEntry;
import org.apache.activemq.broker.region.policy.PolicyMap;
import org.apache.activemq.store.SharedFileLocker;
import org.apache.activemq.store.kahadb.KahaDBPersistenceAdapter;

/**
 * A real ActiveMQ Classic broker (the Debian 5.17 jars) for tests and benchmarks:
 * an embedded {@link BrokerService} with an OpenWire ({@code tcp://}) connector and,
 * optionally, a STOMP connector. Started by {@code tools/activemq}.
 *
 * <pre>
 * java EmbeddedActiveMq --port P [--stomp-port S] --data DIR [--kahadb]
 *                       [--name NAME] [--lock-interval-ms MS] [--exit-with-parent]
 *                       [--openwire-options QUERY]
 *                       [--ssl-port P] [--stomp-ssl-port S]
 *                       [--key-store FILE.p12 --key-store-password PW]
 *                       [--policy-queue PATTERN [--individual-dlq-prefix PREFIX]
 *                        [--queue-prefetch N]]
 *                       [--scheduler] [--redelivery-plugin K=V,K=V...]
 * </pre>
 *
 * <ul>
 *   <li>{@code --kahadb}: KahaDB persistence in DIR/kahadb with ActiveMQ's default sync
 *       (every persistent send and every ack is fsynced before the reply). Without it the
 *       broker keeps messages in memory ({@code persistent=false}).</li>
 *   <li>Two brokers started with {@code --kahadb} on the same DIR form ActiveMQ's
 *       shared-store master/slave: the second waits for the store lock (polled every
 *       {@code --lock-interval-ms}, default 500) and opens its connectors only when the
 *       first dies.</li>
 *   <li>{@code --openwire-options QUERY}: appended to the OpenWire connector URI after
 *       {@code ?}, e.g. {@code wireFormat.tightEncodingEnabled=false&wireFormat.cacheEnabled=false}
 *       to force loose encoding without the marshal cache, as Tandem does
 *       ({@code tools/capture-openwire} uses it).</li>
 *   <li>{@code --ssl-port}, {@code --stomp-ssl-port}: {@code ssl://} (OpenWire) and
 *       {@code stomp+ssl://} connectors, presenting the PKCS12 {@code --key-store}'s key
 *       (the broker's SSL context, as {@code <sslContext keyStore>} sets it).</li>
 *   <li>{@code --policy-queue PATTERN}: one destination policy entry, as
 *       {@code <policyEntry queue="PATTERN" queuePrefetch="N"><deadLetterStrategy>
 *       <individualDeadLetterStrategy queuePrefix="PREFIX" useQueueForQueueMessages="true"/>}
 *       writes it: with {@code --individual-dlq-prefix}, the queues matching PATTERN
 *       dead-letter to their own queue PREFIX + name; with {@code --queue-prefetch}, their
 *       consumers that keep the client's default prefetch get N.</li>
 *   <li>{@code --scheduler}: {@code schedulerSupport="true"} (scheduled delivery; its job
 *       store in DIR, persistent with --kahadb).</li>
 *   <li>{@code --redelivery-plugin K=V,...}: a {@code <redeliveryPlugin>} whose default
 *       entry is a {@code RedeliveryPolicy} with these properties (e.g.
 *       {@code maximumRedeliveries=2,initialRedeliveryDelay=1000,redeliveryDelay=1000});
 *       needs --scheduler, as in ActiveMQ.</li>
 *   <li>{@code --exit-with-parent}: exit when the parent process goes away (a test
 *       harness killed with SIGKILL must not leave brokers behind).</li>
 * </ul>
 *
 * Prints {@code STARTED openwire=P stomp=S} on stdout once the connectors accept.
 * JMX is off; advisories are on (the JMS client relies on them for temporary
 * destinations).
 */
public final class EmbeddedActiveMq {
    public static void main(String[] argv) throws Exception {
        int port = -1;
        int stompPort = -1;
        String data = null;
        boolean kahadb = false;
        String name = null;
        long lockIntervalMs = 500;
        boolean exitWithParent = false;
        String openwireOptions = null;
        int sslPort = -1;
        int stompSslPort = -1;
        String keyStore = null;
        String keyStorePassword = null;
        String policyQueue = null;
        String dlqPrefix = null;
        int queuePrefetch = -1;
        boolean scheduler = false;
        String redelivery = null;
        for (int i = 0; i < argv.length; i++) {
            String a = argv[i];
            switch (a) {
                case "--port": port = Integer.parseInt(argv[++i]); break;
                case "--stomp-port": stompPort = Integer.parseInt(argv[++i]); break;
                case "--data": data = argv[++i]; break;
                case "--kahadb": kahadb = true; break;
                case "--name": name = argv[++i]; break;
                case "--lock-interval-ms": lockIntervalMs = Long.parseLong(argv[++i]); break;
                case "--exit-with-parent": exitWithParent = true; break;
                case "--openwire-options": openwireOptions = argv[++i]; break;
                case "--ssl-port": sslPort = Integer.parseInt(argv[++i]); break;
                case "--stomp-ssl-port": stompSslPort = Integer.parseInt(argv[++i]); break;
                case "--key-store": keyStore = argv[++i]; break;
                case "--key-store-password": keyStorePassword = argv[++i]; break;
                case "--policy-queue": policyQueue = argv[++i]; break;
                case "--individual-dlq-prefix": dlqPrefix = argv[++i]; break;
                case "--queue-prefetch": queuePrefetch = Integer.parseInt(argv[++i]); break;
                case "--scheduler": scheduler = true; break;
                case "--redelivery-plugin": redelivery = argv[++i]; break;
                default:
                    System.err.println("EmbeddedActiveMq: unknown argument " + a);
                    System.exit(2);
            }
        }
        if (port <= 0 || data == null) {
            System.err.println("usage: EmbeddedActiveMq --port P [--stomp-port S] --data DIR [--kahadb]"
                    + " [--name NAME] [--lock-interval-ms MS] [--exit-with-parent]"
                    + " [--openwire-options QUERY] [--ssl-port P] [--stomp-ssl-port S]"
                    + " [--key-store FILE.p12 --key-store-password PW]");
            System.exit(2);
        }
        if (exitWithParent) {
            watchParent();
        }

        File dataDir = new File(data).getAbsoluteFile();
        BrokerService broker = new BrokerService();
        broker.setBrokerName(name != null ? name : "activemq-" + port);
        broker.setUseJmx(false);
        broker.setSchedulerSupport(scheduler);
        if (redelivery != null) {
            org.apache.activemq.broker.region.policy.RedeliveryPolicyMap map =
                    new org.apache.activemq.broker.region.policy.RedeliveryPolicyMap();
            org.apache.activemq.RedeliveryPolicy policy = new org.apache.activemq.RedeliveryPolicy();
            for (String kv : redelivery.split(",")) {
                String[] p = kv.split("=", 2);
                switch (p[0]) {
                    case "maximumRedeliveries": policy.setMaximumRedeliveries(Integer.parseInt(p[1])); break;
                    case "initialRedeliveryDelay": policy.setInitialRedeliveryDelay(Long.parseLong(p[1])); break;
                    case "redeliveryDelay": policy.setRedeliveryDelay(Long.parseLong(p[1])); break;
                    case "useExponentialBackOff": policy.setUseExponentialBackOff(Boolean.parseBoolean(p[1])); break;
                    case "backOffMultiplier": policy.setBackOffMultiplier(Double.parseDouble(p[1])); break;
                    default:
                        System.err.println("EmbeddedActiveMq: unknown redelivery policy property " + p[0]);
                        System.exit(2);
                }
            }
            map.setDefaultEntry(policy);
            org.apache.activemq.broker.util.RedeliveryPlugin plugin = new org.apache.activemq.broker.util.RedeliveryPlugin();
            plugin.setRedeliveryPolicyMap(map);
            broker.setPlugins(new org.apache.activemq.broker.BrokerPlugin[] {plugin});
        }
        broker.setAdvisorySupport(true);
        broker.setUseShutdownHook(true);
        broker.setDataDirectoryFile(dataDir);
        broker.setTmpDataDirectory(new File(dataDir, "tmp-" + port));
        // Keep the limits below the JVM heap and the free disk of a small test machine, so
        // the broker does not spend its start-up warning about them.
        broker.getSystemUsage().getMemoryUsage().setLimit(256L << 20);
        broker.getSystemUsage().getStoreUsage().setLimit(1L << 30);
        broker.getSystemUsage().getTempUsage().setLimit(1L << 30);
        if (kahadb) {
            broker.setPersistent(true);
            KahaDBPersistenceAdapter store = new KahaDBPersistenceAdapter();
            store.setDirectory(new File(dataDir, "kahadb"));
            SharedFileLocker locker = new SharedFileLocker();
            locker.setLockAcquireSleepInterval(lockIntervalMs);
            store.setLocker(locker);
            broker.setPersistenceAdapter(store);
        } else {
            broker.setPersistent(false);
        }
        if ((dlqPrefix != null || queuePrefetch >= 0) && policyQueue == null) {
            System.err.println("EmbeddedActiveMq: --individual-dlq-prefix/--queue-prefetch need --policy-queue");
            System.exit(2);
        }
        if (policyQueue != null) {
            PolicyEntry entry = new PolicyEntry();
            entry.setQueue(policyQueue);
            if (dlqPrefix != null) {
                IndividualDeadLetterStrategy dlq = new IndividualDeadLetterStrategy();
                dlq.setQueuePrefix(dlqPrefix);
                dlq.setUseQueueForQueueMessages(true);
                entry.setDeadLetterStrategy(dlq);
            }
            if (queuePrefetch >= 0) {
                entry.setQueuePrefetch(queuePrefetch);
            }
            PolicyMap policies = new PolicyMap();
            policies.setPolicyEntries(List.of(entry));
            broker.setDestinationPolicy(policies);
        }
        List<String> uris = new ArrayList<>();
        TransportConnector openwire = broker.addConnector("tcp://127.0.0.1:" + port
                + (openwireOptions != null && !openwireOptions.isEmpty() ? "?" + openwireOptions : ""));
        openwire.setName("openwire");
        uris.add("openwire=" + port);
        if (stompPort > 0) {
            TransportConnector stomp = broker.addConnector("stomp://127.0.0.1:" + stompPort);
            stomp.setName("stomp");
            uris.add("stomp=" + stompPort);
        }
        if ((sslPort > 0 || stompSslPort > 0) && keyStore == null) {
            System.err.println("EmbeddedActiveMq: --ssl-port/--stomp-ssl-port need --key-store");
            System.exit(2);
        }
        if (keyStore != null) {
            // The broker's own SSL context (as <sslContext keyStore> does in activemq.xml).
            char[] pw = keyStorePassword == null ? new char[0] : keyStorePassword.toCharArray();
            KeyStore ks = KeyStore.getInstance("PKCS12");
            try (FileInputStream in = new FileInputStream(keyStore)) {
                ks.load(in, pw);
            }
            KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
            kmf.init(ks, pw);
            broker.setSslContext(new SslContext(kmf.getKeyManagers(), null, null));
        }
        if (sslPort > 0) {
            TransportConnector ssl = broker.addConnector("ssl://127.0.0.1:" + sslPort);
            ssl.setName("ssl");
            uris.add("ssl=" + sslPort);
        }
        if (stompSslPort > 0) {
            TransportConnector stompSsl = broker.addConnector("stomp+ssl://127.0.0.1:" + stompSslPort);
            stompSsl.setName("stomp+ssl");
            uris.add("stomp+ssl=" + stompSslPort);
        }
        broker.start();
        broker.waitUntilStarted();
        System.out.println("STARTED " + String.join(" ", uris));
        System.out.flush();
        broker.waitUntilStopped();
    }

    /** Exits the JVM once our parent process is gone (re-parented to init or a subreaper). */
    private static void watchParent() {
        final long parent = ProcessHandle.current().parent().map(ProcessHandle::pid).orElse(-1L);
        Thread t = new Thread(() -> {
            while (true) {
                try {
                    Thread.sleep(500);
                } catch (InterruptedException e) {
                    return;
                }
                long now = ProcessHandle.current().parent().map(ProcessHandle::pid).orElse(-1L);
                boolean alive = ProcessHandle.of(parent).map(ProcessHandle::isAlive).orElse(false);
                if (now != parent || !alive) {
                    System.err.println("EmbeddedActiveMq: parent " + parent + " is gone; exiting");
                    Runtime.getRuntime().halt(3);
                }
            }
        }, "parent-watch");
        t.setDaemon(true);
        t.start();
    }
}
