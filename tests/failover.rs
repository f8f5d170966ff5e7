//! PostgreSQL failover (17+): a failover slot synchronized to a physical
//! standby survives the primary's death, and cdc, given both hosts with
//! `target_session_attrs=read-write`, follows the promotion with nothing
//! lost. Before 17 there is no slot synchronization: the guards of
//! `tests/slots.rs` detect the loss instead.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cdc_testcontainers::Postgres;
use common::*;

/// Rows at start, in chunks of 10: the snapshot must still run when the
/// primary is killed, which waits for the slot's first synchronization to
/// the standby (up to the slot sync worker's 30 s nap). 60 000 rows in
/// chunks of 50 were done in 23 s, before it.
const ROWS: i64 = 40_000;
const DDL: &str = "CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL);\
                   INSERT INTO t SELECT g, 0 FROM generate_series(1, 40000) g;";

fn major(pg: &Postgres) -> i32 {
    pg.psql("SELECT current_setting('server_version_num')")
        .unwrap()
        .parse::<i32>()
        .unwrap()
        / 10_000
}

/// Writes through the host list until stopped, riding out the failover:
/// inserts of fresh ids and updates of old ones, each retried until it
/// commits somewhere.
fn writer(url: String, stop: Arc<AtomicBool>, committed: Arc<AtomicI64>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let mut next = ROWS + 1;
        let mut client: Option<tokio_postgres::Client> = None;
        while !stop.load(Ordering::SeqCst) {
            if client.as_ref().is_none_or(|c| c.is_closed()) {
                client = match tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
                    Ok((c, conn)) => {
                        tokio::spawn(conn);
                        Some(c)
                    }
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
            }
            let Some(c) = &client else { continue };
            let id = i32::try_from(next).unwrap();
            let done = c
                .batch_execute(&format!(
                    "BEGIN; INSERT INTO t VALUES ({id}, 0) ON CONFLICT (id) DO NOTHING; \
                     UPDATE t SET v = v + 1 WHERE id = {}; COMMIT;",
                    1 + id % 3000
                ))
                .await;
            match done {
                Ok(()) => {
                    committed.store(next, Ordering::SeqCst);
                    next += 1;
                }
                Err(_) => {
                    client = None;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
}

/// A primary with `DDL`, its standby synchronizing slots, and cdc's URL
/// naming both; `None` (and a line saying so) before PostgreSQL 17.
fn primary_and_standby() -> Option<(Postgres, Postgres, String)> {
    let primary = postgres_with(DDL);
    if major(&primary) < 17 {
        eprintln!(
            "skipped: slot synchronization needs PostgreSQL 17 (set CDC_TEST_POSTGRES_BINDIR)"
        );
        return None;
    }
    let standby = primary
        .start_standby("standby1", &[("sync_replication_slots", "on")])
        .unwrap();
    let hosts = format!(
        "postgresql://postgres@127.0.0.1:{},127.0.0.1:{}/postgres?target_session_attrs=read-write",
        primary.port(),
        standby.port()
    );
    Some((primary, standby, hosts))
}

/// The slot is on the standby, persistent (no longer a temporary
/// placeholder) and close behind the primary's.
fn wait_synchronized(standby: &Postgres) {
    wait_until(
        "the slot to be synchronized",
        Duration::from_secs(120),
        || {
            standby
            .psql("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'cdc' AND synced AND NOT temporary")
            .unwrap()
            == "1"
        },
    );
}

#[test]
fn cdc_follows_a_failover_to_the_promoted_standby_with_nothing_lost() {
    let Some((primary, standby, hosts)) = primary_and_standby() else {
        return;
    };
    // The primary holds logical changes back until the standby has them, so
    // cdc never sees what a promotion could lose.
    primary
        .psql("ALTER SYSTEM SET synchronized_standby_slots = 'standby1'; SELECT pg_reload_conf();")
        .unwrap();
    wait_until("the standby to stream", Duration::from_secs(60), || {
        primary
            .psql("SELECT count(*) FROM pg_stat_replication WHERE application_name = 'standby1' AND state = 'streaming'")
            .unwrap()
            == "1"
    });

    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &hosts, &["public.t"], "failover_slot = true");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[snapshot]\ninitial = true\nchunk_size = 10\n");
    std::fs::write(&config, text).unwrap();
    let events = dir.path().join("events.jsonl");

    let mut engine = Engine::start(&config);
    wait_streaming(&mut engine);
    let stop = Arc::new(AtomicBool::new(false));
    let committed = Arc::new(AtomicI64::new(0));
    let writing = {
        let (url, stop, committed) = (hosts.clone(), stop.clone(), committed.clone());
        std::thread::spawn(move || writer(url, stop, committed))
    };
    wait_for_events(&events, 500, &mut engine);
    wait_synchronized(&standby);
    let before = committed.load(Ordering::SeqCst);

    // The README says so: the primary dies under a writer and a snapshot.
    let at_kill = engine.log_text();
    primary.kill().unwrap();
    assert!(
        at_kill.contains("initial snapshot queued") && !at_kill.contains("snapshot complete"),
        "the snapshot was not running at the kill; raise ROWS:\n{at_kill}"
    );
    standby.promote().unwrap();
    wait_until(
        "writes on the promoted standby",
        Duration::from_secs(60),
        || committed.load(Ordering::SeqCst) > before + 200,
    );
    stop.store(true, Ordering::SeqCst);
    writing.join().unwrap();

    let expected = contents(&standby, "t", &["id"]);
    let mut last = Default::default();
    wait_until(
        "the output to fold to the promoted server's table",
        Duration::from_secs(120),
        || {
            assert!(engine.is_running(), "cdc exited:\n{}", engine.log_text());
            last = fold(&read_events(&events), "t", &["id"]);
            last == expected
        },
    );
    let log = engine.log_text();
    for line in log
        .lines()
        .filter(|l| l.contains("promotion") || l.contains("starting over"))
    {
        eprintln!("{line}");
    }
    assert!(
        log.contains("synchronized to this server before its promotion"),
        "{log}"
    );
    // Resumed on the promoted server from the progress saved on the old one.
    assert!(log.contains("resuming snapshot"), "{log}");
    assert!(log.contains("snapshot complete"), "{log}");
    assert!(
        !log.contains("are lost") && !log.contains("were not captured"),
        "{log}"
    );
    assert_eq!(engine.terminate().code(), Some(0), "{}", engine.log_text());
}

/// Without `synchronized_standby_slots`, cdc can read changes the standby
/// never received. After the promotion those changes exist nowhere but in
/// the sink: the guard compares what cdc read with the switch point and
/// calls it a loss: under `fail` one line and a non-zero exit, noted for
/// `cdc status`.
#[test]
fn reading_past_the_promotion_point_is_a_loss() {
    let Some((standby, mut engine, dir)) = read_past_the_promotion_point("fail") else {
        return;
    };
    let config = dir.path().join("cdc.toml");
    let status = engine.wait_exit(Duration::from_secs(120));
    let log = engine.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("exist only there"))
        .unwrap_or_else(|| panic!("no divergence line:\n{log}"));
    eprintln!("{line}");
    assert_ne!(status.code(), Some(0), "{log}");
    assert!(
        line.contains("replication slot 'cdc' was synchronized to this server, promoted at")
            && line.contains("on_slot_lost"),
        "{line}"
    );
    let status_text = cdc_ok(&["status"], &config);
    assert!(
        status_text.contains("last slot loss: diverged"),
        "{status_text}"
    );
    drop(standby);
}

/// The same divergence under `resnapshot`: the run starts over on the
/// promoted server and snapshots the table, so the output folds to the
/// promoted server's table (the changes only the old primary had are
/// overwritten by the snapshot's rows).
#[test]
fn reading_past_the_promotion_point_is_healed_by_resnapshot() {
    let Some((standby, mut engine, dir)) = read_past_the_promotion_point("resnapshot") else {
        return;
    };
    let events = dir.path().join("events.jsonl");
    let expected = contents(&standby, "t", &["id"]);
    wait_until(
        "the output to fold to the promoted server's table",
        Duration::from_secs(120),
        || {
            assert!(engine.is_running(), "cdc exited:\n{}", engine.log_text());
            fold(&read_events(&events), "t", &["id"]) == expected
        },
    );
    let log = engine.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("exist only there") && l.contains("were not captured"))
        .unwrap_or_else(|| panic!("no divergence warning:\n{log}"));
    eprintln!("{line}");
    assert_eq!(engine.terminate().code(), Some(0), "{}", engine.log_text());
}

