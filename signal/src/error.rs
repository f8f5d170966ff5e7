//! Why a signal row is not a valid command.

use std::fmt;

use crate::table::TableRefError;

/// Why a signal row could not be turned into a [`crate::Command`].
///
/// Each message is one line and says precisely what is wrong; the caller prefixes the signal
/// id. Values copied from the row are shown with control characters escaped so a hostile or
/// mistyped row cannot break the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignalError {
    #[error(
        "unknown signal type '{}' (expected one of execute-snapshot, stop-snapshot, \
         pause-snapshot, resume-snapshot, log)",
        OneLine(.0)
    )]
    UnknownType(String),

    /// Invalid JSON, data that is not an object, or a known field of the wrong JSON type.
    #[error("malformed signal data: {}", OneLine(.reason))]
    MalformedData { reason: String },

    #[error("missing required field '{0}' in signal data")]
    MissingField(&'static str),

    #[error("'data-collections' must list at least one table")]
    EmptyCollections,

    #[error(
        "'surrogate-key' must name one column, got '{}'",
        OneLine(.0)
    )]
    BadSurrogateKey(String),

    #[error("invalid table name '{}': {reason}", OneLine(.table))]
    BadTable {
        table: String,
        reason: TableRefError,
    },

    #[error(
        "snapshot type '{}' is not supported (only 'incremental' snapshots are)",
        OneLine(.0)
    )]
    UnsupportedSnapshotType(String),

    #[error(
        "additional condition for table '{}', which is not listed in 'data-collections'",
        OneLine(.0)
    )]
    ConditionForUnlistedTable(String),

    #[error("additional condition for table '{}' has an empty filter", OneLine(.0))]
    EmptyFilter(String),

    #[error(
        "more than one additional condition for table '{}' (combine them into one filter)",
        OneLine(.0)
    )]
    DuplicateCondition(String),

    #[error(
        "window signal id '{}' must be a non-empty window id followed by '-open' \
         (snapshot-window-open) or '-close' (snapshot-window-close)",
        OneLine(.0)
    )]
    BadWindowId(String),

    /// Debezium's pre-2.x single `additional-condition` string. Ignoring it as an unknown
    /// field would snapshot every row instead of the filtered subset the operator asked for.
    #[error(
        "'additional-condition' is no longer supported; use \"additional-conditions\": \
         [{{\"data-collection\": \"schema.table\", \"filter\": \"...\"}}]"
    )]
    LegacyAdditionalCondition,
}

/// Displays a string with control and non-space whitespace characters escaped.
pub(crate) struct OneLine<'a>(pub(crate) &'a str);

impl fmt::Display for OneLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            // U+2028/U+2029 and friends are whitespace but not control; they still break lines.
            if c.is_control() || (c.is_whitespace() && c != ' ') {
                write!(f, "{}", c.escape_default())?;
            } else {
                fmt::Write::write_char(f, c)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_escapes_line_breaks() {
        assert_eq!(
            OneLine("a\nb\r\u{2028}c d").to_string(),
            "a\\nb\\r\\u{2028}c d"
        );
    }

    #[test]
    fn messages() {
        assert_eq!(
            SignalError::UnknownType("foo".into()).to_string(),
            "unknown signal type 'foo' (expected one of execute-snapshot, stop-snapshot, \
             pause-snapshot, resume-snapshot, log)"
        );
        assert_eq!(
            SignalError::MissingField("data-collections").to_string(),
            "missing required field 'data-collections' in signal data"
        );
        assert_eq!(
            SignalError::BadTable {
                table: "a.b.c".into(),
                reason: TableRefError::TooManyParts
            }
            .to_string(),
            "invalid table name 'a.b.c': too many dot-separated parts (expected `table` or \
             `schema.table`; double-quote names that contain dots)"
        );
        assert_eq!(
            SignalError::UnsupportedSnapshotType("blocking".into()).to_string(),
            "snapshot type 'blocking' is not supported (only 'incremental' snapshots are)"
        );
        assert!(SignalError::LegacyAdditionalCondition
            .to_string()
            .contains(r#""additional-conditions": [{"data-collection""#));
    }

    #[test]
    fn unknown_type_lists_the_operator_types() {
        let msg = SignalError::UnknownType("x".into()).to_string();
        let want = format!("(expected one of {})", crate::SIGNAL_TYPES.join(", "));
        assert!(msg.ends_with(&want), "{msg}");
    }

    #[test]
    fn hostile_values_stay_on_one_line() {
        let evil = "x\ny\r\n\u{85}\u{2029}z".to_string();
        for e in [
            SignalError::UnknownType(evil.clone()),
            SignalError::MalformedData {
                reason: evil.clone(),
            },
            SignalError::BadTable {
                table: evil.clone(),
                reason: TableRefError::UnexpectedAfterQuote('\n'),
            },
            SignalError::UnsupportedSnapshotType(evil.clone()),
            SignalError::ConditionForUnlistedTable(evil.clone()),
            SignalError::EmptyFilter(evil.clone()),
            SignalError::DuplicateCondition(evil.clone()),
            SignalError::BadWindowId(evil.clone()),
        ] {
            let msg = e.to_string();
            assert!(
                !msg.chars().any(|c| c.is_control() || c == '\u{2029}'),
                "{msg:?}"
            );
        }
    }
}
