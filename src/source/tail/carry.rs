//! Cutting a file's lines out of byte ranges read independently. The reader
//! cuts a file into fixed-size ranges, not at line ends, so that decode jobs
//! can read them in parallel; a line may then start in one range and end in a
//! later one. Each job takes the unfinished line of the ranges before its own
//! (the [`Carry`]), finishes it with the bytes up to its first newline, and
//! hands on what follows its last newline. The whole lines in between need
//! nothing from other ranges.

use bytes::Bytes;

use crate::source::Line;

/// The unfinished line between two ranges, handed from one job to the next.
#[derive(Debug)]
pub(super) struct Carry {
    /// Where the unfinished line starts: every byte before is cut into lines.
    start: u64,
    /// Offset of the next byte expected, just past the last range cut.
    next: u64,
    /// The unfinished line so far.
    data: Vec<u8>,
    /// Inside a line over `max_line_size` (reported already): skip its bytes
    /// until its newline.
    discarding: bool,
    /// A range came back short (the file shrank, or a read failed): nothing
    /// more is cut from this hand-off chain; the reader starts a new one.
    broken: bool,
}

/// What one range holds, once the line carried into it is known.
#[derive(Debug)]
pub(super) struct Cut {
    /// The carried line finished by the range's first newline, or a report
    /// that the line carried on is too long.
    pub(super) first: Option<Line>,
    /// The range's bytes after its first newline up to and including its
    /// last one: whole lines only.
    pub(super) whole: Bytes,
    /// Offset of `whole`'s first byte.
    pub(super) whole_offset: u64,
    /// The line after the last newline turned out too long already.
    pub(super) last: Option<Line>,
}

impl Carry {
    /// Nothing carried: the next range starts a line at `offset`.
    pub(super) fn at(offset: u64) -> Self {
        Self {
            start: offset,
            next: offset,
            data: Vec::new(),
            discarding: false,
            broken: false,
        }
    }

    /// Offset just past the last line cut: where reading may resume.
    pub(super) fn line_start(&self) -> u64 {
        self.start
    }

    pub(super) fn is_broken(&self) -> bool {
        self.broken
    }

    /// Gives up on this chain (a short or failed read).
    pub(super) fn break_chain(&mut self) {
        self.broken = true;
    }

    /// Cuts `range`, read at `offset`, given what the ranges before carried.
    pub(super) fn cut(&mut self, range: Bytes, offset: u64, max_line_size: usize) -> Cut {
        let mut cut = Cut {
            first: None,
            whole: Bytes::new(),
            whole_offset: offset,
            last: None,
        };
        if self.broken || offset != self.next {
            // Not the range expected next (a chain broken earlier): lines
            // cannot be told apart from here.
            self.broken = true;
            return cut;
        }
        self.next = offset + range.len() as u64;
        let Some(first_newline) = memchr::memchr(b'\n', &range) else {
            // The whole range continues the unfinished line.
            cut.first = self.extend(&range, max_line_size);
            return cut;
        };
        if self.discarding {
            self.discarding = false;
        } else if self.data.len() + first_newline > max_line_size {
            cut.first = Some(Line::TooLong { offset: self.start });
        } else if self.data.is_empty() {
            cut.first = Some(Line::Complete {
                bytes: range.slice(..first_newline),
                offset: self.start,
            });
        } else {
            let mut line = std::mem::take(&mut self.data);
            line.extend_from_slice(&range[..first_newline]);
            cut.first = Some(Line::Complete {
                bytes: Bytes::from(line),
                offset: self.start,
            });
        }
        self.data.clear();
        let last_newline = memchr::memrchr(b'\n', &range).unwrap_or(first_newline);
        cut.whole = range.slice(first_newline + 1..last_newline + 1);
        cut.whole_offset = offset + first_newline as u64 + 1;
        self.start = offset + last_newline as u64 + 1;
        cut.last = self.extend(&range[last_newline + 1..], max_line_size);
        cut
    }

    /// Nothing follows (end of a rotated file, or shutdown): the unfinished
    /// line is whole.
    pub(super) fn finish(&mut self) -> Option<Line> {
        if self.broken {
            return None;
        }
        let line = (!self.discarding && !self.data.is_empty()).then(|| Line::Complete {
            bytes: Bytes::from(std::mem::take(&mut self.data)),
            offset: self.start,
        });
        self.data.clear();
        self.discarding = false;
        self.start = self.next;
        line
    }

    /// Adds bytes to the unfinished line; reports it once it is too long.
    fn extend(&mut self, bytes: &[u8], max_line_size: usize) -> Option<Line> {
        if self.discarding || bytes.is_empty() {
            return None;
        }
        if self.data.len() + bytes.len() > max_line_size {
            self.data = Vec::new();
            self.discarding = true;
            return Some(Line::TooLong { offset: self.start });
        }
        self.data.extend_from_slice(bytes);
        None
    }
}

