//! `cdc run` with the Kafka sink against a real PostgreSQL and a real
//! Kafka-protocol broker (tansu): what a consumer group reads.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cdc_testcontainers::Kafka;
use common::*;
use rand::Rng;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::ClientConfig;
use serde_json::{json, Value};

const TABLES: [&str; 3] = ["a", "b", "c"];
const WRITERS: i64 = 3;
const KEYS_PER_WRITER: i64 = 12;

/// A config for `cdc run` with the Kafka sink; `sink_extra` goes into
/// `[sink]`, `after` after everything.
fn kafka_config(
    dir: &Path,
    url: &str,
    name: &str,
    tables: &[&str],
    kafka: &Kafka,
    sink_extra: &str,
    after: &str,
) -> PathBuf {
    let tables = tables
        .iter()
        .map(|t| format!("\"public.{t}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let text = format!(
        "[source]\ntype = \"postgres\"\nurl = {url:?}\ntables = [{tables}]\nname = {name:?}\nstatus_interval_secs = 1\n\n\
         [sink]\ntype = \"kafka\"\nbootstrap_servers = {:?}\npartitions = 3\nflush_timeout_ms = 1000\n{sink_extra}\n\n\
         [pipeline]\nflush_interval_ms = 50\n\n{after}\n",
        kafka.bootstrap_servers()
    );
    let path = dir.join("cdc.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A unique source name, so topics of concurrent tests (or an external
/// broker's earlier runs) never mix.
fn unique_name(base: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{base}{}n{nanos}", std::process::id())
}

/// One record as a consumer saw it.
#[derive(Debug, Clone)]
struct Received {
    topic: String,
    key: Option<Vec<u8>>,
    value: Option<Value>,
    headers: HashMap<String, String>,
}

/// A consumer group member subscribed to `topics`, polling on its own
/// thread into a shared list until stopped.
struct GroupReader {
    received: Arc<std::sync::Mutex<Vec<Received>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl GroupReader {
    fn start(bootstrap: &str, group: &str, topics: &[String]) -> GroupReader {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", group)
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "true")
            // Topics appear when the sink first writes to them.
            .set("topic.metadata.refresh.interval.ms", "500")
            .create()
            .unwrap();
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer.subscribe(&names).unwrap();
        let received = Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s) = (received.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                let Some(message) = consumer.poll(Duration::from_millis(100)) else {
                    continue;
                };
                // Not-yet-existing topics report errors until created.
                let Ok(message) = message else { continue };
                let mut headers = HashMap::new();
                if let Some(h) = message.headers() {
                    for header in h.iter() {
                        headers.insert(
                            header.key.to_string(),
                            String::from_utf8_lossy(header.value.unwrap_or_default()).into_owned(),
                        );
                    }
                }
                r.lock().unwrap().push(Received {
                    topic: message.topic().to_string(),
                    key: message.key().map(<[u8]>::to_vec),
                    value: message.payload().map(|p| {
                        serde_json::from_slice(p)
                            .unwrap_or(Value::String(String::from_utf8_lossy(p).into_owned()))
                    }),
                    headers,
                });
            }
        });
        GroupReader {
            received,
            stop,
            thread: Some(thread),
        }
    }

    fn snapshot(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        mut done: impl FnMut(&[Received]) -> bool,
    ) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.snapshot();
            if done(&got) {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; got {} records",
                got.len()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for GroupReader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Per (table, key): committed states in commit order (`None`: deleted).
type History = States<(String, i64)>;

/// One writer: upserts and deletes on its own keys of every table.
fn writer(url: String, writer: i64, transactions: i64) -> History {
    with_client(&url, async move |client| {
        let mut history: History = HashMap::new();
        let mut rng = rand::rng();
        for n in 1..=transactions {
            let table = TABLES[rng.random_range(0..TABLES.len())];
            let key = writer * 1000 + rng.random_range(0..KEYS_PER_WRITER);
            let version = writer * 1_000_000 + n;
            if rng.random_ratio(1, 8) {
                let deleted = client
                    .execute(&format!("DELETE FROM {table} WHERE id = $1"), &[&key])
                    .await
                    .unwrap();
                if deleted == 1 {
                    history
                        .entry((table.to_string(), key))
                        .or_default()
                        .push(None);
                }
            } else {
                client
                    .execute(
                        &format!(
                            "INSERT INTO {table} VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET v = excluded.v"
                        ),
                        &[&key, &version],
                    )
                    .await
                    .unwrap();
                history
                    .entry((table.to_string(), key))
                    .or_default()
                    .push(Some(version));
            }
            if n % 40 == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        history
    })
}

/// Per (table, key), the row states in the order a consumer saw them.
fn states(received: &[Received]) -> History {
    let mut out: History = HashMap::new();
    for r in received {
        // Tombstones follow their delete: nothing new.
        let Some(value) = &r.value else { continue };
        let table = value["source"]["table"].as_str().unwrap().to_string();
        match value["op"].as_str().unwrap() {
            "d" => out
                .entry((table, value["before"]["id"].as_i64().unwrap()))
                .or_default()
                .push(None),
            _ => out
                .entry((table, value["after"]["id"].as_i64().unwrap()))
                .or_default()
                .push(Some(value["after"]["v"].as_i64().unwrap())),
        }
    }
    out
}

/// The `TABLES`, each `(id bigint PRIMARY KEY, v bigint)`.
fn tables_ddl() -> String {
    TABLES
        .iter()
        .map(|t| format!("CREATE TABLE {t} (id bigint PRIMARY KEY, v bigint);"))
        .collect()
}

/// Reads the tables' topics of `name` until every key of `history` shows its
/// last committed state and `also` holds of what was seen.
fn read_until_last_states(
    kafka: &Kafka,
    name: &str,
    engine: &mut Engine,
    history: &History,
    timeout_secs: u64,
    also: impl Fn(&History) -> bool,
) -> Vec<Received> {
    let topics: Vec<String> = TABLES
        .iter()
        .map(|t| format!("{name}.public.{t}"))
        .collect();
    let reader = GroupReader::start(kafka.bootstrap_servers(), &format!("{name}-group"), &topics);
    reader.wait_for(
        "every key's last committed state",
        Duration::from_secs(timeout_secs),
        |got| {
            assert!(engine.is_running(), "cdc exited:\n{}", engine.log_text());
            let seen = states(got);
            also(&seen)
                && history
                    .iter()
                    .all(|(k, h)| seen.get(k).and_then(|s| s.last()) == h.last())
        },
    )
}

#[test]
fn concurrent_writers_survive_sigkill_and_each_key_arrives_in_commit_order() {
    let pg = postgres_with(&tables_ddl());
    let kafka = Kafka::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let name = unique_name("e2e");
    let config = kafka_config(dir.path(), &pg.url(), &name, &TABLES, &kafka, "", "");
    let mut engine = Engine::start(&config);
    wait_streaming(&mut engine);

    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let url = pg.url();
            std::thread::spawn(move || writer(url, w, 1500))
        })
        .collect();
    let mut rng = rand::rng();
    let mut kills = 0;
    while writers.iter().any(|w| !w.is_finished()) || kills < 2 {
        std::thread::sleep(Duration::from_millis(rng.random_range(200..900)));
        engine.kill();
        kills += 1;
        engine = Engine::start(&config);
    }
    let mut history: History = HashMap::new();
    for w in writers {
        history.extend(w.join().unwrap());
    }

    let received = read_until_last_states(&kafka, &name, &mut engine, &history, 120, |_| true);
    assert_eq!(engine.terminate().code(), Some(0));

    assert_history_kept(&history, &states(&received));
    // Every record sits on its table's topic, keyed by the primary key, with
    // the op and position headers; every delete has its tombstone.
    for r in &received {
        let key: Value = serde_json::from_slice(r.key.as_deref().unwrap()).unwrap();
        match &r.value {
            Some(v) => {
                assert_eq!(
                    r.topic,
                    format!("{name}.public.{}", v["source"]["table"].as_str().unwrap())
                );
                let row = if v["op"] == "d" {
                    &v["before"]
                } else {
                    &v["after"]
                };
                assert_eq!(key, json!({"id": row["id"]}));
                assert_eq!(
                    r.headers.get("cdc.op").map(String::as_str),
                    v["op"].as_str()
                );
                assert_eq!(
                    r.headers.get("cdc.position"),
                    v["source"]["position"]
                        .as_str()
                        .map(str::to_string)
                        .as_ref()
                );
            }
            None => assert!(r.headers.contains_key("cdc.position")),
        }
    }
    let deletes = received
        .iter()
        .filter(|r| r.value.as_ref().is_some_and(|v| v["op"] == "d"))
        .count();
    let tombstones = received.iter().filter(|r| r.value.is_none()).count();
    assert_eq!(deletes, tombstones);
    eprintln!(
        "{kills} kills, {} committed changes, {} records read",
        history.values().map(Vec::len).sum::<usize>(),
        received.len()
    );
}

#[test]
fn outbox_inserts_arrive_on_routed_topics_with_key_value_and_headers() {
    let pg = postgres_with(
        "CREATE TABLE outbox (id uuid PRIMARY KEY, aggregatetype text NOT NULL, aggregateid text NOT NULL,
                              type text NOT NULL, payload jsonb);
         CREATE TABLE orders (id int PRIMARY KEY, total int);",
    );
    let kafka = Kafka::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let name = unique_name("ob");
    let config = kafka_config(
        dir.path(),
        &pg.url(),
        &name,
        &["orders", "outbox"],
        &kafka,
        "",
        "[sink.outbox]\ntable = \"public.outbox\"\n",
    );
    let mut engine = Engine::start(&config);
    wait_streaming(&mut engine);
    // The usual pattern: the business change and its event in one
    // transaction, the outbox row deleted again at once.
    pg.psql(
        "BEGIN;
         INSERT INTO orders VALUES (1, 50);
         INSERT INTO outbox VALUES ('00000000-0000-0000-0000-000000000001', 'order', '1', 'OrderCreated', '{\"total\": 50}');
         DELETE FROM outbox WHERE id = '00000000-0000-0000-0000-000000000001';
         COMMIT;
         INSERT INTO outbox VALUES ('00000000-0000-0000-0000-000000000002', 'customer', 'c-7', 'CustomerMoved', '{\"city\": \"Lyon\"}');
         INSERT INTO outbox VALUES ('00000000-0000-0000-0000-000000000003', 'order', '1', 'OrderPaid', '{\"paid\": true}');",
    )
    .unwrap();
    let topics = vec![
        format!("{name}.outbox.order"),
        format!("{name}.outbox.customer"),
        format!("{name}.public.orders"),
    ];
    let reader = GroupReader::start(kafka.bootstrap_servers(), &format!("{name}-g"), &topics);
    let got = reader.wait_for("4 records", Duration::from_secs(60), |got| {
        assert!(engine.is_running(), "cdc exited:\n{}", engine.log_text());
        got.len() >= 4
    });
    // Nothing more comes (the delete is not routed, the outbox table has no topic).
    std::thread::sleep(Duration::from_millis(500));
    let got_after = reader.snapshot();
    assert_eq!(got_after.len(), 4, "{got_after:#?}");
    let on = |topic: &str| -> Vec<&Received> {
        got.iter()
            .filter(|r| r.topic == format!("{name}.{topic}"))
            .collect()
    };
    let orders = on("outbox.order");
    assert_eq!(orders.len(), 2);
    assert_eq!(orders[0].key.as_deref(), Some(&b"1"[..]));
    assert_eq!(orders[0].value, Some(json!({"total": 50})));
    assert_eq!(
        orders[0].headers["id"],
        "00000000-0000-0000-0000-000000000001"
    );
    assert_eq!(orders[0].headers["type"], "OrderCreated");
    assert_eq!(orders[1].headers["type"], "OrderPaid");
    let customers = on("outbox.customer");
    assert_eq!(customers.len(), 1);
    assert_eq!(customers[0].key.as_deref(), Some(&b"c-7"[..]));
    assert_eq!(customers[0].value, Some(json!({"city": "Lyon"})));
    assert_eq!(on("public.orders").len(), 1);
    engine.terminate();
}

