//! Scheduled delivery on the shard of the message's destination (`broker::scheduler`
//! holds the rules). A scheduled send is one `Schedule` record (journaled whether the
//! message is persistent or not, as ActiveMQ's job store keeps every job); each firing
//! is one `Fire` record that holds both the job's new state and the delivered copy's
//! `Enqueue`, applied together, so recovery and a slave see a firing whole or not at
//! all. In memory a job is its schedule and the journal location of its message: the
//! body is read back when it fires (`shard::scheduler`), so millions of jobs cost their
//! index entries, not their bodies. A job pins the segment of the record holding its
//! message; reclamation re-journals it (with its current state) to free an old segment.
//! The redelivery plugin (`broker::redelivery`) schedules here too: a refused message's
//! job and its removal from the queue are one `Tx` record.

use std::sync::Arc;

use super::{BacklogId, JournalSink, Output, ShardCore};
use crate::broker::message::{MessageRef, PropValue};
use crate::broker::ops::{BrokerError, Reply, ReplyTo, Request};
use crate::broker::record::Record;
use crate::broker::redelivery::Action;
use crate::broker::scheduler::{self, Job, Spec};
use crate::metrics::{Limit, LimitStats};
use crate::store::Location;

/// The property ActiveMQ's redelivery plugin sets on a message it sends back: the delay.
const REDELIVERY_DELAY: &str = "redeliveryDelay";

/// What one shard adds to the broker-wide count of scheduled jobs
/// (`maxScheduledMessages`). Dropping it takes the shard's part back: a slave that
/// starts over replaces its whole core.
pub(super) struct ScheduledShare {
    pub(super) stats: Arc<LimitStats>,
    pub(super) mine: u64,
}

impl ScheduledShare {
    fn added(&mut self) {
        self.mine += 1;
        self.stats.add_scheduled(1);
    }
    fn removed(&mut self) {
        self.mine = self.mine.saturating_sub(1);
        self.stats.sub_scheduled(1);
    }
}

impl Drop for ScheduledShare {
    fn drop(&mut self) {
        self.stats.sub_scheduled(self.mine);
    }
}

impl ShardCore {
    /// Counts this shard's jobs in the broker-wide `stats` (the node's registries).
    /// Call before anything is applied.
    pub fn count_scheduled_in(&mut self, stats: Arc<LimitStats>) {
        assert_eq!(self.scheduled.mine, 0, "jobs counted elsewhere already");
        self.scheduled.stats = stats;
    }

    /// The scheduling a send asks for, when the broker supports it (`None`: deliver
    /// it now, as an ordinary send; also every send while `schedulerSupport` is off,
    /// as ActiveMQ ignores the properties then).
    pub(super) fn schedule_of(&self, msg: &MessageRef) -> Result<Option<Spec>, BrokerError> {
        if !self.settings.scheduler_support {
            return Ok(None);
        }
        scheduler::spec_of(msg).map_err(|e| BrokerError::BadSchedule(e.to_string()))
    }

    /// The `Schedule` record for a new job, or the refusal once the broker holds
    /// `maxScheduledMessages` jobs.
    pub(super) fn schedule_record(
        &mut self,
        msg: &MessageRef,
        spec: Spec,
        redeliveries: u32,
        now: u64,
    ) -> Result<Record, BrokerError> {
        let limit = self.settings.limits.max_scheduled_messages;
        if self.scheduled.stats.scheduled() >= limit {
            let refusals = self.scheduled.stats.refused(Limit::ScheduledMessages);
            if refusals.is_power_of_two() {
                tracing::warn!(
                    limit,
                    refusals,
                    "maxScheduledMessages reached: scheduled send refused"
                );
            }
            return Err(BrokerError::TooManyScheduled { limit });
        }
        let key = self.next_job;
        self.next_job += 1;
        Ok(Record::Schedule {
            key,
            created_ms: now,
            next_ms: scheduler::first_fire(&spec, now),
            fired: 0,
            redeliveries,
            spec,
            message: msg.clone(),
        })
    }

