//! Schema changes in the middle of a snapshot, under a live writer, through
//! `cdc run` against a real PostgreSQL. Each case: the fold of the output
//! equals the table at the end, and no key goes back in time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::Value;

/// Enough chunks of 25 that the pause lands in the middle of the snapshot.
const ROWS: i64 = 20_000;

/// Updates, deletes and inserts on `w`, a column no case alters; `w` takes
/// a new, larger value on every write, so a key's states are ordered by it.
fn writer(
    url: String,
    stop: Arc<AtomicBool>,
    counter: Arc<AtomicI64>,
) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        with_client(&url, async |client| {
            let mut writes = 0u64;
            let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
            while !stop.load(Ordering::SeqCst) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let id = (seed % (ROWS as u64 + 300)) as i32 + 1;
                let w = counter.fetch_add(1, Ordering::SeqCst);
                let sql = match seed % 5 {
                    0 => format!("DELETE FROM t WHERE id = {id}"),
                    1 => format!("INSERT INTO t (id, w) VALUES ({id}, {w}) ON CONFLICT DO NOTHING"),
                    _ => format!("UPDATE t SET w = {w} WHERE id = {id}"),
                };
                // A write may wait for, or fail against, a DDL: that is fine.
                if client.batch_execute(&sql).await.is_ok() {
                    writes += 1;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            writes
        })
    })
}

/// Per key, emitted `w` never decreases, and a deleted state is never
/// followed by a state from before the delete.
fn assert_no_time_travel(events: &[Value]) {
    let mut last: HashMap<i64, (i64, bool)> = HashMap::new();
    for e in events.iter().filter(|e| e["source"]["table"] == "t") {
        let (row, deleted) = match e["op"].as_str().unwrap() {
            "d" => (&e["before"], true),
            "t" => continue,
            _ => (&e["after"], false),
        };
        let Some(id) = row["id"].as_i64() else {
            continue;
        };
        let w = row["w"].as_i64().unwrap_or(-1);
        if let Some(&(prev_w, prev_deleted)) = last.get(&id) {
            if !deleted {
                assert!(
                    w > prev_w || (w == prev_w && !prev_deleted),
                    "key {id} went back in time: w {w} after w {prev_w} (deleted: {prev_deleted}) in {e}"
                );
            }
        }
        if !deleted || w >= 0 {
            let prev = last.get(&id).map_or(-1, |p| p.0);
            last.insert(id, (w.max(prev), deleted));
        } else {
            last.entry(id).and_modify(|p| p.1 = true);
        }
    }
}

fn schema_change_during_snapshot(ddl: &str) {
    schema_changes_during_snapshot(&[ddl.to_string()]);
}

/// Each change lands in the middle of the snapshot: after more rows went
/// out, the snapshot pauses, the change runs, the snapshot resumes.
fn schema_changes_during_snapshot(ddls: &[String]) {
    let (pg, _dir, _config, events_path, mut engine) = capture(
        &format!(
            "CREATE TABLE t (id int PRIMARY KEY, w bigint NOT NULL DEFAULT 0, gone int, a int, b text, c int);
             INSERT INTO t SELECT g, 0, g, g, 'b' || g, g FROM generate_series(1, {ROWS}) g;
             -- A dropped middle column before capture starts.
             ALTER TABLE t DROP COLUMN gone;"
        ),
        &["public.t"],
        "\n[snapshot]\nchunk_size = 25\n",
    );
    let stop = Arc::new(AtomicBool::new(false));
    let counter = Arc::new(AtomicI64::new(1));
    let writer = writer(pg.url(), stop.clone(), counter.clone());
    signal(
        &pg,
        "snap",
        "execute-snapshot",
        r#"{"data-collections": ["public.t"]}"#,
    );
    for (i, ddl) in ddls.iter().enumerate() {
        // Part of the table goes out in the current shape, then the snapshot
        // pauses so the change lands in its middle.
        wait_until("more chunks", Duration::from_secs(60), || {
            read_events(&events_path)
                .iter()
                .filter(|e| e["op"] == "r")
                .count()
                > 100 * (i + 1)
        });
        signal(&pg, &format!("pause-{i}"), "pause-snapshot", "{}");
        wait_until("the pause", Duration::from_secs(30), || {
            engine.log_text().matches("snapshot paused").count() > i
        });
        pg.psql(ddl).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        signal(&pg, &format!("resume-{i}"), "resume-snapshot", "{}");
    }
    wait_until("snapshot complete", Duration::from_secs(120), || {
        assert!(engine.is_running(), "{}", engine.log_text());
        engine.log_text().contains("snapshot complete")
    });
    stop.store(true, Ordering::SeqCst);
    let writes = writer.join().unwrap();
    assert!(writes > 0);
    let log = engine.log_text();
    assert!(log.contains("schema change: public.t:"), "{log}");
    assert!(log.contains("starts over in the new shape"), "{log}");
    let expected = contents(&pg, "t", &["id"]);
    let mut folded = Default::default();
    let matched = (0..600).any(|_| {
        folded = fold(&read_events(&events_path), "t", &["id"]);
        folded == expected || {
            std::thread::sleep(Duration::from_millis(50));
            false
        }
    });
    if !matched {
        let diff: Vec<_> = expected
            .iter()
            .filter(|(k, v)| folded.get(*k) != Some(v))
            .take(3)
            .map(|(k, v)| (k, v, folded.get(k)))
            .collect();
        panic!(
            "fold differs from the table ({} vs {} rows), e.g. {diff:?}\n{log}",
            folded.len(),
            expected.len()
        );
    }
    assert_no_time_travel(&read_events(&events_path));
    if std::env::var_os("TEST_SHOW_LOG").is_some() {
        eprintln!("{log}");
    }
    engine.terminate();
}