#[test]
fn a_missing_topic_stops_the_engine_with_one_clear_line() {
    let pg = postgres_with("CREATE TABLE t (id int PRIMARY KEY);");
    let kafka = Kafka::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let name = unique_name("nt");
    // tansu never auto-creates topics.
    let config = kafka_config(
        dir.path(),
        &pg.url(),
        &name,
        &["t"],
        &kafka,
        "create_topics = false",
        "",
    );
    let mut engine = Engine::start(&config);
    wait_streaming(&mut engine);
    pg.psql("INSERT INTO t VALUES (1);").unwrap();
    wait_until("cdc to stop", Duration::from_secs(60), || {
        !engine.is_running()
    });
    let log = engine.log_text();
    let line = log
        .lines()
        .find(|l| l.contains(&format!("{name}.public.t")) && l.contains("does not exist"))
        .unwrap_or_else(|| panic!("no line naming the topic:\n{log}"));
    eprintln!("{line}");
    assert!(line.contains("create_topics"), "{line}");
}

/// The broker frozen (SIGSTOP) for longer than librdkafka's request
/// timeout (30 s) while writers commit and flushes are in flight: cdc keeps
/// retrying without acknowledging (the slot does not move while nothing
/// can be delivered), and once the broker thaws every change arrives in
/// per-key order.
#[test]
fn a_broker_paused_past_every_timeout_is_waited_out_without_acknowledging() {
    broker_paused(Duration::from_secs(32), false, false, |_| {});
}

