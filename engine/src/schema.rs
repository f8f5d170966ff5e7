//! A table's shape as the log describes it: columns, their types, the key.
//! A change of shape is an item of the log ([`crate::LogItem::Schema`]), so
//! everything downstream meets it in log order: a snapshot window open on
//! the table is discarded, a running snapshot of it starts over in the new
//! shape (docs/architecture.md, "Schema changes").

use std::fmt::Write as _;
use std::sync::Arc;

use cdc_signal::TableRef;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnSchema {
    pub name: String,
    /// The type as SQL spells it (`numeric(10,2)`, `integer`).
    pub type_name: String,
}

/// One version of a table's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
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

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(columns: &[(&str, &str)], key: &[&str]) -> TableSchema {
        TableSchema {
            table: Arc::new(TableRef::new("public", "t")),
            version: 1,
            columns: columns
                .iter()
                .map(|(n, t)| ColumnSchema {
                    name: n.to_string(),
                    type_name: t.to_string(),
                })
                .collect(),
            key: key.iter().map(|k| k.to_string()).collect(),
        }
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
