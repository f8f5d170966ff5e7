//! What every source's run is assembled from, so the binary only maps its
//! configuration: the snapshot processor with its lanes and queue
//! ([`SnapshotPlan`]), the optional stages on its output ([`Stages`]), and
//! the loop that starts a run over after a loss the source can heal
//! ([`run_with_restarts`]). A source supplies its chunk source, its saved
//! progress and its position; nothing here names one (docs/architecture.md,
//! "Source-neutral engine").

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::columns::{ColumnFilter, ColumnRules};
use crate::event::SourceMeta;
use crate::heartbeat::Heartbeats;
use crate::pipeline::{Processor, Staged};
use crate::scheduler::SnapshotState;
use crate::schema::{SchemaStamp, TableSchema};
use crate::skipped::SkippedOperations;
use crate::snapshot::{ChunkSource, SnapshotError, SnapshotProcessor, SnapshotTables, WorkerDone};
use crate::source::SourceError;
use crate::telemetry::Telemetry;
use crate::transaction::TransactionMetadata;
use crate::TableRef;

/// At most this many lanes (connections) snapshot at once.
const MAX_LANES: usize = 16;

/// `[snapshot]` as the engine needs it.
#[derive(Debug, Clone)]
pub struct SnapshotSettings {
    pub chunk_size: usize,
    /// Tables snapshotted at once, each on a lane of its own.
    pub max_parallel_tables: usize,
    /// Snapshot every captured table on a pipeline's first start.
    pub initial: bool,
    /// Snapshot a table captured for the first time.
    pub new_tables: bool,
}

/// The snapshot side of one run, from the source.
pub struct SnapshotPlan {
    /// The first lane's chunk source; the others are [`ChunkSource::lane`]s.
    pub chunks: Arc<dyn ChunkSource>,
    /// The saved progress (`None` on a pipeline's first start).
    pub state: Option<SnapshotState>,
    pub tables: SnapshotTables,
    /// Keeps this pipeline's watermark ids apart from another's.
    pub window_prefix: String,
    /// Tables captured since the last run that are snapshotted whatever
    /// `new_tables` says (a pattern's match added before its marker).
    pub always_snapshot: Vec<TableRef>,
    /// The source lost part of its log (this range): every table is
    /// snapshotted again between resync markers.
    pub resync: Option<String>,
    /// With `resync`: a truncate event after each table's `begin` marker.
    pub resync_truncate: bool,
}

/// A started snapshot processor and the worker the run waits for.
pub struct Snapshots {
    pub processor: SnapshotProcessor,
    pub worker: WorkerDone,
}

