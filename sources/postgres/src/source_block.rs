//! The members of Debezium's PostgreSQL `source` block that only this
//! source has (`io.debezium.connector.postgresql.Source`), their Connect
//! schema, and Debezium's PostgreSQL transaction ids.

use cdc_engine::envelope::{write_display, write_str};
use cdc_engine::source_block::{write_ts_members, SEQUENCE_AND_TS_SCHEMAS};
use cdc_engine::{Event, Position, SnapshotFlag, SourceBlock, SourceInfo};

#[derive(Debug)]
pub struct PostgresBlock;

pub static POSTGRES_BLOCK: PostgresBlock = PostgresBlock;

impl SourceBlock for PostgresBlock {
    fn write_members(&self, event: &Event, out: &mut Vec<u8>) {
        let s = &event.source;
        // Debezium's form: a string holding a JSON array of two decimal
        // strings, the last commit (or null) and this change.
        out.extend_from_slice(b",\"sequence\":");
        match s.offset {
            Some(lsn) => {
                out.extend_from_slice(b"\"[");
                match s.last_commit {
                    Some(commit) => {
                        out.extend_from_slice(b"\\\"");
                        write_display(commit, out);
                        out.extend_from_slice(b"\\\"");
                    }
                    None => out.extend_from_slice(b"null"),
                }
                out.extend_from_slice(b",\\\"");
                write_display(lsn, out);
                out.extend_from_slice(b"\\\"]\"");
            }
            None => out.extend_from_slice(b"null"),
        }
        write_ts_members(s, out);
        match &event.table {
            Some(table) => {
                out.extend_from_slice(b",\"schema\":");
                write_str(&table.schema, out);
                out.extend_from_slice(b",\"table\":");
                write_str(&table.name, out);
            }
            // Debezium's, for a logical message: its schema requires strings.
            None => out.extend_from_slice(b",\"schema\":\"\",\"table\":\"\""),
        }
        // A snapshot row was read, not written by a transaction: Debezium
        // gives incremental snapshot rows neither (the window's position
        // stays in `sequence` and in cdc's `position`).
        let streamed = s.snapshot == SnapshotFlag::No;
        out.extend_from_slice(b",\"txId\":");
        match s.tx_id.filter(|_| streamed) {
            Some(tx) => write_display(tx, out),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"lsn\":");
        match s.offset.filter(|_| streamed) {
            Some(lsn) => write_display(lsn, out),
            None => out.extend_from_slice(b"null"),
        }
        // Debezium fills xmin only with xmin.fetch.interval.ms (off by
        // default), and the origin only for changes replicated from another
        // server's origin.
        out.extend_from_slice(b",\"xmin\":null,\"origin\":null,\"origin_lsn\":null");
    }

    fn write_member_schemas(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(SEQUENCE_AND_TS_SCHEMAS.as_bytes());
        out.extend_from_slice(
            concat!(
                ",{\"type\":\"string\",\"optional\":false,\"field\":\"schema\"}",
                ",{\"type\":\"string\",\"optional\":false,\"field\":\"table\"}",
                ",{\"type\":\"int64\",\"optional\":true,\"field\":\"txId\"}",
                ",{\"type\":\"int64\",\"optional\":true,\"field\":\"lsn\"}",
                ",{\"type\":\"int64\",\"optional\":true,\"field\":\"xmin\"}",
                ",{\"type\":\"string\",\"optional\":true,\"field\":\"origin\"}",
                ",{\"type\":\"int64\",\"optional\":true,\"field\":\"origin_lsn\"}"
            )
            .as_bytes(),
        );
    }

