//! The ticker: periodic work that no request triggers. Expiry, publishing the
//! numbers the status endpoint shows, and journal reclamation (deleting segments
//! nothing live needs any more, moving the few live records out of a sparse old one).

use std::rc::Rc;
use std::time::Duration;

use crate::metrics::JournalCounters;
use crate::rt;

use super::disk_reads::{load_scheduled, resolve};
use super::journal_sink::Sink;
use super::mesh::process_outputs;
use super::Shared;

/// How often the shard expires messages and reclaims journal segments.
const TICK: Duration = Duration::from_millis(500);

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Periodic work: expiry, publishing status numbers, and journal reclamation (delete
/// the oldest segments once nothing live is in them; re-journal the few live records
/// of a sparse old segment so it can go too).
pub(super) async fn ticker(shared: Rc<Shared>) {
    let mut ticks: u64 = 0;
    loop {
        rt::sleep(TICK).await;
        if !shared.serving.get() {
            // Held or following a master: nothing here may journal on its own; old
            // segments go once the shipped records no longer pin them.
            publish_stats(&shared);
            reclaim_unpinned(&shared).await;
            continue;
        }
        ticks += 1;
        {
            let mut sink = Sink(&shared);
            shared.core.borrow_mut().tick(now_ms(), &mut sink);
        }
        if ticks == 120 {
            // Every shard has long since asked about transactions prepared before the
            // restart.
            shared.core.borrow_mut().forget_recovered_outcomes();
        }
        process_outputs(&shared);
        publish_stats(&shared);
        reclaim(&shared).await;
    }
}

/// Copies the numbers the status endpoint shows into the shard's [`ShardStats`].
pub(super) fn publish_stats(shared: &Shared) {
    let disk_full = shared.journal.disk_full();
    if disk_full.is_some() != shared.disk_full_published.get() {
        // Before /status shows it: by then every shard refuses.
        shared
            .limit_stats
            .set_disk_full(disk_full.is_some(), disk_full.as_deref().unwrap_or(""));
        shared.disk_full_published.set(disk_full.is_some());
    }
    let disk_bytes = shared.journal.disk_bytes();
    let was = shared.disk_bytes_published.replace(disk_bytes);
    if disk_bytes != was {
        shared
            .limit_stats
            .add_store_bytes(disk_bytes as i64 - was as i64);
    }
    let j = shared.journal.stats();
    shared.stats.set_journal(JournalCounters {
        records: j.records_appended,
        appended_bytes: j.bytes_appended,
        written_bytes: j.bytes_written,
        fsyncs: j.fsyncs,
        disk_full,
        // Counted by the shard's resets, not here.
        ..JournalCounters::default()
    });
    let core = shared.core.borrow();
    shared.stats.set_memory_used(core.mem_used() as u64);
    shared
        .stats
        .set_wildcard_subscriptions(core.wildcard_subscriptions() as u64);
    if shared.stats.wants_destinations() {
        shared.stats.set_destinations(core.destination_stats());
    }
}

/// Deletes the oldest segments that hold nothing live; true if it deleted any.
async fn reclaim_unpinned(shared: &Rc<Shared>) -> bool {
    let segments = shared.journal.segments();
    let active = shared.journal.active_segment();
    // A catch-up in progress reads from this segment on.
    let keep_from = shared.catch_up_from.get().unwrap_or(u64::MAX);
    let mut cut = None;
    for &seg in &segments {
        if seg >= active || seg >= keep_from || shared.core.borrow().is_pinned(seg) {
            break;
        }
        cut = Some(seg + 1);
    }
    let Some(cut) = cut else { return false };
    // Only up to the first segment that is still needed: later acknowledgements
    // must not outlive the messages they remove.
    let next_kept = segments
        .iter()
        .copied()
        .find(|s| *s >= cut)
        .unwrap_or(active);
    if let Err(e) = shared.journal.remove_segments_before(next_kept).await {
        tracing::error!(error = %e, "cannot remove old journal segments");
    }
    true
}

async fn reclaim(shared: &Rc<Shared>) {
    if reclaim_unpinned(shared).await || shared.catch_up_from.get().is_some() {
        return;
    }
    let segments = shared.journal.segments();
    let active = shared.journal.active_segment();
    // The oldest segment is pinned. If it is mostly garbage and the journal keeps
    // more than a few segments, move its few live records forward so it can go;
    // a mostly live segment stays (moving it would only rewrite the backlog).
    let closed: Vec<u64> = segments.iter().copied().filter(|s| *s < active).collect();
    if closed.len() < 3 {
        return;
    }
    let oldest = closed[0];
    if shared.core.borrow().live_bytes(oldest) > shared.segment_bytes / 4 {
        return;
    }
    let moves = shared.core.borrow().entries_in_segment(oldest);
    const MAX_MOVES_PER_TICK: usize = 20_000;
    for r in moves.into_iter().take(MAX_MOVES_PER_TICK) {
        let Some(msg) = resolve(shared, r.body.clone(), &r.destination, r.seq).await else {
            continue;
        };
        let mut sink = Sink(shared);
        shared.core.borrow_mut().relocate(r, msg, &mut sink);
        rt::yield_if_needed().await;
    }
    {
        let mut sink = Sink(shared);
        shared
            .core
            .borrow_mut()
            .relocate_durables(oldest, &mut sink);
    }
    // Scheduled jobs whose message is in that segment: re-journaled with their
    // current state (a job firing now is moved at a later tick).
    let jobs = shared.core.borrow().jobs_in_segment(oldest);
    for (key, loc) in jobs.into_iter().take(MAX_MOVES_PER_TICK) {
        let Some(msg) = load_scheduled(&shared.journal, loc, key).await else {
            continue;
        };
        let mut sink = Sink(shared);
        shared.core.borrow_mut().relocate_job(key, msg, &mut sink);
        rt::yield_if_needed().await;
    }
    process_outputs(shared);
}
