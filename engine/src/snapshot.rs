//! Incremental snapshots in the pipeline: signals drive the scheduler, a
//! worker selects chunks between watermarks, and the window merger folds
//! each chunk into the log at its high watermark.
//!
//! ```text
//!  log items ─► SnapshotProcessor ─► events (log events at once, chunk rows at HW)
//!                 │  ▲ signals/outcomes
//!        requests ▼  │ reports (chunk selected before its HW is written)
//!               worker: LW → SELECT (with snapshot) → report → HW
//! ```
//!
//! The worker sends a chunk before it writes the high watermark, so when the
//! merger meets the high watermark in the log the chunk is already in the
//! report channel: the processor drains reports before every item.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use cdc_signal::{Command, TableRef};
use tokio::sync::mpsc;

use crate::event::{Event, Op};
use crate::merger::{Chunk, ChunkRow, Outcome, ReadSnapshot, WindowMerger};
use crate::pipeline::Processor;
use crate::scheduler::{Applied, ChunkRequest, Scheduler, Selected, SnapshotState};
use crate::source::LogItem;
use crate::telemetry::{Component, DiscardReason, ErrorKind, Telemetry};

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Retrying cannot help (the filter does not parse, the table is gone):
    /// the table's snapshot is dropped with this reason.
    #[error("{0}")]
    Definite(String),
    /// A lost connection and the like: the chunk is selected again.
    #[error("{0}")]
    Transient(String),
    /// The table's shape is not the one the chunk was selected with: the
    /// table's snapshot starts over in the new shape.
    #[error("{0}")]
    ShapeChanged(String),
}

/// What the chunk reader found.
#[derive(Debug, Clone)]
pub struct SelectedChunk {
    pub rows: Vec<ChunkRow>,
    /// Nothing is left of the table after this chunk, up to its maximum
    /// (for key order: fewer rows than the limit came).
    pub last: bool,
    /// Primary-key values of the last row, as text, for the next chunk.
    pub last_key: Option<Vec<String>>,
    /// The largest key, when the request asked for it (table start).
    pub max_key: Option<Vec<String>>,
    pub estimate: Option<u64>,
    /// What the read could see (see [`ReadSnapshot`]).
    pub visibility: Option<Arc<dyn ReadSnapshot>>,
}

impl SelectedChunk {
    /// No rows: the table is empty, or nothing is left of it.
    pub fn empty(
        max_key: Option<Vec<String>>,
        estimate: Option<u64>,
        visibility: Option<Arc<dyn ReadSnapshot>>,
    ) -> Self {
        SelectedChunk {
            rows: Vec::new(),
            last: true,
            last_key: None,
            max_key,
            estimate,
            visibility,
        }
    }
}

/// The source side of snapshots: watermarks, chunk selects, progress.
#[async_trait]
pub trait ChunkSource: Send + Sync {
    /// Write the low watermark of `window` in its own transaction.
    async fn open_window(&self, window: &str) -> Result<(), SnapshotError>;
    /// Select the chunk (and the table's maximum key if not read yet).
    async fn select_chunk(&self, request: &ChunkRequest) -> Result<SelectedChunk, SnapshotError>;
    /// Write the high watermark of `window` in its own transaction.
    async fn close_window(&self, window: &str) -> Result<(), SnapshotError>;
    /// Persist the scheduler's state (called once its events are durable).
    async fn save_state(&self, state: &SnapshotState) -> Result<(), SnapshotError>;

    /// Write `content` into the log as a resync marker (a transactional
    /// logical message with prefix [`RESYNC_PREFIX`]), in its own
    /// transaction, so it is ordered with the log's events.
    async fn emit_marker(&self, content: &str) -> Result<(), SnapshotError>;

    /// Reject a filter (`additional-conditions`) that cannot be used safely,
    /// when its signal arrives. The server still has the last word when the
    /// chunk is selected.
    fn check_filter(&self, _filter: &str) -> Result<(), String> {
        Ok(())
    }

    /// One filter for the rows of both `a` and `b` (a table asked for
    /// twice before it started), in the source's own filter language;
    /// `None` when the source cannot combine them: the table is then read
    /// whole, which covers both.
    fn union_filters(&self, _a: &str, _b: &str) -> Option<String> {
        None
    }

    /// Another chunk source like this one, on a connection of its own: a
    /// lane for tables snapshotted at once (`snapshot.max_parallel_tables`);
    /// `None`: one lane only.
    fn lane(&self) -> Option<Arc<dyn ChunkSource>> {
        None
    }

