//! `REPLAYED`: what `tandem journal replay-diverged` has resent from one set-aside
//! directory, so that running it again resends nothing, and a run cut short (the
//! broker went away) goes on where it stopped instead of sending twice.
//!
//! A text file in the set-aside directory (`store::diverged`), only ever appended to:
//! each confirmed send is written and fdatasynced before the next one is sent.
//!
//! ```text
//! # comment lines start with '#'
//! started 1712345678901 failover:(tcp://a:61616,tcp://b:61616)   a run began (ms, URL)
//! sent 3:8192 ID:host-1234-5678-0:1:1:1:7    a message confirmed by the broker: its
//!                                            record's position, its original id
//! forced 1712345679999                       --force: every line before is ignored
//! complete 1712345680123 sent=5              nothing is left to send from this set
//! ```
//!
//! A message is "sent" once the broker confirmed it; a crash between the confirmation
//! and the line reaching the disk resends that one message on the next run.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use crate::store::Position;

/// Name of the file in a set-aside directory.
pub const REPLAYED_FILE: &str = "REPLAYED";

/// What a `REPLAYED` file says now (after its last `forced` line).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Replayed {
    /// Positions of the messages already confirmed.
    pub sent: HashSet<Position>,
    /// `complete` line: when, and how many it counted.
    pub complete: Option<(u64, u64)>,
}

impl Replayed {
    /// Reads `<set>/REPLAYED` (an absent file: nothing replayed yet). A line it does
    /// not understand is an error: guessing could send twice.
    pub fn read(set: &Path) -> std::io::Result<Replayed> {
        let path = set.join(REPLAYED_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Replayed::default()),
            Err(e) => return Err(e),
        };
        Replayed::parse(&text).map_err(|line| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: cannot read line {line:?}", path.display()),
            )
        })
    }

    /// Parses the text; `Err(line)` names the line it cannot read.
    pub fn parse(text: &str) -> Result<Replayed, String> {
        let mut r = Replayed::default();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.split_whitespace();
            let bad = || line.to_string();
            match words.next() {
                Some("started") => {}
                Some("sent") => {
                    let pos = words.next().and_then(parse_position).ok_or_else(bad)?;
                    r.sent.insert(pos);
                }
                Some("forced") => r = Replayed::default(),
                Some("complete") => {
                    let ms = words.next().and_then(|w| w.parse().ok()).ok_or_else(bad)?;
                    let sent = words
                        .next()
                        .and_then(|w| w.strip_prefix("sent="))
                        .and_then(|w| w.parse().ok())
                        .ok_or_else(bad)?;
                    r.complete = Some((ms, sent));
                }
                _ => return Err(bad()),
            }
        }
        Ok(r)
    }
}

fn parse_position(s: &str) -> Option<Position> {
    let (seg, off) = s.split_once(':')?;
    Some(Position::new(seg.parse().ok()?, off.parse().ok()?))
}

/// Appends to a set's `REPLAYED`, each line made durable before it returns.
pub struct Log {
    file: File,
}

impl Log {
    /// Opens (creating) `<set>/REPLAYED` for appending and writes the run's first
    /// lines: `forced` first if `force`, then `started`.
    pub fn open(set: &Path, url: &str, force: bool) -> std::io::Result<Log> {
        let path = set.join(REPLAYED_FILE);
        let new = !path.exists();
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let mut log = Log { file };
        if new {
            log.line("# tandem journal replay-diverged: what was resent from this directory (see node::replay::marker)")?;
            // The file's name must survive a crash too.
            File::open(set)?.sync_all()?;
        }
        if force {
            log.line(&format!("forced {}", now_ms()))?;
        }
        log.line(&format!("started {} {url}", now_ms()))?;
        Ok(log)
    }

    /// The broker confirmed the message of the record at `at`.
    pub fn sent(&mut self, at: Position, id: &str) -> std::io::Result<()> {
        self.line(&format!("sent {at} {id}"))
    }

    /// Nothing is left to send from this set.
    pub fn complete(&mut self, sent: u64) -> std::io::Result<()> {
        self.line(&format!("complete {} sent={sent}", now_ms()))
    }

    fn line(&mut self, line: &str) -> std::io::Result<()> {
        debug_assert!(!line.contains('\n'));
        writeln!(self.file, "{line}")?;
        self.file.sync_data()
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replayed_reads_what_log_writes_and_force_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Replayed::read(dir.path()).unwrap(), Replayed::default());
        let mut log = Log::open(dir.path(), "tcp://h:1", false).unwrap();
        log.sent(Position::new(3, 8192), "ID:a:1:1:1").unwrap();
        log.sent(Position::new(4, 4096), "stomp id with spaces")
            .unwrap();
        drop(log);
        let r = Replayed::read(dir.path()).unwrap();
        assert_eq!(
            r.sent,
            HashSet::from([Position::new(3, 8192), Position::new(4, 4096)])
        );
        assert_eq!(r.complete, None);
        let mut log = Log::open(dir.path(), "tcp://h:1", false).unwrap();
        log.complete(2).unwrap();
        assert!(matches!(
            Replayed::read(dir.path()).unwrap().complete,
            Some((_, 2))
        ));
        drop(Log::open(dir.path(), "tcp://h:1", true).unwrap());
        assert_eq!(Replayed::read(dir.path()).unwrap(), Replayed::default());
        std::fs::write(dir.path().join(REPLAYED_FILE), "sent nowhere\n").unwrap();
        assert!(Replayed::read(dir.path()).is_err());
    }
}
