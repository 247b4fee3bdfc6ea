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
//!  ticker (500 ms): core.destination_    │  (Arc, one         (per request)   ─▶ Prometheus
//!    stats(), mem_used, JournalStats ────┘   per shard)        ▲
//!                                                              │
//!  replication link (any thread): role, ─ atomic ─▶ ReplicationStats
//!    epoch, peer, lag, shipped, rtt                 (one Arc per broker)
//! ```
//!
//! * [`stats`]    — [`ShardStats`]: what a shard publishes (atomics, a fixed-bucket
//!   fsync histogram, a destination list swapped in by the ticker).
//! * [`replication`] — [`ReplicationStats`]: what the master/slave link publishes
//!   (role, epoch, peer state and address, lag, shipped counters, takeovers, a
//!   round-trip histogram with the fsync buckets).
//! * [`snapshot`] — [`Snapshot`]: all shards and the replication state read once; the
//!   `/status` JSON shape.
//! * [`prom`]     — the Prometheus text, written by `prometheus-client`.
//! * [`server`]   — [`StatusListener`]: binding and the HTTP thread (`tiny_http`).
//! * [`admin`]    — `POST /admin/purge` and `/admin/delete`: the [`Admin`] operations
//!   `node` implements, HTTP Basic access ([`AdminAuth`]), destination parsing.
//!
//! Why `tiny_http` on its own thread: the shards run glommio executors (no tokio), and
//! the endpoint must never steal time from them. A blocking server on a plain std
//! thread needs no runtime, keeps the executors' io_uring rings out of it, and a scrape
//! that stalls stalls only that thread. `tiny_http` is small, maintained, parses
//! HTTP/1.1 properly (keep-alive, chunked bodies, bad requests) and takes an already
//! bound `std::net::TcpListener`, so the port is bound before the shards start and a
//! port in use fails start-up like a connector's. hyper/axum would bring tokio.
//!
//! This module imports nothing from the rest of Tandem: `broker` writes into it (and
//! the replication link will, through [`ReplicationStats`]), `node` wires it (and
//! implements [`Admin`], the operations behind `/admin/*`), `store` does not know it
//! exists (the journal reports fsync latency through a plain callback).

pub mod admin;
pub mod prom;
pub mod replication;
pub mod server;
pub mod snapshot;
pub mod stats;

pub use admin::{Admin, AdminAuth, AdminError};
pub use replication::{PeerState, ReplicationSnapshot, ReplicationStats, Role};
pub use server::StatusListener;
pub use snapshot::{BrokerInfo, Memory, Snapshot};
pub use stats::{DestinationStats, JournalCounters, ShardStats};
