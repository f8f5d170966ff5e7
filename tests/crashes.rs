//! PostgreSQL crashes (`pg_ctl stop -m immediate`, then start, as a power
//! loss would) while streaming, mid a large spilled transaction and in a
//! snapshot window, and a full disk under the file sink (while streaming,
//! in a snapshot window, mid the write of a large transaction). After each, cdc
//! has recovered by itself: every committed change is in the output in
//! per-key order, nothing rolled back is, and the fold equals the table.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod harness;

use std::collections::HashSet;
use std::time::Duration;

use cdc_testcontainers::Postgres;
use common::*;
use harness::disk::{self, SmallDisk};
use harness::*;

fn crash(pg: &Postgres) {
    pg.restart().unwrap();
}

/// [`one_line_each`], printed with how long recovery took and every
/// warning of the outage.
fn report_crash(log: &str, fault_at: f64, what: &str) {
    let (happened, recovered) = one_line_each(log, fault_at);
    let back = recovered
        .iter()
        .filter_map(|l| log_time(l))
        .fold(0.0, f64::max);
    eprintln!("{what}: streaming again after {:.1}s", back - fault_at);
    for line in happened.iter().chain(&recovered) {
        eprintln!("  {}", strip_ansi(line));
    }
    for line in lines_with(log, " WARN ") {
        eprintln!("  warning: {}", strip_ansi(line));
    }
}

#[test]
fn a_postgres_crash_while_streaming_loses_nothing() {
    let pg = Postgres::start().unwrap();
    let (log, fault_at) = while_streaming(&pg, || crash(&pg));
    report_crash(&log, fault_at, "PostgreSQL crash while streaming");
}

/// A slot saves its confirmed position only at checkpoints, so a crashed
/// server has forgotten what cdc acknowledged since. cdc resumes from what
/// its sink holds, not from the slot: nothing it acknowledged is sent
/// again, and no consumer sees a key's old states after its newer ones.
#[test]
fn a_postgres_crash_resends_nothing_the_sink_acknowledged() {
    let pg = Postgres::builder()
        .setting("checkpoint_timeout", "1h")
        .start()
        .unwrap();
    pg.psql(DDL).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &pg.url(), &["public.t"], "");
    let events_path = dir.path().join("events.jsonl");
    let mut engine = Engine::start(&config);
    wait_streaming(&mut engine);
    let mut v = 0;
    // Until the case happens: the server saves a slot between checkpoints
    // too, when a running-transactions record (every 15 s) moves its
    // restart_lsn, and then it forgets nothing.
    let mut forgot = 0;
    // (events in the file, last value acknowledged) at each crash.
    let mut crashes = Vec::new();
    for _ in 0..6 {
        for _ in 0..50 {
            v += 1;
            pg.psql(&format!(
                "INSERT INTO t VALUES (1, {v}) ON CONFLICT (id) DO UPDATE SET v = {v}"
            ))
            .unwrap();
        }
        let last = pg.psql("SELECT pg_current_wal_lsn()").unwrap();
        let acknowledged = format!(
            "SELECT confirmed_flush_lsn >= '{last}' FROM pg_replication_slots WHERE slot_name = 'cdc'"
        );
        wait_until("the acknowledgement", Duration::from_secs(60), || {
            pg.psql(&acknowledged).unwrap() == "t"
        });
        // Every value up to v is in the file, acknowledged.
        crashes.push((read_events(&events_path).len(), v));
        crash(&pg);
        if pg.psql(&acknowledged).unwrap() == "f" {
            forgot += 1;
            if forgot == 2 {
                break;
            }
        }
    }
    assert!(forgot > 0, "the server never forgot an acknowledgement");
    v += 1;
    pg.psql(&format!("UPDATE t SET v = {v} WHERE id = 1"))
        .unwrap();
    wait_until(
        "the change after the crashes",
        Duration::from_secs(60),
        || {
            assert!(engine.is_running(), "{}", engine.log_text());
            read_events(&events_path)
                .last()
                .is_some_and(|e| e["after"]["v"] == v)
        },
    );
    let values: Vec<i64> = read_events(&events_path)
        .iter()
        .map(|e| e["after"]["v"].as_i64().unwrap())
        .collect();
    // A change in flight at a lost lease may come twice (at-least-once);
    // one acknowledged before a crash never comes again after it.
    for (at, acknowledged) in &crashes {
        let again: Vec<i64> = values[*at..]
            .iter()
            .copied()
            .filter(|x| x <= acknowledged)
            .collect();
        assert!(
            again.is_empty(),
            "after a crash ({forgot} of {} forgot an acknowledgement) changes acknowledged before it came again: {again:?}",
            crashes.len()
        );
    }
    // Every change, in order: each new value is the next one.
    let mut newest = 0;
    for x in &values {
        if *x > newest {
            assert_eq!(*x, newest + 1, "a change is missing: {values:?}");
            newest = *x;
        }
    }
    assert_eq!(newest, v);
    eprintln!(
        "{forgot} of {} crashes forgot an acknowledgement; nothing acknowledged was sent again ({} duplicates of changes in flight)",
        crashes.len(),
        values.len() as i64 - v
    );
    engine.terminate();
}

