//! `tandem-load` against a REAL ActiveMQ Classic 5.17 over its STOMP and OpenWire
//! connectors (KahaDB, default sync), with the same flags as against Tandem: the tool is
//! a fair yardstick for both. Skipped, saying why, when java or libactivemq-java is missing (tools/test
//! installs them, so CI runs it).

mod support;

use support::{activemq_missing, run_load, ActiveMq};

/// The same persistent queue run over STOMP and over OpenWire (one broker, started once).
#[test]
fn persistent_queue_runs_against_activemq_stomp_and_openwire() {
    if let Some(why) = activemq_missing() {
        eprintln!("SKIPPED persistent_queue_runs_against_activemq_stomp_and_openwire: {why}");
        return;
    }
    let broker = ActiveMq::start();
    let common = support::SMALL_RUN;
    for (protocol, url, dest) in [
        ("stomp", broker.url(), "/queue/load-stomp"),
        ("openwire", broker.openwire_url(), "/queue/load-openwire"),
    ] {
        let mut args = common.to_vec();
        args.extend(["--protocol", protocol, "--destination", dest]);
        let run = run_load(&url, &args);
        assert_eq!(run.code, Some(0), "{protocol}: {}", run.dump());
        assert_eq!(run.check("lost"), 0, "{protocol}: {}", run.dump());
        assert_eq!(run.check("duplicates"), 0, "{protocol}: {}", run.dump());
        assert_eq!(
            run.report["totals"]["confirmed"],
            1000,
            "{protocol}: {}",
            run.dump()
        );
        assert_eq!(
            run.report["totals"]["received"],
            1000,
            "{protocol}: {}",
            run.dump()
        );
    }
}
