//! The merger's bookkeeping for the window in flight.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use cdc_signal::TableRef;

use super::commits::CommitMemory;
use super::{ChunkRow, Visibility};
use crate::envelope::key_json;
use crate::event::{Event, Op};

/// The window in flight: expected or selected, and open once the log showed its LW.
#[derive(Debug)]
pub(super) struct InFlight {
    pub(super) token: u64,
    pub(super) window: String,
    pub(super) table: Arc<TableRef>,
    /// The commit-memory mark at the LW, once the log has shown it.
    pub(super) opened_at: Option<u64>,
    pub(super) chunk: Option<Selected>,
    /// Keys changed inside the window before the chunk arrived.
    touched: HashSet<Vec<u8>>,
    /// The table was truncated inside the window before the chunk arrived.
    truncated: bool,
    /// Why the chunk cannot be trusted, once something said so.
    pub(super) spoiled: Option<String>,
}

impl InFlight {
    pub(super) fn new(token: u64, window: String, table: Arc<TableRef>) -> Self {
        InFlight {
            token,
            window,
            table,
            opened_at: None,
            chunk: None,
            touched: HashSet::new(),
            truncated: false,
            spoiled: None,
        }
    }

    /// The chunk arrived: what the window already saw applies to it.
    pub(super) fn attach(&mut self, rows: Vec<ChunkRow>, visibility: Option<Visibility>) {
        let mut chunk = Selected {
            rows: rows.into_iter().map(Some).collect(),
            index: None,
            visibility,
        };
        if self.truncated {
            chunk.clear();
        } else {
            for key in std::mem::take(&mut self.touched) {
                if let Err(reason) = chunk.remove(&key) {
                    self.spoiled = Some(reason);
                    break;
                }
            }
        }
        self.chunk = Some(chunk);
    }

    /// A log event: it counts if the window is open and it is of the chunk's table.
    pub(super) fn observe(&mut self, event: &Event) {
        if self.opened_at.is_none() || self.spoiled.is_some() || !same_table(event, &self.table) {
            return;
        }
        match event.op {
            Op::Truncate => match self.chunk.as_mut() {
                Some(chunk) => chunk.clear(),
                None => {
                    self.truncated = true;
                    self.touched = HashSet::new();
                }
            },
            Op::Message => {}
            op => match event.key_bytes() {
                Some(key) => self.touch(key),
                None => {
                    self.spoiled = Some(format!(
                        "a `{}` event of {} without a key came inside window {}: no telling \
                         which row it changed",
                        op.code(),
                        self.table,
                        self.window
                    ))
                }
            },
        }
    }

    fn touch(&mut self, key: Vec<u8>) {
        match self.chunk.as_mut() {
            Some(chunk) => {
                if let Err(reason) = chunk.remove(&key) {
                    self.spoiled = Some(reason);
                }
            }
            // Rows are gone anyway after a truncate.
            None if self.truncated => {}
            None => {
                self.touched.insert(key);
            }
        }
    }

    /// At the HW: the rows to emit, or why none may be.
    pub(super) fn verdict(
        self,
        commits: &mut CommitMemory,
    ) -> Result<impl Iterator<Item = ChunkRow>, String> {
        let window = &self.window;
        let Some(opened_at) = self.opened_at else {
            return Err(format!(
                "high watermark of window {window} came before its low watermark"
            ));
        };
        let Some(chunk) = self.chunk else {
            return Err(format!(
                "high watermark of window {window} came before its chunk was selected"
            ));
        };
        if let Some(reason) = self.spoiled {
            return Err(reason);
        }
        if let Some(visibility) = &chunk.visibility {
            if let Some(xid) = commits.invisible_before(visibility, opened_at) {
                return Err(format!(
                    "torn chunk: transaction {xid} was streamed as committed before the low \
                     watermark of window {window} but snapshot {} does not see it",
                    visibility.brief()
                ));
            }
        }
        Ok(chunk.rows.into_iter().flatten())
    }
}

/// A selected chunk's rows, with the ones lost to log events taken out.
#[derive(Debug)]
pub(super) struct Selected {
    rows: Vec<Option<ChunkRow>>,
    /// Row position by key bytes, built when a log event first needs it: most windows see
    /// no event of the chunk's table, and then no chunk key is ever serialised.
    index: Option<HashMap<Vec<u8>, usize>>,
    visibility: Option<Visibility>,
}

impl Selected {
    fn remove(&mut self, key: &[u8]) -> Result<(), String> {
        if self.index.is_none() {
            self.index = Some(build_index(&self.rows)?);
        }
        if let Some(&i) = self.index.as_ref().and_then(|index| index.get(key)) {
            if let Some(row) = self.rows.get_mut(i) {
                *row = None;
            }
        }
        Ok(())
    }

    fn clear(&mut self) {
        self.rows = Vec::new();
        self.index = Some(HashMap::new());
    }
}

fn build_index(rows: &[Option<ChunkRow>]) -> Result<HashMap<Vec<u8>, usize>, String> {
    let mut index = HashMap::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        let Some(row) = row else { continue };
        if let Some(_previous) = index.insert(key_json(&row.key), i) {
            // Two rows with one key: a log event could drop only one, so trust neither.
            return Err(format!(
                "chunk lists key {} twice",
                String::from_utf8_lossy(&key_json(&row.key))
            ));
        }
    }
    Ok(index)
}

fn same_table(event: &Event, table: &Arc<TableRef>) -> bool {
    event
        .table
        .as_ref()
        .is_some_and(|t| Arc::ptr_eq(t, table) || **t == **table)
}
