//! Property tests: parsing is total, commands round-trip through rows, names through text.

use cdc_signal::{
    parse, AdditionalCondition, Command, SignalRow, SnapshotKind, TableRef, SIGNAL_TYPES,
    SNAPSHOT_WINDOW_CLOSE, SNAPSHOT_WINDOW_OPEN,
};
use proptest::prelude::*;
use serde_json::{Map, Value};

const FIELD_NAMES: &[&str] = &[
    "data-collections",
    "type",
    "additional-conditions",
    "additional-condition",
    "data-collection",
    "filter",
    "message",
];

fn any_kind() -> impl Strategy<Value = String> {
    let mut known: Vec<String> = SIGNAL_TYPES.iter().map(|s| (*s).to_owned()).collect();
    known.push(SNAPSHOT_WINDOW_OPEN.to_owned());
    known.push(SNAPSHOT_WINDOW_CLOSE.to_owned());
    prop_oneof![
        3 => prop::sample::select(known.clone()),
        1 => prop::sample::select(known).prop_map(|k| k.to_uppercase()),
        1 => any::<String>(),
    ]
}

fn any_id() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), "[a-z0-9]{0,6}(-open|-close)?",]
}

/// Names mixing the characters that matter to quoting with arbitrary unicode.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z_][a-zA-Z0-9_]{0,10}",
        "[a-zA-Z. \"\t\u{a0}\u{3000}éß日😀]{1,10}",
        any::<String>().prop_filter("non-empty", |s| !s.is_empty()),
    ]
}

fn table_ref() -> impl Strategy<Value = TableRef> {
    (name(), name()).prop_map(|(s, n)| TableRef::new(s, n))
}

/// Arbitrary JSON, biased towards strings that look like table names and known field names.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<String>().prop_map(Value::from),
        "[a-z]{1,3}(\\.[a-z]{1,3})?".prop_map(Value::from),
        prop::sample::select(vec!["incremental", "blocking", ""]).prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((field_name(), inner), 0..6)
                .prop_map(|kvs| Value::Object(kvs.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(FIELD_NAMES).prop_map(str::to_owned),
        1 => any::<String>(),
    ]
}

/// A data object whose top-level keys are mostly the ones the parser looks at.
fn data_object() -> impl Strategy<Value = Value> {
    prop::collection::vec((field_name(), json_value()), 0..5)
        .prop_map(|kvs| Value::Object(kvs.into_iter().collect::<Map<_, _>>()))
}

fn any_data() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        any::<String>().prop_map(Some),
        json_value().prop_map(|v| Some(v.to_string())),
        data_object().prop_map(|v| Some(v.to_string())),
    ]
}

fn dedup(tables: Vec<TableRef>) -> Vec<TableRef> {
    let mut out: Vec<TableRef> = Vec::new();
    for t in tables {
        if !out.contains(&t) {
            out.push(t);
        }
    }
    out
}

fn filter() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z_]{1,8} (=|>|<>) '[a-z ]{0,8}'",
        any::<String>().prop_filter("non-blank", |s| !s.trim().is_empty()),
    ]
}

fn execute_snapshot() -> impl Strategy<Value = Command> {
    prop::collection::vec(table_ref(), 1..6)
        .prop_map(dedup)
        .prop_flat_map(|tables| {
            let n = tables.len();
            (
                Just(tables),
                prop::sample::subsequence((0..n).collect::<Vec<_>>(), 0..=n),
                prop::collection::vec(filter(), n),
                prop::option::of("[a-z_][a-z0-9_ ]{0,8}"),
            )
        })
        .prop_map(|(tables, picked, filters, surrogate_key)| {
            let conditions = picked
                .into_iter()
                .map(|i| AdditionalCondition {
                    table: tables[i].clone(),
                    filter: filters[i].clone(),
                })
                .collect();
            Command::ExecuteSnapshot {
                tables,
                kind: SnapshotKind::Incremental,
                conditions,
                surrogate_key,
            }
        })
}

fn valid_command() -> impl Strategy<Value = Command> {
    let window = any::<String>().prop_filter("non-empty", |s| !s.is_empty());
    prop_oneof![
        execute_snapshot(),
        prop::collection::vec(table_ref(), 0..6).prop_map(|tables| Command::StopSnapshot {
            tables: dedup(tables)
        }),
        Just(Command::PauseSnapshot),
        Just(Command::ResumeSnapshot),
        any::<String>().prop_map(|message| Command::Log { message }),
        window
            .clone()
            .prop_map(|window| Command::WindowOpen { window }),
        window.prop_map(|window| Command::WindowClose { window }),
    ]
}

/// Rows near validity: a valid command's row with one top-level data field overwritten.
fn mutated_row() -> impl Strategy<Value = SignalRow> {
    (valid_command(), any_id(), field_name(), json_value()).prop_map(|(cmd, id, key, value)| {
        let mut row = cmd.to_row(id);
        let mut obj = match row.data.as_deref().map(serde_json::from_str::<Value>) {
            Some(Ok(Value::Object(obj))) => obj,
            _ => Map::new(),
        };
        obj.insert(key, value);
        row.data = Some(Value::Object(obj).to_string());
        row
    })
}

fn is_one_line(msg: &str) -> bool {
    !msg.chars()
        .any(|c| c.is_control() || c == '\u{2028}' || c == '\u{2029}')
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn parse_is_total(id in any_id(), kind in any_kind(), data in any_data()) {
        let row = SignalRow { id, kind, data };
        match parse(&row) {
            // Anything accepted must be representable: it survives a trip through a row.
            Ok(cmd) => prop_assert_eq!(parse(&cmd.to_row(row.id.clone())), Ok(cmd)),
            Err(e) => {
                let msg = e.to_string();
                prop_assert!(is_one_line(&msg), "{:?}", msg);
            }
        }
    }

    #[test]
    fn parse_is_total_near_valid_rows(row in mutated_row()) {
        match parse(&row) {
            Ok(cmd) => prop_assert_eq!(parse(&cmd.to_row(row.id.clone())), Ok(cmd)),
            Err(e) => {
                let msg = e.to_string();
                prop_assert!(is_one_line(&msg), "{:?}", msg);
            }
        }
    }

    #[test]
    fn parse_never_panics_on_raw_strings(id in any::<String>(), kind in any::<String>(), data in proptest::option::of(any::<String>())) {
        let _ = parse(&SignalRow { id, kind, data });
    }

    #[test]
    fn commands_round_trip_through_rows(cmd in valid_command(), id in any::<String>()) {
        let row = cmd.to_row(id);
        prop_assert_eq!(parse(&row), Ok(cmd));
    }

    #[test]
    fn constructors_accept_valid_commands(cmd in execute_snapshot()) {
        let Command::ExecuteSnapshot { tables, conditions, surrogate_key, .. } = cmd.clone() else {
            unreachable!()
        };
        let built = Command::execute_snapshot(tables, conditions)
            .and_then(|c| c.with_surrogate_key(surrogate_key));
        prop_assert_eq!(built, Ok(cmd));
    }

    #[test]
    fn table_refs_round_trip_through_display(t in table_ref()) {
        prop_assert_eq!(TableRef::parse(&t.to_string()), Ok(t));
    }

    #[test]
    fn table_ref_parse_is_total_and_canonical(s in prop_oneof![any::<String>(), "[a-z. \"]{0,12}"]) {
        if let Ok(t) = TableRef::parse(&s) {
            prop_assert_eq!(TableRef::parse(&t.to_string()), Ok(t));
        }
    }
}
