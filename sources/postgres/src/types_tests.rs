//! Tests of `types`.
use super::*;
use proptest::prelude::*;

fn conv(type_oid: u32, text: &str) -> Result<Value, ValueError> {
    text_to_value(type_oid, text.as_bytes())
}

/// A compact, type-revealing rendering, so cases fit on one line.
fn show(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => format!("{f:?}f"),
        // The kind is checked by `typed_texts_carry_their_type`.
        Value::Text(s) | Value::Typed(_, s) => format!("'{s}'"),
        Value::Json(s) => format!("json {s}"),
        Value::Bytes(b) => format!("bytes {b:?}"),
        Value::Array(items) => {
            format!(
                "[{}]",
                items.iter().map(show).collect::<Vec<_>>().join(", ")
            )
        }
        Value::Unchanged => "UNCHANGED".into(),
    }
}

/// Each case reads `OID: input => expected`, the expected side being
/// the `show` rendering or `error: <message>`.
fn check(cases: &[&str]) {
    for case in cases {
        let (oid, rest) = case.split_once(": ").unwrap();
        let (input, want) = rest.rsplit_once(" => ").unwrap();
        let got = match conv(oid.parse().unwrap(), input) {
            Ok(v) => show(&v),
            Err(e) => format!("error: {e}"),
        };
        assert_eq!(got, want, "{case}");
    }
}

#[test]
fn scalars() {
    check(&[
        "16: t => true",
        "16: true => true",
        "16: f => false",
        "16: false => false",
        r#"16: yes => error: type 16: invalid boolean "yes""#,
        "21: -32768 => -32768",
        "23: 42 => 42",
        "20: -9223372036854775808 => -9223372036854775808",
        "26: 4294967295 => 4294967295",
        "28: 771 => 771",
        r#"20: 9223372036854775808 => error: type 20: invalid integer "9223372036854775808""#,
        r#"23:  => error: type 23: invalid integer """#,
        r#"23: 1.5 => error: type 23: invalid integer "1.5""#,
        "701: 1.5 => 1.5f",
        "700: 1.10000002 => 1.10000002f",
        "701: -1e-300 => -1e-300f",
        "701: 1 => 1.0f",
        "701: NaN => 'NaN'",
        "700: Infinity => 'Infinity'",
        "701: -Infinity => '-Infinity'",
        r#"701: abc => error: type 701: invalid float "abc""#,
    ]);
    let long = "9".repeat(100);
    let Err(ValueError::InvalidInt { text, .. }) = conv(20, &long) else {
        panic!("accepted {long}");
    };
    assert_eq!(text.len(), ERROR_SNIPPET);
}

#[test]
fn text_types() {
    check(&[
        "1700: 12345678901234567890.000001 => '12345678901234567890.000001'",
        "1700: NaN => 'NaN'",
        "790: $1,000.00 => '$1,000.00'",
        "25: héllo => 'héllo'",
        "2950: a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11 => 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'",
        "1186: P1Y2M3DT4H5M6S => 'P1Y2M3DT4H5M6S'",
        "1082: 2024-01-02 => '2024-01-02'",
        "1082: infinity => 'infinity'",
        "1266: 03:04:05+05:30 => '03:04:05+05:30'",
        "4072: $.a[*] => '$.a[*]'",
        // Unknown OIDs (enums, domains) are text; so is an unknown array.
        "91234: happy => 'happy'",
        "91235: {happy,sad} => '{happy,sad}'",
    ]);
    let bad = text_to_value(91_234, b"a\xffb");
    assert_eq!(bad, Err(ValueError::InvalidUtf8 { type_oid: 91_234 }));
}

#[test]
fn json() {
    check(&[
        r#"3802: {"a": [1, 2.5, null]} => json {"a": [1, 2.5, null]}"#,
        "114:   [1]   => json [1]",
        r#"114: "x" => json "x""#,
        "114: { => error: type 114: invalid JSON: \
         EOF while parsing an object at line 1 column 1",
        "114: [1] [2] => error: type 114: invalid JSON: \
         trailing characters at line 1 column 5",
        // jsonb text is the server's rendering of a parsed document: taken
        // as it comes, not parsed again.
        "3802: [1] [2] => json [1] [2]",
    ]);
    // Deeper than serde_json's recursion limit, still accepted.
    let deep = format!("{}{}", "[".repeat(1000), "]".repeat(1000));
    assert_eq!(conv(3802, &deep), Ok(Value::Json(deep.clone())));
    assert_eq!(conv(114, &deep), Ok(Value::Json(deep.clone())));
}

