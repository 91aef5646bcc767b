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
//! batch = { max_size = 2000, max_wait = "5s", throttle_enable = false }
//! ```
//!
//! Guarantees: each document's `_id` is `<auditID>-<stage>` with `create`,
//! so a retry or a replay after a crash answers 409, which counts as
//! delivered: no duplicates. Only failed items are retried (429, 5xx,
//! transient rejections), with backoff; rejected items (mapping errors) go
//! to the dead-letter file with the reason. A 413 splits the batch. Endpoints
//! are used in turn; one that fails is skipped for `endpoint_cooldown`.
//! Nothing is contacted at start-up, so an unreachable cluster never delays
//! the agent or its other outputs.
//!
//! Metrics: `events_out`, `errors`, `events_dropped{reason="rejected"}`,
//! `output_requests`, `output_retried_events`, `output_duplicate_events`.

mod bulk;
mod dead_letter;
mod index;
mod retry;

pub use bulk::{BulkEncoder, Target};
pub use index::IndexTemplate;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;

use prometheus_client::metrics::counter::Counter;
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE};
use serde::Deserialize;
use tokio::time::Instant;

use super::http::check_url;
use super::http::client::{
    Auth, AuthConfig, ClientSettings, Compression, TlsConfig, build_client, describe_status, gzip,
    retry_after, transport_error, with_auth,
};
use super::{OutputContext, OutputTask};
use crate::batch::{
    DeadLetter, Delivery, Driver, Output, OutputError, RetrySettings, WEBHOOK_DEFAULTS,
};
use crate::config::Duration;
use crate::event::Event;
use crate::source::BuildError;

/// The `elasticsearch` output's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElasticsearchConfig {
    /// Base URLs of the cluster's nodes (or of a load balancer), used in turn.
    pub endpoints: Vec<String>,
    /// Index name template: strftime of the event time in UTC, and
    /// `${field.path}` / `${tag}` parts. Default `kube-audit-%Y.%m.%d`.
    pub index: Option<String>,
    /// Write to this data stream instead of `index`.
    pub data_stream: Option<String>,
    /// Ingest pipeline to run on every document.
    pub pipeline: Option<String>,
    /// `_id` = `<auditID>-<stage>` with `create`, so retries and replays are
    /// not duplicated (a 409 counts as delivered). Default true.
    #[serde(default = "yes")]
    pub idempotent: bool,
    /// Store `requestObject` and `responseObject` as JSON strings, so their
    /// ever-changing shapes cannot explode or conflict in the mapping.
    /// Default false (the shipped index template does not index them).
    #[serde(default)]
    pub encode_bodies: bool,
    /// `gzip` compresses request bodies. Default none.
    #[serde(default)]
    pub compress: Compression,
    /// gzip level 0–9. Default 1.
    #[serde(default = "default_compress_level")]
    pub compress_level: u32,
    /// Basic (`user`/`password`), `api_key` or bearer auth.
    pub auth: Option<AuthConfig>,
    /// CA, client certificate and key.
    pub tls: Option<TlsConfig>,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Per-request timeout. Default 60s.
    #[serde(default = "default_timeout")]
    pub timeout: Duration,
    /// First wait before a retry. Default 1s.
    #[serde(default = "default_initial_backoff")]
    pub initial_backoff: Duration,
    /// Longest wait between retries. Default 60s.
    #[serde(default = "default_max_backoff")]
    pub max_backoff: Duration,
    /// How long a failing endpoint is skipped. Default 30s.
    #[serde(default = "default_cooldown")]
    pub endpoint_cooldown: Duration,
    /// NDJSON file for rejected events. Default
    /// `<data_dir>/dead-letter/<output name>.ndjson`.
    pub dead_letter_path: Option<PathBuf>,
}

fn yes() -> bool {
    true
}
fn default_compress_level() -> u32 {
    1
}
fn default_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_initial_backoff() -> Duration {
    Duration::from_secs(1)
}
fn default_max_backoff() -> Duration {
    Duration::from_secs(60)
}
fn default_cooldown() -> Duration {
    Duration::from_secs(30)
}

const DEFAULT_INDEX: &str = "kube-audit-%Y.%m.%d";
/// Keeps the answer small: only what per-item handling reads.
const FILTER_PATH: &str = "errors,items.*.status,items.*.error";

