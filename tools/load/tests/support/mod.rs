//! Test harness for `tandem-load`: runs the real tool against a real broker, the
//! `tandem` binary (spawned as the main crate's tests/support does, trimmed to what
//! these tests need) or ActiveMQ Classic via `tools/activemq run`.
//!
//! No bare sleeps: every wait is a bounded poll on something observable.

#![allow(dead_code)]

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod proxy;

pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A small checked run: 1000 messages, 2 producers (8 in flight) and 2 consumers, no
/// warm-up, quiet.
pub const SMALL_RUN: &[&str] = &[
    "--messages",
    "1000",
    "--warmup",
    "0s",
    "--drain-quiet",
    "1s",
    "--producers",
    "2",
    "--consumers",
    "2",
    "--max-pending",
    "8",
    "--quiet",
];

/// Calls `check` until it returns true or `timeout` passes; true if it succeeded.
pub fn poll_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
        pause = (pause * 2).min(Duration::from_millis(100));
    }
    check()
}

/// A free loopback port. Races with other processes are possible but rare; the
/// broker's start-up would then fail loudly.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// The tool under test.
pub fn load_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tandem-load"))
}

/// The broker binary: `$TANDEM_BIN` (tools/test sets it), else the `tandem` next to
/// `tandem-load` in the same target directory, which `cargo test --workspace` builds.
pub fn tandem_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("TANDEM_BIN") {
        return PathBuf::from(p);
    }
    let sibling = load_bin().with_file_name("tandem");
    assert!(
        sibling.exists(),
        "no tandem binary at {} (and TANDEM_BIN unset): run `cargo test --workspace`, \
         or `cargo build --bin tandem` with the same profile first",
        sibling.display()
    );
    sibling
}

/// A real Tandem broker in a temp dir (STOMP on `port`); killed on drop, its log printed
/// if the test panics.
pub struct Tandem {
    child: Child,
    dir: tempfile::TempDir,
    pub port: u16,
    /// [`Tandem::start_tls`]: an `auto+ssl` connector (STOMP or OpenWire in TLS) with
    /// `tests/fixtures/tls/server.pem` (names `localhost` and `127.0.0.1`).
    pub tls_port: Option<u16>,
}

/// A file of `tests/fixtures/tls` (test-only certificates, see its README).
pub fn tls_fixture(name: &str) -> String {
    format!("{}/tests/fixtures/tls/{name}", env!("CARGO_MANIFEST_DIR"))
}

impl Tandem {
    pub fn start() -> Tandem {
        Tandem::start_with(false)
    }

    /// As [`Tandem::start`], plus a TLS connector on `tls_port`.
    pub fn start_tls() -> Tandem {
        Tandem::start_with(true)
    }

