//! A new user's first run: the README's own commands, from a fresh copy of the
//! repository, with the shipped configurations (relative data directories, fixed ports).
//!
//! The commands are read out of README.md (the `cargo run --release -- ...` line, the
//! pair's `target/release/tandem ...` lines and the stomp.py example), so the test
//! follows the README when it changes. Each is run with the release binary under test
//! and the working directory set to the copy. The shipped ports are fixed, so the
//! scenarios run in a network namespace of their own (`support::netns`).
//!
//! Also: data directories spelled `./x`, `../x`, `x/y` and through a symlink.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::netns::{self, Loopback};
use support::{jms, poll_until, stomp_py, tandem_bin, Stomp, START_TIMEOUT};

/// The shipped configurations' ports (config/broker.xml, master.xml, slave.xml).
const STOMP: u16 = 61613;
const OPENWIRE: u16 = 61616;
const SLAVE_STOMP: u16 = 61623;
const SLAVE_OPENWIRE: u16 = 61626;

/// Bound on the slave catching up with the master.
const SYNC_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------
// The README

/// The commands README.md tells a new user to run.
struct Readme {
    /// `cargo run --release -- <args>`: the single broker.
    single: Vec<String>,
    /// `target/release/tandem <args> &`: master, then slave.
    pair: Vec<Vec<String>>,
    /// The stomp.py program under "A STOMP example".
    example: String,
}

fn readme() -> Readme {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let text = fs::read_to_string(&path).expect("read README.md");
    let words = |s: &str| -> Vec<String> {
        let s = s.split(['&', '#']).next().unwrap_or_default();
        s.split_whitespace().map(String::from).collect()
    };
    let single: Vec<Vec<String>> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("cargo run --release -- "))
        .map(words)
        .collect();
    let pair: Vec<Vec<String>> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("target/release/tandem "))
        .map(words)
        .collect();
    let example = text
        .split("## A STOMP example")
        .nth(1)
        .and_then(|s| s.split("```python\n").nth(1))
        .and_then(|s| s.split("\n```").next())
        .expect("README: a ```python block under \"A STOMP example\"")
        .to_string();
    assert_eq!(
        single.len(),
        1,
        "README: one `cargo run --release -- ` line"
    );
    assert_eq!(pair.len(), 2, "README: two `target/release/tandem ` lines");
    Readme {
        single: single.into_iter().next().unwrap(),
        pair,
        example,
    }
}

/// A fresh copy of what the commands read (README.md and config/) in a temp dir.
fn fresh_copy() -> tempfile::TempDir {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::Builder::new()
        .prefix("tandem-first-run-")
        .tempdir()
        .expect("tempdir");
    fs::copy(root.join("README.md"), dir.path().join("README.md")).expect("copy README");
    fs::create_dir(dir.path().join("config")).expect("mkdir config");
    for entry in fs::read_dir(root.join("config")).expect("read config/") {
        let entry = entry.expect("config entry");
        fs::copy(
            entry.path(),
            dir.path().join("config").join(entry.file_name()),
        )
        .expect("copy config file");
    }
    dir
}

// ---------------------------------------------------------------------------------
// A node started the way the README starts it

/// `tandem <args>` run in `cwd`; its output goes to `<cwd>/<name>-<run>.log`, printed if
/// the test fails. Dropping it kills the process.
struct Node {
    name: String,
    cwd: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
    run: u32,
}

impl Node {
    fn start(cwd: &Path, name: &str, args: &[String]) -> Node {
        let mut node = Node {
            name: name.into(),
            cwd: cwd.into(),
            args: args.to_vec(),
            child: None,
            run: 0,
        };
        node.spawn();
        node
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "{} already running", self.name);
        self.run += 1;
        let log = fs::File::create(self.log_path()).expect("create log");
        let child = Command::new(tandem_bin())
            .args(&self.args)
            .current_dir(&self.cwd)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("spawn tandem");
        self.child = Some(child);
    }

    fn log_path(&self) -> PathBuf {
        self.cwd.join(format!("{}-{}.log", self.name, self.run))
    }

    fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Waits until the node answers a STOMP CONNECT on `port`; panics if it exits.
    fn wait_serving(&mut self, port: u16) {
        let mut exited = None;
        let child = self.child.as_mut().expect("not running");
        let ready = poll_until(START_TIMEOUT, || {
            exited = child.try_wait().expect("try_wait");
            exited.is_some() || Stomp::probe(port, Duration::from_secs(2))
        });
        assert!(
            exited.is_none(),
            "{} exited with {exited:?}; log:\n{}",
            self.name,
            self.log()
        );
        assert!(
            ready,
            "{} not serving on {port}; log:\n{}",
            self.name,
            self.log()
        );
    }

    fn wait_log(&self, needle: &str, timeout: Duration) {
        let seen = poll_until(timeout, || self.log().contains(needle));
        assert!(
            seen,
            "{}: no {needle:?} in the log:\n{}",
            self.name,
            self.log()
        );
    }

    /// kill -9, then waits until `ports` can be bound again (an io_uring instance can
    /// hold a listening socket briefly after the process is reaped).
    fn kill9(&mut self, ports: &[u16]) {
        let mut child = self.child.take().expect("not running");
        child.kill().expect("kill -9");
        child.wait().expect("wait");
        for &p in ports {
            let free = poll_until(Duration::from_secs(10), || {
                std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()
            });
            assert!(free, "port {p} still bound 10 s after kill -9");
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "----- {} log ({}):\n{}",
                self.name,
                self.log_path().display(),
                self.log()
            );
        }
    }
}

