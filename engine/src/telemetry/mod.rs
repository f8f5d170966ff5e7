//! Telemetry: the Prometheus metrics of one `cdc` process and the health of
//! its components, behind one cheap cloneable handle.
//!
//! Every metric name is a constant in [`names`], so the README, the
//! dashboards in `deploy/` and the code agree. Storage and the text encoding
//! are `prometheus-client`'s (the Prometheus project's own Rust client: typed
//! metrics, atomics, no global registry). The engine owns no HTTP server: the
//! binary serves [`Telemetry::encode`] and [`Telemetry::ready`].
//!
//! The hot path stays cheap: the pipeline counts events per written batch
//! through an [`EventTally`], whose label handles are resolved once per
//! (table, op) and added to once per batch, not looked up per event.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cdc_signal::TableRef;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// The exposed metric names (what a query or a dashboard uses).
pub mod names {
    pub const EVENTS_TOTAL: &str = "cdc_events_total";
    pub const SNAPSHOT_ROWS_TOTAL: &str = "cdc_snapshot_rows_total";
    pub const SNAPSHOT_ROWS_ESTIMATED: &str = "cdc_snapshot_rows_estimated";
    pub const SNAPSHOT_CHUNKS_TOTAL: &str = "cdc_snapshot_chunks_total";
    pub const SNAPSHOT_CHUNKS_DISCARDED_TOTAL: &str = "cdc_snapshot_chunks_discarded_total";
    pub const SINK_FLUSH_DURATION_SECONDS: &str = "cdc_sink_flush_duration_seconds";
    pub const COMMIT_TO_SINK_SECONDS: &str = "cdc_commit_to_sink_seconds";
    pub const SINK_RETRIES_TOTAL: &str = "cdc_sink_retries_total";
    pub const SLOT_LAG_BYTES: &str = "cdc_slot_lag_bytes";
    pub const SLOT_WAL_STATUS: &str = "cdc_slot_wal_status";
    pub const SLOT_SAFE_WAL_SIZE_BYTES: &str = "cdc_slot_safe_wal_size_bytes";
    pub const ACKNOWLEDGED_LSN: &str = "cdc_acknowledged_lsn";
    pub const RECONNECTS_TOTAL: &str = "cdc_reconnects_total";
    pub const ERRORS_TOTAL: &str = "cdc_errors_total";
    pub const ACTIVE: &str = "cdc_active";
    pub const READY: &str = "cdc_ready";
    pub const BUILD_INFO: &str = "cdc_build_info";
    pub const WARNINGS_TOTAL: &str = "cdc_warnings_total";
    pub const LOG_ERRORS_TOTAL: &str = "cdc_log_errors_total";

    /// Every name above, for checks that the dashboards use real metrics.
    pub const ALL: &[&str] = &[
        EVENTS_TOTAL,
        SNAPSHOT_ROWS_TOTAL,
        SNAPSHOT_ROWS_ESTIMATED,
        SNAPSHOT_CHUNKS_TOTAL,
        SNAPSHOT_CHUNKS_DISCARDED_TOTAL,
        SINK_FLUSH_DURATION_SECONDS,
        COMMIT_TO_SINK_SECONDS,
        SINK_RETRIES_TOTAL,
        SLOT_LAG_BYTES,
        SLOT_WAL_STATUS,
        SLOT_SAFE_WAL_SIZE_BYTES,
        ACKNOWLEDGED_LSN,
        RECONNECTS_TOTAL,
        ERRORS_TOTAL,
        ACTIVE,
        READY,
        BUILD_INFO,
        WARNINGS_TOTAL,
        LOG_ERRORS_TOTAL,
    ];
}

/// The log targets whose lines are counted from 0 (others appear on their
/// first line, and an `increase()` alert misses that one): every crate of
/// the binary, and librdkafka's log, which the Kafka sink forwards under a
/// target of its own.
pub const LOG_TARGETS: &[&str] = &[
    "cdc",
    "cdc_engine",
    "cdc_postgres",
    "cdc_mongodb",
    "cdc_signal",
    "cdc_sink_file",
    "cdc_sink_kafka",
    "librdkafka",
];

