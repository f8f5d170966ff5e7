//! A small client for PostgreSQL's streaming-replication protocol, which
//! tokio-postgres does not speak: startup with `replication=database`,
//! authentication (trust, cleartext, md5, SCRAM-SHA-256), TLS, simple
//! queries for replication commands, and the CopyBoth stream of
//! `START_REPLICATION` with standby status updates.
//!
//! Reading is cancel-safe: bytes are read into a buffer that survives a
//! dropped future, so the log reader can `select!` between the stream and its
//! acknowledgements without losing data.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use postgres_protocol::message::frontend;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::connect::{ConnectConfig, ConnectError, Endpoint, SslMode, SESSION_OPTIONS};

trait Transport: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Transport for T {}

#[derive(Debug, thiserror::Error)]
pub enum ReplicationError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("replication connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("server error {code}: {message}")]
    Server { code: String, message: String },
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("authentication: {0}")]
    Auth(String),
    /// Neither data nor a keepalive came for this long (`liveness.rs`).
    #[error("no message from the server for {secs}s (source.replication_timeout_secs): the network path is considered dead")]
    Timeout { secs: u64 },
}

impl ReplicationError {
    /// SQLSTATE of a server error.
    pub fn code(&self) -> Option<&str> {
        match self {
            ReplicationError::Server { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// Result of `IDENTIFY_SYSTEM`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemId {
    pub system_id: String,
    pub timeline: u32,
    pub xlog_pos: u64,
    pub dbname: Option<String>,
}

/// A message of the replication stream.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplicationMessage {
    XLogData {
        wal_start: u64,
        wal_end: u64,
        server_time: i64,
        data: Bytes,
    },
    Keepalive {
        wal_end: u64,
        server_time: i64,
        reply_requested: bool,
    },
}

struct Frame {
    tag: u8,
    body: Bytes,
}

/// A replication connection before streaming starts.
pub struct ReplicationConnection {
    io: Box<dyn Transport>,
    read: BytesMut,
    write: BytesMut,
}

impl ReplicationConnection {
    /// Connects to the first of the configured hosts that answers (and, with
    /// `target_session_attrs=read-write`, is not in recovery), as libpq does.
    pub async fn connect(config: &ConnectConfig) -> Result<Self, ReplicationError> {
        let timeout = config.connect_timeout();
        let mut failures = Vec::new();
        for endpoint in &config.endpoints {
            let attempt = tokio::time::timeout(timeout, Self::connect_to(config, endpoint)).await;
            let err = match attempt {
                Ok(Ok(mut conn)) => {
                    if !config.read_write || config.endpoints.len() == 1 {
                        return Ok(conn);
                    }
                    match conn.simple_query("SELECT pg_is_in_recovery()").await {
                        Ok(rows)
                            if rows.first().and_then(|r| r.first()) == Some(&Some("f".into())) =>
                        {
                            return Ok(conn);
                        }
                        Ok(_) => ReplicationError::Connect(ConnectError::Connect {
                            target: endpoint.to_string(),
                            reason: "in recovery (a standby), and target_session_attrs=read-write"
                                .into(),
                        }),
                        Err(err) => err,
                    }
                }
                Ok(Err(err)) => err,
                Err(_) => ReplicationError::Connect(ConnectError::Connect {
                    target: endpoint.to_string(),
                    reason: format!("timed out after {}s", timeout.as_secs()),
                }),
            };
            failures.push(err);
        }
        if failures.len() <= 1 {
            if let Some(err) = failures.pop() {
                return Err(err);
            }
        }
        // A server's own error (say, authentication) keeps its code.
        if let Some(pos) = failures.iter().rposition(|e| e.code().is_some()) {
            return Err(failures.swap_remove(pos));
        }
        let reasons: Vec<String> = failures.iter().map(ToString::to_string).collect();
        Err(ReplicationError::Connect(ConnectError::Connect {
            target: config.redacted(),
            reason: reasons.join("; "),
        }))
    }

    async fn connect_to(
        config: &ConnectConfig,
        endpoint: &Endpoint,
    ) -> Result<Self, ReplicationError> {
        let fail = |e: std::io::Error| ConnectError::Connect {
            target: endpoint.to_string(),
            reason: e.to_string(),
        };
        let io: Box<dyn Transport> = match endpoint {
            Endpoint::Tcp { host, port } => {
                let tcp = tokio::net::TcpStream::connect((host.as_str(), *port))
                    .await
                    .map_err(fail)?;
                tcp.set_nodelay(true).map_err(fail)?;
                config.tune_socket(&tcp).map_err(fail)?;
                Self::maybe_tls(config, endpoint, tcp).await?
            }
            Endpoint::Unix { dir, port } => {
                let path = dir.join(format!(".s.PGSQL.{port}"));
                Box::new(tokio::net::UnixStream::connect(path).await.map_err(fail)?)
            }
        };
        let mut conn = ReplicationConnection {
            io,
            read: BytesMut::with_capacity(256 * 1024),
            write: BytesMut::with_capacity(1024),
        };
        conn.startup(config).await?;
        Ok(conn)
    }

    async fn maybe_tls(
        config: &ConnectConfig,
        endpoint: &Endpoint,
        mut tcp: tokio::net::TcpStream,
    ) -> Result<Box<dyn Transport>, ReplicationError> {
        let Some(tls) = config.tls_config()? else {
            return Ok(Box::new(tcp));
        };
        let mut buf = BytesMut::new();
        frontend::ssl_request(&mut buf);
        tcp.write_all(&buf).await?;
        let answer = tcp.read_u8().await?;
        match answer {
            b'S' => {
                let connector = tokio_rustls::TlsConnector::from(tls);
                let stream = connector
                    .connect(ConnectConfig::server_name(endpoint)?, tcp)
                    .await
                    .map_err(|e| ConnectError::Tls(format!("handshake failed: {e}")))?;
                Ok(Box::new(stream))
            }
            b'N' if config.ssl_mode == SslMode::Prefer => Ok(Box::new(tcp)),
            b'N' => Err(ConnectError::Tls(format!(
                "the server at {} does not accept TLS, but sslmode requires it",
                config.redacted()
            ))
            .into()),
            other => Err(ReplicationError::Protocol(format!(
                "unexpected answer {other:#x} to the TLS request"
            ))),
        }
    }

    async fn startup(&mut self, config: &ConnectConfig) -> Result<(), ReplicationError> {
        let params = [
            ("user", config.user.as_str()),
            ("database", config.dbname.as_str()),
            ("replication", "database"),
            ("application_name", "cdc"),
            ("options", SESSION_OPTIONS),
        ];
        frontend::startup_message(params.iter().copied(), &mut self.write)?;
        self.flush().await?;
        let mut scram: Option<ScramSha256> = None;
        loop {
            let frame = self.read_frame().await?;
            let mut body = frame.body;
            match frame.tag {
                b'R' => {
                    let code = get_i32(&mut body)?;
                    match code {
                        0 => {}
                        3 => {
                            let password = self.password(config)?;
                            frontend::password_message(password.as_bytes(), &mut self.write)?;
                            self.flush().await?;
                        }
                        5 => {
                            let salt = get_bytes(&mut body, 4)?;
                            let mut salt4 = [0u8; 4];
                            salt4.copy_from_slice(&salt);
                            let password = self.password(config)?;
                            let hash = postgres_protocol::authentication::md5_hash(
                                config.user.as_bytes(),
                                password.as_bytes(),
                                salt4,
                            );
                            frontend::password_message(hash.as_bytes(), &mut self.write)?;
                            self.flush().await?;
                        }
                        10 => {
                            let mut mechanisms = Vec::new();
                            while !body.is_empty() {
                                let m = get_cstr(&mut body)?;
                                if !m.is_empty() {
                                    mechanisms.push(m);
                                }
                            }
                            if !mechanisms.iter().any(|m| m == "SCRAM-SHA-256") {
                                return Err(ReplicationError::Auth(format!(
                                    "server offers SASL mechanisms {mechanisms:?}, none supported"
                                )));
                            }
                            let password = self.password(config)?;
                            // "n": no channel binding, valid with and without TLS.
                            let s = ScramSha256::new(
                                password.as_bytes(),
                                ChannelBinding::unsupported(),
                            );
                            frontend::sasl_initial_response(
                                "SCRAM-SHA-256",
                                s.message(),
                                &mut self.write,
                            )?;
                            scram = Some(s);
                            self.flush().await?;
                        }
                        11 => {
                            let s = scram.as_mut().ok_or_else(|| {
                                ReplicationError::Protocol("SASL continue without start".into())
                            })?;
                            s.update(&body)
                                .map_err(|e| ReplicationError::Auth(e.to_string()))?;
                            frontend::sasl_response(s.message(), &mut self.write)?;
                            self.flush().await?;
                        }
                        12 => {
                            let s = scram.as_mut().ok_or_else(|| {
                                ReplicationError::Protocol("SASL final without start".into())
                            })?;
                            s.finish(&body)
                                .map_err(|e| ReplicationError::Auth(e.to_string()))?;
                        }
                        other => {
                            return Err(ReplicationError::Auth(format!(
                                "unsupported authentication method {other}"
                            )))
                        }
                    }
                }
                b'Z' => return Ok(()),
                b'E' => return Err(server_error(body)),
                // ParameterStatus, BackendKeyData, notices.
                _ => {}
            }
        }
    }

    fn password(&self, config: &ConnectConfig) -> Result<String, ReplicationError> {
        config.password().map(str::to_string).ok_or_else(|| {
            ReplicationError::Auth(format!(
                "the server asks {} for a password, but the URL has none",
                config.user
            ))
        })
    }

    async fn flush(&mut self) -> Result<(), ReplicationError> {
        self.io.write_all(&self.write).await?;
        self.io.flush().await?;
        self.write.clear();
        Ok(())
    }

    /// Read one backend message. Cancel-safe.
    async fn read_frame(&mut self) -> Result<Frame, ReplicationError> {
        loop {
            if let Some(total) = frame_total(&self.read)? {
                if self.read.len() >= total {
                    let mut frame = self.read.split_to(total);
                    let tag = frame.get_u8();
                    frame.advance(4);
                    return Ok(Frame {
                        tag,
                        body: frame.freeze(),
                    });
                }
                self.read.reserve(total - self.read.len());
            }
            if self.read.capacity() - self.read.len() < 8192 {
                self.read.reserve(256 * 1024);
            }
            let n = self.io.read_buf(&mut self.read).await?;
            if n == 0 {
                return Err(ReplicationError::Io(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "server closed the connection",
                )));
            }
        }
    }

    /// Run a simple query; returns the rows of its (last) result set as text.
    pub async fn simple_query(
        &mut self,
        sql: &str,
    ) -> Result<Vec<Vec<Option<String>>>, ReplicationError> {
        frontend::query(sql, &mut self.write)?;
        self.flush().await?;
        let mut rows = Vec::new();
        let mut error = None;
        loop {
            let frame = self.read_frame().await?;
            let mut body = frame.body;
            match frame.tag {
                b'T' => rows.clear(),
                b'D' => {
                    let n = get_i16(&mut body)?;
                    let mut row = Vec::with_capacity(n.max(0) as usize);
                    for _ in 0..n {
                        let len = get_i32(&mut body)?;
                        if len < 0 {
                            row.push(None);
                        } else {
                            let bytes = get_bytes(&mut body, len as usize)?;
                            row.push(Some(String::from_utf8_lossy(&bytes).into_owned()));
                        }
                    }
                    rows.push(row);
                }
                b'E' => error = Some(server_error(body)),
                b'Z' => {
                    return match error {
                        Some(err) => Err(err),
                        None => Ok(rows),
                    }
                }
                _ => {}
            }
        }
    }

    pub async fn identify_system(&mut self) -> Result<SystemId, ReplicationError> {
        let rows = self.simple_query("IDENTIFY_SYSTEM").await?;
        let row = rows
            .first()
            .ok_or_else(|| ReplicationError::Protocol("IDENTIFY_SYSTEM returned no row".into()))?;
        let field = |i: usize| row.get(i).cloned().flatten();
        Ok(SystemId {
            system_id: field(0).unwrap_or_default(),
            timeline: field(1).and_then(|t| t.parse().ok()).unwrap_or(0),
            xlog_pos: field(2).as_deref().and_then(parse_lsn).unwrap_or(0),
            dbname: field(3),
        })
    }

    /// The history file of `timeline` (`TIMELINE_HISTORY`): one line per
    /// ancestor timeline with the LSN where it ended.
    pub async fn timeline_history(&mut self, timeline: u32) -> Result<String, ReplicationError> {
        let rows = self
            .simple_query(&format!("TIMELINE_HISTORY {timeline}"))
            .await?;
        let content = rows
            .first()
            .and_then(|r| r.get(1).cloned().flatten())
            .ok_or_else(|| ReplicationError::Protocol("TIMELINE_HISTORY returned no row".into()))?;
        // Declared bytea: a server may send it hex-encoded.
        Ok(match content.strip_prefix("\\x") {
            Some(hex) => hex_text(hex).unwrap_or(content),
            None => content,
        })
    }

    /// Create a logical slot with pgoutput. `slot` must be a valid slot name
    /// (checked by the caller): it is sent as an identifier.
    /// Create a pgoutput slot; with `failover` (PostgreSQL 17+) it is
    /// synchronized to standbys, so a promoted standby has it.
    pub async fn create_logical_slot(
        &mut self,
        slot: &str,
        failover: bool,
    ) -> Result<u64, ReplicationError> {
        let sql = if failover {
            format!("CREATE_REPLICATION_SLOT \"{slot}\" LOGICAL pgoutput (SNAPSHOT 'nothing', FAILOVER true)")
        } else {
            format!("CREATE_REPLICATION_SLOT \"{slot}\" LOGICAL pgoutput NOEXPORT_SNAPSHOT")
        };
        let rows = self.simple_query(&sql).await?;
        Ok(rows
            .first()
            .and_then(|r| r.get(1).cloned().flatten())
            .as_deref()
            .and_then(parse_lsn)
            .unwrap_or(0))
    }

    /// Start streaming `slot` from `start` with pgoutput over
    /// `publication`. Both names must be plain identifiers (checked by the
    /// caller). With `binary`, values come in their binary send format
    /// (PostgreSQL 14+), which spares the walsender its output functions.
    /// With `streaming`, protocol version 2 with `streaming 'on'`
    /// (PostgreSQL 14+): large transactions come in blocks as they are
    /// decoded (`pgoutput_v2`).
    pub async fn start_replication(
        mut self,
        slot: &str,
        start: u64,
        publications: &[String],
        binary: bool,
        streaming: bool,
    ) -> Result<ReplicationStream, ReplicationError> {
        // Names are plain identifiers (checked by the preflight): quoting
        // them keeps their case.
        let names: Vec<String> = publications.iter().map(|p| format!("\"{p}\"")).collect();
        let sql = format!(
            "START_REPLICATION SLOT \"{slot}\" LOGICAL {} (proto_version '{}', publication_names '{}', messages 'true'{}{})",
            format_lsn(start),
            if streaming { 2 } else { 1 },
            names.join(","),
            if binary { ", binary 'true'" } else { "" },
            if streaming { ", streaming 'on'" } else { "" }
        );
        frontend::query(&sql, &mut self.write)?;
        self.flush().await?;
        loop {
            let frame = self.read_frame().await?;
            match frame.tag {
                b'W' => return Ok(ReplicationStream { conn: self }),
                b'E' => return Err(server_error(frame.body)),
                _ => {}
            }
        }
    }
}

/// The CopyBoth stream of `START_REPLICATION`.
pub struct ReplicationStream {
    conn: ReplicationConnection,
}

impl ReplicationStream {
    /// The next message; `None` when the server ended the stream. Cancel-safe.
    pub async fn next(&mut self) -> Result<Option<ReplicationMessage>, ReplicationError> {
        loop {
            let frame = self.conn.read_frame().await?;
            let mut body = frame.body;
            match frame.tag {
                b'd' => {
                    let kind = get_u8(&mut body)?;
                    match kind {
                        b'w' => {
                            let wal_start = get_i64(&mut body)? as u64;
                            let wal_end = get_i64(&mut body)? as u64;
                            let server_time = get_i64(&mut body)?;
                            return Ok(Some(ReplicationMessage::XLogData {
                                wal_start,
                                wal_end,
                                server_time,
                                data: body,
                            }));
                        }
                        b'k' => {
                            let wal_end = get_i64(&mut body)? as u64;
                            let server_time = get_i64(&mut body)?;
                            let reply_requested = get_u8(&mut body)? == 1;
                            return Ok(Some(ReplicationMessage::Keepalive {
                                wal_end,
                                server_time,
                                reply_requested,
                            }));
                        }
                        other => {
                            return Err(ReplicationError::Protocol(format!(
                                "unknown CopyData message {other:#x}"
                            )))
                        }
                    }
                }
                b'c' => return Ok(None),
                b'E' => return Err(server_error(body)),
                // CommandComplete, ReadyForQuery after the copy, notices.
                _ => {}
            }
        }
    }

