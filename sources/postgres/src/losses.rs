//! Losses a running engine finds: its slot dropped, invalidated or
//! advanced while the connection was down, or its publication dropped.
//!
//! Start-up guards judge the slot once (`positions.rs`). While cdc runs and
//! its connection is down, the slot is free for anyone: it can be dropped,
//! or advanced by `pg_replication_slot_advance` or another consumer. A
//! session that then starts from the slot's confirmed position would skip
//! the changes in between without a word. So each session first reads the
//! slot on its own replication connection and compares it with what this
//! run acknowledged (docs/architecture.md, "The position and its guards").

use std::time::Duration;

use cdc_engine::SourceError;

use crate::config::{PostgresConfig, SlotLostPolicy};
use crate::replication::{format_lsn, parse_lsn, ReplicationConnection, ReplicationError};

/// The slot as the server has it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SlotNow {
    pub wal_status: Option<String>,
    pub confirmed: Option<u64>,
}

/// A loss found before a reconnect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lost {
    /// The guard's name, as `cdc status` shows it.
    pub guard: &'static str,
    /// What happened, naming the slot (the policy's fix is added later).
    pub cause: String,
}

/// Read `slot` on the replication connection (a simple query, allowed on a
/// `replication=database` connection). The name was validated as a slot
/// name (lower-case letters, digits, underscores) before it got here.
pub(crate) async fn read(
    conn: &mut ReplicationConnection,
    slot: &str,
) -> Result<Option<SlotNow>, ReplicationError> {
    debug_assert!(crate::catalog::valid_slot_name(slot));
    let sql = format!(
        "SELECT wal_status, confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = '{}'",
        slot.replace('\'', "''")
    );
    let rows = conn.simple_query(&sql).await?;
    Ok(rows.into_iter().next().map(|row| {
        let mut fields = row.into_iter();
        let wal_status = fields.next().flatten();
        let confirmed = fields.next().flatten().as_deref().and_then(parse_lsn);
        SlotNow {
            wal_status,
            confirmed,
        }
    }))
}

/// Judge the slot against `acknowledged`, the most this run can have made
/// the server confirm (the slot's position when the run began, or the last
/// flush position it sent since).
pub(crate) fn judge(slot_name: &str, slot: Option<&SlotNow>, acknowledged: u64) -> Option<Lost> {
    let Some(slot) = slot else {
        return Some(Lost {
            guard: "slot missing",
            cause: format!(
                "replication slot '{slot_name}' is gone although cdc acknowledged up to {} through it (dropped while cdc's connection was down?)",
                format_lsn(acknowledged)
            ),
        });
    };
    if slot.wal_status.as_deref() == Some("lost") {
        return Some(Lost {
            guard: "slot invalidated",
            cause: format!(
                "replication slot '{slot_name}' was invalidated while cdc streamed (wal_status = 'lost': the server removed WAL it still needed, see max_slot_wal_keep_size)"
            ),
        });
    }
    match slot.confirmed {
        Some(confirmed) if confirmed > acknowledged => Some(Lost {
            guard: "slot advanced",
            cause: format!(
                "replication slot '{slot_name}' was advanced to {} behind cdc's back while its connection was down (cdc acknowledged up to {}: pg_replication_slot_advance or another consumer)",
                format_lsn(confirmed),
                format_lsn(acknowledged)
            ),
        }),
        _ => None,
    }
}

/// The publication a server error says is missing (`publication "x" does
/// not exist`, SQLSTATE 42704).
pub(crate) fn dropped_publication(err: &ReplicationError) -> Option<String> {
    let ReplicationError::Server { message, .. } = err else {
        return None;
    };
    if err.code() != Some("42704") {
        return None;
    }
    let rest = message.split_once("publication \"")?.1;
    let (name, tail) = rest.split_once('"')?;
    tail.contains("does not exist").then(|| name.to_owned())
}

