//! Chunks and watermarks for DBLog snapshots on PostgreSQL.
//!
//! A chunk is one `SELECT … WHERE (k1, k2) > ($1, $2) AND (k1, k2) <= ($3,
//! $4) ORDER BY k1, k2 LIMIT n`: a row-value comparison, so the primary-key
//! index serves it at any table size. It runs in a REPEATABLE READ
//! transaction together with `pg_current_snapshot()`, so the merger knows
//! exactly which transactions the rows could see (the torn-chunk hazard of
//! docs/architecture.md, "Torn chunks"). Values are converted by the same code as the log's, so a
//! key from a chunk and from the log compare equal. Columns of types with a
//! binary decoder come in binary, which spares the server its text
//! formatting and decodes to the same values ([`crate::binary`]); keys do so
//! only where the binary form is the text.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use cdc_engine::merger::ChunkRow;
use cdc_engine::scheduler::{ChunkRequest, SnapshotState};
use cdc_engine::snapshot::{ChunkSource, SelectedChunk, SnapshotError};
use cdc_engine::TableRef;
use cdc_signal::{SNAPSHOT_WINDOW_CLOSE, SNAPSHOT_WINDOW_OPEN};
use tokio::sync::Mutex;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Statement};

use crate::catalog::{quote_table, table_info, CatalogError, TableInfo, SIGNATURE_SQL};
use crate::chunk_rows::{key_texts, read_and_commit};
use crate::chunk_sql::{check_filter, ChunkOrder, TableSql};
use crate::connect::{describe_pg_error, ConnectConfig};
use crate::physical::{parse_page, Densities, PageRange};
use crate::visibility::Visibility;

/// The table holding snapshot progress, next to the signal table.
pub fn state_table(signal_table: &TableRef) -> TableRef {
    TableRef::new(signal_table.schema.clone(), "snapshot_state")
}

pub struct PgChunkSource {
    connect: ConnectConfig,
    conn: Mutex<Option<Conn>>,
    /// Per table, the SQL of its current shape: rebuilt when a chunk finds
    /// the shape changed. The lock is never held across an await.
    tables: std::sync::Mutex<HashMap<TableRef, Arc<TableSql>>>,
    signal_table: TableRef,
    state_name: String,
    /// `INSERT` of a watermark row, `DELETE` of a window's rows.
    insert_watermark: String,
    delete_watermarks: String,
    /// Progress is saved only while this lease is fresh, and only under
    /// its epoch (`cdc.leases`).
    lease: cdc_engine::Lease,
    /// Rows per page found by the chunks of tables read in physical order.
    densities: Densities,
}

/// The snapshot connection and the statements prepared on it. A chunk costs
/// a handful of round trips: statements are prepared once, and the steps of
/// one transaction are sent together (tokio-postgres pipelines requests
/// polled at the same time).
struct Conn {
    client: Client,
    statements: HashMap<String, Statement>,
    /// A chunk's transaction was begun and not yet committed: after an
    /// error it must be rolled back (and only then: a ROLLBACK outside a
    /// transaction draws a server warning).
    in_transaction: bool,
}

impl Conn {
    async fn statement(&mut self, sql: &str) -> Result<Statement, tokio_postgres::Error> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql).await?;
        self.statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }
}

pub(crate) fn transient(err: tokio_postgres::Error) -> SnapshotError {
    SnapshotError::Transient(describe_pg_error(&err))
}

