//! Table patterns and tables added later, through `cdc run` against a real
//! PostgreSQL: expansion at start, tables created while streaming (under a
//! writer, nothing lost), keyless tables created later, and
//! `snapshot.new_tables` across a restart with a config line added.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::Value;

/// Events of `schema.table`, in file order.
fn events_of<'a>(events: &'a [Value], schema: &str, table: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["source"]["schema"] == schema && e["source"]["table"] == table)
        .collect()
}

/// The tables of publication `name`, as `schema.table`.
fn published(pg: &cdc_testcontainers::Postgres, name: &str) -> Vec<String> {
    let text = pg
        .psql(&format!(
            "SELECT string_agg(schemaname || '.' || tablename, ',' ORDER BY 1) \
             FROM pg_publication_tables WHERE pubname = '{name}'"
        ))
        .unwrap();
    let mut tables: Vec<String> = text
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    tables.sort();
    tables
}

/// Wait until folding the output gives exactly the table, keyed as the
/// tests' tables are.
fn wait_for_table(
    pg: &cdc_testcontainers::Postgres,
    events: &std::path::Path,
    table: &str,
    engine: &mut Engine,
) {
    let key = if table.ends_with("late_nokey") {
        "v"
    } else {
        "id"
    };
    wait_for_fold(pg, events, table, &[key], engine);
}

#[test]
fn patterns_expand_to_matching_tables_quoted_names_stay_exact_partitions_through_their_root() {
    let (pg, _dir, config, events_path, mut engine) = capture(
        r#"CREATE SCHEMA sales;
         CREATE TABLE sales.order_a (id int PRIMARY KEY, v text);
         CREATE TABLE sales.order_b (id int PRIMARY KEY, v text);
         CREATE TABLE sales.customers (id int PRIMARY KEY, v text);
         CREATE TABLE sales.order_p (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
         CREATE TABLE sales.order_p1 PARTITION OF sales.order_p FOR VALUES FROM (0) TO (1000);
         CREATE TABLE sales.order_nokey (id int, v text);
         CREATE SCHEMA "Sales";
         CREATE TABLE "Sales"."Order*" (id int PRIMARY KEY, v text);
         CREATE TABLE "Sales"."Order_x" (id int PRIMARY KEY, v text);
         INSERT INTO sales.order_nokey VALUES (1, 'before');"#,
        &[
            "sales.order_*",
            r#""Sales"."Order*""#,
            "nosuch.*",
            "sales.ord?r_b",
        ],
        "",
    );
    let log = engine.log_text();
    // One line for the pattern that matches nothing, naming it and the fix.
    let no_match: Vec<&str> = log.lines().filter(|l| l.contains("'nosuch.*'")).collect();
    assert_eq!(no_match.len(), 1, "{log}");
    assert!(
        no_match[0].contains("WARN") && no_match[0].contains("created later"),
        "{}",
        no_match[0]
    );
    // A keyless table matched by a pattern follows the keyless rules.
    assert!(
        log.contains(
            "table sales.order_nokey has neither a primary key nor a replica identity index"
        ) && log.contains("source.keyless_tables"),
        "{log}"
    );
    let mut main = published(&pg, "cdc");
    main.retain(|t| !t.starts_with("cdc."));
    assert_eq!(
        main,
        vec![
            "Sales.Order*",
            "sales.order_a",
            "sales.order_b",
            "sales.order_p"
        ],
        "partitions are published through their root, never on their own"
    );
    pg.psql(
        r#"INSERT INTO sales.order_a VALUES (1, 'a');
         INSERT INTO sales.order_b VALUES (1, 'b');
         INSERT INTO sales.customers VALUES (1, 'c');
         INSERT INTO sales.order_p VALUES (1, 'p');
         INSERT INTO "Sales"."Order*" VALUES (1, 'star');
         INSERT INTO "Sales"."Order_x" VALUES (1, 'x');
         UPDATE sales.order_nokey SET v = 'after';
         DELETE FROM sales.order_nokey;
         INSERT INTO sales.order_a VALUES (2, 'last');"#,
    )
    .unwrap();
    let mut events = Vec::new();
    wait_until("the last insert", Duration::from_secs(60), || {
        assert!(engine.is_running(), "{}", engine.log_text());
        events = read_events(&events_path);
        events
            .iter()
            .any(|e| e["source"]["table"] == "order_a" && e["after"]["id"] == 2)
    });
    for (schema, table) in [
        ("sales", "order_a"),
        ("sales", "order_b"),
        ("sales", "order_p"),
        ("Sales", "Order*"),
    ] {
        assert!(
            !events_of(&events, schema, table).is_empty(),
            "{schema}.{table} not captured"
        );
    }
    for (schema, table) in [
        ("sales", "customers"),
        ("Sales", "Order_x"),
        ("sales", "order_p1"),
        ("sales", "order_nokey"),
    ] {
        assert!(
            events_of(&events, schema, table).is_empty(),
            "{schema}.{table} must not be captured"
        );
    }
    engine.terminate();
    // `cdc check` says the same.
    let out = cdc_output(&["check"], &config);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("warning: source.tables pattern 'nosuch.*' matches no table"),
        "{stdout}"
    );
}

