//! What a window's events say of one chunk key, kept so that an unchanged TOAST column
//! (`Value::Unchanged`) does not cost the consumer the chunk row's value of it.
//!
//! Design: the events move on to the output at once (never held back), so a full value
//! a later placeholder needs survives only as the merger's own copy. One [`Newest`] per
//! key the window touched, replaced by each event: a key costs one clone of each of its
//! events' `after` and no more; fills move values out of the state they replace and out
//! of the chunk row, so a placeholder filled is never a second copy. Keys the window
//! never touched cost nothing.

use std::sync::Arc;

use super::ChunkRow;
use crate::event::{Event, Op};
use crate::value::{Row, Value};

/// The newest state of one key in the window, as far as a read of it needs.
#[derive(Debug)]
pub(super) enum Newest {
    /// Deleted by the newest event (or the event carried no row): no read.
    Gone,
    Row(Merged),
}

#[derive(Debug)]
pub(super) struct Merged {
    /// The newest event's `after`, placeholders filled from the key's earlier events in
    /// the window where one carried the column's value.
    after: Row,
    /// The newest event left some column unchanged: only then is a read owed.
    placeholders: bool,
    /// One of those placeholders was filled from an earlier event.
    filled: bool,
    /// No delete came before in the window: the chunk row is of the same row, so
    /// its value of a column no event changed is the current one. After a delete it
    /// may be the deleted row's (an insert carries every column anyway).
    chunk_fallback: bool,
}

impl Newest {
    /// The key's first event in the window.
    pub(super) fn first(event: &Event) -> Self {
        Self::from_event(event, None, true)
    }

    /// A later event of the key: the state it replaces fills its placeholders.
    pub(super) fn advance(&mut self, event: &Event) {
        let newer = match std::mem::replace(self, Newest::Gone) {
            Newest::Gone => Self::from_event(event, None, false),
            Newest::Row(older) => {
                let fallback = older.chunk_fallback;
                Self::from_event(event, Some(older.after), fallback)
            }
        };
        *self = newer;
    }

    fn from_event(event: &Event, older: Option<Row>, chunk_fallback: bool) -> Self {
        let after = match (&event.after, event.op) {
            (_, Op::Delete) | (None, _) => return Newest::Gone,
            (Some(after), _) => after,
        };
        let mut after = after.clone();
        let placeholders = after.values.iter().any(is_placeholder);
        let filled = match older {
            Some(mut older) if placeholders => fill(&mut after, &mut older),
            _ => false,
        };
        Newest::Row(Merged {
            after,
            placeholders,
            filled,
            chunk_fallback,
        })
    }

    /// At the HW, in place of the key's chunk row: the read of the key's newest state
    /// with the placeholders left filled from the chunk row, if a read is owed and
    /// something got filled.
    pub(super) fn into_read(self, mut chunk_row: ChunkRow) -> Option<ChunkRow> {
        let Newest::Row(mut merged) = self else {
            return None;
        };
        if !merged.placeholders {
            return None;
        }
        if merged.chunk_fallback && merged.after.values.iter().any(is_placeholder) {
            merged.filled |= fill(&mut merged.after, &mut chunk_row.after);
        }
        merged.filled.then_some(ChunkRow {
            key: chunk_row.key,
            after: merged.after,
        })
    }
}

fn is_placeholder(value: &Value) -> bool {
    matches!(value, Value::Unchanged)
}

/// Fills `row`'s placeholders with `from`'s values of the same columns, moving them out
/// of `from` (which is dropped after). Columns are matched by name, as rows of two table
/// versions may differ; by position when both share one column list. True if any got
/// filled.
fn fill(row: &mut Row, from: &mut Row) -> bool {
    let same = Arc::ptr_eq(&row.columns, &from.columns);
    let mut filled = false;
    for (i, value) in row.values.iter_mut().enumerate() {
        if !is_placeholder(value) {
            continue;
        }
        let at = if same {
            Some(i)
        } else {
            row.columns
                .get(i)
                .and_then(|name| from.columns.iter().position(|c| c == name))
        };
        if let Some(source) = at.and_then(|j| from.values.get_mut(j)) {
            if !is_placeholder(source) {
                *value = std::mem::replace(source, Value::Unchanged);
                filled = true;
            }
        }
    }
    filled
}
