//! Workload `kafka`: a sustained writer into the Kafka sink (tansu, the
//! sink's defaults: idempotent producer, `acks=all`), at fixed rates. The
//! latency is from the commit (`source.ts_ms`) to a consumer polling the
//! topic receiving the record: the delivery report comes before that, so
//! it is an upper bound of commit-to-delivery-report.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cdc_testcontainers::kafka::Kafka;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::ClientConfig;

use super::{paced_writer, peak_rss_mb, percentile, wait_for, Bench, DEFAULT_CHUNK};

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or_default()
}

impl Bench {
    /// One rate for `secs`; prints a table row.
    pub(crate) fn kafka_latency(&self, kafka: &Kafka, rate: usize, secs: u64) {
        self.psql("DROP TABLE IF EXISTS bench");
        self.psql(super::TABLE_DDL);
        self.prepare_cdc_objects();
        let slot = format!("kafka_{rate}");
        let name = format!(
            "bench{rate}_{}",
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0)
        );
        let config = self.config(
            &slot,
            &format!(
                "type = \"kafka\"\nbootstrap_servers = {:?}\npartitions = 3",
                kafka.bootstrap_servers()
            ),
            DEFAULT_CHUNK,
        );
        // The source's name prefixes the topic: one per run.
        let text = std::fs::read_to_string(&config)
            .unwrap()
            .replace("[source]\n", &format!("[source]\nname = {name:?}\n"));
        std::fs::write(&config, text).unwrap();
        let log = config.with_extension("log");
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", kafka.bootstrap_servers())
            .set("group.id", format!("{name}-latency"))
            .set("auto.offset.reset", "earliest")
            .set("fetch.wait.max.ms", "5")
            .set("topic.metadata.refresh.interval.ms", "200")
            .create()
            .unwrap();
        consumer
            .subscribe(&[&format!("{name}.public.bench")])
            .unwrap();
        let latencies = Arc::new(Mutex::new(Vec::<f64>::new()));
        let stop_reading = Arc::new(AtomicBool::new(false));
        let reader = {
            let (latencies, stop) = (latencies.clone(), stop_reading.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let Some(Ok(message)) = consumer.poll(Duration::from_millis(50)) else {
                        continue;
                    };
                    let received = now_ms();
                    let Some(payload) = message.payload() else {
                        continue;
                    };
                    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(payload) {
                        if let Some(ts) = v["source"]["ts_ms"].as_f64() {
                            latencies.lock().unwrap().push(received - ts);
                        }
                    }
                }
            })
        };
        let mut child = self.start_cdc(&config);
        wait_for(&log, "streaming", Duration::from_secs(60));
        let per_tx = (rate / 100).max(1);
        let url = self.pg.url();
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let stop = stop.clone();
            std::thread::spawn(move || paced_writer(&url, per_tx, secs, &stop))
        };
        let mut rss = None;
        while !writer.is_finished() {
            rss = peak_rss_mb(child.id()).or(rss);
            std::thread::sleep(Duration::from_millis(100));
        }
        let achieved = writer.join().unwrap();
        // Let the tail arrive (bounded): the rows written are all counted.
        let written: usize = self.psql("SELECT count(*) FROM bench").parse().unwrap_or(0);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while latencies.lock().unwrap().len() < written && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        stop_reading.store(true, Ordering::SeqCst);
        let _ = reader.join();
        Self::stop(&mut child);
        self.drop_cdc_slot(&slot);
        let mut latencies = std::mem::take(&mut *latencies.lock().unwrap());
        latencies.sort_by(|a, b| a.total_cmp(b));
        let pct = |p: f64| percentile(&latencies, p);
        println!(
            "| {rate} | {achieved:.0} | {written} | {} | {:.1} | {:.1} | {:.1} | {:.0} |",
            latencies.len(),
            pct(0.50),
            pct(0.99),
            latencies.last().copied().unwrap_or(f64::NAN),
            rss.unwrap_or(0.0)
        );
    }

    /// The workload: tansu started once, each rate for `secs`.
    pub(crate) fn kafka(&self, secs: u64) {
        let kafka = match Kafka::start() {
            Ok(kafka) => kafka,
            Err(err) => {
                println!("\n## kafka: skipped, no broker: {err}");
                return;
            }
        };
        println!("\n## Kafka sink (tansu, idempotent, acks=all): commit (source.ts_ms) to a consumer's receipt, {secs}s per rate");
        println!("| target changes/s | achieved | rows written | records received | p50 ms | p99 ms | max ms | cdc peak RSS MB |");
        println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
        for rate in [10_000, 50_000] {
            self.kafka_latency(&kafka, rate, secs);
        }
    }
}
