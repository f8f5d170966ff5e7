//! pgoutput messages → log items. No I/O: the relation cache and the open
//! transaction are the only state.
//!
//! A primary-key change arrives as one update carrying the old key; it is
//! emitted as a delete of the old key followed by a create of the new one (as
//! Debezium does), so folding events by key stays correct.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use cdc_engine::{
    ColumnSchema, Event, LogItem, LogicalMessage as MessagePayload, Op, Position, Row, SignalRow,
    SnapshotFlag, SourceInfo, SourceMeta, TableRef, TableSchema, Value,
};

use crate::catalog::TableInfo;
use crate::late_tables::{LateTables, CAPTURE_PREFIX, NEW_TABLE_SIGNAL};
use crate::pgoutput::{
    self, DecodeError, LogicalMessage, OldTuple, Relation, TupleData, TupleValue,
};
use crate::types::{tuple_value_to_value, type_name};

/// Prefix of the heartbeat messages cdc writes (`source.heartbeat_interval_secs`).
pub const HEARTBEAT_PREFIX: &str = "cdc.heartbeat";

/// Milliseconds between the Unix epoch and PostgreSQL's (2000-01-01).
const PG_EPOCH_MS: i64 = 946_684_800_000;

#[derive(Debug, thiserror::Error)]
pub enum DecoderError {
    #[error("undecodable pgoutput message at {lsn}: {source}")]
    Decode { lsn: String, source: DecodeError },
    #[error("row for relation {0} arrived before its Relation message")]
    UnknownRelation(u32),
    /// In binary mode, a value cdc cannot read in binary: the session must
    /// start again in text (docs/architecture.md, "Binary log values").
    #[error("{0}")]
    NeedsText(String),
}

struct RelationState {
    table: Arc<TableRef>,
    columns: Arc<[String]>,
    /// The types values are converted by (domains resolved, see
    /// [`ColumnInfo::value_oid`](crate::catalog::ColumnInfo::value_oid)).
    type_oids: Vec<u32>,
    /// The columns' type modifiers (a time's precision).
    type_mods: Vec<i32>,
    money_digits: u32,
    key_columns: Arc<[String]>,
    key_indexes: Vec<usize>,
    kind: RelationKind,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum RelationKind {
    Captured,
    Signal,
    /// In the publication but not configured: skipped.
    Ignored,
}

struct Transaction {
    xid: u32,
    commit_lsn: u64,
    ts_ms: i64,
    ts_us: i64,
}

/// A captured table's shape as the engine last saw it: from the catalog at
/// start, then from the log's Relation messages.
struct Shape {
    /// Name, type OID and modifier of each column, in order.
    columns: Vec<(String, u32, i32)>,
    key: Vec<String>,
    schema: Arc<TableSchema>,
}

pub struct Decoder {
    meta: Arc<SourceMeta>,
    captured: HashMap<TableRef, TableInfo>,
    /// Kept across reconnects: a new session resends relations, which are
    /// no change.
    shapes: HashMap<TableRef, Shape>,
    signal_table: TableRef,
    /// Tables added while streaming (a pattern matched a new table).
    late: LateTables,
    /// Declared type → the type its values are converted by, for the types
    /// of captured columns at start. A Relation message names a domain
    /// column by the domain's OID and the decoder cannot ask the catalog,
    /// so the snapshot's resolution is handed in.
    value_oids: HashMap<u32, u32>,
    relations: HashMap<u32, RelationState>,
    tx: Option<Transaction>,
    /// End LSN of the last commit of this session (Debezium's
    /// `lsn_commit`, the first element of `source.sequence`).
    last_commit_end: Option<u64>,
    /// The session streams with pgoutput's `binary` option.
    binary: bool,
    /// Tables as the catalog had them when a Relation announced a new
    /// shape (`shape_refresh.rs`), taken by the next shape change.
    catalog: HashMap<TableRef, TableInfo>,
}

impl Shape {
    /// The shape the catalog gives, as version 1.
    fn of(info: &TableInfo) -> Shape {
        let schema = info.schema();
        Shape {
            columns: info
                .columns
                .iter()
                .map(|c| (c.name.clone(), c.type_oid, c.type_mod))
                .collect(),
            key: info.key.clone(),
            schema: Arc::new(schema),
        }
    }
}

impl Decoder {
    pub fn new(
        meta: Arc<SourceMeta>,
        captured: Vec<TableInfo>,
        signal_table: TableRef,
        late: LateTables,
    ) -> Self {
        let mut decoder = Decoder {
            meta,
            shapes: HashMap::new(),
            value_oids: HashMap::new(),
            captured: HashMap::new(),
            signal_table,
            late,
            relations: HashMap::new(),
            tx: None,
            last_commit_end: None,
            binary: false,
            catalog: HashMap::new(),
        };
        for info in captured {
            decoder.add_table(info);
        }
        decoder
    }

