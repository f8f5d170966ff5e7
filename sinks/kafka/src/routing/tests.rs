use std::sync::Arc;

use bytes_of::*;
use cdc_engine::{LogicalMessage, Position, SnapshotFlag, SourceInfo, SourceMeta};

use super::*;
use crate::config::KafkaSinkConfig;

mod bytes_of {
    use crate::record::{Batch, Record};

    pub fn key<'a>(batch: &'a Batch, r: &Record) -> Option<&'a [u8]> {
        r.key.as_ref().map(|k| batch.bytes(k))
    }

    pub fn value<'a>(batch: &'a Batch, r: &Record) -> Option<&'a [u8]> {
        r.value.as_ref().map(|v| batch.bytes(v))
    }
}

fn cols(names: &[&str]) -> Arc<[String]> {
    Arc::from(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
}

fn event(op: Op, table: Option<(&str, &str)>, key: Option<Row>, after: Option<Row>) -> Event {
    Event {
        update: None,
        schema: None,
        op,
        table: table.map(|(s, t)| Arc::new(TableRef::new(s, t))),
        key,
        before: None,
        after,
        source: SourceInfo {
            session: None,
            meta: Arc::new(SourceMeta {
                connector: "postgresql",
                name: "shop".into(),
                db: "app".into(),
                block: &cdc_engine::PLAIN_BLOCK,
            }),
            position: Position::from_u64(0xabc),
            offset: Some(0xabc),
            tx_id: Some(1),
            ts_ms: 0,
            ts_us: 0,
            last_commit: None,
            snapshot: SnapshotFlag::No,
        },
        message: None,
        transaction: None,
    }
}

fn id_key(id: i64) -> Row {
    Row::new(cols(&["id"]), vec![Value::Int(id)])
}

fn route(config: &KafkaSinkConfig, events: &[Event]) -> Result<Batch, RouteError> {
    let mut router = Router::new(config).unwrap();
    let mut batch = Batch::default();
    for e in events {
        router.route(e, 1, &mut batch)?;
    }
    Ok(batch)
}

#[test]
fn deletes_get_a_tombstone_unless_switched_off() {
    let mut config = KafkaSinkConfig::new("b:9092");
    let delete = event(Op::Delete, Some(("public", "t")), Some(id_key(1)), None);
    let batch = route(&config, std::slice::from_ref(&delete)).unwrap();
    assert_eq!(batch.len(), 2);
    let (d, tomb) = (batch.get(0).unwrap(), batch.get(1).unwrap());
    assert_eq!(&*d.topic, "shop.public.t");
    assert_eq!(key(&batch, d), Some(&br#"{"id":1}"#[..]));
    assert_eq!(key(&batch, tomb), key(&batch, d));
    assert_eq!(value(&batch, tomb), None);
    assert_eq!(batch.header(d, HEADER_OP), Some(&b"d"[..]));
    assert_eq!(
        batch.header(d, HEADER_POSITION),
        Some(&b"0000000000000abc"[..])
    );
    config.tombstones = false;
    assert_eq!(route(&config, &[delete]).unwrap().len(), 1);
}

#[test]
fn truncates_have_no_key_and_messages_go_to_their_topic_or_nowhere() {
    let mut config = KafkaSinkConfig::new("b:9092");
    let truncate = event(Op::Truncate, Some(("public", "t")), None, None);
    let mut message = event(Op::Message, None, None, None);
    message.message = Some(LogicalMessage {
        prefix: "audit".into(),
        content: bytes::Bytes::from_static(b"hi"),
        transactional: true,
    });
    let batch = route(&config, &[truncate.clone(), message.clone()]).unwrap();
    let t = batch.get(0).unwrap();
    assert_eq!(&*t.topic, "shop.public.t");
    assert_eq!(key(&batch, t), None);
    let m = batch.get(1).unwrap();
    assert_eq!(&*m.topic, "shop.message");
    assert_eq!(key(&batch, m), Some(&br#"{"prefix":"audit"}"#[..]));
    let envelope: serde_json::Value = serde_json::from_slice(value(&batch, m).unwrap()).unwrap();
    assert_eq!(envelope["message"]["content"], "aGk=");
    config.message_topic = String::new();
    assert_eq!(route(&config, &[message]).unwrap().len(), 0);
}

#[test]
fn transaction_records_go_to_the_transaction_topic_keyed_by_id() {
    let mut config = KafkaSinkConfig::new("b:9092");
    let mut begin = event(
        Op::Transaction,
        None,
        Some(Row::new(cols(&["id"]), vec![Value::Text("7:2748".into())])),
        None,
    );
    begin.transaction = Some(Box::new(cdc_engine::TransactionInfo::Boundary {
        end: false,
        id: "7:2748".into(),
        event_count: None,
        data_collections: Vec::new(),
        ts_ms: 12,
    }));
    let batch = route(&config, std::slice::from_ref(&begin)).unwrap();
    let b = batch.get(0).unwrap();
    assert_eq!(&*b.topic, "shop.transaction");
    assert_eq!(key(&batch, b), Some(&br#"{"id":"7:2748"}"#[..]));
    let value: serde_json::Value = serde_json::from_slice(value(&batch, b).unwrap()).unwrap();
    assert_eq!(value["status"], "BEGIN");
    config.transaction_topic = "{db}.tx".into();
    let batch = route(&config, &[begin]).unwrap();
    assert_eq!(&*batch.get(0).unwrap().topic, "app.tx");
}

#[test]
fn topic_template_is_configurable() {
    let mut config = KafkaSinkConfig::new("b:9092");
    config.topic = "cdc-{db}-{table}".into();
    let e = event(
        Op::Create,
        Some(("s", "Ünits")),
        Some(id_key(1)),
        Some(id_key(1)),
    );
    let batch = route(&config, &[e]).unwrap();
    assert_eq!(&*batch.get(0).unwrap().topic, "cdc-app-_nits");
}

fn outbox_config() -> KafkaSinkConfig {
    let mut config = KafkaSinkConfig::new("b:9092");
    config.outbox = Some(
        serde_json::from_value(serde_json::json!({
            "table": "public.outbox",
            "aggregate_type_column": "kind",
        }))
        .unwrap(),
    );
    config
}

fn outbox_row(kind: Value, payload: Value) -> Row {
    Row::new(
        cols(&["id", "kind", "aggregateid", "type", "payload"]),
        vec![
            Value::Text("e-1".into()),
            kind,
            Value::Int(42),
            Value::Null,
            payload,
        ],
    )
}

#[test]
fn outbox_routes_inserts_only() {
    let config = outbox_config();
    let insert = event(
        Op::Create,
        Some(("public", "outbox")),
        None,
        Some(outbox_row(
            Value::Text("Order".into()),
            Value::Json("[1, 2]".into()),
        )),
    );
    let mut update = insert.clone();
    update.op = Op::Update;
    let mut read = insert.clone();
    read.op = Op::Read;
    let batch = route(&config, &[insert, update, read]).unwrap();
    assert_eq!(batch.len(), 1);
    let r = batch.get(0).unwrap();
    assert_eq!(&*r.topic, "shop.outbox.Order");
    assert_eq!(key(&batch, r), Some(&b"42"[..]));
    assert_eq!(value(&batch, r), Some(&b"[1, 2]"[..]));
    assert_eq!(batch.header(r, HEADER_ID), Some(&b"e-1"[..]));
    // A null type column: no type header.
    assert_eq!(batch.header(r, HEADER_TYPE), None);
}

#[test]
fn outbox_skips_rows_without_aggregate_type_and_refuses_missing_columns() {
    let config = outbox_config();
    let no_kind = event(
        Op::Create,
        Some(("public", "outbox")),
        None,
        Some(outbox_row(Value::Null, Value::Null)),
    );
    assert_eq!(route(&config, &[no_kind]).unwrap().len(), 0);
    let missing = event(
        Op::Create,
        Some(("public", "outbox")),
        None,
        Some(Row::new(cols(&["id"]), vec![Value::Int(1)])),
    );
    let err = route(&config, &[missing]).unwrap_err().to_string();
    assert!(
        err.contains("no column 'kind'") && err.contains("aggregate_type_column"),
        "{err}"
    );
}

#[test]
fn outbox_routes_a_collections_inserts_by_their_fields() {
    // The seeds' connector: MongoDB's order.outbox_events, Debezium's
    // MongoDB outbox field names, the document as the source renders it.
    let mut config = KafkaSinkConfig::new("b:9092");
    config.outbox = Some(
        serde_json::from_value(serde_json::json!({
            "table": "order.outbox_events",
            "id_column": "_id",
            "aggregate_type_column": "aggregatetype",
        }))
        .unwrap(),
    );
    let document = r#"{"_id": {"$oid": "65f0c0ffee0000000000000a"}, "aggregatetype": "Order", "aggregateid": {"$numberLong": "42"}, "type": "OrderCreated", "payload": {"total": 12.5, "lines": [1, 2]}}"#;
    let insert = event(
        Op::Create,
        Some(("order", "outbox_events")),
        None,
        Some(Row::new(
            cols(&[DOCUMENT_COLUMN]),
            vec![Value::Json(document.into())],
        )),
    );
    let batch = route(&config, &[insert]).unwrap();
    assert_eq!(batch.len(), 1);
    let r = batch.get(0).unwrap();
    assert_eq!(&*r.topic, "shop.outbox.Order");
    assert_eq!(key(&batch, r), Some(&b"42"[..]));
    assert_eq!(
        value(&batch, r),
        Some(&br#"{"total": 12.5, "lines": [1, 2]}"#[..])
    );
    assert_eq!(
        batch.header(r, HEADER_ID),
        Some(&b"65f0c0ffee0000000000000a"[..])
    );
    assert_eq!(batch.header(r, HEADER_TYPE), Some(&b"OrderCreated"[..]));
}

#[test]
fn key_bytes_match_the_envelope_key() {
    let key = id_key(7);
    assert_eq!(key_bytes(&key), envelope::key_json(&key));
}

#[test]
fn keys_and_values_follow_the_format_modes() {
    use cdc_engine::format::{Format, TimePrecisionMode};
    use cdc_engine::TextType;
    let config = KafkaSinkConfig::new("b:9092");
    let day = Value::Typed(TextType::Date, "2024-02-29".into());
    let row = Row::new(cols(&["d"]), vec![day]);
    let insert = event(
        Op::Create,
        Some(("public", "t")),
        Some(row.clone()),
        Some(row),
    );
    let mut router = Router::new(&config).unwrap();
    router.set_format(Format {
        time: Some(TimePrecisionMode::Adaptive),
        ..Format::default()
    });
    let mut batch = Batch::default();
    router.route(&insert, 1, &mut batch).unwrap();
    let record = batch.get(0).unwrap();
    // Epoch days, as Debezium's io.debezium.time.Date.
    assert_eq!(key(&batch, record), Some(&br#"{"d":19782}"#[..]));
    let value: serde_json::Value = serde_json::from_slice(value(&batch, record).unwrap()).unwrap();
    assert_eq!(value["after"]["d"], 19782);
    // The default format keeps cdc's text.
    let batch = route(&config, &[insert]).unwrap();
    assert_eq!(
        key(&batch, batch.get(0).unwrap()),
        Some(&br#"{"d":"2024-02-29"}"#[..])
    );
}
