//! Silence without a crash (design/SCENARIOS.md F1, F2): a master paused by SIGSTOP
//! (a VM pause) and a replication link cut while both nodes live. Real processes;
//! the cut is an iptables DROP in a router namespace between the nodes
//! (`support/partition.rs`), so it is silence, not a reset.
//!
//! The producer is the failover STOMP client of `support/safety.rs`: every receipt is
//! logged with the node that sent it and when. The invariant checked: never two nodes
//! confirming writes. Times are printed, never asserted; every loop is bounded.
//!
//! Run (as root; the namespace tests need CAP_SYS_ADMIN):
//! `cargo test --test pair_safety -- --nocapture`.

mod support;

use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::pair::{
    is_master_in_sync, is_slave_in_sync, peer, scenario_delay, test_slot, Pair, PairOpts,
    SYNC_TIMEOUT,
};
use support::partition::Net;
use support::safety::{
    confirmed_under_a_newer_master, drain_and_check, restart_stale, seq_ranges, serving_and_stale,
    Traffic, DEST, RUN_LIMIT,
};
use support::{poll_until, run_bounded, tandem_bin};

/// Directories named `diverged-*` anywhere under `dir`.
fn diverged_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    for _ in 0..100_000 {
        let Some(d) = todo.pop() else { break };
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                if e.file_name().to_string_lossy().starts_with("diverged-") {
                    found.push(p);
                } else {
                    todo.push(p);
                }
            }
        }
    }
    found.sort();
    found
}

// ---------------------------------------------------------------------------------
// F1: a paused master

