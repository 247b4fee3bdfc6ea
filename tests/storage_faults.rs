//! Storage faults seen from a client: a journal that cannot write answers every request
//! that needed it with an error, never with silence, and the broker keeps serving.
//!
//! The fault is real: the journal's directories and files get the immutable attribute
//! (`chattr +i`, by ioctl), which refuses file creation and writes even to root, so
//! the journal's next segment creation or write fails with EPERM.

mod support;

use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use support::{jms, Broker, BrokerOpts, REPLY_TIMEOUT};

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

/// A persistent SEND (receipted), a transaction's COMMIT (receipted), a JMS persistent
/// send and a JMS commit, all on a broker whose journal cannot write: each gets an ERROR /
/// JMSException naming the journal, none hangs; the broker keeps serving.
#[test]
fn failed_journal_write_is_answered_with_an_error_not_silence() {
    let ow = support::free_port();
    let broker = Broker::start(BrokerOpts {
        openwire_port: Some(ow),
        ..BrokerOpts::default()
    });
    let _frozen = FrozenJournal::freeze(&broker.journal_dir());

    // STOMP: a persistent SEND with a receipt.
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
    let f = c
        .read_frame(REPLY_TIMEOUT)
        .expect("an answer to the SEND, not silence");
    assert_eq!(f.command, "ERROR", "{f:?}");
    assert_eq!(f.header("receipt-id"), Some("s1"), "{f:?}");
    assert!(
        f.body_str().contains("journal"),
        "the ERROR should say why: {f:?}"
    );

    // STOMP: a transaction of persistent SENDs, committed with a receipt.
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
    let f = c
        .read_frame(REPLY_TIMEOUT)
        .expect("an answer to the COMMIT, not silence");
    assert_eq!(f.command, "ERROR", "{f:?}");
    assert_eq!(f.header("receipt-id"), Some("c1"), "{f:?}");
    assert!(
        f.body_str().contains("journal"),
        "the ERROR should say why: {f:?}"
    );

    // JMS: a persistent send is synchronous; the client throws a JMSException.
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
    let said = out.lines_without(&[]).join("\n");
    assert!(
        said.contains("journal"),
        "the exception should say why: {}",
        out.dump()
    );

    // JMS: a transacted session's commit throws.
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
    let said = out.lines_without(&[]).join("\n");
    assert!(
        said.contains("journal"),
        "the exception should say why: {}",
        out.dump()
    );

    // The broker still serves what needs no journal.
    let mut c = broker.client();
    c.subscribe("1", "/queue/volatile", "auto");
    c.send_frame(
        "SEND",
        &[("destination", "/queue/volatile"), ("receipt", "v1")],
        b"not persistent",
    );
    c.expect_receipt("v1");
    assert_eq!(c.expect_message().body_str(), "not persistent");
}
