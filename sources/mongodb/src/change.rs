//! Change-stream events (MongoDB's "Change Events" reference) as typed
//! changes, with the document, key and update forms Debezium 3.6.3 writes.
//!
//! Debezium maps `insert` to `c`, `update` and `replace` to `u`, `delete` to
//! `d` (`MongoDbChangeRecordEmitter.OPERATION_LITERALS`) and emits nothing
//! for the other operation types; those come back here as their own
//! [`ChangeKind`] variants for the source to act on (a dropped collection, a
//! closed stream), and an operation type MongoDB may add later is a
//! [`ChangeError::UnknownOperationType`].
//!
//! What goes into each row change follows
//! `MongoDbCollectionSchema.valueFromDocumentChangeStream`: `after` from
//! `fullDocument` (inserts, and updates/replaces that carry it), `before`
//! from `fullDocumentBeforeChange` (updates, replaces and deletes with
//! pre-images), `updateDescription` for updates. `null` documents count as
//! absent, as the driver reads them.

use bson::{Bson, Document};
use cdc_engine::{Op, Position};
use thiserror::Error;

use crate::extjson;
use crate::resume::{self, ClusterTime, ResumeTokenError};

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ChangeError {
    #[error("change event has no {0}")]
    MissingField(&'static str),
    #[error("change event's {field} is {found:?}, not {expected}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
        found: bson::spec::ElementType,
    },
    #[error("unknown change event operationType {0:?}")]
    UnknownOperationType(String),
    #[error("change event's resume token: {0}")]
    Token(#[from] ResumeTokenError),
}

/// One change-stream event.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// `_id`, to resume after this event.
    pub token: Document,
    /// The token's [`Position`] (byte order is stream order).
    pub position: Position,
    pub cluster_time: ClusterTime,
    /// `wallTime` (MongoDB 6.0+), milliseconds since the Unix epoch.
    pub wall_time_ms: Option<i64>,
    pub kind: ChangeKind,
}

impl Change {
    /// Debezium's `source.ts_ms`: the wall time, or without one the cluster
    /// time's seconds (`SourceInfo.timestamp()`).
    pub fn ts_ms(&self) -> i64 {
        match self.wall_time_ms {
            Some(ms) if ms != 0 => ms,
            _ => i64::from(self.cluster_time.seconds) * 1000,
        }
    }
}

