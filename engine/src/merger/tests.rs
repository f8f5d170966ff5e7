//! The reads owed for unchanged TOAST columns, rule by rule. The merger's other rules are
//! tested against a model of the table in `sources/postgres/tests/merger_props.rs` (with PostgreSQL's visibility).

use std::sync::Arc;

use cdc_signal::{Command, TableRef};

use super::{Chunk, ChunkRow, Outcome, WindowMerger};
use crate::event::{Event, Op, Position, SnapshotFlag, SourceInfo, SourceMeta};
use crate::source::LogItem;
use crate::value::{Row, Value};

/// A doc column value: full text, or `None` for the unchanged placeholder.
type Doc = Option<&'static str>;

struct H {
    merger: WindowMerger,
    table: Arc<TableRef>,
    meta: Arc<SourceMeta>,
    key_cols: Arc<[String]>,
    cols: Arc<[String]>,
    lsn: u64,
    out: Vec<Event>,
    outcomes: Vec<Outcome>,
}

fn names(names: &[&str]) -> Arc<[String]> {
    names.iter().map(|n| n.to_string()).collect()
}

fn doc(d: Doc) -> Value {
    d.map_or(Value::Unchanged, |t| Value::Text(t.into()))
}

impl H {
    fn new(merger: WindowMerger) -> Self {
        H {
            merger,
            table: Arc::new(TableRef::new("public", "t")),
            meta: Arc::new(SourceMeta {
                connector: "postgresql",
                name: "test".into(),
                db: "db".into(),
                block: &crate::PLAIN_BLOCK,
            }),
            key_cols: names(&["id"]),
            cols: names(&["id", "v", "doc"]),
            lsn: 0,
            out: Vec::new(),
            outcomes: Vec::new(),
        }
    }

    fn source(&mut self) -> SourceInfo {
        self.lsn += 1;
        SourceInfo {
            session: None,
            meta: self.meta.clone(),
            position: Position::from_u64(self.lsn),
            offset: Some(self.lsn),
            tx_id: Some(self.lsn),
            ts_ms: 0,
            ts_us: 0,
            last_commit: None,
            snapshot: SnapshotFlag::No,
        }
    }

    fn key(&self, k: i64) -> Row {
        Row::new(self.key_cols.clone(), vec![Value::Int(k)])
    }

    fn row(&self, k: i64, v: i64, d: Doc) -> Row {
        Row::new(
            self.cols.clone(),
            vec![Value::Int(k), Value::Int(v), doc(d)],
        )
    }

    fn feed(&mut self, item: LogItem) {
        self.merger.on_log(item, &mut self.out, &mut self.outcomes);
    }

    fn event(&mut self, op: Op, k: i64, after: Option<Row>) {
        let source = self.source();
        let event = Event {
            update: None,
            schema: None,
            op,
            table: Some(self.table.clone()),
            key: Some(self.key(k)),
            before: None,
            after,
            source,
            message: None,
            transaction: None,
        };
        self.feed(LogItem::Event(event));
    }

    fn insert(&mut self, k: i64, v: i64, d: &'static str) {
        let after = self.row(k, v, Some(d));
        self.event(Op::Create, k, Some(after));
    }

    fn update(&mut self, k: i64, v: i64, d: Doc) {
        let after = self.row(k, v, d);
        self.event(Op::Update, k, Some(after));
    }

    fn delete(&mut self, k: i64) {
        self.event(Op::Delete, k, None);
    }

    fn mark(&mut self, open: bool) {
        let window = "w".to_string();
        let command = if open {
            Command::WindowOpen { window }
        } else {
            Command::WindowClose { window }
        };
        let source = self.source();
        let row = command.to_row(String::new());
        self.feed(LogItem::Signal { row, source });
    }

    fn expect(&mut self) {
        let table = self.table.clone();
        self.merger
            .expect_window(1, "w".into(), table, &mut self.outcomes);
    }

    fn chunk_rows(&mut self, rows: Vec<ChunkRow>) {
        let chunk = Chunk {
            token: 1,
            window: "w".into(),
            table: self.table.clone(),
            rows,
            visibility: None,
        };
        self.merger.on_chunk(chunk, &mut self.outcomes);
    }

