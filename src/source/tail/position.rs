//! Saved read positions of one tail source, one JSON file (by default
//! `<data_dir>/tail/<source name>.positions.json`). Each entry names a file
//! by device, inode and fingerprint, with its path for people reading it.
//!
//! Writes are atomic (temp file, fsync, rename, fsync of the directory), so
//! a crash leaves either the old or the new file, never a torn one. A file
//! that cannot be parsed anyway is reported, moved aside, and the source
//! starts as on its first run: it never crash-loops on its own state.
//! A fluentd `pos_file` (`path\toffset\tinode`, hex) is read too, so a
//! fluentd user can point `pos_file` at theirs; it is then rewritten in
//! this format.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::fingerprint::Fingerprint;

const VERSION: u32 = 1;

/// One file's saved position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct PositionEntry {
    /// Where the file was last seen (informational; identity is below).
    pub(super) path: PathBuf,
    /// Device; absent for entries imported from a fluentd `pos_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) dev: Option<u64>,
    pub(super) ino: u64,
    /// Absent for imported fluentd entries: then inode and size decide.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) fingerprint: Option<Fingerprint>,
    /// Byte offset just past the last line every output acknowledged.
    pub(super) offset: u64,
    /// When the entry was written, Unix seconds.
    #[serde(default)]
    pub(super) updated: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct PositionFile {
    version: u32,
    files: Vec<PositionEntry>,
}

