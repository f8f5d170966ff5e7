//! One active instance per slot: several `cdc run` on the same config form
//! a group; one holds the lease (an advisory lock), the others stand by and
//! take over when it dies, is frozen, or loses its lock connection. Under a
//! writer and a running snapshot, nothing is lost over the union of the
//! instances' outputs, and a frozen holder, when resumed, acknowledges
//! nothing more.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cdc_testcontainers::Postgres;
use common::*;
use serde_json::Value;

/// Rows in the table at start: enough that the snapshot (chunks of 50) is
/// still running when a test kills or freezes the active, even on a fast
/// server (5 000 finished first on PostgreSQL 17 in CI).
const ROWS: i32 = 40_000;
const DDL: &str = "CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL);\
                   INSERT INTO t SELECT g, 0 FROM generate_series(1, 40000) g;";

/// The config of instance `n`: the same source, slot and snapshot
/// settings, a sink file of its own.
fn instance_config(dir: &Path, pg: &Postgres, n: usize) -> (PathBuf, PathBuf) {
    let own = dir.join(format!("instance-{n}"));
    std::fs::create_dir_all(&own).unwrap();
    let config = write_config(&own, &pg.url(), &["public.t"], "");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[snapshot]\ninitial = true\nchunk_size = 50\n");
    std::fs::write(&config, text).unwrap();
    (config, own.join("events.jsonl"))
}

/// The process id of the lease holder, from its lock connection's
/// `application_name` (`cdc:<host>:<pid>`).
fn holder_pid(pg: &Postgres) -> Option<i32> {
    let name = pg
        .psql(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 1667523328",
        )
        .unwrap();
    name.rsplit(':').next()?.parse().ok()
}

fn wait_for_holder(pg: &Postgres, not: Option<i32>) -> i32 {
    let mut pid = None;
    wait_until(
        "an instance to hold the lease",
        Duration::from_secs(60),
        || {
            pid = holder_pid(pg).filter(|p| Some(*p) != not);
            pid.is_some()
        },
    );
    pid.unwrap()
}

/// Updates random rows until stopped.
fn writer(pg_url: String, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        with_client(&pg_url, async |client| {
            let mut i = 0u32;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                let id = 1 + (i.wrapping_mul(7919) % ROWS as u32) as i32;
                client
                    .execute("UPDATE t SET v = v + 1 WHERE id = $1", &[&id])
                    .await
                    .unwrap();
                client
                    .execute(
                        "INSERT INTO t VALUES ($1, 0) ON CONFLICT (id) DO NOTHING",
                        &[&(ROWS + i as i32)],
                    )
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    })
}

/// Every instance's events, in the order the instances were active.
fn union(outputs: &[&Path]) -> Vec<Value> {
    outputs.iter().flat_map(|p| read_events(p)).collect()
}

fn assert_union_is_the_table(pg: &Postgres, outputs: &[&Path], engines: &mut [&mut Engine]) {
    let expected = contents(pg, "t", &["id"]);
    wait_until(
        "the union of the outputs to fold to the table",
        Duration::from_secs(120),
        || {
            for engine in engines.iter_mut() {
                assert!(engine.is_running(), "cdc exited:\n{}", engine.log_text());
            }
            fold(&union(outputs), "t", &["id"]) == expected
        },
    );
}

/// A server with `DDL` and instance 1 of a group active on it; the config of
/// instance 2 and both sink files; the active's process id.
fn active_and_config() -> (Postgres, tempfile::TempDir, [PathBuf; 3], Engine, i32) {
    let pg = postgres_with(DDL);
    let dir = tempfile::tempdir().unwrap();
    let (config_a, events_a) = instance_config(dir.path(), &pg, 1);
    let (config_b, events_b) = instance_config(dir.path(), &pg, 2);
    let mut a = Engine::start(&config_a);
    let active = wait_for_holder(&pg, None);
    assert_eq!(active, a.pid());
    wait_streaming(&mut a);
    (pg, dir, [config_b, events_a, events_b], a, active)
}

/// Another instance of the group, once it says whom it stands by for.
fn start_standby(config: &Path) -> Engine {
    let mut engine = Engine::start(config);
    wait_until("the instance to stand by", Duration::from_secs(60), || {
        assert!(engine.is_running(), "cdc exited:\n{}", engine.log_text());
        engine
            .log_text()
            .contains("standing by: replication slot 'cdc' is held by 'cdc:")
    });
    engine
}

