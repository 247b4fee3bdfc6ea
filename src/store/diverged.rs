//! Diverged records, set aside and never deleted: what [`Journal::reset_diverged`]
//! keeps of a log before a slave starts over from its master's.
//!
//! After a split brain (both nodes served for a while) the node that rejoins as slave
//! holds records at and after the **divergence position** `from` that its new master
//! never had: its log and the master's are byte-identical before `from`, and differ
//! from there. Some of those records were confirmed to clients. A plain
//! [`Journal::reset`] would delete them; `reset_diverged` first moves the whole old log
//! into a directory of its own, which Tandem never deletes, and `tandem journal
//! replay-diverged` (`node::replay`) resends the messages it holds.
//!
//! ## The set-aside directory
//!
//! `<journal dir>/diverged-e<epoch>-<unix ms>/`, beside the segment files of one shard
//! (`<data>/journal/shard-N/`): `epoch` is the replication epoch the log was written
//! under (decimal), `unix ms` when it was set aside. It holds:
//!
//! * every segment file the journal had (same names, same bytes: the format is
//!   `format`'s), not only those after `from`. Records before `from` are on the master
//!   too and are never resent, but they tell the replay what the diverged records act
//!   on: an acknowledgement of an older message, a reclaimed segment's live message
//!   journaled again (same destination and sequence), a dead-letter copy (same message
//!   id) are not new messages. Sealed segments (every one before the active segment:
//!   the writer never touches them again) are hard links, so setting aside costs no
//!   copy; the active segment, and a pre-created next one, are copied (a crash before
//!   the reset deleted them would leave the journal appending to them);
//! * `DIVERGED`, a text file, written before the directory gets its final name:
//!
//! ```text
//! # comment lines start with '#'; then one key=value per line, in this order:
//! format=1                  this file's version
//! epoch=131074              the epoch the records were written under (decimal u64)
//! from=3:8192               the divergence position, segment:offset (see Position)
//! end=4:12288               where the log ended when it was set aside
//! created_ms=1712345678901  when (ms since the Unix epoch)
//! segments=1-4              first-last segment id held (ids are consecutive)
//! records=12                records whose frame ends after `from`: the diverged ones
//! messages=5                then the counts of the records' owner (DivergedVisitor),
//! removed=3                 each name=u64; `broker::diverged` writes messages,
//! copies=1                  removed, copies and in_doubt (see there)
//! in_doubt=0
//! ```
//!
//! Readers ignore keys they do not know; `format`, `epoch`, `from`, `end`, `segments`
//! and `records` are required.
//!
//! A `diverged-e<epoch>-<ms>.partial/` directory is one whose set-aside did not finish
//! (a crash): the journal it was copied from was never touched, so the next
//! `reset_diverged` of that journal removes it. Nothing else here ever deletes a file.
//! `REPLAYED`, written into the directory by the replay tool, is described there.
//!
//! ## Crash safety
//!
//! At every instant either the old journal is whole in place, or the set-aside copy
//! is complete under its final name (or both): the copy is built under the `.partial`
//! name (links, copies fsynced, `DIVERGED` fsynced, the directory fsynced), renamed
//! (atomic) and the journal directory fsynced, and only then does the reset delete a
//! segment. A crash after the rename and before the deletion finished leaves a
//! complete set and (part of) the old journal; the next `reset_diverged` with the same
//! epoch and `from` finds every remaining segment already held by that set (same
//! bytes; a segment without a record, such as one recovery created since, holds
//! nothing) and deletes without setting aside again, so a replay never sees the same
//! records in two sets.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::format::{self, framed_len};
use super::journal::Journal;
use super::{verify, Position, StoreError};
use crate::rt;

/// Name of the description file in a set-aside directory.
pub const DIVERGED_FILE: &str = "DIVERGED";
/// Prefix of a set-aside directory's name.
pub const SET_PREFIX: &str = "diverged-";
/// Suffix of a set-aside directory that is still being built (or whose build crashed).
const PARTIAL_SUFFIX: &str = ".partial";
/// `format=` of [`DIVERGED_FILE`].
const FORMAT: u32 = 1;

