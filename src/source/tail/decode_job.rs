//! Decode jobs: each reads one byte range of a file, cuts it into lines
//! (see `carry.rs`) and decodes them into an event batch, off the reader
//! thread. Reading in the jobs puts the kernel's copy of the file on every
//! core rather than on the reader alone. Stateless formats (`json`, `text`)
//! decode in parallel on one thread per core; formats that join lines decode
//! on the reader thread, in file order. One forwarder task sends the
//! finished batches into the pipeline in the order the ranges were cut, so a
//! file's events keep their order.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use chrono::Utc;
use tokio::sync::{mpsc, oneshot};

use super::carry::{Carry, whole_lines};
use super::stats::TailCounters;
use crate::event::{Ack, Event, EventBatch, Tag};
use crate::source::{
    BadLine, BadLineKind, BadLineLog, Decoder, EventSender, InputFormat, Line, buffer_pool,
};

/// No resume offset asked for (see [`RangeJob::resume`]).
pub(super) const NO_RESUME: u64 = u64::MAX;

/// One byte range of a file to read, cut and decode.
pub(super) struct RangeJob {
    pub(super) file: Arc<File>,
    pub(super) offset: u64,
    /// 0 for a job that only finishes the carried line.
    pub(super) len: usize,
    /// Nothing follows this range: the carried line is whole.
    pub(super) finish: bool,
    /// The unfinished line of the ranges before, from the job before.
    pub(super) previous: Receiver<Carry>,
    /// Where this job hands its unfinished line on.
    pub(super) next: SyncSender<Carry>,
    pub(super) tag: Tag,
    pub(super) label: Arc<str>,
    pub(super) ack: Ack,
    /// Set before the batch is acknowledged: the offset just past its last
    /// line, where the position may move once it is delivered.
    pub(super) end: Arc<AtomicU64>,
    /// Set (from [`NO_RESUME`]) when the range came back short: the offset
    /// at which the reader starts cutting again.
    pub(super) resume: Arc<AtomicU64>,
}

/// A batch on its way to the pipeline: decoded already, or being decoded.
pub(super) enum Job {
    Ready(EventBatch),
    Decoding(oneshot::Receiver<EventBatch>),
}

/// A job for the decode workers, and where its batch goes.
pub(super) type Work = (RangeJob, oneshot::Sender<EventBatch>);

/// What decoding needs, shared by the reader and the decode jobs.
pub(super) struct DecodeShared {
    /// The source's decoder. Stateless formats clone it per job; others use
    /// it in place on the reader thread.
    pub(super) decoder: Mutex<Decoder>,
    /// Whether lines decode independently of each other. Formats that join
    /// lines decode on the reader thread, in file order, so that a flush of
    /// waiting joins there comes after every line read before it.
    pub(super) parallel: bool,
    pub(super) bad_lines: Mutex<BadLineLog>,
    pub(super) counters: Arc<TailCounters>,
    pub(super) max_line_size: usize,
    /// The tag of the last batch decoded in place, for legacy joins emitted
    /// later by [`DecodeShared::flush_joins`].
    last_tag: Mutex<Option<Tag>>,
    /// Events in the last batch decoded.
    last_batch_len: AtomicUsize,
}

impl DecodeShared {
    pub(super) fn new(
        decoder: Decoder,
        format: InputFormat,
        bad_lines: BadLineLog,
        counters: Arc<TailCounters>,
        max_line_size: usize,
    ) -> Self {
        Self {
            decoder: Mutex::new(decoder),
            // Formats that join lines (e.g. a two-line legacy format) must
            // see them in order, on one thread.
            parallel: matches!(format, InputFormat::Json | InputFormat::Text),
            bad_lines: Mutex::new(bad_lines),
            counters,
            max_line_size,
            last_tag: Mutex::new(None),
            last_batch_len: AtomicUsize::new(0),
        }
    }

    /// Starts `count` decode threads taking jobs in the order they were
    /// queued, so a job's predecessor in its file's hand-off chain is always
    /// taken first. One thread per core keeps the cores busy without
    /// crowding out the pipeline's own threads, which a job per
    /// blocking-pool thread did. A panicking job drops its reply and its
    /// ack: the forwarder reports it and the batch counts as failed.
    pub(super) fn start_workers(
        self: &Arc<Self>,
        count: usize,
    ) -> std::io::Result<std::sync::mpsc::Sender<Work>> {
        crate::worker_pool::start("tail-decode", count, || {
            let shared = Arc::clone(self);
            move |(job, reply): Work| {
                let _ = reply.send(shared.run(job));
            }
        })
    }

