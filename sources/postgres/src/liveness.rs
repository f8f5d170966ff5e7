//! Noticing a dead replication connection in bounded time.
//!
//! A network path that dies without a reset (a NAT entry dropped, an address
//! moved in a failover, a firewall that drops) leaves the socket open and
//! silent: a reader waiting for the next message waits forever. TCP
//! keepalives and `TCP_USER_TIMEOUT` (`connect.rs`) close such a socket
//! eventually; this is the protocol's own bound on top. The server answers
//! a status update that asks for a reply at once, so when nothing has
//! arrived for a third of the timeout the reader asks, and when nothing has
//! arrived for the whole timeout the connection is dead.

use std::time::Duration;

use tokio::time::Instant;

use crate::replication::{ReplicationConnection, ReplicationError};

/// No timeout below this, whatever `wal_sender_timeout` says: a busy server
/// may take a few seconds to answer.
pub const MIN_TIMEOUT: Duration = Duration::from_secs(10);

/// What the reader does on a status tick.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Check {
    Fine,
    /// Quiet for a while: send a status update that asks for a reply.
    Ping,
    /// Quiet for the whole timeout.
    Dead,
}

pub(crate) struct Liveness {
    timeout: Duration,
    last_received: Instant,
}

impl Liveness {
    pub(crate) fn new(timeout: Duration) -> Self {
        Liveness {
            timeout,
            last_received: Instant::now(),
        }
    }

    /// Something arrived, or the reader was busy elsewhere (handing a batch
    /// to a slow pipeline) and did not look: silence counts from now.
    pub(crate) fn alive(&mut self) {
        self.last_received = Instant::now();
    }

    pub(crate) fn check(&self) -> Check {
        self.check_at(Instant::now())
    }

    fn check_at(&self, now: Instant) -> Check {
        let quiet = now.saturating_duration_since(self.last_received);
        if quiet >= self.timeout {
            Check::Dead
        } else if quiet >= self.timeout / 3 {
            Check::Ping
        } else {
            Check::Fine
        }
    }

    pub(crate) fn error(&self) -> ReplicationError {
        ReplicationError::Timeout {
            secs: self.timeout.as_secs(),
        }
    }
}

/// The receive timeout of a session: `configured`, else twice the server's
/// `wal_sender_timeout` (it cuts a silent client after that long, and pings
/// at half of it), at least [`MIN_TIMEOUT`].
pub(crate) async fn timeout(
    configured: Option<Duration>,
    conn: &mut ReplicationConnection,
) -> Result<Duration, ReplicationError> {
    if let Some(timeout) = configured {
        return Ok(timeout);
    }
    let rows = conn.simple_query("SHOW wal_sender_timeout").await?;
    let text = rows
        .first()
        .and_then(|r| r.first().cloned().flatten())
        .unwrap_or_default();
    Ok(derive(parse_setting(&text)))
}

fn derive(wal_sender_timeout: Option<Duration>) -> Duration {
    wal_sender_timeout
        .map(|t| t * 2)
        .unwrap_or(MIN_TIMEOUT)
        .max(MIN_TIMEOUT)
}

/// A time setting as `SHOW` prints it: `60s`, `1min`, `500ms`, `0` (off:
/// `None`). Unreadable text is `None` too: the floor then applies.
fn parse_setting(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    let ms = match unit.trim() {
        // A bare number is in the setting's base unit, milliseconds.
        "" | "ms" => n,
        "s" => n.saturating_mul(1000),
        "min" => n.saturating_mul(60_000),
        "h" => n.saturating_mul(3_600_000),
        "d" => n.saturating_mul(86_400_000),
        _ => return None,
    };
    (ms > 0).then(|| Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_time_settings() {
        assert_eq!(parse_setting("60s"), Some(Duration::from_secs(60)));
        assert_eq!(parse_setting("1min"), Some(Duration::from_secs(60)));
        assert_eq!(parse_setting("3500ms"), Some(Duration::from_millis(3500)));
        assert_eq!(parse_setting("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_setting("0"), None);
        assert_eq!(parse_setting("soon"), None);
    }

    #[test]
    fn twice_the_server_timeout_with_a_floor() {
        assert_eq!(
            derive(Some(Duration::from_secs(60))),
            Duration::from_secs(120)
        );
        assert_eq!(derive(Some(Duration::from_secs(3))), MIN_TIMEOUT);
        assert_eq!(derive(None), MIN_TIMEOUT);
    }

    #[test]
    fn pings_then_gives_up() {
        let live = Liveness::new(Duration::from_secs(30));
        let start = live.last_received;
        assert_eq!(live.check_at(start), Check::Fine);
        assert_eq!(live.check_at(start + Duration::from_secs(11)), Check::Ping);
        assert_eq!(live.check_at(start + Duration::from_secs(30)), Check::Dead);
        assert!(live.error().to_string().contains("30s"));
    }
}
