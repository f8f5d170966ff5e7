//! The operator's side: config errors, preflight findings, authentication
//! and TLS, each against a real server where one is involved.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use cdc_testcontainers::Postgres;
use common::*;

fn cdc(args: &[&str], config: &Path) -> Output {
    Command::new(cdc_bin())
        .args(args)
        .arg("--config")
        .arg(config)
        .env("CDC_LOG", "warn")
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn config_errors_are_one_line_and_never_show_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "postgresql://app:hunter2@127.0.0.1:1/db",
        &["public.t"],
        "colour = \"blue\"",
    );
    let out = cdc(&["check"], &config);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("colour"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");

    let config = write_config(
        dir.path(),
        "postgresql://app:hunter2@127.0.0.1:notaport/db",
        &["public.t"],
        "",
    );
    let err = stderr(&cdc(&["run"], &config));
    assert!(err.contains("source.url"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    // Unreachable server: names the target, hides the password.
    let config = write_config(
        dir.path(),
        "postgresql://app:hunter2@127.0.0.1:1/db",
        &["public.t"],
        "",
    );
    let out = cdc(&["run"], &config);
    assert_ne!(out.status.code(), Some(0));
    let err = stderr(&out);
    assert!(err.contains("postgresql://app:***@127.0.0.1:1/db"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");

    let out = cdc(&["run"], &dir.path().join("missing.toml"));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("does not exist"));

    let config = write_config(dir.path(), "postgresql://a@h/db", &["not a table"], "");
    let err = stderr(&cdc(&["check"], &config));
    assert!(err.contains("source.tables"), "{err}");
}

#[test]
fn a_resync_truncate_the_preset_would_skip_is_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "postgresql://a@127.0.0.1:1/db",
        &["public.t"],
        "resync_truncate = true\n\n[format]\npreset = \"debezium\"",
    );
    let out = cdc(&["check"], &config);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("source.resync_truncate = true"), "{err}");
    assert!(err.contains("\"skipped.operations\" = \"none\""), "{err}");
}

#[test]
fn a_bad_format_mode_is_one_line_naming_the_key_and_the_valid_values() {
    let dir = tempfile::tempdir().unwrap();
    let with = |format: &str| {
        let config = write_config(
            dir.path(),
            "postgresql://a@127.0.0.1:1/db",
            &["public.t"],
            &format!("[format]\n{format}"),
        );
        let out = cdc(&["check"], &config);
        assert_eq!(out.status.code(), Some(2), "{format}");
        let err = stderr(&out);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        err
    };
    let err = with("time.precision.mode = \"iso\"");
    assert!(
        err.contains(
            "format.time.precision.mode must be one of adaptive, adaptive_time_microseconds, connect, isostring, not 'iso'"
        ),
        "{err}"
    );
    // Quoted as one key, as Debezium's properties are written.
    let err = with("\"binary.handling.mode\" = \"base32\"");
    assert!(
        err.contains(
            "format.binary.handling.mode must be one of bytes, base64, base64-url-safe, hex"
        ),
        "{err}"
    );
    let err = with("money.fraction.digits = \"two\"");
    assert!(
        err.contains("format.money.fraction.digits must be a whole number from 0 to 1000"),
        "{err}"
    );
    let err = with("decimal.handling = \"string\"");
    assert!(
        err.contains("format.decimal.handling is not a format setting"),
        "{err}"
    );
    let err = with("\"provide.transaction.metadata\" = \"yes\"");
    assert!(
        err.contains("format.provide.transaction.metadata must be true or false"),
        "{err}"
    );
    let err = with("\"heartbeat.interval.ms\" = \"soon\"");
    assert!(
        err.contains("format.heartbeat.interval.ms must be a whole number of milliseconds"),
        "{err}"
    );
    let err = with("\"column.mask.hash.MD5.with.salt.s\" = \"public.t.a\"");
    assert!(
        err.contains("hash algorithm 'MD5' is not one of SHA-256, SHA-384, SHA-512"),
        "{err}"
    );
    let err = with("\"column.exclude.list\" = \"public.t.(a\"");
    assert!(
        err.contains(
            "format.column.exclude.list: 'public.t.(a' is not a regular expression cdc can read"
        ),
        "{err}"
    );
    let err =
        with("\"column.include.list\" = \"public.t.a\"\n\"column.exclude.list\" = \"public.t.b\"");
    assert!(
        err.contains("format.column.include.list and format.column.exclude.list are both set"),
        "{err}"
    );
    let err = with("\"skipped.operations\" = \"c,r\"");
    assert!(
        err.contains("format.skipped.operations: 'r' is not an operation Debezium can skip (known: c, u, d, t, or none)"),
        "{err}"
    );
    let err = with("\"column.truncate.to.x.chars\" = \"public.t.a\"");
    assert!(
        err.contains("the number of characters must be a whole number"),
        "{err}"
    );
    let err = with("\"schemas.enable\" = \"maybe\"");
    assert!(
        err.contains("format.schemas.enable must be true or false"),
        "{err}"
    );
    let err = with("preset = \"debezium\"\n\"json.handling.mode\" = \"embedded\"");
    assert!(
        err.contains("format.json.handling.mode = \"embedded\" has no Connect schema"),
        "{err}"
    );
    // The preset alone, at the top: `format = "…"`.
    let config = write_config(
        dir.path(),
        "postgresql://a@127.0.0.1:1/db",
        &["public.t"],
        "",
    );
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("format = \"avro\"\n{text}")).unwrap();
    let out = cdc(&["check"], &config);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("format = \"avro\" is not a preset (known: \"debezium\""),
        "{err}"
    ); // The preset itself is taken: what stops `check` is the server.
    std::fs::write(&config, format!("format = \"debezium\"\n{text}")).unwrap();
    let err = stderr(&cdc(&["check"], &config));
    assert!(err.contains("connecting to"), "{err}");
    assert!(!err.contains("format"), "{err}");
}