/// F1. The master is SIGSTOPped for 2 s under load (a VM pause), then resumed. The
/// slave loses its heartbeats and takes over meanwhile; whatever each node then
/// does, never do both confirm writes, and after the stale node is restarted every
/// confirmed message is on the serving node, once.
#[test]
fn a_paused_master_never_makes_two_masters() {
    const PAUSE: Duration = Duration::from_secs(2);
    let _slot = test_slot();
    let pair = Pair::start(PairOpts::default());
    let (a, b) = (&pair.master, &pair.slave);
    let traffic = Traffic::new([a, b]);
    let log = &traffic.log;

    let ((paused_at, resumed_at), samples) = traffic.run(|run| {
        run.warm_up(Duration::from_secs(60));

        let paused_at = traffic.elapsed();
        a.signal(libc::SIGSTOP);
        scenario_delay(PAUSE);
        a.signal(libc::SIGCONT);
        let resumed_at = traffic.elapsed();
        println!(
            "{} stopped at {} ms, continued at {} ms",
            a.name(),
            paused_at.as_millis(),
            resumed_at.as_millis()
        );

        // Keep sending: new sessions start at the old master again.
        scenario_delay(Duration::from_secs(3));
        run.progressed(Duration::from_secs(30), |log| {
            log.count_since(resumed_at) >= 100
        });
        (paused_at, resumed_at)
    });

    let phases = [
        ("before the pause", Duration::ZERO),
        ("paused", paused_at),
        ("after SIGCONT", resumed_at),
    ];
    traffic.report("", &phases, &samples);
    let interleaved = log.after_another_node_confirmed();
    let replaced = confirmed_under_a_newer_master(log, &samples);

    let (serving, stale) = serving_and_stale([a, b]);
    println!("serving: {}; stale: {}", serving.name(), stale.name());
    restart_stale(serving, stale);
    let (missing, duplicated, unknown) = drain_and_check(serving, log);

    let mut problems = Vec::new();
    if let Some(c) = interleaved.first() {
        problems.push(format!(
            "two nodes confirmed writes: {} confirmations by {} after {} had confirmed (the \
             first: seq {} at {} ms)",
            interleaved.len(),
            log.names[c.node],
            log.names[1 - c.node],
            c.seq,
            c.at.as_millis()
        ));
    }
    if let Some((c, own, newer)) = replaced.first() {
        problems.push(format!(
            "{} confirmations by a replaced master: the first, seq {} at {} ms by {} (epoch \
             {own:#x}), after {} said master with epoch {newer:#x}",
            replaced.len(),
            c.seq,
            c.at.as_millis(),
            log.names[c.node],
            log.names[1 - c.node]
        ));
    }
    if !missing.is_empty() {
        problems.push(format!(
            "{} confirmed messages not on {}: {}",
            missing.len(),
            serving.name(),
            seq_ranges(&missing)
        ));
    }
    if !duplicated.is_empty() {
        problems.push(format!("unflagged duplicates (seq, times): {duplicated:?}"));
    }
    if !unknown.is_empty() {
        problems.push(format!("messages nobody sent: {unknown:?}"));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------------
// F2: a cut link, no witness

/// F2 without a witness. The link between master and slave is cut for 5 s while a
/// producer sends (clients reach both nodes). The slave may take over; the master,
/// still reachable by clients, may keep confirming: two histories. When the link
/// heals, the node with the older epoch steps down, rejoins as slave and sets the
/// records only it confirmed aside in `shard-N/diverged-*`; `tandem journal
/// replay-diverged <dir> --url <failover url>` sends them to the serving master, which
/// then holds every confirmed message.
#[test]
fn a_cut_link_without_witness_keeps_what_diverged_and_replays_it() {
    const CUT: Duration = Duration::from_secs(5);
    let _slot = test_slot();
    let net = Net::new(&["master", "slave"]);
    net.run_in_router(|| {
        let pair = Pair::start(net.pair_opts());
        let (a, b) = (&pair.master, &pair.slave);
        let traffic = Traffic::new([a, b]);
        let log = &traffic.log;

        let ((cut_at, healed_at, converged_at), samples) = traffic.run(|run| {
            run.warm_up(Duration::from_secs(60));

            let cut_at = traffic.elapsed();
            net.cut("master", "slave");
            scenario_delay(CUT);
            net.heal("master", "slave");
            let healed_at = traffic.elapsed();

            // The pair converges: one master, its in-sync slave. The producer keeps
            // sending meanwhile.
            let converged = poll_until(SYNC_TIMEOUT, || {
                let (sa, sb) = (
                    a.try_status_within(Duration::from_secs(1)),
                    b.try_status_within(Duration::from_secs(1)),
                );
                let one_each = |m: &Option<serde_json::Value>, s: &Option<serde_json::Value>| {
                    m.as_ref().is_some_and(is_master_in_sync)
                        && s.as_ref().is_some_and(is_slave_in_sync)
                };
                one_each(&sa, &sb) || one_each(&sb, &sa)
            });
            let converged_at = converged.then(|| traffic.elapsed());
            if let Some(converged_at) = converged_at {
                run.progressed(Duration::from_secs(30), |log| {
                    log.count_since(converged_at) >= 50
                });
            }
            (cut_at, healed_at, converged_at)
        });

        traffic.report_cut(cut_at, healed_at, converged_at, &samples);
        // Without a witness, both sides may accept writes during the cut: what the
        // replaced side confirmed must come back through the replay.
        let replaced = confirmed_under_a_newer_master(log, &samples);
        println!(
            "confirmations by a replaced master: {} (seq {})",
            replaced.len(),
            seq_ranges(&replaced.iter().map(|r| r.0.seq).collect::<Vec<_>>())
        );
        assert!(
            converged_at.is_some(),
            "the pair did not converge (one master, one in-sync slave) within \
             {SYNC_TIMEOUT:?} of the heal: {}: {:?}; {}: {:?}",
            a.name(),
            a.try_status_within(Duration::from_secs(2)),
            b.name(),
            b.try_status_within(Duration::from_secs(2))
        );

        let (serving, stepped_down) = serving_and_stale([a, b]);
        let diverged: Vec<PathBuf> = [serving, stepped_down]
            .iter()
            .flat_map(|n| diverged_dirs(&n.data_dir()))
            .collect();
        println!(
            "serving: {}; stepped down: {}; diverged directories: {diverged:?}",
            serving.name(),
            stepped_down.name()
        );
        let url = format!(
            "failover:({},{})?randomize=false",
            serving.stomp_url(),
            stepped_down.stomp_url()
        );
        for dir in &diverged {
            let (status, out, err) = run_bounded(
                Command::new(tandem_bin())
                    .args(["journal", "replay-diverged"])
                    .arg(dir)
                    .args(["--url", &url])
                    .env("NO_COLOR", "1"),
                Duration::from_secs(120),
            )
            .unwrap_or_else(|e| panic!("replay-diverged {}: {e}", dir.display()));
            println!("replay-diverged {}: {status}\n{out}{err}", dir.display());
            assert!(
                status.success(),
                "replay-diverged {} failed: {status}\n{out}{err}",
                dir.display()
            );
        }

        let (missing, duplicated, unknown) = drain_and_check(serving, log);
        assert!(
            missing.is_empty(),
            "{} confirmed messages not on {} after replaying {} diverged directories: {}",
            missing.len(),
            serving.name(),
            diverged.len(),
            seq_ranges(&missing)
        );
        assert!(
            duplicated.is_empty(),
            "unflagged duplicates: {duplicated:?}"
        );
        assert!(unknown.is_empty(), "messages nobody sent: {unknown:?}");
    });
}

// ---------------------------------------------------------------------------------
// The harness itself

/// Echoes what every connection on its listener sends (one thread per connection,
/// until the client closes). Dropping it stops accepting and closes the listener.
struct EchoServer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EchoServer {
    /// Serves `listener` (its socket stays in the namespace it was bound in, whatever
    /// thread uses it).
    fn start(listener: TcpListener) -> EchoServer {
        let stop = Arc::new(AtomicBool::new(false));
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let deadline = Instant::now() + RUN_LIMIT;
                while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                    match listener.accept() {
                        Ok((mut conn, _)) => {
                            conn.set_nonblocking(false).expect("blocking connection");
                            std::thread::spawn(move || {
                                let mut read = conn.try_clone().expect("clone");
                                let _ = std::io::copy(&mut read, &mut conn);
                            });
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            })
        };
        EchoServer {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Writes `msg` and reads it back within `timeout`: Ok, or the error kind.
fn echo(conn: &mut TcpStream, msg: &[u8], timeout: Duration) -> Result<(), std::io::ErrorKind> {
    use std::io::{Read, Write};
    conn.write_all(msg).map_err(|e| e.kind())?;
    conn.set_read_timeout(Some(timeout)).unwrap();
    let mut got = vec![0u8; msg.len()];
    conn.read_exact(&mut got).map_err(|e| e.kind())?;
    assert_eq!(got, msg);
    Ok(())
}

fn is_timeout(kind: std::io::ErrorKind) -> bool {
    matches!(
        kind,
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// A cut makes an established TCP connection between two namespaces silent (no reset)
/// and new connections time out; the router (the test's clients) still reaches both
/// ends; a heal lets the retransmissions through. `cut_all` isolates a node from every
/// other node, not from the router.
#[test]
fn partition_harness_cut_silences_and_heal_restores() {
    let net = Net::new(&["a", "b", "c"]);
    let (addr_a, addr_b, addr_c) = (net.addr("a"), net.addr("b"), net.addr("c"));
    let mut servers = Vec::new();
    let mut listen = |node: &str, addr| {
        let l = net.run_in(node, || TcpListener::bind((addr, 0)).expect("bind"));
        let port = l.local_addr().unwrap().port();
        servers.push(EchoServer::start(l));
        SocketAddr::from((addr, port))
    };
    let (at_a, at_b, at_c) = (
        listen("a", addr_a),
        listen("b", addr_b),
        listen("c", addr_c),
    );
    let connect_from = |node: &str, to: SocketAddr| {
        net.run_in(node, || {
            TcpStream::connect_timeout(&to, Duration::from_secs(2)).map_err(|e| e.kind())
        })
    };
    let from_router = |to: SocketAddr| {
        net.run_in_router(|| TcpStream::connect_timeout(&to, Duration::from_secs(2)).is_ok())
    };

    let mut ab = connect_from("a", at_b).expect("a -> b before the cut");
    echo(&mut ab, b"before", Duration::from_secs(10)).expect("echo a -> b before the cut");

    net.cut("a", "b");
    assert!(net.is_cut("a", "b") && net.is_cut("b", "a"));
    let silent = echo(&mut ab, b"during", Duration::from_secs(1));
    assert!(
        matches!(silent, Err(k) if is_timeout(k)),
        "a cut connection must go silent, not fail: {silent:?}"
    );
    let fresh = connect_from("a", at_b);
    assert!(
        matches!(fresh, Err(k) if is_timeout(k)),
        "a new connection across a cut must time out (DROP), not be refused: {fresh:?}"
    );
    assert!(connect_from("a", at_c).is_ok(), "a -> c is not cut");
    assert!(connect_from("c", at_b).is_ok(), "c -> b is not cut");
    assert!(
        from_router(at_a) && from_router(at_b),
        "the router reaches both"
    );

    let healed = Instant::now();
    net.heal("a", "b");
    // The bytes written during the cut arrive by retransmission.
    let mut got = vec![0u8; 6];
    ab.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    std::io::Read::read_exact(&mut ab, &mut got).expect("echo of the bytes sent during the cut");
    assert_eq!(&got, b"during");
    println!(
        "bytes sent during the cut echoed {} ms after the heal",
        healed.elapsed().as_millis()
    );
    echo(&mut ab, b"after", Duration::from_secs(10)).expect("echo after the heal");
    assert!(connect_from("a", at_b).is_ok(), "a -> b after the heal");

    net.cut_all("a");
    for to in [at_b, at_c] {
        let r = connect_from("a", to);
        assert!(
            matches!(r, Err(k) if is_timeout(k)),
            "a -> {to} after cut_all: {r:?}"
        );
    }
    let r = connect_from("b", at_a);
    assert!(
        matches!(r, Err(k) if is_timeout(k)),
        "b -> a after cut_all: {r:?}"
    );
    assert!(connect_from("b", at_c).is_ok(), "b -> c is not cut");
    assert!(from_router(at_a), "the router still reaches a");
    net.heal_all("a");
    assert!(connect_from("a", at_c).is_ok() && connect_from("c", at_a).is_ok());
    let _ = ab.shutdown(Shutdown::Both);
    drop(servers);
}

/// `spawn_in` runs the program itself (`ip netns exec` execs it) in the node's
/// namespace: its pid is the program's, SIGSTOP/SIGCONT/SIGKILL reach it; dropping
/// the harness kills what is still running and deletes the namespaces.
#[test]
fn partition_harness_spawn_in_runs_the_program_in_the_namespace() {
    let net = Net::new(&["solo"]);
    let ns = net.ns("solo").to_string();
    let ns_inode = |path: &str| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).map(|m| m.ino()).unwrap_or(0)
    };
    let state = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                s.rsplit_once(") ")
                    .map(|(_, r)| r.chars().next().unwrap_or('?'))
            })
    };
    let mut cmd = Command::new("sleep");
    cmd.arg("600");
    let pid = net.spawn_in("solo", cmd);
    let execed = poll_until(Duration::from_secs(10), || {
        std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep")
    });
    assert!(execed, "pid {pid} never became `sleep`");
    assert_eq!(
        ns_inode(&format!("/proc/{pid}/ns/net")),
        ns_inode(&format!("/run/netns/{ns}")),
        "the spawned process is not in {ns}"
    );
    net.signal(pid, libc::SIGSTOP);
    assert!(
        poll_until(Duration::from_secs(10), || state(pid) == Some('T')),
        "SIGSTOP did not stop it: {:?}",
        state(pid)
    );
    net.signal(pid, libc::SIGCONT);
    assert!(
        poll_until(Duration::from_secs(10), || state(pid) == Some('S')),
        "SIGCONT did not resume it: {:?}",
        state(pid)
    );
    let status = net.kill9(pid);
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "{status}"
    );

    // Teardown: a second process still running when the harness is dropped.
    let mut cmd = Command::new("sleep");
    cmd.arg("600");
    let orphan = net.spawn_in("solo", cmd);
    drop(net);
    assert!(
        !Path::new(&format!("/run/netns/{ns}")).exists(),
        "{ns} not deleted"
    );
    assert!(
        state(orphan).is_none(),
        "pid {orphan} still alive after the drop"
    );
}

