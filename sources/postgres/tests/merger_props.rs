//! The DBLog window merger against a model of a PostgreSQL table and its log.
//!
//! The model: integer keys 0..12, a value per write that is unique (a version counter)
//! so every state is traceable, a TOASTed column `doc` that most updates leave alone (the
//! log event then carries the unchanged placeholder, as pgoutput sends it), rows that
//! existed before capture (never in the log), and transactions that may stay invisible
//! after their commit is streamed (a synchronous replication wait: the torn-snapshot
//! hazard of docs/architecture.md, "Torn chunks") or stay open across a chunk `SELECT`. A snapshot driver
//! selects chunks between watermarks until the table is covered, selecting a discarded
//! chunk again later. The properties of docs/architecture.md, "Correctness properties", are checked on the merger's output:
//! completeness and no time travel (of the full row, placeholders resolved as a consumer
//! folds them), and that every column of every key reaches a consumer that starts from
//! the snapshot, no placeholder left.

#[path = "merger_props/model.rs"]
mod model;
#[path = "merger_props/sim.rs"]
mod sim;

use std::collections::BTreeMap;

use cdc_engine::merger::{Outcome, WindowMerger};
use cdc_engine::{Event, LogItem, Op, Position, SnapshotFlag};
use cdc_postgres::visibility::Visibility;
use cdc_signal::Command;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;

use model::{check_no_time_travel, fold, fold_rows, key_of, value_of, Log, Seen, State, XID32};
use sim::{scenario, Sim};

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn merged_output_is_complete_and_never_goes_back_in_time(s in scenario()) {
        if let Err(violation) = Sim::new(&s, true).run() {
            prop_assert!(false, "{violation}");
        }
    }
}

/// The properties have teeth: without the torn check (a plain DBLog merge) the same
/// kind of scenarios break them, while with it they hold and torn chunks do occur.
#[test]
fn without_the_torn_check_the_properties_fail() {
    let mut runner = TestRunner::deterministic();
    let strategy = scenario();
    let (mut plain_violations, mut torn) = (0, 0);
    for _ in 0..400 {
        let s = strategy
            .new_tree(&mut runner)
            .map_err(|e| e.to_string())
            .unwrap()
            .current();
        let stats = Sim::new(&s, true).run().unwrap();
        torn += stats.torn;
        if Sim::new(&s, false).run().is_err() {
            plain_violations += 1;
        }
    }
    assert!(torn > 0, "no scenario produced a torn chunk");
    assert!(
        plain_violations > 0,
        "a plain DBLog merge passed every scenario"
    );
}

/// The TOAST property has teeth: with the fill off, chunk rows under placeholder events
/// are lost and some scenarios end with a key whose doc never reached the consumer; every
/// such run still passes the other properties (its violation is the TOAST one alone).
#[test]
fn without_the_toast_fill_a_doc_is_lost() {
    let mut runner = TestRunner::deterministic();
    let strategy = scenario();
    let mut lost = 0;
    for _ in 0..400 {
        let s = strategy
            .new_tree(&mut runner)
            .map_err(|e| e.to_string())
            .unwrap()
            .current();
        Sim::new(&s, true).run().unwrap();
        if let Err(violation) = Sim::new(&s, true).without_toast_fill().run() {
            assert!(violation.starts_with("toast: "), "{violation}");
            lost += 1;
        }
    }
    assert!(lost > 0, "no scenario lost a doc without the fill");
}

// ---------------------------------------------------------------------------------------
// Each rule on its own

struct Harness {
    log: Log,
    merger: WindowMerger,
    out: Vec<Event>,
    outcomes: Vec<Outcome>,
}

impl Harness {
    fn new() -> Self {
        Harness {
            log: Log::new(),
            merger: WindowMerger::new(),
            out: Vec::new(),
            outcomes: Vec::new(),
        }
    }

