//! Storage faults seen from a client (issues 18 and 14): a journal write that fails is
//! answered with an error, never with silence; the node then stops (exit status 1, as
//! ActiveMQ's default IOExceptionHandler stops a broker whose store fails) so that the
//! slave or the service manager takes over; nothing confirmed before is lost, and the
//! request that failed is not stored, on the node or on its slave (a batch is shipped
//! only once its local write succeeded).
//!
//! The fault is real: the journal's directories and files get the immutable attribute
//! (`chattr +i`, by ioctl), which refuses file creation and writes even to root, so
//! the journal's next segment creation or write fails with EPERM (refused before any
//! byte is written: the one failure whose outcome is certain, hence an error answer).

mod support;

use std::time::Duration;

use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use support::pair::{test_slot, Pair, PairOpts};
use support::{jms, Broker, BrokerOpts, Stomp, REPLY_TIMEOUT};

/// `FS_IMMUTABLE_FL` from linux/fs.h (not exported by the libc crate).
const FS_IMMUTABLE_FL: libc::c_int = 0x10;

/// Sets or clears the immutable attribute of `path` (a file or a directory).
fn set_immutable(path: &Path, on: bool) -> io::Result<()> {
    let f = fs::File::open(path)?;
    let mut flags: libc::c_int = 0;
    // SAFETY: FS_IOC_GETFLAGS/SETFLAGS read and write one int through the pointer.
    unsafe {
        if libc::ioctl(f.as_raw_fd(), libc::FS_IOC_GETFLAGS, &mut flags) != 0 {
            return Err(io::Error::last_os_error());
        }
        flags = if on {
            flags | FS_IMMUTABLE_FL
        } else {
            flags & !FS_IMMUTABLE_FL
        };
        if libc::ioctl(f.as_raw_fd(), libc::FS_IOC_SETFLAGS, &flags) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Makes every shard directory of a journal, and every file in them, immutable; undone
/// on drop (else the temp dir could not be removed).
struct FrozenJournal(Vec<PathBuf>);

impl FrozenJournal {
    fn freeze(journal: &Path) -> FrozenJournal {
        let mut frozen = FrozenJournal(Vec::new());
        for shard in fs::read_dir(journal).expect("read journal dir") {
            let shard = shard.expect("journal entry").path();
            if !shard.is_dir() {
                continue;
            }
            for file in fs::read_dir(&shard).expect("read shard dir") {
                frozen.add(file.expect("shard entry").path());
            }
            frozen.add(shard);
        }
        assert!(
            !frozen.0.is_empty(),
            "no shard directory in {}",
            journal.display()
        );
        frozen
    }

    fn add(&mut self, path: PathBuf) {
        set_immutable(&path, true).unwrap_or_else(|e| {
            panic!(
                "chattr +i {}: {e} (needs root and a file system with attributes)",
                path.display()
            )
        });
        self.0.push(path);
    }
}

impl Drop for FrozenJournal {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = set_immutable(p, false);
        }
    }
}

const EXIT_TIMEOUT: Duration = Duration::from_secs(30);
const KEPT: usize = 5;

/// Sends `KEPT` confirmed persistent messages to /queue/kept.
fn send_kept(c: &mut Stomp) {
    for i in 0..KEPT {
        c.send_receipted(
            "/queue/kept",
            format!("kept {i}").as_bytes(),
            &format!("k{i}"),
        );
    }
}

/// The messages of /queue/kept, then proof that `dest` holds none: a marker sent to it
/// now is the first message it delivers.
fn assert_kept_and_nothing_in(c: &mut Stomp, dest: &str) {
    c.subscribe("kept", "/queue/kept", "auto");
    for i in 0..KEPT {
        assert_eq!(c.expect_message().body_str(), format!("kept {i}"));
    }
    c.subscribe("faulty", dest, "auto");
    c.send_receipted(dest, b"marker", "marker");
    let first = c.expect_message();
    assert_eq!(
        first.body_str(),
        "marker",
        "{dest} holds a message whose producer was told it failed: {first:?}"
    );
}

/// A broker (with an OpenWire connector) holding the kept messages, its journal then
/// frozen; `fail` makes a request that needs the journal and checks the answer. Then
/// the broker must stop by itself with status 1, and, restarted on a sound journal,
/// hold every kept message and nothing in `dest`.
fn journal_fault_case(dest: &str, fail: impl FnOnce(&Broker, u16)) {
    let ow = support::free_port();
    let mut broker = Broker::start(BrokerOpts {
        openwire_port: Some(ow),
        ..BrokerOpts::default()
    });
    send_kept(&mut broker.client());
    let frozen = FrozenJournal::freeze(&broker.journal_dir());
    fail(&broker, ow);
    let status = broker.wait_exit(EXIT_TIMEOUT);
    assert_eq!(status.code(), Some(1), "{}", broker.log());
    let log = broker.log();
    assert!(
        log.contains("a journal failed: stopping the node"),
        "the log should say why it stopped:\n{log}"
    );
    drop(frozen);
    broker.restart();
    assert_kept_and_nothing_in(&mut broker.client(), dest);
}

