//! A table's shape as the log describes it: columns, their types, the key.
//! A change of shape is an item of the log ([`crate::LogItem::Schema`]), so
//! everything downstream meets it in log order: a snapshot window open on
//! the table is discarded, a running snapshot of it starts over in the new
//! shape (docs/architecture.md, "Schema changes").

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use cdc_signal::TableRef;

use crate::event::Event;
use crate::pipeline::Stage;
use crate::source::LogItem;
use crate::value::Value;

#[derive(Debug, Clone, PartialEq)]
pub struct ColumnSchema {
    pub name: String,
    /// The type as SQL spells it (`numeric(10,2)`, `integer`).
    pub type_name: String,
    /// What its values are, whatever the source: what a Connect schema
    /// declares for the column (docs/architecture.md, "Connect schemas").
    pub kind: ColumnKind,
    /// Whether it may hold null (Connect's `optional`).
    pub optional: bool,
    /// Its default as a value of the column, when the source can tell one
    /// (Connect's `default`).
    pub default: Option<Value>,
}

impl ColumnSchema {
    /// A nullable column without a default.
    pub fn new(name: impl Into<String>, type_name: impl Into<String>, kind: ColumnKind) -> Self {
        ColumnSchema {
            name: name.into(),
            type_name: type_name.into(),
            kind,
            optional: true,
            default: None,
        }
    }
}

/// A column's logical type, source-neutral: each source maps its own types
/// onto these, and the encoder maps these onto Connect's (in the format's
/// modes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnKind {
    Boolean,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    /// Text, and every type written as its text (network addresses,
    /// unknown types).
    String,
    /// A type written as its text that Connect schemas name
    /// (`io.debezium.data.Ltree`, `io.debezium.data.Tsvector`).
    NamedString(&'static str),
    /// An exact decimal; `scale` `None`: declared without one.
    Decimal {
        precision: Option<u32>,
        scale: Option<u32>,
    },
    /// A currency amount, an exact decimal of the format's money scale.
    Money,
    Date,
    /// `precision`: fraction digits of the seconds.
    Time {
        precision: u8,
    },
    TimeTz,
    Timestamp {
        precision: u8,
    },
    TimestampTz,
    Interval,
    Bytes,
    /// A bit string of `length` bits (the longest a varying one may be
    /// when it has no limit).
    Bits {
        length: u32,
    },
    Json,
    Xml,
    Uuid,
    /// One of `allowed`, in declaration order.
    Enum {
        allowed: Vec<String>,
    },
    /// A geometric point, PostgreSQL's `(x,y)` text: Debezium's
    /// `io.debezium.data.geometry.Point` struct in its modes.
    Point,
    /// A text map, PostgreSQL's `"k"=>"v"` text: a JSON object as a string
    /// (`io.debezium.data.Json`, Debezium's `hstore.handling.mode=json`) in
    /// its modes.
    HStore,
    /// Elements of the kind; each may be null.
    Array(Box<ColumnKind>),
}

/// One version of a table's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct TableSchema {
    pub table: Arc<TableRef>,
    /// Starts at 1 with the shape the engine started with; +1 per change.
    pub version: u64,
    pub columns: Vec<ColumnSchema>,
    /// Key columns in key order; empty for a table without a key.
    pub key: Vec<String>,
}

impl TableSchema {
    /// Whether `other` has the same columns, types and key.
    pub fn same_shape(&self, other: &TableSchema) -> bool {
        self.columns == other.columns && self.key == other.key
    }

    /// What changed from `self` to `new`, in one line for the log:
    /// `+c numeric(10,2), -a, b: integer → bigint, key (id) → (code)`. A
    /// column that changed name in place, keeping its type, is shown as a
    /// rename (the log cannot tell a rename from a drop and an add).
    pub fn describe_change(&self, new: &TableSchema) -> String {
        let mut parts: Vec<String> = Vec::new();
        let old_names: Vec<&str> = self.columns.iter().map(|c| c.name.as_str()).collect();
        let new_names: Vec<&str> = new.columns.iter().map(|c| c.name.as_str()).collect();
        let renamed: Vec<(usize, &ColumnSchema, &ColumnSchema)> =
            if self.columns.len() == new.columns.len() {
                self.columns
                    .iter()
                    .zip(&new.columns)
                    .enumerate()
                    .filter(|(_, (o, n))| {
                        o.name != n.name
                            && o.type_name == n.type_name
                            && !new_names.contains(&o.name.as_str())
                            && !old_names.contains(&n.name.as_str())
                    })
                    .map(|(i, (o, n))| (i, o, n))
                    .collect()
            } else {
                Vec::new()
            };
        let is_renamed_old = |name: &str| renamed.iter().any(|(_, o, _)| o.name == name);
        let is_renamed_new = |name: &str| renamed.iter().any(|(_, _, n)| n.name == name);
        for (_, old, new) in &renamed {
            parts.push(format!("{} renamed to {}", old.name, new.name));
        }
        for column in &new.columns {
            match self.columns.iter().find(|c| c.name == column.name) {
                None if !is_renamed_new(&column.name) => {
                    parts.push(format!("+{} {}", column.name, column.type_name))
                }
                Some(old) if old.type_name != column.type_name => parts.push(format!(
                    "{}: {} → {}",
                    column.name, old.type_name, column.type_name
                )),
                _ => {}
            }
        }
        for column in &self.columns {
            if !new_names.contains(&column.name.as_str()) && !is_renamed_old(&column.name) {
                parts.push(format!("-{}", column.name));
            }
        }
        if self.key != new.key {
            parts.push(format!(
                "key ({}) → ({})",
                self.key.join(", "),
                new.key.join(", ")
            ));
        }
        if parts.is_empty() {
            // Same names and types: the order of columns changed.
            let mut order = String::from("column order ");
            let _ = write!(order, "({})", new_names.join(", "));
            parts.push(order);
        }
        format!("{}: {}", new.table, parts.join(", "))
    }
}

