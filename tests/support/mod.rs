//! A tiny harness for integration tests that run the real `tandem` binary.
//!
//! * [`free_port`] — a loopback port nobody in this process has been given yet.
//! * [`Broker`] — writes a config into a temp dir, spawns the binary, waits until it
//!   answers a STOMP CONNECT; [`Broker::kill9`], [`Broker::restart`], [`Broker::stop`].
//!   Its stderr goes to a log file that is printed if the test panics.
//! * [`Stomp`] — a blocking raw STOMP client over `std::net::TcpStream`: tests speak
//!   protocol bytes and assert on exact replies.
//! * [`poll_until`] — the only way to wait: bounded in time and in attempts.
//! * [`pair`] — master/slave nodes and pairs (`tests/pair.rs`).
//! * [`etcd`] — a real etcd on free ports for the witness tests (`tests/witness.rs`,
//!   `tests/witness_pair.rs`).
//! * [`safety`] — a failover STOMP producer that logs every confirmation with its node
//!   and time, and the checks on that log (`tests/pair_safety.rs`,
//!   `tests/witness_pair.rs`).
//! * [`jms`] — the real ActiveMQ JMS client (Java probes in `tests/java`) and a real
//!   ActiveMQ Classic broker; [`jms_cases`] — the JMS tests both brokers must pass
//!   (`tests/jms_activemq.rs`, `tests/jms_tandem.rs`).
//! * [`tls`] — a test CA and stores made with `openssl`/`keytool`, and `openssl
//!   s_client` as a STOMP client (`tests/tls.rs`).
//!
//! No bare sleeps: every wait is a bounded poll on something observable.

#![allow(dead_code)]

pub mod etcd;
pub mod jms;
pub mod jms_cases;
pub mod netns;
pub mod pair;
pub mod partition;
pub mod safety;
pub mod stomp_py;
pub mod tls;

use std::collections::HashSet;
use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a broker may take to start answering.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a single reply (RECEIPT, CONNECTED, MESSAGE) may take in a test.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------
// Waiting

/// The value of the unlabelled sample `name` in Prometheus text (`/metrics`).
#[allow(dead_code)]
pub fn prom_sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {name} in:\n{text}"))
        .parse()
        .unwrap_or_else(|e| panic!("sample {name}: {e}"))
}

/// Calls `check` until it returns true or `timeout` passes; true if it succeeded.
/// Attempts are spaced by a short back-off and bounded in number.
pub fn poll_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    for _attempt in 0..100_000 {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
        pause = (pause * 2).min(Duration::from_millis(100));
    }
    false
}

// ---------------------------------------------------------------------------------
// Child processes

/// Runs `cmd` to completion within `timeout`: (status, stdout, stderr). Killed and Err
/// if it takes longer.
pub fn run_bounded(
    cmd: &mut Command,
    timeout: Duration,
) -> Result<(ExitStatus, String, String), String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn {cmd:?}: {e}"))?;
    let out = read_all(child.stdout.take().unwrap());
    let err = read_all(child.stderr.take().unwrap());
    let mut status = None;
    poll_until(timeout, || {
        status = child.try_wait().expect("try_wait");
        status.is_some()
    });
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!("{cmd:?} still running after {timeout:?}"));
    };
    Ok((status, out.join().unwrap(), err.join().unwrap()))
}

/// Reads `r` to the end on a thread of its own (so a full pipe never blocks the child).
pub fn read_all(mut r: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = r.read_to_string(&mut s);
        s
    })
}

/// A size field of `/proc/<pid>/status` in bytes: `VmRSS` (resident now), `VmHWM`
/// (the peak resident set size).
pub fn proc_status_bytes(pid: u32, field: &str) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"));
    kb * 1024
}

// ---------------------------------------------------------------------------------
// Ports

static GIVEN_PORTS: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A free loopback port (bind 127.0.0.1:0), never the same twice in this process.
pub fn free_port() -> u16 {
    for _ in 0..1000 {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind 127.0.0.1:0")
            .port();
        let mut given = GIVEN_PORTS.lock().unwrap();
        if given.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
    panic!("no free port after 1000 attempts");
}

/// Waits until something accepts TCP connections on `port`.
pub fn wait_for_port(port: u16, timeout: Duration) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    poll_until(timeout, || {
        TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
    })
}

// ---------------------------------------------------------------------------------
// The broker process

