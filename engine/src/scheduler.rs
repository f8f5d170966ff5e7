//! The snapshot scheduler: which table is snapshotted, which chunk comes
//! next, and the progress that survives restarts. Pure: commands and chunk
//! outcomes in, chunk requests out; the caller persists [`SnapshotState`]
//! once the events it accounts for are durable.
//!
//! Progress moves only when a chunk's window closed and its rows went out,
//! so a crash at any point resumes at the last completed chunk.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

use cdc_signal::{Command, TableRef};
use serde::{Deserialize, Serialize};

/// Signal ids remembered to ignore replays after a restart.
const REMEMBERED_SIGNALS: usize = 1024;

/// The persisted part: everything a replacement engine needs to resume.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SnapshotState {
    pub paused: bool,
    /// The first entry is the table being snapshotted; the rest wait.
    pub queue: VecDeque<TableProgress>,
    /// Tables whose snapshot finished, most recent last (bounded).
    #[serde(default)]
    pub completed: VecDeque<TableProgress>,
    /// Ids of signals already applied, so a replayed signal is not applied
    /// twice.
    #[serde(default)]
    pub applied_signals: VecDeque<String>,
    /// The tables the last run captured, so a table captured for the first
    /// time is told apart (`snapshot.new_tables`). `None` before a start
    /// remembered them (a state written by an older cdc, or none yet).
    #[serde(default)]
    pub captured: Option<BTreeSet<TableRef>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableProgress {
    pub table: TableRef,
    /// The signal that asked for it (for messages).
    pub signal_id: String,
    pub filter: Option<String>,
    /// The column chunks follow instead of the table's key (Debezium's
    /// `surrogate-key`). Without either, the source reads the table in its
    /// physical order, if it can.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub surrogate_key: Option<String>,
    /// Primary-key values (as text) of the last row of the last completed
    /// chunk; `None` before the first chunk.
    pub last_key: Option<Vec<String>>,
    /// The largest key when the snapshot of this table started; rows
    /// inserted beyond it arrive through the log anyway. `None` while not
    /// read yet or for an empty table (see `max_key_read`).
    pub max_key: Option<Vec<String>>,
    pub max_key_read: bool,
    pub rows_emitted: u64,
    pub chunks: u64,
    /// The planner's row estimate when the table started.
    pub estimate: Option<u64>,
}

impl TableProgress {
    /// A table waiting for its first chunk.
    pub fn new(table: TableRef, signal_id: &str, filter: Option<String>) -> Self {
        TableProgress {
            table,
            signal_id: signal_id.to_string(),
            filter,
            surrogate_key: None,
            last_key: None,
            max_key: None,
            max_key_read: false,
            rows_emitted: 0,
            chunks: 0,
            estimate: None,
        }
    }
}

/// Combines two filters in the source's filter language (see
/// `ChunkSource::union_filters`); `None`: it cannot.
type UnionFn = dyn Fn(&str, &str) -> Option<String> + Send + Sync;

#[derive(Clone, Default)]
struct FilterUnion(Option<Arc<UnionFn>>);

impl std::fmt::Debug for FilterUnion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "FilterUnion(source)"
        } else {
            "FilterUnion(none)"
        })
    }
}

impl FilterUnion {
    /// The rows of both filters (`None`: every row, also when the source
    /// cannot combine them).
    fn either(&self, a: Option<String>, b: Option<String>) -> Option<String> {
        match (a, b) {
            (Some(a), Some(b)) if a == b => Some(a),
            (Some(a), Some(b)) => self.0.as_ref().and_then(|union| union(&a, &b)),
            _ => None,
        }
    }
}

/// What the chunk reader should select.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkRequest {
    pub token: u64,
    pub table: TableRef,
    pub filter: Option<String>,
    /// See [`TableProgress::surrogate_key`].
    pub surrogate_key: Option<String>,
    /// Where the chunk starts (exclusive): the last chunk's end, in the
    /// order's own values (key values, or the source's physical position).
    pub after_key: Option<Vec<String>>,
    /// Upper bound (inclusive); read it first when `max_key_read` is false.
    pub max_key: Option<Vec<String>>,
    pub max_key_read: bool,
    pub limit: usize,
    /// Chunks of this table discarded in a row (the reader backs off).
    pub attempt: u32,
}

