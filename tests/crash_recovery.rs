//! Crash recovery with a real `kill -9` and real files: what a RECEIPT confirmed
//! survives, exactly once and in order; what was acknowledged or never committed does
//! not come back; a torn journal tail loses only what follows the tear; a backlog far
//! over the memory limit drains in order with bounded memory.

mod support;

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use support::{Broker, BrokerOpts, ReadEnd, Rng, Stomp, REPLY_TIMEOUT};

/// Receipts a producer may have outstanding: bounded, so the test never floods.
const WINDOW: usize = 64;

/// Sends every `(destination, body, extra headers)` persistently with a receipt,
/// at most `WINDOW` unconfirmed at a time, and returns once all are confirmed.
fn send_all(conn: &mut Stomp, msgs: &[(String, String)], extra: &[(&str, &str)]) {
    let mut outstanding: HashSet<String> = HashSet::new();
    for (i, (dest, body)) in msgs.iter().enumerate() {
        if outstanding.len() >= WINDOW {
            take_receipt(conn, &mut outstanding);
        }
        let receipt = format!("s-{i}");
        let mut headers = vec![
            ("destination", dest.as_str()),
            ("persistent", "true"),
            ("receipt", receipt.as_str()),
        ];
        headers.extend_from_slice(extra);
        conn.send_frame("SEND", &headers, body.as_bytes());
        outstanding.insert(receipt);
    }
    for _ in 0..msgs.len() {
        if outstanding.is_empty() {
            break;
        }
        take_receipt(conn, &mut outstanding);
    }
    assert!(outstanding.is_empty());
}

fn take_receipt(conn: &mut Stomp, outstanding: &mut HashSet<String>) {
    let f = conn.read_frame(REPLY_TIMEOUT).expect("RECEIPT");
    assert_eq!(f.command, "RECEIPT", "{f:?}");
    let id = f.header("receipt-id").expect("receipt-id").to_string();
    assert!(
        outstanding.remove(&id),
        "unexpected or repeated receipt {id}"
    );
}

/// Consumes `dest` and asserts it holds exactly `want`, in order: reads `want.len()`
/// messages, then sends a sentinel and checks it is the very next one (so nothing
/// extra was queued behind the expected messages).
fn assert_queue_holds(broker: &Broker, dest: &str, want: &[String]) {
    let mut consumer = broker.client();
    consumer.subscribe("drain", dest, "auto");
    let mut got = Vec::with_capacity(want.len());
    for _ in 0..want.len() {
        match consumer.read_frame(REPLY_TIMEOUT) {
            Ok(f) if f.command == "MESSAGE" => got.push(f.body_str()),
            Ok(f) => panic!("{dest}: unexpected frame {f:?}"),
            Err(ReadEnd::Timeout) => break,
            Err(ReadEnd::Closed) => panic!("{dest}: consumer closed"),
        }
    }
    assert_same_sequence(&got, want, dest);
    let mut producer = broker.client();
    producer.send_receipted(dest, b"sentinel", "sentinel");
    let next = consumer.expect_message();
    assert_eq!(
        next.body_str(),
        "sentinel",
        "{dest}: extra message after the expected {}",
        want.len()
    );
}

/// Equal sequences, or a failure that says how they differ without dumping thousands.
fn assert_same_sequence(got: &[String], want: &[String], what: &str) {
    if got == want {
        return;
    }
    let mut seen = HashSet::new();
    let dups: Vec<&String> = got.iter().filter(|b| !seen.insert(*b)).take(5).collect();
    let want_set: HashSet<&String> = want.iter().collect();
    let got_set: HashSet<&String> = got.iter().collect();
    let missing: Vec<&String> = want
        .iter()
        .filter(|b| !got_set.contains(b))
        .take(5)
        .collect();
    let extra: Vec<&String> = got
        .iter()
        .filter(|b| !want_set.contains(b))
        .take(5)
        .collect();
    let first = got.iter().zip(want).position(|(g, w)| g != w);
    panic!(
        "{what}: got {} messages, want {}; first difference at {first:?}; \
         missing (first 5) {missing:?}; unexpected {extra:?}; duplicated {dups:?}",
        got.len(),
        want.len()
    );
}

