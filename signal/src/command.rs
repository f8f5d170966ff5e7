//! The signal command vocabulary and its encoding back into signal rows.

use std::collections::HashSet;

use serde_json::Value;

use crate::error::SignalError;
use crate::table::TableRef;
use crate::SignalRow;

/// `type` column values, spelled as Debezium spells them.
pub const EXECUTE_SNAPSHOT: &str = "execute-snapshot";
pub const STOP_SNAPSHOT: &str = "stop-snapshot";
pub const PAUSE_SNAPSHOT: &str = "pause-snapshot";
pub const RESUME_SNAPSHOT: &str = "resume-snapshot";
pub const LOG: &str = "log";
/// Watermark types: written by the engine itself, not by operators.
pub const SNAPSHOT_WINDOW_OPEN: &str = "snapshot-window-open";
pub const SNAPSHOT_WINDOW_CLOSE: &str = "snapshot-window-close";

/// Suffixes that turn a window id into the id of its watermark rows.
pub const WINDOW_OPEN_SUFFIX: &str = "-open";
pub const WINDOW_CLOSE_SUFFIX: &str = "-close";

// Field names inside `data`, as Debezium spells them.
pub(crate) const DATA_COLLECTIONS: &str = "data-collections";
pub(crate) const SNAPSHOT_TYPE: &str = "type";
pub(crate) const ADDITIONAL_CONDITIONS: &str = "additional-conditions";
pub(crate) const LEGACY_ADDITIONAL_CONDITION: &str = "additional-condition";
pub(crate) const DATA_COLLECTION: &str = "data-collection";
pub(crate) const SURROGATE_KEY: &str = "surrogate-key";
pub(crate) const FILTER: &str = "filter";
pub(crate) const MESSAGE: &str = "message";

/// How a snapshot is taken. Only DBLog-style incremental snapshots exist here; Debezium's
/// "blocking" snapshots are rejected at parse time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotKind {
    Incremental,
}

impl SnapshotKind {
    /// The value of the `type` field in `execute-snapshot` data.
    pub fn as_str(&self) -> &'static str {
        match self {
            SnapshotKind::Incremental => "incremental",
        }
    }
}

/// Restricts the rows an `execute-snapshot` selects from one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdditionalCondition {
    pub table: TableRef,
    /// Opaque SQL boolean expression; the source validates it against the server.
    pub filter: String,
}

/// A parsed signal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `{"data-collections": ["public.orders"], "type": "incremental",
    ///   "additional-conditions": [{"data-collection": "public.orders", "filter": "..."}]}`
    ExecuteSnapshot {
        tables: Vec<TableRef>,
        kind: SnapshotKind,
        conditions: Vec<AdditionalCondition>,
        /// `"surrogate-key": "col"`: chunk the tables in the order of this
        /// column rather than by their key (a table without a key needs it
        /// or a source's physical order). The source checks it against the
        /// catalog.
        surrogate_key: Option<String>,
    },
    /// `{"data-collections": [...]}`; an empty list (or no data) stops all tables.
    StopSnapshot {
        tables: Vec<TableRef>,
    },
    PauseSnapshot,
    ResumeSnapshot,
    /// `{"message": "..."}`
    Log {
        message: String,
    },
    /// Low watermark written by the engine before a chunk select; row id `<window>-open`.
    WindowOpen {
        window: String,
    },
    /// High watermark written by the engine after a chunk select; row id `<window>-close`.
    WindowClose {
        window: String,
    },
}

impl Command {
    /// Builds a valid `execute-snapshot`: duplicate tables are dropped (first one kept) and
    /// conditions are checked the way `parse` checks them, so `to_row` round-trips.
    pub fn execute_snapshot(
        tables: Vec<TableRef>,
        conditions: Vec<AdditionalCondition>,
    ) -> Result<Command, SignalError> {
        let tables = checked_tables(tables)?;
        if tables.is_empty() {
            return Err(SignalError::EmptyCollections);
        }
        for c in &conditions {
            check_table(&c.table)?;
        }
        let labeled = conditions
            .into_iter()
            .map(|c| (c.table.to_string(), c))
            .collect();
        let conditions = check_conditions(&tables, labeled)?;
        Ok(Command::ExecuteSnapshot {
            tables,
            kind: SnapshotKind::Incremental,
            conditions,
            surrogate_key: None,
        })
    }

