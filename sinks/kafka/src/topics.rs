//! Making sure a topic exists before the first record goes to it.
//!
//! With `create_topics` (the default) a topic is created through the admin
//! API the first time the sink needs it; "already exists" is success. Without
//! it, the topic's metadata is fetched once, so a missing topic stops the
//! sink at once with its name instead of after librdkafka's metadata
//! propagation timeout.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use cdc_engine::SinkError;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{Producer, ThreadedProducer};

use crate::config::KafkaSinkConfig;
use crate::delivery::{LogContext, SinkContext};
use crate::error::{classify, hint, Class, OpenError};

pub(crate) struct Topics {
    admin: Option<AdminClient<LogContext>>,
    partitions: i32,
    replication_factor: i32,
    configs: Vec<(String, String)>,
    timeout: Duration,
    ready: HashSet<Arc<str>>,
}

impl Topics {
    pub fn new(config: &KafkaSinkConfig) -> Result<Topics, OpenError> {
        let admin = if config.create_topics {
            Some(
                config
                    .admin_config()
                    .create_with_context(LogContext::default())
                    .map_err(OpenError::from_kafka)?,
            )
        } else {
            None
        };
        let mut configs: Vec<(String, String)> = config
            .topic_config
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Some(policy) = &config.cleanup_policy {
            configs.retain(|(k, _)| k != "cleanup.policy");
            configs.push(("cleanup.policy".into(), policy.clone()));
        }
        Ok(Topics {
            admin,
            partitions: config.partitions,
            replication_factor: config.replication_factor,
            configs,
            timeout: config.flush_timeout().max(Duration::from_secs(10)),
            ready: HashSet::new(),
        })
    }

    pub fn is_ready(&self, topic: &str) -> bool {
        self.ready.contains(topic)
    }

    /// Create (or check) `topics`. Retriable while brokers are away; fatal
    /// when the brokers refuse.
    pub async fn ensure(
        &mut self,
        topics: &[Arc<str>],
        producer: &ThreadedProducer<SinkContext>,
    ) -> Result<(), SinkError> {
        match &self.admin {
            Some(admin) => self.create(admin, topics).await?,
            None => self.check(topics, producer).await?,
        }
        self.ready.extend(topics.iter().cloned());
        Ok(())
    }

    async fn create(
        &self,
        admin: &AdminClient<LogContext>,
        topics: &[Arc<str>],
    ) -> Result<(), SinkError> {
        let new: Vec<NewTopic<'_>> = topics
            .iter()
            .map(|topic| {
                let mut new = NewTopic::new(
                    topic,
                    self.partitions,
                    TopicReplication::Fixed(self.replication_factor),
                );
                for (key, value) in &self.configs {
                    new = new.set(key, value);
                }
                new
            })
            .collect();
        let options = AdminOptions::new()
            .request_timeout(Some(self.timeout))
            .operation_timeout(Some(self.timeout));
        let results = tokio::time::timeout(self.timeout * 2, admin.create_topics(&new, &options))
            .await
            .map_err(|_| {
                SinkError::Retriable(format!(
                    "creating topic {}: no answer from Kafka in {:?}",
                    names(topics),
                    self.timeout * 2
                ))
            })?
            .map_err(|err| {
                SinkError::Retriable(format!("creating topic {}: {err}", names(topics)))
            })?;
        for result in results {
            match result {
                Ok(topic) => tracing::info!(topic, partitions = self.partitions, "created topic"),
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => {
                    return Err(match classify(code) {
                        Class::Fatal => SinkError::Fatal(format!(
                            "cannot create topic {topic}: {code} ({})",
                            hint(code)
                        )),
                        _ => SinkError::Retriable(format!("creating topic {topic}: {code}")),
                    })
                }
            }
        }
        Ok(())
    }

    async fn check(
        &self,
        topics: &[Arc<str>],
        producer: &ThreadedProducer<SinkContext>,
    ) -> Result<(), SinkError> {
        for topic in topics {
            let producer = producer.clone();
            let name = topic.clone();
            let timeout = self.timeout;
            // A blocking request: keep it off the async workers.
            let metadata = tokio::task::spawn_blocking(move || {
                producer.client().fetch_metadata(Some(&name), timeout)
            })
            .await
            .map_err(|err| SinkError::Retriable(format!("checking topic {topic}: {err}")))?
            .map_err(|err| SinkError::Retriable(format!("checking topic {topic}: {err}")))?;
            let error = metadata
                .topics()
                .iter()
                .find(|t| t.name() == &**topic)
                .and_then(|t| t.error())
                .map(RDKafkaErrorCode::from);
            match error {
                None | Some(RDKafkaErrorCode::LeaderNotAvailable) => {}
                Some(code) if classify(code) == Class::Fatal => {
                    return Err(SinkError::Fatal(format!(
                        "topic {topic}: {code} ({})",
                        hint(code)
                    )))
                }
                Some(code) => {
                    return Err(SinkError::Retriable(format!(
                        "checking topic {topic}: {code}"
                    )))
                }
            }
        }
        Ok(())
    }
}

fn names(topics: &[Arc<str>]) -> String {
    topics.iter().map(|t| &**t).collect::<Vec<_>>().join(", ")
}
