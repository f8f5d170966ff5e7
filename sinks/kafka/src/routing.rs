//! From change events to Kafka records: which topic, key, value and headers.
//!
//! - Row changes (`c`, `u`, `d`, `r`) go to the table's topic (template
//!   `{prefix}.{schema}.{table}`), keyed by the primary key as JSON, valued
//!   by the Debezium envelope; a delete is followed by a tombstone (same
//!   key, null value) when `tombstones` is on.
//! - Truncates carry no key: they go to the table's topic with a null key.
//! - Logical messages belong to no table: they go to `message_topic`
//!   (`{prefix}.message`), keyed by `{"prefix": …}` so one prefix's
//!   messages stay ordered, or are skipped when `message_topic` is empty.
//! - Inserts into the outbox table become outbox events (see [`Outbox`]);
//!   its other changes are dropped.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;

use cdc_engine::envelope::{self, EnvelopeWriter};
use cdc_engine::{Event, Op, Row, TableRef, Value, DOCUMENT_COLUMN};

use crate::config::{ConfigError, KafkaSinkConfig, OutboxConfig, Templates};
use crate::record::{Batch, HEADER_ID, HEADER_OP, HEADER_POSITION, HEADER_TYPE};
use crate::template::{Template, Vars};

/// An event that can never be routed; retrying cannot help.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RouteError(pub String);

/// Turns events into records; caches rendered topic names.
#[derive(Debug)]
pub(crate) struct Router {
    templates: Templates,
    tombstones: bool,
    outbox: Option<Outbox>,
    /// The source name the caches were built for.
    prefix: String,
    table_topics: HashMap<TableRef, Arc<str>>,
    message_topic: Option<Arc<str>>,
    transaction_topic: Option<Arc<str>>,
    heartbeat_topic: Option<Arc<str>>,
    outbox_topics: HashMap<String, Arc<str>>,
    envelopes: EnvelopeWriter,
}

/// The outbox event router: an insert into the outbox table becomes one
/// record on the topic its aggregate type names, keyed by its aggregate id,
/// valued by its payload (json/jsonb as JSON text, text as is, bytea as raw
/// bytes, null as a tombstone), with the event id and type as headers.
/// Updates, deletes, truncates and snapshot reads of the outbox table are
/// dropped: an outbox row is an event once, when it is inserted.
#[derive(Debug)]
struct Outbox {
    table: TableRef,
    config: OutboxConfig,
}

/// The topic `cache` holds for `key`, rendered and kept on first use.
fn cached_topic<K, Q>(
    cache: &mut HashMap<K, Arc<str>>,
    key: &Q,
    render: impl FnOnce() -> String,
) -> Arc<str>
where
    K: Borrow<Q> + Hash + Eq,
    Q: ToOwned<Owned = K> + Hash + Eq + ?Sized,
{
    if let Some(topic) = cache.get(key) {
        return topic.clone();
    }
    let topic: Arc<str> = Arc::from(render());
    cache.insert(key.to_owned(), topic.clone());
    topic
}

/// A topic of the whole capture (`{prefix}`, `{db}`), not of a table.
fn capture_topic(template: &Template, event: &Event) -> Arc<str> {
    let meta = &event.source.meta;
    Arc::from(template.render(&Vars {
        prefix: &meta.name,
        db: &meta.db,
        ..Vars::default()
    }))
}

impl Router {
    pub fn new(config: &KafkaSinkConfig) -> Result<Router, ConfigError> {
        let templates = config.templates()?;
        let outbox = match &config.outbox {
            None => None,
            Some(outbox) => Some(Outbox {
                table: TableRef::parse(&outbox.table)
                    .map_err(|_| ConfigError::OutboxTable(outbox.table.clone()))?,
                config: outbox.clone(),
            }),
        };
        Ok(Router {
            templates,
            tombstones: config.tombstones,
            outbox,
            prefix: String::new(),
            table_topics: HashMap::new(),
            message_topic: None,
            transaction_topic: None,
            heartbeat_topic: None,
            outbox_topics: HashMap::new(),
            envelopes: EnvelopeWriter::new(),
        })
    }

    pub fn set_format(&mut self, format: cdc_engine::format::Format) {
        self.envelopes = EnvelopeWriter::with_format(format);
    }

