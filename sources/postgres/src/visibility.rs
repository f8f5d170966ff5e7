//! PostgreSQL snapshot visibility (`pg_current_snapshot()`), used to tell whether a
//! transaction the log already streamed as committed was visible to a chunk's `SELECT`:
//! the merger's torn-chunk check asks it through [`ReadSnapshot`].

use std::fmt;
use std::ops::RangeInclusive;
use std::str::FromStr;

use cdc_engine::merger::{Candidates, ReadSnapshot};

/// Size of one xid epoch: the log carries 32-bit xids, snapshots 64-bit ones.
const EPOCH: u64 = 1 << 32;
const XID32_MAX: u64 = u32::MAX as u64;

/// How far above `xmax` a 32-bit xid may resolve. Only transactions that held an xid
/// when the snapshot was taken can lie above `xmax`, a distance bounded by the number of
/// transactions in flight; so a 32-bit xid further up than this is read as an old one
/// from the previous epoch. 2^30 is slack both ways: xids up to 3 * 2^30 old still
/// resolve to the past, and PostgreSQL stops assigning xids long before a running one
/// gets 2^31 old.
const AHEAD: u64 = 1 << 30;

/// The visibility of the snapshot a chunk `SELECT` ran in, as `pg_current_snapshot()`
/// reports it (64-bit `xid8` values). Its text form `xmin:xmax:xip1,xip2` is
/// PostgreSQL's, both ways ([`fmt::Display`], [`FromStr`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visibility {
    pub xmin: u64,
    pub xmax: u64,
    pub xip: Vec<u64>,
}

/// Why a snapshot text did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("snapshot {text:?} is not `xmin:xmax:xip,...` with 64-bit xids: {reason}")]
pub struct VisibilityParseError {
    pub text: String,
    pub reason: &'static str,
}

impl Visibility {
    /// The 64-bit xid of a transaction id as log items carry it: PostgreSQL's 32-bit xid
    /// (pgoutput's Begin) is placed in the epoch that puts it nearest to `xmax` and not far
    /// above it (at most 2^30, see `AHEAD`). Ids above 32 bits are taken as 64-bit already.
    /// In epoch 0 there is no earlier epoch, so an xid far above `xmax` stays above it.
    pub fn full_xid(&self, tx_id: u64) -> u64 {
        if tx_id > XID32_MAX {
            return tx_id;
        }
        // `saturating_add` keeps `top >= AHEAD - 1`, so the subtraction cannot underflow.
        let top = self.xmax.saturating_add(AHEAD) - 1;
        // The largest value at or below `top` with the same low 32 bits as `tx_id`.
        let back = u64::from((top as u32).wrapping_sub(tx_id as u32));
        top.checked_sub(back).unwrap_or(tx_id)
    }

    /// Whether the transaction `tx_id` (as carried by log items, see [`Self::full_xid`])
    /// was not visible to the snapshot: `full_xid >= xmax`, or it is listed in `xip`.
    /// Linear in `xip`, which holds only the transactions running at the time.
    pub fn is_invisible(&self, tx_id: u64) -> bool {
        let full = self.full_xid(tx_id);
        full >= self.xmax || self.xip.contains(&full)
    }

    /// The raw log tx ids that may resolve to `xmax` or above: a superset, each hit still
    /// goes through [`Self::is_invisible`]. Lets the commit memory look up a few ranges
    /// instead of scanning everything it remembers.
    fn ahead_ranges(&self) -> [Option<RangeInclusive<u64>>; 3] {
        let wide = Some(self.xmax.max(EPOCH)..=u64::MAX);
        let low = self.xmax & XID32_MAX;
        let top = self.xmax.saturating_add(AHEAD) - 1;
        if top <= XID32_MAX {
            // Early in epoch 0 nothing wraps, and xids that would need an earlier epoch
            // stay where they are (above xmax), so everything from xmax up qualifies.
            return [Some(low..=XID32_MAX), None, wide];
        }
        let end = low + AHEAD - 1;
        if end <= XID32_MAX {
            [Some(low..=end), None, wide]
        } else {
            [Some(low..=XID32_MAX), Some(0..=end - EPOCH), wide]
        }
    }

