//! PostgreSQL source for `cdc`: a pgoutput log reader over the streaming
//! replication protocol, preflight checks and setup.
//!
//! ```text
//!  slot ──CopyBoth──► replication ──XLogData──► pgoutput::decode ──► decoder
//!   ▲                                                                  │
//!   └── standby status (flush = pipeline's durable LSN)    LogItems ◄──┘
//! ```

pub mod binary;
pub mod catalog;
mod chunk_rows;
mod chunk_sql;
pub mod config;
pub mod connect;
pub mod decoder;
mod failover_check;
mod kinds;
pub mod late_tables;
pub mod lease;
mod liveness;
mod losses;
pub mod operator;
pub mod partitions;
pub mod patterns;
pub mod pgoutput;
pub mod pgoutput_v2;
mod physical;
pub mod positions;
pub mod replication;
pub mod setup;
mod shape_refresh;
pub mod snapshot;
pub mod source_block;
mod stream;
pub mod streamed;
pub mod types;
pub mod visibility;
pub mod wal_watch;

use std::sync::Arc;

use async_trait::async_trait;
use cdc_engine::{Source, SourceError, SourceMeta, StreamContext, TableRef};

pub use catalog::TableInfo;
pub use config::{BinaryMode, PostgresConfig, SlotLostPolicy, StreamingMode};
pub use connect::{ConnectConfig, ConnectError, SslMode};
pub use setup::{Finding, SetupError, Severity};

/// A prepared PostgreSQL source: checked, set up, ready to stream.
pub struct PostgresSource {
    config: PostgresConfig,
    meta: Arc<SourceMeta>,
    /// The tables captured: those of the configuration that can be.
    tables: Vec<TableInfo>,
    /// Streamed together: the main one, and the insert-only one for tables
    /// without a replica identity.
    publications: Vec<String>,
    /// What the slot guards decided at start-up.
    guarded: positions::Guarded,
    handoff: positions::Handoff,
    /// Every table of the catalog `source.tables` named at start, captured
    /// or refused: the watcher of tables created later skips them.
    known: Vec<(TableRef, u32)>,
    /// Those of `known` that could not be captured (no key).
    refused: Vec<TableRef>,
    /// Tables a pattern matches that were in cdc's publications before
    /// this start.
    published: Vec<TableRef>,
}

/// Run the preflight checks only.
pub async fn check(config: &PostgresConfig) -> Result<Vec<Finding>, SetupError> {
    let client = config
        .connect
        .connect_sql()
        .await
        .map_err(|e| SetupError::Preflight(e.to_string()))?;
    let (findings, _) = setup::preflight(&client, config).await?;
    Ok(findings)
}

impl PostgresSource {
    /// Check the server, refuse to start on any error finding (each is
    /// logged as one line), and create what is missing.
    pub async fn prepare(config: PostgresConfig) -> Result<Self, SetupError> {
        let client = config
            .connect
            .connect_sql()
            .await
            .map_err(|e| SetupError::Preflight(e.to_string()))?;
        let (findings, mut tables) = setup::preflight(&client, &config).await?;
        let configured = tables.clone();
        let mut errors = Vec::new();
        for finding in findings {
            match (finding.severity, &finding.table) {
                (Severity::Warning, _) => tracing::warn!("{}", finding.message),
                (Severity::Info, _) => tracing::info!("{}", finding.message),
                // One table cannot be captured: say so and capture the rest.
                (Severity::Error, Some(table)) => {
                    tracing::error!("{}", finding.message);
                    tables.retain(|t| &t.table != table);
                }
                (Severity::Error, None) => errors.push(finding.message),
            }
        }
        // A pattern may match tables created later: streaming none yet is
        // fine then.
        if tables.is_empty() && errors.is_empty() && config.patterns.is_empty() {
            errors.push("no table can be captured: see the lines above".into());
        }
        if !errors.is_empty() {
            return Err(SetupError::Preflight(errors.join("; ")));
        }
        // Before ensure adds the listed ones: a pattern's match already in
        // the publication was added by an earlier run's watcher.
        let mut published = Vec::new();
        if !config.patterns.is_empty() {
            for name in [config.publication.clone(), config.insert_only_publication()] {
                published.extend(setup::publication_tables(&client, &name).await?);
            }
        }
        let setup::Ensured {
            publications,
            guarded,
            left_out,
        } = setup::ensure(&client, &config, &tables, &configured).await?;
        tables.retain(|t| !left_out.contains(&t.table));
        if tables.is_empty() && config.patterns.is_empty() {
            return Err(SetupError::Preflight(
                "no table can be captured: see the lines above".into(),
            ));
        }
        let refused = configured
            .iter()
            .filter(|c| !tables.iter().any(|t| t.table == c.table))
            .map(|t| t.table.clone())
            .collect();
        let meta = Arc::new(SourceMeta {
            connector: "postgresql",
            name: config.name.clone(),
            db: config.connect.dbname.clone(),
            block: &source_block::POSTGRES_BLOCK,
        });
        Ok(PostgresSource {
            config,
            meta,
            tables,
            publications,
            guarded,
            handoff: positions::Handoff::default(),
            refused,
            published,
            known: configured
                .iter()
                .map(|t| (t.table.clone(), t.oid))
                .collect(),
        })
    }

