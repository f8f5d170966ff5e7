//! Streamed in-progress transactions, held until their commit.
//!
//! With `streaming 'on'` the server sends a large transaction in blocks as
//! it decodes it, instead of spilling it to its own disk and sending it
//! after the commit. Blocks of several transactions interleave with each
//! other and with whole small transactions. cdc keeps each streamed
//! transaction's messages, in order, within one memory budget for all of
//! them; past it, the largest one moves to a temporary file. At the stream
//! commit the transaction is replayed to the decoder, whole, in commit
//! order, exactly as a version 1 transaction would have come.
//!
//! The file is a cache, not state: nothing of an uncommitted transaction
//! is acknowledged, so a new session simply receives it again and the
//! files of the old one are dropped (docs/architecture.md, "Streamed
//! transactions").

use std::collections::{HashMap, HashSet};
use std::io::SeekFrom;
use std::path::PathBuf;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt, BufWriter};

use crate::pgoutput::Lsn;
use crate::pgoutput_v2::Framed;

/// A held message's record, in memory and in the spill file alike: wal
/// start, subtransaction id, message length, then the version 1 message.
const RECORD_HEADER: usize = 8 + 4 + 4;
/// Records are packed into chunks that double from the first size to the
/// last, so the budget counts what is allocated, not an estimate per
/// message, and a small transaction costs little.
const FIRST_CHUNK: usize = 4 << 10;
const LAST_CHUNK: usize = 256 << 10;
/// Write buffer of a spill file.
const FILE_BUFFER: usize = 256 << 10;
/// Read-back block: records are sliced out of it, not copied one by one.
const READ_BLOCK: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum StreamedError {
    #[error("spilling streamed transaction {xid} to {dir}: {source}")]
    Spill {
        xid: u32,
        dir: String,
        source: std::io::Error,
    },
    #[error("reading back streamed transaction {xid}: {source}")]
    ReadBack { xid: u32, source: std::io::Error },
    #[error("reading back streamed transaction {0}: a record is cut short")]
    Corrupt(u32),
    #[error("a streamed change outside a stream block (transaction {0})")]
    OutsideBlock(u32),
}

/// Where a transaction's messages past the budget went.
struct Spill {
    file: BufWriter<tokio::fs::File>,
    records: u64,
    bytes: u64,
}

#[derive(Default)]
struct Transaction {
    /// Full chunks of records, in order, after those in `spill`.
    chunks: Vec<Bytes>,
    /// The chunk being filled, after `chunks`.
    current: BytesMut,
    /// Bytes allocated for `chunks` and `current`.
    allocated: usize,
    /// Records in `chunks` and `current`.
    in_memory: u64,
    spill: Option<Spill>,
    /// Subtransactions rolled back: their changes are skipped at replay.
    rolled_back: HashSet<u32>,
}

impl Transaction {
    /// Append one record; returns the bytes newly allocated for it.
    fn append(&mut self, wal_start: Lsn, subxid: u32, tag: u8, body: &[u8]) -> usize {
        let need = RECORD_HEADER + 1 + body.len();
        let mut grown = 0;
        if self.current.capacity() - self.current.len() < need {
            let last = self.current.capacity();
            let full = std::mem::take(&mut self.current);
            if full.is_empty() {
                self.allocated -= last;
            } else {
                self.chunks.push(full.freeze());
            }
            let size = (last * 2).clamp(FIRST_CHUNK, LAST_CHUNK).max(need);
            self.current = BytesMut::with_capacity(size);
            self.allocated += size;
            grown = size;
        }
        self.current.put_u64(wal_start);
        self.current.put_u32(subxid);
        self.current
            .put_u32(u32::try_from(1 + body.len()).unwrap_or(u32::MAX));
        self.current.put_u8(tag);
        self.current.put_slice(body);
        self.in_memory += 1;
        grown
    }