/// (a) Thousands of receipted sends over four queues, kill -9 right after the last
/// RECEIPT: after restart each queue holds all of its messages, once, in order.
#[test]
fn receipted_messages_survive_kill9_in_order() {
    let mut broker = Broker::start(BrokerOpts::default());
    let queues: Vec<String> = (0..4).map(|q| format!("/queue/crash-a-{q}")).collect();
    let msgs: Vec<(String, String)> = (0..5000)
        .map(|i| (queues[i % 4].clone(), format!("a-{}-{i:05}", i % 4)))
        .collect();
    send_all(&mut broker.client(), &msgs, &[]);
    broker.kill9();
    broker.restart();
    for q in &queues {
        let want: Vec<String> = msgs
            .iter()
            .filter(|(d, _)| d == q)
            .map(|(_, b)| b.clone())
            .collect();
        assert_queue_holds(&broker, q, &want);
    }
}

/// (b) Messages acknowledged (client-individual, ACK with receipt) before kill -9
/// never come back; the unacknowledged rest does, in order.
#[test]
fn acked_messages_do_not_come_back_after_kill9() {
    let mut broker = Broker::start(BrokerOpts::default());
    let dest = "/queue/crash-b";
    let msgs: Vec<(String, String)> = (0..300)
        .map(|i| (dest.to_string(), format!("b-{i:04}")))
        .collect();
    send_all(&mut broker.client(), &msgs, &[]);

    let mut consumer = broker.client();
    consumer.subscribe("c", dest, "client-individual");
    // All 300 fit in the default prefetch: receive them all, then acknowledge, so
    // no MESSAGE interleaves with the ACK receipts.
    let received: Vec<_> = msgs.iter().map(|_| consumer.expect_message()).collect();
    let mut kept = Vec::new();
    for (i, ((_, body), m)) in msgs.iter().zip(&received).enumerate() {
        assert_eq!(&m.body_str(), body);
        if i % 3 == 2 {
            kept.push(body.clone()); // never acknowledged
            continue;
        }
        let ack = m
            .header("ack")
            .expect("MESSAGE without ack header (1.2)")
            .to_string();
        consumer.send_frame(
            "ACK",
            &[("id", &ack), ("receipt", &format!("ack-{i}"))],
            b"",
        );
        consumer.expect_receipt(&format!("ack-{i}"));
    }
    broker.kill9();
    broker.restart();
    assert_queue_holds(&broker, dest, &kept);
}

/// (c) Committed transactions (receipt on COMMIT) survive kill -9 whole; the one
/// still open when the broker dies leaves nothing. Each transaction writes to eight
/// queues, so with two shards every commit spans shards.
#[test]
fn committed_transactions_survive_and_open_one_vanishes() {
    let mut broker = Broker::start(BrokerOpts::default());
    let queues: Vec<String> = (0..8).map(|q| format!("/queue/crash-c-{q}")).collect();
    let mut producer = broker.client();
    let mut want: HashMap<&String, Vec<String>> = HashMap::new();
    for tx in 0..30 {
        let id = format!("tx-{tx}");
        producer.send_frame("BEGIN", &[("transaction", &id)], b"");
        for k in 0..10 {
            let q = &queues[(tx + k) % queues.len()];
            let body = format!("c-{tx:02}-{k}");
            producer.send_frame(
                "SEND",
                &[
                    ("destination", q),
                    ("persistent", "true"),
                    ("transaction", &id),
                ],
                body.as_bytes(),
            );
            want.entry(q).or_default().push(body);
        }
        producer.send_frame("COMMIT", &[("transaction", &id), ("receipt", &id)], b"");
        producer.expect_receipt(&id);
    }
    // The open transaction: its sends are receipted (the broker has them) but never
    // committed.
    producer.send_frame("BEGIN", &[("transaction", "open")], b"");
    for k in 0..10 {
        let q = &queues[k % queues.len()];
        let receipt = format!("open-{k}");
        producer.send_frame(
            "SEND",
            &[
                ("destination", q),
                ("persistent", "true"),
                ("transaction", "open"),
                ("receipt", &receipt),
            ],
            format!("open-{k}").as_bytes(),
        );
        producer.expect_receipt(&receipt);
    }
    broker.kill9();
    broker.restart();
    for q in &queues {
        assert_queue_holds(&broker, q, &want[q]);
    }
}

// ---- (d) a torn journal tail -----------------------------------------------------

