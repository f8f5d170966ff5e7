//! `cdc check` with `source.failover_slot`: is the failover slot kept by a
//! standby that a promotion would make the primary (PostgreSQL 17+)?
//!
//! Two sides must be set up. The primary must hold logical changes back
//! until the standbys have them (`synchronized_standby_slots`, naming their
//! physical slots), else cdc can read changes a promoted standby never had.
//! Each standby must copy the slot (`sync_replication_slots = on`, with
//! `hot_standby_feedback = on`). The primary's side is read on cdc's own
//! connection; a standby's on a connection to each other host of the URL's
//! host list (the list a failover follows), when there is one.

use tokio_postgres::Client;

use crate::config::PostgresConfig;
use crate::connect::Endpoint;
use crate::setup::{sql_err, Finding, SetupError};

/// The findings for the primary (`client`) and each standby of the URL.
pub(crate) async fn findings(
    client: &Client,
    config: &PostgresConfig,
) -> Result<Vec<Finding>, SetupError> {
    let read = |e| sql_err("reading failover settings")(e);
    let row = client
        .query_one(
            "SELECT current_setting('server_version_num')::int, current_setting('server_version')",
            &[],
        )
        .await
        .map_err(read)?;
    let version: i32 = row.try_get(0).map_err(read)?;
    let version_text: String = row.try_get(1).map_err(read)?;
    if version < 170_000 {
        return Ok(vec![Finding::error(format!(
            "source.failover_slot needs PostgreSQL 17 or later, the server is {version_text}: unset it, or upgrade"
        ))]);
    }
    // Columns and settings of PostgreSQL 17.
    let row = client
        .query_one(
            "SELECT current_setting('synchronized_standby_slots'), \
             (SELECT failover::text FROM pg_replication_slots WHERE slot_name = $1)",
            &[&config.slot],
        )
        .await
        .map_err(read)?;
    let standby_slots: String = row.try_get(0).map_err(read)?;
    let slot_failover: Option<String> = row.try_get(1).map_err(read)?;
    let slot = &config.slot;
    let mut out = Vec::new();
    if slot_failover.as_deref() == Some("false") {
        out.push(Finding::warning(format!(
            "replication slot '{slot}' exists without FAILOVER: standbys will not keep it; run ALTER_REPLICATION_SLOT \"{slot}\" (FAILOVER true) on a replication connection while cdc is stopped"
        )));
    }
    let named = setting_list(&standby_slots);
    if named.is_empty() {
        out.push(Finding::warning(format!(
            "failover slot '{slot}': synchronized_standby_slots is empty, so cdc may receive changes a promoted standby never had: run ALTER SYSTEM SET synchronized_standby_slots = '<the standby's physical slot>' and SELECT pg_reload_conf(), and set sync_replication_slots = on (with hot_standby_feedback = on) on the standby"
        )));
    } else {
        out.extend(primary_slot_findings(client, slot, &named).await?);
    }
    for endpoint in config.connect.endpoints.iter().skip(1) {
        out.extend(standby_findings(config, endpoint, &named).await);
    }
    // Only the other hosts of a list are looked at: the first is the one
    // cdc's connection reached (or tried first).
    if config.connect.endpoints.len() < 2 {
        out.push(Finding::info(format!(
            "failover slot '{slot}': the URL names one host, so no standby was checked: list the standbys after the primary (with target_session_attrs=read-write) to follow a failover, or check sync_replication_slots = on and hot_standby_feedback = on on each standby"
        )));
    }
    Ok(out)
}

