//! `tandem-load plot`: latency percentile curves from `--hdr` interval logs, as an SVG
//! (plotters' SVG backend). One panel per `--panel`, one line per label; a label given
//! several files (one per run) is drawn from their merged histogram.
//!
//! ```text
//! tandem-load plot --out latency.svg \
//!     --panel "send-confirm, persistent, 1 producer" --tag send_confirm \
//!         ActiveMQ=a1.hdr ActiveMQ=a2.hdr Tandem=t1.hdr Tandem=t2.hdr \
//!     --panel "end-to-end at 1000 msg/s" --tag end_to_end ActiveMQ=a3.hdr Tandem=t3.hdr
//! ```
//!
//! x: percentile on HdrHistogram's usual log scale (x = log10(1 / (1 - q)): 0, 90, 99,
//! 99.9, 99.99 evenly spaced); y: latency in ms, log scale.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;
use plotters::prelude::*;

/// Rightmost point: the 99.99th percentile.
const X_MAX: f64 = 4.0;
/// Points per decade of the x axis.
const STEPS_PER_DECADE: u32 = 40;

const USAGE: &str =
    "usage: tandem-load plot --out FILE.svg [--title TEXT] [--width PX] [--height PX] \
     (--panel TITLE [--tag send_confirm|end_to_end|send_delay] LABEL=FILE.hdr...)...";

struct Series {
    label: String,
    hist: Histogram<u64>,
}

struct Panel {
    title: String,
    tag: String,
    series: Vec<Series>,
}

/// Runs the subcommand on the arguments after `plot`; returns the process exit status.
pub fn main(args: &[String]) -> u8 {
    match run(args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("tandem-load plot: {e}");
            if e.starts_with("usage") || e.contains("--") {
                eprintln!("{USAGE}");
            }
            1
        }
    }
}

fn run(args: &[String]) -> Result<(), String> {
    let mut out: Option<PathBuf> = None;
    let mut title = String::from("Latency by percentile");
    let mut width = 1200u32;
    let mut height = 500u32;
    let mut panels: Vec<Panel> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |flag: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match a.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            "--out" => out = Some(PathBuf::from(value("--out")?)),
            "--title" => title = value("--title")?,
            "--width" => width = parse_px(&value("--width")?)?,
            "--height" => height = parse_px(&value("--height")?)?,
            "--panel" => panels.push(Panel {
                title: value("--panel")?,
                tag: "send_confirm".into(),
                series: Vec::new(),
            }),
            "--tag" => {
                let tag = value("--tag")?;
                let p = panels
                    .last_mut()
                    .ok_or("--tag comes after a --panel".to_string())?;
                if !p.series.is_empty() {
                    return Err("--tag goes before the panel's LABEL=FILE arguments".into());
                }
                p.tag = tag;
            }
            spec => {
                let (label, file) = spec
                    .split_once('=')
                    .ok_or_else(|| format!("{spec:?}: expected LABEL=FILE.hdr or a flag"))?;
                let p = panels
                    .last_mut()
                    .ok_or("LABEL=FILE comes after a --panel".to_string())?;
                let h = read_tagged(Path::new(file), &p.tag)?;
                match p.series.iter_mut().find(|s| s.label == label) {
                    Some(s) => s.hist.add(&h).map_err(|e| format!("{file}: {e:?}"))?,
                    None => p.series.push(Series {
                        label: label.to_string(),
                        hist: h,
                    }),
                }
            }
        }
    }
    let out = out.ok_or("usage: --out FILE.svg is required")?;
    if panels.is_empty() || panels.iter().any(|p| p.series.is_empty()) {
        return Err("usage: every --panel needs at least one LABEL=FILE.hdr".into());
    }
    draw(&out, &title, width, height, &panels).map_err(|e| format!("{}: {e}", out.display()))
}

fn parse_px(s: &str) -> Result<u32, String> {
    s.parse()
        .ok()
        .filter(|v| (100..=10_000).contains(v))
        .ok_or_else(|| format!("{s:?}: expected pixels, 100 to 10000"))
}

