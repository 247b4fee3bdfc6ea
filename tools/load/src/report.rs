//! What a run reports: the live progress line (stderr, only on a terminal), the text
//! summary (stdout), the JSON report (`--json`) and the histograms in HdrHistogram's
//! interval log format (`--hdr`), readable by HdrHistogram's own plotting tools.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant, SystemTime};

use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2Serializer;
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::check::CheckReport;
use crate::cli::Settings;
use crate::error::LoadError;
use crate::workload::{histogram, RunResult, Shared};

pub fn stderr_is_tty() -> bool {
    std::io::stderr().is_terminal()
}

/// Redraws one status line on stderr every second until the run ends.
pub fn progress(shared: &Shared, s: &Settings) {
    let mut last = (Instant::now(), 0u64, 0u64);
    while !shared.stop.load(Relaxed) {
        std::thread::sleep(Duration::from_millis(200));
        let now = Instant::now();
        if now.duration_since(last.0) < Duration::from_secs(1) {
            continue;
        }
        let (sent, recv) = (shared.sent.load(Relaxed), shared.received.load(Relaxed));
        let dt = now.duration_since(last.0).as_secs_f64();
        let phase = if now < shared.warmup_end {
            "warm-up"
        } else if shared.producers_running.load(Relaxed) > 0 {
            "run"
        } else {
            "drain"
        };
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[2K[{:6.1}s {phase:7}] sent {sent} ({:.0}/s) confirmed {} received {recv} ({:.0}/s) errors {} max gap {:.0} ms {}",
            shared.base.elapsed().as_secs_f64(),
            (sent - last.1) as f64 / dt,
            shared.confirmed.load(Relaxed),
            (recv - last.2) as f64 / dt,
            shared.errors.load(Relaxed),
            shared.max_gap_ns.load(Relaxed) as f64 / 1e6,
            s.destination,
        );
        let _ = err.flush();
        last = (now, sent, recv);
    }
    let _ = write!(std::io::stderr(), "\r\x1b[2K");
}

/// The machine the numbers were measured on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu_model: Option<String>,
    pub kernel: Option<String>,
    pub hostname: Option<String>,
}

impl Machine {
    pub fn probe() -> Machine {
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .ok()
                .map(|s| s.trim().to_string())
        };
        let cpu_model = read("/proc/cpuinfo").and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        });
        Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            kernel: read("/proc/sys/kernel/osrelease"),
            hostname: read("/proc/sys/kernel/hostname"),
        }
    }
}

/// Percentiles of one histogram, in microseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub count: u64,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
}

