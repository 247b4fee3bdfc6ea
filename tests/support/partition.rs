//! Cuttable networks between pair nodes: silence without killing a process.
//!
//! [`Net::new`]`(&["master", "slave", "witness"])` makes one named network namespace per
//! node and one **router** namespace, and joins each node to the router by a veth pair
//! on a /30 of its own:
//!
//! ```text
//!   tandem-<pid>-<n>-master   eth0 10.k.1.2 ──veth── r1 10.k.1.1 ┐
//!   tandem-<pid>-<n>-slave    eth0 10.k.2.2 ──veth── r2 10.k.2.1 ├─ tandem-<pid>-<n>-router
//!   tandem-<pid>-<n>-witness  eth0 10.k.3.2 ──veth── r3 10.k.3.1 ┘   (ip_forward=1)
//! ```
//!
//! Every node's default route is its router address, so node-to-node traffic is
//! forwarded by the router, and [`Net::cut`] / [`Net::heal`] add and remove iptables
//! rules in the router's FORWARD chain that DROP (silence, not a reset) everything
//! between two nodes, both ways. [`Net::cut_all`] cuts a node from every other node.
//! The test's own clients run in the router namespace ([`Net::run_in_router`]): they
//! reach every node directly (INPUT/OUTPUT, not FORWARD), so a cut never affects them.
//!
//! * Names: `tandem-<pid>-<n>-<node>`, `n` counting harness instances in this process;
//!   `k` differs per instance too (addresses are per namespace anyway, so parallel
//!   tests and test binaries never collide). Interfaces are created inside the
//!   namespaces, never in the host's.
//! * [`Net::spawn_in`] runs a program in a node's namespace (`ip netns exec <ns>
//!   <program> <args>`: `ip` execs the program, so the pid it returns is the program's
//!   and signals reach it). [`Node`](super::pair::Node)s run in a namespace through
//!   [`Net::node_opts`] / [`Net::pair_opts`] (`NodeOpts::netns`, `NodeOpts::host`).
//! * [`in_netns`] runs a closure on a thread that entered a named namespace (`setns`
//!   on `/run/netns/<name>`); processes spawned from that thread live there too.
//! * Dropping the [`Net`] kills what [`Net::spawn_in`] started and deletes every
//!   namespace (with them the veths and the iptables rules), also when the test
//!   panics. Namespaces left by a test process that died (`kill -9`) are deleted by
//!   the next [`Net::new`] (their pid no longer exists).
//!
//! Needs CAP_SYS_ADMIN and CAP_NET_ADMIN (CI runs as root), iproute2 (`ip`) and
//! `iptables` (tools/test installs it). Without them [`Net::new`] panics saying which.
//! Both iptables back-ends work: the nft one (Debian's default, `iptables v1.8.9
//! (nf_tables)` here) and the legacy one keep their tables per network namespace.

use std::collections::BTreeSet;
use std::fs;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use super::pair::{NodeOpts, PairOpts};
use super::{poll_until, run_bounded};

/// Bound on one `ip` / `iptables` / `sysctl` invocation.
const TOOL_TIMEOUT: Duration = Duration::from_secs(20);

/// Harness instances made by this process (names the namespaces, picks `k`).
static INSTANCES: AtomicU32 = AtomicU32::new(0);

/// One node's place in the network.
#[derive(Clone, Debug)]
pub struct NetNode {
    /// The name the test uses ("master", "slave", "witness").
    pub name: String,
    /// Its network namespace (`/run/netns/<ns>`).
    pub ns: String,
    /// Its address (eth0, 10.k.i.2); the router's end is 10.k.i.1.
    pub addr: Ipv4Addr,
    /// The router's end of its veth.
    pub gateway: Ipv4Addr,
}

/// A process started by [`Net::spawn_in`].
struct Spawned {
    node: String,
    pid: u32,
    /// `None` once reaped.
    child: Option<Child>,
    exited: Option<ExitStatus>,
    /// Its stdout and stderr.
    log: PathBuf,
}

/// The namespaces, veths and cuts of one test; see the module documentation.
pub struct Net {
    /// `tandem-<pid>-<n>`: every namespace name starts with it.
    prefix: String,
    /// The router's namespace.
    router: String,
    /// Second octet of every address of this instance.
    k: u8,
    nodes: Vec<NetNode>,
    /// Namespaces created so far (deleted on drop, nodes first).
    created: Mutex<Vec<String>>,
    /// (from, to) node indexes whose forwarded packets are dropped.
    cuts: Mutex<BTreeSet<(usize, usize)>>,
    procs: Mutex<Vec<Spawned>>,
    /// Logs of spawned processes.
    dir: tempfile::TempDir,
}

