//! The slot lost while cdc was stopped (dropped, invalidated, advanced, a
//! different server behind the URL): `on_slot_lost = "fail"` exits non-zero
//! with one line naming the slot, `"resnapshot"` recovers the table.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use cdc_testcontainers::Postgres;
use common::*;

const DDL: &str = "CREATE TABLE t (id int PRIMARY KEY, v text);
     INSERT INTO t SELECT i, 'a' || i FROM generate_series(1, 20) i;";

fn config_with(dir: &Path, pg: &Postgres, policy: &str) -> std::path::PathBuf {
    write_config(
        dir,
        &pg.url(),
        &["public.t"],
        &format!("on_slot_lost = \"{policy}\"\n\n[snapshot]\ninitial = true\n"),
    )
}

/// Start with the initial snapshot, stream a few changes, stop cleanly.
fn first_run(pg: &Postgres, config: &Path, events: &Path) {
    let mut engine = Engine::start(config);
    wait_streaming(&mut engine);
    pg.psql("INSERT INTO t VALUES (21, 'live'); UPDATE t SET v = 'live' WHERE id = 1;")
        .unwrap();
    wait_until("the table in the output", Duration::from_secs(60), || {
        assert!(engine.is_running(), "cdc exited:\n{}", engine.log_text());
        fold(&read_events(events), "t", &["id"]) == contents(pg, "t", &["id"])
    });
    assert_eq!(engine.terminate().code(), Some(0));
}

/// Rows that change while cdc is stopped: only a snapshot brings them.
fn change_while_stopped(pg: &Postgres) {
    pg.psql(
        "INSERT INTO t SELECT i, 'gap' || i FROM generate_series(100, 130) i;
         UPDATE t SET v = 'gap' WHERE id BETWEEN 2 AND 10;",
    )
    .unwrap();
}

/// `fail`: a non-zero exit with the guard's line, which names the slot.
fn assert_fails(config: &Path, needle: &str) -> String {
    let mut engine = Engine::start(config);
    let status = engine.wait_exit(Duration::from_secs(60));
    let log = engine.log_text();
    assert_ne!(status.code(), Some(0), "cdc should refuse to start:\n{log}");
    let line = log
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?}:\n{log}"))
        .to_string();
    assert!(line.contains("replication slot 'cdc'"), "{line}");
    assert!(!log.contains("reconnecting"), "{log}");
    eprintln!("fail: {line}");
    line
}

/// `resnapshot`: the warning line, then the output folds to the table.
fn assert_recovers(pg: &Postgres, config: &Path, events: &Path, needle: &str) {
    let mut engine = Engine::start(config);
    wait_streaming(&mut engine);
    // Changes after the restart stream as usual meanwhile.
    pg.psql("UPDATE t SET v = 'after' WHERE id = 3; INSERT INTO t VALUES (200, 'after');")
        .unwrap();
    wait_until("the table in the output", Duration::from_secs(90), || {
        assert!(engine.is_running(), "cdc exited:\n{}", engine.log_text());
        fold(&read_events(events), "t", &["id"]) == contents(pg, "t", &["id"])
    });
    let log = engine.log_text();
    let line = log
        .lines()
        .find(|l| l.contains(needle) && l.contains("were not captured"))
        .unwrap_or_else(|| panic!("no warning with {needle:?}:\n{log}"));
    assert!(line.contains("WARN"), "{line}");
    eprintln!("resnapshot: {line}");
    assert_eq!(engine.terminate().code(), Some(0));
}

fn status(config: &Path) -> String {
    cdc_ok(&["status"], config)
}

/// `cdc status` names `guard` as the last slot loss.
fn assert_last_loss(config: &Path, guard: &str) {
    let text = status(config);
    assert!(text.contains(&format!("last slot loss: {guard}")), "{text}");
}

