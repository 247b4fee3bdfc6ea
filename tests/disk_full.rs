//! A full disk pauses the journal, it does not break it (issue 14). The broker's data
//! directory is on a small ext4 file system that the test makes (an image file on a
//! loop device; needs root, as CI runs). A filler file leaves a few MiB; producers
//! fill the rest: the journal cannot create its next segment, new persistent sends
//! are refused with a clear error (STOMP ERROR, JMS ResourceAllocationException) and
//! `/status` says why; the sends already taken wait. The filler is deleted: without a
//! restart the waiting sends are confirmed and new ones accepted. Every confirmed
//! message is delivered exactly once and no refused one is.

mod support;

use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::thread;
use std::time::Duration;

use support::{free_port, http_request, poll_until, Broker, BrokerOpts, REPLY_TIMEOUT};

const MIB: u64 = 1 << 20;
const IMAGE_BYTES: u64 = 96 * MIB;
/// Free space the filler leaves: a few 1 MiB segments.
const LEFT_FREE: u64 = 4 * MIB;
const BODY_BYTES: usize = 64 * 1024;
/// 16 MiB of sends: far more than the space left.
const SENDS: usize = 256;
const QUEUE: &str = "/queue/full";
/// Long enough for the main thread to see the pause, free space and the writer to
/// retry (every second).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// A loop-mounted ext4 file system, unmounted on drop.
struct SmallFs {
    _dir: tempfile::TempDir,
    mount: PathBuf,
}

impl SmallFs {
    fn new() -> SmallFs {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "tests/disk_full.rs mounts a loop device: run the tests as root (CI does)"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let image = dir.path().join("fs.img");
        fs::File::create(&image)
            .and_then(|f| f.set_len(IMAGE_BYTES))
            .expect("image file");
        run(Command::new("mkfs.ext4")
            .args(["-q", "-F", "-m", "0"])
            .arg(&image));
        let mount = dir.path().join("mnt");
        fs::create_dir(&mount).expect("mount point");
        run(Command::new("mount")
            .args(["-o", "loop"])
            .arg(&image)
            .arg(&mount));
        SmallFs { _dir: dir, mount }
    }

    fn free_bytes(&self) -> u64 {
        let path = std::ffi::CString::new(self.mount.as_os_str().as_encoded_bytes()).expect("path");
        // SAFETY: statvfs writes into the zeroed struct we pass; the path is valid.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        assert_eq!(
            unsafe { libc::statvfs(path.as_ptr(), &mut st) },
            0,
            "statvfs"
        );
        st.f_bavail * st.f_frsize
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
    }
}

fn run(cmd: &mut Command) {
    let out = support::run_bounded(cmd, Duration::from_secs(60)).expect("runs");
    assert!(out.0.success(), "{cmd:?}: {} {}", out.1, out.2);
}

fn status(port: u16) -> serde_json::Value {
    http_request(port, "GET", "/status", None, REPLY_TIMEOUT)
        .expect("status answers")
        .json()
}

/// Fills `dir`'s file system with one file until `keep` bytes are free; returns it.
fn filler(fs: &SmallFs, keep: u64) -> PathBuf {
    let path = fs.mount.join("filler");
    let size = fs.free_bytes().saturating_sub(keep);
    let f = fs::File::create(&path).expect("filler");
    let chunk = vec![0xa5u8; MIB as usize];
    let mut written = 0;
    use std::io::Write;
    let mut w = std::io::BufWriter::new(&f);
    while written < size {
        let n = (size - written).min(MIB) as usize;
        w.write_all(&chunk[..n]).expect("write filler");
        written += n as u64;
    }
    w.flush().expect("flush");
    drop(w);
    f.sync_all().expect("sync filler");
    path
}

/// How the flood's sends were answered.
struct Answers {
    confirmed: BTreeSet<usize>,
    refused: BTreeSet<usize>,
    refusal: Option<String>,
}

