//! What the operator's commands need from the database: write a signal row
//! (exactly what an operator would INSERT) and read the status.

use cdc_engine::scheduler::SnapshotState;
use cdc_engine::SignalRow;

use crate::catalog::quote_table;
use crate::config::PostgresConfig;
use crate::setup::{sql_err, SetupError};
use crate::snapshot::state_table;

/// Insert a signal row into the signal table.
pub async fn send_signal(config: &PostgresConfig, row: &SignalRow) -> Result<(), SetupError> {
    let client = config
        .connect
        .connect_sql()
        .await
        .map_err(|e| SetupError::Preflight(e.to_string()))?;
    let sql = format!(
        "INSERT INTO {} (id, type, data) VALUES ($1, $2, $3::text::jsonb)",
        quote_table(&config.signal_table)
    );
    client
        .execute(&sql, &[&row.id, &row.kind, &row.data])
        .await
        .map_err(sql_err("writing the signal row"))?;
    Ok(())
}

/// The replication slot as the server sees it.
#[derive(Debug, Clone)]
pub struct SlotStatus {
    pub active: bool,
    /// Bytes of WAL not yet acknowledged by the engine.
    pub lag_bytes: i64,
    pub confirmed_flush: Option<String>,
    /// `reserved`, `extended`, `unreserved` or `lost`.
    pub wal_status: Option<String>,
    /// Bytes of WAL that can still be written before the slot is lost
    /// (`None`: no limit, max_slot_wal_keep_size = -1).
    pub safe_wal_size: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct Status {
    pub slot: Option<SlotStatus>,
    pub snapshot: Option<SnapshotState>,
    /// The slot guard that fired last, and when (`cdc.positions`).
    pub last_loss: Option<String>,
    /// The instance holding the lease, when one does.
    pub active: Option<String>,
}

pub async fn status(config: &PostgresConfig) -> Result<Status, SetupError> {
    let client = config
        .connect
        .connect_sql()
        .await
        .map_err(|e| SetupError::Preflight(e.to_string()))?;
    let err = sql_err("reading the replication slot");
    let slot = match client
        .query_opt(
            "SELECT active, (pg_current_wal_lsn() - confirmed_flush_lsn)::bigint, confirmed_flush_lsn::text, \
             wal_status, safe_wal_size FROM pg_replication_slots WHERE slot_name = $1",
            &[&config.slot],
        )
        .await
        .map_err(&err)?
    {
        Some(r) => Some(SlotStatus {
            active: r.try_get(0).map_err(&err)?,
            lag_bytes: r.try_get::<_, Option<i64>>(1).map_err(&err)?.unwrap_or(0),
            confirmed_flush: r.try_get(2).map_err(&err)?,
            wal_status: r.try_get(3).map_err(&err)?,
            safe_wal_size: r.try_get(4).map_err(&err)?,
        }),
        None => None,
    };
    let last_loss =
        crate::positions::last_loss(&client, &config.signal_table, &config.slot).await?;
    let exists: bool = client
        .query_one(
            "SELECT to_regclass($1) IS NOT NULL",
            &[&quote_table(&state_table(&config.signal_table))],
        )
        .await
        .map_err(sql_err("looking for the snapshot state"))?
        .try_get(0)
        .map_err(sql_err("looking for the snapshot state"))?;
    let snapshot = if exists {
        let sql = format!(
            "SELECT state::text FROM {} WHERE name = $1",
            quote_table(&state_table(&config.signal_table))
        );
        match client
            .query_opt(&sql, &[&config.slot])
            .await
            .map_err(sql_err("reading the snapshot state"))?
        {
            Some(row) => {
                let text: String = row
                    .try_get(0)
                    .map_err(sql_err("reading the snapshot state"))?;
                Some(serde_json::from_str(&text).map_err(|e| SetupError::Sql {
                    what: "reading the snapshot state".into(),
                    reason: e.to_string(),
                })?)
            }
            None => None,
        }
    } else {
        None
    };
    let active = crate::lease::describe_holder(&client, &config.slot).await?;
    Ok(Status {
        slot,
        snapshot,
        last_loss,
        active,
    })
}