    fn feed(&mut self, item: LogItem) -> Option<LogItem> {
        self.merger.on_log(item, &mut self.out, &mut self.outcomes)
    }

    /// A write of key `k` that sets both columns (`None`: absent).
    fn write(&mut self, xid: u64, k: i64, before: Option<i64>, after: Option<i64>) {
        self.write_state(xid, k, before.map(State::fresh), after.map(State::fresh));
    }

    fn write_state(&mut self, xid: u64, k: i64, before: Option<State>, after: Option<State>) {
        let item = self.log.change(xid, k, before, after);
        self.feed(item);
        let commit = self.log.commit(xid);
        self.feed(commit);
    }

    fn mark(&mut self, xid: u64, window: &str, open: bool) {
        let item = self.log.watermark(xid, window, open);
        assert!(self.feed(item).is_some(), "watermarks are handed back");
        let commit = self.log.commit(xid);
        self.feed(commit);
    }

    fn expect(&mut self, token: u64, window: &str) {
        let table = self.log.table.clone();
        self.merger
            .expect_window(token, window.into(), table, &mut self.outcomes);
    }

    fn chunk(&mut self, token: u64, window: &str, rows: &[(i64, i64)], vis: Option<Visibility>) {
        let rows: Vec<(i64, State)> = rows.iter().map(|&(k, v)| (k, State::fresh(v))).collect();
        let chunk = self.log.chunk(token, window, &rows, vis);
        self.merger.on_chunk(chunk, &mut self.outcomes);
    }

    fn reads(&self) -> Vec<(i64, i64)> {
        self.out
            .iter()
            .filter(|e| e.op == Op::Read)
            .filter_map(|e| Some((key_of(e)?, value_of(e)?)))
            .collect()
    }

    fn discarded(&self) -> String {
        match self.outcomes.as_slice() {
            [Outcome::ChunkDiscarded { reason, .. }] => reason.clone(),
            other => panic!("expected one discard, got {other:?}"),
        }
    }
}

fn vis(xmin: u64, xmax: u64, xip: &[u64]) -> Option<Visibility> {
    Some(Visibility {
        xmin,
        xmax,
        xip: xip.to_vec(),
    })
}

#[test]
fn chunk_before_its_low_watermark() {
    let mut h = Harness::new();
    h.chunk(1, "w", &[(1, 10), (2, 20), (3, 30)], vis(50, 50, &[]));
    h.write(40, 2, Some(19), Some(21)); // before the LW: passes, changes nothing
    h.mark(50, "w", true);
    h.write(51, 3, Some(30), Some(31));
    h.write(52, 9, None, Some(90)); // not in the chunk
    h.mark(53, "w", false);
    assert_eq!(h.reads(), vec![(1, 10), (2, 20)]);
    assert_eq!(
        h.outcomes,
        vec![Outcome::ChunkDone {
            token: 1,
            emitted: 2
        }]
    );
    assert_eq!(h.out.len(), 5, "every log event passes through");
    assert!(h.merger.is_idle());
}

#[test]
fn chunk_after_its_low_watermark() {
    let mut h = Harness::new();
    h.expect(1, "w");
    h.mark(50, "w", true);
    h.write(51, 1, Some(10), None);
    h.chunk(1, "w", &[(1, 10), (2, 20)], vis(50, 51, &[]));
    h.write(52, 2, Some(20), Some(22));
    h.mark(53, "w", false);
    assert!(h.reads().is_empty());
    assert_eq!(
        h.outcomes,
        vec![Outcome::ChunkDone {
            token: 1,
            emitted: 0
        }]
    );
}