    /// Whether a whole message is already buffered, so `next` will not wait.
    pub fn has_buffered_message(&self) -> bool {
        let buf = &self.conn.read;
        matches!(frame_total(buf), Ok(Some(total)) if buf.len() >= total)
    }

    /// Send a standby status update.
    pub async fn send_status(
        &mut self,
        write: u64,
        flush: u64,
        apply: u64,
        reply_requested: bool,
    ) -> Result<(), ReplicationError> {
        let mut payload = BytesMut::with_capacity(34);
        payload.put_u8(b'r');
        payload.put_u64(write);
        payload.put_u64(flush);
        payload.put_u64(apply);
        payload.put_i64(pg_now_micros());
        payload.put_u8(u8::from(reply_requested));
        frontend::CopyData::new(payload.freeze())?.write(&mut self.conn.write);
        self.conn.flush().await
    }

    /// End the stream politely: CopyDone then Terminate.
    pub async fn finish(mut self) -> Result<(), ReplicationError> {
        frontend::copy_done(&mut self.conn.write);
        frontend::terminate(&mut self.conn.write);
        self.conn.flush().await
    }
}

/// The largest message accepted from the server. PostgreSQL's own limit for
/// a row is 1 GiB; a length above it is a corrupt or hostile stream, and
/// reserving up to 2 GiB for it could exhaust memory.
pub const MAX_FRAME_LEN: usize = 1 << 30;

/// The whole length (tag included) of the message at the start of `buf`,
/// once its header is in; a length out of bounds is a protocol error.
fn frame_total(buf: &[u8]) -> Result<Option<usize>, ReplicationError> {
    let Some(&[_, a, b, c, d]) = buf.get(..5) else {
        return Ok(None);
    };
    let len = i32::from_be_bytes([a, b, c, d]);
    if len < 4 {
        return Err(ReplicationError::Protocol(format!(
            "bad message length {len}"
        )));
    }
    let len = len as usize;
    if len > MAX_FRAME_LEN {
        return Err(ReplicationError::Protocol(format!(
            "message of {len} bytes from the server exceeds the limit of {MAX_FRAME_LEN}"
        )));
    }
    Ok(Some(1 + len))
}

/// Microseconds since 2000-01-01, PostgreSQL's epoch.
fn pg_now_micros() -> i64 {
    const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0);
    now - PG_EPOCH_OFFSET_MICROS
}

