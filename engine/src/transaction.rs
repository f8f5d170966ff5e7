//! Debezium's transaction metadata (`provide.transaction.metadata`): a
//! BEGIN record before the first event of each transaction that has
//! captured changes, an END record after its commit with the number of
//! events per table, and each data event's `transaction` block
//! (docs/architecture.md, "Transaction metadata").
//!
//! A stage on the processor's output: what the window merger emits passes
//! through in order, and only streamed row changes belong to a transaction.
//! Snapshot rows and logical messages carry no block, as with Debezium.
//! Pure logic, no I/O.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::event::{Event, Op, Position, SnapshotFlag, SourceInfo, TransactionInfo};
use crate::pipeline::Stage;
use crate::source::LogItem;
use crate::value::{Row, Value};

/// The transaction whose events are passing.
struct Open {
    /// The source's number of the transaction, shared by its events, and
    /// the session it counts in.
    tx_id: u64,
    session: Option<Arc<str>>,
    total: u64,
    /// `schema.table` → events so far.
    per_table: BTreeMap<String, u64>,
    /// The first event's source, for the END record (never rendered).
    source: SourceInfo,
}

pub struct TransactionMetadata {
    open: Option<Open>,
    /// The position of the commit being processed, seen before the inner
    /// processor took it.
    committing: Option<Position>,
    key_columns: Arc<[String]>,
}

impl Default for TransactionMetadata {
    fn default() -> Self {
        TransactionMetadata {
            open: None,
            committing: None,
            key_columns: Arc::from(vec!["id".to_string()]),
        }
    }
}

impl TransactionMetadata {
    /// A BEGIN or END record, keyed by its id as Debezium keys them.
    fn record(&self, source: &SourceInfo, id: String, info: TransactionInfo) -> Event {
        Event {
            update: None,
            schema: None,
            op: Op::Transaction,
            table: None,
            key: Some(Row::new(self.key_columns.clone(), vec![Value::Text(id)])),
            before: None,
            after: None,
            source: source.clone(),
            message: None,
            transaction: Some(Box::new(info)),
        }
    }

    fn end(&mut self, commit: Option<&Position>, out: &mut Vec<Event>) {
        let Some(open) = self.open.take() else {
            return;
        };
        let id = open
            .source
            .meta
            .block
            .closing_transaction_id(&open.source, commit);
        let info = TransactionInfo::Boundary {
            end: true,
            id: id.clone(),
            event_count: Some(open.total),
            data_collections: open.per_table.into_iter().collect(),
            ts_ms: open.source.ts_ms,
        };
        out.push(self.record(&open.source, id, info));
    }

    /// Annotate the events from `start` on, with a BEGIN before each
    /// transaction's first.
    fn annotate(&mut self, start: usize, out: &mut Vec<Event>) {
        let tail = out.split_off(start);
        for mut event in tail {
            let (Some(tx_id), Some(table), Some(id)) = (
                event.source.tx_id,
                event.table.as_ref(),
                event.source.meta.block.transaction_id(&event.source),
            ) else {
                out.push(event);
                continue;
            };
            let streamed_change = event.source.snapshot == SnapshotFlag::No
                && matches!(
                    event.op,
                    Op::Create | Op::Update | Op::Delete | Op::Truncate
                );
            if !streamed_change {
                out.push(event);
                continue;
            }
            if self
                .open
                .as_ref()
                .is_some_and(|o| o.tx_id != tx_id || o.session != event.source.session)
            {
                // Its commit never came through (it cannot, in log
                // order); closed so that BEGIN and END always pair.
                self.end(None, out);
            }
            if self.open.is_none() {
                let begin = TransactionInfo::Boundary {
                    end: false,
                    id: id.clone(),
                    event_count: None,
                    data_collections: Vec::new(),
                    ts_ms: event.source.ts_ms,
                };
                out.push(self.record(&event.source, id.clone(), begin));
                self.open = Some(Open {
                    tx_id,
                    session: event.source.session.clone(),
                    total: 0,
                    per_table: BTreeMap::new(),
                    source: event.source.clone(),
                });
            }
            if let Some(open) = self.open.as_mut() {
                open.total += 1;
                let in_table = open
                    .per_table
                    .entry(format!("{}.{}", table.schema, table.name))
                    .or_default();
                *in_table += 1;
                event.transaction = Some(Box::new(TransactionInfo::Order {
                    id,
                    total_order: open.total,
                    data_collection_order: *in_table,
                }));
            }
            out.push(event);
        }
    }
}

impl Stage for TransactionMetadata {
    fn before(&mut self, item: &LogItem) {
        if let LogItem::Commit { position, .. } = item {
            self.committing = Some(position.clone());
        }
    }

    fn after(&mut self, start: usize, out: &mut Vec<Event>) {
        if out.len() > start {
            self.annotate(start, out);
        }
        if let Some(commit) = self.committing.take() {
            self.end(Some(&commit), out);
        }
    }
}

#[cfg(test)]
#[path = "transaction_tests.rs"]
mod tests;
