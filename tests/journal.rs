//! Journal behaviour through the public API: round trips across segments, group
//! commit, read-back, torn and zero-filled tails, segment removal, and the
//! replication side (shipped batches, catch-up with `read_span`, `reset`).

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use std::future::Future;
use tandem::rt;

use tandem::store::{
    format, Journal, JournalConfig, Location, Position, ReplayedRecord, StoreError, Synced,
};

/// 16 KiB segments: a header block and three blocks of records, so a few dozen
/// records span several segments.
const SMALL_SEGMENT: u64 = 16 * 1024;

fn cfg(dir: &Path) -> JournalConfig {
    JournalConfig {
        dir: dir.to_path_buf(),
        segment_bytes: SMALL_SEGMENT,
        max_batch_bytes: 1 << 20,
        first_segment: 1,
        on_damage: tandem::store::OnDamage::Refuse,
    }
}

/// A payload whose length and bytes depend on `i` (1..=3000 bytes).
fn payload(i: u64) -> Vec<u8> {
    let len = (i * 37 % 3000 + 1) as usize;
    (0..len).map(|j| (i as usize * 31 + j) as u8).collect()
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:016x}.log"))
}

/// Deterministic xorshift so failures replay from the printed seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Appends payloads `from..to`, waits until durable, returns their locations.
async fn append_range(j: &Journal, from: u64, to: u64) -> Vec<Location> {
    let mut locs = Vec::new();
    let mut end = Position(0);
    for i in from..to {
        let a = j.append(&payload(i)).unwrap();
        assert!(a.end > end);
        end = a.end;
        locs.push(a.location);
    }
    if end != Position(0) {
        j.wait_durable(end).await.unwrap();
        assert!(j.durable_position() >= end);
    }
    locs
}

/// Opens, checks the replay is exactly payloads `0..n` at `locs[..n]`, closes.
async fn reopen_expect(dir: &Path, locs: &[Location], n: usize) {
    replay_is(cfg(dir), locs, (0..n).collect()).await;
}

/// Opens with `cfg`, checks the replay is exactly records `want` (indexes into
/// `locs`, each with its `payload(i)`), in order, closes.
async fn replay_is(cfg: JournalConfig, locs: &[Location], want: Vec<usize>) {
    let (j, replay) = Journal::open(cfg).await.unwrap();
    assert_eq!(replay.len(), want.len(), "replayed record count");
    for (r, i) in replay.iter().zip(want) {
        assert_eq!(r.location, locs[i], "location of record {i}");
        assert_eq!(
            &r.payload[..],
            &payload(i as u64)[..],
            "payload of record {i}"
        );
    }
    j.close().await.unwrap();
}

#[test]
fn round_trip_across_segments_and_reopens() {
    let dir = tempfile::tempdir_in(".").unwrap();
    rt::run_local(async {
        let (j, replay) = Journal::open(cfg(dir.path())).await.unwrap();
        assert!(replay.is_empty());
        let mut locs = append_range(&j, 0, 60).await;
        assert!(j.segments().len() >= 4, "segments: {:?}", j.segments());
        assert_eq!(*j.segments().last().unwrap(), j.active_segment());
        for (i, loc) in locs.iter().enumerate() {
            assert_eq!(&j.read(*loc).await.unwrap()[..], &payload(i as u64)[..]);
        }
        j.close().await.unwrap();

        reopen_expect(dir.path(), &locs, 60).await;
        // Appends continue after the replayed records and survive another reopen.
        let (j, _) = Journal::open(cfg(dir.path())).await.unwrap();
        locs.extend(append_range(&j, 60, 100).await);
        j.close().await.unwrap();
        reopen_expect(dir.path(), &locs, 100).await;
    });
}