    /// Append the records of `event` to `batch`.
    pub fn route(
        &mut self,
        event: &Event,
        ts_ms: i64,
        batch: &mut Batch,
    ) -> Result<(), RouteError> {
        let meta = &event.source.meta;
        if meta.name != self.prefix {
            // One source per run, so this happens once; kept correct anyway.
            self.prefix.clone_from(&meta.name);
            self.table_topics.clear();
            self.message_topic = None;
            self.transaction_topic = None;
            self.heartbeat_topic = None;
            self.outbox_topics.clear();
        }
        if matches!(event.op, Op::Transaction | Op::Heartbeat) {
            return self.route_own_topic(event, ts_ms, batch);
        }
        let Some(table) = event.table.as_deref() else {
            return self.route_message(event, ts_ms, batch);
        };
        if self.outbox.as_ref().is_some_and(|o| &o.table == table) {
            return self.route_outbox(event, table, batch);
        }
        let topic = cached_topic(&mut self.table_topics, table, || {
            self.templates.table.render(&Vars {
                prefix: &meta.name,
                db: &meta.db,
                schema: &table.schema,
                table: &table.name,
                aggregate_type: "",
            })
        });
        let position = &event.source.position;
        let envelopes = &mut self.envelopes;
        let mut record = batch.record(topic.clone());
        if let Some(key) = &event.key {
            record = record.key(|buf| envelopes.write_key(event, key, buf));
        }
        record
            .value(|buf| envelopes.write_value(event, ts_ms, buf))
            .header(HEADER_OP, |buf| {
                buf.extend_from_slice(event.op.code().as_bytes())
            })
            .header(HEADER_POSITION, |buf| position.write_hex(buf))
            .push();
        if event.op == Op::Delete && self.tombstones {
            if let Some(key) = &event.key {
                batch
                    .record(topic)
                    .key(|buf| envelopes.write_key(event, key, buf))
                    .header(HEADER_POSITION, |buf| position.write_hex(buf))
                    .push();
            }
        }
        Ok(())
    }

    /// A record of no table on a topic of its own: a transaction's BEGIN
    /// or END (keyed by the transaction's id), or a heartbeat (keyed by the
    /// capture's name).
    fn route_own_topic(
        &mut self,
        event: &Event,
        ts_ms: i64,
        batch: &mut Batch,
    ) -> Result<(), RouteError> {
        let heartbeat = event.op == Op::Heartbeat;
        let (slot, template) = if heartbeat {
            (&mut self.heartbeat_topic, &self.templates.heartbeat)
        } else {
            (&mut self.transaction_topic, &self.templates.transaction)
        };
        let topic = slot
            .get_or_insert_with(|| capture_topic(template, event))
            .clone();
        let envelopes = &mut self.envelopes;
        let mut record = batch.record(topic);
        if let Some(key) = &event.key {
            record = record.key(|buf| envelopes.write_key(event, key, buf));
        }
        record = record.value(|buf| envelopes.write_value(event, ts_ms, buf));
        // A heartbeat has no position.
        if !heartbeat {
            record = record.header(HEADER_POSITION, |buf| event.source.position.write_hex(buf));
        }
        record.push();
        Ok(())
    }

    fn route_message(
        &mut self,
        event: &Event,
        ts_ms: i64,
        batch: &mut Batch,
    ) -> Result<(), RouteError> {
        let (Some(template), Some(message)) = (&self.templates.message, &event.message) else {
            return Ok(());
        };
        let topic = self
            .message_topic
            .get_or_insert_with(|| capture_topic(template, event))
            .clone();
        // `{"prefix": …}`, Debezium's message key.
        let key = Row::new(
            Arc::from(vec!["prefix".to_string()]),
            vec![Value::Text(message.prefix.clone())],
        );
        let envelopes = &mut self.envelopes;
        batch
            .record(topic)
            .key(|buf| envelopes.write_key(event, &key, buf))
            .value(|buf| envelopes.write_value(event, ts_ms, buf))
            .header(HEADER_OP, |buf| {
                buf.extend_from_slice(event.op.code().as_bytes())
            })
            .header(HEADER_POSITION, |buf| event.source.position.write_hex(buf))
            .push();
        Ok(())
    }

