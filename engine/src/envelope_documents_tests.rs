//! The documents layout (Debezium's MongoDB envelope), written for a source
//! block that asks for it.

use std::sync::Arc;

use cdc_signal::TableRef;
use serde_json::Value as Json;

use super::*;
use crate::event::{Position, SourceInfo};
use crate::format::Format;
use crate::source_block::{write_ts_members, SourceBlock};
use crate::value::Value;

/// A block of a document source: `collection` after the times.
#[derive(Debug)]
struct DocumentBlock;

static DOCUMENT_BLOCK: DocumentBlock = DocumentBlock;

impl SourceBlock for DocumentBlock {
    fn layout(&self) -> EnvelopeLayout {
        EnvelopeLayout::Documents
    }

    fn write_members(&self, event: &Event, out: &mut Vec<u8>) {
        write_ts_members(&event.source, out);
        out.extend_from_slice(b",\"collection\":");
        write_str(event.table.as_ref().map_or("", |t| t.name.as_str()), out);
    }

    fn write_member_schemas(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(
            b",{\"type\":\"string\",\"optional\":false,\"field\":\"collection\"}",
        );
    }

    fn schema_name(&self) -> &'static str {
        "test.Source"
    }

    fn transaction_id(&self, source: &SourceInfo) -> Option<String> {
        source.tx_id.map(|t| t.to_string())
    }

    fn closing_transaction_id(&self, opened: &SourceInfo, _: Option<&Position>) -> String {
        opened.tx_id.unwrap_or_default().to_string()
    }
}

fn update() -> Event {
    let columns: Arc<[String]> = Arc::from(vec!["_id".to_string(), "name".into()]);
    let document = Row::new(
        columns,
        vec![
            Value::Json(r#"{"$oid": "596e275826f08b2730779e1f"}"#.into()),
            Value::Text("Anne \"the\" first".into()),
        ],
    );
    Event {
        op: Op::Update,
        table: Some(Arc::new(TableRef::new("shop", "orders"))),
        key: Some(Row::new(
            Arc::from(vec!["id".to_string()]),
            vec![Value::Text(
                r#"{"$oid": "596e275826f08b2730779e1f"}"#.into(),
            )],
        )),
        before: None,
        after: Some(document),
        source: SourceInfo::new(
            Arc::new(SourceMeta {
                connector: "mongodb",
                name: "retail".into(),
                db: "shop".into(),
                block: &DOCUMENT_BLOCK,
            }),
            Position::from_u64(9),
        ),
        message: None,
        transaction: None,
        schema: None,
        update: Some(Box::new(UpdateDescription {
            updated_fields: Some(r#"{"name": "Anne \"the\" first"}"#.into()),
            removed_fields: Some(vec!["nickname".into()]),
            truncated_arrays: Some(vec![("tags".into(), 2)]),
        })),
    }
}

#[test]
fn documents_are_json_strings_beside_their_update_description() {
    let event = update();
    let text = value_json(&event, 7);
    let json: Json = serde_json::from_str(&text).unwrap();
    // Members in Debezium's MongoDB order.
    let at: Vec<usize> = [
        "\"before\":",
        "\"after\":",
        "\"updateDescription\":",
        "\"source\":",
        "\"op\":",
        "\"ts_ms\":7",
        "\"transaction\":",
    ]
    .iter()
    .map(|m| text.find(m).unwrap_or(usize::MAX))
    .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{text}");
    assert!(
        !text.contains("\"ts_us\":7000"),
        "no processing ts_us: {text}"
    );
    assert_eq!(json["before"], Json::Null);
    let after: Json = serde_json::from_str(json["after"].as_str().unwrap()).unwrap();
    assert_eq!(after["_id"]["$oid"], "596e275826f08b2730779e1f");
    assert_eq!(after["name"], "Anne \"the\" first");
    let update = &json["updateDescription"];
    assert_eq!(update["removedFields"], serde_json::json!(["nickname"]));
    let updated: Json = serde_json::from_str(update["updatedFields"].as_str().unwrap()).unwrap();
    assert_eq!(updated["name"], "Anne \"the\" first");
    assert_eq!(
        update["truncatedArrays"],
        serde_json::json!([{"field": "tags", "size": 2}])
    );
    assert_eq!(json["source"]["collection"], "orders");
    assert_eq!(json["source"]["connector"], "mongodb");
    assert_eq!(json["op"], "u");
    let key = key_json(event.key.as_ref().unwrap());
    assert_eq!(
        String::from_utf8(key).unwrap(),
        r#"{"id":"{\"$oid\": \"596e275826f08b2730779e1f\"}"}"#
    );
}

#[test]
fn an_insert_has_no_update_description_and_a_delete_no_after() {
    let mut insert = update();
    insert.op = Op::Create;
    insert.update = None;
    let json: Json = serde_json::from_str(&value_json(&insert, 1)).unwrap();
    assert_eq!(json["updateDescription"], Json::Null);
    let mut delete = update();
    delete.op = Op::Delete;
    delete.update = None;
    delete.after = None;
    let json: Json = serde_json::from_str(&value_json(&delete, 1)).unwrap();
    assert_eq!(json["after"], Json::Null);
    assert_eq!(json["op"], "d");
}

#[test]
fn the_connect_schema_names_the_payloads_members_in_order() {
    let event = update();
    let mut writer = EnvelopeWriter::with_format(Format {
        schemas: true,
        ..Format::default()
    });
    let mut out = Vec::new();
    writer.write_value(&event, 7, &mut out);
    let json: Json = serde_json::from_slice(&out).unwrap();
    let fields: Vec<&str> = json["schema"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["field"].as_str())
        .collect();
    assert_eq!(
        fields,
        [
            "before",
            "after",
            "updateDescription",
            "source",
            "op",
            "ts_ms",
            "transaction"
        ]
    );
    assert_eq!(json["schema"]["name"], "retail.shop.orders.Envelope");
    assert_eq!(json["schema"]["fields"][1]["name"], "io.debezium.data.Json");
    let source = &json["schema"]["fields"][3];
    assert_eq!(source["name"], "test.Source");
    assert!(json["payload"]["after"].is_string());
}

#[test]
fn a_document_the_source_rendered_whole_is_written_byte_for_byte() {
    let mut event = update();
    // Debezium's own separators and a bare NaN, which no JSON writer of
    // ours would produce: copied as they are.
    let text = r#"{"_id": {"$oid": "596e275826f08b2730779e1f"},"x": NaN}"#;
    event.after = Some(Row::new(
        Arc::from(vec![crate::source_block::DOCUMENT_COLUMN.to_string()]),
        vec![Value::Json(text.into())],
    ));
    let json: Json = serde_json::from_str(&value_json(&event, 1)).unwrap();
    assert_eq!(json["after"], text);
}
