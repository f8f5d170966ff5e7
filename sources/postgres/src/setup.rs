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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
    /// What was checked and found right: printed by `cdc check`, logged at
    /// info by `cdc run`.
    Info,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    pub message: String,
    /// An error about one table only: `cdc run` leaves that table out and
    /// captures the rest.
    pub table: Option<TableRef>,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        };
        write!(f, "{label}: {}", self.message)
    }
}

impl Finding {
    pub(crate) fn error(message: String) -> Finding {
        Finding {
            severity: Severity::Error,
            message,
            table: None,
        }
    }

    pub(crate) fn warning(message: String) -> Finding {
        Finding {
            severity: Severity::Warning,
            message,
            table: None,
        }
    }

    pub(crate) fn info(message: String) -> Finding {
        Finding {
            severity: Severity::Info,
            message,
            table: None,
        }
    }
}

fn error(message: String) -> Finding {
    Finding::error(message)
}

fn warning(message: String) -> Finding {
    Finding::warning(message)
}

/// An error that leaves one table out of the capture.
fn table_error(table: &TableRef, message: String) -> Finding {
    Finding {
        severity: Severity::Error,
        message,
        table: Some(table.clone()),
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
    /// A slot guard fired under `on_slot_lost = "fail"`.
    #[error("{0}")]
    SlotLost(String),
}

/// A failed query as a [`SetupError`], naming what was being done. `Fn`, so
/// one closure serves every step of a query (`map_err(&err)`).
pub(crate) fn sql_err(what: impl Into<String>) -> impl Fn(tokio_postgres::Error) -> SetupError {
    let what = what.into();
    move |err| SetupError::Sql {
        what: what.clone(),
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
    if let Some(finding) = spill_dir_finding(config).await {
        findings.push(finding);
    }
    let wal_level: String = client
        .query_one("SELECT current_setting('wal_level')", &[])
        .await
        .map_err(sql_err("reading wal_level"))?
        .try_get(0)
        .map_err(sql_err("reading wal_level"))?;
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
    let (user, can_replicate): (String, bool) = (
        row.try_get(0).map_err(sql_err("reading role privileges"))?,
        row.try_get(1).map_err(sql_err("reading role privileges"))?,
    );
    if !can_replicate {
        findings.push(error(format!(
            "role '{user}' lacks the REPLICATION privilege: run ALTER ROLE {} WITH REPLICATION",
            quote_ident(&user)
        )));
    }
    if config.tables.is_empty() && config.patterns.is_empty() {
        findings.push(error(
            "no tables configured: set source.tables, e.g. [\"public.orders\"]".into(),
        ));
    }
    let mut tables = Vec::new();
    let mut names = config.tables.clone();
    if !config.patterns.is_empty() {
        let own = crate::patterns::own_tables(&config.signal_table);
        let candidates: Vec<TableRef> = crate::patterns::candidates(client, &own)
            .await?
            .into_iter()
            .map(|(table, _)| table)
            .collect();
        let (matched, unmatched) = crate::patterns::expand(&config.patterns, &candidates);
        for pattern in unmatched {
            findings.push(warning(pattern.no_match_line()));
        }
        for table in matched {
            if !names.contains(&table) {
                names.push(table);
            }
        }
    }
    for table in &names {
        match table_info(client, table).await {
            Ok(info) => {
                if let Some(finding) = key_finding(&info, config) {
                    findings.push(finding);
                }
                tables.push(info);
            }
            Err(err @ (CatalogError::NoSuchTable(_) | CatalogError::NotATable(_))) => {
                findings.push(error(format!("{err}: check source.tables")));
            }
            Err(err) => return Err(err.into()),
        }
    }
    if !config.keyless_tables.is_empty()
        && !valid_publication_name(&config.insert_only_publication())
    {
        findings.push(error(format!(
            "publication name '{}' (for tables without a key) is invalid: shorten source.publication",
            config.insert_only_publication()
        )));
    }
    for keyless in &config.keyless_tables {
        match keyless.exact() {
            Some(table) if !config.lists(&table) => findings.push(error(format!(
                "source.keyless_tables names {table}, which is not in source.tables: add it there or remove it"
            ))),
            Some(_) => {}
            // A pattern: tables matching it may be created later.
            None if !tables.iter().any(|t| keyless.matches(&t.table)) => {
                findings.push(warning(format!(
                    "source.keyless_tables pattern '{keyless}' matches no captured table yet: check it \
                     against source.tables (a matching table created later is opted in when it appears)"
                )))
            }
            None => {}
        }
    }
    if let Some(finding) = partition_root_finding(client, config, &tables).await? {
        findings.push(finding);
    }
    if config.failover_slot {
        findings.extend(crate::failover_check::findings(client, config).await?);
    }
    if let Some(row) = client
        .query_opt(
            "SELECT plugin::text, database::text FROM pg_replication_slots WHERE slot_name = $1",
            &[&config.slot],
        )
        .await
        .map_err(sql_err("reading replication slots"))?
    {
        let (plugin, database): (Option<String>, Option<String>) = (
            row.try_get(0)
                .map_err(sql_err("reading replication slots"))?,
            row.try_get(1)
                .map_err(sql_err("reading replication slots"))?,
        );
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
            .try_get(0)
            .map_err(sql_err("counting replication slots"))?;
        if free <= 0 {
            findings.push(error(
                "no free replication slot: raise max_replication_slots or drop an unused slot"
                    .into(),
            ));
        }
    }
    Ok((findings, tables))
}

/// Why a table cannot be captured as it is, if it cannot: a table without a
/// replica identity in a publication of updates and deletes makes the
/// application's own `UPDATE` and `DELETE` on it fail.
pub(crate) fn key_finding(info: &TableInfo, config: &PostgresConfig) -> Option<Finding> {
    let table = &info.table;
    let opted_in = config.keyless_opted_in(table);
    if !info.key.is_empty() {
        if !info.has_replica_identity() {
            // A key, but REPLICA IDENTITY NOTHING.
            return Some(table_error(
                table,
                format!(
                    "table {table} has REPLICA IDENTITY NOTHING: publishing its updates and deletes would make them fail; run ALTER TABLE {} REPLICA IDENTITY DEFAULT",
                    quote_table(table)
                ),
            ));
        }
        return None;
    }
    let quoted = quote_table(table);
    match (opted_in, info.replica_identity == 'f') {
        (false, _) => Some(table_error(
            table,
            format!(
                "table {table} has neither a primary key nor a replica identity index, so it is not captured \
                 (publishing it would make the application's UPDATE and DELETE on it fail): add a primary key, \
                 or run ALTER TABLE {quoted} REPLICA IDENTITY FULL and add \"{table}\" to source.keyless_tables"
            ),
        )),
        (true, true) => Some(warning(format!(
            "table {table} has no key: its events carry the whole row (REPLICA IDENTITY FULL) and no key; \
             snapshots read it in ctid ranges, or in the order of a signal's \"surrogate-key\""
        ))),
        (true, false) => Some(warning(format!(
            "table {table} has no key and no REPLICA IDENTITY FULL: only its inserts and truncates are captured \
             (publication '{}'); run ALTER TABLE {quoted} REPLICA IDENTITY FULL to capture updates and deletes",
            config.insert_only_publication()
        ))),
    }
}

/// A partitioned table is published through its root, or its changes come
/// under each partition's name and never match the captured table.
async fn partition_root_finding(
    client: &Client,
    config: &PostgresConfig,
    tables: &[TableInfo],
) -> Result<Option<Finding>, SetupError> {
    let Some(partitioned) = tables.iter().find(|t| t.partitioned) else {
        return Ok(None);
    };
    let via_root = publication(client, &config.publication)
        .await?
        .map(|p| p.via_root);
    Ok(match via_root {
        Some(false) => Some(error(format!(
            "publication '{}' does not publish via the partition root, so changes to the partitions of {} \
             arrive under the partitions' names and are not captured: run ALTER PUBLICATION {} SET (publish_via_partition_root = true)",
            config.publication,
            partitioned.table,
            quote_ident(&config.publication)
        ))),
        _ => None,
    })
}

/// What setup needs to know of an existing publication.
pub(crate) struct PublicationFlags {
    pub(crate) all_tables: bool,
    pub(crate) via_root: bool,
}

pub(crate) async fn publication(
    client: &Client,
    name: &str,
) -> Result<Option<PublicationFlags>, SetupError> {
    let row = client
        .query_opt(
            "SELECT puballtables, pubviaroot FROM pg_publication WHERE pubname = $1",
            &[&name],
        )
        .await
        .map_err(sql_err("reading publications"))?;
    row.map(|r| {
        Ok(PublicationFlags {
            all_tables: r.try_get(0)?,
            via_root: r.try_get(1)?,
        })
    })
    .transpose()
    .map_err(sql_err("reading publications"))
}

/// Streamed transactions past the memory budget go to `source.spill_dir`:
/// a directory that cannot take a file fails at start, not at the first
/// large transaction.
async fn spill_dir_finding(config: &PostgresConfig) -> Option<Finding> {
    if config.streaming != crate::config::StreamingMode::Auto {
        return None;
    }
    let dir = config.spill_dir.clone();
    let probe = tokio::task::spawn_blocking(move || tempfile::tempfile_in(dir).map(drop)).await;
    let why = match probe {
        Ok(Ok(())) => return None,
        Ok(Err(err)) => err.to_string(),
        Err(join) => join.to_string(),
    };
    Some(error(format!(
        "source.spill_dir '{}' cannot hold streamed transactions ({why}): point it at a writable directory, or set source.streaming = \"off\"",
        config.spill_dir.display()
    )))
}

/// The tables one publication should hold, and the captured tables it must
/// not hold.
struct PublicationPlan<'a> {
    name: String,
    /// `publish = '…'` when cdc creates it.
    publish: &'static str,
    wanted: Vec<&'a TableRef>,
    unwanted: Vec<&'a TableRef>,
    /// Wanted, and nothing works without it: the signal table.
    required: Option<&'a TableRef>,
}

/// What [`ensure`] set up.
pub struct Ensured {
    /// The publications to stream.
    pub publications: Vec<String>,
    pub guarded: crate::positions::Guarded,
    /// Tables to capture that a publication lacks and this role cannot add:
    /// left out of this start, each said in one line.
    pub left_out: Vec<TableRef>,
}

/// Create what is missing: the signal table, the publications (or the
/// tables they lack) and the slot. `tables` are the tables to capture,
/// `configured` every configured table that exists (captured or left out).
pub async fn ensure(
    client: &Client,
    config: &PostgresConfig,
    tables: &[TableInfo],
    configured: &[TableInfo],
) -> Result<Ensured, SetupError> {
    let signal = &config.signal_table;
    ensure_signal_table(client, signal).await?;

    let (full, insert_only): (Vec<&TableInfo>, Vec<&TableInfo>) =
        tables.iter().partition(|t| t.has_replica_identity());
    let mut main = PublicationPlan {
        name: config.publication.clone(),
        publish: "insert, update, delete, truncate",
        wanted: full.iter().map(|t| &t.table).collect(),
        // Never in a publication of updates and deletes: it would break the
        // application's own writes. Also mends what an older run left.
        unwanted: configured
            .iter()
            .filter(|t| !t.has_replica_identity())
            .map(|t| &t.table)
            .collect(),
        required: Some(signal),
    };
    main.wanted.push(signal);
    let mut left_out = ensure_publication(client, &main).await?;
    let mut publications = vec![main.name];
    // Also when a keyless table opted in may be created later: the
    // publications streamed are fixed when the stream starts.
    let later = !config.patterns.is_empty() && !config.keyless_tables.is_empty();
    if !insert_only.is_empty() || later {
        let plan = PublicationPlan {
            name: config.insert_only_publication(),
            publish: "insert, truncate",
            wanted: insert_only.iter().map(|t| &t.table).collect(),
            unwanted: Vec::new(),
            required: None,
        };
        left_out.extend(ensure_publication(client, &plan).await?);
        publications.push(plan.name);
    }

    // Before a slot is created: a missing one may be a lost one.
    let guarded = crate::positions::guard(client, config).await?;
    Ok(Ensured {
        publications,
        guarded,
        left_out,
    })
}

/// Create the publication, or add the tables it lacks and drop the ones it
/// must not hold. A publication cdc creates publishes partitioned tables
/// through their root, so events carry the captured table's name. Returns
/// the wanted tables it lacks and this role cannot add.
async fn ensure_publication(
    client: &Client,
    plan: &PublicationPlan<'_>,
) -> Result<Vec<TableRef>, SetupError> {
    let name = quote_ident(&plan.name);
    // Not its owner (or not allowed to create one): say who can fix it.
    let alter_err = |sql: String| {
        let publication = plan.name.clone();
        move |err: tokio_postgres::Error| {
            match err.code() {
            Some(code) if *code == tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE => {
                SetupError::Preflight(format!(
                    "publication '{publication}' cannot be changed by this role ({}): have its owner run `{sql}`, or set source.publication to a publication this role owns",
                    describe_pg_error(&err)
                ))
            }
            _ => SetupError::Sql {
                what: format!("publication '{publication}'"),
                reason: describe_pg_error(&err),
            },
        }
        }
    };
    let all_tables = publication(client, &plan.name).await?.map(|p| p.all_tables);
    let mut left_out = Vec::new();
    match all_tables {
        None => {
            let list: Vec<String> = plan.wanted.iter().map(|t| quote_table(t)).collect();
            // Empty until a table created later is added.
            let tables = if list.is_empty() {
                String::new()
            } else {
                format!("FOR TABLE {} ", list.join(", "))
            };
            let sql = format!(
                "CREATE PUBLICATION {name} {tables}\
                 WITH (publish = '{}', publish_via_partition_root = true)",
                plan.publish
            );
            client
                .batch_execute(&sql)
                .await
                .map_err(alter_err(sql.clone()))?;
            tracing::info!(publication = %plan.name, "created publication");
        }
        Some(true) => {}
        Some(false) => {
            let present = publication_tables(client, &plan.name).await?;
            let unlisted: Vec<&TableRef> = plan
                .wanted
                .iter()
                .copied()
                .filter(|t| !present.contains(t))
                .collect();
            let missing: Vec<String> = unlisted.iter().map(|t| quote_table(t)).collect();
            if !missing.is_empty() {
                let sql = format!("ALTER PUBLICATION {name} ADD TABLE {}", missing.join(", "));
                match client.batch_execute(&sql).await {
                    Ok(()) => {
                        tracing::info!(publication = %plan.name, added = %missing.join(", "), "added tables to publication");
                    }
                    // Not its owner: the tables it lacks are left out and
                    // the rest is captured; the watcher captures each once
                    // the owner adds it. Not the signal table: without it
                    // no snapshot can be taken.
                    Err(err)
                        if err.code()
                            == Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE)
                            && !unlisted.iter().any(|t| Some(*t) == plan.required) =>
                    {
                        left_out = unlisted.iter().map(|t| (*t).clone()).collect();
                        tracing::error!(
                            "publication '{}' cannot be changed by this role ({}): {} left out until its owner runs `{sql}` (cdc captures each at its next check after that), or set source.publication to a publication this role owns",
                            plan.name,
                            describe_pg_error(&err),
                            missing.join(", ")
                        );
                    }
                    Err(err) => return Err(alter_err(sql.clone())(err)),
                }
            }
            let extra: Vec<String> = plan
                .unwanted
                .iter()
                .filter(|t| present.contains(t))
                .map(|t| quote_table(t))
                .collect();
            if !extra.is_empty() {
                let sql = format!("ALTER PUBLICATION {name} DROP TABLE {}", extra.join(", "));
                client
                    .batch_execute(&sql)
                    .await
                    .map_err(alter_err(sql.clone()))?;
                tracing::warn!(publication = %plan.name, dropped = %extra.join(", "), "dropped tables without a replica identity from the publication: their updates and deletes would fail");
            }
        }
    }
    Ok(left_out)
}

