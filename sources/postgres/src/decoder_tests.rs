//! The decoder and tables captured while streaming (created later).

use bytes::Bytes;

use super::*;
use crate::catalog::ColumnInfo;
use crate::pgoutput::{encode, RelationColumn, ReplicaIdentity};

fn info(name: &str, oid: u32) -> TableInfo {
    let column = |name: &str| ColumnInfo {
        name: name.into(),
        type_oid: 23,
        type_sql: "integer".into(),
        type_mod: -1,
        value_oid: 23,
        not_null: false,
        enum_labels: None,
        default_expr: None,
    };
    TableInfo {
        oid,
        table: TableRef::new("public", name),
        columns: vec![column("id"), column("v")],
        key: vec!["id".into()],
        replica_identity: 'd',
        partitioned: false,
        money_digits: 2,
    }
}

fn relation(name: &str, oid: u32) -> LogicalMessage {
    let column = |name: &str, is_key| RelationColumn {
        is_key,
        name: name.into(),
        type_oid: 23,
        type_modifier: -1,
    };
    LogicalMessage::Relation(Relation {
        oid,
        namespace: "public".into(),
        name: name.into(),
        replica_identity: ReplicaIdentity::Default,
        columns: vec![column("id", true), column("v", false)],
    })
}

fn insert(oid: u32, id: &str) -> LogicalMessage {
    LogicalMessage::Insert {
        relation: oid,
        new: TupleData(vec![
            TupleValue::Text(Bytes::copy_from_slice(id.as_bytes())),
            TupleValue::Text(Bytes::from_static(b"0")),
        ]),
    }
}

fn marker(table: &str) -> LogicalMessage {
    LogicalMessage::Message {
        transactional: true,
        lsn: 0x1234,
        prefix: CAPTURE_PREFIX.into(),
        content: Bytes::from(crate::late_tables::marker(&TableRef::new("public", table))),
    }
}

