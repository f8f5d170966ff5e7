//! Changes to a captured partitioned table's partitions that PostgreSQL
//! does not publish through the root (docs/architecture.md, "Partitioned
//! tables and tables without a key"; README, "Partitioned tables").
//!
//! With `publish_via_partition_root`, pgoutput skips a `TRUNCATE` of one
//! partition, and `ATTACH`, `DETACH` and `DROP` of a partition are no log
//! records at all, so rows enter or leave the root without an event. A
//! watcher, on its own connection, reads each root's leaves every status
//! interval (their oids and relfilenodes) and, on a change, writes a marker
//! into the log, ordered with the changes around it:
//! - a leaf with a new relfilenode (truncated, or rewritten by `VACUUM FULL`,
//!   `CLUSTER` or an `ALTER TABLE`): a resync snapshot of the root, whose
//!   markers let a consumer drop the rows it did not see again;
//! - a new leaf holding rows (attached with its rows, or filled through
//!   the root meanwhile): a snapshot of the root filtered to that leaf;
//! - a leaf gone (detached, dropped): one warning; its rows stay with
//!   consumers (they usually go for retention, which consumers apply too).
//!
//! Changes made while cdc is stopped are not seen: the first check of a run
//! is the baseline.

use std::collections::HashMap;

use cdc_engine::TableRef;
use tokio::sync::watch;
use tokio_postgres::Client;

use crate::catalog::quote_table;
use crate::config::PostgresConfig;
use crate::connect::describe_pg_error;
use crate::late_tables::LateTables;

/// Prefix of the transactional message with what the log lacks.
pub const PARTITIONS_PREFIX: &str = "cdc.partitions";

/// What a marker asks the decoder for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Marker {
    /// Snapshot `table` again, bracketed by resync markers.
    Resync { table: TableRef, reason: String },
    /// Snapshot the rows of `table` that live in partition `leaf` (an oid).
    Leaf { table: TableRef, leaf: u32 },
}

impl Marker {
    pub fn to_json(&self) -> String {
        match self {
            Marker::Resync { table, reason } => serde_json::json!({
                "schema": table.schema, "name": table.name, "resync": reason,
            }),
            Marker::Leaf { table, leaf } => serde_json::json!({
                "schema": table.schema, "name": table.name, "leaf": leaf,
            }),
        }
        .to_string()
    }

    pub fn parse(content: &[u8]) -> Option<Marker> {
        let value: serde_json::Value = serde_json::from_slice(content).ok()?;
        let table = TableRef::new(value["schema"].as_str()?, value["name"].as_str()?);
        if let Some(reason) = value["resync"].as_str() {
            return Some(Marker::Resync {
                table,
                reason: reason.to_owned(),
            });
        }
        let leaf = u32::try_from(value["leaf"].as_u64()?).ok()?;
        Some(Marker::Leaf { table, leaf })
    }
}

/// A root's leaves: oid → (name, relfilenode).
type Leaves = HashMap<u32, (TableRef, u32)>;

const LEAVES_SQL: &str = "SELECT c.oid, n.nspname::text, c.relname::text, c.relfilenode \
     FROM pg_partition_tree($1::oid::regclass) t \
     JOIN pg_class c ON c.oid = t.relid JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE t.isleaf";

async fn leaves(client: &Client, root: u32) -> Result<Leaves, String> {
    let rows = client
        .query(LEAVES_SQL, &[&root])
        .await
        .map_err(|e| describe_pg_error(&e))?;
    let mut out = HashMap::with_capacity(rows.len());
    for row in rows {
        let read = || -> Result<(u32, String, String, u32), tokio_postgres::Error> {
            Ok((
                row.try_get(0)?,
                row.try_get(1)?,
                row.try_get(2)?,
                row.try_get(3)?,
            ))
        };
        let (oid, schema, name, filenode) = read().map_err(|e| describe_pg_error(&e))?;
        out.insert(oid, (TableRef::new(schema, name), filenode));
    }
    Ok(out)
}

/// What changed from `before` to `now` for `root`: the markers to write and
/// the lines to log. A new leaf's rows are looked at by `has_rows`.
fn changes(root: &TableRef, before: &Leaves, now: &Leaves) -> (Vec<Marker>, Vec<String>, Vec<u32>) {
    let mut markers = Vec::new();
    let mut gone = Vec::new();
    let mut rewritten = Vec::new();
    for (oid, (name, filenode)) in before {
        match now.get(oid) {
            None => gone.push(format!(
                "partition {name} left {root} (detached or dropped): its rows left {root} without \
                 events, and consumers keep them; to drop them downstream too, run a snapshot of \
                 {root} and follow its resync markers, or delete them by the partition's bounds"
            )),
            Some((_, now_filenode)) if now_filenode != filenode => rewritten.push(name.to_string()),
            Some(_) => {}
        }
    }
    if !rewritten.is_empty() {
        rewritten.sort();
        markers.push(Marker::Resync {
            table: root.clone(),
            reason: format!(
                "partition {} truncated or rewritten (PostgreSQL publishes no event for it through the root)",
                rewritten.join(", ")
            ),
        });
    }
    let added: Vec<u32> = now
        .keys()
        .filter(|oid| !before.contains_key(oid))
        .copied()
        .collect();
    (markers, gone, added)
}

