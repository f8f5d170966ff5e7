//! The simulator: a PostgreSQL table, its transactions and log, a snapshot driver, and
//! the merger under test.

use std::collections::BTreeMap;

use cdc_engine::merger::{Outcome, WindowMerger};
use cdc_engine::{Event, LogItem};
use cdc_postgres::visibility::Visibility;
use proptest::prelude::*;

use super::model::{
    check_every_column_arrives, check_no_time_travel, fold, Log, State, KEYS, XID32,
};

// ---------------------------------------------------------------------------------------
// The simulator

/// Random choices come off a tape, so proptest shrinks scenarios by shrinking numbers.
struct Tape {
    data: Vec<u32>,
    pos: usize,
}

impl Tape {
    fn next(&mut self, n: u32) -> u32 {
        let v = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        v % n.max(1)
    }

    fn chance(&mut self, percent: u32) -> bool {
        self.next(100) < percent
    }

    fn done(&self) -> bool {
        self.pos >= self.data.len()
    }
}

#[derive(Debug, Clone)]
pub struct Scenario {
    start_xid: u64,
    chunk_size: usize,
    initial: Vec<bool>,
    tape: Vec<u32>,
}

pub fn scenario() -> impl Strategy<Value = Scenario> {
    let start = prop_oneof![
        Just(3u64),
        // Around an xid wraparound (the 32-bit xid in the log wraps, xid8 does not).
        (0u64..4).prop_map(|epoch| (epoch << 32) + XID32 - 40),
        (1u64..1 << 20),
    ];
    (
        start,
        1usize..5,
        prop::collection::vec(any::<bool>(), KEYS as usize),
        prop::collection::vec(any::<u32>(), 40..1000),
    )
        .prop_map(|(start_xid, chunk_size, initial, tape)| Scenario {
            start_xid,
            chunk_size,
            initial,
            tape,
        })
}

#[derive(Debug, Clone)]
struct Txn {
    xid: u64,
    /// (key, state before, state after), in order.
    ops: Vec<(i64, Option<State>, Option<State>)>,
    truncate: bool,
}

impl Txn {
    fn keys(&self) -> impl Iterator<Item = i64> + '_ {
        self.ops.iter().map(|op| op.0)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Driver {
    Idle,
    /// The LW's transaction has its xid but has not committed: transactions that start
    /// meanwhile get higher xids, and if one commits first and stays invisible, the
    /// chunk's snapshot has it at or above xmax rather than in xip.
    Begun {
        token: u64,
        window: String,
        xid: u64,
    },
    Opened {
        token: u64,
        window: String,
    },
    Selected {
        token: u64,
        window: String,
        last: Option<i64>,
        full: bool,
    },
    Closed {
        token: u64,
        last: Option<i64>,
        full: bool,
    },
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub done: usize,
    pub discarded: usize,
    pub torn: usize,
}

pub struct Sim {
    tape: Tape,
    log: Log,
    visibility_check: bool,
    // The database.
    next_xid: u64,
    latest_completed: u64,
    committed: BTreeMap<i64, State>,
    history: BTreeMap<i64, Vec<Option<State>>>,
    version: i64,
    open: Vec<Txn>,
    /// Streamed as committed, not yet visible: (txn, steps left).
    delayed: Vec<(Txn, u32)>,
    items: Vec<LogItem>,
    // The engine.
    merger: WindowMerger,
    cursor: usize,
    output: Vec<Event>,
    // The snapshot driver.
    driver: Driver,
    chunk_size: usize,
    last_key: Option<i64>,
    complete: bool,
    next_token: u64,
    stats: Stats,
}

impl Sim {
    pub fn new(s: &Scenario, visibility_check: bool) -> Self {
        // Rows from before capture: never in the log, the snapshot is all there is of them.
        let committed: BTreeMap<i64, State> = (0..KEYS)
            .filter(|&k| s.initial.get(k as usize).copied().unwrap_or(false))
            .map(|k| (k, State::fresh(1000 + k)))
            .collect();
        let history = (0..KEYS)
            .map(|k| (k, vec![committed.get(&k).copied()]))
            .collect();
        Sim {
            tape: Tape {
                data: s.tape.clone(),
                pos: 0,
            },
            log: Log::new(),
            visibility_check,
            next_xid: s.start_xid,
            latest_completed: s.start_xid - 1,
            committed,
            history,
            version: 0,
            open: Vec::new(),
            delayed: Vec::new(),
            items: Vec::new(),
            merger: WindowMerger::new(),
            cursor: 0,
            output: Vec::new(),
            driver: Driver::Idle,
            chunk_size: s.chunk_size,
            last_key: None,
            complete: false,
            next_token: 1,
            stats: Stats::default(),
        }
    }

