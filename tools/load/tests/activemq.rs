//! `tandem-load` against a REAL ActiveMQ Classic 5.17 over its STOMP connector (KahaDB,
//! default sync), with the same flags as against Tandem: the tool is a fair yardstick
//! for both. Skipped, saying why, when java or libactivemq-java is missing (tools/test
//! installs them, so CI runs it).

mod support;

use support::{activemq_missing, run_load, ActiveMq};

#[test]
fn persistent_queue_run_against_activemq_stomp() {
    if let Some(why) = activemq_missing() {
        eprintln!("SKIPPED persistent_queue_run_against_activemq_stomp: {why}");
        return;
    }
    let broker = ActiveMq::start();
    let run = run_load(
        &broker.url(),
        &[
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
        ],
    );
    assert_eq!(run.code, Some(0), "{}", run.dump());
    assert_eq!(run.check("lost"), 0, "{}", run.dump());
    assert_eq!(run.check("duplicates"), 0, "{}", run.dump());
    assert_eq!(run.report["totals"]["confirmed"], 1000, "{}", run.dump());
    assert_eq!(run.report["totals"]["received"], 1000, "{}", run.dump());
}
