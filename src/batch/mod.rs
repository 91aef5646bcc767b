//! Batching shared by the network outputs: settings every output accepts
//! (`batch = { ... }`, with the names and meanings of kube-apiserver's
//! `--audit-webhook-batch-*` flags plus `max_bytes`; each output type has
//! its defaults), and the generic [`Driver`] that batches, keeps several
//! requests in flight, throttles, retries with backoff, dead-letters
//! rejected events and settles acks, so outputs only encode and send.

mod backoff;
mod dead_letter;
mod driver;
mod throttle;

pub use backoff::{Backoff, Jitter};
pub use dead_letter::{DeadLetter, DeadLetterError};
pub use driver::{Delivery, Driver, Output, OutputError, RetrySettings};
pub use throttle::Throttle;

use serde::Deserialize;

use crate::config::{ByteSize, Duration};

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
///
/// In `batch` mode the `http` output defaults to kube-apiserver's webhook
/// flags: `buffer_size = 10000`, `max_size = 400`, `max_wait = "30s"`,
/// `throttle_enable = true`, `throttle_qps = 10`, `throttle_burst = 15`, no
/// `max_bytes`. The `elasticsearch` output has its own ([`ES_DEFAULTS`]).
/// In `blocking` mode (kube-apiserver ignores its batch flags there) each
/// group of events the pipeline hands over is sent at once, up to `max_size`
/// per request, with no read-ahead (`buffer_size` 0), no `max_wait` and no
/// throttling; the other keys are ignored.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// `batch` (default for network outputs) or `blocking`.
    pub mode: Option<BatchMode>,
    /// Events buffered before the output pushes back (or drops, per
    /// `on_full`). Default 10000.
    pub buffer_size: Option<usize>,
    /// Events per batch (request) at most. Default 400.
    pub max_size: Option<usize>,
    /// Uncompressed request body size at most (a single event larger than
    /// this still goes alone). Default none for `http`, 5MiB for
    /// `elasticsearch`.
    pub max_bytes: Option<ByteSize>,
    /// How long a partial batch waits before it is sent. Default 30s.
    pub max_wait: Option<Duration>,
    /// Whether `throttle_qps`/`throttle_burst` apply. Default true.
    pub throttle_enable: Option<bool>,
    /// Batches per second. Default 10.
    pub throttle_qps: Option<f64>,
    /// Batches sent at once before throttling applies. Default 15.
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

/// Resolved batching settings, as the driver uses them.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchSettings {
    pub mode: BatchMode,
    /// Events read ahead while a batch is in flight or waiting.
    pub buffer_size: usize,
    pub max_size: usize,
    /// Request body bytes at most (uncompressed), if limited.
    pub max_bytes: Option<usize>,
    pub max_wait: std::time::Duration,
    /// `(qps, burst)` when throttling is on.
    pub throttle: Option<(f64, u32)>,
    /// Requests in flight at most (the output's `concurrency`, not a
    /// `batch` key).
    pub concurrency: usize,
}

/// kube-apiserver's `--audit-webhook-batch-*` defaults.
pub const WEBHOOK_DEFAULTS: BatchSettings = BatchSettings {
    mode: BatchMode::Batch,
    buffer_size: 10_000,
    max_size: 400,
    max_bytes: None,
    max_wait: std::time::Duration::from_secs(30),
    throttle: Some((10.0, 15)),
    concurrency: 1,
};

/// The `elasticsearch` output's defaults: batches of 2000 events or 5MiB
/// (well under `http.max_content_length`, 100MB, and the 10MB request limit
/// of Amazon's managed service), sent within 1s, unthrottled (the cluster
/// pushes back with 429s), four requests in flight.
pub const ES_DEFAULTS: BatchSettings = BatchSettings {
    mode: BatchMode::Batch,
    buffer_size: 10_000,
    max_size: 2000,
    max_bytes: Some(5 * 1024 * 1024),
    max_wait: std::time::Duration::from_secs(1),
    throttle: None,
    concurrency: 4,
};

