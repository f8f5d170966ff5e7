//! Debezium-compatible JSON: the change envelope (the value) and the key.
//!
//! Consumers built for Debezium (Kafka Connect sinks, Flink, Materialize,
//! ClickHouse) read these unchanged: `{before, after, source, op, ts_ms}` with
//! schemas disabled, and the key as the primary-key columns.

use std::sync::Arc;

use cdc_signal::TableRef;

use crate::event::{
    Event, Op, Position, SnapshotFlag, SourceMeta, TransactionInfo, UpdateDescription,
};
use crate::format::connect::SchemaCache;
use crate::format::{text_types, Format};
use crate::schema::{ColumnKind, ColumnSchema, TableSchema};
use crate::source_block::{EnvelopeLayout, DOCUMENT_COLUMN};
use crate::value::{Row, Value, UNAVAILABLE_VALUE_PLACEHOLDER};

const VERSION: &str = concat!("cdc-", env!("CARGO_PKG_VERSION"));

/// Writes envelopes and keys, remembering what repeats from one event to the
/// next: the `source` block (shared by every event of a transaction, and of a
/// snapshot chunk) and each table's column names as JSON object keys. A sink
/// keeps one for its lifetime; the output is byte for byte what a fresh
/// writer produces.
#[derive(Debug, Default)]
pub struct EnvelopeWriter {
    source: Option<(SourceKey, Vec<u8>)>,
    /// Most recently used first; a handful of tables are live at a time.
    columns: Vec<RenderedColumns>,
    format: Format,
    schemas: SchemaCache,
    /// A document rendered before it is written as a string.
    document: Vec<u8>,
}

/// What the rendered `source` block depends on. Holding the `Arc`s keeps
/// their addresses from being reused while the cache compares by pointer.
#[derive(Debug)]
struct SourceKey {
    meta: Arc<SourceMeta>,
    table: Option<Arc<TableRef>>,
    position: Position,
    offset: Option<u64>,
    last_commit: Option<u64>,
    session: Option<Arc<str>>,
    tx_id: Option<u64>,
    ts_ms: i64,
    ts_us: i64,
    snapshot: SnapshotFlag,
}

impl SourceKey {
    fn of(event: &Event) -> Self {
        let s = &event.source;
        SourceKey {
            meta: s.meta.clone(),
            table: event.table.clone(),
            position: s.position.clone(),
            offset: s.offset,
            last_commit: s.last_commit,
            session: s.session.clone(),
            tx_id: s.tx_id,
            ts_ms: s.ts_ms,
            ts_us: s.ts_us,
            snapshot: s.snapshot,
        }
    }

    fn matches(&self, event: &Event) -> bool {
        let s = &event.source;
        let same_table = match (&self.table, &event.table) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        };
        same_table
            && Arc::ptr_eq(&self.meta, &s.meta)
            && self.ts_ms == s.ts_ms
            && self.ts_us == s.ts_us
            && self.offset == s.offset
            && self.last_commit == s.last_commit
            && self.session == s.session
            && self.tx_id == s.tx_id
            && self.snapshot == s.snapshot
            && self.position == s.position
    }
}

/// `"a":`, `,"b":`, … for one `Arc` of column names.
#[derive(Debug)]
struct RenderedColumns {
    names: Arc<[String]>,
    keys: Vec<u8>,
    /// End of each column's key in `keys`.
    ends: Vec<usize>,
}

impl RenderedColumns {
    fn new(names: &Arc<[String]>) -> Self {
        let mut keys = Vec::new();
        let mut ends = Vec::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            if i > 0 {
                keys.push(b',');
            }
            write_str(name, &mut keys);
            keys.push(b':');
            ends.push(keys.len());
        }
        RenderedColumns {
            names: names.clone(),
            keys,
            ends,
        }
    }
}

const COLUMN_CACHE: usize = 16;

impl EnvelopeWriter {
    pub fn new() -> Self {
        Self::default()
    }

    /// A writer that renders values in `format`'s modes.
    pub fn with_format(format: Format) -> Self {
        EnvelopeWriter {
            format,
            ..Self::default()
        }
    }

