//! `tandem journal replay-diverged DIR... --url URL [--force]`: resends the messages
//! of diverged records a node set aside when it rejoined a master after a split brain
//! (`store::diverged`: the directory and its `DIVERGED` file), to a running broker.
//!
//! Each `DIR` is a set-aside directory (`<data>/journal/shard-N/diverged-e<epoch>-<ms>`)
//! or a directory above some: a data directory, its `journal` directory or a `shard-N`
//! directory, searched (three levels deep) for complete sets. Give the data directory
//! to replay every shard's set in one run: a message dead-lettered from one shard's
//! queue to another shard's DLQ is then recognised as a copy on both sides.
//!
//! For each set:
//!
//! 1. Every record is read back in log order and analysed (`broker::diverged`): the
//!    messages stored by records at or after `from` and still stored at the end,
//!    with those removed again, copies of older messages and unresolved two-phase
//!    transactions left out. Sets are analysed together: a message another set held
//!    at its `from` (on the master too) or committed by a decision before another
//!    set's `from` is not resent either.
//! 2. What is left is resent in log order through the crate's own client
//!    (`sender`), each waiting for the broker's confirmation, and each confirmation
//!    recorded in the set's `REPLAYED` file (`marker`) before the next send. Messages
//!    expired by now are skipped, as the broker would drop them.
//! 3. A set with nothing left to send gets `complete` in `REPLAYED`: a later run says
//!    so and sends nothing from it unless `--force`. A run cut short goes on where it
//!    stopped. Nothing in the directory is deleted.
//!
//! Output: per set a line with what it holds, then what was sent and what skipped and
//! why, then a total. The exit status (see `main`) says whether anything is left.

mod marker;
mod sender;

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::broker::diverged::{Analysis, DivergedMessage, Findings};
use crate::broker::ops::GlobalTxId;
use crate::client::ClientError;
use crate::store::diverged::{walk_set, DivergedInfo, DIVERGED_FILE, SET_PREFIX};
use crate::store::StoreError;

pub use marker::{Replayed, REPLAYED_FILE};
pub use sender::{Wire, REPLAYED_FROM};

/// What to replay and where to.
#[derive(Clone, Debug)]
pub struct ReplayOptions {
    /// Set-aside directories, or directories above them.
    pub dirs: Vec<PathBuf>,
    /// The broker to resend to: `stomp://`, `tcp://`, or `failover:(...)` of either.
    pub url: String,
    /// Resend even what an earlier run recorded as sent.
    pub force: bool,
    pub user: Option<String>,
    pub password: Option<String>,
}

/// What a run did, over all sets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub sets: usize,
    pub sent: u64,
    /// Left for a later run: not sent because of an error or the protocol of `--url`.
    pub left: u64,
}

/// Why a run could not go on.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing the report: {0}")]
    Out(std::io::Error),
}

/// Why a diverged message is not sent (counted per set in the summary).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Skip {
    AlreadySent,
    Copy,
    DecidedBeforeFrom,
    Expired,
    Protocol(&'static str),
    NotSent,
}

impl Skip {
    fn why(self) -> String {
        match self {
            Skip::AlreadySent => "already sent by an earlier run (REPLAYED)".into(),
            Skip::Copy => "a dead-letter copy of a message another shard held before the divergence (the master holds it)".into(),
            Skip::DecidedBeforeFrom => "committed by a decision taken before the divergence (the master commits it too)".into(),
            Skip::Expired => "expired by now".into(),
            Skip::Protocol(why) => format!("not sent: {why}"),
            Skip::NotSent => "not sent: the broker did not confirm (see the error above)".into(),
        }
    }
}

/// One set-aside directory being replayed.
struct Set {
    dir: PathBuf,
    info: DivergedInfo,
    replayed: Replayed,
    findings: Findings,
}