    fn add_table(&mut self, info: TableInfo) -> Arc<TableSchema> {
        let shape = Shape::of(&info);
        let schema = shape.schema.clone();
        self.value_oids.extend(
            info.columns
                .iter()
                .filter(|c| c.value_oid != c.type_oid)
                .map(|c| (c.type_oid, c.value_oid)),
        );
        self.shapes.insert(info.table.clone(), shape);
        self.captured.insert(info.table.clone(), info);
        schema
    }

    /// The captured table a Relation message in `data` announces with
    /// another shape than the last one: the stream reads it from the
    /// catalog and hands it in ([`Decoder::learn_catalog`]) first.
    pub fn relation_to_refresh(&self, data: &Bytes) -> Option<TableRef> {
        if data.first() != Some(&b'R') {
            return None;
        }
        let Ok(LogicalMessage::Relation(relation)) = pgoutput::decode(data.clone()) else {
            return None;
        };
        let table = TableRef::new(relation.namespace.clone(), relation.name.clone());
        let shape = self.shapes.get(&table)?;
        let same = shape.columns.len() == relation.columns.len()
            && shape
                .columns
                .iter()
                .zip(&relation.columns)
                .all(|((n, o, m), c)| *n == c.name && *o == c.type_oid && *m == c.type_modifier);
        (!same).then_some(table)
    }

    /// The catalog's view of a table whose shape changes next.
    pub fn learn_catalog(&mut self, info: TableInfo) {
        self.value_oids.extend(
            info.columns
                .iter()
                .filter(|c| c.value_oid != c.type_oid)
                .map(|c| (c.type_oid, c.value_oid)),
        );
        self.catalog.insert(info.table.clone(), info);
    }

    /// Start capturing a table added while streaming, if the watcher handed
    /// it in: its first shape is an item of the log, so the snapshot
    /// machinery knows the table (and its key) before its first event.
    fn capture_late(&mut self, table: &TableRef, out: &mut Vec<LogItem>) -> bool {
        if self.captured.contains_key(table) {
            return true;
        }
        let Some(info) = self.late.get(table) else {
            return false;
        };
        tracing::info!("capturing {table} from here on in the log");
        // A publication of all tables sent its Relation before the watcher
        // handed the table in (its rows so far come by the snapshot).
        for rel in self.relations.values_mut() {
            if *rel.table == *table && rel.kind == RelationKind::Ignored {
                rel.kind = RelationKind::Captured;
                rel.money_digits = info.money_digits;
            }
        }
        let schema = self.add_table(info);
        out.push(LogItem::Schema(schema));
        true
    }

    /// Whether the next session streams with pgoutput's `binary` option.
    pub fn set_binary(&mut self, binary: bool) {
        self.binary = binary;
    }

    pub fn binary(&self) -> bool {
        self.binary
    }

    pub fn in_transaction(&self) -> bool {
        self.tx.is_some()
    }

    /// Forget the session: a new connection resends relations and replays
    /// any transaction that was open.
    pub fn reset(&mut self) {
        self.relations.clear();
        self.tx = None;
        // The new session resends from the slot's confirmed position,
        // which may be before the last commit seen.
        self.last_commit_end = None;
    }

