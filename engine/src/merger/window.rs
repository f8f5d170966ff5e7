//! The merger's bookkeeping for the window in flight.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use cdc_signal::TableRef;

use super::commits::CommitMemory;
use super::keyless::{self, Images};
use super::toast::Newest;
use super::{ChunkRow, ReadSnapshot};
use crate::envelope::key_json;
use crate::event::{Event, Op};
use crate::value::{Row, Value};

/// The window in flight: expected or selected, and open once the log showed its LW.
#[derive(Debug)]
pub(super) struct InFlight {
    pub(super) token: u64,
    pub(super) window: String,
    pub(super) table: Arc<TableRef>,
    /// The commit-memory mark at the LW, once the log has shown it.
    pub(super) opened_at: Option<u64>,
    pub(super) chunk: Option<Selected>,
    /// Keys changed inside the window before the chunk arrived (repeats
    /// dropped), with their hashes.
    touched: Vec<Touched>,
    touched_hashes: HashSet<u64>,
    /// Images of the events of a keyless table inside the window before the
    /// chunk arrived.
    images: Images,
    /// Keep what the events say of each touched key, to fill the reads owed
    /// for unchanged TOAST columns (off only for tests).
    fill: bool,
    /// The table was truncated inside the window before the chunk arrived.
    truncated: bool,
    /// Why the chunk cannot be trusted, once something said so.
    pub(super) spoiled: Option<String>,
}

impl InFlight {
    pub(super) fn new(token: u64, window: String, table: Arc<TableRef>, fill: bool) -> Self {
        InFlight {
            token,
            window,
            table,
            opened_at: None,
            chunk: None,
            touched: Vec::new(),
            touched_hashes: HashSet::new(),
            images: Images::default(),
            fill,
            truncated: false,
            spoiled: None,
        }
    }

    /// The chunk arrived: what the window already saw applies to it.
    pub(super) fn attach(
        &mut self,
        rows: Vec<ChunkRow>,
        visibility: Option<Arc<dyn ReadSnapshot>>,
    ) {
        let mut chunk = Selected::new(rows, visibility);
        self.touched_hashes = HashSet::new();
        if self.truncated {
            chunk.clear();
        } else {
            if let Some(image) = self.images.first_in(&chunk.rows) {
                self.spoiled = Some(self.keyless_spoiler(image));
            }
            self.images.clear();
            for touched in std::mem::take(&mut self.touched) {
                match chunk.remove(touched.hash, &touched.key) {
                    Err(reason) => {
                        self.spoiled = Some(reason);
                        break;
                    }
                    Ok(Some(i)) => {
                        if let Some(newest) = touched.newest {
                            chunk.newest.insert(i, newest);
                        }
                    }
                    // Not a chunk key: no read is owed for it.
                    Ok(None) => {}
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
                    self.touched = Vec::new();
                    self.touched_hashes = HashSet::new();
                    self.images.clear();
                }
            },
            Op::Message | Op::Transaction | Op::Heartbeat => {}
            _ => match &event.key {
                Some(key) => self.touch(key, event),
                // A table without a key: see `keyless`.
                None => match self.chunk.as_ref() {
                    Some(chunk) => {
                        if let Some(image) = keyless::touching(event, &chunk.rows) {
                            self.spoiled = Some(self.keyless_spoiler(image));
                        }
                    }
                    None if self.truncated => {}
                    None => self.images.push(event),
                },
            },
        }
    }

    fn keyless_spoiler(&self, image: &Row) -> String {
        let image = serde_json::to_string(image).unwrap_or_default();
        format!(
            "an event inside window {} changed a row of {} equal to one the chunk holds \
             ({image}); without a key there is no telling which",
            self.window, self.table
        )
    }

