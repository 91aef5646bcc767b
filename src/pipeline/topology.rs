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
    #[error("failed to start")]
    DataDir(#[source] super::DataDirError),
}

/// Runs the pipeline until every source ends or `shutdown` resolves, then
/// drains and flushes.
pub async fn run(
    config: Config,
    metrics: Metrics,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    // Held until the pipeline has stopped, so positions are never shared.
    let _data_dir_lock = if config.sources.iter().any(|s| s.config.uses_data_dir()) {
        Some(super::DataDirLock::acquire(&config.data_dir).map_err(RunError::DataDir)?)
    } else {
        None
    };
    let mut outputs = JoinSet::new();
    let mut routed_outputs = Vec::new();
    for spec in &config.outputs {
        let (tx, rx) = mpsc::channel::<EventBatch>(OUTPUT_QUEUE);
        let component = metrics.component(&spec.name);
        let task = spec
            .config
            .build(OutputContext {
                name: Arc::from(spec.name.as_str()),
                input: rx,
                metrics: component.clone(),
                data_dir: config.data_dir.clone(),
                batch: spec.batch.clone(),
            })
            .map_err(RunError::Start)?;
        outputs.spawn(task);
        routed_outputs.push(RoutedOutput {
            pattern: spec.pattern.clone(),
            tx,
            on_full: spec.on_full,
            dropped_full: component.dropped("buffer_full"),
            metrics: component,
        });
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
    let drain = CancellationToken::new();
    let router = tokio::spawn(
        Router::new(filters, routed_outputs, metrics.component("router")).run(rx, drain.clone()),
    );

    let stop_sources = CancellationToken::new();
    let mut sources = JoinSet::new();
    for spec in &config.sources {
        let component = metrics.component(&spec.name);
        let task = spec
            .config
            .build(SourceContext {
                name: Arc::from(spec.name.as_str()),
                out: EventSender::new(tx.clone(), component.clone()),
                shutdown: stop_sources.clone(),
                metrics: component,
                data_dir: config.data_dir.clone(),
            })
            .map_err(RunError::Start)?;
        sources.spawn(task);
    }
    drop(tx);
    tracing::info!(
        sources = config.sources.len(),
        filters = config.filters.len(),
        outputs = config.outputs.len(),
        "Pipeline started."
    );

    let mut failure = None;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            finished = sources.join_next() => match finished {
                None => break,
                Some(result) => record_failure(&mut failure, result),
            },
            () = &mut shutdown => {
                tracing::info!("Shutting down: stopping sources, then draining and flushing.");
                break;
            }
        }
    }
    stop_sources.cancel();
    let grace = config.shutdown_timeout.0;
    let stopped = tokio::time::timeout(grace, async {
        while let Some(result) = sources.join_next().await {
            record_failure(&mut failure, result);
        }
        drain.cancel();
        let _ = router.await;
        while let Some(result) = outputs.join_next().await {
            record_failure(&mut failure, result);
        }
    })
    .await;
    if stopped.is_err() {
        return Err(RunError::ShutdownTimeout(grace));
    }
    match failure {
        Some(e) => Err(RunError::Component(e)),
        None => {
            tracing::info!("Stopped cleanly.");
            Ok(())
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