#[test]
fn a_postgres_crash_during_a_snapshot_window_loses_nothing() {
    let pg = Postgres::start().unwrap();
    let (log, fault_at, _) =
        in_snapshot_window(&pg, &pg.url(), || crash(&pg), Duration::from_secs(1), || {});
    let complete = lines_with(&log, "snapshot complete");
    assert_eq!(complete.len(), 1, "{log}");
    report_crash(&log, fault_at, "PostgreSQL crash in a snapshot window");
    eprintln!(
        "PostgreSQL crash in a snapshot window: snapshot complete {:.1}s after the crash",
        log_time(complete[0]).unwrap() - fault_at
    );
}

/// One transaction of `rows` rows with a savepoint rolled back in the
/// middle (ids past `rows`, never to appear), larger than the server's
/// `logical_decoding_work_mem` so it spills.
fn big_transaction(first: usize, rows: usize, then: &str) -> String {
    let half = first + rows / 2;
    let last = first + rows - 1;
    format!(
        "BEGIN;
         INSERT INTO big SELECT g, repeat('x', 100) FROM generate_series({first}, {half}) g;
         SAVEPOINT a;
         INSERT INTO big SELECT g, 'rolled back' FROM generate_series(1000000 + {first}, 1000000 + {first} + 4999) g;
         ROLLBACK TO SAVEPOINT a;
         INSERT INTO big SELECT g, repeat('y', 100) FROM generate_series({half} + 1, {last}) g;
         {then}"
    )
}

/// `streaming = "auto"` (pgoutput v2, the default): the open transaction
/// is streamed to cdc before its commit when the crash comes.
#[test]
fn a_postgres_crash_mid_large_transaction_loses_nothing() {
    crash_mid_large_transaction(false);
}

/// `streaming = "off"`: the server spills both transactions to disk
/// (`spill_bytes` > 0 at the crash) and the committed one is still being
/// sent, part of it out, when the server dies.
#[test]
fn a_postgres_crash_mid_large_spilled_transaction_loses_nothing() {
    crash_mid_large_transaction(true);
}

/// The slot's spill and stream counters (`pg_stat_replication_slots`).
fn spill_and_stream_bytes(pg: &Postgres) -> (i64, i64) {
    let row = pg
        .psql("SELECT spill_bytes || ' ' || stream_bytes FROM pg_stat_replication_slots WHERE slot_name = 'cdc'")
        .unwrap();
    let (spill, stream) = row.split_once(' ').unwrap();
    (spill.parse().unwrap(), stream.parse().unwrap())
}

