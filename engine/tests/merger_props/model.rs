//! The log side of the model: building log items and checking the merged output.

use std::collections::BTreeMap;
use std::sync::Arc;

use cdc_engine::merger::{Chunk, ChunkRow, Visibility};
use cdc_engine::{
    Event, LogItem, Op, Position, Row, SnapshotFlag, SourceInfo, SourceMeta, TableRef, Value,
};
use cdc_signal::Command;

pub const KEYS: i64 = 12;
pub const XID32: u64 = 0xFFFF_FFFF;

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
            }),
            key_cols: Arc::from(vec!["id".to_string()]),
            row_cols: Arc::from(vec!["id".to_string(), "v".to_string()]),
            lsn: 0,
        }
    }

    pub fn source(&mut self, xid: Option<u64>) -> SourceInfo {
        self.lsn += 1;
        SourceInfo {
            meta: self.meta.clone(),
            position: Position::from_u64(self.lsn),
            lsn: Some(self.lsn),
            tx_id: xid.map(|x| x & XID32),
            ts_ms: 0,
            snapshot: SnapshotFlag::No,
        }
    }

    pub fn key(&self, k: i64) -> Row {
        Row::new(self.key_cols.clone(), vec![Value::Int(k)])
    }

    pub fn row(&self, k: i64, v: i64) -> Row {
        Row::new(self.row_cols.clone(), vec![Value::Int(k), Value::Int(v)])
    }

    /// A row change: `before`/`after` states of key `k` (None: absent).
    pub fn change(&mut self, xid: u64, k: i64, before: Option<i64>, after: Option<i64>) -> LogItem {
        self.change_in(self.table.clone(), xid, k, before, after)
    }

    pub fn change_in(
        &mut self,
        table: Arc<TableRef>,
        xid: u64,
        k: i64,
        before: Option<i64>,
        after: Option<i64>,
    ) -> LogItem {
        let op = match (before, after) {
            (None, _) => Op::Create,
            (Some(_), Some(_)) => Op::Update,
            (Some(_), None) => Op::Delete,
        };
        LogItem::Event(Event {
            op,
            table: Some(table),
            key: Some(self.key(k)),
            before: if op == Op::Delete {
                before.map(|v| self.row(k, v))
            } else {
                None
            },
            after: after.map(|v| self.row(k, v)),
            source: self.source(Some(xid)),
            message: None,
        })
    }

    pub fn truncate(&mut self, xid: u64) -> LogItem {
        LogItem::Event(Event {
            op: Op::Truncate,
            table: Some(self.table.clone()),
            key: None,
            before: None,
            after: None,
            source: self.source(Some(xid)),
            message: None,
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
        rows: &[(i64, i64)],
        vis: Option<Visibility>,
    ) -> Chunk {
        Chunk {
            token,
            window: window.into(),
            table: self.table.clone(),
            rows: rows
                .iter()
                .map(|&(k, v)| ChunkRow {
                    key: self.key(k),
                    after: self.row(k, v),
                })
                .collect(),
            visibility: vis,
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
            Op::Message => {}
        }
    }
    table
}

/// No time travel: per key, the emitted states are a subsequence of the committed
/// history (repeats allowed: delivery is at-least-once). Values are unique per write, so
/// a state's place in the history is unambiguous, and a read older than what was already
/// emitted is named as such.
pub fn check_no_time_travel(
    output: &[Event],
    history: &BTreeMap<i64, Vec<Option<i64>>>,
) -> Result<(), String> {
    let mut at: BTreeMap<i64, usize> = BTreeMap::new();
    let mut present: BTreeMap<i64, ()> = BTreeMap::new();
    let mut step = |k: i64, state: Option<i64>, op: Op| -> Result<(), String> {
        let past = history.get(&k).map(Vec::as_slice).unwrap_or(&[]);
        let from = at.get(&k).copied().unwrap_or(0);
        match past.iter().skip(from).position(|s| *s == state) {
            Some(offset) => {
                at.insert(k, from + offset);
                Ok(())
            }
            None if op == Op::Read && past.contains(&state) => Err(format!(
                "stale read of key {k}: {state:?} emitted after a newer state (history {past:?})"
            )),
            None => Err(format!(
                "key {k}: `{}` state {state:?} is not next in history {past:?} from index {from}",
                op.code()
            )),
        }
    };
    for event in output.iter().filter(|e| ours(e)) {
        match event.op {
            Op::Truncate => {
                for k in std::mem::take(&mut present).into_keys() {
                    step(k, None, Op::Truncate)?;
                }
            }
            Op::Delete => {
                let k = key_of(event).ok_or("delete without key")?;
                present.remove(&k);
                step(k, None, Op::Delete)?;
            }
            Op::Create | Op::Update | Op::Read => {
                let k = key_of(event).ok_or("row event without key")?;
                present.insert(k, ());
                step(
                    k,
                    Some(value_of(event).ok_or("row without value")?),
                    event.op,
                )?;
            }
            Op::Message => {}
        }
    }
    Ok(())
}