/// Told every record of a journal being set aside, in log order, so that whoever
/// knows what records mean (the broker: `broker::diverged`) can count what diverged.
/// Records before `from` come too (`diverged == false`): they are the state the
/// diverged ones act on. Runs on a blocking thread, hence `Send`.
pub trait DivergedVisitor: Send {
    /// One valid record at `at`; `diverged`: its frame ends after `from`.
    fn record(&mut self, at: Position, payload: &[u8], diverged: bool);
    /// Counts to write into `DIVERGED` after `records` (names: lowercase and `_`).
    fn counts(&self) -> Vec<(&'static str, u64)>;
}

/// What a `DIVERGED` file says (see the module doc for the layout).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DivergedInfo {
    /// The replication epoch the records were written under.
    pub epoch: u64,
    /// The divergence position: records whose frame ends after it diverged.
    pub from: Position,
    /// Where the log ended.
    pub end: Position,
    /// When it was set aside, ms since the Unix epoch.
    pub created_ms: u64,
    /// First and last segment id held (inclusive).
    pub segments: (u64, u64),
    /// Diverged records.
    pub records: u64,
    /// The visitor's counts (and any other `name=u64` line), in file order.
    pub counts: Vec<(String, u64)>,
}

impl DivergedInfo {
    /// A count by name (`messages`, ...).
    pub fn count(&self, name: &str) -> Option<u64> {
        self.counts.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }

    /// The file's text.
    pub fn encode(&self) -> String {
        let mut s = String::from(
            "# Tandem: journal records this node held beyond the divergence position `from`:\n\
             # its new master never had them. Set aside, never deleted by Tandem.\n\
             # Resend their messages: tandem journal replay-diverged THIS_DIRECTORY --url URL\n",
        );
        s += &format!("format={FORMAT}\n");
        s += &format!("epoch={}\n", self.epoch);
        s += &format!("from={}\n", self.from);
        s += &format!("end={}\n", self.end);
        s += &format!("created_ms={}\n", self.created_ms);
        s += &format!("segments={}-{}\n", self.segments.0, self.segments.1);
        s += &format!("records={}\n", self.records);
        for (name, value) in &self.counts {
            s += &format!("{name}={value}\n");
        }
        s
    }

    /// Parses a file's text; `path` is for the error.
    pub fn parse(text: &str, path: &Path) -> Result<DivergedInfo, StoreError> {
        let bad = |what: String| StoreError::Corrupt {
            path: path.to_path_buf(),
            what,
        };
        let (mut format, mut epoch, mut from, mut end, mut segments, mut records) =
            (None, None, None, None, None, None);
        let mut created_ms = 0;
        let mut counts = Vec::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| bad(format!("line without '=': {line:?}")))?;
            let number = || {
                value
                    .parse::<u64>()
                    .map_err(|_| bad(format!("{key}={value}: not a number")))
            };
            let position = || {
                parse_position(value)
                    .ok_or_else(|| bad(format!("{key}={value}: not segment:offset")))
            };
            match key {
                "format" => format = Some(number()?),
                "epoch" => epoch = Some(number()?),
                "from" => from = Some(position()?),
                "end" => end = Some(position()?),
                "created_ms" => created_ms = number()?,
                "segments" => {
                    let range = value
                        .split_once('-')
                        .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)));
                    segments = Some(
                        range.ok_or_else(|| bad(format!("segments={value}: not first-last")))?,
                    );
                }
                "records" => records = Some(number()?),
                // Newer writers may add keys; only counts are kept.
                _ => {
                    if let Ok(n) = value.parse::<u64>() {
                        counts.push((key.to_string(), n));
                    }
                }
            }
        }
        let need = |what: &str| bad(format!("no {what}= line"));
        let format = format.ok_or_else(|| need("format"))?;
        if format != u64::from(FORMAT) {
            return Err(bad(format!(
                "format={format}: this Tandem reads format {FORMAT}"
            )));
        }
        Ok(DivergedInfo {
            epoch: epoch.ok_or_else(|| need("epoch"))?,
            from: from.ok_or_else(|| need("from"))?,
            end: end.ok_or_else(|| need("end"))?,
            created_ms,
            segments: segments.ok_or_else(|| need("segments"))?,
            records: records.ok_or_else(|| need("records"))?,
            counts,
        })
    }

    /// Reads `<set>/DIVERGED`.
    pub fn read(set: &Path) -> Result<DivergedInfo, StoreError> {
        let path = set.join(DIVERGED_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| StoreError::io("read", &path, e))?;
        DivergedInfo::parse(&text, &path)
    }
}

