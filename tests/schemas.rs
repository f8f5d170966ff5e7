//! Real schemas through `cdc run` against a real PostgreSQL: partitioned
//! tables, tables without a primary key, replica identity indexes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;

#[test]
fn a_partitioned_table_is_captured_through_its_root() {
    let (pg, _dir, _config, events_path, mut engine) = capture(
        "CREATE TABLE m (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
         CREATE TABLE m_low PARTITION OF m FOR VALUES FROM (0) TO (1000);
         CREATE TABLE m_high PARTITION OF m FOR VALUES FROM (1000) TO (2000);
         INSERT INTO m SELECT g, 'before' FROM generate_series(1, 1999, 7) g;",
        &["public.m"],
        "\n[snapshot]\nchunk_size = 40\n",
    );
    let publication = pg
        .psql("SELECT pubviaroot FROM pg_publication WHERE pubname = 'cdc'")
        .unwrap();
    assert_eq!(publication, "t");
    // A live writer beside the test's own statements, on keys of its own
    // (≡ 3 mod 7) in both partitions: each write a newer `w<n>`.
    let live = LiveWriter::start(&pg.url(), Duration::from_millis(3), |n| {
        let id = 3 + 7 * ((n * 37) % 285);
        format!("INSERT INTO m VALUES ({id}, 'w{n}') ON CONFLICT (id) DO UPDATE SET v = excluded.v")
    });
    // A snapshot of the root while a writer changes every partition.
    signal(
        &pg,
        "snap-m",
        "execute-snapshot",
        r#"{"data-collections": ["public.m"]}"#,
    );
    for i in 0..40 {
        pg.psql(&format!(
            "INSERT INTO m VALUES ({}, 'low'), ({}, 'high');
             UPDATE m SET v = 'upd{i}' WHERE id = {};
             UPDATE m SET id = id + 1000 WHERE id = {};",
            2 + i * 7,
            1003 + i * 7,
            1 + i * 14,
            // Moves a row across partitions: a delete and an insert.
            498 + i * 7
        ))
        .unwrap();
    }
    // A partition created while streaming is captured from its first row.
    pg.psql(
        "CREATE TABLE m_top PARTITION OF m FOR VALUES FROM (2000) TO (3000);
         INSERT INTO m VALUES (2500, 'new partition');
         CREATE TABLE m_attached (LIKE m INCLUDING ALL);
         ALTER TABLE m ATTACH PARTITION m_attached FOR VALUES FROM (3000) TO (4000);
         INSERT INTO m VALUES (3500, 'attached partition');",
    )
    .unwrap();
    wait_until("snapshot complete", Duration::from_secs(120), || {
        assert!(engine.is_running(), "{}", engine.log_text());
        engine.log_text().contains("snapshot complete")
    });
    live.stop();
    wait_for_fold(&pg, &events_path, "m", &["id"], &mut engine);
    let events = read_events(&events_path);
    // No key of the live writer goes back to an older write, by stream
    // or by snapshot read.
    let mut newest: std::collections::HashMap<i64, u64> = Default::default();
    for e in &events {
        let Some(n) = e["after"]["v"]
            .as_str()
            .and_then(|v| v.strip_prefix('w'))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        let id = e["after"]["id"].as_i64().unwrap();
        let before = newest.insert(id, n).unwrap_or(0);
        assert!(
            n >= before,
            "m id {id} went back from w{before} to w{n}: {e}"
        );
    }
    assert!(
        newest.len() > 50,
        "the live writer's keys arrived: {}",
        newest.len()
    );
    assert!(
        events.iter().all(|e| e["source"]["table"] == "m"),
        "events under a partition's name"
    );
    for id in [2500, 3500] {
        assert!(events
            .iter()
            .any(|e| e["op"] == "c" && e["after"]["id"] == id));
    }
    engine.terminate();
}

