//! Chunks and watermarks for DBLog snapshots on PostgreSQL.
//!
//! A chunk is one `SELECT … WHERE (k1, k2) > ($1, $2) AND (k1, k2) <= ($3,
//! $4) ORDER BY k1, k2 LIMIT n`: a row-value comparison, so the primary-key
//! index serves it at any table size. It runs in a REPEATABLE READ
//! transaction together with `pg_current_snapshot()`, so the merger knows
//! exactly which transactions the rows could see (the torn-chunk hazard of
//! DESIGN.md §2). Every value is selected as text and converted by the same
//! code as the log's values, so a key from a chunk and from the log compare
//! equal.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use cdc_engine::merger::{ChunkRow, Visibility};
use cdc_engine::scheduler::{ChunkRequest, SnapshotState};
use cdc_engine::snapshot::{ChunkSource, SelectedChunk, SnapshotError};
use cdc_engine::{Row, TableRef, Value};
use cdc_signal::{SNAPSHOT_WINDOW_CLOSE, SNAPSHOT_WINDOW_OPEN};
use futures_util::StreamExt;
use tokio::sync::Mutex;
use tokio_postgres::Client;

use crate::catalog::{quote_ident, quote_table, TableInfo};
use crate::connect::{describe_pg_error, ConnectConfig};
use crate::types::text_to_value;

/// The table holding snapshot progress, next to the signal table.
pub fn state_table(signal_table: &TableRef) -> TableRef {
    TableRef::new(signal_table.schema.clone(), "snapshot_state")
}

/// SQL text of one table's chunk queries, built once from the catalog.
struct TableSql {
    info: TableInfo,
    key_oids: Vec<u32>,
    /// Positions of the key columns among all columns.
    key_indexes: Vec<usize>,
    column_oids: Vec<u32>,
    key_names: Arc<[String]>,
    column_names: Arc<[String]>,
}

