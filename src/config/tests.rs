//! Loader tests. They run against a fake environment (`env`) so results depend on
//! neither the process environment nor the machine's CPUs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::*;
use crate::uri::Scheme;

/// Four allowed CPUs and the given variables.
fn env(vars: &[(&str, &str)]) -> LoadEnv {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    LoadEnv {
        vars: Box::new(move |k| map.get(k).cloned()),
        allowed_cpus: vec![0, 1, 2, 3],
    }
}

fn parse(text: &str) -> (BrokerConfig, Vec<Ignored>) {
    parse_str_with(text, Path::new("config/broker.xml"), &env(&[]))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn error(text: &str) -> ConfigError {
    match parse_str_with(text, Path::new("config/broker.xml"), &env(&[])) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e,
    }
}

/// A broker with one STOMP connector and `inner` spliced in; the `<broker>` tag is on
/// line 1 and `inner` starts on line 2.
fn broker(attrs: &str, inner: &str) -> String {
    format!(
        "<broker {attrs}>\n{inner}\n<transportConnectors><transportConnector name=\"s\" \
         uri=\"stomp://127.0.0.1:61613\"/></transportConnectors>\n</broker>\n"
    )
}

/// conf/activemq.xml as ActiveMQ 5.17 ships it (licence header shortened), plus
/// nothing else: it must load with no environment set.
const STOCK_5_17: &str = r#"<!--
    Licensed to the Apache Software Foundation (ASF) under one or more
    contributor license agreements.
-->
<!-- START SNIPPET: example -->
<beans
  xmlns="http://www.springframework.org/schema/beans"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xsi:schemaLocation="http://www.springframework.org/schema/beans http://www.springframework.org/schema/beans/spring-beans.xsd
  http://activemq.apache.org/schema/core http://activemq.apache.org/schema/core/activemq-core.xsd">

    <!-- Allows us to use system properties as variables in this configuration file -->
    <bean class="org.springframework.beans.factory.config.PropertyPlaceholderConfigurer">
        <property name="locations">
            <value>file:${activemq.conf}/credentials.properties</value>
        </property>
    </bean>

   <!-- Allows accessing the server log -->
    <bean id="logQuery" class="io.fabric8.insight.log.log4j.Log4jLogQuery"
          lazy-init="false" scope="singleton"
          init-method="start" destroy-method="stop">
    </bean>

    <!--
        The <broker> element is used to configure the ActiveMQ broker.
    -->
    <broker xmlns="http://activemq.apache.org/schema/core" brokerName="localhost" dataDirectory="${activemq.data}">

        <destinationPolicy>
            <policyMap>
              <policyEntries>
                <policyEntry topic=">" >
                  <pendingMessageLimitStrategy>
                    <constantPendingMessageLimitStrategy limit="1000"/>
                  </pendingMessageLimitStrategy>
                </policyEntry>
              </policyEntries>
            </policyMap>
        </destinationPolicy>

        <managementContext>
            <managementContext createConnector="false"/>
        </managementContext>

        <persistenceAdapter>
            <kahaDB directory="${activemq.data}/kahadb"/>
        </persistenceAdapter>

          <systemUsage>
            <systemUsage>
                <memoryUsage>
                    <memoryUsage percentOfJvmHeap="70" />
                </memoryUsage>
                <storeUsage>
                    <storeUsage limit="100 gb"/>
                </storeUsage>
                <tempUsage>
                    <tempUsage limit="50 gb"/>
                </tempUsage>
            </systemUsage>
        </systemUsage>

        <transportConnectors>
            <!-- DOS protection, limit concurrent connections to 1000 and frame size to 100MB -->
            <transportConnector name="openwire" uri="tcp://0.0.0.0:61616?maximumConnections=1000&amp;wireFormat.maxFrameSize=104857600"/>
            <transportConnector name="amqp" uri="amqp://0.0.0.0:5672?maximumConnections=1000&amp;wireFormat.maxFrameSize=104857600"/>
            <transportConnector name="stomp" uri="stomp://0.0.0.0:61613?maximumConnections=1000&amp;wireFormat.maxFrameSize=104857600"/>
            <transportConnector name="mqtt" uri="mqtt://0.0.0.0:1883?maximumConnections=1000&amp;wireFormat.maxFrameSize=104857600"/>
            <transportConnector name="ws" uri="ws://0.0.0.0:61614?maximumConnections=1000&amp;wireFormat.maxFrameSize=104857600"/>
        </transportConnectors>

        <!-- destroy the spring context on shutdown to stop jetty -->
        <shutdownHooks>
            <bean xmlns="http://www.springframework.org/schema/beans" class="org.apache.activemq.hooks.SpringContextHook" />
        </shutdownHooks>

    </broker>

    <import resource="jetty.xml"/>

</beans>
<!-- END SNIPPET: example -->
"#;

#[test]
fn stock_activemq_5_17_loads() {
    let (c, ignored) = parse(STOCK_5_17);
    assert_eq!(c.broker_name, "localhost");
    assert_eq!(c.data_directory, PathBuf::from("data"));
    assert!(c.persistent);
    // The stock "${activemq.data}/kahadb" is not doubled under the data directory.
    assert_eq!(c.journal.directory, PathBuf::from("data/kahadb"));
    assert_eq!(
        c.journal.configured_directory,
        Some(PathBuf::from("kahadb"))
    );
    assert_eq!(c.journal.segment_bytes, 32 << 20);
    assert_eq!(c.memory_limit_bytes, 64 << 20);
    // The stock <storeUsage limit="100 gb"/>.
    assert_eq!(c.store_limit_bytes, 100 << 30);
    assert!(!c.auth_enabled);
    assert!(c.users.is_empty());

    let names: Vec<&str> = c
        .transport_connectors
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(names, ["openwire", "stomp"]);
    let ow = &c.transport_connectors[0];
    assert_eq!(ow.uri.scheme, Scheme::Tcp);
    assert_eq!(ow.uri.addr, "0.0.0.0:61616".parse().unwrap());
    assert_eq!(ow.max_connections, Some(1000));
    assert_eq!(ow.max_frame_bytes, 104_857_600);
    assert_eq!(c.transport_connectors[1].uri.scheme, Scheme::Stomp);

    let paths: Vec<&str> = ignored.iter().map(|i| i.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "beans/broker/destinationPolicy/policyMap/policyEntries/policyEntry/pendingMessageLimitStrategy",
            "beans/broker/managementContext",
            "beans/broker/systemUsage/systemUsage/memoryUsage/memoryUsage@percentOfJvmHeap",
            "beans/broker/systemUsage/systemUsage/tempUsage",
            "beans/broker/transportConnectors/transportConnector[amqp]",
            "beans/broker/transportConnectors/transportConnector[mqtt]",
            "beans/broker/transportConnectors/transportConnector[ws]",
            "beans/broker/shutdownHooks",
            "beans/import",
        ]
    );
    let amqp = &ignored[4];
    assert_eq!(amqp.line, 67);
    assert!(amqp.reason.contains("\"amqp\""), "{}", amqp.reason);
    assert_eq!(ignored[0].line, 34);
    // The stock policy entry (topic ">") is read, with nothing Tandem applies set.
    assert_eq!(c.destination_policy.entries.len(), 1);
    assert_eq!(c.destination_policy.entries[0].0.pattern, ">");

    // Default layout: four allowed CPUs, four pinned shards.
    assert_eq!(c.shards.count, 4);
    assert!(c.shards.pin_cores);
    assert_eq!(c.shards.cores, [0, 1, 2, 3]);
    assert_eq!(c.shards.io_memory_bytes, 256 << 10);
    assert_eq!(c.shards.ring_depth, 128);
    assert_eq!(c.shards.replication_core, None);
    assert_eq!(
        c.limits,
        ProtocolLimits {
            max_frame_bytes: 64 << 20,
            max_header_bytes: 10 << 10,
            max_headers: 1000,
            connect_attempt_timeout_ms: 5_000,
            max_login_frame_bytes: 64 << 10,
        }
    );
    assert_eq!(c.redelivery.maximum_redeliveries, Some(6));
    assert_eq!(c.redelivery.dead_letter_queue, "ActiveMQ.DLQ");
    assert_eq!(c.replication.master, None);
    assert!(!c.replication.wait_for_slave);
    assert_eq!(c.replication.wait_for_slave_timeout_ms, 600_000);
    assert_eq!(c.replication.ack, ReplicationAck::Fsync);
    assert_eq!(c.replication.heartbeat_ms, 100);
    assert_eq!(c.status_port, None);
    assert_eq!(c.status_host, std::net::IpAddr::from([127, 0, 0, 1]));
    assert_eq!(c.admin_group, "admins");
}

