//! The status endpoint against a real broker: `/status` JSON follows sends and acks,
//! `/metrics` carries the Prometheus families, other paths are 404, and a status port
//! in use stops start-up with a reason naming it.

mod support;

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use support::{poll_until, Broker, BrokerOpts};

/// Status numbers are published by each shard's ticker (every 500 ms).
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(20);

/// A minimal HTTP/1.1 GET: (status code, body).
fn get(port: u16, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to status port");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read HTTP response");
    let (head, body) = raw.split_once("\r\n\r\n").expect("HTTP head and body");
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line: {head}"));
    (code, body.to_string())
}

fn status(port: u16) -> serde_json::Value {
    let (code, body) = get(port, "/status");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

fn queue(status: &serde_json::Value, name: &str) -> Option<serde_json::Value> {
    status["destinations"]
        .as_array()?
        .iter()
        .find(|d| d["name"] == name)
        .cloned()
}

/// Polls `/status` until `check` holds for `/queue/a`; returns that entry.
fn wait_for_queue(
    port: u16,
    what: &str,
    check: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    let ok = poll_until(PUBLISH_TIMEOUT, || {
        last = status(port);
        queue(&last, "/queue/a").is_some_and(|q| check(&q))
    });
    assert!(ok, "/queue/a never reached {what}; last /status: {last}");
    queue(&last, "/queue/a").unwrap()
}

#[test]
fn status_and_metrics_follow_the_broker() {
    let status_port = support::free_port();
    let broker = Broker::start(BrokerOpts {
        status_port: Some(status_port),
        ..BrokerOpts::default()
    });

    let s = status(status_port);
    assert_eq!(s["broker"], "itest");
    assert_eq!(s["role"], "standalone");
    assert_eq!(s["shards"], 2);
    assert!(s["uptime_s"].is_u64(), "{s}");
    // Standalone (no slave has attached, none is remembered): the object is always
    // there. A fresh node serving as master takes epoch counter 1 (`counter << 16 | id`).
    let r = &s["replication"];
    assert_eq!(r["role"], "standalone", "{s}");
    assert_eq!(r["epoch"].as_u64().map(|e| e >> 16), Some(1), "{s}");
    assert_eq!(r["peer"], "none", "{s}");
    assert!(r["peer_address"].is_null(), "{s}");
    assert_eq!(
        r["lag"],
        serde_json::json!({"records": 0, "bytes": 0, "ms": 0}),
        "{s}"
    );
    assert_eq!(
        r["shipped"],
        serde_json::json!({"records": 0, "bytes": 0}),
        "{s}"
    );
    assert_eq!(r["takeovers"], 0, "{s}");
    assert_eq!(r["last_takeover_ms"], 0, "{s}");
    assert_eq!(r["rtt"]["count"], 0, "{s}");
    assert_eq!(
        r["rtt"]["buckets"].as_array().map(Vec::len),
        Some(13),
        "{s}"
    );
    assert!(s["memory"]["limit_bytes"].as_u64() == Some(8 << 20), "{s}");

    let mut producer = broker.client();
    for i in 0..10 {
        producer.send_receipted("/queue/a", format!("m{i}").as_bytes(), &format!("r{i}"));
    }
    let q = wait_for_queue(status_port, "depth 10", |q| q["depth"] == 10);
    assert_eq!(q["enqueued"], 10, "{q}");
    assert_eq!(q["dequeued"], 0, "{q}");

    let mut consumer = broker.client();
    consumer.send_frame(
        "SUBSCRIBE",
        &[
            ("id", "c"),
            ("destination", "/queue/a"),
            ("ack", "client-individual"),
            ("activemq.prefetchSize", "4"),
            ("receipt", "sub"),
        ],
        b"",
    );
    consumer.expect_receipt("sub");
    let acks: Vec<String> = (0..4)
        .map(|_| {
            consumer
                .expect_message()
                .header("ack")
                .expect("ack")
                .to_string()
        })
        .collect();
    for (i, ack) in acks.iter().enumerate() {
        let receipt = if i == 3 { "acked" } else { "" };
        let mut headers = vec![("id", ack.as_str())];
        if !receipt.is_empty() {
            headers.push(("receipt", receipt));
        }
        consumer.send_frame("ACK", &headers, b"");
    }
    // The freed prefetch slots bring more MESSAGEs, possibly before the RECEIPT.
    let receipted = poll_until(support::REPLY_TIMEOUT, || {
        matches!(consumer.read_frame(support::REPLY_TIMEOUT),
            Ok(f) if f.command == "RECEIPT" && f.header("receipt-id") == Some("acked"))
    });
    assert!(receipted, "no RECEIPT for the last ACK");
    // Four acknowledged; the prefetch window then holds up to four more in flight,
    // which still count in the depth.
    let q = wait_for_queue(status_port, "depth 6 after 4 acks", |q| {
        q["depth"] == 6 && q["dequeued"] == 4
    });
    assert_eq!(q["enqueued"], 10, "{q}");
    assert_eq!(q["consumers"], 1, "{q}");
    let s = status(status_port);
    assert!(s["connections"].as_u64() >= Some(2), "{s}");
    assert!(s["journal"]["fsyncs"].as_u64() >= Some(1), "{s}");
    assert!(s["journal"]["appended_bytes"].as_u64() > Some(0), "{s}");

    let (code, text) = get(status_port, "/metrics");
    assert_eq!(code, 200);
    assert!(
        text.lines()
            .any(|l| l.starts_with("tandem_journal_fsync_seconds_bucket{le=")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l == "tandem_destination_depth{destination=\"/queue/a\"} 6"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l == "tandem_destination_dequeued_total{destination=\"/queue/a\"} 4"),
        "{text}"
    );
    assert!(text.contains("# TYPE tandem_connections gauge"), "{text}");
    for line in [
        "tandem_replication_role{role=\"standalone\"} 1",
        "tandem_replication_role{role=\"master\"} 0",
        "tandem_replication_role{role=\"slave\"} 0",
        "# TYPE tandem_replication_epoch gauge",
        "tandem_replication_peer_state{state=\"none\"} 1",
        "tandem_replication_peer_state{state=\"in-sync\"} 0",
        "tandem_replication_lag_records 0",
        "tandem_replication_lag_bytes 0",
        "tandem_replication_lag_seconds 0.0",
        "tandem_replication_shipped_records_total 0",
        "tandem_replication_shipped_bytes_total 0",
        "tandem_replication_takeovers_total 0",
        "tandem_replication_rtt_seconds_count 0",
        "tandem_replication_rtt_seconds_bucket{le=\"+Inf\"} 0",
        "# TYPE tandem_replication_rtt_seconds histogram",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in:\n{text}"
        );
    }

    for path in ["/", "/statusx", "/metrics/x", "/favicon.ico"] {
        assert_eq!(get(status_port, path).0, 404, "{path}");
    }
}

