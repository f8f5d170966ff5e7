//! `cdc.toml`: every key can be overridden from the environment with
//! `CDC_<SECTION>__<KEY>` (e.g. `CDC_SOURCE__URL`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use cdc_engine::columns::{ColumnPattern, ColumnRules, HashAlgorithm, Mask};
use cdc_engine::format::{
    BinaryMode, DecimalMode, Format, IntervalMode, JsonMode, ModeError, TimePrecisionMode,
};
use cdc_engine::skipped::SkippedOperations;
use cdc_engine::TableRef;
use cdc_postgres::patterns::TablePattern;
use figment::providers::{Env, Format as _, Toml};
use figment::Figment;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub source: SourceConfig,
    pub sink: SinkConfig,
    #[serde(default)]
    pub pipeline: PipelineSettings,
    #[serde(default)]
    pub snapshot: SnapshotSettings,
    #[serde(default)]
    pub observe: ObserveSettings,
    #[serde(default)]
    pub format: FormatSettings,
}

/// `[format]`: the value modes, by Debezium's property names
/// (`decimal.handling.mode = "string"`, a dotted TOML key or a quoted one).
/// `format = "debezium"` (a preset alone) is `[format] preset = "debezium"`.
#[derive(Debug, Default)]
pub struct FormatSettings(BTreeMap<String, figment::value::Value>);

impl<'de> Deserialize<'de> for FormatSettings {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Given {
            Preset(String),
            Table(BTreeMap<String, figment::value::Value>),
        }
        Ok(match Given::deserialize(deserializer)? {
            Given::Preset(name) => FormatSettings(BTreeMap::from([(
                PRESET.to_string(),
                figment::value::Value::from(name),
            )])),
            Given::Table(table) => FormatSettings(table),
        })
    }
}

/// A `[format]` switch: `true` or `false`, also as strings (as Debezium's
/// properties are written).
fn flag(key: &str, value: &figment::value::Value) -> Result<bool> {
    match (value.to_bool(), value.as_str()) {
        (Some(on), _) => Ok(on),
        (None, Some("true")) => Ok(true),
        (None, Some("false")) => Ok(false),
        _ => bail!("format.{key} must be true or false"),
    }
}

/// The key naming a preset the other settings start from.
const PRESET: &str = "preset";
/// Kafka's `JsonConverter` property for `{schema, payload}` records.
const SCHEMAS_ENABLE: &str = "schemas.enable";

