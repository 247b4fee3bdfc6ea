//! The status endpoint against a real broker: `/status` JSON follows sends and acks,
//! `/metrics` carries the Prometheus families, other paths are 404, and a status port
//! in use stops start-up with a reason naming it. `POST /admin/purge` and
//! `/admin/delete` empty and remove queues for good (across a restart), with their
//! error statuses, HTTP Basic access for the admin group when the broker has users,
//! refusal of cross-site requests, and the endpoint's own bind address and limits.

mod support;

use std::ffi::OsStr;
use std::time::Duration;

use support::{poll_until, prom_sample as sample, Broker, BrokerOpts, HttpReply};

/// Status numbers are published by each shard's ticker (every 500 ms).
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(20);

/// GET on the status port: (status code, body).
fn get(port: u16, path: &str) -> (u16, String) {
    let r = support::http_request(port, "GET", path, None, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("no HTTP answer to GET {path}"));
    (r.code, r.body)
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
        "# TYPE tandem_journal_records_per_fsync histogram",
        "# TYPE tandem_journal_bytes_per_fsync histogram",
        // Standalone: nothing shipped.
        "# TYPE tandem_replication_records_per_frame histogram",
        "tandem_replication_records_per_frame_count 0",
        "tandem_replication_records_per_frame_sum 0.0",
        "# TYPE tandem_replication_bytes_per_frame histogram",
        "tandem_replication_bytes_per_frame_count 0",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in:\n{text}"
        );
    }

    // Records per fsync: the 10 receipted persistent sends were made durable by
    // fsyncs the histogram counted.
    let fsyncs = sample(&text, "tandem_journal_records_per_fsync_count");
    let records = sample(&text, "tandem_journal_records_per_fsync_sum");
    assert!(fsyncs > 0.0, "{text}");
    assert!(records >= 10.0, "{text}");
    assert_eq!(
        sample(
            &text,
            "tandem_journal_records_per_fsync_bucket{le=\"+Inf\"}"
        ),
        fsyncs,
        "{text}"
    );
    assert!(
        sample(&text, "tandem_journal_bytes_per_fsync_count") > 0.0,
        "{text}"
    );
    // Each record frames to at least 16 bytes (8 of header, the payload padded to 8).
    assert!(
        sample(&text, "tandem_journal_bytes_per_fsync_sum") >= 16.0 * 10.0,
        "{text}"
    );

    // Each fsync and each record is counted exactly once: once the journal is quiet
    // and the shards' ticker (500 ms) has copied the counters, the histogram's count
    // is the fsyncs and its sum the records appended.
    let mut last = String::new();
    let agreed = poll_until(PUBLISH_TIMEOUT, || {
        last = get(status_port, "/metrics").1;
        sample(&last, "tandem_journal_records_per_fsync_count")
            == sample(&last, "tandem_journal_fsyncs_total")
            && sample(&last, "tandem_journal_records_per_fsync_sum")
                == sample(&last, "tandem_journal_records_total")
            && sample(&last, "tandem_journal_bytes_per_fsync_count")
                == sample(&last, "tandem_journal_fsyncs_total")
    });
    assert!(
        agreed,
        "records_per_fsync never agreed with the journal counters:\n{last}"
    );

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

// ---------------------------------------------------------------------------------
// /admin/purge and /admin/delete

/// An HTTP/1.1 response: status code, header lines, body.
/// A request on the status port; an admin request waits for the journal: generous,
/// but bounded.
fn http(port: u16, method: &str, path: &str, login: Option<(&str, &str)>) -> HttpReply {
    support::http_request(port, method, path, login, Duration::from_secs(60))
        .unwrap_or_else(|| panic!("no HTTP answer to {method} {path}"))
}

fn admin(port: u16, op: &str, destination: &str) -> HttpReply {
    http(
        port,
        "POST",
        &format!("/admin/{op}?destination={destination}"),
        None,
    )
}

