//! A real Kafka-protocol broker for tests: `tansu`, with in-memory storage
//! or (for tests that kill and restart it) a SQLite file.
//!
//! [`Kafka::start`] runs `tansu broker` on a free port of 127.0.0.1 (listener
//! and advertised listener both set to it), waits until it accepts
//! connections, and kills it when the handle is dropped, printing its log
//! first if the test is panicking. tansu does not auto-create topics.
//! [`Kafka::builder`] can ask for durable storage (`sqlite://`, WAL mode:
//! what the broker acknowledged survives a SIGKILL, so [`Kafka::kill`] then
//! [`Kafka::start_again`] is a crash and restart) and for a network
//! namespace to run in ([`crate::Netns`]), so the path to it can be faulted.
//!
//! When `CDC_TEST_KAFKA_BOOTSTRAP` is set, nothing is started: the handle
//! names that broker instead (tests keep apart by their topic names).
//!
//! The binary is `$CDC_TANSU_BIN`, else `tansu` on `PATH`, else
//! `~/.cargo/bin/tansu` (`scripts/test.sh` installs it there).

use std::io::Read as _;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Netns;

/// Names an existing broker (`host:port`) to use instead of starting one.
pub const EXTERNAL_BOOTSTRAP_VAR: &str = "CDC_TEST_KAFKA_BOOTSTRAP";
/// Names the tansu binary.
pub const TANSU_BIN_VAR: &str = "CDC_TANSU_BIN";

const LOCALHOST: &str = "127.0.0.1";
const READY_TIMEOUT: Duration = Duration::from_secs(30);
const PORT_ATTEMPTS: usize = 5;
const LOG_TAIL_LINES: usize = 200;

/// Everything that can go wrong while providing a broker to a test.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    #[error(
        "tansu not found: run scripts/test.sh (it installs it), or \
         `cargo install tansu --locked --features dynostore`, or set {TANSU_BIN_VAR}"
    )]
    NotFound,
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("tansu did not start: {reason}\n---- tansu log ----\n{log}")]
    Start { reason: String, log: String },
    #[error(
        "this tansu has no SQLite storage (the libsql feature): run scripts/test.sh, or \
         `cargo install tansu --locked --features dynostore,libsql`\n---- tansu log ----\n{log}"
    )]
    NoDurableStorage { log: String },
}

fn io(what: impl Into<String>, source: std::io::Error) -> KafkaError {
    KafkaError::Io {
        what: what.into(),
        source,
    }
}

/// A running broker (or an external one) for one test.
#[derive(Debug)]
pub struct Kafka {
    bootstrap: String,
    local: Option<Local>,
}

#[derive(Debug)]
struct Local {
    /// `None` after [`Kafka::kill`].
    child: Option<Child>,
    how: Launch,
    port: u16,
    logfile: PathBuf,
    /// Holds the log (and the SQLite file); removed when the handle is dropped.
    _dir: tempfile::TempDir,
}

/// How to (re)start the broker.
#[derive(Debug, Clone)]
struct Launch {
    bin: PathBuf,
    host: String,
    /// Where the storage and logs live (tansu resolves `sqlite://` here).
    dir: PathBuf,
    durable: bool,
    netns: Option<Netns>,
}

/// Options for [`Kafka`]; [`KafkaBuilder::start`] starts it.
#[derive(Debug, Default)]
pub struct KafkaBuilder {
    durable: bool,
    netns: Option<Netns>,
}

impl KafkaBuilder {
    /// Keep topics and records in a SQLite file, so a killed broker
    /// restarts with what it acknowledged.
    pub fn durable(mut self, on: bool) -> Self {
        self.durable = on;
        self
    }

    /// Run inside `ns`, listening on its address.
    pub fn netns(mut self, ns: &Netns) -> Self {
        self.netns = Some(ns.clone());
        self
    }

