//! Debezium's `skipped.operations`: the change events of the listed kinds
//! are not written (README, "Moving from Debezium"). Debezium's default is
//! `t`, so the `debezium` preset skips truncates; cdc's own format skips
//! nothing. A stage on the snapshot processor's output, like the column
//! rules: the positions of skipped events are acknowledged as any other
//! item's, so a skipped kind never holds the slot back. Pure logic.

use crate::event::{Event, Op};
use crate::pipeline::Stage;

/// The kinds of change a run leaves out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SkippedOperations {
    creates: bool,
    updates: bool,
    deletes: bool,
    truncates: bool,
}

/// Why a `skipped.operations` value was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{given}' is not an operation Debezium can skip (known: c, u, d, t, or none)")]
pub struct SkippedError {
    pub given: String,
}

impl SkippedOperations {
    pub const NONE: SkippedOperations = SkippedOperations {
        creates: false,
        updates: false,
        deletes: false,
        truncates: false,
    };

    /// Debezium's default.
    pub const TRUNCATES: SkippedOperations = SkippedOperations {
        truncates: true,
        ..SkippedOperations::NONE
    };

    /// A comma list of `c`, `u`, `d`, `t`, or `none`, as Debezium spells it.
    pub fn parse(list: &str) -> Result<Self, SkippedError> {
        let mut skipped = SkippedOperations::NONE;
        for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            match item {
                "c" => skipped.creates = true,
                "u" => skipped.updates = true,
                "d" => skipped.deletes = true,
                "t" => skipped.truncates = true,
                "none" => {}
                other => {
                    return Err(SkippedError {
                        given: other.to_owned(),
                    })
                }
            }
        }
        Ok(skipped)
    }

    pub fn is_empty(&self) -> bool {
        *self == SkippedOperations::NONE
    }

    /// Snapshot reads, messages and Debezium's extras are never skipped.
    pub fn skips(&self, op: Op) -> bool {
        match op {
            Op::Create => self.creates,
            Op::Update => self.updates,
            Op::Delete => self.deletes,
            Op::Truncate => self.truncates,
            Op::Read | Op::Message | Op::Transaction | Op::Heartbeat => false,
        }
    }
}

impl Stage for SkippedOperations {
    /// Only `out[start..]` is this item's: the rest of the batch is left
    /// alone, and is not walked again.
    fn after(&mut self, start: usize, out: &mut Vec<Event>) {
        let mut kept = start;
        for at in start..out.len() {
            if !self.skips(out[at].op) {
                out.swap(kept, at);
                kept += 1;
            }
        }
        out.truncate(kept);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debeziums_letters_parse_and_anything_else_is_named() {
        assert_eq!(
            SkippedOperations::parse("t"),
            Ok(SkippedOperations::TRUNCATES)
        );
        assert_eq!(
            SkippedOperations::parse("none"),
            Ok(SkippedOperations::NONE)
        );
        let all = SkippedOperations::parse(" c, u ,d,t").unwrap_or_default();
        for op in [Op::Create, Op::Update, Op::Delete, Op::Truncate] {
            assert!(all.skips(op), "{op:?}");
        }
        for op in [Op::Read, Op::Message, Op::Transaction, Op::Heartbeat] {
            assert!(!all.skips(op), "{op:?}");
        }
        let err = SkippedOperations::parse("c,x").unwrap_err();
        assert_eq!(err.given, "x");
    }
}
