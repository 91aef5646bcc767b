//! `auditrail run [-c FILE]`: start the pipeline and run until the sources
//! end or SIGTERM/SIGINT asks it to stop. SIGHUP reloads the config file:
//! the new file is validated exactly as `auditrail check` does; an invalid
//! one is reported and the running pipeline keeps going, a valid one
//! replaces it (the old one drains and flushes first, so tail positions
//! are saved and nothing is lost or read twice).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};

use crate::config::{ApiConfig, Config};
use crate::metrics::Metrics;
use crate::metrics::server::{self, ApiServer, ApiState, Phase, Readiness};
use crate::pipeline::{Pipeline, RunError};
use crate::systemd;

pub(super) fn run(path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let config = super::load_config(path)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("auditrail")
        .build()
        .context("failed to start the async runtime")?;
    let result = runtime.block_on(serve(path.map(Path::to_owned), config));
    // Everything was flushed; do not wait on reads blocked in idle inputs.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    result
}

/// What woke the run loop.
enum Wake {
    SourcesEnded,
    Stop(&'static str),
    Reload,
}

async fn serve(path: Option<PathBuf>, config: Config) -> anyhow::Result<ExitCode> {
    // Handlers go in before READY=1: a signal sent right after must not
    // kill the process with the default action.
    let mut terminate =
        signal(SignalKind::terminate()).context("failed to install the SIGTERM handler")?;
    let mut interrupt =
        signal(SignalKind::interrupt()).context("failed to install the SIGINT handler")?;
    let mut hangup =
        signal(SignalKind::hangup()).context("failed to install the SIGHUP handler")?;
    let metrics = Metrics::new();
    let readiness = Readiness::default();
    let api = match config.api.as_ref() {
        Some(api) => Some(start_api(api, &metrics, &readiness).await?),
        None => None,
    };
    let pipeline = Pipeline::start(&config, &metrics)
        .await
        .map_err(|e| start_error(&config, e))?;
    let mut agent = Agent {
        path,
        config,
        metrics,
        readiness,
        api,
    };
    agent.readiness.set(Phase::Ready);
    systemd::ready();
    let watchdog = systemd::spawn_watchdog();

    let mut pipeline = pipeline;
    loop {
        // Signals that arrive during a reload are kept by their streams, so
        // a burst of SIGHUPs becomes one more reload, never a lost one.
        let wake = tokio::select! {
            () = pipeline.sources_ended() => Wake::SourcesEnded,
            _ = terminate.recv() => Wake::Stop("SIGTERM"),
            _ = interrupt.recv() => Wake::Stop("SIGINT"),
            _ = hangup.recv() => Wake::Reload,
        };
        let grace = agent.config.shutdown_timeout.0;
        match wake {
            Wake::SourcesEnded => {
                tracing::info!(
                    "Every source has ended: delivering what was read, for at most {grace:?} (`shutdown_timeout`)."
                );
                break;
            }
            Wake::Stop(name) => {
                tracing::info!(
                    "Received {name}: sources stop reading and outputs deliver what was read, for at most {grace:?} (`shutdown_timeout`). Send SIGTERM or SIGINT again to exit at once."
                );
                break;
            }
            Wake::Reload => pipeline = agent.reload(pipeline).await?,
        }
    }
    agent.readiness.set(Phase::Stopping);
    systemd::stopping();
    // A second signal cuts the drain short: whatever is not delivered stays
    // unacknowledged, so nothing is lost, only repeated at the next start.
    let stopped = tokio::select! {
        stopped = pipeline.stop() => stopped.map_err(anyhow::Error::from),
        _ = terminate.recv() => Err(agent.forced("SIGTERM")),
        _ = interrupt.recv() => Err(agent.forced("SIGINT")),
    };
    if let Err(e) = &stopped
        && e.downcast_ref::<RunError>()
            .is_some_and(|e| matches!(e, RunError::ShutdownTimeout(_)))
    {
        tracing::error!(
            "{} Those events are not acknowledged: tail sources read them again at the next start.",
            agent.undelivered()
        );
    }
    if let Some(api) = agent.api.take() {
        api.stop().await;
    }
    if let Some(watchdog) = watchdog {
        watchdog.abort();
    }
    stopped?;
    tracing::info!("Stopped cleanly.");
    Ok(ExitCode::SUCCESS)
}

async fn start_api(
    api: &ApiConfig,
    metrics: &Metrics,
    readiness: &Readiness,
) -> anyhow::Result<RunningApi> {
    let listener = bind_api(api.listen).await?;
    serve_api(api, listener, metrics, readiness)
}

async fn bind_api(listen: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    server::bind(listen)
        .await
        .with_context(|| format!("failed to listen on `{listen}` for `[api]`"))
}

fn serve_api(
    api: &ApiConfig,
    listener: tokio::net::TcpListener,
    metrics: &Metrics,
    readiness: &Readiness,
) -> anyhow::Result<RunningApi> {
    let state = ApiState {
        metrics: metrics.clone(),
        readiness: readiness.clone(),
    };
    let server = ApiServer::serve(listener, state, api.limits())
        .with_context(|| format!("failed to serve `[api]` on `{}`", api.listen))?;
    Ok(RunningApi {
        configured: api.clone(),
        server,
    })
}

/// The endpoint and the config it was started with (whose address may be
/// port 0).
struct RunningApi {
    configured: ApiConfig,
    server: ApiServer,
}

impl RunningApi {
    async fn stop(self) {
        self.server.stop().await;
    }
}

/// The state that outlives pipelines: config, metrics, the api endpoint.
struct Agent {
    path: Option<PathBuf>,
    config: Config,
    metrics: Metrics,
    readiness: Readiness,
    api: Option<RunningApi>,
}

impl Agent {
    /// Events each output took and has neither delivered nor dropped, for
    /// the report of a shutdown cut short.
    fn undelivered(&self) -> String {
        let pending: Vec<String> = self
            .config
            .outputs
            .iter()
            .filter_map(|output| {
                let metrics = self.metrics.component(&output.name);
                let settled = metrics.events_out.get()
                    + metrics.dropped("rejected").get()
                    + metrics.dropped("unsafe_path").get();
                let left = metrics.events_in.get().saturating_sub(settled);
                (left > 0).then(|| format!("{}: {left}", output.name))
            })
            .collect();
        if pending.is_empty() {
            "Every event the outputs took was delivered.".to_owned()
        } else {
            format!("Events not yet delivered: {}.", pending.join(", "))
        }
    }