#[derive(Debug, thiserror::Error)]
pub enum AssemblyError {
    #[error("starting the snapshot worker: {0}")]
    Worker(#[from] std::io::Error),
    #[error("saving the snapshot queue: {0}")]
    Save(#[from] SnapshotError),
}

impl SnapshotPlan {
    /// Start the worker lanes, queue what this start must snapshot (the
    /// initial snapshot, tables captured for the first time, a resync), and
    /// save the queue at once when it changed: a crash before the first
    /// chunk must not forget it (a lost position's guard will not fire
    /// again).
    pub async fn start(
        self,
        settings: &SnapshotSettings,
        telemetry: &Telemetry,
    ) -> Result<Snapshots, AssemblyError> {
        let first_start = self.state.is_none();
        let mut lanes = vec![self.chunks.clone()];
        for _ in 1..settings.max_parallel_tables.clamp(1, MAX_LANES) {
            match self.chunks.lane() {
                Some(lane) => lanes.push(lane),
                None => break,
            }
        }
        let (mut processor, worker) = SnapshotProcessor::start_lanes(
            lanes,
            self.state.unwrap_or_default(),
            self.tables,
            settings.chunk_size,
            self.window_prefix,
        )?;
        processor.set_telemetry(telemetry.clone());
        if settings.initial && first_start {
            processor.enqueue_all();
        }
        let new = processor.capture_new_tables(settings.new_tables, &self.always_snapshot);
        if let Some(lost) = &self.resync {
            if self.resync_truncate {
                processor.truncate_before_resync();
            }
            processor.enqueue_resync(lost);
        }
        if self.resync.is_some() {
            self.chunks.save_state(processor.state()).await?;
        } else if first_start || !new.is_empty() {
            // The captured tables: the next start must know them even when
            // nothing is ever flushed; a failure here is saved again later.
            if let Err(err) = self.chunks.save_state(processor.state()).await {
                tracing::warn!(
                    "captured tables not saved yet (saved with the next progress): {err}"
                );
            }
        }
        Ok(Snapshots { processor, worker })
    }
}

/// Debezium's extras, each an optional stage on the processor's output.
#[derive(Default)]
pub struct Stages {
    /// Each row is stamped with its table's shape, for Connect schemas and
    /// Debezium's typed TOAST placeholders (these are the shapes at start;
    /// later ones come from the log).
    pub connect_schemas: Option<Vec<Arc<TableSchema>>>,
    /// Column filters and masks, with the shapes they resolve against.
    pub column_rules: Option<(ColumnRules, Vec<Arc<TableSchema>>)>,
    pub transaction_metadata: bool,
    /// Debezium's `skipped.operations`.
    pub skipped: SkippedOperations,
    /// Heartbeat records every interval, in the source's block.
    pub heartbeat: Option<(Duration, Arc<SourceMeta>)>,
}

impl Stages {
    /// `processor` wrapped in the stages asked for. Column rules are
    /// innermost but for the schema stamp, so nothing after them sees a
    /// masked value.
    pub fn wrap(self, processor: Box<dyn Processor>) -> Box<dyn Processor> {
        let mut processor = processor;
        if let Some(schemas) = self.connect_schemas {
            processor = Box::new(Staged::new(processor, SchemaStamp::new(schemas)));
        }
        if let Some((rules, schemas)) = self.column_rules.filter(|(r, _)| !r.is_empty()) {
            processor = Box::new(Staged::new(processor, ColumnFilter::new(rules, schemas)));
        }
        // Before the transaction metadata, so its counts are of what is written.
        if !self.skipped.is_empty() {
            processor = Box::new(Staged::new(processor, self.skipped));
        }
        if self.transaction_metadata {
            processor = Box::new(Staged::new(processor, TransactionMetadata::default()));
        }
        if let Some((every, meta)) = self.heartbeat {
            processor = Box::new(Staged::new(processor, Heartbeats::new(every, meta)));
        }
        processor
    }
}

/// Why a run that ended with `err` starts over, if it does: a lost
/// position when the policy heals it (`heal`), another server behind the
/// address, a lost lease (the instance stands by again), a transient
/// failure (tried again with backoff).
pub fn restart_reason(err: &SourceError, heal: bool) -> Option<&SourceError> {
    match err {
        SourceError::PositionLost(_) => heal.then_some(err),
        SourceError::ServerChanged(_) | SourceError::LeaseLost(_) | SourceError::Transient(_) => {
            Some(err)
        }
        SourceError::Fatal(_) => None,
    }
}

/// How long to wait before the `attempt`th transient restart in a row.
fn transient_backoff(attempt: u32) -> Duration {
    (Duration::from_millis(250) * 2u32.saturating_pow(attempt.min(7))).min(Duration::from_secs(30))
}

/// Run `once` until it ends for good: a run that ended with a source error
/// [`restart_reason`] accepts starts over (`once(true)`), unless a
/// shutdown was asked for. `source_error` finds the source's error in the
/// caller's error type.
pub async fn run_with_restarts<T, E, F, Fut>(
    heal: bool,
    shutdown: &tokio::sync::watch::Receiver<bool>,
    source_error: impl Fn(&E) -> Option<&SourceError>,
    mut once: F,
) -> Result<T, E>
where
    F: FnMut(bool) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut restarted = false;
    let mut transient_in_a_row = 0;
    let mut shutdown = shutdown.clone();
    loop {
        let started = std::time::Instant::now();
        let result = once(restarted).await;
        if started.elapsed() > Duration::from_secs(60) {
            // It ran a while: a fault now is a new one.
            transient_in_a_row = 0;
        }
        let why = result
            .as_ref()
            .err()
            .and_then(&source_error)
            .and_then(|e| restart_reason(e, heal));
        match why {
            Some(why) if !*shutdown.borrow() => {
                restarted = true;
                match why {
                    // Already said, as a warning, where the lease was lost.
                    SourceError::LeaseLost(_) => tracing::info!("{why}; standing by again"),
                    SourceError::Transient(_) => {
                        let wait = transient_backoff(transient_in_a_row);
                        transient_in_a_row += 1;
                        tracing::warn!("{why}; trying again in {:.1}s", wait.as_secs_f64());
                        tokio::select! {
                            _ = tokio::time::sleep(wait) => {}
                            _ = shutdown.changed() => {}
                        }
                        if *shutdown.borrow() {
                            return result;
                        }
                        continue;
                    }
                    _ => tracing::warn!("{why}; starting over"),
                }
                transient_in_a_row = 0;
            }
            _ => return result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn losses_restart_only_when_healed_and_servers_and_leases_always() {
        let lost = SourceError::PositionLost("gone".into());
        assert!(restart_reason(&lost, true).is_some());
        assert!(restart_reason(&lost, false).is_none());
        let moved = SourceError::ServerChanged("timeline 2".into());
        assert!(restart_reason(&moved, false).is_some());
        let lease = SourceError::LeaseLost("lock".into());
        assert!(restart_reason(&lease, false).is_some());
        let fatal = SourceError::Fatal("auth".into());
        assert!(restart_reason(&fatal, true).is_none());
        let transient = SourceError::Transient("server starting up".into());
        assert!(restart_reason(&transient, false).is_some());
        assert_eq!(transient_backoff(0), Duration::from_millis(250));
        assert_eq!(transient_backoff(2), Duration::from_secs(1));
        assert_eq!(transient_backoff(20), Duration::from_secs(30));
    }

    #[tokio::test]
    async fn a_run_starts_over_after_a_healed_loss_and_ends_on_anything_else() {
        let (_tx, shutdown) = tokio::sync::watch::channel(false);
        let mut calls = Vec::new();
        let result: Result<u32, SourceError> = run_with_restarts(
            true,
            &shutdown,
            |e| Some(e),
            |restarted| {
                calls.push(restarted);
                let n = calls.len();
                async move {
                    match n {
                        1 => Err(SourceError::PositionLost("slot gone".into())),
                        2 => Err(SourceError::ServerChanged("failover".into())),
                        3 => Err(SourceError::Transient("server starting up".into())),
                        _ => Ok(7),
                    }
                }
            },
        )
        .await;
        assert_eq!(result.ok(), Some(7));
        assert_eq!(calls, [false, true, true, true]);

        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let _ = stop.send(true);
        let result: Result<u32, SourceError> = run_with_restarts(
            true,
            &shutdown,
            |e| Some(e),
            |_| async { Err(SourceError::PositionLost("slot gone".into())) },
        )
        .await;
        assert!(result.is_err(), "a shutdown ends the loop");
    }
}