/// The lines of `whole` (bytes holding whole lines, each ending in a
/// newline), with their offsets; lines over `max_line_size` are reported.
pub(super) fn whole_lines(
    whole: &Bytes,
    offset: u64,
    max_line_size: usize,
) -> impl Iterator<Item = Line> + '_ {
    let mut at = 0;
    memchr::memchr_iter(b'\n', whole).map(move |newline| {
        let line_offset = offset + at as u64;
        let line = if newline - at > max_line_size {
            Line::TooLong {
                offset: line_offset,
            }
        } else {
            Line::Complete {
                bytes: whole.slice(at..newline),
                offset: line_offset,
            }
        };
        at = newline + 1;
        line
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cuts `text` into ranges of `size` bytes, in order through one chain;
    /// lines as `offset:text` (or `offset:TOO LONG`), then the finished line.
    fn cut_all(text: &str, size: usize, max_line_size: usize) -> (Vec<String>, u64) {
        let bytes = Bytes::copy_from_slice(text.as_bytes());
        let mut carry = Carry::at(0);
        let mut lines = Vec::new();
        for start in (0..bytes.len()).step_by(size) {
            let range = bytes.slice(start..(start + size).min(bytes.len()));
            let cut = carry.cut(range, start as u64, max_line_size);
            lines.extend(cut.first);
            lines.extend(whole_lines(&cut.whole, cut.whole_offset, max_line_size));
            lines.extend(cut.last);
        }
        let resume = carry.line_start();
        lines.extend(carry.finish());
        let shown = lines
            .into_iter()
            .map(|line| match line {
                Line::Complete { bytes, offset } => {
                    format!("{offset}:{}", String::from_utf8_lossy(&bytes))
                }
                Line::TooLong { offset } => format!("{offset}:TOO LONG"),
            })
            .collect();
        (shown, resume)
    }

    #[test]
    fn every_range_size_gives_the_same_lines() {
        let text = "first\nsecond line\n\nfourth\npartial";
        let expected = ["0:first", "6:second line", "18:", "19:fourth", "26:partial"];
        for size in 1..=text.len() + 1 {
            let (lines, resume) = cut_all(text, size, 100);
            assert_eq!(lines, expected, "ranges of {size} bytes");
            assert_eq!(resume, 26, "ranges of {size} bytes");
        }
    }

    #[test]
    fn too_long_lines_are_reported_once_and_skipped_whatever_the_ranges() {
        let text = "ok\n0123456789\nfine\n0123456789abcdef\nend\n01234567";
        let expected = [
            "0:ok",
            "3:TOO LONG",
            "14:fine",
            "19:TOO LONG",
            "36:end",
            "40:TOO LONG",
        ];
        for size in 1..=text.len() + 1 {
            let (lines, _) = cut_all(text, size, 5);
            assert_eq!(lines, expected, "ranges of {size} bytes");
        }
    }

    #[test]
    fn a_line_of_exactly_the_limit_is_whole() {
        for size in 1..8 {
            let (lines, _) = cut_all("12345\n123456\n", size, 5);
            assert_eq!(lines, ["0:12345", "6:TOO LONG"], "ranges of {size} bytes");
        }
    }

    /// The lines of `text` as one splitter over the whole input gives them.
    fn reference(text: &[u8], max_line_size: usize) -> Vec<(u64, Option<Vec<u8>>)> {
        let mut lines = Vec::new();
        let mut start = 0;
        for (i, _) in text.iter().enumerate().filter(|(_, b)| **b == b'\n') {
            let line = &text[start..i];
            lines.push((
                start as u64,
                (line.len() <= max_line_size).then(|| line.to_vec()),
            ));
            start = i + 1;
        }
        let rest = &text[start..];
        if !rest.is_empty() {
            lines.push((
                start as u64,
                (rest.len() <= max_line_size).then(|| rest.to_vec()),
            ));
        }
        lines
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        /// Any text cut at any range ends gives the lines of the text read
        /// whole, too-long ones reported once where they start.
        #[test]
        fn any_ranges_give_the_lines_of_the_whole_text(
            text in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::prelude::Just(b'\n'),
                    proptest::prelude::Just(b'a'),
                    proptest::num::u8::ANY
                ],
                0..400,
            ),
            cuts in proptest::collection::vec(1usize..64, 1..40),
            max_line_size in 1usize..40,
        ) {
            let bytes = Bytes::from(text.clone());
            let mut carry = Carry::at(0);
            let mut lines = Vec::new();
            let mut offset = 0;
            for size in cuts.iter().cycle() {
                if offset >= bytes.len() {
                    break;
                }
                let end = (offset + size).min(bytes.len());
                let cut = carry.cut(bytes.slice(offset..end), offset as u64, max_line_size);
                lines.extend(cut.first);
                lines.extend(whole_lines(&cut.whole, cut.whole_offset, max_line_size));
                lines.extend(cut.last);
                offset = end;
            }
            lines.extend(carry.finish());
            let got: Vec<(u64, Option<Vec<u8>>)> = lines
                .into_iter()
                .map(|line| match line {
                    Line::Complete { bytes, offset } => (offset, Some(bytes.to_vec())),
                    Line::TooLong { offset } => (offset, None),
                })
                .collect();
            proptest::prop_assert_eq!(got, reference(&text, max_line_size));
        }
    }

    #[test]
    fn a_gap_or_a_short_read_breaks_the_chain() {
        let mut carry = Carry::at(0);
        let cut = carry.cut(Bytes::from_static(b"a\nb"), 0, 10);
        assert!(matches!(cut.first, Some(Line::Complete { .. })));
        let cut = carry.cut(Bytes::from_static(b"c\n"), 10, 10);
        assert!(cut.first.is_none() && cut.whole.is_empty());
        assert!(carry.is_broken());
        assert_eq!(carry.line_start(), 2, "resume where whole lines end");
        assert!(carry.finish().is_none());

        let mut carry = Carry::at(0);
        carry.break_chain();
        assert!(carry.cut(Bytes::from_static(b"x\n"), 0, 10).first.is_none());
    }
}
