//! The log reader's connection loop: stream the slot, hand batches of items
//! to the pipeline, acknowledge what the pipeline reports durable, and
//! reconnect when the connection drops.
//!
//! The reader never stops answering the server while the pipeline is slow:
//! waiting for room in the items channel goes together with sending status
//! updates, so `wal_sender_timeout` does not cut a throttled connection.

use std::time::Duration;

use cdc_engine::telemetry::{Component, ErrorKind};
use cdc_engine::{LogItem, Position, SourceError, StreamContext, Telemetry};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};

use crate::config::{BinaryMode, PostgresConfig, SlotLostPolicy, StreamingMode};
use crate::decoder::{Decoder, DecoderError};
use crate::liveness::{self, Check, Liveness};
use crate::positions::Writer;
use crate::replication::{
    format_lsn, ReplicationConnection, ReplicationError, ReplicationMessage, ReplicationStream,
};
use crate::shape_refresh::ShapeRefresh;
use crate::streamed::{Replay, Route, RouteError, StreamedTransactions};

/// Items handed over in one channel message.
const BATCH_ITEMS: usize = 2048;

/// How a streaming session ended.
enum Exit {
    /// Shutdown requested or the pipeline is gone.
    Stop(ReplicationStream),
    /// The connection failed; reconnect unless the error is fatal.
    Failed(ReplicationError),
    /// Another server answers now (a failover to a promoted standby): its
    /// slot must be judged by the guards again.
    Moved(String),
    /// This instance lost its lease: another may be active now.
    LeaseLost(String),
    /// A binary session met a value it cannot read: start again in text.
    NeedsText(String),
    /// The slot was dropped, invalidated or advanced while the connection
    /// was down (`losses.rs`): the changes in between are lost.
    Lost(crate::losses::Lost),
}

struct Acks {
    rx: watch::Receiver<Option<Position>>,
    /// Highest LSN the pipeline reported durable (or the slot's own
    /// confirmed position at start).
    flushed: u64,
    /// Highest LSN received from the server.
    received: u64,
    /// Highest WAL position of a change read (keepalives aside).
    read_data: u64,
    last_sent_flush: u64,
    /// The slot's confirmed position when this run began: with
    /// `last_sent_flush`, the most the server can have confirmed for it.
    start: u64,
    /// Remembers acknowledged positions in `cdc.positions`.
    positions: Writer,
    /// Reads a table's new shape from the catalog (shape_refresh.rs).
    catalog: ShapeRefresh,
    lease: cdc_engine::Lease,
    /// The server this run started on (system identifier, timeline).
    server: (String, i64),
    telemetry: Telemetry,
}

impl Acks {
    /// The most the server can have confirmed for this run: where the slot
    /// was when it began, or the last flush position sent since.
    fn acknowledged(&self) -> u64 {
        self.start.max(self.last_sent_flush)
    }

    /// Everything committed up to here is in the sink: what this run
    /// started from, sent as flushed, or heard from the pipeline.
    fn durable(&self) -> u64 {
        self.acknowledged().max(self.flushed)
    }

    fn refresh(&mut self) {
        let latest = self
            .rx
            .borrow_and_update()
            .as_ref()
            .and_then(Position::to_u64);
        if let Some(lsn) = latest {
            self.flushed = self.flushed.max(lsn);
        }
    }

    async fn send(
        &mut self,
        stream: &mut ReplicationStream,
        reply: bool,
    ) -> Result<(), ReplicationError> {
        self.refresh();
        // A holder that could not confirm its lease lately (it was frozen,
        // or its lock connection is slow or failing) acknowledges nothing
        // new, but still answers: a silent session is timed out by the
        // server (wal_sender_timeout) while the lease may well come back.
        if !self.lease.is_fresh() {
            let held = self.last_sent_flush;
            stream
                .send_status(self.received.max(held), held, held, reply)
                .await?;
            return Ok(());
        }
        let write = self.received.max(self.flushed);
        stream
            .send_status(write, self.flushed, self.flushed, reply)
            .await?;
        self.last_sent_flush = self.flushed;
        self.positions.acknowledged(self.flushed);
        self.telemetry.acknowledged(self.flushed);
        Ok(())
    }
}

