//! The fault tests' harness (tests/faults.rs, tests/crashes.rs): a writer
//! that keeps each key's committed history, running a fault plan under it,
//! and the checks: every committed change in per-key order, the fold equals
//! the table.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cdc_testcontainers::Postgres;
use rand::Rng;
use serde_json::Value;

use crate::common::*;

pub mod check;
pub mod disk;
pub mod kafka;
pub mod workload;

pub type History = States<i64>;

pub const DDL: &str = "CREATE TABLE t (id bigint PRIMARY KEY, v bigint);";

/// Upserts and deletes random keys until `stop`, over `url` (the Unix
/// socket: the control path no network fault touches). Rides out a server
/// restart: an operation whose outcome the lost connection hid is looked up
/// once reconnected. Returns each key's committed history.
pub fn writer(url: String, stop: Arc<AtomicBool>) -> History {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let mut history: History = HashMap::new();
        let mut rng = rand::rng();
        let mut version = 0;
        let mut client: Option<tokio_postgres::Client> = None;
        while !stop.load(Ordering::SeqCst) {
            let Some(c) = live(&url, &mut client).await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            version += 1;
            let key: i64 = rng.random_range(0..200);
            let delete = rng.random_ratio(1, 8);
            let done = if delete {
                c.execute("DELETE FROM t WHERE id = $1", &[&key]).await
            } else {
                c.execute(
                    "INSERT INTO t VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET v = excluded.v",
                    &[&key, &version],
                )
                .await
            };
            let committed = match done {
                Ok(n) => n == 1,
                Err(_) => {
                    // Did it commit before the connection went? Ask.
                    client = None;
                    let now = loop {
                        if let Some(c) = live(&url, &mut client).await {
                            if let Ok(row) =
                                c.query_opt("SELECT v FROM t WHERE id = $1", &[&key]).await
                            {
                                break row.map(|r| r.get::<_, i64>(0));
                            }
                        }
                        client = None;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    };
                    let before = history.get(&key).and_then(|h| h.last().copied()).flatten();
                    if delete {
                        now.is_none() && before.is_some()
                    } else {
                        now == Some(version)
                    }
                }
            };
            if committed {
                history
                    .entry(key)
                    .or_default()
                    .push((!delete).then_some(version));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        history
    })
}

/// The writer's connection, reconnecting when it is gone.
async fn live<'a>(
    url: &str,
    client: &'a mut Option<tokio_postgres::Client>,
) -> Option<&'a tokio_postgres::Client> {
    if client
        .as_ref()
        .is_none_or(tokio_postgres::Client::is_closed)
    {
        *client = match tokio_postgres::connect(url, tokio_postgres::NoTls).await {
            Ok((c, connection)) => {
                tokio::spawn(connection);
                Some(c)
            }
            Err(_) => None,
        };
    }
    client.as_ref()
}

pub fn states_by_key(events: &[Value]) -> History {
    let mut out: History = HashMap::new();
    for e in events.iter().filter(|e| e["source"]["table"] == "t") {
        match e["op"].as_str().unwrap() {
            "d" => out
                .entry(e["before"]["id"].as_i64().unwrap())
                .or_default()
                .push(None),
            _ => out
                .entry(e["after"]["id"].as_i64().unwrap())
                .or_default()
                .push(Some(e["after"]["v"].as_i64().unwrap())),
        }
    }
    out
}

/// Wait until every key's last committed state is in the file, then check
/// history and fold.
pub fn assert_nothing_lost(
    pg: &Postgres,
    events_path: &Path,
    engine: &mut Engine,
    history: &History,
) {
    let mut events = Vec::new();
    wait_until(
        "the writer's last changes",
        Duration::from_secs(180),
        || {
            assert!(engine.is_running(), "cdc exited:\n{}", engine.log_text());
            events = read_events(events_path);
            let seen = states_by_key(&events);
            history
                .iter()
                .all(|(k, h)| seen.get(k).and_then(|s| s.last()) == h.last())
        },
    );
    assert_history_kept(history, &states_by_key(&events));
    assert_same(&fold(&events, "t", &["id"]), &contents(pg, "t", &["id"]));
    eprintln!(
        "{} committed changes, {} events written",
        history.values().map(Vec::len).sum::<usize>(),
        events.len()
    );
}

/// The fold equals the table; else name a few keys that differ (the whole
/// maps are too large to print).
pub fn assert_same(folded: &BTreeMap<String, Value>, table: &BTreeMap<String, Value>) {
    let differ: Vec<_> = table
        .keys()
        .chain(folded.keys())
        .filter(|k| folded.get(*k) != table.get(*k))
        .take(5)
        .map(|k| format!("{k}: output {:?}, table {:?}", folded.get(k), table.get(k)))
        .collect();
    assert!(
        differ.is_empty(),
        "the fold of the output is not the table ({} rows vs {}): {differ:#?}",
        folded.len(),
        table.len()
    );
}