/// What to put in the generated configuration.
#[derive(Clone, Debug)]
pub struct BrokerOpts {
    pub shards: u32,
    /// `<memoryUsage limit>`, e.g. "8 mb".
    pub memory_limit: String,
    /// `<kahaDB journalMaxFileLength>`.
    pub segment_size: String,
    pub max_frame_size: Option<String>,
    pub max_header_size: Option<String>,
    pub max_headers: Option<u32>,
    /// Users of the simple authentication plugin; empty: no plugin, anyone connects.
    pub users: Vec<(String, String)>,
    /// `<tandem statusPort>`: the HTTP status/metrics endpoint; `None`: off.
    pub status_port: Option<u16>,
    /// A `tcp://127.0.0.1:P` transport connector (OpenWire, for JMS clients) besides
    /// the STOMP one; `None`: none.
    pub openwire_port: Option<u16>,
    /// `RUST_LOG` for the broker (e.g. to see a module's debug lines in [`Broker::log`]);
    /// `None`: inherited.
    pub rust_log: Option<String>,
    /// Extra command-line arguments (e.g. `--skip-damaged-records`).
    pub args: Vec<String>,
    /// Extra environment variables of the broker process (e.g. a fault hook's).
    pub env: Vec<(String, String)>,
    /// The data directory (`--data-dir`); `None`: `data` in the broker's temp dir.
    pub data_dir: Option<PathBuf>,
    /// `<storeUsage limit>`, e.g. "8 mb"; `None`: not written (the default).
    pub store_limit: Option<String>,
    /// `<tandem connectAttemptTimeout>` in ms (the pre-login deadline); `None`: default.
    pub connect_attempt_timeout_ms: Option<u64>,
    /// `<tandem maxLoginFrameSize>`; `None`: default.
    pub max_login_frame_size: Option<String>,
    /// `<tandem statusHost>`; `None`: default (127.0.0.1).
    pub status_host: Option<String>,
    /// Names among `users` whose groups include `admins` (the admin endpoint's group).
    pub admins: Vec<String>,
    /// `?maximumConnections=N` on the STOMP connector; `None`: unlimited.
    pub max_connections: Option<u32>,
    /// `<tandem replicationSecret>`: the node then accepts authenticated slaves.
    pub replication_secret: Option<String>,
    /// More `<tandem>` attributes, written as is (e.g. `maxTransactionSize="1 mb"`).
    pub tandem_extra: Option<String>,
    /// More transport connector URIs, written as is after the STOMP and OpenWire ones
    /// (e.g. `ssl://127.0.0.1:P?needClientAuth=true`); see [`ConfigXml::connectors`]
    /// for their names.
    pub extra_connectors: Vec<String>,
    /// More `<broker>` children, written as is (e.g. an `<sslContext>` element).
    pub broker_xml: Option<String>,
    /// More `<broker>` attributes, written as is (e.g. `schedulerSupport="true"`).
    pub broker_attrs: Option<String>,
    /// More `<plugins>` children, written as is (e.g. a `<redeliveryPlugin>`).
    pub plugins_xml: Option<String>,
}

impl Default for BrokerOpts {
    fn default() -> Self {
        BrokerOpts {
            shards: 2,
            memory_limit: "8 mb".into(),
            segment_size: "1 mb".into(),
            max_frame_size: None,
            max_header_size: None,
            max_headers: None,
            users: Vec::new(),
            status_port: None,
            openwire_port: None,
            rust_log: None,
            args: Vec::new(),
            env: Vec::new(),
            data_dir: None,
            store_limit: None,
            connect_attempt_timeout_ms: None,
            max_login_frame_size: None,
            status_host: None,
            admins: Vec::new(),
            max_connections: None,
            replication_secret: None,
            tandem_extra: None,
            extra_connectors: Vec::new(),
            broker_xml: None,
            broker_attrs: None,
            plugins_xml: None,
        }
    }
}

