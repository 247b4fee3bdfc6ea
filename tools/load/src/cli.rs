//! Command line: clap's parse, then validation into [`Settings`], the one value the rest
//! of the tool reads and the JSON report repeats verbatim (so a report says exactly what
//! was run).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use serde::Serialize;
use tandem::client::TlsClientConfig;
use tandem::config::{TlsIdentity, TlsSettings, TlsTrust};

use crate::error::LoadError;

/// Which wire protocol the clients speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// STOMP 1.2 (`stomp://host:port`, TLS: `stomp+ssl://host:port`).
    Stomp,
    /// OpenWire, as the ActiveMQ JMS client speaks it (`tcp://host:port`, TLS:
    /// `ssl://host:port`).
    Openwire,
}

/// How consumers acknowledge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Ack {
    /// The broker counts a message consumed when it sends it.
    Auto,
    /// Cumulative acks (STOMP `client`, JMS CLIENT_ACKNOWLEDGE), every few messages.
    Client,
    /// Every message on its own (STOMP `client-individual`).
    Individual,
}

#[derive(Debug, Parser)]
#[command(
    name = "tandem-load",
    version,
    about = "Load generator and checker for Tandem and ActiveMQ Classic",
    long_about = "Runs producers and consumers against a broker, reports throughput and \
                  HDR latency percentiles, and checks every message: lost, duplicated \
                  (unflagged) and out-of-order messages per producer.\n\n\
                  Exit status: 0 ok; 1 could not run (bad flags, no broker); 2 the check \
                  failed (a lost or an unflagged duplicate message)."
)]
pub struct Args {
    /// Broker URL: stomp://host:port (STOMP), tcp://host:port (OpenWire), their TLS
    /// forms stomp+ssl://host:port and ssl://host:port (need --ca-file), or
    /// failover:(a,b)?options of them.
    #[arg(long, default_value = "stomp://127.0.0.1:61613")]
    pub url: String,
    /// Wire protocol.
    #[arg(long, value_enum, default_value = "stomp")]
    pub protocol: Protocol,
    /// Producer connections (one thread each).
    #[arg(long, default_value_t = 1)]
    pub producers: u32,
    /// Consumer connections (one thread each). For a topic each one must see every message.
    #[arg(long, default_value_t = 1)]
    pub consumers: u32,
    /// /queue/NAME or /topic/NAME.
    #[arg(long, default_value = "/queue/load")]
    pub destination: String,
    /// Consumers subscribe here instead of --destination, e.g. a wildcard pattern that
    /// matches it (`/topic/prices.>`); same kind (queue or topic) as --destination.
    #[arg(long)]
    pub subscribe_to: Option<String>,
    /// Message body size in bytes (the first 24 carry producer id, sequence and send time).
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// Persistent messages (default: true for queues, false for topics). `--persistent
    /// false` for non-persistent queue messages.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub persistent: Option<bool>,
    /// Counted messages in all (split over the producers); default 10000 unless --duration.
    #[arg(long, conflicts_with = "duration")]
    pub messages: Option<u64>,
    /// Counted time to produce for, e.g. 30s, 500ms, 2m.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Warm-up before counting (same load, not in the numbers, still checked).
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub warmup: Duration,
    /// Open loop: messages per second in all, on a fixed schedule (send delay against it
    /// is reported). Without it: closed loop, as fast as --max-pending allows.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Sends in flight per producer before waiting for a confirm (1: synchronous sends).
    /// Default 1 in closed loop, 10000 with --rate (so the schedule, not the broker's
    /// confirms, paces the sends; a full window shows as send delay).
    #[arg(long)]
    pub max_pending: Option<u32>,
    /// Transacted producers: commit every N messages (0: no transactions).
    #[arg(long, default_value_t = 0)]
    pub tx_batch: u32,
    /// Consumer acknowledgement mode.
    #[arg(long, value_enum, default_value = "auto")]
    pub ack: Ack,
    /// Consumer prefetch (STOMP `activemq.prefetchSize`); default: the broker's.
    #[arg(long)]
    pub prefetch: Option<u32>,
    /// Consumers stop after this long without a message once the producers are done.
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    pub drain_quiet: Duration,
    #[arg(long)]
    pub user: Option<String>,
    #[arg(long)]
    pub password: Option<String>,
    /// TLS: PEM file of the CA certificate(s) that signed the broker's certificate.
    /// Needed for ssl:// and stomp+ssl:// URLs; the broker's certificate must name the
    /// host as written in the URL.
    #[arg(long, value_name = "PATH")]
    pub ca_file: Option<PathBuf>,
    /// TLS: PEM certificate chain (leaf first) to present when the broker asks for a
    /// client certificate (mutual TLS); with --key-file.
    #[arg(long, value_name = "PATH", requires = "key_file")]
    pub cert_file: Option<PathBuf>,
    /// TLS: PEM private key (PKCS#8, PKCS#1 or SEC1) of --cert-file.
    #[arg(long, value_name = "PATH", requires = "cert_file")]
    pub key_file: Option<PathBuf>,
    /// Write the JSON report here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the histograms here, in HdrHistogram's interval log format.
    #[arg(long)]
    pub hdr: Option<PathBuf>,
    /// No progress line and no text summary (errors still go to stderr).
    #[arg(long)]
    pub quiet: bool,
}

