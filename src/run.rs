//! `cdc run` and `cdc check`.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use std::sync::Arc;

use cdc_engine::assembly::{run_with_restarts, SnapshotPlan, SnapshotSettings, Stages};
use cdc_engine::format::Format;
use cdc_engine::pipeline::PipelineConfig;
use cdc_engine::runner::Runner;
use cdc_engine::telemetry::Component;
use cdc_engine::{SharedSink, Sink, SourceError, TableRef, TableSchema, Telemetry};
use cdc_postgres::patterns::TablePattern;
use cdc_postgres::snapshot::PgChunkSource;
use cdc_postgres::{
    BinaryMode, ConnectConfig, PostgresConfig, PostgresSource, Severity, SlotLostPolicy,
    StreamingMode,
};
use cdc_sink_file::{FileSink, NullSink, StdoutSink};
use tokio::sync::watch;
use tracing::Instrument;

use crate::config::{Config, OnSlotLost, SinkConfig, SourceConfig};

pub fn postgres_config(config: &Config) -> Result<PostgresConfig> {
    let SourceConfig::Postgres(pg) = &config.source else {
        anyhow::bail!("this command needs a PostgreSQL source ([source] type = \"postgres\")");
    };
    let connect = ConnectConfig::parse(&pg.url).context("source.url")?;
    // Exact names and patterns (README, "Table patterns").
    let mut tables = Vec::new();
    let mut patterns = Vec::new();
    for entry in &pg.tables {
        let pattern =
            TablePattern::parse(entry).with_context(|| format!("source.tables: '{entry}'"))?;
        match pattern.exact() {
            Some(table) if !tables.contains(&table) => tables.push(table),
            Some(_) => {}
            None => patterns.push(pattern),
        }
    }
    let mut out = PostgresConfig::new(connect, tables);
    out.patterns = patterns;
    out.slot = pg.slot.clone();
    out.publication = pg.publication.clone();
    out.signal_table = TableRef::parse(&pg.signal_table).context("source.signal_table")?;
    out.name = pg.name.clone();
    out.status_interval = Duration::from_secs(pg.status_interval_secs.max(1));
    out.keyless_tables = pg
        .keyless_tables
        .iter()
        .map(|t| TablePattern::parse(t).with_context(|| format!("source.keyless_tables: '{t}'")))
        .collect::<Result<Vec<_>>>()?;
    out.slot_wal_warning_bytes = match pg.slot_wal_warning_mb {
        0 => None,
        mb => Some(i64::try_from(mb.saturating_mul(1 << 20)).unwrap_or(i64::MAX)),
    };
    out.failover_slot = pg.failover_slot;
    out.replication_timeout = pg
        .replication_timeout_secs
        .filter(|s| *s > 0)
        .map(Duration::from_secs);
    out.heartbeat_interval =
        (pg.heartbeat_interval_secs > 0).then(|| Duration::from_secs(pg.heartbeat_interval_secs));
    out.binary = match pg.binary {
        crate::config::Binary::Auto => BinaryMode::Auto,
        crate::config::Binary::Off => BinaryMode::Off,
    };
    out.streaming = match pg.streaming {
        crate::config::Streaming::Auto => StreamingMode::Auto,
        crate::config::Streaming::Off => StreamingMode::Off,
    };
    out.streaming_memory =
        usize::try_from(pg.streaming_memory_mb.saturating_mul(1 << 20)).unwrap_or(usize::MAX);
    if let Some(dir) = &pg.spill_dir {
        out.spill_dir = dir.clone();
    }
    out.on_slot_lost = match pg.on_slot_lost {
        OnSlotLost::Fail => SlotLostPolicy::Fail,
        OnSlotLost::Resnapshot => SlotLostPolicy::Resnapshot,
    };
    Ok(out)
}

pub async fn check(path: &Path) -> Result<ExitCode> {
    let config = Config::load(path)?;
    if let SourceConfig::Mongodb(mongo) = &config.source {
        return crate::run_mongodb::check(mongo).await;
    }
    let pg = postgres_config(&config)?;
    let findings = cdc_postgres::check(&pg).await.context("preflight")?;
    Ok(report(&findings, |f| f.severity == Severity::Error))
}

/// `cdc check`'s output, whatever the source: one line per finding, then
/// `ok` unless one is an error, which fails the command.
pub(crate) fn report<F: std::fmt::Display>(
    findings: &[F],
    is_error: impl Fn(&F) -> bool,
) -> ExitCode {
    for finding in findings {
        println!("{finding}");
    }
    if findings.iter().any(is_error) {
        return ExitCode::FAILURE;
    }
    println!("ok");
    ExitCode::SUCCESS
}

