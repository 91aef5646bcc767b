//! Operational metric families beyond the per-component event counters:
//! output batch sizes and latency, output buffer fill (sampled at scrape
//! time from the router's channels), config reloads and build info.

use std::collections::HashMap;
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::sync::mpsc;

use super::ComponentLabels;
use crate::event::EventBatch;

/// A histogram family whose members are built by a plain function.
pub(super) type HistogramFamily = Family<ComponentLabels, Histogram, fn() -> Histogram>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    pub version: String,
}

fn batch_size_histogram() -> Histogram {
    // 1 .. 32768 events: kube-apiserver's default max batch is 400.
    Histogram::new(exponential_buckets(1.0, 2.0, 16))
}

fn latency_histogram() -> Histogram {
    // 1 ms .. ~33 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

pub(super) struct Families {
    pub(super) batch_size: HistogramFamily,
    pub(super) latency: HistogramFamily,
    pub(super) reloads: Family<ResultLabels, Counter>,
    buffer_used: Family<ComponentLabels, Gauge>,
    buffer_capacity: Family<ComponentLabels, Gauge>,
    /// The router's channel into each output, by output name. Weak, so the
    /// metrics never keep an output's input open.
    buffers: Mutex<HashMap<String, mpsc::WeakSender<EventBatch>>>,
}

impl Families {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let families = Self {
            batch_size: Family::new_with_constructor(batch_size_histogram),
            latency: Family::new_with_constructor(latency_histogram),
            reloads: Family::default(),
            buffer_used: Family::default(),
            buffer_capacity: Family::default(),
            buffers: Mutex::new(HashMap::new()),
        };
        registry.register(
            "output_batch_size_events",
            "Events per batch an output sent or wrote",
            families.batch_size.clone(),
        );
        registry.register(
            "output_latency_seconds",
            "Time an output took to deliver one batch (request round trip or write and flush)",
            families.latency.clone(),
        );
        registry.register(
            "output_buffer_batches",
            "Batches queued between the router and an output",
            families.buffer_used.clone(),
        );
        registry.register(
            "output_buffer_capacity_batches",
            "How many batches the queue between the router and an output holds",
            families.buffer_capacity.clone(),
        );
        registry.register(
            "config_reloads",
            "Config reloads by result (success, failure)",
            families.reloads.clone(),
        );
        let build_info: Family<BuildLabels, Gauge> = Family::default();
        build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_owned(),
            })
            .set(1);
        registry.register(
            "build_info",
            "Always 1; the version label names the running build",
            build_info,
        );
        families
    }

    /// Follows the fill of an output's queue; replaces an earlier queue of
    /// the same name (after a reload).
    pub(super) fn watch_buffer(&self, output: &str, sender: &mpsc::Sender<EventBatch>) {
        let mut buffers = self.buffers.lock().unwrap_or_else(|e| e.into_inner());
        buffers.insert(output.to_owned(), sender.downgrade());
    }

    /// Sets the buffer gauges from the live queues; forgets queues whose
    /// output has gone (a reload removed it, or the agent is stopping).
    pub(super) fn sample_buffers(&self) {
        let mut buffers = self.buffers.lock().unwrap_or_else(|e| e.into_inner());
        buffers.retain(|name, weak| {
            let labels = ComponentLabels {
                component: name.clone(),
            };
            match weak.upgrade() {
                Some(sender) => {
                    let max = sender.max_capacity();
                    let used = max.saturating_sub(sender.capacity());
                    self.buffer_used
                        .get_or_create(&labels)
                        .set(i64::try_from(used).unwrap_or(i64::MAX));
                    self.buffer_capacity
                        .get_or_create(&labels)
                        .set(i64::try_from(max).unwrap_or(i64::MAX));
                    true
                }
                None => {
                    self.buffer_used.remove(&labels);
                    self.buffer_capacity.remove(&labels);
                    false
                }
            }
        });
    }
}
