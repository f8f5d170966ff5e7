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

/// SQL text of one table's chunk queries, built once from the catalog.
pub(crate) struct TableSql {
    pub(crate) info: TableInfo,
    pub(crate) key_oids: Vec<u32>,
    /// Positions of the key columns among all columns.
    pub(crate) key_indexes: Vec<usize>,
    pub(crate) column_oids: Vec<u32>,
    /// Per column: selected in binary rather than as text.
    pub(crate) column_binary: Vec<bool>,
    pub(crate) key_names: Arc<[String]>,
    pub(crate) column_names: Arc<[String]>,
}

impl TableSql {
    pub(crate) fn new(info: TableInfo) -> Option<Self> {
        let key_oids = info
            .key
            .iter()
            .map(|k| info.column(k).map(|c| c.value_oid))
            .collect::<Option<Vec<_>>>()?;
        if key_oids.is_empty() {
            return None;
        }
        let key_indexes = info
            .key
            .iter()
            .map(|k| info.columns.iter().position(|c| &c.name == k))
            .collect::<Option<Vec<_>>>()?;
        let column_binary = info
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                // Bounds for the next chunk are read from the last row's key
                // as text, so keys come in binary only where that is text.
                if key_indexes.contains(&i) {
                    binary_is_text(c.value_oid)
                } else {
                    has_binary_decoder(c.value_oid)
                }
            })
            .collect();
        Some(TableSql {
            key_oids,
            key_indexes,
            // Domains by their base type: a row description names the base
            // type of a domain column, and the log is converted the same way.
            column_oids: info.columns.iter().map(|c| c.value_oid).collect(),
            column_binary,
            key_names: Arc::from(info.key.clone()),
            column_names: Arc::from(
                info.columns
                    .iter()
                    .map(|c| c.name.clone())
                    .collect::<Vec<_>>(),
            ),
            info,
        })
    }

    /// Key columns qualified by the `src` alias. Unqualified, ORDER BY would
    /// pick the `::text` output columns of the same name and sort as text.
    fn key_list(&self) -> String {
        self.info
            .key
            .iter()
            .map(|k| format!("src.{}", quote_ident(k)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `($1::text::int4, $2::text::uuid)`: parameters travel as text and are
    /// cast to the key's type, so the comparison uses the key's own order.
    fn key_params(&self, first: usize) -> String {
        let casts: Vec<String> = self
            .info
            .key
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

    pub(crate) fn chunk_sql(&self, after: bool, upto: bool, filter: Option<&str>) -> String {
        let n = self.info.key.len();
        let keys = format!("({})", self.key_list());
        let mut conditions = Vec::new();
        if after {
            conditions.push(format!("{keys} > {}", self.key_params(1)));
        }
        if upto {
            let first = if after { n + 1 } else { 1 };
            conditions.push(format!("{keys} <= {}", self.key_params(first)));
        }
        if let Some(filter) = filter {
            conditions.push(format!("({filter})"));
        }
        let limit_param = n * usize::from(after) + n * usize::from(upto) + 1;
        let where_clause = if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        };
        format!(
            "SELECT {} FROM {} AS src{where_clause} ORDER BY {} LIMIT ${limit_param}::text::bigint",
            self.select_list(),
            quote_table(&self.info.table),
            self.key_list()
        )
    }

    pub(crate) fn max_key_sql(&self, filter: Option<&str>) -> String {
        let keys: Vec<String> = self
            .key_indexes
            .iter()
            .map(|&i| self.output_column(i))
            .collect();
        let order: Vec<String> = self
            .info
            .key
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