/// Polls `/status` until `check` holds for the destination list; returns that status.
fn wait_status(
    port: u16,
    what: &str,
    check: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    let ok = poll_until(PUBLISH_TIMEOUT, || {
        last = status(port);
        check(&last)
    });
    assert!(ok, "/status never showed {what}; last: {last}");
    last
}

fn depth_of(s: &serde_json::Value, name: &str) -> Option<u64> {
    queue(s, name).and_then(|q| q["depth"].as_u64())
}

/// Sends `n` persistent messages to `dest`, each confirmed.
fn send_n(c: &mut support::Stomp, dest: &str, n: usize) {
    for i in 0..n {
        c.send_receipted(
            dest,
            format!("{dest} {i}").as_bytes(),
            &format!("{dest}-{i}"),
        );
    }
}

/// Subscribes to `dest`, sends a sentinel and returns the bodies of every message
/// that arrived before it (auto ack).
fn delivered_before_sentinel(broker: &Broker, dest: &str) -> Vec<String> {
    let mut c = broker.client();
    c.subscribe("s", dest, "auto");
    c.send_frame(
        "SEND",
        &[
            ("destination", dest),
            ("x-sentinel", "1"),
            ("receipt", "sentinel"),
        ],
        b"sentinel",
    );
    let mut got = Vec::new();
    for _ in 0..10_000 {
        let f = c
            .read_frame(support::REPLY_TIMEOUT)
            .unwrap_or_else(|e| panic!("{dest}: waiting for the sentinel: {e:?}"));
        match f.command.as_str() {
            "RECEIPT" => {}
            "MESSAGE" if f.header("x-sentinel").is_some() => return got,
            "MESSAGE" => got.push(f.body_str()),
            _ => panic!("{dest}: unexpected frame {f:?}"),
        }
    }
    panic!("{dest}: sentinel never arrived");
}

#[test]
fn admin_purge_empties_a_queue_for_good_even_after_a_restart() {
    let status_port = support::free_port();
    let mut broker = Broker::start(BrokerOpts {
        status_port: Some(status_port),
        ..BrokerOpts::default()
    });
    let mut p = broker.client();
    send_n(&mut p, "/queue/purged", 25);
    send_n(&mut p, "/queue/kept", 3);
    drop(p);
    wait_status(status_port, "depths 25 and 3", |s| {
        depth_of(s, "/queue/purged") == Some(25) && depth_of(s, "/queue/kept") == Some(3)
    });

    let r = admin(status_port, "purge", "/queue/purged");
    assert_eq!(r.code, 200, "{}", r.body);
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    assert_eq!(
        r.json(),
        serde_json::json!({"destination": "/queue/purged", "removed": 25})
    );
    let s = wait_status(status_port, "depth 0 after the purge", |s| {
        depth_of(s, "/queue/purged") == Some(0)
    });
    assert_eq!(depth_of(&s, "/queue/kept"), Some(3), "{s}");
    let q = queue(&s, "/queue/purged").unwrap();
    assert_eq!(q["dequeued"], 25, "a purge counts as dequeued: {q}");
    // The other spelling, URL-encoded; the queue is empty now.
    let r = admin(status_port, "purge", "queue%3A%2F%2Fpurged");
    assert_eq!(r.code, 200, "{}", r.body);
    assert_eq!(
        r.json(),
        serde_json::json!({"destination": "/queue/purged", "removed": 0})
    );
    assert!(
        delivered_before_sentinel(&broker, "/queue/purged").is_empty(),
        "purged messages were delivered"
    );

    broker.restart();
    let s = wait_status(status_port, "the kept queue after the restart", |s| {
        depth_of(s, "/queue/kept") == Some(3)
    });
    assert_eq!(depth_of(&s, "/queue/purged").unwrap_or(0), 0, "{s}");
    assert!(
        delivered_before_sentinel(&broker, "/queue/purged").is_empty(),
        "purged messages came back after the restart"
    );
    assert_eq!(delivered_before_sentinel(&broker, "/queue/kept").len(), 3);
}

