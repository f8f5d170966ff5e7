//! pgoutput's binary mode (`source.binary`): the same changes streamed by
//! two engines on one server, one in text and one with `binary = "auto"`,
//! must carry the same values, on a server whose time zone is not UTC.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cdc_testcontainers::Postgres;
use common::*;
use serde_json::Value;

/// An engine on its own slot, publication and state schema, so two of
/// them capture the same tables side by side.
struct Capture {
    _dir: tempfile::TempDir,
    events: std::path::PathBuf,
    engine: Engine,
}

fn capture_as(pg: &Postgres, tables: &[&str], name: &str, binary: &str) -> Capture {
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "slot = \"{name}\"\npublication = \"{name}\"\nsignal_table = \"{name}.signal\"\nbinary = \"{binary}\""
    );
    let config = write_config(dir.path(), &pg.url(), tables, &extra);
    let events = dir.path().join("events.jsonl");
    let mut engine = Engine::start(&config);
    wait_streaming(&mut engine);
    Capture {
        _dir: dir,
        events,
        engine,
    }
}

/// What a consumer reads of each event, once each: a session started again
/// in text may repeat the unacknowledged tail (at least once).
fn changes(events: &[Value]) -> Vec<Value> {
    let mut seen = std::collections::HashSet::new();
    events
        .iter()
        .map(|e| {
            serde_json::json!({
                "op": e["op"], "before": e["before"], "after": e["after"],
                "lsn": e["source"]["lsn"], "table": e["source"]["table"],
            })
        })
        .filter(|c| seen.insert(c.to_string()))
        .collect()
}

/// Run `ddl`, start a text and a binary engine on `tables`, run each of
/// `steps` and wait until both hold `n` distinct changes after it; return
/// both engines' changes and the binary engine's log.
fn both_ways(
    ddl: &str,
    tables: &[&str],
    steps: &[(&str, usize)],
) -> (Vec<Value>, Vec<Value>, String) {
    let pg = Postgres::builder()
        .setting("timezone", "America/New_York")
        .start()
        .unwrap();
    pg.psql(ddl).unwrap();
    let mut text = capture_as(&pg, tables, "as_text", "off");
    let mut binary = capture_as(&pg, tables, "as_binary", "auto");
    for (sql, n) in steps {
        pg.psql(sql).unwrap();
        for c in [&mut text, &mut binary] {
            wait_until(
                &format!("{n} changes"),
                std::time::Duration::from_secs(60),
                || {
                    assert!(
                        c.engine.is_running(),
                        "cdc exited:\n{}",
                        c.engine.log_text()
                    );
                    changes(&read_events(&c.events)).len() >= *n
                },
            );
        }
    }
    let log = binary.engine.log_text();
    let (t, b) = (read_events(&text.events), read_events(&binary.events));
    text.engine.terminate();
    binary.engine.terminate();
    (changes(&t), changes(&b), log)
}