    /// A slot guard fired and the policy is `resnapshot`: every captured
    /// table must be snapshotted again.
    pub fn needs_resnapshot(&self) -> bool {
        self.guarded.resnapshot
    }

    /// With `resnapshot`: the range of the log that was not captured, as
    /// `from–to` LSNs, for the resync markers.
    pub fn lost_range(&self) -> Option<String> {
        self.guarded.lost.map(|(from, to)| {
            format!(
                "{}-{}",
                replication::format_lsn(from),
                replication::format_lsn(to)
            )
        })
    }

    /// After a stream ended with [`SourceError::ServerChanged`]: what it had
    /// read from the old server, for the next run's
    /// [`PostgresConfig::read_before_failover`].
    pub fn handoff(&self) -> positions::Handoff {
        self.handoff.clone()
    }

    /// What every event of this source names in its `source` block.
    pub fn meta(&self) -> Arc<SourceMeta> {
        self.meta.clone()
    }

    pub fn config(&self) -> &PostgresConfig {
        &self.config
    }

    pub fn tables(&self) -> &[TableInfo] {
        &self.tables
    }

    /// Captured tables that need a snapshot if captured for the first time,
    /// whatever `snapshot.new_tables` says: a pattern's match that an
    /// earlier run added to the publication while running and stopped before
    /// its capture marker, so its first rows are in no log record.
    pub fn added_while_running(&self) -> Vec<TableRef> {
        self.tables
            .iter()
            .map(|t| &t.table)
            .filter(|t| !self.config.tables.contains(t) && self.published.contains(t))
            .cloned()
            .collect()
    }
}

#[async_trait]
impl Source for PostgresSource {
    async fn stream(&self, ctx: StreamContext) -> Result<(), SourceError> {
        let late = late_tables::LateTables::default();
        let decoder = decoder::Decoder::new(
            self.meta.clone(),
            self.tables.clone(),
            self.config.signal_table.clone(),
            late.clone(),
        );
        let late_watched = late.clone();
        // Also for tables left out at start (no key, or a publication this
        // role cannot alter): each is captured once that is fixed.
        if !self.config.patterns.is_empty() || !self.refused.is_empty() {
            late_tables::spawn(
                &self.config,
                self.publications.clone(),
                self.known.clone(),
                self.refused.clone(),
                late,
                ctx.shutdown.clone(),
            );
        }
        let roots: Vec<(TableRef, u32)> = self
            .tables
            .iter()
            .filter(|t| t.partitioned)
            .map(|t| (t.table.clone(), t.oid))
            .collect();
        if !roots.is_empty() || !self.config.patterns.is_empty() {
            partitions::spawn(
                &self.config,
                roots,
                late_watched.clone(),
                ctx.shutdown.clone(),
            );
        }
        let watched: Vec<TableRef> = self.tables.iter().map(|t| t.table.clone()).collect();
        wal_watch::spawn(
            &self.config,
            watched,
            late_watched,
            ctx.shutdown.clone(),
            ctx.telemetry.clone(),
        );
        stream::run(
            &self.config,
            &self.publications,
            decoder,
            ctx,
            self.guarded.start_lsn,
            &self.guarded.server,
            &self.handoff,
        )
        .await
    }
}
