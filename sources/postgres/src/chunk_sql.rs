//! SQL of a table's chunk queries, built once from the catalog: which
//! columns come in binary, which as their output function's text, and the
//! key-ordered, key-bounded select. Identifiers come from the catalog and are
//! quoted; values travel as parameters. The only user text that reaches the
//! SQL is a snapshot filter, and [`check_filter`] keeps it inside its
//! parentheses.

use std::sync::Arc;

use crate::binary::{binary_is_text, has_binary_decoder};
use crate::catalog::{quote_ident, quote_table, TableInfo};
use crate::types::oid;

/// The order a table's chunks follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ChunkOrder {
    /// Its key (primary key or replica identity index): unique, so a chunk
    /// ends after exactly `limit` rows.
    Key,
    /// A surrogate key from the signal: any `NOT NULL` column. Not known to
    /// be unique, so a chunk takes every row tied with its last one.
    Surrogate(String),
    /// No key and no surrogate: ranges of heap pages, by `ctid`.
    Physical,
}

/// SQL text of one table's chunk queries, built from the catalog for one
/// chunk order.
pub(crate) struct TableSql {
    pub(crate) info: TableInfo,
    pub(crate) order: ChunkOrder,
    /// The columns chunks are ordered and bounded by (none for `Physical`).
    order_columns: Vec<String>,
    /// Positions of the order columns among all columns: the next chunk's
    /// bounds are read from the last row.
    pub(crate) order_indexes: Vec<usize>,
    /// Positions of the key columns among all columns: what a chunk row is
    /// matched to log events by (none for a table without a key).
    pub(crate) key_indexes: Vec<usize>,
    pub(crate) column_oids: Vec<u32>,
    /// Per column: selected in binary rather than as text.
    pub(crate) column_binary: Vec<bool>,
    pub(crate) key_names: Arc<[String]>,
    pub(crate) column_names: Arc<[String]>,
}

impl TableSql {
    /// In key order, or physical order for a table without a key; checked
    /// by [`TableSql::ordered`] before it selects any other order.
    pub(crate) fn new(info: TableInfo) -> Self {
        let order = if info.key.is_empty() {
            ChunkOrder::Physical
        } else {
            ChunkOrder::Key
        };
        let columns = info.key.clone();
        Self::build(info, order, columns)
    }

    /// In `order`, once it passed the catalog's checks; else why not, in one
    /// line naming the culprit and the fix.
    pub(crate) fn ordered(info: TableInfo, order: ChunkOrder) -> Result<Self, String> {
        let table = &info.table;
        let order_columns = match &order {
            ChunkOrder::Key if info.key.is_empty() => {
                let reason = format!("{table} has no primary key or replica identity index");
                return Err(reason);
            }
            ChunkOrder::Key => info.key.clone(),
            ChunkOrder::Surrogate(column) => {
                let Some(found) = info.column(column) else {
                    let names: Vec<&str> = info.columns.iter().map(|c| c.name.as_str()).collect();
                    let reason = format!(
                        "surrogate key {column:?} is not a column of {table} (it has {}): name one of them",
                        names.join(", ")
                    );
                    return Err(reason);
                };
                if !found.not_null {
                    let reason = format!(
                        "surrogate key {column:?} of {table} allows NULL, and rows with a null in it \
                         would never be read: name a NOT NULL column, or leave surrogate-key out"
                    );
                    return Err(reason);
                }
                vec![column.clone()]
            }
            ChunkOrder::Physical if info.partitioned => {
                let reason = format!(
                    "{table} has no key and is partitioned, so it has no single physical order \
                     to read it in: name a NOT NULL column as \"surrogate-key\" in the signal, \
                     or give the table a primary key"
                );
                return Err(reason);
            }
            ChunkOrder::Physical => Vec::new(),
        };
        Ok(Self::build(info, order, order_columns))
    }

