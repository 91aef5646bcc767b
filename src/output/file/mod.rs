//! `type = "file"`: JSON lines into files named by a `path` template (tag,
//! fields, hourly or daily time slices of the event time), optionally gzip.
//!
//! ```toml
//! [[output]]
//! type = "file"
//! match = "audit.**"
//! path = '/var/log/audit-${objectRef.namespace ?? "none"}.%Y%m%d%H.log.gz'
//! compress = "gzip"
//! ```
//!
//! Guarantees: each flush appends one complete gzip member, so files are
//! always valid multi-member gzip, even after `kill -9` (a torn last member
//! is cut off when the file is reopened); acks are settled only after the
//! flush (and fsync, if set) that wrote the event; a failed write (disk
//! full, permission denied) holds the events, retries with capped backoff
//! and pushes back on the router while its buffer is full. Hole values are
//! sanitised by the DSL's path templates, and every rendered path is checked
//! again against the base directory, so events cannot name files outside
//! it. A hole that is null or fails writes `_` (the event is still written)
//! and counts an error. Metrics: `events_out` per flushed event, `errors`
//! per failed write or failed hole, `events_dropped{reason="unsafe_path"}`.

mod config;
mod gzip;
mod open_files;
mod path;
mod rotate;
mod worker;

pub use config::FileConfig;
use config::{Compress, FileFormat};

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::{OutputContext, OutputTask};
use crate::dsl::{EvalContext, Template};
use crate::metrics::EvalErrors;
use crate::source::BuildError;
use open_files::{Limits, OpenFiles};
use rotate::SystemClock;
use worker::{DiskOpener, Opener, WriteSettings};

/// Compression jobs in flight per writer thread.
const JOBS_PER_THREAD: usize = 2;
/// Buffered bytes at which the output stops taking input, at least.
const MIN_MAX_BUFFERED: usize = 32 << 20;
/// Buffered bytes (all files together) past which every file is flushed.
const FLUSH_ALL_BYTES: usize = 4 << 20;

impl FileConfig {
    pub fn build(&self, cx: OutputContext) -> Result<OutputTask, BuildError> {
        if self.is_stdout() {
            return Ok(super::StdoutConfig {}.build(cx));
        }
        // One line format so far: the record as JSON.
        let FileFormat::Json = self.format;
        let opener = Arc::new(DiskOpener {
            gzip: self.compress == Compress::Gzip,
            file_mode: self.mode.0,
            dir_mode: self.dir_mode.0,
        });
        Ok(self.build_with(cx, opener, Arc::new(SystemClock)))
    }

    fn build_with(
        &self,
        cx: OutputContext,
        opener: Arc<dyn Opener>,
        clock: Arc<dyn rotate::Clock>,
    ) -> OutputTask {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 4));
        let flush_bytes = self.flush_bytes.as_usize().max(1);
        let limits = Limits {
            flush_bytes,
            flush_interval: self.flush_interval.0,
            idle_timeout: self.idle_timeout.0,
            max_open_files: self.max_open_files.max(1),
            max_files: self.max_files,
            overflow_path: self.overflow_path.clone(),
            max_in_flight: threads * JOBS_PER_THREAD,
            max_buffered: MIN_MAX_BUFFERED.max(flush_bytes.saturating_mul(8)),
            flush_all_bytes: FLUSH_ALL_BYTES.max(flush_bytes.saturating_mul(4)),
            slice_seconds: path::slice_seconds(self.template()),
        };
        let settings = Arc::new(WriteSettings {
            compress_level: (self.compress == Compress::Gzip).then_some(self.compress_level),
            fsync: self.fsync,
            max_size: self.max_size.0,
            retention: self.retention(),
            clock,
            opener,
        });
        let template = self.template().clone();
        let base_dir = self.base_dir();
        Box::pin(run(cx, template, base_dir, limits, settings, threads))
    }
}

async fn run(
    mut cx: OutputContext,
    template: Template,
    base_dir: String,
    limits: Limits,
    settings: Arc<WriteSettings>,
    threads: usize,
) -> Result<(), BuildError> {
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let jobs = worker::start_pool(threads, settings, done_tx).map_err(|e| {
        BuildError::new(&cx.name, "failed to start the file writer threads").with_source(e)
    })?;
    let tick_every =
        (limits.flush_interval / 10).clamp(Duration::from_millis(10), Duration::from_millis(100));
    // Flushes happen on ticks: aim one tick early, so an event waits at most
    // `flush_interval` in the buffer, not `flush_interval` plus a tick.
    let limits = Limits {
        flush_interval: limits.flush_interval.saturating_sub(tick_every),
        ..limits
    };
    let max_buffered = limits.max_buffered;
    let flush_all_bytes = limits.flush_all_bytes;
    let mut files = OpenFiles::new(limits, cx.metrics.clone());
    let mut eval_errors = EvalErrors::new(cx.metrics.clone());
    let mut tick = tokio::time::interval(tick_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut input_open = true;
    let mut path = String::new();
    let mut ready = Vec::new();
    loop {
        // Past the buffer bound, stop reading: the router's channel fills
        // and the sources slow down, while held events wait for the disk.
        let accepting = input_open && files.buffered() < max_buffered;
        let mut scan_all = false;
        tokio::select! {
            batch = cx.input.recv(), if accepting => match batch {
                Some(batch) => {
                    let now = Instant::now();
                    for event in batch {
                        // A static path is rendered once.
                        if !template.is_static() || path.is_empty() {
                            path.clear();
                            let eval = EvalContext::new(&event.record, &event.tag, event.time);
                            if let Some(error) = template.render_or_placeholder(&eval, &mut path) {
                                eval_errors.record(&error, "wrote `_` for the failing hole");
                            }
                        }
                        // Holes are sanitised; literal text and time fields
                        // are checked here, after rendering.
                        let ok = path::stays_within(&base_dir, &path);
                        files.add(&path, ok, event, now);
                    }
                    scan_all = files.buffered() >= flush_all_bytes;
                }
                None => {
                    input_open = false;
                    files.drain();
                    scan_all = true;
                }
            },
            Some(done) = done_rx.recv() => files.complete(done, Instant::now()),
            _ = tick.tick() => {
                files.close_idle(Instant::now());
                scan_all = true;
            }
        }
        files.next_jobs(Instant::now(), scan_all, &mut ready);
        for job in ready.drain(..) {
            if jobs.send(job).is_err() {
                return Err(BuildError::new(&cx.name, "the file writer threads stopped"));
            }
        }
        if !input_open && files.is_empty() {
            break;
        }
    }
    tracing::debug!(open = files.open_fds(), "File output flushed and closing.");
    Ok(())
}

#[cfg(test)]
mod tests;