    /// Serialise `event` as its envelope JSON, appending to `out`.
    /// `ts_ms` is the processing time (Debezium's top-level `ts_ms`).
    ///
    /// Written directly rather than through serde's data model: this runs
    /// for every event, and JSON values are copied as the source validated
    /// them instead of being parsed again.
    pub fn write_value(&mut self, event: &Event, ts_ms: i64, out: &mut Vec<u8>) {
        if !self.format.schemas {
            return self.write_payload(event, ts_ms, out);
        }
        out.extend_from_slice(b"{\"schema\":");
        out.extend_from_slice(self.schemas.value_schema(&self.format, event));
        out.extend_from_slice(b",\"payload\":");
        self.write_payload(event, ts_ms, out);
        out.push(b'}');
    }

    /// A record's key: the key row, with its Connect schema when the
    /// format has schemas.
    pub fn write_key(&mut self, event: &Event, key: &Row, out: &mut Vec<u8>) {
        if !self.format.schemas {
            return self.write_row(key, out);
        }
        out.extend_from_slice(b"{\"schema\":");
        out.extend_from_slice(self.schemas.key_schema(&self.format, event, key));
        out.extend_from_slice(b",\"payload\":");
        self.write_row(key, out);
        out.push(b'}');
    }

    /// The envelope itself, members in Debezium's order.
    fn write_payload(&mut self, event: &Event, ts_ms: i64, out: &mut Vec<u8>) {
        if event.op == Op::Heartbeat {
            // Debezium's heartbeat value: the time it was written.
            out.extend_from_slice(b"{\"ts_ms\":");
            write_display(event.source.ts_ms, out);
            out.push(b'}');
            return;
        }
        if let Some(TransactionInfo::Boundary {
            end,
            id,
            event_count,
            data_collections,
            ts_ms,
        }) = event.transaction.as_deref()
        {
            write_boundary(*end, id, *event_count, data_collections, *ts_ms, out);
            return;
        }
        if event.source.meta.block.layout() == EnvelopeLayout::Documents {
            return self.write_document_payload(event, ts_ms, out);
        }
        out.push(b'{');
        if event.op == Op::Message {
            if let Some(message) = &event.message {
                out.extend_from_slice(b"\"message\":{\"prefix\":");
                write_str(&message.prefix, out);
                out.extend_from_slice(b",\"content\":\"");
                use base64::Engine as _;
                out.extend_from_slice(
                    base64::engine::general_purpose::STANDARD
                        .encode(&message.content)
                        .as_bytes(),
                );
                out.extend_from_slice(b"\"},");
            }
        } else {
            // The shape only matters to Debezium's typed TOAST placeholders:
            // cdc's own format writes the text for every type.
            let schema = event
                .schema
                .as_deref()
                .filter(|_| self.format.debezium_values());
            out.extend_from_slice(b"\"before\":");
            self.write_optional_row(event.before.as_ref(), schema, out);
            out.extend_from_slice(b",\"after\":");
            self.write_optional_row(event.after.as_ref(), schema, out);
            out.push(b',');
        }
        self.write_source(event, out);
        out.extend_from_slice(b",\"transaction\":");
        write_transaction_block(event, out);
        out.extend_from_slice(b",\"op\":\"");
        out.extend_from_slice(event.op.code().as_bytes());
        out.extend_from_slice(b"\",\"ts_ms\":");
        write_display(ts_ms, out);
        // Processing time, in milliseconds as the caller gives it.
        out.extend_from_slice(b",\"ts_us\":");
        write_display(ts_ms.saturating_mul(1000), out);
        out.extend_from_slice(b",\"ts_ns\":");
        write_display(ts_ms.saturating_mul(1_000_000), out);
        out.push(b'}');
    }

