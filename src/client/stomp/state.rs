//! The STOMP client's bookkeeping, kept in the shared [`State`] (callers and the I/O
//! thread, under one mutex): frames awaiting a RECEIPT, active subscriptions, open
//! transactions, the inbox; and how a frame from the broker changes it.
//!
//! This is what makes failover transparent: everything needed to rebuild the session on
//! a new connection lives here, and [`State::replay`] turns it into the frames to send.
//!
//! Invariants:
//! * `outstanding` is keyed by the receipt sequence, which grows in wire order, so
//!   iterating it replays frames in the order they were first written.
//! * A transaction stays in `transactions` until its COMMIT is receipted (or it is
//!   aborted), holding every frame sent in it, so it can be replayed whole.

use std::collections::{BTreeMap, HashMap};

use super::super::failover;
use super::{AckMode, ClientError, Message, Stomp};
use crate::protocol::stomp::{Command, Frame};

/// What a receipted frame does to the session, decided when it is registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A SEND outside a transaction: replayed until receipted.
    Send,
    /// A SEND inside transaction `tx`: kept in the transaction, replayed with it.
    TxSend(String),
    Subscribe {
        id: String,
        ack: AckMode,
    },
    Unsubscribe(String),
    Begin(String),
    /// Replayed (after its transaction's frames) until receipted.
    Commit(String),
    Abort(String),
    /// ACK or NACK of a delivery made on connection `generation`: never replayed (the
    /// delivery it names died with its connection).
    Ack {
        generation: u64,
    },
    Disconnect,
}

impl Kind {
    /// Whether the frame itself is re-sent on a new connection. The others are rebuilt
    /// from `subscriptions`/`transactions`, or die with the connection.
    fn replayed(&self) -> bool {
        matches!(self, Kind::Send | Kind::Commit(_))
    }
}

/// A frame written with a `receipt` header, not yet answered.
#[derive(Debug)]
pub struct Outstanding {
    /// As written, receipt header included.
    pub frame: Frame,
    pub kind: Kind,
}

#[derive(Debug)]
pub struct Subscription {
    /// The SUBSCRIBE frame without its receipt header.
    pub frame: Frame,
    pub ack: AckMode,
}

#[derive(Debug, Default)]
pub struct Transaction {
    /// BEGIN then every frame sent in the transaction, without receipt headers.
    pub frames: Vec<Frame>,
    /// COMMIT written; the transaction leaves the map when it is receipted.
    pub committing: bool,
}

/// The STOMP session: what a new connection is rebuilt from, besides the unreceipted
/// frames in [`State::outstanding`].
#[derive(Debug, Default)]
pub struct Session {
    /// Active subscriptions by id, in subscription order (ids are `sub-<n>`, zero padded).
    pub subscriptions: BTreeMap<String, Subscription>,
    pub next_subscription: u64,
    /// Open transactions, by name, with the order they began in.
    pub transactions: HashMap<String, (u64, Transaction)>,
}

/// The shared client state with the STOMP session.
pub type State = failover::State<Stomp>;

pub const RECEIPT_PREFIX: &str = "r-";

impl State {
    /// Checks that `kind` makes sense now and records its effect; returns the receipt
    /// sequence to put on the frame. Called with the writer slot held, so sequence order
    /// is wire order.
    pub fn register(&mut self, mut frame: Frame, kind: Kind) -> Result<u64, ClientError> {
        let seq = self.next_seq;
        let bare = frame.clone();
        match &kind {
            Kind::TxSend(tx) => {
                let t = self.open_tx(tx)?;
                t.frames.push(bare);
            }
            Kind::Subscribe { id, ack } => {
                self.sess.subscriptions.insert(
                    id.clone(),
                    Subscription {
                        frame: bare,
                        ack: *ack,
                    },
                );
            }
            Kind::Unsubscribe(id) => {
                self.sess.subscriptions.remove(id);
            }
            Kind::Begin(tx) => {
                if self.sess.transactions.contains_key(tx) {
                    return Err(ClientError::Transaction(tx.clone(), "already open"));
                }
                let t = Transaction {
                    frames: vec![bare],
                    committing: false,
                };
                self.sess.transactions.insert(tx.clone(), (seq, t));
            }
            Kind::Commit(tx) => self.open_tx(tx)?.committing = true,
            Kind::Abort(tx) => {
                self.open_tx(tx)?;
                self.sess.transactions.remove(tx);
            }
            Kind::Send | Kind::Ack { .. } | Kind::Disconnect => {}
        }
        self.next_seq += 1;
        frame.push_header("receipt", format!("{RECEIPT_PREFIX}{seq}"));
        self.outstanding.insert(seq, Outstanding { frame, kind });
        Ok(seq)
    }