/// The histogram tagged `tag` in an interval log (all such intervals added together).
fn read_tagged(path: &Path, tag: &str) -> Result<Histogram<u64>, String> {
    let err = |m: String| format!("{}: {m}", path.display());
    let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let mut merged: Option<Histogram<u64>> = None;
    let mut de = Deserializer::new();
    for entry in IntervalLogIterator::new(&bytes) {
        let entry = entry.map_err(|e| err(format!("bad interval log: {e:?}")))?;
        let LogEntry::Interval(iv) = entry else {
            continue;
        };
        if iv.tag().map(|t| t.as_str()) != Some(tag) {
            continue;
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(iv.encoded_histogram())
            .map_err(|e| err(format!("bad base64: {e}")))?;
        let h: Histogram<u64> = de
            .deserialize(&mut raw.as_slice())
            .map_err(|e| err(format!("bad histogram: {e:?}")))?;
        match &mut merged {
            Some(m) => m.add(&h).map_err(|e| err(format!("{e:?}")))?,
            None => merged = Some(h),
        }
    }
    match merged {
        Some(h) if !h.is_empty() => Ok(h),
        _ => Err(err(format!("no samples tagged {tag:?}"))),
    }
}

/// x on the log percentile axis to the percentile (0 -> 0, 1 -> 90, 2 -> 99, ...).
fn percentile_of(x: f64) -> f64 {
    100.0 * (1.0 - 10f64.powf(-x))
}

fn percentile_label(x: &f64) -> String {
    let p = percentile_of(*x);
    let s = format!("{p:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}%")
}

/// The curve in (x, ms), values recorded in ns.
fn curve(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    (0..=(X_MAX as u32 * STEPS_PER_DECADE))
        .map(|i| {
            let x = f64::from(i) / f64::from(STEPS_PER_DECADE);
            let q = 1.0 - 10f64.powf(-x);
            (x, h.value_at_quantile(q) as f64 / 1e6)
        })
        .collect()
}

fn draw(
    out: &Path,
    title: &str,
    width: u32,
    height: u32,
    panels: &[Panel],
) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(out, (width, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 22))?;
    let areas = root.split_evenly((1, panels.len()));
    // One colour per label across all panels.
    let mut labels: Vec<&str> = Vec::new();
    for p in panels {
        for s in &p.series {
            if !labels.contains(&s.label.as_str()) {
                labels.push(&s.label);
            }
        }
    }
    for (panel, area) in panels.iter().zip(areas.iter()) {
        let curves: Vec<(&str, Vec<(f64, f64)>)> = panel
            .series
            .iter()
            .map(|s| (s.label.as_str(), curve(&s.hist)))
            .collect();
        let ys = curves.iter().flat_map(|(_, c)| c.iter().map(|p| p.1));
        let y_min = ys.clone().fold(f64::INFINITY, f64::min).max(0.001);
        let y_max = ys.fold(0.0, f64::max).max(y_min * 2.0);
        let mut chart = ChartBuilder::on(area)
            .caption(&panel.title, ("sans-serif", 17))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..X_MAX, (y_min * 0.8..y_max * 1.25).log_scale())?;
        chart
            .configure_mesh()
            .x_labels(X_MAX as usize + 1)
            .x_label_formatter(&percentile_label)
            .y_label_formatter(&|v| {
                if *v >= 10.0 {
                    format!("{v:.0}")
                } else if *v >= 1.0 {
                    format!("{v:.1}")
                } else {
                    format!("{v:.2}")
                }
            })
            .x_desc("percentile")
            .y_desc("latency (ms)")
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 15))
            .draw()?;
        for (label, points) in curves {
            let i = labels.iter().position(|l| *l == label).unwrap_or(0);
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()?;
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_axis() {
        assert_eq!(percentile_label(&0.0), "0%");
        assert_eq!(percentile_label(&1.0), "90%");
        assert_eq!(percentile_label(&3.0), "99.9%");
        assert_eq!(percentile_label(&4.0), "99.99%");
    }
}
