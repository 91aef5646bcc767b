//! Splits a byte stream into lines in big chunks (memchr over 256 KiB reads),
//! handing out each line as a slice of the shared chunk (no copy). A line
//! longer than `max_line_size` is reported once and skipped to its newline,
//! so memory stays bounded whatever the input holds. Chunks are read into
//! pooled buffers (see `buffer_pool.rs`).

use std::io::{self, Read};

use bytes::Bytes;

use super::buffer_pool;

/// How much is read per call.
const CHUNK_SIZE: usize = 256 * 1024;

/// One item of the stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A complete line, without its `\n`, and the offset of its first byte.
    Complete { bytes: Bytes, offset: u64 },
    /// A line over the limit, skipped; `offset` is where it started.
    TooLong { offset: u64 },
}

/// Incremental line splitter over any reader.
pub struct LineSplitter {
    /// Read but not handed out yet: the unfinished line and what follows.
    data: Bytes,
    max_line_size: usize,
    /// Stream offset of `data[0]`.
    offset: u64,
    /// Bytes of `data` already searched for a newline.
    scanned: usize,
    /// Inside an over-long line: drop bytes until the next newline.
    discarding: bool,
}

impl LineSplitter {
    pub fn new(max_line_size: usize, start_offset: u64) -> Self {
        Self {
            data: Bytes::new(),
            max_line_size: max_line_size.max(1),
            offset: start_offset,
            scanned: 0,
            discarding: false,
        }
    }

