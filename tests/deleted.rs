//! State deleted while cdc runs: a captured table, the signal table, the
//! publication. One line each; the rest goes on where it can.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;

#[test]
fn a_dropped_table_or_signal_table_gets_one_line_and_the_rest_streams() {
    let (pg, _dir, _config, events_path, mut engine) = capture(
        "CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (id int PRIMARY KEY);",
        &["public.a", "public.b"],
        "",
    );
    pg.psql("DROP TABLE b;").unwrap();
    wait_until("the dropped table's line", Duration::from_secs(30), || {
        engine
            .log_text()
            .contains("captured table \"public\".\"b\" was dropped while cdc runs")
    });
    pg.psql("INSERT INTO a VALUES (1);").unwrap();
    wait_for_events(&events_path, 1, &mut engine);
    pg.psql("DROP TABLE cdc.signal;").unwrap();
    wait_until("the signal table's line", Duration::from_secs(30), || {
        engine
            .log_text()
            .contains("signal table \"cdc\".\"signal\" was dropped while cdc runs")
    });
    pg.psql("INSERT INTO a VALUES (2);").unwrap();
    let events = wait_for_events(&events_path, 2, &mut engine);
    assert_eq!(events[1]["after"]["id"], 2);
    let log = engine.log_text();
    assert_eq!(
        log.matches("was dropped while cdc runs").count(),
        2,
        "{log}"
    );
    assert_eq!(engine.terminate().code(), Some(0));
}

/// A dropped publication: the slot cannot decode the changes made while it
/// was missing (pgoutput looks the publication up as of each change), so
/// they are lost to the log. With `fail` the run stops with one line, and
/// so does the next one (no retry loop, and no false promise that running
/// again heals it).
#[test]
fn a_dropped_publication_stops_the_engine_with_one_line() {
    let (pg, _dir, config, _events_path, mut engine) =
        capture("CREATE TABLE a (id int PRIMARY KEY);", &["public.a"], "");
    pg.psql("DROP PUBLICATION cdc; INSERT INTO a VALUES (1);")
        .unwrap();
    let line = assert_stops_on_the_publication(&mut engine);
    assert!(line.contains("on_slot_lost"), "{line}");
    eprintln!("{line}");
    pg.psql("INSERT INTO a VALUES (2);").unwrap();
    let mut again = Engine::start(&config);
    let second = assert_stops_on_the_publication(&mut again);
    eprintln!("again: {second}");
}

fn assert_stops_on_the_publication(engine: &mut Engine) -> String {
    let status = engine.wait_exit(Duration::from_secs(60));
    let log = engine.log_text();
    assert_ne!(status.code(), Some(0), "{log}");
    let line = log
        .lines()
        .find(|l| l.contains("publication 'cdc'") && l.contains("dropped"))
        .unwrap_or_else(|| panic!("{log}"))
        .to_string();
    assert!(line.contains("ERROR") || line.contains("error"), "{line}");
    assert!(!log.contains("reconnecting"), "{log}");
    line
}

/// With `resnapshot`, the same run recreates the publication and the slot
/// and snapshots the table between resync markers: the output folds to
/// the table, the row written while the publication was missing included.
#[test]
fn a_dropped_publication_is_healed_by_resnapshot() {
    let (pg, _dir, _config, events_path, mut engine) = capture(
        "CREATE TABLE a (id int PRIMARY KEY, v text); INSERT INTO a VALUES (0, 'before');",
        &["public.a"],
        "on_slot_lost = \"resnapshot\"\n\n[snapshot]\ninitial = true\n",
    );
    pg.psql("INSERT INTO a VALUES (1, 'streamed');").unwrap();
    wait_for_events(&events_path, 2, &mut engine);
    pg.psql("DROP PUBLICATION cdc; INSERT INTO a VALUES (2, 'while missing');")
        .unwrap();
    wait_until(
        "the lost publication's line",
        Duration::from_secs(60),
        || {
            assert!(engine.is_running(), "cdc exited:\n{}", engine.log_text());
            engine.log_text().contains("were not captured")
        },
    );
    pg.psql("INSERT INTO a VALUES (3, 'after');").unwrap();
    let expected = contents(&pg, "a", &["id"]);
    wait_until(
        "the output to fold to the table",
        Duration::from_secs(90),
        || {
            assert!(engine.is_running(), "cdc exited:\n{}", engine.log_text());
            fold(&read_events(&events_path), "a", &["id"]) == expected
        },
    );
    let log = engine.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("publication 'cdc'") && l.contains("dropped"))
        .unwrap_or_else(|| panic!("{log}"));
    eprintln!("{line}");
    assert_eq!(engine.terminate().code(), Some(0));
}
