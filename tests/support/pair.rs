//! Harness for master/slave tests: [`Node`] is one `tandem` process whose configuration
//! may make it a slave; [`Pair`] is a master and an attached, caught-up slave.
//!
//! Every node has a `stomp://` connector (clients), a `tcp://` connector (the slave's
//! replication link lands there; STOMP is served there too) and a status port. Unlike
//! [`super::Broker`], starting a node does not wait for anything: a slave never opens its
//! client ports, so tests wait for what they expect ([`Node::wait_serving`],
//! [`Node::wait_status`], [`Node::wait_exit`]).
//!
//! * [`Node`] — `start`/`kill9`/`term`/`restart`/`wait_exit`, `/status` as JSON,
//!   port probes ([`refuses`]). Its log (one file per run) is printed if the test panics.
//! * [`Pair::start`] — master serving, slave attached, both report `in-sync`.
//! * [`takeover_time`] — `kill -9` the master and time until the slave answers a CONNECT.
//! * [`test_slot`] — a process-wide limit on how many pair tests run at once, so that
//!   parallel tests on a small machine do not starve each other's heartbeats.
//!
//! Status helpers ([`role`], [`peer`], [`epoch`], [`takeovers`], [`depth`]) read the
//! `/status` JSON.
//!
//! A pair with a witness: [`PairOpts::with_witness`]`(&`[`Witness::for_test`]`(etcd
//! endpoint, test name))` writes the same `<tandem witness witnessKey witnessLease>`
//! into both nodes' configurations, with a key prefix no other test uses.
//!
//! Nodes listen on 127.0.0.1 unless [`NodeOpts::in_netns`] puts one in a named network
//! namespace (`partition.rs`): then it is spawned through `ip netns exec`, its
//! connectors and status endpoint bind the namespace's address ([`Node::host`]), and
//! every [`Node`] method dials that address (run them where it is reachable: the
//! partition harness's router namespace).

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{
    encode, free_port, poll_until, push_attr, tandem_bin, ConfigXml, Stomp, REPLY_TIMEOUT,
};

/// Replication heartbeat used by every test node (ms); the peer is lost after 5 missed.
pub const HEARTBEAT_MS: u64 = 100;
/// Bound on a node answering (status port, STOMP port) after it was started.
pub const NODE_START_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on a slave catching up with an (almost) empty master.
pub const SYNC_TIMEOUT: Duration = Duration::from_secs(60);
/// Liveness bound on a takeover (the time itself is printed, not asserted).
pub const TAKEOVER_LIMIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------
// Configuration

/// Where nodes listen unless [`NodeOpts::host`] says otherwise.
pub const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// How a slave's configuration names its master.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkStyle {
    /// `<broker masterConnectorURI="tcp://H:P">` (H: 127.0.0.1 unless the master runs
    /// elsewhere).
    Uri,
    /// `<services><masterConnector remoteURI="tcp://H:P" userName password/>`.
    Connector { user: String, password: String },
}

/// A slave's link to its master.
#[derive(Clone, Debug)]
pub struct MasterLink {
    /// The URI scheme: `tcp`, or `ssl` for a link that runs TLS (the slave checks the
    /// master's certificate against its own trust material).
    pub scheme: String,
    /// The master's address ([`LOOPBACK`] unless it runs in a namespace).
    pub host: IpAddr,
    /// The master's connector port (its `tcp://` one unless the link runs TLS).
    pub port: u16,
    pub style: LinkStyle,
}

