//! `type = "tail"`: follows log files as kube-apiserver writes and rotates
//! them, reading every line exactly once in normal operation and at least
//! once across crashes.
//!
//! ## What it does
//! Finds files by glob (`paths` minus `exclude`) and reads each from its
//! saved position in 1 MiB ranges: decode threads (one per core) read the
//! ranges in parallel, cut them into lines (a line may span ranges), turn
//! the lines into events per `format`, and send them in file order, in
//! batches each with one acknowledgement. A
//! file's position advances only to the end of the longest run of batches
//! every output has acknowledged, and is saved atomically about once a second
//! and at shutdown, in `<data_dir>/tail/<name>.positions.json` (or
//! `pos_file`).
//!
//! ```toml
//! [[source]]
//! name = "apiserver"
//! type = "tail"
//! paths = ["/var/log/kubernetes/audit/audit*.log"]
//! exclude = ["*.gz"]
//! format = "json"
//! time_key = "stageTimestamp"
//! tag = "audit"
//! ```
//!
//! ## Guarantees
//! - Files are known by device, inode and a fingerprint of their first
//!   1 KiB, so a renamed file is followed and a reused inode is not mistaken
//!   for the old file.
//! - Rename-and-create (lumberjack): the renamed file is read to its end
//!   from the open descriptor before it is let go; the new file is read from
//!   byte 0. Globs that also match the backups (`audit*.log`) keep files
//!   found even if they are renamed before the first look, and across
//!   restarts.
//! - Truncation and copytruncate: a file smaller than what was read, or
//!   whose first bytes changed, is read again from 0 (counted, warned).
//! - Deleted files are read to the end, then closed; one whose events cannot
//!   be delivered is closed after `max_deleted_hold` anyway (the bytes not
//!   yet acknowledged are counted as lost), so disk space comes back.
//! - A file with a saved position that is gone at start (rotated away and
//!   deleted while the agent was stopped) is warned about and counted.
//! - At most `max_open_files` files are open: beyond it, idle files (read to
//!   their end, acknowledged, unchanged for `rotate_wait`) are closed with
//!   their position kept, and opened again when a scan finds them grown.
//! - Symlinks are followed; a retargeted link is a new file, the old target
//!   is drained.
//! - A partial last line waits for its newline (`emit_partial_at_shutdown`).
//! - Bad lines (not JSON, not UTF-8, over `max_line_size`) are counted,
//!   logged once per file and kind with their offset, and skipped.
//! - Reading stops while `max_unacked` bytes are unacknowledged.
//! - With `stop_at_eof`, the source ends once every file is read to its end
//!   and acknowledged, after saving positions (batch runs over old logs).
//! - inotify wakes the reader; open files are also stat'ed every
//!   `poll_interval` and globs rescanned every `refresh_interval`, so it
//!   works where inotify does not (NFS, exhausted watches).
//!
//! ## Metrics
//! `auditrail_events_in_total`, `auditrail_errors_total` (bad lines, failed
//! position writes), and `auditrail_tail_*`: per-file size, read and
//! acknowledged offsets; truncations, released files, files found gone at
//! start, bytes of deleted files abandoned, bad lines, bytes read.

mod carry;
mod decode_job;
mod discover;
mod fingerprint;
mod position;
mod read;
mod stats;
mod tag_template;
mod tailer;
mod watch;
mod window;

pub use stats::{FileStats, TailCounters, TailStats};
pub use watch::WatchMode;

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use self::decode_job::DecodeShared;
use self::discover::Globs;
use self::position::PositionStore;
use self::read::Emitter;
use self::stats::TailStatsSet;
use self::tag_template::TagTemplate;
use self::tailer::Tailer;
use self::watch::Wake;
use super::{
    BadLineLog, BuildError, DecodeKeys, DecodeSpec, InputFormat, SourceContext, SourceTask,
};
use crate::config::{ByteSize, Diagnostic, Duration};
use crate::event::FieldPath;

/// Where files found at the very first start are read from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadFrom {
    /// From their first byte.
    #[default]
    Head,
    /// From their end (after the last complete line): only new lines.
    End,
}

