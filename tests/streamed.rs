//! Large transactions streamed as they are written (pgoutput version 2,
//! `streaming 'on'`): held within cdc's memory budget, spilled past it,
//! emitted whole at their commit in commit order, with rolled-back
//! savepoints and aborted transactions leaving nothing behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use cdc_testcontainers::Postgres;
use common::*;
use serde::Deserialize;

const DDL: &str = "CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL);";

/// The server streams any transaction past 64 kB of decoded changes.
fn server() -> Postgres {
    let pg = Postgres::builder()
        .setting("logical_decoding_work_mem", "64kB")
        .start()
        .unwrap();
    pg.psql(DDL).unwrap();
    pg
}

#[derive(Deserialize)]
struct Line {
    op: String,
    after: Option<Row>,
    before: Option<Row>,
    source: Source,
}

#[derive(Deserialize)]
struct Row {
    id: i64,
    v: i64,
}

#[derive(Deserialize)]
struct Source {
    table: Option<String>,
}

/// What the output says of table `t`, read line by line (millions of
/// events do not fit a `Vec<Value>` comfortably).
#[derive(Default)]
struct Output {
    /// id → value after the last event.
    state: HashMap<i64, i64>,
    creates: HashMap<i64, u32>,
    updates: HashMap<i64, u32>,
    /// Every value an event of `t` carried.
    values: HashMap<i64, u64>,
    /// id → line of its first event.
    first_line: HashMap<i64, usize>,
    lines: usize,
}

fn read_output(path: &Path) -> Output {
    let mut out = Output::default();
    let file = std::fs::File::open(path).unwrap();
    for (n, line) in BufReader::new(file).lines().enumerate() {
        let line = line.unwrap();
        out.lines += 1;
        let e: Line = serde_json::from_str(&line).unwrap();
        if e.source.table.as_deref() != Some("t") {
            continue;
        }
        let row = e.after.as_ref().or(e.before.as_ref()).unwrap();
        out.first_line.entry(row.id).or_insert(n);
        *out.values.entry(row.v).or_default() += 1;
        match e.op.as_str() {
            "c" | "r" => {
                *out.creates.entry(row.id).or_default() += 1;
                out.state.insert(row.id, row.v);
            }
            "u" => {
                *out.updates.entry(row.id).or_default() += 1;
                out.state.insert(row.id, row.v);
            }
            "d" => {
                out.state.remove(&row.id);
            }
            op => panic!("unexpected op {op}"),
        }
    }
    out
}

/// Lines written so far, counted without parsing.
fn line_count(path: &Path) -> usize {
    std::fs::read(path)
        .map(|b| b.iter().filter(|&&c| c == b'\n').count())
        .unwrap_or(0)
}