    fn schema_name(&self) -> &'static str {
        "io.debezium.connector.postgresql.Source"
    }

    /// `"<xid>:<the change's LSN>"`, as Debezium writes it.
    fn transaction_id(&self, source: &SourceInfo) -> Option<String> {
        Some(format!("{}:{}", source.tx_id?, source.offset?))
    }

    /// `"<xid>:<the commit's end LSN>"`; without a commit, the LSN of the
    /// transaction's first change.
    fn closing_transaction_id(&self, opened: &SourceInfo, commit: Option<&Position>) -> String {
        let lsn = commit
            .and_then(Position::as_u64)
            .or(opened.offset)
            .unwrap_or_default();
        format!("{}:{lsn}", opened.tx_id.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use cdc_engine::envelope::{key_json, value_json};
    use cdc_engine::{Op, Row, SourceMeta, TableRef, Value};

    use super::*;

    fn update() -> Event {
        let cols: Arc<[String]> = Arc::from(vec!["id".to_string(), "name".to_string()]);
        Event {
            update: None,
            schema: None,
            op: Op::Update,
            table: Some(Arc::new(TableRef::new("public", "orders"))),
            key: Some(Row::new(
                Arc::from(vec!["id".to_string()]),
                vec![Value::Int(1)],
            )),
            before: None,
            after: Some(Row::new(cols, vec![Value::Int(1), Value::Text("a".into())])),
            source: SourceInfo {
                session: None,
                meta: Arc::new(SourceMeta {
                    connector: "postgresql",
                    name: "cdc".into(),
                    db: "app".into(),
                    block: &POSTGRES_BLOCK,
                }),
                position: Position::from_u64(0x16B3748),
                offset: Some(0x16B3748),
                tx_id: Some(750),
                ts_ms: 1_700_000_000_000,
                ts_us: 1_700_000_000_000_000,
                last_commit: None,
                snapshot: SnapshotFlag::No,
            },
            message: None,
            transaction: None,
        }
    }

    fn value(event: &Event) -> serde_json::Value {
        serde_json::from_str(&value_json(event, 5)).unwrap_or_default()
    }

    #[test]
    fn the_source_block_is_debeziums_postgresql_one() {
        let event = update();
        let json = value(&event);
        let source = &json["source"];
        // Member order as written (serde_json's map would sort them).
        let text = value_json(&event, 5);
        let block = &text[text.find("\"source\":").unwrap_or_default()..];
        let at: Vec<usize> = [
            "version",
            "connector",
            "name",
            "ts_ms",
            "snapshot",
            "db",
            "sequence",
            "ts_us",
            "ts_ns",
            "schema",
            "table",
            "txId",
            "lsn",
            "xmin",
            "origin",
            "origin_lsn",
            "position",
        ]
        .iter()
        .map(|m| block.find(&format!("\"{m}\":")).unwrap_or(usize::MAX))
        .collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{block}");
        assert_eq!(source.as_object().map(|o| o.len()), Some(at.len()));
        assert_eq!(source["table"], "orders");
        assert_eq!(source["schema"], "public");
        assert_eq!(source["lsn"], 0x16B3748);
        assert_eq!(source["txId"], 750);
        assert_eq!(source["ts_ns"], 1_700_000_000_000_000_000i64);
        // No commit seen yet in the session: Debezium's `[null,"<lsn>"]`.
        assert_eq!(source["sequence"], "[null,\"23803720\"]");
        assert_eq!(source["xmin"], serde_json::Value::Null);
        let mut later = event.clone();
        later.source.last_commit = Some(23_803_000);
        let json = value(&later);
        let sequence: Vec<String> =
            serde_json::from_str(json["source"]["sequence"].as_str().unwrap_or_default())
                .unwrap_or_default();
        assert_eq!(sequence, ["23803000", "23803720"]);
        let key = event.key.as_ref().map(key_json).unwrap_or_default();
        assert_eq!(key, br#"{"id":1}"#);
        // A snapshot row: no transaction and no LSN, as Debezium's.
        let mut read = event.clone();
        read.source.snapshot = SnapshotFlag::Incremental;
        let json = value(&read);
        assert_eq!(json["source"]["txId"], serde_json::Value::Null);
        assert_eq!(json["source"]["lsn"], serde_json::Value::Null);
        assert_eq!(json["source"]["snapshot"], "incremental");
        assert_eq!(json["source"]["sequence"], "[null,\"23803720\"]");
    }

    #[test]
    fn a_logical_message_has_empty_schema_and_table() {
        let mut event = update();
        event.table = None;
        event.op = Op::Message;
        let json = value(&event);
        assert_eq!(json["source"]["schema"], "");
        assert_eq!(json["source"]["table"], "");
    }

    #[test]
    fn transaction_ids_are_xid_and_lsn() {
        let source = update().source;
        assert_eq!(
            POSTGRES_BLOCK.transaction_id(&source).as_deref(),
            Some("750:23803720")
        );
        let commit = Position::from_u64(23_804_000);
        assert_eq!(
            POSTGRES_BLOCK.closing_transaction_id(&source, Some(&commit)),
            "750:23804000"
        );
        assert_eq!(
            POSTGRES_BLOCK.closing_transaction_id(&source, None),
            "750:23803720"
        );
        let outside = SourceInfo {
            tx_id: None,
            ..source
        };
        assert_eq!(POSTGRES_BLOCK.transaction_id(&outside), None);
    }

    #[test]
    fn the_member_schemas_name_each_member_once_in_order() {
        let names =
            cdc_engine::source_block::member_schema_fields(&POSTGRES_BLOCK).unwrap_or_default();
        assert_eq!(
            names,
            [
                "sequence",
                "ts_us",
                "ts_ns",
                "schema",
                "table",
                "txId",
                "lsn",
                "xmin",
                "origin",
                "origin_lsn"
            ]
        );
    }
}