impl Net {
    /// Builds the router and one namespace per name in `nodes` (lowercase letters,
    /// digits and '-'; not "router"). Panics with the reason if it cannot (no
    /// CAP_SYS_ADMIN, no `ip`, no `iptables`); what was made so far is deleted.
    pub fn new(nodes: &[&str]) -> Net {
        assert!(
            !nodes.is_empty() && nodes.len() < 250,
            "Net::new: 1 to 249 nodes"
        );
        for (i, n) in nodes.iter().enumerate() {
            assert!(
                !n.is_empty()
                    && *n != "router"
                    && n.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "Net::new: bad node name {n:?}"
            );
            assert!(!nodes[..i].contains(n), "Net::new: node {n:?} twice");
        }
        sweep_dead_namespaces();
        let n = INSTANCES.fetch_add(1, Ordering::SeqCst);
        let prefix = format!("tandem-{}-{n}", std::process::id());
        let k = 16 + (n % 224) as u8;
        let net = Net {
            router: format!("{prefix}-router"),
            nodes: nodes
                .iter()
                .enumerate()
                .map(|(i, name)| NetNode {
                    name: name.to_string(),
                    ns: format!("{prefix}-{name}"),
                    addr: Ipv4Addr::new(10, k, i as u8 + 1, 2),
                    gateway: Ipv4Addr::new(10, k, i as u8 + 1, 1),
                })
                .collect(),
            prefix,
            k,
            created: Mutex::new(Vec::new()),
            cuts: Mutex::new(BTreeSet::new()),
            procs: Mutex::new(Vec::new()),
            dir: tempfile::Builder::new()
                .prefix("tandem-net-")
                .tempdir()
                .expect("tempdir"),
        };
        // A panic from here on drops `net`, which deletes what was created.
        net.add_namespace(&net.router.clone());
        net.ns_tool(
            &net.router,
            &["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"],
        );
        net.check_iptables();
        for (i, node) in net.nodes.iter().enumerate() {
            let veth = format!("r{}", i + 1);
            net.add_namespace(&node.ns);
            let r = net.router.as_str();
            let ns = node.ns.as_str();
            let (gw, addr) = (format!("{}/30", node.gateway), format!("{}/30", node.addr));
            tool(&[
                "ip", "-n", r, "link", "add", &veth, "type", "veth", "peer", "name", "eth0",
                "netns", ns,
            ]);
            tool(&["ip", "-n", r, "addr", "add", &gw, "dev", &veth]);
            tool(&["ip", "-n", r, "link", "set", &veth, "up"]);
            tool(&["ip", "-n", ns, "addr", "add", &addr, "dev", "eth0"]);
            tool(&["ip", "-n", ns, "link", "set", "eth0", "up"]);
            tool(&[
                "ip",
                "-n",
                ns,
                "route",
                "add",
                "default",
                "via",
                &node.gateway.to_string(),
            ]);
        }
        println!(
            "partition: {} ready: {}",
            net.prefix,
            net.nodes
                .iter()
                .map(|n| format!("{} {}", n.name, n.addr))
                .collect::<Vec<_>>()
                .join(", ")
        );
        net
    }

    /// `ip netns add`, `lo` up; remembered for deletion.
    fn add_namespace(&self, ns: &str) {
        match run_bounded(Command::new("ip").args(["netns", "add", ns]), TOOL_TIMEOUT) {
            Ok((status, _, _)) if status.success() => {}
            Ok((status, _, err)) => panic!(
                "partition: `ip netns add {ns}` failed ({status}): {}; this harness needs \
                 CAP_SYS_ADMIN and CAP_NET_ADMIN (run the tests as root, as CI does)",
                err.trim()
            ),
            Err(e) => panic!(
                "partition: cannot run `ip netns add` ({e}); install iproute2 and run as root"
            ),
        }
        self.created_list().push(ns.to_string());
        tool(&["ip", "-n", ns, "link", "set", "lo", "up"]);
    }