/// The XML configuration for `opts`, listening on `port`, data in `data_dir`.
pub fn config_xml(opts: &BrokerOpts, port: u16, data_dir: &Path) -> String {
    let mut tandem = format!(r#"shards="{}" pinCores="false""#, opts.shards);
    push_attr(&mut tandem, "maxFrameSize", opts.max_frame_size.as_ref());
    push_attr(&mut tandem, "maxHeaderSize", opts.max_header_size.as_ref());
    push_attr(&mut tandem, "maxHeaders", opts.max_headers);
    push_attr(&mut tandem, "statusPort", opts.status_port);
    push_attr(&mut tandem, "statusHost", opts.status_host.as_ref());
    push_attr(
        &mut tandem,
        "connectAttemptTimeout",
        opts.connect_attempt_timeout_ms,
    );
    push_attr(
        &mut tandem,
        "maxLoginFrameSize",
        opts.max_login_frame_size.as_ref(),
    );
    push_attr(
        &mut tandem,
        "replicationSecret",
        opts.replication_secret.as_ref(),
    );
    if let Some(v) = &opts.tandem_extra {
        tandem.push(' ');
        tandem.push_str(v);
    }
    let stomp_options = opts
        .max_connections
        .map(|n| format!("?maximumConnections={n}"))
        .unwrap_or_default();
    let mut connectors = vec![format!("stomp://127.0.0.1:{port}{stomp_options}")];
    if let Some(p) = opts.openwire_port {
        connectors.push(format!("tcp://127.0.0.1:{p}"));
    }
    connectors.extend(opts.extra_connectors.iter().cloned());
    ConfigXml {
        name: "itest",
        data_dir,
        broker_attrs: opts
            .broker_attrs
            .as_ref()
            .map(|a| format!(" {a}"))
            .unwrap_or_default(),
        children: opts.broker_xml.clone().unwrap_or_default(),
        connectors,
        segment: &opts.segment_size,
        memory: &opts.memory_limit,
        store_limit: opts.store_limit.as_deref(),
        plugins: with_plugins(
            auth_plugin_xml_with_admins(&opts.users, &opts.admins),
            opts.plugins_xml.as_deref(),
        ),
        services: String::new(),
        tandem,
    }
    .render()
}

/// A `<plugins>` element (`plugins`, or empty) with `extra` children added.
pub fn with_plugins(plugins: String, extra: Option<&str>) -> String {
    let Some(extra) = extra else { return plugins };
    if plugins.is_empty() {
        return format!("  <plugins>\n{extra}\n  </plugins>\n");
    }
    plugins.replacen("  </plugins>", &format!("{extra}\n  </plugins>"), 1)
}

/// Appends ` name="value"` to `attrs` when `value` is set.
pub fn push_attr(attrs: &mut String, name: &str, value: Option<impl std::fmt::Display>) {
    if let Some(v) = value {
        attrs.push_str(&format!(r#" {name}="{v}""#));
    }
}

/// What differs between the `activemq.xml` files the tests generate (single brokers
/// here, pair nodes in `pair.rs`); [`ConfigXml::render`] is the one template.
pub struct ConfigXml<'a> {
    /// `<broker brokerName>`.
    pub name: &'a str,
    pub data_dir: &'a Path,
    /// Extra `<broker>` attributes, each with its leading space.
    pub broker_attrs: String,
    /// Extra `<broker>` children (e.g. `<sslContext>`), written first, as is; or empty.
    pub children: String,
    /// Transport connector URIs. Names: `stomp` for `stomp://`, `openwire` for
    /// `tcp://`, the scheme for any other (`ssl`, `stomp+ssl`, ...); `-2`, `-3`... is
    /// appended to a name already taken (the broker refuses a name used twice).
    pub connectors: Vec<String>,
    /// `journalMaxFileLength`.
    pub segment: &'a str,
    /// `<memoryUsage limit>`.
    pub memory: &'a str,
    /// `<storeUsage limit>`, when set.
    pub store_limit: Option<&'a str>,
    /// The `<plugins>` element, or empty.
    pub plugins: String,
    /// The `<services>` element, or empty.
    pub services: String,
    /// The `<tandem>` element's attributes.
    pub tandem: String,
}

impl ConfigXml<'_> {
    pub fn render(&self) -> String {
        let mut names: Vec<String> = Vec::new();
        let connectors: String = self
            .connectors
            .iter()
            .map(|uri| {
                let scheme = uri.split_once("://").map_or(uri.as_str(), |(s, _)| s);
                let base = match scheme {
                    "stomp" => "stomp",
                    "tcp" => "openwire",
                    other => other,
                };
                let name = (1..)
                    .map(|n| match n {
                        1 => base.to_string(),
                        n => format!("{base}-{n}"),
                    })
                    .find(|n| !names.contains(n))
                    .expect("a free connector name");
                names.push(name.clone());
                // `&` is the one URI character XML attributes need escaped.
                let uri = uri.replace('&', "&amp;");
                format!("    <transportConnector name=\"{name}\" uri=\"{uri}\"/>\n")
            })
            .collect();
        let store = self.store_limit.map_or(String::new(), |l| {
            format!(
                "      <storeUsage>\n        <storeUsage limit=\"{l}\"/>\n      </storeUsage>\n"
            )
        });
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<broker xmlns="http://activemq.apache.org/schema/core" brokerName="{name}" dataDirectory="{data}" persistent="true"{broker_attrs}>
{children}  <transportConnectors>
{connectors}  </transportConnectors>
  <persistenceAdapter>
    <kahaDB journalMaxFileLength="{segment}"/>
  </persistenceAdapter>
  <systemUsage>
    <systemUsage>
      <memoryUsage>
        <memoryUsage limit="{memory}"/>
      </memoryUsage>
{store}    </systemUsage>
  </systemUsage>
{plugins}{services}  <tandem {tandem}/>
</broker>
"#,
            name = self.name,
            data = self.data_dir.display(),
            broker_attrs = self.broker_attrs,
            children = self.children,
            segment = self.segment,
            memory = self.memory,
            plugins = self.plugins,
            services = self.services,
            tandem = self.tandem,
        )
    }
}

