//! The file output's write path, run on a small pool of threads so the
//! routing task never compresses or touches the disk: compress a buffer into
//! one gzip member, open (and if needed repair) the file, rotate when the
//! member would push it over `max_size`, append, fsync if asked. A file has
//! at most one job in flight, so its members land in order.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};

use tokio::sync::mpsc::UnboundedSender;

use super::gzip::{self, Recovery};
use super::rotate::{self, Clock, Retention};

/// An open output file, as the write path needs it.
pub(crate) trait SinkFile: Write + Send {
    /// Cuts the file back to `len` bytes (undoing a partial append).
    fn truncate(&mut self, len: u64) -> io::Result<()>;
    fn sync(&mut self) -> io::Result<()>;
}

impl SinkFile for File {
    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.set_len(len)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.sync_data()
    }
}

/// Opens output files; tests swap in one that fails on demand.
pub(crate) trait Opener: Send + Sync {
    /// Opens `path` for appending and returns the file and its length,
    /// after cutting off a torn tail unless the length is `trusted`.
    fn open(&self, path: &Path, trusted: Option<u64>) -> io::Result<(Box<dyn SinkFile>, u64)>;
}

/// The real file system.
pub(crate) struct DiskOpener {
    pub(crate) gzip: bool,
    pub(crate) file_mode: u32,
    pub(crate) dir_mode: u32,
}

impl Opener for DiskOpener {
    fn open(&self, path: &Path, trusted: Option<u64>) -> io::Result<(Box<dyn SinkFile>, u64)> {
        let (file, len) = open_for_append(path, self.gzip, self.file_mode, self.dir_mode, trusted)?;
        Ok((Box::new(file), len))
    }
}

/// Opens (creating directories and the file as needed) and repairs a file.
pub(crate) fn open_for_append(
    path: &Path,
    gzip: bool,
    file_mode: u32,
    dir_mode: u32,
    trusted: Option<u64>,
) -> io::Result<(File, u64)> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        DirBuilder::new()
            .recursive(true)
            .mode(dir_mode)
            .create(dir)?;
    }
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(file_mode)
        .open(path)?;
    let len = file.metadata()?.len();
    if len == 0 || trusted == Some(len) {
        return Ok((file, len));
    }
    let len = if gzip {
        match gzip::recover(&mut file)? {
            Recovery::Intact { len } => len,
            Recovery::Truncated { from, to } => {
                tracing::warn!(path = %path.display(), from, to, "Cut a torn gzip member off the end of an output file (left by a crash).");
                to
            }
            Recovery::NotGzip { len } => {
                tracing::warn!(path = %path.display(), "An existing output file is not gzip; appending gzip members after its content.");
                len
            }
        }
    } else {
        recover_plain(&mut file, path, len)?
    };
    Ok((file, len))
}

/// Cuts a partial last line (left by a crash) off a plain file.
fn recover_plain(file: &mut File, path: &Path, len: u64) -> io::Result<u64> {
    let mut end = len;
    let mut chunk = vec![0u8; 64 * 1024];
    while end > 0 {
        let start = end.saturating_sub(chunk.len() as u64);
        let n = usize::try_from(end - start).unwrap_or(chunk.len());
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut chunk[..n])?;
        if let Some(at) = memchr::memrchr(b'\n', &chunk[..n]) {
            end = start + at as u64 + 1;
            break;
        }
        end = start;
    }
    if end != len {
        tracing::warn!(path = %path.display(), from = len, to = end, "Cut a partial last line off the end of an output file (left by a crash).");
        file.set_len(end)?;
    }
    Ok(end)
}

/// One output file between jobs.
pub(crate) struct Slot {
    pub(crate) path: PathBuf,
    pub(crate) file: Option<Box<dyn SinkFile>>,
    /// Bytes known to be complete members or lines.
    pub(crate) len: u64,
    /// A length to trust on reopen without rescanning (we closed it cleanly).
    pub(crate) trusted: Option<u64>,
    /// A failed append may have left partial bytes past `len`.
    pub(crate) dirty: bool,
}

