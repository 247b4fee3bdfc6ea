//! A damaged journal is never cut (issue 14): real broker processes, real files. A
//! flipped byte, a zeroed 4 KiB block and a truncated segment in the middle of the log
//! each stop start-up with an error naming the damage, deleting nothing; with
//! `--skip-damaged-records` the broker starts and delivers every other confirmed
//! message. A torn tail (garbage after the last record, nothing valid after it) is
//! still cut silently.

mod support;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use support::{Broker, BrokerOpts, REPLY_TIMEOUT};

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
    let mut c = broker.client();
    for i in 0..MESSAGES {
        let mut body = format!("m{i} ").into_bytes();
        body.resize(BODY_BYTES, b'x');
        c.send_receipted(QUEUE, &body, &format!("r{i}"));
    }
    drop(c);
    assert!(broker.stop().success(), "clean stop");
    broker
}

/// The shard directory holding the queue: the one with the most segments.
fn busy_shard(broker: &Broker) -> PathBuf {
    fs::read_dir(broker.journal_dir())
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
    let mut c = broker.client();
    c.send_receipted(QUEUE, b"sentinel", "sentinel");
    c.subscribe("d", QUEUE, "auto");
    let mut got = Vec::new();
    for _ in 0..=MESSAGES {
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
    panic!("no sentinel after {MESSAGES} messages");
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
    let lost = damaged_start(
        |seg| {
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
        },
        1,
    );
    assert_eq!(lost, 1);
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
