//! Splits a byte stream into lines in big chunks (memchr over 256 KiB reads),
//! handing out each line as a slice of the shared chunk (no copy). A line
//! longer than `max_line_size` is reported once and skipped to its newline,
//! so memory stays bounded whatever the input holds.

use std::io::{self, Read};

use bytes::{Bytes, BytesMut};

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
    buf: BytesMut,
    max_line_size: usize,
    /// Stream offset of `buf[0]`.
    offset: u64,
    /// Bytes of `buf` already searched for a newline.
    scanned: usize,
    /// Inside an over-long line: drop bytes until the next newline.
    discarding: bool,
}

impl LineSplitter {
    pub fn new(max_line_size: usize, start_offset: u64) -> Self {
        Self {
            buf: BytesMut::new(),
            max_line_size: max_line_size.max(1),
            offset: start_offset,
            scanned: 0,
            discarding: false,
        }
    }

    /// Reads one chunk; returns the number of bytes read (0 at end of input).
    pub fn read_from(&mut self, reader: &mut impl Read) -> io::Result<usize> {
        let start = self.buf.len();
        self.buf.resize(start + CHUNK_SIZE, 0);
        let result = loop {
            match reader.read(&mut self.buf[start..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => break other,
            }
        };
        let n = *result.as_ref().unwrap_or(&0);
        self.buf.truncate(start + n);
        result
    }

    /// Appends bytes obtained elsewhere.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete line, or `None` until more input arrives.
    pub fn next_line(&mut self) -> Option<Line> {
        loop {
            let found = memchr::memchr(b'\n', &self.buf[self.scanned..]).map(|n| self.scanned + n);
            match found {
                Some(end) if self.discarding => {
                    self.consume(end + 1);
                    self.discarding = false;
                }
                Some(end) => {
                    let offset = self.offset;
                    let line = self.buf.split_to(end + 1).freeze();
                    self.offset += line.len() as u64;
                    self.scanned = 0;
                    if end > self.max_line_size {
                        return Some(Line::TooLong { offset });
                    }
                    return Some(Line::Complete {
                        bytes: line.slice(..end),
                        offset,
                    });
                }
                None if self.discarding => {
                    let all = self.buf.len();
                    self.consume(all);
                    return None;
                }
                None if self.buf.len() > self.max_line_size => {
                    let offset = self.offset;
                    let all = self.buf.len();
                    self.consume(all);
                    self.discarding = true;
                    return Some(Line::TooLong { offset });
                }
                None => {
                    self.scanned = self.buf.len();
                    return None;
                }
            }
        }
    }

    /// At end of input: the unterminated last line, if any.
    pub fn take_partial(&mut self) -> Option<Line> {
        if self.buf.is_empty() || self.discarding {
            return None;
        }
        let offset = self.offset;
        let line = self.buf.split().freeze();
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
        self.buf.len()
    }

    fn consume(&mut self, n: usize) {
        let _ = self.buf.split_to(n);
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
}
