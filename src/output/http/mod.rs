//! `type = "http"`: forwards events to an HTTP endpoint, by default as the
//! `EventList` kube-apiserver's webhook backend POSTs, so any audit webhook
//! (a SIEM, Falco's k8saudit endpoint, another auditrail) takes them.
//!
//! ```toml
//! [[output]]
//! type = "http"
//! match = "audit.**"
//! kubeconfig = "/etc/auditrail/webhook-kubeconfig.yaml"   # or url = "https://…"
//! body = "event_list"          # ndjson | json_array
//! compress = "gzip"
//! initial_backoff = "10s"
//! batch = { max_size = 400, max_wait = "30s" }
//! ```
//!
//! Guarantees: events are acknowledged after a 2xx, or after a 4xx other
//! than 408/429 once they are in the dead-letter file (the remote will never
//! take them). Connection errors, timeouts, 408, 429 (honouring
//! `Retry-After`) and 5xx are retried with kube-apiserver's backoff
//! (`initial_backoff` × 1.5ⁿ, 0–20 % jitter) capped at `max_backoff`,
//! without a retry limit. A 413 sends the batch again in halves.
//!
//! Metrics: `events_out`, `errors` (failed requests), `events_dropped
//! {reason="rejected"}`, `output_requests`, `output_retried_events`.

mod body;
mod build;
mod config;
pub mod kubeconfig;
mod sink;

pub use body::BodyFormat;
pub use config::HttpConfig;
pub use sink::HttpOutput;

#[cfg(test)]
mod tests;
