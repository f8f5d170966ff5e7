//! `cdc run` with the Kafka sink against a real PostgreSQL and a real
//! Kafka-protocol broker (tansu): what a consumer group reads.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod harness;

use std::collections::HashMap;
use std::time::Duration;

use std::os::unix::fs::MetadataExt;

use cdc_testcontainers::{Kafka, Netns};
use common::*;
use harness::kafka::{
    assert_in_order, kafka_config, states, tables_ddl, unique_name, writer, GroupReader, History,
    Received, TABLES, WRITERS,
};
use harness::{lines_with, log_time, now_secs, strip_ansi, WindowHeld};
use rand::Rng;
use serde_json::{json, Value};

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

    assert_in_order(&history, &received);
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

/// Transaction metadata through a real broker: BEGIN and END records on
/// `<prefix>.transaction` (created on first use), keyed by their id, the
/// changes between them carrying their `transaction` block.
#[test]
fn transaction_records_arrive_on_their_topic_around_the_changes() {
    let pg = postgres_with("CREATE TABLE orders (id int PRIMARY KEY, total int);");
    let kafka = Kafka::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let name = unique_name("tx");
    let config = kafka_config(dir.path(), &pg.url(), &name, &["orders"], &kafka, "", "");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[format]\n\"provide.transaction.metadata\" = true\n");
    std::fs::write(&config, text).unwrap();
    let mut engine = Engine::start(&config);
    wait_streaming(&mut engine);
    pg.psql("BEGIN; INSERT INTO orders VALUES (1, 5), (2, 6); UPDATE orders SET total = 7 WHERE id = 1; COMMIT;")
        .unwrap();
    let topics = vec![
        format!("{name}.transaction"),
        format!("{name}.public.orders"),
    ];
    let reader = GroupReader::start(kafka.bootstrap_servers(), &format!("{name}-g"), &topics);
    let got = reader.wait_for("5 records", Duration::from_secs(60), |got| {
        assert!(engine.is_running(), "cdc exited:\n{}", engine.log_text());
        got.len() >= 5
    });
    let on = |topic: &str| -> Vec<&Received> {
        got.iter()
            .filter(|r| r.topic == format!("{name}.{topic}"))
            .collect()
    };
    // Keyed by id, BEGIN and END may sit in different partitions: found
    // by status, not by arrival.
    let boundaries = on("transaction");
    assert_eq!(boundaries.len(), 2, "{got:#?}");
    let with_status = |status: &str| {
        boundaries
            .iter()
            .find(|r| r.value.as_ref().is_some_and(|v| v["status"] == status))
            .unwrap_or_else(|| panic!("no {status} record: {got:#?}"))
    };
    let (begin, end) = (with_status("BEGIN"), with_status("END"));
    let key: Value = serde_json::from_slice(end.key.as_deref().unwrap()).unwrap();
    let (begin, end) = (begin.value.as_ref().unwrap(), end.value.as_ref().unwrap());
    assert_eq!(begin["event_count"], Value::Null);
    assert_eq!(end["event_count"], 3);
    assert_eq!(
        end["data_collections"],
        json!([{"data_collection": "public.orders", "event_count": 3}])
    );
    assert_eq!(key, json!({"id": end["id"]}));
    let xid = end["id"]
        .as_str()
        .unwrap()
        .split(':')
        .next()
        .unwrap()
        .to_string();
    let orders = on("public.orders");
    assert_eq!(orders.len(), 3);
    let mut orders: Vec<&Value> = orders
        .iter()
        .map(|r| &r.value.as_ref().unwrap()["transaction"])
        .collect();
    orders.sort_by_key(|block| block["total_order"].as_u64());
    for (n, block) in orders.iter().enumerate() {
        assert_eq!(block["total_order"], n as u64 + 1);
        assert!(
            block["id"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{xid}:")),
            "{block}"
        );
    }
    engine.terminate();
}