/// Watch the partitions of `roots` (captured partitioned tables, with their
/// oids) and of partitioned tables captured later, until `shutdown`.
pub(crate) fn spawn(
    config: &PostgresConfig,
    roots: Vec<(TableRef, u32)>,
    late: LateTables,
    mut shutdown: watch::Receiver<bool>,
) {
    let config = config.clone();
    tokio::spawn(async move {
        let mut client: Option<Client> = None;
        let mut known: HashMap<TableRef, (u32, Leaves)> = HashMap::new();
        loop {
            if client.as_ref().is_none_or(Client::is_closed) {
                client = config.connect.connect_sql().await.ok();
            }
            if let Some(c) = &client {
                let mut watched = roots.clone();
                watched.extend(
                    late.tables()
                        .into_iter()
                        .filter_map(|t| late.get(&t))
                        .filter(|info| info.partitioned)
                        .map(|info| (info.table, info.oid)),
                );
                for (root, oid) in watched {
                    if let Err(err) = check(c, &root, oid, &mut known).await {
                        tracing::debug!("reading the partitions of {root}: {err}");
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(config.status_interval) => {}
                _ = shutdown.changed() => return,
            }
        }
    });
}

async fn check(
    client: &Client,
    root: &TableRef,
    oid: u32,
    known: &mut HashMap<TableRef, (u32, Leaves)>,
) -> Result<(), String> {
    let now = leaves(client, oid).await?;
    let Some((known_oid, before)) = known.get(root) else {
        known.insert(root.clone(), (oid, now));
        return Ok(());
    };
    if *known_oid != oid {
        // Dropped and created again: a new table, whose rows the log has.
        known.insert(root.clone(), (oid, now));
        return Ok(());
    }
    let (mut markers, gone, added) = changes(root, before, &now);
    for line in gone {
        tracing::warn!("{line}");
    }
    for leaf in added {
        let Some((name, _)) = now.get(&leaf) else {
            continue;
        };
        if has_rows(client, name).await? {
            markers.push(Marker::Leaf {
                table: root.clone(),
                leaf,
            });
        }
    }
    for marker in &markers {
        client
            .execute(
                "SELECT pg_logical_emit_message(true, $1::text, $2::text)",
                &[&PARTITIONS_PREFIX, &marker.to_json()],
            )
            .await
            .map_err(|e| describe_pg_error(&e))?;
    }
    // Only once the markers are in the log: a failed write is tried again.
    known.insert(root.clone(), (oid, now));
    Ok(())
}

/// Whether the leaf `table` (named by the catalog) holds a row.
async fn has_rows(client: &Client, table: &TableRef) -> Result<bool, String> {
    let sql = format!("SELECT EXISTS (SELECT 1 FROM {})", quote_table(table));
    client
        .query_one(&sql, &[])
        .await
        .and_then(|r| r.try_get(0))
        .map_err(|e| describe_pg_error(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_round_trip() {
        let table = TableRef::new("s", "m");
        for marker in [
            Marker::Resync {
                table: table.clone(),
                reason: "r".into(),
            },
            Marker::Leaf {
                table: table.clone(),
                leaf: 42,
            },
        ] {
            assert_eq!(Marker::parse(marker.to_json().as_bytes()), Some(marker));
        }
        assert_eq!(Marker::parse(b"{}"), None);
    }

    #[test]
    fn truncated_detached_and_added_leaves_are_told_apart() {
        let root = TableRef::new("public", "m");
        let leaf = |name: &str| TableRef::new("public", name);
        let before: Leaves = [(1, (leaf("a"), 10)), (2, (leaf("b"), 20))].into();
        let now: Leaves = [(1, (leaf("a"), 11)), (3, (leaf("c"), 30))].into();
        let (markers, gone, added) = changes(&root, &before, &now);
        assert!(
            matches!(&markers[..], [Marker::Resync { reason, .. }] if reason.contains("public.a"))
        );
        assert!(gone.len() == 1 && gone[0].contains("partition public.b left public.m"));
        assert_eq!(added, vec![3]);
    }
}