fn crash_mid_large_transaction(streaming_off: bool) {
    let pg = Postgres::builder()
        .setting("logical_decoding_work_mem", "64kB")
        .start()
        .unwrap();
    pg.psql(&format!(
        "{DDL} CREATE TABLE big (id int PRIMARY KEY, pad text);"
    ))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let extra = if streaming_off {
        "streaming = \"off\""
    } else {
        ""
    };
    let config = write_config(dir.path(), &pg.url(), &["public.t", "public.big"], extra);
    let events_path = dir.path().join("events.jsonl");
    const ROWS: usize = 60_000;
    let plan = Plan {
        prelude: |_: &Engine| {
            // Committed: the crash comes while cdc receives it.
            pg.psql(&big_transaction(1, ROWS, "COMMIT;")).unwrap();
            wait_until(
                "the first rows of the transaction",
                Duration::from_secs(60),
                || !table_events(&read_events(&events_path), "big").is_empty(),
            );
        },
        fault: || {
            // And one still open, spilled, that the crash aborts.
            let url = pg.url();
            let open = std::thread::spawn(move || {
                with_client(&url, async |client| {
                    let _ = client
                        .batch_execute(&big_transaction(
                            ROWS + 1,
                            ROWS,
                            "SELECT pg_sleep(60); COMMIT;",
                        ))
                        .await;
                })
            });
            wait_until(
                "the open transaction to sleep",
                Duration::from_secs(60),
                || {
                    pg.psql("SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(60)%' AND wait_event = 'PgSleep'")
                    .unwrap()
                    == "1"
                },
            );
            if !streaming_off {
                // Its changes reach cdc before the commit that never comes.
                wait_until(
                    "the open transaction to be streamed",
                    Duration::from_secs(60),
                    || spill_and_stream_bytes(&pg).1 > 0,
                );
            }
            let (spilled, streamed) = spill_and_stream_bytes(&pg);
            let seen = table_events(&read_events(&events_path), "big").len();
            crash(&pg);
            open.join().unwrap();
            eprintln!(
                "crashed with {seen} of {ROWS} committed rows out and {ROWS} rows open; spill_bytes {spilled}, stream_bytes {streamed}"
            );
            if streaming_off {
                assert!(spilled > 0, "nothing spilled before the crash");
                assert!(
                    seen < ROWS,
                    "the committed transaction was out whole before the crash"
                );
            }
        },
        hold: Duration::from_secs(1),
        heal: || {},
        snapshot: false,
    };
    let (log, fault_at, _) = under_writer(&pg, &config, &events_path, plan);
    let events = read_events(&events_path);
    let ids: HashSet<i64> = table_events(&events, "big")
        .iter()
        .map(|e| e["after"]["id"].as_i64().unwrap())
        .collect();
    assert_eq!(
        ids.len(),
        ROWS,
        "every committed row arrives, nothing of the aborted one"
    );
    assert!(
        ids.iter().all(|&id| id <= ROWS as i64),
        "a rolled-back or aborted row arrived"
    );
    assert_same(
        &fold(&events, "big", &["id"]),
        &contents(&pg, "big", &["id"]),
    );
    report_crash(&log, fault_at, "PostgreSQL crash mid large transaction");
}

#[test]
fn a_full_disk_under_the_file_sink_is_waited_out() {
    let Some(disk) = SmallDisk::mount(16) else {
        return;
    };
    let pg = Postgres::start().unwrap();
    pg.psql(DDL).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &pg.url(), &["public.t"], "");
    let events_path = disk.path().join("events.jsonl");
    disk::write_events_to(&config, &events_path);
    let filler = std::cell::RefCell::new(None);
    let mut acks = AckSamples::default();
    let plan = Plan {
        prelude: |_: &Engine| {},
        fault: || {
            *filler.borrow_mut() = Some(disk.fill());
            acks.over(&pg, &events_path, Duration::from_secs(8));
        },
        hold: Duration::ZERO,
        heal: || {
            if let Some(f) = filler.borrow_mut().take() {
                std::fs::remove_file(f).unwrap();
            }
        },
        snapshot: false,
    };
    let (log, _, healed_at) = under_writer(&pg, &config, &events_path, plan);
    disk::assert_whole_lines(&events_path);
    let checked = acks.assert_held(&events_path);
    let warning = one_sink_warning(&log);
    eprintln!(
        "full disk: {warning}\n  the slot stayed behind the file at {checked} samples; sink recovered {:.1}s after space was freed",
        sink_recovery(&log, healed_at)
    );
}

/// The README's promise for a full disk: one warning on the outage (its
/// retries are not logged again while the reason stays the same) and one
/// line on the recovery; returns the warning.
fn one_sink_warning(log: &str) -> String {
    let warnings = lines_with(log, "sink failed, retrying without acknowledging");
    assert_eq!(warnings.len(), 1, "one warning on the full disk:\n{log}");
    assert!(
        warnings[0].contains("No space left on device"),
        "{}",
        warnings[0]
    );
    assert_eq!(
        lines_with(log, "sink recovered").len(),
        1,
        "one line on the recovery:\n{log}"
    );
    strip_ansi(warnings[0])
}

