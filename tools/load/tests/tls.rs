//! `tandem-load` over TLS against a real Tandem broker's TLS connector: STOMP
//! (`stomp+ssl://`, by host name) and OpenWire (`ssl://` by IP, inside `failover:`),
//! trusting the test CA with `--ca-file`; and a broker certificate the CA did not sign
//! is refused with a one-line error (exit 1).

mod support;

use support::{run_load, tls_fixture, Tandem, SMALL_RUN as SMALL};

#[test]
fn stomp_and_openwire_runs_over_tls_lose_nothing() {
    let broker = Tandem::start_tls();
    let port = broker.tls_port.expect("TLS port");
    let ca = tls_fixture("ca.pem");
    for (protocol, url) in [
        ("stomp", format!("stomp+ssl://localhost:{port}")),
        (
            "openwire",
            format!("failover:(ssl://127.0.0.1:{port})?randomize=false"),
        ),
    ] {
        let mut args = SMALL.to_vec();
        let dest = format!("/queue/tls-{protocol}");
        args.extend([
            "--protocol",
            protocol,
            "--destination",
            &dest,
            "--ca-file",
            &ca,
        ]);
        let run = run_load(&url, &args);
        assert_eq!(run.code, Some(0), "{protocol}: {}", run.dump());
        assert_eq!(run.check("lost"), 0, "{protocol}: {}", run.dump());
        assert_eq!(run.check("duplicates"), 0, "{protocol}: {}", run.dump());
        assert_eq!(run.report["totals"]["received"], 1000, "{}", run.dump());
        assert_eq!(run.report["settings"]["ca_file"], ca.as_str());
    }
}

#[test]
fn a_broker_certificate_the_ca_did_not_sign_is_refused() {
    let broker = Tandem::start_tls();
    let port = broker.tls_port.expect("TLS port");
    // The only trust anchor is a certificate that did not sign the broker's (the test
    // client certificate), so nothing the broker presents chains to it.
    let not_the_ca = tls_fixture("client.pem");
    let url = format!("stomp+ssl://localhost:{port}");
    let run = run_load(
        &url,
        &["--ca-file", &not_the_ca, "--messages", "10", "--quiet"],
    );
    assert_eq!(run.code, Some(1), "{}", run.dump());
    assert!(
        run.stderr.contains("invalid peer certificate"),
        "{}",
        run.dump()
    );
    assert_eq!(run.stderr.trim().lines().count(), 1, "{}", run.dump());
}