pub(crate) async fn run(
    config: &PostgresConfig,
    publications: &[String],
    mut decoder: Decoder,
    ctx: StreamContext,
    start_lsn: u64,
    server: &(String, i64),
    handoff: &crate::positions::Handoff,
) -> Result<(), SourceError> {
    let StreamContext {
        items,
        acks,
        mut shutdown,
        telemetry,
    } = ctx;
    let mut acks = Acks {
        rx: acks,
        flushed: 0,
        received: 0,
        read_data: 0,
        last_sent_flush: 0,
        start: start_lsn,
        positions: Writer::spawn(config, start_lsn, server),
        catalog: ShapeRefresh::new(config.connect.clone()),
        lease: config.lease.clone(),
        server: server.clone(),
        telemetry: telemetry.clone(),
    };
    // Text stays the safe ground: binary only where every captured column
    // decodes the same from it (docs/architecture.md, "Binary log values").
    let mut binary = config.binary == BinaryMode::Auto;
    if binary {
        if let Some(column) = decoder.binary_blocker() {
            tracing::info!("log values come as text: {column} has no binary decoder");
            binary = false;
        } else {
            tracing::info!("log values come in pgoutput's binary format");
        }
    }
    let mut backoff = Duration::from_millis(250);
    // When the connection was lost, for the line on its recovery.
    let mut lost_at: Option<Instant> = None;
    let stream = loop {
        if *shutdown.borrow() {
            acks.positions.finish(None).await;
            return Ok(());
        }
        let started = Instant::now();
        decoder.set_binary(binary);
        match session(
            config,
            publications,
            &mut decoder,
            &items,
            &mut acks,
            &mut shutdown,
            &mut lost_at,
        )
        .await
        {
            Exit::Stop(stream) => break stream,
            Exit::NeedsText(why) => {
                // The next session receives again all that was not
                // acknowledged, now as text.
                tracing::info!("log values come as text from here on: {why}");
                binary = false;
                decoder.reset();
            }
            Exit::LeaseLost(why) => {
                // The server may have failed over under the lost lock
                // connection: the next run's guards need what was read.
                hand_off(handoff, &acks);
                acks.positions.abandon();
                return Err(SourceError::LeaseLost(format!(
                    "lost the lease of replication slot '{}' ({why})",
                    config.slot
                )));
            }
            Exit::Moved(what) => {
                hand_off(handoff, &acks);
                acks.positions.finish(None).await;
                return Err(SourceError::ServerChanged(what));
            }
            Exit::Lost(lost) => {
                // Exact, so the restart's guards judge the slot against
                // what this run acknowledged (positions.rs).
                let acknowledged = acks.acknowledged();
                acks.positions.finish(Some(acknowledged)).await;
                crate::positions::note_loss_now(config, lost.guard).await;
                telemetry.error(ErrorKind::PositionLost);
                telemetry.set_down(Component::Reader, "log reader stopped");
                return Err(SourceError::PositionLost(format!(
                    "{}: changes after {} are lost; {}",
                    lost.cause,
                    format_lsn(acknowledged),
                    lost_fix(config)
                )));
            }
            Exit::Failed(err) if crate::losses::dropped_publication(&err).is_some() => {
                let acknowledged = acks.acknowledged();
                acks.positions.finish(Some(acknowledged)).await;
                telemetry.error(ErrorKind::PositionLost);
                telemetry.set_down(Component::Reader, "log reader stopped");
                return Err(crate::losses::publication_lost(config, &err, acknowledged).await);
            }
            Exit::Failed(err) => {
                if let Some(fatal) = fatal(config, &err) {
                    acks.positions.finish(None).await;
                    let lost = invalidated(&err);
                    if lost {
                        crate::positions::note_loss_now(config, "slot invalidated").await;
                    }
                    telemetry.error(if lost {
                        ErrorKind::PositionLost
                    } else {
                        ErrorKind::SourceFatal
                    });
                    telemetry.set_down(Component::Reader, "log reader stopped");
                    return Err(if lost {
                        SourceError::PositionLost(fatal)
                    } else {
                        SourceError::Fatal(fatal)
                    });
                }
                if items.is_closed() {
                    acks.positions.finish(None).await;
                    return Ok(());
                }
                if started.elapsed() > Duration::from_secs(30) {
                    backoff = Duration::from_millis(250);
                }
                // One warning per outage; the attempts after it are info,
                // and so is the first when another connection has already
                // warned of the same fault (the lock connection died first).
                if lost_at.is_none() {
                    cdc_engine::warn_or_info!(
                        acks.lease.first_to_notice_outage(),
                        server = %config.connect.redacted(),
                        "replication connection lost: {err}; reconnecting in {}ms",
                        backoff.as_millis()
                    );
                    lost_at = Some(Instant::now());
                } else {
                    tracing::info!(
                        server = %config.connect.redacted(),
                        "replication connection still down: {err}; retrying in {}ms",
                        backoff.as_millis()
                    );
                }
                telemetry.error(ErrorKind::Replication);
                telemetry.reconnect();
                telemetry.set_down(Component::Reader, format!("reconnecting: {err}"));
                decoder.reset();
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    };
    telemetry.set_down(Component::Reader, "stopping");
    finish(stream, items, acks).await;
    Ok(())
}

/// What this run read from its server, for the next run's guards.
fn hand_off(handoff: &crate::positions::Handoff, acks: &Acks) {
    if let Ok(mut slot) = handoff.lock() {
        *slot = Some(crate::positions::ReadBeforeFailover {
            system_id: acks.server.0.clone(),
            timeline: acks.server.1,
            lsn: acks.read_data,
            durable: acks.durable(),
        });
    }
}

/// Hand the pipeline its last items' acknowledgements upstream: wait until
/// it has flushed and closed `acks`, then send the final status.
async fn finish(mut stream: ReplicationStream, items: mpsc::Sender<Vec<LogItem>>, mut acks: Acks) {
    drop(items);
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            changed = acks.rx.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            _ = tick.tick() => {
                if acks.send(&mut stream, false).await.is_err() {
                    return;
                }
            }
        }
    }
    let sent = match acks.send(&mut stream, false).await {
        Ok(()) => {
            tracing::info!(flushed = %format_lsn(acks.flushed), "final acknowledgement sent");
            Some(acks.flushed)
        }
        Err(err) => {
            tracing::warn!("final acknowledgement not sent: {err}");
            None
        }
    };
    let _ = stream.finish().await;
    // Exact only now: the server has all the engine acknowledged
    // (positions.rs says why that matters).
    acks.positions.finish(sent).await;
}

