//! The members of Debezium's MongoDB `source` block after `db`
//! (`MongoDbSourceInfoStructMaker`, struct `io.debezium.connector.mongo.Source`),
//! their Connect schema, and Debezium's MongoDB transaction ids.
//!
//! Debezium 3.6.3 writes, after the common `version`, `connector`, `name`,
//! `ts_ms`, `snapshot`, `db`, `sequence` (always null: its MongoDB
//! `SourceInfo` keeps `AbstractSourceInfo.sequence()`), `ts_us`, `ts_ns`:
//! `collection` (string, required), `ord` (int32, required: the cluster
//! time's increment), `lsid` (optional string), `txnNumber` (optional int64)
//! and `wallTime` (optional int64, null unless the change event had one).

use std::sync::Arc;

use cdc_engine::envelope::{write_display, write_str};
use cdc_engine::source_block::{write_ts_members, SEQUENCE_AND_TS_SCHEMAS};
use cdc_engine::{
    EnvelopeLayout, Event, Position, SnapshotFlag, SourceBlock, SourceInfo, SourceMeta, TableRef,
};

use crate::change::{Change, RowChange};
use crate::resume::ClusterTime;

/// Debezium's MongoDB `source` members.
///
/// How [`SourceInfo`]'s generic fields carry MongoDB's values:
/// * `offset` — the event's cluster time as one number (seconds in the high
///   32 bits, `BsonTimestamp.getValue()`); `ord` is its low half.
/// * `tx_id` — `txnNumber`.
/// * `ts_ms` — Debezium's: `wallTime`, or the cluster time's seconds × 1000
///   without one ([`Change::ts_ms`]).
/// * `event.table` — `TableRef { schema: db, name: collection }`.
///
/// * `session` — the `lsid`, as Debezium writes it (the transaction stage
///   groups by session and `txnNumber`, which counts per session).
///
/// Differences left:
/// * `wallTime` is `ts_ms` for streamed events and null for snapshot reads
///   (Debezium's snapshot sets no wall time). MongoDB 6.0 and later put
///   `wallTime` on every change event; from an older server Debezium writes
///   null there, where this block would write the cluster time's seconds.
/// * `db` is each event's own database (`ns.db`, the table's schema), as
///   Debezium writes it ([`SourceBlock::db`]).
#[derive(Debug)]
pub struct MongoBlock;

pub static MONGO_BLOCK: MongoBlock = MongoBlock;

impl SourceBlock for MongoBlock {
    /// Debezium's MongoDB envelope: documents as JSON strings.
    fn layout(&self) -> EnvelopeLayout {
        EnvelopeLayout::Documents
    }

    fn db<'a>(&self, event: &'a Event) -> Option<&'a str> {
        event.table.as_deref().map(|t| t.schema.as_str())
    }

    fn write_members(&self, event: &Event, out: &mut Vec<u8>) {
        let s = &event.source;
        out.extend_from_slice(b",\"sequence\":null");
        write_ts_members(s, out);
        out.extend_from_slice(b",\"collection\":");
        match &event.table {
            Some(table) => write_str(&table.name, out),
            // The schema requires a string; an event of no collection
            // (none reaches Debezium's block) gets an empty one.
            None => out.extend_from_slice(b"\"\""),
        }
        out.extend_from_slice(b",\"ord\":");
        // Debezium's `int`: an increment above 2^31 - 1 is negative there;
        // no position at all is its initial `Timestamp(0, 0)`.
        let increment = s.offset.map_or(0, |t| ClusterTime::from_u64(t).increment);
        write_display(increment as i32, out);
        out.extend_from_slice(b",\"lsid\":");
        match &s.session {
            Some(lsid) => write_str(lsid, out),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"txnNumber\":");
        match s.tx_id {
            Some(txn) => write_display(txn, out),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"wallTime\":");
        match s.snapshot {
            SnapshotFlag::No => write_display(s.ts_ms, out),
            SnapshotFlag::Incremental => out.extend_from_slice(b"null"),
        }
    }

    fn write_member_schemas(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(SEQUENCE_AND_TS_SCHEMAS.as_bytes());
        out.extend_from_slice(
            concat!(
                ",{\"type\":\"string\",\"optional\":false,\"field\":\"collection\"}",
                ",{\"type\":\"int32\",\"optional\":false,\"field\":\"ord\"}",
                ",{\"type\":\"string\",\"optional\":true,\"field\":\"lsid\"}",
                ",{\"type\":\"int64\",\"optional\":true,\"field\":\"txnNumber\"}",
                ",{\"type\":\"int64\",\"optional\":true,\"field\":\"wallTime\"}"
            )
            .as_bytes(),
        );
    }

    /// `mongo`, not `mongodb`: `MongoDbSourceInfoStructMaker` names it so.
    fn schema_name(&self) -> &'static str {
        "io.debezium.connector.mongo.Source"
    }

    /// `<lsid>:<txnNumber>` (`MongoDbEventMetadataProvider.getTransactionId`;
    /// the txnNumber alone without a session, as there).
    fn transaction_id(&self, source: &SourceInfo) -> Option<String> {
        let txn = source.tx_id?;
        Some(match &source.session {
            Some(lsid) => format!("{lsid}:{txn}"),
            None => txn.to_string(),
        })
    }

    fn closing_transaction_id(&self, opened: &SourceInfo, _commit: Option<&Position>) -> String {
        self.transaction_id(opened).unwrap_or_default()
    }
}