/// What the chunk reader found, before the window closes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected {
    pub rows: usize,
    /// Nothing is left of the table after this chunk, up to its maximum.
    pub last: bool,
    pub last_key: Option<Vec<String>>,
    pub max_key: Option<Vec<String>>,
    pub estimate: Option<u64>,
}

/// What applying a signal did, for the caller's log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Queued(Vec<TableRef>),
    Stopped(Vec<TableRef>),
    Paused,
    Resumed,
    /// A replay of a signal already applied before a restart.
    Duplicate,
    /// Nothing for the scheduler (log, watermarks).
    Ignored,
}

/// A table finished, for the caller's log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub table: TableRef,
    pub rows: u64,
    /// The signal that asked for the snapshot.
    pub signal_id: String,
}

#[derive(Debug)]
struct InFlight {
    token: u64,
    table: TableRef,
    selected: Option<Selected>,
}

/// Chunks in flight at once: the next chunk of a table is selected while the
/// log still has to reach the previous one's high watermark.
const PIPELINE_DEPTH: usize = 2;

#[derive(Debug)]
pub struct Scheduler {
    state: SnapshotState,
    chunk_size: usize,
    /// Tables snapshotted at once: the first this many of the queue.
    parallel_tables: usize,
    /// In selection order; a chunk's range starts where the one before ends.
    in_flight: VecDeque<InFlight>,
    next_token: u64,
    attempt: u32,
    dirty: bool,
    /// Chunks dropped by a stop, for the caller to cancel in the merger.
    cancelled: Vec<u64>,
    filter_union: FilterUnion,
}

impl Scheduler {
    pub fn new(state: SnapshotState, chunk_size: usize) -> Self {
        Scheduler {
            state,
            chunk_size: chunk_size.max(1),
            parallel_tables: 1,
            in_flight: VecDeque::new(),
            next_token: 1,
            attempt: 0,
            dirty: false,
            cancelled: Vec::new(),
            filter_union: FilterUnion::default(),
        }
    }

    /// How two filters of one table combine (the source's language);
    /// without it such a table is read whole.
    pub fn with_filter_union(
        mut self,
        union: impl Fn(&str, &str) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.filter_union = FilterUnion(Some(Arc::new(union)));
        self
    }

    /// Snapshot up to `n` tables at once (at least one), each with its own
    /// chunks in flight.
    pub fn with_parallel_tables(mut self, n: usize) -> Self {
        self.parallel_tables = n.max(1);
        self
    }

    pub fn state(&self) -> &SnapshotState {
        &self.state
    }

    /// Whether `table` is queued or has a chunk in flight.
    pub fn has_table(&self, table: &TableRef) -> bool {
        self.state.queue.iter().any(|p| &p.table == table)
            || self.in_flight.iter().any(|f| &f.table == table)
    }

    /// Chunks of `table` in flight.
    pub fn in_flight_count_of(&self, table: &TableRef) -> usize {
        self.in_flight.iter().filter(|f| &f.table == table).count()
    }

    /// Whether the state changed since the last call.
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    pub fn is_busy(&self) -> bool {
        !self.in_flight.is_empty()
    }

