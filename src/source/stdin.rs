//! `type = "stdin"`: lines from standard input (JSON events, text, or raw
//! requests audited through a `policy`). When input ends, the source ends;
//! when every source has ended the agent flushes and exits, so `auditrail
//! run` works as a filter in a shell pipe.
//!
//! Standard input is read by one thread for the life of the process, which
//! hands chunks over a bounded channel. A source takes the channel (and the
//! unfinished line) when it starts and gives both back when it stops, so a
//! config reload hands the stream to the next pipeline without losing or
//! repeating a line.

use std::io::Read;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use bytes::Bytes;
use chrono::Utc;
use serde::Deserialize;
use tokio::sync::mpsc;

use toml::Spanned;

use super::{
    BadLine, BadLineKind, BadLineLog, BuildError, DecodeKeys, DecodeSpec, Decoder, EventSender,
    InputFormat, Line, LineSplitter, MAX_BATCH, SourceContext, SourceTask,
};
use crate::config::{ByteSize, Diagnostic, Duration};
use crate::event::{Event, FieldPath, Tag};

/// ```toml
/// [[source]]
/// type = "stdin"
/// tag = "audit"
/// time_key = "stageTimestamp"
/// ```
///
/// Raw requests audited through a policy:
///
/// ```toml
/// [[source]]
/// type = "stdin"
/// tag = "audit.legacy"
/// format = "legacy"
/// policy = "/etc/auditrail/policies/k8s-website-example-audit-policy.yaml"
/// join_timeout = "10s"
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdinConfig {
    /// Tag of every event. Default `stdin`.
    #[serde(default = "default_tag")]
    pub tag: String,
    /// `json` (default), `text` (each line becomes `{"message": "<line>"}`),
    /// `legacy` (kube-apiserver's `AUDIT:` lines) or `access_json` (one
    /// access record per request, described in `docs/access-records.md`).
    /// The last two need `policy`.
    #[serde(default)]
    pub format: InputFormat,
    /// Field holding the event time; default `stageTimestamp` for `json`
    /// lines (a line without a readable one takes the time it was read).
    /// Not for `legacy`/`access_json`, whose events take `stageTimestamp`.
    pub time_key: Option<Spanned<FieldPath>>,
    /// strftime format of `time_key`; default RFC 3339.
    pub time_format: Option<String>,
    /// Audit policy (`audit.k8s.io/v1` Policy, YAML or JSON) that decides the
    /// level and stages of `legacy` and `access_json` requests; requests it
    /// gives level `None` are dropped and counted (`reason="policy_none"`).
    /// Loaded and validated with the config. Relative to the working directory.
    pub policy: Option<Spanned<PathBuf>>,
    /// `legacy` only: how long a request line waits for its response line (or
    /// a stage line for its last stage) before it is emitted with what is
    /// known. Measured on the log's clock. Default `10s`.
    pub join_timeout: Option<Spanned<Duration>>,
    /// Longer lines are counted and skipped. Default 16MiB.
    #[serde(default = "default_max_line_size")]
    pub max_line_size: ByteSize,
    /// The checked decoding keys, set by [`StdinConfig::validate`].
    #[serde(skip)]
    pub decode: DecodeSpec,
}

fn default_tag() -> String {
    "stdin".into()
}

pub(crate) fn default_max_line_size() -> ByteSize {
    ByteSize(16 << 20)
}

impl StdinConfig {
    /// Checks the decoding keys together and loads the policy (config load).
    pub fn validate(mut self, table_span: Range<usize>) -> Result<Self, Diagnostic> {
        self.decode = DecodeSpec::from_keys(&DecodeKeys {
            format: self.format,
            time_key: self.time_key.as_ref(),
            time_format: self.time_format.as_deref(),
            policy: self.policy.as_ref(),
            join_timeout: self.join_timeout.as_ref(),
            table_span,
        })?;
        Ok(self)
    }