#[test]
fn admin_delete_removes_a_queue_for_good_even_after_a_restart() {
    let status_port = support::free_port();
    let mut broker = Broker::start(BrokerOpts {
        status_port: Some(status_port),
        ..BrokerOpts::default()
    });
    let mut p = broker.client();
    send_n(&mut p, "/queue/doomed", 7);
    send_n(&mut p, "/queue/other", 2);
    wait_status(status_port, "depth 7", |s| {
        depth_of(s, "/queue/doomed") == Some(7)
    });

    // A queue with a consumer is not deleted (ActiveMQ would close the consumer).
    let mut c = broker.client();
    c.send_frame(
        "SUBSCRIBE",
        &[
            ("id", "c"),
            ("destination", "/queue/doomed"),
            ("ack", "client-individual"),
            ("activemq.prefetchSize", "1"),
            ("receipt", "sub"),
        ],
        b"",
    );
    c.expect_receipt("sub");
    let r = admin(status_port, "delete", "/queue/doomed");
    assert_eq!(r.code, 409, "{}", r.body);
    assert!(
        r.json()["error"]
            .as_str()
            .is_some_and(|e| e.contains("1 consumer")),
        "{}",
        r.body
    );
    c.send_frame("UNSUBSCRIBE", &[("id", "c"), ("receipt", "unsub")], b"");
    let unsubscribed = poll_until(support::REPLY_TIMEOUT, || {
        matches!(c.read_frame(support::REPLY_TIMEOUT),
            Ok(f) if f.command == "RECEIPT" && f.header("receipt-id") == Some("unsub"))
    });
    assert!(unsubscribed, "no RECEIPT for UNSUBSCRIBE");

    let r = admin(status_port, "delete", "/queue/doomed");
    assert_eq!(r.code, 200, "{}", r.body);
    assert_eq!(
        r.json(),
        serde_json::json!({"destination": "/queue/doomed", "removed": 7})
    );
    let s = wait_status(status_port, "/queue/doomed gone", |s| {
        queue(s, "/queue/doomed").is_none()
    });
    assert_eq!(depth_of(&s, "/queue/other"), Some(2), "{s}");
    for op in ["purge", "delete"] {
        let r = admin(status_port, op, "/queue/doomed");
        assert_eq!(r.code, 404, "{op} of a deleted queue: {}", r.body);
    }

    broker.restart();
    let s = wait_status(status_port, "/queue/other after the restart", |s| {
        depth_of(s, "/queue/other") == Some(2)
    });
    assert!(
        queue(&s, "/queue/doomed").is_none(),
        "deleted queue back: {s}"
    );
    assert_eq!(admin(status_port, "purge", "/queue/doomed").code, 404);

    // A send creates it afresh, empty but for the new message.
    let mut p = broker.client();
    send_n(&mut p, "/queue/doomed", 1);
    let s = wait_status(status_port, "/queue/doomed recreated", |s| {
        depth_of(s, "/queue/doomed") == Some(1)
    });
    assert_eq!(queue(&s, "/queue/doomed").unwrap()["enqueued"], 1, "{s}");
    assert_eq!(
        delivered_before_sentinel(&broker, "/queue/doomed"),
        vec!["/queue/doomed 0".to_string()]
    );
}

