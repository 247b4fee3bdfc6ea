//! Scheduled delivery (`<broker schedulerSupport="true">`), as ActiveMQ's
//! `SchedulerBroker` and its job store define it. Pure logic, no I/O: which sends are
//! scheduled and how, when a job fires next, what the delivered copy looks like, and
//! the in-memory index of a shard's jobs. The core (`core/schedule.rs`) journals and
//! applies; the shard's scheduler task (`shard/scheduler.rs`) fires due jobs.
//!
//! A send is scheduled when it carries `AMQ_SCHEDULED_DELAY`, `AMQ_SCHEDULED_PERIOD`
//! or `AMQ_SCHEDULED_CRON` (JMS long/int properties, or string headers as STOMP sends
//! them; ActiveMQ converts either) and no `scheduledJobId` (a copy the scheduler
//! delivered is never scheduled again). `AMQ_SCHEDULED_REPEAT` alone schedules
//! nothing, as in ActiveMQ.
//!
//! Timing, as ActiveMQ's `JobSchedulerImpl`:
//! * first fire: the next cron time after now (cron set) or now, plus `delay` if it is
//!   positive, else plus `period`;
//! * a job without cron fires, then, while `repeat` is not 0, again `period` after the
//!   moment it fired (`repeat` counts down; negative repeats forever);
//! * a cron job fires at every cron time; with `repeat` not 0 it does not deliver
//!   itself but starts, at each cron time, a separate job with the same message and
//!   `delay`/`period`/`repeat` (no cron);
//! * a late job (after a restart or a takeover) fires once at once, then goes on from
//!   that moment.
//!
//! The delivered copy (`SchedulerBroker.scheduledJob`): the four `AMQ_SCHEDULED_*`
//! properties removed, `scheduledJobId` added; a new message id when the job repeats
//! or has a cron entry (so the JMS client's duplicate audit does not drop the later
//! deliveries); a message with an expiry gets a fresh timestamp and its time to live
//! counted from the delivery.
//!
//! Unlike ActiveMQ, Tandem does not round the start time up to the next half second
//! (so a delay is kept to the tick of the scheduler task), and refuses a job that would
//! repeat forever with no period (ActiveMQ would deliver it in a tight loop).

use std::collections::{BTreeSet, HashMap};
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, Local, TimeZone};
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

use super::destination::Destination;
use super::message::{Message, PropValue};
use crate::store::Location;

pub const DELAY: &str = "AMQ_SCHEDULED_DELAY";
pub const PERIOD: &str = "AMQ_SCHEDULED_PERIOD";
pub const REPEAT: &str = "AMQ_SCHEDULED_REPEAT";
pub const CRON: &str = "AMQ_SCHEDULED_CRON";
/// Set on every copy the scheduler delivers (ActiveMQ's `AMQ_SCHEDULED_ID`).
pub const JOB_ID: &str = "scheduledJobId";
/// ActiveMQ's `SchedulerBroker.MAX_REPEAT_ALLOWED`.
pub const MAX_REPEAT: i32 = 1000;

/// Why a send's scheduling properties are refused (the producer gets this error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("{name} must be a whole number, not {value:?}")]
    NotANumber { name: &'static str, value: String },
    #[error("The scheduled repeat value is too large (at most {MAX_REPEAT})")]
    RepeatTooLarge,
    #[error("a scheduled message that repeats forever needs a positive {PERIOD}")]
    EndlessWithoutPeriod,
    #[error("{CRON} {entry:?} is not a 5-field cron entry: {why}")]
    BadCron { entry: String, why: String },
}

/// How a job fires: what the producer asked, with the repeats still to come.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    /// 5-field Unix cron (minute hour day-of-month month day-of-week), local time.
    pub cron: Option<String>,
    pub delay: i64,
    pub period: i64,
    /// Repeats still to come; negative: forever.
    pub repeat: i32,
}

