//! The nemesis workload: random transactions of 1 to 1000 changes over
//! tables keyed by an int, a uuid, a text and a composite key, and one whose
//! rows change their primary key, with whole transactions and savepoints
//! rolled back, and now and then an `execute-snapshot` signal. It keeps its
//! own history (every committed change per key, in commit order, and every
//! version rolled back), which the checks hold the sink's output against.
//!
//! It writes over the server's Unix socket, which no network fault touches,
//! and rides out a server crash: a COMMIT whose answer the lost connection
//! hid is looked up in `n_txlog`, where each transaction leaves its id.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The captured tables and their key columns.
pub const TABLES: [(&str, &[&str]); 5] = [
    ("n_int", &["id"]),
    ("n_uuid", &["id"]),
    ("n_text", &["id"]),
    ("n_comp", &["a", "b"]),
    ("n_pk", &["id"]),
];

/// `n_txlog` is not captured: it only answers whether a commit happened.
pub const DDL: &str = "
    CREATE TABLE n_int (id bigint PRIMARY KEY, v bigint NOT NULL);
    CREATE TABLE n_uuid (id uuid PRIMARY KEY, v bigint NOT NULL);
    CREATE TABLE n_text (id text PRIMARY KEY, v bigint NOT NULL);
    CREATE TABLE n_comp (a int, b text, v bigint NOT NULL, PRIMARY KEY (a, b));
    CREATE TABLE n_pk (id int PRIMARY KEY, v bigint NOT NULL);
    CREATE TABLE n_txlog (id bigint PRIMARY KEY);";

/// A row's table and its key as `common::key_of` renders the key columns
/// of the output's JSON (`5`, `"k-5-é"`, `3|"b7"`).
pub type Key = (String, String);

/// Per key, the committed states in commit order (`Some(v)`, or `None`:
/// deleted). Every write carries a version `v` of its own.
pub type KeyHistory = HashMap<Key, Vec<Option<i64>>>;

#[derive(Debug, Default, Clone)]
pub struct WorkloadStats {
    pub committed: u64,
    pub rolled_back: u64,
    pub savepoints_rolled_back: u64,
    /// Committed changes (a key change counts twice: a delete, a create).
    pub changes: u64,
    pub key_changes: u64,
    /// COMMITs whose outcome a lost connection hid, looked up afterwards.
    pub in_doubt: u64,
    pub snapshot_signals: u64,
}

#[derive(Debug, Default)]
pub struct Workload {
    pub history: KeyHistory,
    /// Versions written in a transaction or savepoint that was rolled back.
    pub rolled_back: HashSet<i64>,
    pub stats: WorkloadStats,
}

/// One change of an open transaction.
struct Change {
    key: Key,
    state: Option<i64>,
    /// The create of a row moved to a new key.
    moved: bool,
}