/// The [`SourceInfo`] of a row change, in the mapping [`MongoBlock`] reads.
pub fn source_info(change: &Change, row: &RowChange, meta: Arc<SourceMeta>) -> SourceInfo {
    let ts_ms = change.ts_ms();
    SourceInfo {
        offset: Some(change.cluster_time.as_u64()),
        // txnNumber counts up from 0 within a session.
        tx_id: row
            .transaction
            .as_ref()
            .and_then(|t| u64::try_from(t.txn_number).ok()),
        ts_ms,
        ts_us: ts_ms.saturating_mul(1000),
        session: row.transaction.as_ref().map(|t| Arc::from(t.lsid.as_str())),
        ..SourceInfo::new(meta, change.position.clone())
    }
}

/// The table a row change belongs to: database as schema, collection as name.
pub fn table_of(row: &RowChange) -> TableRef {
    TableRef::new(row.db.clone(), row.collection.clone())
}

#[cfg(test)]
mod tests {
    use bson::doc;
    use cdc_engine::envelope::value_json;
    use cdc_engine::Op;

    use super::*;
    use crate::change::{parse_change, ChangeKind};

    fn event(snapshot: SnapshotFlag, in_transaction: bool) -> Event {
        let mut raw = doc! {
            "_id": { "_data": "8263501A2C000000032B022C0100296E5A1004" },
            "operationType": "insert",
            "clusterTime": bson::Timestamp { time: 0x6350_1A2C, increment: 3 },
            "wallTime": bson::DateTime::from_millis(1_666_194_988_456),
            "ns": { "db": "shop", "coll": "orders" },
            "documentKey": { "_id": 1 },
            "fullDocument": { "_id": 1 },
        };
        if in_transaction {
            raw.insert("lsid", doc! { "id": 1 });
            raw.insert("txnNumber", 9i64);
        }
        let change = parse_change(&raw).unwrap();
        let ChangeKind::Row(row) = &change.kind else {
            panic!("not a row change");
        };
        let meta = Arc::new(SourceMeta {
            connector: "mongodb",
            name: "cdc".into(),
            db: "shop".into(),
            block: &MONGO_BLOCK,
        });
        let mut source = source_info(&change, row, meta);
        source.snapshot = snapshot;
        Event {
            op: Op::Create,
            table: Some(Arc::new(table_of(row))),
            key: None,
            before: None,
            after: None,
            source,
            message: None,
            transaction: None,
            schema: None,
            update: None,
        }
    }

    fn source(event: &Event) -> serde_json::Value {
        let json: serde_json::Value = serde_json::from_str(&value_json(event, 5)).unwrap();
        json["source"].clone()
    }

    #[test]
    fn members_follow_debeziums_order_after_db() {
        let event = event(SnapshotFlag::No, true);
        let mut out = Vec::new();
        MONGO_BLOCK.write_members(&event, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            concat!(
                r#","sequence":null,"ts_us":1666194988456000,"ts_ns":1666194988456000000,"#,
                r#""collection":"orders","ord":3,"lsid":"{\"id\": 1}","txnNumber":9,"wallTime":1666194988456"#
            )
        );
        let source = source(&event);
        assert_eq!(source["db"], "shop");
        assert_eq!(source["ts_ms"], 1_666_194_988_456i64);
        assert_eq!(source["connector"], "mongodb");
    }

    #[test]
    fn snapshot_reads_have_no_wall_time_and_no_transaction() {
        let event = event(SnapshotFlag::Incremental, false);
        let source = source(&event);
        assert_eq!(source["wallTime"], serde_json::Value::Null);
        assert_eq!(source["txnNumber"], serde_json::Value::Null);
        assert_eq!(MONGO_BLOCK.transaction_id(&event.source), None);
    }

    #[test]
    fn ord_is_javas_int_of_the_increment() {
        let mut event = event(SnapshotFlag::No, false);
        event.source.offset = Some(
            ClusterTime {
                seconds: 1,
                increment: u32::MAX,
            }
            .as_u64(),
        );
        assert_eq!(source(&event)["ord"], -1);
        event.source.offset = None;
        assert_eq!(source(&event)["ord"], 0);
        event.table = None;
        assert_eq!(source(&event)["collection"], "");
    }

    #[test]
    fn transaction_ids_are_the_session_and_txn_number() {
        let outside = event(SnapshotFlag::No, false);
        let event = event(SnapshotFlag::No, true);
        assert_eq!(
            MONGO_BLOCK.transaction_id(&event.source).as_deref(),
            Some(r#"{"id": 1}:9"#)
        );
        assert_eq!(
            MONGO_BLOCK.closing_transaction_id(&event.source, None),
            r#"{"id": 1}:9"#
        );
        // Outside a session (none in a change event): the number alone.
        let mut source = event.source.clone();
        source.session = None;
        assert_eq!(MONGO_BLOCK.transaction_id(&source).as_deref(), Some("9"));
        assert_eq!(MONGO_BLOCK.transaction_id(&outside.source), None);
    }

    #[test]
    fn the_member_schemas_name_each_member_once_in_order() {
        let names =
            cdc_engine::source_block::member_schema_fields(&MONGO_BLOCK).unwrap_or_default();
        assert_eq!(
            names,
            [
                "sequence",
                "ts_us",
                "ts_ns",
                "collection",
                "ord",
                "lsid",
                "txnNumber",
                "wallTime"
            ]
        );
        assert_eq!(
            MONGO_BLOCK.schema_name(),
            "io.debezium.connector.mongo.Source"
        );
    }
}
