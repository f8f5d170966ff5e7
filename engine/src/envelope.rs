//! Debezium-compatible JSON: the change envelope (the value) and the key.
//!
//! Consumers built for Debezium (Kafka Connect sinks, Flink, Materialize,
//! ClickHouse) read these unchanged: `{before, after, source, op, ts_ms}` with
//! schemas disabled, and the key as the primary-key columns.

use crate::event::{Event, Op};
use crate::value::{Row, Value, UNAVAILABLE_VALUE_PLACEHOLDER};

const VERSION: &str = concat!("cdc-", env!("CARGO_PKG_VERSION"));

/// Serialise `event` as its envelope JSON, appending to `out`.
/// `ts_ms` is the processing time (Debezium's top-level `ts_ms`).
///
/// Written directly rather than through serde's data model: this runs for
/// every event, and JSON values are copied as the source validated them
/// instead of being parsed again.
pub fn write_value(event: &Event, ts_ms: i64, out: &mut Vec<u8>) {
    out.push(b'{');
    if event.op == Op::Message {
        if let Some(message) = &event.message {
            out.extend_from_slice(b"\"message\":{\"prefix\":");
            write_str(&message.prefix, out);
            out.extend_from_slice(b",\"content\":\"");
            use base64::Engine as _;
            out.extend_from_slice(
                base64::engine::general_purpose::STANDARD
                    .encode(&message.content)
                    .as_bytes(),
            );
            out.extend_from_slice(b"\"},");
        }
    } else {
        out.extend_from_slice(b"\"before\":");
        write_optional_row(event.before.as_ref(), out);
        out.extend_from_slice(b",\"after\":");
        write_optional_row(event.after.as_ref(), out);
        out.push(b',');
    }
    write_source(event, out);
    out.extend_from_slice(b",\"op\":\"");
    out.extend_from_slice(event.op.code().as_bytes());
    out.extend_from_slice(b"\",\"ts_ms\":");
    write_display(ts_ms, out);
    out.push(b'}');
}

/// The envelope as a JSON string, for tests and tools.
pub fn value_json(event: &Event, ts_ms: i64) -> String {
    let mut out = Vec::with_capacity(256);
    write_value(event, ts_ms, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// The key JSON: an object of the primary-key columns.
pub fn key_json(key: &Row) -> Vec<u8> {
    let mut out = Vec::with_capacity(32);
    write_row(key, &mut out);
    out
}

fn write_source(event: &Event, out: &mut Vec<u8>) {
    let s = &event.source;
    out.extend_from_slice(b"\"source\":{\"version\":");
    write_str(VERSION, out);
    out.extend_from_slice(b",\"connector\":");
    write_str(s.meta.connector, out);
    out.extend_from_slice(b",\"name\":");
    write_str(&s.meta.name, out);
    out.extend_from_slice(b",\"ts_ms\":");
    write_display(s.ts_ms, out);
    out.extend_from_slice(b",\"snapshot\":\"");
    out.extend_from_slice(s.snapshot.as_str().as_bytes());
    out.extend_from_slice(b"\",\"db\":");
    write_str(&s.meta.db, out);
    match &event.table {
        Some(table) => {
            out.extend_from_slice(b",\"schema\":");
            write_str(&table.schema, out);
            out.extend_from_slice(b",\"table\":");
            write_str(&table.name, out);
        }
        None => out.extend_from_slice(b",\"schema\":null,\"table\":null"),
    }
    out.extend_from_slice(b",\"txId\":");
    match s.tx_id {
        Some(tx) => write_display(tx, out),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"lsn\":");
    match s.lsn {
        Some(lsn) => write_display(lsn, out),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"position\":\"");
    s.position.write_hex(out);
    out.extend_from_slice(b"\"}");
}

fn write_optional_row(row: Option<&Row>, out: &mut Vec<u8>) {
    match row {
        Some(row) => write_row(row, out),
        None => out.extend_from_slice(b"null"),
    }
}

/// A row as a JSON object.
pub fn write_row(row: &Row, out: &mut Vec<u8>) {
    out.push(b'{');
    for (i, (name, value)) in row.columns.iter().zip(&row.values).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(name, out);
        out.push(b':');
        write_json_value(value, out);
    }
    out.push(b'}');
}

/// One value as JSON (see [`Value`] for the mapping).
pub fn write_json_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Int(i) => write_display(*i, out),
        Value::Float(f) => {
            // serde_json prints finite floats exactly (ryu); non-finite ones
            // never reach here as Float.
            let _ = serde_json::to_writer(&mut *out, f);
        }
        Value::Text(text) => write_str(text, out),
        // Validated by the source when the value was built.
        Value::Json(raw) => out.extend_from_slice(raw.as_bytes()),
        Value::Bytes(bytes) => {
            use base64::Engine as _;
            out.push(b'"');
            out.extend_from_slice(
                base64::engine::general_purpose::STANDARD
                    .encode(bytes)
                    .as_bytes(),
            );
            out.push(b'"');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json_value(item, out);
            }
            out.push(b']');
        }
        Value::Unchanged => write_str(UNAVAILABLE_VALUE_PLACEHOLDER, out),
    }
}

/// A JSON string with escapes.
fn write_str(text: &str, out: &mut Vec<u8>) {
    // Writing a str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

fn write_display(n: impl itoa::Integer, out: &mut Vec<u8>) {
    let mut buf = itoa::Buffer::new();
    out.extend_from_slice(buf.format(n).as_bytes());
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use cdc_signal::TableRef;

    use super::*;
    use crate::event::{Position, SnapshotFlag, SourceInfo, SourceMeta};
    use crate::value::Value;

    #[test]
    fn update_envelope_is_debezium_shaped() {
        let cols: Arc<[String]> = Arc::from(vec!["id".to_string(), "name".to_string()]);
        let event = Event {
            op: Op::Update,
            table: Some(Arc::new(TableRef::new("public", "orders"))),
            key: Some(Row::new(
                Arc::from(vec!["id".to_string()]),
                vec![Value::Int(1)],
            )),
            before: None,
            after: Some(Row::new(cols, vec![Value::Int(1), Value::Text("a".into())])),
            source: SourceInfo {
                meta: Arc::new(SourceMeta {
                    connector: "postgresql",
                    name: "cdc".into(),
                    db: "app".into(),
                }),
                position: Position::from_u64(0x16B3748),
                lsn: Some(0x16B3748),
                tx_id: Some(750),
                ts_ms: 1_700_000_000_000,
                snapshot: SnapshotFlag::No,
            },
            message: None,
        };
        let json: serde_json::Value =
            serde_json::from_str(&value_json(&event, 5)).expect("valid json");
        assert_eq!(json["op"], "u");
        assert_eq!(json["before"], serde_json::Value::Null);
        assert_eq!(json["after"]["name"], "a");
        assert_eq!(json["source"]["table"], "orders");
        assert_eq!(json["source"]["schema"], "public");
        assert_eq!(json["source"]["lsn"], 0x16B3748);
        assert_eq!(json["source"]["txId"], 750);
        assert_eq!(json["source"]["snapshot"], "false");
        assert_eq!(json["ts_ms"], 5);
        let key = event.key.as_ref().map(key_json).unwrap_or_default();
        assert_eq!(key, br#"{"id":1}"#);
    }
}