    /// Fails clearly if `iptables` is missing or cannot filter in the router.
    fn check_iptables(&self) {
        let r = run_bounded(
            Command::new("ip").args(["netns", "exec", &self.router, "iptables", "--version"]),
            TOOL_TIMEOUT,
        );
        let version = match r {
            Ok((s, out, _)) if s.success() => out.trim().to_string(),
            Ok((s, out, err)) => panic!(
                "partition: `iptables` is not usable ({s}): {} {}; install it (tools/test \
                 does: apt-get install iptables)",
                out.trim(),
                err.trim()
            ),
            Err(e) => panic!("partition: cannot run iptables: {e}"),
        };
        self.ns_tool(&self.router, &["iptables", "-w", "-n", "-L", "FORWARD"]);
        static SAID: std::sync::Once = std::sync::Once::new();
        SAID.call_once(|| println!("partition: using {version}"));
    }

    fn created_list(&self) -> MutexGuard<'_, Vec<String>> {
        self.created.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn cut_set(&self) -> MutexGuard<'_, BTreeSet<(usize, usize)>> {
        self.cuts.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn proc_list(&self) -> MutexGuard<'_, Vec<Spawned>> {
        self.procs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `args` inside namespace `ns` (`ip netns exec`); panics on failure.
    fn ns_tool(&self, ns: &str, args: &[&str]) {
        let mut all = vec!["ip", "netns", "exec", ns];
        all.extend_from_slice(args);
        tool(&all);
    }

    fn index(&self, node: &str) -> usize {
        self.nodes
            .iter()
            .position(|n| n.name == node)
            .unwrap_or_else(|| {
                panic!(
                    "partition: no node {node:?} (nodes: {:?})",
                    self.node_names()
                )
            })
    }

    /// The nodes' names, in the order given to [`Net::new`].
    pub fn node_names(&self) -> Vec<&str> {
        self.nodes.iter().map(|n| n.name.as_str()).collect()
    }

    /// Everything about `node`.
    pub fn node(&self, node: &str) -> &NetNode {
        &self.nodes[self.index(node)]
    }

    /// `node`'s namespace name.
    pub fn ns(&self, node: &str) -> &str {
        &self.node(node).ns
    }

    /// `node`'s address: where its listeners bind and the test's clients dial.
    pub fn addr(&self, node: &str) -> Ipv4Addr {
        self.node(node).addr
    }

    /// The router's namespace name.
    pub fn router_ns(&self) -> &str {
        &self.router
    }

    /// The `10.k.0.0/16` this instance's addresses are in.
    pub fn subnet(&self) -> String {
        format!("10.{}.0.0/16", self.k)
    }

