//! The file's appends, on the sink's thread.
//!
//! Where the file system takes `O_DIRECT` (ext4, xfs), whole blocks go
//! straight from an aligned buffer to the disk, and the last partial block
//! stays in memory until the next append completes it or a flush writes it
//! through the page cache. A snapshot writes gigabytes of lines, and
//! copying them into the page cache was the sink's cost (the kernel's
//! `copy_folio_from_iter_atomic` in `perf`; README, "Benchmarks"). Where it
//! does not (tmpfs, a pipe, `/dev/full`), lines go through the page cache,
//! each range handed to the disk at once.
//!
//! Either way a flush ends in `fdatasync`, which makes every accepted line
//! and the file's length durable; an append that fails leaves the file as
//! it was before it.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// The unit of a direct write: offsets, lengths and the buffer's address
/// are multiples of it (4096 covers 512-byte and 4K devices).
const BLOCK: usize = 4096;

/// Bytes in a buffer whose first byte sits at a [`BLOCK`]-aligned address.
/// Its storage never moves while in use; it grows by moving to a new one.
struct AlignedBuf {
    raw: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    fn with_capacity(capacity: usize) -> AlignedBuf {
        let raw = vec![0u8; capacity + BLOCK];
        let start = raw.as_ptr().align_offset(BLOCK).min(BLOCK);
        AlignedBuf { raw, start, len: 0 }
    }

    fn capacity(&self) -> usize {
        self.raw.len() - self.start
    }

    fn bytes(&self) -> &[u8] {
        &self.raw[self.start..self.start + self.len]
    }

    fn extend(&mut self, data: &[u8]) {
        let needed = self.len + data.len();
        if needed > self.capacity() {
            let mut grown = AlignedBuf::with_capacity(needed.max(2 * self.capacity()));
            grown.extend(self.bytes());
            *self = grown;
        }
        let at = self.start + self.len;
        self.raw[at..at + data.len()].copy_from_slice(data);
        self.len = needed;
    }

    /// Drop the first `n` bytes (whole blocks just written).
    fn consume(&mut self, n: usize) {
        self.raw
            .copy_within(self.start + n..self.start + self.len, self.start);
        self.len -= n;
    }

    fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }
}

/// Direct writes and the partial block they leave.
struct Direct {
    file: File,
    /// Everything before this offset (a multiple of [`BLOCK`]) went out
    /// by direct writes; `tail` holds the bytes from here to the end.
    aligned: u64,
    tail: AlignedBuf,
}

/// The sink's file.
pub(crate) struct OpenFile {
    /// Through the page cache: the tail at a flush, lengths, fsync.
    file: File,
    direct: Option<Direct>,
    /// Length of the accepted lines.
    len: u64,
    /// Bytes of them the file holds now (the rest is the direct tail).
    in_file: u64,
}

impl OpenFile {
    /// `file` holds `len` bytes of whole lines and is positioned at their
    /// end. Direct writes are used when `path` can be opened for them.
    pub(crate) fn open(file: File, path: &Path, len: u64) -> std::io::Result<OpenFile> {
        let direct = match OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)
        {
            Ok(direct) => {
                let aligned = len / BLOCK as u64 * BLOCK as u64;
                let mut tail = AlignedBuf::with_capacity(4 * BLOCK);
                let mut partial = vec![0u8; (len - aligned) as usize];
                file.read_exact_at(&mut partial, aligned)?;
                tail.extend(&partial);
                Some(Direct {
                    file: direct,
                    aligned,
                    tail,
                })
            }
            Err(_) => None,
        };
        Ok(OpenFile {
            file,
            direct,
            len,
            in_file: len,
        })
    }

    /// Whether appends go around the page cache.
    #[cfg(test)]
    pub(crate) fn is_direct(&self) -> bool {
        self.direct.is_some()
    }

    /// Append `lines` (whole lines); on error the file holds what it held.
    pub(crate) fn append(&mut self, lines: &[u8]) -> std::io::Result<()> {
        let Some(direct) = self.direct.as_mut() else {
            return self.append_buffered(lines);
        };
        let kept = direct.tail.len;
        direct.tail.extend(lines);
        let whole = direct.tail.len / BLOCK * BLOCK;
        match write_blocks(&direct.file, &direct.tail.bytes()[..whole], direct.aligned) {
            Ok(()) => {
                direct.aligned += whole as u64;
                direct.tail.consume(whole);
                self.len += lines.len() as u64;
                self.in_file = self.in_file.max(direct.aligned);
                Ok(())
            }
            Err(err) => {
                direct.tail.truncate(kept);
                // Blocks written before the failure go; what was there stays.
                let _ = self.file.set_len(self.in_file);
                if err.raw_os_error() == Some(libc::EINVAL) {
                    // The file system took the flag but not the write:
                    // through the page cache from now on.
                    self.leave_direct()?;
                    return self.append_buffered(lines);
                }
                Err(err)
            }
        }
    }

    /// Make every accepted line, and the file's length, durable.
    pub(crate) fn sync(&mut self) -> std::io::Result<()> {
        if let Some(direct) = &self.direct {
            if self.in_file < self.len {
                self.file
                    .write_all_at(direct.tail.bytes(), direct.aligned)?;
                self.in_file = self.len;
            }
        }
        self.file.sync_data()
    }

    fn append_buffered(&mut self, lines: &[u8]) -> std::io::Result<()> {
        match self.file.write_all(lines) {
            Ok(()) => {
                start_writeback(&self.file, self.len, lines.len());
                self.len += lines.len() as u64;
                self.in_file = self.len;
                Ok(())
            }
            Err(err) => {
                // Best effort: if even this fails, the next open cuts the torn line.
                let _ = self.file.set_len(self.len);
                let _ = self.file.seek(SeekFrom::Start(self.len));
                Err(err)
            }
        }
    }

    /// The tail into the file, and the cursor at the end, for buffered
    /// appends.
    fn leave_direct(&mut self) -> std::io::Result<()> {
        if let Some(direct) = self.direct.take() {
            self.file
                .write_all_at(direct.tail.bytes(), direct.aligned)?;
        }
        self.in_file = self.len;
        self.file.seek(SeekFrom::Start(self.len))?;
        Ok(())
    }
}