/// Reads the answer to a request sent with `receipt` and checks it is an ERROR naming
/// the journal.
fn expect_journal_error(c: &mut Stomp, receipt: &str) {
    let f = c.read_frame(REPLY_TIMEOUT).expect("an answer, not silence");
    assert_eq!(f.command, "ERROR", "{f:?}");
    assert_eq!(f.header("receipt-id"), Some(receipt), "{f:?}");
    assert!(
        f.body_str().contains("journal"),
        "the ERROR should say why: {f:?}"
    );
}

#[test]
fn failed_journal_write_answers_a_stomp_send_with_an_error_and_stops_the_node() {
    journal_fault_case("/queue/faulty", |broker, _| {
        let mut c = broker.client();
        c.send_frame(
            "SEND",
            &[
                ("destination", "/queue/faulty"),
                ("persistent", "true"),
                ("receipt", "s1"),
            ],
            b"never stored",
        );
        expect_journal_error(&mut c, "s1");
    });
}

#[test]
fn failed_journal_write_answers_a_stomp_commit_with_an_error_and_stops_the_node() {
    journal_fault_case("/queue/faulty-tx-a", |broker, _| {
        let mut c = broker.client();
        c.send_frame("BEGIN", &[("transaction", "t1")], b"");
        // Several queues, so that the commit spans both shards (two-phase) too.
        for q in ["a", "b", "c", "d"] {
            c.send_frame(
                "SEND",
                &[
                    ("destination", &format!("/queue/faulty-tx-{q}")),
                    ("persistent", "true"),
                    ("transaction", "t1"),
                ],
                b"never committed",
            );
        }
        c.send_frame("COMMIT", &[("transaction", "t1"), ("receipt", "c1")], b"");
        expect_journal_error(&mut c, "c1");
    });
}

/// The JMS probe's exception names the journal.
fn assert_says_journal(out: &jms::ProbeOutput) {
    let said = out.lines_without(&[]).join("\n");
    assert!(
        said.contains("journal"),
        "the exception should say why: {}",
        out.dump()
    );
}

#[test]
fn failed_journal_write_throws_on_a_jms_send_and_stops_the_node() {
    journal_fault_case("/queue/faulty-jms", |_, ow| {
        // A persistent send is synchronous; the client throws a JMSException.
        let out = jms::probe(
            &format!("tcp://127.0.0.1:{ow}"),
            "send",
            &["--dest", "queue:faulty-jms", "--count", "1"],
        );
        assert_eq!(
            out.expect_error(),
            "javax.jms.JMSException",
            "{}",
            out.dump()
        );
        assert_says_journal(&out);
    });
}

#[test]
fn failed_journal_write_throws_on_a_jms_commit_and_stops_the_node() {
    journal_fault_case("/queue/faulty-jms-tx", |_, ow| {
        let out = jms::probe(
            &format!("tcp://127.0.0.1:{ow}"),
            "send",
            &[
                "--dest",
                "queue:faulty-jms-tx",
                "--count",
                "2",
                "--tx",
                "commit",
            ],
        );
        assert!(
            out.expect_error().contains("JMSException"),
            "{}",
            out.dump()
        );
        assert_says_journal(&out);
    });
}

/// Ship only what was written: the master's journal fails on a write into its open
/// segment (the queue already holds confirmed messages there), the producer gets an
/// ERROR, the master stops and the slave takes over holding every confirmed message
/// and not the failed one. Shipped before its local write, as it once was, the failed
/// message would be on the slave and delivered after the takeover.
#[test]
fn a_failed_master_write_is_not_on_the_slave_that_takes_over() {
    let _slot = test_slot();
    let pair = Pair::start(PairOpts::default());
    let mut c = pair.master.client();
    for i in 0..KEPT {
        c.send_receipted(
            "/queue/faulty",
            format!("kept {i}").as_bytes(),
            &format!("k{i}"),
        );
    }
    let frozen = FrozenJournal::freeze(&pair.master.data_dir().join("journal"));
    c.send_frame(
        "SEND",
        &[
            ("destination", "/queue/faulty"),
            ("persistent", "true"),
            ("receipt", "s1"),
        ],
        b"never stored",
    );
    expect_journal_error(&mut c, "s1");
    let status = pair.master.wait_exit(EXIT_TIMEOUT);
    assert_eq!(status.code(), Some(1), "{}", pair.master.log_tail(40));
    let log = pair.master.log();
    assert!(
        log.contains("journal write failed before any byte was written")
            && log.contains("journal I/O error: write "),
        "the write itself (not a segment creation) should have failed:\n{log}"
    );
    drop(frozen);
    pair.slave.wait_serving(EXIT_TIMEOUT);
    let mut c = pair.slave.client();
    c.subscribe("faulty", "/queue/faulty", "auto");
    for i in 0..KEPT {
        assert_eq!(c.expect_message().body_str(), format!("kept {i}"));
    }
    c.send_receipted("/queue/faulty", b"marker", "marker");
    let next = c.expect_message();
    assert_eq!(
        next.body_str(),
        "marker",
        "the slave delivered a message whose producer was told it failed: {next:?}"
    );
}
