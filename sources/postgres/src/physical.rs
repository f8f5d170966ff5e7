//! Chunks of a table without a key: ranges of heap pages, read by `ctid`
//! (docs/architecture.md, "Tables without a key").
//!
//! A chunk is every row on pages `[start, end)`, selected by a TID range
//! scan, so it costs the pages it reads whatever the table's size. The table's
//! size in pages when its snapshot starts bounds it: rows on pages added
//! later were written later, and the log has them. A chunk's progress is the
//! page it ended at, so a restart resumes there. The number of pages per
//! chunk follows the rows per page the last chunk found, so chunks stay near
//! `chunk_size` rows on tables of any row width.

use std::collections::HashMap;
use std::sync::Mutex;

use cdc_engine::scheduler::ChunkRequest;
use cdc_engine::snapshot::SnapshotError;
use cdc_engine::TableRef;

/// Rows per page assumed before anything is known (a never-analyzed table):
/// about right for rows of a hundred bytes.
const DEFAULT_ROWS_PER_PAGE: f64 = 60.0;

/// Pages `[start, end)` of one chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PageRange {
    pub(crate) start: u64,
    pub(crate) end: u64,
}

impl PageRange {
    /// The select's parameters: the first tuple of each bound's page.
    pub(crate) fn params(&self) -> Vec<String> {
        vec![tid(self.start), tid(self.end)]
    }

    fn pages(&self) -> u64 {
        self.end.saturating_sub(self.start).max(1)
    }
}

fn tid(page: u64) -> String {
    format!("({page},0)")
}

/// A page number from a chunk bound, as [`PageRange`] hands them out.
pub(crate) fn parse_page(bound: Option<&[String]>) -> Result<u64, SnapshotError> {
    match bound {
        None => Ok(0),
        Some([page]) => page.parse().map_err(|_| bad_bound(page)),
        Some(other) => Err(bad_bound(&other.join(","))),
    }
}

fn bad_bound(bound: &str) -> SnapshotError {
    SnapshotError::Definite(format!(
        "snapshot progress {bound:?} is not a page number: the table's snapshot must start over \
         (send stop-snapshot, then execute-snapshot)"
    ))
}

/// What the chunks of each table found per page, to size the next ones.
#[derive(Default)]
pub(crate) struct Densities(Mutex<HashMap<TableRef, f64>>);

impl Densities {
    /// The pages of `request`'s chunk, `total` being the table's size in
    /// pages at start and `estimate` the planner's row count, if known.
    pub(crate) fn range(
        &self,
        request: &ChunkRequest,
        total: u64,
        estimate: Option<u64>,
    ) -> Result<PageRange, SnapshotError> {
        let start = parse_page(request.after_key.as_deref())?;
        let known = self
            .0
            .lock()
            .ok()
            .and_then(|d| d.get(&request.table).copied());
        let per_page = known
            .or_else(|| match estimate {
                Some(rows) if rows > 0 && total > 0 => Some(rows as f64 / total as f64),
                _ => None,
            })
            .unwrap_or(DEFAULT_ROWS_PER_PAGE)
            .max(1.0);
        let pages = ((request.limit as f64 / per_page).ceil() as u64).max(1);
        Ok(PageRange {
            start,
            end: start.saturating_add(pages).min(total.max(start + 1)),
        })
    }

    /// A chunk of `range` held `rows`: remember the density. An empty
    /// range says little (deleted rows, vacuumed pages), so it only grows
    /// the next chunk.
    pub(crate) fn observe(&self, table: &TableRef, range: PageRange, rows: usize) {
        if let Ok(mut densities) = self.0.lock() {
            let found = rows as f64 / range.pages() as f64;
            let entry = densities.entry(table.clone()).or_insert(found);
            *entry = if rows == 0 { *entry / 2.0 } else { found };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(after: Option<&str>, limit: usize) -> ChunkRequest {
        ChunkRequest {
            token: 1,
            table: TableRef::new("public", "t"),
            filter: None,
            surrogate_key: None,
            after_key: after.map(|a| vec![a.to_string()]),
            max_key: None,
            max_key_read: true,
            limit,
            attempt: 0,
        }
    }

    #[test]
    fn chunks_follow_the_density_found_and_stop_at_the_start_size() {
        let d = Densities::default();
        // Unknown: the default density; the estimate when there is one.
        assert_eq!(
            d.range(&request(None, 600), 1000, None).ok(),
            Some(PageRange { start: 0, end: 10 })
        );
        assert_eq!(
            d.range(&request(None, 600), 1000, Some(100_000)).ok(),
            Some(PageRange { start: 0, end: 6 })
        );
        d.observe(
            &TableRef::new("public", "t"),
            PageRange { start: 0, end: 10 },
            20,
        );
        assert_eq!(
            d.range(&request(Some("10"), 600), 1000, None).ok(),
            Some(PageRange {
                start: 10,
                end: 310
            })
        );
        // The last chunk ends at the size at start.
        assert_eq!(
            d.range(&request(Some("900"), 600), 1000, None).ok(),
            Some(PageRange {
                start: 900,
                end: 1000
            })
        );
        assert!(d.range(&request(Some("x"), 600), 1000, None).is_err());
        assert_eq!(
            PageRange { start: 3, end: 5 }.params(),
            vec!["(3,0)", "(5,0)"]
        );
    }
}
