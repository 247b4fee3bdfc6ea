//! Replication's vocabulary: the role this node plays in the pair ([`Role`]) and the
//! state of its link to the other node ([`PeerState`]). The replication core sets
//! them, `<data>/node.state` remembers the last role ([`super::state`]), and the
//! status endpoint shows them (`GET /status` `replication.role`/`.peer`, the
//! Prometheus `role`/`state` labels): the spellings here are those of the JSON and
//! the labels.
//!
//! Import direction: this file imports nothing from Tandem. `metrics::replication`
//! imports it (and re-exports both types, so `metrics::replication::Role` and
//! `metrics::Role` still name them); `replication::port` and `replication::core`
//! import `metrics::replication::ReplicationStats`, which imports only this file and
//! the leaf `metrics::stats`. No file imports back along that path.

use serde::Serialize;

/// This node's part in the pair.
///
/// `<data>/node.state` remembers the role a node last had as `Option<Role>`
/// ([`super::state::NodeState::role`]): `None` when it never served nor followed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// No replication configured (or not running yet).
    #[default]
    Standalone,
    Master,
    Slave,
}

impl Role {
    /// Every role, in the order the Prometheus `role` label lists them.
    pub const ALL: [Role; 3] = [Role::Standalone, Role::Master, Role::Slave];

    /// The JSON / Prometheus label spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Standalone => "standalone",
            Role::Master => "master",
            Role::Slave => "slave",
        }
    }
}

/// The state of the link to the other node, as this node sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PeerState {
    /// No peer (standalone, or a master with no slave attached).
    #[default]
    None,
    /// Connecting / handshaking.
    Connecting,
    /// Attached, catching up on the backlog.
    Syncing,
    /// Attached and caught up: operations are acknowledged by both sides.
    InSync,
    /// Attached but behind or unhealthy (e.g. the slave stopped acknowledging).
    Degraded,
}

impl PeerState {
    /// Every state, in the order the Prometheus `state` label lists them.
    pub const ALL: [PeerState; 5] = [
        PeerState::None,
        PeerState::Connecting,
        PeerState::Syncing,
        PeerState::InSync,
        PeerState::Degraded,
    ];

    /// The JSON / Prometheus label spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PeerState::None => "none",
            PeerState::Connecting => "connecting",
            PeerState::Syncing => "syncing",
            PeerState::InSync => "in-sync",
            PeerState::Degraded => "degraded",
        }
    }
}