    /// Runs `f` on a thread inside the router's namespace, where the test's clients
    /// reach every node; processes it spawns live there too. A panic in `f` is
    /// re-raised here.
    pub fn run_in_router<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        in_netns(&self.router, f)
    }

    /// Runs `f` on a thread inside `node`'s namespace.
    pub fn run_in<T: Send>(&self, node: &str, f: impl FnOnce() -> T + Send) -> T {
        in_netns(self.ns(node), f)
    }

    /// [`NodeOpts::named`]`(node)` running in `node`'s namespace, its connectors and
    /// status endpoint on `node`'s address.
    pub fn node_opts(&self, node: &str) -> NodeOpts {
        NodeOpts::named(node).in_netns(self.ns(node), IpAddr::V4(self.addr(node)))
    }

    /// [`PairOpts::default`] with the master in node "master" and the slave in node
    /// "slave" (both must exist).
    pub fn pair_opts(&self) -> PairOpts {
        PairOpts {
            master: self.node_opts("master"),
            slave: self.node_opts("slave"),
            ..PairOpts::default()
        }
    }

    // -----------------------------------------------------------------------------
    // Processes

    /// `ip netns exec <node's ns> <program>`: add arguments and stdio, then spawn it
    /// from anywhere (the process is in the node's namespace wherever it is spawned).
    /// The caller owns the child: it is not killed on drop (see [`Net::spawn_in`]).
    pub fn command_in(&self, node: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", self.ns(node)]).arg(program);
        c
    }

    /// Starts `cmd` in `node`'s namespace as `ip netns exec <ns> <program> <args>`
    /// (its environment changes and working directory are kept; `env_clear` is not).
    /// stdin is /dev/null; stdout and stderr go to a log file ([`Net::output`]),
    /// printed if the test panics. `ip` execs the program, so the returned pid is the
    /// program's: [`Net::signal`] (SIGSTOP, SIGKILL) reaches it. Killed on drop.
    pub fn spawn_in(&self, node: &str, cmd: Command) -> u32 {
        let mut wrapped = self.command_in(node, cmd.get_program());
        wrapped.args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => wrapped.env(k, v),
                None => wrapped.env_remove(k),
            };
        }
        if let Some(d) = cmd.get_current_dir() {
            wrapped.current_dir(d);
        }
        let mut procs = self.proc_list();
        let log = self.dir.path().join(format!("{node}-{}.log", procs.len()));
        let out = fs::File::create(&log).expect("create process log");
        let child = wrapped
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup log"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("partition: spawn {wrapped:?}: {e}"));
        let pid = child.id();
        procs.push(Spawned {
            node: node.to_string(),
            pid,
            child: Some(child),
            exited: None,
            log,
        });
        pid
    }

    fn with_proc<T>(&self, pid: u32, f: impl FnOnce(&mut Spawned) -> T) -> T {
        let mut procs = self.proc_list();
        let p = procs
            .iter_mut()
            .find(|p| p.pid == pid)
            .unwrap_or_else(|| panic!("partition: pid {pid} was not started by spawn_in"));
        f(p)
    }

    /// Sends `sig` to a process [`Net::spawn_in`] started (it must not have been reaped).
    pub fn signal(&self, pid: u32, sig: libc::c_int) {
        self.with_proc(pid, |p| {
            assert!(
                p.child.is_some(),
                "partition: signal {sig} to pid {pid}, which has exited ({:?})",
                p.exited
            );
            // SAFETY: a signal to our own unreaped child; no memory involved.
            let rc = unsafe { libc::kill(pid as libc::pid_t, sig) };
            assert_eq!(rc, 0, "kill({pid}, {sig})");
        })
    }

    /// Its exit status if it has exited (reaps it); None while it runs.
    pub fn try_exit_status(&self, pid: u32) -> Option<ExitStatus> {
        self.with_proc(pid, |p| {
            if let Some(child) = p.child.as_mut() {
                if let Some(s) = child.try_wait().expect("try_wait") {
                    p.child = None;
                    p.exited = Some(s);
                }
            }
            p.exited
        })
    }

    /// Waits (bounded) for it to exit; None if it still runs after `timeout`.
    pub fn wait_exit(&self, pid: u32, timeout: Duration) -> Option<ExitStatus> {
        let mut status = None;
        poll_until(timeout, || {
            status = self.try_exit_status(pid);
            status.is_some()
        });
        status
    }

    /// SIGKILL and reap.
    pub fn kill9(&self, pid: u32) -> ExitStatus {
        self.with_proc(pid, |p| {
            if let Some(mut child) = p.child.take() {
                let _ = child.kill();
                p.exited = Some(child.wait().expect("wait after kill -9"));
            }
            p.exited.expect("exit status")
        })
    }

    /// What it wrote to stdout and stderr so far.
    pub fn output(&self, pid: u32) -> String {
        let log = self.with_proc(pid, |p| p.log.clone());
        fs::read_to_string(log).unwrap_or_default()
    }

    // -----------------------------------------------------------------------------
    // Cuts

    fn rule(&self, op: &str, from: usize, to: usize) {
        let (s, d) = (
            self.nodes[from].addr.to_string(),
            self.nodes[to].addr.to_string(),
        );
        self.ns_tool(
            &self.router,
            &[
                "iptables", "-w", op, "FORWARD", "-s", &s, "-d", &d, "-j", "DROP",
            ],
        );
    }

    /// Drops every packet the router would forward between `a` and `b`, both ways:
    /// established connections go silent (no reset), new ones time out. Clients in
    /// the router namespace still reach both. Idempotent.
    pub fn cut(&self, a: &str, b: &str) {
        let (i, j) = (self.index(a), self.index(b));
        assert_ne!(i, j, "partition: cut {a} from itself");
        let mut cuts = self.cut_set();
        for (from, to) in [(i, j), (j, i)] {
            if cuts.insert((from, to)) {
                self.rule("-I", from, to);
            }
        }
        println!("partition: cut {a} <-> {b}");
    }

    /// Removes the rules [`Net::cut`] added between `a` and `b`. Idempotent.
    pub fn heal(&self, a: &str, b: &str) {
        let (i, j) = (self.index(a), self.index(b));
        let mut cuts = self.cut_set();
        for (from, to) in [(i, j), (j, i)] {
            if cuts.remove(&(from, to)) {
                self.rule("-D", from, to);
            }
        }
        println!("partition: healed {a} <-> {b}");
    }

    /// Cuts `a` from every other node (the test's clients still reach it).
    pub fn cut_all(&self, a: &str) {
        for b in self.node_names().into_iter().filter(|b| *b != a) {
            self.cut(a, b);
        }
    }

    /// Heals every cut involving `a`.
    pub fn heal_all(&self, a: &str) {
        for b in self.node_names().into_iter().filter(|b| *b != a) {
            self.heal(a, b);
        }
    }

    /// True while packets from `a` to `b` are dropped.
    pub fn is_cut(&self, a: &str, b: &str) -> bool {
        self.cut_set().contains(&(self.index(a), self.index(b)))
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        for p in self.procs.get_mut().unwrap_or_else(|e| e.into_inner()) {
            if let Some(mut child) = p.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
            if panicking {
                let text = fs::read_to_string(&p.log).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                eprintln!(
                    "---- process {} in {}, last 100 lines of its output ----",
                    p.pid, p.node
                );
                for l in &lines[lines.len().saturating_sub(100)..] {
                    eprintln!("{l}");
                }
            }
        }
        // Nodes first, then the router (the first one created). Deleting a namespace
        // takes its veth end (and so the peer) and its iptables rules with it.
        let created = std::mem::take(self.created.get_mut().unwrap_or_else(|e| e.into_inner()));
        for ns in created.iter().rev() {
            if let Err(e) = delete_namespace(ns) {
                eprintln!("partition: teardown: {e}");
            }
        }
    }
}

