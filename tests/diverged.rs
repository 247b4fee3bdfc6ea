//! Diverged records after a split brain: a reset that holds records its master never
//! had sets them aside instead of deleting them (`Journal::reset_diverged`, the
//! broker's analysis of what they stored, `Shard::reset_diverged` and its counters),
//! and `tandem journal replay-diverged` resends their messages to a real broker, once.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tandem::broker::diverged::Analysis;
use tandem::broker::record::Record;
use tandem::broker::shard::{Shard, ShardSetup};
use tandem::broker::BrokerSettings;
use tandem::broker::{BodyType, Destination, Message};
use tandem::client::openwire::{Client as OwClient, OpenWireOptions, PrimitiveValue};
use tandem::client::{AckMode, Client, ClientOptions};
use tandem::metrics::{DivergedCounters, ShardStats};
use tandem::rt;
use tandem::store::diverged::{list_sets, walk_set};
use tandem::store::verify::{self, End};
use tandem::store::{format, Journal, JournalConfig, OnDamage, Position};

use support::{free_port, run_bounded, tandem_bin, Broker, BrokerOpts};

/// 16 KiB segments: a few dozen 1 KiB messages span several.
const SMALL_SEGMENT: u64 = 16 * 1024;

fn cfg(dir: &Path, segment_bytes: u64) -> JournalConfig {
    JournalConfig {
        dir: dir.to_path_buf(),
        segment_bytes,
        max_batch_bytes: 1 << 20,
        first_segment: 1,
        on_damage: OnDamage::Refuse,
    }
}

fn enqueue(id: &str, dest: &Destination, seq: u64, body: Vec<u8>) -> Record {
    Record::Enqueue {
        seq,
        redeliveries: 0,
        message: Arc::new(Message {
            id: id.into(),
            destination: dest.clone(),
            persistent: true,
            priority: 4,
            timestamp_ms: 1,
            expires_ms: 0,
            reply_to: None,
            headers: vec![("color".into(), "blue".into())],
            body: Bytes::from(body),
            body_type: BodyType::TEXT,
            properties: Vec::new(),
        }),
        targets: Vec::new(),
    }
}

fn ack(dest: &Destination, seq: u64) -> Record {
    Record::Ack {
        destination: dest.clone(),
        durable: None,
        seqs: vec![seq],
    }
}

/// Appends `records` and waits until they are durable.
async fn append(j: &Journal, records: &[Record]) {
    let mut end = Position(0);
    for r in records {
        end = j.append(&r.encode()).unwrap().end;
    }
    j.wait_durable(end).await.unwrap();
}

