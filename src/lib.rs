//! auditrail: a log-shipping agent for Kubernetes audit events.
//!
//! - [`config`]: the TOML config, validated into typed structs with
//!   `file:line:col` diagnostics.
//! - [`dsl`]: the expression and template language, compiled at config
//!   load and evaluated per event.
//! - [`event`]: events (tag, time, record with its original bytes) and
//!   end-to-end acknowledgements.
//! - [`source`]: where events come from.
//! - [`filter`]: per-event transforms run in file order.
//! - [`output`]: where events go.
//! - [`batch`]: batching settings and the driver shared by network outputs.
//! - [`pipeline`]: tag patterns, the router, the routing graph and the
//!   topology that starts and stops everything.
//! - [`dsl`]: the expression and template language of filters and paths.
//! - [`audit`]: `audit.k8s.io` semantics: types, policy, request info,
//!   access records and the legacy format.
//! - [`metrics`]: the agent's own Prometheus metrics and the `[api]` endpoint.
//! - [`listener`]: the bounded accept loop of every HTTP listener (the
//!   webhook source, the `[api]` endpoint).
//! - [`systemd`]: service notifications (ready, reloading, stopping, watchdog).
//! - `tls`: TLS failures in plain words, for the logs.
//! - [`cli`]: the `auditrail` command.

pub mod audit;
pub mod batch;
pub mod cli;
pub mod config;
pub mod dsl;
pub mod event;
pub mod filter;
pub mod listener;
pub mod metrics;
pub mod output;
pub mod pipeline;
pub mod source;
pub mod systemd;
mod tls;
mod worker_pool;

/// An error and its causes on one line (`outer: inner: root`), for a log
/// field; the CLI prints causes on lines of their own instead.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
