//! Where a source remembers what the engine acknowledged, and the task that
//! keeps it written.
//!
//! The store holds a lower bound of the acknowledged position, outside the
//! engine's process (no local state): PostgreSQL keeps a row of
//! `cdc.positions` next to its slot, for the guards that tell a lost slot
//! from a fresh start; MongoDB keeps a document in the `cdc` database,
//! which is also where a new run resumes from. Writing it on every flush
//! would cost a round trip per flush, so [`PositionWriter`] writes the
//! latest acknowledgement at most once per interval, off the log reader's
//! path, and exactly once more at a clean stop.

use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

use crate::event::Position;

/// A source's record of its acknowledged position.
#[async_trait]
pub trait PositionStore: Send + Sync + 'static {
    /// Record `position` as acknowledged; `clean` at a clean stop, when it
    /// is exact rather than a lower bound. `Err` is a one-line reason.
    async fn write(&self, position: &Position, clean: bool) -> Result<(), String>;

    /// The store, for log lines (`cdc.positions for slot 'cdc'`).
    fn describe(&self) -> String;

    /// A write failed: whether this is the first notice of its fault, to
    /// be warned of (a source whose connections all end with one crashed
    /// server warns once, from whichever notices first).
    fn first_to_notice_outage(&self) -> bool {
        true
    }
}

/// The running engine's side of a [`PositionStore`]: the log reader hands
/// acknowledged positions over (never waiting); a task writes the latest
/// one every `interval`.
pub struct PositionWriter {
    tx: watch::Sender<(Option<Position>, bool)>,
    task: tokio::task::JoinHandle<()>,
}

impl PositionWriter {
    /// Writes from `start` on (the position the stream resumed from, which
    /// is not written again).
    pub fn spawn(
        store: impl PositionStore,
        start: Option<Position>,
        interval: Duration,
    ) -> PositionWriter {
        let (tx, rx) = watch::channel((start.clone(), false));
        let task = tokio::spawn(write_loop(store, start, rx, interval));
        PositionWriter { tx, task }
    }

    /// Everything up to `position` is durable and was acknowledged.
    pub fn acknowledged(&self, position: &Position) {
        self.tx.send_if_modified(|(current, _)| {
            if current.as_ref().is_some_and(|c| c >= position) {
                return false;
            }
            *current = Some(position.clone());
            true
        });
    }

    /// Stop writing at once: this instance lost its lease, and the record
    /// is the new holder's to write.
    pub fn abandon(self) {
        self.task.abort();
    }

    /// Write the final, exact record and wait (at most `wait`) for it.
    /// `false`: it was not written in time.
    pub async fn finish(self, last: Option<Position>, wait: Duration) -> bool {
        self.tx.send_modify(|(current, clean)| {
            if let Some(last) = last {
                if current.as_ref().is_none_or(|c| *c < last) {
                    *current = Some(last);
                }
            }
            *clean = true;
        });
        drop(self.tx);
        tokio::time::timeout(wait, self.task).await.is_ok()
    }
}

async fn write_loop(
    store: impl PositionStore,
    start: Option<Position>,
    mut rx: watch::Receiver<(Option<Position>, bool)>,
    interval: Duration,
) {
    let mut written = (start, false);
    let mut warned = false;
    let mut next = tokio::time::Instant::now();
    let mut closed = false;
    while !closed {
        closed = rx.changed().await.is_err();
        // At most one write per interval, whatever the acknowledgement
        // rate; a closed channel (shutdown) writes at once.
        while !closed {
            tokio::select! {
                _ = tokio::time::sleep_until(next) => break,
                changed = rx.changed() => closed = changed.is_err(),
            }
        }
        let latest = rx.borrow_and_update().clone();
        let Some(position) = latest.0.clone() else {
            continue;
        };
        if latest == written {
            continue;
        }
        let result = store.write(&position, latest.1).await;
        next = tokio::time::Instant::now() + interval;
        match result {
            Ok(()) => written = latest,
            // Once per run: the store is a lower bound, and the next write
            // carries everything this one would have.
            Err(reason) if !warned => {
                warned = true;
                crate::warn_or_info!(
                    store.first_to_notice_outage(),
                    "cannot write {}: {reason}; the next start works from its last record",
                    store.describe()
                );
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Recorded(Arc<Mutex<Vec<(u64, bool)>>>);

    #[async_trait]
    impl PositionStore for Recorded {
        async fn write(&self, position: &Position, clean: bool) -> Result<(), String> {
            let value = position.as_u64().ok_or("not a u64")?;
            self.0
                .lock()
                .map_err(|e| e.to_string())?
                .push((value, clean));
            Ok(())
        }
        fn describe(&self) -> String {
            "the test store".into()
        }
    }

    fn writes(store: &Recorded) -> Vec<(u64, bool)> {
        store.0.lock().map(|w| w.clone()).unwrap_or_default()
    }

    #[tokio::test]
    async fn writes_the_first_at_once_then_at_most_once_per_interval_and_exactly_at_the_end() {
        let store = Recorded::default();
        // An interval no test outlives: only the first write and the
        // final one can happen.
        let writer = PositionWriter::spawn(
            store.clone(),
            Some(Position::from_u64(5)),
            Duration::from_secs(3600),
        );
        writer.acknowledged(&Position::from_u64(6));
        while writes(&store).is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        for lsn in 7..=100 {
            writer.acknowledged(&Position::from_u64(lsn));
        }
        // Going back is ignored.
        writer.acknowledged(&Position::from_u64(50));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(writes(&store), vec![(6, false)]);
        assert!(
            writer
                .finish(Some(Position::from_u64(101)), Duration::from_secs(60))
                .await
        );
        assert_eq!(writes(&store), vec![(6, false), (101, true)]);
    }

    #[tokio::test]
    async fn the_start_is_not_written_again_until_the_clean_stop() {
        let store = Recorded::default();
        let writer = PositionWriter::spawn(
            store.clone(),
            Some(Position::from_u64(7)),
            Duration::from_secs(3600),
        );
        writer.acknowledged(&Position::from_u64(7));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(writes(&store).is_empty());
        assert!(writer.finish(None, Duration::from_secs(60)).await);
        assert_eq!(writes(&store), vec![(7, true)]);
    }
}
