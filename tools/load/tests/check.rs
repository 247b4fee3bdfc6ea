//! `tandem-load` against a real Tandem broker: a clean persistent run checks out (0 lost,
//! 0 duplicates), and the check catches a broker that loses or duplicates a delivery
//! (a tampering proxy between the tool and the broker plays that broker).

mod support;

use std::sync::atomic::Ordering;

use support::proxy::{Proxy, Tamper};
use support::{run_load, Tandem};

/// Small and quick: the point is the check, not the numbers.
const SMALL: &[&str] = &[
    "--messages",
    "2000",
    "--warmup",
    "0s",
    "--drain-quiet",
    "1s",
    "--quiet",
];

#[test]
fn persistent_queue_run_loses_nothing() {
    let broker = Tandem::start();
    let mut args = SMALL.to_vec();
    args.extend([
        "--producers",
        "2",
        "--consumers",
        "2",
        "--max-pending",
        "16",
        "--ack",
        "client",
        "--hdr",
    ]);
    let dir = tempfile::tempdir().expect("tempdir");
    let hdr = dir.path().join("run.hdr");
    let hdr_arg = hdr.to_str().expect("utf-8 path");
    args.push(hdr_arg);
    let run = run_load(&broker.url(), &args);
    assert_eq!(run.code, Some(0), "{}", run.dump());
    assert_eq!(run.check("lost"), 0, "{}", run.dump());
    assert_eq!(run.check("duplicates"), 0, "{}", run.dump());
    assert_eq!(run.check("out_of_order"), 0, "{}", run.dump());
    let r = &run.report;
    assert_eq!(r["settings"]["persistent"], true);
    assert_eq!(r["totals"]["confirmed"], 2000, "{}", run.dump());
    assert_eq!(r["totals"]["received"], 2000, "{}", run.dump());
    assert_eq!(r["latency"]["send_confirm"]["count"], 2000);
    assert_eq!(r["latency"]["end_to_end"]["count"], 2000);
    assert!(r["machine"]["cores"].as_u64().unwrap_or(0) >= 1);
    let log = std::fs::read_to_string(&hdr).expect("hdr log written");
    assert!(
        log.contains("Tag=send_confirm") && log.contains("Tag=end_to_end"),
        "{log}"
    );
}

/// The same check over OpenWire (Tandem sniffs the protocol, so the STOMP port
/// serves it too): pipelined persistent sends, individual acks, a topic fan-out.
#[test]
fn openwire_runs_lose_nothing() {
    let broker = Tandem::start();
    let url = format!("tcp://127.0.0.1:{}", broker.port);
    let mut args = SMALL.to_vec();
    args.extend([
        "--protocol",
        "openwire",
        "--producers",
        "2",
        "--consumers",
        "2",
        "--max-pending",
        "16",
        "--ack",
        "individual",
    ]);
    let run = run_load(&url, &args);
    assert_eq!(run.code, Some(0), "{}", run.dump());
    assert_eq!(run.check("lost"), 0, "{}", run.dump());
    assert_eq!(run.check("duplicates"), 0, "{}", run.dump());
    assert_eq!(run.report["totals"]["confirmed"], 2000, "{}", run.dump());
    assert_eq!(run.report["totals"]["received"], 2000, "{}", run.dump());

    let mut args = SMALL.to_vec();
    args.extend([
        "--protocol",
        "openwire",
        "--destination",
        "/topic/fan",
        "--consumers",
        "3",
    ]);
    let run = run_load(&url, &args);
    assert_eq!(run.code, Some(0), "{}", run.dump());
    assert_eq!(run.check("lost"), 0, "{}", run.dump());
    assert_eq!(run.report["totals"]["received"], 6000, "{}", run.dump());
}

/// Tampers with the 500th delivery and returns the run.
fn tampered(tamper: Tamper) -> support::Run {
    let broker = Tandem::start();
    let proxy = Proxy::start(broker.port, tamper, 500);
    let run = run_load(&proxy.url(), SMALL);
    assert!(
        proxy.done.load(Ordering::SeqCst),
        "the proxy never tampered"
    );
    run
}

#[test]
fn a_dropped_delivery_is_reported_lost() {
    let run = tampered(Tamper::Drop);
    assert_eq!(run.check("lost"), 1, "{}", run.dump());
    assert_eq!(run.check("duplicates"), 0, "{}", run.dump());
    assert_eq!(run.code, Some(2), "a failed check exits 2\n{}", run.dump());
    assert!(run.stderr.contains("CHECK FAILED"), "{}", run.dump());
    let lost = &run.report["check"]["per_producer"][0]["lost_examples"];
    assert_eq!(lost.as_array().map(|a| a.len()), Some(1), "{}", run.dump());
}

#[test]
fn a_doubled_delivery_is_reported_duplicate() {
    let run = tampered(Tamper::Duplicate);
    assert_eq!(run.check("duplicates"), 1, "{}", run.dump());
    assert_eq!(run.check("lost"), 0, "{}", run.dump());
    assert_eq!(run.code, Some(2), "{}", run.dump());
}