/// ```toml
/// [[source]]
/// type = "tail"
/// paths = ["/var/log/kubernetes/audit/audit*.log"]
/// exclude = ["*.gz"]
/// tag = "audit"
/// time_key = "stageTimestamp"
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TailConfig {
    /// Files to read: globs (`*`, `?`, `[ab]`, `{a,b}`, `**` for any number
    /// of directories). `*` does not cross `/`. Symlinks are followed.
    /// Required.
    pub paths: Vec<Spanned<String>>,
    /// Globs of files to leave out. A pattern without `/` (`*.gz`) is
    /// matched against the file name, one with `/` against the whole path.
    /// Default: none.
    #[serde(default)]
    pub exclude: Vec<Spanned<String>>,
    /// `json` (default: one JSON object per line), `text` (each line
    /// becomes `{"message": "<line>"}`), `legacy` (kube-apiserver's `AUDIT:`
    /// lines) or `access_json` (one access record per request); the last two
    /// are audited through `policy` (see the `stdin` source for the keys).
    #[serde(default)]
    pub format: InputFormat,
    /// `legacy`/`access_json`: the audit Policy that decides levels and
    /// stages; loaded and validated with the config.
    pub policy: Option<Spanned<PathBuf>>,
    /// `legacy`: how long a request line waits for its response line (on the
    /// log's clock; checked as later lines arrive). Default `10s`.
    pub join_timeout: Option<Spanned<Duration>>,
    /// Tag of the events. May hold `${file}` (the file's name, e.g.
    /// `audit.log`) and `${path}` (its path with `/` turned into `.`, e.g.
    /// `var.log.audit.log`), taken from the path the file had when it was
    /// first opened. Default `tail`.
    #[serde(default = "default_tag")]
    pub tag: Spanned<String>,
    /// Field holding the event time; default `stageTimestamp` for `json`
    /// lines (a line without a readable one takes the time it was read).
    /// `text` lines take the time they were read.
    pub time_key: Option<Spanned<FieldPath>>,
    /// strftime format of `time_key`; default RFC 3339 (numbers are Unix
    /// seconds).
    pub time_format: Option<String>,
    /// Where files present at the very first start (no position file yet)
    /// are read from: `head` (default) or `end`. Files that appear later, or
    /// have no saved position on a later start, are always read from byte 0.
    #[serde(default)]
    pub read_from: ReadFrom,
    /// Longer lines are counted and skipped (never held in memory whole).
    /// Default `16MiB`.
    #[serde(default = "super::stdin::default_max_line_size")]
    pub max_line_size: ByteSize,
    /// How often the globs are listed again to find new files, besides
    /// inotify. Default `5s`.
    #[serde(default = "default_refresh_interval")]
    pub refresh_interval: Duration,
    /// How often open files are stat'ed (size, truncation, rotation) when no
    /// inotify event came; the only wake-up with `watch = "poll"`.
    /// Default `250ms`.
    #[serde(default = "default_poll_interval")]
    pub poll_interval: Duration,
    /// `notify` (default): inotify, with polling as the backstop and as the
    /// fallback where inotify is unavailable or out of watches. `poll`:
    /// polling only, e.g. for NFS.
    #[serde(default)]
    pub watch: WatchMode,
    /// Position file; default `<data_dir>/tail/<source name>.positions.json`.
    /// A fluentd in_tail `pos_file` is read on the first start (migration)
    /// and then rewritten in auditrail's format.
    pub pos_file: Option<PathBuf>,
    /// Positions are written at most this often (and at shutdown). After a
    /// crash, events acknowledged within this window are read again.
    /// Default `1s`.
    #[serde(default = "default_position_flush_interval")]
    pub position_flush_interval: Duration,
    /// A file no longer found at its path (renamed away, deleted) is closed
    /// once read to its end, acknowledged, and unchanged for this long.
    /// Default `5s`.
    #[serde(default = "default_rotate_wait")]
    pub rotate_wait: Duration,
    /// A deleted file is kept open until it is read and acknowledged; if its
    /// events cannot be delivered for this long after the deletion, it is
    /// closed anyway so its disk space comes back, and the bytes not yet
    /// acknowledged are counted and reported as lost. Default `1h`.
    #[serde(default = "default_max_deleted_hold")]
    pub max_deleted_hold: Duration,
    /// At most this many files are open at once. Beyond it, a file that is
    /// read to its end, acknowledged and unchanged for `rotate_wait` is
    /// closed (its position kept) to make room, and opened again when a scan
    /// finds it grown; files with unread data wait for a free descriptor.
    /// Default `1024`.
    #[serde(default = "default_max_open_files")]
    pub max_open_files: usize,
    /// Reading pauses while this many bytes are read but not yet
    /// acknowledged by every output (backpressure). Default `12MiB`.
    #[serde(default = "default_max_unacked")]
    pub max_unacked: ByteSize,
    /// At shutdown, send a last line that has no newline yet as an event.
    /// Default `false`: it is read whole at the next start instead (sending
    /// it would split it if the writer finishes it later).
    #[serde(default)]
    pub emit_partial_at_shutdown: bool,
    /// Read every matched file to its end, then end the source (as
    /// fluent-bit's `Exit_On_Eof`): a last line without a newline counts as
    /// whole, the source waits until every output has acknowledged what it
    /// read, saves positions, and ends. Once every source has ended the
    /// agent flushes its outputs and exits 0. For one-off runs over
    /// finished files; a second run resumes from the saved positions.
    /// Default `false`: follow files forever.
    #[serde(default)]
    pub stop_at_eof: bool,
    /// The checked decoding keys, set by [`TailConfig::with_decode`].
    #[serde(skip)]
    pub decode: DecodeSpec,
}

