//! The config file: one TOML document parsed into typed structs. Every
//! component is checked here (keys, types, units, patterns, expressions), so
//! `auditrail check`, startup and reload all validate the same way; building
//! the pipeline later never re-validates.

mod component;
mod diagnostic;
mod policy;
mod units;

pub use component::{ComponentTable, Section, from_toml_error, quote_list, unknown_type};
pub use diagnostic::{Diagnostic, Diagnostics, SourceFile, closest, line_column};
pub use policy::load_policy_key;
pub use units::{ByteSize, Duration};

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use crate::batch::{BatchConfig, OnFull};
use crate::filter::FilterConfig;
use crate::output::OutputConfig;
use crate::pipeline::{RoutingGraph, TagPattern};
use crate::source::SourceConfig;

/// The config `auditrail run` uses when no file is given.
pub const DEFAULT_CONFIG: &str = include_str!("../../conf/auditrail.toml");
/// Where the default config says it lives.
pub const DEFAULT_CONFIG_NAME: &str = "<embedded default config>";

/// A loaded, fully validated config.
#[derive(Debug)]
pub struct Config {
    pub file: SourceFile,
    /// Positions, locks and buffers live here.
    pub data_dir: PathBuf,
    /// How long SIGTERM may take to drain and flush.
    pub shutdown_timeout: Duration,
    pub api: Option<ApiConfig>,
    pub sources: Vec<SourceSpec>,
    pub filters: Vec<FilterSpec>,
    pub outputs: Vec<OutputSpec>,
}

/// `[api]`: the metrics and health endpoint.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Address for `/metrics`, `/healthz` and `/readyz`.
    pub listen: std::net::SocketAddr,
    /// Time allowed for a request's headers, and for a connection to stay
    /// idle between requests. Default 10s.
    #[serde(default = "default_api_header_read_timeout")]
    pub header_read_timeout: Duration,
    /// Open connections at most; more wait in the kernel's backlog, so
    /// idle clients cannot use up the agent's file descriptors. Default 64.
    #[serde(default = "default_api_max_connections")]
    pub max_connections: usize,
}

fn default_api_header_read_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_api_max_connections() -> usize {
    64
}

impl ApiConfig {
    /// The listener limits of the endpoint.
    pub fn limits(&self) -> crate::listener::Limits {
        crate::listener::Limits {
            header_read_timeout: self.header_read_timeout.0,
            handshake_timeout: self.header_read_timeout.0,
            max_connections: self.max_connections.max(1),
            max_concurrent_streams: 16,
        }
    }
}

#[derive(Debug)]
pub struct SourceSpec {
    pub name: String,
    /// Where its `type` is written, for errors about the whole component.
    pub type_span: std::ops::Range<usize>,
    pub config: SourceConfig,
}

#[derive(Debug)]
pub struct FilterSpec {
    pub name: String,
    /// Where its `type` is written, for errors about the whole component.
    pub type_span: std::ops::Range<usize>,
    pub pattern: TagPattern,
    pub pattern_span: std::ops::Range<usize>,
    pub config: FilterConfig,
}

#[derive(Debug)]
pub struct OutputSpec {
    pub name: String,
    /// Where its `type` is written, for errors about the whole component.
    pub type_span: std::ops::Range<usize>,
    pub pattern: TagPattern,
    pub pattern_span: std::ops::Range<usize>,
    pub config: OutputConfig,
    pub batch: BatchConfig,
    pub on_full: OnFull,
}

/// A config that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("failed to read config file `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(Diagnostics),
}

const TOP_LEVEL_KEYS: &[&str] = &[
    "data_dir",
    "shutdown_timeout",
    "api",
    "source",
    "filter",
    "output",
];

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&path.display().to_string(), &text)
    }

    /// The embedded default config.
    pub fn default_config() -> Result<Self, ConfigError> {
        Self::parse(DEFAULT_CONFIG_NAME, DEFAULT_CONFIG)
    }

    /// Validates config text; `name` is used in messages.
    pub fn parse(name: &str, text: &str) -> Result<Self, ConfigError> {
        let file = SourceFile {
            name: name.into(),
            text: text.into(),
        };
        let mut problems = Vec::new();
        let config = parse_document(&file, &mut problems);
        match config {
            Some(config) if problems.is_empty() => Ok(config),
            _ => Err(ConfigError::Invalid(Diagnostics {
                file,
                items: problems,
            })),
        }
    }

    /// A component that failed to start, as a diagnostic at its `type`.
    pub fn start_failure(&self, component: &str, message: &str) -> Diagnostics {
        let span = self
            .sources
            .iter()
            .map(|s| (&s.name, &s.type_span, "source"))
            .chain(
                self.filters
                    .iter()
                    .map(|f| (&f.name, &f.type_span, "filter")),
            )
            .chain(
                self.outputs
                    .iter()
                    .map(|o| (&o.name, &o.type_span, "output")),
            )
            .find(|(name, _, _)| name.as_str() == component);
        let mut diagnostic = Diagnostic::new(format!("`{component}` failed to start: {message}"));
        if let Some((_, span, section)) = span {
            diagnostic = diagnostic
                .at(span.clone())
                .with_label(format!("this {section}"));
        }
        Diagnostics {
            file: self.file.clone(),
            items: vec![diagnostic],
        }
    }

    /// Which sources feed which filters and outputs.
    pub fn graph(&self) -> RoutingGraph {
        RoutingGraph::build(self)
    }
}