/// The first error of a pipelined group of requests.
fn first_error<const N: usize>(
    results: [Result<(), tokio_postgres::Error>; N],
) -> Result<(), tokio_postgres::Error> {
    results.into_iter().collect()
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
            conn: Mutex::new(None),
            tables: std::sync::Mutex::new(
                tables
                    .iter()
                    .map(|t| (t.table.clone(), Arc::new(TableSql::new(t.clone()))))
                    .collect(),
            ),
            insert_watermark: format!(
                "INSERT INTO {} (id, type, data) VALUES ($1, $2, NULL)",
                quote_table(&signal_table)
            ),
            delete_watermarks: format!(
                "DELETE FROM {} WHERE id = ANY($1)",
                quote_table(&signal_table)
            ),
            signal_table,
            state_name,
            lease: cdc_engine::Lease::sole(),
            densities: Densities::default(),
        }
    }

    /// Another chunk source on the same server, tables and progress, with a
    /// connection of its own: a lane of parallel snapshots.
    pub fn another(&self) -> PgChunkSource {
        let tables = self.tables.lock().map(|t| t.clone()).unwrap_or_default();
        PgChunkSource {
            connect: self.connect.clone(),
            conn: Mutex::new(None),
            tables: std::sync::Mutex::new(tables),
            signal_table: self.signal_table.clone(),
            state_name: self.state_name.clone(),
            insert_watermark: self.insert_watermark.clone(),
            delete_watermarks: self.delete_watermarks.clone(),
            lease: self.lease.clone(),
            densities: Densities::default(),
        }
    }

    /// Save progress only as the holder of `lease` (an instance of a group).
    pub fn with_lease(mut self, lease: cdc_engine::Lease) -> Self {
        self.lease = lease;
        self
    }

    /// Run `f` on a live connection, reconnecting first if needed. A failed
    /// connection is dropped so the next call reconnects; after any error the
    /// prepared statements are dropped too (a table altered meanwhile makes
    /// its cached statement fail until it is prepared again).
    async fn with_conn<T>(
        &self,
        f: impl AsyncFnOnce(&mut Conn) -> Result<T, SnapshotError>,
    ) -> Result<T, SnapshotError> {
        let mut guard = self.conn.lock().await;
        if guard.as_ref().is_none_or(|c| c.client.is_closed()) {
            let client = self
                .connect
                .connect_sql()
                .await
                .map_err(|e| SnapshotError::Transient(e.to_string()))?;
            *guard = Some(Conn {
                client,
                statements: HashMap::new(),
                in_transaction: false,
            });
        }
        let Some(conn) = guard.as_mut() else {
            return Err(SnapshotError::Transient("no connection".into()));
        };
        let result = f(conn).await;
        if conn.client.is_closed() {
            *guard = None;
            return result;
        }
        if result.is_err() {
            conn.statements.clear();
            // A transaction the error left open must not swallow the next
            // request.
            if conn.in_transaction {
                let _ = conn.client.batch_execute("ROLLBACK").await;
            }
        }
        // Every request either commits what it began or failed above.
        conn.in_transaction = false;
        result
    }

    /// The low watermark: one autocommitted insert.
    async fn write_low_watermark(&self, id: String) -> Result<(), SnapshotError> {
        self.with_conn(async |conn| {
            let insert = conn
                .statement(&self.insert_watermark)
                .await
                .map_err(transient)?;
            conn.client
                .execute(&insert, &[&id, &SNAPSHOT_WINDOW_OPEN])
                .await
                .map(|_| ())
                .map_err(transient)
        })
        .await
    }

    /// The high watermark, and both of the window's rows deleted in the same
    /// transaction: watermarks are only needed in the log, and the table
    /// stays small. One round trip.
    async fn write_high_watermark(&self, open: String, close: String) -> Result<(), SnapshotError> {
        self.with_conn(async |conn| {
            let insert = conn
                .statement(&self.insert_watermark)
                .await
                .map_err(transient)?;
            let delete = conn
                .statement(&self.delete_watermarks)
                .await
                .map_err(transient)?;
            let ids = [open, close.clone()];
            let ids = ids.as_slice();
            let insert_params: [&(dyn ToSql + Sync); 2] = [&close, &SNAPSHOT_WINDOW_CLOSE];
            let delete_params: [&(dyn ToSql + Sync); 1] = [&ids];
            let client = &conn.client;
            let (begin, inserted, deleted, commit) = tokio::join!(
                client.batch_execute("BEGIN"),
                client.execute(&insert, &insert_params),
                client.execute(&delete, &delete_params),
                // After a failed step the server answers COMMIT with a
                // rollback; the step's own error is reported.
                client.batch_execute("COMMIT"),
            );
            first_error([begin, inserted.map(|_| ()), deleted.map(|_| ()), commit])
                .map_err(transient)
        })
        .await
    }

    fn table_sql(&self, table: &TableRef) -> Option<Arc<TableSql>> {
        self.tables
            .lock()
            .ok()
            .and_then(|tables| tables.get(table).cloned())
    }

    /// A table captured after start (created later, matched by a pattern):
    /// its SQL is built from the catalog when its first chunk is asked for.
    async fn load_table(&self, table: &TableRef) -> Result<(), SnapshotError> {
        let info = self
            .with_conn(async |conn| {
                table_info(&conn.client, table).await.map_err(|e| match e {
                    CatalogError::Query(reason) => SnapshotError::Transient(reason),
                    gone => SnapshotError::Definite(gone.to_string()),
                })
            })
            .await?;
        if let Ok(mut tables) = self.tables.lock() {
            tables.insert(table.clone(), Arc::new(TableSql::new(info)));
        }
        Ok(())
    }

    /// Read the table's shape from the catalog again; if it is not the one
    /// `sql` was built for, rebuild its SQL and say what changed.
    async fn refresh_shape(&self, sql: &TableSql) -> Result<Option<String>, SnapshotError> {
        let table = sql.info.table.clone();
        let info = self
            .with_conn(async |conn| {
                table_info(&conn.client, &table).await.map_err(|e| match e {
                    CatalogError::Query(reason) => SnapshotError::Transient(reason),
                    gone => SnapshotError::Definite(gone.to_string()),
                })
            })
            .await?;
        if info.signature() == sql.info.signature() {
            return Ok(None);
        }
        let rebuilt = TableSql::new(info);
        let change = format!(
            "{table} changed shape since the chunk query was built ({} → {})",
            sql.info.signature(),
            rebuilt.info.signature()
        );
        if let Ok(mut tables) = self.tables.lock() {
            tables.insert(table, Arc::new(rebuilt));
        }
        Ok(Some(change))
    }

    /// The table's SQL and the text of the chunk query for `request`, once
    /// its filter passed the check.
    fn chunk_query(
        &self,
        request: &ChunkRequest,
    ) -> Result<(Arc<TableSql>, String), SnapshotError> {
        let cached = self.table_sql(&request.table).ok_or_else(|| {
            SnapshotError::Definite(format!("table {} is not captured", request.table))
        })?;
        let sql = in_order_of(cached, request)?;
        let filter = request.filter.as_deref();
        if let Some(filter) = filter {
            check_filter(filter)
                .map_err(|e| SnapshotError::Definite(format!("filter {filter:?}: {e}")))?;
        }
        let chunk_sql = sql.chunk_sql(request.after_key.is_some(), true, filter);
        Ok((sql, chunk_sql))
    }

    /// The plan the server makes for the chunk query of `request` inside a
    /// chunk transaction, as `EXPLAIN (FORMAT JSON)` text: the custom plan
    /// for these bounds, or with `generic` the one it caches after a few
    /// executions. `request.max_key` is the upper bound and must be set.
    pub async fn explain_chunk(
        &self,
        request: &ChunkRequest,
        generic: bool,
    ) -> Result<String, SnapshotError> {
        let (sql, chunk_sql) = self.chunk_query(request)?;
        let upper = request.max_key.as_deref().ok_or_else(|| {
            SnapshotError::Definite("explaining a chunk needs its upper bound".into())
        })?;
        let params = if sql.order == ChunkOrder::Physical {
            let total = parse_page(Some(upper))?;
            self.densities.range(request, total, None)?.params()
        } else {
            chunk_params(request, upper)
        };
        let mode = if generic {
            "force_generic_plan"
        } else {
            "force_custom_plan"
        };
        self.with_conn(async |conn| {
            conn.in_transaction = true;
            let client = &conn.client;
            client
                .batch_execute(&format!(
                    "{BEGIN_SNAPSHOT}; SET LOCAL plan_cache_mode = {mode}; \
                     PREPARE cdc_explain_chunk AS {chunk_sql}"
                ))
                .await
                .map_err(classify)?;
            // EXECUTE takes no protocol parameters: the server quotes the
            // bounds into its arguments, so no SQL is built from them here.
            let explain: String = client
                .query_one(
                    "SELECT 'EXPLAIN (FORMAT JSON) EXECUTE cdc_explain_chunk(' \
                       || string_agg(quote_literal(p), ', ' ORDER BY n) || ')' \
                     FROM unnest($1::text[]) WITH ORDINALITY AS u(p, n)",
                    &[&params],
                )
                .await
                .map_err(classify)?
                .try_get(0)
                .map_err(|e| SnapshotError::Transient(e.to_string()))?;
            let mut plan = String::new();
            for message in client.simple_query(&explain).await.map_err(classify)? {
                if let tokio_postgres::SimpleQueryMessage::Row(row) = message {
                    let line = row
                        .try_get(0)
                        .map_err(|e| SnapshotError::Transient(e.to_string()))?;
                    plan.push_str(line.unwrap_or_default());
                }
            }
            // A prepared statement belongs to the session, not the
            // transaction: deallocate it before the rollback.
            client
                .batch_execute("DEALLOCATE cdc_explain_chunk; ROLLBACK")
                .await
                .map_err(transient)?;
            Ok(plan)
        })
        .await
    }

    /// One chunk in the shape `sql` was built for, and the table's shape
    /// in the chunk's own snapshot (its [`TableInfo::signature`]).
    async fn select_in_shape(
        &self,
        request: &ChunkRequest,
        sql: &TableSql,
        chunk_sql: &str,
    ) -> Result<(SelectedChunk, String), SnapshotError> {
        let filter = request.filter.as_deref();
        let physical = sql.order == ChunkOrder::Physical;
        // The chunk's parameters, and for physical order its pages.
        let bounds = |upper: &[String], estimate: Option<u64>| {
            if physical {
                let total = parse_page(Some(upper))?;
                let range = self.densities.range(request, total, estimate)?;
                Ok::<_, SnapshotError>((range.params(), Some((range, total))))
            } else {
                Ok((chunk_params(request, upper), None))
            }
        };
        tracing::debug!(table = %request.table, sql = %chunk_sql, after = ?request.after_key, "chunk select");
        self.with_conn(async |conn| {
            let snapshot_sql = conn.statement(SNAPSHOT_SQL).await.map_err(transient)?;
            let chunk_query = conn.statement(chunk_sql).await.map_err(classify)?;
            let shape_query = conn.statement(SIGNATURE_SQL).await.map_err(transient)?;
            let oid: [&(dyn ToSql + Sync); 1] = [&sql.info.oid];
            if request.max_key_read {
                let Some(upper) = &request.max_key else {
                    return Ok((SelectedChunk::empty(None, None, None), sql.info.signature()));
                };
                // The usual case: begin, snapshot and select in one round trip.
                let (params, pages) = bounds(upper, None)?;
                conn.in_transaction = true;
                let client = &conn.client;
                let (begin, snapshot, rows) = tokio::join!(
                    client.batch_execute(BEGIN_SNAPSHOT),
                    client.query_one(&snapshot_sql, &[]),
                    client.query_raw(&chunk_query, params.iter()),
                );
                begin.map_err(transient)?;
                let visibility = visibility_of(snapshot.map_err(transient)?)?;
                let (rows, last_key, signature) =
                    read_and_commit(client, sql, rows, request.limit, &shape_query).await?;
                let chunk = self.chunk(
                    request,
                    rows,
                    last_key,
                    pages,
                    request.max_key.clone(),
                    None,
                    visibility,
                );
                return Ok((chunk, signature));
            }
            // The table's first chunk: its largest key (or size) and row
            // estimate first, in the same snapshot.
            let max_key_query = conn
                .statement(&sql.max_key_sql(filter))
                .await
                .map_err(classify)?;
            let estimate_query = conn.statement(ESTIMATE_SQL).await.map_err(transient)?;
            let max_params: &[&(dyn ToSql + Sync)] = if physical { &oid } else { &[] };
            conn.in_transaction = true;
            let client = &conn.client;
            let (begin, snapshot, max_row, estimate) = tokio::join!(
                client.batch_execute(BEGIN_SNAPSHOT),
                client.query_one(&snapshot_sql, &[]),
                client.query_opt(&max_key_query, max_params),
                client.query_one(&estimate_query, &oid),
            );
            begin.map_err(transient)?;
            let visibility = visibility_of(snapshot.map_err(transient)?)?;
            let max_key = match max_row.map_err(classify)? {
                Some(row) => Some(key_texts(&row, 0..sql.order_indexes.len().max(1))?),
                None => None,
            }
            // A table of no pages is as empty as one of no rows.
            .filter(|key| !(physical && key.first().is_some_and(|p| p == "0")));
            let estimate: f32 = estimate
                .map_err(transient)?
                .try_get(0)
                .map_err(|e| SnapshotError::Transient(e.to_string()))?;
            let estimate = Some(estimate.max(0.0) as u64);
            let Some(upper) = &max_key else {
                // Empty table (or nothing matches the filter): done.
                client.batch_execute("COMMIT").await.map_err(transient)?;
                let chunk = SelectedChunk::empty(None, estimate, Some(Arc::new(visibility)));
                return Ok((chunk, sql.info.signature()));
            };
            let (params, pages) = bounds(upper, estimate)?;
            let rows = client.query_raw(&chunk_query, params.iter()).await;
            let (rows, last_key, signature) =
                read_and_commit(client, sql, rows, request.limit, &shape_query).await?;
            let chunk = self.chunk(
                request,
                rows,
                last_key,
                pages,
                max_key.clone(),
                estimate,
                visibility,
            );
            Ok((chunk, signature))
        })
        .await
    }

    /// The selected chunk, and whether it is the table's last: for
    /// physical order when its pages reach the size at start, else when
    /// fewer rows than the limit came.
    #[allow(clippy::too_many_arguments)]
    fn chunk(
        &self,
        request: &ChunkRequest,
        rows: Vec<ChunkRow>,
        last_key: Option<Vec<String>>,
        pages: Option<(PageRange, u64)>,
        max_key: Option<Vec<String>>,
        estimate: Option<u64>,
        visibility: Visibility,
    ) -> SelectedChunk {
        let (last, last_key) = match pages {
            Some((range, total)) => {
                self.densities.observe(&request.table, range, rows.len());
                (range.end >= total, Some(vec![range.end.to_string()]))
            }
            None => (rows.len() < request.limit, last_key),
        };
        SelectedChunk {
            rows,
            last,
            last_key,
            max_key,
            estimate,
            visibility: Some(Arc::new(visibility)),
        }
    }

    /// Load the persisted progress, if any.
    pub async fn load_state(&self) -> Result<Option<SnapshotState>, SnapshotError> {
        let sql = format!(
            "SELECT state::text FROM {} WHERE name = $1",
            quote_table(&state_table(&self.signal_table))
        );
        // A connection of its own: the cached one belongs to the snapshot
        // worker's thread, and a connection is driven by the runtime that
        // opened it.
        let client = self
            .connect
            .connect_sql()
            .await
            .map_err(|e| SnapshotError::Transient(e.to_string()))?;
        let text: Option<String> = client
            .query_opt(&sql, &[&self.state_name])
            .await
            .map_err(transient)?
            .map(|r| r.try_get(0))
            .transpose()
            .map_err(|e| {
                SnapshotError::Definite(format!("stored snapshot state is unreadable: {e}"))
            })?;
        match text {
            None => Ok(None),
            Some(text) => serde_json::from_str(&text).map(Some).map_err(|e| {
                SnapshotError::Definite(format!("stored snapshot state is unreadable: {e}"))
            }),
        }
    }
}

