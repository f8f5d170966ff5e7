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
    pub type_mod: i32,
    /// The type values of this column are converted by: the base type of a
    /// domain (`posint` → `int4`), `text[]` for an array of enums, and the
    /// base type's array for an array of domains; else `type_oid`. The log
    /// and chunk selects then type a domain's values as its base's.
    pub value_oid: u32,
    /// `NOT NULL`: a surrogate key must be, or rows with a null in it would
    /// never fall in a chunk.
    pub not_null: bool,
    /// The labels of an enum type, in their order.
    pub enum_labels: Option<Vec<String>>,
    /// The default's expression as `pg_get_expr` prints it (constants in
    /// the session's styles, which are the log's).
    pub default_expr: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableInfo {
    pub oid: u32,
    pub table: TableRef,
    pub columns: Vec<ColumnInfo>,
    /// The key of events and the order of chunks, in key order: the
    /// primary key's columns, else those of the `REPLICA IDENTITY USING
    /// INDEX` index; empty when the table has neither.
    pub key: Vec<String>,
    /// `d`efault, `n`othing, `f`ull, `i`ndex.
    pub replica_identity: char,
    /// A partitioned table (its rows live in its partitions).
    pub partitioned: bool,
    /// Fraction digits of `money` under the server's `lc_monetary` (the
    /// log's sessions and ours share it): where the decimal point goes in
    /// the log's locale text of a money value.
    pub money_digits: u32,
}

impl TableInfo {
    /// The table's shape as the engine knows it, as version 1: what the
    /// decoder starts from, and what column rules resolve against.
    pub fn schema(&self) -> cdc_engine::TableSchema {
        cdc_engine::TableSchema {
            table: std::sync::Arc::new(self.table.clone()),
            version: 1,
            columns: self.columns.iter().map(|c| self.column_schema(c)).collect(),
            key: self.key.clone(),
        }
    }

    /// What the engine knows of column `c` of this table.
    pub fn column_schema(&self, c: &ColumnInfo) -> cdc_engine::ColumnSchema {
        let mut kind = crate::kinds::column_kind(c.value_oid, c.type_mod, c.enum_labels.as_deref());
        // An extension's type has no fixed oid: known by its name.
        if kind == cdc_engine::ColumnKind::String {
            if let Some(extension) = crate::kinds::extension_kind(&c.type_sql) {
                kind = extension;
            }
        }
        cdc_engine::ColumnSchema {
            name: c.name.clone(),
            type_name: c.type_sql.clone(),
            optional: !c.not_null,
            default: c.default_expr.as_deref().and_then(|expr| {
                crate::kinds::column_default(
                    expr,
                    c.value_oid,
                    c.type_mod,
                    self.money_digits,
                    &kind,
                )
            }),
            kind,
        }
    }
}

/// The shape of table `$1` (an oid) in one line, as [`TableInfo::signature`]
/// writes it: columns with their types, then the key. Read inside a chunk's
/// transaction it is the shape the chunk's rows have.
pub const SIGNATURE_SQL: &str = "SELECT coalesce((SELECT string_agg(format('%s %s %s', a.attname, a.atttypid, a.atttypmod), ',' ORDER BY a.attnum) \
       FROM pg_attribute a WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''), '') \
     || '|' || coalesce((SELECT string_agg(a.attname::text, ',' ORDER BY k.ord) \
       FROM (SELECT i.indrelid, i.indkey FROM pg_index i WHERE i.indrelid = $1 AND (i.indisprimary OR i.indisreplident) \
             ORDER BY i.indisreplident DESC, i.indisprimary DESC LIMIT 1) i \
       CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) \
       JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum), '')";

impl TableInfo {
    /// The shape in the form of [`SIGNATURE_SQL`].
    pub fn signature(&self) -> String {
        let columns: Vec<String> = self
            .columns
            .iter()
            .map(|c| format!("{} {} {}", c.name, c.type_oid, c.type_mod))
            .collect();
        format!("{}|{}", columns.join(","), self.key.join(","))
    }

    pub fn column(&self, name: &str) -> Option<&ColumnInfo> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Whether the application's updates and deletes keep working once the
    /// table is in a publication that publishes them: PostgreSQL refuses
    /// them on a table without a replica identity.
    pub fn has_replica_identity(&self) -> bool {
        match self.replica_identity {
            'f' => true,
            'n' => false,
            // `d`: the primary key; `i`: the index (the key is theirs).
            _ => !self.key.is_empty(),
        }
    }
}