/// The scheduling `msg` asks for: `None` if it is an ordinary send.
pub fn spec_of(msg: &Message) -> Result<Option<Spec>, ScheduleError> {
    if value(msg, JOB_ID).is_some() {
        return Ok(None);
    }
    let cron = value(msg, CRON).map(|v| v.text());
    let period = number(msg, PERIOD)?;
    let delay = number(msg, DELAY)?;
    if cron.is_none() && period.is_none() && delay.is_none() {
        return Ok(None);
    }
    let repeat = number(msg, REPEAT)?.unwrap_or(0);
    let repeat = i32::try_from(repeat).map_err(|_| ScheduleError::RepeatTooLarge)?;
    if repeat > MAX_REPEAT {
        return Err(ScheduleError::RepeatTooLarge);
    }
    let spec = Spec {
        cron: cron.filter(|c| !c.is_empty()),
        delay: delay.unwrap_or(0),
        period: period.unwrap_or(0),
        repeat,
    };
    if let Some(c) = &spec.cron {
        parse_cron(c)?;
    }
    if spec.repeat < 0 && spec.period <= 0 {
        return Err(ScheduleError::EndlessWithoutPeriod);
    }
    Ok(Some(spec))
}

enum Value<'a> {
    Text(&'a str),
    Typed(&'a PropValue),
}

impl Value<'_> {
    fn text(&self) -> String {
        match self {
            Value::Text(s) => s.trim().to_string(),
            Value::Typed(v) => v.to_java_string().unwrap_or_default(),
        }
    }
}

fn value<'m>(msg: &'m Message, name: &str) -> Option<Value<'m>> {
    msg.header(name)
        .map(Value::Text)
        .or_else(|| msg.property(name).map(Value::Typed))
}

/// A long, as ActiveMQ's `TypeConversionSupport` converts a property: an integral
/// type, or a string of digits.
fn number(msg: &Message, name: &'static str) -> Result<Option<i64>, ScheduleError> {
    let Some(v) = value(msg, name) else {
        return Ok(None);
    };
    let n = match v {
        Value::Typed(PropValue::Long(n)) => Some(*n),
        Value::Typed(PropValue::Int(n)) => Some(i64::from(*n)),
        Value::Typed(PropValue::Short(n)) => Some(i64::from(*n)),
        Value::Typed(PropValue::Byte(n)) => Some(i64::from(*n)),
        Value::Text(s) => s.trim().parse().ok(),
        Value::Typed(_) => None,
    };
    n.map(Some).ok_or_else(|| ScheduleError::NotANumber {
        name,
        value: v.text(),
    })
}

fn parse_cron(entry: &str) -> Result<Cron, ScheduleError> {
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(entry)
        .map_err(|e| ScheduleError::BadCron {
            entry: entry.to_string(),
            why: e.to_string(),
        })
}

/// The first cron time strictly after `after_ms` (local time, as ActiveMQ's
/// `CronParser`); `None` if the entry no longer parses or never matches.
fn next_cron(entry: &str, after_ms: u64) -> Option<u64> {
    let cron = parse_cron(entry)
        .ok()
        .or_else(|| Cron::from_str(entry).ok())?;
    let after: DateTime<Local> = Local.timestamp_millis_opt(after_ms as i64).single()?;
    let next = cron.find_next_occurrence(&after, false).ok()?;
    u64::try_from(next.timestamp_millis()).ok()
}

/// When a job scheduled at `now` first fires.
pub fn first_fire(spec: &Spec, now: u64) -> u64 {
    let base = spec
        .cron
        .as_deref()
        .and_then(|c| next_cron(c, now))
        .unwrap_or(now);
    let add = if spec.delay > 0 {
        spec.delay
    } else {
        spec.period
    };
    base.saturating_add_signed(add)
}

/// What a firing does (`JobSchedulerImpl.mainLoop`).
#[derive(Debug, PartialEq, Eq)]
pub struct Step {
    /// Deliver a copy of the message now.
    pub deliver: bool,
    /// Start a separate job (no cron, the spec's delay/period/repeat) now: a cron job
    /// with repeats.
    pub spawn: bool,
    /// When the job fires again (`None`: it is done), and its repeats left then.
    pub next: Option<(u64, i32)>,
}