/// Runs the replay (see the module doc), writing its report to `out`.
pub fn replay_diverged(opts: &ReplayOptions, out: &mut dyn Write) -> Result<Summary, ReplayError> {
    let wire = Wire::of(&opts.url).map_err(ReplayError::Usage)?;
    let mut dirs = Vec::new();
    for d in &opts.dirs {
        find_sets(d, 3, &mut dirs)?;
    }
    dirs.sort();
    dirs.dedup();
    if dirs.is_empty() {
        return Err(ReplayError::Usage(format!(
            "no set-aside directory of diverged records (diverged-*/ with a {DIVERGED_FILE} file) in {}",
            opts.dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let mut sets = Vec::new();
    for dir in dirs {
        sets.push(analyse(dir)?);
    }
    let pooled_live: HashSet<&str> = sets
        .iter()
        .flat_map(|s| s.findings.live_at_from.iter().map(String::as_str))
        .collect();
    let pooled_decided: HashSet<GlobalTxId> = sets
        .iter()
        .flat_map(|s| s.findings.commits_before_from.iter().copied())
        .collect();

    let o = |e| ReplayError::Out(e);
    let now = now_ms();
    let mut summary = Summary {
        sets: sets.len(),
        ..Summary::default()
    };
    let mut sender: Option<sender::Sender> = None;
    let mut broken: Option<ClientError> = None;
    for set in &sets {
        let info = &set.info;
        writeln!(
            out,
            "{}: epoch {}, diverged from {} to {}: {} records, {} messages stored ({} removed again, {} copies of older messages, {} in doubt)",
            set.dir.display(),
            info.epoch,
            info.from,
            info.end,
            info.records,
            set.findings.messages.len(),
            set.findings.removed,
            set.findings.copies,
            set.findings.in_doubt,
        )
        .map_err(o)?;
        if set.findings.undecodable > 0 {
            writeln!(
                out,
                "  WARNING: {} records did not decode and were left out",
                set.findings.undecodable
            )
            .map_err(o)?;
        }
        if let (Some((ms, sent)), false) = (set.replayed.complete, opts.force) {
            writeln!(
                out,
                "  already replayed (REPLAYED: complete at {ms} ms, {sent} sent): nothing sent; --force sends again"
            )
            .map_err(o)?;
            continue;
        }
        let mut skipped: Vec<Skip> = Vec::new();
        let mut plan: Vec<&DivergedMessage> = Vec::new();
        for m in &set.findings.messages {
            let Some(msg) = &m.message else { continue };
            let skip = if !opts.force && set.replayed.sent.contains(&m.at) {
                Some(Skip::AlreadySent)
            } else if pooled_live.contains(m.id.as_str()) {
                Some(Skip::Copy)
            } else if m.gtx.is_some_and(|g| pooled_decided.contains(&g)) {
                Some(Skip::DecidedBeforeFrom)
            } else if msg.expires_ms != 0 && msg.expires_ms <= now {
                Some(Skip::Expired)
            } else {
                wire.cannot_carry(msg).map(Skip::Protocol)
            };
            match skip {
                Some(s) => skipped.push(s),
                None => plan.push(m),
            }
        }
        let mut sent = 0u64;
        let mut log: Option<marker::Log> = None;
        let log_err = |e| ReplayError::Io {
            path: set.dir.join(REPLAYED_FILE),
            source: e,
        };
        for m in &plan {
            if broken.is_some() {
                skipped.push(Skip::NotSent);
                continue;
            }
            let client = match &sender {
                Some(c) => c,
                None => {
                    let user = opts.user.as_deref();
                    match sender::Sender::connect(&opts.url, wire, user, opts.password.as_deref()) {
                        Ok(c) => sender.insert(c),
                        Err(e) => {
                            writeln!(out, "  ERROR: cannot connect to {}: {e}", redact(&opts.url))
                                .map_err(o)?;
                            broken = Some(e);
                            skipped.push(Skip::NotSent);
                            continue;
                        }
                    }
                }
            };
            let log = match &mut log {
                Some(l) => l,
                None => log.insert(
                    marker::Log::open(&set.dir, &redact(&opts.url), opts.force).map_err(log_err)?,
                ),
            };
            let Some(msg) = &m.message else { continue };
            match client.send(msg) {
                Ok(()) => {
                    sent += 1;
                    log.sent(m.at, &m.id).map_err(log_err)?;
                }
                Err(e) => {
                    let dest = msg.destination.stomp_name();
                    writeln!(out, "  ERROR: sending {} ({}) to {dest}: {e}", m.id, m.at)
                        .map_err(o)?;
                    broken = Some(e);
                    skipped.push(Skip::NotSent);
                }
            }
        }
        let left = skipped
            .iter()
            .any(|s| matches!(s, Skip::NotSent | Skip::Protocol(_)));
        if !left {
            // Nothing left to send from this set: a later run says so.
            let log = match &mut log {
                Some(l) => l,
                None => log.insert(
                    marker::Log::open(&set.dir, &redact(&opts.url), opts.force).map_err(log_err)?,
                ),
            };
            log.complete(sent + count(&skipped, Skip::AlreadySent))
                .map_err(log_err)?;
        }
        summary.sent += sent;
        summary.left += skipped
            .iter()
            .filter(|s| matches!(s, Skip::NotSent | Skip::Protocol(_)))
            .count() as u64;
        writeln!(out, "  sent {sent}").map_err(o)?;
        skipped.sort();
        let mut i = 0;
        while i < skipped.len() {
            let n = skipped[i..]
                .iter()
                .take_while(|s| **s == skipped[i])
                .count();
            writeln!(out, "  skipped {n}: {}", skipped[i].why()).map_err(o)?;
            i += n;
        }
    }
    if let Some(c) = sender {
        if let Err(e) = c.close() {
            writeln!(out, "WARNING: closing the connection: {e}").map_err(o)?;
        }
    }
    writeln!(
        out,
        "total: {} set(s), sent {}, left for a later run {}{}",
        summary.sets,
        summary.sent,
        summary.left,
        if summary.left > 0 {
            " (run again once the cause is fixed: what was sent is not sent again)"
        } else {
            ""
        }
    )
    .map_err(o)?;
    Ok(summary)
}

fn count(skipped: &[Skip], which: Skip) -> u64 {
    skipped.iter().filter(|s| **s == which).count() as u64
}

/// Reads a set's description, its `REPLAYED` and analyses its records.
fn analyse(dir: PathBuf) -> Result<Set, ReplayError> {
    let info = DivergedInfo::read(&dir)?;
    let replayed = Replayed::read(&dir).map_err(|e| ReplayError::Io {
        path: dir.join(REPLAYED_FILE),
        source: e,
    })?;
    let mut analysis = Analysis::new(true);
    let mut records = 0u64;
    walk_set(&dir, info.from, &mut |at, payload, diverged| {
        records += u64::from(diverged);
        analysis.record(at, payload, diverged);
    })?;
    if records != info.records {
        tracing::warn!(dir = %dir.display(), found = records, recorded = info.records, "the set-aside directory holds another number of diverged records than DIVERGED says");
    }
    Ok(Set {
        dir,
        info,
        replayed,
        findings: analysis.finish(),
    })
}

/// Adds to `out` the complete set-aside directories at or under `dir` (at most
/// `depth` levels down).
fn find_sets(dir: &Path, depth: u32, out: &mut Vec<PathBuf>) -> Result<(), ReplayError> {
    if dir.join(DIVERGED_FILE).is_file() {
        out.push(dir.to_path_buf());
        return Ok(());
    }
    if depth == 0 {
        return Ok(());
    }
    let entries = std::fs::read_dir(dir).map_err(|e| ReplayError::Io {
        path: dir.to_path_buf(),
        source: e,
    })?;
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        // Sets are `diverged-*`; above them, plain directories (not unfinished sets).
        if !path.is_dir() || name.ends_with(".partial") {
            continue;
        }
        if name.starts_with(SET_PREFIX) {
            if path.join(DIVERGED_FILE).is_file() {
                out.push(path);
            }
        } else {
            find_sets(&path, depth - 1, out)?;
        }
    }
    Ok(())
}

/// The URL without credentials, for files and the report.
fn redact(url: &str) -> String {
    // `user:pass@host` is not a URI form the crate accepts, but query options may
    // carry a password.
    match url.split_once('?') {
        Some((base, query)) if query.to_ascii_lowercase().contains("password") => {
            format!("{base}?...")
        }
        _ => url.to_string(),
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
