//! What the MongoDB source is configured with, and the collection patterns
//! it captures (`shop.orders`, `shop.*`, `shop.order_*`).

use std::fmt;
use std::time::Duration;

use bson::{doc, Bson, Document};
use cdc_engine::TableRef;

/// What to do when the stored resume token is no longer in the oplog
/// (`ChangeStreamHistoryLost`): the MongoDB form of a lost slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HistoryLostPolicy {
    /// Exit non-zero with the line that says so.
    #[default]
    Fail,
    /// Start the stream at the present, snapshot every captured collection
    /// again incrementally while it streams, and log the range missed.
    Resnapshot,
}

/// `fullDocumentBeforeChange`: Debezium's `before`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PreImages {
    /// `whenAvailable`: a collection with `changeStreamPreAndPostImages`
    /// gets `before`, the others do not.
    #[default]
    WhenAvailable,
    /// `required`: the server fails the stream when one is missing;
    /// `cdc check` says which collections lack them.
    Required,
    /// Not asked for.
    Off,
}

#[derive(Debug, Clone)]
pub struct MongoConfig {
    /// `mongodb://` or `mongodb+srv://`; TLS and SCRAM as the URL says.
    pub url: String,
    pub collections: Vec<CollectionPattern>,
    /// Where signals and watermarks go (`cdc.signal`).
    pub signal_collection: TableRef,
    /// The capture's logical name (Debezium's `topic.prefix`): the key of
    /// its position and snapshot progress, which live in the signal
    /// collection's database.
    pub name: String,
    pub pre_images: PreImages,
    pub on_history_lost: HistoryLostPolicy,
    /// How long one `getMore` waits for changes: the idle stream's
    /// heartbeat interval.
    pub max_await: Duration,
    pub batch_size: u32,
}

impl MongoConfig {
    pub fn new(url: impl Into<String>, collections: Vec<CollectionPattern>) -> Self {
        MongoConfig {
            url: url.into(),
            collections,
            signal_collection: TableRef::new("cdc", "signal"),
            name: "cdc".into(),
            pre_images: PreImages::default(),
            on_history_lost: HistoryLostPolicy::default(),
            max_await: Duration::from_secs(1),
            batch_size: 1000,
        }
    }

    /// The database the engine keeps its state in.
    pub fn state_database(&self) -> &str {
        &self.signal_collection.schema
    }

    /// Whether `db.collection` is captured.
    pub fn captures(&self, db: &str, collection: &str) -> bool {
        self.collections.iter().any(|p| p.matches(db, collection))
    }

    /// The databases the stream involves.
    pub fn databases(&self) -> Vec<String> {
        let mut dbs: Vec<String> = self
            .collections
            .iter()
            .map(|p| p.db.clone())
            .chain(std::iter::once(self.signal_collection.schema.clone()))
            .collect();
        dbs.sort();
        dbs.dedup();
        dbs
    }

    /// The `$match` of the one change stream: the captured collections, the
    /// signal collection, and the database-level events (`dropDatabase`)
    /// of the databases involved. Other tools have lost signals to a
    /// filter that left the signal collection out.
    pub fn stream_match(&self) -> Document {
        let mut any: Vec<Bson> = self
            .collections
            .iter()
            .map(|p| Bson::Document(p.ns_filter()))
            .collect();
        any.push(Bson::Document(doc! {
            "ns.db": &self.signal_collection.schema,
            "ns.coll": &self.signal_collection.name,
        }));
        let dbs: Vec<Bson> = self
            .collections
            .iter()
            .map(|p| Bson::String(p.db.clone()))
            .collect();
        any.push(Bson::Document(doc! {
            "operationType": "dropDatabase",
            "ns.db": { "$in": dbs },
        }));
        doc! { "$match": { "$or": any } }
    }
}

/// `db.collection`, where the collection may hold `*` (any characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionPattern {
    pub db: String,
    pub collection: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("'{0}' is not database.collection (for example shop.orders or shop.*)")]
    NotQualified(String),
    #[error("'{0}': the database name cannot hold '*' (list each database)")]
    WildDatabase(String),
    #[error("'{0}': a database name cannot hold any of /\\. \"$*<>:|?")]
    BadDatabase(String),
}

