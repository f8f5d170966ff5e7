//! A thread of its own for a sink's blocking I/O.
//!
//! `cdc` runs on one runtime thread: a `write_all` to a pipe nobody reads, or
//! an fsync on a slow disk, would stop the log reader too, and the server
//! would drop a replication connection that no longer answers its
//! keepalives. So every blocking call of the file and stdout sinks runs on
//! this thread; the sink awaits its answer, which keeps the contract
//! (`write` accepted, `flush` durable) and lets the rest of the runtime go on.

use tokio::sync::{mpsc, oneshot};

type Job<S> = Box<dyn FnOnce(&mut S) + Send>;

/// Owns the state `S` (an open file) on a dedicated thread.
pub(crate) struct Worker<S> {
    jobs: mpsc::Sender<Job<S>>,
}

impl<S: Send + 'static> Worker<S> {
    /// The thread ends when the worker is dropped, closing what it owns.
    pub(crate) fn spawn(name: &str, mut state: S) -> std::io::Result<Self> {
        // One job at a time: each call awaits its answer before the next.
        let (jobs, mut rx) = mpsc::channel::<Job<S>>(1);
        std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                while let Some(job) = rx.blocking_recv() {
                    job(&mut state);
                }
            })?;
        Ok(Worker { jobs })
    }

    /// Run `f` on the thread and wait for its result without blocking the
    /// runtime. `None` if the thread is gone (it panicked).
    pub(crate) async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut S) -> R + Send + 'static,
    ) -> Option<R> {
        self.start(f).await?.await.ok()
    }

    /// Hand `f` to the thread and return at once with where its result
    /// will come: the caller goes on while the thread works. `None` if the
    /// thread is gone.
    pub(crate) async fn start<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut S) -> R + Send + 'static,
    ) -> Option<oneshot::Receiver<R>> {
        let (tx, rx) = oneshot::channel();
        let job: Job<S> = Box::new(move |state| {
            let _ = tx.send(f(state));
        });
        self.jobs.send(job).await.ok()?;
        Some(rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn a_blocked_job_leaves_the_runtime_free() {
        let worker = Worker::spawn("test-worker", 0u32).unwrap();
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let job = worker.run(move |n| {
            // Blocks the worker thread, as a full pipe would.
            let _ = wait.recv();
            *n += 1;
            *n
        });
        tokio::pin!(job);
        // The runtime still runs timers while the job blocks.
        tokio::select! {
            _ = &mut job => panic!("the job cannot finish before it is released"),
            _ = tokio::time::sleep(std::time::Duration::from_millis(50)) => {}
        }
        release.send(()).unwrap();
        assert_eq!(job.await, Some(1));
    }
}
