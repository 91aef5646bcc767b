//! The file output's bookkeeping, one entry per rendered path: lines
//! waiting for their flush, the acks they carry, the job in flight, retry
//! state after a failed append, and the open descriptor (bounded by
//! `max_open_files`, least recently used closed first, idle ones closed
//! after `idle_timeout`). Acks are settled only when the append that holds
//! their lines has succeeded.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;

use super::worker::{Done, Job, Slot};
use crate::event::{Ack, Event};
use crate::metrics::ComponentMetrics;

/// First retry delay after a failed append; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A time-sliced file is closed once events this far past its slice arrive.
const SLICE_GRACE_SECONDS: i64 = 60;
/// Lengths of cleanly closed files remembered to skip rescans on reopen.
const MAX_REMEMBERED_LENGTHS: usize = 65_536;

/// Flushing and resource limits.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    pub(crate) flush_bytes: usize,
    pub(crate) flush_interval: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_open_files: usize,
    /// Distinct files at most; events for more go to `overflow_path`.
    pub(crate) max_files: usize,
    pub(crate) overflow_path: String,
    pub(crate) max_in_flight: usize,
    /// Stop taking input beyond this many buffered bytes (backpressure).
    pub(crate) max_buffered: usize,
    /// Past this many buffered bytes every file is flushed, not only the
    /// full ones: a source's batch spans many files and is acknowledged only
    /// once all of them are written, so a quiet file must not hold it back
    /// for a whole `flush_interval`.
    pub(crate) flush_all_bytes: usize,
    /// Time-slice length of the path template, if it has one.
    pub(crate) slice_seconds: Option<i64>,
}

/// Lines for one append of at most about `flush_bytes`, with their acks.
struct Chunk {
    data: Vec<u8>,
    acks: Vec<Ack>,
    events: u64,
}

struct Entry {
    /// `None` while a job for this file is in flight.
    slot: Option<Slot>,
    /// Oldest first; each is appended as one gzip member.
    chunks: VecDeque<Chunk>,
    first_pending: Option<Instant>,
    in_flight: Option<InFlight>,
    retry_at: Option<Instant>,
    backoff: Duration,
    last_used: u64,
    last_write: Instant,
    /// End (Unix seconds) of the latest time slice written to this file.
    slice_end: i64,
    queued: bool,
}

struct InFlight {
    acks: Vec<Ack>,
    events: u64,
    bytes: usize,
    /// When the write job was handed to a worker, for the latency histogram.
    started: Instant,
}

/// Every file the output is writing.
pub(crate) struct OpenFiles {
    entries: HashMap<Arc<str>, Entry>,
    limits: Limits,
    ready: VecDeque<Arc<str>>,
    open_fds: usize,
    in_flight: usize,
    buffered: usize,
    clock: u64,
    remembered: HashMap<PathBuf, u64>,
    failing: usize,
    failures_in_episode: u64,
    max_event_seconds: i64,
    draining: bool,
    metrics: ComponentMetrics,
    latency: Histogram,
    batch_sizes: Histogram,
    unsafe_paths: Counter,
    warned_unsafe: bool,
    /// Events written to the overflow file (`max_files`), and whether that
    /// is happening now (warned once per episode).
    overflowed: Counter,
    overflowing: bool,
    /// Emptied chunk buffers kept for reuse.
    spare: Vec<Vec<u8>>,
}

/// Spare buffers kept at most.
const MAX_SPARE: usize = 16;

impl OpenFiles {
    pub(crate) fn new(limits: Limits, metrics: ComponentMetrics) -> Self {
        Self {
            entries: HashMap::new(),
            limits,
            ready: VecDeque::new(),
            open_fds: 0,
            in_flight: 0,
            buffered: 0,
            clock: 0,
            remembered: HashMap::new(),
            failing: 0,
            failures_in_episode: 0,
            max_event_seconds: i64::MIN,
            draining: false,
            unsafe_paths: metrics.dropped("unsafe_path"),
            latency: metrics.latency(),
            batch_sizes: metrics.batch_sizes(),
            overflowed: metrics.metrics().component_counter(
                "file_overflow_events",
                "Events a file output wrote to its overflow file because it had max_files files",
                &metrics.name,
            ),
            overflowing: false,
            metrics,
            warned_unsafe: false,
            spare: Vec::new(),
        }
    }

    /// Bytes taken from the input and not yet written.
    pub(crate) fn buffered(&self) -> usize {
        self.buffered
    }

    /// Open descriptors right now (including files being written).
    pub(crate) fn open_fds(&self) -> usize {
        self.open_fds
    }

    /// Whether there is nothing left to write.
    pub(crate) fn is_empty(&self) -> bool {
        self.buffered == 0 && self.in_flight == 0
    }

    /// From now on every pending line is flushed at once (the input ended).
    pub(crate) fn drain(&mut self) {
        self.draining = true;
    }

