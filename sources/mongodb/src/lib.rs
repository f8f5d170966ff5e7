//! MongoDB source for cdc. So far only its pure part: conversions that
//! need no server. The change-stream adapter (the driver, watching,
//! resuming, snapshots) comes later and builds on these.
//!
//! * [`extjson`] — BSON → JSON text as Debezium 3.6.3's MongoDB connector
//!   writes `after`/`before`, the key's `id`, `updateDescription.updatedFields`
//!   and `source.lsid` (its `JsonSerialization` settings, driver 5.9.2's
//!   writer), for every BSON type.
//! * [`change`] — a change-stream event document as a typed [`Change`]:
//!   row changes with Debezium's `c`/`u`/`d`, key, documents and update
//!   description; DDL events and `invalidate` as their own kinds; unknown
//!   operation types as errors.
//! * [`resume`] — resume tokens as cdc [`cdc_engine::Position`]s (cluster
//!   time first, so byte order is stream order) and back.
//! * [`source_block`] — Debezium's MongoDB `source` members after `db`,
//!   their Connect schema, and transaction ids; its doc lists what the
//!   engine's event model cannot carry yet (`lsid`, per-event `db`).
//!
//! Verified against Debezium's own code, run offline on its 3.6.3 jars by
//! `tests/java/io/debezium/connector/mongodb/CdcFixtures.java`: the
//! rendering of every BSON type in all three settings, change events through
//! the driver's codec and Debezium's `MongoDbCollectionSchema`, `SourceInfo`,
//! source struct maker and metadata provider, the source schema, and
//! `ResumeTokens.getTimestamp` (`tests/golden_*.rs`, fixtures in
//! `tests/fixtures/`). Doubles follow Java 19 and later's `Double.toString`
//! (checked on Java 25); Java 17 prints a few differently (`java_text.rs`).

pub mod change;
pub mod client;
pub mod config;
pub mod event;
pub mod extjson;
mod java_text;
pub mod keys;
pub mod positions;
pub mod preflight;
pub mod resume;
pub mod snapshot;
pub mod source_block;
pub mod stream;
pub mod translate;

pub use change::{parse_change, Change, ChangeError, ChangeKind, RowChange, RowOp};
pub use resume::{position_of, token_of, ClusterTime, PositionError, ResumeTokenError};
pub use source_block::{MongoBlock, MONGO_BLOCK};