/// Heartbeat records through a real broker, while nothing else happens:
/// Debezium's topic, key and value.
#[test]
fn heartbeat_records_arrive_on_debeziums_topic_while_the_database_is_idle() {
    let pg = postgres_with("CREATE TABLE orders (id int PRIMARY KEY, total int);");
    let kafka = Kafka::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let name = unique_name("hb");
    let config = kafka_config(
        dir.path(),
        &pg.url(),
        &name,
        &["orders"],
        &kafka,
        "",
        "[format]\n\"heartbeat.interval.ms\" = 200\n",
    );
    let mut engine = Engine::start(&config);
    wait_streaming(&mut engine);
    let topics = vec![format!("__debezium-heartbeat.{name}")];
    let reader = GroupReader::start(kafka.bootstrap_servers(), &format!("{name}-g"), &topics);
    let got = reader.wait_for("3 heartbeats", Duration::from_secs(60), |got| {
        assert!(engine.is_running(), "cdc exited:\n{}", engine.log_text());
        got.len() >= 3
    });
    let mut times = Vec::new();
    for record in &got {
        let key: Value = serde_json::from_slice(record.key.as_deref().unwrap()).unwrap();
        assert_eq!(key, json!({"serverName": name}));
        let value = record.value.as_ref().unwrap();
        assert_eq!(value.as_object().unwrap().len(), 1, "{value}");
        times.push(value["ts_ms"].as_i64().unwrap());
    }
    times.sort_unstable();
    times.dedup();
    assert!(times.len() >= 3, "heartbeats repeat one time: {times:?}");
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
/// timeout (30 s) and the server's `wal_sender_timeout` (5 s) while writers
/// commit and flushes are in flight: cdc keeps retrying without
/// acknowledging (the slot does not move while nothing can be delivered),
/// keeps answering the server (the replication connection survives), and
/// once the broker thaws every change arrives in per-key order.
#[test]
fn a_broker_paused_past_every_timeout_is_waited_out_without_acknowledging() {
    broker_down(
        Down::Paused,
        Duration::from_secs(32),
        false,
        Phase::Streaming,
        |_| {},
    );
}

/// The same pause while an incremental snapshot runs, with one window held
/// open from before the pause until after the thaw (its high watermark
/// waits on a lock of its low one): the window's log events wait with the
/// sink, and the snapshot completes after the thaw with every row.
#[test]
fn a_broker_paused_during_a_snapshot_window_loses_nothing() {
    broker_down(
        Down::Paused,
        Duration::from_secs(32),
        false,
        Phase::Snapshot,
        |_| {},
    );
}

/// The broker frozen while a large transaction is being flushed to it
/// (its first records read back, the slot not yet past it), past every
/// timeout: nothing of it is acknowledged while frozen, all of it arrives
/// after the thaw.
#[test]
fn a_broker_paused_during_a_flush_loses_nothing() {
    broker_down(
        Down::Paused,
        Duration::from_secs(32),
        false,
        Phase::Flush,
        |_| {},
    );
}

/// PostgreSQL crashes (immediate stop, start) while a flush waits on the
/// frozen broker: the reader reconnects, the undelivered events are read
/// again from the slot, and nothing is lost.
#[test]
fn a_postgres_crash_during_a_flush_loses_nothing() {
    broker_down(
        Down::Paused,
        Duration::from_secs(5),
        true,
        Phase::Streaming,
        |pg| pg.restart().unwrap(),
    );
}

/// The broker SIGKILLed while writers commit, restarted 8 s later on its
/// SQLite storage: whatever it acknowledged is still there, whatever it
/// did not is sent again (the slot never moved past it), nothing is lost.
/// On in-memory storage the restarted broker has lost its topics, cdc stops
/// naming the missing topic, and this fails.
#[test]
fn a_broker_killed_and_restarted_while_streaming_loses_nothing() {
    broker_down(
        Down::Killed,
        Duration::from_secs(5),
        false,
        Phase::Streaming,
        |_| {},
    );
}

/// The broker frozen until a flush has timed out waiting on it, then
/// SIGKILLed with that flush's records in flight (some written, some not,
/// none confirmed), then restarted.
#[test]
fn a_broker_killed_during_a_flush_loses_nothing() {
    broker_down(
        Down::KilledMidFlush,
        Duration::from_secs(5),
        false,
        Phase::Streaming,
        |_| {},
    );
}

/// The broker runs in a network namespace of the test's own and its path
/// is blackholed (nft DROP both ways: no RST, no FIN) for 30 s while
/// flushes wait on it, then healed.
#[test]
fn a_blackhole_to_the_broker_during_a_flush_loses_nothing() {
    broker_down(
        Down::Blackholed,
        Duration::from_secs(27),
        false,
        Phase::Streaming,
        |_| {},
    );
}

/// What else goes on when the broker goes away, besides the writers.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Streaming,
    /// An incremental snapshot of table `a` (rows no writer touches).
    Snapshot,
    /// A large transaction into table `a` (rows no writer touches) being
    /// flushed: the fault comes once its first records are read back.
    Flush,
}