#[test]
fn an_existing_publication_without_partition_root_is_refused_with_the_fix() {
    let (pg, _dir, config, _events) = prepare(
        "CREATE TABLE m (id int PRIMARY KEY) PARTITION BY RANGE (id);
         CREATE TABLE m1 PARTITION OF m FOR VALUES FROM (0) TO (10);
         CREATE PUBLICATION cdc FOR TABLE m;",
        &["public.m"],
        "",
    );
    let out = cdc_output(&["check"], &config);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("publication 'cdc' does not publish via the partition root")
            && text.contains("ALTER PUBLICATION \"cdc\" SET (publish_via_partition_root = true)"),
        "{text}"
    );
    drop(pg);
}

#[test]
fn a_keyless_table_is_never_published_with_updates_so_the_application_keeps_writing() {
    // An older run (or an operator) put the keyless table into the
    // publication: the application's updates already fail there.
    let (pg, _dir, _config, events_path, mut engine) = capture(
        "CREATE TABLE orders (id int PRIMARY KEY, v text);
         CREATE TABLE nopk (v int);
         INSERT INTO nopk VALUES (1), (2);
         CREATE SCHEMA cdc;
         CREATE TABLE cdc.signal (id text PRIMARY KEY, type text NOT NULL, data jsonb);
         CREATE PUBLICATION cdc FOR TABLE orders, nopk, cdc.signal;",
        &["public.orders", "public.nopk"],
        "",
    );
    let log = engine.log_text();
    assert!(
        log.contains("table public.nopk has neither a primary key nor a replica identity index")
            && log.contains("source.keyless_tables"),
        "{log}"
    );
    // The application's own writes work, and the rest is captured.
    pg.psql(
        "UPDATE nopk SET v = 3 WHERE v = 1; DELETE FROM nopk WHERE v = 2;
         INSERT INTO orders VALUES (1, 'a');",
    )
    .unwrap();
    let events = wait_for_events(&events_path, 1, &mut engine);
    assert!(events.iter().all(|e| e["source"]["table"] == "orders"));
    // Given a key while cdc runs, it is captured without a restart: its
    // rows by a snapshot, its changes from then on.
    pg.psql("ALTER TABLE nopk ADD PRIMARY KEY (v)").unwrap();
    wait_captured_later(&mut engine, "public.nopk");
    pg.psql("INSERT INTO nopk VALUES (10)").unwrap();
    wait_until("nopk's rows", Duration::from_secs(60), || {
        let events = read_events(&events_path);
        let nopk = table_events(&events, "nopk");
        nopk.iter().any(|e| e["op"] == "r" && e["after"]["v"] == 3)
            && nopk.iter().any(|e| e["after"]["v"] == 10)
    });
    assert_eq!(
        fold(&read_events(&events_path), "nopk", &["v"]),
        contents(&pg, "nopk", &["v"])
    );
    engine.terminate();
}

