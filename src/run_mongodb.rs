//! `cdc run`, `check`, `snapshot` and `status` for `[source] type = "mongodb"`:
//! config to the MongoDB source, chunk source and engine.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bson::doc;
use cdc_engine::assembly::{run_with_restarts, SnapshotPlan, Stages};
use cdc_engine::runner::Runner;
use cdc_engine::snapshot::SnapshotTables;
use cdc_engine::telemetry::Component;
use cdc_engine::{Lease, SignalRow, TableRef, Telemetry};
use cdc_mongodb::config::{CollectionPattern, HistoryLostPolicy, MongoConfig, PreImages};
use cdc_mongodb::preflight::Severity;
use cdc_mongodb::snapshot::MongoChunkSource;
use cdc_mongodb::stream::MongoSource;
use tokio::sync::watch;

use crate::config::{Config, MongoSettings, OnSlotLost, PreImagesSetting};

pub fn mongo_config(settings: &MongoSettings) -> Result<MongoConfig> {
    if settings.collections.is_empty() {
        bail!("source.collections is empty: name at least one collection (shop.orders, shop.*)");
    }
    let collections = settings
        .collections
        .iter()
        .map(|c| CollectionPattern::parse(c).with_context(|| format!("source.collections: '{c}'")))
        .collect::<Result<Vec<_>>>()?;
    let mut config = MongoConfig::new(settings.url.clone(), collections);
    let signal = CollectionPattern::parse(&settings.signal_collection)
        .ok()
        .and_then(|p| p.exact())
        .with_context(|| {
            format!(
                "source.signal_collection: '{}' is not database.collection",
                settings.signal_collection
            )
        })?;
    config.signal_collection = signal;
    config.name = settings.name.clone();
    config.pre_images = match settings.pre_images {
        PreImagesSetting::WhenAvailable => PreImages::WhenAvailable,
        PreImagesSetting::Required => PreImages::Required,
        PreImagesSetting::Off => PreImages::Off,
    };
    config.on_history_lost = match settings.on_history_lost {
        OnSlotLost::Fail => HistoryLostPolicy::Fail,
        OnSlotLost::Resnapshot => HistoryLostPolicy::Resnapshot,
    };
    config.max_await = Duration::from_millis(settings.max_await_ms.max(10));
    Ok(config)
}

pub async fn check(settings: &MongoSettings) -> Result<ExitCode> {
    let config = mongo_config(settings)?;
    let findings = cdc_mongodb::preflight::check(&config).await;
    Ok(crate::run::report(&findings, |f| {
        f.severity == Severity::Error
    }))
}

/// The operator's signal, as the document an operator would insert.
pub async fn send_signal(settings: &MongoSettings, row: &SignalRow) -> Result<String> {
    let config = mongo_config(settings)?;
    let client = cdc_mongodb::client::connect(&config.url).await?;
    let data = match &row.data {
        Some(text) => {
            let json: serde_json::Value =
                serde_json::from_str(text).context("the signal's data")?;
            bson::Bson::try_from(json).context("the signal's data")?
        }
        None => bson::Bson::Null,
    };
    let signal = &config.signal_collection;
    client
        .database(&signal.schema)
        .collection::<bson::Document>(&signal.name)
        .insert_one(doc! { "_id": &row.id, "type": &row.kind, "data": data })
        .await
        .map_err(|e| anyhow::anyhow!(cdc_mongodb::client::describe(&e)))
        .context("writing the signal document")?;
    Ok(signal.to_string())
}

pub async fn status(
    settings: &MongoSettings,
) -> Result<Option<cdc_engine::scheduler::SnapshotState>> {
    let config = Arc::new(mongo_config(settings)?);
    let client = cdc_mongodb::client::connect(&config.url).await?;
    println!(
        "{}",
        cdc_mongodb::positions::describe_record(&client, &config).await?
    );
    let chunks = MongoChunkSource::new(client, config);
    chunks
        .load_state()
        .await
        .map_err(|e| anyhow::anyhow!("reading the snapshot progress: {e}"))
}

/// The captured collections that exist now (patterns expanded).
async fn collections(config: &MongoConfig, client: &mongodb::Client) -> Result<SnapshotTables> {
    let mut tables = SnapshotTables::new();
    for db in config.databases() {
        let names = client
            .database(&db)
            .list_collection_names()
            .await
            .map_err(|e| anyhow::anyhow!(cdc_mongodb::client::describe(&e)))
            .with_context(|| format!("listing the collections of database {db}"))?;
        for name in names {
            if config.captures(&db, &name) {
                tables.insert(TableRef::new(&db, &name), vec!["_id".to_string()]);
            }
        }
    }
    Ok(tables)
}

pub async fn run(
    config: &Config,
    settings: &MongoSettings,
    shutdown_tx: &watch::Sender<bool>,
    shutdown_rx: watch::Receiver<bool>,
    telemetry: &Telemetry,
) -> Result<ExitCode> {
    let heal = matches!(settings.on_history_lost, OnSlotLost::Resnapshot);
    let sink = crate::run::ProcessSink::default();
    // Lost while streaming, with `resnapshot`: the guards at the next start
    // restart the stream and snapshot every collection.
    run_with_restarts(heal, &shutdown_rx, crate::run::source_error, |_| {
        telemetry.set_down(Component::Reader, "starting");
        run_once(
            config,
            settings,
            shutdown_tx,
            shutdown_rx.clone(),
            &sink,
            telemetry,
        )
    })
    .await
}