    /// Decode one XLogData payload that starts at `wal_start`.
    pub fn handle(
        &mut self,
        wal_start: u64,
        data: Bytes,
        out: &mut Vec<LogItem>,
    ) -> Result<(), DecoderError> {
        let message = pgoutput::decode(data).map_err(|source| DecoderError::Decode {
            lsn: crate::replication::format_lsn(wal_start),
            source,
        })?;
        match message {
            LogicalMessage::Begin {
                final_lsn,
                commit_ts,
                xid,
            } => {
                self.tx = Some(Transaction {
                    xid,
                    commit_lsn: final_lsn,
                    ts_ms: commit_ts / 1000 + PG_EPOCH_MS,
                    ts_us: commit_ts + PG_EPOCH_MS * 1000,
                });
            }
            LogicalMessage::Commit { end_lsn, .. } => {
                let tx_id = self.tx.take().map(|t| u64::from(t.xid));
                self.last_commit_end = Some(end_lsn);
                out.push(LogItem::Commit {
                    tx_id,
                    position: Position::from_u64(end_lsn),
                });
            }
            LogicalMessage::Relation(relation) => self.on_relation(relation, out)?,
            LogicalMessage::Insert { relation, new } => {
                let rel = self.relation(relation)?;
                if rel.kind == RelationKind::Ignored {
                    return Ok(());
                }
                let after = self.row(rel, &new, None)?;
                if rel.kind == RelationKind::Signal {
                    out.push(self.signal(&after, wal_start));
                    return Ok(());
                }
                let key = key_of(rel, &after);
                out.push(LogItem::Event(self.event(
                    rel,
                    Op::Create,
                    key,
                    None,
                    Some(after),
                    wal_start,
                )));
            }
            LogicalMessage::Update { relation, old, new } => {
                let rel = self.relation(relation)?;
                if rel.kind != RelationKind::Captured {
                    return Ok(());
                }
                let (old_row, old_is_full) = match &old {
                    Some(OldTuple::Full(t)) => (Some(self.row(rel, t, None)?), true),
                    Some(OldTuple::Key(t)) => (Some(self.row(rel, t, None)?), false),
                    None => (None, false),
                };
                // With the full old row at hand, unchanged TOAST values can
                // be filled in instead of marked.
                let fill = if old_is_full { old_row.as_ref() } else { None };
                let after = self.row(rel, &new, fill)?;
                let new_key = key_of(rel, &after);
                let old_key = old_row.as_ref().and_then(|r| key_of(rel, r));
                match (old_key, &new_key) {
                    (Some(old_key), Some(new_key)) if old_key.values != new_key.values => {
                        out.push(LogItem::Event(self.event(
                            rel,
                            Op::Delete,
                            Some(old_key),
                            old_row,
                            None,
                            wal_start,
                        )));
                        out.push(LogItem::Event(self.event(
                            rel,
                            Op::Create,
                            Some(new_key.clone()),
                            None,
                            Some(after),
                            wal_start,
                        )));
                    }
                    _ => {
                        let before = if old_is_full { old_row } else { None };
                        out.push(LogItem::Event(self.event(
                            rel,
                            Op::Update,
                            new_key,
                            before,
                            Some(after),
                            wal_start,
                        )));
                    }
                }
            }
            LogicalMessage::Delete { relation, old } => {
                let rel = self.relation(relation)?;
                if rel.kind != RelationKind::Captured {
                    return Ok(());
                }
                let tuple = match &old {
                    OldTuple::Full(t) | OldTuple::Key(t) => t,
                };
                let before = self.row(rel, tuple, None)?;
                let key = key_of(rel, &before);
                out.push(LogItem::Event(self.event(
                    rel,
                    Op::Delete,
                    key,
                    Some(before),
                    None,
                    wal_start,
                )));
            }
            LogicalMessage::Truncate { relations, .. } => {
                for oid in relations {
                    let rel = self.relation(oid)?;
                    if rel.kind == RelationKind::Captured {
                        out.push(LogItem::Event(self.event(
                            rel,
                            Op::Truncate,
                            None,
                            None,
                            None,
                            wal_start,
                        )));
                    }
                }
            }
            LogicalMessage::Message {
                transactional,
                lsn,
                prefix,
                content,
            } => {
                if prefix == HEARTBEAT_PREFIX {
                    // cdc's own heartbeat: a position to acknowledge when
                    // nothing is open, never an event.
                    if !transactional && self.tx.is_none() {
                        out.push(LogItem::Heartbeat(Position::from_u64(lsn)));
                    }
                    return Ok(());
                }
                if prefix == CAPTURE_PREFIX {
                    self.on_capture_marker(&content, lsn, out);
                    return Ok(());
                }
                if prefix == crate::partitions::PARTITIONS_PREFIX {
                    self.on_partitions_marker(&content, lsn, out);
                    return Ok(());
                }
                let source = self.source_info(lsn);
                out.push(LogItem::Event(Event::message(
                    source,
                    MessagePayload {
                        prefix,
                        content,
                        transactional,
                    },
                )));
            }
            LogicalMessage::Origin { .. } | LogicalMessage::Type { .. } => {}
        }
        Ok(())
    }