/// Runs one tool; panics with its output if it fails.
fn tool(args: &[&str]) {
    match run_bounded(Command::new(args[0]).args(&args[1..]), TOOL_TIMEOUT) {
        Ok((status, _, _)) if status.success() => {}
        Ok((status, out, err)) => panic!(
            "partition: `{}` failed ({status}): {} {}",
            args.join(" "),
            out.trim(),
            err.trim()
        ),
        Err(e) => panic!("partition: `{}`: {e}", args.join(" ")),
    }
}

fn delete_namespace(ns: &str) -> Result<(), String> {
    match run_bounded(Command::new("ip").args(["netns", "del", ns]), TOOL_TIMEOUT) {
        Ok((status, _, _)) if status.success() => Ok(()),
        Ok((status, _, err)) => Err(format!("ip netns del {ns}: {status}: {}", err.trim())),
        Err(e) => Err(format!("ip netns del {ns}: {e}")),
    }
}

/// Deletes `tandem-<pid>-<n>-*` namespaces whose test process no longer exists (it
/// was killed before its [`Net`] was dropped). Those of live processes are left alone.
fn sweep_dead_namespaces() {
    let Ok(entries) = fs::read_dir("/run/netns") else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let mut parts = name.splitn(4, '-');
        let (Some("tandem"), Some(pid), Some(n), Some(_)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let (Ok(pid), Ok(_)) = (pid.parse::<u32>(), n.parse::<u32>()) else {
            continue;
        };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            match delete_namespace(&name) {
                Ok(()) => println!("partition: deleted {name}, left by a dead test process"),
                Err(e) => eprintln!("partition: {e}"),
            }
        }
    }
}

/// Runs `f` on a thread that entered the named network namespace `ns`
/// (`setns(/run/netns/<ns>, CLONE_NEWNET)` changes only that thread); sockets it opens
/// and processes it spawns live in `ns`. A panic in `f` is re-raised here; failing
/// to enter `ns` panics with the reason.
pub fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    let path = format!("/run/netns/{ns}");
    let name = format!("{}@{ns}", std::thread::current().name().unwrap_or("test"));
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name(name)
            .spawn_scoped(scope, || {
                if let Err(e) = enter_netns(&path) {
                    panic!(
                        "partition: cannot enter network namespace {path}: {e} (needs \
                         CAP_SYS_ADMIN: run as root)"
                    );
                }
                f()
            })
            .expect("spawn namespace thread");
        match handle.join() {
            Ok(v) => v,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

fn enter_netns(path: &str) -> std::io::Result<()> {
    let file = fs::File::open(path)?;
    // SAFETY: setns on a valid namespace fd; CLONE_NEWNET changes only this thread.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
