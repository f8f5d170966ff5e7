//! DBLog incremental snapshots against a real PostgreSQL, driven by INSERTs
//! into the signal table while writers keep the log busy.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::process::{Command, Stdio};
use std::time::Duration;

use cdc_testcontainers::Postgres;
use common::*;
use serde_json::Value;

#[test]
fn an_execute_snapshot_signal_emits_the_whole_table_while_writes_stream() {
    let (pg, _dir, _config, events_path, mut engine) = capture(
        "CREATE TABLE orders (id int PRIMARY KEY, status text, amount int);
         INSERT INTO orders SELECT g, 'old', g FROM generate_series(1, 5000) g;",
        &["public.orders"],
        "\n[snapshot]\nchunk_size = 700\n",
    );

    signal(
        &pg,
        "s1",
        "execute-snapshot",
        r#"{"data-collections": ["public.orders"], "type": "incremental"}"#,
    );
    // Live writes during the snapshot: they stream and win over chunk rows.
    for i in 0..30 {
        pg.psql(&format!(
            "UPDATE orders SET status = 'live{i}' WHERE id = {};
             DELETE FROM orders WHERE id = {};
             INSERT INTO orders VALUES ({}, 'new', 1);",
            1 + i * 150,
            2 + i * 150,
            10_000 + i
        ))
        .unwrap();
    }
    wait_until("snapshot complete", Duration::from_secs(120), || {
        assert!(engine.is_running(), "{}", engine.log_text());
        engine.log_text().contains("snapshot complete")
    });
    let expected = contents(&pg, "orders", &["id"]);
    wait_until("output to match the table", Duration::from_secs(60), || {
        fold(&read_events(&events_path), "orders", &["id"]) == expected
    });
    let events = read_events(&events_path);
    let reads: Vec<&Value> = events.iter().filter(|e| e["op"] == "r").collect();
    assert!(reads.len() >= 4900, "{} reads", reads.len());
    assert!(reads
        .iter()
        .all(|e| e["source"]["snapshot"] == "incremental" && e["before"].is_null()));
    // Chunk rows are emitted in key order within a chunk.
    assert!(
        reads
            .windows(2)
            .filter(|w| w[0]["after"]["id"].as_i64() > w[1]["after"]["id"].as_i64())
            .count()
            == 0
    );
    // Watermarks are not events and do not pile up in the signal table.
    assert!(!events.iter().any(|e| e["source"]["table"] == "signal"));
    let left = pg
        .psql("SELECT count(*) FROM cdc.signal WHERE type LIKE 'snapshot-window-%'")
        .unwrap();
    assert_eq!(left, "0");
    engine.terminate();
}

