//! What the engine acknowledged, remembered in the database next to the
//! snapshot state (`cdc.positions`, one row per slot), and the guards that
//! compare it with the slot at start-up (README, "When the slot is lost").
//!
//! The slot alone cannot tell a fresh start from a lost one: a dropped slot
//! is simply recreated, an invalidated one fails forever, an advanced one
//! skips changes silently. The record can.
//!
//! The record's LSN is a lower bound of what the engine acknowledged: it is
//! written every few seconds from the acknowledgement path, off the
//! replication loop. Only at clean shutdown is it exact (`clean`), written
//! after the final acknowledgement; a slot ahead of a clean record was moved
//! by someone else. A slot ahead of a record that is not clean proves
//! nothing (the engine may have acknowledged more before it was killed), so
//! that guard only runs on clean records.

use std::time::Duration;

use cdc_engine::{Position, PositionStore, PositionWriter, TableRef};
use tokio_postgres::Client;

use crate::catalog::quote_table;
use crate::config::{PostgresConfig, SlotLostPolicy};
use crate::connect::{describe_pg_error, ConnectConfig};
use crate::replication::{format_lsn, parse_lsn, ReplicationConnection};
use crate::setup::{sql_err, SetupError};

/// How often the running engine writes its acknowledged LSN.
const WRITE_INTERVAL: Duration = Duration::from_secs(3);

/// The positions table, next to the signal table.
pub fn positions_table(signal_table: &TableRef) -> TableRef {
    TableRef::new(signal_table.schema.clone(), "positions")
}

pub(crate) fn create_sql(signal_table: &TableRef) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {} (slot text PRIMARY KEY, system_identifier text NOT NULL, \
         timeline bigint NOT NULL, lsn pg_lsn NOT NULL, clean boolean NOT NULL DEFAULT false, \
         written_at timestamptz NOT NULL DEFAULT now(), last_loss text)",
        quote_table(&positions_table(signal_table))
    )
}

/// The timeline WAL is written on now, as `IDENTIFY_SYSTEM` reports it (the
/// last checkpoint's lags a promotion until the next checkpoint).
const INSERT_TIMELINE_SQL: &str =
    "('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::bigint";

/// Upsert of the record, evaluated on the server, and only on the server
/// cdc streams from: after a failover the address may lead to another
/// one, whose history the LSN does not belong to (the guards judge that
/// at the next start).
fn upsert_sql(signal_table: &TableRef, epoch: i64) -> String {
    // Under a lease only the current epoch writes, as for snapshot
    // progress: a holder that lost it (frozen, and not aware yet) cannot
    // move its successor's record back. FOR SHARE makes a concurrent epoch
    // bump be seen.
    let lease = if epoch == 0 {
        // No group (tests, benchmarks): no leases table either.
        "$6::bigint = 0".to_owned()
    } else {
        format!(
            "EXISTS (SELECT 1 FROM {} WHERE slot = $1 AND epoch = $6 FOR SHARE)",
            quote_table(&crate::lease::leases_table(signal_table))
        )
    };
    format!(
        "INSERT INTO {} AS p (slot, system_identifier, timeline, lsn, clean, written_at) \
         SELECT $1, s.id, s.tl, $2::text::pg_lsn, $3, now() \
         FROM (SELECT (SELECT system_identifier::text FROM pg_control_system()) AS id, \
                      {INSERT_TIMELINE_SQL} AS tl) s \
         WHERE s.id = $4 AND s.tl = $5 AND {lease} \
         ON CONFLICT (slot) DO UPDATE SET system_identifier = excluded.system_identifier, \
           timeline = excluded.timeline, lsn = excluded.lsn, clean = excluded.clean, written_at = now()",
        quote_table(&positions_table(signal_table))
    )
}

#[derive(Debug, Clone)]
struct Record {
    system_id: String,
    timeline: i64,
    lsn: u64,
    clean: bool,
}

#[derive(Debug, Clone)]
struct Slot {
    wal_status: Option<String>,
    confirmed: Option<u64>,
    /// PostgreSQL 17+: synchronized from a primary (and kept so after this
    /// server's promotion).
    synced: bool,
}

