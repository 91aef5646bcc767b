//! One open file of a tail source: cuts what it holds into byte ranges and
//! hands each to a decode job that reads it from the open descriptor (so a
//! renamed or deleted file is still read to its end), as an acknowledged
//! batch. Only complete lines are consumed: a partial last line waits for
//! its newline, so a saved position never points into the middle of a line.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, sync_channel};
use std::time::Instant;

use super::carry::Carry;
use super::decode_job::{DecodeShared, Job, NO_RESUME, RangeJob, Work};
use super::fingerprint::Fingerprint;
use super::position::PositionEntry;
use super::stats::{FileStats, TailCounters};
use super::watch::Wake;
use super::window::AckWindow;
use crate::event::{Ack, Tag};
use crate::source::PipelineClosed;

/// Bytes per range (one decode job, one batch): big enough that the cost of
/// a job is small next to its decoding, small enough to keep both cores busy
/// within the unacknowledged budget.
const RANGE_SIZE: usize = 1 << 20;

/// What reading needs besides the file: where batches go and the budget of
/// unacknowledged bytes shared by every file of the source.
pub(super) struct Emitter {
    /// Batches in the order they were cut, to the forwarder.
    jobs: tokio::sync::mpsc::Sender<Job>,
    pub(super) decode: Arc<DecodeShared>,
    /// The decode threads' queue.
    workers: Sender<Work>,
    pub(super) counters: Arc<TailCounters>,
    /// The reader's wake-ups, where acknowledgements report.
    wake: Sender<Wake>,
    /// Bytes handed out and not yet acknowledged, of every file.
    unacked: u64,
    max_unacked: u64,
    /// The component's error counter (failed position writes).
    pub(super) errors: prometheus_client::metrics::counter::Counter,
}

impl Emitter {
    pub(super) fn new(
        jobs: tokio::sync::mpsc::Sender<Job>,
        decode: Arc<DecodeShared>,
        workers: Sender<Work>,
        wake: Sender<Wake>,
        max_unacked: u64,
        errors: prometheus_client::metrics::counter::Counter,
    ) -> Self {
        Self {
            jobs,
            counters: Arc::clone(&decode.counters),
            decode,
            workers,
            wake,
            unacked: 0,
            max_unacked,
            errors,
        }
    }

    /// Sends legacy joins that timed out (or all of them, at shutdown).
    pub(super) fn flush_joins(&self, all: bool) -> Result<(), PipelineClosed> {
        let batch = self.decode.flush_joins(all);
        if batch.is_empty() {
            return Ok(());
        }
        self.jobs
            .blocking_send(Job::Ready(batch))
            .map_err(|_| PipelineClosed)
    }

    /// A sender for the reader's wake-ups.
    pub(super) fn waker(&self) -> Sender<Wake> {
        self.wake.clone()
    }

    pub(super) fn over_budget(&self) -> bool {
        self.unacked >= self.max_unacked
    }

    /// An `Acked` wake-up arrived: the bytes are no longer in flight.
    pub(super) fn release_budget(&mut self, bytes: u64) {
        self.unacked = self.unacked.saturating_sub(bytes);
        self.counters
            .unacked_bytes
            .store(self.unacked, Ordering::Relaxed);
    }
}

/// How a read step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ReadOutcome {
    /// Reached the end of what the file holds now.
    Eof,
    /// Read its share for this round; there may be more.
    More,
    /// Too much is unacknowledged: wait for the outputs.
    Blocked,
    /// The read failed (logged); try again later.
    Failed,
}

/// What a stat of the open descriptor showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Change {
    None,
    /// Smaller than what was read, or the first bytes changed
    /// (copytruncate, truncation, rewrite in place): read again from 0.
    Truncated,
}

/// One file being read.
pub(super) struct TailedFile {
    /// Id for routing acknowledgements; a new one after truncation, so late
    /// acks for the old content cannot move the new content's position.
    pub(super) ack_id: u64,
    /// Id for [`super::TailStats`]; stable while the file is open.
    pub(super) stats_id: u64,
    pub(super) dev: u64,
    pub(super) ino: u64,
    /// The path it was last found at.
    pub(super) path: PathBuf,
    /// Directory of the file itself (behind symlinks), watched for changes.
    pub(super) real_dir: Option<PathBuf>,
    pub(super) tag: Tag,
    /// Shared with the decode jobs reading its ranges.
    file: Arc<File>,
    pub(super) fingerprint: Fingerprint,
    /// Where the next decode job gets the unfinished line of the ranges
    /// handed out before.
    chain: Receiver<Carry>,
    /// Set by a job whose range came back short: where cutting starts over.
    resume: Arc<AtomicU64>,
    /// Offset of the next byte to hand out.
    read_pos: u64,
    pub(super) window: AckWindow,
    /// Seen at its path at the last scan.
    pub(super) matched: bool,
    /// The last read found no more data.
    pub(super) at_eof: bool,
    /// When data last arrived (or the file was opened).
    pub(super) last_change: Instant,
    /// Size at the last stat.
    pub(super) size: u64,
    /// Link count at the last stat: 0 once deleted.
    pub(super) links: u64,
    /// When a stat first found it deleted.
    pub(super) deleted_since: Option<Instant>,
    bytes_read: u64,
    /// The final partial line was emitted (or counted); nothing follows.
    pub(super) finished: bool,
    /// Path as text, for logs and bad-line reports.
    label: Arc<str>,
}

