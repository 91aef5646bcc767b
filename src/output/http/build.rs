//! From config to running output: the client, and the driver that batches
//! with kube-apiserver's webhook defaults.

use super::config::HttpConfig;
use super::sink::HttpOutput;
use crate::batch::{RetrySettings, WEBHOOK_DEFAULTS};
use crate::output::{OutputContext, OutputTask, net};
use crate::source::BuildError;

impl HttpConfig {
    pub fn build(&self, cx: OutputContext) -> Result<OutputTask, BuildError> {
        let settings = cx
            .batch
            .resolve(&WEBHOOK_DEFAULTS)
            .map_err(|m| BuildError::new(&cx.name, m))?;
        let output =
            HttpOutput::new(self, &cx.name).map_err(|e| net::build_error(&cx.name, "http", e))?;
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
