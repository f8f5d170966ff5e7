//! Workload `streamed`: one large transaction, drained with pgoutput
//! version 1 (the server spills it and sends it after its commit) and with
//! version 2 and `streaming 'on'` (the server sends it as it decodes it).

use super::{cell, Bench, Run, TABLE_DDL};

/// The slot's `spill_bytes` and `stream_bytes`, in MB.
fn slot_stats(bench: &Bench, slot: &str) -> (f64, f64) {
    let text = bench.psql(&format!(
        "SELECT spill_bytes || ' ' || stream_bytes FROM pg_stat_replication_slots WHERE slot_name = '{slot}'"
    ));
    let mut parts = text
        .split_whitespace()
        .map(|p| p.parse::<f64>().unwrap_or(0.0) / 1e6);
    (parts.next().unwrap_or(0.0), parts.next().unwrap_or(0.0))
}

impl Bench {
    /// One transaction of `rows` rows, past the server's default
    /// `logical_decoding_work_mem` (64 MB). Each reader drains its own slot;
    /// cdc is compared with pg_recvlogical asking for the same protocol.
    pub(crate) fn streamed(&self, budget_mb: usize) {
        self.psql("DROP TABLE IF EXISTS bench");
        self.psql(TABLE_DDL);
        self.prepare_cdc_objects();
        let slots = ["recv_v1", "recv_v2", "cdc_v1", "cdc_v2"];
        for slot in slots {
            self.drop_cdc_slot(slot);
            self.create_slot(slot);
        }
        self.load_rows(self.rows);
        let endpos = self.lsn();
        let v2 = ["proto_version=2", "streaming=on"];
        let recv_v1 = self.recvlogical_with("recv_v1", &endpos, &[]);
        let recv_v2 = self.recvlogical_with("recv_v2", &endpos, &v2);
        let file = |slot: &str| {
            let path = self.dir.path().join(format!("{slot}.jsonl"));
            format!("type = \"file\"\npath = {:?}", path.display().to_string())
        };
        let cdc_v1 = self.cdc_drain(
            "cdc_v1",
            &file("cdc_v1"),
            &endpos,
            false,
            "streaming = \"off\"",
        );
        let cdc_v2 = self.cdc_drain(
            "cdc_v2",
            &file("cdc_v2"),
            &endpos,
            false,
            &format!("streaming = \"auto\"\nstreaming_memory_mb = {budget_mb}"),
        );
        for slot in ["cdc_v1", "cdc_v2"] {
            let path = self.dir.path().join(format!("{slot}.jsonl"));
            let lines = std::fs::read(&path)
                .map(|b| b.iter().filter(|&&c| c == b'\n').count())
                .unwrap_or(0);
            assert!(
                lines >= self.rows,
                "{slot}: {lines} events, expected {}",
                self.rows
            );
            let _ = std::fs::remove_file(&path);
        }
        let log = std::fs::read_to_string(self.dir.path().join("cdc_v2.log")).unwrap_or_default();
        let spilled = log.lines().find_map(|l| {
            l.split(" went ")
                .nth(1)?
                .split(" MiB past")
                .next()?
                .parse::<f64>()
                .ok()
        });
        println!(
            "\n## one transaction of {} rows: pgoutput v1 vs v2 streaming (logical_decoding_work_mem 64 MB), file sink",
            self.rows
        );
        println!(
            "| reader | protocol | rows/s | ratio to pg_recvlogical, same protocol | server spill MB | server stream MB | cdc CPU s | cdc peak RSS MB |"
        );
        println!("|---|---|---:|---:|---:|---:|---:|---:|");
        let row = |name: &str, protocol: &str, slot: &str, r: &Run, limit: &Run| {
            let (spill, stream) = slot_stats(self, slot);
            println!(
                "| {name} | {protocol} | {:.0} | {:.2} | {spill:.0} | {stream:.0} | {} | {} |",
                r.rows_per_s,
                r.rows_per_s / limit.rows_per_s,
                cell(r.cpu, 2),
                cell(r.rss_mb, 0),
            )
        };
        row("pg_recvlogical", "v1", "recv_v1", &recv_v1, &recv_v1);
        row(
            "pg_recvlogical",
            "v2 streaming",
            "recv_v2",
            &recv_v2,
            &recv_v2,
        );
        row("cdc", "v1", "cdc_v1", &cdc_v1, &recv_v1);
        row("cdc", "v2 streaming", "cdc_v2", &cdc_v2, &recv_v2);
        println!(
            "cdc v2/v1: {:.2} (rows/s); cdc held {budget_mb} MiB in memory and read back {} MiB from its spill file",
            cdc_v2.rows_per_s / cdc_v1.rows_per_s,
            spilled.map_or("no".into(), |mb| format!("{mb:.0}")),
        );
        for slot in slots {
            self.drop_cdc_slot(slot);
        }
    }
}