    fn touch(&mut self, key: &Row, event: &Event) {
        let hash = key_hash(key);
        match self.chunk.as_mut() {
            Some(chunk) => match chunk.remove(hash, key) {
                Err(reason) => self.spoiled = Some(reason),
                Ok(Some(i)) if self.fill => chunk.advance(i, event),
                Ok(_) => {}
            },
            // Rows are gone anyway after a truncate.
            None if self.truncated => {}
            None => {
                // A hash seen before is most likely the same key again; an
                // unequal key with that hash is kept too.
                let seen = if self.touched_hashes.insert(hash) {
                    None
                } else {
                    self.touched
                        .iter_mut()
                        .find(|t| t.hash == hash && t.key == *key)
                };
                match seen {
                    Some(touched) => {
                        if let Some(newest) = touched.newest.as_mut() {
                            newest.advance(event);
                        }
                    }
                    None => self.touched.push(Touched {
                        hash,
                        key: key.clone(),
                        newest: self.fill.then(|| Newest::first(event)),
                    }),
                }
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
            if let Some(xid) = commits.invisible_before(visibility.as_ref(), opened_at) {
                return Err(format!(
                    "torn chunk: transaction {xid} was streamed as committed before the low \
                     watermark of window {window} but snapshot {} does not see it",
                    visibility.brief()
                ));
            }
        }
        Ok(chunk.into_rows())
    }
}

/// A key changed inside the window before the chunk arrived.
#[derive(Debug)]
struct Touched {
    hash: u64,
    key: Row,
    /// `None` when the fill is off.
    newest: Option<Newest>,
}

/// A selected chunk's rows, with the ones lost to log events taken out.
#[derive(Debug)]
pub(super) struct Selected {
    rows: Vec<ChunkRow>,
    removed: Vec<bool>,
    /// By row position, for the removed rows only: what the window's events
    /// say of the key, for a read owed for unchanged TOAST columns.
    newest: HashMap<usize, Newest>,
    /// Removals done by scanning. The first few keys are looked up by a
    /// scan: most windows see a handful of the table's events or none, and
    /// then no key of the chunk is ever hashed.
    scans: usize,
    /// Row position by key hash, built once scans stop paying.
    index: Option<KeyIndex>,
    visibility: Option<Arc<dyn ReadSnapshot>>,
}

/// Scans before the chunk's keys are indexed: a scan compares values only,
/// about a nanosecond a row, where indexing hashes every key once.
pub(super) const SCAN_LIMIT: usize = 32;

#[derive(Debug, Default)]
struct KeyIndex {
    by_hash: HashMap<u64, usize>,
    /// Rows whose key hash collided with an unequal key's: checked one by one.
    collided: Vec<usize>,
}

impl Selected {
    fn new(rows: Vec<ChunkRow>, visibility: Option<Arc<dyn ReadSnapshot>>) -> Self {
        Selected {
            removed: vec![false; rows.len()],
            newest: HashMap::new(),
            rows,
            scans: 0,
            index: None,
            visibility,
        }
    }

    /// Drop the row with `key` (whose hash is `hash`), if the chunk has it:
    /// its position.
    fn remove(&mut self, hash: u64, key: &Row) -> Result<Option<usize>, String> {
        if self.index.is_none() && self.scans < SCAN_LIMIT {
            self.scans += 1;
            let mut found = None;
            for (i, row) in self.rows.iter().enumerate() {
                if same_key(&row.key, key) {
                    if found.is_some() {
                        return Err(duplicate(key));
                    }
                    found = Some(i);
                }
            }
            if let Some(slot) = found.and_then(|i| self.removed.get_mut(i)) {
                *slot = true;
            }
            return Ok(found);
        }
        if self.index.is_none() {
            self.index = Some(self.build_index(key_hash)?);
        }
        let Some(index) = &self.index else {
            return Ok(None);
        };
        // Indexing found any duplicate: at most one row matches.
        let mut candidates = index.by_hash.get(&hash).into_iter().chain(&index.collided);
        let found = candidates
            .find(|&&i| self.rows.get(i).is_some_and(|row| same_key(&row.key, key)))
            .copied();
        if let Some(slot) = found.and_then(|i| self.removed.get_mut(i)) {
            *slot = true;
        }
        Ok(found)
    }

    /// A log event for the row at `i`, already removed.
    fn advance(&mut self, i: usize, event: &Event) {
        match self.newest.entry(i) {
            Entry::Occupied(mut newest) => newest.get_mut().advance(event),
            Entry::Vacant(slot) => {
                slot.insert(Newest::first(event));
            }
        }
    }

    fn build_index(&self, key_hash: impl Fn(&Row) -> u64) -> Result<KeyIndex, String> {
        let mut index = KeyIndex {
            by_hash: HashMap::with_capacity(self.rows.len()),
            collided: Vec::new(),
        };
        for (i, row) in self.rows.iter().enumerate() {
            let hash = key_hash(&row.key);
            match index.by_hash.get(&hash) {
                None => {
                    index.by_hash.insert(hash, i);
                }
                Some(&other) => {
                    if self
                        .rows
                        .get(other)
                        .is_some_and(|o| same_key(&o.key, &row.key))
                    {
                        // Two rows with one key: a log event could drop only
                        // one, so trust neither.
                        return Err(duplicate(&row.key));
                    }
                    index.collided.push(i);
                }
            }
        }
        // A duplicate among collided rows is caught the same way.
        for (n, &i) in index.collided.iter().enumerate() {
            for &j in index.collided.iter().skip(n + 1) {
                if let (Some(a), Some(b)) = (self.rows.get(i), self.rows.get(j)) {
                    if same_key(&a.key, &b.key) {
                        return Err(duplicate(&a.key));
                    }
                }
            }
        }
        Ok(index)
    }

