//! Kafka Connect schemas, as Debezium's PostgreSQL connector declares them
//! and Kafka's `JsonConverter` writes them with `schemas.enable=true`
//! (docs/architecture.md, "Connect schemas"): the logical type names and
//! parameters Debezium uses for each column kind in each value mode, so a
//! Connect sink reads cdc's records as it reads Debezium's.
//!
//! Everything here writes JSON text straight into the output; the callers
//! ([`crate::envelope::EnvelopeWriter`]) cache what they render per table
//! shape, so this runs once per shape, not per event.

use std::sync::Arc;

use crate::envelope::write_str;
use crate::event::{Event, Op, SourceMeta, TransactionInfo};
use crate::format::{BinaryMode, DecimalMode, Format, IntervalMode, TimePrecisionMode};
use crate::schema::{ColumnKind, ColumnSchema, TableSchema};
use crate::source_block::EnvelopeLayout;
use crate::value::{Row, Value};

/// The schemas a writer rendered, per table shape and column set: a
/// handful of tables are live at a time, each rendered once.
#[derive(Debug, Default)]
pub struct SchemaCache {
    /// Most recently used first.
    rendered: Vec<Rendered>,
    message: Option<(Arc<SourceMeta>, Vec<u8>)>,
}

/// What a rendered schema depends on. The `Arc`s are held so their
/// addresses are not reused while they are compared by pointer.
#[derive(Debug)]
struct Rendered {
    key: bool,
    meta: Arc<SourceMeta>,
    schema: Option<Arc<TableSchema>>,
    columns: Option<Arc<[String]>>,
    json: Vec<u8>,
}

const CACHED: usize = 32;

fn same<T: ?Sized>(a: &Option<Arc<T>>, b: Option<&Arc<T>>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        _ => false,
    }
}

impl SchemaCache {
    /// The value schema of `event`'s record.
    pub fn value_schema(&mut self, format: &Format, event: &Event) -> &[u8] {
        match (event.op, event.transaction.as_deref()) {
            (Op::Heartbeat, _) => return HEARTBEAT_VALUE_SCHEMA.as_bytes(),
            (_, Some(TransactionInfo::Boundary { .. })) => {
                return TRANSACTION_VALUE_SCHEMA.as_bytes()
            }
            (Op::Message, _) => {
                let meta = &event.source.meta;
                let stale = !matches!(&self.message, Some((m, _)) if Arc::ptr_eq(m, meta));
                if stale {
                    let mut json = Vec::with_capacity(2048);
                    write_message_schema(format, meta, &mut json);
                    self.message = Some((meta.clone(), json));
                }
                return self.message.as_ref().map_or(&[], |(_, j)| j.as_slice());
            }
            _ => {}
        }
        let columns = event
            .after
            .as_ref()
            .or(event.before.as_ref())
            .map(|r| &r.columns);
        if event.source.meta.block.layout() == EnvelopeLayout::Documents {
            return self.cached(false, event, columns, |json| {
                write_document_envelope_schema(format, event, json)
            });
        }
        self.cached(false, event, columns, |json| {
            write_envelope_schema(format, event, columns, json)
        })
    }

    /// The key schema of `event`'s record, `key` its key row.
    pub fn key_schema(&mut self, format: &Format, event: &Event, key: &Row) -> &[u8] {
        match (event.op, event.transaction.as_deref()) {
            (Op::Heartbeat, _) => return HEARTBEAT_KEY_SCHEMA.as_bytes(),
            (_, Some(TransactionInfo::Boundary { .. })) => {
                return TRANSACTION_KEY_SCHEMA.as_bytes()
            }
            (Op::Message, _) => return MESSAGE_KEY_SCHEMA.as_bytes(),
            _ => {}
        }
        self.cached(true, event, Some(&key.columns), |json| {
            let mut fields = Vec::with_capacity(256);
            write_fields(
                format,
                event.schema.as_deref(),
                &key.columns,
                Some(key),
                &mut fields,
            );
            write_struct(&fields, false, &record_name(event, "Key"), None, None, json);
        })
    }

