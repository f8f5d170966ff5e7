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

use cdc_testcontainers::netns::Netem;
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

/// 200 ms delay and 5 % loss each way on cdc's path to `pg` in `ns`: the
/// kernel's netem on the veth where the kernel has it, else (this
/// development machine: no `CONFIG_NET_SCH_NETEM`, no modules) the
/// in-process proxy's delay and an nft loss rule.
struct DelayAndLoss<'a> {
    ns: &'a Netns,
    proxy: Option<Proxy>,
    url: String,
}

impl<'a> DelayAndLoss<'a> {
    fn new(ns: &'a Netns, pg: &Postgres) -> DelayAndLoss<'a> {
        match ns.netem_support() {
            Ok(()) => DelayAndLoss {
                ns,
                proxy: None,
                url: network_url(pg, &ns.address().to_string(), pg.port()),
            },
            Err(why) => {
                eprintln!("delay from the proxy, loss from nft: {why}");
                let proxy = Proxy::start((ns.address(), pg.port()).into()).unwrap();
                let url = network_url(pg, "127.0.0.1", proxy.port());
                DelayAndLoss {
                    ns,
                    proxy: Some(proxy),
                    url,
                }
            }
        }
    }

    fn tool(&self) -> &'static str {
        if self.proxy.is_some() {
            "proxy + nft"
        } else {
            "netem"
        }
    }

    fn start(&self) {
        match &self.proxy {
            Some(proxy) => {
                proxy.set_delay(Duration::from_millis(200));
                self.ns.loss(5).unwrap();
            }
            None => self
                .ns
                .netem(&Netem {
                    delay: Duration::from_millis(200),
                    loss_percent: 5,
                    reorder_percent: 0,
                })
                .unwrap(),
        }
    }

    fn stop(&self) {
        if let Some(proxy) = &self.proxy {
            proxy.set_delay(Duration::ZERO);
        }
        self.ns.heal().unwrap();
    }
}

