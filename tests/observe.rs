//! The observe server against real servers: a real Prometheus scrapes a
//! real `cdc run`; health answers while the sink fails; JSON logs; the
//! metrics the dashboards and alerts in `deploy/` use exist.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

const LISTEN_ANY: &str = "\n[observe]\nlisten = \"127.0.0.1:0\"\n";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The value of the sample line `series` (name and labels as exposed).
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

/// A Prometheus of its own, scraping `target` every second.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Prometheus {
    fn start(dir: &Path, target: SocketAddr) -> Prometheus {
        let bin = std::env::var("CDC_PROMETHEUS_BIN").unwrap_or_else(|_| "prometheus".into());
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
                 scrape_configs:\n  - job_name: cdc\n    static_configs:\n      - targets: [\"{target}\"]\n"
            ),
        )
        .unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let log = dir.join("prometheus.log");
        let child = Command::new(&bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {bin} ({e}): scripts/test.sh installs it (apt-get install prometheus)")
            });
        let mut prometheus = Prometheus { child, addr, log };
        wait_until("prometheus to be ready", Duration::from_secs(60), || {
            assert!(
                prometheus.child.try_wait().unwrap().is_none(),
                "prometheus exited:\n{}",
                std::fs::read_to_string(&prometheus.log).unwrap_or_default()
            );
            TcpStream::connect(prometheus.addr).is_ok()
                && http_get(prometheus.addr, "/-/ready").0 == 200
        });
        prometheus
    }

    /// The single value of an instant query, if it has one.
    fn query(&self, promql: &str) -> Option<f64> {
        let encoded: String = promql
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'-' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        let (status, body) = http_get(self.addr, &format!("/api/v1/query?query={encoded}"));
        assert_eq!(status, 200, "{body}");
        let answer: Value = serde_json::from_str(&body).unwrap();
        answer["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|v| v.parse().ok())
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- prometheus log ----\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every `cdc_*` name used in the dashboard and the alert rules.
fn deploy_metric_names() -> BTreeSet<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    let mut names = BTreeSet::new();
    for file in ["grafana/cdc-dashboard.json", "prometheus/cdc-alerts.yml"] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let bytes = text.as_bytes();
        let mut i = 0;
        while let Some(at) = text[i..].find("cdc_") {
            let start = i + at;
            let word_start = start == 0 || !is_name_byte(bytes[start - 1]);
            let end = text[start..]
                .find(|c: char| !is_name_byte(c as u8))
                .map_or(text.len(), |e| start + e);
            if word_start {
                names.insert(text[start..end].to_owned());
            }
            i = end;
        }
    }
    names
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Whether `/metrics` has `name`: a sample of it, or its family (a
/// counter's `# TYPE` line omits `_total`; histograms add suffixes).
fn exposes(metrics: &str, name: &str) -> bool {
    let mut families = vec![name];
    for suffix in ["_total", "_bucket", "_sum", "_count", "_info"] {
        if let Some(base) = name.strip_suffix(suffix) {
            families.push(base);
        }
    }
    metrics
        .lines()
        .any(|line| line.starts_with(&format!("{name}{{")) || line.starts_with(&format!("{name} ")))
        || families.iter().any(|f| {
            metrics
                .lines()
                .any(|l| l.starts_with(&format!("# TYPE {f} ")))
        })
}

#[test]
fn deploy_files_use_metrics_of_the_engine() {
    let names = deploy_metric_names();
    assert!(names.len() >= 10, "{names:?}");
    for name in &names {
        let known = cdc_engine::telemetry::names::ALL.iter().any(|n| {
            name == n
                || ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|s| *name == format!("{n}{s}"))
        });
        assert!(
            known,
            "{name} is used in deploy/ but is no constant of telemetry::names"
        );
    }
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana/cdc-dashboard.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels
        .iter()
        .all(|p| p["targets"].as_array().is_some_and(|t| !t.is_empty())));
    // The rules are valid for Prometheus itself.
    if let Ok(out) = Command::new("promtool")
        .args(["check", "rules"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus/cdc-alerts.yml"))
        .output()
    {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

/// A snapshot and a streamed workload; Prometheus's view of the event
/// counter ends equal to the events in the sink file. The metrics that
/// `deploy/` uses are all on `/metrics`.
#[test]
fn prometheus_scrapes_as_many_events_as_the_sink_holds() {
    let (pg, dir, config, events) = prepare(
        "CREATE TABLE orders (id int PRIMARY KEY, note text);
         INSERT INTO orders SELECT g, 'old' FROM generate_series(1, 300) g;",
        &["public.orders"],
        "",
    );
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[snapshot]\ninitial = true\nchunk_size = 64\n");
    text.push_str(LISTEN_ANY);
    std::fs::write(&config, text).unwrap();
    let mut engine = Engine::start(&config);
    wait_streaming(&mut engine);
    let addr = observe_addr(&mut engine);
    let prometheus = Prometheus::start(dir.path(), addr);

    for batch in 0..5 {
        let from = 1000 + batch * 100;
        pg.psql(&format!(
            "INSERT INTO orders SELECT g, 'new' FROM generate_series({from}, {}) g;
             UPDATE orders SET note = 'changed' WHERE id BETWEEN {from} AND {};
             DELETE FROM orders WHERE id = {from};",
            from + 99,
            from + 9
        ))
        .unwrap();
    }
    // 300 snapshot reads, 5 × (100 inserts + 10 updates + 1 delete).
    let expected = 300 + 5 * 111;
    wait_for_events(&events, expected, &mut engine);
    wait_until(
        "prometheus to count the events of the sink file",
        Duration::from_secs(90),
        || prometheus.query("sum(cdc_events_total)") == Some(read_events(&events).len() as f64),
    );
    assert_eq!(read_events(&events).len(), expected);
    assert_eq!(
        prometheus.query("sum(cdc_snapshot_rows_total)"),
        Some(300.0)
    );
    assert_eq!(
        prometheus.query("sum(cdc_events_total{table=\"public.orders\",op=\"d\"})"),
        Some(5.0)
    );
    assert_eq!(prometheus.query("count(cdc_build_info)"), Some(1.0));

    let (status, _) = http_get(addr, "/health/live");
    assert_eq!(status, 200);
    let (status, body) = http_get(addr, "/health/ready");
    assert_eq!((status, body.trim()), (200, "ready"));
    // The watcher publishes the slot (status_interval_secs = 1).
    let mut metrics = String::new();
    wait_until("the slot's wal_status", Duration::from_secs(60), || {
        metrics = http_get(addr, "/metrics").1;
        sample(&metrics, "cdc_slot_wal_status{status=\"reserved\"}") == Some(1.0)
    });
    assert!(
        sample(&metrics, "cdc_acknowledged_lsn").unwrap() > 0.0,
        "{metrics}"
    );
    assert!(
        sample(&metrics, "cdc_snapshot_chunks_total").unwrap() >= 5.0,
        "{metrics}"
    );
    assert!(
        sample(
            &metrics,
            "cdc_snapshot_rows_estimated{table=\"public.orders\"}"
        )
        .is_some(),
        "{metrics}"
    );
    assert!(sample(&metrics, "cdc_sink_flush_duration_seconds_count").unwrap() > 0.0);
    assert!(sample(&metrics, "cdc_commit_to_sink_seconds_count").unwrap() > 0.0);
    for name in deploy_metric_names() {
        assert!(
            exposes(&metrics, &name),
            "{name} is not on /metrics:\n{metrics}"
        );
    }
    assert_eq!(engine.terminate().code(), Some(0));
}

/// While the sink fails, ready is 503 naming it, live stays 200, and the
/// warning the pipeline logs is counted. Nothing is acknowledged meanwhile,
/// so the slot's lag and what is left of `max_slot_wal_keep_size` are the
/// server's own numbers, which WAL written now moves.
#[test]
fn ready_is_503_while_the_sink_fails_and_the_warning_is_counted() {
    let pg = cdc_testcontainers::Postgres::builder()
        .setting("max_slot_wal_keep_size", "256MB")
        .start()
        .unwrap();
    pg.psql("CREATE TABLE t (id int PRIMARY KEY); CREATE TABLE filler (v text);")
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &pg.url(), &["public.t"], "");
    let events = dir.path().join("events.jsonl");
    let full = full_sink_config(&config, &events);
    let mut text = std::fs::read_to_string(&full).unwrap();
    text.push_str(LISTEN_ANY);
    std::fs::write(&full, text).unwrap();
    let mut engine = Engine::start(&full);
    let addr = observe_addr(&mut engine);
    assert_eq!(http_get(addr, "/health/live").0, 200);
    wait_streaming(&mut engine);
    // Even the flush of a keepalive's checkpoint fails on /dev/full; a row
    // makes sure there is something to write.
    pg.psql("INSERT INTO t VALUES (1);").unwrap();
    let mut body = String::new();
    wait_until(
        "ready to say the sink fails",
        Duration::from_secs(60),
        || {
            let (status, text) = http_get(addr, "/health/ready");
            body = text;
            status == 503
        },
    );
    assert!(body.starts_with("sink failing: "), "{body}");
    assert_eq!(body.trim().lines().count(), 1, "{body}");
    assert_eq!(http_get(addr, "/health/live").0, 200);
    let metrics = http_get(addr, "/metrics").1;
    assert_eq!(sample(&metrics, "cdc_ready"), Some(0.0), "{metrics}");
    assert!(
        sample(&metrics, "cdc_warnings_total{target=\"cdc_engine\"}").unwrap() >= 1.0,
        "{metrics}"
    );
    assert!(sample(&metrics, "cdc_sink_retries_total").unwrap() >= 1.0);
    assert!(sample(&metrics, "cdc_errors_total{kind=\"sink\"}").unwrap() >= 1.0);
    // Nothing reached a sink, so nothing was counted as written.
    assert!(sample(&metrics, "cdc_events_total{table=\"public.t\",op=\"c\"}").is_none());

    // 10 MB of WAL the slot must keep (a table not captured: only its
    // commits reach cdc). The watcher's numbers follow the server's, within
    // the WAL written between the two reads (a MB is plenty).
    const MB: f64 = 1024.0 * 1024.0;
    let server = |sql: &str| -> f64 {
        pg.psql(&format!(
            "SELECT ({sql})::float8 FROM pg_replication_slots WHERE slot_name = 'cdc'"
        ))
        .unwrap()
        .parse()
        .unwrap()
    };
    let safe_before = server("safe_wal_size");
    pg.psql("INSERT INTO filler SELECT repeat('x', 1000) FROM generate_series(1, 10000);")
        .unwrap();
    let mut seen = (0.0, 0.0, 0.0, 0.0);
    wait_until(
        "the slot metrics to show the WAL kept",
        Duration::from_secs(60),
        || {
            let metrics = http_get(addr, "/metrics").1;
            let lag = sample(&metrics, "cdc_slot_lag_bytes").unwrap_or(-1.0);
            let safe = sample(&metrics, "cdc_slot_safe_wal_size_bytes").unwrap_or(-1.0);
            let server_lag = server("pg_current_wal_lsn() - confirmed_flush_lsn");
            let server_safe = server("safe_wal_size");
            seen = (lag, server_lag, safe, server_safe);
            lag >= 8.0 * MB
                && (lag - server_lag).abs() < MB
                && safe > 0.0
                && safe <= safe_before - 8.0 * MB
                && (safe - server_safe).abs() < MB
        },
    );
    eprintln!(
        "slot lag {} (server {}), safe_wal_size {} (server {})",
        seen.0, seen.1, seen.2, seen.3
    );
    engine.kill();
}

/// Walsenders terminated under cdc: while it reconnects, ready is 503 and
/// says so; the reconnects and the errors are counted, and ready comes back
/// once the reader streams again.
#[test]
fn a_reconnect_is_counted_and_ready_comes_back() {
    let (pg, _dir, _config, events, mut engine) = capture(
        "CREATE TABLE t (id int PRIMARY KEY);",
        &["public.t"],
        LISTEN_ANY,
    );
    let addr = observe_addr(&mut engine);
    wait_until("ready", Duration::from_secs(60), || {
        http_get(addr, "/health/ready").0 == 200
    });
    // Each terminated walsender is a reconnect after a growing backoff;
    // ending them over and over makes the not-ready stretch long enough
    // to be seen by polling, whatever the machine's speed.
    let killer = LiveWriter::start(&pg.url(), Duration::from_millis(50), |_| {
        "SELECT pg_terminate_backend(pid) FROM pg_stat_replication".to_string()
    });
    let mut body = String::new();
    wait_until(
        "ready to say it reconnects",
        Duration::from_secs(60),
        || {
            let (status, text) = http_get(addr, "/health/ready");
            body = text;
            status == 503
        },
    );
    killer.stop();
    assert!(body.starts_with("reconnecting: "), "{body}");
    assert_eq!(body.trim().lines().count(), 1, "{body}");
    assert_eq!(http_get(addr, "/health/live").0, 200);
    let mut metrics = String::new();
    wait_until(
        "the reconnect to be counted",
        Duration::from_secs(60),
        || {
            metrics = http_get(addr, "/metrics").1;
            sample(&metrics, "cdc_reconnects_total") >= Some(1.0)
        },
    );
    assert!(
        sample(&metrics, "cdc_errors_total{kind=\"replication\"}") >= Some(1.0),
        "{metrics}"
    );
    wait_until("ready again", Duration::from_secs(60), || {
        http_get(addr, "/health/ready").0 == 200
    });
    pg.psql("INSERT INTO t VALUES (1);").unwrap();
    wait_for_events(&events, 1, &mut engine);
    assert_eq!(engine.terminate().code(), Some(0));
}

/// A chunk that fails and is selected again counts as discarded with
/// reason `failed` (and its warning); a snapshot stopped by a definite
/// error logs an ERROR, counted in `cdc_log_errors_total`. Every reason's
/// series is there from the start.
#[test]
fn discarded_chunks_and_error_lines_are_counted() {
    let (pg, _dir, _config, events, mut engine) = capture(
        "CREATE TABLE t (id int PRIMARY KEY);
         INSERT INTO t SELECT generate_series(1, 100);
         CREATE TABLE ones (id int PRIMARY KEY);
         INSERT INTO ones VALUES (1), (2);",
        &["public.t", "public.ones"],
        LISTEN_ANY,
    );
    let addr = observe_addr(&mut engine);
    let metrics = http_get(addr, "/metrics").1;
    for reason in ["window", "failed", "timeout"] {
        assert_eq!(
            sample(
                &metrics,
                &format!("cdc_snapshot_chunks_discarded_total{{reason=\"{reason}\"}}")
            ),
            Some(0.0),
            "{metrics}"
        );
    }
    assert_eq!(
        sample(&metrics, "cdc_log_errors_total{target=\"cdc_engine\"}"),
        Some(0.0)
    );

    // The chunk's select waits behind a lock; cancelling it fails the
    // chunk (a transient error: it is selected again).
    let mut locker = Command::new(pg.bindir().join("psql"))
        .args(["-X", "-q", "-d", &pg.url()])
        .args([
            "-c",
            "SET application_name = 'locker'; BEGIN; LOCK TABLE t; SELECT pg_sleep(60);",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the lock", Duration::from_secs(30), || {
        pg.psql("SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'locker' AND l.relation = 't'::regclass AND l.granted")
            .unwrap()
            == "1"
    });
    signal(
        &pg,
        "all-of-t",
        "execute-snapshot",
        r#"{"data-collections": ["public.t"]}"#,
    );
    wait_until(
        "the chunk to wait for the lock",
        Duration::from_secs(30),
        || {
            pg.psql(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
             AND application_name <> 'locker' AND query ILIKE '%FROM%t%'",
            )
            .unwrap()
                != "0"
        },
    );
    pg.psql(
        "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
         AND application_name <> 'locker'",
    )
    .unwrap();
    let mut metrics = String::new();
    wait_until("the discarded chunk", Duration::from_secs(30), || {
        metrics = http_get(addr, "/metrics").1;
        sample(
            &metrics,
            "cdc_snapshot_chunks_discarded_total{reason=\"failed\"}",
        ) >= Some(1.0)
    });
    assert!(
        sample(&metrics, "cdc_warnings_total{target=\"cdc_engine\"}") >= Some(1.0),
        "{metrics}"
    );
    pg.psql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'locker'",
    )
    .unwrap();
    let _ = locker.wait();
    // The file sink writes behind the engine's "snapshot complete".
    wait_until(
        "the snapshot of t in the sink",
        Duration::from_secs(60),
        || {
            engine.log_text().contains("snapshot complete")
                && read_events(&events)
                    .iter()
                    .filter(|e| e["op"] == "r")
                    .count()
                    == 100
        },
    );

    // A filter that fails on a row: a definite error, the snapshot stops.
    signal(
        &pg,
        "fails-in-chunk",
        "execute-snapshot",
        r#"{"data-collections": ["public.ones"], "additional-conditions": [{"data-collection": "public.ones", "filter": "100 / (id - 1) > 0"}]}"#,
    );
    wait_until(
        "the error line to be counted",
        Duration::from_secs(30),
        || {
            metrics = http_get(addr, "/metrics").1;
            sample(&metrics, "cdc_log_errors_total{target=\"cdc_engine\"}") == Some(1.0)
        },
    );
    assert!(
        engine
            .log_text()
            .contains("snapshot of public.ones (signal 'fails-in-chunk') stopped"),
        "{}",
        engine.log_text()
    );
    assert!(
        sample(&metrics, "cdc_errors_total{kind=\"snapshot\"}") >= Some(2.0),
        "{metrics}"
    );
    assert_eq!(engine.terminate().code(), Some(0));
}

/// `--log-format json`: every stderr line is one JSON object with the usual
/// fields, and the password of the URL never shows, nor in the final error.
#[test]
fn json_logs_are_one_object_per_line_without_the_password() {
    let pg = cdc_testcontainers::Postgres::builder()
        .scram_user("app", "s3cret-pass")
        .start()
        .unwrap();
    pg.psql(
        "GRANT CREATE ON DATABASE postgres TO app;
         CREATE TABLE t (id int PRIMARY KEY);
         ALTER TABLE t OWNER TO app;
         INSERT INTO t VALUES (1);",
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = pg.url_for("app", "s3cret-pass");
    // A snapshot too, for the lines of its chunk span.
    let config = write_config(
        dir.path(),
        &url,
        &["public.t"],
        "\n[snapshot]\ninitial = true\n",
    );
    let events = dir.path().join("events.jsonl");
    let log = dir.path().join("cdc.log");
    let mut child = Command::new(cdc_bin())
        .args(["run", "--log-format", "json", "--config"])
        .arg(&config)
        .env("CDC_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_until("cdc to stream", Duration::from_secs(60), || {
        read_log().contains("\"streaming\"")
    });
    pg.psql("INSERT INTO t VALUES (7);").unwrap();
    wait_until(
        "the snapshot row and the event",
        Duration::from_secs(60),
        || read_events(&events).len() == 2,
    );
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    assert!(child.wait().unwrap().success());
    check_json_log(&read_log(), "s3cret-pass", 5);
    let text = read_log();
    assert!(
        text.contains("app:***@"),
        "the URL is logged masked:\n{text}"
    );
    // Span fields: the run's on the lease line, the chunk's (and the run's
    // around it) on the snapshot worker's.
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let line = |message: &str| {
        lines
            .iter()
            .find(|l| {
                l["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with(message))
            })
            .unwrap_or_else(|| panic!("no line '{message}':\n{text}"))
    };
    let lease = line("holding the lease");
    assert_eq!(lease["span"]["name"], "run", "{lease}");
    assert_eq!(lease["span"]["slot"], "cdc", "{lease}");
    let instance = lease["span"]["instance"].as_str().unwrap_or_default();
    assert!(
        instance.starts_with("cdc:") && instance.ends_with(&format!(":{}", child.id())),
        "{lease}"
    );
    // The log reader's task runs in the run's span too.
    let streaming = line("streaming");
    assert_eq!(streaming["span"]["name"], "run", "{streaming}");
    assert_eq!(streaming["span"]["slot"], "cdc", "{streaming}");
    let chunk = line("chunk select");
    assert_eq!(chunk["span"]["name"], "snapshot", "{chunk}");
    assert_eq!(chunk["span"]["table"], "public.t", "{chunk}");
    assert_eq!(chunk["spans"][0]["name"], "run", "{chunk}");
    assert_eq!(chunk["spans"][0]["slot"], "cdc", "{chunk}");

    // A wrong password: the failure is a JSON line too, without it; JSON
    // chosen by the config this time.
    let wrong = url.replace("s3cret-pass", "Wr0ng-Passw0rd");
    let config = write_config(dir.path(), &wrong, &["public.t"], "");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[observe]\nlog_format = \"json\"\n");
    std::fs::write(&config, text).unwrap();
    let out = Command::new(cdc_bin())
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    check_json_log(&text, "Wr0ng-Passw0rd", 1);
    assert!(text.contains("password authentication failed"), "{text}");
}

/// A password given as a URL's query parameter or in a key/value conninfo
/// is masked too, in both log formats: here in the error of a URL that
/// does not parse, which quotes it.
#[test]
fn passwords_in_a_query_or_a_conninfo_are_masked_in_both_formats() {
    let dir = tempfile::tempdir().unwrap();
    for url in [
        "postgresql://app@127.0.0.1:notaport/db?sslmode=disable&password=Hunter2-Secret",
        "host=127.0.0.1 port=notaport user=app password=Hunter2-Secret dbname=db",
    ] {
        for format in ["text", "json"] {
            let config = write_config(dir.path(), url, &["public.t"], "");
            let out = Command::new(cdc_bin())
                .args(["run", "--log-format", format, "--config"])
                .arg(&config)
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stderr).into_owned();
            assert_eq!(out.status.code(), Some(2), "{text}");
            assert!(text.contains("source.url"), "{format}, {url}: {text}");
            assert!(!text.contains("Hunter2"), "{format}, {url}: {text}");
            assert!(text.contains("password=***"), "{format}, {url}: {text}");
            if format == "json" {
                check_json_log(&text, "Hunter2", 1);
            }
        }
    }
}

/// A bad or taken `observe.listen` stops `cdc run` at once, saying so.
#[test]
fn a_bad_or_taken_listen_address_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    for (listen, says) in [
        ("localhost-ish", "observe.listen must be host:port"),
        (&*format!("127.0.0.1:{port}"), "cannot listen on"),
    ] {
        let config = write_config(
            dir.path(),
            "postgresql://x@127.0.0.1:1/x",
            &["public.t"],
            &format!("\n[observe]\nlisten = {listen:?}\n"),
        );
        let out = Command::new(cdc_bin())
            .args(["run", "--log-format", "text", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}");
        assert!(text.contains(says), "{listen}: {text}");
    }
}

fn check_json_log(text: &str, password: &str, min_lines: usize) {
    assert!(!text.contains(password), "{text}");
    assert!(text.lines().count() >= min_lines, "{text}");
    for line in text.lines() {
        let object: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not one JSON object ({e}): {line}"));
        for field in ["timestamp", "level", "target", "message"] {
            assert!(object.get(field).is_some(), "no {field}: {line}");
        }
    }
}
