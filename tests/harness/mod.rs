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

/// `history` (of table `table`) keyed by `(table, id)`, as the checks
/// of [`check`] take it.
pub fn by_table(table: &str, history: &History) -> HashMap<(String, i64), Vec<Option<i64>>> {
    history
        .iter()
        .map(|(id, h)| ((table.to_string(), *id), h.clone()))
        .collect()
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
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    let events = loop {
        assert!(engine.is_running(), "cdc exited:\n{}", engine.log_text());
        let events = read_events(events_path);
        let seen = states_by_key(&events);
        let behind: Vec<_> = history
            .iter()
            .filter(|(k, h)| seen.get(*k).and_then(|s| s.last()) != h.last())
            .collect();
        if behind.is_empty() {
            break events;
        }
        if std::time::Instant::now() > deadline {
            // Name the culprit: a stall shows every key behind, a loss a few.
            let (key, committed) = behind[0];
            // Where the server and the slot stand: a sender waiting on cdc
            // or cdc waiting on the server.
            let server = pg
                .psql(
                    "SELECT coalesce(string_agg(format('walsender %s sent %s flushed %s', state, sent_lsn, flush_lsn), '; '), 'no walsender') \
                     || ' / slot active ' || (SELECT string_agg(format('%s confirmed %s restart %s', active, confirmed_flush_lsn, restart_lsn), '; ') FROM pg_replication_slots) \
                     || ' / wal ' || pg_current_wal_lsn() FROM pg_stat_replication",
                )
                .unwrap_or_else(|e| e.to_string());
            panic!(
                "timed out waiting for the writer's last changes: {} of {} keys behind, {} events in the file; key {key}: committed {committed:?}, output {:?}; {server}",
                behind.len(),
                history.len(),
                events.len(),
                seen.get(key)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let checked =
        check::assert_history_in_order(&by_table("t", history), &events, &[("t", &["id"])]);
    assert_same(&fold(&events, "t", &["id"]), &contents(pg, "t", &["id"]));
    eprintln!(
        "{} committed changes, {} events written, {} duplicates",
        checked.changes,
        events.len(),
        checked.duplicates
    );
}

/// The fold equals the table; else name a few keys that differ (the whole
/// maps are too large to print).
pub fn assert_same(folded: &BTreeMap<String, Value>, table: &BTreeMap<String, Value>) {
    if let Err(differ) = same(folded, table) {
        panic!("{differ}");
    }
}

/// [`assert_same`] as a result, for callers that add context (a seed).
pub fn same(
    folded: &BTreeMap<String, Value>,
    table: &BTreeMap<String, Value>,
) -> Result<(), String> {
    let differ: Vec<_> = table
        .keys()
        .chain(folded.keys())
        .filter(|k| folded.get(*k) != table.get(*k))
        .take(5)
        .map(|k| format!("{k}: output {:?}, table {:?}", folded.get(k), table.get(k)))
        .collect();
    if differ.is_empty() {
        return Ok(());
    }
    Err(format!(
        "the fold of the output is not the table ({} rows vs {}): {differ:#?}",
        folded.len(),
        table.len()
    ))
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

/// The line saying a dead path was noticed: the replication stream's
/// receive timeout, or (first, when the outage outlasts the lease's
/// freshness) the lease's lock connection.
pub fn detection_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| {
            is_warning(l)
                && (l.contains("replication connection lost")
                    || l.contains("stopping before acknowledging anything more"))
        })
        .collect()
}

/// A line logged at WARN (the level of a fault's one line; what the other
/// connection then notices of the same fault is info).
pub fn is_warning(line: &str) -> bool {
    strip_ansi(line).split_whitespace().nth(1) == Some("WARN")
}

/// The line saying cdc streams again after the fault: the stream
/// reconnected, or the instance took its lease back.
pub fn recovery_lines(log: &str, fault_at: f64) -> Vec<&str> {
    log.lines()
        .filter(|l| {
            l.contains("replication connection restored")
                || (l.contains("holding the lease") && log_time(l).is_some_and(|t| t > fault_at))
        })
        .collect()
}

/// Exactly one line on noticing an outage that began at `fault_at` and
/// one on the recovery from it ([`detection_lines`], [`recovery_lines`]);
/// returns them.
pub fn one_outage(log: &str, fault_at: f64) -> (&str, &str) {
    let lost: Vec<&str> = detection_lines(log)
        .into_iter()
        .filter(|l| log_time(l).is_some_and(|t| t > fault_at))
        .collect();
    let restored = recovery_lines(log, fault_at);
    assert_eq!(lost.len(), 1, "one line on what happened:\n{log}");
    assert_eq!(restored.len(), 1, "one line on the recovery:\n{log}");
    (lost[0], restored[0])
}

/// An LSN (`16/B374D848`) as a number.
pub fn parse_lsn(text: &str) -> u64 {
    let (hi, lo) = text
        .trim()
        .split_once('/')
        .unwrap_or_else(|| panic!("not an LSN: {text:?}"));
    (u64::from_str_radix(hi, 16).unwrap() << 32) | u64::from_str_radix(lo, 16).unwrap()
}

/// The `confirmed_flush_lsn` of cdc's slot (over the Unix socket).
pub fn confirmed_flush_lsn(pg: &Postgres) -> u64 {
    parse_lsn(
        &pg.psql("SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'cdc'")
            .unwrap(),
    )
}

/// The slot's `confirmed_flush_lsn` beside how many whole lines the file
/// sink held then, sampled while it cannot write, to check that cdc never
/// acknowledges what no sink holds.
#[derive(Debug, Default)]
pub struct AckSamples(Vec<(u64, usize)>);

impl AckSamples {
    /// One sample: the slot first, then the file, so the file holds at
    /// least what it held when the slot was read.
    pub fn take(&mut self, pg: &Postgres, events: &Path) {
        let confirmed = confirmed_flush_lsn(pg);
        self.0.push((confirmed, read_lines(events).len()));
    }

    /// A sample every 500 ms for `time`.
    pub fn over(&mut self, pg: &Postgres, events: &Path, time: Duration) {
        let end = std::time::Instant::now() + time;
        while std::time::Instant::now() < end {
            self.take(pg, events);
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// After the run, `events` whole: at each sample the slot stood before
    /// the commit of the first event the file did not hold yet. That
    /// commit's end is the `source.sequence` "last commit" of the first
    /// later event of another transaction (a bound no earlier than it).
    /// Not the commit before the event: between the blocks of a streamed
    /// transaction the slot may stand inside it, which is safe, since the
    /// server sends again every transaction committing after the slot.
    /// Returns how many samples had such an event after them; at least
    /// one must.
    pub fn assert_held(&self, events: &Path) -> usize {
        let lines = read_lines(events);
        // The end of the last commit before this event's transaction.
        let before = |line: &str| -> Option<u64> {
            let e: Value = serde_json::from_str(line).ok()?;
            let sequence: Value = serde_json::from_str(e["source"]["sequence"].as_str()?).ok()?;
            sequence[0].as_str()?.parse().ok()
        };
        let mut checked = 0;
        for &(confirmed, held) in &self.0 {
            let Some((n, own)) = lines
                .iter()
                .enumerate()
                .skip(held)
                .find_map(|(n, l)| before(l).map(|b| (n, b)))
            else {
                continue;
            };
            // Its transaction's commit end: where a later transaction's
            // events say the last commit ended.
            let Some(bound) = lines[n..]
                .iter()
                .filter_map(|l| before(l))
                .find(|&b| b > own)
            else {
                continue;
            };
            checked += 1;
            assert!(
                confirmed < bound,
                "the slot confirmed {confirmed:X} while the file held {held} lines: line {} (not yet written then) belongs to a transaction committed by {bound:X}, so cdc acknowledged what no sink held: {}",
                n + 1,
                &lines[n][..lines[n].len().min(300)]
            );
        }
        assert!(
            checked > 0,
            "no sample was taken while an event was undelivered ({} samples)",
            self.0.len()
        );
        checked
    }
}

/// A server crash ends both of cdc's sessions, each noticed by its own
/// part: the replication stream and the lease's lock connection (polled
/// once a second, so often after the stream is back). Each says once what
/// happened and once that it recovered: at most one `replication
/// connection lost` and one `lost the lease` line, exactly one of them a
/// warning (the second to notice says it at info),
/// each answered by one `replication connection restored` (unless the lost
/// lease restarted the stream first) or `holding the lease`, the last
/// after the last warning. Returns (what happened, recovery) lines.
pub fn one_line_each(log: &str, fault_at: f64) -> (Vec<&str>, Vec<&str>) {
    let after = |needle: &str| -> Vec<&str> {
        lines_with(log, needle)
            .into_iter()
            .filter(|l| log_time(l).is_some_and(|t| t > fault_at))
            .collect()
    };
    let stream_lost = after("replication connection lost");
    let stream_back = after("replication connection restored");
    let lease_lost = after("stopping before acknowledging anything more");
    let lease_back = after("holding the lease");
    assert!(
        stream_lost.len() <= 1 && lease_lost.len() <= 1,
        "one line on what happened to each connection:\n{log}"
    );
    let warned = stream_lost
        .iter()
        .chain(&lease_lost)
        .filter(|l| is_warning(l))
        .count();
    assert_eq!(warned, 1, "one warning on what happened:\n{log}");
    assert_eq!(
        lease_back.len(),
        lease_lost.len(),
        "one line on taking the lease back:\n{log}"
    );
    assert!(stream_back.len() <= stream_lost.len(), "{log}");
    if lease_lost.is_empty() {
        assert_eq!(stream_back.len(), 1, "one line on the recovery:\n{log}");
    }
    let happened: Vec<&str> = stream_lost.into_iter().chain(lease_lost).collect();
    let recovered: Vec<&str> = stream_back.into_iter().chain(lease_back).collect();
    let last = |lines: &[&str]| lines.iter().filter_map(|l| log_time(l)).fold(0.0, f64::max);
    assert!(
        last(&recovered) > last(&happened),
        "no line on the recovery after the last fault line:\n{log}"
    );
    (happened, recovered)
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
    let window = Mutex::new(None);
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
            *window.lock().unwrap() = Some(WindowHeld::open(pg));
        },
        fault: || {
            // The fault lands inside a window; after it the window may go
            // on (or fail, and be opened again).
            fault();
            let held = window.lock().unwrap().take().unwrap();
            eprintln!("the fault came in window {}", held.low_watermark);
            held.release();
        },
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

/// A snapshot window held open: the test locks the low watermark row of
/// the window in flight, so the high watermark's transaction (which
/// deletes that row) waits until [`WindowHeld::release`]. Proof that a
/// fault came mid-window: a low watermark in the log, its high one not.
pub struct WindowHeld {
    pub low_watermark: String,
    release: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl WindowHeld {
    pub fn open(pg: &Postgres) -> WindowHeld {
        let (locked_tx, locked) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let url = pg.url();
        let thread = std::thread::spawn(move || {
            with_client(&url, async move |mut client| {
                loop {
                    let tx = client.transaction().await.unwrap();
                    let rows = tx
                        .query(
                            "SELECT id FROM cdc.signal WHERE type = 'snapshot-window-open' FOR UPDATE SKIP LOCKED LIMIT 1",
                            &[],
                        )
                        .await
                        .unwrap();
                    if let Some(row) = rows.first() {
                        locked_tx.send(row.get::<_, String>(0)).unwrap();
                        // Blocks this runtime: its connection has nothing
                        // to do while the lock is held.
                        let _ = released.recv();
                        // A crash may have ended the session already.
                        let _ = tx.rollback().await;
                        return;
                    }
                    drop(tx);
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            })
        });
        let low_watermark = locked
            .recv_timeout(Duration::from_secs(60))
            .expect("a snapshot window to hold open");
        WindowHeld {
            low_watermark,
            release,
            thread,
        }
    }

    pub fn release(self) {
        let _ = self.release.send(());
        self.thread.join().unwrap();
    }
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