pub(crate) fn open_sink(config: &SinkConfig, format: Format) -> Result<Box<dyn Sink>> {
    Ok(match config {
        SinkConfig::File { path } => Box::new(FileSink::open(path)?.with_format(format)),
        SinkConfig::Stdout {} => Box::new(StdoutSink::new().with_format(format)),
        SinkConfig::Null {} => Box::new(NullSink::with_format(format)),
        SinkConfig::Kafka(kafka) => {
            Box::new(cdc_sink_kafka::KafkaSink::open((**kafka).clone())?.with_format(format))
        }
    })
}

/// The process's one sink, opened by the first run that holds the lease
/// and lent to every run after it (see [`SharedSink`] for why).
#[derive(Default)]
pub(crate) struct ProcessSink(tokio::sync::OnceCell<SharedSink>);

impl ProcessSink {
    pub(crate) async fn lend(&self, config: &SinkConfig, format: Format) -> Result<Box<dyn Sink>> {
        let shared = self
            .0
            .get_or_try_init(|| async { open_sink(config, format).map(SharedSink::new) })
            .await?;
        Ok(shared.lend().await)
    }
}

pub async fn run(path: &Path, telemetry: Telemetry) -> Result<ExitCode> {
    // Handlers first: a SIGTERM while starting up is a clean stop too.
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let signals = tokio::spawn(wait_for_signal(shutdown_tx.clone()));
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(err) => {
            signals.abort();
            return Err(err);
        }
    };
    if !config.observe.listen.is_empty() {
        // Before the source: probes see "live, starting" while it connects.
        if let Err(err) = crate::observe::start(&config.observe.listen, telemetry.clone()).await {
            signals.abort();
            return Err(err);
        }
    }
    let settings = match &config.source {
        SourceConfig::Postgres(settings) => settings,
        SourceConfig::Mongodb(mongo) => {
            let result =
                crate::run_mongodb::run(&config, mongo, &shutdown_tx, shutdown_rx, &telemetry)
                    .await;
            signals.abort();
            return result;
        }
    };
    let heal = matches!(settings.on_slot_lost, crate::config::OnSlotLost::Resnapshot);
    // Every line of a run (the lease, the snapshot worker, the pipeline)
    // names the slot and this instance, as the standbys name the holder.
    let span = tracing::info_span!(
        "run",
        slot = %settings.slot,
        instance = %cdc_postgres::lease::instance_name().await
    );
    // What a run ended by a failover had read from the old server.
    let carried = std::sync::Mutex::new(None);
    let sink = ProcessSink::default();
    // A lost slot with `resnapshot`, a failover to another server, a lost
    // lease: the run starts over, and the guards at start judge the slot
    // there (recreating it and snapshotting every table when it is lost
    // and the policy says so).
    let result = run_with_restarts(heal, &shutdown_rx, source_error, |restarted| {
        telemetry.set_down(Component::Reader, "starting");
        run_once(
            &config,
            &shutdown_tx,
            shutdown_rx.clone(),
            &carried,
            &sink,
            restarted,
            &telemetry,
        )
        .instrument(span.clone())
    })
    .await;
    signals.abort();
    result
}

/// A set-up that failed in a run started over (after a failover, a lost
/// lease, a healed loss): the fault that ended the last run may still be
/// going on (the server restarting, the path down), so it is tried again,
/// with backoff, unless a guard fired. A first start fails at once, so a
/// wrong configuration is said at once.
fn after_restart(err: anyhow::Error, restarted: bool) -> anyhow::Error {
    let definite = err.chain().any(|c| {
        matches!(
            c.downcast_ref::<cdc_postgres::SetupError>(),
            Some(cdc_postgres::SetupError::SlotLost(_))
        )
    });
    if restarted && !definite {
        anyhow::Error::new(SourceError::Transient(format!("{err:#}")))
    } else {
        err
    }
}

/// The source's error that ended a run, when one did.
pub(crate) fn source_error(err: &anyhow::Error) -> Option<&SourceError> {
    err.chain().find_map(|c| c.downcast_ref::<SourceError>())
}

/// `[pipeline]` as the engine takes it.
pub(crate) fn pipeline_config(config: &Config) -> PipelineConfig {
    PipelineConfig {
        max_batch_events: config.pipeline.max_batch_events,
        flush_interval: Duration::from_millis(config.pipeline.flush_interval_ms),
        ..PipelineConfig::default()
    }
}

/// `[snapshot]` as the engine takes it.
pub(crate) fn snapshot_settings(config: &Config) -> SnapshotSettings {
    SnapshotSettings {
        chunk_size: config.snapshot.chunk_size,
        max_parallel_tables: config.snapshot.max_parallel_tables,
        initial: config.snapshot.initial,
        new_tables: config.snapshot.new_tables,
    }
}