/// The base type of the type OID in `{of}`: domains (over domains) followed
/// down `typbasetype`; other types are their own base.
const BASE_TYPE_SQL: &str = "(WITH RECURSIVE d(oid, depth) AS ( \
       SELECT {of}, 0 \
       UNION ALL SELECT t.typbasetype, d.depth + 1 FROM d JOIN pg_type t ON t.oid = d.oid WHERE t.typtype = 'd') \
     SELECT oid FROM d ORDER BY depth DESC LIMIT 1)";

/// A table's columns: name, type, `format_type`, modifier and value type
/// (see [`ColumnInfo::value_oid`]). An array type is one of `typlen` -1
/// with an element; its element, resolved, decides the value type.
fn columns_sql() -> String {
    let base = BASE_TYPE_SQL.replace("{of}", "a.atttypid");
    let elem_base = BASE_TYPE_SQL.replace("{of}", "bt.typelem");
    format!(
        "SELECT a.attname::text, a.atttypid, format_type(a.atttypid, a.atttypmod), a.atttypmod, \
           CASE WHEN bt.typlen <> -1 OR bt.typelem = 0 THEN bt.oid \
                WHEN et.typtype = 'e' THEN 'pg_catalog._text'::pg_catalog.regtype::oid \
                WHEN et.oid <> bt.typelem AND et.typarray <> 0 THEN et.typarray \
                ELSE bt.oid END, \
           a.attnotnull, \
           (SELECT array_agg(e.enumlabel::text ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = bt.oid), \
           (SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef d WHERE d.adrelid = a.attrelid AND d.adnum = a.attnum) \
         FROM pg_attribute a \
         JOIN pg_type bt ON bt.oid = {base} \
         LEFT JOIN pg_type et ON et.oid = {elem_base} \
         WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' \
         ORDER BY a.attnum"
    )
}

/// `cash_numeric` gives a money value as many fraction digits as
/// `lc_monetary` does.
const MONEY_DIGITS_SQL: &str = "SELECT pg_catalog.scale('0'::pg_catalog.money::pg_catalog.numeric)";

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
    let oid: u32 = row.try_get(0)?;
    let kind: String = row.try_get(1)?;
    let replident: String = row.try_get(2)?;
    if kind != "r" && kind != "p" {
        return Err(CatalogError::NotATable(table.clone()));
    }
    // Stored generated columns are left out: pgoutput does not publish them
    // (before PostgreSQL 18, and by default since), so snapshot rows and log
    // rows have the same columns.
    let columns = client
        .query(&columns_sql(), &[&oid])
        .await?
        .into_iter()
        .map(|r| {
            Ok(ColumnInfo {
                name: r.try_get(0)?,
                type_oid: r.try_get(1)?,
                type_sql: r.try_get(2)?,
                type_mod: r.try_get(3)?,
                value_oid: r.try_get(4)?,
                not_null: r.try_get(5)?,
                enum_labels: r.try_get(6)?,
                default_expr: r.try_get(7)?,
            })
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
    // The replica identity index if one is set (the columns PostgreSQL
    // logs as a delete's old key), else the primary key.
    let key = client
        .query(
            "SELECT a.attname::text \
             FROM (SELECT i.indrelid, i.indkey FROM pg_index i \
                   WHERE i.indrelid = $1 AND (i.indisprimary OR i.indisreplident) \
                   ORDER BY i.indisreplident DESC, i.indisprimary DESC LIMIT 1) i \
             CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
             ORDER BY k.ord",
            &[&oid],
        )
        .await?
        .into_iter()
        .map(|r| r.try_get::<_, String>(0))
        .collect::<Result<Vec<_>, _>>()?;
    let money_digits: i32 = client.query_one(MONEY_DIGITS_SQL, &[]).await?.try_get(0)?;
    Ok(TableInfo {
        oid,
        table: table.clone(),
        columns,
        key,
        replica_identity: replident.chars().next().unwrap_or('d'),
        partitioned: kind == "p",
        money_digits: u32::try_from(money_digits).unwrap_or(2),
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
