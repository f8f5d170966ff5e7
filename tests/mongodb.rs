//! The MongoDB source end to end: the real `cdc` binary against a real
//! replica set, written to with the real driver.
//!
//! No MongoDB server can be installed on the CI machines (no registry they
//! reach ships `mongod`), so this suite runs only where one is given:
//!
//! ```sh
//! CDC_TEST_MONGODB_URL='mongodb://localhost:27017/?replicaSet=rs0' \
//!     cargo nextest run --test mongodb
//! ```
//!
//! The user needs `readWrite` on the test databases (`cdc_test_*`, each
//! test makes and drops its own) and nothing else; the signal collection
//! lives in the captured database, so the stream is that database's.
//! Without the variable every test says it was skipped and passes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::future::IntoFuture;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bson::{doc, Bson, Document};
use common::{cdc_output, read_events, wait_until, Engine};
use mongodb::Client;
use serde_json::Value;

fn server() -> Option<String> {
    match std::env::var("CDC_TEST_MONGODB_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!(
                "skipped: CDC_TEST_MONGODB_URL is not set, so nothing ran against MongoDB \
                 (README, \"MongoDB\": how to run this suite against a replica set)"
            );
            None
        }
    }
}

/// A test's own database, dropped at the end, and the runtime its driver
/// calls run on.
struct Deployment {
    runtime: tokio::runtime::Runtime,
    client: Client,
    db: String,
    url: String,
}

impl Deployment {
    fn new(url: &str, test: &str) -> Deployment {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let client = runtime
            .block_on(Client::with_uri_str(url))
            .expect("CDC_TEST_MONGODB_URL does not parse");
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let db = format!("cdc_test_{test}_{}", nanos % 1_000_000_000);
        Deployment {
            runtime,
            client,
            db,
            url: url.to_string(),
        }
    }

    fn coll(&self, name: &str) -> mongodb::Collection<Document> {
        self.client.database(&self.db).collection(name)
    }

    fn insert(&self, coll: &str, docs: Vec<Document>) {
        self.runtime
            .block_on(self.coll(coll).insert_many(docs).into_future())
            .unwrap();
    }

    fn update(&self, coll: &str, filter: Document, update: Document) {
        self.runtime
            .block_on(self.coll(coll).update_one(filter, update).into_future())
            .unwrap();
    }

    fn delete(&self, coll: &str, filter: Document) {
        self.runtime
            .block_on(self.coll(coll).delete_one(filter).into_future())
            .unwrap();
    }

    /// `docs` inserted in one multi-document transaction.
    fn insert_in_transaction(&self, coll: &str, docs: Vec<Document>) {
        let collection = self.coll(coll);
        self.runtime.block_on(async {
            let mut session = self.client.start_session().await.unwrap();
            session.start_transaction().await.unwrap();
            for d in docs {
                collection
                    .insert_one(d)
                    .session(&mut session)
                    .await
                    .unwrap();
            }
            session.commit_transaction().await.unwrap();
        });
    }

    fn signal(&self, id: &str, kind: &str, data: Document) {
        self.insert(
            "cdc_signal",
            vec![doc! { "_id": id, "type": kind, "data": data }],
        );
    }

    /// The collection's documents by `_id` (as Debezium's key JSON).
    fn contents(&self, coll: &str) -> BTreeMap<String, Value> {
        let docs: Vec<Document> = self.runtime.block_on(async {
            use futures_util::TryStreamExt;
            self.coll(coll)
                .find(doc! {})
                .await
                .unwrap()
                .try_collect()
                .await
                .unwrap()
        });
        docs.iter()
            .map(|d| {
                let id = cdc_mongodb::extjson::id_json(d);
                let json: Value =
                    serde_json::from_str(&cdc_mongodb::extjson::document_json(d)).unwrap();
                (id, json)
            })
            .collect()
    }