pub fn step(spec: &Spec, now: u64) -> Step {
    match &spec.cron {
        None => Step {
            deliver: true,
            spawn: false,
            next: (spec.repeat != 0).then(|| {
                let left = if spec.repeat > 0 {
                    spec.repeat - 1
                } else {
                    spec.repeat
                };
                (now.saturating_add_signed(spec.period.max(0)), left)
            }),
        },
        Some(c) => Step {
            deliver: spec.repeat == 0,
            spawn: spec.repeat != 0,
            next: next_cron(c, now)
                .filter(|t| *t > now)
                .map(|t| (t, spec.repeat)),
        },
    }
}

/// The spec of the job a cron job with repeats starts at each cron time.
pub fn spawned(spec: &Spec) -> Spec {
    Spec {
        cron: None,
        ..spec.clone()
    }
}

/// The copy of `msg` a firing delivers (see the module doc). `new_id`: the id to give
/// it when the job repeats or has a cron entry.
pub fn delivered_copy(msg: &Message, job_name: &str, new_id: Option<String>, now: u64) -> Message {
    let mut copy = msg.clone();
    let scheduling = [DELAY, PERIOD, REPEAT, CRON];
    copy.headers
        .retain(|(k, _)| !scheduling.contains(&k.as_str()) && k != JOB_ID);
    copy.properties
        .retain(|(k, _)| !scheduling.contains(&k.as_str()) && k != JOB_ID);
    copy.headers
        .push((JOB_ID.to_string(), job_name.to_string()));
    if let Some(id) = new_id {
        copy.id = id;
    }
    if copy.timestamp_ms > 0 && copy.expires_ms > 0 {
        let ttl = copy.expires_ms.saturating_sub(copy.timestamp_ms);
        let expires = now.saturating_add(ttl);
        if expires > copy.expires_ms {
            copy.expires_ms = expires;
            copy.timestamp_ms = now;
        }
    }
    copy
}

/// Whether the delivered copies get new message ids (`SchedulerBroker.scheduledJob`:
/// the message's own repeat or cron property, not the job's countdown).
pub fn renames(msg: &Message) -> bool {
    let repeat = number(msg, REPEAT).ok().flatten().unwrap_or(0);
    let cron = value(msg, CRON).is_some_and(|v| !v.text().is_empty());
    repeat != 0 || cron
}

/// The `scheduledJobId` of job `key` on `shard`, created at `created_ms`.
pub fn job_name(shard: usize, created_ms: u64, key: u64) -> String {
    format!("ID:tandem-scheduler-{shard}-{created_ms}:1:1:{key}")
}

/// A new message id for firing number `fired` of a job, unique broker-wide in the
/// `<connection>:<session>:<producer>:<seq>` form JMS clients parse.
pub fn fired_id(shard: usize, created_ms: u64, key: u64, fired: u32) -> String {
    format!("ID:tandem-scheduler-{shard}-{created_ms}:2:{key}:{fired}")
}

/// One job in memory: its schedule and where its message lives in the journal. No
/// body: it is read back when the job fires.
#[derive(Clone, Debug)]
pub struct Job {
    pub destination: Destination,
    pub created_ms: u64,
    pub next_ms: u64,
    pub spec: Arc<Spec>,
    /// Copies delivered (or jobs spawned) so far.
    pub fired: u32,
    /// The redelivery count the delivered copies carry (redelivery plugin).
    pub redeliveries: u32,
    /// The record that holds the message (a `Schedule`, or a `Tx`/`Prepare`/`Fire`
    /// that contains it).
    pub loc: Location,
    /// Taken out of the time index while its body is read back.
    pub firing: bool,
}

/// A shard's jobs, ordered by next fire time.
#[derive(Default)]
pub struct Index {
    jobs: HashMap<u64, Job>,
    due: BTreeSet<(u64, u64)>,
}

