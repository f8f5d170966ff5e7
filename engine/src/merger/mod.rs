//! The DBLog window merger: pure logic that interleaves snapshot chunks with the log so
//! that, per key, the output never goes back in time (docs/architecture.md, "The DBLog window").
//!
//! ```text
//!  scheduler ── expect_window ─┐              ┌── log events, at once ─────────► out
//!  chunk reader ── on_chunk ───┤ WindowMerger ├── chunk rows as `r`, at the HW ─► out
//!  log ── on_log, log order ───┘              └── Outcome per chunk ──► scheduler
//! ```
//!
//! One window per table is in flight at a time (windows of several tables may
//! overlap, each seeing only its table's events). Between its low watermark (LW) and high watermark
//! (HW) in the log, every event of the chunk's table drops the chunk row with the same key
//! (a truncate drops them all): a log event in the window is at least as new as the
//! selected row. At the HW the rows left are emitted as reads.
//!
//! Unchanged TOAST columns are the exception. PostgreSQL sends an update that did not
//! touch a TOASTed column with the column marked unchanged
//! ([`Value::Unchanged`](crate::value::Value::Unchanged)), so the chunk row such an event
//! drops may hold the only full copy of that value a consumer starting from the snapshot
//! would get. That copy is still current: it was read inside the window, and an event
//! that changed the column carries the new value. So at the HW, for each chunk key whose
//! newest window event is an insert or update still carrying placeholders, the merger
//! emits a read of the key's newest state: that event's `after`, each placeholder filled
//! from the newest full value of the column among the key's window events, else from the
//! chunk row. Columns are matched by name (table versions differ); the chunk row is not
//! used after a delete of the key in the window (it may be the deleted row's). The read
//! goes out in the chunk row's place, after the key's newest event, and counts as
//! emitted. A key whose newest event is a delete, or with nothing to fill, gets none.
//! See docs/architecture.md.
//!
//! PostgreSQL can stream a commit before other sessions see it (a synchronous-replication
//! wait). If such a transaction committed before the LW and the chunk's snapshot did not
//! see it, the chunk holds rows older than events already emitted: the chunk is *torn*
//! and is discarded whole, to be selected again. The merger remembers recent commits'
//! xids for this (see `commits`); what the read could see comes from the source with the
//! chunk ([`ReadSnapshot`]: PostgreSQL's `pg_current_snapshot()`; none for a source whose
//! reads cannot miss a committed transaction).
//!
//! The chunk may be registered before or after the log shows its LW; for the latter the
//! scheduler announces the window first ([`WindowMerger::expect_window`]), which is also
//! how the merger tells its own watermarks from another engine's or stale ones replayed
//! after a restart: those are ignored. Anything that leaves a chunk unaccounted for
//! discards it: a row is only emitted when the merger can vouch for it.

mod commits;
mod keyless;
mod read_snapshot;
#[cfg(test)]
mod tests;
mod toast;
mod window;

use std::collections::VecDeque;
use std::sync::Arc;

use cdc_signal::{Command, TableRef};

use crate::event::{Event, Op, SnapshotFlag, SourceInfo};
use crate::schema::TableSchema;
use crate::source::LogItem;
use crate::value::Row;

pub use commits::DEFAULT_COMMIT_MEMORY;
pub use read_snapshot::{Candidates, ReadSnapshot};
use window::InFlight;

/// One selected row.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkRow {
    /// The primary-key columns, built exactly as the log reader builds event keys: they are
    /// matched by value.
    pub key: Row,
    pub after: Row,
}

/// A chunk selected between a low and a high watermark.
#[derive(Debug, Clone)]
pub struct Chunk {
    /// The scheduler's id for this chunk, handed back in its [`Outcome`].
    pub token: u64,
    /// The watermark window id (`<window>-open` / `<window>-close` signal rows).
    pub window: String,
    pub table: Arc<TableRef>,
    /// In primary-key order.
    pub rows: Vec<ChunkRow>,
    /// What the read could see, from the source (PostgreSQL: the snapshot the `SELECT`
    /// ran in); `None` for sources without the torn-snapshot hazard (MongoDB), which turns
    /// the check off.
    pub visibility: Option<Arc<dyn ReadSnapshot>>,
}

/// What became of a chunk. Every window handed in (by `expect_window` or `on_chunk`)
/// gets exactly one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The window closed; `emitted` rows were sent as reads, the others lost to log
    /// events inside the window. The chunk's key range is covered.
    ChunkDone { token: u64, emitted: usize },
    /// Nothing of the chunk was emitted and its key range is not covered: select it again.
    /// `reason` is one line.
    ChunkDiscarded { token: u64, reason: String },
}

