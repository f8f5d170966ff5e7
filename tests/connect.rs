//! A real Kafka Connect 4.3 worker consumes cdc's topic as it consumes
//! Debezium's: the same table and workload under the real Debezium 3.6.3
//! (tests/debezium/DebeziumRunner.java, its default configuration, Connect
//! schemas on) and under `cdc run` with `format = "debezium"` and the Kafka
//! sink; Debezium's records are produced to a topic of their own on the same
//! broker (tansu). A standalone worker with `JsonConverter` (schemas on) for
//! keys and values runs one `FileStreamSinkConnector` per topic, each through
//! Debezium's `ExtractNewRecordState`; the two files, Connect's `Struct`s as
//! text, must be equal line for line, and the worker must log no error. The
//! worker is tests/connect/ConnectWorker.java: ConnectStandalone's own
//! herder, worker and offset store without its REST server, which cannot
//! start on these jars (their Jetty is 12, their jetty-security 9.4).
//!
//! Java and the jars come from `ensure_debezium` in scripts/lib.sh
//! (`CDC_DEBEZIUM_CLASSPATH`, which also holds connect-runtime, connect-file
//! and connect-transforms). Without them the test is skipped with a message,
//! unless `CI` is set: then it fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod harness;
#[path = "debezium/runner.rs"]
mod runner;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cdc_testcontainers::{Kafka, Postgres};
use common::*;
use harness::kafka::kafka_config_partitioned;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use runner::{debezium_classpath, Debezium};
use serde_json::value::RawValue;

/// One column per type a consumer is likely to meet, Debezium's default
/// form of each: ints, Connect's Decimal (numeric(p,s)), Debezium's
/// VariableScaleDecimal struct (numeric), ZonedTimestamp, MicroTimestamp,
/// Date, Json, Uuid, bytes, Enum.
const DDL: &str = "
    CREATE TYPE mood AS ENUM ('sad', 'happy');
    CREATE TABLE t (
      id int PRIMARY KEY, s smallint, i int, bi bigint, n numeric, n2 numeric(12,3),
      d double precision, txt text, b bool, tstz timestamptz, ts timestamp, dt date,
      j json, jb jsonb, u uuid, by bytea, mo mood
    );
    CREATE TABLE dbz_signal (id varchar(42) PRIMARY KEY, type varchar(32) NOT NULL, data varchar(2048));";

