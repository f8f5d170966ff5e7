//! The change-stream reader: one stream for the deployment, filtered to the
//! captured collections and the signal collection, resumed from the stored
//! token, with the guards of a lost position at start.

use std::sync::Arc;
use std::time::Duration;

use bson::Document;
use cdc_engine::telemetry::{Component, ErrorKind};
use cdc_engine::{
    LogItem, Position, PositionWriter, Source, SourceError, SourceMeta, StreamContext,
};
use mongodb::change_stream::event::ResumeToken;
use mongodb::change_stream::ChangeStream;
use mongodb::options::{FullDocumentBeforeChangeType, FullDocumentType};
use mongodb::Client;

use crate::client::{classify, connect, redact};
use crate::config::{HistoryLostPolicy, MongoConfig, PreImages};
use crate::positions::{self, show_time, MongoPositionStore, WRITE_INTERVAL};
use crate::resume::{cluster_time_of, cluster_time_of_position, position_of, token_of};
use crate::source_block::MONGO_BLOCK;
use crate::translate::{Notice, Translator};

/// Items per batch sent to the pipeline (a getMore's worth, at most).
const BATCH: usize = 1024;

/// Where the stream starts.
#[derive(Debug, Clone)]
enum Start {
    /// After this token.
    After(Document),
    /// At the present (a first start, or after a lost position).
    Now,
}

pub struct MongoSource {
    config: Arc<MongoConfig>,
    client: Client,
    meta: Arc<SourceMeta>,
    /// The token the stream resumes after (stored, or taken at a first
    /// start).
    start: Document,
    /// The range the stream did not capture, when the stored position was
    /// lost and the policy is to snapshot again.
    lost: Option<String>,
}

impl MongoSource {
    /// Connects, and judges the stored position: resumable, absent (first
    /// start: the stream starts now, and that point is stored at once), or
    /// lost (by policy: a definite error, or a fresh start with every
    /// collection to snapshot again).
    pub async fn prepare(config: MongoConfig) -> Result<MongoSource, SourceError> {
        let config = Arc::new(config);
        let client = connect(&config.url).await?;
        let meta = Arc::new(SourceMeta {
            connector: "mongodb",
            name: config.name.clone(),
            db: String::new(),
            block: &MONGO_BLOCK,
        });
        let record = positions::load(&client, &config).await?;
        let mut lost = None;
        let start = match record {
            Some(record) => match open(&client, &config, &Start::After(record.token.clone())).await
            {
                Ok(_) => {
                    tracing::info!(
                        at = %show_time(record.cluster_time),
                        "resuming the change stream from the stored position"
                    );
                    record.token
                }
                Err(err) if crate::client::is_history_lost(&err) => {
                    let now = open(&client, &config, &Start::Now)
                        .await
                        .ok()
                        .and_then(|s| s.resume_token())
                        .and_then(|t| token_document(&t))
                        .and_then(|t| cluster_time_of(&t).ok());
                    let range = format!(
                        "from {} to {}",
                        show_time(record.cluster_time),
                        now.map_or("now".to_string(), show_time)
                    );
                    let line = format!(
                        "the stored position of '{}' ({}) is no longer in the oplog of {}: the changes {range} were not captured",
                        config.name,
                        show_time(record.cluster_time),
                        redact(&config.url)
                    );
                    match config.on_history_lost {
                        HistoryLostPolicy::Fail => {
                            return Err(SourceError::PositionLost(format!(
                                "{line}; set [source] on_history_lost = \"resnapshot\" to start over \
                                 with a snapshot of every collection, or grow the oplog (replSetResizeOplog)"
                            )))
                        }
                        HistoryLostPolicy::Resnapshot => {
                            tracing::warn!("{line}; starting over and snapshotting every captured collection");
                            positions::note_loss(&client, &config, &range).await;
                            lost = Some(range);
                            first_start(&client, &config).await?
                        }
                    }
                }
                Err(err) => return Err(classify(&err, "resuming the change stream")),
            },
            None => first_start(&client, &config).await?,
        };
        Ok(MongoSource {
            config,
            client,
            meta,
            start,
            lost,
        })
    }