    /// The namespace a bare table name in a signal is in (PostgreSQL:
    /// `public`); `None`: signals must name it (`database.collection`).
    fn namespace(&self) -> Option<&str> {
        None
    }
}

/// Prefix of the log messages that bracket a resync snapshot of a table
/// (after a lost slot): a consumer deletes the table's keys it did not see
/// between a table's `begin` and `end` markers (README, "When the slot is
/// lost").
pub const RESYNC_PREFIX: &str = "cdc.resync";

/// The signal id of snapshots queued by [`SnapshotProcessor::enqueue_resync`].
pub const RESYNC_SIGNAL: &str = "resync";

/// The signal id of snapshots queued by [`SnapshotProcessor::capture_new_tables`].
pub const NEW_TABLES_SIGNAL: &str = "new-tables";

enum Request {
    /// A resync marker, written in request order: before the table's first
    /// window, after its last one.
    Marker(String),
    Select {
        request: ChunkRequest,
        window: String,
    },
    Save(SnapshotState),
}

enum Report {
    Selected {
        token: u64,
        chunk: Chunk,
        selected: Selected,
    },
    Failed {
        token: u64,
        error: SnapshotError,
    },
}

/// Tables that may be snapshotted: captured, with their primary key.
pub type SnapshotTables = HashMap<TableRef, Vec<String>>;

pub struct SnapshotProcessor {
    source: Arc<dyn ChunkSource>,
    merger: WindowMerger,
    scheduler: Scheduler,
    tables: SnapshotTables,
    /// One worker per lane, each with its own chunk source (connection): up
    /// to that many tables are snapshotted at once.
    lanes: Vec<mpsc::UnboundedSender<Request>>,
    /// The lane each table's requests go to while it is being snapshotted:
    /// one table's windows are written in order on one connection, so a
    /// window's LW follows the previous HW.
    lane_of: HashMap<TableRef, usize>,
    reports: mpsc::UnboundedReceiver<Report>,
    /// Signalled by a worker with each report, so the pipeline hands the
    /// report over at once rather than with the next log item.
    report_ready: Arc<tokio::sync::Notify>,
    outcomes: Vec<Outcome>,
    last_progress_log: Instant,
    /// The oldest chunk in flight and since when it has been the oldest.
    oldest: Option<(u64, Instant)>,
    /// Unique per engine run: `<prefix>-<start millis>-<token>`.
    window_prefix: String,
    /// Emit a truncate of the table after its resync `begin` marker.
    resync_truncate: bool,
    /// Chunk counters and the snapshot worker's health.
    telemetry: Telemetry,
}

/// Longest a chunk's window may stay open before it is selected again.
const WINDOW_TIMEOUT: Duration = Duration::from_secs(120);

impl SnapshotProcessor {
    /// Start the worker. `window_prefix` keeps this engine's watermark ids
    /// apart from another engine's on the same signal table.
    pub fn start(
        source: Arc<dyn ChunkSource>,
        state: SnapshotState,
        tables: SnapshotTables,
        chunk_size: usize,
        window_prefix: String,
    ) -> std::io::Result<(SnapshotProcessor, WorkerDone)> {
        Self::start_lanes(vec![source], state, tables, chunk_size, window_prefix)
    }

    /// Like [`SnapshotProcessor::start`] with one worker per chunk source in
    /// `sources` (at least one): as many tables are snapshotted at once
    /// (`snapshot.max_parallel_tables`).
    pub fn start_lanes(
        sources: Vec<Arc<dyn ChunkSource>>,
        state: SnapshotState,
        tables: SnapshotTables,
        chunk_size: usize,
        window_prefix: String,
    ) -> std::io::Result<(SnapshotProcessor, WorkerDone)> {
        let Some(source) = sources.first().cloned() else {
            return Err(std::io::Error::other("no chunk source"));
        };
        let (report_tx, reports) = mpsc::unbounded_channel();
        let report_ready = Arc::new(tokio::sync::Notify::new());
        let reporter = Reporter {
            tx: report_tx,
            ready: report_ready.clone(),
        };
        let mut lanes = Vec::with_capacity(sources.len());
        let mut done = Vec::with_capacity(sources.len());
        for lane_source in sources {
            let (requests, request_rx) = mpsc::unbounded_channel();
            done.push(spawn_worker(lane_source, request_rx, reporter.clone())?);
            lanes.push(requests);
        }
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        let union_source = source.clone();
        let processor = SnapshotProcessor {
            source,
            merger: WindowMerger::new(),
            scheduler: Scheduler::new(state, chunk_size)
                .with_parallel_tables(lanes.len())
                .with_filter_union(move |a, b| union_source.union_filters(a, b)),
            tables,
            lanes,
            lane_of: HashMap::new(),
            reports,
            report_ready,
            outcomes: Vec::new(),
            last_progress_log: Instant::now(),
            oldest: None,
            window_prefix: format!("{window_prefix}-{started}"),
            resync_truncate: false,
            telemetry: Telemetry::default(),
        };
        Ok((processor, WorkerDone(done)))
    }