/// The number right after `label` in `text` (`replication lag 123 bytes`).
fn number_after(text: &str, label: &str) -> i64 {
    let at = text
        .find(label)
        .unwrap_or_else(|| panic!("no {label:?} in {text}"));
    text[at + label.len()..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number after {label:?} in {text}"))
}

/// cdc streams (the initial snapshot is out), then is frozen while its
/// walsender is terminated, so the slot is free while cdc cannot
/// reconnect; rows change and `slot_sql` happens to the slot; then cdc is
/// thawed and reconnects.
fn slot_changed_while_disconnected(
    policy: &str,
    slot_sql: &str,
) -> (Postgres, tempfile::TempDir, std::path::PathBuf, Engine) {
    let (pg, dir, _, events) = prepare(DDL, &["public.t"], "");
    let config = config_with(dir.path(), &pg, policy);
    let mut engine = Engine::start(&config);
    wait_streaming(&mut engine);
    wait_until(
        "the snapshot in the output",
        Duration::from_secs(60),
        || {
            assert!(engine.is_running(), "cdc exited:\n{}", engine.log_text());
            fold(&read_events(&events), "t", &["id"]) == contents(&pg, "t", &["id"])
        },
    );
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(engine.pid(), libc::SIGSTOP);
    }
    pg.psql("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = 'cdc' AND active")
        .unwrap();
    wait_until("the slot to be free", Duration::from_secs(30), || {
        pg.psql("SELECT active FROM pg_replication_slots WHERE slot_name = 'cdc'")
            .unwrap()
            == "f"
    });
    change_while_stopped(&pg);
    pg.psql(slot_sql).unwrap();
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(engine.pid(), libc::SIGCONT);
    }
    (pg, dir, events, engine)
}

/// Advanced behind cdc's back while its connection was down: the reconnect
/// finds it and cdc exits with the line (`fail`), noted for `cdc status`;
/// the next start with `resnapshot` recovers the table.
#[test]
fn a_slot_advanced_while_the_connection_is_down_is_a_loss() {
    let (pg, dir, events, mut engine) = slot_changed_while_disconnected(
        "fail",
        "SELECT pg_replication_slot_advance('cdc', pg_current_wal_lsn())",
    );
    let exit = engine.wait_exit(Duration::from_secs(60));
    let log = engine.log_text();
    assert_ne!(exit.code(), Some(0), "{log}");
    let line = log
        .lines()
        .find(|l| l.contains("behind cdc's back while its connection was down"))
        .unwrap_or_else(|| panic!("no advance line:\n{log}"));
    assert!(
        line.contains("replication slot 'cdc'") && line.contains("are lost"),
        "{line}"
    );
    eprintln!("fatal: {line}");
    let fail = config_with(dir.path(), &pg, "fail");
    assert_last_loss(&fail, "slot advanced");
    let resnapshot = config_with(dir.path(), &pg, "resnapshot");
    assert_recovers(&pg, &resnapshot, &events, "was advanced");
}

/// Dropped while cdc's connection was down: with `resnapshot` the same run
/// starts over, recreates the slot and snapshots the table.
#[test]
fn a_slot_dropped_while_the_connection_is_down_is_healed_by_resnapshot() {
    let (pg, _dir, events, mut engine) =
        slot_changed_while_disconnected("resnapshot", "SELECT pg_drop_replication_slot('cdc')");
    pg.psql("UPDATE t SET v = 'after' WHERE id = 4; INSERT INTO t VALUES (400, 'after');")
        .unwrap();
    let expected = contents(&pg, "t", &["id"]);
    wait_until("the table in the output", Duration::from_secs(120), || {
        assert!(engine.is_running(), "cdc exited:\n{}", engine.log_text());
        fold(&read_events(&events), "t", &["id"]) == expected
    });
    let log = engine.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("is gone although cdc acknowledged"))
        .unwrap_or_else(|| panic!("no line for the dropped slot:\n{log}"));
    eprintln!("resnapshot: {line}");
    assert!(log.contains("starting over"), "{log}");
    assert!(log.contains("were not captured"), "{log}");
    assert_eq!(engine.terminate().code(), Some(0));
}

