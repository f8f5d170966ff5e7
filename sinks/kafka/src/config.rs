//! The Kafka sink's settings (`[sink]` with `type = "kafka"` in `cdc.toml`)
//! and the librdkafka configuration built from them.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::ClientConfig;
use serde::{Deserialize, Deserializer};

use crate::template::{Template, TemplateError, Var};

/// Everything the Kafka sink can be told.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSinkConfig {
    /// `host:port[,host:port…]`, librdkafka's `bootstrap.servers`.
    pub bootstrap_servers: String,
    /// Topic of a table's change events. Placeholders: `{prefix}` (the
    /// source's name), `{db}`, `{schema}`, `{table}`.
    #[serde(default = "default_topic")]
    pub topic: String,
    /// A tombstone (same key, null value) after every delete, so compacted
    /// topics can drop the key.
    #[serde(default = "yes")]
    pub tombstones: bool,
    /// Topic of logical decoding messages (`pg_logical_emit_message`);
    /// empty to skip them. Placeholders: `{prefix}`, `{db}`.
    #[serde(default = "default_message_topic")]
    pub message_topic: String,
    /// Topic of the BEGIN and END records of transaction metadata
    /// (`format."provide.transaction.metadata"`), Debezium's
    /// `<prefix>.transaction`. Placeholders: `{prefix}`, `{db}`.
    #[serde(default = "default_transaction_topic")]
    pub transaction_topic: String,
    /// Topic of heartbeat records (`format."heartbeat.interval.ms"`),
    /// Debezium's `__debezium-heartbeat.<prefix>`. Placeholders:
    /// `{prefix}`, `{db}`.
    #[serde(default = "default_heartbeat_topic")]
    pub heartbeat_topic: String,
    /// Create missing topics through the admin API (many brokers do not
    /// auto-create). Off: a missing topic stops the sink with an error.
    #[serde(default = "yes")]
    pub create_topics: bool,
    /// Partitions of created topics.
    #[serde(default = "default_partitions")]
    pub partitions: i32,
    /// Replication factor of created topics; -1 takes the broker's default.
    #[serde(default = "default_replication_factor")]
    pub replication_factor: i32,
    /// `cleanup.policy` of created topics (`delete`, `compact`,
    /// `compact,delete`); unset takes the broker's default.
    #[serde(default)]
    pub cleanup_policy: Option<String>,
    /// Further topic configs for created topics (`retention.ms`, …).
    #[serde(default, deserialize_with = "flat_properties")]
    pub topic_config: BTreeMap<String, String>,
    /// Longest one `flush` waits for delivery reports before reporting a
    /// retriable error (the pipeline then backs off and flushes again;
    /// nothing is lost or re-sent meanwhile).
    #[serde(default = "default_flush_timeout_ms")]
    pub flush_timeout_ms: u64,
    /// librdkafka properties, passed through after the sink's defaults
    /// (dotted keys may be written as nested TOML keys: `linger.ms = 20`).
    #[serde(default, deserialize_with = "flat_properties")]
    pub properties: BTreeMap<String, String>,
    /// The outbox event router.
    #[serde(default)]
    pub outbox: Option<OutboxConfig>,
}

/// The outbox pattern: inserts into one table become events routed by
/// aggregate type. Column names default to Debezium's.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxConfig {
    /// The outbox table, `schema.table`. It must be captured (listed in
    /// `source.tables`); its rows are routed, never sent as change events.
    pub table: String,
    /// Placeholders: `{prefix}`, `{db}`, `{schema}`, `{table}`,
    /// `{aggregatetype}`.
    #[serde(default = "default_outbox_topic")]
    pub topic: String,
    #[serde(default = "default_id_column")]
    pub id_column: String,
    #[serde(default = "default_aggregate_type_column")]
    pub aggregate_type_column: String,
    #[serde(default = "default_aggregate_id_column")]
    pub aggregate_id_column: String,
    #[serde(default = "default_type_column")]
    pub type_column: String,
    #[serde(default = "default_payload_column")]
    pub payload_column: String,
}

fn yes() -> bool {
    true
}
fn default_topic() -> String {
    "{prefix}.{schema}.{table}".into()
}
fn default_message_topic() -> String {
    "{prefix}.message".into()
}
fn default_transaction_topic() -> String {
    "{prefix}.transaction".into()
}
fn default_heartbeat_topic() -> String {
    "__debezium-heartbeat.{prefix}".into()
}
fn default_partitions() -> i32 {
    1
}
fn default_replication_factor() -> i32 {
    -1
}
fn default_flush_timeout_ms() -> u64 {
    5000
}
fn default_outbox_topic() -> String {
    "{prefix}.outbox.{aggregatetype}".into()
}
fn default_id_column() -> String {
    "id".into()
}
fn default_aggregate_type_column() -> String {
    "aggregatetype".into()
}
fn default_aggregate_id_column() -> String {
    "aggregateid".into()
}
fn default_type_column() -> String {
    "type".into()
}
fn default_payload_column() -> String {
    "payload".into()
}

