//! The sink contract: accepted is not durable.
//!
//! `write` hands events over in order; `flush` returns only when everything
//! written so far is durable (fsynced, or confirmed by the broker). The
//! pipeline acknowledges a source position only after a `flush` that covers
//! every event at or before it.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::Mutex;

use crate::event::Event;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Worth retrying after a pause: a full disk, a broker that is down.
    /// The sink has rolled back any partial write, so the same events can
    /// be written again.
    #[error("{0}")]
    Retriable(String),
    /// Retrying cannot help: bad configuration, authorisation, a message
    /// the destination refuses.
    #[error("{0}")]
    Fatal(String),
}

#[async_trait]
pub trait Sink: Send {
    /// A short name for logs (`file:/path`, `stdout`, `kafka`).
    fn describe(&self) -> String;

    /// Accept `events` in order. On error nothing of this call is accepted.
    async fn write(&mut self, events: &[Event]) -> Result<(), SinkError>;

    /// Make everything accepted so far durable.
    async fn flush(&mut self) -> Result<(), SinkError>;

    /// A new run starts, which sends again everything after the last
    /// acknowledged position: drop what was accepted but never confirmed,
    /// without recalling what is already on its way (that lands before
    /// anything written from now on, in order).
    fn forget_unconfirmed(&mut self) {}
}

/// One sink for the whole process, lent to each run in turn.
///
/// A run that ends (a lost lease, a crashed server) may leave records on
/// their way to the destination. A new sink of its own for the next run
/// would race them: an old record landing after the new run's re-sent
/// newer ones brings a key back in time (a deleted row back to life under
/// log compaction). Kept, the sink delivers what it has in flight first,
/// then the new run's records, in order.
#[derive(Clone)]
pub struct SharedSink {
    inner: Arc<Mutex<Box<dyn Sink>>>,
    name: String,
}

impl SharedSink {
    pub fn new(sink: Box<dyn Sink>) -> SharedSink {
        SharedSink {
            name: sink.describe(),
            inner: Arc::new(Mutex::new(sink)),
        }
    }

    /// The sink for the next run.
    pub async fn lend(&self) -> Box<dyn Sink> {
        self.inner.lock().await.forget_unconfirmed();
        Box::new(self.clone())
    }
}

#[async_trait]
impl Sink for SharedSink {
    fn describe(&self) -> String {
        self.name.clone()
    }

    async fn write(&mut self, events: &[Event]) -> Result<(), SinkError> {
        self.inner.lock().await.write(events).await
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        self.inner.lock().await.flush().await
    }

    fn forget_unconfirmed(&mut self) {
        // Only `lend` starts a run; a lent handle has nothing to forget.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts what reaches it, as one sink across runs.
    #[derive(Default)]
    struct Counting {
        written: Arc<std::sync::Mutex<Vec<usize>>>,
        forgotten: Arc<std::sync::atomic::AtomicUsize>,
    }

    #[async_trait]
    impl Sink for Counting {
        fn describe(&self) -> String {
            "counting".into()
        }
        async fn write(&mut self, events: &[Event]) -> Result<(), SinkError> {
            if let Ok(mut w) = self.written.lock() {
                w.push(events.len());
            }
            Ok(())
        }
        async fn flush(&mut self) -> Result<(), SinkError> {
            Ok(())
        }
        fn forget_unconfirmed(&mut self) {
            self.forgotten
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn every_run_gets_the_same_sink_told_to_forget_the_last_runs_unconfirmed() {
        let inner = Counting::default();
        let (written, forgotten) = (inner.written.clone(), inner.forgotten.clone());
        let shared = SharedSink::new(Box::new(inner));
        let mut first = shared.lend().await;
        first.write(&[]).await.unwrap_or_default();
        drop(first);
        let mut second = shared.lend().await;
        // A lent handle forgets nothing by itself: only a new lend does.
        second.forget_unconfirmed();
        second.write(&[]).await.unwrap_or_default();
        second.flush().await.unwrap_or_default();
        assert_eq!(second.describe(), "counting");
        assert_eq!(forgotten.load(std::sync::atomic::Ordering::SeqCst), 2);
        assert_eq!(written.lock().map(|w| w.len()).unwrap_or_default(), 2);
    }
}
