//! Shared by the sink's integration tests: events, a sink on a broker, and
//! a reader of what landed in a topic.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cdc_engine::{Event, Op, Position, Row, SnapshotFlag, SourceInfo, SourceMeta, TableRef, Value};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

pub fn meta(name: &str) -> Arc<SourceMeta> {
    Arc::new(SourceMeta {
        connector: "postgresql",
        name: name.into(),
        db: "app".into(),
        block: &cdc_engine::PLAIN_BLOCK,
    })
}

fn columns(names: &[&str]) -> Arc<[String]> {
    Arc::from(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
}

/// A change of `table` (`id`, `v`) at `position`.
pub fn change(
    meta: &Arc<SourceMeta>,
    table: &str,
    op: Op,
    id: i64,
    v: i64,
    position: u64,
) -> Event {
    let key = Row::new(columns(&["id"]), vec![Value::Int(id)]);
    let row = Row::new(columns(&["id", "v"]), vec![Value::Int(id), Value::Int(v)]);
    let (before, after) = match op {
        Op::Delete => (Some(row), None),
        _ => (None, Some(row)),
    };
    Event {
        update: None,
        schema: None,
        op,
        table: Some(Arc::new(TableRef::new("public", table))),
        key: Some(key),
        before,
        after,
        source: source(meta, position),
        message: None,
        transaction: None,
    }
}

pub fn source(meta: &Arc<SourceMeta>, position: u64) -> SourceInfo {
    SourceInfo {
        session: None,
        meta: meta.clone(),
        position: Position::from_u64(position),
        offset: Some(position),
        tx_id: Some(position),
        ts_ms: 1_700_000_000_000,
        ts_us: 1_700_000_000_000_000,
        last_commit: None,
        snapshot: SnapshotFlag::No,
    }
}

/// An insert into an outbox table.
pub fn outbox_insert(
    meta: &Arc<SourceMeta>,
    id: &str,
    aggregate_type: &str,
    aggregate_id: &str,
    event_type: &str,
    payload: Value,
    position: u64,
) -> Event {
    let row = Row::new(
        columns(&["id", "aggregatetype", "aggregateid", "type", "payload"]),
        vec![
            Value::Text(id.into()),
            Value::Text(aggregate_type.into()),
            Value::Text(aggregate_id.into()),
            Value::Text(event_type.into()),
            payload,
        ],
    );
    Event {
        update: None,
        schema: None,
        op: Op::Create,
        table: Some(Arc::new(TableRef::new("public", "outbox"))),
        key: Some(Row::new(columns(&["id"]), vec![Value::Text(id.into())])),
        before: None,
        after: Some(row),
        source: source(meta, position),
        message: None,
        transaction: None,
    }
}

/// A record read back.
#[derive(Debug, Clone)]
pub struct Got {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: HashMap<String, Vec<u8>>,
}

impl Got {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(self.value.as_deref().unwrap()).unwrap()
    }

    pub fn key_json(&self) -> serde_json::Value {
        serde_json::from_slice(self.key.as_deref().unwrap()).unwrap()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| std::str::from_utf8(v).unwrap())
    }
}

/// Read `topic` from the beginning until `n` records arrived (every
/// partition, in partition order then offset order), or panic after `timeout`.
pub fn read_topic(bootstrap: &str, topic: &str, n: usize, timeout: Duration) -> Vec<Got> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("reader-{topic}"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let deadline = Instant::now() + timeout;
    let partitions = loop {
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(5))
            .unwrap();
        let count = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .map_or(0, |t| t.partitions().len());
        if count > 0 {
            break count;
        }
        assert!(Instant::now() < deadline, "topic {topic} does not exist");
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut list = TopicPartitionList::new();
    for p in 0..partitions as i32 {
        list.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&list).unwrap();
    let mut got: Vec<Got> = Vec::new();
    // At least `n` records, then until the topic has been quiet for a
    // second: re-sends add duplicates, so `n` records alone may stop short
    // of the latest ones.
    let mut quiet_since: Option<Instant> = None;
    loop {
        if got.len() >= n && quiet_since.is_some_and(|q| q.elapsed() > Duration::from_secs(1)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {n} records in {topic}",
            got.len()
        );
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            quiet_since.get_or_insert_with(Instant::now);
            continue;
        };
        quiet_since = None;
        let message = message.unwrap();
        let mut headers = HashMap::new();
        if let Some(h) = message.headers() {
            for header in h.iter() {
                headers.insert(
                    header.key.to_string(),
                    header.value.unwrap_or_default().to_vec(),
                );
            }
        }
        got.push(Got {
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().map(<[u8]>::to_vec),
            value: message.payload().map(<[u8]>::to_vec),
            headers,
        });
    }
    got.sort_by_key(|g| (g.partition, g.offset));
    got
}

/// A unique name for this test's topics.
pub fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{name}{}x{nanos}", std::process::id())
}

/// Kafka's `Utils.murmur2` (the Java client's default partitioner hash).
pub fn murmur2(data: &[u8]) -> i32 {
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition the Java client's default partitioner picks for `key`.
pub fn java_partition(key: &[u8], partitions: i32) -> i32 {
    (murmur2(key) & 0x7fff_ffff) % partitions
}
