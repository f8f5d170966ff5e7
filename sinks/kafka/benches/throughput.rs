//! The Kafka sink's throughput next to librdkafka's own, into tansu.
//!
//! `cargo bench -p cdc-sink-kafka` starts tansu (or uses
//! `CDC_TEST_KAFKA_BOOTSTRAP`), then sends the same events (rows of about
//! 240 bytes of JSON) twice: once through `KafkaSink` (routing, Debezium
//! envelope, bookkeeping, delivery reports, flushes as the pipeline does
//! them) and once as pre-encoded records straight through an rdkafka
//! producer with the same properties. It prints both rates and their ratio.
//!
//! `BENCH_EVENTS` (default 300000) sets the count; `BENCH_PROPERTIES`
//! (`linger.ms=20,compression.type=none`) overrides producer properties for
//! both runs, to compare settings.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cdc_engine::{
    envelope, Event, Op, Position, Row, Sink, SnapshotFlag, SourceInfo, SourceMeta, TableRef, Value,
};
use cdc_sink_kafka::{KafkaSink, KafkaSinkConfig};
use cdc_testcontainers::Kafka;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;

const BATCH: usize = 4096;
/// The pipeline's default flush interval.
const FLUSH_EVERY: Duration = Duration::from_millis(250);
const PARTITIONS: i32 = 3;

fn events(n: usize, name: &str) -> Vec<Event> {
    let meta = Arc::new(SourceMeta {
        connector: "postgresql",
        name: name.into(),
        db: "bench".into(),
        block: &cdc_engine::PLAIN_BLOCK,
    });
    let table = Arc::new(TableRef::new("public", "rows"));
    let columns: Arc<[String]> = Arc::from(
        ["id", "account", "status", "amount", "created_at", "note"]
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>(),
    );
    let key_columns: Arc<[String]> = Arc::from(vec!["id".to_string()]);
    (0..n)
        .map(|i| {
            let id = (i % 100_000) as i64;
            let row = Row::new(
                columns.clone(),
                vec![
                    Value::Int(id),
                    Value::Text(format!("account-{:08}", i % 5000)),
                    Value::Text("shipped".into()),
                    Value::Text(format!("{}.{:02}", i % 100_000, i % 100)),
                    Value::Text("2024-05-01T12:34:56.789012Z".into()),
                    Value::Text("x".repeat(120)),
                ],
            );
            Event {
                update: None,
                schema: None,
                op: Op::Update,
                table: Some(table.clone()),
                key: Some(Row::new(key_columns.clone(), vec![Value::Int(id)])),
                before: None,
                after: Some(row),
                source: SourceInfo {
                    session: None,
                    meta: meta.clone(),
                    position: Position::from_u64(i as u64 + 1),
                    offset: Some(i as u64 + 1),
                    tx_id: Some(i as u64 / 10),
                    ts_ms: 1_700_000_000_000,
                    ts_us: 1_700_000_000_000_000,
                    last_commit: None,
                    snapshot: SnapshotFlag::No,
                },
                message: None,
                transaction: None,
            }
        })
        .collect()
}