impl ElasticsearchConfig {
    /// Checks what can be checked without touching files.
    pub fn validate(&self) -> Result<(), String> {
        if self.endpoints.is_empty() {
            return Err("an `elasticsearch` output needs at least one entry in `endpoints`".into());
        }
        for endpoint in &self.endpoints {
            check_url(endpoint)?;
        }
        if self.index.is_some() && self.data_stream.is_some() {
            return Err("set either `index` or `data_stream`, not both".into());
        }
        self.target()?;
        if self.compress_level > 9 {
            return Err("`compress_level` goes from 0 to 9".into());
        }
        Ok(())
    }

    fn target(&self) -> Result<Target, String> {
        Ok(match &self.data_stream {
            Some(name) => Target::DataStream(name.clone()),
            None => Target::Index(IndexTemplate::parse(
                self.index.as_deref().unwrap_or(DEFAULT_INDEX),
            )?),
        })
    }

    pub fn build(&self, cx: OutputContext) -> Result<OutputTask, BuildError> {
        let fail = |message: String| BuildError::new(&cx.name, message);
        self.validate().map_err(fail)?;
        let settings = cx.batch.resolve(&WEBHOOK_DEFAULTS).map_err(fail)?;
        let output = ElasticsearchOutput::new(self, &cx).map_err(|e| {
            BuildError::new(&cx.name, "invalid `elasticsearch` output settings").with_source(e)
        })?;
        let dead_letter = DeadLetter::new(
            self.dead_letter_path
                .clone()
                .unwrap_or_else(|| DeadLetter::default_path(&cx.data_dir, &cx.name)),
            &cx.name,
        );
        let retry = RetrySettings {
            initial_backoff: self.initial_backoff.0,
            max_backoff: self.max_backoff.0,
        };
        let driver = Driver::new(output, settings, retry, dead_letter, cx.metrics);
        let input = cx.input;
        Ok(Box::pin(async move {
            driver.run(input).await;
            Ok(())
        }))
    }
}

/// The cluster's endpoints, used in turn; a failing one sits out a cool-down.
#[derive(Debug)]
struct Endpoints {
    bulk_urls: Vec<reqwest::Url>,
    down_until: Vec<Option<Instant>>,
    next: usize,
    cooldown: std::time::Duration,
}

impl Endpoints {
    /// The next healthy endpoint, or when all are cooling down, the one
    /// that recovers first.
    fn pick(&mut self) -> usize {
        let now = Instant::now();
        let n = self.bulk_urls.len();
        for k in 0..n {
            let i = (self.next + k) % n;
            if self.down_until[i].is_none_or(|t| t <= now) {
                self.next = i + 1;
                return i;
            }
        }
        (0..n).min_by_key(|&i| self.down_until[i]).unwrap_or(0)
    }

    fn failed(&mut self, i: usize) {
        self.down_until[i] = Some(Instant::now() + self.cooldown);
    }

    fn succeeded(&mut self, i: usize) {
        self.down_until[i] = None;
    }
}

/// The running `elasticsearch` output.
pub struct ElasticsearchOutput {
    client: reqwest::Client,
    endpoints: Endpoints,
    auth: Auth,
    encoder: BulkEncoder,
    compress: Compression,
    level: u32,
    size_hint: usize,
    duplicates: Counter,
}

/// Why an `elasticsearch` output could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum EsSetupError {
    #[error(transparent)]
    Client(#[from] super::http::client::ClientError),
    #[error("{0}")]
    Invalid(String),
}

impl ElasticsearchOutput {
    fn new(config: &ElasticsearchConfig, cx: &OutputContext) -> Result<Self, EsSetupError> {
        let mut settings = ClientSettings {
            timeout: config.timeout.0,
            headers: config
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            ..ClientSettings::default()
        };
        if let Some(tls) = &config.tls {
            tls.apply(&mut settings)?;
        }
        if let Some(auth) = &config.auth {
            settings.auth = auth.resolve()?;
        }
        let client = build_client(&settings, &cx.name)?;
        let mut bulk_urls = Vec::new();
        for endpoint in &config.endpoints {
            let mut url = check_url(endpoint).map_err(EsSetupError::Invalid)?;
            url.path_segments_mut()
                .map_err(|()| EsSetupError::Invalid(format!("`{endpoint}` cannot be a base URL")))?
                .pop_if_empty()
                .push("_bulk");
            url.query_pairs_mut()
                .append_pair("filter_path", FILTER_PATH);
            if let Some(pipeline) = &config.pipeline {
                url.query_pairs_mut().append_pair("pipeline", pipeline);
            }
            bulk_urls.push(url);
        }
        let target = config.target().map_err(EsSetupError::Invalid)?;
        Ok(Self {
            client,
            endpoints: Endpoints {
                down_until: vec![None; bulk_urls.len()],
                bulk_urls,
                next: 0,
                cooldown: config.endpoint_cooldown.0,
            },
            auth: settings.auth,
            encoder: BulkEncoder::new(target, config.idempotent, config.encode_bodies),
            compress: config.compress,
            level: config.compress_level,
            size_hint: 0,
            duplicates: cx.metrics.metrics().component_counter(
                "output_duplicate_events",
                "Events Elasticsearch already had (409 on create), counted as delivered",
                &cx.name,
            ),
        })
    }
}