    /// An `execute-snapshot` that chunks by `column` (Debezium's
    /// `surrogate-key`); other commands are returned unchanged.
    pub fn with_surrogate_key(self, column: Option<String>) -> Result<Command, SignalError> {
        match (self, column) {
            (
                Command::ExecuteSnapshot {
                    tables,
                    kind,
                    conditions,
                    ..
                },
                Some(column),
            ) => Ok(Command::ExecuteSnapshot {
                tables,
                kind,
                conditions,
                surrogate_key: Some(check_surrogate_key(&column)?),
            }),
            (command, _) => Ok(command),
        }
    }

    /// Builds a valid `stop-snapshot`; an empty list means all tables.
    pub fn stop_snapshot(tables: Vec<TableRef>) -> Result<Command, SignalError> {
        Ok(Command::StopSnapshot {
            tables: checked_tables(tables)?,
        })
    }

    /// The `type` column value for this command.
    pub fn type_name(&self) -> &'static str {
        match self {
            Command::ExecuteSnapshot { .. } => EXECUTE_SNAPSHOT,
            Command::StopSnapshot { .. } => STOP_SNAPSHOT,
            Command::PauseSnapshot => PAUSE_SNAPSHOT,
            Command::ResumeSnapshot => RESUME_SNAPSHOT,
            Command::Log { .. } => LOG,
            Command::WindowOpen { .. } => SNAPSHOT_WINDOW_OPEN,
            Command::WindowClose { .. } => SNAPSHOT_WINDOW_CLOSE,
        }
    }

    /// The row an operator would INSERT for this command; `parse` gives the command back.
    ///
    /// Window commands ignore `id`: their row id is `<window>-open` / `<window>-close`,
    /// because that id is the only place the window is recorded.
    pub fn to_row(&self, id: String) -> SignalRow {
        let (id, data) = match self {
            Command::ExecuteSnapshot {
                tables,
                kind,
                conditions,
                surrogate_key,
            } => (
                id,
                Some(execute_data(
                    tables,
                    kind,
                    conditions,
                    surrogate_key.as_deref(),
                )),
            ),
            Command::StopSnapshot { tables } => (id, Some(stop_data(tables))),
            Command::PauseSnapshot | Command::ResumeSnapshot => (id, None),
            Command::Log { message } => (
                id,
                Some(format!("{{\"{MESSAGE}\": {}}}", json_str(message))),
            ),
            Command::WindowOpen { window } => (format!("{window}{WINDOW_OPEN_SUFFIX}"), None),
            Command::WindowClose { window } => (format!("{window}{WINDOW_CLOSE_SUFFIX}"), None),
        };
        SignalRow {
            id,
            kind: self.type_name().to_owned(),
            data,
        }
    }
}

// JSON is assembled by hand so keys come out in Debezium's documented order (serde_json's
// default map sorts keys); values still go through serde_json for escaping.
fn json_str(s: &str) -> String {
    Value::from(s).to_string()
}

fn table_list(tables: &[TableRef]) -> String {
    let items: Vec<String> = tables.iter().map(|t| json_str(&t.to_string())).collect();
    format!("[{}]", items.join(", "))
}

fn execute_data(
    tables: &[TableRef],
    kind: &SnapshotKind,
    conditions: &[AdditionalCondition],
    surrogate_key: Option<&str>,
) -> String {
    let mut data = format!(
        "{{\"{DATA_COLLECTIONS}\": {}, \"{SNAPSHOT_TYPE}\": {}",
        table_list(tables),
        json_str(kind.as_str())
    );
    if !conditions.is_empty() {
        let items: Vec<String> = conditions
            .iter()
            .map(|c| {
                format!(
                    "{{\"{DATA_COLLECTION}\": {}, \"{FILTER}\": {}}}",
                    json_str(&c.table.to_string()),
                    json_str(&c.filter)
                )
            })
            .collect();
        data.push_str(&format!(
            ", \"{ADDITIONAL_CONDITIONS}\": [{}]",
            items.join(", ")
        ));
    }
    if let Some(column) = surrogate_key {
        data.push_str(&format!(", \"{SURROGATE_KEY}\": {}", json_str(column)));
    }
    data.push('}');
    data
}

