//! The Kafka sink: accepted records stay until a flush sees them all
//! delivered; a flush waits for librdkafka's delivery reports.
//!
//! ```text
//!  write(events) ─► Router ─► Batch (accepted, unconfirmed) ─► producer.send (in order)
//!                                 ▲                                  │
//!                                 │ rewind on a failed delivery       ▼
//!  flush() ◄── Deliveries (outstanding count, failures) ◄── delivery reports
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use cdc_engine::{Event, Sink, SinkError};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};

use crate::config::KafkaSinkConfig;
use crate::delivery::{Deliveries, Failure, SinkContext};
use crate::error::{classify, hint, is_setup_error, Class, OpenError};
use crate::record::{Batch, Record};
use crate::routing::Router;
use crate::topics::Topics;

/// How often a flush retries handing over records librdkafka's queue had
/// no room for.
const QUEUE_FULL_POLL: Duration = Duration::from_millis(5);

/// Counters, for logs and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KafkaSinkStats {
    /// Records handed to librdkafka, re-sends included.
    pub sent: u64,
    /// Records confirmed by a successful flush.
    pub confirmed: u64,
    /// Records handed over again after a failed delivery or a new producer.
    pub resent: u64,
    /// Producers replaced after a fatal idempotence error.
    pub new_producers: u64,
}

/// Publishes change events to Kafka. See the crate docs for the guarantees.
pub struct KafkaSink {
    config: KafkaSinkConfig,
    router: Router,
    topics: Topics,
    producer: ThreadedProducer<SinkContext>,
    deliveries: Arc<Deliveries>,
    /// Every accepted record not yet confirmed, in acceptance order.
    batch: Batch,
    /// Sequence number (delivery opaque) of `batch`'s first record.
    base_seq: u64,
    /// `batch[..produced]` has been handed to the producer, in order.
    produced: usize,
    /// Highest index handed over so far, to count re-sends.
    high_water: usize,
    stats: KafkaSinkStats,
}

/// Why handing records to librdkafka stopped.
enum Stop {
    Sink(SinkError),
    /// The producer is unusable (fatal idempotence error).
    ProducerFatal,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

fn new_producer(
    config: &KafkaSinkConfig,
) -> Result<(ThreadedProducer<SinkContext>, Arc<Deliveries>), OpenError> {
    let context = SinkContext::new();
    let deliveries = context.deliveries();
    let producer = config
        .producer_config()
        .create_with_context(context)
        .map_err(OpenError::from_kafka)?;
    Ok((producer, deliveries))
}

impl KafkaSink {
    /// Creates the producer (and admin client). Brokers are contacted
    /// lazily: an unreachable cluster shows up as retriable errors later.
    pub fn open(config: KafkaSinkConfig) -> Result<KafkaSink, OpenError> {
        config.validate()?;
        let router = Router::new(&config)?;
        let (producer, deliveries) = new_producer(&config)?;
        let topics = Topics::new(&config)?;
        Ok(KafkaSink {
            config,
            router,
            topics,
            producer,
            deliveries,
            batch: Batch::default(),
            base_seq: 0,
            produced: 0,
            high_water: 0,
            stats: KafkaSinkStats::default(),
        })
    }

    /// Render values in `format`'s modes (keys and values alike).
    pub fn with_format(mut self, format: cdc_engine::format::Format) -> Self {
        self.router.set_format(format);
        self
    }

    pub fn stats(&self) -> &KafkaSinkStats {
        &self.stats
    }

    /// Accepted records a flush has not confirmed yet.
    pub fn unconfirmed(&self) -> usize {
        self.batch.len()
    }

