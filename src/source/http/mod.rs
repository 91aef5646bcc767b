//! `type = "http"`: receives kube-apiserver's audit webhook batches (and any
//! client that POSTs audit events). Each `EventList` item becomes one event
//! whose record is the item's original JSON text.
//!
//! ## What it does
//! POSTs to `path` (or below it) with `Content-Type: application/json`
//! (an `EventList`, a single `Event`, or a JSON array of events) or
//! `application/x-ndjson` (one event per line), optionally gzip-compressed.
//! `GET /healthz` answers 200 without authentication, for probes.
//!
//! ```toml
//! [[source]]
//! type = "http"
//! listen = "0.0.0.0:8888"
//! tag = "audit.webhook"
//! tls = { cert = "/etc/auditrail/tls.crt", key = "/etc/auditrail/tls.key", client_ca = "/etc/auditrail/ca.crt" }
//! auth = { bearer_tokens_file = "/etc/auditrail/webhook-tokens" }
//! ```
//!
//! ## Guarantees
//! With `ack = "delivered"` (the default) a request is answered 200 only once
//! every output that took its events has written them durably; a failure is
//! 503 and the client (kube-apiserver) resends the whole batch. A malformed
//! body is rejected whole (400): nothing from it is emitted. Full buffers
//! answer 429 with `Retry-After`. Without TLS and authentication the source
//! refuses to listen on anything but loopback unless `insecure = true`.
//!
//! ## Metrics
//! `events_in` per accepted event, `events_dropped{reason="duplicate"}`,
//! `errors` per rejected request, `http_responses{code}` per reply.

mod auth;
mod body;
mod dedupe;
mod error;
mod handler;
mod tag;
#[cfg(test)]
mod tests;
mod tls;

pub use error::IngestError;
pub use handler::{HttpState, router};

/// A read request body as the handler decodes it: `Content-Type` and
/// `Content-Encoding` checked, gunzipped within `limit` bytes, split into
/// records. For the fuzz targets (`fuzz/`), not a stable API.
#[doc(hidden)]
pub fn decode_body(
    headers: &axum::http::HeaderMap,
    bytes: bytes::Bytes,
    limit: usize,
    time: Option<&TimeSpec>,
) -> Result<Vec<super::Decoded>, IngestError> {
    let format = body::format_of(headers)?;
    let bytes = if body::is_gzip(headers)? {
        body::gunzip(&bytes, limit)?
    } else {
        bytes
    };
    body::decode(&bytes, format, time, chrono::Utc::now())
}

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use super::{BuildError, InputFormat, SourceContext, SourceTask, TimeSpec};
use crate::config::{ByteSize, Diagnostic, Duration};
use crate::event::FieldPath;