#[test]
fn a_standby_takes_over_from_a_killed_active_with_nothing_lost() {
    let (pg, _dir, [config_b, events_a, events_b], mut a, active) = active_and_config();
    let mut text = std::fs::read_to_string(&config_b).unwrap();
    text.push_str("\n[observe]\nlisten = \"127.0.0.1:0\"\n");
    std::fs::write(&config_b, text).unwrap();
    let mut b = start_standby(&config_b);
    let observe = observe_addr(&mut b);
    assert!(!b.log_text().contains("streaming"), "{}", b.log_text());
    // `cdc status` names the active instance.
    let out = std::process::Command::new(cdc_bin())
        .args(["status", "--config"])
        .arg(&config_b)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("active instance: 'cdc:") && text.contains(&format!(":{active}' from")),
        "{text}"
    );
    // Live, not ready.
    assert_eq!(http_get(observe, "/health/live").0, 200);
    let (status, body) = http_get(observe, "/health/ready");
    assert_eq!(
        (status, body.trim()),
        (503, "standing by"),
        "{}",
        b.log_text()
    );
    assert_eq!(gauge(observe, "cdc_active"), Some(0.0));

    let stop = Arc::new(AtomicBool::new(false));
    let writing = writer(pg.url(), stop.clone());
    // Mid snapshot: some chunks are out, the rest is left to the standby.
    wait_for_events(&events_a, 1000, &mut a);
    a.kill();
    assert!(
        !a.log_text().contains("snapshot complete"),
        "the snapshot finished before the kill; raise ROWS:\n{}",
        a.log_text()
    );
    let took_over = wait_for_holder(&pg, Some(active));
    assert_eq!(took_over, b.pid());
    wait_streaming(&mut b);
    wait_until(
        "the new active to be ready",
        Duration::from_secs(60),
        || http_get(observe, "/health/ready").0 == 200,
    );
    assert_eq!(gauge(observe, "cdc_active"), Some(1.0));
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::SeqCst);
    writing.join().unwrap();
    assert_union_is_the_table(&pg, &[&events_a, &events_b], &mut [&mut b]);
    let log = b.log_text();
    assert!(log.contains("resuming snapshot"), "{log}");
    assert_eq!(b.terminate().code(), Some(0));
}

/// What acknowledges on the server: the slot's confirmed position, and
/// the saved snapshot progress (with when it was saved).
fn acknowledged_state(pg: &Postgres) -> String {
    pg.psql(
        "SELECT concat_ws(' | ', \
           (SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 'cdc'), \
           (SELECT updated_at::text || ' ' || state::text FROM cdc.snapshot_state WHERE name = 'cdc'))",
    )
    .unwrap()
}

/// The position record (`cdc.positions`): its LSN and when it was written.
fn position_record(pg: &Postgres) -> String {
    pg.psql("SELECT lsn::text || ' at ' || written_at::text FROM cdc.positions WHERE slot = 'cdc'")
        .unwrap()
}

