//! A row change as the engine's [`Event`], in the documents layout
//! ([`MongoBlock`]): the key `{id: <_id as JSON text>}`, `before` and
//! `after` as one column each holding the document Debezium's way
//! ([`DOCUMENT_COLUMN`]), and the update description.

use std::sync::Arc;

use cdc_engine::{Event, Row, SourceMeta, UpdateDescription, Value, DOCUMENT_COLUMN};

use crate::change::{Change, ChangeKind};
use crate::source_block::{source_info, table_of};

/// The event of `change`, or `None` when Debezium emits none for it (DDL,
/// invalidate: the stream reader handles those).
pub fn row_event(change: &Change, meta: &Arc<SourceMeta>) -> Option<Event> {
    let ChangeKind::Row(row) = &change.kind else {
        return None;
    };
    let document_columns: Arc<[String]> = Arc::from(vec![DOCUMENT_COLUMN.to_string()]);
    let document = |text: &Option<String>| {
        text.as_ref()
            .map(|t| Row::new(document_columns.clone(), vec![Value::Json(t.clone())]))
    };
    let update = row.update.as_ref().map(|u| {
        Box::new(UpdateDescription {
            updated_fields: u.updated_fields.clone(),
            // Debezium writes null for an empty list.
            removed_fields: (!u.removed_fields.is_empty()).then(|| u.removed_fields.clone()),
            truncated_arrays: (!u.truncated_arrays.is_empty()).then(|| u.truncated_arrays.clone()),
        })
    });
    Some(Event {
        op: row.op.op(),
        table: Some(Arc::new(table_of(row))),
        key: Some(Row::new(
            Arc::from(vec!["id".to_string()]),
            vec![Value::Text(row.key.clone())],
        )),
        before: document(&row.before),
        after: document(&row.after),
        source: source_info(change, row, meta.clone()),
        message: None,
        transaction: None,
        schema: None,
        update,
    })
}
