//! Change-stream events as the engine's log items, free of I/O.
//!
//! * A row change of a captured collection is an [`LogItem::Event`];
//!   outside a transaction a [`LogItem::Commit`] at its resume token
//!   follows it at once (every token can be resumed after).
//! * A multi-document transaction's changes all carry the commit's cluster
//!   time and arrive together: its commit is emitted when a change or an
//!   idle token of a later cluster time shows it is complete, so the
//!   transaction stage sees its events between one begin and one end.
//! * An insert into the signal collection is a [`LogItem::Signal`] (or, for
//!   the engine's own resync markers, a message event); the engine's
//!   deletes of its watermark documents are only positions.
//! * DDL events and `invalidate` produce no event, as in Debezium: they come
//!   back as a [`Notice`] for the stream to log and act on.

use std::sync::Arc;

use bson::{Bson, Document};
use bytes::Bytes;
use cdc_engine::snapshot::RESYNC_PREFIX;
use cdc_engine::{Event, LogItem, LogicalMessage, Position, SignalRow, SourceInfo, SourceMeta};

use crate::change::{parse_change, Change, ChangeError, ChangeKind, DdlKind, RowOp};
use crate::config::MongoConfig;
use crate::event::row_event;
use crate::extjson;
use crate::resume::{cluster_time_of_position, ClusterTime};

/// The `type` of the signal documents that carry the engine's resync
/// markers (written by the chunk source, ordered in the stream).
pub const RESYNC_MARKER_TYPE: &str = "cdc-resync-marker";

/// What the stream must log or do; none of these is an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A DDL event of a captured collection or database, in one line.
    Ddl(String),
    /// The stream was closed by the server: open it again after this token.
    Invalidated(Position),
    /// A signal document that is not one: said once, skipped.
    BadSignal(String),
}

struct OpenTransaction {
    cluster_time: ClusterTime,
    position: Position,
    tx_id: Option<u64>,
}

pub struct Translator {
    config: Arc<MongoConfig>,
    meta: Arc<SourceMeta>,
    open: Option<OpenTransaction>,
    /// The last position handed out as a checkpoint (never repeated).
    checkpoint: Option<Position>,
}

impl Translator {
    pub fn new(config: Arc<MongoConfig>, meta: Arc<SourceMeta>) -> Self {
        Translator {
            config,
            meta,
            open: None,
            checkpoint: None,
        }
    }

    /// One change-stream event, as the server sent it.
    pub fn event(
        &mut self,
        raw: &Document,
        out: &mut Vec<LogItem>,
    ) -> Result<Option<Notice>, ChangeError> {
        let change = parse_change(raw)?;
        Ok(self.change(raw, &change, out))
    }

    fn change(
        &mut self,
        raw: &Document,
        change: &Change,
        out: &mut Vec<LogItem>,
    ) -> Option<Notice> {
        if self
            .open
            .as_ref()
            .is_some_and(|open| change.cluster_time > open.cluster_time)
        {
            self.close(out);
        }
        match &change.kind {
            ChangeKind::Row(row) => {
                let signal = &self.config.signal_collection;
                if row.db == signal.schema && row.collection == signal.name {
                    let notice = self.signal(raw, change, out);
                    self.settle(change, out);
                    return notice;
                }
                if !self.config.captures(&row.db, &row.collection) {
                    self.settle(change, out);
                    return None;
                }
                let event = row_event(change, &self.meta)?;
                let tx_id = event.source.tx_id;
                let in_transaction = row.transaction.is_some();
                out.push(LogItem::Event(event));
                if in_transaction {
                    self.open = Some(OpenTransaction {
                        cluster_time: change.cluster_time,
                        position: change.position.clone(),
                        tx_id,
                    });
                } else {
                    self.settle(change, out);
                }
                None
            }
            ChangeKind::Ddl(ddl) => {
                self.settle(change, out);
                let what = match (&ddl.collection, &ddl.kind) {
                    (_, DdlKind::DropDatabase) => format!("database {} dropped", ddl.db),
                    (Some(coll), kind) => {
                        if !self.config.captures(&ddl.db, coll) {
                            return None;
                        }
                        let name = format!("{}.{coll}", ddl.db);
                        match (kind, &ddl.to) {
                            (DdlKind::Rename, Some((to_db, to_coll))) => {
                                format!("collection {name} renamed to {to_db}.{to_coll}")
                            }
                            (kind, _) => format!("collection {name}: {}", kind.operation_type()),
                        }
                    }
                    (None, kind) => format!("database {}: {}", ddl.db, kind.operation_type()),
                };
                Some(Notice::Ddl(what))
            }
            ChangeKind::Invalidate => {
                self.close(out);
                Some(Notice::Invalidated(change.position.clone()))
            }
        }
    }