/// A pair runs in namespaces: the slave attaches to the master's address through the
/// router, clients in the router namespace use both nodes, and a cut of the link is
/// seen by the master (its peer leaves `in-sync`) while clients still reach it.
#[test]
fn partition_harness_runs_a_pair_in_namespaces() {
    let _slot = test_slot();
    let net = Net::new(&["master", "slave"]);
    net.run_in_router(|| {
        let pair = Pair::start(net.pair_opts());
        let (a, b) = (&pair.master, &pair.slave);
        assert_eq!(a.host(), std::net::IpAddr::V4(net.addr("master")));
        let s = a.status();
        println!(
            "master {} in sync with slave {}: {}",
            a.stomp_addr(),
            b.stomp_addr(),
            s["replication"]
        );
        let mut c = a.client();
        c.send_receipted(DEST, b"through the router", "r-1");

        let cut = Instant::now();
        net.cut("master", "slave");
        let s = a.wait_status(|s| peer(s) != "in-sync", Duration::from_secs(30));
        println!(
            "master's peer {} {} ms after the cut",
            peer(&s),
            cut.elapsed().as_millis()
        );
        // Whether it still serves is the pair's policy; that it is reachable is the
        // harness's.
        let reachable =
            std::net::TcpStream::connect_timeout(&a.status_addr(), Duration::from_secs(5));
        assert!(
            reachable.is_ok(),
            "the router no longer reaches the master: {reachable:?}"
        );
        println!(
            "after the cut the master answers STOMP: {}",
            a.probe(Duration::from_secs(2))
        );
        net.heal("master", "slave");
    });
}
