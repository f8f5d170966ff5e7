use cdc_signal::{AdditionalCondition, SnapshotKind};

use super::*;

fn t(name: &str) -> TableRef {
    TableRef::new("public", name)
}

fn execute(tables: &[&str]) -> Command {
    Command::ExecuteSnapshot {
        tables: tables.iter().map(|n| t(n)).collect(),
        kind: SnapshotKind::Incremental,
        conditions: vec![],
        surrogate_key: None,
    }
}

fn ok(_: &TableRef) -> Result<(), String> {
    Ok(())
}

#[test]
fn captured_tables_are_remembered_and_a_first_start_is_not_new() {
    let mut s = Scheduler::new(SnapshotState::default(), 10);
    assert!(s.captured_at_start(&[t("a")]).is_empty(), "first start");
    assert!(s.take_dirty(), "saved, so the next start knows a");
    assert!(s.captured_at_start(&[t("a")]).is_empty());
    assert!(!s.take_dirty());
    assert_eq!(s.captured_at_start(&[t("a"), t("b")]), vec![t("b")]);
    assert!(s.take_dirty());
    s.captured_now(&t("c"));
    assert!(s.take_dirty());
    // Survives a restart through the saved state.
    let json = serde_json::to_string(s.state()).unwrap();
    let mut again = Scheduler::new(serde_json::from_str(&json).unwrap(), 10);
    assert!(again
        .captured_at_start(&[t("a"), t("b"), t("c")])
        .is_empty());
    assert!(!again.take_dirty());
    // Left out for a run, then back: the log lacks its changes between.
    assert!(again.captured_at_start(&[t("a"), t("c")]).is_empty());
    assert_eq!(
        again.captured_at_start(&[t("a"), t("b"), t("c")]),
        vec![t("b")]
    );
    // A state of an older cdc, without the field: none remembered.
    let old: SnapshotState = serde_json::from_str(r#"{"paused":false,"queue":[]}"#).unwrap();
    assert_eq!(old.captured, None);
    let mut old = Scheduler::new(old, 10);
    assert!(old.captured_at_start(&[t("a")]).is_empty());
}

/// A chunk of the tests' size-2 chunks: a short one is the last.
fn selected(rows: usize, last: Option<&str>) -> Selected {
    Selected {
        rows,
        last: rows < 2,
        last_key: last.map(|k| vec![k.to_string()]),
        max_key: Some(vec!["100".into()]),
        estimate: Some(100),
    }
}

#[test]
fn chunks_advance_then_the_table_completes() {
    let mut s = Scheduler::new(SnapshotState::default(), 2);
    assert_eq!(
        s.apply("s1", &execute(&["a"]), ok),
        Ok(Applied::Queued(vec![t("a")]))
    );
    let r = s.next_request().unwrap();
    assert_eq!(r.after_key, None);
    assert!(!r.max_key_read);
    assert!(
        s.next_request().is_none(),
        "the next chunk waits for this one's select"
    );
    s.on_selected(r.token, selected(2, Some("2")));
    // Pipelined: the next chunk is requested before this one is done.
    let r2 = s.next_request().unwrap();
    assert_eq!(r2.after_key, Some(vec!["2".into()]));
    assert!(s.next_request().is_none(), "two in flight at most");
    assert_eq!(s.on_done(r.token, 1), None);
    let r = r2;
    assert_eq!(r.after_key, Some(vec!["2".into()]));
    assert_eq!(r.max_key, Some(vec!["100".into()]));
    assert!(r.max_key_read);
    s.on_selected(r.token, selected(1, Some("3")));
    assert_eq!(
        s.on_done(r.token, 1),
        Some(Finished {
            table: t("a"),
            rows: 2,
            signal_id: "s1".into(),
        })
    );
    assert!(s.next_request().is_none());
    assert!(s.take_dirty());
}

#[test]
fn discarded_chunks_repeat_the_same_range() {
    let mut s = Scheduler::new(SnapshotState::default(), 2);
    s.apply("s1", &execute(&["a"]), ok).unwrap();
    let r1 = s.next_request().unwrap();
    s.on_selected(r1.token, selected(2, Some("2")));
    let follower = s.next_request().unwrap();
    // Discarding a chunk cancels the one selected after it.
    assert_eq!(s.on_discarded(r1.token), vec![follower.token]);
    let r2 = s.next_request().unwrap();
    assert_eq!(r2.after_key, None);
    assert_eq!(r2.attempt, 1);
    // A late outcome of the discarded chunk changes nothing.
    assert_eq!(s.on_done(r1.token, 2), None);
    assert_eq!(s.on_done(follower.token, 2), None);
    assert!(s.is_busy());
    assert_eq!(s.state().queue.front().map(|p| p.rows_emitted), Some(0));
}

#[test]
fn pause_resume_stop_and_replayed_signals() {
    let mut s = Scheduler::new(SnapshotState::default(), 10);
    s.apply("s1", &execute(&["a", "b"]), ok).unwrap();
    assert_eq!(s.apply("s1", &execute(&["c"]), ok), Ok(Applied::Duplicate));
    s.apply("p", &Command::PauseSnapshot, ok).unwrap();
    assert!(s.next_request().is_none());
    s.apply("r", &Command::ResumeSnapshot, ok).unwrap();
    assert_eq!(s.next_request().unwrap().table, t("a"));
    assert_eq!(
        s.apply(
            "x",
            &Command::StopSnapshot {
                tables: vec![t("b")]
            },
            ok
        ),
        Ok(Applied::Stopped(vec![t("b")]))
    );
    assert_eq!(
        s.apply("y", &Command::StopSnapshot { tables: vec![] }, ok),
        Ok(Applied::Stopped(vec![t("a")]))
    );
    assert!(s.state().queue.is_empty());
}

#[test]
fn a_stop_cancels_chunks_in_flight_so_a_new_snapshot_starts_over() {
    let mut s = Scheduler::new(SnapshotState::default(), 2);
    s.apply("s1", &execute(&["a"]), ok).unwrap();
    let r1 = s.next_request().unwrap();
    s.on_selected(r1.token, selected(2, Some("2")));
    let r2 = s.next_request().unwrap();
    s.apply("stop", &Command::StopSnapshot { tables: vec![] }, ok)
        .unwrap();
    assert_eq!(s.take_cancelled(), vec![r1.token, r2.token]);
    assert!(!s.is_busy());
    s.apply("s2", &execute(&["a"]), ok).unwrap();
    // A late outcome of the stopped snapshot's chunk changes nothing.
    assert_eq!(s.on_done(r1.token, 2), None);
    let fresh = s.next_request().unwrap();
    assert_eq!(fresh.after_key, None);
    assert_eq!(s.state().queue.front().map(|p| p.rows_emitted), Some(0));
}

#[test]
fn one_bad_table_rejects_the_whole_signal() {
    let mut s = Scheduler::new(SnapshotState::default(), 10);
    let err = s
        .apply("s1", &execute(&["a", "bad"]), |t| {
            if t.name == "bad" {
                Err(format!("table {t} is not captured"))
            } else {
                Ok(())
            }
        })
        .unwrap_err();
    assert!(err.contains("public.bad"));
    assert!(s.state().queue.is_empty());
}

#[test]
fn parallel_tables_each_get_chunks_and_a_discard_drops_only_its_tables_followers() {
    let mut s = Scheduler::new(SnapshotState::default(), 2).with_parallel_tables(2);
    s.apply("s1", &execute(&["a", "b", "c"]), ok).unwrap();
    let a1 = s.next_request().unwrap();
    let b1 = s.next_request().unwrap();
    assert_eq!((a1.table.clone(), b1.table.clone()), (t("a"), t("b")));
    assert_eq!(
        s.next_request(),
        None,
        "c waits; a and b wait for their selects"
    );
    s.on_selected(a1.token, selected(2, Some("2")));
    let a2 = s.next_request().unwrap();
    assert_eq!(
        (a2.table.clone(), a2.after_key.clone()),
        (t("a"), Some(vec!["2".to_string()]))
    );
    s.on_selected(b1.token, selected(2, Some("20")));
    let b2 = s.next_request().unwrap();
    assert_eq!(b2.table, t("b"));
    // a's first chunk discarded: a's second goes with it, b's stay.
    assert_eq!(s.on_discarded(a1.token), vec![a2.token]);
    assert_eq!(s.in_flight_count_of(&t("b")), 2);
    assert_eq!(s.in_flight_count_of(&t("a")), 0);
    // b finishes: c starts beside a.
    s.on_selected(b2.token, selected(1, Some("21")));
    assert!(s.on_done(b1.token, 2).is_none());
    assert_eq!(s.on_done(b2.token, 1).map(|f| f.table), Some(t("b")));
    let next: Vec<TableRef> = std::iter::from_fn(|| s.next_request())
        .map(|r| r.table)
        .collect();
    assert_eq!(next, vec![t("a"), t("c")]);
}

#[test]
fn a_table_asked_again_before_it_starts_covers_both_requests() {
    let filtered = |id: &str, filter: Option<&str>| {
        let cmd = Command::ExecuteSnapshot {
            tables: vec![t("a")],
            kind: SnapshotKind::Incremental,
            conditions: filter
                .map(|f| AdditionalCondition {
                    table: t("a"),
                    filter: f.into(),
                })
                .into_iter()
                .collect(),
            surrogate_key: None,
        };
        (id.to_string(), cmd)
    };
    // A source that cannot combine filters: the table is read whole.
    let mut s = Scheduler::new(SnapshotState::default(), 10);
    s.state.paused = true;
    for (id, cmd) in [filtered("1", Some("x = 1")), filtered("2", Some("x = 2"))] {
        s.apply(&id, &cmd, ok).unwrap();
    }
    assert_eq!(s.state.queue[0].filter, None);
    let mut s = Scheduler::new(SnapshotState::default(), 10)
        .with_filter_union(|a, b| Some(format!("{a} | {b}")));
    s.state.paused = true;
    for (id, cmd) in [filtered("1", Some("x = 1")), filtered("2", Some("x = 2"))] {
        s.apply(&id, &cmd, ok).unwrap();
    }
    assert_eq!(s.state.queue[0].filter.as_deref(), Some("x = 1 | x = 2"));
    // The same filter twice is kept as it is.
    let (id, cmd) = filtered("2b", Some("x = 1 | x = 2"));
    s.apply(&id, &cmd, ok).unwrap();
    assert_eq!(s.state.queue[0].filter.as_deref(), Some("x = 1 | x = 2"));
    let (id, cmd) = filtered("3", None);
    s.apply(&id, &cmd, ok).unwrap();
    assert_eq!(
        s.state.queue[0].filter, None,
        "a whole-table request covers all"
    );
    let (id, cmd) = filtered("4", Some("x = 4"));
    s.apply(&id, &cmd, ok).unwrap();
    assert_eq!(s.state.queue[0].filter, None, "and stays whole");
}

#[test]
fn conditions_attach_to_their_table_and_definite_failures_drop_it() {
    let mut s = Scheduler::new(SnapshotState::default(), 10);
    let cmd = Command::ExecuteSnapshot {
        tables: vec![t("a"), t("b")],
        kind: SnapshotKind::Incremental,
        conditions: vec![AdditionalCondition {
            table: t("a"),
            filter: "x > 1".into(),
        }],
        surrogate_key: Some("k".into()),
    };
    s.apply("s1", &cmd, ok).unwrap();
    let r = s.next_request().unwrap();
    assert_eq!(r.filter.as_deref(), Some("x > 1"));
    assert_eq!(r.surrogate_key.as_deref(), Some("k"));
    // The order survives a restart with the progress.
    let json = serde_json::to_string(s.state()).unwrap();
    let again: SnapshotState = serde_json::from_str(&json).unwrap();
    assert_eq!(again.queue[0].surrogate_key.as_deref(), Some("k"));
    let dropped = s.on_failed(r.token, true).0.unwrap();
    assert_eq!(dropped.table, t("a"));
    assert_eq!(s.next_request().unwrap().table, t("b"));
}

#[test]
fn a_shape_change_restarts_a_started_snapshot_from_its_first_key() {
    let mut s = Scheduler::new(SnapshotState::default(), 2);
    s.apply("s1", &execute(&["a", "b"]), ok).unwrap();
    // Queued but not started: nothing to restart.
    assert_eq!(s.restart(&t("b")), None);
    let r1 = s.next_request().unwrap();
    s.on_selected(r1.token, selected(2, Some("2")));
    assert_eq!(s.on_done(r1.token, 2), None);
    let r2 = s.next_request().unwrap();
    assert_eq!(s.restart(&t("a")), Some(vec![r2.token]));
    assert!(!s.is_busy());
    let again = s.next_request().unwrap();
    assert_eq!(again.table, t("a"));
    assert_eq!(again.after_key, None);
    assert!(!again.max_key_read, "the maximum key is read again");
    assert_eq!(s.state().queue.front().map(|p| p.rows_emitted), Some(0));
    // A late outcome of the cancelled chunk changes nothing.
    assert_eq!(s.on_done(r2.token, 2), None);
}

#[test]
fn a_requeue_starts_queued_tables_over_and_queues_the_rest() {
    let mut s = Scheduler::new(SnapshotState::default(), 2);
    s.apply("s1", &execute(&["a"]), ok).unwrap();
    let r1 = s.next_request().unwrap();
    s.on_selected(r1.token, selected(2, Some("2")));
    assert_eq!(s.on_done(r1.token, 2), None);
    let r2 = s.next_request().unwrap();
    assert_eq!(s.requeue(&[t("a"), t("b")], "resync"), vec![r2.token]);
    let queue: Vec<(TableRef, String, Option<Vec<String>>)> = s
        .state()
        .queue
        .iter()
        .map(|p| (p.table.clone(), p.signal_id.clone(), p.last_key.clone()))
        .collect();
    assert_eq!(
        queue,
        vec![
            (t("a"), "resync".into(), None),
            (t("b"), "resync".into(), None)
        ]
    );
    assert_eq!(s.next_request().unwrap().after_key, None);
}

#[test]
fn state_round_trips_through_json() {
    let mut s = Scheduler::new(SnapshotState::default(), 10);
    s.apply("s1", &execute(&["a"]), ok).unwrap();
    let json = serde_json::to_string(s.state()).unwrap();
    let back: SnapshotState = serde_json::from_str(&json).unwrap();
    assert_eq!(&back, s.state());
}