/// One journal record found by walking a segment file (see src/store/format.rs):
/// `len:u32 crc:u32 payload`, 8-byte aligned, from offset 4096, ending at `len == 0`.
struct Rec {
    offset: u64,
    payload_end: u64,
    framed_end: u64,
    payload: Vec<u8>,
}

fn walk_segment(bytes: &[u8]) -> Vec<Rec> {
    let mut recs = Vec::new();
    let mut at = 4096usize;
    while at + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        if len == 0 || len == u32::MAX || at + 8 + len as usize > bytes.len() {
            break;
        }
        let framed = (8 + len as usize).div_ceil(8) * 8;
        recs.push(Rec {
            offset: at as u64,
            payload_end: (at + 8 + len as usize) as u64,
            framed_end: (at + framed) as u64,
            payload: bytes[at + 8..at + 8 + len as usize].to_vec(),
        });
        at += framed;
    }
    recs
}

fn segments(journal: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for shard in fs::read_dir(journal).expect("journal dir").flatten() {
        for seg in fs::read_dir(shard.path()).expect("shard dir").flatten() {
            if seg.path().extension().is_some_and(|e| e == "log") {
                out.push(seg.path());
            }
        }
    }
    out.sort();
    out
}

fn find_marker(payload: &[u8]) -> Option<usize> {
    let at = payload.windows(7).position(|w| w == b"d-body-")?;
    std::str::from_utf8(&payload[at + 7..at + 12])
        .ok()?
        .parse()
        .ok()
}

/// Sends 1500 messages, kills the broker, overwrites the journal from a random byte of
/// the written region to its end (`garbage`: random bytes, else zeros), restarts.
/// Every message whose record ends before the cut is there, nothing after it, no
/// duplicates; and the broker keeps working, durably, after the cut.
fn torn_tail(garbage: bool) {
    let seed = support::seed_from_env(if garbage {
        "torn_tail_garbage"
    } else {
        "torn_tail_zeros"
    });
    let mut rng = Rng(seed);
    let mut broker = Broker::start(BrokerOpts::default());
    let dest = "/queue/crash-d";
    // ~1.6 MB of records with 1 MB segments: the log rolls over once, and the cut
    // lands in the last segment.
    let pad = "p".repeat(1000);
    let msgs: Vec<(String, String)> = (0..1500)
        .map(|i| (dest.to_string(), format!("d-body-{i:05}-{pad}")))
        .collect();
    send_all(&mut broker.client(), &msgs, &[]);
    broker.kill9();

    // The segment holding the last message records, and where its written data ends.
    let mut located: Vec<(PathBuf, Vec<Rec>)> = segments(&broker.journal_dir())
        .into_iter()
        .map(|p| {
            let recs = walk_segment(&fs::read(&p).unwrap());
            (p, recs)
        })
        .filter(|(_, recs)| recs.iter().any(|r| find_marker(&r.payload).is_some()))
        .collect();
    let (path, recs) = located.pop().expect("no segment holds the messages");
    let first = recs
        .iter()
        .find(|r| find_marker(&r.payload).is_some())
        .unwrap()
        .offset;
    let written_end = recs.last().unwrap().framed_end;
    let mut cut = first + rng.below(written_end - first);
    // A cut inside a record's zero padding would leave zeros as zeros: move it to the
    // next record so "before the cut" is unambiguous.
    if let Some(r) = recs
        .iter()
        .find(|r| cut >= r.payload_end && cut < r.framed_end)
    {
        cut = r.framed_end;
    }
    let mut before: HashSet<usize> = HashSet::new();
    for (_, rs) in &located {
        before.extend(rs.iter().filter_map(|r| find_marker(&r.payload)));
    }
    before.extend(
        recs.iter()
            .filter(|r| r.payload_end <= cut)
            .filter_map(|r| find_marker(&r.payload)),
    );
    eprintln!(
        "cutting {} at {cut} (records from {first}, written to {written_end}); {} messages before",
        path.display(),
        before.len()
    );

    let mut bytes = fs::read(&path).unwrap();
    for b in &mut bytes[cut as usize..written_end as usize] {
        *b = if garbage { rng.next() as u8 } else { 0 };
    }
    fs::write(&path, &bytes).unwrap();

    broker.restart();
    let want: Vec<String> = msgs
        .iter()
        .enumerate()
        .filter(|(i, _)| before.contains(i))
        .map(|(_, (_, b))| b.clone())
        .collect();
    assert_queue_holds(&broker, dest, &want);

    // Appending after the repaired tail works and is durable too.
    let after: Vec<(String, String)> = (0..50)
        .map(|i| ("/queue/crash-d-after".to_string(), format!("after-{i}")))
        .collect();
    send_all(&mut broker.client(), &after, &[]);
    broker.kill9();
    broker.restart();
    let want_after: Vec<String> = after.into_iter().map(|(_, b)| b).collect();
    assert_queue_holds(&broker, "/queue/crash-d-after", &want_after);
}