#[test]
fn a_table_created_later_is_captured_with_nothing_lost_and_a_keyless_one_keeps_its_writes() {
    let (pg, _dir, _config, events_path, mut engine) = capture(
        "CREATE TABLE seed (id int PRIMARY KEY);",
        &["public.*", "later.*"],
        "\n[snapshot]\nchunk_size = 25\n",
    );
    let url = pg.url();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            with_client(&url, async move |client| {
                // Rows right after CREATE: they are written before cdc can
                // know the table, so only its snapshot can bring them.
                client
                    .batch_execute(
                        "CREATE TABLE late (id int PRIMARY KEY, v int);
                         INSERT INTO late SELECT g, 0 FROM generate_series(1, 2000) g;",
                    )
                    .await
                    .unwrap();
                let mut i = 2001;
                while !stop.load(Ordering::SeqCst) {
                    client
                        .batch_execute(&format!(
                            "INSERT INTO late VALUES ({i}, 0);
                             UPDATE late SET v = v + 1 WHERE id = {};
                             DELETE FROM late WHERE id = {};",
                            i * 7 % 2000 + 1,
                            i - 1500
                        ))
                        .await
                        .unwrap();
                    i += 1;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                i
            })
        })
    };
    wait_until(
        "the new table's snapshot to complete",
        Duration::from_secs(120),
        || {
            assert!(engine.is_running(), "{}", engine.log_text());
            let log = engine.log_text();
            log.contains("captured table public.late") && log.contains("snapshot complete")
        },
    );
    // A keyless table created later: never in a publication of updates and
    // deletes, so the application's own UPDATE and DELETE keep working.
    pg.psql("CREATE TABLE late_nokey (v int); INSERT INTO late_nokey VALUES (1), (2);")
        .unwrap();
    wait_until(
        "the keyless table's refusal",
        Duration::from_secs(60),
        || {
            engine
                .log_text()
                .contains("table public.late_nokey has neither a primary key")
        },
    );
    pg.psql("UPDATE late_nokey SET v = v + 10; DELETE FROM late_nokey WHERE v = 11;")
        .unwrap();
    assert_eq!(
        pg.psql("SELECT string_agg(v::text, ',') FROM late_nokey")
            .unwrap(),
        "12"
    );
    let main = published(&pg, "cdc");
    assert!(!main.contains(&"public.late_nokey".to_string()), "{main:?}");
    assert_eq!(
        engine.log_text().matches("late_nokey has neither").count(),
        1,
        "one line, not one per check"
    );
    // Given a key after its refusal, it is captured at the next check.
    pg.psql("ALTER TABLE late_nokey ADD PRIMARY KEY (v);")
        .unwrap();
    // A pattern that matched nothing at start captures the first table of
    // its schema.
    assert!(engine
        .log_text()
        .contains("pattern 'later.*' matches no table"));
    pg.psql(
        "CREATE SCHEMA later; CREATE TABLE later.t (id int PRIMARY KEY, v text);
         INSERT INTO later.t SELECT g, 'x' FROM generate_series(1, 30) g;",
    )
    .unwrap();
    wait_until(
        "later.t and late_nokey captured",
        Duration::from_secs(60),
        || {
            let log = engine.log_text();
            log.contains("captured table later.t")
                && log.contains("captured table public.late_nokey")
        },
    );
    pg.psql("INSERT INTO later.t VALUES (31, 'streamed'); INSERT INTO late_nokey VALUES (13);")
        .unwrap();
    stop.store(true, Ordering::SeqCst);
    let written = writer.join().unwrap();
    assert!(written > 2001, "the writer kept writing");
    let main = published(&pg, "cdc");
    assert!(main.contains(&"public.late".to_string()), "{main:?}");
    // Everything the writer committed, before and after cdc added the
    // table, reaches the consumer.
    wait_for_table(&pg, &events_path, "late", &mut engine);
    let events = read_events(&events_path);
    let late = events_of(&events, "public", "late");
    assert!(late.iter().any(|e| e["op"] == "r"), "no snapshot reads");
    assert!(late.iter().any(|e| e["op"] == "c"), "no streamed inserts");
    assert_no_time_travel(late.iter().copied());
    for table in ["later.t", "late_nokey"] {
        wait_for_table(&pg, &events_path, table, &mut engine);
    }
    // Dropped again: said in one line like any captured table.
    pg.psql("DROP TABLE later.t").unwrap();
    wait_until("the dropped line", Duration::from_secs(60), || {
        engine
            .log_text()
            .contains("captured table \"later\".\"t\" was dropped while cdc runs")
    });
    engine.terminate();
}