    /// Send `request` to the lane of `table` (assigned on first use, to the
    /// least busy lane; released once the table is neither queued nor in
    /// flight). Saves go to the first lane.
    fn send(&mut self, table: Option<&TableRef>, request: Request) -> bool {
        let lane = match table {
            None => 0,
            Some(table) => match self.lane_of.get(table) {
                Some(&lane) => lane,
                None => {
                    let scheduler = &self.scheduler;
                    self.lane_of.retain(|t, _| scheduler.has_table(t));
                    let mut load = vec![0usize; self.lanes.len()];
                    for &lane in self.lane_of.values() {
                        if let Some(n) = load.get_mut(lane) {
                            *n += 1;
                        }
                    }
                    let lane = (0..load.len()).min_by_key(|&l| load[l]).unwrap_or(0);
                    self.lane_of.insert(table.clone(), lane);
                    lane
                }
            },
        };
        self.lanes
            .get(lane)
            .is_some_and(|lane| lane.send(request).is_ok())
    }

    /// Report chunks and the worker's health through `telemetry`.
    pub fn set_telemetry(&mut self, telemetry: Telemetry) {
        self.telemetry = telemetry;
    }

    /// Debezium's way after a lost slot: a truncate event of each table
    /// right after its resync `begin` marker, so a consumer that honours
    /// truncates rebuilds the table from the re-snapshot without a sweep.
    pub fn truncate_before_resync(&mut self) {
        self.resync_truncate = true;
    }

    /// The truncate to emit after `event`, when it is a resync `begin`
    /// marker of a captured table and truncates are asked for.
    fn resync_truncate_for(&self, event: &Event) -> Option<Event> {
        let message = event.message.as_ref()?;
        if !self.resync_truncate || event.op != Op::Message || message.prefix != RESYNC_PREFIX {
            return None;
        }
        let marker: serde_json::Value = serde_json::from_slice(&message.content).ok()?;
        if marker["phase"] != "begin" {
            return None;
        }
        let table = TableRef::new(marker["schema"].as_str()?, marker["name"].as_str()?);
        if !self.tables.contains_key(&table) {
            return None;
        }
        Some(Event {
            update: None,
            schema: None,
            op: Op::Truncate,
            table: Some(Arc::new(table)),
            key: None,
            before: None,
            after: None,
            source: event.source.clone(),
            message: None,
            transaction: None,
        })
    }

    /// The captured tables, in name order. A table without a key is read in
    /// the source's physical order (or refused by the source, in one line).
    fn snapshottable(&self) -> Vec<TableRef> {
        let mut tables: Vec<TableRef> = self.tables.keys().cloned().collect();
        tables.sort();
        tables
    }

    /// Queue every snapshottable table (the initial snapshot).
    pub fn enqueue_all(&mut self) {
        let tables = self.snapshottable();
        let added = self.scheduler.enqueue(&tables, "initial");
        if !added.is_empty() {
            tracing::info!(tables = added.len(), "initial snapshot queued");
            self.schedule();
        }
    }

    /// Remember the captured tables; with `snapshot`, queue a snapshot of
    /// each one the last run did not capture (`snapshot.new_tables`: a
    /// table added to the config, or a new match of a pattern), and of
    /// those in `always` in any case. On a first start nothing is new.
    /// Returns the tables new to this run.
    pub fn capture_new_tables(&mut self, snapshot: bool, always: &[TableRef]) -> Vec<TableRef> {
        let mut tables: Vec<TableRef> = self.tables.keys().cloned().collect();
        tables.sort();
        let new = self.scheduler.captured_at_start(&tables);
        if new.is_empty() {
            return new;
        }
        let (queue, rest): (Vec<TableRef>, Vec<TableRef>) = new
            .iter()
            .cloned()
            .partition(|t| snapshot || always.contains(t));
        if !queue.is_empty() {
            let added = self.scheduler.enqueue(&queue, NEW_TABLES_SIGNAL);
            tracing::info!(
                "captured for the first time, snapshot queued: {}",
                join(&added)
            );
            self.schedule();
        }
        if !rest.is_empty() {
            tracing::info!(
                "captured for the first time, from their next change on (set snapshot.new_tables = true to snapshot them): {}",
                join(&rest)
            );
        }
        new
    }