    fn build(info: TableInfo, order: ChunkOrder, order_columns: Vec<String>) -> Self {
        let position = |name: &String| info.columns.iter().position(|c| &c.name == name);
        let order_indexes: Vec<usize> = order_columns.iter().filter_map(position).collect();
        let key_indexes: Vec<usize> = info.key.iter().filter_map(position).collect();
        let column_binary = info
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                // Bounds for the next chunk are read from the last row's
                // order columns as text, so those come in binary only where
                // that is text.
                if order_indexes.contains(&i) {
                    binary_is_text(c.value_oid)
                } else {
                    has_binary_decoder(c.value_oid)
                }
            })
            .collect();
        TableSql {
            order,
            order_columns,
            order_indexes,
            // Domains by their base type: a row description names the base
            // type of a domain column, and the log is converted the same way.
            column_oids: info.columns.iter().map(|c| c.value_oid).collect(),
            column_binary,
            key_names: Arc::from(
                key_indexes
                    .iter()
                    .filter_map(|&i| info.columns.get(i).map(|c| c.name.clone()))
                    .collect::<Vec<_>>(),
            ),
            key_indexes,
            column_names: Arc::from(
                info.columns
                    .iter()
                    .map(|c| c.name.clone())
                    .collect::<Vec<_>>(),
            ),
            info,
        }
    }

    /// Order columns qualified by the `src` alias. Unqualified, ORDER BY
    /// would pick the `::text` output columns of the same name and sort as
    /// text.
    fn order_list(&self) -> String {
        self.order_columns
            .iter()
            .map(|k| format!("src.{}", quote_ident(k)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `($1::text::int4, $2::text::uuid)`: parameters travel as text and are
    /// cast to the order columns' types, so the comparison uses their own
    /// order.
    fn order_params(&self, first: usize) -> String {
        let casts: Vec<String> = self
            .order_columns
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let type_sql = self
                    .info
                    .column(k)
                    .map(|c| c.type_sql.as_str())
                    .unwrap_or("text");
                format!("${}::text::{type_sql}", first + i)
            })
            .collect();
        format!("({})", casts.join(", "))
    }

    /// A column as selected: as itself (binary), or as the text of its
    /// output function, which is what the log carries.
    fn output_column(&self, index: usize) -> String {
        let name = self.column_names.get(index).map_or("", String::as_str);
        let column = format!("src.{}", quote_ident(name));
        if self.column_binary.get(index) == Some(&true) {
            return column;
        }
        let oid = self.column_oids.get(index).copied().unwrap_or(0);
        // Money as the exact decimal, in `lc_monetary`'s fraction digits,
        // which is what the log's locale text of it is turned into
        // ([`money_to_decimal`](crate::types::money_to_decimal)). Text
        // rather than binary (an int8 of minor units): the cast scales it
        // by the server's own setting, not one read at start.
        match oid {
            oid::MONEY => return format!("({column})::pg_catalog.numeric::text"),
            oid::MONEY_ARRAY => return format!("({column})::pg_catalog.numeric[]::text"),
            _ => {}
        }
        match output_function(oid) {
            Some(function) => format!("{function}({column})::text"),
            None => format!("{column}::text"),
        }
    }

    fn select_list(&self) -> String {
        (0..self.column_names.len())
            .map(|i| self.output_column(i))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The chunk select. Key and surrogate orders: after the last chunk's
    /// end (`after`), up to the table's maximum at start (`upto`), the first
    /// `limit` rows in order, with ties for a surrogate key (a chunk never
    /// ends between two rows of one value, or the next one, starting after
    /// that value, would skip the rest). Physical order: the rows of heap
    /// pages `[$1, $2)`, read by a TID range scan; `after` and `upto` do not
    /// apply.
    pub(crate) fn chunk_sql(&self, after: bool, upto: bool, filter: Option<&str>) -> String {
        let table = quote_table(&self.info.table);
        if self.order == ChunkOrder::Physical {
            let filter = filter.map(|f| format!(" AND ({f})")).unwrap_or_default();
            return format!(
                "SELECT {} FROM {table} AS src \
                 WHERE src.ctid >= $1::text::pg_catalog.tid AND src.ctid < $2::text::pg_catalog.tid{filter}",
                self.select_list(),
            );
        }
        let n = self.order_columns.len();
        let keys = format!("({})", self.order_list());
        let mut conditions = Vec::new();
        if after {
            conditions.push(format!("{keys} > {}", self.order_params(1)));
        }
        if upto {
            let first = if after { n + 1 } else { 1 };
            conditions.push(format!("{keys} <= {}", self.order_params(first)));
        }
        if let Some(filter) = filter {
            conditions.push(format!("({filter})"));
        }
        let where_clause = if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        };
        let limit_param = n * usize::from(after) + n * usize::from(upto) + 1;
        let limit = match self.order {
            ChunkOrder::Surrogate(_) => {
                format!("FETCH FIRST (${limit_param}::text::bigint) ROWS WITH TIES")
            }
            _ => format!("LIMIT ${limit_param}::text::bigint"),
        };
        format!(
            "SELECT {} FROM {table} AS src{where_clause} ORDER BY {} {limit}",
            self.select_list(),
            self.order_list()
        )
    }

    /// The table's largest value of the order columns at start (rows past
    /// it arrive through the log); for physical order, its size in pages.
    pub(crate) fn max_key_sql(&self, filter: Option<&str>) -> String {
        if self.order == ChunkOrder::Physical {
            // Rows on pages added later were written later: the log has them.
            return "SELECT (pg_catalog.pg_relation_size($1::oid::regclass) \
                      / pg_catalog.current_setting('block_size')::bigint)::text"
                .to_owned();
        }
        let keys: Vec<String> = self
            .order_indexes
            .iter()
            .map(|&i| self.output_column(i))
            .collect();
        let order: Vec<String> = self
            .order_columns
            .iter()
            .map(|k| format!("src.{} DESC", quote_ident(k)))
            .collect();
        let where_clause = filter.map(|f| format!(" WHERE ({f})")).unwrap_or_default();
        format!(
            "SELECT {} FROM {} AS src{where_clause} ORDER BY {} LIMIT 1",
            keys.join(", "),
            quote_table(&self.info.table),
            order.join(", ")
        )
    }
}

