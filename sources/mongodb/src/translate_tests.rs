//! Events shaped as MongoDB's "Change Events" reference documents them
//! (insert, update, delete, drop, rename, dropDatabase, invalidate), with
//! tokens whose `_data` leads with the cluster time as the server writes it.

use bson::{doc, Bson, Document, Timestamp};
use cdc_engine::{LogItem, Op, SourceMeta};

use super::*;
use crate::config::CollectionPattern;
use crate::source_block::MONGO_BLOCK;

fn translator() -> Translator {
    let config = MongoConfig::new(
        "mongodb://localhost/?replicaSet=rs0",
        vec![CollectionPattern::parse("shop.*").unwrap_or_else(|e| panic!("{e}"))],
    );
    let meta = Arc::new(SourceMeta {
        connector: "mongodb",
        name: "cdc".into(),
        db: String::new(),
        block: &MONGO_BLOCK,
    });
    Translator::new(Arc::new(config), meta)
}

/// The `_data` of a token at `(seconds, increment)`; `tail` tells events
/// of one cluster time apart (a transaction's operations).
fn token(seconds: u32, increment: u32, tail: u8) -> Document {
    doc! { "_data": format!("82{seconds:08X}{increment:08X}2B02{tail:02X}04") }
}

fn insert(db: &str, coll: &str, at: (u32, u32, u8), full: Document) -> Document {
    let id = full.get("_id").cloned().unwrap_or(Bson::Null);
    doc! {
        "_id": token(at.0, at.1, at.2),
        "operationType": "insert",
        "clusterTime": Timestamp { time: at.0, increment: at.1 },
        "wallTime": bson::DateTime::from_millis(i64::from(at.0) * 1000),
        "ns": { "db": db, "coll": coll },
        "documentKey": { "_id": id },
        "fullDocument": full,
    }
}

fn in_transaction(mut event: Document, txn: i64) -> Document {
    event.insert(
        "lsid",
        doc! { "id": bson::Binary { subtype: bson::spec::BinarySubtype::Uuid, bytes: vec![7; 16] }, "uid": bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: vec![1; 32] } },
    );
    event.insert("txnNumber", Bson::Int64(txn));
    event
}

fn run(t: &mut Translator, events: &[Document]) -> (Vec<LogItem>, Vec<Notice>) {
    let mut out = Vec::new();
    let mut notices = Vec::new();
    for event in events {
        if let Some(n) = t.event(event, &mut out).unwrap_or_else(|e| panic!("{e}")) {
            notices.push(n);
        }
    }
    (out, notices)
}

fn shape(items: &[LogItem]) -> Vec<String> {
    items
        .iter()
        .map(|item| match item {
            LogItem::Event(e) => format!(
                "event {} {}",
                e.op.code(),
                e.table.as_ref().map_or(String::new(), |t| t.to_string())
            ),
            LogItem::Signal { row, .. } => format!("signal {} {}", row.kind, row.id),
            LogItem::Commit { tx_id, .. } => format!("commit {tx_id:?}"),
            LogItem::Heartbeat(_) => "heartbeat".into(),
            LogItem::Schema(_) => "schema".into(),
            LogItem::Resync { .. } => "resync".into(),
        })
        .collect()
}

#[test]
fn a_change_outside_a_transaction_is_followed_by_its_commit() {
    let mut t = translator();
    let (items, notices) = run(
        &mut t,
        &[
            insert("shop", "orders", (100, 1, 0), doc! { "_id": 1, "x": "a" }),
            insert("other", "orders", (100, 2, 0), doc! { "_id": 2 }),
        ],
    );
    assert!(notices.is_empty());
    // The uncaptured collection only moves the position.
    assert_eq!(
        shape(&items),
        ["event c shop.orders", "commit None", "commit None"]
    );
}

#[test]
fn a_transaction_commits_once_when_a_later_cluster_time_shows_it_complete() {
    let mut t = translator();
    let (mut items, _) = run(
        &mut t,
        &[
            in_transaction(insert("shop", "a", (200, 5, 1), doc! { "_id": 1 }), 3),
            in_transaction(insert("shop", "b", (200, 5, 2), doc! { "_id": 2 }), 3),
        ],
    );
    assert_eq!(shape(&items), ["event c shop.a", "event c shop.b"]);
    // An idle token of the same cluster time: the transaction may go on in
    // the next batch.
    t.idle(
        crate::resume::position_of(&token(200, 5, 2)).unwrap_or_else(|e| panic!("{e}")),
        &mut items,
    );
    assert_eq!(items.len(), 2);
    let later = token(200, 6, 0);
    t.idle(
        crate::resume::position_of(&later).unwrap_or_else(|e| panic!("{e}")),
        &mut items,
    );
    assert_eq!(
        shape(&items),
        [
            "event c shop.a",
            "event c shop.b",
            "commit Some(3)",
            "heartbeat"
        ]
    );
    let LogItem::Commit { position, .. } = &items[2] else {
        panic!("{items:?}");
    };
    // The commit is the transaction's last event: resuming after it skips
    // nothing.
    assert_eq!(
        *position,
        crate::resume::position_of(&token(200, 5, 2)).unwrap_or_else(|e| panic!("{e}"))
    );
    let LogItem::Event(e) = &items[0] else {
        panic!("{items:?}");
    };
    assert_eq!(e.source.tx_id, Some(3));
    assert!(e.source.session.is_some());
}

