//! Workload `debezium`: the real Debezium 3.6.3 PostgreSQL connector,
//! embedded (`tests/debezium/DebeziumRunner.java`, each record a JSON line
//! on its stdout), and cdc's file sink draining the same WAL from slots of
//! their own. Needs `CDC_DEBEZIUM_CLASSPATH` (`ensure_debezium` in
//! scripts/lib.sh sets it); without it the workload says it is skipped.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{cell, cpu_seconds, light_writer, peak_rss_mb, Bench, Run, DEFAULT_CHUNK, TABLE_DDL};

/// Counts snapshot records (`"op":"r"`) in a growing file, reading only
/// what was added since the last look.
struct ReadCounter {
    offset: u64,
    count: usize,
    /// The end of the last read, which may cut a marker in two.
    tail: Vec<u8>,
}

impl ReadCounter {
    const MARK: &'static [u8] = br#""op":"r""#;

    fn new() -> Self {
        ReadCounter {
            offset: 0,
            count: 0,
            tail: Vec::new(),
        }
    }

    fn update(&mut self, path: &Path) -> usize {
        use std::io::{Read, Seek, SeekFrom};
        let Ok(mut file) = std::fs::File::open(path) else {
            return self.count;
        };
        let mut added = Vec::new();
        if file.seek(SeekFrom::Start(self.offset)).is_err() || file.read_to_end(&mut added).is_err()
        {
            return self.count;
        }
        self.offset += added.len() as u64;
        let mut window = std::mem::take(&mut self.tail);
        window.extend_from_slice(&added);
        self.count += window
            .windows(Self::MARK.len())
            .filter(|w| *w == Self::MARK)
            .count();
        let keep = window.len().min(Self::MARK.len() - 1);
        self.tail = window[window.len() - keep..].to_vec();
        self.count
    }
}

/// Newlines in `path` so far.
fn lines(path: &Path) -> usize {
    std::fs::read(path)
        .map(|b| b.iter().filter(|&&c| c == b'\n').count())
        .unwrap_or(0)
}

/// A results table, each reader's rate as a ratio to `debezium`'s.
fn against_debezium(debezium: &Run, readers: &[(&str, &Run)]) {
    println!("| reader | rows/s | seconds | ratio to Debezium | CPU s | peak RSS MB |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, r) in readers {
        println!(
            "| {name} | {:.0} | {:.2} | {:.2} | {} | {} |",
            r.rows_per_s,
            r.secs,
            r.rows_per_s / debezium.rows_per_s,
            cell(r.cpu, 2),
            cell(r.rss_mb, 0),
        );
    }
}

