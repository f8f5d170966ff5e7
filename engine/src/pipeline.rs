//! The pipeline: log items in, events to the sink, durable positions back to
//! the source.
//!
//! ```text
//!  source ──items (bounded)──► processor ──events──► sink.write ─► sink.flush
//!    ▲                                                               │
//!    └──────────── acks (highest durable checkpoint) ◄───────────────┘
//! ```
//!
//! Backpressure: the items channel is bounded and the pipeline stops taking
//! items while the sink is slow or failing, so memory stays bounded and the
//! reader slows down instead. A checkpoint is published only after a flush
//! that covers it, so nothing is acknowledged that no sink holds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use crate::event::{Event, Position};
use crate::offsets::DurableTracker;
use crate::sink::{Sink, SinkError};
use crate::source::LogItem;
use crate::telemetry::{Component, ErrorKind, Telemetry};

/// Tuning of the pipeline.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Events handed to the sink in one `write`.
    pub max_batch_events: usize,
    /// Longest time written events wait for a flush (and so for their
    /// acknowledgement) while items keep arriving.
    pub flush_interval: Duration,
    /// Longest pause between retries of a failing sink.
    pub max_retry_backoff: Duration,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            max_batch_events: 4096,
            flush_interval: Duration::from_millis(250),
            max_retry_backoff: Duration::from_secs(10),
        }
    }
}

/// Counters, for the final log line and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PipelineStats {
    pub events: u64,
    pub flushes: u64,
    pub retries: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("sink {sink} failed: {reason}")]
    SinkFatal { sink: String, reason: String },
    #[error("stopped while sink {sink} was failing ({reason}); its events were not acknowledged")]
    Interrupted { sink: String, reason: String },
}

/// Turns log items into the events the sink receives. The passthrough
/// processor emits row events and drops signal rows; the snapshot engine
/// merges chunks in here.
pub trait Processor: Send {
    fn process(&mut self, item: LogItem, out: &mut Vec<Event>);

    /// Called regularly while the log is quiet, when `wants_tick`.
    fn tick(&mut self, _out: &mut Vec<Event>) {}

    fn wants_tick(&self) -> bool {
        false
    }

    /// Signalled when the processor has work that arrived outside the log
    /// (a snapshot chunk): the pipeline ticks it at once instead of at the
    /// next log item or tick.
    fn wake(&self) -> Option<Arc<tokio::sync::Notify>> {
        None
    }

    /// Everything emitted so far is durable in the sink.
    fn flushed(&mut self) {}
}

/// Work on what a processor emits, in order: Debezium's extras (column
/// rules, transaction metadata, heartbeats) are stages around the snapshot
/// processor, each pure.
pub trait Stage: Send {
    /// Sees each log item before the inner processor takes it.
    fn before(&mut self, _item: &LogItem) {}

    /// The inner processor just emitted `out[start..]`, for the item last
    /// seen by `before` or for a tick.
    fn after(&mut self, start: usize, out: &mut Vec<Event>);

    /// Whether the stage wants ticks while the log is quiet.
    fn wants_tick(&self) -> bool {
        false
    }
}

/// A processor with a stage on its output.
pub struct Staged<P, S> {
    pub inner: P,
    pub stage: S,
}

impl<P, S> Staged<P, S> {
    pub fn new(inner: P, stage: S) -> Self {
        Staged { inner, stage }
    }
}

impl<P: Processor, S: Stage> Processor for Staged<P, S> {
    fn process(&mut self, item: LogItem, out: &mut Vec<Event>) {
        self.stage.before(&item);
        let start = out.len();
        self.inner.process(item, out);
        self.stage.after(start, out);
    }

    fn tick(&mut self, out: &mut Vec<Event>) {
        let start = out.len();
        self.inner.tick(out);
        self.stage.after(start, out);
    }

    fn wants_tick(&self) -> bool {
        self.inner.wants_tick() || self.stage.wants_tick()
    }

    fn wake(&self) -> Option<Arc<tokio::sync::Notify>> {
        self.inner.wake()
    }

    fn flushed(&mut self) {
        self.inner.flushed();
    }
}

