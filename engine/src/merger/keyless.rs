//! Windows over a table without a key (docs/architecture.md, "Tables
//! without a key").
//!
//! With no key, a log event cannot name the chunk row it changed, so it
//! cannot drop just that row. What it can say is what the row looked like:
//! its `before` image (the whole old row under `REPLICA IDENTITY FULL`) and
//! its `after` image. A chunk that holds no row equal to any image of the
//! window's events was not touched by them: every event changed a row the
//! select did not see in the chunk's range, so the chunk and the events are
//! independent and both go out. A chunk holding a row equal to an image may
//! hold the old version of a changed row (or an identical copy of it; the
//! two cannot be told apart), so it is discarded and selected again.
//!
//! Only rows of the chunk's range spoil it, so a writer elsewhere in the
//! table (new rows go to its end) does not keep a snapshot from progressing.

use super::ChunkRow;
use crate::event::Event;
use crate::value::{Row, Value};

/// The images of a keyless table's events seen in the window before its
/// chunk arrived.
#[derive(Debug, Default)]
pub(super) struct Images(Vec<Row>);

impl Images {
    pub(super) fn push(&mut self, event: &Event) {
        self.0.extend(event.before.iter().cloned());
        self.0.extend(event.after.iter().cloned());
    }

    pub(super) fn clear(&mut self) {
        self.0 = Vec::new();
    }

    /// The first image equal to a row of `rows`.
    pub(super) fn first_in<'a>(&'a self, rows: &[ChunkRow]) -> Option<&'a Row> {
        self.0.iter().find(|image| holds(rows, image))
    }
}

/// The image of `event` equal to a row of `rows`, if any.
pub(super) fn touching<'a>(event: &'a Event, rows: &[ChunkRow]) -> Option<&'a Row> {
    event
        .before
        .iter()
        .chain(event.after.iter())
        .find(|image| holds(rows, image))
}

fn holds(rows: &[ChunkRow], image: &Row) -> bool {
    rows.iter().any(|row| same_row(&row.after, image))
}

/// Whether `image` could be `row`: equal in every column the image carries.
/// Columns are matched by name (a chunk and an event may list them in a
/// different order); a column the image marks unchanged (TOAST it did not
/// send) or the chunk lacks matches anything, which errs on the side of
/// discarding.
fn same_row(row: &Row, image: &Row) -> bool {
    image
        .columns
        .iter()
        .zip(&image.values)
        .all(|(column, value)| match (value, row.get(column)) {
            (Value::Unchanged, _) | (_, None) => true,
            (value, Some(selected)) => value == selected,
        })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn row(columns: &[&str], values: Vec<Value>) -> Row {
        Row::new(
            Arc::from(columns.iter().map(|c| c.to_string()).collect::<Vec<_>>()),
            values,
        )
    }

    fn chunk_row(v: i64, w: &str) -> ChunkRow {
        ChunkRow {
            key: row(&[], vec![]),
            after: row(&["v", "w"], vec![Value::Int(v), Value::Text(w.into())]),
        }
    }

    #[test]
    fn an_image_matches_by_column_name_and_unchanged_matches_anything() {
        let rows = vec![chunk_row(1, "a"), chunk_row(2, "b")];
        let reordered = row(&["w", "v"], vec![Value::Text("b".into()), Value::Int(2)]);
        assert!(holds(&rows, &reordered));
        let other = row(&["v", "w"], vec![Value::Int(2), Value::Text("a".into())]);
        assert!(!holds(&rows, &other));
        let toast = row(&["v", "w"], vec![Value::Int(1), Value::Unchanged]);
        assert!(holds(&rows, &toast));
        let null = row(&["v", "w"], vec![Value::Int(1), Value::Null]);
        assert!(!holds(&rows, &null));
    }
}
