//! Unit tests of `change.rs`. The events are copied in shape from MongoDB's
//! "Change Events" reference (the example of each operation type: its
//! fields and their types, with the reference's values where it shows them);
//! `tests/golden_events.rs` checks the same shapes against Debezium's code.

use bson::{doc, Binary, Bson, DateTime, Document, Timestamp};
use proptest::prelude::*;

use super::*;

const TOKEN: &str = "82635019A0000000012B022C0100296E5A1004AB1154ACACD849A48C61756D70D3B21F463C6F7065726174696F6E54797065003C696E736572740046646F63756D656E744B65790046645F69640064635019A078BE67426D7CF4D2000004";

fn oid() -> bson::oid::ObjectId {
    bson::oid::ObjectId::parse_str("599af247bb69cd89961c986d").unwrap()
}

fn event(op: &str) -> Document {
    doc! {
        "_id": { "_data": TOKEN },
        "operationType": op,
        "clusterTime": Timestamp { time: 0x6350_19A0, increment: 1 },
        "wallTime": DateTime::from_millis(1_666_193_824_123),
    }
}

fn with(mut doc: Document, extra: Document) -> Document {
    doc.extend(extra);
    doc
}

fn row(change: &Change) -> &RowChange {
    match &change.kind {
        ChangeKind::Row(row) => row,
        other => panic!("not a row change: {other:?}"),
    }
}

