//! Starts a validated config: outputs first, then the router, then sources.
//! Stops in the reverse order: sources stop reading, the router routes what
//! was already queued, outputs flush and settle; nothing read is left behind.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::router::{RoutedFilter, RoutedOutput, Router};
use crate::config::Config;
use crate::event::EventBatch;
use crate::metrics::Metrics;
use crate::output::OutputContext;
use crate::source::{BuildError, EventSender, SourceContext};

/// Batches queued between sources and the router.
const ROUTER_QUEUE: usize = 16;
/// Batches queued between the router and each output.
const OUTPUT_QUEUE: usize = 8;

/// Why the agent stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("failed to start")]
    Start(#[source] BuildError),
    #[error("outputs did not finish flushing within the shutdown timeout of {0:?}")]
    ShutdownTimeout(Duration),
    #[error("a component failed")]
    Component(#[source] BuildError),
    #[error("cannot use the data directory")]
    DataDir(#[source] super::DataDirError),
}

/// Runs the pipeline until every source ends or `shutdown` resolves, then
/// drains and flushes.
pub async fn run(
    config: Config,
    metrics: Metrics,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let mut pipeline = Pipeline::start(&config, &metrics).await?;
    tokio::select! {
        () = pipeline.sources_ended() => {}
        () = shutdown => {
            tracing::info!("Shutting down: stopping sources, then draining and flushing.");
        }
    }
    pipeline.stop().await
}

/// A started pipeline. Dropping it aborts its tasks; call [`Pipeline::stop`]
/// to drain and flush instead.
pub struct Pipeline {
    sources: JoinSet<Result<(), BuildError>>,
    stop_sources: CancellationToken,
    drain: CancellationToken,
    router: Option<tokio::task::JoinHandle<()>>,
    outputs: JoinSet<Result<(), BuildError>>,
    failure: Option<BuildError>,
    grace: Duration,
    sources_done: bool,
    /// Held until the pipeline has stopped, so two agents (or an old and a
    /// reloaded pipeline) never share positions.
    _data_dir_lock: Option<super::DataDirLock>,
}

impl Pipeline {
    /// Starts outputs, then the router, then sources. If a component cannot
    /// start, what already started is stopped in order before the error is
    /// returned, so nothing it read is lost.
    pub async fn start(config: &Config, metrics: &Metrics) -> Result<Self, RunError> {
        let data_dir_lock = if config.sources.iter().any(|s| s.config.uses_data_dir()) {
            Some(super::DataDirLock::acquire(&config.data_dir).map_err(RunError::DataDir)?)
        } else {
            None
        };
        let mut pipeline = Self {
            sources: JoinSet::new(),
            stop_sources: CancellationToken::new(),
            drain: CancellationToken::new(),
            router: None,
            outputs: JoinSet::new(),
            failure: None,
            grace: config.shutdown_timeout.0,
            sources_done: false,
            _data_dir_lock: data_dir_lock,
        };
        if let Err(e) = pipeline.start_components(config, metrics) {
            // The partial pipeline's own outcome matters less than why it
            // could not start, and it did not "stop cleanly": say nothing.
            let _ = pipeline.drain().await;
            return Err(RunError::Start(e));
        }
        tracing::info!(
            sources = config.sources.len(),
            filters = config.filters.len(),
            outputs = config.outputs.len(),
            "Pipeline started."
        );
        Ok(pipeline)
    }

    fn start_components(&mut self, config: &Config, metrics: &Metrics) -> Result<(), BuildError> {
        let mut routed_outputs = Vec::new();
        let mut output_tasks = Vec::new();
        for spec in &config.outputs {
            let (tx, rx) = mpsc::channel::<EventBatch>(OUTPUT_QUEUE);
            let component = metrics.component(&spec.name);
            output_tasks.push(spec.config.build(OutputContext {
                name: Arc::from(spec.name.as_str()),
                input: rx,
                metrics: component.clone(),
                data_dir: config.data_dir.clone(),
                batch: spec.batch.clone(),
            })?);
            metrics.watch_buffer(&spec.name, &tx);
            routed_outputs.push(RoutedOutput {
                pattern: spec.pattern.clone(),
                tx,
                on_full: spec.on_full,
                dropped_full: component.dropped("buffer_full"),
                metrics: component,
            });
        }
        for task in output_tasks {
            self.outputs.spawn(task);
        }
        let filters = config
            .filters
            .iter()
            .map(|spec| {
                let component = metrics.component(&spec.name);
                RoutedFilter {
                    pattern: spec.pattern.clone(),
                    filter: spec.config.build(component.clone()),
                    metrics: component,
                }
            })
            .collect();
        let (tx, rx) = mpsc::channel::<EventBatch>(ROUTER_QUEUE);
        self.router = Some(tokio::spawn(
            Router::new(filters, routed_outputs, metrics.component("router"))
                .run(rx, self.drain.clone()),
        ));
        for spec in &config.sources {
            let component = metrics.component(&spec.name);
            let task = spec.config.build(SourceContext {
                name: Arc::from(spec.name.as_str()),
                out: EventSender::new(tx.clone(), component.clone()),
                shutdown: self.stop_sources.clone(),
                shutdown_timeout: self.grace,
                metrics: component,
                data_dir: config.data_dir.clone(),
            })?;
            self.sources.spawn(task);
        }
        Ok(())
    }

    /// Resolves once every source has ended on its own (stdin at end of
    /// input). Component failures are recorded for [`Pipeline::stop`].
    pub async fn sources_ended(&mut self) {
        while !self.sources_done {
            match self.sources.join_next().await {
                None => self.sources_done = true,
                Some(result) => record_failure(&mut self.failure, result),
            }
        }
    }

    /// Stops sources, lets the router route what was queued, and waits for
    /// outputs to flush and settle (positions are saved on acks), within
    /// the config's `shutdown_timeout`.
    pub async fn stop(self) -> Result<(), RunError> {
        self.drain().await?;
        tracing::info!("Pipeline stopped cleanly.");
        Ok(())
    }

    async fn drain(mut self) -> Result<(), RunError> {
        self.stop_sources.cancel();
        let grace = self.grace;
        let stopped = tokio::time::timeout(grace, async {
            while let Some(result) = self.sources.join_next().await {
                record_failure(&mut self.failure, result);
            }
            self.drain.cancel();
            if let Some(router) = self.router.take() {
                let _ = router.await;
            }
            while let Some(result) = self.outputs.join_next().await {
                record_failure(&mut self.failure, result);
            }
        })
        .await;
        if stopped.is_err() {
            return Err(RunError::ShutdownTimeout(grace));
        }
        match self.failure {
            Some(e) => Err(RunError::Component(e)),
            None => Ok(()),
        }
    }
}

fn record_failure(
    failure: &mut Option<BuildError>,
    result: Result<Result<(), BuildError>, tokio::task::JoinError>,
) {
    let error = match result {
        Ok(Ok(())) => return,
        Ok(Err(e)) => e,
        Err(e) => BuildError::new("task", "a component task panicked").with_source(e),
    };
    tracing::error!(error = %error, "A component stopped with an error.");
    failure.get_or_insert(error);
}