    /// Snapshot every snapshottable table again after a gap in the log
    /// (`lost`, e.g. an LSN range): each table's snapshot is bracketed by
    /// resync markers, `begin` written before its first window and `end`
    /// after its last, so a consumer can delete the keys of the table it did
    /// not see between them: rows deleted in the gap are in no snapshot.
    pub fn enqueue_resync(&mut self, lost: &str) {
        let tables = self.snapshottable();
        self.resync(tables, lost);
    }

    /// Snapshot `tables` again, bracketed by resync markers (see
    /// [`SnapshotProcessor::enqueue_resync`]).
    fn resync(&mut self, tables: Vec<TableRef>, lost: &str) {
        for token in self.scheduler.requeue(&tables, RESYNC_SIGNAL) {
            self.merger.cancel(token);
        }
        for table in &tables {
            self.marker(table, "begin", Some(lost));
        }
        if !tables.is_empty() {
            tracing::info!(tables = tables.len(), lost, "resync snapshot queued");
            self.schedule();
        }
    }

    fn marker(&mut self, table: &TableRef, phase: &str, lost: Option<&str>) {
        let mut content = serde_json::json!({
            "table": table.to_string(),
            "schema": table.schema,
            "name": table.name,
            "phase": phase,
        });
        if let Some(lost) = lost {
            content["lost"] = serde_json::Value::from(lost);
        }
        if !self.send(Some(table), Request::Marker(content.to_string())) {
            tracing::error!("snapshot worker is gone; resync marker for {table} not written");
        }
    }

    pub fn state(&self) -> &SnapshotState {
        self.scheduler.state()
    }

    fn validate(tables: &SnapshotTables, table: &TableRef) -> Result<(), String> {
        match tables.get(table) {
            None => Err(format!(
                "table {table} is not captured (add it to source.tables)"
            )),
            // A table without a key too: the source reads it by a surrogate
            // key or in its physical order, or refuses it in one line.
            Some(_) => Ok(()),
        }
    }

    /// A signal row the merger did not consume: an operator's command.
    fn on_command(&mut self, row: &cdc_signal::SignalRow) {
        let command = match cdc_signal::parse_in(row, self.source.namespace()) {
            Ok(command) => command,
            Err(err) => {
                tracing::warn!("signal '{}' ignored: {err}", row.id);
                return;
            }
        };
        match &command {
            // The merger's business (another engine's watermarks included).
            Command::WindowOpen { .. } | Command::WindowClose { .. } => {}
            Command::Log { message } => tracing::info!(signal = %row.id, "{message}"),
            Command::ExecuteSnapshot { conditions, .. } => {
                for condition in conditions {
                    if let Err(reason) = self.source.check_filter(&condition.filter) {
                        tracing::warn!(
                            "signal '{}' ignored: filter for {}: {reason}",
                            row.id,
                            condition.table
                        );
                        return;
                    }
                }
                self.apply(row, &command);
            }
            _ => self.apply(row, &command),
        }
    }

    fn apply(&mut self, row: &cdc_signal::SignalRow, command: &Command) {
        let tables = &self.tables;
        let id = &row.id;
        match self
            .scheduler
            .apply(id, command, |t| Self::validate(tables, t))
        {
            Ok(Applied::Queued(added)) if added.is_empty() => {
                tracing::info!(signal = %id, "snapshot already queued for every table named")
            }
            Ok(Applied::Queued(added)) => {
                tracing::info!(signal = %id, "snapshot queued: {}", join(&added))
            }
            Ok(Applied::Stopped(stopped)) => {
                for token in self.scheduler.take_cancelled() {
                    self.merger.cancel(token);
                }
                tracing::info!(signal = %id, "snapshot stopped: {}", join(&stopped))
            }
            Ok(Applied::Paused) => tracing::info!(signal = %id, "snapshot paused"),
            Ok(Applied::Resumed) => tracing::info!(signal = %id, "snapshot resumed"),
            Ok(Applied::Duplicate | Applied::Ignored) => {}
            Err(reason) => tracing::warn!("signal '{id}' ignored: {reason}"),
        }
    }