impl CollectionPattern {
    pub fn parse(text: &str) -> Result<CollectionPattern, PatternError> {
        let Some((db, collection)) = text.split_once('.') else {
            return Err(PatternError::NotQualified(text.into()));
        };
        if db.is_empty() || collection.is_empty() {
            return Err(PatternError::NotQualified(text.into()));
        }
        if db.contains('*') {
            return Err(PatternError::WildDatabase(text.into()));
        }
        // MongoDB's own rule for database names (Unix and Windows).
        if db.chars().any(|c| "/\\. \"$<>:|?".contains(c)) {
            return Err(PatternError::BadDatabase(text.into()));
        }
        Ok(CollectionPattern {
            db: db.into(),
            collection: collection.into(),
        })
    }

    /// The exact collection, when the pattern names one.
    pub fn exact(&self) -> Option<TableRef> {
        (!self.collection.contains('*')).then(|| TableRef::new(&self.db, &self.collection))
    }

    pub fn matches(&self, db: &str, collection: &str) -> bool {
        db == self.db && glob_matches(&self.collection, collection)
    }

    /// The stream filter of this pattern, matched by the server: exact
    /// names as equality, `*` as an anchored regular expression whose other
    /// characters are escaped (no user text becomes a pattern operator).
    fn ns_filter(&self) -> Document {
        if self.collection == "*" {
            return doc! { "ns.db": &self.db };
        }
        if !self.collection.contains('*') {
            return doc! { "ns.db": &self.db, "ns.coll": &self.collection };
        }
        let mut regex = String::from("^");
        for (i, part) in self.collection.split('*').enumerate() {
            if i > 0 {
                regex.push_str(".*");
            }
            for c in part.chars() {
                if !c.is_alphanumeric() && c != '_' {
                    regex.push('\\');
                }
                regex.push(c);
            }
        }
        regex.push('$');
        doc! {
            "ns.db": &self.db,
            "ns.coll": { "$regex": regex },
        }
    }
}

impl fmt::Display for CollectionPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.db, self.collection)
    }
}

/// `*` matches any run of characters, everything else itself.
fn glob_matches(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let Some(first) = parts.next() else {
        return text.is_empty();
    };
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_parse_and_match() {
        let p = CollectionPattern::parse("shop.orders").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.exact(), Some(TableRef::new("shop", "orders")));
        assert!(p.matches("shop", "orders"));
        assert!(!p.matches("shop", "orders2"));
        assert!(!p.matches("shop2", "orders"));
        let all = CollectionPattern::parse("shop.*").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(all.exact(), None);
        assert!(all.matches("shop", "anything.with.dots"));
        let some = CollectionPattern::parse("shop.order_*_v*").unwrap_or_else(|e| panic!("{e}"));
        assert!(some.matches("shop", "order_x_v2"));
        assert!(some.matches("shop", "order__v"));
        assert!(!some.matches("shop", "order_x_w2"));
        assert!(!some.matches("shop", "xorder_x_v2"));
        // A collection name may hold dots: only the first splits.
        let dotted =
            CollectionPattern::parse("order.outbox.events").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            dotted.exact(),
            Some(TableRef::new("order", "outbox.events"))
        );
        for bad in ["orders", ".orders", "shop.", "sh*p.orders", "a b.c"] {
            assert!(CollectionPattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn glob_is_anchored_and_greedy_enough() {
        assert!(glob_matches("a*a", "aa"));
        assert!(glob_matches("a*a", "aba"));
        assert!(!glob_matches("a*a", "a"));
        assert!(glob_matches("*", ""));
        assert!(glob_matches("**", "x"));
        assert!(glob_matches("x*", "x"));
        assert!(!glob_matches("x*y", "xyz"));
    }

    #[test]
    fn the_stream_match_holds_the_signal_collection_and_escapes_names() {
        let mut config = MongoConfig::new(
            "mongodb://localhost/?replicaSet=rs0",
            vec![
                CollectionPattern::parse("shop.orders").unwrap_or_else(|e| panic!("{e}")),
                CollectionPattern::parse("shop.a.b*").unwrap_or_else(|e| panic!("{e}")),
            ],
        );
        config.signal_collection = TableRef::new("ops", "signals");
        let stage = config.stream_match();
        let any = stage
            .get_document("$match")
            .and_then(|m| m.get_array("$or"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(any.contains(&Bson::Document(
            doc! { "ns.db": "ops", "ns.coll": "signals" }
        )));
        assert!(any.contains(&Bson::Document(
            doc! { "ns.db": "shop", "ns.coll": "orders" }
        )));
        assert!(any.contains(&Bson::Document(
            doc! { "ns.db": "shop", "ns.coll": { "$regex": "^a\\.b.*$" } }
        )));
        assert_eq!(
            config.databases(),
            vec!["ops".to_string(), "shop".to_string()]
        );
    }
}