/// A boxed processor is one: wrappers stack on whatever the caller built.
impl<P: Processor + ?Sized> Processor for Box<P> {
    fn process(&mut self, item: LogItem, out: &mut Vec<Event>) {
        (**self).process(item, out);
    }

    fn tick(&mut self, out: &mut Vec<Event>) {
        (**self).tick(out);
    }

    fn wants_tick(&self) -> bool {
        (**self).wants_tick()
    }

    fn wake(&self) -> Option<Arc<tokio::sync::Notify>> {
        (**self).wake()
    }

    fn flushed(&mut self) {
        (**self).flushed();
    }
}

/// How often a processor that wants ticks gets one while the log is quiet.
const TICK: Duration = Duration::from_millis(100);

/// Emits every change event as it is; signal rows are consumed, not emitted.
#[derive(Debug, Default)]
pub struct Passthrough;

impl Processor for Passthrough {
    fn process(&mut self, item: LogItem, out: &mut Vec<Event>) {
        if let LogItem::Event(event) = item {
            out.push(event);
        }
    }
}

/// Run until `items` closes (the source stopped) or a fatal sink error.
/// On return the last durable position has been published to `acks`, and
/// `acks` is dropped, which tells the source to send its final status.
pub async fn run(
    mut items: mpsc::Receiver<Vec<LogItem>>,
    processor: &mut dyn Processor,
    sink: &mut dyn Sink,
    acks: watch::Sender<Option<Position>>,
    mut shutdown: watch::Receiver<bool>,
    config: &PipelineConfig,
    telemetry: &Telemetry,
) -> Result<PipelineStats, PipelineError> {
    let mut stats = PipelineStats::default();
    let mut tally = telemetry.event_tally();
    let mut durable = DurableTracker::default();
    let mut batch: Vec<Event> = Vec::with_capacity(config.max_batch_events);
    let mut last_flush = Instant::now();
    let mut progress = ProgressLog::new();
    let mut open = true;
    let processor_wake = processor.wake();
    let woken = async || match &processor_wake {
        Some(notify) => notify.notified().await,
        None => std::future::pending().await,
    };

    while open {
        // Wait for work; if written events are waiting for a flush, wait at
        // most until their flush is due.
        let mut wake = if durable.has_unflushed() {
            last_flush + config.flush_interval
        } else {
            Instant::now() + Duration::from_secs(3600)
        };
        if processor.wants_tick() {
            wake = wake.min(Instant::now() + TICK);
        }
        let received = tokio::select! {
            received = items.recv() => Some(received),
            _ = tokio::time::sleep_until(wake.into()) => None,
            _ = woken() => None,
        };
        match received {
            Some(Some(chunk)) => {
                absorb(chunk, processor, &mut batch, &mut durable);
                // Take whatever else is already queued, up to a batch.
                while batch.len() < config.max_batch_events {
                    match items.try_recv() {
                        Ok(chunk) => absorb(chunk, processor, &mut batch, &mut durable),
                        Err(_) => break,
                    }
                }
            }
            Some(None) => open = false,
            None => processor.tick(&mut batch),
        }

        // A snapshot chunk arrives as one item of thousands of events: the
        // sink takes at most a batch at a time, so its buffers stay small.
        for events in batch.chunks(config.max_batch_events.max(1)) {
            retry(
                sink,
                SinkOp::Write(events),
                &mut shutdown,
                config,
                &mut stats,
                telemetry,
            )
            .await?;
            stats.events += events.len() as u64;
            tally.count(events);
        }
        batch.clear();
        durable.written();

        let idle = items.is_empty();
        let due = last_flush.elapsed() >= config.flush_interval;
        if durable.has_unflushed() && (idle || due || !open) {
            retry(
                sink,
                SinkOp::Flush,
                &mut shutdown,
                config,
                &mut stats,
                telemetry,
            )
            .await?;
            stats.flushes += 1;
            tally.flushed();
            last_flush = Instant::now();
            if let Some(position) = durable.flushed() {
                acks.send_replace(Some(position));
            }
            processor.flushed();
        }
        progress.maybe_log(&stats, durable.acknowledged());
    }
    tracing::info!(
        events = stats.events,
        acknowledged = %durable.acknowledged().map(|p| p.to_hex()).unwrap_or_default(),
        "pipeline drained"
    );
    Ok(stats)
}

