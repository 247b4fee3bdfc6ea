//! A damaged journal is never cut (issue 14): real broker processes, real files. A
//! flipped byte, a zeroed 4 KiB block and a truncated segment in the middle of the log
//! each stop start-up with an error naming the damage, deleting nothing; with
//! `--skip-damaged-records` the broker starts and delivers every other confirmed
//! message. A torn tail (garbage after the last record, nothing valid after it) is
//! still cut silently. In a pair, a node that finds damage sets it aside (copied and
//! moved, never deleted) and copies the rest of its log from its peer before it may
//! serve: a damaged slave resumes from the damage, a damaged former master starts over
//! from the new master; either then takes over with every message.

mod support;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use std::time::Duration;

use support::pair::{test_slot, Node, Pair, PairOpts};
use support::{Broker, BrokerOpts, Stomp, REPLY_TIMEOUT};

const MESSAGES: usize = 3000;
const BODY_BYTES: usize = 4096;
const QUEUE: &str = "/queue/damage";

/// A broker with 1 MiB segments holding `MESSAGES` confirmed persistent messages of
/// `BODY_BYTES` on one queue (so one shard, about 13 segments), stopped cleanly.
fn filled_broker() -> Broker {
    let mut broker = Broker::start(BrokerOpts {
        segment_size: "1 mb".into(),
        ..BrokerOpts::default()
    });
    fill(&mut broker.client(), MESSAGES);
    assert!(broker.stop().success(), "clean stop");
    broker
}

/// Sends `n` confirmed persistent messages `m<i> xxx...` of `BODY_BYTES` to `QUEUE`.
fn fill(c: &mut Stomp, n: usize) {
    for i in 0..n {
        let mut body = format!("m{i} ").into_bytes();
        body.resize(BODY_BYTES, b'x');
        c.send_receipted(QUEUE, &body, &format!("r{i}"));
    }
}

/// The shard directory holding the queue: the one with the most segments.
fn busy_shard(broker: &Broker) -> PathBuf {
    busy_shard_in(&broker.journal_dir())
}

fn busy_shard_in(journal: &Path) -> PathBuf {
    fs::read_dir(journal)
        .expect("journal dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .max_by_key(|d| segments(d).len())
        .expect("a shard directory")
}

/// Segment files of a shard directory, oldest first, with their sizes.
fn segments(shard: &Path) -> Vec<(PathBuf, u64)> {
    let mut v: Vec<(PathBuf, u64)> = fs::read_dir(shard)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "log"))
                .map(|p| {
                    let len = fs::metadata(&p).map_or(0, |m| m.len());
                    (p, len)
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Offsets of the records of a segment file, walking the documented frame format
/// (`len` u32 LE, crc u32 LE, payload, zero padding to 8) from offset 4096.
fn record_offsets(segment: &Path) -> Vec<(u64, u32)> {
    let bytes = fs::read(segment).expect("read segment");
    let mut out = Vec::new();
    let mut off = 4096usize;
    while off + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[off..off + 4].try_into().expect("4 bytes"));
        if len == 0 || len == u32::MAX {
            break;
        }
        out.push((off as u64, len));
        off += (8 + len as usize).div_ceil(8) * 8;
    }
    out
}

#[derive(Debug)]
struct ToolRun {
    status: std::process::ExitStatus,
    stdout: String,
}

/// `tandem journal <action> <dir>`.
fn journal_tool(action: &str, dir: &Path) -> ToolRun {
    let (status, stdout, _) = support::run_bounded(
        std::process::Command::new(support::tandem_bin())
            .arg("journal")
            .arg(action)
            .arg(dir),
        std::time::Duration::from_secs(60),
    )
    .expect("tandem journal runs");
    ToolRun { status, stdout }
}

/// Reads the queue up to a sentinel sent after start-up; returns the message numbers.
fn drain(broker: &Broker) -> Vec<usize> {
    drain_with(broker.client(), MESSAGES)
}

/// [`drain`] on a session, for a queue filled with at most `n` messages.
fn drain_with(mut c: Stomp, n: usize) -> Vec<usize> {
    c.send_receipted(QUEUE, b"sentinel", "sentinel");
    c.subscribe("d", QUEUE, "auto");
    let mut got = Vec::new();
    for _ in 0..=n {
        let m = c
            .read_frame(REPLY_TIMEOUT)
            .expect("a message before the sentinel");
        assert_eq!(m.command, "MESSAGE", "{m:?}");
        let body = m.body_str();
        if body == "sentinel" {
            return got;
        }
        let n = body
            .split(' ')
            .next()
            .and_then(|id| id.strip_prefix('m'))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unexpected body {body:.40}"));
        got.push(n);
    }
    panic!("no sentinel after {n} messages");
}

