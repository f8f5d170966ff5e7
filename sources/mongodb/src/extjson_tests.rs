//! Unit tests of `extjson.rs`: the form of each BSON type in each of
//! Debezium's settings (as `tests/fixtures/documents.txt`, printed by
//! Debezium's code, shows them), and properties over arbitrary input.

use bson::spec::BinarySubtype;
use bson::{
    doc, Binary, Bson, DateTime, Decimal128, Document, JavaScriptCodeWithScope, Regex, Timestamp,
};
use proptest::prelude::*;

use super::*;

fn all(value: Bson) -> [String; 3] {
    [Settings::Compact, Settings::Simple, Settings::Default].map(|s| {
        let mut out = String::new();
        write_value(&value, s, &mut out);
        out
    })
}

fn decimal(text: &str) -> Bson {
    Bson::Decimal128(text.parse::<Decimal128>().unwrap())
}

#[test]
fn strict_and_relaxed_forms_of_each_type() {
    let oid = bson::oid::ObjectId::parse_str("5f0c2b5e8f1b2c3d4e5f6071").unwrap();
    let cases: Vec<(Bson, [&str; 3])> = vec![
        (Bson::Double(1.0), ["1.0", "1.0", "1.0"]),
        (Bson::Double(1e20), ["1.0E+20", "1.0E+20", "1.0E+20"]),
        (
            Bson::Double(f64::NAN),
            [
                "NaN",
                r#"{"$numberDouble": "NaN"}"#,
                r#"{"$numberDouble": "NaN"}"#,
            ],
        ),
        (
            Bson::Double(f64::NEG_INFINITY),
            [
                "-Infinity",
                r#"{"$numberDouble": "-Infinity"}"#,
                r#"{"$numberDouble": "-Infinity"}"#,
            ],
        ),
        (Bson::Int32(-5), ["-5", "-5", "-5"]),
        (Bson::Int64(42), [r#"{"$numberLong": "42"}"#, "42", "42"]),
        (
            Bson::DateTime(DateTime::from_millis(1_700_000_000_120)),
            [
                r#"{"$date": 1700000000120}"#,
                r#"{"$date": "2023-11-14T22:13:20.12Z"}"#,
                r#"{"$date": "2023-11-14T22:13:20.12Z"}"#,
            ],
        ),
        (
            Bson::DateTime(DateTime::from_millis(-1)),
            [
                r#"{"$date": -1}"#,
                r#"{"$date": {"$numberLong": "-1"}}"#,
                r#"{"$date": {"$numberLong": "-1"}}"#,
            ],
        ),
        (
            Bson::Binary(Binary {
                subtype: BinarySubtype::Uuid,
                bytes: vec![0; 16],
            }),
            [
                r#"{"$binary": "AAAAAAAAAAAAAAAAAAAAAA==","$type": "04"}"#,
                r#"{"$binary": {"base64": "AAAAAAAAAAAAAAAAAAAAAA==","subType": "04"}}"#,
                r#"{"$binary": {"base64": "AAAAAAAAAAAAAAAAAAAAAA==", "subType": "04"}}"#,
            ],
        ),
        (
            Bson::Binary(Binary {
                subtype: BinarySubtype::UserDefined(0xab),
                bytes: vec![1, 2, 3],
            }),
            [
                r#"{"$binary": "AQID","$type": "AB"}"#,
                r#"{"$binary": {"base64": "AQID","subType": "AB"}}"#,
                r#"{"$binary": {"base64": "AQID", "subType": "AB"}}"#,
            ],
        ),
        (
            Bson::RegularExpression(Regex {
                pattern: "a.*b".into(),
                options: "xmi".into(),
            }),
            [
                r#"{"$regex": "a.*b","$options": "imx"}"#,
                r#"{"$regularExpression": {"pattern": "a.*b","options": "imx"}}"#,
                r#"{"$regularExpression": {"pattern": "a.*b", "options": "imx"}}"#,
            ],
        ),
        (
            Bson::Timestamp(Timestamp {
                time: u32::MAX,
                increment: 7,
            }),
            [
                r#"{"$timestamp": {"t": 4294967295,"i": 7}}"#,
                r#"{"$timestamp": {"t": 4294967295,"i": 7}}"#,
                r#"{"$timestamp": {"t": 4294967295, "i": 7}}"#,
            ],
        ),
        (
            Bson::ObjectId(oid),
            [r#"{"$oid": "5f0c2b5e8f1b2c3d4e5f6071"}"#; 3],
        ),
        (
            Bson::JavaScriptCodeWithScope(JavaScriptCodeWithScope {
                code: "x".into(),
                scope: doc! { "x": 1i64, "y": [1, 2] },
            }),
            [
                r#"{"$code": "x","$scope": {"x": {"$numberLong": "1"},"y": [1,2]}}"#,
                r#"{"$code": "x","$scope": {"x": 1,"y": [1,2]}}"#,
                r#"{"$code": "x", "$scope": {"x": 1, "y": [1, 2]}}"#,
            ],
        ),
        (
            Bson::JavaScriptCode("f()".into()),
            [r#"{"$code": "f()"}"#; 3],
        ),
        (Bson::Symbol("s".into()), [r#"{"$symbol": "s"}"#; 3]),
        (Bson::Undefined, [r#"{"$undefined": true}"#; 3]),
        (Bson::MinKey, [r#"{"$minKey": 1}"#; 3]),
        (Bson::MaxKey, [r#"{"$maxKey": 1}"#; 3]),
        (Bson::Null, ["null"; 3]),
        (Bson::Boolean(false), ["false"; 3]),
        (decimal("-0"), [r#"{"$numberDecimal": "-0"}"#; 3]),
        (decimal("0.0000001"), [r#"{"$numberDecimal": "1E-7"}"#; 3]),
        (decimal("1E+3"), [r#"{"$numberDecimal": "1E+3"}"#; 3]),
        (decimal("12345E-3"), [r#"{"$numberDecimal": "12.345"}"#; 3]),
        (
            decimal("-Infinity"),
            [r#"{"$numberDecimal": "-Infinity"}"#; 3],
        ),
        (
            Bson::Array(vec![
                Bson::Int32(1),
                Bson::Array(vec![]),
                Bson::Document(doc! {}),
            ]),
            ["[1,[],{}]", "[1,[],{}]", "[1, [], {}]"],
        ),
    ];
    for (value, expected) in cases {
        assert_eq!(all(value.clone()), expected.map(String::from), "{value:?}");
    }
}

#[test]
fn documents_join_members_by_settings() {
    let d = doc! { "_id": 1, "a": { "b": [1, "x"] } };
    assert_eq!(document_json(&d), r#"{"_id": 1,"a": {"b": [1,"x"]}}"#);
    assert_eq!(
        updated_fields_json(&d),
        r#"{"_id": 1, "a": {"b": [1, "x"]}}"#
    );
    assert_eq!(document_json(&Document::new()), "{}");
}

#[test]
fn the_key_id_is_the_id_alone_or_null() {
    assert_eq!(id_json(&doc! { "shard": 1, "_id": 5i64 }), "5");
    assert_eq!(id_json(&doc! { "_id": "a\"b" }), r#""a\"b""#);
    assert_eq!(id_json(&doc! { "shard": 1 }), "null");
}

#[test]
fn strings_escape_what_java_does_not_print() {
    let cases = [
        ("\"\\/\u{8}\u{c}\n\r\t", r#""\"\\/\b\f\n\r\t""#),
        ("\u{0}\u{1f}\u{7f}\u{85}", r#""\u0000\u001f\u007f\u0085""#),
        ("café 日本", "\"café 日本\""),
        // A combining mark, a zero-width space, the line separator, a BOM.
        (
            "e\u{301}\u{200b}\u{2028}\u{feff}",
            r#""e\u0301\u200b\u2028\ufeff""#,
        ),
        // Beyond the BMP: each UTF-16 surrogate escaped.
        ("😀", r#""\ud83d\ude00""#),
        ("\u{a0}\u{ad}", "\"\u{a0}\\u00ad\""),
    ];
    for (text, expected) in cases {
        let mut out = String::new();
        write_string(text, &mut out);
        assert_eq!(out, expected);
    }
}

fn arb_bson() -> impl Strategy<Value = Bson> {
    let leaf = prop_oneof![
        any::<f64>().prop_map(Bson::Double),
        any::<String>().prop_map(Bson::String),
        any::<bool>().prop_map(Bson::Boolean),
        any::<i32>().prop_map(Bson::Int32),
        any::<i64>().prop_map(Bson::Int64),
        any::<i64>().prop_map(|ms| Bson::DateTime(DateTime::from_millis(ms))),
        (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..20)).prop_map(|(t, bytes)| {
            Bson::Binary(Binary {
                subtype: BinarySubtype::from(t),
                bytes,
            })
        }),
        any::<[u8; 16]>().prop_map(|b| Bson::Decimal128(Decimal128::from_bytes(b))),
        (any::<u32>(), any::<u32>())
            .prop_map(|(time, increment)| Bson::Timestamp(Timestamp { time, increment })),
        Just(Bson::Null),
        Just(Bson::MinKey),
        Just(Bson::Undefined),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Bson::Array),
            proptest::collection::vec((any::<String>(), inner), 0..4)
                .prop_map(|members| Bson::Document(members.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn strings_read_back_as_themselves(text in any::<String>()) {
        let mut out = String::new();
        write_string(&text, &mut out);
        prop_assert_eq!(serde_json::from_str::<String>(&out).ok(), Some(text));
    }

    /// Relaxed output is always JSON (non-finite doubles are wrapped), and
    /// reads back with the same structure; strict output too when it holds
    /// no non-finite double (Java writes those bare).
    #[test]
    fn output_is_json_with_the_same_members(value in arb_bson()) {
        let doc = doc! { "v": value.clone() };
        for settings in [Settings::Simple, Settings::Default, Settings::Compact] {
            let mut out = String::new();
            write_document(&doc, settings, &mut out);
            let parsed = serde_json::from_str::<serde_json::Value>(&out);
            if settings == Settings::Compact && out.contains("Infinity") | out.contains("NaN") {
                continue;
            }
            let parsed = parsed.map_err(|e| TestCaseError::fail(format!("{e}: {out}")))?;
            prop_assert_eq!(shape(&parsed["v"]), shape_of(&value));
        }
    }

    /// For names and int32 values, whose forms all modes share, the three
    /// settings differ only in what joins the members.
    #[test]
    fn settings_differ_in_the_member_separator(
        members in proptest::collection::vec((any::<String>(), any::<i32>()), 0..5)
    ) {
        let doc: Document = members.into_iter().map(|(k, v)| (k, Bson::Int32(v))).collect();
        let joined = |sep: &str| {
            let parts: Vec<String> = doc
                .iter()
                .map(|(k, v)| {
                    let mut name = String::new();
                    write_string(k, &mut name);
                    format!("{name}: {}", v.as_i32().unwrap_or_default())
                })
                .collect();
            format!("{{{}}}", parts.join(sep))
        };
        let mut simple = String::new();
        write_document(&doc, Settings::Simple, &mut simple);
        prop_assert_eq!(document_json(&doc), joined(","));
        prop_assert_eq!(simple, joined(","));
        prop_assert_eq!(updated_fields_json(&doc), joined(", "));
    }
}

/// Arrays and objects with their member counts, scalars as one mark: what
/// must survive any of the three modes.
fn shape(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Array(items) => {
            format!(
                "[{}]",
                items.iter().map(shape).collect::<Vec<_>>().join(",")
            )
        }
        // In document order: bson turns on serde_json's `preserve_order`.
        serde_json::Value::Object(map) if !map.keys().any(|k| k.starts_with('$')) => format!(
            "{{{}}}",
            map.values().map(shape).collect::<Vec<_>>().join(",")
        ),
        _ => "s".into(),
    }
}

fn shape_of(v: &Bson) -> String {
    match v {
        Bson::Array(items) => format!(
            "[{}]",
            items.iter().map(shape_of).collect::<Vec<_>>().join(",")
        ),
        Bson::Document(doc) if !doc.keys().any(|k| k.starts_with('$')) => {
            format!(
                "{{{}}}",
                doc.values().map(shape_of).collect::<Vec<_>>().join(",")
            )
        }
        _ => "s".into(),
    }
}
