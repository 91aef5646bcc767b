//! Sources feed events into the pipeline: `tail` (log files, with positions
//! that survive restarts and rotation), `http` (kube-apiserver's audit
//! webhook) and `stdin` (JSON lines; the agent exits when it ends). Each
//! source sends batches through a bounded channel,
//! so a slow pipeline slows its sources instead of growing memory.

mod decode;
pub mod http;
mod stdin;
pub mod tail;

pub(crate) use decode::buffer_pool;
pub use decode::{
    BadLine, BadLineKind, BadLineLog, DEFAULT_JOIN_TIMEOUT, DecodeKeys, DecodeSpec, Decoded,
    Decoder, InputFormat, Line, LineSplitter, TimeSpec, parse_time,
};
pub use http::HttpConfig;
pub use stdin::StdinConfig;
pub use tail::TailConfig;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::{ComponentTable, Diagnostic, Section, unknown_type};
use crate::event::EventBatch;
use crate::metrics::ComponentMetrics;

/// Events per batch a source sends at most.
pub const MAX_BATCH: usize = 512;

/// A source's typed config, one variant per `type`.
#[derive(Debug)]
pub enum SourceConfig {
    Stdin(StdinConfig),
    Tail(TailConfig),
    Http(Box<HttpConfig>),
}

const SOURCE_TYPES: &[&str] = &["stdin", "tail", "http"];

impl SourceConfig {
    pub fn from_component(
        kind: &toml::Spanned<String>,
        table: ComponentTable<'_>,
    ) -> Result<Self, Diagnostic> {
        let shared = ["type", "name"];
        match kind.get_ref().as_str() {
            "stdin" => {
                let span = table.span.clone();
                let config: StdinConfig = table.deserialize("a `stdin` source", &shared)?;
                Ok(Self::Stdin(config.validate(span)?))
            }
            "tail" => {
                let span = table.span.clone();
                let config: TailConfig = table.deserialize("a `tail` source", &shared)?;
                config.validate()?;
                Ok(Self::Tail(config.with_decode(span)?))
            }
            "http" => {
                let span = table.span.clone();
                let config: HttpConfig = table.deserialize("an `http` source", &shared)?;
                config.validate().map_err(|d| match d.span {
                    Some(_) => d,
                    None => d.at(span.start..span.start + 1),
                })?;
                Ok(Self::Http(Box::new(config.load_files()?)))
            }
            _ => Err(unknown_type(Section::Source, kind, SOURCE_TYPES)),
        }
    }

    /// The tag (or tag template) this source gives its events.
    pub fn tag(&self) -> &str {
        match self {
            Self::Stdin(c) => &c.tag,
            Self::Tail(c) => c.tag.get_ref(),
            Self::Http(c) => &c.tag,
        }
    }

    /// The `type` of this source, for the routing graph and logs.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Stdin(_) => "stdin",
            Self::Tail(_) => "tail",
            Self::Http(_) => "http",
        }
    }

    /// Whether the source keeps state in `data_dir` (which the agent then
    /// locks, so two agents never share it).
    pub fn uses_data_dir(&self) -> bool {
        matches!(self, Self::Tail(_))
    }

    /// Starts the source. It runs until its input ends or `cx.shutdown`.
    pub fn build(&self, cx: SourceContext) -> Result<SourceTask, BuildError> {
        match self {
            Self::Stdin(c) => Ok(c.build(cx)),
            Self::Tail(c) => c.build(cx),
            Self::Http(c) => c.build(cx),
        }
    }
}

/// A running source; it ends when its input does or on shutdown.
pub type SourceTask = Pin<Box<dyn Future<Output = Result<(), BuildError>> + Send>>;

/// A component that could not start or failed while running.
#[derive(Debug, thiserror::Error)]
#[error("{component}: {message}")]
pub struct BuildError {
    pub component: String,
    pub message: String,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl BuildError {
    pub fn new(component: &str, message: impl Into<String>) -> Self {
        Self {
            component: component.to_owned(),
            message: message.into(),
            source: None,
        }
    }

    #[must_use]
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }
}

/// What a source gets to run with.
pub struct SourceContext {
    pub name: Arc<str>,
    pub out: EventSender,
    pub shutdown: CancellationToken,
    /// How long the whole pipeline may take to stop once `shutdown` fires
    /// (`shutdown_timeout`): a source waiting for acknowledgements stops
    /// waiting a little before it, to save what was acknowledged.
    pub shutdown_timeout: std::time::Duration,
    pub metrics: ComponentMetrics,
    pub data_dir: PathBuf,
}

/// A source's end of the channel into the router.
#[derive(Clone)]
pub struct EventSender {
    tx: mpsc::Sender<EventBatch>,
    metrics: ComponentMetrics,
}

/// The router has stopped taking events.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the pipeline is closed")]
pub struct PipelineClosed;

impl EventSender {
    pub fn new(tx: mpsc::Sender<EventBatch>, metrics: ComponentMetrics) -> Self {
        Self { tx, metrics }
    }

    /// Sends a batch, waiting while the pipeline is full.
    pub async fn send(&self, batch: EventBatch) -> Result<(), PipelineClosed> {
        let n = batch.len() as u64;
        self.tx.send(batch).await.map_err(|_| PipelineClosed)?;
        self.metrics.events_in.inc_by(n);
        Ok(())
    }
}
