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
    pub limits: Limits,
    /// `<virtualTopic>` rules: which topics are virtual and how their consumer queues
    /// are named (`broker::virtual_topic`); ActiveMQ's default rule when none is
    /// configured, none with `<virtualDestinations/>` empty.
    pub virtual_topics: Vec<super::virtual_topic::VirtualTopicRule>,
    /// `<destinationPolicy>`: per-destination dead-letter strategy and prefetch
    /// (`broker::policy`); empty (everything to `ActiveMQ.DLQ`) when not configured.
    pub policies: std::sync::Arc<super::policy::PolicyMap>,
    /// `<broker schedulerSupport>`: sends with `AMQ_SCHEDULED_*` properties are
    /// scheduled (`broker::scheduler`); off (ActiveMQ's default), they go at once.
    pub scheduler_support: bool,
    /// `<redeliveryPlugin>` (`broker::redelivery`); needs `scheduler_support`.
    pub redelivery_plugin: Option<super::redelivery::RedeliveryPlugin>,
}

/// Per-connection and per-broker limits (issue 11): what one client may make the broker
/// hold. Each refusal is a protocol error on that client's connection; other clients
/// are not affected. Defaults as README's configuration reference says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Message bytes one transaction may buffer before it is rolled back with an error.
    pub max_transaction_bytes: u64,
    /// Message bytes all open transactions together may buffer: the broker's memory
    /// limit (uncommitted sends live in memory until the commit).
    pub transaction_memory_bytes: u64,
    /// The largest prefetch granted; a client asking more gets this.
    pub max_prefetch: u32,
    /// Message bytes one consumer may have dispatched but not yet written to its socket:
    /// beyond it the consumer receives nothing more until its connection drains (at
    /// least one message always goes, whatever its size).
    pub max_pending_output_bytes: u64,
    pub max_subscriptions_per_connection: usize,
    pub max_transactions_per_connection: usize,
    pub max_producers_per_connection: usize,
    pub max_temp_destinations_per_connection: usize,
    /// Members of one composite destination (`a,b,c`).
    pub max_composite_destinations: usize,
    /// Destinations (queues and topics, temporary ones included) per broker.
    pub max_destinations: usize,
    /// `<storeUsage limit>`: journal bytes on disk (all shards) beyond which persistent
    /// sends are refused.
    pub store_limit_bytes: u64,
    /// `<tandem maxScheduledMessages>`: scheduled jobs the broker holds (all shards)
    /// before a scheduled send is refused.
    pub max_scheduled_messages: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_transaction_bytes: 32 << 20,
            transaction_memory_bytes: 64 << 20,
            max_prefetch: 32767,
            max_pending_output_bytes: 4 << 20,
            max_subscriptions_per_connection: 10_000,
            max_transactions_per_connection: 1_000,
            max_producers_per_connection: 10_000,
            max_temp_destinations_per_connection: 1_000,
            max_composite_destinations: 1_000,
            max_destinations: 100_000,
            store_limit_bytes: 100 << 30,
            max_scheduled_messages: 2_000_000,
        }
    }
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
            limits: Limits::default(),
            virtual_topics: vec![super::virtual_topic::VirtualTopicRule::activemq_default()],
            policies: Default::default(),
            scheduler_support: false,
            redelivery_plugin: None,
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
        find_user(&self.users, login, passcode).is_some()
    }
}

/// The user with this name and password, compared in constant time: every user is
/// checked in full (no early return), so the time taken says nothing about which
/// user name exists or how much of a password matched (only, as with any comparison
/// of secrets of different lengths, whether the lengths differ).
pub fn find_user<'u>(users: &'u [User], login: &str, password: &str) -> Option<&'u User> {
    use subtle::{ConditionallySelectable, ConstantTimeEq};
    let mut found = subtle::Choice::from(0);
    let mut index = 0u32;
    for (i, u) in users.iter().enumerate() {
        let hit = u.username.as_bytes().ct_eq(login.as_bytes())
            & u.password.as_bytes().ct_eq(password.as_bytes());
        // Usernames are unique (the config reader checks), so at most one hit.
        index.conditional_assign(&(i as u32), hit);
        found |= hit;
    }
    bool::from(found)
        .then(|| users.get(index as usize))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, password: &str) -> User {
        User {
            username: name.into(),
            password: password.into(),
            groups: vec!["g".into()],
        }
    }

    #[test]
    fn logins_match_name_and_password_exactly() {
        let users = vec![user("a", "pw-a"), user("b", ""), user("c", "pw-c")];
        assert_eq!(
            find_user(&users, "a", "pw-a").map(|u| &*u.username),
            Some("a")
        );
        assert_eq!(find_user(&users, "b", "").map(|u| &*u.username), Some("b"));
        assert_eq!(
            find_user(&users, "c", "pw-c").map(|u| &*u.username),
            Some("c")
        );
        for (name, pw) in [
            ("a", "pw-c"),
            ("a", "pw-a2"),
            ("a", "pw-"),
            ("d", ""),
            ("", ""),
        ] {
            assert!(find_user(&users, name, pw).is_none(), "{name}/{pw}");
        }
        let settings = BrokerSettings {
            users,
            auth_required: true,
            ..BrokerSettings::default()
        };
        assert!(settings.authenticate(Some("a"), Some("pw-a")));
        assert!(!settings.authenticate(Some("a"), None));
        assert!(!settings.authenticate(None, Some("pw-a")));
        assert!(BrokerSettings::default().authenticate(None, None));
    }
}