fn overrides() -> Vec<(String, String)> {
    std::env::var("BENCH_PROPERTIES")
        .unwrap_or_default()
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

async fn sink_run(bootstrap: &str, events: &[Event]) -> f64 {
    let mut config = KafkaSinkConfig::new(bootstrap);
    config.partitions = PARTITIONS;
    config.flush_timeout_ms = 30_000;
    config.properties.extend(overrides());
    let mut sink = KafkaSink::open(config).unwrap();
    // Create the topic and connect before the clock starts.
    sink.write(&events[..1]).await.unwrap();
    sink.flush().await.unwrap();
    let start = Instant::now();
    let mut last_flush = Instant::now();
    for chunk in events[1..].chunks(BATCH) {
        sink.write(chunk).await.unwrap();
        if last_flush.elapsed() >= FLUSH_EVERY {
            sink.flush().await.unwrap();
            last_flush = Instant::now();
        }
    }
    sink.flush().await.unwrap();
    (events.len() - 1) as f64 / start.elapsed().as_secs_f64()
}

struct Counting(Arc<AtomicU64>);

impl ClientContext for Counting {}

impl ProducerContext for Counting {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if result.is_ok() {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The same records, encoded beforehand, through a bare producer.
async fn raw_run(bootstrap: &str, topic: &str, events: &[Event]) -> f64 {
    let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let new = NewTopic::new(topic, PARTITIONS, TopicReplication::Fixed(-1));
    admin
        .create_topics([&new], &AdminOptions::new())
        .await
        .unwrap();
    let records: Vec<(Vec<u8>, Vec<u8>, String)> = events
        .iter()
        .map(|e| {
            let mut value = Vec::new();
            envelope::write_value(e, 0, &mut value);
            let key = e.key.as_ref().map(envelope::key_json).unwrap_or_default();
            (key, value, e.source.position.to_hex())
        })
        .collect();
    let mut config = KafkaSinkConfig::new(bootstrap).producer_config();
    for (k, v) in overrides() {
        config.set(k, v);
    }
    let delivered = Arc::new(AtomicU64::new(0));
    let producer: ThreadedProducer<Counting> = config
        .create_with_context(Counting(delivered.clone()))
        .unwrap();
    // Connect and fetch metadata before the clock starts, as the sink run does.
    if let Some((key, value, _)) = records.first() {
        producer
            .send(BaseRecord::to(topic).key(key).payload(value))
            .map_err(|(e, _)| e)
            .unwrap();
        producer.flush(Duration::from_secs(30)).unwrap();
    }
    let start = Instant::now();
    for (key, value, position) in &records[1..] {
        let headers = rdkafka::message::OwnedHeaders::new_with_capacity(2)
            .insert(rdkafka::message::Header {
                key: "cdc.op",
                value: Some("u"),
            })
            .insert(rdkafka::message::Header {
                key: "cdc.position",
                value: Some(position),
            });
        let mut record = BaseRecord::to(topic)
            .key(key)
            .payload(value)
            .headers(headers);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(120)).unwrap();
    let rate = (records.len() - 1) as f64 / start.elapsed().as_secs_f64();
    assert_eq!(delivered.load(Ordering::Relaxed), records.len() as u64);
    rate
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs.get(xs.len() / 2).copied().unwrap_or_default()
}

fn main() {
    let env = |name: &str, default: usize| -> usize {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let n = env("BENCH_EVENTS", 300_000);
    let rounds = env("BENCH_ROUNDS", 3).max(1);
    let kafka = Kafka::start().unwrap();
    let bootstrap = kafka.bootstrap_servers().to_string();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Interleaved rounds on fresh topics, so both see the same broker state
    // and the same background load; medians.
    let (mut raws, mut sinks) = (Vec::new(), Vec::new());
    let mut row_bytes = 0;
    for round in 0..rounds {
        let name = format!("bench{}r{round}", std::process::id());
        let events = events(n, &name);
        row_bytes = events
            .first()
            .and_then(|e| e.after.as_ref())
            .map(|r| envelope::key_json(r).len())
            .unwrap_or_default();
        let raw = runtime.block_on(raw_run(&bootstrap, &format!("{name}.raw"), &events));
        let sink = runtime.block_on(sink_run(&bootstrap, &events));
        eprintln!("round {round}: rdkafka {raw:.0}/s, sink {sink:.0}/s");
        raws.push(raw);
        sinks.push(sink);
    }
    let (raw, sink) = (median(raws), median(sinks));
    println!(
        "events: {n} rows of ~{row_bytes} bytes of JSON, {PARTITIONS} partitions, tansu memory storage, median of {rounds} rounds"
    );
    println!("producer properties: defaults{}", {
        let o = overrides();
        if o.is_empty() {
            String::new()
        } else {
            format!(" + {o:?}")
        }
    });
    println!("rdkafka producer (pre-encoded): {raw:>10.0} events/s");
    println!("KafkaSink (encode + deliver):   {sink:>10.0} events/s");
    println!("ratio sink / rdkafka:           {:>10.2}", sink / raw);
}