/// ```toml
/// [[source]]
/// type = "http"
/// listen = "127.0.0.1:8888"
/// path = "/audit"
/// tag = "audit.webhook"
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address to listen on, `IP:PORT` (e.g. `"0.0.0.0:8888"`). Port 0 picks a
    /// free port; the bound address is logged as `listening on ADDR`.
    pub listen: Spanned<SocketAddr>,
    /// URL path events are POSTed to; requests to this path or below it are
    /// accepted. Default `/` (every path but `/healthz`).
    #[serde(default = "default_path")]
    pub path: String,
    /// Tag of every event. May hold `${path}` (the request path below `path`,
    /// segments joined by `.`), `${path[N]}` (its Nth segment, from 0) or
    /// `${header.NAME}` (a request header); each value is reduced to
    /// `[A-Za-z0-9_-]` and is `none` when absent. Default `http`.
    #[serde(default = "default_tag")]
    pub tag: String,
    /// Field holding the event time; default `stageTimestamp` (an event
    /// without a readable one takes the time the request arrived).
    pub time_key: Option<FieldPath>,
    /// strftime format of `time_key`; default RFC 3339.
    pub time_format: Option<String>,
    /// Largest request body, after gzip decompression too. Default 16MiB
    /// (kube-apiserver's batches reach 10MiB).
    #[serde(default = "default_max_body_size")]
    pub max_body_size: ByteSize,
    /// Serve HTTPS. Without it the source speaks plain HTTP/1.1.
    pub tls: Option<TlsConfig>,
    /// Require a bearer token on every POST.
    pub auth: Option<AuthConfig>,
    /// Allow listening on a non-loopback address with neither `tls` nor
    /// `auth`: anyone who can reach the port can then inject audit events.
    /// Default false.
    #[serde(default)]
    pub insecure: bool,
    /// When to answer 200: `delivered` (default; once every output has the
    /// events durably) or `accepted` (once they are queued in memory; faster,
    /// but a crash can lose acknowledged events).
    #[serde(default)]
    pub ack: AckMode,
    /// Drop events whose (`auditID`, `stage`) was delivered recently:
    /// kube-apiserver resends whole batches on any error. Off by default.
    pub dedupe_window: Option<DedupeConfig>,
    /// Time allowed for a request's headers to arrive; also how long an idle
    /// keep-alive connection stays open (HTTP/1.1 and HTTP/2 alike; an
    /// HTTP/2 connection is also pinged at this interval and closed when a
    /// ping goes unanswered as long). Default 30s.
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout: Duration,
    /// Time allowed for a request's body to arrive. Default 30s.
    #[serde(default = "default_request_timeout")]
    pub request_timeout: Duration,
    /// Time allowed for a TLS handshake. Default 10s.
    #[serde(default = "default_handshake_timeout")]
    pub handshake_timeout: Duration,
    /// How long a request waits for room in the pipeline before it is
    /// answered 429. Default 1s.
    #[serde(default = "default_queue_timeout")]
    pub queue_timeout: Duration,
    /// How long a request waits for its events to be delivered (with
    /// `ack = "delivered"`) before it is answered 503; kube-apiserver gives up
    /// after 30s. Default 25s.
    #[serde(default = "default_ack_timeout")]
    pub ack_timeout: Duration,
    /// The `Retry-After` sent with 429 and 503, rounded up to whole seconds.
    /// Default 1s.
    #[serde(default = "default_retry_after")]
    pub retry_after: Duration,
    /// Open connections at most; more wait in the kernel's backlog.
    /// Default 1024.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Requests handled at once at most; more are answered 429. Bounds the
    /// memory held by request bodies. Default 64.
    #[serde(default = "default_max_concurrent_requests")]
    pub max_concurrent_requests: usize,
    /// TLS material and tokens, set by [`HttpConfig::load_files`].
    #[serde(skip)]
    pub files: LoadedFiles,
}

/// `tls = { cert, key, client_ca }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the server certificate chain, leaf first.
    pub cert: Spanned<PathBuf>,
    /// PEM file with the server's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: Spanned<PathBuf>,
    /// PEM file with the CA certificates that sign client certificates.
    /// When set, every connection must present a valid client certificate
    /// (what a kubeconfig with `client-certificate` gives kube-apiserver).
    pub client_ca: Option<Spanned<PathBuf>>,
}

/// `auth = { bearer_tokens_file }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// File with the accepted bearer tokens, one per line (blank lines and
    /// lines starting with `#` are ignored). Re-read when it changes; several
    /// tokens allow rotation.
    pub bearer_tokens_file: Spanned<PathBuf>,
}

/// The files `tls` and `auth` name, loaded with the config so that `check`
/// and a reload fail on them as a start would.
#[derive(Debug, Clone, Default)]
pub struct LoadedFiles {
    tls: Option<Arc<rustls::ServerConfig>>,
    tokens: Option<auth::BearerTokens>,
}

/// `dedupe_window = { max_age, max_entries }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupeConfig {
    /// How long a delivered (`auditID`, `stage`) is remembered. Default 10m.
    #[serde(default = "default_dedupe_age")]
    pub max_age: Duration,
    /// How many pairs are remembered at most; the oldest go first.
    /// Default 100000.
    #[serde(default = "default_dedupe_entries")]
    pub max_entries: usize,
    /// Bytes of (`auditID`, `stage`) keys remembered at most; the oldest go
    /// first. Keys over 256 bytes are never remembered. Default 16MiB.
    #[serde(default = "default_dedupe_bytes")]
    pub max_bytes: ByteSize,
}