/// `16/B374D848` → u64.
fn hex_text(hex: &str) -> Option<String> {
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

pub fn parse_lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.split_once('/')?;
    let hi = u64::from_str_radix(hi, 16).ok()?;
    let lo = u64::from_str_radix(lo, 16).ok()?;
    if hi > u32::MAX as u64 || lo > u32::MAX as u64 {
        return None;
    }
    Some((hi << 32) | lo)
}

pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

fn server_error(mut body: Bytes) -> ReplicationError {
    let mut code = String::new();
    let mut message = String::new();
    let mut detail = String::new();
    while let Ok(kind) = get_u8(&mut body) {
        if kind == 0 {
            break;
        }
        let Ok(value) = get_cstr(&mut body) else {
            break;
        };
        match kind {
            b'C' => code = value,
            b'M' => message = value,
            b'D' => detail = value,
            _ => {}
        }
    }
    if !detail.is_empty() {
        message = format!("{message} ({detail})");
    }
    ReplicationError::Server { code, message }
}

fn short(what: &str) -> ReplicationError {
    ReplicationError::Protocol(format!("message too short reading {what}"))
}

fn get_u8(b: &mut Bytes) -> Result<u8, ReplicationError> {
    if b.remaining() < 1 {
        return Err(short("u8"));
    }
    Ok(b.get_u8())
}

