//! PostgreSQL crashes (`pg_ctl stop -m immediate`, then start, as a power
//! loss would) while streaming, mid a large spilled transaction and in a
//! snapshot window, and a full disk under the file sink. After each, cdc
//! has recovered by itself: every committed change is in the output in
//! per-key order, nothing rolled back is, and the fold equals the table.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod harness;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use cdc_testcontainers::Postgres;
use common::*;
use harness::*;

fn crash(pg: &Postgres) {
    pg.restart().unwrap();
}

#[test]
fn a_postgres_crash_while_streaming_loses_nothing() {
    let pg = Postgres::start().unwrap();
    let (log, fault_at) = while_streaming(&pg, || crash(&pg));
    let back = log
        .lines()
        .filter(|l| log_time(l).is_some_and(|t| t > fault_at))
        .find(|l| l.contains("streaming slot=") || l.contains("replication connection restored"))
        .unwrap_or_else(|| panic!("no line on streaming again:\n{log}"));
    eprintln!(
        "PostgreSQL crash while streaming: streaming again after {:.1}s",
        log_time(back).unwrap() - fault_at
    );
}

#[test]
fn a_postgres_crash_during_a_snapshot_window_loses_nothing() {
    let pg = Postgres::start().unwrap();
    let (log, fault_at, _) =
        in_snapshot_window(&pg, &pg.url(), || crash(&pg), Duration::from_secs(1), || {});
    let complete = lines_with(&log, "snapshot complete");
    assert_eq!(complete.len(), 1, "{log}");
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

#[test]
fn a_postgres_crash_mid_large_transaction_loses_nothing() {
    let pg = Postgres::builder()
        .setting("logical_decoding_work_mem", "64kB")
        .start()
        .unwrap();
    pg.psql(&format!(
        "{DDL} CREATE TABLE big (id int PRIMARY KEY, pad text);"
    ))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &pg.url(), &["public.t", "public.big"], "");
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
            let seen = table_events(&read_events(&events_path), "big").len();
            crash(&pg);
            open.join().unwrap();
            eprintln!("crashed with {seen} of {ROWS} committed rows out and {ROWS} rows open");
        },
        hold: Duration::from_secs(1),
        heal: || {},
        snapshot: false,
    };
    under_writer(&pg, &config, &events_path, plan);
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
}

/// A small tmpfs of the test's own, unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(megabytes: u32) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("skipped: cannot mount a tmpfs (needs root)");
            return None;
        }
        Some(SmallDisk { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills what is left with a file of its own.
    fn fill(&self) -> PathBuf {
        let filler = self.path().join("filler");
        // dd stops with "No space left on device": that is the point.
        let _ = Command::new("dd")
            .args(["if=/dev/zero", "bs=64k"])
            .arg(format!("of={}", filler.display()))
            .output();
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
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
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &format!(
            "{:?}",
            dir.path().join("events.jsonl").display().to_string()
        ),
        &format!("{:?}", events_path.display().to_string()),
    );
    std::fs::write(&config, text).unwrap();
    let filler = std::cell::RefCell::new(None);
    let plan = Plan {
        prelude: |_: &Engine| {},
        fault: || *filler.borrow_mut() = Some(disk.fill()),
        hold: Duration::from_secs(8),
        heal: || {
            if let Some(f) = filler.borrow_mut().take() {
                std::fs::remove_file(f).unwrap();
            }
        },
        snapshot: false,
    };
    let (log, _, healed_at) = under_writer(&pg, &config, &events_path, plan);
    let failing = lines_with(&log, "No space left on device");
    assert!(
        !failing.is_empty(),
        "the sink never hit the full disk:\n{log}"
    );
    let recovered = log
        .lines()
        .filter(|l| log_time(l).is_some_and(|t| t > healed_at))
        .find(|l| l.contains("recovered") || l.contains("acknowledged="));
    eprintln!(
        "full disk: {} lines naming it; first: {}\n  after space was freed: {:?}",
        failing.len(),
        strip_ansi(failing[0]),
        recovered.map(strip_ansi)
    );
}