    /// The merger with its TOAST fill turned off, to show the properties catch the loss.
    pub fn without_toast_fill(mut self) -> Self {
        self.merger = WindowMerger::new().without_toast_fill();
        self
    }

    /// PostgreSQL skips the special xids 0..3 when the 32-bit xid wraps.
    fn assign_xid(&mut self) -> u64 {
        while self.next_xid & XID32 < 3 {
            self.next_xid += 1;
        }
        self.next_xid += 1;
        self.next_xid - 1
    }

    fn locked(&self, k: i64) -> bool {
        // Row locks are held until a transaction is visible (the SyncRep wait comes
        // before the locks are released), so no one else writes those keys meanwhile.
        self.open
            .iter()
            .chain(self.delayed.iter().map(|d| &d.0))
            .any(|t| t.keys().any(|x| x == k))
    }

    fn plan(&mut self) -> Option<Txn> {
        let xid = self.assign_xid();
        let mut ops = Vec::new();
        let mut state: BTreeMap<i64, Option<State>> = BTreeMap::new();
        for _ in 0..=self.tape.next(3) {
            let k = self.tape.next(KEYS as u32) as i64;
            if self.locked(k) {
                continue;
            }
            let before = *state
                .entry(k)
                .or_insert_with(|| self.committed.get(&k).copied());
            let after = if before.is_some() && self.tape.chance(30) {
                None
            } else {
                self.version += 1;
                // Most updates leave the TOAST column alone, as a writer of other columns.
                let doc = match before {
                    Some(b) if self.tape.chance(60) => b.doc,
                    _ => self.version,
                };
                Some(State {
                    v: self.version,
                    doc,
                })
            };
            state.insert(k, after);
            ops.push((k, before, after));
        }
        // An xid assigned to nothing still advances the counter, as an aborted one would.
        (!ops.is_empty()).then_some(Txn {
            xid,
            ops,
            truncate: false,
        })
    }

    fn commit(&mut self, txn: Txn, may_delay: bool) {
        if txn.truncate {
            let item = self.log.truncate(txn.xid);
            self.items.push(item);
            for (k, _) in std::mem::take(&mut self.committed) {
                self.history.entry(k).or_default().push(None);
            }
        }
        for &(k, before, after) in &txn.ops {
            let item = self.log.change(txn.xid, k, before, after);
            self.items.push(item);
            match after {
                Some(v) => self.committed.insert(k, v),
                None => self.committed.remove(&k),
            };
            self.history.entry(k).or_default().push(after);
        }
        let item = self.log.commit(txn.xid);
        self.items.push(item);
        // Streamed as committed; visible now, or only after a replication wait.
        if may_delay && self.tape.chance(35) {
            let steps = 1 + self.tape.next(8);
            self.delayed.push((txn, steps));
        } else {
            self.latest_completed = self.latest_completed.max(txn.xid);
        }
    }

    fn tick_delays(&mut self) {
        let mut still = Vec::new();
        for (txn, steps) in std::mem::take(&mut self.delayed) {
            if steps <= 1 {
                self.latest_completed = self.latest_completed.max(txn.xid);
            } else {
                still.push((txn, steps - 1));
            }
        }
        self.delayed = still;
    }

