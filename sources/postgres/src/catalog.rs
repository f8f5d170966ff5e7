//! What the catalog says about captured tables, and SQL identifier quoting.
//!
//! Every identifier that reaches SQL text comes from here: looked up in the
//! catalog first (so it names something that exists), then quoted.

use cdc_engine::TableRef;
use tokio_postgres::Client;

use crate::connect::describe_pg_error;

/// Quote an identifier for SQL text: always double-quoted, quotes doubled.
pub fn quote_ident(ident: &str) -> String {
    let mut out = String::with_capacity(ident.len() + 2);
    out.push('"');
    for c in ident.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// `"schema"."table"`.
pub fn quote_table(table: &TableRef) -> String {
    format!(
        "{}.{}",
        quote_ident(&table.schema),
        quote_ident(&table.name)
    )
}

/// Slot names: PostgreSQL allows lower-case letters, digits and underscores.
pub fn valid_slot_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Publication names travel inside a quoted option of START_REPLICATION, so
/// we accept plain identifiers only.
pub fn valid_publication_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnInfo {
    pub name: String,
    pub type_oid: u32,
    /// `format_type(atttypid, atttypmod)`: already quoted where needed.
    pub type_sql: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableInfo {
    pub oid: u32,
    pub table: TableRef,
    pub columns: Vec<ColumnInfo>,
    /// Primary-key columns in key order; empty when the table has none.
    pub primary_key: Vec<String>,
    /// `d`efault, `n`othing, `f`ull, `i`ndex.
    pub replica_identity: char,
}

impl TableInfo {
    pub fn column(&self, name: &str) -> Option<&ColumnInfo> {
        self.columns.iter().find(|c| c.name == name)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("table {0} does not exist")]
    NoSuchTable(TableRef),
    #[error("{0} is not a table (views and other relations cannot be captured)")]
    NotATable(TableRef),
    #[error("querying the catalog: {0}")]
    Query(String),
}

impl From<tokio_postgres::Error> for CatalogError {
    fn from(err: tokio_postgres::Error) -> Self {
        CatalogError::Query(describe_pg_error(&err))
    }
}

/// Look a table up by name (exact, case-sensitive, as the catalog spells it).
pub async fn table_info(client: &Client, table: &TableRef) -> Result<TableInfo, CatalogError> {
    let row = client
        .query_opt(
            "SELECT c.oid, c.relkind::text, c.relreplident::text \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = $2",
            &[&table.schema, &table.name],
        )
        .await?
        .ok_or_else(|| CatalogError::NoSuchTable(table.clone()))?;
    let oid: u32 = row.get(0);
    let kind: String = row.get(1);
    let replident: String = row.get(2);
    if kind != "r" && kind != "p" {
        return Err(CatalogError::NotATable(table.clone()));
    }
    let columns = client
        .query(
            "SELECT a.attname::text, a.atttypid, format_type(a.atttypid, a.atttypmod) \
             FROM pg_attribute a \
             WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attnum",
            &[&oid],
        )
        .await?
        .into_iter()
        .map(|r| ColumnInfo {
            name: r.get(0),
            type_oid: r.get(1),
            type_sql: r.get(2),
        })
        .collect();
    let primary_key = client
        .query(
            "SELECT a.attname::text \
             FROM pg_index i \
             CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
             WHERE i.indrelid = $1 AND i.indisprimary \
             ORDER BY k.ord",
            &[&oid],
        )
        .await?
        .into_iter()
        .map(|r| r.get::<_, String>(0))
        .collect();
    Ok(TableInfo {
        oid,
        table: table.clone(),
        columns,
        primary_key,
        replica_identity: replident.chars().next().unwrap_or('d'),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_doubles_quotes() {
        assert_eq!(quote_ident("a"), "\"a\"");
        assert_eq!(quote_ident("Or\"der"), "\"Or\"\"der\"");
        assert_eq!(
            quote_table(&TableRef::new("my schema", "t")),
            "\"my schema\".\"t\""
        );
    }

    #[test]
    fn slot_and_publication_names() {
        assert!(valid_slot_name("cdc_1"));
        assert!(!valid_slot_name("Cdc"));
        assert!(!valid_slot_name("a\"; drop"));
        assert!(valid_publication_name("Cdc_pub"));
        assert!(!valid_publication_name("1pub"));
        assert!(!valid_publication_name("p'ub"));
    }
}