/// Runs transactions until `stop`; the history of what committed.
pub fn run(url: String, seed: u64, stop: Arc<AtomicBool>) -> Workload {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let mut rng = StdRng::seed_from_u64(seed);
        let uuids: Vec<String> = (0..300).map(|_| uuid(&mut rng)).collect();
        let mut w = Workload::default();
        let mut version: i64 = 0;
        let mut txid: i64 = 0;
        let mut client: Option<tokio_postgres::Client> = None;
        while !stop.load(Ordering::SeqCst) {
            let Some(c) = connected(&url, &mut client).await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            txid += 1;
            let size = match rng.random_range(0..100) {
                0..60 => rng.random_range(1..=3),
                60..96 => rng.random_range(4..=50),
                _ => rng.random_range(51..=1000),
            };
            let mut pending: Vec<Change> = Vec::new();
            let mut savepoint: Option<usize> = None;
            let body = async {
                c.batch_execute(&format!("BEGIN; INSERT INTO n_txlog VALUES ({txid})"))
                    .await?;
                for _ in 0..size {
                    if savepoint.is_none() && rng.random_ratio(1, 15) {
                        c.batch_execute("SAVEPOINT s").await?;
                        savepoint = Some(pending.len());
                    }
                    version += 1;
                    change(c, &mut rng, &uuids, version, &mut pending).await?;
                    if let Some(at) = savepoint {
                        if rng.random_ratio(1, 8) {
                            if rng.random_bool(0.5) {
                                c.batch_execute("ROLLBACK TO SAVEPOINT s").await?;
                                w.stats.savepoints_rolled_back += 1;
                                w.rolled_back
                                    .extend(pending.drain(at..).filter_map(|p| p.state));
                            } else {
                                c.batch_execute("RELEASE SAVEPOINT s").await?;
                            }
                            savepoint = None;
                        }
                    }
                }
                Ok::<_, tokio_postgres::Error>(())
            }
            .await;
            if body.is_err() {
                // Never committed: the server aborts a transaction whose
                // connection is gone, and so does a failed statement.
                client = None;
                w.rolled_back.extend(pending.iter().filter_map(|p| p.state));
                continue;
            }
            if rng.random_ratio(1, 10) {
                w.stats.rolled_back += 1;
                w.rolled_back.extend(pending.iter().filter_map(|p| p.state));
                if c.batch_execute("ROLLBACK").await.is_err() {
                    client = None;
                }
                continue;
            }
            let committed = match c.batch_execute("COMMIT").await {
                Ok(()) => true,
                Err(_) => {
                    client = None;
                    w.stats.in_doubt += 1;
                    committed(&url, &mut client, txid).await
                }
            };
            if committed {
                w.stats.committed += 1;
                w.stats.changes += pending.len() as u64;
                w.stats.key_changes += pending.iter().filter(|p| p.moved).count() as u64;
                for p in pending {
                    w.history.entry(p.key).or_default().push(p.state);
                }
            } else {
                w.rolled_back.extend(pending.iter().filter_map(|p| p.state));
            }
            if rng.random_ratio(1, 250) {
                if let Some(c) = connected(&url, &mut client).await {
                    if c.batch_execute(&snapshot_signal(&mut rng, txid))
                        .await
                        .is_ok()
                    {
                        w.stats.snapshot_signals += 1;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(rng.random_range(20..80))).await;
        }
        w
    })
}

/// One random change in the open transaction, recorded in `pending` when
/// it changed a row.
async fn change(
    c: &tokio_postgres::Client,
    rng: &mut StdRng,
    uuids: &[String],
    v: i64,
    pending: &mut Vec<Change>,
) -> Result<(), tokio_postgres::Error> {
    let delete = rng.random_ratio(1, 7);
    let (table, condition, values, key) = match rng.random_range(0..5) {
        0 => {
            let id = rng.random_range(0..300);
            (
                "n_int",
                format!("id = {id}"),
                format!("{id}, {v}"),
                id.to_string(),
            )
        }
        1 => {
            let id = &uuids[rng.random_range(0..uuids.len())];
            (
                "n_uuid",
                format!("id = '{id}'"),
                format!("'{id}', {v}"),
                format!("{id:?}"),
            )
        }
        2 => {
            let id = format!("k-{}-é", rng.random_range(0..300));
            (
                "n_text",
                format!("id = '{id}'"),
                format!("'{id}', {v}"),
                serde_json::Value::String(id).to_string(),
            )
        }
        3 => {
            let (a, b) = (
                rng.random_range(0..20),
                format!("b{}", rng.random_range(0..15)),
            );
            (
                "n_comp",
                format!("a = {a} AND b = '{b}'"),
                format!("{a}, '{b}', {v}"),
                format!("{a}|{b:?}"),
            )
        }
        _ => return key_table_change(c, rng, v, pending).await,
    };
    let conflict = if table == "n_comp" { "a, b" } else { "id" };
    let sql = if delete {
        format!("DELETE FROM {table} WHERE {condition}")
    } else {
        format!(
            "INSERT INTO {table} VALUES ({values}) ON CONFLICT ({conflict}) DO UPDATE SET v = excluded.v"
        )
    };
    if c.execute(sql.as_str(), &[]).await? == 1 {
        pending.push(Change {
            key: (table.to_string(), key),
            state: (!delete).then_some(v),
            moved: false,
        });
    }
    Ok(())
}

