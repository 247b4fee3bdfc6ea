//! The real `stomp.py` client (PyPI), driven from Rust tests.
//!
//! The interpreter is `$TANDEM_PYTHON` (tools/test points it at its venv), else the
//! repository's `.venv-test/bin/python3`, else `python3`; it must import `stomp`.
//!
//! [`send`] and [`recv`] run [`CLIENT`], a small stomp.py program:
//!
//! ```text
//! python3 client.py send HOST PORT DEST COUNT PREFIX   # persistent SENDs, each with a receipt
//! python3 client.py recv HOST PORT DEST COUNT          # subscribe (client-individual), ack each
//! ```
//!
//! It prints one line per event (`RECEIPT r<i>`, `MESSAGE <body>`, `ERROR <message>:
//! <body>`) and exits 0 only if every receipt (send) or COUNT messages (recv) arrived
//! within its bound; [`run_script`] runs any other program, such as the README's
//! example.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use super::run_bounded;

/// Bound on one stomp.py run; only reached if the broker never answers.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// The stomp.py program behind [`send`] and [`recv`].
pub const CLIENT: &str = r#"
import sys, threading, stomp

mode, host, port, dest, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
WAIT_S = 30

class Listener(stomp.ConnectionListener):
    def __init__(self):
        self.cv = threading.Condition()
        self.receipts, self.messages, self.errors = [], [], []

    def on_receipt(self, frame):
        rid = frame.headers.get("receipt-id")
        if not rid.startswith("r"):
            return  # DISCONNECT's own receipt (stomp.py waits for it)
        with self.cv:
            self.receipts.append(rid)
            print("RECEIPT", rid, flush=True)
            self.cv.notify_all()

    def on_error(self, frame):
        with self.cv:
            self.errors.append(frame)
            print("ERROR", frame.headers.get("message"), ":", frame.body.replace("\n", " "), flush=True)
            self.cv.notify_all()

    def on_message(self, frame):
        # STOMP 1.2 acknowledges the MESSAGE's `ack` header, not its message-id.
        conn.ack(frame.headers["ack"])
        with self.cv:
            self.messages.append(frame.body)
            print("MESSAGE", frame.body, flush=True)
            self.cv.notify_all()

conn = stomp.Connection12([(host, port)])
listener = Listener()
conn.set_listener("", listener)
conn.connect(wait=True)
if mode == "send":
    prefix = sys.argv[6]
    for i in range(count):
        conn.send(dest, f"{prefix}-{i}", headers={"persistent": "true"}, receipt=f"r{i}")
    with listener.cv:
        done = listener.cv.wait_for(lambda: len(listener.receipts) + len(listener.errors) >= count, WAIT_S)
    ok = done and not listener.errors and len(listener.receipts) == count
else:
    conn.subscribe(dest, id="1", ack="client-individual")
    with listener.cv:
        done = listener.cv.wait_for(lambda: len(listener.messages) >= count or listener.errors, WAIT_S)
    ok = done and not listener.errors
conn.disconnect()
print("OK" if ok else "FAIL", flush=True)
sys.exit(0 if ok else 1)
"#;

/// What a stomp.py run printed.
#[derive(Debug)]
pub struct Output {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// The values of lines that start with `word ` (e.g. `MESSAGE`), in order.
    pub fn values(&self, word: &str) -> Vec<String> {
        let prefix = format!("{word} ");
        self.stdout
            .lines()
            .filter_map(|l| l.strip_prefix(&prefix).map(str::to_string))
            .collect()
    }

    /// Panics with the whole output unless the run succeeded.
    #[track_caller]
    pub fn assert_ok(self) -> Output {
        assert!(self.success, "stomp.py run failed:\n{}", self.dump());
        self
    }

    pub fn dump(&self) -> String {
        format!("--- stdout\n{}--- stderr\n{}", self.stdout, self.stderr)
    }
}

/// The Python interpreter that has stomp.py (checked once).
pub fn python() -> PathBuf {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = PYTHON.get_or_init(|| {
        let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-test/bin/python3");
        let python = match std::env::var_os("TANDEM_PYTHON") {
            Some(p) => PathBuf::from(p),
            None if venv.exists() => venv,
            None => PathBuf::from("python3"),
        };
        let mut check = Command::new(&python);
        check.args(["-c", "import stomp"]);
        match run_bounded(&mut check, RUN_TIMEOUT) {
            Ok((status, _, _)) if status.success() => Ok(python),
            Ok((_, _, err)) => Err(format!(
                "{} cannot import stomp ({err}); run tools/test, or pip install -r \
                 tests/python/requirements.txt and set TANDEM_PYTHON",
                python.display()
            )),
            Err(e) => Err(e),
        }
    });
    match found {
        Ok(p) => p.clone(),
        Err(e) => panic!("{e}"),
    }
}

/// Runs the Python program `code` with `args`, working directory `cwd`.
pub fn run_script(code: &str, args: &[String], cwd: &Path) -> Output {
    let mut cmd = Command::new(python());
    cmd.arg("-c").arg(code).args(args).current_dir(cwd);
    let (status, stdout, stderr) =
        run_bounded(&mut cmd, RUN_TIMEOUT).unwrap_or_else(|e| panic!("stomp.py: {e}"));
    Output {
        success: status.success(),
        stdout,
        stderr,
    }
}

/// `count` persistent SENDs to `dest` (bodies `<prefix>-<i>`), each with a receipt.
pub fn send(port: u16, dest: &str, count: usize, prefix: &str) -> Output {
    let args = [
        "send",
        "127.0.0.1",
        &port.to_string(),
        dest,
        &count.to_string(),
        prefix,
    ];
    run_script(CLIENT, &args.map(String::from), Path::new("."))
}

/// Receives (and acknowledges) `count` messages from `dest`.
pub fn recv(port: u16, dest: &str, count: usize) -> Output {
    let args = [
        "recv",
        "127.0.0.1",
        &port.to_string(),
        dest,
        &count.to_string(),
    ];
    run_script(CLIENT, &args.map(String::from), Path::new("."))
}
