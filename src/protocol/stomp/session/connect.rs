//! CONNECT and DISCONNECT: version negotiation, login, heart-beat negotiation (the
//! `Action::Negotiated` the connection loop acts on and the CONNECTED frame), and the
//! orderly DISCONNECT whose RECEIPT waits for a barrier on every shard this connection
//! used before the connection closes.

use std::time::Duration;

use super::super::frame::{Command, Frame};
use super::super::version::{negotiate, negotiate_heart_beat, parse_heart_beat, Version};
use super::receipts::AfterBarrier;
use super::{Action, Session, SessionEnv, SessionError, State};
use crate::broker::ShardId;

/// What the server calls itself in CONNECTED.
pub(super) const SERVER_NAME: &str = concat!("Tandem/", env!("CARGO_PKG_VERSION"));

/// The receive timeout is this many negotiated client heart-beat periods: one late
/// heart-beat on a busy network must not kill a healthy connection.
const HEARTBEAT_GRACE_FACTOR: u32 = 2;

impl<E: SessionEnv> Session<E> {
    // ----- CONNECT -----

    pub(super) fn connect(&mut self, frame: &Frame) -> Result<(), SessionError> {
        let accept = frame.header("accept-version");
        let version = negotiate(accept)
            .ok_or_else(|| SessionError::NoCommonVersion(accept.unwrap_or_default().into()))?;
        self.version = version;
        let login = frame.header("login");
        if !self
            .ctx
            .settings
            .authenticate(login, frame.header("passcode"))
        {
            return Err(SessionError::AuthenticationFailed(
                login.unwrap_or_default().into(),
            ));
        }
        // `host` names a virtual host; one broker serves one, so any value is accepted
        // (as ActiveMQ does).
        let (cx, cy) = match frame.header("heart-beat") {
            Some(v) if version >= Version::V1_1 => {
                parse_heart_beat(v).map_err(|_| SessionError::InvalidHeader {
                    header: "heart-beat",
                    value: v.into(),
                })?
            }
            _ => (0, 0),
        };
        let ours = self.ctx.settings.heartbeat.as_millis() as u64;
        let (send_ms, expect_ms) = negotiate_heart_beat((cx, cy), (ours, ours));
        if let Some(client_id) = frame.header("client-id") {
            // The same registry as JMS client ids: one connection at a time holds an
            // id, so nobody attaches to a live client's durable subscriptions.
            if let Err(holder) =
                self.ctx
                    .registries
                    .client_ids
                    .claim(client_id, self.ctx.conn, None)
            {
                tracing::debug!(conn = ?self.ctx.conn, ?holder, client_id, "client-id in use");
                return Err(SessionError::ClientIdInUse {
                    broker: self.ctx.settings.broker_name.clone(),
                    client_id: client_id.to_owned(),
                });
            }
            self.client_id = Some(client_id.to_owned());
            self.client_id_claimed = true;
        }
        self.state = State::Connected;
        let ms = |v: u64| (v > 0).then(|| Duration::from_millis(v));
        self.out.push(Action::Negotiated {
            version,
            send_every: ms(send_ms),
            receive_timeout: ms(expect_ms).map(|d| d * HEARTBEAT_GRACE_FACTOR),
        });
        let connected = Frame::new(Command::Connected)
            .with_header("version", version.as_str())
            .with_header("server", SERVER_NAME)
            .with_header("heart-beat", format!("{send_ms},{expect_ms}"))
            .with_header("session", format!("ID:{}", self.tag));
        self.write(connected);
        Ok(())
    }

    // ----- DISCONNECT -----

    pub(super) fn disconnect(&mut self, frame: &Frame) {
        self.transactions.clear();
        let Some(receipt) = frame.header("receipt") else {
            self.close();
            return;
        };
        let shards: Vec<ShardId> = (0..self.used.len()).filter(|&s| self.used[s]).collect();
        if shards.is_empty() {
            self.write(Frame::receipt(receipt));
            self.close();
            return;
        }
        self.barrier(shards, AfterBarrier::Disconnect(receipt.to_owned()));
        // Frames after DISCONNECT are ignored; events still flow until the receipt.
        self.state = State::Disconnecting;
    }
}
