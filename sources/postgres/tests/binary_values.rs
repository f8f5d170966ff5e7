//! Binary decoders against a real server: for random values of each type the
//! server renders both forms, and the binary decoder must give exactly what
//! the text conversion gives of the type's output function (the log's text;
//! `format('%s', v)` calls it, where a cast to text might not). Chunk rows
//! and log rows then read the same.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use cdc_postgres::binary::{binary_to_value, has_binary_decoder};
use cdc_postgres::types::{oid, text_to_value};
use cdc_postgres::ConnectConfig;
use cdc_testcontainers::Postgres;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use tokio_postgres::types::{FromSql, Type};

struct Raw(Vec<u8>);

impl<'a> FromSql<'a> for Raw {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(raw.to_vec()))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// How a batch of generated inputs becomes values of the type.
enum Input {
    /// Text literals, cast by the type's input function.
    Literal,
    /// Integers, turned into values by an SQL expression of `n`.
    Expression(&'static str),
}

struct Server {
    _pg: Postgres,
    client: tokio_postgres::Client,
    runtime: tokio::runtime::Runtime,
}

impl Server {
    fn start() -> Server {
        let pg = Postgres::start().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // Same session settings as the chunk and log connections.
        let config = ConnectConfig::parse(&pg.url()).unwrap();
        let client = runtime.block_on(config.connect_sql()).unwrap();
        Server {
            _pg: pg,
            client,
            runtime,
        }
    }

    /// Each value as (text form, binary form), in input order.
    fn render(&self, type_sql: &str, input: &Input, items: Params) -> Vec<(String, Vec<u8>)> {
        let (sql, params): (String, Box<dyn tokio_postgres::types::ToSql + Sync>) =
            match (input, items) {
                (Input::Literal, Params::Text(t)) => (
                    format!(
                        "SELECT format('%s', v), v FROM unnest($1::text[]) WITH ORDINALITY AS u(t, i), \
                         LATERAL (SELECT u.t::{type_sql} AS v) s ORDER BY u.i"
                    ),
                    Box::new(t),
                ),
                (Input::Expression(expr), Params::Int(n)) => (
                    format!(
                        "SELECT format('%s', v), v FROM unnest($1::int8[]) WITH ORDINALITY AS u(n, i), \
                         LATERAL (SELECT {expr} AS v) s ORDER BY u.i"
                    ),
                    Box::new(n),
                ),
                _ => panic!("input shape does not match the parameters"),
            };
        let rows = self
            .runtime
            .block_on(self.client.query(&sql, &[params.as_ref()]))
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        rows.iter()
            .map(|row| (row.get::<_, String>(0), row.get::<_, Raw>(1).0))
            .collect()
    }