/// The `wal_status` values PostgreSQL reports for a slot; each is a series
/// of [`names::SLOT_WAL_STATUS`], 1 for the current one.
pub const WAL_STATUSES: &[&str] = &["reserved", "extended", "unreserved", "lost"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    table: String,
    op: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TableLabel {
    table: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabel {
    target: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
}

/// A part of the engine whose health `/health/ready` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    /// The log reader: streaming, or starting or reconnecting.
    Reader,
    /// The snapshot worker.
    Snapshot,
    /// The sink: flushing, or failing.
    Sink,
}

impl Component {
    const ALL: [Component; 3] = [Component::Reader, Component::Snapshot, Component::Sink];

    fn index(self) -> usize {
        self as usize
    }
}

/// Why a snapshot chunk was thrown away and selected again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscardReason {
    /// The merger saw the window broken (torn, superseded, abandoned).
    Window,
    /// Selecting the chunk failed and is retried.
    Failed,
    /// The window's watermarks did not show up in time.
    Timeout,
}

impl DiscardReason {
    fn label(self) -> &'static str {
        match self {
            DiscardReason::Window => "window",
            DiscardReason::Failed => "failed",
            DiscardReason::Timeout => "timeout",
        }
    }
}

/// An error counted in [`names::ERRORS_TOTAL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The replication connection was lost (then reconnected).
    Replication,
    /// The source stopped for good.
    SourceFatal,
    /// The source's position is gone (an invalidated slot).
    PositionLost,
    /// A sink write or flush failed and is retried.
    Sink,
    /// The sink failed for good.
    SinkFatal,
    /// A snapshot chunk failed.
    Snapshot,
}

impl ErrorKind {
    const ALL: [ErrorKind; 6] = [
        ErrorKind::Replication,
        ErrorKind::SourceFatal,
        ErrorKind::PositionLost,
        ErrorKind::Sink,
        ErrorKind::SinkFatal,
        ErrorKind::Snapshot,
    ];

    fn label(self) -> &'static str {
        match self {
            ErrorKind::Replication => "replication",
            ErrorKind::SourceFatal => "source_fatal",
            ErrorKind::PositionLost => "position_lost",
            ErrorKind::Sink => "sink",
            ErrorKind::SinkFatal => "sink_fatal",
            ErrorKind::Snapshot => "snapshot",
        }
    }
}

struct Metrics {
    events: Family<EventLabels, Counter>,
    snapshot_rows: Family<TableLabel, Counter>,
    snapshot_estimated: Family<TableLabel, Gauge>,
    chunks_done: Counter,
    chunks_discarded: Family<ReasonLabel, Counter>,
    flush_duration: Histogram,
    commit_to_sink: Histogram,
    sink_retries: Counter,
    slot_lag: Gauge,
    wal_status: Family<StatusLabel, Gauge>,
    safe_wal_size: Gauge,
    acknowledged_lsn: Gauge,
    reconnects: Counter,
    errors: Family<KindLabel, Counter>,
    active: Gauge,
    ready: Gauge,
    warnings: Family<TargetLabel, Counter>,
    log_errors: Family<TargetLabel, Counter>,
}

struct Inner {
    registry: Registry,
    metrics: Metrics,
    /// `None`: up; `Some(reason)`: down, with the one-line reason.
    health: Mutex<[Option<String>; 3]>,
    active: AtomicBool,
}

/// The telemetry handle: clone it freely (one `Arc`).
#[derive(Clone)]
pub struct Telemetry {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry").finish_non_exhaustive()
    }
}

impl Default for Telemetry {
    /// A handle of its own, for callers that do not export metrics (tests,
    /// benches): everything is counted and nobody reads it.
    fn default() -> Self {
        Telemetry::new(env!("CARGO_PKG_VERSION"))
    }
}

/// Registered under the name without the suffix the encoder appends.
fn base<'a>(name: &'a str, suffix: &str) -> &'a str {
    name.strip_suffix(suffix).unwrap_or(name)
}