#[test]
fn status_port_in_use_stops_start_up_naming_it() {
    let status_port = support::free_port();
    let first = Broker::start(BrokerOpts {
        status_port: Some(status_port),
        ..BrokerOpts::default()
    });

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("broker.xml");
    let opts = BrokerOpts {
        status_port: Some(status_port),
        ..BrokerOpts::default()
    };
    let xml = support::config_xml(&opts, support::free_port(), &dir.path().join("data"));
    std::fs::write(&config, xml).unwrap();
    let data = dir.path().join("data");
    let args: [&OsStr; 4] = [
        "--config".as_ref(),
        config.as_os_str(),
        "--data-dir".as_ref(),
        data.as_os_str(),
    ];
    let (exit, stderr) = support::run_to_exit(&args, Duration::from_secs(60));
    assert!(!exit.success(), "second broker started:\n{stderr}");
    let reason: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("tandem:"))
        .collect();
    assert_eq!(
        reason.len(),
        1,
        "expected one 'tandem: ...' line:\n{stderr}"
    );
    assert!(
        reason[0].contains(&format!("statusPort {status_port}")),
        "reason should name the status port: {}",
        reason[0]
    );
    // The first broker still answers.
    assert_eq!(status(status_port)["broker"], "itest");
    drop(first);
}