#[test]
fn admin_answers_errors_with_their_status() {
    let status_port = support::free_port();
    let broker = Broker::start(BrokerOpts {
        status_port: Some(status_port),
        ..BrokerOpts::default()
    });
    let mut p = broker.client();
    send_n(&mut p, "/queue/here", 1);
    p.send_frame(
        "SUBSCRIBE",
        &[("id", "t"), ("destination", "/topic/t"), ("receipt", "t")],
        b"",
    );
    p.expect_receipt("t");

    for op in ["purge", "delete"] {
        let r = admin(status_port, op, "/queue/nowhere");
        assert_eq!(r.code, 404, "{op}: {}", r.body);
        assert!(r.json()["error"]
            .as_str()
            .is_some_and(|e| e.contains("/queue/nowhere")));
        for bad in [
            "/admin/{op}",
            "/admin/{op}?destination=",
            "/admin/{op}?destination=/topic/t",
            "/admin/{op}?destination=topic://t",
            "/admin/{op}?destination=/queue/",
            "/admin/{op}?destination=here",
            "/admin/{op}?destination=/temp-queue/x",
            "/admin/{op}?destination=%ZZ",
        ] {
            let path = bad.replace("{op}", op);
            let r = http(status_port, "POST", &path, None);
            assert_eq!(r.code, 400, "{path}: {}", r.body);
            assert!(r.json()["error"].is_string(), "{path}: {}", r.body);
        }
        let path = format!("/admin/{op}?destination=/queue/here");
        for method in ["GET", "PUT", "DELETE"] {
            let r = http(status_port, method, &path, None);
            assert_eq!(r.code, 405, "{method} {path}: {}", r.body);
            assert_eq!(r.header("Allow"), Some("POST"), "{}", r.head);
        }
    }
    assert_eq!(http(status_port, "POST", "/admin/other", None).code, 404);
    // Nothing above touched the queue.
    wait_status(status_port, "/queue/here still holding its message", |s| {
        depth_of(s, "/queue/here") == Some(1)
    });
}

#[test]
fn admin_needs_basic_auth_of_an_admin_when_the_broker_has_users() {
    let status_port = support::free_port();
    let broker = Broker::start(BrokerOpts {
        status_port: Some(status_port),
        users: vec![
            ("admin".into(), "s3cret".into()),
            ("app".into(), "pw".into()),
        ],
        admins: vec!["admin".into()],
        ..BrokerOpts::default()
    });
    let mut p = support::Stomp::connect_login(broker.port, Some(("app", "pw")));
    send_n(&mut p, "/queue/locked", 4);
    let path = "/admin/purge?destination=/queue/locked";
    for login in [None, Some(("admin", "wrong")), Some(("nobody", "s3cret"))] {
        let r = http(status_port, "POST", path, login);
        assert_eq!(r.code, 401, "{login:?}: {}", r.body);
        assert_eq!(
            r.header("WWW-Authenticate"),
            Some(r#"Basic realm="tandem""#),
            "{}",
            r.head
        );
    }
    // A user who is not in the admin group may log in to the broker, not purge.
    let r = http(status_port, "POST", path, Some(("app", "pw")));
    assert_eq!(r.code, 403, "{}", r.body);
    assert!(
        r.json()["error"].as_str().unwrap().contains("admin group"),
        "{}",
        r.body
    );
    // /status and /metrics stay open; nothing was purged.
    wait_status(status_port, "depth 4 without logging in", |s| {
        depth_of(s, "/queue/locked") == Some(4)
    });
    assert_eq!(get(status_port, "/metrics").0, 200);

    let r = http(status_port, "POST", path, Some(("admin", "s3cret")));
    assert_eq!(r.code, 200, "{}", r.body);
    assert_eq!(
        r.json(),
        serde_json::json!({"destination": "/queue/locked", "removed": 4})
    );
    // The broker's log says who did it (and who was refused).
    let logged = poll_until(Duration::from_secs(10), || {
        let log = broker.log();
        log.lines().any(|l| {
            l.contains("admin purge") && l.contains("user=admin") && l.contains("removed=4")
        }) && log
            .lines()
            .any(|l| l.contains("not in the admin group") && l.contains("user=app"))
    });
    assert!(
        logged,
        "no admin log lines naming the users:\n{}",
        broker.log()
    );
}

/// A browser can be made to POST a form to 127.0.0.1 from any web page: an admin
/// request without a header a form cannot send, or from a foreign Origin, or for a
/// foreign Host (DNS rebinding), is refused even with valid credentials.
#[test]
fn admin_refuses_cross_site_requests() {
    let status_port = support::free_port();
    let broker = Broker::start(BrokerOpts {
        status_port: Some(status_port),
        users: vec![("admin".into(), "s3cret".into())],
        admins: vec!["admin".into()],
        ..BrokerOpts::default()
    });
    let mut p = support::Stomp::connect_login(broker.port, Some(("admin", "s3cret")));
    send_n(&mut p, "/queue/csrf", 3);
    let path = "/admin/purge?destination=/queue/csrf";
    let login = Some(("admin", "s3cret"));
    let post = |headers: &[(&str, &str)]| {
        support::http_request_with(
            status_port,
            "POST",
            path,
            login,
            headers,
            Duration::from_secs(60),
        )
        .expect("an answer")
    };
    for headers in [
        vec![("Content-Type", "application/x-www-form-urlencoded")],
        vec![
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Origin", "http://evil.example"),
        ],
        vec![("Content-Type", "text/plain")],
        vec![("X-Tandem-Admin", "1"), ("Origin", "http://evil.example")],
        vec![("X-Tandem-Admin", "1"), ("Origin", "null")],
    ] {
        let r = post(&headers);
        assert_eq!(r.code, 403, "{headers:?}: {}", r.body);
    }
    // A DNS-rebinding page reaches 127.0.0.1 under its own name.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", status_port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    use std::io::{Read, Write};
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: evil.example:{status_port}\r\nX-Tandem-Admin: 1\r\n\
         Authorization: Basic YWRtaW46czNjcmV0\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    let _ = s.read_to_string(&mut raw);
    assert!(raw.starts_with("HTTP/1.1 403"), "{raw}");
    wait_status(status_port, "nothing purged", |s| {
        depth_of(s, "/queue/csrf") == Some(3)
    });
    // A same-origin JSON request (what a script sends) works.
    let r = post(&[
        ("Content-Type", "application/json"),
        ("Origin", &format!("http://127.0.0.1:{status_port}")),
    ]);
    assert_eq!(r.code, 200, "{}", r.body);
    assert_eq!(r.json()["removed"], 3);
}

/// `<tandem statusHost>` is where the endpoint listens (and only there).
#[test]
fn the_status_endpoint_binds_its_configured_host() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    let status_port = support::free_port();
    let _broker = Broker::start(BrokerOpts {
        status_port: Some(status_port),
        status_host: Some("127.0.0.2".into()),
        ..BrokerOpts::default()
    });
    let mut s = TcpStream::connect(("127.0.0.2", status_port)).expect("status on 127.0.0.2");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET /status HTTP/1.1\r\nHost: 127.0.0.2\r\n\r\n").unwrap();
    let mut raw = String::new();
    let _ = s.read_to_string(&mut raw);
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    assert!(raw.contains("\"broker\":\"itest\""), "{raw}");
    assert!(
        TcpStream::connect(("127.0.0.1", status_port)).is_err(),
        "the status port answers on 127.0.0.1 too"
    );
}

