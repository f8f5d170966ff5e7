//! The log side of the model: building log items and checking the merged output.

use std::collections::BTreeMap;
use std::sync::Arc;

use cdc_engine::merger::{Chunk, ChunkRow};
use cdc_engine::{
    Event, LogItem, Op, Position, Row, SnapshotFlag, SourceInfo, SourceMeta, TableRef, Value,
};
use cdc_postgres::visibility::Visibility;
use cdc_signal::Command;

pub const KEYS: i64 = 12;
pub const XID32: u64 = 0xFFFF_FFFF;

/// A row's state. `v` is unique per write, so a state's place in its key's history is
/// unambiguous; `doc` stands for a TOASTed column, named by the `v` of the write that
/// last set it. An update may leave it alone: its log event then carries the unchanged
/// placeholder, as pgoutput sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct State {
    pub v: i64,
    pub doc: i64,
}

impl State {
    /// A write that sets both columns.
    pub fn fresh(v: i64) -> Self {
        State { v, doc: v }
    }
}

/// What a consumer folding the output holds for a key: `doc` is `None` while it has
/// only seen the placeholder for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub v: i64,
    pub doc: Option<i64>,
}

impl Seen {
    /// A doc not known yet matches any: only the final fold must have them all.
    fn matches(&self, state: &State) -> bool {
        self.v == state.v && self.doc.is_none_or(|d| d == state.doc)
    }
}

// ---------------------------------------------------------------------------------------
// Log items

pub struct Log {
    pub table: Arc<TableRef>,
    pub other: Arc<TableRef>,
    meta: Arc<SourceMeta>,
    key_cols: Arc<[String]>,
    row_cols: Arc<[String]>,
    lsn: u64,
}

impl Log {
    pub fn new() -> Self {
        Log {
            table: Arc::new(TableRef::new("public", "t")),
            other: Arc::new(TableRef::new("public", "other")),
            meta: Arc::new(SourceMeta {
                connector: "postgresql",
                name: "sim".into(),
                db: "db".into(),
                block: &cdc_engine::PLAIN_BLOCK,
            }),
            key_cols: Arc::from(vec!["id".to_string()]),
            row_cols: Arc::from(vec!["id".to_string(), "v".to_string(), "doc".to_string()]),
            lsn: 0,
        }
    }

    pub fn source(&mut self, xid: Option<u64>) -> SourceInfo {
        self.lsn += 1;
        SourceInfo {
            session: None,
            meta: self.meta.clone(),
            position: Position::from_u64(self.lsn),
            offset: Some(self.lsn),
            tx_id: xid.map(|x| x & XID32),
            ts_ms: 0,
            ts_us: 0,
            last_commit: None,
            snapshot: SnapshotFlag::No,
        }
    }

    pub fn key(&self, k: i64) -> Row {
        Row::new(self.key_cols.clone(), vec![Value::Int(k)])
    }

    /// The row of a write that set both columns.
    pub fn row(&self, k: i64, v: i64) -> Row {
        self.row_of(k, State::fresh(v), false)
    }

    /// The row of state `s`, with the placeholder for `doc` if `unchanged`.
    pub fn row_of(&self, k: i64, s: State, unchanged: bool) -> Row {
        let doc = if unchanged {
            Value::Unchanged
        } else {
            Value::Text(format!("doc-{}", s.doc))
        };
        Row::new(
            self.row_cols.clone(),
            vec![Value::Int(k), Value::Int(s.v), doc],
        )
    }

    /// A row change: `before`/`after` states of key `k` (None: absent). An update that
    /// keeps `doc` carries the placeholder for it; an insert always carries it.
    pub fn change(
        &mut self,
        xid: u64,
        k: i64,
        before: Option<State>,
        after: Option<State>,
    ) -> LogItem {
        self.change_in(self.table.clone(), xid, k, before, after)
    }

