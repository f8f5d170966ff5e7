//! Change events through cdc-mongodb against the same events through
//! Debezium 3.6.3's own code.
//!
//! `tests/fixtures/events.txt` is `CdcFixtures events` (on Java 17): each
//! event (shaped as in MongoDB's "Change Events" reference) as BSON, read by
//! the MongoDB driver's `ChangeStreamDocument` codec, then Debezium's
//! `ResumeTokens.getTimestamp`, `MongoDbChangeRecordEmitter.getOperation`,
//! `MongoDbCollectionSchema.keyFromDocument` / `valueFromDocumentChangeStream`,
//! `SourceInfo.changeStreamEvent` + `struct()`, and
//! `MongoDbEventMetadataProvider.getTransactionId`, printed through Kafka's
//! `JsonConverter`; also Debezium's source schema and a few bare tokens.
//! `golden_documents.rs`'s `fixtures_are_current` reruns it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;

use bson::Document;
use cdc_engine::{Event, SourceBlock, SourceMeta};
use cdc_mongodb::change::{parse_change, ChangeKind};
use cdc_mongodb::resume;
use cdc_mongodb::source_block::{source_info, table_of, MONGO_BLOCK};
use serde_json::Value;
use support::{fixture, records, Record};

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn opt_str(v: Option<&str>) -> Value {
    v.map_or(Value::Null, |s| Value::String(s.into()))
}

fn events() -> Vec<Record> {
    let all = records(&fixture("events.txt"), "event");
    assert!(all.len() > 15, "{} events", all.len());
    all
}

#[test]
fn events_parse_as_the_driver_and_debezium_read_them() {
    for record in events().iter().skip(1) {
        let name = &record.name;
        let raw = Document::from_reader(record.bson().as_slice()).unwrap();
        let change = parse_change(&raw).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            change.kind.operation_type(),
            record.field("driver_op"),
            "{name}"
        );
        let (secs, inc) = record.field("token_timestamp").split_once(' ').unwrap();
        let from_token = resume::cluster_time_of(&change.token).unwrap();
        assert_eq!(
            (
                from_token.seconds.to_string(),
                from_token.increment.to_string()
            ),
            (secs.into(), inc.into())
        );
        assert_eq!(change.cluster_time, from_token, "{name}");

        let Some(op) = record.get("op") else {
            // Debezium emits no record for it.
            assert!(!matches!(change.kind, ChangeKind::Row(_)), "{name}");
            continue;
        };
        let ChangeKind::Row(row) = &change.kind else {
            panic!("{name}: Debezium emits `{op}`, cdc has no row change");
        };
        assert_eq!(row.op.op().code(), op, "{name}");
        assert_eq!(
            json(record.field("key")),
            serde_json::json!({ "id": row.key }),
            "{name}"
        );

        let value = json(record.field("value"));
        assert_eq!(
            value["after"],
            opt_str(row.after.as_deref()),
            "{name} after"
        );
        assert_eq!(
            value["before"],
            opt_str(row.before.as_deref()),
            "{name} before"
        );
        let update = &value["updateDescription"];
        match &row.update {
            None => assert_eq!(update, &Value::Null, "{name}"),
            Some(ours) => {
                assert_eq!(
                    update["updatedFields"],
                    opt_str(ours.updated_fields.as_deref()),
                    "{name}"
                );
                let removed = match ours.removed_fields.as_slice() {
                    [] => Value::Null,
                    fields => serde_json::json!(fields),
                };
                assert_eq!(update["removedFields"], removed, "{name}");
                let truncated = match ours.truncated_arrays.as_slice() {
                    [] => Value::Null,
                    arrays => arrays
                        .iter()
                        .map(|(field, size)| serde_json::json!({ "field": field, "size": size }))
                        .collect(),
                };
                assert_eq!(update["truncatedArrays"], truncated, "{name}");
            }
        }

        let source = json(record.field("source"));
        assert_eq!(value["source"], source, "{name}");
        assert_eq!(source["db"], row.db.as_str(), "{name}");
        assert_eq!(source["collection"], row.collection.as_str(), "{name}");
        assert_eq!(source["ord"], change.cluster_time.increment, "{name}");
        assert_eq!(source["ts_ms"], change.ts_ms(), "{name}");
        assert_eq!(
            source["wallTime"],
            serde_json::json!(change.wall_time_ms),
            "{name}"
        );
        let tx = row.transaction.as_ref();
        assert_eq!(
            source["lsid"],
            opt_str(tx.map(|t| t.lsid.as_str())),
            "{name}"
        );
        assert_eq!(
            source["txnNumber"],
            serde_json::json!(tx.map(|t| t.txn_number)),
            "{name}"
        );
        let tx_id = tx.map_or("null".to_string(), |t| t.transaction_id());
        assert_eq!(record.field("transaction_id"), tx_id, "{name}");
    }
}

/// Debezium's source text after `"db":"…"` (without the closing brace).
fn members_after_db(source: &str, db: &str) -> String {
    let marker = format!("\"db\":{}", serde_json::to_string(db).unwrap());
    let at = source.find(&marker).unwrap() + marker.len();
    source[at..source.len() - 1].to_string()
}