    /// The documents layout (Debezium's MongoDB envelope): `before` and
    /// `after` are JSON strings holding the document, then
    /// `updateDescription`, `source`, `op`, `ts_ms`, `transaction`.
    fn write_document_payload(&mut self, event: &Event, ts_ms: i64, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"before\":");
        self.write_document(event.before.as_ref(), out);
        out.extend_from_slice(b",\"after\":");
        self.write_document(event.after.as_ref(), out);
        out.extend_from_slice(b",\"updateDescription\":");
        write_update_description(event.update.as_deref(), out);
        out.push(b',');
        self.write_source(event, out);
        out.extend_from_slice(b",\"op\":\"");
        out.extend_from_slice(event.op.code().as_bytes());
        out.extend_from_slice(b"\",\"ts_ms\":");
        write_display(ts_ms, out);
        out.extend_from_slice(b",\"transaction\":");
        write_transaction_block(event, out);
        out.push(b'}');
    }

    /// A row written as the JSON text of a string (`null` for none).
    fn write_document(&mut self, row: Option<&Row>, out: &mut Vec<u8>) {
        let Some(row) = row else {
            return out.extend_from_slice(b"null");
        };
        if let ([name], [Value::Json(text)]) = (&row.columns[..], &row.values[..]) {
            if name == DOCUMENT_COLUMN {
                return write_str(text, out);
            }
        }
        let mut document = std::mem::take(&mut self.document);
        document.clear();
        self.write_row_of(row, None, &mut document);
        // Rows render from strings and escapes only, so this holds.
        match std::str::from_utf8(&document) {
            Ok(text) => write_str(text, out),
            Err(_) => out.extend_from_slice(b"null"),
        }
        self.document = document;
    }

    /// A row as a JSON object (the key of a record is the key row).
    pub fn write_row(&mut self, row: &Row, out: &mut Vec<u8>) {
        self.write_row_of(row, None, out);
    }

    /// A row of a table of shape `schema` (given with Connect schemas).
    fn write_row_of(&mut self, row: &Row, schema: Option<&TableSchema>, out: &mut Vec<u8>) {
        let at = match self
            .columns
            .iter()
            .position(|c| Arc::ptr_eq(&c.names, &row.columns))
        {
            Some(at) => at,
            None => {
                self.columns.truncate(COLUMN_CACHE - 1);
                self.columns.insert(0, RenderedColumns::new(&row.columns));
                0
            }
        };
        if at > 0 {
            self.columns.swap(0, at);
        }
        let Some(rendered) = self.columns.first() else {
            return write_row_in(&self.format, row, out);
        };
        // Points and hstores are Debezium's struct and JSON text in its
        // modes (`schema` is given only then): looked up only in tables
        // that have one.
        let typed_text = schema.filter(|s| {
            s.columns
                .iter()
                .any(|c| matches!(c.kind, ColumnKind::Point | ColumnKind::HStore))
        });
        out.push(b'{');
        let mut start = 0;
        for (i, (&end, value)) in rendered.ends.iter().zip(&row.values).enumerate() {
            out.extend_from_slice(rendered.keys.get(start..end).unwrap_or_default());
            match (value, schema) {
                (Value::Text(text), Some(_)) if typed_text.is_some() => {
                    let kind = row.columns.get(i).and_then(|name| {
                        typed_text
                            .and_then(|s| s.columns.iter().find(|c| &c.name == name))
                            .map(|c| &c.kind)
                    });
                    let written = match kind {
                        Some(ColumnKind::Point) => text_types::write_point(text, out),
                        Some(ColumnKind::HStore) => {
                            text_types::write_hstore_json(text, out, write_str)
                        }
                        _ => None,
                    };
                    if written.is_none() {
                        write_str(text, out);
                    }
                }
                // Debezium's placeholder takes the column's type: bytes in a
                // bytes column, a list in some array columns
                // (`UnchangedToastedPlaceholder`); a Connect sink could not
                // read the text there.
                (Value::Unchanged, Some(schema)) => {
                    let column = row
                        .columns
                        .get(i)
                        .and_then(|name| schema.columns.iter().find(|c| &c.name == name));
                    match column.map(|c| toast_placeholder(&self.format, c)) {
                        Some(Placeholder::Bytes) => self
                            .format
                            .write_bytes(UNAVAILABLE_VALUE_PLACEHOLDER.as_bytes(), out),
                        Some(Placeholder::TextList) => {
                            out.push(b'[');
                            write_str(UNAVAILABLE_VALUE_PLACEHOLDER, out);
                            out.push(b']');
                        }
                        Some(Placeholder::NumberList) => {
                            out.push(b'[');
                            for (at, byte) in UNAVAILABLE_VALUE_PLACEHOLDER.bytes().enumerate() {
                                if at > 0 {
                                    out.push(b',');
                                }
                                write_display(byte, out);
                            }
                            out.push(b']');
                        }
                        Some(Placeholder::Null) => out.extend_from_slice(b"null"),
                        Some(Placeholder::Text) | None => write_value_in(&self.format, value, out),
                    }
                }
                _ => write_value_in(&self.format, value, out),
            }
            start = end;
        }
        out.push(b'}');
    }

    fn write_optional_row(
        &mut self,
        row: Option<&Row>,
        schema: Option<&TableSchema>,
        out: &mut Vec<u8>,
    ) {
        match row {
            Some(row) => self.write_row_of(row, schema, out),
            None => out.extend_from_slice(b"null"),
        }
    }

    fn write_source(&mut self, event: &Event, out: &mut Vec<u8>) {
        match &self.source {
            Some((key, rendered)) if key.matches(event) => out.extend_from_slice(rendered),
            _ => {
                let mut rendered = Vec::with_capacity(256);
                write_source(event, !self.format.omit_position, &mut rendered);
                out.extend_from_slice(&rendered);
                self.source = Some((SourceKey::of(event), rendered));
            }
        }
    }
}

