//! Runtime settings the broker core and protocol sessions read, distilled from the
//! configuration by `node` (so neither layer depends on the config format).

use std::time::Duration;

/// A user of the simple authentication plugin.
#[derive(Clone, Debug)]
pub struct User {
    pub username: String,
    pub password: String,
    pub groups: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct BrokerSettings {
    pub broker_name: String,
    /// Empty with `auth_required == false`: anyone may connect.
    pub users: Vec<User>,
    pub auth_required: bool,
    /// Largest frame (headers + body) a client may send.
    pub max_frame_bytes: usize,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    /// Prefetch for a subscription that names none (ActiveMQ's queue default).
    pub default_prefetch: u32,
    /// Heart-beat interval the broker offers and wants (STOMP `heart-beat`).
    pub heartbeat: Duration,
    /// Sends a connection may have outstanding (not yet completed by the destination's
    /// shard) before it stops reading from its socket: producer flow control.
    pub max_pending_sends: usize,
    /// Memory for message bodies on each shard before persistent bodies are left on
    /// disk and non-persistent producers are held back.
    pub shard_memory_limit_bytes: usize,
    /// Deliveries after which a message goes to the dead-letter queue instead.
    pub maximum_redeliveries: u32,
    /// How long a connection may take to send CONNECT.
    pub connect_timeout: Duration,
}

impl Default for BrokerSettings {
    fn default() -> Self {
        BrokerSettings {
            broker_name: "localhost".into(),
            users: Vec::new(),
            auth_required: false,
            max_frame_bytes: 64 * 1024 * 1024,
            max_header_bytes: 10 * 1024,
            max_headers: 1000,
            default_prefetch: 1000,
            heartbeat: Duration::from_secs(10),
            max_pending_sends: 256,
            shard_memory_limit_bytes: 64 * 1024 * 1024,
            maximum_redeliveries: 6,
            connect_timeout: Duration::from_secs(30),
        }
    }
}

impl BrokerSettings {
    /// Checks a login. With no authentication plugin configured, everyone is welcome.
    pub fn authenticate(&self, login: Option<&str>, passcode: Option<&str>) -> bool {
        if !self.auth_required {
            return true;
        }
        let (Some(login), Some(passcode)) = (login, passcode) else {
            return false;
        };
        self.users
            .iter()
            .any(|u| u.username == login && u.password == passcode)
    }
}
