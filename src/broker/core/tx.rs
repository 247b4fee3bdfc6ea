//! Transactions. A one-shard COMMIT is one `Tx` record applied at once; a multi-shard
//! transaction is PREPAREd on every participant (one `Prepare` record, held), the
//! coordinator journals the outcome, and each participant then resolves. After a
//! restart, transactions still prepared ask every shard for their outcome (unknown
//! means abort), and the shard must serve no client until all are resolved.

use super::{now_ms, BacklogId, JournalSink, Output, ShardCore};
use crate::broker::ops::{BrokerError, GlobalTxId, Reply, ReplyTo, Request, TxOp};
use crate::broker::record::Record;

impl ShardCore {
    /// COMMIT of a one-shard transaction (`gtx` = None): one `Tx` record, applied at
    /// once. PREPARE (`gtx` = Some): one `Prepare` record, held until resolved.
    pub(super) fn on_commit(
        &mut self,
        gtx: Option<GlobalTxId>,
        ops: Vec<TxOp>,
        reply: Reply,
        sink: &mut dyn JournalSink,
    ) {
        // Scheduled sends are journaled whether persistent or not.
        let persistent_sends = ops.iter().any(|op| {
            matches!(op, TxOp::Send(m) if m.persistent || matches!(self.schedule_of(m), Ok(Some(_))))
        });
        if let (true, Some(why)) = (persistent_sends, sink.paused()) {
            self.reply(reply, None, Err(BrokerError::StoreFull(why)));
            return;
        }
        let now = now_ms();
        let mut records = Vec::with_capacity(ops.len());
        for op in ops {
            match op {
                TxOp::Send(msg) => {
                    if msg.is_expired(now) {
                        continue;
                    }
                    let d = &msg.destination;
                    if d.kind.is_temporary() && !self.exists(d) {
                        continue;
                    }
                    // A scheduled send is scheduled at the commit (as ActiveMQ's
                    // afterCommit does), in the same record as the rest.
                    let scheduled = match self.schedule_of(&msg) {
                        Ok(Some(spec)) => self.schedule_record(&msg, spec, 0, now).map(Some),
                        Ok(None) => Ok(None),
                        Err(e) => Err(e),
                    };
                    match scheduled {
                        Ok(Some(rec)) => records.push(rec),
                        Ok(None) => records.push(self.enqueue_record(&msg)),
                        Err(e) => {
                            self.reply(reply, None, Err(e));
                            return;
                        }
                    }
                }
                TxOp::Ack {
                    sub,
                    destination,
                    seqs,
                } => {
                    if let Some((rec, _)) = self.ack_record(sub, &destination, &seqs) {
                        records.push(rec);
                    }
                }
            }
        }
        let persistent: Vec<Record> = records
            .iter()
            .filter(|r| match r {
                Record::Enqueue { .. } => self.is_journaled(r),
                Record::Ack {
                    destination,
                    durable,
                    seqs,
                } => {
                    let id = BacklogId::of_ack(destination, durable.as_ref());
                    match self.backlog_ref(&id) {
                        Some(b) => seqs
                            .iter()
                            .any(|s| b.entries.get(s).is_some_and(|e| e.loc.is_some())),
                        None => false,
                    }
                }
                Record::Schedule { .. } => true,
                _ => false,
            })
            .cloned()
            .collect();
        let mut loc = None;
        let mut durable_at = None;
        if !persistent.is_empty() || gtx.is_some() {
            let rec = match gtx {
                None => Record::Tx(persistent),
                Some(gtx) => Record::Prepare {
                    gtx,
                    records: persistent,
                },
            };
            match self.journal(sink, &rec) {
                Ok(l) => {
                    loc = Some(l);
                    durable_at = Some(sink.end());
                }
                Err(e) => {
                    self.reply(reply, None, Err(e));
                    return;
                }
            }
        }
        match gtx {
            None => {
                for r in records {
                    if let Record::Enqueue { ref message, .. } = r {
                        if !message.destination.kind.is_queue() {
                            self.fan_out_to_subscribers(&r);
                        }
                    }
                    let journaled = self.is_journaled(&r);
                    self.apply(r, if journaled { loc } else { None });
                }
            }
            Some(gtx) => {
                // Hold every operation (journaled or not) until the outcome.
                self.apply(Record::Prepare { gtx, records }, loc);
            }
        }
        self.reply(reply, durable_at, Ok(()));
    }