/// `segment:offset`, as [`Position`] displays.
fn parse_position(s: &str) -> Option<Position> {
    let (seg, off) = s.split_once(':')?;
    Some(Position::new(seg.parse().ok()?, off.parse().ok()?))
}

/// A set-aside directory and what its `DIVERGED` says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DivergedSet {
    pub dir: PathBuf,
    pub info: DivergedInfo,
    /// The set was made by an earlier, interrupted reset of this same log (see the
    /// module doc, "Crash safety"): nothing new was set aside this time.
    pub reused: bool,
}

/// The complete set-aside directories in a journal directory (those with a
/// `DIVERGED` file), oldest name first.
pub fn list_sets(journal_dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let mut sets: Vec<PathBuf> = read_dir_names(journal_dir)?
        .into_iter()
        .filter(|n| n.starts_with(SET_PREFIX) && !n.ends_with(PARTIAL_SUFFIX))
        .map(|n| journal_dir.join(n))
        .filter(|p| p.join(DIVERGED_FILE).is_file())
        .collect();
    sets.sort();
    Ok(sets)
}

/// Walks every record of a set-aside directory in log order (the rules of
/// [`verify::walk`]: damage is skipped and reported, never fatal), telling `visit`
/// whether each one diverged (its frame ends after `from`).
pub fn walk_set(
    set: &Path,
    from: Position,
    visit: &mut dyn FnMut(Position, &[u8], bool),
) -> Result<verify::Report, StoreError> {
    verify::walk(set, &mut |at, payload| {
        visit(at, payload, diverged(at, payload.len(), from))
    })
}

/// A record at `at` with a `len`-byte payload diverged: some of its bytes are at or
/// after `from`. (A `from` inside a record, which a caller should not pass, makes that
/// record diverged: its bytes differ from there.)
fn diverged(at: Position, len: usize, from: Position) -> bool {
    let framed = framed_len(u32::try_from(len).unwrap_or(u32::MAX - 8));
    Position(at.0 + u64::from(framed)) > from
}

fn read_dir_names(dir: &Path) -> Result<Vec<String>, StoreError> {
    let err = |e| StoreError::io("read_dir", dir, e);
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(err)? {
        if let Some(n) = entry.map_err(err)?.file_name().to_str() {
            names.push(n.to_string());
        }
    }
    Ok(names)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn fsync(path: &Path) -> Result<(), StoreError> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| StoreError::io("fsync", path, e))
}

/// What [`set_aside`] works from: a quiesced journal's segment files.
pub(crate) struct AsideRequest {
    /// The journal directory.
    pub(crate) dir: PathBuf,
    /// Every segment file, oldest first.
    pub(crate) segments: Vec<(u64, PathBuf)>,
    /// Segments from this id on may still be written (the active one, a pre-created
    /// next one): copied, not linked.
    pub(crate) copy_from: u64,
    pub(crate) from: Position,
    pub(crate) end: Position,
    pub(crate) epoch: u64,
    pub(crate) visitor: Box<dyn DivergedVisitor>,
}

/// A set-aside copy built under its `.partial` name, not yet committed.
pub(crate) struct Prepared {
    partial: PathBuf,
    dir: PathBuf,
    final_dir: PathBuf,
    info: DivergedInfo,
}

