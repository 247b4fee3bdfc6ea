//! The broker core: destinations, subscriptions, dispatch, transactions.
//!
//! * [`destination`] — queue/topic names and which shard owns them.
//! * [`message`]     — the immutable message shared between destinations and consumers.
//! * [`ops`]         — requests and events that cross shards.
//! * [`router`]      — the per-shard handle sessions use to reach destinations.
//! * [`producer_audit`] — duplicate persistent sends (failover replays) by producer sequence.
//! * [`clients`]     — broker-wide registries of JMS client ids and temporary destinations.
//! * [`settings`]    — runtime settings distilled from the configuration.
//! * [`virtual_topic`] — virtual topics: which queues are a topic's consumer queues, and
//!   the broker-wide index of those that exist, that expands a send.
//! * [`policy`]      — per-destination policies (`<policyEntry>`): dead-letter strategy,
//!   prefetch; which entry applies to a destination.
//! * [`redelivery`]  — the redelivery plugin: a refused message back to its queue after
//!   a delay (as a scheduled message) instead of to the dead-letter queue.
//! * [`scheduler`]   — scheduled delivery: which sends are scheduled, when jobs fire, the
//!   copy they deliver, and the in-memory index of a shard's jobs (no bodies).
//! * [`wildcard`]    — ActiveMQ destination patterns (`*` one segment, `>` the rest).
//! * [`diverged`]    — which messages a diverged log (set aside after a split brain)
//!   stored that its new master never had: what a replay resends.

pub mod backlog;
pub mod clients;
pub mod core;
#[cfg(test)]
mod core_tests;
pub mod destination;
pub mod diverged;
pub mod message;
pub mod ops;
pub mod policy;
pub mod producer_audit;
pub mod record;
pub mod redelivery;
pub mod router;
pub mod scheduler;
pub mod selector;
pub mod seq_map;
pub mod settings;
pub mod shard;
pub mod virtual_topic;
pub mod wildcard;

pub use clients::{ClientIds, Registries, TempDestinations};
pub use destination::{DestKind, Destination};
pub use message::{BodyKind, BodyType, Message, MessageRef, PropValue};
pub use ops::*;
pub use router::{ConnEvents, Router};
pub use settings::{BrokerSettings, Limits, User};
pub use virtual_topic::{VirtualTopicIndex, VirtualTopicRule};