/// One run: set up, stream until stopped or failed.
async fn run_once(
    config: &Config,
    shutdown_tx: &watch::Sender<bool>,
    shutdown_rx: watch::Receiver<bool>,
    carried: &std::sync::Mutex<Option<cdc_postgres::positions::ReadBeforeFailover>>,
    process_sink: &ProcessSink,
    restarted: bool,
    telemetry: &Telemetry,
) -> Result<ExitCode> {
    let mut pg = postgres_config(config)?;
    // Kept, not taken: a run that fails before streaming (the server still
    // recovering) must not leave the next one without it.
    pg.read_before_failover = carried.lock().ok().and_then(|read| read.clone());
    // One active instance per slot: the others wait here, live but not
    // ready.
    telemetry.set_active(false);
    let Some(lease) = cdc_postgres::lease::acquire(&pg, shutdown_rx.clone(), restarted)
        .await
        .context("taking the lease")?
    else {
        tracing::info!("stopped while standing by");
        return Ok(ExitCode::SUCCESS);
    };
    telemetry.set_active(true);
    pg.lease = lease.lease.clone();
    let format = config.format.format()?;
    let sink = process_sink.lend(&config.sink, format).await?;
    let source = PostgresSource::prepare(pg)
        .await
        .context("source not ready")
        .map_err(|e| after_restart(e, restarted))?;
    let handoff = source.handoff();
    let plan = snapshot_plan(&source, config)
        .await
        .map_err(|e| after_restart(e, restarted))?;
    if *shutdown_rx.borrow() {
        tracing::info!("stopped before streaming");
        return Ok(ExitCode::SUCCESS);
    }
    tracing::info!(
        server = %source.config().connect.redacted(),
        tables = source.tables().len(),
        sink = %sink.describe(),
        "cdc starting"
    );
    let snapshots = plan
        .start(&snapshot_settings(config), telemetry)
        .await
        .context("snapshots")
        .map_err(|e| after_restart(e, restarted))?;
    let schemas: Vec<Arc<TableSchema>> = source
        .tables()
        .iter()
        .map(|t| Arc::new(t.schema()))
        .collect();
    let stages = Stages {
        // Connect schemas and Debezium's typed TOAST placeholders are
        // written from each row's table shape.
        connect_schemas: format.debezium_values().then(|| schemas.clone()),
        column_rules: Some((config.format.column_rules()?, schemas)),
        transaction_metadata: config.format.transaction_metadata()?,
        skipped: config.format.skipped_operations()?,
        heartbeat: config
            .format
            .heartbeat_interval()?
            .map(|every| (every, source.meta())),
    };
    let runner = Runner::builder()
        .source(Arc::new(source))
        .processor(
            stages.wrap(Box::new(snapshots.processor)),
            Some(snapshots.worker),
        )
        .sink(sink)
        .telemetry(telemetry.clone())
        .lease(lease.lease.clone())
        .pipeline(pipeline_config(config))
        .channel_capacity(config.pipeline.channel_capacity)
        .build()?;
    let outcome = runner.run(shutdown_tx, shutdown_rx).await;
    if let (Ok(mut slot), Ok(mut read)) = (carried.lock(), handoff.lock()) {
        // The newest one wins; an older one is harmless, each guard takes
        // the furthest of it and the server's own position.
        if let Some(read) = read.take() {
            *slot = Some(read);
        }
    }
    drop(lease);
    let stats = outcome?;
    tracing::info!(events = stats.events, "stopped cleanly");
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_signal(shutdown: watch::Sender<bool>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("cannot install signal handlers; stop with SIGKILL");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: stopping"),
        _ = int.recv() => tracing::info!("SIGINT: stopping"),
    }
    let _ = shutdown.send(true);
}

/// The snapshot side of a run: the chunk source, its saved progress, and
/// what this start must snapshot.
async fn snapshot_plan(source: &PostgresSource, config: &Config) -> Result<SnapshotPlan> {
    let pg = source.config();
    let chunks = Arc::new(
        PgChunkSource::new(
            pg.connect.clone(),
            source.tables(),
            pg.signal_table.clone(),
            pg.slot.clone(),
        )
        .with_lease(pg.lease.clone()),
    );
    let state = chunks
        .load_state()
        .await
        .context("reading the snapshot progress")?;
    if let Some(current) = state.as_ref().and_then(|s| s.queue.front().map(|c| (s, c))) {
        let (state, current) = current;
        tracing::info!(
            table = %current.table,
            rows = current.rows_emitted,
            paused = state.paused,
            "resuming snapshot"
        );
    }
    // The slot was lost and recreated: the snapshot brings back the rows
    // changed in the gap the log no longer holds.
    let resync = source
        .needs_resnapshot()
        .then(|| source.lost_range().unwrap_or_else(|| "unknown".into()));
    Ok(SnapshotPlan {
        chunks,
        state,
        tables: source
            .tables()
            .iter()
            .map(|t| (t.table.clone(), t.key.clone()))
            .collect(),
        window_prefix: pg.slot.clone(),
        always_snapshot: source.added_while_running(),
        resync,
        resync_truncate: matches!(&config.source, SourceConfig::Postgres(s) if s.resync_truncate),
    })
}
