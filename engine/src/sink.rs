//! The sink contract: accepted is not durable.
//!
//! `write` hands events over in order; `flush` returns only when everything
//! written so far is durable (fsynced, or confirmed by the broker). The
//! pipeline acknowledges a source position only after a `flush` that covers
//! every event at or before it.

use async_trait::async_trait;

use crate::event::Event;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Worth retrying after a pause: a full disk, a broker that is down.
    /// The sink has rolled back any partial write, so the same events can
    /// be written again.
    #[error("{0}")]
    Retriable(String),
    /// Retrying cannot help: bad configuration, authorisation, a message
    /// the destination refuses.
    #[error("{0}")]
    Fatal(String),
}

#[async_trait]
pub trait Sink: Send {
    /// A short name for logs (`file:/path`, `stdout`, `kafka`).
    fn describe(&self) -> String;

    /// Accept `events` in order. On error nothing of this call is accepted.
    async fn write(&mut self, events: &[Event]) -> Result<(), SinkError>;

    /// Make everything accepted so far durable.
    async fn flush(&mut self) -> Result<(), SinkError>;
}
