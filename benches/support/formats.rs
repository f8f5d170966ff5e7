//! Workload `binary`: pgoutput's text and binary formats on the same WAL.

use super::{cell, Bench, Run, TABLE_DDL};

/// `a / b` to two places, or `–` when either was not measured.
fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "–".into(),
    }
}

impl Bench {
    /// pgoutput's text and binary formats on the same WAL (100 × 10k-row
    /// transactions): walsender CPU per 1M rows, and cdc against
    /// pg_recvlogical asking for the same format. Each reader runs once
    /// per format; pg_recvlogical first and last, the faster pass counts.
    pub(crate) fn formats(&self) {
        self.psql("DROP TABLE IF EXISTS bench");
        self.psql(TABLE_DDL);
        self.prepare_cdc_objects();
        let slots = [
            "recv_text",
            "recv_bin",
            "cdc_text",
            "cdc_bin",
            "recv_text2",
            "recv_bin2",
        ];
        for slot in slots {
            self.drop_cdc_slot(slot);
            self.create_slot(slot);
        }
        self.load_rows(10_000);
        let endpos = self.lsn();
        let binary = ["binary=true"];
        let recv_text = self.recvlogical_with("recv_text", &endpos, &[]);
        let recv_bin = self.recvlogical_with("recv_bin", &endpos, &binary);
        let null = "type = \"null\"";
        let cdc_text = self.cdc_drain("cdc_text", null, &endpos, false, "binary = \"off\"");
        let cdc_bin = self.cdc_drain("cdc_bin", null, &endpos, false, "binary = \"auto\"");
        // The figure only counts if cdc did stream binary.
        let log = std::fs::read_to_string(self.dir.path().join("cdc_bin.log")).unwrap_or_default();
        assert!(
            log.contains("log values come in pgoutput's binary format"),
            "cdc did not stream binary: {log}"
        );
        let recv_text2 = self.recvlogical_with("recv_text2", &endpos, &[]);
        let recv_bin2 = self.recvlogical_with("recv_bin2", &endpos, &binary);
        let faster = |a: Run, b: Run| if a.rows_per_s >= b.rows_per_s { a } else { b };
        let recv_text = faster(recv_text, recv_text2);
        let recv_bin = faster(recv_bin, recv_bin2);
        println!(
            "\n## pgoutput text vs binary: {} rows in transactions of 10000, null sink",
            self.rows
        );
        println!(
            "| reader | format | rows/s | ratio to pg_recvlogical, same format | walsender CPU s per 1M rows | cdc CPU s | cdc peak RSS MB |"
        );
        println!("|---|---|---:|---:|---:|---:|---:|");
        let per_m = |cpu: Option<f64>| cpu.map(|c| c * 1e6 / self.rows as f64);
        let row = |name: &str, format: &str, r: &Run, limit: &Run| {
            println!(
                "| {name} | {format} | {:.0} | {:.2} | {} | {} | {} |",
                r.rows_per_s,
                r.rows_per_s / limit.rows_per_s,
                cell(per_m(r.walsender_cpu), 2),
                cell(r.cpu, 2),
                cell(r.rss_mb, 0),
            )
        };
        row(
            "pg_recvlogical (faster pass)",
            "text",
            &recv_text,
            &recv_text,
        );
        row(
            "pg_recvlogical (faster pass)",
            "binary",
            &recv_bin,
            &recv_bin,
        );
        row("cdc", "text", &cdc_text, &recv_text);
        row("cdc", "binary", &cdc_bin, &recv_bin);
        println!(
            "binary/text: walsender CPU {} (pg_recvlogical) {} (cdc); cdc binary vs pg_recvlogical text: {:.2}",
            ratio(recv_bin.walsender_cpu, recv_text.walsender_cpu),
            ratio(cdc_bin.walsender_cpu, cdc_text.walsender_cpu),
            cdc_bin.rows_per_s / recv_text.rows_per_s,
        );
        for slot in slots {
            self.drop_cdc_slot(slot);
        }
    }
}