/// A data event's `transaction` member: its block, or `null`.
fn write_transaction_block(event: &Event, out: &mut Vec<u8>) {
    match event.transaction.as_deref() {
        Some(TransactionInfo::Order {
            id,
            total_order,
            data_collection_order,
        }) => {
            out.extend_from_slice(b"{\"id\":");
            write_str(id, out);
            out.extend_from_slice(b",\"total_order\":");
            write_display(*total_order, out);
            out.extend_from_slice(b",\"data_collection_order\":");
            write_display(*data_collection_order, out);
            out.push(b'}');
        }
        _ => out.extend_from_slice(b"null"),
    }
}

/// Debezium's MongoDB `updateDescription`: `removedFields`,
/// `updatedFields` (a JSON string), `truncatedArrays`; `null` for none.
fn write_update_description(update: Option<&UpdateDescription>, out: &mut Vec<u8>) {
    let Some(update) = update else {
        return out.extend_from_slice(b"null");
    };
    out.extend_from_slice(b"{\"removedFields\":");
    match &update.removed_fields {
        Some(fields) => {
            out.push(b'[');
            for (i, field) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(field, out);
            }
            out.push(b']');
        }
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"updatedFields\":");
    match &update.updated_fields {
        Some(json) => write_str(json, out),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"truncatedArrays\":");
    match &update.truncated_arrays {
        Some(arrays) => {
            out.push(b'[');
            for (i, (field, size)) in arrays.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"{\"field\":");
                write_str(field, out);
                out.extend_from_slice(b",\"size\":");
                write_display(*size, out);
                out.push(b'}');
            }
            out.push(b']');
        }
        None => out.extend_from_slice(b"null"),
    }
    out.push(b'}');
}

/// Serialise `event` as its envelope JSON, appending to `out` (a one-off
/// [`EnvelopeWriter`]; sinks keep one instead).
pub fn write_value(event: &Event, ts_ms: i64, out: &mut Vec<u8>) {
    EnvelopeWriter::new().write_value(event, ts_ms, out);
}

/// The envelope as a JSON string, for tests and tools.
pub fn value_json(event: &Event, ts_ms: i64) -> String {
    let mut out = Vec::with_capacity(256);
    write_value(event, ts_ms, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// A BEGIN or END record's value, as Debezium's `<prefix>.transaction`
/// topic carries it.
fn write_boundary(
    end: bool,
    id: &str,
    event_count: Option<u64>,
    data_collections: &[(String, u64)],
    ts_ms: i64,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(if end {
        b"{\"status\":\"END\",\"id\":"
    } else {
        b"{\"status\":\"BEGIN\",\"id\":"
    });
    write_str(id, out);
    out.extend_from_slice(b",\"event_count\":");
    match event_count {
        Some(n) => write_display(n, out),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"data_collections\":");
    if end {
        out.push(b'[');
        for (i, (table, n)) in data_collections.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"data_collection\":");
            write_str(table, out);
            out.extend_from_slice(b",\"event_count\":");
            write_display(*n, out);
            out.push(b'}');
        }
        out.push(b']');
    } else {
        out.extend_from_slice(b"null");
    }
    out.extend_from_slice(b",\"ts_ms\":");
    write_display(ts_ms, out);
    out.push(b'}');
}

