//! Workload `parallel`: two tables snapshotted one after the other
//! (`max_parallel_tables = 1`) and at once (`= 2`), against `COPY` of both
//! in the same run: total rows/s, ratio, and cdc's CPU per million rows.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{cell, median, wait_for, Bench, Run, DEFAULT_CHUNK};

const TABLES: [&str; 2] = ["bench_a", "bench_b"];

impl Bench {
    fn load_parallel_tables(&self, per_table: usize) {
        for table in TABLES {
            self.psql(&format!("DROP TABLE IF EXISTS {table}"));
            self.psql(&format!(
                "CREATE TABLE {table} (id bigint PRIMARY KEY, a int, b text, ts timestamptz, n numeric(12,2), j jsonb)"
            ));
            let mut from = 1;
            while from <= per_table {
                let to = (from + 99_999).min(per_table);
                self.psql(&format!(
                    "INSERT INTO {table} SELECT g, g % 1000, repeat(md5(g::text), 4), \
                     '2024-01-01'::timestamptz + g * interval '1 second', (g % 100000) / 100.0, \
                     jsonb_build_object('k', g, 's', 'abcdefgh') FROM generate_series({from}, {to}) g"
                ));
                from = to + 1;
            }
            self.psql(&format!("VACUUM ANALYZE {table}"));
        }
        self.psql("CHECKPOINT");
        self.psql(
            "CREATE SCHEMA IF NOT EXISTS cdc; \
             CREATE TABLE IF NOT EXISTS cdc.signal (id text PRIMARY KEY, type text NOT NULL, data jsonb); \
             DROP PUBLICATION IF EXISTS cdc; \
             CREATE PUBLICATION cdc FOR TABLE bench_a, bench_b, cdc.signal",
        );
    }

    /// `copy_script` counts `self.rows`: both tables hold that many.
    fn copy_both(&self) -> Run {
        self.copy_script(
            "COPY (SELECT * FROM bench_a) TO STDOUT; COPY (SELECT * FROM bench_b) TO STDOUT;",
        )
    }

    /// Both tables snapshotted by one signal, `lanes` at a time; timed from
    /// the signal to the second "snapshot complete".
    fn snapshot_both(&self, lanes: usize) -> Run {
        let slot = format!("par_{lanes}");
        let path = self.dir.path().join(format!("{slot}.toml"));
        std::fs::write(
            &path,
            format!(
                "[source]\ntype = \"postgres\"\nurl = \"{}\"\ntables = [\"public.bench_a\", \"public.bench_b\"]\n\
                 slot = \"{slot}\"\npublication = \"cdc\"\nstatus_interval_secs = 1\n\n[sink]\ntype = \"null\"\n\n\
                 [pipeline]\nflush_interval_ms = 100\n\n[snapshot]\nchunk_size = {DEFAULT_CHUNK}\n\
                 max_parallel_tables = {lanes}\n",
                self.pg.url()
            ),
        )
        .unwrap();
        let log = path.with_extension("log");
        let mut child = self.start_cdc(&path);
        wait_for(&log, "streaming", Duration::from_secs(60));
        let start = Instant::now();
        self.psql(&format!(
            "INSERT INTO cdc.signal VALUES ('par-{lanes}-{}', 'execute-snapshot', \
             '{{\"data-collections\": [\"public.bench_a\", \"public.bench_b\"]}}')",
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let (cpu, _) = Self::sample_until_logged(&mut child, &log, "snapshot complete", 2);
        let secs = start.elapsed().as_secs_f64();
        Self::stop(&mut child);
        self.drop_cdc_slot(&slot);
        Run {
            rows_per_s: self.rows as f64 / secs,
            secs,
            cpu,
            walsender_cpu: None,
            rss_mb: None,
        }
    }

    /// The workload; `repeat` runs of each reader, interleaved, medians.
    pub(crate) fn parallel(&mut self, repeat: usize) {
        let total = self.rows;
        self.load_parallel_tables(total / 2);
        self.rows = 2 * (total / 2);
        self.copy_both();
        let (mut copies, mut one, mut two) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..repeat.max(1) {
            copies.push(self.copy_both());
            one.push(self.snapshot_both(1));
            two.push(self.snapshot_both(2));
        }
        let copy = median(copies);
        println!(
            "\n## two tables of {} rows each: one after the other, and at once (chunk {DEFAULT_CHUNK}, median of {})",
            total / 2,
            repeat.max(1)
        );
        println!("| reader | rows/s | seconds | ratio | cdc CPU s per 1M rows |");
        println!("|---|---:|---:|---:|---:|");
        println!(
            "| COPY of both tables (limit) | {:.0} | {:.2} | 1.00 | - |",
            copy.rows_per_s, copy.secs
        );
        for (label, runs) in [
            ("cdc, max_parallel_tables = 1", one),
            ("cdc, max_parallel_tables = 2", two),
        ] {
            let run = median(runs);
            let per_million = run.cpu.map(|c| c * 1e6 / self.rows as f64);
            println!(
                "| {label} | {:.0} | {:.2} | {:.2} | {} |",
                run.rows_per_s,
                run.secs,
                run.rows_per_s / copy.rows_per_s,
                cell(per_million, 2)
            );
        }
        for table in TABLES {
            self.psql(&format!("DROP TABLE IF EXISTS {table}"));
        }
        // Each workload creates its table and publication itself.
        self.rows = total;
    }
}
