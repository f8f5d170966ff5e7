//! Watching the server while streaming, on its own connection, off the
//! replication loop. It publishes the slot's lag, `wal_status` and
//! `safe_wal_size` through the telemetry handle, and logs each finding as
//! one line:
//! - WAL protection: when the server is close to invalidating the slot
//!   (`safe_wal_size`, under `max_slot_wal_keep_size`), how long is left at
//!   the rate WAL grew over the last minute, before it happens;
//! - the optional heartbeat (`source.heartbeat_interval_secs`);
//! - deleted state: a captured table or the signal table dropped while cdc
//!   runs (the log carries no DDL, so only the catalog tells).

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use cdc_engine::{TableRef, Telemetry};
use tokio::sync::watch;
use tokio_postgres::Client;

use crate::catalog::quote_table;
use crate::config::PostgresConfig;
use crate::connect::ConnectConfig;
use crate::decoder::HEARTBEAT_PREFIX;
use crate::late_tables::LateTables;

const SLOT_SQL: &str = "SELECT s.safe_wal_size, (pg_current_wal_lsn() - '0/0'::pg_lsn)::float8, \
     s.wal_status, (pg_current_wal_lsn() - s.confirmed_flush_lsn)::float8 \
     FROM pg_replication_slots s WHERE s.slot_name = $1";

/// A non-transactional message: it reaches the log without a transaction
/// of its own and so moves the slot even when nothing else is written.
const HEARTBEAT_SQL: &str = "SELECT pg_logical_emit_message(false, $1, '')";

/// Which of the (quoted) names no longer name a relation. `to_regclass`
/// parses each as a name, never as SQL.
const MISSING_SQL: &str = "SELECT n FROM unnest($1::text[]) AS n WHERE to_regclass(n) IS NULL";

/// The line for a table dropped while cdc runs.
pub fn dropped_line(table: &str, signal_table: &str) -> String {
    if table == signal_table {
        format!(
            "signal table {table} was dropped while cdc runs: signals and snapshots stop (the stream goes on); restart cdc to create it again"
        )
    } else {
        format!(
            "captured table {table} was dropped while cdc runs: it has no more events and cannot be snapshotted; the other tables go on (remove it from source.tables)"
        )
    }
}

/// Seconds of WAL left at `rate` bytes a second; `None` when WAL is not
/// growing.
pub fn seconds_left(safe_bytes: i64, rate: f64) -> Option<f64> {
    (rate > 0.0).then(|| safe_bytes.max(0) as f64 / rate)
}

/// WAL's growth rate over the last minute of samples: writes come in
/// bursts, and the rate between two polls alone says "not growing" for a
/// slot that a burst a second ago brought close to its end.
#[derive(Default)]
pub struct WalRate {
    samples: VecDeque<(i64, tokio::time::Instant)>,
}

impl WalRate {
    const WINDOW: Duration = Duration::from_secs(60);

    /// Record the server's WAL position at `at`; returns bytes a second
    /// over the window, `None` before two samples.
    pub fn sample(&mut self, position: i64, at: tokio::time::Instant) -> Option<f64> {
        while self
            .samples
            .front()
            .is_some_and(|(_, t)| at.duration_since(*t) > Self::WINDOW)
        {
            self.samples.pop_front();
        }
        self.samples.push_back((position, at));
        let &(first, since) = self.samples.front()?;
        let secs = at.duration_since(since).as_secs_f64();
        (secs > 0.0).then(|| (position - first).max(0) as f64 / secs)
    }
}

/// The warning line, naming the slot and the fixes. `rate`: `None` when
/// not measured yet (the first look at the slot).
pub fn warning(slot: &str, safe_bytes: i64, rate: Option<f64>) -> String {
    let left = match rate.map(|rate| (rate, seconds_left(safe_bytes, rate))) {
        Some((rate, Some(secs))) => format!(
            "about {secs:.0} s at the last minute's {:.0} bytes/s of WAL",
            rate
        ),
        Some((_, None)) => "WAL is not growing right now".to_owned(),
        None => "WAL's rate is not measured yet".to_owned(),
    };
    format!(
        "replication slot '{slot}' has {safe_bytes} bytes of WAL left before the server invalidates it \
         (max_slot_wal_keep_size), {left}: make the sink keep up, or raise max_slot_wal_keep_size"
    )
}

