//! Replies shaped as MongoDB's command reference documents them: `hello`
//! (replica set member, mongos, standalone), `connectionStatus` with
//! `showPrivileges`, `listCollections` entries with
//! `changeStreamPreAndPostImages`. The "unreachable" case runs against real
//! sockets of this machine.

use bson::{doc, Document};

use super::*;
use crate::config::CollectionPattern;

fn config(collections: &[&str]) -> MongoConfig {
    MongoConfig::new(
        "mongodb://cdc:secret@db1:27017/?replicaSet=rs0",
        collections
            .iter()
            .map(|c| CollectionPattern::parse(c).unwrap_or_else(|e| panic!("{e}")))
            .collect(),
    )
}

#[test]
fn a_standalone_server_is_one_error_line_with_the_fix() {
    let member =
        doc! { "isWritablePrimary": true, "setName": "rs0", "hosts": ["db1:27017"], "ok": 1.0 };
    let mongos = doc! { "isWritablePrimary": true, "msg": "isdbgrid", "ok": 1.0 };
    let standalone = doc! { "isWritablePrimary": true, "maxWireVersion": 21, "ok": 1.0 };
    assert_eq!(topology(&member), Topology::ReplicaSet("rs0".into()));
    assert_eq!(topology(&mongos), Topology::Sharded);
    assert!(judge_topology(&member, "mongodb://x").is_none());
    assert!(judge_topology(&mongos, "mongodb://x").is_none());
    let finding = judge_topology(&standalone, "mongodb://cdc:secret@db1:27017/")
        .unwrap_or_else(|| panic!("standalone passed"));
    assert_eq!(finding.severity, Severity::Error);
    let line = finding.to_string();
    assert!(
        line.contains("standalone") && line.contains("--replSet rs0"),
        "{line}"
    );
    assert!(!line.contains("secret") && !line.contains('\n'), "{line}");
}

fn status(privileges: Vec<Document>) -> Document {
    doc! {
        "authInfo": {
            "authenticatedUsers": [{ "user": "cdc", "db": "admin" }],
            "authenticatedUserRoles": [{ "role": "custom", "db": "admin" }],
            "authenticatedUserPrivileges": privileges,
        },
        "ok": 1.0,
    }
}

#[test]
fn missing_privileges_are_named_with_their_collection() {
    let mut config = config(&["shop.orders"]);
    config.signal_collection = cdc_engine::TableRef::new("shop", "cdc_signal");
    // `read` and `readWrite` on shop, as roles expand to.
    let enough = status(vec![
        doc! { "resource": { "db": "shop", "collection": "" }, "actions": ["changeStream", "find", "insert", "listCollections", "remove", "update"] },
    ]);
    assert_eq!(judge_privileges(&enough, &config), vec![]);
    // With the signal collection in another database, the stream is the
    // deployment's: it needs every database.
    let mut several = config.clone();
    several.signal_collection = cdc_engine::TableRef::new("cdc", "signal");
    let per_db = status(vec![
        doc! { "resource": { "db": "shop", "collection": "" }, "actions": ["changeStream", "find"] },
        doc! { "resource": { "db": "cdc", "collection": "" }, "actions": ["changeStream", "find", "insert", "remove", "update"] },
    ]);
    let lines: Vec<String> = judge_privileges(&per_db, &several)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].contains("changeStream action on every database"),
        "{lines:?}"
    );
    let only_find = status(vec![
        doc! { "resource": { "db": "shop", "collection": "orders" }, "actions": ["find"] },
        doc! { "resource": { "db": "shop", "collection": "" }, "actions": ["find", "insert", "remove", "update"] },
        doc! { "resource": { "db": "shop", "collection": "cdc_signal" }, "actions": ["changeStream", "find"] },
    ]);
    let findings = judge_privileges(&only_find, &config);
    assert_eq!(findings.len(), 1, "{findings:?}");
    let line = findings[0].to_string();
    assert!(
        line.contains("changeStream") && line.contains("shop.orders"),
        "{line}"
    );
    // Access control off: nobody is authenticated, nothing is missing.
    let open = doc! { "authInfo": { "authenticatedUsers": [], "authenticatedUserPrivileges": [] }, "ok": 1.0 };
    assert_eq!(judge_privileges(&open, &config), vec![]);
    let root = status(vec![
        doc! { "resource": { "anyResource": true }, "actions": ["changeStream", "find", "insert", "remove", "update"] },
    ]);
    assert_eq!(judge_privileges(&root, &config), vec![]);
}

#[test]
fn unknown_collections_and_missing_pre_images_are_said() {
    let entry = |name: &str, pre_images: bool| {
        doc! {
            "name": name,
            "type": "collection",
            "options": { "changeStreamPreAndPostImages": { "enabled": pre_images } },
            "info": { "readOnly": false },
        }
    };
    let listed = vec![(
        "shop".to_string(),
        vec![
            entry("orders", true),
            entry("carts", false),
            doc! { "name": "v", "type": "view", "options": {} },
        ],
    )];
    let mut config = config(&[
        "shop.orders",
        "shop.carts",
        "shop.missing",
        "shop.x*",
        "shop.v",
    ]);
    let lines: Vec<String> = judge_collections(&listed, &config)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        lines,
        [
            "info: shop.carts keeps no pre-images: its updates and deletes have no before; to get one: db.getSiblingDB(\"shop\").runCommand({collMod: \"carts\", changeStreamPreAndPostImages: {enabled: true}})",
            "error: collection shop.missing does not exist; create it or fix source.collections",
            "warning: no collection matches shop.x* yet; its collections are captured once they exist",
            // A view has no change stream: not a collection.
            "error: collection shop.v does not exist; create it or fix source.collections",
        ]
    );
    config.pre_images = PreImages::Required;
    let findings = judge_collections(&listed, &config);
    assert!(findings[0].severity == Severity::Error && findings[0].message.contains("required"));
}

#[tokio::test]
async fn an_unreachable_server_is_one_line_naming_it() {
    // A port of this machine that nothing listens on: bound, then closed.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        listener
            .local_addr()
            .unwrap_or_else(|e| panic!("{e}"))
            .port()
    };
    let mut config = config(&["shop.orders"]);
    config.url =
        format!("mongodb://cdc:secret@127.0.0.1:{port}/?replicaSet=rs0&directConnection=true");
    let findings = check_with(&config, Duration::from_secs(2)).await;
    assert_eq!(findings.len(), 1, "{findings:?}");
    let line = findings[0].to_string();
    assert!(
        line.starts_with(&format!(
            "error: cannot reach mongodb://cdc:***@127.0.0.1:{port}/"
        )),
        "{line}"
    );
    assert!(!line.contains("secret") && !line.contains('\n'), "{line}");
}

#[tokio::test]
async fn a_server_that_accepts_and_never_answers_is_unreachable_too() {
    // A real socket that takes the connection and says nothing (a dead
    // proxy, a firewall that only drops): the check gives up and says so.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let port = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("{e}"))
        .port();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            open.push(socket);
        }
    });
    let mut config = config(&["shop.orders"]);
    config.url = format!("mongodb://127.0.0.1:{port}/?directConnection=true");
    let findings = check_with(&config, Duration::from_secs(2)).await;
    held.abort();
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert!(
        findings[0]
            .message
            .starts_with("cannot reach mongodb://127.0.0.1:"),
        "{findings:?}"
    );
}
