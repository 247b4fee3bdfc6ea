//! The broker's visibility endpoint: `GET /status` (JSON) and `GET /metrics`
//! (Prometheus text) on `<tandem statusPort>`.
//!
//! How the numbers flow, with no lock on the message path:
//!
//! ```text
//!  shard (glommio executor)                         tandem-status thread (std)
//!  ─────────────────────────                        ──────────────────────────
//!  Router::register/unregister ─ atomic ─┐
//!  journal writer: each fsync ── atomic ─┤ ShardStats ──▶ Snapshot::collect ─▶ JSON
//!    (latency, records, bytes)           │
//!  ticker (500 ms): core.destination_    │  (Arc, one         (per request)   ─▶ Prometheus
//!    stats(), mem_used, JournalStats ────┘   per shard)        ▲
//!                                                              │
//!  replication link (any thread): role, ─ atomic ─▶ ReplicationStats
//!    epoch, peer, lag, shipped, rtt,                (one Arc per broker)
//!    records and bytes per frame
//! ```
//!
//! * [`stats`]    — [`ShardStats`]: what a shard publishes (atomics, fixed-bucket
//!   histograms of fsync latency and of records and bytes per fsync, a destination
//!   list swapped in by the ticker).
//! * [`replication`] — [`ReplicationStats`]: what the master/slave link publishes
//!   (role, epoch, peer state and address, lag, shipped counters, takeovers, a
//!   round-trip histogram with the fsync buckets, records and bytes per shipped frame).
//! * [`limits`]   — [`LimitStats`]: transaction bytes, pending output bytes and
//!   refusals of the per-connection and per-broker limits (one Arc per broker).
//! * [`snapshot`] — [`Snapshot`]: all shards and the replication state read once; the
//!   `/status` JSON shape.
//! * [`prom`]     — the Prometheus text, written by `prometheus-client`.
//! * [`server`]   — [`StatusListener`]: binding, routing, the admin checks.
//! * [`http`]     — the HTTP/1.1 server under it: bounded connections, read deadlines.
//! * [`admin`]    — `POST /admin/purge` and `/admin/delete`: the [`Admin`] operations
//!   `node` implements, HTTP Basic access for the admin group ([`AdminAuth`]), the
//!   cross-site checks, destination parsing.
//!
//! Why plain std threads: the shards run glommio executors (no tokio), and the
//! endpoint must never steal time from them. A blocking server on std threads needs no
//! runtime and keeps the executors' io_uring rings out of it. The listener is bound
//! before the shards start, so a port in use fails start-up like a connector's.
//! `tiny_http` was used before; it gives each connection a thread with no limit and no
//! read deadline (many idle connections exhausted the process), so [`http`] keeps the
//! socket handling and leaves parsing to `httparse`. hyper/axum would bring tokio.
//!
//! This module imports nothing from the rest of Tandem but replication's vocabulary,
//! `replication::role` ([`Role`], [`PeerState`], re-exported here): a leaf that imports
//! nothing, while `replication` imports [`ReplicationStats`] from here, so no file
//! imports back along that path. `broker` writes into it (and
//! the replication link will, through [`ReplicationStats`]), `node` wires it (and
//! implements [`Admin`], the operations behind `/admin/*`), `store` does not know it
//! exists (the journal reports each fsync's latency, records and bytes through a plain
//! callback).

pub mod admin;
pub mod http;
pub mod limits;
pub mod prom;
pub mod replication;
pub mod server;
pub mod snapshot;
pub mod stats;

pub use admin::{Admin, AdminAuth, AdminError, AdminUser};
pub use limits::{Limit, LimitStats, LimitsSnapshot};
pub use replication::{PeerState, ReplicationSnapshot, ReplicationStats, Role};
pub use server::StatusListener;
pub use snapshot::{BrokerInfo, Memory, MemoryByUse, Snapshot};
pub use stats::{DestinationStats, DivergedCounters, JournalCounters, ShardStats};
