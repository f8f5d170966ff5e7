//! One active instance per slot (README, "Operating cdc"): the instances
//! of a group share a slot, and the active one holds a session advisory
//! lock derived from the slot's name, on a connection of its own. The
//! others stand by, polling the lock. The server frees it when the
//! holder's session ends; keepalives and `TCP_USER_TIMEOUT` on that
//! connection make a vanished host's session end within seconds.
//!
//! The holder pings the lock connection every second and acts (streams,
//! acknowledges, saves snapshot progress) only while a ping succeeded
//! within [`cdc_engine::lease::FRESH`]. Each new holder bumps the group's
//! epoch in `cdc.leases`; snapshot progress is saved only under the
//! current epoch.

use std::time::Duration;

use cdc_engine::{Lease, TableRef};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_postgres::Client;
use tracing::Instrument;

use crate::catalog::quote_table;
use crate::config::PostgresConfig;
use crate::connect::describe_pg_error;
use crate::setup::{sql_err, SetupError};

/// First key of cdc's advisory locks ("cdc\0"); the second is the hash of
/// the slot name.
pub const LOCK_CLASS: i32 = 0x6364_6300;
const POLL: Duration = Duration::from_secs(1);
/// A lock connection whose path died fails within this.
const LOCK_CONNECTION_TIMEOUT: Duration = Duration::from_secs(6);

/// The lease's table, next to the signal table.
pub fn leases_table(signal_table: &TableRef) -> TableRef {
    TableRef::new(signal_table.schema.clone(), "leases")
}

/// A held lease; dropping it releases the lock (its connection closes).
pub struct Acquired {
    pub lease: Lease,
    monitor: JoinHandle<()>,
}

impl Drop for Acquired {
    fn drop(&mut self) {
        self.monitor.abort();
    }
}

/// This instance's name on its connections: host and process id, which
/// a standby names when it waits.
pub async fn instance_name() -> String {
    let host = tokio::fs::read_to_string("/proc/sys/kernel/hostname")
        .await
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "unknown-host".into());
    format!("cdc:{host}:{}", std::process::id())
}

/// Wait until this instance holds the slot's lease (standing by meanwhile)
/// and fence a walsender a previous holder left. `None` when shut down
/// while standing by. Unless `patient` (a run after a lost lease or a
/// failover), a first connection error is returned: at start it is what
/// the operator must fix (authentication, TLS, address).
pub async fn acquire(
    config: &PostgresConfig,
    mut shutdown: watch::Receiver<bool>,
    patient: bool,
) -> Result<Option<Acquired>, SetupError> {
    let name = instance_name().await;
    let connect = config
        .connect
        .watchful(LOCK_CONNECTION_TIMEOUT)
        .with_application_name(&name);
    let mut reported_holder: Option<String> = None;
    let mut unreachable_reported = false;
    let mut connected_once = patient;
    loop {
        if *shutdown.borrow() {
            return Ok(None);
        }
        let client = match connect.connect_sql().await {
            Ok(client) => client,
            Err(err) if !connected_once => return Err(SetupError::Preflight(err.to_string())),
            Err(err) => {
                if !unreachable_reported {
                    unreachable_reported = true;
                    // After a lost lease this is the same outage, already
                    // reported.
                    if patient {
                        tracing::info!("cannot reach the server to take the lease of replication slot '{}': {err}; retrying", config.slot);
                    } else {
                        tracing::warn!("cannot reach the server to take the lease of replication slot '{}': {err}; retrying", config.slot);
                    }
                }
                if pause(&mut shutdown).await {
                    return Ok(None);
                }
                continue;
            }
        };
        connected_once = true;
        // The server must notice a vanished holder too, or its lock
        // outlives the host: keepalives and a user timeout on its side.
        let server_side = format!(
            "SET tcp_keepalives_idle = {idle}; SET tcp_keepalives_interval = {idle}; \
             SET tcp_keepalives_count = 3; SET tcp_user_timeout = {timeout_ms}",
            idle = (LOCK_CONNECTION_TIMEOUT.as_secs() / 4).max(1),
            timeout_ms = LOCK_CONNECTION_TIMEOUT.as_millis()
        );
        if let Err(err) = client.batch_execute(&server_side).await {
            tracing::debug!("server-side keepalives not set on the lock connection: {err}");
        }
        // A connection lost mid-query (a server restart, a dead path) is
        // waited out like one lost between polls: connect again.
        macro_rules! or_reconnect {
            ($step:expr) => {
                match $step {
                    Ok(value) => value,
                    Err(_) if client.is_closed() => break,
                    Err(err) => return Err(err),
                }
            };
        }
        loop {
            let held: bool = or_reconnect!(client
                .query_one(
                    "SELECT pg_try_advisory_lock($1, hashtext($2))",
                    &[&LOCK_CLASS, &config.slot],
                )
                .await
                .and_then(|row| row.try_get(0))
                .map_err(sql_err("taking the lease")));
            if held {
                let epoch = or_reconnect!(bump_epoch(&client, config, &name).await);
                or_reconnect!(fence_walsender(&client, config).await);
                let lease = Lease::held(epoch);
                tracing::info!(slot = %config.slot, epoch, "holding the lease: this instance is active");
                // In the caller's span: the lost-lease warning names the run.
                let monitor = tokio::spawn(
                    monitor(client, lease.clone(), config.slot.clone())
                        .instrument(tracing::Span::current()),
                );
                return Ok(Some(Acquired { lease, monitor }));
            }
            let (holder, holder_backend) = or_reconnect!(holder(&client, &config.slot).await);
            // A lock session of this very process whose path died (a
            // partition healed since): the server did not notice yet.
            if let Some((app, backend)) = &holder_backend {
                if app == &name {
                    tracing::info!(
                        "replication slot '{}' is still locked by backend {backend}, a dead session of this instance: terminating it",
                        config.slot
                    );
                    or_reconnect!(client
                        .execute("SELECT pg_terminate_backend($1)", &[backend])
                        .await
                        .map_err(sql_err("ending this instance's dead lock session")));
                    continue;
                }
            }
            if reported_holder.as_ref() != Some(&holder) {
                tracing::info!(
                    "standing by: replication slot '{}' is held by {holder}; taking over when it stops",
                    config.slot
                );
                reported_holder = Some(holder);
            }
            if pause(&mut shutdown).await {
                return Ok(None);
            }
            if client.is_closed() {
                break;
            }
        }
    }
}

