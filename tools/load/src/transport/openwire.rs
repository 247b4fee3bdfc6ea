//! [`Transport`] over OpenWire: `tandem::client::openwire::Client` (blocking, failover
//! with replay of unanswered sends under their original ids). Messages are
//! BytesMessages carrying the tool's body as is; sends ask for a Response, so a confirm
//! means the broker has the message (on disk, and on the slave, if persistent).
//!
//! One client is one JMS session: a transaction is that session's, so the name the
//! workload gives `begin`/`commit` only labels it.

use std::time::Duration;

use tandem::client::openwire::{Client, Message, OpenWireOptions, Pending as OwPending};
use tandem::client::AckMode;

use super::{ConnectOptions, Delivery, Destination, SendOptions, Transport, TransportError};
use crate::cli::{Ack, DestKind};

/// ActiveMQ's default prefetch for queue consumers and for topic subscribers.
const QUEUE_PREFETCH: u32 = 1000;
const TOPIC_PREFETCH: u32 = 32766;

pub struct OpenWire {
    client: Client,
}

pub struct OpenWirePending(OwPending);

impl super::Pending for OpenWirePending {
    fn wait(self, timeout: Duration) -> Result<(), TransportError> {
        Ok(self.0.wait(timeout)?)
    }
}

impl Delivery for Message {
    fn body(&self) -> &[u8] {
        &self.body
    }
    fn redelivered(&self) -> bool {
        self.redelivered
    }
}

impl Transport for OpenWire {
    type Pending = OpenWirePending;
    type Delivery = Message;

    fn connect(url: &str, opts: &ConnectOptions) -> Result<Self, TransportError> {
        let o = OpenWireOptions {
            user: opts.user.clone(),
            password: opts.password.clone(),
            client_id: opts.client_id.clone(),
            text: false,
            tls: opts.tls.clone(),
            ..OpenWireOptions::default()
        };
        Ok(OpenWire {
            client: Client::connect(url, o)?,
        })
    }

    fn send(
        &self,
        dest: &Destination,
        body: &[u8],
        opts: SendOptions,
    ) -> Result<(), TransportError> {
        Ok(self.client.send(&dest.full, body, &[], opts.persistent)?)
    }

    fn send_async(
        &self,
        dest: &Destination,
        body: &[u8],
        opts: SendOptions,
    ) -> Result<OpenWirePending, TransportError> {
        Ok(OpenWirePending(self.client.send_async(
            &dest.full,
            body,
            &[],
            opts.persistent,
        )?))
    }

    fn subscribe(
        &self,
        dest: &Destination,
        ack: Ack,
        prefetch: Option<u32>,
    ) -> Result<(), TransportError> {
        let mode = match ack {
            Ack::Auto => AckMode::Auto,
            Ack::Client => AckMode::Client,
            Ack::Individual => AckMode::ClientIndividual,
        };
        let prefetch = prefetch.unwrap_or(match dest.kind {
            DestKind::Queue => QUEUE_PREFETCH,
            DestKind::Topic => TOPIC_PREFETCH,
        });
        self.client
            .subscribe(&dest.full, mode, prefetch, None, None)?;
        Ok(())
    }

    fn recv(&self, timeout: Duration) -> Result<Option<Message>, TransportError> {
        Ok(self.client.recv(timeout)?)
    }

    fn ack(&self, d: &Message) -> Result<(), TransportError> {
        Ok(self.client.ack(d)?)
    }

    fn begin(&self, _tx: &str) -> Result<(), TransportError> {
        Ok(self.client.begin()?)
    }

    fn commit(&self, _tx: &str) -> Result<(), TransportError> {
        Ok(self.client.commit()?)
    }

    fn reconnects(&self) -> u64 {
        self.client.reconnects()
    }

    fn close(self) -> Result<(), TransportError> {
        Ok(self.client.close()?)
    }
}