fn table(pg: &Postgres) -> HashMap<i64, i64> {
    with_client(&pg.url(), async |client| {
        client
            .query("SELECT id::bigint, v::bigint FROM t", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    })
}

/// A process's peak and current resident set, in bytes.
fn memory(pid: i32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap()
            * 1024
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// The slot's decoding statistics: (spill_bytes, stream_bytes).
fn slot_stats(pg: &Postgres) -> (i64, i64) {
    let text = pg
        .psql(
            "SELECT spill_bytes || ' ' || stream_bytes FROM pg_stat_replication_slots WHERE slot_name = 'cdc'",
        )
        .unwrap();
    let mut parts = text.split_whitespace().map(|p| p.parse::<i64>().unwrap());
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// The slot's statistics once `ready` holds of them (the server reports
/// them a little after the decoding).
fn slot_stats_once(pg: &Postgres, ready: impl Fn((i64, i64)) -> bool) -> (i64, i64) {
    let mut stats = (0, 0);
    wait_until("the slot's statistics", Duration::from_secs(30), || {
        stats = slot_stats(pg);
        ready(stats)
    });
    stats
}

/// `cdc run` on table `t` of `pg` with `extra` [source] lines, streaming:
/// its directory (keep it alive), config, events file and process.
fn capture_t(
    pg: &Postgres,
    extra: &str,
) -> (
    tempfile::TempDir,
    std::path::PathBuf,
    std::path::PathBuf,
    Engine,
) {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &pg.url(), &["public.t"], extra);
    let events = dir.path().join("events.jsonl");
    let mut engine = Engine::start(&config);
    wait_streaming(&mut engine);
    (dir, config, events, engine)
}

fn wait_for_lines(path: &Path, n: usize, engine: &mut Engine) {
    wait_until(
        &format!("{n} lines in the output"),
        Duration::from_secs(600),
        || {
            assert!(engine.is_running(), "cdc exited:\n{}", engine.log_text());
            line_count(path) >= n
        },
    );
    // Anything repeated would come right behind.
    std::thread::sleep(Duration::from_secs(1));
}

const BUDGET_MB: u64 = 16;
const BIG: i64 = 2_000_000;
const SMALL_BASE: i64 = 3_000_000;
const SMALL: i64 = 10;
const ABORTED_BASE: i64 = 5_000_000;

#[test]
fn a_two_million_row_transaction_with_rolled_back_savepoints_comes_whole_in_commit_order() {
    let pg = server();
    let (_dir, _, events, mut engine) =
        capture_t(&pg, &format!("streaming_memory_mb = {BUDGET_MB}"));
    let (start_peak, _) = memory(engine.pid());

    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let url = pg.url();
    // While the big transaction is open: another large one, streamed and
    // then rolled back, and small ones committed before the big one.
    let other = std::thread::spawn(move || {
        with_client(&url, async |client| {
            go_rx.recv().unwrap();
            client
                .batch_execute(&format!(
                    "BEGIN; INSERT INTO t SELECT g, 7 FROM generate_series({}, {}) g; ROLLBACK;",
                    ABORTED_BASE + 1,
                    ABORTED_BASE + 200_000
                ))
                .await
                .unwrap();
            for i in 1..=SMALL {
                client
                    .execute(
                        "INSERT INTO t VALUES ($1, 0)",
                        &[&((SMALL_BASE + i) as i32)],
                    )
                    .await
                    .unwrap();
            }
            done_tx.send(()).unwrap();
        })
    });
    with_client(&pg.url(), async |client| {
        client
            .batch_execute(
                "BEGIN;\
                 INSERT INTO t SELECT g, 0 FROM generate_series(1, 1000000) g;\
                 SAVEPOINT a;\
                 INSERT INTO t SELECT g, 1 FROM generate_series(1000001, 1100000) g;\
                 SAVEPOINT b;\
                 UPDATE t SET v = 9 WHERE id <= 100000;\
                 ROLLBACK TO b;\
                 ROLLBACK TO a;",
            )
            .await
            .unwrap();
        go_tx.send(()).unwrap();
        done_rx.recv().unwrap();
        client
            .batch_execute(
                "SAVEPOINT c;\
                 INSERT INTO t SELECT g, 2 FROM generate_series(1000001, 2000000) g;\
                 UPDATE t SET v = 3 WHERE id % 1000 = 0;\
                 RELEASE c;\
                 COMMIT;",
            )
            .await
            .unwrap();
    });
    other.join().unwrap();

    let updated = BIG / 1000;
    let expected_lines = (BIG + SMALL + updated) as usize;
    wait_for_lines(&events, expected_lines, &mut engine);
    let out = read_output(&events);
    let (peak, _) = memory(engine.pid());

    // Nothing lost, nothing repeated, nothing rolled back emitted.
    assert_eq!(out.lines, expected_lines, "events beyond the expected ones");
    assert_eq!(out.state, table(&pg));
    assert!(out.creates.values().all(|&n| n == 1), "a row created twice");
    assert_eq!(out.creates.len() as i64, BIG + SMALL);
    assert_eq!(out.updates.len() as i64, updated);
    assert!(out.updates.values().all(|&n| n == 1), "an update repeated");
    for rolled_back in [1, 7, 9] {
        assert_eq!(
            out.values.get(&rolled_back),
            None,
            "v = {rolled_back} was rolled back"
        );
    }
    // Commit order: the small transactions committed first.
    let last_small = (1..=SMALL)
        .map(|i| out.first_line[&(SMALL_BASE + i)])
        .max()
        .unwrap();
    let first_big = (1..=BIG).map(|id| out.first_line[&id]).min().unwrap();
    assert!(
        last_small < first_big,
        "the big transaction came before those committed first"
    );

    // The server streamed instead of spilling, and cdc kept within its
    // budget (plus its pipeline's bounded batches).
    let stats = slot_stats_once(&pg, |(_, stream)| stream > 0);
    // A stream that started again mid-transaction (a replication timeout on
    // a loaded machine) makes the server decode from the slot's restart
    // point again; it cannot stream what lies before the confirmed point,
    // so it spills that part. Only an unbroken stream must not spill.
    let log = engine.log_text();
    let starts = log.matches("INFO streaming slot=").count()
        + log.matches("replication connection restored").count();
    if starts == 1 {
        assert_eq!(stats.0, 0, "the server spilled with streaming on");
    } else {
        eprintln!(
            "the stream started again mid-transaction; the server spilled {} bytes before the confirmed point",
            stats.0
        );
    }
    let grown = peak.saturating_sub(start_peak);
    eprintln!(
        "peak RSS {} MiB, {} MiB over the start's",
        peak >> 20,
        grown >> 20
    );
    assert!(
        engine.log_text().contains(&format!(
            "past source.streaming_memory_mb = {BUDGET_MB}: read back from"
        )),
        "the transaction never went past the budget:\n{}",
        engine.log_text()
    );
    // Measured: 21 MiB over the start's with a budget of 1 MiB, 36-38 MiB
    // with 16 on a quiet machine and 50 under the whole suite's load, 11
    // MiB with streaming off (the pipeline's bounded batches alone); 284
    // MiB when the whole transaction is held. The bound is the budget plus
    // the pipeline's worst seen, with room: far below holding it all.
    assert!(
        grown < (BUDGET_MB + 64) << 20,
        "cdc's peak RSS grew by {} MiB with a budget of {BUDGET_MB} MiB:\n{}",
        grown >> 20,
        engine.log_text()
    );
    assert_eq!(engine.terminate().code(), Some(0));
}

/// The premise of the tests above: without streaming, the server spills the
/// same kind of transaction to its own disk, and sends it after the commit.
#[test]
fn with_streaming_off_the_server_spills_a_large_transaction_and_it_still_comes_whole() {
    let pg = server();
    let (_dir, _, events, mut engine) = capture_t(&pg, "streaming = \"off\"");
    pg.psql(
        "BEGIN; INSERT INTO t SELECT g, 0 FROM generate_series(1, 200000) g; \
         SAVEPOINT a; INSERT INTO t SELECT g, 1 FROM generate_series(200001, 250000) g; \
         ROLLBACK TO a; COMMIT;",
    )
    .unwrap();
    wait_for_lines(&events, 200_000, &mut engine);
    let out = read_output(&events);
    assert_eq!(out.lines, 200_000);
    assert_eq!(out.state, table(&pg));
    let stats = slot_stats_once(&pg, |(spill, _)| spill > 0);
    assert_eq!(stats.1, 0, "the server streamed with streaming off");
    assert_eq!(engine.terminate().code(), Some(0));
}

/// cdc killed while it holds blocks of an open transaction: nothing of it
/// was emitted, and the next run receives it again, whole, once.
#[test]
fn a_kill_inside_a_streamed_transaction_loses_and_repeats_nothing() {
    let pg = server();
    let (_dir, config, events, mut engine) = capture_t(&pg, "streaming_memory_mb = 1");
    pg.psql("INSERT INTO t VALUES (0, 0)").unwrap();
    wait_for_lines(&events, 1, &mut engine);

    let (commit_tx, commit_rx) = mpsc::channel::<()>();
    let url = pg.url();
    let writer = std::thread::spawn(move || {
        with_client(&url, async |client| {
            client
                .batch_execute(
                    "BEGIN; INSERT INTO t SELECT g, 5 FROM generate_series(1, 300000) g;",
                )
                .await
                .unwrap();
            commit_rx.recv().unwrap();
            client.batch_execute("COMMIT").await.unwrap();
        })
    });
    wait_until(
        "the server to stream the open transaction",
        Duration::from_secs(60),
        || slot_stats(&pg).1 > 0,
    );
    // Let cdc take in some blocks, past its budget of 1 MiB.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(line_count(&events), 1, "an uncommitted change was emitted");
    engine.kill();

    let mut engine = Engine::start(&config);
    wait_streaming(&mut engine);
    commit_tx.send(()).unwrap();
    writer.join().unwrap();
    wait_for_lines(&events, 300_001, &mut engine);
    let out = read_output(&events);
    assert_eq!(out.lines, 300_001, "events repeated");
    assert_eq!(out.state, table(&pg));
    assert!(out.creates.values().all(|&n| n == 1));
    assert_eq!(engine.terminate().code(), Some(0));
}

/// A streamed transaction that commits while a snapshot runs goes through
/// the DBLog windows like any other: its changes win over the chunks.
#[test]
fn a_streamed_transaction_committed_during_a_snapshot_wins_over_the_chunks() {
    let pg = server();
    pg.psql("INSERT INTO t SELECT g, 0 FROM generate_series(1, 200000) g")
        .unwrap();
    // `[snapshot]` after the `[source]` lines, before `[sink]`.
    let (_dir, _, events, mut engine) = capture_t(
        &pg,
        "streaming_memory_mb = 1\n[snapshot]\ninitial = true\nchunk_size = 100",
    );
    wait_for_events(&events, 2000, &mut engine);
    // Every row moves on, twice, in one transaction, and a few go.
    pg.psql(
        "BEGIN; UPDATE t SET v = v + 1; UPDATE t SET v = v + 1 WHERE id % 2 = 0; \
         DELETE FROM t WHERE id % 1000 = 0; COMMIT;",
    )
    .unwrap();
    let log = engine.log_text();
    assert!(
        !log.contains("snapshot complete"),
        "the snapshot was over before the transaction committed:\n{log}"
    );
    let out = wait_for_fold(&pg, &events, "public.t", &["id"], &mut engine);
    assert_no_time_travel(&out);
    assert!(
        engine.log_text().contains("read back from"),
        "the transaction was not streamed past the budget:\n{}",
        engine.log_text()
    );
    assert_eq!(engine.terminate().code(), Some(0));
}
