//! Connection settings shared by the SQL connection (tokio-postgres) and the
//! replication connection (our own client): one URL, one TLS policy.
//!
//! The password lives only in here and is never formatted: `Debug` and
//! [`ConnectConfig::redacted`] print `***` instead.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;

/// Session settings that make every value print the way the type converter
/// expects, on both connections; notices (`relation … already exists,
/// skipping` on every start) stay on the server, warnings still come.
pub const SESSION_OPTIONS: &str = "-c DateStyle=ISO -c TimeZone=UTC -c IntervalStyle=iso_8601 \
     -c extra_float_digits=3 -c bytea_output=hex -c client_min_messages=warning";

/// tokio-postgres's default idle time before keepalives (two hours), which
/// would leave a dead idle connection unnoticed for as long.
const DEFAULT_KEEPALIVES_IDLE: Duration = Duration::from_secs(2 * 60 * 60);
/// A dead idle connection is noticed after idle + interval × retries = 25 s.
const KEEPALIVES_IDLE: Duration = Duration::from_secs(10);
const KEEPALIVES_INTERVAL: Duration = Duration::from_secs(5);
const KEEPALIVES_RETRIES: u32 = 3;
/// Data unacknowledged this long closes the connection (Linux
/// `TCP_USER_TIMEOUT`): a query or status update sent into a blackhole
/// fails instead of waiting for the kernel's retransmissions (~15 min).
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl FromStr for SslMode {
    type Err = ConnectError;
    fn from_str(s: &str) -> Result<Self, ConnectError> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "prefer" | "allow" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(ConnectError::Config(format!(
                    "unknown sslmode '{other}' (expected disable, prefer, require, verify-ca or verify-full)"
                )))
            }
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{0}")]
    Config(String),
    #[error("TLS setup: {0}")]
    Tls(String),
    #[error("connecting to {target}: {reason}")]
    Connect { target: String, reason: String },
}

/// Where the server is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Tcp { host: String, port: u16 },
    Unix { dir: PathBuf, port: u16 },
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp { host, port } => write!(f, "{host}:{port}"),
            Endpoint::Unix { dir, port } => write!(f, "[{}]:{port}", dir.display()),
        }
    }
}

#[derive(Clone)]
pub struct ConnectConfig {
    pg: tokio_postgres::Config,
    /// Tried in order, as libpq does.
    pub endpoints: Vec<Endpoint>,
    /// `target_session_attrs=read-write`: skip servers in recovery, so a
    /// list of hosts follows a failover to the promoted one.
    pub read_write: bool,
    pub user: String,
    password: Option<String>,
    pub dbname: String,
    pub ssl_mode: SslMode,
    pub root_cert: Option<PathBuf>,
}