    /// Reads, cuts and decodes one range: on a decode thread for stateless
    /// formats, else in place on the reader thread (see [`Self::parallel`]).
    pub(super) fn run(&self, job: RangeJob) -> EventBatch {
        let read = if job.len == 0 {
            Ok(Bytes::new())
        } else {
            read_range(&job.file, job.offset, job.len)
        };
        let Ok(mut carry) = job.previous.recv() else {
            // The job before died, and its unfinished line with it: this
            // batch fails, so the position stays before it.
            tracing::error!(path = %job.label, offset = job.offset, "A decode job before this range failed; its events are read again after a restart.");
            return Vec::new();
        };
        let range = read.unwrap_or_else(|e| {
            tracing::warn!(path = %job.label, offset = job.offset, error = %e, "Reading a file failed; retrying later.");
            Bytes::new()
        });
        let short = range.len() < job.len;
        let cut = carry.cut(range, job.offset, self.max_line_size);
        if short && !carry.is_broken() {
            carry.break_chain();
            job.resume.store(carry.line_start(), Ordering::Release);
        }
        let finished = if job.finish { carry.finish() } else { None };
        job.end.store(carry.line_start(), Ordering::Release);
        let lines = cut
            .first
            .into_iter()
            .chain(whole_lines(
                &cut.whole,
                cut.whole_offset,
                self.max_line_size,
            ))
            .chain(cut.last)
            .chain(finished);
        // The next job needs only where this range's lines end.
        let _ = job.next.send(carry);
        if self.parallel {
            let mut decoder = self
                .decoder
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            self.decode(&mut decoder, lines, &job.tag, &job.label, job.ack)
        } else {
            let mut decoder = self.decoder.lock().unwrap_or_else(PoisonError::into_inner);
            *self.last_tag.lock().unwrap_or_else(PoisonError::into_inner) = Some(job.tag.clone());
            self.decode(&mut decoder, lines, &job.tag, &job.label, job.ack)
        }
    }

    /// Legacy requests whose response line did not come within `join_timeout`
    /// (every waiting one with `all`, at shutdown), as a batch with the tag of
    /// the last batch decoded. Each carries the acknowledgement of its lines'
    /// batches, held by the decoder until now.
    pub(super) fn flush_joins(&self, all: bool) -> EventBatch {
        let mut decoder = self.decoder.lock().unwrap_or_else(PoisonError::into_inner);
        if self.parallel || !decoder.joins_lines() {
            return Vec::new();
        }
        let mut decoded = Vec::new();
        if all {
            decoder.flush_all(&mut decoded);
        } else {
            decoder.flush_expired(Utc::now(), &mut decoded);
        }
        let Some(tag) = self
            .last_tag
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        else {
            return Vec::new();
        };
        decoded
            .into_iter()
            .map(|d| Event::new(tag.clone(), d.time, d.record, d.joined))
            .collect()
    }

    fn decode(
        &self,
        decoder: &mut Decoder,
        lines: impl Iterator<Item = Line>,
        tag: &Tag,
        label: &str,
        ack: Ack,
    ) -> EventBatch {
        let now = Utc::now();
        // The batch's events share a tag of their own: its reference count
        // then stays in this core's cache, instead of one count for the
        // whole file bouncing between the cores that make and drop events.
        let tag = Tag::new(tag.as_str());
        // Sized for a batch like the last one, so pushing rarely regrows
        // (within reason: a range of tiny lines makes a huge batch).
        let expected = self.last_batch_len.load(Ordering::Relaxed).min(8192);
        let mut events = Vec::with_capacity(expected + expected / 8);
        let mut decoded = Vec::new();
        for line in lines {
            let (offset, bad) = match line {
                Line::Complete { bytes, offset } => {
                    let bad = decoder.decode_in_batch(bytes, now, &ack, &mut decoded);
                    (offset, bad.err())
                }
                Line::TooLong { offset } => (
                    offset,
                    Some(BadLine::new(
                        BadLineKind::TooLong,
                        format!("line over `max_line_size` ({} bytes)", self.max_line_size),
                    )),
                ),
            };
            for d in decoded.drain(..) {
                // A joined legacy request also holds its request line's batch.
                let ack = ack.clone().join(d.joined);
                events.push(Event::new(tag.clone(), d.time, d.record, ack));
            }
            if let Some(bad) = bad {
                self.counters.bad_lines.fetch_add(1, Ordering::Relaxed);
                self.bad_lines
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .record(label, offset, &bad);
            }
        }
        self.last_batch_len.store(events.len(), Ordering::Relaxed);
        // The batch's own handle is not an output's copy: it is settled, so
        // a batch of only bad lines counts as delivered.
        ack.settle();
        events
    }

    /// A file was let go: its bad lines may be logged again if it returns.
    pub(super) fn forget(&self, label: &str) {
        self.bad_lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .forget(label);
    }
}

/// Sends finished batches into the pipeline in the order they were cut.
pub(super) async fn forward(mut jobs: mpsc::Receiver<Job>, out: EventSender) {
    while let Some(job) = jobs.recv().await {
        let batch = match job {
            Job::Ready(batch) => batch,
            Job::Decoding(reply) => match reply.await {
                Ok(batch) => batch,
                // A panicking job dropped its ack: the batch counts as failed
                // and its position stays before it.
                Err(_) => {
                    tracing::error!("A decode job failed.");
                    continue;
                }
            },
        };
        if !batch.is_empty() && out.send(batch).await.is_err() {
            break;
        }
    }
}

/// Reads `len` bytes at `offset` into a pooled buffer; fewer only if the
/// file ends first.
fn read_range(file: &File, offset: u64, len: usize) -> io::Result<Bytes> {
    let mut buf = buffer_pool::take(len);
    let mut filled = 0;
    while filled < len {
        match file.read_at(&mut buf[filled..len], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                buffer_pool::recycle(buf);
                return Err(e);
            }
        }
    }
    Ok(buffer_pool::into_bytes(buf, filled))
}