impl FormatSettings {
    /// The encoder's modes; an unknown key or value is one line naming the
    /// key and what it accepts.
    pub fn format(&self) -> Result<Format> {
        let mut format = match self.get(PRESET).map(|v| v.as_str()) {
            None | Some(Some("cdc")) => Format::default(),
            Some(Some("debezium")) => Format::debezium(),
            Some(other) => bail!(
                "format = {:?} is not a preset (known: \"debezium\", Debezium 3.6's defaults with Connect schemas; \"cdc\", cdc's typed JSON)",
                other.unwrap_or("(not a string)")
            ),
        };
        for (key, value) in self.flat() {
            if key == TRANSACTION_METADATA
                || key == HEARTBEAT_INTERVAL
                || key == SKIPPED_OPERATIONS
                || key == PRESET
                || key.starts_with("column.")
            {
                // Not a value mode: see `transaction_metadata`.
                continue;
            }
            if key == SCHEMAS_ENABLE {
                format.schemas = flag(SCHEMAS_ENABLE, value)?;
                continue;
            }
            if key == SOURCE_POSITION {
                format.omit_position = !flag(SOURCE_POSITION, value)?;
                continue;
            }
            if key == "money.fraction.digits" {
                let digits = value
                    .to_i128()
                    .and_then(|n| u16::try_from(n).ok())
                    .filter(|&n| n <= 1000);
                let Some(digits) = digits else {
                    bail!("format.money.fraction.digits must be a whole number from 0 to 1000");
                };
                format.money_fraction_digits = Some(digits);
                continue;
            }
            let Some(text) = value.as_str() else {
                bail!("format.{key} must be a string");
            };
            let mode = |err: ModeError| anyhow::anyhow!("format.{err}");
            match key.as_str() {
                DecimalMode::KEY => format.decimal = Some(text.parse().map_err(mode)?),
                TimePrecisionMode::KEY => format.time = Some(text.parse().map_err(mode)?),
                BinaryMode::KEY => format.binary = Some(text.parse().map_err(mode)?),
                IntervalMode::KEY => format.interval = Some(text.parse().map_err(mode)?),
                JsonMode::KEY => format.json = Some(text.parse().map_err(mode)?),
                _ => bail!(
                    "format.{key} is not a format setting (known: {PRESET}, {SCHEMAS_ENABLE}, {}, {}, {}, {}, {}, money.fraction.digits, {TRANSACTION_METADATA}, {HEARTBEAT_INTERVAL}, {SKIPPED_OPERATIONS}, {SOURCE_POSITION})",
                    DecimalMode::KEY,
                    TimePrecisionMode::KEY,
                    BinaryMode::KEY,
                    IntervalMode::KEY,
                    JsonMode::KEY
                ),
            }
        }
        if format.schemas {
            if format.json == Some(JsonMode::Embedded) {
                bail!(
                    "format.{} = \"embedded\" has no Connect schema: with {SCHEMAS_ENABLE} json and jsonb are strings (io.debezium.data.Json); remove one of the two",
                    JsonMode::KEY
                );
            }
            // cdc's own forms have no Connect types: Debezium's fill in.
            format = format.or_debezium_defaults();
        }
        Ok(format)
    }
}

/// Debezium's property for BEGIN/END records and each event's
/// `transaction` block (README, "Transaction metadata").
const TRANSACTION_METADATA: &str = "provide.transaction.metadata";
/// Debezium's property for heartbeat records (README, "Heartbeat records").
const HEARTBEAT_INTERVAL: &str = "heartbeat.interval.ms";
/// Debezium's property for the kinds of change left out.
const SKIPPED_OPERATIONS: &str = "skipped.operations";
/// cdc's own `source.position` member, on unless the preset is Debezium's.
const SOURCE_POSITION: &str = "source.position";

impl FormatSettings {
    /// `skipped.operations`: Debezium's comma list of `c`, `u`, `d`, `t` or
    /// `none`. Unset: `t` under the `debezium` preset (Debezium's default),
    /// nothing otherwise (cdc has always written truncates).
    pub fn skipped_operations(&self) -> Result<SkippedOperations> {
        match self.get(SKIPPED_OPERATIONS) {
            Some(value) => {
                let Some(list) = value.as_str() else {
                    bail!("format.{SKIPPED_OPERATIONS} must be a string: a comma list of c, u, d, t, or none");
                };
                SkippedOperations::parse(list)
                    .map_err(|e| anyhow::anyhow!("format.{SKIPPED_OPERATIONS}: {e}"))
            }
            None if self.get(PRESET).and_then(|v| v.as_str()) == Some("debezium") => {
                Ok(SkippedOperations::TRUNCATES)
            }
            None => Ok(SkippedOperations::NONE),
        }
    }
}

impl FormatSettings {
    /// `provide.transaction.metadata`: `true` or `false` (also as strings,
    /// as Debezium's properties are).
    pub fn transaction_metadata(&self) -> Result<bool> {
        match self.get(TRANSACTION_METADATA) {
            Some(value) => flag(TRANSACTION_METADATA, value),
            None => Ok(false),
        }
    }
}