/// Why positions could not be read or written.
#[derive(Debug, thiserror::Error)]
pub(super) enum PositionError {
    /// The file exists but cannot be read (permissions, I/O error).
    #[error("failed to read position file `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The directory is not writable, the disk is full, ...
    #[error("failed to write position file `{}`", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The positions loaded at startup that no tracked file has claimed yet,
/// and where to save.
#[derive(Debug)]
pub(super) struct PositionStore {
    path: PathBuf,
    unclaimed: HashMap<(Option<u64>, u64), PositionEntry>,
    /// Modification times of the unclaimed entries' files when they were
    /// closed while idle: a file with the same inode and size but another
    /// time is not the one closed (an inode reused for a new file).
    parked: HashMap<(Option<u64>, u64), SystemTime>,
    /// No usable position file existed: files found at the first scan start
    /// where `read_from` says.
    pub(super) first_start: bool,
}

impl PositionStore {
    /// Loads `path`. A missing file means a first start; an unparsable one is
    /// moved aside (reported) and also means a first start.
    pub(super) fn open(path: &Path) -> Result<Self, PositionError> {
        let mut store = Self {
            path: path.to_owned(),
            unclaimed: HashMap::new(),
            parked: HashMap::new(),
            first_start: true,
        };
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(|source| PositionError::Write {
                path: path.to_owned(),
                source,
            })?;
        }
        let text = match fs::read(path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(store),
            Err(source) => {
                return Err(PositionError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        match parse(&text) {
            Ok(entries) => {
                store.first_start = false;
                for entry in entries {
                    store.unclaimed.insert((entry.dev, entry.ino), entry);
                }
            }
            Err(reason) => {
                let aside = aside_name(path);
                let moved = fs::rename(path, &aside);
                tracing::error!(
                    path = %path.display(),
                    moved_to = %aside.display(),
                    reason,
                    moved = moved.is_ok(),
                    "The position file is corrupt; it was moved aside and files are read as on a first start (`read_from`)."
                );
            }
        }
        Ok(store)
    }

    /// Takes the saved entry for a file, if any.
    pub(super) fn claim(&mut self, dev: u64, ino: u64) -> Option<PositionEntry> {
        self.parked.remove(&(Some(dev), ino));
        self.unclaimed
            .remove(&(Some(dev), ino))
            .or_else(|| self.unclaimed.remove(&(None, ino)))
    }

    /// Saved entries whose file is no longer where it was last seen: deleted
    /// or renamed away while the agent was stopped.
    pub(super) fn vanished(&self) -> impl Iterator<Item = &PositionEntry> {
        self.unclaimed.values().filter(|entry| is_gone(entry))
    }

    /// Forgets saved entries whose file is gone (files that vanished while
    /// stopped); entries of files closed while idle stay.
    pub(super) fn forget_vanished(&mut self) {
        let parked = &mut self.parked;
        self.unclaimed.retain(|key, entry| {
            let gone = is_gone(entry);
            if gone {
                parked.remove(key);
            }
            if gone {
                tracing::debug!(path = %entry.path.display(), offset = entry.offset, "Forgot the position of a file that is gone.");
            }
            !gone
        });
    }

    /// Keeps the position of a file closed while idle, for when it is opened
    /// again.
    pub(super) fn park(&mut self, entry: PositionEntry, modified: SystemTime) {
        let key = (entry.dev, entry.ino);
        self.parked.insert(key, modified);
        self.unclaimed.insert(key, entry);
    }

    /// Whether `meta` is a file closed while idle that has not changed since:
    /// it needs no descriptor yet.
    pub(super) fn is_parked_unchanged(&self, meta: &fs::Metadata) -> bool {
        let key = (Some(meta.dev()), meta.ino());
        self.parked.get(&key).is_some_and(|modified| {
            meta.modified().is_ok_and(|now| now == *modified)
                && self
                    .unclaimed
                    .get(&key)
                    .is_some_and(|e| e.offset == meta.len())
        })
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `entries` (plus the still unclaimed ones) atomically.
    pub(super) fn save(&self, entries: Vec<PositionEntry>) -> Result<(), PositionError> {
        let mut files = entries;
        files.extend(self.unclaimed.values().cloned());
        files.sort_by(|a, b| a.path.cmp(&b.path).then(a.ino.cmp(&b.ino)));
        let body = PositionFile {
            version: VERSION,
            files,
        };
        let mut text = serde_json::to_vec_pretty(&body).expect("positions serialize to JSON");
        text.push(b'\n');
        write_atomically(&self.path, &text).map_err(|source| PositionError::Write {
            path: self.path.clone(),
            source,
        })
    }
}

/// Whether the entry's file is no longer at its path.
fn is_gone(entry: &PositionEntry) -> bool {
    !fs::metadata(&entry.path)
        .is_ok_and(|meta| meta.ino() == entry.ino && entry.dev.is_none_or(|dev| dev == meta.dev()))
}

fn parse(text: &[u8]) -> Result<Vec<PositionEntry>, String> {
    let trimmed = text.trim_ascii_start();
    if trimmed.is_empty() {
        return Err("the file is empty".into());
    }
    if trimmed.starts_with(b"{") {
        let file: PositionFile =
            serde_json::from_slice(text).map_err(|e| format!("invalid JSON: {e}"))?;
        if file.version != VERSION {
            return Err(format!("unknown version {}", file.version));
        }
        return Ok(file.files);
    }
    parse_fluentd(text)
}

/// fluentd's in_tail `pos_file`: `path<TAB>offset<TAB>inode`, both 16 hex
/// digits; offset `ffffffffffffffff` marks a file fluentd stopped watching.
fn parse_fluentd(text: &[u8]) -> Result<Vec<PositionEntry>, String> {
    let text = std::str::from_utf8(text).map_err(|_| "not UTF-8 and not JSON".to_owned())?;
    let mut entries = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = || format!("line {} is neither JSON nor a fluentd position", n + 1);
        let mut fields = line.rsplitn(3, '\t');
        let ino = fields.next().ok_or_else(bad)?;
        let offset = fields.next().ok_or_else(bad)?;
        let path = fields.next().ok_or_else(bad)?;
        let ino = u64::from_str_radix(ino.trim(), 16).map_err(|_| bad())?;
        let offset = u64::from_str_radix(offset.trim(), 16).map_err(|_| bad())?;
        if offset == u64::MAX {
            continue;
        }
        entries.push(PositionEntry {
            path: PathBuf::from(path),
            dev: None,
            ino,
            fingerprint: None,
            offset,
            updated: 0,
        });
    }
    Ok(entries)
}

fn aside_name(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(
        ".corrupt-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ")
    ));
    PathBuf::from(name)
}

/// Temp file, fsync, rename over the target, fsync the directory. The temp
/// file has a fresh random name and is created exclusively (`O_EXCL`, mode
/// 0600), so a symlink or file planted at a predictable name in the
/// directory is never followed or truncated.
fn write_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut temp = tempfile::Builder::new()
        .prefix(".positions-")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    temp.write_all(contents)?;
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|e| e.error)?;
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, ino: u64, offset: u64) -> PositionEntry {
        PositionEntry {
            path: PathBuf::from(path),
            dev: Some(1),
            ino,
            fingerprint: Some(Fingerprint { len: 3, hash: 42 }),
            offset,
            updated: 5,
        }
    }

    #[test]
    fn saves_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tail/src.positions.json");
        let store = PositionStore::open(&path).unwrap();
        assert!(store.first_start);
        store
            .save(vec![entry("/a", 7, 100), entry("/b", 8, 200)])
            .unwrap();
        let mut store = PositionStore::open(&path).unwrap();
        assert!(!store.first_start);
        assert_eq!(store.claim(1, 8), Some(entry("/b", 8, 200)));
        assert_eq!(store.claim(1, 8), None);
        assert_eq!(store.claim(2, 7), None, "another device");
        // Unclaimed entries survive a save.
        store.save(vec![]).unwrap();
        let mut store = PositionStore::open(&path).unwrap();
        assert_eq!(store.claim(1, 7), Some(entry("/a", 7, 100)));
    }

    #[test]
    fn a_symlink_planted_at_the_old_temp_name_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, b"keep me").unwrap();
        let path = dir.path().join("p.json");
        std::os::unix::fs::symlink(&victim, dir.path().join("p.json.tmp")).unwrap();
        let store = PositionStore::open(&path).unwrap();
        store.save(vec![entry("/a", 7, 100)]).unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"keep me");
        assert!(fs::symlink_metadata(&path).unwrap().file_type().is_file());
        let left: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().ends_with(".tmp") && n != "p.json.tmp")
            .collect();
        assert!(left.is_empty(), "no temp file left behind: {left:?}");
    }

    #[test]
    fn corrupt_file_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.json");
        fs::write(&path, b"{\"version\":1,\"files\":[{\"pa").unwrap();
        let store = PositionStore::open(&path).unwrap();
        assert!(store.first_start);
        assert!(!path.exists());
        let aside: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(aside.len(), 1);
        assert!(aside[0].starts_with("p.json.corrupt-"), "{aside:?}");
        // An empty file (e.g. from a filesystem that lost the data) too.
        fs::write(&path, b"").unwrap();
        assert!(PositionStore::open(&path).unwrap().first_start);
    }

    #[test]
    fn reads_fluentd_pos_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.pos");
        fs::write(
            &path,
            "/var/log/audit.log\t00000000000004d2\t0000000000000010\n\
             /var/log/old.log\tffffffffffffffff\t0000000000000011\n",
        )
        .unwrap();
        let mut store = PositionStore::open(&path).unwrap();
        assert!(!store.first_start);
        let e = store.claim(99, 16).unwrap();
        assert_eq!((e.offset, e.fingerprint), (1234, None));
        assert_eq!(store.claim(99, 17), None, "unwatched entries are skipped");
    }

    #[test]
    fn a_parked_file_counts_as_unchanged_only_with_its_size_and_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        fs::write(&path, "one\n").unwrap();
        let meta = fs::metadata(&path).unwrap();
        let mut store = PositionStore::open(&dir.path().join("pos.json")).unwrap();
        let parked = PositionEntry {
            path: path.clone(),
            dev: Some(meta.dev()),
            ino: meta.ino(),
            fingerprint: None,
            offset: meta.len(),
            updated: 0,
        };
        store.park(parked, meta.modified().unwrap());
        assert!(store.is_parked_unchanged(&fs::metadata(&path).unwrap()));

        // Same inode and size, another modification time: not the file
        // that was closed.
        let earlier = meta.modified().unwrap() - std::time::Duration::from_secs(60);
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(earlier)
            .unwrap();
        assert!(!store.is_parked_unchanged(&fs::metadata(&path).unwrap()));

        fs::write(&path, "one\ntwo\n").unwrap();
        assert!(!store.is_parked_unchanged(&fs::metadata(&path).unwrap()));
        assert!(store.claim(meta.dev(), meta.ino()).is_some());
        assert!(store.parked.is_empty(), "claiming forgets the parked time");
    }
}
