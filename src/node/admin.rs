//! The broker side of the status endpoint's `/admin/*` ([`metrics::Admin`]): the HTTP
//! thread asks [`NodeAdmin`], which sends the operation to the shard that owns the
//! queue (the router's mapping, [`Destination::shard`]) over a channel read by a task
//! on that shard's executor ([`serve`]), and waits for the answer with a timeout.
//!
//! Only a node that serves clients as master answers: until then (a slave, a master
//! still starting or, with `waitForSlave`, still waiting for its slave) every call is
//! `Unavailable`. What the shard does is journaled, so a slave applies it like any
//! other record (see `broker::core::admin`).

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use crate::broker::shard::Shard;
use crate::broker::{BrokerError, Destination};
use crate::metrics::{Admin, AdminError};

/// How long the HTTP thread waits for a shard's answer. Past it the answer is 503 and
/// the outcome unknown (the operation may still complete).
pub const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug)]
pub enum AdminOp {
    Purge,
    Delete,
}

/// One operation for a shard, and where its answer goes.
pub struct AdminCommand {
    op: AdminOp,
    destination: Destination,
    answer: mpsc::Sender<Result<u64, BrokerError>>,
}

/// Implements [`Admin`] for the node: one command channel per shard, in shard order.
pub struct NodeAdmin {
    shards: Vec<async_channel::Sender<AdminCommand>>,
    /// Set by the node once it serves clients as master.
    serving: Arc<AtomicBool>,
    timeout: Duration,
}

impl NodeAdmin {
    pub fn new(
        shards: Vec<async_channel::Sender<AdminCommand>>,
        serving: Arc<AtomicBool>,
    ) -> NodeAdmin {
        NodeAdmin {
            shards,
            serving,
            timeout: ADMIN_TIMEOUT,
        }
    }

    fn run(&self, op: AdminOp, destination: &str) -> Result<u64, AdminError> {
        if !self.serving.load(Ordering::Acquire) {
            return Err(AdminError::Unavailable(
                "this node does not serve clients (it is a slave, or still starting)".into(),
            ));
        }
        let destination = queue(destination)?;
        let shard = destination.shard(self.shards.len());
        let (answer, rx) = mpsc::channel();
        let sent = self.shards.get(shard).is_some_and(|tx| {
            tx.try_send(AdminCommand {
                op,
                destination,
                answer,
            })
            .is_ok()
        });
        if !sent {
            return Err(AdminError::Unavailable(format!("shard {shard} is gone")));
        }
        match rx.recv_timeout(self.timeout) {
            Ok(result) => result.map_err(admin_error),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(AdminError::Unavailable(format!(
                "shard {shard} did not answer within {} s; the outcome is unknown",
                self.timeout.as_secs()
            ))),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Err(AdminError::Unavailable(format!("shard {shard} is gone")))
            }
        }
    }
}

impl Admin for NodeAdmin {
    fn purge(&self, destination: &str) -> Result<u64, AdminError> {
        self.run(AdminOp::Purge, destination)
    }

    fn delete(&self, destination: &str) -> Result<u64, AdminError> {
        self.run(AdminOp::Delete, destination)
    }
}

/// `/queue/NAME` (what the endpoint passes) or `queue://NAME` as a queue.
fn queue(destination: &str) -> Result<Destination, AdminError> {
    destination
        .strip_prefix("/queue/")
        .or_else(|| destination.strip_prefix("queue://"))
        .filter(|n| !n.is_empty())
        .map(Destination::queue)
        .ok_or_else(|| AdminError::BadRequest(format!("{destination} is not a queue")))
}

fn admin_error(e: BrokerError) -> AdminError {
    match e {
        BrokerError::NoSuchDestination(_) => AdminError::NotFound(e.to_string()),
        BrokerError::NotAQueue(_) => AdminError::BadRequest(e.to_string()),
        BrokerError::QueueInUse(_) => AdminError::Conflict(e.to_string()),
        other => AdminError::Unavailable(other.to_string()),
    }
}

/// Runs on a shard's executor: carries out the admin commands for that shard, one at
/// a time, until the node drops the senders.
pub async fn serve(shard: Rc<Shard>, commands: async_channel::Receiver<AdminCommand>) {
    while let Ok(cmd) = commands.recv().await {
        let result = match cmd.op {
            AdminOp::Purge => shard.purge_queue(&cmd.destination).await,
            AdminOp::Delete => shard.delete_queue(&cmd.destination).await,
        };
        // The HTTP thread may have given up waiting.
        let _ = cmd.answer.send(result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_queues_are_accepted() {
        assert_eq!(queue("/queue/a"), Ok(Destination::queue("a")));
        assert_eq!(queue("queue://a/b"), Ok(Destination::queue("a/b")));
        for bad in ["/topic/a", "topic://a", "/queue/", "a", ""] {
            assert!(
                matches!(queue(bad), Err(AdminError::BadRequest(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_node_that_does_not_serve_answers_unavailable() {
        let (tx, rx) = async_channel::unbounded();
        let admin = NodeAdmin::new(vec![tx], Arc::new(AtomicBool::new(false)));
        assert!(matches!(
            admin.purge("/queue/a"),
            Err(AdminError::Unavailable(_))
        ));
        assert!(rx.is_empty(), "nothing reaches the shard");
    }

    #[test]
    fn errors_map_to_their_http_meaning() {
        assert_eq!(
            admin_error(BrokerError::NoSuchDestination("/queue/x".into())).status(),
            404
        );
        assert_eq!(
            admin_error(BrokerError::NotAQueue("x".into())).status(),
            400
        );
        assert_eq!(
            admin_error(BrokerError::QueueInUse("x".into())).status(),
            409
        );
        assert_eq!(admin_error(BrokerError::NotServing).status(), 503);
        assert_eq!(
            admin_error(BrokerError::from(crate::store::StoreError::Failed(
                "x".into()
            )))
            .status(),
            503
        );
    }
}