    pub fn change_in(
        &mut self,
        table: Arc<TableRef>,
        xid: u64,
        k: i64,
        before: Option<State>,
        after: Option<State>,
    ) -> LogItem {
        let unchanged = matches!((before, after), (Some(b), Some(a)) if a.doc == b.doc);
        let op = match (before, after) {
            (None, _) => Op::Create,
            (Some(_), Some(_)) => Op::Update,
            (Some(_), None) => Op::Delete,
        };
        LogItem::Event(Event {
            update: None,
            schema: None,
            op,
            table: Some(table),
            key: Some(self.key(k)),
            before: if op == Op::Delete {
                before.map(|s| self.row_of(k, s, false))
            } else {
                None
            },
            after: after.map(|s| self.row_of(k, s, unchanged)),
            source: self.source(Some(xid)),
            message: None,
            transaction: None,
        })
    }

    pub fn truncate(&mut self, xid: u64) -> LogItem {
        LogItem::Event(Event {
            update: None,
            schema: None,
            op: Op::Truncate,
            table: Some(self.table.clone()),
            key: None,
            before: None,
            after: None,
            source: self.source(Some(xid)),
            message: None,
            transaction: None,
        })
    }

    pub fn commit(&mut self, xid: u64) -> LogItem {
        let source = self.source(Some(xid));
        LogItem::Commit {
            tx_id: Some(xid & XID32),
            position: source.position,
        }
    }

    pub fn watermark(&mut self, xid: u64, window: &str, open: bool) -> LogItem {
        let window = window.to_string();
        let command = if open {
            Command::WindowOpen { window }
        } else {
            Command::WindowClose { window }
        };
        LogItem::Signal {
            row: command.to_row(String::new()),
            source: self.source(Some(xid)),
        }
    }

    pub fn chunk(
        &self,
        token: u64,
        window: &str,
        rows: &[(i64, State)],
        vis: Option<Visibility>,
    ) -> Chunk {
        Chunk {
            token,
            window: window.into(),
            table: self.table.clone(),
            rows: rows
                .iter()
                .map(|&(k, s)| ChunkRow {
                    key: self.key(k),
                    after: self.row_of(k, s, false),
                })
                .collect(),
            visibility: vis.map(|v| std::sync::Arc::new(v) as _),
        }
    }
}

/// Events of the modelled table (`public.t`); `public.other` only passes through.
pub fn ours(event: &Event) -> bool {
    event.table.as_ref().is_some_and(|t| t.name == "t")
}

pub fn key_of(event: &Event) -> Option<i64> {
    match event.key.as_ref()?.get("id")? {
        Value::Int(k) => Some(*k),
        _ => None,
    }
}

pub fn value_of(event: &Event) -> Option<i64> {
    match event.after.as_ref()?.get("v")? {
        Value::Int(v) => Some(*v),
        _ => None,
    }
}

/// The `doc` of a row event: `Some(None)` for the placeholder.
fn doc_of(event: &Event) -> Option<Option<i64>> {
    match event.after.as_ref()?.get("doc")? {
        Value::Unchanged => Some(None),
        Value::Text(t) => t.strip_prefix("doc-")?.parse().ok().map(Some),
        _ => None,
    }
}

/// A consumer folding the output by key: last event wins, `d` deletes, `t` clears, and a
/// placeholder keeps the column's folded value (`None` if it has none yet).
#[derive(Default)]
struct Consumer {
    table: BTreeMap<i64, Seen>,
}

impl Consumer {
    /// Applies one event of ours; the key and its folded state after it, for row events.
    fn apply(&mut self, event: &Event) -> Result<Option<(i64, Option<Seen>)>, String> {
        match event.op {
            Op::Truncate => {
                self.table.clear();
                Ok(None)
            }
            Op::Delete => {
                let k = key_of(event).ok_or("delete without key")?;
                self.table.remove(&k);
                Ok(Some((k, None)))
            }
            Op::Create | Op::Update | Op::Read => {
                let k = key_of(event).ok_or("row event without key")?;
                let v = value_of(event).ok_or("row without value")?;
                let doc = match doc_of(event).ok_or("row without doc")? {
                    Some(doc) => Some(doc),
                    None => self.table.get(&k).and_then(|seen| seen.doc),
                };
                let seen = Seen { v, doc };
                self.table.insert(k, seen);
                Ok(Some((k, Some(seen))))
            }
            Op::Message | Op::Transaction | Op::Heartbeat => Ok(None),
        }
    }
}

