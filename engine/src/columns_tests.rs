use super::*;
use crate::event::{Op, Position, SourceInfo, SourceMeta};
use crate::pipeline::{Passthrough, Processor, Staged};
use crate::schema::ColumnSchema;

fn schema() -> Arc<TableSchema> {
    let columns = [
        ("id", "integer"),
        ("name", "text"),
        ("email", "character varying(40)"),
        ("ssn", "character(11)"),
        ("note", "text"),
        ("n", "integer"),
    ];
    Arc::new(TableSchema {
        table: Arc::new(TableRef::new("public", "c")),
        version: 1,
        columns: columns
            .iter()
            .map(|(name, type_name)| {
                ColumnSchema::new(*name, *type_name, crate::schema::ColumnKind::String)
            })
            .collect(),
        key: vec!["id".into()],
    })
}

fn pattern(source: &str) -> ColumnPattern {
    ColumnPattern::new(source).unwrap()
}

fn rules() -> ColumnRules {
    ColumnRules {
        include: Vec::new(),
        exclude: vec![pattern("public.c.note")],
        masks: vec![
            (pattern("public.c.name"), Mask::Chars(5)),
            (
                pattern(r"public\.c\.e.*"),
                Mask::Hash {
                    algorithm: HashAlgorithm::Sha256,
                    salt: "pepper".into(),
                    v2: false,
                },
            ),
            (
                pattern("PUBLIC.C.SS."),
                Mask::Hash {
                    algorithm: HashAlgorithm::Sha256,
                    salt: "pepper".into(),
                    v2: false,
                },
            ),
            (pattern("public.c.n"), Mask::Chars(3)),
        ],
    }
}