#[test]
fn torn_tail_of_zeros_loses_only_what_follows_the_cut() {
    torn_tail(false);
}

#[test]
fn torn_tail_of_garbage_loses_only_what_follows_the_cut() {
    torn_tail(true);
}

/// (e) A backlog of five times the memory limit (8 MB limit, 40 MB of 4 KiB
/// persistent messages) is accepted and drains completely, in order, while the
/// broker's resident memory stays bounded.
#[test]
fn backlog_over_memory_limit_drains_in_order_with_bounded_rss() {
    const LIMIT: u64 = 8 << 20;
    const RSS_BOUND: u64 = LIMIT * 4 + (100 << 20);
    let broker = Broker::start(BrokerOpts::default());
    let dest = "/queue/crash-e";
    let count = 10_240; // x 4 KiB = 40 MiB
    let mut peak = broker.rss_bytes();
    let mut producer = broker.client();
    for chunk in 0..count / 512 {
        let msgs: Vec<(String, String)> = (chunk * 512..(chunk + 1) * 512)
            .map(|i| (dest.to_string(), format!("{i:06}-{}", "e".repeat(4096 - 7))))
            .collect();
        send_all(&mut producer, &msgs, &[]);
        peak = peak.max(broker.rss_bytes());
    }
    let mut consumer = broker.client();
    consumer.send_frame(
        "SUBSCRIBE",
        &[
            ("id", "e"),
            ("destination", dest),
            ("ack", "client-individual"),
            ("activemq.prefetchSize", "100"),
        ],
        b"",
    );
    for i in 0..count {
        let m = consumer.expect_message();
        assert_eq!(
            &m.body[..6],
            format!("{i:06}").as_bytes(),
            "out of order at {i}"
        );
        assert_eq!(m.body.len(), 4096);
        consumer.send_frame("ACK", &[("id", m.header("ack").expect("ack header"))], b"");
        if i % 512 == 0 {
            peak = peak.max(broker.rss_bytes());
        }
    }
    eprintln!(
        "backlog: peak RSS {} MiB (bound {} MiB)",
        peak >> 20,
        RSS_BOUND >> 20
    );
    assert!(
        peak < RSS_BOUND,
        "peak RSS {} MiB over the bound of {} MiB",
        peak >> 20,
        RSS_BOUND >> 20
    );
    let mut producer = broker.client();
    producer.send_receipted(dest, b"sentinel", "sentinel");
    assert_eq!(consumer.expect_message().body_str(), "sentinel");
}

/// kill -9 in the middle of a steady load: four producers pipelining receipted sends
/// to two queues. After two restarts (recovery must be repeatable), every receipted
/// message is there exactly once, nothing unknown is, and each producer's messages
/// keep their order.
#[test]
fn kill9_under_load_loses_nothing_receipted() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let mut broker = Broker::start(BrokerOpts::default());
    let receipted_total = Arc::new(AtomicUsize::new(0));
    let producers: Vec<_> = (0..4)
        .map(|p| {
            let port = broker.port;
            let total = receipted_total.clone();
            std::thread::spawn(move || produce_until_closed(port, p, &total))
        })
        .collect();
    assert!(
        support::poll_until(Duration::from_secs(60), || receipted_total
            .load(Ordering::Relaxed)
            >= 3000),
        "producers did not get 3000 receipts"
    );
    broker.kill9();
    let results: Vec<(Vec<String>, HashSet<String>)> =
        producers.into_iter().map(|h| h.join().unwrap()).collect();
    broker.restart();
    broker.kill9();
    broker.restart();

    for q in 0..2 {
        let dest = format!("/queue/load-{q}");
        let got = drain_until_sentinel(&broker, &dest, 100_000);
        let mut seen = HashSet::new();
        let dups: Vec<&String> = got.iter().filter(|b| !seen.insert(*b)).take(5).collect();
        assert!(
            dups.is_empty(),
            "{dest}: duplicated after restart: {dups:?}"
        );
        for (p, (sent, receipted)) in results.iter().enumerate().filter(|(p, _)| p % 2 == q) {
            let lost: Vec<&String> = receipted
                .iter()
                .filter(|b| !seen.contains(b))
                .take(5)
                .collect();
            assert!(
                lost.is_empty(),
                "{dest}: producer {p} lost receipted messages (of {}): {lost:?}",
                receipted.len()
            );
            let order: Vec<&String> = got
                .iter()
                .filter(|b| b.starts_with(&format!("p{p}-")))
                .collect();
            assert!(
                order.windows(2).all(|w| w[0] < w[1]),
                "{dest}: producer {p}'s messages out of order"
            );
            let sent: HashSet<&String> = sent.iter().collect();
            assert!(
                order.iter().all(|b| sent.contains(b)),
                "{dest}: a message nobody sent"
            );
        }
    }
}

