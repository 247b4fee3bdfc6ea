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
    /// Still to be sent by a later run.
    fn is_left(self) -> bool {
        matches!(self, Skip::NotSent | Skip::Protocol(_))
    }

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
        let given: Vec<String> = opts.dirs.iter().map(|d| d.display().to_string()).collect();
        return Err(ReplayError::Usage(format!(
            "no set-aside directory of diverged records (diverged-*/ with a {DIVERGED_FILE} \
             file) in {}",
            given.join(", ")
        )));
    }
    let sets = dirs
        .into_iter()
        .map(analyse)
        .collect::<Result<Vec<Set>, _>>()?;
    let pooled = Pooled {
        live_at_from: sets
            .iter()
            .flat_map(|s| s.findings.live_at_from.iter().map(String::as_str))
            .collect(),
        decided: sets
            .iter()
            .flat_map(|s| s.findings.commits_before_from.iter().copied())
            .collect(),
    };
    let mut run = Run {
        opts,
        wire,
        sender: None,
        broken: false,
        now_ms: now_ms(),
    };
    let mut summary = Summary {
        sets: sets.len(),
        ..Summary::default()
    };
    for set in &sets {
        describe(set, out).map_err(ReplayError::Out)?;
        if let (Some((ms, sent)), false) = (set.replayed.complete, opts.force) {
            writeln!(
                out,
                "  already replayed (REPLAYED: complete at {ms} ms, {sent} sent): nothing sent; \
                 --force sends again"
            )
            .map_err(ReplayError::Out)?;
            continue;
        }
        let (plan, mut skipped) = run.plan(set, &pooled);
        let sent = run.send(set, &plan, &mut skipped, out)?;
        summary.sent += sent;
        summary.left += skipped.iter().filter(|s| s.is_left()).count() as u64;
        report(sent, skipped, out).map_err(ReplayError::Out)?;
    }
    if let Some(c) = run.sender {
        if let Err(e) = c.close() {
            writeln!(out, "WARNING: closing the connection: {e}").map_err(ReplayError::Out)?;
        }
    }
    let hint = if summary.left > 0 {
        " (run again once the cause is fixed: what was sent is not sent again)"
    } else {
        ""
    };
    writeln!(
        out,
        "total: {} set(s), sent {}, left for a later run {}{hint}",
        summary.sets, summary.sent, summary.left,
    )
    .map_err(ReplayError::Out)?;
    Ok(summary)
}

/// What every set's analysis knows about the others.
struct Pooled<'a> {
    /// Ids of messages some shard held at its `from` (the master holds them).
    live_at_from: HashSet<&'a str>,
    /// Transactions a coordinator decided to commit before its `from`.
    decided: HashSet<GlobalTxId>,
}

/// One run's connection and its state.
struct Run<'a> {
    opts: &'a ReplayOptions,
    wire: Wire,
    /// Connected at the first send.
    sender: Option<sender::Sender>,
    /// A connect or a send failed: nothing more is sent in this run.
    broken: bool,
    now_ms: u64,
}

impl Run<'_> {
    /// Which of a set's messages to send, in order, and why the others are not.
    fn plan<'s>(&self, set: &'s Set, pooled: &Pooled) -> (Vec<&'s DivergedMessage>, Vec<Skip>) {
        let mut plan = Vec::new();
        let mut skipped = Vec::new();
        for m in &set.findings.messages {
            let Some(msg) = &m.message else { continue };
            let skip = if !self.opts.force && set.replayed.sent.contains(&m.at) {
                Some(Skip::AlreadySent)
            } else if pooled.live_at_from.contains(m.id.as_str()) {
                Some(Skip::Copy)
            } else if m.gtx.is_some_and(|g| pooled.decided.contains(&g)) {
                Some(Skip::DecidedBeforeFrom)
            } else if msg.expires_ms != 0 && msg.expires_ms <= self.now_ms {
                Some(Skip::Expired)
            } else {
                self.wire.cannot_carry(msg).map(Skip::Protocol)
            };
            match skip {
                Some(s) => skipped.push(s),
                None => plan.push(m),
            }
        }
        (plan, skipped)
    }

    /// Sends `plan` in order, each confirmed and recorded in `REPLAYED` before the
    /// next; marks the set complete when nothing is left. Returns how many were sent.
    fn send(
        &mut self,
        set: &Set,
        plan: &[&DivergedMessage],
        skipped: &mut Vec<Skip>,
        out: &mut dyn Write,
    ) -> Result<u64, ReplayError> {
        let opts = self.opts;
        let url = redact(&opts.url);
        let log_err = |e| ReplayError::Io {
            path: set.dir.join(REPLAYED_FILE),
            source: e,
        };
        let mut log: Option<marker::Log> = None;
        let mut sent = 0u64;
        for m in plan {
            let Some(msg) = m.message.as_ref().filter(|_| !self.broken) else {
                skipped.push(Skip::NotSent);
                continue;
            };
            let client = match &mut self.sender {
                Some(c) => c,
                None => match sender::Sender::connect(
                    &opts.url,
                    self.wire,
                    opts.user.as_deref(),
                    opts.password.as_deref(),
                ) {
                    Ok(c) => self.sender.insert(c),
                    Err(e) => {
                        writeln!(out, "  ERROR: cannot connect to {url}: {e}")
                            .map_err(ReplayError::Out)?;
                        self.broken = true;
                        skipped.push(Skip::NotSent);
                        continue;
                    }
                },
            };
            let log = match &mut log {
                Some(l) => l,
                None => log.insert(marker::Log::open(&set.dir, &url, opts.force).map_err(log_err)?),
            };
            match client.send(msg) {
                Ok(()) => {
                    sent += 1;
                    log.sent(m.at, &m.id).map_err(log_err)?;
                }
                Err(e) => {
                    let dest = msg.destination.stomp_name();
                    writeln!(out, "  ERROR: sending {} ({}) to {dest}: {e}", m.id, m.at)
                        .map_err(ReplayError::Out)?;
                    self.broken = true;
                    skipped.push(Skip::NotSent);
                }
            }
        }
        if !skipped.iter().any(|s| s.is_left()) {
            // Nothing left to send from this set: a later run says so.
            let log = match &mut log {
                Some(l) => l,
                None => log.insert(marker::Log::open(&set.dir, &url, opts.force).map_err(log_err)?),
            };
            log.complete(sent + count(skipped, Skip::AlreadySent))
                .map_err(log_err)?;
        }
        Ok(sent)
    }
}

/// A set's first report line: what it holds.
fn describe(set: &Set, out: &mut dyn Write) -> std::io::Result<()> {
    let (info, f) = (&set.info, &set.findings);
    writeln!(
        out,
        "{}: epoch {}, diverged from {} to {}: {} records, {} messages stored ({} removed \
         again, {} copies of older messages, {} in doubt)",
        set.dir.display(),
        info.epoch,
        info.from,
        info.end,
        info.records,
        f.messages.len(),
        f.removed,
        f.copies,
        f.in_doubt,
    )?;
    if f.undecodable > 0 {
        let n = f.undecodable;
        writeln!(
            out,
            "  WARNING: {n} records did not decode and were left out"
        )?;
    }
    Ok(())
}

/// What was sent from a set and, grouped by reason, what was not.
fn report(sent: u64, mut skipped: Vec<Skip>, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "  sent {sent}")?;
    skipped.sort();
    for chunk in skipped.chunk_by(|a, b| a == b) {
        writeln!(out, "  skipped {}: {}", chunk.len(), chunk[0].why())?;
    }
    Ok(())
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