#[test]
fn group_commit_many_concurrent_waiters() {
    let dir = tempfile::tempdir_in(".").unwrap();
    rt::run_local(async {
        let mut c = cfg(dir.path());
        c.segment_bytes = 1 << 20;
        let (j, _) = Journal::open(c).await.unwrap();
        let j = Rc::new(j);
        const TASKS: u64 = 300;
        let done = Rc::new(Cell::new(0u64));
        let locs = Rc::new(RefCell::new(Vec::new()));
        for i in 0..TASKS {
            let (j, done, locs) = (j.clone(), done.clone(), locs.clone());
            rt::spawn_local(async move {
                let a = j.append(&payload(i)).unwrap();
                j.wait_durable(a.end).await.unwrap();
                assert!(j.durable_position() >= a.end);
                locs.borrow_mut().push((i, a.location));
                done.set(done.get() + 1);
            });
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while done.get() < TASKS {
            assert!(Instant::now() < deadline, "waiters did not complete");
            rt::sleep(Duration::from_millis(1)).await;
        }
        let fsyncs = j.stats().fsyncs;
        assert!(
            fsyncs < TASKS / 4,
            "{fsyncs} fsyncs for {TASKS} records: no group commit"
        );
        let locs = locs.borrow().clone();
        for (i, loc) in locs.iter() {
            assert_eq!(&j.read(*loc).await.unwrap()[..], &payload(*i)[..]);
        }
        Rc::try_unwrap(j).ok().unwrap().close().await.unwrap();
    });
}

/// A record nobody waits for (a consumer's fire-and-forget ack) is held briefly for
/// one somebody does (a producer's next send): both share one flush. Held or not, it
/// becomes durable by itself, without any waiter.
#[test]
fn unawaited_record_shares_the_next_awaited_flush() {
    let dir = tempfile::tempdir_in(".").unwrap();
    rt::run_local(async {
        // One segment for all of it (a segment roll is a batch boundary).
        let mut c = cfg(dir.path());
        c.segment_bytes = 1 << 20;
        let (j, _) = Journal::open(c).await.unwrap();
        // The writer holds an unawaited batch for 500 µs. An attempt counts only if
        // the awaited append came well within that (a preempted test thread can
        // overshoot it); every counted attempt must share the flush.
        let mut counted = 0;
        for i in 0..20 {
            let before = j.stats().fsyncs;
            let started = Instant::now();
            let ack = j.append(&payload(2 * i)).unwrap();
            // Let the writer run: it sees a batch nobody waits for and holds it.
            futures_lite::future::yield_now().await;
            let send = j.append(&payload(2 * i + 1)).unwrap();
            let in_time = started.elapsed() < Duration::from_micros(200);
            j.wait_durable(send.end).await.unwrap();
            assert!(j.durable_position() >= ack.end);
            if in_time {
                counted += 1;
                assert_eq!(
                    j.stats().fsyncs - before,
                    1,
                    "attempt {i}: the unawaited record was flushed on its own"
                );
            }
        }
        assert!(counted > 0, "no attempt ran within the hold time");

        // Nobody waits: it is durable anyway, soon (bounded poll, no waiter).
        let lone = j.append(&payload(99)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while j.durable_position() < lone.end {
            assert!(
                Instant::now() < deadline,
                "an unawaited record never became durable"
            );
            rt::sleep(Duration::from_millis(1)).await;
        }
        j.close().await.unwrap();
    });
}

/// Installs a sync observer that keeps every [`Synced`] it is told.
fn observe_syncs(j: &Journal) -> Rc<RefCell<Vec<Synced>>> {
    let seen: Rc<RefCell<Vec<Synced>>> = Rc::default();
    let s = seen.clone();
    j.set_sync_observer(Rc::new(move |synced| s.borrow_mut().push(synced)));
    seen
}

/// What the `/metrics` histograms `tandem_journal_{records,bytes}_per_fsync` are fed:
/// every write+fdatasync tells how many records and new framed bytes it made durable.
/// One at a time, each fsync holds one record; many concurrent waiters share fsyncs;
/// across segment rolls (the roll marker is bytes, not a record) and on a slave taking
/// shipped batches, the counts still add up to what was appended.
#[test]
fn sync_observer_counts_records_and_bytes_per_fsync() {
    let dir = tempfile::tempdir_in(".").unwrap();
    rt::run_local(async {
        let mut c = cfg(dir.path());
        c.segment_bytes = 1 << 20;
        let (j, _) = Journal::open(c).await.unwrap();
        let seen = observe_syncs(&j);

        // One waited-for record at a time: one fsync each, holding exactly it.
        for i in 0..5 {
            let p = payload(i);
            let a = j.append(&p).unwrap();
            j.wait_durable(a.end).await.unwrap();
            let last = *seen.borrow().last().expect("an fsync was observed");
            assert_eq!(last.records, 1, "record {i}: {last:?}");
            assert_eq!(
                last.bytes,
                u64::from(format::framed_len(p.len() as u32)),
                "record {i}: {last:?}"
            );
        }
        assert_eq!(seen.borrow().len() as u64, j.stats().fsyncs);

        // Many concurrent waiters: group commit, and every record counted once.
        let before = j.stats();
        let observed_before = seen.borrow().len();
        const TASKS: u64 = 300;
        let done = Rc::new(Cell::new(0u64));
        let j = Rc::new(j);
        for i in 0..TASKS {
            let (j, done) = (j.clone(), done.clone());
            rt::spawn_local(async move {
                let a = j.append(&payload(i)).unwrap();
                j.wait_durable(a.end).await.unwrap();
                done.set(done.get() + 1);
            });
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while done.get() < TASKS {
            assert!(Instant::now() < deadline, "waiters did not complete");
            rt::sleep(Duration::from_millis(1)).await;
        }
        let after = j.stats();
        let burst: Vec<Synced> = seen.borrow()[observed_before..].to_vec();
        assert_eq!(burst.len() as u64, after.fsyncs - before.fsyncs);
        assert_eq!(burst.iter().map(|s| s.records).sum::<u64>(), TASKS);
        assert_eq!(
            burst.iter().map(|s| s.bytes).sum::<u64>(),
            after.bytes_appended - before.bytes_appended
        );
        let most = burst.iter().map(|s| s.records).max().unwrap();
        assert!(most > 1, "no fsync covered more than one record: {burst:?}");
        assert!(burst.iter().all(|s| s.records >= 1), "{burst:?}");
        Rc::try_unwrap(j).ok().unwrap().close().await.unwrap();
    });

    // Small segments (rolls) and a slave journal fed the master's batches.
    let master_dir = tempfile::tempdir_in(".").unwrap();
    let slave_dir = tempfile::tempdir_in(".").unwrap();
    rt::run_local(async {
        let (master, _) = Journal::open(cfg(master_dir.path())).await.unwrap();
        let (slave, _) = Journal::open(cfg(slave_dir.path())).await.unwrap();
        let on_master = observe_syncs(&master);
        let on_slave = observe_syncs(&slave);
        let slave = Rc::new(slave);
        {
            let slave = slave.clone();
            master.set_batch_tap(Box::new(move |pos, bytes| {
                slave.write_shipped(pos, &bytes).unwrap();
            }));
        }
        const N: u64 = 60;
        append_range(&master, 0, N).await;
        slave.wait_durable(slave.appended_position()).await.unwrap();
        let rolls = master.segments().len() as u64 - 1;
        assert!(rolls >= 3, "segments: {:?}", master.segments());
        let stats = master.stats();
        for (who, seen, fsyncs) in [
            ("master", &on_master, stats.fsyncs),
            ("slave", &on_slave, slave.stats().fsyncs),
        ] {
            let seen = seen.borrow();
            assert_eq!(seen.len() as u64, fsyncs, "{who}");
            assert_eq!(
                seen.iter().map(|s| s.records).sum::<u64>(),
                N,
                "{who}: {seen:?}"
            );
            assert_eq!(
                seen.iter().map(|s| s.bytes).sum::<u64>(),
                stats.bytes_appended + rolls * u64::from(format::FRAME_HEADER_BYTES),
                "{who}: records' framed bytes plus one roll marker per roll: {seen:?}"
            );
        }
        master.close().await.unwrap();
        Rc::try_unwrap(slave).ok().unwrap().close().await.unwrap();
    });
}

#[test]
fn read_back_pending_and_written() {
    let dir = tempfile::tempdir_in(".").unwrap();
    rt::run_local(async {
        let (j, _) = Journal::open(cfg(dir.path())).await.unwrap();
        let a = j.append(b"first").unwrap();
        let b = j.append(b"second").unwrap();
        // No await since the appends: both are still in memory.
        assert!(j.durable_position() < a.end);
        assert_eq!(&j.read(a.location).await.unwrap()[..], b"first");
        assert_eq!(&j.read(b.location).await.unwrap()[..], b"second");
        j.wait_durable(b.end).await.unwrap();
        assert_eq!(&j.read(a.location).await.unwrap()[..], b"first");
        assert_eq!(&j.read(b.location).await.unwrap()[..], b"second");
        // A location that was never handed out, and a wrong length.
        let mut bogus = b.location;
        bogus.offset += 4096;
        assert!(matches!(
            j.read(bogus).await,
            Err(StoreError::InvalidLocation(_))
        ));
        let mut wrong_len = a.location;
        wrong_len.len += 1;
        assert!(j.read(wrong_len).await.is_err());
        j.close().await.unwrap();
    });
}

#[test]
fn rejects_empty_records_and_gives_oversized_ones_their_own_segment() {
    let dir = tempfile::tempdir_in(".").unwrap();
    rt::run_local(async {
        let (j, _) = Journal::open(cfg(dir.path())).await.unwrap();
        assert!(matches!(j.append(b""), Err(StoreError::EmptyRecord)));
        // A record three segments long lands in a segment sized for it, between
        // ordinary records, and everything replays in order.
        let small_before = j.append(b"before").unwrap();
        let big = vec![7u8; 3 * SMALL_SEGMENT as usize];
        let a = j.append(&big).unwrap();
        let small_after = j.append(b"after").unwrap();
        j.wait_durable(small_after.end).await.unwrap();
        assert!(a.location.segment > small_before.location.segment);
        assert!(small_after.location.segment >= a.location.segment);
        assert_eq!(j.read(a.location).await.unwrap().len(), big.len());
        j.close().await.unwrap();
        let (j, replay) = Journal::open(cfg(dir.path())).await.unwrap();
        let payloads: Vec<usize> = replay.iter().map(|r| r.payload.len()).collect();
        assert_eq!(payloads, vec![6, big.len(), 5]);
        assert!(replay[1].payload.iter().all(|b| *b == 7));
        let again = j.append(b"more").unwrap();
        j.wait_durable(again.end).await.unwrap();
        j.close().await.unwrap();
        let (j, replay) = Journal::open(cfg(dir.path())).await.unwrap();
        assert_eq!(replay.len(), 4);
        j.close().await.unwrap();
    });
}

/// Damages the log at a random byte of record `r`'s frame (header or payload, not
/// padding, which the checksum does not cover), either by truncating the file there,
/// flipping a byte, or zeroing from there to the end of the segment.
fn damage(dir: &Path, loc: Location, rng: &mut Rng, mode: u64) {
    use std::io::{Seek, SeekFrom, Write};
    let path = segment_path(dir, loc.segment);
    let at = u64::from(loc.offset) + rng.below(8 + u64::from(loc.len));
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    match mode {
        0 => f.set_len(at).unwrap(),
        1 => {
            use std::io::Read;
            let mut b = [0u8; 1];
            f.seek(SeekFrom::Start(at)).unwrap();
            f.read_exact(&mut b).unwrap();
            f.seek(SeekFrom::Start(at)).unwrap();
            f.write_all(&[b[0] ^ (1 << rng.below(8))]).unwrap();
        }
        _ => {
            // Zero from the record start: a clean, zero-filled tail.
            let len = SMALL_SEGMENT - u64::from(loc.offset);
            f.seek(SeekFrom::Start(u64::from(loc.offset))).unwrap();
            f.write_all(&vec![0u8; len as usize]).unwrap();
        }
    }
    f.sync_all().unwrap();
}

#[test]
fn torn_tail_at_random_offsets() {
    for seed in 1..=24u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let mode = seed % 3;
        let dir = tempfile::tempdir_in(".").unwrap();
        rt::run_local(async {
            let (j, _) = Journal::open(cfg(dir.path())).await.unwrap();
            let mut locs = append_range(&j, 0, 40).await;
            j.close().await.unwrap();
            // Damage a record in the last segment that has records.
            let last_seg = locs.last().unwrap().segment;
            let first_in_last = locs.iter().position(|l| l.segment == last_seg).unwrap();
            let r = first_in_last + rng.below((locs.len() - first_in_last) as u64) as usize;
            damage(dir.path(), locs[r], &mut rng, mode);
            if mode == 1 {
                // A torn write: the records after the damaged one never reached the
                // disk either (with valid records after it, it would be damage).
                zero_after_record(dir.path(), locs[r]);
            }

            reopen_expect(dir.path(), &locs, r).await;
            // Appends overwrite the torn tail and survive another reopen.
            let (j, _) = Journal::open(cfg(dir.path())).await.unwrap();
            locs.truncate(r);
            locs.extend(append_range(&j, r as u64, r as u64 + 25).await);
            j.close().await.unwrap();
            reopen_expect(dir.path(), &locs, r + 25).await;
        });
    }
}

/// Zeroes the segment of `loc` from the end of its frame on.
fn zero_after_record(dir: &Path, loc: Location) {
    use std::os::unix::fs::FileExt;
    let path = segment_path(dir, loc.segment);
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let from = u64::from(loc.offset) + (8 + u64::from(loc.len)).div_ceil(8) * 8;
    let to = std::fs::metadata(&path).unwrap().len();
    f.write_all_at(&vec![0u8; (to.saturating_sub(from)) as usize], from)
        .unwrap();
    f.sync_all().unwrap();
}

/// Opens with `OnDamage::Skip` and checks the replay is every record of `locs` but
/// `lost`, in order.
async fn reopen_skipping(dir: &Path, locs: &[Location], lost: usize) {
    let cfg = JournalConfig {
        on_damage: tandem::store::OnDamage::Skip,
        ..cfg(dir)
    };
    replay_is(cfg, locs, (0..locs.len()).filter(|i| *i != lost).collect()).await;
}

/// A damaged record with valid records after it (here in a middle segment) is damage,
/// not a torn tail: open refuses, naming it, and deletes nothing; with
/// `OnDamage::Skip` every other record replays, appends go on after the true end, and
/// the damaged bytes stay where they are.
#[test]
fn a_damaged_record_before_valid_ones_is_refused_never_cut() {
    for mode in 0..3u64 {
        let dir = tempfile::tempdir_in(".").unwrap();
        rt::run_local(async {
            let (j, _) = Journal::open(cfg(dir.path())).await.unwrap();
            let mut locs = append_range(&j, 0, 60).await;
            j.close().await.unwrap();
            let middle = locs[0].segment + 1;
            let r = locs.iter().position(|l| l.segment == middle).unwrap() + 1;
            let last = locs.last().unwrap().segment;
            match mode {
                // Truncated or flipped inside record r.
                0 | 1 => damage(dir.path(), locs[r], &mut Rng(7), mode),
                // Record r's frame zeroed.
                _ => {
                    use std::os::unix::fs::FileExt;
                    let f = std::fs::OpenOptions::new()
                        .write(true)
                        .open(segment_path(dir.path(), middle))
                        .unwrap();
                    f.write_all_at(
                        &vec![0u8; 8 + locs[r].len as usize],
                        u64::from(locs[r].offset),
                    )
                    .unwrap();
                }
            }
            let refused = Journal::open(cfg(dir.path())).await;
            match refused {
                Err(StoreError::Damaged {
                    segment, offset, ..
                }) => {
                    assert_eq!((segment, offset), (middle, locs[r].offset), "mode {mode}");
                }
                Err(e) => panic!("mode {mode}: {e}"),
                Ok(_) => panic!("mode {mode}: a damaged journal opened"),
            }
            for id in locs[0].segment..=last {
                assert!(
                    segment_path(dir.path(), id).exists(),
                    "segment {id} deleted"
                );
            }
            // A truncated segment loses the records after the cut too.
            if mode == 0 {
                let kept: Vec<Location> = locs
                    .iter()
                    .enumerate()
                    .filter(|(i, l)| *i < r || l.segment != middle)
                    .map(|(_, l)| *l)
                    .collect();
                let (j, replay) = Journal::open(JournalConfig {
                    on_damage: tandem::store::OnDamage::Skip,
                    ..cfg(dir.path())
                })
                .await
                .unwrap();
                let got: Vec<Location> = replay.iter().map(|r| r.location).collect();
                assert_eq!(got, kept);
                j.close().await.unwrap();
                return;
            }
            reopen_skipping(dir.path(), &locs, r).await;
            let (j, _) = Journal::open(JournalConfig {
                on_damage: tandem::store::OnDamage::Skip,
                ..cfg(dir.path())
            })
            .await
            .unwrap();
            locs.extend(append_range(&j, 60, 70).await);
            j.close().await.unwrap();
            reopen_skipping(dir.path(), &locs, r).await;
        });
    }
}

/// `OnDamage::SetAside` (a node of a pair): `prepare` runs once before anything
/// changes, the damaged segment is copied and the later ones moved into `damaged-*/`
/// byte for byte, the log replays up to the damage and ends there, and appends go on
/// from the damage (where the peer's bytes will be written).
#[test]
fn set_aside_keeps_the_damage_and_ends_the_log_before_it() {
    let dir = tempfile::tempdir_in(".").unwrap();
    rt::run_local(async {
        let (j, _) = Journal::open(cfg(dir.path())).await.unwrap();
        let locs = append_range(&j, 0, 60).await;
        j.close().await.unwrap();
        let middle = locs[0].segment + 1;
        let last = locs.last().unwrap().segment;
        let r = locs.iter().position(|l| l.segment == middle).unwrap() + 1;
        damage(dir.path(), locs[r], &mut Rng(11), 1);
        let before: Vec<Vec<u8>> = (middle..=last)
            .map(|id| std::fs::read(segment_path(dir.path(), id)).unwrap())
            .collect();

        let prepared = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counter = prepared.clone();
        let set_aside = JournalConfig {
            on_damage: tandem::store::OnDamage::SetAside {
                prepare: std::sync::Arc::new(move || {
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    Ok(())
                }),
            },
            ..cfg(dir.path())
        };
        let (j, replay) = Journal::open(set_aside.clone()).await.unwrap();
        assert_eq!(prepared.load(std::sync::atomic::Ordering::SeqCst), 1);
        let got: Vec<Location> = replay.iter().map(|r| r.location).collect();
        assert_eq!(got, locs[..r].to_vec(), "replay ends at the damage");
        assert_eq!(
            j.next_position(),
            Position::new(middle, locs[r].offset),
            "appends go on at the damage"
        );
        let aside: Vec<PathBuf> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_dir())
            .collect();
        assert_eq!(aside.len(), 1, "{aside:?}");
        for (k, id) in (middle..=last).enumerate() {
            let kept = std::fs::read(segment_path(&aside[0], id)).unwrap();
            assert!(kept == before[k], "segment {id} set aside changed");
            assert_eq!(
                segment_path(dir.path(), id).exists(),
                id == middle,
                "segment {id}: only the damaged one stays (cut) in the log"
            );
        }
        let more = append_range(&j, 60, 65).await;
        assert_eq!(more[0].segment, middle);
        assert_eq!(more[0].offset, locs[r].offset);
        j.close().await.unwrap();
        // Reopened: a clean log (the prefix and the new records), nothing to set aside.
        let (j, replay) = Journal::open(set_aside).await.unwrap();
        assert_eq!(prepared.load(std::sync::atomic::Ordering::SeqCst), 1);
        let got: Vec<Location> = replay.iter().map(|r| r.location).collect();
        let mut want = locs[..r].to_vec();
        want.extend(more);
        assert_eq!(got, want);
        j.close().await.unwrap();
    });
}

#[test]
fn remove_old_segments() {
    let dir = tempfile::tempdir_in(".").unwrap();
    rt::run_local(async {
        let (j, _) = Journal::open(cfg(dir.path())).await.unwrap();
        let locs = append_range(&j, 0, 60).await;
        let active = j.active_segment();
        let before = j.segments();
        assert!(before.len() >= 4);
        // Asking beyond the active segment removes only the older ones.
        j.remove_segments_before(active + 10).await.unwrap();
        assert_eq!(j.segments(), vec![active]);
        for id in &before[..before.len() - 1] {
            assert!(!segment_path(dir.path(), *id).exists());
        }
        let old = locs[0];
        assert!(matches!(
            j.read(old).await,
            Err(StoreError::InvalidLocation(_))
        ));
        let kept: Vec<_> = (0..60u64)
            .filter(|i| locs[*i as usize].segment == active)
            .collect();
        for i in &kept {
            assert_eq!(
                &j.read(locs[*i as usize]).await.unwrap()[..],
                &payload(*i)[..]
            );
        }
        j.close().await.unwrap();
        let (j, replay) = Journal::open(cfg(dir.path())).await.unwrap();
        assert_eq!(replay.len(), kept.len());
        assert_eq!(replay[0].location, locs[kept[0] as usize]);
        j.close().await.unwrap();
    });
}

#[test]
fn batch_tap_sees_exactly_the_written_bytes() {
    let dir = tempfile::tempdir_in(".").unwrap();
    rt::run_local(async {
        let (j, _) = Journal::open(cfg(dir.path())).await.unwrap();
        let seen = Rc::new(RefCell::new(Vec::new()));
        let s = seen.clone();
        j.set_batch_tap(Box::new(move |pos, bytes| {
            s.borrow_mut().push((pos, bytes))
        }));
        let locs = append_range(&j, 0, 30).await;
        j.close().await.unwrap();
        // Batches are contiguous within a segment and match the files byte for byte.
        let seen = seen.borrow();
        assert!(!seen.is_empty());
        for (pos, bytes) in seen.iter() {
            let file = std::fs::read(segment_path(dir.path(), pos.segment())).unwrap();
            let off = pos.offset() as usize;
            assert_eq!(&file[off..off + bytes.len()], &bytes[..]);
        }
        let first = seen[0].0;
        assert_eq!(first, locs[0].position());
    });
}

/// Log shipping: every batch a master's tap gives is written verbatim into a second
/// journal with `write_shipped`; both then replay the same records at the same
/// locations and their segment files are byte-identical. Gaps and damaged batches
/// are refused and leave the slave unchanged.
#[test]
fn shipped_batches_make_a_byte_identical_mirror() {
    let master_dir = tempfile::tempdir_in(".").unwrap();
    let slave_dir = tempfile::tempdir_in(".").unwrap();
    let mut rng = Rng(0x5EED_1234_5678_9ABD);
    rt::run_local(async {
        let (master, _) = Journal::open(cfg(master_dir.path())).await.unwrap();
        let (slave, _) = Journal::open(cfg(slave_dir.path())).await.unwrap();
        let slave = Rc::new(slave);
        let shipped: Rc<RefCell<Vec<(Position, bytes::Bytes)>>> = Rc::default();
        {
            let (slave, shipped) = (slave.clone(), shipped.clone());
            master.set_batch_tap(Box::new(move |pos, bytes| {
                slave.write_shipped(pos, &bytes).unwrap();
                shipped.borrow_mut().push((pos, bytes));
            }));
        }
        // A few hundred random-size records in random bursts (so batches vary), with
        // two records larger than a segment (they get segments of their own).
        let mut payloads = Vec::new();
        let mut end = Position(0);
        for i in 0..400u64 {
            let len = match i {
                150 | 290 => SMALL_SEGMENT as usize + 5000,
                _ => 1 + rng.below(2500) as usize,
            };
            let p: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            end = master.append(&p).unwrap().end;
            payloads.push(p);
            if rng.below(8) == 0 {
                master.wait_durable(end).await.unwrap();
            }
        }
        master.wait_durable(end).await.unwrap();
        assert!(master.segments().len() >= 10, "{:?}", master.segments());
        let slave_end = slave.appended_position();
        assert_eq!(slave_end, master.appended_position());
        assert_eq!(slave.next_position(), master.next_position());
        slave.wait_durable(slave_end).await.unwrap();

        // The shipped batches decode to the master's records, in order.
        let decoded: Vec<_> = shipped
            .borrow()
            .iter()
            .flat_map(|(pos, b)| Journal::decode_shipped(*pos, b).unwrap())
            .collect();
        assert_eq!(decoded.len(), payloads.len());
        let ends_with_roll =
            |b: &bytes::Bytes| b.len() >= 8 && b[b.len() - 8..b.len() - 4] == [0xff; 4];
        assert!(
            shipped
                .borrow()
                .iter()
                .filter(|(_, b)| ends_with_roll(b))
                .count()
                >= 5,
            "batches closing a segment were shipped"
        );
        for (r, p) in decoded.iter().zip(&payloads) {
            assert_eq!(&r.payload[..], &p[..]);
            assert_eq!(&slave.read(r.location).await.unwrap()[..], &p[..]);
        }

        // One more batch, kept from the slave, to try bad deliveries with.
        let held: Rc<RefCell<Vec<(Position, bytes::Bytes)>>> = Rc::default();
        {
            let held = held.clone();
            master.set_batch_tap(Box::new(move |pos, bytes| {
                held.borrow_mut().push((pos, bytes))
            }));
        }
        let last = master.append(b"the last record").unwrap();
        master.wait_durable(last.end).await.unwrap();
        // (If the record rolled to a new segment, the roll marker came first.)
        let (pos, good) = {
            let held = held.borrow();
            for (p, b) in &held[..held.len() - 1] {
                slave.write_shipped(*p, b).unwrap();
            }
            held.last().unwrap().clone()
        };
        assert_eq!(pos, slave.next_position());
        let slave_end = slave.appended_position();
        let before = slave.stats();
        // A gap (and a repeat of an old batch) is refused.
        let later = Position::new(pos.segment(), pos.offset() + 8);
        match slave.write_shipped(later, &good) {
            Err(StoreError::ShippedGap { expected, got }) => {
                assert_eq!((expected, got), (pos, later))
            }
            r => panic!("gap accepted: {r:?}"),
        }
        let (old_pos, old) = shipped.borrow()[0].clone();
        assert!(matches!(
            slave.write_shipped(old_pos, &old),
            Err(StoreError::ShippedGap { .. })
        ));
        // A flipped payload bit, a flipped length, a truncated frame: refused.
        for damage in 0..3 {
            let mut bad = good.to_vec();
            match damage {
                0 => bad[10] ^= 0x40,
                1 => bad[0] ^= 1,
                _ => bad.truncate(good.len() - 3),
            }
            assert!(
                matches!(
                    slave.write_shipped(pos, &bad),
                    Err(StoreError::ShippedCorrupt { .. })
                ),
                "damage {damage} accepted"
            );
            assert!(Journal::decode_shipped(pos, &bad.into()).is_err());
        }
        // Nothing of the refused batches went in.
        assert_eq!(slave.appended_position(), slave_end);
        assert_eq!(slave.next_position(), pos);
        assert_eq!(slave.stats().records_appended, before.records_appended);
        let e = slave.write_shipped(pos, &good).unwrap();
        assert_eq!(e, last.end);
        slave.wait_durable(e).await.unwrap();
        payloads.push(b"the last record".to_vec());

        master.close().await.unwrap();
        Rc::try_unwrap(slave)
            .ok()
            .expect("the tap holding the slave is gone")
            .close()
            .await
            .unwrap();

        // Both replay the same records at the same locations.
        let (m, m_replay) = Journal::open(cfg(master_dir.path())).await.unwrap();
        let (s, s_replay) = Journal::open(cfg(slave_dir.path())).await.unwrap();
        assert_eq!(m_replay.len(), payloads.len());
        assert_eq!(m_replay, s_replay);
        for (r, p) in m_replay.iter().zip(&payloads) {
            assert_eq!(&r.payload[..], &p[..]);
        }
        m.close().await.unwrap();
        s.close().await.unwrap();
    });
    // The segment files are byte-identical.
    let files = |dir: &Path| {
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().ends_with(".log"))
            .collect();
        v.sort();
        v
    };
    let names = files(master_dir.path());
    assert_eq!(names, files(slave_dir.path()));
    assert!(names.len() >= 10);
    let oversized = names
        .iter()
        .filter(|n| std::fs::metadata(slave_dir.path().join(n)).unwrap().len() > SMALL_SEGMENT)
        .count();
    assert!(oversized >= 2, "segments sized for the large records");
    for n in &names {
        let a = std::fs::read(master_dir.path().join(n)).unwrap();
        let b = std::fs::read(slave_dir.path().join(n)).unwrap();
        assert!(a == b, "segment {n:?} differs");
    }
}

