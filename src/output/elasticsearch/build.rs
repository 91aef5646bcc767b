//! From config to running output: the HTTP client, the `_bulk` URL of each
//! endpoint, the index target, and the driver.

use std::sync::{Arc, Mutex};

use super::bulk::BulkEncoder;
use super::config::ElasticsearchConfig;
use super::sink::{ElasticsearchOutput, Endpoints, Requests};
use crate::batch::RetrySettings;
use crate::metrics::EvalErrors;
use crate::output::net::client::{ClientSettings, build_client};
use crate::output::net::{self, SetupError, check_url};
use crate::output::{OutputContext, OutputTask};
use crate::source::BuildError;

/// Keeps the answer small: only what per-item handling reads.
const FILTER_PATH: &str = "errors,items.*.status,items.*.error";

impl ElasticsearchConfig {
    pub fn build(&self, cx: OutputContext) -> Result<OutputTask, BuildError> {
        let fail = |message: String| BuildError::new(&cx.name, message);
        self.validate().map_err(fail)?;
        let settings = self.batch_settings(&cx.batch).map_err(fail)?;
        let output = ElasticsearchOutput::new(self, &cx)
            .map_err(|e| net::build_error(&cx.name, "elasticsearch", e))?;
        let retry = RetrySettings {
            initial_backoff: self.initial_backoff.0,
            max_backoff: self.max_backoff.0,
        };
        Ok(net::spawn(
            output,
            cx,
            settings,
            retry,
            self.dead_letter_path.as_ref(),
        ))
    }
}

impl ElasticsearchConfig {
    /// The client settings, with certificates, keys and credentials loaded.
    pub fn client_settings(&self) -> Result<ClientSettings, SetupError> {
        let mut settings = ClientSettings {
            timeout: self.timeout.0,
            headers: self
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            ..ClientSettings::default()
        };
        if let Some(tls) = &self.tls {
            tls.apply(&mut settings)?;
        }
        if let Some(auth) = &self.auth {
            settings.auth = auth.resolve()?;
        }
        Ok(settings)
    }
}

/// `<endpoint>/_bulk?filter_path=…[&pipeline=…]`.
fn bulk_url(endpoint: &str, pipeline: Option<&str>) -> Result<reqwest::Url, SetupError> {
    let mut url = check_url(endpoint).map_err(SetupError::Invalid)?;
    url.path_segments_mut()
        .map_err(|()| SetupError::Invalid(format!("`{endpoint}` cannot be a base URL")))?
        .pop_if_empty()
        .push("_bulk");
    url.query_pairs_mut()
        .append_pair("filter_path", FILTER_PATH);
    if let Some(pipeline) = pipeline {
        url.query_pairs_mut().append_pair("pipeline", pipeline);
    }
    Ok(url)
}

impl ElasticsearchOutput {
    pub(super) fn new(
        config: &ElasticsearchConfig,
        cx: &OutputContext,
    ) -> Result<Self, SetupError> {
        let settings = config.client_settings()?;
        let client = build_client(&settings, &cx.name)?;
        let bulk_urls = config
            .endpoints
            .iter()
            .map(|endpoint| bulk_url(endpoint, config.pipeline.as_deref()))
            .collect::<Result<Vec<_>, _>>()?;
        let target = config
            .target(EvalErrors::new(cx.metrics.clone()))
            .map_err(SetupError::Invalid)?;
        let encoder = BulkEncoder::new(target, config.idempotent, config.encode_bodies);
        Ok(Self {
            requests: Arc::new(Requests {
                client,
                endpoints: Mutex::new(Endpoints::new(bulk_urls, config.endpoint_cooldown.0)),
                auth: settings.auth,
                compress: config.compress,
                level: config.compress_level,
                create: encoder.uses_create(),
                duplicates: cx.metrics.metrics().component_counter(
                    "output_duplicate_events",
                    "Events Elasticsearch already had (409 on create), counted as delivered",
                    &cx.name,
                ),
            }),
            encoder,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_urls_keep_a_base_path_and_ask_only_for_item_results() {
        let url = bulk_url("https://es.example:9200/prefix/", Some("audit")).unwrap();
        assert_eq!(
            url.as_str(),
            "https://es.example:9200/prefix/_bulk?filter_path=errors%2Citems.*.status%2Citems.*.error&pipeline=audit"
        );
    }
}