    fn check(&self, type_oid: u32, type_sql: &str, input: Input, items: BoxedStrategy<Params>) {
        assert!(has_binary_decoder(type_oid));
        let mut runner = TestRunner::new(Config::with_cases(48));
        runner
            .run(&items, |items| {
                for (text, binary) in self.render(type_sql, &input, items) {
                    let from_text = text_to_value(type_oid, text.as_bytes());
                    let from_binary = binary_to_value(type_oid, &binary);
                    prop_assert_eq!(from_binary, from_text, "{} {:?}", type_sql, text);
                }
                Ok(())
            })
            .unwrap();
    }
}

#[derive(Debug, Clone)]
enum Params {
    Text(Vec<String>),
    Int(Vec<i64>),
}

fn literals(item: impl Strategy<Value = String> + 'static) -> BoxedStrategy<Params> {
    prop::collection::vec(item, 1..64)
        .prop_map(Params::Text)
        .boxed()
}

fn ints(item: impl Strategy<Value = i64> + 'static) -> BoxedStrategy<Params> {
    prop::collection::vec(item, 1..64)
        .prop_map(Params::Int)
        .boxed()
}

fn special(words: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop::sample::select(words).prop_map(str::to_owned)
}

/// Microseconds from 2000-01-01 to the first and past the last valid
/// timestamp (4714-11-24 BC, 294277-01-01).
const MIN_TIMESTAMP_US: i64 = -211_813_488_000_000_000;
const END_TIMESTAMP_US: i64 = 9_223_371_331_200_000_000;

#[test]
fn binary_values_decode_as_their_text_does() {
    let server = Server::start();

    server.check(
        oid::BOOL,
        "bool",
        Input::Literal,
        literals(special(&["t", "f"])),
    );
    server.check(
        oid::INT2,
        "int2",
        Input::Literal,
        literals(any::<i16>().prop_map(|i| i.to_string())),
    );
    server.check(
        oid::INT4,
        "int4",
        Input::Literal,
        literals(any::<i32>().prop_map(|i| i.to_string())),
    );
    server.check(
        oid::INT8,
        "int8",
        Input::Literal,
        literals(any::<i64>().prop_map(|i| i.to_string())),
    );
    server.check(
        oid::OID,
        "oid",
        Input::Literal,
        literals(any::<u32>().prop_map(|i| i.to_string())),
    );

    let non_finite = || special(&["NaN", "Infinity", "-Infinity", "-0"]);
    server.check(
        oid::FLOAT8,
        "float8",
        Input::Literal,
        literals(prop_oneof![
            8 => any::<u64>().prop_map(f64::from_bits).prop_filter("finite", |x| x.is_finite())
                .prop_map(|x| format!("{x:e}")),
            1 => non_finite(),
        ]),
    );

    // Plain decimals with any scale, exponent forms (their scale comes from
    // the exponent), and the special values.
    let decimal = ("-?", "[0-9]{0,40}", "[0-9]{0,30}").prop_map(|(sign, int, frac)| {
        let int = if int.is_empty() { "0".to_owned() } else { int };
        if frac.is_empty() {
            format!("{sign}{int}")
        } else {
            format!("{sign}{int}.{frac}")
        }
    });
    let exponent = ("-?[1-9]\\.[0-9]{0,12}", -40i32..40).prop_map(|(m, e)| format!("{m}e{e}"));
    server.check(
        oid::NUMERIC,
        "numeric",
        Input::Literal,
        literals(prop_oneof![
            6 => decimal,
            3 => exponent,
            1 => special(&["NaN", "Infinity", "-Infinity", "0.000", "-0.5"]),
        ]),
    );

    // Every day from 4714-11-24 BC to 5874897-12-31.
    let infinities = || prop::sample::select(vec![i64::MAX, i64::MIN]);
    server.check(
        oid::DATE,
        "date",
        Input::Expression(
            "CASE u.n WHEN 9223372036854775807 THEN 'infinity'::date \
             WHEN -9223372036854775808 THEN '-infinity'::date \
             ELSE '2000-01-01'::date + u.n::int END",
        ),
        ints(prop_oneof![1 => infinities(), 9 => -2_451_545i64..2_145_031_949]),
    );
    server.check(
        oid::TIME,
        "time",
        Input::Expression(
            "CASE WHEN u.n = 86400000000 THEN '24:00:00'::time \
             ELSE '00:00:00'::time + u.n * interval '1 microsecond' END",
        ),
        ints(prop_oneof![
            8 => 0i64..=86_400_000_000,
            1 => (0i64..86_400).prop_map(|s| s * 1_000_000),
            1 => Just(86_400_000_000i64),
        ]),
    );
    // Whole days plus microseconds: `interval * bigint` goes through a
    // double and would round large counts.
    for (type_oid, type_sql) in [
        (oid::TIMESTAMP, "timestamp"),
        (oid::TIMESTAMPTZ, "timestamptz"),
    ] {
        let expr = format!(
            "CASE u.n WHEN 9223372036854775807 THEN 'infinity'::{type_sql} \
             WHEN -9223372036854775808 THEN '-infinity'::{type_sql} \
             ELSE '2000-01-01 00:00:00+00'::{type_sql} \
               + make_interval(days => div(u.n, 86400000000)::int) \
               + mod(u.n, 86400000000) * interval '1 microsecond' END"
        );
        server.check(
            type_oid,
            type_sql,
            Input::Expression(Box::leak(expr.into_boxed_str())),
            ints(prop_oneof![
                1 => infinities(),
                // Whole seconds too: no fraction is printed then.
                2 => (MIN_TIMESTAMP_US / 1_000_000..END_TIMESTAMP_US / 1_000_000)
                    .prop_map(|s| s * 1_000_000),
                7 => MIN_TIMESTAMP_US..END_TIMESTAMP_US,
            ]),
        );
    }

    server.check(
        oid::UUID,
        "uuid",
        Input::Literal,
        literals(any::<[u8; 16]>().prop_map(|b| b.iter().map(|x| format!("{x:02x}")).collect())),
    );
    // No NUL: PostgreSQL text cannot hold it.
    let text = || "[^\\x00]{0,12}";
    for (type_oid, type_sql) in [
        (oid::TEXT, "text"),
        (oid::VARCHAR, "varchar(20)"),
        (oid::BPCHAR, "char(14)"),
        (oid::NAME, "name"),
    ] {
        server.check(type_oid, type_sql, Input::Literal, literals(text()));
    }
    server.check(
        oid::BYTEA,
        "bytea",
        Input::Literal,
        literals(prop::collection::vec(any::<u8>(), 0..48).prop_map(|b| {
            let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
            format!("\\x{hex}")
        })),
    );
}
