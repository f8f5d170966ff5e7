//! Parsing signal rows: Debezium's documented examples, variations, and every error.

use cdc_signal::{
    parse, AdditionalCondition, Command, SignalError, SignalRow, SnapshotKind, TableRef,
    TableRefError,
};

fn row(kind: &str, data: Option<&str>) -> SignalRow {
    SignalRow {
        id: "ad-hoc-1".into(),
        kind: kind.into(),
        data: data.map(str::to_owned),
    }
}

fn parse_ok(kind: &str, data: Option<&str>) -> Command {
    parse(&row(kind, data)).unwrap_or_else(|e| panic!("{kind} {data:?}: {e}"))
}

fn parse_err(kind: &str, data: Option<&str>) -> SignalError {
    match parse(&row(kind, data)) {
        Ok(cmd) => panic!("{kind} {data:?} should fail, got {cmd:?}"),
        Err(e) => e,
    }
}

fn t(schema: &str, name: &str) -> TableRef {
    TableRef::new(schema, name)
}

fn incremental(tables: Vec<TableRef>, conditions: Vec<AdditionalCondition>) -> Command {
    Command::ExecuteSnapshot {
        tables,
        kind: SnapshotKind::Incremental,
        conditions,
        surrogate_key: None,
    }
}

fn malformed(e: SignalError) -> String {
    match e {
        SignalError::MalformedData { reason } => reason,
        other => panic!("expected MalformedData, got {other:?}"),
    }
}

// --- Debezium's documented examples -------------------------------------------------------

#[test]
fn debezium_execute_snapshot_example() {
    let cmd = parse_ok(
        "execute-snapshot",
        Some(
            r#"{"data-collections": ["schema1.table1", "schema1.table2"], "type": "incremental"}"#,
        ),
    );
    assert_eq!(
        cmd,
        incremental(vec![t("schema1", "table1"), t("schema1", "table2")], vec![])
    );
}

#[test]
fn debezium_execute_snapshot_with_additional_conditions_example() {
    let cmd = parse_ok(
        "execute-snapshot",
        Some(
            r#"{"data-collections": ["schema1.table1", "schema1.table2"], "type":"incremental", "additional-conditions":[{"data-collection": "schema1.table1" ,"filter":"color='blue'"}]}"#,
        ),
    );
    assert_eq!(
        cmd,
        incremental(
            vec![t("schema1", "table1"), t("schema1", "table2")],
            vec![AdditionalCondition {
                table: t("schema1", "table1"),
                filter: "color='blue'".into(),
            }]
        )
    );
}

#[test]
fn debezium_products_example_with_compound_filter() {
    let cmd = parse_ok(
        "execute-snapshot",
        Some(
            r#"{"data-collections": ["schema1.products"],"type":"incremental", "additional-conditions":[{"data-collection": "schema1.products", "filter": "color='blue' AND quantity>10"}]}"#,
        ),
    );
    assert_eq!(
        cmd,
        incremental(
            vec![t("schema1", "products")],
            vec![AdditionalCondition {
                table: t("schema1", "products"),
                filter: "color='blue' AND quantity>10".into(),
            }]
        )
    );
}