/// A publication dropped while cdc ran. pgoutput looks publications up as
/// of each change it decodes, so the changes made while it was missing can
/// never be decoded by this slot: every later session fails on the first
/// of them. They are lost to the log, like a lost slot's. Under
/// `resnapshot` the slot is dropped here, so the run starting over finds
/// it missing, recreates the publication and the slot, and snapshots every
/// table between resync markers; under `fail` every run stops on it.
pub(crate) async fn publication_lost(
    config: &PostgresConfig,
    err: &ReplicationError,
    acknowledged: u64,
) -> SourceError {
    let name = dropped_publication(err).unwrap_or_else(|| config.publication.clone());
    let what = format!(
        "publication '{name}' was dropped while cdc ran ({err}): the slot cannot decode the changes made while it was missing, so changes after {} are lost",
        format_lsn(acknowledged)
    );
    if config.on_slot_lost == SlotLostPolicy::Fail {
        return SourceError::PositionLost(format!(
            "{what}; set source.on_slot_lost = \"resnapshot\" and run cdc again to recreate the publication and replication slot '{}' and snapshot every table, or drop the slot and delete its row of cdc.positions to start over without them",
            config.slot
        ));
    }
    match drop_slot(config).await {
        Ok(()) => SourceError::PositionLost(format!(
            "{what}; replication slot '{}' dropped: cdc recreates the publication and the slot and snapshots every table (on_slot_lost = \"resnapshot\")",
            config.slot
        )),
        Err(why) => SourceError::Fatal(format!(
            "{what}; replication slot '{}' could not be dropped to start over ({why}): drop it, then run cdc again",
            config.slot
        )),
    }
}

/// Drop the slot once its walsender has let go of it (it exits after the
/// error that ended the session).
async fn drop_slot(config: &PostgresConfig) -> Result<(), String> {
    let client = config
        .connect
        .connect_sql()
        .await
        .map_err(|e| e.to_string())?;
    let mut last = String::new();
    for _ in 0..50 {
        match client
            .execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1",
                &[&config.slot],
            )
            .await
        {
            Ok(_) => return Ok(()),
            // 55006: still active while the walsender exits.
            Err(e) => last = crate::connect::describe_pg_error(&e),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(status: &str, confirmed: u64) -> SlotNow {
        SlotNow {
            wal_status: Some(status.into()),
            confirmed: Some(confirmed),
        }
    }

    #[test]
    fn a_slot_at_or_behind_what_cdc_acknowledged_is_fine() {
        assert_eq!(judge("cdc", Some(&slot("reserved", 100)), 100), None);
        // Behind: an acknowledgement the server had not processed yet.
        assert_eq!(judge("cdc", Some(&slot("extended", 90)), 100), None);
        let fresh = SlotNow {
            wal_status: Some("reserved".into()),
            confirmed: None,
        };
        assert_eq!(judge("cdc", Some(&fresh), 100), None);
    }

    #[test]
    fn a_missing_publication_is_named_from_the_server_error() {
        let err = |code: &str, message: &str| ReplicationError::Server {
            code: code.into(),
            message: message.into(),
        };
        assert_eq!(
            dropped_publication(&err("42704", "publication \"cdc\" does not exist")),
            Some("cdc".into())
        );
        assert_eq!(
            dropped_publication(&err("42704", "replication slot \"cdc\" does not exist")),
            None
        );
        assert_eq!(
            dropped_publication(&err("XX000", "publication \"cdc\" does not exist")),
            None
        );
    }

    #[test]
    fn missing_invalidated_and_advanced_slots_are_losses_named_by_their_guard() {
        let missing = judge("cdc", None, 0x1_0000).unwrap();
        assert_eq!(missing.guard, "slot missing");
        assert!(missing.cause.contains("'cdc' is gone"), "{}", missing.cause);
        assert!(missing.cause.contains("0/10000"), "{}", missing.cause);

        let lost = judge("cdc", Some(&slot("lost", 10)), 100).unwrap();
        assert_eq!(lost.guard, "slot invalidated");

        let advanced = judge("cdc", Some(&slot("reserved", 0x2_0000)), 0x1_0000).unwrap();
        assert_eq!(advanced.guard, "slot advanced");
        assert!(
            advanced.cause.contains("advanced to 0/20000"),
            "{}",
            advanced.cause
        );
        assert!(
            advanced.cause.contains("up to 0/10000"),
            "{}",
            advanced.cause
        );
    }
}