/// Sends `SENDS` receipted persistent messages at once, then reads exactly one answer
/// per send (a RECEIPT, or an ERROR naming its receipt).
fn flood(broker: &Broker) -> Answers {
    let mut c = broker.client();
    for i in 0..SENDS {
        let mut body = format!("m{i} ").into_bytes();
        body.resize(BODY_BYTES, b'x');
        c.send_frame(
            "SEND",
            &[
                ("destination", QUEUE),
                ("persistent", "true"),
                ("receipt", &format!("r{i}")),
            ],
            &body,
        );
    }
    let mut a = Answers {
        confirmed: BTreeSet::new(),
        refused: BTreeSet::new(),
        refusal: None,
    };
    for _ in 0..SENDS {
        let f = c
            .read_frame(ANSWER_TIMEOUT)
            .expect("an answer to every send");
        let id: usize = f
            .header("receipt-id")
            .and_then(|r| r.strip_prefix('r'))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("answer without our receipt id: {f:?}"));
        match f.command.as_str() {
            "RECEIPT" => assert!(a.confirmed.insert(id)),
            "ERROR" => {
                assert!(a.refused.insert(id));
                a.refusal.get_or_insert_with(|| f.body_str().to_string());
            }
            other => panic!("unexpected {other}: {f:?}"),
        }
    }
    a
}

#[test]
fn a_full_disk_refuses_new_sends_and_resumes_when_space_is_freed() {
    let small = SmallFs::new();
    let status_port = free_port();
    let ow = free_port();
    let broker = Broker::start(BrokerOpts {
        data_dir: Some(small.mount.join("data")),
        segment_size: "1 mb".into(),
        memory_limit: "64 mb".into(),
        status_port: Some(status_port),
        openwire_port: Some(ow),
        ..BrokerOpts::default()
    });
    let filler = filler(&small, LEFT_FREE);

    let answers = thread::scope(|scope| {
        let flood = scope.spawn(|| flood(&broker));
        // The journal runs out of room: /status says so.
        let mut last = serde_json::Value::Null;
        let paused = poll_until(ANSWER_TIMEOUT / 2, || {
            last = status(status_port);
            last["journal"]["disk_full"].is_string()
        });
        assert!(paused, "the journal never reported a full disk: {last}");
        let metrics =
            http_request(status_port, "GET", "/metrics", None, REPLY_TIMEOUT).expect("metrics");
        assert!(
            metrics
                .body
                .lines()
                .any(|l| l == "tandem_journal_disk_full 1"),
            "{}",
            metrics.body
        );
        // A new send now is refused at once, on a fresh connection, which stays open.
        let mut c = broker.client();
        c.send_frame(
            "SEND",
            &[
                ("destination", QUEUE),
                ("persistent", "true"),
                ("receipt", "late"),
            ],
            b"refused while full",
        );
        let f = c.read_frame(REPLY_TIMEOUT).expect("an answer");
        assert_eq!(f.command, "ERROR", "{f:?}");
        assert!(f.body_str().contains("store is full"), "{f:?}");
        // The real JMS client is told ResourceAllocationException, as ActiveMQ's
        // store limit does.
        let jms = support::jms::probe(
            &format!("tcp://127.0.0.1:{ow}"),
            "send",
            &["--dest", "queue:full-jms", "--count", "1"],
        );
        assert_eq!(
            jms.expect_error(),
            "javax.jms.ResourceAllocationException",
            "{}",
            jms.dump()
        );

        fs::remove_file(&filler).expect("free the space");
        let resumed = poll_until(ANSWER_TIMEOUT / 2, || {
            last = status(status_port);
            last["journal"]["disk_full"].is_null()
        });
        assert!(
            resumed,
            "writes never resumed after space was freed: {last}"
        );
        c.send_receipted(QUEUE, b"after", "after");
        flood.join().expect("flood")
    });
    // Sends taken before the journal found the disk full waited and were confirmed;
    // any taken after were refused, naming the cause.
    if let Some(r) = &answers.refusal {
        assert!(r.contains("store is full"), "{r}");
    }
    assert_eq!(answers.confirmed.len() + answers.refused.len(), SENDS);

    // Every confirmed message exactly once, no refused one (the late STOMP send would
    // show as an unexpected body), then the one sent after.
    let mut c = broker.client();
    c.subscribe("d", QUEUE, "auto");
    let mut got = BTreeSet::new();
    loop {
        let m = c.expect_message();
        let body = m.body_str();
        if body == "after" {
            break;
        }
        let id: usize = body
            .split(' ')
            .next()
            .and_then(|t| t.strip_prefix('m'))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unexpected body {body:.30}"));
        assert!(got.insert(id), "m{id} delivered twice");
        assert!(
            !answers.refused.contains(&id),
            "refused m{id} was delivered"
        );
    }
    assert_eq!(got, answers.confirmed, "confirmed messages lost");
    // The broker goes before its file system is unmounted.
    drop(broker);
}