/// The slot was invalidated: retrying cannot bring its WAL back.
/// PostgreSQL 16+ says "can no longer get changes from replication slot",
/// 13-15 "cannot read from logical replication slot" with a detail.
fn invalidated(err: &ReplicationError) -> bool {
    match (err, err.code()) {
        (ReplicationError::Server { message, .. }, Some("55000")) => {
            message.contains("can no longer get changes from replication slot")
                || (message.contains("replication slot") && message.contains("invalidated"))
        }
        _ => false,
    }
}

/// What to do about a slot lost while cdc ran, by policy.
fn lost_fix(config: &PostgresConfig) -> &'static str {
    match config.on_slot_lost {
        SlotLostPolicy::Fail => "set source.on_slot_lost = \"resnapshot\" and run cdc again to recreate the slot and snapshot every table",
        SlotLostPolicy::Resnapshot => "cdc starts again to recreate the slot and snapshot every table (on_slot_lost = \"resnapshot\")",
    }
}

fn fatal(config: &PostgresConfig, err: &ReplicationError) -> Option<String> {
    match (err, err.code()) {
        (ReplicationError::Server { message, .. }, _) if invalidated(err) => {
            Some(format!(
                "replication slot '{}' was invalidated while cdc streamed ({message}): the changes it held are lost; {}",
                config.slot,
                lost_fix(config)
            ))
        }
        (_, Some("42704")) => Some(format!(
            "replication slot '{}' or publication '{}' does not exist (dropped while running?): {err}; run cdc again: it creates a missing publication, and a lost slot is handled by source.on_slot_lost",
            config.slot, config.publication
        )),
        (_, Some(code)) if code.starts_with("28") => {
            Some(format!("authentication failed for {}: {err}", config.connect.redacted()))
        }
        (ReplicationError::Auth(_), _) => Some(err.to_string()),
        (ReplicationError::Protocol(_), _) => Some(err.to_string()),
        _ => None,
    }
}

