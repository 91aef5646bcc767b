//! Batching settings every output accepts (`batch = { ... }`), with the names
//! and meanings of kube-apiserver's `--audit-webhook-batch-*` flags.

use serde::Deserialize;

use crate::config::Duration;

/// `batch.mode`: kube-apiserver's `--audit-webhook-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchMode {
    /// Buffer events and send them in batches (asynchronously).
    Batch,
    /// Send each event batch as it comes, waiting for the result.
    Blocking,
}

/// The `batch` table of an output. Unset keys take the output type's
/// defaults (kube-apiserver's for network outputs).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    pub mode: Option<BatchMode>,
    /// Events buffered before the output pushes back (or drops, per `on_full`).
    pub buffer_size: Option<usize>,
    /// Events per batch at most.
    pub max_size: Option<usize>,
    /// How long a partial batch waits before it is sent.
    pub max_wait: Option<Duration>,
    pub throttle_enable: Option<bool>,
    /// Batches per second.
    pub throttle_qps: Option<f64>,
    /// Batches sent at once before throttling applies.
    pub throttle_burst: Option<u32>,
}

/// What the router does when an output's buffer is full.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFull {
    /// Wait: the sources slow down (tail pauses, the webhook answers 429).
    #[default]
    Block,
    /// Drop the events, counted as `buffer_full`.
    Drop,
}