    /// The raw log tx ids that may stand for `xid` (a 64-bit xid from `xip`).
    fn raw_ids(xid: u64) -> [u64; 2] {
        [xid & XID32_MAX, xid]
    }

    /// A one-line description for discard reasons: the full text unless `xip` is long.
    pub fn brief(&self) -> String {
        const SHOWN: usize = 8;
        if self.xip.len() <= SHOWN {
            return self.to_string();
        }
        let shown: Vec<String> = self.xip.iter().take(SHOWN).map(u64::to_string).collect();
        format!(
            "{}:{}:{},... ({} in progress)",
            self.xmin,
            self.xmax,
            shown.join(","),
            self.xip.len()
        )
    }
}

impl ReadSnapshot for Visibility {
    fn is_invisible(&self, tx_id: u64) -> bool {
        Visibility::is_invisible(self, tx_id)
    }

    /// Each in-progress xid in both forms the log may carry it (32-bit,
    /// 64-bit), and the ids that may resolve to `xmax` or above.
    fn candidates(&self) -> Candidates {
        Candidates {
            ids: self
                .xip
                .iter()
                .flat_map(|&xid| Self::raw_ids(xid))
                .collect(),
            ranges: self.ahead_ranges().into_iter().flatten().collect(),
        }
    }

    fn brief(&self) -> String {
        Visibility::brief(self)
    }
}

impl fmt::Display for Visibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:", self.xmin, self.xmax)?;
        for (i, xid) in self.xip.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{xid}")?;
        }
        Ok(())
    }
}

impl FromStr for Visibility {
    type Err = VisibilityParseError;