async fn session(
    config: &PostgresConfig,
    publications: &[String],
    decoder: &mut Decoder,
    items: &mpsc::Sender<Vec<LogItem>>,
    acks: &mut Acks,
    shutdown: &mut watch::Receiver<bool>,
    lost_at: &mut Option<Instant>,
) -> Exit {
    let server = &acks.server;
    // Never start streaming on a lease not confirmed lately.
    while !acks.lease.is_fresh() {
        if let Some(why) = acks.lease.lost() {
            return Exit::LeaseLost(why);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut conn = match ReplicationConnection::connect(&config.connect).await {
        Ok(conn) => conn,
        Err(err) => return Exit::Failed(err),
    };
    match conn.identify_system().await {
        Ok(id) if id.system_id != server.0 || i64::from(id.timeline) != server.1 => {
            return Exit::Moved(format!(
                "the server is now system {} timeline {} (cdc started on system {} timeline {}: a failover?); starting over to check slot '{}' there",
                id.system_id, id.timeline, server.0, server.1, config.slot
            ));
        }
        Ok(_) => {}
        Err(err) => return Exit::Failed(err),
    }
    // Dropped or advanced while no session held it: see losses.rs.
    match crate::losses::read(&mut conn, &config.slot).await {
        Ok(slot) => {
            if let Some(lost) =
                crate::losses::judge(&config.slot, slot.as_ref(), acks.acknowledged())
            {
                return Exit::Lost(lost);
            }
        }
        Err(err) => return Exit::Failed(err),
    }
    let timeout = match liveness::timeout(config.replication_timeout, &mut conn).await {
        Ok(timeout) => timeout,
        Err(err) => return Exit::Failed(err),
    };
    // Streamed transactions need protocol version 2 (PostgreSQL 14+).
    let streaming = config.streaming == StreamingMode::Auto
        && match server_version(&mut conn).await {
            Ok(version) => version >= 140_000,
            Err(err) => return Exit::Failed(err),
        };
    // Held for this session only: a new one receives them again.
    let mut streams = streaming
        .then(|| StreamedTransactions::new(config.streaming_memory, config.spill_dir.clone()));
    // Start from what the sink holds: the server resends every transaction
    // committed after it. Not from the slot's own position (0/0): a server
    // that crashed has forgotten what it confirmed since its last
    // checkpoint, and its replay of older transactions would show consumers
    // old states again, cut short if this session is (docs/architecture.md,
    // "Resuming").
    let mut stream = match conn
        .start_replication(
            &config.slot,
            acks.durable(),
            publications,
            decoder.binary(),
            streaming,
        )
        .await
    {
        Ok(stream) => stream,
        Err(err) => return Exit::Failed(err),
    };
    let mut lease_lost = acks.lease.watch();
    tracing::info!(slot = %config.slot, "streaming");
    acks.telemetry.set_up(Component::Reader);
    let mut pending: Vec<LogItem> = Vec::with_capacity(BATCH_ITEMS);
    let mut status = tokio::time::interval(config.status_interval.min(Duration::from_secs(1)));
    status.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_status = Instant::now();
    let mut live = Liveness::new(timeout);
    if let Some(since) = lost_at.take() {
        tracing::info!(
            slot = %config.slot,
            "replication connection restored after {:.1}s",
            since.elapsed().as_secs_f64()
        );
    }

    loop {
        tokio::select! {
            biased;
            _ = lease_lost.changed() => {
                let why = lease_lost.borrow().clone();
                return Exit::LeaseLost(why.unwrap_or_else(|| "the lease is gone".into()));
            }
            _ = shutdown.changed() => {
                if *shutdown.borrow() {
                    // Partial transactions are harmless: without their
                    // commit nothing of them is acknowledged.
                    if !pending.is_empty() && items.send(std::mem::take(&mut pending)).await.is_err() {
                        return Exit::Stop(stream);
                    }
                    return Exit::Stop(stream);
                }
            }
            changed = acks.rx.changed() => {
                // The pipeline made more durable: tell the server now, so
                // the slot releases WAL promptly.
                if changed.is_err() {
                    // The pipeline is gone (its sink failed): stop reading.
                    return Exit::Stop(stream);
                }
                acks.refresh();
                if acks.flushed > acks.last_sent_flush {
                    if let Err(err) = acks.send(&mut stream, false).await {
                        return Exit::Failed(err);
                    }
                    last_status = Instant::now();
                }
            }
            _ = status.tick() => {
                // Acknowledge promptly when the pipeline moved forward, and
                // at least every status_interval to keep the session alive;
                // ask for a reply when the server has been quiet.
                acks.refresh();
                let check = live.check();
                if check == Check::Dead {
                    return Exit::Failed(live.error());
                }
                let ping = check == Check::Ping;
                if ping || acks.flushed > acks.last_sent_flush || last_status.elapsed() >= config.status_interval {
                    if let Err(err) = acks.send(&mut stream, ping).await {
                        return Exit::Failed(err);
                    }
                    last_status = Instant::now();
                }
            }
            message = stream.next() => {
                let message = match message {
                    Ok(Some(message)) => message,
                    Ok(None) => return Exit::Failed(ReplicationError::Protocol("server ended the replication stream".into())),
                    Err(err) => return Exit::Failed(err),
                };
                live.alive();
                match message {
                    ReplicationMessage::XLogData { wal_start, wal_end, data, .. } => {
                        acks.received = acks.received.max(wal_end);
                        acks.read_data = acks.read_data.max(wal_start);
                        let routed = match streams.as_mut() {
                            Some(streams) => match streams.route(wal_start, data).await {
                                Ok(route) => route,
                                Err(RouteError::Decode(err)) => return Exit::Failed(ReplicationError::Protocol(format!("at {}: {err}", format_lsn(wal_start)))),
                                // A full or missing disk: the next session
                                // receives the transaction again.
                                Err(RouteError::Streamed(err)) => return Exit::Failed(ReplicationError::Io(std::io::Error::other(err.to_string()))),
                            },
                            None => Route::Decode(data),
                        };
                        if let Route::Decode(data) = &routed {
                            refresh_shape(decoder, &mut acks.catalog, data).await;
                        }
                        let decoded = match routed {
                            Route::Decode(data) => decoder.handle(wal_start, data, &mut pending),
                            Route::Held => Ok(()),
                            Route::Commit(replay) => {
                                if replay.spilled_bytes() > 0 {
                                    tracing::info!(
                                        xid = replay.xid(),
                                        "streamed transaction {} went {:.1} MiB past source.streaming_memory_mb = {}: read back from {}",
                                        replay.xid(),
                                        replay.spilled_bytes() as f64 / f64::from(1 << 20),
                                        config.streaming_memory >> 20,
                                        config.spill_dir.display()
                                    );
                                }
                                let replayed = replay_commit(*replay, decoder, &mut pending, items, &mut stream, acks, &mut status).await;
                                // Replaying, the reader did not read.
                                live.alive();
                                match replayed {
                                    Replayed::Decoded(result) => result,
                                    Replayed::PipelineGone => return Exit::Stop(stream),
                                    Replayed::Failed(err) => return Exit::Failed(err),
                                }
                            }
                        };
                        match decoded {
                            Ok(()) => {}
                            Err(DecoderError::NeedsText(why)) if decoder.binary() => {
                                // Ended cleanly, the slot is free sooner
                                // for the text session.
                                let _ = stream.finish().await;
                                return Exit::NeedsText(why);
                            }
                            Err(err) => return Exit::Failed(ReplicationError::Protocol(err.to_string())),
                        }
                    }
                    ReplicationMessage::Keepalive { wal_end, reply_requested, .. } => {
                        acks.received = acks.received.max(wal_end);
                        // Between the blocks of a streamed transaction a
                        // keepalive is a safe position too: nothing of it is
                        // acknowledged before its commit, which comes later.
                        if !decoder.in_transaction() && !streams.as_ref().is_some_and(|s| s.in_block()) {
                            pending.push(LogItem::Heartbeat(Position::from_u64(wal_end)));
                        }
                        if reply_requested {
                            if let Err(err) = acks.send(&mut stream, false).await {
                                return Exit::Failed(err);
                            }
                            last_status = Instant::now();
                        }
                    }
                }
                if pending.len() >= BATCH_ITEMS || (!pending.is_empty() && !stream.has_buffered_message()) {
                    let batch = std::mem::replace(&mut pending, Vec::with_capacity(BATCH_ITEMS));
                    let handed = hand_over(batch, items, &mut stream, acks, &mut status).await;
                    // Waiting for the pipeline, the reader did not read:
                    // that is not the server's silence.
                    live.alive();
                    match handed {
                        Ok(true) => {}
                        Ok(false) => return Exit::Stop(stream),
                        Err(err) => return Exit::Failed(err),
                    }
                }
            }
        }
    }
}

/// `SHOW server_version_num` on the replication connection.
async fn server_version(conn: &mut ReplicationConnection) -> Result<u32, ReplicationError> {
    let rows = conn.simple_query("SHOW server_version_num").await?;
    let text = rows
        .first()
        .and_then(|r| r.first().cloned().flatten())
        .unwrap_or_default();
    text.trim()
        .parse()
        .map_err(|_| ReplicationError::Protocol(format!("server_version_num is '{text}'")))
}

/// Before a Relation announcing a captured table's new shape: the
/// catalog's view of the table, for the decoder.
async fn refresh_shape(decoder: &mut Decoder, catalog: &mut ShapeRefresh, data: &bytes::Bytes) {
    if let Some(table) = decoder.relation_to_refresh(data) {
        if let Some(info) = catalog.read(&table).await {
            decoder.learn_catalog(info);
        }
    }
}

/// How the replay of a streamed transaction ended.
enum Replayed {
    /// Everything went to the decoder; its result.
    Decoded(Result<(), DecoderError>),
    PipelineGone,
    Failed(ReplicationError),
}

/// Decode a committed streamed transaction into `pending`, handing over
/// full batches as it goes: a transaction of millions of rows never sits
/// decoded in memory.
async fn replay_commit(
    mut replay: Replay,
    decoder: &mut Decoder,
    pending: &mut Vec<LogItem>,
    items: &mpsc::Sender<Vec<LogItem>>,
    stream: &mut ReplicationStream,
    acks: &mut Acks,
    status: &mut tokio::time::Interval,
) -> Replayed {
    loop {
        let (lsn, message) = match replay.next().await {
            Ok(Some(next)) => next,
            Ok(None) => return Replayed::Decoded(Ok(())),
            Err(err) => {
                return Replayed::Failed(ReplicationError::Io(std::io::Error::other(
                    err.to_string(),
                )))
            }
        };
        refresh_shape(decoder, &mut acks.catalog, &message).await;
        if let Err(err) = decoder.handle(lsn, message, pending) {
            return Replayed::Decoded(Err(err));
        }
        if pending.len() >= BATCH_ITEMS {
            let batch = std::mem::replace(pending, Vec::with_capacity(BATCH_ITEMS));
            match hand_over(batch, items, stream, acks, status).await {
                Ok(true) => {}
                Ok(false) => return Replayed::PipelineGone,
                Err(err) => return Replayed::Failed(err),
            }
        }
    }
}

/// Send a batch to the pipeline, answering the server while waiting for
/// room. `Ok(false)` when the pipeline is gone.
async fn hand_over(
    batch: Vec<LogItem>,
    items: &mpsc::Sender<Vec<LogItem>>,
    stream: &mut ReplicationStream,
    acks: &mut Acks,
    status: &mut tokio::time::Interval,
) -> Result<bool, ReplicationError> {
    loop {
        tokio::select! {
            permit = items.reserve() => {
                return match permit {
                    Ok(permit) => {
                        permit.send(batch);
                        Ok(true)
                    }
                    Err(_) => Ok(false),
                };
            }
            _ = status.tick() => acks.send(stream, false).await?,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connect::ConnectConfig;

    fn config() -> PostgresConfig {
        let connect = ConnectConfig::parse("postgres://u@localhost/db");
        PostgresConfig::new(connect.unwrap_or_else(|e| panic!("{e}")), Vec::new())
    }

    #[test]
    fn an_invalidated_slot_is_fatal_and_named() {
        let err = ReplicationError::Server {
            code: "55000".into(),
            message: "can no longer get changes from replication slot \"cdc\"".into(),
        };
        let line = fatal(&config(), &err).unwrap_or_default();
        assert!(
            line.starts_with("replication slot 'cdc' was invalidated"),
            "{line}"
        );
        assert!(!line.contains('\n'));
        let pg15 = ReplicationError::Server {
            code: "55000".into(),
            message: "cannot read from logical replication slot \"cdc\" (This slot has been invalidated because it exceeded the maximum reserved size.)".into(),
        };
        assert!(fatal(&config(), &pg15).is_some());
        // Other 55000 errors are not a lost slot.
        let other = ReplicationError::Server {
            code: "55000".into(),
            message: "something else".into(),
        };
        assert!(fatal(&config(), &other).is_none());
    }
}