/// The key JSON: an object of the primary-key columns.
pub fn key_json(key: &Row) -> Vec<u8> {
    let mut out = Vec::with_capacity(32);
    write_row(key, &mut out);
    out
}

/// Debezium's `source` block: the members every connector shares, the
/// source's own (its [`crate::SourceBlock`]), then cdc's `position`
/// (unless the format leaves it out, as the `debezium` preset does).
fn write_source(event: &Event, position: bool, out: &mut Vec<u8>) {
    let s = &event.source;
    out.extend_from_slice(b"\"source\":{\"version\":");
    write_str(VERSION, out);
    out.extend_from_slice(b",\"connector\":");
    write_str(s.meta.connector, out);
    out.extend_from_slice(b",\"name\":");
    write_str(&s.meta.name, out);
    out.extend_from_slice(b",\"ts_ms\":");
    write_display(s.ts_ms, out);
    out.extend_from_slice(b",\"snapshot\":\"");
    out.extend_from_slice(s.snapshot.as_str().as_bytes());
    out.extend_from_slice(b"\",\"db\":");
    write_str(s.meta.block.db(event).unwrap_or(&s.meta.db), out);
    s.meta.block.write_members(event, out);
    if position {
        out.extend_from_slice(b",\"position\":\"");
        s.position.write_hex(out);
        out.push(b'"');
    }
    out.push(b'}');
}

/// A row as a JSON object.
pub fn write_row(row: &Row, out: &mut Vec<u8>) {
    write_row_in(&Format::default(), row, out);
}

fn write_row_in(format: &Format, row: &Row, out: &mut Vec<u8>) {
    out.push(b'{');
    for (i, (name, value)) in row.columns.iter().zip(&row.values).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(name, out);
        out.push(b':');
        write_value_in(format, value, out);
    }
    out.push(b'}');
}

/// One value as JSON (see [`Value`] for the mapping).
pub fn write_json_value(value: &Value, out: &mut Vec<u8>) {
    write_value_in(&Format::default(), value, out);
}

/// One value as JSON in `format`'s modes.
pub fn write_value_in(format: &Format, value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Int(i) => write_display(*i, out),
        Value::Float(f) => {
            // serde_json prints finite floats exactly (ryu); non-finite ones
            // never reach here as Float.
            let _ = serde_json::to_writer(&mut *out, f);
        }
        Value::Text(text) => write_str(text, out),
        Value::Typed(kind, text) => format.write_typed(*kind, text, out, write_str),
        Value::Json(raw) if format.json_as_string() => write_str(raw, out),
        // Validated by the source when the value was built.
        Value::Json(raw) => out.extend_from_slice(raw.as_bytes()),
        Value::Bytes(bytes) => format.write_bytes(bytes, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value_in(format, item, out);
            }
            out.push(b']');
        }
        Value::Unchanged => write_str(UNAVAILABLE_VALUE_PLACEHOLDER, out),
    }
}

/// How Debezium writes an unchanged TOAST value of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placeholder {
    Text,
    Bytes,
    /// `["__debezium_unavailable_value"]`.
    TextList,
    /// The placeholder's bytes as numbers.
    NumberList,
    /// What Debezium's converters make of a placeholder they cannot read:
    /// the only value a Connect schema admits there.
    Null,
}

