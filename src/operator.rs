//! The operator's commands: snapshot control (the same signal rows an
//! operator would INSERT) and status.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use cdc_engine::scheduler::TableProgress;
use cdc_engine::TableRef;
use cdc_signal::{new_signal_id, AdditionalCondition, Command};

use crate::config::{Config, SourceConfig};
use crate::run::postgres_config;

#[derive(Debug, Clone, Copy)]
pub enum SnapshotAction {
    Pause,
    Resume,
    Stop,
}

/// What an `execute-snapshot` from the CLI asks for besides its tables.
#[derive(Debug, Default, Clone, Copy)]
pub struct Execute<'a> {
    pub filter: Option<&'a str>,
    pub surrogate_key: Option<&'a str>,
}

pub async fn snapshot(
    path: &Path,
    action: Option<SnapshotAction>,
    tables: &[String],
    execute: Execute<'_>,
) -> Result<ExitCode> {
    let config = Config::load(path)?;
    let tables = tables
        .iter()
        .map(|t| TableRef::parse(t).with_context(|| format!("table '{t}'")))
        .collect::<Result<Vec<_>>>()?;
    let command = match action {
        None => {
            let conditions = execute
                .filter
                .map(|f| {
                    tables
                        .iter()
                        .map(|t| AdditionalCondition {
                            table: t.clone(),
                            filter: f.to_string(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            Command::execute_snapshot(tables, conditions)?
                .with_surrogate_key(execute.surrogate_key.map(str::to_owned))?
        }
        Some(SnapshotAction::Stop) => Command::stop_snapshot(tables)?,
        Some(SnapshotAction::Pause) => Command::PauseSnapshot,
        Some(SnapshotAction::Resume) => Command::ResumeSnapshot,
    };
    let row = command.to_row(new_signal_id());
    let written_to = match &config.source {
        SourceConfig::Mongodb(mongo) => crate::run_mongodb::send_signal(mongo, &row)
            .await
            .context("sending the signal")?,
        SourceConfig::Postgres(_) => {
            let pg = postgres_config(&config)?;
            cdc_postgres::operator::send_signal(&pg, &row)
                .await
                .context("sending the signal")?;
            pg.signal_table.to_string()
        }
    };
    println!("signal {} ({}) written to {written_to}", row.id, row.kind);
    Ok(ExitCode::SUCCESS)
}

fn bar(done: u64, total: u64) -> String {
    const WIDTH: usize = 30;
    let filled = if total == 0 {
        0
    } else {
        ((done.min(total) as f64 / total as f64) * WIDTH as f64) as usize
    };
    format!("[{}{}]", "#".repeat(filled), "-".repeat(WIDTH - filled))
}

fn describe(progress: &TableProgress, state: &str, tty: bool) -> String {
    let estimate = progress.estimate.unwrap_or(0);
    let mut line = format!(
        "{:<32} {:<9} {} / ~{} rows",
        progress.table.to_string(),
        state,
        progress.rows_emitted,
        estimate
    );
    if tty && state != "queued" {
        line.push(' ');
        line.push_str(&bar(
            progress.rows_emitted,
            estimate.max(progress.rows_emitted),
        ));
    }
    if let Some(filter) = &progress.filter {
        line.push_str(&format!("  filter: {filter}"));
    }
    line
}

pub async fn status(path: &Path) -> Result<ExitCode> {
    let config = Config::load(path)?;
    if let SourceConfig::Mongodb(mongo) = &config.source {
        let state = crate::run_mongodb::status(mongo).await.context("status")?;
        print_snapshots(&config, state);
        return Ok(ExitCode::SUCCESS);
    }
    let pg = postgres_config(&config)?;
    let status = cdc_postgres::operator::status(&pg)
        .await
        .context("status")?;
    match &status.slot {
        Some(slot) => println!(
            "slot {}: {}, replication lag {} bytes (confirmed {}), wal_status {}, safe_wal_size {}",
            pg.slot,
            if slot.active { "active" } else { "inactive" },
            slot.lag_bytes,
            slot.confirmed_flush.as_deref().unwrap_or("-"),
            slot.wal_status.as_deref().unwrap_or("-"),
            slot.safe_wal_size
                .map(|b| format!("{b} bytes"))
                .unwrap_or_else(|| "unlimited".into())
        ),
        None => println!("slot {}: does not exist (cdc has not run yet)", pg.slot),
    }
    println!(
        "last slot loss: {}",
        status.last_loss.as_deref().unwrap_or("none")
    );
    println!(
        "active instance: {}",
        status
            .active
            .as_deref()
            .unwrap_or("none (no cdc run holds the lease of this slot)")
    );
    print_snapshots(&config, status.snapshot);
    Ok(ExitCode::SUCCESS)
}

fn print_snapshots(config: &Config, snapshot: Option<cdc_engine::scheduler::SnapshotState>) {
    let tty = std::io::stdout().is_terminal();
    match snapshot {
        None => println!("snapshots: none"),
        Some(state) => {
            if state.queue.is_empty() && state.completed.is_empty() {
                println!("snapshots: none");
            }
            // The first `max_parallel_tables` of the queue run at once.
            let lanes = config.snapshot.max_parallel_tables.max(1);
            for (i, progress) in state.queue.iter().enumerate() {
                let label = match (i < lanes, state.paused) {
                    (true, true) => "paused",
                    (true, false) => "running",
                    (false, _) => "queued",
                };
                println!("{}", describe(progress, label, tty));
            }
            for progress in state.completed.iter().rev().take(10) {
                println!("{}", describe(progress, "done", tty));
            }
        }
    }
}
