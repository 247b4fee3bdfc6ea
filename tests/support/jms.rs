//! The JMS side of the tests: the real ActiveMQ 5.17 Java client, driven through the
//! probes in `tests/java` (see `tests/java/README.md`), and a real ActiveMQ Classic
//! broker to check those probes against. Everything Java goes through `tools/activemq`,
//! which owns the class path (Debian's `libactivemq-java` jars).
//!
//! * [`probe`] — runs `JmsProbe COMMAND --url URL ARGS...` to completion (bounded by
//!   [`PROBE_TIMEOUT`]) and returns its [`ProbeOutput`]: the parsed lines, exit status
//!   and stderr. [`spawn_probe`] runs one in the background ([`RunningProbe`]): wait for
//!   a line (`READY`, `SENT seq=249`, `PAUSED`), then [`RunningProbe::finish`] or
//!   [`RunningProbe::kill`]. [`probe_with`] and [`spawn_probe_with`] give the JVM
//!   options too (e.g. `-Djavax.net.ssl.trustStore=...` for an `ssl://` URL).
//! * [`Line`], [`Recv`] — a parsed `WORD key=value ...` line and a `RECV` line.
//! * [`ActiveMq`] — a real ActiveMQ broker (`tools/activemq run`) on free ports, in its
//!   own temp dir, killed on drop; [`ActiveMqPair`] — two of them on one KahaDB
//!   directory: ActiveMQ's shared-store master/slave, for the failover cases.
//! * [`JmsTarget`], [`JmsPairTarget`] — what a broker (pair) under test offers the
//!   cases in [`super::jms_cases`]; implemented here for ActiveMQ and in
//!   `tests/jms_tandem.rs` for Tandem.
//!
//! The probes are compiled once per test process, into `CARGO_TARGET_TMPDIR/jms-classes`
//! (`tools/activemq compile` skips the work when the classes are newer than the sources).

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{free_port, poll_until, read_all, run_bounded};

/// Bound on one probe run (the probe's own `--deadline-ms` is set to the same).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(90);
/// Bound on a real ActiveMQ broker starting (JVM start plus KahaDB recovery).
pub const ACTIVEMQ_START_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on compiling the probes.
const COMPILE_TIMEOUT: Duration = Duration::from_secs(180);

// ---------------------------------------------------------------------------------
// Java: compile once, class path

struct Java {
    /// Compiled probes and `EmbeddedActiveMq`.
    classes: PathBuf,
    /// The Debian jars (`tools/activemq classpath`).
    classpath: String,
}

static JAVA: OnceLock<Result<Java, String>> = OnceLock::new();

/// `tools/activemq`.
pub fn tool() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/activemq")
}

/// Where the probes are compiled.
pub fn classes_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("jms-classes")
}

fn java() -> &'static Java {
    let java = JAVA.get_or_init(|| {
        let started = Instant::now();
        let (status, out, err) = run_bounded(
            Command::new(tool()).arg("compile").arg(classes_dir()),
            COMPILE_TIMEOUT,
        )?;
        if !status.success() {
            return Err(format!("tools/activemq compile: {status}\n{out}\n{err}"));
        }
        let (status, out, err) =
            run_bounded(Command::new(tool()).arg("classpath"), COMPILE_TIMEOUT)?;
        if !status.success() {
            return Err(format!("tools/activemq classpath: {status}\n{err}"));
        }
        eprintln!(
            "jms: probes compiled in {} ms into {}",
            started.elapsed().as_millis(),
            classes_dir().display()
        );
        Ok(Java {
            classes: classes_dir(),
            classpath: out.trim().to_string(),
        })
    });
    match java {
        Ok(j) => j,
        Err(e) => panic!("cannot build the JMS probes: {e}"),
    }
}

// ---------------------------------------------------------------------------------
// Parsed output

/// One output line: `WORD key=value key=value ...`. Tokens without `=` are kept only
/// in `raw` (e.g. the message of an `ERROR` line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub word: String,
    pub fields: Vec<(String, String)>,
    pub raw: String,
}