#[test]
fn bad_signals_get_one_line_each_and_the_stream_goes_on() {
    let (pg, _dir, _config, events_path, mut engine) = capture(
        "CREATE TABLE orders (id int PRIMARY KEY);
         CREATE TABLE keyless (v int);
         CREATE TABLE nullable (v int, w int NOT NULL);
         CREATE TABLE parts (v int NOT NULL) PARTITION BY RANGE (v);
         CREATE TABLE parts_low PARTITION OF parts FOR VALUES FROM (0) TO (10);
         CREATE TABLE uncaptured (id int PRIMARY KEY);
         CREATE TABLE ones (id int PRIMARY KEY);
         INSERT INTO ones VALUES (1);",
        &[
            "public.orders",
            "public.keyless",
            "public.nullable",
            "public.parts",
            "public.ones",
        ],
        "keyless_tables = [\"public.keyless\", \"public.nullable\", \"public.parts\"]",
    );
    pg.psql(
        r#"INSERT INTO cdc.signal VALUES ('bad-json', 'execute-snapshot', NULL);
           INSERT INTO cdc.signal (id, type) VALUES ('bad-type', 'explode');
           INSERT INTO cdc.signal VALUES ('bad-table', 'execute-snapshot', '{"data-collections": ["public.nope"]}');
           INSERT INTO cdc.signal VALUES ('uncaptured', 'execute-snapshot', '{"data-collections": ["public.uncaptured"]}');
           INSERT INTO cdc.signal VALUES ('no-column', 'execute-snapshot', '{"data-collections": ["public.keyless"], "surrogate-key": "nope"}');
           INSERT INTO cdc.signal VALUES ('null-key', 'execute-snapshot', '{"data-collections": ["public.nullable"], "surrogate-key": "v"}');
           INSERT INTO cdc.signal VALUES ('no-order', 'execute-snapshot', '{"data-collections": ["public.parts"]}');
           INSERT INTO cdc.signal VALUES ('bad-filter', 'execute-snapshot',
             '{"data-collections": ["public.orders"], "additional-conditions": [{"data-collection": "public.orders", "filter": "nosuchcolumn > 1"}]}');
           INSERT INTO cdc.signal VALUES ('escape', 'execute-snapshot',
             '{"data-collections": ["public.orders"], "additional-conditions": [{"data-collection": "public.orders", "filter": "true) OR (true"}]}');
           INSERT INTO cdc.signal VALUES ('fails-in-chunk', 'execute-snapshot',
             '{"data-collections": ["public.ones"], "additional-conditions": [{"data-collection": "public.ones", "filter": "100 / (id - 1) > 0"}]}');
           INSERT INTO orders VALUES (1);"#,
    )
    .unwrap();
    wait_for_events(&events_path, 1, &mut engine);
    wait_until("all signals reported", Duration::from_secs(30), || {
        let log = engine.log_text();
        [
            "bad-json",
            "bad-type",
            "bad-table",
            "uncaptured",
            "no-column",
            "null-key",
            "no-order",
            "bad-filter",
            "escape",
            "fails-in-chunk",
        ]
        .iter()
        .all(|id| log.contains(&format!("'{id}'")))
    });
    let log = engine.log_text();
    let line = |id: &str| {
        log.lines()
            .find(|l| l.contains(&format!("'{id}'")))
            .unwrap()
            .to_string()
    };
    assert!(
        line("bad-type").contains("unknown signal type 'explode'"),
        "{log}"
    );
    assert!(
        line("bad-table").contains("public.nope is not captured"),
        "{log}"
    );
    assert!(
        line("uncaptured").contains("public.uncaptured is not captured"),
        "{log}"
    );
    assert!(
        line("no-column")
            .contains(r#"surrogate key "nope" is not a column of public.keyless (it has v)"#),
        "{log}"
    );
    assert!(
        line("null-key").contains(r#"surrogate key "v" of public.nullable allows NULL"#),
        "{log}"
    );
    assert!(
        line("no-order").contains("public.parts has no key and is partitioned"),
        "{log}"
    );
    assert!(line("bad-filter").contains("nosuchcolumn"), "{log}");
    assert!(line("escape").contains("unbalanced"), "{log}");
    assert!(line("fails-in-chunk").contains("division by zero"), "{log}");
    // The chunk connection recovered from the failed transaction: the next
    // snapshot of the same table goes through.
    signal(
        &pg,
        "after-failure",
        "execute-snapshot",
        r#"{"data-collections": ["public.ones"]}"#,
    );
    wait_until("the retried snapshot", Duration::from_secs(30), || {
        read_events(&events_path)
            .iter()
            .any(|e| e["op"] == "r" && e["source"]["table"] == "ones")
    });
    // The stream goes on.
    pg.psql("INSERT INTO orders VALUES (2);").unwrap();
    let events = wait_for_events(&events_path, 3, &mut engine);
    assert_eq!(events.last().unwrap()["after"]["id"], 2);
    assert!(engine.is_running());
    engine.terminate();
}

#[test]
fn a_filtered_snapshot_emits_only_matching_rows() {
    let (_pg, _dir, config, events_path, mut engine) = capture(
        "CREATE TABLE orders (id int PRIMARY KEY, status text);
         INSERT INTO orders SELECT g, CASE WHEN g % 3 = 0 THEN 'open' ELSE 'closed' END FROM generate_series(1, 300) g;",
        &["public.orders"],
        "\n[snapshot]\nchunk_size = 40\n",
    );
    cdc_ok(
        &["snapshot", "--filter", "status = 'open'", "public.orders"],
        &config,
    );
    wait_until("snapshot complete", Duration::from_secs(60), || {
        engine.log_text().contains("snapshot complete")
    });
    let reads_in_sink = || {
        let events = read_events(&events_path);
        events
            .into_iter()
            .filter(|e| e["op"] == "r")
            .collect::<Vec<_>>()
    };
    wait_until(
        "every selected row in the sink",
        Duration::from_secs(30),
        || reads_in_sink().len() >= 100,
    );
    let reads = reads_in_sink();
    assert_eq!(reads.len(), 100);
    assert!(reads.iter().all(|e| e["after"]["status"] == "open"));
    engine.terminate();
}

/// docs/architecture.md, "Torn chunks": a commit streamed before the low watermark but not yet
/// visible to the chunk's snapshot (a synchronous-replication wait) must not
/// let the chunk's stale row follow the newer change.
#[test]
fn a_chunk_torn_by_a_sync_rep_wait_is_never_emitted() {
    let pg = Postgres::builder()
        .setting("synchronous_standby_names", "ghost")
        .setting("synchronous_commit", "local")
        .start()
        .unwrap();
    pg.psql(
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         INSERT INTO t SELECT g, 'old' FROM generate_series(1, 10) g;",
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &pg.url(), &["public.t"], "");
    let events_path = dir.path().join("events.jsonl");
    let mut engine = Engine::start(&config);
    wait_streaming(&mut engine);

    // This session's commit waits for the ghost standby after its commit
    // record is flushed: decoded and streamed, invisible to everyone else.
    let mut waiter = Command::new(pg.bindir().join("psql"))
        .args(["-X", "-q", "-h", "127.0.0.1", "-p", &pg.port().to_string(), "-U", "postgres", "-d", "postgres"])
        .args(["-c", "SET synchronous_commit = on; SET application_name = 'waiter'; UPDATE t SET v = 'new' WHERE id = 5;"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(
        "the waiting update to stream",
        Duration::from_secs(30),
        || {
            read_events(&events_path)
                .iter()
                .any(|e| e["after"]["id"] == 5 && e["after"]["v"] == "new")
        },
    );
    assert_eq!(
        pg.psql("SELECT v FROM t WHERE id = 5").unwrap(),
        "old",
        "still invisible"
    );

    signal(
        &pg,
        "s1",
        "execute-snapshot",
        r#"{"data-collections": ["public.t"]}"#,
    );
    wait_until(
        "a torn chunk to be discarded",
        Duration::from_secs(30),
        || engine.log_text().contains("discarded"),
    );
    // End the wait: the update becomes visible, the chunk is selected again.
    pg.psql(
        "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'waiter'",
    )
    .unwrap();
    let _ = waiter.wait();
    wait_until("snapshot complete", Duration::from_secs(60), || {
        engine.log_text().contains("snapshot complete")
    });
    let events = wait_for_fold(&pg, &events_path, "t", &["id"], &mut engine);
    let five: Vec<(String, String)> = events
        .iter()
        .filter(|e| e["after"]["id"] == 5)
        .map(|e| {
            (
                e["op"].as_str().unwrap().into(),
                e["after"]["v"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        five.first(),
        Some(&("u".to_string(), "new".to_string())),
        "{five:?}"
    );
    assert!(
        !five.iter().any(|(_, v)| v == "old"),
        "stale row emitted after the newer change: {five:?}"
    );
    engine.terminate();
}

#[test]
fn pause_resume_stop_and_status_from_the_cli() {
    let (_pg, _dir, config, events_path) = prepare(
        "CREATE TABLE a (id int PRIMARY KEY); INSERT INTO a SELECT generate_series(1, 2000);
         CREATE TABLE b (id int PRIMARY KEY); INSERT INTO b SELECT generate_series(1, 2000);",
        &["public.a", "public.b"],
        "\n[snapshot]\nchunk_size = 50\n",
    );
    let cli = |args: &[&str]| cdc_ok(args, &config);
    let mut engine = Engine::start(&config);
    wait_streaming(&mut engine);
    cli(&["snapshot", "pause"]);
    cli(&["snapshot", "public.a", "public.b"]);
    wait_until("the pause and the queue", Duration::from_secs(30), || {
        let log = engine.log_text();
        log.contains("snapshot paused") && log.contains("snapshot queued")
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        read_events(&events_path)
            .iter()
            .filter(|e| e["op"] == "r")
            .count(),
        0
    );
    let status = cli(&["status"]);
    assert!(
        status.contains("public.a") && status.contains("paused"),
        "{status}"
    );
    assert!(
        status.contains("public.b") && status.contains("queued"),
        "{status}"
    );
    cli(&["snapshot", "stop", "public.b"]);
    cli(&["snapshot", "resume"]);
    wait_until("snapshot of a complete", Duration::from_secs(60), || {
        engine.log_text().contains("snapshot complete")
    });
    wait_until(
        "every row of a in the sink",
        Duration::from_secs(60),
        || fold(&read_events(&events_path), "a", &["id"]).len() == 2000,
    );
    let events = read_events(&events_path);
    assert!(fold(&events, "b", &["id"]).is_empty(), "b was stopped");
    // Progress survives in the database: status shows it done.
    wait_until("status to show a done", Duration::from_secs(10), || {
        cli(&["status"]).contains("done")
    });
    engine.terminate();
}

/// Per key, committed states in commit order.
type History = HashMap<String, Vec<Option<i64>>>;

/// The tables of the concurrent test: name, key columns, key expression
/// from an integer, and DDL.
const TABLES: &[(&str, &[&str], &str)] = &[
    ("t_int", &["id"], "{i}"),
    ("t_uuid", &["id"], "md5('{i}')::uuid"),
    ("t_text", &["id"], "'k' || lpad('{i}', 5, '0')"),
    ("t_comp", &["a", "b"], "{i} % 7, 'x' || {i}"),
];

fn ddl() -> String {
    "CREATE TABLE t_int (id int PRIMARY KEY, v bigint);
     CREATE TABLE t_uuid (id uuid PRIMARY KEY, v bigint);
     CREATE TABLE t_text (id text PRIMARY KEY, v bigint);
     CREATE TABLE t_comp (a int, b text, v bigint, PRIMARY KEY (a, b));
     INSERT INTO t_int SELECT g, 0 FROM generate_series(1, 1500) g;
     INSERT INTO t_uuid SELECT md5(g::text)::uuid, 0 FROM generate_series(1, 1500) g;
     INSERT INTO t_text SELECT 'k' || lpad(g::text, 5, '0'), 0 FROM generate_series(1, 1500) g;
     INSERT INTO t_comp SELECT g % 7, 'x' || g, 0 FROM generate_series(1, 1500) g;"
        .to_string()
}

fn writer(url: String, table_index: usize, rounds: i64) {
    with_client(&url, async move |client| {
        let (table, _, key_expr) = TABLES[table_index];
        use rand::Rng;
        let mut rng = rand::rng();
        for round in 1..=rounds {
            let i: i64 = rng.random_range(1..1700);
            let key = key_expr.replace("{i}", &i.to_string());
            let version = (table_index as i64 + 1) * 1_000_000 + round;
            let sql = if rng.random_ratio(1, 6) {
                format!(
                    "DELETE FROM {table} WHERE ({}) = ({key})",
                    TABLES[table_index].1.join(", ")
                )
            } else {
                format!(
                    "INSERT INTO {table} VALUES ({key}, {version}) ON CONFLICT ({}) DO UPDATE SET v = excluded.v",
                    TABLES[table_index].1.join(", ")
                )
            };
            client.batch_execute(&sql).await.unwrap();
        }
    });
}

/// Per key, the states (v, or None when deleted) in output order, keeping
/// the first occurrence of each: duplicates after a restart are allowed.
fn emitted_states(events: &[Value], table: &str, key_cols: &[&str]) -> History {
    let mut out: History = HashMap::new();
    for e in events.iter().filter(|e| e["source"]["table"] == table) {
        let (row, state) = match e["op"].as_str().unwrap() {
            "d" => (&e["before"], None),
            _ => (&e["after"], Some(e["after"]["v"].as_i64().unwrap())),
        };
        let states = out.entry(key_of(row, key_cols)).or_default();
        if !states.contains(&state) || state.is_none() && states.last() != Some(&None) {
            states.push(state);
        }
    }
    out
}

#[test]
fn concurrent_writers_snapshot_signals_and_kills_keep_completeness_and_order() {
    let pg = postgres_with(&ddl());
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = TABLES.iter().map(|t| format!("public.{}", t.0)).collect();
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let config = write_config(
        dir.path(),
        &pg.url(),
        &name_refs,
        "\n[snapshot]\nchunk_size = 64\n",
    );
    let events_path = dir.path().join("events.jsonl");
    let mut engine = Engine::start(&config);
    wait_streaming(&mut engine);

    let writers: Vec<_> = (0..TABLES.len())
        .map(|i| {
            let url = pg.url();
            std::thread::spawn(move || writer(url, i, 1500))
        })
        .collect();
    use rand::Rng;
    let mut rng = rand::rng();
    let mut n = 0;
    while writers.iter().any(|w| !w.is_finished()) {
        std::thread::sleep(Duration::from_millis(rng.random_range(100..400)));
        n += 1;
        let table = &names[rng.random_range(0..names.len())];
        match rng.random_range(0..10) {
            0..=3 => signal(
                &pg,
                &format!("x{n}"),
                "execute-snapshot",
                &format!(r#"{{"data-collections": ["{table}"]}}"#),
            ),
            4 => signal(&pg, &format!("p{n}"), "pause-snapshot", "{}"),
            5 | 6 => signal(&pg, &format!("r{n}"), "resume-snapshot", "{}"),
            7 => signal(
                &pg,
                &format!("s{n}"),
                "stop-snapshot",
                &format!(r#"{{"data-collections": ["{table}"]}}"#),
            ),
            _ => {
                engine.kill();
                engine = Engine::start(&config);
            }
        }
    }
    for w in writers {
        w.join().unwrap();
    }
    // Finally: every table snapshotted to completion, no more kills.
    signal(&pg, "final-resume", "resume-snapshot", "{}");
    signal(
        &pg,
        "final",
        "execute-snapshot",
        &format!(r#"{{"data-collections": {names:?}}}"#),
    );
    let expected: Vec<BTreeMap<String, Value>> =
        TABLES.iter().map(|(t, k, _)| contents(&pg, t, k)).collect();
    wait_until(
        "every table's output to match its contents",
        Duration::from_secs(240),
        || {
            assert!(engine.is_running(), "{}", engine.log_text());
            let events = read_events(&events_path);
            TABLES
                .iter()
                .zip(&expected)
                .all(|((t, k, _), want)| &fold(&events, t, k) == want)
        },
    );
    engine.terminate();

    // No time travel: per key, the emitted states follow commit order.
    // Versions grow with commits per table, so a later state has a larger
    // version unless it is a delete.
    let events = read_events(&events_path);
    for (table, key_cols, _) in TABLES {
        for (key, states) in emitted_states(&events, table, key_cols) {
            let versions: Vec<i64> = states.iter().flatten().copied().collect();
            assert!(
                versions.windows(2).all(|w| w[0] < w[1]),
                "{table} key {key}: states go back in time: {states:?}"
            );
        }
    }
}

#[test]
fn initial_snapshot_on_first_start_only() {
    let (pg, _dir, config, events_path) = prepare(
        "CREATE TABLE a (id int PRIMARY KEY); INSERT INTO a SELECT generate_series(1, 300);
         CREATE TABLE b (k text PRIMARY KEY); INSERT INTO b SELECT 'k' || g FROM generate_series(1, 200) g;",
        &["public.a", "public.b"],
        "\n[snapshot]\ninitial = true\nchunk_size = 64\n",
    );
    let mut engine = Engine::start(&config);
    wait_until("both tables snapshotted", Duration::from_secs(60), || {
        assert!(engine.is_running(), "{}", engine.log_text());
        engine.log_text().matches("snapshot complete").count() == 2
    });
    wait_for_fold(&pg, &events_path, "a", &["id"], &mut engine);
    wait_for_fold(&pg, &events_path, "b", &["k"], &mut engine);
    assert_eq!(engine.terminate().code(), Some(0));
    // A restart does not snapshot again.
    let mut engine = Engine::start(&config);
    wait_streaming(&mut engine);
    pg.psql("INSERT INTO a VALUES (1000);").unwrap();
    let events = wait_for_events(&events_path, 501, &mut engine);
    assert_eq!(events.len(), 501, "no second initial snapshot");
    engine.terminate();
}

#[test]
fn a_sigkill_mid_snapshot_resumes_at_the_last_completed_chunk() {
    let (pg, _dir, config, events_path, mut engine) = capture(
        "CREATE TABLE big (id int PRIMARY KEY, v text);
         INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, 40000) g;",
        &["public.big"],
        "\n[snapshot]\nchunk_size = 100\n",
    );
    signal(
        &pg,
        "s1",
        "execute-snapshot",
        r#"{"data-collections": ["public.big"]}"#,
    );
    // Kill once a good part, but not all, of the table is out.
    wait_until("part of the snapshot", Duration::from_secs(60), || {
        read_events(&events_path).len() >= 5000
    });
    engine.kill();
    let before_restart = read_events(&events_path).len();
    assert!(before_restart < 40000, "snapshot finished before the kill");
    let saved = pg
        .psql("SELECT (state->'queue'->0->>'rows_emitted')::int FROM cdc.snapshot_state")
        .unwrap();
    let saved: usize = saved.parse().unwrap();
    assert!(saved > 0, "no progress saved before the kill");

    let mut engine = Engine::start(&config);
    wait_until(
        "snapshot complete after restart",
        Duration::from_secs(120),
        || {
            assert!(engine.is_running(), "{}", engine.log_text());
            engine.log_text().contains("snapshot complete")
        },
    );
    assert!(engine.log_text().contains("resuming snapshot"));
    let events = wait_for_fold(&pg, &events_path, "big", &["id"], &mut engine);
    // Resumed, not restarted: at most the unsaved tail is read twice.
    let reads = events.iter().filter(|e| e["op"] == "r").count();
    assert!(
        reads < 40000 + (before_restart - saved) + 200,
        "{reads} reads: the snapshot started over"
    );
    engine.terminate();
}

/// Keys of types other than integers; `char(n)` keys keep their padding, as
/// the log's do (a cast to text would drop it, and log events would then not
/// match their chunk rows).
#[test]
fn timestamp_numeric_and_char_keys_are_chunked_in_key_order() {
    let (pg, _dir, _config, events_path, mut engine) = capture(
        "CREATE TABLE by_time (at timestamptz PRIMARY KEY, v int);
         INSERT INTO by_time SELECT '2024-01-01'::timestamptz + g * interval '1.5 second', g FROM generate_series(1, 700) g;
         CREATE TABLE by_amount (amount numeric PRIMARY KEY, v int);
         INSERT INTO by_amount SELECT g / 7.0, g FROM generate_series(1, 700) g;
         CREATE TABLE by_code (code char(6) PRIMARY KEY, v int);
         INSERT INTO by_code SELECT lpad(g::text, 4, '0'), g FROM generate_series(1, 700) g;",
        &["public.by_time", "public.by_amount", "public.by_code"],
        "\n[snapshot]\nchunk_size = 64\n",
    );
    signal(
        &pg,
        "s1",
        "execute-snapshot",
        r#"{"data-collections": ["public.by_time", "public.by_amount", "public.by_code"]}"#,
    );
    wait_until(
        "all three snapshots complete",
        Duration::from_secs(60),
        || {
            assert!(engine.is_running(), "{}", engine.log_text());
            engine.log_text().matches("snapshot complete").count() == 3
        },
    );
    wait_until(
        "every selected row in the sink",
        Duration::from_secs(30),
        || {
            read_events(&events_path)
                .iter()
                .filter(|e| e["op"] == "r")
                .count()
                >= 2100
        },
    );
    let events = read_events(&events_path);
    for table in ["by_time", "by_amount", "by_code"] {
        let vs: Vec<i64> = events
            .iter()
            .filter(|e| e["op"] == "r" && e["source"]["table"] == table)
            .map(|e| e["after"]["v"].as_i64().unwrap())
            .collect();
        // Every row once, in key order (v grows with the key).
        assert_eq!(vs, (1..=700).collect::<Vec<_>>(), "{table}");
    }
    let first_code = events
        .iter()
        .find(|e| e["op"] == "r" && e["source"]["table"] == "by_code")
        .map(|e| e["after"]["code"].clone());
    assert_eq!(first_code, Some(serde_json::json!("0001  ")));
    engine.terminate();
}

/// A chunk reads some columns in binary, the log reads text: every type must
/// come out the same either way. The rows are streamed first, then read again
/// by a snapshot, and each row's two `after`s are compared.
#[test]
fn a_snapshot_reads_every_type_exactly_as_the_log_does() {
    let (pg, _dir, _config, events_path, mut engine) = capture(
        "CREATE TYPE mood AS ENUM ('sad', 'happy');
         CREATE TABLE t (
           id bigint PRIMARY KEY, s smallint, i int, o oid, b bool, r real, d double precision,
           n numeric, n2 numeric(12,2), txt text, vc varchar(10), ch char(3), j json, jb jsonb,
           u uuid, dt date, ts timestamp, tstz timestamptz, tm time, iv interval, by bytea,
           ia int[], ta text[], m mood, ip inet, net cidr, c1 \"char\"
         );",
        &["public.t"],
        "",
    );
    pg.psql(
        r#"INSERT INTO t VALUES
             (1, -2, 42, 4000000000, true, 1.5, 2.25, 12345678901234567890.123, 0.5, 'héllo', 'v',
              'ab', '{"a": [1, 2]}', '{"b": {"c": null}}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
              '2024-02-29', '2024-02-29 13:14:15.123456', '2024-02-29 13:14:15+02', '01:02:03.5',
              '1 day 2 hours', '\x00ff10', '{1,NULL,3}', '{"a b","c,d",NULL}', 'happy', '10.0.0.1', '10.0.0.0/8', 'x'),
             (2, 32767, -2147483648, 0, false, 'NaN', '-Infinity', 'NaN', -0.01, '', '', '',
              '[]', '[]', '00000000-0000-0000-0000-000000000000', '0044-03-15 BC',
              'infinity', '0001-01-01 00:00:00.000001+00 BC', '24:00:00', '-1 mon', '\x',
              '{}', '{}', 'sad', '::1', '2001:db8::/32', 'é'),
             (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
              NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
             (4, 0, 0, 1, true, 3.4028235e38, 1e-320, '1e-30', 9999999999.99, 'x', 'y', 'z',
              '1', '"s"', 'ffffffff-ffff-ffff-ffff-ffffffffffff', '5874897-12-31',
              '294276-12-31 23:59:59.999999', '-infinity', '00:00:00', 'PT0S', '\xdeadbeef',
              '{-1}', '{NULL}', 'happy', '192.168.1.5/24', '192.168.1.0/24', '');"#,
    )
    .unwrap();
    wait_for_events(&events_path, 4, &mut engine);
    signal(
        &pg,
        "types",
        "execute-snapshot",
        r#"{"data-collections": ["public.t"], "type": "incremental"}"#,
    );
    let events = wait_for_events(&events_path, 8, &mut engine);
    let after_of = |op: &str| -> BTreeMap<String, Value> {
        events
            .iter()
            .filter(|e| e["op"] == op)
            .map(|e| (e["after"]["id"].to_string(), e["after"].clone()))
            .collect()
    };
    let (streamed, snapshotted) = (after_of("c"), after_of("r"));
    assert_eq!(streamed.len(), 4, "{events:?}");
    for (id, row) in &streamed {
        assert_eq!(Some(row), snapshotted.get(id), "row {id}");
    }
    // The values are the typed ones, not text that happens to agree.
    assert_eq!(snapshotted["1"]["n2"], "0.50");
    assert_eq!(snapshotted["1"]["tstz"], "2024-02-29T11:14:15Z");
    assert_eq!(snapshotted["2"]["d"], "-Infinity");
    assert_eq!(snapshotted["4"]["by"], "3q2+7w==");
    assert_eq!(snapshotted["1"]["ip"], "10.0.0.1");
    engine.terminate();
}
