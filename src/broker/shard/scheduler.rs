//! The scheduler task: fires the shard's due scheduled jobs (`broker::scheduler`),
//! reading each job's message back from the journal first. Runs only while the shard
//! serves; after a restart or a takeover the jobs recovered or replicated are due at
//! their times, and those already late fire at once.

use std::rc::Rc;
use std::time::Duration;

use crate::rt;

use super::disk_reads::load_scheduled;
use super::journal_sink::Sink;
use super::mesh::process_outputs;
use super::Shared;

/// How often due jobs are looked for: the scheduling precision.
const TICK: Duration = Duration::from_millis(50);
/// Jobs fired per look, so a burst of due jobs does not hold the shard.
const MAX_PER_TICK: usize = 512;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub(super) async fn scheduler(shared: Rc<Shared>) {
    loop {
        rt::sleep(TICK).await;
        if !shared.serving.get() {
            continue;
        }
        let due = shared
            .core
            .borrow_mut()
            .take_due_jobs(now_ms(), MAX_PER_TICK);
        for (key, loc) in due {
            let msg = load_scheduled(&shared.journal, loc, key).await;
            if !shared.serving.get() {
                // Stopped serving during the read: nothing may be journaled here now.
                shared.core.borrow_mut().unfire_job(key);
                continue;
            }
            {
                let mut sink = Sink(&shared);
                shared.core.borrow_mut().fire(key, msg, now_ms(), &mut sink);
            }
            process_outputs(&shared);
            rt::yield_if_needed().await;
        }
    }
}