fn parse_document(file: &SourceFile, problems: &mut Vec<Diagnostic>) -> Option<Config> {
    let root = match DeTable::parse(&file.text) {
        Ok(root) => root.into_inner(),
        Err(e) => {
            let mut d = Diagnostic::new(format!("invalid TOML: {}", e.message().trim()));
            if let Some(span) = e.span() {
                d = d.at(span);
            }
            problems.push(d);
            return None;
        }
    };
    let mut config = Config {
        file: file.clone(),
        data_dir: PathBuf::from("/var/lib/auditrail"),
        shutdown_timeout: Duration::from_secs(30),
        api: None,
        sources: Vec::new(),
        filters: Vec::new(),
        outputs: Vec::new(),
    };
    let mut names: HashMap<String, std::ops::Range<usize>> = HashMap::new();
    // Visit keys in file order, so "first defined" means first in the file.
    let mut entries: Vec<_> = root.into_iter().collect();
    entries.sort_by_key(|(key, _)| key.span().start);
    for (key, value) in entries {
        let key_span = key.span();
        let key = key.into_inner();
        match key.as_ref() {
            "data_dir" => collect(
                problems,
                typed(value, "`data_dir`").map(|v: PathBuf| config.data_dir = v),
            ),
            "shutdown_timeout" => collect(
                problems,
                typed(value, "`shutdown_timeout`").map(|v| config.shutdown_timeout = v),
            ),
            "api" => collect(
                problems,
                typed(value, "the `[api]` table").map(|v| config.api = Some(v)),
            ),
            "source" | "filter" | "output" => {
                let section = match key.as_ref() {
                    "source" => Section::Source,
                    "filter" => Section::Filter,
                    _ => Section::Output,
                };
                let span = value.span();
                let DeValue::Array(items) = value.into_inner() else {
                    problems.push(
                        Diagnostic::new(format!("`{key}` must be an array of tables"))
                            .at(span)
                            .with_help(format!("write each one as `[[{key}]]`")),
                    );
                    continue;
                };
                for (n, item) in items.into_iter().enumerate() {
                    let position = n + 1;
                    if let Err(d) =
                        parse_component(file, section, position, item, &mut config, &mut names)
                    {
                        problems.push(d);
                    }
                }
            }
            other => {
                let mut d =
                    Diagnostic::new(format!("unknown top-level key `{other}`")).at(key_span);
                if let Some(best) = closest(other, TOP_LEVEL_KEYS.iter().copied()) {
                    d = d.with_help(format!("did you mean `{best}`?"));
                } else {
                    d = d.with_help(format!("valid keys: {}", quote_list(TOP_LEVEL_KEYS)));
                }
                problems.push(d);
            }
        }
    }
    if problems.is_empty() {
        check_topology(&config, problems);
    }
    Some(config)
}

fn collect(problems: &mut Vec<Diagnostic>, result: Result<(), Diagnostic>) {
    if let Err(d) = result {
        problems.push(d);
    }
}

fn typed<T: serde::de::DeserializeOwned>(
    value: Spanned<DeValue<'_>>,
    what: &str,
) -> Result<T, Diagnostic> {
    T::deserialize(ValueDeserializer::from(value)).map_err(|e| from_toml_error(&e, what, &[]))
}

