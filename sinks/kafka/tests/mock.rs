//! The sink against librdkafka's mock cluster, for error injection: request
//! errors, brokers going down, leader changes, refusals.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::time::Duration;

use cdc_engine::pipeline::{self, Passthrough, PipelineConfig};
use cdc_engine::{Event, LogItem, Op, Position, Sink, SinkError, SourceMeta};
use cdc_sink_kafka::{KafkaSink, KafkaSinkConfig};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use std::sync::Arc;
use support::*;
use tokio::sync::{mpsc, watch};

const KEYS: i64 = 16;

type Mock = MockCluster<'static, DefaultProducerContext>;

/// A cluster with `prefix.public.t` (`partitions` partitions) and a sink
/// for it that checks, not creates, topics.
fn setup(
    brokers: i32,
    partitions: i32,
    properties: &[(&str, &str)],
) -> (Mock, Arc<SourceMeta>, String, KafkaSinkConfig) {
    let mock = MockCluster::new(brokers).unwrap();
    let prefix = unique("m");
    let topic = format!("{prefix}.public.t");
    mock.create_topic(&topic, partitions, brokers).unwrap();
    let mut config = KafkaSinkConfig::new(mock.bootstrap_servers());
    config.create_topics = false;
    config.flush_timeout_ms = 300;
    for (k, v) in properties {
        config.properties.insert(k.to_string(), v.to_string());
    }
    (mock, meta(&prefix), topic, config)
}

/// Updates of `KEYS` keys; event `i` sets key `i % KEYS` to `i`.
fn updates(meta: &Arc<SourceMeta>, from: i64, to: i64) -> Vec<Event> {
    (from..to)
        .map(|i| change(meta, "t", Op::Update, i % KEYS, i, i as u64 + 1))
        .collect()
}

/// Per key, the values read back in offset order.
fn values_by_key(got: &[Got]) -> HashMap<i64, Vec<i64>> {
    let mut out: HashMap<i64, Vec<i64>> = HashMap::new();
    for g in got {
        let v = g.json();
        out.entry(v["after"]["id"].as_i64().unwrap())
            .or_default()
            .push(v["after"]["v"].as_i64().unwrap());
    }
    out
}

