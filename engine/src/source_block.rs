//! What only the source knows how to render about an event: the members of
//! Debezium's `source` block that differ per connector, their Connect
//! schema, and the id of a transaction in transaction metadata.
//!
//! The engine writes the members every connector shares (`version`,
//! `connector`, `name`, `ts_ms`, `snapshot`, `db`) and cdc's `position`;
//! between them go the source's own, in its connector's order (PostgreSQL:
//! `sequence`, `ts_us`, `ts_ns`, `schema`, `table`, `txId`, `lsn`, …;
//! MongoDB: `sequence`, `ts_us`, `ts_ns`, `collection`, `ord`, `lsid`, …).
//! A source hands its block over in its [`crate::SourceMeta`], so the
//! envelope writer, the Connect schemas and the transaction metadata stage
//! never name a source (docs/architecture.md, "Source-neutral engine").

use crate::envelope::{write_display, write_str};
use crate::event::{Event, Position, SourceInfo};

/// The envelope's shape: Debezium's two families.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvelopeLayout {
    /// Its relational connectors: `before` and `after` as objects of
    /// columns, `source`, `transaction`, `op`, `ts_ms`, `ts_us`, `ts_ns`.
    Rows,
    /// Its MongoDB connector: `before` and `after` as JSON strings holding
    /// the document, `updateDescription`, `source`, `op`, `ts_ms`,
    /// `transaction`.
    Documents,
}

/// The one column of a document row the source rendered whole: the
/// documents layout writes its `Value::Json` text as the string, byte for
/// byte (a BSON field name cannot hold the NUL it starts with).
pub const DOCUMENT_COLUMN: &str = "\0document";

pub trait SourceBlock: Send + Sync {
    /// The envelope the source's events are written in.
    fn layout(&self) -> EnvelopeLayout {
        EnvelopeLayout::Rows
    }

    /// The event's `db` when it is not the source's one (a deployment of
    /// many databases); `None`: [`crate::SourceMeta::db`].
    fn db<'a>(&self, _event: &'a Event) -> Option<&'a str> {
        None
    }

    /// The members after `db`, each led by a comma (`,"name":value`), in
    /// the connector's order. On every event's path: no allocation.
    fn write_members(&self, event: &Event, out: &mut Vec<u8>);

    /// The Connect schema of each of those members, each led by a comma
    /// (`,{"type":…,"field":"name"}`), in the same order.
    fn write_member_schemas(&self, out: &mut Vec<u8>);

    /// The Connect name of the whole struct
    /// (`io.debezium.connector.postgresql.Source`).
    fn schema_name(&self) -> &'static str;

    /// Debezium's id of the transaction `source` belongs to, as its data
    /// events and BEGIN record carry it; `None` outside a transaction.
    fn transaction_id(&self, source: &SourceInfo) -> Option<String>;

    /// The id of the END record of the transaction opened at `opened`,
    /// which committed at `commit` (`None`: its commit never came, the
    /// record closes it anyway).
    fn closing_transaction_id(&self, opened: &SourceInfo, commit: Option<&Position>) -> String;
}

/// The `field` names of `block`'s member schemas, in order (`None`: they
/// are not comma-led JSON objects), for a block's own tests.
pub fn member_schema_fields(block: &dyn SourceBlock) -> Option<Vec<String>> {
    let mut out = b"[{}".to_vec();
    block.write_member_schemas(&mut out);
    out.push(b']');
    let fields: Vec<serde_json::Value> = serde_json::from_slice(&out).ok()?;
    fields[1..]
        .iter()
        .map(|f| f["field"].as_str().map(str::to_owned))
        .collect()
}

/// Writes `,"ts_us":…,"ts_ns":…`, which every Debezium connector has after
/// `sequence`.
pub fn write_ts_members(source: &SourceInfo, out: &mut Vec<u8>) {
    out.extend_from_slice(b",\"ts_us\":");
    write_display(source.ts_us, out);
    out.extend_from_slice(b",\"ts_ns\":");
    write_display(source.ts_us.saturating_mul(1000), out);
}

/// The Connect schemas of `sequence`, `ts_us` and `ts_ns`.
pub const SEQUENCE_AND_TS_SCHEMAS: &str = concat!(
    ",{\"type\":\"string\",\"optional\":true,\"field\":\"sequence\"}",
    ",{\"type\":\"int64\",\"optional\":true,\"field\":\"ts_us\"}",
    ",{\"type\":\"int64\",\"optional\":true,\"field\":\"ts_ns\"}"
);

/// A block with nothing of a connector's own beyond `ts_us`, `ts_ns` and
/// the table's `schema` and `table`: for tests of the engine and sinks,
/// which need events but no source.
#[derive(Debug, Default)]
pub struct PlainBlock;

pub static PLAIN_BLOCK: PlainBlock = PlainBlock;

impl SourceBlock for PlainBlock {
    fn write_members(&self, event: &Event, out: &mut Vec<u8>) {
        write_ts_members(&event.source, out);
        if let Some(table) = &event.table {
            out.extend_from_slice(b",\"schema\":");
            write_str(&table.schema, out);
            out.extend_from_slice(b",\"table\":");
            write_str(&table.name, out);
        }
        out.extend_from_slice(b",\"txId\":");
        match event.source.tx_id {
            Some(tx) => write_display(tx, out),
            None => out.extend_from_slice(b"null"),
        }
    }

    fn write_member_schemas(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(
            concat!(
                ",{\"type\":\"int64\",\"optional\":true,\"field\":\"ts_us\"}",
                ",{\"type\":\"int64\",\"optional\":true,\"field\":\"ts_ns\"}",
                ",{\"type\":\"string\",\"optional\":true,\"field\":\"schema\"}",
                ",{\"type\":\"string\",\"optional\":true,\"field\":\"table\"}",
                ",{\"type\":\"int64\",\"optional\":true,\"field\":\"txId\"}"
            )
            .as_bytes(),
        );
    }

    fn schema_name(&self) -> &'static str {
        "cdc.Source"
    }

    fn transaction_id(&self, source: &SourceInfo) -> Option<String> {
        source.tx_id.map(|tx| tx.to_string())
    }

    fn closing_transaction_id(&self, opened: &SourceInfo, _commit: Option<&Position>) -> String {
        opened.tx_id.unwrap_or_default().to_string()
    }
}