/// What a run that ended in a failover had read from the old server: the
/// next run's guards check it against the promotion's switch point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadBeforeFailover {
    pub system_id: String,
    pub timeline: i64,
    /// The last change read from that server (its WAL position).
    pub lsn: u64,
    /// What the sink held of it: a slot behind this (the server crashed
    /// before saving what it had confirmed) resumes from here.
    pub durable: u64,
}

/// Filled by the stream when another server answers; read by the caller.
pub type Handoff = std::sync::Arc<std::sync::Mutex<Option<ReadBeforeFailover>>>;

/// What start-up decided about the slot.
#[derive(Debug, Clone, Default)]
pub struct Guarded {
    /// A guard fired and the policy is `resnapshot`: snapshot every table.
    pub resnapshot: bool,
    /// The LSN the record starts from for this run.
    pub start_lsn: u64,
    /// With `resnapshot`: the range of the log that was not captured.
    pub lost: Option<(u64, u64)>,
    /// The server's system identifier and timeline, as `IDENTIFY_SYSTEM`
    /// gives them: the stream stops when another server answers.
    pub server: (String, i64),
}

/// Which guard fired, and the first half of its line.
struct Loss {
    guard: &'static str,
    cause: String,
    /// From where changes were not captured.
    from: u64,
    /// The slot exists but cannot be streamed (or belongs to another
    /// history): drop it before creating a new one.
    drop_slot: bool,
}

async fn load_record(
    client: &Client,
    config: &PostgresConfig,
) -> Result<Option<Record>, SetupError> {
    let sql = format!(
        "SELECT system_identifier, timeline, lsn::text, clean FROM {} WHERE slot = $1",
        quote_table(&positions_table(&config.signal_table))
    );
    let err = sql_err("reading cdc.positions");
    let Some(row) = client
        .query_opt(&sql, &[&config.slot])
        .await
        .map_err(&err)?
    else {
        return Ok(None);
    };
    let lsn: String = row.try_get(2).map_err(&err)?;
    Ok(Some(Record {
        system_id: row.try_get(0).map_err(&err)?,
        timeline: row.try_get(1).map_err(&err)?,
        lsn: parse_lsn(&lsn).unwrap_or(0),
        clean: row.try_get(3).map_err(&err)?,
    }))
}

async fn load_slot(client: &Client, slot: &str) -> Result<Option<Slot>, SetupError> {
    let err = sql_err("reading the replication slot");
    let Some(row) = client
        .query_opt(
            // `synced` exists from PostgreSQL 17 on: read through jsonb, NULL before.
            "SELECT wal_status, confirmed_flush_lsn::text, coalesce((to_jsonb(s) ->> 'synced')::boolean, false) \
             FROM pg_replication_slots s WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .map_err(&err)?
    else {
        return Ok(None);
    };
    let confirmed: Option<String> = row.try_get(1).map_err(&err)?;
    Ok(Some(Slot {
        wal_status: row.try_get(0).map_err(&err)?,
        confirmed: confirmed.as_deref().and_then(parse_lsn),
        synced: row.try_get(2).map_err(&err)?,
    }))
}

/// The server's identity and, when the record's timeline is an ancestor of
/// the current one, where that timeline ended (the promotion's switch
/// point), from the same replication connection the stream will use.
async fn identity(
    config: &PostgresConfig,
    record: Option<&Record>,
) -> Result<(Server, Option<u64>), SetupError> {
    let fail = |e: crate::replication::ReplicationError| SetupError::Sql {
        what: "IDENTIFY_SYSTEM".into(),
        reason: e.to_string(),
    };
    let mut conn = ReplicationConnection::connect(&config.connect)
        .await
        .map_err(fail)?;
    let id = conn.identify_system().await.map_err(fail)?;
    let server = (id.system_id, i64::from(id.timeline));
    let mut switch = None;
    if let Some(record) = record {
        if record.system_id == server.0 && record.timeline < server.1 {
            let history = conn.timeline_history(id.timeline).await.map_err(fail)?;
            switch = timeline_end(&history, record.timeline);
        }
    }
    drop(conn);
    Ok((server, switch))
}

/// System identifier and timeline.
pub(crate) type Server = (String, i64);

/// In a timeline history file (`tli<TAB>switch LSN<TAB>reason` per line),
/// where timeline `timeline` ended.
fn timeline_end(history: &str, timeline: i64) -> Option<u64> {
    history.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let tli: i64 = fields.next()?.parse().ok()?;
        (tli == timeline).then(|| fields.next().and_then(parse_lsn))?
    })
}

