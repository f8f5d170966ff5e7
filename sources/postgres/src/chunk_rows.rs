//! A chunk's rows as they stream in: values typed by the statement's own
//! columns, the key each row is matched to the log by, and where the next
//! chunk starts.

use cdc_engine::merger::ChunkRow;
use cdc_engine::snapshot::SnapshotError;
use cdc_engine::{Row, Value};
use futures_util::StreamExt;
use tokio_postgres::types::{FromSql, ToSql, Type};
use tokio_postgres::{Client, Statement};

use crate::binary::binary_to_value;
use crate::chunk_sql::TableSql;
use crate::snapshot::{classify, transient};
use crate::types::text_to_value;

/// A column's bytes as the server sent them, whatever its type and format:
/// the converters check what they need (a `&str` would check UTF-8 twice).
struct RawValue<'a>(&'a [u8]);

impl<'a> FromSql<'a> for RawValue<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(RawValue(raw))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// The row's values, typed by the columns' OIDs. A text value that does not
/// convert (it cannot, short of a server bug) is kept as text rather than
/// lost; a binary one has no such fallback and fails the chunk, naming the
/// column.
fn row_values(row: &tokio_postgres::Row, sql: &TableSql) -> Result<Vec<Value>, SnapshotError> {
    let mut values = Vec::with_capacity(sql.column_oids.len());
    for (i, (&oid, &binary)) in sql.column_oids.iter().zip(&sql.column_binary).enumerate() {
        let raw: Option<RawValue> = row
            .try_get(i)
            .map_err(|e| SnapshotError::Transient(e.to_string()))?;
        values.push(
            match raw {
                None => Value::Null,
                // By the statement's own type: the shape it was prepared in.
                Some(RawValue(raw)) if binary => {
                    binary_to_value(row.columns().get(i).map_or(oid, |c| c.type_().oid()), raw)
                        .map_err(|e| {
                            let column = sql.column_names.get(i).map_or("?", String::as_str);
                            SnapshotError::Definite(format!("{}.{column}: {e}", sql.info.table))
                        })?
                }
                Some(RawValue(text)) => text_to_value(oid, text)
                    .unwrap_or_else(|_| Value::Text(String::from_utf8_lossy(text).into_owned())),
            }
            // As the log's values (decoder.rs): a time's precision from the column.
            .with_type_mod(sql.info.columns.get(i).map_or(-1, |c| c.type_mod)),
        );
    }
    Ok(values)
}

/// Key values in the server's text form, for the next chunk's bounds.
pub(crate) fn key_texts(
    row: &tokio_postgres::Row,
    columns: impl Iterator<Item = usize>,
) -> Result<Vec<String>, SnapshotError> {
    columns
        .map(|i| row.try_get::<_, String>(i))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| SnapshotError::Transient(e.to_string()))
}

/// The chunk's planner hints are for the chunk query only: the catalog
/// query that follows it needs joins the hints would make ~200 ms slow.
const RESTORE_PLANNER: &str = "SET LOCAL enable_sort TO DEFAULT; \
     SET LOCAL enable_incremental_sort TO DEFAULT; SET LOCAL enable_bitmapscan TO DEFAULT; \
     SET LOCAL enable_seqscan TO DEFAULT";

/// The chunk's rows as they stream in (our conversion overlaps the server's
/// work), and the last row's key.
async fn read_rows(
    sql: &TableSql,
    stream: tokio_postgres::RowStream,
    limit: usize,
) -> Result<(Vec<ChunkRow>, Option<Vec<String>>), SnapshotError> {
    futures_util::pin_mut!(stream);
    let mut rows = Vec::with_capacity(limit.min(65_536));
    let mut last = None;
    while let Some(row) = stream.next().await {
        let row = row.map_err(classify)?;
        let after = row_values(&row, sql)?;
        let mut key = Vec::with_capacity(sql.key_indexes.len());
        for &i in &sql.key_indexes {
            key.push(after.get(i).cloned().unwrap_or(Value::Null));
        }
        rows.push(ChunkRow {
            key: Row::new(sql.key_names.clone(), key),
            after: Row::new(sql.column_names.clone(), after),
        });
        last = Some(row);
    }
    // The next chunk starts after the last row's order columns, in the
    // server's own text (physical order: after the chunk's pages; the
    // caller knows them).
    let last_key = match last {
        Some(row) if !sql.order_indexes.is_empty() => {
            Some(key_texts(&row, sql.order_indexes.iter().copied())?)
        }
        _ => None,
    };
    Ok((rows, last_key))
}

/// The chunk's rows, then the table's shape in the same snapshot (the
/// select's lock keeps DDL out until the commit) and the commit, in one
/// round trip.
pub(crate) async fn read_and_commit(
    client: &Client,
    sql: &TableSql,
    rows: Result<tokio_postgres::RowStream, tokio_postgres::Error>,
    limit: usize,
    shape_query: &Statement,
) -> Result<(Vec<ChunkRow>, Option<Vec<String>>, String), SnapshotError> {
    let (rows, last_key) = read_rows(sql, rows.map_err(classify)?, limit).await?;
    let oid: [&(dyn ToSql + Sync); 1] = [&sql.info.oid];
    let (restored, shape, commit) = tokio::join!(
        client.batch_execute(RESTORE_PLANNER),
        client.query_one(shape_query, &oid),
        client.batch_execute("COMMIT"),
    );
    restored.map_err(transient)?;
    let signature: String = shape
        .map_err(transient)?
        .try_get(0)
        .map_err(|e| SnapshotError::Transient(e.to_string()))?;
    commit.map_err(transient)?;
    Ok((rows, last_key, signature))
}