/// `ack`: when a request is answered 200.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AckMode {
    /// After every output has the events durably.
    #[default]
    Delivered,
    /// After the events are queued in the pipeline.
    Accepted,
}

fn default_path() -> String {
    "/".into()
}
fn default_tag() -> String {
    "http".into()
}
fn default_max_body_size() -> ByteSize {
    ByteSize(16 << 20)
}
fn default_header_read_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_handshake_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_queue_timeout() -> Duration {
    Duration::from_secs(1)
}
fn default_ack_timeout() -> Duration {
    Duration::from_secs(25)
}
fn default_retry_after() -> Duration {
    Duration::from_secs(1)
}
fn default_max_connections() -> usize {
    1024
}
fn default_max_concurrent_requests() -> usize {
    64
}
fn default_dedupe_age() -> Duration {
    Duration::from_secs(600)
}
fn default_dedupe_entries() -> usize {
    100_000
}
fn default_dedupe_bytes() -> ByteSize {
    ByteSize(16 << 20)
}

impl HttpConfig {
    /// Checks what serde cannot: the tag template, the path, limits, and
    /// that an open listener is protected or explicitly marked insecure.
    pub fn validate(&self) -> Result<(), Diagnostic> {
        tag::TagTemplate::parse(&self.tag)
            .map_err(|e| Diagnostic::new(format!("invalid `tag` of an `http` source: {e}")))?;
        if !self.path.starts_with('/') {
            return Err(Diagnostic::new(format!(
                "`path` of an `http` source must start with `/`, found `{}`",
                self.path
            )));
        }
        if self.max_connections == 0 || self.max_concurrent_requests == 0 {
            return Err(Diagnostic::new(
                "`max_connections` and `max_concurrent_requests` must be at least 1",
            ));
        }
        let addr = self.listen.get_ref();
        // Server-only TLS proves the agent to its clients, not the clients
        // to the agent: only client certificates or tokens authenticate.
        let authenticated =
            self.auth.is_some() || self.tls.as_ref().is_some_and(|t| t.client_ca.is_some());
        if !addr.ip().is_loopback() && !authenticated && !self.insecure {
            let (what, help) = if self.tls.is_some() {
                (
                    "with TLS but no client authentication",
                    "add `client_ca = ...` to `tls` (kube-apiserver then presents the client \
                     certificate of its webhook kubeconfig) and/or \
                     `auth = { bearer_tokens_file = ... }`; or set `insecure = true` to accept \
                     events from any client that can reach the port",
                )
            } else {
                (
                    "without TLS or authentication",
                    "add `tls = { cert = ..., key = ..., client_ca = ... }` and/or \
                     `auth = { bearer_tokens_file = ... }`; or set `insecure = true` to accept \
                     unauthenticated events from the network",
                )
            };
            return Err(
                Diagnostic::new(format!("refusing to receive events on `{addr}` {what}"))
                    .at(self.listen.span())
                    .with_label("not a loopback address")
                    .with_help(help),
            );
        }
        Ok(())
    }

    /// Loads the certificates, key and tokens the config names; an error
    /// points at the key naming the file that cannot be used.
    pub fn load_files(mut self) -> Result<Self, Diagnostic> {
        let tls = self
            .tls
            .as_ref()
            .map(|t| {
                tls::load(t).map_err(|e| {
                    Diagnostic::new(format!(
                        "cannot use the `tls` of an `http` source: {}",
                        crate::error_chain(&e)
                    ))
                    .at(e.key_span(t))
                })
            })
            .transpose()?;
        let tokens = self
            .auth
            .as_ref()
            .map(|a| {
                auth::BearerTokens::load(a.bearer_tokens_file.get_ref()).map_err(|e| {
                    Diagnostic::new(crate::error_chain(&e)).at(a.bearer_tokens_file.span())
                })
            })
            .transpose()?;
        self.files = LoadedFiles { tls, tokens };
        Ok(self)
    }