/// Seconds since the epoch of a log line's leading RFC 3339 UTC timestamp
/// (`2026-12-01T12:07:18.123456Z  WARN ...`).
pub fn log_time(line: &str) -> Option<f64> {
    let plain = strip_ansi(line);
    let stamp = plain.split_whitespace().next()?.strip_suffix('Z')?;
    let (date, time) = stamp.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut t = time.split(':');
    let (h, min) = (
        t.next()?.parse::<f64>().ok()?,
        t.next()?.parse::<f64>().ok()?,
    );
    let s = t.next()?.parse::<f64>().ok()?;
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days as f64 * 86_400.0 + h * 3600.0 + min * 60.0 + s)
}

/// The log is coloured even into a file.
pub fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

pub fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

pub fn lines_with<'a>(log: &'a str, needle: &str) -> Vec<&'a str> {
    log.lines().filter(|l| l.contains(needle)).collect()
}

/// What a fault test does, in order, under a steady writer.
pub struct Plan<P, F, H> {
    /// Before the fault (e.g. start a snapshot).
    pub prelude: P,
    pub fault: F,
    pub hold: Duration,
    pub heal: H,
    /// Wait for the snapshot to finish before checking the fold.
    pub snapshot: bool,
}

/// Runs the plan under a steady writer and checks that nothing is lost.
/// Returns the engine's log and when the fault began and was healed.
pub fn under_writer(
    pg: &Postgres,
    config: &Path,
    events_path: &Path,
    plan: Plan<impl FnOnce(&Engine), impl FnOnce(), impl FnOnce()>,
) -> (String, f64, f64) {
    let Plan {
        prelude,
        fault,
        hold,
        heal,
        snapshot,
    } = plan;
    let mut engine = Engine::start(config);
    wait_streaming(&mut engine);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (url, stop) = (pg.url(), stop.clone());
        std::thread::spawn(move || writer(url, stop))
    };
    std::thread::sleep(Duration::from_secs(3));
    prelude(&engine);
    let fault_at = now_secs();
    fault();
    std::thread::sleep(hold);
    heal();
    let healed_at = now_secs();
    std::thread::sleep(Duration::from_secs(5));
    stop.store(true, Ordering::SeqCst);
    let history = writer.join().unwrap();
    if snapshot {
        wait_until("snapshot complete", Duration::from_secs(240), || {
            assert!(engine.is_running(), "cdc exited:\n{}", engine.log_text());
            engine.log_text().contains("snapshot complete")
        });
    }
    assert_nothing_lost(pg, events_path, &mut engine, &history);
    let log = engine.log_text();
    assert_eq!(engine.terminate().code(), Some(0), "{log}");
    (log, fault_at, healed_at)
}

/// Runs `fault` for `hold` while a snapshot of 30 000 rows (the writer's
/// keys and more) goes on, cdc connecting to `url`; checks nothing is lost
/// and the snapshot completes. Returns the log and the fault's times.
pub fn in_snapshot_window(
    pg: &Postgres,
    url: &str,
    fault: impl FnOnce(),
    hold: Duration,
    heal: impl FnOnce(),
) -> (String, f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    in_snapshot_window_at(pg, url, &dir.path().join("events.jsonl"), fault, hold, heal)
}

/// [`in_snapshot_window`] with the file sink writing `events_path`.
pub fn in_snapshot_window_at(
    pg: &Postgres,
    url: &str,
    events_path: &Path,
    fault: impl FnOnce(),
    hold: Duration,
    heal: impl FnOnce(),
) -> (String, f64, f64) {
    // Keys the writer never touches, so only the snapshot brings them.
    pg.psql(&format!(
        "{DDL} INSERT INTO t SELECT g, 0 FROM generate_series(1000, 30999) g;"
    ))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        url,
        &["public.t"],
        "\n[snapshot]\nchunk_size = 200\n",
    );
    disk::write_events_to(&config, events_path);
    let running = Mutex::new(false);
    let plan = Plan {
        prelude: |engine: &Engine| {
            signal(
                pg,
                "s1",
                "execute-snapshot",
                r#"{"data-collections": ["public.t"], "type": "incremental"}"#,
            );
            wait_until("the first snapshot rows", Duration::from_secs(60), || {
                read_events(events_path).iter().any(|e| e["op"] == "r")
            });
            *running.lock().unwrap() = !engine.log_text().contains("snapshot complete");
        },
        fault,
        hold,
        heal,
        snapshot: true,
    };
    let (log, fault_at, healed_at) = under_writer(pg, &config, events_path, plan);
    assert!(
        *running.lock().unwrap(),
        "the snapshot ended before the fault:\n{log}"
    );
    for line in lines_with(&log, "WARN") {
        eprintln!("  warning: {}", strip_ansi(line));
    }
    (log, fault_at, healed_at)
}

/// `fault` (held 1 s) under the writer while cdc streams `t` of `pg`; the
/// log and when the fault began.
pub fn while_streaming(pg: &Postgres, fault: impl FnOnce()) -> (String, f64) {
    pg.psql(DDL).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &pg.url(), &["public.t"], "");
    let events_path = dir.path().join("events.jsonl");
    let plan = Plan {
        prelude: |_: &Engine| {},
        fault,
        hold: Duration::from_secs(1),
        heal: || {},
        snapshot: false,
    };
    let (log, fault_at, _) = under_writer(pg, &config, &events_path, plan);
    (log, fault_at)
}