/// The bodies `<prefix>-0 .. <prefix>-<n-1>`, sorted as strings.
fn bodies(prefix: &str, n: usize) -> Vec<String> {
    let mut v: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}")).collect();
    v.sort();
    v
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

const COUNT: usize = 20;

// ---------------------------------------------------------------------------------
// The single broker

/// `cargo run --release -- --config config/broker.xml` from a fresh copy (no
/// `--data-dir`: `dataDirectory="data/broker"`, relative), then the README's stomp.py
/// example, persistent sends from stomp.py and from the JMS client, each confirmed;
/// kill -9 and the same command again: every message is there.
#[test]
fn readme_single_broker_keeps_every_confirmed_message_across_a_restart() {
    let readme = readme();
    netns::with_private_loopback(move |lb| {
        if lb == Loopback::Host {
            netns::assert_ports_free(&[STOMP, OPENWIRE]);
        }
        let copy = fresh_copy();
        let mut broker = Node::start(copy.path(), "broker", &readme.single);
        broker.wait_serving(STOMP);

        // The README's example, exactly as a new user runs it: it must print the
        // message (it used to print nothing: the journal had stopped).
        let example = stomp_py::run_script(&readme.example, &[], copy.path());
        assert!(
            example.success && example.stdout.contains("got hello"),
            "the README's stomp.py example:\n{}",
            example.dump()
        );

        let sent = stomp_py::send(STOMP, "/queue/first-run-stomp", COUNT, "stomp").assert_ok();
        assert_eq!(sent.values("RECEIPT").len(), COUNT, "{}", sent.dump());
        let url = format!("tcp://127.0.0.1:{OPENWIRE}");
        let count = COUNT.to_string();
        let jms_sent = jms::probe(
            &url,
            "send",
            &["--dest", "queue:first-run-jms", "--count", &count],
        )
        .assert_ok();
        assert_eq!(jms_sent.sent(), (0..COUNT as i64).collect::<Vec<_>>());

        // The data went where the README says (under the copy), and the log names the
        // absolute directory.
        let data = fs::canonicalize(copy.path()).unwrap().join("data/broker");
        assert!(
            data.join("journal/shard-0").is_dir(),
            "no journal under {}",
            data.display()
        );
        assert!(
            broker.log().contains(&format!("data={}", data.display())),
            "the log should name the absolute data directory {}:\n{}",
            data.display(),
            broker.log()
        );
        assert!(
            !broker.log().contains("journal write failed"),
            "{}",
            broker.log()
        );

        broker.kill9(&[STOMP, OPENWIRE]);
        broker.spawn();
        broker.wait_serving(STOMP);

        let got = stomp_py::recv(STOMP, "/queue/first-run-stomp", COUNT).assert_ok();
        assert_eq!(sorted(got.values("MESSAGE")), bodies("stomp", COUNT));
        let jms_got = jms::probe(
            &url,
            "recv",
            &["--dest", "queue:first-run-jms", "--count", &count],
        )
        .assert_ok();
        let mut seqs = jms_got.recv_seqs();
        seqs.sort();
        assert_eq!(seqs, (0..COUNT as i64).collect::<Vec<_>>());
        // The example never acknowledged its message: it is still there.
        let hello = stomp_py::recv(STOMP, "/queue/orders", 1).assert_ok();
        assert_eq!(hello.values("MESSAGE"), vec!["hello".to_string()]);
    });
}

// ---------------------------------------------------------------------------------
// The shipped pair