fn get_i16(b: &mut Bytes) -> Result<i16, ReplicationError> {
    if b.remaining() < 2 {
        return Err(short("i16"));
    }
    Ok(b.get_i16())
}

fn get_i32(b: &mut Bytes) -> Result<i32, ReplicationError> {
    if b.remaining() < 4 {
        return Err(short("i32"));
    }
    Ok(b.get_i32())
}

fn get_i64(b: &mut Bytes) -> Result<i64, ReplicationError> {
    if b.remaining() < 8 {
        return Err(short("i64"));
    }
    Ok(b.get_i64())
}

fn get_bytes(b: &mut Bytes, n: usize) -> Result<Bytes, ReplicationError> {
    if b.remaining() < n {
        return Err(short("bytes"));
    }
    Ok(b.split_to(n))
}

fn get_cstr(b: &mut Bytes) -> Result<String, ReplicationError> {
    let end = b
        .iter()
        .position(|&c| c == 0)
        .ok_or_else(|| ReplicationError::Protocol("unterminated string".into()))?;
    let s = b.split_to(end);
    b.advance(1);
    Ok(String::from_utf8_lossy(&s).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsn_round_trip() {
        assert_eq!(parse_lsn("16/B374D848"), Some(0x16_B374_D848));
        assert_eq!(format_lsn(0x16_B374_D848), "16/B374D848");
        assert_eq!(parse_lsn("nope"), None);
        assert_eq!(parse_lsn("1/FFFFFFFFF"), None);
    }

    fn header(tag: u8, len: i32) -> Vec<u8> {
        let mut h = vec![tag];
        h.extend_from_slice(&len.to_be_bytes());
        h
    }

    #[test]
    fn frame_lengths_are_bounded() {
        assert!(matches!(frame_total(&[b'd', 0, 0]), Ok(None)));
        assert!(matches!(frame_total(&header(b'd', 4)), Ok(Some(5))));
        let limit = i32::try_from(MAX_FRAME_LEN).unwrap();
        assert!(matches!(
            frame_total(&header(b'd', limit)),
            Ok(Some(n)) if n == MAX_FRAME_LEN + 1
        ));
        for bad in [limit + 1, i32::MAX, 3, -1] {
            let err = frame_total(&header(b'd', bad)).unwrap_err();
            assert!(matches!(err, ReplicationError::Protocol(_)), "{bad}: {err}");
        }
    }

    #[tokio::test]
    async fn a_huge_frame_is_a_protocol_error_not_an_allocation() {
        let (client, mut server) = tokio::io::duplex(64);
        let mut conn = ReplicationConnection {
            io: Box::new(client),
            read: BytesMut::new(),
            write: BytesMut::new(),
        };
        server.write_all(&header(b'd', i32::MAX)).await.unwrap();
        let err = conn.read_frame().await.err().unwrap();
        assert!(err.to_string().contains("exceeds the limit"), "{err}");
        assert!(conn.read.capacity() < 1 << 20);
    }
}
