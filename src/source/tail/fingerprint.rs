//! File identity: device + inode + a fingerprint of the file's first bytes.
//! Inodes are reused after a delete, so the inode alone cannot tell a new
//! file from the old one; the fingerprint can.
//!
//! The fingerprint is a hash of the first `min(size, 1 KiB)` bytes together
//! with how many bytes it covers. A file shorter than 1 KiB gets a provisional
//! fingerprint over what it has; as the file grows the fingerprint is
//! extended, but only after the bytes it already covered are checked to be
//! unchanged, so a growing short file keeps its identity and a rewritten one
//! does not.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use serde::{Deserialize, Serialize};

/// How many leading bytes a full fingerprint covers.
pub(super) const FINGERPRINT_BYTES: u64 = 1024;

/// Hash of a file's first `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Fingerprint {
    /// Bytes covered: `min(size, 1024)` when it was taken.
    pub(super) len: u64,
    /// FNV-1a 64 of those bytes (stable across builds and platforms).
    pub(super) hash: u64,
}

impl Fingerprint {
    /// Takes the fingerprint of `file`, whose size is `size`.
    pub(super) fn of(file: &File, size: u64) -> io::Result<Self> {
        let len = size.min(FINGERPRINT_BYTES);
        let bytes = read_prefix(file, len)?;
        Ok(Self {
            len: bytes.len() as u64,
            hash: fnv1a(&bytes),
        })
    }

    /// Whether `file` still starts with the bytes this fingerprint covers.
    pub(super) fn matches(&self, file: &File) -> io::Result<bool> {
        if self.len == 0 {
            return Ok(true);
        }
        let bytes = read_prefix(file, self.len)?;
        Ok(bytes.len() as u64 == self.len && fnv1a(&bytes) == self.hash)
    }

    /// Whether the fingerprint covers less than it could for a file of
    /// `size` bytes.
    pub(super) fn is_provisional(&self, size: u64) -> bool {
        self.len < size.min(FINGERPRINT_BYTES)
    }
}

fn read_prefix(file: &File, len: u64) -> io::Result<Vec<u8>> {
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    let mut buf = vec![0; len];
    let mut filled = 0;
    while filled < len {
        match file.read_at(&mut buf[filled..], filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(filled);
    Ok(buf)
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0100_0000_01b3;

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(FNV_PRIME)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn short_file_keeps_identity_as_it_grows() {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"{\"a\":1}\n").unwrap();
        let small = Fingerprint::of(&file, 8).unwrap();
        assert_eq!(small.len, 8);
        file.write_all(&[b'x'; 2000]).unwrap();
        assert!(small.matches(&file).unwrap());
        assert!(small.is_provisional(2008));
        let full = Fingerprint::of(&file, 2008).unwrap();
        assert_eq!(full.len, FINGERPRINT_BYTES);
        assert!(full.matches(&file).unwrap());
        assert!(!full.is_provisional(2008));
    }

    #[test]
    fn rewritten_file_does_not_match() {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"first content\n").unwrap();
        let before = Fingerprint::of(&file, 14).unwrap();
        file.set_len(0).unwrap();
        assert!(
            !before.matches(&file).unwrap(),
            "shorter than the fingerprint"
        );
        file.write_all_at(b"other content\n", 0).unwrap();
        assert!(!before.matches(&file).unwrap(), "same length, other bytes");
    }

    #[test]
    fn hash_is_stable() {
        // Positions are stored on disk: the hash must never change.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