impl Line {
    pub fn parse(raw: &str) -> Line {
        let mut tokens = raw.split(' ');
        let word = tokens.next().unwrap_or("").to_string();
        let fields = tokens
            .filter_map(|t| t.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Line {
            word,
            fields,
            raw: raw.to_string(),
        }
    }

    /// The value of `key` as printed (escaped).
    pub fn raw_value(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `key`, unescaped; None if absent or null (`\N`).
    pub fn get(&self, key: &str) -> Option<String> {
        self.raw_value(key).and_then(unescape)
    }

    /// The value of `key` as a number; panics if absent or not a number.
    pub fn num(&self, key: &str) -> i64 {
        self.raw_value(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no number {key}= in {:?}", self.raw))
    }

    /// The value of `key` as a boolean; panics if absent.
    pub fn flag(&self, key: &str) -> bool {
        match self.raw_value(key) {
            Some("true") => true,
            Some("false") => false,
            _ => panic!("no boolean {key}= in {:?}", self.raw),
        }
    }
}

/// Undoes the probe's escaping (`tests/java/README.md`): `\\`, `\s`, `\n`, `\r`, `\t`,
/// `\0`, `\u{HEX}`, `\e` (empty); `\N` (null) is None.
pub fn unescape(v: &str) -> Option<String> {
    if v == "\\N" {
        return None;
    }
    if v == "\\e" {
        return Some(String::new());
    }
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('s') => out.push(' '),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('0') => out.push('\0'),
            Some('u') => {
                let hex: String = chars
                    .by_ref()
                    .skip_while(|&c| c == '{')
                    .take_while(|&c| c != '}')
                    .collect();
                let cp = u32::from_str_radix(&hex, 16).expect("\\u{HEX}");
                out.push(char::from_u32(cp).unwrap_or('\u{fffd}'));
            }
            other => panic!("bad escape \\{other:?} in {v:?}"),
        }
    }
    Some(out)
}

/// A `RECV` line of `recv` (or `prefetch`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recv {
    /// The `seq` property; -1 if the message had none.
    pub seq: i64,
    pub redelivered: bool,
    /// `JMSXDeliveryCount` (0 where the line does not say).
    pub delivery_count: i64,
    /// The body (unescaped); empty where the line does not say.
    pub body: String,
    pub color: Option<String>,
    /// `prefetch`: which consumer (A or B).
    pub consumer: Option<String>,
}

impl Recv {
    pub fn from_line(l: &Line) -> Recv {
        Recv {
            seq: l.num("seq"),
            redelivered: l.flag("redelivered"),
            delivery_count: l
                .raw_value("deliveryCount")
                .map_or(0, |_| l.num("deliveryCount")),
            body: l.get("body").unwrap_or_default(),
            color: l.get("color"),
            consumer: l.get("consumer"),
        }
    }
}

/// Everything a finished probe printed.
#[derive(Clone, Debug)]
pub struct ProbeOutput {
    /// The command line, for messages.
    pub what: String,
    /// None if the harness killed it (timeout or [`RunningProbe::kill`]).
    pub status: Option<ExitStatus>,
    pub lines: Vec<String>,
    pub stderr: String,
    pub elapsed: Duration,
}

