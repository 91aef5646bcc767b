//! The agent's own telemetry: Prometheus counters per component, labelled by
//! component name (never by tag or user: bounded cardinality). Components
//! keep the handles they need, so counting is one atomic add. `server`
//! serves them on `/metrics` with `/healthz` and `/readyz`.

mod families;
pub mod server;

pub use families::{BuildLabels, ResultLabels};

mod eval_errors;

pub(crate) use eval_errors::EvalErrors;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use prometheus_client::metrics::histogram::Histogram;
use tokio::sync::mpsc;

use self::families::Families;
use crate::event::EventBatch;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ComponentLabels {
    pub component: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResponseLabels {
    pub component: String,
    pub code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DropLabels {
    pub component: String,
    pub reason: String,
}

/// Every metric family the agent exports.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
    events_in: Family<ComponentLabels, Counter>,
    events_out: Family<ComponentLabels, Counter>,
    events_dropped: Family<DropLabels, Counter>,
    errors: Family<ComponentLabels, Counter>,
    /// Families components add on demand (e.g. output retries), registered
    /// once per registry however many components use them.
    extra: Arc<Mutex<HashMap<&'static str, Family<ComponentLabels, Counter>>>>,
    http_responses: Family<ResponseLabels, Counter>,
    /// Batch sizes, latency, buffer fill, reloads, build info.
    ops: Arc<Families>,
}

/// The handles one component counts with.
#[derive(Clone, Debug)]
pub struct ComponentMetrics {
    metrics: Metrics,
    pub name: Arc<str>,
    /// Events a source emitted or an output received.
    pub events_in: Counter,
    /// Events an output delivered.
    pub events_out: Counter,
    /// Failures (bad lines, failed requests, expression errors).
    pub errors: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("auditrail");
        let events_in = Family::default();
        let events_out = Family::default();
        let events_dropped = Family::default();
        let errors = Family::default();
        let http_responses = Family::default();
        registry.register(
            "events_in",
            "Events received by a component (read by a source, taken by an output)",
            events_in.clone(),
        );
        registry.register(
            "events_out",
            "Events an output delivered (written and flushed, or accepted remotely)",
            events_out.clone(),
        );
        registry.register(
            "events_dropped",
            "Events dropped on purpose, by component and reason",
            events_dropped.clone(),
        );
        registry.register(
            "errors",
            "Errors per component (bad input lines, failed writes or requests, expression errors)",
            errors.clone(),
        );
        registry.register(
            "http_responses",
            "Replies of an http source by status code (429: the pipeline was full)",
            http_responses.clone(),
        );
        let ops = Arc::new(Families::register(&mut registry));
        Self {
            registry: Arc::new(Mutex::new(registry)),
            events_in,
            events_out,
            events_dropped,
            errors,
            extra: Arc::default(),
            http_responses,
            ops,
        }
    }

    /// A per-component counter of the family `name` (registered on first
    /// use with `help`), for counters only some components have.
    pub fn component_counter(
        &self,
        name: &'static str,
        help: &'static str,
        component: &str,
    ) -> Counter {
        let mut extra = self
            .extra
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let family = extra.entry(name).or_insert_with(|| {
            let family = Family::default();
            self.registry
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .register(name, help, family.clone());
            family
        });
        family
            .get_or_create(&ComponentLabels {
                component: component.to_owned(),
            })
            .clone()
    }

    /// The handles for one named component.
    pub fn component(&self, name: &str) -> ComponentMetrics {
        let labels = ComponentLabels {
            component: name.to_owned(),
        };
        ComponentMetrics {
            metrics: self.clone(),
            name: Arc::from(name),
            events_in: self.events_in.get_or_create(&labels).clone(),
            events_out: self.events_out.get_or_create(&labels).clone(),
            errors: self.errors.get_or_create(&labels).clone(),
        }
    }

    /// The registry, for components that add their own families and for
    /// the `/metrics` endpoint.
    pub fn registry(&self) -> &Arc<Mutex<Registry>> {
        &self.registry
    }

    /// Follows how full the router's queue into `output` is
    /// (`auditrail_output_buffer_batches`), sampled at each scrape.
    pub fn watch_buffer(&self, output: &str, sender: &mpsc::Sender<EventBatch>) {
        self.ops.watch_buffer(output, sender);
    }

    /// Counts a config reload; `result` is `success` or `failure`.
    pub fn reload(&self, result: &str) {
        self.ops
            .reloads
            .get_or_create(&ResultLabels {
                result: result.to_owned(),
            })
            .inc();
    }

    /// Renders every metric in the Prometheus text format.
    pub fn render(&self) -> String {
        self.ops.sample_buffers();
        let mut out = String::new();
        let registry = self
            .registry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        prometheus_client::encoding::text::encode(&mut out, &registry)
            .expect("writing into a String cannot fail");
        out
    }
}

impl ComponentMetrics {
    /// The counter of events this component drops for `reason`.
    pub fn dropped(&self, reason: &str) -> Counter {
        self.metrics
            .events_dropped
            .get_or_create(&DropLabels {
                component: self.name.to_string(),
                reason: reason.to_owned(),
            })
            .clone()
    }

    /// The counter of replies with status `code` this component sent.
    pub fn http_response(&self, code: u16) -> Counter {
        self.metrics
            .http_responses
            .get_or_create(&ResponseLabels {
                component: self.name.to_string(),
                code,
            })
            .clone()
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Events per batch this output sent (`auditrail_output_batch_size_events`):
    /// observe once per batch.
    pub fn batch_sizes(&self) -> Histogram {
        self.metrics
            .ops
            .batch_size
            .get_or_create_owned(&self.labels())
    }

    /// Seconds this output took per batch (`auditrail_output_latency_seconds`):
    /// one request round trip, or one write and flush.
    pub fn latency(&self) -> Histogram {
        self.metrics.ops.latency.get_or_create_owned(&self.labels())
    }

    fn labels(&self) -> ComponentLabels {
        ComponentLabels {
            component: self.name.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_with_component_labels() {
        let metrics = Metrics::new();
        let stdin = metrics.component("stdin");
        stdin.events_in.inc_by(3);
        stdin.dropped("unrouted").inc();
        let text = metrics.render();
        assert!(
            text.contains(r#"auditrail_events_in_total{component="stdin"} 3"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"auditrail_events_dropped_total{component="stdin",reason="unrouted"} 1"#
            ),
            "{text}"
        );
    }
}