#[test]
fn dropped_slot_fails_then_resnapshots() {
    let (pg, dir, _, events) = prepare(DDL, &["public.t"], "");
    let fail = config_with(dir.path(), &pg, "fail");
    first_run(&pg, &fail, &events);
    pg.psql("SELECT pg_drop_replication_slot('cdc')").unwrap();
    change_while_stopped(&pg);

    assert_fails(&fail, "is gone");
    assert_last_loss(&fail, "slot missing");
    let resnapshot = config_with(dir.path(), &pg, "resnapshot");
    assert_recovers(&pg, &resnapshot, &events, "is gone");
    let status = status(&resnapshot);
    assert!(status.contains("last slot loss: slot missing"), "{status}");
    assert!(status.contains("wal_status reserved"), "{status}");
}

/// A cluster that keeps at most 64 MB of WAL for a slot, with `t` and an
/// uncaptured table to write WAL into.
fn small_wal_cluster() -> Postgres {
    let pg = Postgres::builder()
        .setting("max_slot_wal_keep_size", "64MB")
        .setting("max_wal_size", "32MB")
        .setting("min_wal_size", "32MB")
        .setting("wal_keep_size", "0")
        .start()
        .unwrap();
    pg.psql(DDL).unwrap();
    pg.psql("CREATE TABLE junk (b text); ALTER TABLE junk ALTER b SET STORAGE EXTERNAL;")
        .unwrap();
    pg
}

/// Uncompressed 32 kB rows into the uncaptured table, ~32 MB a round, until
/// a checkpoint removes WAL the slot still needs.
fn write_wal_until_lost(pg: &Postgres) {
    let mut rounds = 0;
    loop {
        let status = pg
            .psql("SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'cdc'")
            .unwrap();
        if status.trim() == "lost" {
            return;
        }
        rounds += 1;
        assert!(rounds < 40, "slot never lost: wal_status {status}");
        pg.psql(
            "INSERT INTO junk SELECT string_agg(md5(random()::text), '') \
             FROM generate_series(1, 1000) g, generate_series(1, 1000) r GROUP BY r; \
             SELECT pg_switch_wal(); CHECKPOINT; TRUNCATE junk;",
        )
        .unwrap();
    }
}

#[test]
fn invalidated_slot_fails_then_resnapshots() {
    let pg = small_wal_cluster();
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    let fail = config_with(dir.path(), &pg, "fail");
    first_run(&pg, &fail, &events);
    change_while_stopped(&pg);

    // What status shows of a slot that still holds WAL for cdc: the lag
    // of the changes made while it was stopped, and what is left of 64 MB.
    let before = status(&fail);
    let lag = number_after(&before, "replication lag ");
    assert!(lag > 0, "{before}");
    let safe = number_after(&before, "safe_wal_size ");
    assert!(safe > 0 && safe <= 80 << 20, "{before}");
    eprintln!("{before}");
    write_wal_until_lost(&pg);

    assert_fails(&fail, "was invalidated");
    assert_last_loss(&fail, "slot invalidated");
    let resnapshot = config_with(dir.path(), &pg, "resnapshot");
    assert_recovers(&pg, &resnapshot, &events, "was invalidated");
}

#[test]
fn advanced_slot_warns_and_resnapshots() {
    let (pg, dir, _, events) = prepare(DDL, &["public.t"], "");
    let fail = config_with(dir.path(), &pg, "fail");
    first_run(&pg, &fail, &events);
    change_while_stopped(&pg);
    pg.psql("SELECT pg_replication_slot_advance('cdc', pg_current_wal_lsn())")
        .unwrap();

    assert_fails(&fail, "was advanced");
    assert_last_loss(&fail, "slot advanced");
    let resnapshot = config_with(dir.path(), &pg, "resnapshot");
    assert_recovers(&pg, &resnapshot, &events, "was advanced");
}

/// A clean restart with nothing lost fires no guard.
#[test]
fn clean_restart_fires_no_guard() {
    let (pg, dir, _, events) = prepare(DDL, &["public.t"], "");
    let fail = config_with(dir.path(), &pg, "fail");
    first_run(&pg, &fail, &events);
    pg.psql("UPDATE t SET v = 'stopped' WHERE id = 4").unwrap();
    let mut engine = Engine::start(&fail);
    wait_streaming(&mut engine);
    wait_until("the table in the output", Duration::from_secs(60), || {
        assert!(engine.is_running(), "cdc exited:\n{}", engine.log_text());
        fold(&read_events(&events), "t", &["id"]) == contents(&pg, "t", &["id"])
    });
    assert_eq!(engine.terminate().code(), Some(0));
    assert!(!engine.log_text().contains("were not captured"));
    assert_last_loss(&fail, "none");
}