    fn on_relation(
        &mut self,
        relation: Relation,
        out: &mut Vec<LogItem>,
    ) -> Result<(), DecoderError> {
        let table = TableRef::new(
            if relation.namespace.is_empty() {
                "pg_catalog".to_string()
            } else {
                relation.namespace.clone()
            },
            relation.name.clone(),
        );
        if self.binary {
            // Before anything of the relation is taken in: the session
            // that follows receives it again.
            self.check_binary(&table, &relation)?;
        }
        let columns: Vec<String> = relation.columns.iter().map(|c| c.name.clone()).collect();
        let kind = if table == self.signal_table {
            RelationKind::Signal
        } else if self.capture_late(&table, out) {
            RelationKind::Captured
        } else {
            RelationKind::Ignored
        };
        let key_indexes = self.key_indexes(&table, &relation, &columns);
        if kind == RelationKind::Captured {
            self.follow_shape(&table, &relation, &columns, &key_indexes, out);
        }
        let key_columns: Vec<String> = key_indexes
            .iter()
            .filter_map(|&i| columns.get(i).cloned())
            .collect();
        let money_digits = self.captured.get(&table).map_or(2, |t| t.money_digits);
        let type_oids: Vec<u32> = relation
            .columns
            .iter()
            .map(|c| {
                self.value_oids
                    .get(&c.type_oid)
                    .copied()
                    .unwrap_or(c.type_oid)
            })
            .collect();
        self.relations.insert(
            relation.oid,
            RelationState {
                table: Arc::new(table),
                columns: Arc::from(columns),
                type_oids,
                type_mods: relation.columns.iter().map(|c| c.type_modifier).collect(),
                money_digits,
                key_columns: Arc::from(key_columns),
                key_indexes,
                kind,
            },
        );
        Ok(())
    }

    /// The key: the one known for the table (the catalog's at start) while
    /// the relation has its columns and its replica identity flags do not
    /// name another (a changed primary key); else the flags. A partitioned
    /// root is sent without flags, and `REPLICA IDENTITY FULL` flags every
    /// column, so neither replaces a known key.
    fn key_indexes(&self, table: &TableRef, relation: &Relation, columns: &[String]) -> Vec<usize> {
        let positions = |names: &[String]| -> Option<Vec<usize>> {
            names
                .iter()
                .map(|k| columns.iter().position(|c| c == k))
                .collect()
        };
        let known = self
            .shapes
            .get(table)
            .filter(|s| !s.key.is_empty())
            .and_then(|s| positions(&s.key));
        let flagged: Vec<usize> = if relation.replica_identity == pgoutput::ReplicaIdentity::Full {
            Vec::new()
        } else {
            relation
                .columns
                .iter()
                .enumerate()
                .filter(|(_, c)| c.is_key)
                .map(|(i, _)| i)
                .collect()
        };
        // The flags come in column order, the known key in key order: the
        // same columns are the same key (a composite key declared out of
        // column order is no change).
        let same_columns = |known: &[usize]| {
            let mut sorted = known.to_vec();
            sorted.sort_unstable();
            sorted == flagged
        };
        match known {
            Some(known) if flagged.is_empty() || same_columns(&known) => known,
            _ => flagged,
        }
    }

