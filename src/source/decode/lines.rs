//! Splits a byte stream, pushed in chunks, into lines, handing out each line
//! as a slice of the buffer (no copy). A line longer than `max_line_size` is
//! reported once and skipped to its newline, so memory stays bounded
//! whatever the input holds.

use bytes::{Bytes, BytesMut};

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
    /// Pushed but not handed out yet: the unfinished line and what follows.
    data: BytesMut,
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
            data: BytesMut::new(),
            max_line_size: max_line_size.max(1),
            offset: start_offset,
            scanned: 0,
            discarding: false,
        }
    }

    /// Appends the next chunk of the stream.
    pub fn push(&mut self, data: &[u8]) {
        self.data.extend_from_slice(data);
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
                    let line = self.data.split_to(end + 1).freeze();
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
        let line = self.data.split().freeze();
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

    /// The size stdin reads in.
    const CHUNK: usize = 256 * 1024;

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
    fn splits_a_stream_pushed_in_chunks() {
        let data: Vec<u8> = (0..100_000)
            .flat_map(|n| format!("line {n}\n").into_bytes())
            .collect();
        let mut s = LineSplitter::new(1 << 20, 0);
        let mut count = 0;
        for chunk in data.chunks(CHUNK) {
            s.push(chunk);
            while let Some(Line::Complete { bytes, .. }) = s.next_line() {
                assert!(bytes.starts_with(b"line "));
                count += 1;
            }
        }
        assert_eq!(count, 100_000);
        assert_eq!(s.consumed_offset(), data.len() as u64);
    }

    #[test]
    fn lines_spanning_many_chunks_are_whole_or_skipped() {
        let long = "y".repeat(5 * CHUNK / 2);
        let data = format!("a\n{long}\nb\n");
        let read_all = |max_line_size| {
            let mut s = LineSplitter::new(max_line_size, 0);
            let mut seen = Vec::new();
            for chunk in data.as_bytes().chunks(CHUNK) {
                s.push(chunk);
                seen.extend(std::iter::from_fn(|| s.next_line()).map(|line| match line {
                    Line::Complete { bytes, offset } => (offset, bytes.len()),
                    Line::TooLong { offset } => (offset, usize::MAX),
                }));
            }
            assert_eq!(s.consumed_offset(), data.len() as u64);
            seen
        };
        let after = 3 + long.len() as u64;
        assert_eq!(read_all(4 * CHUNK), [(0, 1), (2, long.len()), (after, 1)]);
        assert_eq!(read_all(CHUNK), [(0, 1), (2, usize::MAX), (after, 1)]);
    }
}