    fn cached(
        &mut self,
        key: bool,
        event: &Event,
        columns: Option<&Arc<[String]>>,
        render: impl FnOnce(&mut Vec<u8>),
    ) -> &[u8] {
        let meta = &event.source.meta;
        let found = self.rendered.iter().position(|r| {
            r.key == key
                && Arc::ptr_eq(&r.meta, meta)
                && same(&r.schema, event.schema.as_ref())
                && same(&r.columns, columns)
        });
        let at = match found {
            Some(at) => at,
            None => {
                let mut json = Vec::with_capacity(4096);
                render(&mut json);
                self.rendered.truncate(CACHED - 1);
                self.rendered.insert(
                    0,
                    Rendered {
                        key,
                        meta: meta.clone(),
                        schema: event.schema.clone(),
                        columns: columns.cloned(),
                        json,
                    },
                );
                0
            }
        };
        if at > 0 {
            self.rendered.swap(0, at);
        }
        self.rendered.first().map_or(&[], |r| r.json.as_slice())
    }
}

/// `<prefix>.<schema>.<table>.<suffix>`, Debezium's record schema names.
fn record_name(event: &Event, suffix: &str) -> String {
    match event.table.as_deref() {
        Some(table) => format!(
            "{}.{}.{}.{suffix}",
            event.source.meta.name, table.schema, table.name
        ),
        None => format!("{}.{suffix}", event.source.meta.name),
    }
}

/// The field schemas of `columns`, each typed by its column in `schema`.
fn write_fields(
    format: &Format,
    schema: Option<&TableSchema>,
    columns: &[String],
    row: Option<&Row>,
    out: &mut Vec<u8>,
) {
    for (i, name) in columns.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match schema.and_then(|s| s.columns.iter().find(|c| &c.name == name)) {
            Some(column) => write_column(format, column, out),
            None => write_untyped_column(name, row.and_then(|r| r.values.get(i)), out),
        }
    }
}

/// The documents layout's envelope schema (Debezium's MongoDB
/// `MongoDbSchema`): `before` and `after` as Json strings,
/// `updateDescription`, `source`, `op`, `ts_ms`, `transaction`; the
/// envelope struct has no version there.
fn write_document_envelope_schema(format: &Format, event: &Event, out: &mut Vec<u8>) {
    let mut members = Vec::with_capacity(4096);
    members.extend_from_slice(DOCUMENT_SCHEMAS.as_bytes());
    write_source_schema(format, &event.source.meta, &mut members);
    members.extend_from_slice(
        b",{\"type\":\"string\",\"optional\":false,\"field\":\"op\"},{\"type\":\"int64\",\"optional\":true,\"field\":\"ts_ms\"},",
    );
    members.extend_from_slice(TRANSACTION_BLOCK_SCHEMA.as_bytes());
    write_struct(
        &members,
        false,
        &record_name(event, "Envelope"),
        None,
        None,
        out,
    );
}

/// `before`, `after` and `updateDescription` of the documents layout,
/// each followed by a comma.
const DOCUMENT_SCHEMAS: &str = concat!(
    "{\"type\":\"string\",\"optional\":true,\"name\":\"io.debezium.data.Json\",\"version\":1,\"field\":\"before\"},",
    "{\"type\":\"string\",\"optional\":true,\"name\":\"io.debezium.data.Json\",\"version\":1,\"field\":\"after\"},",
    "{\"type\":\"struct\",\"fields\":[",
    "{\"type\":\"array\",\"items\":{\"type\":\"string\",\"optional\":false},\"optional\":true,\"field\":\"removedFields\"},",
    "{\"type\":\"string\",\"optional\":true,\"name\":\"io.debezium.data.Json\",\"version\":1,\"field\":\"updatedFields\"},",
    "{\"type\":\"array\",\"items\":{\"type\":\"struct\",\"fields\":[",
    "{\"type\":\"string\",\"optional\":false,\"field\":\"field\"},",
    "{\"type\":\"int32\",\"optional\":false,\"field\":\"size\"}",
    "],\"optional\":false,\"name\":\"io.debezium.connector.mongodb.changestream.truncatedarray\",\"version\":1},",
    "\"optional\":true,\"field\":\"truncatedArrays\"}",
    "],\"optional\":true,\"name\":\"io.debezium.connector.mongodb.changestream.updatedescription\",\"version\":1,\"field\":\"updateDescription\"},"
);

