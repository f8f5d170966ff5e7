//! Total parsing of signal rows: every row becomes a command or a typed error.

use serde_json::{Map, Value};

use crate::command::{
    check_conditions, check_surrogate_key, dedup_tables, AdditionalCondition, Command,
    SnapshotKind, ADDITIONAL_CONDITIONS, DATA_COLLECTION, DATA_COLLECTIONS, EXECUTE_SNAPSHOT,
    FILTER, LEGACY_ADDITIONAL_CONDITION, LOG, MESSAGE, PAUSE_SNAPSHOT, RESUME_SNAPSHOT,
    SNAPSHOT_TYPE, SNAPSHOT_WINDOW_CLOSE, SNAPSHOT_WINDOW_OPEN, STOP_SNAPSHOT, SURROGATE_KEY,
    WINDOW_CLOSE_SUFFIX, WINDOW_OPEN_SUFFIX,
};
use crate::error::SignalError;
use crate::table::TableRef;
use crate::SignalRow;

type Object = Map<String, Value>;

/// Parses a signal row into a command, a bare table name being in the
/// PostgreSQL convention's schema ([`crate::DEFAULT_SCHEMA`]); see
/// [`parse_in`].
pub fn parse(row: &SignalRow) -> Result<Command, SignalError> {
    parse_in(row, Some(crate::DEFAULT_SCHEMA))
}

/// Parses a signal row into a command. A bare table name (no schema or
/// database part) is in `namespace`, the source's default; without one it
/// is an error naming the name.
///
/// Type names match Debezium's spelling, ignoring ASCII case and surrounding whitespace.
/// `data` must be absent, empty, JSON `null` or a JSON object for every type, as Debezium
/// requires. Unknown fields inside it are ignored (Debezium adds some), but known fields of
/// the wrong JSON type are errors.
pub fn parse_in(row: &SignalRow, namespace: Option<&str>) -> Result<Command, SignalError> {
    let kind = row.kind.trim();
    let is = |name: &str| kind.eq_ignore_ascii_case(name);
    // Check the type before the data so an unknown type is reported as such, not as bad data.
    let known = [
        EXECUTE_SNAPSHOT,
        STOP_SNAPSHOT,
        PAUSE_SNAPSHOT,
        RESUME_SNAPSHOT,
        LOG,
        SNAPSHOT_WINDOW_OPEN,
        SNAPSHOT_WINDOW_CLOSE,
    ];
    if !known.iter().any(|name| is(name)) {
        return Err(SignalError::UnknownType(row.kind.clone()));
    }
    let data = parse_data(row.data.as_deref())?;
    let data = data.as_ref();
    if is(EXECUTE_SNAPSHOT) {
        parse_execute(data, namespace)
    } else if is(STOP_SNAPSHOT) {
        parse_stop(data, namespace)
    } else if is(PAUSE_SNAPSHOT) {
        Ok(Command::PauseSnapshot)
    } else if is(RESUME_SNAPSHOT) {
        Ok(Command::ResumeSnapshot)
    } else if is(LOG) {
        parse_log(data)
    } else if is(SNAPSHOT_WINDOW_OPEN) {
        window_id(&row.id, WINDOW_OPEN_SUFFIX).map(|window| Command::WindowOpen { window })
    } else {
        window_id(&row.id, WINDOW_CLOSE_SUFFIX).map(|window| Command::WindowClose { window })
    }
}

fn malformed(reason: String) -> SignalError {
    SignalError::MalformedData { reason }
}

/// Absent, blank and JSON `null` data all mean "no data", as in Debezium.
fn parse_data(data: Option<&str>) -> Result<Option<Object>, SignalError> {
    let Some(text) = data.filter(|d| !d.trim().is_empty()) else {
        return Ok(None);
    };
    // serde_json caps nesting depth, so hostile input yields an error rather than a stack
    // overflow.
    let value: Value = serde_json::from_str(text)
        .map_err(|e| malformed(format!("data is not valid JSON: {e}")))?;
    match value {
        Value::Null => Ok(None),
        Value::Object(obj) => Ok(Some(obj)),
        other => Err(malformed(format!(
            "data must be a JSON object, got {}",
            json_type(&other)
        ))),
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A field's value, treating JSON `null` as absent.
fn field<'a>(obj: &'a Object, name: &str) -> Option<&'a Value> {
    obj.get(name).filter(|v| !v.is_null())
}

fn optional_str<'a>(
    obj: &'a Object,
    name: &str,
    path: &str,
) -> Result<Option<&'a str>, SignalError> {
    match field(obj, name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(malformed(format!(
            "'{path}' must be a string, got {}",
            json_type(other)
        ))),
    }
}

fn required_str<'a>(
    obj: &'a Object,
    name: &'static str,
    path: &str,
) -> Result<&'a str, SignalError> {
    optional_str(obj, name, path)?.ok_or(SignalError::MissingField(name))
}