#[test]
fn insert() {
    let raw = with(
        event("insert"),
        doc! {
            "collectionUUID": Binary { subtype: bson::spec::BinarySubtype::Uuid, bytes: vec![7; 16] },
            "ns": { "db": "engineering", "coll": "users" },
            "documentKey": { "userName": "alice123", "_id": oid() },
            "fullDocument": { "_id": oid(), "userName": "alice123", "name": "Alice" },
        },
    );
    let change = parse_change(&raw).unwrap();
    assert_eq!(
        change.cluster_time,
        ClusterTime {
            seconds: 0x6350_19A0,
            increment: 1
        }
    );
    assert_eq!(change.wall_time_ms, Some(1_666_193_824_123));
    assert_eq!(change.ts_ms(), 1_666_193_824_123);
    assert_eq!(change.token, doc! { "_data": TOKEN });
    assert_eq!(change.position, resume::position_of(&change.token).unwrap());
    let row = row(&change);
    assert_eq!((row.op, row.op.op()), (RowOp::Insert, Op::Create));
    assert_eq!(
        (row.db.as_str(), row.collection.as_str()),
        ("engineering", "users")
    );
    // Debezium keys on `_id` alone, not the shard key.
    assert_eq!(row.key, r#"{"$oid": "599af247bb69cd89961c986d"}"#);
    assert_eq!(
        row.after.as_deref(),
        Some(
            r#"{"_id": {"$oid": "599af247bb69cd89961c986d"},"userName": "alice123","name": "Alice"}"#
        )
    );
    assert_eq!(
        (&row.before, &row.update, &row.transaction),
        (&None, &None, &None)
    );
}

#[test]
fn update_with_description_and_images() {
    let raw = with(
        event("update"),
        doc! {
            "ns": { "db": "engineering", "coll": "users" },
            "documentKey": { "_id": oid() },
            "updateDescription": {
                "updatedFields": { "email": "alice@10gen.com", "n": 1i64 },
                "removedFields": ["phoneNumber"],
                "truncatedArrays": [{ "field": "vacation_time", "newSize": 36 }],
                "disambiguatedPaths": { "a.0": ["a", "0"] },
            },
            "fullDocument": { "_id": oid(), "email": "alice@10gen.com" },
            "fullDocumentBeforeChange": { "_id": oid(), "phoneNumber": "555" },
        },
    );
    let change = parse_change(&raw).unwrap();
    let row = row(&change);
    assert_eq!(row.op.op(), Op::Update);
    let update = row.update.as_ref().unwrap();
    assert_eq!(
        update.updated_fields.as_deref(),
        Some(r#"{"email": "alice@10gen.com", "n": 1}"#)
    );
    assert_eq!(update.removed_fields, ["phoneNumber"]);
    assert_eq!(update.truncated_arrays, [("vacation_time".to_string(), 36)]);
    assert_eq!(update.disambiguated_paths, Some(doc! { "a.0": ["a", "0"] }));
    assert!(row
        .after
        .as_deref()
        .unwrap()
        .contains(r#""email": "alice@10gen.com""#));
    assert!(row
        .before
        .as_deref()
        .unwrap()
        .contains(r#""phoneNumber": "555""#));
}

#[test]
fn replace_and_delete_take_only_their_documents() {
    let base = doc! { "ns": { "db": "d", "coll": "c" }, "documentKey": { "_id": 5 } };
    let replace = parse_change(&with(
        with(event("replace"), base.clone()),
        doc! { "fullDocument": { "_id": 5, "x": 1 }, "updateDescription": Bson::Null },
    ))
    .unwrap();
    let r = row(&replace);
    assert_eq!((r.op, r.op.op()), (RowOp::Replace, Op::Update));
    assert_eq!(r.after.as_deref(), Some(r#"{"_id": 5,"x": 1}"#));
    assert_eq!(r.update, None);
    // A delete's fullDocument (never sent) would not become `after`.
    let delete = parse_change(&with(
        with(event("delete"), base),
        doc! { "fullDocument": { "_id": 5 }, "fullDocumentBeforeChange": { "_id": 5, "x": 1 } },
    ))
    .unwrap();
    let d = row(&delete);
    assert_eq!(
        (d.op.op(), d.key.as_str(), d.after.as_deref()),
        (Op::Delete, "5", None)
    );
    assert_eq!(d.before.as_deref(), Some(r#"{"_id": 5,"x": 1}"#));
}

#[test]
fn an_update_whose_lookup_found_nothing_has_no_after() {
    let raw = with(
        event("update"),
        doc! {
            "ns": { "db": "d", "coll": "c" },
            "documentKey": { "_id": 5 },
            "updateDescription": { "updatedFields": {}, "removedFields": [] },
            "fullDocument": Bson::Null,
        },
    );
    let change = parse_change(&raw).unwrap();
    let row = row(&change);
    assert_eq!(row.after, None);
    let update = row.update.as_ref().unwrap();
    assert_eq!(update.updated_fields.as_deref(), Some("{}"));
    assert!(update.removed_fields.is_empty() && update.truncated_arrays.is_empty());
}

#[test]
fn transactions_carry_lsid_and_txn_number() {
    let lsid = doc! {
        "id": Binary { subtype: bson::spec::BinarySubtype::Uuid, bytes: vec![0xa0; 16] },
        "uid": Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: vec![1; 32] },
    };
    let raw = with(
        event("insert"),
        doc! {
            "ns": { "db": "shop", "coll": "orders" },
            "documentKey": { "_id": 1 },
            "fullDocument": { "_id": 1 },
            "lsid": lsid.clone(),
            "txnNumber": 3i64,
        },
    );
    let change = parse_change(&raw).unwrap();
    let tx = row(&change).transaction.clone().unwrap();
    assert_eq!(tx.txn_number, 3);
    assert_eq!(tx.lsid, extjson::document_json(&lsid));
    assert!(tx
        .lsid
        .starts_with(r#"{"id": {"$binary": "oKCgoKCgoKCgoKCgoKCgoA==","$type": "04"},"uid""#));
    assert_eq!(tx.transaction_id(), format!("{}:3", tx.lsid));
    // Half of the pair is no session transaction (Debezium needs both).
    let mut half = raw.clone();
    half.remove("txnNumber");
    assert_eq!(row(&parse_change(&half).unwrap()).transaction, None);
}

#[test]
fn ddl_events() {
    let ns = |coll: &str| doc! { "ns": { "db": "engineering", "coll": coll } };
    let cases = [
        ("create", ns("projects"), DdlKind::Create),
        ("createIndexes", ns("projects"), DdlKind::CreateIndexes),
        ("dropIndexes", ns("projects"), DdlKind::DropIndexes),
        ("modify", ns("projects"), DdlKind::Modify),
        ("shardCollection", ns("projects"), DdlKind::ShardCollection),
        (
            "reshardCollection",
            ns("projects"),
            DdlKind::ReshardCollection,
        ),
        (
            "refineCollectionShardKey",
            ns("projects"),
            DdlKind::RefineCollectionShardKey,
        ),
        ("drop", ns("archive"), DdlKind::Drop),
    ];
    for (op, extra, kind) in cases {
        let description =
            doc! { "indexes": [{ "v": 2, "key": { "owner": 1 }, "name": "owner_1" }] };
        let raw = with(
            with(event(op), extra),
            doc! { "operationDescription": description.clone() },
        );
        let change = parse_change(&raw).unwrap();
        let ChangeKind::Ddl(ddl) = change.kind else {
            panic!("{op}: not DDL");
        };
        assert_eq!(ddl.kind, kind, "{op}");
        assert_eq!(ddl.db, "engineering");
        assert!(ddl.collection.is_some() && ddl.to.is_none());
        assert_eq!(ddl.description, Some(description));
    }
    let rename = with(
        with(event("rename"), ns("projects")),
        doc! { "to": { "db": "engineering", "coll": "archive" } },
    );
    let ChangeKind::Ddl(ddl) = parse_change(&rename).unwrap().kind else {
        panic!("rename: not DDL");
    };
    assert_eq!(ddl.to, Some(("engineering".into(), "archive".into())));
    let drop_db = with(
        event("dropDatabase"),
        doc! { "ns": { "db": "engineering" } },
    );
    let ChangeKind::Ddl(ddl) = parse_change(&drop_db).unwrap().kind else {
        panic!("dropDatabase: not DDL");
    };
    assert_eq!((ddl.kind, ddl.collection), (DdlKind::DropDatabase, None));
    assert_eq!(
        parse_change(&event("invalidate")).unwrap().kind,
        ChangeKind::Invalidate
    );
}

#[test]
fn malformed_events_are_typed_errors() {
    let ok = with(
        event("delete"),
        doc! { "ns": { "db": "d", "coll": "c" }, "documentKey": { "_id": 1 } },
    );
    let err = |doc: &Document| parse_change(doc).unwrap_err();
    assert_eq!(
        err(&with(ok.clone(), doc! { "operationType": "moveChunk" })),
        ChangeError::UnknownOperationType("moveChunk".into())
    );
    for field in ["_id", "operationType", "clusterTime", "ns", "documentKey"] {
        let mut missing = ok.clone();
        missing.remove(field);
        assert_eq!(err(&missing), ChangeError::MissingField(field), "{field}");
    }
    assert!(matches!(
        err(&with(ok.clone(), doc! { "clusterTime": 5 })),
        ChangeError::WrongType {
            field: "clusterTime",
            ..
        }
    ));
    assert!(matches!(
        err(&with(ok.clone(), doc! { "txnNumber": "7" })),
        ChangeError::WrongType {
            field: "txnNumber",
            ..
        }
    ));
    assert_eq!(
        err(&with(ok.clone(), doc! { "_id": { "_data": "C3" } })),
        ChangeError::Token(ResumeTokenError::NotTimestamp(0xc3))
    );
    assert_eq!(
        err(&with(ok.clone(), doc! { "ns": { "db": "d" } })),
        ChangeError::MissingField("ns.coll")
    );
    let bad_truncation = doc! { "updateDescription": { "truncatedArrays": [{ "field": "a" }] } };
    let update = with(with(ok, doc! { "operationType": "update" }), bad_truncation);
    assert_eq!(
        err(&update),
        ChangeError::MissingField("truncatedArrays.newSize")
    );
}

#[test]
fn ts_ms_falls_back_to_the_cluster_time() {
    let mut raw = with(event("drop"), doc! { "ns": { "db": "d", "coll": "c" } });
    raw.remove("wallTime");
    let change = parse_change(&raw).unwrap();
    assert_eq!(
        (change.wall_time_ms, change.ts_ms()),
        (None, 0x6350_19A0 * 1000)
    );
}

fn arb_value() -> impl Strategy<Value = Bson> {
    prop_oneof![
        Just(Bson::Null),
        any::<i32>().prop_map(Bson::Int32),
        any::<i64>().prop_map(Bson::Int64),
        "[a-zA-Z]{0,12}".prop_map(Bson::String),
        prop_oneof![Just("82"), Just("8263501A2C00000003"), Just("zz")]
            .prop_map(|data| Bson::Document(doc! { "_data": data })),
        (any::<u32>(), any::<u32>())
            .prop_map(|(time, increment)| Bson::Timestamp(Timestamp { time, increment })),
        prop_oneof![
            Just("insert"),
            Just("update"),
            Just("delete"),
            Just("rename"),
            Just("dropDatabase")
        ]
        .prop_map(|s| Bson::String(s.into())),
        Just(Bson::Document(doc! { "db": "d", "coll": "c" })),
        Just(Bson::Document(doc! { "_id": 1 })),
        Just(Bson::Array(vec![Bson::String("a".into()), Bson::Int32(1)])),
    ]
}

proptest! {
    /// Any document, however far from an event's shape, parses or is an
    /// error: never a panic.
    #[test]
    fn arbitrary_documents_never_panic(fields in proptest::collection::vec((
        prop_oneof![
            Just("_id"), Just("operationType"), Just("clusterTime"), Just("wallTime"), Just("ns"),
            Just("to"), Just("documentKey"), Just("fullDocument"), Just("fullDocumentBeforeChange"),
            Just("updateDescription"), Just("lsid"), Just("txnNumber"), Just("operationDescription"),
        ],
        arb_value(),
    ), 0..14)) {
        let doc: Document = fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        let _ = parse_change(&doc);
        let update = doc! { "updateDescription": Bson::Document(doc.clone()) };
        let _ = parse_change(&with(with(event("update"), doc! {
            "ns": { "db": "d", "coll": "c" }, "documentKey": { "_id": 1 } }), update));
    }
}
