//! Snapshots of tables without a key, through `cdc run` against a real
//! PostgreSQL: ctid page ranges under a writer, a surrogate key with ties,
//! a SIGKILL mid-snapshot, and a keyless table matched by a pattern later
//! (docs/architecture.md, "Tables without a key").
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::Value;

/// The ids a writer touched (updated, deleted) while it ran; it only ever
/// increments `v`, and inserts ids above `first_new`.
fn start_writer(
    url: String,
    stop: Arc<AtomicBool>,
    rows: i64,
    touched: Arc<Mutex<HashSet<i64>>>,
    writes: Arc<AtomicU64>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        with_client(&url, async |client| {
            let mut next_new = rows + 1;
            let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
            while !stop.load(Ordering::SeqCst) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let id = (seed % rows as u64) as i64 + 1;
                let sql = match seed % 10 {
                    0 => {
                        next_new += 1;
                        format!("INSERT INTO heap VALUES ({next_new}, 0, repeat('n', 40))")
                    }
                    1 => format!("DELETE FROM heap WHERE id = {id}"),
                    _ => format!("UPDATE heap SET v = v + 1 WHERE id = {id}"),
                };
                client.batch_execute(&sql).await.unwrap();
                if seed % 10 != 0 {
                    touched.lock().unwrap().insert(id);
                }
                writes.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    })
}

fn reads_by_id(events: &[Value], table: &str) -> HashMap<i64, usize> {
    let mut reads = HashMap::new();
    for e in table_events(events, table) {
        if e["op"] == "r" {
            *reads.entry(e["after"]["id"].as_i64().unwrap()).or_insert(0) += 1;
        }
    }
    reads
}

#[test]
fn a_keyless_table_is_snapshotted_in_ctid_ranges_under_a_writer() {
    const ROWS: i64 = 6000;
    let (pg, _dir, _config, events_path, mut engine) = capture(
        &format!(
            "CREATE TABLE heap (id int NOT NULL, v int NOT NULL, pad text);
             ALTER TABLE heap REPLICA IDENTITY FULL;
             INSERT INTO heap SELECT g, 0, repeat('p', 40) FROM generate_series(1, {ROWS}) g;"
        ),
        &["public.heap"],
        "keyless_tables = [\"public.heap\"]\n[snapshot]\nchunk_size = 100\n",
    );
    let stop = Arc::new(AtomicBool::new(false));
    let touched = Arc::new(Mutex::new(HashSet::new()));
    let writes = Arc::new(AtomicU64::new(0));
    let writer = start_writer(
        pg.url(),
        stop.clone(),
        ROWS,
        touched.clone(),
        writes.clone(),
    );
    wait_until("the writer to start", Duration::from_secs(30), || {
        writes.load(Ordering::SeqCst) > 0
    });
    let before = writes.load(Ordering::SeqCst);
    signal(
        &pg,
        "heap",
        "execute-snapshot",
        r#"{"data-collections": ["public.heap"]}"#,
    );
    wait_until("snapshot complete", Duration::from_secs(180), || {
        assert!(engine.is_running(), "{}", engine.log_text());
        engine.log_text().contains("snapshot complete")
    });
    let during = writes.load(Ordering::SeqCst) - before;
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    assert!(during > 0, "nothing was written during the snapshot");
    let writes = writes.load(Ordering::SeqCst);
    let events = wait_for_fold(&pg, &events_path, "heap", &["id"], &mut engine);
    assert_no_time_travel(table_events(&events, "heap"));
    // Every row the writer never touched is read exactly once.
    let touched = touched.lock().unwrap().clone();
    let reads = reads_by_id(&events, "heap");
    for id in (1..=ROWS).filter(|id| !touched.contains(id)) {
        assert_eq!(reads.get(&id), Some(&1), "untouched id {id}");
    }
    let log = engine.log_text();
    let discarded = log.matches("snapshot chunk discarded").count();
    println!(
        "{writes} writes ({during} during the snapshot), {} ids touched, {} reads, {discarded} chunks discarded",
        touched.len(),
        reads.values().sum::<usize>()
    );
    engine.terminate();
}