/// cdc streams through a synchronized failover slot whose standby stopped
/// receiving; cdc reads changes past it, then the primary dies and the
/// standby is promoted. `None` before PostgreSQL 17.
fn read_past_the_promotion_point(policy: &str) -> Option<(Postgres, Engine, tempfile::TempDir)> {
    let (primary, standby, hosts) = primary_and_standby()?;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &hosts,
        &["public.t"],
        &format!("failover_slot = true\non_slot_lost = \"{policy}\""),
    );
    let events = dir.path().join("events.jsonl");
    let mut engine = Engine::start(&config);
    wait_streaming(&mut engine);
    primary.psql("UPDATE t SET v = 1 WHERE id <= 100;").unwrap();
    wait_for_events(&events, 100, &mut engine);
    wait_synchronized(&standby);
    // The standby stops receiving; the primary goes on, and cdc reads on.
    standby
        .psql("ALTER SYSTEM SET primary_conninfo = ''; SELECT pg_reload_conf();")
        .unwrap();
    wait_until(
        "the standby's WAL receiver to stop",
        Duration::from_secs(60),
        || {
            standby
                .psql("SELECT count(*) FROM pg_stat_wal_receiver")
                .unwrap()
                == "0"
        },
    );
    primary.psql("UPDATE t SET v = 2 WHERE id <= 100;").unwrap();
    wait_for_events(&events, 200, &mut engine);

    primary.kill().unwrap();
    standby.promote().unwrap();
    Some((standby, engine, dir))
}

