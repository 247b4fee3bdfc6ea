//! The broker-wide registry of JMS client ids: ActiveMQ lets one connection at a time
//! hold a client id (it keys durable subscriptions), whatever shard the connections
//! live on. A mutex, not a shard message: claims happen once per connection.

use std::collections::HashMap;
use std::sync::Mutex;

use super::ops::ConnId;

/// Who holds a client id.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Holder {
    conn: ConnId,
    /// The client's own connection id (OpenWire `ConnectionId`): a client that
    /// reconnects (failover) with the same one takes the client id over.
    connection_id: String,
}

#[derive(Debug, Default)]
pub struct ClientIds {
    held: Mutex<HashMap<String, Holder>>,
}

impl ClientIds {
    /// Gives `client_id` to `conn`. Granted if free, already `conn`'s, or held under the
    /// same client connection id (a failover client back before its old socket was
    /// noticed dead: "last one in wins", as ActiveMQ does). `Err(holder)` otherwise.
    pub fn claim(&self, client_id: &str, conn: ConnId, connection_id: &str) -> Result<(), ConnId> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        match held.get(client_id) {
            Some(h) if h.conn != conn && h.connection_id != connection_id => Err(h.conn),
            _ => {
                held.insert(
                    client_id.to_owned(),
                    Holder {
                        conn,
                        connection_id: connection_id.to_owned(),
                    },
                );
                Ok(())
            }
        }
    }

    /// `conn` lets go of `client_id` (no-op if another connection took it over).
    pub fn release(&self, client_id: &str, conn: ConnId) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if held.get(client_id).is_some_and(|h| h.conn == conn) {
            held.remove(client_id);
        }
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
        assert_eq!(ids.claim("c", conn(1), "ID:a"), Ok(()));
        assert_eq!(ids.claim("c", conn(1), "ID:a"), Ok(()));
        assert_eq!(ids.claim("c", conn(2), "ID:b"), Err(conn(1)));
        // The same client connection on a new socket takes it over; the old one's
        // release then changes nothing.
        assert_eq!(ids.claim("c", conn(3), "ID:a"), Ok(()));
        ids.release("c", conn(1));
        assert_eq!(ids.claim("c", conn(2), "ID:b"), Err(conn(3)));
        ids.release("c", conn(3));
        assert_eq!(ids.claim("c", conn(2), "ID:b"), Ok(()));
    }
}