/// Batches cut but not yet in the pipeline, per source: enough to keep
/// every core decoding while the reader reads on.
const DECODE_AHEAD: usize = 8;

fn default_tag() -> Spanned<String> {
    Spanned::new(0..0, "tail".to_owned())
}
fn default_refresh_interval() -> Duration {
    Duration::from_secs(5)
}
fn default_poll_interval() -> Duration {
    Duration::from_millis(250)
}
fn default_position_flush_interval() -> Duration {
    Duration::from_secs(1)
}
fn default_rotate_wait() -> Duration {
    Duration::from_secs(5)
}
fn default_max_open_files() -> usize {
    1024
}
fn default_max_deleted_hold() -> Duration {
    Duration::from_secs(3600)
}
// 12 MiB keeps up with gzip on both cores (outputs flush every few MiB) while
// bounding memory; measured faster than 64 MiB, which only added page faults.
fn default_max_unacked() -> ByteSize {
    ByteSize(12 << 20)
}

/// The resolved settings the reader loop runs with.
#[derive(Debug, Clone)]
pub(super) struct TailSettings {
    tag: TagTemplate,
    read_from: ReadFrom,
    max_line_size: usize,
    refresh_interval: std::time::Duration,
    poll_interval: std::time::Duration,
    position_flush_interval: std::time::Duration,
    rotate_wait: std::time::Duration,
    max_deleted_hold: std::time::Duration,
    max_open_files: usize,
    emit_partial_at_shutdown: bool,
    stop_at_eof: bool,
    watch: WatchMode,
    /// At shutdown, how long to wait for outputs to acknowledge what was
    /// read: most of `shutdown_timeout`, leaving time to save positions.
    shutdown_ack_wait: std::time::Duration,
}

impl TailConfig {
    /// Checks what serde cannot: globs compile, the tag template is known.
    pub fn validate(&self) -> Result<(), Diagnostic> {
        if self.paths.is_empty() {
            return Err(
                Diagnostic::new("`paths` of a `tail` source is empty").with_help(
                    "add at least one glob, e.g. `paths = [\"/var/log/kubernetes/audit/*.log\"]`",
                ),
            );
        }
        for pattern in self.paths.iter().chain(&self.exclude) {
            if let Err(e) = Globs::new(std::slice::from_ref(pattern.get_ref()), &[]) {
                return Err(Diagnostic::new(format!("invalid glob `{}`", e.pattern))
                    .at(pattern.span())
                    .with_label(e.message));
            }
        }
        if let Err(e) = TagTemplate::parse(self.tag.get_ref()) {
            let d = Diagnostic::new(format!("invalid tag `{}`", self.tag.get_ref()))
                .with_label(e.message)
                .with_help("a tail source's tag may use `${file}` (file name) and `${path}` (path with `/` as `.`)");
            return Err(if self.tag.span().is_empty() {
                d
            } else {
                d.at(self.tag.span())
            });
        }
        if self.poll_interval.0.is_zero() || self.refresh_interval.0.is_zero() {
            return Err(Diagnostic::new(
                "`poll_interval` and `refresh_interval` must be longer than zero",
            ));
        }
        Ok(())
    }