/// What goes into a node's generated configuration. `None` attributes are not written
/// (the broker's defaults apply).
#[derive(Clone, Debug)]
pub struct NodeOpts {
    /// `<broker brokerName>`; also names the node in panic output.
    pub name: String,
    /// `<tandem shards>`: must be the same on both nodes of a pair.
    pub shards: u32,
    /// `<kahaDB journalMaxFileLength>`: must be the same on both nodes of a pair.
    pub segment_size: String,
    /// `<memoryUsage limit>`.
    pub memory_limit: String,
    /// Users of the simple authentication plugin; empty: no plugin.
    pub users: Vec<(String, String)>,
    /// Set: this node is configured as a slave of that master.
    pub master: Option<MasterLink>,
    pub shutdown_on_master_failure: Option<bool>,
    pub wait_for_slave: Option<bool>,
    pub wait_for_slave_timeout_ms: Option<u64>,
    pub shutdown_on_slave_failure: Option<bool>,
    /// `<tandem replicationHeartbeat>` in ms.
    pub heartbeat_ms: Option<u64>,
    /// `<tandem replicationSecret>`; [`TEST_REPLICATION_SECRET`] unless a test changes
    /// it. `None`: not written (a node that cannot authenticate a slave).
    pub replication_secret: Option<String>,
    /// `<tandem replicationGroup>`; when `None` and `users` is set, "users" (the group
    /// every test user is in, see `auth_plugin_xml`).
    pub replication_group: Option<String>,
    /// `<tandem replicationAckTimeout>` in ms.
    pub replication_ack_timeout_ms: Option<u64>,
    /// `<tandem replicationBuffer>` (a size, e.g. "2 mb").
    pub replication_buffer: Option<String>,
    /// `<tandem replicationCore>`: the CPU of a dedicated replication executor.
    /// `None`: not written (on a host with fewer CPUs than shards + 1 the core then
    /// runs on shard 0's executor).
    pub replication_core: Option<usize>,
    /// Extra environment variables of the process (e.g. a fault hook's).
    pub env: Vec<(String, String)>,
    /// The address the connectors and the status endpoint (`statusHost`) bind, and
    /// the one test clients dial. `None`: 127.0.0.1 (and no `statusHost` written).
    pub host: Option<IpAddr>,
    /// Set: the process runs in this named network namespace (`ip netns exec <ns>
    /// tandem ...`), which must hold `host`.
    pub netns: Option<String>,
    /// `<tandem witness witnessKey>`: the etcd URL (`etcd://host:port,...`) and the
    /// pair's key prefix. Both nodes of a pair must name the same; give every test its
    /// own key ([`Witness::for_test`]). `None`: no witness.
    pub witness: Option<Witness>,
    /// More transport connector URIs, written as is after the `stomp://` and `tcp://`
    /// ones (e.g. `ssl://127.0.0.1:P`; names as [`ConfigXml::connectors`] says). The
    /// node's methods know nothing of them (ports, probes).
    pub extra_connectors: Vec<String>,
    /// More `<broker>` children, written as is (e.g. an `<sslContext>` element).
    pub broker_xml: Option<String>,
    /// More `<broker>` attributes, written as is (e.g. `schedulerSupport="true"`).
    pub broker_attrs: Option<String>,
}

/// The witness a node's `<tandem>` element names (`witness`, `witnessKey`,
/// `witnessLease`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Witness {
    /// `witness`: `etcd://host:port[,host:port...]`.
    pub url: String,
    /// `witnessKey`: the pair's key prefix in etcd.
    pub key: String,
    /// `witnessLease` in seconds; `None`: not written (the broker's default, 2 s).
    pub lease_secs: Option<u64>,
}

impl Witness {
    /// The etcd at `endpoint` (`host:port`) with a key prefix no other test uses:
    /// `/tandem/test/<pid>/<name>/<n>` (`n` counts the calls in this process).
    pub fn for_test(endpoint: &str, name: &str) -> Witness {
        static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Witness {
            url: format!("etcd://{endpoint}"),
            key: format!("/tandem/test/{}/{name}/{n}", std::process::id()),
            lease_secs: None,
        }
    }

    /// The same witness with `witnessLease` set.
    pub fn lease(mut self, secs: u64) -> Witness {
        self.lease_secs = Some(secs);
        self
    }
}

/// The replication secret both nodes of a test pair share.
pub const TEST_REPLICATION_SECRET: &str = "test-pair-secret-4f1c9a";

impl NodeOpts {
    pub fn named(name: &str) -> NodeOpts {
        NodeOpts {
            name: name.to_string(),
            shards: 2,
            segment_size: "1 mb".into(),
            memory_limit: "32 mb".into(),
            users: Vec::new(),
            master: None,
            shutdown_on_master_failure: None,
            wait_for_slave: None,
            wait_for_slave_timeout_ms: None,
            shutdown_on_slave_failure: None,
            heartbeat_ms: Some(HEARTBEAT_MS),
            replication_secret: Some(TEST_REPLICATION_SECRET.to_string()),
            replication_group: None,
            replication_ack_timeout_ms: None,
            replication_buffer: None,
            replication_core: None,
            env: Vec::new(),
            host: None,
            netns: None,
            witness: None,
            extra_connectors: Vec::new(),
            broker_xml: None,
            broker_attrs: None,
        }
    }

    /// These options as a slave of the master whose `tcp://` connector is
    /// 127.0.0.1:`port`.
    pub fn slave_of(self, port: u16, style: LinkStyle) -> NodeOpts {
        self.slave_of_at(LOOPBACK, port, style)
    }

    /// These options as a slave of the master whose `tcp://` connector is
    /// `host`:`port`.
    pub fn slave_of_at(self, host: IpAddr, port: u16, style: LinkStyle) -> NodeOpts {
        self.slave_via("tcp", host, port, style)
    }

    /// These options as a slave of the master at `scheme://host:port` (`ssl`: the
    /// link runs TLS; `port` is then the master's `ssl://` connector, one of its
    /// [`NodeOpts::extra_connectors`]).
    pub fn slave_via(
        mut self,
        scheme: &str,
        host: IpAddr,
        port: u16,
        style: LinkStyle,
    ) -> NodeOpts {
        self.master = Some(MasterLink {
            scheme: scheme.to_string(),
            host,
            port,
            style,
        });
        self
    }

    /// These options for a node running in network namespace `ns`, listening on
    /// `host` (an address of that namespace).
    pub fn in_netns(mut self, ns: &str, host: IpAddr) -> NodeOpts {
        self.netns = Some(ns.to_string());
        self.host = Some(host);
        self
    }