#[test]
fn read_events_carry_the_high_watermark_source() {
    let mut h = Harness::new();
    h.chunk(7, "w", &[(4, 40)], None);
    h.mark(50, "w", true);
    let hw = h.log.watermark(51, "w", false);
    let LogItem::Signal { source, .. } = &hw else {
        unreachable!()
    };
    let mut expected = source.clone();
    expected.snapshot = SnapshotFlag::Incremental;
    h.feed(hw);
    let read = h.out.last().unwrap();
    assert_eq!(read.op, Op::Read);
    assert_eq!(read.table.as_deref(), Some(&*h.log.table));
    assert_eq!(read.key, Some(h.log.key(4)));
    assert_eq!(
        (read.before.clone(), read.after.clone()),
        (None, Some(h.log.row(4, 40)))
    );
    assert_eq!(read.source, expected);
    assert_eq!(read.message, None);
}

#[test]
fn non_events_produce_nothing_and_come_back() {
    let mut h = Harness::new();
    let commit = h.log.commit(5);
    assert!(h.feed(commit).is_some());
    assert!(h.feed(LogItem::Heartbeat(Position::from_u64(9))).is_some());
    let stop = Command::stop_snapshot(vec![]).unwrap().to_row("s1".into());
    let source = h.log.source(None);
    assert!(h.feed(LogItem::Signal { row: stop, source }).is_some());
    assert!(h.out.is_empty() && h.outcomes.is_empty());
}

#[test]
fn truncate_inside_the_window_empties_the_chunk() {
    for chunk_first in [true, false] {
        let mut h = Harness::new();
        h.expect(1, "w");
        if chunk_first {
            h.chunk(1, "w", &[(1, 10), (2, 20)], vis(50, 50, &[]));
        }
        h.mark(50, "w", true);
        let t = h.log.truncate(51);
        h.feed(t);
        h.write(52, 1, None, Some(11));
        if !chunk_first {
            h.chunk(1, "w", &[(1, 11), (2, 20)], vis(50, 52, &[]));
        }
        h.mark(53, "w", false);
        assert!(h.reads().is_empty(), "chunk first: {chunk_first}");
        assert_eq!(
            h.outcomes,
            vec![Outcome::ChunkDone {
                token: 1,
                emitted: 0
            }]
        );
    }
}

#[test]
fn other_tables_and_events_outside_the_window_pass_through() {
    let mut h = Harness::new();
    h.chunk(1, "w", &[(1, 10)], None);
    h.mark(50, "w", true);
    let other = h.log.other.clone();
    let item = h.log.change_in(other, 51, 1, None, Some(State::fresh(5)));
    h.feed(item);
    h.mark(52, "w", false);
    h.write(53, 1, Some(10), Some(12)); // after the HW
    assert_eq!(h.reads(), vec![(1, 10)]);
    assert_eq!(h.out.len(), 3);
    assert_eq!(fold(&h.out), BTreeMap::from([(1, 12)]));
}

#[test]
fn stale_and_foreign_watermarks_are_ignored() {
    let mut h = Harness::new();
    h.mark(40, "old", true); // nothing expected yet
    h.mark(41, "old", false);
    h.expect(1, "w");
    h.mark(42, "other", true);
    h.mark(50, "w", true);
    h.mark(51, "other", false);
    h.chunk(1, "w", &[(1, 10)], vis(50, 52, &[]));
    h.mark(52, "old", true);
    h.mark(53, "w", false);
    assert_eq!(
        h.outcomes,
        vec![Outcome::ChunkDone {
            token: 1,
            emitted: 1
        }]
    );
}

#[test]
fn high_watermark_without_its_chunk_discards() {
    let mut h = Harness::new();
    h.expect(1, "w");
    h.mark(50, "w", true);
    h.mark(51, "w", false);
    assert!(
        h.discarded().contains("before its chunk"),
        "{}",
        h.discarded()
    );
    assert!(h.out.is_empty() && h.merger.is_idle());
}