#[test]
fn debezium_stop_snapshot_example() {
    let cmd = parse_ok(
        "stop-snapshot",
        Some(r#"{"data-collections": ["schema1.table1", "schema1.table2"], "type":"incremental"}"#),
    );
    assert_eq!(
        cmd,
        Command::StopSnapshot {
            tables: vec![t("schema1", "table1"), t("schema1", "table2")]
        }
    );
}

#[test]
fn debezium_pause_and_resume_examples() {
    for data in [None, Some("{}"), Some(""), Some("null")] {
        assert_eq!(parse_ok("pause-snapshot", data), Command::PauseSnapshot);
        assert_eq!(parse_ok("resume-snapshot", data), Command::ResumeSnapshot);
    }
}

#[test]
fn debezium_log_example() {
    assert_eq!(
        parse_ok("log", Some(r#"{"message": "Signal message at offset {}"}"#)),
        Command::Log {
            message: "Signal message at offset {}".into()
        }
    );
}

#[test]
fn debezium_watermark_rows() {
    // Debezium writes `<uuid>-open` / `<uuid>-close` with a timestamp object as data.
    let open = SignalRow {
        id: "9a1f-4c2e-open".into(),
        kind: "snapshot-window-open".into(),
        data: Some(r#"{"openWindowTimestamp": "2024-01-01T00:00:00Z"}"#.into()),
    };
    assert_eq!(
        parse(&open),
        Ok(Command::WindowOpen {
            window: "9a1f-4c2e".into()
        })
    );
    let close = SignalRow {
        id: "9a1f-4c2e-close".into(),
        kind: "snapshot-window-close".into(),
        data: None,
    };
    assert_eq!(
        parse(&close),
        Ok(Command::WindowClose {
            window: "9a1f-4c2e".into()
        })
    );
}

// --- Accepted variations ------------------------------------------------------------------

#[test]
fn type_names_ignore_case_and_surrounding_space() {
    assert_eq!(parse_ok("PAUSE-SNAPSHOT", None), Command::PauseSnapshot);
    assert_eq!(
        parse_ok(" Resume-Snapshot\n", None),
        Command::ResumeSnapshot
    );
    assert_eq!(
        parse_ok("Execute-Snapshot", Some(r#"{"data-collections": ["a"]}"#)),
        incremental(vec![t("public", "a")], vec![])
    );
}

#[test]
fn snapshot_type_defaults_to_incremental_and_ignores_case() {
    for data in [
        r#"{"data-collections": ["a"]}"#,
        r#"{"data-collections": ["a"], "type": null}"#,
        r#"{"data-collections": ["a"], "type": "INCREMENTAL"}"#,
        r#"{"data-collections": ["a"], "type": "Incremental"}"#,
    ] {
        assert_eq!(
            parse_ok("execute-snapshot", Some(data)),
            incremental(vec![t("public", "a")], vec![]),
            "{data}"
        );
    }
}

#[test]
fn unknown_fields_are_ignored() {
    let cmd = parse_ok(
        "execute-snapshot",
        Some(r#"{"data-collections": ["a"], "x": {"y": [1]}}"#),
    );
    assert_eq!(cmd, incremental(vec![t("public", "a")], vec![]));
    let cmd = parse_ok(
        "execute-snapshot",
        Some(
            r#"{"data-collections": ["a"], "additional-conditions": [{"data-collection": "a", "filter": "x", "note": 1}]}"#,
        ),
    );
    assert_eq!(
        cmd,
        incremental(
            vec![t("public", "a")],
            vec![AdditionalCondition {
                table: t("public", "a"),
                filter: "x".into()
            }]
        )
    );
    assert_eq!(
        parse_ok("log", Some(r#"{"message": "hi", "level": 3}"#)),
        Command::Log {
            message: "hi".into()
        }
    );
}

#[test]
fn duplicate_tables_keep_first_seen_order() {
    let cmd = parse_ok(
        "execute-snapshot",
        Some(r#"{"data-collections": ["b", "public.a", "public.b", "a", "c"]}"#),
    );
    assert_eq!(
        cmd,
        incremental(
            vec![t("public", "b"), t("public", "a"), t("public", "c")],
            vec![]
        )
    );
    assert_eq!(
        parse_ok("stop-snapshot", Some(r#"{"data-collections": ["x", "x"]}"#)),
        Command::StopSnapshot {
            tables: vec![t("public", "x")]
        }
    );
}

#[test]
fn quoted_identifiers_in_signals() {
    let cmd = parse_ok(
        "execute-snapshot",
        Some(
            r#"{"data-collections": ["\"My Schema\".\"Order\"\"s\"", "Sales.\"a.b\""], "additional-conditions": [{"data-collection": "\"My Schema\".\"Order\"\"s\"", "filter": "id > 5"}]}"#,
        ),
    );
    assert_eq!(
        cmd,
        incremental(
            vec![t("My Schema", "Order\"s"), t("Sales", "a.b")],
            vec![AdditionalCondition {
                table: t("My Schema", "Order\"s"),
                filter: "id > 5".into()
            }]
        )
    );
}

#[test]
fn condition_table_matches_after_normalisation() {
    // `orders` and `public.orders` name the same table.
    let cmd = parse_ok(
        "execute-snapshot",
        Some(
            r#"{"data-collections": ["public.orders"], "additional-conditions": [{"data-collection": "orders", "filter": "status = 'open'"}]}"#,
        ),
    );
    assert_eq!(
        cmd,
        incremental(
            vec![t("public", "orders")],
            vec![AdditionalCondition {
                table: t("public", "orders"),
                filter: "status = 'open'".into()
            }]
        )
    );
}

#[test]
fn null_optional_fields_mean_absent() {
    assert_eq!(
        parse_ok(
            "execute-snapshot",
            Some(
                r#"{"data-collections": ["a"], "additional-conditions": null, "additional-condition": null}"#
            )
        ),
        incremental(vec![t("public", "a")], vec![])
    );
    assert_eq!(
        parse_ok(
            "execute-snapshot",
            Some(r#"{"data-collections": ["a"], "additional-conditions": []}"#)
        ),
        incremental(vec![t("public", "a")], vec![])
    );
}

#[test]
fn stop_snapshot_without_tables_means_all() {
    for data in [
        None,
        Some(""),
        Some("null"),
        Some("{}"),
        Some(r#"{"type": "incremental"}"#),
        Some(r#"{"data-collections": []}"#),
        Some(r#"{"data-collections": null}"#),
    ] {
        assert_eq!(
            parse_ok("stop-snapshot", data),
            Command::StopSnapshot { tables: vec![] },
            "{data:?}"
        );
    }
}

#[test]
fn log_message_may_be_empty() {
    assert_eq!(
        parse_ok("log", Some(r#"{"message": ""}"#)),
        Command::Log { message: "".into() }
    );
}

#[test]
fn window_id_strips_one_suffix_only() {
    let r = SignalRow {
        id: "x-open-open".into(),
        kind: "snapshot-window-open".into(),
        data: None,
    };
    assert_eq!(
        parse(&r),
        Ok(Command::WindowOpen {
            window: "x-open".into()
        })
    );
}

// --- Errors -------------------------------------------------------------------------------

#[test]
fn unknown_type() {
    assert_eq!(
        parse_err("foo", None),
        SignalError::UnknownType("foo".into())
    );
    assert_eq!(
        parse_err("foo", None).to_string(),
        "unknown signal type 'foo' (expected one of execute-snapshot, stop-snapshot, \
         pause-snapshot, resume-snapshot, log)"
    );
    assert_eq!(parse_err("", None), SignalError::UnknownType("".into()));
    // Reported as an unknown type even when the data is garbage too.
    assert_eq!(
        parse_err("execute_snapshot", Some("{not json")),
        SignalError::UnknownType("execute_snapshot".into())
    );
}

#[test]
fn invalid_json_data() {
    for kind in [
        "execute-snapshot",
        "stop-snapshot",
        "pause-snapshot",
        "resume-snapshot",
        "log",
    ] {
        let reason = malformed(parse_err(kind, Some(r#"{"data-collections": ["#)));
        assert!(reason.starts_with("data is not valid JSON: "), "{reason}");
    }
}

#[test]
fn data_must_be_an_object() {
    for (data, got) in [
        (r#"["a"]"#, "an array"),
        ("42", "a number"),
        (r#""public.a""#, "a string"),
        ("true", "a boolean"),
    ] {
        assert_eq!(
            malformed(parse_err("execute-snapshot", Some(data))),
            format!("data must be a JSON object, got {got}")
        );
        assert_eq!(
            malformed(parse_err("pause-snapshot", Some(data))),
            format!("data must be a JSON object, got {got}")
        );
    }
}

#[test]
fn execute_snapshot_missing_collections() {
    for data in [
        None,
        Some(""),
        Some("null"),
        Some("{}"),
        Some(r#"{"data-collections": null, "type": "incremental"}"#),
    ] {
        assert_eq!(
            parse_err("execute-snapshot", data),
            SignalError::MissingField("data-collections"),
            "{data:?}"
        );
    }
}

#[test]
fn execute_snapshot_empty_collections() {
    assert_eq!(
        parse_err("execute-snapshot", Some(r#"{"data-collections": []}"#)),
        SignalError::EmptyCollections
    );
}

#[test]
fn wrong_field_types() {
    let cases = [
        (
            "execute-snapshot",
            r#"{"data-collections": "public.a"}"#,
            "'data-collections' must be an array of table names, got a string",
        ),
        (
            "execute-snapshot",
            r#"{"data-collections": ["a", 7]}"#,
            "'data-collections'[1] must be a table name string, got a number",
        ),
        (
            "stop-snapshot",
            r#"{"data-collections": {"a": 1}}"#,
            "'data-collections' must be an array of table names, got an object",
        ),
        (
            "execute-snapshot",
            r#"{"data-collections": ["a"], "type": 1}"#,
            "'type' must be a string, got a number",
        ),
        (
            "execute-snapshot",
            r#"{"data-collections": ["a"], "additional-conditions": {"data-collection": "a"}}"#,
            "'additional-conditions' must be an array of objects, got an object",
        ),
        (
            "execute-snapshot",
            r#"{"data-collections": ["a"], "additional-conditions": ["x = 1"]}"#,
            "'additional-conditions'[0] must be an object with 'data-collection' and 'filter', got a string",
        ),
        (
            "execute-snapshot",
            r#"{"data-collections": ["a"], "additional-conditions": [{"data-collection": ["a"], "filter": "x"}]}"#,
            "'additional-conditions[0].data-collection' must be a string, got an array",
        ),
        (
            "execute-snapshot",
            r#"{"data-collections": ["a"], "additional-conditions": [{"data-collection": "a", "filter": true}]}"#,
            "'additional-conditions[0].filter' must be a string, got a boolean",
        ),
        ("log", r#"{"message": 5}"#, "'message' must be a string, got a number"),
    ];
    for (kind, data, want) in cases {
        assert_eq!(malformed(parse_err(kind, Some(data))), want, "{data}");
    }
}

#[test]
fn missing_condition_fields() {
    assert_eq!(
        parse_err(
            "execute-snapshot",
            Some(r#"{"data-collections": ["a"], "additional-conditions": [{"filter": "x"}]}"#)
        ),
        SignalError::MissingField("data-collection")
    );
    assert_eq!(
        parse_err(
            "execute-snapshot",
            Some(
                r#"{"data-collections": ["a"], "additional-conditions": [{"data-collection": "a", "filter": null}]}"#
            )
        ),
        SignalError::MissingField("filter")
    );
}

#[test]
fn log_without_message() {
    for data in [None, Some("{}"), Some(r#"{"message": null}"#)] {
        assert_eq!(parse_err("log", data), SignalError::MissingField("message"));
    }
}

#[test]
fn bad_table_names() {
    let cases = [
        ("db.schema.table", TableRefError::TooManyParts),
        ("", TableRefError::Empty),
        ("schema.", TableRefError::EmptyPart),
        ("\"open", TableRefError::UnterminatedQuote),
        ("my table", TableRefError::UnquotedWhitespace),
    ];
    for (name, reason) in cases {
        let data = format!(
            r#"{{"data-collections": ["a", {}]}}"#,
            serde_json::json!(name)
        );
        let want = SignalError::BadTable {
            table: name.into(),
            reason: reason.clone(),
        };
        assert_eq!(parse_err("execute-snapshot", Some(&data)), want);
        assert_eq!(parse_err("stop-snapshot", Some(&data)), want);
    }
    let data = r#"{"data-collections": ["a"], "additional-conditions": [{"data-collection": "a.b.c", "filter": "x"}]}"#;
    assert_eq!(
        parse_err("execute-snapshot", Some(data)),
        SignalError::BadTable {
            table: "a.b.c".into(),
            reason: TableRefError::TooManyParts
        }
    );
}

#[test]
fn blocking_snapshots_are_rejected() {
    let e = parse_err(
        "execute-snapshot",
        Some(r#"{"data-collections": ["a"], "type": "blocking"}"#),
    );
    assert_eq!(e, SignalError::UnsupportedSnapshotType("blocking".into()));
    assert!(e.to_string().contains("only 'incremental'"), "{e}");
    assert_eq!(
        parse_err("stop-snapshot", Some(r#"{"type": "BLOCKING"}"#)),
        SignalError::UnsupportedSnapshotType("BLOCKING".into())
    );
    assert_eq!(
        parse_err(
            "execute-snapshot",
            Some(r#"{"data-collections": ["a"], "type": ""}"#)
        ),
        SignalError::UnsupportedSnapshotType("".into())
    );
}

#[test]
fn condition_for_unlisted_table() {
    let data = r#"{"data-collections": ["public.a"], "additional-conditions": [{"data-collection": "other.a", "filter": "x = 1"}]}"#;
    assert_eq!(
        parse_err("execute-snapshot", Some(data)),
        SignalError::ConditionForUnlistedTable("other.a".into())
    );
}

#[test]
fn empty_filter() {
    for filter in ["", "   ", "\n\t"] {
        let data = format!(
            r#"{{"data-collections": ["a"], "additional-conditions": [{{"data-collection": "a", "filter": {}}}]}}"#,
            serde_json::json!(filter)
        );
        assert_eq!(
            parse_err("execute-snapshot", Some(&data)),
            SignalError::EmptyFilter("a".into())
        );
    }
}

#[test]
fn duplicate_condition() {
    let data = r#"{"data-collections": ["a"], "additional-conditions": [{"data-collection": "a", "filter": "x = 1"}, {"data-collection": "public.a", "filter": "y = 2"}]}"#;
    assert_eq!(
        parse_err("execute-snapshot", Some(data)),
        SignalError::DuplicateCondition("public.a".into())
    );
}

#[test]
fn legacy_additional_condition() {
    let data = r#"{"data-collections": ["a"], "additional-condition": "x = 1"}"#;
    assert_eq!(
        parse_err("execute-snapshot", Some(data)),
        SignalError::LegacyAdditionalCondition
    );
}

#[test]
fn bad_window_ids() {
    for (kind, id) in [
        ("snapshot-window-open", "abc"),
        ("snapshot-window-open", "-open"),
        ("snapshot-window-open", "abc-close"),
        ("snapshot-window-open", "abc-OPEN"),
        ("snapshot-window-close", "abc-open"),
        ("snapshot-window-close", "-close"),
        ("snapshot-window-close", ""),
    ] {
        let r = SignalRow {
            id: id.into(),
            kind: kind.into(),
            data: None,
        };
        assert_eq!(
            parse(&r),
            Err(SignalError::BadWindowId(id.into())),
            "{kind} {id}"
        );
    }
}

#[test]
fn error_messages_are_single_lines() {
    let rows = [
        row("foo\nbar", None),
        row(
            "execute-snapshot",
            Some("{\n\"data-collections\": [\"a\nb\"]}"),
        ),
        row(
            "execute-snapshot",
            Some("{\"data-collections\": [\"a\\nb c\"]}"),
        ),
        row(
            "execute-snapshot",
            Some("{\n  \"data-collections\":\n  [\n"),
        ),
        row(
            "execute-snapshot",
            Some(r#"{"data-collections": ["a"], "type": "block\ning"}"#),
        ),
    ];
    for r in rows {
        let e = parse(&r).unwrap_err();
        let msg = e.to_string();
        assert!(!msg.contains('\n') && !msg.contains('\r'), "{msg:?}");
    }
}

#[test]
fn a_surrogate_key_names_one_column() {
    let cmd = parse_ok(
        "execute-snapshot",
        Some(r#"{"data-collections": ["a"], "surrogate-key": "Order Id"}"#),
    );
    let Command::ExecuteSnapshot { surrogate_key, .. } = cmd else {
        panic!("{cmd:?}")
    };
    assert_eq!(surrogate_key.as_deref(), Some("Order Id"));
    for bad in [r#""""#, r#""  ""#, r#""a\nb""#, "7"] {
        let row = SignalRow {
            id: "s".into(),
            kind: "execute-snapshot".into(),
            data: Some(format!(
                r#"{{"data-collections": ["a"], "surrogate-key": {bad}}}"#
            )),
        };
        let err = parse(&row).unwrap_err().to_string();
        assert!(err.contains("surrogate-key"), "{bad}: {err}");
    }
}