impl Output for ElasticsearchOutput {
    fn send<'a>(
        &'a mut self,
        batch: &[Event],
    ) -> impl Future<Output = Result<Delivery, OutputError>> + Send + use<'a> {
        let mut body = Vec::with_capacity(self.size_hint);
        self.encoder.encode(batch, &mut body);
        self.size_hint = body.len() + body.len() / 8;
        let sent = batch.len();
        async move {
            let gzipped = self.compress == Compression::Gzip;
            let body = if gzipped {
                gzip(body, self.level).await?
            } else {
                body
            };
            let endpoint = self.endpoints.pick();
            let mut request = self
                .client
                .post(self.endpoints.bulk_urls[endpoint].clone())
                .header(CONTENT_TYPE, "application/x-ndjson")
                .body(body);
            if gzipped {
                request = request.header(CONTENT_ENCODING, "gzip");
            }
            let result = with_auth(request, &self.auth).send().await;
            let response = match result {
                Ok(response) => response,
                Err(e) => {
                    self.endpoints.failed(endpoint);
                    return Err(transport_error(&e));
                }
            };
            let status = response.status();
            let headers = response.headers().clone();
            let answer = match response.bytes().await {
                Ok(answer) => answer,
                Err(e) => {
                    self.endpoints.failed(endpoint);
                    return Err(transport_error(&e));
                }
            };
            if status.is_success() {
                self.endpoints.succeeded(endpoint);
                let outcome = retry::read_bulk_response(&answer, sent, self.encoder.uses_create())?;
                self.duplicates.inc_by(outcome.duplicates);
                return Ok(outcome.delivery);
            }
            let reason = describe_status(status, &answer);
            match status.as_u16() {
                413 => Err(OutputError::TooLarge),
                // Auth failures during credential rotation, timeouts and
                // overload pass: retry rather than dead-letter everything.
                401 | 403 | 408 | 429 => Err(OutputError::Retry {
                    reason,
                    retry_after: retry_after(&headers),
                }),
                500..=599 => {
                    self.endpoints.failed(endpoint);
                    Err(OutputError::Retry {
                        reason,
                        retry_after: retry_after(&headers),
                    })
                }
                _ => Err(OutputError::Rejected { reason }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints(n: usize) -> Endpoints {
        Endpoints {
            bulk_urls: (0..n)
                .map(|i| {
                    reqwest::Url::parse(&format!("http://127.0.0.1:{}/_bulk", 9200 + i)).unwrap()
                })
                .collect(),
            down_until: vec![None; n],
            next: 0,
            cooldown: std::time::Duration::from_secs(30),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn endpoints_rotate_and_skip_failed_ones_for_the_cooldown() {
        let mut e = endpoints(3);
        assert_eq!([e.pick(), e.pick(), e.pick(), e.pick()], [0, 1, 2, 0]);
        e.failed(1);
        assert_eq!([e.pick(), e.pick(), e.pick()], [2, 0, 2]);
        tokio::time::advance(std::time::Duration::from_secs(31)).await;
        assert_eq!([e.pick(), e.pick()], [0, 1]);
    }

    #[tokio::test(start_paused = true)]
    async fn when_all_endpoints_failed_the_first_to_recover_is_tried() {
        let mut e = endpoints(2);
        e.failed(1);
        tokio::time::advance(std::time::Duration::from_secs(1)).await;
        e.failed(0);
        assert_eq!(e.pick(), 1);
    }

    #[test]
    fn config_needs_endpoints_and_one_target() {
        let parse = |text: &str| -> ElasticsearchConfig { toml::from_str(text).unwrap() };
        assert!(parse(r#"endpoints = []"#).validate().is_err());
        assert!(parse(r#"endpoints = ["ftp://x"]"#).validate().is_err());
        assert!(
            parse(
                r#"endpoints = ["http://x:9200"]
index = "a"
data_stream = "b""#
            )
            .validate()
            .is_err()
        );
        let ok = parse(r#"endpoints = ["http://x:9200"]"#);
        assert!(ok.validate().is_ok());
        assert!(ok.idempotent);
    }
}
