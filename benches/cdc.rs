//! `cargo bench --bench cdc`: cdc against the physical limits, measured side
//! by side in one run on a PostgreSQL the benchmark starts itself.
//!
//! - streaming drain: `pg_recvlogical` (pgoutput, same options) vs cdc
//!   draining a slot filled by 100 transactions of 10k rows, each sink with
//!   the observe server off and on (scraped every 100 ms meanwhile);
//! - one large transaction of the same size (pgoutput v1 on both sides);
//! - streamed: one large transaction with pgoutput v1 and with v2
//!   `streaming 'on'`, cdc against pg_recvlogical asking for the same, and
//!   the server's spill and stream bytes per slot;
//! - pgoutput text vs binary (`source.binary`): walsender CPU per 1M rows
//!   and cdc against pg_recvlogical asking for the same format;
//! - snapshot: `COPY (SELECT …) TO STDOUT` vs cdc incremental snapshots at
//!   several chunk sizes while a light writer streams;
//! - latency: commit (`source.ts_ms`) to the line landing in the sink file,
//!   at fixed change rates;
//! - memory: peak RSS of cdc per workload, and the snapshot at two sizes;
//! - parallel: two tables snapshotted one after the other and at once;
//! - kafka: a sustained writer into the Kafka sink (tansu), commit to a
//!   consumer's receipt, at 10k and 50k changes/s;
//! - debezium: the real Debezium 3.6.3 connector, embedded, against cdc's
//!   file sink on the same WAL (needs `CDC_DEBEZIUM_CLASSPATH`).
//!
//! Environment: `CDC_BENCH_ROWS` (default 1000000), `CDC_BENCH_STREAMING_MB`
//! (cdc's `streaming_memory_mb` in `streamed`, default 64), `CDC_BENCH_BIG_ROWS`
//! (second snapshot size for the memory check, default 3 × rows, 0 to
//! skip), `CDC_BENCH_LATENCY_SECS` (default 30), `CDC_BENCH_CHUNKS`
//! (default "1000,8192,16384,50000"), `CDC_BENCH_ONLY` (comma list of
//! stream,binary,bigtx,streamed,snapshot,unanalyzed,latency,memory,parallel,kafka,debezium),
//! `CDC_BENCH_KAFKA_SECS` (per rate, default 60), `CDC_BENCH_LOG` (cdc's log filter,
//! default "info"; when set, the run's configs and logs are kept in /tmp),
//! `CDC_BENCH_REPEAT` (snapshot runs per reader, median reported, default 5).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cdc_testcontainers::Postgres;

#[path = "support/debezium.rs"]
mod debezium;
#[path = "support/formats.rs"]
mod formats;
#[path = "support/kafka.rs"]
mod kafka;
#[path = "support/latency.rs"]
mod latency;
#[path = "support/parallel.rs"]
mod parallel;
#[path = "support/scraper.rs"]
mod scraper;
#[path = "support/streamed.rs"]
mod streamed;
#[path = "support/writers.rs"]
mod writers;
use scraper::Scraper;
use writers::{light_writer, paced_writer};

/// cdc's default `snapshot.chunk_size`.
const DEFAULT_CHUNK: usize = 16_384;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn clk_tck() -> f64 {
    100.0
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / clk_tck())
}

fn peak_rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// The `p` quantile of `sorted` (ascending); NaN when it is empty.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or(f64::NAN)
}

/// A table cell: the figure with `decimals` places, or `-` when not measured.
fn cell(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.decimals$}"))
}

const TABLE_DDL: &str = "CREATE TABLE IF NOT EXISTS bench (id bigint PRIMARY KEY, a int, b text, \
     ts timestamptz, n numeric(12,2), j jsonb)";

/// ~240 bytes per row in text form.
fn insert_sql(from: usize, to: usize) -> String {
    format!(
        "INSERT INTO bench SELECT g, g % 1000, repeat(md5(g::text), 4), \
         '2024-01-01'::timestamptz + g * interval '1 second', (g % 100000) / 100.0, \
         jsonb_build_object('k', g, 's', 'abcdefgh') FROM generate_series({from}, {to}) g"
    )
}

