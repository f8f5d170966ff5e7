//! Just enough `postgresql://` URL handling to retarget an external server's URL.

use crate::Error;

/// Percent-encodes everything except RFC 3986 unreserved characters.
pub(crate) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Reverses [`encode`] (and any other `%XX` escapes); malformed escapes stay literal.
pub(crate) fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        // Byte-wise hex parsing: slicing the &str could split a UTF-8 character.
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// A parsed `scheme://[userinfo@]hosts[/database][?query]` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PgUrl {
    scheme: String,
    userinfo: Option<String>,
    hosts: String,
    database: String,
    query: Option<String>,
}

impl PgUrl {
    pub(crate) fn parse(url: &str) -> Result<PgUrl, Error> {
        let bad = |reason| Error::BadUrl {
            url: url.to_owned(),
            reason,
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("expected postgresql://[user[:password]@]host[:port][/db]"))?;
        if scheme != "postgres" && scheme != "postgresql" {
            return Err(bad("scheme must be postgres:// or postgresql://"));
        }
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q.to_owned())),
            None => (rest, None),
        };
        let (authority, database) = rest.split_once('/').unwrap_or((rest, ""));
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u.to_owned()), h),
            None => (None, authority),
        };
        Ok(PgUrl {
            scheme: scheme.to_owned(),
            userinfo,
            hosts: hosts.to_owned(),
            database: decode(database),
            query,
        })
    }

    /// The first host (libpq default `localhost`), without IPv6 brackets.
    pub(crate) fn host(&self) -> String {
        let first = self.first_hostport();
        let host = if let Some(rest) = first.strip_prefix('[') {
            rest.split(']').next().unwrap_or_default()
        } else {
            first.split(':').next().unwrap_or_default()
        };
        if host.is_empty() {
            "localhost".to_owned()
        } else {
            decode(host)
        }
    }

    /// The first host's port (libpq default 5432).
    pub(crate) fn port(&self) -> u16 {
        let first = self.first_hostport();
        let after_host = match first.strip_prefix('[') {
            Some(rest) => rest.split_once(']').map_or("", |(_, p)| p),
            None => first.split_once(':').map_or("", |(_, p)| p),
        };
        after_host.trim_start_matches(':').parse().unwrap_or(5432)
    }

    /// The user named in the URL (libpq would default to the OS user; we assume `postgres`).
    pub(crate) fn user(&self) -> String {
        match &self.userinfo {
            Some(info) => decode(info.split(':').next().unwrap_or_default()),
            None => "postgres".to_owned(),
        }
    }

    #[cfg(test)]
    pub(crate) fn database(&self) -> &str {
        &self.database
    }

    fn first_hostport(&self) -> &str {
        self.hosts.split(',').next().unwrap_or_default()
    }

    /// The same URL pointed at another database.
    pub(crate) fn with_database(&self, database: &str) -> PgUrl {
        PgUrl {
            database: database.to_owned(),
            ..self.clone()
        }
    }

    /// The same URL with another user and password.
    pub(crate) fn with_user(&self, user: &str, password: &str) -> PgUrl {
        PgUrl {
            userinfo: Some(format!("{}:{}", encode(user), encode(password))),
            ..self.clone()
        }
    }
}

impl std::fmt::Display for PgUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://", self.scheme)?;
        if let Some(info) = &self.userinfo {
            write!(f, "{info}@")?;
        }
        write!(f, "{}/{}", self.hosts, encode(&self.database))?;
        if let Some(query) = &self.query {
            write!(f, "?{query}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_roundtrip() {
        let s = "p@ss:w/rd %é";
        assert_eq!(encode(s), "p%40ss%3Aw%2Frd%20%25%C3%A9");
        assert_eq!(decode(&encode(s)), s);
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz"), "%zz");
    }

    #[test]
    fn parse_and_retarget() {
        let u =
            PgUrl::parse("postgresql://admin:secret@db.example:6543/main?sslmode=require").unwrap();
        assert_eq!(u.host(), "db.example");
        assert_eq!(u.port(), 6543);
        assert_eq!(u.user(), "admin");
        assert_eq!(u.database(), "main");
        assert_eq!(
            u.with_database("cdc_test_1").to_string(),
            "postgresql://admin:secret@db.example:6543/cdc_test_1?sslmode=require"
        );
        assert_eq!(
            u.with_user("a b", "p@ss").to_string(),
            "postgresql://a%20b:p%40ss@db.example:6543/main?sslmode=require"
        );
    }

    #[test]
    fn parse_defaults() {
        let u = PgUrl::parse("postgres://[::1]").unwrap();
        assert_eq!(u.host(), "::1");
        assert_eq!(u.port(), 5432);
        assert_eq!(u.user(), "postgres");
        assert_eq!(u.database(), "");
        let u = PgUrl::parse("postgres://[::1]:7000,other:1/x").unwrap();
        assert_eq!(u.port(), 7000);
        assert!(PgUrl::parse("host=localhost").is_err());
        assert!(PgUrl::parse("http://x/y").is_err());
    }
}
