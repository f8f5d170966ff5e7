//! The snapshot worker: a thread of its own per lane, which writes a chunk's
//! watermarks and selects its rows, and reports back to the processor
//! (`snapshot.rs`). Nothing here decides what to select.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

use super::{ChunkSource, Report, Request, SnapshotError};
use crate::merger::Chunk;
use crate::scheduler::{ChunkRequest, Selected};

/// Backoff before selecting a chunk again after `attempt` failures.
fn retry_delay(attempt: u32) -> Duration {
    if attempt == 0 {
        return Duration::ZERO;
    }
    Duration::from_millis(100u64.saturating_mul(1 << attempt.min(6))).min(Duration::from_secs(5))
}

/// A worker's side of the report channel: each report also wakes the
/// pipeline (see [`Processor::wake`]).
#[derive(Clone)]
pub(super) struct Reporter {
    pub(super) tx: mpsc::UnboundedSender<Report>,
    pub(super) ready: Arc<tokio::sync::Notify>,
}

impl Reporter {
    fn send(&self, report: Report) {
        // An error means the processor is gone: nobody to report to.
        if self.tx.send(report).is_ok() {
            self.ready.notify_one();
        }
    }
}

/// Resolves once every worker has finished its last request (the processor
/// was dropped, so no more come).
pub struct WorkerDone(pub(super) Vec<WorkerDone1>);

impl WorkerDone {
    pub async fn wait(self) {
        for done in self.0 {
            // An error means the worker is gone too (it panicked).
            let _ = done.0.await;
        }
    }
}

/// One worker's end.
pub struct WorkerDone1(oneshot::Receiver<()>);

/// Run the worker on a thread of its own, with its own runtime: a chunk is
/// streamed from the server and converted while the pipeline's thread merges
/// and serialises the previous one, and the worker's round trips (watermarks,
/// selects) never wait behind a long batch. Chunks cross threads whole, once
/// per chunk, so the hand-off costs nothing per row.
pub(super) fn spawn_worker(
    source: Arc<dyn ChunkSource>,
    requests: mpsc::UnboundedReceiver<Request>,
    reports: Reporter,
) -> std::io::Result<WorkerDone1> {
    let (done_tx, done) = oneshot::channel();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // The thread's lines carry the run's span (slot, instance) too.
    let span = tracing::Span::current();
    std::thread::Builder::new()
        .name("cdc-snapshot".into())
        .spawn(move || {
            runtime.block_on(worker(source, requests, reports).instrument(span));
            let _ = done_tx.send(());
        })?;
    Ok(WorkerDone1(done))
}

async fn worker(
    source: Arc<dyn ChunkSource>,
    mut requests: mpsc::UnboundedReceiver<Request>,
    reports: Reporter,
) {
    // One warning per spell of unsaved progress (a lost lease refuses every
    // flush's save while the run drains): the rest are debug lines.
    let mut unsaved = false;
    while let Some(request) = requests.recv().await {
        match request {
            Request::Marker(content) => {
                if let Err(err) = source.emit_marker(&content).await {
                    tracing::error!(
                        "resync marker not written ({content}): {err}; consumers cannot sweep the keys lost with the slot"
                    );
                }
            }
            Request::Save(state) => match source.save_state(&state).await {
                Ok(()) => unsaved = false,
                Err(err) if unsaved => {
                    tracing::debug!("snapshot progress still not saved: {err}");
                }
                Err(err) => {
                    unsaved = true;
                    tracing::warn!(
                        "snapshot progress not saved (kept in memory, saved again later): {err}"
                    );
                }
            },
            Request::Select { request, window } => {
                // Not even a zero sleep on the first attempt: the timer
                // wheel rounds it up to a millisecond, per chunk.
                if request.attempt > 0 {
                    tokio::time::sleep(retry_delay(request.attempt)).await;
                }
                // One span per chunk (not per row): its lines, the
                // source's too, name the table and the window.
                let span =
                    tracing::info_span!("snapshot", table = %request.table, window = %window);
                let report = select(source.as_ref(), &request, &window, &reports)
                    .instrument(span)
                    .await;
                if let Err(error) = report {
                    reports.send(Report::Failed {
                        token: request.token,
                        error,
                    });
                }
            }
        }
    }
}

async fn select(
    source: &dyn ChunkSource,
    request: &ChunkRequest,
    window: &str,
    reports: &Reporter,
) -> Result<(), SnapshotError> {
    let started = Instant::now();
    source.open_window(window).await?;
    let opened = started.elapsed();
    let selected = source.select_chunk(request).await?;
    let read = started.elapsed();
    let chunk = Chunk {
        token: request.token,
        window: window.to_string(),
        table: Arc::new(request.table.clone()),
        rows: selected.rows,
        visibility: selected.visibility,
    };
    let summary = Selected {
        rows: chunk.rows.len(),
        last: selected.last,
        last_key: selected.last_key,
        max_key: selected.max_key,
        estimate: selected.estimate,
    };
    let summary_rows = summary.rows;
    // Before the high watermark: see the module docs. The pipeline takes
    // it while the high watermark is written, so the next chunk's request
    // is queued when the worker is done with this one.
    reports.send(Report::Selected {
        token: request.token,
        chunk,
        selected: summary,
    });
    source.close_window(window).await?;
    tracing::debug!(
        window,
        rows = summary_rows,
        low_watermark_us = opened.as_micros() as u64,
        select_us = (read - opened).as_micros() as u64,
        high_watermark_us = (started.elapsed() - read).as_micros() as u64,
        "chunk selected"
    );
    Ok(())
}