async fn run_once(
    config: &Config,
    settings: &MongoSettings,
    shutdown_tx: &watch::Sender<bool>,
    shutdown_rx: watch::Receiver<bool>,
    process_sink: &crate::run::ProcessSink,
    telemetry: &Telemetry,
) -> Result<ExitCode> {
    let mongo = mongo_config(settings)?;
    if !config.format.column_rules()?.is_empty() {
        bail!("format column rules are not supported for a MongoDB source (documents have no columns): remove them");
    }
    // No lease yet: one instance per capture name (README, "MongoDB").
    telemetry.set_active(true);
    let format = config.format.format()?;
    let sink = process_sink.lend(&config.sink, format).await?;
    let source = MongoSource::prepare(mongo)
        .await
        .context("source not ready")?;
    let chunks = Arc::new(MongoChunkSource::new(
        source.client().clone(),
        source.config().clone(),
    ));
    let state = chunks
        .load_state()
        .await
        .map_err(|e| anyhow::anyhow!("reading the snapshot progress: {e}"))?;
    let tables = collections(source.config(), source.client()).await?;
    tracing::info!(
        server = %cdc_mongodb::client::redact(&source.config().url),
        collections = tables.len(),
        sink = %sink.describe(),
        "cdc starting"
    );
    let plan = SnapshotPlan {
        chunks,
        state,
        tables,
        window_prefix: source.config().name.clone(),
        always_snapshot: Vec::new(),
        resync: source.lost_range(),
        resync_truncate: false,
    };
    let snapshots = plan
        .start(&crate::run::snapshot_settings(config), telemetry)
        .await
        .context("snapshots")?;
    // Documents carry their own Connect schema; there are no columns to
    // filter (refused above).
    let stages = Stages {
        connect_schemas: None,
        column_rules: None,
        transaction_metadata: config.format.transaction_metadata()?,
        skipped: config.format.skipped_operations()?,
        heartbeat: config
            .format
            .heartbeat_interval()?
            .map(|every| (every, source.meta())),
    };
    if *shutdown_rx.borrow() {
        return Ok(ExitCode::SUCCESS);
    }
    let runner = Runner::builder()
        .source(Arc::new(source))
        .processor(
            stages.wrap(Box::new(snapshots.processor)),
            Some(snapshots.worker),
        )
        .sink(sink)
        .telemetry(telemetry.clone())
        .lease(Lease::sole())
        .pipeline(crate::run::pipeline_config(config))
        .channel_capacity(config.pipeline.channel_capacity)
        .build()?;
    let stats = runner.run(shutdown_tx, shutdown_rx).await?;
    tracing::info!(events = stats.events, "stopped cleanly");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(collections: &[&str], signal: &str) -> MongoSettings {
        MongoSettings {
            url: "mongodb://db1/?replicaSet=rs0".into(),
            collections: collections.iter().map(|c| c.to_string()).collect(),
            signal_collection: signal.into(),
            name: "shop".into(),
            pre_images: PreImagesSetting::Required,
            on_history_lost: OnSlotLost::Resnapshot,
            max_await_ms: 0,
        }
    }

    #[test]
    fn settings_map_to_the_source_config() {
        let config = mongo_config(&settings(
            &["shop.orders", "shop.order_*"],
            "shop.cdc_signal",
        ))
        .unwrap_or_else(|e| panic!("{e:#}"));
        assert!(config.captures("shop", "orders") && config.captures("shop", "order_lines"));
        assert!(!config.captures("shop", "carts"));
        assert_eq!(
            config.signal_collection,
            TableRef::new("shop", "cdc_signal")
        );
        assert_eq!(config.pre_images, PreImages::Required);
        assert_eq!(config.on_history_lost, HistoryLostPolicy::Resnapshot);
        // One database: a database stream, not the deployment's.
        assert_eq!(config.databases(), vec!["shop".to_string()]);
        assert_eq!(config.max_await, Duration::from_millis(10));
    }

    #[test]
    fn bad_settings_name_the_setting() {
        for (collections, signal, culprit) in [
            (&[][..], "cdc.signal", "source.collections is empty"),
            (
                &["orders"][..],
                "cdc.signal",
                "source.collections: 'orders'",
            ),
            (
                &["shop.orders"][..],
                "signal",
                "source.signal_collection: 'signal'",
            ),
            (
                &["shop.orders"][..],
                "cdc.sig*",
                "source.signal_collection: 'cdc.sig*'",
            ),
        ] {
            let err = mongo_config(&settings(collections, signal))
                .err()
                .unwrap_or_else(|| panic!("{collections:?} {signal} accepted"));
            assert!(format!("{err:#}").contains(culprit), "{err:#}");
        }
    }
}
