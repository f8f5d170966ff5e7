//! A real Kafka-protocol broker for tests: `tansu` with in-memory storage.
//!
//! [`Kafka::start`] runs `tansu broker` on a free port of 127.0.0.1 (listener
//! and advertised listener both set to it), waits until it accepts
//! connections, and kills it when the handle is dropped, printing its log
//! first if the test is panicking. tansu does not auto-create topics.
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

/// Names an existing broker (`host:port`) to use instead of starting one.
pub const EXTERNAL_BOOTSTRAP_VAR: &str = "CDC_TEST_KAFKA_BOOTSTRAP";
/// Names the tansu binary.
pub const TANSU_BIN_VAR: &str = "CDC_TANSU_BIN";

const HOST: &str = "127.0.0.1";
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
    child: Child,
    logfile: PathBuf,
    /// Holds the log; removed when the handle is dropped.
    _dir: tempfile::TempDir,
}

impl Kafka {
    /// Starts tansu (or names `CDC_TEST_KAFKA_BOOTSTRAP`).
    pub fn start() -> Result<Kafka, KafkaError> {
        if let Ok(bootstrap) = std::env::var(EXTERNAL_BOOTSTRAP_VAR) {
            if !bootstrap.trim().is_empty() {
                return Ok(Kafka {
                    bootstrap: bootstrap.trim().to_string(),
                    local: None,
                });
            }
        }
        let bin = tansu_bin().ok_or(KafkaError::NotFound)?;
        let dir = tempfile::Builder::new()
            .prefix("cdc-kafka-")
            .tempdir()
            .map_err(|e| io("creating a temporary directory", e))?;
        let mut last = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port()?;
            let logfile = dir.path().join(format!("tansu-{port}.log"));
            match launch(&bin, port, &logfile)? {
                Ok(child) => {
                    return Ok(Kafka {
                        bootstrap: format!("{HOST}:{port}"),
                        local: Some(Local {
                            child,
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
        let Some(local) = &self.local else {
            return Err(io(
                "signalling the broker",
                std::io::Error::other("an external broker cannot be signalled"),
            ));
        };
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(local.child.id().to_string())
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
        // In-memory storage: nothing to shut down cleanly.
        let _ = local.child.kill();
        let _ = local.child.wait();
    }
}

/// Starts tansu on `port`; `Ok(Err(reason))` when the port was taken.
fn launch(bin: &Path, port: u16, logfile: &Path) -> Result<Result<Child, String>, KafkaError> {
    let log = std::fs::File::create(logfile).map_err(|e| io("creating the tansu log", e))?;
    let log_err = log
        .try_clone()
        .map_err(|e| io("creating the tansu log", e))?;
    let url = format!("tcp://{HOST}:{port}");
    let mut child = Command::new(bin)
        .arg("broker")
        .args(["--listener-url", &url])
        .args(["--advertised-listener-url", &url])
        .args(["--storage-engine", "memory://tansu/"])
        .env(
            "RUST_LOG",
            std::env::var("TANSU_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .map_err(|e| io(format!("spawning {}", bin.display()), e))?;
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().map_err(|e| io("waiting for tansu", e))? {
            let log = read_log(logfile);
            if log.contains("in use") {
                return Ok(Err(log));
            }
            return Err(KafkaError::Start {
                reason: format!("exited with {status}"),
                log: log_tail(&log, LOG_TAIL_LINES),
            });
        }
        if answers(port) {
            return Ok(Ok(child));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(KafkaError::Start {
                reason: format!(
                    "not accepting connections on {HOST}:{port} after {READY_TIMEOUT:?}"
                ),
                log: log_tail(&read_log(logfile), LOG_TAIL_LINES),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The broker accepts a TCP connection (and does not drop it at once).
fn answers(port: u16) -> bool {
    let Ok(stream) = TcpStream::connect((HOST, port)) else {
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
    let listener = TcpListener::bind((HOST, 0)).map_err(|e| io("probing for a free port", e))?;
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
        assert!(answers(port));
        if kafka.is_external() {
            return;
        }
        drop(kafka);
        assert!(!answers(port));
    }
}