/// How the broker goes away.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Down {
    /// SIGSTOP, then SIGCONT.
    Paused,
    /// SIGKILL, then a start on the same storage.
    Killed,
    /// SIGSTOP until a flush has failed on it, SIGKILL, then a start.
    KilledMidFlush,
    /// Every packet to and from it dropped, then healed.
    Blackholed,
}

/// Writers commit while the broker is down for `hold` (after 3 s of
/// settling) and `meanwhile` runs (after the writers are done, with
/// `writers_first`: their connections would not survive a crash); then it
/// comes back and every change must arrive. The server's
/// `wal_sender_timeout` is 5 s: unless `meanwhile` crashes it, the
/// replication connection must outlive the outage.
fn broker_down(
    down: Down,
    hold: Duration,
    writers_first: bool,
    phase: Phase,
    meanwhile: impl FnOnce(&cdc_testcontainers::Postgres),
) {
    let snapshot = phase == Phase::Snapshot;
    let ns = if down == Down::Blackholed {
        if !std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0) {
            eprintln!("skipped: network namespaces need root");
            return;
        }
        Some(Netns::create().unwrap())
    } else {
        None
    };
    let pg = cdc_testcontainers::Postgres::builder()
        .setting("wal_sender_timeout", "5s")
        .start()
        .unwrap();
    pg.psql(&tables_ddl()).unwrap();
    let mut builder = Kafka::builder().durable(matches!(down, Down::Killed | Down::KilledMidFlush));
    if let Some(ns) = &ns {
        builder = builder.netns(ns);
    }
    let mut kafka = builder.start().unwrap();
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
    let name = unique_name("down");
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
    // The fault comes and goes while one window stays open: its high
    // watermark waits on the test's lock of its low one.
    let window = snapshot.then(|| WindowHeld::open(&pg));
    // Below the large transaction's commit: the slot may not pass it
    // while the transaction is not all delivered.
    let mut before_commit = None;
    if phase == Phase::Flush {
        before_commit = Some(large_transaction(&pg));
        let probe = GroupReader::start(
            kafka.bootstrap_servers(),
            &format!("{name}-probe"),
            &[format!("{name}.public.a")],
        );
        probe.wait_for(
            "the first records of the large transaction",
            Duration::from_secs(120),
            |got| !got.is_empty(),
        );
    }
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let url = pg.url();
            std::thread::spawn(move || writer(url, w, 3000))
        })
        .collect();
    if phase != Phase::Flush {
        std::thread::sleep(Duration::from_secs(1));
    }
    let confirmed = || {
        pg.psql("SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'cdc'")
            .unwrap()
    };
    let snapshot_done_before = engine.log_text().contains("snapshot complete");
    let retrying =
        |engine: &Engine| lines_with(&engine.log_text(), "retrying without acknowledging").len();
    let fault_at = now_secs();
    match down {
        Down::Paused => kafka.pause().unwrap(),
        Down::Killed => kafka.kill().unwrap(),
        Down::KilledMidFlush => {
            let before = retrying(&engine);
            kafka.pause().unwrap();
            // A flush waited on the frozen broker until it timed out; the
            // retry's records are in flight when the broker dies.
            wait_until(
                "a flush to fail on the frozen broker",
                Duration::from_secs(60),
                || retrying(&engine) > before,
            );
            kafka.kill().unwrap();
        }
        Down::Blackholed => ns.as_ref().unwrap().blackhole().unwrap(),
    }
    // What was in flight at the fault may still be acknowledged; after
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
    // Sampled all along: it may not move at all while the broker is away.
    let mut samples = vec![frozen_at.clone()];
    let end = std::time::Instant::now() + hold;
    while std::time::Instant::now() < end {
        std::thread::sleep(Duration::from_millis(500));
        if !writers_first {
            samples.push(confirmed());
        }
    }
    let after = confirmed();
    samples.push(after.clone());
    // The sink may recover before the healing call returns (a resumed
    // broker answers at once): its line counts from the healing on.
    let healing_at = now_secs();
    match down {
        Down::Paused => kafka.resume().unwrap(),
        Down::Killed | Down::KilledMidFlush => kafka.start_again().unwrap(),
        Down::Blackholed => ns.as_ref().unwrap().heal().unwrap(),
    }
    let back_at = now_secs();
    let low_watermark = window.map(|window| {
        let id = window.low_watermark.clone();
        window.release();
        id
    });
    // Not forward; a crash may move it back (the server persists a slot's
    // position at checkpoints), which only means resending.
    let lsn = |text: &str| {
        let (hi, lo) = text.split_once('/').unwrap();
        (u64::from_str_radix(hi, 16).unwrap() << 32) | u64::from_str_radix(lo, 16).unwrap()
    };
    for sample in &samples {
        assert!(
            lsn(sample) <= lsn(&frozen_at),
            "the slot moved from {frozen_at} to {sample} while the broker could take nothing"
        );
    }
    if let Some(bound) = &before_commit {
        assert!(
            lsn(&frozen_at) <= lsn(bound),
            "the large transaction (commit after {bound}) was delivered whole before the fault (slot at {frozen_at}): no flush was in progress"
        );
    }
    for w in writers.into_iter().flatten() {
        history.extend(w.join().unwrap());
    }
    let received = read_until_last_states(&kafka, &name, &mut engine, &history, 180, |seen| {
        let rows = match phase {
            Phase::Streaming => 0,
            Phase::Snapshot => SNAPSHOT_ROWS,
            Phase::Flush => LARGE_ROWS,
        };
        (100_000..100_000 + rows).all(|id| seen.contains_key(&("a".to_string(), id)))
    });
    let log = engine.log_text();
    assert_eq!(engine.terminate().code(), Some(0), "{log}");
    assert_in_order(&history, &received);
    if !writers_first {
        // Keepalive replies went on while the sink stalled.
        assert!(
            lines_with(&log, "replication connection lost").is_empty(),
            "the replication connection dropped while the sink stalled:\n{log}"
        );
        let server_log = pg.log();
        assert!(
            !server_log.contains("terminating walsender process due to replication timeout"),
            "the server timed the walsender out:\n{server_log}"
        );
    }
    if let Some(id) = &low_watermark {
        eprintln!("window {id} was open from before the fault until after the broker was back");
    }
    if snapshot {
        assert!(!snapshot_done_before, "the snapshot ended before the fault");
        assert!(log.contains("snapshot complete"), "{log}");
    }
    let retried: Vec<_> = lines_with(&log, "retrying without acknowledging")
        .into_iter()
        .filter(|l| log_time(l).is_some_and(|t| t > fault_at))
        .collect();
    // Once the broker is back, a backlog flushed slower than the 1 s
    // flush timeout may warn again; during the outage there is one line.
    let during = retried
        .iter()
        .filter(|l| log_time(l).is_some_and(|t| t < back_at))
        .count();
    assert_eq!(
        during, 1,
        "one warning on the outage (how it changes is logged at info):\n{log}"
    );
    let recovered = log
        .lines()
        .filter(|l| l.contains("sink recovered"))
        .find_map(|l| log_time(l).filter(|&t| t > healing_at))
        .unwrap_or_else(|| panic!("no line on the sink's recovery:\n{log}"));
    eprintln!(
        "broker {down:?} {}s ({phase:?}): slot held at {after} ({} samples); detected after {:.1}s; {during} warning line during the outage, {} in all (first: {}); \
         sink recovered {:.1}s after the broker was back; {} committed changes, {} records read",
        hold.as_secs() + 3,
        samples.len(),
        log_time(retried[0]).unwrap() - fault_at,
        retried.len(),
        strip_ansi(retried[0]),
        (recovered - back_at).max(0.0),
        history.values().map(Vec::len).sum::<usize>(),
        received.len(),
    );
}

/// Rows of the large transaction of [`Phase::Flush`].
const LARGE_ROWS: i64 = 60_000;

/// Commits [`LARGE_ROWS`] rows into `a` (ids from 100 000, no writer's) in
/// one transaction, with nothing else committing meanwhile; returns the
/// WAL insert position just before its commit, which an acknowledgement
/// of the transaction would pass.
fn large_transaction(pg: &cdc_testcontainers::Postgres) -> String {
    with_client(&pg.url(), async |mut client| {
        let tx = client.transaction().await.unwrap();
        // A row in b and c first: every topic exists before the fault, so
        // what waits on the frozen broker is the flush, not a topic's creation.
        tx.batch_execute(&format!(
            "INSERT INTO b VALUES (100000, 1); INSERT INTO c VALUES (100000, 1);
             INSERT INTO a SELECT g, 1 FROM generate_series(100000, {}) g",
            100_000 + LARGE_ROWS - 1
        ))
        .await
        .unwrap();
        let at: String = tx
            .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
            .await
            .unwrap()
            .get(0);
        tx.commit().await.unwrap();
        at
    })
}
