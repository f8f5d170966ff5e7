//! Typed column values and rows, as every source hands them to the engine.
//!
//! A value keeps the type information the JSON envelope needs (numbers stay
//! numbers, numeric stays an exact string, json stays JSON, bytes become
//! base64) and one marker no other value can take: an unchanged TOAST column
//! the source could not read, which must never turn into a null.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

/// The placeholder written for a value the source did not send (PostgreSQL's
/// unchanged TOAST columns). Debezium's default, so consumers that already
/// handle it keep working.
pub const UNAVAILABLE_VALUE_PLACEHOLDER: &str = "__debezium_unavailable_value";

/// What a [`Value::Typed`] text is, for the format modes that render it
/// otherwise (Debezium's `decimal.handling.mode`, `time.precision.mode`…).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TextType {
    /// `numeric`: an exact decimal, or `NaN`, `Infinity`, `-Infinity`; the
    /// declared scale (`None`: declared without one, a variable scale).
    Numeric(Option<u16>),
    /// `money`, already an exact decimal.
    Money,
    /// `date`: `2024-02-29`, `0044-03-15 BC`, `infinity`, `-infinity`.
    Date,
    /// `time(p)`: `01:02:03.5`, up to `24:00:00`. The precision (fraction
    /// digits declared, 6 when none) picks Debezium's millis or micros.
    Time(u8),
    /// `timetz(p)`: `03:04:05+05:30`.
    TimeTz(u8),
    /// `timestamp(p)`: `2024-02-29T13:14:15.123456`, `0044-03-15 12:30:00 BC`, infinities.
    Timestamp(u8),
    /// `timestamptz(p)`, in UTC: `2024-02-29T11:14:15Z`, `0044-03-15 12:30:00+00 BC`, infinities.
    TimestampTz(u8),
    /// `interval`, ISO 8601 as PostgreSQL's `iso_8601` style prints it.
    Interval,
    /// `bit`, `varbit`: the bits as `0`s and `1`s.
    Bits,
}

/// The precision of a time or timestamp declared without one.
pub const DEFAULT_TIME_PRECISION: u8 = 6;

impl TextType {
    /// This kind with the precision of a column declared with type
    /// modifier `type_mod` (-1: none).
    pub fn with_type_mod(self, type_mod: i32) -> TextType {
        let p = u8::try_from(type_mod)
            .map_or(DEFAULT_TIME_PRECISION, |p| p.min(DEFAULT_TIME_PRECISION));
        match self {
            TextType::Time(_) => TextType::Time(p),
            TextType::TimeTz(_) => TextType::TimeTz(p),
            TextType::Timestamp(_) => TextType::Timestamp(p),
            TextType::TimestampTz(_) => TextType::TimestampTz(p),
            // numeric's modifier is (precision << 16 | scale) + 4.
            TextType::Numeric(_) => TextType::Numeric(
                u32::try_from(type_mod - 4)
                    .ok()
                    .map(|m| (m & 0xffff) as u16),
            ),
            other => other,
        }
    }
}

impl Value {
    /// The value with its times' precision taken from the column's type
    /// modifier (elements of an array too): the log and a chunk both set it,
    /// so their values stay equal.
    pub fn with_type_mod(self, type_mod: i32) -> Value {
        match self {
            Value::Typed(kind, text) => Value::Typed(kind.with_type_mod(type_mod), text),
            Value::Array(items) if type_mod >= 0 => Value::Array(
                items
                    .into_iter()
                    .map(|v| v.with_type_mod(type_mod))
                    .collect(),
            ),
            other => other,
        }
    }
}

/// One column value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    /// Finite floats only; NaN and infinities travel as `Text`, since JSON has
    /// no number for them.
    Float(f64),
    /// Text and every type whose JSON form is a string: numeric (exact),
    /// uuid, dates and times (ISO-8601), intervals, enums, unknown types.
    Text(String),
    /// A JSON document, kept as its text (already validated).
    Json(String),
    /// Raw bytes, written as base64.
    Bytes(Vec<u8>),
    Array(Vec<Value>),
    /// A value whose JSON form depends on the format's modes (see
    /// [`crate::format`]): it holds cdc's own text of it (README, "Value
    /// encodings"), which the default format writes as a string.
    Typed(TextType, String),
    /// An unchanged TOAST value: the source did not send it. Written as
    /// [`UNAVAILABLE_VALUE_PLACEHOLDER`], never as null.
    Unchanged,
}

impl Value {
    /// The value as a plain string, for key comparison and chunk bounds.
    /// `None` for null, unchanged, and composite values.
    pub fn as_key_text(&self) -> Option<String> {
        match self {
            Value::Bool(b) => Some(b.to_string()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::Text(s) | Value::Json(s) | Value::Typed(_, s) => Some(s.clone()),
            Value::Bytes(b) => Some(base64::engine::general_purpose::STANDARD.encode(b)),
            Value::Null | Value::Unchanged | Value::Array(_) => None,
        }
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => serializer.serialize_unit(),
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::Int(i) => serializer.serialize_i64(*i),
            Value::Float(f) => serializer.serialize_f64(*f),
            Value::Text(s) | Value::Typed(_, s) => serializer.serialize_str(s),
            Value::Json(raw) => match serde_json::value::RawValue::from_string(raw.clone()) {
                Ok(raw) => raw.serialize(serializer),
                // Sources validate JSON before building a `Json` value; if one
                // slipped through, keep the data as a string rather than fail.
                Err(_) => serializer.serialize_str(raw),
            },
            Value::Bytes(b) => {
                serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(b))
            }
            Value::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Value::Unchanged => serializer.serialize_str(UNAVAILABLE_VALUE_PLACEHOLDER),
        }
    }
}

/// A row: column names (shared by every row of a table version) and values.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub columns: Arc<[String]>,
    pub values: Vec<Value>,
}

impl Row {
    pub fn new(columns: Arc<[String]>, values: Vec<Value>) -> Self {
        Row { columns, values }
    }

    pub fn get(&self, column: &str) -> Option<&Value> {
        self.columns
            .iter()
            .position(|c| c == column)
            .and_then(|i| self.values.get(i))
    }
}

impl Serialize for Row {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.values.len()))?;
        for (name, value) in self.columns.iter().zip(&self.values) {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match serde_json::to_string(self) {
            Ok(s) => f.write_str(&s),
            Err(_) => Err(fmt::Error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_serialize_to_typed_json() {
        let row = Row::new(
            Arc::from(vec![
                "i".to_string(),
                "n".to_string(),
                "j".to_string(),
                "b".to_string(),
                "t".to_string(),
                "a".to_string(),
                "z".to_string(),
            ]),
            vec![
                Value::Int(7),
                Value::Text("1.50".into()),
                Value::Json(r#"{"k": [1, 2]}"#.into()),
                Value::Bytes(vec![0, 1, 255]),
                Value::Unchanged,
                Value::Array(vec![Value::Int(1), Value::Null]),
                Value::Null,
            ],
        );
        let json = serde_json::to_string(&row).unwrap_or_default();
        assert_eq!(
            json,
            r#"{"i":7,"n":"1.50","j":{"k": [1, 2]},"b":"AAH/","t":"__debezium_unavailable_value","a":[1,null],"z":null}"#
        );
    }
}