// ---- Catch-up (`read_span`), `tapped_end`, `oldest_position`, `reset` ----

/// 64 KiB segments for the replication tests: a few dozen records each.
const REPL_SEGMENT: u64 = 64 * 1024;

/// A record larger than a segment and than `read_span`'s 256 KiB read window.
const HUGE_RECORD: usize = 300 * 1024 + 123;

fn repl_cfg(dir: &Path) -> JournalConfig {
    JournalConfig {
        segment_bytes: REPL_SEGMENT,
        ..cfg(dir)
    }
}

/// Appends `n` random records of 1..=6000 bytes (record `huge_at`, if any, of
/// [`HUGE_RECORD`] bytes) in random bursts, waits until all are durable, and returns
/// them with their locations.
async fn append_random(
    j: &Journal,
    rng: &mut Rng,
    n: usize,
    huge_at: Option<usize>,
) -> Vec<(Location, Vec<u8>)> {
    let mut out = Vec::new();
    let mut end = Position(0);
    for i in 0..n {
        let len = if Some(i) == huge_at {
            HUGE_RECORD
        } else {
            1 + rng.below(6000) as usize
        };
        let p: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let a = j.append(&p).unwrap();
        end = a.end;
        out.push((a.location, p));
        if rng.below(6) == 0 {
            j.wait_durable(end).await.unwrap();
        }
    }
    if end != Position(0) {
        j.wait_durable(end).await.unwrap();
    }
    out
}