    /// Queues one event's line for the file at `path` (already rendered).
    /// `path_ok` false drops the event as an unsafe path.
    pub(crate) fn add(&mut self, path: &str, path_ok: bool, event: Event, now: Instant) {
        if !path_ok {
            if !self.warned_unsafe {
                tracing::warn!(
                    "Dropped an event whose rendered path would leave the output's base directory; further ones are only counted."
                );
                self.warned_unsafe = true;
            }
            self.unsafe_paths.inc();
            event.ack.settle();
            return;
        }
        self.clock += 1;
        let path = if self.entries.len() >= self.limits.max_files
            && !self.entries.contains_key(path)
            && path != self.limits.overflow_path
        {
            self.overflowed.inc();
            if !self.overflowing {
                self.overflowing = true;
                tracing::warn!(
                    max_files = self.limits.max_files,
                    overflow_path = %self.limits.overflow_path,
                    "An output has as many files as `max_files`: events for further files go to its overflow file until some close."
                );
            }
            std::borrow::Cow::Owned(self.limits.overflow_path.clone())
        } else {
            std::borrow::Cow::Borrowed(path)
        };
        let path = &*path;
        let entry = match self.entries.get_mut(path) {
            Some(entry) => entry,
            None => {
                let key: Arc<str> = Arc::from(path);
                let trusted = self.remembered.remove(std::path::Path::new(path));
                let slot = Slot::new(PathBuf::from(path), trusted);
                self.entries
                    .entry(key)
                    .or_insert_with(|| Entry::new(slot, now))
            }
        };
        let flush_bytes = self.limits.flush_bytes;
        if entry
            .chunks
            .back()
            .is_none_or(|c| c.data.len() >= flush_bytes)
        {
            let data = self.spare.pop().unwrap_or_default();
            entry.chunks.push_back(Chunk {
                data,
                acks: Vec::new(),
                events: 0,
            });
        }
        let chunk = entry.chunks.back_mut().expect("just ensured");
        let before = chunk.data.len();
        event.record.write_json(&mut chunk.data);
        chunk.data.push(b'\n');
        self.buffered += chunk.data.len() - before;
        chunk.events += 1;
        if event.ack.is_tracked() {
            chunk.acks.push(event.ack);
        } else {
            event.ack.settle();
        }
        let full = chunk.data.len() >= flush_bytes;
        entry.last_used = self.clock;
        entry.first_pending.get_or_insert(now);
        if let Some(slice) = self.limits.slice_seconds {
            let t = event.time.timestamp();
            entry.slice_end = entry.slice_end.max(t - t.rem_euclid(slice) + slice);
            self.max_event_seconds = self.max_event_seconds.max(t);
        }
        if full && !entry.queued {
            entry.queued = true;
            self.ready.push_back(Arc::clone(
                self.entries
                    .get_key_value(path)
                    .expect("the entry was just used")
                    .0,
            ));
        }
    }

    /// Jobs that are due now: full buffers at once, others after
    /// `flush_interval`, failed ones after their backoff. `scan_all` looks
    /// at every file (on the timer), otherwise only at full ones.
    pub(crate) fn next_jobs(&mut self, now: Instant, scan_all: bool, out: &mut Vec<Job>) {
        if scan_all {
            let pressure = self.buffered >= self.limits.flush_all_bytes;
            for (key, entry) in &mut self.entries {
                if !entry.queued && entry.is_due(now, &self.limits, self.draining || pressure) {
                    entry.queued = true;
                    self.ready.push_back(Arc::clone(key));
                }
            }
        }
        let mut waiting = VecDeque::new();
        while let Some(key) = self.ready.pop_front() {
            if self.in_flight >= self.limits.max_in_flight {
                waiting.push_back(key);
                continue;
            }
            let Some(entry) = self.entries.get_mut(&key) else {
                continue;
            };
            entry.queued = false;
            let retry_due = entry.retry_at.is_none_or(|t| t <= now);
            if entry.slot.is_none() || entry.chunks.is_empty() || !retry_due {
                continue;
            }
            let needs_fd = entry.slot.as_ref().is_some_and(|s| s.file.is_none());
            if needs_fd {
                if self.open_fds >= self.limits.max_open_files {
                    self.close_least_recently_used(&key);
                }
                self.open_fds += 1;
            }
            let entry = self.entries.get_mut(&key).expect("checked above");
            let slot = entry.slot.take().expect("checked above");
            let chunk = entry.chunks.pop_front().expect("checked above");
            entry.in_flight = Some(InFlight {
                acks: chunk.acks,
                events: chunk.events,
                bytes: chunk.data.len(),
                started: now,
            });
            if entry.chunks.is_empty() {
                entry.first_pending = None;
            }
            let data = chunk.data;
            self.in_flight += 1;
            out.push(Job { key, slot, data });
        }
        self.ready = waiting;
    }

