//! Faults of the world around cdc, on real servers: a stalled stdout pipe,
//! a network blackhole (nft DROP both ways, in a namespace of the test's
//! own), delay and loss, a terminated walsender. After each, every committed
//! change is in the output, in per-key order, and the fold equals the table.
//!
//! The network tests need root (`ip netns`) and `nft` (scripts/test.sh
//! installs nftables); without root they say so and pass.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod harness;

use std::collections::HashSet;
use std::io::BufRead;
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cdc_testcontainers::proxy::Proxy;
use cdc_testcontainers::{Netns, Postgres};
use common::*;
use harness::*;
use serde_json::Value;

/// The network tests' servers have `wal_sender_timeout = 5s`, so cdc's
/// receive timeout is twice that.
const RECEIVE_TIMEOUT_SECS: f64 = 10.0;
/// A generous bound on noticing a blackhole: the timeout plus a status tick
/// and scheduling on a busy machine, still well inside the 30 s fault.
const DETECTION_BOUND_SECS: f64 = RECEIVE_TIMEOUT_SECS * 2.5;
fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// A namespace for the test, or `None` (and a line saying so) without root.
fn namespace() -> Option<Netns> {
    if !is_root() {
        eprintln!("skipped: network namespaces need root");
        return None;
    }
    Some(Netns::create().unwrap())
}

/// The URL cdc uses: TCP through the namespace's veth, where faults happen.
fn network_url(pg: &Postgres, host: &str, port: u16) -> String {
    format!(
        "postgresql://{}@{host}:{port}/{}",
        pg.superuser(),
        pg.database()
    )
}

/// The line saying a dead path was noticed: the replication stream's
/// receive timeout, or (first, when the outage outlasts the lease's
/// freshness) the lease's lock connection.
fn detection_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| {
            l.contains("replication connection lost")
                || l.contains("stopping before acknowledging anything more")
        })
        .collect()
}

/// The line saying cdc streams again after the fault: the stream
/// reconnected, or the instance took its lease back.
fn recovery_lines(log: &str, fault_at: f64) -> Vec<&str> {
    log.lines()
        .filter(|l| {
            l.contains("replication connection restored")
                || (l.contains("holding the lease") && log_time(l).is_some_and(|t| t > fault_at))
        })
        .collect()
}

#[test]
fn a_stdout_pipe_nobody_reads_past_wal_sender_timeout_keeps_the_connection() {
    let pg = Postgres::builder()
        .setting("wal_sender_timeout", "3s")
        .start()
        .unwrap();
    pg.psql("CREATE TABLE t (id int PRIMARY KEY, pad text)")
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &pg.url(), &["public.t"], "");
    let text = std::fs::read_to_string(&config).unwrap();
    let start = text.find("[sink]").unwrap();
    let end = text.find("[pipeline]").unwrap();
    let text = format!(
        "{}[sink]\ntype = \"stdout\"\n\n{}",
        &text[..start],
        &text[end..]
    );
    std::fs::write(&config, text).unwrap();

    let (mut engine, stdout) = Engine::start_piped(&config);
    wait_streaming(&mut engine);
    // Megabytes of JSON: far more than a pipe holds, so the sink's write
    // blocks until the test reads.
    const ROWS: i64 = 20_000;
    for batch in 0..20 {
        pg.psql(&format!(
            "INSERT INTO t SELECT g, repeat('x', 200) FROM generate_series({}, {}) g",
            batch * 1000 + 1,
            (batch + 1) * 1000
        ))
        .unwrap();
    }
    // Four times wal_sender_timeout with nobody reading.
    std::thread::sleep(Duration::from_secs(12));
    let seen = Arc::new(Mutex::new(HashSet::new()));
    let reader = {
        let seen = seen.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let Ok(event) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if let Some(id) = event["after"]["id"].as_i64() {
                    seen.lock().unwrap().insert(id);
                }
            }
        })
    };
    wait_until("every row on stdout", Duration::from_secs(120), || {
        assert!(engine.is_running(), "cdc exited:\n{}", engine.log_text());
        seen.lock().unwrap().len() as i64 == ROWS
    });
    let log = engine.log_text();
    assert!(
        lines_with(&log, "connection lost").is_empty(),
        "the replication connection dropped:\n{log}"
    );
    let server_log = pg.log();
    assert!(
        !server_log.contains("terminating walsender process due to replication timeout"),
        "the server timed the walsender out:\n{server_log}"
    );
    assert_eq!(engine.terminate().code(), Some(0));
    reader.join().unwrap();
}