    pub fn config(&self) -> &Arc<MongoConfig> {
        &self.config
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn meta(&self) -> Arc<SourceMeta> {
        self.meta.clone()
    }

    /// The stored position was lost: snapshot every collection again.
    pub fn needs_resnapshot(&self) -> bool {
        self.lost.is_some()
    }

    /// The range not captured, for the resync markers.
    pub fn lost_range(&self) -> Option<String> {
        self.lost.clone()
    }
}

/// A first start: open the stream now, and store where it opened before
/// anything else, so that a crash before the first acknowledgement cannot
/// start the next run later and skip what happened in between.
async fn first_start(client: &Client, config: &Arc<MongoConfig>) -> Result<Document, SourceError> {
    let stream = open(client, config, &Start::Now)
        .await
        .map_err(|e| classify(&e, "opening the change stream"))?;
    let token = stream
        .resume_token()
        .and_then(|t| token_document(&t))
        .ok_or_else(|| {
            SourceError::Transient("the new change stream gave no resume token; retrying".into())
        })?;
    let position = position_of(&token)
        .map_err(|e| SourceError::Fatal(format!("the server's resume token: {e}")))?;
    positions::write(client, config, &position, false)
        .await
        .map_err(|e| {
            SourceError::Transient(format!(
                "cannot store the first position in {}.positions: {e}",
                config.state_database()
            ))
        })?;
    tracing::info!(
        at = %cluster_time_of_position(&position).map_or("?".into(), show_time),
        "first start: the change stream starts now"
    );
    Ok(token)
}

/// The token as a document (the server's `{_data: "…"}`).
fn token_document(token: &ResumeToken) -> Option<Document> {
    bson::to_document(token).ok()
}

fn resume_token(document: &Document) -> Option<ResumeToken> {
    bson::from_document(document.clone()).ok()
}

/// Opens the deployment's change stream.
async fn open(
    client: &Client,
    config: &MongoConfig,
    start: &Start,
) -> Result<ChangeStream<Document>, mongodb::error::Error> {
    // One database: a database stream, which needs privileges on it only.
    // Several (the captured ones and the signal collection's): one stream
    // of the deployment, which needs them on every database.
    let database = match config.databases().as_slice() {
        [db] => Some(client.database(db)),
        _ => None,
    };
    let watch = match &database {
        Some(database) => database.watch(),
        None => client.watch(),
    };
    let mut watch = watch
        .pipeline([config.stream_match()])
        .full_document(FullDocumentType::UpdateLookup)
        .show_expanded_events(true)
        .max_await_time(config.max_await)
        .batch_size(config.batch_size);
    watch = match config.pre_images {
        PreImages::WhenAvailable => {
            watch.full_document_before_change(FullDocumentBeforeChangeType::WhenAvailable)
        }
        PreImages::Required => {
            watch.full_document_before_change(FullDocumentBeforeChangeType::Required)
        }
        PreImages::Off => watch,
    };
    watch = match start {
        Start::After(token) => match resume_token(token) {
            Some(token) => watch.start_after(token),
            None => {
                return Err(mongodb::error::Error::custom(format!(
                    "the resume token {token} is not one the driver reads"
                )))
            }
        },
        Start::Now => watch,
    };
    Ok(watch.await?.with_type::<Document>())
}

#[async_trait::async_trait]
impl Source for MongoSource {
    async fn stream(&self, ctx: StreamContext) -> Result<(), SourceError> {
        let StreamContext {
            items,
            mut acks,
            mut shutdown,
            telemetry,
        } = ctx;
        let start_position = position_of(&self.start).ok();
        let writer = PositionWriter::spawn(
            MongoPositionStore {
                client: self.client.clone(),
                config: self.config.clone(),
            },
            start_position,
            WRITE_INTERVAL,
        );
        // Acknowledgements go to the position store, off the reading path.
        let acks_telemetry = telemetry.clone();
        let acknowledging = tokio::spawn(async move {
            let mut last: Option<Position> = None;
            while acks.changed().await.is_ok() {
                let Some(position) = acks.borrow_and_update().clone() else {
                    continue;
                };
                if let Ok(time) = cluster_time_of_position(&position) {
                    acks_telemetry.acknowledged(time.as_u64());
                }
                writer.acknowledged(&position);
                last = Some(position);
            }
            // Acknowledgements closed: the pipeline flushed its last batch.
            if !writer.finish(last, Duration::from_secs(5)).await {
                tracing::warn!("the final position was not stored in 5 s: the next start resumes a little earlier and repeats a few events");
            }
        });
        let result = self.read(&items, &mut shutdown, &telemetry).await;
        drop(items);
        let _ = acknowledging.await;
        result
    }
}

impl MongoSource {
    async fn read(
        &self,
        items: &tokio::sync::mpsc::Sender<Vec<LogItem>>,
        shutdown: &mut tokio::sync::watch::Receiver<bool>,
        telemetry: &cdc_engine::Telemetry,
    ) -> Result<(), SourceError> {
        let mut translator = Translator::new(self.config.clone(), self.meta.clone());
        let mut start = Start::After(self.start.clone());
        let mut attempt = 0u32;
        'connect: loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            let mut stream = match open(&self.client, &self.config, &start).await {
                Ok(stream) => stream,
                Err(err) => {
                    let error = classify(&err, "opening the change stream");
                    if retry(error, &mut attempt, shutdown, telemetry).await? {
                        continue 'connect;
                    }
                    return Ok(());
                }
            };
            if attempt > 0 {
                telemetry.reconnect();
                tracing::info!("change stream open again");
            }
            attempt = 0;
            telemetry.set_up(Component::Reader);
            let mut batch: Vec<LogItem> = Vec::new();
            loop {
                if *shutdown.borrow() {
                    send(items, &mut batch).await;
                    return Ok(());
                }
                match stream.next_if_any().await {
                    Ok(Some(event)) => {
                        match translator.event(&event, &mut batch) {
                            Ok(None) => {}
                            Ok(Some(notice)) => {
                                if let Some(restart) = self.notice(notice) {
                                    start = restart;
                                    if !send(items, &mut batch).await {
                                        return Ok(());
                                    }
                                    continue 'connect;
                                }
                            }
                            Err(e) => {
                                telemetry.error(ErrorKind::SourceFatal);
                                return Err(SourceError::Fatal(format!(
                                    "a change event cdc cannot read: {e}; this is a bug or a server newer than cdc knows, report it with the event's operationType"
                                )));
                            }
                        }
                        if let Some(token) = stream.resume_token().as_ref().and_then(token_document)
                        {
                            start = Start::After(token);
                        }
                        if batch.len() >= BATCH && !send(items, &mut batch).await {
                            return Ok(());
                        }
                    }
                    Ok(None) => {
                        // The batch is drained: the post-batch token says how
                        // far the stream has read, also with nothing to read.
                        if let Some(token) = stream.resume_token().as_ref().and_then(token_document)
                        {
                            if let Ok(position) = position_of(&token) {
                                translator.idle(position, &mut batch);
                            }
                            start = Start::After(token);
                        }
                        if !send(items, &mut batch).await {
                            return Ok(());
                        }
                    }
                    Err(err) => {
                        if !send(items, &mut batch).await {
                            return Ok(());
                        }
                        let error = classify(&err, "reading the change stream");
                        if retry(error, &mut attempt, shutdown, telemetry).await? {
                            continue 'connect;
                        }
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Logs a notice; returns where to reopen the stream when it closed.
    fn notice(&self, notice: Notice) -> Option<Start> {
        match notice {
            Notice::Ddl(line) => {
                tracing::warn!("{line}: collections are captured by name; its later changes are captured if a collection of that name exists");
                None
            }
            Notice::BadSignal(line) => {
                tracing::warn!("{line}");
                None
            }
            Notice::Invalidated(position) => {
                tracing::warn!("the change stream was invalidated by the server; opening it again after that point");
                token_of(&position).ok().map(Start::After)
            }
        }
    }
}

/// Sends what the batch holds; `false` when the pipeline is gone.
async fn send(items: &tokio::sync::mpsc::Sender<Vec<LogItem>>, batch: &mut Vec<LogItem>) -> bool {
    batch.is_empty() || items.send(std::mem::take(batch)).await.is_ok()
}

/// A stream error, counted under its kind: a transient one waits to
/// reopen the stream after the last event read (`Ok(true)`; `Ok(false)`:
/// stopped meanwhile), a definite one ends the stream.
async fn retry(
    error: SourceError,
    attempt: &mut u32,
    shutdown: &mut tokio::sync::watch::Receiver<bool>,
    telemetry: &cdc_engine::Telemetry,
) -> Result<bool, SourceError> {
    telemetry.error(match &error {
        SourceError::Transient(_) => ErrorKind::Replication,
        SourceError::PositionLost(_) => ErrorKind::PositionLost,
        _ => ErrorKind::SourceFatal,
    });
    let SourceError::Transient(line) = error else {
        return Err(error);
    };
    telemetry.set_down(Component::Reader, line.clone());
    if *attempt == 0 {
        tracing::warn!("{line}; reopening the stream after the last event read");
    }
    *attempt += 1;
    Ok(!wait_or_stop(shutdown, backoff(*attempt)).await)
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(250u64.saturating_mul(1 << attempt.min(5)).min(5_000))
}

/// Sleeps `delay`; `true` when shutdown came first.
async fn wait_or_stop(shutdown: &mut tokio::sync::watch::Receiver<bool>, delay: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(delay) => *shutdown.borrow(),
        _ = shutdown.changed() => true,
    }
}