/// Decide which guard, if any, fires. Order matters: a different server
/// makes every other comparison meaningless.
fn judge(
    config: &PostgresConfig,
    record: Option<&Record>,
    slot: Option<&Slot>,
    id: &Server,
    switch: Option<u64>,
) -> Option<Loss> {
    let name = &config.slot;
    if let Some(record) = record {
        let promoted = record.system_id == id.0 && record.timeline < id.1;
        if let (true, Some(slot), Some(switch)) = (promoted, slot, switch) {
            // A failover slot synchronized to this standby before its
            // promotion: it holds what cdc acknowledged on the old primary
            // as long as that was before the switch point.
            if slot.synced && slot.wal_status.as_deref() != Some("lost") {
                if record.lsn <= switch {
                    return None;
                }
                return Some(Loss {
                    guard: "diverged",
                    cause: format!(
                        "replication slot '{name}' was synchronized to this server, promoted at {} on timeline {}, but cdc read changes up to {} on the old primary: those after the promotion point exist only there (set synchronized_standby_slots on the primary to prevent this)",
                        format_lsn(switch),
                        id.1,
                        format_lsn(record.lsn)
                    ),
                    from: switch,
                    drop_slot: true,
                });
            }
        }
        if record.system_id != id.0 || record.timeline != id.1 {
            return Some(Loss {
                guard: "different server",
                cause: format!(
                    "replication slot '{name}' was recorded on system {} timeline {}, but the server is system {} timeline {} (a restored backup, a failover or another cluster)",
                    record.system_id, record.timeline, id.0, id.1
                ),
                from: record.lsn,
                drop_slot: slot.is_some(),
            });
        }
    }
    match (record, slot) {
        (Some(record), None) => Some(Loss {
            guard: "slot missing",
            cause: format!(
                "replication slot '{name}' is gone although cdc acknowledged up to {} through it (dropped while cdc was stopped?)",
                format_lsn(record.lsn)
            ),
            from: record.lsn,
            drop_slot: false,
        }),
        (record, Some(slot)) if slot.wal_status.as_deref() == Some("lost") => Some(Loss {
            guard: "slot invalidated",
            cause: format!(
                "replication slot '{name}' was invalidated (wal_status = 'lost': the server removed WAL it still needed, see max_slot_wal_keep_size)"
            ),
            from: record.map(|r| r.lsn).or(slot.confirmed).unwrap_or(0),
            drop_slot: true,
        }),
        (Some(record), Some(slot)) if record.clean && slot.confirmed > Some(record.lsn) => {
            Some(Loss {
                guard: "slot advanced",
                cause: format!(
                    "replication slot '{name}' was advanced to {} behind cdc's back (cdc stopped at {}: pg_replication_slot_advance or another consumer)",
                    slot.confirmed.map(format_lsn).unwrap_or_default(),
                    format_lsn(record.lsn)
                ),
                from: record.lsn,
                drop_slot: false,
            })
        }
        _ => None,
    }
}