/// The same pause while an incremental snapshot runs: the windows in
/// flight wait with the sink, and the snapshot completes after the thaw
/// with every row.
#[test]
fn a_broker_paused_during_a_snapshot_window_loses_nothing() {
    broker_paused(Duration::from_secs(10), false, true, |_| {});
}

/// PostgreSQL crashes (immediate stop, start) while a flush waits on the
/// frozen broker: the reader reconnects, the undelivered events are read
/// again from the slot, and nothing is lost.
#[test]
fn a_postgres_crash_during_a_flush_loses_nothing() {
    broker_paused(Duration::from_secs(5), true, false, |pg| {
        pg.restart().unwrap()
    });
}

/// Writers commit while the broker is frozen for `hold` (after 3 s of
/// settling) and `meanwhile` runs (after the writers are done, with
/// `writers_first`: their connections would not survive a crash); then it
/// thaws and every change must arrive. With `snapshot`, table `a` holds
/// rows no writer touches and is snapshotted in small chunks meanwhile.
fn broker_paused(
    hold: Duration,
    writers_first: bool,
    snapshot: bool,
    meanwhile: impl FnOnce(&cdc_testcontainers::Postgres),
) {
    let pg = postgres_with(&tables_ddl());
    let kafka = Kafka::start().unwrap();
    if kafka.is_external() {
        eprintln!("skipped: an external broker cannot be paused");
        return;
    }
    const SNAPSHOT_ROWS: i64 = 20_000;
    if snapshot {
        pg.psql(&format!(
            "INSERT INTO a SELECT g, 0 FROM generate_series(100000, {}) g",
            100_000 + SNAPSHOT_ROWS - 1
        ))
        .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let name = unique_name("pause");
    let after = if snapshot {
        "[snapshot]\nchunk_size = 200\n"
    } else {
        ""
    };
    let config = kafka_config(dir.path(), &pg.url(), &name, &TABLES, &kafka, "", after);
    let mut engine = Engine::start(&config);
    wait_streaming(&mut engine);
    if snapshot {
        signal(
            &pg,
            "s-pause",
            "execute-snapshot",
            r#"{"data-collections": ["public.a"], "type": "incremental"}"#,
        );
    }
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let url = pg.url();
            std::thread::spawn(move || writer(url, w, 3000))
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    let confirmed = || {
        pg.psql("SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'cdc'")
            .unwrap()
    };
    let snapshot_done_before = engine.log_text().contains("snapshot complete");
    kafka.pause().unwrap();
    // What was in flight at the pause may still be acknowledged; after
    // that, nothing can be.
    std::thread::sleep(Duration::from_secs(3));
    let frozen_at = confirmed();
    let mut history: History = HashMap::new();
    let mut writers = Some(writers);
    if writers_first {
        for w in writers.take().into_iter().flatten() {
            history.extend(w.join().unwrap());
        }
    }
    meanwhile(&pg);
    std::thread::sleep(hold);
    let after = confirmed();
    kafka.resume().unwrap();
    // Not forward; a crash may move it back (the server persists a slot's
    // position at checkpoints), which only means resending.
    let lsn = |text: &str| {
        let (hi, lo) = text.split_once('/').unwrap();
        (u64::from_str_radix(hi, 16).unwrap() << 32) | u64::from_str_radix(lo, 16).unwrap()
    };
    assert!(
        lsn(&after) <= lsn(&frozen_at),
        "the slot moved from {frozen_at} to {after} while the broker could take nothing"
    );
    for w in writers.into_iter().flatten() {
        history.extend(w.join().unwrap());
    }
    let received = read_until_last_states(&kafka, &name, &mut engine, &history, 180, |seen| {
        !snapshot
            || (100_000..100_000 + SNAPSHOT_ROWS)
                .all(|id| seen.contains_key(&("a".to_string(), id)))
    });
    let log = engine.log_text();
    assert_eq!(engine.terminate().code(), Some(0), "{log}");
    assert_history_kept(&history, &states(&received));
    if snapshot {
        assert!(!snapshot_done_before, "the snapshot ended before the pause");
        assert!(log.contains("snapshot complete"), "{log}");
    }
    let retried = log
        .lines()
        .filter(|l| l.contains("retrying without acknowledging"))
        .count();
    assert!(retried >= 1, "no flush failed while paused:\n{log}");
    eprintln!(
        "broker paused {}s: slot held at {after}; {retried} warning lines; {} committed changes, {} records read",
        hold.as_secs() + 3,
        history.values().map(Vec::len).sum::<usize>(),
        received.len()
    );
}
