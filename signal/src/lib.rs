//! The signal table vocabulary (Debezium's), source-agnostic and free of I/O.
//!
//! Operators control snapshots by inserting rows into a signal table with Debezium's columns
//! (`id text primary key, type text not null, data jsonb`). This crate turns such rows into
//! [`Command`]s (or typed [`SignalError`]s, never panics) and turns commands back into rows,
//! so the CLI writes exactly what an operator would INSERT.

mod command;
mod error;
mod parse;
mod table;

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub use command::{
    AdditionalCondition, Command, SnapshotKind, EXECUTE_SNAPSHOT, LOG, PAUSE_SNAPSHOT,
    RESUME_SNAPSHOT, SNAPSHOT_WINDOW_CLOSE, SNAPSHOT_WINDOW_OPEN, STOP_SNAPSHOT,
    WINDOW_CLOSE_SUFFIX, WINDOW_OPEN_SUFFIX,
};
pub use error::SignalError;
pub use parse::{parse, parse_in};
pub use table::{TableRef, TableRefError, DEFAULT_SCHEMA};

/// A raw row of the signal table, as read from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalRow {
    pub id: String,
    /// The `type` column.
    pub kind: String,
    /// The `data` column: JSON text, or `None` for SQL NULL.
    pub data: Option<String>,
}

/// The signal types operators send. The window types are left out: only the engine writes
/// them.
pub const SIGNAL_TYPES: &[&str] = &[
    EXECUTE_SNAPSHOT,
    STOP_SNAPSHOT,
    PAUSE_SNAPSHOT,
    RESUME_SNAPSHOT,
    LOG,
];

/// A fresh signal id for the CLI: `cdc-<unix millis>-<16 hex digits>`.
///
/// The hex part hashes the process id, a process-wide counter and the clock's nanoseconds
/// with std's randomly keyed hasher, so ids differ across processes and calls without a
/// `rand` dependency.
pub fn new_signal_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    // A clock before 1970 is a broken host, not a reason to fail; the hash keeps ids unique.
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u64(count);
    hasher.write_u128(since_epoch.as_nanos());
    format!("cdc-{}-{:016x}", since_epoch.as_millis(), hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn signal_ids_are_fresh_and_well_formed() {
        let ids: Vec<String> = (0..1000).map(|_| new_signal_id()).collect();
        assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len());
        for id in &ids {
            let mut parts = id.splitn(3, '-');
            assert_eq!(parts.next(), Some("cdc"));
            let millis = parts.next().unwrap();
            assert!(
                !millis.is_empty() && millis.chars().all(|c| c.is_ascii_digit()),
                "{id}"
            );
            let hex = parts.next().unwrap();
            assert_eq!(hex.len(), 16, "{id}");
            assert!(hex.chars().all(|c| c.is_ascii_hexdigit()), "{id}");
            // Must never look like a watermark id.
            assert!(!id.ends_with(WINDOW_OPEN_SUFFIX) && !id.ends_with(WINDOW_CLOSE_SUFFIX));
        }
    }

    #[test]
    fn signal_types_parse() {
        for name in SIGNAL_TYPES {
            let row = SignalRow {
                id: "x".into(),
                kind: (*name).into(),
                data: None,
            };
            assert_ne!(
                parse(&row)
                    .err()
                    .map(|e| matches!(e, SignalError::UnknownType(_))),
                Some(true),
                "{name}"
            );
        }
    }

    #[test]
    fn a_signal_names_tables_in_the_sources_namespace() {
        let row = SignalRow {
            id: "s1".into(),
            kind: "execute-snapshot".into(),
            data: Some(r#"{"data-collections": ["orders", "shop.items"]}"#.into()),
        };
        let tables = |command: Command| match command {
            Command::ExecuteSnapshot { tables, .. } => tables,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            tables(parse_in(&row, Some("shop")).unwrap()),
            [
                TableRef::new("shop", "orders"),
                TableRef::new("shop", "items")
            ]
        );
        assert_eq!(
            tables(parse(&row).unwrap())[0],
            TableRef::new(DEFAULT_SCHEMA, "orders")
        );
        let err = parse_in(&row, None).unwrap_err().to_string();
        assert!(
            err.contains("orders") && err.contains("database.collection"),
            "{err}"
        );
    }
}
