//! The `http` output's config: keys, defaults, and the URL and client
//! settings (kubeconfig, certificates, credentials) loaded at config load.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::body::BodyFormat;
use super::kubeconfig;
use crate::config::Duration;
use crate::output::net::auth::{Auth, AuthConfig};
use crate::output::net::client::{ClientSettings, Compression, TlsConfig};
use crate::output::net::{SetupError, check_url};

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