    fn route_outbox(
        &mut self,
        event: &Event,
        table: &TableRef,
        batch: &mut Batch,
    ) -> Result<(), RouteError> {
        let (Some(outbox), Some(template)) = (&self.outbox, &self.templates.outbox) else {
            return Ok(());
        };
        let (Op::Create, Some(row)) = (event.op, &event.after) else {
            tracing::debug!(
                op = event.op.code(),
                "outbox: only inserts are routed; change dropped"
            );
            return Ok(());
        };
        let config = &outbox.config;
        // A collection's insert (MongoDB): its fields are the columns.
        let fields;
        let row = match row.get(DOCUMENT_COLUMN) {
            Some(Value::Json(document)) => {
                fields = document_fields(document).map_err(|e| {
                    RouteError(format!(
                        "outbox document of {table} is not a JSON object: {e}"
                    ))
                })?;
                &fields
            }
            _ => row,
        };
        let column = |name: &str, key: &str| {
            row.get(name).ok_or_else(|| {
                RouteError(format!(
                    "outbox table {table} has no column '{name}' (set sink.outbox.{key})"
                ))
            })
        };
        let aggregate_type = column(&config.aggregate_type_column, "aggregate_type_column")?;
        let aggregate_id = column(&config.aggregate_id_column, "aggregate_id_column")?;
        let payload = column(&config.payload_column, "payload_column")?;
        let id = column(&config.id_column, "id_column")?;
        let event_type = row.get(&config.type_column);
        let Some(aggregate_type) = aggregate_type.as_key_text() else {
            // Bad data, not a broken pipeline: report it and go on.
            tracing::warn!(
                table = %table,
                id = %id,
                "outbox row has no {} value; skipped",
                config.aggregate_type_column
            );
            return Ok(());
        };
        let topic = cached_topic(&mut self.outbox_topics, aggregate_type.as_str(), || {
            let meta = &event.source.meta;
            template.render(&Vars {
                prefix: &meta.name,
                db: &meta.db,
                schema: &table.schema,
                table: &table.name,
                aggregate_type: &aggregate_type,
            })
        });
        let mut record = batch.record(topic);
        if let Some(key) = aggregate_id.as_key_text() {
            record = record.key(|buf| buf.extend_from_slice(key.as_bytes()));
        }
        if !matches!(payload, Value::Null) {
            record = record.value(|buf| write_payload(buf, payload));
        }
        if let Some(id) = id.as_key_text() {
            record = record.header(HEADER_ID, |buf| buf.extend_from_slice(id.as_bytes()));
        }
        if let Some(event_type) = event_type.and_then(Value::as_key_text) {
            record = record.header(HEADER_TYPE, |buf| {
                buf.extend_from_slice(event_type.as_bytes())
            });
        }
        record
            .header(HEADER_POSITION, |buf| event.source.position.write_hex(buf))
            .push();
        Ok(())
    }
}

/// A document's top-level fields as a row: strings as text, a wrapped
/// extended-JSON scalar (`{"$oid": "…"}`, `{"$numberLong": "…"}`) as its
/// text, everything else (documents, arrays, numbers) as its JSON text,
/// exactly as the source wrote it (field order kept).
fn document_fields(document: &str) -> Result<Row, serde_json::Error> {
    use serde_json::value::RawValue;
    let fields: std::collections::BTreeMap<String, Box<RawValue>> = serde_json::from_str(document)?;
    let mut columns = Vec::with_capacity(fields.len());
    let mut values = Vec::with_capacity(fields.len());
    for (name, raw) in fields {
        let text = raw.get();
        let value = if text == "null" {
            Value::Null
        } else if text.starts_with('"') {
            Value::Text(serde_json::from_str(text)?)
        } else {
            let wrapped: Option<std::collections::BTreeMap<String, String>> = text
                .starts_with('{')
                .then(|| serde_json::from_str(text).ok())
                .flatten();
            match wrapped {
                Some(one) if one.len() == 1 && one.keys().all(|k| k.starts_with('$')) => {
                    Value::Text(one.into_values().next().unwrap_or_default())
                }
                _ => Value::Json(text.to_string()),
            }
        };
        columns.push(name);
        values.push(value);
    }
    Ok(Row::new(Arc::from(columns), values))
}

/// The outbox payload as bytes: JSON documents as their text, text as is,
/// bytea raw, anything else as its JSON.
fn write_payload(buf: &mut Vec<u8>, payload: &Value) {
    match payload {
        Value::Json(text) | Value::Text(text) | Value::Typed(_, text) => {
            buf.extend_from_slice(text.as_bytes())
        }
        Value::Bytes(bytes) => buf.extend_from_slice(bytes),
        other => envelope::write_json_value(other, buf),
    }
}

/// The primary key as the sink writes it in the default format:
/// [`envelope::key_json`] (with `[format]` modes set, keys follow them too).
pub fn key_bytes(key: &Row) -> Vec<u8> {
    envelope::key_json(key)
}

#[cfg(test)]
mod tests;