impl BatchConfig {
    /// Checks what kube-apiserver checks at start-up: sizes above zero, and
    /// qps and burst above zero when throttling is on.
    pub fn validate(&self) -> Result<(), String> {
        self.resolve(&WEBHOOK_DEFAULTS).map(|_| ())
    }

    /// Fills unset keys from `defaults` (an output type's defaults).
    pub fn resolve(&self, defaults: &BatchSettings) -> Result<BatchSettings, String> {
        let mode = self.mode.unwrap_or(defaults.mode);
        let max_size = self.max_size.unwrap_or(defaults.max_size);
        if max_size == 0 {
            return Err("`batch.max_size` must be greater than 0".into());
        }
        let max_bytes = self
            .max_bytes
            .map_or(defaults.max_bytes, |b| Some(b.as_usize()));
        if max_bytes == Some(0) {
            return Err("`batch.max_bytes` must be greater than 0".into());
        }
        if mode == BatchMode::Blocking {
            return Ok(BatchSettings {
                mode,
                buffer_size: 0,
                max_size,
                max_bytes,
                max_wait: std::time::Duration::ZERO,
                throttle: None,
                concurrency: defaults.concurrency,
            });
        }
        let buffer_size = self.buffer_size.unwrap_or(defaults.buffer_size);
        if buffer_size == 0 {
            return Err("`batch.buffer_size` must be greater than 0".into());
        }
        let max_wait = self.max_wait.map_or(defaults.max_wait, |d| d.0);
        let enabled = self.throttle_enable.unwrap_or(defaults.throttle.is_some());
        let throttle = if enabled {
            let (default_qps, default_burst) =
                defaults.throttle.unwrap_or(WEBHOOK_DEFAULTS_THROTTLE);
            let qps = self.throttle_qps.unwrap_or(default_qps);
            let burst = self.throttle_burst.unwrap_or(default_burst);
            if !(qps > 0.0 && qps.is_finite()) {
                return Err(
                    "`batch.throttle_qps` must be greater than 0 when throttling is enabled".into(),
                );
            }
            if burst == 0 {
                return Err(
                    "`batch.throttle_burst` must be greater than 0 when throttling is enabled"
                        .into(),
                );
            }
            Some((qps, burst))
        } else {
            None
        };
        Ok(BatchSettings {
            mode,
            buffer_size,
            max_size,
            max_bytes,
            max_wait,
            throttle,
            concurrency: defaults.concurrency,
        })
    }
}

const WEBHOOK_DEFAULTS_THROTTLE: (f64, u32) = (10.0, 15);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_keys_take_kube_apiserver_webhook_defaults() {
        let settings = BatchConfig::default().resolve(&WEBHOOK_DEFAULTS).unwrap();
        assert_eq!(settings, WEBHOOK_DEFAULTS);
    }

    #[test]
    fn blocking_mode_has_no_read_ahead_wait_or_throttle() {
        let config = BatchConfig {
            mode: Some(BatchMode::Blocking),
            throttle_qps: Some(1.0),
            ..BatchConfig::default()
        };
        let settings = config.resolve(&WEBHOOK_DEFAULTS).unwrap();
        assert_eq!(settings.buffer_size, 0);
        assert_eq!(settings.max_size, 400);
        assert_eq!(settings.max_wait, std::time::Duration::ZERO);
        assert_eq!(settings.throttle, None);
    }

    #[test]
    fn rejects_what_kube_apiserver_rejects() {
        for config in [
            BatchConfig {
                max_size: Some(0),
                ..BatchConfig::default()
            },
            BatchConfig {
                buffer_size: Some(0),
                ..BatchConfig::default()
            },
            BatchConfig {
                throttle_qps: Some(0.0),
                ..BatchConfig::default()
            },
            BatchConfig {
                throttle_burst: Some(0),
                ..BatchConfig::default()
            },
        ] {
            assert!(config.validate().is_err(), "{config:?}");
        }
        let off = BatchConfig {
            throttle_enable: Some(false),
            throttle_qps: Some(0.0),
            ..BatchConfig::default()
        };
        assert_eq!(off.resolve(&WEBHOOK_DEFAULTS).unwrap().throttle, None);
    }
}