impl ProbeOutput {
    /// Exit 0 and a last line starting with `OK`.
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
            && self.lines.last().is_some_and(|l| l.starts_with("OK"))
    }

    /// Panics with the whole output unless [`ProbeOutput::success`].
    #[track_caller]
    pub fn assert_ok(self) -> ProbeOutput {
        assert!(self.success(), "probe failed: {}", self.dump());
        self
    }

    /// Panics unless the probe exited non-zero with an `ERROR <class>: ...` line; returns
    /// the class.
    #[track_caller]
    pub fn expect_error(&self) -> String {
        assert!(
            self.status.is_some_and(|s| !s.success()),
            "probe should have failed: {}",
            self.dump()
        );
        self.error_class()
            .unwrap_or_else(|| panic!("no ERROR line: {}", self.dump()))
    }

    /// The exception class of the `ERROR` line, if any.
    pub fn error_class(&self) -> Option<String> {
        self.lines.iter().find_map(|l| {
            let rest = l.strip_prefix("ERROR ")?;
            Some(rest.split(':').next().unwrap_or(rest).to_string())
        })
    }

    /// Every line, parsed.
    pub fn parsed(&self) -> Vec<Line> {
        self.lines.iter().map(|l| Line::parse(l)).collect()
    }

    /// The lines whose first word is `word`.
    pub fn all(&self, word: &str) -> Vec<Line> {
        self.parsed()
            .into_iter()
            .filter(|l| l.word == word)
            .collect()
    }

    /// The only line whose first word is `word`; panics if there is not exactly one.
    #[track_caller]
    pub fn one(&self, word: &str) -> Line {
        let all = self.all(word);
        assert_eq!(all.len(), 1, "expected one {word} line: {}", self.dump());
        all.into_iter().next().unwrap()
    }

    /// The last line (`OK ...`), parsed.
    pub fn last(&self) -> Line {
        Line::parse(self.lines.last().map(String::as_str).unwrap_or(""))
    }

    /// The `RECV` lines, in order.
    pub fn recvs(&self) -> Vec<Recv> {
        self.all("RECV").iter().map(Recv::from_line).collect()
    }

    /// The seqs of the `RECV` lines, in order.
    pub fn recv_seqs(&self) -> Vec<i64> {
        self.recvs().iter().map(|r| r.seq).collect()
    }

    /// The seqs of the `SENT` lines, in order.
    pub fn sent(&self) -> Vec<i64> {
        self.all("SENT").iter().map(|l| l.num("seq")).collect()
    }

    /// Lines without the ones starting with a word in `skip` (for exact comparisons).
    pub fn lines_without(&self, skip: &[&str]) -> Vec<String> {
        self.lines
            .iter()
            .filter(|l| !skip.iter().any(|w| l.split(' ').next() == Some(w)))
            .cloned()
            .collect()
    }

    /// The command, its status, every line and the stderr tail, for panic messages.
    pub fn dump(&self) -> String {
        let err: Vec<&str> = self.stderr.lines().collect();
        let tail = err[err.len().saturating_sub(40)..].join("\n");
        format!(
            "{}\n  status: {:?} after {} ms\n---- stdout ----\n{}\n---- stderr (tail) ----\n{}",
            self.what,
            self.status,
            self.elapsed.as_millis(),
            self.lines.join("\n"),
            tail
        )
    }
}

// ---------------------------------------------------------------------------------
// Running probes

/// Lines read so far and whether stdout has closed.
#[derive(Default)]
struct Seen {
    lines: Vec<String>,
    closed: bool,
}

/// A probe running in the background.
pub struct RunningProbe {
    what: String,
    child: Option<Child>,
    seen: Arc<(Mutex<Seen>, Condvar)>,
    stdout: Option<JoinHandle<()>>,
    stderr: Option<JoinHandle<String>>,
    started: Instant,
}

/// The `java JVM_OPTIONS ... JmsProbe COMMAND --url URL ARGS` command.
fn probe_command<S: AsRef<str>>(
    jvm: &[String],
    url: &str,
    command: &str,
    args: &[S],
) -> (Command, String) {
    let args: Vec<&str> = args.iter().map(|a| a.as_ref()).collect();
    let java = java();
    let mut cmd = Command::new("java");
    cmd.arg("-XX:+UseSerialGC")
        .arg("-XX:TieredStopAtLevel=1")
        .arg("-Xmx256m")
        .args(jvm)
        .arg("-cp")
        .arg(format!("{}:{}", java.classes.display(), java.classpath))
        .arg("JmsProbe")
        .arg(command)
        .arg("--deadline-ms")
        .arg(PROBE_TIMEOUT.as_millis().to_string())
        .arg("--url")
        .arg(url)
        .args(&args);
    let what = format!("JmsProbe {command} --url {url} {}", args.join(" "));
    let what = match jvm.is_empty() {
        true => what,
        false => format!("java {} {what}", jvm.join(" ")),
    };
    (cmd, what)
}