    /// Starts tansu (or names `CDC_TEST_KAFKA_BOOTSTRAP`, when neither a
    /// namespace nor durable storage was asked for).
    pub fn start(self) -> Result<Kafka, KafkaError> {
        if self.netns.is_none() && !self.durable {
            if let Ok(bootstrap) = std::env::var(EXTERNAL_BOOTSTRAP_VAR) {
                if !bootstrap.trim().is_empty() {
                    return Ok(Kafka {
                        bootstrap: bootstrap.trim().to_string(),
                        local: None,
                    });
                }
            }
        }
        let bin = tansu_bin().ok_or(KafkaError::NotFound)?;
        let dir = tempfile::Builder::new()
            .prefix("cdc-kafka-")
            .tempdir()
            .map_err(|e| io("creating a temporary directory", e))?;
        let host = match &self.netns {
            Some(ns) => ns.address().to_string(),
            None => LOCALHOST.to_string(),
        };
        let how = Launch {
            bin,
            host,
            dir: dir.path().to_path_buf(),
            durable: self.durable,
            netns: self.netns,
        };
        let mut last = String::new();
        for _ in 0..PORT_ATTEMPTS {
            // A new namespace has every port free; the host's are probed.
            let port = free_port()?;
            let logfile = dir.path().join(format!("tansu-{port}.log"));
            match how.launch(port, &logfile)? {
                Ok(child) => {
                    return Ok(Kafka {
                        bootstrap: format!("{}:{port}", how.host),
                        local: Some(Local {
                            child: Some(child),
                            how,
                            port,
                            logfile,
                            _dir: dir,
                        }),
                    })
                }
                // Another process took the port between probe and bind.
                Err(reason) => last = reason,
            }
        }
        Err(KafkaError::Start {
            reason: format!("no free port after {PORT_ATTEMPTS} attempts"),
            log: last,
        })
    }
}

impl Kafka {
    /// Starts tansu with in-memory storage (or names
    /// `CDC_TEST_KAFKA_BOOTSTRAP`).
    pub fn start() -> Result<Kafka, KafkaError> {
        Kafka::builder().start()
    }

    pub fn builder() -> KafkaBuilder {
        KafkaBuilder::default()
    }

    /// SIGKILLs the broker, as a crash would, and reaps it.
    pub fn kill(&mut self) -> Result<(), KafkaError> {
        let local = self.local_mut()?;
        if let Some(mut child) = local.child.take() {
            child.kill().map_err(|e| io("killing tansu", e))?;
            child.wait().map_err(|e| io("waiting for tansu", e))?;
        }
        Ok(())
    }