#[test]
fn new_tables_snapshots_a_table_added_to_the_config_once() {
    new_tables_snapshots_once(&["public.a", "public.b"]);
}

/// The config's `public.a` becomes `public.*`: the pattern now matches the
/// existing `b` too, which is a table captured for the first time.
#[test]
fn new_tables_snapshots_an_existing_table_a_pattern_newly_matches_once() {
    new_tables_snapshots_once(&["public.*"]);
}

/// A first run captures `public.a`; the second run's `tables` (`second`)
/// also captures the existing `public.b`, which `new_tables` snapshots
/// once, while `a` is not snapshotted again, nor `b` by a third run.
fn new_tables_snapshots_once(second: &[&str]) {
    let (pg, dir, config, events_path) = prepare(
        "CREATE TABLE a (id int PRIMARY KEY, v text);
         CREATE TABLE b (id int PRIMARY KEY, v text);
         INSERT INTO a SELECT g, 'a' FROM generate_series(1, 30) g;
         INSERT INTO b SELECT g, 'b' FROM generate_series(1, 40) g;",
        &["public.a"],
        "\n[snapshot]\nnew_tables = true\nchunk_size = 15\n",
    );
    let mut engine = Engine::start(&config);
    wait_streaming(&mut engine);
    pg.psql("INSERT INTO a VALUES (100, 'first run')").unwrap();
    let first = wait_for_events(&events_path, 1, &mut engine).len();
    // A first start is not "new tables": only `initial` snapshots then.
    assert!(
        !engine.log_text().contains("snapshot queued"),
        "{}",
        engine.log_text()
    );
    assert!(engine.terminate().success());

    // One config line: b is captured from now on, its rows by a snapshot.
    write_config(
        dir.path(),
        &pg.url(),
        second,
        "\n[snapshot]\nnew_tables = true\nchunk_size = 15\n",
    );
    let mut engine = Engine::start(&config);
    wait_streaming(&mut engine);
    pg.psql("INSERT INTO b VALUES (100, 'streamed'); UPDATE b SET v = 'changed' WHERE id = 3;")
        .unwrap();
    wait_for_table(&pg, &events_path, "b", &mut engine);
    let log = engine.log_text();
    assert!(
        log.contains("captured for the first time, snapshot queued: public.b"),
        "{log}"
    );
    let events = read_events(&events_path);
    let second = &events[first..];
    let reads_b = events_of(second, "public", "b")
        .iter()
        .filter(|e| e["op"] == "r")
        .count();
    assert!(
        reads_b >= 39,
        "b's existing rows arrive as reads: {reads_b}"
    );
    assert!(
        events_of(second, "public", "b")
            .iter()
            .any(|e| e["op"] == "c"),
        "b's changes stream"
    );
    assert!(
        !events_of(second, "public", "a")
            .iter()
            .any(|e| e["op"] == "r"),
        "a is not snapshotted again"
    );
    assert!(engine.terminate().success());

    // A restart with the same config snapshots nothing again.
    let before = read_events(&events_path).len();
    let mut engine = Engine::start(&config);
    wait_streaming(&mut engine);
    pg.psql("INSERT INTO b VALUES (101, 'third run')").unwrap();
    wait_for_events(&events_path, before + 1, &mut engine);
    std::thread::sleep(Duration::from_secs(2));
    let events = read_events(&events_path);
    assert!(
        !events[before..].iter().any(|e| e["op"] == "r"),
        "nothing is snapshotted again: {:?}",
        &events[before..]
    );
    assert!(!engine.log_text().contains("captured for the first time"));
    engine.terminate();
}