#[test]
fn timestamps() {
    check(&[
        "1114: 2024-01-02 03:04:05.123456 => '2024-01-02T03:04:05.123456'",
        "1114: 2024-01-02 03:04:05 => '2024-01-02T03:04:05'",
        "1114: infinity => 'infinity'",
        "1114: -infinity => '-infinity'",
        "1114: 0044-03-15 00:00:00 BC => '0044-03-15 00:00:00 BC'",
        "1114: 12345-01-02 03:04:05 => '12345-01-02T03:04:05'",
        "1184: 2024-01-02 03:04:05.123+00 => '2024-01-02T03:04:05.123Z'",
        "1184: 2024-01-02 03:04:05+00:00 => '2024-01-02T03:04:05Z'",
        "1184: 2024-01-02 03:04:05+05:30 => '2024-01-02T03:04:05+05:30'",
        "1184: 2024-01-02 03:04:05+05 => '2024-01-02T03:04:05+05:00'",
        "1184: 2024-01-02 03:04:05-08 => '2024-01-02T03:04:05-08:00'",
        "1184: 1900-01-01 00:00:00+00:53:28 => '1900-01-01T00:00:00+00:53:28'",
        "1184: infinity => 'infinity'",
        "1184: -infinity => '-infinity'",
        "1184: 0044-03-15 00:00:00+00 BC => '0044-03-15 00:00:00+00 BC'",
        // Unexpected shapes pass through rather than fail the row.
        "1184: 2024-01-02 03:04:05 UTC => '2024-01-02 03:04:05 UTC'",
        "1184: 2024-01-02 03:04:05+5 => '2024-01-02 03:04:05+5'",
    ]);
}

#[test]
fn bytea() {
    check(&[
        r#"17: \x0001ff => bytes [0, 1, 255]"#,
        r#"17: \xABcd => bytes [171, 205]"#,
        r#"17: \x => bytes []"#,
        r#"17: \x0g => error: type 17: invalid bytea at byte 2: invalid hex digit"#,
        r#"17: \x123 => error: type 17: invalid bytea at byte 5: odd number of hex digits"#,
        // Legacy escape format.
        r#"17: a\\b\001\377 => bytes [97, 92, 98, 1, 255]"#,
        r#"17: a\9 => error: type 17: invalid bytea at byte 1: invalid escape"#,
        r#"17: a\ => error: type 17: invalid bytea at byte 1: invalid escape"#,
    ]);
}

