use std::sync::Arc;

use proptest::prelude::*;

use cdc_signal::TableRef;

use super::*;
use crate::event::{Position, SnapshotFlag, SourceInfo, SourceMeta};
use crate::value::Value;

#[test]
fn update_envelope_is_debezium_shaped() {
    let cols: Arc<[String]> = Arc::from(vec!["id".to_string(), "name".to_string()]);
    let event = Event {
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
                block: &crate::PLAIN_BLOCK,
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
    };
    let json: serde_json::Value = serde_json::from_str(&value_json(&event, 5)).expect("valid json");
    assert_eq!(json["op"], "u");
    assert_eq!(json["before"], serde_json::Value::Null);
    assert_eq!(json["after"]["name"], "a");
    assert_eq!(json["source"]["table"], "orders");
    assert_eq!(json["source"]["schema"], "public");
    assert_eq!(json["source"]["txId"], 750);
    assert_eq!(json["source"]["snapshot"], "false");
    assert_eq!(json["source"]["db"], "app");
    assert_eq!(json["source"]["ts_us"], 1_700_000_000_000_000i64);
    assert_eq!(json["source"]["ts_ns"], 1_700_000_000_000_000_000i64);
    assert_eq!(json["source"]["position"], "00000000016b3748");
    assert_eq!(json["ts_ms"], 5);
    assert_eq!(
        (json["ts_us"].clone(), json["ts_ns"].clone()),
        (5_000.into(), 5_000_000.into())
    );
    let key = event.key.as_ref().map(key_json).unwrap_or_default();
    assert_eq!(key, br#"{"id":1}"#);
}

#[test]
fn unchanged_toast_takes_debeziums_placeholder_for_the_column_type() {
    use crate::format::{BinaryMode, Format, TimePrecisionMode};
    use crate::schema::{ColumnKind, ColumnSchema, TableSchema};
    let types = [
        ("t", "text", ColumnKind::String),
        (
            "ta",
            "text[]",
            ColumnKind::Array(Box::new(ColumnKind::String)),
        ),
        (
            "va",
            "character varying(20)[]",
            ColumnKind::Array(Box::new(ColumnKind::String)),
        ),
        (
            "ia",
            "integer[]",
            ColumnKind::Array(Box::new(ColumnKind::Int32)),
        ),
        (
            "da",
            "date[]",
            ColumnKind::Array(Box::new(ColumnKind::Date)),
        ),
        (
            "na",
            "numeric[]",
            ColumnKind::Array(Box::new(ColumnKind::Decimal {
                precision: None,
                scale: None,
            })),
        ),
        ("b", "bytea", ColumnKind::Bytes),
    ];
    let table = Arc::new(TableRef::new("public", "t"));
    let schema = Arc::new(TableSchema {
        table: table.clone(),
        version: 1,
        columns: types
            .iter()
            .map(|(name, type_name, kind)| ColumnSchema::new(*name, *type_name, kind.clone()))
            .collect(),
        key: Vec::new(),
    });
    let columns: Arc<[String]> =
        Arc::from(types.iter().map(|t| t.0.to_string()).collect::<Vec<_>>());
    let mut event = pooled_event(0, 0, true, 1, 0, false, Vec::new());
    event.table = Some(table);
    event.schema = Some(schema);
    event.after = Some(Row::new(columns, vec![Value::Unchanged; types.len()]));
    let after = |format: Format| -> serde_json::Value {
        let mut out = Vec::new();
        EnvelopeWriter::with_format(format).write_value(&event, 0, &mut out);
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap_or_default();
        // With Connect schemas the envelope is the payload.
        match value.get("payload") {
            Some(payload) => payload["after"].clone(),
            None => value["after"].clone(),
        }
    };
    let text = serde_json::json!(UNAVAILABLE_VALUE_PLACEHOLDER);
    let numbers: Vec<u8> = UNAVAILABLE_VALUE_PLACEHOLDER.bytes().collect();
    // cdc's own format: the text whatever the type.
    let plain = after(Format::default());
    assert!(
        types.iter().all(|(name, _, _)| plain[*name] == text),
        "{plain}"
    );
    let adaptive = after(Format::debezium());
    assert_eq!(adaptive["t"], text);
    assert_eq!(adaptive["ta"], serde_json::json!([text]));
    assert_eq!(adaptive["va"], serde_json::json!([text]));
    assert_eq!(adaptive["ia"], serde_json::json!(numbers));
    assert_eq!(adaptive["da"], serde_json::json!(numbers));
    assert_eq!(adaptive["na"], serde_json::Value::Null);
    assert_eq!(adaptive["b"], "X19kZWJleml1bV91bmF2YWlsYWJsZV92YWx1ZQ==");
    let strings = after(Format {
        time: Some(TimePrecisionMode::IsoString),
        binary: Some(BinaryMode::Base64),
        ..Format::default()
    });
    assert_eq!(strings["da"], serde_json::Value::Null);
    assert_eq!(strings["b"], serde_json::Value::Null);
    assert_eq!(strings["ia"], serde_json::json!(numbers));
    let hex = after(Format {
        binary: Some(BinaryMode::Hex),
        ..Format::default()
    });
    assert_eq!(hex["b"], text);
}

fn escaped(text: &str) -> String {
    let mut out = Vec::new();
    write_str(text, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

#[test]
fn strings_escape_like_serde_json() {
    for text in [
        "",
        "plain ascii text, longer than one word",
        "\"quoted\" and \\ back\\slashed",
        "\u{0}\u{1}\u{8}\t\n\u{b}\u{c}\r\u{1f} \u{7f}",
        "héllo wörld ✓ 𝄞 \u{80}\u{a0}",
        "1234567\"",
        "12345678\n",
    ] {
        assert_eq!(
            escaped(text),
            serde_json::to_string(text).unwrap_or_default()
        );
    }
}

proptest! {
    #[test]
    fn any_string_escapes_like_serde_json(text in any::<String>()) {
        prop_assert_eq!(escaped(&text), serde_json::to_string(&text).unwrap_or_default());
    }

    #[test]
    fn ascii_heavy_strings_escape_like_serde_json(text in "[ -~\\x00-\\x1f\"\\\\é]{0,40}") {
        prop_assert_eq!(escaped(&text), serde_json::to_string(&text).unwrap_or_default());
    }
}

/// Events drawn from small pools of shared tables, column sets and
/// sources, so a reused writer meets both repeats and changes.
fn pooled_event(
    table: usize,
    columns: usize,
    fresh_columns: bool,
    position: u64,
    ts_ms: i64,
    incremental: bool,
    values: Vec<i64>,
) -> Event {
    type Pools = (Vec<Arc<TableRef>>, Vec<Arc<[String]>>, Arc<SourceMeta>);
    thread_local! {
        static POOLS: Pools = (
            (0..3).map(|i| Arc::new(TableRef::new("s", format!("t{i}")))).collect(),
            (0..3)
                .map(|i| Arc::from((0..=i).map(|c| format!("c{c}\"{i}")).collect::<Vec<_>>()))
                .collect(),
            Arc::new(SourceMeta { connector: "postgresql", name: "cdc".into(), db: "app".into(), block: &crate::PLAIN_BLOCK }),
        );
    }
    POOLS.with(|(tables, column_sets, meta)| {
        let names = if fresh_columns {
            Arc::from(vec![format!("fresh{columns}")])
        } else {
            column_sets[columns % column_sets.len()].clone()
        };
        let row = Row::new(names, values.into_iter().map(Value::Int).collect());
        Event {
            update: None,
            schema: None,
            op: Op::Update,
            table: (table < tables.len()).then(|| tables[table].clone()),
            key: None,
            before: None,
            after: Some(row),
            source: SourceInfo {
                session: None,
                meta: meta.clone(),
                position: Position::from_u64(position),
                offset: Some(position),
                tx_id: Some(position / 2),
                ts_ms,
                ts_us: ts_ms * 1000,
                last_commit: None,
                snapshot: if incremental {
                    SnapshotFlag::Incremental
                } else {
                    SnapshotFlag::No
                },
            },
            message: None,
            transaction: None,
        }
    })
}

proptest! {
    #[test]
    fn a_reused_writer_writes_what_a_fresh_one_does(
        events in proptest::collection::vec(
            (0usize..4, 0usize..3, any::<bool>(), 0u64..3, 0i64..2, any::<bool>(),
             proptest::collection::vec(any::<i64>(), 0..4)),
            1..40,
        )
    ) {
        let mut writer = EnvelopeWriter::new();
        for (table, columns, fresh, position, ts_ms, incremental, values) in events {
            let event = pooled_event(table, columns, fresh, position, ts_ms, incremental, values);
            let mut reused = Vec::new();
            writer.write_value(&event, 7, &mut reused);
            let mut fresh_out = Vec::new();
            write_value(&event, 7, &mut fresh_out);
            prop_assert_eq!(&reused, &fresh_out);
            if let Some(row) = &event.after {
                let mut key = Vec::new();
                writer.write_row(row, &mut key);
                prop_assert_eq!(key, key_json(row));
            }
        }
    }
}