fn parse_component(
    file: &SourceFile,
    section: Section,
    position: usize,
    item: Spanned<DeValue<'_>>,
    config: &mut Config,
    names: &mut HashMap<String, std::ops::Range<usize>>,
) -> Result<(), Diagnostic> {
    let mut table = ComponentTable::new(section, position, item)?;
    let what = format!("`[[{}]]` number {position}", section.key());
    let kind: Spanned<String> = table.take_required("type", &what)?;
    let name = match table.take::<String>("name")? {
        Some(name) => {
            if let Some(previous) = names.get(name.get_ref()) {
                let (line, _) = line_column(&file.text, previous.start);
                return Err(Diagnostic::new(format!(
                    "duplicate component name `{}`",
                    name.get_ref()
                ))
                .at(name.span())
                .with_help(format!(
                    "names must be unique; `{}` is already used on line {line}",
                    name.get_ref()
                )));
            }
            names.insert(name.get_ref().clone(), name.span());
            name.into_inner()
        }
        None => format!("{}#{position}", kind.get_ref()),
    };
    let mut pattern_span = 0..0;
    let pattern = if section == Section::Source {
        None
    } else {
        let text: Spanned<String> = table.take_required("match", &what)?;
        pattern_span = text.span();
        Some(TagPattern::parse(text.get_ref()).map_err(|e| {
            let start = string_content_start(file, &text).map_or(text.span().start, |s| s + e.offset);
            Diagnostic::new(format!("invalid tag pattern `{}`", text.get_ref()))
                .at(start..start + 1)
                .with_label(e.message)
                .with_help("patterns: `a.b`, `a.*` (one part), `a.**` (zero or more parts), `{a,b}`, several separated by spaces")
        })?)
    };
    match section {
        Section::Source => {
            let source = SourceConfig::from_component(&kind, table)?;
            config.sources.push(SourceSpec {
                name,
                type_span: kind.span(),
                config: source,
            });
        }
        Section::Filter => {
            let filter = FilterConfig::from_component(&kind, table, file)?;
            config.filters.push(FilterSpec {
                name,
                type_span: kind.span(),
                pattern: pattern.expect("filters have a pattern"),
                pattern_span,
                config: filter,
            });
        }
        Section::Output => {
            let batch = match table.take::<BatchConfig>("batch")? {
                Some(batch) => {
                    let span = batch.span();
                    if !BATCHED_OUTPUTS.contains(&kind.get_ref().as_str()) {
                        return Err(Diagnostic::new(format!(
                            "a `{}` output does not batch: `batch` would be ignored",
                            kind.get_ref()
                        ))
                        .at(span)
                        .with_help(
                            "`batch` sets how network outputs (`http`, `elasticsearch`) group events into requests; a `file` output groups writes with `flush_interval` and `flush_bytes`",
                        ));
                    }
                    batch
                        .get_ref()
                        .validate()
                        .map_err(|message| Diagnostic::new(message).at(span))?;
                    batch.into_inner()
                }
                None => BatchConfig::default(),
            };
            let on_full = table
                .take::<OnFull>("on_full")?
                .map(Spanned::into_inner)
                .unwrap_or_default();
            let output = OutputConfig::from_component(&kind, table, file)?;
            config.outputs.push(OutputSpec {
                name,
                type_span: kind.span(),
                pattern: pattern.expect("outputs have a pattern"),
                pattern_span,
                config: output,
                batch,
                on_full,
            });
        }
    }
    Ok(())
}

/// The output types that read the `batch` table.
const BATCHED_OUTPUTS: &[&str] = &["http", "elasticsearch"];

/// A component name made safe as a file name (state files under
/// `data_dir` are named after their component).
pub fn file_name_for(component: &str) -> String {
    component
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Byte offset in the file where a string value's content starts, when the
/// content appears there verbatim (no escapes), so offsets inside the string
/// (a DSL error, a pattern error) map to exact file positions.
pub fn string_content_start(file: &SourceFile, value: &Spanned<String>) -> Option<usize> {
    let span = value.span();
    let raw = file.text.get(span.clone())?;
    let quote = ["'''", "\"\"\"", "'", "\""]
        .into_iter()
        .find(|q| raw.starts_with(q))?;
    let mut start = span.start + quote.len();
    // A newline right after an opening triple quote is not part of the value.
    if quote.len() == 3 && file.text[start..].starts_with('\n') {
        start += 1;
    }
    file.text
        .get(start..start + value.get_ref().len())
        .filter(|content| *content == value.get_ref())
        .map(|_| start)
}

fn check_topology(config: &Config, problems: &mut Vec<Diagnostic>) {
    if config.sources.is_empty() {
        problems.push(
            Diagnostic::new("the config has no sources")
                .with_help("add a `[[source]]` table, e.g. `type = \"stdin\"`"),
        );
    }
    if config.outputs.is_empty() {
        problems.push(Diagnostic::new("the config has no outputs").with_help(
            "add an `[[output]]` table, e.g. `type = \"stdout\"` with `match = \"**\"`",
        ));
    }
    for filter in &config.filters {
        if let Some(mut d) = filter.config.static_loop(&filter.pattern) {
            if d.span.is_none() {
                d = d.at(filter.pattern_span.clone());
            }
            problems.push(d);
        }
    }
    if config.sources.is_empty() || config.outputs.is_empty() {
        return;
    }
    let graph = config.graph();
    for (index, output) in config.outputs.iter().enumerate() {
        if graph.output_feeds(index).is_empty() {
            problems.push(
                Diagnostic::new(format!(
                    "output `{}` matches `{}`, but no source or filter produces a tag it matches",
                    output.name, output.pattern
                ))
                .at(output.pattern_span.clone())
                .with_label("no tag reaches this pattern")
                .with_help(format!("tags produced: {}", graph.describe_tags())),
            );
        }
    }
}