/// One producer: pipelined receipted sends to `/queue/load-{p % 2}` until the broker
/// goes away. Returns (everything written, everything receipted).
fn produce_until_closed(
    port: u16,
    p: usize,
    receipted_total: &std::sync::atomic::AtomicUsize,
) -> (Vec<String>, HashSet<String>) {
    let mut conn = Stomp::connect(port);
    let dest = format!("/queue/load-{}", p % 2);
    let (mut sent, mut receipted) = (Vec::new(), HashSet::new());
    let mut outstanding = 0;
    for i in 0..1_000_000 {
        if outstanding >= 16 {
            match conn.read_frame(REPLY_TIMEOUT) {
                Ok(f) if f.command == "RECEIPT" => {
                    let body = f.header("receipt-id").unwrap().to_string();
                    receipted.insert(body);
                    receipted_total.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    outstanding -= 1;
                    continue;
                }
                Ok(f) => panic!("producer {p}: unexpected {f:?}"),
                Err(_) => break, // the broker is gone
            }
        }
        // Zero-padded so lexical order is send order; the receipt id is the body.
        let body = format!("p{p}-{i:07}");
        let frame = support::encode(
            "SEND",
            &[
                ("destination", &dest),
                ("persistent", "true"),
                ("receipt", &body),
            ],
            body.as_bytes(),
        );
        if conn.try_send_raw(&frame).is_err() {
            break;
        }
        sent.push(body);
        outstanding += 1;
    }
    (sent, receipted)
}

/// Everything `dest` holds, read until a sentinel sent after subscribing arrives.
fn drain_until_sentinel(broker: &Broker, dest: &str, max: usize) -> Vec<String> {
    let mut consumer = broker.client();
    consumer.subscribe("drain", dest, "auto");
    broker
        .client()
        .send_receipted(dest, b"sentinel", "sentinel");
    let mut got = Vec::new();
    for _ in 0..max {
        let body = consumer.expect_message().body_str();
        if body == "sentinel" {
            return got;
        }
        got.push(body);
    }
    panic!("{dest}: no sentinel after {max} messages");
}

/// Bodies and headers come back byte-exact after kill -9: binary bodies with NULs,
/// header values needing escapes, a 200 KiB body.
#[test]
fn exact_bytes_survive_kill9() {
    let mut broker = Broker::start(BrokerOpts::default());
    let dest = "/queue/crash-exact";
    let binary: Vec<u8> = (0..4096u32).map(|i| (i % 256) as u8).collect();
    let big: Vec<u8> = (0..200 * 1024u32).map(|j| (j * 7) as u8).collect();
    let weird = "a:b\nc\\d é";
    let mut producer = broker.client();
    producer.send_frame(
        "SEND",
        &[
            ("destination", dest),
            ("persistent", "true"),
            ("x-weird", weird),
            ("receipt", "bin"),
        ],
        &binary,
    );
    producer.expect_receipt("bin");
    producer.send_frame(
        "SEND",
        &[
            ("destination", dest),
            ("persistent", "true"),
            ("receipt", "big"),
        ],
        &big,
    );
    producer.expect_receipt("big");
    broker.kill9();
    broker.restart();
    let mut consumer = broker.client();
    consumer.subscribe("x", dest, "auto");
    let m = consumer.expect_message();
    assert!(
        m.body == binary,
        "binary body differs: {} bytes",
        m.body.len()
    );
    assert_eq!(m.header("x-weird"), Some(weird), "{m:?}");
    let m = consumer.expect_message();
    assert!(
        m.body == big,
        "200 KiB body differs: {} bytes",
        m.body.len()
    );
}