/// Starts a probe; its output is collected as it comes.
pub fn spawn_probe<S: AsRef<str>>(url: &str, command: &str, args: &[S]) -> RunningProbe {
    spawn_probe_with(&[], url, command, args)
}

/// [`spawn_probe`] with JVM options on the `java` command line (before the class
/// name), e.g. `-Djavax.net.ssl.trustStore=trust.p12`.
pub fn spawn_probe_with<S: AsRef<str>>(
    jvm: &[String],
    url: &str,
    command: &str,
    args: &[S],
) -> RunningProbe {
    let (mut cmd, what) = probe_command(jvm, url, command, args);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn java for {what}: {e}"));
    let seen: Arc<(Mutex<Seen>, Condvar)> = Arc::default();
    let out = child.stdout.take().unwrap();
    let seen2 = seen.clone();
    let stdout = std::thread::spawn(move || {
        let reader = BufReader::new(out);
        for line in reader.lines() {
            let Ok(line) = line else { break };
            let (m, cv) = &*seen2;
            m.lock().unwrap().lines.push(line);
            cv.notify_all();
        }
        let (m, cv) = &*seen2;
        m.lock().unwrap().closed = true;
        cv.notify_all();
    });
    let stderr = read_all(child.stderr.take().unwrap());
    RunningProbe {
        what,
        child: Some(child),
        seen,
        stdout: Some(stdout),
        stderr: Some(stderr),
        started: Instant::now(),
    }
}

/// Runs a probe to completion (bounded by [`PROBE_TIMEOUT`]).
pub fn probe<S: AsRef<str>>(url: &str, command: &str, args: &[S]) -> ProbeOutput {
    spawn_probe(url, command, args).finish(PROBE_TIMEOUT)
}

/// [`probe`] with JVM options (see [`spawn_probe_with`]).
pub fn probe_with<S: AsRef<str>>(
    jvm: &[String],
    url: &str,
    command: &str,
    args: &[S],
) -> ProbeOutput {
    spawn_probe_with(jvm, url, command, args).finish(PROBE_TIMEOUT)
}

impl RunningProbe {
    fn seen(&self) -> MutexGuard<'_, Seen> {
        self.seen.0.lock().unwrap()
    }

    /// The lines printed so far.
    pub fn lines(&self) -> Vec<String> {
        self.seen().lines.clone()
    }

    /// Waits (bounded) for the first line that `pred` accepts and returns it; panics
    /// with the output so far if stdout closes or `timeout` passes first.
    #[track_caller]
    pub fn wait_line(&mut self, timeout: Duration, pred: impl Fn(&Line) -> bool) -> Line {
        let deadline = Instant::now() + timeout;
        let (m, cv) = &*self.seen;
        let mut seen = m.lock().unwrap();
        for _ in 0..1_000_000 {
            if let Some(l) = seen.lines.iter().map(|l| Line::parse(l)).find(|l| pred(l)) {
                return l;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if seen.closed || left.is_zero() {
                break;
            }
            seen = cv.wait_timeout(seen, left).unwrap().0;
        }
        let lines = seen.lines.join("\n");
        drop(seen);
        let stderr = self.stderr_if_done();
        panic!(
            "{}: no such line within {timeout:?}; stdout so far:\n{lines}\nstderr: {stderr}",
            self.what
        );
    }

    /// Waits (bounded) for a line whose first word is `word`.
    #[track_caller]
    pub fn wait_word(&mut self, word: &str, timeout: Duration) -> Line {
        self.wait_line(timeout, |l| l.word == word)
    }

    fn stderr_if_done(&mut self) -> String {
        match self.child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(Some(_))) => self
                .stderr
                .take()
                .map(|h| h.join().unwrap())
                .unwrap_or_default(),
            _ => "(still running)".into(),
        }
    }

    /// Waits (bounded) for the probe to exit by itself; kills it after `timeout`
    /// (status None then).
    pub fn finish(mut self, timeout: Duration) -> ProbeOutput {
        let mut child = self.child.take().unwrap();
        let mut status = None;
        poll_until(timeout, || {
            status = child.try_wait().expect("try_wait");
            status.is_some()
        });
        if status.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.collect(status)
    }

    /// Kills the probe (SIGKILL) and returns what it printed.
    pub fn kill(mut self) -> ProbeOutput {
        let mut child = self.child.take().unwrap();
        let _ = child.kill();
        let _ = child.wait();
        self.collect(None)
    }

    fn collect(&mut self, status: Option<ExitStatus>) -> ProbeOutput {
        if let Some(h) = self.stdout.take() {
            h.join().unwrap();
        }
        let stderr = self
            .stderr
            .take()
            .map(|h| h.join().unwrap())
            .unwrap_or_default();
        ProbeOutput {
            what: self.what.clone(),
            status,
            lines: self.seen().lines.clone(),
            stderr,
            elapsed: self.started.elapsed(),
        }
    }
}

