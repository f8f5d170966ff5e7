//! `[snapshot] max_parallel_tables`: several tables snapshotted at once,
//! each with its own window in flight and connection, through `cdc run`
//! against a real PostgreSQL (docs/architecture.md, "Parallel snapshots").
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;

#[test]
fn two_tables_are_snapshotted_at_once_under_a_writer_and_each_folds_to_its_table() {
    let (pg, _dir, _config, events_path, mut engine) = capture(
        "CREATE TABLE a (id int PRIMARY KEY, v int NOT NULL);
         CREATE TABLE b (id int PRIMARY KEY, v int NOT NULL);
         CREATE TABLE c (id int PRIMARY KEY, v int NOT NULL);
         INSERT INTO a SELECT g, 0 FROM generate_series(1, 3000) g;
         INSERT INTO b SELECT g, 0 FROM generate_series(1, 3000) g;
         INSERT INTO c SELECT g, 0 FROM generate_series(1, 500) g;",
        &["public.a", "public.b", "public.c"],
        "\n[snapshot]\nchunk_size = 50\nmax_parallel_tables = 2\n",
    );
    let writer = LiveWriter::start(&pg.url(), Duration::from_millis(2), |n| {
        let table = ["a", "b", "c"][(n % 3) as usize];
        let id = (n * 7919) % 3000 + 1;
        format!(
            "UPDATE {table} SET v = v + 1 WHERE id = {id}; \
             DELETE FROM {table} WHERE id = {} AND v > 3",
            (n * 104_729) % 3000 + 1
        )
    });
    signal(
        &pg,
        "all",
        "execute-snapshot",
        r#"{"data-collections": ["public.a", "public.b", "public.c"]}"#,
    );
    wait_until("three snapshots complete", Duration::from_secs(180), || {
        assert!(engine.is_running(), "{}", engine.log_text());
        engine.log_text().matches("snapshot complete").count() == 3
    });
    writer.stop();
    for table in ["a", "b", "c"] {
        wait_for_fold(&pg, &events_path, table, &["id"], &mut engine);
    }
    let events = read_events(&events_path);
    assert_no_time_travel(&events);
    // At once, not one after the other: reads of b come before a's last.
    let reads: Vec<&str> = events
        .iter()
        .filter(|e| e["op"] == "r")
        .map(|e| e["source"]["table"].as_str().unwrap())
        .collect();
    let last_a = reads.iter().rposition(|t| *t == "a").unwrap();
    let first_b = reads.iter().position(|t| *t == "b").unwrap();
    assert!(
        first_b < last_a,
        "b's snapshot started only after a's ended"
    );
    // The third table waited for a lane.
    let first_c = reads.iter().position(|t| *t == "c").unwrap();
    let last_b = reads.iter().rposition(|t| *t == "b").unwrap();
    assert!(
        first_c > last_a.min(last_b),
        "c started before a lane was free"
    );
    engine.terminate();
}

/// `cdc status` names as running (here: paused) every table a lane holds,
/// and the rest as queued.
#[test]
fn status_shows_each_table_a_lane_holds() {
    let (pg, _dir, config, _events_path, mut engine) = capture(
        "CREATE TABLE a (id int PRIMARY KEY); INSERT INTO a SELECT generate_series(1, 100);
         CREATE TABLE b (id int PRIMARY KEY); INSERT INTO b SELECT generate_series(1, 100);
         CREATE TABLE c (id int PRIMARY KEY); INSERT INTO c SELECT generate_series(1, 100);",
        &["public.a", "public.b", "public.c"],
        "\n[snapshot]\nmax_parallel_tables = 2\n",
    );
    // Paused first: the tables queue, and no chunk is asked for.
    pg.psql(
        r#"INSERT INTO cdc.signal VALUES ('hold', 'pause-snapshot', NULL);
           INSERT INTO cdc.signal VALUES ('all', 'execute-snapshot', '{"data-collections": ["public.a", "public.b", "public.c"]}');"#,
    )
    .unwrap();
    let status = || {
        let out = std::process::Command::new(cdc_bin())
            .args(["status", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let mut last = String::new();
    let shown = (0..300).any(|_| {
        assert!(engine.is_running(), "{}", engine.log_text());
        last = status();
        let line = |t: &str| {
            last.lines()
                .find(|l| l.contains(&format!("public.{t}")))
                .unwrap_or_default()
                .to_string()
        };
        let shown = line("a").contains("paused")
            && line("b").contains("paused")
            && line("c").contains("queued");
        if !shown {
            std::thread::sleep(Duration::from_millis(100));
        }
        shown
    });
    assert!(shown, "status never showed a and b held, c queued:\n{last}");
    engine.terminate();
}