#[test]
fn opted_in_keyless_tables_are_captured_insert_only_or_in_full() {
    let (pg, _dir, _config, events_path, mut engine) = capture(
        "CREATE TABLE log_only (v int, note text);
         CREATE TABLE full_row (v int, note text);
         ALTER TABLE full_row REPLICA IDENTITY FULL;",
        &["public.log_only", "public.full_row"],
        "keyless_tables = [\"public.log_only\", \"public.full_row\"]",
    );
    let log = engine.log_text();
    assert!(
        log.contains("only its inserts and truncates are captured (publication 'cdc_insert_only')"),
        "{log}"
    );
    pg.psql(
        "INSERT INTO log_only VALUES (1, 'a');
         UPDATE log_only SET note = 'b';
         DELETE FROM log_only;
         INSERT INTO full_row VALUES (1, 'a');
         UPDATE full_row SET note = 'b';
         DELETE FROM full_row;
         INSERT INTO log_only VALUES (2, 'last');",
    )
    .unwrap();
    let events = wait_for_events(&events_path, 5, &mut engine);
    let ops = |table: &str| -> Vec<String> {
        table_events(&events, table)
            .iter()
            .map(|e| e["op"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ops("log_only"), ["c", "c"]);
    assert_eq!(ops("full_row"), ["c", "u", "d"]);
    let full = table_events(&events, "full_row");
    // The whole old row, and no key.
    assert_eq!(full[1]["before"]["note"], "a");
    assert_eq!(full[2]["before"]["note"], "b");
    assert!(full
        .iter()
        .all(|e| e["key"].is_null() || e.get("key").is_none()));
    engine.terminate();
}

#[test]
fn a_replica_identity_index_is_the_key_of_events_and_snapshots() {
    let (pg, _dir, _config, events_path, mut engine) = capture(
        "CREATE TABLE accounts (code text NOT NULL, region int NOT NULL, balance int);
         CREATE UNIQUE INDEX accounts_code_region ON accounts (code, region);
         ALTER TABLE accounts REPLICA IDENTITY USING INDEX accounts_code_region;
         INSERT INTO accounts SELECT 'a' || (g % 50), g / 50, g FROM generate_series(1, 500) g;",
        &["public.accounts"],
        "\n[snapshot]\nchunk_size = 37\n",
    );
    signal(
        &pg,
        "snap-accounts",
        "execute-snapshot",
        r#"{"data-collections": ["public.accounts"]}"#,
    );
    pg.psql(
        "UPDATE accounts SET balance = -1 WHERE region = 3;
         DELETE FROM accounts WHERE region = 4;",
    )
    .unwrap();
    wait_until("snapshot complete", Duration::from_secs(60), || {
        assert!(engine.is_running(), "{}", engine.log_text());
        engine.log_text().contains("snapshot complete")
    });
    wait_for_fold(
        &pg,
        &events_path,
        "accounts",
        &["code", "region"],
        &mut engine,
    );
    let events = read_events(&events_path);
    let delete = events.iter().find(|e| e["op"] == "d").unwrap();
    assert_eq!(delete["before"]["region"], 4);
    assert!(delete["before"]["code"].is_string());
    engine.terminate();
}

/// Fold by `id` where a placeholder keeps the column's previous value: what
/// a consumer building the table from the topic holds.
fn fold_with_placeholders(
    events: &[serde_json::Value],
    table: &str,
) -> std::collections::BTreeMap<i64, serde_json::Map<String, serde_json::Value>> {
    let mut state: std::collections::BTreeMap<i64, serde_json::Map<String, serde_json::Value>> =
        Default::default();
    for e in events.iter().filter(|e| e["source"]["table"] == table) {
        match e["op"].as_str().unwrap() {
            "d" => {
                state.remove(&e["before"]["id"].as_i64().unwrap());
            }
            _ => {
                let after = e["after"].as_object().unwrap();
                let id = after["id"].as_i64().unwrap();
                let mut row = state.remove(&id).unwrap_or_default();
                for (column, value) in after {
                    if value != "__debezium_unavailable_value" || !row.contains_key(column) {
                        row.insert(column.clone(), value.clone());
                    }
                }
                state.insert(id, row);
            }
        }
    }
    state
}

#[test]
fn unchanged_toast_values_inside_a_window_still_reach_the_consumer() {
    let (pg, _dir, _config, events_path, mut engine) = capture(
        "CREATE TABLE docs (id int PRIMARY KEY, n int, body text);
         ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL;
         INSERT INTO docs SELECT g, 0, repeat(md5(g::text), 100) FROM generate_series(1, 3000) g;",
        &["public.docs"],
        "\n[snapshot]\nchunk_size = 20\n",
    );
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let writer = LiveWriter::start(&pg.url(), Duration::from_millis(1), move |n| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        // Another column only: the body stays TOASTed, unchanged.
        format!("UPDATE docs SET n = {n} WHERE id = {}", seed % 3000 + 1)
    });
    signal(
        &pg,
        "snap-docs",
        "execute-snapshot",
        r#"{"data-collections": ["public.docs"]}"#,
    );
    wait_until("snapshot complete", Duration::from_secs(300), || {
        assert!(engine.is_running(), "{}", engine.log_text());
        engine.log_text().contains("snapshot complete")
    });
    assert!(writer.stop() > 0);
    let expected = contents(&pg, "docs", &["id"]);
    let mut folded = Default::default();
    let matched = (0..600).any(|_| {
        folded = fold_with_placeholders(&read_events(&events_path), "docs");
        let same = folded.len() == expected.len()
            && folded.iter().all(|(id, row)| {
                expected
                    .get(&id.to_string())
                    .is_some_and(|want| serde_json::Value::Object(row.clone()) == *want)
            });
        same || {
            std::thread::sleep(Duration::from_millis(50));
            false
        }
    });
    let missing: Vec<i64> = folded
        .iter()
        .filter(|(_, row)| row["body"] == "__debezium_unavailable_value")
        .map(|(id, _)| *id)
        .collect();
    assert!(
        missing.is_empty(),
        "keys whose body never arrived: {missing:?}"
    );
    assert!(matched, "the consumer's table differs from the database");
    // The case happened: window events carried the placeholder.
    let placeholders = read_events(&events_path)
        .iter()
        .filter(|e| e["op"] == "u" && e["after"]["body"] == "__debezium_unavailable_value")
        .count();
    assert!(placeholders > 0);
    engine.terminate();
}

#[test]
fn a_publication_this_role_cannot_alter_gets_one_line_with_the_fix() {
    let pg = postgres_with(
        "CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (id int PRIMARY KEY);
         CREATE ROLE app LOGIN REPLICATION PASSWORD 'pw';
         GRANT SELECT ON a, b TO app;
         DO $$ BEGIN EXECUTE format('GRANT CREATE ON DATABASE %I TO app', current_database()); END $$;
         CREATE PUBLICATION cdc FOR TABLE a;",
    );
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &pg.url_for("app", "pw"),
        &["public.a", "public.b"],
        "",
    );
    let out = std::process::Command::new(cdc_bin())
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    let line = stderr
        .lines()
        .find(|l| l.contains("publication 'cdc' cannot be changed by this role"))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(
        line.contains("ALTER PUBLICATION \"cdc\" ADD TABLE \"public\".\"b\"")
            && line.contains("source.publication"),
        "{line}"
    );
    assert!(!stderr.contains("pw"), "{stderr}");
}