/// Sets the journal of `req` aside (blocking I/O: run it off the executor). `None`:
/// no record diverged (the journal may be deleted as it is).
pub(crate) fn set_aside(req: AsideRequest) -> Result<Option<DivergedSet>, StoreError> {
    remove_partials(&req.dir)?;
    if let Some(set) = already_set_aside(&req)? {
        return Ok(Some(set));
    }
    match prepare(req)? {
        Some(p) => commit(p).map(Some),
        None => Ok(None),
    }
}

/// Removes `.partial` directories: each is an unfinished copy of a journal that is
/// still whole in place (nothing is deleted before a copy is committed).
fn remove_partials(dir: &Path) -> Result<(), StoreError> {
    for name in read_dir_names(dir)? {
        if name.starts_with(SET_PREFIX) && name.ends_with(PARTIAL_SUFFIX) {
            let path = dir.join(&name);
            tracing::warn!(path = %path.display(), "removing an unfinished set-aside copy (its journal was never touched)");
            std::fs::remove_dir_all(&path)
                .map_err(|e| StoreError::io("remove unfinished set-aside", &path, e))?;
        }
    }
    Ok(())
}

/// A complete set of the same epoch and `from` that already holds every segment the
/// journal has (same bytes): an earlier reset set this log aside and crashed before
/// it had deleted everything.
fn already_set_aside(req: &AsideRequest) -> Result<Option<DivergedSet>, StoreError> {
    if req.segments.is_empty() {
        return Ok(None);
    }
    for set in list_sets(&req.dir)? {
        let Ok(info) = DivergedInfo::read(&set) else {
            continue;
        };
        if info.epoch != req.epoch || info.from != req.from {
            continue;
        }
        let mut all = true;
        for (id, path) in &req.segments {
            // A segment without a record holds nothing to keep (one recovery created
            // after the interrupted reset, say).
            let held = same_file(path, &set.join(format::segment_file_name(*id)))?;
            if !held && holds_records(path)? {
                all = false;
                break;
            }
        }
        if all {
            return Ok(Some(DivergedSet {
                dir: set,
                info,
                reused: true,
            }));
        }
    }
    Ok(None)
}

/// Whether a segment file has a first frame (its first record offset is not zeros).
fn holds_records(path: &Path) -> Result<bool, StoreError> {
    use std::io::{Read, Seek, SeekFrom};
    let mut first = [0u8; format::FRAME_HEADER_BYTES as usize];
    let read = std::fs::File::open(path).and_then(|mut f| {
        f.seek(SeekFrom::Start(u64::from(format::HEADER_BYTES)))?;
        f.read_exact(&mut first)
    });
    match read {
        Ok(()) => Ok(first != [0; format::FRAME_HEADER_BYTES as usize]),
        // Shorter than a header and a frame: nothing in it.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(StoreError::io("read segment", path, e)),
    }
}

/// Same inode, or same bytes.
fn same_file(a: &Path, b: &Path) -> Result<bool, StoreError> {
    let (Ok(ma), Ok(mb)) = (std::fs::metadata(a), std::fs::metadata(b)) else {
        return Ok(false);
    };
    if ma.dev() == mb.dev() && ma.ino() == mb.ino() {
        return Ok(true);
    }
    if ma.len() != mb.len() {
        return Ok(false);
    }
    let read = |p: &Path| std::fs::read(p).map_err(|e| StoreError::io("read segment", p, e));
    Ok(read(a)? == read(b)?)
}

