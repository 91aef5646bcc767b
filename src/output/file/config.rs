//! The file output's config keys, checked and compiled at load: the path
//! template (errors point into the `path` string), compression level, file
//! modes and the base directory.

use serde::Deserialize;
use toml::Spanned;

use super::path::default_base_dir;
use super::rotate::Retention;
use crate::config::{ByteSize, ComponentTable, Diagnostic, Duration, SourceFile};
use crate::dsl::{Template, TemplateKind};

/// `compress`: how files are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Compress {
    /// Plain JSON lines.
    #[default]
    None,
    /// One gzip member per flush (a valid multi-member gzip file).
    Gzip,
}

/// `format`: what one line holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum FileFormat {
    /// The record as JSON, one per line; unchanged records byte for byte.
    #[default]
    Json,
}

/// A Unix permission mode: an integer (`0o640`) or an octal string (`"0640"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileMode(pub u32);

impl<'de> Deserialize<'de> for FileMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i64),
            Text(String),
        }
        let mode = match Raw::deserialize(d)? {
            Raw::Int(n) => u32::try_from(n).ok(),
            Raw::Text(text) => u32::from_str_radix(text.trim_start_matches("0o"), 8).ok(),
        };
        mode.filter(|m| *m <= 0o7777).map(FileMode).ok_or_else(|| {
            serde::de::Error::custom("expected a file mode such as `0o640` or \"0640\"")
        })
    }
}

/// The keys of a `file` output, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFileConfig {
    /// Path template in the expression language (`docs/dsl.md`): `${tag}`,
    /// `${tag_parts[N]}`, `${objectRef.namespace ?? "none"}`, any
    /// expression, and strftime fields of the event time in UTC
    /// (`%Y%m%d%H` for hourly files). Hole values are sanitised to stay in
    /// one path component. A relative path resolves against the working
    /// directory. `"-"` writes to standard output.
    path: Spanned<String>,
    /// `json` (default): the record, one per line.
    #[serde(default)]
    format: FileFormat,
    /// `none` (default) or `gzip`.
    #[serde(default)]
    compress: Compress,
    /// gzip level from 1 (fastest) to 9 (smallest). Default 6.
    compress_level: Option<Spanned<u32>>,
    /// Longest a line waits before it is written. Default `1s`.
    flush_interval: Option<Duration>,
    /// Write a file's buffer once it holds this much. Default `256KiB`.
    flush_bytes: Option<ByteSize>,
    /// fsync after each flush, before acknowledging. Default false.
    #[serde(default)]
    fsync: bool,
    /// Rotate a file before it would grow past this; `"0"` never rotates.
    /// Default `100MiB` (kube-apiserver's `--audit-log-maxsize`).
    max_size: Option<ByteSize>,
    /// Rotated backups kept per file; 0 keeps all. Default 100.
    max_backups: Option<usize>,
    /// Backups rotated longer ago than this are deleted; `"0s"` keeps them.
    /// Default `366d`.
    max_age: Option<Duration>,
    /// Open files at most; the least recently used is closed first. Default 256.
    max_open_files: Option<usize>,
    /// Distinct files written at once at most (a file counts until it is
    /// closed as idle or its time slice ends). Events for a further file go
    /// to `overflow_path` instead, so event content (3,000 namespaces)
    /// cannot make unbounded files and buffers. Default 4096.
    max_files: Option<usize>,
    /// Where events beyond `max_files` are written: a plain path, no
    /// template. Default `overflow.log` (`overflow.log.gz` with gzip) in
    /// `base_dir`.
    overflow_path: Option<Spanned<String>>,
    /// Files not written for this long are closed. Default `60s`.
    idle_timeout: Option<Duration>,
    /// Mode of created files. Default `0o600`.
    mode: Option<FileMode>,
    /// Mode of created directories. Default `0o700`.
    dir_mode: Option<FileMode>,
    /// Directory every file must stay in; default: the directory part of
    /// the path before its first `${...}` or `%` field.
    base_dir: Option<Spanned<String>>,
}

/// A validated `file` output.
#[derive(Debug, Clone)]
pub struct FileConfig {
    pub(crate) path: String,
    template: Template,
    pub(crate) format: FileFormat,
    pub(crate) compress: Compress,
    pub(crate) compress_level: u32,
    pub(crate) flush_interval: Duration,
    pub(crate) flush_bytes: ByteSize,
    pub(crate) fsync: bool,
    pub(crate) max_size: ByteSize,
    pub(crate) max_backups: usize,
    pub(crate) max_age: Duration,
    pub(crate) max_open_files: usize,
    pub(crate) max_files: usize,
    pub(crate) overflow_path: String,
    pub(crate) idle_timeout: Duration,
    pub(crate) mode: FileMode,
    pub(crate) dir_mode: FileMode,
    base_dir: String,
}