#[test]
fn the_block_writes_debeziums_members_after_db() {
    let meta = Arc::new(SourceMeta {
        connector: "mongodb",
        name: "cdc".into(),
        db: String::new(),
        block: &MONGO_BLOCK,
    });
    let mut checked = 0;
    for record in events().iter().skip(1) {
        if record.get("op").is_none() {
            continue;
        }
        let change =
            parse_change(&Document::from_reader(record.bson().as_slice()).unwrap()).unwrap();
        let ChangeKind::Row(row) = &change.kind else {
            unreachable!()
        };
        let event = Event {
            op: row.op.op(),
            table: Some(Arc::new(table_of(row))),
            key: None,
            before: None,
            after: None,
            source: source_info(&change, row, meta.clone()),
            message: None,
            transaction: None,
            schema: None,
            update: None,
        };
        let mut ours = Vec::new();
        MONGO_BLOCK.write_members(&event, &mut ours);
        let ours = String::from_utf8(ours).unwrap();
        let mut debezium = members_after_db(record.field("source"), &row.db);
        // Without the event's wallTime (servers before 6.0) Debezium writes
        // null; the block cannot tell and writes ts_ms (MongoBlock's doc).
        if change.wall_time_ms.is_none() {
            debezium = debezium.replace(
                "\"wallTime\":null",
                &format!("\"wallTime\":{}", change.ts_ms()),
            );
        }
        assert_eq!(ours, debezium, "{}", record.name);
        assert_eq!(
            MONGO_BLOCK.transaction_id(&event.source),
            row.transaction.as_ref().map(|t| t.transaction_id()),
        );
        checked += 1;
    }
    assert!(checked >= 9, "{checked}");
}

#[test]
fn the_member_schemas_are_debeziums() {
    let first = &events()[0];
    let schema = first.field("source_schema");
    let after_db = schema.split_once("\"field\":\"db\"}").unwrap().1;
    let debezium = &after_db[..after_db.find("],\"optional\"").unwrap()];
    let mut ours = Vec::new();
    MONGO_BLOCK.write_member_schemas(&mut ours);
    assert_eq!(String::from_utf8(ours).unwrap(), debezium);
    let name = &json(schema)["name"];
    assert_eq!(name, MONGO_BLOCK.schema_name());
}

#[test]
fn bare_tokens_read_as_debezium_reads_them() {
    // Printed after the events: in the last record.
    let all = events();
    let tokens: Vec<&str> = all
        .iter()
        .flat_map(|r| &r.fields)
        .filter(|(k, _)| k == "token")
        .map(|(_, v)| v.as_str())
        .collect();
    assert!(tokens.len() >= 5);
    for line in tokens {
        let (hex, expected) = line.split_once(' ').unwrap();
        let ours = match resume::cluster_time_of(&bson::doc! { "_data": hex }) {
            Ok(t) => format!("{} {}", t.seconds, t.increment),
            Err(_) => "error".into(),
        };
        assert_eq!(ours, expected, "token {hex:?}");
    }
}

/// The whole record as the engine writes it for a row change (documents
/// layout, key, source block) against Debezium's record of the same event.
#[test]
fn the_engine_writes_debeziums_records() {
    let meta = Arc::new(SourceMeta {
        connector: "mongodb",
        name: "cdc".into(),
        db: String::new(),
        block: &MONGO_BLOCK,
    });
    let mut writer = cdc_engine::envelope::EnvelopeWriter::new();
    let mut checked = 0;
    for record in events().iter().skip(1) {
        let name = &record.name;
        let change =
            parse_change(&Document::from_reader(record.bson().as_slice()).unwrap()).unwrap();
        let Some(event) = cdc_mongodb::event::row_event(&change, &meta) else {
            assert!(
                record.get("op").is_none(),
                "{name}: Debezium emits a record"
            );
            continue;
        };
        let mut key = Vec::new();
        writer.write_key(&event, event.key.as_ref().unwrap(), &mut key);
        // Byte for byte: consumers key on it.
        assert_eq!(
            String::from_utf8(key).unwrap(),
            serde_json::to_string(&json(record.field("key"))).unwrap(),
            "{name} key"
        );
        let mut value = Vec::new();
        writer.write_value(&event, 1_700_000_000_000, &mut value);
        let ours: Value = serde_json::from_slice(&value).unwrap();
        let mut debezium = json(record.field("value"));
        // Known differences: cdc's own `version` and `position`, and the
        // processing time.
        debezium["source"]["version"] = ours_version(&value);
        if change.wall_time_ms.is_none() {
            debezium["source"]["wallTime"] = serde_json::json!(change.ts_ms());
        }
        let mut ours = ours;
        let position = ours["source"]
            .as_object_mut()
            .and_then(|s| s.remove("position"));
        assert!(position.is_some(), "{name}: cdc's position");
        ours["ts_ms"] = debezium["ts_ms"].clone();
        for member in [
            "before",
            "after",
            "updateDescription",
            "source",
            "op",
            "ts_ms",
            "transaction",
        ] {
            assert_eq!(ours[member], debezium[member], "{name} {member}");
        }
        let members = |v: &Value| v.as_object().map(|o| o.len());
        assert_eq!(members(&ours), members(&debezium), "{name}: {ours}");
        checked += 1;
    }
    assert!(checked >= 9, "{checked}");
}

fn ours_version(value: &[u8]) -> Value {
    serde_json::from_slice::<Value>(value).unwrap()["source"]["version"].clone()
}