#[test]
fn a_blackhole_while_streaming_is_detected_and_healed_without_loss() {
    let Some(ns) = namespace() else { return };
    // cdc's receive timeout is then twice this (RECEIVE_TIMEOUT_SECS).
    let pg = Postgres::builder()
        .netns(&ns)
        .setting("wal_sender_timeout", "5s")
        .start()
        .unwrap();
    pg.psql(DDL).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = network_url(&pg, &ns.address().to_string(), pg.port());
    let config = write_config(dir.path(), &url, &["public.t"], "");
    let events_path = dir.path().join("events.jsonl");

    let plan = Plan {
        prelude: |_: &Engine| {},
        fault: || ns.blackhole().unwrap(),
        hold: Duration::from_secs(30),
        heal: || ns.heal().unwrap(),
        snapshot: false,
    };
    let (log, fault_at, healed_at) = under_writer(&pg, &config, &events_path, plan);
    let lost = detection_lines(&log);
    let restored = recovery_lines(&log, fault_at);
    assert_eq!(lost.len(), 1, "one line on detecting the fault:\n{log}");
    assert_eq!(restored.len(), 1, "one line on the recovery:\n{log}");
    let time = |line: &str| log_time(line).unwrap_or_else(|| panic!("no time in {line:?}"));
    let detected = time(lost[0]) - fault_at;
    let recovered = time(restored[0]) - healed_at;
    assert!(
        detected < DETECTION_BOUND_SECS,
        "detected after {detected:.1}s:\n{log}"
    );
    eprintln!(
        "blackhole while streaming: detected after {detected:.1}s, recovered {recovered:.1}s after healing\n  {}\n  {}",
        strip_ansi(lost[0]),
        strip_ansi(restored[0])
    );
    for line in lines_with(&log, "WARN") {
        eprintln!("  warning: {}", strip_ansi(line));
    }
}