    fn drain_reports(&mut self) {
        while let Ok(report) = self.reports.try_recv() {
            match report {
                Report::Selected {
                    token,
                    chunk,
                    selected,
                } => {
                    if !self.scheduler.is_in_flight(token) {
                        // Cancelled meanwhile (a chunk before it was
                        // discarded): its watermarks will be ignored.
                        continue;
                    }
                    if let (Some(rows), Some(table)) =
                        (selected.estimate, self.scheduler.in_flight_table(token))
                    {
                        self.telemetry.snapshot_estimate(table, rows);
                    }
                    self.scheduler.on_selected(token, selected);
                    self.merger.on_chunk(chunk, &mut self.outcomes);
                }
                Report::Failed { token, error } => {
                    if !self.scheduler.is_in_flight(token) {
                        // Its window already closed (the failure came after
                        // the high watermark committed) or was cancelled.
                        continue;
                    }
                    let (definite, reason) = match error {
                        SnapshotError::ShapeChanged(reason) => {
                            let table = self.scheduler.in_flight_table(token).cloned();
                            if table.is_some_and(|t| self.restart_snapshot(&t, &reason)) {
                                continue;
                            }
                            // Nothing to start over: select the chunk again.
                            (false, reason)
                        }
                        SnapshotError::Definite(reason) => (true, reason),
                        SnapshotError::Transient(reason) => (false, reason),
                    };
                    // Its window (if open) can no longer be trusted, nor the
                    // chunks selected after it.
                    let (dropped, followers) = self.scheduler.on_failed(token, definite);
                    self.merger.cancel(token);
                    for follower in followers {
                        self.merger.cancel(follower);
                    }
                    self.telemetry.error(ErrorKind::Snapshot);
                    match dropped {
                        Some(dropped) => tracing::error!(
                            "snapshot of {} (signal '{}') stopped: {reason}",
                            dropped.table,
                            dropped.signal_id
                        ),
                        None => {
                            self.telemetry
                                .snapshot_chunk_discarded(DiscardReason::Failed);
                            self.telemetry.set_down(
                                Component::Snapshot,
                                format!("snapshot chunk failing: {reason}"),
                            );
                            tracing::warn!("snapshot chunk failed, selecting it again: {reason}")
                        }
                    }
                }
            }
        }
    }

    /// `table` changed shape (`reason`): a snapshot of it that started
    /// begins again, so no row of the old shape follows an event of the new.
    /// Returns whether a snapshot was restarted.
    fn restart_snapshot(&mut self, table: &TableRef, reason: &str) -> bool {
        let Some(cancelled) = self.scheduler.restart(table) else {
            return false;
        };
        for token in cancelled {
            self.merger.cancel(token);
        }
        tracing::info!(
            table = %table,
            "snapshot of {table} starts over in the new shape: {reason}"
        );
        true
    }

    fn handle_outcomes(&mut self) {
        for outcome in std::mem::take(&mut self.outcomes) {
            match outcome {
                Outcome::ChunkDone { token, emitted } => {
                    self.telemetry.snapshot_chunk_done();
                    if !self.telemetry.is_up(Component::Snapshot) {
                        self.telemetry.set_up(Component::Snapshot);
                    }
                    if let Some(finished) = self.scheduler.on_done(token, emitted) {
                        tracing::info!(
                            table = %finished.table,
                            rows = finished.rows,
                            "snapshot complete"
                        );
                        if finished.signal_id == RESYNC_SIGNAL {
                            self.marker(&finished.table, "end", None);
                        }
                    } else {
                        self.log_progress();
                    }
                }
                Outcome::ChunkDiscarded { token, reason } => {
                    self.telemetry
                        .snapshot_chunk_discarded(DiscardReason::Window);
                    tracing::info!("snapshot chunk discarded, selecting it again: {reason}");
                    for follower in self.scheduler.on_discarded(token) {
                        self.merger.cancel(follower);
                    }
                }
            }
        }
    }