#[test]
fn a_frozen_active_cut_off_from_its_lock_stops_without_acknowledging() {
    let (pg, _dir, [config_b, events_a, events_b], mut a, active) = active_and_config();
    let mut b = start_standby(&config_b);
    let stop = Arc::new(AtomicBool::new(false));
    let writing = writer(pg.url(), stop.clone());
    wait_for_events(&events_a, 1000, &mut a);

    // A frozen host: the process stops, and its lock connection is cut.
    unsafe_signal(a.pid(), "STOP");
    assert!(
        !a.log_text().contains("snapshot complete"),
        "the snapshot finished before the freeze; raise ROWS:\n{}",
        a.log_text()
    );
    pg.psql(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE 'cdc:%:{active}'"
    ))
    .unwrap();
    let took_over = wait_for_holder(&pg, Some(active));
    assert_eq!(took_over, b.pid());
    wait_streaming(&mut b);
    // The successor resumes the snapshot the frozen one left half done.
    wait_until(
        "the new active to save snapshot progress",
        Duration::from_secs(60),
        || {
            assert!(b.is_running(), "cdc exited:\n{}", b.log_text());
            b.log_text().contains("resuming snapshot")
                && pg
                    .psql("SELECT count(*) FROM cdc.snapshot_state WHERE updated_at > (SELECT acquired_at FROM cdc.leases WHERE slot = 'cdc')")
                    .unwrap()
                    == "1"
        },
    );
    // The new active freezes too, so that anything that moves from now on
    // is the old one's doing.
    unsafe_signal(b.pid(), "STOP");
    std::thread::sleep(Duration::from_millis(500));
    let fenced = acknowledged_state(&pg);
    let record = position_record(&pg);
    eprintln!("when the old active wakes: {fenced}; position record {record}");

    // The frozen one wakes: it must notice, acknowledge nothing, stand by.
    unsafe_signal(a.pid(), "CONT");
    wait_until(
        "the resumed instance to give up",
        Duration::from_secs(60),
        || {
            a.log_text()
                .contains("lost the lease of replication slot 'cdc'")
        },
    );
    wait_until(
        "the resumed instance to stand by again",
        Duration::from_secs(60),
        || {
            a.log_text()
                .contains("standing by: replication slot 'cdc' is held by")
        },
    );
    // Past its shutdown and a poll of the lock it cannot take.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        acknowledged_state(&pg),
        fenced,
        "the old active moved the slot or saved progress:\n{}",
        a.log_text()
    );
    // Nor its position record: once the lease is lost, an older position
    // must not move the successor's record back (the upsert is guarded by
    // the lease epoch, as snapshot progress is).
    let record_now = position_record(&pg);
    assert_eq!(
        record_now,
        record,
        "the old active rewrote cdc.positions:\n{}",
        a.log_text()
    );
    unsafe_signal(b.pid(), "CONT");

    let a_log = a.log_text();
    assert!(a.is_running(), "{a_log}");
    for line in a_log.lines().chain(b.log_text().lines()).filter(|l| {
        l.contains("lease") || l.contains("standing by") || l.contains("terminating it")
    }) {
        eprintln!("{line}");
    }
    // Only the new active streams from the slot.
    assert_eq!(
        pg.psql(
            "SELECT count(*) FROM pg_stat_replication r JOIN pg_replication_slots s ON s.active_pid = r.pid \
             WHERE s.slot_name = 'cdc'"
        )
        .unwrap(),
        "1"
    );
    assert_eq!(holder_pid(&pg), Some(b.pid()));
    stop.store(true, Ordering::SeqCst);
    writing.join().unwrap();
    assert_union_is_the_table(&pg, &[&events_a, &events_b], &mut [&mut a, &mut b]);
    assert_eq!(b.terminate().code(), Some(0));
    assert_eq!(a.terminate().code(), Some(0));
}

#[test]
fn three_instances_survive_repeated_kills() {
    let pg = postgres_with(DDL);
    let dir = tempfile::tempdir().unwrap();
    let configs: Vec<_> = (1..=4)
        .map(|n| instance_config(dir.path(), &pg, n))
        .collect();
    let mut engines: Vec<Engine> = configs
        .iter()
        .take(3)
        .map(|(c, _)| Engine::start(c))
        .collect();
    let mut pids: Vec<i32> = engines.iter().map(Engine::pid).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let writing = writer(pg.url(), stop.clone());
    let mut killed = Vec::new();
    let mut order = Vec::new();
    for round in 0..3 {
        let pid = wait_for_holder(&pg, killed.last().copied());
        let index = pids.iter().position(|&p| p == pid).unwrap();
        wait_streaming(&mut engines[index]);
        order.push(index);
        std::thread::sleep(Duration::from_secs(2));
        if round < 2 {
            engines[index].kill();
            killed.push(pid);
            // A fourth joins after the first kill; the group goes on with
            // two, then one.
            if round == 0 {
                engines.push(Engine::start(&configs[3].0));
                pids.push(engines[3].pid());
            }
        }
    }
    stop.store(true, Ordering::SeqCst);
    writing.join().unwrap();
    let last = *order.last().unwrap();
    let outputs: Vec<&Path> = order.iter().map(|&i| configs[i].1.as_path()).collect();
    let mut survivor = engines.remove(last);
    assert_union_is_the_table(&pg, &outputs, &mut [&mut survivor]);
    assert_eq!(survivor.terminate().code(), Some(0));
}