struct Bench {
    pg: Postgres,
    dir: tempfile::TempDir,
    rows: usize,
}

struct Run {
    rows_per_s: f64,
    secs: f64,
    cpu: Option<f64>,
    walsender_cpu: Option<f64>,
    rss_mb: Option<f64>,
}

impl Bench {
    fn psql(&self, sql: &str) -> String {
        self.pg.psql(sql).unwrap()
    }

    fn lsn(&self) -> String {
        self.psql("SELECT pg_current_wal_lsn()")
    }

    fn config(&self, name: &str, sink: &str, chunk: usize) -> PathBuf {
        self.config_with(name, sink, chunk, "")
    }

    /// [`Bench::config`] with more `[source]` lines.
    fn config_with(&self, name: &str, sink: &str, chunk: usize, source: &str) -> PathBuf {
        let path = self.dir.path().join(format!("{name}.toml"));
        let text = format!(
            "[source]\ntype = \"postgres\"\nurl = \"{}\"\ntables = [\"public.bench\"]\nslot = \"{name}\"\n\
             publication = \"cdc\"\nstatus_interval_secs = 1\n{source}\n\n[sink]\n{sink}\n\n[pipeline]\nflush_interval_ms = 100\n\n\
             [snapshot]\nchunk_size = {chunk}\n",
            self.pg.url()
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    fn start_cdc(&self, config: &Path) -> Child {
        let log = std::fs::File::create(config.with_extension("log")).unwrap();
        Command::new(env!("CARGO_BIN_EXE_cdc"))
            .args(["run", "--config"])
            .arg(config)
            .env(
                "CDC_LOG",
                std::env::var("CDC_BENCH_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    /// Wait until cdc's `log` holds `text` `count` times, sampling cdc's
    /// CPU seconds and peak RSS meanwhile.
    fn sample_until_logged(
        child: &mut Child,
        log: &Path,
        text: &str,
        count: usize,
    ) -> (Option<f64>, Option<f64>) {
        let (mut cpu, mut rss) = (None, None);
        while std::fs::read_to_string(log)
            .unwrap_or_default()
            .matches(text)
            .count()
            < count
        {
            cpu = cpu_seconds(child.id()).or(cpu);
            rss = peak_rss_mb(child.id()).or(rss);
            assert!(
                child.try_wait().unwrap().is_none(),
                "cdc exited; see {}",
                log.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        (cpu, rss)
    }

    fn stop(child: &mut Child) {
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let _ = child.wait();
    }

    fn walsender_pid(&self, application: &str) -> Option<u32> {
        self.pg
            .psql(&format!(
                "SELECT pid FROM pg_stat_replication WHERE application_name = '{application}' LIMIT 1"
            ))
            .ok()?
            .parse()
            .ok()
    }

    /// Drop a slot cdc used, and cdc's record of it: a run that starts
    /// again on the same slot name is a new pipeline, not a lost slot.
    fn drop_cdc_slot(&self, slot: &str) {
        self.psql(&format!(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '{slot}';
             DO $$ BEGIN IF to_regclass('cdc.positions') IS NOT NULL THEN
               DELETE FROM cdc.positions WHERE slot = '{slot}'; END IF; END $$"
        ));
    }

    fn create_slot(&self, name: &str) {
        self.psql(&format!(
            "SELECT pg_create_logical_replication_slot('{name}', 'pgoutput')"
        ));
    }

    /// libpq options reaching the benchmark's server as the superuser.
    fn connection_args(&self) -> [String; 8] {
        [
            "-h".into(),
            self.pg.host().into(),
            "-p".into(),
            self.pg.port().to_string(),
            "-U".into(),
            self.pg.superuser().into(),
            "-d".into(),
            self.pg.database().into(),
        ]
    }

    /// pg_recvlogical drains `slot` up to `endpos`.
    fn recvlogical(&self, slot: &str, endpos: &str) -> Run {
        self.recvlogical_with(slot, endpos, &[])
    }

    /// [`Bench::recvlogical`] with more pgoutput options (`-o` values).
    fn recvlogical_with(&self, slot: &str, endpos: &str, options: &[&str]) -> Run {
        let start = Instant::now();
        let mut child = Command::new(self.pg.bindir().join("pg_recvlogical"))
            .args(self.connection_args())
            .args(["--slot", slot, "--start", "--no-loop"])
            .args(["--endpos", endpos, "-f", "/dev/null"])
            .args(
                (!options.iter().any(|o| o.starts_with("proto_version=")))
                    .then_some(["-o", "proto_version=1"])
                    .into_iter()
                    .flatten(),
            )
            .args(["-o", "publication_names=cdc", "-o", "messages=true"])
            .args(options.iter().flat_map(|o| ["-o", o]))
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut walsender = None;
        let mut walsender_cpu = None;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "pg_recvlogical failed");
                break;
            }
            walsender = walsender.or_else(|| self.walsender_pid("pg_recvlogical"));
            if let Some(pid) = walsender {
                walsender_cpu = cpu_seconds(pid).or(walsender_cpu);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let secs = start.elapsed().as_secs_f64();
        Run {
            rows_per_s: self.rows as f64 / secs,
            secs,
            cpu: None,
            walsender_cpu,
            rss_mb: None,
        }
    }

    /// cdc drains `slot` until the slot's confirmed position reaches `endpos`.
    /// `observe`: with the observe server on, scraped every 100 ms (far more
    /// often than Prometheus would) while it drains. `source`: more
    /// `[source]` lines.
    fn cdc_drain(&self, slot: &str, sink: &str, endpos: &str, observe: bool, source: &str) -> Run {
        let config = self.config_with(slot, sink, DEFAULT_CHUNK, source);
        let scraper = observe.then(|| {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut text = std::fs::read_to_string(&config).unwrap();
            text.push_str(&format!("\n[observe]\nlisten = \"127.0.0.1:{port}\"\n"));
            std::fs::write(&config, text).unwrap();
            Scraper::start(port)
        });
        let start = Instant::now();
        let mut child = self.start_cdc(&config);
        let mut walsender = None;
        let (mut cpu, mut rss, mut walsender_cpu) = (None, None, None);
        loop {
            let done = self.psql(&format!(
                "SELECT confirmed_flush_lsn >= '{endpos}' FROM pg_replication_slots WHERE slot_name = '{slot}'"
            ));
            cpu = cpu_seconds(child.id()).or(cpu);
            rss = peak_rss_mb(child.id()).or(rss);
            walsender = walsender.or_else(|| self.walsender_pid("cdc"));
            if let Some(pid) = walsender {
                walsender_cpu = cpu_seconds(pid).or(walsender_cpu);
            }
            if done == "t" {
                break;
            }
            assert!(
                child.try_wait().unwrap().is_none(),
                "cdc exited; see {}",
                config.with_extension("log").display()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let secs = start.elapsed().as_secs_f64();
        if let Some(scraper) = scraper {
            let scrapes = scraper.stop();
            assert!(scrapes > 0, "the observe server was never scraped");
        }
        Self::stop(&mut child);
        Run {
            rows_per_s: self.rows as f64 / secs,
            secs,
            cpu,
            walsender_cpu,
            rss_mb: rss,
        }
    }

    fn load_rows(&self, per_tx: usize) {
        let mut from = 1;
        while from <= self.rows {
            let to = (from + per_tx - 1).min(self.rows);
            self.psql(&insert_sql(from, to));
            from = to + 1;
        }
    }

    /// Workloads 1 and 2: slots first, then the writes, then the drains.
    fn drain(&self, label: &str, per_tx: usize) {
        self.psql("DROP TABLE IF EXISTS bench");
        self.psql(TABLE_DDL);
        self.prepare_cdc_objects();
        let slots = [
            "recv",
            "cdc_null",
            "cdc_null_obs",
            "cdc_file",
            "cdc_file_obs",
            "recv2",
        ];
        for slot in slots {
            self.psql(&format!(
                "SELECT pg_drop_replication_slot('{slot}') FROM pg_replication_slots WHERE slot_name = '{slot}'"
            ));
            self.create_slot(slot);
        }
        self.load_rows(per_tx);
        let endpos = self.lsn();
        // pg_recvlogical runs first and last: the first reader of fresh WAL
        // pays for warming caches, so the limit is the faster of the two.
        let recv_first = self.recvlogical("recv", &endpos);
        // pg_recvlogical asks for protocol version 1: so does cdc (the
        // `streamed` workload compares version 2).
        let v1 = "streaming = \"off\"";
        let null = self.cdc_drain("cdc_null", "type = \"null\"", &endpos, false, v1);
        let null_observed = self.cdc_drain("cdc_null_obs", "type = \"null\"", &endpos, true, v1);
        let file_sink = |observe: bool| {
            let events = self.dir.path().join(format!("{label}-{observe}.jsonl"));
            let slot = if observe { "cdc_file_obs" } else { "cdc_file" };
            let run = self.cdc_drain(
                slot,
                &format!("type = \"file\"\npath = {:?}", events.display().to_string()),
                &endpos,
                observe,
                v1,
            );
            // The figure only counts if every row arrived.
            let lines = std::fs::read(&events)
                .map(|b| b.iter().filter(|&&c| c == b'\n').count())
                .unwrap_or(0);
            assert!(
                lines >= self.rows,
                "file sink holds {lines} events, expected {}",
                self.rows
            );
            let _ = std::fs::remove_file(&events);
            run
        };
        let file = file_sink(false);
        let file_observed = file_sink(true);
        let recv_last = self.recvlogical("recv2", &endpos);
        let recv = if recv_first.rows_per_s >= recv_last.rows_per_s {
            &recv_first
        } else {
            &recv_last
        };
        println!(
            "\n## {label}: {} rows in transactions of {per_tx}",
            self.rows
        );
        println!(
            "| reader | rows/s | seconds | ratio | cdc CPU s | walsender CPU s | cdc peak RSS MB |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|");
        let row = |name: &str, r: &Run| {
            println!(
                "| {name} | {:.0} | {:.2} | {:.2} | {} | {} | {} |",
                r.rows_per_s,
                r.secs,
                r.rows_per_s / recv.rows_per_s,
                cell(r.cpu, 2),
                cell(r.walsender_cpu, 2),
                cell(r.rss_mb, 0),
            )
        };
        row("pg_recvlogical, first pass", &recv_first);
        row("pg_recvlogical, last pass", &recv_last);
        row("cdc → null sink", &null);
        row("cdc → null sink, observe on", &null_observed);
        row("cdc → file sink", &file);
        row("cdc → file sink, observe on", &file_observed);
        println!(
            "observe on/off: null sink {:.2}, file sink {:.2} (rows/s ratio; scraped every 100 ms)",
            null_observed.rows_per_s / null.rows_per_s,
            file_observed.rows_per_s / file.rows_per_s
        );
        for slot in slots {
            self.drop_cdc_slot(slot);
        }
    }

    /// The publication and signal table cdc would create, made before the
    /// slots so every slot can decode with them.
    fn prepare_cdc_objects(&self) {
        self.psql(
            "CREATE SCHEMA IF NOT EXISTS cdc;
             CREATE TABLE IF NOT EXISTS cdc.signal (id text PRIMARY KEY, type text NOT NULL, data jsonb);
             DROP PUBLICATION IF EXISTS cdc;
             CREATE PUBLICATION cdc FOR TABLE bench, cdc.signal;",
        );
    }

    fn copy_limit(&self) -> Run {
        self.copy_script("COPY (SELECT * FROM bench) TO STDOUT;")
    }

    /// The limit of reading in primary-key chunks: the server running the
    /// very chunk queries cdc sends (key and jsonb as text, the rest in
    /// binary, ORDER BY key, LIMIT), one after the other, with no watermarks
    /// and nothing done with the rows.
    fn chunked_copy_limit(&self, chunk: usize) -> Run {
        let columns = "src.id::text, src.a, src.b, src.ts, src.n, src.j::text";
        let script: String = (0..self.rows.div_ceil(chunk))
            .map(|i| {
                format!(
                    "COPY (SELECT {columns} FROM bench AS src WHERE (src.id) > ({}::text::int8) \
                     ORDER BY src.id LIMIT {chunk}) TO STDOUT (FORMAT binary);\n",
                    i * chunk
                )
            })
            .collect();
        self.copy_script(&script)
    }

    fn copy_script(&self, script: &str) -> Run {
        let path = self.dir.path().join("copy.sql");
        std::fs::write(&path, script).unwrap();
        let start = Instant::now();
        let status = Command::new(self.pg.bindir().join("psql"))
            .args(["-X", "-q"])
            .args(self.connection_args())
            .arg("-f")
            .arg(&path)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        let secs = start.elapsed().as_secs_f64();
        Run {
            rows_per_s: self.rows as f64 / secs,
            secs,
            cpu: None,
            walsender_cpu: None,
            rss_mb: None,
        }
    }

    /// An incremental snapshot of the whole table while a light writer
    /// streams; timed from the signal to "snapshot complete".
    fn cdc_snapshot(&self, chunk: usize, rows: usize) -> Run {
        self.cdc_snapshot_into(chunk, rows, "type = \"null\"")
    }

    /// [`Bench::cdc_snapshot`] into the sink given as TOML.
    fn cdc_snapshot_into(&self, chunk: usize, rows: usize, sink: &str) -> Run {
        let slot = format!("snap_{chunk}");
        let config = self.config(&slot, sink, chunk);
        let log = config.with_extension("log");
        let mut child = self.start_cdc(&config);
        wait_for(&log, "streaming", Duration::from_secs(60));
        let writer_stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let stop = writer_stop.clone();
            let url = self.pg.url();
            let bindir = self.pg.bindir().to_path_buf();
            std::thread::spawn(move || light_writer(&bindir, &url, &stop))
        };
        let start = Instant::now();
        self.psql(&format!(
            "INSERT INTO cdc.signal VALUES ('bench-{chunk}-{}', 'execute-snapshot', '{{\"data-collections\": [\"public.bench\"]}}')",
            SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos()
        ));
        let (cpu, rss) = Self::sample_until_logged(&mut child, &log, "snapshot complete", 1);
        let secs = start.elapsed().as_secs_f64();
        writer_stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = writer.join();
        Self::stop(&mut child);
        self.drop_cdc_slot(&slot);
        Run {
            rows_per_s: rows as f64 / secs,
            secs,
            cpu,
            walsender_cpu: None,
            rss_mb: rss,
        }
    }

    /// After a load: vacuumed (visibility map set, as autovacuum would soon
    /// do in the middle of a measurement) and checkpointed (the load's dirty
    /// pages written now, not while a reader runs).
    fn settle(&self) {
        self.psql("VACUUM ANALYZE bench");
        self.psql("CHECKPOINT");
    }

    /// Each reader runs `repeat` times, interleaved, and the median counts:
    /// on a small shared VM single runs vary by ±15%.
    fn snapshot(&self, chunks: &[usize], repeat: usize) {
        self.psql("DROP TABLE IF EXISTS bench");
        self.psql(TABLE_DDL);
        self.prepare_cdc_objects();
        self.load_rows(100_000);
        self.settle();
        // Warm the cache the same way for both readers.
        self.copy_limit();
        let mut copies = Vec::new();
        let mut chunked = Vec::new();
        let mut runs: Vec<Vec<Run>> = chunks.iter().map(|_| Vec::new()).collect();
        for _ in 0..repeat.max(1) {
            copies.push(self.copy_limit());
            chunked.push(self.chunked_copy_limit(DEFAULT_CHUNK));
            for (&chunk, runs) in chunks.iter().zip(runs.iter_mut()) {
                runs.push(self.cdc_snapshot(chunk, self.rows));
            }
        }
        let copy = median(copies);
        println!(
            "\n## snapshot: {} rows, light writer streaming meanwhile (median of {} runs)",
            self.rows,
            repeat.max(1)
        );
        println!(
            "| reader | rows/s | seconds | ratio | ratio range | cdc CPU s | cdc peak RSS MB |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|");
        println!(
            "| COPY (SELECT …) TO STDOUT (limit) | {:.0} | {:.2} | 1.00 | - | - | - |",
            copy.rows_per_s, copy.secs
        );
        let chunked = median(chunked);
        println!(
            "| COPY of cdc's own {DEFAULT_CHUNK}-row chunk queries, back to back (pk-order limit) | {:.0} | {:.2} | {:.2} | - | - | - |",
            chunked.rows_per_s,
            chunked.secs,
            chunked.rows_per_s / copy.rows_per_s
        );
        for (&chunk, runs) in chunks.iter().zip(runs) {
            let ratios: Vec<f64> = runs
                .iter()
                .map(|r| r.rows_per_s / copy.rows_per_s)
                .collect();
            let low = ratios.iter().copied().fold(f64::INFINITY, f64::min);
            let high = ratios.iter().copied().fold(0.0, f64::max);
            let run = median(runs);
            println!(
                "| cdc, chunk {chunk} | {:.0} | {:.2} | {:.2} | {low:.2}–{high:.2} | {} | {} |",
                run.rows_per_s,
                run.secs,
                run.rows_per_s / copy.rows_per_s,
                cell(run.cpu, 2),
                cell(run.rss_mb, 0),
            );
        }
    }

    /// Snapshots of freshly loaded tables that were never analyzed (after a
    /// bulk load, a restore, a migration; autovacuum off so it cannot step
    /// in), at two sizes: time per row must not grow with the table.
    fn unanalyzed(&mut self, sizes: [usize; 2]) {
        println!("\n## snapshot of a never-analyzed table (chunk {DEFAULT_CHUNK}), light writer streaming");
        println!("| rows | reltuples | sink | COPY rows/s | cdc rows/s | ratio | µs per row | cdc peak RSS MB |");
        println!("|---:|---:|---|---:|---:|---:|---:|---:|");
        for rows in sizes {
            self.rows = rows;
            self.psql("DROP TABLE IF EXISTS bench");
            self.psql(&format!("{TABLE_DDL} WITH (autovacuum_enabled = false)"));
            self.prepare_cdc_objects();
            self.load_rows(100_000);
            // Only the checkpoint: a VACUUM would set the statistics.
            self.psql("CHECKPOINT");
            let reltuples = self.psql("SELECT reltuples FROM pg_class WHERE relname = 'bench'");
            self.copy_limit();
            let copy = self.copy_limit();
            let file = self.dir.path().join("unanalyzed.jsonl");
            for (label, sink) in [
                ("null", "type = \"null\"".to_owned()),
                (
                    "file",
                    format!("type = \"file\"\npath = {:?}", file.display().to_string()),
                ),
            ] {
                let _ = std::fs::remove_file(&file);
                let run = self.cdc_snapshot_into(DEFAULT_CHUNK, rows, &sink);
                println!(
                    "| {rows} | {reltuples} | {label} | {:.0} | {:.0} | {:.2} | {:.2} | {} |",
                    copy.rows_per_s,
                    run.rows_per_s,
                    run.rows_per_s / copy.rows_per_s,
                    1e6 * run.secs / rows as f64,
                    cell(run.rss_mb, 0),
                );
            }
            let _ = std::fs::remove_file(&file);
        }
    }

    /// Peak RSS of a snapshot at two table sizes: it must not grow.
    fn memory(&mut self, sizes: [usize; 2], chunk: usize) {
        println!("\n## memory: snapshot peak RSS by table size (chunk {chunk})");
        println!("| rows | cdc peak RSS MB | rows/s |");
        println!("|---:|---:|---:|");
        for rows in sizes {
            self.rows = rows;
            self.psql("DROP TABLE IF EXISTS bench");
            self.psql(TABLE_DDL);
            self.prepare_cdc_objects();
            self.load_rows(100_000);
            self.settle();
            let run = self.cdc_snapshot(chunk, rows);
            println!(
                "| {rows} | {:.0} | {:.0} |",
                run.rss_mb.unwrap_or(0.0),
                run.rows_per_s
            );
        }
    }
}

/// The run with the median rows/s.
fn median(mut runs: Vec<Run>) -> Run {
    runs.sort_by(|a, b| a.rows_per_s.total_cmp(&b.rows_per_s));
    let middle = runs.len() / 2;
    runs.swap_remove(middle)
}

fn wait_for(log: &Path, text: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while !std::fs::read_to_string(log)
        .unwrap_or_default()
        .contains(text)
    {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {text:?} in {}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn main() {
    // `cargo bench` passes --bench; nothing else to parse.
    let rows = env_usize("CDC_BENCH_ROWS", 1_000_000);
    let big_rows = env_usize("CDC_BENCH_BIG_ROWS", rows * 3);
    let latency_secs = env_usize("CDC_BENCH_LATENCY_SECS", 30) as u64;
    let chunks: Vec<usize> = std::env::var("CDC_BENCH_CHUNKS")
        .unwrap_or_else(|_| "1000,8192,16384,50000".into())
        .split(',')
        .filter_map(|c| c.trim().parse().ok())
        .collect();
    let only = std::env::var("CDC_BENCH_ONLY").unwrap_or_default();
    let wanted = |name: &str| only.is_empty() || only.split(',').any(|o| o.trim() == name);

    let pg = Postgres::builder()
        .setting("shared_buffers", "1GB")
        .setting("max_wal_size", "8GB")
        .setting("wal_sender_timeout", "5min")
        .start()
        .unwrap();
    let mut bench = Bench {
        pg,
        // With CDC_BENCH_LOG set, the configs and cdc's logs are kept.
        dir: tempfile::Builder::new()
            .prefix("cdc-bench")
            .disable_cleanup(std::env::var_os("CDC_BENCH_LOG").is_some())
            .tempdir()
            .unwrap(),
        rows,
    };
    println!(
        "# cdc benchmark: {} cores, {} rows, PostgreSQL {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        rows,
        bench.psql("SHOW server_version")
    );
    if wanted("stream") {
        bench.drain("streaming drain", 10_000);
    }
    if wanted("binary") {
        bench.formats();
    }
    if wanted("bigtx") {
        bench.drain("one large transaction", rows);
    }
    if wanted("streamed") {
        bench.streamed(env_usize("CDC_BENCH_STREAMING_MB", 64));
    }
    if wanted("snapshot") {
        bench.snapshot(&chunks, env_usize("CDC_BENCH_REPEAT", 5));
    }
    if wanted("latency") {
        println!("\n## latency: commit (source.ts_ms) to the line in the sink file, {latency_secs}s per rate");
        println!(
            "| target changes/s | achieved | events | p50 ms | p99 ms | max ms | cdc peak RSS MB |"
        );
        println!("|---:|---:|---:|---:|---:|---:|---:|");
        for rate in [1_000, 10_000] {
            bench.latency(rate, latency_secs);
        }
    }
    if wanted("unanalyzed") {
        bench.unanalyzed([rows, rows * 4]);
    }
    if wanted("memory") && big_rows > 0 {
        bench.memory([rows, big_rows], DEFAULT_CHUNK);
    }
    if wanted("parallel") {
        bench.parallel(env_usize("CDC_BENCH_REPEAT", 5).min(3));
    }
    if wanted("kafka") {
        bench.kafka(env_usize("CDC_BENCH_KAFKA_SECS", 60) as u64);
    }
    if wanted("debezium") {
        bench.debezium();
    }
}