    /// Hand records to the producer in order, from `produced` on, until
    /// all are handed over or its queue is full.
    fn produce(&mut self) -> Result<(), Stop> {
        while let Some(record) = self.batch.get(self.produced) {
            let seq = self.base_seq + self.produced as u64;
            let mut out =
                BaseRecord::<[u8], [u8], usize>::with_opaque_to(&record.topic, seq as usize);
            if let Some(key) = &record.key {
                out = out.key(self.batch.bytes(key));
            }
            if let Some(value) = &record.value {
                out = out.payload(self.batch.bytes(value));
            }
            if let Some(headers) = self.batch.headers(record) {
                out = out.headers(headers);
            }
            self.deliveries.sending();
            match self.producer.send(out) {
                Ok(()) => {
                    self.produced += 1;
                    self.stats.sent += 1;
                    if self.produced <= self.high_water {
                        self.stats.resent += 1;
                    } else {
                        self.high_water = self.produced;
                    }
                }
                Err((err, _)) => {
                    self.deliveries.not_sent();
                    let code = err.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail);
                    return match (code, classify(code)) {
                        // The rest waits for room; order is kept.
                        (RDKafkaErrorCode::QueueFull, _) => Ok(()),
                        (_, Class::ProducerFatal) => Err(Stop::ProducerFatal),
                        (_, Class::Fatal) => {
                            Err(Stop::Sink(SinkError::Fatal(refused(record, code))))
                        }
                        (_, Class::Retriable) => Err(Stop::Sink(SinkError::Retriable(format!(
                            "kafka producer refused a record for topic {}: {code}",
                            record.topic
                        )))),
                    };
                }
            }
        }
        Ok(())
    }

    /// A fatal failure among the deliveries so far, if any.
    fn fatal_failure(&self) -> Option<Result<(), SinkError>> {
        let failures = self.deliveries.failures();
        let failure = failures
            .iter()
            .find(|f| classify(f.code) != Class::Retriable)?;
        if classify(failure.code) == Class::ProducerFatal {
            return Some(Ok(()));
        }
        let message = match self.record(failure.seq) {
            Some(record) => refused(record, failure.code),
            None => format!(
                "kafka refused a record: {} ({})",
                failure.code,
                hint(failure.code)
            ),
        };
        Some(Err(SinkError::Fatal(message)))
    }

    fn record(&self, seq: u64) -> Option<&Record> {
        let index = usize::try_from(seq.checked_sub(self.base_seq)?).ok()?;
        self.batch.get(index)
    }

    /// After a retriable delivery failure: send the earliest failed record
    /// and everything accepted after it again, in order. Records after it
    /// that were delivered are sent twice (at-least-once), so that no
    /// record of the same partition ever lands before one accepted earlier
    /// and left out.
    fn rewind(&mut self, failures: &[Failure]) -> Option<SinkError> {
        let first = failures
            .iter()
            .filter(|f| self.record(f.seq).is_some())
            .min_by_key(|f| f.seq)?;
        let index = usize::try_from(first.seq - self.base_seq).unwrap_or(0);
        let topic = self
            .record(first.seq)
            .map(|r| r.topic.to_string())
            .unwrap_or_default();
        let again = self.batch.len() - index;
        self.produced = self.produced.min(index);
        Some(SinkError::Retriable(format!(
            "{} deliveries failed (topic {topic}: {}); sending {again} events again, in order",
            failures.len(),
            first.code
        )))
    }

    /// The producer hit a fatal idempotence error: replace it and send
    /// every unconfirmed record again, unless the cause is one retrying
    /// cannot fix.
    async fn replace_producer(&mut self) -> SinkError {
        let (code, reason) = self
            .producer
            .client()
            .fatal_error()
            .unwrap_or((RDKafkaErrorCode::Fatal, "fatal producer error".to_string()));
        if classify(code) == Class::Fatal || is_setup_error(code) {
            return SinkError::Fatal(format!("kafka producer failed: {reason} ({})", hint(code)));
        }
        let (producer, deliveries) = match new_producer(&self.config) {
            Ok(new) => new,
            Err(err) => return SinkError::Fatal(err.to_string()),
        };
        let old = std::mem::replace(&mut self.producer, producer);
        self.deliveries = deliveries;
        // Dropping purges the old producer's queues and joins its threads.
        let _ = tokio::task::spawn_blocking(move || drop(old)).await;
        self.produced = 0;
        self.stats.new_producers += 1;
        SinkError::Retriable(format!(
            "kafka producer failed ({reason}); started a new one, sending {} unconfirmed events again",
            self.batch.len()
        ))
    }