impl Drop for RunningProbe {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `url` with `options` added to its query (`?` or `&`).
pub fn with_options(url: &str, options: &str) -> String {
    if url.contains('?') {
        format!("{url}&{options}")
    } else {
        format!("{url}?{options}")
    }
}

/// The client options that make local redelivery (rollback, recover) immediate instead
/// of ActiveMQ's default 1 s delay.
pub const NO_REDELIVERY_DELAY: &str =
    "jms.redeliveryPolicy.initialRedeliveryDelay=0&jms.redeliveryPolicy.redeliveryDelay=0";

// ---------------------------------------------------------------------------------
// What the cases run against

/// A broker the JMS cases run against.
pub trait JmsTarget {
    /// The OpenWire URL, `tcp://127.0.0.1:P`.
    fn url(&self) -> String;
    /// Its STOMP port (for the STOMP<->JMS cases).
    fn stomp_port(&self) -> u16;
}

/// A master/slave pair the failover cases run against.
pub trait JmsPairTarget {
    /// `failover:(tcp://master,tcp://slave)?randomize=false`.
    fn failover_url(&self) -> String;
    /// `kill -9` the master; returns once the process is gone.
    fn kill_master(&self);
    /// `--user`/`--password` every client must give, if the brokers require a login.
    fn login(&self) -> Option<(String, String)> {
        None
    }
    /// JVM options every client needs (e.g. the trust store for `ssl://` URLs).
    fn jvm_options(&self) -> Vec<String> {
        Vec::new()
    }
}

// ---------------------------------------------------------------------------------
// A real ActiveMQ broker

/// What [`ActiveMq::start`] runs.
#[derive(Clone, Debug)]
pub struct ActiveMqOpts {
    /// `--name`; also names it in panic output.
    pub name: String,
    /// KahaDB persistence (default sync) instead of memory.
    pub kahadb: bool,
    /// `schedulerSupport="true"` (`--scheduler`).
    pub scheduler: bool,
    /// A redelivery plugin whose default policy has these properties
    /// (`--redelivery-plugin`, e.g. `maximumRedeliveries=2,redeliveryDelay=1000`).
    pub redelivery_plugin: Option<String>,
    /// One destination policy entry (`--policy-queue` and its options).
    pub policy: Option<QueuePolicy>,
}

/// A `<policyEntry queue="...">` with what the JMS cases need of it.
#[derive(Clone, Debug)]
pub struct QueuePolicy {
    /// The entry's queue pattern.
    pub queue: &'static str,
    /// `individualDeadLetterStrategy queuePrefix` (with `useQueueForQueueMessages`).
    pub individual_dlq_prefix: Option<&'static str>,
    /// `queuePrefetch`.
    pub queue_prefetch: Option<u32>,
}

impl QueuePolicy {
    /// The same entry as Tandem's `<destinationPolicy>` XML.
    pub fn xml(&self) -> String {
        let prefetch = self
            .queue_prefetch
            .map(|n| format!(" queuePrefetch=\"{n}\""))
            .unwrap_or_default();
        let dlq = self
            .individual_dlq_prefix
            .map(|p| {
                format!(
                    "<deadLetterStrategy><individualDeadLetterStrategy queuePrefix=\"{p}\" \
                     useQueueForQueueMessages=\"true\"/></deadLetterStrategy>"
                )
            })
            .unwrap_or_default();
        format!(
            "<destinationPolicy><policyMap><policyEntries>\
             <policyEntry queue=\"{}\"{prefetch}>{dlq}</policyEntry>\
             </policyEntries></policyMap></destinationPolicy>",
            self.queue
        )
    }
}

impl Default for ActiveMqOpts {
    fn default() -> Self {
        ActiveMqOpts {
            name: "activemq".into(),
            kahadb: true,
            policy: None,
            scheduler: false,
            redelivery_plugin: None,
        }
    }
}

/// A real ActiveMQ Classic 5.17 broker run by `tools/activemq run` as our child
/// (it also exits by itself if this process dies). Killed on drop; its log is printed
/// if the test panics.
pub struct ActiveMq {
    pub opts: ActiveMqOpts,
    /// OpenWire port.
    pub port: u16,
    pub stomp_port: u16,
    /// The data directory (shared by the two brokers of an [`ActiveMqPair`]).
    data: PathBuf,
    log_path: PathBuf,
    child: Mutex<Option<Child>>,
    /// Owns `data` unless it is shared.
    _dir: Option<tempfile::TempDir>,
}

impl ActiveMq {
    /// A broker in its own temp dir, started: it has said `STARTED`.
    pub fn start(opts: ActiveMqOpts) -> ActiveMq {
        let dir = tempfile::Builder::new()
            .prefix("activemq-itest-")
            .tempdir()
            .expect("tempdir");
        let data = dir.path().to_path_buf();
        let mut b = ActiveMq::spawn_in(&data, opts);
        b._dir = Some(dir);
        b.wait_started(ACTIVEMQ_START_TIMEOUT);
        b
    }

