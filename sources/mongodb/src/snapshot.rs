//! DBLog snapshots of collections: watermarks are inserts into the signal
//! collection, chunks are `_id` index ranges, and the engine's window
//! merger folds them into the stream as for any source.
//!
//! * A chunk is read in one causally consistent session, with read concern
//!   `majority`, after the session's own majority write of the low
//!   watermark: the server reads at a cluster time at or after it. The
//!   read's `operationTime` is checked against the watermark's, and a chunk
//!   read before it is discarded (read again).
//! * Chunks run over the `_id` index (`hint`, `min`, `max`), in BSON order
//!   across `_id` types (see [`crate::keys`]).
//! * There is no torn-chunk hazard to check (a read sees whole transactions
//!   at one cluster time), so chunks carry no read snapshot.
//! * Progress lives in `<cdc>.snapshots`, one document per capture name.

use std::sync::Arc;

use async_trait::async_trait;
use bson::{doc, Bson, DateTime, Document, Timestamp};
use cdc_engine::merger::ChunkRow;
use cdc_engine::scheduler::{ChunkRequest, SnapshotState};
use cdc_engine::snapshot::{ChunkSource, SelectedChunk, SnapshotError};
use cdc_engine::{Row, TableRef, Value, DOCUMENT_COLUMN};
use cdc_signal::{SNAPSHOT_WINDOW_CLOSE, SNAPSHOT_WINDOW_OPEN};
use futures_util::TryStreamExt;
use mongodb::options::{ReadConcern, WriteConcern};
use mongodb::{Client, ClientSession, Collection};
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};

use crate::client::describe;
use crate::config::MongoConfig;
use crate::extjson;
use crate::keys;
use crate::translate::RESYNC_MARKER_TYPE;

pub struct MongoChunkSource {
    client: Client,
    config: Arc<MongoConfig>,
    /// This lane's session and the cluster time of its last low watermark.
    lane: Mutex<Option<Lane>>,
}

struct Lane {
    session: ClientSession,
    low_watermark: Option<Timestamp>,
}

fn transient(what: &str, e: &mongodb::error::Error) -> SnapshotError {
    SnapshotError::Transient(format!("{what}: {}", describe(e)))
}

impl MongoChunkSource {
    pub fn new(client: Client, config: Arc<MongoConfig>) -> Self {
        MongoChunkSource {
            client,
            config,
            lane: Mutex::new(None),
        }
    }

    /// Another lane (its own session) on the same client.
    pub fn another(&self) -> Self {
        MongoChunkSource::new(self.client.clone(), self.config.clone())
    }

    fn signals(&self) -> Collection<Document> {
        let signal = &self.config.signal_collection;
        self.client
            .database(&signal.schema)
            .collection(&signal.name)
    }

    fn snapshots(&self) -> Collection<Document> {
        self.client
            .database(self.config.state_database())
            .collection("snapshots")
    }

    /// This lane's session, started on first use.
    async fn lane(&self) -> Result<MappedMutexGuard<'_, Lane>, SnapshotError> {
        let mut lane = self.lane.lock().await;
        if lane.is_none() {
            let session = self
                .client
                .start_session()
                .causal_consistency(true)
                .await
                .map_err(|e| transient("starting a snapshot session", &e))?;
            *lane = Some(Lane {
                session,
                low_watermark: None,
            });
        }
        MutexGuard::try_map(lane, Option::as_mut)
            .map_err(|_| SnapshotError::Transient("no snapshot session".into()))
    }

    /// The stored progress of this capture.
    pub async fn load_state(&self) -> Result<Option<SnapshotState>, SnapshotError> {
        let found = self
            .snapshots()
            .find_one(doc! { "_id": &self.config.name })
            .await
            .map_err(|e| transient("reading the snapshot progress", &e))?;
        let Some(found) = found else {
            return Ok(None);
        };
        let text = found.get_str("state").map_err(|e| {
            SnapshotError::Definite(format!("stored snapshot state is unreadable: {e}"))
        })?;
        serde_json::from_str(text).map(Some).map_err(|e| {
            SnapshotError::Definite(format!("stored snapshot state is unreadable: {e}"))
        })
    }

    /// Inserts a signal document in this lane's session (majority); the
    /// cluster time it was written at.
    async fn insert_signal(
        &self,
        document: Document,
        what: &str,
    ) -> Result<Option<Timestamp>, SnapshotError> {
        let mut lane = self.lane().await?;
        self.signals()
            .insert_one(document)
            .write_concern(WriteConcern::majority())
            .session(&mut lane.session)
            .await
            .map_err(|e| transient(what, &e))?;
        Ok(lane.session.operation_time())
    }

    fn collection(&self, table: &TableRef) -> Collection<Document> {
        self.client.database(&table.schema).collection(&table.name)
    }

    fn filter_of(request: &ChunkRequest) -> Result<Document, SnapshotError> {
        match &request.filter {
            None => Ok(Document::new()),
            Some(text) => parse_filter(text).map_err(SnapshotError::Definite),
        }
    }
}

