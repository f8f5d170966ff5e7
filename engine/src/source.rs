//! The source contract: a log reader that streams [`LogItem`]s from the last
//! acknowledged position and acknowledges what the pipeline reports durable.
//!
//! PostgreSQL implements it over logical replication, MongoDB over change
//! streams; positions are opaque to the engine.

use std::sync::Arc;

use async_trait::async_trait;
use cdc_signal::SignalRow;
use tokio::sync::{mpsc, watch};

use crate::event::{Event, Position, SourceInfo};
use crate::schema::TableSchema;
use crate::telemetry::Telemetry;

/// One item of the log, in log order.
#[derive(Debug, Clone)]
pub enum LogItem {
    /// A change to a captured table.
    Event(Event),
    /// A row inserted into the signal table: an operator's command or one of
    /// the engine's own watermarks.
    Signal { row: SignalRow, source: SourceInfo },
    /// A transaction committed. Everything before this item is complete, so
    /// once it is durable `position` may be acknowledged.
    Commit {
        tx_id: Option<u64>,
        position: Position,
    },
    /// A captured table's shape changed (or was first described) from here
    /// on in the log: later events of the table have this shape.
    Schema(Arc<TableSchema>),
    /// The table's rows changed in a way the log carries no event for (a
    /// partition truncated, say): snapshot it again, bracketed by resync
    /// markers, so a consumer can drop the rows it does not see again.
    Resync {
        table: Arc<cdc_signal::TableRef>,
        reason: String,
    },
    /// No transaction is open and the log is at `position`: acknowledging it
    /// (once all before is durable) lets the source release its log while the
    /// captured tables are idle.
    Heartbeat(Position),
}

impl LogItem {
    /// The position that may be acknowledged once this item and everything
    /// before it are durable.
    pub fn checkpoint(&self) -> Option<&Position> {
        match self {
            LogItem::Commit { position, .. } | LogItem::Heartbeat(position) => Some(position),
            LogItem::Event(_)
            | LogItem::Signal { .. }
            | LogItem::Schema(_)
            | LogItem::Resync { .. } => None,
        }
    }
}

/// What a source's stream runs with.
pub struct StreamContext {
    /// Log items, in batches to keep channel overhead off the per-row path.
    /// Bounded: a slow sink slows the reader.
    pub items: mpsc::Sender<Vec<LogItem>>,
    /// The highest durable position; the source acknowledges it upstream.
    /// Closed by the pipeline when it has flushed its last batch.
    pub acks: watch::Receiver<Option<Position>>,
    /// Becomes `true` when the engine should stop: stop reading, drop
    /// `items`, send the final acknowledgement once `acks` closes.
    pub shutdown: watch::Receiver<bool>,
    /// Metrics and the reader's health (`/health/ready`).
    pub telemetry: Telemetry,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Retrying cannot help (bad configuration, missing privilege, dropped
    /// slot): the message says what to fix.
    #[error("{0}")]
    Fatal(String),
    /// A lost connection or an overloaded server, after the source's own
    /// retries gave up.
    #[error("{0}")]
    Transient(String),
    /// The source's position is gone (an invalidated slot): definite for
    /// this run; a new run's guards decide, by policy, whether to fail or
    /// to recreate it and snapshot again.
    #[error("{0}")]
    PositionLost(String),
    /// Another server answers at the source's address now (a failover):
    /// the engine starts over, and the source's guards judge whether its
    /// position survived there.
    #[error("{0}")]
    ServerChanged(String),
    /// This instance lost the lease of its group: it stops acting at once
    /// and stands by again.
    #[error("{0}")]
    LeaseLost(String),
}

#[async_trait]
pub trait Source: Send + Sync {
    /// Stream the log into `ctx.items` until shutdown or a fatal error.
    /// Reconnects on transient errors, resuming from the last acknowledged
    /// position (so events after it may be delivered again).
    async fn stream(&self, ctx: StreamContext) -> Result<(), SourceError>;
}