impl fmt::Debug for ConnectConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl ConnectConfig {
    /// Parse a `postgresql://` URL. Errors never contain the password.
    pub fn parse(url: &str) -> Result<Self, ConnectError> {
        let (base, query) = match url.split_once('?') {
            Some((base, query)) => (base, query),
            None => (url, ""),
        };
        let mut ssl_mode = SslMode::Prefer;
        let mut root_cert = None;
        let mut rest = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "sslmode" => ssl_mode = percent_decode(value).parse()?,
                "sslrootcert" => root_cert = Some(PathBuf::from(percent_decode(value))),
                _ => rest.push(pair),
            }
        }
        let stripped = if rest.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", rest.join("&"))
        };
        let pg = tokio_postgres::Config::from_str(&stripped).map_err(|err| {
            ConnectError::Config(format!("invalid PostgreSQL URL {}: {err}", redact_url(url)))
        })?;
        // libpq's host lists: `host=a,b` with one port, or a port each.
        let ports = pg.get_ports();
        let port_of = |i: usize| match ports {
            [] => 5432,
            [one] => *one,
            many => many.get(i).copied().unwrap_or(5432),
        };
        let mut endpoints: Vec<Endpoint> = pg
            .get_hosts()
            .iter()
            .enumerate()
            .map(|(i, host)| match host {
                tokio_postgres::config::Host::Tcp(host) => Endpoint::Tcp {
                    host: host.clone(),
                    port: port_of(i),
                },
                tokio_postgres::config::Host::Unix(dir) => Endpoint::Unix {
                    dir: dir.clone(),
                    port: port_of(i),
                },
            })
            .collect();
        if endpoints.is_empty() {
            endpoints.push(Endpoint::Tcp {
                host: "localhost".into(),
                port: port_of(0),
            });
        }
        let read_write = matches!(
            pg.get_target_session_attrs(),
            tokio_postgres::config::TargetSessionAttrs::ReadWrite
        );
        let user = pg
            .get_user()
            .map(str::to_string)
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_else(|| "postgres".into());
        let password = pg
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned());
        let dbname = pg
            .get_dbname()
            .map(str::to_string)
            .unwrap_or_else(|| user.clone());
        let mut config = ConnectConfig {
            pg,
            endpoints,
            read_write,
            user,
            password,
            dbname,
            ssl_mode,
            root_cert,
        };
        config.pg.user(config.user.clone());
        config.pg.dbname(config.dbname.clone());
        config.pg.options(SESSION_OPTIONS);
        if config.pg.get_connect_timeout().is_none() {
            config.pg.connect_timeout(Duration::from_secs(10));
        }
        // A peer gone without a reset must be noticed: the URL may choose
        // its own values (keepalives_idle=, tcp_user_timeout=, ...).
        if config.pg.get_keepalives_idle() == DEFAULT_KEEPALIVES_IDLE {
            config.pg.keepalives_idle(KEEPALIVES_IDLE);
        }
        if config.pg.get_keepalives_interval().is_none() {
            config.pg.keepalives_interval(KEEPALIVES_INTERVAL);
        }
        if config.pg.get_keepalives_retries().is_none() {
            config.pg.keepalives_retries(KEEPALIVES_RETRIES);
        }
        if config.pg.get_tcp_user_timeout().is_none() {
            config.pg.tcp_user_timeout(TCP_USER_TIMEOUT);
        }
        config.pg.ssl_mode(match ssl_mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        });
        Ok(config)
    }

    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// `postgresql://user:***@host:port/db`, for logs and errors.
    pub fn redacted(&self) -> String {
        let auth = match self.password {
            Some(_) => format!("{}:***", self.user),
            None => self.user.clone(),
        };
        let target: Vec<String> = self.endpoints.iter().map(Endpoint::to_string).collect();
        format!("postgresql://{auth}@{}/{}", target.join(","), self.dbname)
    }

    /// Keepalives and `TCP_USER_TIMEOUT` on the replication connection's
    /// socket, as tokio-postgres sets them on the SQL connections.
    pub fn tune_socket(&self, tcp: &tokio::net::TcpStream) -> std::io::Result<()> {
        let socket = socket2::SockRef::from(tcp);
        socket.set_tcp_user_timeout(self.pg.get_tcp_user_timeout().copied())?;
        if !self.pg.get_keepalives() {
            return Ok(());
        }
        let mut keepalive = socket2::TcpKeepalive::new().with_time(self.pg.get_keepalives_idle());
        if let Some(interval) = self.pg.get_keepalives_interval() {
            keepalive = keepalive.with_interval(interval);
        }
        if let Some(retries) = self.pg.get_keepalives_retries() {
            keepalive = keepalive.with_retries(retries);
        }
        socket.set_tcp_keepalive(&keepalive)
    }

    pub fn connect_timeout(&self) -> Duration {
        self.pg
            .get_connect_timeout()
            .copied()
            .unwrap_or(Duration::from_secs(10))
    }

    /// The rustls configuration for this sslmode, `None` for `disable`.
    pub fn tls_config(&self) -> Result<Option<Arc<ClientConfig>>, ConnectError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| ConnectError::Tls(e.to_string()))?;
        let config = match self.ssl_mode {
            SslMode::Disable => return Ok(None),
            SslMode::Prefer | SslMode::Require => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCert { provider }))
                .with_no_client_auth(),
            SslMode::VerifyCa | SslMode::VerifyFull => {
                let roots = Arc::new(self.root_store()?);
                let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider)
                    .build()
                    .map_err(|e| ConnectError::Tls(e.to_string()))?;
                let verifier: Arc<dyn ServerCertVerifier> = if self.ssl_mode == SslMode::VerifyCa {
                    Arc::new(IgnoreHostname { inner: webpki })
                } else {
                    webpki
                };
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(verifier)
                    .with_no_client_auth()
            }
        };
        Ok(Some(Arc::new(config)))
    }

    fn root_store(&self) -> Result<RootCertStore, ConnectError> {
        let mut store = RootCertStore::empty();
        match &self.root_cert {
            Some(path) => {
                let certs = CertificateDer::pem_file_iter(path)
                    .map_err(|e| ConnectError::Tls(format!("sslrootcert {}: {e}", path.display())))?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| {
                        ConnectError::Tls(format!("sslrootcert {}: {e}", path.display()))
                    })?;
                for cert in certs {
                    store.add(cert).map_err(|e| {
                        ConnectError::Tls(format!("sslrootcert {}: {e}", path.display()))
                    })?;
                }
            }
            None => {
                let loaded = rustls_native_certs::load_native_certs();
                for cert in loaded.certs {
                    let _ = store.add(cert);
                }
            }
        }
        if store.is_empty() {
            return Err(ConnectError::Tls(
                "no root certificates: set sslrootcert=/path/to/ca.pem in the URL".into(),
            ));
        }
        Ok(store)
    }

    /// The server name TLS verifies against.
    pub fn server_name(endpoint: &Endpoint) -> Result<ServerName<'static>, ConnectError> {
        let host = match endpoint {
            Endpoint::Tcp { host, .. } => host.clone(),
            Endpoint::Unix { .. } => "localhost".to_string(),
        };
        ServerName::try_from(host.clone())
            .map_err(|_| ConnectError::Tls(format!("'{host}' is not a valid TLS server name")))
    }

    /// The same server with TCP keepalives and `TCP_USER_TIMEOUT` set, so
    /// a connection whose path died (no reset, no answer) fails within
    /// about `timeout` instead of after the kernel's default of minutes.
    pub fn watchful(&self, timeout: Duration) -> ConnectConfig {
        let mut out = self.clone();
        let probe = (timeout / 4).max(Duration::from_secs(1));
        out.pg
            .keepalives(true)
            .keepalives_idle(probe)
            .keepalives_interval(probe)
            .keepalives_retries(3)
            .tcp_user_timeout(timeout);
        out
    }

    /// The same settings for `endpoint` alone, whatever its role (no
    /// `target_session_attrs`): to look at one host of a host list, such
    /// as a standby.
    pub fn at(&self, endpoint: &Endpoint) -> ConnectConfig {
        let mut out = self.clone();
        let mut pg = tokio_postgres::Config::new();
        match endpoint {
            Endpoint::Tcp { host, port } => pg.host(host).port(*port),
            Endpoint::Unix { dir, port } => pg.host_path(dir).port(*port),
        };
        pg.user(self.user.clone()).dbname(self.dbname.clone());
        if let Some(password) = &self.password {
            pg.password(password.clone());
        }
        if let Some(options) = self.pg.get_options() {
            pg.options(options);
        }
        if let Some(name) = self.pg.get_application_name() {
            pg.application_name(name);
        }
        if let Some(timeout) = self.pg.get_connect_timeout() {
            pg.connect_timeout(*timeout);
        }
        pg.keepalives(self.pg.get_keepalives())
            .keepalives_idle(self.pg.get_keepalives_idle());
        if let Some(interval) = self.pg.get_keepalives_interval() {
            pg.keepalives_interval(interval);
        }
        if let Some(retries) = self.pg.get_keepalives_retries() {
            pg.keepalives_retries(retries);
        }
        if let Some(timeout) = self.pg.get_tcp_user_timeout() {
            pg.tcp_user_timeout(*timeout);
        }
        pg.ssl_mode(self.pg.get_ssl_mode());
        out.pg = pg;
        out.endpoints = vec![endpoint.clone()];
        out.read_write = false;
        out
    }

    /// Sets `application_name` of SQL connections.
    pub fn with_application_name(&self, name: &str) -> ConnectConfig {
        let mut out = self.clone();
        out.pg.application_name(name);
        out
    }

    /// An ordinary SQL connection; its driver task runs in the background.
    pub async fn connect_sql(&self) -> Result<tokio_postgres::Client, ConnectError> {
        let fail = |e: tokio_postgres::Error| ConnectError::Connect {
            target: self.redacted(),
            reason: describe_pg_error(&e),
        };
        // As libpq: sslmode does not apply to Unix-domain sockets (a TLS
        // attempt there fails on the socket's empty server name).
        let unix_only = self
            .endpoints
            .iter()
            .all(|e| matches!(e, Endpoint::Unix { .. }));
        match self.tls_config()?.filter(|_| !unix_only) {
            None => {
                let (client, connection) =
                    self.pg.connect(tokio_postgres::NoTls).await.map_err(fail)?;
                tokio::spawn(async move {
                    if let Err(err) = connection.await {
                        tracing::debug!("SQL connection closed: {err}");
                    }
                });
                Ok(client)
            }
            Some(tls) => {
                let tls = tokio_postgres_rustls::MakeRustlsConnect::new((*tls).clone());
                let (client, connection) = self.pg.connect(tls).await.map_err(fail)?;
                tokio::spawn(async move {
                    if let Err(err) = connection.await {
                        tracing::debug!("SQL connection closed: {err}");
                    }
                });
                Ok(client)
            }
        }
    }
}