/// Run the guards, before the slot is created. Under `fail` a loss is an
/// error (one line); under `resnapshot` the slot is made streamable again
/// and the caller snapshots every table. Creates the slot when it is
/// missing. The record is rewritten (not clean: this run has begun).
pub(crate) async fn guard(client: &Client, config: &PostgresConfig) -> Result<Guarded, SetupError> {
    let mut record = load_record(client, config).await?;
    // This process read further on the old server than its record says:
    // what it read is what consumers may have seen.
    if let (Some(record), Some(read)) = (&mut record, &config.read_before_failover) {
        if record.system_id == read.system_id && record.timeline == read.timeline {
            record.lsn = record.lsn.max(read.lsn);
        }
    }
    let mut slot = load_slot(client, &config.slot).await?;
    let (id, switch) = identity(config, record.as_ref()).await?;
    let loss = judge(config, record.as_ref(), slot.as_ref(), &id, switch);
    if let (None, Some(switch), Some(record)) = (&loss, switch, &record) {
        tracing::info!(
            "replication slot '{}' was synchronized to this server before its promotion at {} (timeline {} to {}); continuing from it",
            config.slot,
            format_lsn(switch),
            record.timeline,
            id.1
        );
    }
    let mut out = Guarded::default();
    if let Some(loss) = &loss {
        if config.on_slot_lost == SlotLostPolicy::Fail {
            note_loss(client, config, loss.guard).await?;
            // An invalidated slot fires whatever the record says: starting
            // over without the lost changes means dropping it too.
            let forget = if loss.guard == "slot invalidated" {
                format!(
                    "run SELECT pg_drop_replication_slot('{}') and delete its row of cdc.positions",
                    config.slot
                )
            } else {
                format!("delete the row of cdc.positions for slot '{}'", config.slot)
            };
            return Err(SetupError::SlotLost(format!(
                "{}: changes after {} are lost; set source.on_slot_lost = \"resnapshot\" to snapshot every table again, or {forget} to start over without them",
                loss.cause,
                format_lsn(loss.from),
            )));
        }
        if loss.drop_slot {
            client
                .execute("SELECT pg_drop_replication_slot($1)", &[&config.slot])
                .await
                .map_err(sql_err("dropping the lost replication slot"))?;
            slot = None;
        }
        out.resnapshot = true;
    }
    let mut start = match slot.and_then(|s| s.confirmed) {
        Some(lsn) => lsn,
        None => create_slot(config).await?,
    };
    if loss.is_none() {
        start = resume_from(config, start, &id);
    }
    if let Some(loss) = &loss {
        tracing::warn!(
            "{}: changes from {} to {} were not captured; snapshotting every captured table between resync markers (rows deleted in between are in no snapshot: consumers sweep them, see the README)",
            loss.cause,
            format_lsn(loss.from),
            format_lsn(start)
        );
        out.lost = Some((loss.from, start));
    }
    write(
        client,
        &config.signal_table,
        &config.slot,
        start,
        false,
        (&id, config.lease.epoch()),
    )
    .await
    .map_err(sql_err("writing cdc.positions"))?;
    if let Some(loss) = &loss {
        note_loss(client, config, loss.guard).await?;
    }
    out.start_lsn = start;
    out.server = id;
    Ok(out)
}

/// The slot's `confirmed` position, or further where this process's last
/// run on the same server had more in the sink: a server restarted after a
/// crash has forgotten what it confirmed since its last checkpoint.
fn resume_from(config: &PostgresConfig, confirmed: u64, server: &(String, i64)) -> u64 {
    match &config.read_before_failover {
        Some(read)
            if read.system_id == server.0
                && read.timeline == server.1
                && read.durable > confirmed =>
        {
            tracing::info!(
                "replication slot '{}' confirms {} while the sink holds everything up to {} (the server restarted before saving it): resuming from {}",
                config.slot,
                format_lsn(confirmed),
                format_lsn(read.durable),
                format_lsn(read.durable)
            );
            read.durable
        }
        _ => confirmed,
    }
}

async fn note_loss(
    client: &Client,
    config: &PostgresConfig,
    guard: &str,
) -> Result<(), SetupError> {
    let sql = format!(
        "UPDATE {} SET last_loss = $2 || ' at ' || now()::text WHERE slot = $1",
        quote_table(&positions_table(&config.signal_table))
    );
    client
        .execute(&sql, &[&config.slot, &guard])
        .await
        .map_err(sql_err("writing cdc.positions"))?;
    Ok(())
}