#[test]
fn different_cluster_behind_the_url_is_a_loss() {
    let (first, dir, _, events) = prepare(DDL, &["public.t"], "");
    let config = config_with(dir.path(), &first, "fail");
    first_run(&first, &config, &events);
    let record = first
        .psql(
            "SELECT format('INSERT INTO cdc.positions (slot, system_identifier, timeline, lsn, clean) \
             VALUES (%L, %L, %s, %L, %L)', slot, system_identifier, timeline, lsn, clean) \
             FROM cdc.positions",
        )
        .unwrap();
    let port = first.port();
    drop(first);

    // Another cluster on the same port, its cdc schema copied from the
    // first (as a logical dump and restore would): the same URL and config.
    let second = Postgres::builder().port(port).start().unwrap();
    second.psql(DDL).unwrap();
    second
        .psql(
            "CREATE SCHEMA cdc; CREATE TABLE cdc.positions (slot text PRIMARY KEY, \
             system_identifier text NOT NULL, timeline bigint NOT NULL, lsn pg_lsn NOT NULL, \
             clean boolean NOT NULL DEFAULT false, written_at timestamptz NOT NULL DEFAULT now(), \
             last_loss text);",
        )
        .unwrap();
    second.psql(record.trim()).unwrap();
    change_while_stopped(&second);

    // The consumer of the second cluster's output starts afresh.
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    let fail = config_with(dir.path(), &second, "fail");
    assert!(std::fs::read_to_string(&fail)
        .unwrap()
        .contains(&format!(":{port}/")));
    assert_fails(&fail, "was recorded on system");
    assert_last_loss(&fail, "different server");
    let resnapshot = config_with(dir.path(), &second, "resnapshot");
    assert_recovers(&second, &resnapshot, &events, "was recorded on system");
}

/// `cdc run` with `policy`, frozen (so it acknowledges nothing) while rows
/// change and its slot is invalidated, then thawed.
fn invalidated_while_frozen(
    policy: &str,
) -> (Postgres, tempfile::TempDir, std::path::PathBuf, Engine) {
    let pg = small_wal_cluster();
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    let config = config_with(dir.path(), &pg, policy);
    let mut engine = Engine::start(&config);
    wait_streaming(&mut engine);
    change_while_stopped(&pg);
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(engine.pid(), libc::SIGSTOP);
    }
    // The checkpointer terminates the walsender holding the slot, then
    // invalidates it.
    write_wal_until_lost(&pg);
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(engine.pid(), libc::SIGCONT);
    }
    (pg, dir, events, engine)
}

/// Invalidated while cdc runs (frozen, so it acknowledges nothing): the
/// reconnect finds the slot invalidated and cdc exits, no retry loop; the
/// next start with `resnapshot` recovers.
#[test]
fn slot_invalidated_while_streaming_is_fatal() {
    let (pg, dir, events, mut engine) = invalidated_while_frozen("fail");
    let exit = engine.wait_exit(Duration::from_secs(60));
    let log = engine.log_text();
    assert_ne!(exit.code(), Some(0), "{log}");
    let line = log
        .lines()
        .find(|l| l.contains("was invalidated while cdc streamed"))
        .unwrap_or_else(|| panic!("no invalidation line:\n{log}"));
    assert!(line.contains("replication slot 'cdc'"), "{line}");
    eprintln!("fatal: {line}");
    assert!(log.matches("reconnecting").count() <= 1, "{log}");
    // Noted as it happened, before any next start.
    let fail = config_with(dir.path(), &pg, "fail");
    assert_last_loss(&fail, "slot invalidated");
    // The next start finds it lost and recovers.
    let resnapshot = config_with(dir.path(), &pg, "resnapshot");
    assert_recovers(&pg, &resnapshot, &events, "was invalidated");
}