/// A message within maxFrameSize (64 MB by default) but larger than a journal segment
/// (journalMaxFileLength, 1 MB here) is accepted and survives kill -9, as KahaDB
/// accepts records larger than its file length.
#[test]
fn message_larger_than_a_journal_segment_is_stored() {
    let mut broker = Broker::start(BrokerOpts::default());
    let dest = "/queue/crash-huge";
    let body: Vec<u8> = (0..3u32 << 20).map(|j| (j * 13) as u8).collect();
    let mut producer = broker.client();
    producer.send_frame(
        "SEND",
        &[
            ("destination", dest),
            ("persistent", "true"),
            ("receipt", "huge"),
        ],
        &body,
    );
    let reply = producer
        .read_frame(REPLY_TIMEOUT)
        .expect("reply to a 3 MiB SEND");
    assert_eq!(
        reply.command,
        "RECEIPT",
        "3 MiB SEND (segment 1 MB, maxFrameSize 64 MB) refused: message {:?}, body {:?}",
        reply.header("message"),
        reply.body_str()
    );
    broker.kill9();
    broker.restart();
    let mut consumer = broker.client();
    consumer.subscribe("x", dest, "auto");
    let m = consumer.expect_message();
    assert!(m.body == body, "3 MiB body differs: {} bytes", m.body.len());
}

/// kill -9 while three producers pipeline cross-shard transactions (10 sends over 8
/// queues each, up to 4 COMMITs awaiting their receipt): after restart every
/// transaction is all-or-nothing, every receipted COMMIT is whole, nothing repeats.
#[test]
fn kill9_during_cross_shard_commits_is_all_or_nothing() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let mut broker = Broker::start(BrokerOpts::default());
    let committed_total = Arc::new(AtomicUsize::new(0));
    let producers: Vec<_> = (0..3)
        .map(|p| {
            let port = broker.port;
            let total = committed_total.clone();
            std::thread::spawn(move || commit_until_closed(port, p, &total))
        })
        .collect();
    assert!(
        support::poll_until(Duration::from_secs(60), || committed_total
            .load(Ordering::Relaxed)
            >= 150),
        "producers did not get 150 COMMIT receipts in 60 s (got {}; finished producers: {:?})",
        committed_total.load(Ordering::Relaxed),
        producers
            .iter()
            .map(|h| h.is_finished())
            .collect::<Vec<_>>()
    );
    broker.kill9();
    let committed: HashSet<String> = producers
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    broker.restart();

    let mut per_tx: HashMap<String, usize> = HashMap::new();
    let mut seen = HashSet::new();
    for q in 0..8 {
        let dest = format!("/queue/txload-{q}");
        let got = drain_until_sentinel(&broker, &dest, 100_000);
        for body in &got {
            assert!(seen.insert(body.clone()), "{dest}: {body} delivered twice");
            let tx = body.rsplit_once('-').unwrap().0.to_string();
            *per_tx.entry(tx).or_default() += 1;
        }
        // Per producer, transactions commit in order.
        for p in 0..3 {
            let mine: Vec<&String> = got
                .iter()
                .filter(|b| b.starts_with(&format!("t{p}-")))
                .collect();
            let inversion = mine.windows(2).find(|w| w[0] >= w[1]);
            assert!(
                inversion.is_none(),
                "{dest}: producer {p} out of order: {inversion:?} (of {})",
                mine.len()
            );
        }
    }
    let mut partial: Vec<String> = per_tx
        .iter()
        .filter(|(_, n)| **n != 10)
        .map(|(tx, _)| {
            let missing: Vec<usize> = (0..10)
                .filter(|k| !seen.contains(&format!("{tx}-{k}")))
                .collect();
            let receipted = if committed.contains(tx) {
                "receipted"
            } else {
                "in doubt"
            };
            format!("{tx} ({receipted}) lacks sends {missing:?}")
        })
        .collect();
    partial.sort();
    assert!(
        partial.is_empty(),
        "transactions neither whole nor absent: {partial:#?}"
    );
    let lost: Vec<&String> = committed
        .iter()
        .filter(|t| !per_tx.contains_key(*t))
        .collect();
    assert!(
        lost.is_empty(),
        "receipted COMMITs missing after restart: {lost:?}"
    );
    eprintln!(
        "{} receipted commits, {} transactions present",
        committed.len(),
        per_tx.len()
    );
}