    /// A scheduled send (outside a transaction): one `Schedule` record, confirmed
    /// once durable.
    pub(super) fn on_schedule(
        &mut self,
        msg: MessageRef,
        spec: Spec,
        redeliveries: u32,
        reply: Option<Reply>,
        sink: &mut dyn JournalSink,
    ) -> Result<(), BrokerError> {
        if let Some(why) = sink.paused() {
            return Err(BrokerError::StoreFull(why));
        }
        let rec = self.schedule_record(&msg, spec, redeliveries, super::now_ms())?;
        let loc = self.journal(sink, &rec)?;
        self.apply(rec, Some(loc));
        if let Some(reply) = reply {
            self.reply(reply, Some(sink.end()), Ok(()));
        }
        Ok(())
    }

    /// Applies a `Schedule` record: a new job, or (the job exists) a relocated copy
    /// of it, whose state and location replace the job's.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn apply_schedule(
        &mut self,
        key: u64,
        created_ms: u64,
        next_ms: u64,
        fired: u32,
        redeliveries: u32,
        spec: Spec,
        message: MessageRef,
        loc: Option<Location>,
    ) {
        self.next_job = self.next_job.max(key + 1);
        let Some(loc) = loc else {
            tracing::error!(key, "a scheduled message without a journal record ignored");
            return;
        };
        if message.persistent {
            // A failover producer replaying this send is confirmed, not scheduled twice.
            self.audit.stored(&message.destination, &message.id);
        }
        let job = Job {
            destination: message.destination.clone(),
            created_ms,
            next_ms,
            spec: Arc::new(spec),
            fired,
            redeliveries,
            loc,
            firing: false,
        };
        self.pin(Some(loc));
        match self.jobs.insert(key, job) {
            Some(old) => self.unpin(Some(old.loc)),
            None => self.scheduled.added(),
        }
    }

    /// Applies a `Fire` record: what the firing stored, then the job's new state.
    pub(super) fn apply_fire(
        &mut self,
        key: u64,
        next: Option<(u64, i32)>,
        fired: u32,
        then: Vec<Record>,
        loc: Option<Location>,
    ) {
        self.next_job = self.next_job.max(key + 1);
        for r in then {
            self.apply(r, loc);
        }
        let Some(mut job) = self.jobs.remove(key) else {
            // Its Schedule record was reclaimed after a relocated copy was written
            // (applied later), or the job is gone: nothing to update.
            return;
        };
        match next {
            None => {
                self.unpin(Some(job.loc));
                self.scheduled.removed();
            }
            Some((at, repeat)) => {
                job.next_ms = at;
                job.fired = fired;
                job.firing = false;
                if job.spec.repeat != repeat {
                    job.spec = Arc::new(Spec {
                        repeat,
                        ..(*job.spec).clone()
                    });
                }
                self.jobs.insert(key, job);
            }
        }
    }

    /// Jobs due at `now` (at most `max`), marked as firing: read each one's message
    /// back from `loc` and hand it to [`ShardCore::fire`].
    pub fn take_due_jobs(&mut self, now: u64, max: usize) -> Vec<(u64, Location)> {
        self.jobs
            .take_due(now, max)
            .into_iter()
            .map(|(k, j)| (k, j.loc))
            .collect()
    }

    /// A job taken by [`ShardCore::take_due_jobs`] that will not be fired now (the
    /// shard stopped serving while its message was read): due again at its time.
    pub fn unfire_job(&mut self, key: u64) {
        if let Some(at) = self.jobs.get(key).map(|j| j.next_ms) {
            self.jobs.retry(key, at);
        }
    }

    /// Scheduled jobs on this shard (for status and tests).
    pub fn scheduled_jobs(&self) -> usize {
        self.jobs.len()
    }

    /// Fires job `key` with its message `msg` (read back from the journal; `None`
    /// if the read failed: the job is tried again a second later). One `Fire` record
    /// holds the delivered copy (when it is journaled) and the job's new state.
    pub fn fire(
        &mut self,
        key: u64,
        msg: Option<MessageRef>,
        now: u64,
        sink: &mut dyn JournalSink,
    ) {
        let Some(job) = self.jobs.get(key).filter(|j| j.firing).cloned() else {
            return;
        };
        let Some(msg) = msg else {
            self.jobs.retry(key, now + 1000);
            return;
        };
        let step = scheduler::step(&job.spec, now);
        let fired = job.fired.saturating_add(1);
        let mut then = Vec::new();
        let mut unjournaled = None;
        if step.deliver {
            let d = &job.destination;
            let gone = d.kind.is_temporary() && !self.exists(d);
            let new_id = scheduler::renames(&msg)
                .then(|| scheduler::fired_id(self.shard, job.created_ms, key, fired));
            let name = scheduler::job_name(self.shard, job.created_ms, key);
            let copy = MessageRef::new(scheduler::delivered_copy(&msg, &name, new_id, now));
            if gone || copy.is_expired(now) {
                tracing::debug!(key, destination = %d, "scheduled copy dropped: destination gone or expired");
            } else {
                let mut rec = self.enqueue_record(&copy);
                if let Record::Enqueue { redeliveries, .. } = &mut rec {
                    *redeliveries = job.redeliveries;
                }
                if self.is_journaled(&rec) {
                    then.push(rec);
                } else {
                    unjournaled = Some(rec);
                }
            }
        }
        if step.spawn {
            let spec = scheduler::spawned(&job.spec);
            match self.schedule_record(&msg, spec, job.redeliveries, now) {
                Ok(rec) => then.push(rec),
                Err(e) => tracing::warn!(key, error = %e, "cron job did not start its repeats"),
            }
        }
        let rec = Record::Fire {
            key,
            next: step.next,
            fired,
            then,
        };
        let loc = match self.journal(sink, &rec) {
            Ok(loc) => loc,
            Err(e) => {
                tracing::error!(key, error = %e, "cannot journal a scheduled firing; retrying");
                self.jobs.retry(key, now + 1000);
                return;
            }
        };
        if let Record::Fire { then, .. } = &rec {
            for r in then {
                self.fan_out_if_topic(r);
            }
        }
        self.apply(rec, Some(loc));
        if let Some(rec) = unjournaled {
            self.fan_out_if_topic(&rec);
            if Self::is_volatile_state(&rec) {
                sink.volatile(&rec.encode());
            }
            self.apply(rec, None);
        }
    }

    /// With the redelivery plugin, what becomes of message `seq` of backlog `id`
    /// instead of a dead-letter move (`broker::redelivery`): true if the plugin took it
    /// (it is redelivered later, or dropped). Expired messages, durable subscriptions'
    /// and non-persistent ones (the caller drops those first) are not its business.
    pub(super) fn redelivery_instead(
        &mut self,
        id: &BacklogId,
        seq: u64,
        redeliveries: u32,
        reason: &str,
        body: &super::Body,
    ) -> bool {
        let Some(plugin) = self.settings.redelivery_plugin.as_ref() else {
            return false;
        };
        if reason == "Expired" || !matches!(id, BacklogId::Queue(_)) {
            return false;
        }
        let destination = id.destination().clone();
        let action = plugin.action(&destination, redeliveries);
        let token = self.token();
        self.moving.insert(token, (id.clone(), seq));
        match action {
            Action::DeadLetter => {
                self.moving.remove(&token);
                return false;
            }
            Action::Drop => {
                tracing::debug!(%destination, seq, "redelivery plugin: message dropped");
                // Removed (journaled) as a completed move is: a barrier on this shard
                // answers the token.
                self.out.push(Output::Post {
                    shard: self.shard,
                    request: Request::Barrier {
                        reply: Reply {
                            to: ReplyTo::Shard(self.shard),
                            token,
                        },
                    },
                });
            }
            Action::Redeliver { delay_ms, count } => {
                self.redelivering.insert(token, (delay_ms, count));
                self.out.push(Output::Redeliver {
                    destination,
                    body: body.clone(),
                    seq,
                    token,
                });
            }
        }
        true
    }

    /// The body of a message the redelivery plugin sends back (`msg`; `None`: it
    /// could not be read, and the message stays deliverable): one `Tx` record holds
    /// the job that redelivers it after the delay (with its redelivery count and
    /// `redeliveryDelay`, as ActiveMQ's plugin re-sends it) and the removal of the
    /// original.
    pub fn redeliver(
        &mut self,
        token: u64,
        msg: Option<MessageRef>,
        now: u64,
        sink: &mut dyn JournalSink,
    ) {
        let Some((delay_ms, count)) = self.redelivering.remove(&token) else {
            return;
        };
        let scheduled = msg.ok_or(BrokerError::UnreadableMessage).and_then(|m| {
            let mut copy = (*m).clone();
            for name in [scheduler::JOB_ID, scheduler::DELAY, REDELIVERY_DELAY] {
                copy.headers.retain(|(k, _)| k != name);
                copy.properties.retain(|(k, _)| k != name);
            }
            copy.properties
                .push((REDELIVERY_DELAY.into(), PropValue::Long(delay_ms)));
            copy.properties
                .push((scheduler::DELAY.into(), PropValue::Long(delay_ms)));
            let spec = Spec {
                cron: None,
                delay: delay_ms,
                period: 0,
                repeat: 0,
            };
            self.schedule_record(&MessageRef::new(copy), spec, count, now)
        });
        let Some((id, seq)) = self.moving.get(&token).cloned() else {
            return;
        };
        let sched = match scheduled {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "redelivery plugin: cannot schedule; message kept");
                self.on_internal_done(token, Err(e), sink);
                return;
            }
        };
        self.moving.remove(&token);
        let BacklogId::Queue(d) = &id else {
            return;
        };
        let rec = Record::Tx(vec![
            sched.clone(),
            Record::Ack {
                destination: d.clone(),
                durable: None,
                seqs: vec![seq],
            },
        ]);
        match self.journal(sink, &rec) {
            Ok(loc) => {
                self.apply(sched, Some(loc));
                let removed = self.backlog_mut(&id).and_then(|b| b.remove(seq));
                if let Some(e) = removed {
                    self.forget_entry(id.destination(), &e);
                    self.count_dequeued(id.destination(), 1);
                }
                self.mark_dirty(id);
                self.release_blocked();
            }
            Err(e) => {
                self.moving.insert(token, (id, seq));
                self.on_internal_done(token, Err(e), sink);
            }
        }
    }

    fn fan_out_if_topic(&mut self, r: &Record) {
        if let Record::Enqueue { message, .. } = r {
            if !message.destination.kind.is_queue() {
                self.fan_out_to_subscribers(r);
            }
        }
    }

    /// Jobs whose message lives in `segment` and that are not firing: re-journal
    /// them (see [`ShardCore::relocate_job`]) so the segment can go.
    pub fn jobs_in_segment(&self, segment: u64) -> Vec<(u64, Location)> {
        self.jobs
            .iter()
            .filter(|(_, j)| !j.firing && j.loc.segment == segment)
            .map(|(k, j)| (*k, j.loc))
            .collect()
    }

    /// Re-journals job `key` with its current state and message `msg` (read back):
    /// applying the copy moves its pin to the new record.
    pub fn relocate_job(&mut self, key: u64, msg: MessageRef, sink: &mut dyn JournalSink) {
        let Some(job) = self.jobs.get(key).filter(|j| !j.firing).cloned() else {
            return;
        };
        let rec = Record::Schedule {
            key,
            created_ms: job.created_ms,
            next_ms: job.next_ms,
            fired: job.fired,
            redeliveries: job.redeliveries,
            spec: (*job.spec).clone(),
            message: msg,
        };
        match self.journal(sink, &rec) {
            Ok(loc) => self.apply(rec, Some(loc)),
            Err(e) => tracing::error!(key, error = %e, "cannot relocate a scheduled message"),
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::broker::core::Output;
    use crate::broker::destination::Destination;
    use crate::broker::message::{Message, PropValue};
    use crate::broker::ops::{AckMode, ConnId, ReplyTo, Request, SubKey, SubscribeSpec};
    use crate::broker::scheduler::{DELAY, JOB_ID, PERIOD, REPEAT};
    use crate::broker::settings::BrokerSettings;
    use crate::store::Position;

    /// Records in memory, one segment per record (so reclamation can be watched).
    #[derive(Default)]
    struct Mem {
        records: Vec<(Location, Bytes)>,
    }

    impl JournalSink for Mem {
        fn append(&mut self, payload: &[u8]) -> Result<(Location, Position), BrokerError> {
            let loc = Location {
                segment: self.records.len() as u64 + 1,
                offset: 0,
                len: payload.len() as u32,
            };
            self.records.push((loc, Bytes::copy_from_slice(payload)));
            Ok((loc, Position(self.records.len() as u64)))
        }
        fn end(&self) -> Position {
            Position(self.records.len() as u64)
        }
    }

    impl Mem {
        /// The job's message, as the shard reads it back.
        fn job_message(&self, loc: Location, key: u64) -> MessageRef {
            let (_, payload) = self.records[loc.segment as usize - 1].clone();
            match Record::decode(&payload).unwrap() {
                Record::Schedule {
                    key: k, message, ..
                } if k == key => message,
                Record::Tx(rs) => rs
                    .into_iter()
                    .find_map(|r| match r {
                        Record::Schedule {
                            key: k, message, ..
                        } if k == key => Some(message),
                        _ => None,
                    })
                    .unwrap(),
                other => panic!("no job in {other:?}"),
            }
        }
    }

    fn core(scheduler_support: bool) -> ShardCore {
        ShardCore::new(
            0,
            1,
            Arc::new(BrokerSettings {
                scheduler_support,
                ..BrokerSettings::default()
            }),
        )
    }

    fn replay(j: &Mem) -> ShardCore {
        let mut c = core(true);
        for (loc, payload) in &j.records {
            c.apply(Record::decode(payload).unwrap(), Some(*loc));
        }
        c
    }

    fn scheduled(persistent: bool, props: Vec<(&str, PropValue)>) -> MessageRef {
        MessageRef::new(Message {
            id: "ID:p-1:1:1:1".into(),
            destination: Destination::queue("q"),
            persistent,
            priority: 4,
            timestamp_ms: 1,
            expires_ms: 0,
            reply_to: None,
            headers: vec![],
            body: Bytes::from_static(b"hello"),
            body_type: Default::default(),
            properties: props.into_iter().map(|(k, v)| (k.into(), v)).collect(),
        })
    }

    fn send(c: &mut ShardCore, j: &mut Mem, m: MessageRef) -> Result<(), BrokerError> {
        c.handle(
            Request::Send {
                msg: m,
                reply: Reply {
                    to: ReplyTo::Conn(ConnId {
                        shard: 0,
                        serial: 1,
                    }),
                    token: 1,
                },
            },
            j,
        );
        let results: Vec<_> = c
            .drain()
            .into_iter()
            .filter_map(|o| match o {
                Output::Reply { result, .. } => Some(result),
                _ => None,
            })
            .collect();
        results.into_iter().next().unwrap_or(Ok(()))
    }

    fn subscribe(c: &mut ShardCore, j: &mut Mem) -> SubKey {
        let key = SubKey {
            conn: ConnId {
                shard: 0,
                serial: 2,
            },
            sub: 1,
        };
        c.handle(
            Request::Subscribe {
                sub: key,
                spec: SubscribeSpec {
                    destination: Destination::queue("q"),
                    ack: AckMode::ClientIndividual,
                    prefetch: 100,
                    durable: None,
                    selector: None,
                    temp_owner: None,
                    exclusive: false,
                    priority: 0,
                },
                reply: Reply {
                    to: ReplyTo::Conn(key.conn),
                    token: 2,
                },
            },
            j,
        );
        c.drain();
        key
    }

    /// Fires whatever is due at `now`; returns the ids of the copies delivered.
    fn fire_due(c: &mut ShardCore, j: &mut Mem, now: u64) -> Vec<(String, u32)> {
        for (key, loc) in c.take_due_jobs(now, 100) {
            let m = j.job_message(loc, key);
            c.fire(key, Some(m), now, j);
        }
        c.drain()
            .into_iter()
            .filter_map(|o| match o {
                Output::Deliver {
                    body: crate::broker::core::Body::Memory(m),
                    redeliveries,
                    ..
                } => Some((m.id.clone(), redeliveries)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn without_scheduler_support_the_properties_are_ignored() {
        let (mut c, mut j) = (core(false), Mem::default());
        subscribe(&mut c, &mut j);
        send(
            &mut c,
            &mut j,
            scheduled(true, vec![(DELAY, PropValue::Long(60_000))]),
        )
        .unwrap();
        assert_eq!(c.scheduled_jobs(), 0);
        assert_eq!(c.depth(&Destination::queue("q")), 1);
    }

    #[test]
    fn a_repeated_job_fires_each_time_with_new_ids_and_recovers_its_state() {
        let (mut c, mut j) = (core(true), Mem::default());
        subscribe(&mut c, &mut j);
        let m = scheduled(
            false,
            vec![
                (DELAY, PropValue::Long(1000)),
                (PERIOD, PropValue::Long(500)),
                (REPEAT, PropValue::Int(1)),
            ],
        );
        send(&mut c, &mut j, m).unwrap();
        assert_eq!(c.scheduled_jobs(), 1);
        assert_eq!(c.depth(&Destination::queue("q")), 0);
        // A non-persistent scheduled message is journaled all the same.
        assert_eq!(j.records.len(), 1);
        assert!(c.is_pinned(1));
        let first = c.jobs.get(1).unwrap().next_ms;
        assert!(fire_due(&mut c, &mut j, first - 1).is_empty(), "not early");
        let now = first + 3;
        let got = fire_due(&mut c, &mut j, now);
        assert_eq!(got.len(), 1);
        assert_ne!(
            got[0].0, "ID:p-1:1:1:1",
            "a repeating job renames its copies"
        );
        // Replayed (a restart, or a slave): the job is there, one repeat left.
        let r = replay(&j);
        let job = r.jobs.get(1).unwrap();
        assert_eq!((job.next_ms, job.spec.repeat, job.fired), (now + 500, 0, 1));
        let second = fire_due(&mut c, &mut j, now + 500);
        assert_eq!(second.len(), 1);
        assert_ne!(second[0].0, got[0].0);
        assert_eq!(c.scheduled_jobs(), 0);
        assert!(!c.is_pinned(1), "a finished job lets its segment go");
        assert_eq!(replay(&j).scheduled_jobs(), 0);
    }

    #[test]
    fn a_persistent_copy_is_journaled_with_the_firing_and_carries_the_job_id() {
        let (mut c, mut j) = (core(true), Mem::default());
        send(
            &mut c,
            &mut j,
            scheduled(true, vec![(DELAY, PropValue::Long(10))]),
        )
        .unwrap();
        let at = c.jobs.get(1).unwrap().next_ms;
        fire_due(&mut c, &mut j, at);
        let r = replay(&j);
        assert_eq!(r.depth(&Destination::queue("q")), 1);
        assert_eq!(r.scheduled_jobs(), 0);
        let (_, payload) = &j.records[1];
        let Record::Fire { next, then, .. } = Record::decode(payload).unwrap() else {
            panic!("a Fire record")
        };
        assert_eq!(next, None);
        let [Record::Enqueue { message, .. }] = &then[..] else {
            panic!("the copy's enqueue inside")
        };
        assert_eq!(message.id, "ID:p-1:1:1:1", "a one-shot job keeps the id");
        assert!(message.header(JOB_ID).is_some());
        assert!(message.property(DELAY).is_none());
    }

    #[test]
    fn relocation_moves_the_pin_and_keeps_the_state() {
        let (mut c, mut j) = (core(true), Mem::default());
        send(
            &mut c,
            &mut j,
            scheduled(true, vec![(DELAY, PropValue::Long(60_000))]),
        )
        .unwrap();
        assert_eq!(c.jobs_in_segment(1).len(), 1);
        let m = j.job_message(c.jobs.get(1).unwrap().loc, 1);
        c.relocate_job(1, m, &mut j);
        assert!(!c.is_pinned(1));
        assert!(c.is_pinned(2));
        assert_eq!(c.scheduled_jobs(), 1);
        // Segment 1 deleted: the relocated copy alone recovers the job.
        let rest = Mem {
            records: j.records[1..].to_vec(),
        };
        let r = replay(&rest);
        assert_eq!(r.scheduled_jobs(), 1);
        assert_eq!(
            r.jobs.get(1).unwrap().next_ms,
            c.jobs.get(1).unwrap().next_ms
        );
    }

    #[test]
    fn the_limit_refuses_scheduled_sends_and_bad_properties_are_refused() {
        let mut settings = BrokerSettings {
            scheduler_support: true,
            ..BrokerSettings::default()
        };
        settings.limits.max_scheduled_messages = 1;
        let mut c = ShardCore::new(0, 1, Arc::new(settings));
        let mut j = Mem::default();
        let m = || scheduled(true, vec![(DELAY, PropValue::Long(60_000))]);
        send(&mut c, &mut j, m()).unwrap();
        let m2 = MessageRef::new(Message {
            id: "ID:p-1:1:1:2".into(),
            ..(*m()).clone()
        });
        assert!(matches!(
            send(&mut c, &mut j, m2),
            Err(BrokerError::TooManyScheduled { limit: 1 })
        ));
        let bad = MessageRef::new(Message {
            id: "ID:p-1:1:1:3".into(),
            ..(*scheduled(true, vec![(DELAY, PropValue::Double(1.0))])).clone()
        });
        assert!(matches!(
            send(&mut c, &mut j, bad),
            Err(BrokerError::BadSchedule(_))
        ));
    }

    #[test]
    fn the_redelivery_plugin_turns_a_nack_into_a_delayed_job_in_one_record() {
        use crate::broker::redelivery::{Policy, RedeliveryPlugin};
        let plugin = RedeliveryPlugin {
            fallback_to_dead_letter: true,
            send_to_dlq_if_max_retries_exceeded: true,
            default_entry: Some(Policy {
                maximum_redeliveries: 1,
                initial_redelivery_delay_ms: 1500,
                ..Policy::default()
            }),
            entries: Vec::new(),
        };
        let mut c = ShardCore::new(
            0,
            1,
            Arc::new(BrokerSettings {
                scheduler_support: true,
                redelivery_plugin: Some(plugin),
                ..BrokerSettings::default()
            }),
        );
        let mut j = Mem::default();
        let sub = subscribe(&mut c, &mut j);
        c.handle(
            Request::Send {
                msg: scheduled(true, vec![]),
                reply: Reply {
                    to: ReplyTo::Conn(sub.conn),
                    token: 5,
                },
            },
            &mut j,
        );
        let seq = c
            .drain()
            .iter()
            .find_map(|o| match o {
                Output::Deliver { seq, .. } => Some(*seq),
                _ => None,
            })
            .expect("delivered");
        c.handle(
            Request::Nack {
                sub,
                destination: Destination::queue("q"),
                seqs: vec![seq],
                reply: None,
            },
            &mut j,
        );
        let token = c
            .drain()
            .iter()
            .find_map(|o| match o {
                Output::Redeliver { token, .. } => Some(*token),
                Output::DeadLetter { .. } => panic!("dead-lettered despite the plugin"),
                _ => None,
            })
            .expect("a redelivery");
        let records = j.records.len();
        c.redeliver(token, Some(scheduled(true, vec![])), 10_000, &mut j);
        assert_eq!(j.records.len(), records + 1, "job and removal: one record");
        assert_eq!(c.depth(&Destination::queue("q")), 0);
        let job = c.jobs.get(1).expect("the redelivery job");
        assert_eq!((job.next_ms, job.redeliveries), (11_500, 1));
        let r = replay(&j);
        assert_eq!(r.scheduled_jobs(), 1);
        assert_eq!(r.depth(&Destination::queue("q")), 0);
        // Fired: back on the queue, counted as redelivered once, with redeliveryDelay.
        let got = fire_due(&mut c, &mut j, 11_500);
        assert_eq!(got, [("ID:p-1:1:1:1".to_string(), 1)]);
        let Record::Fire { then, .. } = Record::decode(&j.records.last().unwrap().1).unwrap()
        else {
            panic!("a Fire record")
        };
        let [Record::Enqueue { message, .. }] = &then[..] else {
            panic!("the copy")
        };
        assert_eq!(
            message.property(REDELIVERY_DELAY),
            Some(&PropValue::Long(1500))
        );
        assert_eq!(message.property(DELAY), None);
    }
}