#[test]
fn bare_broker_defaults() {
    let (c, ignored) = parse(
        "<broker><transportConnectors><transportConnector uri=\"stomp://localhost:61613\"/>\
         </transportConnectors></broker>",
    );
    assert!(ignored.is_empty(), "{ignored:?}");
    assert_eq!(c.source, PathBuf::from("config/broker.xml"));
    assert_eq!(c.broker_name, "localhost");
    assert_eq!(c.data_directory, PathBuf::from("data"));
    assert_eq!(c.journal.directory, PathBuf::from("data/journal"));
    assert_eq!(c.journal.configured_directory, None);
    // An unnamed connector is named after its URI, as in ActiveMQ.
    assert_eq!(c.transport_connectors[0].name, "stomp://localhost:61613");
    assert_eq!(
        c.transport_connectors[0].uri.addr,
        "127.0.0.1:61613".parse().unwrap()
    );
    assert_eq!(c.transport_connectors[0].max_connections, None);
    assert_eq!(c.transport_connectors[0].max_frame_bytes, 64 << 20);
}

#[test]
fn error_messages_name_file_line_element_attribute() {
    let cases: &[(&str, &str)] = &[
        (
            "persistent=\"maybe\"",
            "config/broker.xml:1: <broker persistent=\"maybe\">: expected true or false",
        ),
        (
            "waitForSlaveTimeout=\"10s\"",
            "config/broker.xml:1: <broker waitForSlaveTimeout=\"10s\">: expected a whole number >= 0",
        ),
    ];
    for (attrs, want) in cases {
        assert_eq!(error(&broker(attrs, "")).to_string(), *want);
    }

    let text = broker(
        "",
        "<systemUsage>\n<systemUsage>\n<memoryUsage>\n<memoryUsage limit=\"lots\"/>\n\
         </memoryUsage></systemUsage></systemUsage>",
    );
    assert_eq!(
        error(&text).to_string(),
        "config/broker.xml:5: <memoryUsage limit=\"lots\">: expected a size like \"64 mb\""
    );

    // The attribute's own line, not its element's.
    let text = "<broker brokerName=\"b\"\n\n        persistent=\"perhaps\">\n</broker>";
    let e = error(text);
    assert_eq!(e.line(), 3);
    assert!(e
        .to_string()
        .starts_with("config/broker.xml:3: <broker persistent=\"perhaps\">"));

    let conn = |uri: &str| {
        format!(
            "<broker>\n<transportConnectors>\n<transportConnector name=\"x\"\n uri=\"{uri}\"/>\n\
             </transportConnectors>\n</broker>"
        )
    };
    assert_eq!(
        error(&conn("stomp://127.0.0.1:70000")).to_string(),
        "config/broker.xml:4: <transportConnector uri=\"stomp://127.0.0.1:70000\">: \
         port \"70000\" is not a number in 0-65535"
    );
    assert_eq!(
        error(&conn("stomp:/127.0.0.1")).to_string(),
        "config/broker.xml:4: <transportConnector uri=\"stomp:/127.0.0.1\">: \
         expected `scheme://host:port`, found no \"://\""
    );
    assert!(error(&conn("bogus://127.0.0.1:1"))
        .to_string()
        .contains("unknown scheme \"bogus\""));
    assert!(error(&conn("stomp://127.0.0.1:1?maximumConnections=0"))
        .to_string()
        .contains("option maximumConnections=\"0\": expected a whole number >= 1"));
    assert!(
        error(&conn("stomp://127.0.0.1:1?wireFormat.maxFrameSize=huge"))
            .to_string()
            .contains("wireFormat.maxFrameSize")
    );

    let missing = error("<broker>\n  <transportConnectors>\n    <transportConnector name=\"x\"/>\n  </transportConnectors>\n</broker>");
    assert_eq!(
        missing.to_string(),
        "config/broker.xml:3: <transportConnector>: missing attribute \"uri\""
    );
}

#[test]
fn malformed_xml_reports_line() {
    let e = error("<broker>\n<transportConnectors>\n</broker>\n");
    assert!(matches!(e, ConfigError::Xml { line: 3, .. }), "{e}");
    assert!(
        e.to_string()
            .starts_with("config/broker.xml:3: malformed XML:"),
        "{e}"
    );
    let e = error("<broker a=\"1\" a=\"2\"/>");
    assert!(matches!(e, ConfigError::Xml { line: 1, .. }), "{e}");
    let e = error("<other/>");
    assert_eq!(
        e.to_string(),
        "config/broker.xml:1: <other>: expected <beans> or <broker> as the root element"
    );
    let e = error("<beans>\n<bean/>\n</beans>");
    assert_eq!(
        e.to_string(),
        "config/broker.xml:1: <beans>: no <broker> element inside"
    );
    let e = error("<beans>\n<broker/>\n<broker/>\n</beans>");
    assert_eq!(e.line(), 3);
}

#[test]
fn connector_validation() {
    let two = |a: &str, b: &str| {
        format!("<broker><transportConnectors>\n{a}\n{b}\n</transportConnectors></broker>")
    };
    let e = error(&two(
        r#"<transportConnector name="s" uri="stomp://127.0.0.1:61613"/>"#,
        r#"<transportConnector name="s" uri="tcp://127.0.0.1:61616"/>"#,
    ));
    assert_eq!(
        e.to_string(),
        "config/broker.xml:3: <transportConnector name=\"s\">: connector name \"s\" is used twice"
    );
    let e = error(&two(
        r#"<transportConnector name="a" uri="stomp://0.0.0.0:61613"/>"#,
        r#"<transportConnector name="b" uri="tcp://127.0.0.1:61613"/>"#,
    ));
    assert!(
        e.to_string()
            .contains("port 61613 is already used by connector \"a\""),
        "{e}"
    );
    // Port 0 is "any free port" and never collides.
    let (c, _) = parse(&two(
        r#"<transportConnector name="a" uri="stomp://127.0.0.1:0"/>"#,
        r#"<transportConnector name="b" uri="tcp://127.0.0.1:0"/>"#,
    ));
    assert_eq!(c.transport_connectors.len(), 2);

    // Only unsupported connectors: a clear error listing what was skipped.
    let e = error(&two(
        r#"<transportConnector name="amqp" uri="amqp://0.0.0.0:5672"/>"#,
        r#"<transportConnector name="mqtts" uri="mqtt+ssl://0.0.0.0:8883"/>"#,
    ));
    let msg = e.to_string();
    assert!(
        msg.starts_with("config/broker.xml:1: <broker>: no <transportConnector>"),
        "{msg}"
    );
    assert!(
        msg.contains("transportConnector[amqp]") && msg.contains("transportConnector[mqtts]"),
        "{msg}"
    );
    let e = error("<broker/>");
    assert!(e.to_string().contains("no <transportConnector>"));

    // Unknown URI options are ignored per connector, known ones applied.
    let (c, ignored) = parse(&two(
        r#"<transportConnector name="a" uri="stomp://127.0.0.1:1?transport.closeAsync=false&amp;wireFormat.maxFrameSize=1mb&amp;transport.connectAttemptTimeout=700"/>"#,
        "",
    ));
    assert_eq!(c.transport_connectors[0].max_frame_bytes, 1 << 20);
    assert_eq!(c.transport_connectors[0].connect_attempt_timeout_ms, 700);
    assert_eq!(
        ignored[0].path,
        "broker/transportConnectors/transportConnector[a]?transport.closeAsync"
    );
}

