//! The Kafka sink: change events to Kafka topics, Debezium-compatible, with
//! per-key order and no loss.
//!
//! ```text
//!  events ─► routing (topic, key, value, headers) ─► record batch ─► librdkafka
//!                                                     (kept until      │ idempotent
//!                                                      confirmed)      ▼ producer
//!  flush() ◄──────────── delivery reports (all written?) ◄────────── brokers
//! ```
//!
//! # Guarantees
//!
//! - **Acknowledged only when written**: `write` accepts records (and hands
//!   them to librdkafka); `flush` returns `Ok` only once a delivery report
//!   has confirmed every accepted record. The pipeline acknowledges source
//!   positions only after such a flush.
//! - **Per-key order**: records are handed to librdkafka in acceptance
//!   order; a key always maps to the same partition (murmur2, as the Java
//!   client), and the idempotent producer keeps each partition in produce
//!   order across its internal retries, without duplicates.
//! - **Retries without reordering**: `message.timeout.ms` defaults to 0, so
//!   librdkafka retries transient failures (leader changes, broker
//!   restarts, outages) itself, forever, in order; a flush that waits longer
//!   than `flush_timeout_ms` returns a retriable error and the pipeline
//!   flushes again later, acknowledging nothing meanwhile. Were a delivery
//!   to fail anyway (a user-set `message.timeout.ms`; librdkafka may then
//!   still write later records of the same partition, leaving a gap), the
//!   next flush sends the earliest failed record *and every record accepted
//!   after it* again, in order: consumers may see some records twice, as
//!   after a restart, but a key's last record is always its latest state.
//!   A fatal idempotence error (librdkafka's `_FATAL`) replaces the
//!   producer and sends every unconfirmed record again the same way.
//! - **Fatal errors stop the pipeline** with one line naming the topic and
//!   the reason: authorisation, a missing topic (with topic creation off),
//!   a record over the size limit, a record the broker refuses.

mod config;
mod delivery;
mod error;
mod record;
mod routing;
mod sink;
mod template;
mod topics;

pub use config::{is_secret, ConfigError, KafkaSinkConfig, OutboxConfig, DEFAULT_PROPERTIES};
pub use error::OpenError;
pub use record::{HEADER_ID, HEADER_OP, HEADER_POSITION, HEADER_TYPE};
pub use routing::key_bytes;
pub use sink::{KafkaSink, KafkaSinkStats};
pub use template::{sanitize, Template, TemplateError, Var, Vars};