/// Debezium's choice by the column's type (`UnchangedToastedReplicationMessageColumn`
/// and the converters the placeholder then meets): arrays of text,
/// varchar, json and jsonb get a list of the text; arrays of integer and
/// bigint, and of date where dates are epoch days, a list of the text's
/// bytes as numbers; any other array null; bytes the text's bytes in
/// `bytes` mode, the text in `hex` and null in the base64 modes; everything
/// else the text. Without
/// a `binary.handling.mode` or `time.precision.mode` bytes and dates keep
/// cdc's own form, and so their placeholder is the text.
fn toast_placeholder(format: &Format, column: &ColumnSchema) -> Placeholder {
    use crate::format::{BinaryMode, TimePrecisionMode};
    if column.kind == ColumnKind::Bytes {
        return match format.binary {
            None | Some(BinaryMode::Hex) => Placeholder::Text,
            Some(BinaryMode::Bytes) => Placeholder::Bytes,
            Some(BinaryMode::Base64 | BinaryMode::Base64UrlSafe) => Placeholder::Null,
        };
    }
    let Some(element) = column.type_name.strip_suffix("[]") else {
        return Placeholder::Text;
    };
    // `character varying(20)[]`: the element's name without its modifier.
    let element = element.split('(').next().unwrap_or_default().trim();
    match element {
        "text" | "character varying" | "json" | "jsonb" => Placeholder::TextList,
        "integer" | "bigint" => Placeholder::NumberList,
        "date" => match format.time {
            None => Placeholder::Text,
            Some(TimePrecisionMode::Adaptive | TimePrecisionMode::AdaptiveTimeMicroseconds) => {
                Placeholder::NumberList
            }
            Some(TimePrecisionMode::Connect | TimePrecisionMode::IsoString) => Placeholder::Null,
        },
        _ => Placeholder::Null,
    }
}

/// A JSON string with escapes, as serde_json writes it: `\"`, `\\`, the
/// short escapes for `\b \f \n \r \t`, `\u00XX` for other control
/// characters, everything else (non-ASCII included) as is.
///
/// Eight bytes are checked at a time, and runs without escapes are copied
/// whole: most text needs no escape at all, and this is on every value's path.
pub fn write_str(text: &str, out: &mut Vec<u8>) {
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut copied = 0;
    let mut at = 0;
    while at < bytes.len() {
        if let Some(word) = bytes.get(at..at + 8) {
            let mut lanes = [0u8; 8];
            lanes.copy_from_slice(word);
            if !needs_escape(u64::from_le_bytes(lanes)) {
                at += 8;
                continue;
            }
        }
        // Byte by byte through this word (or the tail).
        let end = (at + 8).min(bytes.len());
        while at < end {
            let b = bytes[at];
            if let Some(escape) = escape_of(b) {
                out.extend_from_slice(&bytes[copied..at]);
                match escape {
                    Escape::Short(c) => out.extend_from_slice(&[b'\\', c]),
                    Escape::Unicode => {
                        const HEX: &[u8; 16] = b"0123456789abcdef";
                        out.extend_from_slice(b"\\u00");
                        out.push(HEX[usize::from(b >> 4)]);
                        out.push(HEX[usize::from(b & 0x0f)]);
                    }
                }
                copied = at + 1;
            }
            at += 1;
        }
    }
    out.extend_from_slice(&bytes[copied..]);
    out.push(b'"');
}

enum Escape {
    Short(u8),
    Unicode,
}

fn escape_of(b: u8) -> Option<Escape> {
    Some(match b {
        b'"' => Escape::Short(b'"'),
        b'\\' => Escape::Short(b'\\'),
        b'\n' => Escape::Short(b'n'),
        b'\r' => Escape::Short(b'r'),
        b'\t' => Escape::Short(b't'),
        0x08 => Escape::Short(b'b'),
        0x0c => Escape::Short(b'f'),
        0x00..=0x1f => Escape::Unicode,
        _ => return None,
    })
}

/// Whether any of the eight bytes is `"`, `\\` or below 0x20 (SWAR: a lane
/// that is zero after the xor, or below 0x20, borrows into its high bit).
fn needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_lane = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let quote = zero_lane(word ^ (ONES * u64::from(b'"')));
    let backslash = zero_lane(word ^ (ONES * u64::from(b'\\')));
    // Bytes >= 0x80 have their high bit set and never count as below 0x20.
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
    quote | backslash | control != 0
}

pub fn write_display(n: impl itoa::Integer, out: &mut Vec<u8>) {
    let mut buf = itoa::Buffer::new();
    out.extend_from_slice(buf.format(n).as_bytes());
}

#[cfg(test)]
#[path = "envelope_documents_tests.rs"]
mod documents_tests;

#[cfg(test)]
#[path = "envelope_tests.rs"]
mod tests;