impl FormatSettings {
    /// `heartbeat.interval.ms`: a whole number of milliseconds (also as a
    /// string); absent or 0: no heartbeat records.
    pub fn heartbeat_interval(&self) -> Result<Option<std::time::Duration>> {
        let Some(value) = self.get(HEARTBEAT_INTERVAL) else {
            return Ok(None);
        };
        let ms = value
            .to_i128()
            .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
            .and_then(|n| u64::try_from(n).ok());
        let Some(ms) = ms else {
            bail!("format.{HEARTBEAT_INTERVAL} must be a whole number of milliseconds (0: off)");
        };
        Ok((ms > 0).then(|| std::time::Duration::from_millis(ms)))
    }
}

impl FormatSettings {
    /// Debezium's column filters and masks: `column.exclude.list`,
    /// `column.mask.with.N.chars`, `column.mask.hash[.v2].ALG.with.salt.SALT`,
    /// each a comma list of Debezium's regular expressions matching whole
    /// `schema.table.column` names.
    pub fn column_rules(&self) -> Result<ColumnRules> {
        let mut rules = ColumnRules::default();
        for (key, value) in self.flat() {
            let Some(rule) = key.strip_prefix("column.") else {
                continue;
            };
            let Some(list) = value.as_str() else {
                bail!("format.{key} must be a string: a comma list of regular expressions matching schema.table.column names");
            };
            let names =
                ColumnPattern::list(list).map_err(|e| anyhow::anyhow!("format.{key}: {e}"))?;
            if rule == "exclude.list" {
                rules.exclude.extend(names);
                continue;
            }
            if rule == "include.list" {
                rules.include.extend(names);
                continue;
            }
            let chars = |n: &str| -> Result<usize> {
                n.parse::<usize>().map_err(|_| {
                    anyhow::anyhow!("format.{key}: the number of characters must be a whole number")
                })
            };
            let mask = if let Some(n) = rule
                .strip_prefix("mask.with.")
                .and_then(|r| r.strip_suffix(".chars"))
            {
                Mask::Chars(chars(n)?)
            } else if let Some(n) = rule
                .strip_prefix("truncate.to.")
                .and_then(|r| r.strip_suffix(".chars"))
            {
                Mask::Truncate(chars(n)?)
            } else if let Some(hash) = rule.strip_prefix("mask.hash.") {
                let (v2, hash) = match hash.strip_prefix("v2.") {
                    Some(rest) => (true, rest),
                    None => (false, hash.strip_prefix("v1.").unwrap_or(hash)),
                };
                let Some((name, salt)) = hash.split_once(".with.salt.") else {
                    bail!("format.{key}: expected column.mask.hash.ALGORITHM.with.salt.SALT");
                };
                let Some(algorithm) = HashAlgorithm::parse(name) else {
                    bail!("format.{key}: hash algorithm '{name}' is not one of SHA-256, SHA-384, SHA-512");
                };
                Mask::Hash {
                    algorithm,
                    salt: salt.to_string(),
                    v2,
                }
            } else {
                bail!(
                    "format.{key} is not a column setting (known: column.include.list, column.exclude.list, column.truncate.to.N.chars, column.mask.with.N.chars, column.mask.hash.ALGORITHM.with.salt.SALT)"
                );
            };
            rules
                .masks
                .extend(names.into_iter().map(|n| (n, mask.clone())));
        }
        if !rules.include.is_empty() && !rules.exclude.is_empty() {
            bail!("format.column.include.list and format.column.exclude.list are both set: keep one (as Debezium, which refuses both)");
        }
        Ok(rules)
    }
}

impl FormatSettings {
    /// Every setting by its dotted key.
    fn flat(&self) -> Vec<(String, &figment::value::Value)> {
        let mut flat = Vec::new();
        flatten("", &self.0, &mut flat);
        flat
    }

    fn get(&self, key: &str) -> Option<&figment::value::Value> {
        self.flat()
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }
}

