//! Gzip for the file output: every flush appends one complete gzip member,
//! so a file is always a valid multi-member gzip stream. After a crash the
//! last member may be torn; [`recover`] finds the end of the last complete
//! member and cuts the file there before new members are appended.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};

use flate2::Compression;
use flate2::write::GzEncoder;

/// Compresses `data` into one complete gzip member appended to `out`.
pub(crate) fn compress_member(data: &[u8], level: u32, out: &mut Vec<u8>) -> io::Result<()> {
    let mut encoder = GzEncoder::new(out, Compression::new(level));
    encoder.write_all(data)?;
    encoder.finish()?;
    Ok(())
}

/// What [`recover`] found in an existing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recovery {
    /// Every member is complete; the file is `len` bytes long.
    Intact { len: u64 },
    /// A torn last member was cut off: the file went from `from` to `to` bytes.
    Truncated { from: u64, to: u64 },
    /// The file does not start with a gzip member; it was left untouched.
    NotGzip { len: u64 },
}

/// Checks an existing gzip file opened for reading and writing; cuts off a
/// torn last member.
pub(crate) fn recover(file: &mut File) -> io::Result<Recovery> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(Recovery::Intact { len });
    }
    file.seek(SeekFrom::Start(0))?;
    let valid = complete_members_len(&mut *file)?;
    let recovery = match valid {
        None => Recovery::NotGzip { len },
        Some(valid) if valid == len => Recovery::Intact { len },
        Some(valid) => {
            file.set_len(valid)?;
            file.sync_data()?;
            Recovery::Truncated {
                from: len,
                to: valid,
            }
        }
    };
    file.seek(SeekFrom::End(0))?;
    Ok(recovery)
}

/// Length of the complete gzip members at the start of `reader`; `None`
/// if the data does not start with the gzip magic bytes.
pub(crate) fn complete_members_len(reader: impl Read) -> io::Result<Option<u64>> {
    let mut input = Counting {
        inner: BufReader::with_capacity(64 * 1024, reader),
        consumed: 0,
    };
    let head = input.fill_buf()?;
    if head.len() < 2 && [0x1f, 0x8b].starts_with(head) {
        // A crash within the first two bytes of the first member.
        return Ok(Some(0));
    }
    if !head.starts_with(&[0x1f, 0x8b]) {
        return Ok(None);
    }
    let mut sink = vec![0u8; 64 * 1024];
    loop {
        let start = input.consumed;
        if input.fill_buf()?.is_empty() {
            return Ok(Some(start));
        }
        #[expect(
            clippy::disallowed_methods,
            reason = "checks one member at a time, to find where a torn one starts"
        )]
        let mut member = flate2::bufread::GzDecoder::new(&mut input);
        let complete = loop {
            match member.read(&mut sink) {
                Ok(0) => break true,
                Ok(_) => {}
                // A torn member ends early or fails its CRC check.
                Err(e) if is_corruption(&e) => break false,
                Err(e) => return Err(e),
            }
        };
        if !complete {
            return Ok(Some(start));
        }
    }
}

fn is_corruption(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput
    ) || e.get_ref().is_some()
}

/// A buffered reader that counts the bytes its user consumed, so the end of
/// a gzip member is known exactly.
struct Counting<R> {
    inner: BufReader<R>,
    consumed: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.consumed += n as u64;
        Ok(n)
    }
}

impl<R: Read> BufRead for Counting<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amount: usize) {
        self.consumed += amount as u64;
        self.inner.consume(amount);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::MultiGzDecoder;

    fn members(parts: &[&str]) -> (Vec<u8>, Vec<u64>) {
        let mut out = Vec::new();
        let mut ends = Vec::new();
        for part in parts {
            compress_member(part.as_bytes(), 6, &mut out).unwrap();
            ends.push(out.len() as u64);
        }
        (out, ends)
    }

    fn decompress(bytes: &[u8]) -> String {
        let mut text = String::new();
        MultiGzDecoder::new(bytes)
            .read_to_string(&mut text)
            .unwrap();
        text
    }

    #[test]
    fn appended_members_form_one_valid_stream() {
        let (bytes, ends) = members(&["a\n", "b\nc\n", "d\n"]);
        assert_eq!(decompress(&bytes), "a\nb\nc\nd\n");
        assert_eq!(complete_members_len(&bytes[..]).unwrap(), Some(ends[2]));
    }

    #[test]
    fn every_torn_tail_is_cut_back_to_the_last_complete_member() {
        let big: String = (0..2000).map(|n| format!("{{\"n\":{n}}}\n")).collect();
        let (bytes, ends) = members(&["first\n", &big, "last\n"]);
        // Every cut near member boundaries, a stride elsewhere (debug builds
        // inflate slowly).
        let near = |cut: usize| ends.iter().any(|&e| (e as usize).abs_diff(cut) < 40);
        for cut in (0..bytes.len()).filter(|&c| c < 40 || near(c) || c % 13 == 0) {
            let expected = ends.iter().copied().filter(|&e| e <= cut as u64).max();
            let got = complete_members_len(&bytes[..cut]).unwrap();
            assert_eq!(got, Some(expected.unwrap_or(0)), "cut {cut}");
        }
    }

    #[test]
    fn recover_truncates_a_file_and_leaves_other_data_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log.gz");
        let (mut bytes, ends) = members(&["one\n", "two\n"]);
        bytes.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0]);
        std::fs::write(&path, &bytes).unwrap();
        let mut file = File::options().read(true).write(true).open(&path).unwrap();
        let r = recover(&mut file).unwrap();
        assert_eq!(
            r,
            Recovery::Truncated {
                from: bytes.len() as u64,
                to: ends[1]
            }
        );
        assert_eq!(decompress(&std::fs::read(&path).unwrap()), "one\ntwo\n");
        // Intact now.
        assert_eq!(
            recover(&mut file).unwrap(),
            Recovery::Intact { len: ends[1] }
        );

        let plain = dir.path().join("plain.gz");
        std::fs::write(&plain, b"not gzip at all\n").unwrap();
        let mut file = File::options().read(true).write(true).open(&plain).unwrap();
        assert_eq!(recover(&mut file).unwrap(), Recovery::NotGzip { len: 16 });
        assert_eq!(std::fs::read(&plain).unwrap(), b"not gzip at all\n");
    }

    #[test]
    fn corrupted_crc_counts_as_torn() {
        let (mut bytes, ends) = members(&["one\n", "two\n"]);
        let last = bytes.len() - 6;
        bytes[last] ^= 0xff;
        assert_eq!(complete_members_len(&bytes[..]).unwrap(), Some(ends[0]));
    }
}