/// Sends `slave` what `master`'s writer has taken and `slave` lacks, from the
/// master's files with `read_span` (spans of at most `max_bytes`, or one frame) and
/// `write_shipped`; returns the number of spans.
async fn catch_up(master: &Journal, slave: &Journal, max_bytes: usize) -> usize {
    let until = master.tapped_end();
    master.wait_durable(until).await.unwrap();
    let mut pos = slave.next_position();
    let mut spans = 0;
    while pos < until {
        let (bytes, next) = master.read_span(pos, until, max_bytes).await.unwrap();
        assert!(!bytes.is_empty() && next > pos, "no progress at {pos}");
        if bytes.len() > max_bytes {
            // Only a single frame may go over the bound.
            let records = Journal::decode_shipped(pos, &bytes).unwrap();
            let one_frame = match &records[..] {
                [] => bytes.len() == 8,
                [r] => format::framed_len(r.location.len) as usize == bytes.len(),
                _ => false,
            };
            assert!(one_frame, "{} bytes > {max_bytes} at {pos}", bytes.len());
        }
        slave.write_shipped(pos, &bytes).unwrap();
        assert_eq!(slave.next_position(), next);
        pos = next;
        spans += 1;
    }
    spans
}

fn segment_files(dir: &Path) -> Vec<std::ffi::OsString> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().ends_with(".log"))
        .collect();
    v.sort();
    v
}