/// A row event's envelope schema: `before` and `after` of the row's
/// columns (the shape's, when the event has no row), then Debezium's
/// `source`, `transaction`, `op` and times.
fn write_envelope_schema(
    format: &Format,
    event: &Event,
    columns: Option<&Arc<[String]>>,
    out: &mut Vec<u8>,
) {
    let schema = event.schema.as_deref();
    let all: Vec<String>;
    let names: &[String] = match (columns, schema) {
        (Some(columns), _) => columns,
        (None, Some(schema)) => {
            all = schema.columns.iter().map(|c| c.name.clone()).collect();
            &all
        }
        (None, None) => &[],
    };
    let row = event.after.as_ref().or(event.before.as_ref());
    let mut fields = Vec::with_capacity(2048);
    write_fields(format, schema, names, row, &mut fields);
    let value_name = record_name(event, "Value");
    let mut members = Vec::with_capacity(fields.len() * 2 + 2048);
    write_struct(
        &fields,
        true,
        &value_name,
        None,
        Some("before"),
        &mut members,
    );
    members.push(b',');
    write_struct(
        &fields,
        true,
        &value_name,
        None,
        Some("after"),
        &mut members,
    );
    members.push(b',');
    write_source_schema(format, &event.source.meta, &mut members);
    members.push(b',');
    members.extend_from_slice(TRANSACTION_BLOCK_SCHEMA.as_bytes());
    members.push(b',');
    members.extend_from_slice(ENVELOPE_TAIL_SCHEMA.as_bytes());
    write_struct(
        &members,
        false,
        &record_name(event, "Envelope"),
        Some(2),
        None,
        out,
    );
}

