//! Replication hooks: the master side (begin and stop shipping journal batches, feed
//! a slave's catch-up, hold replies for its acknowledgements) and the slave side
//! (apply shipped batches and volatile changes, start over from the master's log,
//! setting aside records the master never had).
//! `node` and `replication` drive a shard only through these.
//!
//! The glue (`node::shard_glue`) also needs three journal operations:
//! [`Shard::next_position`], [`Shard::wait_durable`] and [`Shard::read_span`]. They
//! stay thin pass-throughs, grouped in their own `impl` block below, rather than one
//! `Shard::journal() -> &Journal` accessor: that would hand the glue appends, resets
//! and batch taps too, which only the shard may drive. Three named methods keep the
//! seam exactly as wide as replication uses it.

use bytes::Bytes;

use crate::broker::core::ShardCore;
use crate::broker::diverged::Analysis;
use crate::broker::record::{DecodeError, Record};
use crate::store::diverged::{self, DivergedSet};
use crate::store::{Journal, Position, StoreError};

use super::journal_sink::apply_payload;
use super::replica_gate::Grant;
use super::ticker::publish_stats;
use super::Shard;

impl Shard {
    // ---- master side of replication ----

    /// A slave attaches: from now on every journal batch is shipped. Returns where
    /// the slave's copy must start (`slave_has` if this journal still holds it, else
    /// the oldest retained segment) and where the catch-up stream ends and live
    /// batches begin.
    pub fn begin_shipping(&self, slave_has: Option<Position>) -> (Position, Position) {
        let j = &self.shared.journal;
        self.shared.shipping.set(true);
        let until = j.tapped_end();
        let oldest = j.oldest_position();
        // The slave holds a prefix of this master's log (same epoch); it can resume
        // if that prefix is still here. It may also be just past a roll marker that
        // ends what was tapped.
        let past_roll = |p: Position| p.offset() == 4096 && p.segment() == until.segment() + 1;
        let start = match slave_has {
            Some(p) if p >= oldest && (p <= until || past_roll(p)) => p,
            _ => oldest,
        };
        self.shared.catch_up_from.set(Some(start.segment()));
        (start, until)
    }

    /// The catch-up has been read: old segments may be reclaimed again.
    pub fn end_catch_up(&self) {
        self.shared.catch_up_from.set(None);
    }

    /// From now on a reply waits for the slave as well as the local fsync. Returns
    /// the journal's end: replies for records before it may have gone out without
    /// the slave, so the slave is in sync once it holds everything up to there.
    pub fn require_replica(&self) -> Position {
        self.shared.replica.require();
        self.shared.journal.appended_position()
    }

    /// The slave holds everything before `pos`.
    pub fn replica_acked(&self, pos: Position) {
        self.shared.replica.acked(pos);
    }

    /// The replication core's grant to confirm without the slave ([`Grant`]).
    pub fn set_grant(&self, grant: Grant) {
        self.shared.replica.set_grant(grant);
    }

    /// The slave is gone: stop shipping; replies waiting for it wait for a grant.
    pub fn stop_shipping(&self) {
        self.shared.shipping.set(false);
        self.shared.catch_up_from.set(None);
        self.shared.replica.detach();
    }

    // ---- slave side ----

    /// Appends a batch the master shipped to this journal (byte for byte, at the
    /// same position) and applies its records, as recovery would. Returns the end to
    /// wait on for durability.
    pub fn apply_shipped(&self, start: Position, bytes: &Bytes) -> Result<Position, ApplyError> {
        let shared = &self.shared;
        let records = Journal::decode_shipped(start, bytes).map_err(ApplyError::Batch)?;
        let end = shared
            .journal
            .write_shipped(start, bytes)
            .map_err(ApplyError::Batch)?;
        let mut core = shared.core.borrow_mut();
        for r in records {
            apply_payload(&mut core, &r.payload, r.location);
        }
        // Applying produces nothing a slave acts on (nobody is connected here).
        core.drain();
        Ok(end)
    }

    /// Applies a change the master did not journal (a non-persistent message or its
    /// removal): held in memory only, as on the master.
    pub fn apply_volatile(&self, record: &Bytes) -> Result<(), ApplyError> {
        let rec = Record::decode(record).map_err(ApplyError::Volatile)?;
        let mut core = self.shared.core.borrow_mut();
        core.apply(rec, None);
        core.drain();
        Ok(())
    }

    /// Throws the journal and the state away; the next shipped batch starts at
    /// `start` (the master's oldest retained segment).
    pub async fn reset(&self, start: Position) -> Result<(), StoreError> {
        self.shared.journal.reset(start).await?;
        self.fresh_core();
        Ok(())
    }

