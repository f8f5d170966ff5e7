//! Debezium-compatible JSON: the change envelope (the value) and the key.
//!
//! Consumers built for Debezium (Kafka Connect sinks, Flink, Materialize,
//! ClickHouse) read these unchanged: `{before, after, source, op, ts_ms}` with
//! schemas disabled, and the key as the primary-key columns.

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use crate::event::{Event, Op};
use crate::value::Row;

const VERSION: &str = concat!("cdc-", env!("CARGO_PKG_VERSION"));

/// Serialise `event` as its envelope JSON, appending to `out`.
/// `ts_ms` is the processing time (Debezium's top-level `ts_ms`).
pub fn write_value(event: &Event, ts_ms: i64, out: &mut Vec<u8>) {
    // Serialising plain data into a Vec cannot fail: every Serialize impl
    // here is infallible and the writer is memory.
    let _ = serde_json::to_writer(out, &Envelope { event, ts_ms });
}

/// The envelope as a JSON string, for tests and tools.
pub fn value_json(event: &Event, ts_ms: i64) -> String {
    let mut out = Vec::with_capacity(256);
    write_value(event, ts_ms, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// The key JSON: an object of the primary-key columns.
pub fn key_json(key: &Row) -> Vec<u8> {
    serde_json::to_vec(key).unwrap_or_default()
}

struct Envelope<'a> {
    event: &'a Event,
    ts_ms: i64,
}

impl Serialize for Envelope<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let e = self.event;
        let mut map = serializer.serialize_map(None)?;
        if e.op == Op::Message {
            if let Some(message) = &e.message {
                map.serialize_entry("message", &MessageJson(message))?;
            }
        } else {
            map.serialize_entry("before", &e.before)?;
            map.serialize_entry("after", &e.after)?;
        }
        map.serialize_entry("source", &SourceJson(e))?;
        map.serialize_entry("op", e.op.code())?;
        map.serialize_entry("ts_ms", &self.ts_ms)?;
        map.end()
    }
}

struct SourceJson<'a>(&'a Event);

impl Serialize for SourceJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let e = self.0;
        let s = &e.source;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("version", VERSION)?;
        map.serialize_entry("connector", s.meta.connector)?;
        map.serialize_entry("name", &s.meta.name)?;
        map.serialize_entry("ts_ms", &s.ts_ms)?;
        map.serialize_entry("snapshot", s.snapshot.as_str())?;
        map.serialize_entry("db", &s.meta.db)?;
        match &e.table {
            Some(table) => {
                map.serialize_entry("schema", &table.schema)?;
                map.serialize_entry("table", &table.name)?;
            }
            None => {
                map.serialize_entry("schema", &None::<&str>)?;
                map.serialize_entry("table", &None::<&str>)?;
            }
        }
        map.serialize_entry("txId", &s.tx_id)?;
        map.serialize_entry("lsn", &s.lsn)?;
        map.serialize_entry("position", &s.position)?;
        map.end()
    }
}

struct MessageJson<'a>(&'a crate::event::LogicalMessage);

impl Serialize for MessageJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use base64::Engine as _;
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("prefix", &self.0.prefix)?;
        map.serialize_entry(
            "content",
            &base64::engine::general_purpose::STANDARD.encode(&self.0.content),
        )?;
        map.end()
    }
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