/// `n_pk`: upserts, deletes, and updates that move a row to a free key
/// (emitted as a delete of the old key and a create of the new one).
async fn key_table_change(
    c: &tokio_postgres::Client,
    rng: &mut StdRng,
    v: i64,
    pending: &mut Vec<Change>,
) -> Result<(), tokio_postgres::Error> {
    let id = rng.random_range(0..100);
    let key = |id: i32| ("n_pk".to_string(), id.to_string());
    match rng.random_range(0..10) {
        0..4 => {
            c.execute(
                format!("INSERT INTO n_pk VALUES ({id}, {v}) ON CONFLICT (id) DO UPDATE SET v = excluded.v").as_str(),
                &[],
            )
            .await?;
            pending.push(Change {
                key: key(id),
                state: Some(v),
                moved: false,
            });
        }
        4 => {
            if c.execute(format!("DELETE FROM n_pk WHERE id = {id}").as_str(), &[])
                .await?
                == 1
            {
                pending.push(Change {
                    key: key(id),
                    state: None,
                    moved: false,
                });
            }
        }
        _ => {
            let to = rng.random_range(0..100);
            let sql = format!(
                "UPDATE n_pk SET id = {to}, v = {v} WHERE id = {id} AND NOT EXISTS (SELECT FROM n_pk WHERE id = {to})"
            );
            if id != to && c.execute(sql.as_str(), &[]).await? == 1 {
                pending.push(Change {
                    key: key(id),
                    state: None,
                    moved: false,
                });
                pending.push(Change {
                    key: key(to),
                    state: Some(v),
                    moved: true,
                });
            }
        }
    }
    Ok(())
}

/// An `execute-snapshot` of some of the tables.
fn snapshot_signal(rng: &mut StdRng, txid: i64) -> String {
    let mut tables: Vec<String> = TABLES
        .iter()
        .filter(|_| rng.random_bool(0.5))
        .map(|(t, _)| format!("\"public.{t}\""))
        .collect();
    if tables.is_empty() {
        tables.push(format!("\"public.{}\"", TABLES[0].0));
    }
    format!(
        "INSERT INTO cdc.signal VALUES ('nemesis-{txid}', 'execute-snapshot', \
         '{{\"data-collections\": [{}], \"type\": \"incremental\"}}')",
        tables.join(", ")
    )
}

fn uuid(rng: &mut StdRng) -> String {
    let hex = format!("{:032x}", rng.random::<u128>());
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// Whether transaction `txid` committed, asked once a connection is back.
async fn committed(url: &str, client: &mut Option<tokio_postgres::Client>, txid: i64) -> bool {
    loop {
        if let Some(c) = connected(url, client).await {
            if let Ok(row) = c
                .query_opt("SELECT 1 FROM n_txlog WHERE id = $1", &[&txid])
                .await
            {
                return row.is_some();
            }
        }
        *client = None;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The connection, reconnected when it is gone.
async fn connected<'a>(
    url: &str,
    client: &'a mut Option<tokio_postgres::Client>,
) -> Option<&'a tokio_postgres::Client> {
    if client
        .as_ref()
        .is_none_or(tokio_postgres::Client::is_closed)
    {
        *client = match tokio_postgres::connect(url, tokio_postgres::NoTls).await {
            Ok((c, connection)) => {
                tokio::spawn(connection);
                Some(c)
            }
            Err(_) => None,
        };
    }
    client.as_ref()
}