/// Damages the log with `damage` (given the busy shard's second segment), then
/// checks: start-up refused naming the damage, no file deleted or shortened; with
/// `--skip-damaged-records` every message but at most `may_lose` is delivered, once,
/// in order. Returns how many were lost.
fn damaged_start(damage: impl FnOnce(&Path), may_lose: usize) -> usize {
    let mut broker = filled_broker();
    let shard = busy_shard(&broker);
    let before = segments(&shard);
    assert!(before.len() >= 5, "too few segments: {before:?}");
    let second = before[1].0.clone();
    let healthy = journal_tool("verify", &broker.data_dir());
    assert!(
        healthy.status.success() && healthy.stdout.contains(&format!("{MESSAGES} records")),
        "verify on a healthy journal: {healthy:?}"
    );
    let dump = journal_tool("dump", &shard);
    assert!(
        dump.stdout.contains(&format!("enqueue {QUEUE} seq=1 ")),
        "dump: {}",
        &dump.stdout[..dump.stdout.len().min(2000)]
    );
    damage(&second);
    let damaged = segments(&shard);

    let (status, log) = broker.start_expecting_exit();
    assert!(!status.success(), "started on a damaged journal:\n{log}");
    let segment_id = u64::from_str_radix(
        second
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("segment name"),
        16,
    )
    .expect("hex segment id");
    assert!(
        log.contains("journal damaged")
            && log.contains(&format!("segment {segment_id} offset"))
            && log.contains("--skip-damaged-records"),
        "refusal does not name the damage:\n{log}"
    );
    assert_eq!(
        segments(&shard),
        damaged,
        "files changed by the refused start"
    );
    let verify = journal_tool("verify", &broker.data_dir());
    assert!(
        !verify.status.success() && verify.stdout.contains(&format!("DAMAGED at {segment_id}:")),
        "verify on the damaged journal: {verify:?}"
    );

    broker.opts.args = vec!["--skip-damaged-records".into()];
    broker.restart();
    assert!(
        broker
            .log()
            .contains("skipping it (--skip-damaged-records)"),
        "{}",
        broker.log()
    );
    // The skipped bytes are still on disk as they were (consuming the queue may
    // reclaim the segments later, as for any consumed record).
    let second_now = segments(&shard).into_iter().find(|(p, _)| *p == second);
    let second_before = damaged.iter().find(|(p, _)| *p == second).cloned();
    assert_eq!(second_now, second_before, "the damaged segment changed");
    let got = drain(&broker);
    let unique: BTreeSet<usize> = got.iter().copied().collect();
    assert_eq!(unique.len(), got.len(), "a message delivered twice");
    assert!(got.windows(2).all(|w| w[0] < w[1]), "out of order");
    let lost = MESSAGES - got.len();
    assert!(
        (1..=may_lose).contains(&lost),
        "{lost} messages lost, expected 1..={may_lose}"
    );
    lost
}

#[test]
fn a_flipped_byte_mid_log_refuses_start_and_skipping_loses_one_record() {
    let lost = damaged_start(flip_a_byte_mid_segment, 1);
    assert_eq!(lost, 1);
}

/// Flips one bit in the payload of the middle record of `seg`.
fn flip_a_byte_mid_segment(seg: &Path) {
    let records = record_offsets(seg);
    let (off, _) = records[records.len() / 2];
    let f = fs::OpenOptions::new()
        .write(true)
        .read(true)
        .open(seg)
        .expect("open");
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, off + 8 + 100).expect("read");
    b[0] ^= 0x20;
    f.write_all_at(&b, off + 8 + 100).expect("flip");
}

#[test]
fn a_zeroed_block_mid_log_refuses_start_and_skipping_keeps_the_rest() {
    damaged_start(
        |seg| {
            let len = fs::metadata(seg).expect("stat").len();
            let block = (len / 2) / 4096 * 4096;
            let f = fs::OpenOptions::new().write(true).open(seg).expect("open");
            f.write_all_at(&[0u8; 4096], block).expect("zero a block");
        },
        // A 4 KiB block touches at most two 4 KiB records.
        2,
    );
}

#[test]
fn a_truncated_middle_segment_refuses_start_and_skipping_keeps_the_rest() {
    damaged_start(
        |seg| {
            let len = fs::metadata(seg).expect("stat").len();
            let f = fs::OpenOptions::new().write(true).open(seg).expect("open");
            f.set_len(len / 2).expect("truncate");
        },
        // The second half of one 1 MiB segment of 4 KiB records.
        130,
    );
}

