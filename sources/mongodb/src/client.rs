//! The driver's client, and its errors in the engine's classification:
//! definite (fatal, or the position lost) versus transient (retry).

use std::time::Duration;

use cdc_engine::SourceError;
use mongodb::error::{Error, ErrorKind, WriteFailure};
use mongodb::options::ClientOptions;
use mongodb::Client;

/// `ChangeStreamHistoryLost`: the resume point fell off the oplog.
pub const CHANGE_STREAM_HISTORY_LOST: i32 = 286;
/// `ChangeStreamFatalError`: among others, "the resume token was not found".
pub const CHANGE_STREAM_FATAL: i32 = 280;
const UNAUTHORIZED: i32 = 13;
const AUTHENTICATION_FAILED: i32 = 18;
/// "The $changeStream stage is only supported on replica sets".
const NOT_A_REPLICA_SET: i32 = 40573;

/// A client for `url`: TLS, SCRAM and `mongodb+srv` as the URL says. Fails
/// only on a URL that does not parse (or an SRV name that does not
/// resolve); servers are found lazily.
pub async fn connect(url: &str) -> Result<Client, SourceError> {
    // A down server is reported (and retried) within this, not after the
    // driver's 30 s.
    connect_with(url, "cdc", Duration::from_secs(10)).await
}

/// [`connect`] as `app_name`, giving up on finding a server (and on a
/// connection) after `timeout`, unless the URL says otherwise.
pub async fn connect_with(
    url: &str,
    app_name: &str,
    timeout: Duration,
) -> Result<Client, SourceError> {
    let bad_url =
        |e: Error| SourceError::Fatal(format!("source.url ({}): {}", redact(url), describe(&e)));
    let mut options = ClientOptions::parse(url).await.map_err(bad_url)?;
    options.app_name.get_or_insert_with(|| app_name.into());
    options.server_selection_timeout.get_or_insert(timeout);
    options.connect_timeout.get_or_insert(timeout);
    Client::with_options(options).map_err(bad_url)
}

/// The server's error code, when the error carries one.
pub fn code(error: &Error) -> Option<i32> {
    match error.kind.as_ref() {
        ErrorKind::Command(c) => Some(c.code),
        ErrorKind::Write(WriteFailure::WriteError(w)) => Some(w.code),
        ErrorKind::Write(WriteFailure::WriteConcernError(w)) => Some(w.code),
        _ => None,
    }
}

/// One line: the code name and message for a server error, the driver's
/// text otherwise (which never holds the password).
pub fn describe(error: &Error) -> String {
    match error.kind.as_ref() {
        ErrorKind::Command(c) => format!("{} ({}): {}", c.code_name, c.code, c.message),
        other => other.to_string().replace('\n', " "),
    }
}

/// Whether the error means the stream's position is gone for good.
pub fn is_history_lost(error: &Error) -> bool {
    match code(error) {
        Some(CHANGE_STREAM_HISTORY_LOST) => true,
        Some(CHANGE_STREAM_FATAL) => {
            let text = describe(error).to_lowercase();
            text.contains("resume token") || text.contains("resume point")
        }
        _ => false,
    }
}

/// The engine's class of a driver error met while streaming or reading,
/// `what` naming the operation and its culprit.
pub fn classify(error: &Error, what: &str) -> SourceError {
    let line = format!("{what}: {}", describe(error));
    match (code(error), error.kind.as_ref()) {
        _ if is_history_lost(error) => SourceError::PositionLost(format!(
            "{line}; the oplog no longer holds the stored resume point \
             (set [source] on_history_lost = \"resnapshot\" to start over with a snapshot, \
             or grow the oplog: replSetResizeOplog)"
        )),
        (Some(UNAUTHORIZED), _) => SourceError::Fatal(format!(
            "{line}; grant the user the changeStream and find actions on the captured \
             databases and readWrite on the cdc database"
        )),
        (Some(AUTHENTICATION_FAILED), _) | (_, ErrorKind::Authentication { .. }) => {
            SourceError::Fatal(format!("{line}; check the user and password in source.url"))
        }
        (Some(NOT_A_REPLICA_SET), _) => SourceError::Fatal(format!(
            "{line}; change streams need a replica set or a sharded cluster \
             (a single server can run as a one-member replica set: --replSet rs0, then rs.initiate())"
        )),
        (
            _,
            ErrorKind::InvalidArgument { .. }
            | ErrorKind::InvalidTlsConfig { .. }
            | ErrorKind::Custom(_),
        ) => {
            SourceError::Fatal(line)
        }
        _ => SourceError::Transient(line),
    }
}

/// `url` without its password.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((user_info, hosts)) => {
            let user = user_info.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{hosts}{tail}")
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_a_log_line() {
        assert_eq!(
            redact("mongodb://cdc:s3cr%40t@db1:27017,db2/?replicaSet=rs0&tls=true"),
            "mongodb://cdc:***@db1:27017,db2/?replicaSet=rs0&tls=true"
        );
        assert_eq!(
            redact("mongodb+srv://u:p@cluster0.example.net"),
            "mongodb+srv://u:***@cluster0.example.net"
        );
        assert_eq!(
            redact("mongodb://db1/?replicaSet=rs0"),
            "mongodb://db1/?replicaSet=rs0"
        );
    }

    #[tokio::test]
    async fn a_url_that_does_not_parse_is_a_definite_error_naming_the_setting() {
        let Err(err) = connect("mongodb://cdc:secret@").await else {
            panic!("an empty host list parsed");
        };
        let line = err.to_string();
        assert!(matches!(err, SourceError::Fatal(_)), "{line}");
        assert!(
            line.starts_with("source.url (mongodb://cdc:***@)"),
            "{line}"
        );
        assert!(!line.contains("secret"), "{line}");
    }
}
