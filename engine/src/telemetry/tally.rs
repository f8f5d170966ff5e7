//! The pipeline's event counter: label handles resolved once per (table,
//! op), added to once per flush.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use cdc_signal::TableRef;
use prometheus_client::metrics::counter::Counter;

use super::{EventLabels, TableLabel, Telemetry};
use crate::event::{Event, Op, SnapshotFlag};

/// Per (table, op): the counters, resolved once, and what this batch adds.
pub(super) struct TallyEntry {
    table: Option<Arc<TableRef>>,
    op: Op,
    events: Counter,
    snapshot_rows: Option<Counter>,
    pending: u64,
}

/// The pipeline's event counter: [`EventTally::count`] per written batch,
/// [`EventTally::flushed`] after each flush.
pub struct EventTally {
    telemetry: Telemetry,
    pub(super) entries: Vec<TallyEntry>,
    /// The entry of the previous event: runs of one table and op are the
    /// common case.
    last: usize,
    /// Commit times (ms) of the batches written since the last flush.
    commits_ms: Vec<i64>,
}

fn same_table(a: &Option<Arc<TableRef>>, b: &Option<Arc<TableRef>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a == b,
        (None, None) => true,
        _ => false,
    }
}

impl EventTally {
    pub(super) fn new(telemetry: Telemetry) -> Self {
        EventTally {
            telemetry,
            entries: Vec::new(),
            last: 0,
            commits_ms: Vec::new(),
        }
    }

    /// `events` were accepted by the sink; they count once a flush made
    /// them durable, so the counter never runs ahead of the sink.
    pub fn count(&mut self, events: &[Event]) {
        let mut oldest_commit: Option<i64> = None;
        for event in events {
            let i = self.entry(event);
            self.entries[i].pending += 1;
            // A heartbeat's time is its writing, not a commit.
            if event.source.snapshot == SnapshotFlag::No
                && event.op != Op::Heartbeat
                && oldest_commit.is_none()
            {
                oldest_commit = Some(event.source.ts_ms);
            }
        }
        if let Some(ts) = oldest_commit {
            self.commits_ms.push(ts);
        }
    }

    /// Everything counted so far is durable: add it to the counters, and
    /// one latency sample per written batch.
    pub fn flushed(&mut self) {
        for entry in &mut self.entries {
            if entry.pending > 0 {
                entry.events.inc_by(entry.pending);
                if let Some(rows) = &entry.snapshot_rows {
                    rows.inc_by(entry.pending);
                }
                entry.pending = 0;
            }
        }
        if self.commits_ms.is_empty() {
            return;
        }
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default();
        let histogram = &self.telemetry.m().commit_to_sink;
        for ts in self.commits_ms.drain(..) {
            // A clock behind the server's: count it as no delay.
            histogram.observe((now_ms - ts).max(0) as f64 / 1000.0);
        }
    }

    fn entry(&mut self, event: &Event) -> usize {
        let hit = |e: &TallyEntry| e.op == event.op && same_table(&e.table, &event.table);
        if self.entries.get(self.last).is_some_and(hit) {
            return self.last;
        }
        if let Some(i) = self.entries.iter().position(hit) {
            // Keep the newest Arc, so the next events match by pointer.
            self.entries[i].table.clone_from(&event.table);
            self.last = i;
            return i;
        }
        let m = self.telemetry.m();
        let table = event
            .table
            .as_ref()
            .map_or_else(|| "none".to_owned(), |t| t.to_string());
        let events = m.events.get_or_create_owned(&EventLabels {
            table: table.clone(),
            op: event.op.code(),
        });
        let snapshot_rows = (event.op == Op::Read)
            .then(|| m.snapshot_rows.get_or_create_owned(&TableLabel { table }));
        self.entries.push(TallyEntry {
            table: event.table.clone(),
            op: event.op,
            events,
            snapshot_rows,
            pending: 0,
        });
        self.last = self.entries.len() - 1;
        self.last
    }
}