    /// Takes a finished job's outcome: settles its acks, or keeps its lines
    /// for a retry after a backoff.
    pub(crate) fn complete(&mut self, done: Done, now: Instant) {
        self.in_flight -= 1;
        let Done {
            key,
            slot,
            mut data,
            result,
        } = done;
        if slot.file.is_none() {
            self.open_fds -= 1;
        }
        let Some(entry) = self.entries.get_mut(&key) else {
            return;
        };
        let in_flight = entry.in_flight.take().expect("a job was in flight");
        let path = slot.path.clone();
        entry.slot = Some(slot);
        match result {
            Ok(()) => {
                self.buffered -= in_flight.bytes;
                entry.last_write = now;
                for ack in in_flight.acks {
                    ack.settle();
                }
                self.metrics.events_out.inc_by(in_flight.events);
                self.latency.observe(
                    now.saturating_duration_since(in_flight.started)
                        .as_secs_f64(),
                );
                #[allow(clippy::cast_precision_loss)] // Batch sizes are far below 2^52.
                self.batch_sizes.observe(in_flight.events as f64);
                if self.spare.len() < MAX_SPARE && data.capacity() <= 2 * self.limits.flush_bytes {
                    data.clear();
                    self.spare.push(data);
                }
                if entry.retry_at.take().is_some() {
                    entry.backoff = FIRST_BACKOFF;
                    self.failing -= 1;
                    if self.failing == 0 {
                        tracing::info!(
                            failed_attempts = self.failures_in_episode,
                            "Writing output files works again; buffered events were written."
                        );
                        self.failures_in_episode = 0;
                    }
                }
            }
            Err(e) => {
                self.metrics.errors.inc();
                if self.failing == 0 && self.failures_in_episode == 0 {
                    tracing::error!(path = %path.display(), error = %e, "Writing an output file failed; holding events and retrying with backoff.");
                }
                self.failures_in_episode += 1;
                if entry.retry_at.is_none() {
                    self.failing += 1;
                }
                entry.retry_at = Some(now + entry.backoff);
                entry.backoff = (entry.backoff * 2).min(MAX_BACKOFF);
                // Back at the front, so the file keeps the input order.
                entry.chunks.push_front(Chunk {
                    data,
                    acks: in_flight.acks,
                    events: in_flight.events,
                });
                entry.first_pending = Some(now);
            }
        }
        let more = entry.chunks.len() > 1
            || entry
                .chunks
                .front()
                .is_some_and(|c| c.data.len() >= self.limits.flush_bytes)
            || (self.draining && !entry.chunks.is_empty());
        if more && entry.retry_at.is_none() && !entry.queued {
            entry.queued = true;
            self.ready.push_back(key);
        }
    }

    /// Closes files idle for `idle_timeout` and files whose time slice ended.
    pub(crate) fn close_idle(&mut self, now: Instant) {
        let idle_timeout = self.limits.idle_timeout;
        let max_event = self.max_event_seconds;
        let sliced = self.limits.slice_seconds.is_some();
        let mut closed = 0;
        let remembered = &mut self.remembered;
        self.entries.retain(|_, entry| {
            let quiet = entry.chunks.is_empty() && entry.in_flight.is_none() && !entry.queued;
            let Some(slot) = entry.slot.as_mut().filter(|_| quiet) else {
                return true;
            };
            let idle = now.saturating_duration_since(entry.last_write) >= idle_timeout;
            let slice_over =
                sliced && entry.slice_end.saturating_add(SLICE_GRACE_SECONDS) <= max_event;
            if !(idle || slice_over) {
                return true;
            }
            if slot.file.take().is_some() {
                closed += 1;
            }
            if !slot.dirty {
                if remembered.len() >= MAX_REMEMBERED_LENGTHS {
                    remembered.clear();
                }
                remembered.insert(slot.path.clone(), slot.len);
            }
            false
        });
        self.open_fds -= closed;
        if self.overflowing && self.entries.len() < self.limits.max_files {
            self.overflowing = false;
            tracing::info!(
                "An output's files are below `max_files` again: events go to their own files."
            );
        }
    }

    fn close_least_recently_used(&mut self, except: &str) {
        let victim = self
            .entries
            .iter()
            .filter(|(key, entry)| {
                &***key != except && entry.slot.as_ref().is_some_and(|s| s.file.is_some())
            })
            .min_by_key(|(_, entry)| entry.last_used)
            .map(|(key, _)| Arc::clone(key));
        let Some(victim) = victim else { return };
        let entry = self.entries.get_mut(&victim).expect("just found");
        let slot = entry.slot.as_mut().expect("filtered on a present slot");
        slot.file = None;
        if !slot.dirty {
            slot.trusted = Some(slot.len);
        }
        self.open_fds -= 1;
    }
}

impl Entry {
    fn new(slot: Slot, now: Instant) -> Self {
        Self {
            slot: Some(slot),
            chunks: VecDeque::new(),
            first_pending: None,
            in_flight: None,
            retry_at: None,
            backoff: FIRST_BACKOFF,
            last_used: 0,
            last_write: now,
            slice_end: i64::MIN,
            queued: false,
        }
    }

    fn is_due(&self, now: Instant, limits: &Limits, flush_all: bool) -> bool {
        let Some(front) = self.chunks.front().filter(|_| self.slot.is_some()) else {
            return false;
        };
        if self.retry_at.is_some_and(|t| t > now) {
            return false;
        }
        flush_all
            || self.retry_at.is_some()
            || self.chunks.len() > 1
            || front.data.len() >= limits.flush_bytes
            || self
                .first_pending
                .is_some_and(|t| now.saturating_duration_since(t) >= limits.flush_interval)
    }
}