    /// No answer within `flush_timeout`: retriable, unless the client's
    /// last error says the settings are wrong.
    fn stalled(&self) -> SinkError {
        let waiting = self.deliveries.outstanding() + (self.batch.len() - self.produced);
        let last = self.deliveries.last_error();
        if let Some((code, reason)) = &last {
            let bad_certificate =
                *code == RDKafkaErrorCode::SSL && reason.contains("certificate verify failed");
            if (is_setup_error(*code) && *code != RDKafkaErrorCode::SSL) || bad_certificate {
                return SinkError::Fatal(format!("kafka: {reason} ({})", hint(*code)));
            }
        }
        SinkError::Retriable(format!(
            "{waiting} events not yet confirmed by kafka after {:?}{}",
            self.config.flush_timeout(),
            last.map(|(_, reason)| format!(" (last client error: {reason})"))
                .unwrap_or_default()
        ))
    }

    fn confirm(&mut self) {
        self.stats.confirmed += self.batch.len() as u64;
        self.base_seq += self.batch.len() as u64;
        self.batch.clear();
        self.produced = 0;
        self.high_water = 0;
        self.deliveries.clear_last_error();
    }
}

/// One line naming the topic and the reason.
fn refused(record: &Record, code: RDKafkaErrorCode) -> String {
    let size =
        record.key.as_ref().map_or(0, |k| k.len()) + record.value.as_ref().map_or(0, |v| v.len());
    format!(
        "kafka refused a {size}-byte record for topic {}: {code} ({})",
        record.topic,
        hint(code)
    )
}

#[async_trait]
impl Sink for KafkaSink {
    fn describe(&self) -> String {
        format!("kafka:{}", self.config.bootstrap_servers)
    }

    async fn write(&mut self, events: &[Event]) -> Result<(), SinkError> {
        let mark = self.batch.mark();
        let ts_ms = now_ms();
        for event in events {
            if let Err(err) = self.router.route(event, ts_ms, &mut self.batch) {
                self.batch.rollback(mark);
                return Err(SinkError::Fatal(err.0));
            }
        }
        let mut new: Vec<Arc<str>> = Vec::new();
        let mut last: Option<&Arc<str>> = None;
        for record in self.batch.records().iter().skip(mark.records) {
            if last.is_some_and(|l| Arc::ptr_eq(l, &record.topic)) {
                continue;
            }
            last = Some(&record.topic);
            if !self.topics.is_ready(&record.topic) && !new.contains(&record.topic) {
                new.push(record.topic.clone());
            }
        }
        if !new.is_empty() {
            if let Err(err) = self.topics.ensure(&new, &self.producer).await {
                self.batch.rollback(mark);
                return Err(err);
            }
        }
        // Accepted from here on: what cannot be handed over now is handed
        // over by the next write or flush, in order.
        match self.produce() {
            Err(Stop::Sink(err @ SinkError::Fatal(_))) => Err(err),
            _ => Ok(()),
        }
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        let deadline = Instant::now() + self.config.flush_timeout();
        // linger.ms is for filling batches while events keep coming; a
        // flush wants them sent now. (A zero timeout only wakes the brokers.)
        let _ = self.producer.flush(Duration::ZERO);
        loop {
            let refused = match self.produce() {
                Ok(()) => None,
                Err(Stop::Sink(err @ SinkError::Fatal(_))) => return Err(err),
                Err(Stop::Sink(err)) => Some(err),
                Err(Stop::ProducerFatal) => return Err(self.replace_producer().await),
            };
            match self.fatal_failure() {
                Some(Err(err)) => return Err(err),
                Some(Ok(())) => return Err(self.replace_producer().await),
                None => {}
            }
            // A fatal producer error need not fail every queued message:
            // waiting for their reports could take forever.
            if self.producer.client().fatal_error().is_some() {
                return Err(self.replace_producer().await);
            }
            if self.produced == self.batch.len() && self.deliveries.outstanding() == 0 {
                let failures = self.deliveries.take_failures();
                return match self.rewind(&failures) {
                    Some(err) => Err(err),
                    None => {
                        self.confirm();
                        Ok(())
                    }
                };
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(refused.unwrap_or_else(|| self.stalled()));
            }
            let mut wait = deadline - now;
            if self.produced < self.batch.len() {
                wait = wait.min(QUEUE_FULL_POLL);
            }
            let _ = tokio::time::timeout(wait, self.deliveries.changed()).await;
        }
    }

    fn forget_unconfirmed(&mut self) {
        // What was handed to the producer stays in its queues: the
        // idempotent producer delivers it, in order, before anything the
        // new run hands over. The rest the new run sends again.
        self.base_seq += self.batch.len() as u64;
        self.batch.clear();
        self.produced = 0;
        self.high_water = 0;
    }
}