/// Sleeps one poll; `true` when shut down meanwhile.
async fn pause(shutdown: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(POLL) => false,
        _ = shutdown.changed() => true,
    }
}

/// Who holds the slot's lease, for `cdc status`: `None` when nobody does.
pub async fn describe_holder(client: &Client, slot: &str) -> Result<Option<String>, SetupError> {
    let (text, backend) = holder(client, slot).await?;
    Ok(backend.map(|_| text))
}

/// Who holds the lock, for the log line, and its application name and
/// backend.
async fn holder(
    client: &Client,
    slot: &str,
) -> Result<(String, Option<(String, i32)>), SetupError> {
    let err = sql_err("reading the lease holder");
    let row = client
        .query_opt(
            "SELECT a.application_name, coalesce(host(a.client_addr), 'a local socket'), a.pid \
             FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 \
               AND l.classid = $1::int::oid AND l.objid = (hashtext($2)::bigint & 4294967295)::oid",
            &[&LOCK_CLASS, &slot],
        )
        .await
        .map_err(&err)?;
    let Some(row) = row else {
        return Ok(("another instance (it is just letting go)".into(), None));
    };
    let app: Option<String> = row.try_get(0).map_err(&err)?;
    let addr: Option<String> = row.try_get(1).map_err(&err)?;
    let pid: i32 = row.try_get(2).map_err(&err)?;
    let app = app.unwrap_or_default();
    Ok((
        format!("'{app}' from {} (backend {pid})", addr.unwrap_or_default()),
        Some((app, pid)),
    ))
}

async fn bump_epoch(
    client: &Client,
    config: &PostgresConfig,
    name: &str,
) -> Result<i64, SetupError> {
    let table = leases_table(&config.signal_table);
    let err = sql_err("writing cdc.leases");
    client
        .batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {schema}; \
             CREATE TABLE IF NOT EXISTS {table} (slot text PRIMARY KEY, epoch bigint NOT NULL, \
             holder text NOT NULL, acquired_at timestamptz NOT NULL DEFAULT now())",
            schema = crate::catalog::quote_ident(&table.schema),
            table = quote_table(&table),
        ))
        .await
        .map_err(&err)?;
    client
        .query_one(
            &format!(
                "INSERT INTO {} AS l (slot, epoch, holder) VALUES ($1, 1, $2) \
                 ON CONFLICT (slot) DO UPDATE SET epoch = l.epoch + 1, holder = excluded.holder, acquired_at = now() \
                 RETURNING epoch",
                quote_table(&table)
            ),
            &[&config.slot, &name],
        )
        .await
        .and_then(|row| row.try_get(0))
        .map_err(&err)
}