#[test]
fn high_watermark_before_its_low_watermark_discards() {
    let mut h = Harness::new();
    h.chunk(1, "w", &[(1, 10)], None);
    h.mark(51, "w", false);
    assert!(h.discarded().contains("before its low watermark"));
    h.mark(52, "w", true); // late LW: nothing in flight any more
    assert!(h.reads().is_empty() && h.merger.is_idle());

    // Unannounced, and the LW went by before the chunk came: not vouched for.
    let mut h = Harness::new();
    h.mark(50, "w", true);
    h.chunk(1, "w", &[(1, 10)], None);
    h.mark(51, "w", false);
    assert!(h.discarded().contains("before its low watermark"));
}

#[test]
fn low_watermark_twice_discards() {
    let mut h = Harness::new();
    h.chunk(1, "w", &[(1, 10)], None);
    h.mark(50, "w", true);
    h.mark(51, "w", true);
    assert!(h.discarded().contains("seen twice"));
    h.mark(52, "w", false);
    assert!(h.reads().is_empty());
}

#[test]
fn a_new_window_supersedes_the_one_in_flight() {
    let mut h = Harness::new();
    h.expect(1, "w1");
    h.mark(50, "w1", true);
    h.expect(2, "w2");
    assert!(h.discarded().contains("superseded"));
    h.outcomes.clear();
    h.chunk(3, "w3", &[(1, 10)], None); // does not match w2 either
    assert_eq!(
        h.outcomes,
        vec![Outcome::ChunkDiscarded {
            token: 2,
            reason: "window w2 superseded by window w3 before its high watermark".into()
        }]
    );
}

#[test]
fn abandon_discards_the_window_in_flight() {
    let mut h = Harness::new();
    h.expect(1, "w");
    h.mark(50, "w", true);
    assert!(!h.merger.is_idle());
    let mut outcomes = Vec::new();
    h.merger.abandon(&mut outcomes);
    assert!(matches!(
        outcomes.as_slice(),
        [Outcome::ChunkDiscarded { token: 1, .. }]
    ));
    assert!(h.merger.is_idle());
    h.chunk(2, "w2", &[(1, 10)], None);
    h.mark(51, "w", false); // the abandoned window's HW: ignored
    assert!(h.outcomes.is_empty());
}

/// A keyless event inside the window discards the chunk only when one of its
/// images equals a chunk row (it may be that row's change); a chunk listing a
/// key twice is never trusted.
#[test]
fn keyless_event_on_a_chunk_row_or_duplicate_key_in_the_window_discards() {
    let keyless = |h: &mut Harness, k: i64, v: i64| {
        let mut item = h.log.change(51, k, Some(State::fresh(v)), None);
        if let LogItem::Event(event) = &mut item {
            event.key = None;
        }
        h.feed(item);
    };
    let mut h = Harness::new();
    h.chunk(1, "w", &[(1, 10)], None);
    h.mark(50, "w", true);
    keyless(&mut h, 1, 10);
    h.mark(52, "w", false);
    assert!(h.discarded().contains("equal to one the chunk holds"));

    let mut h = Harness::new();
    h.chunk(1, "w", &[(1, 10)], None);
    h.mark(50, "w", true);
    keyless(&mut h, 2, 20);
    h.mark(52, "w", false);
    assert_eq!(h.reads(), vec![(1, 10)]);

    let mut h = Harness::new();
    h.chunk(1, "w", &[(1, 10), (1, 10)], None);
    h.mark(50, "w", true);
    h.write(51, 1, Some(10), Some(11));
    h.mark(52, "w", false);
    assert!(h.discarded().contains("twice"));
}

