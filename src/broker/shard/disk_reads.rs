//! The disk-read pump: outputs that need a message body that may be paged out to
//! the journal (deliveries, dead-letter moves, page-ins) are queued here and carried
//! out one at a time, in order, so a consumer never sees its deliveries reordered by
//! a disk read and the shard never blocks on one.

use std::rc::Rc;

use crate::broker::core::{dead_letter_copy, Body, Output};
use crate::broker::destination::Destination;
use crate::broker::message::MessageRef;
use crate::broker::ops::{BrokerError, Event, Reply, ReplyTo, Request};
use crate::broker::record::Record;
use crate::rt::channel::Oneshot;
use crate::store::Journal;
use crate::store::Location;

use super::mesh::{delivery, process_outputs};
use super::replica_gate::settle;
use super::Shared;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub(super) fn push_pending(shared: &Rc<Shared>, p: Output) {
    shared.pending.borrow_mut().push_back(p);
    if let Some(wake) = shared.pending_wake.borrow_mut().take() {
        wake.set(());
    }
}

/// Reads a message back from the journal: the record at `loc` is an `Enqueue`, or a
/// `Tx`/`Prepare` that contains the one for (`destination`, `seq`).
async fn load(
    journal: &Journal,
    loc: Location,
    destination: &Destination,
    seq: u64,
) -> Result<MessageRef, String> {
    let payload = journal.read(loc).await.map_err(|e| e.to_string())?;
    let rec = Record::decode(&payload).map_err(|e| e.to_string())?;
    find_message(rec, destination, seq).ok_or_else(|| format!("message {seq} not in record"))
}

fn find_message(rec: Record, destination: &Destination, seq: u64) -> Option<MessageRef> {
    match rec {
        Record::Enqueue {
            seq: s, message, ..
        } if s == seq && message.destination == *destination => Some(message),
        Record::Tx(records)
        | Record::Prepare { records, .. }
        | Record::Fire { then: records, .. } => records
            .into_iter()
            .find_map(|r| find_message(r, destination, seq)),
        _ => None,
    }
}

/// Reads the message of scheduled job `key` back from the record at `loc`: a
/// `Schedule`, or a `Tx`/`Prepare`/`Fire` that contains it.
pub(super) async fn load_scheduled(
    journal: &Journal,
    loc: Location,
    key: u64,
) -> Option<MessageRef> {
    let found = match journal.read(loc).await {
        Ok(payload) => Record::decode(&payload)
            .map_err(|e| e.to_string())
            .and_then(|r| find_job(r, key).ok_or_else(|| format!("job {key} not in record"))),
        Err(e) => Err(e.to_string()),
    };
    found
        .inspect_err(|e| tracing::error!(key, error = %e, "cannot read a scheduled message back from the journal"))
        .ok()
}

fn find_job(rec: Record, key: u64) -> Option<MessageRef> {
    match rec {
        Record::Schedule {
            key: k, message, ..
        } if k == key => Some(message),
        Record::Tx(records)
        | Record::Prepare { records, .. }
        | Record::Fire { then: records, .. } => records.into_iter().find_map(|r| find_job(r, key)),
        _ => None,
    }
}

pub(super) async fn resolve(
    shared: &Shared,
    body: Body,
    destination: &Destination,
    seq: u64,
) -> Option<MessageRef> {
    match body {
        Body::Memory(m) => Some(m),
        Body::Disk(loc) => match load(&shared.journal, loc, destination, seq).await {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::error!(%destination, seq, error = %e, "cannot read a message back from the journal");
                None
            }
        },
    }
}

pub(super) async fn pending_pump(shared: Rc<Shared>) {
    loop {
        let next = shared.pending.borrow_mut().pop_front();
        shared.pump_busy.set(next.is_some());
        let Some(p) = next else {
            let wake = Oneshot::default();
            *shared.pending_wake.borrow_mut() = Some(wake.clone());
            wake.wait().await;
            continue;
        };
        let Some(router) = shared.router.borrow().clone() else {
            continue;
        };
        match p {
            Output::Deliver {
                sub,
                destination,
                seq,
                body,
                redeliveries,
                stored_at,
            } => {
                // Not before the message is durable here and on the slave (see
                // `Output::Deliver`); the deliveries behind it wait in order, and with
                // group commit they mostly settle in the same batch.
                if let Some(l) = stored_at {
                    if let Err(e) = settle(&shared, l.end()).await {
                        tracing::error!(%destination, seq, error = %e, "message not delivered: its journal write failed");
                        process_outputs(&shared);
                        continue;
                    }
                }
                if let Some(msg) = resolve(&shared, body, &destination, seq).await {
                    router.post_event(delivery(sub, msg, seq, destination, redeliveries));
                }
            }
            Output::PageIn {
                destination,
                seq,
                loc,
                token,
            } => {
                let msg = resolve(&shared, Body::Disk(loc), &destination, seq).await;
                shared.core.borrow_mut().paged_in(token, msg);
            }
            Output::DeadLetter {
                destination,
                to,
                body,
                seq,
                token,
                reason,
            } => {
                let msg = resolve(&shared, body, &destination, seq).await;
                let reply = Reply {
                    to: ReplyTo::Shard(shared.shard),
                    token,
                };
                match msg {
                    Some(m) => {
                        let copy = MessageRef::new(dead_letter_copy(&m, reason, &to));
                        router.post(router.shard_of(&to), Request::Send { msg: copy, reply });
                    }
                    None => {
                        tracing::error!(%destination, seq, "cannot read a message to dead-letter it");
                        router.post_event(Event::Done {
                            reply,
                            result: Err(BrokerError::UnreadableMessage),
                        });
                    }
                }
            }
            Output::Redeliver {
                destination,
                body,
                seq,
                token,
            } => {
                let msg = resolve(&shared, body, &destination, seq).await;
                let mut sink = super::journal_sink::Sink(&shared);
                shared
                    .core
                    .borrow_mut()
                    .redeliver(token, msg, now_ms(), &mut sink);
            }
            Output::BrowseEnd { sub, destination } => {
                router.post_event(Event::BrowseEnd { sub, destination });
            }
            Output::Reply { .. } | Output::Post { .. } => {
                unreachable!(
                    "only deliveries, browse ends, dead-letter and redelivery moves and page-ins are queued"
                )
            }
        }
        process_outputs(&shared);
    }
}
