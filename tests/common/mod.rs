//! Shared helpers of the integration tests: run the real `cdc` binary against
//! a real PostgreSQL from `cdc-testcontainers`, and read what it wrote.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use cdc_testcontainers::Postgres;
use serde_json::Value;

pub fn cdc_bin() -> &'static str {
    env!("CARGO_BIN_EXE_cdc")
}

/// `cdc <args> --config <config>`, run to its end.
pub fn cdc_output(args: &[&str], config: &Path) -> std::process::Output {
    Command::new(cdc_bin())
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap()
}

/// `cdc <args> --config <config>`, which must succeed (its stderr shown
/// when not): its stdout.
pub fn cdc_ok(args: &[&str], config: &Path) -> String {
    let out = cdc_output(args, config);
    assert!(
        out.status.success(),
        "cdc {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Write a config for `cdc` into `dir` and return its path.
pub fn write_config(dir: &Path, url: &str, tables: &[&str], extra: &str) -> PathBuf {
    let tables = tables
        .iter()
        .map(|t| format!("{t:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    let events = dir.join("events.jsonl");
    let text = format!(
        "[source]\ntype = \"postgres\"\nurl = {url:?}\ntables = [{tables}]\nstatus_interval_secs = 1\n{extra}\n\
         [sink]\ntype = \"file\"\npath = {:?}\n\n[pipeline]\nflush_interval_ms = 50\n",
        events.display().to_string()
    );
    let path = dir.join("cdc.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A running `cdc run`.
pub struct Engine {
    child: Option<Child>,
    pub log: PathBuf,
}

impl Engine {
    pub fn start(config: &Path) -> Engine {
        Engine::spawn(config, Stdio::null())
    }

    /// [`Engine::start`] with stdout a pipe that the caller reads (or not),
    /// for the stdout sink.
    pub fn start_piped(config: &Path) -> (Engine, std::process::ChildStdout) {
        let mut engine = Engine::spawn(config, Stdio::piped());
        let stdout = engine.child.as_mut().unwrap().stdout.take().unwrap();
        (engine, stdout)
    }

    fn spawn(config: &Path, stdout: Stdio) -> Engine {
        let log = config.with_file_name(format!(
            "cdc-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let stderr = std::fs::File::create(&log).unwrap();
        let child = Command::new(cdc_bin())
            .args(["run", "--config"])
            .arg(config)
            .env(
                "CDC_LOG",
                std::env::var("TEST_CDC_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap();
        Engine {
            child: Some(child),
            log,
        }
    }

    pub fn log_text(&self) -> String {
        // Lossy: a server message may carry bytes of another encoding.
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("engine running");
        let pid = child.id() as i32;
        // SAFETY-free: libc::kill is a plain syscall wrapper.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("cdc did not stop within 30s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait for the engine to exit by itself (panics after `timeout`).
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let child = self.child.as_mut().expect("engine running");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return status;
            }
            if Instant::now() > deadline {
                panic!("cdc did not exit within {timeout:?}:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The process id, for signals other than SIGTERM.
    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("engine running").id() as i32
    }

    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => c.try_wait().unwrap().is_none(),
            None => false,
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- cdc log ----\n{}", self.log_text());
        }
        self.kill();
    }
}

/// Every event in the JSON-lines file (a torn last line is ignored).
pub fn read_events(path: &Path) -> Vec<Value> {
    let mut text = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        f.read_to_string(&mut text).unwrap();
    }
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The whole lines of a file another process is writing (a torn last
/// line left out).
pub fn read_lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    complete.lines().map(str::to_string).collect()
}

/// Poll until `check` holds, or panic after `timeout` naming `what`.
pub fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        if Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Events for one table, in file order.
pub fn table_events<'a>(events: &'a [Value], table: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["source"]["table"] == table)
        .collect()
}

/// Start a cluster and create `ddl`.
pub fn postgres_with(ddl: &str) -> Postgres {
    let pg = Postgres::start().unwrap();
    pg.psql(ddl).unwrap();
    pg
}

/// Wait until the engine has written at least `n` events.
pub fn wait_for_events(path: &Path, n: usize, engine: &mut Engine) -> Vec<Value> {
    let mut events = Vec::new();
    wait_until(&format!("{n} events"), Duration::from_secs(60), || {
        assert!(engine.is_running(), "cdc exited:\n{}", engine.log_text());
        events = read_events(path);
        events.len() >= n
    });
    events
}

/// Wait until the log says the engine streams (slot and publication exist).
pub fn wait_streaming(engine: &mut Engine) {
    wait_until("cdc to start streaming", Duration::from_secs(60), || {
        assert!(engine.is_running(), "cdc exited:\n{}", engine.log_text());
        engine.log_text().contains("streaming")
    });
}

/// A PostgreSQL with `ddl` and a config capturing `tables` (plus `extra`
/// TOML): (server, dir, config path, events path). Bind the dir to a name
/// (`_dir`) so it lives as long as the test.
pub fn prepare(
    ddl: &str,
    tables: &[&str],
    extra: &str,
) -> (Postgres, tempfile::TempDir, PathBuf, PathBuf) {
    let pg = postgres_with(ddl);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &pg.url(), tables, extra);
    let events = dir.path().join("events.jsonl");
    (pg, dir, config, events)
}

/// [`prepare`], then `cdc run` streaming.
pub fn capture(
    ddl: &str,
    tables: &[&str],
    extra: &str,
) -> (Postgres, tempfile::TempDir, PathBuf, PathBuf, Engine) {
    let (pg, dir, config, events) = prepare(ddl, tables, extra);
    let mut engine = Engine::start(&config);
    wait_streaming(&mut engine);
    (pg, dir, config, events, engine)
}

/// Per key, states in order (`None`: deleted).
pub type States<K> = std::collections::HashMap<K, Vec<Option<i64>>>;

/// At-least-once with per-key order: every key's committed history appears,
/// in order, within what was emitted (duplicates allowed), and nothing was
/// emitted that was never committed.
pub fn assert_history_kept<K: std::fmt::Debug + Eq + std::hash::Hash>(
    committed: &States<K>,
    emitted: &States<K>,
) {
    for (key, history) in committed {
        let out = emitted.get(key).cloned().unwrap_or_default();
        let mut rest = out.iter();
        assert!(
            history.iter().all(|state| rest.any(|o| o == state)),
            "{key:?}: committed history {history:?} is not contained in order in the output {out:?}"
        );
        assert!(
            out.iter().all(|s| history.contains(s)),
            "{key:?}: emitted a state that was never committed: {out:?}"
        );
    }
}

/// Run `f` with a SQL client on `url`, on a runtime of its own: writers run
/// in plain threads beside the engine.
pub fn with_client<T>(url: &str, f: impl AsyncFnOnce(tokio_postgres::Client) -> T) -> T {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        f(client).await
    })
}

/// A thread running `statement(n)` for n = 1, 2, … with `pause` between,
/// beside the engine, until [`LiveWriter::stop`]. A statement that fails
/// fails the test.
pub struct LiveWriter {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl LiveWriter {
    pub fn start(
        url: &str,
        pause: Duration,
        mut statement: impl FnMut(u64) -> String + Send + 'static,
    ) -> LiveWriter {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (url, stopped) = (url.to_string(), stop.clone());
        let thread = std::thread::spawn(move || {
            with_client(&url, async |client| {
                let mut n: u64 = 0;
                while !stopped.load(std::sync::atomic::Ordering::SeqCst) {
                    n += 1;
                    client.batch_execute(&statement(n)).await.unwrap();
                    tokio::time::sleep(pause).await;
                }
                n
            })
        });
        LiveWriter { stop, thread }
    }

    /// Stops it after its statement in flight; how many it ran.
    pub fn stop(self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.thread.join().unwrap()
    }
}

/// Fold events by key (last wins, `d` deletes, `t` clears): the table as the
/// consumer sees it. Keys are the key JSON text.
pub fn fold(events: &[Value], table: &str, key_cols: &[&str]) -> BTreeMap<String, Value> {
    let mut state = BTreeMap::new();
    for e in events.iter().filter(|e| e["source"]["table"] == table) {
        let row = if e["op"] == "d" {
            &e["before"]
        } else {
            &e["after"]
        };
        match e["op"].as_str().unwrap() {
            "t" => state.clear(),
            "d" => {
                state.remove(&key_of(row, key_cols));
            }
            _ => {
                state.insert(key_of(row, key_cols), row.clone());
            }
        }
    }
    state
}

pub fn key_of(row: &Value, key_cols: &[&str]) -> String {
    key_cols
        .iter()
        .map(|c| row[c].to_string())
        .collect::<Vec<_>>()
        .join("|")
}

/// The table's contents as JSON rows, through the same JSON shapes.
pub fn contents(pg: &Postgres, table: &str, key_cols: &[&str]) -> BTreeMap<String, Value> {
    let json = pg
        .psql(&format!(
            "SELECT coalesce(json_agg(t), '[]') FROM {table} t"
        ))
        .unwrap();
    let rows: Vec<Value> = serde_json::from_str(&json).unwrap();
    rows.into_iter()
        .map(|r| (key_of(&r, key_cols), r))
        .collect()
}

pub fn signal(pg: &Postgres, id: &str, kind: &str, data: &str) {
    pg.psql(&format!(
        "INSERT INTO cdc.signal VALUES ('{id}', '{kind}', '{data}')"
    ))
    .unwrap();
}

/// A copy of `config` whose file sink is `/dev/full` instead of `events`:
/// every write fails with ENOSPC.
pub fn full_sink_config(config: &Path, events: &Path) -> PathBuf {
    let full = config.with_file_name("full.toml");
    let text = std::fs::read_to_string(config).unwrap();
    std::fs::write(
        &full,
        text.replace(
            &format!("{:?}", events.display().to_string()),
            "\"/dev/full\"",
        ),
    )
    .unwrap();
    full
}

/// A plain HTTP/1.1 GET: (status, body).
pub fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, body.to_owned())
}

/// The address the observe server bound, from its log line.
pub fn observe_addr(engine: &mut Engine) -> std::net::SocketAddr {
    let mut addr = None;
    wait_until("the observe server", Duration::from_secs(60), || {
        assert!(engine.is_running(), "cdc exited:\n{}", engine.log_text());
        addr = engine.log_text().lines().find_map(|line| {
            let rest = line.split("observe server listening on ").nth(1)?;
            rest.split_whitespace()
                .next()?
                .trim_end_matches(':')
                .parse()
                .ok()
        });
        addr.is_some()
    });
    addr.unwrap()
}

/// Wait until folding the output gives exactly `table` (named
/// `schema.table` or `table`), and return the events read then. The sink
/// writes behind the engine's log lines, so a log line is no proof that the
/// file holds every event before it.
pub fn wait_for_fold(
    pg: &Postgres,
    events: &Path,
    table: &str,
    key_cols: &[&str],
    engine: &mut Engine,
) -> Vec<Value> {
    // The events name the table without its schema.
    let name = table.rsplit('.').next().unwrap_or(table);
    let expected = contents(pg, table, key_cols);
    let mut last = BTreeMap::new();
    for _ in 0..2400 {
        assert!(engine.is_running(), "cdc exited:\n{}", engine.log_text());
        let read = read_events(events);
        last = fold(&read, name, key_cols);
        if last == expected {
            return read;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the fold of {table} never matched the table:\nexpected {expected:?}\ngot {last:?}");
}

/// A consumer of the resync markers: fold `table` (`schema.table`) by
/// `key`, and at the table's `end` marker delete the keys it did not see
/// since its `begin`.
pub fn fold_with_sweep(events: &[Value], table: &str, key: &str) -> BTreeMap<String, Value> {
    use base64::Engine as _;
    let name = table.rsplit('.').next().unwrap_or(table);
    let mut state = BTreeMap::new();
    let mut seen: Option<std::collections::BTreeSet<String>> = None;
    for e in events {
        if e["op"] == "m" && e["message"]["prefix"] == "cdc.resync" {
            let content = base64::engine::general_purpose::STANDARD
                .decode(e["message"]["content"].as_str().unwrap())
                .unwrap();
            let marker: Value = serde_json::from_slice(&content).unwrap();
            if marker["table"] != table {
                continue;
            }
            match marker["phase"].as_str().unwrap() {
                "begin" => seen = Some(Default::default()),
                _ => {
                    if let Some(seen) = seen.take() {
                        state.retain(|k: &String, _| seen.contains(k));
                    }
                }
            }
            continue;
        }
        if e["source"]["table"] != name {
            continue;
        }
        let row = if e["op"] == "d" {
            &e["before"]
        } else {
            &e["after"]
        };
        let k = row[key].to_string();
        if let Some(seen) = seen.as_mut() {
            seen.insert(k.clone());
        }
        if e["op"] == "d" {
            state.remove(&k);
        } else {
            state.insert(k, row.clone());
        }
    }
    state
}

/// For writers that only ever increment `v` and never insert a key again
/// after deleting it: per table and `id`, what a consumer sees never goes
/// back (a smaller `v`, or a row after its delete). Duplicates are allowed.
pub fn assert_no_time_travel<'a>(events: impl IntoIterator<Item = &'a Value>) {
    let mut seen: std::collections::HashMap<(String, i64), Option<i64>> = Default::default();
    for e in events {
        let table = e["source"]["table"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let deleted = e["op"] == "d";
        let row = if deleted { &e["before"] } else { &e["after"] };
        let id = row["id"].as_i64().unwrap();
        let now = if deleted { None } else { row["v"].as_i64() };
        match (seen.get(&(table.clone(), id)), now) {
            (Some(None), Some(_)) => panic!("{table} id {id} came back after its delete: {e}"),
            (Some(Some(before)), Some(now)) if now < *before => {
                panic!("{table} id {id} went back from v={before} to v={now}: {e}")
            }
            _ => {}
        }
        seen.insert((table, id), now);
    }
}

/// Role `app` (password `pw`) owns schema `cdc` and its signal table but not
/// publication `cdc`, which holds `public.a` and the signal table: cdc run as
/// `app` cannot add a table to it. `grants`: the tables `app` may read.
pub fn role_without_the_publication(grants: &str) -> String {
    format!(
        "CREATE ROLE app LOGIN REPLICATION PASSWORD 'pw';
         GRANT SELECT ON {grants} TO app;
         DO $$ BEGIN EXECUTE format('GRANT CREATE ON DATABASE %I TO app', current_database()); END $$;
         CREATE SCHEMA cdc AUTHORIZATION app;
         SET ROLE app;
         CREATE TABLE cdc.signal (id text PRIMARY KEY, type text NOT NULL, data jsonb);
         RESET ROLE;
         CREATE PUBLICATION cdc FOR TABLE a, cdc.signal WITH (publish_via_partition_root = true);"
    )
}

/// Wait until the running engine has logged that it captured `table`, which
/// it left out when it started.
pub fn wait_captured_later(engine: &mut Engine, table: &str) {
    let line = format!("captured table {table}, new to this run");
    wait_until(&line, Duration::from_secs(60), || {
        assert!(engine.is_running(), "{}", engine.log_text());
        engine.log_text().contains(&line)
    });
}