/// Queue or topic, from the destination's prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DestKind {
    Queue,
    Topic,
}

/// How long producers run.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Amount {
    /// Counted messages in all.
    Messages(u64),
    /// Counted seconds.
    DurationS(f64),
}

/// Every setting of a run, validated; serialised into the report.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub url: String,
    pub protocol: Protocol,
    pub producers: u32,
    pub consumers: u32,
    pub destination: String,
    pub destination_kind: DestKind,
    /// What consumers subscribe to when not `destination` (a pattern matching it).
    pub subscribe_to: Option<String>,
    pub size: usize,
    pub persistent: bool,
    pub amount: Amount,
    pub warmup_s: f64,
    /// None: closed loop.
    pub rate: Option<f64>,
    pub max_pending: u32,
    pub tx_batch: u32,
    pub ack: Ack,
    pub prefetch: Option<u32>,
    pub drain_quiet_s: f64,
    pub user: Option<String>,
    /// Never the password itself: reports get shared.
    pub password_set: bool,
    #[serde(skip)]
    pub password: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Built once from the three files above (None without --ca-file), shared by
    /// every connection.
    #[serde(skip)]
    pub tls: Option<Arc<TlsClientConfig>>,
    pub json: Option<PathBuf>,
    pub hdr: Option<PathBuf>,
    pub quiet: bool,
}

/// The smallest body: producer id (u32), magic (u32), sequence (u64), send time (u64).
pub const MIN_SIZE: usize = 24;

impl Settings {
    pub fn from_args(a: Args) -> Result<Settings, LoadError> {
        let bad = |m: String| Err(LoadError::Usage(m));
        let destination_kind = if a.destination.starts_with("/queue/") {
            DestKind::Queue
        } else if a.destination.starts_with("/topic/") {
            DestKind::Topic
        } else {
            return bad(format!(
                "--destination {:?}: must start with /queue/ or /topic/",
                a.destination
            ));
        };
        let prefix = match destination_kind {
            DestKind::Queue => "/queue/",
            DestKind::Topic => "/topic/",
        };
        if let Some(to) = a.subscribe_to.as_deref().filter(|t| !t.starts_with(prefix)) {
            return bad(format!(
                "--subscribe-to {to:?}: must start with {prefix}, as --destination does"
            ));
        }
        if a.size < MIN_SIZE {
            return bad(format!(
                "--size {}: at least {MIN_SIZE} bytes (producer id, sequence, send time)",
                a.size
            ));
        }
        if a.producers == 0 && a.consumers == 0 {
            return bad("--producers 0 --consumers 0: nothing to run".into());
        }
        let max_pending = a
            .max_pending
            .unwrap_or(if a.rate.is_some() { 10_000 } else { 1 });
        if max_pending == 0 {
            return bad("--max-pending must be at least 1".into());
        }
        if let Some(r) = a.rate {
            if !(r.is_finite() && r > 0.0) {
                return bad(format!("--rate {r}: must be a positive number"));
            }
        }
        let tls = tls_config(&a)?;
        let amount = match (a.messages, a.duration) {
            (Some(n), _) => Amount::Messages(n),
            (None, Some(d)) => Amount::DurationS(d.as_secs_f64()),
            (None, None) => Amount::Messages(10_000),
        };
        Ok(Settings {
            url: a.url,
            protocol: a.protocol,
            producers: a.producers,
            consumers: a.consumers,
            destination: a.destination,
            destination_kind,
            subscribe_to: a.subscribe_to,
            size: a.size,
            persistent: a.persistent.unwrap_or(destination_kind == DestKind::Queue),
            amount,
            warmup_s: a.warmup.as_secs_f64(),
            rate: a.rate,
            max_pending,
            tx_batch: a.tx_batch,
            ack: a.ack,
            prefetch: a.prefetch,
            drain_quiet_s: a.drain_quiet.as_secs_f64(),
            user: a.user,
            password_set: a.password.is_some(),
            password: a.password,
            ca_file: a.ca_file,
            cert_file: a.cert_file,
            key_file: a.key_file,
            tls,
            json: a.json,
            hdr: a.hdr,
            quiet: a.quiet,
        })
    }

    pub fn warmup(&self) -> Duration {
        Duration::from_secs_f64(self.warmup_s)
    }

    pub fn drain_quiet(&self) -> Duration {
        Duration::from_secs_f64(self.drain_quiet_s)
    }
}