/// Two captured tables: each is re-snapshotted between its own markers.
const TWO_TABLES: &str = "CREATE TABLE t (id int PRIMARY KEY, v text);
     INSERT INTO t SELECT i, 'a' || i FROM generate_series(1, 20) i;
     CREATE TABLE u (id int PRIMARY KEY, v text);
     INSERT INTO u SELECT i, 'u' || i FROM generate_series(1, 20) i;";

#[test]
fn deletes_in_the_gap_are_swept_between_resync_markers() {
    let tables = ["public.t", "public.u"];
    let (pg, dir, _, events) = prepare(TWO_TABLES, &tables, "");
    let resnapshot = write_config(
        dir.path(),
        &pg.url(),
        &tables,
        "on_slot_lost = \"resnapshot\"\n\n[snapshot]\ninitial = true\n",
    );
    first_run(&pg, &resnapshot, &events);
    let acknowledged = pg
        .psql("SELECT lsn FROM cdc.positions WHERE slot = 'cdc'")
        .unwrap();
    pg.psql("SELECT pg_drop_replication_slot('cdc')").unwrap();
    // Deletes, updates and inserts the log will never show.
    pg.psql(
        "DELETE FROM t WHERE id BETWEEN 5 AND 9;
         UPDATE t SET v = 'gap' WHERE id BETWEEN 10 AND 12;
         INSERT INTO t SELECT i, 'gap' || i FROM generate_series(100, 110) i;
         DELETE FROM u WHERE id BETWEEN 1 AND 3;
         UPDATE u SET v = 'gap' WHERE id = 4;",
    )
    .unwrap();
    let mut engine = Engine::start(&resnapshot);
    wait_streaming(&mut engine);
    pg.psql("DELETE FROM t WHERE id = 13; INSERT INTO t VALUES (300, 'after'); DELETE FROM u WHERE id = 5;")
        .unwrap();
    let expected_t = contents(&pg, "t", &["id"]);
    let expected_u = contents(&pg, "u", &["id"]);
    wait_until(
        "the sweep to match both tables",
        Duration::from_secs(90),
        || {
            assert!(engine.is_running(), "cdc exited:\n{}", engine.log_text());
            let all = read_events(&events);
            fold_with_sweep(&all, "public.t", "id") == expected_t
                && fold_with_sweep(&all, "public.u", "id") == expected_u
        },
    );
    let all = read_events(&events);
    let markers = resync_markers(&all);
    for table in tables {
        let phases: Vec<&str> = markers
            .iter()
            .filter(|m| m["table"] == table)
            .map(|m| m["phase"].as_str().unwrap())
            .collect();
        assert_eq!(phases, ["begin", "end"], "{table}: {markers:?}");
    }
    // Each begin names the range the log lost: from what cdc had
    // acknowledged to where the new slot starts.
    for begin in markers.iter().filter(|m| m["phase"] == "begin") {
        let lost = begin["lost"].as_str().unwrap();
        let (from, to) = lost.split_once('-').unwrap();
        assert_eq!(from, acknowledged, "{begin}");
        let ordered = pg
            .psql(&format!("SELECT '{from}'::pg_lsn < '{to}'::pg_lsn"))
            .unwrap();
        assert_eq!(ordered, "t", "{begin}");
    }
    // Without the sweep the rows deleted in the gap linger.
    let plain = fold(&all, "t", &["id"]);
    assert!(plain.contains_key("5") && !expected_t.contains_key("5"));
    assert_eq!(engine.terminate().code(), Some(0));
}

/// The content of every `cdc.resync` marker, in output order.
fn resync_markers(events: &[serde_json::Value]) -> Vec<serde_json::Value> {
    use base64::Engine as _;
    events
        .iter()
        .filter(|e| e["op"] == "m" && e["message"]["prefix"] == "cdc.resync")
        .map(|e| {
            let content = base64::engine::general_purpose::STANDARD
                .decode(e["message"]["content"].as_str().unwrap())
                .unwrap();
            serde_json::from_slice(&content).unwrap()
        })
        .collect()
}

