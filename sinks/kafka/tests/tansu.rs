//! The sink against a real Kafka-protocol broker (tansu).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use cdc_engine::{Op, Sink, Value};
use cdc_sink_kafka::{KafkaSink, KafkaSinkConfig, OutboxConfig};
use cdc_testcontainers::Kafka;
use serde_json::json;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_reach_the_table_topic_with_key_value_headers_and_tombstones() {
    let kafka = Kafka::start().unwrap();
    let prefix = unique("t");
    let meta = meta(&prefix);
    let mut config = KafkaSinkConfig::new(kafka.bootstrap_servers());
    config.partitions = 3;
    let mut sink = KafkaSink::open(config).unwrap();
    let events = vec![
        change(&meta, "orders", Op::Create, 1, 10, 1),
        change(&meta, "orders", Op::Update, 1, 11, 2),
        change(&meta, "orders", Op::Create, 2, 20, 3),
        change(&meta, "orders", Op::Delete, 1, 11, 4),
    ];
    sink.write(&events).await.unwrap();
    sink.flush().await.unwrap();
    assert_eq!(sink.unconfirmed(), 0);

    let topic = format!("{prefix}.public.orders");
    let got = read_topic(
        kafka.bootstrap_servers(),
        &topic,
        5,
        Duration::from_secs(30),
    );
    let key1: Vec<_> = got
        .iter()
        .filter(|g| g.key.as_deref() == Some(br#"{"id":1}"#))
        .collect();
    assert_eq!(key1.len(), 4, "{got:?}");
    assert_eq!(key1[0].json()["op"], "c");
    assert_eq!(key1[0].json()["after"], json!({"id": 1, "v": 10}));
    assert_eq!(key1[0].header("cdc.op"), Some("c"));
    assert_eq!(key1[0].header("cdc.position"), Some("0000000000000001"));
    assert_eq!(key1[1].json()["after"]["v"], 11);
    assert_eq!(key1[2].json()["op"], "d");
    // The tombstone: same key, no value.
    assert!(key1[3].value.is_none());
    // One key, one partition.
    assert!(key1.iter().all(|g| g.partition == key1[0].partition));
    let key2 = got
        .iter()
        .find(|g| g.key.as_deref() == Some(br#"{"id":2}"#))
        .unwrap();
    assert_eq!(key2.json()["source"]["name"], prefix.as_str());
    assert_eq!(key2.json()["source"]["table"], "orders");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_inserts_are_routed_by_aggregate_type() {
    let kafka = Kafka::start().unwrap();
    let prefix = unique("o");
    let meta = meta(&prefix);
    let mut config = KafkaSinkConfig::new(kafka.bootstrap_servers());
    config.outbox = Some(OutboxConfig {
        table: "public.outbox".into(),
        ..serde_json::from_value(json!({"table": "public.outbox"})).unwrap()
    });
    let mut sink = KafkaSink::open(config).unwrap();
    let mut delete = outbox_insert(&meta, "e0", "order", "o-1", "x", Value::Null, 1);
    delete.op = Op::Delete;
    let events = vec![
        outbox_insert(
            &meta,
            "e1",
            "order",
            "o-1",
            "OrderCreated",
            Value::Json(r#"{"total": 5}"#.into()),
            2,
        ),
        outbox_insert(
            &meta,
            "e2",
            "customer",
            "c-9",
            "CustomerMoved",
            Value::Text("plain text".into()),
            3,
        ),
        delete,
        outbox_insert(
            &meta,
            "e3",
            "order",
            "o-1",
            "OrderPaid",
            Value::Json(r#"{"paid":true}"#.into()),
            4,
        ),
    ];
    sink.write(&events).await.unwrap();
    sink.flush().await.unwrap();

    let orders = read_topic(
        kafka.bootstrap_servers(),
        &format!("{prefix}.outbox.order"),
        2,
        Duration::from_secs(30),
    );
    assert_eq!(orders[0].key.as_deref(), Some(&b"o-1"[..]));
    assert_eq!(orders[0].json(), json!({"total": 5}));
    assert_eq!(orders[0].header("id"), Some("e1"));
    assert_eq!(orders[0].header("type"), Some("OrderCreated"));
    assert_eq!(orders[1].header("type"), Some("OrderPaid"));
    let customers = read_topic(
        kafka.bootstrap_servers(),
        &format!("{prefix}.outbox.customer"),
        1,
        Duration::from_secs(30),
    );
    assert_eq!(customers[0].key.as_deref(), Some(&b"c-9"[..]));
    assert_eq!(customers[0].value.as_deref(), Some(&b"plain text"[..]));
}

#[test]
fn murmur2_matches_kafkas_test_vectors() {
    // From Kafka's UtilsTest.
    assert_eq!(murmur2(b"21"), -973932308);
    assert_eq!(murmur2(b"foobar"), -790332482);
    assert_eq!(murmur2(b"a-little-bit-long-string"), -985981536);
    assert_eq!(murmur2(b"a-little-bit-longer-string"), -1486304829);
    assert_eq!(
        murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"),
        -58897971
    );
    assert_eq!(murmur2(b"abc"), 479470107);
}

/// Keys land where the Java client would put them, so Kafka Streams and
/// Connect consumers co-partition with these topics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_partitioned_as_the_java_client_does() {
    let kafka = Kafka::start().unwrap();
    let prefix = unique("p");
    let meta = meta(&prefix);
    let mut config = KafkaSinkConfig::new(kafka.bootstrap_servers());
    config.partitions = 6;
    let mut sink = KafkaSink::open(config).unwrap();
    let events: Vec<_> = (0..60)
        .map(|id| change(&meta, "t", Op::Create, id, id, id as u64 + 1))
        .collect();
    sink.write(&events).await.unwrap();
    sink.flush().await.unwrap();
    let got = read_topic(
        kafka.bootstrap_servers(),
        &format!("{prefix}.public.t"),
        60,
        Duration::from_secs(30),
    );
    let used: std::collections::HashSet<i32> = got.iter().map(|g| g.partition).collect();
    assert!(used.len() > 1, "all keys on one partition");
    for g in &got {
        let key = g.key.as_deref().unwrap();
        assert_eq!(
            g.partition,
            java_partition(key, 6),
            "key {}",
            String::from_utf8_lossy(key)
        );
    }
}

/// A run that ends with records on their way (its flush timed out while
/// the broker was paused) hands the same sink to the next run, which sends
/// again from the acknowledged position. Nothing the first run had in
/// flight may land after the second run's newer records: here that would
/// be the update landing after the delete, bringing the row back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_in_flight_when_a_run_ends_land_before_the_next_runs() {
    let kafka = Kafka::start().unwrap();
    let prefix = unique("r");
    let meta = meta(&prefix);
    let mut config = KafkaSinkConfig::new(kafka.bootstrap_servers());
    config.partitions = 1;
    config.flush_timeout_ms = 1000;
    let shared = cdc_engine::SharedSink::new(Box::new(KafkaSink::open(config).unwrap()));
    let mut first = shared.lend().await;
    first
        .write(&[change(&meta, "orders", Op::Create, 1, 10, 1)])
        .await
        .unwrap();
    first.flush().await.unwrap();
    kafka.pause().unwrap();
    first
        .write(&[change(&meta, "orders", Op::Update, 1, 11, 2)])
        .await
        .unwrap();
    assert!(
        first.flush().await.is_err(),
        "a paused broker confirms nothing"
    );
    drop(first);

    let mut second = shared.lend().await;
    second
        .write(&[
            change(&meta, "orders", Op::Update, 1, 11, 2),
            change(&meta, "orders", Op::Delete, 1, 11, 3),
        ])
        .await
        .unwrap();
    kafka.resume().unwrap();
    let mut flushed = second.flush().await;
    for _ in 0..20 {
        if flushed.is_ok() {
            break;
        }
        flushed = second.flush().await;
    }
    flushed.unwrap();

    let topic = format!("{prefix}.public.orders");
    let got = read_topic(
        kafka.bootstrap_servers(),
        &topic,
        4,
        Duration::from_secs(30),
    );
    let ops: Vec<String> = got
        .iter()
        .map(|g| match &g.value {
            Some(_) => g.json()["op"].as_str().unwrap_or("?").to_string(),
            None => "tombstone".to_string(),
        })
        .collect();
    let delete = ops
        .iter()
        .position(|op| op == "d")
        .expect("the delete landed");
    assert!(
        ops[delete + 1..].iter().all(|op| op == "tombstone"),
        "a record of the ended run landed after the next run's delete: {ops:?}"
    );
    assert_eq!(ops[0], "c", "{ops:?}");
}