/// Builds the copy under its `.partial` name, durably, and counts what diverged.
/// `None` (and no directory left) when no record diverged.
pub(crate) fn prepare(mut req: AsideRequest) -> Result<Option<Prepared>, StoreError> {
    let created_ms = now_ms();
    // Unique even if two sets are made in the same millisecond.
    let mut ms = created_ms;
    let name = loop {
        let name = format!("{SET_PREFIX}e{}-{ms}", req.epoch);
        let taken = [name.clone(), format!("{name}{PARTIAL_SUFFIX}")]
            .iter()
            .any(|n| req.dir.join(n).exists());
        if !taken {
            break name;
        }
        ms += 1;
    };
    let partial = req.dir.join(format!("{name}{PARTIAL_SUFFIX}"));
    std::fs::create_dir(&partial).map_err(|e| StoreError::io("create directory", &partial, e))?;
    for (id, path) in &req.segments {
        let to = partial.join(format::segment_file_name(*id));
        let linked = *id < req.copy_from && std::fs::hard_link(path, &to).is_ok();
        if !linked {
            // Fresh bytes for a file the journal may still write (or a file system
            // without hard links); fsynced, since the reset deletes the original.
            std::fs::copy(path, &to).map_err(|e| StoreError::io("copy segment aside", &to, e))?;
            fsync(&to)?;
        }
    }
    let mut records = 0u64;
    let visitor = &mut req.visitor;
    let report = walk_set(&partial, req.from, &mut |at, payload, diverged| {
        records += u64::from(diverged);
        visitor.record(at, payload, diverged);
    })?;
    for d in &report.damaged {
        tracing::warn!(dir = %partial.display(), at = %d.at, resumes = %d.resumes, why = %d.why, "a damaged range in a journal being set aside: its records are not counted");
    }
    if records == 0 {
        std::fs::remove_dir_all(&partial)
            .map_err(|e| StoreError::io("remove unneeded set-aside", &partial, e))?;
        return Ok(None);
    }
    let ids = req.segments.iter().map(|(id, _)| *id);
    let info = DivergedInfo {
        epoch: req.epoch,
        from: req.from,
        end: req.end,
        created_ms,
        segments: (ids.clone().min().unwrap_or(0), ids.max().unwrap_or(0)),
        records,
        counts: req
            .visitor
            .counts()
            .into_iter()
            .map(|(n, v)| (n.to_string(), v))
            .collect(),
    };
    let file = partial.join(DIVERGED_FILE);
    std::fs::write(&file, info.encode()).map_err(|e| StoreError::io("write", &file, e))?;
    fsync(&file)?;
    fsync(&partial)?;
    Ok(Some(Prepared {
        final_dir: req.dir.join(&name),
        partial,
        dir: req.dir,
        info,
    }))
}

/// The commit point: renames the complete copy to its final name and makes the
/// rename durable. From here the journal may be deleted.
pub(crate) fn commit(p: Prepared) -> Result<DivergedSet, StoreError> {
    std::fs::rename(&p.partial, &p.final_dir)
        .map_err(|e| StoreError::io("rename set-aside", &p.final_dir, e))?;
    fsync(&p.dir)?;
    Ok(DivergedSet {
        dir: p.final_dir,
        info: p.info,
        reused: false,
    })
}