pub(crate) fn classify(err: tokio_postgres::Error) -> SnapshotError {
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

/// Opens a chunk's transaction; its first query fixes the snapshot the
/// chunk is read in (`SET` takes none).
///
/// The planner settings make every chunk query walk the key index in order
/// and stop after `limit` rows, whatever the statistics say. On a table
/// that was never analyzed (after a bulk load, a restore, a migration) the
/// planner's default range selectivity makes `Limit → Sort → Bitmap Heap
/// Scan` over the whole rest of the range look cheaper, which costs O(rest
/// of the table) per chunk: a quadratic snapshot. A hint local to the
/// transaction is chosen over a query shape or an `EXPLAIN` check at start
/// because it also holds for the generic plan the server caches after five
/// executions, for every later chunk, and costs nothing: it travels in the
/// same round trip as `BEGIN`. See docs/architecture.md, "Chunk queries".
pub(crate) const BEGIN_SNAPSHOT: &str = concat!(
    "START TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY; ",
    "SET LOCAL enable_sort = off; SET LOCAL enable_incremental_sort = off; ",
    "SET LOCAL enable_bitmapscan = off; SET LOCAL enable_seqscan = off"
);
const SNAPSHOT_SQL: &str = "SELECT pg_current_snapshot()::text";
/// The planner's row count, summed over the partitions of a partitioned
/// table (a plain table is its own only leaf); never-analyzed counts as 0.
const ESTIMATE_SQL: &str = "SELECT coalesce(sum(greatest(c.reltuples, 0)), 0)::float4 \
     FROM pg_partition_tree($1::oid::regclass) t JOIN pg_class c ON c.oid = t.relid WHERE t.isleaf";

fn visibility_of(row: tokio_postgres::Row) -> Result<Visibility, SnapshotError> {
    let text: String = row
        .try_get(0)
        .map_err(|e| SnapshotError::Transient(e.to_string()))?;
    text.parse()
        .map_err(|e: crate::visibility::VisibilityParseError| {
            SnapshotError::Transient(e.to_string())
        })
}

/// The table's SQL for the order `request` asks for: its key, else the
/// signal's surrogate key, else its physical order; checked against the
/// catalog, with one line on what is wrong.
fn in_order_of(
    cached: Arc<TableSql>,
    request: &ChunkRequest,
) -> Result<Arc<TableSql>, SnapshotError> {
    let order = match &request.surrogate_key {
        Some(column) => ChunkOrder::Surrogate(column.clone()),
        None if cached.info.key.is_empty() => ChunkOrder::Physical,
        None => return Ok(cached),
    };
    TableSql::ordered(cached.info.clone(), order)
        .map(Arc::new)
        .map_err(SnapshotError::Definite)
}

/// Parameters of a chunk query: the lower bound (after the last key, if
/// any), the upper bound, the limit; all as text, cast by the query.
fn chunk_params(request: &ChunkRequest, upper: &[String]) -> Vec<String> {
    let mut params: Vec<String> = Vec::with_capacity(2 * upper.len() + 1);
    if let Some(after) = &request.after_key {
        params.extend(after.iter().cloned());
    }
    params.extend(upper.iter().cloned());
    params.push(request.limit.to_string());
    params
}

#[async_trait]
impl ChunkSource for PgChunkSource {
    async fn open_window(&self, window: &str) -> Result<(), SnapshotError> {
        self.write_low_watermark(format!("{window}-open")).await
    }

    async fn emit_marker(&self, content: &str) -> Result<(), SnapshotError> {
        self.with_conn(async |conn| {
            conn.client
                .execute(
                    "SELECT pg_logical_emit_message(true, $1, $2)",
                    &[&cdc_engine::snapshot::RESYNC_PREFIX, &content],
                )
                .await
                .map(|_| ())
                .map_err(transient)
        })
        .await
    }

    async fn close_window(&self, window: &str) -> Result<(), SnapshotError> {
        self.write_high_watermark(format!("{window}-open"), format!("{window}-close"))
            .await
    }

    async fn select_chunk(&self, request: &ChunkRequest) -> Result<SelectedChunk, SnapshotError> {
        if self.table_sql(&request.table).is_none() {
            self.load_table(&request.table).await?;
        }
        let (sql, chunk_sql) = self.chunk_query(request)?;
        match self.select_in_shape(request, &sql, &chunk_sql).await {
            Ok((chunk, signature)) if signature == sql.info.signature() => Ok(chunk),
            // Rows of another shape than the SQL was built for (a column
            // added, a key changed) in the chunk's own snapshot.
            Ok(_) => match self.refresh_shape(&sql).await? {
                Some(change) => Err(SnapshotError::ShapeChanged(change)),
                None => Err(SnapshotError::Transient(format!(
                    "{} changed shape during the chunk; selecting it again",
                    request.table
                ))),
            },
            // A dropped or renamed column, a changed type: the statement
            // fails until it is built for the new shape.
            Err(err @ SnapshotError::Definite(_)) => match self.refresh_shape(&sql).await? {
                Some(change) => Err(SnapshotError::ShapeChanged(change)),
                None => Err(err),
            },
            Err(err) => Err(err),
        }
    }

    fn check_filter(&self, filter: &str) -> Result<(), String> {
        check_filter(filter)
    }

    /// SQL: rows matching either condition.
    fn union_filters(&self, a: &str, b: &str) -> Option<String> {
        Some(format!("({a}) OR ({b})"))
    }

    fn lane(&self) -> Option<Arc<dyn ChunkSource>> {
        Some(Arc::new(self.another()))
    }

    /// The default search path's schema.
    fn namespace(&self) -> Option<&str> {
        Some(cdc_signal::DEFAULT_SCHEMA)
    }

    async fn save_state(&self, state: &SnapshotState) -> Result<(), SnapshotError> {
        if !self.lease.is_fresh() {
            return Err(SnapshotError::Definite(
                "this instance's lease is not confirmed: progress is saved by the active instance"
                    .into(),
            ));
        }
        let json = serde_json::to_string(state)
            .map_err(|e| SnapshotError::Transient(format!("encoding snapshot state: {e}")))?;
        // Under a lease, only the current epoch writes: a holder that lost
        // it (and may not know yet) cannot overwrite its successor's state.
        // FOR SHARE makes a concurrent epoch bump be seen.
        let state_table = quote_table(&state_table(&self.signal_table));
        let guard = if self.lease.epoch() == 0 {
            // No group (tests, benchmarks): no leases table either.
            "$3::bigint = 0".to_owned()
        } else {
            format!(
                "EXISTS (SELECT 1 FROM {} WHERE slot = $1 AND epoch = $3 FOR SHARE)",
                quote_table(&crate::lease::leases_table(&self.signal_table))
            )
        };
        let sql = format!(
            "INSERT INTO {state_table} (name, state, updated_at) SELECT $1, $2::text::jsonb, now() \
             WHERE {guard} \
             ON CONFLICT (name) DO UPDATE SET state = excluded.state, updated_at = now()"
        );
        let name = self.state_name.clone();
        let epoch = self.lease.epoch();
        let written = self
            .with_conn(async |conn| {
                conn.client
                    .execute(&sql, &[&name, &json, &epoch])
                    .await
                    .map_err(transient)
            })
            .await?;
        if written == 0 {
            return Err(SnapshotError::Definite(format!(
                "another instance holds the lease of slot '{name}' now (epoch {epoch} is over): progress not saved"
            )));
        }
        Ok(())
    }
}
