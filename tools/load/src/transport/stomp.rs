//! [`Transport`] over STOMP: `tandem::client::Client` (blocking, failover, receipts for
//! every frame so a confirm means the broker has the message, on disk if persistent).

use std::time::Duration;

use tandem::client::{AckMode, Client, ClientOptions, Message};

use super::{ConnectOptions, Delivery, Destination, SendOptions, Transport, TransportError};
use crate::cli::Ack;

pub struct Stomp {
    client: Client,
}

pub struct StompPending(tandem::client::Pending);

impl super::Pending for StompPending {
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

fn headers<'a>(opts: &SendOptions<'a>) -> Vec<(&'a str, &'a str)> {
    let mut h = vec![("persistent", if opts.persistent { "true" } else { "false" })];
    if let Some(tx) = opts.transaction {
        h.push(("transaction", tx));
    }
    h
}

impl Transport for Stomp {
    type Pending = StompPending;
    type Delivery = Message;

    fn connect(url: &str, opts: &ConnectOptions) -> Result<Self, TransportError> {
        let co = ClientOptions {
            login: opts.user.clone(),
            passcode: opts.password.clone(),
            client_id: opts.client_id.clone(),
            tls: opts.tls.clone(),
            ..ClientOptions::default()
        };
        Ok(Stomp {
            client: Client::connect(url, co)?,
        })
    }

    fn send(
        &self,
        dest: &Destination,
        body: &[u8],
        opts: SendOptions,
    ) -> Result<(), TransportError> {
        Ok(self.client.send(&dest.full, body, &headers(&opts))?)
    }

    fn send_async(
        &self,
        dest: &Destination,
        body: &[u8],
        opts: SendOptions,
    ) -> Result<StompPending, TransportError> {
        Ok(StompPending(self.client.send_async(
            &dest.full,
            body,
            &headers(&opts),
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
        let prefetch = prefetch.map(|p| p.to_string());
        let mut h = Vec::new();
        if let Some(p) = &prefetch {
            h.push(("activemq.prefetchSize", p.as_str()));
        }
        self.client.subscribe(&dest.full, mode, &h)?;
        Ok(())
    }

    fn recv(&self, timeout: Duration) -> Result<Option<Message>, TransportError> {
        Ok(self.client.recv(timeout)?)
    }

    fn ack(&self, d: &Message) -> Result<(), TransportError> {
        Ok(self.client.ack(d)?)
    }

    fn begin(&self, tx: &str) -> Result<(), TransportError> {
        Ok(self.client.begin(tx)?)
    }

    fn commit(&self, tx: &str) -> Result<(), TransportError> {
        Ok(self.client.commit(tx)?)
    }

    fn reconnects(&self) -> u64 {
        self.client.reconnects()
    }

    fn close(self) -> Result<(), TransportError> {
        Ok(self.client.close()?)
    }
}