#[test]
fn a_change_after_a_transaction_closes_it_first() {
    let mut t = translator();
    let (items, _) = run(
        &mut t,
        &[
            in_transaction(insert("shop", "a", (300, 1, 1), doc! { "_id": 1 }), 9),
            insert("shop", "a", (300, 2, 0), doc! { "_id": 2 }),
        ],
    );
    assert_eq!(
        shape(&items),
        [
            "event c shop.a",
            "commit Some(9)",
            "event c shop.a",
            "commit None"
        ]
    );
}

#[test]
fn signal_inserts_are_signals_and_watermark_deletes_only_positions() {
    let mut t = translator();
    let delete = doc! {
        "_id": token(400, 3, 0),
        "operationType": "delete",
        "clusterTime": Timestamp { time: 400, increment: 3 },
        "ns": { "db": "cdc", "coll": "signal" },
        "documentKey": { "_id": "w-1-open" },
    };
    let (items, notices) = run(
        &mut t,
        &[
            insert(
                "cdc",
                "signal",
                (400, 1, 0),
                doc! { "_id": "s1", "type": "execute-snapshot", "data": { "data-collections": ["shop.orders"] } },
            ),
            insert(
                "cdc",
                "signal",
                (400, 2, 0),
                doc! { "_id": "s2", "type": "log", "data": "{\"message\":\"hi\"}" },
            ),
            delete,
        ],
    );
    assert!(notices.is_empty(), "{notices:?}");
    assert_eq!(
        shape(&items),
        [
            "signal execute-snapshot s1",
            "commit None",
            "signal log s2",
            "commit None",
            "commit None"
        ]
    );
    let LogItem::Signal { row, .. } = &items[0] else {
        panic!("{items:?}");
    };
    // The data document as JSON the signal parser reads.
    let data: serde_json::Value = serde_json::from_str(row.data.as_deref().unwrap_or("null"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(data["data-collections"][0], "shop.orders");
    let parsed = cdc_signal::parse_in(row, None).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        matches!(parsed, cdc_signal::Command::ExecuteSnapshot { .. }),
        "{parsed:?}"
    );
}

#[test]
fn a_bad_signal_is_one_notice_and_the_stream_goes_on() {
    let mut t = translator();
    let (items, notices) = run(
        &mut t,
        &[
            insert(
                "cdc",
                "signal",
                (500, 1, 0),
                doc! { "_id": "s1", "type": 5 },
            ),
            insert("shop", "orders", (500, 2, 0), doc! { "_id": 1 }),
        ],
    );
    assert_eq!(notices.len(), 1);
    let Notice::BadSignal(line) = &notices[0] else {
        panic!("{notices:?}");
    };
    assert!(
        line.contains("s1") && line.contains("'type' must be a string"),
        "{line}"
    );
    assert!(!line.contains('\n'));
    assert_eq!(
        shape(&items),
        ["commit None", "event c shop.orders", "commit None"]
    );
}

#[test]
fn resync_markers_are_message_events_in_stream_order() {
    let mut t = translator();
    let (items, _) = run(
        &mut t,
        &[insert(
            "cdc",
            "signal",
            (600, 1, 0),
            doc! { "_id": "m1", "type": RESYNC_MARKER_TYPE, "data": "{\"table\":\"shop.orders\",\"phase\":\"begin\"}" },
        )],
    );
    let LogItem::Event(e) = &items[0] else {
        panic!("{items:?}");
    };
    assert_eq!(e.op, Op::Message);
    let message = e.message.as_ref().unwrap_or_else(|| panic!("{e:?}"));
    assert_eq!(message.prefix, RESYNC_PREFIX);
    assert!(message.content.starts_with(b"{\"table\""));
}

#[test]
fn ddl_of_captured_collections_is_one_line_each_and_no_event() {
    let mut t = translator();
    let drop = doc! {
        "_id": token(700, 1, 0),
        "operationType": "drop",
        "clusterTime": Timestamp { time: 700, increment: 1 },
        "ns": { "db": "shop", "coll": "orders" },
    };
    let rename = doc! {
        "_id": token(700, 2, 0),
        "operationType": "rename",
        "clusterTime": Timestamp { time: 700, increment: 2 },
        "ns": { "db": "shop", "coll": "carts" },
        "to": { "db": "archive", "coll": "carts" },
    };
    let drop_db = doc! {
        "_id": token(700, 3, 0),
        "operationType": "dropDatabase",
        "clusterTime": Timestamp { time: 700, increment: 3 },
        "ns": { "db": "shop" },
    };
    let invalidate = doc! {
        "_id": token(700, 4, 0),
        "operationType": "invalidate",
        "clusterTime": Timestamp { time: 700, increment: 4 },
    };
    let (items, notices) = run(&mut t, &[drop, rename, drop_db, invalidate]);
    assert_eq!(shape(&items), ["commit None", "commit None", "commit None"]);
    assert_eq!(
        notices[..3],
        [
            Notice::Ddl("collection shop.orders: drop".into()),
            Notice::Ddl("collection shop.carts renamed to archive.carts".into()),
            Notice::Ddl("database shop dropped".into()),
        ]
    );
    assert!(matches!(notices[3], Notice::Invalidated(_)));
}

#[test]
fn checkpoints_never_repeat_or_go_back() {
    let mut t = translator();
    let mut out = Vec::new();
    let at = |s, i| crate::resume::position_of(&token(s, i, 0)).unwrap_or_else(|e| panic!("{e}"));
    t.idle(at(800, 2), &mut out);
    t.idle(at(800, 2), &mut out);
    t.idle(at(800, 1), &mut out);
    assert_eq!(shape(&out), ["heartbeat"]);
}