    /// Parses `pg_current_snapshot()::text`, e.g. `726:726:` or `10:20:12,15`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = |reason| VisibilityParseError {
            text: text.to_owned(),
            reason,
        };
        let mut parts = text.trim().split(':');
        let (Some(xmin), Some(xmax), Some(xip), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(err("expected three `:`-separated parts"));
        };
        let number = |s: &str| s.parse::<u64>().map_err(|_| err("not a 64-bit xid"));
        let xmin = number(xmin)?;
        let xmax = number(xmax)?;
        let xip = if xip.is_empty() {
            Vec::new()
        } else {
            xip.split(',').map(number).collect::<Result<_, _>>()?
        };
        if xmin > xmax {
            return Err(err("xmin is above xmax"));
        }
        Ok(Visibility { xmin, xmax, xip })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn vis(xmax: u64, xip: Vec<u64>) -> Visibility {
        let xmin = xip.iter().copied().min().unwrap_or(xmax).min(xmax);
        Visibility { xmin, xmax, xip }
    }

    #[test]
    fn the_sync_rep_snapshot_hides_its_waiting_xid() {
        // Seen on PostgreSQL 15: `726:726:` while xid 726 waited in SyncRep.
        let v: Visibility = "726:726:".parse().unwrap();
        assert_eq!(v, vis(726, vec![]));
        assert!(v.is_invisible(726));
        assert!(v.is_invisible(727));
        assert!(!v.is_invisible(725));
        let v = vis(730, vec![726]);
        assert!(v.is_invisible(726));
        assert!(!v.is_invisible(727));
    }

    #[test]
    fn wraparound_resolves_to_the_nearest_epoch() {
        let epoch = 5 << 32;
        // xmax just after a wrap: an xid from the end of the previous epoch is old.
        let v = vis(epoch + 10, vec![]);
        assert_eq!(v.full_xid(u64::from(u32::MAX) - 5), epoch - 6);
        assert!(!v.is_invisible(u64::from(u32::MAX) - 5));
        assert!(!v.is_invisible(9));
        assert!(v.is_invisible(10));
        // ...unless it is still running.
        let v = vis(epoch + 10, vec![epoch - 6]);
        assert!(v.is_invisible(u64::from(u32::MAX) - 5));
        // xmax just before a wrap: a small xid is from the next epoch, above xmax.
        let v = vis(epoch + u64::from(u32::MAX) - 5, vec![]);
        assert_eq!(v.full_xid(3), epoch + EPOCH + 3);
        assert!(v.is_invisible(3));
        assert!(!v.is_invisible(u64::from(u32::MAX) - 6));
        // Far above xmax means an old xid of the previous epoch.
        let v = vis(epoch + 100, vec![]);
        assert_eq!(v.full_xid(100 + AHEAD), epoch - EPOCH + 100 + AHEAD);
        assert!(!v.is_invisible(100 + AHEAD));
        assert!(v.is_invisible(100 + AHEAD - 1));
    }

    #[test]
    fn epoch_zero_has_no_earlier_epoch() {
        let v = vis(1000, vec![]);
        assert_eq!(v.full_xid(u64::from(u32::MAX)), u64::from(u32::MAX));
        assert!(v.is_invisible(u64::from(u32::MAX)));
        assert!(!v.is_invisible(999));
        // 64-bit ids are taken as they are.
        let v = vis(epoch_xid(3, 50), vec![]);
        assert!(v.is_invisible(epoch_xid(3, 50)));
        assert!(!v.is_invisible(epoch_xid(3, 49)));
        // The top of the range does not overflow.
        let v = vis(u64::MAX - 1, vec![]);
        assert!(!v.is_invisible(7));
        assert!(v.is_invisible(u64::MAX));
        assert!(!vis(u64::MAX, vec![]).is_invisible(0));
    }

    fn epoch_xid(epoch: u64, xid: u64) -> u64 {
        (epoch << 32) | xid
    }

    #[test]
    fn text_round_trips() {
        for text in [
            "726:726:",
            "10:20:12,15",
            "4294967300:4294967310:4294967301",
        ] {
            let v: Visibility = text.parse().unwrap();
            assert_eq!(v.to_string(), text);
        }
        for bad in ["", "1:2", "1:2:3:4", "a:2:", "1:2:x", "3:2:", "1:2:3,"] {
            assert!(bad.parse::<Visibility>().is_err(), "{bad}");
        }
        let long = vis(100, (1..=20).collect());
        assert_eq!(long.brief(), "1:100:1,2,3,4,5,6,7,8,... (20 in progress)");
    }

    fn in_ranges(v: &Visibility, raw: u64) -> bool {
        v.ahead_ranges().iter().flatten().any(|r| r.contains(&raw))
    }

    proptest! {
        #[test]
        fn ahead_ranges_cover_every_id_at_or_above_xmax(
            xmax in prop_oneof![
                0u64..(1 << 34),
                (EPOCH - AHEAD - 4)..(EPOCH - AHEAD + 4),
                (EPOCH - 8)..(EPOCH + 8),
                (u64::MAX - AHEAD - 8)..=u64::MAX,
            ],
            offset in prop_oneof![0u64..16, 0u64..(1 << 33)],
            below in any::<bool>(),
        ) {
            let v = vis(xmax, vec![]);
            let raw = if below {
                (xmax.wrapping_sub(offset)) & XID32_MAX
            } else {
                (xmax.wrapping_add(offset)) & XID32_MAX
            };
            if v.full_xid(raw) >= xmax {
                prop_assert!(in_ranges(&v, raw), "xmax {xmax} raw {raw}");
            }
            let wide = xmax.wrapping_add(offset);
            if wide > XID32_MAX && v.full_xid(wide) >= xmax {
                prop_assert!(in_ranges(&v, wide), "xmax {xmax} wide {wide}");
            }
        }
    }
}