    fn clear(&mut self) {
        self.rows = Vec::new();
        self.removed = Vec::new();
        self.newest = HashMap::new();
        self.index = Some(KeyIndex::default());
    }

    /// The rows no log event took out, and the reads owed for unchanged
    /// TOAST columns in place of the rows they fill from, in chunk order.
    fn into_rows(self) -> impl Iterator<Item = ChunkRow> {
        let mut newest = self.newest;
        self.rows
            .into_iter()
            .zip(self.removed)
            .enumerate()
            .filter_map(move |(i, (row, removed))| {
                if !removed {
                    Some(row)
                } else if newest.is_empty() {
                    None
                } else {
                    newest.remove(&i)?.into_read(row)
                }
            })
    }
}

fn duplicate(key: &Row) -> String {
    format!(
        "chunk lists key {} twice",
        String::from_utf8_lossy(&key_json(key))
    )
}

/// Keys from a chunk and from the log are built by the same conversion from
/// the server's text, so equal keys have equal values. Column names are the
/// table's key columns on both sides.
fn same_key(a: &Row, b: &Row) -> bool {
    a.values == b.values
}

/// A hash of the key's values, consistent with [`same_key`].
fn key_hash(key: &Row) -> u64 {
    use std::hash::{Hash, Hasher};
    fn feed(value: &Value, h: &mut std::collections::hash_map::DefaultHasher) {
        std::mem::discriminant(value).hash(h);
        match value {
            Value::Null | Value::Unchanged => {}
            Value::Bool(b) => b.hash(h),
            Value::Int(i) => i.hash(h),
            // 0.0 == -0.0: hash them alike.
            Value::Float(f) => (if *f == 0.0 { 0.0f64 } else { *f }).to_bits().hash(h),
            Value::Text(s) | Value::Json(s) | Value::Typed(_, s) => s.hash(h),
            Value::Bytes(b) => b.hash(h),
            Value::Array(items) => {
                items.len().hash(h);
                for item in items {
                    feed(item, h);
                }
            }
        }
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for value in &key.values {
        feed(value, &mut h);
    }
    h.finish()
}

fn same_table(event: &Event, table: &Arc<TableRef>) -> bool {
    event
        .table
        .as_ref()
        .is_some_and(|t| Arc::ptr_eq(t, table) || **t == **table)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use proptest::prelude::*;

    use super::*;

    fn key(k: i64) -> Row {
        Row::new(Arc::from(vec!["id".to_string()]), vec![Value::Int(k)])
    }

    fn chunk(keys: &[i64]) -> Selected {
        let rows = keys
            .iter()
            .map(|&k| ChunkRow {
                key: key(k),
                after: key(k),
            })
            .collect();
        Selected::new(rows, None)
    }

    fn kept(chunk: Selected) -> Vec<i64> {
        chunk
            .into_rows()
            .map(|r| match r.key.values.first() {
                Some(Value::Int(k)) => *k,
                _ => -1,
            })
            .collect()
    }

    proptest! {
        /// Past the scan limit the index takes over; either way exactly the
        /// touched keys leave the chunk, in chunk order.
        #[test]
        fn scans_and_index_remove_exactly_the_touched_keys(
            removals in proptest::collection::vec(0i64..150, 0..120),
        ) {
            let keys: Vec<i64> = (0..100).collect();
            let mut selected = chunk(&keys);
            for &k in &removals {
                prop_assert!(selected.remove(key_hash(&key(k)), &key(k)).is_ok());
            }
            let gone: BTreeSet<i64> = removals.iter().copied().collect();
            let expected: Vec<i64> = keys.into_iter().filter(|k| !gone.contains(k)).collect();
            prop_assert_eq!(kept(selected), expected);
        }
    }

    #[test]
    fn colliding_hashes_still_find_their_rows() {
        let keys: Vec<i64> = (0..10).collect();
        let mut selected = chunk(&keys);
        selected.index = selected.build_index(|_| 42).ok();
        assert!(selected
            .index
            .as_ref()
            .is_some_and(|i| i.collided.len() == 9));
        for k in [3, 7, 11] {
            assert!(selected.remove(42, &key(k)).is_ok());
        }
        assert_eq!(kept(selected), vec![0, 1, 2, 4, 5, 6, 8, 9]);
    }

    #[test]
    fn a_key_listed_twice_spoils_the_chunk() {
        let mut scanned = chunk(&[1, 2, 2, 3]);
        assert!(scanned.remove(key_hash(&key(2)), &key(2)).is_err());
        let indexed = chunk(&[1, 2, 2, 3]);
        assert!(indexed.build_index(key_hash).is_err());
        assert!(indexed.build_index(|_| 0).is_err());
    }
}
