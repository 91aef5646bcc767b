//! Turning a file's lines into an event batch, off the reader thread. The
//! reader cuts lines into batches (in file order, each registered in the
//! file's ack window) and hands each to a decode job; stateless formats
//! (`json`, `text`) decode on the blocking pool in parallel, and one forwarder
//! task sends the finished batches into the pipeline in the order they were
//! cut, so a file's events keep their order.

use std::sync::{Arc, Mutex, PoisonError};

use chrono::Utc;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::stats::TailCounters;
use crate::event::{Ack, Event, EventBatch, Tag};
use crate::source::{BadLine, BadLineKind, BadLineLog, Decoder, EventSender, InputFormat, Line};
use std::sync::atomic::Ordering;

/// A batch on its way to the pipeline: decoded already, or being decoded.
pub(super) enum Job {
    Ready(EventBatch),
    Decoding(JoinHandle<EventBatch>),
}

/// What decoding needs, shared by the reader and the decode jobs.
pub(super) struct DecodeShared {
    /// The source's decoder. Stateless formats clone it per job; others use
    /// it in place on the reader thread, in order.
    pub(super) decoder: Mutex<Decoder>,
    /// Whether lines decode independently of each other.
    pub(super) parallel: bool,
    pub(super) bad_lines: Mutex<BadLineLog>,
    pub(super) counters: Arc<TailCounters>,
    pub(super) max_line_size: usize,
    /// The tag of the last batch decoded in place, for legacy joins emitted
    /// later by [`DecodeShared::flush_joins`].
    last_tag: Mutex<Option<Tag>>,
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
        }
    }

    /// Starts decoding one batch; `ack` is the batch's acknowledgement.
    pub(super) fn job(
        self: &Arc<Self>,
        runtime: &tokio::runtime::Handle,
        lines: Vec<Line>,
        tag: Tag,
        label: Arc<str>,
        ack: Ack,
    ) -> Job {
        if self.parallel {
            let shared = Arc::clone(self);
            let mut decoder = shared
                .decoder
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            Job::Decoding(
                runtime
                    .spawn_blocking(move || shared.decode(&mut decoder, lines, &tag, &label, ack)),
            )
        } else {
            let mut decoder = self.decoder.lock().unwrap_or_else(PoisonError::into_inner);
            *self.last_tag.lock().unwrap_or_else(PoisonError::into_inner) = Some(tag.clone());
            Job::Ready(self.decode(&mut decoder, lines, &tag, &label, ack))
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
        lines: Vec<Line>,
        tag: &Tag,
        label: &str,
        ack: Ack,
    ) -> EventBatch {
        let now = Utc::now();
        // The batch's events share a tag of their own: its reference count
        // then stays in this core's cache, instead of one count for the
        // whole file bouncing between the cores that make and drop events.
        let tag = Tag::new(tag.as_str());
        let mut events = Vec::with_capacity(lines.len());
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
            Job::Decoding(handle) => match handle.await {
                Ok(batch) => batch,
                // A panicking job dropped its ack: the batch counts as failed
                // and its position stays before it.
                Err(e) => {
                    tracing::error!(error = %e, "A decode job failed.");
                    continue;
                }
            },
        };
        if !batch.is_empty() && out.send(batch).await.is_err() {
            break;
        }
    }
}