/// Asserts that two closed journals have the same, byte-identical segment files;
/// returns how many.
fn assert_same_segments(a: &Path, b: &Path) -> usize {
    let names = segment_files(a);
    assert_eq!(names, segment_files(b));
    for n in &names {
        let x = std::fs::read(a.join(n)).unwrap();
        let y = std::fs::read(b.join(n)).unwrap();
        assert!(x == y, "segment {n:?} differs");
    }
    names.len()
}

/// Reopens two closed journals (recovery drops a master's pre-created empty
/// segment), checks that they replay the same records, closes them and checks their
/// files are byte-identical. Returns the replay.
async fn reopen_and_compare(a: &Path, b: &Path) -> Vec<ReplayedRecord> {
    let (ja, ra) = Journal::open(repl_cfg(a)).await.unwrap();
    let (jb, rb) = Journal::open(repl_cfg(b)).await.unwrap();
    assert_eq!(ra.len(), rb.len());
    assert!(ra == rb, "replays differ");
    ja.close().await.unwrap();
    jb.close().await.unwrap();
    assert!(assert_same_segments(a, b) > 0);
    ra
}

fn assert_replays(replay: &[ReplayedRecord], expected: &[(Location, Vec<u8>)]) {
    assert_eq!(replay.len(), expected.len(), "replayed record count");
    for (r, (loc, p)) in replay.iter().zip(expected) {
        assert_eq!(r.location, *loc);
        assert!(r.payload[..] == p[..], "payload at {loc:?}");
    }
}

