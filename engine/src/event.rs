//! The event model: one row change (or truncate, or logical message) with the
//! source position it came from.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use cdc_signal::TableRef;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::schema::TableSchema;
use crate::source_block::SourceBlock;
use crate::value::Row;

/// An opaque, totally ordered source position: an LSN for PostgreSQL, a
/// resume token for MongoDB. Sources encode it so that byte order is stream
/// order; the engine only compares, stores and hands it back.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position(Bytes);

impl Position {
    pub fn from_bytes(bytes: impl Into<Bytes>) -> Self {
        Position(bytes.into())
    }

    /// Big-endian, so byte order equals numeric order.
    pub fn from_u64(value: u64) -> Self {
        Position(Bytes::copy_from_slice(&value.to_be_bytes()))
    }

    /// The value of a position made by [`Position::from_u64`].
    pub fn as_u64(&self) -> Option<u64> {
        let bytes: [u8; 8] = self.0.as_ref().try_into().ok()?;
        Some(u64::from_be_bytes(bytes))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The value back, for positions made by [`Position::from_u64`].
    pub fn to_u64(&self) -> Option<u64> {
        let bytes: [u8; 8] = self.0.as_ref().try_into().ok()?;
        Some(u64::from_be_bytes(bytes))
    }

    pub fn to_hex(&self) -> String {
        let mut out = Vec::with_capacity(self.0.len() * 2);
        self.write_hex(&mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    /// Append the lower-case hex form to `out` (on every event's path).
    pub fn write_hex(&self, out: &mut Vec<u8>) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        out.reserve(self.0.len() * 2);
        for &b in self.0.iter() {
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0x0f)]);
        }
    }

    pub fn from_hex(hex: &str) -> Option<Self> {
        if hex.len() % 2 != 0 {
            return None;
        }
        let bytes = (0..hex.len())
            .step_by(2)
            .map(|i| {
                hex.get(i..i + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            })
            .collect::<Option<Vec<u8>>>()?;
        Some(Position(Bytes::from(bytes)))
    }
}

impl fmt::Debug for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Position({})", self.to_hex())
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for Position {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Position {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let hex = String::deserialize(deserializer)?;
        Position::from_hex(&hex).ok_or_else(|| serde::de::Error::custom("invalid position hex"))
    }
}

/// Debezium's `op` codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Create,
    Update,
    Delete,
    /// A row read by a snapshot.
    Read,
    Truncate,
    /// A logical decoding message (`pg_logical_emit_message`).
    Message,
    /// A transaction's BEGIN or END record (Debezium's transaction
    /// metadata, `<prefix>.transaction`).
    Transaction,
    /// A heartbeat record (Debezium's `__debezium-heartbeat.<prefix>`).
    Heartbeat,
}

impl Op {
    pub fn code(self) -> &'static str {
        match self {
            Op::Create => "c",
            Op::Update => "u",
            Op::Delete => "d",
            Op::Read => "r",
            Op::Truncate => "t",
            Op::Message => "m",
            Op::Transaction => "transaction",
            Op::Heartbeat => "heartbeat",
        }
    }
}

/// Whether an event came from a snapshot (Debezium's `source.snapshot`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotFlag {
    No,
    Incremental,
}

impl SnapshotFlag {
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotFlag::No => "false",
            SnapshotFlag::Incremental => "incremental",
        }
    }
}

/// What every event of one source shares.
#[derive(Clone)]
pub struct SourceMeta {
    /// `postgresql`, `mongodb`.
    pub connector: &'static str,
    /// The logical name of this capture (Debezium's `topic.prefix`).
    pub name: String,
    pub db: String,
    /// Renders what only this kind of source knows (`source_block.rs`).
    pub block: &'static dyn SourceBlock,
}

impl fmt::Debug for SourceMeta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceMeta")
            .field("connector", &self.connector)
            .field("name", &self.name)
            .field("db", &self.db)
            .field("block", &self.block.schema_name())
            .finish()
    }
}

impl PartialEq for SourceMeta {
    fn eq(&self, other: &Self) -> bool {
        self.connector == other.connector
            && self.name == other.name
            && self.db == other.db
            && self.block.schema_name() == other.block.schema_name()
    }
}

impl Eq for SourceMeta {}