/// Seconds from `healed_at` to the sink's line on recovering.
fn sink_recovery(log: &str, healed_at: f64) -> f64 {
    log.lines()
        .filter(|l| l.contains("sink recovered"))
        .find_map(|l| log_time(l).filter(|&t| t > healed_at))
        .unwrap_or_else(|| panic!("no line on the sink's recovery:\n{log}"))
        - healed_at
}

#[test]
fn a_full_disk_during_a_snapshot_window_is_waited_out() {
    let Some(disk) = SmallDisk::mount(48) else {
        return;
    };
    let pg = Postgres::start().unwrap();
    let events_path = disk.path().join("events.jsonl");
    let filler = std::cell::RefCell::new(None);
    let mut acks = AckSamples::default();
    let (log, _, healed_at) = in_snapshot_window_at(
        &pg,
        &pg.url(),
        &events_path,
        || {
            *filler.borrow_mut() = Some(disk.fill());
            acks.over(&pg, &events_path, Duration::from_secs(8));
        },
        Duration::ZERO,
        || std::fs::remove_file(filler.borrow_mut().take().unwrap()).unwrap(),
    );
    disk::assert_whole_lines(&events_path);
    let checked = acks.assert_held(&events_path);
    let warning = one_sink_warning(&log);
    eprintln!(
        "full disk in a snapshot window: {warning}\n  the slot stayed behind the file at {checked} samples; sink recovered {:.1}s after space was freed",
        sink_recovery(&log, healed_at)
    );
}

/// The disk fills while a 40 000-row transaction (megabytes of JSON,
/// with a rolled-back savepoint) is written out: a write of its batch
/// stops part-way. Once space is freed the batch goes out whole, no torn
/// line is left in the file, and nothing rolled back appears.
#[test]
fn a_full_disk_during_a_flush_of_a_large_transaction_is_waited_out() {
    let Some(disk) = SmallDisk::mount(64) else {
        return;
    };
    let pg = Postgres::start().unwrap();
    pg.psql(&format!(
        "{DDL} CREATE TABLE big (id int PRIMARY KEY, pad text);"
    ))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &pg.url(), &["public.t", "public.big"], "");
    let events_path = disk.path().join("events.jsonl");
    disk::write_events_to(&config, &events_path);
    const ROWS: usize = 40_000;
    let filler = std::cell::RefCell::new(None);
    let acks = std::cell::RefCell::new(AckSamples::default());
    let engine_log = std::cell::RefCell::new(None);
    let plan = Plan {
        prelude: |engine: &Engine| *engine_log.borrow_mut() = Some(engine.log.clone()),
        fault: || {
            // Room for the writer's changes, not for the transaction.
            *filler.borrow_mut() = Some(disk.fill_leaving(2 << 20));
            pg.psql(&big_transaction(1, ROWS, "COMMIT;")).unwrap();
            let log = engine_log.borrow().clone().unwrap();
            wait_until(
                "a write to hit the full disk",
                Duration::from_secs(60),
                || {
                    std::fs::read_to_string(&log)
                        .is_ok_and(|l| l.contains("No space left on device"))
                },
            );
            let out = table_events(&read_events(&events_path), "big").len();
            eprintln!("the disk filled with {out} of the transaction's {ROWS} rows out");
            assert!(out < ROWS, "the transaction was out before the disk filled");
            acks.borrow_mut()
                .over(&pg, &events_path, Duration::from_secs(5));
        },
        hold: Duration::ZERO,
        heal: || std::fs::remove_file(filler.borrow_mut().take().unwrap()).unwrap(),
        snapshot: false,
    };
    let (log, _, healed_at) = under_writer(&pg, &config, &events_path, plan);
    disk::assert_whole_lines(&events_path);
    let events = read_events(&events_path);
    let ids: HashSet<i64> = table_events(&events, "big")
        .iter()
        .map(|e| e["after"]["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), ROWS, "every row of the transaction arrives");
    assert!(
        ids.iter().all(|&id| id <= ROWS as i64),
        "a rolled-back row arrived"
    );
    assert_same(
        &fold(&events, "big", &["id"]),
        &contents(&pg, "big", &["id"]),
    );
    let checked = acks.borrow().assert_held(&events_path);
    let warning = one_sink_warning(&log);
    eprintln!(
        "full disk during a flush: {warning}\n  the slot stayed behind the file at {checked} samples; sink recovered {:.1}s after space was freed",
        sink_recovery(&log, healed_at)
    );
}