    fn chunk(&mut self, rows: &[(i64, i64, &'static str)]) {
        let rows = rows
            .iter()
            .map(|&(k, v, d)| ChunkRow {
                key: self.key(k),
                after: self.row(k, v, Some(d)),
            })
            .collect();
        self.chunk_rows(rows);
    }

    /// The reads, as (key, after).
    fn reads(&self) -> Vec<(i64, Row)> {
        self.out
            .iter()
            .filter(|e| e.op == Op::Read)
            .map(|e| {
                assert_eq!(e.source.snapshot, SnapshotFlag::Incremental);
                let k = match e.key.as_ref().and_then(|k| k.get("id")) {
                    Some(Value::Int(k)) => *k,
                    other => panic!("read without an integer key: {other:?}"),
                };
                (k, e.after.clone().expect("a read carries its row"))
            })
            .collect()
    }

    fn emitted(&self) -> usize {
        match self.outcomes.as_slice() {
            [Outcome::ChunkDone { emitted, .. }] => *emitted,
            other => panic!("expected one chunk done, got {other:?}"),
        }
    }
}

fn h() -> H {
    H::new(WindowMerger::new())
}

#[test]
fn a_placeholder_is_filled_from_the_chunk_row() {
    let mut h = h();
    h.chunk(&[(1, 10, "a"), (2, 20, "b"), (3, 30, "c")]);
    h.mark(true);
    h.update(1, 11, None);
    h.update(3, 31, Some("c2")); // full: the event is all there is to it
    h.mark(false);
    assert_eq!(
        h.reads(),
        vec![(1, h.row(1, 11, Some("a"))), (2, h.row(2, 20, Some("b")))]
    );
    assert_eq!(h.emitted(), 2);
    // The read comes after the key's event, which passed through as it was.
    let ops: Vec<Op> = h.out.iter().map(|e| e.op).collect();
    assert_eq!(ops, [Op::Update, Op::Update, Op::Read, Op::Read]);
    assert_eq!(h.out[0].after, Some(h.row(1, 11, None)));
}

#[test]
fn a_newer_full_value_in_the_window_wins_over_the_chunk_row() {
    let mut h = h();
    h.chunk(&[(1, 10, "a")]);
    h.mark(true);
    h.update(1, 11, Some("b"));
    h.update(1, 12, None);
    h.update(1, 13, None);
    h.mark(false);
    assert_eq!(h.reads(), vec![(1, h.row(1, 13, Some("b")))]);
    assert_eq!(h.emitted(), 1);
}

#[test]
fn no_read_when_the_newest_event_is_a_delete_or_there_is_nothing_to_fill() {
    let mut h = h();
    h.chunk(&[(1, 10, "a"), (2, 20, "b"), (3, 30, "c")]);
    h.mark(true);
    h.update(1, 11, None);
    h.delete(1);
    h.update(2, 21, None);
    h.update(2, 22, Some("b2")); // newest is full: no read owed
    h.mark(false);
    assert_eq!(h.reads(), vec![(3, h.row(3, 30, Some("c")))]);
    assert_eq!(h.emitted(), 1);

    // A chunk row without the column: nothing to fill.
    let mut h = self::h();
    let bare = Row::new(names(&["id", "v"]), vec![Value::Int(1), Value::Int(10)]);
    let key = h.key(1);
    h.chunk_rows(vec![ChunkRow { key, after: bare }]);
    h.mark(true);
    h.update(1, 11, None);
    h.mark(false);
    assert!(h.reads().is_empty());
    assert_eq!(h.emitted(), 0);
}

#[test]
fn insert_then_update_with_a_placeholder_fills_from_the_insert() {
    let mut h = h();
    h.chunk(&[(1, 10, "a")]);
    h.mark(true);
    h.delete(1);
    h.insert(1, 11, "b");
    h.update(1, 12, None);
    h.insert(5, 50, "e"); // not a chunk key: its events are all there is
    h.update(5, 51, None);
    h.mark(false);
    assert_eq!(h.reads(), vec![(1, h.row(1, 12, Some("b")))]);
    assert_eq!(h.emitted(), 1);

    // After a delete the chunk row may be the deleted row's: never filled from it.
    let mut h = self::h();
    h.chunk(&[(1, 10, "a")]);
    h.mark(true);
    h.delete(1);
    let partial = Row::new(
        names(&["id", "v", "doc"]),
        vec![Value::Int(1), Value::Int(11), Value::Unchanged],
    );
    h.event(Op::Create, 1, Some(partial));
    h.mark(false);
    assert!(h.reads().is_empty());
}

#[test]
fn events_before_the_chunk_arrives_fill_its_reads() {
    let mut h = h();
    h.expect();
    h.mark(true);
    h.update(1, 11, None);
    h.update(2, 21, Some("b2"));
    h.update(2, 22, None);
    h.update(9, 91, None); // never in the chunk
    h.update(3, 31, Some("c2"));
    // Selected now: it sees every change so far.
    h.chunk(&[(1, 11, "a"), (2, 22, "b2"), (3, 31, "c2"), (4, 40, "d")]);
    h.update(1, 12, None); // after the chunk: the touched key's state carries over
    h.mark(false);
    assert_eq!(
        h.reads(),
        vec![
            (1, h.row(1, 12, Some("a"))),
            (2, h.row(2, 22, Some("b2"))),
            (4, h.row(4, 40, Some("d"))),
        ]
    );
    assert_eq!(h.emitted(), 3);

    // A truncate before the chunk forgets them.
    let mut h = self::h();
    h.expect();
    h.mark(true);
    h.update(1, 11, None);
    let source = h.source();
    let truncate = Event {
        update: None,
        schema: None,
        op: Op::Truncate,
        table: Some(h.table.clone()),
        key: None,
        before: None,
        after: None,
        source,
        message: None,
        transaction: None,
    };
    h.feed(LogItem::Event(truncate));
    h.chunk(&[]);
    h.mark(false);
    assert!(h.reads().is_empty());
    assert_eq!(h.emitted(), 0);
}

#[test]
fn columns_are_matched_by_name_across_table_versions() {
    let mut h = h();
    // Selected before `note` was added (and `extra` is new too).
    h.chunk(&[(1, 10, "a")]);
    h.mark(true);
    let after = Row::new(
        names(&["id", "note", "v", "doc", "extra"]),
        vec![
            Value::Int(1),
            Value::Text("n".into()),
            Value::Int(11),
            Value::Unchanged,
            Value::Unchanged,
        ],
    );
    h.event(Op::Update, 1, Some(after));
    h.mark(false);
    let expected = Row::new(
        names(&["id", "note", "v", "doc", "extra"]),
        vec![
            Value::Int(1),
            Value::Text("n".into()),
            Value::Int(11),
            Value::Text("a".into()),
            // Nothing to fill it from: stays a placeholder, as in the event.
            Value::Unchanged,
        ],
    );
    assert_eq!(h.reads(), vec![(1, expected)]);
}

#[test]
fn without_the_fill_the_chunk_row_is_lost() {
    let mut h = H::new(WindowMerger::new().without_toast_fill());
    h.chunk(&[(1, 10, "a"), (2, 20, "b")]);
    h.mark(true);
    h.update(1, 11, None);
    h.mark(false);
    assert_eq!(h.reads(), vec![(2, h.row(2, 20, Some("b")))]);
    assert_eq!(h.emitted(), 1);
}

#[test]
fn keys_found_by_the_index_are_filled_too() {
    let mut h = h();
    let keys: Vec<i64> = (0..3 * super::window::SCAN_LIMIT as i64).collect();
    let rows: Vec<(i64, i64, &'static str)> = keys.iter().map(|&k| (k, k, "a")).collect();
    h.chunk(&rows);
    h.mark(true);
    for &k in keys.iter().rev() {
        h.update(k, k + 1000, None);
    }
    h.mark(false);
    let expected: Vec<(i64, Row)> = keys
        .iter()
        .map(|&k| (k, h.row(k, k + 1000, Some("a"))))
        .collect();
    assert_eq!(h.reads(), expected);
    assert_eq!(h.emitted(), keys.len());
}

fn schema_of(table: Arc<TableRef>, version: u64) -> LogItem {
    use crate::schema::{ColumnKind, ColumnSchema, TableSchema};
    LogItem::Schema(Arc::new(TableSchema {
        table,
        version,
        columns: vec![
            ColumnSchema::new("id", "bigint", ColumnKind::Int64),
            ColumnSchema::new("v", "bigint", ColumnKind::Int64),
        ],
        key: vec!["id".into()],
    }))
}

/// A shape change of the window's table between its watermarks: the chunk
/// may have been read with either shape, so it is discarded (and read again
/// with the new one), never emitted; its window's events pass as they are.
#[test]
fn a_schema_change_inside_the_window_discards_its_chunk() {
    let mut h = h();
    h.expect();
    h.chunk(&[(1, 10, "a"), (2, 20, "b")]);
    h.mark(true);
    h.update(1, 11, Some("a2"));
    let table = h.table.clone();
    h.feed(schema_of(table, 2));
    h.update(2, 21, Some("b2"));
    h.mark(false);
    assert!(h.reads().is_empty(), "{:?}", h.out);
    assert_eq!(h.out.len(), 2, "the window's own events pass through");
    match h.outcomes.as_slice() {
        [Outcome::ChunkDiscarded { reason, .. }] => {
            assert!(reason.contains("changed shape inside window w"), "{reason}");
        }
        other => panic!("expected the chunk discarded, got {other:?}"),
    }
}

/// Another table's change of shape, or one before the window opened (the
/// chunk is read after the low watermark, with the new shape), spoils
/// nothing.
#[test]
fn a_schema_change_of_another_table_or_before_the_window_keeps_the_chunk() {
    let mut h = h();
    h.expect();
    let table = h.table.clone();
    h.feed(schema_of(table, 2));
    h.chunk(&[(1, 10, "a"), (2, 20, "b")]);
    h.mark(true);
    h.feed(schema_of(Arc::new(TableRef::new("public", "other")), 2));
    h.mark(false);
    assert_eq!(h.reads().len(), 2);
    assert_eq!(h.emitted(), 2);
}