    /// Chunks a stop dropped since the last call: cancel their windows.
    pub fn take_cancelled(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.cancelled)
    }

    /// The token of the oldest chunk in flight.
    pub fn in_flight(&self) -> Option<u64> {
        self.in_flight.front().map(|f| f.token)
    }

    /// The table of the chunk `token`, while it is in flight.
    pub fn in_flight_table(&self, token: u64) -> Option<&TableRef> {
        self.in_flight
            .iter()
            .find(|f| f.token == token)
            .map(|f| &f.table)
    }

    pub fn is_in_flight(&self, token: u64) -> bool {
        self.in_flight.iter().any(|f| f.token == token)
    }

    /// At start: `tables` are what this run captures; returns those the
    /// last run did not (added to the config, a new match of a pattern, or
    /// left out for a while: either way the log lacks some of their rows).
    /// A state that remembers none (a first start, or one written by an
    /// older cdc) takes them all as known: a first start is not "new
    /// tables".
    pub fn captured_at_start(&mut self, tables: &[TableRef]) -> Vec<TableRef> {
        let now: BTreeSet<TableRef> = tables.iter().cloned().collect();
        let new = match &self.state.captured {
            None => Vec::new(),
            Some(before) => now.difference(before).cloned().collect(),
        };
        if self.state.captured.as_ref() != Some(&now) {
            self.state.captured = Some(now);
            self.dirty = true;
        }
        new
    }

    /// A table captured while running (created later).
    pub fn captured_now(&mut self, table: &TableRef) {
        if let Some(known) = &mut self.state.captured {
            self.dirty |= known.insert(table.clone());
        }
    }

    /// Queue tables directly (the initial snapshot), skipping queued ones.
    pub fn enqueue(&mut self, tables: &[TableRef], signal_id: &str) -> Vec<TableRef> {
        let mut added = Vec::new();
        for table in tables {
            if self.state.queue.iter().any(|p| &p.table == table) {
                continue;
            }
            self.state
                .queue
                .push_back(TableProgress::new(table.clone(), signal_id, None));
            added.push(table.clone());
        }
        self.dirty |= !added.is_empty();
        added
    }

    /// Queue `tables` for a snapshot from their first key under `signal_id`:
    /// a table already queued starts over (what it emitted may predate a gap
    /// in the log). Returns the chunks in flight to cancel.
    pub fn requeue(&mut self, tables: &[TableRef], signal_id: &str) -> Vec<u64> {
        let mut cancelled = Vec::new();
        for table in tables {
            match self.state.queue.iter_mut().find(|p| &p.table == table) {
                Some(progress) => {
                    *progress =
                        TableProgress::new(table.clone(), signal_id, progress.filter.take());
                    cancelled.extend(
                        self.in_flight
                            .iter()
                            .filter(|f| &f.table == table)
                            .map(|f| f.token),
                    );
                    self.in_flight.retain(|f| &f.table != table);
                }
                None => {
                    self.state
                        .queue
                        .push_back(TableProgress::new(table.clone(), signal_id, None))
                }
            }
        }
        self.dirty |= !tables.is_empty();
        cancelled
    }

    /// Apply an operator's command. `validate` says why a table cannot be
    /// snapshotted (not captured, no primary key); one bad table rejects the
    /// whole signal so it is never half-applied.
    pub fn apply(
        &mut self,
        signal_id: &str,
        command: &Command,
        validate: impl Fn(&TableRef) -> Result<(), String>,
    ) -> Result<Applied, String> {
        if self.state.applied_signals.iter().any(|s| s == signal_id) {
            return Ok(Applied::Duplicate);
        }
        let applied = match command {
            Command::ExecuteSnapshot {
                tables,
                conditions,
                surrogate_key,
                ..
            } => {
                for table in tables {
                    validate(table)?;
                }
                let mut added = Vec::new();
                for table in tables {
                    let filter = conditions
                        .iter()
                        .find(|c| &c.table == table)
                        .map(|c| c.filter.clone());
                    if let Some(queued) = self.state.queue.iter_mut().find(|p| &p.table == table) {
                        // Asked again while queued: keep the progress; if it
                        // has not started, cover both requests' rows (a
                        // queued resync must stay whole) and take the
                        // newest order.
                        if queued.chunks == 0 && !queued.max_key_read {
                            queued.filter = self.filter_union.either(queued.filter.take(), filter);
                            queued.surrogate_key = surrogate_key.clone();
                        }
                        continue;
                    }
                    let mut progress = TableProgress::new(table.clone(), signal_id, filter);
                    progress.surrogate_key = surrogate_key.clone();
                    self.state.queue.push_back(progress);
                    added.push(table.clone());
                }
                Applied::Queued(added)
            }
            Command::StopSnapshot { tables } => {
                let stopped: Vec<TableRef> = self
                    .state
                    .queue
                    .iter()
                    .filter(|p| tables.is_empty() || tables.contains(&p.table))
                    .map(|p| p.table.clone())
                    .collect();
                self.state.queue.retain(|p| !stopped.contains(&p.table));
                // Their chunks in flight must not count toward a later
                // snapshot of the same table.
                let cancelled = self.in_flight.iter().filter(|f| stopped.contains(&f.table));
                self.cancelled.extend(cancelled.map(|f| f.token));
                self.in_flight.retain(|f| !stopped.contains(&f.table));
                Applied::Stopped(stopped)
            }
            Command::PauseSnapshot => {
                self.state.paused = true;
                Applied::Paused
            }
            Command::ResumeSnapshot => {
                self.state.paused = false;
                Applied::Resumed
            }
            Command::Log { .. } | Command::WindowOpen { .. } | Command::WindowClose { .. } => {
                return Ok(Applied::Ignored)
            }
        };
        self.remember(signal_id);
        self.dirty = true;
        Ok(applied)
    }

    fn remember(&mut self, signal_id: &str) {
        self.state.applied_signals.push_back(signal_id.to_string());
        while self.state.applied_signals.len() > REMEMBERED_SIGNALS {
            self.state.applied_signals.pop_front();
        }
    }

    /// The next chunk to select, unless paused or idle. The first
    /// `parallel_tables` tables of the queue are snapshotted at once; with a
    /// chunk of a table in flight, its next one may follow once the previous
    /// is selected and not the table's last (its last key is where the next
    /// one starts).
    pub fn next_request(&mut self) -> Option<ChunkRequest> {
        if self.state.paused {
            return None;
        }
        let (index, after_key) = self
            .state
            .queue
            .iter()
            .take(self.parallel_tables)
            .enumerate()
            .find_map(|(index, current)| {
                let mine = self.in_flight.iter().filter(|f| f.table == current.table);
                let (count, last) = mine.fold((0, None), |(n, _), f| (n + 1, Some(f)));
                match last {
                    None => Some((index, current.last_key.clone())),
                    Some(last) if count < PIPELINE_DEPTH => {
                        let selected = last.selected.as_ref()?;
                        if selected.last {
                            // The last chunk of the table is in flight.
                            return None;
                        }
                        Some((index, Some(selected.last_key.clone()?)))
                    }
                    Some(_) => None,
                }
            })?;
        let current = self.state.queue.get(index)?;
        let token = self.next_token;
        self.next_token += 1;
        self.in_flight.push_back(InFlight {
            token,
            table: current.table.clone(),
            selected: None,
        });
        Some(ChunkRequest {
            token,
            table: current.table.clone(),
            filter: current.filter.clone(),
            surrogate_key: current.surrogate_key.clone(),
            after_key,
            max_key: current.max_key.clone(),
            max_key_read: current.max_key_read,
            limit: self.chunk_size,
            attempt: self.attempt,
        })
    }

    fn current_in_flight(&mut self, token: u64) -> Option<&mut InFlight> {
        self.in_flight.iter_mut().find(|f| f.token == token)
    }

    /// Remove the chunk `token` and every chunk of its table selected after
    /// it (their ranges start where it ends); returns the followers' tokens.
    fn drop_from(&mut self, token: u64) -> Option<(InFlight, Vec<u64>)> {
        let index = self.in_flight.iter().position(|f| f.token == token)?;
        let first = self.in_flight.remove(index)?;
        let mut followers = Vec::new();
        let mut kept = VecDeque::with_capacity(self.in_flight.len());
        for (i, flight) in self.in_flight.drain(..).enumerate() {
            if i >= index && flight.table == first.table {
                followers.push(flight.token);
            } else {
                kept.push_back(flight);
            }
        }
        self.in_flight = kept;
        Some((first, followers))
    }

    /// The reader selected the chunk (its window is still open).
    pub fn on_selected(&mut self, token: u64, selected: Selected) {
        let Some(flight) = self.current_in_flight(token) else {
            return;
        };
        let table = flight.table.clone();
        flight.selected = Some(selected.clone());
        if let Some(progress) = self.state.queue.iter_mut().find(|p| p.table == table) {
            if !progress.max_key_read {
                // Fixed once, when the table's snapshot starts.
                progress.max_key = selected.max_key;
                progress.max_key_read = true;
                progress.estimate = selected.estimate;
                self.dirty = true;
            }
        }
    }

    /// The window closed and `emitted` rows went out (the rest lost to log
    /// events). Returns the table if it is now complete.
    pub fn on_done(&mut self, token: u64, emitted: usize) -> Option<Finished> {
        let index = self.in_flight.iter().position(|f| f.token == token)?;
        let flight = self.in_flight.remove(index)?;
        self.attempt = 0;
        let selected = flight.selected?;
        let index = self
            .state
            .queue
            .iter()
            .position(|p| p.table == flight.table)?;
        let progress = self.state.queue.get_mut(index)?;
        progress.rows_emitted += emitted as u64;
        progress.chunks += 1;
        self.dirty = true;
        // The source said nothing is left up to the start maximum.
        if selected.last || selected.last_key.is_none() {
            let done = self.state.queue.remove(index)?;
            let finished = Finished {
                table: done.table.clone(),
                rows: done.rows_emitted,
                signal_id: done.signal_id.clone(),
            };
            self.state.completed.push_back(done);
            while self.state.completed.len() > 64 {
                self.state.completed.pop_front();
            }
            return Some(finished);
        }
        progress.last_key = selected.last_key;
        None
    }

    /// The chunk was discarded (torn, or its window broken): select the
    /// same range again. Returns the chunks selected after it, which must be
    /// cancelled too.
    pub fn on_discarded(&mut self, token: u64) -> Vec<u64> {
        match self.drop_from(token) {
            Some((_, followers)) => {
                self.attempt = self.attempt.saturating_add(1);
                followers
            }
            None => Vec::new(),
        }
    }

    /// The table changed shape: a snapshot of it that has started begins
    /// again from its first key, so every row it emits has the new shape
    /// (rows it emitted before have the old one). Returns the chunks in
    /// flight to cancel, or `None` when no snapshot of the table has started.
    pub fn restart(&mut self, table: &TableRef) -> Option<Vec<u64>> {
        let in_flight = self.in_flight.iter().any(|f| &f.table == table);
        let progress = self.state.queue.iter_mut().find(|p| &p.table == table)?;
        if progress.chunks == 0 && !progress.max_key_read && !in_flight {
            return None;
        }
        let surrogate_key = progress.surrogate_key.take();
        *progress = TableProgress::new(
            progress.table.clone(),
            &progress.signal_id,
            progress.filter.take(),
        );
        progress.surrogate_key = surrogate_key;
        let cancelled: Vec<u64> = self
            .in_flight
            .iter()
            .filter(|f| &f.table == table)
            .map(|f| f.token)
            .collect();
        self.in_flight.retain(|f| &f.table != table);
        self.attempt = 0;
        self.dirty = true;
        Some(cancelled)
    }

    /// The reader failed. A definite failure (the filter does not parse,
    /// the table is gone) drops the table and returns it; a transient one
    /// retries.
    /// Also returns the chunks selected after it, to cancel.
    pub fn on_failed(&mut self, token: u64, definite: bool) -> (Option<TableProgress>, Vec<u64>) {
        let Some((flight, followers)) = self.drop_from(token) else {
            return (None, Vec::new());
        };
        if !definite {
            self.attempt = self.attempt.saturating_add(1);
            return (None, followers);
        }
        self.attempt = 0;
        self.dirty = true;
        let dropped = self
            .state
            .queue
            .iter()
            .position(|p| p.table == flight.table)
            .and_then(|index| self.state.queue.remove(index));
        (dropped, followers)
    }
}

#[cfg(test)]
#[path = "scheduler_tests.rs"]
mod tests;