impl Bench {
    pub(crate) fn debezium(&self) {
        let Ok(classpath) = std::env::var("CDC_DEBEZIUM_CLASSPATH") else {
            println!(
                "\n## Debezium: skipped (no CDC_DEBEZIUM_CLASSPATH: run `. scripts/lib.sh; ensure_debezium` first)"
            );
            return;
        };
        self.psql("DROP TABLE IF EXISTS bench");
        self.psql(TABLE_DDL);
        self.prepare_cdc_objects();
        const SLOTS: [&str; 4] = ["dbz", "cdc_vs_dbz", "dbz_schemas", "cdc_schemas"];
        for slot in SLOTS {
            self.drop_cdc_slot(slot);
            self.create_slot(slot);
        }
        self.load_rows(10_000);
        let endpos = self.lsn();
        let events = self.dir.path().join("cdc_vs_dbz.jsonl");
        let cdc = self.cdc_drain(
            "cdc_vs_dbz",
            &format!("type = \"file\"\npath = {:?}", events.display().to_string()),
            &endpos,
            false,
            "",
        );
        assert!(
            lines(&events) >= self.rows,
            "cdc wrote {} events",
            lines(&events)
        );
        let _ = std::fs::remove_file(&events);
        let debezium = self.debezium_drain(&classpath, "dbz", false);
        println!(
            "\n## Debezium 3.6.3 (embedded, default configuration, JSON to a file) vs cdc (file sink): {} rows in transactions of 10000",
            self.rows
        );
        against_debezium(&debezium, &[("Debezium", &debezium), ("cdc", &cdc)]);
        if let (Some(ours), Some(theirs)) = (cdc.cpu, debezium.cpu) {
            println!(
                "CPU per row: Debezium/cdc {:.1}; peak RSS: Debezium/cdc {}",
                theirs / ours,
                match (debezium.rss_mb, cdc.rss_mb) {
                    (Some(a), Some(b)) => format!("{:.1}", a / b),
                    _ => "–".into(),
                }
            );
        }
        // What most Connect users run: Debezium's defaults and
        // JsonConverter's schemas, each record carrying its Connect schema.
        let cdc = self.cdc_drain(
            "cdc_schemas",
            &format!("type = \"file\"\npath = {:?}", events.display().to_string()),
            &endpos,
            false,
            "\n[format]\npreset = \"debezium\"\n",
        );
        assert!(
            lines(&events) >= self.rows,
            "cdc wrote {} events",
            lines(&events)
        );
        let _ = std::fs::remove_file(&events);
        let debezium = self.debezium_drain(&classpath, "dbz_schemas", true);
        println!(
            "\n## with Connect schemas: Debezium 3.6.3's defaults and JsonConverter's schemas.enable=true vs cdc `format = \"debezium\"`: {} rows",
            self.rows
        );
        against_debezium(&debezium, &[("Debezium", &debezium), ("cdc", &cdc)]);
        for slot in SLOTS {
            self.drop_cdc_slot(slot);
        }
        self.debezium_snapshot(&classpath);
    }