#[test]
fn tuple_values() {
    use bytes::Bytes;
    let text = TupleValue::Text(Bytes::from_static(b"7"));
    let binary = TupleValue::Binary(Bytes::from_static(&[0, 0, 0, 7]));
    assert_eq!(
        tuple_value_to_value(23, &TupleValue::Null, 2),
        Ok(Value::Null)
    );
    assert_eq!(
        tuple_value_to_value(25, &TupleValue::UnchangedToast, 2),
        Ok(Value::Unchanged)
    );
    assert_eq!(tuple_value_to_value(23, &text, 2), Ok(Value::Int(7)));
    // Binary values go through the binary decoders (pgoutput's `binary`).
    assert_eq!(tuple_value_to_value(23, &binary, 2), Ok(Value::Int(7)));
    assert!(tuple_value_to_value(oid::INTERVAL, &binary, 2).is_err());
    let money = TupleValue::Text(Bytes::from_static(b"-$1,234.50"));
    assert_eq!(
        tuple_value_to_value(oid::MONEY, &money, 2),
        Ok(Value::Typed(TextType::Money, "-1234.50".into()))
    );
    let money = TupleValue::Text(Bytes::from_static(br#"{{"$1,234.50",NULL}}"#));
    assert_eq!(
        tuple_value_to_value(oid::MONEY_ARRAY, &money, 2),
        Ok(Value::Array(vec![Value::Array(vec![
            Value::Typed(TextType::Money, "1234.50".into()),
            Value::Null
        ])]))
    );
}

#[test]
fn money_in_any_locale_becomes_its_decimal() {
    let m = |text: &str, digits| money_to_decimal(oid::MONEY, text.as_bytes(), digits);
    assert_eq!(m("$1,234.56", 2).as_deref(), Ok("1234.56"));
    assert_eq!(m("-$0.01", 2).as_deref(), Ok("-0.01"));
    assert_eq!(m("$0.00", 2).as_deref(), Ok("0.00"));
    assert_eq!(
        m("-$92,233,720,368,547,758.08", 2).as_deref(),
        Ok("-92233720368547758.08")
    );
    assert_eq!(m("(1.234,56 €)", 2).as_deref(), Ok("-1234.56"));
    assert_eq!(m("￥1,234", 0).as_deref(), Ok("1234"));
    assert_eq!(m("KD 0.005", 3).as_deref(), Ok("0.005"));
    // Shorter than the fraction (no locale prints that): zero-padded.
    assert_eq!(m("5", 2).as_deref(), Ok("0.05"));
    assert_eq!(m("00012", 1).as_deref(), Ok("1.2"));
    assert!(m("$", 2).is_err());
}

#[test]
fn arrays() {
    check(&[
        "1007: {1,2,NULL} => [1, 2, NULL]",
        "1007: {} => []",
        "1000: {t,f} => [true, false]",
        "1022: {1.5,NaN,-Infinity} => [1.5f, 'NaN', '-Infinity']",
        "1231: {1.50,NaN} => ['1.50', 'NaN']",
        "1007: [0:1]={1,2} => [1, 2]",
        "1007: [1:2][3:4]={{1,2},{3,4}} => [[1, 2], [3, 4]]",
        "1007:  { 1 , 2 }  => [1, 2]",
        r#"1009: {"a b","c\"d",NULL,"NULL",null,""} => ['a b', 'c"d', NULL, 'NULL', NULL, '']"#,
        r#"1009: {x\,y,"back\\slash",a b} => ['x,y', 'back\slash', 'a b']"#,
        // Unquoted whitespace is trimmed, quoted and escaped whitespace kept.
        r#"1009: {  a b  ," c ",d\ } => ['a b', ' c ', 'd ']"#,
        "1009: {{a,b},{c,NULL}} => [['a', 'b'], ['c', NULL]]",
        "1009: {{},{}} => [[], []]",
        r#"1185: {"2024-01-02 03:04:05+00",infinity} => ['2024-01-02T03:04:05Z', 'infinity']"#,
        r#"1185: {"2024-01-02 03:04:05+05:30"} => ['2024-01-02T03:04:05+05:30']"#,
        r#"1115: {"2024-01-02 03:04:05"} => ['2024-01-02T03:04:05']"#,
        r#"1001: {"\\x0001ff",NULL} => [bytes [0, 1, 255], NULL]"#,
        r#"3807: {"{\"a\": 1}","[1, 2]",NULL} => [json {"a": 1}, json [1, 2], NULL]"#,
        "2951: {a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11} \
         => ['a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11']",
        "1182: {2024-01-02,infinity} => ['2024-01-02', 'infinity']",
        "1028: {1,4294967295} => [1, 4294967295]",
        "1187: {P1D,PT1H} => ['P1D', 'PT1H']",
        // A bad element reports the element type.
        r#"1007: {1,x} => error: type 23: invalid integer "x""#,
    ]);
}

#[test]
fn malformed_arrays() {
    let e = "error: type 1009: invalid array literal at byte";
    check(&[
        &format!("1009:  => {e} 0: expected '{{'"),
        &format!("1009: 1,2 => {e} 0: expected '{{'"),
        &format!("1009: }} => {e} 0: expected '{{'"),
        &format!("1009: {{ => {e} 1: unterminated array"),
        &format!("1009: {{1,2 => {e} 3: unterminated array"),
        &format!("1009: {{{{1}},2 => {e} 5: unterminated array"),
        &format!("1009: {{a\\}} => {e} 1: unterminated array"),
        &format!("1009: {{1,}} => {e} 3: missing element"),
        &format!("1009: {{,1}} => {e} 1: missing element"),
        &format!("1009: {{1}}x => {e} 3: characters after the array"),
        &format!("1009: {{1}}}} => {e} 3: characters after the array"),
        &format!(r#"1009: {{"a}} => {e} 1: unterminated quoted element"#),
        &format!(r#"1009: {{a"b"}} => {e} 1: '"' or '{{' inside an unquoted element"#),
        &format!(r#"1009: {{"a"b}} => {e} 4: expected ',' or '}}'"#),
        &format!("1009: [1:2]{{1,2}} => {e} 0: dimension decoration without '='"),
        &format!("1009: [1:2]{{a=b}} => {e} 0: dimension decoration without '='"),
    ]);
    let deep = format!("{}{}", "{".repeat(100), "}".repeat(100));
    check(&[
        &format!(
            "1007: {deep} => {} 16: too deeply nested",
            e.replace("1009", "1007")
        ),
        r#"1007: {1 2} => error: type 23: invalid integer "1 2""#,
    ]);
    let six = format!("{}1{}", "{".repeat(6), "}".repeat(6));
    assert!(conv(1007, &six).is_ok());
}

/// Quote an element the way PostgreSQL's `array_out` does.
fn pg_quote(s: &str) -> String {
    let needs_quotes = s.is_empty()
        || s.eq_ignore_ascii_case("NULL")
        || s.bytes()
            .any(|c| matches!(c, b'{' | b'}' | b',' | b'"' | b'\\') || is_array_space(c));
    if !needs_quotes {
        return s.to_owned();
    }
    let mut out = String::from("\"");
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

const OIDS: &[u32] = &[
    16, 17, 18, 20, 21, 23, 25, 26, 28, 114, 700, 701, 790, 1000, 1001, 1007, 1009, 1022, 1082,
    1114, 1115, 1184, 1185, 1186, 1231, 1700, 2950, 3802, 3807, 99_999,
];

proptest! {
    #[test]
    fn never_panics_on_arbitrary_bytes(
        type_oid in prop::sample::select(OIDS),
        text in proptest::collection::vec(any::<u8>(), 0..48),
    ) {
        let _ = text_to_value(type_oid, &text);
    }

    #[test]
    fn never_panics_on_array_like_text(
        type_oid in prop::sample::select(OIDS),
        text in r#"[\[\]{}",\\ a1:=NULtf-]{0,32}"#,
    ) {
        let _ = text_to_value(type_oid, text.as_bytes());
    }

    #[test]
    fn quoted_text_arrays_round_trip(
        items in proptest::collection::vec(proptest::option::of(any::<String>()), 0..8),
    ) {
        // NUL cannot occur in PostgreSQL text.
        let items: Vec<Option<String>> = items
            .into_iter()
            .map(|o| o.map(|s| s.replace('\0', "")))
            .collect();
        let literal = format!(
            "{{{}}}",
            items
                .iter()
                .map(|o| o.as_deref().map_or("NULL".to_owned(), pg_quote))
                .collect::<Vec<_>>()
                .join(",")
        );
        let expected = Value::Array(
            items.into_iter().map(|o| o.map_or(Value::Null, Value::Text)).collect(),
        );
        prop_assert_eq!(conv(1009, &literal), Ok(expected));
    }

    #[test]
    fn integer_arrays_round_trip(
        rows in proptest::collection::vec(proptest::collection::vec(any::<i64>(), 2), 1..4),
    ) {
        let join = |items: Vec<String>| format!("{{{}}}", items.join(","));
        let literal =
            join(rows.iter().map(|r| join(r.iter().map(i64::to_string).collect())).collect());
        let expected = Value::Array(
            rows.into_iter()
                .map(|r| Value::Array(r.into_iter().map(Value::Int).collect()))
                .collect(),
        );
        prop_assert_eq!(conv(1016, &literal), Ok(expected));
    }
}

#[test]
fn typed_texts_carry_their_type() {
    let kind = |type_oid: u32, text: &str| match conv(type_oid, text) {
        Ok(Value::Typed(kind, _)) => Some(kind),
        _ => None,
    };
    assert_eq!(kind(oid::NUMERIC, "1.5"), Some(TextType::Numeric(None)));
    assert_eq!(kind(oid::MONEY, "1.50"), Some(TextType::Money));
    assert_eq!(kind(oid::DATE, "2024-02-29"), Some(TextType::Date));
    assert_eq!(
        kind(oid::TIME, "24:00:00"),
        Some(TextType::Time(DEFAULT_TIME_PRECISION))
    );
    assert_eq!(
        kind(oid::TIMETZ, "01:02:03+05"),
        Some(TextType::TimeTz(DEFAULT_TIME_PRECISION))
    );
    assert_eq!(
        kind(oid::TIMESTAMP, "infinity"),
        Some(TextType::Timestamp(DEFAULT_TIME_PRECISION))
    );
    assert_eq!(
        kind(oid::TIMESTAMPTZ, "2024-02-29 11:14:15+00"),
        Some(TextType::TimestampTz(DEFAULT_TIME_PRECISION))
    );
    assert_eq!(kind(oid::INTERVAL, "PT0S"), Some(TextType::Interval));
    assert_eq!(kind(oid::BIT, "101"), Some(TextType::Bits));
    assert_eq!(kind(oid::VARBIT, ""), Some(TextType::Bits));
    assert_eq!(kind(oid::TEXT, "x"), None);
}
