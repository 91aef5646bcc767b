//! `type = "stdin"`: JSON lines from standard input. When input ends, the
//! source ends; when every source has ended the agent flushes and exits, so
//! `auditrail run` works as a filter in a shell pipe.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::Utc;
use serde::Deserialize;

use super::{
    BadLineLog, Decoder, EventSender, InputFormat, Line, LineSplitter, MAX_BATCH, SourceContext,
    SourceTask, TimeSpec,
};
use crate::config::ByteSize;
use crate::event::{Ack, Event, FieldPath, Tag};

/// ```toml
/// [[source]]
/// type = "stdin"
/// tag = "audit"
/// time_key = "stageTimestamp"
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdinConfig {
    /// Tag of every event. Default `stdin`.
    #[serde(default = "default_tag")]
    pub tag: String,
    /// `json` (default) or `text`.
    #[serde(default)]
    pub format: InputFormat,
    /// Field holding the event time; default: the time the line was read.
    pub time_key: Option<FieldPath>,
    /// strftime format of `time_key`; default RFC 3339.
    pub time_format: Option<String>,
    /// Longer lines are counted and skipped. Default 16MiB.
    #[serde(default = "default_max_line_size")]
    pub max_line_size: ByteSize,
}

fn default_tag() -> String {
    "stdin".into()
}

pub(crate) fn default_max_line_size() -> ByteSize {
    ByteSize(16 << 20)
}

impl StdinConfig {
    pub fn build(&self, cx: SourceContext) -> SourceTask {
        let config = self.clone();
        Box::pin(async move {
            let in_read = Arc::new(AtomicBool::new(false));
            let reader = {
                let in_read = in_read.clone();
                let cx_out = cx.out.clone();
                let shutdown = cx.shutdown.clone();
                let bad_lines = BadLineLog::new(cx.metrics.errors.clone());
                tokio::task::spawn_blocking(move || {
                    read_stdin(&config, &cx_out, &shutdown, &in_read, bad_lines);
                })
            };
            tokio::pin!(reader);
            tokio::select! {
                _ = &mut reader => {}
                () = cx.shutdown.cancelled() => {
                    // Let the reader hand over what it has read already; it
                    // reads nothing more once shutdown is requested.
                    while !in_read.load(Ordering::Acquire) && !reader.is_finished() {
                        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                    }
                }
            }
            Ok(())
        })
    }
}

fn read_stdin(
    config: &StdinConfig,
    out: &EventSender,
    shutdown: &tokio_util::sync::CancellationToken,
    in_read: &AtomicBool,
    mut bad_lines: BadLineLog,
) {
    let tag = Tag::new(&config.tag);
    let time = config.time_key.clone().map(|key| TimeSpec {
        key,
        format: config.time_format.clone(),
    });
    let mut decoder = Decoder::new(config.format, time);
    let mut splitter = LineSplitter::new(config.max_line_size.as_usize(), 0);
    let mut stdin = std::io::stdin().lock();
    let mut decoded = Vec::new();
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        if shutdown.is_cancelled() {
            break;
        }
        in_read.store(true, Ordering::Release);
        let read = splitter.read_from(&mut stdin);
        in_read.store(false, Ordering::Release);
        let at_end = match read {
            Ok(n) => n == 0,
            Err(e) => {
                tracing::error!(error = %e, "Reading standard input failed; stopping the stdin source.");
                true
            }
        };
        let now = Utc::now();
        let mut handle = |line: Line, batch: &mut Vec<Event>| match line {
            Line::Complete { bytes, offset } => {
                if let Err(bad) = decoder.decode(bytes, now, &mut decoded) {
                    bad_lines.record("stdin", offset, &bad);
                }
                for d in decoded.drain(..) {
                    batch.push(Event::new(tag.clone(), d.time, d.record, Ack::none()));
                }
            }
            Line::TooLong { offset } => {
                let bad =
                    super::BadLine::new(super::BadLineKind::TooLong, "line over `max_line_size`");
                bad_lines.record("stdin", offset, &bad);
            }
        };
        while let Some(line) = splitter.next_line() {
            handle(line, &mut batch);
            if batch.len() >= MAX_BATCH && out.blocking_send(std::mem::take(&mut batch)).is_err() {
                return;
            }
        }
        if at_end {
            // A pipe's last line often lacks its newline: keep it.
            if let Some(line) = splitter.take_partial() {
                handle(line, &mut batch);
            }
        }
        if !batch.is_empty() && out.blocking_send(std::mem::take(&mut batch)).is_err() {
            return;
        }
        if at_end {
            break;
        }
    }
}
