//! Master/slave replication: the link between a master and its one slave, over which the
//! master ships every journal batch verbatim and the slave acknowledges what it has
//! received and made durable, so that a persistent operation is answered only once both
//! sides hold it. Design and failure handling: docs/REPLICATION.md.
//!
//! * [`auth`]  — the handshake's proofs and the decisions on each handshake frame.
//! * [`frame`] — the link's byte format (documented there).
//! * [`link`]  — one TCP link: coalescing writer, bounded frame reader.
//! * [`port`]  — messages and channels between the shards and the core.
//! * [`role`]  — the vocabulary: this node's [`role::Role`] and its link's
//!   [`role::PeerState`] (shown by the status endpoint).
//! * [`state`] — `<data>/node.state`: epoch, last role, peer, epoch history (format
//!   documented there).
//! * [`machine`] — the pair's decisions as a pure state machine (`step(now, input) ->
//!   effects`): discovery and campaigns (`machine/discover.rs`), following and serving,
//!   grants to confirm alone, probes, step-down (`machine/serve.rs`), the witness's
//!   answers (`machine/witness.rs`). `tests/sim.rs` drives it through a simulated world.
//! * [`core`]  — the replication executor: performs the machine's effects; discovery
//!   (`core/mod.rs`), the slave loop (`core/slave.rs`), the master loop and heartbeats
//!   (`core/master.rs`) with its parts: attach (`core/master_attach.rs`), shipping and
//!   the buffer bound (`core/master_ship.rs`, decisions in `core/flow.rs`), catch-up
//!   (`core/master_catch_up.rs`), acknowledgements and in-sync/degraded
//!   (`core/master_acks.rs`).
//!
//! This module imports nothing from `broker`: shards are reached through [`port`]
//! only, and `node` wires the two. From `metrics` it imports `ReplicationStats`
//! (what the core publishes, in `metrics::replication`); `metrics` imports [`role`]
//! only, a leaf that imports nothing, so no file imports back along that path.

pub mod auth;
pub mod core;
pub mod frame;
pub mod link;
pub mod machine;
pub mod port;
pub mod role;
pub mod state;