impl Latency {
    fn of(h: &Histogram<u64>) -> Latency {
        let us = |ns: u64| ns as f64 / 1e3;
        Latency {
            count: h.len(),
            mean_us: h.mean() / 1e3,
            p50_us: us(h.value_at_quantile(0.50)),
            p90_us: us(h.value_at_quantile(0.90)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            max_us: us(h.max()),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Flow {
    /// Messages (counted: after the warm-up).
    pub messages: u64,
    pub msg_per_s: f64,
    pub mb_per_s: f64,
    /// The counted window the rates are over.
    pub seconds: f64,
}

impl Flow {
    fn new(messages: u64, seconds: f64, size: usize) -> Flow {
        let rate = if seconds > 0.0 {
            messages as f64 / seconds
        } else {
            0.0
        };
        Flow {
            messages,
            msg_per_s: rate,
            mb_per_s: rate * size as f64 / 1e6,
            seconds,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Totals {
    /// Everything, warm-up included.
    pub sent: u64,
    pub confirmed: u64,
    pub received: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Latencies {
    /// Send to the broker's confirm (STOMP RECEIPT: on disk if persistent).
    pub send_confirm: Latency,
    /// Producer send to consumer receive (one clock: same process).
    pub end_to_end: Latency,
    /// Open loop only: how late sends started against the schedule.
    pub send_delay: Option<Latency>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Failover {
    /// Reconnects over all connections.
    pub reconnects: u64,
    /// Longest time with neither a confirm nor a receive while producers ran.
    pub longest_gap_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Errors {
    pub count: u64,
    /// The first few, with the time into the run.
    pub first: Vec<String>,
}

/// The JSON report (`--json`).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub tool: &'static str,
    pub version: &'static str,
    /// Seconds since the Unix epoch when the run started.
    pub started_at_unix_s: f64,
    pub machine: Machine,
    pub settings: Settings,
    /// Sends (`in`) and receives (`out`) after the warm-up.
    #[serde(rename = "in")]
    pub flow_in: Flow,
    #[serde(rename = "out")]
    pub flow_out: Flow,
    pub totals: Totals,
    pub latency: Latencies,
    pub check: CheckReport,
    pub failover: Failover,
    pub errors: Errors,
}

/// The merged histograms, kept for `--hdr`.
pub struct Histograms {
    pub send_confirm: Histogram<u64>,
    pub end_to_end: Histogram<u64>,
    pub send_delay: Histogram<u64>,
}

pub fn build(s: &Settings, r: &RunResult) -> (Report, Histograms) {
    let sh = &r.shared;
    let merge = |hs: &mut dyn Iterator<Item = &Histogram<u64>>| {
        let mut m = histogram();
        for h in hs {
            // Same bounds everywhere: `add` only fails on a value out of range.
            let _ = m.add(h);
        }
        m
    };
    let hist = Histograms {
        send_confirm: merge(&mut r.producers.iter().map(|p| &p.send_confirm)),
        end_to_end: merge(&mut r.consumers.iter().map(|c| &c.end_to_end)),
        send_delay: merge(&mut r.producers.iter().map(|p| &p.send_delay)),
    };
    let warmup_ns = s.warmup().as_nanos() as u64;
    let secs = |end_ns: u64| end_ns.saturating_sub(warmup_ns) as f64 / 1e9;
    let sent_counted = r.producers.iter().map(|p| p.sent_counted).sum();
    let received_counted = r.consumers.iter().map(|c| c.received_counted).sum();
    let last_recv = r
        .consumers
        .iter()
        .map(|c| c.last_counted_ns)
        .max()
        .unwrap_or(0);
    let report = Report {
        tool: "tandem-load",
        version: env!("CARGO_PKG_VERSION"),
        started_at_unix_s: sh
            .started_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64()),
        machine: Machine::probe(),
        settings: s.clone(),
        flow_in: Flow::new(sent_counted, secs(r.producers_end_ns), s.size),
        flow_out: Flow::new(received_counted, secs(last_recv), s.size),
        totals: Totals {
            sent: sh.sent.load(Relaxed),
            confirmed: sh.confirmed.load(Relaxed),
            received: sh.received.load(Relaxed),
        },
        latency: Latencies {
            send_confirm: Latency::of(&hist.send_confirm),
            end_to_end: Latency::of(&hist.end_to_end),
            send_delay: s.rate.map(|_| Latency::of(&hist.send_delay)),
        },
        check: r.check.clone(),
        failover: Failover {
            reconnects: r.producers.iter().map(|p| p.reconnects).sum::<u64>()
                + r.consumers.iter().map(|c| c.reconnects).sum::<u64>(),
            longest_gap_ms: sh.max_gap_ns.load(Relaxed) as f64 / 1e6,
        },
        errors: Errors {
            count: sh.errors.load(Relaxed),
            first: sh.error_texts(),
        },
    };
    (report, hist)
}

/// The human summary.
pub fn print_text(rep: &Report, out: &mut impl Write) -> std::io::Result<()> {
    let s = &rep.settings;
    let ms = |us: f64| us / 1e3;
    writeln!(
        out,
        "tandem-load {} {} -> {} ({}, {} B, {}, {}p/{}c, {})",
        rep.version,
        serde_json::to_string(&s.protocol)
            .unwrap_or_default()
            .trim_matches('"'),
        s.url,
        s.destination,
        s.size,
        if s.persistent {
            "persistent"
        } else {
            "non-persistent"
        },
        s.producers,
        s.consumers,
        match s.rate {
            Some(r) => format!("open loop {r} msg/s, {} pending max", s.max_pending),
            None => format!("closed loop, {} pending max", s.max_pending),
        },
    )?;
    writeln!(
        out,
        "machine: {} cores, {}, kernel {}",
        rep.machine.cores,
        rep.machine.cpu_model.as_deref().unwrap_or("?"),
        rep.machine.kernel.as_deref().unwrap_or("?")
    )?;
    for (name, f) in [("in ", &rep.flow_in), ("out", &rep.flow_out)] {
        writeln!(
            out,
            "{name}: {:>9} msg in {:7.2} s = {:10.0} msg/s {:8.2} MB/s",
            f.messages, f.seconds, f.msg_per_s, f.mb_per_s
        )?;
    }
    writeln!(
        out,
        "latency (ms)      count      p50      p90      p99    p99.9      max"
    )?;
    let lat = [
        ("send->confirm", Some(&rep.latency.send_confirm)),
        ("end-to-end", Some(&rep.latency.end_to_end)),
        ("send delay", rep.latency.send_delay.as_ref()),
    ];
    for (name, l) in lat {
        if let Some(l) = l {
            writeln!(
                out,
                "{name:14} {:>8} {:8.3} {:8.3} {:8.3} {:8.3} {:8.3}",
                l.count,
                ms(l.p50_us),
                ms(l.p90_us),
                ms(l.p99_us),
                ms(l.p999_us),
                ms(l.max_us)
            )?;
        }
    }
    let c = &rep.check;
    writeln!(
        out,
        "check: {} lost {} duplicates {} out-of-order {} redelivered {} (sent {} confirmed {} received {}){}",
        if !c.checked { "not checked (no producers or no consumers);" } else if c.passed() { "OK;" } else { "FAILED;" },
        c.lost,
        c.duplicates,
        c.out_of_order,
        c.redelivered,
        rep.totals.sent,
        rep.totals.confirmed,
        rep.totals.received,
        if c.foreign > 0 { format!(", {} foreign (other runs)", c.foreign) } else { String::new() }
    )?;
    writeln!(
        out,
        "errors {} reconnects {} longest gap {:.1} ms",
        rep.errors.count, rep.failover.reconnects, rep.failover.longest_gap_ms
    )?;
    for e in &rep.errors.first {
        writeln!(out, "  error: {e}")?;
    }
    Ok(())
}

pub fn write_json(rep: &Report, path: &Path) -> Result<(), LoadError> {
    let io = |source| LoadError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut text = serde_json::to_string_pretty(rep).map_err(|e| io(e.into()))?;
    text.push('\n');
    std::fs::write(path, text).map_err(io)
}

/// One interval per histogram, tagged `send_confirm`, `end_to_end`, `send_delay`, over
/// the counted window; values in ns, shown in ms by HdrHistogram's tools (divisor).
pub fn write_hdr(
    rep: &Report,
    h: &Histograms,
    warmup: Duration,
    path: &Path,
) -> Result<(), LoadError> {
    let io = |source| LoadError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut buf = Vec::new();
    {
        let mut ser = V2Serializer::new();
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs_f64(rep.started_at_unix_s);
        let mut w = IntervalLogWriterBuilder::new()
            .add_comment("tandem-load latency histograms (values in ns)")
            .with_start_time(start)
            .with_base_time(start)
            .with_max_value_divisor(1e6)
            .begin_log_with(&mut buf, &mut ser)
            .map_err(io)?;
        let seconds = rep.flow_in.seconds.max(rep.flow_out.seconds);
        let mut tagged = vec![
            ("send_confirm", &h.send_confirm),
            ("end_to_end", &h.end_to_end),
        ];
        if rep.settings.rate.is_some() {
            tagged.push(("send_delay", &h.send_delay));
        }
        for (tag, hist) in tagged {
            w.write_histogram(
                hist,
                warmup,
                Duration::from_secs_f64(seconds),
                Tag::new(tag),
            )
            .map_err(|e| io(std::io::Error::other(e.to_string())))?;
        }
    }
    std::fs::write(path, buf).map_err(io)
}