/// The Connect type of one column kind in `format`'s modes.
enum Connect {
    /// A plain Connect type: `int32`, `string`…
    Plain(&'static str),
    /// A logical type: a Connect type with Debezium's (or Connect's) name,
    /// version 1, and parameters.
    Named {
        ty: &'static str,
        name: &'static str,
        parameters: Vec<(&'static str, String)>,
    },
    /// `io.debezium.data.VariableScaleDecimal`: a struct of scale and value.
    VariableScaleDecimal,
    Point,
    Array(Box<ColumnKind>),
}

fn named(ty: &'static str, name: &'static str) -> Connect {
    Connect::Named {
        ty,
        name,
        parameters: Vec::new(),
    }
}

/// Debezium's mapping (`PostgresValueConverter.schemaBuilder`); an unset
/// mode is Debezium's default, as the encoder's values are.
fn connect_type(format: &Format, kind: &ColumnKind) -> Connect {
    use ColumnKind as K;
    let time = format.time.unwrap_or(TimePrecisionMode::Adaptive);
    match kind {
        K::Boolean => Connect::Plain("boolean"),
        K::Int16 => Connect::Plain("int16"),
        K::Int32 => Connect::Plain("int32"),
        K::Int64 => Connect::Plain("int64"),
        K::Float32 => Connect::Plain("float"),
        K::Float64 => Connect::Plain("double"),
        K::String => Connect::Plain("string"),
        K::NamedString(name) => named("string", name),
        K::Decimal { precision, scale } => match format.decimal.unwrap_or(DecimalMode::Precise) {
            DecimalMode::Double => Connect::Plain("double"),
            DecimalMode::String => Connect::Plain("string"),
            DecimalMode::Precise => match scale {
                None => Connect::VariableScaleDecimal,
                Some(scale) => {
                    let mut parameters = vec![("scale", scale.to_string())];
                    if let Some(precision) = precision {
                        parameters.push(("connect.decimal.precision", precision.to_string()));
                    }
                    Connect::Named {
                        ty: "bytes",
                        name: "org.apache.kafka.connect.data.Decimal",
                        parameters,
                    }
                }
            },
        },
        K::Money => match format.decimal.unwrap_or(DecimalMode::Precise) {
            DecimalMode::Double => Connect::Plain("double"),
            DecimalMode::String => Connect::Plain("string"),
            DecimalMode::Precise => Connect::Named {
                ty: "bytes",
                name: "org.apache.kafka.connect.data.Decimal",
                parameters: vec![(
                    "scale",
                    format.money_fraction_digits.unwrap_or(2).to_string(),
                )],
            },
        },
        K::Date => match time {
            TimePrecisionMode::IsoString => named("string", "io.debezium.time.IsoDate"),
            TimePrecisionMode::Connect => named("int32", "org.apache.kafka.connect.data.Date"),
            _ => named("int32", "io.debezium.time.Date"),
        },
        K::Time { precision } => match time {
            TimePrecisionMode::IsoString => named("string", "io.debezium.time.IsoTime"),
            TimePrecisionMode::Connect => named("int32", "org.apache.kafka.connect.data.Time"),
            TimePrecisionMode::Adaptive if *precision <= 3 => {
                named("int32", "io.debezium.time.Time")
            }
            _ => named("int64", "io.debezium.time.MicroTime"),
        },
        K::Timestamp { precision } => match time {
            TimePrecisionMode::IsoString => named("string", "io.debezium.time.IsoTimestamp"),
            TimePrecisionMode::Connect => named("int64", "org.apache.kafka.connect.data.Timestamp"),
            _ if *precision <= 3 => named("int64", "io.debezium.time.Timestamp"),
            _ => named("int64", "io.debezium.time.MicroTimestamp"),
        },
        K::TimeTz => named("string", "io.debezium.time.ZonedTime"),
        K::TimestampTz => named("string", "io.debezium.time.ZonedTimestamp"),
        K::Interval => match format.interval.unwrap_or(IntervalMode::Numeric) {
            IntervalMode::Numeric => named("int64", "io.debezium.time.MicroDuration"),
            IntervalMode::String => named("string", "io.debezium.time.Interval"),
        },
        K::Bytes => match format.binary.unwrap_or(BinaryMode::Bytes) {
            BinaryMode::Bytes => Connect::Plain("bytes"),
            _ => Connect::Plain("string"),
        },
        K::Bits { length } => Connect::Named {
            ty: "bytes",
            name: "io.debezium.data.Bits",
            parameters: vec![("length", length.to_string())],
        },
        K::Json => named("string", "io.debezium.data.Json"),
        K::Xml => named("string", "io.debezium.data.Xml"),
        K::Uuid => named("string", "io.debezium.data.Uuid"),
        K::Enum { allowed } => Connect::Named {
            ty: "string",
            name: "io.debezium.data.Enum",
            parameters: vec![("allowed", allowed.join(","))],
        },
        K::Point => Connect::Point,
        K::HStore => named("string", "io.debezium.data.Json"),
        K::Array(items) => Connect::Array(items.clone()),
    }
}

/// Whether Debezium declares a default for a column of `kind`: not for
/// the kinds whose Connect value is a struct or bytes it does not parse.
pub fn default_declared(format: &Format, kind: &ColumnKind) -> bool {
    match connect_type(format, kind) {
        Connect::VariableScaleDecimal | Connect::Point | Connect::Array(_) => false,
        Connect::Plain("bytes") => false,
        _ => !matches!(kind, ColumnKind::Money | ColumnKind::Bits { .. }),
    }
}

/// `"type":…,…,"optional":…` and the logical type's name, version and
/// parameters: a schema's members without its braces and field name.
fn write_type(format: &Format, kind: &ColumnKind, optional: bool, out: &mut Vec<u8>) {
    let optional_member = |out: &mut Vec<u8>| {
        out.extend_from_slice(if optional {
            b"\"optional\":true"
        } else {
            b"\"optional\":false"
        })
    };
    match connect_type(format, kind) {
        Connect::Plain(ty) => {
            write_type_member(ty, out);
            optional_member(out);
        }
        Connect::Named {
            ty,
            name,
            parameters,
        } => {
            write_type_member(ty, out);
            optional_member(out);
            out.extend_from_slice(b",\"name\":");
            write_str(name, out);
            out.extend_from_slice(b",\"version\":1");
            if !parameters.is_empty() {
                out.extend_from_slice(b",\"parameters\":{");
                for (i, (key, value)) in parameters.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_str(key, out);
                    out.push(b':');
                    write_str(value, out);
                }
                out.push(b'}');
            }
        }
        Connect::VariableScaleDecimal => {
            out.extend_from_slice(
                b"\"type\":\"struct\",\"fields\":[{\"type\":\"int32\",\"optional\":false,\"field\":\"scale\"},{\"type\":\"bytes\",\"optional\":false,\"field\":\"value\"}],",
            );
            optional_member(out);
            out.extend_from_slice(
                b",\"name\":\"io.debezium.data.VariableScaleDecimal\",\"version\":1,\"doc\":\"Variable scaled decimal\"",
            );
        }
        Connect::Point => {
            out.extend_from_slice(
                b"\"type\":\"struct\",\"fields\":[{\"type\":\"double\",\"optional\":false,\"field\":\"x\"},{\"type\":\"double\",\"optional\":false,\"field\":\"y\"},{\"type\":\"bytes\",\"optional\":true,\"field\":\"wkb\"},{\"type\":\"int32\",\"optional\":true,\"field\":\"srid\"}],",
            );
            optional_member(out);
            out.extend_from_slice(
                b",\"name\":\"io.debezium.data.geometry.Point\",\"version\":1,\"doc\":\"Geometry (POINT)\"",
            );
        }
        Connect::Array(items) => {
            out.extend_from_slice(b"\"type\":\"array\",\"items\":{");
            write_type(format, &items, true, out);
            out.extend_from_slice(b"},");
            optional_member(out);
        }
    }
}

fn write_type_member(ty: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(b"\"type\":");
    write_str(ty, out);
    out.push(b',');
}

/// One column's field schema: its type, default and name.
pub fn write_column(format: &Format, column: &ColumnSchema, out: &mut Vec<u8>) {
    out.push(b'{');
    write_type(format, &column.kind, column.optional, out);
    if let Some(default) = &column.default {
        if default_declared(format, &column.kind) {
            out.extend_from_slice(b",\"default\":");
            crate::envelope::write_value_in(format, default, out);
        }
    }
    out.extend_from_slice(b",\"field\":");
    write_str(&column.name, out);
    out.push(b'}');
}

/// A column the shape does not name (it never should): typed by its value,
/// so the record still converts.
pub fn write_untyped_column(name: &str, value: Option<&Value>, out: &mut Vec<u8>) {
    let ty = match value {
        Some(Value::Bool(_)) => "boolean",
        Some(Value::Int(_)) => "int64",
        Some(Value::Float(_)) => "double",
        _ => "string",
    };
    out.push(b'{');
    write_type_member(ty, out);
    out.extend_from_slice(b"\"optional\":true,\"field\":");
    write_str(name, out);
    out.push(b'}');
}

/// A struct schema of `fields` (each already a field schema).
pub fn write_struct(
    fields: &[u8],
    optional: bool,
    name: &str,
    version: Option<u32>,
    field: Option<&str>,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(b"{\"type\":\"struct\",\"fields\":[");
    out.extend_from_slice(fields);
    out.extend_from_slice(if optional {
        b"],\"optional\":true,\"name\":"
    } else {
        b"],\"optional\":false,\"name\":"
    });
    write_str(name, out);
    if let Some(version) = version {
        out.extend_from_slice(b",\"version\":");
        out.extend_from_slice(version.to_string().as_bytes());
    }
    if let Some(field) = field {
        out.extend_from_slice(b",\"field\":");
        write_str(field, out);
    }
    out.push(b'}');
}

/// The `source` block's schema: the members every connector shares, the
/// source's own (its [`crate::SourceBlock`]), and cdc's `position` last
/// (optional, so a consumer of Debezium's schema ignores it; left out with
/// [`Format::omit_position`]).
pub fn write_source_schema(format: &Format, meta: &SourceMeta, out: &mut Vec<u8>) {
    out.extend_from_slice(
        concat!(
            "{\"type\":\"struct\",\"fields\":[",
            "{\"type\":\"string\",\"optional\":false,\"field\":\"version\"},",
            "{\"type\":\"string\",\"optional\":false,\"field\":\"connector\"},",
            "{\"type\":\"string\",\"optional\":false,\"field\":\"name\"},",
            "{\"type\":\"int64\",\"optional\":false,\"field\":\"ts_ms\"},",
            "{\"type\":\"string\",\"optional\":true,\"name\":\"io.debezium.data.Enum\",\"version\":1,",
            "\"parameters\":{\"allowed\":\"true,first,first_in_data_collection,last_in_data_collection,last,false,incremental\"},",
            "\"default\":\"false\",\"field\":\"snapshot\"},",
            "{\"type\":\"string\",\"optional\":false,\"field\":\"db\"}",
        )
        .as_bytes(),
    );
    meta.block.write_member_schemas(out);
    if !format.omit_position {
        out.extend_from_slice(b",{\"type\":\"string\",\"optional\":true,\"field\":\"position\"}");
    }
    out.extend_from_slice(b"],\"optional\":false,\"name\":");
    write_str(meta.block.schema_name(), out);
    out.extend_from_slice(b",\"version\":1,\"field\":\"source\"}");
}

/// A data event's `transaction` block.
pub const TRANSACTION_BLOCK_SCHEMA: &str = concat!(
    "{\"type\":\"struct\",\"fields\":[",
    "{\"type\":\"string\",\"optional\":false,\"field\":\"id\"},",
    "{\"type\":\"int64\",\"optional\":false,\"field\":\"total_order\"},",
    "{\"type\":\"int64\",\"optional\":false,\"field\":\"data_collection_order\"}",
    "],\"optional\":true,\"name\":\"event.block\",\"version\":1,\"field\":\"transaction\"}"
);

/// The envelope's members after `source` and `transaction`.
pub const ENVELOPE_TAIL_SCHEMA: &str = concat!(
    "{\"type\":\"string\",\"optional\":false,\"field\":\"op\"},",
    "{\"type\":\"int64\",\"optional\":true,\"field\":\"ts_ms\"},",
    "{\"type\":\"int64\",\"optional\":true,\"field\":\"ts_us\"},",
    "{\"type\":\"int64\",\"optional\":true,\"field\":\"ts_ns\"}"
);

/// A BEGIN or END record's key and value schemas (`<prefix>.transaction`).
pub const TRANSACTION_KEY_SCHEMA: &str = "{\"type\":\"struct\",\"fields\":[{\"type\":\"string\",\"optional\":false,\"field\":\"id\"}],\"optional\":false,\"name\":\"io.debezium.connector.common.TransactionMetadataKey\",\"version\":1}";
pub const TRANSACTION_VALUE_SCHEMA: &str = concat!(
    "{\"type\":\"struct\",\"fields\":[",
    "{\"type\":\"string\",\"optional\":false,\"field\":\"status\"},",
    "{\"type\":\"string\",\"optional\":false,\"field\":\"id\"},",
    "{\"type\":\"int64\",\"optional\":true,\"field\":\"event_count\"},",
    "{\"type\":\"array\",\"items\":{\"type\":\"struct\",\"fields\":[",
    "{\"type\":\"string\",\"optional\":false,\"field\":\"data_collection\"},",
    "{\"type\":\"int64\",\"optional\":false,\"field\":\"event_count\"}",
    "],\"optional\":true,\"name\":\"event.collection\",\"version\":1},\"optional\":true,\"field\":\"data_collections\"},",
    "{\"type\":\"int64\",\"optional\":false,\"field\":\"ts_ms\"}",
    "],\"optional\":false,\"name\":\"io.debezium.connector.common.TransactionMetadataValue\",\"version\":1}"
);

/// A heartbeat record's key and value schemas (`__debezium-heartbeat.<prefix>`).
pub const HEARTBEAT_KEY_SCHEMA: &str = "{\"type\":\"struct\",\"fields\":[{\"type\":\"string\",\"optional\":false,\"field\":\"serverName\"}],\"optional\":false,\"name\":\"io.debezium.connector.common.ServerNameKey\",\"version\":1}";
pub const HEARTBEAT_VALUE_SCHEMA: &str = "{\"type\":\"struct\",\"fields\":[{\"type\":\"int64\",\"optional\":false,\"field\":\"ts_ms\"}],\"optional\":false,\"name\":\"io.debezium.connector.common.Heartbeat\",\"version\":1}";

/// A logical message's key schema (`<prefix>.message`).
pub const MESSAGE_KEY_SCHEMA: &str = "{\"type\":\"struct\",\"fields\":[{\"type\":\"string\",\"optional\":true,\"field\":\"prefix\"}],\"optional\":false,\"name\":\"io.debezium.connector.postgresql.MessageKey\",\"version\":1}";

/// A logical message's value schema: its members in Debezium's order.
pub fn write_message_schema(format: &Format, meta: &SourceMeta, out: &mut Vec<u8>) {
    out.extend_from_slice(
        b"{\"type\":\"struct\",\"fields\":[{\"type\":\"string\",\"optional\":false,\"field\":\"op\"},{\"type\":\"int64\",\"optional\":true,\"field\":\"ts_ms\"},",
    );
    write_source_schema(format, meta, out);
    out.push(b',');
    out.extend_from_slice(TRANSACTION_BLOCK_SCHEMA.as_bytes());
    out.extend_from_slice(
        concat!(
            ",{\"type\":\"struct\",\"fields\":[",
            "{\"type\":\"string\",\"optional\":true,\"field\":\"prefix\"},",
            "{\"type\":\"bytes\",\"optional\":true,\"field\":\"content\"}",
            "],\"optional\":false,\"name\":\"io.debezium.connector.postgresql.Message\",\"version\":1,\"field\":\"message\"}",
            "],\"optional\":false,\"name\":\"io.debezium.connector.postgresql.MessageValue\",\"version\":1}"
        )
        .as_bytes(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(kind: ColumnKind) -> String {
        let mut out = Vec::new();
        let mut column = ColumnSchema::new("c", "t", kind);
        column.optional = false;
        write_column(&Format::default(), &column, &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    #[test]
    fn kinds_take_debeziums_default_logical_types() {
        assert_eq!(
            column(ColumnKind::Decimal {
                precision: Some(12),
                scale: Some(3)
            }),
            r#"{"type":"bytes","optional":false,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"3","connect.decimal.precision":"12"},"field":"c"}"#
        );
        assert_eq!(
            column(ColumnKind::Array(Box::new(ColumnKind::Date))),
            r#"{"type":"array","items":{"type":"int32","optional":true,"name":"io.debezium.time.Date","version":1},"optional":false,"field":"c"}"#
        );
        assert_eq!(
            column(ColumnKind::Time { precision: 3 }),
            r#"{"type":"int32","optional":false,"name":"io.debezium.time.Time","version":1,"field":"c"}"#
        );
        let schema: serde_json::Value = serde_json::from_str(&column(ColumnKind::Decimal {
            precision: None,
            scale: None,
        }))
        .unwrap_or_default();
        assert_eq!(schema["name"], "io.debezium.data.VariableScaleDecimal");
        assert_eq!(schema["fields"][1]["type"], "bytes");
    }

    fn table_schema() -> Arc<TableSchema> {
        let mut id = ColumnSchema::new("id", "integer", ColumnKind::Int32);
        id.optional = false;
        id.default = Some(Value::Int(0));
        Arc::new(TableSchema {
            table: Arc::new(cdc_signal::TableRef::new("public", "t")),
            version: 1,
            columns: vec![
                id,
                ColumnSchema::new("b", "bytea", ColumnKind::Bytes),
                ColumnSchema::new("n", "text", ColumnKind::String),
            ],
            key: vec!["id".into()],
        })
    }

    fn event(schema: Option<Arc<TableSchema>>, after: Row) -> Event {
        use crate::event::{Position, SnapshotFlag, SourceInfo};
        Event {
            update: None,
            schema,
            op: Op::Update,
            table: Some(Arc::new(cdc_signal::TableRef::new("public", "t"))),
            key: Some(Row::new(
                Arc::from(vec!["id".to_string()]),
                vec![Value::Int(1)],
            )),
            before: None,
            after: Some(after),
            source: SourceInfo {
                session: None,
                meta: Arc::new(SourceMeta {
                    connector: "postgresql",
                    name: "dbz".into(),
                    db: "app".into(),
                    block: &crate::PLAIN_BLOCK,
                }),
                position: Position::from_u64(7),
                offset: Some(7),
                tx_id: Some(3),
                ts_ms: 1,
                ts_us: 1000,
                last_commit: None,
                snapshot: SnapshotFlag::No,
            },
            message: None,
            transaction: None,
        }
    }

    fn written(event: &Event) -> (serde_json::Value, serde_json::Value) {
        let mut writer = crate::envelope::EnvelopeWriter::with_format(Format::debezium());
        let (mut key, mut value) = (Vec::new(), Vec::new());
        if let Some(k) = &event.key {
            writer.write_key(event, k, &mut key);
        }
        writer.write_value(event, 5, &mut value);
        (
            serde_json::from_slice(&key).unwrap_or_default(),
            serde_json::from_slice(&value).unwrap_or_default(),
        )
    }

    #[test]
    fn records_carry_schema_and_payload() {
        let columns: Arc<[String]> = Arc::from(vec!["id".to_string(), "b".into(), "n".into()]);
        let after = Row::new(
            columns,
            vec![Value::Int(1), Value::Unchanged, Value::Text("x".into())],
        );
        let (key, value) = written(&event(Some(table_schema()), after));
        assert_eq!(
            key["schema"],
            serde_json::json!({"type": "struct", "fields": [
                {"type": "int32", "optional": false, "default": 0, "field": "id"}],
                "optional": false, "name": "dbz.public.t.Key"})
        );
        assert_eq!(key["payload"], serde_json::json!({"id": 1}));
        let schema = &value["schema"];
        assert_eq!(schema["name"], "dbz.public.t.Envelope");
        assert_eq!(schema["version"], 2);
        let members: Vec<&str> = schema["fields"]
            .as_array()
            .map(|f| f.iter().filter_map(|m| m["field"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(
            members,
            [
                "before",
                "after",
                "source",
                "transaction",
                "op",
                "ts_ms",
                "ts_us",
                "ts_ns"
            ]
        );
        assert_eq!(schema["fields"][1]["name"], "dbz.public.t.Value");
        assert_eq!(schema["fields"][1]["fields"][1]["type"], "bytes");
        let payload = &value["payload"];
        assert_eq!(payload["op"], "u");
        assert_eq!(payload["transaction"], serde_json::Value::Null);
        // Unchanged TOAST in a bytes column: the placeholder's bytes.
        assert_eq!(
            payload["after"]["b"],
            "X19kZWJleml1bV91bmF2YWlsYWJsZV92YWx1ZQ=="
        );
        assert_eq!(payload["after"]["n"], "x");
    }

    #[test]
    fn the_schema_follows_the_rows_columns() {
        // A column filter dropped `b`: the schema drops it too.
        let columns: Arc<[String]> = Arc::from(vec!["id".to_string(), "n".into()]);
        let after = Row::new(columns, vec![Value::Int(1), Value::Null]);
        let (_, value) = written(&event(Some(table_schema()), after));
        let fields = &value["schema"]["fields"][1]["fields"];
        assert_eq!(fields.as_array().map(Vec::len), Some(2));
        assert_eq!(fields[1]["field"], "n");
        // A row of no known shape still converts: typed by its values.
        let columns: Arc<[String]> = Arc::from(vec!["id".to_string()]);
        let (_, value) = written(&event(None, Row::new(columns, vec![Value::Int(1)])));
        assert_eq!(value["schema"]["fields"][1]["fields"][0]["type"], "int64");
    }

    #[test]
    fn fixed_schemas_are_json() {
        let mut message = Vec::new();
        let meta = SourceMeta {
            connector: "postgresql",
            name: "cdc".into(),
            db: "app".into(),
            block: &crate::PLAIN_BLOCK,
        };
        write_message_schema(&Format::default(), &meta, &mut message);
        for text in [
            TRANSACTION_KEY_SCHEMA.as_bytes(),
            TRANSACTION_VALUE_SCHEMA.as_bytes(),
            HEARTBEAT_KEY_SCHEMA.as_bytes(),
            HEARTBEAT_VALUE_SCHEMA.as_bytes(),
            MESSAGE_KEY_SCHEMA.as_bytes(),
            &message,
        ] {
            assert!(serde_json::from_slice::<serde_json::Value>(text).is_ok());
        }
    }
}
