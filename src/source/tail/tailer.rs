//! The reader loop of one tail source, on its own blocking thread: rescan
//! globs, stat open files, read what is new, apply acknowledgements, let go
//! of rotated files once they are read to the end, save positions.
//!
//! Invariants: a file is closed only when it is no longer found at its path,
//! everything it held was read, it stayed unchanged for `rotate_wait`, and
//! every batch from it was acknowledged; a position is saved only up to the
//! last acknowledged line.

use std::collections::HashSet;
use std::fs::{self, File};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime};

use tokio_util::sync::CancellationToken;

use super::TailSettings;
use super::discover::{Globs, UnmatchedGlobs};
use super::fingerprint::Fingerprint;
use super::position::{PositionEntry, PositionStore};
use super::read::{Change, Emitter, ReadOutcome, TailedFile, end_of_last_line};
use super::stats::TailStats;
use super::watch::{DirWatcher, Wake};
use crate::event::BatchStatus;
use crate::source::PipelineClosed;

/// How much one file may read per round before the others get a turn.
const READ_SHARE: u64 = 8 << 20;
/// Saved positions of files not found again are kept this long after
/// startup (a file may be briefly missing mid-rotation), then forgotten.
const FORGET_UNCLAIMED_AFTER: Duration = Duration::from_secs(300);

pub(super) struct Tailer {
    settings: TailSettings,
    globs: Globs,
    store: PositionStore,
    watcher: DirWatcher,
    wake: Receiver<Wake>,
    emit: Emitter,
    stats: TailStats,
    shutdown: CancellationToken,
    files: Vec<TailedFile>,
    next_id: u64,
    scanned_once: bool,
    /// Some position moved since the last save.
    dirty: bool,
    last_save: Instant,
    last_scan: Instant,
    last_check: Instant,
    started: Instant,
    save_failed: bool,
    /// Files found with unread bytes that the last scan could not open
    /// (`max_open_files`).
    waiting: usize,
    unmatched: UnmatchedGlobs,
}

/// Why the loop stopped.
enum Stop {
    Shutdown,
    PipelineClosed,
    /// `stop_at_eof`: every file was read to its end.
    AtEof,
}

impl Tailer {
    /// A reader that has not looked at the disk yet; `wake` receives what
    /// the watcher, the acknowledgements (through `emit`) and shutdown send.
    pub(super) fn new(
        settings: TailSettings,
        globs: Globs,
        store: PositionStore,
        emit: Emitter,
        stats: TailStats,
        shutdown: CancellationToken,
        wake: Receiver<Wake>,
    ) -> Self {
        let now = Instant::now();
        Self {
            watcher: DirWatcher::new(settings.watch, emit.waker()),
            settings,
            globs,
            store,
            wake,
            emit,
            stats,
            shutdown,
            files: Vec::new(),
            next_id: 0,
            scanned_once: false,
            dirty: false,
            last_save: now,
            last_scan: now,
            last_check: now,
            started: now,
            save_failed: false,
            waiting: 0,
            unmatched: UnmatchedGlobs::default(),
        }
    }

    pub(super) fn run(mut self) {
        self.scan();
        self.report_vanished();
        match self.follow() {
            Stop::Shutdown => self.finish(),
            Stop::AtEof => self.finish_at_eof(),
            Stop::PipelineClosed => {}
        }
        self.save(true);
        let bad = self.emit.counters.bad_lines.load(Ordering::Relaxed);
        tracing::info!(
            bad_lines = bad,
            files = self.files.len(),
            "Tail source stopped; skipped {bad} bad lines in total."
        );
    }