    /// What a new snapshot sees: committed state minus still-delayed transactions.
    fn visible(&self) -> BTreeMap<i64, State> {
        let mut table = self.committed.clone();
        for (txn, _) in &self.delayed {
            // Locked keys are disjoint, so each delayed transaction's first `before` per
            // key is that key's visible state.
            for &(k, before, _) in txn.ops.iter().rev() {
                match before {
                    Some(v) => table.insert(k, v),
                    None => table.remove(&k),
                };
            }
        }
        table
    }

    /// `pg_current_snapshot()`: xmax is one past the latest completed xid; xip lists the
    /// assigned but not completed xids below it.
    fn snapshot(&self) -> Visibility {
        let xmax = self.latest_completed + 1;
        let mut xip: Vec<u64> = self
            .open
            .iter()
            .chain(self.delayed.iter().map(|d| &d.0))
            .map(|t| t.xid)
            .filter(|&x| x < xmax)
            .collect();
        xip.sort_unstable();
        let xmin = xip.first().copied().unwrap_or(xmax);
        Visibility { xmin, xmax, xip }
    }

    fn watermark_txn(&mut self, window: &str, open: bool) {
        let xid = self.assign_xid();
        self.commit_watermark(xid, window, open);
    }

    fn commit_watermark(&mut self, xid: u64, window: &str, open: bool) {
        let signal = self.log.watermark(xid, window, open);
        let commit = self.log.commit(xid);
        self.items.extend([signal, commit]);
        self.latest_completed = self.latest_completed.max(xid);
    }

    fn consume(&mut self, n: usize) -> Result<(), String> {
        let end = self.cursor.saturating_add(n).min(self.items.len());
        let mut outcomes = Vec::new();
        while self.cursor < end {
            let item = self.items[self.cursor].clone();
            self.cursor += 1;
            self.merger.on_log(item, &mut self.output, &mut outcomes);
        }
        self.settle(outcomes)
    }

    fn settle(&mut self, outcomes: Vec<Outcome>) -> Result<(), String> {
        for outcome in outcomes {
            let Driver::Closed { token, last, full } = self.driver.clone() else {
                return Err(format!("outcome {outcome:?} while {:?}", self.driver));
            };
            match outcome {
                Outcome::ChunkDone { token: t, .. } if t == token => {
                    self.stats.done += 1;
                    if last.is_some() {
                        self.last_key = last;
                    }
                    self.complete |= !full;
                }
                Outcome::ChunkDiscarded { token: t, reason } if t == token => {
                    self.stats.discarded += 1;
                    self.stats.torn += usize::from(reason.starts_with("torn"));
                }
                other => return Err(format!("outcome {other:?} for another token than {token}")),
            }
            self.driver = Driver::Idle;
        }
        Ok(())
    }

    /// One step of the snapshot: LW, SELECT, HW, then wait for the outcome.
    fn advance(&mut self) -> Result<(), String> {
        let mut outcomes = Vec::new();
        match std::mem::replace(&mut self.driver, Driver::Idle) {
            // Covered while writes go on: sometimes snapshot it again, for more windows.
            Driver::Idle if self.complete && !self.tape.done() && self.tape.chance(30) => {
                self.complete = false;
                self.last_key = None;
            }
            Driver::Idle if self.complete => {}
            Driver::Idle => {
                let token = self.next_token;
                self.next_token += 1;
                let window = format!("w{token}");
                // Mostly announced; unannounced chunks are discarded if the merger saw the
                // LW first, and selected again.
                if self.tape.chance(85) {
                    self.merger.expect_window(
                        token,
                        window.clone(),
                        self.log.table.clone(),
                        &mut outcomes,
                    );
                }
                let xid = self.assign_xid();
                if self.tape.chance(50) {
                    self.driver = Driver::Begun { token, window, xid };
                } else {
                    self.commit_watermark(xid, &window, true);
                    self.driver = Driver::Opened { token, window };
                }
            }
            Driver::Begun { token, window, xid } => {
                self.commit_watermark(xid, &window, true);
                self.driver = Driver::Opened { token, window };
            }
            Driver::Opened { token, window } => {
                let after = self.last_key.map_or(i64::MIN, |k| k + 1);
                let rows: Vec<(i64, State)> = self
                    .visible()
                    .range(after..)
                    .take(self.chunk_size)
                    .map(|(&k, &v)| (k, v))
                    .collect();
                let vis = self.visibility_check.then(|| self.snapshot());
                let chunk = self.log.chunk(token, &window, &rows, vis);
                self.merger.on_chunk(chunk, &mut outcomes);
                let last = rows.last().map(|r| r.0);
                let full = rows.len() == self.chunk_size;
                self.driver = Driver::Selected {
                    token,
                    window,
                    last,
                    full,
                };
            }
            Driver::Selected {
                token,
                window,
                last,
                full,
            } => {
                self.watermark_txn(&window, false);
                self.driver = Driver::Closed { token, last, full };
            }
            closed @ Driver::Closed { .. } => self.driver = closed,
        }
        self.settle(outcomes)
    }