impl FileConfig {
    pub fn from_component(
        table: ComponentTable<'_>,
        file: &SourceFile,
    ) -> Result<Self, Diagnostic> {
        let shared = ["type", "name", "match", "batch", "on_full"];
        let raw: RawFileConfig = table.deserialize("a `file` output", &shared)?;
        let path_span = raw.path.span();
        let text = raw.path.get_ref().clone();
        if text.is_empty() {
            return Err(Diagnostic::new("`path` is empty")
                .at(path_span)
                .with_help("give a file path, or `\"-\"` for standard output"));
        }
        if text.contains('\0') {
            return Err(Diagnostic::new("`path` contains a NUL character")
                .at(path_span)
                .with_label("no file name can hold it"));
        }
        let template = Template::from_config(file, &raw.path, TemplateKind::Path)?;
        let compress_level = match raw.compress_level {
            Some(level) if !(1..=9).contains(level.get_ref()) => {
                return Err(Diagnostic::new("`compress_level` must be between 1 and 9")
                    .at(level.span())
                    .with_label("1 is fastest, 9 smallest"));
            }
            Some(level) => level.into_inner(),
            None => 6,
        };
        let stdout = text == "-";
        if stdout && raw.compress != Compress::None {
            return Err(Diagnostic::new(
                "`path = \"-\"` writes to standard output, which is never compressed",
            )
            .at(path_span)
            .with_help("remove `compress`, or write to a file"));
        }
        let base_dir = match raw.base_dir {
            Some(dir) => {
                let mut base = dir.get_ref().clone();
                if !base.ends_with('/') {
                    base.push('/');
                }
                if !stdout && !template.static_prefix().starts_with(&base) {
                    return Err(Diagnostic::new(format!(
                        "`path` does not start with `base_dir` `{}`",
                        dir.get_ref()
                    ))
                    .at(dir.span())
                    .with_help("every file must lie under `base_dir`: start `path` with it"));
                }
                base
            }
            None => default_base_dir(&template),
        };
        let overflow_path = match raw.overflow_path {
            Some(path)
                if path.get_ref().is_empty() || path.get_ref().contains(['\0', '$', '%']) =>
            {
                return Err(Diagnostic::new("`overflow_path` must be a plain file path")
                    .at(path.span())
                    .with_label("no templates or strftime fields here"));
            }
            Some(path) => path.into_inner(),
            None => {
                let suffix = if raw.compress == Compress::Gzip {
                    ".gz"
                } else {
                    ""
                };
                format!("{base_dir}overflow.log{suffix}")
            }
        };
        Ok(Self {
            path: text,
            template,
            format: raw.format,
            compress: raw.compress,
            compress_level,
            flush_interval: raw.flush_interval.unwrap_or(Duration::from_secs(1)),
            flush_bytes: raw.flush_bytes.unwrap_or(ByteSize(256 << 10)),
            fsync: raw.fsync,
            max_size: raw.max_size.unwrap_or(ByteSize(100 << 20)),
            max_backups: raw.max_backups.unwrap_or(100),
            max_age: raw.max_age.unwrap_or(Duration::from_secs(366 * 86_400)),
            max_open_files: raw.max_open_files.unwrap_or(256),
            max_files: raw.max_files.unwrap_or(4096).max(1),
            overflow_path,
            idle_timeout: raw.idle_timeout.unwrap_or(Duration::from_secs(60)),
            mode: raw.mode.unwrap_or(FileMode(0o600)),
            dir_mode: raw.dir_mode.unwrap_or(FileMode(0o700)),
            base_dir,
        })
    }

    pub(crate) fn template(&self) -> &Template {
        &self.template
    }

    /// Whether this output writes to standard output (`path = "-"`).
    pub fn is_stdout(&self) -> bool {
        self.path == "-"
    }

    /// The directory (ending in `/`, or empty) every file stays in.
    pub(crate) fn base_dir(&self) -> String {
        self.base_dir.clone()
    }

    pub(super) fn retention(&self) -> Retention {
        Retention {
            max_backups: self.max_backups,
            max_age: Some(self.max_age.0).filter(|age| !age.is_zero()),
        }
    }
}
