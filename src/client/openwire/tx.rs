//! The OpenWire client's local transactions: [`Client::begin`], [`Client::commit`],
//! [`Client::rollback`] (one open at a time; see the failover rules in the module docs
//! of `super`: a COMMIT in flight at a loss is in doubt, acks undone by a failover make
//! the commit fail).

use super::state::{Kind, State, Transaction};
use super::{header, Client, ClientError};
use crate::protocol::openwire::{
    Command, LocalTransactionId, TransactionId, TransactionInfo, TransactionType,
};

impl Client {
    /// Opens the local transaction (BEGIN, async as the real client's); every send and
    /// ack until `commit`/`rollback` belongs to it. One at a time.
    pub fn begin(&self) -> Result<(), ClientError> {
        let conn = self.connection_id.clone();
        self.request(|st| {
            if let Some(t) = &st.sess.transaction {
                return Err(ClientError::Transaction(t.name(), "already open"));
            }
            st.sess.next_transaction += 1;
            let id = LocalTransactionId {
                value: st.sess.next_transaction,
                connection_id: Some(conn.clone()),
            };
            let info = TransactionInfo {
                header: header(st, false),
                connection_id: Some(conn.clone()),
                transaction_id: Some(TransactionId::Local(id.clone())),
                transaction_type: TransactionType::Begin,
            };
            let command = Command::TransactionInfo(info);
            st.sess.transaction = Some(Transaction {
                id,
                commands: vec![command.clone()],
                acked: Vec::new(),
                rollback_only: false,
                completing: false,
            });
            Ok(Some((command, None)))
        })
    }

    /// Commits (COMMIT_ONE_PHASE, confirmed). Fails with [`ClientError::Transaction`]
    /// if none is open, if the connection dropped while it was in flight (in doubt), or
    /// if a failover rolled its acks back (it is then rolled back).
    pub fn commit(&self) -> Result<(), ClientError> {
        let mut rollback_only = None;
        self.request(|st| {
            let Some(t) = st.sess.transaction.as_mut() else {
                return Err(ClientError::Transaction(String::new(), "not open"));
            };
            if t.completing {
                return Err(ClientError::Transaction(t.name(), "is completing"));
            }
            t.completing = true;
            let kind = if t.rollback_only {
                rollback_only = Some(t.name());
                TransactionType::Rollback
            } else {
                TransactionType::CommitOnePhase
            };
            let id = t.id.clone();
            if kind == TransactionType::Rollback {
                st.sess.transaction = None;
            }
            let k = if kind == TransactionType::Rollback {
                Kind::Rollback
            } else {
                Kind::Commit
            };
            Ok(Some((completion(st, &id, kind), Some(k))))
        })?;
        match rollback_only {
            Some(name) => Err(ClientError::Transaction(
                name,
                "rolled back: a failover undid its acks",
            )),
            None => Ok(()),
        }
    }

    /// Rolls the transaction back (confirmed). Its sends are dropped; the messages it
    /// acked are handed out again by `recv` (redelivered), as the real client does.
    pub fn rollback(&self) -> Result<(), ClientError> {
        self.request(|st| {
            let Some(t) = st.sess.transaction.take() else {
                return Err(ClientError::Transaction(String::new(), "not open"));
            };
            let generation = st.generation;
            for mut m in t.acked.iter().rev().cloned() {
                if m.generation == generation {
                    m.redelivery_counter += 1;
                    m.redelivered = true;
                    st.messages.push_front(m);
                }
            }
            let rollback = completion(st, &t.id, TransactionType::Rollback);
            Ok(Some((rollback, Some(Kind::Rollback))))
        })
    }
}

/// A COMMIT or ROLLBACK (`kind`) of transaction `id`, asking for a Response.
fn completion(st: &mut State, id: &LocalTransactionId, kind: TransactionType) -> Command {
    let connection_id = st
        .sess
        .connection_info
        .as_ref()
        .and_then(|c| c.connection_id.clone());
    Command::TransactionInfo(TransactionInfo {
        header: header(st, true),
        connection_id,
        transaction_id: Some(TransactionId::Local(id.clone())),
        transaction_type: kind,
    })
}
