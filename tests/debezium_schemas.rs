//! `format = "debezium"` against the real Debezium 3.6.3 in its default
//! configuration, Connect schemas on (Kafka Connect's default): the same
//! records, keys and values, `{schema, payload}` for both, compared record
//! by record on a real Kafka-protocol broker. Schemas must be identical
//! (the preset leaves cdc's `source.position` out, and skips truncates as
//! Debezium's default `skipped.operations = t` does); payloads as
//! tests/debezium.rs compares them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod harness;
#[path = "debezium/runner.rs"]
mod runner;

use std::collections::BTreeSet;
use std::time::Duration;

use cdc_testcontainers::{Kafka, Postgres};
use common::*;
use harness::kafka::{kafka_config_partitioned, GroupReader};
use runner::*;
use serde_json::Value;

/// A table of literal defaults and of defaults Debezium cannot evaluate
/// (a function: the type's zero), next to `t`'s every type.
const DEFAULTS_DDL: &str = "
    CREATE TABLE dflt (
      id serial PRIMARY KEY, a int DEFAULT -1, b numeric(6,2) DEFAULT 1.5, c numeric DEFAULT 2.25,
      d date DEFAULT CURRENT_DATE, e timestamp DEFAULT now(), f timestamp(3) DEFAULT CURRENT_TIMESTAMP,
      g text DEFAULT 'it''s', h uuid DEFAULT gen_random_uuid(), i bigint DEFAULT 7,
      j date DEFAULT '2024-01-02', k jsonb DEFAULT '{}', l time DEFAULT '01:02:03',
      m double precision DEFAULT 1.25, n bool DEFAULT false,
      o timestamptz DEFAULT '2024-01-02 03:04:05+00', p interval DEFAULT '1 day', q int DEFAULT NULL,
      r text DEFAULT upper('x'), s smallint DEFAULT 3, t bytea DEFAULT '\\x01', u money DEFAULT 12.5,
      v int NOT NULL DEFAULT 0, w timestamptz DEFAULT now(), x time DEFAULT now(),
      y varchar(5) DEFAULT 'ab'::varchar, z real DEFAULT 1.5, nn text NOT NULL
    );
    CREATE TABLE ck (a int, b text, c int, PRIMARY KEY (b, a));";

