//! Tables created while cdc runs that match a pattern of `source.tables`
//! (README, "Tables created later"; docs/architecture.md, "Table patterns").
//!
//! No `FOR TABLES IN SCHEMA` publication: it would publish the updates and
//! deletes of every table of the schema, a keyless table created later
//! included, and PostgreSQL would then refuse the application's own
//! `UPDATE` and `DELETE` on it. Instead a watcher, on its own connection,
//! reads the catalog every status interval and, for each new matching table
//! that may be captured (a key, or opted in), in this order:
//!
//! 1. hands its catalog shape to the decoder ([`LateTables`]);
//! 2. adds it to cdc's publication: its changes stream from then on;
//! 3. waits until every transaction running when that committed has ended,
//!    so a change the log may not publish is committed, hence visible to
//!    any chunk select after step 4;
//! 4. writes a capture marker into the log. At the marker the decoder queues
//!    an incremental snapshot of the table, which brings the rows written
//!    before step 2.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cdc_engine::TableRef;
use tokio::sync::watch;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use crate::catalog::{quote_ident, quote_table, table_info, CatalogError, TableInfo};
use crate::config::PostgresConfig;
use crate::connect::describe_pg_error;
use crate::setup::{key_finding, Severity};

/// Prefix of the transactional message that marks, in the log, the point
/// from which a table created later is captured.
pub const CAPTURE_PREFIX: &str = "cdc.capture";

/// Signal ids of the snapshots queued by capture markers.
pub const NEW_TABLE_SIGNAL: &str = "cdc-new-table";

/// Catalog shapes of tables added while streaming, for the decoder: it
/// meets their Relation messages, or their marker, first in the log.
#[derive(Debug, Clone, Default)]
pub struct LateTables(Arc<Mutex<HashMap<TableRef, TableInfo>>>);

impl LateTables {
    pub fn get(&self, table: &TableRef) -> Option<TableInfo> {
        self.0.lock().ok().and_then(|t| t.get(table).cloned())
    }

    /// The tables handed in so far.
    pub fn tables(&self) -> Vec<TableRef> {
        self.0
            .lock()
            .map(|t| t.keys().cloned().collect())
            .unwrap_or_default()
    }

    pub(crate) fn insert(&self, info: TableInfo) {
        if let Ok(mut tables) = self.0.lock() {
            tables.insert(info.table.clone(), info);
        }
    }
}

/// The marker's content: the table, as JSON.
pub fn marker(table: &TableRef) -> String {
    serde_json::json!({ "schema": table.schema, "name": table.name }).to_string()
}

pub fn parse_marker(content: &[u8]) -> Option<TableRef> {
    let value: serde_json::Value = serde_json::from_slice(content).ok()?;
    Some(TableRef::new(
        value["schema"].as_str()?,
        value["name"].as_str()?,
    ))
}

/// How a table seen for the first time was dealt with.
enum Added {
    Captured,
    /// Cannot be captured as it is (no key): looked at again quietly at
    /// each check, so a key added right after `CREATE TABLE` is noticed.
    Refused,
    /// Dropped again meanwhile.
    Gone,
}

/// Watch for new matching tables until `shutdown`. `known`: every table
/// seen at start with its oid, `refused` those that could not be captured.
pub(crate) fn spawn(
    config: &PostgresConfig,
    publications: Vec<String>,
    known: Vec<(TableRef, u32)>,
    refused: Vec<TableRef>,
    late: LateTables,
    mut shutdown: watch::Receiver<bool>,
) {
    let config = config.clone();
    let mut known: HashMap<TableRef, u32> = known.into_iter().collect();
    let mut refused: HashSet<TableRef> = refused.into_iter().collect();
    tokio::spawn(async move {
        let own = crate::patterns::own_tables(&config.signal_table);
        let mut client: Option<Client> = None;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(config.status_interval) => {}
                _ = shutdown.changed() => return,
            }
            if client.as_ref().is_none_or(Client::is_closed) {
                client = config.connect.connect_sql().await.ok();
            }
            let Some(c) = &client else { continue };
            let candidates = match crate::patterns::candidates(c, &own).await {
                Ok(candidates) => candidates,
                Err(err) => {
                    tracing::debug!("reading the catalog for new tables: {err}");
                    continue;
                }
            };
            for (table, oid) in candidates {
                if !config.lists(&table) {
                    continue;
                }
                let again = refused.contains(&table);
                if known.get(&table) == Some(&oid) && !again {
                    continue;
                }
                let adder = Adder {
                    client: c,
                    config: &config,
                    publications: &publications,
                    late: &late,
                    shutdown: &mut shutdown,
                    quiet: again,
                    at_start: known.contains_key(&table),
                };
                let added = adder.add(&table).await;
                if *shutdown.borrow() {
                    return;
                }
                match added {
                    Err(reason) => tracing::warn!(
                        "table {table} created while cdc runs is not captured yet: {reason}; trying again"
                    ),
                    Ok(Added::Captured) => {
                        refused.remove(&table);
                        known.insert(table, oid);
                    }
                    Ok(Added::Refused) => {
                        refused.insert(table.clone());
                        known.insert(table, oid);
                    }
                    Ok(Added::Gone) => {}
                }
            }
        }
    });
}

struct Adder<'a> {
    client: &'a Client,
    config: &'a PostgresConfig,
    publications: &'a [String],
    late: &'a LateTables,
    shutdown: &'a mut watch::Receiver<bool>,
    /// Looked at again after a refusal: say nothing new.
    quiet: bool,
    /// The table existed when this run started and was left out then.
    at_start: bool,
}