/// The README's pair commands from a fresh copy (`data/master`, `data/slave`, relative):
/// sends confirmed by the pair (stomp.py to the master, JMS through the failover URL),
/// master kill -9, the slave takes over and serves every one of them.
#[test]
fn readme_pair_slave_serves_every_confirmed_message_after_the_master_dies() {
    let readme = readme();
    netns::with_private_loopback(move |lb| {
        if lb == Loopback::Host {
            netns::assert_ports_free(&[STOMP, OPENWIRE, SLAVE_STOMP, SLAVE_OPENWIRE]);
        }
        let copy = fresh_copy();
        let mut master = Node::start(copy.path(), "master", &readme.pair[0]);
        master.wait_serving(STOMP);
        let mut slave = Node::start(copy.path(), "slave", &readme.pair[1]);
        slave.wait_log("in sync with the master", SYNC_TIMEOUT);

        let sent = stomp_py::send(STOMP, "/queue/pair-stomp", COUNT, "stomp").assert_ok();
        assert_eq!(sent.values("RECEIPT").len(), COUNT, "{}", sent.dump());
        let url = format!(
            "failover:(tcp://127.0.0.1:{OPENWIRE},tcp://127.0.0.1:{SLAVE_OPENWIRE})?randomize=false"
        );
        let count = COUNT.to_string();
        let jms_sent = jms::probe(
            &url,
            "send",
            &["--dest", "queue:pair-jms", "--count", &count],
        )
        .assert_ok();
        assert_eq!(jms_sent.sent(), (0..COUNT as i64).collect::<Vec<_>>());
        assert!(
            !master.log().contains("journal write failed"),
            "{}",
            master.log()
        );
        assert!(
            !slave.log().contains("journal write failed"),
            "{}",
            slave.log()
        );

        master.kill9(&[]);
        slave.wait_serving(SLAVE_STOMP);

        let got = stomp_py::recv(SLAVE_STOMP, "/queue/pair-stomp", COUNT).assert_ok();
        assert_eq!(sorted(got.values("MESSAGE")), bodies("stomp", COUNT));
        let jms_got = jms::probe(
            &url,
            "recv",
            &["--dest", "queue:pair-jms", "--count", &count],
        )
        .assert_ok();
        let mut seqs = jms_got.recv_seqs();
        seqs.sort();
        assert_eq!(seqs, (0..COUNT as i64).collect::<Vec<_>>());
        let slave_data = fs::canonicalize(copy.path()).unwrap().join("data/slave");
        assert!(slave_data.join("journal/shard-0").is_dir());
    });
}

// ---------------------------------------------------------------------------------
// Other spellings of a data directory

/// Starts a broker in `cwd` with `args` (plus `--config <config>`), sends 3 persistent
/// messages with receipts, kill -9, starts it again and receives them; then checks the
/// journal is in `expect_data` and the log names that absolute path.
fn round_trip(cwd: &Path, config: &Path, port: u16, extra: &[&str], expect_data: &Path) {
    let mut args = vec!["--config".to_string(), config.display().to_string()];
    args.extend(extra.iter().map(|s| s.to_string()));
    let mut node = Node::start(cwd, "broker", &args);
    node.wait_serving(port);
    let mut c = Stomp::connect(port);
    for i in 0..3 {
        c.send_receipted(
            "/queue/spelled",
            format!("m-{i}").as_bytes(),
            &format!("r{i}"),
        );
    }
    drop(c);
    node.kill9(&[port]);
    node.spawn();
    node.wait_serving(port);
    let mut c = Stomp::connect(port);
    c.subscribe("s", "/queue/spelled", "auto");
    let got: Vec<String> = (0..3).map(|_| c.expect_message().body_str()).collect();
    assert_eq!(got, ["m-0", "m-1", "m-2"]);
    let data = fs::canonicalize(expect_data).expect("the data directory exists");
    assert!(
        data.join("journal/shard-0").is_dir(),
        "no journal in {}",
        data.display()
    );
    assert!(
        node.log().contains(&format!("data={}", data.display())),
        "log should name {}:\n{}",
        data.display(),
        node.log()
    );
}

#[test]
fn relative_and_symlinked_data_directories_keep_confirmed_messages() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let work = tmp.path().join("work");
    let sub = work.join("sub");
    fs::create_dir_all(&sub).unwrap();
    let real = tmp.path().join("real-data");
    fs::create_dir_all(&real).unwrap();
    std::os::unix::fs::symlink(&real, work.join("link")).unwrap();

    let port = support::free_port();
    let opts = support::BrokerOpts::default();
    // dataDirectory itself relative, no --data-dir.
    let config = work.join("relative.xml");
    fs::write(
        &config,
        support::config_xml(&opts, port, Path::new("rel/deeper")),
    )
    .unwrap();
    round_trip(&work, &config, port, &[], &work.join("rel/deeper"));

    // --data-dir spelled ./x, ../x and through a symlink.
    let config = work.join("flag.xml");
    fs::write(
        &config,
        support::config_xml(&opts, port, Path::new("unused")),
    )
    .unwrap();
    round_trip(
        &work,
        &config,
        port,
        &["--data-dir", "./dot"],
        &work.join("dot"),
    );
    round_trip(
        &sub,
        &config,
        port,
        &["--data-dir", "../up"],
        &work.join("up"),
    );
    round_trip(&work, &config, port, &["--data-dir", "link"], &real);
}