/// `failover_slot`: on PostgreSQL 17 the slot is created with FAILOVER and
/// `check` names the standby settings to make; before 17 it is refused in
/// one line.
#[test]
fn failover_slots_on_17_and_a_clear_refusal_before() {
    let (pg, dir, _, events) = prepare(DDL, &["public.t"], "");
    let config = write_config(dir.path(), &pg.url(), &["public.t"], "failover_slot = true");
    let version: i32 = pg
        .psql("SELECT current_setting('server_version_num')")
        .unwrap()
        .parse()
        .unwrap();
    let out = cdc_output(&["check"], &config);
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}");
    if version < 170_000 {
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert!(
            text.contains("error: source.failover_slot needs PostgreSQL 17"),
            "{text}"
        );
        return;
    }
    assert!(
        text.contains("warning: failover slot 'cdc': synchronized_standby_slots is empty")
            && text.contains("sync_replication_slots = on"),
        "{text}"
    );
    let mut engine = Engine::start(&config);
    wait_streaming(&mut engine);
    assert_eq!(
        pg.psql("SELECT failover FROM pg_replication_slots WHERE slot_name = 'cdc'")
            .unwrap(),
        "t"
    );
    pg.psql("INSERT INTO t VALUES (500, 'x');").unwrap();
    wait_for_events(&events, 1, &mut engine);
    engine.terminate();
}

/// `resync_truncate`: a truncate event of the table right after its
/// `begin` marker, so a consumer that honours truncates needs no sweep.
#[test]
fn resync_truncate_rebuilds_the_table_without_a_sweep() {
    let (pg, dir, _, events) = prepare(DDL, &["public.t"], "");
    let config = write_config(
        dir.path(),
        &pg.url(),
        &["public.t"],
        "on_slot_lost = \"resnapshot\"\nresync_truncate = true\n\n[snapshot]\ninitial = true\n",
    );
    first_run(&pg, &config, &events);
    pg.psql("SELECT pg_drop_replication_slot('cdc')").unwrap();
    pg.psql(
        "DELETE FROM t WHERE id BETWEEN 5 AND 9;
         INSERT INTO t SELECT i, 'gap' || i FROM generate_series(100, 105) i;",
    )
    .unwrap();
    let mut engine = Engine::start(&config);
    wait_streaming(&mut engine);
    let expected = contents(&pg, "t", &["id"]);
    // The plain fold (a `t` clears the table) matches: no sweep needed.
    wait_until(
        "the fold to match the table",
        Duration::from_secs(90),
        || {
            assert!(engine.is_running(), "cdc exited:\n{}", engine.log_text());
            fold(&read_events(&events), "t", &["id"]) == expected
        },
    );
    let all = read_events(&events);
    let begin = all
        .iter()
        .position(|e| e["op"] == "m" && e["message"]["prefix"] == "cdc.resync")
        .unwrap();
    assert_eq!(
        all[begin + 1]["op"],
        "t",
        "the truncate follows the begin marker"
    );
    assert_eq!(all[begin + 1]["source"]["table"], "t");
    assert_eq!(engine.terminate().code(), Some(0));
}

/// With `resnapshot`, a slot invalidated while streaming is healed in the
/// same `cdc run`: it starts over, recreates the slot and snapshots.
#[test]
fn slot_invalidated_while_streaming_is_healed_with_resnapshot() {
    let (pg, _dir, events, mut engine) = invalidated_while_frozen("resnapshot");
    pg.psql("UPDATE t SET v = 'after' WHERE id = 4; INSERT INTO t VALUES (400, 'after');")
        .unwrap();
    let expected = contents(&pg, "t", &["id"]);
    wait_until("the table in the output", Duration::from_secs(120), || {
        assert!(engine.is_running(), "cdc exited:\n{}", engine.log_text());
        fold(&read_events(&events), "t", &["id"]) == expected
    });
    let log = engine.log_text();
    assert!(log.contains("was invalidated while cdc streamed"), "{log}");
    assert!(log.contains("starting over"), "{log}");
    assert!(log.contains("were not captured"), "{log}");
    assert_eq!(engine.terminate().code(), Some(0));
}