#[test]
fn add_column_without_default() {
    schema_change_during_snapshot("ALTER TABLE t ADD COLUMN d numeric(10,2)");
}

#[test]
fn add_column_with_default() {
    schema_change_during_snapshot("ALTER TABLE t ADD COLUMN d text NOT NULL DEFAULT 'dflt'");
}

#[test]
fn drop_column() {
    schema_change_during_snapshot("ALTER TABLE t DROP COLUMN a");
}

#[test]
fn rename_column() {
    schema_change_during_snapshot("ALTER TABLE t RENAME COLUMN b TO b2");
}

#[test]
fn int_to_bigint() {
    schema_change_during_snapshot("ALTER TABLE t ALTER COLUMN c TYPE bigint");
}

#[test]
fn int_to_text() {
    schema_change_during_snapshot("ALTER TABLE t ALTER COLUMN c TYPE text");
}

#[test]
fn primary_key_change() {
    schema_change_during_snapshot(
        "BEGIN; ALTER TABLE t DROP CONSTRAINT t_pkey; ALTER TABLE t ADD PRIMARY KEY (id, w); CREATE UNIQUE INDEX t_id ON t (id); COMMIT",
    );
}

/// Valid DDL for a random walk over the table's shape: added columns are
/// dropped, renamed or retyped later.
fn ddl_sequence(choices: &[(u8, u8)]) -> Vec<String> {
    let mut added: Vec<String> = Vec::new();
    let mut statements = Vec::new();
    for (n, &(kind, pick)) in choices.iter().enumerate() {
        let statement = match (kind % 4, added.is_empty()) {
            (0, _) | (_, true) => {
                let name = format!("x{n}");
                let sql = if pick % 2 == 0 {
                    format!("ALTER TABLE t ADD COLUMN {name} int")
                } else {
                    format!("ALTER TABLE t ADD COLUMN {name} text NOT NULL DEFAULT 'd{n}'")
                };
                added.push(name);
                sql
            }
            (1, false) => {
                let name = added.remove(usize::from(pick) % added.len());
                format!("ALTER TABLE t DROP COLUMN {name}")
            }
            (2, false) => {
                let i = usize::from(pick) % added.len();
                let renamed = format!("r{n}");
                let old = std::mem::replace(&mut added[i], renamed.clone());
                format!("ALTER TABLE t RENAME COLUMN {old} TO {renamed}")
            }
            _ => {
                let name = &added[usize::from(pick) % added.len()];
                format!("ALTER TABLE t ALTER COLUMN {name} TYPE varchar(64)")
            }
        };
        statements.push(statement);
    }
    statements
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 3, ..Default::default() })]

    /// Random interleavings of DDL (through a state machine that keeps it
    /// valid) and a writer's DML during one snapshot: the fold equals the
    /// table, no key goes back in time.
    #[test]
    fn random_ddl_during_a_snapshot(choices in proptest::collection::vec((0u8..4, 0u8..8), 2..4)) {
        schema_changes_during_snapshot(&ddl_sequence(&choices));
    }
}

/// A domain and an enum created while cdc streams, used by columns added
/// then: the log types them from the catalog read at their Relation, as a
/// snapshot does, so a row reads the same from both (before, the domain's
/// values were strings in the log until a restart).
#[test]
fn types_created_while_streaming_read_the_same_from_the_log_and_a_snapshot() {
    let (pg, _dir, _config, events_path, mut engine) =
        capture("CREATE TABLE t (id int PRIMARY KEY);", &["public.t"], "");
    pg.psql(
        "CREATE DOMAIN posint AS int CHECK (VALUE > 0);
         CREATE TYPE mood AS ENUM ('sad', 'ok');
         ALTER TABLE t ADD COLUMN p posint NOT NULL DEFAULT 1, ADD COLUMN m mood, ADD COLUMN ms mood[];
         INSERT INTO t VALUES (1, 5, 'ok', '{sad,ok}');",
    )
    .unwrap();
    let logged = wait_for_events(&events_path, 1, &mut engine);
    let from_log = logged[0]["after"].clone();
    assert_eq!(from_log["p"], serde_json::json!(5), "{from_log}");
    assert_eq!(from_log["m"], "ok", "{from_log}");
    signal(
        &pg,
        "snap",
        "execute-snapshot",
        r#"{"data-collections": ["public.t"]}"#,
    );
    let all = wait_for_events(&events_path, 2, &mut engine);
    let read = all
        .iter()
        .find(|e| e["op"] == "r")
        .unwrap_or_else(|| panic!("no snapshot row: {all:?}"));
    assert_eq!(read["after"], from_log, "snapshot and log differ");
    assert_eq!(engine.terminate().code(), Some(0));
}
