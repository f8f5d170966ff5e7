use std::cmp::Ordering;

use bson::oid::ObjectId;
use bson::spec::BinarySubtype;
use bson::{doc, Binary, Bson, DateTime, Decimal128, Timestamp};
use proptest::prelude::*;

use super::*;

/// One value of each rank, in the order MongoDB's "Comparison/Sort Order"
/// reference lists them: MinKey, Null, Numbers, Symbol/String, Object,
/// Array, BinData, ObjectId, Boolean, Date, Timestamp, Regular Expression,
/// MaxKey.
fn ladder() -> Vec<Bson> {
    vec![
        Bson::MinKey,
        Bson::Null,
        Bson::Int32(-5),
        Bson::Double(2.5),
        Bson::Int64(3),
        Bson::String("a".into()),
        Bson::Document(doc! { "x": 1 }),
        Bson::Array(vec![Bson::Int32(1)]),
        Bson::Binary(Binary {
            subtype: BinarySubtype::Generic,
            bytes: vec![1, 2],
        }),
        Bson::ObjectId(ObjectId::from_bytes([1; 12])),
        Bson::Boolean(false),
        Bson::Boolean(true),
        Bson::DateTime(DateTime::from_millis(-86_400_000)),
        Bson::DateTime(DateTime::from_millis(0)),
        Bson::Timestamp(Timestamp {
            time: 1,
            increment: 1,
        }),
        Bson::RegularExpression(bson::Regex {
            pattern: "a".into(),
            options: String::new(),
        }),
        Bson::MaxKey,
    ]
}

#[test]
fn types_sort_in_bson_order() {
    let ladder = ladder();
    for (i, a) in ladder.iter().enumerate() {
        for (j, b) in ladder.iter().enumerate() {
            assert_eq!(compare(a, b), i.cmp(&j), "{a:?} vs {b:?}");
        }
    }
}

#[test]
fn numbers_compare_by_value_across_widths() {
    assert_eq!(
        compare(&Bson::Int32(1), &Bson::Double(1.0)),
        Ordering::Equal
    );
    assert_eq!(compare(&Bson::Int64(1), &Bson::Double(1.5)), Ordering::Less);
    assert_eq!(
        compare(&Bson::Double(-0.5), &Bson::Int32(0)),
        Ordering::Less
    );
    assert_eq!(
        compare(&Bson::Double(f64::NAN), &Bson::Int64(i64::MIN)),
        Ordering::Less
    );
    // Beyond f64's integers: exact.
    assert_eq!(
        compare(
            &Bson::Int64(i64::MAX),
            &Bson::Double(9_223_372_036_854_775_807.0)
        ),
        Ordering::Less
    );
    assert_eq!(
        compare(
            &Bson::Int64((1 << 53) + 1),
            &Bson::Double((1u64 << 53) as f64)
        ),
        Ordering::Greater
    );
    let decimal =
        |s: &str| Bson::Decimal128(s.parse::<Decimal128>().unwrap_or_else(|e| panic!("{e}")));
    assert_eq!(
        compare(&decimal("2.25"), &Bson::Double(2.5)),
        Ordering::Less
    );
    assert_eq!(compare(&decimal("3"), &Bson::Int32(3)), Ordering::Equal);
}

#[test]
fn strings_documents_arrays_and_binaries_compare_within_their_type() {
    // Bytes, not characters: "Z" < "a" < "é".
    assert_eq!(
        compare(&Bson::String("Z".into()), &Bson::String("a".into())),
        Ordering::Less
    );
    assert_eq!(
        compare(&Bson::String("a".into()), &Bson::String("é".into())),
        Ordering::Less
    );
    assert_eq!(
        compare(&Bson::String("ab".into()), &Bson::String("a".into())),
        Ordering::Greater
    );
    // Documents: element type first, then name, then value; a prefix first.
    let d = |d: bson::Document| Bson::Document(d);
    assert_eq!(
        compare(&d(doc! { "a": 1 }), &d(doc! { "a": "x" })),
        Ordering::Less
    );
    assert_eq!(
        compare(&d(doc! { "a": 1 }), &d(doc! { "b": 0 })),
        Ordering::Less
    );
    assert_eq!(
        compare(&d(doc! { "a": 1 }), &d(doc! { "a": 1, "b": 0 })),
        Ordering::Less
    );
    let a = |v: Vec<Bson>| Bson::Array(v);
    assert_eq!(
        compare(&a(vec![1.into(), 2.into()]), &a(vec![1.into()])),
        Ordering::Greater
    );
    // Binaries: shorter first, then subtype.
    let bin = |subtype, bytes: Vec<u8>| Bson::Binary(Binary { subtype, bytes });
    assert_eq!(
        compare(
            &bin(BinarySubtype::Uuid, vec![0]),
            &bin(BinarySubtype::Generic, vec![0, 0])
        ),
        Ordering::Less
    );
    assert_eq!(
        compare(
            &bin(BinarySubtype::Generic, vec![9]),
            &bin(BinarySubtype::Uuid, vec![0])
        ),
        Ordering::Less
    );
}