/// One producer of transactions `t{p}-{n:06}`, each 10 sends spread over 8 queues,
/// COMMIT with receipt, up to 4 receipts outstanding. Returns the receipted ones.
fn commit_until_closed(
    port: u16,
    p: usize,
    total: &std::sync::atomic::AtomicUsize,
) -> HashSet<String> {
    let mut conn = Stomp::connect(port);
    let mut committed = HashSet::new();
    let mut outstanding = 0;
    'txs: for n in 0..100_000 {
        while outstanding >= 4 {
            match conn.read_frame(REPLY_TIMEOUT) {
                Ok(f) if f.command == "RECEIPT" => {
                    committed.insert(f.header("receipt-id").unwrap().to_string());
                    total.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    outstanding -= 1;
                }
                Ok(f) => panic!("producer {p}: unexpected {f:?}"),
                Err(_) => break 'txs,
            }
        }
        let tx = format!("t{p}-{n:06}");
        let mut bytes = support::encode("BEGIN", &[("transaction", &tx)], b"");
        for k in 0..10 {
            let dest = format!("/queue/txload-{}", (n + k) % 8);
            let body = format!("{tx}-{k}");
            bytes.extend(support::encode(
                "SEND",
                &[
                    ("destination", &dest),
                    ("persistent", "true"),
                    ("transaction", &tx),
                ],
                body.as_bytes(),
            ));
        }
        bytes.extend(support::encode(
            "COMMIT",
            &[("transaction", &tx), ("receipt", &tx)],
            b"",
        ));
        if conn.try_send_raw(&bytes).is_err() {
            break;
        }
        outstanding += 1;
    }
    committed
}

/// The control for the test above, without a crash: pipelined cross-shard commits
/// from one session arrive whole and in commit order on every queue.
#[test]
fn pipelined_cross_shard_commits_keep_order_without_crash() {
    let broker = Broker::start(BrokerOpts::default());
    let mut conn = broker.client();
    let mut want: HashMap<String, Vec<String>> = HashMap::new();
    let mut bytes = Vec::new();
    for n in 0..100 {
        let tx = format!("t0-{n:06}");
        bytes.extend(support::encode("BEGIN", &[("transaction", &tx)], b""));
        for k in 0..10 {
            let dest = format!("/queue/txorder-{}", (n + k) % 8);
            let body = format!("{tx}-{k}");
            bytes.extend(support::encode(
                "SEND",
                &[
                    ("destination", &dest),
                    ("persistent", "true"),
                    ("transaction", &tx),
                ],
                body.as_bytes(),
            ));
            want.entry(dest).or_default().push(body);
        }
        bytes.extend(support::encode(
            "COMMIT",
            &[("transaction", &tx), ("receipt", &tx)],
            b"",
        ));
        if n % 4 == 3 {
            conn.send_raw(&bytes);
            bytes.clear();
            for m in n - 3..=n {
                conn.expect_receipt(&format!("t0-{m:06}"));
            }
        }
    }
    for q in 0..8 {
        let dest = format!("/queue/txorder-{q}");
        let got = drain_until_sentinel(&broker, &dest, 10_000);
        assert_same_sequence(&got, &want[&dest], &dest);
    }
}

