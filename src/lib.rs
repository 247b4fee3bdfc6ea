//! Tandem: an ActiveMQ-compatible message broker built on thread-per-core shards.
//!
//! Module map (imports point down only: `node -> net -> protocol -> broker -> store -> rt`,
//! and `node -> replication -> store, witness, rt`; `broker` and `replication` never
//! import each other):
//!
//! * [`config`]   — `activemq.xml`-style configuration, parsed and validated into typed settings.
//! * [`uri`]      — transport URIs (`stomp://host:port`, `tcp://…`, `failover:(…)?opts`).
//! * [`node`]     — composition root: executors, shards, the replication core, listeners;
//!   wires the channels and carries out role changes (serve, take over, stop).
//! * [`net`]      — listeners, protocol sniffing, and the per-connection read/write loop
//!   shared by every protocol.
//! * [`protocol`] — wire protocols (STOMP 1.0–1.2, OpenWire v1–v12 for JMS clients), each a
//!   codec plus a session state machine, turned into protocol-neutral broker operations.
//! * [`broker`]   — destinations, subscriptions, dispatch, transactions, and `apply(record)`.
//! * [`store`]    — the per-shard journal: record framing, segments, group commit, replay.
//! * [`replication`] — master/slave: the pair's decisions (a pure state machine), role
//!   discovery, the link, log shipping, catch-up, takeover, epochs (docs/REPLICATION.md).
//! * [`metrics`]  — per-shard counters and the HTTP `/status`, `/metrics` and `/admin/*` endpoint.
//! * [`rt`]       — the only module that imports glommio: executors, channels, files, sockets.
//! * [`witness`]  — the etcd witness: a blocking etcd v3 client (JSON gateway) and an agent
//!   thread that campaigns for, renews and updates the pair's lease, so a partition never
//!   gives two masters.
//! * [`client`]   — blocking STOMP and OpenWire clients with ActiveMQ-style failover (one
//!   reconnect/replay core, one adapter per protocol), for tools and tests.
//! * `fault`      — test-only fault hooks, compiled in with the `fault-injection` feature.

/// Index of a shard (executor) in `0..shard_count`: one name for it in every module.
/// On the replication link a shard is a `u16` (`replication::frame`), converted
/// there and only there (a shard count is validated to at most 1024).
pub type ShardId = usize;

pub mod broker;
pub mod client;
pub mod config;
#[cfg(feature = "fault-injection")]
pub mod fault;
pub mod metrics;
pub mod net;
pub mod node;
pub mod protocol;
pub mod replication;
pub mod rt;
pub mod store;
pub mod uri;
pub mod witness;
