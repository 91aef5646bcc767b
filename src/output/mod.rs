//! Outputs deliver events and settle their acks once the events are durable
//! (flushed to a file or stream, accepted by a remote). Each runs as its own
//! task fed by a bounded channel from the router.

pub mod elasticsearch;
mod file;
pub mod http;
pub mod net;
mod null;
mod stdout;

pub use elasticsearch::ElasticsearchConfig;
pub use file::FileConfig;
pub use http::HttpConfig;
pub use null::NullConfig;
pub use stdout::StdoutConfig;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::batch::BatchConfig;
use crate::config::{ComponentTable, Diagnostic, Section, SourceFile, unknown_type};
use crate::event::EventBatch;
use crate::metrics::ComponentMetrics;
use crate::source::BuildError;

/// An output's typed config, one variant per `type`.
#[derive(Debug)]
pub enum OutputConfig {
    Stdout(StdoutConfig),
    File(Box<FileConfig>),
    Http(HttpConfig),
    Elasticsearch(ElasticsearchConfig),
    Null(NullConfig),
}

const OUTPUT_TYPES: &[&str] = &["stdout", "file", "http", "elasticsearch", "null"];

/// A running output; it ends after its input closes and it has flushed.
pub type OutputTask = Pin<Box<dyn Future<Output = Result<(), BuildError>> + Send>>;

/// What an output gets to run with.
pub struct OutputContext {
    pub name: Arc<str>,
    pub input: mpsc::Receiver<EventBatch>,
    pub metrics: ComponentMetrics,
    pub data_dir: PathBuf,
    pub batch: BatchConfig,
}

/// A network output's files or settings that a start would refuse, found
/// at config load (certificates, keys, kubeconfigs, credential files).
fn setup_diagnostic(
    kind: &str,
    error: &net::SetupError,
    table: std::ops::Range<usize>,
) -> Diagnostic {
    Diagnostic::new(format!(
        "cannot use the settings of an `{kind}` output: {}",
        crate::error_chain(error)
    ))
    .at(table.start..table.start + 1)
}

impl OutputConfig {
    pub fn from_component(
        kind: &toml::Spanned<String>,
        table: ComponentTable<'_>,
        file: &SourceFile,
    ) -> Result<Self, Diagnostic> {
        let shared = ["type", "name", "match", "batch", "on_full"];
        match kind.get_ref().as_str() {
            "stdout" => Ok(Self::Stdout(
                table.deserialize("a `stdout` output", &shared)?,
            )),
            "file" => Ok(Self::File(Box::new(FileConfig::from_component(
                table, file,
            )?))),
            "http" => {
                let span = table.span.clone();
                let mut config: HttpConfig = table.deserialize("an `http` output", &shared)?;
                config
                    .validate()
                    .map_err(|m| Diagnostic::new(m).at(span.clone()))?;
                if let Some(auth) = &mut config.auth {
                    auth.load()?;
                }
                let (_, settings) = config
                    .client_settings()
                    .map_err(|e| setup_diagnostic("http", &e, span.clone()))?;
                net::client::Prepared::new(&settings)
                    .map_err(|e| setup_diagnostic("http", &e, span))?;
                Ok(Self::Http(config))
            }
            "elasticsearch" => {
                let span = table.span.clone();
                let config = ElasticsearchConfig::from_component(table, file, &shared)?;
                let settings = config
                    .client_settings()
                    .map_err(|e| setup_diagnostic("elasticsearch", &e, span.clone()))?;
                net::client::Prepared::new(&settings)
                    .map_err(|e| setup_diagnostic("elasticsearch", &e, span))?;
                Ok(Self::Elasticsearch(config))
            }
            "null" => Ok(Self::Null(table.deserialize("a `null` output", &shared)?)),
            _ => Err(unknown_type(Section::Output, kind, OUTPUT_TYPES)),
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Stdout(_) => "stdout",
            Self::File(_) => "file",
            Self::Http(_) => "http",
            Self::Elasticsearch(_) => "elasticsearch",
            Self::Null(_) => "null",
        }
    }

    pub fn build(&self, cx: OutputContext) -> Result<OutputTask, BuildError> {
        match self {
            Self::Stdout(c) => Ok(c.build(cx)),
            Self::File(c) => c.build(cx),
            Self::Http(c) => c.build(cx),
            Self::Elasticsearch(c) => c.build(cx),
            Self::Null(c) => Ok(c.build(cx)),
        }
    }
}