    pub(super) fn on_resolve(
        &mut self,
        gtx: GlobalTxId,
        commit: bool,
        reply: Reply,
        sink: &mut dyn JournalSink,
    ) {
        if !self.prepared.contains_key(&gtx) {
            self.reply(reply, None, Ok(()));
            return;
        }
        let rec = Record::Resolved { gtx, commit };
        match self.journal(sink, &rec) {
            Ok(loc) => {
                self.apply(rec, Some(loc));
                self.reply(reply, Some(sink.end()), Ok(()));
            }
            Err(e) => self.reply(reply, None, Err(e)),
        }
    }

    /// The coordinator's decision for `gtx`, journaled before any participant resolves.
    pub(super) fn on_record_outcome(
        &mut self,
        gtx: GlobalTxId,
        commit: bool,
        reply: Reply,
        sink: &mut dyn JournalSink,
    ) {
        let rec = Record::Outcome { gtx, commit };
        match self.journal(sink, &rec) {
            Ok(loc) => {
                self.apply(rec, Some(loc));
                self.reply(reply, Some(sink.end()), Ok(()));
            }
            Err(e) => self.reply(reply, None, Err(e)),
        }
    }

    /// Every participant has resolved `gtx`: its outcome no longer pins a segment.
    pub(super) fn on_forget_outcome(&mut self, gtx: GlobalTxId) {
        if let Some((_, loc)) = self.outcomes.remove(&gtx) {
            self.unpin(loc);
        }
    }

    /// A recovering participant asks how `gtx` ended: `Ok` only for a commit held here.
    pub(super) fn on_query_outcome(&mut self, gtx: GlobalTxId, reply: Reply) {
        let result = match self.outcomes.get(&gtx) {
            Some((true, _)) => Ok(()),
            _ => Err(BrokerError::UnknownTransaction(format!("{gtx:x}"))),
        };
        self.reply(reply, None, result);
    }

    /// After replaying the journal: asks every shard how prepared transactions ended
    /// (the coordinator's journal holds the outcome); an unknown outcome aborts.
    /// Status counters start from zero here: replayed records are not new traffic.
    pub fn finish_recovery(&mut self) {
        self.reset_counters();
        let gtxs: Vec<GlobalTxId> = self.prepared.keys().copied().collect();
        for gtx in gtxs {
            let token = self.token();
            self.querying.insert(token, (gtx, self.shard_count));
            for shard in 0..self.shard_count {
                self.out.push(Output::Post {
                    shard,
                    request: Request::QueryOutcome {
                        gtx,
                        reply: Reply {
                            to: ReplyTo::Shard(self.shard),
                            token,
                        },
                    },
                });
            }
        }
    }

    /// Transactions prepared before a restart whose outcome is still being asked for.
    /// Until this is zero the shard must not serve clients: a consumer would see later
    /// transactions before these earlier ones.
    pub fn in_doubt(&self) -> usize {
        self.querying.len()
    }

    pub(super) fn resolve_recovered(
        &mut self,
        gtx: GlobalTxId,
        commit: bool,
        sink: &mut dyn JournalSink,
    ) {
        tracing::info!(gtx = %format!("{gtx:x}"), commit, "resolving a transaction prepared before the restart");
        let rec = Record::Resolved { gtx, commit };
        match self.journal(sink, &rec) {
            Ok(loc) => self.apply(rec, Some(loc)),
            Err(e) => tracing::error!(error = %e, "cannot journal a transaction resolution"),
        }
    }

    /// Gives up the pins of transaction outcomes read at recovery, once every shard
    /// has had time to ask about them.
    pub fn forget_recovered_outcomes(&mut self) {
        let gtxs: Vec<GlobalTxId> = self.outcomes.keys().copied().collect();
        for gtx in gtxs {
            if let Some((_, loc)) = self.outcomes.remove(&gtx) {
                self.unpin(loc);
            }
        }
    }
}