#[test]
fn a_table_an_earlier_run_added_before_its_marker_is_snapshotted_without_new_tables() {
    let (pg, _dir, config, events_path) =
        prepare("CREATE TABLE seed (id int PRIMARY KEY);", &["public.*"], "");
    let mut engine = Engine::start(&config);
    wait_streaming(&mut engine);
    pg.psql("INSERT INTO seed VALUES (1)").unwrap();
    let first = wait_for_events(&events_path, 1, &mut engine).len();
    assert!(engine.terminate().success());
    // While cdc is stopped: `added` is what a watcher leaves when cdc stops
    // between adding a new table to the publication and its capture marker;
    // `plain` is a new match nobody published yet.
    pg.psql(
        "CREATE TABLE added (id int PRIMARY KEY, v text);
         INSERT INTO added SELECT g, 'early' FROM generate_series(1, 20) g;
         ALTER PUBLICATION cdc ADD TABLE added;
         CREATE TABLE plain (id int PRIMARY KEY, v text);
         INSERT INTO plain SELECT g, 'old' FROM generate_series(1, 20) g;",
    )
    .unwrap();
    let mut engine = Engine::start(&config);
    wait_streaming(&mut engine);
    pg.psql("INSERT INTO plain VALUES (100, 'new'); INSERT INTO added VALUES (100, 'new');")
        .unwrap();
    wait_for_table(&pg, &events_path, "added", &mut engine);
    let log = engine.log_text();
    assert!(
        log.contains("captured for the first time, snapshot queued: public.added"),
        "{log}"
    );
    assert!(
        log.contains("from their next change on (set snapshot.new_tables = true to snapshot them): public.plain"),
        "{log}"
    );
    wait_until("plain's insert", Duration::from_secs(60), || {
        read_events(&events_path)
            .iter()
            .any(|e| e["source"]["table"] == "plain" && e["after"]["id"] == 100)
    });
    let events = read_events(&events_path);
    let plain = events_of(&events[first..], "public", "plain");
    assert!(
        plain.iter().all(|e| e["op"] == "c"),
        "without new_tables, plain's existing rows are not emitted: {plain:?}"
    );
    engine.terminate();
}

#[test]
fn a_table_this_role_cannot_add_to_the_publication_gets_one_line_and_is_captured_once_its_owner_adds_it(
) {
    let pg = postgres_with(&format!(
        "CREATE TABLE a (id int PRIMARY KEY); {}",
        role_without_the_publication("a")
    ));
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &pg.url_for("app", "pw"), &["public.*"], "");
    let events_path = dir.path().join("events.jsonl");
    let mut engine = Engine::start(&config);
    wait_streaming(&mut engine);
    pg.psql(
        "CREATE TABLE late (id int PRIMARY KEY, v text); GRANT SELECT ON late TO app;
         INSERT INTO late SELECT g, 'early' FROM generate_series(1, 10) g;",
    )
    .unwrap();
    let culprit = "table public.late created while cdc runs cannot be added to publication 'cdc' by this role";
    wait_until("the line naming the fix", Duration::from_secs(60), || {
        assert!(engine.is_running(), "{}", engine.log_text());
        engine.log_text().contains(culprit)
    });
    let log = engine.log_text();
    let line = log.lines().find(|l| l.contains(culprit)).unwrap();
    assert!(
        line.contains("ALTER PUBLICATION \"cdc\" ADD TABLE \"public\".\"late\""),
        "{line}"
    );
    // The rest streams on.
    pg.psql("INSERT INTO a VALUES (1)").unwrap();
    wait_for_events(&events_path, 1, &mut engine);
    // Its owner runs the fix: the next check captures it, early rows too.
    pg.psql("ALTER PUBLICATION cdc ADD TABLE late; INSERT INTO late VALUES (11, 'streamed');")
        .unwrap();
    wait_for_table(&pg, &events_path, "late", &mut engine);
    assert_eq!(engine.log_text().matches(culprit).count(), 1, "one line");
    engine.terminate();
}
