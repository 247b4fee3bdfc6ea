//! Resending one stored message through the crate's own clients: STOMP
//! ([`crate::client::Client`]) for `stomp://` URLs, OpenWire
//! ([`crate::client::openwire::Client`]) for `tcp://` and `nio://`, either under
//! `failover:(...)`. Each send waits for the broker's confirmation (a RECEIPT, an
//! OpenWire Response): for a persistent message, it is stored.
//!
//! The message goes to its original destination, persistent, with its body, headers
//! and properties, priority, expiration, reply-to, correlation id and type as stored,
//! plus the string property [`REPLAYED_FROM`] naming its original id. It gets a fresh
//! id from a fresh producer (this client's): under its original producer id and
//! sequence, the broker's duplicate detection (`broker::producer_audit`) would drop it
//! whenever that producer had sent a later message.
//!
//! OpenWire carries every stored message as a JMS client would receive it (message
//! class, typed properties, compressed bodies, the JMS timestamp). STOMP carries what a
//! STOMP producer can make: a text or bytes body and string properties; any other
//! message is left for a `tcp://` URL ([`Wire::cannot_carry`]).

use crate::broker::{BodyKind, Message};
use crate::client::openwire::{Client as OpenWireClient, OpenWireOptions};
use crate::client::{Client as StompClient, ClientError, ClientOptions};
use crate::protocol::openwire::session::convert::to_openwire_message;
use crate::protocol::stomp::session::NON_PROPERTY_HEADERS;
use crate::uri::{FailoverUri, Scheme};

/// The property a replayed message carries: its original message id.
pub const REPLAYED_FROM: &str = "TandemReplayedFrom";

/// Which protocol a URL speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire {
    Stomp,
    OpenWire,
}

impl Wire {
    /// The protocol of `url` (every URI of a failover list must speak the same one).
    pub fn of(url: &str) -> Result<Wire, String> {
        let uri = FailoverUri::parse(url).map_err(|e| format!("--url {url}: {e}"))?;
        let wire = |s: &Scheme| match s {
            Scheme::Stomp | Scheme::StompNio | Scheme::StompSsl | Scheme::StompNioSsl => {
                Some(Wire::Stomp)
            }
            Scheme::Tcp | Scheme::Nio | Scheme::Ssl | Scheme::NioSsl => Some(Wire::OpenWire),
            _ => None,
        };
        let mut wires = uri.uris.iter().map(|u| wire(&u.scheme));
        let first = wires.next().flatten();
        match first {
            Some(w) if wires.all(|x| x == Some(w)) => Ok(w),
            _ => Err(format!(
                "--url {url}: use stomp:// (STOMP) or tcp:// (OpenWire) URIs, one protocol for all"
            )),
        }
    }

    /// Why `m` cannot be resent faithfully over this protocol, if it cannot.
    pub fn cannot_carry(self, m: &Message) -> Option<&'static str> {
        if self == Wire::OpenWire {
            return None;
        }
        let t = m.body_type;
        if !matches!(t.kind, BodyKind::Text | BodyKind::Bytes) || t.compressed || t.null {
            return Some("a JMS message class or body STOMP cannot carry (use a tcp:// URL)");
        }
        if !m.properties.is_empty() {
            return Some("typed JMS properties STOMP would turn into strings (use a tcp:// URL)");
        }
        None
    }
}

/// A connected client of either protocol.
pub enum Sender {
    Stomp(StompClient),
    OpenWire(OpenWireClient),
}

impl Sender {
    /// Connects to `url` (see [`Wire::of`]) with these credentials.
    pub fn connect(
        url: &str,
        wire: Wire,
        user: Option<&str>,
        password: Option<&str>,
    ) -> Result<Sender, ClientError> {
        Ok(match wire {
            Wire::Stomp => Sender::Stomp(StompClient::connect(
                url,
                ClientOptions {
                    login: user.map(str::to_string),
                    passcode: password.map(str::to_string),
                    ..ClientOptions::default()
                },
            )?),
            Wire::OpenWire => Sender::OpenWire(OpenWireClient::connect(
                url,
                OpenWireOptions {
                    user: user.map(str::to_string),
                    password: password.map(str::to_string),
                    ..OpenWireOptions::default()
                },
            )?),
        })
    }

    /// Resends `m` (see the module doc) and waits for the broker's confirmation.
    pub fn send(&self, m: &Message) -> Result<(), ClientError> {
        match self {
            Sender::Stomp(c) => {
                let priority = m.priority.to_string();
                let expires = m.expires_ms.to_string();
                let mut headers: Vec<(&str, &str)> = vec![
                    ("persistent", "true"),
                    ("priority", &priority),
                    (
                        "amq-msg-type",
                        if m.body_type.kind == BodyKind::Bytes {
                            "bytes"
                        } else {
                            "text"
                        },
                    ),
                ];
                if m.expires_ms != 0 {
                    headers.push(("expires", &expires));
                }
                if let Some(r) = &m.reply_to {
                    headers.push(("reply-to", r));
                }
                headers.extend(
                    m.headers
                        .iter()
                        .filter(|(k, _)| {
                            // Interpreted by the broker (the STOMP session's list), or
                            // the replay mark added below: not sent as themselves.
                            !NON_PROPERTY_HEADERS.contains(&k.as_str()) && k != REPLAYED_FROM
                        })
                        .map(|(k, v)| (k.as_str(), v.as_str())),
                );
                headers.push((REPLAYED_FROM, &m.id));
                c.send(&m.destination.stomp_name(), &m.body, &headers)
            }
            Sender::OpenWire(c) => {
                let mut copy = m.clone();
                copy.persistent = true;
                copy.headers.retain(|(k, _)| k != REPLAYED_FROM);
                copy.headers.push((REPLAYED_FROM.into(), m.id.clone()));
                c.send_built(to_openwire_message(&copy, &copy.destination, 0, 0))
            }
        }
    }

    /// Closes the connection politely (everything sent before was handled).
    pub fn close(self) -> Result<(), ClientError> {
        match self {
            Sender::Stomp(c) => c.close(),
            Sender::OpenWire(c) => c.close(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_names_one_protocol() {
        assert_eq!(Wire::of("stomp://127.0.0.1:1").unwrap(), Wire::Stomp);
        assert_eq!(
            Wire::of("failover:(tcp://127.0.0.1:1,tcp://127.0.0.1:2)?randomize=false").unwrap(),
            Wire::OpenWire
        );
        assert!(Wire::of("failover:(tcp://127.0.0.1:1,stomp://127.0.0.1:2)").is_err());
        assert!(Wire::of("http://127.0.0.1:1").is_err());
    }
}