/// Whole blocks at a block-aligned offset, each short write a multiple of
/// the block too (anything else is refused, never sent unaligned).
fn write_blocks(file: &File, blocks: &[u8], offset: u64) -> std::io::Result<()> {
    let mut done = 0;
    while done < blocks.len() {
        let n = file.write_at(&blocks[done..], offset + done as u64)?;
        if n == 0 || n % BLOCK != 0 {
            return Err(std::io::Error::other(format!(
                "a direct write took {n} of {} bytes",
                blocks.len() - done
            )));
        }
        done += n;
    }
    Ok(())
}

/// Starts the disk write of a range just appended, without waiting for it:
/// the page cache does not pile up dirty pages for the next fsync to wait
/// on. Only a hint; the fsync of a flush is what makes the range durable.
#[cfg(target_os = "linux")]
fn start_writeback(file: &File, offset: u64, len: usize) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    // SAFETY: a plain syscall on a file descriptor this `File` owns and
    // keeps open for the call; no memory is passed.
    #[allow(unsafe_code)]
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE);
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &File, _offset: u64, _len: usize) {}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(path: &Path) -> OpenFile {
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(path)
            .unwrap();
        let len = file.metadata().unwrap().len();
        file.seek(SeekFrom::Start(len)).unwrap();
        OpenFile::open(file, path, len).unwrap()
    }

    /// Appends of every size around the block, synced at odd points and
    /// reopened midway: the file is always exactly what was accepted up to
    /// the last sync, then everything once synced at the end.
    #[test]
    fn appends_of_any_size_land_exactly_in_order_across_syncs_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lines.jsonl");
        let mut expected = Vec::new();
        let mut file = open(&path);
        // /tmp here is ext4: the direct path is the one under test.
        eprintln!("direct writes: {}", file.is_direct());
        let sizes = [1, 4095, 4096, 4097, 10, 8192, 3, 70_000, 1, 4094, 12_288, 5];
        for (i, size) in sizes.iter().enumerate() {
            let chunk: Vec<u8> = (0..*size).map(|b| b"abcdefghij"[(b + i) % 10]).collect();
            file.append(&chunk).unwrap();
            expected.extend_from_slice(&chunk);
            if i % 3 == 2 {
                file.sync().unwrap();
                assert_eq!(std::fs::read(&path).unwrap(), expected, "after sync {i}");
            }
            if i == 6 {
                file.sync().unwrap();
                drop(file);
                file = open(&path);
            }
        }
        file.sync().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), expected);
        assert_eq!(file.len, expected.len() as u64);
    }

    #[test]
    fn an_aligned_buffer_stays_aligned_as_it_grows_and_consumes() {
        let mut buf = AlignedBuf::with_capacity(BLOCK);
        let data: Vec<u8> = (0..3 * BLOCK + 7).map(|i| i as u8).collect();
        buf.extend(&data);
        assert_eq!(buf.bytes(), &data[..]);
        assert_eq!(buf.bytes().as_ptr().align_offset(BLOCK), 0);
        buf.consume(2 * BLOCK);
        assert_eq!(buf.bytes(), &data[2 * BLOCK..]);
        buf.truncate(3);
        assert_eq!(buf.bytes(), &data[2 * BLOCK..2 * BLOCK + 3]);
    }
}