/// The hazard of docs/architecture.md, "Torn chunks", step by step: transaction 100 updates key 1 and is
/// streamed as committed, but waits in SyncRep, so the chunk selected after the LW still
/// sees the old value. A plain DBLog merge emits that stale row after the update.
#[test]
fn torn_chunk_is_discarded_where_plain_dblog_would_go_back_in_time() {
    let run = |visibility: Option<Visibility>| {
        let mut h = Harness::new();
        h.write(100, 1, Some(10), Some(11)); // streamed; invisible until the wait ends
        h.expect(1, "w");
        h.mark(101, "w", true);
        h.chunk(1, "w", &[(1, 10), (2, 20)], visibility);
        h.mark(102, "w", false);
        h
    };
    let fresh = |vs: &[i64]| {
        vs.iter()
            .map(|&v| Some(State::fresh(v)))
            .collect::<Vec<_>>()
    };
    let history = BTreeMap::from([(1, fresh(&[10, 11])), (2, fresh(&[20]))]);

    // With the snapshot's visibility (xid 100 in progress): discarded, nothing stale.
    let h = run(vis(100, 102, &[100]));
    let reason = h.discarded();
    assert!(
        reason.starts_with("torn chunk: transaction 100 "),
        "{reason}"
    );
    assert!(reason.contains("100:102:100"), "{reason}");
    assert!(h.reads().is_empty());
    check_no_time_travel(&h.out, &history).unwrap();

    // As PostgreSQL showed it, `726:726:`-style: the waiting xid at xmax.
    let h = run(vis(100, 100, &[]));
    assert!(h.discarded().starts_with("torn chunk: transaction 100 "));

    // A plain DBLog merge (no visibility): the stale value comes last and wins.
    let h = run(None);
    assert_eq!(h.reads(), vec![(1, 10), (2, 20)]);
    assert_eq!(
        fold(&h.out).get(&1),
        Some(&10),
        "the consumer ends on the old value"
    );
    let err = check_no_time_travel(&h.out, &history).unwrap_err();
    assert!(err.starts_with("stale read of key 1"), "{err}");
}

#[test]
fn invisible_transactions_committing_inside_the_window_are_fine() {
    let mut h = Harness::new();
    h.expect(1, "w");
    h.mark(100, "w", true);
    // 99 and 103 were running at the SELECT and commit inside the window.
    h.chunk(1, "w", &[(1, 10), (2, 20)], vis(99, 102, &[99]));
    h.write(99, 1, Some(10), Some(11));
    h.write(103, 5, None, Some(50));
    h.mark(104, "w", false);
    assert_eq!(
        h.outcomes,
        vec![Outcome::ChunkDone {
            token: 1,
            emitted: 1
        }]
    );
    assert_eq!(h.reads(), vec![(2, 20)]);
}

#[test]
fn torn_check_across_an_xid_wraparound() {
    // xid8 epoch 7: the log's 32-bit xid 4294967290 is 7:4294967290, the snapshot's
    // xmax is already in epoch 8.
    let epoch = 8u64 << 32;
    let stuck = XID32 - 5;
    let mut h = Harness::new();
    h.write(stuck, 1, Some(10), Some(11));
    h.expect(1, "w");
    h.mark(epoch + 4, "w", true);
    h.chunk(1, "w", &[(1, 10)], vis(epoch - 6, epoch + 5, &[epoch - 6]));
    h.mark(epoch + 5, "w", false);
    assert!(h.discarded().contains(&format!("transaction {stuck} ")));

    // The same xid, visible: the chunk goes out.
    let mut h = Harness::new();
    h.write(stuck, 1, Some(10), Some(11));
    h.expect(1, "w");
    h.mark(epoch + 4, "w", true);
    h.chunk(1, "w", &[(1, 11)], vis(epoch + 5, epoch + 5, &[]));
    h.mark(epoch + 5, "w", false);
    assert_eq!(
        h.outcomes,
        vec![Outcome::ChunkDone {
            token: 1,
            emitted: 1
        }]
    );
}