#[test]
fn delay_and_loss_while_streaming_lose_nothing() {
    let Some(ns) = namespace() else { return };
    let pg = Postgres::builder()
        .netns(&ns)
        .setting("wal_sender_timeout", "5s")
        .start()
        .unwrap();
    pg.psql(DDL).unwrap();
    // The kernel has no netem: delay from the proxy, loss from nft.
    let proxy = Proxy::start((ns.address(), pg.port()).into()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = network_url(&pg, "127.0.0.1", proxy.port());
    let config = write_config(dir.path(), &url, &["public.t"], "");
    let events_path = dir.path().join("events.jsonl");

    let plan = Plan {
        prelude: |_: &Engine| {},
        fault: || {
            proxy.set_delay(Duration::from_millis(200));
            ns.loss(5).unwrap();
        },
        hold: Duration::from_secs(20),
        heal: || {
            proxy.set_delay(Duration::ZERO);
            ns.heal().unwrap();
        },
        snapshot: false,
    };
    let (log, _, _) = under_writer(&pg, &config, &events_path, plan);
    eprintln!(
        "delay + loss: {} reconnects",
        lines_with(&log, "replication connection lost").len()
    );
}

#[test]
fn a_blackhole_during_a_snapshot_window_loses_nothing() {
    let Some(ns) = namespace() else { return };
    let pg = Postgres::builder()
        .netns(&ns)
        .setting("wal_sender_timeout", "5s")
        .start()
        .unwrap();
    let url = network_url(&pg, &ns.address().to_string(), pg.port());
    let (log, fault_at, healed_at) = in_snapshot_window(
        &pg,
        &url,
        || ns.blackhole().unwrap(),
        Duration::from_secs(30),
        || ns.heal().unwrap(),
    );
    let lost = detection_lines(&log);
    assert_eq!(lost.len(), 1, "one line on detecting the fault:\n{log}");
    let restored = recovery_lines(&log, fault_at);
    assert_eq!(restored.len(), 1, "one line on the recovery:\n{log}");
    let detected = log_time(lost[0]).unwrap() - fault_at;
    let recovered = log_time(restored[0]).unwrap() - healed_at;
    assert!(
        detected < DETECTION_BOUND_SECS,
        "detected after {detected:.1}s:\n{log}"
    );
    eprintln!(
        "blackhole in a snapshot window: detected after {detected:.1}s, recovered {recovered:.1}s after healing"
    );
}

#[test]
fn delay_and_loss_during_a_snapshot_window_lose_nothing() {
    let Some(ns) = namespace() else { return };
    let pg = Postgres::builder()
        .netns(&ns)
        .setting("wal_sender_timeout", "5s")
        .start()
        .unwrap();
    let proxy = Proxy::start((ns.address(), pg.port()).into()).unwrap();
    let url = network_url(&pg, "127.0.0.1", proxy.port());
    let (log, _, _) = in_snapshot_window(
        &pg,
        &url,
        || {
            proxy.set_delay(Duration::from_millis(200));
            ns.loss(5).unwrap();
        },
        Duration::from_secs(20),
        || {
            proxy.set_delay(Duration::ZERO);
            ns.heal().unwrap();
        },
    );
    eprintln!(
        "delay + loss in a snapshot window: {} reconnects",
        lines_with(&log, "replication connection lost").len()
    );
}

/// The walsender of cdc's slot, terminated; asserts there was one.
fn terminate_walsender(pg: &Postgres) {
    let killed = pg
        .psql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_replication WHERE application_name = 'cdc'")
        .unwrap();
    assert_eq!(killed, "1");
}

#[test]
fn a_walsender_terminated_while_streaming_loses_nothing() {
    let pg = Postgres::start().unwrap();
    let (log, fault_at) = while_streaming(&pg, || terminate_walsender(&pg));
    report_one_outage(&log, fault_at, "walsender terminated while streaming");
}

#[test]
fn a_walsender_terminated_during_a_snapshot_window_loses_nothing() {
    let pg = Postgres::start().unwrap();
    let (log, fault_at, _) = in_snapshot_window(
        &pg,
        &pg.url(),
        || terminate_walsender(&pg),
        Duration::from_secs(1),
        || {},
    );
    report_one_outage(&log, fault_at, "walsender terminated in a snapshot window");
}

/// One line on losing the replication connection and one on its
/// recovery; prints how long it took.
fn report_one_outage(log: &str, fault_at: f64, what: &str) {
    let lost = lines_with(log, "replication connection lost");
    let restored = lines_with(log, "replication connection restored");
    assert_eq!((lost.len(), restored.len()), (1, 1), "{log}");
    eprintln!(
        "{what}: streaming again after {:.1}s",
        log_time(restored[0]).unwrap() - fault_at
    );
}

#[test]
fn a_walsender_terminated_mid_large_transaction_loses_nothing() {
    // A small work_mem: the big transaction spills to disk while decoded.
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
    const ROWS: usize = 100_000;
    let plan = Plan {
        prelude: |_: &Engine| {
            // Savepoints rolled back inside: those rows must never appear.
            pg.psql(&format!(
                "BEGIN;
                 INSERT INTO big SELECT g, repeat('x', 100) FROM generate_series(1, {half}) g;
                 SAVEPOINT a;
                 INSERT INTO big SELECT g, 'rolled back' FROM generate_series({rows} + 1, {rows} + 5000) g;
                 ROLLBACK TO SAVEPOINT a;
                 INSERT INTO big SELECT g, repeat('y', 100) FROM generate_series({half} + 1, {rows}) g;
                 COMMIT;",
                half = ROWS / 2,
                rows = ROWS
            ))
            .unwrap();
            // Wait until the transaction is on its way, not through.
            wait_until(
                "the first rows of the transaction",
                Duration::from_secs(60),
                || !table_events(&read_events(&events_path), "big").is_empty(),
            );
        },
        fault: || {
            terminate_walsender(&pg);
            let seen = table_events(&read_events(&events_path), "big").len();
            eprintln!("walsender terminated with {seen} of {ROWS} rows of the transaction out");
        },
        hold: Duration::from_secs(1),
        heal: || {},
        snapshot: false,
    };
    let (log, _, _) = under_writer(&pg, &config, &events_path, plan);
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
    let lost = lines_with(&log, "replication connection lost");
    assert_eq!(lost.len(), 1, "{log}");
    for line in lines_with(&log, "restored") {
        eprintln!("  {}", strip_ansi(line));
    }
}

/// A blackhole on the PostgreSQL path while a flush waits: the file sink's
/// disk is full (writes fail and are retried, nothing is acknowledged),
/// then the path drops every packet for 30 s; both are healed together.
/// The dead path is still noticed while the sink is stuck, and nothing is
/// lost.
#[test]
fn a_blackhole_while_a_flush_waits_on_a_full_disk_loses_nothing() {
    let Some(ns) = namespace() else { return };
    let Some(disk) = disk::SmallDisk::mount(32) else {
        return;
    };
    let pg = Postgres::builder()
        .netns(&ns)
        .setting("wal_sender_timeout", "5s")
        .start()
        .unwrap();
    pg.psql(DDL).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = network_url(&pg, &ns.address().to_string(), pg.port());
    let config = write_config(dir.path(), &url, &["public.t"], "");
    let events_path = disk.path().join("events.jsonl");
    disk::write_events_to(&config, &events_path);
    let filler = std::cell::RefCell::new(None);
    let engine_log = std::cell::RefCell::new(None);
    let plan = Plan {
        prelude: |engine: &Engine| *engine_log.borrow_mut() = Some(engine.log.clone()),
        fault: || {
            *filler.borrow_mut() = Some(disk.fill());
            let log = engine_log.borrow().clone().unwrap();
            wait_until(
                "a write to hit the full disk",
                Duration::from_secs(60),
                || std::fs::read_to_string(&log).is_ok_and(|l| l.contains("No space left")),
            );
            ns.blackhole().unwrap();
        },
        hold: Duration::from_secs(30),
        heal: || {
            ns.heal().unwrap();
            std::fs::remove_file(filler.borrow_mut().take().unwrap()).unwrap();
        },
        snapshot: false,
    };
    let (log, fault_at, healed_at) = under_writer(&pg, &config, &events_path, plan);
    disk::assert_whole_lines(&events_path);
    let lost = detection_lines(&log);
    let restored = recovery_lines(&log, fault_at);
    assert_eq!(lost.len(), 1, "one line on detecting the fault:\n{log}");
    assert_eq!(restored.len(), 1, "one line on the recovery:\n{log}");
    let detected = log_time(lost[0]).unwrap() - fault_at;
    assert!(
        detected < DETECTION_BOUND_SECS,
        "detected after {detected:.1}s:\n{log}"
    );
    eprintln!(
        "blackhole while a flush waits on a full disk: detected after {detected:.1}s, streaming again {:.1}s after healing\n  {}\n  {}",
        log_time(restored[0]).unwrap() - healed_at,
        strip_ansi(lost[0]),
        strip_ansi(restored[0])
    );
    for line in lines_with(&log, "WARN") {
        eprintln!("  warning: {}", strip_ansi(line));
    }
}