#[test]
fn format_debezium_equals_debeziums_defaults_with_connect_schemas() {
    let Some(classpath) = debezium_classpath() else {
        return;
    };
    let pg = Postgres::builder()
        .setting("timezone", "America/New_York")
        .setting("max_replication_slots", "10")
        .setting("max_wal_senders", "10")
        .start()
        .unwrap();
    pg.psql(DDL).unwrap();
    pg.psql(DEFAULTS_DDL).unwrap();
    let kafka = Kafka::start().unwrap();
    let dir = tempfile::tempdir().unwrap();

    let mut debezium = Debezium::start(
        &classpath,
        &pg,
        dir.path(),
        &[
            ("runner.schemas.enable", "true"),
            (
                "table.include.list",
                "public.t,public.dflt,public.ck,public.dbz_signal",
            ),
        ],
    );
    // One partition per topic, so the records keep the log's order.
    let config = kafka_config_partitioned(
        dir.path(),
        &pg.url(),
        "dbz",
        &["t", "dflt", "ck"],
        &kafka,
        1,
        "tombstones = false",
        "[format]\npreset = \"debezium\"\n",
    );
    let mut engine = Engine::start(&config);
    wait_streaming(&mut engine);
    debezium.wait_streaming(&pg);

    pg.psql(&precise_workload()).unwrap();
    pg.psql(
        "INSERT INTO dflt (nn) VALUES ('x');
         INSERT INTO dflt VALUES (DEFAULT, 5, 2.5, 3.125, '2020-02-02', '2020-02-02 01:02:03.5',
           '2020-02-02 01:02:03.5', 'y', '00000000-0000-0000-0000-000000000001', 8, '2021-01-01',
           '[1]', '04:05:06', 0.5, true, '2021-01-01 00:00:00+00', '-2 hours', 9, 'z', 4, '\\x02',
           3.25, 1, '2021-01-01 00:00:00+00', '07:08:09', 'cd', 0.25, 'w');
         TRUNCATE ck;
         INSERT INTO ck VALUES (1, 'k', 2);
         UPDATE ck SET c = 3 WHERE a = 1;
         DELETE FROM ck;",
    )
    .unwrap();
    // One signal for both, in one transaction: each reads its own table.
    let snapshot = r#"{"data-collections": ["public.t", "public.dflt"], "type": "incremental"}"#;
    pg.psql(&format!(
        "BEGIN;
         INSERT INTO cdc.signal VALUES ('golden', 'execute-snapshot', '{snapshot}');
         INSERT INTO dbz_signal VALUES ('golden', 'execute-snapshot', '{snapshot}');
         COMMIT;"
    ))
    .unwrap();
    // t: 7 streamed, 3 read; dflt: 2 streamed, 2 read; ck: 3 streamed
    // (its truncate is skipped, Debezium's skipped.operations = t: were it
    // written, ck's records would be off by one).
    let expected = [("t", 10), ("dflt", 4), ("ck", 3)];
    let total: usize = expected.iter().map(|(_, n)| n).sum();
    let topics: Vec<String> = expected
        .iter()
        .map(|(t, _)| format!("dbz.public.{t}"))
        .collect();
    let reader = GroupReader::start_assigned(kafka.bootstrap_servers(), &topics, 1);
    let ours = reader.wait_for("cdc's records", Duration::from_secs(120), |got| {
        assert!(engine.is_running(), "cdc exited:\n{}", engine.log_text());
        got.len() >= total
    });
    let mut theirs = Vec::new();
    wait_until("Debezium's records", Duration::from_secs(120), || {
        debezium.assert_running();
        theirs = read_events(&debezium.events)
            .into_iter()
            .filter(|e| topics.contains(&e["topic"].as_str().unwrap_or_default().to_string()))
            .collect();
        theirs.len() >= total
    });
    engine.terminate();
    drop(debezium);

    let ours: Vec<Value> = ours
        .iter()
        .map(|r| {
            serde_json::json!({
                "topic": r.topic,
                "key": r.key.as_deref().map(|k| serde_json::from_slice::<Value>(k).unwrap()),
                "value": r.value,
            })
        })
        .collect();
    let mut schemas_compared = 0;
    for (table, n) in expected {
        let topic = format!("dbz.public.{table}");
        let on = |records: &[Value]| -> Vec<Value> {
            records
                .iter()
                .filter(|r| r["topic"] == topic)
                .cloned()
                .collect()
        };
        let (ours, theirs) = (on(&ours), on(&theirs));
        assert_eq!(ours.len(), n, "cdc's {topic}: {ours:#?}");
        assert_eq!(theirs.len(), n, "Debezium's {topic}");
        for (at, (our, their)) in ours.iter().zip(&theirs).enumerate() {
            assert_eq!(
                our["key"], their["key"],
                "{topic} record {at}: keys differ (schema or payload)"
            );
            let our_schema = &without_unsupported(&our["value"]["schema"], table);
            let their_schema = &their["value"]["schema"];
            if our_schema != their_schema {
                panic!(
                    "{topic} record {at}: value schemas differ:\n{}",
                    schema_diff(our_schema, their_schema)
                );
            }
            // The payload's source block has Debezium's members, no more.
            let members = |v: &Value| -> BTreeSet<String> {
                v["payload"]["source"]
                    .as_object()
                    .map(|o| o.keys().cloned().collect())
                    .unwrap_or_default()
            };
            assert_eq!(
                members(&our["value"]),
                members(&their["value"]),
                "{topic} record {at}: source members"
            );
            schemas_compared += 1;
        }
        // Payloads field by field, known differences aside (tests/debezium.rs).
        let payloads = |records: &[Value]| -> Vec<Value> {
            records
                .iter()
                .map(|r| {
                    let mut value = r["value"].clone();
                    // As the comparison reads them: the payload, with its key.
                    serde_json::json!({"key": r["key"]["payload"], "value": value["payload"].take()})
                })
                .collect()
        };
        let ours: Vec<Value> = payloads(&ours)
            .into_iter()
            .map(|r| r["value"].clone())
            .collect();
        let theirs = payloads(&theirs);
        let report = compare_table(&ours, &theirs, table, false);
        println!("{topic}:");
        report.print();
        let known: BTreeSet<&str> = KNOWN_DIFFERENCES.iter().map(|(c, _)| *c).collect();
        let new: Vec<&str> = report.differing().filter(|c| !known.contains(c)).collect();
        assert!(
            new.is_empty(),
            "{topic}: payload fields differ from Debezium that are not known differences: {new:?}"
        );
    }
    assert_eq!(schemas_compared, total);
}