#[test]
fn tapped_end_follows_the_writer_and_recovery() {
    let dir = tempfile::tempdir_in(".").unwrap();
    let mirror_dir = tempfile::tempdir_in(".").unwrap();
    let mut rng = Rng(0x7A99_ED00_1234_0001);
    rt::run_local(async {
        let (j, _) = Journal::open(repl_cfg(dir.path())).await.unwrap();
        assert_eq!(j.tapped_end(), Position::new(1, 4096));
        assert_eq!(j.oldest_position(), Position::new(1, 4096));
        let seen: Rc<RefCell<Vec<(Position, usize)>>> = Rc::default();
        {
            let seen = seen.clone();
            j.set_batch_tap(Box::new(move |pos, bytes| {
                seen.borrow_mut().push((pos, bytes.len()))
            }));
        }
        let a = j.append(b"first").unwrap();
        // Not taken by the writer yet (no await since the append).
        assert_eq!(j.tapped_end(), Position::new(1, 4096));
        j.wait_durable(a.end).await.unwrap();
        assert_eq!(j.tapped_end(), a.end);
        append_random(&j, &mut rng, 100, None).await;
        let (pos, len) = *seen.borrow().last().unwrap();
        assert_eq!(
            j.tapped_end(),
            Position::new(pos.segment(), pos.offset() + len as u32)
        );
        assert_eq!(j.tapped_end(), j.appended_position());
        assert!(j.segments().len() >= 4);
        j.close().await.unwrap();

        // After a reopen: the recovered end; then it moves without any tap.
        let (j, _) = Journal::open(repl_cfg(dir.path())).await.unwrap();
        assert_eq!(j.tapped_end(), j.durable_position());
        assert_eq!(j.tapped_end(), j.appended_position());
        let b = j.append(b"after reopen").unwrap();
        j.wait_durable(b.end).await.unwrap();
        assert_eq!(j.tapped_end(), b.end);

        // A log ending with a roll marker: `read_span` stops after the first roll
        // marker, so one span closes segment 1 of a mirror.
        let (m, _) = Journal::open(repl_cfg(mirror_dir.path())).await.unwrap();
        let (bytes, next) = j
            .read_span(Position::new(1, 4096), j.tapped_end(), usize::MAX)
            .await
            .unwrap();
        assert_eq!(next, Position::new(2, 4096));
        assert_eq!(bytes[bytes.len() - 8..bytes.len() - 4], [0xff; 4]);
        let end = m.write_shipped(Position::new(1, 4096), &bytes).unwrap();
        assert_eq!(end, Position::new(1, 4096 + bytes.len() as u32));
        m.wait_durable(end).await.unwrap();
        assert_eq!(m.tapped_end(), end);
        m.close().await.unwrap();
        let (m, _) = Journal::open(repl_cfg(mirror_dir.path())).await.unwrap();
        assert_eq!(
            m.tapped_end(),
            end,
            "recovered end includes the roll marker"
        );
        assert_eq!(m.durable_position(), end);
        assert_eq!(m.next_position(), Position::new(2, 4096));
        assert_eq!(m.oldest_position(), Position::new(1, 4096));
        m.close().await.unwrap();
        j.close().await.unwrap();
    });
}

/// A second journal rebuilt from a master's files alone, span by span, for several
/// span bounds (one smaller than any record, others smaller than the huge record).
#[test]
fn catch_up_with_read_span_makes_a_byte_identical_mirror() {
    let master_dir = tempfile::tempdir_in(".").unwrap();
    let maxes = [1usize, 3000, 20_000, 256 << 10];
    let slave_dirs: Vec<_> = maxes
        .iter()
        .map(|_| tempfile::tempdir_in(".").unwrap())
        .collect();
    let mut rng = Rng(0xCA7C_0000_5EED_0003);
    rt::run_local(async {
        let (master, _) = Journal::open(repl_cfg(master_dir.path())).await.unwrap();
        let mut records = append_random(&master, &mut rng, 150, Some(70)).await;
        let mut slaves = Vec::new();
        for d in &slave_dirs {
            let (s, replay) = Journal::open(repl_cfg(d.path())).await.unwrap();
            assert!(replay.is_empty());
            assert_eq!(s.next_position(), master.oldest_position());
            slaves.push(s);
        }
        for (s, max) in slaves.iter().zip(maxes) {
            let spans = catch_up(&master, s, max).await;
            if max == 1 {
                assert!(spans > 150, "one frame per span: {spans}");
            }
            assert_eq!(s.next_position(), master.next_position());
            assert_eq!(s.appended_position(), master.appended_position());
        }
        // More records; some are not even taken by the writer when a catch-up
        // starts (it reads up to `tapped_end`, waiting for it to be durable).
        records.extend(append_random(&master, &mut rng, 150, None).await);
        for _ in 0..20 {
            let len = 1 + rng.below(6000) as usize;
            let p: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            records.push((master.append(&p).unwrap().location, p));
        }
        for (s, max) in slaves.iter().zip(maxes) {
            catch_up(&master, s, max).await;
        }
        master
            .wait_durable(master.appended_position())
            .await
            .unwrap();
        assert!(master.segments().len() >= 10, "{:?}", master.segments());
        for (s, max) in slaves.iter().zip(maxes) {
            catch_up(&master, s, max).await;
            assert_eq!(s.next_position(), master.next_position());
            assert_eq!(s.appended_position(), master.appended_position());
        }
        for s in slaves {
            s.wait_durable(s.appended_position()).await.unwrap();
            s.close().await.unwrap();
        }
        master.close().await.unwrap();
        for d in &slave_dirs {
            let replay = reopen_and_compare(master_dir.path(), d.path()).await;
            assert_replays(&replay, &records);
        }
    });
    let oversized = segment_files(master_dir.path())
        .iter()
        .filter(|n| std::fs::metadata(master_dir.path().join(n)).unwrap().len() > REPL_SEGMENT)
        .count();
    assert_eq!(oversized, 1, "the huge record has a segment of its own");
}

/// What the mirror's copy of the master's tap does with each batch.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Live,
    Skip,
    Buffer,
}