#[test]
fn check_names_each_problem_and_its_fix() {
    let pg = Postgres::builder()
        .setting("wal_level", "replica")
        .start()
        .unwrap();
    pg.psql(
        "CREATE TABLE keyed (id int PRIMARY KEY);
         CREATE TABLE keyless (v int);
         CREATE ROLE plain LOGIN PASSWORD 'pw';",
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &pg.url(),
        &["public.keyed", "public.keyless", "public.nope"],
        "",
    );
    let out = cdc(&["check"], &config);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains("error: wal_level is 'replica', must be 'logical'"),
        "{text}"
    );
    assert!(
        text.contains("error: table public.nope does not exist"),
        "{text}"
    );
    assert!(
        text.contains(
            "error: table public.keyless has neither a primary key nor a replica identity index, so it is not captured"
        ) && text.contains("ALTER TABLE \"public\".\"keyless\" REPLICA IDENTITY FULL")
            && text.contains("source.keyless_tables"),
        "{text}"
    );
    // `run` refuses to start on the same findings.
    let out = cdc(&["run"], &config);
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("wal_level"), "{}", stderr(&out));

    // A role without REPLICATION.
    let config = write_config(
        dir.path(),
        &pg.url_for("plain", "pw"),
        &["public.keyed"],
        "",
    );
    let text = stdout(&cdc(&["check"], &config));
    assert!(
        text.contains("role 'plain' lacks the REPLICATION privilege"),
        "{text}"
    );
}

#[test]
fn check_says_ok_and_env_overrides_the_file() {
    let pg = postgres_with("CREATE TABLE t (id int PRIMARY KEY);");
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "postgresql://x@127.0.0.1:1/x",
        &["public.t"],
        "",
    );
    let out = Command::new(cdc_bin())
        .args(["check", "--config"])
        .arg(&config)
        .env("CDC_SOURCE__URL", pg.url())
        .output()
        .unwrap();
    assert_eq!(stdout(&out).trim(), "ok", "{}", stderr(&out));
    assert_eq!(out.status.code(), Some(0));
}

/// Stream one insert as `user`; returns whether the walsender's connection
/// was encrypted.
fn stream_as(pg: &Postgres, user: &str, url: &str) -> bool {
    pg.psql(&format!(
        "GRANT CREATE ON DATABASE postgres TO {user};
         CREATE TABLE t (id int PRIMARY KEY);
         ALTER TABLE t OWNER TO {user};"
    ))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), url, &["public.t"], "");
    let events_path = dir.path().join("events.jsonl");
    let mut engine = Engine::start(&config);
    wait_streaming(&mut engine);
    pg.psql("INSERT INTO t VALUES (7);").unwrap();
    let events = wait_for_events(&events_path, 1, &mut engine);
    assert_eq!(events[0]["after"]["id"], 7);
    let encrypted = pg
        .psql("SELECT bool_and(s.ssl) FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid)")
        .unwrap();
    assert!(!engine.log_text().contains("s3cret-pass"));
    assert_eq!(engine.terminate().code(), Some(0));
    encrypted == "t"
}

#[test]
fn streams_over_tls_verify_full_with_scram() {
    let pg = Postgres::builder()
        .tls(true)
        .scram_user("app", "s3cret-pass")
        .start()
        .unwrap();
    let ca = pg.ca_cert_path().unwrap().display().to_string();
    let url = format!(
        "postgresql://app:s3cret-pass@localhost:{}/postgres?sslmode=verify-full&sslrootcert={ca}",
        pg.port()
    );
    // The walsender's connection is encrypted while it streams.
    assert!(stream_as(&pg, "app", &url));
    let wrong = url.replace("s3cret-pass", "wrong");
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &wrong, &["public.t"], "");
    let err = stderr(&cdc(&["run"], &config));
    assert!(err.contains("password authentication failed"), "{err}");
    assert!(!err.contains("wrong@"), "{err}");
}

#[test]
fn streams_with_md5_password() {
    let pg = Postgres::builder()
        .md5_user("app", "s3cret-pass")
        .start()
        .unwrap();
    let url = pg.url_for("app", "s3cret-pass");
    assert!(!stream_as(&pg, "app", &format!("{url}?sslmode=disable")));
}

#[test]
fn tls_verify_full_rejects_an_untrusted_server() {
    let pg = Postgres::builder().tls(true).start().unwrap();
    pg.psql("CREATE TABLE t (id int PRIMARY KEY);").unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The system store does not know the test CA.
    let empty_ca = dir.path().join("other-ca.pem");
    let other = cdc_testcontainers::Postgres::builder()
        .tls(true)
        .start()
        .unwrap();
    std::fs::copy(other.ca_cert_path().unwrap(), &empty_ca).unwrap();
    let url = format!(
        "postgresql://postgres@localhost:{}/postgres?sslmode=verify-full&sslrootcert={}",
        pg.port(),
        empty_ca.display()
    );
    let config = write_config(dir.path(), &url, &["public.t"], "");
    let out = cdc(&["run"], &config);
    assert_ne!(out.status.code(), Some(0));
    let err = stderr(&out);
    assert!(err.to_lowercase().contains("certificate"), "{err}");
}