/// The `<plugins>` element for `users` (simple authentication), or nothing when empty.
pub fn auth_plugin_xml(users: &[(String, String)]) -> String {
    auth_plugin_xml_with_admins(users, &[])
}

/// [`auth_plugin_xml`] where the users named in `admins` are also in group `admins`.
pub fn auth_plugin_xml_with_admins(users: &[(String, String)], admins: &[String]) -> String {
    if users.is_empty() {
        return String::new();
    }
    let users: String = users
        .iter()
        .map(|(u, p)| {
            let groups = if admins.contains(u) {
                "admins,users"
            } else {
                "users"
            };
            format!(
                r#"        <authenticationUser username="{u}" password="{p}" groups="{groups}"/>"#
            ) + "\n"
        })
        .collect();
    format!(
        "  <plugins>\n    <simpleAuthenticationPlugin>\n      <users>\n{users}      </users>\n    </simpleAuthenticationPlugin>\n  </plugins>\n"
    )
}

/// A reply of [`http_request`].
pub struct HttpReply {
    pub code: u16,
    /// Status line and headers.
    pub head: String,
    pub body: String,
}

impl HttpReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// A minimal HTTP/1.1 request with an empty body to 127.0.0.1:`port` (the status
/// endpoint), with HTTP Basic credentials if given; `None` if the port does not answer
/// or the reply is not HTTP.
pub fn http_request(
    port: u16,
    method: &str,
    path: &str,
    login: Option<(&str, &str)>,
    timeout: Duration,
) -> Option<HttpReply> {
    // What a script or curl call to the admin endpoint sends: a header no browser
    // form can, so the request is not taken for a cross-site one.
    let headers: &[(&str, &str)] = if method == "POST" {
        &[("X-Tandem-Admin", "1")]
    } else {
        &[]
    };
    http_request_with(port, method, path, login, headers, timeout)
}

/// [`http_request`] with exactly these extra `headers` (no `X-Tandem-Admin` added).
pub fn http_request_with(
    port: u16,
    method: &str,
    path: &str,
    login: Option<(&str, &str)>,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> Option<HttpReply> {
    use base64::Engine;
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    let auth = login
        .map(|(u, p)| {
            format!(
                "Authorization: Basic {}\r\n",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        })
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}{extra}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some(HttpReply {
        code,
        head: head.to_string(),
        body: body.to_string(),
    })
}

/// Path of the binary under test.
pub fn tandem_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tandem"))
}

/// Runs `tandem` with `args` and waits (bounded) for it to exit by itself.
/// Returns its exit status and everything it wrote to stderr; panics if it is
/// still running after `timeout` (it is killed first).
pub fn run_to_exit(args: &[&std::ffi::OsStr], timeout: Duration) -> (ExitStatus, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("stderr.log");
    let mut child = Command::new(tandem_bin())
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log).expect("create log"))
        .spawn()
        .expect("spawn tandem");
    let mut status = None;
    poll_until(timeout, || {
        status = child.try_wait().expect("try_wait");
        status.is_some()
    });
    let stderr = fs::read_to_string(&log).unwrap_or_default();
    match status {
        Some(s) => (s, stderr),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("tandem {args:?} still running after {timeout:?}; stderr:\n{stderr}");
        }
    }
}

