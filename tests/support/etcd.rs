//! A real single-member etcd for the witness tests (`tests/witness.rs`): Debian's
//! `etcd-server` (`/usr/bin/etcd`, 3.4), on free loopback ports, with its own temp data
//! directory. [`EtcdServer::start`] waits until `/health` says true; [`EtcdServer::kill9`],
//! [`EtcdServer::pause`] / [`EtcdServer::resume`] (SIGSTOP / SIGCONT) fail it mid-test;
//! Drop kills it and, if the test panicked, prints its log.
//!
//! Raft timing is tightened (50 ms heartbeat, 500 ms election timeout) so etcd grants
//! 1 s leases: its minimum TTL is 1.5 election timeouts rounded up to whole seconds
//! (2 s with the defaults).

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, http_request, poll_until, START_TIMEOUT};

/// The etcd binary: `$TANDEM_ETCD`, else Debian's.
pub fn etcd_bin() -> PathBuf {
    std::env::var_os("TANDEM_ETCD")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/etcd"))
}

pub struct EtcdServer {
    /// The running process; `None` after `kill9`.
    child: Option<Child>,
    /// Data directory and log; removed on drop.
    dir: tempfile::TempDir,
    pub client_port: u16,
    pub peer_port: u16,
}

impl EtcdServer {
    /// Starts etcd and waits (bounded) until it reports itself healthy (has a leader).
    pub fn start() -> EtcdServer {
        let dir = tempfile::Builder::new()
            .prefix("tandem-etcd-")
            .tempdir()
            .expect("tempdir");
        let mut etcd = EtcdServer {
            child: None,
            dir,
            client_port: free_port(),
            peer_port: free_port(),
        };
        etcd.spawn_and_wait();
        etcd
    }

    /// `127.0.0.1:<client port>`, as [`tandem::witness::parse_witness`] returns it.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default()
    }

    fn spawn_and_wait(&mut self) {
        let client = format!("http://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("etcd.log"))
            .expect("etcd log file");
        let child = Command::new(etcd_bin())
            .arg("--name=witness")
            .arg(format!(
                "--data-dir={}",
                self.dir.path().join("data").display()
            ))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=witness={peer}"))
            .arg("--heartbeat-interval=50")
            .arg("--election-timeout=500")
            .arg("--logger=zap")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {} ({e}); install Debian's etcd-server",
                    etcd_bin().display()
                )
            });
        self.child = Some(child);
        let port = self.client_port;
        let healthy = poll_until(START_TIMEOUT, || {
            http_request(port, "GET", "/health", None, Duration::from_secs(2))
                .is_some_and(|r| r.code == 200 && r.body.contains("\"health\":\"true\""))
        });
        assert!(
            healthy,
            "etcd not healthy on port {port} after {START_TIMEOUT:?}:\n{}",
            self.log()
        );
    }

    /// SIGKILL (which also ends a paused process), and wait until it is gone.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("etcd is not running");
        child.kill().expect("kill -9 etcd");
        child.wait().expect("wait for etcd");
    }

    /// Starts etcd again on the same ports and data (after [`EtcdServer::kill9`]).
    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.kill9();
        }
        self.spawn_and_wait();
    }

    /// SIGSTOP: connections stay open (and new ones are accepted by the kernel) but
    /// nothing is answered, like a member cut off by a partition.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// SIGCONT after [`EtcdServer::pause`].
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, signal: libc::c_int) {
        let child = self.child.as_ref().expect("etcd is not running");
        // SAFETY: sending a signal to our own child's pid; no memory involved.
        let rc = unsafe { libc::kill(child.id() as libc::pid_t, signal) };
        assert_eq!(rc, 0, "kill({}, {signal})", child.id());
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("---- etcd log (last 60 lines) ----");
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}