    /// [`Shard::reset`] for a slave whose log diverged from its master's at `from`
    /// (byte-identical before it; nothing at or after it is on the master), `epoch`
    /// being the epoch this node wrote its log under. If records diverged, the old log
    /// is first set aside, never deleted, into `<journal dir>/diverged-e<epoch>-<unix
    /// ms>/` (see `store::diverged`), logged at WARN with what it holds and counted in
    /// `/metrics` (`tandem_journal_diverged_*`); `tandem journal replay-diverged`
    /// resends its messages. Nothing diverged (`None`): exactly `reset(start)`.
    ///
    /// `from` = `Position(0)` (the divergence point is unknown): the whole log counts
    /// as diverged. If setting aside fails, nothing was deleted and the journal and
    /// state are as they were (the error says why).
    pub async fn reset_diverged(
        &self,
        start: Position,
        from: Position,
        epoch: u64,
    ) -> Result<Option<DivergedSet>, StoreError> {
        let shared = &self.shared;
        let analysis = Box::new(Analysis::new(false));
        let set = shared
            .journal
            .reset_diverged(start, from, epoch, analysis)
            .await?;
        self.fresh_core();
        if let Some(set) = &set {
            let info = &set.info;
            let messages = info.count("messages").unwrap_or(0);
            if set.reused {
                tracing::warn!(shard = shared.shard, dir = %set.dir.display(), "journal reset: its diverged records were already set aside by an interrupted reset; nothing set aside again");
            } else {
                tracing::warn!(
                    shard = shared.shard,
                    records = info.records,
                    messages,
                    removed = info.count("removed").unwrap_or(0),
                    in_doubt = info.count("in_doubt").unwrap_or(0),
                    from = %info.from,
                    end = %info.end,
                    dir = %set.dir.display(),
                    "this node held journal records its new master never had (a split brain: both \
                     served); they were set aside, not deleted. Resend their messages with \
                     `tandem journal replay-diverged {} --url <broker URL>` (README, \"Diverged \
                     records after a split brain\")",
                    set.dir.display()
                );
                shared.stats.add_diverged(info.records, messages);
            }
            count_diverged_sets(shared);
        }
        Ok(set)
    }

    /// A new, empty core after a reset (the journal is empty too).
    fn fresh_core(&self) {
        let shared = &self.shared;
        let mut core = ShardCore::new(shared.shard, shared.shard_count, shared.settings.clone());
        core.count_destinations_in(shared.limit_stats.clone());
        core.count_scheduled_in(shared.limit_stats.clone());
        core.index_virtual_topics_in(shared.virtual_topics.clone());
        // The old core's destinations leave the count (and its consumer queues the
        // virtual-topic index) when it is dropped here.
        *shared.core.borrow_mut() = core;
        publish_stats(shared);
    }
}

/// Publishes how many set-aside directories of diverged records the shard's journal
/// directory holds (a listing; at open and after each set-aside only).
pub(super) fn count_diverged_sets(shared: &super::Shared) {
    match diverged::list_sets(&shared.journal_dir) {
        Ok(sets) => shared.stats.set_diverged_sets(sets.len() as u64),
        Err(e) => {
            tracing::warn!(shard = shared.shard, error = %e, "cannot count the set-aside directories of diverged records")
        }
    }
}

/// The journal operations replication needs (see the module doc for why these are
/// pass-throughs and not a `&Journal`).
impl Shard {
    /// Where the next shipped batch must start (slave side).
    pub fn next_position(&self) -> Position {
        self.shared.journal.next_position()
    }

    /// Waits until everything before `end` is fsynced (a slave's durable
    /// acknowledgement, or the end of a master's catch-up).
    pub async fn wait_durable(&self, end: Position) -> Result<(), StoreError> {
        self.shared.journal.wait_durable(end).await
    }

    /// Raw journal bytes for a catch-up (see `Journal::read_span`).
    pub async fn read_span(
        &self,
        from: Position,
        until: Position,
        max_bytes: usize,
    ) -> Result<(Bytes, Position), StoreError> {
        self.shared.journal.read_span(from, until, max_bytes).await
    }
}

/// Why a slave could not apply what its master shipped. Displays as the underlying
/// error does (that text goes into `Live::ApplyFailed` and the logs).
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// A shipped batch is not a valid run of frames, does not continue this journal,
    /// or could not be written: the link must be resynchronised.
    #[error(transparent)]
    Batch(StoreError),
    /// A volatile record does not decode (a format bug: it is skipped).
    #[error(transparent)]
    Volatile(DecodeError),
}