#[test]
fn placeholders_from_environment() {
    let text = broker(
        "brokerName=\"${broker.name}\" dataDirectory=\"${TANDEM_DATA:-/tmp/x}/b\"",
        "<persistenceAdapter><kahaDB journalMaxFileLength=\"${seg}\"/></persistenceAdapter>",
    );
    let vars = env(&[("broker_name", "b1"), ("seg", "1 mb")]);
    let (c, _) = parse_str_with(&text, Path::new("b.xml"), &vars).unwrap();
    assert_eq!(c.broker_name, "b1");
    assert_eq!(c.data_directory, PathBuf::from("/tmp/x/b"));
    assert_eq!(c.journal.segment_bytes, 1 << 20);

    let vars = env(&[
        ("broker_name", "b1"),
        ("seg", "lots"),
        ("TANDEM_DATA", "/srv"),
    ]);
    let e = parse_str_with(&text, Path::new("b.xml"), &vars).unwrap_err();
    assert_eq!(
        e.to_string(),
        "b.xml:2: <kahaDB journalMaxFileLength=\"${seg}\">: \
         expected a size like \"64 mb\", got \"lots\""
    );

    let e = parse_str_with(&text, Path::new("b.xml"), &env(&[])).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.starts_with("b.xml:1: <broker brokerName=\"${broker.name}\">: placeholder ${broker.name} is not set"),
        "{msg}"
    );
    assert!(msg.contains("BROKER_NAME"), "{msg}");

    // A placeholder in an attribute Tandem ignores is never expanded, so it cannot fail.
    let (_, ignored) = parse(&broker("useJmx=\"${undefined.thing}\"", ""));
    assert_eq!(ignored[0].path, "broker@useJmx");
}

#[test]
fn sizes_and_limits() {
    let mem = |limit: &str| {
        broker(
            "",
            &format!(
                "<systemUsage><systemUsage><memoryUsage><memoryUsage limit=\"{limit}\"/>\
                 </memoryUsage></systemUsage></systemUsage>"
            ),
        )
    };
    assert_eq!(parse(&mem("1 gb")).0.memory_limit_bytes, 1 << 30);
    assert_eq!(parse(&mem("512MB")).0.memory_limit_bytes, 512 << 20);
    assert_eq!(parse(&mem("2097152")).0.memory_limit_bytes, 2 << 20);
    assert!(error(&mem("512kb"))
        .to_string()
        .ends_with("expected a size of at least 1 mb"));

    let seg = |v: &str| {
        broker(
            "",
            &format!(
                "<persistenceAdapter><kahaDB journalMaxFileLength=\"{v}\"/></persistenceAdapter>"
            ),
        )
    };
    assert_eq!(parse(&seg("128 kb")).0.journal.segment_bytes, 128 << 10);
    assert!(error(&seg("100000"))
        .to_string()
        .contains("multiple of 4 kb"));
    assert!(error(&seg("4 gb")).to_string().contains("multiple of 4 kb"));
}

#[test]
fn tandem_element() {
    let (c, ignored) = parse(&broker(
        "",
        "<tandem shards=\"2\" cores=\"2,3\" ioMemory=\"1mb\" ringDepth=\"256\" replicationCore=\"1\" \
         maxFrameSize=\"8mb\" maxHeaderSize=\"4kb\" maxHeaders=\"64\" maximumRedeliveries=\"-1\" \
         deadLetterQueue=\"DLQ\" statusPort=\"8161\" replicationAck=\"received\" replicationHeartbeat=\"250\" \
         connectAttemptTimeout=\"2500\" maxLoginFrameSize=\"4kb\" statusHost=\"::1\" adminGroup=\"ops\" color=\"blue\"/>",
    ));
    assert_eq!(
        c.shards,
        ShardSettings {
            count: 2,
            pin_cores: true,
            cores: vec![2, 3],
            io_memory_bytes: 1 << 20,
            ring_depth: 256,
            replication_core: Some(1),
        }
    );
    assert_eq!(
        c.limits,
        ProtocolLimits {
            max_frame_bytes: 8 << 20,
            max_header_bytes: 4096,
            max_headers: 64,
            connect_attempt_timeout_ms: 2_500,
            max_login_frame_bytes: 4 << 10,
        }
    );
    assert_eq!(c.transport_connectors[0].max_frame_bytes, 8 << 20);
    assert_eq!(c.redelivery.maximum_redeliveries, None);
    assert_eq!(c.redelivery.dead_letter_queue, "DLQ");
    assert_eq!(c.status_port, Some(8161));
    assert_eq!(c.status_host, "::1".parse::<std::net::IpAddr>().unwrap());
    assert_eq!(c.admin_group, "ops");
    assert_eq!(c.replication.ack, ReplicationAck::Received);
    assert_eq!(c.replication.heartbeat_ms, 250);
    assert_eq!(ignored[0].path, "broker/tandem@color");

    // Fewer shards than CPUs: unpinned by default.
    let (c, _) = parse(&broker("", "<tandem shards=\"2\"/>"));
    assert!(!c.shards.pin_cores);
    assert!(c.shards.cores.is_empty());
    // Pinning asked for explicitly takes the first allowed CPUs.
    let (c, _) = parse(&broker("", "<tandem shards=\"2\" pinCores=\"true\"/>"));
    assert_eq!(c.shards.cores, [0, 1]);
    // Oversubscribing is fine unpinned...
    let (c, _) = parse(&broker("", "<tandem shards=\"8\" pinCores=\"false\"/>"));
    assert_eq!(c.shards.count, 8);
    // ...and an error pinned.
    let e = error(&broker("", "<tandem shards=\"8\" pinCores=\"true\"/>"));
    assert!(
        e.to_string()
            .contains("cannot pin 8 shards to the 4 CPUs available"),
        "{e}"
    );
    // `cores` alone sets the count.
    assert_eq!(
        parse(&broker("", "<tandem cores=\"1-3\"/>")).0.shards.count,
        3
    );

    for (attrs, want) in [
        (
            "cores=\"0,9\"",
            "CPU 9 is not available to this process (allowed: 0,1,2,3)",
        ),
        ("shards=\"3\" cores=\"0,1\"", "lists 2 CPUs for 3 shards"),
        ("cores=\"0,1\" pinCores=\"false\"", "cores is set"),
        ("shards=\"0\"", "expected a shard count between 1 and 1024"),
        (
            "ringDepth=\"100\"",
            "expected a power of two between 8 and 32768",
        ),
        ("ioMemory=\"4kb\"", "expected a size of at least 64 kb"),
        (
            "replicationCore=\"7\"",
            "expected a CPU available to this process",
        ),
        (
            "maximumRedeliveries=\"-2\"",
            "expected a count >= 0, or -1 for no limit",
        ),
        (
            "replicationAck=\"sometimes\"",
            "expected \"fsync\" or \"received\"",
        ),
        ("statusPort=\"99999\"", "expected a port in 0-65535"),
        ("statusHost=\"example.com\"", "expected an IP address"),
        (
            "replicationHeartbeat=\"5\"",
            "expected milliseconds in 10-60000",
        ),
        ("maxHeaders=\"0\"", "expected a whole number >= 1"),
        (
            "connectAttemptTimeout=\"10\"",
            "expected milliseconds in 100-600000",
        ),
        (
            "maxLoginFrameSize=\"1\"",
            "expected a size of at least 1 kb",
        ),
    ] {
        let e = error(&broker("", &format!("<tandem {attrs}/>")));
        assert!(e.to_string().contains(want), "{attrs}: {e}");
        assert_eq!(e.line(), 2, "{attrs}: {e}");
    }
    let e = error(&broker("", "<tandem/>\n<tandem/>"));
    assert_eq!(
        e.to_string(),
        "config/broker.xml:3: <tandem>: appears twice (first at line 2); keep one"
    );
}

