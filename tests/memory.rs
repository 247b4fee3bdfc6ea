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