/// Producer defaults, applied before `properties`.
///
/// Ordering: the idempotent producer (`enable.idempotence`, which implies
/// `acks=all` and at most 5 requests in flight) keeps each partition's
/// messages in produce order across its internal retries, without gaps or
/// duplicates. `message.timeout.ms = 0` (no timeout) means librdkafka never
/// gives up on a message for a transient reason, so it never leaves a gap
/// that a later message could overtake: retriable broker errors and outages
/// are retried inside librdkafka, in order, and the sink's flush simply waits
/// (reporting a retriable error every `flush_timeout_ms`, acknowledging
/// nothing). See the crate docs for what happens when a delivery fails anyway.
///
/// Throughput: measured with `cargo bench -p cdc-sink-kafka` (README,
/// "Kafka sink"); `linger.ms` trades a few milliseconds of latency for fuller
/// batches, lz4 is the cheapest codec per byte saved on JSON.
pub const DEFAULT_PROPERTIES: &[(&str, &str)] = &[
    ("enable.idempotence", "true"),
    ("acks", "all"),
    ("message.timeout.ms", "0"),
    // The Java client's default partitioner: keyed messages by murmur2 of the
    // key bytes, so Kafka Streams and Connect consumers co-partition.
    ("partitioner", "murmur2_random"),
    ("linger.ms", "5"),
    ("batch.size", "1000000"),
    ("batch.num.messages", "10000"),
    ("compression.type", "lz4"),
    ("queue.buffering.max.messages", "1000000"),
    ("client.id", "cdc"),
];

/// Properties the sink's guarantees rest on: refused if overridden.
const FIXED_PROPERTIES: &[(&str, &str)] = &[("enable.idempotence", "true")];

/// A setting that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("sink.{key}: {source}")]
    Template {
        key: &'static str,
        source: TemplateError,
    },
    #[error("sink.outbox.table: invalid table name '{0}'")]
    OutboxTable(String),
    #[error(
        "sink.properties.{key} must stay '{value}': the sink's ordering guarantee depends on it"
    )]
    Fixed {
        key: &'static str,
        value: &'static str,
    },
    #[error("sink.bootstrap_servers is empty")]
    NoBootstrap,
    #[error("sink.partitions must be at least 1")]
    Partitions,
    #[error("sink.{0} must be at least 1")]
    Zero(&'static str),
}

/// Templates parsed once.
#[derive(Debug, Clone)]
pub(crate) struct Templates {
    pub table: Template,
    pub message: Option<Template>,
    pub transaction: Template,
    pub heartbeat: Template,
    pub outbox: Option<Template>,
}

impl KafkaSinkConfig {
    /// A config with defaults for everything but the brokers.
    pub fn new(bootstrap_servers: impl Into<String>) -> KafkaSinkConfig {
        KafkaSinkConfig {
            bootstrap_servers: bootstrap_servers.into(),
            topic: default_topic(),
            tombstones: true,
            message_topic: default_message_topic(),
            transaction_topic: default_transaction_topic(),
            heartbeat_topic: default_heartbeat_topic(),
            create_topics: true,
            partitions: default_partitions(),
            replication_factor: default_replication_factor(),
            cleanup_policy: None,
            topic_config: BTreeMap::new(),
            flush_timeout_ms: default_flush_timeout_ms(),
            properties: BTreeMap::new(),
            outbox: None,
        }
    }

    pub fn flush_timeout(&self) -> Duration {
        Duration::from_millis(self.flush_timeout_ms)
    }

    /// Check everything that can be checked without a broker.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.templates()?;
        if self.bootstrap_servers.trim().is_empty() {
            return Err(ConfigError::NoBootstrap);
        }
        if self.partitions < 1 {
            return Err(ConfigError::Partitions);
        }
        if self.flush_timeout_ms == 0 {
            return Err(ConfigError::Zero("flush_timeout_ms"));
        }
        for (key, value) in FIXED_PROPERTIES {
            if self
                .properties
                .get(*key)
                .is_some_and(|v| !v.eq_ignore_ascii_case(value))
            {
                return Err(ConfigError::Fixed { key, value });
            }
        }
        if let Some(outbox) = &self.outbox {
            cdc_engine::TableRef::parse(&outbox.table)
                .map_err(|_| ConfigError::OutboxTable(outbox.table.clone()))?;
        }
        Ok(())
    }

    pub(crate) fn templates(&self) -> Result<Templates, ConfigError> {
        let table = Template::parse(
            &self.topic,
            &[Var::Prefix, Var::Db, Var::Schema, Var::Table],
        )
        .map_err(|source| ConfigError::Template {
            key: "topic",
            source,
        })?;
        let message = if self.message_topic.is_empty() {
            None
        } else {
            Some(
                Template::parse(&self.message_topic, &[Var::Prefix, Var::Db]).map_err(
                    |source| ConfigError::Template {
                        key: "message_topic",
                        source,
                    },
                )?,
            )
        };
        let transaction = Template::parse(&self.transaction_topic, &[Var::Prefix, Var::Db])
            .map_err(|source| ConfigError::Template {
                key: "transaction_topic",
                source,
            })?;
        let heartbeat =
            Template::parse(&self.heartbeat_topic, &[Var::Prefix, Var::Db]).map_err(|source| {
                ConfigError::Template {
                    key: "heartbeat_topic",
                    source,
                }
            })?;
        let outbox = match &self.outbox {
            None => None,
            Some(outbox) => Some(
                Template::parse(
                    &outbox.topic,
                    &[
                        Var::Prefix,
                        Var::Db,
                        Var::Schema,
                        Var::Table,
                        Var::AggregateType,
                    ],
                )
                .map_err(|source| ConfigError::Template {
                    key: "outbox.topic",
                    source,
                })?,
            ),
        };
        Ok(Templates {
            table,
            message,
            transaction,
            heartbeat,
            outbox,
        })
    }

    /// The producer's librdkafka configuration: defaults, then `properties`.
    pub fn producer_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        for (key, value) in DEFAULT_PROPERTIES {
            config.set(*key, *value);
        }
        self.client_common(&mut config);
        config
    }

    /// The admin client's configuration: `properties` (security settings
    /// and the like) without the producer defaults, which would make it
    /// request a producer id of its own.
    pub fn admin_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("client.id", "cdc-admin");
        self.client_common(&mut config);
        for key in ["enable.idempotence", "transactional.id"] {
            config.remove(key);
        }
        config
    }

    fn client_common(&self, config: &mut ClientConfig) {
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        config.set("bootstrap.servers", self.bootstrap_servers.trim());
    }
}