    /// Opens the listener and starts serving.
    pub fn build(&self, cx: SourceContext) -> Result<SourceTask, BuildError> {
        let name = cx.name.to_string();
        let LoadedFiles { tls, tokens } = self.files.clone();
        self.warn_if_exposed(tokens.is_some());
        let addr = *self.listen.get_ref();
        // Bind synchronously so a taken port fails the start, not a task.
        let std_listener = std::net::TcpListener::bind(addr)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|e| {
                BuildError::new(&name, format!("failed to listen on `{addr}`")).with_source(e)
            })?;
        let config = self.clone();
        Ok(Box::pin(async move {
            let listener = tokio::net::TcpListener::from_std(std_listener).map_err(|e| {
                BuildError::new(&name, format!("failed to listen on `{addr}`")).with_source(e)
            })?;
            if let Ok(bound) = listener.local_addr() {
                tracing::info!(source = %name, tls = tls.is_some(), "listening on {bound}");
            }
            if let Some(tokens) = &tokens {
                tokio::spawn(tokens.clone().watch(cx.shutdown.clone()));
            }
            let state = HttpState::new(&config, &cx, tokens)
                .map_err(|e| BuildError::new(&name, e.to_string()))?;
            let options = crate::listener::Options {
                limits: config.server_limits(),
                tls,
                errors: cx.metrics.errors.clone(),
            };
            crate::listener::serve(listener, router(state), options, cx.shutdown.clone()).await;
            Ok(())
        }))
    }

    fn warn_if_exposed(&self, has_tokens: bool) {
        let addr = self.listen.get_ref();
        if addr.ip().is_loopback() {
            return;
        }
        let client_certs = self.tls.as_ref().is_some_and(|t| t.client_ca.is_some());
        if self.insecure && !client_certs && !has_tokens {
            tracing::warn!(
                listen = %addr,
                "The http source accepts unauthenticated events from the network (`insecure = true`)."
            );
        } else if has_tokens && self.tls.is_none() {
            tracing::warn!(
                listen = %addr,
                "Bearer tokens are sent in clear text: the http source has no `tls`."
            );
        }
    }

    fn server_limits(&self) -> crate::listener::Limits {
        crate::listener::Limits {
            header_read_timeout: self.header_read_timeout.0,
            handshake_timeout: self.handshake_timeout.0,
            max_connections: self.max_connections,
            // More streams than requests handled at once would only wait.
            max_concurrent_streams: u32::try_from(self.max_concurrent_requests).unwrap_or(u32::MAX),
        }
    }

    fn time_spec(&self) -> Option<TimeSpec> {
        TimeSpec::for_format(
            InputFormat::Json,
            self.time_key.as_ref(),
            self.time_format.as_deref(),
        )
    }
}

/// Shared, immutable settings a request handler reads.
#[derive(Debug)]
struct Settings {
    path: String,
    tag: tag::TagTemplate,
    time: Option<TimeSpec>,
    max_body_size: usize,
    ack: AckMode,
    request_timeout: std::time::Duration,
    queue_timeout: std::time::Duration,
    ack_timeout: std::time::Duration,
    retry_after_secs: u64,
}

impl Settings {
    fn from_config(config: &HttpConfig) -> Result<Arc<Self>, tag::TemplateError> {
        Ok(Arc::new(Self {
            path: config.path.trim_end_matches('/').to_owned(),
            tag: tag::TagTemplate::parse(&config.tag)?,
            time: config.time_spec(),
            max_body_size: config.max_body_size.as_usize(),
            ack: config.ack,
            request_timeout: config.request_timeout.0,
            queue_timeout: config.queue_timeout.0,
            ack_timeout: config.ack_timeout.0,
            retry_after_secs: whole_seconds(config.retry_after.0),
        }))
    }
}

/// A duration rounded up to whole seconds, at least 1 (for `Retry-After`).
fn whole_seconds(d: std::time::Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}