/// Ordinary values, all NULLs, edge values, a row to delete; an update and
/// the delete.
const WORKLOAD: &str = r#"
    INSERT INTO t VALUES
      (1, -2, 42, 9007199254740993, 12345678901234567890.123, 1.5, 2.25, 'héllo "q"', true,
       '2024-02-29 13:14:15+02', '2024-02-29 13:14:15.123456', '2024-02-29', '{"a": [1, 2]}',
       '{"b": {"c": null}}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '\x00ff10', 'happy'),
      (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       NULL, NULL),
      (3, 32767, -2147483648, -9223372036854775808, -0.001, -1234567.890, -1e-300, '', false,
       '2024-01-15 08:00:00-05', '1999-12-31 23:59:59', '1970-01-01', '[]', '"s"',
       '00000000-0000-0000-0000-000000000000', '', 'sad'),
      (4, 0, 0, 0, 0, 0, 0, 'x', true, '2024-07-01 12:00:00.5+00', '2024-07-01 12:00:00.5',
       '2024-07-01', 'null', '[1, "x"]', 'ffffffff-ffff-ffff-ffff-ffffffffffff', '\x01', 'sad');
    UPDATE t SET i = 43, txt = 'changed', n = 0.50 WHERE id = 1;
    DELETE FROM t WHERE id = 4;"#;

/// Records of `t` on each side: 4 inserts, an update, a delete and its
/// tombstone, then the incremental snapshot's 3 rows.
const STREAMED: usize = 7;
const RECORDS: usize = STREAMED + 3;

/// Debezium's topic (its `topic.prefix`) and cdc's (`source.name` "cdc").
const DEBEZIUM_TOPIC: &str = "dbz.public.t";
const CDC_TOPIC: &str = "cdc.public.t";

/// What each sink connector does to its topic, both the same: Debezium's
/// unwrap (deletes kept as rows with `__deleted=true`, tombstones as the
/// line `null`, the op as `__op`); then Flatten and Cast, because `Struct`'s
/// text prints a `byte[]` by identity (`[B@1b6d3586`): the bytes column and
/// the VariableScaleDecimal's unscaled `value` become base64, so their
/// contents are compared too.
const TRANSFORMS: &str = "\
errors.tolerance=none
errors.log.enable=true
errors.log.include.messages=true
transforms=unwrap,flatten,cast
transforms.unwrap.type=io.debezium.transforms.ExtractNewRecordState
transforms.unwrap.delete.tombstone.handling.mode=rewrite-with-tombstone
transforms.unwrap.add.fields=op
transforms.flatten.type=org.apache.kafka.connect.transforms.Flatten$Value
transforms.cast.type=org.apache.kafka.connect.transforms.Cast$Value
transforms.cast.spec=by:string,n.value:string
";

#[test]
fn a_kafka_connect_worker_reads_cdcs_topic_as_it_reads_debeziums() {
    let Some(classpath) = debezium_classpath() else {
        return;
    };
    // Not UTC, so a time zone conversion that is missing shows.
    let pg = Postgres::builder()
        .setting("timezone", "America/New_York")
        .start()
        .unwrap();
    pg.psql(DDL).unwrap();
    let kafka = Kafka::start().unwrap();
    let dir = tempfile::tempdir().unwrap();

    // Debezium's default configuration: Connect schemas and tombstones on.
    let mut debezium = Debezium::start(
        &classpath,
        &pg,
        dir.path(),
        &[
            ("name", "connect"),
            ("runner.schemas.enable", "true"),
            ("tombstones.on.delete", "true"),
        ],
    );
    let config = kafka_config_partitioned(
        dir.path(),
        &pg.url(),
        "cdc",
        &["t"],
        &kafka,
        1,
        "",
        "[format]\npreset = \"debezium\"\n",
    );
    let mut engine = Engine::start(&config);
    wait_streaming(&mut engine);
    debezium.wait_streaming(&pg);

    pg.psql(WORKLOAD).unwrap();
    debezium.wait_for_lines(DEBEZIUM_TOPIC, STREAMED);
    // One signal for both, in one transaction: each reads its own table.
    let snapshot = r#"{"data-collections": ["public.t"], "type": "incremental"}"#;
    pg.psql(&format!(
        "BEGIN;
         INSERT INTO cdc.signal VALUES ('connect', 'execute-snapshot', '{snapshot}');
         INSERT INTO dbz_signal VALUES ('connect', 'execute-snapshot', '{snapshot}');
         COMMIT;"
    ))
    .unwrap();
    let lines = debezium.wait_for_lines(DEBEZIUM_TOPIC, RECORDS);
    drop(debezium);
    produce(kafka.bootstrap_servers(), DEBEZIUM_TOPIC, &lines);

    let theirs = dir.path().join("debezium.txt");
    let ours = dir.path().join("cdc.txt");
    let mut connect = Connect::start(
        &classpath,
        dir.path(),
        kafka.bootstrap_servers(),
        &[
            ("debezium", DEBEZIUM_TOPIC, &theirs),
            ("cdc", CDC_TOPIC, &ours),
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        assert!(engine.is_running(), "cdc exited:\n{}", engine.log_text());
        connect.assert_healthy();
        let rows = (read_lines(&theirs), read_lines(&ours));
        if rows.0.len() >= RECORDS && rows.1.len() >= RECORDS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {RECORDS} rows in each sink file:\n\
             debezium {:#?}\ncdc {:#?}\n---- connect log (end) ----\n{}",
            rows.0,
            rows.1,
            connect.log_tail()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Anything more would come within a few offset flushes.
    std::thread::sleep(Duration::from_secs(2));
    let (theirs, ours) = (read_lines(&theirs), read_lines(&ours));
    engine.terminate();
    connect.assert_healthy();
    drop(connect);

    for line in &theirs {
        println!("debezium: {line}");
    }
    for line in &ours {
        println!("cdc:      {line}");
    }
    // Not vacuous: every kind of record went through the transforms.
    let count = |needle: &str| theirs.iter().filter(|l| l.contains(needle)).count();
    assert_eq!(theirs.len(), RECORDS, "{theirs:#?}");
    assert_eq!(count("__op=r"), 3, "{theirs:#?}");
    assert_eq!(count("__deleted=true"), 1, "{theirs:#?}");
    assert_eq!(theirs.iter().filter(|l| *l == "null").count(), 1);
    assert!(theirs[0].contains("n.value="), "{}", theirs[0]);
    assert_eq!(ours.len(), theirs.len(), "cdc's rows:\n{ours:#?}");
    for (at, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert_eq!(a, b, "row {at} differs: cdc {a} | debezium {b}");
    }
}

/// One line of the runner: key and value as the JsonConverter wrote them,
/// kept byte for byte.
#[derive(serde::Deserialize)]
struct Record<'a> {
    #[serde(borrow)]
    key: &'a RawValue,
    #[serde(borrow)]
    value: &'a RawValue,
}

/// Debezium's records onto `topic` (created, one partition: one order), in
/// their order; a `null` value is a tombstone.
fn produce(bootstrap: &str, topic: &str, lines: &[String]) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", bootstrap);
        let admin: AdminClient<DefaultClientContext> = config.create().unwrap();
        let created = admin
            .create_topics(
                &[NewTopic::new(topic, 1, TopicReplication::Fixed(1))],
                &AdminOptions::new(),
            )
            .await
            .unwrap();
        assert!(created.iter().all(Result::is_ok), "{created:?}");
        let producer: FutureProducer = config
            .set("enable.idempotence", "true")
            .set("message.timeout.ms", "60000")
            .create()
            .unwrap();
        for line in lines {
            let record: Record = serde_json::from_str(line).unwrap();
            let mut out = FutureRecord::to(topic).key(record.key.get());
            if record.value.get() != "null" {
                out = out.payload(record.value.get());
            }
            producer
                .send(out, Duration::from_secs(60))
                .await
                .map_err(|(e, _)| e)
                .unwrap();
        }
    });
}

