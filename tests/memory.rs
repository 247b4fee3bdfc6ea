//! Bounded memory, measured on real processes: what a backlog costs each node.
//!
//! RSS comparisons, not timings: a node's memory for a backlog must follow the bytes it
//! holds (and its memory limit), not some multiple of how they arrived.

mod support;

use std::time::Duration;

use support::pair::{test_slot, Pair, PairOpts};
use support::{proc_status_bytes, REPLY_TIMEOUT};

const MIB: u64 = 1 << 20;

/// A backlog of 10 000 persistent 1 KiB messages (10 MiB, under the 32 mb limit, so both
/// nodes hold every body in memory): the slave needs about what the master needs.
/// Applying shipped records used to keep a slice of the link's receive buffer per
/// message, about 100 KB for a 1 KiB body: 1 GB here. Then the master dies and the
/// slave delivers every message.
#[test]
fn slave_holds_a_backlog_in_about_the_memory_of_its_master() {
    let _slot = test_slot();
    let pair = Pair::start(PairOpts::default());
    const COUNT: usize = 10_000;
    const PRODUCERS: usize = 4;
    let body = vec![b'x'; 1024];
    // As producers usually send: each waits for its receipt, so the journal commits
    // and ships many small batches (a few records each), as tandem-load does.
    let mut producers: Vec<_> = (0..PRODUCERS).map(|_| pair.master.client()).collect();
    for round in 0..COUNT / PRODUCERS {
        for (p, c) in producers.iter_mut().enumerate() {
            let receipt = format!("{round}-{p}");
            let headers = [
                ("destination", "/queue/backlog"),
                ("persistent", "true"),
                ("receipt", receipt.as_str()),
            ];
            c.send_frame("SEND", &headers, &body);
        }
        for (p, c) in producers.iter_mut().enumerate() {
            c.expect_receipt(&format!("{round}-{p}"));
        }
    }

    let master = proc_status_bytes(pair.master.pid(), "VmRSS");
    let slave = proc_status_bytes(pair.slave.pid(), "VmRSS");
    eprintln!(
        "backlog of {COUNT} x 1 KiB: master RSS {} MiB, slave RSS {} MiB",
        master / MIB,
        slave / MIB
    );
    assert!(
        slave <= 2 * master + 16 * MIB,
        "the slave holds the same backlog as the master in {} MiB against {} MiB",
        slave / MIB,
        master / MIB
    );

    pair.master.kill9();
    pair.slave.wait_serving(Duration::from_secs(30));
    let mut c = pair.slave.client();
    c.subscribe("1", "/queue/backlog", "auto");
    for i in 0..COUNT {
        let m = c
            .read_frame(REPLY_TIMEOUT)
            .unwrap_or_else(|e| panic!("message {i} of {COUNT} after the takeover: {e:?}"));
        assert_eq!(m.command, "MESSAGE", "{m:?}");
        assert_eq!(m.body.len(), 1024);
    }
}

/// A journal 12 times the memory limit (96 MiB of 4 KiB messages, limit 8 mb): the
/// restart replays it within less memory than the journal holds, because records are
/// applied as they are read and bodies beyond the limit stay on disk. (Recovery used
/// to read every record into one list first: the peak was the journal's size and
/// more.) Every message is then delivered, in order.
#[test]
fn restart_replays_a_journal_larger_than_memory_in_bounded_memory() {
    const COUNT: usize = 24_576;
    const SIZE: usize = 4096;
    const JOURNAL: u64 = (COUNT * SIZE) as u64;
    let mut broker = support::Broker::start(support::BrokerOpts::default());
    let mut c = broker.client();
    for i in 0..COUNT {
        let body = format!("{i:06}-{}", "r".repeat(SIZE - 7));
        let receipt = format!("r{i}");
        let mut headers = vec![("destination", "/queue/replay"), ("persistent", "true")];
        if i % 512 == 511 {
            headers.push(("receipt", &receipt));
        }
        c.send_frame("SEND", &headers, body.as_bytes());
        if i % 512 == 511 {
            c.expect_receipt(&receipt);
        }
    }
    drop(c);

    broker.restart();
    let peak = proc_status_bytes(broker.pid(), "VmHWM");
    eprintln!(
        "restart on a {} MiB journal (limit 8 mb): peak RSS {} MiB",
        JOURNAL / MIB,
        peak / MIB
    );
    assert!(
        peak < JOURNAL,
        "replaying a {} MiB journal took {} MiB",
        JOURNAL / MIB,
        peak / MIB
    );

    let mut c = broker.client();
    c.send_frame(
        "SUBSCRIBE",
        &[
            ("id", "1"),
            ("destination", "/queue/replay"),
            ("ack", "auto"),
            ("activemq.prefetchSize", "100"),
        ],
        b"",
    );
    for i in 0..COUNT {
        let m = c.expect_message();
        assert_eq!(
            &m.body[..6],
            format!("{i:06}").as_bytes(),
            "out of order at {i}"
        );
    }
}