impl TailedFile {
    /// Wraps an open file, to be read from `offset` (a line start).
    pub(super) fn new(
        file: File,
        path: PathBuf,
        tag: Tag,
        ack_id: u64,
        offset: u64,
    ) -> io::Result<Self> {
        let meta = file.metadata()?;
        let fingerprint = Fingerprint::of(&file, meta.len())?;
        Ok(Self {
            ack_id,
            stats_id: ack_id,
            dev: meta.dev(),
            ino: meta.ino(),
            label: Arc::from(path.display().to_string()),
            real_dir: std::fs::canonicalize(&path)
                .ok()
                .and_then(|p| p.parent().map(std::path::Path::to_owned)),
            path,
            tag,
            file: Arc::new(file),
            fingerprint,
            chain: chain_from(offset),
            resume: Arc::new(AtomicU64::new(NO_RESUME)),
            read_pos: offset,
            window: AckWindow::new(offset),
            matched: true,
            at_eof: false,
            last_change: Instant::now(),
            size: meta.len(),
            links: meta.nlink(),
            deleted_since: None,
            bytes_read: 0,
            finished: false,
        })
    }

    pub(super) fn label(&self) -> &str {
        &self.label
    }

    /// Everything the file held at the last stat was read and acknowledged.
    pub(super) fn is_drained(&self) -> bool {
        self.is_read_to_end() && self.window.is_idle()
    }

    /// The last read found the end, and nothing was seen beyond it since.
    pub(super) fn is_read_to_end(&self) -> bool {
        self.at_eof && self.read_pos >= self.size
    }

    /// The open file's modification time.
    pub(super) fn modified(&self) -> io::Result<std::time::SystemTime> {
        self.file.metadata()?.modified()
    }

    /// Its saved position: the end of what every output acknowledged.
    pub(super) fn position_entry(&self, updated: i64) -> PositionEntry {
        PositionEntry {
            path: self.path.clone(),
            dev: Some(self.dev),
            ino: self.ino,
            fingerprint: Some(self.fingerprint),
            offset: self.window.committed(),
            updated,
        }
    }

    pub(super) fn stats(&self) -> FileStats {
        FileStats {
            path: self.path.clone(),
            size: self.size.max(self.read_pos),
            read_offset: self.read_pos,
            acked_offset: self.window.committed(),
            bytes_read: self.bytes_read,
        }
    }

    /// Stats the open descriptor: size, links, truncation, and a changed
    /// beginning (copytruncate that grew past our offset before we looked).
    pub(super) fn check(&mut self) -> io::Result<Change> {
        let meta = self.file.metadata()?;
        let size = meta.len();
        self.links = meta.nlink();
        if self.links == 0 && self.deleted_since.is_none() {
            self.deleted_since = Some(Instant::now());
        }
        let previous = self.size;
        self.size = size;
        if size < self.read_pos {
            return Ok(Change::Truncated);
        }
        if size != previous || self.fingerprint.is_provisional(size) {
            if !self.fingerprint.matches(&self.file)? {
                return Ok(Change::Truncated);
            }
            if self.fingerprint.is_provisional(size) {
                self.fingerprint = Fingerprint::of(&self.file, size)?;
            }
        }
        if size != previous {
            self.last_change = Instant::now();
        }
        Ok(Change::None)
    }

    /// Starts over at byte 0 (after truncation); acks still in flight for
    /// the old content are routed to `new_ack_id`, i.e. nowhere.
    pub(super) fn restart(&mut self, new_ack_id: u64) -> io::Result<()> {
        self.ack_id = new_ack_id;
        self.chain = chain_from(0);
        self.resume = Arc::new(AtomicU64::new(NO_RESUME));
        self.read_pos = 0;
        self.window = AckWindow::new(0);
        self.fingerprint = Fingerprint::of(&self.file, self.size)?;
        self.at_eof = false;
        self.finished = false;
        self.last_change = Instant::now();
        Ok(())
    }