/// Watch the slot until `shutdown`; warns once each time `safe_wal_size`
/// falls below the threshold, again after it recovered.
pub(crate) fn spawn(
    config: &PostgresConfig,
    tables: Vec<TableRef>,
    late: LateTables,
    mut shutdown: watch::Receiver<bool>,
    telemetry: Telemetry,
) {
    let threshold = config.slot_wal_warning_bytes;
    let signal_table = config.signal_table.clone();
    let mut names: Vec<String> = tables
        .iter()
        .chain(std::iter::once(&signal_table))
        .map(quote_table)
        .collect();
    let mut gone: HashSet<String> = HashSet::new();
    let connect: ConnectConfig = config.connect.clone();
    let slot = config.slot.clone();
    let heartbeat = config.heartbeat_interval;
    let mut last_heartbeat = tokio::time::Instant::now();
    // Often enough for the heartbeat when it is set.
    let every = heartbeat.map_or(config.status_interval, |h| h.min(config.status_interval));
    tokio::spawn(async move {
        let mut client: Option<Client> = None;
        let mut wal_rate = WalRate::default();
        let mut warned = false;
        // The first look is at once: the rate is known one interval later.
        let mut first = true;
        loop {
            if !first {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = shutdown.changed() => return,
                }
            }
            first = false;
            if client.as_ref().is_none_or(Client::is_closed) {
                client = connect.connect_sql().await.ok();
            }
            let Some(c) = &client else { continue };
            if heartbeat.is_some_and(|every| last_heartbeat.elapsed() >= every) {
                last_heartbeat = tokio::time::Instant::now();
                if let Err(err) = c.execute(HEARTBEAT_SQL, &[&HEARTBEAT_PREFIX]).await {
                    tracing::debug!("heartbeat not written: {err}");
                }
            }
            // Tables captured since start (created later, by a pattern).
            for table in late.tables() {
                let name = quote_table(&table);
                if !names.contains(&name) {
                    names.push(name);
                }
            }
            if let Ok(rows) = c.query(MISSING_SQL, &[&names]).await {
                for name in rows.iter().filter_map(|r| r.try_get::<_, String>(0).ok()) {
                    if gone.insert(name.clone()) {
                        tracing::warn!("{}", dropped_line(&name, &quote_table(&signal_table)));
                    }
                }
            }
            let Ok(Some(row)) = c.query_opt(SLOT_SQL, &[&slot]).await else {
                continue;
            };
            let wal_status = row.try_get::<_, Option<String>>(2).ok().flatten();
            let lag = row
                .try_get::<_, Option<f64>>(3)
                .ok()
                .flatten()
                .map(|l| l as i64);
            let safe_now = row.try_get::<_, Option<i64>>(0).ok().flatten();
            telemetry.slot(lag, wal_status.as_deref(), safe_now);
            let Some(threshold) = threshold else { continue };
            let (Ok(safe), Ok(Some(position))) = (
                row.try_get::<_, Option<i64>>(0),
                row.try_get::<_, Option<f64>>(1)
                    .map(|p| p.map(|p| p as i64)),
            ) else {
                continue;
            };
            let rate = wal_rate.sample(position, tokio::time::Instant::now());
            match safe {
                Some(safe) if safe < threshold => {
                    if !warned {
                        warned = true;
                        tracing::warn!("{}", warning(&slot, safe, rate));
                    }
                }
                _ => warned = false,
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_left_at_the_current_rate() {
        assert_eq!(seconds_left(1000, 10.0), Some(100.0));
        assert_eq!(seconds_left(-5, 10.0), Some(0.0));
        assert_eq!(seconds_left(1000, 0.0), None);
        let line = warning("cdc", 64, Some(2.0));
        assert!(line.contains("slot 'cdc' has 64 bytes") && line.contains("about 32 s"));
        assert!(!line.contains('\n'));
    }

    #[test]
    fn the_rate_spans_the_last_minute_not_the_last_poll() {
        let start = tokio::time::Instant::now();
        let mut rate = WalRate::default();
        assert_eq!(rate.sample(0, start), None);
        // A burst, then a quiet poll: the burst still counts.
        assert_eq!(
            rate.sample(1000, start + Duration::from_secs(10)),
            Some(100.0)
        );
        assert_eq!(
            rate.sample(1000, start + Duration::from_secs(20)),
            Some(50.0)
        );
        // Past the window the burst's samples drop out.
        assert_eq!(
            rate.sample(1000, start + Duration::from_secs(75)),
            Some(0.0)
        );
        assert_eq!(
            rate.sample(1600, start + Duration::from_secs(81)),
            Some(100.0)
        );
        assert!(warning("cdc", 64, None).contains("not measured yet"));
        assert!(warning("cdc", 64, Some(0.0)).contains("not growing"));
    }
}