#[test]
fn binary_values_are_the_text_values_and_a_later_column_without_a_decoder_falls_back_to_text() {
    let (text, binary, log) = both_ways(
        "CREATE TYPE mood AS ENUM ('sad', 'happy');
         CREATE DOMAIN posint AS int CHECK (VALUE > 0);
         CREATE DOMAIN code AS char(5);
         CREATE TABLE b (id bigint PRIMARY KEY, s smallint, i int, o oid, bo bool,
           f8 double precision, n numeric, d date, tm time, ts timestamp, tstz timestamptz,
           u uuid, by bytea, tx text, vc varchar(10), ch char(5), nm name, dp posint, dc code,
           j json, jb jsonb);
         ALTER TABLE b REPLICA IDENTITY FULL;",
        &["public.b"],
        &[
            (
                r#"INSERT INTO b VALUES
                  (1, -32768, -2147483648, 4294967295, true, 'NaN', 'NaN', 'infinity', '00:00:00',
                   'infinity', 'infinity', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '\x00ff10',
                   'héllo', 'v', 'ab', 'nm', 5, 'xy'),
                  (2, 32767, 2147483647, 0, false, 'Infinity', 'Infinity', '-infinity',
                   '23:59:59.999999', '-infinity', '-infinity', '00000000-0000-0000-0000-000000000000',
                   '', '', '', '', '', 2147483647, ''),
                  (3, 0, 0, 1, NULL, '-Infinity', '-Infinity', '0044-03-15 BC', '12:30:00.25',
                   '0044-03-15 12:30:00 BC', '0044-03-15 12:30:00.25+00 BC', NULL, NULL, NULL,
                   NULL, 'abcde', NULL, NULL, 'abcde'),
                  (4, 1, 1, 2, true, 1e308, -0.000123, '2024-02-29', '01:02:03', '2024-07-01 12:00:00.5',
                   '2024-07-01 12:00:00', NULL, '\xdeadbeef', 'x', 'x', 'x', 'x', 1, 'x'),
                  (5, 2, 2, 3, false, -2.2250738585072014e-308, 12345678901234567890.123,
                   '4713-01-01 BC', '00:00:00.000001', '4713-01-01 00:00:00 BC',
                   '2024-01-15 08:00:00-05', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
                  (6, 3, 3, 4, true, 0.1, 0.000000000000000000001, '5874897-12-31',
                   '24:00:00', '294276-12-31 23:59:59.999999', '1999-12-31 23:59:59.999999+14',
                   NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
                  UPDATE b SET n = n * 2, tstz = tstz + interval '1 hour' WHERE id IN (4, 5);
                  UPDATE b SET id = 40 WHERE id = 4;
                  DELETE FROM b WHERE id = 2;
                  UPDATE b SET j = '{"a": [1, 2],  "a": 3}', jb = '{"b": {"c": null}, "a": 1}' WHERE id = 3;"#,
                12,
            ),
            // A column whose type has no binary decoder, added while the
            // binary session runs: its session starts again in text.
            (
                "ALTER TABLE b ADD COLUMN m mood;
                 INSERT INTO b (id, n, m) VALUES (7, 7.5, 'happy');
                 UPDATE b SET m = 'sad', d = '2000-01-01' WHERE id = 1;",
                14,
            ),
        ],
    );
    assert!(
        log.contains("log values come in pgoutput's binary format"),
        "{log}"
    );
    assert!(
        log.contains("log values come as text from here on: public.b.m"),
        "{log}"
    );
    assert_eq!(text.len(), 14, "{text:#?}");
    for (t, b) in text.iter().zip(&binary) {
        assert_eq!(t, b);
    }
    assert_eq!(text.len(), binary.len());
    // Values a decoder could get wrong, as the text path reads them.
    let after = |id: i64| {
        text.iter()
            .find(|c| c["op"] == "c" && c["after"]["id"] == id)
            .map(|c| c["after"].clone())
            .unwrap()
    };
    assert_eq!(after(1)["n"], "NaN");
    assert_eq!(after(1)["dp"], 5);
    assert_eq!(after(1)["dc"], "xy   ");
    assert_eq!(after(3)["d"], "0044-03-15 BC");
    assert_eq!(after(3)["tstz"], "0044-03-15 12:30:00.25+00 BC");
    assert_eq!(after(5)["tstz"], "2024-01-15T13:00:00Z");
    assert_eq!(after(7)["m"], "happy");
    let j = &text
        .iter()
        .find(|c| c["after"]["id"] == 3 && c["op"] == "u")
        .unwrap()["after"];
    assert_eq!(j["jb"], serde_json::json!({"a": 1, "b": {"c": null}}));
}

#[test]
fn a_captured_column_without_a_binary_decoder_keeps_the_log_text() {
    let (text, binary, log) = both_ways(
        "CREATE TYPE mood AS ENUM ('sad', 'happy', 'so so');
         CREATE DOMAIN posint AS int CHECK (VALUE > 0);
         CREATE TABLE t (
           id bigint PRIMARY KEY, s smallint, i int, b bool, r real, d double precision,
           n numeric, txt text, vc varchar(10), ch char(3), j json, jb jsonb, u uuid,
           dt date, ts timestamp, tstz timestamptz, tm time, iv interval, by bytea,
           ia int[], ta text[], m mood, ma money, mas money[], ea mood[], da posint[],
           iaa int[][]
         );",
        &["public.t"],
        &[(
            r#"INSERT INTO t VALUES (
                 9007199254740993, -2, 42, true, 1.5, 2.25, 12345678901234567890.123, 'héllo',
                 'v', 'ab', '{"a": [1, 2]}', '{"b": {"c": null}}',
                 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '2024-02-29', '2024-02-29 13:14:15.123456',
                 '2024-02-29 13:14:15+02', '01:02:03', '1 mon -2 days 00:00:00.000003', '\x00ff10',
                 '{1,NULL,3}', '{"a b","c,d",NULL}', 'so so', -92233720368547758.08,
                 '{{1234.5,NULL},{-0.01,0}}', '{sad,"so so"}', '{1,2}', '[0:1][1:1]={{7},{8}}');
               INSERT INTO t (id, r) VALUES (2, 'NaN');"#,
            2,
        )],
    );
    assert!(
        log.contains("log values come as text: public.t.r (real) has no binary decoder"),
        "{log}"
    );
    assert!(!log.contains("binary format"), "{log}");
    assert_eq!(text, binary);
    assert_eq!(text.len(), 2);
    assert_eq!(text[0]["after"]["ma"], "-92233720368547758.08");
}