/// The TLS client configuration from `--ca-file` (and `--cert-file`/`--key-file`),
/// loaded and checked now so a bad file is one line naming it, before any connection.
/// None without `--ca-file`; a TLS URL then is a usage error.
fn tls_config(a: &Args) -> Result<Option<Arc<TlsClientConfig>>, LoadError> {
    let Some(ca) = &a.ca_file else {
        if a.cert_file.is_some() {
            return Err(LoadError::Usage(
                "--cert-file/--key-file need --ca-file (the CA that signed the broker's certificate)"
                    .into(),
            ));
        }
        if is_tls_url(&a.url) {
            return Err(LoadError::Usage(format!(
                "--url {}: TLS needs --ca-file PATH (the CA that signed the broker's certificate)",
                a.url
            )));
        }
        return Ok(None);
    };
    let identity = match (&a.cert_file, &a.key_file) {
        (Some(certificate), Some(private_key)) => Some(TlsIdentity::Pem {
            certificate: certificate.clone(),
            private_key: private_key.clone(),
        }),
        // clap requires the pair; one alone cannot get here.
        _ => None,
    };
    let settings = TlsSettings {
        identity,
        trust: Some(TlsTrust::Pem { ca: ca.clone() }),
    };
    tandem::net::tls::client_config(&settings)
        .map(Some)
        .map_err(|e| LoadError::Tls(e.to_string()))
}

/// Whether `url` names a TLS transport anywhere (`ssl://`, `nio+ssl://`,
/// `stomp+ssl://`, ..., also inside `failover:(...)`).
fn is_tls_url(url: &str) -> bool {
    url.to_ascii_lowercase().contains("ssl://")
}

/// `30s`, `500ms`, `2m`, `1.5s`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 30s, 500ms, 2m)"))?;
    if !(v.is_finite() && v >= 0.0) {
        return Err(format!("{s:?}: a duration must be >= 0"));
    }
    Ok(Duration::from_secs_f64(v * scale))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn defaults_like_activemq_tools() {
        let s = Settings::from_args(Args::parse_from(["tandem-load"])).expect("valid");
        assert_eq!(s.size, 1024);
        assert!(s.persistent, "queues default to persistent");
        let t = Settings::from_args(Args::parse_from([
            "tandem-load",
            "--destination",
            "/topic/t",
        ]))
        .expect("valid");
        assert!(!t.persistent, "topics default to non-persistent");
        let q = Settings::from_args(Args::parse_from(["tandem-load", "--persistent", "false"]))
            .expect("valid");
        assert!(!q.persistent);
        assert!(q.tls.is_none());
    }

    fn fixture(name: &str) -> String {
        format!("{}/tests/fixtures/tls/{name}", env!("CARGO_MANIFEST_DIR"))
    }

    fn settings(args: &[&str]) -> Result<Settings, LoadError> {
        let mut argv = vec!["tandem-load".to_string()];
        argv.extend(args.iter().map(|a| a.to_string()));
        Settings::from_args(
            Args::try_parse_from(argv).map_err(|e| LoadError::Usage(e.to_string()))?,
        )
    }

    #[test]
    fn tls_files_make_one_client_config() {
        let ca = fixture("ca.pem");
        for url in [
            "ssl://127.0.0.1:61617",
            "stomp+ssl://localhost:61612",
            "failover:(ssl://a:61617,ssl://b:61617)?randomize=false",
        ] {
            let s = settings(&["--url", url, "--ca-file", &ca]).expect("valid");
            assert!(s.tls.is_some(), "{url}");
        }
        let (cert, key) = (fixture("client.pem"), fixture("client.key"));
        let s = settings(&["--ca-file", &ca, "--cert-file", &cert, "--key-file", &key])
            .expect("mutual TLS");
        assert!(s.tls.is_some());
        let json = serde_json::to_value(&s).expect("json");
        assert_eq!(json["ca_file"], ca.as_str(), "the report names the files");
        assert!(json.get("tls").is_none());
    }

    #[test]
    fn bad_tls_flags_are_one_line_errors_naming_the_file() {
        let missing = fixture("no-such-ca.pem");
        let e = settings(&["--ca-file", &missing]).expect_err("missing file");
        let text = e.to_string();
        assert!(text.contains(&missing) && !text.contains('\n'), "{text}");

        let (ca, cert) = (fixture("ca.pem"), fixture("client.pem"));
        let other = fixture("other.key");
        let e = settings(&["--ca-file", &ca, "--cert-file", &cert, "--key-file", &other])
            .expect_err("mismatched key");
        let text = e.to_string();
        assert!(
            text.contains(&cert) && text.contains("cannot be used with this certificate"),
            "{text}"
        );

        // A key file is not a CA.
        let e = settings(&["--ca-file", &other]).expect_err("not a CA");
        assert!(e.to_string().contains(&other), "{e}");

        let e = settings(&["--url", "stomp+ssl://127.0.0.1:61612"]).expect_err("no CA");
        assert!(e.to_string().contains("--ca-file"), "{e}");
        let e = settings(&[
            "--url",
            "failover:(tcp://a:1,SSL://b:2)",
            "--protocol",
            "openwire",
        ])
        .expect_err("no CA");
        assert!(e.to_string().contains("--ca-file"), "{e}");
        let e = settings(&["--cert-file", &cert, "--key-file", &other]).expect_err("no CA");
        assert!(e.to_string().contains("need --ca-file"), "{e}");
        // clap: the pair or nothing.
        assert!(settings(&["--ca-file", &ca, "--cert-file", &cert]).is_err());
    }
}
