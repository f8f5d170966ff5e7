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
mod tests {
    use cdc_signal::{AdditionalCondition, SnapshotKind};

    use super::*;

    fn t(name: &str) -> TableRef {
        TableRef::new("public", name)
    }

    fn execute(tables: &[&str]) -> Command {
        Command::ExecuteSnapshot {
            tables: tables.iter().map(|n| t(n)).collect(),
            kind: SnapshotKind::Incremental,
            conditions: vec![],
            surrogate_key: None,
        }
    }

    fn ok(_: &TableRef) -> Result<(), String> {
        Ok(())
    }

    #[test]
    fn captured_tables_are_remembered_and_a_first_start_is_not_new() {
        let mut s = Scheduler::new(SnapshotState::default(), 10);
        assert!(s.captured_at_start(&[t("a")]).is_empty(), "first start");
        assert!(s.take_dirty(), "saved, so the next start knows a");
        assert!(s.captured_at_start(&[t("a")]).is_empty());
        assert!(!s.take_dirty());
        assert_eq!(s.captured_at_start(&[t("a"), t("b")]), vec![t("b")]);
        assert!(s.take_dirty());
        s.captured_now(&t("c"));
        assert!(s.take_dirty());
        // Survives a restart through the saved state.
        let json = serde_json::to_string(s.state()).unwrap();
        let mut again = Scheduler::new(serde_json::from_str(&json).unwrap(), 10);
        assert!(again
            .captured_at_start(&[t("a"), t("b"), t("c")])
            .is_empty());
        assert!(!again.take_dirty());
        // Left out for a run, then back: the log lacks its changes between.
        assert!(again.captured_at_start(&[t("a"), t("c")]).is_empty());
        assert_eq!(
            again.captured_at_start(&[t("a"), t("b"), t("c")]),
            vec![t("b")]
        );
        // A state of an older cdc, without the field: none remembered.
        let old: SnapshotState = serde_json::from_str(r#"{"paused":false,"queue":[]}"#).unwrap();
        assert_eq!(old.captured, None);
        let mut old = Scheduler::new(old, 10);
        assert!(old.captured_at_start(&[t("a")]).is_empty());
    }

    /// A chunk of the tests' size-2 chunks: a short one is the last.
    fn selected(rows: usize, last: Option<&str>) -> Selected {
        Selected {
            rows,
            last: rows < 2,
            last_key: last.map(|k| vec![k.to_string()]),
            max_key: Some(vec!["100".into()]),
            estimate: Some(100),
        }
    }

    #[test]
    fn chunks_advance_then_the_table_completes() {
        let mut s = Scheduler::new(SnapshotState::default(), 2);
        assert_eq!(
            s.apply("s1", &execute(&["a"]), ok),
            Ok(Applied::Queued(vec![t("a")]))
        );
        let r = s.next_request().unwrap();
        assert_eq!(r.after_key, None);
        assert!(!r.max_key_read);
        assert!(
            s.next_request().is_none(),
            "the next chunk waits for this one's select"
        );
        s.on_selected(r.token, selected(2, Some("2")));
        // Pipelined: the next chunk is requested before this one is done.
        let r2 = s.next_request().unwrap();
        assert_eq!(r2.after_key, Some(vec!["2".into()]));
        assert!(s.next_request().is_none(), "two in flight at most");
        assert_eq!(s.on_done(r.token, 1), None);
        let r = r2;
        assert_eq!(r.after_key, Some(vec!["2".into()]));
        assert_eq!(r.max_key, Some(vec!["100".into()]));
        assert!(r.max_key_read);
        s.on_selected(r.token, selected(1, Some("3")));
        assert_eq!(
            s.on_done(r.token, 1),
            Some(Finished {
                table: t("a"),
                rows: 2,
                signal_id: "s1".into(),
            })
        );
        assert!(s.next_request().is_none());
        assert!(s.take_dirty());
    }

    #[test]
    fn discarded_chunks_repeat_the_same_range() {
        let mut s = Scheduler::new(SnapshotState::default(), 2);
        s.apply("s1", &execute(&["a"]), ok).unwrap();
        let r1 = s.next_request().unwrap();
        s.on_selected(r1.token, selected(2, Some("2")));
        let follower = s.next_request().unwrap();
        // Discarding a chunk cancels the one selected after it.
        assert_eq!(s.on_discarded(r1.token), vec![follower.token]);
        let r2 = s.next_request().unwrap();
        assert_eq!(r2.after_key, None);
        assert_eq!(r2.attempt, 1);
        // A late outcome of the discarded chunk changes nothing.
        assert_eq!(s.on_done(r1.token, 2), None);
        assert_eq!(s.on_done(follower.token, 2), None);
        assert!(s.is_busy());
        assert_eq!(s.state().queue.front().map(|p| p.rows_emitted), Some(0));
    }

    #[test]
    fn pause_resume_stop_and_replayed_signals() {
        let mut s = Scheduler::new(SnapshotState::default(), 10);
        s.apply("s1", &execute(&["a", "b"]), ok).unwrap();
        assert_eq!(s.apply("s1", &execute(&["c"]), ok), Ok(Applied::Duplicate));
        s.apply("p", &Command::PauseSnapshot, ok).unwrap();
        assert!(s.next_request().is_none());
        s.apply("r", &Command::ResumeSnapshot, ok).unwrap();
        assert_eq!(s.next_request().unwrap().table, t("a"));
        assert_eq!(
            s.apply(
                "x",
                &Command::StopSnapshot {
                    tables: vec![t("b")]
                },
                ok
            ),
            Ok(Applied::Stopped(vec![t("b")]))
        );
        assert_eq!(
            s.apply("y", &Command::StopSnapshot { tables: vec![] }, ok),
            Ok(Applied::Stopped(vec![t("a")]))
        );
        assert!(s.state().queue.is_empty());
    }

    #[test]
    fn a_stop_cancels_chunks_in_flight_so_a_new_snapshot_starts_over() {
        let mut s = Scheduler::new(SnapshotState::default(), 2);
        s.apply("s1", &execute(&["a"]), ok).unwrap();
        let r1 = s.next_request().unwrap();
        s.on_selected(r1.token, selected(2, Some("2")));
        let r2 = s.next_request().unwrap();
        s.apply("stop", &Command::StopSnapshot { tables: vec![] }, ok)
            .unwrap();
        assert_eq!(s.take_cancelled(), vec![r1.token, r2.token]);
        assert!(!s.is_busy());
        s.apply("s2", &execute(&["a"]), ok).unwrap();
        // A late outcome of the stopped snapshot's chunk changes nothing.
        assert_eq!(s.on_done(r1.token, 2), None);
        let fresh = s.next_request().unwrap();
        assert_eq!(fresh.after_key, None);
        assert_eq!(s.state().queue.front().map(|p| p.rows_emitted), Some(0));
    }

    #[test]
    fn one_bad_table_rejects_the_whole_signal() {
        let mut s = Scheduler::new(SnapshotState::default(), 10);
        let err = s
            .apply("s1", &execute(&["a", "bad"]), |t| {
                if t.name == "bad" {
                    Err(format!("table {t} is not captured"))
                } else {
                    Ok(())
                }
            })
            .unwrap_err();
        assert!(err.contains("public.bad"));
        assert!(s.state().queue.is_empty());
    }

    #[test]
    fn parallel_tables_each_get_chunks_and_a_discard_drops_only_its_tables_followers() {
        let mut s = Scheduler::new(SnapshotState::default(), 2).with_parallel_tables(2);
        s.apply("s1", &execute(&["a", "b", "c"]), ok).unwrap();
        let a1 = s.next_request().unwrap();
        let b1 = s.next_request().unwrap();
        assert_eq!((a1.table.clone(), b1.table.clone()), (t("a"), t("b")));
        assert_eq!(
            s.next_request(),
            None,
            "c waits; a and b wait for their selects"
        );
        s.on_selected(a1.token, selected(2, Some("2")));
        let a2 = s.next_request().unwrap();
        assert_eq!(
            (a2.table.clone(), a2.after_key.clone()),
            (t("a"), Some(vec!["2".to_string()]))
        );
        s.on_selected(b1.token, selected(2, Some("20")));
        let b2 = s.next_request().unwrap();
        assert_eq!(b2.table, t("b"));
        // a's first chunk discarded: a's second goes with it, b's stay.
        assert_eq!(s.on_discarded(a1.token), vec![a2.token]);
        assert_eq!(s.in_flight_count_of(&t("b")), 2);
        assert_eq!(s.in_flight_count_of(&t("a")), 0);
        // b finishes: c starts beside a.
        s.on_selected(b2.token, selected(1, Some("21")));
        assert!(s.on_done(b1.token, 2).is_none());
        assert_eq!(s.on_done(b2.token, 1).map(|f| f.table), Some(t("b")));
        let next: Vec<TableRef> = std::iter::from_fn(|| s.next_request())
            .map(|r| r.table)
            .collect();
        assert_eq!(next, vec![t("a"), t("c")]);
    }

    #[test]
    fn a_table_asked_again_before_it_starts_covers_both_requests() {
        let filtered = |id: &str, filter: Option<&str>| {
            let cmd = Command::ExecuteSnapshot {
                tables: vec![t("a")],
                kind: SnapshotKind::Incremental,
                conditions: filter
                    .map(|f| AdditionalCondition {
                        table: t("a"),
                        filter: f.into(),
                    })
                    .into_iter()
                    .collect(),
                surrogate_key: None,
            };
            (id.to_string(), cmd)
        };
        // A source that cannot combine filters: the table is read whole.
        let mut s = Scheduler::new(SnapshotState::default(), 10);
        s.state.paused = true;
        for (id, cmd) in [filtered("1", Some("x = 1")), filtered("2", Some("x = 2"))] {
            s.apply(&id, &cmd, ok).unwrap();
        }
        assert_eq!(s.state.queue[0].filter, None);
        let mut s = Scheduler::new(SnapshotState::default(), 10)
            .with_filter_union(|a, b| Some(format!("{a} | {b}")));
        s.state.paused = true;
        for (id, cmd) in [filtered("1", Some("x = 1")), filtered("2", Some("x = 2"))] {
            s.apply(&id, &cmd, ok).unwrap();
        }
        assert_eq!(s.state.queue[0].filter.as_deref(), Some("x = 1 | x = 2"));
        // The same filter twice is kept as it is.
        let (id, cmd) = filtered("2b", Some("x = 1 | x = 2"));
        s.apply(&id, &cmd, ok).unwrap();
        assert_eq!(s.state.queue[0].filter.as_deref(), Some("x = 1 | x = 2"));
        let (id, cmd) = filtered("3", None);
        s.apply(&id, &cmd, ok).unwrap();
        assert_eq!(
            s.state.queue[0].filter, None,
            "a whole-table request covers all"
        );
        let (id, cmd) = filtered("4", Some("x = 4"));
        s.apply(&id, &cmd, ok).unwrap();
        assert_eq!(s.state.queue[0].filter, None, "and stays whole");
    }

    #[test]
    fn conditions_attach_to_their_table_and_definite_failures_drop_it() {
        let mut s = Scheduler::new(SnapshotState::default(), 10);
        let cmd = Command::ExecuteSnapshot {
            tables: vec![t("a"), t("b")],
            kind: SnapshotKind::Incremental,
            conditions: vec![AdditionalCondition {
                table: t("a"),
                filter: "x > 1".into(),
            }],
            surrogate_key: Some("k".into()),
        };
        s.apply("s1", &cmd, ok).unwrap();
        let r = s.next_request().unwrap();
        assert_eq!(r.filter.as_deref(), Some("x > 1"));
        assert_eq!(r.surrogate_key.as_deref(), Some("k"));
        // The order survives a restart with the progress.
        let json = serde_json::to_string(s.state()).unwrap();
        let again: SnapshotState = serde_json::from_str(&json).unwrap();
        assert_eq!(again.queue[0].surrogate_key.as_deref(), Some("k"));
        let dropped = s.on_failed(r.token, true).0.unwrap();
        assert_eq!(dropped.table, t("a"));
        assert_eq!(s.next_request().unwrap().table, t("b"));
    }

    #[test]
    fn a_shape_change_restarts_a_started_snapshot_from_its_first_key() {
        let mut s = Scheduler::new(SnapshotState::default(), 2);
        s.apply("s1", &execute(&["a", "b"]), ok).unwrap();
        // Queued but not started: nothing to restart.
        assert_eq!(s.restart(&t("b")), None);
        let r1 = s.next_request().unwrap();
        s.on_selected(r1.token, selected(2, Some("2")));
        assert_eq!(s.on_done(r1.token, 2), None);
        let r2 = s.next_request().unwrap();
        assert_eq!(s.restart(&t("a")), Some(vec![r2.token]));
        assert!(!s.is_busy());
        let again = s.next_request().unwrap();
        assert_eq!(again.table, t("a"));
        assert_eq!(again.after_key, None);
        assert!(!again.max_key_read, "the maximum key is read again");
        assert_eq!(s.state().queue.front().map(|p| p.rows_emitted), Some(0));
        // A late outcome of the cancelled chunk changes nothing.
        assert_eq!(s.on_done(r2.token, 2), None);
    }

    #[test]
    fn a_requeue_starts_queued_tables_over_and_queues_the_rest() {
        let mut s = Scheduler::new(SnapshotState::default(), 2);
        s.apply("s1", &execute(&["a"]), ok).unwrap();
        let r1 = s.next_request().unwrap();
        s.on_selected(r1.token, selected(2, Some("2")));
        assert_eq!(s.on_done(r1.token, 2), None);
        let r2 = s.next_request().unwrap();
        assert_eq!(s.requeue(&[t("a"), t("b")], "resync"), vec![r2.token]);
        let queue: Vec<(TableRef, String, Option<Vec<String>>)> = s
            .state()
            .queue
            .iter()
            .map(|p| (p.table.clone(), p.signal_id.clone(), p.last_key.clone()))
            .collect();
        assert_eq!(
            queue,
            vec![
                (t("a"), "resync".into(), None),
                (t("b"), "resync".into(), None)
            ]
        );
        assert_eq!(s.next_request().unwrap().after_key, None);
    }

    #[test]
    fn state_round_trips_through_json() {
        let mut s = Scheduler::new(SnapshotState::default(), 10);
        s.apply("s1", &execute(&["a"]), ok).unwrap();
        let json = serde_json::to_string(s.state()).unwrap();
        let back: SnapshotState = serde_json::from_str(&json).unwrap();
        assert_eq!(&back, s.state());
    }
}