    /// Compare the relation's shape with the table's last one; a change is
    /// logged in one line and becomes a [`LogItem::Schema`] before the
    /// events of the new shape.
    fn follow_shape(
        &mut self,
        table: &TableRef,
        relation: &Relation,
        columns: &[String],
        key_indexes: &[usize],
        out: &mut Vec<LogItem>,
    ) {
        let typed: Vec<(String, u32, i32)> = relation
            .columns
            .iter()
            .map(|c| (c.name.clone(), c.type_oid, c.type_modifier))
            .collect();
        let key: Vec<String> = key_indexes
            .iter()
            .filter_map(|&i| columns.get(i).cloned())
            .collect();
        let catalog = self.catalog.remove(table);
        let Some(shape) = self.shapes.get_mut(table) else {
            return;
        };
        if shape.columns == typed && shape.key == key {
            return;
        }
        let schema = TableSchema {
            table: shape.schema.table.clone(),
            version: shape.schema.version + 1,
            columns: typed
                .iter()
                .map(|(name, oid, modifier)| {
                    // A column that kept its name and type keeps what the
                    // catalog said of it; a new one is known from the
                    // catalog as read at its Relation (shape_refresh.rs),
                    // else by its type only (nullable, no default).
                    let kept = shape
                        .columns
                        .iter()
                        .zip(&shape.schema.columns)
                        .find(|((n, o, m), _)| n == name && o == oid && m == modifier)
                        .map(|(_, c)| c.clone());
                    // Else the catalog's, when it still has the column so.
                    let fresh = catalog.as_ref().and_then(|info| {
                        info.columns
                            .iter()
                            .find(|c| {
                                c.name == *name && c.type_oid == *oid && c.type_mod == *modifier
                            })
                            .map(|c| info.column_schema(c))
                    });
                    kept.or(fresh).unwrap_or_else(|| {
                        let value_oid = self.value_oids.get(oid).copied().unwrap_or(*oid);
                        ColumnSchema::new(
                            name.clone(),
                            type_name(*oid, *modifier),
                            crate::kinds::column_kind(value_oid, *modifier, None),
                        )
                    })
                })
                .collect(),
            key: key.clone(),
        };
        tracing::info!(
            version = schema.version,
            "schema change: {}",
            shape.schema.describe_change(&schema)
        );
        let schema = Arc::new(schema);
        *shape = Shape {
            columns: typed,
            key,
            schema: schema.clone(),
        };
        out.push(LogItem::Schema(schema));
    }

    /// A table created later is captured from here: its rows written
    /// before come by a snapshot, asked for as a signal would (the id,
    /// from the marker's position, is the same when the log is replayed).
    fn on_capture_marker(&mut self, content: &[u8], lsn: u64, out: &mut Vec<LogItem>) {
        let Some(table) = crate::late_tables::parse_marker(content) else {
            tracing::warn!(
                "capture marker at {} ignored: unreadable",
                crate::replication::format_lsn(lsn)
            );
            return;
        };
        if !self.capture_late(&table, out) {
            // Captured by another run, or refused: nothing to snapshot here.
            return;
        }
        self.queue_snapshot(NEW_TABLE_SIGNAL, table, None, lsn, out);
    }

    /// A partition change the log has no event for (see `partitions`): a
    /// resync of the root, or a snapshot of one partition's rows through it.
    fn on_partitions_marker(&mut self, content: &[u8], lsn: u64, out: &mut Vec<LogItem>) {
        use crate::partitions::Marker;
        match Marker::parse(content) {
            None => tracing::warn!(
                "partitions marker at {} ignored: unreadable",
                crate::replication::format_lsn(lsn)
            ),
            Some(Marker::Resync { table, reason }) => out.push(LogItem::Resync {
                table: Arc::new(table),
                reason,
            }),
            Some(Marker::Leaf { table, leaf }) => {
                tracing::info!(
                    "a partition of {table} appeared with rows (attached, or filled through \
                     {table}): snapshot of its rows queued"
                );
                // An oid the catalog gave, not user text.
                let filter = format!("tableoid = {leaf}::oid");
                self.queue_snapshot("cdc-partition", table, Some(filter), lsn, out);
            }
        }
    }

    /// An `execute-snapshot` of `table` asked for by a marker of the log,
    /// encoded as the CLI encodes one; its id comes from the marker's
    /// position, so a replay of the log is recognised as applied.
    fn queue_snapshot(
        &self,
        id_prefix: &str,
        table: TableRef,
        filter: Option<String>,
        lsn: u64,
        out: &mut Vec<LogItem>,
    ) {
        let at = crate::replication::format_lsn(lsn);
        let conditions = filter
            .map(|filter| cdc_signal::AdditionalCondition {
                table: table.clone(),
                filter,
            })
            .into_iter()
            .collect();
        match cdc_signal::Command::execute_snapshot(vec![table], conditions) {
            Ok(command) => out.push(LogItem::Signal {
                row: command.to_row(format!("{id_prefix}-{at}")),
                source: self.source_info(lsn),
            }),
            Err(err) => {
                tracing::warn!("snapshot asked for by the marker at {at} not queued: {err}")
            }
        }
    }

