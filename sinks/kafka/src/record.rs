//! Encoded Kafka records, kept until a flush confirms them.
//!
//! Every accepted record stays here, in acceptance order, until a flush has
//! seen all of them delivered: that is what lets the sink send any of them
//! again (after a failed delivery or a new producer) without the source
//! sending them again. Keys, values and header values live in one arena
//! that is reset after each confirmed flush, so encoding costs no allocation
//! per event.

use std::ops::Range;
use std::sync::Arc;

use rdkafka::message::{Header, OwnedHeaders};

/// Header naming the change's `op` (`c`, `u`, `d`, `r`, `t`, `m`).
pub const HEADER_OP: &str = "cdc.op";
/// Header holding the source position (hex) of the change's transaction.
pub const HEADER_POSITION: &str = "cdc.position";
/// Outbox event id header (Debezium's outbox router uses `id` too).
pub const HEADER_ID: &str = "id";
/// Outbox event type header.
pub const HEADER_TYPE: &str = "type";

/// At most this many headers per record.
const MAX_HEADERS: usize = 3;

/// One record to produce.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub topic: Arc<str>,
    pub key: Option<Range<usize>>,
    pub value: Option<Range<usize>>,
    headers: [(&'static str, Range<usize>); MAX_HEADERS],
    header_count: u8,
}

/// Accepted records and their bytes.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    arena: Vec<u8>,
    records: Vec<Record>,
}

/// Builds one record into a [`Batch`].
pub(crate) struct RecordBuilder<'a> {
    batch: &'a mut Batch,
    record: Record,
}

/// Where a batch stood, to undo what a failed `write` added.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mark {
    arena: usize,
    /// Records before the mark.
    pub records: usize,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn get(&self, index: usize) -> Option<&Record> {
        self.records.get(index)
    }

    pub fn records(&self) -> &[Record] {
        &self.records
    }

    pub fn clear(&mut self) {
        self.arena.clear();
        self.records.clear();
    }

    pub fn mark(&self) -> Mark {
        Mark {
            arena: self.arena.len(),
            records: self.records.len(),
        }
    }

    pub fn rollback(&mut self, mark: Mark) {
        self.arena.truncate(mark.arena);
        self.records.truncate(mark.records);
    }

    pub fn bytes(&self, range: &Range<usize>) -> &[u8] {
        self.arena.get(range.clone()).unwrap_or_default()
    }

    /// Start a record for `topic`.
    pub fn record(&mut self, topic: Arc<str>) -> RecordBuilder<'_> {
        RecordBuilder {
            batch: self,
            record: Record {
                topic,
                key: None,
                value: None,
                headers: Default::default(),
                header_count: 0,
            },
        }
    }

    /// Append bytes written by `fill` to the arena; their range.
    fn append(&mut self, fill: impl FnOnce(&mut Vec<u8>)) -> Range<usize> {
        let start = self.arena.len();
        fill(&mut self.arena);
        start..self.arena.len()
    }

    /// The record's headers for librdkafka.
    pub fn headers(&self, record: &Record) -> Option<OwnedHeaders> {
        if record.header_count == 0 {
            return None;
        }
        let mut headers = OwnedHeaders::new_with_capacity(usize::from(record.header_count));
        for (name, range) in record.headers.iter().take(usize::from(record.header_count)) {
            headers = headers.insert(Header {
                key: name,
                value: Some(self.bytes(range)),
            });
        }
        Some(headers)
    }

    /// Header `name` of `record`.
    #[cfg(test)]
    pub fn header(&self, record: &Record, name: &str) -> Option<&[u8]> {
        record
            .headers
            .iter()
            .take(usize::from(record.header_count))
            .find(|(n, _)| *n == name)
            .map(|(_, r)| self.bytes(r))
    }
}

impl RecordBuilder<'_> {
    pub fn key(mut self, fill: impl FnOnce(&mut Vec<u8>)) -> Self {
        self.record.key = Some(self.batch.append(fill));
        self
    }

    pub fn value(mut self, fill: impl FnOnce(&mut Vec<u8>)) -> Self {
        self.record.value = Some(self.batch.append(fill));
        self
    }

    /// Adds a header; beyond [`MAX_HEADERS`] headers are ignored (the sink
    /// never sets more).
    pub fn header(mut self, name: &'static str, fill: impl FnOnce(&mut Vec<u8>)) -> Self {
        let index = usize::from(self.record.header_count);
        if index < MAX_HEADERS {
            let range = self.batch.append(fill);
            if let Some(slot) = self.record.headers.get_mut(index) {
                *slot = (name, range);
                self.record.header_count += 1;
            }
        }
        self
    }

    pub fn push(self) {
        self.batch.records.push(self.record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_share_one_arena_and_roll_back() {
        let mut batch = Batch::default();
        let topic: Arc<str> = Arc::from("t");
        batch
            .record(topic.clone())
            .key(|b| b.extend_from_slice(b"k1"))
            .value(|b| b.extend_from_slice(b"v1"))
            .header(HEADER_OP, |b| b.push(b'c'))
            .push();
        let mark = batch.mark();
        batch
            .record(topic)
            .key(|b| b.extend_from_slice(b"k2"))
            .push();
        assert_eq!(batch.len(), 2);
        batch.rollback(mark);
        assert_eq!(batch.len(), 1);
        let record = batch.get(0).unwrap();
        assert_eq!(batch.bytes(record.key.as_ref().unwrap()), b"k1");
        assert_eq!(batch.bytes(record.value.as_ref().unwrap()), b"v1");
        assert_eq!(batch.header(record, HEADER_OP), Some(&b"c"[..]));
        assert!(batch.headers(record).is_some());
    }
}
