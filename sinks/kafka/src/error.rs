//! Which Kafka errors a retry can fix, and how to say the others in a line.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::config::{is_secret, ConfigError};

/// Why the sink could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// librdkafka refused a property. The value is never shown: it may be a
    /// secret.
    #[error("sink.properties.{key}: {reason}")]
    Property { key: String, reason: String },
    #[error("creating the Kafka client: {0}")]
    Client(String),
}

impl OpenError {
    pub(crate) fn from_kafka(err: KafkaError) -> OpenError {
        match err {
            KafkaError::ClientConfig(_, description, key, _value) => {
                let reason = if is_secret(&key) {
                    "invalid value".to_string()
                } else {
                    description
                };
                OpenError::Property { key, reason }
            }
            other => OpenError::Client(other.to_string()),
        }
    }
}

/// What a failed delivery means for the sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// Retrying cannot help: stop with a clear message.
    Fatal,
    /// The idempotent producer hit an unrecoverable state (librdkafka's
    /// `_FATAL`): a new producer must send the unconfirmed messages again.
    ProducerFatal,
    /// Send the message again (librdkafka gave up on it, e.g. after a
    /// user-set `message.timeout.ms`).
    Retriable,
}

pub(crate) fn classify(code: RDKafkaErrorCode) -> Class {
    use RDKafkaErrorCode as C;
    match code {
        C::Fatal => Class::ProducerFatal,
        C::MessageSizeTooLarge
        | C::InvalidMessageSize
        | C::MessageBatchTooLarge
        | C::TopicAuthorizationFailed
        | C::ClusterAuthorizationFailed
        | C::TransactionalIdAuthorizationFailed
        | C::SaslAuthenticationFailed
        | C::Authentication
        | C::UnsupportedSASLMechanism
        | C::UnknownTopicOrPartition
        | C::UnknownTopic
        | C::UnknownPartition
        | C::InvalidTopic
        | C::InvalidRecord
        | C::InvalidRequiredAcks
        | C::InvalidTimestamp
        | C::UnsupportedForMessageFormat
        | C::UnsupportedCompressionType
        | C::UnsupportedVersion
        | C::PolicyViolation
        | C::InvalidArgument
        | C::InvalidConfig
        | C::InvalidPartitions
        | C::InvalidReplicationFactor
        | C::TopicDeletionDisabled => Class::Fatal,
        _ => Class::Retriable,
    }
}

/// What to do about a fatal error, for the one-line message.
pub(crate) fn hint(code: RDKafkaErrorCode) -> &'static str {
    use RDKafkaErrorCode as C;
    match code {
        C::MessageSizeTooLarge | C::InvalidMessageSize | C::MessageBatchTooLarge => {
            "raise message.max.bytes in sink.properties and the topic's max.message.bytes"
        }
        C::TopicAuthorizationFailed => "grant this client's principal WRITE (and DESCRIBE) on the topic",
        C::ClusterAuthorizationFailed => {
            "grant this client's principal IDEMPOTENT_WRITE on the cluster (and CREATE for topic creation)"
        }
        C::SaslAuthenticationFailed | C::Authentication | C::UnsupportedSASLMechanism => {
            "check sasl.* / ssl.* in sink.properties"
        }
        C::UnknownTopicOrPartition | C::UnknownTopic | C::UnknownPartition => {
            "the topic does not exist: create it, let the broker auto-create topics, or set sink.create_topics = true"
        }
        C::InvalidRecord => {
            "the broker refused the record (a compacted topic needs a key: truncates and tables without a primary key have none)"
        }
        C::PolicyViolation | C::InvalidConfig | C::InvalidPartitions | C::InvalidReplicationFactor => {
            "check sink.partitions, sink.replication_factor, sink.cleanup_policy and sink.topic_config"
        }
        _ => "retrying cannot help",
    }
}

/// Client-level errors (not tied to one message) that mean the settings are
/// wrong rather than a broker being away.
pub(crate) fn is_setup_error(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        C::Authentication
            | C::SaslAuthenticationFailed
            | C::UnsupportedSASLMechanism
            | C::SSL
            | C::ClusterAuthorizationFailed
            | C::TopicAuthorizationFailed
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert_eq!(
            classify(RDKafkaErrorCode::MessageTimedOut),
            Class::Retriable
        );
        assert_eq!(
            classify(RDKafkaErrorCode::NotEnoughReplicas),
            Class::Retriable
        );
        assert_eq!(
            classify(RDKafkaErrorCode::TopicAuthorizationFailed),
            Class::Fatal
        );
        assert_eq!(
            classify(RDKafkaErrorCode::MessageSizeTooLarge),
            Class::Fatal
        );
        assert_eq!(classify(RDKafkaErrorCode::Fatal), Class::ProducerFatal);
    }

    #[test]
    fn secret_values_stay_out_of_errors() {
        let err = OpenError::from_kafka(KafkaError::ClientConfig(
            rdkafka::types::RDKafkaConfRes::RD_KAFKA_CONF_INVALID,
            "Invalid value \"hunter2\" for sasl.password".into(),
            "sasl.password".into(),
            "hunter2".into(),
        ));
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}