impl ChangeKind {
    /// The event's `operationType`.
    pub fn operation_type(&self) -> &'static str {
        match self {
            ChangeKind::Row(row) => match row.op {
                RowOp::Insert => "insert",
                RowOp::Update => "update",
                RowOp::Replace => "replace",
                RowOp::Delete => "delete",
            },
            ChangeKind::Ddl(ddl) => ddl.kind.operation_type(),
            ChangeKind::Invalidate => "invalidate",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ChangeKind {
    /// `insert`, `update`, `replace`, `delete`.
    Row(Box<RowChange>),
    /// A collection or database changed shape or went away.
    Ddl(DdlChange),
    /// The stream closed (its collection or database was dropped or renamed).
    Invalidate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowOp {
    Insert,
    Update,
    Replace,
    Delete,
}

impl RowOp {
    /// Debezium's operation (`replace` is an update).
    pub fn op(self) -> Op {
        match self {
            RowOp::Insert => Op::Create,
            RowOp::Update | RowOp::Replace => Op::Update,
            RowOp::Delete => Op::Delete,
        }
    }
}

/// A document changed.
#[derive(Debug, Clone, PartialEq)]
pub struct RowChange {
    pub op: RowOp,
    pub db: String,
    pub collection: String,
    /// `documentKey`: `_id`, and the shard key on a sharded collection.
    pub document_key: Document,
    /// Debezium's key `id`: the document key's `_id` as JSON text.
    pub key: String,
    /// Debezium's `after`: `fullDocument` as JSON text.
    pub after: Option<String>,
    /// Debezium's `before`: `fullDocumentBeforeChange` as JSON text.
    pub before: Option<String>,
    pub update: Option<UpdateDescription>,
    /// The session and transaction number of a change made in a
    /// transaction (Debezium needs both to set `lsid` and `txnNumber`).
    pub transaction: Option<SessionTransaction>,
}

/// `updateDescription` as Debezium writes it.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateDescription {
    /// `updatedFields` as JSON text (`BsonDocument.toJson()`); `None` when
    /// the event has none.
    pub updated_fields: Option<String>,
    /// `removedFields`; Debezium writes `null` for an empty list.
    pub removed_fields: Vec<String>,
    /// `truncatedArrays` as (`field`, `newSize`); Debezium writes `null` for
    /// an empty list and names the size `size`.
    pub truncated_arrays: Vec<(String, i32)>,
    /// `disambiguatedPaths` (MongoDB 6.1+ with expanded events), which
    /// Debezium does not write.
    pub disambiguated_paths: Option<Document>,
}

/// `lsid` and `txnNumber`.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionTransaction {
    /// Debezium's `source.lsid`: the session id document as JSON text in
    /// the compact settings (`MongoUtils.getChangeStreamSessionTransactionId`).
    pub lsid: String,
    pub txn_number: i64,
}

impl SessionTransaction {
    /// Debezium's transaction id: `<lsid>:<txnNumber>`
    /// (`MongoDbEventMetadataProvider.getTransactionId`).
    pub fn transaction_id(&self) -> String {
        format!("{}:{}", self.lsid, self.txn_number)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DdlKind {
    Create,
    CreateIndexes,
    DropIndexes,
    Modify,
    ShardCollection,
    ReshardCollection,
    RefineCollectionShardKey,
    Rename,
    Drop,
    DropDatabase,
}

impl DdlKind {
    /// The event's `operationType`.
    pub fn operation_type(self) -> &'static str {
        match self {
            DdlKind::Create => "create",
            DdlKind::CreateIndexes => "createIndexes",
            DdlKind::DropIndexes => "dropIndexes",
            DdlKind::Modify => "modify",
            DdlKind::ShardCollection => "shardCollection",
            DdlKind::ReshardCollection => "reshardCollection",
            DdlKind::RefineCollectionShardKey => "refineCollectionShardKey",
            DdlKind::Rename => "rename",
            DdlKind::Drop => "drop",
            DdlKind::DropDatabase => "dropDatabase",
        }
    }

    const ALL: [DdlKind; 10] = [
        DdlKind::Create,
        DdlKind::CreateIndexes,
        DdlKind::DropIndexes,
        DdlKind::Modify,
        DdlKind::ShardCollection,
        DdlKind::ReshardCollection,
        DdlKind::RefineCollectionShardKey,
        DdlKind::Rename,
        DdlKind::Drop,
        DdlKind::DropDatabase,
    ];
}

/// A DDL event. `create`, `createIndexes`, `dropIndexes`, `modify` and the
/// sharding events need `showExpandedEvents`.
#[derive(Debug, Clone, PartialEq)]
pub struct DdlChange {
    pub kind: DdlKind,
    pub db: String,
    /// `None` for `dropDatabase`.
    pub collection: Option<String>,
    /// A rename's target (`to`).
    pub to: Option<(String, String)>,
    /// `operationDescription`, when the event has one.
    pub description: Option<Document>,
}

/// Reads one change-stream event.
pub fn parse_change(event: &Document) -> Result<Change, ChangeError> {
    let token = document(event, "_id")?.ok_or(ChangeError::MissingField("_id"))?;
    let position = resume::position_of(token)?;
    let cluster_time = match event.get("clusterTime") {
        Some(Bson::Timestamp(ts)) => ClusterTime {
            seconds: ts.time,
            increment: ts.increment,
        },
        Some(other) => return Err(wrong("clusterTime", "a timestamp", other)),
        None => return Err(ChangeError::MissingField("clusterTime")),
    };
    let wall_time_ms = match event.get("wallTime") {
        None | Some(Bson::Null) => None,
        Some(Bson::DateTime(dt)) => Some(dt.timestamp_millis()),
        Some(other) => return Err(wrong("wallTime", "a date", other)),
    };
    let op = string(event, "operationType")?.ok_or(ChangeError::MissingField("operationType"))?;
    let row = |op| row_change(event, op).map(|r| ChangeKind::Row(Box::new(r)));
    let ddl = |kind| ddl_change(event, kind).map(ChangeKind::Ddl);
    let kind = match op {
        "insert" => row(RowOp::Insert)?,
        "update" => row(RowOp::Update)?,
        "replace" => row(RowOp::Replace)?,
        "delete" => row(RowOp::Delete)?,
        "invalidate" => ChangeKind::Invalidate,
        other => match DdlKind::ALL
            .into_iter()
            .find(|k| k.operation_type() == other)
        {
            Some(kind) => ddl(kind)?,
            None => return Err(ChangeError::UnknownOperationType(other.to_string())),
        },
    };
    Ok(Change {
        token: token.clone(),
        position,
        cluster_time,
        wall_time_ms,
        kind,
    })
}

fn row_change(event: &Document, op: RowOp) -> Result<RowChange, ChangeError> {
    let (db, collection) = namespace(event, "ns")?;
    let collection = collection.ok_or(ChangeError::MissingField("ns.coll"))?;
    let document_key = document(event, "documentKey")?
        .ok_or(ChangeError::MissingField("documentKey"))?
        .clone();
    let full = document(event, "fullDocument")?;
    let before = document(event, "fullDocumentBeforeChange")?;
    // The documents Debezium's MongoDbCollectionSchema takes per operation.
    let (after, before, update) = match op {
        RowOp::Insert => (full, None, None),
        RowOp::Update | RowOp::Replace => (full, before, update_description(event)?),
        RowOp::Delete => (None, before, None),
    };
    Ok(RowChange {
        op,
        db,
        collection,
        key: extjson::id_json(&document_key),
        document_key,
        after: after.map(extjson::document_json),
        before: before.map(extjson::document_json),
        update,
        transaction: session_transaction(event)?,
    })
}

fn update_description(event: &Document) -> Result<Option<UpdateDescription>, ChangeError> {
    let Some(update) = document(event, "updateDescription")? else {
        return Ok(None);
    };
    let strings = |field: &'static str| -> Result<Vec<String>, ChangeError> {
        match update.get(field) {
            None | Some(Bson::Null) => Ok(Vec::new()),
            Some(Bson::Array(items)) => items
                .iter()
                .map(|item| match item {
                    Bson::String(s) => Ok(s.clone()),
                    other => Err(wrong(field, "an array of strings", other)),
                })
                .collect(),
            Some(other) => Err(wrong(field, "an array", other)),
        }
    };
    let truncated_arrays = match update.get("truncatedArrays") {
        None | Some(Bson::Null) => Vec::new(),
        Some(Bson::Array(items)) => items
            .iter()
            .map(|item| {
                let entry = item
                    .as_document()
                    .ok_or_else(|| wrong("truncatedArrays", "an array of documents", item))?;
                let field = string(entry, "field")?
                    .ok_or(ChangeError::MissingField("truncatedArrays.field"))?;
                let size = match entry.get("newSize") {
                    Some(Bson::Int32(n)) => *n,
                    Some(other) => return Err(wrong("truncatedArrays.newSize", "an int32", other)),
                    None => return Err(ChangeError::MissingField("truncatedArrays.newSize")),
                };
                Ok((field.to_string(), size))
            })
            .collect::<Result<_, _>>()?,
        Some(other) => return Err(wrong("truncatedArrays", "an array", other)),
    };
    Ok(Some(UpdateDescription {
        updated_fields: document(update, "updatedFields")?.map(extjson::updated_fields_json),
        removed_fields: strings("removedFields")?,
        truncated_arrays,
        disambiguated_paths: document(update, "disambiguatedPaths")?.cloned(),
    }))
}

/// Both `lsid` and `txnNumber`, or neither (Debezium sets its session
/// transaction only when it has both).
fn session_transaction(event: &Document) -> Result<Option<SessionTransaction>, ChangeError> {
    let lsid = document(event, "lsid")?;
    let txn_number = match event.get("txnNumber") {
        None | Some(Bson::Null) => None,
        Some(Bson::Int64(n)) => Some(*n),
        Some(other) => return Err(wrong("txnNumber", "an int64", other)),
    };
    Ok(match (lsid, txn_number) {
        (Some(lsid), Some(txn_number)) => Some(SessionTransaction {
            lsid: extjson::document_json(lsid),
            txn_number,
        }),
        _ => None,
    })
}

fn ddl_change(event: &Document, kind: DdlKind) -> Result<DdlChange, ChangeError> {
    let (db, collection) = namespace(event, "ns")?;
    if kind != DdlKind::DropDatabase && collection.is_none() {
        return Err(ChangeError::MissingField("ns.coll"));
    }
    let to = match kind {
        DdlKind::Rename => {
            let (db, coll) = namespace(event, "to")?;
            Some((db, coll.ok_or(ChangeError::MissingField("to.coll"))?))
        }
        _ => None,
    };
    Ok(DdlChange {
        kind,
        db,
        collection,
        to,
        description: document(event, "operationDescription")?.cloned(),
    })
}

/// `{db, coll}` (`coll` absent for database-wide events).
fn namespace(
    event: &Document,
    field: &'static str,
) -> Result<(String, Option<String>), ChangeError> {
    let ns = document(event, field)?.ok_or(ChangeError::MissingField(field))?;
    let db = string(ns, "db")?.ok_or(ChangeError::MissingField("ns.db"))?;
    Ok((db.to_string(), string(ns, "coll")?.map(str::to_string)))
}

/// A document member; `None` when absent or null.
fn document<'a>(
    doc: &'a Document,
    field: &'static str,
) -> Result<Option<&'a Document>, ChangeError> {
    match doc.get(field) {
        None | Some(Bson::Null) => Ok(None),
        Some(Bson::Document(d)) => Ok(Some(d)),
        Some(other) => Err(wrong(field, "a document", other)),
    }
}

fn string<'a>(doc: &'a Document, field: &'static str) -> Result<Option<&'a str>, ChangeError> {
    match doc.get(field) {
        None | Some(Bson::Null) => Ok(None),
        Some(Bson::String(s)) => Ok(Some(s)),
        Some(other) => Err(wrong(field, "a string", other)),
    }
}

fn wrong(field: &'static str, expected: &'static str, found: &Bson) -> ChangeError {
    ChangeError::WrongType {
        field,
        expected,
        found: found.element_type(),
    }
}

#[cfg(test)]
#[path = "change_tests.rs"]
mod tests;