#[test]
fn master_slave_settings() {
    let (c, _) = parse(&broker(
        "masterConnectorURI=\"tcp://localhost:61616\" shutdownOnMasterFailure=\"true\" \
         waitForSlave=\"true\" waitForSlaveTimeout=\"5000\" shutdownOnSlaveFailure=\"true\"",
        "",
    ));
    let r = &c.replication;
    let m = r.master.as_ref().unwrap();
    assert_eq!(m.uri.addr, "127.0.0.1:61616".parse().unwrap());
    assert_eq!(m.user_name, None);
    assert!(r.shutdown_on_master_failure && r.wait_for_slave && r.shutdown_on_slave_failure);
    assert_eq!(r.wait_for_slave_timeout_ms, 5000);

    let (c, ignored) = parse(&broker(
        "",
        "<services><masterConnector remoteURI=\"tcp://127.0.0.1:62001\" userName=\"James\" \
         password=\"Cheese\" localURI=\"x\"/></services>",
    ));
    let m = c.replication.master.unwrap();
    assert_eq!(m.uri.addr.port(), 62001);
    assert_eq!(m.user_name.as_deref(), Some("James"));
    assert_eq!(m.password.as_deref(), Some("Cheese"));
    assert_eq!(ignored[0].path, "broker/services/masterConnector@localURI");

    let e = error(&broker(
        "masterConnectorURI=\"tcp://127.0.0.1:1\"",
        "<services><masterConnector remoteURI=\"tcp://127.0.0.1:2\"/></services>",
    ));
    assert!(
        e.to_string()
            .contains("already set by masterConnectorURI on <broker> (line 1)"),
        "{e}"
    );
    let e = error(&broker("masterConnectorURI=\"tcp://0.0.0.0:61616\"", ""));
    assert!(
        e.to_string()
            .ends_with("cannot connect to 0.0.0.0; name the master's address"),
        "{e}"
    );
    let e = error(&broker("masterConnectorURI=\"tcp://127.0.0.1:0\"", ""));
    assert!(
        e.to_string().ends_with("the master's port cannot be 0"),
        "{e}"
    );
    // TLS to the master: accepted with a trust store (see `tls_master_uri`).
    let e = error(&broker("masterConnectorURI=\"ssl://127.0.0.1:1\"", ""));
    assert!(
        e.to_string()
            .ends_with("the slave verifies the master's certificate: configure trustStore (sslContext) or tlsTrustedCa (tandem)"),
        "{e}"
    );
    let e = error(&broker("masterConnectorURI=\"amqp+ssl://127.0.0.1:1\"", ""));
    assert!(e.to_string().contains("another protocol"), "{e}");
}

#[test]
fn authentication() {
    let (c, ignored) = parse(&broker(
        "",
        "<plugins><simpleAuthenticationPlugin anonymousAccessAllowed=\"false\"><users>\n\
         <authenticationUser username=\"admin\" password=\"${ADMIN_PW:-secret}\" groups=\"admins, users\"/>\n\
         <authenticationUser username=\"app\" password=\"\"/>\n\
         </users></simpleAuthenticationPlugin><statisticsBrokerPlugin/></plugins>",
    ));
    assert!(c.auth_enabled);
    assert_eq!(c.users.len(), 2);
    assert_eq!(c.users[0].password, "secret");
    assert_eq!(c.users[0].groups, ["admins", "users"]);
    assert!(c.users[1].groups.is_empty());
    let paths: Vec<&str> = ignored.iter().map(|i| i.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "broker/plugins/simpleAuthenticationPlugin@anonymousAccessAllowed",
            "broker/plugins/statisticsBrokerPlugin"
        ]
    );
    // Passwords never reach a log through Debug.
    let dump = format!("{:?}", c.users[0]);
    assert!(!dump.contains("secret") && dump.contains("admin"), "{dump}");

    let e = error(&broker(
        "",
        "<plugins><simpleAuthenticationPlugin><users>\n\
         <authenticationUser username=\"a\" password=\"1\"/>\n\
         <authenticationUser username=\"a\" password=\"2\"/>\n\
         </users></simpleAuthenticationPlugin></plugins>",
    ));
    assert_eq!(
        e.to_string(),
        "config/broker.xml:4: <authenticationUser username=\"a\">: this username is listed twice"
    );
    let e = error(&broker(
        "",
        "<plugins><simpleAuthenticationPlugin><users><authenticationUser username=\"a\" \
         password=\"hunter2${oops\"/></users></simpleAuthenticationPlugin></plugins>",
    ));
    assert!(!e.to_string().contains("hunter2"), "{e}");
    assert!(e.to_string().contains("password=\"<redacted>\""), "{e}");
    let e = error(&broker(
        "",
        "<plugins><simpleAuthenticationPlugin/></plugins>",
    ));
    assert!(e.to_string().contains("lists no users"), "{e}");
    let e = error(&broker(
        "",
        "<plugins>\n<jaasAuthenticationPlugin configuration=\"activemq\"/></plugins>",
    ));
    assert!(
        e.to_string()
            .starts_with("config/broker.xml:3: <jaasAuthenticationPlugin>: not supported"),
        "{e}"
    );
    let e = error(&broker("", "<plugins><authorizationPlugin/></plugins>"));
    assert!(
        e.to_string()
            .contains("<authorizationPlugin>: not supported"),
        "{e}"
    );
}

#[test]
fn ignored_items_are_reported_once_per_path() {
    let (_, ignored) = parse(&broker(
        "useJmx=\"false\" schedulerDirectory=\"x\"",
        "<networkConnectors/>\n<networkConnectors/>\n\
         <persistenceAdapter><levelDB directory=\"x\"/></persistenceAdapter>",
    ));
    let paths: Vec<&str> = ignored.iter().map(|i| i.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "broker@useJmx",
            "broker@schedulerDirectory",
            "broker/networkConnectors",
            "broker/persistenceAdapter/levelDB"
        ]
    );
    assert_eq!(ignored[2].line, 2);
    assert!(ignored[3]
        .reason
        .contains("persistence adapter not supported"));
    assert_eq!(
        ignored[0].to_string(),
        "line 1: broker@useJmx: ignored (attribute not supported)"
    );
}

#[test]
fn data_dir_override_and_journal_resolution() {
    let kaha = |dir: &str| {
        broker(
            "dataDirectory=\"/var/tandem\"",
            &format!("<persistenceAdapter><kahaDB directory=\"{dir}\"/></persistenceAdapter>"),
        )
    };
    // No kahaDB: <data>/journal, following the override.
    let (mut c, _) = parse(&broker("dataDirectory=\"/var/tandem\"", ""));
    assert_eq!(c.journal.directory, PathBuf::from("/var/tandem/journal"));
    c.override_data_dir(PathBuf::from("/tmp/t1"));
    assert_eq!(c.data_directory, PathBuf::from("/tmp/t1"));
    assert_eq!(c.journal.directory, PathBuf::from("/tmp/t1/journal"));

    // Relative: under the data directory, before and after the override.
    let (mut c, _) = parse(&kaha("kahadb"));
    assert_eq!(c.journal.directory, PathBuf::from("/var/tandem/kahadb"));
    c.override_data_dir(PathBuf::from("d2"));
    assert_eq!(c.journal.directory, PathBuf::from("d2/kahadb"));

    // Spelled under the data directory: recognised, moves with the override.
    let (mut c, _) = parse(&kaha("/var/tandem/store"));
    assert_eq!(c.journal.directory, PathBuf::from("/var/tandem/store"));
    c.override_data_dir(PathBuf::from("/tmp/t3"));
    assert_eq!(c.journal.directory, PathBuf::from("/tmp/t3/store"));

    // Absolute elsewhere: wins, the override does not move it.
    let (mut c, _) = parse(&kaha("/fast-disk/journal"));
    c.override_data_dir(PathBuf::from("/tmp/t4"));
    assert_eq!(c.journal.directory, PathBuf::from("/fast-disk/journal"));
    assert_eq!(c.data_directory, PathBuf::from("/tmp/t4"));
}

#[test]
fn shipped_configs_load() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let load_one = |name: &str| {
        let path = dir.join(name);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (c, ignored) =
            parse_str_with(&text, &path, &env(&[])).unwrap_or_else(|e| panic!("{e}"));
        assert!(ignored.is_empty(), "{name}: {ignored:?}");
        c
    };

    let b = load_one("broker.xml");
    assert_eq!(b.broker_name, "broker");
    assert_eq!(b.data_directory, PathBuf::from("data/broker"));
    assert_eq!(b.journal.directory, PathBuf::from("data/broker/journal"));
    assert_eq!(b.transport_connectors.len(), 2);
    assert_eq!(b.transport_connectors[0].uri.scheme, Scheme::Stomp);
    assert_eq!(
        b.transport_connectors[0].uri.addr,
        "127.0.0.1:61613".parse().unwrap()
    );
    assert_eq!(b.transport_connectors[1].uri.scheme, Scheme::Tcp);
    assert_eq!(
        b.transport_connectors[1].uri.addr,
        "127.0.0.1:61616".parse().unwrap()
    );
    assert_eq!(b.memory_limit_bytes, 64 << 20);
    assert!(!b.auth_enabled);
    assert!(b.replication.master.is_none());

    let m = load_one("master.xml");
    let s = load_one("slave.xml");
    let ports = |c: &BrokerConfig| -> Vec<(Scheme, u16)> {
        c.transport_connectors
            .iter()
            .map(|t| (t.uri.scheme, t.uri.addr.port()))
            .collect()
    };
    assert_eq!(ports(&m), [(Scheme::Stomp, 61613), (Scheme::Tcp, 61616)]);
    assert_eq!(ports(&s), [(Scheme::Stomp, 61623), (Scheme::Tcp, 61626)]);
    assert_eq!(m.data_directory, PathBuf::from("data/master"));
    assert_eq!(s.data_directory, PathBuf::from("data/slave"));
    assert!(m.replication.master.is_none());
    let master_uri = &s
        .replication
        .master
        .as_ref()
        .expect("slave has a master")
        .uri;
    assert_eq!(master_uri.addr, m.transport_connectors[1].uri.addr);
    assert_eq!(m.shards.count, s.shards.count);
}