    /// Spawns a broker on data directory `data` (not owned) and returns at once.
    pub fn spawn_in(data: &Path, opts: ActiveMqOpts) -> ActiveMq {
        let java = java();
        let port = free_port();
        let stomp_port = free_port();
        let log_path = data.join(format!("{}-{port}.log", opts.name));
        let log = fs::File::create(&log_path).expect("create log");
        let mut cmd = Command::new(tool());
        cmd.arg("run")
            .arg("--port")
            .arg(port.to_string())
            .arg("--stomp-port")
            .arg(stomp_port.to_string())
            .arg("--data")
            .arg(data)
            .arg("--name")
            .arg(&opts.name);
        if opts.kahadb {
            cmd.arg("--kahadb");
        }
        if opts.scheduler {
            cmd.arg("--scheduler");
        }
        if let Some(p) = &opts.redelivery_plugin {
            cmd.arg("--redelivery-plugin").arg(p);
        }
        if let Some(p) = &opts.policy {
            cmd.arg("--policy-queue").arg(p.queue);
            if let Some(prefix) = p.individual_dlq_prefix {
                cmd.arg("--individual-dlq-prefix").arg(prefix);
            }
            if let Some(n) = p.queue_prefetch {
                cmd.arg("--queue-prefetch").arg(n.to_string());
            }
        }
        let child = cmd
            .env("JMS_CLASSES", &java.classes)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("spawn tools/activemq run");
        ActiveMq {
            opts,
            port,
            stomp_port,
            data: data.to_path_buf(),
            log_path,
            child: Mutex::new(Some(child)),
            _dir: None,
        }
    }

    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    fn log_tail(&self, n: usize) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// True once the broker printed `STARTED` (its connectors accept).
    pub fn is_started(&self) -> bool {
        self.log().lines().any(|l| l.starts_with("STARTED"))
    }

    /// The exit status if the process has exited (reaps it).
    pub fn try_exit_status(&self) -> Option<ExitStatus> {
        let mut c = self.child.lock().unwrap();
        c.as_mut().and_then(|c| c.try_wait().expect("try_wait"))
    }