/// Many connections that never finish a request (a slow-loris) neither stop a real
/// request from being answered nor stay open past the read deadline.
#[test]
fn idle_connections_do_not_stop_the_status_endpoint() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    let status_port = support::free_port();
    let _broker = Broker::start(BrokerOpts {
        status_port: Some(status_port),
        ..BrokerOpts::default()
    });
    assert_eq!(get(status_port, "/status").0, 200);
    let mut idle: Vec<TcpStream> = (0..100)
        .map(|i| {
            let mut s = TcpStream::connect(("127.0.0.1", status_port)).expect("connect");
            if i % 2 == 0 {
                s.write_all(b"GET /stat").expect("half a request line");
            }
            s
        })
        .collect();
    for _ in 0..3 {
        let (code, body) = get(status_port, "/status");
        assert_eq!(code, 200, "{body}");
    }
    // Every idle connection is closed by the broker (cut for newer ones, or at the
    // read deadline); none gets an answer.
    for (i, s) in idle.iter_mut().enumerate() {
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut buf = [0u8; 64];
        match s.read(&mut buf) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Ok(n) => panic!(
                "idle connection {i} got an answer: {:?}",
                String::from_utf8_lossy(&buf[..n])
            ),
            Err(e) => panic!("idle connection {i} still open after 30 s: {e}"),
        }
    }
    assert_eq!(get(status_port, "/status").0, 200);
}