/// Columns Debezium leaves out of its schema and its payload, as a type it
/// does not support (`interval[]`): cdc declares and writes them. Taken out
/// of cdc's schema for the comparison, after checking they are there.
const UNSUPPORTED_BY_DEBEZIUM: &[(&str, &str)] = &[("t", "iva")];

fn without_unsupported(schema: &Value, table: &str) -> Value {
    let mut schema = schema.clone();
    for (_, column) in UNSUPPORTED_BY_DEBEZIUM.iter().filter(|(t, _)| *t == table) {
        for row in ["before", "after"] {
            let Some(fields) = schema["fields"]
                .as_array_mut()
                .and_then(|members| members.iter_mut().find(|m| m["field"] == row))
                .and_then(|member| member["fields"].as_array_mut())
            else {
                panic!("cdc's schema has no {row} struct");
            };
            let before = fields.len();
            fields.retain(|f| f["field"] != *column);
            assert_eq!(
                fields.len() + 1,
                before,
                "cdc's schema declares {table}.{column}"
            );
        }
    }
    schema
}

/// The envelope members, and the columns of `after`, that differ.
fn schema_diff(ours: &Value, theirs: &Value) -> String {
    let members = |s: &Value| -> Vec<Value> { s["fields"].as_array().cloned().unwrap_or_default() };
    let mut lines = Vec::new();
    for (a, b) in members(ours).iter().zip(members(theirs).iter()) {
        if a == b {
            continue;
        }
        match (a["fields"].as_array(), b["fields"].as_array()) {
            (Some(x), Some(y)) if a["field"] == "after" || a["field"] == "before" => {
                for (c, d) in x.iter().zip(y) {
                    if c != d {
                        lines.push(format!("  {} column: cdc {c} | debezium {d}", a["field"]));
                    }
                }
                if x.len() != y.len() {
                    lines.push(format!(
                        "  {} has {} columns | {}",
                        a["field"],
                        x.len(),
                        y.len()
                    ));
                }
            }
            _ => lines.push(format!("  member: cdc {a} | debezium {b}")),
        }
    }
    let strip = |s: &Value| {
        let mut s = s.clone();
        s["fields"] = Value::Null;
        s
    };
    if strip(ours) != strip(theirs) {
        lines.push(format!(
            "  envelope: cdc {} | debezium {}",
            strip(ours),
            strip(theirs)
        ));
    }
    lines.join("\n")
}