    /// The error for a second stop signal during the drain.
    fn forced(&self, signal: &str) -> anyhow::Error {
        tracing::error!(
            "Received {signal} again: exiting now. {} Those events are not acknowledged: tail sources read them again at the next start.",
            self.undelivered()
        );
        anyhow::anyhow!("stopped by a second {signal} before every event was delivered")
    }

    /// Handles one SIGHUP. Returns the pipeline that runs afterwards: the
    /// new one, or the old one when the new config was rejected. Fails only
    /// when neither the new nor the old config can be started again.
    async fn reload(&mut self, pipeline: Pipeline) -> anyhow::Result<Pipeline> {
        systemd::reloading();
        self.readiness.set(Phase::Reloading);
        let name = self.path.as_ref().map_or_else(
            || crate::config::DEFAULT_CONFIG_NAME.to_owned(),
            |p| p.display().to_string(),
        );
        tracing::info!("Received SIGHUP: reloading {name}.");
        let outcome = self.replace(pipeline).await;
        let (pipeline, replaced) = match outcome {
            Ok(Replaced::Yes(pipeline)) => (pipeline, true),
            Ok(Replaced::No(pipeline)) => (pipeline, false),
            Err(e) => {
                self.metrics.reload("failure");
                return Err(e);
            }
        };
        self.metrics
            .reload(if replaced { "success" } else { "failure" });
        self.readiness.set(Phase::Ready);
        systemd::ready();
        if replaced {
            tracing::info!("Config reloaded from {name}.");
        }
        Ok(pipeline)
    }

    async fn replace(&mut self, pipeline: Pipeline) -> anyhow::Result<Replaced> {
        let new = match super::load_config(self.path.as_deref()) {
            Ok(config) => config,
            Err(e) => {
                let rendered = super::render(&anyhow::Error::from(e));
                tracing::error!(
                    "Rejected the new config; the running one stays in effect.\n{rendered}"
                );
                return Ok(Replaced::No(pipeline));
            }
        };
        // Bind a changed api address before touching the pipeline, so a
        // taken port rejects the reload instead of leaving no endpoint.
        let wanted = new.api.clone();
        let current = self.api.as_ref().map(|api| api.configured.clone());
        let mut listener = None;
        if let Some(listen) = wanted.as_ref().map(|api| api.listen)
            && current.as_ref().map(|api| api.listen) != Some(listen)
        {
            match server::bind(listen).await {
                Ok(bound) => listener = Some(bound),
                Err(e) => {
                    tracing::error!(
                        error = %e,
                        "Rejected the new config: cannot listen on `{listen}` for `[api]`; the running one stays in effect."
                    );
                    return Ok(Replaced::No(pipeline));
                }
            }
        }
        log_stop(pipeline.stop().await);
        let pipeline = match Pipeline::start(&new, &self.metrics).await {
            Ok(pipeline) => pipeline,
            Err(e) => {
                let rendered = super::render(&start_error(&new, e));
                tracing::error!(
                    "The new config failed to start; starting the previous one again.\n{rendered}"
                );
                let old = Pipeline::start(&self.config, &self.metrics)
                    .await
                    .context("failed to start the previous config again after a failed reload")?;
                return Ok(Replaced::No(old));
            }
        };
        if wanted != current {
            if let Some(api) = self.api.take() {
                api.stop().await;
            }
            if let Some(api) = &wanted {
                // Same address, other limits: bound again once the old one is closed.
                let bound = match listener {
                    Some(bound) => bound,
                    None => bind_api(api.listen).await?,
                };
                self.api = Some(serve_api(api, bound, &self.metrics, &self.readiness)?);
            }
        }
        self.config = new;
        Ok(Replaced::Yes(pipeline))
    }
}

/// Why a pipeline could not start: a diagnostic at the component that
/// failed, so the operator sees which table of the file to look at.
fn start_error(config: &Config, error: RunError) -> anyhow::Error {
    match error {
        RunError::Start(e) => {
            let mut message = e.message.clone();
            if let Some(source) = &e.source {
                message.push_str(": ");
                message.push_str(&crate::error_chain(source.as_ref()));
            }
            anyhow::Error::new(config.start_failure(&e.component, &message))
        }
        other => anyhow::Error::new(other),
    }
}

enum Replaced {
    Yes(Pipeline),
    No(Pipeline),
}

/// The old pipeline's outcome does not stop a reload: what it could not
/// deliver stays unacknowledged, and tail sources read it again.
fn log_stop(result: Result<(), RunError>) {
    if let Err(e) = result {
        tracing::warn!(
            error = %crate::error_chain(&e),
            "The previous pipeline did not stop cleanly; unacknowledged events will be read again."
        );
    }
}
