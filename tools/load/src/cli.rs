//! Command line: clap's parse, then validation into [`Settings`], the one value the rest
//! of the tool reads and the JSON report repeats verbatim (so a report says exactly what
//! was run).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use serde::Serialize;

use crate::error::LoadError;

/// Which wire protocol the clients speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// STOMP 1.2 (`stomp://host:port`).
    Stomp,
    /// OpenWire, as the ActiveMQ JMS client speaks it (`tcp://host:port`).
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
    /// Broker URL: stomp://host:port (STOMP), tcp://host:port (OpenWire), or
    /// failover:(a,b)?options of either.
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
    }
}