/// Each captured table's newest shape: the ones at start, then each
/// [`LogItem::Schema`] as it passes. A shape change is an item of the log
/// and rows of a new shape come after it (chunk rows too: a window across a
/// change is discarded), so the newest shape seen is the rows' shape.
#[derive(Debug, Default)]
pub struct TableShapes(HashMap<TableRef, Arc<TableSchema>>);

impl TableShapes {
    pub fn new(schemas: Vec<Arc<TableSchema>>) -> Self {
        TableShapes(
            schemas
                .into_iter()
                .map(|s| ((*s.table).clone(), s))
                .collect(),
        )
    }

    /// Takes the shape `item` brings, if any: the table whose shape changed.
    pub fn observe(&mut self, item: &LogItem) -> Option<TableRef> {
        let LogItem::Schema(schema) = item else {
            return None;
        };
        let table = (*schema.table).clone();
        self.0.insert(table.clone(), schema.clone());
        Some(table)
    }

    pub fn get(&self, table: &TableRef) -> Option<&Arc<TableSchema>> {
        self.0.get(table)
    }
}

/// Gives each row event the shape its table has at that point of the log,
/// for the encoder's Connect schemas.
#[derive(Debug, Default)]
pub struct SchemaStamp {
    shapes: TableShapes,
}

impl SchemaStamp {
    /// `schemas`: the captured tables' shapes at start.
    pub fn new(schemas: Vec<Arc<TableSchema>>) -> Self {
        SchemaStamp {
            shapes: TableShapes::new(schemas),
        }
    }
}

impl Stage for SchemaStamp {
    fn before(&mut self, item: &LogItem) {
        self.shapes.observe(item);
    }

    fn after(&mut self, start: usize, out: &mut Vec<Event>) {
        for event in out.iter_mut().skip(start) {
            if event.schema.is_some() {
                continue;
            }
            if let Some(table) = event.table.as_deref() {
                event.schema = self.shapes.get(table).cloned();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(columns: &[(&str, &str)], key: &[&str]) -> TableSchema {
        TableSchema {
            table: Arc::new(TableRef::new("public", "t")),
            version: 1,
            columns: columns
                .iter()
                .map(|(n, t)| ColumnSchema::new(*n, *t, ColumnKind::String))
                .collect(),
            key: key.iter().map(|k| k.to_string()).collect(),
        }
    }

    #[test]
    fn rows_get_their_tables_newest_shape() {
        use crate::event::{Op, Position, SourceInfo, SourceMeta};
        use crate::pipeline::{Passthrough, Processor, Staged};
        let v1 = Arc::new(schema(&[("id", "integer")], &["id"]));
        let mut v2 = schema(&[("id", "bigint")], &["id"]);
        v2.version = 2;
        let v2 = Arc::new(v2);
        let event = || Event {
            update: None,
            schema: None,
            op: Op::Create,
            table: Some(Arc::new(TableRef::new("public", "t"))),
            key: None,
            before: None,
            after: None,
            source: SourceInfo::new(
                Arc::new(SourceMeta {
                    connector: "postgresql",
                    name: "cdc".into(),
                    db: "app".into(),
                    block: &crate::PLAIN_BLOCK,
                }),
                Position::from_u64(1),
            ),
            message: None,
            transaction: None,
        };
        let mut stamped = Staged::new(Passthrough, SchemaStamp::new(vec![v1.clone()]));
        let mut out = Vec::new();
        stamped.process(LogItem::Event(event()), &mut out);
        stamped.process(LogItem::Schema(v2.clone()), &mut out);
        stamped.process(LogItem::Event(event()), &mut out);
        let versions: Vec<u64> = out
            .iter()
            .filter_map(|e| e.schema.as_ref().map(|s| s.version))
            .collect();
        assert_eq!(versions, [1, 2]);
    }

    #[test]
    fn changes_are_described_in_one_line() {
        let old = schema(&[("id", "integer"), ("a", "text")], &["id"]);
        let new = schema(&[("id", "integer"), ("c", "numeric(10,2)")], &["id"]);
        // Same position, different type: a drop and an add.
        assert_eq!(old.describe_change(&new), "public.t: +c numeric(10,2), -a");
        let typed = schema(&[("id", "bigint"), ("a", "text")], &["id"]);
        assert_eq!(
            old.describe_change(&typed),
            "public.t: id: integer → bigint"
        );
        let renamed = schema(&[("id", "integer"), ("b", "text")], &["id"]);
        assert_eq!(old.describe_change(&renamed), "public.t: a renamed to b");
        let rekeyed = schema(&[("id", "integer"), ("a", "text")], &["a"]);
        assert_eq!(old.describe_change(&rekeyed), "public.t: key (id) → (a)");
        assert!(!old.same_shape(&rekeyed));
        assert!(old.same_shape(&schema(&[("id", "integer"), ("a", "text")], &["id"])));
    }
}