/// A running broker in its own temp dir. Dropping it kills the process; if the test
/// is panicking, the broker's log is printed first.
pub struct Broker {
    /// The running process; `None` between `kill9`/`stop` and `restart`.
    child: Option<Child>,
    /// Holds config, data and logs; removed on drop.
    dir: tempfile::TempDir,
    pub port: u16,
    pub opts: BrokerOpts,
    /// Incremented on every (re)start; names the log file of that run.
    run: u32,
}

impl Broker {
    /// Starts a broker with `opts` and waits until it answers a STOMP CONNECT.
    pub fn start(opts: BrokerOpts) -> Broker {
        let dir = tempfile::Builder::new()
            .prefix("tandem-itest-")
            .tempdir()
            .expect("tempdir");
        let mut broker = Broker {
            child: None,
            dir,
            port: free_port(),
            opts,
            run: 0,
        };
        broker.write_config();
        broker.spawn_and_wait();
        broker
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The broker's data directory (`--data-dir`).
    pub fn data_dir(&self) -> PathBuf {
        self.opts
            .data_dir
            .clone()
            .unwrap_or_else(|| self.dir.path().join("data"))
    }

    /// The journal directory (`<data>/journal`: one `shard-N` directory per shard).
    pub fn journal_dir(&self) -> PathBuf {
        self.data_dir().join("journal")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("broker.xml")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join(format!("broker-{}.log", self.run))
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("broker is not running").id()
    }

    fn write_config(&self) {
        fs::create_dir_all(self.data_dir()).expect("create data dir");
        let xml = config_xml(&self.opts, self.port, &self.data_dir());
        fs::write(self.config_path(), xml).expect("write config");
    }

    /// Spawns the process (a new run, its own log file); does not wait.
    fn spawn(&mut self) {
        assert!(self.child.is_none(), "broker already running");
        self.run += 1;
        let log = fs::File::create(self.log_path()).expect("create log");
        let mut command = Command::new(tandem_bin());
        command
            .arg("--config")
            .arg(self.config_path())
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(&self.opts.args)
            .envs(self.opts.env.iter().map(|(k, v)| (k, v)))
            .env("NO_COLOR", "1");
        if let Some(filter) = &self.opts.rust_log {
            command.env("RUST_LOG", filter);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("spawn tandem");
        self.child = Some(child);
    }

    /// Starts the broker again expecting it to refuse to start: waits (bounded) for
    /// the process to exit and returns its status and log. Panics if it serves.
    pub fn start_expecting_exit(&mut self) -> (ExitStatus, String) {
        self.spawn();
        let mut status = None;
        let exited = poll_until(START_TIMEOUT, || {
            status = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            status.is_some()
        });
        assert!(
            exited,
            "broker still running after {START_TIMEOUT:?}; log:\n{}",
            self.log()
        );
        self.child = None;
        let status = status.expect("exited");
        (status, self.log())
    }

    fn spawn_and_wait(&mut self) {
        self.spawn();
        let port = self.port;
        let mut exited = None;
        let ready = poll_until(START_TIMEOUT, || {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                exited = Some(status);
                return true;
            }
            // Ready means the broker answers a CONNECT (CONNECTED, or ERROR when a
            // login is required), not only that the port is bound.
            Stomp::probe(port, Duration::from_secs(2))
        });
        if let Some(status) = exited {
            self.child = None;
            panic!(
                "broker exited during start-up with {status}; log:\n{}",
                self.log()
            );
        }
        assert!(
            ready,
            "broker not ready on port {port} after {START_TIMEOUT:?}"
        );
    }

    /// Everything the current run wrote to stdout/stderr.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// SIGKILL, and wait until the process is gone.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("broker is not running");
        child.kill().expect("kill -9");
        child.wait().expect("wait after kill -9");
        self.wait_port_released();
    }

    /// After the process is reaped its listening socket can outlive it briefly: the
    /// kernel tears an io_uring instance down asynchronously, and a pending accept
    /// holds the socket until then. Wait (bounded) until the port can be bound again.
    fn wait_port_released(&self) {
        let port = self.port;
        let free = poll_until(Duration::from_secs(10), || {
            TcpListener::bind(("127.0.0.1", port)).is_ok()
        });
        assert!(free, "port {port} still bound 10 s after the broker died");
    }