/// The value of an unlabelled metric on `/metrics`.
fn gauge(observe: std::net::SocketAddr, name: &str) -> Option<f64> {
    http_get(observe, "/metrics").1.lines().find_map(|line| {
        line.strip_prefix(name)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

fn unsafe_signal(pid: i32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// A vanished host: every packet to and from the active instance is
/// dropped (nft, no RST, no FIN), while the standby's path stays. The
/// server notices the dead lock session (keepalives and `tcp_user_timeout`
/// on it), the standby takes over and becomes ready, and every row is in
/// the union of the outputs. The server sits in a namespace of the test's
/// own: the active reaches it over the veth, where the fault is; the
/// standby and the writer over its Unix socket. Needs root (`ip netns`).
#[test]
fn a_standby_takes_over_from_a_vanished_host() {
    if !std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
    {
        eprintln!("skipped: network namespaces need root");
        return;
    }
    let ns = cdc_testcontainers::Netns::create().unwrap();
    let pg = Postgres::builder().netns(&ns).start().unwrap();
    pg.psql(DDL).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let over_the_network = format!(
        "postgresql://{}@{}:{}/{}",
        pg.superuser(),
        ns.address(),
        pg.port(),
        pg.database()
    );
    let (config_a, events_a) = instance_config(dir.path(), &pg, 1);
    let text = std::fs::read_to_string(&config_a)
        .unwrap()
        .replace(&format!("{:?}", pg.url()), &format!("{over_the_network:?}"));
    std::fs::write(&config_a, text).unwrap();
    let (config_b, events_b) = instance_config(dir.path(), &pg, 2);
    // The server's Unix socket, with cdc's default sslmode (prefer): TLS
    // does not apply there, as with libpq.
    let mut text = std::fs::read_to_string(&config_b).unwrap();
    text.push_str("\n[observe]\nlisten = \"127.0.0.1:0\"\n");
    std::fs::write(&config_b, text).unwrap();

    let mut a = Engine::start(&config_a);
    let active = wait_for_holder(&pg, None);
    assert_eq!(active, a.pid());
    wait_streaming(&mut a);
    let mut b = start_standby(&config_b);
    let observe = observe_addr(&mut b);
    let stop = Arc::new(AtomicBool::new(false));
    let writing = writer(pg.url(), stop.clone());
    wait_for_events(&events_a, 1000, &mut a);

    ns.blackhole().unwrap();
    let vanished = std::time::Instant::now();
    assert!(
        !a.log_text().contains("snapshot complete"),
        "the snapshot finished before the fault; raise ROWS:\n{}",
        a.log_text()
    );
    let took_over = wait_for_holder(&pg, Some(active));
    let locked_after = vanished.elapsed();
    assert_eq!(took_over, b.pid());
    wait_until("the standby to be ready", Duration::from_secs(120), || {
        assert!(b.is_running(), "cdc exited:\n{}", b.log_text());
        http_get(observe, "/health/ready").0 == 200
    });
    let ready_after = vanished.elapsed();
    let noticed_after = {
        let mut at = None;
        wait_until(
            "the vanished instance to notice",
            Duration::from_secs(60),
            || {
                let log = a.log_text();
                if at.is_none() && log.contains("lost the lease of replication slot 'cdc'") {
                    at = Some(vanished.elapsed());
                }
                at.is_some()
            },
        );
        at.unwrap()
    };
    eprintln!(
        "vanished host: the standby held the lock after {:.1}s and was ready after {:.1}s; \
         the vanished one had noticed by {:.1}s",
        locked_after.as_secs_f64(),
        ready_after.as_secs_f64(),
        noticed_after.as_secs_f64()
    );
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::SeqCst);
    writing.join().unwrap();
    assert_union_is_the_table(&pg, &[&events_a, &events_b], &mut [&mut a, &mut b]);
    assert!(
        b.log_text().contains("resuming snapshot"),
        "{}",
        b.log_text()
    );

    // The path comes back: the old one stays a standby.
    ns.heal().unwrap();
    wait_until(
        "the old active to stand by",
        Duration::from_secs(60),
        || {
            assert!(a.is_running(), "cdc exited:\n{}", a.log_text());
            a.log_text()
                .contains("standing by: replication slot 'cdc' is held by")
        },
    );
    assert_eq!(holder_pid(&pg), Some(b.pid()));
    assert_eq!(b.terminate().code(), Some(0));
    assert_eq!(a.terminate().code(), Some(0));
}

/// A PostgreSQL crash ends every instance's lock connection: the active
/// one stands by again, the standby waits it out, one of them takes the
/// lease back, and nothing is lost. No instance exits.
#[test]
fn a_server_restart_leaves_the_group_whole() {
    let (pg, _dir, [config_b, events_a, events_b], mut a, active) = active_and_config();
    let mut b = start_standby(&config_b);
    pg.psql("UPDATE t SET v = 1 WHERE id <= 10").unwrap();
    pg.restart().unwrap();
    let holder = wait_for_holder(&pg, None);
    assert!(holder == active || holder == b.pid(), "holder {holder}");
    pg.psql("UPDATE t SET v = 2 WHERE id <= 10").unwrap();
    assert_union_is_the_table(&pg, &[&events_a, &events_b], &mut [&mut a, &mut b]);
    assert!(a.is_running() && b.is_running());
    assert_eq!(b.terminate().code(), Some(0));
    assert_eq!(a.terminate().code(), Some(0));
}
