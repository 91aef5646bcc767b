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
pub mod kubeconfig;

pub use body::BodyFormat;

use super::net::auth::{Auth, AuthConfig, with_auth};
use super::net::client::{ClientSettings, Compression, TlsConfig, build_client, gzip};
use super::net::response::{status_error, transport_error};
use super::net::{SetupError, check_url};

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;

use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE};
use serde::Deserialize;

use super::{OutputContext, OutputTask};
use crate::batch::{Delivery, Output, OutputError, RetrySettings, WEBHOOK_DEFAULTS};
use crate::config::Duration;
use crate::event::Event;
use crate::source::BuildError;

/// The `http` output's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Where to POST. Exactly one of `url` and `kubeconfig`.
    pub url: Option<String>,
    /// A kubeconfig as kube-apiserver's `--audit-webhook-config-file` takes:
    /// the current context's cluster `server` is the URL; its CA, client
    /// certificate, token or basic credentials are used.
    pub kubeconfig: Option<PathBuf>,
    /// `event_list` (default), `ndjson` or `json_array`.
    #[serde(default)]
    pub body: BodyFormat,
    /// `gzip` compresses request bodies (`Content-Encoding: gzip`). Default none.
    #[serde(default)]
    pub compress: Compression,
    /// gzip level 0–9. Default 1: audit JSON shrinks about tenfold even so,
    /// at a fraction of the CPU of higher levels.
    #[serde(default = "default_compress_level")]
    pub compress_level: u32,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Basic or bearer auth (overrides the kubeconfig's).
    pub auth: Option<AuthConfig>,
    /// CA, client certificate and key (added to the kubeconfig's).
    pub tls: Option<TlsConfig>,
    /// Per-request timeout. Default 30s (kube-apiserver's webhook client).
    #[serde(default = "default_timeout")]
    pub timeout: Duration,
    /// First wait before a retry. Default 10s (`--audit-webhook-initial-backoff`).
    #[serde(default = "default_initial_backoff")]
    pub initial_backoff: Duration,
    /// Longest wait between retries. Default 60s.
    #[serde(default = "default_max_backoff")]
    pub max_backoff: Duration,
    /// NDJSON file for rejected events. Default
    /// `<data_dir>/dead-letter/<output name>.ndjson`.
    pub dead_letter_path: Option<PathBuf>,
}

fn default_compress_level() -> u32 {
    1
}
fn default_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_initial_backoff() -> Duration {
    Duration::from_secs(10)
}
fn default_max_backoff() -> Duration {
    Duration::from_secs(60)
}

impl HttpConfig {
    /// Checks what can be checked without touching files.
    pub fn validate(&self) -> Result<(), String> {
        match (&self.url, &self.kubeconfig) {
            (Some(_), Some(_)) => return Err("set either `url` or `kubeconfig`, not both".into()),
            (None, None) => return Err("an `http` output needs `url` or `kubeconfig`".into()),
            (Some(url), None) => {
                check_url(url)?;
            }
            (None, Some(_)) => {}
        }
        if self.compress_level > 9 {
            return Err("`compress_level` goes from 0 to 9".into());
        }
        if let Some(auth) = &self.auth {
            auth.validate()?;
        }
        Ok(())
    }

    pub fn build(&self, cx: OutputContext) -> Result<OutputTask, BuildError> {
        let settings = cx
            .batch
            .resolve(&WEBHOOK_DEFAULTS)
            .map_err(|m| BuildError::new(&cx.name, m))?;
        let output = HttpOutput::new(self, &cx.name)
            .map_err(|e| super::net::build_error(&cx.name, "http", e))?;
        let retry = RetrySettings {
            initial_backoff: self.initial_backoff.0,
            max_backoff: self.max_backoff.0,
        };
        Ok(super::net::spawn(
            output,
            cx,
            settings,
            retry,
            self.dead_letter_path.as_ref(),
        ))
    }
}

/// The running `http` output.
pub struct HttpOutput {
    format: BodyFormat,
    request: Arc<Request>,
}

/// What every request shares.
struct Request {
    client: reqwest::Client,
    url: reqwest::Url,
    auth: Auth,
    content_type: &'static str,
    compress: Compression,
    level: u32,
}

impl HttpOutput {
    pub fn new(config: &HttpConfig, component: &str) -> Result<Self, SetupError> {
        let (url, settings) = config.client_settings()?;
        let client = build_client(&settings, component)?;
        Ok(Self {
            format: config.body,
            request: Arc::new(Request {
                client,
                url,
                auth: settings.auth,
                content_type: config.body.content_type(),
                compress: config.compress,
                level: config.compress_level,
            }),
        })
    }
}

impl HttpConfig {
    /// The URL and client settings, with the kubeconfig, certificates, keys
    /// and credentials loaded: what a start needs, found at config load.
    pub fn client_settings(&self) -> Result<(reqwest::Url, ClientSettings), SetupError> {
        let config = self;
        config.validate().map_err(SetupError::Invalid)?;
        let (url, mut settings) = match (&config.url, &config.kubeconfig) {
            (Some(url), _) => (url.clone(), ClientSettings::default()),
            (None, Some(path)) => {
                let target = kubeconfig::load(path)?;
                (target.url, target.settings)
            }
            (None, None) => unreachable!("validate() requires one of them"),
        };
        let url = check_url(&url).map_err(SetupError::Invalid)?;
        if let Some(tls) = &config.tls {
            tls.apply(&mut settings)?;
        }
        if let Some(auth) = &config.auth {
            match auth.resolve()? {
                Auth::None => {}
                auth => settings.auth = auth,
            }
        }
        settings.timeout = config.timeout.0;
        settings.headers = config
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Ok((url, settings))
    }
}

impl Output for HttpOutput {
    fn encode(&mut self, event: &Event, body: &mut Vec<u8>) {
        self.format.encode_one(event, body);
    }

    fn finish(&mut self, body: &mut Vec<u8>) {
        self.format.finish(body);
    }

    fn send(
        &mut self,
        body: Bytes,
        _count: usize,
    ) -> impl Future<Output = Result<Delivery, OutputError>> + Send + 'static {
        let request = self.request.clone();
        async move { request.post(body).await }
    }
}

impl Request {
    async fn post(&self, body: Bytes) -> Result<Delivery, OutputError> {
        let gzipped = self.compress == Compression::Gzip;
        let body = if gzipped {
            Bytes::from(gzip(body, self.level).await?)
        } else {
            body
        };
        let mut request = self
            .client
            .post(self.url.clone())
            .header(CONTENT_TYPE, self.content_type)
            .body(body);
        if gzipped {
            request = request.header(CONTENT_ENCODING, "gzip");
        }
        let response = with_auth(request, &self.auth)
            .send()
            .await
            .map_err(|e| transport_error(&e))?;
        let status = response.status();
        let headers = response.headers().clone();
        // Read the answer to the end so the connection can be reused; a
        // 2xx whose body breaks off is retried (a duplicate beats a loss).
        let answer = response.bytes().await.map_err(|e| transport_error(&e))?;
        if status.is_success() {
            Ok(Delivery::All)
        } else {
            Err(status_error(status, &headers, &answer))
        }
    }
}

#[cfg(test)]
mod tests;