    /// A config capturing `collections` of this database into `dir`.
    fn config(&self, dir: &Path, collections: &[&str], extra: &str) -> (PathBuf, PathBuf) {
        let events = dir.join("events.jsonl");
        let collections = collections
            .iter()
            .map(|c| format!("\"{}.{c}\"", self.db))
            .collect::<Vec<_>>()
            .join(", ");
        let text = format!(
            "[source]\ntype = \"mongodb\"\nurl = {:?}\ncollections = [{collections}]\n\
             signal_collection = \"{}.cdc_signal\"\nname = \"{}\"\nmax_await_ms = 200\n{extra}\n\
             [sink]\ntype = \"file\"\npath = {:?}\n\n[pipeline]\nflush_interval_ms = 50\n",
            self.url,
            self.db,
            self.db,
            events.display().to_string()
        );
        let path = dir.join("cdc.toml");
        std::fs::write(&path, text).unwrap();
        (path, events)
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        let _ = self
            .runtime
            .block_on(self.client.database(&self.db).drop().into_future());
    }
}

fn wait_started(engine: &mut Engine) {
    wait_until(
        "cdc to open its change stream",
        Duration::from_secs(60),
        || {
            assert!(engine.is_running(), "cdc exited:\n{}", engine.log_text());
            engine.log_text().contains("cdc starting")
        },
    );
    // The stream opens right after; a moment for the first getMore.
    std::thread::sleep(Duration::from_millis(500));
}

fn events_of<'a>(events: &'a [Value], coll: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["source"]["collection"] == coll)
        .collect()
}

