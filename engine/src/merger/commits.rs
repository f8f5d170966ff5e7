//! The transactions the log has shown as committed, remembered for the torn-chunk check.
//!
//! Bounded by count: the last `capacity` commits. A transaction that stays invisible while
//! more than that many later ones commit is no longer recognised, unless a chunk already
//! caught it: such suspects stay pinned until a snapshot sees them, so a transaction stuck
//! in a synchronous-replication wait keeps failing its chunks however long it waits.

use std::collections::{BTreeMap, VecDeque};

use super::read_snapshot::ReadSnapshot;

/// Default number of remembered commits: about 3 MB, seconds of a busy server's commits,
/// while a transaction stays invisible after its commit record only for a replication wait.
pub const DEFAULT_COMMIT_MEMORY: usize = 65_536;

/// Pinned suspects: each is a distinct transaction stuck after its commit record; more
/// than a handful means the server is in trouble anyway, so the oldest are let go.
const MAX_SUSPECTS: usize = 1024;

#[derive(Debug)]
pub(crate) struct CommitMemory {
    capacity: usize,
    /// Log order of the next commit; marks compare against it.
    next_seq: u64,
    /// (tx id, seq) in log order, for eviction.
    order: VecDeque<(u64, u64)>,
    /// Tx id to the seq of its latest commit, ordered so the ids a snapshot counts as
    /// `>= xmax` are a few range lookups.
    by_xid: BTreeMap<u64, u64>,
    /// Transactions that already tore a chunk and have not been seen visible since.
    suspects: VecDeque<u64>,
}

impl CommitMemory {
    pub(crate) fn new(capacity: usize) -> Self {
        CommitMemory {
            capacity,
            next_seq: 0,
            order: VecDeque::new(),
            by_xid: BTreeMap::new(),
            suspects: VecDeque::new(),
        }
    }

    pub(crate) fn record(&mut self, tx_id: u64) {
        let seq = self.next_seq;
        self.next_seq += 1;
        if self.capacity == 0 {
            return;
        }
        while self.order.len() >= self.capacity {
            let Some((old, old_seq)) = self.order.pop_front() else {
                break;
            };
            // A replayed commit of the same id may have replaced this entry's seq.
            if self.by_xid.get(&old) == Some(&old_seq) {
                self.by_xid.remove(&old);
            }
        }
        self.order.push_back((tx_id, seq));
        self.by_xid.insert(tx_id, seq);
    }

    /// Commits recorded from now on come after this mark.
    pub(crate) fn mark(&self) -> u64 {
        self.next_seq
    }

    /// A transaction committed before `mark` that `read` does not see, if any.
    /// Costs one lookup per candidate id plus the remembered ids in the
    /// candidate ranges (PostgreSQL: the in-progress xids, and the ids at or
    /// above `xmax`, mostly the window's own transactions).
    pub(crate) fn invisible_before(&mut self, read: &dyn ReadSnapshot, mark: u64) -> Option<u64> {
        // A committed transaction once visible stays visible, so seen suspects are settled.
        self.suspects.retain(|&xid| read.is_invisible(xid));
        if let Some(&xid) = self.suspects.front() {
            return Some(xid);
        }
        let by_xid = &self.by_xid;
        let committed_before = |raw: u64| by_xid.get(&raw).is_some_and(|&seq| seq < mark);
        let candidates = read.candidates();
        let found = candidates
            .ids
            .iter()
            .copied()
            .find(|&raw| committed_before(raw) && read.is_invisible(raw))
            .or_else(|| {
                candidates
                    .ranges
                    .into_iter()
                    .find_map(|range| {
                        by_xid
                            .range(range)
                            .find(|(&raw, &seq)| seq < mark && read.is_invisible(raw))
                    })
                    .map(|(&raw, _)| raw)
            });
        if let Some(xid) = found {
            if self.suspects.len() >= MAX_SUSPECTS {
                self.suspects.pop_front();
            }
            self.suspects.push_back(xid);
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merger::Candidates;

    /// An MVCC snapshot of 64-bit ids: every transaction below `xmax` seen
    /// except those in `xip`, none at or above (PostgreSQL's own, with its
    /// 32-bit log xids, is tested in the PostgreSQL crate).
    #[derive(Debug)]
    struct Snapshot {
        xmax: u64,
        xip: Vec<u64>,
    }

    impl ReadSnapshot for Snapshot {
        fn is_invisible(&self, tx_id: u64) -> bool {
            tx_id >= self.xmax || self.xip.contains(&tx_id)
        }

        fn candidates(&self) -> Candidates {
            Candidates {
                ids: self.xip.clone(),
                ranges: vec![self.xmax..=u64::MAX],
            }
        }

        fn brief(&self) -> String {
            format!("{}:{:?}", self.xmax, self.xip)
        }
    }

    fn vis(_xmin: u64, xmax: u64, xip: &[u64]) -> Snapshot {
        Snapshot {
            xmax,
            xip: xip.to_vec(),
        }
    }

    #[test]
    fn only_commits_before_the_mark_count() {
        let mut memory = CommitMemory::new(16);
        memory.record(10);
        let mark = memory.mark();
        memory.record(11);
        memory.record(12);
        let v = vis(10, 11, &[10]);
        assert_eq!(memory.invisible_before(&v, mark), Some(10));
        let mut memory = CommitMemory::new(16);
        memory.record(9);
        let mark = memory.mark();
        memory.record(10);
        memory.record(11);
        // 10 in xip and 11 above xmax committed after the mark: normal, not torn.
        assert_eq!(memory.invisible_before(&vis(10, 11, &[10]), mark), None);
    }

    #[test]
    fn capacity_bounds_memory_and_suspects_stay_pinned() {
        let mut memory = CommitMemory::new(2);
        memory.record(100);
        memory.record(101);
        memory.record(102);
        assert_eq!(memory.order.len(), 2);
        assert!(!memory.by_xid.contains_key(&100));
        // Evicted before any chunk saw it: no longer recognised (the documented limit).
        let v = vis(100, 103, &[100]);
        assert_eq!(memory.invisible_before(&v, memory.mark()), None);

        let mut memory = CommitMemory::new(2);
        memory.record(200);
        assert_eq!(
            memory.invisible_before(&vis(200, 201, &[200]), 1),
            Some(200)
        );
        for xid in 201..210 {
            memory.record(xid);
        }
        // Evicted from memory but pinned: still tears chunks while invisible...
        let v = vis(200, 210, &[200]);
        assert_eq!(memory.invisible_before(&v, memory.mark()), Some(200));
        // ...and is let go once a snapshot sees it.
        assert_eq!(
            memory.invisible_before(&vis(210, 210, &[]), memory.mark()),
            None
        );
        assert!(memory.suspects.is_empty());
        assert_eq!(memory.invisible_before(&v, memory.mark()), None);
    }

    #[test]
    fn replayed_commits_survive_eviction_of_their_first_copy() {
        let mut memory = CommitMemory::new(2);
        memory.record(7);
        memory.record(7);
        memory.record(8);
        assert_eq!(memory.by_xid.get(&7), Some(&1));
        assert_eq!(memory.invisible_before(&vis(7, 8, &[7]), 3), Some(7));
    }

    #[test]
    fn zero_capacity_remembers_nothing() {
        let mut memory = CommitMemory::new(0);
        memory.record(5);
        assert_eq!(
            memory.invisible_before(&vis(5, 5, &[]), memory.mark()),
            None
        );
    }
}
