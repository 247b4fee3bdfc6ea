//! Journal behaviour through the public API: round trips across segments, group
//! commit, read-back, torn and zero-filled tails, segment removal.

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use tandem::rt;
use tandem::store::{Journal, JournalConfig, Location, Position, StoreError};

/// 16 KiB segments: a header block and three blocks of records, so a few dozen
/// records span several segments.
const SMALL_SEGMENT: u64 = 16 * 1024;

fn cfg(dir: &Path) -> JournalConfig {
    JournalConfig {
        dir: dir.to_path_buf(),
        segment_bytes: SMALL_SEGMENT,
        max_batch_bytes: 1 << 20,
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
    let (j, replay) = Journal::open(cfg(dir)).await.unwrap();
    assert_eq!(replay.len(), n, "replayed record count");
    for (i, r) in replay.iter().enumerate() {
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

#[test]
fn torn_record_in_a_middle_segment_ends_the_log() {
    let dir = tempfile::tempdir_in(".").unwrap();
    rt::run_local(async {
        let (j, _) = Journal::open(cfg(dir.path())).await.unwrap();
        let mut locs = append_range(&j, 0, 60).await;
        j.close().await.unwrap();
        let middle = locs[0].segment + 1;
        let r = locs.iter().position(|l| l.segment == middle).unwrap() + 1;
        damage(dir.path(), locs[r], &mut Rng(7), 1);

        reopen_expect(dir.path(), &locs, r).await;
        let (j, _) = Journal::open(cfg(dir.path())).await.unwrap();
        assert_eq!(j.active_segment(), middle);
        assert!(!segment_path(dir.path(), middle + 2).exists());
        locs.truncate(r);
        locs.extend(append_range(&j, r as u64, r as u64 + 30).await);
        j.close().await.unwrap();
        reopen_expect(dir.path(), &locs, r + 30).await;
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
