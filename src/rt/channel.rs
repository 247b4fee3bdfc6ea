//! Channels: the shard mesh (between executors) and local queues (inside one).
//!
//! The mesh is built on the main thread before the executors start, one bounded SPSC
//! `shared_channel` per ordered pair of distinct shards, and handed out by shard index
//! (glommio's own `channel_mesh` numbers peers by join order, which is not our shard
//! index). Messages to the local shard go through an unbounded local queue instead.
//!
//! Posting never awaits: each destination shard has a local outgoing queue drained by
//! a pump task. A handler that awaited a full channel while its peer did the same
//! would deadlock the pair; flow control is done above, by sessions bounding what they
//! have outstanding.

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;

use glommio::channels::local_channel;
use glommio::channels::shared_channel::{self, SharedReceiver, SharedSender};

/// An unbounded channel inside one executor.
pub struct LocalSender<T>(local_channel::LocalSender<T>);
pub struct LocalReceiver<T>(local_channel::LocalReceiver<T>);

pub fn local_unbounded<T>() -> (LocalSender<T>, LocalReceiver<T>) {
    let (tx, rx) = local_channel::new_unbounded();
    (LocalSender(tx), LocalReceiver(rx))
}

impl<T> LocalSender<T> {
    /// Queues `item`; returns it back if the receiver is gone.
    pub fn send(&self, item: T) -> Result<(), T> {
        self.0.try_send(item).map_err(|e| match e {
            glommio::GlommioError::Closed(glommio::ResourceType::Channel(v)) => v,
            glommio::GlommioError::WouldBlock(glommio::ResourceType::Channel(v)) => v,
            _ => unreachable!("local channel errors always carry the item"),
        })
    }
}

impl<T> LocalReceiver<T> {
    /// The next item, or `None` once every sender is gone.
    pub async fn recv(&self) -> Option<T> {
        self.0.recv().await
    }
}

/// The ends of the mesh that belong to one shard, before they are connected on that
/// shard's executor. `Send`, so it can be moved into the executor's closure.
pub struct MeshEnds<T: Send> {
    shard: usize,
    senders: Vec<Option<SharedSender<T>>>,
    receivers: Vec<SharedReceiver<T>>,
}

/// Builds a full mesh between `shards` executors, `capacity` messages per link.
pub fn mesh<T: Send + 'static>(shards: usize, capacity: usize) -> Vec<MeshEnds<T>> {
    let mut ends: Vec<MeshEnds<T>> = (0..shards)
        .map(|shard| MeshEnds {
            shard,
            senders: (0..shards).map(|_| None).collect(),
            receivers: Vec::new(),
        })
        .collect();
    for from in 0..shards {
        for to in 0..shards {
            if from == to {
                continue;
            }
            let (tx, rx) = shared_channel::new_bounded(capacity);
            ends[from].senders[to] = Some(tx);
            ends[to].receivers.push(rx);
        }
    }
    ends
}

/// The sending side of the mesh on one shard. Cheap to clone (`Rc`).
pub struct Outbox<T: Send> {
    shard: usize,
    queues: Vec<LocalSender<T>>,
}

impl<T: Send + 'static> MeshEnds<T> {
    /// Connects this shard's ends. Must run on the shard's own executor. Every message
    /// that arrives (from any shard, including this one) is passed to `handler`, one
    /// at a time, in arrival order per sending shard.
    ///
    /// Each end connects in its own task: a shared channel's `connect` waits for its
    /// peer, so connecting them one after another could deadlock two shards. Until a
    /// link is up, posted messages wait in the local queue.
    pub fn connect<H>(self, handler: H) -> Rc<Outbox<T>>
    where
        H: Fn(T) + 'static,
    {
        let handler = Rc::new(handler);
        let mut queues = Vec::with_capacity(self.senders.len());
        for (to, sender) in self.senders.into_iter().enumerate() {
            let (tx, rx) = local_unbounded::<T>();
            match sender {
                Some(sender) => {
                    glommio::spawn_local(async move {
                        let connected = sender.connect().await;
                        while let Some(item) = rx.recv().await {
                            if connected.send(item).await.is_err() {
                                tracing::debug!(to, "mesh link closed");
                                break;
                            }
                        }
                    })
                    .detach();
                }
                None => {
                    // Local delivery still goes through a queue and a task, so a
                    // handler never runs re-entrantly inside another handler.
                    let handler = handler.clone();
                    glommio::spawn_local(async move {
                        while let Some(item) = rx.recv().await {
                            handler(item);
                            glommio::yield_if_needed().await;
                        }
                    })
                    .detach();
                }
            }
            queues.push(tx);
        }
        for receiver in self.receivers {
            let handler = handler.clone();
            glommio::spawn_local(async move {
                let connected = receiver.connect().await;
                while let Some(item) = connected.recv().await {
                    handler(item);
                    glommio::yield_if_needed().await;
                }
            })
            .detach();
        }
        Rc::new(Outbox {
            shard: self.shard,
            queues,
        })
    }
}

impl<T: Send> Outbox<T> {
    pub fn shard(&self) -> usize {
        self.shard
    }
    pub fn shard_count(&self) -> usize {
        self.queues.len()
    }
    /// Queues `item` for shard `to`. Never awaits. Returns false if that shard is gone.
    pub fn post(&self, to: usize, item: T) -> bool {
        match self.queues.get(to) {
            Some(q) => q.send(item).is_ok(),
            None => false,
        }
    }
}

/// A one-shot, single-executor notification slot: the waiter awaits `wait()`, the
/// other side calls `set`.
pub struct Oneshot<T> {
    inner: Rc<RefCell<OneshotState<T>>>,
}
struct OneshotState<T> {
    value: Option<T>,
    waker: Option<std::task::Waker>,
}
impl<T> Clone for Oneshot<T> {
    fn clone(&self) -> Self {
        Oneshot {
            inner: self.inner.clone(),
        }
    }
}
impl<T> Default for Oneshot<T> {
    fn default() -> Self {
        Oneshot {
            inner: Rc::new(RefCell::new(OneshotState {
                value: None,
                waker: None,
            })),
        }
    }
}
impl<T> Oneshot<T> {
    pub fn set(&self, value: T) {
        let mut s = self.inner.borrow_mut();
        s.value = Some(value);
        if let Some(w) = s.waker.take() {
            w.wake();
        }
    }
    pub fn wait(&self) -> impl Future<Output = T> + '_ {
        std::future::poll_fn(move |cx| {
            let mut s = self.inner.borrow_mut();
            match s.value.take() {
                Some(v) => std::task::Poll::Ready(v),
                None => {
                    s.waker = Some(cx.waker().clone());
                    std::task::Poll::Pending
                }
            }
        })
    }
}