/// The publication holds the signal table but not every captured table:
/// the rest streams, one line names the table left out and the fix, and
/// once the owner runs it the table is captured, its rows by a snapshot.
#[test]
fn a_publication_this_role_cannot_alter_leaves_one_table_out_and_captures_it_once_fixed() {
    let pg = postgres_with(&format!(
        "CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (id int PRIMARY KEY, v text);
         INSERT INTO b SELECT g, 'before' FROM generate_series(1, 30) g;
         {}",
        role_without_the_publication("a, b")
    ));
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &pg.url_for("app", "pw"),
        &["public.a", "public.b"],
        "",
    );
    let events_path = dir.path().join("events.jsonl");
    let mut engine = Engine::start(&config);
    wait_streaming(&mut engine);
    let culprit = "publication 'cdc' cannot be changed by this role";
    let log = engine.log_text();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(culprit)).collect();
    assert_eq!(lines.len(), 1, "one line:\n{log}");
    assert!(
        lines[0].contains("\"public\".\"b\" left out")
            && lines[0].contains("ALTER PUBLICATION \"cdc\" ADD TABLE \"public\".\"b\""),
        "{}",
        lines[0]
    );
    assert!(!log.contains("pw@"), "{log}");
    // The rest streams.
    pg.psql("INSERT INTO a VALUES (1)").unwrap();
    wait_for_events(&events_path, 1, &mut engine);
    // The owner runs the fix: b is captured, its earlier rows by a snapshot,
    // its later changes from the log.
    pg.psql("ALTER PUBLICATION cdc ADD TABLE b").unwrap();
    wait_captured_later(&mut engine, "public.b");
    pg.psql("UPDATE b SET v = 'after' WHERE id = 7; INSERT INTO b VALUES (31, 'streamed')")
        .unwrap();
    // Every row, each as a read or, when the update lands inside the
    // snapshot's window, as the log's event that won over the chunk row.
    wait_until("b's rows", Duration::from_secs(60), || {
        let events = read_events(&events_path);
        let ids: std::collections::HashSet<i64> = table_events(&events, "b")
            .iter()
            .filter_map(|e| e["after"]["id"].as_i64())
            .collect();
        // The fold too: the update may follow the read of its row.
        (1..=31).all(|id| ids.contains(&id))
            && fold(&events, "b", &["id"]) == contents(&pg, "b", &["id"])
    });
    let events = read_events(&events_path);
    assert_eq!(
        fold(&events, "b", &["id"]),
        contents(&pg, "b", &["id"]),
        "a consumer of b's events has the table"
    );
    assert_eq!(engine.log_text().matches(culprit).count(), 1, "one line");
    engine.terminate();
}

