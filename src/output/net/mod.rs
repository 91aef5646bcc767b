//! Plumbing every network output shares, so a new one (Kafka, S3, Splunk)
//! is one module of its own logic: the HTTP client and TLS ([`client`]),
//! credentials ([`auth`]), reading answers ([`response`]), the one setup
//! error, and [`spawn`], which runs an [`Output`] under the batch
//! [`Driver`] with its dead-letter file.

pub mod auth;
pub mod client;
pub mod response;

use std::path::PathBuf;

use super::{OutputContext, OutputTask};
use crate::batch::{BatchSettings, DeadLetter, Driver, Output, RetrySettings};

/// Why a network output could not be set up from its config.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("failed to read `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Kubeconfig(#[from] Box<super::http::kubeconfig::KubeconfigError>),
    #[error("{0}")]
    Invalid(String),
    #[error("failed to set up the HTTP client")]
    Build(#[source] reqwest::Error),
}

impl From<super::http::kubeconfig::KubeconfigError> for SetupError {
    fn from(e: super::http::kubeconfig::KubeconfigError) -> Self {
        Self::Kubeconfig(Box::new(e))
    }
}

/// Checks a URL is absolute http(s).
pub fn check_url(url: &str) -> Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("invalid URL `{url}`: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("URL `{url}` must start with http:// or https://"));
    }
    Ok(parsed)
}

/// The tail end of every network output's build: the dead-letter file
/// (`dead_letter_path`, else `<data_dir>/dead-letter/<name>.ndjson`) and the
/// driver task that batches, sends, retries and settles.
pub fn spawn<O: Output>(
    output: O,
    cx: OutputContext,
    settings: BatchSettings,
    retry: RetrySettings,
    dead_letter_path: Option<&PathBuf>,
) -> OutputTask {
    let dead_letter = DeadLetter::new(
        dead_letter_path
            .cloned()
            .unwrap_or_else(|| DeadLetter::default_path(&cx.data_dir, &cx.name)),
        &cx.name,
    );
    let driver = Driver::new(output, settings, retry, dead_letter, cx.metrics);
    let input = cx.input;
    Box::pin(async move {
        driver.run(input).await;
        Ok(())
    })
}

/// Turns a setup error into the build error the pipeline reports.
pub fn build_error(name: &str, kind: &str, error: SetupError) -> crate::source::BuildError {
    crate::source::BuildError::new(name, format!("invalid `{kind}` output settings"))
        .with_source(error)
}