    /// Starts the broker again after [`Kafka::kill`], on the same address
    /// and storage; its log goes on in the same file.
    pub fn start_again(&mut self) -> Result<(), KafkaError> {
        let local = self.local_mut()?;
        if local.child.is_some() {
            return Ok(());
        }
        // The old listener's port may linger a moment in the kernel.
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match local.how.launch(local.port, &local.logfile)? {
                Ok(child) => {
                    local.child = Some(child);
                    return Ok(());
                }
                Err(reason) if Instant::now() >= deadline => {
                    return Err(KafkaError::Start {
                        reason: format!("port {} still taken", local.port),
                        log: reason,
                    })
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    fn local_mut(&mut self) -> Result<&mut Local, KafkaError> {
        self.local.as_mut().ok_or_else(|| {
            io(
                "controlling the broker",
                std::io::Error::other("an external broker cannot be killed or restarted"),
            )
        })
    }

    /// `host:port` for `bootstrap.servers`.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    /// Whether this names a `CDC_TEST_KAFKA_BOOTSTRAP` broker.
    pub fn is_external(&self) -> bool {
        self.local.is_none()
    }

    /// Freezes the broker (SIGSTOP): connections stay open, nothing is
    /// answered, as with a stalled host.
    pub fn pause(&self) -> Result<(), KafkaError> {
        self.signal("STOP")
    }

    /// Thaws a paused broker (SIGCONT).
    pub fn resume(&self) -> Result<(), KafkaError> {
        self.signal("CONT")
    }

    fn signal(&self, name: &str) -> Result<(), KafkaError> {
        let Some(child) = self.local.as_ref().and_then(|l| l.child.as_ref()) else {
            return Err(io(
                "signalling the broker",
                std::io::Error::other("an external or killed broker cannot be signalled"),
            ));
        };
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(child.id().to_string())
            .status()
            .map_err(|e| io("running kill", e))?;
        if status.success() {
            Ok(())
        } else {
            Err(io(
                "signalling the broker",
                std::io::Error::other(format!("kill -{name} failed: {status}")),
            ))
        }
    }

    /// The broker's log so far (empty for an external broker).
    pub fn log(&self) -> String {
        self.local
            .as_ref()
            .and_then(|l| std::fs::read(&l.logfile).ok())
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }
}

impl Drop for Kafka {
    fn drop(&mut self) {
        let Some(local) = self.local.as_mut() else {
            return;
        };
        if std::thread::panicking() {
            let log = std::fs::read(&local.logfile)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            eprintln!(
                "---- tansu log ({}) ----\n{}",
                self.bootstrap,
                log_tail(&log, LOG_TAIL_LINES)
            );
        }
        // Storage is in-memory or a SQLite file removed with the handle:
        // nothing to shut down cleanly.
        if let Some(mut child) = local.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Launch {
    /// Starts tansu on `port`, appending to `logfile`; `Ok(Err(reason))`
    /// when the port was taken.
    fn launch(&self, port: u16, logfile: &Path) -> Result<Result<Child, String>, KafkaError> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(logfile)
            .map_err(|e| io("opening the tansu log", e))?;
        let start_len = log.metadata().map(|m| m.len()).unwrap_or(0);
        let log_err = log
            .try_clone()
            .map_err(|e| io("opening the tansu log", e))?;
        let url = format!("tcp://{}:{port}", self.host);
        // Relative: tansu resolves a sqlite:// path against its directory.
        let storage = if self.durable {
            "sqlite://tansu.db"
        } else {
            "memory://tansu/"
        };
        let mut cmd = Command::new(&self.bin);
        cmd.arg("broker")
            .args(["--listener-url", &url])
            .args(["--advertised-listener-url", &url])
            .args(["--storage-engine", storage])
            .current_dir(&self.dir)
            .env(
                "RUST_LOG",
                std::env::var("TANSU_LOG").unwrap_or_else(|_| "warn".into()),
            );
        if let Some(ns) = &self.netns {
            // `ip netns exec` execs tansu: the child's pid is the broker's,
            // for the signals.
            cmd = ns.wrap(&cmd, None);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| io(format!("spawning {}", self.bin.display()), e))?;
        let new_log = || {
            let all = read_log(logfile);
            all.get(start_len as usize..)
                .unwrap_or_default()
                .to_string()
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().map_err(|e| io("waiting for tansu", e))? {
                let log = new_log();
                if log.contains("in use") {
                    return Ok(Err(log));
                }
                if log.contains("FeatureNotEnabled") {
                    return Err(KafkaError::NoDurableStorage {
                        log: log_tail(&log, LOG_TAIL_LINES),
                    });
                }
                return Err(KafkaError::Start {
                    reason: format!("exited with {status}"),
                    log: log_tail(&log, LOG_TAIL_LINES),
                });
            }
            if answers(&self.host, port) {
                return Ok(Ok(child));
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(KafkaError::Start {
                    reason: format!(
                        "not accepting connections on {}:{port} after {READY_TIMEOUT:?}",
                        self.host
                    ),
                    log: log_tail(&new_log(), LOG_TAIL_LINES),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The broker accepts a TCP connection (and does not drop it at once).
fn answers(host: &str, port: u16) -> bool {
    let Ok(stream) = TcpStream::connect((host, port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(20)));
    let mut byte = [0u8; 1];
    // A Kafka broker waits for a request: a read that times out is the good sign.
    let alive = !matches!((&stream).read(&mut byte), Ok(0));
    let _ = stream.shutdown(Shutdown::Both);
    alive
}

fn read_log(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

fn tansu_bin() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os(TANSU_BIN_VAR) {
        let bin = PathBuf::from(bin);
        return bin.is_file().then_some(bin);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let bin = dir.join("tansu");
            if bin.is_file() {
                return Some(bin);
            }
        }
    }
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
    let bin = home.join("bin").join("tansu");
    bin.is_file().then_some(bin)
}

fn free_port() -> Result<u16, KafkaError> {
    let listener =
        TcpListener::bind((LOCALHOST, 0)).map_err(|e| io("probing for a free port", e))?;
    Ok(listener
        .local_addr()
        .map_err(|e| io("probing for a free port", e))?
        .port())
}

fn log_tail(log: &str, lines: usize) -> String {
    let all: Vec<&str> = log.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_answers_and_stops() {
        if tansu_bin().is_none() && std::env::var_os(EXTERNAL_BOOTSTRAP_VAR).is_none() {
            panic!("{}", KafkaError::NotFound);
        }
        let kafka = Kafka::start().unwrap();
        let port: u16 = kafka
            .bootstrap_servers()
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(answers(LOCALHOST, port));
        if kafka.is_external() {
            return;
        }
        drop(kafka);
        assert!(!answers(LOCALHOST, port));
    }
}