    fn log_progress(&mut self) {
        if self.last_progress_log.elapsed() < Duration::from_secs(5) {
            return;
        }
        self.last_progress_log = Instant::now();
        if let Some(current) = self.scheduler.state().queue.front() {
            let estimate = current.estimate.unwrap_or(0);
            let percent = if estimate > 0 {
                format!(
                    " ({:.0}%)",
                    100.0 * current.rows_emitted as f64 / estimate as f64
                )
            } else {
                String::new()
            };
            tracing::info!(
                table = %current.table,
                "snapshot progress: {} of ~{} rows{percent}",
                current.rows_emitted,
                estimate
            );
        }
    }

    fn schedule(&mut self) {
        while let Some(request) = self.scheduler.next_request() {
            let window = format!("{}-{}", self.window_prefix, request.token);
            // Before the low watermark is written, so the merger knows it
            // as its own whenever it shows up in the log. The worker writes
            // a queued chunk's LW after the previous HW.
            let table = Arc::new(request.table.clone());
            if self.scheduler.in_flight_count_of(&request.table) > 1 {
                self.merger
                    .queue_window(request.token, window.clone(), table.clone());
            } else {
                self.merger.expect_window(
                    request.token,
                    window.clone(),
                    table.clone(),
                    &mut self.outcomes,
                );
            }
            if !self.send(Some(&table), Request::Select { request, window }) {
                tracing::error!("snapshot worker is gone; snapshots stop");
                self.telemetry
                    .set_down(Component::Snapshot, "snapshot worker stopped");
            }
        }
    }

    fn step(&mut self) {
        self.handle_outcomes();
        let front = self.scheduler.in_flight();
        if self.oldest.map(|(token, _)| token) != front {
            self.oldest = front.map(|token| (token, Instant::now()));
        }
        if let Some((token, since)) = self.oldest {
            // Watermarks that never show up in the log (a signal table
            // dropped from the publication, a lost report) must not stall
            // the snapshot forever.
            if since.elapsed() > WINDOW_TIMEOUT {
                tracing::warn!(
                    "snapshot window {token} not closed after {}s; selecting the chunk again",
                    WINDOW_TIMEOUT.as_secs()
                );
                self.telemetry
                    .snapshot_chunk_discarded(DiscardReason::Timeout);
                self.merger.cancel(token);
                for follower in self.scheduler.on_discarded(token) {
                    self.merger.cancel(follower);
                }
            }
        }
        self.schedule();
    }
}

fn join(tables: &[TableRef]) -> String {
    if tables.is_empty() {
        return "(none)".into();
    }
    tables
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl Processor for SnapshotProcessor {
    fn process(&mut self, item: LogItem, out: &mut Vec<Event>) {
        self.drain_reports();
        let truncate = match &item {
            LogItem::Event(event) => self.resync_truncate_for(event),
            _ => None,
        };
        let handed_back = self.merger.on_log(item, out, &mut self.outcomes);
        if let Some(truncate) = truncate {
            // Through the merger too: a window open on the table loses its rows.
            let _ = self
                .merger
                .on_log(LogItem::Event(truncate), out, &mut self.outcomes);
        }
        match handed_back {
            Some(LogItem::Signal { row, .. }) => self.on_command(&row),
            Some(LogItem::Schema(schema)) if !self.tables.contains_key(&schema.table) => {
                // A table captured while streaming (created later): its
                // snapshot, if any, is asked for by a signal after this.
                self.tables
                    .insert((*schema.table).clone(), schema.key.clone());
                self.scheduler.captured_now(&schema.table);
            }
            Some(LogItem::Schema(schema)) => {
                let reason = format!("schema version {}", schema.version);
                let _restarted = self.restart_snapshot(&schema.table, &reason);
            }
            Some(LogItem::Resync { table, reason }) if self.tables.contains_key(&table) => {
                tracing::warn!("{table}: {reason}: resync snapshot queued");
                self.resync(vec![(*table).clone()], &reason);
            }
            _ => {}
        }
        self.step();
    }

    fn tick(&mut self, _out: &mut Vec<Event>) {
        self.drain_reports();
        self.step();
    }

    fn wants_tick(&self) -> bool {
        true
    }

    fn wake(&self) -> Option<Arc<tokio::sync::Notify>> {
        Some(self.report_ready.clone())
    }

    fn flushed(&mut self) {
        if self.scheduler.take_dirty() {
            let state = self.scheduler.state().clone();
            if !self.send(None, Request::Save(state)) {
                tracing::error!("snapshot worker is gone; progress not saved");
            }
        }
    }
}

#[path = "snapshot_worker.rs"]
mod worker;
use worker::{spawn_worker, Reporter};
pub use worker::{WorkerDone, WorkerDone1};