#[test]
fn load_reads_files_and_reports_missing_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.xml");
    std::fs::write(&path, broker("brokerName=\"from-file\"", "")).unwrap();
    let c = load(&path).unwrap();
    assert_eq!(c.broker_name, "from-file");
    assert_eq!(c.source, path);
    let e = load(&dir.path().join("missing.xml")).unwrap_err();
    assert!(matches!(e, ConfigError::Io { .. }));
    assert!(e.to_string().contains("missing.xml: cannot read:"), "{e}");
}

// ---- TLS (`tls.rs`, TLS options in `connectors.rs`) ------------------------------

/// `<sslContext>` with both PKCS12 stores (relative and `file:` paths).
const STORES: &str = "<sslContext><sslContext keyStore=\"broker.p12\" keyStorePassword=\"kpw\" \
                      trustStore=\"file:trust/ca.p12\" trustStorePassword=\"tpw\"/></sslContext>";

/// A broker with `inner` on line 2 and the connectors (one per line from line 4).
fn tls_broker(inner: &str, connectors: &[(&str, &str)]) -> String {
    let list: Vec<String> = connectors
        .iter()
        .map(|(name, uri)| format!("<transportConnector name=\"{name}\" uri=\"{uri}\"/>"))
        .collect();
    format!(
        "<broker>\n{inner}\n<transportConnectors>\n{}\n</transportConnectors>\n</broker>\n",
        list.join("\n")
    )
}

fn connector<'c>(c: &'c BrokerConfig, name: &str) -> &'c TransportConnector {
    c.transport_connectors
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no connector {name}"))
}

#[test]
fn tls_connectors_and_client_auth() {
    let (c, ignored) = parse(&tls_broker(
        STORES,
        &[
            ("ssl", "ssl://0.0.0.0:61617"),
            ("nio", "nio+ssl://0.0.0.0:61618?needClientAuth=true"),
            ("stomp", "stomp+ssl://0.0.0.0:61612?wantClientAuth=true"),
            (
                "both",
                "auto+ssl://0.0.0.0:5671?transport.wantClientAuth=true&amp;transport.needClientAuth=true",
            ),
            (
                "want",
                "stomp+nio+ssl://0.0.0.0:61619?needClientAuth=false&amp;wantClientAuth=yes",
            ),
            (
                "off",
                "auto+nio+ssl://0.0.0.0:5672?needClientAuth=false&amp;transport.enabledCipherSuites=X&amp;transport.verifyHostName=false",
            ),
            ("plain", "tcp://0.0.0.0:61616?needClientAuth=true&amp;transport.wantClientAuth=true"),
        ],
    ));
    assert_eq!(connector(&c, "ssl").tls, Some(ClientAuth::None));
    assert_eq!(connector(&c, "ssl").uri.scheme, Scheme::Ssl);
    assert_eq!(connector(&c, "nio").tls, Some(ClientAuth::Need));
    assert_eq!(connector(&c, "stomp").tls, Some(ClientAuth::Want));
    // Need wins over want, whatever the order and spelling.
    assert_eq!(connector(&c, "both").tls, Some(ClientAuth::Need));
    assert_eq!(connector(&c, "want").tls, Some(ClientAuth::Want));
    assert_eq!(connector(&c, "off").tls, Some(ClientAuth::None));
    assert_eq!(connector(&c, "plain").tls, None);

    let reasons: Vec<(&str, &str)> = ignored
        .iter()
        .map(|i| (i.path.as_str(), i.reason.as_str()))
        .collect();
    let base = "broker/transportConnectors/transportConnector";
    assert_eq!(reasons.len(), 4, "{reasons:?}");
    assert_eq!(
        reasons[0].0,
        format!("{base}[off]?transport.enabledCipherSuites")
    );
    assert!(reasons[0].1.contains("rustls"), "{reasons:?}");
    assert_eq!(
        reasons[1].0,
        format!("{base}[off]?transport.verifyHostName")
    );
    assert_eq!(reasons[1].1, "URI option not supported");
    // Client auth on a plain connector means nothing: reported, not applied.
    assert_eq!(reasons[2].0, format!("{base}[plain]?needClientAuth"));
    assert!(
        reasons[2].1.contains("only meaningful on a TLS scheme"),
        "{reasons:?}"
    );
    assert_eq!(
        reasons[3].0,
        format!("{base}[plain]?transport.wantClientAuth")
    );
    assert_eq!(ignored[2].line, 10);

    let e = error(&tls_broker(
        STORES,
        &[("x", "ssl://0.0.0.0:1?needClientAuth=maybe")],
    ));
    assert_eq!(
        e.to_string(),
        "config/broker.xml:4: <transportConnector uri=\"ssl://0.0.0.0:1?needClientAuth=maybe\">: \
         option needClientAuth=\"maybe\": expected true or false"
    );
    // A bad value on a plain connector is not even looked at.
    let (c, _) = parse(&tls_broker(
        "",
        &[("x", "tcp://0.0.0.0:1?needClientAuth=maybe")],
    ));
    assert_eq!(c.tls, None);
}

