//! The bench's background writers.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// About 100 single-row updates a second, until told to stop.
pub fn light_writer(bindir: &Path, url: &str, stop: &std::sync::atomic::AtomicBool) {
    let mut child = Command::new(bindir.join("psql"))
        .args(["-X", "-q", url])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut i = 0u64;
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        use std::io::Write;
        i += 1;
        let _ = writeln!(
            stdin,
            "UPDATE bench SET a = a + 1 WHERE id = {};",
            1 + (i * 7919) % 1000
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(stdin);
    let _ = child.wait();
}

/// 100 transactions a second of `per_tx` rows, for `secs`; returns the
/// achieved changes per second.
pub fn paced_writer(
    url: &str,
    per_tx: usize,
    secs: u64,
    stop: &std::sync::atomic::AtomicBool,
) -> f64 {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        let start = Instant::now();
        let mut next = start;
        let mut id = 0usize;
        let mut changes = 0usize;
        while start.elapsed() < Duration::from_secs(secs)
            && !stop.load(std::sync::atomic::Ordering::SeqCst)
        {
            client
                .batch_execute(&super::insert_sql(id + 1, id + per_tx))
                .await
                .unwrap();
            id += per_tx;
            changes += per_tx;
            next += Duration::from_millis(10);
            if let Some(wait) = next.checked_duration_since(Instant::now()) {
                tokio::time::sleep(wait).await;
            }
        }
        changes as f64 / start.elapsed().as_secs_f64()
    })
}
