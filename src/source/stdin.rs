//! `type = "stdin"`: lines from standard input (JSON events, text, or raw
//! requests audited through a `policy`). When input ends, the source ends;
//! when every source has ended the agent flushes and exits, so `auditrail
//! run` works as a filter in a shell pipe.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};

use chrono::Utc;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use toml::Spanned;

use super::{
    BadLineLog, BuildError, DecodeKeys, DecodeSpec, Decoded, Decoder, EventSender, InputFormat,
    Line, LineSplitter, MAX_BATCH, SourceContext, SourceTask,
};
use crate::config::{ByteSize, Diagnostic, Duration};
use crate::event::{Ack, Event, FieldPath, Tag};

/// How often pending legacy joins are checked for `join_timeout` while input is idle.
const JOIN_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

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
/// policy = "conf/policies/k8s-website-example.yaml"
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
    /// access record per request; see DESIGN §2). The last two need `policy`.
    #[serde(default)]
    pub format: InputFormat,
    /// Field holding the event time; default: the time the line was read.
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
            let tag = Tag::new(&config.tag);
            // Shared with the join-timeout ticker below; the reader holds it per line.
            let decoder = Arc::new(Mutex::new(config.decode.build(&cx.metrics)));
            let stop_ticker = CancellationToken::new();
            let ticker = lock(&decoder).joins_lines().then(|| {
                tokio::spawn(flush_expired_periodically(
                    decoder.clone(),
                    tag.clone(),
                    cx.out.clone(),
                    stop_ticker.clone(),
                ))
            });
            let in_read = Arc::new(AtomicBool::new(false));
            let reader = {
                let in_read = in_read.clone();
                let cx_out = cx.out.clone();
                let shutdown = cx.shutdown.clone();
                let bad_lines = BadLineLog::new(cx.metrics.errors.clone());
                let decoder = decoder.clone();
                let tag = tag.clone();
                let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
                // A plain thread, not spawn_blocking: a read blocked on an idle
                // pipe must not keep the runtime (and the process) alive.
                std::thread::Builder::new()
                    .name("stdin".into())
                    .spawn(move || {
                        let io = StdinIo {
                            out: &cx_out,
                            shutdown: &shutdown,
                            in_read: &in_read,
                        };
                        read_stdin(&config, &tag, &decoder, &io, bad_lines);
                        let _ = done_tx.send(());
                    })
                    .map_err(|e| {
                        BuildError::new(&cx.name, "failed to start the stdin reader").with_source(e)
                    })?;
                done_rx
            };
            tokio::pin!(reader);
            tokio::select! {
                _ = &mut reader => {}
                () = cx.shutdown.cancelled() => {
                    // Let the reader hand over what it has read already; it
                    // reads nothing more once shutdown is requested.
                    loop {
                        if in_read.load(Ordering::Acquire) || reader.as_mut().try_recv().is_ok() {
                            break;
                        }
                        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                    }
                }
            }
            stop_ticker.cancel();
            if let Some(ticker) = ticker {
                let _ = ticker.await;
            }
            // On shutdown, legacy requests still waiting for their response are
            // emitted with what is known (at end of input the reader did this).
            let mut decoded = Vec::new();
            lock(&decoder).flush_all(&mut decoded);
            if !decoded.is_empty() {
                let _ = cx.out.send(to_events(&tag, decoded)).await;
            }
            Ok(())
        })
    }
}

/// Locks the decoder; a panic elsewhere must not stop the source (the decoder
/// holds no invariant a half-done call could break beyond one lost join).
fn lock(decoder: &Mutex<Decoder>) -> MutexGuard<'_, Decoder> {
    decoder.lock().unwrap_or_else(PoisonError::into_inner)
}

fn to_events(tag: &Tag, decoded: Vec<Decoded>) -> Vec<Event> {
    decoded
        .into_iter()
        .map(|d| Event::new(tag.clone(), d.time, d.record, Ack::none()))
        .collect()
}

/// While stdin is idle, legacy requests whose response never comes are emitted
/// after `join_timeout`. Skips a tick while the reader holds the decoder.
async fn flush_expired_periodically(
    decoder: Arc<Mutex<Decoder>>,
    tag: Tag,
    out: EventSender,
    stop: CancellationToken,
) {
    let mut interval = tokio::time::interval(JOIN_CHECK_INTERVAL);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = interval.tick() => {}
        }
        let mut decoded = Vec::new();
        match decoder.try_lock() {
            Ok(mut d) => d.flush_expired(Utc::now(), &mut decoded),
            Err(TryLockError::Poisoned(p)) => {
                p.into_inner().flush_expired(Utc::now(), &mut decoded)
            }
            Err(TryLockError::WouldBlock) => continue,
        }
        if !decoded.is_empty() && out.send(to_events(&tag, decoded)).await.is_err() {
            return;
        }
    }
}

/// The reader thread's links to the rest of the source.
struct StdinIo<'a> {
    out: &'a EventSender,
    shutdown: &'a CancellationToken,
    in_read: &'a AtomicBool,
}

fn read_stdin(
    config: &StdinConfig,
    tag: &Tag,
    decoder: &Mutex<Decoder>,
    io: &StdinIo<'_>,
    mut bad_lines: BadLineLog,
) {
    let StdinIo {
        out,
        shutdown,
        in_read,
    } = *io;
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
                if let Err(bad) = lock(decoder).decode(bytes, now, &mut decoded) {
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
            // Input is over: nothing more can join what is waiting.
            lock(decoder).flush_all(&mut decoded);
        } else {
            lock(decoder).flush_expired(now, &mut decoded);
        }
        batch.extend(to_events(tag, std::mem::take(&mut decoded)));
        if !batch.is_empty() && out.blocking_send(std::mem::take(&mut batch)).is_err() {
            return;
        }
        if at_end {
            break;
        }
    }
}