    /// The stream is idle at `position` (a post-batch resume token's): a
    /// transaction before it is complete, and with none open the position
    /// may be acknowledged.
    pub fn idle(&mut self, position: Position, out: &mut Vec<LogItem>) {
        // Positions are made from tokens (`position_of`): they all parse.
        let Ok(cluster_time) = cluster_time_of_position(&position) else {
            return;
        };
        if self
            .open
            .as_ref()
            .is_some_and(|open| cluster_time > open.cluster_time)
        {
            self.close(out);
        }
        if self.open.is_none() && self.checkpoint.as_ref().is_none_or(|c| *c < position) {
            self.checkpoint = Some(position.clone());
            out.push(LogItem::Heartbeat(position));
        }
    }

    fn close(&mut self, out: &mut Vec<LogItem>) {
        if let Some(open) = self.open.take() {
            self.checkpoint = Some(open.position.clone());
            out.push(LogItem::Commit {
                tx_id: open.tx_id,
                position: open.position,
            });
        }
    }

    /// A change outside a transaction is complete: its token may be
    /// acknowledged once it is durable.
    fn settle(&mut self, change: &Change, out: &mut Vec<LogItem>) {
        if self.open.is_some() {
            // Inside a transaction's run (a signal written in one): its
            // commit settles it.
            return;
        }
        if self
            .checkpoint
            .as_ref()
            .is_some_and(|c| *c >= change.position)
        {
            return;
        }
        self.checkpoint = Some(change.position.clone());
        out.push(LogItem::Commit {
            tx_id: None,
            position: change.position.clone(),
        });
    }

    fn signal(
        &mut self,
        raw: &Document,
        change: &Change,
        out: &mut Vec<LogItem>,
    ) -> Option<Notice> {
        let ChangeKind::Row(row) = &change.kind else {
            return None;
        };
        if row.op != RowOp::Insert {
            // The engine deletes its watermark documents after the window.
            return None;
        }
        let source = SourceInfo {
            offset: Some(change.cluster_time.as_u64()),
            ts_ms: change.ts_ms(),
            ts_us: change.ts_ms().saturating_mul(1000),
            ..SourceInfo::new(self.meta.clone(), change.position.clone())
        };
        let document = match raw.get("fullDocument") {
            Some(Bson::Document(document)) => document,
            _ => {
                return Some(Notice::BadSignal(format!(
                    "signal {} in {}.{} has no document (was it deleted at once?); skipped",
                    row.key, row.db, row.collection
                )))
            }
        };
        match signal_row(document) {
            Ok(signal) if signal.kind == RESYNC_MARKER_TYPE => {
                let content = signal.data.unwrap_or_default();
                out.push(LogItem::Event(Event::message(
                    source,
                    LogicalMessage {
                        prefix: RESYNC_PREFIX.into(),
                        content: Bytes::from(content.into_bytes()),
                        transactional: true,
                    },
                )));
                None
            }
            Ok(row) => {
                out.push(LogItem::Signal { row, source });
                None
            }
            Err(why) => Some(Notice::BadSignal(why)),
        }
    }
}

/// A signal document `{_id, type, data}` as the engine's signal row: `_id`
/// a string (or any value, as its JSON text), `type` a string, `data` a
/// document (as JSON text), a string holding JSON, or absent/null.
pub fn signal_row(document: &Document) -> Result<SignalRow, String> {
    let id = match document.get("_id") {
        Some(Bson::String(id)) => id.clone(),
        Some(other) => {
            let mut text = String::new();
            extjson::write_value(other, extjson::Settings::Simple, &mut text);
            text
        }
        None => return Err("a signal document has no _id; skipped".into()),
    };
    let kind = match document.get("type") {
        Some(Bson::String(kind)) => kind.clone(),
        _ => {
            return Err(format!(
                "signal {id}: 'type' must be a string (execute-snapshot, stop-snapshot, \
                 pause-snapshot, resume-snapshot, log); skipped"
            ))
        }
    };
    let data = match document.get("data") {
        None | Some(Bson::Null) => None,
        Some(Bson::String(text)) => Some(text.clone()),
        Some(Bson::Document(data)) => {
            let value = Bson::Document(data.clone()).into_relaxed_extjson();
            Some(value.to_string())
        }
        Some(_) => {
            return Err(format!(
                "signal {id}: 'data' must be a document or a JSON string; skipped"
            ))
        }
    };
    Ok(SignalRow { id, kind, data })
}

#[cfg(test)]
#[path = "translate_tests.rs"]
mod tests;