#[test]
fn a_stuck_transaction_keeps_tearing_chunks_until_visible() {
    let mut h = Harness::new();
    h.merger = WindowMerger::with_commit_memory(4);
    h.write(100, 1, Some(10), Some(11));
    for (token, base) in [(1u64, 200u64), (2, 300)] {
        h.outcomes.clear();
        let window = format!("w{token}");
        h.expect(token, &window);
        h.mark(base, &window, true);
        h.chunk(token, &window, &[(1, 10)], vis(100, base + 1, &[100]));
        h.mark(base + 1, &window, false);
        assert!(h.discarded().contains("transaction 100 "), "chunk {token}");
        // Many later commits push 100 out of the commit memory; it stays pinned.
        for xid in base + 2..base + 20 {
            h.write(xid, 9, None, Some(xid as i64));
        }
    }
    h.outcomes.clear();
    h.expect(3, "w3");
    h.mark(400, "w3", true);
    h.chunk(3, "w3", &[(1, 11)], vis(401, 401, &[]));
    h.mark(401, "w3", false);
    assert_eq!(
        h.outcomes,
        vec![Outcome::ChunkDone {
            token: 3,
            emitted: 1
        }]
    );
}

#[test]
fn visibility_text_round_trips() {
    let v: Visibility = "726:726:".parse().unwrap();
    assert!(v.is_invisible(726) && !v.is_invisible(725));
    assert_eq!(v.to_string(), "726:726:");
    assert!("726:725:".parse::<Visibility>().is_err());
}

/// Pipelined chunks: the next window is queued while the previous one still
/// waits for its high watermark; each applies only inside its own window.
#[test]
fn queued_windows_merge_in_log_order() {
    let mut h = Harness::new();
    h.expect(1, "w1");
    h.chunk(1, "w1", &[(1, 10), (2, 20)], vis(50, 50, &[]));
    let table = h.log.table.clone();
    h.merger.queue_window(2, "w2".into(), table);
    h.mark(50, "w1", true);
    h.write(51, 3, Some(30), Some(31)); // inside w1, before w2's select sees it
    h.mark(52, "w1", false);
    h.mark(53, "w2", true);
    // w2's chunk: selected after its LW (xid 53), before xid 54 commits.
    h.chunk(2, "w2", &[(3, 31), (4, 40)], vis(54, 54, &[]));
    h.write(54, 4, Some(40), Some(41)); // inside w2: wins over the chunk row
    h.mark(55, "w2", false);
    assert_eq!(h.reads(), vec![(1, 10), (2, 20), (3, 31)]);
    assert_eq!(
        h.outcomes,
        vec![
            Outcome::ChunkDone {
                token: 1,
                emitted: 2
            },
            Outcome::ChunkDone {
                token: 2,
                emitted: 1
            }
        ]
    );
    assert!(h.merger.is_idle());
}

#[test]
fn a_queued_window_opening_first_discards_the_one_before_it() {
    let mut h = Harness::new();
    h.expect(1, "w1");
    let table = h.log.table.clone();
    h.merger.queue_window(2, "w2".into(), table);
    h.mark(50, "w2", true);
    assert!(h.discarded().contains("reached before window w1 closed"));
    h.outcomes.clear();
    // A cancelled window's watermarks are ignored.
    h.merger.cancel(2);
    h.chunk(2, "w2", &[(1, 10)], None);
    h.outcomes.clear();
    h.merger.cancel(2);
    h.mark(51, "w2", false);
    assert!(h.outcomes.is_empty());
    assert!(h.reads().is_empty());
    assert!(h.merger.is_idle());
}

/// An update that leaves `doc` alone inside the window: the chunk row's doc reaches the
/// consumer in a read of the key's newest state; without the fill, only the placeholder.
#[test]
fn a_placeholder_in_the_window_keeps_the_chunk_rows_doc() {
    for fill in [true, false] {
        let mut h = Harness::new();
        if !fill {
            h.merger = WindowMerger::new().without_toast_fill();
        }
        h.chunk(1, "w", &[(1, 10), (2, 20)], vis(50, 50, &[]));
        h.mark(50, "w", true);
        let kept = State { v: 11, doc: 10 };
        h.write_state(51, 1, Some(State::fresh(10)), Some(kept));
        h.mark(52, "w", false);
        let folded = fold_rows(&h.out).unwrap();
        let doc = fill.then_some(10);
        assert_eq!(folded.get(&1), Some(&Seen { v: 11, doc }), "fill: {fill}");
        assert_eq!(
            folded.get(&2),
            Some(&Seen {
                v: 20,
                doc: Some(20)
            })
        );
        let history = BTreeMap::from([
            (1, vec![Some(State::fresh(10)), Some(kept)]),
            (2, vec![Some(State::fresh(20))]),
        ]);
        check_no_time_travel(&h.out, &history).unwrap();
        assert_eq!(
            h.reads(),
            if fill {
                vec![(1, 11), (2, 20)]
            } else {
                vec![(2, 20)]
            }
        );
    }
}