    fn open_tx(&mut self, tx: &str) -> Result<&mut Transaction, ClientError> {
        match self.sess.transactions.get_mut(tx) {
            Some((_, t)) if !t.committing => Ok(t),
            Some(_) => Err(ClientError::Transaction(tx.into(), "is committing")),
            None => Err(ClientError::Transaction(tx.into(), "not open")),
        }
    }

    /// A RECEIPT (Ok) or an ERROR naming a receipt (Err) arrived for `seq`.
    pub fn complete(&mut self, seq: u64, result: Result<(), ClientError>) {
        let Some(entry) = self.outstanding.remove(&seq) else {
            return;
        };
        match (&entry.kind, result.is_ok()) {
            (Kind::Commit(tx), _) => {
                self.sess.transactions.remove(tx);
            }
            (Kind::Begin(tx), false) => {
                self.sess.transactions.remove(tx);
            }
            (Kind::Subscribe { id, .. }, false) => {
                self.sess.subscriptions.remove(id);
            }
            // The broker closes after answering DISCONNECT: that is no failure.
            (Kind::Disconnect, _) => self.closed = true,
            _ => {}
        }
        self.finish(seq, result);
    }

    /// Session state for a new connection, in the order to write it: every subscription
    /// (same ids), every open transaction (BEGIN and its frames, oldest first), then
    /// every unreceipted SEND and COMMIT in original order. Frames that only the old
    /// connection could answer (ACKs, and receipts for state rebuilt here) are settled.
    /// Deliveries still in the inbox from a client-ack subscription are dropped: the
    /// broker redelivers them on the new connection.
    pub fn replay(&mut self) -> Vec<Frame> {
        self.generation += 1;
        let mut frames: Vec<Frame> = self
            .sess
            .subscriptions
            .values()
            .map(|s| s.frame.clone())
            .collect();
        let mut txs: Vec<&(u64, Transaction)> = self.sess.transactions.values().collect();
        txs.sort_by_key(|(began, _)| *began);
        for (_, t) in txs {
            frames.extend(t.frames.iter().cloned());
        }
        let settled: Vec<u64> = self
            .outstanding
            .iter()
            .filter(|(_, o)| !o.kind.replayed())
            .map(|(seq, _)| *seq)
            .collect();
        for seq in settled {
            self.outstanding.remove(&seq);
            self.finish(seq, Ok(()));
        }
        frames.extend(self.outstanding.values().map(|o| o.frame.clone()));
        let current = self.generation;
        let subs = &self.sess.subscriptions;
        self.messages.retain(|m| {
            m.generation == current
                || subs
                    .get(&m.subscription)
                    .is_some_and(|s| s.ack == AckMode::Auto)
        });
        frames
    }