impl TableSql {
    fn new(info: TableInfo) -> Option<Self> {
        let key_oids = info
            .primary_key
            .iter()
            .map(|k| info.column(k).map(|c| c.type_oid))
            .collect::<Option<Vec<_>>>()?;
        if key_oids.is_empty() {
            return None;
        }
        let key_indexes = info
            .primary_key
            .iter()
            .map(|k| info.columns.iter().position(|c| &c.name == k))
            .collect::<Option<Vec<_>>>()?;
        Some(TableSql {
            key_oids,
            key_indexes,
            column_oids: info.columns.iter().map(|c| c.type_oid).collect(),
            key_names: Arc::from(info.primary_key.clone()),
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
            .primary_key
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
            .primary_key
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

    fn select_list(&self) -> String {
        self.info
            .columns
            .iter()
            .map(|c| format!("src.{}::text", quote_ident(&c.name)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn chunk_sql(&self, after: bool, upto: bool, filter: Option<&str>) -> String {
        let n = self.info.primary_key.len();
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

    fn max_key_sql(&self, filter: Option<&str>) -> String {
        let keys: Vec<String> = self
            .info
            .primary_key
            .iter()
            .map(|k| format!("src.{}::text", quote_ident(k)))
            .collect();
        let order: Vec<String> = self
            .info
            .primary_key
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

/// Reject filters that could reach outside their parentheses: they must be
/// one balanced expression without statement separators or comments. The
/// server then parses them as part of the chunk query.
pub fn check_filter(filter: &str) -> Result<(), String> {
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

/// `726:730:726,728` → visibility.
pub fn parse_snapshot(text: &str) -> Option<Visibility> {
    let mut parts = text.splitn(3, ':');
    let xmin = parts.next()?.parse().ok()?;
    let xmax = parts.next()?.parse().ok()?;
    let xip = match parts.next() {
        Some("") | None => Vec::new(),
        Some(list) => list
            .split(',')
            .map(|x| x.parse().ok())
            .collect::<Option<Vec<u64>>>()?,
    };
    Some(Visibility { xmin, xmax, xip })
}

pub struct PgChunkSource {
    connect: ConnectConfig,
    client: Mutex<Option<Client>>,
    tables: HashMap<TableRef, TableSql>,
    signal_table: TableRef,
    state_name: String,
}

fn transient(err: tokio_postgres::Error) -> SnapshotError {
    SnapshotError::Transient(describe_pg_error(&err))
}

impl PgChunkSource {
    pub fn new(
        connect: ConnectConfig,
        tables: &[TableInfo],
        signal_table: TableRef,
        state_name: String,
    ) -> Self {
        PgChunkSource {
            connect,
            client: Mutex::new(None),
            tables: tables
                .iter()
                .filter_map(|t| TableSql::new(t.clone()).map(|s| (t.table.clone(), s)))
                .collect(),
            signal_table,
            state_name,
        }
    }

    /// Run `f` on a live connection, reconnecting first if needed. A failed
    /// connection is dropped so the next call reconnects.
    async fn with_client<T>(
        &self,
        f: impl AsyncFnOnce(&mut Client) -> Result<T, SnapshotError>,
    ) -> Result<T, SnapshotError> {
        let mut guard = self.client.lock().await;
        if guard.as_ref().is_none_or(|c| c.is_closed()) {
            let client = self
                .connect
                .connect_sql()
                .await
                .map_err(|e| SnapshotError::Transient(e.to_string()))?;
            *guard = Some(client);
        }
        let Some(client) = guard.as_mut() else {
            return Err(SnapshotError::Transient("no connection".into()));
        };
        let result = f(client).await;
        if client.is_closed() {
            *guard = None;
        }
        result
    }

    async fn write_watermark(
        &self,
        id: String,
        kind: &str,
        delete: Option<[String; 2]>,
    ) -> Result<(), SnapshotError> {
        let insert = format!(
            "INSERT INTO {} (id, type, data) VALUES ($1, $2, NULL)",
            quote_table(&self.signal_table)
        );
        let remove = format!(
            "DELETE FROM {} WHERE id = ANY($1)",
            quote_table(&self.signal_table)
        );
        self.with_client(async |client| {
            let tx = client.transaction().await.map_err(transient)?;
            tx.execute(&insert, &[&id, &kind])
                .await
                .map_err(transient)?;
            if let Some(ids) = &delete {
                // Watermarks are only needed in the log: keep the table small.
                tx.execute(&remove, &[&ids.as_slice()])
                    .await
                    .map_err(transient)?;
            }
            tx.commit().await.map_err(transient)
        })
        .await
    }

    /// Load the persisted progress, if any.
    pub async fn load_state(&self) -> Result<Option<SnapshotState>, SnapshotError> {
        let sql = format!(
            "SELECT state::text FROM {} WHERE name = $1",
            quote_table(&state_table(&self.signal_table))
        );
        let name = self.state_name.clone();
        let text: Option<String> = self
            .with_client(async |client| {
                Ok(client
                    .query_opt(&sql, &[&name])
                    .await
                    .map_err(transient)?
                    .map(|r| r.get(0)))
            })
            .await?;
        match text {
            None => Ok(None),
            Some(text) => serde_json::from_str(&text).map(Some).map_err(|e| {
                SnapshotError::Definite(format!("stored snapshot state is unreadable: {e}"))
            }),
        }
    }
}

fn classify(err: tokio_postgres::Error) -> SnapshotError {
    let definite = err
        .code()
        .map(|c| {
            let code = c.code();
            // Syntax or access errors, undefined objects: the request itself
            // is wrong (a bad filter, a dropped table or column).
            code.starts_with("42") || code.starts_with("22")
        })
        .unwrap_or(false);
    let reason = describe_pg_error(&err);
    if definite {
        SnapshotError::Definite(reason)
    } else {
        SnapshotError::Transient(reason)
    }
}

fn row_values(
    row: &tokio_postgres::Row,
    range: std::ops::Range<usize>,
    oids: &[u32],
) -> Result<Vec<Value>, SnapshotError> {
    range
        .zip(oids)
        .map(|(i, &oid)| {
            let text: Option<&str> = row
                .try_get(i)
                .map_err(|e| SnapshotError::Transient(e.to_string()))?;
            match text {
                None => Ok(Value::Null),
                Some(text) => Ok(text_to_value(oid, text.as_bytes())
                    .unwrap_or_else(|_| Value::Text(text.to_string()))),
            }
        })
        .collect()
}

#[async_trait]
impl ChunkSource for PgChunkSource {
    async fn open_window(&self, window: &str) -> Result<(), SnapshotError> {
        self.write_watermark(format!("{window}-open"), SNAPSHOT_WINDOW_OPEN, None)
            .await
    }

    async fn close_window(&self, window: &str) -> Result<(), SnapshotError> {
        let open = format!("{window}-open");
        let close = format!("{window}-close");
        self.write_watermark(close.clone(), SNAPSHOT_WINDOW_CLOSE, Some([open, close]))
            .await
    }

    async fn select_chunk(&self, request: &ChunkRequest) -> Result<SelectedChunk, SnapshotError> {
        let sql = self.tables.get(&request.table).ok_or_else(|| {
            SnapshotError::Definite(format!(
                "table {} is not captured or has no primary key",
                request.table
            ))
        })?;
        let filter = request.filter.as_deref();
        if let Some(filter) = filter {
            check_filter(filter)
                .map_err(|e| SnapshotError::Definite(format!("filter {filter:?}: {e}")))?;
        }
        let nkeys = sql.key_oids.len();
        self.with_client(async |client| {
            let tx = client
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await
                .map_err(transient)?;
            // First statement: fixes the transaction's snapshot for the
            // SELECTs below.
            let snapshot: String = tx
                .query_one("SELECT pg_current_snapshot()::text", &[])
                .await
                .map_err(transient)?
                .get(0);
            let visibility = parse_snapshot(&snapshot).ok_or_else(|| {
                SnapshotError::Transient(format!("unreadable snapshot {snapshot:?}"))
            })?;
            let (max_key, estimate) = if request.max_key_read {
                (request.max_key.clone(), None)
            } else {
                let row = tx
                    .query_opt(&sql.max_key_sql(filter), &[])
                    .await
                    .map_err(classify)?;
                let max_key = match row {
                    Some(row) => Some(
                        (0..nkeys)
                            .map(|i| row.try_get::<_, String>(i))
                            .collect::<Result<Vec<_>, _>>()
                            .map_err(|e| SnapshotError::Transient(e.to_string()))?,
                    ),
                    None => None,
                };
                let estimate: f32 = tx
                    .query_one(
                        "SELECT reltuples FROM pg_class WHERE oid = $1",
                        &[&sql.info.oid],
                    )
                    .await
                    .map_err(transient)?
                    .get(0);
                (max_key, Some(estimate.max(0.0) as u64))
            };
            let Some(upper) = max_key.clone() else {
                // Empty table (or nothing matches the filter): done.
                tx.commit().await.map_err(transient)?;
                return Ok(SelectedChunk {
                    rows: Vec::new(),
                    last_key: None,
                    max_key,
                    estimate,
                    visibility: Some(visibility),
                });
            };
            let mut params: Vec<String> = Vec::with_capacity(2 * nkeys + 1);
            if let Some(after) = &request.after_key {
                params.extend(after.iter().cloned());
            }
            params.extend(upper.iter().cloned());
            params.push(request.limit.to_string());
            let query = sql.chunk_sql(request.after_key.is_some(), true, filter);
            tracing::debug!(table = %request.table, sql = %query, params = ?params, "chunk select");
            // Rows are converted as they stream in, overlapping the
            // server's work with ours.
            let stream = tx
                .query_raw(&query, params.iter())
                .await
                .map_err(classify)?;
            futures_util::pin_mut!(stream);
            let mut chunk = Vec::with_capacity(request.limit.min(65_536));
            let mut last_key = None;
            while let Some(row) = stream.next().await {
                let row = row.map_err(classify)?;
                let after = row_values(&row, 0..sql.column_oids.len(), &sql.column_oids)?;
                let key = sql
                    .key_indexes
                    .iter()
                    .map(|&i| after.get(i).cloned().unwrap_or(Value::Null))
                    .collect();
                chunk.push(ChunkRow {
                    key: Row::new(sql.key_names.clone(), key),
                    after: Row::new(sql.column_names.clone(), after),
                });
                last_key = Some(row);
            }
            tx.commit().await.map_err(transient)?;
            // The next chunk starts after the last key, in the server's own
            // text form of it.
            let last_key = match last_key {
                Some(row) => Some(
                    sql.key_indexes
                        .iter()
                        .map(|&i| row.try_get::<_, String>(i))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| SnapshotError::Transient(e.to_string()))?,
                ),
                None => None,
            };
            Ok(SelectedChunk {
                rows: chunk,
                last_key,
                max_key,
                estimate,
                visibility: Some(visibility),
            })
        })
        .await
    }

    fn check_filter(&self, filter: &str) -> Result<(), String> {
        check_filter(filter)
    }

    async fn save_state(&self, state: &SnapshotState) -> Result<(), SnapshotError> {
        let json = serde_json::to_string(state)
            .map_err(|e| SnapshotError::Transient(format!("encoding snapshot state: {e}")))?;
        let sql = format!(
            "INSERT INTO {} (name, state, updated_at) VALUES ($1, $2::text::jsonb, now()) \
             ON CONFLICT (name) DO UPDATE SET state = excluded.state, updated_at = now()",
            quote_table(&state_table(&self.signal_table))
        );
        let name = self.state_name.clone();
        self.with_client(async |client| {
            client
                .execute(&sql, &[&name, &json])
                .await
                .map(|_| ())
                .map_err(transient)
        })
        .await
    }
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

    #[test]
    fn snapshots_parse() {
        assert_eq!(
            parse_snapshot("726:730:726,728"),
            Some(Visibility {
                xmin: 726,
                xmax: 730,
                xip: vec![726, 728]
            })
        );
        assert_eq!(
            parse_snapshot("726:726:"),
            Some(Visibility {
                xmin: 726,
                xmax: 726,
                xip: vec![]
            })
        );
        assert_eq!(parse_snapshot("x"), None);
    }
}