    /// SIGTERM, then SIGKILL if it has not exited after 10 s. Returns the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("broker is not running");
        // SAFETY: sending a signal to our own child's pid; no memory involved.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let mut status = None;
        poll_until(Duration::from_secs(10), || {
            status = child.try_wait().unwrap();
            status.is_some()
        });
        let status = match status {
            Some(s) => s,
            None => {
                let _ = child.kill();
                child.wait().expect("wait")
            }
        };
        self.wait_port_released();
        status
    }

    /// Starts the broker again: same config, ports and data directory.
    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.kill9();
        }
        self.spawn_and_wait();
    }

    /// Waits (bounded) for the process to exit by itself and reaps it; panics with its
    /// log if it still runs after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("broker is not running");
        let mut status = None;
        poll_until(timeout, || {
            status = child.try_wait().expect("try_wait");
            status.is_some()
        });
        match status {
            Some(s) => {
                self.wait_port_released();
                s
            }
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the broker still ran {timeout:?} after it was expected to exit:\n{}",
                    self.log()
                )
            }
        }
    }

    /// True if the process has exited (reaps it).
    pub fn has_exited(&mut self) -> bool {
        match self.child.as_mut() {
            None => true,
            Some(c) => c.try_wait().unwrap().is_some(),
        }
    }

    /// Resident set size of the broker process in bytes (VmRSS from /proc).
    pub fn rss_bytes(&self) -> u64 {
        proc_status_bytes(self.pid(), "VmRSS")
    }

    /// A connected STOMP 1.2 session.
    pub fn client(&self) -> Stomp {
        Stomp::connect(self.port)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            for run in 1..=self.run {
                let path = self.dir.path().join(format!("broker-{run}.log"));
                let text = fs::read_to_string(&path).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(200).collect();
                eprintln!(
                    "---- broker log, run {run} ({}), last 200 lines ----",
                    path.display()
                );
                for l in tail.iter().rev() {
                    eprintln!("{l}");
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// A raw STOMP client

/// One frame as received: command, headers in order (escapes decoded), body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub command: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Frame {
    /// The first value of header `name` (STOMP: the first occurrence wins).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// What a read returned instead of a frame.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadEnd {
    /// The peer closed the connection (EOF or reset).
    Closed,
    /// Nothing complete arrived in time.
    Timeout,
}

/// Encodes a client frame (headers escaped as STOMP 1.2 wants, content-length set when
/// there is a body).
pub fn encode(command: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    fn esc(s: &str) -> String {
        s.replace('\\', "\\\\")
            .replace('\n', "\\n")
            .replace('\r', "\\r")
            .replace(':', "\\c")
    }
    let mut out = Vec::with_capacity(64 + body.len());
    out.extend_from_slice(command.as_bytes());
    out.push(b'\n');
    let escape = command != "CONNECT" && command != "STOMP";
    for (k, v) in headers {
        if escape {
            out.extend_from_slice(format!("{}:{}\n", esc(k), esc(v)).as_bytes());
        } else {
            out.extend_from_slice(format!("{k}:{v}\n").as_bytes());
        }
    }
    if !body.is_empty() {
        out.extend_from_slice(format!("content-length:{}\n", body.len()).as_bytes());
    }
    out.push(b'\n');
    out.extend_from_slice(body);
    out.push(0);
    out
}

/// A blocking STOMP connection. Reads buffer bytes until a whole frame is there.
pub struct Stomp {
    pub stream: TcpStream,
    /// Received bytes not yet parsed into a frame.
    buf: Vec<u8>,
    /// Heart-beat EOLs seen between frames (diagnostics and heart-beat tests).
    pub heartbeats_seen: u64,
}

impl Stomp {
    /// A bare TCP connection, nothing sent.
    pub fn tcp(port: u16) -> Stomp {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to broker");
        stream.set_nodelay(true).ok();
        Stomp {
            stream,
            buf: Vec::new(),
            heartbeats_seen: 0,
        }
    }

    /// CONNECT with `headers` (accept-version and host added if missing); returns the
    /// connection and the broker's reply frame (CONNECTED or ERROR).
    pub fn connect_with(port: u16, headers: &[(&str, &str)]) -> (Stomp, Result<Frame, ReadEnd>) {
        let mut s = Stomp::tcp(port);
        let mut all: Vec<(&str, &str)> = Vec::new();
        if !headers.iter().any(|(k, _)| *k == "accept-version") {
            all.push(("accept-version", "1.2"));
        }
        if !headers.iter().any(|(k, _)| *k == "host") {
            all.push(("host", "localhost"));
        }
        all.extend_from_slice(headers);
        s.send_raw(&encode("CONNECT", &all, b""));
        let reply = s.read_frame(REPLY_TIMEOUT);
        (s, reply)
    }

    /// A STOMP 1.2 session with heart-beats off; panics unless CONNECTED.
    pub fn connect(port: u16) -> Stomp {
        Stomp::connect_login(port, None)
    }

    /// Like [`Stomp::connect`], logging in as `(login, passcode)`.
    pub fn connect_login(port: u16, login: Option<(&str, &str)>) -> Stomp {
        let mut headers = vec![("heart-beat", "0,0")];
        if let Some((l, p)) = login {
            headers.push(("login", l));
            headers.push(("passcode", p));
        }
        let (s, reply) = Stomp::connect_with(port, &headers);
        let f = reply.expect("reply to CONNECT");
        assert_eq!(f.command, "CONNECTED", "CONNECT refused: {f:?}");
        assert_eq!(f.header("version"), Some("1.2"), "{f:?}");
        s
    }

    /// The start-up check: true if an anonymous CONNECT gets any STOMP reply in time.
    pub fn probe(port: u16, timeout: Duration) -> bool {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let Ok(stream) = TcpStream::connect_timeout(&addr, timeout) else {
            return false;
        };
        let mut s = Stomp {
            stream,
            buf: Vec::new(),
            heartbeats_seen: 0,
        };
        let connect = encode(
            "CONNECT",
            &[
                ("accept-version", "1.2"),
                ("host", "localhost"),
                ("heart-beat", "0,0"),
            ],
            b"",
        );
        if s.try_send_raw(&connect).is_err() {
            return false;
        }
        matches!(s.read_frame(timeout), Ok(f) if f.command == "CONNECTED" || f.command == "ERROR")
    }

    /// Some if a CONNECT gets CONNECTED within `timeout`.
    pub fn try_connect(port: u16, timeout: Duration) -> Option<Stomp> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let stream = TcpStream::connect_timeout(&addr, timeout).ok()?;
        stream.set_nodelay(true).ok();
        let mut s = Stomp {
            stream,
            buf: Vec::new(),
            heartbeats_seen: 0,
        };
        let connect = encode(
            "CONNECT",
            &[
                ("accept-version", "1.2"),
                ("host", "localhost"),
                ("heart-beat", "0,0"),
            ],
            b"",
        );
        s.stream.write_all(&connect).ok()?;
        match s.read_frame(timeout) {
            Ok(f) if f.command == "CONNECTED" => Some(s),
            _ => None,
        }
    }

    /// Writes bytes as they are. Errors (the broker may have closed) are returned.
    pub fn try_send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.try_send_raw(bytes).expect("write to broker");
    }

    pub fn send_frame(&mut self, command: &str, headers: &[(&str, &str)], body: &[u8]) {
        self.send_raw(&encode(command, headers, body));
    }

    /// SEND with a receipt; waits for the RECEIPT and checks its id.
    pub fn send_receipted(&mut self, dest: &str, body: &[u8], receipt: &str) {
        self.send_frame(
            "SEND",
            &[
                ("destination", dest),
                ("persistent", "true"),
                ("receipt", receipt),
            ],
            body,
        );
        self.expect_receipt(receipt);
    }

    /// Reads the next frame and asserts it is RECEIPT `id`.
    pub fn expect_receipt(&mut self, id: &str) {
        let f = self
            .read_frame(REPLY_TIMEOUT)
            .unwrap_or_else(|e| panic!("waiting for RECEIPT {id}: {e:?}"));
        assert_eq!(f.command, "RECEIPT", "waiting for RECEIPT {id}: {f:?}");
        assert_eq!(f.header("receipt-id"), Some(id), "{f:?}");
    }

    /// SUBSCRIBE `id` to `dest` with `ack` mode, confirmed by a receipt.
    pub fn subscribe(&mut self, id: &str, dest: &str, ack: &str) {
        let receipt = format!("sub-{id}");
        self.send_frame(
            "SUBSCRIBE",
            &[
                ("id", id),
                ("destination", dest),
                ("ack", ack),
                ("receipt", &receipt),
            ],
            b"",
        );
        self.expect_receipt(&receipt);
    }

    /// Reads the next MESSAGE, panicking on anything else or on timeout.
    pub fn expect_message(&mut self) -> Frame {
        match self.read_frame(REPLY_TIMEOUT) {
            Ok(f) if f.command == "MESSAGE" => f,
            other => panic!("expected MESSAGE, got {other:?}"),
        }
    }

    /// Reads frames until the connection closes (within `timeout`): Ok(frames seen
    /// before the close), or Err(frames seen) if it is still open.
    pub fn frames_until_closed(&mut self, timeout: Duration) -> Result<Vec<Frame>, Vec<Frame>> {
        let deadline = Instant::now() + timeout;
        let mut frames = Vec::new();
        for _ in 0..10_000 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match self.read_frame(left) {
                Ok(f) => frames.push(f),
                Err(ReadEnd::Closed) => return Ok(frames),
                Err(ReadEnd::Timeout) => break,
            }
        }
        Err(frames)
    }

    /// Reads one frame, skipping heart-beat EOLs. Bytes after the frame stay buffered.
    pub fn read_frame(&mut self, timeout: Duration) -> Result<Frame, ReadEnd> {
        let deadline = Instant::now() + timeout;
        let mut chunk = vec![0u8; 64 * 1024];
        for _ in 0..1_000_000 {
            if let Some(f) = self.parse_buffered() {
                return Ok(f);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ReadEnd::Timeout);
            }
            self.stream
                .set_read_timeout(Some(left))
                .expect("set_read_timeout");
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(ReadEnd::Closed),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Err(ReadEnd::Timeout)
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::ConnectionReset
                            | ErrorKind::ConnectionAborted
                            | ErrorKind::BrokenPipe
                    ) =>
                {
                    return Err(ReadEnd::Closed)
                }
                Err(e) => panic!("read from broker: {e}"),
            }
        }
        Err(ReadEnd::Timeout)
    }

    /// Parses one frame from the front of `buf` if a complete one is there.
    fn parse_buffered(&mut self) -> Option<Frame> {
        // Heart-beats: EOLs between frames.
        let mut start = 0;
        while start < self.buf.len() && (self.buf[start] == b'\n' || self.buf[start] == b'\r') {
            if self.buf[start] == b'\n' {
                self.heartbeats_seen += 1;
            }
            start += 1;
        }
        self.buf.drain(..start);
        let head_end = find(&self.buf, b"\n\n")
            .map(|i| (i, i + 2))
            .into_iter()
            .chain(find(&self.buf, b"\r\n\r\n").map(|i| (i, i + 4)))
            .min_by_key(|(i, _)| *i)?;
        let head = String::from_utf8_lossy(&self.buf[..head_end.0]).into_owned();
        let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
        let command = lines.next().unwrap_or("").to_string();
        let mut headers = Vec::new();
        for line in lines {
            let (k, v) = line.split_once(':').unwrap_or((line, ""));
            headers.push((unescape(k), unescape(v)));
        }
        let body_start = head_end.1;
        let content_length = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse::<usize>().ok());
        let (body_end, frame_end) = match content_length {
            Some(n) => {
                if self.buf.len() < body_start + n + 1 {
                    return None;
                }
                (body_start + n, body_start + n + 1)
            }
            None => {
                let nul = self.buf[body_start..].iter().position(|&b| b == 0)?;
                (body_start + nul, body_start + nul + 1)
            }
        };
        let body = self.buf[body_start..body_end].to_vec();
        self.buf.drain(..frame_end);
        Some(Frame {
            command,
            headers,
            body,
        })
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('c') => out.push(':'),
            Some('\\') => out.push('\\'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

// ---------------------------------------------------------------------------------
// Test data

/// A deterministic xorshift generator; seed it from [`seed_from_env`] so a failure
/// replays.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// `TANDEM_TEST_SEED` if set, else a seed from the clock; printed either way.
pub fn seed_from_env(test: &str) -> u64 {
    let seed = std::env::var("TANDEM_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("{test}: seed {seed} (replay with TANDEM_TEST_SEED={seed})");
    seed
}