/// The records of no table, Connect schemas on: transaction BEGIN/END
/// (`provide.transaction.metadata`), heartbeats (`heartbeat.interval.ms`)
/// and logical messages have Debezium's key and value schemas, and a data
/// event's `transaction` block its payload.
#[test]
fn transaction_heartbeat_and_message_records_carry_debeziums_schemas() {
    let Some(classpath) = debezium_classpath() else {
        return;
    };
    let pg = Postgres::builder().start().unwrap();
    pg.psql(DDL).unwrap();
    pg.psql("CREATE TABLE tx (id int PRIMARY KEY, v int);")
        .unwrap();
    let kafka = Kafka::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut debezium = Debezium::start(
        &classpath,
        &pg,
        dir.path(),
        &[
            ("runner.schemas.enable", "true"),
            ("provide.transaction.metadata", "true"),
            ("heartbeat.interval.ms", "200"),
            ("table.include.list", "public.tx,public.dbz_signal"),
        ],
    );
    // The preset, then Debezium's two properties on top of it.
    let config = kafka_config_partitioned(
        dir.path(),
        &pg.url(),
        "dbz",
        &["tx"],
        &kafka,
        1,
        "",
        "[format]\npreset = \"debezium\"\n\"provide.transaction.metadata\" = true\n\"heartbeat.interval.ms\" = 200\n",
    );
    let mut engine = Engine::start(&config);
    wait_streaming(&mut engine);
    debezium.wait_streaming(&pg);
    pg.psql(
        "BEGIN; INSERT INTO tx VALUES (1, 1), (2, 2);
         SELECT pg_logical_emit_message(true, 'app', 'hello'); COMMIT;",
    )
    .unwrap();
    let topics: Vec<String> = [
        "dbz.public.tx",
        "dbz.transaction",
        "dbz.message",
        "__debezium-heartbeat.dbz",
    ]
    .map(String::from)
    .to_vec();
    let reader = GroupReader::start_assigned(kafka.bootstrap_servers(), &topics, 1);
    let has_all = |records: &[(String, Value, Value)]| {
        topics
            .iter()
            .all(|t| records.iter().any(|(topic, _, _)| topic == t))
    };
    let mut ours = Vec::new();
    wait_until(
        "cdc's records of every kind",
        Duration::from_secs(120),
        || {
            assert!(engine.is_running(), "cdc exited:\n{}", engine.log_text());
            ours = reader
                .snapshot()
                .into_iter()
                .map(|r| {
                    let key = r
                        .key
                        .as_deref()
                        .map(|k| serde_json::from_slice(k).unwrap())
                        .unwrap_or(Value::Null);
                    (r.topic, key, r.value.unwrap_or(Value::Null))
                })
                .collect();
            has_all(&ours)
        },
    );
    let mut theirs = Vec::new();
    wait_until(
        "Debezium's records of every kind",
        Duration::from_secs(120),
        || {
            debezium.assert_running();
            theirs = read_events(&debezium.events)
                .into_iter()
                .map(|e| {
                    (
                        e["topic"].as_str().unwrap_or_default().to_string(),
                        e["key"].clone(),
                        e["value"].clone(),
                    )
                })
                .collect();
            has_all(&theirs)
        },
    );
    engine.terminate();
    drop(debezium);

    let first = |records: &[(String, Value, Value)], topic: &str| -> (Value, Value) {
        records
            .iter()
            .find(|(t, _, _)| t == topic)
            .map(|(_, k, v)| (k.clone(), v.clone()))
            .unwrap()
    };
    for topic in &topics {
        let ((our_key, our_value), (their_key, their_value)) =
            (first(&ours, topic), first(&theirs, topic));
        assert_eq!(
            our_key["schema"], their_key["schema"],
            "{topic}: key schema"
        );
        assert_eq!(
            our_value["schema"], their_value["schema"],
            "{topic}: value schema"
        );
        let payload_keys = |v: &Value| -> BTreeSet<String> {
            v["payload"]
                .as_object()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default()
        };
        // Every member Debezium's payload has, cdc's has (it may add ts_us
        // and ts_ns to a message, which its schema does not declare).
        let missing: Vec<String> = payload_keys(&their_value)
            .difference(&payload_keys(&our_value))
            .cloned()
            .collect();
        assert!(
            missing.is_empty(),
            "{topic}: cdc's payload lacks {missing:?}"
        );
    }
    // The same transaction, the same ids and order; the same message.
    let ids = |records: &[(String, Value, Value)]| -> Vec<Value> {
        records
            .iter()
            .filter(|(t, _, _)| t == "dbz.public.tx")
            .map(|(_, _, v)| v["payload"]["transaction"].clone())
            .collect()
    };
    assert_eq!(ids(&ours), ids(&theirs));
    assert_eq!(ids(&ours).len(), 2);
    assert!(ids(&ours).iter().all(|block| block["total_order"].is_u64()));
    let message = |records: &[(String, Value, Value)]| -> (Value, Value) {
        let (key, value) = first(records, "dbz.message");
        (key["payload"].clone(), value["payload"]["message"].clone())
    };
    assert_eq!(message(&ours), message(&theirs));
    let (_, heartbeat) = first(&ours, "__debezium-heartbeat.dbz");
    assert!(heartbeat["payload"]["ts_ms"].as_i64().unwrap() > 1_700_000_000_000);
}
