//! Journal group-commit throughput: for each batch size, append that many 1 KiB
//! records, wait until they are durable, repeat for a fixed time. Prints a Markdown
//! table of records/s, fdatasyncs/s and commit latency (append of the first record
//! to durable of the last; one write + fdatasync each).
//!
//! Writes into a temp dir under the current directory: O_DIRECT fails on tmpfs.
//! Run: `cargo bench --bench journal_append`.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tandem::rt;
use tandem::store::{Journal, JournalConfig};

const RECORD_BYTES: usize = 1024;
const BATCH_SIZES: [usize; 4] = [1, 8, 64, 256];
const RUN_PER_SIZE: Duration = Duration::from_secs(4);
/// The first commits include timer and allocation warm-up (design/GLOMMIO.md).
const WARMUP_COMMITS: usize = 50;

struct Row {
    batch: usize,
    records_per_s: f64,
    fsyncs_per_s: f64,
    mib_per_s: f64,
    p50_us: u64,
    p99_us: u64,
}

async fn run_one(batch: usize) -> Row {
    let dir = tempfile::tempdir_in(".").expect("temp dir under the current directory");
    let (journal, _) = Journal::open(JournalConfig::new(dir.path()))
        .await
        .expect("open journal");
    let payload = vec![0xabu8; RECORD_BYTES];
    let mut hist = Histogram::<u64>::new_with_bounds(1, 10_000_000, 3).expect("histogram");

    let commit = |j: &Journal| {
        let mut last = None;
        for _ in 0..batch {
            last = Some(j.append(&payload).expect("append"));
        }
        last.expect("batch >= 1").end
    };
    for _ in 0..WARMUP_COMMITS {
        let end = commit(&journal);
        journal.wait_durable(end).await.expect("durable");
    }

    let before = journal.stats();
    let start = Instant::now();
    let mut records = 0u64;
    while start.elapsed() < RUN_PER_SIZE {
        let t = Instant::now();
        let end = commit(&journal);
        journal.wait_durable(end).await.expect("durable");
        hist.record(t.elapsed().as_micros().max(1) as u64)
            .expect("record");
        records += batch as u64;
    }
    let secs = start.elapsed().as_secs_f64();
    let after = journal.stats();
    journal.close().await.expect("close");
    Row {
        batch,
        records_per_s: records as f64 / secs,
        fsyncs_per_s: (after.fsyncs - before.fsyncs) as f64 / secs,
        mib_per_s: (records as f64 * RECORD_BYTES as f64) / secs / (1 << 20) as f64,
        p50_us: hist.value_at_quantile(0.5),
        p99_us: hist.value_at_quantile(0.99),
    }
}

fn main() {
    let rows = rt::run_local(async {
        let mut rows = Vec::new();
        for b in BATCH_SIZES {
            rows.push(run_one(b).await);
        }
        rows
    });
    println!("\njournal_append: {RECORD_BYTES}-byte records, one write+fdatasync per batch, 32 MiB preallocated segments\n");
    println!(
        "| records/batch | records/s | fdatasync/s | MiB/s | commit p50 (µs) | commit p99 (µs) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {:.0} | {:.0} | {:.1} | {} | {} |",
            r.batch, r.records_per_s, r.fsyncs_per_s, r.mib_per_s, r.p50_us, r.p99_us
        );
    }
}