/// [`Consumer`]'s view of the table after the whole output.
pub fn fold_rows(output: &[Event]) -> Result<BTreeMap<i64, Seen>, String> {
    let mut consumer = Consumer::default();
    for event in output.iter().filter(|e| ours(e)) {
        consumer.apply(event)?;
    }
    Ok(consumer.table)
}

/// Every column of every key reaches a consumer starting from the snapshot: folding the
/// output yields exactly the table, no placeholder left. Violations start with `toast:`.
pub fn check_every_column_arrives(
    output: &[Event],
    table: &BTreeMap<i64, State>,
) -> Result<(), String> {
    let folded = fold_rows(output)?;
    for (&k, state) in table {
        match folded.get(&k) {
            Some(Seen { v, doc: Some(doc) }) if *v == state.v && *doc == state.doc => {}
            Some(Seen { v, doc: None }) if *v == state.v => {
                return Err(format!(
                    "toast: key {k}'s doc {} never reached the consumer: a placeholder is \
                     all it has",
                    state.doc
                ))
            }
            other => {
                return Err(format!(
                    "toast: key {k} folds to {other:?}, table has {state:?}"
                ))
            }
        }
    }
    if let Some(k) = folded.keys().find(|k| !table.contains_key(k)) {
        return Err(format!("toast: key {k} folds present, the table has none"));
    }
    Ok(())
}

/// Folds the output by key (last event wins, `d` deletes, `t` clears): the consumer's
/// view of the table.
pub fn fold(output: &[Event]) -> BTreeMap<i64, i64> {
    let mut table = BTreeMap::new();
    for event in output.iter().filter(|e| ours(e)) {
        match event.op {
            Op::Truncate => table.clear(),
            Op::Delete => {
                table.remove(&key_of(event).unwrap_or(-1));
            }
            Op::Create | Op::Update | Op::Read => {
                if let (Some(k), Some(v)) = (key_of(event), value_of(event)) {
                    table.insert(k, v);
                }
            }
            Op::Message | Op::Transaction | Op::Heartbeat => {}
        }
    }
    table
}

/// No time travel: per key, the emitted states are a subsequence of the committed
/// history (repeats allowed: delivery is at-least-once). A state is the full row as a
/// consumer folds it (a placeholder resolved to the doc it already had; a doc it does not
/// have yet matches any). Values are unique per write, so a state's place in the history
/// is unambiguous, and a read older than what was already emitted is named as such.
pub fn check_no_time_travel(
    output: &[Event],
    history: &BTreeMap<i64, Vec<Option<State>>>,
) -> Result<(), String> {
    let mut at: BTreeMap<i64, usize> = BTreeMap::new();
    let mut step = |k: i64, state: Option<Seen>, op: Op| -> Result<(), String> {
        let past = history.get(&k).map(Vec::as_slice).unwrap_or(&[]);
        let from = at.get(&k).copied().unwrap_or(0);
        let matches = |s: &Option<State>| match (s, &state) {
            (None, None) => true,
            (Some(s), Some(seen)) => seen.matches(s),
            _ => false,
        };
        match past.iter().skip(from).position(matches) {
            Some(offset) => {
                at.insert(k, from + offset);
                Ok(())
            }
            None if op == Op::Read && past.iter().any(matches) => Err(format!(
                "stale read of key {k}: {state:?} emitted after a newer state (history {past:?})"
            )),
            None => Err(format!(
                "key {k}: `{}` state {state:?} is not next in history {past:?} from index {from}",
                op.code()
            )),
        }
    };
    let mut consumer = Consumer::default();
    for event in output.iter().filter(|e| ours(e)) {
        if event.op == Op::Truncate {
            for &k in consumer.table.keys() {
                step(k, None, Op::Truncate)?;
            }
        }
        if let Some((k, state)) = consumer.apply(event)? {
            step(k, state, event.op)?;
        }
    }
    Ok(())
}