    pub fn build(&self, cx: SourceContext) -> SourceTask {
        let config = self.clone();
        Box::pin(async move {
            let Some(mut stream) = HeldStream::take(config.max_line_size.as_usize(), &cx.name)?
            else {
                tracing::warn!(
                    source = %cx.name,
                    "Standard input is already read by another stdin source; this one reads nothing."
                );
                return Ok(());
            };
            let mut reader = StdinReader::new(&config, &cx.metrics);
            let joins = reader.decoder.joins_lines();
            // While input is idle, legacy requests whose response never comes
            // are emitted after `join_timeout`.
            let mut join_check = tokio::time::interval(JOIN_CHECK_INTERVAL);
            loop {
                // Stop first: on a busy stream a chunk is always ready.
                let chunk = tokio::select! {
                    biased;
                    () = cx.shutdown.cancelled() => break,
                    chunk = stream.chunks().recv() => chunk,
                    _ = join_check.tick(), if joins => {
                        if !reader.flush(false, &cx.out).await {
                            return Ok(());
                        }
                        continue;
                    }
                };
                if !reader.take(chunk, &mut stream, &cx.out).await {
                    return Ok(());
                }
            }
            // Stopping (shutdown or reload): hand over what the reading
            // thread had read when the stop came (each counted chunk is in
            // the channel or being put there); later reads stay for the
            // next pipeline, so a busy stream cannot hold the stop up.
            let owed = READ_NOT_TAKEN.load(Ordering::Acquire);
            for _ in 0..owed {
                let chunk = stream.chunks().recv().await;
                if !reader.take(chunk, &mut stream, &cx.out).await {
                    break;
                }
            }
            // Legacy requests still waiting for their response are recorded
            // with what is known rather than lost.
            reader.flush(true, &cx.out).await;
            Ok(())
        })
    }
}

/// How often pending legacy joins are checked for `join_timeout` while input is idle.
const JOIN_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Chunks the reading thread has read but no source has taken yet.
static READ_NOT_TAKEN: AtomicUsize = AtomicUsize::new(0);

/// The process-wide stream: `None` inside while a source holds it.
static STREAM: Mutex<Slot> = Mutex::new(Slot {
    started: false,
    stream: None,
});

/// Chunks of standard input queued between the reading thread and a source.
const QUEUED_CHUNKS: usize = 4;
/// Bytes per read.
const CHUNK_SIZE: usize = 256 * 1024;

struct Slot {
    started: bool,
    stream: Option<Stream>,
}

struct Stream {
    /// Ends (`None`) at end of input; stays ended for later pipelines.
    chunks: mpsc::Receiver<Bytes>,
    /// Holds the unfinished last line between chunks and across reloads.
    splitter: LineSplitter,
    max_line_size: usize,
}

/// A source's hold on the stream; gives it back when dropped, even if the
/// task is aborted.
struct HeldStream(Option<Stream>);

impl HeldStream {
    /// Takes the stream, starting the reading thread on first use. `None`
    /// while another source holds it.
    fn take(max_line_size: usize, source: &str) -> Result<Option<Self>, BuildError> {
        let mut slot = STREAM.lock().unwrap_or_else(PoisonError::into_inner);
        if !slot.started {
            let (tx, rx) = mpsc::channel(QUEUED_CHUNKS);
            // A plain thread, not spawn_blocking: a read blocked on an idle
            // pipe must not keep the runtime (and the process) alive.
            std::thread::Builder::new()
                .name("stdin".into())
                .spawn(move || read_chunks(&tx))
                .map_err(|e| {
                    BuildError::new(source, "failed to start the stdin reader").with_source(e)
                })?;
            slot.started = true;
            slot.stream = Some(Stream {
                chunks: rx,
                splitter: LineSplitter::new(max_line_size, 0),
                max_line_size,
            });
        }
        let Some(mut stream) = slot.stream.take() else {
            return Ok(None);
        };
        if stream.max_line_size != max_line_size {
            stream.resize(max_line_size);
        }
        Ok(Some(Self(Some(stream))))
    }

    fn stream(&mut self) -> &mut Stream {
        self.0.as_mut().expect("held until dropped")
    }

    fn chunks(&mut self) -> &mut mpsc::Receiver<Bytes> {
        &mut self.stream().chunks
    }
}

impl Drop for HeldStream {
    fn drop(&mut self) {
        let mut slot = STREAM.lock().unwrap_or_else(PoisonError::into_inner);
        slot.stream = self.0.take();
    }
}