    fn start_with(tls: bool) -> Tandem {
        let dir = tempfile::Builder::new()
            .prefix("tandem-load-itest-")
            .tempdir()
            .expect("tempdir");
        let port = free_port();
        let tls_port = tls.then(free_port);
        let (tls_connector, tls_files) = match tls_port {
            Some(p) => (
                format!(r#"<transportConnector name="tls" uri="auto+ssl://127.0.0.1:{p}"/>"#),
                format!(
                    r#" tlsCertificate="{}" tlsPrivateKey="{}""#,
                    tls_fixture("server.pem"),
                    tls_fixture("server.key")
                ),
            ),
            None => (String::new(), String::new()),
        };
        let data = dir.path().join("data");
        fs::create_dir_all(&data).expect("data dir");
        let config = dir.path().join("broker.xml");
        fs::write(
            &config,
            format!(
                r#"<?xml version="1.0" encoding="UTF-8"?>
<broker xmlns="http://activemq.apache.org/schema/core" brokerName="load-itest" dataDirectory="{data}" persistent="true">
  <transportConnectors>
    <transportConnector name="stomp" uri="stomp://127.0.0.1:{port}"/>
    {tls_connector}
  </transportConnectors>
  <persistenceAdapter><kahaDB journalMaxFileLength="8 mb"/></persistenceAdapter>
  <systemUsage><systemUsage><memoryUsage><memoryUsage limit="32 mb"/></memoryUsage></systemUsage></systemUsage>
  <tandem shards="2" pinCores="false"{tls_files}/>
</broker>
"#,
                data = data.display()
            ),
        )
        .expect("write config");
        let log = fs::File::create(dir.path().join("broker.log")).expect("log");
        let child = Command::new(tandem_bin())
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(&data)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("spawn tandem");
        let mut b = Tandem {
            child,
            dir,
            port,
            tls_port,
        };
        let url = b.url();
        let ready = poll_until(START_TIMEOUT, || {
            tandem::client::Client::connect(&url, Default::default()).is_ok()
        });
        assert!(ready, "tandem not serving STOMP on {port}:\n{}", b.log());
        assert!(b.child.try_wait().expect("try_wait").is_none());
        b
    }

    pub fn url(&self) -> String {
        format!("stomp://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("broker.log")).unwrap_or_default()
    }
}

impl Drop for Tandem {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- tandem log ----\n{}", self.log());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Why ActiveMQ cannot run here, if it cannot (the test then skips, saying so).
pub fn activemq_missing() -> Option<String> {
    for tool in ["java", "javac"] {
        let found = Command::new(tool)
            .arg("-version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if !found {
            return Some(format!("{tool} not found"));
        }
    }
    for jar in ["activemq-broker", "activemq-stomp", "activemq-kahadb-store"] {
        let p = Path::new("/usr/share/java").join(format!("{jar}.jar"));
        if !p.exists() {
            return Some(format!("{} missing (libactivemq-java)", p.display()));
        }
    }
    None
}

/// A real ActiveMQ Classic 5.17 (KahaDB, default sync) from `tools/activemq run`,
/// STOMP on `stomp_port`; killed on drop.
pub struct ActiveMq {
    child: Child,
    dir: tempfile::TempDir,
    pub port: u16,
    pub stomp_port: u16,
}

impl ActiveMq {
    pub fn start() -> ActiveMq {
        let dir = tempfile::Builder::new()
            .prefix("activemq-load-itest-")
            .tempdir()
            .expect("tempdir");
        let (port, stomp_port) = (free_port(), free_port());
        let tool = Path::new(env!("CARGO_MANIFEST_DIR")).join("../activemq");
        let log = fs::File::create(dir.path().join("activemq.log")).expect("log");
        let child = Command::new(tool)
            .args(["run", "--port", &port.to_string()])
            .args(["--stomp-port", &stomp_port.to_string()])
            .arg("--data")
            .arg(dir.path())
            .arg("--kahadb")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("spawn tools/activemq run");
        let mut b = ActiveMq {
            child,
            dir,
            port,
            stomp_port,
        };
        // Compiling the Java side on a first run takes a while; STARTED means the
        // connectors accept.
        let started = poll_until(Duration::from_secs(180), || {
            b.log().lines().any(|l| l.starts_with("STARTED"))
                || b.child.try_wait().ok().flatten().is_some()
        });
        assert!(
            started && b.log().lines().any(|l| l.starts_with("STARTED")),
            "ActiveMQ did not start:\n{}",
            b.log()
        );
        b
    }

    pub fn url(&self) -> String {
        format!("stomp://127.0.0.1:{}", self.stomp_port)
    }

    /// Its OpenWire connector.
    pub fn openwire_url(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("activemq.log")).unwrap_or_default()
    }
}

impl Drop for ActiveMq {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- activemq log ----\n{}", self.log());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A finished `tandem-load` run.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub report: serde_json::Value,
}

impl Run {
    pub fn check(&self, key: &str) -> u64 {
        self.report["check"][key]
            .as_u64()
            .unwrap_or_else(|| panic!("no check.{key} in the report:\n{}", self.dump()))
    }

    pub fn dump(&self) -> String {
        format!(
            "exit {:?}\nstdout:\n{}\nstderr:\n{}\nreport:\n{:#}",
            self.code, self.stdout, self.stderr, self.report
        )
    }
}

/// Runs `tandem-load --url URL ARGS --json FILE` to completion (bounded) and parses
/// the report.
pub fn run_load(url: &str, args: &[&str]) -> Run {
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("report.json");
    let mut child = Command::new(load_bin())
        .arg("--url")
        .arg(url)
        .args(args)
        .arg("--json")
        .arg(&json)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tandem-load");
    let mut status = None;
    poll_until(Duration::from_secs(180), || {
        status = child.try_wait().expect("try_wait");
        status.is_some()
    });
    if status.is_none() {
        let _ = child.kill();
    }
    let out = child.wait_with_output().expect("wait tandem-load");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        status.is_some(),
        "tandem-load still running after 180 s\n{stdout}\n{stderr}"
    );
    let report = fs::read_to_string(&json)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(serde_json::Value::Null);
    Run {
        code: out.status.code(),
        stdout,
        stderr,
        report,
    }
}