/// A surrogate key names one column: not empty, no control characters. The
/// source looks it up in the catalog before it reaches SQL.
pub(crate) fn check_surrogate_key(column: &str) -> Result<String, SignalError> {
    if column.trim().is_empty() || column.chars().any(char::is_control) {
        return Err(SignalError::BadSurrogateKey(column.to_owned()));
    }
    Ok(column.to_owned())
}

fn stop_data(tables: &[TableRef]) -> String {
    // Debezium documents `type` on stop-snapshot too; writing it keeps rows interchangeable.
    format!(
        "{{\"{DATA_COLLECTIONS}\": {}, \"{SNAPSHOT_TYPE}\": {}}}",
        table_list(tables),
        json_str(SnapshotKind::Incremental.as_str())
    )
}

fn check_table(table: &TableRef) -> Result<(), SignalError> {
    table.check().map_err(|reason| SignalError::BadTable {
        table: table.to_string(),
        reason,
    })
}

fn checked_tables(tables: Vec<TableRef>) -> Result<Vec<TableRef>, SignalError> {
    for t in &tables {
        check_table(t)?;
    }
    Ok(dedup_tables(tables))
}

/// Drops repeated tables, keeping first-seen order (snapshot order follows the list).
pub(crate) fn dedup_tables(tables: Vec<TableRef>) -> Vec<TableRef> {
    let mut seen = HashSet::with_capacity(tables.len());
    tables
        .into_iter()
        .filter(|t| seen.insert(t.clone()))
        .collect()
}

