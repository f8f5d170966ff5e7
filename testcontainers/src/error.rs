//! Typed errors of the test-cluster harness.

use std::path::PathBuf;

/// Everything that can go wrong while providing a PostgreSQL server to a test.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No usable `initdb`/`pg_ctl`/`postgres` on this machine.
    #[error(
        "PostgreSQL server binaries not found: install postgresql (apt-get install postgresql); \
         looked for `{missing}` via `pg_config --bindir` and in /usr/lib/postgresql/*/bin"
    )]
    BinariesNotFound {
        /// The program that was looked for.
        missing: &'static str,
    },

    /// [`crate::PostgresBuilder::major`] named a version without a pinned build.
    #[error("no pinned build of PostgreSQL {major}: choose 16, 17 or 18 (testcontainers/src/versions.rs)")]
    NoSuchMajor {
        /// The major version asked for.
        major: u32,
    },

    /// A filesystem or process-spawn operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A helper program exited unsuccessfully.
    #[error("{command} failed ({status}): {stderr}")]
    Command {
        /// The program and its main arguments.
        command: String,
        /// Its exit status.
        status: String,
        /// What it wrote to stderr (and stdout, when stderr was empty).
        stderr: String,
    },

    /// `psql` reported an error for the given SQL.
    #[error("psql failed ({status}) running {sql:?}: {stderr}")]
    Psql {
        /// The SQL that was sent (possibly truncated).
        sql: String,
        /// psql's exit status.
        status: String,
        /// psql's stderr.
        stderr: String,
    },

    /// The server did not come up; carries the tail of its log.
    #[error("PostgreSQL did not start: {reason}\n---- postgres log ----\n{log}")]
    Start {
        /// Why starting was given up.
        reason: String,
        /// The last lines of the server log.
        log: String,
    },

    /// Generating the test CA or server certificate failed.
    #[error("generating TLS certificates: {0}")]
    Cert(#[from] rcgen::Error),

    /// Running as root, but no unprivileged account exists to own the cluster.
    #[error("running as root and neither `postgres` nor `nobody` exists in /etc/passwd; initdb refuses to run as root")]
    NoUnprivilegedUser,

    /// A builder option or operation that an external server (`CDC_TEST_POSTGRES_URL`) cannot honour.
    #[error("`{0}` is not supported with an external server (CDC_TEST_POSTGRES_URL is set)")]
    ExternalUnsupported(&'static str),

    /// `CDC_TEST_POSTGRES_URL` is not a `postgres://`/`postgresql://` URL this harness understands.
    #[error("invalid CDC_TEST_POSTGRES_URL {url:?}: {reason}")]
    BadUrl {
        /// The URL (as given).
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A user name or password that cannot be embedded safely in the generated SQL.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// A path that must be valid UTF-8 (it goes into postgresql.conf) is not.
    #[error("path is not valid UTF-8: {0}")]
    NonUtf8Path(PathBuf),
}

impl Error {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}
