//! The agent's lock on `data_dir`: an exclusive `flock` on `<data_dir>/lock`,
//! held for the life of the process, so two agents never share positions or
//! buffers. The kernel drops the lock when the process dies, even by
//! `kill -9`, so a stale lock file never blocks a restart.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// Why `data_dir` could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// Another process holds the lock.
    #[error(
        "data directory `{}` is in use by another auditrail process{}; give each agent its own `data_dir`",
        dir.display(),
        holder.as_ref().map(|pid| format!(" (pid {pid})")).unwrap_or_default()
    )]
    InUse {
        dir: PathBuf,
        holder: Option<String>,
    },
    /// The directory or lock file cannot be created or opened.
    #[error("cannot use data directory `{}`", dir.display())]
    Io {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Held while the agent runs; unlocks when dropped.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    /// Creates `dir` (mode 0700) if needed and locks it, without waiting.
    pub fn acquire(dir: &Path) -> Result<Self, DataDirError> {
        let io_error = |source| DataDirError::Io {
            dir: dir.to_owned(),
            source,
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_error)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join("lock"))
            .map_err(io_error)?;
        // SAFETY: flock(2) on a descriptor we own; no memory is involved.
        let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if locked != 0 {
            let error = io::Error::last_os_error();
            if error.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = Some(holder.trim().to_owned()).filter(|h| !h.is_empty());
                return Err(DataDirError::InUse {
                    dir: dir.to_owned(),
                    holder,
                });
            }
            return Err(io_error(error));
        }
        // Informational only: who holds the lock.
        let _ = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{}", std::process::id()));
        Ok(Self { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_fails_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let first = DataDirLock::acquire(&data).unwrap();
        let err = DataDirLock::acquire(&data).unwrap_err();
        assert!(matches!(err, DataDirError::InUse { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("in use by another auditrail process"),
            "{err}"
        );
        drop(first);
        DataDirLock::acquire(&data).unwrap();
    }
}