/// The merger. See the module docs.
#[derive(Debug)]
pub struct WindowMerger {
    commits: commits::CommitMemory,
    /// Windows in the order they were announced. Of one table's windows the
    /// first is the only one that can be open (each LW is written after the
    /// previous HW committed); windows of different tables may be open at
    /// once (`snapshot.max_parallel_tables`), each acting on its own table's
    /// events only.
    flights: VecDeque<InFlight>,
    /// Emit the reads owed for unchanged TOAST columns; off only in tests.
    fill: bool,
}

impl Default for WindowMerger {
    fn default() -> Self {
        Self::new()
    }
}

impl WindowMerger {
    /// Remembers the last [`DEFAULT_COMMIT_MEMORY`] commits for the torn check.
    pub fn new() -> Self {
        Self::with_commit_memory(DEFAULT_COMMIT_MEMORY)
    }

    /// Remembers the last `capacity` commits for the torn check. A transaction still
    /// invisible to a chunk after more than `capacity` later commits, and not caught by an
    /// earlier chunk, is missed; 0 turns the check off.
    pub fn with_commit_memory(capacity: usize) -> Self {
        WindowMerger {
            commits: commits::CommitMemory::new(capacity),
            flights: VecDeque::new(),
            fill: true,
        }
    }

    /// For tests only: a merger that drops a chunk row under a window event with
    /// unchanged TOAST columns and owes no read for it, as before that rule existed, so
    /// that tests can show the loss they check for. Never use it to capture data.
    #[doc(hidden)]
    pub fn without_toast_fill(mut self) -> Self {
        self.fill = false;
        self
    }

    /// The scheduler is about to write the low watermark of `window` for a chunk of
    /// `table`. Call it before writing the LW (so before the log can show it): it is how
    /// the merger knows that LW as its own when the LW comes before the chunk. A chunk
    /// registered after its LW went by unannounced is discarded at its HW. A window
    /// still in flight is discarded (superseded).
    pub fn expect_window(
        &mut self,
        token: u64,
        window: String,
        table: Arc<TableRef>,
        outcomes: &mut Vec<Outcome>,
    ) {
        self.supersede(&table, &window, outcomes);
        self.flights
            .push_back(InFlight::new(token, window, table, self.fill));
    }

    /// Like [`WindowMerger::expect_window`], but behind the windows already in
    /// flight instead of replacing them: the chunk reader selects the next chunk
    /// while the log still has to reach the previous high watermark. Its LW must
    /// be written after the previous window's HW committed.
    pub fn queue_window(&mut self, token: u64, window: String, table: Arc<TableRef>) {
        self.flights
            .push_back(InFlight::new(token, window, table, self.fill));
    }

    /// Drop the window of `token` (its range depends on a discarded chunk);
    /// no outcome is reported for it.
    pub fn cancel(&mut self, token: u64) {
        self.flights.retain(|f| f.token != token);
    }

    /// The chunk reader selected a chunk: after writing its LW, before writing its HW, so
    /// the log may show the LW before or after this call, and the HW after it. A chunk
    /// that does not match the window in flight (other window, token or table, or a
    /// second chunk for it) discards that window and takes its place.
    pub fn on_chunk(&mut self, chunk: Chunk, outcomes: &mut Vec<Outcome>) {
        if let Some(flight) = self.flights.iter_mut().find(|f| {
            f.window == chunk.window
                && f.token == chunk.token
                && f.table == chunk.table
                && f.chunk.is_none()
        }) {
            flight.attach(chunk.rows, chunk.visibility);
            return;
        }
        self.supersede(&chunk.table, &chunk.window, outcomes);
        let mut flight = InFlight::new(chunk.token, chunk.window, chunk.table, self.fill);
        flight.attach(chunk.rows, chunk.visibility);
        self.flights.push_back(flight);
    }

    /// Processes one log item, in log order. A row event moves to `out` at once (events
    /// are never held back); at a HW the chunk's remaining rows follow it as reads and the
    /// chunk's outcome goes to `outcomes`. Any other item (commit, heartbeat, signal,
    /// watermarks included) produces no event and is handed back for the caller's
    /// checkpoints and commands. By value, so events are moved, never copied.
    pub fn on_log(
        &mut self,
        item: LogItem,
        out: &mut Vec<Event>,
        outcomes: &mut Vec<Outcome>,
    ) -> Option<LogItem> {
        let item = match item {
            LogItem::Event(event) => {
                // Only an open window acts on it; windows do not overlap.
                for flight in self.flights.iter_mut() {
                    flight.observe(&event);
                }
                out.push(event);
                return None;
            }
            other => other,
        };
        match &item {
            LogItem::Commit {
                tx_id: Some(tx_id), ..
            } => self.commits.record(*tx_id),
            // Watermarks name no table, so no namespace is needed.
            LogItem::Signal { row, source } => match cdc_signal::parse_in(row, None) {
                Ok(Command::WindowOpen { window }) => self.open(&window, outcomes),
                Ok(Command::WindowClose { window }) => self.close(&window, source, out, outcomes),
                // Operators' commands and bad signals are the caller's.
                _ => {}
            },
            LogItem::Schema(schema) => self.on_schema(schema),
            _ => {}
        }
        Some(item)
    }

