//! The engine of `cdc`: event model, DBLog window merger, snapshot scheduler,
//! offsets and the pipeline that moves events from a source to a sink.
//!
//! Nothing here does I/O of its own beyond the channels between tasks:
//! sources and sinks are adapters behind [`source::Source`] and
//! [`sink::Sink`], and depend on this crate, never the other way round.

pub mod assembly;
pub mod columns;
pub mod envelope;
pub mod event;
pub mod format;
pub mod heartbeat;
pub mod lease;
pub mod merger;
pub mod offsets;
pub mod pipeline;
pub mod position_store;
pub mod runner;
pub mod scheduler;
pub mod schema;
pub mod sink;
pub mod skipped;
pub mod snapshot;
pub mod source;
pub mod source_block;
pub mod telemetry;
pub mod transaction;
pub mod value;

pub use cdc_signal::{SignalRow, TableRef};
pub use event::{
    Event, LogicalMessage, Op, Position, SnapshotFlag, SourceInfo, SourceMeta, TransactionInfo,
    UpdateDescription,
};
pub use lease::Lease;
pub use position_store::{PositionStore, PositionWriter};
pub use schema::{ColumnKind, ColumnSchema, TableSchema};
pub use sink::{SharedSink, Sink, SinkError};
pub use source::{LogItem, Source, SourceError, StreamContext};
pub use source_block::{EnvelopeLayout, SourceBlock, DOCUMENT_COLUMN, PLAIN_BLOCK};
pub use telemetry::Telemetry;
pub use value::{Row, TextType, Value, DEFAULT_TIME_PRECISION, UNAVAILABLE_VALUE_PLACEHOLDER};

/// `tracing::warn!` when `$warn`, else `tracing::info!`, with the same line:
/// one fault gets one warning, and the other parts that notice it say so at
/// info ([`Lease::first_to_notice_outage`]).
#[macro_export]
macro_rules! warn_or_info {
    ($warn:expr, $($arg:tt)+) => {
        if $warn {
            ::tracing::warn!($($arg)+)
        } else {
            ::tracing::info!($($arg)+)
        }
    };
}