impl Slot {
    pub(crate) fn new(path: PathBuf, trusted: Option<u64>) -> Self {
        Self {
            path,
            file: None,
            len: 0,
            trusted,
            dirty: false,
        }
    }
}

/// Buffered lines for one file, to compress and append.
pub(crate) struct Job {
    pub(crate) key: Arc<str>,
    pub(crate) slot: Slot,
    pub(crate) data: Vec<u8>,
}

/// A finished job: the slot and the data come back either way, so a failed
/// append is retried with the same bytes.
pub(crate) struct Done {
    pub(crate) key: Arc<str>,
    pub(crate) slot: Slot,
    pub(crate) data: Vec<u8>,
    pub(crate) result: io::Result<()>,
}

/// How the write path behaves, fixed at build time.
pub(crate) struct WriteSettings {
    pub(crate) compress_level: Option<u32>,
    pub(crate) fsync: bool,
    /// Rotate before an append would grow a file past this; 0 never rotates.
    pub(crate) max_size: u64,
    pub(crate) retention: Retention,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) opener: Arc<dyn Opener>,
}

/// Starts `threads` workers; they stop when the returned sender is dropped.
pub(crate) fn start_pool(
    threads: usize,
    settings: Arc<WriteSettings>,
    done: UnboundedSender<Done>,
) -> io::Result<mpsc::Sender<Job>> {
    crate::worker_pool::start("file-writer", threads, || {
        let settings = settings.clone();
        let done = done.clone();
        let mut compressed = Vec::new();
        move |mut job: Job| {
            let result = execute(&mut job, &settings, &mut compressed);
            // The output stopped waiting: nothing to report.
            let _ = done.send(Done {
                key: job.key,
                slot: job.slot,
                data: job.data,
                result,
            });
        }
    })
}

/// Compresses and appends one job's data.
pub(crate) fn execute(
    job: &mut Job,
    settings: &WriteSettings,
    compressed: &mut Vec<u8>,
) -> io::Result<()> {
    let bytes: &[u8] = match settings.compress_level {
        Some(level) => {
            compressed.clear();
            gzip::compress_member(&job.data, level, compressed)?;
            compressed
        }
        None => &job.data,
    };
    let slot = &mut job.slot;
    ensure_open(slot, settings)?;
    if settings.max_size > 0 && slot.len > 0 && slot.len + bytes.len() as u64 > settings.max_size {
        slot.file = None;
        let backup = rotate::rotate(&slot.path, settings.clock.as_ref())?;
        tracing::debug!(path = %slot.path.display(), backup = %backup.display(), "Rotated an output file.");
        slot.len = 0;
        slot.trusted = Some(0);
        ensure_open(slot, settings)?;
        match rotate::prune(&slot.path, settings.retention, settings.clock.as_ref()) {
            Ok(removed) if !removed.is_empty() => {
                tracing::debug!(path = %slot.path.display(), removed = removed.len(), "Deleted old backups.");
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(path = %slot.path.display(), error = %e, "Deleting old backups failed.");
            }
        }
    }
    let file = slot.file.as_mut().expect("ensure_open opened the file");
    let written = file
        .write_all(bytes)
        .and_then(|()| file.flush())
        .and_then(|()| if settings.fsync { file.sync() } else { Ok(()) });
    match written {
        Ok(()) => {
            slot.len += bytes.len() as u64;
            Ok(())
        }
        Err(e) => {
            // Undo a partial append now if possible, else before the retry.
            slot.dirty = file.truncate(slot.len).is_err();
            Err(e)
        }
    }
}

fn ensure_open(slot: &mut Slot, settings: &WriteSettings) -> io::Result<()> {
    match &mut slot.file {
        Some(file) => {
            if slot.dirty {
                file.truncate(slot.len)?;
                slot.dirty = false;
            }
        }
        None => {
            let (file, len) = settings.opener.open(&slot.path, slot.trusted.take())?;
            slot.file = Some(file);
            slot.len = len;
            slot.dirty = false;
        }
    }
    Ok(())
}