    /// Files that had a saved position and are gone since the agent stopped
    /// (e.g. a rotated backup compressed and deleted): whatever was written
    /// to them past that position was not read, and nothing can read it now.
    fn report_vanished(&self) {
        for entry in self.store.vanished() {
            self.emit.counters.vanished.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                path = %entry.path.display(),
                offset = entry.offset,
                "A file read before the agent stopped is gone; anything written to it past the saved offset was not read."
            );
        }
    }

    fn follow(&mut self) -> Stop {
        // The first scan just opened the files: read them now, not a
        // `poll_interval` later.
        let mut busy = true;
        loop {
            let mut rescan = false;
            let timeout = if busy {
                Duration::ZERO
            } else {
                self.settings.poll_interval
            };
            match self.wake.recv_timeout(timeout) {
                Ok(wake) => {
                    if self.on_wake(wake, &mut rescan) {
                        return Stop::Shutdown;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Stop::Shutdown,
            }
            while let Ok(wake) = self.wake.try_recv() {
                if self.on_wake(wake, &mut rescan) {
                    return Stop::Shutdown;
                }
            }
            if self.shutdown.is_cancelled() {
                return Stop::Shutdown;
            }
            if self.last_check.elapsed() >= self.settings.poll_interval {
                self.last_check = Instant::now();
                rescan |= self.check_files();
            }
            // A file waiting for a descriptor gets one as soon as an open
            // file goes idle, not a `refresh_interval` later.
            rescan |= self.waiting > 0 && self.files.iter().any(|f| self.is_idle(f));
            if rescan || self.last_scan.elapsed() >= self.settings.refresh_interval {
                self.scan();
            }
            match self.read_files() {
                Ok(more) => busy = more,
                Err(PipelineClosed) => return Stop::PipelineClosed,
            }
            if let Err(PipelineClosed) = self.emit.flush_joins(false) {
                return Stop::PipelineClosed;
            }
            if self.settings.stop_at_eof
                && !busy
                && self.waiting == 0
                && self.files.iter().all(TailedFile::is_read_to_end)
            {
                return Stop::AtEof;
            }
            if let Err(PipelineClosed) = self.release_finished() {
                return Stop::PipelineClosed;
            }
            self.save(false);
        }
    }

    /// Handles one wake-up; returns true on shutdown.
    fn on_wake(&mut self, wake: Wake, rescan: &mut bool) -> bool {
        match wake {
            Wake::Changed { rescan: r } => *rescan |= r,
            Wake::Acked {
                file,
                seq,
                bytes,
                end,
                status,
            } => {
                self.emit.release_budget(bytes);
                if let Some(f) = self.files.iter_mut().find(|f| f.ack_id == file) {
                    let was_frozen = f.window.is_frozen();
                    self.dirty |= f.window.settle(seq, status, end);
                    if status == BatchStatus::Failed && !was_frozen {
                        tracing::error!(path = %f.label(), "An output failed to deliver events from this file; its position stays before them, so they are read again after a restart.");
                    }
                }
            }
            Wake::Shutdown => return true,
        }
        false
    }

    /// Lists the globs: opens new files, notes files no longer found.
    fn scan(&mut self) {
        self.last_scan = Instant::now();
        let found = self.globs.scan();
        let unmatched = self.unmatched.update(
            self.stats.component(),
            &self.globs,
            &found.unmatched,
            self.last_scan,
        );
        self.emit
            .counters
            .unmatched_globs
            .store(unmatched as u64, Ordering::Relaxed);
        let mut waiting = 0;
        let mut dirs: HashSet<PathBuf> = found.dirs.iter().cloned().collect();
        for file in &mut self.files {
            file.matched = false;
        }
        // Known files first, so that every open file is marked as still at
        // its path before any is chosen to close for a new one.
        let mut new = Vec::new();
        for path in found.files {
            let Ok(meta) = fs::metadata(&path) else {
                continue;
            };
            if let Some(file) = self
                .files
                .iter_mut()
                .find(|f| f.dev == meta.dev() && f.ino == meta.ino())
            {
                if !file.matched && file.path != path {
                    tracing::debug!(from = %file.path.display(), to = %path.display(), "A file was renamed; still reading it.");
                    file.path = path;
                }
                file.matched = true;
            } else {
                new.push((path, meta));
            }
        }
        for (path, meta) in new {
            if self.files.len() >= self.settings.max_open_files {
                if self.store.is_parked_unchanged(&meta) {
                    // Closed while idle and still read to its end.
                    continue;
                }
                if !self.park_an_idle_file() {
                    let at_end = !self.scanned_once
                        && self.store.first_start
                        && matches!(self.settings.read_from, super::ReadFrom::End);
                    if !at_end || self.park_at_end(&path) {
                        waiting += 1;
                    }
                    continue;
                }
            }
            self.open(path);
        }
        if waiting > 0 && self.waiting == 0 {
            tracing::warn!(
                waiting,
                max_open_files = self.settings.max_open_files,
                "Files with unread data wait for a descriptor (`max_open_files`); they are opened as open files go idle."
            );
        }
        self.waiting = waiting;
        if self.started.elapsed() >= FORGET_UNCLAIMED_AFTER {
            self.store.forget_vanished();
        }
        // Symlinked files live elsewhere: watch where they really are too.
        dirs.extend(self.files.iter().filter_map(|f| f.real_dir.clone()));
        for dir in &dirs {
            self.watcher.watch(dir);
        }
        self.watcher.retain(&dirs);
        self.scanned_once = true;
    }

    /// Whether an open file could be closed to make room: still at its
    /// path, read to its end, acknowledged, and unchanged for `rotate_wait`.
    fn is_idle(&self, file: &TailedFile) -> bool {
        file.matched && file.is_drained() && file.last_change.elapsed() >= self.settings.rotate_wait
    }

    /// Closes the open file idle the longest, keeping its position for when
    /// it grows; returns false if no file is idle.
    fn park_an_idle_file(&mut self) -> bool {
        let Some(i) = (0..self.files.len())
            .filter(|&i| self.is_idle(&self.files[i]))
            .min_by_key(|&i| self.files[i].last_change)
        else {
            return false;
        };
        let file = self.close(i);
        // Without a modification time the file is opened again at every
        // scan, which is safe.
        let modified = file.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        self.store.park(
            file.position_entry(chrono::Utc::now().timestamp()),
            modified,
        );
        tracing::debug!(path = %file.label(), offset = file.window.committed(), "Closed an idle file to stay within `max_open_files`.");
        true
    }

    /// `read_from = "end"` on a first start holds for a file that has to
    /// wait for a descriptor too: its position is kept at its end, as if it
    /// had been opened and closed while idle. Returns whether it still has
    /// something to read (a partial last line, or it could not be opened).
    fn park_at_end(&mut self, path: &Path) -> bool {
        let parked = File::open(path).and_then(|file| {
            let meta = file.metadata()?;
            let entry = PositionEntry {
                path: path.to_owned(),
                dev: Some(meta.dev()),
                ino: meta.ino(),
                fingerprint: Some(Fingerprint::of(&file, meta.len())?),
                offset: end_of_last_line(&file, meta.len())?,
                updated: chrono::Utc::now().timestamp(),
            };
            let unread = entry.offset < meta.len();
            self.store.park(entry, meta.modified()?);
            Ok(unread)
        });
        parked.unwrap_or(true)
    }

    /// Starts reading a newly found file at its saved position, or where
    /// `read_from` says on a first start, or else at 0.
    fn open(&mut self, path: PathBuf) {
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "Could not open a file; trying again at the next scan.");
                return;
            }
        };
        let Ok(meta) = file.metadata() else {
            return;
        };
        // The path may have been replaced between the scan and the open: the
        // descriptor is the truth.
        if self
            .files
            .iter()
            .any(|f| f.dev == meta.dev() && f.ino == meta.ino())
        {
            return;
        }
        let offset = match self.start_offset(&path, &file, &meta) {
            Ok(offset) => offset,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "Could not read a file's first bytes; trying again at the next scan.");
                return;
            }
        };
        let id = self.next_id;
        self.next_id += 1;
        let tag = self.settings.tag.render(&path);
        match TailedFile::new(file, path, tag, id, offset) {
            Ok(file) => {
                tracing::info!(path = %file.label(), offset, "Following a file.");
                self.stats.update(file.stats_id, file.stats());
                self.files.push(file);
                self.dirty = true;
            }
            Err(e) => tracing::warn!(error = %e, "Could not start reading a file."),
        }
    }

    fn start_offset(
        &mut self,
        path: &Path,
        file: &File,
        meta: &fs::Metadata,
    ) -> std::io::Result<u64> {
        let size = meta.len();
        if let Some(saved) = self.store.claim(meta.dev(), meta.ino()) {
            let same = match saved.fingerprint {
                Some(fingerprint) => fingerprint.matches(file)?,
                // Imported fluentd positions have only the inode.
                None => true,
            };
            if same && saved.offset <= size {
                return Ok(saved.offset);
            }
            tracing::warn!(
                path = %path.display(),
                saved_offset = saved.offset,
                size,
                "A saved position does not fit this file (its inode was reused, or it was truncated while stopped); reading it from the start."
            );
            return Ok(0);
        }
        if self.scanned_once || !self.store.first_start {
            // Files that appear after the first scan, or that have no saved
            // position on a later start, are new: all of them is unread.
            return Ok(0);
        }
        match self.settings.read_from {
            super::ReadFrom::Head => Ok(0),
            super::ReadFrom::End => end_of_last_line(file, size),
        }
    }

    /// Stats every open file; returns whether a rescan is needed (a
    /// followed path now names another file, or is gone).
    fn check_files(&mut self) -> bool {
        let mut rescan = false;
        for i in 0..self.files.len() {
            let file = &mut self.files[i];
            match file.check() {
                Ok(Change::None) => {}
                Ok(Change::Truncated) => {
                    self.emit
                        .counters
                        .truncations
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        path = %file.label(),
                        read_offset = file.stats().read_offset,
                        size = file.size,
                        "A file was truncated or rewritten in place (copytruncate?); reading it again from the start. Lines written between the copy and the truncation may be lost."
                    );
                    let id = self.next_id;
                    self.next_id += 1;
                    if let Err(e) = file.restart(id) {
                        tracing::warn!(path = %file.label(), error = %e, "Could not restart a truncated file.");
                    }
                    self.dirty = true;
                }
                Err(e) => {
                    tracing::warn!(path = %file.label(), error = %e, "Could not stat an open file.");
                }
            }
            if file.matched {
                let here = fs::metadata(&file.path)
                    .is_ok_and(|m| m.dev() == file.dev && m.ino() == file.ino);
                rescan |= !here;
            }
            self.stats.update(file.stats_id, file.stats());
        }
        rescan
    }

    /// One round of reading over every file; returns whether some file may
    /// have more right now.
    fn read_files(&mut self) -> Result<bool, PipelineClosed> {
        let mut more = false;
        for file in &mut self.files {
            let before = file.stats();
            let outcome = file.read_some(&mut self.emit, READ_SHARE)?;
            if outcome == ReadOutcome::More {
                more = true;
            }
            let after = file.stats();
            if after != before {
                self.stats.update(file.stats_id, after);
            }
            if outcome == ReadOutcome::Blocked {
                break;
            }
        }
        Ok(more)
    }

    /// Lets go of files that are no longer at their path, read to the end,
    /// idle for `rotate_wait` and fully acknowledged.
    fn release_finished(&mut self) -> Result<(), PipelineClosed> {
        let rotate_wait = self.settings.rotate_wait;
        let max_deleted_hold = self.settings.max_deleted_hold;
        let mut i = 0;
        while i < self.files.len() {
            let file = &mut self.files[i];
            let held_too_long = file
                .deleted_since
                .is_some_and(|since| since.elapsed() >= max_deleted_hold);
            if held_too_long && !file.is_drained() {
                let file = self.close(i);
                self.abandon(&file);
                continue;
            }
            let idle = file.at_eof && file.last_change.elapsed() >= rotate_wait;
            if file.matched || !idle {
                i += 1;
                continue;
            }
            // A scan may have missed it (e.g. out of file descriptors): make
            // sure it is really gone from its path before letting go.
            if fs::metadata(&file.path).is_ok_and(|m| m.dev() == file.dev && m.ino() == file.ino)
                && self.globs.matches(&file.path)
            {
                file.matched = true;
                i += 1;
                continue;
            }
            if !file.finished {
                // Nothing will be appended any more: the last line is whole.
                file.flush_partial_line(&mut self.emit)?;
            }
            if !file.is_drained() {
                i += 1;
                continue;
            }
            let file = self.close(i);
            self.emit.counters.released.fetch_add(1, Ordering::Relaxed);
            tracing::info!(path = %file.label(), offset = file.window.committed(), deleted = file.links == 0, "Released a rotated or deleted file after reading it to the end.");
        }
        Ok(())
    }

    /// Stops following the `i`th open file: it leaves the saved positions,
    /// the stats, and the bad-line log (which may report it again if it
    /// returns).
    fn close(&mut self, i: usize) -> TailedFile {
        let file = self.files.swap_remove(i);
        self.emit.decode.forget(file.label());
        self.stats.remove(file.stats_id);
        self.dirty = true;
        file
    }

    /// Lets go of a deleted file whose events could not all be delivered
    /// within `max_deleted_hold`, so that its disk space comes back.
    fn abandon(&mut self, file: &TailedFile) {
        let stats = file.stats();
        let lost = stats.size.saturating_sub(stats.acked_offset);
        self.emit
            .counters
            .abandoned_bytes
            .fetch_add(lost, Ordering::Relaxed);
        tracing::error!(
            path = %file.label(),
            acked_offset = stats.acked_offset,
            size = stats.size,
            unacknowledged_bytes = lost,
            "Closed a deleted file after `max_deleted_hold` to free its disk space, before every output acknowledged it; events from its unacknowledged bytes may be lost."
        );
    }

    /// Shutdown: stop reading, optionally emit partial last lines, wait a
    /// bounded time for the outputs to acknowledge what was read.
    fn finish(&mut self) {
        // Legacy requests still waiting for their response are recorded with
        // what is known rather than lost.
        let _ = self.emit.flush_joins(true);
        if self.settings.emit_partial_at_shutdown {
            self.flush_partial_lines();
        }
        // The agent reports what stays unacknowledged when its shutdown
        // timeout passes; this source only saves what was acknowledged.
        let deadline = Instant::now() + self.settings.shutdown_ack_wait;
        if !self.wait_for_acks(Some(deadline)) {
            tracing::debug!(
                source = self.stats.component(),
                "Saving positions before every event read was acknowledged."
            );
        }
    }

    /// `stop_at_eof`: nothing more will be read, so a last line without a
    /// newline is whole. Wait for every acknowledgement (or a shutdown), so
    /// the positions saved next cover everything that was delivered.
    fn finish_at_eof(&mut self) {
        self.flush_partial_lines();
        // Legacy requests whose response never came will not get one now:
        // record them with what is known.
        let _ = self.emit.flush_joins(true);
        if self.wait_for_acks(None) {
            tracing::info!(
                files = self.files.len(),
                "Every file was read to its end and acknowledged; the tail source ends (`stop_at_eof`)."
            );
        } else {
            tracing::warn!(
                "Shut down before every event was acknowledged; those events are read again at the next start."
            );
        }
    }

    fn flush_partial_lines(&mut self) {
        for file in &mut self.files {
            if !file.finished && file.flush_partial_line(&mut self.emit).is_err() {
                break;
            }
        }
    }

    /// Applies acknowledgements until every file's window is settled (true),
    /// or the deadline passes; with no deadline, until a shutdown is asked
    /// for. A window an output failed stays frozen and is not waited for.
    fn wait_for_acks(&mut self, deadline: Option<Instant>) -> bool {
        let settled = |files: &[TailedFile]| {
            files
                .iter()
                .all(|f| f.window.is_idle() || f.window.is_frozen())
        };
        let acked = loop {
            if settled(&self.files) {
                break true;
            }
            let wait = match deadline {
                Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                    Some(left) => left,
                    None => break false,
                },
                // Wake up now and then to notice a shutdown.
                None if self.shutdown.is_cancelled() => break false,
                None => self.settings.poll_interval,
            };
            match self.wake.recv_timeout(wait) {
                Ok(wake) => {
                    let mut ignored = false;
                    let shutdown = self.on_wake(wake, &mut ignored);
                    // While shutting down already, a queued request changes nothing.
                    if shutdown && deadline.is_none() {
                        break false;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break false,
            }
        };
        for file in &self.files {
            self.stats.update(file.stats_id, file.stats());
        }
        acked
    }

    /// Writes positions if they changed and `position_flush_interval` has
    /// passed (or `force`).
    fn save(&mut self, force: bool) {
        if !self.dirty
            || (!force && self.last_save.elapsed() < self.settings.position_flush_interval)
        {
            return;
        }
        let now = chrono::Utc::now().timestamp();
        let entries: Vec<PositionEntry> =
            self.files.iter().map(|f| f.position_entry(now)).collect();
        self.last_save = Instant::now();
        match self.store.save(entries) {
            Ok(()) => {
                self.dirty = false;
                if self.save_failed {
                    self.save_failed = false;
                    tracing::info!(path = %self.store.path().display(), "Positions are saved again.");
                }
            }
            Err(e) => {
                self.emit.errors.inc();
                if !self.save_failed {
                    self.save_failed = true;
                    tracing::error!(error = %e, cause = %std::error::Error::source(&e).map(ToString::to_string).unwrap_or_default(), "Could not save positions; retrying. A crash now repeats events.");
                }
            }
        }
    }
}