/// A snapshot filter (`additional-conditions`) is a query document in
/// extended JSON; nothing else is accepted, and nothing of it becomes code.
pub fn parse_filter(text: &str) -> Result<Document, String> {
    let json: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        format!("filter {text:?} is not JSON: {e}; give a query document such as {{\"status\": \"open\"}}")
    })?;
    match Bson::try_from(json) {
        Ok(Bson::Document(filter)) => {
            if filter.keys().any(|k| k == "$where" || k == "$function") {
                return Err(format!(
                    "filter {text:?} runs JavaScript ($where/$function); use query operators"
                ));
            }
            Ok(filter)
        }
        Ok(_) => Err(format!(
            "filter {text:?} is not a query document (an object)"
        )),
        Err(e) => Err(format!("filter {text:?}: {e}")),
    }
}

/// A selected document as the merger's row: the key exactly as the stream
/// builds event keys (`{id: <_id as JSON>}`), the document Debezium's way.
pub fn chunk_row(document: &Document) -> ChunkRow {
    let key = Row::new(
        Arc::from(vec!["id".to_string()]),
        vec![Value::Text(extjson::id_json(document))],
    );
    let after = Row::new(
        Arc::from(vec![DOCUMENT_COLUMN.to_string()]),
        vec![Value::Json(extjson::document_json(document))],
    );
    ChunkRow { key, after }
}

#[async_trait]
impl ChunkSource for MongoChunkSource {
    fn lane(&self) -> Option<Arc<dyn ChunkSource>> {
        Some(Arc::new(self.another()))
    }

    async fn open_window(&self, window: &str) -> Result<(), SnapshotError> {
        let written_at = self
            .insert_signal(
                doc! { "_id": format!("{window}-open"), "type": SNAPSHOT_WINDOW_OPEN },
                "writing the low watermark",
            )
            .await?;
        self.lane().await?.low_watermark = written_at;
        Ok(())
    }

    async fn select_chunk(&self, request: &ChunkRequest) -> Result<SelectedChunk, SnapshotError> {
        let collection = self.collection(&request.table);
        let filter = Self::filter_of(request)?;
        let mut lane = self.lane().await?;
        let lane = &mut *lane;
        let table = &request.table;
        let decode = |bound: &Option<Vec<String>>| -> Result<Option<Bson>, SnapshotError> {
            match bound.as_ref().and_then(|b| b.first()) {
                None => Ok(None),
                Some(text) => keys::decode(text)
                    .map(Some)
                    .map_err(SnapshotError::Definite),
            }
        };
        let (max, estimate) = if request.max_key_read {
            (decode(&request.max_key)?, None)
        } else {
            let top = collection
                .find_one(filter.clone())
                .sort(doc! { "_id": -1 })
                .projection(doc! { "_id": 1 })
                .read_concern(ReadConcern::majority())
                .session(&mut lane.session)
                .await
                .map_err(|e| transient(&format!("reading the largest _id of {table}"), &e))?;
            let estimate = collection.estimated_document_count().await.ok();
            (top.and_then(|d| d.get("_id").cloned()), estimate)
        };
        let Some(max) = max else {
            return Ok(SelectedChunk::empty(None, estimate, None));
        };
        let after = decode(&request.after_key)?;
        let mut find = collection
            .find(filter.clone())
            .hint(mongodb::options::Hint::Keys(doc! { "_id": 1 }))
            .max(doc! { "_id": max.clone() })
            .sort(doc! { "_id": 1 })
            .limit(i64::try_from(request.limit.saturating_add(1)).unwrap_or(i64::MAX))
            .read_concern(ReadConcern::majority());
        if let Some(after) = &after {
            find = find.min(doc! { "_id": after.clone() });
        }
        let fetched: Vec<Document> = find
            .session(&mut lane.session)
            .await
            .map_err(|e| transient(&format!("reading a chunk of {table}"), &e))?
            .stream(&mut lane.session)
            .try_collect()
            .await
            .map_err(|e| transient(&format!("reading a chunk of {table}"), &e))?;
        let (mut rows, done) = keys::chunk_rows(after.as_ref(), fetched, request.limit);
        if done
            && after
                .as_ref()
                .is_none_or(|a| keys::compare(&max, a) == std::cmp::Ordering::Greater)
        {
            // `max` is exclusive: the last document itself, when it is still
            // there (and passes the filter).
            let mut at_max = filter;
            at_max.insert("_id", max.clone());
            let last = collection
                .find_one(at_max)
                .read_concern(ReadConcern::majority())
                .session(&mut lane.session)
                .await
                .map_err(|e| transient(&format!("reading the last document of {table}"), &e))?;
            rows.extend(last);
        }
        // Read at or after the low watermark, or not in the window at all.
        let read_at = lane.session.operation_time();
        if let (Some(low), Some(read)) = (lane.low_watermark, read_at) {
            if (read.time, read.increment) < (low.time, low.increment) {
                return Err(SnapshotError::Transient(format!(
                    "a chunk of {table} was read at {read:?}, before its low watermark {low:?}; reading it again"
                )));
            }
        }
        let last_key = rows
            .last()
            .and_then(|d| d.get("_id"))
            .map(|id| vec![keys::encode(id)]);
        let rows: Vec<ChunkRow> = rows.iter().map(chunk_row).collect();
        Ok(SelectedChunk {
            last: done,
            last_key,
            max_key: (!request.max_key_read).then(|| vec![keys::encode(&max)]),
            estimate,
            visibility: None,
            rows,
        })
    }