/// The state a consumer builds from the topic: last `after` per key, gone
/// on delete.
fn fold(events: &[&Value]) -> BTreeMap<String, Value> {
    let mut state = BTreeMap::new();
    for e in events {
        let key = e["key"]["id"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_default();
        match e["op"].as_str() {
            Some("d") => {
                state.remove(&key);
            }
            _ => {
                if let Some(after) = e["after"].as_str() {
                    state.insert(key, serde_json::from_str(after).unwrap());
                }
            }
        }
    }
    state
}

fn wait_for(events: &Path, engine: &mut Engine, what: &str, check: impl Fn(&[Value]) -> bool) {
    wait_until(what, Duration::from_secs(60), || {
        assert!(engine.is_running(), "cdc exited:\n{}", engine.log_text());
        check(&read_events(events))
    });
}

#[test]
fn streams_changes_and_transactions_in_debeziums_format() {
    let Some(url) = server() else { return };
    let mongo = Deployment::new(&url, "stream");
    mongo.insert("orders", vec![doc! { "_id": 0, "seed": true }]);
    let dir = tempfile::tempdir().unwrap();
    let (config, events) = mongo.config(dir.path(), &["orders"], "");
    let mut engine = Engine::start(&config);
    wait_started(&mut engine);
    mongo.insert("orders", vec![doc! { "_id": 1, "status": "new" }]);
    mongo.update(
        "orders",
        doc! { "_id": 1 },
        doc! { "$set": { "status": "paid" } },
    );
    mongo.delete("orders", doc! { "_id": 1 });
    mongo.insert_in_transaction(
        "orders",
        vec![doc! { "_id": 2, "n": 1 }, doc! { "_id": 3, "n": 2 }],
    );
    wait_for(&events, &mut engine, "5 change events", |e| {
        events_of(e, "orders").len() >= 5
    });
    let all = read_events(&events);
    let orders = events_of(&all, "orders");
    let ops: Vec<&str> = orders.iter().filter_map(|e| e["op"].as_str()).collect();
    assert_eq!(ops, ["c", "u", "d", "c", "c"], "{orders:#?}");
    let insert = orders[0];
    assert_eq!(insert["key"]["id"], "1");
    assert_eq!(insert["source"]["connector"], "mongodb");
    assert_eq!(insert["source"]["db"], mongo.db.as_str());
    assert_eq!(
        serde_json::from_str::<Value>(insert["after"].as_str().unwrap()).unwrap(),
        serde_json::json!({ "_id": 1, "status": "new" })
    );
    // updateLookup: the update carries the whole document.
    let update = orders[1];
    assert!(update["after"].as_str().unwrap().contains("paid"));
    assert!(update["updateDescription"]["updatedFields"]
        .as_str()
        .unwrap()
        .contains("paid"));
    // The transaction's two events share its lsid and txnNumber.
    let (a, b) = (orders[3], orders[4]);
    assert!(a["source"]["lsid"].is_string(), "{a}");
    assert_eq!(a["source"]["lsid"], b["source"]["lsid"]);
    assert_eq!(a["source"]["txnNumber"], b["source"]["txnNumber"]);
    // The seed was there before the start: no initial snapshot asked.
    assert!(orders.iter().all(|e| e["key"]["id"] != "0"));
    assert!(engine.terminate().success());
}

#[test]
fn a_signal_in_the_signal_collection_snapshots_under_writes_over_mixed_ids() {
    let Some(url) = server() else { return };
    let mongo = Deployment::new(&url, "snapshot");
    // `_id`s of several types: the chunks must cover all of them.
    let mut docs = Vec::new();
    for i in 0..300 {
        let id = match i % 4 {
            0 => Bson::Int32(i),
            1 => Bson::String(format!("k{i:04}")),
            2 => Bson::ObjectId(bson::oid::ObjectId::new()),
            _ => Bson::Double(f64::from(i) + 0.5),
        };
        docs.push(doc! { "_id": id, "n": i, "pad": "x".repeat(100) });
    }
    mongo.insert("items", docs);
    let dir = tempfile::tempdir().unwrap();
    let (config, events) = mongo.config(dir.path(), &["items"], "[snapshot]\nchunk_size = 16\n");
    let mut engine = Engine::start(&config);
    wait_started(&mut engine);
    mongo.signal(
        "s1",
        "execute-snapshot",
        doc! { "data-collections": [format!("{}.items", mongo.db)], "type": "incremental" },
    );
    // Writes while the snapshot runs.
    for i in 0..60 {
        mongo.update("items", doc! { "n": i * 5 }, doc! { "$inc": { "n": 1000 } });
        if i % 7 == 0 {
            mongo.delete("items", doc! { "n": i * 5 + 2 });
        }
        mongo.insert("items", vec![doc! { "_id": format!("new{i}"), "n": -i }]);
    }
    let expected = mongo.contents("items");
    wait_for(
        &events,
        &mut engine,
        "the snapshot to cover the collection",
        |e| fold(&events_of(e, "items")) == expected,
    );
    let all = read_events(&events);
    let reads = events_of(&all, "items")
        .into_iter()
        .filter(|e| e["op"] == "r")
        .count();
    assert!(reads > 200, "{reads} snapshot reads");
    assert!(engine.terminate().success());
}

#[test]
fn a_sigkill_loses_nothing_and_a_restart_resumes_from_the_stored_position() {
    let Some(url) = server() else { return };
    let mongo = Deployment::new(&url, "kill");
    let dir = tempfile::tempdir().unwrap();
    let (config, events) = mongo.config(dir.path(), &["log"], "");
    let mut engine = Engine::start(&config);
    wait_started(&mut engine);
    for i in 0..200 {
        mongo.insert("log", vec![doc! { "_id": i }]);
    }
    wait_for(&events, &mut engine, "some events", |e| {
        events_of(e, "log").len() >= 50
    });
    // Killed while acknowledging: no clean stop, no final record.
    engine.kill();
    for i in 200..400 {
        mongo.insert("log", vec![doc! { "_id": i }]);
    }
    let mut engine = Engine::start(&config);
    wait_for(
        &events,
        &mut engine,
        "every insert after the restart",
        |e| {
            let seen: std::collections::BTreeSet<String> = events_of(e, "log")
                .iter()
                .filter_map(|e| e["key"]["id"].as_str().map(str::to_string))
                .collect();
            (0..400).all(|i| seen.contains(&i.to_string()))
        },
    );
    assert!(
        engine
            .log_text()
            .contains("resuming the change stream from the stored position"),
        "{}",
        engine.log_text()
    );
    assert!(engine.terminate().success());
}

/// A stored token whose cluster time the oplog no longer holds.
fn age_the_stored_position(mongo: &Deployment) {
    mongo.runtime.block_on(async {
        let positions = mongo.coll("positions");
        let record = positions
            .find_one(doc! { "_id": &mongo.db })
            .await
            .unwrap()
            .expect("a stored position");
        let data = record
            .get_document("token")
            .unwrap()
            .get_str("_data")
            .unwrap()
            .to_string();
        // The leading timestamp: type byte 82, then seconds and increment.
        let aged = format!("82{:08X}{:08X}{}", 1, 1, &data[18..]);
        positions
            .update_one(
                doc! { "_id": &mongo.db },
                doc! { "$set": { "token": { "_data": aged } } },
            )
            .await
            .unwrap();
    });
}

#[test]
fn a_lost_resume_token_fails_by_default_and_resnapshots_by_policy() {
    let Some(url) = server() else { return };
    let mongo = Deployment::new(&url, "lost");
    mongo.insert(
        "orders",
        vec![doc! { "_id": 1, "v": 1 }, doc! { "_id": 2, "v": 2 }],
    );
    let dir = tempfile::tempdir().unwrap();
    let (config, events) = mongo.config(dir.path(), &["orders"], "");
    let mut engine = Engine::start(&config);
    wait_started(&mut engine);
    assert!(engine.terminate().success());
    age_the_stored_position(&mongo);
    let mut engine = Engine::start(&config);
    let status = engine.wait_exit(Duration::from_secs(60));
    assert!(!status.success());
    let log = engine.log_text();
    assert!(
        log.contains("is no longer in the oplog") && log.contains("on_history_lost"),
        "{log}"
    );
    let (config, _) = mongo.config(dir.path(), &["orders"], "on_history_lost = \"resnapshot\"");
    let mut engine = Engine::start(&config);
    let expected = mongo.contents("orders");
    wait_for(&events, &mut engine, "the re-snapshot", |e| {
        fold(&events_of(e, "orders")) == expected
    });
    assert!(engine.log_text().contains("were not captured"));
    assert!(engine.terminate().success());
}

#[test]
fn check_passes_on_a_replica_set_and_names_an_unknown_collection() {
    let Some(url) = server() else { return };
    let mongo = Deployment::new(&url, "check");
    mongo.insert("orders", vec![doc! { "_id": 1 }]);
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = mongo.config(dir.path(), &["orders"], "pre_images = \"off\"");
    let out = cdc_output(&["check"], &config);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.ends_with("ok\n"), "{stdout}");
    let (config, _) = mongo.config(dir.path(), &["orders", "missing"], "");
    let out = cdc_output(&["check"], &config);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        stdout.contains(&format!("collection {}.missing does not exist", mongo.db)),
        "{stdout}"
    );
}

/// Runs everywhere: `cdc check` against a real socket of this machine that
/// nothing listens on.
#[test]
fn check_names_an_unreachable_server_in_one_line_without_its_password() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cdc.toml");
    std::fs::write(
        &config,
        format!(
            "[source]\ntype = \"mongodb\"\n\
             url = \"mongodb://cdc:hunter2@127.0.0.1:{port}/?replicaSet=rs0&serverSelectionTimeoutMS=1000&connectTimeoutMS=1000\"\n\
             collections = [\"shop.orders\"]\n\n[sink]\ntype = \"stdout\"\n"
        ),
    )
    .unwrap();
    let out = cdc_output(&["check"], &config);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    assert!(
        lines[0].starts_with(&format!(
            "error: cannot reach mongodb://cdc:***@127.0.0.1:{port}/"
        )),
        "{stdout}"
    );
    assert!(!stdout.contains("hunter2") && !stderr.contains("hunter2"));
}