/// Where an event came from.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceInfo {
    pub meta: Arc<SourceMeta>,
    /// Ordering and acknowledgement position of the event's transaction.
    pub position: Position,
    /// The change's place in the source's log, in the source's own
    /// numbering, for its [`SourceBlock`] to render (PostgreSQL: the
    /// change's LSN, Debezium's `lsn`).
    pub offset: Option<u64>,
    pub tx_id: Option<u64>,
    /// Commit time of the transaction, milliseconds since the Unix epoch.
    pub ts_ms: i64,
    /// The same in microseconds (Debezium's `source.ts_us`; `ts_ns` is
    /// written from it). A source with only milliseconds gives `ts_ms × 1000`.
    pub ts_us: i64,
    /// The end of the last commit the log reader passed before this
    /// event's transaction, when known in this session, in the same
    /// numbering as `offset` (PostgreSQL: with `offset`, Debezium's
    /// `source.sequence`).
    pub last_commit: Option<u64>,
    /// The session whose transaction `tx_id` numbers, for a source that
    /// numbers transactions per session (MongoDB: the `lsid`, as Debezium
    /// writes it); `None` where `tx_id` alone is unique.
    pub session: Option<Arc<str>>,
    pub snapshot: SnapshotFlag,
}

impl SourceInfo {
    /// At `position`, with nothing else known (no LSN, transaction or
    /// time): the base of the struct update syntax.
    pub fn new(meta: Arc<SourceMeta>, position: Position) -> Self {
        SourceInfo {
            meta,
            position,
            offset: None,
            tx_id: None,
            ts_ms: 0,
            ts_us: 0,
            last_commit: None,
            session: None,
            snapshot: SnapshotFlag::No,
        }
    }
}

/// A logical decoding message's payload.
#[derive(Debug, Clone, PartialEq)]
pub struct LogicalMessage {
    pub prefix: String,
    pub content: Bytes,
    pub transactional: bool,
}

/// Debezium's transaction metadata on an event (`docs/architecture.md`,
/// "Transaction metadata").
#[derive(Debug, Clone, PartialEq)]
pub enum TransactionInfo {
    /// The `transaction` block of a data event: `id` as the source's
    /// [`SourceBlock::transaction_id`] writes it.
    Order {
        id: String,
        total_order: u64,
        data_collection_order: u64,
    },
    /// The value of a BEGIN or END record (`Op::Transaction`).
    Boundary {
        end: bool,
        id: String,
        /// `None` on BEGIN.
        event_count: Option<u64>,
        /// On END: per table (`schema.table`), its events, by name.
        data_collections: Vec<(String, u64)>,
        /// The commit time.
        ts_ms: i64,
    },
}

/// One change event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub op: Op,
    /// `None` only for logical messages, which belong to no table.
    pub table: Option<Arc<TableRef>>,
    /// The primary-key columns, for row events of tables that have one.
    pub key: Option<Row>,
    pub before: Option<Row>,
    pub after: Option<Row>,
    pub source: SourceInfo,
    pub message: Option<LogicalMessage>,
    /// Set only with transaction metadata on.
    pub transaction: Option<Box<TransactionInfo>>,
    /// The shape of the table the row has, when Connect schemas are
    /// written (set by [`crate::schema::SchemaStamp`]).
    pub schema: Option<Arc<TableSchema>>,
    /// What an update changed, from a source that says (MongoDB's
    /// `updateDescription`); written by the documents layout only.
    pub update: Option<Box<UpdateDescription>>,
}

impl Event {
    /// A logical message, which belongs to no table and carries no row.
    pub fn message(source: SourceInfo, message: LogicalMessage) -> Event {
        Event {
            op: Op::Message,
            table: None,
            key: None,
            before: None,
            after: None,
            source,
            message: Some(message),
            transaction: None,
            schema: None,
            update: None,
        }
    }
}

/// The fields an update set and removed, as a document source describes
/// them (Debezium's MongoDB `updateDescription`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateDescription {
    /// The fields set and their new values, as one JSON document in the
    /// source's rendering (`None`: none set).
    pub updated_fields: Option<String>,
    /// Dotted paths of the fields removed (`None`: none).
    pub removed_fields: Option<Vec<String>>,
    /// Arrays the update truncated: their path and new size (`None`: none).
    pub truncated_arrays: Option<Vec<(String, i32)>>,
}