    /// Checks the decoding keys (`format`, `policy`, `join_timeout`,
    /// `time_key`) together and loads the policy, as every line source does.
    pub fn with_decode(mut self, table_span: std::ops::Range<usize>) -> Result<Self, Diagnostic> {
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

    fn globs(&self) -> Result<Globs, discover::GlobError> {
        let paths: Vec<String> = self.paths.iter().map(|p| p.get_ref().clone()).collect();
        let exclude: Vec<String> = self.exclude.iter().map(|p| p.get_ref().clone()).collect();
        Globs::new(&paths, &exclude)
    }

    /// The `paths` globs that match no file now, as warnings at each glob
    /// (for `auditrail check`: the files may still appear later).
    pub fn unmatched_globs(&self) -> Vec<Diagnostic> {
        let Ok(globs) = self.globs() else {
            return Vec::new();
        };
        let found = globs.scan();
        globs
            .describe(&found.unmatched)
            .into_iter()
            .map(|glob| {
                Diagnostic::new(format!("the glob {glob}"))
                    .at(self.paths[glob.index].span())
                    .with_label("nothing is read from it until a file appears")
            })
            .collect()
    }

    /// Where this source's positions are saved.
    pub fn position_path(&self, data_dir: &std::path::Path, name: &str) -> PathBuf {
        self.pos_file.clone().unwrap_or_else(|| {
            let file = crate::config::file_name_for(name);
            data_dir.join("tail").join(format!("{file}.positions.json"))
        })
    }

    /// Opens the position file and starts the reader thread.
    pub fn build(&self, cx: SourceContext) -> Result<SourceTask, BuildError> {
        let name = cx.name.to_string();
        let fail = |message: &str| BuildError::new(&name, message);
        let globs = self
            .globs()
            .map_err(|e| fail("invalid `paths` or `exclude`").with_source(e))?;
        let tag = TagTemplate::parse(self.tag.get_ref())
            .map_err(|e| fail(&format!("invalid `tag`: {}", e.message)))?;
        let store = PositionStore::open(&self.position_path(&cx.data_dir, &name))
            .map_err(|e| fail("cannot use the position file").with_source(e))?;
        let settings = TailSettings {
            tag,
            read_from: self.read_from,
            max_line_size: self.max_line_size.as_usize(),
            refresh_interval: self.refresh_interval.0,
            poll_interval: self.poll_interval.0,
            position_flush_interval: self.position_flush_interval.0,
            rotate_wait: self.rotate_wait.0,
            max_deleted_hold: self.max_deleted_hold.0,
            max_open_files: self.max_open_files.max(1),
            emit_partial_at_shutdown: self.emit_partial_at_shutdown,
            stop_at_eof: self.stop_at_eof,
            watch: self.watch,
            shutdown_ack_wait: cx.shutdown_timeout.mul_f64(0.9),
        };
        let (stats_set, stats) = TailStatsSet::register(cx.metrics.metrics(), &name);
        let (wake_tx, wake_rx) = std::sync::mpsc::channel();
        let (jobs_tx, jobs_rx) = tokio::sync::mpsc::channel(DECODE_AHEAD);
        let decode = std::sync::Arc::new(DecodeShared::new(
            self.decode.build(&cx.metrics),
            self.format,
            BadLineLog::new(cx.metrics.errors.clone()),
            stats.counters_arc(),
            settings.max_line_size,
        ));
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        let workers = decode
            .start_workers(cores)
            .map_err(|e| fail("cannot start the decode threads").with_source(e))?;
        let emit = Emitter::new(
            jobs_tx,
            decode,
            workers,
            wake_tx.clone(),
            self.max_unacked.0.max(1),
            cx.metrics.errors.clone(),
        );
        let tailer = Tailer::new(
            settings,
            globs,
            store,
            emit,
            stats.clone(),
            cx.shutdown.clone(),
            wake_rx,
        );
        Ok(Box::pin(async move {
            let shutdown = cx.shutdown.clone();
            let waker = tokio::spawn(async move {
                shutdown.cancelled().await;
                let _ = wake_tx.send(Wake::Shutdown);
            });
            let forwarder = tokio::spawn(decode_job::forward(jobs_rx, cx.out.clone()));
            let result = tokio::task::spawn_blocking(move || tailer.run()).await;
            waker.abort();
            // The reader is gone and with it the job queue: send what is left.
            let _ = forwarder.await;
            stats_set.unregister(&stats);
            result.map_err(|e| BuildError::new(&name, "the tail reader stopped").with_source(e))
        }))
    }
}

#[cfg(test)]
mod tests;
