//! Broker-wide registries client connections share, whatever shard they live on:
//!
//! * [`ClientIds`]: ActiveMQ lets one connection at a time hold a client id (it keys
//!   durable subscriptions), whichever protocol claims it: a STOMP `client-id` and a JMS
//!   client id are one namespace;
//! * [`TempDestinations`]: the live temporary destinations and the client connection
//!   that created each, replayed to a JMS connection's advisory consumer when it
//!   subscribes (a JMS client refuses to send to a temporary destination it has not
//!   heard of).
//!
//! * [`VirtualTopicIndex`]: which virtual-topic consumer queues exist (kept by the
//!   shards that hold them; a send to a virtual topic is expanded with it).
//!
//! Mutexes, not shard messages: they change once per connection or temporary
//! destination, never per message.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use super::destination::Destination;
use super::ops::ConnId;
use super::virtual_topic::VirtualTopicIndex;

/// Who holds a client id.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Holder {
    conn: ConnId,
    /// The client's own connection id (OpenWire `ConnectionId`): a client that
    /// reconnects (failover) with the same one takes the client id over. `None` (a
    /// STOMP connection, which has no such id): never taken over, so no client can
    /// name its way into another's id.
    connection_id: Option<String>,
}

#[derive(Debug, Default)]
pub struct ClientIds {
    held: Mutex<HashMap<String, Holder>>,
}

impl ClientIds {
    /// Gives `client_id` to `conn`. Granted if free, already `conn`'s, or held under the
    /// same client connection id (a failover client back before its old socket was
    /// noticed dead: "last one in wins", as ActiveMQ does). `Ok(Some(stale))` names the
    /// connection taken over, which should be closed; `Err(holder)` if refused.
    /// `connection_id`: the OpenWire `ConnectionId`; `None` for STOMP, whose claims are
    /// never taken over and never take over.
    pub fn claim(
        &self,
        client_id: &str,
        conn: ConnId,
        connection_id: Option<&str>,
    ) -> Result<Option<ConnId>, ConnId> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let stale = match held.get(client_id) {
            Some(h) if h.conn == conn => None,
            Some(h) if connection_id.is_some() && h.connection_id.as_deref() == connection_id => {
                Some(h.conn)
            }
            Some(h) => return Err(h.conn),
            None => None,
        };
        held.insert(
            client_id.to_owned(),
            Holder {
                conn,
                connection_id: connection_id.map(str::to_owned),
            },
        );
        Ok(stale)
    }

    /// `conn` lets go of `client_id` (no-op if another connection took it over).
    pub fn release(&self, client_id: &str, conn: ConnId) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if held.get(client_id).is_some_and(|h| h.conn == conn) {
            held.remove(client_id);
        }
    }
}

/// The registries, shared by every shard's router (and so by every protocol).
#[derive(Debug)]
pub struct Registries {
    pub client_ids: ClientIds,
    pub temp_destinations: TempDestinations,
    /// Virtual topic -> its consumer queues that exist now.
    pub virtual_topics: std::sync::Arc<VirtualTopicIndex>,
    /// Transaction bytes, pending output and refusals of the connection limits: shared
    /// with `/status` and `/metrics`.
    pub limits: std::sync::Arc<crate::metrics::LimitStats>,
}

impl Default for Registries {
    fn default() -> Self {
        let limits = std::sync::Arc::<crate::metrics::LimitStats>::default();
        Registries {
            client_ids: ClientIds::default(),
            temp_destinations: TempDestinations::default(),
            virtual_topics: std::sync::Arc::new(VirtualTopicIndex::counting_in(limits.clone())),
            limits,
        }
    }
}

/// The live temporary destinations created by JMS clients.
#[derive(Debug, Default)]
pub struct TempDestinations {
    /// Destination -> (owning connection, the client's connection id).
    live: Mutex<BTreeMap<Destination, (ConnId, String)>>,
}

impl TempDestinations {
    pub fn add(&self, destination: Destination, owner: ConnId, connection_id: &str) {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.insert(destination, (owner, connection_id.to_owned()));
    }

    /// Removes `owner`'s `destination`; false if it was not there (or not `owner`'s).
    pub fn remove(&self, destination: &Destination, owner: ConnId) -> bool {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        match live.get(destination) {
            Some((o, _)) if *o == owner => live.remove(destination).is_some(),
            _ => false,
        }
    }

    /// Every live temporary destination with its client connection id.
    pub fn snapshot(&self) -> Vec<(Destination, String)> {
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.iter()
            .map(|(d, (_, c))| (d.clone(), c.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(serial: u64) -> ConnId {
        ConnId { shard: 0, serial }
    }

    #[test]
    fn one_holder_at_a_time_and_failover_takes_over() {
        let ids = ClientIds::default();
        assert_eq!(ids.claim("c", conn(1), Some("ID:a")), Ok(None));
        assert_eq!(ids.claim("c", conn(1), Some("ID:a")), Ok(None));
        assert_eq!(ids.claim("c", conn(2), Some("ID:b")), Err(conn(1)));
        // The same client connection on a new socket takes it over (the stale one is
        // named, to be closed); the old one's release then changes nothing.
        assert_eq!(ids.claim("c", conn(3), Some("ID:a")), Ok(Some(conn(1))));
        ids.release("c", conn(1));
        assert_eq!(ids.claim("c", conn(2), Some("ID:b")), Err(conn(3)));
        ids.release("c", conn(3));
        assert_eq!(ids.claim("c", conn(2), Some("ID:b")), Ok(None));
    }

    #[test]
    fn stomp_claims_share_the_namespace_and_are_never_taken_over() {
        let ids = ClientIds::default();
        assert_eq!(ids.claim("s", conn(1), None), Ok(None));
        assert_eq!(ids.claim("s", conn(2), None), Err(conn(1)));
        assert_eq!(ids.claim("s", conn(3), Some("ID:x")), Err(conn(1)));
        ids.release("s", conn(1));
        assert_eq!(ids.claim("s", conn(3), Some("ID:x")), Ok(None));
        assert_eq!(ids.claim("s", conn(4), None), Err(conn(3)));
    }

    #[test]
    fn temporary_destinations_are_removed_by_their_owner_only() {
        let temps = TempDestinations::default();
        let d = Destination {
            kind: crate::broker::DestKind::TempQueue,
            name: "ID:a:1".into(),
        };
        temps.add(d.clone(), conn(1), "ID:a");
        assert!(!temps.remove(&d, conn(2)));
        assert_eq!(temps.snapshot(), vec![(d.clone(), "ID:a".to_string())]);
        assert!(temps.remove(&d, conn(1)));
        assert!(temps.snapshot().is_empty());
    }
}
