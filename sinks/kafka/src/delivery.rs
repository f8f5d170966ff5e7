//! librdkafka's callbacks: delivery reports, client errors and log lines.
//!
//! Delivery reports arrive on the producer's polling thread. They are
//! counted here (outstanding messages, failures) and the sink's flush is
//! woken when the count reaches zero or a delivery fails.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryResult, ProducerContext};
use rdkafka::Message;
use tokio::sync::Notify;

/// A delivery that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    /// The record's sequence number (its delivery opaque).
    pub seq: u64,
    pub code: RDKafkaErrorCode,
}

/// What the callbacks report, shared with the sink.
#[derive(Debug, Default)]
pub(crate) struct Deliveries {
    /// Messages handed to librdkafka whose report has not arrived.
    outstanding: AtomicUsize,
    failures: Mutex<Vec<Failure>>,
    /// The latest client-level error (broker down, authentication, TLS).
    last_error: Mutex<Option<(RDKafkaErrorCode, String)>>,
    changed: Notify,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind: keep using it.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Deliveries {
    pub fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::Acquire)
    }

    /// Count a message about to be handed to librdkafka.
    pub fn sending(&self) {
        self.outstanding.fetch_add(1, Ordering::AcqRel);
    }

    /// librdkafka refused the message: it will get no report.
    pub fn not_sent(&self) {
        self.outstanding.fetch_sub(1, Ordering::AcqRel);
    }

    pub fn take_failures(&self) -> Vec<Failure> {
        std::mem::take(&mut *lock(&self.failures))
    }

    /// A copy of the failures so far, leaving them in place.
    pub fn failures(&self) -> Vec<Failure> {
        lock(&self.failures).clone()
    }

    pub fn last_error(&self) -> Option<(RDKafkaErrorCode, String)> {
        lock(&self.last_error).clone()
    }

    pub fn clear_last_error(&self) {
        *lock(&self.last_error) = None;
    }

    /// Resolves after the next report that may end a flush's wait (the
    /// count reaching zero, a failure), or at once if one happened since
    /// the previous wait.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    fn delivered(&self, seq: u64, error: Option<RDKafkaErrorCode>) {
        let failed = error.is_some();
        if let Some(code) = error {
            lock(&self.failures).push(Failure { seq, code });
        }
        let before = self.outstanding.fetch_sub(1, Ordering::AcqRel);
        if failed || before <= 1 {
            // One waiter (the flush); a stored permit covers a report that
            // arrives before it starts waiting.
            self.changed.notify_one();
        }
    }
}

/// Routes librdkafka's log lines and client errors to `tracing`.
#[derive(Debug, Default, Clone)]
pub(crate) struct LogContext {
    /// Client errors land here too when the context belongs to a producer.
    deliveries: Option<Arc<Deliveries>>,
}

impl ClientContext for LogContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error
            | RDKafkaLogLevel::Warning
                // Connection failures also arrive as client errors, which
                // are reported once per change below.
                if !matches!(fac, "FAIL" | "ERROR") =>
            {
                tracing::warn!(target: "librdkafka", "{fac}: {message}")
            }
            RDKafkaLogLevel::Notice => tracing::info!(target: "librdkafka", "{fac}: {message}"),
            _ => tracing::debug!(target: "librdkafka", "{fac}: {message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let code = error.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail);
        let Some(deliveries) = &self.deliveries else {
            tracing::warn!(target: "librdkafka", "kafka client: {reason}");
            return;
        };
        let mut last = lock(&deliveries.last_error);
        // A down broker repeats the same error on every reconnect attempt.
        if last.as_ref().is_none_or(|(_, previous)| previous != reason) {
            tracing::warn!(target: "librdkafka", "kafka client: {reason}");
        }
        *last = Some((code, reason.to_string()));
    }
}

/// The producer's context: delivery reports plus logging.
#[derive(Debug, Clone)]
pub(crate) struct SinkContext {
    log: LogContext,
    deliveries: Arc<Deliveries>,
}

impl SinkContext {
    pub fn new() -> SinkContext {
        let deliveries = Arc::new(Deliveries::default());
        SinkContext {
            log: LogContext {
                deliveries: Some(deliveries.clone()),
            },
            deliveries,
        }
    }

    pub fn deliveries(&self) -> Arc<Deliveries> {
        self.deliveries.clone()
    }
}

impl ClientContext for SinkContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        self.log.log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.log.error(error, reason);
    }
}

impl ProducerContext for SinkContext {
    /// The record's sequence number.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, seq: Self::DeliveryOpaque) {
        let error = match result {
            Ok(_) => None,
            Err((err, message)) => {
                tracing::debug!(topic = message.topic(), "delivery failed: {err}");
                Some(err.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail))
            }
        };
        self.deliveries.delivered(seq as u64, error);
    }
}