/// kill -9 while a consumer acknowledges (client-individual, a receipt on every ACK):
/// after restart no message whose ACK was receipted comes back, every message never
/// acknowledged does, once and in order.
#[test]
fn kill9_while_acking_never_resurrects_receipted_acks() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let mut broker = Broker::start(BrokerOpts::default());
    let dest = "/queue/crash-acking";
    let msgs: Vec<(String, String)> = (0..3000)
        .map(|i| (dest.to_string(), format!("k-{i:05}")))
        .collect();
    send_all(&mut broker.client(), &msgs, &[]);

    let acked_total = Arc::new(AtomicUsize::new(0));
    let port = broker.port;
    let counter = acked_total.clone();
    let consumer = std::thread::spawn(move || {
        let mut c = Stomp::connect(port);
        c.subscribe("k", dest, "client-individual");
        let (mut ack_sent, mut ack_receipted) = (HashSet::new(), HashSet::new());
        for _ in 0..10_000 {
            match c.read_frame(REPLY_TIMEOUT) {
                Ok(f) if f.command == "MESSAGE" => {
                    let body = f.body_str();
                    let ack = support::encode(
                        "ACK",
                        &[("id", f.header("ack").unwrap()), ("receipt", &body)],
                        b"",
                    );
                    if c.try_send_raw(&ack).is_err() {
                        break;
                    }
                    ack_sent.insert(body);
                }
                Ok(f) if f.command == "RECEIPT" => {
                    ack_receipted.insert(f.header("receipt-id").unwrap().to_string());
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                Ok(f) => panic!("consumer: unexpected {f:?}"),
                Err(_) => break,
            }
        }
        (ack_sent, ack_receipted)
    });
    assert!(
        support::poll_until(Duration::from_secs(60), || acked_total
            .load(Ordering::Relaxed)
            >= 1000),
        "fewer than 1000 ACK receipts in 60 s ({})",
        acked_total.load(Ordering::Relaxed)
    );
    broker.kill9();
    let (ack_sent, ack_receipted) = consumer.join().unwrap();
    broker.restart();

    let got = drain_until_sentinel(&broker, dest, 10_000);
    let resurrected: Vec<&String> = got
        .iter()
        .filter(|b| ack_receipted.contains(*b))
        .take(5)
        .collect();
    assert!(
        resurrected.is_empty(),
        "receipted ACKs undone by kill -9 (of {}): {resurrected:?}",
        ack_receipted.len()
    );
    let got_set: HashSet<&String> = got.iter().collect();
    assert_eq!(got_set.len(), got.len(), "duplicates after restart");
    let lost: Vec<&String> = msgs
        .iter()
        .map(|(_, b)| b)
        .filter(|b| !ack_sent.contains(*b) && !got_set.contains(b))
        .take(5)
        .collect();
    assert!(
        lost.is_empty(),
        "never-acknowledged messages lost: {lost:?}"
    );
    assert!(
        got.windows(2).all(|w| w[0] < w[1]),
        "redelivered out of order"
    );
}

/// The clean path: SIGTERM stops the broker with exit status 0, and a restart finds
/// every message (receipted and not) with none acknowledged coming back.
#[test]
fn sigterm_exits_zero_and_restart_keeps_messages() {
    let mut broker = Broker::start(BrokerOpts::default());
    let dest = "/queue/clean-stop";
    let msgs: Vec<(String, String)> = (0..500)
        .map(|i| (dest.to_string(), format!("s-{i:04}")))
        .collect();
    send_all(&mut broker.client(), &msgs, &[]);
    let mut consumer = broker.client();
    consumer.subscribe("s", dest, "client-individual");
    let mut receipts = HashSet::new();
    let mut messages = 0;
    // MESSAGEs (prefetch) and RECEIPTs interleave: ACK the first 100 messages, then
    // read on until all 100 ACK receipts are in.
    for _ in 0..1000 {
        if receipts.len() == 100 {
            break;
        }
        let f = consumer
            .read_frame(REPLY_TIMEOUT)
            .expect("MESSAGE or RECEIPT");
        match f.command.as_str() {
            "MESSAGE" if messages < 100 => {
                assert_eq!(f.body_str(), msgs[messages].1);
                let receipt = format!("ack-{messages}");
                consumer.send_frame(
                    "ACK",
                    &[("id", f.header("ack").unwrap()), ("receipt", &receipt)],
                    b"",
                );
                messages += 1;
            }
            "MESSAGE" => {}
            "RECEIPT" => assert!(receipts.insert(f.header("receipt-id").unwrap().to_string())),
            _ => panic!("unexpected {f:?}"),
        }
    }
    assert_eq!(receipts.len(), 100);
    drop(consumer);
    let status = broker.stop();
    assert!(
        status.success(),
        "SIGTERM: exit status {status}; log:\n{}",
        broker.log()
    );
    broker.restart();
    let want: Vec<String> = msgs[100..].iter().map(|(_, b)| b.clone()).collect();
    assert_queue_holds(&broker, dest, &want);
}