/// A promoted standby without the slot (not a failover slot, or before
/// PostgreSQL 17): the same system on a new timeline, the slot gone. A
/// loss: `fail` stops with the line and notes it, `resnapshot` recreates
/// the slot on the promoted server and the output folds to its table.
/// Runs on every version (physical standbys need no slot sync).
#[test]
fn a_promotion_without_the_slot_is_a_loss() {
    let primary = postgres_with(DDL);
    let standby = primary.start_standby("standby1", &[]).unwrap();
    let hosts = format!(
        "postgresql://postgres@127.0.0.1:{},127.0.0.1:{}/postgres?target_session_attrs=read-write",
        primary.port(),
        standby.port()
    );
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    let with_policy = |policy: &str| {
        write_config(
            dir.path(),
            &hosts,
            &["public.t"],
            &format!("on_slot_lost = \"{policy}\"\n\n[snapshot]\ninitial = true\n"),
        )
    };
    let fail = with_policy("fail");
    let mut engine = Engine::start(&fail);
    wait_streaming(&mut engine);
    primary.psql("UPDATE t SET v = 1 WHERE id <= 50;").unwrap();
    wait_until("the table in the output", Duration::from_secs(60), || {
        assert!(engine.is_running(), "cdc exited:\n{}", engine.log_text());
        fold(&read_events(&events), "t", &["id"]) == contents(&primary, "t", &["id"])
    });
    assert_eq!(engine.terminate().code(), Some(0));
    // Changes the standby receives, and cdc never reads.
    primary.psql("UPDATE t SET v = 2 WHERE id <= 50;").unwrap();
    let replayed = primary.psql("SELECT pg_current_wal_lsn()").unwrap();
    wait_until(
        "the standby to replay them",
        Duration::from_secs(60),
        || {
            standby
                .psql(&format!(
                    "SELECT pg_last_wal_replay_lsn() >= '{replayed}'::pg_lsn"
                ))
                .unwrap()
                == "t"
        },
    );
    primary.kill().unwrap();
    standby.promote().unwrap();

    let mut engine = Engine::start(&fail);
    let status = engine.wait_exit(Duration::from_secs(120));
    let log = engine.log_text();
    assert_ne!(status.code(), Some(0), "{log}");
    let line = log
        .lines()
        .find(|l| l.contains("timeline 1, but the server is system") && l.contains("timeline 2"))
        .unwrap_or_else(|| panic!("no timeline line:\n{log}"));
    assert!(
        line.contains("replication slot 'cdc'") && line.contains("are lost"),
        "{line}"
    );
    eprintln!("fail: {line}");
    let status_text = cdc_ok(&["status"], &fail);
    assert!(
        status_text.contains("last slot loss: different server"),
        "{status_text}"
    );

    let resnapshot = with_policy("resnapshot");
    let mut engine = Engine::start(&resnapshot);
    wait_streaming(&mut engine);
    standby.psql("UPDATE t SET v = 3 WHERE id = 7;").unwrap();
    let expected = contents(&standby, "t", &["id"]);
    wait_until(
        "the output to fold to the promoted server's table",
        Duration::from_secs(120),
        || {
            assert!(engine.is_running(), "cdc exited:\n{}", engine.log_text());
            fold(&read_events(&events), "t", &["id"]) == expected
        },
    );
    let log = engine.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("timeline 2") && l.contains("were not captured"))
        .unwrap_or_else(|| panic!("no resnapshot warning:\n{log}"));
    eprintln!("resnapshot: {line}");
    assert_eq!(engine.terminate().code(), Some(0));
}

