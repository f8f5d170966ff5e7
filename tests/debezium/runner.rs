//! What the golden tests against the real Debezium share (tests/debezium.rs,
//! tests/debezium_schemas.rs): the runner, the table of every type and its
//! workload, and the event-by-event comparison.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cdc_testcontainers::Postgres;
use serde_json::Value;

use crate::common::*;

/// Columns (one per type or edge case) and envelope fields whose JSON
/// differs between cdc and Debezium in the same modes, and why.
/// Fixing one is removing it from here; `ia`, `nm` and `da` are Debezium
/// losing or changing data, and `dt` Debezium disagreeing with itself,
/// which cdc does not copy.
pub const KNOWN_DIFFERENCES: &[(&str, &str)] = &[
    (
        "dt",
        "a -infinity date read by the incremental snapshot: Debezium's JDBC path writes \
         +292269055-12-02Z, its log path -5877611-06-22Z; cdc the log's form both ways",
    ),
    (
        "source.ts_ms",
        "incremental snapshot rows: Debezium the read time, cdc the signal's commit time",
    ),
    (
        "source.ts_us",
        "incremental snapshot rows: as source.ts_ms, in microseconds",
    ),
    (
        "source.ts_ns",
        "incremental snapshot rows: as source.ts_ms, in nanoseconds",
    ),
    (
        "source.sequence",
        "incremental snapshot rows: Debezium the log position at the read, cdc the signal's \
         (streamed changes are identical)",
    ),
    (
        "da",
        "date[]: Debezium's array path drops a BC date's era (0044-03-15Z for 44 BC) and \
         writes infinity as +292278994-08-16Z; cdc each element as a date column",
    ),
    (
        "ia",
        "int[][]: Debezium writes [null,null], losing the values; cdc nested arrays",
    ),
    (
        "nm",
        "name: Debezium writes null, losing the value; cdc the text",
    ),
    (
        "iva",
        "interval[]: Debezium writes null, losing the values; cdc each element in the mode",
    ),
    (
        "tna",
        "a numeric[] holding NaN in decimal.handling.mode=string or double: Debezium writes \
         null, losing the array; cdc each element in the mode (not in the default modes' \
         workload, which has no NaN)",
    ),
];

/// The table: one column per type, some types twice for their edge values
/// (a typmod, a time zone). `big` is stored out of line (TOAST).
pub const DDL: &str = "
    CREATE EXTENSION hstore;
    CREATE EXTENSION ltree;
    CREATE EXTENSION citext;
    CREATE TYPE mood AS ENUM ('sad', 'happy');
    CREATE DOMAIN posint AS int CHECK (VALUE > 0);
    CREATE TABLE t (
      id int PRIMARY KEY, s smallint, i int, bi bigint, b bool, r real, d double precision,
      n numeric, n2 numeric(12,3), m money, txt text, vc varchar(10), ch char(3), nm name,
      j json, jb jsonb, u uuid, dt date, ts timestamp, ts3 timestamp(3), tstz timestamptz,
      tm time, tm3 time(3), tmtz timetz, iv interval, by bytea, ia int[], ta text[],
      mo mood, dom posint, ip inet, net cidr, mac macaddr, x xml, bt bit(3), vb varbit,
      big text, tstz3 timestamptz(3), n0 numeric(10,0), tm0 time(0), ts0 timestamp(0),
      tstz0 timestamptz(0), tsa timestamp[], na numeric(6,2)[], da date[],
      tta text[], tia int[], tba bigint[], tda date[], tva varchar(40)[], tja jsonb[],
      tna numeric[], tby bytea,
      o oid, c1 \"char\", hs hstore, lt ltree, ci citext, r4 int4range, tr tstzrange,
      pt point, tv tsvector, sa smallint[], ba bool[], ua uuid[], fa float8[], iva interval[],
      tza timestamptz[]
    );
    -- Stored out of line whatever their size after compression, so the
    -- update of row 1 leaves each unchanged TOAST.
    ALTER TABLE t ALTER tta SET STORAGE EXTERNAL, ALTER tia SET STORAGE EXTERNAL,
      ALTER tba SET STORAGE EXTERNAL, ALTER tda SET STORAGE EXTERNAL,
      ALTER tva SET STORAGE EXTERNAL, ALTER tja SET STORAGE EXTERNAL,
      ALTER tna SET STORAGE EXTERNAL, ALTER tby SET STORAGE EXTERNAL;
    CREATE TABLE dbz_signal (id varchar(42) PRIMARY KEY, type varchar(32) NOT NULL, data varchar(2048));";