    /// Reads one chunk; returns the number of bytes read (0 at end of input).
    pub fn read_from(&mut self, reader: &mut impl Read) -> io::Result<usize> {
        let pending = self.data.len();
        // A long unfinished line grows its buffer by doubling, so it is
        // copied O(1) times per byte however many reads it spans.
        let size = if pending <= CHUNK_SIZE / 2 {
            CHUNK_SIZE
        } else {
            (pending * 2).max(pending + CHUNK_SIZE)
        };
        let mut buf = buffer_pool::take(size);
        buf[..pending].copy_from_slice(&self.data);
        let result = loop {
            match reader.read(&mut buf[pending..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => break other,
            }
        };
        match result {
            Ok(n) if n > 0 => self.data = buffer_pool::into_bytes(buf, pending + n),
            _ => buffer_pool::recycle(buf),
        }
        result
    }

    /// Appends bytes obtained elsewhere.
    pub fn push(&mut self, data: &[u8]) {
        let mut joined = Vec::with_capacity(self.data.len() + data.len());
        joined.extend_from_slice(&self.data);
        joined.extend_from_slice(data);
        self.data = Bytes::from(joined);
    }

    /// The next complete line, or `None` until more input arrives.
    pub fn next_line(&mut self) -> Option<Line> {
        loop {
            let found = memchr::memchr(b'\n', &self.data[self.scanned..]).map(|n| self.scanned + n);
            match found {
                Some(end) if self.discarding => {
                    self.consume(end + 1);
                    self.discarding = false;
                }
                Some(end) => {
                    let offset = self.offset;
                    let mut line = self.data.split_to(end + 1);
                    self.offset += line.len() as u64;
                    self.scanned = 0;
                    if end > self.max_line_size {
                        return Some(Line::TooLong { offset });
                    }
                    line.truncate(end);
                    return Some(Line::Complete {
                        bytes: line,
                        offset,
                    });
                }
                None if self.discarding => {
                    let all = self.data.len();
                    self.consume(all);
                    return None;
                }
                None if self.data.len() > self.max_line_size => {
                    let offset = self.offset;
                    let all = self.data.len();
                    self.consume(all);
                    self.discarding = true;
                    return Some(Line::TooLong { offset });
                }
                None => {
                    self.scanned = self.data.len();
                    return None;
                }
            }
        }
    }

    /// At end of input: the unterminated last line, if any.
    pub fn take_partial(&mut self) -> Option<Line> {
        if self.data.is_empty() || self.discarding {
            return None;
        }
        let offset = self.offset;
        let line = std::mem::take(&mut self.data);
        self.offset += line.len() as u64;
        self.scanned = 0;
        Some(Line::Complete {
            bytes: line,
            offset,
        })
    }

    /// Offset just past the last line handed out or skipped.
    pub fn consumed_offset(&self) -> u64 {
        self.offset
    }

    /// Bytes held for an unterminated line.
    pub fn pending_len(&self) -> usize {
        self.data.len()
    }

    fn consume(&mut self, n: usize) {
        let _ = self.data.split_to(n);
        self.offset += n as u64;
        self.scanned = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(splitter: &mut LineSplitter) -> Vec<String> {
        std::iter::from_fn(|| splitter.next_line())
            .map(|line| match line {
                Line::Complete { bytes, offset } => {
                    format!("{offset}:{}", String::from_utf8_lossy(&bytes))
                }
                Line::TooLong { offset } => format!("{offset}:TOO LONG"),
            })
            .collect()
    }

    #[test]
    fn splits_across_pushes_with_offsets() {
        let mut s = LineSplitter::new(100, 10);
        s.push(b"ab\ncd");
        assert_eq!(lines(&mut s), ["10:ab"]);
        s.push(b"e\n\nf");
        assert_eq!(lines(&mut s), ["13:cde", "17:"]);
        assert_eq!(s.consumed_offset(), 18);
        assert_eq!(s.pending_len(), 1);
        assert_eq!(
            s.take_partial(),
            Some(Line::Complete {
                bytes: Bytes::from_static(b"f"),
                offset: 18
            })
        );
    }

    #[test]
    fn skips_over_long_lines_and_keeps_going() {
        let mut s = LineSplitter::new(4, 0);
        s.push(b"123456");
        assert_eq!(lines(&mut s), ["0:TOO LONG"]);
        s.push(b"789\nok\n");
        assert_eq!(lines(&mut s), ["10:ok"]);
        s.push(b"toolong\nfine\n");
        assert_eq!(lines(&mut s), ["13:TOO LONG", "21:fine"]);
        assert_eq!(s.consumed_offset(), 26);
    }

    #[test]
    fn reads_from_a_reader_in_chunks() {
        let data: Vec<u8> = (0..100_000)
            .flat_map(|n| format!("line {n}\n").into_bytes())
            .collect();
        let mut reader = &data[..];
        let mut s = LineSplitter::new(1 << 20, 0);
        let mut count = 0;
        while s.read_from(&mut reader).unwrap() > 0 {
            while let Some(Line::Complete { bytes, .. }) = s.next_line() {
                assert!(bytes.starts_with(b"line "));
                count += 1;
            }
        }
        assert_eq!(count, 100_000);
        assert_eq!(s.consumed_offset(), data.len() as u64);
    }

    #[test]
    fn lines_spanning_many_reads_are_whole_or_skipped() {
        let long = "y".repeat(5 * CHUNK_SIZE / 2);
        let data = format!("a\n{long}\nb\n");
        let read_all = |max_line_size| {
            let mut reader = data.as_bytes();
            let mut s = LineSplitter::new(max_line_size, 0);
            let mut seen = Vec::new();
            while s.read_from(&mut reader).unwrap() > 0 {
                seen.extend(std::iter::from_fn(|| s.next_line()).map(|line| match line {
                    Line::Complete { bytes, offset } => (offset, bytes.len()),
                    Line::TooLong { offset } => (offset, usize::MAX),
                }));
            }
            assert_eq!(s.consumed_offset(), data.len() as u64);
            seen
        };
        let after = 3 + long.len() as u64;
        assert_eq!(
            read_all(4 * CHUNK_SIZE),
            [(0, 1), (2, long.len()), (after, 1)]
        );
        assert_eq!(read_all(CHUNK_SIZE), [(0, 1), (2, usize::MAX), (after, 1)]);
    }
}