    /// The table changed shape: a window open on it would emit rows of the
    /// old shape after events of the new one, so its chunk is discarded.
    fn on_schema(&mut self, schema: &TableSchema) {
        for flight in self.flights.iter_mut() {
            if flight.opened_at.is_some()
                && flight.spoiled.is_none()
                && *flight.table == *schema.table
            {
                flight.spoiled = Some(format!(
                    "{} changed shape inside window {}",
                    schema.table, flight.window
                ));
            }
        }
    }

    /// Forgets the window in flight (the log restarts: reconnect or restart) and reports
    /// its chunk discarded. Remembered commits are kept: they happened all the same.
    pub fn abandon(&mut self, outcomes: &mut Vec<Outcome>) {
        for flight in self.flights.drain(..) {
            outcomes.push(Outcome::ChunkDiscarded {
                token: flight.token,
                reason: format!(
                    "window {} abandoned: the log restarted before its high watermark",
                    flight.window
                ),
            });
        }
    }

    /// No window expected, no chunk pending.
    pub fn is_idle(&self) -> bool {
        self.flights.is_empty()
    }

    /// Discard the windows of the table of the window at `index` queued
    /// before it (`by_window`): a table's windows are written one after the
    /// other, so one before it that never closed cannot be vouched for.
    /// Windows of other tables run beside it (`snapshot.max_parallel_tables`).
    /// Returns the window's index after that.
    fn discard_before(
        &mut self,
        index: usize,
        by_window: &str,
        outcomes: &mut Vec<Outcome>,
    ) -> usize {
        let Some(table) = self.flights.get(index).map(|f| f.table.clone()) else {
            return index;
        };
        let mut kept = VecDeque::with_capacity(self.flights.len());
        let mut at = index;
        for (i, old) in self.flights.drain(..).enumerate() {
            if i < index && *old.table == *table {
                at -= 1;
                outcomes.push(Outcome::ChunkDiscarded {
                    token: old.token,
                    reason: format!(
                        "window {by_window} reached before window {} closed",
                        old.window
                    ),
                });
            } else {
                kept.push_back(old);
            }
        }
        self.flights = kept;
        at
    }

    /// A new window of `table` replaces the ones of that table in flight.
    fn supersede(&mut self, table: &TableRef, by_window: &str, outcomes: &mut Vec<Outcome>) {
        let (old, kept): (VecDeque<InFlight>, VecDeque<InFlight>) =
            self.flights.drain(..).partition(|f| *f.table == *table);
        self.flights = kept;
        for old in old {
            outcomes.push(Outcome::ChunkDiscarded {
                token: old.token,
                reason: format!(
                    "window {} superseded by window {by_window} before its high watermark",
                    old.window
                ),
            });
        }
    }

    fn open(&mut self, window: &str, outcomes: &mut Vec<Outcome>) {
        let mark = self.commits.mark();
        let Some(index) = self.flights.iter().position(|f| f.window == window) else {
            // Not ours: another engine's window, or a stale one from before a restart.
            return;
        };
        // Windows of its table before it never closed: their chunks cannot
        // be vouched for.
        let index = self.discard_before(index, window, outcomes);
        let Some(flight) = self.flights.get_mut(index) else {
            return;
        };
        if flight.opened_at.is_none() {
            flight.opened_at = Some(mark);
            return;
        }
        let token = flight.token;
        self.flights.remove(index);
        outcomes.push(Outcome::ChunkDiscarded {
            token,
            reason: format!("low watermark of window {window} seen twice"),
        });
    }

    fn close(
        &mut self,
        window: &str,
        source: &SourceInfo,
        out: &mut Vec<Event>,
        outcomes: &mut Vec<Outcome>,
    ) {
        let Some(index) = self.flights.iter().position(|f| f.window == window) else {
            return;
        };
        let index = self.discard_before(index, window, outcomes);
        let Some(flight) = self.flights.remove(index) else {
            return;
        };
        let token = flight.token;
        let table = flight.table.clone();
        match flight.verdict(&mut self.commits) {
            Err(reason) => outcomes.push(Outcome::ChunkDiscarded { token, reason }),
            Ok(rows) => {
                let mut source = source.clone();
                source.snapshot = SnapshotFlag::Incremental;
                let before = out.len();
                // One allocation for the whole chunk, not a doubling per
                // power of two of a few hundred bytes per event.
                out.reserve(rows.size_hint().1.unwrap_or(0));
                out.extend(rows.map(|row| Event {
                    update: None,
                    schema: None,
                    op: Op::Read,
                    table: Some(table.clone()),
                    key: Some(row.key),
                    before: None,
                    after: Some(row.after),
                    source: source.clone(),
                    message: None,
                    transaction: None,
                }));
                outcomes.push(Outcome::ChunkDone {
                    token,
                    emitted: out.len() - before,
                });
            }
        }
    }
}