/// `cdc check` with `failover_slot` reads both sides of slot
/// synchronization: the primary's `synchronized_standby_slots` and each
/// standby of the URL's host list, with a line for what is right and the
/// fix for what is not.
#[test]
fn check_reports_the_failover_setup_of_the_primary_and_each_standby() {
    let Some((primary, standby, hosts)) = primary_and_standby() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &hosts, &["public.t"], "failover_slot = true");
    let check = || {
        let out = cdc_output(&["check"], &config);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        eprintln!("{text}");
        (out.status.code(), text)
    };
    let standby_at = format!("standby 127.0.0.1:{}", standby.port());

    // Nothing named on the primary: the standby's slot is not waited for.
    let (_, text) = check();
    assert!(
        text.contains("warning: failover slot 'cdc': synchronized_standby_slots is empty"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "warning: {standby_at} streams through physical slot 'standby1', which synchronized_standby_slots on the primary does not name"
        )),
        "{text}"
    );

    // Set up right: a line for each side.
    primary
        .psql("ALTER SYSTEM SET synchronized_standby_slots = 'standby1'; SELECT pg_reload_conf();")
        .unwrap();
    wait_until("the standby to stream", Duration::from_secs(60), || {
        primary
            .psql("SELECT active FROM pg_replication_slots WHERE slot_name = 'standby1'")
            .unwrap()
            == "t"
    });
    let (code, text) = check();
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("info: failover slot 'cdc': the primary holds changes back until the standbys' slots standby1 have them"),
        "{text}"
    );
    assert!(
        text.contains(&format!("info: {standby_at} keeps failover slot 'cdc' (sync_replication_slots = on, hot_standby_feedback = on, its slot 'standby1' in synchronized_standby_slots)")),
        "{text}"
    );

    // The standby stops synchronizing slots; a second named slot has no
    // standby streaming through it.
    standby
        .psql("ALTER SYSTEM SET sync_replication_slots = off; SELECT pg_reload_conf();")
        .unwrap();
    primary
        .psql("SELECT pg_create_physical_replication_slot('spare'); ALTER SYSTEM SET synchronized_standby_slots = 'standby1, spare'; SELECT pg_reload_conf();")
        .unwrap();
    wait_until(
        "the standby's setting to apply",
        Duration::from_secs(30),
        || standby.psql("SHOW sync_replication_slots").unwrap() == "off",
    );
    let (_, text) = check();
    assert!(
        text.contains(&format!(
            "warning: {standby_at}: sync_replication_slots is off, so it does not keep failover slot 'cdc'"
        )),
        "{text}"
    );
    assert!(
        text.contains("warning: synchronized_standby_slots names 'spare', but no standby streams through it now"),
        "{text}"
    );

    // A slot cdc created earlier without FAILOVER.
    primary
        .psql("SELECT pg_create_logical_replication_slot('cdc', 'pgoutput')")
        .unwrap();
    let (_, text) = check();
    assert!(
        text.contains("warning: replication slot 'cdc' exists without FAILOVER"),
        "{text}"
    );
}
