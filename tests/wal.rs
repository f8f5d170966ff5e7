//! An idle captured database must not pin WAL: the slot's confirmed
//! position follows the server's WAL while nothing captured changes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use cdc_testcontainers::Postgres;
use common::*;

/// Wait until the slot has confirmed everything up to `lsn`.
fn wait_confirmed(pg: &Postgres, lsn: &str, what: &str, engine: &mut Engine) {
    wait_until(what, Duration::from_secs(60), || {
        assert!(engine.is_running(), "{}", engine.log_text());
        pg.psql(&format!(
            "SELECT confirmed_flush_lsn >= '{lsn}'::pg_lsn FROM pg_replication_slots WHERE slot_name = 'cdc'"
        ))
        .unwrap()
            == "t"
    });
}

#[test]
fn an_idle_captured_database_does_not_pin_wal() {
    let (pg, _dir, _config, _events, mut engine) = capture(
        "CREATE TABLE captured (id int PRIMARY KEY); CREATE TABLE other (n int);",
        &["public.captured"],
        "",
    );
    // Traffic only in a table cdc does not capture.
    pg.psql("INSERT INTO other SELECT generate_series(1, 50000);")
        .unwrap();
    let after_unpublished = pg.psql("SELECT pg_current_wal_lsn()").unwrap();
    wait_confirmed(
        &pg,
        &after_unpublished,
        "the slot past unpublished traffic",
        &mut engine,
    );

    // Traffic only in another database of the same server.
    pg.psql("CREATE DATABASE elsewhere").unwrap();
    let url = pg.url();
    let (base, _) = url.rsplit_once('/').unwrap();
    with_client(&format!("{base}/elsewhere"), async |client| {
        client
            .batch_execute(
                "CREATE TABLE t (n int); INSERT INTO t SELECT generate_series(1, 50000);",
            )
            .await
            .unwrap();
    });
    let after_other_db = pg.psql("SELECT pg_current_wal_lsn()").unwrap();
    wait_confirmed(
        &pg,
        &after_other_db,
        "the slot past another database's traffic",
        &mut engine,
    );

    // No traffic at all: the slot stays where the server is.
    std::thread::sleep(Duration::from_secs(2));
    let idle = pg.psql("SELECT pg_current_wal_lsn()").unwrap();
    wait_confirmed(
        &pg,
        &idle,
        "the slot at the idle server's position",
        &mut engine,
    );
    engine.terminate();
}

#[test]
fn heartbeats_move_the_slot_and_never_reach_the_sink() {
    let (pg, _dir, _config, events_path, mut engine) = capture(
        "CREATE TABLE captured (id int PRIMARY KEY);",
        &["public.captured"],
        "heartbeat_interval_secs = 1",
    );
    let start = pg.psql("SELECT pg_current_wal_lsn()").unwrap();
    // Heartbeats are the only writes: the server's WAL moves, and the slot
    // with it.
    wait_until("heartbeats in the WAL", Duration::from_secs(30), || {
        pg.psql(&format!("SELECT pg_current_wal_lsn() > '{start}'::pg_lsn"))
            .unwrap()
            == "t"
    });
    let moved = pg.psql("SELECT pg_current_wal_lsn()").unwrap();
    wait_confirmed(&pg, &moved, "the slot past the heartbeats", &mut engine);
    pg.psql("INSERT INTO captured VALUES (1);").unwrap();
    let events = wait_for_events(&events_path, 1, &mut engine);
    assert!(
        events.iter().all(|e| e["op"] != "m"),
        "a heartbeat reached the sink: {events:?}"
    );
    engine.terminate();
}
