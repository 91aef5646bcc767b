//! `type = "elasticsearch"`: indexes events through `_bulk` (Elasticsearch 7
//! and 8, OpenSearch; never `_type`).
//!
//! ```toml
//! [[output]]
//! type = "elasticsearch"
//! match = "audit.**"
//! endpoints = ["https://es1:9200", "https://es2:9200"]
//! index = "kube-audit-%Y.%m.%d"       # or data_stream = "logs-kubernetes.audit-default"
//! auth = { user = "auditrail", password = "…" }   # or { api_key = "…" }
//! compress = "gzip"
//! concurrency = 4                     # bulk requests in flight
//! batch = { max_size = 2000, max_bytes = "5MiB", max_wait = "1s" }
//! ```
//!
//! Guarantees: each document's `_id` is `<auditID>-<stage>` with `create`,
//! so a retry or a replay after a crash answers 409, which counts as
//! delivered: no duplicates. Up to `concurrency` requests are in flight;
//! acks settle per event, whatever order answers come in. Only failed items
//! are retried (429, 5xx, transient rejections): they go back into the
//! stream with their own backoff, so they never hold up the batches behind
//! them; rejected items (mapping errors) go to the dead-letter file with the
//! reason. A 413 splits the batch. Endpoints are used in turn; one that
//! fails is skipped for `endpoint_cooldown`.
//! Nothing is contacted at start-up, so an unreachable cluster never delays
//! the agent or its other outputs.
//!
//! Metrics: `events_out`, `errors`, `events_dropped{reason="rejected"}`,
//! `output_requests`, `output_retried_events`, `output_duplicate_events`.
//!
//! Files: [`config`] (keys and defaults), `build` (config to running
//! output), `sink` (the running output and its endpoints), `bulk` (request
//! bodies), `retry` (reading answers), `index`, `dead_letter` (reasons),
//! [`setup`] (`auditrail elasticsearch setup`: template and lifecycle policy).

mod build;
mod bulk;
pub mod config;
mod dead_letter;
mod index;
mod retry;
pub mod setup;
mod sink;

pub use bulk::{BulkEncoder, Target};
pub use config::ElasticsearchConfig;
pub use index::IndexName;
pub use sink::ElasticsearchOutput;