impl Stream {
    /// A reload changed `max_line_size`: carry the unfinished line over to
    /// a splitter with the new limit (unless it is being skipped as too
    /// long already, which the old splitter finishes).
    fn resize(&mut self, max_line_size: usize) {
        if self.splitter.pending_len() > max_line_size {
            return;
        }
        let offset = self.splitter.consumed_offset();
        let mut splitter = LineSplitter::new(max_line_size, offset);
        if let Some(Line::Complete { bytes, .. }) = self.splitter.take_partial() {
            splitter.push(&bytes);
        }
        self.splitter = splitter;
        self.max_line_size = max_line_size;
    }
}

fn read_chunks(tx: &mpsc::Sender<Bytes>) {
    let mut stdin = std::io::stdin().lock();
    let mut buf = vec![0u8; CHUNK_SIZE];
    loop {
        let n = match stdin.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::error!(error = %e, "Reading standard input failed; stopping the stdin source.");
                return;
            }
        };
        READ_NOT_TAKEN.fetch_add(1, Ordering::AcqRel);
        if tx.blocking_send(Bytes::copy_from_slice(&buf[..n])).is_err() {
            READ_NOT_TAKEN.fetch_sub(1, Ordering::AcqRel);
            return;
        }
    }
}

/// Turns chunks into events for one source.
struct StdinReader {
    tag: Tag,
    decoder: Decoder,
    bad_lines: BadLineLog,
    decoded: Vec<super::Decoded>,
}

impl StdinReader {
    fn new(config: &StdinConfig, metrics: &crate::metrics::ComponentMetrics) -> Self {
        Self {
            tag: Tag::new(&config.tag),
            decoder: config.decode.build(metrics),
            bad_lines: BadLineLog::new(metrics.errors.clone()),
            decoded: Vec::new(),
        }
    }

    /// Sends legacy joins that timed out (every waiting one with `all`);
    /// false when the pipeline closed.
    async fn flush(&mut self, all: bool, out: &EventSender) -> bool {
        if all {
            self.decoder.flush_all(&mut self.decoded);
        } else {
            self.decoder.flush_expired(Utc::now(), &mut self.decoded);
        }
        let batch = self.drain_decoded();
        batch.is_empty() || out.send(batch).await.is_ok()
    }

    fn drain_decoded(&mut self) -> Vec<Event> {
        self.decoded
            .drain(..)
            .map(|d| Event::new(self.tag.clone(), d.time, d.record, d.joined))
            .collect()
    }

    /// Sends the lines of `chunk` (`None`: end of input, so the unfinished
    /// last line too). False when the source is done: input ended or the
    /// pipeline closed.
    async fn take(
        &mut self,
        chunk: Option<Bytes>,
        stream: &mut HeldStream,
        out: &EventSender,
    ) -> bool {
        let splitter = &mut stream.stream().splitter;
        let at_end = match chunk {
            Some(bytes) => {
                READ_NOT_TAKEN.fetch_sub(1, Ordering::AcqRel);
                splitter.push(&bytes);
                false
            }
            None => true,
        };
        let now = Utc::now();
        let mut batch = Vec::with_capacity(MAX_BATCH);
        loop {
            let line = match splitter.next_line() {
                Some(line) => line,
                // A pipe's last line often lacks its newline: keep it.
                None if at_end => match splitter.take_partial() {
                    Some(line) => line,
                    None => break,
                },
                None => break,
            };
            self.handle(line, now, &mut batch);
            if batch.len() >= MAX_BATCH && out.send(std::mem::take(&mut batch)).await.is_err() {
                return false;
            }
        }
        if at_end {
            // Input is over: nothing more can join what is waiting.
            self.decoder.flush_all(&mut self.decoded);
        } else {
            self.decoder.flush_expired(now, &mut self.decoded);
        }
        batch.extend(self.drain_decoded());
        if !batch.is_empty() && out.send(batch).await.is_err() {
            return false;
        }
        !at_end
    }

    fn handle(&mut self, line: Line, now: chrono::DateTime<Utc>, batch: &mut Vec<Event>) {
        match line {
            Line::Complete { bytes, offset } => {
                if let Err(bad) = self.decoder.decode(bytes, now, &mut self.decoded) {
                    self.bad_lines.record("stdin", offset, &bad);
                }
                batch.extend(self.drain_decoded());
            }
            Line::TooLong { offset } => {
                let bad = BadLine::new(BadLineKind::TooLong, "line over `max_line_size`");
                self.bad_lines.record("stdin", offset, &bad);
            }
        }
    }
}