/// Whether a librdkafka property holds a secret, so neither it nor an error
/// quoting its value is ever logged.
pub fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "token",
        ".pem",
        "sasl.oauthbearer.config",
    ]
    .iter()
    .any(|s| key.contains(s))
        || key == "ssl_key"
        || key.ends_with("ssl.key")
}

/// A property value as TOML may write it; nested tables are dotted keys
/// (`[sink.properties] linger.ms = 5` is `{"linger": {"ms": 5}}` to TOML).
#[derive(Deserialize)]
#[serde(untagged)]
enum Property {
    Text(String),
    Bool(bool),
    Int(i64),
    Float(f64),
    Table(BTreeMap<String, Property>),
}

fn flat_properties<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    let table = BTreeMap::<String, Property>::deserialize(deserializer)?;
    let mut out = BTreeMap::new();
    flatten(String::new(), table, &mut out);
    Ok(out)
}

fn flatten(prefix: String, table: BTreeMap<String, Property>, out: &mut BTreeMap<String, String>) {
    for (key, value) in table {
        let key = if prefix.is_empty() {
            key
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            Property::Text(s) => {
                out.insert(key, s);
            }
            Property::Bool(b) => {
                out.insert(key, b.to_string());
            }
            Property::Int(i) => {
                out.insert(key, i.to_string());
            }
            Property::Float(f) => {
                out.insert(key, f.to_string());
            }
            Property::Table(inner) => flatten(key, inner, out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Wrapper {
        sink: KafkaSinkConfig,
    }

    /// The shapes TOML hands serde, written as JSON (same data model).
    fn parse(json: &str) -> KafkaSinkConfig {
        let wrapper: Wrapper = serde_json::from_str(json).unwrap();
        wrapper.sink
    }

    #[test]
    fn nested_and_quoted_properties_flatten_to_dotted_keys() {
        let config = parse(
            r#"{"sink": {"bootstrap_servers": "b:9092",
                "properties": {"linger": {"ms": 20}, "compression.type": "zstd",
                               "enable": {"idempotence": true}},
                "outbox": {"table": "public.outbox"}}}"#,
        );
        assert_eq!(config.properties["linger.ms"], "20");
        assert_eq!(config.properties["compression.type"], "zstd");
        assert_eq!(config.properties["enable.idempotence"], "true");
        assert_eq!(config.topic, "{prefix}.{schema}.{table}");
        assert!(config.tombstones && config.create_topics);
        let outbox = config.outbox.as_ref().unwrap();
        assert_eq!(outbox.aggregate_type_column, "aggregatetype");
        assert_eq!(outbox.payload_column, "payload");
        config.validate().unwrap();
    }

    #[test]
    fn idempotence_cannot_be_switched_off() {
        let config = parse(
            r#"{"sink": {"bootstrap_servers": "b:9092",
                "properties": {"enable.idempotence": "false"}}}"#,
        );
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("enable.idempotence"), "{err}");
    }

    #[test]
    fn bad_templates_are_refused() {
        let mut config = KafkaSinkConfig::new("b:9092");
        config.topic = "{prefix}.{nope}".into();
        assert!(config.validate().is_err());
        config.topic = "{prefix}.{aggregatetype}".into();
        assert!(config.validate().is_err());
    }

    #[test]
    fn secrets_are_recognised() {
        assert!(is_secret("sasl.password"));
        assert!(is_secret("ssl.key.password"));
        assert!(is_secret("ssl.key.pem"));
        assert!(!is_secret("linger.ms"));
        assert!(!is_secret("sasl.username"));
    }
}