/// `snapshot.max_parallel_tables`: windows of two tables overlap in the log
/// (LW a, LW b, HW a, HW b). Each acts on its own table's events only, and
/// the LW of one never discards the other's.
#[test]
fn windows_of_two_tables_overlap_each_on_its_own_events() {
    let mut h = Harness::new();
    let other = h.log.other.clone();
    h.expect(1, "a");
    let table = other.clone();
    h.merger
        .expect_window(2, "b".into(), table, &mut h.outcomes);
    h.mark(50, "a", true);
    h.mark(51, "b", true);
    h.chunk(1, "a", &[(1, 10), (2, 20)], None);
    let mut b = h.log.chunk(
        2,
        "b",
        &[(1, State::fresh(100)), (2, State::fresh(200))],
        None,
    );
    b.table = other.clone();
    h.merger.on_chunk(b, &mut h.outcomes);
    // Key 1 of `a` and key 2 of `other` change inside both windows.
    h.write(52, 1, Some(10), Some(11));
    let item = h.log.change_in(
        other.clone(),
        53,
        2,
        Some(State::fresh(200)),
        Some(State::fresh(201)),
    );
    h.feed(item);
    let commit = h.log.commit(53);
    h.feed(commit);
    h.mark(54, "a", false);
    h.mark(55, "b", false);
    assert!(
        h.outcomes
            .iter()
            .all(|o| matches!(o, Outcome::ChunkDone { emitted: 1, .. })),
        "{:?}",
        h.outcomes
    );
    let reads: Vec<(String, i64, i64)> = h
        .out
        .iter()
        .filter(|e| e.op == Op::Read)
        .map(|e| {
            let table = e.table.as_ref().map(|t| t.name.clone()).unwrap_or_default();
            (table, key_of(e).unwrap_or(-1), value_of(e).unwrap_or(-1))
        })
        .collect();
    assert_eq!(
        reads,
        vec![("t".to_string(), 2, 20), ("other".to_string(), 1, 100)]
    );
}

/// A second window of the same table still discards the first one's that
/// never closed, with another table's window open beside them.
#[test]
fn a_tables_second_low_watermark_discards_its_first_window_only() {
    let mut h = Harness::new();
    let other = h.log.other.clone();
    h.merger
        .expect_window(9, "b".into(), other.clone(), &mut h.outcomes);
    h.mark(49, "b", true);
    h.expect(1, "a1");
    h.merger.queue_window(2, "a2".into(), h.log.table.clone());
    h.mark(50, "a1", true);
    h.chunk(1, "a1", &[(1, 10)], None);
    h.chunk(2, "a2", &[(2, 20)], None);
    h.mark(51, "a2", true);
    let mut b = h.log.chunk(9, "b", &[(5, State::fresh(50))], None);
    b.table = other;
    h.merger.on_chunk(b, &mut h.outcomes);
    h.mark(52, "a2", false);
    h.mark(53, "b", false);
    let outcomes: Vec<(u64, bool)> = h
        .outcomes
        .iter()
        .map(|o| match o {
            Outcome::ChunkDone { token, .. } => (*token, true),
            Outcome::ChunkDiscarded { token, .. } => (*token, false),
        })
        .collect();
    assert_eq!(outcomes, vec![(1, false), (2, true), (9, true)]);
}
