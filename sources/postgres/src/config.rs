//! Settings of the PostgreSQL source.

use std::time::Duration;

use cdc_engine::TableRef;

use crate::connect::ConnectConfig;

#[derive(Debug, Clone)]
pub struct PostgresConfig {
    pub connect: ConnectConfig,
    /// The tables to capture, named exactly.
    pub tables: Vec<TableRef>,
    /// Entries of `source.tables` with a wildcard: every table they match
    /// is captured, at start and when created later (README, "Table
    /// patterns").
    pub patterns: Vec<crate::patterns::TablePattern>,
    pub slot: String,
    pub publication: String,
    /// Signals and watermarks; its schema also holds the engine's state.
    pub signal_table: TableRef,
    /// The logical name of this capture (`source.name` in events).
    pub name: String,
    /// How often a standby status update is sent while nothing else asks.
    pub status_interval: Duration,
    /// Tables captured although they have no key (primary key or replica
    /// identity index). With `REPLICA IDENTITY FULL` their updates and
    /// deletes carry the whole old row; without it only their inserts are
    /// captured, through the insert-only publication. Exact names or
    /// patterns, as in `source.tables`.
    pub keyless_tables: Vec<crate::patterns::TablePattern>,
    /// What start-up does when the slot was lost (README, "When the slot is
    /// lost").
    pub on_slot_lost: SlotLostPolicy,
    /// Warn when the slot's `safe_wal_size` falls below this many bytes;
    /// `None` turns the check off.
    pub slot_wal_warning_bytes: Option<i64>,
    /// Write a heartbeat message into the log this often, for servers where
    /// keepalives alone do not let the slot advance; `None`: off.
    pub heartbeat_interval: Option<Duration>,
    /// Create the slot with `FAILOVER` (PostgreSQL 17+), so standbys with
    /// `sync_replication_slots` keep a copy a promotion can use.
    pub failover_slot: bool,
    /// Set by the caller after a run ended in a failover (see
    /// `positions::ReadBeforeFailover`).
    pub read_before_failover: Option<crate::positions::ReadBeforeFailover>,
    /// Gates streaming and acknowledging (see `lease.rs`); `Lease::sole()`
    /// when the caller runs no group.
    pub lease: cdc_engine::Lease,
    /// A replication connection on which neither data nor a keepalive
    /// arrives for this long is dead; `None`: twice the server's
    /// `wal_sender_timeout`, at least 10 s (`liveness.rs`).
    pub replication_timeout: Option<Duration>,
    /// Whether the log may come in pgoutput's binary format (README,
    /// "Binary log values").
    pub binary: BinaryMode,
    /// Whether large in-progress transactions come streamed (pgoutput
    /// version 2, README "Large transactions").
    pub streaming: StreamingMode,
    /// Bytes of streamed transactions held in memory, across all of them;
    /// past it the largest goes to a temporary file in `spill_dir`.
    pub streaming_memory: usize,
    /// Where streamed transactions past `streaming_memory` are kept until
    /// their commit (files unlinked at creation).
    pub spill_dir: std::path::PathBuf,
}

/// `source.streaming`: pgoutput's `streaming` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StreamingMode {
    /// Version 2 with `streaming 'on'`: the server sends a transaction
    /// past `logical_decoding_work_mem` as it goes instead of spilling it
    /// to its own disk.
    #[default]
    Auto,
    /// Version 1: every transaction comes whole after its commit.
    Off,
}

/// `source.binary`: pgoutput's `binary` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BinaryMode {
    /// Binary when every captured column has a binary decoder, else text.
    #[default]
    Auto,
    /// Always text.
    Off,
}

/// What to do when the slot no longer holds the changes after the engine's
/// last acknowledged position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SlotLostPolicy {
    /// Refuse to start: one line names the slot and the fix.
    #[default]
    Fail,
    /// Recreate the slot and snapshot every captured table.
    Resnapshot,
}

impl PostgresConfig {
    pub fn new(connect: ConnectConfig, tables: Vec<TableRef>) -> Self {
        PostgresConfig {
            connect,
            tables,
            patterns: Vec::new(),
            slot: "cdc".into(),
            publication: "cdc".into(),
            signal_table: TableRef::new("cdc", "signal"),
            name: "cdc".into(),
            status_interval: Duration::from_secs(10),
            keyless_tables: Vec::new(),
            on_slot_lost: SlotLostPolicy::Fail,
            slot_wal_warning_bytes: Some(1 << 30),
            heartbeat_interval: None,
            failover_slot: false,
            read_before_failover: None,
            lease: cdc_engine::Lease::sole(),
            replication_timeout: None,
            binary: BinaryMode::Auto,
            streaming: StreamingMode::Auto,
            streaming_memory: 64 << 20,
            spill_dir: std::env::temp_dir(),
        }
    }

    /// The publication of tables whose updates and deletes cannot be
    /// published (no replica identity): it publishes inserts and truncates
    /// only, so the application's own writes keep working.
    pub fn insert_only_publication(&self) -> String {
        format!("{}_insert_only", self.publication)
    }

    /// Whether `table` was opted in to capture without a key.
    pub fn keyless_opted_in(&self, table: &TableRef) -> bool {
        self.keyless_tables.iter().any(|p| p.matches(table))
    }

    /// Whether `table` is named in `source.tables`, exactly or by a pattern.
    pub fn lists(&self, table: &TableRef) -> bool {
        self.tables.contains(table) || self.patterns.iter().any(|p| p.matches(table))
    }
}