/// Ordinary values, all NULLs, and two rows of edge values; then an update
/// that leaves `big` unchanged (TOAST) and a delete.
pub const WORKLOAD: &str = r#"
    INSERT INTO t VALUES
      (1, -2, 42, 9007199254740993, true, 1.5, 2.25, 12345678901234567890.123, 1.5, 1234.56,
       'héllo "q"', 'v', 'ab', 'nm', '{"a": [1, 2]}', '{"b": {"c": null}}',
       'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '2024-02-29', '2024-02-29 13:14:15.123456',
       '2024-02-29 13:14:15.123', '2024-02-29 13:14:15+02', '01:02:03', '01:02:03.5',
       '03:04:05+05:30', '1 year 2 months 3 days 04:05:06.5', '\x00ff10', '{1,NULL,3}',
       '{"a b","c,d",NULL}', 'happy', 7, '192.168.0.1', '10.0.0.0/8', '08:00:2b:01:02:03',
       '<a>x</a>', B'101', B'10', (SELECT string_agg(md5(g::text), '') FROM generate_series(1, 3200) g),
       '2024-02-29 13:14:15.5+02', 42, '01:02:03', '2024-02-29 13:14:15',
       '2024-02-29 13:14:15+02', '{"2024-02-29 13:14:15.5",NULL}', '{1.5,-2}', '{2024-02-29}',
       (SELECT array_agg(md5(g::text)) FROM generate_series(1, 200) g),
       (SELECT array_agg(g) FROM generate_series(1, 2000) g),
       (SELECT array_agg(g * 1000000007::bigint) FROM generate_series(1, 1000) g),
       (SELECT array_agg(date '2024-01-01' + g) FROM generate_series(1, 1000) g),
       (SELECT array_agg(md5(g::text)::varchar(40)) FROM generate_series(1, 200) g),
       (SELECT array_agg(jsonb_build_object('k', g)) FROM generate_series(1, 300) g),
       (SELECT array_agg(g / 7.0) FROM generate_series(1, 300) g),
       (SELECT string_agg(decode(md5(g::text), 'hex'), '') FROM generate_series(1, 300) g),
       4294967295, 'a', '"a"=>"1", "b"=>NULL', 'top.sci.astro', 'MiXeD', '[1,10)',
       '[2024-01-01 00:00+00,2024-02-01 00:00+00)', '(1.5,-2)', 'a fat cat', '{1,-2}',
       '{t,f,NULL}', '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}', '{1.5,NaN,-Infinity}',
       '{"1 day","-2 hours"}', '{"2024-02-29 13:14:15+02"}'),
      (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
      (3, 32767, -2147483648, -9223372036854775808, false, 'NaN', 'Infinity', 'NaN', -0.001,
       -1234567.89, '', '', '', '', '[]', '[1, "x"]', '00000000-0000-0000-0000-000000000000',
       '0044-03-15 BC', '0044-03-15 12:30:00 BC', 'infinity', '-infinity', '24:00:00',
       '23:59:59.999', '00:00:00-14', '-3 days 04:05:06.000007', '', '{}', '{}', 'sad', 1,
       '::1', '2001:db8::/32', 'ff:ff:ff:ff:ff:ff', '<b/>', B'000', B'', 'small',
       '0044-03-15 12:30:00.25+00 BC', -9999999999, '23:59:59', '0044-03-15 12:30:00 BC',
       '2024-01-15 08:00:00-05', '{}', '{}', '{0044-03-15 BC}',
       '{"",NULL}', '{-1,NULL}', '{-9223372036854775808,9223372036854775807}', '{2024-02-29,NULL}',
       '{"x y",NULL}', '{"{\"a\": null}",NULL}', '{NaN,-1.5,0}', '\x00',
       0, 'z', '', '', '', 'empty', '(,)', '(0,0)', '', '{}', '{}', '{}', '{}', '{}', '{}'),
      (4, 0, 0, 0, true, '-Infinity', 1e308, 'Infinity', 0, 0, 'x', 'x', 'x', 'x', 'null',
       '"s"', 'ffffffff-ffff-ffff-ffff-ffffffffffff', 'infinity', 'infinity',
       '2024-07-01 12:00:00.5', '2024-01-15 08:00:00-05', '00:00:00', '12:00:00.001',
       '24:00:00+00', '-1 year -2 mons +3 days -04:05:06', '\x', '{{1,2},{3,4}}',
       '{"\"q\""}', 'happy', 2147483647, '10.1.2.3/24', '192.168.0.0/16',
       '00:00:00:00:00:00', '', B'111', B'1', NULL, 'infinity', 0,
       '24:00:00', 'infinity', '-infinity', '{infinity}', '{0.01}', '{infinity}',
       '{}', '{}', '{}', '{}', '{}', '{}', '{}', '\x',
       1, 'y', '"zz"=>"1", "a"=>"2", "key10"=>"3", "b"=>NULL, "é"=>"\"q\""', 'a', 'x', '(,5]', '[2024-01-01 00:00+00,infinity)',
       '(1e300,-1e-300)', 'x:1A', '{NULL}', '{NULL}', '{NULL}', '{NULL}', '{NULL}', '{NULL}');
    UPDATE t SET i = 43 WHERE id = 1;
    UPDATE t SET dt = '-infinity', r = -0.0, ts = '-infinity' WHERE id = 3;
    DELETE FROM t WHERE id = 4;"#;

/// [`WORKLOAD`] for precise decimals, which have no NaN or infinity
/// (Debezium stops the connector on one): other numerics there.
pub fn precise_workload() -> String {
    let workload = WORKLOAD
        .replacen("'Infinity', 'NaN', -0.001", "'Infinity', 0.000, -0.001", 1)
        .replacen(
            "1e308, 'Infinity', 0,",
            "1e308, -123456789012345678901234567890.5, 0,",
            1,
        )
        .replacen("'{NaN,-1.5,0}'", "'{-1.5,0}'", 1);
    assert!(
        !workload.contains("'NaN', -0.001")
            && !workload.contains("'Infinity', 0,")
            && !workload.contains("{NaN")
    );
    workload
}

pub const ROWS_AFTER_WORKLOAD: usize = 3;

/// The runner's classpath, or `None` (after saying why) when Java or the
/// jars are missing outside CI.
pub fn debezium_classpath() -> Option<String> {
    let found = std::env::var("CDC_DEBEZIUM_CLASSPATH")
        .ok()
        .filter(|cp| !cp.is_empty());
    let java = Command::new("java")
        .arg("-version")
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    match found {
        Some(cp) if java => Some(cp),
        _ => {
            let why = "Debezium is unavailable (needs java and CDC_DEBEZIUM_CLASSPATH, \
                       which scripts/test.sh sets through ensure_debezium)";
            assert!(std::env::var_os("CI").is_none(), "{why}; CI is set");
            eprintln!("SKIPPED: {why}");
            None
        }
    }
}

/// A running DebeziumRunner: its events in `debezium.jsonl`, its log in
/// `debezium.log`.
pub struct Debezium {
    child: Child,
    pub events: PathBuf,
    log: PathBuf,
}

impl Debezium {
    pub fn start(classpath: &str, pg: &Postgres, dir: &Path, extra: &[(&str, &str)]) -> Debezium {
        let events = dir.join("debezium.jsonl");
        let log = dir.join("debezium.log");
        let log4j = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/debezium/log4j2.properties");
        let mut props = vec![
            ("name".to_string(), "golden".to_string()),
            ("topic.prefix".into(), "dbz".into()),
            ("database.hostname".into(), pg.host().into()),
            ("database.port".into(), pg.port().to_string()),
            ("database.user".into(), pg.superuser().into()),
            ("database.password".into(), String::new()),
            ("database.dbname".into(), pg.database().into()),
            ("plugin.name".into(), "pgoutput".into()),
            ("slot.name".into(), "dbz".into()),
            ("publication.name".into(), "dbz_pub".into()),
            ("publication.autocreate.mode".into(), "filtered".into()),
            (
                "table.include.list".into(),
                "public.t,public.dbz_signal".into(),
            ),
            ("signal.data.collection".into(), "public.dbz_signal".into()),
            ("snapshot.mode".into(), "no_data".into()),
            // The file sink writes no tombstones.
            ("tombstones.on.delete".into(), "false".into()),
        ];
        props.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let child = Command::new("java")
            .arg(format!("-Dlog4j2.configurationFile={}", log4j.display()))
            .arg("-Dcdc.debezium.log.level=INFO")
            .args(["-cp", classpath, "DebeziumRunner"])
            .args(props.iter().map(|(k, v)| format!("{k}={v}")))
            .stdout(std::fs::File::create(&events).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Debezium { child, events, log }
    }

    pub fn log_text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("Debezium exited ({status}):\n{}", self.log_text());
        }
    }

    /// Debezium's slot is active: changes committed from now on reach it.
    pub fn wait_streaming(&mut self, pg: &Postgres) {
        wait_until("Debezium to stream", Duration::from_secs(120), || {
            self.assert_running();
            pg.psql("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'dbz' AND active")
                .unwrap()
                == "1"
        });
    }

    /// Debezium's events of table `t` once there are at least `n`.
    pub fn wait_for(&mut self, n: usize) -> Vec<Value> {
        let mut events = Vec::new();
        wait_until(
            &format!("{n} Debezium events"),
            Duration::from_secs(120),
            || {
                self.assert_running();
                events = read_events(&self.events)
                    .into_iter()
                    .filter(|e| e["topic"] == "dbz.public.t")
                    .collect();
                events.len() >= n
            },
        );
        events
    }

    /// The runner's lines of `topic`, byte for byte as it wrote them, once
    /// there are at least `n`.
    pub fn wait_for_lines(&mut self, topic: &str, n: usize) -> Vec<String> {
        let mut lines = Vec::new();
        wait_until(
            &format!("{n} Debezium records"),
            Duration::from_secs(120),
            || {
                self.assert_running();
                lines = read_lines(&self.events)
                    .into_iter()
                    .filter(|l| serde_json::from_str::<Value>(l).is_ok_and(|r| r["topic"] == topic))
                    .collect();
                lines.len() >= n
            },
        );
        lines
    }
}