    /// An incremental snapshot of the same table by each, in its default
    /// chunk size (Debezium's 1024, cdc's 16384), a light writer streaming:
    /// timed from the signal to the last snapshot row in the file.
    fn debezium_snapshot(&self, classpath: &str) {
        self.settle();
        self.psql(
            "CREATE TABLE IF NOT EXISTS dbz_signal (id varchar(42) PRIMARY KEY, type varchar(32) NOT NULL, data varchar(2048));
             DROP PUBLICATION IF EXISTS dbz_pub;
             CREATE PUBLICATION dbz_pub FOR TABLE bench, dbz_signal;",
        );
        let writer_stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let stop = writer_stop.clone();
            let url = self.pg.url();
            let bindir = self.pg.bindir().to_path_buf();
            std::thread::spawn(move || light_writer(&bindir, &url, &stop))
        };
        // Debezium in its default chunk size, then in cdc's.
        let debezium_in = |chunk: usize| {
            let slot = format!("dbz_snap_{chunk}");
            self.drop_cdc_slot(&slot);
            self.create_slot(&slot);
            let run = self.debezium_run(
                classpath,
                &[
                    &format!("slot.name={slot}"),
                    "publication.name=dbz_pub",
                    "table.include.list=public.bench,public.dbz_signal",
                    "signal.data.collection=public.dbz_signal",
                    &format!("incremental.snapshot.chunk.size={chunk}"),
                ],
                Some(&format!(
                    "INSERT INTO dbz_signal VALUES ('bench-{chunk}', 'execute-snapshot', '{{\"data-collections\": [\"public.bench\"], \"type\": \"incremental\"}}')"
                )),
            );
            self.drop_cdc_slot(&slot);
            run
        };
        let debezium = debezium_in(1024);
        let debezium_big = debezium_in(DEFAULT_CHUNK);
        let events = self.dir.path().join("cdc_snap_vs_dbz.jsonl");
        let cdc = self.cdc_snapshot_into(
            DEFAULT_CHUNK,
            self.rows,
            &format!("type = \"file\"\npath = {:?}", events.display().to_string()),
        );
        let _ = std::fs::remove_file(&events);
        writer_stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = writer.join();
        println!(
            "\n## incremental snapshot of the same {} rows, a light writer streaming, to a file",
            self.rows
        );
        against_debezium(
            &debezium,
            &[
                ("Debezium, chunk 1024 (its default)", &debezium),
                ("Debezium, chunk 16384", &debezium_big),
                ("cdc, chunk 16384 (its default)", &cdc),
            ],
        );
    }

    /// Debezium drains `slot` on publication `cdc`, with Connect schemas
    /// or without.
    fn debezium_drain(&self, classpath: &str, slot: &str, schemas: bool) -> Run {
        self.debezium_run(
            classpath,
            &[
                &format!("slot.name={slot}"),
                "publication.name=cdc",
                "table.include.list=public.bench",
                &format!("runner.schemas.enable={schemas}"),
            ],
            None,
        )
    }

    /// Debezium with `extra` properties: timed from its slot turning active
    /// (the JVM's start is not counted), or from `signal` when given, to
    /// its last record in the file (its last snapshot row with a signal).
    fn debezium_run(&self, classpath: &str, extra: &[&str], signal: Option<&str>) -> Run {
        let out = self.dir.path().join("debezium.jsonl");
        let log4j = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/debezium/log4j2.properties");
        let mut props = vec![
            "name=bench".to_string(),
            "topic.prefix=dbz".into(),
            format!("database.hostname={}", self.pg.host()),
            format!("database.port={}", self.pg.port()),
            format!("database.user={}", self.pg.superuser()),
            "database.password=".into(),
            format!("database.dbname={}", self.pg.database()),
            "plugin.name=pgoutput".into(),
            "publication.autocreate.mode=disabled".into(),
            "snapshot.mode=no_data".into(),
            "runner.schemas.enable=false".into(),
            // Buffered, as cdc's file sink is: no write per record.
            "runner.flush.interval.ms=100".into(),
        ];
        props.extend(extra.iter().map(|p| p.to_string()));
        let slot = extra
            .iter()
            .find_map(|p| p.strip_prefix("slot.name="))
            .unwrap_or("dbz");
        let mut child = Command::new("java")
            .arg(format!("-Dlog4j2.configurationFile={}", log4j.display()))
            .arg("-Dcdc.debezium.log.level=WARN")
            .args(["-cp", classpath, "DebeziumRunner"])
            .args(props)
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.psql(&format!(
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{slot}' AND active"
        )) != "1"
        {
            assert!(
                Instant::now() < deadline,
                "Debezium never started streaming"
            );
            assert!(child.try_wait().unwrap().is_none(), "Debezium exited");
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Some(signal) = signal {
            // Streaming is up a moment after the slot is taken.
            std::thread::sleep(Duration::from_secs(2));
            self.psql(signal);
        }
        let start = Instant::now();
        let cpu_at_start = cpu_seconds(child.id());
        let (mut cpu, mut rss) = (None, None);
        let mut reads = ReadCounter::new();
        let (mut last_count, mut last_growth) = (0, start);
        loop {
            let count = match signal {
                Some(_) => reads.update(&out),
                None => lines(&out),
            };
            if count > last_count {
                (last_count, last_growth) = (count, Instant::now());
            }
            if count >= self.rows {
                break;
            }
            // Rows the writer touches inside a window come as its updates,
            // not as snapshot rows (DBLog's rule, Debezium's too): the
            // snapshot is over when its rows stop coming, nearly all there.
            if signal.is_some()
                && count * 100 >= self.rows * 99
                && last_growth.elapsed() > Duration::from_secs(3)
            {
                break;
            }
            assert!(child.try_wait().unwrap().is_none(), "Debezium exited");
            assert!(
                start.elapsed() < Duration::from_secs(1800),
                "Debezium never finished"
            );
            cpu = cpu_seconds(child.id()).or(cpu);
            rss = peak_rss_mb(child.id()).or(rss);
            std::thread::sleep(Duration::from_millis(50));
        }
        let secs = last_growth.duration_since(start).as_secs_f64();
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_file(&out);
        Run {
            rows_per_s: self.rows as f64 / secs,
            secs,
            // The work's CPU, without the JVM's start.
            cpu: cpu.zip(cpu_at_start).map(|(end, start)| end - start),
            walsender_cpu: None,
            rss_mb: rss,
        }
    }
}
