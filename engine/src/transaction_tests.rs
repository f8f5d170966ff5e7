use std::sync::Arc;

use cdc_signal::TableRef;
use proptest::prelude::*;

use super::*;
use crate::envelope::EnvelopeWriter;
use crate::event::{Position, SourceMeta};
use crate::pipeline::{Passthrough, Processor, Staged};

fn meta() -> Arc<SourceMeta> {
    Arc::new(SourceMeta {
        connector: "postgresql",
        name: "cdc".into(),
        db: "app".into(),
        block: &crate::PLAIN_BLOCK,
    })
}

fn change(
    meta: &Arc<SourceMeta>,
    table: &str,
    tx: u64,
    lsn: u64,
    snapshot: SnapshotFlag,
) -> LogItem {
    let columns: Arc<[String]> = Arc::from(vec!["id".to_string()]);
    let row = Row::new(columns, vec![Value::Int(lsn as i64)]);
    LogItem::Event(Event {
        update: None,
        schema: None,
        op: if snapshot == SnapshotFlag::No {
            Op::Create
        } else {
            Op::Read
        },
        table: Some(Arc::new(TableRef::new("public", table))),
        key: Some(row.clone()),
        before: None,
        after: Some(row),
        source: SourceInfo {
            offset: Some(lsn),
            tx_id: Some(tx),
            ts_ms: 1_000 + tx as i64,
            snapshot,
            ..SourceInfo::new(meta.clone(), Position::from_u64(lsn))
        },
        message: None,
        transaction: None,
    })
}

fn commit(tx: u64, end: u64) -> LogItem {
    LogItem::Commit {
        tx_id: Some(tx),
        position: Position::from_u64(end),
    }
}

fn json(event: &Event) -> serde_json::Value {
    let mut out = Vec::new();
    EnvelopeWriter::default().write_value(event, 5, &mut out);
    serde_json::from_slice(&out).expect("valid JSON")
}

#[test]
fn a_transaction_is_framed_by_begin_and_end_as_debezium_writes_them() {
    let meta = meta();
    let mut p = Staged::new(Passthrough, TransactionMetadata::default());
    let mut out = Vec::new();
    for item in [
        change(&meta, "t", 731, 100, SnapshotFlag::No),
        change(&meta, "u", 731, 200, SnapshotFlag::No),
        change(&meta, "t", 731, 300, SnapshotFlag::No),
        commit(731, 400),
        // A commit with nothing captured: no records.
        commit(732, 500),
    ] {
        p.process(item, &mut out);
    }
    let values: Vec<_> = out.iter().map(json).collect();
    assert_eq!(values.len(), 5);
    assert_eq!(
        values[0],
        serde_json::json!({"status": "BEGIN", "id": "731", "event_count": null,
                           "data_collections": null, "ts_ms": 1731})
    );
    assert_eq!(
        values[2]["transaction"],
        serde_json::json!({"id": "731", "total_order": 2, "data_collection_order": 1})
    );
    assert_eq!(
        values[3]["transaction"],
        serde_json::json!({"id": "731", "total_order": 3, "data_collection_order": 2})
    );
    assert_eq!(
        values[4],
        serde_json::json!({"status": "END", "id": "731", "event_count": 3,
                           "data_collections": [{"data_collection": "public.t", "event_count": 2},
                                                {"data_collection": "public.u", "event_count": 1}],
                           "ts_ms": 1731})
    );
    let mut key = Vec::new();
    EnvelopeWriter::default().write_row(out[4].key.as_ref().unwrap(), &mut key);
    assert_eq!(key, br#"{"id":"731"}"#);
}

#[test]
fn snapshot_rows_carry_no_transaction() {
    let meta = meta();
    let mut p = Staged::new(Passthrough, TransactionMetadata::default());
    let mut out = Vec::new();
    p.process(
        change(&meta, "t", 9, 100, SnapshotFlag::Incremental),
        &mut out,
    );
    p.process(commit(9, 200), &mut out);
    assert_eq!(out.len(), 1);
    assert!(out[0].transaction.is_none());
    // Debezium's form: the envelope's `transaction` member is null.
    assert_eq!(json(&out[0])["transaction"], serde_json::Value::Null);
}

proptest! {
    /// Whatever the transactions, every BEGIN has its END, the events
    /// between them are numbered 1..n, per table too, and END counts them.
    #[test]
    fn begin_and_end_pair_and_count(txs in prop::collection::vec(prop::collection::vec(0..3usize, 0..6), 0..8)) {
        let meta = meta();
        let mut p = Staged::new(Passthrough, TransactionMetadata::default());
        let mut out = Vec::new();
        let mut lsn = 10;
        for (n, tables) in txs.iter().enumerate() {
            let tx = 100 + n as u64;
            for &t in tables {
                lsn += 1;
                p.process(change(&meta, ["a", "b", "c"][t], tx, lsn, SnapshotFlag::No), &mut out);
            }
            lsn += 1;
            p.process(commit(tx, lsn), &mut out);
        }
        let mut open: Option<(u64, BTreeMap<String, u64>)> = None;
        let mut boundaries = 0;
        for event in &out {
            match event.transaction.as_deref() {
                Some(TransactionInfo::Boundary { end: false, .. }) => {
                    prop_assert!(open.is_none());
                    open = Some((0, BTreeMap::new()));
                    boundaries += 1;
                }
                Some(TransactionInfo::Boundary { end: true, event_count, data_collections, .. }) => {
                    let (total, per) = open.take().expect("END without BEGIN");
                    prop_assert_eq!(*event_count, Some(total));
                    prop_assert_eq!(data_collections.clone(), per.into_iter().collect::<Vec<_>>());
                }
                Some(TransactionInfo::Order { total_order, data_collection_order, .. }) => {
                    let (total, per) = open.as_mut().expect("an event outside BEGIN/END");
                    *total += 1;
                    let table = event.table.as_ref().map(|t| format!("{}.{}", t.schema, t.name)).unwrap_or_default();
                    let n = per.entry(table).or_default();
                    *n += 1;
                    prop_assert_eq!((*total_order, *data_collection_order), (*total, *n));
                }
                None => prop_assert!(false, "a streamed change without a block"),
            }
        }
        prop_assert!(open.is_none());
        prop_assert_eq!(boundaries, txs.iter().filter(|t| !t.is_empty()).count());
    }
}

#[test]
fn the_same_number_in_another_session_is_another_transaction() {
    let meta = meta();
    let mut p = Staged::new(Passthrough, TransactionMetadata::default());
    let mut out = Vec::new();
    let in_session = |lsn: u64, session: &str| {
        let LogItem::Event(mut event) = change(&meta, "t", 4, lsn, SnapshotFlag::No) else {
            unreachable!()
        };
        event.source.session = Some(Arc::from(session));
        LogItem::Event(event)
    };
    // txnNumber 4 of two sessions, back to back: two BEGIN/END pairs.
    for item in [in_session(100, "a"), in_session(200, "b")] {
        p.process(item, &mut out);
    }
    let statuses: Vec<String> = out
        .iter()
        .map(json)
        .map(|v| v["status"].as_str().unwrap_or("change").to_string())
        .collect();
    assert_eq!(statuses, ["BEGIN", "change", "END", "BEGIN", "change"]);
}
