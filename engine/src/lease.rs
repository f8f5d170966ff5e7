//! The lease: the right of one instance of a group (the instances sharing a
//! source position) to stream, acknowledge and save snapshot progress.
//!
//! The source holds it (PostgreSQL: a session advisory lock on a
//! connection of its own) and confirms it regularly. Acting needs a *fresh*
//! confirmation, not just "not lost yet": a process frozen (SIGSTOP, a
//! stalled VM) wakes with a stale one, and must not acknowledge anything
//! before it has confirmed again, by which time a standby may hold it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// How recent the last confirmation must be for the holder to act.
pub const FRESH: Duration = Duration::from_secs(5);

/// Connections that notice an outage within this long of the first are
/// taken to have noticed the same fault (the lock connection is polled
/// once a second and gives up after 30 s of silence).
pub const OUTAGE_SPELL: Duration = Duration::from_secs(40);

#[derive(Clone)]
pub struct Lease {
    inner: Arc<Inner>,
}

struct Inner {
    epoch: i64,
    confirmed: Mutex<Option<Instant>>,
    lost: watch::Sender<Option<String>>,
    /// When a connection of the source last warned of an outage: one fault
    /// (a crashed server, a dead path) ends every connection, and gets one
    /// warning, not one per connection.
    outage_said_at: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("epoch", &self.inner.epoch)
            .field("lost", &self.lost())
            .finish()
    }
}

impl Lease {
    /// Held, as of now, with the group's `epoch` (it grows with each
    /// holder, so state saved by a previous holder can be told apart).
    pub fn held(epoch: i64) -> Lease {
        let (lost, _) = watch::channel(None);
        Lease {
            inner: Arc::new(Inner {
                epoch,
                confirmed: Mutex::new(Some(Instant::now())),
                lost,
                outage_said_at: Mutex::new(None),
            }),
        }
    }

    /// For a single instance without a group (tests, benchmarks): always
    /// fresh, never lost.
    pub fn sole() -> Lease {
        let (lost, _) = watch::channel(None);
        Lease {
            inner: Arc::new(Inner {
                epoch: 0,
                confirmed: Mutex::new(None),
                lost,
                outage_said_at: Mutex::new(None),
            }),
        }
    }

    pub fn epoch(&self) -> i64 {
        self.inner.epoch
    }

    /// The holder checked, just now, that it still holds it.
    pub fn confirm(&self) {
        if let Ok(mut at) = self.inner.confirmed.lock() {
            if at.is_some() {
                *at = Some(Instant::now());
            }
        }
    }

    /// It is gone (the lock connection died): stop acting.
    pub fn lose(&self, why: String) {
        self.inner.lost.send_if_modified(|lost| {
            let first = lost.is_none();
            if first {
                *lost = Some(why);
            }
            first
        });
    }

    /// A connection of the source noticed an outage: `true` when it is
    /// the first to within [`OUTAGE_SPELL`], and so the one to warn; the
    /// others say it at info.
    pub fn first_to_notice_outage(&self) -> bool {
        let Ok(mut at) = self.inner.outage_said_at.lock() else {
            return true;
        };
        let first = at.is_none_or(|at| at.elapsed() > OUTAGE_SPELL);
        if first {
            *at = Some(Instant::now());
        }
        first
    }

    pub fn lost(&self) -> Option<String> {
        self.inner.lost.borrow().clone()
    }

    /// May act now: not lost, and confirmed within [`FRESH`].
    pub fn is_fresh(&self) -> bool {
        if self.lost().is_some() {
            return false;
        }
        match self.inner.confirmed.lock() {
            Ok(at) => at.is_none_or(|at| at.elapsed() < FRESH),
            Err(_) => false,
        }
    }

    /// A receiver that changes once, when the lease is lost: cheaper than
    /// [`Lease::wait_lost`] in a loop that polls it per message.
    pub fn watch(&self) -> watch::Receiver<Option<String>> {
        self.inner.lost.subscribe()
    }

    /// Resolves with the reason once the lease is lost (never for
    /// [`Lease::sole`]).
    pub async fn wait_lost(&self) -> String {
        let mut rx = self.inner.lost.subscribe();
        loop {
            if let Some(why) = rx.borrow_and_update().clone() {
                return why;
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_lease_is_never_fresh_again() {
        let lease = Lease::held(3);
        assert!(lease.is_fresh());
        assert_eq!(lease.epoch(), 3);
        lease.lose("lock connection closed".into());
        lease.lose("second reason is ignored".into());
        lease.confirm();
        assert!(!lease.is_fresh());
        assert_eq!(lease.lost().as_deref(), Some("lock connection closed"));
    }

    #[test]
    fn the_sole_instance_is_always_fresh() {
        let lease = Lease::sole();
        lease.confirm();
        assert!(lease.is_fresh());
        assert_eq!(lease.lost(), None);
    }

    #[tokio::test]
    async fn waiting_ends_when_lost() {
        let lease = Lease::held(1);
        let waiter = tokio::spawn({
            let lease = lease.clone();
            async move { lease.wait_lost().await }
        });
        lease.lose("gone".into());
        assert_eq!(waiter.await.ok().as_deref(), Some("gone"));
    }
}
