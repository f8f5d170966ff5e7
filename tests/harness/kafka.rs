//! Reading what the Kafka sink wrote: a config for `cdc run` with it, and a
//! consumer group member polling topics on a thread of its own.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cdc_testcontainers::Kafka;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value;

use crate::common::{with_client, States};
use rand::Rng;

/// A config for `cdc run` with the Kafka sink, topics of 3 partitions;
/// `sink_extra` goes into `[sink]`, `after` after everything.
pub fn kafka_config(
    dir: &Path,
    url: &str,
    name: &str,
    tables: &[&str],
    kafka: &Kafka,
    sink_extra: &str,
    after: &str,
) -> PathBuf {
    kafka_config_partitioned(dir, url, name, tables, kafka, 3, sink_extra, after)
}

/// [`kafka_config`] with topics of `partitions` (1: one order per topic).
#[allow(clippy::too_many_arguments)]
pub fn kafka_config_partitioned(
    dir: &Path,
    url: &str,
    name: &str,
    tables: &[&str],
    kafka: &Kafka,
    partitions: i32,
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
         [sink]\ntype = \"kafka\"\nbootstrap_servers = {:?}\npartitions = {partitions}\nflush_timeout_ms = 1000\n{sink_extra}\n\n\
         [pipeline]\nflush_interval_ms = 50\n\n{after}\n",
        kafka.bootstrap_servers()
    );
    let path = dir.join("cdc.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A unique source name, so topics of concurrent tests (or an external
/// broker's earlier runs) never mix.
pub fn unique_name(base: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{base}{}n{nanos}", std::process::id())
}

/// One record as a consumer saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub topic: String,
    pub key: Option<Vec<u8>>,
    pub value: Option<Value>,
    pub headers: HashMap<String, String>,
}

/// A consumer group member subscribed to `topics`, polling on its own
/// thread into a shared list until stopped.
pub struct GroupReader {
    received: Arc<std::sync::Mutex<Vec<Received>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl GroupReader {
    pub fn start(bootstrap: &str, group: &str, topics: &[String]) -> GroupReader {
        let consumer = consumer(bootstrap, group);
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer.subscribe(&names).unwrap();
        GroupReader::poll(consumer)
    }

    /// Reads partitions `0..partitions` of every topic from the start,
    /// assigned rather than through the group protocol (in a nemesis run a
    /// lone group member of tansu's read one of 15 partitions only).
    pub fn start_assigned(bootstrap: &str, topics: &[String], partitions: i32) -> GroupReader {
        let consumer = consumer(bootstrap, "cdc-test-assigned");
        let mut list = TopicPartitionList::new();
        for topic in topics {
            for p in 0..partitions {
                list.add_partition_offset(topic, p, Offset::Beginning)
                    .unwrap();
            }
        }
        consumer.assign(&list).unwrap();
        GroupReader::poll(consumer)
    }

    fn poll(consumer: BaseConsumer) -> GroupReader {
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

    pub fn snapshot(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    pub fn wait_for(
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

fn consumer(bootstrap: &str, group: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "true")
        // Topics appear when the sink first writes to them.
        .set("topic.metadata.refresh.interval.ms", "500")
        .create()
        .unwrap()
}

impl Drop for GroupReader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// The Kafka tests' workload (tests/kafka.rs): writers on keys of their
// own, and what a consumer saw of them.

pub const TABLES: [&str; 3] = ["a", "b", "c"];
pub const WRITERS: i64 = 3;
pub const KEYS_PER_WRITER: i64 = 12;

/// Per (table, key): committed states in commit order (`None`: deleted).
pub type History = States<(String, i64)>;

/// One writer: upserts and deletes on its own keys of every table.
pub fn writer(url: String, writer: i64, transactions: i64) -> History {
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
pub fn states(received: &[Received]) -> History {
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

/// Every committed change of `history` in `received`, in commit order per
/// key, nothing never committed, no key going back in time (a replay at
/// the same positions is a duplicate).
pub fn assert_in_order(history: &History, received: &[Received]) -> super::check::Checked {
    let tables: Vec<(&str, &[&str])> = TABLES.iter().map(|t| (*t, &["id"][..])).collect();
    super::check::assert_history_in_order(
        history,
        received.iter().filter_map(|r| r.value.as_ref()),
        &tables,
    )
}

/// The `TABLES`, each `(id bigint PRIMARY KEY, v bigint)`.
pub fn tables_ddl() -> String {
    TABLES
        .iter()
        .map(|t| format!("CREATE TABLE {t} (id bigint PRIMARY KEY, v bigint);"))
        .collect()
}