    fn relation(&self, oid: u32) -> Result<&RelationState, DecoderError> {
        self.relations
            .get(&oid)
            .ok_or(DecoderError::UnknownRelation(oid))
    }

    fn row(
        &self,
        rel: &RelationState,
        tuple: &TupleData,
        fill: Option<&Row>,
    ) -> Result<Row, DecoderError> {
        let mut values = Vec::with_capacity(tuple.0.len());
        for (i, v) in tuple.0.iter().enumerate() {
            let type_oid = rel.type_oids.get(i).copied().unwrap_or(0);
            if matches!(v, TupleValue::UnchangedToast) {
                if let Some(value) = fill.and_then(|r| r.values.get(i)) {
                    values.push(value.clone());
                    continue;
                }
            }
            let column = || rel.columns.get(i).map(String::as_str).unwrap_or("?");
            let type_mod = rel.type_mods.get(i).copied().unwrap_or(-1);
            let value = match tuple_value_to_value(type_oid, v, rel.money_digits) {
                // As the chunk rows' values: a time's precision from the column.
                Ok(value) => value.with_type_mod(type_mod),
                // Binary has no lossless fallback; its text has.
                Err(err) if matches!(v, TupleValue::Binary(_)) => {
                    return Err(DecoderError::NeedsText(format!(
                        "a binary value of {}.{} did not decode: {err}",
                        rel.table,
                        column()
                    )));
                }
                Err(err) => {
                    tracing::warn!(table = %rel.table, column = column(), "value kept as text: {err}");
                    match v {
                        TupleValue::Text(b) => Value::Text(String::from_utf8_lossy(b).into_owned()),
                        _ => Value::Null,
                    }
                }
            };
            values.push(value);
        }
        Ok(Row::new(rel.columns.clone(), values))
    }

    fn source_info(&self, change_lsn: u64) -> SourceInfo {
        let (commit_lsn, xid, ts_ms, ts_us) = match &self.tx {
            Some(t) => (t.commit_lsn, Some(u64::from(t.xid)), t.ts_ms, t.ts_us),
            None => (change_lsn, None, 0, 0),
        };
        // Commit LSN first: events order by transaction, then within it.
        let mut position = Vec::with_capacity(16);
        position.extend_from_slice(&commit_lsn.to_be_bytes());
        position.extend_from_slice(&change_lsn.to_be_bytes());
        SourceInfo {
            session: None,
            meta: self.meta.clone(),
            position: Position::from_bytes(position),
            offset: Some(change_lsn),
            tx_id: xid,
            ts_ms,
            ts_us,
            last_commit: self.last_commit_end,
            snapshot: SnapshotFlag::No,
        }
    }

    fn event(
        &self,
        rel: &RelationState,
        op: Op,
        key: Option<Row>,
        before: Option<Row>,
        after: Option<Row>,
        change_lsn: u64,
    ) -> Event {
        Event {
            update: None,
            schema: None,
            op,
            table: Some(rel.table.clone()),
            key,
            before,
            after,
            source: self.source_info(change_lsn),
            message: None,
            transaction: None,
        }
    }

    fn signal(&self, row: &Row, change_lsn: u64) -> LogItem {
        let text = |name: &str| match row.get(name) {
            Some(Value::Text(s) | Value::Json(s) | Value::Typed(_, s)) => Some(s.clone()),
            _ => None,
        };
        LogItem::Signal {
            row: SignalRow {
                id: text("id").unwrap_or_default(),
                kind: text("type").unwrap_or_default(),
                data: text("data"),
            },
            source: self.source_info(change_lsn),
        }
    }
}

fn key_of(rel: &RelationState, row: &Row) -> Option<Row> {
    if rel.key_indexes.is_empty() {
        return None;
    }
    let values = rel
        .key_indexes
        .iter()
        .map(|&i| row.values.get(i).cloned().unwrap_or(Value::Null))
        .collect();
    Some(Row::new(rel.key_columns.clone(), values))
}

#[path = "decoder_binary.rs"]
mod binary_mode;

#[cfg(test)]
#[path = "decoder_tests.rs"]
mod tests;