impl Journal {
    /// [`Journal::reset`] for a slave whose log diverged from its master's at `from`
    /// (records whose frame ends after `from` are not on the master): if any record
    /// diverged, the whole old log is first set aside into
    /// `diverged-e<epoch>-<unix ms>/` (see the module doc: layout, `DIVERGED`, crash
    /// safety), with `visitor` told every record so that `DIVERGED` carries its
    /// counts; then the journal is reset to `next` exactly as `reset` does.
    ///
    /// Returns the set (`None`: nothing diverged, a plain reset). If setting aside
    /// fails, nothing was deleted: the error is returned and the journal goes on as it
    /// was (appends accepted again).
    pub async fn reset_diverged(
        &self,
        next: Position,
        from: Position,
        epoch: u64,
        visitor: Box<dyn DivergedVisitor>,
    ) -> Result<Option<DivergedSet>, StoreError> {
        let guard = self.begin_reset(next).await?;
        let (end, segments, copy_from) = {
            let st = self.inner.state.borrow();
            let segments: Vec<(u64, PathBuf)> = st
                .segments
                .iter()
                .map(|(id, s)| (*id, s.path.clone()))
                .collect();
            (st.appended, segments, st.cursor_segment)
        };
        // Quiesced: nothing is written until the reset is finished or abandoned.
        let set = if end <= from {
            None
        } else {
            let req = AsideRequest {
                dir: self.inner.dir.clone(),
                segments,
                copy_from,
                from,
                end,
                epoch,
                visitor,
            };
            rt::exec::blocking(move || set_aside(req)).await?
        };
        if let Some(set) = &set {
            // Said here too, in case the deletion below fails after it.
            tracing::info!(dir = %set.dir.display(), records = set.info.records, from = %from, reused = set.reused, "diverged journal records set aside");
        }
        self.finish_reset(guard, next).await?;
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diverged_file_round_trips_and_rejects_what_it_cannot_read() {
        let info = DivergedInfo {
            epoch: 131074,
            from: Position::new(3, 8192),
            end: Position::new(4, 12288),
            created_ms: 1_712_345_678_901,
            segments: (1, 4),
            records: 12,
            counts: vec![("messages".into(), 5), ("removed".into(), 3)],
        };
        let path = Path::new("DIVERGED");
        let text = info.encode();
        assert!(text.contains("\nfrom=3:8192\n"), "{text}");
        assert_eq!(DivergedInfo::parse(&text, path).unwrap(), info);
        assert_eq!(info.count("messages"), Some(5));
        // Unknown keys are ignored (a newer writer), missing required ones are not.
        let newer = format!("{text}note=hello\n");
        assert_eq!(DivergedInfo::parse(&newer, path).unwrap(), info);
        let no_from: String = text
            .lines()
            .filter(|l| !l.starts_with("from="))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(matches!(
            DivergedInfo::parse(&no_from, path),
            Err(StoreError::Corrupt { .. })
        ));
        let v2 = text.replace("format=1", "format=2");
        assert!(DivergedInfo::parse(&v2, path).is_err());
        assert!(DivergedInfo::parse(&text.replace("from=3:8192", "from=3"), path).is_err());
    }

    /// Counts records, as a broker's visitor would count messages.
    struct Counter(u64);
    impl DivergedVisitor for Counter {
        fn record(&mut self, _: Position, _: &[u8], diverged: bool) {
            self.0 += u64::from(diverged);
        }
        fn counts(&self) -> Vec<(&'static str, u64)> {
            vec![("seen", self.0)]
        }
    }

    /// A journal directory of hand-made segments: 1 sealed (rolled), 2 active. Returns
    /// the segments and the position of the first record of segment 2.
    fn journal(dir: &Path) -> (Vec<(u64, PathBuf)>, Position) {
        let size = 16384u64;
        let mut segs = Vec::new();
        for (id, records, roll) in [
            (1u64, &[&b"one"[..], b"two"][..], true),
            (2, &[b"three", b"four"], false),
        ] {
            let mut b = format::SegmentHeader {
                id,
                segment_bytes: size,
            }
            .encode();
            for r in records {
                format::encode_record(&mut b, r);
            }
            if roll {
                format::encode_roll(&mut b);
            }
            b.resize(size as usize, 0);
            let path = dir.join(format::segment_file_name(id));
            std::fs::write(&path, b).unwrap();
            segs.push((id, path));
        }
        (segs, Position::new(2, format::HEADER_BYTES))
    }

    fn request(
        dir: &Path,
        segments: &[(u64, PathBuf)],
        from: Position,
        epoch: u64,
    ) -> AsideRequest {
        AsideRequest {
            dir: dir.to_path_buf(),
            segments: segments.to_vec(),
            copy_from: 2,
            from,
            end: Position::new(2, 8192),
            epoch,
            visitor: Box::new(Counter(0)),
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut n = read_dir_names(dir).unwrap();
        n.sort();
        n
    }

    #[test]
    fn sealed_segments_are_linked_the_active_one_copied_and_both_byte_identical() {
        let dir = tempfile::tempdir().unwrap();
        let (segs, from) = journal(dir.path());
        let set = set_aside(request(dir.path(), &segs, from, 9))
            .unwrap()
            .unwrap();
        assert!(!set.reused);
        assert_eq!(set.info.records, 2, "three and four");
        assert_eq!(set.info.count("seen"), Some(2));
        assert_eq!(DivergedInfo::read(&set.dir).unwrap(), set.info);
        for (id, path) in &segs {
            let copy = set.dir.join(format::segment_file_name(*id));
            assert_eq!(std::fs::read(path).unwrap(), std::fs::read(&copy).unwrap());
            let (a, b) = (
                std::fs::metadata(path).unwrap(),
                std::fs::metadata(&copy).unwrap(),
            );
            assert_eq!(
                a.ino() == b.ino(),
                *id == 1,
                "segment {id}: linked iff sealed"
            );
        }
        // Nothing after `from`: no set, no directory left behind.
        let end = Position::new(2, 8192);
        assert!(set_aside(request(dir.path(), &segs, end, 9))
            .unwrap()
            .is_none());
        assert_eq!(list_sets(dir.path()).unwrap(), vec![set.dir.clone()]);
    }

    #[test]
    fn a_crash_before_the_commit_leaves_the_journal_whole_and_is_cleaned_up() {
        let dir = tempfile::tempdir().unwrap();
        let (segs, from) = journal(dir.path());
        let before: Vec<Vec<u8>> = segs
            .iter()
            .map(|(_, p)| std::fs::read(p).unwrap())
            .collect();
        // Built, never renamed: the crash.
        let prepared = prepare(request(dir.path(), &segs, from, 9))
            .unwrap()
            .unwrap();
        drop(prepared);
        assert!(list_sets(dir.path()).unwrap().is_empty(), "no complete set");
        assert!(names(dir.path())
            .iter()
            .any(|n| n.ends_with(PARTIAL_SUFFIX)));
        let after: Vec<Vec<u8>> = segs
            .iter()
            .map(|(_, p)| std::fs::read(p).unwrap())
            .collect();
        assert_eq!(before, after, "the journal was not touched");
        // The next attempt removes the unfinished copy and makes a complete one.
        let set = set_aside(request(dir.path(), &segs, from, 9))
            .unwrap()
            .unwrap();
        assert!(!names(dir.path())
            .iter()
            .any(|n| n.ends_with(PARTIAL_SUFFIX)));
        assert_eq!(list_sets(dir.path()).unwrap(), vec![set.dir]);
    }

    #[test]
    fn a_crash_after_the_commit_does_not_set_the_same_log_aside_twice() {
        let dir = tempfile::tempdir().unwrap();
        let (segs, from) = journal(dir.path());
        // Committed, then the crash before any segment was deleted (or after segment
        // 1 was: what is left is still held by the set).
        let first = commit(
            prepare(request(dir.path(), &segs, from, 9))
                .unwrap()
                .unwrap(),
        )
        .unwrap();
        std::fs::remove_file(&segs[0].1).unwrap();
        // Reopened meanwhile, recovery may have created an empty next segment.
        let empty = dir.path().join(format::segment_file_name(3));
        let mut b = format::SegmentHeader {
            id: 3,
            segment_bytes: 16384,
        }
        .encode();
        b.resize(16384, 0);
        std::fs::write(&empty, b).unwrap();
        let left = vec![segs[1].clone(), (3, empty)];
        let again = set_aside(request(dir.path(), &left, from, 9))
            .unwrap()
            .unwrap();
        assert!(again.reused);
        assert_eq!(again.dir, first.dir);
        assert_eq!(list_sets(dir.path()).unwrap().len(), 1);
        // Another divergence point is another story: a new set.
        let other = set_aside(request(dir.path(), &segs[1..], Position(0), 9))
            .unwrap()
            .unwrap();
        assert!(!other.reused);
        assert_eq!(list_sets(dir.path()).unwrap().len(), 2);
    }

    #[test]
    fn a_record_diverges_when_any_of_its_bytes_is_at_or_after_from() {
        let at = Position::new(2, 4096);
        let framed = framed_len(10); // 24
        assert!(!diverged(at, 10, Position::new(2, 4096 + framed)));
        assert!(diverged(at, 10, Position::new(2, 4096 + framed - 8)));
        assert!(diverged(at, 10, at));
        assert!(diverged(at, 10, Position(0)));
    }
}