/// Output functions of types whose cast to text is not their output:
/// `'10.0.0.1'::inet::text` is `10.0.0.1/32`, while the log has `10.0.0.1`.
/// The functions are strict, so a null stays null.
fn output_function(type_oid: u32) -> Option<&'static str> {
    match type_oid {
        oid::INET => Some("pg_catalog.inet_out"),
        oid::CIDR => Some("pg_catalog.cidr_out"),
        oid::CHAR => Some("pg_catalog.charout"),
        _ => None,
    }
}

/// Reject filters that could reach outside their parentheses: they must be
/// one balanced expression without statement separators or comments. The
/// server then parses them as part of the chunk query.
pub(crate) fn check_filter(filter: &str) -> Result<(), String> {
    let mut depth: i32 = 0;
    let mut chars = filter.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                // Quoted text: a doubled quote is an escaped quote.
                loop {
                    match chars.next() {
                        Some(q) if q == c => {
                            if chars.peek() == Some(&c) {
                                chars.next();
                            } else {
                                break;
                            }
                        }
                        Some(_) => {}
                        None => return Err("unterminated quote in filter".into()),
                    }
                }
            }
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err("unbalanced ')' in filter".into());
                }
            }
            ';' => return Err("';' is not allowed in a filter".into()),
            '$' => return Err("'$' (parameters, dollar quotes) is not allowed in a filter".into()),
            '-' if chars.peek() == Some(&'-') => {
                return Err("comments are not allowed in a filter".into())
            }
            '/' if chars.peek() == Some(&'*') => {
                return Err("comments are not allowed in a filter".into())
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("unbalanced '(' in filter".into());
    }
    if filter.trim().is_empty() {
        return Err("empty filter".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_stay_inside_their_parentheses() {
        assert!(check_filter("status = 'open' AND (amount > 10)").is_ok());
        assert!(check_filter("name = 'it''s (fine'").is_ok());
        assert!(check_filter("\"Odd)Name\" = 1").is_ok());
        assert!(check_filter("true) OR (true").is_err());
        assert!(check_filter("1 = 1; DROP TABLE t").is_err());
        assert!(check_filter("x = 1 -- comment").is_err());
        assert!(check_filter("x = 1 /* c */").is_err());
        assert!(check_filter("x = 'open").is_err());
        assert!(check_filter("(x = 1").is_err());
        assert!(check_filter("x = $1").is_err());
        assert!(check_filter("  ").is_err());
    }
}
