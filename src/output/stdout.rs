//! `type = "stdout"`: one JSON record per line on standard output, unchanged
//! records byte for byte. Acks are settled after each flush. Unchanged
//! records are written from the bytes they were read into (vectored writes)
//! instead of being copied into a buffer first.

use std::io::{self, IoSlice, Write};

use serde::Deserialize;

use super::{OutputContext, OutputTask};
use crate::event::{Ack, EventBatch};
use crate::source::BuildError;

/// Write when this much is held, or when the input is momentarily empty.
const FLUSH_BYTES: usize = 1 << 20;
/// Lines per vectored write: two slices each (the line and its newline),
/// within the usual limit of 1024 slices per call.
const LINES_PER_WRITE: usize = 512;

/// ```toml
/// [[output]]
/// type = "stdout"
/// match = "**"
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdoutConfig {}

impl StdoutConfig {
    pub fn build(&self, cx: OutputContext) -> OutputTask {
        Box::pin(async move {
            let name = cx.name.to_string();
            tokio::task::spawn_blocking(move || write_lines(cx))
                .await
                .map_err(|e| BuildError::new(&name, "the stdout writer stopped").with_source(e))?
        })
    }
}

#[allow(clippy::needless_pass_by_value)] // The task owns its context.
fn write_lines(mut cx: OutputContext) -> Result<(), BuildError> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut held = Held::default();
    let latency = cx.metrics.latency();
    let batch_sizes = cx.metrics.batch_sizes();
    while let Some(batch) = cx.input.blocking_recv() {
        held.take(batch);
        // Keep taking what is already queued, then write once.
        while held.bytes < FLUSH_BYTES {
            match cx.input.try_recv() {
                Ok(batch) => held.take(batch),
                Err(_) => break,
            }
        }
        let started = std::time::Instant::now();
        if let Err(e) = held.write(&mut out).and_then(|()| out.flush()) {
            if e.kind() == io::ErrorKind::BrokenPipe {
                tracing::warn!("Standard output was closed; events for it are not acknowledged.");
            } else {
                tracing::error!(error = %e, "Writing to standard output failed.");
            }
            cx.metrics.errors.inc();
            held.finish(Ack::fail);
            return Err(
                BuildError::new(&cx.name, "writing to standard output failed").with_source(e),
            );
        }
        latency.observe(started.elapsed().as_secs_f64());
        let written = held.finish(Ack::settle);
        #[allow(clippy::cast_precision_loss)] // Batch sizes are far below 2^52.
        batch_sizes.observe(written as f64);
        cx.metrics.events_out.inc_by(written);
    }
    Ok(())
}

/// Events taken and not written yet, with the JSON of those whose record
/// changed (the others are written from their original bytes).
#[derive(Default)]
struct Held {
    batches: Vec<EventBatch>,
    /// The changed records' lines, newline included, in event order.
    rendered: Vec<u8>,
    /// Where each of those lines ends in `rendered`.
    rendered_ends: Vec<usize>,
    /// Bytes of lines held.
    bytes: usize,
}

impl Held {
    fn take(&mut self, batch: EventBatch) {
        for event in &batch {
            match event.record.raw() {
                Some(raw) => self.bytes += raw.len() + 1,
                None => {
                    let start = self.rendered.len();
                    event.record.write_json(&mut self.rendered);
                    self.rendered.push(b'\n');
                    self.rendered_ends.push(self.rendered.len());
                    self.bytes += self.rendered.len() - start;
                }
            }
        }
        self.batches.push(batch);
    }

    /// Writes every held line, in order.
    fn write(&self, out: &mut impl Write) -> io::Result<()> {
        let mut rendered = self.rendered_ends.iter();
        let mut start = 0;
        let mut slices = Vec::with_capacity(2 * LINES_PER_WRITE);
        for event in self.batches.iter().flatten() {
            match event.record.raw() {
                Some(raw) => {
                    slices.push(IoSlice::new(raw.as_bytes()));
                    slices.push(IoSlice::new(b"\n"));
                }
                None => {
                    if let Some(&end) = rendered.next() {
                        slices.push(IoSlice::new(&self.rendered[start..end]));
                        start = end;
                    }
                }
            }
            if slices.len() >= 2 * LINES_PER_WRITE {
                write_all_vectored(out, &mut slices)?;
                slices.clear();
            }
        }
        write_all_vectored(out, &mut slices)
    }

    /// Settles (or fails) every held event's ack and lets the events go;
    /// returns how many there were.
    fn finish(&mut self, outcome: fn(Ack)) -> u64 {
        let mut events = 0;
        for mut batch in self.batches.drain(..) {
            for event in &mut batch {
                outcome(event.take_ack());
            }
            events += batch.len() as u64;
        }
        self.rendered.clear();
        self.rendered_ends.clear();
        self.bytes = 0;
        events
    }
}

/// `Write::write_all` for slices (its vectored form is not stable yet).
fn write_all_vectored(out: &mut impl Write, mut slices: &mut [IoSlice<'_>]) -> io::Result<()> {
    IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        match out.write_vectored(slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use serde_json::Value;

    use super::*;
    use crate::event::{BatchStatus, Event, FieldPath, Record, Tag};

    /// A writer that takes at most a few bytes per call, as a pipe may.
    struct Trickle(Vec<u8>);

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(7);
            self.0.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn writes_unchanged_and_changed_records_in_order_then_settles() {
        let (ack, waiter) = Ack::batch();
        let event = |n: usize| {
            let mut record = Record::from_json(format!(r#"{{"n": {n}}}"#).into()).unwrap();
            if n % 3 == 1 {
                record.set(&FieldPath::parse("changed").unwrap(), Value::Bool(true));
            }
            Event::new(Tag::new("t"), Utc::now(), record, ack.clone())
        };
        let mut held = Held::default();
        held.take((0..700).map(event).collect());
        held.take((700..1200).map(event).collect());
        ack.settle();

        let mut out = Trickle(Vec::new());
        held.write(&mut out).unwrap();
        let text = String::from_utf8(out.0).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1200);
        assert_eq!(
            lines[0], r#"{"n": 0}"#,
            "unchanged records keep their bytes"
        );
        assert_eq!(lines[1], r#"{"n":1,"changed":true}"#);
        assert_eq!(lines[1199], r#"{"n": 1199}"#);
        assert_eq!(held.bytes, text.len());

        assert_eq!(held.finish(Ack::settle), 1200);
        assert_eq!(waiter.wait().await, BatchStatus::Delivered);
    }
}