#[test]
fn ssl_context_stores() {
    let (c, ignored) = parse(&tls_broker(STORES, &[("ssl", "ssl://0.0.0.0:61617")]));
    assert!(ignored.is_empty(), "{ignored:?}");
    let tls = c.tls.expect("TLS settings");
    // Relative paths (file: or not) are relative to the configuration file's directory.
    assert_eq!(
        tls.identity,
        Some(TlsIdentity::Pkcs12 {
            path: PathBuf::from("config/broker.p12"),
            password: Secret("kpw".into()),
            key_password: None,
        })
    );
    assert_eq!(
        tls.trust,
        Some(TlsTrust::Pkcs12 {
            path: PathBuf::from("config/trust/ca.p12"),
            password: Secret("tpw".into()),
        })
    );

    // file:// URLs and absolute paths; placeholders; the key's own password; the
    // JSSE attributes rustls has no use for, reported.
    let text = tls_broker(
        "<sslContext>\n<sslContext keyStore=\"file://${activemq.conf}/b.p12\" \
         keyStorePassword=\"${KS_PW}\" keyStoreKeyPassword=\"kk\" keyStoreType=\"PKCS12\" \
         trustStore=\"/etc/tandem/ca.p12\" trustStorePassword=\"\" trustStoreType=\"pkcs12\"\n \
         protocol=\"TLS\" keyStoreAlgorithm=\"SunX509\" trustStoreAlgorithm=\"PKIX\" \
         secureRandomAlgorithm=\"SHA1PRNG\" provider=\"SUN\"/>\n</sslContext>",
        &[("ssl", "ssl://0.0.0.0:61617")],
    );
    let (c, ignored) = parse_str_with(
        &text,
        Path::new("/opt/tandem/conf/activemq.xml"),
        &env(&[("activemq.conf", "/opt/tandem/conf"), ("KS_PW", "from-env")]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let tls = c.tls.unwrap();
    assert_eq!(
        tls.identity,
        Some(TlsIdentity::Pkcs12 {
            path: PathBuf::from("/opt/tandem/conf/b.p12"),
            password: Secret("from-env".into()),
            key_password: Some(Secret("kk".into())),
        })
    );
    assert_eq!(
        tls.trust,
        Some(TlsTrust::Pkcs12 {
            path: PathBuf::from("/etc/tandem/ca.p12"),
            password: Secret(String::new()),
        })
    );
    let paths: Vec<&str> = ignored.iter().map(|i| i.path.as_str()).collect();
    let base = "broker/sslContext/sslContext";
    assert_eq!(
        paths,
        [
            format!("{base}@protocol"),
            format!("{base}@keyStoreAlgorithm"),
            format!("{base}@trustStoreAlgorithm"),
            format!("{base}@secureRandomAlgorithm"),
            format!("{base}@provider"),
        ]
    );
    assert!(ignored[0].reason.contains("TLS 1.2 and 1.3"), "{ignored:?}");
    assert_eq!(ignored[0].line, 4);
    // Passwords never reach a log through Debug.
    let dump = format!("{:?}", tls.identity);
    assert!(
        !dump.contains("from-env") && !dump.contains("kk\""),
        "{dump}"
    );

    // Only a trust store (a slave, say): identity None. Passwords without their store,
    // and an empty outer element, are reported.
    let (c, ignored) = parse(&tls_broker(
        "<sslContext><sslContext trustStore=\"ca.p12\" trustStorePassword=\"t\" \
         keyStorePassword=\"k\"/></sslContext>",
        &[("s", "stomp://0.0.0.0:61613")],
    ));
    let tls = c.tls.unwrap();
    assert_eq!(tls.identity, None);
    assert!(matches!(tls.trust, Some(TlsTrust::Pkcs12 { .. })));
    assert_eq!(
        ignored[0].path,
        "broker/sslContext/sslContext@keyStorePassword"
    );
    let (c, ignored) = parse(&tls_broker(
        "<sslContext/>",
        &[("s", "stomp://0.0.0.0:61613")],
    ));
    assert_eq!(c.tls, None);
    assert_eq!(ignored[0].path, "broker/sslContext");
    // Nothing configured: no settings.
    assert_eq!(parse(&broker("", "")).0.tls, None);
}

#[test]
fn ssl_context_errors() {
    let ctx = |attrs: &str| {
        tls_broker(
            &format!("<sslContext><sslContext {attrs}/></sslContext>"),
            &[("ssl", "ssl://0.0.0.0:61617")],
        )
    };
    let keytool = "keytool -importkeystore -srckeystore config/broker.ks -srcstoretype JKS \
                   -destkeystore config/broker.p12 -deststoretype PKCS12";
    for (attrs, want) in [
        (
            "keyStore=\"broker.ks\" keyStorePassword=\"p\" keyStoreType=\"jks\"",
            format!(
                "config/broker.xml:2: <sslContext keyStoreType=\"jks\">: JKS stores are not \
                 supported; convert it to PKCS12: {keytool}, then point keyStore at the .p12 \
                 file and drop keyStoreType"
            ),
        ),
        (
            "keyStore=\"p.p12\" keyStorePassword=\"p\" trustStore=\"file:ca.ts\" \
             trustStorePassword=\"p\" trustStoreType=\"JCEKS\"",
            "-srckeystore config/ca.ts -srcstoretype JCEKS -destkeystore config/ca.p12".into(),
        ),
        (
            "keyStore=\"p.p12\" keyStorePassword=\"p\" keyStoreType=\"BKS\"",
            "<sslContext keyStoreType=\"BKS\">: expected PKCS12".into(),
        ),
        (
            "keyStore=\"broker.p12\"",
            "config/broker.xml:2: <sslContext keyStore=\"broker.p12\">: keyStorePassword is \
             missing (a PKCS12 store is opened with its password)"
                .into(),
        ),
        (
            "keyStore=\"p.p12\" keyStorePassword=\"p\" trustStore=\"ca.p12\"",
            "<sslContext trustStore=\"ca.p12\">: trustStorePassword is missing".into(),
        ),
        (
            "keyStore=\"classpath:broker.p12\" keyStorePassword=\"p\"",
            "classpath: resources are Java's; give a file path or a file: URL".into(),
        ),
        (
            "keyStore=\"file:\" keyStorePassword=\"p\"",
            "expected a file path".into(),
        ),
        (
            "keyStore=\"http://example.com/b.p12\" keyStorePassword=\"p\"",
            "expected a file path or a file: URL".into(),
        ),
    ] {
        let e = error(&ctx(attrs));
        assert!(e.to_string().contains(&want), "{attrs}:\n{e}\nwant: {want}");
    }
    // Any case of jks.
    let e = error(&ctx(
        "keyStore=\"broker.ks\" keyStorePassword=\"p\" keyStoreType=\"Jks\"",
    ));
    assert!(e.to_string().contains(keytool), "{e}");
    let e = error(&tls_broker(
        "<sslContext><sslContext/></sslContext>\n<sslContext/>",
        &[("s", "stomp://0.0.0.0:61613")],
    ));
    assert!(e.to_string().contains("<sslContext>: appears twice"), "{e}");

    // A password never reaches the message, even with a broken placeholder.
    let e = error(&ctx(
        "keyStore=\"b.p12\" keyStorePassword=\"hunter2${oops\"",
    ));
    assert!(!e.to_string().contains("hunter2"), "{e}");
    assert!(
        e.to_string().contains("keyStorePassword=\"<redacted>\""),
        "{e}"
    );
}

#[test]
fn java_stores_are_recognised_by_content() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("activemq.xml");
    std::fs::write(
        dir.path().join("broker.ks"),
        [0xFE, 0xED, 0xFE, 0xED, 0, 0, 0, 2],
    )
    .unwrap();
    std::fs::write(dir.path().join("broker.jceks"), [0xCE, 0xCE, 0xCE, 0xCE, 0]).unwrap();
    // PKCS12 is DER: it starts with a SEQUENCE tag.
    std::fs::write(dir.path().join("broker.p12"), [0x30, 0x82, 0x0A, 0x00]).unwrap();
    std::fs::write(dir.path().join("short"), [0xFE, 0xED]).unwrap();
    let load = |store: &str| {
        let text = tls_broker(
            &format!(
                "<sslContext><sslContext keyStore=\"{store}\" keyStorePassword=\"p\"/></sslContext>"
            ),
            &[("ssl", "ssl://0.0.0.0:61617")],
        );
        parse_str_with(&text, &source, &env(&[]))
    };
    let ks = dir.path().join("broker.ks");
    let e = load("broker.ks").unwrap_err().to_string();
    assert!(
        e.contains(&format!(
            "<sslContext keyStore=\"broker.ks\">: {} is a JKS store, which Tandem does not read; \
             convert it to PKCS12: keytool -importkeystore -srckeystore {} -srcstoretype JKS \
             -destkeystore {} -deststoretype PKCS12, then point keyStore at the .p12 file",
            ks.display(),
            ks.display(),
            dir.path().join("broker.p12").display()
        )),
        "{e}"
    );
    // The same file named by a file: URL, and declared PKCS12: the content decides.
    let url = format!("file://{}", ks.display());
    let text = tls_broker(
        &format!(
            "<sslContext><sslContext keyStore=\"{url}\" keyStorePassword=\"p\" \
             keyStoreType=\"PKCS12\"/></sslContext>"
        ),
        &[("ssl", "ssl://0.0.0.0:61617")],
    );
    let e = parse_str_with(&text, Path::new("elsewhere/b.xml"), &env(&[])).unwrap_err();
    assert!(e.to_string().contains("is a JKS store"), "{e}");
    let e = load("broker.jceks").unwrap_err().to_string();
    assert!(
        e.contains("is a JCEKS store") && e.contains("-srcstoretype JCEKS"),
        "{e}"
    );
    // A PKCS12 file, a file too short to tell, a missing file and a directory pass:
    // the TLS module reads and judges them at startup.
    for ok in ["broker.p12", "short", "missing.p12", "."] {
        let (c, _) = load(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        assert!(c.tls.unwrap().identity.is_some());
    }
}

#[test]
fn pem_files_on_tandem() {
    let (c, ignored) = parse(&tls_broker(
        "<tandem tlsCertificate=\"tls/chain.pem\" tlsPrivateKey=\"file:tls/key.pem\" \
         tlsTrustedCa=\"file:///etc/ssl/ca.pem\"/>",
        &[("stomp", "stomp+ssl://0.0.0.0:61612?needClientAuth=true")],
    ));
    assert!(ignored.is_empty(), "{ignored:?}");
    assert_eq!(
        c.tls,
        Some(TlsSettings {
            identity: Some(TlsIdentity::Pem {
                certificate: PathBuf::from("config/tls/chain.pem"),
                private_key: PathBuf::from("config/tls/key.pem"),
            }),
            trust: Some(TlsTrust::Pem {
                ca: PathBuf::from("/etc/ssl/ca.pem")
            }),
        })
    );
    assert_eq!(connector(&c, "stomp").tls, Some(ClientAuth::Need));

    // Trust only.
    let (c, _) = parse(&broker("", "<tandem tlsTrustedCa=\"ca.pem\"/>"));
    let tls = c.tls.unwrap();
    assert_eq!(tls.identity, None);
    assert_eq!(
        tls.trust,
        Some(TlsTrust::Pem {
            ca: PathBuf::from("config/ca.pem")
        })
    );

    let plain = [("s", "stomp://0.0.0.0:61613")];
    for (inner, want) in [
        (
            "<tandem tlsCertificate=\"c.pem\"/>".to_string(),
            "config/broker.xml:2: <tandem tlsCertificate=\"c.pem\">: tlsPrivateKey is missing; \
             give both tlsCertificate and tlsPrivateKey, or neither",
        ),
        (
            "<tandem tlsPrivateKey=\"k.pem\"/>".to_string(),
            "config/broker.xml:2: <tandem tlsPrivateKey=\"k.pem\">: tlsCertificate is missing; \
             give both tlsCertificate and tlsPrivateKey, or neither",
        ),
        (
            format!("{STORES}\n<tandem tlsCertificate=\"c.pem\" tlsPrivateKey=\"k.pem\"/>"),
            "config/broker.xml:3: <tandem tlsCertificate=\"c.pem\">: give either keyStore on \
             <sslContext> (line 2) or tlsCertificate/tlsPrivateKey on <tandem>, not both",
        ),
        (
            format!("{STORES}\n<tandem tlsTrustedCa=\"ca.pem\"/>"),
            "config/broker.xml:3: <tandem tlsTrustedCa=\"ca.pem\">: give either trustStore on \
             <sslContext> (line 2) or tlsTrustedCa on <tandem>, not both",
        ),
        (
            "<tandem tlsTrustedCa=\"classpath:ca.pem\"/>".to_string(),
            "config/broker.xml:2: <tandem tlsTrustedCa=\"classpath:ca.pem\">: classpath: \
             resources are Java's; give a file path or a file: URL",
        ),
    ] {
        assert_eq!(
            error(&tls_broker(&inner, &plain)).to_string(),
            want,
            "{inner}"
        );
    }
    // A PKCS12 identity with PEM trust (and the reverse) is fine.
    let (c, _) = parse(&tls_broker(
        "<sslContext><sslContext keyStore=\"b.p12\" keyStorePassword=\"p\"/></sslContext>\n\
         <tandem tlsTrustedCa=\"ca.pem\"/>",
        &plain,
    ));
    let tls = c.tls.unwrap();
    assert!(matches!(tls.identity, Some(TlsIdentity::Pkcs12 { .. })));
    assert!(matches!(tls.trust, Some(TlsTrust::Pem { .. })));
}

#[test]
fn tls_users_need_material() {
    let identity_only =
        "<sslContext><sslContext keyStore=\"b.p12\" keyStorePassword=\"p\"/></sslContext>";
    let e = error(&tls_broker("", &[("ssl", "ssl://0.0.0.0:61617")]));
    assert_eq!(
        e.to_string(),
        "config/broker.xml:4: <transportConnector uri=\"ssl://0.0.0.0:61617\">: connector \
         \"ssl\" uses TLS but no keyStore (sslContext) or tlsCertificate is configured"
    );
    // Trust alone is no identity.
    let e = error(&tls_broker(
        "<tandem tlsTrustedCa=\"ca.pem\"/>",
        &[
            ("s", "stomp://0.0.0.0:61613"),
            ("tls", "stomp+ssl://0.0.0.0:61612"),
        ],
    ));
    assert!(
        e.to_string()
            .contains("connector \"tls\" uses TLS but no keyStore"),
        "{e}"
    );
    assert_eq!(e.line(), 5);
    for (option, uri) in [
        ("needClientAuth", "ssl://0.0.0.0:61617?needClientAuth=true"),
        (
            "wantClientAuth",
            "ssl://0.0.0.0:61617?transport.wantClientAuth=true",
        ),
    ] {
        let e = error(&tls_broker(identity_only, &[("ssl", uri)]));
        assert!(
            e.to_string().ends_with(&format!(
                "connector \"ssl\" asks for client certificates ({option}) but no trustStore \
                 (sslContext) or tlsTrustedCa is configured to verify them"
            )),
            "{e}"
        );
    }
    // Without client auth an identity is enough.
    let (c, _) = parse(&tls_broker(
        identity_only,
        &[("ssl", "ssl://0.0.0.0:61617?needClientAuth=false")],
    ));
    assert_eq!(connector(&c, "ssl").tls, Some(ClientAuth::None));
}

#[test]
fn tls_master_uri() {
    let trust = "<tandem tlsTrustedCa=\"ca.pem\"/>";
    let (c, _) = parse(&broker(
        "masterConnectorURI=\"ssl://127.0.0.1:61617\"",
        trust,
    ));
    let m = c.replication.master.unwrap();
    assert_eq!(m.uri.scheme, Scheme::Ssl);
    assert!(c.tls.unwrap().trust.is_some());
    let (c, _) = parse(&broker(
        "",
        &format!(
            "{trust}<services><masterConnector remoteURI=\"nio+ssl://127.0.0.1:61617\" \
             userName=\"u\" password=\"p\"/></services>"
        ),
    ));
    assert_eq!(c.replication.master.unwrap().uri.scheme, Scheme::NioSsl);

    let e = error(&broker("masterConnectorURI=\"ssl://127.0.0.1:61617\"", ""));
    assert_eq!(
        e.to_string(),
        "config/broker.xml:1: <broker masterConnectorURI=\"ssl://127.0.0.1:61617\">: the slave \
         verifies the master's certificate: configure trustStore (sslContext) or tlsTrustedCa \
         (tandem)"
    );
    // An identity alone does not verify the master.
    let e = error(&broker(
        "",
        "<sslContext><sslContext keyStore=\"b.p12\" keyStorePassword=\"p\"/></sslContext>\n\
         <services><masterConnector remoteURI=\"ssl://127.0.0.1:61617\"/></services>",
    ));
    assert!(
        e.to_string().starts_with(
            "config/broker.xml:3: <masterConnector remoteURI=\"ssl://127.0.0.1:61617\">: \
             the slave verifies the master's certificate"
        ),
        "{e}"
    );
    // A plain master needs nothing.
    let (c, _) = parse(&broker("masterConnectorURI=\"tcp://127.0.0.1:61616\"", ""));
    assert_eq!(c.tls, None);
}

#[test]
fn activemq_conf_is_the_configuration_files_directory() {
    // The stock `file:${activemq.conf}/broker.ks` spelling, with the store beside the
    // file (as in ActiveMQ's conf/ directory); the environment can still override it.
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("conf");
    std::fs::create_dir_all(&conf).expect("mkdir");
    let source = conf.join("activemq.xml");
    let text = r#"<broker xmlns="http://activemq.apache.org/schema/core">
        <sslContext><sslContext keyStore="file:${activemq.conf}/broker.p12" keyStorePassword="pw"/></sslContext>
        <transportConnectors><transportConnector name="ssl" uri="ssl://127.0.0.1:0"/></transportConnectors>
      </broker>"#;
    let env = LoadEnv {
        vars: Box::new(|_| None),
        allowed_cpus: vec![0, 1],
    };
    let (c, _) = parse_str_with(text, &source, &env).expect("config");
    match c.tls.and_then(|t| t.identity) {
        Some(TlsIdentity::Pkcs12 { path, .. }) => assert_eq!(path, conf.join("broker.p12")),
        other => panic!("expected a PKCS12 identity, got {other:?}"),
    }
    let env = LoadEnv {
        vars: Box::new(|n| (n == "ACTIVEMQ_CONF").then(|| "/etc/amq".to_string())),
        allowed_cpus: vec![0, 1],
    };
    let (c, _) = parse_str_with(text, &source, &env).expect("config");
    match c.tls.and_then(|t| t.identity) {
        Some(TlsIdentity::Pkcs12 { path, .. }) => {
            assert_eq!(path, std::path::PathBuf::from("/etc/amq/broker.p12"))
        }
        other => panic!("expected a PKCS12 identity, got {other:?}"),
    }
}

#[test]
fn a_refused_replication_secret_is_not_echoed() {
    // An unterminated placeholder in the secret: refused, without the value in the text.
    let e = error(&broker(
        "",
        r#"<tandem replicationSecret="hunter2-${oops"/>"#,
    ));
    let text = e.to_string();
    assert!(text.contains("replicationSecret=\"<redacted>\""), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}

fn vt(name: &str, prefix: &str, postfix: &str) -> VirtualTopicSettings {
    VirtualTopicSettings {
        name: name.into(),
        prefix: prefix.into(),
        postfix: postfix.into(),
    }
}

#[test]
fn virtual_topics_default_to_activemq_naming() {
    let (c, _) = parse(&broker("", ""));
    assert_eq!(
        c.virtual_topics,
        vec![vt("VirtualTopic.>", "Consumer.*.", "")]
    );
    let (c, ignored) = parse(&broker("useVirtualTopics=\"false\"", ""));
    assert!(ignored.is_empty(), "{ignored:?}");
    assert!(c.virtual_topics.is_empty());
}

#[test]
fn virtual_destination_interceptor_lists_the_virtual_topics() {
    let (c, ignored) = parse(&broker(
        "",
        r#"<destinationInterceptors>
  <virtualDestinationInterceptor>
    <virtualDestinations>
      <virtualTopic name="VirtualTopic.>" prefix="Consumer.*." selectorAware="false"/>
      <virtualTopic name="Events.*" prefix="VTC.*." postfix=".in" local="true"/>
      <virtualTopic/>
      <compositeQueue name="fan"><forwardTo><queue physicalName="a"/></forwardTo></compositeQueue>
    </virtualDestinations>
  </virtualDestinationInterceptor>
  <mirroredQueue copyMessage="true"/>
</destinationInterceptors>"#,
    ));
    assert_eq!(
        c.virtual_topics,
        vec![
            vt("VirtualTopic.>", "Consumer.*.", ""),
            vt("Events.*", "VTC.*.", ".in"),
            // ActiveMQ's `<virtualTopic>` defaults: every topic.
            vt(">", "Consumer.*.", ""),
        ]
    );
    let reported: Vec<(u32, &str)> = ignored.iter().map(|i| (i.line, i.path.as_str())).collect();
    let p = "broker/destinationInterceptors";
    assert_eq!(
        reported,
        vec![
            (
                6,
                format!("{p}/virtualDestinationInterceptor/virtualDestinations/virtualTopic@local")
                    .as_str()
            ),
            (
                8,
                format!("{p}/virtualDestinationInterceptor/virtualDestinations/compositeQueue")
                    .as_str()
            ),
            (11, format!("{p}/mirroredQueue").as_str()),
        ]
    );
}

#[test]
fn destination_interceptors_without_virtual_topics_turn_the_default_off() {
    let (c, _) = parse(&broker(
        "",
        "<destinationInterceptors><mirroredQueue/></destinationInterceptors>",
    ));
    assert!(c.virtual_topics.is_empty());
}

#[test]
fn selector_aware_virtual_topics_are_reported_as_ignored() {
    let (c, ignored) = parse(&broker(
        "",
        "<destinationInterceptors><virtualDestinationInterceptor><virtualDestinations>\n\
         <virtualTopic name=\"VirtualTopic.>\" selectorAware=\"true\"/>\n\
         </virtualDestinations></virtualDestinationInterceptor></destinationInterceptors>",
    ));
    assert_eq!(
        c.virtual_topics,
        vec![vt("VirtualTopic.>", "Consumer.*.", "")]
    );
    assert_eq!(ignored.len(), 1, "{ignored:?}");
    assert_eq!(ignored[0].line, 3);
    assert!(
        ignored[0].path.ends_with("virtualTopic@selectorAware"),
        "{ignored:?}"
    );
    assert!(ignored[0].reason.contains("not supported"), "{ignored:?}");
}

#[test]
fn bad_virtual_topic_patterns_name_the_attribute() {
    let wrap = |vt: &str| {
        broker(
            "",
            &format!(
                "<destinationInterceptors><virtualDestinationInterceptor><virtualDestinations>\n\
                 {vt}\n</virtualDestinations></virtualDestinationInterceptor></destinationInterceptors>"
            ),
        )
    };
    let e = error(&wrap(r#"<virtualTopic name="a.>.b"/>"#));
    assert_eq!(
        e.to_string(),
        "config/broker.xml:3: <virtualTopic name=\"a.>.b\">: `>` may only be the last segment of a pattern"
    );
    let e = error(&wrap(r#"<virtualTopic prefix="Consumer.x*."/>"#));
    assert!(e.to_string().contains("prefix=\"Consumer.x*.\""), "{e}");
    let e = error(&wrap(r#"<virtualTopic postfix=".>"/>"#));
    assert!(
        e.to_string()
            .contains("wildcards are not allowed in a postfix"),
        "{e}"
    );
    let e = error(&wrap(r#"<virtualTopic selectorAware="maybe"/>"#));
    assert!(e.to_string().contains("expected true or false"), "{e}");
    let e = error(&broker(
        "",
        "<destinationInterceptors/>\n<destinationInterceptors/>",
    ));
    assert!(e.to_string().contains("appears twice"), "{e}");
}

#[test]
fn scheduler_support_and_the_redelivery_plugin() {
    let (c, _) = parse(&broker("", ""));
    assert!(!c.scheduler_support, "off by default, as in ActiveMQ");
    assert_eq!(c.redelivery_plugin, None);
    let plugin = "<plugins><redeliveryPlugin sendToDlqIfMaxRetriesExceeded=\"false\">\
        <redeliveryPolicyMap><redeliveryPolicyMap>\
        <defaultEntry><redeliveryPolicy maximumRedeliveries=\"3\" redeliveryDelay=\"2000\"/></defaultEntry>\
        <redeliveryPolicyEntries><redeliveryPolicy queue=\"orders.>\" maximumRedeliveries=\"-1\" \
        useExponentialBackOff=\"true\" backOffMultiplier=\"2\" maximumRedeliveryDelay=\"60000\"/>\
        </redeliveryPolicyEntries></redeliveryPolicyMap></redeliveryPolicyMap>\
        </redeliveryPlugin></plugins>";
    let (c, _) = parse(&broker("schedulerSupport=\"true\"", plugin));
    assert!(c.scheduler_support);
    let r = c.redelivery_plugin.expect("the plugin");
    assert!(r.fallback_to_dead_letter && !r.send_to_dlq_if_max_retries_exceeded);
    let d = r.default_entry.expect("a default entry");
    assert_eq!(
        (
            d.maximum_redeliveries,
            d.initial_redelivery_delay_ms,
            d.redelivery_delay_ms
        ),
        (3, 1000, 2000)
    );
    assert_eq!(r.entries.len(), 1);
    let e = &r.entries[0];
    assert_eq!(e.destination, Some((true, "orders.>".to_string())));
    assert_eq!(
        (
            e.maximum_redeliveries,
            e.use_exponential_back_off,
            e.back_off_multiplier
        ),
        (-1, true, 2.0)
    );

    // ActiveMQ refuses to start the plugin without the scheduler, or with short delays.
    let e = error(&broker("", plugin));
    assert!(
        e.to_string()
            .contains("<redeliveryPlugin>: requires schedulerSupport=\"true\""),
        "{e}"
    );
    let short = plugin.replace("redeliveryDelay=\"2000\"", "redeliveryDelay=\"500\"");
    let e = error(&broker("schedulerSupport=\"true\"", &short));
    assert!(e.to_string().contains("redeliveryDelay=\"500\""), "{e}");
    assert!(e.to_string().contains("at least 1000 ms"), "{e}");
    let nameless = plugin.replace("queue=\"orders.>\" ", "");
    let e = error(&broker("schedulerSupport=\"true\"", &nameless));
    assert!(e.to_string().contains("names no destination"), "{e}");
    let e = error(&broker("schedulerSupport=\"maybe\"", ""));
    assert!(e.to_string().contains("schedulerSupport"), "{e}");
}