    /// The chunks in memory, in order, and how many records they hold;
    /// nothing is left allocated.
    fn take_memory(&mut self) -> (Vec<Bytes>, u64) {
        let mut chunks = std::mem::take(&mut self.chunks);
        let current = std::mem::take(&mut self.current);
        if !current.is_empty() {
            chunks.push(current.freeze());
        }
        self.allocated = 0;
        (chunks, std::mem::take(&mut self.in_memory))
    }
}

/// What the reader does after a payload.
pub enum Route {
    /// Not part of a streamed transaction: decode it now.
    Decode(Bytes),
    /// Held, or a block boundary: nothing to decode yet.
    Held,
    /// A streamed transaction committed: decode its replay.
    Commit(Box<Replay>),
}

/// Counters of a session's streamed transactions.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StreamedStats {
    pub transactions: u64,
    pub spilled_bytes: u64,
    /// The most allocated in memory at once.
    pub peak_memory: usize,
}

/// The streamed transactions of one replication session.
pub struct StreamedTransactions {
    budget: usize,
    spill_dir: PathBuf,
    open: HashMap<u32, Transaction>,
    /// The transaction whose block is being received.
    block: Option<u32>,
    memory: usize,
    stats: StreamedStats,
}

impl StreamedTransactions {
    /// `budget`: bytes held in memory across all open transactions.
    pub fn new(budget: usize, spill_dir: PathBuf) -> Self {
        StreamedTransactions {
            budget,
            spill_dir,
            open: HashMap::new(),
            block: None,
            memory: 0,
            stats: StreamedStats::default(),
        }
    }

    pub fn in_block(&self) -> bool {
        self.block.is_some()
    }

    /// Whether any streamed transaction is held.
    pub fn holding(&self) -> bool {
        !self.open.is_empty()
    }

    pub fn stats(&self) -> StreamedStats {
        self.stats
    }

    /// Route one XLogData payload starting at `wal_start`.
    pub async fn route(&mut self, wal_start: Lsn, data: Bytes) -> Result<Route, RouteError> {
        let framed = crate::pgoutput_v2::frame(data, self.in_block())?;
        Ok(match framed {
            Framed::Plain(data) => Route::Decode(data),
            Framed::StreamStart { xid, first } => {
                if first {
                    // A first block starts afresh whatever was held.
                    self.drop_transaction(xid);
                }
                self.open.entry(xid).or_default();
                self.block = Some(xid);
                Route::Held
            }
            Framed::StreamStop => {
                self.block = None;
                Route::Held
            }
            Framed::InStream { xid, tag, body } => {
                let Some(top) = self.block else {
                    return Err(StreamedError::OutsideBlock(xid).into());
                };
                self.hold(top, wal_start, xid, tag, &body).await?;
                Route::Held
            }
            Framed::StreamAbort { xid, subxid } => {
                if xid == subxid {
                    self.drop_transaction(xid);
                } else if let Some(tx) = self.open.get_mut(&xid) {
                    tx.rolled_back.insert(subxid);
                }
                Route::Held
            }
            Framed::StreamCommit {
                xid,
                flags,
                commit_lsn,
                end_lsn,
                commit_ts,
            } => {
                let tx = self.open.remove(&xid).unwrap_or_default();
                self.memory -= tx.allocated;
                self.stats.transactions += 1;
                Route::Commit(Box::new(
                    Replay::new(xid, tx, flags, commit_lsn, end_lsn, commit_ts).await?,
                ))
            }
        })
    }

    fn drop_transaction(&mut self, xid: u32) {
        if let Some(tx) = self.open.remove(&xid) {
            self.memory -= tx.allocated;
        }
    }