    fn step(&mut self) -> Result<(), String> {
        match self.tape.next(100) {
            0..=24 => {
                if let Some(txn) = self.plan() {
                    self.commit(txn, true);
                }
            }
            25..=31 if self.open.len() < 3 => {
                if let Some(txn) = self.plan() {
                    self.open.push(txn);
                }
            }
            32..=39 if !self.open.is_empty() => {
                let i = self.tape.next(self.open.len() as u32) as usize;
                let txn = self.open.remove(i);
                self.commit(txn, true);
            }
            40..=41 if self.open.is_empty() && self.delayed.is_empty() => {
                // TRUNCATE waits for every lock on the table, so only when none is held;
                // and a SELECT would wait for it, so it is never seen half-visible.
                let xid = self.assign_xid();
                let txn = Txn {
                    xid,
                    ops: Vec::new(),
                    truncate: true,
                };
                self.commit(txn, false);
            }
            42..=44 => {
                // Another engine's watermarks, or stale ones from before a restart.
                // Ids of windows already closed, or of no window of ours.
                let window = if self.next_token > 2 && self.tape.chance(50) {
                    format!("w{}", 1 + self.tape.next(self.next_token as u32 - 2))
                } else {
                    format!("other-{}", self.tape.next(3))
                };
                let open = self.tape.chance(50);
                self.watermark_txn(&window, open);
            }
            45..=46 => {
                let xid = self.assign_xid();
                let k = self.tape.next(KEYS as u32) as i64;
                let other = self.log.other.clone();
                let item = self
                    .log
                    .change_in(other, xid, k, None, Some(State::fresh(-1)));
                let commit = self.log.commit(xid);
                self.items.extend([item, commit]);
                self.latest_completed = self.latest_completed.max(xid);
            }
            47..=69 => {
                let n = 1 + self.tape.next(6) as usize;
                self.consume(n)?;
            }
            _ => self.advance()?,
        }
        self.tick_delays();
        Ok(())
    }

    pub fn run(mut self) -> Result<Stats, String> {
        while !self.tape.done() {
            self.step()?;
        }
        // Let everything commit and become visible, then finish the snapshot.
        for txn in std::mem::take(&mut self.open) {
            self.commit(txn, false);
        }
        for (txn, _) in std::mem::take(&mut self.delayed) {
            self.latest_completed = self.latest_completed.max(txn.xid);
        }
        for _ in 0..(8 * KEYS + 16) {
            if self.complete && self.driver == Driver::Idle {
                break;
            }
            if matches!(self.driver, Driver::Closed { .. }) {
                self.consume(usize::MAX)?;
            } else {
                self.advance()?;
            }
        }
        self.consume(usize::MAX)?;
        if !self.complete || !self.merger.is_idle() {
            return Err(format!("snapshot did not complete: {:?}", self.driver));
        }
        let folded = fold(&self.output);
        let table: BTreeMap<i64, i64> = self.committed.iter().map(|(&k, s)| (k, s.v)).collect();
        if folded != table {
            return Err(format!(
                "incomplete: output folds to {folded:?}, table is {table:?}"
            ));
        }
        check_no_time_travel(&self.output, &self.history)?;
        // Last, so that a violation of it alone says the others held.
        check_every_column_arrives(&self.output, &self.committed)?;
        Ok(self.stats)
    }
}
