//! The `elasticsearch` output's config: keys, defaults and the checks that
//! need no network.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::bulk::Target;
use super::index::IndexName;
use crate::batch::{BatchConfig, BatchSettings, ES_DEFAULTS};
use crate::config::{ComponentTable, Diagnostic, Duration, SourceFile};
use crate::dsl::{Template, TemplateKind};
use crate::metrics::EvalErrors;
use crate::output::net::auth::AuthConfig;
use crate::output::net::check_url;
use crate::output::net::client::{Compression, TlsConfig};

/// Bulk requests in flight at most, when `concurrency` is not set: enough
/// to keep encoding, the network and a few of the cluster's write threads
/// busy at once, few enough not to flood a small cluster's write queue.
pub const DEFAULT_CONCURRENCY: usize = 4;
/// The most `concurrency` accepts.
const MAX_CONCURRENCY: usize = 64;

/// The `elasticsearch` output's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElasticsearchConfig {
    /// Base URLs of the cluster's nodes (or of a load balancer), used in turn.
    pub endpoints: Vec<String>,
    /// Index name: a path template in the expression language
    /// (`docs/dsl.md`), with strftime fields of the event time in UTC and
    /// `${...}` holes (`${tag}`, `${objectRef.namespace ?? "none"}`). The
    /// result is lowercased and characters Elasticsearch forbids become `_`.
    /// Default `kube-audit-%Y.%m.%d`.
    pub index: Option<Spanned<String>>,
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
    /// Basic (`user` + `password` or `password_file`), `api_key` (or
    /// `api_key_file`) or bearer auth.
    pub auth: Option<AuthConfig>,
    /// CA, client certificate and key.
    pub tls: Option<TlsConfig>,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Bulk requests in flight at most. Default 4.
    pub concurrency: Option<usize>,
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

pub(super) const DEFAULT_INDEX: &str = "kube-audit-%Y.%m.%d";

impl ElasticsearchConfig {
    /// Reads an `[[output]]` table: errors in `index` point at the exact
    /// character inside the string, and a credential file that cannot be
    /// read at its path.
    pub fn from_component(
        table: ComponentTable<'_>,
        file: &SourceFile,
        shared: &[&str],
    ) -> Result<Self, Diagnostic> {
        let span = table.span.clone();
        let mut config: Self = table.deserialize("an `elasticsearch` output", shared)?;
        if let Some(index) = &config.index {
            Template::from_config(file, index, TemplateKind::Path)?;
        }
        config.validate().map_err(|m| Diagnostic::new(m).at(span))?;
        if let Some(auth) = &mut config.auth {
            auth.load()?;
        }
        Ok(config)
    }

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
        if self.data_stream.is_none() {
            self.index_template()?;
        }
        if self.compress_level > 9 {
            return Err("`compress_level` goes from 0 to 9".into());
        }
        if let Some(n) = self.concurrency
            && !(1..=MAX_CONCURRENCY).contains(&n)
        {
            return Err(format!("`concurrency` goes from 1 to {MAX_CONCURRENCY}"));
        }
        if let Some(auth) = &self.auth {
            auth.validate()?;
        }
        Ok(())
    }

    /// The batch settings: the `batch` table over [`ES_DEFAULTS`], with
    /// `concurrency`.
    pub fn batch_settings(&self, batch: &BatchConfig) -> Result<BatchSettings, String> {
        let mut settings = batch.resolve(&ES_DEFAULTS)?;
        settings.concurrency = self.concurrency.unwrap_or(DEFAULT_CONCURRENCY);
        Ok(settings)
    }

    pub(super) fn index_template(&self) -> Result<Template, String> {
        let text = self.index.as_ref().map_or(DEFAULT_INDEX, |i| i.get_ref());
        Template::compile(text, TemplateKind::Path)
            .map_err(|e| format!("invalid `index` template `{text}`: {e}"))
    }

    pub(super) fn target(&self, errors: EvalErrors) -> Result<Target, String> {
        Ok(match &self.data_stream {
            Some(name) => Target::DataStream(name.clone()),
            None => Target::Index(Box::new(IndexName::new(self.index_template()?, errors))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> ElasticsearchConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn config_needs_endpoints_and_one_target() {
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

    #[test]
    fn batches_default_to_elasticsearch_sizes_and_four_requests_in_flight() {
        let config = parse(r#"endpoints = ["http://x:9200"]"#);
        let settings = config.batch_settings(&BatchConfig::default()).unwrap();
        assert_eq!(settings.max_size, 2000);
        assert_eq!(settings.max_bytes, Some(5 * 1024 * 1024));
        assert_eq!(settings.max_wait, std::time::Duration::from_secs(1));
        assert_eq!(settings.throttle, None);
        assert_eq!(settings.concurrency, DEFAULT_CONCURRENCY);
        let config = parse("endpoints = [\"http://x:9200\"]\nconcurrency = 16");
        let batch: BatchConfig =
            toml::from_str("max_bytes = \"1MiB\"\nthrottle_enable = true").unwrap();
        let settings = config.batch_settings(&batch).unwrap();
        assert_eq!(settings.concurrency, 16);
        assert_eq!(settings.max_bytes, Some(1024 * 1024));
        assert_eq!(settings.throttle, Some((10.0, 15)));
        assert!(
            parse("endpoints = [\"http://x:9200\"]\nconcurrency = 0")
                .validate()
                .is_err()
        );
    }
}
