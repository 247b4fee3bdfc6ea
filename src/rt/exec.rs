//! Executors, tasks and timers.

use std::future::Future;

use glommio::{LocalExecutorBuilder, Placement};

/// How to build one executor: where it runs and how much io_uring memory it takes.
/// Each executor makes 3 rings and registers `io_memory` in each (GLOMMIO.md): keep
/// both small, RLIMIT_MEMLOCK is 8 MiB per user here.
#[derive(Clone, Debug)]
pub struct ExecutorSpec {
    pub name: String,
    /// Pin to this CPU, or run unpinned.
    pub cpu: Option<usize>,
    pub io_memory_bytes: usize,
    pub ring_depth: usize,
}

/// A running executor thread.
pub struct ExecutorHandle<T: Send + 'static> {
    inner: glommio::ExecutorJoinHandle<T>,
}

impl<T: Send + 'static> ExecutorHandle<T> {
    /// Waits for the executor's main future to finish.
    pub fn join(self) -> std::io::Result<T> {
        self.inner
            .join()
            .map_err(|e| std::io::Error::other(format!("executor failed: {e:?}")))
    }
}

/// Starts an executor thread running `make()`'s future.
pub fn start<G, F, T>(spec: &ExecutorSpec, make: G) -> std::io::Result<ExecutorHandle<T>>
where
    G: FnOnce() -> F + Send + 'static,
    F: Future<Output = T> + 'static,
    T: Send + 'static,
{
    let placement = match spec.cpu {
        Some(cpu) => Placement::Fixed(cpu),
        None => Placement::Unbound,
    };
    let inner = LocalExecutorBuilder::new(placement)
        .name(&spec.name)
        .io_memory(spec.io_memory_bytes)
        .ring_depth(spec.ring_depth)
        .spawn(make)
        .map_err(|e| std::io::Error::other(format!("cannot start executor {}: {e}", spec.name)))?;
    Ok(ExecutorHandle { inner })
}

/// Like [`start`], and sends `spec.name` on `exited` if the executor's thread ever
/// ends: a task that panics unwinds through the executor and takes its thread with
/// it, and the owner of a thread that must live as long as the process (a shard)
/// learns of it instead of going on with a dead thread.
pub fn start_watched<G, F, T>(
    spec: &ExecutorSpec,
    exited: std::sync::mpsc::Sender<String>,
    make: G,
) -> std::io::Result<ExecutorHandle<T>>
where
    G: FnOnce() -> F + Send + 'static,
    F: Future<Output = T> + 'static,
    T: Send + 'static,
{
    let name = spec.name.clone();
    start(spec, move || {
        // A thread-local's destructor runs when the thread ends, after a panic has
        // unwound it too (not when the process exits under it).
        EXIT_WATCH.with(|w| *w.borrow_mut() = Some(ExitWatch { name, exited }));
        make()
    })
}

struct ExitWatch {
    name: String,
    exited: std::sync::mpsc::Sender<String>,
}

impl Drop for ExitWatch {
    fn drop(&mut self) {
        let _ = self.exited.send(std::mem::take(&mut self.name));
    }
}

thread_local! {
    static EXIT_WATCH: std::cell::RefCell<Option<ExitWatch>> = const { std::cell::RefCell::new(None) };
}

/// Work handed to a running executor from another thread: a `Send` constructor whose
/// future then runs as a task of that executor (the future itself need not be `Send`).
/// How the replication core shares a shard's executor on a small host.
pub type Guest = Box<dyn FnOnce() -> std::pin::Pin<Box<dyn Future<Output = ()>>> + Send>;

/// Runs every [`Guest`] that arrives on `guests` as a task of the current executor,
/// until the sending side is dropped.
pub async fn host_guests(guests: async_channel::Receiver<Guest>) {
    while let Ok(guest) = guests.recv().await {
        glommio::spawn_local(guest()).detach();
    }
}

/// A task whose result can be awaited; dropping it cancels the task.
pub struct Task<T>(glommio::Task<T>);

impl<T: 'static> Task<T> {
    pub fn spawn<F: Future<Output = T> + 'static>(fut: F) -> Task<T> {
        Task(glommio::spawn_local(fut))
    }
    pub async fn join(self) -> T {
        self.0.await
    }
}

/// Runs blocking work (std::fs, DNS) off the executor thread.
pub async fn blocking<F, R>(f: F) -> R
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    glommio::executor().spawn_blocking(f).await
}
