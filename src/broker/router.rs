//! The per-shard handle a protocol session uses to reach the broker: post requests to
//! destination shards, register for the events addressed to its connection.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use crate::metrics::ShardStats;
use crate::rt::channel::{local_unbounded, LocalReceiver, LocalSender, Outbox};

use super::clients::Registries;
use super::destination::Destination;
use super::ops::{ConnId, Event, MeshMsg, Request, ShardId};
use super::settings::BrokerSettings;

/// Cheap to clone; one per shard, shared by every connection on it.
#[derive(Clone)]
pub struct Router {
    inner: Rc<RouterInner>,
}

struct RouterInner {
    shard: ShardId,
    outbox: Rc<Outbox<MeshMsg>>,
    settings: Arc<BrokerSettings>,
    connections: RefCell<HashMap<u64, LocalSender<Event>>>,
    next_serial: Cell<u64>,
    /// Makes message ids unique across restarts: the process start time.
    boot_id: String,
    next_message: Cell<u64>,
    /// Where the open-connections gauge is published.
    stats: Arc<ShardStats>,
    /// Broker-wide (shared by every shard's router).
    registries: Arc<Registries>,
}

/// The events addressed to one connection, in the order its shard received them.
pub struct ConnEvents {
    rx: LocalReceiver<Event>,
}

impl ConnEvents {
    pub async fn recv(&self) -> Option<Event> {
        self.rx.recv().await
    }
}

impl Router {
    pub fn new(
        outbox: Rc<Outbox<MeshMsg>>,
        settings: Arc<BrokerSettings>,
        boot_id: String,
    ) -> Router {
        let stats = Arc::new(ShardStats::new(outbox.shard(), false));
        Router::with_stats(outbox, settings, boot_id, stats, Arc::default())
    }

    /// Counts a TLS handshake on one of this shard's connectors (for `/metrics`).
    pub fn tls_handshake(&self, ok: bool) {
        self.inner.stats.tls_handshake(ok);
    }

    /// Like [`Router::new`], publishing the connection count into `stats`, with the
    /// broker-wide registries every shard shares.
    pub fn with_stats(
        outbox: Rc<Outbox<MeshMsg>>,
        settings: Arc<BrokerSettings>,
        boot_id: String,
        stats: Arc<ShardStats>,
        registries: Arc<Registries>,
    ) -> Router {
        Router {
            inner: Rc::new(RouterInner {
                shard: outbox.shard(),
                outbox,
                settings,
                connections: RefCell::new(HashMap::new()),
                next_serial: Cell::new(1),
                boot_id,
                next_message: Cell::new(1),
                stats,
                registries,
            }),
        }
    }

    pub fn shard(&self) -> ShardId {
        self.inner.shard
    }
    pub fn shard_count(&self) -> usize {
        self.inner.outbox.shard_count()
    }
    pub fn shard_of(&self, destination: &Destination) -> ShardId {
        destination.shard(self.shard_count())
    }
    pub fn settings(&self) -> &Arc<BrokerSettings> {
        &self.inner.settings
    }
    /// The broker-wide registries: JMS client ids, live temporary destinations.
    pub fn registries(&self) -> &Arc<Registries> {
        &self.inner.registries
    }
    /// What makes this process's ids unique (broker name and start time).
    pub fn boot_id(&self) -> &str {
        &self.inner.boot_id
    }

    /// A new broker-wide unique message id, in ActiveMQ's `ID:` style.
    pub fn next_message_id(&self) -> String {
        let n = self.inner.next_message.get();
        self.inner.next_message.set(n + 1);
        format!("ID:{}-{}-{}", self.inner.boot_id, self.inner.shard, n)
    }

    /// A new connection on this shard and the stream of its events.
    pub fn register(&self) -> (ConnId, ConnEvents) {
        let serial = self.inner.next_serial.get();
        self.inner.next_serial.set(serial + 1);
        let (tx, rx) = local_unbounded();
        self.inner.connections.borrow_mut().insert(serial, tx);
        self.inner.stats.connection_opened();
        (
            ConnId {
                shard: self.inner.shard,
                serial,
            },
            ConnEvents { rx },
        )
    }

    /// The connection is gone: every shard drops its consumers and returns their
    /// unacknowledged messages, and deletes its temporary destinations.
    pub fn unregister(&self, conn: ConnId) {
        if self
            .inner
            .connections
            .borrow_mut()
            .remove(&conn.serial)
            .is_some()
        {
            self.inner.stats.connection_closed();
        }
        for shard in 0..self.shard_count() {
            self.post(shard, Request::ConnectionClosed { conn });
        }
    }

    /// Queues a request for `shard`; never awaits.
    pub fn post(&self, shard: ShardId, request: Request) {
        if !self.inner.outbox.post(shard, MeshMsg::Request(request)) {
            tracing::error!(shard, "shard unreachable; request dropped");
        }
    }

    /// Sends an event to whichever shard must handle it.
    pub(crate) fn post_event(&self, event: Event) {
        let to = event.target_shard();
        if !self.inner.outbox.post(to, MeshMsg::Event(event)) {
            tracing::error!(shard = to, "shard unreachable; event dropped");
        }
    }

    /// Hands an event that arrived on this shard to its connection. Returns the event
    /// if the connection is gone (the caller then returns deliveries to their queue).
    pub(crate) fn deliver_local(&self, conn: ConnId, event: Event) -> Result<(), Event> {
        debug_assert_eq!(conn.shard, self.inner.shard);
        let connections = self.inner.connections.borrow();
        match connections.get(&conn.serial) {
            Some(tx) => tx.send(event),
            None => Err(event),
        }
    }
}