/// `memoryLimit="1 mb"` on `<policyEntry queue="big.>">`: 20 MiB of persistent
/// messages to `big.q` leave at most 1 MiB of bodies in memory (the rest only in the
/// journal), as `/status` shows, while a queue without a limit keeps its bodies (the
/// shard has room). Then every message of `big.q` is delivered intact, in order.
#[test]
fn a_destination_memory_limit_keeps_its_bodies_beyond_it_on_disk() {
    const COUNT: usize = 320;
    const SIZE: usize = 64 << 10;
    const LIMIT: u64 = MIB;
    let status_port = support::free_port();
    let broker = support::Broker::start(support::BrokerOpts {
        memory_limit: "64 mb".into(),
        status_port: Some(status_port),
        broker_xml: Some(
            r#"<destinationPolicy><policyMap><policyEntries>
                 <policyEntry queue="big.>" memoryLimit="1 mb"/>
               </policyEntries></policyMap></destinationPolicy>"#
                .into(),
        ),
        ..support::BrokerOpts::default()
    });
    let body = |i: usize| format!("{i:06}-{}", "b".repeat(SIZE - 7));
    let mut c = broker.client();
    for i in 0..COUNT {
        let receipt = format!("r{i}");
        let mut headers = vec![("destination", "/queue/big.q"), ("persistent", "true")];
        if i % 32 == 31 {
            headers.push(("receipt", &receipt));
        }
        c.send_frame("SEND", &headers, body(i).as_bytes());
        if i % 32 == 31 {
            c.expect_receipt(&receipt);
        }
    }
    for i in 0..16 {
        let headers = [("destination", "/queue/free.q"), ("persistent", "true")];
        c.send_frame("SEND", &headers, body(i).as_bytes());
    }
    c.send_frame(
        "SEND",
        &[
            ("destination", "/queue/free.q"),
            ("persistent", "true"),
            ("receipt", "free"),
        ],
        body(16).as_bytes(),
    );
    c.expect_receipt("free");

    let find = |s: &serde_json::Value, name: &str| {
        s["destinations"]
            .as_array()
            .and_then(|a| a.iter().find(|d| d["name"] == name).cloned())
    };
    let mut last = serde_json::Value::Null;
    let shown = support::poll_until(Duration::from_secs(20), || {
        let Some(r) = support::http_request(status_port, "GET", "/status", None, REPLY_TIMEOUT)
        else {
            return false;
        };
        last = serde_json::from_str(&r.body).unwrap_or_default();
        let depth = |n| find(&last, n).and_then(|d| d["depth"].as_u64());
        depth("/queue/big.q") == Some(COUNT as u64) && depth("/queue/free.q") == Some(17)
    });
    assert!(shown, "/status never showed both queues full: {last}");
    let big = find(&last, "/queue/big.q").expect("big.q");
    let used = big["memory_bytes"].as_u64().expect("memory_bytes");
    eprintln!("big.q: {COUNT} x 64 KiB stored, {used} bytes of bodies in memory");
    assert_eq!(big["memory_limit"].as_u64(), Some(LIMIT), "{big}");
    assert!(used > 0 && used <= LIMIT, "{big}");
    let free = find(&last, "/queue/free.q").expect("free.q");
    assert!(
        free["memory_bytes"].as_u64().expect("memory_bytes") >= 17 * SIZE as u64,
        "{free}"
    );
    assert!(free["memory_limit"].is_null(), "{free}");

    c.send_frame(
        "SUBSCRIBE",
        &[
            ("id", "1"),
            ("destination", "/queue/big.q"),
            ("ack", "auto"),
            ("activemq.prefetchSize", "20"),
        ],
        b"",
    );
    for i in 0..COUNT {
        let m = c.expect_message();
        assert!(m.body == body(i).as_bytes(), "message {i} differs");
    }
}

/// A non-persistent send to a queue over its `memoryLimit` holds its producer: the
/// receipt comes only once a consumer has taken and acknowledged the queue's messages,
/// while a send to another queue is confirmed at once.
#[test]
fn a_non_persistent_send_over_a_destination_memory_limit_waits_for_consumers() {
    let broker = support::Broker::start(support::BrokerOpts {
        memory_limit: "64 mb".into(),
        broker_xml: Some(
            r#"<destinationPolicy><policyMap><policyEntries>
                 <policyEntry queue="np.>" memoryLimit="64 kb"/>
               </policyEntries></policyMap></destinationPolicy>"#
                .into(),
        ),
        ..support::BrokerOpts::default()
    });
    let body = vec![b'n'; 80 << 10];
    let mut producer = broker.client();
    producer.send_frame(
        "SEND",
        &[
            ("destination", "/queue/np.q"),
            ("persistent", "false"),
            ("receipt", "held"),
        ],
        &body,
    );
    let mut other = broker.client();
    other.send_frame(
        "SEND",
        &[
            ("destination", "/queue/free.q"),
            ("persistent", "false"),
            ("receipt", "free"),
        ],
        &body,
    );
    other.expect_receipt("free");
    assert!(
        matches!(
            producer.read_frame(Duration::from_secs(2)),
            Err(support::ReadEnd::Timeout)
        ),
        "np.q holds 80 KiB against a 64 kb limit: its producer waits"
    );
    let mut consumer = broker.client();
    consumer.subscribe("1", "/queue/np.q", "client-individual");
    let m = consumer.expect_message();
    assert_eq!(m.body.len(), body.len());
    consumer.send_frame("ACK", &[("id", m.header("ack").expect("ack header"))], b"");
    producer.expect_receipt("held");
}