    /// Hands out up to about `budget` bytes in ranges.
    pub(super) fn read_some(
        &mut self,
        emit: &mut Emitter,
        budget: u64,
    ) -> Result<ReadOutcome, PipelineClosed> {
        let resume = self.resume.swap(NO_RESUME, Ordering::Acquire);
        if resume != NO_RESUME {
            // A range came back short: the file shrank (the next check sees
            // it) or a read failed. Cut again from the last whole line.
            self.read_pos = resume;
            self.chain = chain_from(resume);
            return Ok(ReadOutcome::Failed);
        }
        let mut handed_out = 0u64;
        loop {
            if emit.over_budget() {
                return Ok(ReadOutcome::Blocked);
            }
            if handed_out >= budget {
                return Ok(ReadOutcome::More);
            }
            let size = match self.file.metadata() {
                Ok(meta) => meta.len(),
                Err(e) => {
                    tracing::warn!(path = %self.label, error = %e, "Could not stat an open file; retrying later.");
                    return Ok(ReadOutcome::Failed);
                }
            };
            if self.read_pos >= size {
                self.at_eof = true;
                return Ok(ReadOutcome::Eof);
            }
            let len =
                usize::try_from(size - self.read_pos).map_or(RANGE_SIZE, |n| n.min(RANGE_SIZE));
            self.at_eof = false;
            self.finished = false;
            self.last_change = Instant::now();
            self.bytes_read += len as u64;
            emit.counters
                .bytes_read
                .fetch_add(len as u64, Ordering::Relaxed);
            handed_out += len as u64;
            self.size = self.size.max(size);
            self.hand_out(emit, len, false)?;
        }
    }

    /// Hands the unterminated last line on as if it were complete: at
    /// shutdown when configured, or when a rotated file is let go.
    pub(super) fn flush_partial_line(&mut self, emit: &mut Emitter) -> Result<(), PipelineClosed> {
        self.finished = true;
        self.hand_out(emit, 0, true)
    }

    /// Starts a decode job for the `len` bytes at the read position, as one
    /// acknowledged batch registered in the window.
    fn hand_out(
        &mut self,
        emit: &mut Emitter,
        len: usize,
        finish: bool,
    ) -> Result<(), PipelineClosed> {
        let offset = self.read_pos;
        self.read_pos += len as u64;
        let (next, chain) = sync_channel(1);
        let previous = std::mem::replace(&mut self.chain, chain);
        let seq = self.window.push();
        emit.unacked += len as u64;
        emit.counters
            .unacked_bytes
            .store(emit.unacked, Ordering::Relaxed);
        let end = Arc::new(AtomicU64::new(0));
        let wake = emit.wake.clone();
        let file = self.ack_id;
        let batch_end = Arc::clone(&end);
        // The reader thread learns the outcome as a wake-up, sent by
        // whichever thread settles the batch's last share.
        let ack = Ack::batch_then(move |status| {
            let _ = wake.send(Wake::Acked {
                file,
                seq,
                bytes: len as u64,
                end: batch_end.load(Ordering::Acquire),
                status,
            });
        });
        let job = RangeJob {
            file: Arc::clone(&self.file),
            offset,
            len,
            finish,
            previous,
            next,
            tag: self.tag.clone(),
            label: Arc::clone(&self.label),
            ack,
            end,
            resume: Arc::clone(&self.resume),
        };
        let job = if emit.decode.parallel {
            let (reply, batch) = tokio::sync::oneshot::channel();
            emit.workers
                .send((job, reply))
                .map_err(|_| PipelineClosed)?;
            Job::Decoding(batch)
        } else {
            Job::Ready(emit.decode.run(job))
        };
        emit.jobs.blocking_send(job).map_err(|_| PipelineClosed)
    }
}

/// A hand-off chain whose first job cuts lines from `offset`.
fn chain_from(offset: u64) -> Receiver<Carry> {
    let (first, chain) = sync_channel(1);
    // The receiver is right here: the send cannot fail.
    let _ = first.send(Carry::at(offset));
    chain
}

/// Where reading starts with `read_from = "end"`: just past the last
/// newline, so a line being written is read whole once it is complete.
pub(super) fn end_of_last_line(file: &File, size: u64) -> io::Result<u64> {
    const WINDOW: u64 = 64 * 1024;
    let start = size.saturating_sub(WINDOW);
    let mut buf = vec![0; usize::try_from(size - start).unwrap_or(0)];
    let n = file.read_at(&mut buf, start)?;
    buf.truncate(n);
    Ok(match memchr::memrchr(b'\n', &buf) {
        Some(i) => start + i as u64 + 1,
        None if start == 0 => 0,
        None => size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn end_of_last_line_skips_a_partial_line() {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"a\nbb\ncc").unwrap();
        assert_eq!(end_of_last_line(&file, 7).unwrap(), 5);
        assert_eq!(end_of_last_line(&file, 5).unwrap(), 5);
        assert_eq!(end_of_last_line(&file, 1).unwrap(), 0);
        assert_eq!(end_of_last_line(&file, 0).unwrap(), 0);
    }
}