/// `a.b.c = v` arrives as nested tables: back to dotted keys.
fn flatten<'a>(
    prefix: &str,
    map: &'a BTreeMap<String, figment::value::Value>,
    out: &mut Vec<(String, &'a figment::value::Value)>,
) {
    for (key, value) in map {
        let key = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            figment::value::Value::Dict(_, inner) => flatten(&key, inner, out),
            other => out.push((key, other)),
        }
    }
}

/// `[observe]`: the metrics and health server, and the log format.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObserveSettings {
    /// `host:port` of `/metrics` and `/health/*`; empty (the default): off.
    /// Off by default because a fixed port would make two instances on one
    /// host (a standby, the tests) fight over it, and a port should not
    /// open unasked. Port 0 picks a free one; the log line names it.
    #[serde(default)]
    pub listen: String,
    /// Read by [`Config::log_format_hint`] before the full load; here so
    /// the key is known to `deny_unknown_fields`.
    #[serde(default)]
    #[allow(dead_code)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotSettings {
    /// Snapshot every captured table on the first start.
    #[serde(default)]
    pub initial: bool,
    /// Rows per chunk.
    #[serde(default = "default_chunk_size")]
    pub chunk_size: usize,
    /// Snapshot a table captured for the first time (added to
    /// `source.tables`, or a new match of a pattern) when cdc starts
    /// (README, "Tables added later").
    #[serde(default)]
    pub new_tables: bool,
    /// Tables snapshotted at once, each with its own window in flight and
    /// its own connection (README, "Parallel snapshots").
    #[serde(default = "one")]
    pub max_parallel_tables: usize,
}

fn one() -> usize {
    1
}

impl Default for SnapshotSettings {
    fn default() -> Self {
        SnapshotSettings {
            initial: false,
            chunk_size: default_chunk_size(),
            new_tables: false,
            max_parallel_tables: 1,
        }
    }
}

/// Measured (see README, "Benchmarks"): from 16k rows on a chunk's fixed
/// cost (watermarks, a select's start) is small against its rows, and twice
/// as large gains little more while peak memory keeps growing with it.
const DEFAULT_CHUNK_SIZE: usize = 16_384;

