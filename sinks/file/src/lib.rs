//! JSON-lines sinks: one Debezium envelope per line, to a file or stdout.
//!
//! The file sink's `flush` is an fsync, so a position is acknowledged only
//! once its events are on disk. A write that fails (a full disk) is rolled
//! back to the last whole line, so a retry never leaves a torn line behind;
//! a torn line left by a crash is cut off when the file is opened again (its
//! events were never acknowledged, so the source sends them again).
//!
//! A batch is written behind: `write` encodes, waits for the batch before
//! it to be in the file, and hands its own to the sink's thread, so the
//! next batch is encoded while this one is copied out. A batch whose write
//! failed is kept and written again before anything after it, and `flush`
//! waits for it, so it can never be acknowledged unwritten. Whole blocks
//! go to the disk around the page cache where the file system allows it
//! (`appender.rs`).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

mod appender;
mod worker;

use appender::OpenFile;
use async_trait::async_trait;
use cdc_engine::envelope::EnvelopeWriter;
use cdc_engine::format::Format;
use cdc_engine::{Event, Sink, SinkError};
use worker::Worker;

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot open sink file {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// Events as JSON lines, in a buffer reused from batch to batch.
#[derive(Default)]
struct JsonLines {
    buf: Vec<u8>,
    writer: EnvelopeWriter,
}

impl JsonLines {
    fn with_format(format: Format) -> Self {
        JsonLines {
            buf: Vec::new(),
            writer: EnvelopeWriter::with_format(format),
        }
    }

    fn encode(&mut self, events: &[Event]) -> &[u8] {
        self.buf.clear();
        let ts_ms = now_ms();
        for event in events {
            self.writer.write_value(event, ts_ms, &mut self.buf);
            self.buf.push(b'\n');
        }
        &self.buf
    }
}

/// Appends JSON lines to a file; `flush` fsyncs. The file is written on a
/// thread of its own (see `worker.rs`).
pub struct FileSink {
    path: PathBuf,
    worker: Worker<OpenFile>,
    lines: JsonLines,
    /// The batch being written, and the run it belongs to.
    in_flight: Option<(u64, tokio::sync::oneshot::Receiver<Appended>)>,
    /// An accepted batch whose write failed: written again first.
    unwritten: Option<Vec<u8>>,
    /// A buffer back from the thread, for the next batch.
    spare: Vec<u8>,
    /// Which run's batches are accepted (see `forget_unconfirmed`).
    run: u64,
}

/// A batch's buffer back from the thread, and how its write went.
type Appended = (Vec<u8>, std::io::Result<()>);

impl FileSink {
    /// Opens (creating) the file and cuts a torn last line. Called once at
    /// start, before anything streams.
    pub fn open(path: impl AsRef<Path>) -> Result<FileSink, OpenError> {
        let path = path.as_ref().to_path_buf();
        let open_err = |source| OpenError::Open {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(&path)
            .map_err(open_err)?;
        let len = whole_lines_len(&mut file).map_err(open_err)?;
        let current = file.metadata().map_err(open_err)?.len();
        if current != len {
            tracing::warn!(
                path = %path.display(),
                "cutting {} bytes of a torn last line left by an earlier crash",
                current - len
            );
            file.set_len(len).map_err(open_err)?;
        }
        file.seek(SeekFrom::Start(len)).map_err(open_err)?;
        let appender = OpenFile::open(file, &path, len).map_err(open_err)?;
        let worker = Worker::spawn("cdc-file-sink", appender).map_err(open_err)?;
        Ok(FileSink {
            path,
            worker,
            lines: JsonLines::default(),
            in_flight: None,
            unwritten: None,
            spare: Vec::new(),
            run: 0,
        })
    }

    /// Waits for the batch in flight, and writes a failed one again: after
    /// `Ok`, every accepted batch is in the file.
    async fn settle(&mut self) -> Result<(), SinkError> {
        if let Some((run, answer)) = self.in_flight.take() {
            let (buf, result) = answer.await.map_err(|_| gone(&self.path))?;
            match result {
                Ok(()) => self.spare = buf,
                // A batch of a run that ended is sent again by the next.
                Err(_) if run != self.run => {}
                Err(err) => {
                    self.unwritten = Some(buf);
                    return Err(self.write_error(err));
                }
            }
        }
        if let Some(buf) = self.unwritten.take() {
            let (buf, result) = self
                .worker
                .run(append_job(buf))
                .await
                .ok_or_else(|| gone(&self.path))?;
            if let Err(err) = result {
                self.unwritten = Some(buf);
                return Err(self.write_error(err));
            }
        }
        Ok(())
    }

    fn write_error(&self, err: std::io::Error) -> SinkError {
        SinkError::Retriable(format!("writing {}: {err}", self.path.display()))
    }
}

/// The sink thread's job for one batch: append it, and hand the buffer
/// back with how it went.
fn append_job(buf: Vec<u8>) -> impl FnOnce(&mut OpenFile) -> Appended + Send + 'static {
    move |file| {
        let result = file.append(&buf);
        (buf, result)
    }
}

/// The length of the file up to and including its last newline.
fn whole_lines_len(file: &mut File) -> std::io::Result<u64> {
    let len = file.metadata()?.len();
    let mut end = len;
    let mut block = vec![0u8; 64 * 1024];
    while end > 0 {
        let start = end.saturating_sub(block.len() as u64);
        let size = (end - start) as usize;
        file.seek(SeekFrom::Start(start))?;
        let part = block.get_mut(..size).unwrap_or_default();
        file.read_exact(part)?;
        if let Some(i) = part.iter().rposition(|&b| b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

impl FileSink {
    /// Render values in `format`'s modes.
    pub fn with_format(mut self, format: Format) -> Self {
        self.lines = JsonLines::with_format(format);
        self
    }
}

#[async_trait]
impl Sink for FileSink {
    fn describe(&self) -> String {
        format!("file:{}", self.path.display())
    }

    async fn write(&mut self, events: &[Event]) -> Result<(), SinkError> {
        // Encoded while the batch before is still being written.
        self.lines.buf = std::mem::take(&mut self.spare);
        self.lines.encode(events);
        let buf = std::mem::take(&mut self.lines.buf);
        // Nothing of this call is accepted if an earlier batch cannot be
        // written: it stays first in line.
        self.settle().await?;
        let answer = self
            .worker
            .start(append_job(buf))
            .await
            .ok_or_else(|| gone(&self.path))?;
        self.in_flight = Some((self.run, answer));
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        self.settle().await?;
        self.worker
            .run(|file| file.sync())
            .await
            .ok_or_else(|| gone(&self.path))?
            .map_err(|err| SinkError::Retriable(format!("fsync of {}: {err}", self.path.display())))
    }

    /// A new run sends again what was never confirmed: a batch kept after
    /// a failed write is its to send.
    fn forget_unconfirmed(&mut self) {
        self.unwritten = None;
        self.run += 1;
    }
}

fn gone(path: &Path) -> SinkError {
    SinkError::Fatal(format!("the writer thread of {} stopped", path.display()))
}

/// Encodes every event like the other sinks, then drops it: for measuring
/// the engine without a destination's cost.
#[derive(Default)]
pub struct NullSink {
    lines: JsonLines,
}

impl NullSink {
    /// Render values in `format`'s modes.
    pub fn with_format(format: Format) -> Self {
        NullSink {
            lines: JsonLines::with_format(format),
        }
    }
}

#[async_trait]
impl Sink for NullSink {
    fn describe(&self) -> String {
        "null".to_string()
    }

    async fn write(&mut self, events: &[Event]) -> Result<(), SinkError> {
        self.lines.encode(events);
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// Writes JSON lines to standard output; `flush` flushes the pipe. Writes
/// run on a thread of their own (see `worker.rs`), so a reader that stops
/// reading blocks only that thread.
pub struct StdoutSink {
    lines: JsonLines,
    /// Started by the first write.
    worker: Option<Worker<()>>,
}

impl StdoutSink {
    pub fn new() -> Self {
        StdoutSink {
            lines: JsonLines::default(),
            worker: None,
        }
    }

    fn worker(&mut self) -> Result<&Worker<()>, SinkError> {
        if self.worker.is_none() {
            let worker = Worker::spawn("cdc-stdout-sink", ())
                .map_err(|err| SinkError::Fatal(format!("starting the stdout writer: {err}")))?;
            self.worker = Some(worker);
        }
        self.worker
            .as_ref()
            .ok_or_else(|| SinkError::Fatal("the stdout writer did not start".into()))
    }
}

impl StdoutSink {
    /// Render values in `format`'s modes.
    pub fn with_format(mut self, format: Format) -> Self {
        self.lines = JsonLines::with_format(format);
        self
    }
}

impl Default for StdoutSink {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Sink for StdoutSink {
    fn describe(&self) -> String {
        "stdout".to_string()
    }

    async fn write(&mut self, events: &[Event]) -> Result<(), SinkError> {
        self.lines.encode(events);
        let buf = std::mem::take(&mut self.lines.buf);
        let answer = self
            .worker()?
            .run(move |_| {
                let result = std::io::stdout().lock().write_all(&buf);
                (buf, result)
            })
            .await;
        let Some((buf, result)) = answer else {
            return Err(SinkError::Fatal("the stdout writer stopped".into()));
        };
        self.lines.buf = buf;
        // A closed stdout cannot come back: fatal, so nothing more is acked.
        result.map_err(|err| SinkError::Fatal(format!("writing to stdout: {err}")))
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        self.worker()?
            .run(|_| std::io::stdout().lock().flush())
            .await
            .ok_or_else(|| SinkError::Fatal("the stdout writer stopped".into()))?
            .map_err(|err| SinkError::Fatal(format!("flushing stdout: {err}")))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use cdc_engine::{Op, Position, Row, SourceInfo, SourceMeta, TableRef, Value};

    use super::*;

    fn event(id: i64) -> Event {
        Event {
            update: None,
            schema: None,
            op: Op::Create,
            table: Some(Arc::new(TableRef::new("public", "t"))),
            key: None,
            before: None,
            after: Some(Row::new(
                Arc::from(vec!["id".to_string()]),
                vec![Value::Int(id)],
            )),
            source: SourceInfo::new(
                Arc::new(SourceMeta {
                    connector: "postgresql",
                    name: "t".into(),
                    db: "db".into(),
                    block: &cdc_engine::PLAIN_BLOCK,
                }),
                Position::from_u64(id as u64),
            ),
            message: None,
            transaction: None,
        }
    }

    #[tokio::test]
    async fn writes_lines_and_cuts_a_torn_tail_on_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        {
            let mut sink = FileSink::open(&path).unwrap();
            sink.write(&[event(1), event(2)]).await.unwrap();
            sink.flush().await.unwrap();
        }
        // A crash mid-write leaves half a line.
        {
            let mut f = OpenOptions::new().append(true).open(&path).unwrap();
            f.write_all(b"{\"before\":nu").unwrap();
        }
        let mut sink = FileSink::open(&path).unwrap();
        sink.write(&[event(3)]).await.unwrap();
        sink.flush().await.unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let ids: Vec<i64> = text
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["after"]["id"].as_i64().unwrap()
            })
            .collect();
        assert_eq!(ids, vec![1, 2, 3]);
    }

    /// A write that fails after `write` returned (written behind) fails
    /// the next write and every flush, so nothing after it is accepted and
    /// nothing is acknowledged unwritten; `/dev/full` fails every write
    /// with ENOSPC, as a full disk does.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_batch_written_behind_that_fails_fails_what_follows_until_it_is_written() {
        let mut sink = FileSink::open("/dev/full").unwrap();
        // Accepted: handed to the thread, not yet written.
        sink.write(&[event(1)]).await.unwrap();
        let err = sink.write(&[event(2)]).await.unwrap_err();
        assert!(
            matches!(&err, SinkError::Retriable(m) if m.contains("writing /dev/full")),
            "{err:?}"
        );
        // Kept, and tried again first, by every later call.
        assert!(sink.unwritten.is_some());
        assert!(sink.flush().await.is_err());
        assert!(sink.write(&[event(3)]).await.is_err());
        // A new run sends it again itself.
        sink.forget_unconfirmed();
        assert!(sink.unwritten.is_none());
    }
}