fn id_value() -> impl Strategy<Value = Bson> {
    prop_oneof![
        any::<i32>().prop_map(Bson::Int32),
        any::<i64>().prop_map(Bson::Int64),
        (-1e6f64..1e6).prop_map(Bson::Double),
        "[a-zA-Z0-9é]{0,6}".prop_map(Bson::String),
        any::<[u8; 12]>().prop_map(|b| Bson::ObjectId(ObjectId::from_bytes(b))),
        any::<bool>().prop_map(Bson::Boolean),
        any::<i64>().prop_map(|ms| Bson::DateTime(DateTime::from_millis(ms))),
        (any::<i32>(), "[a-z]{0,3}").prop_map(|(n, s)| Bson::Document(doc! { "n": n, "s": s })),
        proptest::collection::vec(any::<u8>(), 0..4).prop_map(|bytes| Bson::Binary(Binary {
            subtype: BinarySubtype::Generic,
            bytes
        })),
        Just(Bson::Null),
        Just(Bson::MinKey),
        Just(Bson::MaxKey),
    ]
}

/// The ids of a collection as the `_id` index holds them: unique under
/// the index's equality, in its order.
fn index_of(mut ids: Vec<Bson>) -> Vec<Bson> {
    ids.sort_by(compare);
    ids.dedup_by(|a, b| compare(a, b) == Ordering::Equal);
    ids
}

proptest! {
    #[test]
    fn bounds_survive_their_text(value in id_value()) {
        let back = decode(&encode(&value)).unwrap_or_else(|e| panic!("{e}"));
        prop_assert_eq!(back, value);
    }

    #[test]
    fn compare_is_a_total_order(a in id_value(), b in id_value(), c in id_value()) {
        prop_assert_eq!(compare(&a, &b), compare(&b, &a).reverse());
        if compare(&a, &b) != Ordering::Greater && compare(&b, &c) != Ordering::Greater {
            prop_assert_ne!(compare(&a, &c), Ordering::Greater);
        }
    }

    /// Chunks read the way the chunk reader reads them (an index range
    /// `[after, max)` of `limit + 1` documents, then the document at `max`
    /// when the range runs out) cover every `_id` of every type exactly
    /// once, in index order.
    #[test]
    fn chunks_over_mixed_ids_cover_each_once_in_order(
        ids in proptest::collection::vec(id_value(), 1..80),
        limit in 1usize..7,
    ) {
        let index = index_of(ids);
        let max = index.last().cloned().unwrap_or(Bson::Null);
        let mut after: Option<Bson> = None;
        let mut read = Vec::new();
        for _ in 0..=index.len() + 1 {
            let fetched: Vec<bson::Document> = index
                .iter()
                .filter(|id| after.as_ref().is_none_or(|a| compare(id, a) != Ordering::Less))
                .filter(|id| compare(id, &max) == Ordering::Less)
                .take(limit + 1)
                .map(|id| doc! { "_id": id.clone() })
                .collect();
            let (mut rows, done) = chunk_rows(after.as_ref(), fetched, limit);
            if done && after.as_ref().is_none_or(|a| compare(&max, a) == Ordering::Greater) {
                rows.push(doc! { "_id": max.clone() });
            }
            let last = rows.last().and_then(|r| r.get("_id").cloned());
            read.extend(rows.into_iter().filter_map(|r| r.get("_id").cloned()));
            if done {
                break;
            }
            // Through the bound's text, as the scheduler keeps it.
            after = last.map(|l| decode(&encode(&l)).unwrap_or_else(|e| panic!("{e}")));
        }
        prop_assert_eq!(read, index);
    }
}