/// PostgreSQL publishes no event, through the root, for a `TRUNCATE` of one
/// partition, an `ATTACH` of a table with rows, or a `DETACH`: cdc's
/// partition watcher fills in what it can, under a live writer.
#[test]
fn a_truncated_or_attached_partition_reaches_consumers_and_a_detached_one_is_named() {
    let (pg, _dir, _config, events_path, mut engine) = capture(
        "CREATE TABLE m (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
         CREATE TABLE m_a PARTITION OF m FOR VALUES FROM (0) TO (1000);
         CREATE TABLE m_b PARTITION OF m FOR VALUES FROM (1000) TO (2000);
         CREATE TABLE m_c PARTITION OF m FOR VALUES FROM (2000) TO (3000);
         INSERT INTO m SELECT g, 'old' FROM generate_series(1, 2999, 3) g;
         CREATE TABLE m_new (id int PRIMARY KEY, v text);
         INSERT INTO m_new SELECT g, 'attached' FROM generate_series(3000, 3050) g;",
        &["public.m"],
        "\n[snapshot]\nchunk_size = 100\n",
    );
    // Ids 2001, 2002, …, 2998, then 2001 again.
    let writer = LiveWriter::start(&pg.url(), Duration::from_millis(5), |n| {
        let id = 2001 + (n - 1) % 998;
        format!("INSERT INTO m VALUES ({id}, 'live') ON CONFLICT (id) DO UPDATE SET v = 'live'")
    });
    wait_for_events(&events_path, 20, &mut engine);
    // A partition truncated: its rows leave without an event, so the root
    // is snapshotted again between resync markers.
    pg.psql("TRUNCATE m_a;").unwrap();
    wait_until("the resync of m", Duration::from_secs(60), || {
        assert!(engine.is_running(), "{}", engine.log_text());
        let log = engine.log_text();
        log.contains("partition public.m_a truncated or rewritten")
            && log.contains("snapshot complete")
    });
    // A table attached with its rows: a snapshot of that partition.
    pg.psql("ALTER TABLE m ATTACH PARTITION m_new FOR VALUES FROM (3000) TO (4000);")
        .unwrap();
    wait_until("the attached rows", Duration::from_secs(60), || {
        read_events(&events_path)
            .iter()
            .filter(|e| e["op"] == "r" && e["after"]["v"] == "attached")
            .count()
            == 51
    });
    writer.stop();
    // A consumer that follows the resync markers has exactly the table.
    let expected = contents(&pg, "m", &["id"]);
    wait_until(
        "the sweep to match the table",
        Duration::from_secs(60),
        || fold_with_sweep(&read_events(&events_path), "public.m", "id") == expected,
    );
    // A detached partition is named, with what consumers see.
    pg.psql("ALTER TABLE m DETACH PARTITION m_b;").unwrap();
    wait_until("the detach named", Duration::from_secs(30), || {
        engine
            .log_text()
            .contains("partition public.m_b left public.m (detached or dropped)")
    });
    engine.terminate();
}