/// A tokio-postgres error with the server's own message when there is one.
pub fn describe_pg_error(err: &tokio_postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => {
            let mut text = err.to_string();
            let mut source = std::error::Error::source(err);
            while let Some(s) = source {
                text.push_str(": ");
                text.push_str(&s.to_string());
                source = s.source();
            }
            text
        }
    }
}

/// Replace the password of a URL or a key/value conninfo with `***` (best
/// effort, for messages). Anything else is not printed: it may be a URL
/// without its scheme, password and all.
pub fn redact_url(url: &str) -> String {
    let conninfo = url
        .split_once('=')
        .is_some_and(|(key, _)| !key.trim().is_empty() && key.trim().chars().all(is_key_char));
    if url.contains("://") || conninfo {
        redact_text(url)
    } else {
        "<url>".to_string()
    }
}

/// Mask every password in free text (a log line, an error): the userinfo
/// of `scheme://user:secret@host`, and the value of a `password=` (or
/// `sslpassword=`, any key ending in `password`) in a URL's query or a
/// key/value conninfo, quoted or not. Text without either comes back as is.
pub fn redact_text(text: &str) -> String {
    mask_password_values(&mask_userinfo(text))
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn mask_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`' | '/' | '?'))
            .unwrap_or(tail.len());
        let (authority, after) = tail.split_at(end);
        match authority.rsplit_once('@') {
            Some((userinfo, host)) if userinfo.contains(':') => {
                let user = userinfo.split(':').next().unwrap_or("");
                out.push_str(user);
                out.push_str(":***@");
                out.push_str(host);
            }
            _ => out.push_str(authority),
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

/// `…password=secret…` becomes `…password=***…`. A value ends where a URL
/// parameter or a conninfo word ends (`&`, whitespace, a quote closing
/// the text around it); a value in single quotes ends at its closing
/// quote. A backslash escapes the next character, as in conninfo and in
/// JSON, so an escaped quote does not end the value early.
fn mask_password_values(text: &str) -> String {
    const KEY: &str = "password";
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut from = 0;
    while let Some(at) = lower.get(from..).and_then(|rest| rest.find(KEY)) {
        let key_end = from + at + KEY.len();
        from = key_end;
        // A word that ends in `password`, not `passwords`.
        if text[key_end..].starts_with(is_key_char) {
            continue;
        }
        let after_key = &text[key_end..];
        let spaced = after_key.trim_start_matches([' ', '\t']);
        let Some(value) = spaced.strip_prefix('=') else {
            continue;
        };
        let value = value.trim_start_matches([' ', '\t']);
        let value_start = text.len() - value.len();
        let value_len = password_value_len(value);
        if value_len == 0 {
            continue;
        }
        out.push_str(&text[copied..value_start]);
        out.push_str("***");
        copied = value_start + value_len;
        from = copied;
    }
    out.push_str(&text[copied..]);
    out
}

/// The length in bytes of the password value at the start of `value`.
fn password_value_len(value: &str) -> usize {
    let mut chars = value.char_indices();
    let quoted = value.starts_with('\'');
    if quoted {
        chars.next();
    }
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '\'' if quoted => return i + 1,
            c if !quoted && (c.is_whitespace() || matches!(c, '&' | '"' | '\'' | '`' | '#')) => {
                return i
            }
            _ => {}
        }
    }
    value.len()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes.get(i).copied().unwrap_or(0);
        if b == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(v) = hex {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `sslmode=require`/`prefer`: encrypt, but (as libpq) do not authenticate
/// the server. Signatures are still checked so the handshake is sound.
#[derive(Debug)]
struct AcceptAnyCert {
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// `sslmode=verify-ca`: the chain must lead to a trusted root; the host name
/// is not checked.
#[derive(Debug)]
struct IgnoreHostname {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for IgnoreHostname {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_url_and_never_shows_the_password() {
        let c = ConnectConfig::parse(
            "postgresql://app:s3cret@db.example:6543/shop?sslmode=verify-full&sslrootcert=%2Ftmp%2Fca.pem&application_name=x",
        )
        .unwrap();
        assert_eq!(c.user, "app");
        assert_eq!(c.password(), Some("s3cret"));
        assert_eq!(c.dbname, "shop");
        assert_eq!(c.ssl_mode, SslMode::VerifyFull);
        assert_eq!(c.root_cert, Some(PathBuf::from("/tmp/ca.pem")));
        assert_eq!(
            c.endpoints,
            [Endpoint::Tcp {
                host: "db.example".into(),
                port: 6543
            }]
        );
        assert!(!c.read_write);
        assert!(!format!("{c:?}").contains("s3cret"));
        assert_eq!(c.redacted(), "postgresql://app:***@db.example:6543/shop");
    }

    #[test]
    fn a_host_list_is_tried_in_order_and_may_ask_for_the_primary() {
        let c = ConnectConfig::parse(
            "postgresql://app:s3cret@a.example:5433,b.example:5434/shop?target_session_attrs=read-write",
        )
        .unwrap();
        let tcp = |host: &str, port| Endpoint::Tcp {
            host: host.into(),
            port,
        };
        assert_eq!(
            c.endpoints,
            [tcp("a.example", 5433), tcp("b.example", 5434)]
        );
        assert!(c.read_write);
        assert_eq!(
            c.redacted(),
            "postgresql://app:***@a.example:5433,b.example:5434/shop"
        );
        let one_port = ConnectConfig::parse("host=a,b port=6000 user=app dbname=shop").unwrap();
        assert_eq!(one_port.endpoints, [tcp("a", 6000), tcp("b", 6000)]);
    }

    #[test]
    fn a_dead_peer_is_noticed_unless_the_url_says_otherwise() {
        let c = ConnectConfig::parse("postgresql://app@db/shop").unwrap();
        assert!(c.pg.get_keepalives());
        assert_eq!(c.pg.get_keepalives_idle(), KEEPALIVES_IDLE);
        assert_eq!(c.pg.get_keepalives_interval(), Some(KEEPALIVES_INTERVAL));
        assert_eq!(c.pg.get_keepalives_retries(), Some(KEEPALIVES_RETRIES));
        assert_eq!(c.pg.get_tcp_user_timeout(), Some(&TCP_USER_TIMEOUT));
        let c = ConnectConfig::parse(
            "postgresql://app@db/shop?keepalives_idle=60&tcp_user_timeout=90&keepalives=0",
        )
        .unwrap();
        assert!(!c.pg.get_keepalives());
        assert_eq!(c.pg.get_keepalives_idle(), Duration::from_secs(60));
        assert_eq!(c.pg.get_tcp_user_timeout(), Some(&Duration::from_secs(90)));
    }

    #[tokio::test]
    async fn the_replication_socket_gets_the_same_settings() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tcp = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let c = ConnectConfig::parse("postgresql://app@db/shop").unwrap();
        c.tune_socket(&tcp).unwrap();
        let socket = socket2::SockRef::from(&tcp);
        assert!(socket.keepalive().unwrap());
        assert_eq!(socket.tcp_keepalive_time().unwrap(), KEEPALIVES_IDLE);
        assert_eq!(socket.tcp_user_timeout().unwrap(), Some(TCP_USER_TIMEOUT));
    }

    #[test]
    fn passwords_are_masked_in_urls_queries_and_conninfo() {
        let cases = [
            (
                "postgresql://app:s3cr:et@db:5432/x?sslmode=require",
                "postgresql://app:***@db:5432/x?sslmode=require",
            ),
            (
                "postgresql://app@db/x?password=s3cret&sslmode=require",
                "postgresql://app@db/x?password=***&sslmode=require",
            ),
            (
                "postgresql://app@db/x?sslmode=require&password=s3cret",
                "postgresql://app@db/x?sslmode=require&password=***",
            ),
            (
                "host=db user=app password=s3cret dbname=x",
                "host=db user=app password=*** dbname=x",
            ),
            (
                "host=db password = 's3 cr\\'et' dbname=x",
                "host=db password = *** dbname=x",
            ),
            (
                "host=db sslpassword=k3y PASSWORD=s3cret",
                "host=db sslpassword=*** PASSWORD=***",
            ),
            // In a JSON string: the value ends at the closing quote, an
            // escaped one is part of it.
            (
                r#"{"server":"host=db password=s3\"cret","level":"INFO"}"#,
                r#"{"server":"host=db password=***","level":"INFO"}"#,
            ),
            (
                "password authentication failed; passwords=1; password=",
                "password authentication failed; passwords=1; password=",
            ),
            ("postgresql://app@db/x", "postgresql://app@db/x"),
        ];
        for (text, masked) in cases {
            assert_eq!(redact_text(text), masked, "{text}");
        }
        assert_eq!(
            redact_url("host=db password=s3cret"),
            "host=db password=***"
        );
        assert_eq!(redact_url("app:s3cret@db/x"), "<url>");
    }

    #[test]
    fn bad_urls_are_reported_without_the_password() {
        let err = ConnectConfig::parse("postgresql://app:s3cret@host:notaport/db")
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid PostgreSQL URL"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
        let err = ConnectConfig::parse("postgresql://app:s3cret@host/db?sslmode=sometimes")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown sslmode 'sometimes'"), "{err}");
        let err = ConnectConfig::parse("postgresql://app@host:notaport/db?password=s3cret")
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid PostgreSQL URL"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
    }
}