/// Live shipping, a gap (batches lost), the master reclaiming old segments, a reset
/// of the mirror to the master's oldest segment, catch-up from the files while new
/// batches are buffered, then live shipping again: byte-identical at the end.
#[test]
fn live_gap_reset_catch_up_and_live_again() {
    let master_dir = tempfile::tempdir_in(".").unwrap();
    let slave_dir = tempfile::tempdir_in(".").unwrap();
    let mut rng = Rng(0x11FE_6A90_0000_0005);
    rt::run_local(async {
        let (master, _) = Journal::open(repl_cfg(master_dir.path())).await.unwrap();
        let (slave, _) = Journal::open(repl_cfg(slave_dir.path())).await.unwrap();
        let slave = Rc::new(slave);
        let mode = Rc::new(Cell::new(Mode::Live));
        let buffered: Rc<RefCell<Vec<(Position, bytes::Bytes)>>> = Rc::default();
        {
            let (slave, mode, buffered) = (slave.clone(), mode.clone(), buffered.clone());
            master.set_batch_tap(Box::new(move |pos, bytes| match mode.get() {
                Mode::Live => {
                    slave.write_shipped(pos, &bytes).unwrap();
                }
                Mode::Skip => {}
                Mode::Buffer => buffered.borrow_mut().push((pos, bytes)),
            }));
        }
        let mut records = append_random(&master, &mut rng, 80, None).await;
        assert_eq!(slave.next_position(), master.next_position());

        // The mirror misses batches; the master moves on and reclaims old segments.
        mode.set(Mode::Skip);
        records.extend(append_random(&master, &mut rng, 150, Some(100)).await);
        let behind = slave.next_position();
        assert!(behind < master.next_position());
        master
            .remove_segments_before(master.active_segment() - 3)
            .await
            .unwrap();
        let oldest = master.oldest_position();
        assert_eq!(oldest, Position::new(master.segments()[0], 4096));
        assert!(
            oldest.segment() > behind.segment(),
            "the mirror's next bytes are gone from the master"
        );
        records.retain(|(loc, _)| loc.segment >= oldest.segment());
        assert!(matches!(
            master.read_span(behind, master.tapped_end(), 1 << 20).await,
            Err(StoreError::InvalidLocation(_))
        ));

        // Hand-off: new batches are buffered from this point, and everything before
        // `until` is in the master's files once durable.
        mode.set(Mode::Buffer);
        let until = master.tapped_end();
        // Appended now, tapped (into the buffer) while the reset and catch-up await.
        for _ in 0..30 {
            let len = 1 + rng.below(6000) as usize;
            let p: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            records.push((master.append(&p).unwrap().location, p));
        }
        slave.reset(oldest).await.unwrap();
        assert_eq!(slave.next_position(), oldest);
        assert_eq!(slave.oldest_position(), oldest);
        assert!(slave.segments().is_empty());
        assert!(segment_files(slave_dir.path()).is_empty());
        master.wait_durable(until).await.unwrap();
        let mut pos = oldest;
        while pos < until {
            let (bytes, next) = master.read_span(pos, until, 40_000).await.unwrap();
            slave.write_shipped(pos, &bytes).unwrap();
            pos = next;
        }
        assert!(!buffered.borrow().is_empty(), "batches arrived meanwhile");
        for (p, b) in buffered.borrow_mut().drain(..) {
            assert_eq!(p, slave.next_position());
            slave.write_shipped(p, &b).unwrap();
        }
        // (No await since the drain: nothing was tapped in between.)
        mode.set(Mode::Live);
        records.extend(append_random(&master, &mut rng, 100, None).await);
        assert_eq!(slave.next_position(), master.next_position());
        assert_eq!(slave.appended_position(), master.appended_position());
        slave.wait_durable(slave.appended_position()).await.unwrap();

        master.set_batch_tap(Box::new(|_, _| {}));
        master.close().await.unwrap();
        Rc::try_unwrap(slave)
            .ok()
            .expect("the tap holding the slave is gone")
            .close()
            .await
            .unwrap();
        let replay = reopen_and_compare(master_dir.path(), slave_dir.path()).await;
        assert_replays(&replay, &records);
    });
}

/// Flips one byte of a segment file.
fn flip_byte(dir: &Path, segment: u64, at: u64) {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(segment_path(dir, segment))
        .unwrap();
    let mut b = [0u8; 1];
    f.seek(SeekFrom::Start(at)).unwrap();
    f.read_exact(&mut b).unwrap();
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(&[b[0] ^ 0x10]).unwrap();
    f.sync_all().unwrap();
}

#[test]
fn read_span_refuses_bad_arguments_removed_segments_and_damage() {
    let dir = tempfile::tempdir_in(".").unwrap();
    let mut rng = Rng(0xBAD5_9A40_0000_0007);
    rt::run_local(async {
        let (j, _) = Journal::open(repl_cfg(dir.path())).await.unwrap();
        let records = append_random(&j, &mut rng, 150, None).await;
        let until = j.tapped_end();
        assert_eq!(until, j.durable_position());
        let start = Position::new(1, 4096);
        let invalid = |r: Result<(bytes::Bytes, Position), StoreError>| {
            matches!(r, Err(StoreError::InvalidLocation(_)))
        };
        // Bad arguments.
        assert!(invalid(
            j.read_span(Position::new(1, 4000), until, 1 << 20).await
        ));
        assert!(invalid(
            j.read_span(Position::new(1, 4100), until, 1 << 20).await
        ));
        assert!(invalid(
            j.read_span(Position::new(0, 4096), until, 1 << 20).await
        ));
        assert!(invalid(j.read_span(until, start, 1 << 20).await));
        let beyond = Position::new(until.segment(), until.offset() + 8);
        assert!(invalid(j.read_span(start, beyond, 1 << 20).await));
        let (first, _) = &records[0];
        let inside = Position::new(1, first.offset + 8);
        assert!(invalid(j.read_span(start, inside, 1 << 20).await));
        let (b, p) = j.read_span(start, start, 1 << 20).await.unwrap();
        assert!(b.is_empty() && p == start);
        // A span up to a record boundary in the first segment stops exactly there.
        let (second, _) = &records[1];
        let (b, p) = j
            .read_span(start, second.position(), 1 << 20)
            .await
            .unwrap();
        assert_eq!(p, second.position());
        assert_eq!(b.len() as u32, second.offset - 4096);

        let in_segment = |s: u64| {
            records
                .iter()
                .filter(move |(l, _)| l.segment == s)
                .map(|(l, _)| *l)
        };
        let corrupt = |r: Result<(bytes::Bytes, Position), StoreError>| {
            matches!(r, Err(StoreError::Corrupt { .. }))
        };
        // A flipped payload byte in segment 3: spans reaching it fail, spans before
        // it do not.
        let victim = in_segment(3).nth(2).unwrap();
        flip_byte(
            dir.path(),
            3,
            u64::from(victim.offset) + 8 + u64::from(victim.len / 2),
        );
        let seg3 = Position::new(3, 4096);
        assert!(corrupt(j.read_span(seg3, until, 1 << 20).await));
        assert!(corrupt(j.read_span(victim.position(), until, 1).await));
        let (_, p) = j.read_span(seg3, victim.position(), 1 << 20).await.unwrap();
        assert_eq!(p, victim.position());
        // A flipped padding byte (not covered by the checksum) in segment 4.
        let padded = in_segment(4).find(|l| l.len % 8 != 0).unwrap();
        flip_byte(dir.path(), 4, u64::from(padded.end().offset()) - 1);
        assert!(corrupt(j.read_span(padded.position(), until, 1).await));
        // A flipped length: the frame no longer verifies.
        let victim = in_segment(5).nth(1).unwrap();
        flip_byte(dir.path(), 5, u64::from(victim.offset) + 1);
        assert!(corrupt(
            j.read_span(Position::new(5, 4096), until, 1 << 20).await
        ));
        // A zeroed frame (the end of the log) before the roll marker of segment 6.
        let victim = in_segment(6).nth(1).unwrap();
        {
            use std::io::{Seek, SeekFrom, Write};
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .open(segment_path(dir.path(), 6))
                .unwrap();
            f.seek(SeekFrom::Start(u64::from(victim.offset))).unwrap();
            f.write_all(&[0u8; 8]).unwrap();
            f.sync_all().unwrap();
        }
        assert!(corrupt(
            j.read_span(Position::new(6, 4096), until, 1 << 20).await
        ));

        // Removed segments.
        j.remove_segments_before(3).await.unwrap();
        assert_eq!(j.oldest_position(), seg3);
        assert!(invalid(j.read_span(start, until, 1 << 20).await));
        assert!(invalid(
            j.read_span(Position::new(2, 4096), until, 1 << 20).await
        ));
        // Undamaged segments still read.
        let seg7 = Position::new(7, 4096);
        let (b, _) = j.read_span(seg7, until, 1 << 20).await.unwrap();
        assert!(!b.is_empty());
        j.close().await.unwrap();
    });
}

