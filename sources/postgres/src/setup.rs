//! Preflight checks and idempotent setup: the signal table, the publication
//! and the replication slot.
//!
//! Each finding is one line that names the culprit and the fix. Setup creates
//! the publication before the slot: pgoutput reads the publication through
//! the slot's historic catalog, so a slot older than its publication cannot
//! decode.

use std::fmt;

use cdc_engine::TableRef;
use tokio_postgres::Client;

use crate::catalog::{
    quote_ident, quote_table, table_info, valid_publication_name, valid_slot_name, CatalogError,
    TableInfo,
};
use crate::config::PostgresConfig;
use crate::connect::describe_pg_error;
use crate::replication::ReplicationConnection;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{label}: {}", self.message)
    }
}

fn error(message: String) -> Finding {
    Finding {
        severity: Severity::Error,
        message,
    }
}

fn warning(message: String) -> Finding {
    Finding {
        severity: Severity::Warning,
        message,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("{0}")]
    Preflight(String),
    #[error("setting up {what}: {reason}")]
    Sql { what: String, reason: String },
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

fn sql_err(what: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> SetupError {
    let what = what.into();
    move |err| SetupError::Sql {
        what,
        reason: describe_pg_error(&err),
    }
}

/// Check everything that can be checked without changing the database.
/// Returns the captured tables that exist, with their catalog information.
pub async fn preflight(
    client: &Client,
    config: &PostgresConfig,
) -> Result<(Vec<Finding>, Vec<TableInfo>), SetupError> {
    let mut findings = Vec::new();
    if !valid_slot_name(&config.slot) {
        findings.push(error(format!(
            "slot name '{}' is invalid: use lower-case letters, digits and underscores (at most 63)",
            config.slot
        )));
    }
    if !valid_publication_name(&config.publication) {
        findings.push(error(format!(
            "publication name '{}' is invalid: use letters, digits and underscores, not starting with a digit",
            config.publication
        )));
    }
    let wal_level: String = client
        .query_one("SELECT current_setting('wal_level')", &[])
        .await
        .map_err(sql_err("reading wal_level"))?
        .get(0);
    if wal_level != "logical" {
        findings.push(error(format!(
            "wal_level is '{wal_level}', must be 'logical': run ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL"
        )));
    }
    let row = client
        .query_one(
            "SELECT current_user::text, rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await
        .map_err(sql_err("reading role privileges"))?;
    let (user, can_replicate): (String, bool) = (row.get(0), row.get(1));
    if !can_replicate {
        findings.push(error(format!(
            "role '{user}' lacks the REPLICATION privilege: run ALTER ROLE {} WITH REPLICATION",
            quote_ident(&user)
        )));
    }
    if config.tables.is_empty() {
        findings.push(error(
            "no tables configured: set source.tables, e.g. [\"public.orders\"]".into(),
        ));
    }
    let mut tables = Vec::new();
    for table in &config.tables {
        match table_info(client, table).await {
            Ok(info) => {
                if info.primary_key.is_empty() {
                    let detail = if info.replica_identity == 'f' {
                        "events carry no key and it cannot be snapshotted; add a primary key"
                    } else {
                        "deletes carry no key and it cannot be snapshotted; add a primary key or run ALTER TABLE ... REPLICA IDENTITY FULL"
                    };
                    findings.push(warning(format!(
                        "table {table} has no primary key: {detail}"
                    )));
                }
                tables.push(info);
            }
            Err(err @ (CatalogError::NoSuchTable(_) | CatalogError::NotATable(_))) => {
                findings.push(error(format!("{err}: check source.tables")));
            }
            Err(err) => return Err(err.into()),
        }
    }
    if let Some(row) = client
        .query_opt(
            "SELECT plugin::text, database::text FROM pg_replication_slots WHERE slot_name = $1",
            &[&config.slot],
        )
        .await
        .map_err(sql_err("reading replication slots"))?
    {
        let (plugin, database): (Option<String>, Option<String>) = (row.get(0), row.get(1));
        if plugin.as_deref() != Some("pgoutput") {
            findings.push(error(format!(
                "replication slot '{}' exists but uses plugin {:?}, not pgoutput: choose another source.slot or drop it",
                config.slot,
                plugin.unwrap_or_default()
            )));
        } else if database.as_deref() != Some(config.connect.dbname.as_str()) {
            findings.push(error(format!(
                "replication slot '{}' belongs to database {:?}, not '{}': choose another source.slot",
                config.slot,
                database.unwrap_or_default(),
                config.connect.dbname
            )));
        }
    } else {
        let free: i64 = client
            .query_one(
                "SELECT current_setting('max_replication_slots')::int - (SELECT count(*) FROM pg_replication_slots)",
                &[],
            )
            .await
            .map_err(sql_err("counting replication slots"))?
            .get(0);
        if free <= 0 {
            findings.push(error(
                "no free replication slot: raise max_replication_slots or drop an unused slot"
                    .into(),
            ));
        }
    }
    Ok((findings, tables))
}

/// Create what is missing: the signal table, the publication (or the tables
/// it lacks) and the slot. Returns the signal table's catalog information.
pub async fn ensure(client: &Client, config: &PostgresConfig) -> Result<TableInfo, SetupError> {
    let signal = &config.signal_table;
    ensure_signal_table(client, signal).await?;
    let signal_info = table_info(client, signal).await?;

    let mut wanted: Vec<&TableRef> = config.tables.iter().collect();
    wanted.push(signal);
    let publication = client
        .query_opt(
            "SELECT puballtables FROM pg_publication WHERE pubname = $1",
            &[&config.publication],
        )
        .await
        .map_err(sql_err("reading publications"))?;
    match publication {
        None => {
            let list: Vec<String> = wanted.iter().map(|t| quote_table(t)).collect();
            let sql = format!(
                "CREATE PUBLICATION {} FOR TABLE {}",
                quote_ident(&config.publication),
                list.join(", ")
            );
            client
                .batch_execute(&sql)
                .await
                .map_err(sql_err(format!("publication '{}'", config.publication)))?;
            tracing::info!(publication = %config.publication, "created publication");
        }
        Some(row) if row.get::<_, bool>(0) => {}
        Some(_) => {
            let present: Vec<TableRef> = client
                .query(
                    "SELECT schemaname::text, tablename::text FROM pg_publication_tables WHERE pubname = $1",
                    &[&config.publication],
                )
                .await
                .map_err(sql_err("reading publication tables"))?
                .into_iter()
                .map(|r| TableRef::new(r.get::<_, String>(0), r.get::<_, String>(1)))
                .collect();
            let missing: Vec<String> = wanted
                .iter()
                .filter(|t| !present.contains(t))
                .map(|t| quote_table(t))
                .collect();
            if !missing.is_empty() {
                let sql = format!(
                    "ALTER PUBLICATION {} ADD TABLE {}",
                    quote_ident(&config.publication),
                    missing.join(", ")
                );
                client
                    .batch_execute(&sql)
                    .await
                    .map_err(sql_err(format!("publication '{}'", config.publication)))?;
                tracing::info!(publication = %config.publication, added = %missing.join(", "), "added tables to publication");
            }
        }
    }

    let exists = client
        .query_opt(
            "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1",
            &[&config.slot],
        )
        .await
        .map_err(sql_err("reading replication slots"))?
        .is_some();
    if !exists {
        let mut conn = ReplicationConnection::connect(&config.connect)
            .await
            .map_err(|e| SetupError::Sql {
                what: format!("replication slot '{}'", config.slot),
                reason: e.to_string(),
            })?;
        let lsn = conn
            .create_logical_slot(&config.slot)
            .await
            .map_err(|e| SetupError::Sql {
                what: format!("replication slot '{}'", config.slot),
                reason: e.to_string(),
            })?;
        tracing::info!(slot = %config.slot, lsn = %crate::replication::format_lsn(lsn), "created replication slot");
    }
    Ok(signal_info)
}

async fn ensure_signal_table(client: &Client, signal: &TableRef) -> Result<(), SetupError> {
    let sql = format!(
        "CREATE SCHEMA IF NOT EXISTS {schema}; \
         CREATE TABLE IF NOT EXISTS {table} (id text PRIMARY KEY, type text NOT NULL, data jsonb); \
         CREATE TABLE IF NOT EXISTS {state} (name text PRIMARY KEY, state jsonb NOT NULL, \
           updated_at timestamptz NOT NULL DEFAULT now())",
        schema = quote_ident(&signal.schema),
        table = quote_table(signal),
        state = quote_table(&crate::snapshot::state_table(signal)),
    );
    client
        .batch_execute(&sql)
        .await
        .map_err(sql_err(format!("signal table {signal}")))
}
