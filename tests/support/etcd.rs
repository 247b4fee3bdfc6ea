//! A real single-member etcd for the witness tests (`tests/witness.rs`): Debian's
//! `etcd-server` (`/usr/bin/etcd`, 3.4), on free loopback ports, with its own temp data
//! directory. [`EtcdServer::start`] waits until `/health` says true; [`EtcdServer::kill9`],
//! [`EtcdServer::pause`] / [`EtcdServer::resume`] (SIGSTOP / SIGCONT) fail it mid-test;
//! Drop kills it and, if the test panicked, prints its log.
//!
//! Raft timing is tightened (50 ms heartbeat, 500 ms election timeout) so etcd grants
//! 1 s leases: its minimum TTL is 1.5 election timeouts rounded up to whole seconds
//! (2 s with the defaults).
//!
//! [`EtcdServer::start_in`] runs it in a named network namespace of the partition
//! harness (`partition.rs`), listening on that namespace's address (what the pair's
//! nodes dial, [`EtcdServer::endpoint`]) and on its loopback (the health check).

use std::fs;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tandem::witness::{Etcd, EtcdTimeouts, Keys, Record};

use super::partition::in_netns;
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
    /// Where clients reach it: 127.0.0.1, or its namespace's address.
    pub host: IpAddr,
    /// Set: it runs in this network namespace (`ip netns exec`, which execs etcd, so
    /// the child's pid is etcd's and signals reach it).
    netns: Option<String>,
}

impl EtcdServer {
    /// Starts etcd and waits (bounded) until it reports itself healthy (has a leader).
    pub fn start() -> EtcdServer {
        EtcdServer::start_at(IpAddr::V4(Ipv4Addr::LOCALHOST), None)
    }

    /// Starts etcd in network namespace `ns`, serving clients on `host` (an address of
    /// that namespace) and on the namespace's 127.0.0.1; waits until it is healthy.
    pub fn start_in(ns: &str, host: IpAddr) -> EtcdServer {
        EtcdServer::start_at(host, Some(ns.to_string()))
    }

    fn start_at(host: IpAddr, netns: Option<String>) -> EtcdServer {
        let dir = tempfile::Builder::new()
            .prefix("tandem-etcd-")
            .tempdir()
            .expect("tempdir");
        let mut etcd = EtcdServer {
            child: None,
            dir,
            client_port: free_port(),
            peer_port: free_port(),
            host,
            netns,
        };
        etcd.spawn_and_wait();
        etcd
    }

    /// `<host>:<client port>`, as [`tandem::witness::parse_witness`] returns it.
    pub fn endpoint(&self) -> String {
        format!("{}:{}", self.host, self.client_port)
    }

    /// `etcd://<host>:<client port>`: the `<tandem witness>` attribute.
    pub fn url(&self) -> String {
        format!("etcd://{}", self.endpoint())
    }

    /// What the pair whose `witnessKey` is `prefix` keeps in etcd: the record on
    /// `<prefix>/lease` (present while a node holds the lease) and the one on
    /// `<prefix>/state`; Err if etcd does not answer or a key holds something else.
    /// Asked on the loopback of etcd's own namespace, so it works from anywhere.
    pub fn records(&self, prefix: &str) -> Result<(Option<Record>, Option<Record>), String> {
        let port = self.client_port;
        let prefix = prefix.to_string();
        let read = move || -> Result<(Option<Record>, Option<Record>), String> {
            let c = Etcd::new(vec![format!("127.0.0.1:{port}")], EtcdTimeouts::default())
                .map_err(|e| e.to_string())?;
            let keys = Keys::new(&prefix);
            let mut out = [None, None];
            for (k, key) in [&keys.lease, &keys.state].into_iter().enumerate() {
                if let Some(kv) = c.get(key).map_err(|e| e.to_string())? {
                    out[k] = Some(Record::decode(&kv.value).map_err(|e| e.to_string())?);
                }
            }
            Ok((out[0], out[1]))
        };
        match &self.netns {
            None => read(),
            Some(ns) => in_netns(ns, read),
        }
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default()
    }

    fn spawn_and_wait(&mut self) {
        let client = format!("http://{}:{}", self.host, self.client_port);
        // In a namespace, also on its loopback: the health check dials 127.0.0.1.
        let listen = match &self.netns {
            None => client.clone(),
            Some(_) => format!("{client},http://127.0.0.1:{}", self.client_port),
        };
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("etcd.log"))
            .expect("etcd log file");
        let mut cmd = match &self.netns {
            None => Command::new(etcd_bin()),
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(etcd_bin());
                c
            }
        };
        let child = cmd
            .arg("--name=witness")
            .arg(format!(
                "--data-dir={}",
                self.dir.path().join("data").display()
            ))
            .arg(format!("--listen-client-urls={listen}"))
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
        let check = || {
            http_request(port, "GET", "/health", None, Duration::from_secs(2))
                .is_some_and(|r| r.code == 200 && r.body.contains("\"health\":\"true\""))
        };
        let healthy = match &self.netns {
            None => poll_until(START_TIMEOUT, check),
            Some(ns) => in_netns(ns, || poll_until(START_TIMEOUT, check)),
        };
        assert!(
            healthy,
            "etcd not healthy on {}:{port} after {START_TIMEOUT:?}:\n{}",
            self.host,
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
