//! `<destinationPolicy>` loader tests: what is read, what is reported ignored (once,
//! with its line), and the errors for bad values.

use std::collections::HashMap;
use std::path::Path;

use super::*;
use crate::broker::destination::{DestKind, Destination};
use crate::broker::policy::{
    ConsumerKind, DeadLetterStrategy, DeadLetterTarget, Individual, PolicyMap,
};

fn env() -> LoadEnv {
    let map: HashMap<String, String> = HashMap::new();
    LoadEnv {
        vars: Box::new(move |k| map.get(k).cloned()),
        allowed_cpus: vec![0, 1],
    }
}

/// A broker whose `<destinationPolicy>` is `policy`; the policy starts on line 2.
fn doc(policy: &str) -> String {
    format!(
        "<broker>\n{policy}\n<transportConnectors><transportConnector name=\"s\" \
         uri=\"stomp://127.0.0.1:61613\"/></transportConnectors>\n</broker>\n"
    )
}

fn parse(policy: &str) -> (BrokerConfig, Vec<Ignored>) {
    parse_str_with(&doc(policy), Path::new("conf/activemq.xml"), &env())
        .unwrap_or_else(|e| panic!("{e}"))
}

fn error(policy: &str) -> String {
    match parse_str_with(&doc(policy), Path::new("conf/activemq.xml"), &env()) {
        Ok(_) => panic!("expected an error for:\n{policy}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn entries_strategies_prefetches_and_the_default_entry_are_read() {
    let (c, ignored) = parse(
        r#"<destinationPolicy><policyMap><policyMap>
  <policyEntries>
    <policyEntry queue="ORDERS.>" queuePrefetch="5" memoryLimit="1mb">
      <deadLetterStrategy>
        <individualDeadLetterStrategy queuePrefix="DLQ." useQueueForQueueMessages="true"
            processNonPersistent="true" enableAudit="false"/>
      </deadLetterStrategy>
    </policyEntry>
    <policyEntry topic="PRICES.*" topicPrefetch="7" durableTopicPrefetch="8" memoryLimit="2mb">
      <deadLetterStrategy>
        <sharedDeadLetterStrategy processExpired="false">
          <deadLetterQueue><queue physicalName="PRICES.DLQ"/></deadLetterQueue>
        </sharedDeadLetterStrategy>
      </deadLetterStrategy>
      <pendingMessageLimitStrategy><constantPendingMessageLimitStrategy limit="10"/></pendingMessageLimitStrategy>
    </policyEntry>
    <policyEntry queue="ORDERS.>" queuePrefetch="99"/>
    <policyEntry tempQueue="true" queueBrowserPrefetch="3"/>
  </policyEntries>
  <defaultEntry><policyEntry queuePrefetch="2"/></defaultEntry>
</policyMap></policyMap></destinationPolicy>"#,
    );
    let p = &c.destination_policy;
    let kinds: Vec<(DestKind, &str)> = p
        .entries
        .iter()
        .map(|(d, _)| (d.kind, d.pattern.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            (DestKind::Queue, "ORDERS.>"),
            (DestKind::Topic, "PRICES.*"),
            (DestKind::TempQueue, ">"),
        ]
    );
    let orders = &p.entries[0].1;
    assert_eq!(orders.queue_prefetch, 5);
    assert_eq!(orders.memory_limit, Some(1 << 20));
    assert_eq!(p.entries[1].1.memory_limit, Some(2 << 20));
    assert_eq!(
        p.entries[2].1.memory_limit, None,
        "unset: only the shard's limit"
    );
    assert_eq!(
        orders.dead_letter,
        Some(DeadLetterStrategy {
            target: DeadLetterTarget::Individual(Individual {
                queue_prefix: "DLQ.".into(),
                ..Individual::default()
            }),
            process_expired: true,
            process_non_persistent: true,
        })
    );
    let prices = &p.entries[1].1;
    assert_eq!(
        (prices.topic_prefetch, prices.durable_topic_prefetch),
        (7, 8)
    );
    assert_eq!(prices.queue_prefetch, 1000, "unset: ActiveMQ's default");
    assert_eq!(
        prices.dead_letter,
        Some(DeadLetterStrategy {
            target: DeadLetterTarget::Shared(Destination::queue("PRICES.DLQ")),
            process_expired: false,
            process_non_persistent: false,
        })
    );
    assert_eq!(p.entries[2].1.queue_browser_prefetch, 3);
    assert_eq!(p.default_entry.as_ref().map(|e| e.queue_prefetch), Some(2));

    // Each ignored attribute or element once, at its first line, with a reason.
    let base = "broker/destinationPolicy/policyMap/policyMap/policyEntries/policyEntry";
    let found: Vec<(String, u32)> = ignored.iter().map(|i| (i.path.clone(), i.line)).collect();
    assert_eq!(
        found,
        [
            (
                format!("{base}/deadLetterStrategy/individualDeadLetterStrategy@enableAudit"),
                7
            ),
            (format!("{base}/pendingMessageLimitStrategy"), 16),
            (format!("{base}[ORDERS.>]"), 18),
        ]
    );
    assert!(ignored[2].reason.contains("line 4"), "{}", ignored[2]);

    // What the broker makes of it.
    let map = PolicyMap::new(
        p.entries.clone(),
        p.default_entry.clone(),
        Destination::dead_letter_queue(),
    );
    let q = Destination::queue("ORDERS.EU");
    assert_eq!(
        map.dead_letter_for(&q).destination_for(&q, None),
        Destination::queue("DLQ.ORDERS.EU")
    );
    assert_eq!(map.prefetch(&q, ConsumerKind::Queue, 1000), 5);
    assert_eq!(
        map.prefetch(&Destination::queue("X"), ConsumerKind::Queue, 1000),
        2
    );
}

#[test]
fn the_stock_form_without_the_inner_policy_map_is_read_too() {
    let (c, ignored) = parse(
        r#"<destinationPolicy><policyMap><policyEntries>
<policyEntry queue=">" producerFlowControl="false">
<deadLetterStrategy><individualDeadLetterStrategy/></deadLetterStrategy>
</policyEntry>
</policyEntries></policyMap></destinationPolicy>"#,
    );
    assert_eq!(c.destination_policy.entries.len(), 1);
    assert_eq!(ignored.len(), 1, "{ignored:?}");
    assert_eq!(
        ignored[0].path,
        "broker/destinationPolicy/policyMap/policyEntries/policyEntry@producerFlowControl"
    );
    assert_eq!(ignored[0].line, 3);
    // No policy at all: nothing, and no warning.
    let (c, ignored) = parse("");
    assert_eq!(c.destination_policy, DestinationPolicySettings::default());
    assert!(ignored.is_empty());
}

#[test]
fn bad_values_name_file_line_element_and_attribute() {
    let wrap = |entry: &str| {
        format!(
            "<destinationPolicy><policyMap><policyEntries>\n{entry}\n\
             </policyEntries></policyMap></destinationPolicy>"
        )
    };
    let e = error(&wrap(r#"<policyEntry queue=">" queuePrefetch="lots"/>"#));
    assert_eq!(
        e,
        "conf/activemq.xml:3: <policyEntry queuePrefetch=\"lots\">: expected a whole number >= 0"
    );
    let e = error(&wrap(
        r#"<policyEntry queue=">" topicPrefetch="3000000000"/>"#,
    ));
    assert!(
        e.contains("topicPrefetch") && e.contains("2147483647"),
        "{e}"
    );
    let e = error(&wrap(r#"<policyEntry queuePrefetch="1"/>"#));
    assert!(e.contains(":3: <policyEntry>: names no destination"), "{e}");
    let e = error(&wrap(r#"<policyEntry queue="A" topic="B"/>"#));
    assert!(e.contains("more than one destination"), "{e}");
    let e = error(&wrap(r#"<policyEntry queue="A,B"/>"#));
    assert!(
        e.contains("<policyEntry queue=\"A,B\">: a composite"),
        "{e}"
    );
    let e = error(&wrap(
        r#"<policyEntry queue="A"><deadLetterStrategy>
<individualDeadLetterStrategy useQueueForQueueMessages="maybe"/></deadLetterStrategy></policyEntry>"#,
    ));
    assert!(
        e.contains(":4: <individualDeadLetterStrategy useQueueForQueueMessages=\"maybe\">: expected true or false"),
        "{e}"
    );
    let e = error(&wrap(
        r#"<policyEntry queue="A"><deadLetterStrategy>
<individualDeadLetterStrategy queuePrefix="DLQ.*."/></deadLetterStrategy></policyEntry>"#,
    ));
    assert!(e.contains("queuePrefix") && e.contains("wildcard"), "{e}");
    let e = error(&wrap(
        r#"<policyEntry queue="A"><deadLetterStrategy><sharedDeadLetterStrategy>
<deadLetterQueue><queue physicalName=""/></deadLetterQueue>
</sharedDeadLetterStrategy></deadLetterStrategy></policyEntry>"#,
    ));
    assert!(e.contains(":4: <queue physicalName=\"\">"), "{e}");
    let e = error(&wrap(
        r#"<policyEntry queue="A"><deadLetterStrategy><sharedDeadLetterStrategy/>
<individualDeadLetterStrategy/></deadLetterStrategy></policyEntry>"#,
    ));
    assert!(e.contains("a second dead-letter strategy"), "{e}");
    let e = error("<destinationPolicy><policyMap/><policyMap/></destinationPolicy>");
    assert!(e.contains("appears twice"), "{e}");
    for bad in ["lots", "-1", "12 parsecs", "100", ""] {
        let e = error(&wrap(&format!(
            r#"<policyEntry queue="A" memoryLimit="{bad}"/>"#
        )));
        assert!(
            e.starts_with(&format!(
                "conf/activemq.xml:3: <policyEntry memoryLimit=\"{bad}\">: expected"
            )),
            "{e}"
        );
    }
    let e = error(&wrap(r#"<policyEntry topic="T" memoryLimit="100"/>"#));
    assert!(e.contains("at least 1 kb"), "{e}");
    // ActiveMQ's size spellings.
    for (text, bytes) in [("1 mb", 1 << 20), ("64kb", 64 << 10), ("65536", 65536)] {
        let (c, _) = parse(&wrap(&format!(
            r#"<policyEntry queue="A" memoryLimit="{text}"/>"#
        )));
        assert_eq!(
            c.destination_policy.entries[0].1.memory_limit,
            Some(bytes),
            "{text}"
        );
    }
}

#[test]
fn a_zero_prefetch_is_reported_ignored_not_applied() {
    let (c, ignored) = parse(
        r#"<destinationPolicy><policyMap><policyEntries>
<policyEntry queue=">" queuePrefetch="0"/>
</policyEntries></policyMap></destinationPolicy>"#,
    );
    assert_eq!(c.destination_policy.entries[0].1.queue_prefetch, 1000);
    assert_eq!(ignored.len(), 1);
    assert!(ignored[0].path.ends_with("policyEntry@queuePrefetch"));
    assert!(ignored[0].reason.contains("pull"), "{}", ignored[0]);
}
