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

#[test]
fn a_dropped_publication_stops_the_engine_with_one_line() {
    let (pg, _dir, _config, _events_path, mut engine) =
        capture("CREATE TABLE a (id int PRIMARY KEY);", &["public.a"], "");
    pg.psql("DROP PUBLICATION cdc; INSERT INTO a VALUES (1);")
        .unwrap();
    let status = engine.wait_exit(Duration::from_secs(60));
    let log = engine.log_text();
    assert_ne!(status.code(), Some(0), "{log}");
    let line = log
        .lines()
        .find(|l| l.contains("publication 'cdc'") && l.contains("does not exist"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(line.contains("ERROR") || line.contains("error"), "{line}");
    assert!(!log.contains("reconnecting"), "{log}");
    eprintln!("{line}");
}