impl Adder<'_> {
    /// Capture `table`, or say in one line why not. `Err`: try again later.
    async fn add(mut self, table: &TableRef) -> Result<Added, String> {
        let info = match table_info(self.client, table).await {
            Ok(info) => info,
            // Dropped again, or replaced by a view: nothing to capture.
            Err(CatalogError::NoSuchTable(_) | CatalogError::NotATable(_)) => {
                return Ok(Added::Gone)
            }
            Err(err) => return Err(err.to_string()),
        };
        if let Some(finding) = key_finding(&info, self.config) {
            match finding.severity {
                Severity::Error => {
                    if !self.quiet {
                        tracing::error!("{}", finding.message);
                    }
                    return Ok(Added::Refused);
                }
                Severity::Warning => tracing::warn!("{}", finding.message),
                Severity::Info => tracing::info!("{}", finding.message),
            }
        }
        // A table without a replica identity goes to the insert-only
        // publication: never into one that publishes updates and deletes.
        let publication = if info.has_replica_identity() {
            self.config.publication.clone()
        } else {
            self.config.insert_only_publication()
        };
        if !self.publications.contains(&publication) {
            if !self.quiet {
                tracing::error!(
                    "table {table} created while cdc runs needs publication '{publication}', which this run does not stream: restart cdc to capture it"
                );
            }
            return Ok(Added::Refused);
        }
        let oid = info.oid;
        self.late.insert(info);
        let all_tables = crate::setup::publication(self.client, &publication)
            .await
            .map_err(|e| e.to_string())?
            .is_some_and(|p| p.all_tables);
        // Already in it: added by the publication's owner after cdc could
        // not, or by an earlier attempt.
        let member: bool = self
            .client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_publication_rel pr JOIN pg_publication p ON p.oid = pr.prpubid \
                 WHERE p.pubname = $1 AND pr.prrelid = $2)",
                &[&publication, &oid],
            )
            .await
            .and_then(|r| r.try_get(0))
            .map_err(|e| describe_pg_error(&e))?;
        if !all_tables && !member && self.quiet && !self.owns(&publication).await? {
            // Refused before for want of ownership: the owner has not added
            // it yet, and trying again would only fill the server's log.
            return Ok(Added::Refused);
        }
        if !all_tables && !member {
            let sql = format!(
                "ALTER PUBLICATION {} ADD TABLE {}",
                quote_ident(&publication),
                quote_table(table)
            );
            match self.client.batch_execute(&sql).await {
                Ok(()) => {}
                // Added meanwhile.
                Err(err) if err.code() == Some(&SqlState::DUPLICATE_OBJECT) => {}
                Err(err) if err.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => {
                    if !self.quiet {
                        tracing::error!(
                            "table {table} created while cdc runs cannot be added to publication '{publication}' by this role ({}): have its owner run `{sql}`: cdc captures it at its next check after that",
                            describe_pg_error(&err)
                        );
                    }
                    return Ok(Added::Refused);
                }
                Err(err) => return Err(describe_pg_error(&err)),
            }
        }
        self.wait_for_older_transactions().await?;
        self.client
            .execute(
                "SELECT pg_logical_emit_message(true, $1::text, $2::text)",
                &[&CAPTURE_PREFIX, &marker(table)],
            )
            .await
            .map_err(|e| describe_pg_error(&e))?;
        let since = if self.at_start {
            "new to this run"
        } else {
            "created while cdc runs"
        };
        tracing::info!(
            publication = %publication,
            "captured table {table}, {since}: its changes stream, its rows arrive by a snapshot"
        );
        Ok(Added::Captured)
    }

    /// Whether this role may alter `publication` (its owner's member).
    async fn owns(&self, publication: &str) -> Result<bool, String> {
        self.client
            .query_one(
                "SELECT COALESCE((SELECT pg_has_role(pubowner, 'USAGE') FROM pg_publication WHERE pubname = $1), false)",
                &[&publication],
            )
            .await
            .and_then(|r| r.try_get(0))
            .map_err(|e| describe_pg_error(&e))
    }

    /// Wait until every transaction running now has ended (or shutdown).
    async fn wait_for_older_transactions(&mut self) -> Result<(), String> {
        let sql_err = |e: tokio_postgres::Error| describe_pg_error(&e);
        let xmax: String = self
            .client
            .query_one("SELECT pg_snapshot_xmax(pg_current_snapshot())::text", &[])
            .await
            .and_then(|r| r.try_get(0))
            .map_err(sql_err)?;
        let mut waited = Duration::ZERO;
        let step = Duration::from_millis(100);
        loop {
            let done: bool = self
                .client
                .query_one(
                    "SELECT pg_snapshot_xmin(pg_current_snapshot()) >= $1::text::xid8",
                    &[&xmax],
                )
                .await
                .and_then(|r| r.try_get(0))
                .map_err(sql_err)?;
            if done {
                return Ok(());
            }
            if waited == Duration::from_secs(30) {
                tracing::info!(
                    "a new table's snapshot waits for transactions older than its capture to end (a long transaction is open)"
                );
            }
            tokio::select! {
                _ = tokio::time::sleep(step) => waited += step,
                _ = self.shutdown.changed() => return Err("stopping".into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_round_trip() {
        let table = TableRef::new("My \"S\"", "t.1");
        assert_eq!(parse_marker(marker(&table).as_bytes()), Some(table));
        assert_eq!(parse_marker(b"not json"), None);
        assert_eq!(parse_marker(b"{\"schema\": 1}"), None);
    }
}