#[test]
fn reset_refuses_bad_positions_and_writes_while_running() {
    let dir = tempfile::tempdir_in(".").unwrap();
    rt::run_local(async {
        let (j, _) = Journal::open(repl_cfg(dir.path())).await.unwrap();
        for bad in [
            Position::new(3, 4104),
            Position::new(3, 0),
            Position::new(0, 4096),
        ] {
            assert!(matches!(j.reset(bad).await, Err(StoreError::Config(_))));
        }
        for i in 0..50 {
            j.append(&payload(i)).unwrap();
        }
        {
            // The first poll marks the reset; it then waits for the writer to drain.
            let mut reset = std::pin::pin!(j.reset(Position::new(9, 4096)));
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            assert!(reset.as_mut().poll(&mut cx).is_pending());
            assert!(matches!(j.append(b"x"), Err(StoreError::Resetting)));
            assert!(matches!(
                j.write_shipped(j.next_position(), &[]),
                Err(StoreError::Resetting)
            ));
            reset.await.unwrap();
        }
        assert_eq!(j.next_position(), Position::new(9, 4096));
        assert_eq!(j.durable_position(), Position::new(9, 4096));
        assert_eq!(j.tapped_end(), Position::new(9, 4096));
        assert!(segment_files(dir.path()).is_empty());
        // Appends work again, in the new segment.
        let a = j.append(b"after the reset").unwrap();
        assert_eq!(a.location.position(), Position::new(9, 4096));
        j.wait_durable(a.end).await.unwrap();
        assert_eq!(j.segments()[0], 9);
        j.close().await.unwrap();
        let (j, replay) = Journal::open(repl_cfg(dir.path())).await.unwrap();
        assert_eq!(replay.len(), 1);
        assert_eq!(&replay[0].payload[..], b"after the reset");
        j.close().await.unwrap();
    });
}

/// A slave with its own (diverged) history resets to a master's oldest segment,
/// catches up, and crashes (dropped without close): reopening recovers exactly what
/// was shipped after the reset. A reset followed by a crash before anything reached
/// the disk leaves an empty directory, which opens at `first_segment`.
#[test]
fn reset_then_crash_recovers_only_what_was_shipped_after_it() {
    let master_dir = tempfile::tempdir_in(".").unwrap();
    let slave_dir = tempfile::tempdir_in(".").unwrap();
    let mut rng = Rng(0x4E5E_7C4A_5800_0009);
    let oldest = rt::run_local(async {
        let (master, _) = Journal::open(repl_cfg(master_dir.path())).await.unwrap();
        append_random(&master, &mut rng, 200, None).await;
        master
            .remove_segments_before(master.active_segment() - 3)
            .await
            .unwrap();
        let oldest = master.oldest_position();
        assert!(oldest.segment() > 2);
        let (slave, _) = Journal::open(repl_cfg(slave_dir.path())).await.unwrap();
        // The slave's own records, in segments whose ids the master's log reuses.
        let own = append_random(&slave, &mut rng, 150, None).await;
        assert!(own.last().unwrap().0.segment > oldest.segment());
        slave.reset(oldest).await.unwrap();
        catch_up(&master, &slave, 50_000).await;
        assert_eq!(slave.next_position(), master.next_position());
        slave.wait_durable(slave.appended_position()).await.unwrap();
        master.close().await.unwrap();
        drop(slave);
        oldest
    });
    rt::run_local(async {
        let (m, m_replay) = Journal::open(repl_cfg(master_dir.path())).await.unwrap();
        let (s, s_replay) = Journal::open(repl_cfg(slave_dir.path())).await.unwrap();
        assert!(!s_replay.is_empty());
        assert_eq!(s_replay[0].location.position(), oldest);
        assert!(s_replay == m_replay, "the slave recovered the master's log");
        m.close().await.unwrap();
        s.close().await.unwrap();
    });
    assert_same_segments(master_dir.path(), slave_dir.path());

    // Reset, then crash before any batch: nothing is left.
    let again = Position::new(oldest.segment() + 40, 4096);
    rt::run_local(async {
        let (s, _) = Journal::open(repl_cfg(slave_dir.path())).await.unwrap();
        s.reset(again).await.unwrap();
        drop(s);
    });
    assert!(segment_files(slave_dir.path()).is_empty());
    rt::run_local(async {
        let mut c = repl_cfg(slave_dir.path());
        c.first_segment = again.segment();
        let (s, replay) = Journal::open(c).await.unwrap();
        assert!(replay.is_empty());
        assert_eq!(s.next_position(), again);
        assert_eq!(s.tapped_end(), again);
        assert_eq!(s.oldest_position(), again);
        s.close().await.unwrap();
    });
}

/// An empty directory opened with `first_segment` mirrors a master whose oldest
/// segment is not 1 (here the segment sized for a huge record) straight away.
#[test]
fn empty_journal_mirrors_from_a_later_first_segment() {
    let master_dir = tempfile::tempdir_in(".").unwrap();
    let slave_dir = tempfile::tempdir_in(".").unwrap();
    let mut rng = Rng(0xE4B7_1000_0000_000B);
    rt::run_local(async {
        let (master, _) = Journal::open(repl_cfg(master_dir.path())).await.unwrap();
        let mut records = append_random(&master, &mut rng, 120, Some(60)).await;
        let huge = records[60].0;
        assert_eq!(huge.offset, 4096, "the huge record opens its segment");
        master.remove_segments_before(huge.segment).await.unwrap();
        assert_eq!(master.oldest_position(), huge.position());
        records.retain(|(l, _)| l.segment >= huge.segment);

        // Without `first_segment` the mirror would start at segment 1.
        let mut c = repl_cfg(slave_dir.path());
        c.first_segment = huge.segment;
        let (slave, replay) = Journal::open(c).await.unwrap();
        assert!(replay.is_empty());
        assert!(
            segment_files(slave_dir.path()).is_empty(),
            "created on first use"
        );
        assert_eq!(slave.next_position(), master.oldest_position());
        assert_eq!(slave.oldest_position(), master.oldest_position());
        catch_up(&master, &slave, 1 << 20).await;
        assert_eq!(slave.next_position(), master.next_position());
        slave.wait_durable(slave.appended_position()).await.unwrap();
        slave.close().await.unwrap();
        master.close().await.unwrap();
        let replay = reopen_and_compare(master_dir.path(), slave_dir.path()).await;
        assert_replays(&replay, &records);
    });
}
