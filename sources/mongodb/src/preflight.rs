//! `cdc check` for MongoDB: one line per finding, each naming the culprit
//! and the fix.
//!
//! The judgments are pure functions of the server's replies (`hello`,
//! `connectionStatus`, `listCollections`), shaped as MongoDB's command
//! reference documents them, so they are tested without a server; the
//! I/O around them only fetches those replies.

use std::fmt;
use std::time::Duration;

use bson::{doc, Bson, Document};

use crate::client::{connect_with, describe, redact};
use crate::config::{MongoConfig, PreImages};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Info,
    Warning,
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    pub message: String,
}

impl Finding {
    fn error(message: impl Into<String>) -> Self {
        Finding {
            severity: Severity::Error,
            message: message.into(),
        }
    }
    fn warning(message: impl Into<String>) -> Self {
        Finding {
            severity: Severity::Warning,
            message: message.into(),
        }
    }
    fn info(message: impl Into<String>) -> Self {
        Finding {
            severity: Severity::Info,
            message: message.into(),
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = match self.severity {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        write!(f, "{label}: {}", self.message)
    }
}

/// What the deployment is, from its `hello` reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topology {
    ReplicaSet(String),
    Sharded,
    Standalone,
}

/// `hello`: a replica set member names its set (`setName`), a `mongos`
/// answers `msg: "isdbgrid"`, a standalone server neither.
pub fn topology(hello: &Document) -> Topology {
    if let Ok(name) = hello.get_str("setName") {
        return Topology::ReplicaSet(name.to_string());
    }
    if hello.get_str("msg") == Ok("isdbgrid") {
        return Topology::Sharded;
    }
    Topology::Standalone
}

/// The standalone finding, or none.
pub fn judge_topology(hello: &Document, url: &str) -> Option<Finding> {
    (topology(hello) == Topology::Standalone).then(|| {
        Finding::error(format!(
            "{} is a standalone server: change streams need a replica set or a sharded cluster; \
             run it as a one-member replica set (mongod --replSet rs0, then rs.initiate()) and add ?replicaSet=rs0 to source.url",
            redact(url)
        ))
    })
}

/// Whether the privileges of `connectionStatus` (with `showPrivileges`)
/// grant `action` on collection `coll` of `db`: a privilege on that
/// collection, on the whole database (`collection: ""`), on any database
/// with that collection name (`db: ""`), or on any resource.
fn granted(privileges: &[Bson], action: &str, db: &str, coll: &str) -> bool {
    privileges.iter().filter_map(Bson::as_document).any(|p| {
        let has_action = p
            .get_array("actions")
            .is_ok_and(|a| a.iter().any(|x| x.as_str() == Some(action)));
        let Ok(resource) = p.get_document("resource") else {
            return false;
        };
        let covers = resource.get_bool("anyResource") == Ok(true)
            || match (resource.get_str("db"), resource.get_str("collection")) {
                (Ok(rdb), Ok(rcoll)) => {
                    (rdb.is_empty() || rdb == db) && (rcoll.is_empty() || rcoll == coll)
                }
                _ => false,
            };
        has_action && covers
    })
}

/// Missing privileges, from a `connectionStatus` reply. Without
/// authenticated users (access control off) everything is allowed.
pub fn judge_privileges(status: &Document, config: &MongoConfig) -> Vec<Finding> {
    let Ok(auth) = status.get_document("authInfo") else {
        return Vec::new();
    };
    let users = auth
        .get_array("authenticatedUsers")
        .map(Vec::len)
        .unwrap_or(0);
    if users == 0 {
        return Vec::new();
    }
    let privileges = auth
        .get_array("authenticatedUserPrivileges")
        .cloned()
        .unwrap_or_default();
    let mut findings = Vec::new();
    let mut need = |action: &str, db: &str, coll: &str, why: &str| {
        if !granted(&privileges, action, db, coll) {
            let target = if db.is_empty() {
                "every database".to_string()
            } else if coll.is_empty() {
                format!("database {db}")
            } else {
                format!("{db}.{coll}")
            };
            findings.push(Finding::error(format!(
                "the user lacks the {action} action on {target} ({why}); grant a role with it, \
                 e.g. the read role (readAnyDatabase for every database)"
            )));
        }
    };
    if config.databases().len() > 1 {
        need(
            "changeStream",
            "",
            "",
            "a stream over several databases is the deployment's; or put signal_collection in the captured database",
        );
        need("find", "", "", "the deployment's stream");
    }
    for pattern in &config.collections {
        let coll = pattern.exact().map(|t| t.name).unwrap_or_default();
        need("changeStream", &pattern.db, &coll, "to stream its changes");
        need("find", &pattern.db, &coll, "to snapshot it");
    }
    let signal = &config.signal_collection;
    need(
        "changeStream",
        &signal.schema,
        &signal.name,
        "to read signals",
    );
    for action in ["insert", "remove", "update", "find"] {
        need(
            action,
            &signal.schema,
            "",
            "watermarks, position and snapshot progress",
        );
    }
    findings
}

/// One collection's `listCollections` entry: does it keep pre-images?
fn pre_images_enabled(entry: &Document) -> bool {
    entry
        .get_document("options")
        .and_then(|o| o.get_document("changeStreamPreAndPostImages"))
        .and_then(|p| p.get_bool("enabled"))
        .unwrap_or(false)
}

/// Findings about the captured collections, from the `listCollections`
/// entries of each database involved (`(db, entries)`).
pub fn judge_collections(listed: &[(String, Vec<Document>)], config: &MongoConfig) -> Vec<Finding> {
    let mut findings = Vec::new();
    for pattern in &config.collections {
        let entries: Vec<&Document> = listed
            .iter()
            .filter(|(db, _)| *db == pattern.db)
            .flat_map(|(_, entries)| entries)
            .filter(|e| {
                e.get_str("name")
                    .is_ok_and(|name| pattern.matches(&pattern.db, name))
            })
            .filter(|e| e.get_str("type").unwrap_or("collection") == "collection")
            .collect();
        if entries.is_empty() {
            findings.push(match pattern.exact() {
                Some(table) => Finding::error(format!(
                    "collection {table} does not exist; create it or fix source.collections"
                )),
                None => Finding::warning(format!(
                    "no collection matches {pattern} yet; its collections are captured once they exist"
                )),
            });
            continue;
        }
        for entry in entries {
            let name = entry.get_str("name").unwrap_or("?");
            if pre_images_enabled(entry) {
                continue;
            }
            let fix = format!(
                "db.getSiblingDB(\"{}\").runCommand({{collMod: \"{name}\", changeStreamPreAndPostImages: {{enabled: true}}}})",
                pattern.db
            );
            match config.pre_images {
                PreImages::Required => findings.push(Finding::error(format!(
                    "{}.{name} keeps no pre-images but source.pre_images = \"required\"; enable them: {fix}",
                    pattern.db
                ))),
                PreImages::WhenAvailable => findings.push(Finding::info(format!(
                    "{}.{name} keeps no pre-images: its updates and deletes have no before; to get one: {fix}",
                    pattern.db
                ))),
                PreImages::Off => {}
            }
        }
    }
    findings
}

/// A command's `cursor.firstBatch`.
fn first_batch(reply: &Document) -> Vec<Document> {
    reply
        .get_document("cursor")
        .and_then(|c| c.get_array("firstBatch"))
        .map(|batch| {
            batch
                .iter()
                .filter_map(Bson::as_document)
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// All findings for `config`, against the live deployment.
pub async fn check(config: &MongoConfig) -> Vec<Finding> {
    check_with(config, Duration::from_secs(10)).await
}

/// [`check`], giving up on reaching a server after `timeout` (unless the
/// URL sets its own `serverSelectionTimeoutMS` and `connectTimeoutMS`).
pub async fn check_with(config: &MongoConfig, timeout: Duration) -> Vec<Finding> {
    let url = redact(&config.url);
    let client = match connect_with(&config.url, "cdc check", timeout).await {
        Ok(client) => client,
        Err(e) => return vec![Finding::error(e.to_string())],
    };
    let admin = client.database("admin");
    let hello = match admin.run_command(doc! { "hello": 1 }).await {
        Ok(hello) => hello,
        Err(e) => {
            return vec![Finding::error(format!(
                "cannot reach {url}: {}; check the hosts, port, TLS settings and network path",
                describe(&e)
            ))]
        }
    };
    let mut findings: Vec<Finding> = judge_topology(&hello, &config.url).into_iter().collect();
    match admin
        .run_command(doc! { "connectionStatus": 1, "showPrivileges": true })
        .await
    {
        Ok(status) => findings.extend(judge_privileges(&status, config)),
        Err(e) => findings.push(Finding::error(format!(
            "cannot read this user's privileges on {url}: {}; check the user and password in source.url",
            describe(&e)
        ))),
    }
    let mut listed = Vec::new();
    for db in config.databases() {
        // The raw reply: its entries as the reference documents them.
        let entries = client
            .database(&db)
            .run_command(doc! { "listCollections": 1, "cursor": { "batchSize": 100_000 } })
            .await;
        match entries {
            Ok(reply) => listed.push((db, first_batch(&reply))),
            Err(e) => findings.push(Finding::error(format!(
                "cannot list the collections of database {db}: {}; grant listCollections on it",
                describe(&e)
            ))),
        }
    }
    findings.extend(judge_collections(&listed, config));
    findings
}

#[cfg(test)]
#[path = "preflight_tests.rs"]
mod tests;