/// The tables publication `name` lists by name (none when it does not exist).
pub(crate) async fn publication_tables(
    client: &Client,
    name: &str,
) -> Result<Vec<TableRef>, SetupError> {
    client
        .query(
            "SELECT n.nspname::text, c.relname::text FROM pg_publication_rel pr \
             JOIN pg_publication p ON p.oid = pr.prpubid \
             JOIN pg_class c ON c.oid = pr.prrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE p.pubname = $1",
            &[&name],
        )
        .await
        .map_err(sql_err("reading publication tables"))?
        .into_iter()
        .map(|r| {
            Ok(TableRef::new(
                r.try_get::<_, String>(0)?,
                r.try_get::<_, String>(1)?,
            ))
        })
        .collect::<Result<_, tokio_postgres::Error>>()
        .map_err(sql_err("reading publication tables"))
}

async fn ensure_signal_table(client: &Client, signal: &TableRef) -> Result<(), SetupError> {
    let sql = format!(
        "CREATE SCHEMA IF NOT EXISTS {schema}; \
         CREATE TABLE IF NOT EXISTS {table} (id text PRIMARY KEY, type text NOT NULL, data jsonb); \
         CREATE TABLE IF NOT EXISTS {state} (name text PRIMARY KEY, state jsonb NOT NULL, \
           updated_at timestamptz NOT NULL DEFAULT now()); {positions}",
        schema = quote_ident(&signal.schema),
        table = quote_table(signal),
        state = quote_table(&crate::snapshot::state_table(signal)),
        positions = crate::positions::create_sql(signal),
    );
    client
        .batch_execute(&sql)
        .await
        .map_err(sql_err(format!("signal table {signal}")))
}