/// Garbage after the last record of the newest segment, as a torn last write leaves:
/// nothing valid follows it, so it is cut with a warning and every message is there.
#[test]
fn a_torn_tail_is_still_cut_silently() {
    let mut broker = filled_broker();
    let shard = busy_shard(&broker);
    let segs = segments(&shard);
    let (last, _) = segs
        .iter()
        .rev()
        .find(|(p, _)| !record_offsets(p).is_empty())
        .expect("a segment with records")
        .clone();
    let records = record_offsets(&last);
    let (off, len) = *records.last().expect("a record");
    let end = off + (8 + u64::from(len)).div_ceil(8) * 8;
    let f = fs::OpenOptions::new()
        .write(true)
        .open(&last)
        .expect("open");
    // A plausible frame header with a wrong checksum, then half a payload.
    let mut torn = Vec::new();
    torn.extend_from_slice(&4200u32.to_le_bytes());
    torn.extend_from_slice(&0xdead_beefu32.to_le_bytes());
    torn.resize(2000, 0x5a);
    f.write_all_at(&torn, end).expect("write torn tail");
    drop(f);
    let verify = journal_tool("verify", &broker.data_dir());
    assert!(
        verify.status.success() && verify.stdout.contains("torn tail at"),
        "verify on a torn tail: {verify:?}"
    );

    broker.restart();
    assert!(
        broker.log().contains("torn journal tail"),
        "{}",
        broker.log()
    );
    let got = drain(&broker);
    assert_eq!(got, (0..MESSAGES).collect::<Vec<_>>());
}

// ---------------------------------------------------------------------------
// In a pair: the damaged range comes from the peer

/// Messages of `BODY_BYTES` stored through a pair: about 6 segments of 1 MiB.
const PAIR_MESSAGES: usize = 1500;
const PAIR_TIMEOUT: Duration = Duration::from_secs(60);

/// Flips a byte in the middle of the second segment of `node`'s busy shard (the node
/// stopped); returns the shard directory.
fn damage_second_segment(node: &Node) -> PathBuf {
    let shard = busy_shard_in(&node.data_dir().join("journal"));
    let segs = segments(&shard);
    assert!(segs.len() >= 4, "too few segments: {segs:?}");
    flip_a_byte_mid_segment(&segs[1].0);
    let verify = journal_tool("verify", &node.data_dir());
    assert!(!verify.status.success(), "not damaged: {verify:?}");
    shard
}

/// The `damaged-*` directory recovery set the damage aside in, and the segment files
/// in it.
fn set_aside_files(shard: &Path) -> Vec<PathBuf> {
    let aside: Vec<PathBuf> = fs::read_dir(shard)
        .expect("shard dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("damaged-"))
        })
        .collect();
    assert_eq!(
        aside.len(),
        1,
        "one set-aside directory in {}",
        shard.display()
    );
    segments(&aside[0]).into_iter().map(|(p, _)| p).collect()
}

/// The slave's copy is damaged while it is down: restarted, it sets the damage aside,
/// resumes from the damage (the master ships from there: the same bytes at the same
/// positions), is in sync again, and after a `kill -9` of the master serves every
/// message, once, in order.
#[test]
fn a_damaged_slave_copies_the_damaged_range_from_its_master() {
    let _slot = test_slot();
    let pair = Pair::start(PairOpts::default());
    fill(&mut pair.master.client(), PAIR_MESSAGES);
    pair.slave.term();
    let status = pair.slave.wait_exit(PAIR_TIMEOUT);
    assert!(status.success(), "slave stop: {status}");
    let shard = damage_second_segment(&pair.slave);

    pair.slave.start();
    pair.wait_in_sync(PAIR_TIMEOUT);
    let log = pair.slave.log();
    assert!(log.contains("set aside"), "{}", pair.slave.log_tail(60));
    let aside = set_aside_files(&shard);
    assert!(
        aside.len() >= 3,
        "the damaged segment and the later ones: {aside:?}"
    );
    assert!(
        pair.master.log().contains("resume=true"),
        "the slave should resume from the damage, not start over:\n{}",
        pair.master.log_tail(40)
    );

    pair.master.kill9();
    pair.slave.wait_serving(PAIR_TIMEOUT);
    let got = drain_with(pair.slave.client(), PAIR_MESSAGES);
    assert_eq!(got, (0..PAIR_MESSAGES).collect::<Vec<_>>());
}

/// The master's log is damaged while it is down and its slave took over: restarted,
/// it sets the damage aside, rejoins the new master as slave, copies the log from it,
/// and after a `kill -9` of the new master takes over again with every message.
#[test]
fn a_damaged_former_master_copies_its_log_from_the_new_master() {
    let _slot = test_slot();
    let pair = Pair::start(PairOpts::default());
    fill(&mut pair.master.client(), PAIR_MESSAGES);
    pair.master.term();
    let status = pair.master.wait_exit(PAIR_TIMEOUT);
    assert!(status.success(), "master stop: {status}");
    pair.slave.wait_serving(PAIR_TIMEOUT);
    let shard = damage_second_segment(&pair.master);

    pair.master.start();
    pair.master
        .wait_status(support::pair::is_slave_in_sync, PAIR_TIMEOUT);
    assert!(
        pair.master.log().contains("set aside"),
        "{}",
        pair.master.log_tail(60)
    );
    assert!(!set_aside_files(&shard).is_empty());

    pair.slave.kill9();
    pair.master.wait_serving(PAIR_TIMEOUT);
    let got = drain_with(pair.master.client(), PAIR_MESSAGES);
    assert_eq!(got, (0..PAIR_MESSAGES).collect::<Vec<_>>());
}