    /// Waits (bounded) until the broker says `STARTED`; panics with its log if it exits
    /// or `timeout` passes.
    pub fn wait_started(&self, timeout: Duration) {
        self.wait_log(timeout, "STARTED", |l| l.starts_with("STARTED"));
    }

    /// Waits (bounded) until a log line matches `pred`; panics if the broker exits first.
    pub fn wait_log(&self, timeout: Duration, what: &str, pred: impl Fn(&str) -> bool) {
        let mut exited = None;
        let ok = poll_until(timeout, || {
            if self.log().lines().any(&pred) {
                return true;
            }
            exited = self.try_exit_status();
            exited.is_some()
        });
        if let Some(status) = exited {
            panic!(
                "{} exited with {status} before {what}; log tail:\n{}",
                self.opts.name,
                self.log_tail(60)
            );
        }
        assert!(
            ok,
            "{}: no {what} within {timeout:?}; log tail:\n{}",
            self.opts.name,
            self.log_tail(60)
        );
    }

    /// `tcp://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    /// SIGKILL, and reap.
    pub fn kill9(&self) {
        let mut c = self.child.lock().unwrap();
        let mut child = c
            .take()
            .unwrap_or_else(|| panic!("{}: kill9 but not running", self.opts.name));
        let _ = child.kill();
        child.wait().expect("wait after kill -9");
    }

    /// SIGTERM (a clean shutdown), SIGKILL if still running after 20 s.
    pub fn stop(&self) -> Option<ExitStatus> {
        let mut c = self.child.lock().unwrap();
        let mut child = c.take()?;
        // SAFETY: sending a signal to our own child's pid; no memory involved.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let mut status = None;
        poll_until(Duration::from_secs(20), || {
            status = child.try_wait().expect("try_wait");
            status.is_some()
        });
        if status.is_none() {
            let _ = child.kill();
            status = child.wait().ok();
        }
        status
    }
}

impl Drop for ActiveMq {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "---- {} log ({}), last 100 lines ----\n{}",
                self.opts.name,
                self.log_path.display(),
                self.log_tail(100)
            );
        }
    }
}

impl JmsTarget for ActiveMq {
    fn url(&self) -> String {
        ActiveMq::url(self)
    }

    fn stomp_port(&self) -> u16 {
        self.stomp_port
    }
}

/// ActiveMQ's shared-store master/slave: two brokers on one KahaDB directory. The
/// master holds the store lock; the slave polls for it (every 500 ms) and opens its
/// connectors only once the master is gone.
pub struct ActiveMqPair {
    pub master: ActiveMq,
    pub slave: ActiveMq,
    /// The shared data directory; declared last so the brokers die before it goes.
    _dir: tempfile::TempDir,
}

impl ActiveMqPair {
    /// Master started; slave running and waiting for the lock.
    pub fn start() -> ActiveMqPair {
        let dir = tempfile::Builder::new()
            .prefix("activemq-pair-")
            .tempdir()
            .expect("tempdir");
        let master = ActiveMq::spawn_in(
            dir.path(),
            ActiveMqOpts {
                name: "master".into(),
                ..ActiveMqOpts::default()
            },
        );
        master.wait_started(ACTIVEMQ_START_TIMEOUT);
        let slave = ActiveMq::spawn_in(
            dir.path(),
            ActiveMqOpts {
                name: "slave".into(),
                ..ActiveMqOpts::default()
            },
        );
        slave.wait_log(ACTIVEMQ_START_TIMEOUT, "slave mode", |l| {
            l.contains("is now in slave mode")
        });
        ActiveMqPair {
            master,
            slave,
            _dir: dir,
        }
    }
}

impl JmsPairTarget for ActiveMqPair {
    fn failover_url(&self) -> String {
        format!(
            "failover:(tcp://127.0.0.1:{},tcp://127.0.0.1:{})?randomize=false",
            self.master.port, self.slave.port
        )
    }

    fn kill_master(&self) {
        self.master.kill9();
    }
}