/// A previous holder frozen or cut off may still have a walsender on the
/// slot: end it, now that this instance holds the lock, so the old one
/// can acknowledge nothing more.
async fn fence_walsender(client: &Client, config: &PostgresConfig) -> Result<(), SetupError> {
    let err = sql_err("fencing the slot's walsender");
    for _ in 0..50 {
        let active: Option<i32> = client
            .query_opt(
                "SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1 AND active",
                &[&config.slot],
            )
            .await
            .map_err(&err)?
            .map(|row| row.try_get(0))
            .transpose()
            .map_err(&err)?;
        let Some(pid) = active else {
            return Ok(());
        };
        tracing::warn!(
            "replication slot '{}' is still streamed by backend {pid} (a previous active instance): terminating it now that this instance holds the lease",
            config.slot
        );
        client
            .execute("SELECT pg_terminate_backend($1)", &[&pid])
            .await
            .map_err(&err)?;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(SetupError::Sql {
        what: "fencing the slot's walsender".into(),
        reason: format!(
            "replication slot '{}' stays active after terminating its walsender",
            config.slot
        ),
    })
}

/// Confirms the lease once per [`POLL`] while the lock connection answers.
///
/// A slow answer is not a lost lock: the session that holds it is still
/// there, so the holder only pauses (its confirmation goes stale after
/// `FRESH`, which already stops acknowledging) and goes on once the answer
/// comes. On a loaded server a `SELECT 1` can take longer than `FRESH`;
/// giving the lease up then would restart the stream for nothing, and make
/// the server decode everything since the slot's restart point again. A
/// dead path fails the query itself (TCP_USER_TIMEOUT and keepalives on
/// this connection); [`LOCK_SILENT_LIMIT`] is the bound on top of that.
async fn monitor(client: Client, lease: Lease, slot: String) {
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let why = loop {
        tick.tick().await;
        match answer(&client, &slot).await {
            Ok(()) => lease.confirm(),
            Err(why) => break why,
        }
    };
    // The fault that took the lock connection (a crashed server, a dead
    // path) has mostly taken the replication connection first, whose
    // warning is the fault's one.
    cdc_engine::warn_or_info!(
        lease.first_to_notice_outage(),
        "lost the lease of replication slot '{slot}' ({why}): stopping before acknowledging anything more"
    );
    lease.lose(why);
}

/// Silence on the lock connection for this long means it is dead.
const LOCK_SILENT_LIMIT: Duration = Duration::from_secs(30);

/// One `SELECT 1` on the lock connection: `Err` with the reason the lease
/// is gone.
async fn answer(client: &Client, slot: &str) -> Result<(), String> {
    let query = client.simple_query("SELECT 1");
    tokio::pin!(query);
    let failed = |err: tokio_postgres::Error| {
        format!("its lock connection failed: {}", describe_pg_error(&err))
    };
    match tokio::time::timeout(cdc_engine::lease::FRESH, &mut query).await {
        Ok(result) => return result.map(drop).map_err(failed),
        Err(_) => tracing::warn!(
            "the lock connection of replication slot '{slot}' has not answered for {}s: acknowledging nothing until it does (the lease is dropped after {}s of silence)",
            cdc_engine::lease::FRESH.as_secs(),
            LOCK_SILENT_LIMIT.as_secs()
        ),
    }
    let rest = LOCK_SILENT_LIMIT.saturating_sub(cdc_engine::lease::FRESH);
    match tokio::time::timeout(rest, query).await {
        Ok(result) => {
            result.map_err(failed)?;
            tracing::info!("the lock connection of replication slot '{slot}' answered again");
            Ok(())
        }
        Err(_) => Err(format!(
            "its lock connection did not answer in {}s",
            LOCK_SILENT_LIMIT.as_secs()
        )),
    }
}