/// `(file name, bytes)` of every segment file in `dir`.
fn segment_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| {
            e.file_name()
                .to_str()
                .and_then(format::parse_segment_file_name)
                .is_some()
        })
        .map(|e| {
            (
                e.file_name().into_string().unwrap(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

/// The ids of the messages a replay of `set` would resend, in order.
fn replayable(set: &Path, from: Position) -> Vec<String> {
    let mut a = Analysis::new(true);
    walk_set(set, from, &mut |at, payload, diverged| {
        a.record(at, payload, diverged)
    })
    .unwrap();
    a.finish().messages.into_iter().map(|m| m.id).collect()
}

#[test]
fn records_beyond_from_are_set_aside_intact_and_replay_finds_their_messages() {
    let dir = tempfile::tempdir().unwrap();
    rt::run_local(async {
        let (j, _) = Journal::open(cfg(dir.path(), SMALL_SEGMENT)).await.unwrap();
        let q = Destination::queue("orders");
        // Before the divergence (the master has these too): p0..p9, p0..p2 acked.
        let mut prefix: Vec<Record> = (0..10)
            .map(|i| enqueue(&format!("p{i}"), &q, i, vec![b'p'; 100]))
            .collect();
        prefix.extend((0..3).map(|i| ack(&q, i)));
        append(&j, &prefix).await;
        let from = j.appended_position();
        // What only this node stored: d0..d29 (1 KiB each, several segments), an ack
        // of an old message (the master still has it), acks of d3 and (in a
        // transaction that also stores t0) d4, and p7 journaled again by reclamation.
        let mut diverged: Vec<Record> = (0..30)
            .map(|i| enqueue(&format!("d{i}"), &q, 10 + i, vec![b'd'; 1024]))
            .collect();
        diverged.push(ack(&q, 5));
        diverged.push(ack(&q, 13));
        diverged.push(Record::Tx(vec![
            enqueue("t0", &q, 40, b"t".to_vec()),
            ack(&q, 14),
        ]));
        diverged.push(enqueue("p7", &q, 7, vec![b'p'; 100]));
        append(&j, &diverged).await;
        let before = segment_files(dir.path());
        assert!(before.len() >= 3, "the diverged records span segments");

        let start = Position::new(j.active_segment() + 10, format::HEADER_BYTES);
        let set = j
            .reset_diverged(start, from, 42, Box::new(Analysis::new(false)))
            .await
            .unwrap()
            .expect("records diverged");
        let name = set.dir.file_name().unwrap().to_str().unwrap().to_string();
        assert!(name.starts_with("diverged-e42-"), "{name}");
        assert_eq!(set.info.from, from);
        assert_eq!(set.info.epoch, 42);
        assert_eq!(set.info.records, diverged.len() as u64);
        assert_eq!(
            set.info.count("messages"),
            Some(29),
            "d0..d29 but d3, d4; plus t0"
        );
        assert_eq!(set.info.count("removed"), Some(2));
        assert_eq!(set.info.count("copies"), Some(1));

        // The journal is reset as before: no segment left, the log restarts at `start`.
        assert!(segment_files(dir.path()).is_empty());
        assert_eq!(j.next_position(), start);
        // Every segment it had is in the set, byte for byte (a pre-created, empty
        // next segment may be there too).
        let aside = segment_files(&set.dir);
        for (name, bytes) in &before {
            let copy = aside
                .iter()
                .find(|(n, _)| n == name)
                .expect("segment set aside");
            assert!(copy.1 == *bytes, "{name} differs from the original");
        }
        assert_eq!(list_sets(dir.path()).unwrap(), vec![set.dir.clone()]);

        let mut want: Vec<String> = (0..30)
            .filter(|i| *i != 3 && *i != 4)
            .map(|i| format!("d{i}"))
            .collect();
        want.push("t0".into());
        assert_eq!(replayable(&set.dir, from), want);
        j.close().await.unwrap();

        // The set-aside directory is no part of the log.
        let mut again = cfg(dir.path(), SMALL_SEGMENT);
        again.first_segment = start.segment();
        let (j, records) = Journal::open(again).await.unwrap();
        assert!(records.is_empty());
        j.close().await.unwrap();
    });
}

#[test]
fn nothing_beyond_from_is_deleted_as_before() {
    let dir = tempfile::tempdir().unwrap();
    rt::run_local(async {
        let (j, _) = Journal::open(cfg(dir.path(), SMALL_SEGMENT)).await.unwrap();
        let q = Destination::queue("a");
        let records: Vec<Record> = (0..20)
            .map(|i| enqueue(&format!("m{i}"), &q, i, vec![b'm'; 1024]))
            .collect();
        append(&j, &records).await;
        let end = j.appended_position();
        for from in [end, Position::new(end.segment() + 3, format::HEADER_BYTES)] {
            let start = Position::new(j.next_position().segment() + 1, format::HEADER_BYTES);
            let set = j
                .reset_diverged(start, from, 1, Box::new(Analysis::new(false)))
                .await
                .unwrap();
            assert!(set.is_none(), "nothing diverged before {from}");
            assert!(segment_files(dir.path()).is_empty());
            assert!(list_sets(dir.path()).unwrap().is_empty());
            let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
            assert!(names.is_empty(), "no directory left behind: {names:?}");
            assert_eq!(j.next_position(), start);
        }
        j.close().await.unwrap();
    });
}

#[test]
fn a_shard_reset_sets_diverged_records_aside_and_counts_them() {
    let dir = tempfile::tempdir().unwrap();
    let journal_dir = dir.path().join("shard-0");
    rt::run_local(async {
        let q = Destination::queue("a");
        let (j, _) = Journal::open(cfg(&journal_dir, SMALL_SEGMENT))
            .await
            .unwrap();
        append(&j, &[enqueue("p0", &q, 0, b"p".to_vec())]).await;
        let from = j.appended_position();
        let diverged = [
            enqueue("d0", &q, 1, b"d".to_vec()),
            enqueue("d1", &q, 2, b"d".to_vec()),
            ack(&q, 1),
        ];
        append(&j, &diverged).await;
        j.close().await.unwrap();

        let stats = Arc::new(ShardStats::new(0, false));
        let mesh = rt::channel::mesh(1, 16).pop().unwrap();
        let (shard, _router) = Shard::open(ShardSetup {
            shard: 0,
            shard_count: 1,
            settings: Arc::new(BrokerSettings::default()),
            journal_dir: journal_dir.clone(),
            segment_bytes: SMALL_SEGMENT,
            on_damage: OnDamage::Refuse,
            mesh,
            boot_id: "t".into(),
            stats: stats.clone(),
            registries: Arc::default(),
            ship: Box::new(|_, _| {}),
            ship_volatile: Box::new(|_| {}),
            on_journal_failure: Box::new(|_| {}),
        })
        .await
        .unwrap();
        assert_eq!(stats.journal().diverged, DivergedCounters::default());
        let start = Position::new(50, format::HEADER_BYTES);
        let set = shard.reset_diverged(start, from, 3).await.unwrap().unwrap();
        assert_eq!(shard.next_position(), start);
        assert_eq!((set.info.records, set.info.count("messages")), (3, Some(1)));
        let counted = DivergedCounters {
            sets: 1,
            records: 3,
            messages: 1,
        };
        assert_eq!(stats.journal().diverged, counted);
        // Now nothing is beyond any position: a plain reset, nothing more counted.
        let next = Position::new(60, format::HEADER_BYTES);
        assert!(shard
            .reset_diverged(next, Position(0), 3)
            .await
            .unwrap()
            .is_none());
        assert_eq!(stats.journal().diverged, counted);
        assert_eq!(replayable(&set.dir, from), ["d1"]);
    });
}

/// Where each shard's log ends now (the divergence position if it diverges next).
fn log_ends(journal: &Path, shards: u32) -> Vec<Position> {
    (0..shards)
        .map(|s| {
            let r = verify::walk(&journal.join(format!("shard-{s}")), &mut |_, _| {}).unwrap();
            match r.end {
                End::Clean(p) => p,
                End::Empty => Position(0),
                End::Torn(p, why) => panic!("shard {s}: torn at {p}: {why}"),
            }
        })
        .collect()
}

/// Runs `tandem journal replay-diverged DIR --url URL`: (exit code, stdout).
fn replay(dir: &Path, url: &str) -> (i32, String) {
    let (status, out, err) = run_bounded(
        Command::new(tandem_bin())
            .args(["journal", "replay-diverged"])
            .arg(dir)
            .args(["--url", url])
            .env("NO_COLOR", "1"),
        Duration::from_secs(60),
    )
    .unwrap();
    eprintln!("replay-diverged --url {url}:\n{out}{err}");
    (status.code().unwrap_or(-1), out)
}

/// Every message that arrives on `dest` within a short bound after the last one.
fn drain(c: &Client, dest: &str, want: usize) -> Vec<tandem::client::Message> {
    c.subscribe(dest, AckMode::Auto, &[]).unwrap();
    let mut got = Vec::new();
    while got.len() < want {
        match c.recv(Duration::from_secs(20)).unwrap() {
            Some(m) => got.push(m),
            None => break,
        }
    }
    // Exactly once: nothing more comes.
    if let Some(m) = c.recv(Duration::from_millis(700)).unwrap() {
        got.push(m);
    }
    got
}

#[test]
fn e2e_diverged_messages_are_replayed_to_a_real_broker_once() {
    let opts = BrokerOpts {
        openwire_port: Some(free_port()),
        ..BrokerOpts::default()
    };
    let shards = opts.shards;
    let mut a = Broker::start(opts);
    let stomp_a = format!("stomp://127.0.0.1:{}", a.port);
    // Before the divergence: the master holds these too.
    let c = Client::connect(&stomp_a, ClientOptions::default()).unwrap();
    for i in 0..3 {
        c.send(
            "/queue/old",
            format!("old-{i}").as_bytes(),
            &[("persistent", "true")],
        )
        .unwrap();
    }
    c.close().unwrap();
    a.stop();
    let from = log_ends(&a.journal_dir(), shards);

    // The diverged range: what only this node stored (and partly consumed).
    a.restart();
    let c = Client::connect(&stomp_a, ClientOptions::default()).unwrap();
    for i in 0..5 {
        let (corr, kind) = (format!("c-{i}"), format!("t-{i}"));
        let headers = [
            ("persistent", "true"),
            ("priority", "7"),
            ("correlation-id", corr.as_str()),
            ("type", kind.as_str()),
            ("color", "blue"),
        ];
        c.send("/queue/orders", format!("new-{i}").as_bytes(), &headers)
            .unwrap();
    }
    c.close().unwrap();
    for dest in ["/queue/old", "/queue/orders"] {
        // The first of each consumed: old-0 (the master still has it) and new-0.
        let c = Client::connect(&stomp_a, ClientOptions::default()).unwrap();
        c.subscribe(dest, AckMode::ClientIndividual, &[]).unwrap();
        let m = c.recv(Duration::from_secs(20)).unwrap().expect("a message");
        assert!(String::from_utf8_lossy(&m.body).ends_with("-0"));
        c.ack(&m).unwrap();
        c.close().unwrap();
    }
    let ow = OwClient::connect(
        &format!("tcp://127.0.0.1:{}", a.opts.openwire_port.unwrap()),
        OpenWireOptions {
            text: true,
            ..OpenWireOptions::default()
        },
    )
    .unwrap();
    let props = [
        ("n", PrimitiveValue::Int(5)),
        ("label", PrimitiveValue::string("x")),
    ];
    ow.send("/queue/typed", b"typed", &props, true).unwrap();
    ow.close().unwrap();
    a.stop();

    // A rejoining slave's reset sets each shard's diverged records aside.
    let mut sets: Vec<PathBuf> = Vec::new();
    let mut messages = 0;
    rt::run_local(async {
        for (s, from) in from.iter().enumerate() {
            let dir = a.journal_dir().join(format!("shard-{s}"));
            let (j, _) = Journal::open(cfg(&dir, 1 << 20)).await.unwrap();
            let start = Position::new(1000, format::HEADER_BYTES);
            let analysis = Box::new(Analysis::new(false));
            if let Some(set) = j.reset_diverged(start, *from, 7, analysis).await.unwrap() {
                messages += set.info.count("messages").unwrap();
                sets.push(set.dir);
            }
            j.close().await.unwrap();
        }
    });
    assert!(!sets.is_empty());
    assert_eq!(messages, 5, "new-1..new-4 and the typed one");

    // A fresh broker gets the replay.
    let b = Broker::start(BrokerOpts {
        openwire_port: Some(free_port()),
        ..BrokerOpts::default()
    });
    let data = a.data_dir();
    // STOMP carries text messages with string properties; the typed one is left.
    let (code, out) = replay(&data, &format!("stomp://127.0.0.1:{}", b.port));
    assert_eq!(code, 1, "something left to send");
    assert!(
        out.contains("total: ") && out.contains("sent 4, left for a later run 1"),
        "{out}"
    );
    assert!(out.contains("typed JMS properties"), "{out}");
    // OpenWire, under failover: only what is left.
    let ow_b = format!(
        "failover:(tcp://127.0.0.1:{})?randomize=false",
        b.opts.openwire_port.unwrap()
    );
    let (code, out) = replay(&data, &ow_b);
    assert_eq!(code, 0);
    assert!(out.contains("sent 1, left for a later run 0"), "{out}");
    // Once more: nothing.
    let (code, out) = replay(&data, &ow_b);
    assert_eq!(code, 0);
    assert!(out.contains("already replayed"), "{out}");
    assert!(out.contains("sent 0,"), "{out}");
    // Never deleted.
    for set in &sets {
        assert!(set.join("DIVERGED").is_file() && set.join("REPLAYED").is_file());
    }

    let c = Client::connect(
        &format!("stomp://127.0.0.1:{}", b.port),
        ClientOptions::default(),
    )
    .unwrap();
    let orders = drain(&c, "/queue/orders", 4);
    let bodies: Vec<String> = orders
        .iter()
        .map(|m| String::from_utf8_lossy(&m.body).into())
        .collect();
    assert_eq!(
        bodies,
        ["new-1", "new-2", "new-3", "new-4"],
        "each once, in order"
    );
    let mut originals = std::collections::HashSet::new();
    for (i, m) in orders.iter().enumerate() {
        let n = i + 1;
        assert_eq!(m.header("persistent"), Some("true"));
        assert_eq!(m.header("priority"), Some("7"));
        assert_eq!(m.header("correlation-id"), Some(format!("c-{n}").as_str()));
        assert_eq!(m.header("type"), Some(format!("t-{n}").as_str()));
        assert_eq!(m.header("color"), Some("blue"));
        let original = m.header("TandemReplayedFrom").expect("replay marker");
        assert_ne!(original, m.message_id, "a fresh id");
        assert!(originals.insert(original.to_string()));
    }
    let typed = drain(&c, "/queue/typed", 1);
    assert_eq!(typed.len(), 1);
    assert_eq!(&typed[0].body[..], b"typed");
    assert_eq!(typed[0].header("n"), Some("5"));
    assert_eq!(typed[0].header("label"), Some("x"));
    assert!(typed[0].header("TandemReplayedFrom").is_some());
    assert!(
        drain(&c, "/queue/old", 0).is_empty(),
        "the master's own messages are not resent"
    );
    c.close().unwrap();
}
