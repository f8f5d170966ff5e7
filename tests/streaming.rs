//! `cdc run` against a real PostgreSQL: what lands in the file sink.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

fn ops(events: &[&Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["op"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn row_changes_arrive_in_commit_order_with_their_values() {
    let (pg, _dir, _config, events_path, mut engine) = capture(
        "CREATE TABLE orders (id int PRIMARY KEY, status text, amount numeric(10,2));
         CREATE TABLE lines (order_id int, line int, sku text, PRIMARY KEY (order_id, line));
         CREATE TABLE ignored (id int PRIMARY KEY);",
        &["public.orders", "public.lines"],
        "",
    );

    pg.psql(
        "INSERT INTO orders VALUES (1, 'new', 10.50);
         BEGIN;
           INSERT INTO orders VALUES (2, 'new', 3);
           INSERT INTO lines VALUES (2, 1, 'a'), (2, 2, 'b');
           UPDATE orders SET status = 'paid' WHERE id = 1;
         COMMIT;
         BEGIN; INSERT INTO orders VALUES (99, 'rolled back', 0); ROLLBACK;
         INSERT INTO ignored VALUES (1);
         DELETE FROM lines WHERE order_id = 2 AND line = 1;
         UPDATE orders SET id = 3 WHERE id = 2;
         TRUNCATE lines;",
    )
    .unwrap();

    let events = wait_for_events(&events_path, 9, &mut engine);
    let all: Vec<&Value> = events.iter().collect();
    assert_eq!(
        ops(&all),
        ["c", "c", "c", "c", "u", "d", "d", "c", "t"],
        "{events:#?}"
    );
    assert_eq!(
        all[0]["after"],
        json!({"id": 1, "status": "new", "amount": "10.50"})
    );
    assert_eq!(all[0]["source"]["table"], "orders");
    assert_eq!(all[0]["source"]["schema"], "public");
    assert_eq!(all[0]["source"]["connector"], "postgresql");
    assert_eq!(all[0]["source"]["db"], "postgres");
    // One transaction: same txId on its four events, and a later commit LSN.
    let tx = &all[1]["source"]["txId"];
    assert!(all[1..5].iter().all(|e| &e["source"]["txId"] == tx));
    assert_ne!(tx, &all[0]["source"]["txId"]);
    assert_eq!(
        all[2]["after"],
        json!({"order_id": 2, "line": 1, "sku": "a"})
    );
    assert_eq!(all[4]["after"]["status"], "paid");
    // Delete with the default replica identity: the key, other columns null.
    assert_eq!(all[5]["source"]["table"], "lines");
    assert_eq!(
        all[5]["before"],
        json!({"order_id": 2, "line": 1, "sku": null})
    );
    assert_eq!(all[5]["after"], Value::Null);
    // A primary-key change: delete of the old key, create of the new one.
    assert_eq!(all[6]["before"]["id"], 2);
    assert_eq!(all[7]["after"]["id"], 3);
    assert_eq!(all[8]["source"]["table"], "lines");
    // Nothing of the rolled-back transaction or the uncaptured table.
    assert!(!events.iter().any(|e| e["after"]["id"] == 99));
    assert!(!events.iter().any(|e| e["source"]["table"] == "ignored"));
    // Positions grow with commit order.
    let lsns: Vec<u64> = all
        .iter()
        .map(|e| e["source"]["lsn"].as_u64().unwrap())
        .collect();
    assert!(lsns.windows(2).all(|w| w[0] <= w[1]), "{lsns:?}");
    assert_eq!(engine.terminate().code(), Some(0));
}

#[test]
fn every_supported_type_becomes_typed_json() {
    let (pg, _dir, _config, events_path, mut engine) = capture(
        "CREATE TYPE mood AS ENUM ('sad', 'happy');
         CREATE TABLE t (
           id bigint PRIMARY KEY, s smallint, i int, b bool, r real, d double precision,
           n numeric, txt text, vc varchar(10), ch char(3), j json, jb jsonb, u uuid,
           dt date, ts timestamp, tstz timestamptz, tm time, iv interval, by bytea,
           ia int[], ta text[], m mood, nan double precision
         );",
        &["public.t"],
        "",
    );
    pg.psql(
        r#"INSERT INTO t VALUES (
             9007199254740993, -2, 42, true, 1.5, 2.25, 12345678901234567890.123, 'héllo', 'v', 'ab',
             '{"a": [1, 2]}', '{"b": {"c": null}}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
             '2024-02-29', '2024-02-29 13:14:15.123456', '2024-02-29 13:14:15+02', '01:02:03',
             '1 day 2 hours', '\x00ff10', '{1,NULL,3}', '{"a b","c,d",NULL}', 'happy', 'NaN');
           INSERT INTO t (id) VALUES (2);"#,
    )
    .unwrap();
    let events = wait_for_events(&events_path, 2, &mut engine);
    let a = &events[0]["after"];
    assert_eq!(a["id"], json!(9007199254740993i64));
    assert_eq!(a["s"], -2);
    assert_eq!(a["i"], 42);
    assert_eq!(a["b"], true);
    assert_eq!(a["r"], 1.5);
    assert_eq!(a["d"], 2.25);
    assert_eq!(a["n"], "12345678901234567890.123");
    assert_eq!(a["txt"], "héllo");
    assert_eq!(a["vc"], "v");
    assert_eq!(a["ch"], "ab ");
    assert_eq!(a["j"], json!({"a": [1, 2]}));
    assert_eq!(a["jb"], json!({"b": {"c": null}}));
    assert_eq!(a["u"], "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
    assert_eq!(a["dt"], "2024-02-29");
    assert_eq!(a["ts"], "2024-02-29T13:14:15.123456");
    assert_eq!(a["tstz"], "2024-02-29T11:14:15Z");
    assert_eq!(a["tm"], "01:02:03");
    assert_eq!(a["iv"], "P1DT2H");
    assert_eq!(a["by"], "AP8Q");
    assert_eq!(a["ia"], json!([1, null, 3]));
    assert_eq!(a["ta"], json!(["a b", "c,d", null]));
    assert_eq!(a["m"], "happy");
    assert_eq!(a["nan"], "NaN");
    // NULLs are nulls.
    let b = &events[1]["after"];
    assert_eq!(b["id"], 2);
    assert!(["s", "b", "n", "j", "ia", "by", "tstz"]
        .iter()
        .all(|c| b[c] == Value::Null));
    engine.terminate();
}

#[test]
fn unchanged_toast_values_are_marked_never_null() {
    let (pg, _dir, _config, events_path, mut engine) = capture(
        "CREATE TABLE docs (id int PRIMARY KEY, body text, n int);",
        &["public.docs"],
        "",
    );
    // Random text does not compress, so 100 kB is stored out of line.
    pg.psql(
        "INSERT INTO docs SELECT 1, string_agg(md5(g::text), ''), 0 FROM generate_series(1, 3200) g;
         UPDATE docs SET n = 1 WHERE id = 1;",
    )
    .unwrap();
    let events = wait_for_events(&events_path, 2, &mut engine);
    assert_eq!(
        events[0]["after"]["body"].as_str().unwrap().len(),
        3200 * 32
    );
    assert_eq!(events[1]["op"], "u");
    assert_eq!(events[1]["after"]["n"], 1);
    assert_eq!(events[1]["after"]["body"], "__debezium_unavailable_value");
    engine.terminate();
}

#[test]
fn sigterm_acknowledges_everything_so_a_restart_repeats_nothing() {
    let (pg, _dir, config, events_path, mut engine) =
        capture("CREATE TABLE t (id int PRIMARY KEY);", &["public.t"], "");
    pg.psql("INSERT INTO t SELECT generate_series(1, 500);")
        .unwrap();
    wait_for_events(&events_path, 500, &mut engine);
    assert_eq!(engine.terminate().code(), Some(0));
    let log = engine.log_text();
    assert!(log.contains("final acknowledgement sent"), "{log}");

    let mut engine = Engine::start(&config);
    wait_streaming(&mut engine);
    pg.psql("INSERT INTO t VALUES (501);").unwrap();
    let events = wait_for_events(&events_path, 501, &mut engine);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let events_after = read_events(&events_path);
    assert_eq!(events_after.len(), 501, "replayed after a clean stop");
    assert_eq!(events[500]["after"]["id"], 501);
    engine.terminate();
}

#[test]
fn a_restarted_server_is_reconnected_and_nothing_is_lost() {
    let (pg, _dir, _config, events_path, mut engine) =
        capture("CREATE TABLE t (id int PRIMARY KEY);", &["public.t"], "");
    pg.psql("INSERT INTO t VALUES (1);").unwrap();
    wait_for_events(&events_path, 1, &mut engine);
    pg.restart().unwrap();
    pg.psql("INSERT INTO t VALUES (2);").unwrap();
    // Row 1 may arrive again after the reconnect (at-least-once): wait for
    // row 2 itself, not for a count.
    wait_until("row 2 after the restart", Duration::from_secs(60), || {
        assert!(engine.is_running(), "cdc exited:\n{}", engine.log_text());
        read_events(&events_path)
            .iter()
            .any(|e| e["after"]["id"] == 2)
    });
    let ids: Vec<i64> = read_events(&events_path)
        .iter()
        .map(|e| e["after"]["id"].as_i64().unwrap())
        .collect();
    assert!(ids.contains(&1) && ids.contains(&2), "{ids:?}");
    assert!(engine.log_text().contains("replication connection lost"));
    engine.terminate();
}

#[test]
fn a_full_sink_is_reported_acknowledges_nothing_and_loses_nothing() {
    let pg = postgres_with("CREATE TABLE t (id int PRIMARY KEY);");
    let dir = tempfile::tempdir().unwrap();
    let good = write_config(dir.path(), &pg.url(), &["public.t"], "");
    let events_path = dir.path().join("events.jsonl");
    let full = full_sink_config(&good, &events_path);
    let mut engine = Engine::start(&full);
    wait_streaming(&mut engine);
    let before = pg
        .psql("SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'cdc'")
        .unwrap();
    pg.psql("INSERT INTO t SELECT generate_series(1, 100);")
        .unwrap();
    // It fails on its first write or fsync (ENOSPC, or EINVAL for fsync of
    // a device): either way one line names the sink and the reason.
    let failed = "sink failed, retrying without acknowledging";
    wait_until(
        "the sink failure to be reported",
        Duration::from_secs(30),
        || engine.log_text().contains(failed),
    );
    let log = engine.log_text();
    let line = log.lines().find(|l| l.contains(failed)).unwrap();
    assert!(line.contains("/dev/full: "), "{line}");
    assert!(line.contains("file:/dev/full"), "{line}");
    // Still running, retrying, and the slot did not move past the insert.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(engine.is_running());
    let after = pg
        .psql("SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'cdc'")
        .unwrap();
    assert_eq!(before, after, "acknowledged events no sink holds");
    // Stopping while the sink fails says so and acknowledges nothing.
    assert_ne!(engine.terminate().code(), Some(0));
    let log = engine.log_text();
    assert!(log.contains("its events were not acknowledged"), "{log}");

    // With a working sink, every row arrives.
    let mut engine = Engine::start(&good);
    assert_ids_arrive(&events_path, 100, &mut engine);
    engine.terminate();
}

/// While events sit undelivered (the sink fails), the server's keepalives,
/// driven by busy unpublished tables, must never move the acknowledged
/// position past them; after a SIGKILL a working sink gets every event.
#[test]
fn keepalives_never_acknowledge_past_undelivered_events() {
    never_acknowledged_past_undelivered_events("", true);
}

/// The same with cdc's own heartbeat messages as the only traffic: each
/// is a position in the log, and none may be acknowledged past the
/// undelivered events either.
#[test]
fn heartbeats_never_acknowledge_past_undelivered_events() {
    never_acknowledged_past_undelivered_events("heartbeat_interval_secs = 1", false);
}

fn never_acknowledged_past_undelivered_events(extra: &str, busy_traffic: bool) {
    let pg = cdc_testcontainers::Postgres::builder()
        .setting("wal_sender_timeout", "2s")
        .start()
        .unwrap();
    pg.psql("CREATE TABLE t (id int PRIMARY KEY); CREATE TABLE busy (n int);")
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let good = write_config(dir.path(), &pg.url(), &["public.t"], extra);
    let events_path = dir.path().join("events.jsonl");
    let full = full_sink_config(&good, &events_path);
    let mut engine = Engine::start(&full);
    wait_streaming(&mut engine);
    // Everything before this point may be acknowledged; the rows after it
    // are never delivered by this run.
    let first_undelivered = pg.psql("SELECT pg_current_wal_lsn()").unwrap();
    pg.psql("INSERT INTO t SELECT generate_series(1, 100);")
        .unwrap();
    wait_until("the sink failure", Duration::from_secs(30), || {
        engine.log_text().contains("sink failed, retrying")
    });
    let after_rows = pg.psql("SELECT pg_current_wal_lsn()").unwrap();
    // Traffic the slot decodes but cdc does not capture (or cdc's own
    // heartbeats): keepalives and status updates go on, the
    // acknowledgement must not.
    for round in 0..40 {
        if busy_traffic {
            pg.psql(&format!(
                "INSERT INTO busy SELECT generate_series(1, 500); DELETE FROM busy WHERE n % 2 = {};",
                round % 2
            ))
            .unwrap();
        }
        let ahead = pg
            .psql(&format!(
                "SELECT confirmed_flush_lsn > '{first_undelivered}'::pg_lsn FROM pg_replication_slots WHERE slot_name = 'cdc'"
            ))
            .unwrap();
        assert_eq!(
            ahead, "f",
            "the slot was acknowledged past undelivered events (round {round})"
        );
        std::thread::sleep(Duration::from_millis(150));
    }
    // The log did move on meanwhile (traffic or heartbeats), so there was
    // something to acknowledge wrongly.
    let moved = pg
        .psql(&format!(
            "SELECT pg_current_wal_lsn() > '{after_rows}'::pg_lsn"
        ))
        .unwrap();
    assert_eq!(moved, "t", "nothing was written after the rows");
    assert!(engine.is_running(), "{}", engine.log_text());
    engine.kill();

    let mut engine = Engine::start(&good);
    assert_ids_arrive(&events_path, 100, &mut engine);
    engine.terminate();
}

/// A slot close to invalidation (`safe_wal_size` under the threshold, the
/// sink holding acknowledgements back) is announced in one line with the
/// time left and the fixes, before the server drops it.
#[test]
fn a_slot_running_out_of_wal_is_announced_before_it_is_lost() {
    let pg = cdc_testcontainers::Postgres::builder()
        .setting("max_slot_wal_keep_size", "128MB")
        .start()
        .unwrap();
    pg.psql("CREATE TABLE t (id int PRIMARY KEY); CREATE TABLE busy (n int, pad text);")
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let good = write_config(
        dir.path(),
        &pg.url(),
        &["public.t"],
        // Below where safe_wal_size starts (about 117 MiB of 128 here), so
        // the watcher has seen WAL grow by the time it warns.
        "slot_wal_warning_mb = 100",
    );
    let events_path = dir.path().join("events.jsonl");
    let full = full_sink_config(&good, &events_path);
    let mut engine = Engine::start(&full);
    wait_streaming(&mut engine);
    pg.psql("INSERT INTO t VALUES (1);").unwrap();
    wait_until("the sink failure", Duration::from_secs(30), || {
        engine.log_text().contains("sink failed, retrying")
    });
    let warning = "replication slot 'cdc' has";
    assert!(!engine.log_text().contains(warning));
    // Two of the watcher's looks (one a second here) before WAL grows: the
    // rate is measured by the time the slot crosses the threshold, however
    // fast this machine writes it.
    std::thread::sleep(Duration::from_secs(2));
    // WAL the slot must keep, since nothing is acknowledged, written in
    // steps while the watcher polls, so it sees WAL growing and can say how
    // long the slot has left at that rate.
    let mut rounds = 0;
    while !engine.log_text().contains(warning) {
        rounds += 1;
        assert!(rounds < 200, "no warning:\n{}", engine.log_text());
        pg.psql(
            "INSERT INTO busy SELECT g, repeat(md5(g::text), 8) FROM generate_series(1, 5000) g;",
        )
        .unwrap();
    }
    let log = engine.log_text();
    let line = log.lines().find(|l| l.contains(warning)).unwrap();
    assert!(
        line.contains("max_slot_wal_keep_size") && line.contains("bytes of WAL left"),
        "{line}"
    );
    assert!(
        line.contains(" s at the last minute's ") && line.contains("bytes/s of WAL"),
        "the time left at the current rate: {line}"
    );
    eprintln!("{line}");
    engine.kill();
}

/// Every id 1..=n arrives (duplicates allowed).
fn assert_ids_arrive(events_path: &std::path::Path, n: i64, engine: &mut Engine) {
    let events = wait_for_events(events_path, n as usize, engine);
    let mut ids: Vec<i64> = events
        .iter()
        .map(|e| e["after"]["id"].as_i64().unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids, (1..=n).collect::<Vec<_>>());
}