/// Flush until it succeeds, counting the retriable failures.
async fn flush_until_ok(sink: &mut KafkaSink, attempts: usize) -> usize {
    for failures in 0..attempts {
        match sink.flush().await {
            Ok(()) => return failures,
            Err(SinkError::Retriable(_)) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(fatal) => panic!("fatal: {fatal}"),
        }
    }
    panic!("flush did not succeed in {attempts} attempts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_retriable_errors_are_retried_in_order_without_duplicates() {
    let (mock, meta, topic, config) = setup(3, 4, &[]);
    let mut sink = KafkaSink::open(config).unwrap();
    let errors = [
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND,
    ];
    let mut total = 0;
    for round in 0..6 {
        mock.request_errors(RDKafkaApiKey::Produce, &errors);
        sink.write(&updates(&meta, round * 100, round * 100 + 100))
            .await
            .unwrap();
        flush_until_ok(&mut sink, 200).await;
        total += 100;
    }
    assert_eq!(sink.unconfirmed(), 0);
    let got = read_topic(
        &mock.bootstrap_servers(),
        &topic,
        total,
        Duration::from_secs(30),
    );
    assert_eq!(got.len(), total);
    for (key, values) in values_by_key(&got) {
        let expected: Vec<i64> = (0..600).filter(|i| i % KEYS == key).collect();
        assert_eq!(values, expected, "key {key}: exactly once, in order");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_does_not_return_ok_before_the_brokers_confirm() {
    let (mock, meta, topic, config) = setup(1, 2, &[]);
    let mut sink = KafkaSink::open(config).unwrap();
    // Establish connections and metadata first.
    sink.write(&updates(&meta, 0, 10)).await.unwrap();
    flush_until_ok(&mut sink, 100).await;
    // Every answer now takes far longer than a flush waits.
    mock.broker_round_trip_time(1, Duration::from_secs(2))
        .unwrap();
    sink.write(&updates(&meta, 10, 50)).await.unwrap();
    let err = sink.flush().await.unwrap_err();
    assert!(matches!(err, SinkError::Retriable(_)), "{err}");
    assert!(err.to_string().contains("not yet confirmed"), "{err}");
    assert_eq!(sink.unconfirmed(), 40, "nothing confirmed early");
    mock.broker_round_trip_time(1, Duration::ZERO).unwrap();
    flush_until_ok(&mut sink, 200).await;
    let got = read_topic(
        &mock.bootstrap_servers(),
        &topic,
        50,
        Duration::from_secs(30),
    );
    for (key, values) in values_by_key(&got) {
        let expected: Vec<i64> = (0..50).filter(|i| i % KEYS == key).collect();
        assert_eq!(values, expected, "key {key}");
    }
    assert_eq!(
        sink.stats().resent,
        0,
        "librdkafka retried, the sink did not need to"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_changes_keep_order() {
    let (mock, meta, topic, config) = setup(3, 3, &[]);
    let mut sink = KafkaSink::open(config).unwrap();
    for round in 0..9i64 {
        let partition = (round % 3) as i32;
        let leader = (round % 3 + 1) as i32 % 3 + 1;
        mock.partition_leader(&topic, partition, Some(leader))
            .unwrap();
        sink.write(&updates(&meta, round * 50, round * 50 + 50))
            .await
            .unwrap();
        flush_until_ok(&mut sink, 200).await;
    }
    let got = read_topic(
        &mock.bootstrap_servers(),
        &topic,
        450,
        Duration::from_secs(30),
    );
    for (key, values) in values_by_key(&got) {
        let expected: Vec<i64> = (0..450).filter(|i| i % KEYS == key).collect();
        assert_eq!(values, expected, "key {key}");
    }
}

/// The whole pipeline over a sink whose broker goes away: nothing is
/// acknowledged while it is down, everything once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_broker_stalls_the_pipeline_which_recovers_when_it_returns() {
    let (mock, meta, topic, config) = setup(1, 3, &[]);
    let mut sink = KafkaSink::open(config).unwrap();
    let (items_tx, items_rx) = mpsc::channel(4);
    let (acks_tx, mut acks_rx) = watch::channel(None);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let pipeline = tokio::spawn(async move {
        let config = PipelineConfig {
            flush_interval: Duration::from_millis(20),
            max_retry_backoff: Duration::from_millis(200),
            ..PipelineConfig::default()
        };
        let stats = pipeline::run(
            items_rx,
            &mut Passthrough,
            &mut sink,
            acks_tx,
            shutdown_rx,
            &config,
            &cdc_engine::Telemetry::default(),
        )
        .await;
        (stats, sink)
    });
    let send = |from: i64, to: i64| {
        let mut items: Vec<LogItem> = updates(&meta, from, to)
            .into_iter()
            .map(LogItem::Event)
            .collect();
        items.push(LogItem::Commit {
            tx_id: None,
            position: Position::from_u64(to as u64),
        });
        items
    };
    let acked =
        |rx: &watch::Receiver<Option<Position>>| rx.borrow().as_ref().and_then(Position::to_u64);

    items_tx.send(send(0, 100)).await.unwrap();
    while acked(&acks_rx) != Some(100) {
        acks_rx.changed().await.unwrap();
    }

    mock.broker_down(1).unwrap();
    items_tx.send(send(100, 200)).await.unwrap();
    // Long enough for several flush attempts to fail.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        acked(&acks_rx),
        Some(100),
        "acknowledged while the broker was down"
    );

    mock.broker_up(1).unwrap();
    tokio::time::timeout(Duration::from_secs(60), async {
        while acked(&acks_rx) != Some(200) {
            acks_rx.changed().await.unwrap();
        }
    })
    .await
    .expect("the pipeline recovers once the broker is back");
    shutdown_tx.send(true).unwrap();
    drop(items_tx);
    let (stats, sink) = pipeline.await.unwrap();
    let stats = stats.unwrap();
    assert!(stats.retries > 0, "{stats:?}");
    assert_eq!(sink.unconfirmed(), 0);
    let got = read_topic(
        &mock.bootstrap_servers(),
        &topic,
        200,
        Duration::from_secs(30),
    );
    for (key, values) in values_by_key(&got) {
        let expected: Vec<i64> = (0..200).filter(|i| i % KEYS == key).collect();
        assert_eq!(values, expected, "key {key}");
    }
}

/// With a user-set `message.timeout.ms`, librdkafka gives messages up while
/// the broker is down; the sink sends them (and all after them) again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timed_out_deliveries_are_sent_again_in_order() {
    let (mock, meta, topic, config) = setup(1, 2, &[("message.timeout.ms", "300")]);
    let mut sink = KafkaSink::open(config).unwrap();
    sink.write(&updates(&meta, 0, 20)).await.unwrap();
    flush_until_ok(&mut sink, 100).await;
    mock.broker_down(1).unwrap();
    sink.write(&updates(&meta, 20, 120)).await.unwrap();
    let mut saw_failed_deliveries = false;
    for _ in 0..50 {
        match sink.flush().await {
            Err(SinkError::Retriable(reason)) if reason.contains("deliveries failed") => {
                saw_failed_deliveries = true;
                break;
            }
            Err(SinkError::Retriable(_)) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(saw_failed_deliveries);
    assert_eq!(sink.unconfirmed(), 100);
    mock.broker_up(1).unwrap();
    flush_until_ok(&mut sink, 200).await;
    assert!(sink.stats().resent >= 100, "{:?}", sink.stats());
    let got = read_topic(
        &mock.bootstrap_servers(),
        &topic,
        120,
        Duration::from_secs(30),
    );
    for (key, values) in values_by_key(&got) {
        let expected: Vec<i64> = (0..120).filter(|i| i % KEYS == key).collect();
        let last = values.last().copied();
        assert_eq!(
            last,
            expected.last().copied(),
            "key {key}: last state wins: {values:?}"
        );
        let mut rest = values.iter();
        assert!(
            expected.iter().all(|e| rest.any(|v| v == e)),
            "key {key}: {expected:?} not in order in {values:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authorisation_failure_is_fatal_and_names_the_topic() {
    let (mock, meta, topic, config) = setup(1, 1, &[]);
    let mut sink = KafkaSink::open(config).unwrap();
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED; 10],
    );
    sink.write(&updates(&meta, 0, 5)).await.unwrap();
    let err = loop {
        match sink.flush().await {
            Err(SinkError::Fatal(reason)) => break reason,
            Err(SinkError::Retriable(_)) => {}
            Ok(()) => panic!("delivered despite the authorisation failure"),
        }
    };
    eprintln!("{err}");
    assert!(err.contains(&topic), "{err}");
    assert!(err.to_lowercase().contains("authorization"), "{err}");
    assert!(!err.contains('\n'), "one line: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_over_the_size_limit_is_fatal() {
    let (_mock, meta, topic, config) = setup(1, 1, &[("message.max.bytes", "1000")]);
    let mut sink = KafkaSink::open(config).unwrap();
    let mut big = change(&meta, "t", Op::Create, 1, 1, 1);
    if let Some(after) = big.after.as_mut() {
        after.values[1] = cdc_engine::Value::Text("x".repeat(5000));
    }
    let err = match sink.write(&[big]).await {
        Err(err) => err,
        Ok(()) => sink.flush().await.unwrap_err(),
    };
    let SinkError::Fatal(reason) = err else {
        panic!("not fatal: {err}");
    };
    eprintln!("{reason}");
    assert!(
        reason.contains(&topic) && reason.contains("message.max.bytes"),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_topic_is_fatal_when_topics_are_not_created() {
    let (_mock, meta, _topic, config) = setup(1, 1, &[("allow.auto.create.topics", "false")]);
    let mut sink = KafkaSink::open(config).unwrap();
    let err = sink
        .write(&[change(&meta, "missing", Op::Create, 1, 1, 1)])
        .await
        .unwrap_err();
    let SinkError::Fatal(reason) = err else {
        panic!("not fatal: {err}");
    };
    assert!(
        reason.contains(&format!("{}.public.missing", meta.name)),
        "{reason}"
    );
    eprintln!("{reason}");
    assert!(reason.contains("create_topics"), "{reason}");
}

/// A sequence desynchronisation is fatal to an idempotent producer: the sink
/// starts a new one and sends everything unconfirmed again, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fatal_idempotence_error_replaces_the_producer() {
    let (mock, meta, topic, config) = setup(1, 2, &[]);
    let mut sink = KafkaSink::open(config).unwrap();
    sink.write(&updates(&meta, 0, 20)).await.unwrap();
    flush_until_ok(&mut sink, 100).await;
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER],
    );
    sink.write(&updates(&meta, 20, 100)).await.unwrap();
    flush_until_ok(&mut sink, 200).await;
    assert_eq!(sink.stats().new_producers, 1, "{:?}", sink.stats());
    let got = read_topic(
        &mock.bootstrap_servers(),
        &topic,
        100,
        Duration::from_secs(30),
    );
    for (key, values) in values_by_key(&got) {
        let expected: Vec<i64> = (0..100).filter(|i| i % KEYS == key).collect();
        assert_eq!(values.last(), expected.last(), "key {key}: {values:?}");
        let mut rest = values.iter();
        assert!(
            expected.iter().all(|e| rest.any(|v| v == e)),
            "key {key}: {expected:?} not in order in {values:?}"
        );
    }
}