fn insert(values: Vec<Value>) -> LogItem {
    let columns: Arc<[String]> = Arc::from(
        ["id", "name", "email", "ssn", "note", "n"]
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>(),
    );
    let row = Row::new(columns, values);
    LogItem::Event(Event {
        update: None,
        schema: None,
        op: Op::Create,
        table: Some(Arc::new(TableRef::new("public", "c"))),
        key: Some(Row::new(
            Arc::from(vec!["id".to_string()]),
            vec![row.values[0].clone()],
        )),
        before: None,
        after: Some(row),
        source: SourceInfo::new(
            Arc::new(SourceMeta {
                connector: "postgresql",
                name: "cdc".into(),
                db: "app".into(),
                block: &crate::PLAIN_BLOCK,
            }),
            Position::from_u64(1),
        ),
        message: None,
        transaction: None,
    })
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

/// A row of Alice's.
fn alice(id: i64) -> LogItem {
    insert(vec![
        Value::Int(id),
        text("Alice Smith"),
        text("alice@example.com"),
        text("123-45-6789"),
        text("secret"),
        Value::Int(7),
    ])
}

/// Nulls but the id.
fn nulls(id: i64) -> LogItem {
    let mut values = vec![Value::Null; 6];
    values[0] = Value::Int(id);
    insert(values)
}

fn filter(rules: ColumnRules, schemas: Vec<Arc<TableSchema>>) -> Staged<Passthrough, ColumnFilter> {
    Staged::new(Passthrough, ColumnFilter::new(rules, schemas))
}

#[test]
fn excluded_masked_and_hashed_as_debezium_writes_them() {
    let mut filter = filter(rules(), vec![schema()]);
    let mut out = Vec::new();
    filter.process(alice(1), &mut out);
    filter.process(nulls(2), &mut out);
    let row = out[0].after.as_ref().unwrap();
    assert_eq!(&*row.columns, ["id", "name", "email", "ssn", "n"]);
    // Debezium 3.6.3's output for the same rules and rows: the hash cut
    // to varchar(40) and char(11); an integer column is not masked.
    assert_eq!(
        row.values,
        [
            Value::Int(1),
            text("*****"),
            text("cb755529ea5548e3797d230ab3a54ec1a3b7aa09"),
            text("869284d4cff"),
            Value::Int(7),
        ]
    );
    let nulls = out[1].after.as_ref().unwrap();
    assert_eq!(
        nulls.values,
        [
            Value::Int(2),
            text("*****"),
            Value::Null,
            Value::Null,
            Value::Null
        ]
    );
    // The key is left alone.
    assert_eq!(out[0].key.as_ref().unwrap().values, [Value::Int(1)]);
}

#[test]
fn an_include_list_keeps_only_its_columns_and_truncation_counts_java_chars() {
    let rules = ColumnRules {
        include: vec![
            pattern("public.c.id"),
            pattern("public.c.name"),
            pattern(r"public\.c\.n.*"),
        ],
        exclude: Vec::new(),
        masks: vec![(pattern("public.c.name"), Mask::Truncate(5))],
    };
    let mut filter = filter(rules, vec![schema()]);
    let mut out = Vec::new();
    filter.process(alice(1), &mut out);
    filter.process(nulls(2), &mut out);
    let row = out[0].after.as_ref().unwrap();
    assert_eq!(&*row.columns, ["id", "name", "note", "n"]);
    assert_eq!(row.values[1], text("Alice"));
    // Null stays null under truncation.
    assert_eq!(out[1].after.as_ref().unwrap().values[1], Value::Null);
    // A character Java counts as two units is kept whole or not at all.
    let cut = |s: &str, n: usize| masked(&Mask::Truncate(n), None, text(s));
    assert_eq!(cut("a😀b", 2), text("a"));
    assert_eq!(cut("a😀b", 3), text("a😀"));
    assert_eq!(cut("Ålice", 9), text("Ålice"));
}

#[test]
fn a_new_schema_replans_and_a_table_without_rules_is_untouched() {
    let mut unknown = filter(rules(), vec![]);
    let mut out = Vec::new();
    // Unknown schema: masked without a length cut.
    unknown.process(alice(1), &mut out);
    let hashed = |e: &Event| {
        e.after.as_ref().unwrap().values[2]
            .as_key_text()
            .unwrap()
            .len()
    };
    assert_eq!(hashed(&out[0]), 64);
    unknown.process(LogItem::Schema(schema()), &mut Vec::new());
    unknown.process(alice(1), &mut out);
    assert_eq!(hashed(&out[1]), 40);

    let mut none = filter(ColumnRules::default(), vec![schema()]);
    let mut plain = Vec::new();
    let item = alice(1);
    let LogItem::Event(expected) = &item else {
        unreachable!()
    };
    let expected = expected.clone();
    none.process(item, &mut plain);
    assert_eq!(plain, [expected]);
}

#[test]
fn patterns_are_debeziums_regexes_matching_whole_names_regardless_of_case() {
    assert!(pattern(r"public\.c\..*").matches("public.c.email"));
    assert!(pattern(r".*\.email").matches("sales.orders.email"));
    assert!(pattern(r"public\.(c|d)\.n").matches("public.d.n"));
    assert!(pattern("Public.C.Email").matches("public.c.email"));
    // Whole names only, as Java's matches().
    assert!(!pattern("public.c.e").matches("public.c.email"));
    assert!(!pattern("c.n").matches("public.c.n"));
    // Debezium's list: trimmed items, `\,` a comma inside one.
    let list = ColumnPattern::list(r" public.c.a{1\,2} ,, public.c.b ").unwrap();
    let sources: Vec<&str> = list.iter().map(ColumnPattern::as_str).collect();
    assert_eq!(sources, ["public.c.a{1,2}", "public.c.b"]);
    assert!(list[0].matches("public.c.aa"));
    let unmatched = ColumnRules {
        include: Vec::new(),
        exclude: vec![pattern("c.note"), pattern("public.c.note")],
        masks: vec![(pattern("public.x.name"), Mask::Chars(1))],
    };
    let names: Vec<&str> = unmatched
        .unmatched(&[schema()])
        .into_iter()
        .map(ColumnPattern::as_str)
        .collect();
    assert_eq!(names, ["c.note", "public.x.name"]);
    let err = ColumnPattern::list("public.c.(a").unwrap_err();
    assert_eq!(err.pattern, "public.c.(a");
    assert!(!err.to_string().contains('\n'), "{err}");
}

#[test]
fn java_serialization_of_strings_matches_object_output_stream() {
    // new ObjectOutputStream(out).writeObject("é\u{0}😀") → these bytes.
    assert_eq!(
        java_serialized("é\u{0}😀"),
        [
            0xac, 0xed, 0x00, 0x05, 0x74, 0x00, 0x0a, 0xc3, 0xa9, 0xc0, 0x80, 0xed, 0xa0, 0xbd,
            0xed, 0xb8, 0x80
        ]
    );
    let long = "a".repeat(70_000);
    let bytes = java_serialized(&long);
    assert_eq!(&bytes[4..13], [0x7c, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
}