/// The log4j2 configuration of both Java processes: stderr, at the level of
/// `-Dcdc.debezium.log.level`.
fn log4j() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/debezium/log4j2.properties")
}

/// A standalone Kafka Connect worker: one FileStreamSinkConnector per
/// (name, topic, file), its log in `connect.log`.
struct Connect {
    child: Child,
    log: PathBuf,
}

impl Connect {
    fn start(
        classpath: &str,
        dir: &Path,
        bootstrap: &str,
        sinks: &[(&str, &str, &Path)],
    ) -> Connect {
        let worker = dir.join("worker.properties");
        std::fs::write(
            &worker,
            format!(
                "bootstrap.servers={bootstrap}\n\
                 key.converter=org.apache.kafka.connect.json.JsonConverter\n\
                 value.converter=org.apache.kafka.connect.json.JsonConverter\n\
                 key.converter.schemas.enable=true\n\
                 value.converter.schemas.enable=true\n\
                 offset.storage.file.filename={}\n\
                 # FileStreamSink flushes its file at each offset commit.\n\
                 offset.flush.interval.ms=500\n\
                 # Everything is on the classpath; the jars' manifests name the plugins\n\
                 # (scanning every class of 300 jars takes 20 s).\n\
                 plugin.discovery=service_load\n",
                dir.join("connect.offsets").display()
            ),
        )
        .unwrap();
        let mut args = vec![worker];
        for (name, topic, file) in sinks {
            let path = dir.join(format!("sink-{name}.properties"));
            std::fs::write(
                &path,
                format!(
                    "name=sink-{name}\n\
                     connector.class=org.apache.kafka.connect.file.FileStreamSinkConnector\n\
                     tasks.max=1\n\
                     topics={topic}\n\
                     file={}\n{TRANSFORMS}",
                    file.display()
                ),
            )
            .unwrap();
            args.push(path);
        }
        let log = dir.join("connect.log");
        // ConnectStandalone without its REST server (see the source), run
        // as a source file: nothing to compile beforehand.
        let launcher =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/connect/ConnectWorker.java");
        let child = Command::new("java")
            .arg(format!("-Dlog4j2.configurationFile={}", log4j().display()))
            .arg("-Dcdc.debezium.log.level=INFO")
            .args(["-cp", classpath])
            .arg(launcher)
            .args(&args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Connect { child, log }
    }

    fn log_text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// The log's last lines (it starts with long configuration dumps).
    fn log_tail(&self) -> String {
        let log = self.log_text();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(80)..].join("\n")
    }

    /// Running, and no error logged (a conversion error, with
    /// `errors.tolerance=none`, is logged and kills its task).
    fn assert_healthy(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("the Connect worker exited ({status}):\n{}", self.log_tail());
        }
        let log = self.log_text();
        let errors: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("[ERROR]") || l.contains("DataException"))
            .collect();
        assert!(
            errors.is_empty(),
            "the Connect worker logged errors:\n{}\n---- connect log (end) ----\n{}",
            errors.join("\n"),
            self.log_tail()
        );
    }
}

impl Drop for Connect {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
