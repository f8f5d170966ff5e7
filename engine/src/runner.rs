//! The runner: wires a prepared source, the snapshot processor and its
//! worker, the pipeline, a sink, telemetry and the lease into one run, and
//! tears them down in the order that keeps acknowledgements safe
//! (docs/architecture.md, "Data flow"). A binary maps its configuration to
//! a [`RunnerBuilder`]; a second source plugs in here, not into the binary.
//! What every run is assembled from before (the snapshot processor and its
//! queue, the stages, the restarts) is `crate::assembly`.
//!
//! ```text
//!  source.stream ──items──► pipeline(processor) ──► sink
//!        ▲                                           │
//!        └────────────── acks (durable) ◄────────────┘
//! ```

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::lease::Lease;
use crate::pipeline::{self, PipelineConfig, PipelineError, PipelineStats, Processor};
use crate::sink::Sink;
use crate::snapshot::WorkerDone;
use crate::source::{Source, SourceError, StreamContext};
use crate::telemetry::Telemetry;

/// How long the snapshot worker gets to save the progress of the last
/// flush when the run ends.
const WORKER_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("runner: {0} is missing")]
    Missing(&'static str),
    // The inner error follows in the chain (`source()`), where callers
    // look for a `SourceError`.
    #[error("pipeline")]
    Pipeline(#[from] PipelineError),
    #[error("log reader")]
    Source(#[from] SourceError),
    #[error("log reader task: {0}")]
    SourceTask(String),
}

impl RunError {
    /// The source's own error, when that is what ended the run (the caller
    /// decides whether to start over: a lost position, a changed server, a
    /// lost lease).
    pub fn source_error(&self) -> Option<&SourceError> {
        match self {
            RunError::Source(err) => Some(err),
            _ => None,
        }
    }
}

pub struct RunnerBuilder {
    source: Option<Arc<dyn Source>>,
    processor: Option<(Box<dyn Processor>, Option<WorkerDone>)>,
    sink: Option<Box<dyn Sink>>,
    telemetry: Telemetry,
    lease: Lease,
    pipeline: PipelineConfig,
    channel_capacity: usize,
}

impl Default for RunnerBuilder {
    fn default() -> Self {
        RunnerBuilder {
            source: None,
            processor: None,
            sink: None,
            telemetry: Telemetry::default(),
            lease: Lease::sole(),
            pipeline: PipelineConfig::default(),
            channel_capacity: 8,
        }
    }
}

impl RunnerBuilder {
    pub fn source(mut self, source: Arc<dyn Source>) -> Self {
        self.source = Some(source);
        self
    }

    /// The processor and, when it has one, the worker whose progress the
    /// run waits for at the end (the snapshot worker).
    pub fn processor(mut self, processor: Box<dyn Processor>, worker: Option<WorkerDone>) -> Self {
        self.processor = Some((processor, worker));
        self
    }

    pub fn sink(mut self, sink: Box<dyn Sink>) -> Self {
        self.sink = Some(sink);
        self
    }

    pub fn telemetry(mut self, telemetry: Telemetry) -> Self {
        self.telemetry = telemetry;
        self
    }

    /// The lease the source acquired; the run does not start unless it is
    /// fresh. Without one the instance is alone ([`Lease::sole`]).
    pub fn lease(mut self, lease: Lease) -> Self {
        self.lease = lease;
        self
    }

    pub fn pipeline(mut self, config: PipelineConfig) -> Self {
        self.pipeline = config;
        self
    }

    /// Batches of log items between the reader and the pipeline.
    pub fn channel_capacity(mut self, capacity: usize) -> Self {
        self.channel_capacity = capacity.max(1);
        self
    }

    pub fn build(self) -> Result<Runner, RunError> {
        let (processor, worker) = self.processor.ok_or(RunError::Missing("processor"))?;
        Ok(Runner {
            source: self.source.ok_or(RunError::Missing("source"))?,
            processor,
            worker,
            sink: self.sink.ok_or(RunError::Missing("sink"))?,
            telemetry: self.telemetry,
            lease: self.lease,
            pipeline: self.pipeline,
            channel_capacity: self.channel_capacity,
        })
    }
}

pub struct Runner {
    source: Arc<dyn Source>,
    processor: Box<dyn Processor>,
    worker: Option<WorkerDone>,
    sink: Box<dyn Sink>,
    telemetry: Telemetry,
    lease: Lease,
    pipeline: PipelineConfig,
    channel_capacity: usize,
}

impl Runner {
    pub fn builder() -> RunnerBuilder {
        RunnerBuilder::default()
    }

    /// Stream until `shutdown` or a failure. A sink that fails for good
    /// stops the reader (through `stop`) before anything more is
    /// acknowledged; the snapshot worker then saves what the last flush
    /// made durable, and the reader sends its final acknowledgement.
    pub async fn run(
        self,
        stop: &watch::Sender<bool>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<PipelineStats, RunError> {
        let Runner {
            source,
            mut processor,
            worker,
            mut sink,
            telemetry,
            lease,
            pipeline: pipeline_config,
            channel_capacity,
        } = self;
        // Lost (or not confirmed lately) between taking it and starting:
        // the caller stands by again, as when it is lost while streaming.
        if !lease.is_fresh() {
            let why = lease
                .lost()
                .unwrap_or_else(|| "its lock connection has not answered lately".into());
            return Err(RunError::Source(SourceError::LeaseLost(format!(
                "this instance's lease is not held: {why}"
            ))));
        }
        let (items_tx, items_rx) = mpsc::channel(channel_capacity);
        let (acks_tx, acks_rx) = watch::channel(None);
        let ctx = StreamContext {
            items: items_tx,
            acks: acks_rx,
            shutdown: shutdown.clone(),
            telemetry: telemetry.clone(),
        };
        // In the caller's span: the reader's lines name the run too.
        let reader = tokio::spawn(tracing::Instrument::instrument(
            async move { source.stream(ctx).await },
            tracing::Span::current(),
        ));
        let outcome = pipeline::run(
            items_rx,
            processor.as_mut(),
            sink.as_mut(),
            acks_tx,
            shutdown,
            &pipeline_config,
            &telemetry,
        )
        .await;
        if outcome.is_err() {
            let _ = stop.send(true);
        }
        drop(processor);
        if let Some(worker) = worker {
            if tokio::time::timeout(WORKER_GRACE, worker.wait())
                .await
                .is_err()
            {
                tracing::warn!(
                    "snapshot worker did not finish in {}s; progress resumes from its last save",
                    WORKER_GRACE.as_secs()
                );
            }
        }
        let read = reader
            .await
            .map_err(|e| RunError::SourceTask(e.to_string()))?;
        let stats = outcome?;
        read?;
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::*;
    use crate::event::{Event, Op, Position, SnapshotFlag, SourceInfo, SourceMeta};
    use crate::pipeline::Passthrough;
    use crate::sink::SinkError;
    use crate::source::LogItem;
    use crate::value::{Row, Value};
    use crate::TableRef;

    /// A log of `n` one-row transactions, then it waits for shutdown and
    /// reports the last acknowledged position.
    struct Log {
        n: u64,
        acknowledged: Arc<Mutex<Option<Position>>>,
    }

    #[async_trait]
    impl Source for Log {
        async fn stream(&self, mut ctx: StreamContext) -> Result<(), SourceError> {
            let meta = Arc::new(SourceMeta {
                connector: "test",
                name: "t".into(),
                db: "db".into(),
                block: &crate::PLAIN_BLOCK,
            });
            let table = Arc::new(TableRef::new("public", "t"));
            let columns: Arc<[String]> = vec!["id".to_string()].into();
            for i in 1..=self.n {
                let position = Position::from_u64(i);
                let row = Row::new(columns.clone(), vec![Value::Int(i as i64)]);
                let event = Event {
                    update: None,
                    schema: None,
                    op: Op::Create,
                    table: Some(table.clone()),
                    key: Some(row.clone()),
                    before: None,
                    after: Some(row),
                    source: SourceInfo {
                        session: None,
                        meta: meta.clone(),
                        position: position.clone(),
                        offset: Some(i),
                        tx_id: Some(i),
                        ts_ms: 0,
                        ts_us: 0,
                        last_commit: None,
                        snapshot: SnapshotFlag::No,
                    },
                    message: None,
                    transaction: None,
                };
                let items = vec![
                    LogItem::Event(event),
                    LogItem::Commit {
                        tx_id: Some(i),
                        position,
                    },
                ];
                if ctx.items.send(items).await.is_err() {
                    return Ok(());
                }
            }
            while !*ctx.shutdown.borrow() {
                tokio::select! {
                    _ = ctx.shutdown.changed() => {}
                    changed = ctx.acks.changed() => {
                        if changed.is_err() { break; }
                        *self.acknowledged.lock().unwrap_or_else(|e| e.into_inner()) = ctx.acks.borrow().clone();
                    }
                }
            }
            Ok(())
        }
    }

    #[derive(Default)]
    struct Memory {
        written: Arc<Mutex<Vec<i64>>>,
        fail: bool,
    }

    #[async_trait]
    impl Sink for Memory {
        fn describe(&self) -> String {
            "memory".into()
        }
        async fn write(&mut self, events: &[Event]) -> Result<(), SinkError> {
            if self.fail {
                return Err(SinkError::Fatal("refused".into()));
            }
            let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
            for e in events {
                if let Some(Value::Int(id)) = e.after.as_ref().and_then(|r| r.values.first()) {
                    written.push(*id);
                }
            }
            Ok(())
        }
        async fn flush(&mut self) -> Result<(), SinkError> {
            Ok(())
        }
    }

    fn runner(source: Log, sink: Memory, lease: Lease) -> Runner {
        Runner::builder()
            .source(Arc::new(source))
            .processor(Box::new(Passthrough), None)
            .sink(Box::new(sink))
            .lease(lease)
            .build()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[tokio::test]
    async fn a_run_delivers_and_acknowledges_every_event_then_stops() {
        let acknowledged = Arc::new(Mutex::new(None));
        let sink = Memory::default();
        let written = sink.written.clone();
        let (stop, shutdown) = watch::channel(false);
        let run = runner(
            Log {
                n: 50,
                acknowledged: acknowledged.clone(),
            },
            sink,
            Lease::sole(),
        );
        let task = tokio::spawn(async move {
            let stop2 = stop.clone();
            let out = run.run(&stop2, shutdown).await;
            drop(stop);
            out
        });
        while written.lock().map(|w| w.len()).unwrap_or(0) < 50 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        while acknowledged.lock().map(|a| a.is_none()).unwrap_or(true) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Nothing is acknowledged beyond what the sink holds.
        let acked = acknowledged.lock().ok().and_then(|a| a.clone());
        assert!(acked.and_then(|p| p.to_u64()).is_some_and(|lsn| lsn <= 50));
        task.abort();
    }

    #[tokio::test]
    async fn a_failing_sink_stops_the_reader_and_acknowledges_nothing() {
        let acknowledged = Arc::new(Mutex::new(None));
        let (stop, shutdown) = watch::channel(false);
        let run = runner(
            Log {
                n: 5,
                acknowledged: acknowledged.clone(),
            },
            Memory {
                fail: true,
                ..Memory::default()
            },
            Lease::sole(),
        );
        let err = run.run(&stop, shutdown).await.err();
        assert!(matches!(err, Some(RunError::Pipeline(_))), "{err:?}");
        assert!(*stop.borrow(), "the reader was told to stop");
        assert_eq!(
            *acknowledged.lock().unwrap_or_else(|e| e.into_inner()),
            None
        );
    }

    #[tokio::test]
    async fn a_lost_lease_refuses_to_run() {
        let lease = Lease::held(4);
        lease.lose("lock connection closed".into());
        let (stop, shutdown) = watch::channel(false);
        let run = runner(
            Log {
                n: 1,
                acknowledged: Arc::default(),
            },
            Memory::default(),
            lease,
        );
        let err = run.run(&stop, shutdown).await.err();
        // A lost lease, for the caller to stand by again.
        assert!(
            matches!(
                err.as_ref().and_then(RunError::source_error),
                Some(SourceError::LeaseLost(why))
                    if why == "this instance's lease is not held: lock connection closed"
            ),
            "{err:?}"
        );
    }

    #[test]
    fn a_runner_needs_a_source_a_processor_and_a_sink() {
        let err = Runner::builder()
            .sink(Box::new(Memory::default()))
            .build()
            .err();
        assert!(matches!(err, Some(RunError::Missing("processor"))));
    }
}
