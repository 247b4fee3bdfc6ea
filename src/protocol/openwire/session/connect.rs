//! The connection's life: the WireFormatInfo exchange (and BrokerInfo), ConnectionInfo
//! (login against the broker's users, the client id), SessionInfo, RemoveInfo with its
//! cascade (session -> its consumers and producers; connection -> everything) and
//! ShutdownInfo.

use std::time::Duration;

use super::super::wireformat::OPENWIRE_VERSION;
use super::super::{
    BrokerId, BrokerInfo, Command, ConnectionInfo, RemoveInfo, RemoveTarget, SessionId,
    SessionInfo, WireFormatInfo,
};
use super::{
    Action, Connection, Refusal, Session, State, Then, JAVA_ILLEGAL_STATE, JAVA_INVALID_CLIENT_ID,
    JAVA_SECURITY, KEEP_ALIVE_EVERY, MIN_VERSION,
};
use crate::protocol::SessionEnv;

/// The receive timeout is this many negotiated inactivity periods (the client writes
/// a KeepAliveInfo every third of one): 30 s negotiated gives 60 s.
const INACTIVITY_GRACE_FACTOR: u32 = 2;

impl<E: SessionEnv> Session<E> {
    // ----- WireFormatInfo -----

    pub(super) fn wire_format(&mut self, peer: WireFormatInfo) {
        let ours =
            WireFormatInfo::tandem(i64::try_from(self.ctx.max_frame_bytes).unwrap_or(i64::MAX));
        let n = ours.negotiate(&peer);
        if peer.version < MIN_VERSION || !n.is_supported() {
            // Not a version (or a format this codec does not have).
            tracing::warn!(conn = ?self.ctx.conn, peer = %self.ctx.peer, version = peer.version,
                "OpenWire client refused: version {} is not supported (Tandem speaks {MIN_VERSION}..={OPENWIRE_VERSION}, loose encoding)", peer.version);
            self.close();
            return;
        }
        tracing::debug!(conn = ?self.ctx.conn, peer = %self.ctx.peer, client_version = peer.version,
            version = n.version, "OpenWire version negotiated");
        self.negotiated = Some(n);
        self.state = State::Open;
        let receive_timeout = (n.max_inactivity_duration_ms > 0).then(|| {
            Duration::from_millis(n.max_inactivity_duration_ms as u64) * INACTIVITY_GRACE_FACTOR
        });
        self.out.push(Action::Negotiated {
            send_every: Some(KEEP_ALIVE_EVERY),
            receive_timeout,
        });
        let broker_name = self.ctx.settings.broker_name.clone();
        self.write(Command::BrokerInfo(BrokerInfo {
            broker_id: Some(BrokerId::new(format!("ID:tandem-{}", self.ctx.boot_id))),
            broker_name: Some(broker_name),
            ..BrokerInfo::default()
        }));
    }

    // ----- ConnectionInfo -----

    pub(super) fn connection_info(&mut self, info: ConnectionInfo) -> Result<(), Refusal> {
        let header = info.header;
        let Some(id) = info.connection_id else {
            return Err(Refusal::new(
                JAVA_ILLEGAL_STATE,
                "ConnectionInfo without a connection id",
            ));
        };
        if let Some(c) = &self.connection {
            if c.id == id {
                // A replay (failover) of what this socket already has.
                return self.respond_ok(header);
            }
            return Err(Refusal::new(
                JAVA_ILLEGAL_STATE,
                format!("this socket already serves connection {}", c.id),
            ));
        }
        let user = info.user_name.as_deref();
        if !self
            .ctx
            .settings
            .authenticate(user, info.password.as_deref())
        {
            // The client closes on a SecurityException in reply to ConnectionInfo; so
            // do we, once it is written.
            return Err(Refusal::new(
                JAVA_SECURITY,
                format!(
                    "User name [{}] or password is invalid.",
                    user.unwrap_or_default()
                ),
            )
            .fatal());
        }
        let client_id = info.client_id.unwrap_or_else(|| id.value.clone());
        match self
            .ctx
            .registries
            .client_ids
            .claim(&client_id, self.ctx.conn, Some(&id.value))
        {
            Ok(None) => {}
            Ok(Some(stale)) => self.out.push(Action::Evict(stale)),
            Err(holder) => {
                tracing::debug!(conn = ?self.ctx.conn, ?holder, client_id, "client id in use");
                return Err(Refusal::new(
                    JAVA_INVALID_CLIENT_ID,
                    format!(
                        "Broker: {} - Client: {client_id} already connected",
                        self.ctx.settings.broker_name
                    ),
                ));
            }
        }
        tracing::debug!(conn = ?self.ctx.conn, peer = %self.ctx.peer, client_id, "OpenWire connection");
        self.connection = Some(Connection {
            id,
            client_id,
            claimed: true,
        });
        self.respond_ok(header)
    }