#[test]
fn a_surrogate_key_orders_the_chunks_and_keeps_ties_in_one_chunk() {
    let (pg, _dir, config, events_path, mut engine) = capture(
        "CREATE TABLE dups (grp int NOT NULL, n int);
         INSERT INTO dups SELECT g / 7, g FROM generate_series(1, 1000) g;",
        &["public.dups"],
        "keyless_tables = [\"public.dups\"]\n[snapshot]\nchunk_size = 10\n",
    );
    cdc_ok(
        &["snapshot", "--surrogate-key", "grp", "public.dups"],
        &config,
    );
    wait_until("snapshot complete", Duration::from_secs(60), || {
        assert!(engine.is_running(), "{}", engine.log_text());
        engine.log_text().contains("snapshot complete")
    });
    let reads = || -> Vec<(i64, i64)> {
        table_events(&read_events(&events_path), "dups")
            .iter()
            .filter(|e| e["op"] == "r")
            .map(|e| {
                (
                    e["after"]["grp"].as_i64().unwrap(),
                    e["after"]["n"].as_i64().unwrap(),
                )
            })
            .collect()
    };
    wait_until("every read in the sink", Duration::from_secs(30), || {
        reads().len() >= 1000
    });
    let reads = reads();
    // Every row once, although chunks of 10 end inside runs of 7 ties.
    let mut ns: Vec<i64> = reads.iter().map(|&(_, n)| n).collect();
    ns.sort_unstable();
    assert_eq!(ns, (1..=1000).collect::<Vec<_>>());
    assert!(
        reads.windows(2).all(|w| w[0].0 <= w[1].0),
        "reads follow the surrogate key"
    );
    // A read of the table has no key.
    let events = read_events(&events_path);
    assert!(table_events(&events, "dups")
        .iter()
        .all(|e| e.get("key").is_none_or(Value::is_null)));
    engine.terminate();
    drop(pg);
}

#[test]
fn a_killed_ctid_snapshot_resumes_at_its_last_page() {
    // Large enough that the snapshot is far from done when the kill lands
    // (40 000 rows finished first on PostgreSQL 17).
    const ROWS: i64 = 200_000;
    let (pg, _dir, config, events_path, mut engine) = capture(
        &format!(
            "CREATE TABLE heap (id int NOT NULL, v int NOT NULL, pad text);
             INSERT INTO heap SELECT g, 0, md5(g::text) FROM generate_series(1, {ROWS}) g;"
        ),
        &["public.heap"],
        "keyless_tables = [\"public.heap\"]\n[snapshot]\nchunk_size = 500\n",
    );
    signal(
        &pg,
        "heap",
        "execute-snapshot",
        r#"{"data-collections": ["public.heap"]}"#,
    );
    wait_until("part of the snapshot", Duration::from_secs(60), || {
        read_events(&events_path).len() >= 5000
    });
    engine.kill();
    assert!(
        read_events(&events_path).len() < ROWS as usize,
        "finished before the kill"
    );
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
    wait_until("every row in the sink", Duration::from_secs(30), || {
        reads_by_id(&read_events(&events_path), "heap").len() == ROWS as usize
    });
    let events = read_events(&events_path);
    let reads = reads_by_id(&events, "heap");
    // Resumed, not restarted: only the chunks unsaved at the kill twice.
    let total: usize = reads.values().sum();
    assert!(
        total < ROWS as usize + 5000,
        "{total} reads for {ROWS} rows: the snapshot started over"
    );
    engine.terminate();
}

#[test]
fn a_keyless_table_matched_later_by_a_pattern_is_snapshotted_in_ctid_ranges() {
    let (pg, _dir, config, events_path) = prepare(
        "CREATE TABLE seed (id int PRIMARY KEY);",
        &["public.*"],
        "keyless_tables = [\"public.log_*\"]\n[snapshot]\nnew_tables = true\nchunk_size = 50\n",
    );
    let mut engine = Engine::start(&config);
    wait_streaming(&mut engine);
    pg.psql(
        "CREATE TABLE log_late (id int NOT NULL, v int NOT NULL);
         ALTER TABLE log_late REPLICA IDENTITY FULL;
         INSERT INTO log_late SELECT g, 0 FROM generate_series(1, 500) g;",
    )
    .unwrap();
    wait_until(
        "log_late captured and snapshotted",
        Duration::from_secs(120),
        || {
            assert!(engine.is_running(), "{}", engine.log_text());
            let log = engine.log_text();
            log.contains("captured table public.log_late") && log.contains("snapshot complete")
        },
    );
    pg.psql("UPDATE log_late SET v = 1 WHERE id <= 10; DELETE FROM log_late WHERE id > 490;")
        .unwrap();
    let events = wait_for_fold(&pg, &events_path, "log_late", &["id"], &mut engine);
    assert_no_time_travel(table_events(&events, "log_late"));
    engine.terminate();
}