    async fn hold(
        &mut self,
        top: u32,
        wal_start: Lsn,
        subxid: u32,
        tag: u8,
        body: &[u8],
    ) -> Result<(), StreamedError> {
        let tx = self.open.entry(top).or_default();
        self.memory += tx.append(wal_start, subxid, tag, body);
        self.stats.peak_memory = self.stats.peak_memory.max(self.memory);
        while self.memory > self.budget {
            // The largest moves out: the fewest, longest writes.
            let Some((&largest, _)) = self
                .open
                .iter()
                .filter(|(_, tx)| tx.allocated > 0)
                .max_by_key(|(_, tx)| tx.allocated)
            else {
                break;
            };
            self.spill(largest).await?;
        }
        Ok(())
    }

    async fn spill(&mut self, xid: u32) -> Result<(), StreamedError> {
        let dir = self.spill_dir.clone();
        let Some(tx) = self.open.get_mut(&xid) else {
            return Ok(());
        };
        let err = |source| StreamedError::Spill {
            xid,
            dir: dir.display().to_string(),
            source,
        };
        let freed = tx.allocated;
        let (chunks, records) = tx.take_memory();
        self.memory -= freed;
        let spill = match tx.spill.as_mut() {
            Some(spill) => spill,
            None => {
                // Unlinked at creation: nothing is left behind, whatever
                // happens to the process.
                let in_dir = dir.clone();
                let file = tokio::task::spawn_blocking(move || tempfile::tempfile_in(in_dir))
                    .await
                    .map_err(|join| err(std::io::Error::other(join)))?
                    .map_err(err)?;
                tx.spill.insert(Spill {
                    file: BufWriter::with_capacity(FILE_BUFFER, tokio::fs::File::from_std(file)),
                    records: 0,
                    bytes: 0,
                })
            }
        };
        spill.records += records;
        for chunk in chunks {
            spill.file.write_all(&chunk).await.map_err(err)?;
            spill.bytes += chunk.len() as u64;
            self.stats.spilled_bytes += chunk.len() as u64;
        }
        Ok(())
    }
}

/// The records of a chunk: (subxid, wal start, message).
struct Records(Bytes);

impl Iterator for Records {
    type Item = (u32, Lsn, Bytes);

    fn next(&mut self) -> Option<Self::Item> {
        // Chunks are written by `append` only: a header and its message
        // are always whole.
        if self.0.len() < RECORD_HEADER {
            return None;
        }
        let wal_start = self.0.get_u64();
        let subxid = self.0.get_u32();
        let len = (self.0.get_u32() as usize).min(self.0.len());
        Some((subxid, wal_start, self.0.split_to(len)))
    }
}