    /// These options with `<tandem witness witnessKey witnessLease>` from `w`.
    pub fn with_witness(mut self, w: &Witness) -> NodeOpts {
        self.witness = Some(w.clone());
        self
    }
}

/// The XML configuration of a node.
pub fn node_config_xml(
    opts: &NodeOpts,
    stomp_port: u16,
    tcp_port: u16,
    status_port: u16,
    data_dir: &Path,
) -> String {
    let host = opts.host.unwrap_or(LOOPBACK);
    let mut broker_attrs = String::new();
    let mut services = String::new();
    if let Some(link) = &opts.master {
        let uri = format!(
            "{}://{}",
            link.scheme,
            SocketAddr::new(link.host, link.port)
        );
        match &link.style {
            LinkStyle::Uri => broker_attrs.push_str(&format!(r#" masterConnectorURI="{uri}""#)),
            LinkStyle::Connector { user, password } => {
                services = format!(
                    "  <services>\n    <masterConnector remoteURI=\"{uri}\" userName=\"{user}\" password=\"{password}\"/>\n  </services>\n"
                )
            }
        }
    }
    push_attr(
        &mut broker_attrs,
        "shutdownOnMasterFailure",
        opts.shutdown_on_master_failure,
    );
    push_attr(&mut broker_attrs, "waitForSlave", opts.wait_for_slave);
    if let Some(a) = &opts.broker_attrs {
        broker_attrs.push(' ');
        broker_attrs.push_str(a);
    }
    push_attr(
        &mut broker_attrs,
        "waitForSlaveTimeout",
        opts.wait_for_slave_timeout_ms,
    );
    push_attr(
        &mut broker_attrs,
        "shutdownOnSlaveFailure",
        opts.shutdown_on_slave_failure,
    );
    let mut tandem = format!(
        r#"shards="{}" pinCores="false" statusPort="{status_port}""#,
        opts.shards
    );
    push_attr(&mut tandem, "statusHost", opts.host);
    push_attr(&mut tandem, "replicationHeartbeat", opts.heartbeat_ms);
    push_attr(
        &mut tandem,
        "replicationSecret",
        opts.replication_secret.as_ref(),
    );
    let group = match (&opts.replication_group, opts.users.is_empty()) {
        (Some(g), _) => Some(g.as_str()),
        (None, false) => Some("users"),
        (None, true) => None,
    };
    push_attr(&mut tandem, "replicationGroup", group);
    push_attr(
        &mut tandem,
        "replicationAckTimeout",
        opts.replication_ack_timeout_ms,
    );
    push_attr(
        &mut tandem,
        "replicationBuffer",
        opts.replication_buffer.as_ref(),
    );
    push_attr(&mut tandem, "replicationCore", opts.replication_core);
    if let Some(w) = &opts.witness {
        push_attr(&mut tandem, "witness", Some(&w.url));
        push_attr(&mut tandem, "witnessKey", Some(&w.key));
        push_attr(&mut tandem, "witnessLease", w.lease_secs);
    }
    ConfigXml {
        name: &opts.name,
        data_dir,
        broker_attrs,
        children: opts.broker_xml.clone().unwrap_or_default(),
        connectors: [
            format!("stomp://{}", SocketAddr::new(host, stomp_port)),
            format!("tcp://{}", SocketAddr::new(host, tcp_port)),
        ]
        .into_iter()
        .chain(opts.extra_connectors.iter().cloned())
        .collect(),
        segment: &opts.segment_size,
        memory: &opts.memory_limit,
        store_limit: None,
        plugins: super::auth_plugin_xml(&opts.users),
        services,
        tandem,
    }
    .render()
}

// ---------------------------------------------------------------------------------
// Running several pair tests at once

struct Slots {
    free: Mutex<Option<usize>>,
    changed: Condvar,
}

static SLOTS: Slots = Slots {
    free: Mutex::new(None),
    changed: Condvar::new(),
};

/// Held for the duration of a test; see [`test_slot`].
pub struct TestSlot(());

impl Drop for TestSlot {
    fn drop(&mut self) {
        let mut free = SLOTS.free.lock().unwrap_or_else(|e| e.into_inner());
        *free.get_or_insert(0) += 1;
        SLOTS.changed.notify_one();
    }
}

/// Waits (bounded) for one of the process-wide test slots. Two brokers with heartbeats
/// every 100 ms per test: on a two-core machine, a dozen pairs at once would miss
/// heartbeats for reasons that have nothing to do with the code under test. Slots:
/// `TANDEM_PAIR_TESTS` if set, else half the available cores (at least one).
pub fn test_slot() -> TestSlot {
    let deadline = Instant::now() + Duration::from_secs(3600);
    let mut free = SLOTS.free.lock().unwrap_or_else(|e| e.into_inner());
    if free.is_none() {
        let n = std::env::var("TANDEM_PAIR_TESTS")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get() / 2)
                    .unwrap_or(1)
            })
            .max(1);
        *free = Some(n);
    }
    for _ in 0..1_000_000 {
        if let Some(n) = free.as_mut().filter(|n| **n > 0) {
            *n -= 1;
            return TestSlot(());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no pair-test slot after an hour");
        free = SLOTS
            .changed
            .wait_timeout(free, left.min(Duration::from_secs(1)))
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
    panic!("no pair-test slot");
}

// ---------------------------------------------------------------------------------
// Ports and HTTP

/// True if a TCP connect to `port` is refused (ECONNREFUSED): nothing listens there.
/// A self-connection (the kernel picked `port` as our own ephemeral port while nothing
/// listens) counts as refused too.
pub fn refuses(port: u16) -> bool {
    refuses_at(SocketAddr::from(([127, 0, 0, 1], port)))
}

/// [`refuses`] for any address.
pub fn refuses_at(addr: SocketAddr) -> bool {
    match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
        Err(e) => e.kind() == ErrorKind::ConnectionRefused,
        Ok(s) => s.local_addr().ok() == s.peer_addr().ok(),
    }
}

