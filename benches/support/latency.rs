//! Workload `latency`: commit (`source.ts_ms`) to the line landing in the
//! sink file, at fixed change rates.

use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{paced_writer, peak_rss_mb, percentile, wait_for, Bench, DEFAULT_CHUNK, TABLE_DDL};

impl Bench {
    /// Commit-to-sink latency at a fixed change rate.
    pub(crate) fn latency(&self, rate: usize, secs: u64) {
        self.psql("DROP TABLE IF EXISTS bench");
        self.psql(TABLE_DDL);
        self.prepare_cdc_objects();
        let slot = format!("lat_{rate}");
        let events = self.dir.path().join(format!("{slot}.jsonl"));
        let config = self.config(
            &slot,
            &format!("type = \"file\"\npath = {:?}", events.display().to_string()),
            DEFAULT_CHUNK,
        );
        let log = config.with_extension("log");
        let mut child = self.start_cdc(&config);
        wait_for(&log, "streaming", Duration::from_secs(60));
        // 100 transactions a second, rate/100 rows each.
        let per_tx = (rate / 100).max(1);
        let url = self.pg.url();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let stop = stop.clone();
            std::thread::spawn(move || paced_writer(&url, per_tx, secs, &stop))
        };
        let mut latencies = Vec::new();
        let mut file = loop {
            if let Ok(f) = std::fs::File::open(&events) {
                break f;
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        let mut offset = 0u64;
        let mut pending = String::new();
        let deadline = Instant::now() + Duration::from_secs(secs + 10);
        let mut rss = None;
        while Instant::now() < deadline
            && !(writer.is_finished() && latencies.len() >= per_tx * 100 * secs as usize)
        {
            file.seek(SeekFrom::Start(offset)).unwrap();
            let mut reader = BufReader::new(&file);
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap() > 0 {
                offset += line.len() as u64;
                pending.push_str(&line);
                if pending.ends_with('\n') {
                    let now_ms = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .unwrap()
                        .as_secs_f64()
                        * 1000.0;
                    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&pending) {
                        // source.ts_ms is the transaction's commit time.
                        if let Some(ts) = v["source"]["ts_ms"].as_f64() {
                            latencies.push(now_ms - ts);
                        }
                    }
                    pending.clear();
                }
                line.clear();
            }
            rss = peak_rss_mb(child.id()).or(rss);
            std::thread::sleep(Duration::from_micros(500));
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let achieved = writer.join().unwrap();
        Self::stop(&mut child);
        self.drop_cdc_slot(&slot);
        latencies.sort_by(|a, b| a.total_cmp(b));
        let pct = |p: f64| percentile(&latencies, p);
        println!(
            "| {rate} | {:.0} | {} | {:.1} | {:.1} | {:.1} | {:.0} |",
            achieved,
            latencies.len(),
            pct(0.50),
            pct(0.99),
            latencies.last().copied().unwrap_or(f64::NAN),
            rss.unwrap_or(0.0)
        );
    }
}
