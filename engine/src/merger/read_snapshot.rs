//! What a chunk's read could see of the log's transactions, for the
//! torn-chunk check (docs/architecture.md, "Torn chunks").
//!
//! The source supplies it with each chunk, because only the source knows
//! how its reads relate to its log. PostgreSQL's is the `pg_current_snapshot()`
//! the `SELECT` ran in (`sources/postgres/src/visibility.rs`); a source whose
//! reads cannot miss a transaction the log already showed committed
//! (MongoDB's majority reads after the low watermark) supplies none, which
//! turns the check off.

use std::fmt;
use std::ops::RangeInclusive;

pub trait ReadSnapshot: Send + Sync + fmt::Debug {
    /// Whether the read did not see transaction `tx_id`, as log items carry
    /// it (`LogItem::Commit::tx_id`).
    fn is_invisible(&self, tx_id: u64) -> bool;

    /// The transaction ids, as log items carry them, that the read may not
    /// have seen: a superset (each is still checked with
    /// [`ReadSnapshot::is_invisible`]), as single ids and ranges, so the
    /// commit memory looks up a few entries instead of scanning all it
    /// remembers.
    fn candidates(&self) -> Candidates;

    /// One line for a discard reason.
    fn brief(&self) -> String;
}

/// See [`ReadSnapshot::candidates`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Candidates {
    pub ids: Vec<u64>,
    pub ranges: Vec<RangeInclusive<u64>>,
}
