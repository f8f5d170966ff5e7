//! Which source position is safe to acknowledge.
//!
//! Checkpoints arrive in log order between events. A checkpoint becomes
//! acknowledgeable once every event before it has been written and then
//! flushed: written moves "seen" checkpoints to "written", flush moves the
//! highest written one to "acknowledged". Acknowledgements never go back, even
//! when a reconnect replays older positions.

use crate::event::Position;

#[derive(Debug, Default)]
pub struct DurableTracker {
    /// Highest checkpoint seen whose events are not all written yet.
    seen: Option<Position>,
    /// Highest checkpoint whose events are all written, not yet flushed.
    written: Option<Position>,
    acknowledged: Option<Position>,
    unflushed: bool,
}

impl DurableTracker {
    /// A checkpoint was passed in the log.
    pub fn checkpoint(&mut self, position: Position) {
        self.seen = max(self.seen.take(), position);
    }

    /// Everything received so far has been written to the sink.
    pub fn written(&mut self) {
        if let Some(position) = self.seen.take() {
            self.written = max(self.written.take(), position);
            self.unflushed = true;
        }
    }

    /// Whether a flush would make a new checkpoint durable.
    pub fn has_unflushed(&self) -> bool {
        self.unflushed
    }

    /// The sink flushed everything written. Returns the new acknowledgement
    /// if it moved forward.
    pub fn flushed(&mut self) -> Option<Position> {
        self.unflushed = false;
        let written = self.written.take()?;
        if self.acknowledged.as_ref().is_some_and(|a| *a >= written) {
            return None;
        }
        self.acknowledged = Some(written.clone());
        Some(written)
    }

    pub fn acknowledged(&self) -> Option<&Position> {
        self.acknowledged.as_ref()
    }
}

fn max(current: Option<Position>, candidate: Position) -> Option<Position> {
    match current {
        Some(current) if current >= candidate => Some(current),
        _ => Some(candidate),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_flushed_checkpoints_are_acknowledged() {
        let mut t = DurableTracker::default();
        t.checkpoint(Position::from_u64(10));
        assert!(!t.has_unflushed());
        t.written();
        assert!(t.has_unflushed());
        t.checkpoint(Position::from_u64(20));
        assert_eq!(t.flushed(), Some(Position::from_u64(10)));
        t.written();
        assert_eq!(t.flushed(), Some(Position::from_u64(20)));
    }

    #[test]
    fn acknowledgements_never_go_back() {
        let mut t = DurableTracker::default();
        t.checkpoint(Position::from_u64(20));
        t.written();
        assert_eq!(t.flushed(), Some(Position::from_u64(20)));
        // A reconnect replays from an older position.
        t.checkpoint(Position::from_u64(15));
        t.written();
        assert_eq!(t.flushed(), None);
        assert_eq!(t.acknowledged(), Some(&Position::from_u64(20)));
    }
}
