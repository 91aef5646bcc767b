//! Expression failures met by filters and by outputs' `path`/`index`
//! templates: each is counted (`auditrail_errors_total{component=...}`) and
//! logged at most once per interval with how many were not logged, so a bad
//! expression on a busy stream cannot flood the agent's own log.

use std::time::{Duration, Instant};

use super::ComponentMetrics;

/// How often one component may log an evaluation failure.
const LOG_INTERVAL: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub(crate) struct EvalErrors {
    metrics: ComponentMetrics,
    last_logged: Option<Instant>,
    unlogged: u64,
}

impl EvalErrors {
    pub(crate) fn new(metrics: ComponentMetrics) -> Self {
        Self {
            metrics,
            last_logged: None,
            unlogged: 0,
        }
    }

    /// Counts one failure; logs it if the last log line is old enough.
    /// `what` says what the component did instead (e.g. "kept the event").
    pub(crate) fn record(&mut self, error: &dyn std::fmt::Display, what: &str) {
        self.metrics.errors.inc();
        let now = Instant::now();
        if self
            .last_logged
            .is_some_and(|last| now.duration_since(last) < LOG_INTERVAL)
        {
            self.unlogged += 1;
            return;
        }
        tracing::warn!(
            component = %self.metrics.name,
            error = %error,
            not_logged_since_last = self.unlogged,
            "An expression failed for an event; {what}."
        );
        self.last_logged = Some(now);
        self.unlogged = 0;
    }
}