/// Checks conditions against the listed tables. Each comes with the table name as the
/// operator wrote it, so errors quote their input rather than our normalised form.
pub(crate) fn check_conditions(
    tables: &[TableRef],
    conditions: Vec<(String, AdditionalCondition)>,
) -> Result<Vec<AdditionalCondition>, SignalError> {
    let mut seen = HashSet::with_capacity(conditions.len());
    let mut out = Vec::with_capacity(conditions.len());
    for (label, condition) in conditions {
        if !tables.contains(&condition.table) {
            return Err(SignalError::ConditionForUnlistedTable(label));
        }
        if condition.filter.trim().is_empty() {
            return Err(SignalError::EmptyFilter(label));
        }
        // Two filters for one table are ambiguous (AND? OR?), so make the operator say.
        if !seen.insert(condition.table.clone()) {
            return Err(SignalError::DuplicateCondition(label));
        }
        out.push(condition);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::TableRefError;

    fn t(s: &str) -> TableRef {
        TableRef::parse(s).unwrap()
    }

    fn cond(table: &str, filter: &str) -> AdditionalCondition {
        AdditionalCondition {
            table: t(table),
            filter: filter.into(),
        }
    }

    #[test]
    fn type_names() {
        let cases = [
            (
                Command::ExecuteSnapshot {
                    tables: vec![t("a")],
                    kind: SnapshotKind::Incremental,
                    conditions: vec![],
                    surrogate_key: None,
                },
                "execute-snapshot",
            ),
            (Command::StopSnapshot { tables: vec![] }, "stop-snapshot"),
            (Command::PauseSnapshot, "pause-snapshot"),
            (Command::ResumeSnapshot, "resume-snapshot"),
            (
                Command::Log {
                    message: "m".into(),
                },
                "log",
            ),
            (
                Command::WindowOpen { window: "w".into() },
                "snapshot-window-open",
            ),
            (
                Command::WindowClose { window: "w".into() },
                "snapshot-window-close",
            ),
        ];
        for (cmd, name) in cases {
            assert_eq!(cmd.type_name(), name);
            assert_eq!(cmd.to_row("id".into()).kind, name);
        }
    }

    #[test]
    fn execute_row_matches_debezium_layout() {
        let cmd = Command::execute_snapshot(
            vec![t("schema1.table1"), t("schema1.table2")],
            vec![cond("schema1.table1", "color='blue'")],
        )
        .unwrap();
        let row = cmd.to_row("ad-hoc-1".into());
        assert_eq!(row.id, "ad-hoc-1");
        assert_eq!(row.kind, "execute-snapshot");
        assert_eq!(
            row.data.as_deref(),
            Some(
                r#"{"data-collections": ["schema1.table1", "schema1.table2"], "type": "incremental", "additional-conditions": [{"data-collection": "schema1.table1", "filter": "color='blue'"}]}"#
            )
        );
    }

    #[test]
    fn execute_row_without_conditions_omits_the_field() {
        let cmd = Command::execute_snapshot(vec![t("s.t")], vec![]).unwrap();
        assert_eq!(
            cmd.to_row("x".into()).data.as_deref(),
            Some(r#"{"data-collections": ["s.t"], "type": "incremental"}"#)
        );
    }

    #[test]
    fn rows_escape_json_and_quote_identifiers() {
        let cmd = Command::execute_snapshot(vec![TableRef::new("My Schema", "Order\"s")], vec![])
            .unwrap();
        assert_eq!(
            cmd.to_row("x".into()).data.as_deref(),
            Some(
                r#"{"data-collections": ["\"My Schema\".\"Order\"\"s\""], "type": "incremental"}"#
            )
        );
        let log = Command::Log {
            message: "say \"hi\"\n".into(),
        };
        assert_eq!(
            log.to_row("x".into()).data.as_deref(),
            Some(r#"{"message": "say \"hi\"\n"}"#)
        );
    }

    #[test]
    fn stop_pause_resume_rows() {
        let stop = Command::stop_snapshot(vec![]).unwrap();
        assert_eq!(
            stop.to_row("x".into()).data.as_deref(),
            Some(r#"{"data-collections": [], "type": "incremental"}"#)
        );
        assert_eq!(Command::PauseSnapshot.to_row("x".into()).data, None);
        assert_eq!(Command::ResumeSnapshot.to_row("x".into()).data, None);
    }

    #[test]
    fn window_rows_derive_their_id_from_the_window() {
        let open = Command::WindowOpen {
            window: "w1".into(),
        }
        .to_row("ignored".into());
        assert_eq!((open.id.as_str(), open.data), ("w1-open", None));
        let close = Command::WindowClose {
            window: "w1".into(),
        }
        .to_row("ignored".into());
        assert_eq!((close.id.as_str(), close.data), ("w1-close", None));
    }

    #[test]
    fn constructors_dedup_and_validate() {
        assert_eq!(
            Command::execute_snapshot(vec![t("b"), t("a"), t("public.b")], vec![]).unwrap(),
            Command::ExecuteSnapshot {
                tables: vec![t("b"), t("a")],
                kind: SnapshotKind::Incremental,
                conditions: vec![],
                surrogate_key: None,
            }
        );
        assert_eq!(
            Command::stop_snapshot(vec![t("a"), t("a")]).unwrap(),
            Command::StopSnapshot {
                tables: vec![t("a")]
            }
        );
        assert_eq!(
            Command::execute_snapshot(vec![], vec![]),
            Err(SignalError::EmptyCollections)
        );
        assert_eq!(
            Command::execute_snapshot(vec![TableRef::new("", "x")], vec![]),
            Err(SignalError::BadTable {
                table: "\"\".x".into(),
                reason: TableRefError::EmptyPart
            })
        );
        assert_eq!(
            Command::stop_snapshot(vec![TableRef::new("s", "")]),
            Err(SignalError::BadTable {
                table: "s.\"\"".into(),
                reason: TableRefError::EmptyPart
            })
        );
        assert_eq!(
            Command::execute_snapshot(vec![t("a")], vec![cond("b", "x > 1")]),
            Err(SignalError::ConditionForUnlistedTable("public.b".into()))
        );
        assert_eq!(
            Command::execute_snapshot(vec![t("a")], vec![cond("a", " \t")]),
            Err(SignalError::EmptyFilter("public.a".into()))
        );
        assert_eq!(
            Command::execute_snapshot(vec![t("a")], vec![cond("a", "x"), cond("public.a", "y")]),
            Err(SignalError::DuplicateCondition("public.a".into()))
        );
    }
}