impl Telemetry {
    /// `version` is the binary's, for [`names::BUILD_INFO`].
    pub fn new(version: &str) -> Self {
        use names::*;
        // 1 ms to ~65 s: a flush is an fsync or a broker round trip; a
        // commit reaches the sink within a flush interval unless it lags.
        let seconds = || Histogram::new(exponential_buckets(0.001, 2.0, 17));
        let metrics = Metrics {
            events: Family::default(),
            snapshot_rows: Family::default(),
            snapshot_estimated: Family::default(),
            chunks_done: Counter::default(),
            chunks_discarded: Family::default(),
            flush_duration: seconds(),
            commit_to_sink: seconds(),
            sink_retries: Counter::default(),
            slot_lag: Gauge::default(),
            wal_status: Family::default(),
            safe_wal_size: Gauge::default(),
            acknowledged_lsn: Gauge::default(),
            reconnects: Counter::default(),
            errors: Family::default(),
            active: Gauge::default(),
            ready: Gauge::default(),
            warnings: Family::default(),
            log_errors: Family::default(),
        };
        let mut r = Registry::default();
        let m = &metrics;
        r.register(
            base(EVENTS_TOTAL, "_total"),
            "Events written to the sink, by table and Debezium op",
            m.events.clone(),
        );
        r.register(
            base(SNAPSHOT_ROWS_TOTAL, "_total"),
            "Snapshot rows written to the sink, by table",
            m.snapshot_rows.clone(),
        );
        r.register(
            SNAPSHOT_ROWS_ESTIMATED,
            "The planner's row estimate of the table being snapshotted",
            m.snapshot_estimated.clone(),
        );
        r.register(
            base(SNAPSHOT_CHUNKS_TOTAL, "_total"),
            "Snapshot chunks merged and emitted",
            m.chunks_done.clone(),
        );
        r.register(
            base(SNAPSHOT_CHUNKS_DISCARDED_TOTAL, "_total"),
            "Snapshot chunks thrown away and selected again, by reason",
            m.chunks_discarded.clone(),
        );
        r.register(
            SINK_FLUSH_DURATION_SECONDS,
            "Duration of successful sink flushes",
            m.flush_duration.clone(),
        );
        r.register(
            COMMIT_TO_SINK_SECONDS,
            "From a transaction's commit at the source to its events being durable in the sink (one sample per written batch, its oldest event)",
            m.commit_to_sink.clone(),
        );
        r.register(
            base(SINK_RETRIES_TOTAL, "_total"),
            "Sink writes and flushes retried after a retriable failure",
            m.sink_retries.clone(),
        );
        r.register(
            SLOT_LAG_BYTES,
            "WAL bytes between the server's current position and the slot's confirmed position",
            m.slot_lag.clone(),
        );
        r.register(
            SLOT_WAL_STATUS,
            "The slot's wal_status: 1 for the current one",
            m.wal_status.clone(),
        );
        r.register(
            SLOT_SAFE_WAL_SIZE_BYTES,
            "WAL bytes that can still be written before the slot is invalidated (max_slot_wal_keep_size); -1 when unlimited or not read yet",
            m.safe_wal_size.clone(),
        );
        r.register(
            ACKNOWLEDGED_LSN,
            "The last position (LSN) acknowledged to the source",
            m.acknowledged_lsn.clone(),
        );
        r.register(
            base(RECONNECTS_TOTAL, "_total"),
            "Reconnections of the log reader",
            m.reconnects.clone(),
        );
        r.register(
            base(ERRORS_TOTAL, "_total"),
            "Errors, by kind",
            m.errors.clone(),
        );
        r.register(
            ACTIVE,
            "1 while this instance is the active one",
            m.active.clone(),
        );
        r.register(READY, "1 while /health/ready answers 200", m.ready.clone());
        r.register(
            base(BUILD_INFO, "_info"),
            "The build of cdc",
            Info::new(BuildLabels {
                version: version.to_owned(),
            }),
        );
        r.register(
            base(WARNINGS_TOTAL, "_total"),
            "WARN log lines, by target crate",
            m.warnings.clone(),
        );
        r.register(
            base(LOG_ERRORS_TOTAL, "_total"),
            "ERROR log lines, by target crate",
            m.log_errors.clone(),
        );
        // Series that exist from the start, so rates and alerts see zeros.
        for kind in ErrorKind::ALL {
            drop(m.errors.get_or_create(&KindLabel { kind: kind.label() }));
        }
        for reason in [
            DiscardReason::Window,
            DiscardReason::Failed,
            DiscardReason::Timeout,
        ] {
            drop(m.chunks_discarded.get_or_create(&ReasonLabel {
                reason: reason.label(),
            }));
        }
        for target in LOG_TARGETS {
            let label = TargetLabel {
                target: (*target).to_owned(),
            };
            drop(m.warnings.get_or_create(&label));
            drop(m.log_errors.get_or_create(&label));
        }
        for status in WAL_STATUSES {
            drop(m.wal_status.get_or_create(&StatusLabel { status }));
        }
        m.active.set(1);
        m.safe_wal_size.set(-1);
        let telemetry = Telemetry {
            inner: Arc::new(Inner {
                registry: r,
                metrics,
                health: Mutex::new([None, None, None]),
                active: AtomicBool::new(true),
            }),
        };
        telemetry.set_down(Component::Reader, "starting");
        telemetry
    }

    fn m(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The metrics in the OpenMetrics text format (what Prometheus scrapes).
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        self.m().ready.set(i64::from(self.ready().is_ok()));
        let mut out = String::with_capacity(8192);
        prometheus_client::encoding::text::encode(&mut out, &self.inner.registry)?;
        Ok(out)
    }

