//! `auditrail run [-c FILE]`: start the pipeline and run until the sources
//! end or SIGTERM/SIGINT asks it to stop.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};

use crate::metrics::Metrics;

pub(super) fn run(path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let config = super::load_config(path)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("auditrail")
        .build()
        .context("failed to start the async runtime")?;
    runtime.block_on(async {
        let mut terminate =
            signal(SignalKind::terminate()).context("failed to install the SIGTERM handler")?;
        let mut interrupt =
            signal(SignalKind::interrupt()).context("failed to install the SIGINT handler")?;
        let shutdown = async move {
            tokio::select! {
                _ = terminate.recv() => tracing::info!("Received SIGTERM."),
                _ = interrupt.recv() => tracing::info!("Received SIGINT."),
            }
        };
        crate::pipeline::run(config, Metrics::new(), shutdown).await?;
        Ok(ExitCode::SUCCESS)
    })
}
