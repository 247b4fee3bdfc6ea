//! Mesh dispatch: what arrives from the other shards (requests, replies to this
//! shard's own requests, events for local connections) goes to the core, and what the
//! core asks for goes out: replies once their records are settled, requests to other
//! shards, deliveries that need no disk read. Anything that might need one is queued
//! for the disk-read pump so deliveries keep their order.

use std::rc::Rc;

use crate::broker::core::{Body, Output};
use crate::broker::destination::Destination;
use crate::broker::message::MessageRef;
use crate::broker::ops::{Delivery, Event, MeshMsg, ReplyTo, SubKey};
use crate::rt;

use super::disk_reads::push_pending;
use super::journal_sink::Sink;
use super::replica_gate::{settle, settled};
use super::Shared;

pub(super) fn on_mesh_message(shared: &Rc<Shared>, msg: MeshMsg) {
    match msg {
        MeshMsg::Request(req) => {
            let mut sink = Sink(shared);
            shared.core.borrow_mut().handle(req, &mut sink);
        }
        MeshMsg::Event(Event::Done { reply, result })
            if reply.to == ReplyTo::Shard(shared.shard) =>
        {
            let mut sink = Sink(shared);
            shared
                .core
                .borrow_mut()
                .on_internal_done(reply.token, result, &mut sink);
        }
        MeshMsg::Event(ev) => {
            let conn = match &ev {
                Event::Deliver(d) => d.sub.conn,
                Event::Evict { conn } => *conn,
                Event::BrowseEnd { sub, .. } => sub.conn,
                Event::Done { reply, .. } => match reply.to {
                    ReplyTo::Conn(c) => c,
                    ReplyTo::Shard(_) => return,
                },
            };
            if let Some(router) = shared.router.borrow().as_ref() {
                // A connection that is gone drops its events: its shard has told every
                // destination shard, which return its deliveries to their queues.
                let _ = router.deliver_local(conn, ev);
            }
        }
    }
    process_outputs(shared);
}

pub(super) fn process_outputs(shared: &Rc<Shared>) {
    let outputs = shared.core.borrow_mut().drain();
    if shared.core.borrow().has_browse_work() && !shared.browse_kick.get() {
        // A browse step stopped at its scan bound (so one browser cannot hold the
        // shard): continue in a task of its own, after whatever else is queued.
        shared.browse_kick.set(true);
        let again = shared.clone();
        rt::spawn_local(async move {
            again.browse_kick.set(false);
            process_outputs(&again);
        });
    }
    if outputs.is_empty() {
        return;
    }
    let Some(router) = shared.router.borrow().clone() else {
        return;
    };
    for out in outputs {
        match out {
            Output::Reply {
                reply,
                durable_at,
                result,
            } => match durable_at {
                Some(t) if !settled(shared, t) => {
                    let waiter = shared.clone();
                    let router = router.clone();
                    rt::spawn_local(async move {
                        let result = settle(&waiter, t).await.and(result);
                        router.post_event(Event::Done { reply, result });
                    });
                }
                _ => router.post_event(Event::Done { reply, result }),
            },
            Output::Deliver {
                sub,
                destination,
                seq,
                body: Body::Memory(msg),
                redeliveries,
                stored_at,
            } if shared.pending.borrow().is_empty()
                && !shared.pump_busy.get()
                && stored_at.is_none_or(|l| settled(shared, l.end())) =>
            {
                router.post_event(delivery(sub, msg, seq, destination, redeliveries));
            }
            // Behind the browser's last delivery, which may still be in `pending`.
            Output::BrowseEnd { sub, destination }
                if shared.pending.borrow().is_empty() && !shared.pump_busy.get() =>
            {
                router.post_event(Event::BrowseEnd { sub, destination });
            }
            Output::Post { shard, request } => router.post(shard, request),
            other @ (Output::Deliver { .. }
            | Output::DeadLetter { .. }
            | Output::Redeliver { .. }
            | Output::PageIn { .. }
            | Output::BrowseEnd { .. }) => push_pending(shared, other),
        }
    }
}

pub(super) fn delivery(
    sub: SubKey,
    msg: MessageRef,
    seq: u64,
    destination: Destination,
    redeliveries: u32,
) -> Event {
    Event::Deliver(Delivery {
        sub,
        msg,
        seq,
        destination,
        redelivered: redeliveries > 0,
        redelivery_count: redeliveries,
    })
}