    /// `Ok` while this instance is active, streaming and its sink flushes;
    /// else the one-line reason.
    pub fn ready(&self) -> Result<(), String> {
        if !self.inner.active.load(Ordering::Relaxed) {
            return Err("standing by".into());
        }
        let health = self
            .inner
            .health
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match health.iter().flatten().next() {
            Some(reason) => Err(reason.clone()),
            None => Ok(()),
        }
    }

    fn set_health(&self, component: Component, state: Option<String>) {
        let mut health = self
            .inner
            .health
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        health[component.index()] = state;
    }

    /// `component` works (the reader streams, the sink flushed).
    pub fn set_up(&self, component: Component) {
        self.set_health(component, None);
    }

    /// `component` does not work right now, for `reason` (one line).
    pub fn set_down(&self, component: Component, reason: impl Into<String>) {
        let reason: String = reason.into();
        // One line, whatever the error said.
        let reason = reason.replace(['\n', '\r'], " ");
        self.set_health(component, Some(reason));
    }

    /// Whether `component` is up.
    pub fn is_up(&self, component: Component) -> bool {
        let health = self
            .inner
            .health
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        health[component.index()].is_none()
    }

    /// The hook of the lease: a standby is live but not active. Without a
    /// lease every instance is active.
    pub fn set_active(&self, active: bool) {
        self.inner.active.store(active, Ordering::Relaxed);
        self.m().active.set(i64::from(active));
    }

    /// Counts `events` (and their pending latency samples) for the pipeline.
    pub fn event_tally(&self) -> EventTally {
        EventTally::new(self.clone())
    }

    pub fn sink_flushed(&self, took: Duration) {
        self.m().flush_duration.observe(took.as_secs_f64());
    }

    pub fn sink_retry(&self) {
        self.m().sink_retries.inc();
    }

    pub fn error(&self, kind: ErrorKind) {
        self.m()
            .errors
            .get_or_create(&KindLabel { kind: kind.label() })
            .inc();
    }

    pub fn reconnect(&self) {
        self.m().reconnects.inc();
    }

    pub fn acknowledged(&self, lsn: u64) {
        self.m()
            .acknowledged_lsn
            .set(i64::try_from(lsn).unwrap_or(i64::MAX));
    }

    /// What the source's watcher read about its slot.
    pub fn slot(&self, lag_bytes: Option<i64>, wal_status: Option<&str>, safe_wal: Option<i64>) {
        let m = self.m();
        if let Some(lag) = lag_bytes {
            m.slot_lag.set(lag);
        }
        if let Some(current) = wal_status {
            for status in WAL_STATUSES {
                m.wal_status
                    .get_or_create(&StatusLabel { status })
                    .set(i64::from(*status == current));
            }
        }
        // NULL: no limit (max_slot_wal_keep_size = -1), or the slot is lost
        // (then wal_status says so): -1, as "not at risk from the limit".
        m.safe_wal_size.set(safe_wal.unwrap_or(-1));
    }

    pub fn snapshot_chunk_done(&self) {
        self.m().chunks_done.inc();
    }

    pub fn snapshot_chunk_discarded(&self, reason: DiscardReason) {
        self.m()
            .chunks_discarded
            .get_or_create(&ReasonLabel {
                reason: reason.label(),
            })
            .inc();
    }

    pub fn snapshot_estimate(&self, table: &TableRef, rows: u64) {
        self.m()
            .snapshot_estimated
            .get_or_create(&TableLabel {
                table: table.to_string(),
            })
            .set(i64::try_from(rows).unwrap_or(i64::MAX));
    }

    /// A WARN log line of `target`, a module path (the tracing layer of the
    /// binary calls it).
    pub fn warning(&self, target: &str) {
        Self::count_target(&self.m().warnings, target);
    }

    /// An ERROR log line of `target`.
    pub fn log_error(&self, target: &str) {
        Self::count_target(&self.m().log_errors, target);
    }

    fn count_target(family: &Family<TargetLabel, Counter>, target: &str) {
        // The crate of the module path: few values, known in advance for
        // cdc's own, so their series exist at 0 and `increase()` sees the
        // first warning (a series born at 1 shows no increase).
        let krate = target.split("::").next().unwrap_or(target);
        let label = TargetLabel {
            target: krate.to_owned(),
        };
        family.get_or_create(&label).inc();
    }

    /// Components whose health is reported, for the `/health/ready` body.
    pub fn components() -> [Component; 3] {
        Component::ALL
    }
}

mod tally;
pub use tally::EventTally;

#[cfg(test)]
mod tests;