/// A protocol error or a spill failure while routing.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error(transparent)]
    Decode(#[from] crate::pgoutput::DecodeError),
    #[error(transparent)]
    Streamed(#[from] StreamedError),
}

/// A committed streamed transaction, read back in order: the begin, every
/// held message not rolled back, the commit.
pub struct Replay {
    xid: u32,
    spilled_bytes: u64,
    begin: Option<Bytes>,
    spilled: Option<SpillReader>,
    chunks: std::vec::IntoIter<Bytes>,
    records: Records,
    rolled_back: HashSet<u32>,
    commit: Option<Bytes>,
    commit_lsn: Lsn,
    end_lsn: Lsn,
}

impl Replay {
    async fn new(
        xid: u32,
        mut tx: Transaction,
        flags: u8,
        commit_lsn: Lsn,
        end_lsn: Lsn,
        commit_ts: i64,
    ) -> Result<Self, StreamedError> {
        use crate::pgoutput::{encode, LogicalMessage};
        let spilled_bytes = tx.spill.as_ref().map_or(0, |s| s.bytes);
        let spilled = match tx.spill.take() {
            Some(spill) => {
                let err = |source| StreamedError::ReadBack { xid, source };
                let mut file = spill.file;
                file.flush().await.map_err(err)?;
                let mut file = file.into_inner();
                file.seek(SeekFrom::Start(0)).await.map_err(err)?;
                Some(SpillReader {
                    file,
                    block: Bytes::new(),
                    left: spill.records,
                })
            }
            None => None,
        };
        Ok(Replay {
            xid,
            spilled_bytes,
            begin: Some(encode(&LogicalMessage::Begin {
                final_lsn: commit_lsn,
                commit_ts,
                xid,
            })),
            spilled,
            chunks: tx.take_memory().0.into_iter(),
            records: Records(Bytes::new()),
            rolled_back: std::mem::take(&mut tx.rolled_back),
            commit: Some(encode(&LogicalMessage::Commit {
                flags,
                commit_lsn,
                end_lsn,
                commit_ts,
            })),
            commit_lsn,
            end_lsn,
        })
    }

    pub fn xid(&self) -> u32 {
        self.xid
    }

    /// Bytes of this transaction that went through a spill file.
    pub fn spilled_bytes(&self) -> u64 {
        self.spilled_bytes
    }

    /// The next message, with the position to decode it at; `None` after
    /// the commit.
    pub async fn next(&mut self) -> Result<Option<(Lsn, Bytes)>, StreamedError> {
        if let Some(begin) = self.begin.take() {
            return Ok(Some((self.commit_lsn, begin)));
        }
        loop {
            let (subxid, wal_start, message) = match self.read_spilled().await? {
                Some(record) => record,
                None => match self.next_in_memory() {
                    Some(record) => record,
                    None => return Ok(self.commit.take().map(|c| (self.end_lsn, c))),
                },
            };
            if Framed::is_change(&message) && self.rolled_back.contains(&subxid) {
                continue;
            }
            return Ok(Some((wal_start, message)));
        }
    }

    fn next_in_memory(&mut self) -> Option<(u32, Lsn, Bytes)> {
        loop {
            if let Some(record) = self.records.next() {
                return Some(record);
            }
            self.records = Records(self.chunks.next()?);
        }
    }

    async fn read_spilled(&mut self) -> Result<Option<(u32, Lsn, Bytes)>, StreamedError> {
        let xid = self.xid;
        let Some(reader) = self.spilled.as_mut() else {
            return Ok(None);
        };
        match reader.next(xid).await? {
            Some(record) => Ok(Some(record)),
            None => {
                self.spilled = None;
                Ok(None)
            }
        }
    }
}

/// A spill file read back in blocks.
struct SpillReader {
    file: tokio::fs::File,
    /// What is read and not yet handed out: whole records, then maybe the
    /// start of one.
    block: Bytes,
    left: u64,
}

impl SpillReader {
    async fn next(&mut self, xid: u32) -> Result<Option<(u32, Lsn, Bytes)>, StreamedError> {
        if self.left == 0 {
            return Ok(None);
        }
        // A header first, then its whole record.
        loop {
            let need = match self.block.get(12..RECORD_HEADER) {
                Some(len) => {
                    RECORD_HEADER + u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize
                }
                None => RECORD_HEADER,
            };
            if self.block.len() >= need {
                break;
            }
            self.refill(need, xid).await?;
        }
        let mut records = Records(std::mem::take(&mut self.block));
        let record = records.next().ok_or(StreamedError::Corrupt(xid))?;
        if record.2.is_empty() {
            return Err(StreamedError::Corrupt(xid));
        }
        self.block = records.0;
        self.left -= 1;
        Ok(Some(record))
    }

    /// Read until at least `need` bytes are at hand.
    async fn refill(&mut self, need: usize, xid: u32) -> Result<(), StreamedError> {
        let mut block = BytesMut::with_capacity(READ_BLOCK.max(need));
        block.extend_from_slice(&self.block);
        while block.len() < need || block.len() < block.capacity() {
            let read = self
                .file
                .read_buf(&mut block)
                .await
                .map_err(|source| StreamedError::ReadBack { xid, source })?;
            if read == 0 {
                break;
            }
        }
        if block.len() < need {
            return Err(StreamedError::Corrupt(xid));
        }
        self.block = block.freeze();
        Ok(())
    }
}

#[cfg(test)]
#[path = "streamed_tests.rs"]
mod tests;