/// A minimal HTTP/1.1 GET on 127.0.0.1:`port`: (status code, body), or None if the
/// port does not answer.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    super::http_request(port, "GET", path, None, Duration::from_secs(10)).map(|r| (r.code, r.body))
}

/// A minimal HTTP/1.1 POST with an empty body (the status endpoint's `/admin/*`):
/// (status code, body), or None if the port does not answer. An admin operation waits
/// for the journal and the slave, hence the longer read timeout.
pub fn http_post(port: u16, path: &str) -> Option<(u16, String)> {
    super::http_request(port, "POST", path, None, Duration::from_secs(60)).map(|r| (r.code, r.body))
}

/// A minimal HTTP/1.1 request with an empty body to `addr` (what
/// [`super::http_request`] does on 127.0.0.1, without credentials): (status code,
/// body), or None if it does not connect within 2 s or answer within `timeout`.
pub fn http_at(
    addr: SocketAddr,
    method: &str,
    path: &str,
    timeout: Duration,
) -> Option<(u16, String)> {
    let admin = if method == "POST" {
        "X-Tandem-Admin: 1\r\n"
    } else {
        ""
    };
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.set_write_timeout(Some(timeout)).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{admin}Content-Length: 0\r\nConnection: \
         close\r\n\r\n"
    )
    .ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, body.to_string()))
}

// ---------------------------------------------------------------------------------
// STOMP at any address (`Stomp`'s own constructors dial 127.0.0.1)

/// A bare TCP connection to `addr` as a [`Stomp`], nothing sent; None if it does not
/// connect within `timeout`.
pub fn stomp_tcp_at(addr: SocketAddr, timeout: Duration) -> Option<Stomp> {
    let stream = TcpStream::connect_timeout(&addr, timeout).ok()?;
    stream.set_nodelay(true).ok();
    Some(Stomp {
        stream,
        buf: Vec::new(),
        heartbeats_seen: 0,
    })
}

/// CONNECT (STOMP 1.2, heart-beats off, optional login) to `addr`: the session and
/// the broker's reply (CONNECTED or ERROR), or None if the connection, the write or
/// the reply fails within `timeout`.
pub fn stomp_connect_at(
    addr: SocketAddr,
    login: Option<(&str, &str)>,
    timeout: Duration,
) -> Option<(Stomp, super::Frame)> {
    let mut s = stomp_tcp_at(addr, timeout)?;
    let mut headers = vec![
        ("accept-version", "1.2"),
        ("host", "localhost"),
        ("heart-beat", "0,0"),
    ];
    if let Some((l, p)) = login {
        headers.push(("login", l));
        headers.push(("passcode", p));
    }
    s.try_send_raw(&encode("CONNECT", &headers, b"")).ok()?;
    let reply = s.read_frame(timeout).ok()?;
    Some((s, reply))
}

/// [`Stomp::probe`] for any address: true if an anonymous CONNECT gets CONNECTED or
/// ERROR within `timeout`.
pub fn stomp_probe_at(addr: SocketAddr, timeout: Duration) -> bool {
    stomp_connect_at(addr, None, timeout)
        .is_some_and(|(_, f)| f.command == "CONNECTED" || f.command == "ERROR")
}

// ---------------------------------------------------------------------------------
// /status readers

/// Top-level `"role"`.
pub fn role(s: &serde_json::Value) -> &str {
    s["role"].as_str().unwrap_or("")
}

/// `replication.peer`; `"none"` when there is no `replication` object yet.
pub fn peer(s: &serde_json::Value) -> &str {
    if s["replication"].is_null() {
        "none"
    } else {
        s["replication"]["peer"].as_str().unwrap_or("")
    }
}

/// `replication.epoch`.
pub fn epoch(s: &serde_json::Value) -> Option<u64> {
    s["replication"]["epoch"].as_u64()
}

/// `replication.takeovers`.
pub fn takeovers(s: &serde_json::Value) -> Option<u64> {
    s["replication"]["takeovers"].as_u64()
}