fn absorb(
    chunk: Vec<LogItem>,
    processor: &mut dyn Processor,
    batch: &mut Vec<Event>,
    durable: &mut DurableTracker,
) {
    for item in chunk {
        let checkpoint = item.checkpoint().cloned();
        processor.process(item, batch);
        if let Some(position) = checkpoint {
            durable.checkpoint(position);
        }
    }
}

#[derive(Clone, Copy)]
enum SinkOp<'a> {
    Write(&'a [Event]),
    Flush,
}

/// Call the sink until it succeeds, backing off on retriable errors. While
/// it fails nothing is taken from the source and nothing is acknowledged.
async fn retry(
    sink: &mut dyn Sink,
    op: SinkOp<'_>,
    shutdown: &mut watch::Receiver<bool>,
    config: &PipelineConfig,
    stats: &mut PipelineStats,
    telemetry: &Telemetry,
) -> Result<(), PipelineError> {
    let mut backoff = Duration::from_millis(100);
    let mut last_reason = String::new();
    loop {
        let started = Instant::now();
        let result = match op {
            SinkOp::Write(events) => sink.write(events).await,
            SinkOp::Flush => sink.flush().await,
        };
        match result {
            Ok(()) => {
                if matches!(op, SinkOp::Flush) {
                    telemetry.sink_flushed(started.elapsed());
                }
                // Also after a failure of an earlier call: the health says
                // "failing" until a call succeeds.
                if !last_reason.is_empty() || !telemetry.is_up(Component::Sink) {
                    if !last_reason.is_empty() {
                        tracing::info!(sink = %sink.describe(), "sink recovered");
                    }
                    telemetry.set_up(Component::Sink);
                }
                return Ok(());
            }
            Err(SinkError::Fatal(reason)) => {
                telemetry.error(ErrorKind::SinkFatal);
                telemetry.set_down(Component::Sink, format!("sink failed: {reason}"));
                return Err(PipelineError::SinkFatal {
                    sink: sink.describe(),
                    reason,
                });
            }
            Err(SinkError::Retriable(reason)) => {
                telemetry.error(ErrorKind::Sink);
                telemetry.sink_retry();
                if reason != last_reason {
                    telemetry.set_down(Component::Sink, format!("sink failing: {reason}"));
                    // One warning per outage; how the failure changes while
                    // it lasts (a dead broker's client errors, counts of
                    // undelivered records) is detail.
                    if last_reason.is_empty() {
                        tracing::warn!(
                            sink = %sink.describe(),
                            "sink failed, retrying without acknowledging: {reason}"
                        );
                    } else {
                        tracing::info!(sink = %sink.describe(), "sink still failing: {reason}");
                    }
                }
                last_reason = reason;
                stats.retries += 1;
                if *shutdown.borrow() {
                    return Err(PipelineError::Interrupted {
                        sink: sink.describe(),
                        reason: last_reason,
                    });
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => {}
                }
                backoff = (backoff * 2).min(config.max_retry_backoff);
            }
        }
    }
}

/// A progress line every few seconds while events flow.
struct ProgressLog {
    last: Instant,
    last_events: u64,
}

impl ProgressLog {
    const EVERY: Duration = Duration::from_secs(10);

    fn new() -> Self {
        ProgressLog {
            last: Instant::now(),
            last_events: 0,
        }
    }

    fn maybe_log(&mut self, stats: &PipelineStats, acknowledged: Option<&Position>) {
        let elapsed = self.last.elapsed();
        if elapsed < Self::EVERY || stats.events == self.last_events {
            return;
        }
        let rate = (stats.events - self.last_events) as f64 / elapsed.as_secs_f64();
        tracing::info!(
            events = stats.events,
            rate = format!("{rate:.0}/s"),
            acknowledged = %acknowledged.map(|p| p.to_hex()).unwrap_or_default(),
            "streaming"
        );
        self.last = Instant::now();
        self.last_events = stats.events;
    }
}