fn feed(decoder: &mut Decoder, messages: Vec<LogicalMessage>) -> Vec<LogItem> {
    let mut out = Vec::new();
    for message in messages {
        decoder
            .handle(0x1000, encode(&message), &mut out)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    out
}

fn decoder(late: &LateTables) -> Decoder {
    let meta = Arc::new(SourceMeta {
        connector: "postgresql",
        name: "cdc".into(),
        db: "db".into(),
        block: &crate::source_block::POSTGRES_BLOCK,
    });
    Decoder::new(
        meta,
        Vec::new(),
        TableRef::new("cdc", "signal"),
        late.clone(),
    )
}

#[test]
fn a_table_handed_in_is_captured_from_its_relation_with_its_shape_first() {
    let late = LateTables::default();
    let mut decoder = decoder(&late);
    // Not handed in: ignored, as any table of the publication not captured.
    assert!(feed(&mut decoder, vec![relation("other", 7), insert(7, "1")]).is_empty());
    late.insert(info("late", 8));
    let out = feed(&mut decoder, vec![relation("late", 8), insert(8, "1")]);
    match out.as_slice() {
        [LogItem::Schema(schema), LogItem::Event(event)] => {
            assert_eq!(*schema.table, TableRef::new("public", "late"));
            assert_eq!(
                (schema.version, schema.key.clone()),
                (1, vec!["id".to_string()])
            );
            assert_eq!(event.op, Op::Create);
            assert!(event.key.is_some());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_capture_marker_asks_for_a_snapshot_with_an_id_from_its_position() {
    let late = LateTables::default();
    let mut decoder = decoder(&late);
    // A marker of a table this run does not capture (refused, or another
    // engine's): nothing.
    assert!(feed(&mut decoder, vec![marker("late")]).is_empty());
    late.insert(info("late", 8));
    let out = feed(&mut decoder, vec![marker("late"), relation("late", 8)]);
    match out.as_slice() {
        [LogItem::Schema(_), LogItem::Signal { row, .. }] => {
            assert_eq!(row.kind, "execute-snapshot");
            assert_eq!(row.id, format!("{NEW_TABLE_SIGNAL}-0/1234"));
            let command = cdc_signal::parse(row).unwrap_or_else(|e| panic!("{e}"));
            assert!(
                matches!(&command, cdc_signal::Command::ExecuteSnapshot { tables, .. }
                    if tables == &[TableRef::new("public", "late")]),
                "{command:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    // Its Relation after the marker brings no second shape.
    let out = feed(&mut decoder, vec![insert(8, "2")]);
    assert!(matches!(out.as_slice(), [LogItem::Event(_)]), "{out:?}");
}

#[test]
fn a_table_handed_in_after_its_relation_is_captured_from_its_marker() {
    // A publication of all tables sends the Relation before cdc knows the
    // table.
    let late = LateTables::default();
    let mut decoder = decoder(&late);
    assert!(feed(&mut decoder, vec![relation("late", 8), insert(8, "1")]).is_empty());
    late.insert(info("late", 8));
    let out = feed(&mut decoder, vec![marker("late"), insert(8, "2")]);
    assert!(
        matches!(
            out.as_slice(),
            [
                LogItem::Schema(_),
                LogItem::Signal { .. },
                LogItem::Event(_)
            ]
        ),
        "{out:?}"
    );
}

#[test]
fn in_binary_mode_a_column_without_a_decoder_asks_for_text_before_its_shape_is_taken() {
    let late = LateTables::default();
    let mut decoder = decoder(&late);
    decoder.set_binary(true);
    let mut real = info("late", 8);
    real.columns[1].type_oid = 700;
    real.columns[1].value_oid = 700;
    late.insert(real);
    let LogicalMessage::Relation(mut rel) = relation("late", 8) else {
        unreachable!()
    };
    rel.columns[1].type_oid = 700;
    let mut out = Vec::new();
    let err = decoder
        .handle(
            0x1000,
            encode(&LogicalMessage::Relation(rel.clone())),
            &mut out,
        )
        .unwrap_err();
    assert!(
        matches!(&err, DecoderError::NeedsText(why) if why.contains("public.late.v")),
        "{err}"
    );
    assert!(out.is_empty(), "{out:?}");
    // The text session that follows takes the same relation in, its shape
    // once.
    decoder.reset();
    decoder.set_binary(false);
    let out = feed(&mut decoder, vec![LogicalMessage::Relation(rel)]);
    assert!(matches!(out.as_slice(), [LogItem::Schema(_)]), "{out:?}");
}

#[test]
fn in_binary_mode_values_decode_from_binary_and_a_malformed_one_asks_for_text() {
    let late = LateTables::default();
    let mut decoder = decoder(&late);
    decoder.set_binary(true);
    late.insert(info("late", 8));
    let row = |v: &'static [u8]| LogicalMessage::Insert {
        relation: 8,
        new: TupleData(vec![
            TupleValue::Binary(Bytes::from_static(&[0, 0, 0, 7])),
            TupleValue::Binary(Bytes::from_static(v)),
        ]),
    };
    let out = feed(
        &mut decoder,
        vec![relation("late", 8), row(&[0xff, 0xff, 0xff, 0xfe])],
    );
    match out.as_slice() {
        [LogItem::Schema(_), LogItem::Event(event)] => {
            let after = event.after.as_ref().unwrap_or_else(|| panic!("{event:?}"));
            assert_eq!(after.values, vec![Value::Int(7), Value::Int(-2)]);
        }
        other => panic!("{other:?}"),
    }
    let mut out = Vec::new();
    let err = decoder
        .handle(0x1000, encode(&row(&[1, 2])), &mut out)
        .unwrap_err();
    assert!(
        matches!(&err, DecoderError::NeedsText(why) if why.contains("int4 is not 4 bytes")),
        "{err}"
    );
}

/// A composite key declared out of column order (`PRIMARY KEY (v, id)`):
/// the Relation flags its columns in column order, which is the same key,
/// not a change of shape; events keep the key order.
#[test]
fn a_composite_key_out_of_column_order_is_no_schema_change() {
    let late = LateTables::default();
    let mut table = info("ck", 9);
    table.key = vec!["v".into(), "id".into()];
    let meta = Arc::new(SourceMeta {
        connector: "postgresql",
        name: "cdc".into(),
        db: "db".into(),
        block: &crate::source_block::POSTGRES_BLOCK,
    });
    let mut decoder = Decoder::new(meta, vec![table], TableRef::new("cdc", "signal"), late);
    let LogicalMessage::Relation(mut both_keyed) = relation("ck", 9) else {
        unreachable!("relation() builds a Relation")
    };
    for column in &mut both_keyed.columns {
        column.is_key = true;
    }
    let out = feed(
        &mut decoder,
        vec![LogicalMessage::Relation(both_keyed), insert(9, "1")],
    );
    match out.as_slice() {
        [LogItem::Event(event)] => {
            let key = event.key.as_ref().map(|k| k.columns.to_vec());
            assert_eq!(key, Some(vec!["v".to_string(), "id".to_string()]));
        }
        other => panic!("{other:?}"),
    }
}