/// The entry of destination `dest` (`/queue/x`; `queue://x` is accepted as a spelling).
pub fn destination(s: &serde_json::Value, dest: &str) -> Option<serde_json::Value> {
    let alt = dest
        .strip_prefix("/queue/")
        .map(|n| format!("queue://{n}"))
        .or_else(|| dest.strip_prefix("/topic/").map(|n| format!("topic://{n}")))
        .unwrap_or_else(|| dest.to_string());
    s["destinations"]
        .as_array()?
        .iter()
        .find(|d| d["name"] == dest || d["name"] == alt.as_str())
        .cloned()
}

/// `depth` of `dest`; 0 when the destination is not listed.
pub fn depth(s: &serde_json::Value, dest: &str) -> u64 {
    destination(s, dest)
        .and_then(|d| d["depth"].as_u64())
        .unwrap_or(0)
}

/// A master with a caught-up slave.
pub fn is_master_in_sync(s: &serde_json::Value) -> bool {
    role(s) == "master" && peer(s) == "in-sync"
}

/// A slave that has caught up.
pub fn is_slave_in_sync(s: &serde_json::Value) -> bool {
    role(s) == "slave" && peer(s) == "in-sync"
}

// ---------------------------------------------------------------------------------
// A node

/// One `tandem` process (not necessarily running) in its own temp dir: config, data
/// and one log per run. Dropping it kills the process; if the test is panicking, the
/// logs are printed first. Every method takes `&self`, so a node can be shared with
/// threads by reference.
pub struct Node {
    pub opts: NodeOpts,
    pub stomp_port: u16,
    pub tcp_port: u16,
    pub status_port: u16,
    dir: tempfile::TempDir,
    proc: Mutex<Proc>,
}

#[derive(Default)]
struct Proc {
    child: Option<Child>,
    /// Exit status of the last run, once reaped.
    exited: Option<ExitStatus>,
    /// Incremented on every start; names that run's log file.
    run: u32,
}

impl Node {
    /// A node with fresh ports and a fresh data dir; its config is written, nothing runs.
    pub fn new(opts: NodeOpts) -> Node {
        let dir = tempfile::Builder::new()
            .prefix("tandem-pair-")
            .tempdir()
            .expect("tempdir");
        let node = Node {
            opts,
            stomp_port: free_port(),
            tcp_port: free_port(),
            status_port: free_port(),
            dir,
            proc: Mutex::new(Proc::default()),
        };
        fs::create_dir_all(node.data_dir()).expect("create data dir");
        node.write_config();
        node
    }

    /// [`Node::new`] and [`Node::start`]: the process runs, nothing is waited for.
    pub fn spawn(opts: NodeOpts) -> Node {
        let node = Node::new(opts);
        node.start();
        node
    }

    /// Rewrites the configuration from `self.opts` (ports and data dir unchanged).
    pub fn write_config(&self) {
        let xml = node_config_xml(
            &self.opts,
            self.stomp_port,
            self.tcp_port,
            self.status_port,
            &self.data_dir(),
        );
        fs::write(self.config_path(), xml).expect("write config");
    }

    pub fn name(&self) -> &str {
        &self.opts.name
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `--data-dir`: journal, lock file and `node.state` live here.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("broker.xml")
    }

    fn proc(&self) -> MutexGuard<'_, Proc> {
        self.proc.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn log_path_of(&self, run: u32) -> PathBuf {
        self.dir.path().join(format!("node-{run}.log"))
    }

    /// The current (or last) run's log file.
    pub fn log_path(&self) -> PathBuf {
        self.log_path_of(self.proc().run)
    }

    /// Everything the current (or last) run wrote to stdout/stderr.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The last `n` lines of the current run's log, for assertion messages.
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Where its connectors and status endpoint listen: 127.0.0.1 unless
    /// [`NodeOpts::host`] is set.
    pub fn host(&self) -> IpAddr {
        self.opts.host.unwrap_or(LOOPBACK)
    }

    /// `host`:`stomp_port`.
    pub fn stomp_addr(&self) -> SocketAddr {
        SocketAddr::new(self.host(), self.stomp_port)
    }

    /// `host`:`tcp_port`.
    pub fn tcp_addr(&self) -> SocketAddr {
        SocketAddr::new(self.host(), self.tcp_port)
    }

    /// `host`:`status_port`.
    pub fn status_addr(&self) -> SocketAddr {
        SocketAddr::new(self.host(), self.status_port)
    }

    /// `stomp://<host>:<stomp port>`.
    pub fn stomp_url(&self) -> String {
        format!("stomp://{}", self.stomp_addr())
    }