/// Parses `data-collections` if present: an array of table names, de-duplicated.
fn data_collections(
    obj: &Object,
    namespace: Option<&str>,
) -> Result<Option<Vec<TableRef>>, SignalError> {
    let Some(value) = field(obj, DATA_COLLECTIONS) else {
        return Ok(None);
    };
    let Value::Array(items) = value else {
        return Err(malformed(format!(
            "'{DATA_COLLECTIONS}' must be an array of table names, got {}",
            json_type(value)
        )));
    };
    let mut tables = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Value::String(name) = item else {
            return Err(malformed(format!(
                "'{DATA_COLLECTIONS}'[{i}] must be a table name string, got {}",
                json_type(item)
            )));
        };
        tables.push(parse_table(name, namespace)?);
    }
    Ok(Some(dedup_tables(tables)))
}

fn parse_table(name: &str, namespace: Option<&str>) -> Result<TableRef, SignalError> {
    TableRef::parse_in(name, namespace).map_err(|reason| SignalError::BadTable {
        table: name.to_owned(),
        reason,
    })
}

/// Missing `type` means incremental, Debezium's default.
fn snapshot_kind(obj: &Object) -> Result<SnapshotKind, SignalError> {
    match optional_str(obj, SNAPSHOT_TYPE, SNAPSHOT_TYPE)? {
        None => Ok(SnapshotKind::Incremental),
        Some(s)
            if s.trim()
                .eq_ignore_ascii_case(SnapshotKind::Incremental.as_str()) =>
        {
            Ok(SnapshotKind::Incremental)
        }
        Some(s) => Err(SignalError::UnsupportedSnapshotType(s.to_owned())),
    }
}

/// Parses `additional-conditions`, keeping each table name as written for error messages.
fn additional_conditions(
    obj: &Object,
    namespace: Option<&str>,
) -> Result<Vec<(String, AdditionalCondition)>, SignalError> {
    let Some(value) = field(obj, ADDITIONAL_CONDITIONS) else {
        return Ok(Vec::new());
    };
    let Value::Array(items) = value else {
        return Err(malformed(format!(
            "'{ADDITIONAL_CONDITIONS}' must be an array of objects, got {}",
            json_type(value)
        )));
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Value::Object(c) = item else {
            return Err(malformed(format!(
                "'{ADDITIONAL_CONDITIONS}'[{i}] must be an object with \
                 '{DATA_COLLECTION}' and '{FILTER}', got {}",
                json_type(item)
            )));
        };
        let path = format!("{ADDITIONAL_CONDITIONS}[{i}].");
        let name = required_str(c, DATA_COLLECTION, &format!("{path}{DATA_COLLECTION}"))?;
        let filter = required_str(c, FILTER, &format!("{path}{FILTER}"))?;
        let condition = AdditionalCondition {
            table: parse_table(name, namespace)?,
            filter: filter.to_owned(),
        };
        out.push((name.to_owned(), condition));
    }
    Ok(out)
}

fn parse_execute(data: Option<&Object>, namespace: Option<&str>) -> Result<Command, SignalError> {
    let obj = data.ok_or(SignalError::MissingField(DATA_COLLECTIONS))?;
    if field(obj, LEGACY_ADDITIONAL_CONDITION).is_some() {
        return Err(SignalError::LegacyAdditionalCondition);
    }
    let tables =
        data_collections(obj, namespace)?.ok_or(SignalError::MissingField(DATA_COLLECTIONS))?;
    if tables.is_empty() {
        return Err(SignalError::EmptyCollections);
    }
    let kind = snapshot_kind(obj)?;
    let conditions = check_conditions(&tables, additional_conditions(obj, namespace)?)?;
    let surrogate_key = optional_str(obj, SURROGATE_KEY, SURROGATE_KEY)?
        .map(check_surrogate_key)
        .transpose()?;
    Ok(Command::ExecuteSnapshot {
        tables,
        kind,
        conditions,
        surrogate_key,
    })
}

fn parse_stop(data: Option<&Object>, namespace: Option<&str>) -> Result<Command, SignalError> {
    let Some(obj) = data else {
        return Ok(Command::StopSnapshot { tables: Vec::new() });
    };
    // Validated, not stored: stopping a blocking snapshot is as unsupported as starting one.
    snapshot_kind(obj)?;
    let tables = data_collections(obj, namespace)?.unwrap_or_default();
    Ok(Command::StopSnapshot { tables })
}

fn parse_log(data: Option<&Object>) -> Result<Command, SignalError> {
    let obj = data.ok_or(SignalError::MissingField(MESSAGE))?;
    let message = required_str(obj, MESSAGE, MESSAGE)?;
    Ok(Command::Log {
        message: message.to_owned(),
    })
}

/// The window id is the row id minus its suffix; the suffix is matched exactly because the
/// engine writes these ids itself.
fn window_id(id: &str, suffix: &str) -> Result<String, SignalError> {
    match id.strip_suffix(suffix) {
        Some(window) if !window.is_empty() => Ok(window.to_owned()),
        _ => Err(SignalError::BadWindowId(id.to_owned())),
    }
}
