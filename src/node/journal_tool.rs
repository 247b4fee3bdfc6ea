//! `tandem journal verify|dump DIR`: an offline look at a journal (read only; run it
//! on a stopped broker's directory, or a copy). `DIR` is a data directory, its
//! `journal` directory, or one shard's directory.
//!
//! `verify` prints, per shard: segments, records, first and last record positions, how
//! the log ends (clean or a torn tail) and every damaged range; it exits non-zero when
//! a range is damaged (start-up would refuse: see README, "A damaged journal"). `dump`
//! prints one line per record (position, length, what it is) and the same summary.
//! (`tandem journal replay-diverged`, which resends what a split brain set aside, is
//! `node::replay`.)

use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::broker::record::Record;
use crate::store::verify::{self, End, Report};
use crate::store::StoreError;

/// What `verify` found in all shards.
pub struct Outcome {
    /// At least one damaged range.
    pub damaged: bool,
}

/// `tandem journal verify DIR`.
pub fn verify(dir: &Path, out: &mut dyn Write) -> Result<Outcome, StoreError> {
    run(dir, out, false)
}

/// `tandem journal dump DIR`.
pub fn dump(dir: &Path, out: &mut dyn Write) -> Result<Outcome, StoreError> {
    run(dir, out, true)
}

fn run(dir: &Path, out: &mut dyn Write, records: bool) -> Result<Outcome, StoreError> {
    let shards = journal_dirs(dir)?;
    let io = |e| StoreError::io("write", Path::new("stdout"), e);
    let mut damaged = false;
    for shard in shards {
        let mut lines = Vec::new();
        let report = verify::walk(&shard, &mut |at, payload| {
            if records {
                lines.push(format!("{at} len={} {}", payload.len(), describe(payload)));
            }
        })?;
        for l in lines {
            writeln!(out, "{l}").map_err(io)?;
        }
        damaged |= !report.damaged.is_empty();
        summary(&report, out).map_err(io)?;
    }
    if damaged {
        writeln!(
            out,
            "DAMAGED: Tandem refuses to start on this journal; restore it from the pair's \
             other node or a backup, or start once with --skip-damaged-records to skip the \
             damaged ranges"
        )
        .map_err(io)?;
    }
    Ok(Outcome { damaged })
}

fn summary(r: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    let bytes: u64 = r.segments.iter().map(|(_, b)| b).sum();
    let ids = match (r.segments.first(), r.segments.last()) {
        (Some((a, _)), Some((b, _))) => format!("{a}..{b}"),
        _ => "none".into(),
    };
    let pos = |p: Option<crate::store::Position>| p.map_or("-".to_string(), |p| p.to_string());
    let end = match &r.end {
        End::Empty => "empty".to_string(),
        End::Clean(p) => format!("clean at {p}"),
        End::Torn(p, why) => format!("torn tail at {p} ({why}; cut at start-up)"),
    };
    writeln!(
        out,
        "{}: {} segments ({ids}, {bytes} bytes), {} records, first {}, last {}, end {end}",
        r.dir.display(),
        r.segments.len(),
        r.records,
        pos(r.first),
        pos(r.last),
    )?;
    for d in &r.damaged {
        writeln!(
            out,
            "  DAMAGED at {} ({}): {} bytes unreadable, valid records resume at {}",
            d.at, d.why, d.bytes, d.resumes
        )?;
    }
    Ok(())
}

/// One record, briefly.
fn describe(payload: &[u8]) -> String {
    match Record::decode(&Bytes::copy_from_slice(payload)) {
        Ok(r) => describe_record(&r),
        Err(e) => format!("undecodable record: {e}"),
    }
}

fn describe_record(r: &Record) -> String {
    match r {
        Record::Enqueue {
            seq,
            redeliveries,
            message,
            targets,
        } => format!(
            "enqueue {} seq={seq} id={} body={}B redeliveries={redeliveries}{}",
            message.destination.stomp_name(),
            message.id,
            message.body.len(),
            if targets.is_empty() {
                String::new()
            } else {
                format!(" durables={}", targets.len())
            }
        ),
        Record::Ack {
            destination,
            durable,
            seqs,
        } => format!(
            "ack {}{} seqs={seqs:?}",
            destination.stomp_name(),
            durable.as_ref().map_or(String::new(), |d| format!(
                " durable={}:{}",
                d.client_id, d.name
            ))
        ),
        Record::Durable {
            destination, name, ..
        } => format!(
            "durable subscription {}:{} on {}",
            name.client_id,
            name.name,
            destination.stomp_name()
        ),
        Record::Undurable { destination, name } => format!(
            "durable unsubscribed {}:{} on {}",
            name.client_id,
            name.name,
            destination.stomp_name()
        ),
        Record::Tx(records) => format!(
            "transaction [{}]",
            records
                .iter()
                .map(describe_record)
                .collect::<Vec<_>>()
                .join("; ")
        ),
        Record::Prepare { gtx, records } => format!(
            "prepare {gtx:x} [{}]",
            records
                .iter()
                .map(describe_record)
                .collect::<Vec<_>>()
                .join("; ")
        ),
        Record::Outcome { gtx, commit } => format!("outcome {gtx:x} commit={commit}"),
        Record::Resolved { gtx, commit } => format!("resolved {gtx:x} commit={commit}"),
        Record::Purge { destination } => format!("purge {}", destination.stomp_name()),
        Record::DeleteQueue { destination } => {
            format!("delete queue {}", destination.stomp_name())
        }
        Record::CreateQueue { destination } => {
            format!("create queue {}", destination.stomp_name())
        }
        Record::Schedule {
            key,
            next_ms,
            fired,
            spec,
            message,
            ..
        } => format!(
            "schedule job={key} {} id={} next={next_ms} fired={fired} cron={:?} delay={} period={} repeat={}",
            message.destination.stomp_name(),
            message.id,
            spec.cron,
            spec.delay,
            spec.period,
            spec.repeat
        ),
        Record::Fire {
            key,
            next,
            fired,
            then,
        } => format!(
            "fire job={key} fired={fired} next={} [{}]",
            next.map_or("done".to_string(), |(t, r)| format!("{t} repeat={r}")),
            then.iter()
                .map(describe_record)
                .collect::<Vec<_>>()
                .join("; ")
        ),
    }
}

/// The journal directories under `dir`: itself if it holds segments, else its
/// `shard-N` directories (in shard order), else those of `dir/journal`.
fn journal_dirs(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let entries = |d: &Path| -> Result<Vec<PathBuf>, StoreError> {
        Ok(std::fs::read_dir(d)
            .map_err(|e| StoreError::io("read_dir", d, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect())
    };
    let here = entries(dir)?;
    if here
        .iter()
        .any(|p| p.extension().is_some_and(|x| x == "log"))
    {
        return Ok(vec![dir.to_path_buf()]);
    }
    let mut shards: Vec<(u64, PathBuf)> = here
        .into_iter()
        .filter_map(|p| {
            let n = p
                .file_name()?
                .to_str()?
                .strip_prefix("shard-")?
                .parse()
                .ok()?;
            Some((n, p))
        })
        .collect();
    if shards.is_empty() && dir.join("journal").is_dir() {
        return journal_dirs(&dir.join("journal"));
    }
    if shards.is_empty() {
        return Err(StoreError::Config(format!(
            "{}: no journal here (no segment files, no shard-N directories, no journal/)",
            dir.display()
        )));
    }
    shards.sort();
    Ok(shards.into_iter().map(|(_, p)| p).collect())
}