impl Drop for Debezium {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A place (event and field) and the two values found there.
pub type Diff = (String, Value, Value);

/// Per column: values compared, and the pairs that differed.
#[derive(Default)]
pub struct Report {
    columns: BTreeMap<String, (usize, Vec<Diff>)>,
    /// Envelope fields that differ (`op`, `source.*`, key), where and how.
    envelope: BTreeMap<String, Vec<Diff>>,
    events: usize,
}

/// Differences shown per column or field.
pub const SHOWN: usize = 4;

pub fn note(diffs: &mut Vec<Diff>, at: String, ours: &Value, theirs: &Value) {
    if diffs.len() < SHOWN {
        diffs.push((at, shown(ours), shown(theirs)));
    }
}

impl Report {
    /// Columns and envelope fields that differ.
    pub fn differing(&self) -> impl Iterator<Item = &str> {
        self.columns
            .iter()
            .filter(|(_, (_, diffs))| !diffs.is_empty())
            .map(|(c, _)| c.as_str())
            .chain(self.envelope.keys().map(String::as_str))
    }

    pub fn print(&self) {
        let differing: Vec<&str> = self
            .columns
            .iter()
            .filter(|(_, (_, diffs))| !diffs.is_empty())
            .map(|(c, _)| c.as_str())
            .collect();
        println!(
            "golden: {} events compared; types compared: {}, identical: {}, differing: {}",
            self.events,
            self.columns.len(),
            self.columns.len() - differing.len(),
            differing.len()
        );
        for (column, (n, diffs)) in &self.columns {
            if diffs.is_empty() {
                println!("  same    {column} ({n} values)");
            }
            for (at, ours, theirs) in diffs {
                println!("  DIFFERS {column} at {at}: cdc {ours} | debezium {theirs}");
            }
        }
        for (field, diffs) in &self.envelope {
            for (at, ours, theirs) in diffs {
                println!("  envelope {field} at {at}: cdc {ours} | debezium {theirs}");
            }
        }
    }
}

/// Values longer than this are shown by their length and ends.
pub fn shown(v: &Value) -> Value {
    match v {
        Value::String(s) if s.len() > 80 => Value::String(format!(
            "{}…({} chars)",
            s.chars().take(40).collect::<String>(),
            s.len()
        )),
        other => other.clone(),
    }
}

/// Source fields both must agree on; the rest (`version`, `name`, cdc's
/// `position`) differ by nature. `ts_ms`, `ts_us` and `ts_ns` are the
/// commit time of a streamed change on both.
pub const SOURCE_FIELDS: &[&str] = &[
    "connector",
    "db",
    "schema",
    "table",
    "snapshot",
    "txId",
    "lsn",
    "sequence",
    "xmin",
    "ts_ms",
    "ts_us",
    "ts_ns",
];

pub fn compare(ours: &[Value], theirs: &[Value]) -> Report {
    compare_table(ours, theirs, "t", true)
}

/// `ours`: cdc's envelopes (of every table); `theirs`: Debezium's records
/// of `table`. With `check_key`, Debezium's key must be cdc's `{"id": …}`.
pub fn compare_table(ours: &[Value], theirs: &[Value], table: &str, check_key: bool) -> Report {
    let ours = table_events(ours, table);
    let mut report = Report::default();
    let ops =
        |events: &[&Value]| -> Vec<String> { events.iter().map(|e| e["op"].to_string()).collect() };
    let theirs_values: Vec<&Value> = theirs.iter().map(|e| &e["value"]).collect();
    assert_eq!(
        ops(&ours),
        ops(&theirs_values),
        "the two event sequences differ in their operations"
    );
    for (at, (our, their)) in ours.iter().zip(theirs).enumerate() {
        report.events += 1;
        let value = &their["value"];
        let label = format!("event {at} ({} id {})", our["op"], key_id(our));
        for field in ["before", "after"] {
            let (a, b) = (&our[field], &value[field]);
            if a.is_null() || b.is_null() {
                if a != b {
                    note(
                        report.envelope.entry(field.into()).or_default(),
                        label.clone(),
                        a,
                        b,
                    );
                }
                continue;
            }
            let columns: BTreeSet<&String> = a
                .as_object()
                .unwrap()
                .keys()
                .chain(b.as_object().unwrap().keys())
                .collect();
            for column in columns {
                let entry = report.columns.entry(column.clone()).or_default();
                entry.0 += 1;
                let (x, y) = (&a[column], &b[column]);
                if x != y {
                    note(&mut entry.1, format!("{label} {field}"), x, y);
                }
            }
        }
        for field in SOURCE_FIELDS {
            let (a, b) = (&our["source"][field], &value["source"][field]);
            if a != b {
                let diffs = report
                    .envelope
                    .entry(format!("source.{field}"))
                    .or_default();
                note(diffs, label.clone(), a, b);
            }
        }
        let our_key = serde_json::json!({"id": key_id(our)});
        if check_key && their["key"] != our_key {
            let diffs = report.envelope.entry("key".into()).or_default();
            note(diffs, label.clone(), &our_key, &their["key"]);
        }
    }
    report
}

/// The `id` of an event's row (`before` for a delete).
pub fn key_id(event: &Value) -> Value {
    let row = if event["op"] == "d" {
        &event["before"]
    } else {
        &event["after"]
    };
    row["id"].clone()
}
