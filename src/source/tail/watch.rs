//! Wake-ups for the tail reader. inotify (via `notify`) wakes it as soon as a
//! watched directory or a file in it changes; it is only an optimisation:
//! the reader also stats its files every `poll_interval` and rescans the
//! globs every `refresh_interval`, so a missed event, an overflowed queue, a
//! network filesystem or exhausted watches delay reading, never stop it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;

use notify::{EventKind, RecursiveMode, Watcher};
use serde::Deserialize;

use crate::event::BatchStatus;

/// How a tail source learns that files changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WatchMode {
    /// inotify, with polling as the backstop (and the fallback where
    /// inotify is unavailable).
    #[default]
    Notify,
    /// Polling only (e.g. for NFS, where inotify sees no remote writes).
    Poll,
}

/// Why the reader was woken.
#[derive(Debug)]
pub(super) enum Wake {
    /// Something changed in a watched directory; `rescan` when files may
    /// have appeared, vanished or been renamed.
    Changed { rescan: bool },
    /// The outputs finished with a batch.
    Acked {
        file: u64,
        seq: u64,
        /// Bytes of the range, back in the read budget.
        bytes: u64,
        /// Offset just past the batch's last line.
        end: u64,
        status: BatchStatus,
    },
    /// Shutdown was requested.
    Shutdown,
}

/// The directory watches of one source.
pub(super) struct DirWatcher {
    watcher: Option<notify::RecommendedWatcher>,
    watched: HashSet<PathBuf>,
    warned: bool,
}

impl DirWatcher {
    pub(super) fn new(mode: WatchMode, wake: Sender<Wake>) -> Self {
        let watcher = match mode {
            WatchMode::Poll => None,
            WatchMode::Notify => {
                let handler = move |result: notify::Result<notify::Event>| {
                    let rescan = match &result {
                        Ok(event) => {
                            event.need_rescan()
                                || matches!(
                                    event.kind,
                                    EventKind::Create(_) | EventKind::Remove(_) | EventKind::Any
                                )
                                || matches!(
                                    event.kind,
                                    EventKind::Modify(notify::event::ModifyKind::Name(_))
                                )
                        }
                        Err(_) => true,
                    };
                    let _ = wake.send(Wake::Changed { rescan });
                };
                match notify::recommended_watcher(handler) {
                    Ok(watcher) => Some(watcher),
                    Err(e) => {
                        tracing::warn!(error = %e, "inotify is unavailable; polling files instead.");
                        None
                    }
                }
            }
        };
        Self {
            watcher,
            watched: HashSet::new(),
            warned: false,
        }
    }

    /// Watches `dir` (not recursively) unless it is watched already. On
    /// failure (e.g. the inotify watch limit) that directory is polled.
    pub(super) fn watch(&mut self, dir: &Path) {
        let Some(watcher) = self.watcher.as_mut() else {
            return;
        };
        if self.watched.contains(dir) {
            return;
        }
        match watcher.watch(dir, RecursiveMode::NonRecursive) {
            Ok(()) => {
                self.watched.insert(dir.to_owned());
            }
            Err(e) => {
                if !self.warned {
                    self.warned = true;
                    tracing::warn!(dir = %dir.display(), error = %e, "Could not watch a directory (inotify watch limit?); its files are polled instead.");
                }
            }
        }
    }

    /// Stops watching directories that are no longer listed (so a deleted
    /// and recreated directory is watched anew).
    pub(super) fn retain(&mut self, dirs: &HashSet<PathBuf>) {
        let Some(watcher) = self.watcher.as_mut() else {
            return;
        };
        self.watched.retain(|dir| {
            let keep = dirs.contains(dir);
            if !keep {
                let _ = watcher.unwatch(dir);
            }
            keep
        });
    }
}