/// Delay and loss may break nothing; when they do, one line says so and
/// one says cdc streams again.
fn at_most_one_outage(log: &str, fault_at: f64) -> usize {
    let lost: Vec<&str> = detection_lines(log)
        .into_iter()
        .filter(|l| log_time(l).is_some_and(|t| t > fault_at))
        .collect();
    let restored = recovery_lines(log, fault_at);
    assert!(lost.len() <= 1, "one line on the fault:\n{log}");
    assert_eq!(
        lost.len(),
        restored.len(),
        "a line on the recovery for each on a fault:\n{log}"
    );
    lost.len()
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
    let path = DelayAndLoss::new(&ns, &pg);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &path.url, &["public.t"], "");
    let events_path = dir.path().join("events.jsonl");

    let plan = Plan {
        prelude: |_: &Engine| {},
        fault: || path.start(),
        hold: Duration::from_secs(20),
        heal: || path.stop(),
        snapshot: false,
    };
    let (log, fault_at, _) = under_writer(&pg, &config, &events_path, plan);
    let outages = at_most_one_outage(&log, fault_at);
    eprintln!("delay + loss ({}): {outages} reconnects", path.tool());
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
    let path = DelayAndLoss::new(&ns, &pg);
    let (log, fault_at, _) = in_snapshot_window(
        &pg,
        &path.url,
        || path.start(),
        Duration::from_secs(20),
        || path.stop(),
    );
    let outages = at_most_one_outage(&log, fault_at);
    eprintln!(
        "delay + loss in a snapshot window ({}): {outages} reconnects",
        path.tool()
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

/// `streaming = "auto"` (pgoutput v2, the default): the transaction is
/// still open, its changes streamed to cdc (`stream_bytes` > 0), when the
/// walsender dies; it commits after, and the next session receives it
/// again from the start.
#[test]
fn a_walsender_terminated_mid_large_transaction_loses_nothing() {
    walsender_terminated_mid_large_transaction(false);
}

/// `streaming = "off"`: the server spills the transaction to disk
/// (`spill_bytes` > 0) and sends it after its commit; the walsender dies
/// while it does, with part of it out.
#[test]
fn a_walsender_terminated_mid_large_spilled_transaction_loses_nothing() {
    walsender_terminated_mid_large_transaction(true);
}

/// The slot's spill and stream counters (`pg_stat_replication_slots`).
fn spill_and_stream_bytes(pg: &Postgres) -> (i64, i64) {
    let row = pg
        .psql("SELECT spill_bytes || ' ' || stream_bytes FROM pg_stat_replication_slots WHERE slot_name = 'cdc'")
        .unwrap();
    let (spill, stream) = row.split_once(' ').unwrap();
    (spill.parse().unwrap(), stream.parse().unwrap())
}

fn walsender_terminated_mid_large_transaction(streaming_off: bool) {
    // A small work_mem: the big transaction spills (or is streamed) while
    // decoded.
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
    const ROWS: usize = 100_000;
    // Savepoints rolled back inside: those rows must never appear.
    let transaction = |then: &str| {
        format!(
            "BEGIN;
             INSERT INTO big SELECT g, repeat('x', 100) FROM generate_series(1, {half}) g;
             SAVEPOINT a;
             INSERT INTO big SELECT g, 'rolled back' FROM generate_series({rows} + 1, {rows} + 5000) g;
             ROLLBACK TO SAVEPOINT a;
             INSERT INTO big SELECT g, repeat('y', 100) FROM generate_series({half} + 1, {rows}) g;
             {then}",
            half = ROWS / 2,
            rows = ROWS
        )
    };
    let open = std::cell::RefCell::new(None);
    let plan = Plan {
        prelude: |_: &Engine| {
            if streaming_off {
                pg.psql(&transaction("COMMIT;")).unwrap();
                // Being sent: its first rows are out.
                wait_until(
                    "the first rows of the transaction",
                    Duration::from_secs(60),
                    || !table_events(&read_events(&events_path), "big").is_empty(),
                );
            } else {
                let (url, sql) = (pg.url(), transaction("SELECT pg_sleep(3); COMMIT;"));
                *open.borrow_mut() = Some(std::thread::spawn(move || {
                    with_client(&url, async |client| {
                        client.batch_execute(&sql).await.unwrap()
                    })
                }));
                wait_until(
                    "the open transaction to be streamed",
                    Duration::from_secs(60),
                    || spill_and_stream_bytes(&pg).1 > 0,
                );
            }
        },
        fault: || {
            let (spilled, streamed) = spill_and_stream_bytes(&pg);
            terminate_walsender(&pg);
            let seen = table_events(&read_events(&events_path), "big").len();
            eprintln!(
                "walsender terminated with {seen} of {ROWS} rows of the transaction out; spill_bytes {spilled}, stream_bytes {streamed}"
            );
            if streaming_off {
                assert!(spilled > 0, "the transaction did not spill");
                // The pipeline holds at most a few batches: the rest was
                // still the walsender's to send.
                assert!(seen < ROWS, "the transaction was out whole before the kill");
            } else {
                assert!(streamed > 0, "the transaction was not streamed");
                assert_eq!(seen, 0, "cdc let out rows of an uncommitted transaction");
                open.borrow_mut().take().unwrap().join().unwrap();
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
    assert_eq!(ids.len(), ROWS, "every row of the transaction arrives");
    assert!(
        ids.iter().all(|&id| id <= ROWS as i64),
        "a rolled-back row arrived"
    );
    assert_same(
        &fold(&events, "big", &["id"]),
        &contents(&pg, "big", &["id"]),
    );
    report_one_outage(&log, fault_at, "walsender terminated mid large transaction");
}

/// Only the replication connection blackholed (nft DROP on its own port
/// pair), the lease's lock connection to the same server untouched: the
/// replication stream's receive timeout notices, not the lease.
#[test]
fn a_blackhole_on_the_replication_connection_alone_is_noticed_by_its_receive_timeout() {
    let Some(ns) = namespace() else { return };
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
        fault: || {
            let port: u16 = pg
                .psql("SELECT client_port FROM pg_stat_replication WHERE application_name = 'cdc'")
                .unwrap()
                .parse()
                .unwrap();
            ns.blackhole_connection(port).unwrap();
        },
        hold: Duration::from_secs(30),
        heal: || ns.heal().unwrap(),
        snapshot: false,
    };
    let (log, fault_at, _) = under_writer(&pg, &config, &events_path, plan);
    let (lost, restored) = one_outage(&log, fault_at);
    assert!(
        lost.contains("replication connection lost") && lost.contains("no message from the server"),
        "the receive timeout did not fire: {lost}\n{log}"
    );
    assert!(
        lines_with(&log, "lost the lease").is_empty(),
        "the lease's connection was not blackholed:\n{log}"
    );
    let detected = log_time(lost).unwrap() - fault_at;
    assert!(
        detected < DETECTION_BOUND_SECS,
        "detected after {detected:.1}s:\n{log}"
    );
    eprintln!(
        "replication connection blackholed alone: detected after {detected:.1}s (receive timeout {RECEIVE_TIMEOUT_SECS}s), streaming again {:.1}s after the fault, while still blackholed (a new connection)\n  {}\n  {}",
        log_time(restored).unwrap() - fault_at,
        strip_ansi(lost),
        strip_ansi(restored)
    );
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
    let acks = std::cell::RefCell::new(AckSamples::default());
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
            // Over the Unix socket, which the blackhole does not touch.
            acks.borrow_mut()
                .over(&pg, &events_path, Duration::from_secs(30));
        },
        hold: Duration::ZERO,
        heal: || {
            ns.heal().unwrap();
            std::fs::remove_file(filler.borrow_mut().take().unwrap()).unwrap();
        },
        snapshot: false,
    };
    let (log, fault_at, healed_at) = under_writer(&pg, &config, &events_path, plan);
    disk::assert_whole_lines(&events_path);
    let checked = acks.borrow().assert_held(&events_path);
    eprintln!("the slot stayed behind the file at {checked} samples");
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