    async fn close_window(&self, window: &str) -> Result<(), SnapshotError> {
        let open = format!("{window}-open");
        let close = format!("{window}-close");
        self.insert_signal(
            doc! { "_id": &close, "type": SNAPSHOT_WINDOW_CLOSE },
            "writing the high watermark",
        )
        .await?;
        // Watermarks are only needed in the stream: the collection stays
        // small. A failure here leaves two small documents, no harm.
        if let Err(e) = self
            .signals()
            .delete_many(doc! { "_id": { "$in": [open, close] } })
            .await
        {
            tracing::debug!("watermarks of {window} not deleted: {}", describe(&e));
        }
        Ok(())
    }

    async fn save_state(&self, state: &SnapshotState) -> Result<(), SnapshotError> {
        let json = serde_json::to_string(state)
            .map_err(|e| SnapshotError::Transient(format!("encoding snapshot state: {e}")))?;
        self.snapshots()
            .update_one(
                doc! { "_id": &self.config.name },
                doc! { "$set": { "state": json, "updated_at": DateTime::now() } },
            )
            .upsert(true)
            .write_concern(WriteConcern::majority())
            .await
            .map(|_| ())
            .map_err(|e| transient("saving the snapshot progress", &e))
    }

    async fn emit_marker(&self, content: &str) -> Result<(), SnapshotError> {
        self.insert_signal(
            doc! {
                "_id": cdc_signal::new_signal_id(),
                "type": RESYNC_MARKER_TYPE,
                "data": content,
            },
            "writing a resync marker",
        )
        .await
        .map(|_| ())
    }

    fn check_filter(&self, filter: &str) -> Result<(), String> {
        parse_filter(filter).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_query_documents_only() {
        let f = parse_filter(r#"{"status": "open", "n": {"$gt": {"$numberLong": "5"}}}"#)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(f, doc! { "status": "open", "n": { "$gt": 5_i64 } });
        for bad in ["status = 'open'", "[1]", r#"{"$where": "sleep(1000)"}"#] {
            let err = parse_filter(bad)
                .err()
                .unwrap_or_else(|| panic!("{bad} accepted"));
            assert!(!err.contains('\n') && err.contains("filter"), "{err}");
        }
    }

    #[test]
    fn chunk_rows_match_stream_keys() {
        let doc = doc! { "_id": bson::oid::ObjectId::from_bytes([0xab; 12]), "x": 1 };
        let row = chunk_row(&doc);
        let change_key =
            extjson::id_json(&doc! { "_id": doc.get("_id").cloned().unwrap_or(Bson::Null) });
        assert_eq!(row.key.values, [Value::Text(change_key)]);
        assert_eq!(
            row.after.values,
            [Value::Json(extjson::document_json(&doc))]
        );
    }
}
