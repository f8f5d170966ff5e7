//! The stream's position, stored in the source deployment next to the
//! snapshot progress (`<cdc>.positions`, one document per capture name): a
//! resume token and its cluster time. No local state: any host can run the
//! next start.
//!
//! Like PostgreSQL's record, it is a lower bound of what was acknowledged,
//! written every few seconds and exactly at a clean stop. Unlike a slot,
//! the server keeps nothing for us: the oplog holds changes for its own
//! window, and a stored token older than that window is a lost position
//! (`ChangeStreamHistoryLost`), judged at start by [`crate::stream`].

use std::time::Duration;

use async_trait::async_trait;
use bson::{doc, DateTime, Document, Timestamp};
use cdc_engine::{Position, PositionStore, SourceError};
use mongodb::options::WriteConcern;
use mongodb::{Client, Collection};

use crate::client::{classify, describe};
use crate::config::MongoConfig;
use crate::resume::{cluster_time_of_position, position_of, token_of, ClusterTime};

/// How often the running engine writes its acknowledged position.
pub const WRITE_INTERVAL: Duration = Duration::from_secs(3);

/// The positions collection, in the signal collection's database.
pub fn positions(client: &Client, config: &MongoConfig) -> Collection<Document> {
    client
        .database(config.state_database())
        .collection("positions")
}

/// What a previous run stored.
#[derive(Debug, Clone)]
pub struct Record {
    pub token: Document,
    pub position: Position,
    pub cluster_time: ClusterTime,
    pub clean: bool,
}

/// The stored record of `config.name`, if any.
pub async fn load(client: &Client, config: &MongoConfig) -> Result<Option<Record>, SourceError> {
    let what = format!("reading {}.positions", config.state_database());
    let Some(found) = positions(client, config)
        .find_one(doc! { "_id": &config.name })
        .await
        .map_err(|e| classify(&e, &what))?
    else {
        return Ok(None);
    };
    let token = found
        .get_document("token")
        .map_err(|e| {
            SourceError::Fatal(format!(
                "{what}: record {:?} has no token: {e}",
                config.name
            ))
        })?
        .clone();
    let position = position_of(&token)
        .map_err(|e| SourceError::Fatal(format!("{what}: record {:?}: {e}", config.name)))?;
    let cluster_time = cluster_time_of_position(&position)
        .map_err(|e| SourceError::Fatal(format!("{what}: record {:?}: {e}", config.name)))?;
    Ok(Some(Record {
        token,
        position,
        cluster_time,
        clean: found.get_bool("clean").unwrap_or(false),
    }))
}

/// For `cdc status`: the stored position, in one line.
pub async fn describe_record(client: &Client, config: &MongoConfig) -> Result<String, SourceError> {
    Ok(match load(client, config).await? {
        Some(record) => format!(
            "position of '{}': {}{}",
            config.name,
            show_time(record.cluster_time),
            if record.clean { " (clean stop)" } else { "" }
        ),
        None => format!(
            "position of '{}': none stored (not started yet)",
            config.name
        ),
    })
}

/// Writes the record; `clean` only at a clean stop.
pub async fn write(
    client: &Client,
    config: &MongoConfig,
    position: &Position,
    clean: bool,
) -> Result<(), String> {
    let token = token_of(position).map_err(|e| e.to_string())?;
    let time = cluster_time_of_position(position).map_err(|e| e.to_string())?;
    positions(client, config)
        .update_one(
            doc! { "_id": &config.name },
            doc! { "$set": {
                "token": token,
                "cluster_time": Timestamp { time: time.seconds, increment: time.increment },
                "clean": clean,
                "written_at": DateTime::now(),
            } },
        )
        .upsert(true)
        .write_concern(WriteConcern::majority())
        .await
        .map(|_| ())
        .map_err(|e| describe(&e))
}

/// Remembers a lost position on the record, for `cdc status`.
pub async fn note_loss(client: &Client, config: &MongoConfig, range: &str) {
    let result = positions(client, config)
        .update_one(
            doc! { "_id": &config.name },
            doc! { "$set": { "last_loss": range, "last_loss_at": DateTime::now() } },
        )
        .upsert(true)
        .await;
    if let Err(e) = result {
        tracing::warn!(
            "cannot note the lost position on {}.positions: {}",
            config.state_database(),
            describe(&e)
        );
    }
}

/// The store the engine's position writer writes to.
pub struct MongoPositionStore {
    pub client: Client,
    pub config: std::sync::Arc<MongoConfig>,
}

#[async_trait]
impl PositionStore for MongoPositionStore {
    async fn write(&self, position: &Position, clean: bool) -> Result<(), String> {
        write(&self.client, &self.config, position, clean).await
    }

    fn describe(&self) -> String {
        format!(
            "{}.positions for '{}'",
            self.config.state_database(),
            self.config.name
        )
    }
}

/// `Timestamp(s, i)` as the shell prints it, for log lines.
pub fn show_time(time: ClusterTime) -> String {
    format!("Timestamp({}, {})", time.seconds, time.increment)
}