    /// Spawns the process (same config, ports and data dir as before). Does not wait.
    pub fn start(&self) {
        let mut p = self.proc();
        assert!(p.child.is_none(), "{}: already running", self.name());
        p.run += 1;
        p.exited = None;
        let log = fs::File::create(self.log_path_of(p.run)).expect("create log");
        // `ip netns exec` execs tandem: the child's pid is tandem's.
        let mut cmd = match &self.opts.netns {
            None => Command::new(tandem_bin()),
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(tandem_bin());
                c
            }
        };
        let child = cmd
            .arg("--config")
            .arg(self.config_path())
            .arg("--data-dir")
            .arg(self.data_dir())
            .envs(self.opts.env.iter().map(|(k, v)| (k, v)))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("spawn tandem");
        p.child = Some(child);
    }

    pub fn pid(&self) -> u32 {
        self.proc()
            .child
            .as_ref()
            .unwrap_or_else(|| panic!("{}: not running", self.name()))
            .id()
    }

    /// True while the process runs (reaps it if it exited).
    pub fn is_running(&self) -> bool {
        self.try_exit_status().is_none() && self.proc().child.is_some()
    }

    /// The exit status if the process has exited (reaps it); None while it runs or
    /// if it was never started.
    pub fn try_exit_status(&self) -> Option<ExitStatus> {
        let mut p = self.proc();
        if let Some(child) = p.child.as_mut() {
            if let Some(status) = child.try_wait().expect("try_wait") {
                p.child = None;
                p.exited = Some(status);
            }
        }
        p.exited
    }

    /// Waits (bounded) for the process to exit by itself; panics with its log if it is
    /// still running after `timeout`.
    pub fn wait_exit(&self, timeout: Duration) -> ExitStatus {
        let mut status = None;
        poll_until(timeout, || {
            status = self.try_exit_status();
            status.is_some()
        });
        status.unwrap_or_else(|| {
            panic!(
                "{} still running {timeout:?} after it was expected to exit; log tail:\n{}",
                self.name(),
                self.log_tail(60)
            )
        })
    }

    /// SIGKILL, and reap. Returns once the process is gone (its ports may still be
    /// held for a moment; [`Node::restart`] waits for them).
    pub fn kill9(&self) {
        let mut p = self.proc();
        let mut child = p
            .child
            .take()
            .unwrap_or_else(|| panic!("{}: kill9 but not running", self.name()));
        child.kill().expect("kill -9");
        p.exited = Some(child.wait().expect("wait after kill -9"));
    }

    /// Sends `sig` to the running process (no waiting).
    pub fn signal(&self, sig: libc::c_int) {
        let pid = self.pid();
        // SAFETY: sending a signal to our own child's pid; no memory involved.
        let rc = unsafe { libc::kill(pid as libc::pid_t, sig) };
        assert_eq!(rc, 0, "kill({pid}, {sig})");
    }

    /// SIGTERM (no waiting; follow with [`Node::wait_exit`]).
    pub fn term(&self) {
        self.signal(libc::SIGTERM);
    }

    /// Starts the node again with the same config, ports and data dir (kill -9 first
    /// if it still runs). Waits until its old listening ports can be bound again, then
    /// spawns; does not wait for the new process to answer.
    pub fn restart(&self) {
        if self.proc().child.is_some() {
            self.kill9();
        }
        self.wait_ports_released();
        self.start();
    }

    /// After a process is reaped, a listening socket can outlive it briefly (io_uring
    /// teardown is asynchronous). Waits (bounded) until every port can be bound.
    pub fn wait_ports_released(&self) {
        let host = self.host();
        let bindable = |port: u16| match &self.opts.netns {
            None => std::net::TcpListener::bind((host, port)).is_ok(),
            Some(ns) => {
                super::partition::in_netns(ns, || std::net::TcpListener::bind((host, port)).is_ok())
            }
        };
        for port in [self.stomp_port, self.tcp_port, self.status_port] {
            let free = poll_until(Duration::from_secs(10), || bindable(port));
            assert!(
                free,
                "{}: port {port} still bound 10 s after exit",
                self.name()
            );
        }
    }

    /// Panics (with the log) if the process has exited.
    pub fn assert_running(&self) {
        if let Some(status) = self.try_exit_status() {
            panic!(
                "{} exited with {status}; log tail:\n{}",
                self.name(),
                self.log_tail(60)
            );
        }
    }

    /// `/status` as JSON, or None if the status port does not answer (yet).
    pub fn try_status(&self) -> Option<serde_json::Value> {
        self.try_status_within(Duration::from_secs(10))
    }

    /// [`Node::try_status`], giving up on a reply after `timeout` (a stopped process
    /// accepts the connection but never answers).
    pub fn try_status_within(&self, timeout: Duration) -> Option<serde_json::Value> {
        let (code, body) = http_at(self.status_addr(), "GET", "/status", timeout)?;
        if code != 200 {
            return None;
        }
        serde_json::from_str(&body).ok()
    }

    /// `/status` as JSON; panics if it does not answer.
    pub fn status(&self) -> serde_json::Value {
        self.try_status().unwrap_or_else(|| {
            panic!(
                "{}: /status does not answer on port {}; log tail:\n{}",
                self.name(),
                self.status_addr(),
                self.log_tail(60)
            )
        })
    }

    /// Polls `/status` until `pred` holds; returns that status. Panics with the last
    /// status and the log if `timeout` passes, or at once if the process exits.
    pub fn wait_status(
        &self,
        pred: impl Fn(&serde_json::Value) -> bool,
        timeout: Duration,
    ) -> serde_json::Value {
        let mut last = None;
        let mut exited = None;
        let ok = poll_until(timeout, || {
            if let Some(s) = self.try_status() {
                let done = pred(&s);
                last = Some(s);
                if done {
                    return true;
                }
            }
            exited = self.try_exit_status();
            exited.is_some()
        });
        match (ok, exited, last) {
            (true, None, Some(s)) => s,
            (_, Some(status), last) => panic!(
                "{} exited with {status} while waiting on /status; last: {last:?}; log tail:\n{}",
                self.name(),
                self.log_tail(60)
            ),
            (_, None, last) => panic!(
                "{}: /status never matched within {timeout:?}; last: {last:?}; log tail:\n{}",
                self.name(),
                self.log_tail(60)
            ),
        }
    }

    /// Waits until the STOMP port answers a CONNECT (CONNECTED, or ERROR when a login
    /// is required). Panics if the process exits or `timeout` passes.
    pub fn wait_serving(&self, timeout: Duration) {
        let mut exited = None;
        let ok = poll_until(timeout, || {
            if self.probe(Duration::from_secs(2)) {
                return true;
            }
            exited = self.try_exit_status();
            exited.is_some()
        });
        if let Some(status) = exited {
            panic!(
                "{} exited with {status} before serving; log tail:\n{}",
                self.name(),
                self.log_tail(60)
            );
        }
        assert!(
            ok,
            "{}: STOMP port {} not answering after {timeout:?}; log tail:\n{}",
            self.name(),
            self.stomp_addr(),
            self.log_tail(60)
        );
    }

    /// True if an anonymous CONNECT on the `stomp://` port gets CONNECTED or ERROR
    /// within `timeout` ([`Stomp::probe`] at [`Node::host`]).
    pub fn probe(&self, timeout: Duration) -> bool {
        stomp_probe_at(self.stomp_addr(), timeout)
    }

    /// Both client ports (`stomp://` and `tcp://`) refuse connections right now.
    pub fn ports_refuse(&self) -> bool {
        refuses_at(self.stomp_addr()) && refuses_at(self.tcp_addr())
    }

    /// Asserts both client ports refuse connections (ECONNREFUSED).
    pub fn assert_ports_refused(&self, when: &str) {
        for (what, addr) in [("stomp", self.stomp_addr()), ("tcp", self.tcp_addr())] {
            assert!(
                refuses_at(addr),
                "{}: its {what} port {addr} accepted a connection {when}",
                self.name()
            );
        }
    }

    /// Polls `until` for at most `timeout`, asserting at every step that both client
    /// ports refuse connections. Returns whether `until` became true.
    pub fn ports_stay_refused_until(
        &self,
        when: &str,
        timeout: Duration,
        mut until: impl FnMut() -> bool,
    ) -> bool {
        poll_until(timeout, || {
            self.assert_ports_refused(when);
            until()
        })
    }

    /// A raw STOMP session on the `stomp://` port (anonymous).
    pub fn client(&self) -> Stomp {
        self.connect_as(None)
    }

    /// A raw STOMP session on the `stomp://` port, logged in.
    pub fn client_login(&self, user: &str, pass: &str) -> Stomp {
        self.connect_as(Some((user, pass)))
    }

    /// [`Stomp::connect_login`] at [`Node::host`]: panics unless CONNECTED (1.2).
    fn connect_as(&self, login: Option<(&str, &str)>) -> Stomp {
        let (s, f) =
            stomp_connect_at(self.stomp_addr(), login, REPLY_TIMEOUT).unwrap_or_else(|| {
                panic!(
                    "{}: no reply to CONNECT at {}",
                    self.name(),
                    self.stomp_addr()
                )
            });
        assert_eq!(f.command, "CONNECTED", "CONNECT refused: {f:?}");
        assert_eq!(f.header("version"), Some("1.2"), "{f:?}");
        s
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let mut p = self.proc.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(mut child) = p.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            for run in 1..=p.run {
                let path = self.log_path_of(run);
                let text = fs::read_to_string(&path).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                eprintln!(
                    "---- {} log, run {run} ({}), last 200 lines ----",
                    self.opts.name,
                    path.display()
                );
                for l in &lines[lines.len().saturating_sub(200)..] {
                    eprintln!("{l}");
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// A pair

/// What [`Pair::start`] builds.
#[derive(Clone, Debug)]
pub struct PairOpts {
    /// The master's options (its `master` link stays None).
    pub master: NodeOpts,
    /// The slave's options; its `master` link is filled in by [`Pair::start`].
    pub slave: NodeOpts,
    /// How the slave names its master.
    pub link: LinkStyle,
}

impl Default for PairOpts {
    fn default() -> Self {
        PairOpts {
            master: NodeOpts::named("master"),
            slave: NodeOpts::named("slave"),
            link: LinkStyle::Uri,
        }
    }
}

impl PairOpts {
    /// These options with both nodes naming the witness `w`.
    pub fn with_witness(mut self, w: &Witness) -> PairOpts {
        self.master = self.master.with_witness(w);
        self.slave = self.slave.with_witness(w);
        self
    }

    /// Both nodes with the authentication plugin and `users`; the slave logs in to the
    /// master with `<masterConnector userName=user password=pass>`.
    pub fn with_auth(users: &[(&str, &str)], user: &str, pass: &str) -> PairOpts {
        let users: Vec<(String, String)> = users
            .iter()
            .map(|(u, p)| (u.to_string(), p.to_string()))
            .collect();
        let mut o = PairOpts::default();
        o.master.users = users.clone();
        o.slave.users = users;
        o.link = LinkStyle::Connector {
            user: user.into(),
            password: pass.into(),
        };
        o
    }
}

/// A master (named "master") and its slave (named "slave"), both running; after
/// [`Pair::start`], the slave has caught up. The roles are those of the
/// configuration: after a takeover `slave` is the one serving.
pub struct Pair {
    pub master: Node,
    pub slave: Node,
}

impl Pair {
    /// Starts the master and waits until it serves STOMP, then starts the slave and
    /// waits until both report `in-sync` (and the slave's client ports are closed).
    pub fn start(opts: PairOpts) -> Pair {
        let master = Node::spawn(opts.master);
        master.wait_serving(NODE_START_TIMEOUT);
        let slave = Node::spawn(
            opts.slave
                .slave_of_at(master.host(), master.tcp_port, opts.link),
        );
        let pair = Pair { master, slave };
        pair.wait_in_sync(SYNC_TIMEOUT);
        pair.slave
            .assert_ports_refused("while it is an in-sync slave");
        pair
    }

    /// Waits until the master reports role "master" with peer "in-sync" and the slave
    /// reports role "slave" with peer "in-sync"; returns (master, slave) statuses.
    /// Fails at once (with the logs) if either process exits meanwhile.
    pub fn wait_in_sync(&self, timeout: Duration) -> (serde_json::Value, serde_json::Value) {
        let (mut m, mut s) = (None, None);
        let ok = poll_until(timeout, || {
            self.master.assert_running();
            self.slave.assert_running();
            m = self.master.try_status();
            s = self.slave.try_status();
            m.as_ref().is_some_and(is_master_in_sync) && s.as_ref().is_some_and(is_slave_in_sync)
        });
        match (ok, m, s) {
            (true, Some(m), Some(s)) => (m, s),
            (_, m, s) => panic!(
                "pair not in sync within {timeout:?}; master /status: {m:?}; slave /status: \
                 {s:?}; master log tail:\n{}\nslave log tail:\n{}",
                self.master.log_tail(40),
                self.slave.log_tail(40)
            ),
        }
    }

    /// [`takeover_time`] from this pair's master to its slave.
    pub fn takeover_time(&self) -> Duration {
        takeover_time(&self.master, &self.slave)
    }
}

/// Kills `master` with SIGKILL and measures until `slave`'s STOMP port answers a
/// CONNECT; prints "takeover took N ms" and returns the time. Panics if it takes more
/// than [`TAKEOVER_LIMIT`] (liveness only) or if the slave exits.
pub fn takeover_time(master: &Node, slave: &Node) -> Duration {
    let started = Instant::now();
    master.kill9();
    let deadline = started + TAKEOVER_LIMIT;
    // A tight bounded loop (2 ms between attempts) rather than `poll_until`, whose
    // back-off would blur the measurement.
    for _attempt in 0..1_000_000 {
        if slave.probe(Duration::from_secs(1)) {
            let took = started.elapsed();
            println!(
                "takeover took {} ms ({} -> {})",
                took.as_millis(),
                master.name(),
                slave.name()
            );
            return took;
        }
        slave.assert_running();
        if Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    panic!(
        "{} did not serve within {TAKEOVER_LIMIT:?} of {} being killed; status: {:?}; log tail:\n{}",
        slave.name(),
        master.name(),
        slave.try_status(),
        slave.log_tail(60)
    );
}

/// Asserts `node`'s status after it took over from a master whose epoch was
/// `epoch_before`: role "master", a larger epoch, `takeovers` == `expected_takeovers`
/// (when given), peer "none" or "degraded". Returns the status.
pub fn assert_took_over(
    node: &Node,
    epoch_before: u64,
    expected_takeovers: Option<u64>,
) -> serde_json::Value {
    let s = node.wait_status(|s| role(s) == "master", Duration::from_secs(10));
    assert_eq!(s["replication"]["role"], "master", "{s}");
    let e = epoch(&s).unwrap_or_else(|| panic!("no replication.epoch: {s}"));
    assert!(
        e > epoch_before,
        "epoch after takeover {e} not above {epoch_before}: {s}"
    );
    if let Some(n) = expected_takeovers {
        assert_eq!(takeovers(&s), Some(n), "{s}");
    }
    assert!(
        matches!(peer(&s), "none" | "degraded"),
        "peer after takeover: {s}"
    );
    assert!(
        s["replication"]["last_takeover_ms"].is_u64(),
        "last_takeover_ms: {s}"
    );
    s
}

/// Pauses for a scenario's timing (e.g. "kill the master one second after X"). This is
/// not a wait for a condition: those use [`poll_until`].
pub fn scenario_delay(d: Duration) {
    std::thread::sleep(d);
}
