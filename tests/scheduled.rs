//! Scheduled delivery and journal reclamation (issue 17): a scheduled message pins the
//! segment of its record; to free an old segment the shard re-journals the job with its
//! current state, so a job outlives any number of reclaimed segments and a restart.
//! (The JMS cases are in `jms_tandem.rs`/`jms_activemq.rs`, STOMP in
//! `tests/python/test_scheduled.py`, the takeover in `pair.rs`.)

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::{Broker, BrokerOpts, REPLY_TIMEOUT};

/// The segment ids in a shard's journal directory, ascending.
fn segments(dir: &Path) -> Vec<u64> {
    let mut ids: Vec<u64> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| {
                let name = e.ok()?.file_name().into_string().ok()?;
                u64::from_str_radix(name.strip_suffix(".log")?, 16).ok()
            })
            .collect()
        })
        .unwrap_or_default();
    ids.sort_unstable();
    ids
}

#[test]
fn a_scheduled_message_survives_the_reclamation_of_its_segment_and_a_restart() {
    const DELAY_MS: u64 = 30_000;
    let mut broker = Broker::start(BrokerOpts {
        shards: 1,
        segment_size: "64 kb".into(),
        broker_attrs: Some(r#"schedulerSupport="true""#.into()),
        ..BrokerOpts::default()
    });
    let shard = broker.journal_dir().join("shard-0");
    let mut p = broker.client();
    let delay = DELAY_MS.to_string();
    p.send_frame(
        "SEND",
        &[
            ("destination", "/queue/sched.kept"),
            ("persistent", "true"),
            ("AMQ_SCHEDULED_DELAY", &delay),
            ("receipt", "scheduled"),
        ],
        b"kept",
    );
    p.expect_receipt("scheduled");
    let sent_at = Instant::now();
    let home = *segments(&shard).last().expect("a segment");

    // Churn: persistent messages through the journal, consumed at once, until the
    // job's segment has been reclaimed (its record moved forward).
    let mut c = broker.client();
    c.subscribe("churn", "/queue/churn", "auto");
    let body = vec![b'x'; 8000];
    let mut round = 0;
    while segments(&shard).first().is_some_and(|s| *s <= home) {
        assert!(
            sent_at.elapsed() < Duration::from_millis(DELAY_MS - 5000),
            "segment {home} still there after {round} rounds: {:?}",
            segments(&shard)
        );
        for i in 0..20 {
            let r = format!("c-{round}-{i}");
            p.send_frame(
                "SEND",
                &[
                    ("destination", "/queue/churn"),
                    ("persistent", "true"),
                    ("receipt", &r),
                ],
                &body,
            );
            p.expect_receipt(&r);
        }
        for _ in 0..20 {
            c.expect_message();
        }
        round += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    drop((p, c));

    broker.kill9();
    broker.restart();
    let mut c = broker.client();
    c.subscribe("kept", "/queue/sched.kept", "auto");
    let f = c
        .read_frame(Duration::from_millis(DELAY_MS) + REPLY_TIMEOUT)
        .expect("the scheduled message after the restart");
    assert_eq!(f.body, b"kept");
    assert!(f.header("scheduledJobId").is_some(), "{f:?}");
    let at = sent_at.elapsed();
    assert!(
        at >= Duration::from_millis(DELAY_MS - 100) && at <= Duration::from_millis(DELAY_MS + 2000),
        "fired at {at:?}, scheduled for {DELAY_MS} ms"
    );
}

/// `maxScheduledMessages` bounds the jobs the broker holds: past it a scheduled send
/// gets a non-fatal ERROR naming the limit (ordinary sends still go), counted in
/// `/status` (`limits.scheduled_messages`, the refusal) and `/metrics`
/// (`tandem_scheduled_messages`).
#[test]
fn scheduled_messages_are_bounded_and_shown_in_status_and_metrics() {
    let status_port = support::free_port();
    let broker = Broker::start(BrokerOpts {
        status_port: Some(status_port),
        broker_attrs: Some(r#"schedulerSupport="true""#.into()),
        tandem_extra: Some(r#"maxScheduledMessages="2""#.into()),
        ..BrokerOpts::default()
    });
    let mut c = broker.client();
    let send = |c: &mut support::Stomp, dest: &str, receipt: &str| {
        c.send_frame(
            "SEND",
            &[
                ("destination", dest),
                ("AMQ_SCHEDULED_DELAY", "600000"),
                ("receipt", receipt),
            ],
            b"x",
        );
        c.read_frame(REPLY_TIMEOUT).expect("a reply")
    };
    // Two queues, wherever their shards are: the limit is broker-wide.
    for (i, dest) in ["/queue/bound.a", "/queue/bound.b"].into_iter().enumerate() {
        let f = send(&mut c, dest, &format!("r{i}"));
        assert_eq!(f.command, "RECEIPT", "{f:?}");
    }
    let refused = send(&mut c, "/queue/bound.c", "r2");
    assert_eq!(refused.command, "ERROR", "{refused:?}");
    assert!(
        refused.body_str().contains("maxScheduledMessages"),
        "{refused:?}"
    );
    // The connection is kept and ordinary sends still go.
    c.send_receipted("/queue/bound.c", b"now", "r3");

    let s = support::http_request(status_port, "GET", "/status", None, REPLY_TIMEOUT)
        .expect("status")
        .json();
    assert_eq!(s["limits"]["scheduled_messages"].as_u64(), Some(2), "{s}");
    let refusals = s["limits"]["refusals"]
        .as_array()
        .expect("limits.refusals")
        .iter()
        .find(|r| r["limit"] == "maxScheduledMessages")
        .and_then(|r| r["count"].as_u64());
    assert_eq!(refusals, Some(1), "{s}");
    let metrics = support::http_request(status_port, "GET", "/metrics", None, REPLY_TIMEOUT)
        .expect("metrics")
        .body;
    assert_eq!(
        support::prom_sample(&metrics, "tandem_scheduled_messages"),
        2.0
    );
}