fn default_chunk_size() -> usize {
    DEFAULT_CHUNK_SIZE
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum SourceConfig {
    Postgres(PostgresSettings),
    Mongodb(MongoSettings),
}

/// `[source] type = "mongodb"` (README, "MongoDB").
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MongoSettings {
    /// `mongodb://…/?replicaSet=rs0` or `mongodb+srv://…`; TLS and SCRAM
    /// as the URL says.
    pub url: String,
    /// `database.collection`, `*` allowed in the collection.
    pub collections: Vec<String>,
    #[serde(default = "default_signal_collection")]
    pub signal_collection: String,
    /// The logical name of the capture (`source.name`, topic prefix), and
    /// the key of its stored position and snapshot progress.
    #[serde(default = "default_cdc")]
    pub name: String,
    /// `fullDocumentBeforeChange`: `when_available` (default), `required`
    /// or `off`.
    #[serde(default)]
    pub pre_images: PreImagesSetting,
    /// When the stored resume token is no longer in the oplog.
    #[serde(default)]
    pub on_history_lost: OnSlotLost,
    /// How long an idle `getMore` waits: the idle stream's heartbeat.
    #[serde(default = "default_max_await_ms")]
    pub max_await_ms: u64,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PreImagesSetting {
    #[default]
    WhenAvailable,
    Required,
    Off,
}

fn default_signal_collection() -> String {
    "cdc.signal".into()
}

fn default_max_await_ms() -> u64 {
    1000
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSettings {
    pub url: String,
    pub tables: Vec<String>,
    #[serde(default = "default_cdc")]
    pub slot: String,
    #[serde(default = "default_cdc")]
    pub publication: String,
    #[serde(default = "default_signal_table")]
    pub signal_table: String,
    /// The logical name of the capture (`source.name`, topic prefix).
    #[serde(default = "default_cdc")]
    pub name: String,
    #[serde(default = "default_status_interval")]
    pub status_interval_secs: u64,
    /// Tables of `tables` captured although they have no primary key or
    /// replica identity index (README, "Tables without a key").
    #[serde(default)]
    pub keyless_tables: Vec<String>,
    /// What start-up does when the slot was lost (README, "When the slot is
    /// lost").
    #[serde(default)]
    pub on_slot_lost: OnSlotLost,
    /// With `resnapshot`: emit a truncate of each table before its
    /// re-snapshot (Debezium's way) besides the resync markers.
    #[serde(default)]
    pub resync_truncate: bool,
    /// Warn when the slot has fewer bytes of WAL left than this before the
    /// server invalidates it (`safe_wal_size`); 0 turns it off.
    #[serde(default = "default_slot_wal_warning")]
    pub slot_wal_warning_mb: u64,
    /// Seconds between heartbeat messages written into the log; 0: off.
    #[serde(default)]
    pub heartbeat_interval_secs: u64,
    /// Create the slot as a failover slot (PostgreSQL 17+).
    #[serde(default)]
    pub failover_slot: bool,
    /// Seconds without data or keepalive after which the replication
    /// connection is dead and cdc reconnects; unset: twice the server's
    /// `wal_sender_timeout`, at least 10 (README, "Faults we test").
    #[serde(default)]
    pub replication_timeout_secs: Option<u64>,
    /// `auto`: stream values in pgoutput's binary format when every
    /// captured column can be decoded from it; `off`: text (README,
    /// "Binary log values").
    #[serde(default)]
    pub binary: Binary,
    /// `auto`: large transactions come streamed as they are written
    /// (pgoutput version 2) and are held here until their commit; `off`:
    /// each comes whole after its commit (README, "Large transactions").
    #[serde(default)]
    pub streaming: Streaming,
    /// MiB of streamed transactions held in memory before the largest
    /// moves to a file in `spill_dir`.
    #[serde(default = "default_streaming_memory")]
    pub streaming_memory_mb: u64,
    /// Where streamed transactions past `streaming_memory_mb` wait for
    /// their commit; unset: the system's temporary directory.
    #[serde(default)]
    pub spill_dir: Option<PathBuf>,
}

fn default_streaming_memory() -> u64 {
    64
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Streaming {
    #[default]
    Auto,
    Off,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Binary {
    #[default]
    Auto,
    Off,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnSlotLost {
    #[default]
    Fail,
    Resnapshot,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum SinkConfig {
    File {
        path: PathBuf,
    },
    Stdout {},
    /// Encodes and discards: for measuring the engine alone.
    Null {},
    /// Kafka topics (README, "Kafka sink").
    Kafka(Box<cdc_sink_kafka::KafkaSinkConfig>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSettings {
    #[serde(default = "default_batch")]
    pub max_batch_events: usize,
    #[serde(default = "default_flush_ms")]
    pub flush_interval_ms: u64,
    /// Batches of log items buffered between reader and sink.
    #[serde(default = "default_channel")]
    pub channel_capacity: usize,
}

impl Default for PipelineSettings {
    fn default() -> Self {
        PipelineSettings {
            max_batch_events: default_batch(),
            flush_interval_ms: default_flush_ms(),
            channel_capacity: default_channel(),
        }
    }
}

fn default_cdc() -> String {
    "cdc".into()
}
fn default_slot_wal_warning() -> u64 {
    1024
}
fn default_signal_table() -> String {
    "cdc.signal".into()
}
fn default_status_interval() -> u64 {
    10
}
fn default_batch() -> usize {
    4096
}
fn default_flush_ms() -> u64 {
    250
}
/// Batches of up to 2048 log items: 8 bound the buffered events to ~16k,
/// so memory stays flat (measured: peak RSS, README "Benchmarks").
fn default_channel() -> usize {
    8
}

impl Config {
    pub fn load(path: &Path) -> Result<Config> {
        if !path.exists() {
            bail!("config file {} does not exist", path.display());
        }
        let config: Config = Figment::new()
            .merge(Toml::file(path))
            // Only nested keys: CDC_TEST_* and other CDC_ variables are not config.
            .merge(
                Env::prefixed("CDC_")
                    .filter(|k| k.as_str().contains("__"))
                    .split("__"),
            )
            .extract()
            .map_err(|err| anyhow::anyhow!(crate::redact::redact(&one_line(&err))))
            .with_context(|| format!("invalid config {}", path.display()))?;
        config.validate()?;
        Ok(config)
    }

    /// Only `observe.log_format`, before the logging starts (the full load
    /// logs and reports its errors through it); `None` when unreadable.
    pub fn log_format_hint(path: &Path) -> Option<LogFormat> {
        Figment::new()
            .merge(Toml::file(path))
            .merge(
                Env::prefixed("CDC_")
                    .filter(|k| k.as_str().contains("__"))
                    .split("__"),
            )
            .extract_inner::<LogFormat>("observe.log_format")
            .ok()
    }

    fn validate(&self) -> Result<()> {
        match &self.source {
            SourceConfig::Postgres(pg) => {
                for table in &pg.tables {
                    TablePattern::parse(table)
                        .with_context(|| format!("source.tables: invalid table name '{table}'"))?;
                }
                TableRef::parse(&pg.signal_table).with_context(|| {
                    format!(
                        "source.signal_table: invalid table name '{}'",
                        pg.signal_table
                    )
                })?;
            }
            SourceConfig::Mongodb(mongo) => {
                crate::run_mongodb::mongo_config(mongo)?;
            }
        }
        if !self.observe.listen.is_empty()
            && self.observe.listen.parse::<std::net::SocketAddr>().is_err()
        {
            bail!(
                "observe.listen must be host:port with an IP address (e.g. \"127.0.0.1:9187\") or empty, not '{}'",
                self.observe.listen
            );
        }
        self.format.format()?;
        self.format.transaction_metadata()?;
        self.format.heartbeat_interval()?;
        self.format.column_rules()?;
        let skipped = self.format.skipped_operations()?;
        if let SourceConfig::Postgres(pg) = &self.source {
            if pg.resync_truncate && skipped.skips(cdc_engine::Op::Truncate) {
                bail!("source.resync_truncate = true writes a truncate before each re-snapshot, which format.skipped.operations leaves out (it skips t, as the debezium preset does by default): set [format] \"skipped.operations\" = \"none\", or drop resync_truncate");
            }
        }
        if self.snapshot.chunk_size == 0 {
            bail!("snapshot.chunk_size must be at least 1");
        }
        if self.pipeline.max_batch_events == 0 || self.pipeline.channel_capacity == 0 {
            bail!("pipeline.max_batch_events and pipeline.channel_capacity must be at least 1");
        }
        if let SinkConfig::Kafka(kafka) = &self.sink {
            kafka.validate()?;
            if let Some(outbox) = &kafka.outbox {
                // Rows of an uncaptured table never reach the sink.
                let table = TableRef::parse(&outbox.table)?;
                match &self.source {
                    SourceConfig::Postgres(pg) => {
                        if !pg
                            .tables
                            .iter()
                            .filter_map(|t| TablePattern::parse(t).ok())
                            .any(|p| p.matches(&table))
                        {
                            bail!("sink.outbox.table {table} must be listed in source.tables");
                        }
                    }
                    SourceConfig::Mongodb(mongo) => {
                        if !crate::run_mongodb::mongo_config(mongo)?
                            .captures(&table.schema, &table.name)
                        {
                            bail!("sink.outbox.table {table} must be listed in source.collections");
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// figment errors can chain several; keep them on one line.
fn one_line(err: &figment::Error) -> String {
    err.clone()
        .into_iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ")
        .replace('\n', " ")
}