impl Index {
    pub fn len(&self) -> usize {
        self.jobs.len()
    }
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }
    pub fn get(&self, key: u64) -> Option<&Job> {
        self.jobs.get(&key)
    }

    /// Adds or replaces job `key`; returns the job it replaced.
    pub fn insert(&mut self, key: u64, job: Job) -> Option<Job> {
        let old = self.remove(key);
        if !job.firing {
            self.due.insert((job.next_ms, key));
        }
        self.jobs.insert(key, job);
        old
    }

    pub fn remove(&mut self, key: u64) -> Option<Job> {
        let job = self.jobs.remove(&key)?;
        self.due.remove(&(job.next_ms, key));
        Some(job)
    }

    /// Marks up to `max` jobs due at `now` as firing and returns them.
    pub fn take_due(&mut self, now: u64, max: usize) -> Vec<(u64, Job)> {
        let mut out = Vec::new();
        while out.len() < max {
            let Some(&(t, key)) = self.due.first() else {
                break;
            };
            if t > now {
                break;
            }
            self.due.remove(&(t, key));
            if let Some(j) = self.jobs.get_mut(&key) {
                j.firing = true;
                out.push((key, j.clone()));
            }
        }
        out
    }

    /// A firing that could not read its message: try again at `at`.
    pub fn retry(&mut self, key: u64, at: u64) {
        if let Some(j) = self.jobs.get_mut(&key) {
            if j.firing {
                j.firing = false;
                j.next_ms = at;
                self.due.insert((at, key));
            }
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&u64, &Job)> {
        self.jobs.iter()
    }

    /// Keys are unique per shard: one more than the largest seen.
    pub fn max_key(&self) -> u64 {
        self.jobs.keys().copied().max().unwrap_or(0)
    }

    /// The earliest fire time of a job not already firing.
    pub fn next_due(&self) -> Option<u64> {
        self.due.first().map(|(t, _)| *t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn msg(headers: &[(&str, &str)], props: Vec<(&str, PropValue)>) -> Message {
        Message {
            id: "ID:p-1:1:1:1".into(),
            destination: Destination::queue("q"),
            persistent: true,
            priority: 4,
            timestamp_ms: 1000,
            expires_ms: 0,
            reply_to: None,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: Bytes::from_static(b"x"),
            body_type: super::super::message::BodyType::TEXT,
            properties: props.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        }
    }

    #[test]
    fn sends_without_scheduling_properties_or_already_fired_are_not_scheduled() {
        assert_eq!(spec_of(&msg(&[], vec![])), Ok(None));
        assert_eq!(spec_of(&msg(&[(REPEAT, "3")], vec![])), Ok(None));
        assert_eq!(
            spec_of(&msg(&[(DELAY, "5"), (JOB_ID, "ID:x")], vec![])),
            Ok(None)
        );
    }

    #[test]
    fn jms_longs_ints_and_stomp_strings_are_read_alike() {
        let want = Spec {
            cron: None,
            delay: 1500,
            period: 200,
            repeat: 2,
        };
        let jms = msg(
            &[],
            vec![
                (DELAY, PropValue::Long(1500)),
                (PERIOD, PropValue::Long(200)),
                (REPEAT, PropValue::Int(2)),
            ],
        );
        assert_eq!(spec_of(&jms), Ok(Some(want.clone())));
        let stomp = msg(&[(DELAY, "1500"), (PERIOD, "200"), (REPEAT, " 2")], vec![]);
        assert_eq!(spec_of(&stomp), Ok(Some(want)));
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(matches!(
            spec_of(&msg(&[(DELAY, "soon")], vec![])),
            Err(ScheduleError::NotANumber { .. })
        ));
        assert_eq!(
            spec_of(&msg(&[(DELAY, "1"), (REPEAT, "1001")], vec![])),
            Err(ScheduleError::RepeatTooLarge)
        );
        assert_eq!(
            spec_of(&msg(&[(DELAY, "1"), (REPEAT, "-1")], vec![])),
            Err(ScheduleError::EndlessWithoutPeriod)
        );
        assert!(matches!(
            spec_of(&msg(&[(CRON, "* * *")], vec![])),
            Err(ScheduleError::BadCron { .. })
        ));
        assert!(matches!(
            spec_of(&msg(&[(CRON, "0 * * * * *")], vec![])),
            Err(ScheduleError::BadCron { .. })
        ));
    }

    #[test]
    fn delay_then_period_repeats_count_down_from_when_each_fired() {
        let spec = Spec {
            cron: None,
            delay: 1000,
            period: 300,
            repeat: 2,
        };
        assert_eq!(first_fire(&spec, 10_000), 11_000);
        let s = step(&spec, 11_010);
        assert_eq!(
            s,
            Step {
                deliver: true,
                spawn: false,
                next: Some((11_310, 1))
            }
        );
        let last = step(
            &Spec {
                repeat: 0,
                ..spec.clone()
            },
            12_000,
        );
        assert!(last.deliver && last.next.is_none());
        // No delay: the first fire is one period away.
        let p = Spec { delay: 0, ..spec };
        assert_eq!(first_fire(&p, 10_000), 10_300);
    }

    #[test]
    fn cron_jobs_fire_at_each_cron_time_and_spawn_when_they_repeat() {
        let spec = Spec {
            cron: Some("* * * * *".into()),
            delay: 0,
            period: 0,
            repeat: 0,
        };
        let now = 1_700_000_000_123;
        let first = first_fire(&spec, now);
        assert_eq!(first % 60_000, 0);
        assert!(first > now && first <= now + 60_000);
        let s = step(&spec, first);
        assert!(s.deliver && !s.spawn);
        assert_eq!(s.next, Some((first + 60_000, 0)));
        let r = step(
            &Spec {
                repeat: 3,
                period: 1000,
                ..spec.clone()
            },
            first,
        );
        assert!(!r.deliver && r.spawn);
        assert_eq!(spawned(&Spec { repeat: 3, ..spec }).cron, None);
    }

    #[test]
    fn the_delivered_copy_loses_the_schedule_and_gets_a_job_id() {
        let m = msg(
            &[(DELAY, "5"), ("k", "v")],
            vec![(REPEAT, PropValue::Int(1)), ("n", PropValue::Int(7))],
        );
        let c = delivered_copy(&m, "job-1", Some("ID:new:1:1:1".into()), 5000);
        assert_eq!(c.id, "ID:new:1:1:1");
        assert_eq!(c.header(DELAY), None);
        assert_eq!(c.property(REPEAT), None);
        assert_eq!(c.header("k"), Some("v"));
        assert_eq!(c.property("n"), Some(&PropValue::Int(7)));
        assert_eq!(c.header(JOB_ID), Some("job-1"));
        assert_eq!(c.timestamp_ms, 1000, "no expiry: the timestamp stays");
        assert!(renames(&m));
        let expiring = Message {
            expires_ms: 3000,
            ..m
        };
        let c = delivered_copy(&expiring, "job-1", None, 5000);
        assert_eq!((c.timestamp_ms, c.expires_ms), (5000, 7000));
    }

    #[test]
    fn the_index_hands_out_due_jobs_in_time_order_once() {
        let job = |t| Job {
            destination: Destination::queue("q"),
            created_ms: 0,
            next_ms: t,
            spec: Arc::new(Spec {
                cron: None,
                delay: 1,
                period: 0,
                repeat: 0,
            }),
            fired: 0,
            redeliveries: 0,
            loc: Location {
                segment: 1,
                offset: 0,
                len: 10,
            },
            firing: false,
        };
        let mut ix = Index::default();
        ix.insert(1, job(30));
        ix.insert(2, job(10));
        ix.insert(3, job(20));
        assert_eq!(ix.next_due(), Some(10));
        let due: Vec<u64> = ix.take_due(25, 10).into_iter().map(|(k, _)| k).collect();
        assert_eq!(due, [2, 3]);
        assert!(
            ix.take_due(25, 10).is_empty(),
            "firing jobs are not handed out twice"
        );
        ix.retry(2, 40);
        assert_eq!(ix.next_due(), Some(30));
        assert_eq!(ix.len(), 3);
        ix.remove(3);
        assert_eq!(ix.max_key(), 2);
    }
}