    pub(super) fn release_client_id(&mut self) {
        if let Some(c) = self.connection.as_mut() {
            if c.claimed {
                c.claimed = false;
                self.ctx
                    .registries
                    .client_ids
                    .release(&c.client_id, self.ctx.conn);
            }
        }
    }

    // ----- SessionInfo -----

    pub(super) fn session_info(&mut self, info: SessionInfo) -> Result<(), Refusal> {
        if let Some(id) = &info.session_id {
            self.sessions.insert(id.value);
        }
        self.respond_ok(info.header)
    }

    // ----- RemoveInfo -----

    pub(super) fn remove_info(&mut self, info: RemoveInfo) -> Result<(), Refusal> {
        let header = info.header;
        let correlation = header.response_required.then_some(header.command_id);
        let last = info.last_delivered_sequence_id;
        match info.object_id {
            None => self.respond_ok(header),
            Some(RemoveTarget::Producer(id)) => {
                self.producers.remove(&id);
                self.respond_ok(header)
            }
            Some(RemoveTarget::Consumer(id)) => {
                self.remove_consumer(&id, correlation, last);
                Ok(())
            }
            Some(RemoveTarget::Session(id)) => {
                self.remove_session(&id, last);
                self.respond_after_barrier(correlation);
                Ok(())
            }
            Some(RemoveTarget::Connection(id)) => {
                if self.connection.as_ref().is_some_and(|c| c.id != id) {
                    return Err(Refusal::new(
                        JAVA_ILLEGAL_STATE,
                        format!("connection {id} is not this socket's"),
                    ));
                }
                self.remove_connection(last);
                self.respond_after_barrier(correlation);
                Ok(())
            }
        }
    }

    /// Responds once everything this connection posted is processed (acks included),
    /// so that a closed connection's last acks are in before the client moves on.
    fn respond_after_barrier(&mut self, correlation: Option<i32>) {
        if correlation.is_some() {
            self.after_barrier(Then::Respond {
                correlation,
                report: false,
            });
        }
    }

    /// A session's consumers and producers go with it.
    fn remove_session(&mut self, id: &SessionId, last_delivered: i64) {
        self.sessions.remove(&id.value);
        let consumers: Vec<_> = self
            .consumers
            .keys()
            .filter(|c| c.session_id == id.value && c.connection_id == id.connection_id)
            .cloned()
            .collect();
        for c in consumers {
            self.remove_consumer(&c, None, last_delivered);
        }
        self.producers
            .retain(|p, _| !(p.session_id == id.value && p.connection_id == id.connection_id));
    }

    /// The client closes its connection (sync RemoveInfo, then ShutdownInfo): every
    /// consumer goes (their unacknowledged messages return to their queues), open
    /// transactions roll back, the client id is free again. The socket may stay.
    fn remove_connection(&mut self, last_delivered: i64) {
        let consumers: Vec<_> = self.consumers.keys().cloned().collect();
        for c in consumers {
            self.remove_consumer(&c, None, last_delivered);
        }
        self.producers.clear();
        self.forget_temp_destinations();
        self.sessions.clear();
        self.transactions.clear();
        self.release_client_id();
        self.connection = None;
    }

    // ----- ShutdownInfo -----

    pub(super) fn shutdown(&mut self) {
        self.transactions.clear();
        self.close();
    }
}
