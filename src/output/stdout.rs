//! `type = "stdout"`: one JSON record per line on standard output, unchanged
//! records byte for byte. Acks are settled after each flush.

use std::io::Write;

use serde::Deserialize;

use super::{OutputContext, OutputTask};
use crate::event::{Ack, EventBatch};
use crate::source::BuildError;

/// Flush when this much is buffered, or when the input is momentarily empty.
const FLUSH_BYTES: usize = 1 << 20;

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
    let mut buf = Vec::with_capacity(FLUSH_BYTES + 64 * 1024);
    let mut pending: Vec<Ack> = Vec::new();
    let mut written = 0u64;
    while let Some(batch) = cx.input.blocking_recv() {
        take(batch, &mut buf, &mut pending, &mut written);
        // Keep taking what is already queued, then flush once.
        while buf.len() < FLUSH_BYTES {
            match cx.input.try_recv() {
                Ok(batch) => take(batch, &mut buf, &mut pending, &mut written),
                Err(_) => break,
            }
        }
        if let Err(e) = out.write_all(&buf).and_then(|()| out.flush()) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                tracing::warn!("Standard output was closed; events for it are not acknowledged.");
            } else {
                tracing::error!(error = %e, "Writing to standard output failed.");
            }
            cx.metrics.errors.inc();
            for ack in pending.drain(..) {
                ack.fail();
            }
            return Err(
                BuildError::new(&cx.name, "writing to standard output failed").with_source(e),
            );
        }
        buf.clear();
        cx.metrics.events_out.inc_by(written);
        written = 0;
        for ack in pending.drain(..) {
            ack.settle();
        }
    }
    Ok(())
}

fn take(batch: EventBatch, buf: &mut Vec<u8>, pending: &mut Vec<Ack>, written: &mut u64) {
    for event in batch {
        event.record.write_json(buf);
        buf.push(b'\n');
        *written += 1;
        if event.ack.is_tracked() {
            pending.push(event.ack);
        } else {
            event.ack.settle();
        }
    }
}