/// Each slot `synchronized_standby_slots` names must be an active
/// physical slot here: logical decoding waits for the named slots, so a
/// missing one stalls cdc for good and an inactive one until its standby
/// is back.
async fn primary_slot_findings(
    client: &Client,
    slot: &str,
    named: &[String],
) -> Result<Vec<Finding>, SetupError> {
    let read = |e| sql_err("reading the physical replication slots")(e);
    let rows = client
        .query(
            "SELECT slot_name::text, active FROM pg_replication_slots \
             WHERE slot_type = 'physical' AND slot_name::text = ANY($1)",
            &[&named],
        )
        .await
        .map_err(read)?;
    let mut out = Vec::new();
    let mut good = Vec::new();
    for name in named {
        let active = rows
            .iter()
            .find(|r| r.try_get::<_, String>(0).is_ok_and(|n| &n == name))
            .map(|r| r.try_get::<_, bool>(1))
            .transpose()
            .map_err(read)?;
        match active {
            None => out.push(Finding::error(format!(
                "synchronized_standby_slots names '{name}', which is not a physical replication slot on this server: logical decoding waits for it, so cdc would stall; create the standby's slot (SELECT pg_create_physical_replication_slot('{name}')) or fix the setting"
            ))),
            Some(false) => out.push(Finding::warning(format!(
                "synchronized_standby_slots names '{name}', but no standby streams through it now: cdc receives nothing until that standby is back; start it, or remove the slot from the setting"
            ))),
            Some(true) => good.push(name.as_str()),
        }
    }
    if out.is_empty() {
        out.push(Finding::info(format!(
            "failover slot '{slot}': the primary holds changes back until the standbys' slots {} have them (synchronized_standby_slots)",
            good.join(", ")
        )));
    }
    Ok(out)
}

/// A standby of the host list: it must copy the slot, and stream through
/// one of the slots the primary waits for.
async fn standby_findings(
    config: &PostgresConfig,
    endpoint: &Endpoint,
    named: &[String],
) -> Vec<Finding> {
    let slot = &config.slot;
    let client = match config.connect.at(endpoint).connect_sql().await {
        Ok(client) => client,
        Err(err) => {
            return vec![Finding::warning(format!(
                "host {endpoint} of the URL cannot be reached, so its slot synchronization is unchecked: {err}"
            ))]
        }
    };
    let row = match client
        .query_one(
            "SELECT pg_is_in_recovery(), current_setting('sync_replication_slots'), \
             current_setting('hot_standby_feedback'), current_setting('primary_slot_name')",
            &[],
        )
        .await
    {
        Ok(row) => row,
        Err(err) => {
            return vec![Finding::warning(format!(
                "host {endpoint}: its slot synchronization settings cannot be read: {}",
                crate::connect::describe_pg_error(&err)
            ))]
        }
    };
    let field = |i: usize| row.try_get::<_, String>(i).unwrap_or_default();
    if !row.try_get::<_, bool>(0).unwrap_or(false) {
        // Another primary of the list (or this one, reached twice).
        return Vec::new();
    }
    let (sync, feedback, own_slot) = (field(1), field(2), field(3));
    let mut out = Vec::new();
    if sync != "on" {
        out.push(Finding::warning(format!(
            "standby {endpoint}: sync_replication_slots is {sync}, so it does not keep failover slot '{slot}' and a promotion loses it: run ALTER SYSTEM SET sync_replication_slots = on and SELECT pg_reload_conf() there"
        )));
    }
    if feedback != "on" {
        out.push(Finding::warning(format!(
            "standby {endpoint}: hot_standby_feedback is {feedback}, which slot synchronization needs: run ALTER SYSTEM SET hot_standby_feedback = on and SELECT pg_reload_conf() there"
        )));
    }
    if own_slot.is_empty() || !named.contains(&own_slot) {
        let shown = if own_slot.is_empty() {
            "no physical slot (primary_slot_name is empty)".to_owned()
        } else {
            format!("physical slot '{own_slot}'")
        };
        out.push(Finding::warning(format!(
            "standby {endpoint} streams through {shown}, which synchronized_standby_slots on the primary does not name, so cdc may receive changes it never had: set primary_slot_name there and add that slot to synchronized_standby_slots"
        )));
    }
    if out.is_empty() {
        out.push(Finding::info(format!(
            "standby {endpoint} keeps failover slot '{slot}' (sync_replication_slots = on, hot_standby_feedback = on, its slot '{own_slot}' in synchronized_standby_slots)"
        )));
    }
    out
}

/// A list setting's names (`a, "b"`), unquoted.
fn setting_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(|s| s.trim().trim_matches('"').to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_settings_are_split_and_unquoted() {
        assert!(setting_list("").is_empty());
        assert!(setting_list("  ").is_empty());
        assert_eq!(setting_list("standby1"), ["standby1"]);
        assert_eq!(setting_list("a, \"b\",c"), ["a", "b", "c"]);
    }
}