/// [`note_loss`] on a connection of its own, for a loss the running stream
/// found: `cdc status` then names it before the next start. A failure is
/// one warning; the next start's guard notes it again.
pub(crate) async fn note_loss_now(config: &PostgresConfig, guard: &str) {
    let noted = match config.connect.connect_sql().await {
        Ok(client) => note_loss(&client, config, guard)
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = noted {
        tracing::warn!(
            "the loss of replication slot '{}' ({guard}) is not noted in cdc.positions: {e}",
            config.slot
        );
    }
}

async fn create_slot(config: &PostgresConfig) -> Result<u64, SetupError> {
    let what = || format!("replication slot '{}'", config.slot);
    let mut conn = ReplicationConnection::connect(&config.connect)
        .await
        .map_err(|e| SetupError::Sql {
            what: what(),
            reason: e.to_string(),
        })?;
    let lsn = conn
        .create_logical_slot(&config.slot, config.failover_slot)
        .await
        .map_err(|e| SetupError::Sql {
            what: what(),
            reason: e.to_string(),
        })?;
    tracing::info!(slot = %config.slot, lsn = %format_lsn(lsn), "created replication slot");
    Ok(lsn)
}

async fn write(
    client: &Client,
    signal_table: &TableRef,
    slot: &str,
    lsn: u64,
    clean: bool,
    (server, epoch): (&Server, i64),
) -> Result<u64, tokio_postgres::Error> {
    client
        .execute(
            &upsert_sql(signal_table, epoch),
            &[
                &slot,
                &format_lsn(lsn),
                &clean,
                &server.0,
                &server.1,
                &epoch,
            ],
        )
        .await
}

/// The record as the engine's [`PositionStore`]: one row of
/// `cdc.positions`, written on a connection of its own.
struct PgPositionStore {
    connect: ConnectConfig,
    signal_table: TableRef,
    slot: String,
    server: Server,
    lease: cdc_engine::Lease,
    client: tokio::sync::Mutex<Option<Client>>,
}

#[async_trait::async_trait]
impl PositionStore for PgPositionStore {
    async fn write(&self, position: &Position, clean: bool) -> Result<(), String> {
        let lsn = position
            .as_u64()
            .ok_or_else(|| "not an LSN position".to_string())?;
        if !self.lease.is_fresh() {
            return Err("this instance's lease is not confirmed: the record is the active instance's to write".into());
        }
        let mut client = self.client.lock().await;
        if client.as_ref().is_none_or(Client::is_closed) {
            *client = Some(
                self.connect
                    .connect_sql()
                    .await
                    .map_err(|e| format!("cannot connect: {e}"))?,
            );
        }
        let Some(c) = client.as_ref() else {
            return Err("cannot connect".into());
        };
        let epoch = self.lease.epoch();
        let upsert = write(
            c,
            &self.signal_table,
            &self.slot,
            lsn,
            clean,
            (&self.server, epoch),
        );
        match upsert.await {
            Ok(0) => Err(format!(
                "the server is no longer system {} timeline {} (a failover?), or another instance holds the lease now (epoch {epoch} is over)",
                self.server.0, self.server.1
            )),
            Ok(_) => Ok(()),
            Err(e) => Err(describe_pg_error(&e)),
        }
    }

    fn describe(&self) -> String {
        format!(
            "{} for slot '{}'",
            positions_table(&self.signal_table),
            self.slot
        )
    }

    fn first_to_notice_outage(&self) -> bool {
        self.lease.first_to_notice_outage()
    }
}

/// The running engine's side: the log reader hands acknowledged LSNs to the
/// engine's [`PositionWriter`], which writes the latest every few seconds.
pub(crate) struct Writer(PositionWriter);

impl Writer {
    pub(crate) fn spawn(config: &PostgresConfig, start: u64, server: &Server) -> Writer {
        let store = PgPositionStore {
            connect: config.connect.clone(),
            signal_table: config.signal_table.clone(),
            slot: config.slot.clone(),
            server: server.clone(),
            lease: config.lease.clone(),
            client: tokio::sync::Mutex::new(None),
        };
        Writer(PositionWriter::spawn(
            store,
            Some(Position::from_u64(start)),
            WRITE_INTERVAL,
        ))
    }

    /// The pipeline made `lsn` durable and it was acknowledged.
    pub(crate) fn acknowledged(&self, lsn: u64) {
        self.0.acknowledged(&Position::from_u64(lsn));
    }

    /// Stop writing at once: this instance lost its lease, and the record
    /// is the new holder's to write.
    pub(crate) fn abandon(self) {
        self.0.abandon();
    }

    /// Write the final, exact record and wait (briefly) for it.
    pub(crate) async fn finish(self, lsn: Option<u64>) {
        if !self
            .0
            .finish(lsn.map(Position::from_u64), Duration::from_secs(5))
            .await
        {
            tracing::warn!("cdc.positions not written at shutdown in 5s: the next start will not check whether the slot was advanced");
        }
    }
}

/// The record's last guard, for `cdc status`.
pub async fn last_loss(
    client: &Client,
    signal_table: &TableRef,
    slot: &str,
) -> Result<Option<String>, SetupError> {
    let table = positions_table(signal_table);
    let err = sql_err("reading cdc.positions");
    let exists: bool = client
        .query_one(
            "SELECT to_regclass($1) IS NOT NULL",
            &[&quote_table(&table)],
        )
        .await
        .map_err(&err)?
        .try_get(0)
        .map_err(&err)?;
    if !exists {
        return Ok(None);
    }
    let sql = format!(
        "SELECT last_loss FROM {} WHERE slot = $1",
        quote_table(&table)
    );
    match client.query_opt(&sql, &[&slot]).await.map_err(&err)? {
        Some(row) => row.try_get(0).map_err(&err),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> PostgresConfig {
        let connect = ConnectConfig::parse("postgres://u@localhost/db");
        PostgresConfig::new(connect.unwrap_or_else(|e| panic!("{e}")), Vec::new())
    }

    fn record(lsn: u64, clean: bool) -> Record {
        Record {
            system_id: "42".into(),
            timeline: 1,
            lsn,
            clean,
        }
    }

    fn slot(status: &str, confirmed: u64) -> Slot {
        Slot {
            wal_status: Some(status.into()),
            confirmed: Some(confirmed),
            synced: false,
        }
    }

    fn synced(confirmed: u64) -> Slot {
        Slot {
            synced: true,
            ..slot("reserved", confirmed)
        }
    }

    fn guard_of(
        record: Option<&Record>,
        slot: Option<&Slot>,
        id: (&str, i64),
    ) -> Option<&'static str> {
        judge(&config(), record, slot, &(id.0.to_string(), id.1), None).map(|l| l.guard)
    }

    #[test]
    fn a_slot_synchronized_before_the_promotion_carries_on() {
        let promoted = ("42".to_string(), 2);
        let judge_at = |record: &Record, slot: &Slot, switch| {
            judge(&config(), Some(record), Some(slot), &promoted, switch).map(|l| l.guard)
        };
        // cdc's acknowledgements were all before the switch point.
        assert_eq!(judge_at(&record(9, false), &synced(7), Some(10)), None);
        assert_eq!(judge_at(&record(10, true), &synced(10), Some(10)), None);
        // Past it: the old primary had changes this server never got.
        assert_eq!(
            judge_at(&record(11, false), &synced(9), Some(10)),
            Some("diverged")
        );
        // Not synchronized (created here by someone), or no history link.
        assert_eq!(
            judge_at(&record(9, false), &slot("reserved", 9), Some(10)),
            Some("different server")
        );
        assert_eq!(
            judge_at(&record(9, false), &synced(9), None),
            Some("different server")
        );
    }

    #[test]
    fn timeline_history_gives_where_a_timeline_ended() {
        let history =
            "1\t0/3000158\tno recovery target specified\n\n2\t0/5000000\tat restore point\n";
        assert_eq!(timeline_end(history, 1), parse_lsn("0/3000158"));
        assert_eq!(timeline_end(history, 2), parse_lsn("0/5000000"));
        assert_eq!(timeline_end(history, 3), None);
    }

    #[test]
    fn guards_decide_from_record_and_slot() {
        let here = ("42", 1);
        // First start, or a record in step with its slot.
        assert_eq!(guard_of(None, None, here), None);
        assert_eq!(guard_of(None, Some(&slot("reserved", 9)), here), None);
        assert_eq!(
            guard_of(Some(&record(9, true)), Some(&slot("reserved", 9)), here),
            None
        );
        assert_eq!(
            guard_of(Some(&record(9, true)), Some(&slot("reserved", 5)), here),
            None
        );
        assert_eq!(
            guard_of(Some(&record(9, true)), None, here),
            Some("slot missing")
        );
        assert_eq!(
            guard_of(None, Some(&slot("lost", 9)), here),
            Some("slot invalidated")
        );
        assert_eq!(
            guard_of(Some(&record(9, true)), Some(&slot("reserved", 10)), here),
            Some("slot advanced")
        );
        // A record written while running is a lower bound: ahead of it
        // proves nothing.
        assert_eq!(
            guard_of(Some(&record(9, false)), Some(&slot("reserved", 10)), here),
            None
        );
        // Another server first: its slot's positions mean nothing.
        assert_eq!(
            guard_of(Some(&record(9, true)), Some(&slot("lost", 9)), ("43", 1)),
            Some("different server")
        );
        assert_eq!(
            guard_of(Some(&record(9, true)), None, ("42", 2)),
            Some("different server")
        );
    }
}
