//! SIGKILL the engine at random points under a steady writer: every committed
//! change still reaches the file, in per-key commit order.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod harness;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use harness::states_by_key;
use rand::Rng;

/// Per key, the committed states in commit order (`None`: deleted).
type History = States<i64>;

fn writer(url: String, transactions: i64, done: Arc<AtomicBool>) -> History {
    with_client(&url, async move |client| {
        let mut history: History = HashMap::new();
        let mut rng = rand::rng();
        for version in 1..=transactions {
            let key: i64 = rng.random_range(0..40);
            if rng.random_ratio(1, 8) {
                let n = client
                    .execute("DELETE FROM t WHERE id = $1", &[&key])
                    .await
                    .unwrap();
                if n == 1 {
                    history.entry(key).or_default().push(None);
                }
            } else {
                // Two statements in one transaction: they commit together.
                client
                    .batch_execute(&format!(
                        "BEGIN; INSERT INTO t VALUES ({key}, {version}) \
                         ON CONFLICT (id) DO UPDATE SET v = excluded.v; \
                         UPDATE other SET n = n + 1; COMMIT;"
                    ))
                    .await
                    .unwrap();
                history.entry(key).or_default().push(Some(version));
            }
            if version % 50 == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        done.store(true, Ordering::SeqCst);
        history
    })
}

#[test]
fn sigkill_at_random_points_loses_nothing_and_keeps_key_order() {
    let pg = postgres_with(
        "CREATE TABLE t (id bigint PRIMARY KEY, v bigint);
         CREATE TABLE other (n int); INSERT INTO other VALUES (0);",
    );
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &pg.url(), &["public.t"], "");
    let events_path = dir.path().join("events.jsonl");

    let mut engine = Engine::start(&config);
    wait_streaming(&mut engine);
    let done = Arc::new(AtomicBool::new(false));
    let url = pg.url();
    let writer_done = done.clone();
    let writer = std::thread::spawn(move || writer(url, 4000, writer_done));

    let mut rng = rand::rng();
    let mut kills = 0;
    while !done.load(Ordering::SeqCst) || kills < 3 {
        std::thread::sleep(Duration::from_millis(rng.random_range(100..900)));
        engine.kill();
        kills += 1;
        engine = Engine::start(&config);
    }
    let history = writer.join().unwrap();
    assert!(kills >= 3);

    // Wait until the last committed state of every key is in the file.
    let mut events = Vec::new();
    wait_until(
        "the writer's last changes",
        Duration::from_secs(120),
        || {
            assert!(engine.is_running(), "cdc exited:\n{}", engine.log_text());
            events = read_events(&events_path);
            let seen = states_by_key(&events);
            history
                .iter()
                .all(|(k, h)| seen.get(k).and_then(|s| s.last()) == h.last())
        },
    );
    assert_eq!(engine.terminate().code(), Some(0));

    assert_history_kept(&history, &states_by_key(&events));
    eprintln!(
        "{kills} kills, {} committed changes, {} events written",
        history.values().map(Vec::len).sum::<usize>(),
        events.len()
    );
}