    /// Handles one frame from the broker. Returns false when the connection must be
    /// dropped (an ERROR without a receipt: the broker closes after it anyway).
    pub fn on_frame(&mut self, frame: Frame) -> bool {
        match frame.command {
            Command::Receipt => {
                if let Some(seq) = receipt_seq(frame.header("receipt-id")) {
                    self.complete(seq, Ok(()));
                }
                true
            }
            Command::Message => {
                let h = |name: &str| frame.header(name).unwrap_or("").to_string();
                let message = Message {
                    destination: h("destination"),
                    message_id: h("message-id"),
                    ack_id: frame.header("ack").map(str::to_string),
                    subscription: h("subscription"),
                    redelivered: frame.header("redelivered") == Some("true"),
                    headers: frame.headers.clone(),
                    body: frame.body.clone(),
                    generation: self.generation,
                };
                self.messages.push_back(message);
                true
            }
            Command::Error => {
                let error = ClientError::Broker {
                    message: frame.header("message").unwrap_or("").to_string(),
                    details: String::from_utf8_lossy(&frame.body).into_owned(),
                };
                match receipt_seq(frame.header("receipt-id")) {
                    Some(seq) => {
                        self.complete(seq, Err(error));
                        true
                    }
                    None => {
                        tracing::warn!("broker ERROR: {error}");
                        false
                    }
                }
            }
            // CONNECTED twice, or a client command: ignore rather than guess.
            _ => true,
        }
    }
}

fn receipt_seq(id: Option<&str>) -> Option<u64> {
    id?.strip_prefix(RECEIPT_PREFIX)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(n: u32) -> Frame {
        Frame::new(Command::Send)
            .with_header("destination", "/queue/a")
            .with_body(n.to_string())
    }

    fn receipt(seq: u64) -> Frame {
        Frame::receipt(&format!("r-{seq}"))
    }

    #[test]
    fn replay_order_and_settlement() {
        let mut s = State::new(Session::default());
        let sub = Frame::new(Command::Subscribe).with_header("id", "sub-0");
        let s0 = s
            .register(
                sub,
                Kind::Subscribe {
                    id: "sub-0".into(),
                    ack: AckMode::ClientIndividual,
                },
            )
            .unwrap();
        let a = s.register(send(1), Kind::Send).unwrap();
        let b = s.register(send(2), Kind::Send).unwrap();
        let begin = Frame::new(Command::Begin).with_header("transaction", "t");
        s.register(begin, Kind::Begin("t".into())).unwrap();
        s.register(send(3), Kind::TxSend("t".into())).unwrap();
        let commit = Frame::new(Command::Commit).with_header("transaction", "t");
        let c = s.register(commit, Kind::Commit("t".into())).unwrap();
        assert!(s.on_frame(receipt(a)));
        assert!(s.on_frame(receipt(s0)));
        let frames = s.replay();
        let cmds: Vec<Command> = frames.iter().map(|f| f.command).collect();
        assert_eq!(
            cmds,
            vec![
                Command::Subscribe,
                Command::Begin,
                Command::Send,
                Command::Send,
                Command::Commit
            ]
        );
        // Rebuilt state carries no receipt; replayed frames keep theirs.
        assert_eq!(frames[0].header("receipt"), None);
        assert_eq!(frames[2].body, "3");
        assert_eq!(frames[3].header("receipt"), Some(format!("r-{b}").as_str()));
        assert_eq!(frames[4].header("receipt"), Some(format!("r-{c}").as_str()));
        // The BEGIN and tx SEND receipts were settled by the replay.
        assert_eq!(s.outstanding.len(), 2);
        assert!(s.on_frame(receipt(c)));
        assert!(s.sess.transactions.is_empty());
    }

    #[test]
    fn errors_and_abandoned_receipts() {
        let mut s = State::new(Session::default());
        let a = s.register(send(1), Kind::Send).unwrap();
        let err = Frame::error("no").with_header("receipt-id", format!("r-{a}"));
        assert!(s.on_frame(err));
        assert!(matches!(
            s.done.remove(&a),
            Some(Err(ClientError::Broker { .. }))
        ));
        let b = s.register(send(2), Kind::Send).unwrap();
        s.abandoned.insert(b);
        s.on_frame(receipt(b));
        assert!(s.done.is_empty() && s.abandoned.is_empty());
        assert!(!s.on_frame(Frame::error("fatal")));
        assert!(matches!(
            s.register(send(3), Kind::TxSend("x".into())),
            Err(ClientError::Transaction(..))
        ));
    }
}
